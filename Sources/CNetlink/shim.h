#ifndef VIPFARM_CNETLINK_SHIM_H
#define VIPFARM_CNETLINK_SHIM_H
// libnl-3 and libnl-route-3 for RouteSetup (the other kernel calls it needs are in CKernel).
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

#endif
