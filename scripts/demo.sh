#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# `make demo`: xsknet serving UDP and TCP echo on one end of a veth pair, the Linux kernel on the other.
#
#   ns xskdemo-a-PID                           ns xskdemo-b-PID
#   xsknet echo on 10.77.0.2:7   veth-xsk <=====> veth-peer   Linux, 10.77.0.1/24
#   (no kernel address: XDP hands                              ping, udp-check, socat
#    the frames to AF_XDP)
#
# Every step says what it shows. Whatever happens, the trap stops xsknet and tcpdump and deletes
# both namespaces (deleting ns a deletes the veth pair with it). Exit status is non-zero if any
# step failed. Needs root; builds nothing (`make demo` builds first).
#
# Environment: XSKNET_BIN, XSKNET_UDP_CHECK (default target/release/{xsknet,udp-check}),
# XSKNET_ARGS (extra xsknet arguments, e.g. "--xdp-mode generic").
set -uo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$XSK_ROOT" || exit 1

XSKNET=${XSKNET_BIN:-$XSK_ROOT/target/release/xsknet}
UDP_CHECK=${XSKNET_UDP_CHECK:-$XSK_ROOT/target/release/udp-check}
read -r -a EXTRA_ARGS <<<"${XSKNET_ARGS:-}"

NSA=xskdemo-a-$$            # xsknet's side
NSB=xskdemo-b-$$            # the kernel peer's side
IFA=veth-xsk
IFB=veth-peer
PEER_IP=10.77.0.1
XSK_IP=10.77.0.2
PREFIX=24
PORT=7                      # echo
CLOSED=9                    # discard: nobody serves it, so xsknet must answer port unreachable
# 1472 = 1500 MTU - 20 IP - 8 UDP, the largest in one frame; past it IP fragments both ways,
# up to 65507, the largest UDP datagram (65535 - 20 - 8).
SIZES=1,18,64,512,1024,1472,1473,4000,65507
COUNT=20

xsk_pid='' dump_pid='' tmp='' failed=0 created=0

# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    local rc=$? ns pids
    trap - EXIT INT TERM
    if [ -n "$xsk_pid" ] && kill -0 "$xsk_pid" 2>/dev/null; then
        kill -TERM "$xsk_pid" 2>/dev/null
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$xsk_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$xsk_pid" 2>/dev/null
    fi
    if [ -n "$dump_pid" ] && kill -0 "$dump_pid" 2>/dev/null; then
        kill -TERM "$dump_pid" 2>/dev/null
    fi
    if [ "$created" = 1 ]; then
        # Anything still running inside our namespaces is ours: stop it before they go.
        for ns in "$NSA" "$NSB"; do
            pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
            [ -n "${pids// /}" ] || continue
            # shellcheck disable=SC2086
            kill -TERM $pids 2>/dev/null; sleep 0.5
            # shellcheck disable=SC2046
            kill -KILL $(ip netns pids "$ns" 2>/dev/null) 2>/dev/null
        done
    fi
    wait 2>/dev/null
    if [ "$created" = 1 ]; then
        ip netns del "$NSA" 2>/dev/null
        ip netns del "$NSB" 2>/dev/null
        if ip netns list | grep -qE "^($NSA|$NSB)( |$)"; then
            echo "demo: could not delete namespace $NSA or $NSB: remove it with 'ip netns del'" >&2
            rc=1
        fi
    fi
    [ -n "$tmp" ] && rm -rf "$tmp"
    exit "$rc"
}
# EXIT covers every way out; INT and TERM exit through it with the usual status.
trap cleanup EXIT
trap 'echo; echo "demo: interrupted" >&2; exit 130' INT
trap 'echo "demo: terminated" >&2; exit 143' TERM

step_failed() { fail "$*"; failed=1; }
# wait_ready LOG: waits up to 10 s for xsknet ($xsk_pid) to print its ready line in LOG;
# sets ready=1 when it did (it stops early if xsknet exits).
wait_ready() {
    ready=0
    for _ in $(seq 100); do
        if grep -q '^xsknet: ready' "$1"; then ready=1; break; fi
        kill -0 "$xsk_pid" 2>/dev/null || break
        sleep 0.1
    done
}
# Run in a namespace. Not for background jobs: `in_a cmd &` would fork a subshell, and $! would
# be that subshell, not the command we mean to signal.
in_a() { ip netns exec "$NSA" "$@"; }
in_b() { ip netns exec "$NSB" "$@"; }

# ---------------------------------------------------------------------------------------------
heading "Before we start"
need_root "the demo"
[ -x "$XSKNET" ] || die "$XSKNET not found: run 'make build' (or 'make demo', which builds first)"
[ -x "$UDP_CHECK" ] || die "$UDP_CHECK not found: run 'make build'"
for t in ip ethtool ping socat tcpdump nstat; do
    have "$t" || die "$t not found: run 'make deps'"
done
tmp=$(mktemp -d /tmp/xskdemo.XXXXXX) || die "mktemp failed"
note "kernel $(uname -r), xsknet $XSKNET"

# ---------------------------------------------------------------------------------------------
heading "Step 1: two network namespaces joined by a veth pair"
note "ns $NSA: xsknet's side. Its interface gets NO kernel address: the kernel there never"
note "         answers for $XSK_IP; xsknet does, from user space."
note "ns $NSB: the Linux kernel as the peer, $PEER_IP/$PREFIX."
created=1
run ip netns add "$NSA" || die "cannot create namespace $NSA"
run ip netns add "$NSB" || die "cannot create namespace $NSB"
# IPv6 off in both namespaces, so the only frames on the wire are the ones the story is about
# (no router solicitations or MLD reports from either kernel).
for ns in "$NSA" "$NSB"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
        || die "sysctl in $ns failed"
done
run ip -n "$NSA" link add "$IFA" type veth peer name "$IFB" netns "$NSB" || die "cannot create the veth pair"
run ip -n "$NSB" addr add "$PEER_IP/$PREFIX" dev "$IFB" || die "cannot address $IFB"
run ip -n "$NSA" link set "$IFA" up || die "cannot bring $IFA up"
run ip -n "$NSB" link set "$IFB" up || die "cannot bring $IFB up"
note "$IFA MAC $(in_a cat "/sys/class/net/$IFA/address")," \
    "$IFB MAC $(in_b cat "/sys/class/net/$IFB/address")"

# ---------------------------------------------------------------------------------------------
heading "Step 2: full checksums from the peer"
note "veth offloads checksums: a frame the kernel sends over it carries only a partial UDP"
note "checksum (CHECKSUM_PARTIAL), which is correct inside one host but fails validation at"
note "XDP. A real NIC fills the checksum in on the wire; switching tx offload off on the peer"
note "makes the kernel compute it in software, as xsknet will see from a NIC."
show ip netns exec "$NSB" ethtool -K "$IFB" tx off
in_b ethtool -K "$IFB" tx off >/dev/null || die "ethtool -K $IFB tx off failed"

# What crosses the wire, seen from the peer, for the last step.
ip netns exec "$NSB" tcpdump --immediate-mode -i "$IFB" -nn -U -s 128 -w "$tmp/wire.pcap" 2>"$tmp/tcpdump.err" &
dump_pid=$!
for _ in $(seq 50); do grep -q listening "$tmp/tcpdump.err" 2>/dev/null && break; sleep 0.1; done

# ---------------------------------------------------------------------------------------------
heading "Step 3: xsknet takes $IFA: XDP program, AF_XDP socket, echo on UDP and TCP port $PORT"
cmd=("$XSKNET" echo --iface "$IFA" --ip "$XSK_IP/$PREFIX" --port "$PORT" --stats-json "$tmp/stats.json" --rx-latency-sample 1 "${EXTRA_ARGS[@]}")
show ip netns exec "$NSA" "${cmd[@]/#$XSK_ROOT\//}" "&"
# A background job of a script starts with SIGINT ignored; give xsknet the default back so the
# SIGINT of step 8 reaches it even if it installs no handler of its own.
ip netns exec "$NSA" env --default-signal=INT "${cmd[@]}" >"$tmp/xsknet.log" 2>&1 &
xsk_pid=$!
wait_ready "$tmp/xsknet.log"
if [ "$ready" = 1 ]; then
    grep '^xsknet: ready' "$tmp/xsknet.log" | head -1 | indent
else
    if kill -0 "$xsk_pid" 2>/dev/null; then
        step_failed "xsknet did not print 'xsknet: ready' within 10 s; its output so far:"
    else
        wait "$xsk_pid"; rc=$?; xsk_pid=''
        step_failed "xsknet exited with status $rc before it was ready; its output:"
    fi
    indent <"$tmp/xsknet.log"
fi

# ---------------------------------------------------------------------------------------------
reachable=0
if [ "$ready" = 1 ]; then
    heading "Step 4: first contact: ARP, then ICMP echo"
    note "The peer resolves $XSK_IP by ARP (xsknet answers), then pings. Attaching XDP can"
    note "bounce the link for a moment, so the first probes may be lost: we retry for 10 s."
    for i in $(seq 10); do
        if in_b ping -c1 -W1 -q "$XSK_IP" >/dev/null 2>&1; then reachable=1; break; fi
    done
    if [ "$reachable" = 1 ]; then
        ok "$XSK_IP answers (after $i probe(s)); the peer's neighbour entry:"
        in_b ip neigh show "$XSK_IP" dev "$IFB" | indent
    else
        step_failed "no echo reply from $XSK_IP within 10 s"
        in_b ip neigh show dev "$IFB" | indent
    fi
fi

if [ "$reachable" = 1 ]; then
    # -----------------------------------------------------------------------------------------
    heading "Step 5: ping, five echo requests answered by xsknet"
    show ip netns exec "$NSB" ping -c 5 -i 0.2 "$XSK_IP"
    in_b ping -c 5 -i 0.2 "$XSK_IP" >"$tmp/ping.out" 2>&1
    tail -n 2 "$tmp/ping.out" | indent
    got=$(grep -o '[0-9]* received' "$tmp/ping.out" | grep -o '^[0-9]*')
    if [ "${got:-0}" = 5 ]; then ok "5/5 replies"; else step_failed "${got:-0}/5 replies"; fi

    # -----------------------------------------------------------------------------------------
    heading "Step 6: UDP echo, one byte to 65507, byte for byte; and a closed port"
    note "udp-check is a plain kernel UDP socket in ns $NSB. Each datagram's bytes depend on"
    note "its size and number; each echo must come back identical. Past 1472 bytes the"
    note "datagram travels as IP fragments: xsknet reassembles it and fragments its echo."
    note "Then one datagram to port $CLOSED, where nothing listens: xsknet must answer ICMP"
    note "port unreachable, which the peer's kernel reports as ECONNREFUSED on the connected"
    note "socket."
    show ip netns exec "$NSB" "${UDP_CHECK/#$XSK_ROOT\//}" --to "$XSK_IP:$PORT" --sizes "$SIZES" --count "$COUNT" --closed-port "$CLOSED"
    in_b "$UDP_CHECK" --to "$XSK_IP:$PORT" --sizes "$SIZES" --count "$COUNT" --closed-port "$CLOSED" \
        >"$tmp/udp-check.out" 2>&1
    rc=$?
    indent <"$tmp/udp-check.out"
    if [ "$rc" = 0 ]; then ok "every echo byte-exact, port unreachable seen"; else step_failed "udp-check exited with status $rc"; fi

    # -----------------------------------------------------------------------------------------
    heading "Step 7: any UDP tool works: socat"
    show "echo hello | ip netns exec $NSB socat -t1 - UDP:$XSK_IP:$PORT"
    echo hello | timeout 5 ip netns exec "$NSB" socat -t1 - "UDP:$XSK_IP:$PORT" >"$tmp/socat.out" 2>&1
    printf 'sent: hello\ngot:  %s\n' "$(cat "$tmp/socat.out")" | indent
    if [ "$(cat "$tmp/socat.out")" = hello ]; then ok "echoed"; else step_failed "socat did not get 'hello' back"; fi

    # -----------------------------------------------------------------------------------------
    heading "Step 7b: TCP: the handshake, a PSH-woken read, the close; a refused port"
    note "The same port serves TCP echo (RFC 862). The peer's kernel connects (SYN, SYN-ACK,"
    note "ACK: xsknet's listener puts the connection on its SYN queue, then its accept queue),"
    note "sends a line (PSH: xsknet's reader is woken at once), reads the echo, and closes (its"
    note "FIN; xsknet echoes what is left, then sends its own FIN: CLOSE-WAIT, LAST-ACK)."
    show "printf 'hello over tcp\\n' | ip netns exec $NSB socat -t2 - TCP:$XSK_IP:$PORT"
    printf 'hello over tcp\n' | timeout 10 ip netns exec "$NSB" socat -t2 - "TCP:$XSK_IP:$PORT" >"$tmp/tcp.out" 2>&1
    printf 'got: %s\n' "$(cat "$tmp/tcp.out")" | indent
    if [ "$(cat "$tmp/tcp.out")" = "hello over tcp" ]; then ok "echoed over TCP"; else step_failed "no TCP echo"; fi
    note "the peer's side of that connection, after the close (it closed first: TIME-WAIT):"
    in_b ss -tan "dst $XSK_IP" | indent
    note "1 MB of random bytes there and back, compared byte for byte:"
    head -c 1000000 /dev/urandom >"$tmp/tcp.in"
    timeout 30 ip netns exec "$NSB" socat -t5 - "TCP:$XSK_IP:$PORT" <"$tmp/tcp.in" >"$tmp/tcp.back" 2>"$tmp/tcp.err"
    if cmp -s "$tmp/tcp.in" "$tmp/tcp.back"; then ok "1000000 bytes echoed, identical"; else step_failed "1 MB TCP echo differs ($(wc -c <"$tmp/tcp.back") bytes back)"; fi
    note "port $CLOSED has no listener: xsknet answers the SYN with a RST, as Linux does:"
    show ip netns exec "$NSB" socat - "TCP:$XSK_IP:$CLOSED"
    timeout 10 ip netns exec "$NSB" socat - "TCP:$XSK_IP:$CLOSED" </dev/null >"$tmp/refused.out" 2>&1
    indent <"$tmp/refused.out"
    if grep -q "Connection refused" "$tmp/refused.out"; then ok "connection refused"; else step_failed "port $CLOSED was not refused"; fi

    # -----------------------------------------------------------------------------------------
    heading "Step 7c: the running instance, seen as nstat and ss see Linux"
    note "Each instance answers on a control socket (/run/xsknet/IFACE-qQUEUE.sock): list it, read"
    note "its counters as nstat prints them (the change since the last call and its rate), and its"
    note "sockets as ss shows them, while a TCP connection from the peer is open."
    (sleep 3 | timeout 10 ip netns exec "$NSB" socat -t3 - "TCP:$XSK_IP:$PORT" >/dev/null 2>&1) &
    held=$!
    sleep 0.5
    show "$(basename "$XSKNET") list"
    "$XSKNET" list 2>&1 | indent
    show ip netns exec "$NSA" "$(basename "$XSKNET")" stat "'Udp*'" "'Tcp*'"
    in_a "$XSKNET" stat 'Udp*' 'Tcp*' >"$tmp/stat.out" 2>&1; rc=$?
    indent <"$tmp/stat.out"
    if [ "$rc" = 0 ] && grep -q '^UdpInDatagrams' "$tmp/stat.out"; then ok "counters of the live process"; else step_failed "xsknet stat failed"; fi
    show ip netns exec "$NSA" "$(basename "$XSKNET")" ss -tani
    in_a "$XSKNET" ss -tani >"$tmp/ss.out" 2>&1; rc=$?
    cut -c1-150 "$tmp/ss.out" | indent
    if [ "$rc" = 0 ] && grep -q "^ESTAB.*$PEER_IP" "$tmp/ss.out"; then ok "the open connection is listed, with its rtt and cwnd"; else step_failed "xsknet ss did not list the open connection"; fi
    wait "$held" 2>/dev/null
    note "xsknet top is the live screen (here its plain form, as in a pipe): per-stage rates, the"
    note "loop's busy share (our si), drops, frames; while the peer pings every 10 ms:"
    (timeout 5 ip netns exec "$NSB" ping -q -i 0.01 -c 150 "$XSK_IP" >/dev/null 2>&1) &
    pinger=$!
    show ip netns exec "$NSA" "$(basename "$XSKNET")" top --plain --count 2
    in_a "$XSKNET" top --plain --count 2 >"$tmp/top.out" 2>&1; rc=$?
    cut -c1-150 "$tmp/top.out" | indent
    wait "$pinger" 2>/dev/null
    if [ "$rc" = 0 ] && [ "$(wc -l <"$tmp/top.out")" -ge 3 ]; then ok "a line per second"; else step_failed "xsknet top failed"; fi
fi

# ---------------------------------------------------------------------------------------------
if [ -n "$xsk_pid" ]; then
    heading "Step 8: stop xsknet (SIGINT); what it counted on the way"
    kill -INT "$xsk_pid" 2>/dev/null
    stopped=0
    for _ in $(seq 100); do kill -0 "$xsk_pid" 2>/dev/null || { stopped=1; break; }; sleep 0.1; done
    if [ "$stopped" = 1 ]; then
        wait "$xsk_pid"; rc=$?
    else
        step_failed "xsknet still running 10 s after SIGINT; killing it"
        kill -KILL "$xsk_pid" 2>/dev/null; wait "$xsk_pid" 2>/dev/null; rc=137
    fi
    xsk_pid=''
    # Everything after the ready line is xsknet's exit summary (and any log lines).
    sed -e '0,/^xsknet: ready/d' "$tmp/xsknet.log" | sed -e '/./,$!d' | indent
    if [ "$rc" = 0 ]; then ok "xsknet exited cleanly"; else step_failed "xsknet exited with status $rc"; fi
fi

# ---------------------------------------------------------------------------------------------
if [ "$reachable" = 1 ]; then
    heading "Step 9: the same events counted on both sides"
    note "xsknet's counters (stats.json) use nstat's names; the peer's are its kernel's (nstat)."
    note "What one side sent, the other received: the UDP rows must agree. ICMP rows may differ"
    note "by the probes lost in step 4 while the link came up."
    in_b nstat -asz >"$tmp/peer.nstat" 2>/dev/null || step_failed "nstat in $NSB failed"
    # One counter of the peer's, or the sum A+B of several.
    peer() {
        local sum=0 part v
        IFS=+ read -r -a pparts <<<"$1"
        for part in "${pparts[@]}"; do
            v=$(awk -v k="$part" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }' "$tmp/peer.nstat")
            sum=$((sum + v))
        done
        echo "$sum"
    }
    xsk() { # first occurrence of "Name": number in stats.json, whatever its nesting
        grep -o "\"$1\"[[:space:]]*:[[:space:]]*[0-9]*" "$tmp/stats.json" 2>/dev/null | head -1 | grep -o '[0-9]*$'
    }
    if [ ! -s "$tmp/stats.json" ]; then
        step_failed "xsknet wrote no $tmp/stats.json"
    else
        printf '%-34s %-36s %-28s %s\n' "" "xsknet (ns a)" "Linux peer (ns b)" "" | indent
        # compare LABEL STRICT XSK_EXPR PEER_COUNTER: XSK_EXPR is one counter or A+B
        compare() {
            local label=$1 strict=$2 expr=$3 pc=$4 sum=0 shown='' part v missing=0
            IFS=+ read -r -a parts <<<"$expr"
            for part in "${parts[@]}"; do
                v=$(xsk "$part")
                if [ -z "$v" ]; then missing=1; v='?'; else sum=$((sum + v)); fi
                shown+="${shown:+ + }$part $v"
            done
            local pv mark
            pv=$(peer "$pc")
            if [ "$missing" = 1 ]; then mark="MISSING in stats.json"
            elif [ "$sum" = "$pv" ]; then mark="="
            elif [ "$strict" = 1 ]; then mark="DIFFERENT"
            else mark="differs"
            fi
            printf '%-34s %-36s %-28s %s\n' "$label" "$shown" "$pc $pv" "$mark" | indent
            if [ "$strict" = 1 ] && [ "$mark" != "=" ]; then step_failed "$label: xsknet $shown, peer $pc $pv"; fi
        }
        compare "UDP datagrams, peer -> xsknet" 1 UdpInDatagrams+UdpNoPorts UdpOutDatagrams
        compare "UDP echoes, xsknet -> peer" 1 UdpOutDatagrams UdpInDatagrams
        compare "port unreachable" 1 IcmpOutDestUnreachs IcmpInDestUnreachs
        compare "ICMP echo requests" 0 IcmpInEchos IcmpOutEchos
        compare "ICMP echo replies" 0 IcmpOutEchoReps IcmpInEchoReps
        compare "TCP connections the peer opened" 1 TcpPassiveOpens+TcpOutRsts TcpActiveOpens
        compare "TCP segments, peer -> xsknet" 1 TcpInSegs TcpOutSegs+TcpRetransSegs
        compare "TCP segments, xsknet -> peer" 1 TcpOutSegs+TcpRetransSegs TcpInSegs
        compare "RST for the closed port" 1 TcpOutRsts TcpAttemptFails
        note "the other nstat-style counters that moved in xsknet (drops would show here):"
        grep -o '"[A-Z][A-Za-z0-9]*"[[:space:]]*:[[:space:]]*[1-9][0-9]*' "$tmp/stats.json" \
            | tr -d '" ' | grep -vE '^(UdpInDatagrams|UdpNoPorts|UdpOutDatagrams|IcmpOutDestUnreachs|IcmpInEchos|IcmpOutEchoReps):' \
            | sort -u | paste -sd' ' | fold -s -w 88 | indent
    fi
fi

# ---------------------------------------------------------------------------------------------
if [ -n "$dump_pid" ]; then
    kill -TERM "$dump_pid" 2>/dev/null; wait "$dump_pid" 2>/dev/null; dump_pid=''
    heading "Step 10: on the wire (tcpdump on $IFB)"
    wire() { tcpdump -r "$tmp/wire.pcap" -nn -t "$@" 2>/dev/null; }
    if [ "$(wire | wc -l)" -gt 0 ]; then
        note "address resolution (xsknet's reply carries $IFA's MAC):"
        wire -e -c 2 arp | sed 's/, length [0-9]*$//' | indent
        note "the first UDP echo, and the datagram to the closed port with its answer:"
        wire -c 2 "udp port $PORT" | indent
        wire -c 2 "udp port $CLOSED or icmp[icmptype] == icmp-unreach" | indent
        note "the first TCP connection: handshake (options in Linux's order), data with PSH both"
        note "ways, the peer's FIN, xsknet's FIN, the last ACK:"
        wire -c 10 "tcp port $PORT" | cut -c1-150 | indent
        note "the SYN to port $CLOSED and xsknet's RST:"
        wire -c 2 "tcp port $CLOSED" | cut -c1-150 | indent
        note "$(wire | wc -l) frames in all"
    else
        note "(no frames captured)"
    fi
fi

# ---------------------------------------------------------------------------------------------
heading "Step 11: a flood, and the guard that drops it in XDP, before the copy"
note "xsknet echo again, now with --guard (its default policy: each source at most 50 000"
note "packets a second, malformed IPv4 dropped, the adaptive mode). The peer floods the open"
note "port from one address at 200 000 datagrams a second for 3 s (xsknet pktgen --flood udp)."
gcmd=("$XSKNET" echo --iface "$IFA" --ip "$XSK_IP/$PREFIX" --port "$PORT" --guard "${EXTRA_ARGS[@]}")
show ip netns exec "$NSA" "${gcmd[@]/#$XSK_ROOT\//}" "&"
ip netns exec "$NSA" env --default-signal=INT "${gcmd[@]}" >"$tmp/guard.log" 2>&1 &
xsk_pid=$!
wait_ready "$tmp/guard.log"
if [ "$ready" = 1 ]; then
    grep '^xsknet: ready' "$tmp/guard.log" | head -1 | indent
    flood=("$XSKNET" pktgen --iface "$IFB" --src "$PEER_IP/$PREFIX" --dst "$XSK_IP" --dst-port "$PORT"
        --flood udp --rate 200000 --duration 3)
    show ip netns exec "$NSB" "${flood[@]/#$XSK_ROOT\//}"
    in_b "${flood[@]}" >"$tmp/flood.out" 2>&1 &
    flooder=$!
    sleep 2
    note "during the flood, xsknet top: XDP sees 200 000/s, the guard drops 150 000/s, the loop"
    note "gets the 50 000/s the limit lets through:"
    in_a "$XSKNET" top --plain --count 1 >"$tmp/top2.out" 2>&1
    cut -c1-150 "$tmp/top2.out" | indent
    wait "$flooder"; rc=$?
    [ "$rc" = 0 ] || { step_failed "xsknet pktgen --flood failed:"; indent <"$tmp/flood.out"; }
    grep -E '^(xsknet-pktgen: sent|  flood )' "$tmp/flood.out" | indent
    note "after it, xsknet guard (the rules in force, drops by reason, the top talkers):"
    show ip netns exec "$NSA" "$(basename "$XSKNET")" guard
    in_a "$XSKNET" guard >"$tmp/guard.show" 2>&1 || step_failed "xsknet guard failed"
    indent <"$tmp/guard.show"
    dropped=$(awk '$1 == "XdpGuardDropSourcePps" { print $2 }' "$tmp/guard.show")
    if [ "${dropped:-0}" -gt 0 ]; then
        ok "the guard dropped $dropped frames of the flood in XDP; the softirq never copied them"
    else
        step_failed "the guard dropped nothing of a 200 000/s flood from one source"
    fi
    kill -INT "$xsk_pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$xsk_pid" 2>/dev/null || break; sleep 0.1; done
    wait "$xsk_pid"; rc=$?; xsk_pid=''
    [ "$rc" = 0 ] || step_failed "xsknet echo --guard exited with status $rc"
else
    step_failed "xsknet echo --guard did not start; its output:"
    indent <"$tmp/guard.log"
fi

# ---------------------------------------------------------------------------------------------
heading "Result"
if [ "$failed" = 0 ]; then
    ok "demo passed: xsknet answered ARP, ICMP echo, UDP echo and TCP echo, refused closed ports, and dropped a flood in XDP, all from user space"
    exit 0
fi
fail "demo failed (see the FAIL lines above)"
exit 1
