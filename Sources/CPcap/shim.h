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
// --- The TPACKET_V3 receive ring, read directly (tpacket structs hold unions; the status word needs atomics). ---
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/filter.h>
#include <sys/mman.h>

// Opens a packet socket with a TPACKET_V3 receive ring of `block_count` blocks of `block_size` bytes (a block is
// handed to user space when full or after `timeout_ms`), attaches `program` (from pcap_compile), ignores outgoing
// frames, maps the ring into *ring and binds to `ifindex`. Returns the socket, or -1 with errno set.
static inline int vipfarm_ring_open(int ifindex, const struct bpf_program *program, unsigned block_size,
                                    unsigned block_count, unsigned timeout_ms, void **ring) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (fd < 0) return -1;
    int version = TPACKET_V3, one = 1;
    struct sock_fprog filter = { .len = (unsigned short)program->bf_len, .filter = (struct sock_filter *)program->bf_insns };
    struct tpacket_req3 request;
    memset(&request, 0, sizeof(request));
    request.tp_block_size = block_size;
    request.tp_block_nr = block_count;
    request.tp_frame_size = 2048;
    request.tp_frame_nr = block_size / 2048 * block_count;
    request.tp_retire_blk_tov = timeout_ms;
    struct sockaddr_ll address;
    memset(&address, 0, sizeof(address));
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = ifindex;
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &filter, sizeof(filter)) < 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof(version)) < 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &request, sizeof(request)) < 0) {
        int saved = errno; close(fd); errno = saved; return -1;
    }
    void *mapped = mmap(NULL, (size_t)block_size * block_count, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (mapped == MAP_FAILED || bind(fd, (struct sockaddr *)&address, sizeof(address)) < 0) {
        int saved = errno;
        if (mapped != MAP_FAILED) munmap(mapped, (size_t)block_size * block_count);
        close(fd); errno = saved; return -1;
    }
    *ring = mapped;
    return fd;
}

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

// The frame's bytes (from the destination MAC on) and their count.
static inline const unsigned char *vipfarm_packet_frame(const void *packet, unsigned *length) {
    const struct tpacket3_hdr *header = packet;
    *length = header->tp_snaplen;
    return (const unsigned char *)packet + header->tp_mac;
}

// Frames the kernel dropped (ring full) since the last call; PACKET_STATISTICS resets on read.
static inline unsigned vipfarm_ring_drops(int fd) {
    struct tpacket_stats_v3 stats;
    socklen_t length = sizeof(stats);
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &stats, &length) < 0) return 0;
    return stats.tp_drops;
}
#endif
