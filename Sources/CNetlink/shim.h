#ifndef VIPFARM_CNETLINK_SHIM_H
#define VIPFARM_CNETLINK_SHIM_H
// libnl-3 and libnl-route-3 for RouteSetup. Only RouteSetup imports this module.
#include <netlink/netlink.h>
#include <netlink/version.h>
#include <netlink/route/link.h>
#endif
