//! The softirq: our NAPI poll loop (`net_rx_action`, net/core/dev.c).
//!
//! One [`Stack::poll`] is one NAPI poll: reap the completion ring, take up to
//! `napi_weight` descriptors from the rx ring (ring indices touched once),
//! run each through the protocol handlers, refill the fill ring, push what
//! socks have queued to send, and hand the tx batch to the ring (kicking the
//! kernel only when `need_wakeup` says so). Nothing on this path allocates or
//! locks.
//!
//! [`LoopStats`] is this stack's `si` column: the share of wall time the loop
//! spent doing work, as opposed to spinning on empty rings.
//!
//! [`LatencyHistogram`] is where a datagram's time inside xsknet goes: from
//! the moment the loop took its descriptor off the rx ring to the moment the
//! application read it (`Stack::rx_latency`, `Snapshot::rx_latency`). The loop
//! reads the clock once per rx batch and stamps one datagram in
//! `StackConfig::rx_latency_sample` with it; the reader reads the clock only
//! for a stamped datagram. Buckets are log-linear and fixed: recording is an
//! index computation and an add, with no allocation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::netdevice::NetDevice;
use crate::stack::Stack;

/// How often the neighbour timers run.
const TIMER_INTERVAL: Duration = Duration::from_millis(100);

/// What the loop did: its busy share is our `si`.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct LoopStats {
    pub polls: u64,
    /// Polls that found work.
    pub busy_polls: u64,
    pub busy_ns: u64,
    pub total_ns: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

impl LoopStats {
    /// Adds one poll that took `dt_ns`.
    #[inline]
    pub fn record(&mut self, r: PollResult, dt_ns: u64) {
        self.polls += 1;
        self.total_ns += dt_ns;
        self.rx_packets += r.rx as u64;
        self.tx_packets += r.tx as u64;
        if r.did_work() {
            self.busy_polls += 1;
            self.busy_ns += dt_ns;
        }
    }

    /// Share of time spent doing work, 0.0–1.0.
    pub fn busy_share(&self) -> f64 {
        if self.total_ns == 0 {
            0.0
        } else {
            self.busy_ns as f64 / self.total_ns as f64
        }
    }
}

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
#[derive(Clone, PartialEq, Eq)]
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
    pub low: u64,
    pub high: u64,
    pub count: u64,
}

/// The figures a report prints, in nanoseconds (0 when nothing was recorded).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_ns: u64,
    pub mean_ns: f64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub p9999_ns: u64,
    pub max_ns: u64,
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
    pub const fn new() -> LatencyHistogram {
        LatencyHistogram { counts: [0; LATENCY_BUCKETS], count: 0, sum: 0, min: u64::MAX, max: 0 }
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

    pub fn count(&self) -> u64 {
        self.count
    }

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

    pub fn max(&self) -> u64 {
        self.max
    }

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

/// What one poll did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollResult {
    pub rx: usize,
    pub tx: usize,
    pub completed: usize,
}

impl PollResult {
    pub fn did_work(&self) -> bool {
        self.rx + self.tx + self.completed > 0
    }
}

impl<D: NetDevice> Stack<D> {
    /// One NAPI poll.
    pub fn poll(&mut self) -> PollResult {
        let completed = self.dev.complete(&mut self.free);

        let mut batch = std::mem::take(&mut self.rx_batch);
        self.dev.receive(self.cfg.napi_weight, &mut batch);
        // The batch's descriptors are off the rx ring now: the one clock read
        // of this poll, also the rx stamp of the datagrams sampled from it.
        let now = Instant::now();
        let rx = batch.len();
        if rx > 0 {
            // Never 0: 0 marks a datagram that is not sampled.
            self.rx_stamp_ns = (now.saturating_duration_since(self.epoch).as_nanos() as u64).max(1);
            let umem = Arc::clone(&self.umem);
            for d in batch.drain(..) {
                self.netif_receive(&umem, d, now);
            }
            // sk_data_ready, once per sock per batch: one fence, not one per datagram.
            for key in self.rx_woken.drain(..) {
                if let Some(sock) = self.demux.get(&key) {
                    sock.wq.wake_up();
                }
            }
        }
        self.rx_batch = batch;
        self.refill();

        // Socks with data to send, each drained up to the weight.
        let mut scheduled = self.tx_scheduled.len();
        while scheduled > 0 {
            scheduled -= 1;
            let Some(sock) = self.tx_scheduled.pop() else { break };
            // Clear the mark before draining: a send racing with us re-marks.
            sock.tx_scheduled.store(false, std::sync::atomic::Ordering::SeqCst);
            self.udp_push_pending(&sock, self.cfg.napi_weight, now);
            sock.wq.wake_up();
            if sock.queued_xmit() > 0 && !sock.tx_scheduled.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let _ = self.tx_scheduled.push(sock);
            }
        }

        let mut tx = 0;
        if !self.tx_batch.is_empty() {
            let before = self.tx_batch.len();
            tx = self.dev.transmit(&mut self.tx_batch);
            self.mib.XskTxFrames += tx as u64;
            if tx < before {
                self.mib.XskTxRingFull += (before - tx) as u64;
            }
        }

        if now.duration_since(self.last_timer_run) >= TIMER_INTERVAL {
            self.last_timer_run = now;
            self.neigh_timers(now);
            // Keep the loop's cache from hoarding frames other threads need.
            let keep = self.dev.fill_capacity() + 4 * self.cfg.napi_weight;
            while self.free.len() > keep {
                let f = self.free.pop().expect("longer than keep");
                self.pool.put(f);
            }
        }

        let r = PollResult { rx, tx, completed };
        if !r.did_work() {
            self.dev.wake_rx();
        }
        r
    }

    /// Polls until `stop()` says so, keeping `stats`. `stop` runs on the
    /// loop's thread between polls, for work that must happen there; its
    /// time is not counted as busy.
    pub fn run_until(&mut self, stats: &mut LoopStats, mut stop: impl FnMut(&mut Self) -> bool) {
        while !stop(self) {
            let t0 = Instant::now();
            let r = self.poll();
            stats.record(r, t0.elapsed().as_nanos() as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    use crate::netdevice::{MemDevice, MemWire};
    use crate::sock::SockType;
    use crate::socket::ThreadedStack;
    use crate::stack::StackConfig;
    use crate::umem::Umem;
    use crate::wire::ethernet::{ethertype, EthernetHeader, HEADER_LEN};
    use crate::wire::ipv4::{protocol, Ipv4Header};
    use crate::wire::{udp, EthernetAddress};

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

    const OUR_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
    const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    fn stack(sample: u32) -> (Stack<MemDevice>, MemWire) {
        let (umem, pool) = Umem::new(256, 2048).unwrap();
        let umem = Arc::new(umem);
        let dev = MemDevice::new(umem.clone(), 64, 64);
        let wire = dev.wire();
        let mut cfg = StackConfig::new(OUR_MAC, OUR_IP, 24);
        cfg.rx_latency_sample = sample;
        (Stack::new(dev, umem, Arc::new(pool), cfg), wire)
    }

    fn udp_frame(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; HEADER_LEN + 28 + payload.len()];
        EthernetHeader { dst: OUR_MAC, src: EthernetAddress([2, 0, 0, 0, 0, 1]), ethertype: ethertype::IPV4 }
            .write(&mut f);
        f[HEADER_LEN + 28..].copy_from_slice(payload);
        udp::write_header(&mut f[HEADER_LEN + 20..], PEER_IP, OUR_IP, 40000, 7, payload.len());
        Ipv4Header::write(&mut f[HEADER_LEN..], PEER_IP, OUR_IP, protocol::UDP, 8 + payload.len(), 64, 1, true);
        f
    }

    #[test]
    fn rx_to_read_latency_is_recorded_for_sampled_datagrams() {
        for (sample, expect) in [(1, 12), (3, 4), (0, 0)] {
            let (mut s, w) = stack(sample);
            let fd = s.socket(SockType::Dgram).unwrap();
            s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
            for i in 0..12u8 {
                assert!(w.inject(&udp_frame(&[i; 18])));
            }
            s.poll();
            std::thread::sleep(Duration::from_millis(2));
            let mut buf = [0u8; 64];
            for i in 0..12 {
                if i % 2 == 0 {
                    assert_eq!(s.recv_from(fd, &mut buf).unwrap().0, 18);
                } else {
                    assert_eq!(s.recv_with(fd, |d, _| d.len()).unwrap(), 18);
                }
            }
            let h = s.rx_latency();
            assert_eq!(h.count(), expect, "1 in {sample}");
            if expect > 0 {
                // Stamped before the sleep, read after it.
                assert!(h.min() >= 2_000_000 && h.max() < 10_000_000_000, "{h:?}");
            }
            s.reset_rx_latency();
            assert!(s.rx_latency().is_empty());
        }
    }

    /// The loop wakes a sleeping reader once per batch, after a fence: a
    /// reader that goes to sleep while a datagram is being queued must not
    /// miss it (it would sleep until its timeout).
    #[test]
    fn threaded_reader_is_never_left_asleep() {
        let (s, w) = stack(0);
        let t = ThreadedStack::spawn(s).unwrap();
        let h = t.handle();
        let fd = h.socket(SockType::Dgram).unwrap();
        h.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
        let frame = udp_frame(b"ping");
        // One datagram in flight at a time, so none is dropped for rcvbuf:
        // the injector waits for the previous one to be read, then a varying
        // moment, so that the datagram lands before, while and after the
        // reader goes to sleep.
        let read = Arc::new(AtomicU64::new(0));
        let read2 = read.clone();
        let injector = std::thread::spawn(move || {
            for i in 0..2_000u64 {
                while read2.load(Ordering::Acquire) < i {
                    std::hint::spin_loop();
                }
                for _ in 0..(i % 11) * 100 {
                    std::hint::spin_loop();
                }
                assert!(w.inject(&frame));
            }
        });
        let mut buf = [0u8; 16];
        for i in 0..2_000 {
            let t0 = Instant::now();
            let r = h.recv_from(fd, &mut buf, Some(Duration::from_secs(10)));
            assert!(r.is_ok(), "datagram {i}: {r:?}");
            assert!(t0.elapsed() < Duration::from_secs(2), "datagram {i}: reader slept through it");
            read.store(i + 1, Ordering::Release);
        }
        injector.join().unwrap();
        drop(t);
    }

    #[test]
    fn threaded_readers_record_into_the_snapshot_and_the_stopped_stack() {
        let (s, w) = stack(1);
        let t = ThreadedStack::spawn(s).unwrap();
        let h = t.handle();
        let fd = h.socket(SockType::Dgram).unwrap();
        h.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
        let mut buf = [0u8; 64];
        for i in 0..5u8 {
            assert!(w.inject(&udp_frame(&[i; 10])));
            assert_eq!(h.recv_from(fd, &mut buf, Some(Duration::from_secs(5))).unwrap().0, 10);
        }
        let snap = h.snapshot().unwrap();
        assert_eq!(snap.rx_latency.count(), 5);
        assert!(snap.rx_latency.max() < 5_000_000_000);
        h.reset_rx_latency();
        assert!(h.snapshot().unwrap().rx_latency.is_empty());
        assert!(w.inject(&udp_frame(&[9; 10])));
        h.recv_from(fd, &mut buf, Some(Duration::from_secs(5))).unwrap();
        h.close(fd).unwrap();
        let (s, _) = t.stop().unwrap();
        assert_eq!(s.rx_latency().count(), 1);
    }
}
