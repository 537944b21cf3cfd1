#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# How fast does `xsknet sink` take 64-byte UDP datagrams, and how many are lost?
#
#   sudo bench/sink-rate.sh [COUNT] [RUNS]      (defaults: 3000000 frames, 3 runs)
#
# Setup: two namespaces joined by a veth pair; `xsknet sink` on one end (native XDP, copy-mode
# AF_XDP, run to completion, pinned to CPU 1), `trafgen` (netsniff-ng) on the other end sending
# COUNT frames of 60 bytes (64 on the wire with the FCS) as fast as one core can (pinned to CPU 0).
# On veth the XDP program and the copy into the UMEM run on the sender's core, so the rate the
# generator reaches is the rate the receiving path sustains. Prints, per run, the generator's
# rate, datagrams the application read, and every place a frame could be lost.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
need_root "bench/sink-rate.sh"
have trafgen || die "trafgen not found: run 'make deps' (Debian package netsniff-ng)"
[ -x target/release/xsknet ] || die "target/release/xsknet not built: run 'make build'"

count=${1:-3000000}
runs=${2:-3}
a="xskrate-a-$$" b="xskrate-b-$$" tmp=$(mktemp -d)
xpid=""
cleanup() {
    [ -n "$xpid" ] && kill -INT "$xpid" 2>/dev/null && wait "$xpid" 2>/dev/null
    ip netns del "$a" 2>/dev/null || true
    ip netns del "$b" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

ip netns add "$a"
ip netns add "$b"
ip -n "$a" link add veth-xsk type veth peer name veth-gen netns "$b"
ip -n "$a" link set veth-xsk up
ip -n "$b" link set veth-gen up
ip -n "$b" addr add 10.77.0.1/24 dev veth-gen
ip netns exec "$b" ethtool -K veth-gen tx off >/dev/null
for ns in "$a" "$b"; do ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1; done
mac=$(cat "/sys/class/net/veth-xsk/address" 2>/dev/null || ip netns exec "$a" cat /sys/class/net/veth-xsk/address)

cat > "$tmp/udp64.cfg" <<EOT
{ eth(da=$mac, type=0x0800), ipv4(saddr=10.77.0.1, daddr=10.77.0.2, proto=17, ttl=64), udp(sport=9000, dport=9), fill(0x41, 18) }
EOT

printf '%-4s %10s %10s %12s %12s %10s %10s %10s %8s\n' run sent "Mpps" delivered "delivered%" fill_empty ring_full other si%
for run in $(seq 1 "$runs"); do
    ip netns exec "$a" taskset -c 1 target/release/xsknet sink --iface veth-xsk --ip 10.77.0.2/24 --port 9 \
        --stats-json "$tmp/stats.json" > "$tmp/xsknet.log" 2>&1 &
    xpid=$!
    for _ in $(seq 50); do grep -q "ready" "$tmp/xsknet.log" 2>/dev/null && break; sleep 0.1; done
    grep -q ready "$tmp/xsknet.log" || { cat "$tmp/xsknet.log"; die "xsknet did not start"; }
    # First contact (ARP, link bounce after attach) before the measured burst.
    ip netns exec "$b" ping -c 1 -W 2 10.77.0.2 >/dev/null || true
    out=$(ip netns exec "$b" taskset -c 0 trafgen -o veth-gen -c "$tmp/udp64.cfg" -n "$count" -P 1 -q 2>&1 | tr -d "\r")
    sleep 0.5
    kill -INT "$xpid"; wait "$xpid" || true; xpid=""
    secs=$(echo "$out" | awk '/usec on CPU/ { printf "%.6f", $1 + $3 / 1e6 }')
    sent=$(echo "$out" | awk '/packets outgoing/ { print $1 }')
    python3 - "$tmp/stats.json" "$run" "$sent" "$secs" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); run, sent, secs = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
c, x = s["counters"], s["xdp_statistics"]
got = c["UdpInDatagrams"]
other = x["rx_dropped"] - x["rx_fill_ring_empty_descs"] + c["UdpRcvbufErrors"] + c["UdpInErrors"] + c["IpInHdrErrors"]
print(f'{run:<4} {sent:>10} {sent / secs / 1e6:>10.3f} {got:>12} {100.0 * got / sent:>11.3f}% '
      f'{x["rx_fill_ring_empty_descs"]:>10} {x["rx_ring_full"]:>10} {other:>10} {100 * s["softirq"]["busy_share"]:>7.1f}')
PY
done
echo "setup: $(uname -r), veth, $(grep -o 'XDP [a-z]* mode' "$tmp/xsknet.log" | head -1), $(grep -o '[a-z-]*copy mode' "$tmp/xsknet.log" | head -1), 64-byte frames, trafgen 1 core (CPU 0), xsknet CPU 1"
