#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# What idle TCP connections cost a run-to-completion server: `xsknet echo` on CPU 1 of one end
# of a veth pair, N idle TCP connections opened to it by the kernel on the other end, then UDP
# echo round trips measured by `xsknet pktgen --echo` on CPU 0 (docs/benchmarks.md, "Idle
# connections"). Before epoll the server looked at every connection on every poll; with it, a
# turn costs what is ready.
#
#   bench/idle-conns.sh [N...]        (default: 0 1000 4000; root; builds nothing)
#
#   ns xskidle-a-PID                         ns xskidle-b-PID
#   xsknet echo 10.79.0.2:7  veth-xsk <=====> veth-peer  Linux 10.79.0.1 (the idle connections),
#                                                        xsknet pktgen from 10.79.0.3 (the echoes)
#
# Environment: XSKNET_BIN (default target/release/xsknet), RATE (datagrams a second, 1000),
# SECS (seconds of echoes per N, 4). The trap deletes both namespaces whatever happens.
set -uo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$XSK_ROOT" || exit 1
need_root "bench/idle-conns.sh"

XSKNET=${XSKNET_BIN:-$XSK_ROOT/target/release/xsknet}
RATE=${RATE:-1000}
SECS=${SECS:-4}
[[ -x $XSKNET ]] || die "$XSKNET not built: run \`cargo build --release --workspace\` first"
have python3 || die "python3 is needed to hold the connections open (make deps)"
COUNTS=("$@")
[[ ${#COUNTS[@]} -gt 0 ]] || COUNTS=(0 1000 4000)

NSA=xskidle-a-$$
NSB=xskidle-b-$$
TMP=$(mktemp -d)
SRV=""
HOLD=""
cleanup() {
    [[ -n $HOLD ]] && kill "$HOLD" 2>/dev/null
    [[ -n $SRV ]] && kill "$SRV" 2>/dev/null
    wait 2>/dev/null
    ip netns del "$NSA" 2>/dev/null
    ip netns del "$NSB" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

ip netns add "$NSA" && ip netns add "$NSB" || die "ip netns add failed"
ip link add veth-xsk netns "$NSA" type veth peer name veth-peer netns "$NSB" || die "ip link add failed"
for ns in "$NSA" "$NSB"; do ip -n "$ns" link set lo up; done
ip -n "$NSA" link set veth-xsk up
ip -n "$NSB" link set veth-peer up
ip -n "$NSB" addr add 10.79.0.1/24 dev veth-peer
# Full checksums from the kernel's side (README, "veth and checksum offload").
ip netns exec "$NSB" ethtool -K veth-peer tx off >/dev/null || die "ethtool -K veth-peer tx off failed"

printf '| idle TCP connections | p50 µs | p90 µs | p99 µs | lost | server poll p50 ns | server poll p99 ns |\n|---:|---:|---:|---:|---:|---:|---:|\n' >"$TMP/table"
for n in "${COUNTS[@]}"; do
    ip netns exec "$NSA" taskset -c 1 "$XSKNET" echo --iface veth-xsk --ip 10.79.0.2/24 --port 7 \
        --max-fds $((n + 64)) --backlog 4096 --stats-json "$TMP/server.json" >"$TMP/server.log" 2>&1 &
    SRV=$!
    for _ in $(seq 50); do grep -q "ready" "$TMP/server.log" && break; sleep 0.1; done
    grep -q "ready" "$TMP/server.log" || { cat "$TMP/server.log" >&2; die "xsknet echo did not start"; }
    ip netns exec "$NSB" python3 - "$n" >"$TMP/hold.log" 2>&1 <<'PY' &
import resource, socket, sys, time
n = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 64, n + 64))
held = [socket.create_connection(("10.79.0.2", 7), timeout=5) for _ in range(n)]
print("open", len(held), flush=True)
time.sleep(3600)
PY
    HOLD=$!
    for _ in $(seq 300); do grep -q "^open" "$TMP/hold.log" && break; sleep 0.1; done
    grep -q "^open $n\$" "$TMP/hold.log" || { cat "$TMP/hold.log" >&2; die "could not open $n connections"; }
    ip netns exec "$NSB" taskset -c 0 "$XSKNET" pktgen --iface veth-peer --src 10.79.0.3/24 --dst 10.79.0.2 \
        --dst-port 7 --echo --rate "$RATE" --duration "$SECS" --progress off --json "$TMP/gen.json" \
        >"$TMP/gen.log" 2>&1 || { cat "$TMP/gen.log" >&2; die "pktgen failed"; }
    kill "$HOLD" 2>/dev/null; wait "$HOLD" 2>/dev/null; HOLD=""
    kill -INT "$SRV"; wait "$SRV" 2>/dev/null; SRV=""
    python3 - "$n" "$TMP/gen.json" "$TMP/server.json" >>"$TMP/table" <<'PY'
import json, sys
n, gen, srv = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
rtt, poll = gen["echo"]["rtt_us"], srv["softirq"]["poll"]["busy_poll"]
print(f"| {n} | {rtt['p50']:.1f} | {rtt['p90']:.1f} | {rtt['p99']:.1f} | {gen['echo']['lost']} | {poll['p50_ns']} | {poll['p99_ns']} |")
PY
done
printf '\nUDP echo round trips at %s datagrams a second for %s s each, xsknet echo on CPU 1, pktgen on CPU 0:\n\n' "$RATE" "$SECS"
cat "$TMP/table"
