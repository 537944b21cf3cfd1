//! TCP (RFC 9293) as Linux does it (net/ipv4/tcp*.c): the three-way
//! handshake through a listener's SYN and accept queues, data with PSH, the
//! four-way close through TIME-WAIT, retransmission with RFC 6298's timer and
//! NewReno recovery, delayed ACKs and Nagle, RST and SYN checks of RFC 5961.
//!
//! | module | Linux | what |
//! |---|---|---|
//! | [`table`] | net/ipv4/inet_hashtables.c | established and listening tables, control blocks, timers |
//! | [`cb`] | include/linux/tcp.h | the control block (`tcp_sock`), request socks |
//! | [`input`] | tcp_ipv4.c, tcp_input.c, tcp_minisocks.c | `tcp_v4_rcv` and the state machine |
//! | [`offload`] | tcp_offload.c, core/gro.c | GRO's aggregates: segments whose ACK is decided once, as Linux decides it for a merged `sk_buff` |
//! | [`output`] | tcp_output.c | segments out: data, ACKs, SYN, SYN-ACK, FIN, RST |
//! | [`timer`] | tcp_timer.c | retransmission, delayed ACK, zero-window probe, TIME-WAIT |
//! | [`ca`] | tcp_cong.c | the congestion-control algorithms behind a trait, a connection's choice |
//! | [`cong`] | tcp_cong.c, tcp_input.c | RTT estimation, slow start, congestion avoidance, NewReno recovery |
//! | [`cubic`] | tcp_cubic.c | CUBIC and HyStart, the default algorithm |
//! | [`err`] | tcp_ipv4.c | `tcp_v4_err`: ICMP errors about a connection (errno, PMTU, RTO revert) |
//! | [`info`] | tcp.c | `tcp_get_info`: `TCP_INFO` for getsockopt and `ss -i` |
//! | [`mem`] | sock.c, tcp.c | memory accounting: `tcp_mem`, `tcp_memory_allocated`, pressure |
//! | [`prune`] | tcp_input.c | received data under `tcp_mem`: charging, pruning, the window under pressure |
//! | [`wmem`] | sock.c, tcp.c, tcp_input.c | data to send under `tcp_mem`: charging, the send buffer moderated, grown back and autotuned (`tcp_sndbuf_expand`), writers woken |
//! | [`prot`] | tcp_ipv4.c, tcp.c | `tcp_prot` and the socket calls: connect, listen, accept, close, shutdown |
//! | [`syncookies`] | syncookies.c | SYN cookies for a listener whose SYN queue is full |
//! | [`sack`] | tcp_input.c | SACK loss recovery, D-SACK sent and used, undo, F-RTO |
//! | [`scoreboard`] | tcp_input.c | the SACK scoreboard: what the peer SACKed, in a fixed array |
//! | [`rack`] | tcp_recovery.c, tcp_input.c, tcp_output.c | RACK-TLP: losses marked by time, the tail loss probe |
//! | [`rack_state`] | tcp.h | RACK's, TLP's and PRR's state, the transmit log in send order |
//! | [`prr`] | tcp_input.c | proportional rate reduction of the window in recovery |
//! | [`rcvbuf`] | tcp_input.c | receive-buffer autotuning (DRS): the receiver's RTT, what a round trip delivered, the buffer grown to it |
//! | [`timestamps`] | tcp_input.c, tcp_output.c, syncookies.c | RFC 7323 timestamps: where a connection, a request sock and TIME-WAIT read and write them |
//! | [`ts_state`] | tcp_input.c, tcp.h, syncookies.c | the timestamp state and clock, PAWS's checks, RTT from TSecr, the cookie's options |
//!
//! Time is passed in: every function that needs the time takes `now`, and
//! the timers are deadlines the loop checks, so tests run a 60-second
//! TIME-WAIT in microseconds of real time.

pub mod ca;
pub mod cb;
pub mod cong;
pub mod cubic;
pub mod err;
pub mod info;
pub mod input;
pub mod mem;
pub mod offload;
pub mod output;
pub mod pacing;
pub mod pacing_state;
pub mod prot;
pub mod prr;
pub mod prune;
pub mod rack;
pub mod rack_state;
pub mod rcvbuf;
pub mod sack;
pub mod scoreboard;
pub mod syncookies;
pub mod table;
pub mod timer;
pub mod timestamps;
pub mod ts_state;
pub mod wmem;

use std::time::Duration;

/// `TCP_TIMEOUT_INIT`: the first RTO, and the SYN's (RFC 6298 §2.1).
pub const TCP_TIMEOUT_INIT: Duration = Duration::from_secs(1);
/// `TCP_TIMEOUT_FALLBACK`: the RTO when the handshake gave no RTT sample
/// (RFC 6298 §5.7, `tcp_init_metrics`).
pub const TCP_TIMEOUT_FALLBACK: Duration = Duration::from_secs(3);
/// `TCP_RTO_MIN`.
pub const TCP_RTO_MIN: Duration = Duration::from_millis(200);
/// `TCP_RTO_MAX`.
pub const TCP_RTO_MAX: Duration = Duration::from_secs(120);
/// `TCP_DELACK_MIN`: the shortest delayed-ACK timeout (`HZ / 25`).
pub const TCP_DELACK_MIN: Duration = Duration::from_millis(40);
/// `TCP_ATO_MIN`: where the adaptive delayed-ACK timeout starts (`HZ / 25`).
pub const TCP_ATO_MIN: Duration = Duration::from_millis(40);
/// `TCP_DELACK_MAX`: the longest delayed-ACK timeout (`HZ / 5`,
/// `icsk_delack_max`'s default).
pub const TCP_DELACK_MAX: Duration = Duration::from_millis(200);
/// `TCP_TIMEWAIT_LEN`: TIME-WAIT lasts 60 s.
pub const TCP_TIMEWAIT_LEN: Duration = Duration::from_secs(60);
/// `net.ipv4.tcp_fin_timeout`: an orphaned FIN-WAIT-2 lasts 60 s.
pub const TCP_FIN_TIMEOUT: Duration = Duration::from_secs(60);
/// `net.ipv4.tcp_syn_retries`.
pub const TCP_SYN_RETRIES: u32 = 6;
/// `net.ipv4.tcp_syn_linear_timeouts`: the first SYN retransmissions
/// that keep the initial RTO before backoff starts (Linux 6.5 and later).
pub const TCP_SYN_LINEAR_TIMEOUTS: u32 = 4;
/// `net.ipv4.tcp_synack_retries`.
pub const TCP_SYNACK_RETRIES: u32 = 5;
/// `net.ipv4.tcp_retries2`: retransmissions of data before giving up.
pub const TCP_RETRIES2: u32 = 15;
/// `net.ipv4.tcp_max_tw_buckets` as Linux sets it on a machine of 16 GiB or
/// more (half the established hash's buckets, which scale with memory).
pub const TCP_MAX_TW_BUCKETS: usize = 131_072;
/// `net.ipv4.tcp_keepalive_time`: idle time before the first keepalive probe.
pub const TCP_KEEPALIVE_TIME: Duration = Duration::from_secs(7200);
/// `net.ipv4.tcp_keepalive_intvl`: time between keepalive probes.
pub const TCP_KEEPALIVE_INTVL: Duration = Duration::from_secs(75);
/// `net.ipv4.tcp_keepalive_probes`: unanswered probes before the connection is reset.
pub const TCP_KEEPALIVE_PROBES: u32 = 9;
/// `MAX_TCP_KEEPIDLE` and `MAX_TCP_KEEPINTVL` (include/net/tcp.h): the largest
/// `TCP_KEEPIDLE` and `TCP_KEEPINTVL`, seconds.
pub const MAX_TCP_KEEPIDLE: u32 = 32767;
/// `MAX_TCP_KEEPCNT`: the largest `TCP_KEEPCNT`.
pub const MAX_TCP_KEEPCNT: u32 = 127;
/// `TCP_RESOURCE_PROBE_INTERVAL`: the keepalive timer's retry when a probe
/// could not be sent for want of a frame (HZ/2).
pub const TCP_RESOURCE_PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// `net.ipv4.tcp_invalid_ratelimit`: at most one out-of-window or challenge ACK per this.
pub const TCP_INVALID_RATELIMIT: Duration = Duration::from_millis(500);
/// `TCP_INIT_CWND` (RFC 6928): the initial congestion window, segments.
pub const TCP_INIT_CWND: u32 = 10;
/// `TCP_MSS_DEFAULT`: the MSS when the peer sends none (RFC 9293 §3.7.1).
pub const TCP_MSS_DEFAULT: u32 = 536;
/// `TCP_MIN_MSS`: smaller offers are raised to this.
pub const TCP_MIN_MSS: u32 = 88;
/// `TCP_MAX_QUICKACKS`.
pub const TCP_MAX_QUICKACKS: u32 = 16;
/// `TCP_MAX_WSCALE` (RFC 7323 §2.3).
pub const TCP_MAX_WSCALE: u8 = 14;
/// `TCP_INFINITE_SSTHRESH`.
pub const TCP_INFINITE_SSTHRESH: u32 = 0x7fff_ffff;
/// The window-scale shift we offer: `tcp_select_initial_window`'s
/// `ilog2(tcp_rmem[2]) - 15` with the default 32 MiB `tcp_rmem[2]` that
/// `tcp_init` sets (net/ipv4/tcp.c, since Linux 6.16; 6 MiB, shift 7, before).
pub const TCP_RCV_WSCALE: u8 = 10;
/// Room a receive buffer keeps beyond the window it offers: four units of
/// the window scale. `tcp_select_window` never shrinks an offer, and rounds
/// what is left of it up to the unit at every ACK, so the right edge can
/// creep forward by less than a unit each time while the application does
/// not read; Linux's buffer limit is soft, ours is a ring of fixed size, so
/// room is set aside for that rounding (a window shrunk instead makes the
/// peer drop into zero-window probing, far worse).
pub const TCP_RCV_SLACK: usize = 4 << TCP_RCV_WSCALE;
/// Dupthresh: duplicate ACKs that start fast retransmit (RFC 5681 §3.2).
pub const TCP_FASTRETRANS_THRESH: u32 = 3;

/// `before(a, b)`: `a` precedes `b` in sequence space (RFC 9293 §3.4).
#[inline]
pub fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// `after(a, b)`.
#[inline]
pub fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_comparisons_wrap() {
        assert!(before(1, 2));
        assert!(!before(2, 2));
        assert!(before(u32::MAX, 0));
        assert!(after(0, u32::MAX));
        assert!(after(5, 0xffff_fff0));
    }
}
