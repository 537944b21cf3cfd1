//! The per-stage latency histograms: where a packet's time inside xsknet
//! goes, sampled one packet in N (`StackConfig::rx_latency_sample`), in three
//! stages ([`StageLatency`], `Stack::stage_latency`, `Snapshot::stage_latency`):
//!
//! | stage | from | to | kernel's nearest |
//! |---|---|---|---|
//! | `rx_to_read` | the loop takes the descriptor off the rx ring | the application's read returns it | `SOF_TIMESTAMPING_RX_SOFTWARE` to `recvmsg` |
//! | `send_to_tx` | the application's send call (UDP), or its bytes entering the write queue (TCP) | the frame is put on the tx ring (`NetDevice::transmit`) | `sendmsg` to `SOF_TIMESTAMPING_TX_SCHED`/`TX_SOFTWARE` |
//! | `tx_to_completion` | the frame is put on the tx ring | the device gives it back on the completion ring (`NetDevice::complete`) | `TX_SOFTWARE` to `SOF_TIMESTAMPING_TX_COMPLETION` |
//!
//! (The `SOF_TIMESTAMPING_*` points are Linux's, Documentation/networking/timestamping.rst.)
//!
//! Receive: the loop reads the clock once per rx batch and stamps one
//! datagram in N with it; the reader reads the clock only for a stamped
//! datagram. Send: the sending thread counts its sends down ([`tx_stamp`]) and
//! reads the clock for one in N; the loop follows that one frame
//! ([`TxStamps`]) and reads the clock when it goes on the tx ring and when it
//! comes back. Unsampled packets cost a counter decrement and a test.
//!
//! Buckets are log-linear and fixed (HdrHistogram's
//! layout): recording is an index computation and an add, with no
//! allocation. We keep our own rather than the `hdrhistogram` crate for two
//! measured reasons: application threads record into one histogram at once
//! ([`SharedLatencyHistogram`], relaxed atomic adds, which `hdrhistogram`
//! cannot do without a lock), and the run-to-completion reader records inline
//! on the per-packet path, where `hdrhistogram::Histogram::record` (bounds
//! checks, a `Result`, auto-resize logic) costs several times the two adds
//! here. The benchmark side (`xsknet-bench`) uses `hdrhistogram` itself,
//! where neither matters.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Sub-buckets per power of two: 2^5 = 32, so a value is reported at most
/// 1/32 (3.1 %) above what was recorded. Values below 64 ns are exact.
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Values from 2^40 ns (18 minutes) on share the last bucket (`max` stays exact).
const MAX_BITS: u32 = 40;
/// Number of buckets: 64 exact ones, then 32 for each power of two up to 2^40.
pub const LATENCY_BUCKETS: usize = (MAX_BITS as usize - SUB_BITS as usize + 1) * SUB;

/// The bucket of `v` nanoseconds.
#[inline]
fn bucket_of(v: u64) -> usize {
    let v = v.min((1 << MAX_BITS) - 1);
    if v < 2 * SUB as u64 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // 2^e <= v < 2^(e+1), e >= 6
    let sub = (v >> (e - SUB_BITS)) as usize & (SUB - 1);
    (e - SUB_BITS + 1) as usize * SUB + sub
}

/// The lowest and highest value that land in bucket `i`.
fn bucket_bounds(i: usize) -> (u64, u64) {
    if i < 2 * SUB {
        return (i as u64, i as u64);
    }
    let e = (i / SUB) as u32 + SUB_BITS - 1;
    let width = 1u64 << (e - SUB_BITS);
    let low = (SUB + i % SUB) as u64 * width;
    (low, low + width - 1)
}

/// A histogram of latencies in nanoseconds, log-linear with fixed buckets
/// (HdrHistogram's layout with 32 sub-buckets per power of two): values under
/// 64 ns exact, others within 3.1 %; count, sum, min and max exact.
///
/// In JSON (the control endpoint's answers) it is `count`, `sum_ns`,
/// `min_ns`, `max_ns` and the non-empty `buckets` as `[low, high, count]`.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "HistogramJson", try_from = "HistogramJson")]
pub struct LatencyHistogram {
    counts: [u64; LATENCY_BUCKETS],
    count: u64,
    sum: u64,
    min: u64,
    max: u64,
}

/// One non-empty bucket: `count` values between `low` and `high` ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LatencyBucket {
    /// The lowest value of the bucket, ns.
    pub low: u64,
    /// The highest value of the bucket, ns.
    pub high: u64,
    /// Values recorded in it.
    pub count: u64,
}

/// The figures a report prints, in nanoseconds (0 when nothing was recorded).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// The smallest, exact.
    pub min_ns: u64,
    /// The mean, exact.
    pub mean_ns: f64,
    /// The median.
    pub p50_ns: u64,
    /// The 90th percentile.
    pub p90_ns: u64,
    /// The 99th percentile.
    pub p99_ns: u64,
    /// The 99.9th percentile.
    pub p999_ns: u64,
    /// The 99.99th percentile.
    pub p9999_ns: u64,
    /// The largest, exact.
    pub max_ns: u64,
}

/// The JSON shape of a [`LatencyHistogram`].
#[derive(serde::Serialize, serde::Deserialize)]
struct HistogramJson {
    count: u64,
    sum_ns: u64,
    min_ns: u64,
    max_ns: u64,
    buckets: Vec<(u64, u64, u64)>,
}

impl From<LatencyHistogram> for HistogramJson {
    fn from(h: LatencyHistogram) -> HistogramJson {
        HistogramJson {
            count: h.count,
            sum_ns: h.sum,
            min_ns: h.min(),
            max_ns: h.max,
            buckets: h.buckets().map(|b| (b.low, b.high, b.count)).collect(),
        }
    }
}

impl TryFrom<HistogramJson> for LatencyHistogram {
    type Error = String;

    fn try_from(j: HistogramJson) -> Result<LatencyHistogram, String> {
        let mut h = LatencyHistogram::new();
        for (low, high, count) in j.buckets {
            let i = bucket_of(low);
            if bucket_bounds(i) != (low, high) {
                return Err(format!("{low}..={high} ns is not a bucket of the histogram"));
            }
            h.counts[i] += count;
        }
        h.count = h.counts.iter().sum();
        if h.count != j.count {
            return Err(format!("the buckets hold {} values, count says {}", h.count, j.count));
        }
        (h.sum, h.max) = (j.sum_ns, j.max_ns);
        h.min = if h.count == 0 { u64::MAX } else { j.min_ns };
        Ok(h)
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new()
    }
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LatencyHistogram {:?}", self.summary())
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub const fn new() -> LatencyHistogram {
        LatencyHistogram { counts: [0; LATENCY_BUCKETS], count: 0, sum: 0, min: u64::MAX, max: 0 }
    }

    /// Words [`Self::write_words`] writes: the buckets, then count, sum, min, max.
    pub const WORDS: usize = LATENCY_BUCKETS + 4;

    /// Writes the histogram into `out` (`Self::WORDS` long), as plain words
    /// for a statistics page; [`Self::from_words`] reads it back.
    ///
    /// # Panics
    ///
    /// If `out` is not `Self::WORDS` long.
    pub fn write_words(&self, out: &mut [u64]) {
        let (counts, tail) = out.split_at_mut(LATENCY_BUCKETS);
        counts.copy_from_slice(&self.counts);
        tail.copy_from_slice(&[self.count, self.sum, self.min, self.max]);
    }

    /// The histogram [`Self::write_words`] wrote into `words`.
    ///
    /// # Panics
    ///
    /// If `words` is not `Self::WORDS` long.
    pub fn from_words(words: &[u64]) -> LatencyHistogram {
        let (counts, tail) = words.split_at(LATENCY_BUCKETS);
        let mut h = LatencyHistogram::new();
        h.counts.copy_from_slice(counts);
        (h.count, h.sum, h.min, h.max) = (tail[0], tail[1], tail[2], tail[3]);
        h
    }

    /// The sum of the values recorded, ns (exact).
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// Adds one value (ns).
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.counts[bucket_of(ns)] += 1;
        self.count += 1;
        self.sum = self.sum.saturating_add(ns);
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The smallest value recorded (0 when empty).
    pub fn min(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    /// The largest value recorded (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The mean of the values recorded (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value at quantile `q` (0.0–1.0; 0.99 is p99): the highest value of
    /// the bucket that holds the `ceil(q × count)`-th smallest value, clamped
    /// to [min, max], as HdrHistogram's `value_at_quantile` reports it. 0 when
    /// empty.
    pub fn value_at_quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_bounds(i).1.clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// The non-empty buckets, lowest first (to rebuild an HdrHistogram, or
    /// to draw).
    pub fn buckets(&self) -> impl Iterator<Item = LatencyBucket> + '_ {
        self.counts.iter().enumerate().filter(|(_, &c)| c > 0).map(|(i, &count)| {
            let (low, high) = bucket_bounds(i);
            LatencyBucket { low, high, count }
        })
    }

    /// Count, min, mean, p50, p90, p99, p99.9, p99.99 and max.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.count,
            min_ns: self.min(),
            mean_ns: self.mean(),
            p50_ns: self.value_at_quantile(0.50),
            p90_ns: self.value_at_quantile(0.90),
            p99_ns: self.value_at_quantile(0.99),
            p999_ns: self.value_at_quantile(0.999),
            p9999_ns: self.value_at_quantile(0.9999),
            max_ns: self.max,
        }
    }
}

/// A [`LatencyHistogram`] that several threads record into at once (the
/// application threads of a `ThreadedStack`): relaxed atomic adds, taken only
/// for sampled datagrams.
pub(crate) struct SharedLatencyHistogram {
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
}

impl SharedLatencyHistogram {
    pub(crate) fn new() -> SharedLatencyHistogram {
        SharedLatencyHistogram {
            counts: (0..LATENCY_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, ns: u64) {
        self.counts[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(ns, Ordering::Relaxed);
        self.min.fetch_min(ns, Ordering::Relaxed);
        self.max.fetch_max(ns, Ordering::Relaxed);
    }

    /// Forgets what was recorded (recordings racing with it may survive in part).
    pub(crate) fn reset(&self) {
        for c in self.counts.iter() {
            c.store(0, Ordering::Relaxed);
        }
        self.sum.store(0, Ordering::Relaxed);
        self.min.store(u64::MAX, Ordering::Relaxed);
        self.max.store(0, Ordering::Relaxed);
    }

    /// A copy (each counter read once; recordings racing with it may be
    /// half in).
    pub(crate) fn snapshot(&self) -> LatencyHistogram {
        let mut h = LatencyHistogram::new();
        for (a, b) in h.counts.iter_mut().zip(self.counts.iter()) {
            *a = b.load(Ordering::Relaxed);
        }
        h.count = h.counts.iter().sum();
        h.sum = self.sum.load(Ordering::Relaxed);
        h.min = self.min.load(Ordering::Relaxed);
        h.max = self.max.load(Ordering::Relaxed);
        h
    }
}

/// Nanoseconds from `epoch` to now: the clock of the rx-to-read latency.
#[inline]
pub(crate) fn ns_since(epoch: Instant) -> u64 {
    Instant::now().saturating_duration_since(epoch).as_nanos() as u64
}

/// The three stage histograms of one stack, in nanoseconds (see the module
/// documentation for where each stage starts and ends).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StageLatency {
    /// Rx ring to the application's read.
    pub rx_to_read: LatencyHistogram,
    /// The application's send to the tx ring.
    pub send_to_tx: LatencyHistogram,
    /// The tx ring to the completion ring.
    pub tx_to_completion: LatencyHistogram,
}

/// [`StageLatency`]'s figures, as the report and `--stats-json` give them.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct StageSummary {
    /// Rx ring to the application's read.
    pub rx_to_read: LatencySummary,
    /// The application's send to the tx ring.
    pub send_to_tx: LatencySummary,
    /// The tx ring to the completion ring.
    pub tx_to_completion: LatencySummary,
}

impl StageLatency {
    /// The three summaries.
    pub fn summary(&self) -> StageSummary {
        StageSummary {
            rx_to_read: self.rx_to_read.summary(),
            send_to_tx: self.send_to_tx.summary(),
            tx_to_completion: self.tx_to_completion.summary(),
        }
    }
}

thread_local! {
    /// Sends this thread made since its last sampled one (starting high, so
    /// that a thread's first send is sampled).
    static TX_SENDS: Cell<u32> = const { Cell::new(u32::MAX - 1) };
}

/// The send stamp for a send call now: ns since `epoch` (never 0) for one
/// send in `every` made by this thread (the first one included), 0 for the
/// others and when `every` is 0. The count is per thread, so application
/// threads sending at once share nothing; only a sampled send reads the
/// clock. An unsampled send costs a compare and an increment.
#[inline]
pub(crate) fn tx_stamp(every: u32, epoch: Instant) -> u64 {
    // `every - 1` sends are skipped between two samples; 0 (off) wraps to
    // `u32::MAX`, which the count reaches only to be reset below.
    let skip = every.wrapping_sub(1);
    let sends = TX_SENDS.get();
    if sends < skip {
        TX_SENDS.set(sends + 1);
        return 0;
    }
    tx_stamp_now(every, epoch)
}

#[cold]
#[inline(never)]
fn tx_stamp_now(every: u32, epoch: Instant) -> u64 {
    TX_SENDS.set(0);
    if every == 0 {
        return 0;
    }
    ns_since(epoch).max(1)
}

/// A sampled frame that a device has not given back after this long (ns)
/// is taken as lost: the next sample to reach the tx ring replaces it.
pub const TX_COMPLETION_GIVE_UP_NS: u64 = 1_000_000_000;

/// The loop's half of the send-side stages: the sampled frame waiting on the
/// transmit batch, the one on the tx ring, and the two histograms. One
/// sample per stage at a time: a sampled frame queued while another waits
/// for the tx ring is not followed.
#[derive(Default)]
pub struct TxStamps {
    /// The sampled frame on the transmit batch: its index there, its
    /// address and its send stamp.
    queued: Option<(usize, u64, u64)>,
    /// The sampled frame on the tx ring: its address and when it went there
    /// (ns since the epoch).
    on_ring: Option<(u64, u64)>,
    /// The application's send to the tx ring (boxed: 9 KiB of buckets).
    pub send_to_tx: Box<LatencyHistogram>,
    /// The tx ring to the completion ring.
    pub tx_to_completion: Box<LatencyHistogram>,
}

impl std::fmt::Debug for TxStamps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxStamps").field("queued", &self.queued).field("on_ring", &self.on_ring).finish_non_exhaustive()
    }
}

impl TxStamps {
    /// A protocol handler has just sent an IPv4 packet stamped `tstamp` (ns
    /// since the epoch); the transmit batch of `q` held `before` frames
    /// before. If the packet went on the batch (not dropped, not held for
    /// ARP: then the batch grew by one IPv4 frame) and no other sample waits
    /// there, it is followed.
    #[cold]
    #[inline(never)]
    pub(crate) fn queued(&mut self, q: &mut crate::netdev_queue::NetdevQueue, before: usize, tstamp: u64) {
        if self.queued.is_some() || q.tx_backlog() != before + 1 {
            return;
        }
        let umem = q.umem().clone();
        let Some(d) = q.tx_batch().last() else { return };
        // An ARP request sent for the packet's next hop is the only other
        // frame a send can put there.
        let at = d.offset as usize + 12;
        if umem.frame(&d.frame).get(at..at + 2) == Some(&crate::wire::ethernet::ethertype::IPV4.to_be_bytes()[..]) {
            self.queued = Some((before, d.frame.addr(), tstamp));
        }
    }

    /// The device took the first `n` frames of the transmit batch onto the
    /// tx ring: records the sample's send-to-tx time if it was among them.
    #[inline]
    pub(crate) fn transmitted(&mut self, n: usize, epoch: Instant) {
        let Some((pos, addr, tstamp)) = self.queued else { return };
        if pos < n {
            self.on_tx_ring(addr, tstamp, epoch);
        } else {
            self.queued = Some((pos - n, addr, tstamp));
        }
    }

    #[cold]
    #[inline(never)]
    fn on_tx_ring(&mut self, addr: u64, tstamp: u64, epoch: Instant) {
        self.queued = None;
        let now = ns_since(epoch);
        self.send_to_tx.record(now.saturating_sub(tstamp));
        match self.on_ring {
            Some((_, t)) if now.saturating_sub(t) < TX_COMPLETION_GIVE_UP_NS => {}
            _ => self.on_ring = Some((addr, now)),
        }
    }

    /// The device gave back the last `n` frames of `free` (taken off the
    /// completion ring by this poll): records the sample's tx-to-completion
    /// time if it is among them.
    #[inline]
    pub(crate) fn completed(&mut self, free: &[crate::umem::Frame], n: usize, epoch: Instant) {
        if self.on_ring.is_some() && n > 0 {
            self.find_completed(&free[free.len().saturating_sub(n)..], epoch);
        }
    }

    #[inline(never)]
    fn find_completed(&mut self, done: &[crate::umem::Frame], epoch: Instant) {
        let Some((addr, t)) = self.on_ring else { return };
        if done.iter().any(|f| f.addr() == addr) {
            self.on_ring = None;
            self.tx_to_completion.record(ns_since(epoch).saturating_sub(t));
        }
    }

    /// Forgets the sample waiting on the transmit batch (the batch was
    /// emptied without a transmit, on shutdown).
    pub(crate) fn forget_queued(&mut self) {
        self.queued = None;
    }

    /// Forgets the latencies recorded so far (not the samples in flight).
    pub(crate) fn reset(&mut self) {
        *self.send_to_tx = LatencyHistogram::new();
        *self.tx_to_completion = LatencyHistogram::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_range() {
        let mut expected_low = 0;
        for i in 0..LATENCY_BUCKETS {
            let (low, high) = bucket_bounds(i);
            assert_eq!(low, expected_low, "bucket {i} starts where {} ended", i.saturating_sub(1));
            assert!(high >= low);
            assert_eq!((bucket_of(low), bucket_of(high)), (i, i));
            // Precision: a bucket is at most 1/32 of its lowest value wide.
            assert!((high - low) * 32 <= low.max(1), "bucket {i}: {low}..={high}");
            expected_low = high + 1;
        }
        assert_eq!(expected_low, 1 << MAX_BITS);
        assert_eq!(bucket_of(u64::MAX), LATENCY_BUCKETS - 1);
    }

    #[test]
    fn percentiles_of_known_inputs() {
        let mut h = LatencyHistogram::new();
        assert_eq!(h.summary(), LatencySummary::default());
        for v in 1..=10_000u64 {
            h.record(v);
        }
        assert_eq!((h.count(), h.min(), h.max()), (10_000, 1, 10_000));
        assert!((h.mean() - 5000.5).abs() < 1e-9);
        for (q, exact) in [(0.5, 5000u64), (0.9, 9000), (0.99, 9900), (0.999, 9990), (0.0001, 1), (1.0, 10_000)] {
            let got = h.value_at_quantile(q);
            // Never below the exact value, at most 1/32 above it.
            assert!(got >= exact && (got - exact) * 32 <= exact, "q {q}: {got} vs {exact}");
        }
        // Below 64 ns every value has its own bucket.
        let mut small = LatencyHistogram::new();
        for v in [5, 7, 7, 40, 63] {
            small.record(v);
        }
        assert_eq!(small.value_at_quantile(0.2), 5);
        assert_eq!(small.value_at_quantile(0.5), 7);
        assert_eq!(small.value_at_quantile(0.8), 40);
        assert_eq!(small.value_at_quantile(1.0), 63);
        let b: Vec<_> = small.buckets().map(|b| (b.low, b.count)).collect();
        assert_eq!(b, [(5, 1), (7, 2), (40, 1), (63, 1)]);
    }

    #[test]
    fn tail_percentiles_and_merge() {
        // 9990 fast reads (1 µs) and 10 slow ones (1 ms): p99 is fast, p99.99 slow.
        let mut a = LatencyHistogram::new();
        for _ in 0..9_990 {
            a.record(1_000);
        }
        let mut b = LatencyHistogram::new();
        for _ in 0..10 {
            b.record(1_000_000);
        }
        a.merge(&b);
        let s = a.summary();
        assert_eq!((s.count, s.min_ns, s.max_ns), (10_000, 1_000, 1_000_000));
        assert!((1_000..=1_031).contains(&s.p50_ns) && (1_000..=1_031).contains(&s.p99_ns), "{s:?}");
        assert_eq!(s.p999_ns, s.p99_ns, "rank 9990 is still a fast one");
        assert_eq!(s.p9999_ns, 1_000_000, "clamped to max");
        let shared = SharedLatencyHistogram::new();
        for v in [3, 1_000, 1_000_000] {
            shared.record(v);
        }
        let snap = shared.snapshot();
        assert_eq!((snap.count(), snap.min(), snap.max()), (3, 3, 1_000_000));
        assert_eq!(snap.value_at_quantile(0.5), a.value_at_quantile(0.5));
    }

    #[test]
    fn words_and_json_give_the_same_histogram_back() {
        let mut h = LatencyHistogram::new();
        for v in [0, 5, 63, 64, 1_000, 1_001, 77_777, 1 << 41] {
            h.record(v);
        }
        let mut words = vec![0; LatencyHistogram::WORDS];
        h.write_words(&mut words);
        assert_eq!(LatencyHistogram::from_words(&words), h);
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json["count"], 8);
        assert_eq!(json["buckets"][0], serde_json::json!([0, 0, 1]));
        let back: LatencyHistogram = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, h);
        let empty: LatencyHistogram =
            serde_json::from_value(serde_json::to_value(LatencyHistogram::new()).unwrap()).unwrap();
        assert_eq!(empty, LatencyHistogram::new());
        // A bucket that is not one, or a count that does not add up, is refused.
        let mut bad = json.clone();
        bad["buckets"][3] = serde_json::json!([64, 70, 1]);
        assert!(serde_json::from_value::<LatencyHistogram>(bad).is_err());
        let mut bad = json;
        bad["count"] = serde_json::json!(9);
        assert!(serde_json::from_value::<LatencyHistogram>(bad).is_err());
    }

    #[test]
    fn tx_stamp_samples_one_send_in_n_per_thread() {
        // A thread of its own: the countdown is per thread.
        std::thread::spawn(|| {
            let epoch = Instant::now();
            for (every, expect) in [(1, 12), (3, 4), (0, 0), (5, 3), (1, 12)] {
                let stamped: Vec<bool> = (0..12).map(|_| tx_stamp(every, epoch) != 0).collect();
                assert_eq!(stamped.iter().filter(|&&s| s).count(), expect, "1 in {every}: {stamped:?}");
                if every == 1 {
                    assert!(stamped[0], "a denser rate samples at once");
                }
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_sample_is_followed_through_a_partial_transmit_and_a_late_completion() {
        use crate::netdev_queue::{dev_queue_xmit, NetdevQueue};
        use crate::netdevice::Desc;
        use crate::wire::ethernet::ethertype;
        use crate::wire::EthernetAddress;
        let (umem, pool) = crate::umem::Umem::new(16, 2048).unwrap();
        let mut q = NetdevQueue::new(std::sync::Arc::new(umem), std::sync::Arc::new(pool));
        let mut mib = crate::snmp::Mib::default();
        let mac = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let mut push = |q: &mut NetdevQueue, ty: u16| {
            let frame = q.alloc_frame().unwrap();
            dev_queue_xmit(q, &mut mib, Desc::one(frame, 0, 60), mac, mac, ty);
        };
        let epoch = Instant::now();
        let mut t = TxStamps::default();
        push(&mut q, ethertype::IPV4);
        push(&mut q, ethertype::ARP);
        // An ARP request where the packet should be: not followed.
        t.queued(&mut q, 1, 1);
        assert!(t.queued.is_none());
        // Nothing added (dropped or held for ARP): not followed.
        t.queued(&mut q, 2, 1);
        assert!(t.queued.is_none());
        push(&mut q, ethertype::IPV4);
        t.queued(&mut q, 2, 1);
        let sampled = q.tx_batch()[2].frame.addr();
        assert_eq!(t.queued, Some((2, sampled, 1)));
        // The ring takes two, then the rest.
        t.transmitted(2, epoch);
        assert_eq!(t.queued, Some((0, sampled, 1)));
        assert!(t.send_to_tx.is_empty());
        t.transmitted(1, epoch);
        assert_eq!((t.queued, t.send_to_tx.count()), (None, 1));
        let (addr, on_ring) = t.on_ring.unwrap();
        assert_eq!(addr, sampled);
        // Completions without it leave it waiting; with it, it is recorded.
        let mut done: Vec<_> = q.tx_batch().drain(..).map(|d| d.frame).collect();
        let last = done.pop().unwrap();
        t.completed(&done, done.len(), epoch);
        assert!(t.tx_to_completion.is_empty() && t.on_ring.is_some());
        done.push(last);
        t.completed(&done, 1, epoch);
        assert_eq!((t.on_ring, t.tx_to_completion.count()), (None, 1));
        assert!(t.tx_to_completion.max() <= ns_since(epoch) - on_ring);
        // A frame never given back is replaced once it is a second old.
        let old_epoch = Instant::now().checked_sub(std::time::Duration::from_secs(2)).unwrap();
        let recent = ns_since(old_epoch);
        t.on_ring = Some((1, recent));
        t.queued = Some((0, 2, recent));
        t.transmitted(1, old_epoch);
        assert_eq!(t.on_ring, Some((1, recent)), "not given up yet");
        t.on_ring = Some((1, 0));
        t.queued = Some((0, 2, recent));
        t.transmitted(1, old_epoch);
        assert_eq!(t.on_ring.map(|(a, _)| a), Some(2), "given up after a second");
        assert_eq!(t.send_to_tx.count(), 3);
        for f in done {
            q.free_frame(f);
        }
    }
}
