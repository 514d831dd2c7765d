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

// Asks the NIC to accept frames for one more unicast MAC (PACKET_MR_UNICAST), so the virtual MAC is received without
// promiscuous mode. `fd` is a packet socket bound to interface `ifindex`.
static inline int vipfarm_add_unicast_membership(int fd, int ifindex, const unsigned char mac[6]) {
    struct packet_mreq request;
    memset(&request, 0, sizeof(request));
    request.mr_ifindex = ifindex;
    request.mr_type = PACKET_MR_UNICAST;
    request.mr_alen = 6;
    memcpy(request.mr_address, mac, 6);
    return setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &request, sizeof(request));
}
#endif
