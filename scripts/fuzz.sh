#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# Runs xsknet's fuzz targets (fuzz/, docs/fuzzing.md) under libFuzzer with cargo fuzz, each for
# FUZZ_SECS seconds, and prints a line per target: executions, seconds, corpus size. A crash
# stops the run with exit status 1 and names the input (in fuzz/artifacts/<target>/).
#
#   scripts/fuzz.sh                        every target, FUZZ_SECS (default 60) each
#   FUZZ_SECS=1800 scripts/fuzz.sh         the long run (30 minutes a target)
#   FUZZ_TARGETS="ipv4 rx_path" scripts/fuzz.sh
#   scripts/fuzz.sh --repro TARGET FILE    runs one input through a target (a crash, a seed)
#
# Environment: FUZZ_SECS, FUZZ_TARGETS (default: every target), FUZZ_SANITIZER (address; or
# none, faster), CARGO_TARGET_DIR. The stable toolchain builds with RUSTC_BOOTSTRAP=1 (cargo
# fuzz passes nightly flags: -Zsanitizer, sanitizer coverage). The corpus libFuzzer grows is
# kept in $CARGO_TARGET_DIR/fuzz-corpus/<target>/, beside the checked-in seeds
# (fuzz/corpus/<target>/), which it only reads.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_cargo_path || die "cargo not found: install Rust 1.95 with rustup"
cd "$XSK_ROOT"

ALL_TARGETS="ethernet arp ipv4 icmp udp tcp rx_path socket_api"
FUZZ_SECS=${FUZZ_SECS:-60}
FUZZ_TARGETS=${FUZZ_TARGETS:-$ALL_TARGETS}
[ -n "${FUZZ_TARGETS// /}" ] || FUZZ_TARGETS=$ALL_TARGETS
FUZZ_SANITIZER=${FUZZ_SANITIZER:-address}
TARGET_DIR=${CARGO_TARGET_DIR:-$XSK_ROOT/target}
export CARGO_TARGET_DIR=$TARGET_DIR RUSTC_BOOTSTRAP=1

have cargo-fuzz || "$XSK_ROOT/scripts/deps.sh" fuzz
have cargo-fuzz || die "cargo fuzz is missing: run 'make deps'"

# The build options every run uses: optimized, with debug assertions and overflow checks.
build_opts=(-O --debug-assertions --sanitizer "$FUZZ_SANITIZER")

if [ "${1:-}" = --repro ]; then
    [ $# -eq 3 ] || die "usage: $0 --repro TARGET FILE"
    cd fuzz
    exec cargo fuzz run "${build_opts[@]}" "$2" "$(realpath "$3")"
fi

for t in $FUZZ_TARGETS; do
    [[ " $ALL_TARGETS " == *" $t "* ]] || die "unknown target '$t' (targets: $ALL_TARGETS)"
done
[[ "$FUZZ_SECS" =~ ^[0-9]+$ ]] && [ "$FUZZ_SECS" -gt 0 ] || die "FUZZ_SECS must be a number of seconds"

cd fuzz
echo "fuzz: building $FUZZ_TARGETS (sanitizer $FUZZ_SANITIZER, debug assertions on)"
read -ra selected <<<"$FUZZ_TARGETS"
if [ "${selected[*]}" = "$ALL_TARGETS" ]; then
    cargo fuzz build "${build_opts[@]}"
else
    for t in "${selected[@]}"; do cargo fuzz build "${build_opts[@]}" "$t"; done
fi

summary=()
for t in $FUZZ_TARGETS; do
    corpus=$TARGET_DIR/fuzz-corpus/$t
    mkdir -p "$corpus" "artifacts/$t"
    log=$(mktemp "/tmp/xsknet-fuzz-$t.XXXXXX")
    # A stack target makes a UMEM per input, and a process has ids for 2^20 UMEMs
    # (umem.rs): those run in pieces of at most 500 000 inputs, each piece a new process
    # that starts from the corpus the previous ones grew.
    runs=()
    case $t in rx_path|socket_api) runs=(-runs=500000 -max_len=16384) ;; esac
    start=$(date +%s) execs=0
    while :; do
        left=$(( FUZZ_SECS - ($(date +%s) - start) ))
        [ "$left" -gt 0 ] || break
        status=0
        cargo fuzz run "${build_opts[@]}" "$t" "$corpus" "corpus/$t" -- \
            -max_total_time="$left" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 "${runs[@]}" \
            >"$log" 2>&1 || status=$?
        n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        execs=$(( execs + ${n:-0} ))
        if [ "$status" -ne 0 ]; then
            tail -n 60 "$log" >&2
            artifact=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -n 1 | sed 's/Test unit written to //')
            fail "fuzz target $t crashed after $execs executions${artifact:+: input in fuzz/$artifact}"
            echo "    reproduce: scripts/fuzz.sh --repro $t fuzz/${artifact:-artifacts/$t/<file>}" >&2
            echo "    then keep it as a test: copy it to fuzz/regressions/$t/ (docs/fuzzing.md)" >&2
            rm -f "$log"
            exit 1
        fi
    done
    secs=$(( $(date +%s) - start ))
    rm -f "$log"
    line=$(printf '%-11s %12d executions in %5d s (%d/s), corpus %d inputs' "$t" "$execs" "$secs" \
        $(( execs / (secs > 0 ? secs : 1) )) "$(find "$corpus" -type f | wc -l)")
    echo "fuzz: $line"
    summary+=("$line")
done
echo
echo "fuzz: every target ran clean:"
printf '  %s\n' "${summary[@]}"
