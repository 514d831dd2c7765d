#ifndef VIPFARM_CPCAP_SHIM_H
#define VIPFARM_CPCAP_SHIM_H
// libpcap for TapEngine, plus the packet-socket and TAP calls Swift cannot make (variadic ioctl, macros, structs
// built in C). Only TapEngine imports this module.
#include <pcap/pcap.h>

#include <fcntl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/if_packet.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

// Attaches a descriptor of /dev/net/tun to the TAP device `name` (IFF_TAP | IFF_NO_PI); returns ioctl's result.
// TUNSETIFF is a function-like macro and ioctl is variadic.
static inline int vipfarm_tap_attach(int fd, const char *name) {
    struct ifreq request;
    memset(&request, 0, sizeof(request));
    request.ifr_flags = IFF_TAP | IFF_NO_PI;
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    return ioctl(fd, TUNSETIFF, &request);
}

// Asks the NIC to accept frames for one more MAC, unicast (PACKET_MR_UNICAST: the virtual MAC, without promiscuous
// mode) or multicast (PACKET_MR_MULTICAST: the VIP's IPv6 solicited-node group). `fd` is a packet socket bound to
// interface `ifindex`.
static inline int vipfarm_add_membership(int fd, int ifindex, int multicast, const unsigned char mac[6]) {
    struct packet_mreq request;
    memset(&request, 0, sizeof(request));
    request.mr_ifindex = ifindex;
    request.mr_type = multicast ? PACKET_MR_MULTICAST : PACKET_MR_UNICAST;
    request.mr_alen = 6;
    memcpy(request.mr_address, mac, 6);
    return setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &request, sizeof(request));
}
// Sends up to 64 frames with one sendmmsg(2). <sys/socket.h> declares sendmmsg and struct mmsghdr only under
// _GNU_SOURCE (which would change glibc types Swift's Glibc module sees), so this uses the kernel's layout and the raw
// system call. `data` holds the frames back to back, `lengths[i]` the size of frame i. Returns the frames sent, or -1
// with errno set.
#include <sys/syscall.h>
#include <sys/uio.h>
struct vipfarm_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};
static inline int vipfarm_send_frames(int fd, const unsigned char *data, const unsigned short *lengths,
                                      unsigned count) {
    struct iovec vectors[64];
    struct vipfarm_mmsghdr headers[64];
    if (count > 64) count = 64;
    memset(headers, 0, sizeof(headers[0]) * count);
    for (unsigned i = 0; i < count; i++) {
        vectors[i].iov_base = (void *)data;
        vectors[i].iov_len = lengths[i];
        data += lengths[i];
        headers[i].msg_hdr.msg_iov = &vectors[i];
        headers[i].msg_hdr.msg_iovlen = 1;
    }
    return (int)syscall(SYS_sendmmsg, fd, headers, count, 0);
}
#endif
