#ifndef VIPFARM_CPCAP_SHIM_H
#define VIPFARM_CPCAP_SHIM_H
// libpcap, for TapEngine's kernel filter (pcap_compile turns the farm's filter expression into classic BPF).
// Only TapEngine imports this module.
#include <pcap/pcap.h>
#endif
