//! `TCP_INFO`: what a connection's control block tells about it, for
//! `getsockopt(TCP_INFO)` and for the socket listing (`ss -i`), as
//! `tcp_get_info` in net/ipv4/tcp.c fills `struct tcp_info`.

use crate::stream::TcpState;

use super::cb::TcpCb;

/// What `getsockopt(TCP_INFO)` tells about a connection (`struct tcp_info`, the common fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TcpInfo {
    /// `tcpi_state`.
    pub state: TcpState,
    /// The options agreed (`tcpi_options`): [`TCPI_OPT_TIMESTAMPS`],
    /// [`TCPI_OPT_SACK`], [`TCPI_OPT_WSCALE`].
    pub options: u8,
    /// The peer's window-scale shift (`tcpi_snd_wscale`), with `TCPI_OPT_WSCALE`.
    pub snd_wscale: u8,
    /// Ours (`tcpi_rcv_wscale`).
    pub rcv_wscale: u8,
    /// Smoothed RTT, µs (`tcpi_rtt`).
    pub rtt_us: u32,
    /// RTT variation, µs (`tcpi_rttvar`).
    pub rttvar_us: u32,
    /// The smallest RTT seen, µs (`tcpi_min_rtt`: `tcp_min_rtt`; `u32::MAX`
    /// before the first sample, as Linux's `~0U`).
    pub min_rtt_us: u32,
    /// The retransmission timeout with backoff, µs (`tcpi_rto`).
    pub rto_us: u32,
    /// Congestion window, segments (`tcpi_snd_cwnd`).
    pub snd_cwnd: u32,
    /// Slow-start threshold, segments (`tcpi_snd_ssthresh`).
    pub snd_ssthresh: u32,
    /// Our MSS for sending (`tcpi_snd_mss`).
    pub snd_mss: u32,
    /// The peer's segment size as seen (`tcpi_rcv_mss`).
    pub rcv_mss: u32,
    /// Timeouts in a row (`tcpi_retransmits`).
    pub retransmits: u32,
    /// Segments retransmitted (`tcpi_total_retrans`).
    pub total_retrans: u32,
    /// Segments SACKed (`tcpi_sacked`: `sacked_out`).
    pub sacked: u32,
    /// Segments the peer reported received twice (`tcpi_dsack_dups`).
    pub dsack_dups: u32,
    /// The reordering degree, segments (`tcpi_reordering`: `tp->reordering`,
    /// 3 until reordering is seen).
    pub reordering: u32,
    /// Times reordering was seen (`tcpi_reord_seen`).
    pub reord_seen: u32,
    /// Segments sent and not acknowledged (`tcpi_unacked`: `packets_out`);
    /// for a listener, the connections waiting for `accept`.
    pub unacked: u32,
    /// Bytes the peer acknowledged (`tcpi_bytes_acked`).
    pub bytes_acked: u64,
    /// Bytes received (`tcpi_bytes_received`).
    pub bytes_received: u64,
    /// Segments sent (`tcpi_segs_out`).
    pub segs_out: u64,
    /// Segments received (`tcpi_segs_in`).
    pub segs_in: u64,
    /// The peer's window, bytes (`tcpi_snd_wnd`).
    pub snd_wnd: u32,
    /// The window we offer, bytes (`tcpi_rcv_wnd`).
    pub rcv_wnd: u32,
    /// The receiver's RTT estimate, µs (`tcpi_rcv_rtt`; receive-buffer
    /// autotuning's, `super::rcvbuf`; 0: none yet).
    pub rcv_rtt_us: u32,
    /// What the application read in the last round trip measured, bytes
    /// (`tcpi_rcv_space`: `rcvq_space.space`).
    pub rcv_space: u32,
    /// The most we offer for now, bytes (`tcpi_rcv_ssthresh`).
    pub rcv_ssthresh: u32,
    /// The congestion-control algorithm (not in `tcp_info`: `INET_DIAG_CONG`,
    /// which `ss -i` prints first).
    pub congestion: crate::stream::CongAlgo,
    /// `tcpi_pacing_rate`: `sk_pacing_rate`, bytes per second (`u64::MAX`: none yet).
    pub pacing_rate: u64,
    /// `tcpi_max_pacing_rate`: `SO_MAX_PACING_RATE`, bytes per second (`u64::MAX`: unset).
    pub max_pacing_rate: u64,
}

/// `TCPI_OPT_TIMESTAMPS` (include/uapi/linux/tcp.h): RFC 7323 timestamps agreed.
pub const TCPI_OPT_TIMESTAMPS: u8 = 1;
/// `TCPI_OPT_SACK`: SACK agreed.
pub const TCPI_OPT_SACK: u8 = 2;
/// `TCPI_OPT_WSCALE`: window scaling agreed.
pub const TCPI_OPT_WSCALE: u8 = 4;

/// The `tcp_info` of a socket in `state`, from its control block `cb` if it
/// has one (a socket not yet connected or listening has none: zeros). A
/// listener reports what `tcp_get_info` fills before its early return for
/// `TCP_LISTEN`: the window it was made with (`TCP_INIT_CWND`), `tcpi_reordering`, the children
/// ready for `accept` in `tcpi_unacked`, and (`INET_DIAG_CONG`) the
/// algorithm its children will take; nothing else (so `ss -i` prints
/// `cubic cwnd:10` for it, as for a kernel listener).
pub fn tcp_get_info(state: TcpState, cb: Option<&TcpCb>) -> TcpInfo {
    let zeros = |state| TcpInfo {
        state,
        options: 0,
        snd_wscale: 0,
        rcv_wscale: 0,
        rtt_us: 0,
        rttvar_us: 0,
        min_rtt_us: 0,
        rto_us: 0,
        snd_cwnd: 0,
        snd_ssthresh: 0,
        snd_mss: 0,
        rcv_mss: 0,
        retransmits: 0,
        total_retrans: 0,
        sacked: 0,
        dsack_dups: 0,
        reordering: super::scoreboard::TCP_REORDERING,
        reord_seen: 0,
        unacked: 0,
        bytes_acked: 0,
        bytes_received: 0,
        segs_out: 0,
        segs_in: 0,
        snd_wnd: 0,
        rcv_wnd: 0,
        rcv_rtt_us: 0,
        rcv_space: 0,
        rcv_ssthresh: 0,
        congestion: crate::stream::CongAlgo::default(),
        pacing_rate: u64::MAX,
        max_pacing_rate: u64::MAX,
    };
    if let Some(cb) = cb.filter(|cb| cb.state == TcpState::Listen) {
        let tsk = cb.tsk();
        return TcpInfo {
            snd_cwnd: cb.cwnd,
            reordering: cb.sack.reordering,
            unacked: tsk.accept_backlog() as u32,
            congestion: tsk.congestion(),
            ..zeros(cb.state)
        };
    }
    let Some(cb) = cb else { return zeros(state) };
    let wscale_ok = cb.rcv_wscale > 0 || cb.snd_wscale > 0;
    let options = (if cb.ts.ok { TCPI_OPT_TIMESTAMPS } else { 0 })
        | (if cb.sack_ok { TCPI_OPT_SACK } else { 0 })
        | (if wscale_ok { TCPI_OPT_WSCALE } else { 0 });
    TcpInfo {
        state: cb.state,
        options,
        snd_wscale: if wscale_ok { cb.snd_wscale } else { 0 },
        rcv_wscale: if wscale_ok { cb.rcv_wscale } else { 0 },
        rtt_us: cb.srtt_us,
        rttvar_us: cb.rttvar_us,
        min_rtt_us: cb.rack.min_rtt_us,
        rto_us: cb.rto_backed_off().as_micros() as u32,
        snd_cwnd: cb.cwnd,
        snd_ssthresh: cb.ssthresh,
        snd_mss: cb.mss,
        rcv_mss: cb.rcv_mss,
        retransmits: cb.retransmits,
        total_retrans: cb.total_retrans,
        sacked: cb.sack.sacked_out(cb.mss),
        dsack_dups: cb.sack.dsack_dups,
        reordering: cb.sack.reordering,
        reord_seen: cb.sack.reord_seen,
        unacked: cb.packets_out(),
        bytes_acked: cb.bytes_acked,
        bytes_received: cb.bytes_received,
        segs_out: cb.segs_out,
        segs_in: cb.segs_in,
        snd_wnd: cb.snd_wnd,
        rcv_wnd: cb.rcv_wnd,
        rcv_rtt_us: cb.rcvq.rtt_us(),
        rcv_space: cb.rcvq.space,
        rcv_ssthresh: cb.rcv_ssthresh,
        congestion: cb.ca.algo(),
        pacing_rate: cb.pacing.rate,
        max_pacing_rate: cb.pacing.max_rate,
    }
}
