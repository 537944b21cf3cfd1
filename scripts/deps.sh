#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# Installs the Debian packages xsknet needs to build, test and demo, and only those missing.
# When everything is present it changes nothing and takes a few milliseconds: every package is
# checked by what we use from it (a command or a header), and apt-get runs only for the missing.
#
#   scripts/deps.sh              install what is missing (one line per package installed)
#   scripts/deps.sh -q           the same, silent when nothing is missing
#   scripts/deps.sh --check      install nothing; list what is missing; exit 1 if anything is
#   scripts/deps.sh --check build   only what `cargo build` needs (clang and the BPF headers)
#   scripts/deps.sh fuzz         what `make fuzz` needs: the build's packages and cargo-fuzz
#   scripts/deps.sh run          what test, demo, bench and soak need: every package, no cargo-fuzz
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# package | how to tell it is there (cmd:NAME, file:PATH or pkg: its dpkg status) | needed for
DEPS='
clang          | cmd:clang                            | build  (build.rs compiles xdp-prog/ with clang -target bpf)
llvm           | cmd:llvm-strip                       | build  (llvm-objdump/llvm-strip for the BPF object)
libbpf-dev     | file:/usr/include/bpf/bpf_helpers.h  | build  (bpf_helpers.h for the XDP program)
linux-libc-dev | file:/usr/include/linux/if_xdp.h     | build  (linux/bpf.h, linux/if_xdp.h)
iproute2       | cmd:ip                               | test   (ip netns, veth pairs)
ethtool        | cmd:ethtool                          | test   (ethtool -K <peer> tx off)
iputils-ping   | cmd:ping                             | test   (ICMP echo peer)
socat          | cmd:socat                            | test   (UDP peer)
tcpdump        | cmd:tcpdump                          | test   (captures when a test fails)
tshark         | cmd:tshark                           | test   (reads back the pcapng files of xsknet --pcap)
netcat-openbsd | pkg:netcat-openbsd                   | test   (nc -u peer)
netsniff-ng    | cmd:trafgen                          | test   (trafgen load generator)
procps         | cmd:pkill                            | test   (ps, pkill, sysctl)
curl           | cmd:curl                             | test   (HTTP client against xsknet http)
wget           | cmd:wget                             | test   (HTTP client against xsknet http)
apache2-utils  | cmd:ab                               | test   (ab: HTTP load against xsknet http)
python3        | cmd:python3                          | test   (python3 -m http.server: a kernel HTTP server)
tmux           | cmd:tmux                             | test   (a pseudo-terminal for xsknet top, read with capture-pane)
prometheus     | cmd:promtool                         | test   (promtool check metrics on xsknet --metrics; no service is started)
nginx          | cmd:nginx                            | test   (make bench: a kernel HTTP server beside xsknet http; config in the run directory, no service is started)
wrk            | cmd:wrk                              | test   (make bench: keep-alive HTTP requests per second)
iperf3         | cmd:iperf3                           | test   (make bench: bulk TCP receive by the kernel)
hping3         | cmd:hping3                           | test   (make bench: the SYN flood beside legitimate connects)
'

check_only=0 quiet=0 group=all
while [ $# -gt 0 ]; do
    case "$1" in
        --check) check_only=1 ;;
        -q|--quiet) quiet=1 ;;
        build|fuzz|run|all) group=$1 ;;
        -h|--help) sed -n '4,13s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done

present() { # present CHECK
    case "$1" in
        cmd:*) have "${1#cmd:}" ;;
        file:*) [ -e "${1#file:}" ] ;;
        pkg:*)
            if have dpkg-query; then
                dpkg-query -W -f='${Status}' "${1#pkg:}" 2>/dev/null | grep -q 'install ok installed'
            else
                have nc
            fi ;;
    esac
}

missing=() missing_why=()
while IFS='|' read -r pkg check why; do
    pkg=${pkg// /} check=${check// /}
    [ -n "$pkg" ] || continue
    why=$(echo "$why" | tr -s ' ' | sed 's/^ //')
    [ "$group" != all ] && [ "$group" != run ] && [ "${why%% *}" != build ] && continue
    present "$check" && continue
    missing+=("$pkg")
    missing_why+=("$pkg: ${check#*:} not found; needed for ${why}")
done <<<"$DEPS"

cargo_ok=1
ensure_cargo_path || cargo_ok=0

# cargo-fuzz (`make fuzz`, docs/fuzzing.md), from crates.io: 0.13.2 builds with Rust 1.95.
CARGO_FUZZ_VERSION=0.13.2
fuzz_missing=0
if { [ "$group" = fuzz ] || [ "$group" = all ]; } && [ "$cargo_ok" = 1 ] && ! have cargo-fuzz; then
    fuzz_missing=1
fi

if [ "$check_only" = 1 ]; then
    for m in "${missing_why[@]}"; do echo "deps: missing $m" >&2; done
    [ "$cargo_ok" = 1 ] || echo "deps: missing cargo (Rust toolchain)" >&2
    [ "$fuzz_missing" = 0 ] || echo "deps: missing cargo-fuzz; needed for make fuzz" >&2
    [ ${#missing[@]} -eq 0 ] && [ "$cargo_ok" = 1 ] && [ "$fuzz_missing" = 0 ]
    exit
fi

if [ ${#missing[@]} -gt 0 ]; then
    have apt-get || die "missing ${missing[*]} and there is no apt-get: install them with your distribution's package manager"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        have sudo || die "missing ${missing[*]}; run as root: 'sudo make deps' (or: sudo apt-get install ${missing[*]})"
        echo "deps: not root, using sudo for apt-get (or run 'sudo make deps')"
        sudo=(sudo)
    fi
    log=$(mktemp /tmp/xsknet-deps.XXXXXX)
    # Packages install their tools only: a package's postinst would start its service (prometheus
    # and nginx do), so while apt-get runs a policy-rc.d answers 101 ("action forbidden", invoke-rc.d(8)).
    # One the machine already has is left as it is.
    policy=/usr/sbin/policy-rc.d policy_ours=0
    trap 'rm -f "$log"; [ "$policy_ours" = 0 ] || "${sudo[@]}" rm -f "$policy"' EXIT
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# scripts/deps.sh: no service starts while packages install\nexit 101\n' |
            "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        policy_ours=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    echo "deps: installing ${missing[*]}"
    # wireshark-common (pulled in by tshark) asks whether non-root users may
    # capture: answer no beforehand, so the install never stops on a question.
    if [[ " ${missing[*]} " == *" tshark "* ]] && have debconf-set-selections; then
        echo 'wireshark-common wireshark-common/install-setuid boolean false' | "${sudo[@]}" debconf-set-selections
    fi
    if ! "${sudo[@]}" apt-get update -q >"$log" 2>&1; then
        tail -n 20 "$log" >&2; die "apt-get update failed"
    fi
    if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
        tail -n 20 "$log" >&2; die "apt-get install ${missing[*]} failed"
    fi
    for m in "${missing_why[@]}"; do
        pkg=${m%%:*}
        ver=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)
        echo "deps: installed $pkg ${ver}"
    done
    # Did every package bring what we look for?
    still=()
    while IFS='|' read -r pkg check _; do
        pkg=${pkg// /} check=${check// /}
        [ -n "$pkg" ] || continue
        [[ " ${missing[*]} " == *" $pkg "* ]] || continue
        present "$check" || still+=("$pkg (${check#*:})")
    done <<<"$DEPS"
    [ ${#still[@]} -eq 0 ] || die "installed but still not found: ${still[*]}"
elif [ "$quiet" = 0 ] && [ "$fuzz_missing" = 0 ]; then
    echo "deps: all present (nothing to install)"
fi

if [ "$fuzz_missing" = 1 ]; then
    echo "deps: installing cargo-fuzz $CARGO_FUZZ_VERSION (cargo install --locked; a few minutes)"
    log=$(mktemp /tmp/xsknet-deps.XXXXXX)
    if ! cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION" >"$log" 2>&1; then
        tail -n 20 "$log" >&2; rm -f "$log"; die "cargo install cargo-fuzz failed"
    fi
    rm -f "$log"
    have cargo-fuzz || die "cargo-fuzz installed but not on PATH (add ~/.cargo/bin)"
    echo "deps: installed $(cargo fuzz --version 2>/dev/null || echo cargo-fuzz)"
fi

if [ "$cargo_ok" = 0 ]; then
    die "cargo not found. xsknet needs Rust 1.95 or later: install it with rustup (rust-lang.org/tools/install), then open a new shell or 'source ~/.cargo/env'. Debian's own cargo package is too old. Under sudo, keep your PATH: 'sudo -E env PATH=\"\$PATH\" make ...'"
fi
