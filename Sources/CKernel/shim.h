#ifndef VIPFARM_CKERNEL_SHIM_H
#define VIPFARM_CKERNEL_SHIM_H
// Linux kernel interfaces that Swift cannot call directly: the TPACKET_V2 ring's slots (a status word that needs
// atomics), ancillary data, packet-socket memberships, sendmmsg, and the TUN/TAP, ethtool and namespace calls (function-like
// macros, variadic ioctl, declarations hidden behind _GNU_SOURCE). Each helper is one call or one struct access.
// TapEngine (packets) and RouteSetup (TAP creation, namespaces, offloads) import it; nothing else does.
#include <errno.h>
#include <time.h>  // before linux/errqueue.h, which uses struct timespec
#include <linux/errqueue.h>
#include <linux/ethtool.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/sched.h>
#include <linux/sockios.h>
#include <linux/sock_diag.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

// UDP segmentation offload on TAP devices (Linux 6.2); older kernel headers do not name it.
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif

// The calling thread's ID (glibc's gettid() is hidden behind _GNU_SOURCE).
static inline int vipfarm_thread_id(void) { return (int)syscall(SYS_gettid); }

// Moves thread `tid` onto CPU `cpu`, then gives it back the CPUs it had: a thread queued on a CPU that cannot schedule
// (a long kernel section without a preemption point) moves without that CPU's help and runs at once. Raw system calls:
// the glibc wrappers and CPU_SET are declared only under _GNU_SOURCE.
static inline int vipfarm_move_thread(int tid, unsigned cpu) {
    unsigned long saved[16], one[16];
    long size = syscall(SYS_sched_getaffinity, tid, sizeof saved, saved);
    if (size <= 0 || cpu >= (unsigned long)size * 8) return -1;
    memset(one, 0, sizeof one);
    one[cpu / (8 * sizeof(unsigned long))] = 1UL << (cpu % (8 * sizeof(unsigned long)));
    if (syscall(SYS_sched_setaffinity, tid, (size_t)size, one) != 0) return -1;
    return (int)syscall(SYS_sched_setaffinity, tid, (size_t)size, saved);
}

// The CPU the calling thread runs on (-1 if unknown).
static inline int vipfarm_current_cpu(void) {
    unsigned cpu = 0;
    return syscall(SYS_getcpu, &cpu, NULL, NULL) == 0 ? (int)cpu : -1;
}

// An eventfd that wakes a thread waiting in poll: created non-blocking; a wake adds one, a clear reads it back to 0.
static inline int vipfarm_wake_create(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
static inline void vipfarm_wake(int fd) {
    uint64_t one = 1;
    (void)!write(fd, &one, sizeof one);
}
static inline void vipfarm_wake_clear(int fd) {
    uint64_t count;
    (void)!read(fd, &count, sizeof count);
}

// Names the calling thread (15 characters at most) for ps, top and perf; prctl is variadic.
static inline int vipfarm_name_thread(const char *name) { return prctl(PR_SET_NAME, name, 0, 0, 0); }

// The hardware address of the interface `name` in this process's network namespace (sysfs shows the namespace of
// whoever mounted it): 0 with the six bytes in `mac`, or -1 with errno set.
static inline int vipfarm_interface_mac(const char *name, unsigned char mac[6]) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    int result = ioctl(fd, SIOCGIFHWADDR, &request);
    int saved = errno;
    close(fd);
    errno = saved;
    if (result != 0) return -1;
    memcpy(mac, request.ifr_hwaddr.sa_data, 6);
    return 0;
}

// When the last datagram read from `fd` reached the socket (CLOCK_REALTIME, ns): 0, or -1 with errno set (ENOENT:
// none yet). SIOCGSTAMPNS is a variadic ioctl.
static inline int vipfarm_socket_arrival(int fd, long long *nanoseconds) {
    struct timespec stamp;
    if (ioctl(fd, SIOCGSTAMPNS, &stamp) != 0) return -1;
    *nanoseconds = (long long)stamp.tv_sec * 1000000000LL + stamp.tv_nsec;
    return 0;
}

// --- TUN/TAP: TUNSETIFF, TUNSETPERSIST, TUNSETVNETHDRSZ and TUNSETOFFLOAD are function-like macros. ---

// Attaches a descriptor of /dev/net/tun to the TAP device `name`, creating it if it does not exist. With
// `offload_header`, every frame read or written carries a struct virtio_net_hdr first (IFF_VNET_HDR). With
// `multi_queue` the descriptor is one queue of a multi-queue device (IFF_MULTI_QUEUE); the kernel refuses it (EINVAL)
// on a device created without, and the reverse.
static inline int vipfarm_tap_attach(int fd, const char *name, int offload_header, int multi_queue) {
    struct ifreq request;
    memset(&request, 0, sizeof(request));
    request.ifr_flags = IFF_TAP | IFF_NO_PI | (offload_header ? IFF_VNET_HDR : 0) | (multi_queue ? IFF_MULTI_QUEUE : 0);
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

// Sends up to 64 frames with one sendmmsg(2): frame i at frames[i], lengths[i] bytes (the director's forwards, in
// their ring slots; the generator's prebuilt frames). <sys/socket.h> declares sendmmsg and struct mmsghdr only under
// _GNU_SOURCE (which would change glibc types Swift's Glibc module sees), so this uses the kernel's layout and the raw
// system call. Returns the frames sent, or -1 with errno set.
struct vipfarm_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};
static inline int vipfarm_send_frames(int fd, void *const *frames, const unsigned *lengths, unsigned count) {
    struct iovec vectors[64];
    struct vipfarm_mmsghdr headers[64];
    if (count > 64) count = 64;
    memset(headers, 0, sizeof(headers[0]) * count);
    for (unsigned i = 0; i < count; i++) {
        vectors[i].iov_base = frames[i];
        vectors[i].iov_len = lengths[i];
        headers[i].msg_hdr.msg_iov = &vectors[i];
        headers[i].msg_hdr.msg_iovlen = 1;
    }
    return (int)syscall(SYS_sendmmsg, fd, headers, count, 0);
}

// Receives up to `count` (at most 64) datagrams with one recvmmsg(2), without waiting: datagram i lands in
// `buffers + i * slot_size` (cut to `slot_size`), its length in lengths[i] and its sender in sources[i] (an IPv4
// sender as a sockaddr_in in the same storage). Returns the datagrams received, or -1 with errno set.
static inline int vipfarm_receive_datagrams(int fd, unsigned char *buffers, unsigned slot_size, unsigned count,
                                            unsigned *lengths, struct sockaddr_in6 *sources) {
    struct iovec vectors[64];
    struct vipfarm_mmsghdr headers[64];
    if (count > 64) count = 64;
    memset(headers, 0, sizeof(headers[0]) * count);
    for (unsigned i = 0; i < count; i++) {
        vectors[i].iov_base = buffers + (unsigned long)i * slot_size;
        vectors[i].iov_len = slot_size;
        headers[i].msg_hdr.msg_iov = &vectors[i];
        headers[i].msg_hdr.msg_iovlen = 1;
        headers[i].msg_hdr.msg_name = &sources[i];
        headers[i].msg_hdr.msg_namelen = sizeof(sources[i]);
    }
    int received = (int)syscall(SYS_recvmmsg, fd, headers, count, MSG_DONTWAIT, NULL);
    for (int i = 0; i < received; i++) lengths[i] = headers[i].msg_len;
    return received;
}

// Datagrams the kernel dropped for this socket since it opened (its filter refused them, or its queue was full):
// SK_MEMINFO_DROPS of SO_MEMINFO, or 0.
static inline unsigned vipfarm_socket_drops(int fd) {
    unsigned values[SK_MEMINFO_VARS];
    socklen_t length = sizeof(values);
    if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, values, &length) < 0 || length < sizeof(values)) return 0;
    return values[SK_MEMINFO_DROPS];
}

// --- The TPACKET_V2 receive ring: one slot per frame, each with its own status word (atomics) ---

// Whether the slot holds a frame for user space (acquire: the frame is visible once this says so); its status bits.
static inline unsigned vipfarm_slot_status(const void *slot) {
    return __atomic_load_n(&((const struct tpacket2_hdr *)slot)->tp_status, __ATOMIC_ACQUIRE);
}

// Gives the slot back to the kernel (release: every read of its frame happens before).
static inline void vipfarm_slot_release(void *slot) {
    __atomic_store_n(&((struct tpacket2_hdr *)slot)->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
}

// What the ring says of one frame: where it starts (the destination MAC), the bytes copied and the frame's length on
// the wire (they differ when the filter or the slot cut it), the status bits (TP_STATUS_COPY, TP_STATUS_VLAN_VALID,
// ...) and the VLAN tag the kernel took out of the frame.
struct vipfarm_packet_info {
    const unsigned char *frame;
    unsigned captured;
    unsigned length;
    unsigned status;
    unsigned short vlan_tci;
};
static inline struct vipfarm_packet_info vipfarm_slot_info(const void *slot) {
    const struct tpacket2_hdr *header = slot;
    struct vipfarm_packet_info info = {
        (const unsigned char *)slot + header->tp_mac, header->tp_snaplen, header->tp_len, header->tp_status,
        header->tp_vlan_tci,
    };
    return info;
}

// Bytes of ring slot that come before the frame's MAC header (the slot header, alignment, and the offload header).
static inline unsigned vipfarm_slot_overhead(void) {
    return TPACKET_ALIGN(TPACKET2_HDRLEN) + 16 + 10 + 16;
}

// Reads the next frame of the socket's queue (a frame too long for its ring slot, TP_STATUS_COPY), its offload
// header first, without waiting; its VLAN tag from PACKET_AUXDATA. Returns the bytes read, or -1 (errno).
static inline long vipfarm_receive_copied(int fd, void *buffer, unsigned long size, unsigned *vlan_valid,
                                          unsigned short *vlan_tci) {
    struct iovec vector = { buffer, size };
    union { struct cmsghdr align; char bytes[CMSG_SPACE(sizeof(struct tpacket_auxdata))]; } control;
    struct msghdr message = { 0 };
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = control.bytes;
    message.msg_controllen = sizeof(control.bytes);
    long count = recvmsg(fd, &message, MSG_DONTWAIT | MSG_TRUNC);
    *vlan_valid = 0;
    *vlan_tci = 0;
    if (count < 0) return -1;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level == SOL_PACKET && header->cmsg_type == PACKET_AUXDATA) {
            const struct tpacket_auxdata *aux = (const void *)CMSG_DATA(header);
            *vlan_valid = (aux->tp_status & TP_STATUS_VLAN_VALID) != 0;
            *vlan_tci = aux->tp_vlan_tci;
        }
    }
    return count;
}

// Sleeps `microseconds` on the calling thread, as exactly as the kernel can (timer slack 1 µs for this thread, set at
// its first nap: the default 50 µs would double a short nap), or until `wake_fd` (an eventfd) becomes readable:
// a nap must not hold up a new state. ppoll through syscall(): glibc declares it only under _GNU_SOURCE.
static inline void vipfarm_nap(unsigned microseconds, int wake_fd) {
    static __thread int precise;
    if (!precise) precise = prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0) == 0;
    struct timespec duration = { 0, (long)microseconds * 1000 };
    struct pollfd waker = { wake_fd, POLLIN, 0 };
    syscall(SYS_ppoll, &waker, 1, &duration, NULL, 8);
}

// Waits up to `microseconds` for `fd` to become readable (or to hold an error): 1 if it is, 0 if not, -1 on error.
// ppoll, to the microsecond where poll rounds up to the millisecond.
static inline int vipfarm_wait_readable(int fd, long microseconds) {
    struct timespec duration = { microseconds / 1000000, (microseconds % 1000000) * 1000 };
    struct pollfd poller = { fd, POLLIN, 0 };
    return (int)syscall(SYS_ppoll, &poller, 1, &duration, NULL, 8);
}

// The interface's MTU (SIOCGIFMTU), or -1.
static inline int vipfarm_interface_mtu(int fd, const char *name) {
    struct ifreq request = { 0 };
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFMTU, &request) < 0) return -1;
    return request.ifr_mtu;
}

// The index of interface `name` (SIOCGIFINDEX) and its flags (SIOCGIFFLAGS: IFF_UP, IFF_RUNNING, ...), asked on
// `fd` (any AF_INET datagram socket, kept open by the caller); -1 (errno set) if there is no such interface.
static inline int vipfarm_interface_state(int fd, const char *name, int *index, int *flags) {
    struct ifreq request = { 0 };
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFINDEX, &request) < 0) return -1;
    *index = request.ifr_ifindex;
    if (ioctl(fd, SIOCGIFFLAGS, &request) < 0) return -1;
    *flags = request.ifr_flags;
    return 0;
}

// Frames the kernel dropped (ring full) since the last call; PACKET_STATISTICS resets on read.
static inline unsigned vipfarm_ring_drops(int fd) {
    struct tpacket_stats stats;
    socklen_t length = sizeof(stats);
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &stats, &length) < 0) return 0;
    return stats.tp_drops;
}

// --- PACKET_FANOUT: the engine's rings share the interface's frames, one thread each. ---

// Joins `fd` (bound) to a new fanout group of mode PACKET_FANOUT_CBPF whose id the kernel picks (so that it is never
// another program's group); returns the id, or -1.
static inline int vipfarm_fanout_create(int fd) {
    int value = (PACKET_FANOUT_CBPF | PACKET_FANOUT_FLAG_UNIQUEID) << 16;  // the id (low 16 bits) is 0
    if (setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &value, sizeof(value)) != 0) return -1;
    socklen_t length = sizeof(value);
    if (getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &value, &length) != 0) return -1;
    return value & 0xFFFF;
}

// Joins `fd` (bound) to the fanout group `id` made by vipfarm_fanout_create.
static inline int vipfarm_fanout_join(int fd, int id) {
    int value = (id & 0xFFFF) | (PACKET_FANOUT_CBPF << 16);
    return setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &value, sizeof(value));
}

// The classic BPF program that picks a group member for each frame (its result modulo the members).
static inline int vipfarm_fanout_program(int fd, struct sock_fprog *program) {
    return setsockopt(fd, SOL_PACKET, PACKET_FANOUT_DATA, program, sizeof(*program));
}

// --- ICMP errors a UDP socket's datagrams met (IP_RECVERR / IPV6_RECVERR) ---

// Takes one message from the socket's error queue without waiting: the datagram of ours that an ICMP error quoted
// (as far as it was quoted) into `payload`, where it was sent in `destination`, and the error's origin, type and
// code. Returns the datagram's length, or -1 (errno EAGAIN: the queue is empty).
static inline long vipfarm_receive_error(int fd, void *payload, unsigned long size, struct sockaddr_in6 *destination,
                                         unsigned char *origin, unsigned char *type, unsigned char *code) {
    char control[256];
    struct iovec vector = { payload, size };
    struct msghdr message;
    memset(&message, 0, sizeof(message));
    memset(destination, 0, sizeof(*destination));
    message.msg_name = destination;
    message.msg_namelen = sizeof(*destination);
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
    long count = recvmsg(fd, &message, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (count < 0) return -1;
    *origin = 0;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
        if ((header->cmsg_level == IPPROTO_IP && header->cmsg_type == IP_RECVERR) ||
            (header->cmsg_level == IPPROTO_IPV6 && header->cmsg_type == IPV6_RECVERR)) {
            struct sock_extended_err *error = (struct sock_extended_err *)CMSG_DATA(header);
            *origin = error->ee_origin;
            *type = error->ee_type;
            *code = error->ee_code;
        }
    }
    return count;
}

// --- Local sockets: struct ucred is declared only under _GNU_SOURCE ---

// The user and group of the process at the other end of a connected Unix socket (SO_PEERCRED); 0, or -1 (errno).
struct vipfarm_ucred { int pid; unsigned uid; unsigned gid; };
static inline int vipfarm_peer_credentials(int fd, unsigned *uid, unsigned *gid) {
    struct vipfarm_ucred credentials;
    socklen_t length = sizeof(credentials);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) < 0) return -1;
    *uid = credentials.uid;
    *gid = credentials.gid;
    return 0;
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

// Asks the CPU to bring the cache line at `address` in, for writing, while the caller works on something else (the
// flow table's sets are larger than the caches). Swift has no prefetch of its own.
static inline void vipfarm_prefetch(const void *address) { __builtin_prefetch(address, 1, 3); }
#endif
