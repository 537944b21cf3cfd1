#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# `xsknet http` beside a kernel HTTP server, on one veth pair in one run.
#
#   sudo bench/http-compare.sh [--runs N] [--requests N] [--concurrency C] [--threaded]
#                               (defaults: 3 curl runs each, ab -n 10000 -c 16 -k)
#
# Setup: two namespaces joined by a veth pair. On one end `xsknet http` claims 10.77.0.2 (its XDP
# program takes that address's frames) and the kernel of the same namespace has 10.77.0.3 on the
# same interface, where `python3 -m http.server` (a thread per connection) serves the same
# directory; everything not for 10.77.0.2 passes the XDP program to the kernel. Python's server
# speaks HTTP/1.0 there: with `--protocol HTTP/1.1` it keeps ab's HTTP/1.0 connections open
# without saying so (no `Connection: keep-alive`), and ab -k waits on them until it times out.
# From the other end (10.77.0.1, `ethtool -K tx off`): curl fetches a 16 MiB file from each,
# RUNS times (the median rate is printed, and every run's), then `ab -k` fetches a 1460-byte
# file N times over C connections from each. Ends with the xsknet exit report's http line.
# The kernel server is CPython: its numbers are the interpreter's more than the kernel's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh
need_root "bench/http-compare.sh"
for t in curl ab python3; do have "$t" || die "$t not found: run 'make deps'"; done
[ -x target/release/xsknet ] || die "target/release/xsknet not built: run 'make build'"

runs=3 requests=10000 concurrency=16 threaded=()
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift ;;
        --requests) requests=$2; shift ;;
        --concurrency) concurrency=$2; shift ;;
        --threaded) threaded=(--threaded) ;;
        -h|--help) sed -n '4,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done

a="xskhttp-a-$$" b="xskhttp-b-$$" tmp=$(mktemp -d)
xpid="" kpid=""
cleanup() {
    # Every step runs whatever the one before returned (a killed server's wait is nonzero).
    set +e
    [ -n "$kpid" ] && kill "$kpid" 2>/dev/null && wait "$kpid" 2>/dev/null
    [ -n "$xpid" ] && kill -INT "$xpid" 2>/dev/null && wait "$xpid" 2>/dev/null
    ip netns del "$a" 2>/dev/null || true
    ip netns del "$b" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

ip netns add "$a"
ip netns add "$b"
ip -n "$a" link add veth-srv type veth peer name veth-cli netns "$b"
for ns in "$a" "$b"; do ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1; done
ip -n "$a" link set lo up
ip -n "$b" link set lo up
ip -n "$a" link set veth-srv up
ip -n "$b" link set veth-cli up
ip -n "$a" addr add 10.77.0.3/24 dev veth-srv
ip -n "$b" addr add 10.77.0.1/24 dev veth-cli
ip netns exec "$b" ethtool -K veth-cli tx off >/dev/null

mkdir "$tmp/root"
head -c $((16 << 20)) /dev/urandom > "$tmp/root/f16m"
head -c 1460 /dev/urandom > "$tmp/root/f1460"

ip netns exec "$a" target/release/xsknet http --iface veth-srv --ip 10.77.0.2/24 --port 80 \
    --root "$tmp/root" --stats-json "$tmp/xsknet.json" "${threaded[@]}" > "$tmp/xsknet.log" 2>&1 &
xpid=$!
ip netns exec "$a" python3 -m http.server --bind 10.77.0.3 \
    --directory "$tmp/root" 8080 > "$tmp/python.log" 2>&1 &
kpid=$!
for _ in $(seq 100); do
    grep -q "ready" "$tmp/xsknet.log" 2>/dev/null &&
        ip netns exec "$b" curl -s -o /dev/null --max-time 1 http://10.77.0.3:8080/f1460 && break
    sleep 0.1
done
grep -q "ready" "$tmp/xsknet.log" || { cat "$tmp/xsknet.log" >&2; die "xsknet http did not start"; }
# The first frames after the XDP attach may meet a link still coming up.
for _ in $(seq 50); do
    ip netns exec "$b" curl -s -o /dev/null --max-time 1 http://10.77.0.2/f1460 && break
done

want=$(sha256sum < "$tmp/root/f16m")
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
declare -A rate rps failed
for server in xsknet kernel; do
    case $server in
        xsknet) base=http://10.77.0.2 ;;
        kernel) base=http://10.77.0.3:8080
                # The kernel's counters of its own runs: nstat's deltas in the server's namespace.
                NSTAT_HISTORY="$tmp/nstat.hist" ip netns exec "$a" nstat -n ;;
    esac
    all=()
    for _ in $(seq "$runs"); do
        bps=$(ip netns exec "$b" curl -sS --max-time 120 -o "$tmp/got" -w '%{speed_download}' "$base/f16m")
        [ "$(sha256sum < "$tmp/got")" = "$want" ] || die "$server: the 16 MiB file arrived changed"
        all+=("$(awk -v b="$bps" 'BEGIN { printf "%.1f", b / 1e6 }')")
    done
    rate[$server]=$(printf '%s\n' "${all[@]}" | median)
    note "$server: curl 16 MiB, MB/s per run: ${all[*]}"
    out=$(ip netns exec "$b" ab -q -k -n "$requests" -c "$concurrency" -s 60 "$base/f1460" 2>&1) ||
        { echo "$out" >&2; die "$server: ab failed"; }
    rps[$server]=$(awk '/^Requests per second:/ { print $4 }' <<<"$out")
    failed[$server]=$(awk '/^Failed requests:/ { print $3 }' <<<"$out")
done

NSTAT_HISTORY="$tmp/nstat.hist" ip netns exec "$a" nstat -z > "$tmp/kernel.nstat" 2>/dev/null || true
kill -INT "$xpid"
wait "$xpid" || true
xpid=""
mode=${threaded[*]:-run to completion}
echo
echo "http-compare: one veth pair; curl of a 16 MiB file (median of $runs), ab -k -n $requests -c $concurrency of a 1460-byte file"
printf '%-44s %16s %12s %8s\n' server "curl MB/s" "ab req/s" failed
printf '%-44s %16s %12s %8s\n' "xsknet http (${mode#--})" "${rate[xsknet]}" "${rps[xsknet]}" "${failed[xsknet]}"
printf '%-44s %16s %12s %8s\n' "kernel: python3 -m http.server (HTTP/1.0)" "${rate[kernel]}" "${rps[kernel]}" "${failed[kernel]}"
grep -E '^  (http|tcp):|frames:' "$tmp/xsknet.log" || true
echo
echo "TCP counters of the same run (xsknet: its --stats-json; kernel: nstat deltas in the server's namespace)"
printf '%-28s %14s %14s\n' counter xsknet kernel
for c in TcpPassiveOpens TcpInSegs TcpOutSegs TcpRetransSegs TcpOutRsts TcpEstabResets TcpExtTCPTimeouts \
         TcpExtDelayedACKs TcpExtTCPOrigDataSent TcpExtTW; do
    x=$(grep -o "\"$c\": *[0-9]*" "$tmp/xsknet.json" 2>/dev/null | grep -o '[0-9]*$' || echo '?')
    k=$(awk -v k="$c" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }' "$tmp/kernel.nstat")
    printf '%-28s %14s %14s\n' "$c" "${x:-?}" "$k"
done
