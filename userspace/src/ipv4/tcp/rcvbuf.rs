//! Receive-buffer autotuning, Linux's "dynamic right-sizing" (DRS): the
//! receiver estimates the round trip time ([`RcvSpace::rcv_rtt_measure`],
//! [`RcvSpace::rcv_rtt_measure_ts`]), counts what the application read in
//! one round trip ([`RcvSpace::space_adjust`]) and grows the receive buffer
//! to twice that, more while the sender is still speeding up
//! ([`rcvbuf_grow_target`]), up to `tcp_rmem[2]`. The window we offer
//! follows the buffer, so a sender is not held back by the initial 128 KiB
//! on a path whose bandwidth-delay product is larger.
//!
//! Copied from net/ipv4/tcp_input.c as of Linux 6.18: `tcp_rcv_rtt_update`,
//! `tcp_rcv_rtt_measure`, `tcp_rcv_rtt_measure_ts`, `tcp_rcv_space_adjust`,
//! `tcp_rcvbuf_grow` and the `rcvq_space` part of `tcp_init_buffer_space`
//! (with the 6.16 "receive side improvements" and 6.18's "fix too slow
//! tcp_rcvbuf_grow() action"). Where xsknet differs (`docs/tcp.md`,
//! "Receive-buffer autotuning"):
//!
//! * xsknet's receive buffer is a byte ring that holds data and nothing
//!   else, so a window of N bytes needs N bytes of buffer: Linux's
//!   `tcp_space_from_win` and `tcp_win_from_space` (the skb overhead,
//!   `scaling_ratio`) are the identity here;
//! * Linux adjusts in `tcp_recvmsg`, after the application's copy; the
//!   application reads xsknet's ring without the loop, so the loop adjusts
//!   when the next in-order segment arrives, with the same arithmetic on
//!   what was read by then;
//! * the ring is real memory once data has gone round it, so it grows only
//!   when TCP memory is not under pressure, and never past what the window
//!   scale can offer.
//!
//! The state is plain numbers and the functions take what they need, so
//! the control block holds a [`RcvSpace`] without this module depending on
//! it.

use std::time::Instant;

use super::before;

/// `net.ipv4.tcp_rmem[2]`: the most a receive buffer grows to, bytes
/// (32 MiB since Linux 6.16, `tcp_init` in net/ipv4/tcp.c).
pub const TCP_RMEM_MAX: usize = 32 << 20;

/// A connection's receive-side RTT estimate and the last measurement of what
/// the application read (`tcp_sock.rcv_rtt_est`, `rcvq_space`,
/// `rcv_rtt_last_tsecr`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RcvSpace {
    /// The receiver's RTT estimate, µs × 8 (`rcv_rtt_est.rtt_us`; 0: none yet).
    pub rtt_us8: u32,
    /// The sequence number that ends the current window-based measurement
    /// (`rcv_rtt_est.seq`).
    rtt_seq: u32,
    /// When that measurement began (`rcv_rtt_est.time`; `None`: none begun).
    rtt_time: Option<Instant>,
    /// The TSecr of the last segment measured (`rcv_rtt_last_tsecr`).
    last_tsecr: u32,
    /// Bytes the application read in the last round trip measured
    /// (`rcvq_space.space`): the base of the buffer's size.
    pub space: u32,
    /// `copied_seq` when the current measurement began (`rcvq_space.seq`).
    seq: u32,
    /// When it began (`rcvq_space.time`).
    time: Option<Instant>,
}

impl RcvSpace {
    /// `tcp_init_buffer_space`: the first measurement begins at `copied_seq`
    /// and `now`, with `space` = min(`rcv_ssthresh`, `rcv_wnd`,
    /// `TCP_INIT_CWND` × `advmss`) bytes as what a round trip delivers.
    pub fn init(&mut self, copied_seq: u32, rcv_ssthresh: u32, rcv_wnd: u32, advmss: u32, now: Instant) {
        self.space = rcv_ssthresh.min(rcv_wnd).min(super::TCP_INIT_CWND * advmss);
        self.seq = copied_seq;
        self.time = Some(now);
    }

    /// The receiver's RTT estimate, µs (0: none yet).
    pub fn rtt_us(&self) -> u32 {
        self.rtt_us8 >> 3
    }

    /// `tcp_rcv_rtt_update`: a sample of `sample_us`. A smaller one than the
    /// estimate is taken at once; a larger one only from timestamps
    /// (`win_dep` false) and only when the receive queue is empty
    /// (`queue_empty`: a backlog would inflate it), smoothed by 1/8.
    pub fn rcv_rtt_update(&mut self, sample_us: u32, win_dep: bool, queue_empty: bool) {
        let old = self.rtt_us8;
        let m = sample_us.saturating_mul(8);
        if old == 0 || m < old {
            self.rtt_us8 = m;
            return;
        }
        if win_dep || !queue_empty {
            return;
        }
        self.rtt_us8 = old - (old >> 3) + sample_us;
    }

    /// `tcp_rcv_rtt_measure`, at each in-order data segment (after
    /// `rcv_nxt` moved past it): the time to receive one window of data
    /// (`rcv_wnd` bytes from where the measurement began) is a sample that
    /// can only lower the estimate.
    pub fn rcv_rtt_measure(&mut self, rcv_nxt: u32, rcv_wnd: u32, now: Instant) {
        if let Some(t) = self.rtt_time {
            if before(rcv_nxt, self.rtt_seq) {
                return;
            }
            let us = now.saturating_duration_since(t).as_micros().clamp(1, u128::from(u32::MAX)) as u32;
            self.rcv_rtt_update(us, true, false);
        }
        self.rtt_seq = rcv_nxt.wrapping_add(rcv_wnd);
        self.rtt_time = Some(now);
    }

    /// `tcp_rcv_rtt_measure_ts`, at each segment with timestamps: our TSval
    /// echoed back (`tsecr`, our offset taken out) against our clock now
    /// (`clock_ms`) times a round trip, for segments of at least `rcv_mss`
    /// (`len`: sequence space the segment takes) with a TSecr not seen
    /// before. A zero difference is no sample (the clock ticks in
    /// milliseconds; Linux 6.16, "remove zero TCP TS samples").
    pub fn rcv_rtt_measure_ts(&mut self, tsecr: u32, clock_ms: u32, len: u32, rcv_mss: u32, queue_empty: bool) {
        if tsecr == self.last_tsecr {
            return;
        }
        self.last_tsecr = tsecr;
        if len < rcv_mss {
            return;
        }
        let echo = super::ts_state::RcvTs { tsval: 0, tsecr };
        let Some(rtt) = super::ts_state::tcp_rtt_tsopt_min(clock_ms, Some(echo), 0) else { return };
        if rtt.is_zero() {
            return;
        }
        self.rcv_rtt_update(rtt.as_micros() as u32, false, queue_empty);
    }

    /// `tcp_rcv_space_adjust`: once a round trip (the estimate's) has passed
    /// since the last measurement, what the application read in it
    /// (`copied_seq` moved, less what still waits: `rcv_nxt - copied_seq`)
    /// is measured, and a new measurement begins. Returns `Some((old,
    /// new))` when more was read than the last round trip's `space`: the
    /// buffer is to grow ([`rcvbuf_grow_target`]; `space` is now `new`).
    pub fn space_adjust(&mut self, rcv_nxt: u32, copied_seq: u32, now: Instant) -> Option<(u32, u32)> {
        if self.rtt_us8 == 0 {
            return None;
        }
        let begun = self.time?;
        if now.saturating_duration_since(begun).as_micros() < u128::from(self.rtt_us()) {
            return None;
        }
        let copied = i64::from(copied_seq.wrapping_sub(self.seq) as i32);
        let inq = i64::from(rcv_nxt.wrapping_sub(copied_seq) as i32);
        let copied = copied - inq;
        let old = self.space;
        self.seq = copied_seq;
        self.time = Some(now);
        if copied <= i64::from(old) {
            return None;
        }
        let new = u32::try_from(copied).unwrap_or(u32::MAX);
        self.space = new;
        Some((old, new))
    }
}

/// `tcp_rcvbuf_grow`: the receive buffer, bytes, for a round trip that
/// delivered `new` bytes after one that delivered `old`: twice `new` (DRS is
/// one round trip late), plus twice its growth (a sender in slow start
/// doubles its rate each round trip), plus what the out-of-order queue
/// spans past `rcv_nxt` (`ofo_span`), at most `cap` (`tcp_rmem[2]`).
pub fn rcvbuf_grow_target(old: u32, new: u32, ofo_span: u32, cap: usize) -> usize {
    let mut rcvwin = u64::from(new) << 1;
    if new > old && old > 0 {
        let grow = rcvwin * u64::from(new - old) / u64::from(old);
        rcvwin += grow << 1;
    }
    rcvwin += u64::from(ofo_span);
    usize::try_from(rcvwin).unwrap_or(usize::MAX).min(cap)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_smaller_sample_is_taken_at_once_a_larger_one_only_from_timestamps_with_the_queue_empty() {
        let mut s = RcvSpace::default();
        s.rcv_rtt_update(400, true, false);
        assert_eq!(s.rtt_us(), 400, "the first sample, whatever its kind");
        s.rcv_rtt_update(100, true, false);
        assert_eq!(s.rtt_us(), 100, "a smaller one is latched");
        s.rcv_rtt_update(900, true, true);
        assert_eq!(s.rtt_us(), 100, "a window-based sample never raises it");
        s.rcv_rtt_update(900, false, false);
        assert_eq!(s.rtt_us(), 100, "nor a timestamp sample while data waits");
        s.rcv_rtt_update(900, false, true);
        // 800 - 100 + 900 = 1600 (×8 units): 200 µs.
        assert_eq!(s.rtt_us8, 1600);
    }

    #[test]
    fn window_measurement_times_one_window_of_data() {
        let t0 = Instant::now();
        let mut s = RcvSpace::default();
        s.rcv_rtt_measure(1000, 10_000, t0);
        assert_eq!(s.rtt_us8, 0, "the first call only begins a measurement");
        s.rcv_rtt_measure(5000, 10_000, t0 + Duration::from_micros(50));
        assert_eq!(s.rtt_us8, 0, "not a window yet");
        s.rcv_rtt_measure(11_000, 10_000, t0 + Duration::from_micros(300));
        assert_eq!(s.rtt_us(), 300);
    }

    #[test]
    fn timestamp_samples_need_a_full_segment_a_new_tsecr_and_a_tick() {
        let mut s = RcvSpace::default();
        s.rcv_rtt_measure_ts(100, 100, 1448, 1448, true);
        assert_eq!(s.rtt_us8, 0, "zero ticks: no sample");
        s.rcv_rtt_measure_ts(101, 103, 500, 1448, true);
        assert_eq!(s.rtt_us8, 0, "short segment");
        s.rcv_rtt_measure_ts(101, 103, 1448, 1448, true);
        assert_eq!(s.rtt_us8, 0, "the same TSecr again");
        s.rcv_rtt_measure_ts(102, 104, 1448, 1448, true);
        assert_eq!(s.rtt_us(), 2000);
        s.rcv_rtt_measure_ts(5, 4, 1448, 1448, true);
        assert_eq!(s.rtt_us(), 2000, "a TSecr from the future is no sample");
    }

    #[test]
    fn space_grows_once_a_round_trip_when_more_was_read() {
        let t0 = Instant::now();
        let mut s = RcvSpace::default();
        s.init(0, 64_000, 64_000, 1448, t0);
        assert_eq!(s.space, 14_480, "TCP_INIT_CWND x advmss");
        assert_eq!(s.space_adjust(100_000, 100_000, t0 + Duration::from_millis(5)), None, "no RTT estimate yet");
        s.rcv_rtt_update(1000, true, false);
        assert_eq!(s.space_adjust(100_000, 100_000, t0 + Duration::from_micros(900)), None, "less than an RTT");
        // 100 000 read, 20 000 of what came still waiting: 80 000.
        assert_eq!(s.space_adjust(120_000, 100_000, t0 + Duration::from_micros(1000)), Some((14_480, 80_000)));
        assert_eq!(s.space, 80_000);
        // The next round trip reads less: no growth, space kept.
        let t1 = t0 + Duration::from_micros(1000);
        assert_eq!(s.space_adjust(150_000, 150_000, t1 + Duration::from_millis(1)), None);
        assert_eq!(s.space, 80_000);
    }

    #[test]
    fn grow_target_doubles_the_round_trip_and_follows_slow_start() {
        // Steady: twice what a round trip delivered.
        assert_eq!(rcvbuf_grow_target(100_000, 100_000, 0, TCP_RMEM_MAX), 200_000);
        // Doubling: 2 x new, plus 2 x (2 x new x (new - old) / old).
        assert_eq!(rcvbuf_grow_target(50_000, 100_000, 0, TCP_RMEM_MAX), 200_000 + 400_000);
        // The out-of-order queue's span on top; the cap holds.
        assert_eq!(rcvbuf_grow_target(100_000, 100_000, 30_000, TCP_RMEM_MAX), 230_000);
        assert_eq!(rcvbuf_grow_target(1, 30_000_000, 0, TCP_RMEM_MAX), TCP_RMEM_MAX);
        assert_eq!(rcvbuf_grow_target(0, 1000, 0, TCP_RMEM_MAX), 2000, "no old value: no growth term");
    }
}
