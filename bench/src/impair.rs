//! The decisions of `xsknet-impair`, the relay that stands in for netem: per frame, whether it
//! is lost, duplicated, sent at once (reordered) or delayed, and when the rate limit lets it
//! out; plus the release queue (a binary heap by release time) and the counters.
//!
//! This kernel has no netem (`CONFIG_NET_SCH_NETEM` unset), and AF_XDP transmit bypasses the
//! qdiscs of xsknet's own interface anyway, so the test topologies relay every frame through a
//! middle namespace and impair it there. The semantics copy `netem_enqueue` in the kernel's
//! net/sched/sch_netem.c, with the differences [`Shaper::enqueue`] lists. Time is nanoseconds
//! on a clock the caller owns (the binary uses a monotonic clock; the unit tests a literal one),
//! so every decision here is testable without sleeping.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

/// netem's default queue limit (`tc qdisc add … netem` without `limit`): 1000 packets.
pub const DEFAULT_LIMIT: usize = 1000;

/// What to do to the frames of one direction: netem's options. Percentages are 0–100;
/// times are nanoseconds. `Impairment::default()` forwards every frame at once.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Impairment {
    /// Share of frames dropped, percent (netem `loss random PCT`).
    pub loss_pct: f64,
    /// Fixed delay added to every frame not reordered, ns (netem `delay TIME`).
    pub delay_ns: u64,
    /// Half-width of the uniform spread around `delay_ns`, ns (netem `delay TIME JITTER` with
    /// no distribution table: uniform on `[delay - jitter, delay + jitter]`, floored at 0).
    pub jitter_ns: u64,
    /// Share of frames sent at once, ahead of the delayed rest, percent (netem `reorder PCT`,
    /// gap 1). Needs `delay_ns > 0`, as in netem.
    pub reorder_pct: f64,
    /// Share of forwarded frames sent twice, percent (netem `duplicate PCT`).
    pub duplicate_pct: f64,
    /// Link rate in bits per second (netem `rate`): each frame then also waits for the ones
    /// before it to be serialised. `None`: no rate limit.
    pub rate_bps: Option<u64>,
    /// Most frames waiting in the queue; a frame that finds it full is dropped and counted in
    /// [`DirectionStats::dropped_limit`] (netem `limit`, default [`DEFAULT_LIMIT`]).
    pub limit: usize,
}

impl Default for Impairment {
    fn default() -> Self {
        Self {
            loss_pct: 0.0,
            delay_ns: 0,
            jitter_ns: 0,
            reorder_pct: 0.0,
            duplicate_pct: 0.0,
            rate_bps: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl Impairment {
    /// Checks the ranges netem checks, and that `reorder` comes with a delay (netem accepts it
    /// without one and then does nothing with it; here that is an error, not a silent no-op).
    ///
    /// # Errors
    /// A message naming the option: a percentage outside 0–100 (or not a number), a zero
    /// `limit` or `rate`, or `reorder` without `delay`.
    pub fn validate(&self) -> Result<(), String> {
        for (name, pct) in
            [("--loss", self.loss_pct), ("--reorder", self.reorder_pct), ("--duplicate", self.duplicate_pct)]
        {
            if !(0.0..=100.0).contains(&pct) {
                return Err(format!("{name} {pct}: a percentage must be between 0 and 100"));
            }
        }
        if self.limit == 0 {
            return Err("--limit 0 would drop every frame".into());
        }
        if self.rate_bps == Some(0) {
            return Err("--rate must be above 0".into());
        }
        if self.reorder_pct > 0.0 && self.delay_ns == 0 {
            return Err("--reorder needs --delay: reordered frames are sent at once and the rest delayed".into());
        }
        Ok(())
    }

    /// Whether this impairment leaves every frame alone (no loss, delay, reorder, duplicate,
    /// rate). The queue limit still applies, as it does in netem.
    pub fn is_none(&self) -> bool {
        self.loss_pct == 0.0
            && self.delay_ns == 0
            && self.jitter_ns == 0
            && self.reorder_pct == 0.0
            && self.duplicate_pct == 0.0
            && self.rate_bps.is_none()
    }
}

/// Counters of one direction. Every frame read is accounted for:
/// `frames_in + duplicated = forwarded + dropped_loss + dropped_limit + send_errors + queued`,
/// where `queued` is what still waits (the binary flushes nothing at exit: it reports it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionStats {
    /// Frames read from the receiving interface.
    pub frames_in: u64,
    /// Bytes of those frames (Ethernet header included, no FCS).
    pub bytes_in: u64,
    /// Frames handed to the sending interface.
    pub forwarded: u64,
    /// Frames dropped by `loss`.
    pub dropped_loss: u64,
    /// Frames dropped because `limit` frames were already waiting.
    pub dropped_limit: u64,
    /// Extra copies made by `duplicate`.
    pub duplicated: u64,
    /// Frames (copies included) sent at once by `reorder`.
    pub reordered: u64,
    /// Frames the sending interface refused (after retries).
    pub send_errors: u64,
    /// Frames still waiting when the counters were taken.
    pub queued: u64,
    /// Frames the kernel dropped before the relay read them (`PACKET_STATISTICS` `tp_drops`
    /// of the receiving socket); should stay 0 with the relay's large socket buffers.
    pub socket_drops: u64,
    /// Frames read truncated (longer than the relay's buffer), dropped and counted here.
    pub truncated: u64,
}

impl DirectionStats {
    /// Whether the identity in the type's documentation holds.
    pub fn balanced(&self) -> bool {
        self.frames_in - self.truncated + self.duplicated
            == self.forwarded + self.dropped_loss + self.dropped_limit + self.send_errors + self.queued
    }
}

/// A frame waiting in the queue: ordered by release time, then by arrival, so frames with
/// equal release times leave in the order they came (netem's tfifo does the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    release_ns: u64,
    seq: u64,
    slot: usize,
}

/// One direction's impairment state: random stream, release queue and counters. Frame buffers
/// are kept in slots and reused, so a steady stream allocates nothing after the first frames.
#[derive(Debug)]
pub struct Shaper {
    imp: Impairment,
    rng: Pcg64Mcg,
    queue: BinaryHeap<Reverse<Pending>>,
    slots: Vec<Vec<u8>>,
    free: Vec<usize>,
    seq: u64,
    /// When the link finishes serialising the last frame queued under `rate`, ns.
    link_free_ns: u64,
    /// This direction's counters.
    pub stats: DirectionStats,
}

impl Shaper {
    /// A shaper applying `imp`, its random stream seeded with `seed` (PCG-64 MCG, whose output
    /// for a seed is fixed across versions of `rand_pcg`: the same seed and the same frames
    /// give the same decisions).
    pub fn new(imp: Impairment, seed: u64) -> Self {
        Self {
            imp,
            rng: Pcg64Mcg::seed_from_u64(seed),
            queue: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
            link_free_ns: 0,
            stats: DirectionStats::default(),
        }
    }

    /// The impairment this shaper applies.
    pub fn impairment(&self) -> &Impairment {
        &self.imp
    }

    fn chance(&mut self, pct: f64) -> bool {
        pct > 0.0 && self.rng.random::<f64>() * 100.0 < pct
    }

    /// Takes in one frame read at `now_ns` and queues it (and its duplicate) for release, or
    /// drops it. As `netem_enqueue` (net/sched/sch_netem.c) does, with these differences:
    /// loss is decided first and a lost frame is never duplicated (netem draws duplicate first
    /// and lets loss cancel one copy); a duplicate goes through delay, reorder, rate and limit
    /// on its own, as netem's re-enqueue at the root qdisc does; reorder uses gap 1 and no
    /// correlation; jitter is uniform (no distribution table).
    pub fn enqueue(&mut self, now_ns: u64, frame: &[u8]) {
        self.stats.frames_in += 1;
        self.stats.bytes_in += frame.len() as u64;
        if self.chance(self.imp.loss_pct) {
            self.stats.dropped_loss += 1;
            return;
        }
        let copies = if self.chance(self.imp.duplicate_pct) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            self.queue_copy(now_ns, frame);
        }
    }

    fn queue_copy(&mut self, now_ns: u64, frame: &[u8]) {
        if self.queue.len() >= self.imp.limit {
            self.stats.dropped_limit += 1;
            return;
        }
        let release_ns = if self.imp.delay_ns > 0 && self.chance(self.imp.reorder_pct) {
            // netem: time_to_send = now, queued at the head, outside the rate accounting.
            self.stats.reordered += 1;
            now_ns
        } else {
            let delay = self.delay_sample();
            match self.imp.rate_bps {
                Some(rate) => {
                    // netem: wait for the last queued frame, then serialise this one.
                    let start = (now_ns + delay).max(self.link_free_ns);
                    let release = start + serialisation_ns(frame.len(), rate);
                    self.link_free_ns = release;
                    release
                }
                None => now_ns + delay,
            }
        };
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Vec::new());
                self.slots.len() - 1
            }
        };
        let buf = &mut self.slots[slot];
        buf.clear();
        buf.extend_from_slice(frame);
        self.queue.push(Reverse(Pending { release_ns, seq: self.seq, slot }));
        self.seq += 1;
        self.stats.queued += 1;
    }

    /// `delay ± jitter`, uniform, floored at 0, ns.
    fn delay_sample(&mut self) -> u64 {
        let (delay, jitter) = (self.imp.delay_ns, self.imp.jitter_ns);
        if jitter == 0 {
            return delay;
        }
        let low = delay.saturating_sub(jitter);
        self.rng.random_range(low..=delay + jitter)
    }

    /// When the next frame is due, ns; `None` when nothing waits.
    pub fn next_release_ns(&self) -> Option<u64> {
        self.queue.peek().map(|Reverse(p)| p.release_ns)
    }

    /// Frames waiting.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Hands every frame due at `now_ns` to `send`, in release order, and counts it forwarded,
    /// or a send error when `send` returns `false`. Returns how many frames left the queue.
    pub fn release_due(&mut self, now_ns: u64, mut send: impl FnMut(&[u8]) -> bool) -> usize {
        let mut released = 0;
        while let Some(Reverse(p)) = self.queue.peek().copied() {
            if p.release_ns > now_ns {
                break;
            }
            self.queue.pop();
            if send(&self.slots[p.slot]) {
                self.stats.forwarded += 1;
            } else {
                self.stats.send_errors += 1;
            }
            self.stats.queued -= 1;
            self.free.push(p.slot);
            released += 1;
        }
        released
    }
}

/// Time to serialise `len` bytes at `rate_bps` bits per second, ns, rounded up (netem's
/// `packet_time_ns` without cell or overhead options).
pub fn serialisation_ns(len: usize, rate_bps: u64) -> u64 {
    let bits = len as u128 * 8 * 1_000_000_000;
    bits.div_ceil(rate_bps as u128) as u64
}

/// Which directions the impairment options apply to; the other direction is relayed as is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Frames read on the A side and sent out of the B side.
    A2b,
    /// Frames read on the B side and sent out of the A side.
    B2a,
    /// Both directions, each with its own random stream.
    Both,
}

impl Scope {
    /// The impairments of (a→b, b→a) for `imp` under this scope.
    pub fn split(self, imp: Impairment) -> (Impairment, Impairment) {
        let plain = Impairment { limit: imp.limit, ..Impairment::default() };
        match self {
            Scope::A2b => (imp, plain),
            Scope::B2a => (plain, imp),
            Scope::Both => (imp, imp),
        }
    }
}

/// Seed of each direction's stream derived from the run's seed, so the two directions draw
/// independent numbers and each is repeatable on its own.
pub fn direction_seed(seed: u64, b2a: bool) -> u64 {
    if b2a {
        seed ^ 0x9e37_79b9_7f4a_7c15
    } else {
        seed
    }
}

/// What `--stats-json` holds: the run's seed, options and each direction's counters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RelayStats {
    /// The seed the run used (given, or drawn and printed at start).
    pub seed: u64,
    /// The options applied to the impaired direction(s).
    pub impairment: Impairment,
    /// Which directions were impaired.
    pub direction: Scope,
    /// Frames from the A side to the B side.
    pub a2b: DirectionStats,
    /// Frames from the B side to the A side.
    pub b2a: DirectionStats,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn frame(n: u32) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(&n.to_be_bytes());
        f
    }

    fn id(f: &[u8]) -> u32 {
        u32::from_be_bytes(f[..4].try_into().unwrap())
    }

    /// Feeds `n` frames, one per `gap_ns`, releasing as time passes, then drains; returns the
    /// ids in the order they left and their release times.
    fn run(sh: &mut Shaper, n: u32, gap_ns: u64) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        for i in 0..n {
            let now = i as u64 * gap_ns;
            sh.release_due(now, |f| {
                out.push((id(f), now));
                true
            });
            sh.enqueue(now, &frame(i));
            sh.release_due(now, |f| {
                out.push((id(f), now));
                true
            });
        }
        while let Some(t) = sh.next_release_ns() {
            sh.release_due(t, |f| {
                out.push((id(f), t));
                true
            });
        }
        out
    }

    /// Binomial(n, p) lies within `mean ± 6 sd` except with odds below 1e-8.
    fn within_binomial(count: u64, n: u64, pct: f64) {
        let p = pct / 100.0;
        let mean = n as f64 * p;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        assert!((count as f64 - mean).abs() <= 6.0 * sd, "{count} of {n}, expected {mean} ± {}", 6.0 * sd);
    }

    #[test]
    fn no_options_forward_everything_at_once_in_order() {
        let mut sh = Shaper::new(Impairment::default(), 1);
        let out = run(&mut sh, 1000, 1000);
        assert_eq!(out.len(), 1000);
        for (i, (fid, t)) in out.iter().enumerate() {
            assert_eq!((*fid, *t), (i as u32, i as u64 * 1000));
        }
        assert_eq!(sh.stats.forwarded, 1000);
        assert_eq!(sh.stats.queued, 0);
        assert!(sh.stats.balanced());
        assert_eq!(sh.stats.bytes_in, 64_000);
    }

    #[test]
    fn loss_drops_its_share_and_nothing_else() {
        let imp = Impairment { loss_pct: 10.0, ..Default::default() };
        let mut sh = Shaper::new(imp, 7);
        let out = run(&mut sh, 20_000, 0);
        within_binomial(sh.stats.dropped_loss, 20_000, 10.0);
        assert_eq!(out.len() as u64 + sh.stats.dropped_loss, 20_000);
        assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "loss must not reorder");
        assert!(sh.stats.balanced());
        let mut all = Shaper::new(Impairment { loss_pct: 100.0, ..Default::default() }, 7);
        assert!(run(&mut all, 100, 0).is_empty());
        assert_eq!(all.stats.dropped_loss, 100);
    }

    #[test]
    fn the_same_seed_makes_the_same_decisions() {
        let imp = Impairment {
            loss_pct: 5.0,
            delay_ns: 10 * MS,
            jitter_ns: 3 * MS,
            reorder_pct: 20.0,
            duplicate_pct: 5.0,
            ..Default::default()
        };
        let a = run(&mut Shaper::new(imp, 42), 5000, 100_000);
        let b = run(&mut Shaper::new(imp, 42), 5000, 100_000);
        let c = run(&mut Shaper::new(imp, 43), 5000, 100_000);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(direction_seed(42, false), direction_seed(42, true));
    }

    #[test]
    fn delay_and_jitter_stay_in_their_window() {
        let imp = Impairment { delay_ns: 20 * MS, jitter_ns: 5 * MS, ..Default::default() };
        let mut sh = Shaper::new(imp, 3);
        let mut delays = Vec::new();
        for i in 0..10_000u64 {
            let now = i * 1000;
            sh.enqueue(now, &frame(i as u32));
            let due = sh.next_release_ns().unwrap();
            delays.push(due - now);
            sh.release_due(due, |_| true);
        }
        assert!(delays.iter().all(|d| (15 * MS..=25 * MS).contains(d)));
        let mean = delays.iter().sum::<u64>() as f64 / delays.len() as f64;
        assert!((mean - 20e6).abs() < 0.2e6, "mean delay {mean} ns");
        assert!(delays.iter().any(|d| *d < 16 * MS) && delays.iter().any(|d| *d > 24 * MS));
        // Delay without jitter is exact; jitter larger than delay floors at 0.
        let mut fixed = Shaper::new(Impairment { delay_ns: 7 * MS, ..Default::default() }, 3);
        fixed.enqueue(5, &frame(0));
        assert_eq!(fixed.next_release_ns(), Some(5 + 7 * MS));
        let mut wide = Shaper::new(Impairment { delay_ns: MS, jitter_ns: 5 * MS, ..Default::default() }, 3);
        for i in 0..1000 {
            wide.enqueue(1_000_000_000, &frame(i));
        }
        assert!(wide.queue.iter().all(|Reverse(p)| (1_000_000_000..=1_006_000_000).contains(&p.release_ns)));
    }

    #[test]
    fn reorder_sends_its_share_at_once_and_delays_the_rest() {
        let imp = Impairment { delay_ns: 10 * MS, reorder_pct: 25.0, ..Default::default() };
        let mut sh = Shaper::new(imp, 11);
        let n = 8000;
        let out = run(&mut sh, n, 100_000);
        assert_eq!(out.len(), n as usize);
        within_binomial(sh.stats.reordered, n as u64, 25.0);
        // A frame is sent either at its arrival or exactly 10 ms later.
        let mut at_once = 0;
        for (fid, t) in &out {
            let arrived = *fid as u64 * 100_000;
            match t - arrived {
                0 => at_once += 1,
                d => assert_eq!(d, 10 * MS),
            }
        }
        assert_eq!(at_once, sh.stats.reordered);
        // Frames sent at once overtake the delayed ones before them.
        // Frames sent at once overtake the delayed ones before them: nearly every delayed frame
        // leaves after a higher-numbered one (all but those of the last 10 ms).
        let mut highest = None;
        let late = out
            .iter()
            .filter(|(fid, _)| {
                let overtaken = highest.is_some_and(|h| h > *fid);
                highest = highest.max(Some(*fid));
                overtaken
            })
            .count();
        within_binomial(late as u64, n as u64, 75.0);
    }

    #[test]
    fn duplicate_sends_its_share_twice() {
        let imp = Impairment { duplicate_pct: 10.0, ..Default::default() };
        let mut sh = Shaper::new(imp, 5);
        let out = run(&mut sh, 10_000, 1000);
        within_binomial(sh.stats.duplicated, 10_000, 10.0);
        assert_eq!(out.len() as u64, 10_000 + sh.stats.duplicated);
        let mut seen = std::collections::HashSet::new();
        let dups = out.iter().filter(|(fid, _)| !seen.insert(*fid)).count() as u64;
        assert_eq!(dups, sh.stats.duplicated);
        assert!(sh.stats.balanced());
    }

    #[test]
    fn rate_serialises_and_limit_drops() {
        // 10 Mbit/s: a 1250-byte frame takes 1 ms.
        assert_eq!(serialisation_ns(1250, 10_000_000), MS);
        assert_eq!(serialisation_ns(1, 3), 2_666_666_667);
        let imp = Impairment { rate_bps: Some(10_000_000), limit: 50, ..Default::default() };
        let mut sh = Shaper::new(imp, 9);
        let big = vec![0u8; 1250];
        for _ in 0..80 {
            sh.enqueue(0, &big);
        }
        assert_eq!(sh.queued(), 50);
        assert_eq!(sh.stats.dropped_limit, 30);
        let mut times = Vec::new();
        while let Some(t) = sh.next_release_ns() {
            sh.release_due(t, |_| {
                times.push(t);
                true
            });
        }
        assert_eq!(times, (1..=50).map(|k| k * MS).collect::<Vec<_>>());
        // An idle link starts afresh: no credit is saved up.
        sh.enqueue(100 * MS, &big);
        assert_eq!(sh.next_release_ns(), Some(101 * MS));
        // With delay, the rate counts from the delayed time (netem).
        let mut d = Shaper::new(Impairment { rate_bps: Some(10_000_000), delay_ns: 5 * MS, ..Default::default() }, 9);
        d.enqueue(0, &big);
        d.enqueue(0, &big);
        let mut due = Vec::new();
        while let Some(t) = d.next_release_ns() {
            d.release_due(t, |_| {
                due.push(t);
                true
            });
        }
        assert_eq!(due, [6 * MS, 7 * MS]);
        assert!(sh.stats.balanced() && d.stats.balanced());
    }

    #[test]
    fn send_failures_are_counted_not_lost() {
        let mut sh = Shaper::new(Impairment::default(), 1);
        sh.enqueue(0, &frame(0));
        sh.enqueue(0, &frame(1));
        let mut first = true;
        sh.release_due(0, |_| std::mem::replace(&mut first, false));
        assert_eq!((sh.stats.forwarded, sh.stats.send_errors), (1, 1));
        assert!(sh.stats.balanced());
    }

    #[test]
    fn validation_names_the_option() {
        assert!(Impairment::default().validate().is_ok());
        let bad = |imp: Impairment, what: &str| assert!(imp.validate().unwrap_err().contains(what));
        bad(Impairment { loss_pct: 101.0, ..Default::default() }, "--loss");
        bad(Impairment { duplicate_pct: -1.0, ..Default::default() }, "--duplicate");
        bad(Impairment { loss_pct: f64::NAN, ..Default::default() }, "--loss");
        bad(Impairment { reorder_pct: 10.0, ..Default::default() }, "--delay");
        bad(Impairment { limit: 0, ..Default::default() }, "--limit");
        bad(Impairment { rate_bps: Some(0), ..Default::default() }, "--rate");
        assert!(Impairment::default().is_none());
        assert!(!Impairment { jitter_ns: 1, ..Default::default() }.is_none());
    }

    #[test]
    fn scope_splits_options_and_stats_serialise() {
        let imp = Impairment { loss_pct: 3.0, limit: 7, ..Default::default() };
        let (a, b) = Scope::A2b.split(imp);
        assert_eq!((a, b.loss_pct, b.limit), (imp, 0.0, 7));
        let (a, b) = Scope::B2a.split(imp);
        assert_eq!((a.loss_pct, b), (0.0, imp));
        assert_eq!(Scope::Both.split(imp), (imp, imp));
        let stats = RelayStats {
            seed: 1,
            impairment: imp,
            direction: Scope::Both,
            a2b: DirectionStats { frames_in: 3, ..Default::default() },
            b2a: DirectionStats::default(),
        };
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["direction"], "both");
        assert_eq!(json["a2b"]["frames_in"], 3);
        assert_eq!(serde_json::from_value::<RelayStats>(json).unwrap(), stats);
    }
}
