# shellcheck shell=bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Shell helpers shared by scripts/*.sh and .ci/run. Source it; it sets no shell options.

# Repository root (the directory above scripts/).
# shellcheck disable=SC2034  # used by the scripts that source this
XSK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# ip, ethtool and trafgen live in sbin, which a non-login or sudo PATH may lack.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"; export PATH ;; esac

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
    _b=$'\e[1m' _r=$'\e[31m' _g=$'\e[32m' _y=$'\e[33m' _0=$'\e[0m'
else
    _b='' _r='' _g='' _y='' _0=''
fi

# heading "Step 3: start xsknet": a section title in a story-like output.
heading() { printf '\n%s==> %s%s\n' "$_b" "$*" "$_0"; }
note()    { printf '    %s\n' "$*"; }
ok()      { printf '    %sok%s: %s\n' "$_g" "$_0" "$*"; }
warn()    { printf '    %swarning%s: %s\n' "$_y" "$_0" "$*" >&2; }
fail()    { printf '    %sFAIL%s: %s\n' "$_r" "$_0" "$*" >&2; }
die()     { printf '%s: %serror%s: %s\n' "${0##*/}" "$_r" "$_0" "$*" >&2; exit 1; }

# show CMD...: print a command the way a reader would type it; run CMD...: show it, then run it.
# (Where the output of a command is captured, show it first and run it apart.)
show() { printf '    # %s\n' "$*"; }
run() { show "$@"; "$@"; }

# indent: prefix every line of stdin, so program output stands apart from the narration.
indent() { sed 's/^/    | /'; }

have() { command -v "$1" >/dev/null 2>&1; }

# need_root WHAT: exit with a clear message unless we are root.
need_root() {
    [ "$(id -u)" -eq 0 ] && return 0
    die "$1 needs root (network namespaces, XDP and AF_XDP need CAP_NET_ADMIN, CAP_BPF and CAP_SYS_ADMIN): run it with sudo, e.g. 'sudo -E env PATH=\"\$PATH\" make demo'"
}

# Cargo may live in ~/.cargo/bin without being on PATH (sudo, CI's environment).
ensure_cargo_path() {
    have cargo && return 0
    local d
    for d in "${CARGO_HOME:-$HOME/.cargo}/bin" /root/.cargo/bin; do
        if [ -x "$d/cargo" ]; then
            PATH="$d:$PATH"
            export PATH
            return 0
        fi
    done
    return 1
}
