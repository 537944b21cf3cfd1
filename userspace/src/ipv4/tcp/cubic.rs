//! CUBIC (RFC 9438) as Linux's default congestion control has it
//! (net/ipv4/tcp_cubic.c): after a loss the window grows along
//! `W(t) = C·(t − K)³ + W_max`, where `W_max` is the window at the loss,
//! `K` the time to get back to it and `C` = 0.4; a loss multiplies the
//! window by β = 717/1024 (≈ 0.7); fast convergence gives way to newer
//! flows; in the TCP-friendly region the window grows at least as fast as
//! Reno's would; HyStart leaves slow start early when the ACK train of a
//! round grows past half the minimum RTT or the RTT rises by an eighth
//! (4–16 ms).
//!
//! The arithmetic is Linux's fixed point: time in units of 2⁻¹⁰ s
//! (`BICTCP_HZ`), the cube root as `cubic_root`, `cnt` as "grow the window
//! by one after `cnt` ACKed segments" fed to `tcp_cong_avoid_ai`. Linux's
//! clock for the curve is jiffies, and so is ours: the time passed in, in
//! ticks of the `HZ` the connection was given ([`crate::jiffies`]). The tick
//! matters at short RTTs: `cnt` is recomputed at most once a jiffy, and not
//! for `HZ/32` jiffies while the window stands still, so at `HZ` 250 a window
//! that starts to grow keeps growing at one segment per two ACKed for 4 ms.

use std::time::{Duration, Instant};

use crate::jiffies::{jiffies_in, tick, usecs_to_jiffies};

/// `BICTCP_BETA_SCALE`.
const BETA_SCALE: u32 = 1024;
/// `beta`: the multiplicative decrease, 717/1024.
const BETA: u32 = 717;
/// `BICTCP_HZ`: the curve's time unit is 2⁻¹⁰ s.
const BICTCP_HZ: u32 = 10;
/// `bic_scale`: C = 41·10/1024 ≈ 0.4.
const BIC_SCALE: u64 = 41;
/// `cube_rtt_scale`.
const CUBE_RTT_SCALE: u64 = BIC_SCALE * 10;
/// `beta_scale`: Reno's window growth in the TCP-friendly estimate,
/// `8·(1024 + β) / 3 / (1024 − β)`.
const BETA_FRIENDLY_SCALE: u32 = 8 * (BETA_SCALE + BETA) / 3 / (BETA_SCALE - BETA);
/// `cube_factor`: `2^(10 + 3·BICTCP_HZ) / (bic_scale · 10)`.
const CUBE_FACTOR: u64 = (1u64 << (10 + 3 * BICTCP_HZ)) / CUBE_RTT_SCALE;
/// `hystart_low_window`: HyStart looks only at windows of 16 segments or more.
const HYSTART_LOW_WINDOW: u32 = 16;
/// `hystart_ack_delta_us`: ACKs closer than this make a train.
const HYSTART_ACK_DELTA_US: u64 = 2000;
/// `HYSTART_MIN_SAMPLES`: RTT samples per round before the delay test.
const HYSTART_MIN_SAMPLES: u8 = 8;
/// `HYSTART_DELAY_MIN`, `HYSTART_DELAY_MAX`: the delay threshold's bounds, µs.
const HYSTART_DELAY_MIN_US: u32 = 4000;
const HYSTART_DELAY_MAX_US: u32 = 16000;

/// What HyStart found (`TCPHystartTrainDetect`/`DelayDetect` and the
/// windows at which it did, for the counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HystartExit {
    /// Nothing yet.
    #[default]
    None,
    /// The ACK train of a round outlasted half the minimum RTT, at this window.
    Train(u32),
    /// The round's minimum RTT rose past the threshold, at this window.
    Delay(u32),
}

/// A connection's CUBIC state (`struct bictcp`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Cubic {
    /// Grow the window by one after this many ACKed segments.
    cnt: u32,
    /// `last_max_cwnd`: W_max, segments.
    last_max_cwnd: u32,
    /// `last_cwnd` and `last_time`: the window when `cnt` was last computed, and when
    /// (jiffies since the connection's clock origin).
    last_cwnd: u32,
    last_time: u64,
    /// `bic_origin_point` and `bic_K` (2⁻¹⁰ s).
    origin_point: u32,
    k: u64,
    /// `delay_min`: the smallest RTT seen, µs (0: none yet).
    delay_min_us: u32,
    /// `epoch_start`, jiffies since the connection's clock origin (0: no epoch).
    epoch_start: u64,
    /// `ack_cnt` and `tcp_cwnd`: the Reno-friendly estimate.
    ack_cnt: u32,
    tcp_cwnd: u32,
    /// HyStart: `found`, `round_start`, `end_seq`, `last_ack`, `curr_rtt`, `sample_cnt`.
    found: bool,
    round_start_us: u64,
    end_seq: u32,
    last_ack_us: u64,
    curr_rtt_us: u32,
    sample_cnt: u8,
    /// `hystart_ack_delay(sk)`, µs, and whether the socket paces (`sk_pacing_status`), as
    /// the connection last told ([`Cubic::set_pacing`]).
    ack_delay_us: u32,
    paced: bool,
    /// The clock's origin (the first call): times above are relative to it.
    origin: Option<Instant>,
    /// `HZ`: jiffies a second.
    hz: u32,
}

impl Cubic {
    /// `HZ`: the tick given, 1000 when none was (a `Cubic::default()`).
    fn hz(&self) -> u32 {
        tick(self.hz)
    }

    /// `tcp_jiffies32`: jiffies since the clock's origin.
    fn jiffies(&mut self, now: Instant) -> u64 {
        let o = *self.origin.get_or_insert(now);
        let us = now.saturating_duration_since(o).as_micros().min(u128::from(u64::MAX)) as u64;
        // Never 0, so that an epoch started now is not "no epoch".
        jiffies_in(us, self.hz()) + 1
    }

    fn us(&mut self, now: Instant) -> u64 {
        let o = *self.origin.get_or_insert(now);
        now.saturating_duration_since(o).as_micros() as u64
    }

    /// `cubictcp_init`: a fresh state, HyStart's round starting at `snd_nxt`,
    /// on a clock of `hz` jiffies a second (`CONFIG_HZ`; 0 is taken as 1000).
    pub fn new(snd_nxt: u32, now: Instant, hz: u32) -> Cubic {
        let mut c = Cubic { hz, ..Cubic::default() };
        c.hystart_reset(snd_nxt, now);
        c
    }

    /// `bictcp_reset`: everything but the clock (and what pacing said, which is the
    /// socket's, not the algorithm's).
    fn reset(&mut self) {
        let (origin, ack_delay_us, paced, hz) = (self.origin, self.ack_delay_us, self.paced, self.hz);
        *self = Cubic { origin, ack_delay_us, paced, hz, ..Cubic::default() };
    }

    /// The socket's pacing as HyStart's ACK-train test reads it: `hystart_ack_delay`
    /// (`min(1 ms, 4 · gso_max_size / sk_pacing_rate)`) and `sk_pacing_status`.
    pub fn set_pacing(&mut self, ack_delay: Duration, paced: bool) {
        self.ack_delay_us = ack_delay.as_micros().min(u128::from(u32::MAX)) as u32;
        self.paced = paced;
    }

    /// `bictcp_hystart_reset`: a new round, ending when `snd_nxt` is acknowledged.
    fn hystart_reset(&mut self, snd_nxt: u32, now: Instant) {
        let t = self.us(now);
        self.round_start_us = t;
        self.last_ack_us = t;
        self.end_seq = snd_nxt;
        self.curr_rtt_us = u32::MAX;
        self.sample_cnt = 0;
    }

    /// `cubictcp_recalc_ssthresh`: on a loss, W_max (lowered further by fast
    /// convergence when the window had not regained the last W_max) and the
    /// new threshold, `cwnd·β`, at least 2.
    pub fn ssthresh(&mut self, cwnd: u32) -> u32 {
        self.epoch_start = 0;
        // In u64: no overflow for any window.
        let w = u64::from(cwnd);
        self.last_max_cwnd = if cwnd < self.last_max_cwnd {
            (w * u64::from(BETA_SCALE + BETA) / u64::from(2 * BETA_SCALE)) as u32
        } else {
            cwnd
        };
        ((w * u64::from(BETA) / u64::from(BETA_SCALE)) as u32).max(2)
    }

    /// `cubictcp_state(TCP_CA_Loss)`: a timeout starts over, HyStart too.
    pub fn on_loss(&mut self, snd_nxt: u32, now: Instant) {
        self.reset();
        self.hystart_reset(snd_nxt, now);
    }

    /// `cubictcp_cwnd_event(CA_EVENT_TX_START)`: sending again after `idle`
    /// with nothing in flight: the epoch moves on by the idle time, so the
    /// curve does not jump for time the connection did not use.
    pub fn on_tx_start(&mut self, idle: Duration, now: Instant) {
        if self.epoch_start != 0 && !idle.is_zero() {
            // `tcp_jiffies32 - lsndtime`: the ticks between the two moments (not the
            // whole jiffies in `idle`: 5 ms across two tick boundaries is 2).
            let now_j = self.jiffies(now);
            let lsnd_j = self.jiffies(now.checked_sub(idle).unwrap_or(now));
            self.epoch_start = (self.epoch_start + (now_j - lsnd_j)).min(now_j);
        }
    }

    /// `bictcp_update`: `cnt` for a window of `cwnd` after `acked` more
    /// ACKed segments.
    fn update(&mut self, cwnd: u32, acked: u32, now: Instant) {
        let now_j = self.jiffies(now);
        self.ack_cnt = self.ack_cnt.saturating_add(acked);
        if self.last_cwnd == cwnd && now_j.saturating_sub(self.last_time) <= u64::from(self.hz() / 32) {
            return;
        }
        // At most once per jiffy; a reduction clears the epoch.
        if !(self.epoch_start != 0 && now_j == self.last_time) {
            self.last_cwnd = cwnd;
            self.last_time = now_j;
            if self.epoch_start == 0 {
                self.epoch_start = now_j;
                self.ack_cnt = acked;
                self.tcp_cwnd = cwnd;
                if self.last_max_cwnd <= cwnd {
                    self.k = 0;
                    self.origin_point = cwnd;
                } else {
                    self.k = cubic_root(CUBE_FACTOR.saturating_mul(u64::from(self.last_max_cwnd - cwnd)));
                    self.origin_point = self.last_max_cwnd;
                }
            }
            // t = time since the epoch plus the minimum RTT, in 2⁻¹⁰ s.
            let t_j = now_j - self.epoch_start + usecs_to_jiffies(u64::from(self.delay_min_us), self.hz());
            let t = (t_j << BICTCP_HZ) / u64::from(self.hz());
            let offs = t.abs_diff(self.k);
            // u64 arithmetic that wraps past ~6 minutes from K, as Linux's does.
            let cube = CUBE_RTT_SCALE.wrapping_mul(offs).wrapping_mul(offs).wrapping_mul(offs);
            let delta = (cube >> (10 + 3 * BICTCP_HZ)) as u32;
            let target = if t < self.k {
                self.origin_point.saturating_sub(delta)
            } else {
                self.origin_point.saturating_add(delta)
            };
            self.cnt = if target > cwnd { cwnd / (target - cwnd) } else { cwnd.saturating_mul(100) };
            // The first growth, W_max unknown: at least 5 % per RTT.
            if self.last_max_cwnd == 0 && self.cnt > 20 {
                self.cnt = 20;
            }
        }
        // TCP friendliness: never slower than Reno's window would grow.
        let scale_delta = ((u64::from(cwnd) * u64::from(BETA_FRIENDLY_SCALE)) >> 3).min(u64::from(u32::MAX)) as u32;
        if scale_delta > 0 {
            while self.ack_cnt > scale_delta {
                self.ack_cnt -= scale_delta;
                self.tcp_cwnd += 1;
            }
        }
        if self.tcp_cwnd > cwnd {
            let max_cnt = cwnd / (self.tcp_cwnd - cwnd);
            self.cnt = self.cnt.min(max_cnt);
        }
        // At most 1.5× per RTT.
        self.cnt = self.cnt.max(2);
    }

    /// `cubictcp_cong_avoid` past slow start: the `cnt` for `tcp_cong_avoid_ai`.
    pub fn cong_avoid_cnt(&mut self, cwnd: u32, acked: u32, now: Instant) -> u32 {
        self.update(cwnd, acked, now);
        self.cnt
    }

    /// `cubictcp_acked`: an RTT sample of `rtt`; in slow start, HyStart's
    /// tests with the window `cwnd` and `snd_una`/`snd_nxt` for its rounds.
    /// Returns what HyStart found, if it found it now (the caller sets
    /// ssthresh to the window and counts it).
    pub fn pkts_acked(
        &mut self,
        rtt: Duration,
        cwnd: u32,
        in_slow_start: bool,
        snd_una: u32,
        snd_nxt: u32,
        now: Instant,
    ) -> HystartExit {
        let now_j = self.jiffies(now);
        // No delay samples in the first second after a reduction.
        if self.epoch_start != 0 && now_j.saturating_sub(self.epoch_start) < u64::from(self.hz()) {
            return HystartExit::None;
        }
        let delay = (rtt.as_micros() as u64).clamp(1, u64::from(u32::MAX)) as u32;
        if self.delay_min_us == 0 || self.delay_min_us > delay {
            self.delay_min_us = delay;
        }
        if self.found || !in_slow_start {
            return HystartExit::None;
        }
        self.hystart_update(delay, cwnd, snd_una, snd_nxt, now)
    }

    /// `hystart_update`: the ACK-train and the delay tests (both on, as
    /// Linux's `hystart_detect` default). The train threshold is the minimum
    /// RTT plus `hystart_ack_delay`, halved unless the socket paces itself
    /// ("Pacing might have delayed packets up to RTT/2 during slow start").
    fn hystart_update(&mut self, delay: u32, cwnd: u32, snd_una: u32, snd_nxt: u32, now: Instant) -> HystartExit {
        if super::after(snd_una, self.end_seq) {
            self.hystart_reset(snd_nxt, now);
        }
        if cwnd < HYSTART_LOW_WINDOW {
            return HystartExit::None;
        }
        let now_us = self.us(now);
        if now_us.saturating_sub(self.last_ack_us) <= HYSTART_ACK_DELTA_US {
            self.last_ack_us = now_us;
            let mut threshold = u64::from(self.delay_min_us) + u64::from(self.ack_delay_us);
            if !self.paced {
                threshold >>= 1;
            }
            if now_us.saturating_sub(self.round_start_us) > threshold {
                self.found = true;
                return HystartExit::Train(cwnd);
            }
        }
        self.curr_rtt_us = self.curr_rtt_us.min(delay);
        if self.sample_cnt < HYSTART_MIN_SAMPLES {
            self.sample_cnt += 1;
        } else {
            let thresh = (self.delay_min_us >> 3).clamp(HYSTART_DELAY_MIN_US, HYSTART_DELAY_MAX_US);
            if self.curr_rtt_us > self.delay_min_us.saturating_add(thresh) {
                self.found = true;
                return HystartExit::Delay(cwnd);
            }
        }
        HystartExit::None
    }
}

/// `cubic_root`: ⌊∛a⌋ for the curve's K (Linux refines a table estimate
/// with one Newton-Raphson step; the integer root here is exact).
fn cubic_root(a: u64) -> u64 {
    if a == 0 {
        return 0;
    }
    let cube = |x: u64| u128::from(x).pow(3);
    let mut x = (a as f64).cbrt() as u64;
    while cube(x) > u128::from(a) {
        x -= 1;
    }
    while cube(x + 1) <= u128::from(a) {
        x += 1;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_linuxs() {
        assert_eq!(BETA_FRIENDLY_SCALE, 15, "8 * (1024 + 717) / 3 / (1024 - 717)");
        assert_eq!(CUBE_FACTOR, (1u64 << 40) / 410);
        assert_eq!(cubic_root(27), 3);
        assert_eq!(cubic_root(26), 2);
        assert_eq!(cubic_root(1 << 30), 1024);
        assert_eq!(cubic_root(u64::MAX), 2_642_245);
    }

    /// The curve's clock is the jiffy (`tcp_jiffies32`): `cnt` is
    /// recomputed at most once a jiffy. At `HZ` 1000 a window that grew
    /// 1 ms later gets a new `cnt`; at `HZ` 250 it keeps the old one until
    /// the next 4 ms tick.
    #[test]
    fn cnt_is_recomputed_at_most_once_a_jiffy() {
        let cnts = |hz: u32| {
            let t0 = Instant::now();
            let mut c = Cubic::new(0, t0, hz);
            c.ssthresh(20);
            let ms = |n: u64| t0 + Duration::from_millis(n);
            [c.cong_avoid_cnt(14, 1, ms(1)), c.cong_avoid_cnt(15, 1, ms(2)), c.cong_avoid_cnt(15, 1, ms(5))]
        };
        let [a, b, c] = cnts(1000);
        assert!(a != b && b == c, "HZ 1000: new cnt at 2 ms, {a} {b} {c}");
        let [a, b, c] = cnts(250);
        assert!(a == b && b != c, "HZ 250: the same cnt until the 4 ms tick, {a} {b} {c}");
        assert_eq!(c, cnts(1000)[2], "the same curve once both clocks have ticked");
    }

    /// A `Cubic::default()` (public, with no tick given) runs on `HZ` 1000,
    /// as `Cubic::new` with 0 does: no division by a zero tick.
    #[test]
    fn a_default_cubic_runs_on_the_default_tick() {
        let t0 = Instant::now();
        let grow = |mut c: Cubic| {
            c.ssthresh(20);
            [1, 2, 40].map(|n| c.cong_avoid_cnt(14 + n as u32, 1, t0 + Duration::from_millis(n)))
        };
        assert_eq!(grow(Cubic::default()), grow(Cubic { hz: 1000, ..Cubic::default() }));
    }

    /// `CA_EVENT_TX_START` moves the epoch by `tcp_jiffies32 - lsndtime`:
    /// ticks counted between the last send and now, not whole jiffies of
    /// idle time. At `HZ` 250, 7 ms → 12 ms crosses the 8 and 12 ms ticks.
    #[test]
    fn the_epoch_moves_by_the_ticks_counted_while_idle() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut c = Cubic::new(0, t0, 250);
        c.ssthresh(20);
        c.cong_avoid_cnt(14, 1, ms(3));
        assert_eq!(c.epoch_start, 1, "the epoch starts in the first tick");
        c.on_tx_start(Duration::from_millis(5), ms(12));
        assert_eq!(c.epoch_start, 3, "two ticks passed while idle");
    }

    #[test]
    fn a_loss_keeps_seven_tenths_and_fast_convergence_lowers_w_max() {
        let mut c = Cubic::new(0, Instant::now(), 1000);
        assert_eq!(c.ssthresh(100), 70);
        assert_eq!(c.last_max_cwnd, 100);
        // A second loss below the last W_max: W_max = cwnd·(1 + β)/2.
        assert_eq!(c.ssthresh(80), 56);
        assert_eq!(c.last_max_cwnd, 80 * 1741 / 2048);
        assert_eq!(c.ssthresh(2), 2, "at least 2");
    }

    /// How long a window of 70 takes to get back to W_max 100 after a loss,
    /// a round of `rtt` carrying the whole window's ACKs, through
    /// `tcp_cong_avoid_ai` as `cong::cong_avoid` runs it.
    fn time_back_to_w_max(rtt: Duration) -> (Duration, u32) {
        let t0 = Instant::now();
        let mut c = Cubic::new(0, t0, 1000);
        c.ssthresh(100);
        let (mut cwnd, mut cnt_acc, mut t, mut back_at) = (70u32, 0u32, t0, None);
        while t - t0 < Duration::from_secs(30) {
            t += rtt;
            let cnt = c.cong_avoid_cnt(cwnd, cwnd, t);
            if cnt_acc >= cnt {
                cnt_acc = 0;
                cwnd += 1;
            }
            cnt_acc += cwnd;
            if cnt_acc >= cnt {
                cwnd += cnt_acc / cnt;
                cnt_acc %= cnt;
            }
            if cwnd >= 100 && back_at.is_none() {
                back_at = Some(t - t0);
            }
        }
        (back_at.expect("back at W_max"), cwnd)
    }

    /// With a long RTT the cubic curve rules (RFC 9438 §4.2): K =
    /// ∛(W_max·(1 − β)/C) = ∛(30/0.4) = 4.22 s, and the concave curve is
    /// within half a segment of W_max from ∛(0.5/0.4) = 1.08 s before K: the
    /// window is back at 100 then, not before, and grows convex past K.
    #[test]
    fn with_a_long_rtt_the_window_returns_to_w_max_by_k() {
        let (back, cwnd) = time_back_to_w_max(Duration::from_millis(200));
        let k = (30.0f64 / 0.4).cbrt();
        let plateau = k - (0.5f64 / 0.4).cbrt();
        let b = back.as_secs_f64();
        assert!(
            b >= plateau - 0.25 && b <= k,
            "back at W_max after {back:?}: plateau from {plateau:.2} s, K = {k:.2} s"
        );
        assert!(cwnd > 150, "then beyond, convex: {cwnd}");
    }

    /// With a short RTT the Reno-friendly estimate rules (RFC 9438 §4.3):
    /// 3(1 − β)/(1 + β) ≈ 0.53 segment per RTT, 30 segments in ~57 RTTs.
    #[test]
    fn with_a_short_rtt_the_window_grows_as_renos_would() {
        let (t, _) = time_back_to_w_max(Duration::from_millis(10));
        assert!(t > Duration::from_millis(450) && t < Duration::from_millis(700), "{t:?}");
    }

    #[test]
    fn hystart_leaves_slow_start_on_a_long_ack_train() {
        let t0 = Instant::now();
        let mut c = Cubic::new(1000, t0, 1000);
        // Min RTT 10 ms; a round's ACKs 1 ms apart, from snd_una past 1000.
        let mut exit = HystartExit::None;
        for i in 0..20u32 {
            let now = t0 + Duration::from_millis(u64::from(i));
            exit = c.pkts_acked(Duration::from_millis(10), 32, true, 1001 + i, 50_000, now);
            if exit != HystartExit::None {
                break;
            }
        }
        assert_eq!(exit, HystartExit::Train(32), "the train passed 5 ms, half the minimum RTT");
        assert_eq!(c.pkts_acked(Duration::from_millis(10), 40, true, 60_000, 90_000, t0), HystartExit::None, "once");
    }

    #[test]
    fn hystart_leaves_slow_start_when_the_delay_rises() {
        let t0 = Instant::now();
        let mut c = Cubic::new(0, t0, 1000);
        // ACKs 3 ms apart (no train); a round of 9 samples at 20 ms, then
        // one round later every sample at 26 ms (> 20 + max(4, 20/8) ms).
        c.pkts_acked(Duration::from_millis(20), 8, true, 0, 100, t0);
        let mut exit = HystartExit::None;
        for i in 1..40u64 {
            let now = t0 + Duration::from_millis(3 * i);
            exit = c.pkts_acked(Duration::from_millis(26), 20, true, 101 + i as u32, 100_000, now);
            if exit != HystartExit::None {
                break;
            }
        }
        assert_eq!(exit, HystartExit::Delay(20));
    }
}
