#ifndef VIPFARM_CNETLINK_SHIM_H
#define VIPFARM_CNETLINK_SHIM_H
// libnl-3 and libnl-route-3 for RouteSetup, plus the few kernel interfaces RouteSetup needs that Swift cannot call.
// Only RouteSetup imports this module.
#include <netlink/netlink.h>
#include <netlink/version.h>
#include <netlink/errno.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/vlan.h>
#include <netlink/route/addr.h>
#include <netlink/route/route.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/rule.h>
#include <netlink/route/neighbour.h>

#include <fcntl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/sched.h>

// TUNSETIFF and TUNSETPERSIST are function-like macros and ioctl is variadic: Swift can call neither.
// Attaches (or creates) the TAP device `name` on a /dev/net/tun descriptor; returns ioctl's result.
static inline int vipfarm_tun_set_tap(int fd, const char *name) {
    struct ifreq request;
    memset(&request, 0, sizeof(request));
    request.ifr_flags = IFF_TAP | IFF_NO_PI;
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    return ioctl(fd, TUNSETIFF, &request);
}

// Makes the attached TAP device outlive its descriptor (persistent = 1) or not (0).
static inline int vipfarm_tun_set_persist(int fd, int persistent) {
    return ioctl(fd, TUNSETPERSIST, (unsigned long)persistent);
}
// <sched.h> declares unshare and setns only under _GNU_SOURCE, which would also change glibc types that Swift's
// Glibc module sees (fd_set) and break the build; so they are declared here, and CLONE_NEWNET comes from the kernel
// header.
extern int unshare(int flags);
extern int setns(int fd, int nstype);
static inline int vipfarm_unshare_network(void) { return unshare(CLONE_NEWNET); }
static inline int vipfarm_enter_network(int fd) { return setns(fd, CLONE_NEWNET); }
// Turns transmit checksum offload on or off (ethtool -K IF tx on|off): SIOCETHTOOL is an ioctl with a struct.
// Returns 0, or -1 with errno set.
#include <linux/ethtool.h>
#include <linux/sockios.h>
static inline int vipfarm_set_tx_checksum(const char *name, int enabled) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct ethtool_value value = { .cmd = ETHTOOL_STXCSUM, .data = enabled ? 1 : 0 };
    struct ifreq request;
    memset(&request, 0, sizeof(request));
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    request.ifr_data = (char *)&value;
    int result = ioctl(fd, SIOCETHTOOL, &request);
    int saved = errno;
    close(fd);
    errno = saved;
    return result;
}
#endif
