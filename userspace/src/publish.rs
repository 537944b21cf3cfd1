//! The statistics page: the loop's counters published for readers on other
//! threads (the control endpoint, the metrics server) without a lock and
//! without slowing the per-packet path.
//!
//! The loop keeps its counters in plain integers ([`crate::snmp`]). Every
//! [`PUBLISH_INTERVAL`] it copies them, with its own figures, the frame
//! census and the latency histograms, into a page of atomic words guarded by
//! a sequence count: a seqlock, as the kernel's `seqcount_t` and
//! `u64_stats_sync` (include/linux/seqlock.h, u64_stats_sync.h). The writer
//! never waits; a reader copies the page and tries again if a write ran
//! meanwhile, so it always gets one consistent moment. Between publications
//! the loop's cost is one time comparison per poll.
//!
//! Requests that need the loop's tables (the socket listing) go the other
//! way through a bounded lock-free queue the loop empties when it publishes.

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::inet_diag::SockDiag;
use crate::latency::LatencyHistogram;
use crate::netdevice::DeviceStats;
use crate::schedstat::ThreadSched;
use crate::snmp::{Mib, MibCounter};
use crate::softirq::LoopStats;
use crate::stream::TcpState;
use crate::umem::FrameCensus;
use crate::xdp::XdpLinkWatch;

/// How often the loop publishes: often enough for a once-a-second view and
/// a socket listing that answers at once, rarely enough to cost nothing.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// Socket-listing requests that may wait for the loop at once.
const MAX_REQUESTS: usize = 16;

/// How often [`StatsReader::wait_next`] looks once the publication it waits
/// for is late (a loop descheduled, or busy with a long poll).
pub const LATE_POLL: Duration = Duration::from_millis(1);

/// What the loop publishes: one consistent moment of its state.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PublishedStats {
    /// Nanoseconds since the stack was made, at publication.
    pub uptime_ns: u64,
    /// Every counter (as [`crate::Stack::snmp`] gives them).
    pub mib: Mib,
    /// The loop's polls and busy time (our `si`).
    pub softirq: LoopStats,
    /// `XDP_STATISTICS` and our ring checks.
    pub device: DeviceStats,
    /// Where every frame is.
    pub census: FrameCensus,
    /// Frames the fill ring can still take (`NetDevice::fill_room`: its
    /// empty slots as this side last saw them, so it may under-count).
    pub fill_room: u64,
    /// The fill ring's size, frames: `fill_capacity - fill_room` are posted
    /// for the kernel to receive into.
    pub fill_capacity: u64,
    /// TCP sockets by state, TIME-WAIT included, in [`TcpState::ALL`] order.
    pub tcp_states: [u64; TcpState::ALL.len()],
    /// Rx-descriptor-to-read latency of the sampled datagrams, ns.
    pub rx_latency: LatencyHistogram,
    /// Application send to tx ring of the sampled sends, ns (`crate::latency`).
    #[serde(default)]
    pub send_to_tx: LatencyHistogram,
    /// Tx ring to completion ring of the sampled sends, ns.
    #[serde(default)]
    pub tx_to_completion: LatencyHistogram,
    /// The id of the XDP program the instance serves from (0: not watched,
    /// [`Publisher::watch_xdp`]).
    #[serde(default)]
    pub xdp_prog_id: u32,
    /// Whether that program was still attached to the interface at the
    /// publication ([`crate::xdp::XdpLinkWatch::attached`]); once it is not,
    /// no frame reaches the instance.
    #[serde(default)]
    pub xdp_attached: bool,
}

impl PublishedStats {
    /// The per-stage latency histograms by name, in the packet's order
    /// (what `xsknet stat -l`, `top` and the metrics show).
    pub fn stages(&self) -> Vec<(&'static str, &LatencyHistogram)> {
        vec![
            ("rx_to_read", &self.rx_latency),
            ("send_to_tx", &self.send_to_tx),
            ("tx_to_completion", &self.tx_to_completion),
        ]
    }
}

/// Words of each part of the page, in the order they are written.
const LOOP_WORDS: usize = 13;
const DEVICE_WORDS: usize = 13;
const CENSUS_WORDS: usize = 8;
const FILL_WORDS: usize = 2;
const XDP_WORDS: usize = 2;
const PAGE_WORDS: usize = 1
    + MibCounter::ALL.len()
    + LOOP_WORDS
    + DEVICE_WORDS
    + CENSUS_WORDS
    + FILL_WORDS
    + XDP_WORDS
    + TcpState::ALL.len()
    + LATENCY_STAGES * LatencyHistogram::WORDS;
/// The latency histograms at the end of the page: [`PublishedStats::stages`].
const LATENCY_STAGES: usize = 3;

impl PublishedStats {
    /// Writes `self` as the page's words.
    fn encode(&self, out: &mut [u64]) {
        let mut w = out.iter_mut();
        let mut put = |v: u64| *w.next().expect("the page has a word for every field") = v;
        put(self.uptime_ns);
        for &c in MibCounter::ALL {
            put(self.mib.value(c));
        }
        let l = &self.softirq;
        for v in [
            l.polls,
            l.busy_polls,
            l.busy_ns,
            l.total_ns,
            l.rx_packets,
            l.tx_packets,
            l.publications,
            l.publish_ns,
            l.sched.run_ns,
            l.sched.run_delay_ns,
            l.sched.nivcsw,
            l.loop_cpu_ns,
            l.process_cpu_ns,
        ] {
            put(v);
        }
        let d = &self.device;
        for v in [
            d.rx_dropped,
            d.rx_invalid_descs,
            d.tx_invalid_descs,
            d.rx_ring_full,
            d.rx_fill_ring_empty_descs,
            d.tx_ring_empty_descs,
            d.xsk_rx_invalid_addr,
            d.xsk_cq_invalid_addr,
            d.xsk_in_kernel_underflow,
            d.xsk_rx_multibuf_packets,
            d.xsk_rx_multibuf_too_big,
            d.xsk_rx_multibuf_invalid,
            d.xsk_rx_multibuf_truncated,
        ] {
            put(v);
        }
        let c = &self.census;
        for v in [
            c.total,
            c.in_kernel,
            c.free_local,
            c.free_shared,
            c.in_socks,
            c.awaiting_neighbour,
            c.tx_backlog,
            c.in_reasm,
        ] {
            put(v as u64);
        }
        put(self.fill_room);
        put(self.fill_capacity);
        put(u64::from(self.xdp_prog_id));
        put(u64::from(self.xdp_attached));
        for &n in &self.tcp_states {
            put(n);
        }
        let mut at = PAGE_WORDS - LATENCY_STAGES * LatencyHistogram::WORDS;
        for h in [&self.rx_latency, &self.send_to_tx, &self.tx_to_completion] {
            h.write_words(&mut out[at..at + LatencyHistogram::WORDS]);
            at += LatencyHistogram::WORDS;
        }
    }

    /// The stats [`Self::encode`] wrote into `words`.
    fn decode(words: &[u64]) -> PublishedStats {
        let mut r = words.iter().copied();
        let mut take = || r.next().expect("the page has a word for every field");
        let uptime_ns = take();
        let mut mib = Mib::default();
        for &c in MibCounter::ALL {
            mib.set(c, take());
        }
        let softirq = LoopStats {
            polls: take(),
            busy_polls: take(),
            busy_ns: take(),
            total_ns: take(),
            rx_packets: take(),
            tx_packets: take(),
            publications: take(),
            publish_ns: take(),
            sched: ThreadSched { run_ns: take(), run_delay_ns: take(), nivcsw: take() },
            loop_cpu_ns: take(),
            process_cpu_ns: take(),
            ..LoopStats::default()
        };
        let device = DeviceStats {
            rx_dropped: take(),
            rx_invalid_descs: take(),
            tx_invalid_descs: take(),
            rx_ring_full: take(),
            rx_fill_ring_empty_descs: take(),
            tx_ring_empty_descs: take(),
            xsk_rx_invalid_addr: take(),
            xsk_cq_invalid_addr: take(),
            xsk_in_kernel_underflow: take(),
            xsk_rx_multibuf_packets: take(),
            xsk_rx_multibuf_too_big: take(),
            xsk_rx_multibuf_invalid: take(),
            xsk_rx_multibuf_truncated: take(),
        };
        let census = FrameCensus {
            total: take() as usize,
            in_kernel: take() as usize,
            free_local: take() as usize,
            free_shared: take() as usize,
            in_socks: take() as usize,
            awaiting_neighbour: take() as usize,
            tx_backlog: take() as usize,
            in_reasm: take() as usize,
        };
        let (fill_room, fill_capacity) = (take(), take());
        let (xdp_prog_id, xdp_attached) = (take() as u32, take() != 0);
        let mut tcp_states = [0; TcpState::ALL.len()];
        for n in &mut tcp_states {
            *n = take();
        }
        let at = PAGE_WORDS - LATENCY_STAGES * LatencyHistogram::WORDS;
        let hist = |i: usize| {
            let from = at + i * LatencyHistogram::WORDS;
            LatencyHistogram::from_words(&words[from..from + LatencyHistogram::WORDS])
        };
        PublishedStats {
            uptime_ns,
            mib,
            softirq,
            device,
            census,
            fill_room,
            fill_capacity,
            tcp_states,
            rx_latency: hist(0),
            send_to_tx: hist(1),
            tx_to_completion: hist(2),
            xdp_prog_id,
            xdp_attached,
        }
    }
}

/// The page: words behind a sequence count (odd while a write runs).
struct StatsPage {
    seq: AtomicU64,
    words: Box<[AtomicU64]>,
}

impl StatsPage {
    fn new() -> StatsPage {
        StatsPage { seq: AtomicU64::new(0), words: (0..PAGE_WORDS).map(|_| AtomicU64::new(0)).collect() }
    }

    /// The writer's side (one writer: the loop). Never waits.
    fn write(&self, src: &[u64]) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        // The odd count is visible before any word changes.
        fence(Ordering::Release);
        for (w, &v) in self.words.iter().zip(src) {
            w.store(v, Ordering::Relaxed);
        }
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// A consistent copy into `dst`, or `false` if nothing was published yet.
    fn read(&self, dst: &mut [u64]) -> bool {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 == 0 {
                return false;
            }
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            for (d, w) in dst.iter_mut().zip(self.words.iter()) {
                *d = w.load(Ordering::Relaxed);
            }
            // The word loads are done before the count is read again.
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return true;
            }
        }
    }
}

/// What the loop and the readers share.
struct Shared {
    page: StatsPage,
    /// Socket-listing requests, each with where to send the answer.
    requests: ArrayQueue<mpsc::SyncSender<Vec<SockDiag>>>,
    /// The stack's epoch, for the age of a publication.
    epoch: Instant,
}

/// The loop's side: owned by the stack ([`crate::Stack::attach_publisher`]).
pub struct Publisher {
    shared: Arc<Shared>,
    /// When the next publication is due.
    pub(crate) due: Instant,
    /// The stats being put together (kept, so that publishing does not allocate).
    pub(crate) scratch: Box<PublishedStats>,
    words: Box<[u64]>,
    /// The XDP program's link, asked at each publication whether it is
    /// still attached ([`Self::watch_xdp`]).
    xdp_watch: Option<XdpLinkWatch>,
}

impl Publisher {
    /// A publisher for a stack whose clock started at `epoch`, and the
    /// reader that goes with it (clone it for every reading thread).
    pub fn new(epoch: Instant) -> (Publisher, StatsReader) {
        let shared = Arc::new(Shared { page: StatsPage::new(), requests: ArrayQueue::new(MAX_REQUESTS), epoch });
        let p = Publisher {
            shared: shared.clone(),
            due: epoch,
            scratch: Box::default(),
            words: vec![0; PAGE_WORDS].into_boxed_slice(),
            xdp_watch: None,
        };
        (p, StatsReader { shared })
    }

    /// From now on every publication says whether the instance's XDP
    /// program is still attached (`xdp_prog_id`, `xdp_attached`): three
    /// `bpf(2)` calls each 100 ms, none per packet. The loop warns once when
    /// it finds the program gone.
    pub fn watch_xdp(&mut self, watch: XdpLinkWatch) {
        self.scratch.xdp_prog_id = watch.prog_id();
        self.scratch.xdp_attached = true;
        self.xdp_watch = Some(watch);
    }

    /// Asks the watched link whether the program is still attached, into
    /// [`Self::scratch`]; warns when it was and is no longer.
    pub(crate) fn sample_xdp(&mut self) {
        let Some(w) = &self.xdp_watch else { return };
        let attached = w.attached();
        if self.scratch.xdp_attached && !attached {
            log::warn!(
                "the XDP program {} is no longer attached (another process detached it, e.g. with --replace, or \
                 the interface went away): this instance receives nothing more; restart it",
                w.prog_id()
            );
        }
        self.scratch.xdp_attached = attached;
    }

    /// Publishes [`Self::scratch`] as it is now, and sets the next due time.
    pub(crate) fn commit(&mut self, now: Instant) {
        self.scratch.encode(&mut self.words);
        self.shared.page.write(&self.words);
        self.due = now + PUBLISH_INTERVAL;
    }

    /// Answers the socket-listing requests waiting, each with `list()`.
    pub(crate) fn serve_requests(&self, mut list: impl FnMut() -> Vec<SockDiag>) {
        while let Some(reply) = self.shared.requests.pop() {
            // The asker may have given up: nothing to do then.
            let _ = reply.send(list());
        }
    }
}

/// Why a reader got no answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    /// The loop has not published yet (it publishes on its first poll).
    #[error("the loop has not published its counters yet")]
    NotYet,
    /// Too many socket listings wait for the loop already.
    #[error("too many requests wait for the loop; try again")]
    Busy,
    /// The loop did not answer in time: stalled, or stopped.
    #[error("the loop did not answer within {0:?}: it is stalled or has stopped")]
    Timeout(Duration),
}

/// The readers' side: cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct StatsReader {
    shared: Arc<Shared>,
}

impl StatsReader {
    /// The last publication.
    ///
    /// # Errors
    ///
    /// [`ReadError::NotYet`] before the first one.
    pub fn read(&self) -> Result<PublishedStats, ReadError> {
        let mut words = vec![0; PAGE_WORDS];
        if !self.shared.page.read(&mut words) {
            return Err(ReadError::NotYet);
        }
        Ok(PublishedStats::decode(&words))
    }

    /// A count that moves with every publication (the page's sequence
    /// count: one atomic load, nothing copied), to wait for the next one.
    pub fn generation(&self) -> u64 {
        self.shared.page.seq.load(Ordering::Acquire)
    }

    /// Waits for the loop's next publication, at most `max`: `true` if one
    /// came. The reader sleeps until the next is due (the last one's time
    /// plus [`PUBLISH_INTERVAL`], read from the page), then looks every
    /// [`LATE_POLL`] in case the loop is late: a wait costs its thread a few
    /// wake-ups, not one every millisecond.
    pub fn wait_next(&self, max: Duration) -> bool {
        let seen = self.generation();
        let start = Instant::now();
        let deadline = start + max;
        // The last publication's time: word 0 of the page. A torn read only
        // misplaces one sleep; the generation decides.
        let last_ns = self.shared.page.words[0].load(Ordering::Relaxed);
        let due = self.shared.epoch + Duration::from_nanos(last_ns) + PUBLISH_INTERVAL;
        let first = due.min(deadline).saturating_duration_since(start);
        if !first.is_zero() {
            std::thread::sleep(first);
        }
        loop {
            if self.generation() != seen {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::sleep(LATE_POLL.min(deadline - now));
        }
    }

    /// Time since the stack's epoch, ns: compare with
    /// [`PublishedStats::uptime_ns`] for the age of a publication (a loop that
    /// stopped polling stops publishing).
    pub fn now_ns(&self) -> u64 {
        self.shared.epoch.elapsed().as_nanos() as u64
    }

    /// Every socket of the stack, listed by the loop at its next publication.
    ///
    /// # Errors
    ///
    /// [`ReadError::Busy`] when [`MAX_REQUESTS`] wait already;
    /// [`ReadError::Timeout`] when the loop does not answer within `timeout`.
    pub fn sockets(&self, timeout: Duration) -> Result<Vec<SockDiag>, ReadError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.shared.requests.push(tx).map_err(|_| ReadError::Busy)?;
        rx.recv_timeout(timeout).map_err(|_| ReadError::Timeout(timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_next_ends_at_the_next_publication_or_at_its_bound() {
        let epoch = Instant::now();
        let (mut p, r) = Publisher::new(epoch);
        let t = Instant::now();
        assert!(!r.wait_next(Duration::from_millis(20)), "nothing was published");
        assert!(t.elapsed() >= Duration::from_millis(20));
        // A publication now: the next is due one interval later, and comes.
        p.scratch.uptime_ns = epoch.elapsed().as_nanos() as u64;
        p.commit(Instant::now());
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            p.scratch.uptime_ns = epoch.elapsed().as_nanos() as u64;
            p.commit(Instant::now());
        });
        let t = Instant::now();
        assert!(r.wait_next(PUBLISH_INTERVAL * 10), "the publication was missed");
        assert!(t.elapsed() < PUBLISH_INTERVAL * 10);
        writer.join().unwrap();
        assert!(r.read().unwrap().uptime_ns >= 30_000_000, "the page holds the second publication");
    }

    fn sample(n: u64) -> PublishedStats {
        let mut s = PublishedStats { uptime_ns: n, ..PublishedStats::default() };
        s.mib.IpInReceives = n;
        s.mib.TcpInSegs = 2 * n;
        s.softirq.polls = 3 * n;
        s.device.rx_ring_full = 4 * n;
        s.census.total = 5 * n as usize;
        s.fill_room = 7 * n;
        s.fill_capacity = 8 * n;
        s.tcp_states[9] = 6 * n;
        s.rx_latency.record(n);
        s.send_to_tx.record(8 * n);
        s.tx_to_completion.record(9 * n);
        s.xdp_prog_id = 10 * n as u32;
        s.xdp_attached = n % 2 == 1;
        s
    }

    #[test]
    fn a_publication_reads_back_whole() {
        let (mut p, r) = Publisher::new(Instant::now());
        assert_eq!(r.read(), Err(ReadError::NotYet));
        *p.scratch = sample(7);
        p.commit(Instant::now());
        assert_eq!(r.read().unwrap(), sample(7));
        // The last word of each part lands where decode looks for it.
        let mut all = PublishedStats::default();
        for &c in MibCounter::ALL {
            all.mib.set(c, c as u64 + 1);
        }
        all.device.xsk_in_kernel_underflow = 9;
        all.device.xsk_rx_multibuf_truncated = 10;
        all.census.tx_backlog = 8;
        all.softirq.tx_packets = 7;
        all.xdp_prog_id = 42;
        all.xdp_attached = true;
        *p.scratch = all.clone();
        p.commit(Instant::now());
        assert_eq!(r.read().unwrap(), all);
    }

    #[test]
    fn readers_never_see_a_torn_page() {
        let (mut p, r) = Publisher::new(Instant::now());
        *p.scratch = sample(1);
        p.commit(Instant::now());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (r, stop) = (r.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut reads = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let s = r.read().unwrap();
                        // Every field of one publication comes from the same n.
                        let n = s.uptime_ns;
                        assert_eq!(s, sample(n), "torn read");
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        for n in 2..3000 {
            *p.scratch = sample(n);
            p.commit(Instant::now());
        }
        stop.store(true, Ordering::Relaxed);
        for t in readers {
            assert!(t.join().unwrap() > 0);
        }
    }

    #[test]
    fn socket_listings_are_answered_when_the_loop_publishes() {
        let (p, r) = Publisher::new(Instant::now());
        let asker = {
            let r = r.clone();
            std::thread::spawn(move || r.sockets(Duration::from_secs(10)))
        };
        while p.shared.requests.is_empty() {
            std::thread::yield_now();
        }
        p.serve_requests(Vec::new);
        assert_eq!(asker.join().unwrap(), Ok(Vec::new()));
        // Nobody serves: the asker is told, it does not hang.
        assert_eq!(r.sockets(Duration::from_millis(10)), Err(ReadError::Timeout(Duration::from_millis(10))));
        for _ in 0..MAX_REQUESTS - 1 {
            let (tx, _rx) = mpsc::sync_channel(1);
            p.shared.requests.push(tx).unwrap();
        }
        assert_eq!(r.sockets(Duration::from_millis(10)), Err(ReadError::Busy));
    }
}
