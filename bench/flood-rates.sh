#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# How fast does `xsknet pktgen --flood MODE` send, mode by mode, from one core?
#
#   sudo bench/flood-rates.sh [COUNT] [RUNS]      (defaults: 2000000 frames, 2 runs)
#
# Setup: two namespaces joined by a veth pair; the generator on CPU 0 in one sends COUNT frames
# of 60 bytes (64 on the wire with the FCS) of each mode as fast as it can, to 10.77.0.2 on the
# other end, three ways: (1) the receiving veth drops them in XDP (`baseline xdp-drop`, the
# generator's own ceiling), (2) the receiving kernel takes them (address 10.77.0.2/24, no XDP
# program: the kernel's path for every mode, replies included), (3) the same with
# `--spoof 10.99.0.0/16` (random sources, generator without its XDP program: --no-xdp). On veth
# the receiver's XDP program and softirq run on the sender's core, so a heavier receiving path
# shows up as a lower rate. The first row is the generator without --flood, for comparison.
# Prints a Markdown table: each mode's rate per run, in Mpps.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
need_root "bench/flood-rates.sh"
for b in xsknet-pktgen baseline; do
    [ -x "target/release/$b" ] || die "target/release/$b not built: run 'make build'"
done

count=${1:-2000000}
runs=${2:-2}
a="xskflood-a-$$" b="xskflood-b-$$" tmp=$(mktemp -d)
rpid=""
cleanup() {
    [ -n "$rpid" ] && kill -INT "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null
    ip netns del "$a" 2>/dev/null || true
    ip netns del "$b" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

ip netns add "$a"
ip netns add "$b"
ip -n "$a" link add veth-rx type veth peer name veth-gen netns "$b"
for ns in "$a" "$b"; do ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1; done
ip -n "$a" link set veth-rx up
ip -n "$b" link set veth-gen up
ip -n "$a" addr add 10.77.0.2/24 dev veth-rx
ip netns exec "$a" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.veth-rx.rp_filter=0
mac=$(ip netns exec "$a" cat /sys/class/net/veth-rx/address)

# rate MODE [ARGS...]: the generator's rate_pps for one run, in Mpps.
rate() {
    local mode=$1 flood=()
    shift
    # "plain": the generator's numbered datagrams (no --flood), the reference row.
    [ "$mode" = plain ] || flood=(--flood "$mode")
    [ "$mode" != plain ] || [ "$#" -eq 0 ] || { echo "-"; return; }
    ip netns exec "$b" taskset -c 0 target/release/xsknet-pktgen --iface veth-gen --src 10.77.0.1/24 \
        --dst 10.77.0.2 --dst-port 9 --dst-mac "$mac" --size 60 "${flood[@]}" --count "$count" \
        --progress off --json "$tmp/r.json" "$@" >/dev/null
    jq -r '.rate_pps / 1e6 * 1000 | round / 1000' "$tmp/r.json"
}

modes="plain udp udp-closed bad-csum bad-len arp icmp syn ack rst"
declare -A drop kern spoof
for run in $(seq 1 "$runs"); do
    ip netns exec "$a" taskset -c 1 target/release/baseline xdp-drop --iface veth-rx --ip 10.77.0.2 \
        > "$tmp/rx.log" 2>&1 &
    rpid=$!
    for _ in $(seq 50); do grep -q "ready" "$tmp/rx.log" 2>/dev/null && break; sleep 0.1; done
    grep -q ready "$tmp/rx.log" || { cat "$tmp/rx.log"; die "baseline xdp-drop did not start"; }
    for m in $modes; do drop[$m]+="${drop[$m]:+ / }$(rate "$m")"; done
    kill -INT "$rpid"; wait "$rpid" || true; rpid=""
    for m in $modes; do kern[$m]+="${kern[$m]:+ / }$(rate "$m")"; done
    for m in $modes; do spoof[$m]+="${spoof[$m]:+ / }$(rate "$m" --spoof 10.99.0.0/16 --no-xdp)"; done
done
echo "| mode | receiver XDP_DROP | receiver kernel, one source | receiver kernel, --spoof 10.99.0.0/16 |"
echo "|---|---:|---:|---:|"
for m in $modes; do
    name="\`$m\`"
    [ "$m" = plain ] && name="no \`--flood\` (numbered datagrams, one flow)"
    echo "| $name | ${drop[$m]} | ${kern[$m]} | ${spoof[$m]} |"
done
echo
echo "Mpps per run; $(uname -r), veth, 60-byte frames, $count per run, generator on CPU 0, receiver on CPU 1"
