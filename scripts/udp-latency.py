#!/usr/bin/env python3
"""One UDP request at a time to an echo service (`lbbench serve`, port 9000), from 48 client ports so that the
requests spread over the farm's buckets: the latency a request/response service (DNS, say) sees through the VIP.

usage: ip netns exec <client namespace> python3 scripts/udp-latency.py VIP [COUNT] [SOURCE]
Prints the requests answered and lost, and the median and p99 round trip in microseconds."""
import socket
import statistics
import sys
import time

vip = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 1500
source = sys.argv[3] if len(sys.argv) > 3 else "198.18.0.1"
sockets = []
for index in range(48):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 30000 + index))
    s.settimeout(0.2)
    sockets.append(s)
rtts, lost = [], 0
for n in range(count):
    s = sockets[n % len(sockets)]
    request = n.to_bytes(8, "big")
    started = time.perf_counter_ns()
    s.sendto(request, (vip, 9000))
    try:
        # The echo answers with the server's ID (2 bytes), then the request.
        while s.recv(100)[2:10] != request:
            pass
        rtts.append((time.perf_counter_ns() - started) / 1000)
    except socket.timeout:
        lost += 1
    time.sleep(0.002)
rtts.sort()
print(f"udp one at a time: {len(rtts)} answered, {lost} lost, median {statistics.median(rtts):.0f} us, "
      f"p99 {rtts[int(len(rtts) * 0.99)]:.0f} us")
