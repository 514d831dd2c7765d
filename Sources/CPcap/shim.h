#ifndef VIPFARM_CPCAP_SHIM_H
#define VIPFARM_CPCAP_SHIM_H
// libpcap for TapEngine. Only TapEngine imports this module.
#include <pcap/pcap.h>
#endif
