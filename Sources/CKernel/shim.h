#ifndef VIPFARM_CKERNEL_SHIM_H
#define VIPFARM_CKERNEL_SHIM_H
// Linux kernel interfaces that Swift cannot call directly: the TPACKET_V3 ring's structures (unions, a status word
// that needs atomics), packet-socket memberships, sendmmsg, and the TUN/TAP, ethtool and namespace calls (function-like
// macros, variadic ioctl, declarations hidden behind _GNU_SOURCE). Each helper is one call or one struct access.
// TapEngine (packets) and RouteSetup (TAP creation, namespaces, offloads) import it; nothing else does.
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/sched.h>
#include <linux/sockios.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

// UDP segmentation offload on TAP devices (Linux 6.2); older kernel headers do not name it.
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif

// --- TUN/TAP: TUNSETIFF, TUNSETPERSIST, TUNSETVNETHDRSZ and TUNSETOFFLOAD are function-like macros. ---

// Attaches a descriptor of /dev/net/tun to the TAP device `name`, creating it if it does not exist. With
// `offload_header`, every frame read or written carries a struct virtio_net_hdr first (IFF_VNET_HDR).
static inline int vipfarm_tap_attach(int fd, const char *name, int offload_header) {
    struct ifreq request;
    memset(&request, 0, sizeof(request));
    request.ifr_flags = IFF_TAP | IFF_NO_PI | (offload_header ? IFF_VNET_HDR : 0);
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    return ioctl(fd, TUNSETIFF, &request);
}

// Makes the attached TAP device outlive its descriptor (persistent = 1) or not (0).
static inline int vipfarm_tap_set_persist(int fd, int persistent) {
    return ioctl(fd, TUNSETPERSIST, (unsigned long)persistent);
}

// The size of the offload header in front of every frame (10: struct virtio_net_hdr).
static inline int vipfarm_tap_set_header_size(int fd, int size) {
    return ioctl(fd, TUNSETVNETHDRSZ, &size);
}

// The offloads the device takes: TUN_F_CSUM, TUN_F_TSO4, ... (unsigned long argument, not a pointer).
static inline int vipfarm_tap_set_offload(int fd, unsigned flags) {
    return ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags);
}

// --- Packet sockets ---

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
struct vipfarm_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};
static inline int vipfarm_send_frames(int fd, const unsigned char *data, const unsigned *lengths, unsigned count) {
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

// --- The TPACKET_V3 receive ring (tpacket structs hold unions; the block status word needs atomics) ---

// Whether the block belongs to user space now (acquire: its frames are visible once this says so).
static inline int vipfarm_block_ready(const void *block) {
    const struct tpacket_block_desc *desc = block;
    return (__atomic_load_n(&desc->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) != 0;
}

// Gives the block back to the kernel (release: every read of its frames happens before).
static inline void vipfarm_block_release(void *block) {
    struct tpacket_block_desc *desc = block;
    __atomic_store_n(&desc->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
}

static inline unsigned vipfarm_block_packets(const void *block) {
    return ((const struct tpacket_block_desc *)block)->hdr.bh1.num_pkts;
}

static inline const void *vipfarm_block_first_packet(const void *block) {
    const struct tpacket_block_desc *desc = block;
    return (const char *)block + desc->hdr.bh1.offset_to_first_pkt;
}

static inline const void *vipfarm_packet_next(const void *packet) {
    return (const char *)packet + ((const struct tpacket3_hdr *)packet)->tp_next_offset;
}

// What the ring says of one frame: where it starts (the destination MAC), the bytes copied and the frame's length on
// the wire (they differ when the filter or the ring cut it), the status bits (TP_STATUS_CSUMNOTREADY,
// TP_STATUS_VLAN_VALID, ...) and the VLAN tag the kernel took out of the frame.
struct vipfarm_packet_info {
    const unsigned char *frame;
    unsigned captured;
    unsigned length;
    unsigned status;
    unsigned short vlan_tci;
};
static inline struct vipfarm_packet_info vipfarm_packet_info(const void *packet) {
    const struct tpacket3_hdr *header = packet;
    struct vipfarm_packet_info info = {
        (const unsigned char *)packet + header->tp_mac, header->tp_snaplen, header->tp_len, header->tp_status,
        header->hv1.tp_vlan_tci,
    };
    return info;
}

// Frames the kernel dropped (ring full) since the last call; PACKET_STATISTICS resets on read.
static inline unsigned vipfarm_ring_drops(int fd) {
    struct tpacket_stats_v3 stats;
    socklen_t length = sizeof(stats);
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &stats, &length) < 0) return 0;
    return stats.tp_drops;
}

// --- ethtool: SIOCETHTOOL is an ioctl with a struct behind a pointer in struct ifreq ---

// Reads (ETHTOOL_GTXCSUM, ETHTOOL_GTSO, ETHTOOL_GGRO, ...) or sets (ETHTOOL_STXCSUM, ...) one offload of the
// interface `name`. Returns 0 and the value in *value, or -1 with errno set.
static inline int vipfarm_ethtool_value(const char *name, unsigned command, unsigned *value) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct ethtool_value request_value = { .cmd = command, .data = *value };
    struct ifreq request;
    memset(&request, 0, sizeof(request));
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    request.ifr_data = (char *)&request_value;
    int result = ioctl(fd, SIOCETHTOOL, &request);
    int saved = errno;
    close(fd);
    errno = saved;
    *value = request_value.data;
    return result;
}

// --- Network namespaces: <sched.h> declares unshare and setns only under _GNU_SOURCE (which would also change glibc
// types Swift's Glibc module sees), so they are declared here; CLONE_NEWNET comes from the kernel header. ---
extern int unshare(int flags);
extern int setns(int fd, int nstype);
static inline int vipfarm_unshare_network(void) { return unshare(CLONE_NEWNET); }
static inline int vipfarm_enter_network(int fd) { return setns(fd, CLONE_NEWNET); }
#endif
