#!/usr/bin/env bash
# A farm built by hand with iproute2, as a new user builds one: none of vipfarm's testbed code, and every host keeps
# the offloads the kernel gives a veth (checksum offload, TSO; with --gro, GRO on the servers' NICs as a physical NIC
# or virtio-net has it). A Linux bridge in its own namespace is the switch; three servers run `lbnode run` with the
# documented configuration, Debian's nginx, an iperf3 server and `lbbench serve`; one client runs the checks:
#   1. `lbbench failover --vip`, N times: UDP and TCP flows answered exactly once, then server 2's lbnode killed
#      (SIGKILL) and started again: recovery time, the longest gap a client saw, requests lost, resets of
#      connections on servers that stayed up.
#   2. once the handover windows of the restarts are over (steady ownership, as a farm runs): wrk against nginx
#      through the VIP (requests/s, 0 errors), then straight to server 1 (the reference).
#   3. iperf3 TCP upload and download through the VIP and straight to server 1, and UDP at a fixed rate.
#   4. what each lbnode's heartbeat loop spent on state changes (a view change's build and swap) and its longest turn.
#   In flood delivery, wrk and the uploads also straight to server 1 with the switch flooding its frames to every
#   port, as it floods the VIP's: what flooding costs this machine, apart from what vipfarm costs.
# Prints the figures and "handmade farm: pass" or "handmade farm: FAIL: <why>" (exit 1). Everything it creates
# (namespaces, processes, files) is removed when it ends, also on failure or Ctrl-C, except after a FAIL the logs of
# every program (the lbnodes', the failover checks' JSON), whose directory it names.
#
# usage: scripts/handmade-farm.sh [--delivery directed|flood] [--gro] [--bin DIR] [--seconds N] [--trials N]
#                                 [--recovery-limit MS]   (the longest recovery that passes; default 50)
#                                 [--heartbeat MS/N]      (heartbeat interval and dead_after; default: lbnode's)
#                                 [--buckets N]           (the farm's bucket count; default: lbnode's, 4096)
#                                 [--measure-at-once]     (no wait for steady ownership: checks, not figures)
# Needs root, lbnode and lbbench built (default .build/release), and `make setup`'s packages.
# HOLD=SECONDS keeps the farm up that long at the end (pass or fail), to look around with `ip netns exec`.
# KERNEL_DELIVERY=off runs the nodes with `kernel_delivery: off` (the engine delivers every frame).
set -euo pipefail

DELIVERY=directed
GRO=off
BIN="$(cd "$(dirname "$0")/.." && pwd)/.build/release"
SECONDS_PER_RUN=3
TRIALS=5
RECOVERY_LIMIT=50
HEARTBEAT=""  # lbnode's defaults
BUCKETS=""
STEADY_WAIT=on
while [ $# -gt 0 ]; do
    case "$1" in
        --delivery) DELIVERY="$2"; shift 2 ;;
        --gro) GRO=on; shift ;;
        --bin) BIN="$2"; shift 2 ;;
        --seconds) SECONDS_PER_RUN="$2"; shift 2 ;;
        --trials) TRIALS="$2"; shift 2 ;;
        --recovery-limit) RECOVERY_LIMIT="$2"; shift 2 ;;
        --heartbeat) HEARTBEAT="heartbeat_interval_ms: ${2%/*}, dead_after: ${2#*/}"; shift 2 ;;
        --buckets) BUCKETS="buckets: $2"; shift 2 ;;
        --measure-at-once) STEADY_WAIT=off; shift ;;
        -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "handmade-farm: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$DELIVERY" in directed|flood) ;; *) echo "handmade-farm: --delivery is directed or flood" >&2; exit 2 ;; esac
for program in "$BIN/lbnode" "$BIN/lbbench" /usr/sbin/nginx /usr/bin/iperf3 /usr/bin/wrk; do
    [ -x "$program" ] || { echo "handmade-farm: $program is missing (swift build -c release; make setup)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "handmade-farm: needs root (network namespaces)" >&2; exit 2; }

ID="hf$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')"
DIR="$(mktemp -d /tmp/vipfarm-handmade-XXXXXX)"
VIP=198.18.0.100
SWITCH="$ID-sw"
CLIENT="$ID-c1"
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for namespace in "$CLIENT" "$ID-s1" "$ID-s2" "$ID-s3" "$SWITCH"; do ip netns del "$namespace" 2>/dev/null || true; done
    if [ "$KEEP_LOGS" = yes ]; then
        rm -rf "$DIR"/state* "$DIR"/*.sock "$DIR/key"
        echo "handmade farm: the logs are kept in $DIR"
    else
        rm -rf "$DIR"
    fi
}
KEEP_LOGS=no
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "handmade farm: FAIL: $*"
    KEEP_LOGS=yes
    # What each node sees now (buckets, handovers, engine counters), kept beside its log.
    for n in 1 2 3; do "$BIN/lbnode" status --config "$DIR/n$n.yaml" --json >"$DIR/status$n.json" 2>&1 || true; done
    [ -n "${HOLD:-}" ] && sleep "$HOLD"
    for n in 1 2 3; do echo "--- lbnode $n"; tail -n 20 "$DIR/lbnode$n.log"; done
    exit 1
}
in_ns() { local namespace="$1"; shift; ip netns exec "$namespace" "$@"; }
# Starts a program in a namespace in the background; its PID is ended when the script ends. A restarted program
# adds to its log.
start() { local namespace="$1" log="$2"; shift 2; ip netns exec "$namespace" "$@" >>"$log" 2>&1 & PIDS+=("$!"); }

# The switch: a learning bridge, as a rack switch or a hypervisor's vswitch.
ip netns add "$SWITCH"
in_ns "$SWITCH" ip link add br0 type bridge
in_ns "$SWITCH" ip link set br0 up
attach() {  # namespace, address
    ip netns add "$1"
    ip link add eth0 netns "$1" type veth peer name "p-$1" netns "$SWITCH"
    in_ns "$SWITCH" ip link set "p-$1" master br0 up
    in_ns "$1" ip link set lo up
    in_ns "$1" ip link set eth0 up
    in_ns "$1" ip addr add "$2/24" dev eth0
}
for n in 1 2 3; do
    attach "$ID-s$n" "198.18.0.1$n"
    if [ "$GRO" = on ]; then
        # A veth merges only what a peer without TSO sends it, as a NIC merges what arrives from the wire.
        in_ns "$ID-s$n" ethtool -K eth0 gro on >/dev/null
        in_ns "$SWITCH" ethtool -K "p-$ID-s$n" tso off >/dev/null
    fi
done
attach "$CLIENT" 198.18.0.1

# The farm, as docs/configuration.md documents it.
"$BIN/lbnode" keygen "$DIR/key" >/dev/null
for n in 1 2 3; do
    {
        echo "farm: { name: handmade, vip: $VIP, delivery: $DELIVERY, key_file: $DIR/key${HEARTBEAT:+, $HEARTBEAT}${BUCKETS:+, $BUCKETS} }"
        echo "node: { id: $n, interface: eth0, address: 198.18.0.1$n${KERNEL_DELIVERY:+, kernel_delivery: $KERNEL_DELIVERY} }"
        echo "control_socket: $DIR/n$n.sock"
        echo "peers:"
        for m in 1 2 3; do [ "$m" = "$n" ] || echo "  - { id: $m, address: 198.18.0.1$m }"; done
        echo "rules:"
        echo "  - { protocol: any, ports: \"5201\", mode: balanced, affinity: single }"
    } >"$DIR/n$n.yaml"
    # On the server itself: check looks at its interface and addresses too.
    in_ns "$ID-s$n" "$BIN/lbnode" check --config "$DIR/n$n.yaml" >/dev/null || fail "lbnode check refused n$n.yaml"
    cat >"$DIR/nginx$n.conf" <<NGINX
daemon off; master_process off; worker_processes 1; pid $DIR/nginx$n.pid; error_log $DIR/nginx$n.log warn;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $DIR/b$n; proxy_temp_path $DIR/p$n; fastcgi_temp_path $DIR/f$n;
       uwsgi_temp_path $DIR/u$n; scgi_temp_path $DIR/s$n; keepalive_requests 1000000;
       server { listen 80 reuseport; location / { return 200 "server $n\n"; } } }
NGINX
    start "$ID-s$n" "$DIR/lbnode$n.log" "$BIN/lbnode" run --config "$DIR/n$n.yaml" --state-dir "$DIR/state$n"
    eval "LBNODE$n=\$!"
    start "$ID-s$n" "$DIR/nginx$n.out" /usr/sbin/nginx -c "$DIR/nginx$n.conf" -e "$DIR/nginx$n.log"
    # A UDP server must answer from the address the datagram came to; iperf3 answers from the address it is bound to,
    # so one iperf3 on the VIP (bound before lbnode puts the VIP up: ip_nonlocal_bind) and one on the own address.
    in_ns "$ID-s$n" sh -c "echo 1 > /proc/sys/net/ipv4/ip_nonlocal_bind"
    start "$ID-s$n" "$DIR/iperf$n.log" /usr/bin/iperf3 -s -B "$VIP" -p 5201
    start "$ID-s$n" "$DIR/iperf$n-own.log" /usr/bin/iperf3 -s -B "198.18.0.1$n" -p 5201
    start "$ID-s$n" "$DIR/serve$n.log" "$BIN/lbbench" serve --id "$n" --vip "$VIP"
done

# Waits until every node's last view line shows all three nodes.
wait_for_view() {
    for _ in $(seq 100); do
        agreed=0
        for n in 1 2 3; do
            grep " view " "$DIR/lbnode$n.log" | tail -n 1 | grep -q -- "-> {1:100, 2:100, 3:100}" && agreed=$((agreed + 1))
        done
        [ "$agreed" = 3 ] && { sleep 0.5; return 0; }
        sleep 0.1
    done
    fail "the nodes did not agree on a view within 10 s"
}
wait_for_view
echo "handmade farm $ID: delivery $DELIVERY, GRO on servers: $GRO; offloads of server 1's eth0:"
in_ns "$ID-s1" ethtool -k eth0 | grep -E "^(rx-checksumming|tx-checksumming|tcp-segmentation-offload|generic-receive-offload):" | sed 's/^/  /'

# 1. Exactly once, then server 2's lbnode killed; it comes back, and again.
for trial in $(seq "$TRIALS"); do
    in_ns "$CLIENT" "$BIN/lbbench" failover --vip "$VIP" --fail-command "kill -KILL $LBNODE2" --json \
        >"$DIR/failover$trial.json" 2>"$DIR/failover.log" || { cat "$DIR/failover.log"; fail "lbbench failover --vip"; }
    grep "command ended after" "$DIR/failover.log" || true
    start "$ID-s2" "$DIR/lbnode2.log" "$BIN/lbnode" run --config "$DIR/n2.yaml" --state-dir "$DIR/state2"
    LBNODE2=$!
    wait_for_view
done
python3 - "$RECOVERY_LIMIT" "$DIR"/failover*.json <<'PY' || fail "failover figures (recovery and longest gap under $RECOVERY_LIMIT ms, no duplicate, no reset elsewhere)"
import json, sys
limit = float(sys.argv[1])
trials = [json.load(open(path))["trials"][0] for path in sys.argv[2:]]
# No recovery at all counts as endless; 0 ms (another server answered before the victim's last answer) is a recovery.
recovery = sorted(float("inf") if t.get("recoveryMilliseconds") is None else t["recoveryMilliseconds"] for t in trials)
# What the victim's clients saw: the longest time one of its flows went without an answer.
gap = max(t["longestInterruptionMilliseconds"] for t in trials)
print(f"failover, {len(trials)} kills of server 2's lbnode: recovery median {recovery[len(recovery) // 2]:.1f} ms, "
      f"max {recovery[-1]:.1f} ms; longest gap {gap:.1f} ms; {sum(t['requestsLost'] for t in trials)} requests lost, "
      f"{sum(t['duplicates'] for t in trials)} duplicates, "
      f"{sum(t['tcpResetUnaffected'] for t in trials)} resets of connections on servers that stayed up")
for number, trial in enumerate(trials, 1):
    for d in trial.get("duplicateExamples") or []:
        print(f"  kill {number}: {'TCP' if d['isTCP'] else 'UDP'} flow {d['flow']} request {d['sequence']} answered by "
              f"server {d['servers'][0]} then {d['servers'][1]}, {d['millisecondsAfterFailure']:+.1f} ms after the kill")
sys.exit(0 if recovery[-1] < limit and gap < limit and not any(t["duplicates"] or t["tcpResetUnaffected"] for t in trials) else 1)
PY

# Measured in steady ownership, as a farm runs: the last restart of server 2 opened a handover window (30 s) in which
# the moved buckets stay with the engines instead of the kernel's delivery. Every node's last "handover window over"
# comes after its last view change; a view change that opens no window (a node fenced for a moment on a busy host)
# leaves none to wait for, so after 35 s the figures are taken anyway, and the script says so.
wait_for_steady() {
    for tenth in $(seq 350); do
        steady=0
        for n in 1 2 3; do
            last=$(grep -n -e " view " -e "handover window over" "$DIR/lbnode$n.log" | tail -n 1)
            case "$last" in *"handover window over"*) steady=$((steady + 1)) ;; esac
        done
        [ "$steady" = 3 ] && { echo "handover windows over (waited $((tenth / 10)) s): steady ownership"; sleep 0.1; return 0; }
        sleep 0.1
    done
    echo "handover windows: not every node logged the end of one after its last view change within 35 s; measuring anyway"
}
if [ "$STEADY_WAIT" = on ]; then
    wait_for_steady
else
    echo "measuring at once (--measure-at-once): the last restart's handover window may still be open"
fi

# 2. nginx under wrk through the VIP.
in_ns "$CLIENT" wrk -t1 -c32 -d"${SECONDS_PER_RUN}s" --timeout 2s "http://$VIP/" >"$DIR/wrk.out" 2>&1 || fail "wrk"
rate=$(awk '/Requests\/sec/ {print $2}' "$DIR/wrk.out")
errors=$(awk '/Socket errors|Non-2xx/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) sum += $i} END {print sum + 0}' "$DIR/wrk.out")
echo "wrk through the VIP: $rate requests/s, $errors errors"
[ "$errors" = 0 ] || fail "wrk saw $errors errors"
in_ns "$CLIENT" wrk -t1 -c32 -d"${SECONDS_PER_RUN}s" --timeout 2s "http://198.18.0.11/" >"$DIR/wrk-direct.out" 2>&1 ||
    fail "wrk straight to server 1"
direct=$(awk '/Requests\/sec/ {print $2}' "$DIR/wrk-direct.out")
ratio=$(awk -v v="$rate" -v d="$direct" 'BEGIN { if (d > 0) printf "%.2f", v / d; else print "-" }')
echo "wrk straight to server 1: $direct requests/s (through the VIP: ${ratio}x)"

# In flood delivery the switch floods every client frame to all three servers. The same straight to server 1 with the
# switch flooding its frames too (learning off on its port, its MAC forgotten) shows what flooding itself costs this
# machine, where two cores run the switch and every server, apart from what vipfarm costs.
flooding() {  # on|off
    local port="p-$ID-s1" mac
    mac=$(in_ns "$ID-s1" cat /sys/class/net/eth0/address)
    in_ns "$SWITCH" bridge link set dev "$port" learning "$([ "$1" = on ] && echo off || echo on)"
    [ "$1" = off ] || in_ns "$SWITCH" bridge fdb del "$mac" dev "$port" master 2>/dev/null || true
}
if [ "$DELIVERY" = flood ]; then
    flooding on
    in_ns "$CLIENT" wrk -t1 -c32 -d"${SECONDS_PER_RUN}s" --timeout 2s "http://198.18.0.11/" >"$DIR/wrk-flooded.out" 2>&1 ||
        { flooding off; fail "wrk straight to server 1, flooded"; }
    flooding off
    flooded=$(awk '/Requests\/sec/ {print $2}' "$DIR/wrk-flooded.out")
    ratio=$(awk -v v="$rate" -v d="$flooded" 'BEGIN { if (d > 0) printf "%.2f", v / d; else print "-" }')
    echo "wrk straight to server 1, flooded by the switch: $flooded requests/s (through the VIP: ${ratio}x)"
fi

# 3. iperf3 through the VIP and straight to server 1.
# iperf REPORT TARGET [FLAGS]: the report is kept in $DIR/iperf-REPORT.json, and its end shown when the run fails.
iperf() {
    local out="$DIR/iperf-$1.json"
    { in_ns "$CLIENT" iperf3 -c "$2" -p 5201 -t "$SECONDS_PER_RUN" -J --connect-timeout 3000 "${@:3}" >"$out" &&
        python3 - "$out" <<'PY'
import json, sys
end = json.load(open(sys.argv[1]))["end"]
received = end.get("sum_received", end.get("sum"))
print(f"{received['bits_per_second'] / 1e6:.0f} Mbit/s, {received.get('lost_percent', 0):.3f} % lost")
# iperf3 ends well when its data connection stalls: the server received nothing, which is a failure here.
sys.exit(0 if received["bytes"] > 0 else 1)
PY
    } || { tail -c 1500 "$out" >&2; return 1; }
}
for test in "upload:" "download:-R" "UDP at 200 Mbit/s:-u -b 200M"; do
    name="${test%%:*}"; flags="${test#*:}"
    # shellcheck disable=SC2086
    vip=$(iperf "${name%% *}-vip" "$VIP" $flags) || fail "iperf3 $name through the VIP"
    # shellcheck disable=SC2086
    direct=$(iperf "${name%% *}-direct" 198.18.0.11 $flags) || fail "iperf3 $name straight to server 1"
    if [ "$DELIVERY" = flood ] && [ "$name" != download ]; then
        flooding on
        # shellcheck disable=SC2086
        flooded=$(iperf "${name%% *}-flooded" 198.18.0.11 $flags) || { flooding off; fail "iperf3 $name straight to server 1, flooded"; }
        flooding off
        direct="$direct; flooded by the switch $flooded"
    fi
    echo "iperf3 $name: through the VIP $vip; straight to server 1 $direct"
done
# What the heartbeat loops' own work cost them over the run (state changes: a view change's build and swap).
for n in 1 2 3; do
    echo "lbnode $n: $("$BIN/lbnode" status --config "$DIR/n$n.yaml" | sed -n 's/^ *heartbeat loop: //p')"
done
echo "handmade farm: pass"
[ -z "${HOLD:-}" ] || sleep "$HOLD"
