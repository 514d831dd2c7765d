#!/bin/bash
# How many times the kernels of a farm run their receive path per HTTP request, through the VIP and straight to
# server 1: a count, not a speed, so it does not move with a noisy host as requests/s do. It builds the hand-built
# farm (scripts/handmade-farm.sh --gro, which ends in steady ownership), keeps it up, and runs wrk three times each way
# under `perf stat -a` with the kernel's net tracepoints: netif_receive_skb (a frame taken up a device's stack),
# netif_rx (a frame queued to a CPU's backlog), napi_gro_receive_entry (a frame handed to GRO) and
# net_dev_xmit. Prints the requests and each count per request.
#
# usage: scripts/receive-passes.sh [--delivery directed|flood] [--bin DIR]
# Needs root, perf (linux-perf) and what scripts/handmade-farm.sh needs. Everything it creates is removed at the end.
set -euo pipefail
DELIVERY=flood
BIN=.build/release
while [ $# -gt 0 ]; do
    case "$1" in
        --delivery) DELIVERY="$2"; shift 2 ;;
        --bin) BIN="$2"; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "receive-passes: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
command -v perf >/dev/null || { echo "receive-passes: perf is missing (make setup)" >&2; exit 2; }
cd "$(dirname "$0")/.."
OUT="$(mktemp /tmp/vipfarm-receive-passes-XXXXXX)"
# The farm stays up 60 s after its checks: time for six runs of 4 s.
HOLD=60 scripts/handmade-farm.sh --delivery "$DELIVERY" --gro --bin "$BIN" >"$OUT" 2>&1 &
FARM=$!
trap 'wait "$FARM" 2>/dev/null; rm -f "$OUT"' EXIT
for _ in $(seq 300); do grep -q "handmade farm: \(pass\|FAIL\)" "$OUT" && break; sleep 1; done
grep -q "handmade farm: pass" "$OUT" || { cat "$OUT"; echo "receive-passes: the farm did not come up" >&2; exit 1; }
CLIENT="$(awk 'NR == 1 {sub(":", "", $3); print $3}' "$OUT")-c1"
echo "farm $CLIENT, delivery $DELIVERY, $BIN; per request:"
for round in 1 2 3; do
    for target in "198.18.0.100 (VIP)" "198.18.0.11 (server 1)"; do
        address="${target%% *}"
        result=$(perf stat -a -x, -e net:netif_receive_skb,net:netif_rx,net:napi_gro_receive_entry,net:net_dev_xmit -- \
            ip netns exec "$CLIENT" wrk -t1 -c32 -d4s "http://$address/" 2>&1)
        echo "$result" | awk -v round="$round" -v target="$target" '
            /requests in/ { requests = $1 }
            /Requests\/sec/ { rate = $2 }
            /net:/ { split($0, field, ","); sub("net:", "", field[3])
                     counts = counts sprintf(" %s %.2f", field[3], field[1] / (requests ? requests : 1)) }
            END { printf "round %d %-24s %9d requests (%.0f/s):%s\n", round, target, requests, rate, counts }'
    done
done
