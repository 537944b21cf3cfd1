//! The congestion-control algorithms (`struct tcp_congestion_ops`,
//! net/ipv4/tcp_cong.c): what each decides, behind one small trait, and a
//! connection's choice among them (`TCP_CONGESTION`). The window itself,
//! slow start and recovery are [`super::cong`]'s.

use std::time::{Duration, Instant};

use super::cubic::{Cubic, HystartExit};
use crate::stream::CongAlgo;

/// What a congestion-control algorithm decides (`struct tcp_congestion_ops`):
/// the threshold after a loss, the growth past slow start, and what it
/// learns from RTT samples and from the connection's events.
pub trait CongestionControl {
    /// `.name`.
    fn name(&self) -> &'static str;
    /// `.ssthresh`: the slow-start threshold after a loss of a window of
    /// `cwnd` segments.
    fn ssthresh(&mut self, cwnd: u32) -> u32;
    /// `.cong_avoid` past slow start: how many ACKed segments grow the
    /// window of `cwnd` by one (`tcp_cong_avoid_ai`'s `w`), after `acked` more.
    fn cong_avoid_cnt(&mut self, cwnd: u32, acked: u32, now: Instant) -> u32;
    /// `.pkts_acked` with an RTT sample, while the window is `cwnd`; a slow
    /// start it ends early (HyStart) is returned.
    fn pkts_acked(
        &mut self,
        _rtt: Duration,
        _cwnd: u32,
        _in_slow_start: bool,
        _una: u32,
        _nxt: u32,
        _now: Instant,
    ) -> HystartExit {
        HystartExit::None
    }
    /// What HyStart's ACK-train test reads of the socket's pacing before each RTT sample
    /// (net/ipv4/tcp_cubic.c): `hystart_ack_delay` (from `sk_pacing_rate`) and whether the
    /// socket paces itself (`sk_pacing_status != SK_PACING_NONE`).
    fn set_pacing(&mut self, _ack_delay: Duration, _paced: bool) {}
    /// `.set_state(TCP_CA_Loss)`: a retransmission timeout.
    fn on_loss(&mut self, _snd_nxt: u32, _now: Instant) {}
    /// `.cwnd_event(CA_EVENT_TX_START)`: data sent with nothing in flight,
    /// after `idle` without sending.
    fn on_tx_start(&mut self, _idle: Duration, _now: Instant) {}
}

/// Reno (`tcp_reno_ssthresh`, `tcp_reno_cong_avoid`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Reno;

impl CongestionControl for Reno {
    fn name(&self) -> &'static str {
        "reno"
    }
    fn ssthresh(&mut self, cwnd: u32) -> u32 {
        (cwnd >> 1).max(2)
    }
    fn cong_avoid_cnt(&mut self, cwnd: u32, _acked: u32, _now: Instant) -> u32 {
        cwnd
    }
}

impl CongestionControl for Cubic {
    fn name(&self) -> &'static str {
        "cubic"
    }
    fn ssthresh(&mut self, cwnd: u32) -> u32 {
        Cubic::ssthresh(self, cwnd)
    }
    fn cong_avoid_cnt(&mut self, cwnd: u32, acked: u32, now: Instant) -> u32 {
        Cubic::cong_avoid_cnt(self, cwnd, acked, now)
    }
    fn pkts_acked(
        &mut self,
        rtt: Duration,
        cwnd: u32,
        in_slow_start: bool,
        una: u32,
        nxt: u32,
        now: Instant,
    ) -> HystartExit {
        Cubic::pkts_acked(self, rtt, cwnd, in_slow_start, una, nxt, now)
    }
    fn set_pacing(&mut self, ack_delay: Duration, paced: bool) {
        Cubic::set_pacing(self, ack_delay, paced)
    }
    fn on_loss(&mut self, snd_nxt: u32, now: Instant) {
        Cubic::on_loss(self, snd_nxt, now)
    }
    fn on_tx_start(&mut self, idle: Duration, now: Instant) {
        Cubic::on_tx_start(self, idle, now)
    }
}

/// A connection's algorithm and its state (`icsk_ca_ops`, `icsk_ca_priv`).
#[derive(Clone, Copy, Debug)]
pub enum Congestion {
    /// Reno.
    Reno(Reno),
    /// CUBIC.
    Cubic(Cubic),
}

impl Congestion {
    /// `tcp_init_congestion_control` for `algo`, a new round from `snd_nxt`,
    /// the algorithm's clock in jiffies of `hz` a second (`CONFIG_HZ`).
    pub fn new(algo: CongAlgo, snd_nxt: u32, now: Instant, hz: u32) -> Congestion {
        match algo {
            CongAlgo::Reno => Congestion::Reno(Reno),
            CongAlgo::Cubic => Congestion::Cubic(Cubic::new(snd_nxt, now, hz)),
        }
    }

    /// Which algorithm this is.
    pub fn algo(&self) -> CongAlgo {
        match self {
            Congestion::Reno(_) => CongAlgo::Reno,
            Congestion::Cubic(_) => CongAlgo::Cubic,
        }
    }

    /// The algorithm's operations.
    pub fn ops(&mut self) -> &mut dyn CongestionControl {
        match self {
            Congestion::Reno(r) => r,
            Congestion::Cubic(c) => c,
        }
    }
}
