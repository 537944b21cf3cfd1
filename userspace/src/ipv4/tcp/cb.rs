//! The TCP control block (`struct tcp_sock`, include/linux/tcp.h): every
//! sequence number, window, timer and congestion variable of one connection,
//! owned by the loop. The application never sees it: it shares only the
//! sock's state word and byte buffers (`crate::stream`).
//!
//! Request socks (`struct tcp_request_sock`) of a listener's SYN queue are
//! here too: a SYN makes one, the final ACK turns it into a control block.

use super::ca::Congestion;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::hash::BuildHasherDefault;
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringbuf::traits::Observer;

use super::{after, before, TCP_TIMEOUT_INIT};
use crate::inet_hashtables::FxHasher;
use crate::sock::{Sock, TcpSock};
use crate::stream::{LoopBufs, TcpState};
use crate::wire::tcp::SackBlock;

/// A listener's SYN queue: request socks by the peer's address.
pub type SynQueue = HashMap<SocketAddrV4, RequestSock, BuildHasherDefault<FxHasher>>;

/// A connection's recovery state (`icsk_ca_state`, the part NewReno uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaState {
    /// Nothing lost.
    Open,
    /// Three duplicate ACKs: fast recovery until `high_seq` is acknowledged (RFC 6582).
    Recovery,
    /// A retransmission timeout: everything in flight is taken as lost.
    Loss,
}

/// Out-of-order data waiting for the gap before it (`out_of_order_queue`).
#[derive(Clone, Debug)]
pub struct OfoSeg {
    /// Sequence number of the first byte.
    pub seq: u32,
    /// The bytes.
    pub data: Vec<u8>,
    /// A FIN follows the last byte.
    pub fin: bool,
}

impl OfoSeg {
    /// Sequence number after the last byte (the FIN not included).
    pub fn end(&self) -> u32 {
        self.seq.wrapping_add(self.data.len() as u32)
    }
}

/// The buffers of out-of-order segments given back, for the next ones: a
/// loss episode allocates only while the out-of-order queues of all
/// connections grow past what they held before (where Linux keeps the
/// `sk_buff` itself in `out_of_order_queue`, xsknet copies the bytes out
/// of the frame, which goes back to the fill ring at once).
///
/// Bounded: at most [`OfoBufs::KEEP`] buffers of at most
/// [`OfoBufs::KEEP_CAPACITY`] bytes each are kept (1.5 MiB at most with
/// 1500-byte segments); others are freed.
#[derive(Debug, Default)]
pub struct OfoBufs {
    free: Vec<Vec<u8>>,
    /// Scratch for `tcp_data_queue_ofo`: the pieces of a segment that no
    /// queued one holds, as `[start, end)` sequence numbers.
    pub pieces: Vec<(u32, u32)>,
}

impl OfoBufs {
    /// Buffers kept at most.
    pub const KEEP: usize = 1024;
    /// The largest buffer kept, bytes (a 9000-byte jumbo segment's fits).
    pub const KEEP_CAPACITY: usize = 9216;

    /// A buffer holding a copy of `data`: a kept one if it is large enough,
    /// else a new one.
    pub fn copy_of(&mut self, data: &[u8]) -> Vec<u8> {
        match self.free.pop() {
            Some(mut v) if v.capacity() >= data.len() => {
                v.clear();
                v.extend_from_slice(data);
                v
            }
            Some(v) => {
                self.free.push(v);
                data.to_vec()
            }
            None => data.to_vec(),
        }
    }

    /// Gives `v` back (kept if there is room and it is not too large).
    pub fn give(&mut self, v: Vec<u8>) {
        if self.free.len() < Self::KEEP && (1..=Self::KEEP_CAPACITY).contains(&v.capacity()) {
            self.free.push(v);
        }
    }

    /// Gives back the buffers of every segment of `ofo`, which is left empty.
    pub fn give_all(&mut self, ofo: &mut Vec<OfoSeg>) {
        for o in ofo.drain(..) {
            self.give(o.data);
        }
    }

    /// Buffers kept now.
    pub fn kept(&self) -> usize {
        self.free.len()
    }
}

/// A half-open connection on a listener's SYN queue (`tcp_request_sock`).
#[derive(Clone, Debug)]
pub struct RequestSock {
    /// Our initial sequence number (`snt_isn`).
    pub iss: u32,
    /// The peer's (`rcv_isn`).
    pub irs: u32,
    /// The MSS the peer offered (536 without the option).
    pub mss: u16,
    /// The peer's window-scale shift, if it offered the option.
    pub snd_wscale: Option<u8>,
    /// The peer offered SACK.
    pub sack_ok: bool,
    /// The window the peer's SYN carried (never scaled).
    pub snd_wnd: u16,
    /// SYN-ACK retransmissions so far (`num_timeout`).
    pub num_timeout: u32,
    /// SYN-ACKs sent again, by the timer or for a retransmitted SYN (`num_retrans`).
    pub num_retrans: u32,
    /// When the SYN-ACK is retransmitted next.
    pub expires: Instant,
    /// The final ACK came while the accept queue was full (`acked`).
    pub acked: bool,
    /// When the first SYN-ACK left (for an RTT sample if it is not retransmitted).
    pub sent_at: Instant,
    /// When we last answered a repeated or out-of-window segment (`last_oow_ack_time`).
    pub last_oow_ack: Option<Instant>,
    /// Rebuilt from a SYN cookie (`cookie_v4_check`): no SYN-ACK time to
    /// take an RTT sample from.
    pub from_cookie: bool,
    /// Timestamps, when the SYN offered them and `tcp_timestamps` is on (`tstamp_ok`).
    pub ts: Option<super::ts_state::ReqTs>,
}

/// How many in-flight segments' send times a connection keeps.
pub const SENT_TIMES: usize = 256;

/// Segments whose boundaries [`TcpCb::rtx_ends`] keeps: more than a 256 KiB
/// send buffer holds in full-sized segments; past it, a new segment joins
/// the newest (which then counts as a multi-segment skb does,
/// `tcp_skb_pcount`).
pub const RTX_ENDS: usize = 512;

impl RequestSock {
    /// The retransmission timeout after `num_timeout` SYN-ACKs
    /// (`TCP_TIMEOUT_INIT << num_timeout`, capped at `TCP_RTO_MAX`).
    pub fn timeout(&self) -> Duration {
        (TCP_TIMEOUT_INIT * (1u32 << self.num_timeout.min(7))).min(super::TCP_RTO_MAX)
    }

    /// The MSS the SYN-ACK's window is a multiple of: `advmss` less the
    /// timestamps option when the request has them (`tcp_openreq_init_rwin`).
    pub fn window_mss(&self, advmss: u32) -> u32 {
        if self.ts.is_some() {
            advmss - super::ts_state::TCPOLEN_TSTAMP_ALIGNED
        } else {
            advmss
        }
    }
}

/// A listener's own state.
#[derive(Default)]
pub struct Listener {
    /// The SYN queue (`icsk_accept_queue.rskq` request socks, `qlen`).
    pub syn_queue: SynQueue,
    /// When a SYN cookie was last sent (`tcp_synq_overflow`, kept at most
    /// once a second): ACKs are checked for cookies until
    /// `TCP_SYNCOOKIE_VALID` after it.
    pub last_overflow: Option<Instant>,
}

/// One TCP connection (or listener), as the loop sees it.
pub struct TcpCb {
    /// The sock the application holds (shared part in `sock.tcp()`).
    pub sock: Arc<Sock>,
    /// `sk_state`; mirrored into the sock's state word by `tcp_set_state`.
    pub state: TcpState,
    /// Our address and port.
    pub local: SocketAddrV4,
    /// The peer's (unspecified for a listener).
    pub remote: SocketAddrV4,
    /// The loop's halves of the byte buffers (none for a listener, and none
    /// once the connection is over).
    pub bufs: Option<LoopBufs>,
    /// The application has closed the socket (`SOCK_DEAD`): nobody reads.
    pub orphan: bool,
    /// A listener's SYN queue.
    pub listener: Option<Box<Listener>>,

    // Send sequence space (RFC 9293 §3.3.1).
    /// Initial send sequence number.
    pub iss: u32,
    /// Oldest unacknowledged sequence number.
    pub snd_una: u32,
    /// Next sequence number to send.
    pub snd_nxt: u32,
    /// Highest sequence number sent + 1: what is below it and sent again is a retransmission.
    pub snd_max: u32,
    /// The peer's receive window, bytes (scaled).
    pub snd_wnd: u32,
    /// Segment sequence number used for the last window update.
    pub snd_wl1: u32,
    /// Segment acknowledgment number used for the last window update.
    pub snd_wl2: u32,
    /// Largest window the peer has offered (`max_window`).
    pub max_window: u32,
    /// The peer's window-scale shift (`snd_wscale`).
    pub snd_wscale: u8,
    /// Bytes per segment we send (`mss_cache`): the peer's MSS, capped by ours.
    pub mss: u32,
    /// `icsk_pmtu_cookie`: the path MTU the MSS was last cut for (0: the
    /// device's, never lowered by an ICMP fragmentation needed).
    pub pmtu_cookie: u32,
    /// Sequence number of our FIN, once it is queued.
    pub fin_seq: Option<u32>,
    /// End of the last segment sent with PSH (`pushed_seq`, for `forced_push`).
    pub pushed_seq: u32,
    /// End of the last segment sent smaller than the MSS (`snd_sml`, Minshall's Nagle).
    pub snd_sml: u32,

    // Receive sequence space.
    /// Initial receive sequence number.
    pub irs: u32,
    /// Next sequence number expected.
    pub rcv_nxt: u32,
    /// The window we last advertised, bytes.
    pub rcv_wnd: u32,
    /// The most we offer for now (`rcv_ssthresh`): the initial window, grown
    /// by two segments per data segment received (`tcp_grow_window`).
    pub rcv_ssthresh: u32,
    /// `rcv_nxt` when we last advertised a window (`rcv_wup`).
    pub rcv_wup: u32,
    /// Our window-scale shift (`rcv_wscale`).
    pub rcv_wscale: u8,
    /// The MSS we offer (`advmss`).
    pub advmss: u32,
    /// Our estimate of the peer's segment size (`icsk_ack.rcv_mss`).
    pub rcv_mss: u32,
    /// The peer agreed to SACK (used by the next issue's loss recovery).
    pub sack_ok: bool,
    /// RFC 7323 timestamps: agreed or not, `ts_recent`, our offset.
    pub ts: super::ts_state::TsState,
    /// Out-of-order data, sorted by sequence number, not overlapping.
    pub ofo: Vec<OfoSeg>,
    /// Bytes held in `ofo`.
    pub ofo_bytes: usize,
    /// Its share of TCP memory (`sk_forward_alloc`, `sk_rmem_alloc`).
    pub mem: super::mem::SkMem,
    /// Receive-buffer autotuning's RTT estimate and measurement
    /// (`rcv_rtt_est`, `rcvq_space`; `super::rcvbuf`).
    pub rcvq: super::rcvbuf::RcvSpace,
    /// The receive buffer autotuning asked for and did not get yet (the
    /// application held the ring), bytes; 0: none pending.
    pub rcvbuf_want: usize,
    /// This connection's share of the stack's grown ring bytes
    /// (`super::mem::RingsGrown`), given back when it is dropped.
    pub rcvbuf_charge: Option<super::mem::RingCharge>,
    /// This connection's share of the grown ring bytes for its send ring
    /// (`super::wmem::tcp_sndbuf_expand`), given back when it is dropped.
    pub sndbuf_charge: Option<super::mem::RingCharge>,
    /// Where the most recent out-of-order segment began: the SACK block
    /// that holds it goes first (RFC 2018 §4).
    pub sack_recent: u32,
    /// The SACK scoreboard, D-SACK and undo state (`super::sack`).
    pub sack: super::scoreboard::Scoreboard,
    /// RACK-TLP's and PRR's state and the transmit log (`super::rack`, `super::prr`).
    pub rack: super::rack_state::RackState,
    /// Pacing: `sk_pacing_rate`, internal pacing's next departure time and timer (`super::pacing`).
    pub pacing: super::pacing_state::Pacing,

    // Congestion control: the algorithm's growth and decrease (CUBIC or
    // Reno), NewReno recovery (RFC 5681, RFC 6582).
    /// The algorithm and its state (`icsk_ca_ops`, `icsk_ca_priv`).
    pub ca: Congestion,
    /// When data was last sent (`lsndtime`).
    pub lsndtime: Option<Instant>,
    /// Congestion window, segments.
    pub cwnd: u32,
    /// ACKed segments counted towards the next cwnd increase in congestion avoidance.
    pub cwnd_cnt: u32,
    /// Slow-start threshold, segments.
    pub ssthresh: u32,
    /// Duplicate ACKs in a row.
    pub dupacks: u32,
    /// Recovery state.
    pub ca_state: CaState,
    /// `high_seq`: recovery ends when this is acknowledged.
    pub high_seq: u32,
    /// `tp->frto`: F-RTO (RFC 5682, SACK-enhanced, `net.ipv4.tcp_frto` 2)
    /// watches the ACKs after a timeout for data never sent again being
    /// acknowledged, which shows the timeout spurious.
    pub frto: bool,
    /// The highest sequence number sent again since the timeout: data from
    /// here to `high_seq` was sent once (`!TCPCB_RETRANS`).
    pub loss_rexmit_hi: u32,
    /// F-RTO step 2b: the old data `[from, to)` not yet sent again, skipped
    /// while new data probes the path (not in flight, `pipe`); sent again
    /// from `from` if the loss proves real.
    pub frto_gap: Option<(u32, u32)>,

    // Round-trip time and retransmission timeout (RFC 6298).
    /// Smoothed RTT, µs (0: no sample yet).
    pub srtt_us: u32,
    /// RTT variation, µs.
    pub rttvar_us: u32,
    /// The current retransmission timeout, backoff not included.
    pub rto: Duration,
    /// The segment being timed: its end sequence number and send time (Karn: never a retransmitted one).
    pub rtt_probe: Option<(u32, Instant)>,
    /// The segments in flight sent once: end sequence number and send time,
    /// oldest first, at most [`SENT_TIMES`] (the oldest give way): where
    /// every ACK of new data takes the congestion control's RTT sample, as
    /// `tcp_clean_rtx_queue` takes it from the newest acknowledged skb.
    /// Made at the connection's start, never grown.
    pub sent_times: VecDeque<(u32, Instant)>,
    /// The retransmission queue's skbs (`tcp_rtx_queue`) as xsknet keeps
    /// them: the end sequence number of each data segment (or FIN) as first
    /// sent, oldest first, at most [`RTX_ENDS`]; dropped once acknowledged.
    /// What `packets_out` counts ([`TcpCb::packets_out`]). Made at the
    /// connection's start, never grown.
    pub rtx_ends: VecDeque<u32>,
    /// RTO backoff exponent (`icsk_backoff`).
    pub backoff: u32,
    /// Retransmission timeouts in a row (`icsk_retransmits`).
    pub retransmits: u32,
    /// When the first retransmission of the current episode left (`retrans_stamp`).
    pub retrans_stamp: Option<Instant>,
    /// Segments retransmitted over the connection's life (`total_retrans`).
    pub total_retrans: u32,
    /// Zero-window probes sent without an answer (`icsk_probes_out`).
    pub probes_out: u32,

    // Timers: deadlines the loop checks (lazily re-armed in the timer queue).
    /// Retransmission or zero-window probe (`ICSK_TIME_RETRANS` / `ICSK_TIME_PROBE0`).
    pub rto_at: Option<Instant>,
    /// Delayed ACK (`ICSK_TIME_DACK`).
    pub delack_at: Option<Instant>,
    /// SYN-ACK retransmission of the earliest request sock.
    pub synack_at: Option<Instant>,
    /// The entry this control block has in the timer queue.
    pub timer_pending: Option<Instant>,

    // Delayed ACK (`icsk_ack`).
    /// An ACK is owed (`ICSK_ACK_SCHED`).
    pub ack_pending: bool,
    /// An ACK is owed at once (`ICSK_ACK_NOW`).
    pub ack_now: bool,
    /// The GRO aggregate this connection's last segments belong to in the
    /// current rx batch: their ACK is decided when it ends
    /// ([`super::offload`]).
    pub gro: Option<super::offload::GroAggregate>,
    /// Quick ACKs left (`icsk_ack.quick`).
    pub quick: u32,
    /// Interactive mode: ACKs ride on replies (`inet_csk_in_pingpong_mode`).
    pub pingpong: bool,
    /// When the keepalive timer is due (`sk_timer` as `tcp_keepalive_timer`).
    pub keepalive_at: Option<Instant>,
    /// When the last acceptable ACK came in (`rcv_tstamp`).
    pub rcv_tstamp: Option<Instant>,
    /// When the first unanswered zero-window probe went, for
    /// `TCP_USER_TIMEOUT` (`icsk_probes_tstamp`).
    pub probes_tstamp: Option<Instant>,
    /// The peer's ACKs showed it reachable: the next segment sent confirms
    /// the neighbour (`sk_dst_pending_confirm`, set by `sk_dst_confirm`).
    pub dst_pending_confirm: bool,
    /// The delayed-ACK timeout as it adapts to the time between segments
    /// (`icsk_ack.ato`): zero until the first data, then from
    /// [`super::TCP_ATO_MIN`] up to the RTO (`tcp_event_data_recv`, the
    /// delayed-ACK timer).
    pub ato: Duration,
    /// The last segment looked like the end of a write (`ICSK_ACK_PUSHED`,
    /// `tcp_measure_rcv_mss`): a delayed ACK may wait up to
    /// [`super::TCP_DELACK_MAX`], not half a second. Cleared by an ACK sent.
    pub ack_pushed: bool,
    /// A second end of a write before the ACK (`ICSK_ACK_PUSHED2`): a read
    /// that drains the buffer ACKs at once even in interactive mode.
    pub ack_pushed2: bool,
    /// The length of the last segment shorter than `rcv_mss`, less the
    /// fixed header (`icsk_ack.last_seg_size`): two alike make it `rcv_mss`.
    pub last_seg_size: u32,
    /// When data last arrived (`icsk_ack.lrcvtime`).
    pub lrcvtime: Option<Instant>,
    /// When an out-of-window ACK was last sent (`last_oow_ack_time`).
    pub last_oow_ack: Option<Instant>,

    // TCP_INFO.
    /// Bytes the peer acknowledged.
    pub bytes_acked: u64,
    /// Bytes received in order.
    pub bytes_received: u64,
    /// Segments sent.
    pub segs_out: u64,
    /// Segments received.
    pub segs_in: u64,
}

impl TcpCb {
    /// For unit tests of the congestion control: a control block in CLOSE
    /// on a stream socket of its own, 127.0.0.1:1 to itself, MSS 1460, with
    /// `algo` as its congestion control (set up at `snd_nxt` 0, now).
    #[cfg(test)]
    pub(crate) fn for_tests(algo: crate::stream::CongAlgo) -> TcpCb {
        let sock = Arc::new(Sock::new(crate::sock::SockType::Stream, 0, 0, 2048));
        let a = SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 1);
        let mut c = TcpCb::new(sock, a, a, 1460);
        c.ca = Congestion::new(algo, 0, Instant::now(), crate::jiffies::HZ_DEFAULT);
        c
    }

    /// A control block in CLOSE for `sock`, between `local` and `remote`.
    pub fn new(sock: Arc<Sock>, local: SocketAddrV4, remote: SocketAddrV4, advmss: u32) -> TcpCb {
        TcpCb {
            sock,
            state: TcpState::Close,
            local,
            remote,
            bufs: None,
            orphan: false,
            listener: None,
            iss: 0,
            snd_una: 0,
            snd_nxt: 0,
            snd_max: 0,
            snd_wnd: 0,
            snd_wl1: 0,
            snd_wl2: 0,
            max_window: 0,
            snd_wscale: 0,
            mss: super::TCP_MSS_DEFAULT,
            pmtu_cookie: 0,
            fin_seq: None,
            pushed_seq: 0,
            snd_sml: 0,
            irs: 0,
            rcv_nxt: 0,
            rcv_wnd: 0,
            rcv_ssthresh: 0,
            rcv_wup: 0,
            rcv_wscale: 0,
            advmss,
            rcv_mss: super::TCP_MSS_DEFAULT,
            sack_ok: false,
            ts: super::ts_state::TsState::default(),
            ofo: Vec::new(),
            ofo_bytes: 0,
            mem: super::mem::SkMem::default(),
            rcvq: super::rcvbuf::RcvSpace::default(),
            rcvbuf_want: 0,
            rcvbuf_charge: None,
            sndbuf_charge: None,
            sack_recent: 0,
            sack: super::scoreboard::Scoreboard::default(),
            rack: super::rack_state::RackState::default(),
            pacing: super::pacing_state::Pacing::default(),
            ca: Congestion::Reno(super::ca::Reno),
            lsndtime: None,
            cwnd: super::TCP_INIT_CWND,
            cwnd_cnt: 0,
            ssthresh: super::TCP_INFINITE_SSTHRESH,
            dupacks: 0,
            ca_state: CaState::Open,
            high_seq: 0,
            frto: false,
            loss_rexmit_hi: 0,
            frto_gap: None,
            srtt_us: 0,
            rttvar_us: 0,
            rto: TCP_TIMEOUT_INIT,
            rtt_probe: None,
            sent_times: VecDeque::with_capacity(SENT_TIMES),
            rtx_ends: VecDeque::with_capacity(RTX_ENDS),
            backoff: 0,
            retransmits: 0,
            retrans_stamp: None,
            total_retrans: 0,
            probes_out: 0,
            rto_at: None,
            delack_at: None,
            synack_at: None,
            timer_pending: None,
            ack_pending: false,
            ack_now: false,
            gro: None,
            quick: 0,
            pingpong: false,
            dst_pending_confirm: false,
            keepalive_at: None,
            rcv_tstamp: None,
            probes_tstamp: None,
            ato: Duration::ZERO,
            ack_pushed: false,
            ack_pushed2: false,
            last_seg_size: 0,
            lrcvtime: None,
            last_oow_ack: None,
            bytes_acked: 0,
            bytes_received: 0,
            segs_out: 0,
            segs_in: 0,
        }
    }

    /// The shared TCP part of the sock.
    #[inline]
    pub fn tsk(&self) -> &TcpSock {
        self.sock.tcp().expect("a TCP control block belongs to a stream sock")
    }

    /// The earliest of this control block's deadlines.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.rto_at,
            self.delack_at,
            self.synack_at,
            self.keepalive_at,
            self.rack.tlp_at,
            self.rack.reo_at,
            self.pacing.timer_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Bytes in the send buffer: `write_seq - snd_una` counted in data bytes.
    #[inline]
    pub fn snd_buffered(&self) -> u32 {
        self.bufs.as_ref().map_or(0, |b| b.snd.occupied_len() as u32)
    }

    /// The sequence number of the first data byte in the send buffer:
    /// `snd_una`, past our SYN while it is unacknowledged.
    #[inline]
    pub fn data_una(&self) -> u32 {
        if self.state == TcpState::SynSent || self.state == TcpState::SynRecv {
            self.iss.wrapping_add(1)
        } else {
            self.snd_una
        }
    }

    /// `write_seq`: the sequence number after the last byte written.
    #[inline]
    pub fn write_seq(&self) -> u32 {
        self.data_una().wrapping_add(self.snd_buffered())
    }

    /// Sequence space in flight: sent and not acknowledged (`packets_out`, in bytes).
    #[inline]
    pub fn in_flight(&self) -> u32 {
        self.snd_nxt.wrapping_sub(self.snd_una)
    }

    /// `tcp_event_new_data_sent`: a segment ending at `end` (our FIN
    /// included) went for the first time: it joins the retransmission queue.
    #[inline]
    pub fn rtx_queue_add(&mut self, end: u32) {
        if self.rtx_ends.len() == RTX_ENDS {
            if let Some(last) = self.rtx_ends.back_mut() {
                *last = end;
            }
        } else {
            self.rtx_ends.push_back(end);
        }
    }

    /// `tcp_clean_rtx_queue`: the segments `snd_una` now covers leave.
    #[inline]
    pub fn rtx_queue_clean(&mut self) {
        while self.rtx_ends.front().is_some_and(|&e| !after(e, self.snd_una)) {
            self.rtx_ends.pop_front();
        }
    }

    /// `packets_out`: segments sent and not acknowledged, as Linux counts
    /// its retransmission queue's skbs (`tcp_skb_pcount`: a segment of up to
    /// one MSS is one, a merged record `⌈len / mss⌉`, a partly acknowledged
    /// one what remains of it, `tcp_tso_acked`; a FIN alone is one; our SYN
    /// while the handshake is under way is one). Not reduced by a timeout,
    /// as the skbs stay queued.
    pub fn packets_out(&self) -> u32 {
        if matches!(self.state, TcpState::SynSent | TcpState::SynRecv) {
            return u32::from(self.snd_nxt != self.snd_una);
        }
        let mss = self.mss.max(1);
        let mut start = self.snd_una;
        let mut n = 0;
        for &end in &self.rtx_ends {
            if !after(end, start) {
                continue;
            }
            let data_end = if self.fin_seq == Some(end.wrapping_sub(1)) { end.wrapping_sub(1) } else { end };
            n += data_end.wrapping_sub(start).div_ceil(mss).max(1);
            start = end;
        }
        n
    }

    /// The window we still offer: `rcv_wup + rcv_wnd - rcv_nxt`, at least 0
    /// (`tcp_receive_window`).
    #[inline]
    pub fn receive_window(&self) -> u32 {
        let end = self.rcv_wup.wrapping_add(self.rcv_wnd);
        if after(end, self.rcv_nxt) {
            end.wrapping_sub(self.rcv_nxt)
        } else {
            0
        }
    }

    /// `copied_seq`: the first byte the application has not read
    /// (`rcv_nxt` less what waits in the receive buffer).
    #[inline]
    pub fn copied_seq(&self) -> u32 {
        let waiting = self.bufs.as_ref().map_or(0, |b| b.rcv.occupied_len());
        self.rcv_nxt.wrapping_sub(waiting as u32)
    }

    /// Free space in the receive buffer, bytes, less what out-of-order data will take.
    #[inline]
    pub fn rcv_space(&self) -> u32 {
        let free = self.bufs.as_ref().map_or(0, |b| b.rcv.vacant_len());
        free.saturating_sub(self.ofo_bytes + super::TCP_RCV_SLACK) as u32
    }

    /// The receive buffer's size (`SO_RCVBUF`; the ring holds
    /// `TCP_RCV_SLACK` more for window rounding).
    #[inline]
    pub fn rcv_full_space(&self) -> u32 {
        self.bufs.as_ref().map_or(0, |b| b.rcv.capacity().get().saturating_sub(super::TCP_RCV_SLACK) as u32)
    }

    /// Whether ACKs are being sent at once (`tcp_in_quickack_mode`).
    #[inline]
    pub fn in_quickack_mode(&self) -> bool {
        self.quick > 0 && !self.pingpong
    }

    /// `tcp_enter_quickack_mode`: the next `max` ACKs (at most one per two
    /// full segments' worth of window) go at once, interactive mode ends,
    /// the delayed-ACK timeout is back to its minimum.
    pub fn enter_quickack_mode(&mut self, max: u32) {
        self.incr_quickack(max);
        self.pingpong = false;
        self.ato = super::TCP_ATO_MIN;
    }

    /// `tcp_cleanup_rbuf`'s test of a read that emptied the buffer: nothing
    /// waits to be read, in order or not, and the last segments ended a
    /// write (`ICSK_ACK_PUSHED` outside interactive mode, two of them,
    /// `ICSK_ACK_PUSHED2`, in it): an owed ACK goes now.
    pub fn drained_after_push(&self) -> bool {
        self.copied_seq() == self.rcv_nxt
            && self.ofo.is_empty()
            && (self.ack_pushed2 || (self.ack_pushed && !self.pingpong))
    }

    /// `tcp_incr_quickack`.
    pub fn incr_quickack(&mut self, max: u32) {
        let quickacks = (self.rcv_wnd / (2 * self.rcv_mss.max(1))).clamp(2, max.max(2));
        if quickacks > self.quick {
            self.quick = quickacks;
        }
    }

    /// The SACK blocks our ACKs carry (RFC 2018 §4, as `tcp_sack_new_ofo_skb`
    /// keeps them): a pending D-SACK first (RFC 2883 §4), then the
    /// out-of-order data as contiguous blocks, the one holding the most
    /// recent segment first, then the others from the highest down; at most
    /// 4. None unless the peer agreed to SACK. Allocates nothing.
    pub fn sack_blocks(&self) -> ([SackBlock; 4], u8) {
        let mut out = [SackBlock::default(); 4];
        if !self.sack_ok {
            return (out, 0);
        }
        let mut n = 0;
        if let Some(d) = self.sack.dsack_out {
            out[0] = d;
            n = 1;
        }
        // Contiguous blocks from the highest down: the recent one aside,
        // the others in order until the array is full.
        let mut recent = None;
        let mut others = [SackBlock::default(); 4];
        let mut k = 0;
        let mut take = |b: SackBlock| {
            if b.left == b.right {
                return;
            }
            if recent.is_none() && !before(self.sack_recent, b.left) && before(self.sack_recent, b.right) {
                recent = Some(b);
            } else if k < others.len() {
                others[k] = b;
                k += 1;
            }
        };
        let mut cur: Option<SackBlock> = None;
        for o in self.ofo.iter().rev() {
            match cur.as_mut() {
                Some(b) if b.left == o.end() => b.left = o.seq,
                _ => {
                    if let Some(b) = cur.take() {
                        take(b);
                    }
                    cur = Some(SackBlock { left: o.seq, right: o.end() });
                }
            }
        }
        if let Some(b) = cur {
            take(b);
        }
        for b in recent.into_iter().chain(others[..k].iter().copied()) {
            if n == out.len() {
                break;
            }
            out[n] = b;
            n += 1;
        }
        (out, n as u8)
    }

    /// Bytes of payload a data segment may carry now: the MSS less the SACK
    /// option our ACK field comes with (`tcp_current_mss`).
    pub fn current_mss(&self) -> u32 {
        let (_, n) = self.sack_blocks();
        if n == 0 {
            self.mss
        } else {
            // NOP, NOP, kind, length, 8 bytes per block.
            self.mss.saturating_sub(4 + 8 * u32::from(n)).max(super::TCP_MIN_MSS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ofo_buffers_are_reused_and_bounded() {
        let mut b = OfoBufs::default();
        let first = b.copy_of(&[1; 1448]);
        let ptr = first.as_ptr();
        b.give(first);
        // The next segment of the episode takes the same buffer.
        let again = b.copy_of(&[2; 1000]);
        assert_eq!((again.as_ptr(), again.len(), again[0]), (ptr, 1000, 2));
        // One too small is put back and a new one made.
        b.give(again);
        let big = b.copy_of(&[3; 2000]);
        assert_ne!(big.as_ptr(), ptr);
        assert_eq!(b.kept(), 1);
        // Oversized buffers and empty ones are not kept; nor more than KEEP.
        b.give(vec![0; OfoBufs::KEEP_CAPACITY + 1]);
        b.give(Vec::new());
        assert_eq!(b.kept(), 1);
        for _ in 0..2 * OfoBufs::KEEP {
            b.give(vec![0; 1448]);
        }
        assert_eq!(b.kept(), OfoBufs::KEEP);
        let mut ofo = vec![OfoSeg { seq: 0, data: vec![0; 10], fin: false }];
        let mut fresh = OfoBufs::default();
        fresh.give_all(&mut ofo);
        assert!(ofo.is_empty());
        assert_eq!(fresh.kept(), 1);
    }
}
