//! The softirq: our NAPI poll (`net_rx_action` → `napi_poll`, net/core/dev.c).
//!
//! [`Napi`] owns the device and its queue ([`NetdevQueue`]: the frame cache
//! and the transmit batch). One [`Napi::poll`] is one NAPI poll at a time
//! passed in: reap the completion ring; push what socks have queued to send
//! (through their protocol's operations) and run the timers that are due,
//! and hand that to the tx ring first, so that a reply the application
//! queued after the last poll does not wait behind this poll's receive
//! work; take up to `weight` descriptors from the rx ring (ring indices
//! touched once), run each through `__netif_receive_skb` and the protocol
//! handlers, wake the socks that got data once per batch, refill the fill
//! ring; and hand what the receive work answered (ICMP, ARP, TCP's ACKs) to
//! the tx ring in the same poll. The device kicks the kernel only when
//! `need_wakeup` says so: at most two kicks a poll, one when only one of the
//! two steps sent anything. Nothing on this path allocates, locks or reads a
//! clock, except for the one sampled frame of the send-side latency stages
//! (`crate::latency::TxStamps`) when it reaches the tx ring and comes back.
//!
//! [`LoopStats`] is this stack's `si` column: the share of wall time the loop
//! spent doing work, as opposed to spinning on empty rings, and what the
//! scheduler did to the loop's thread. [`PollHistograms`] say where a poll's
//! time goes: how long busy polls take, how long the loop is away between two
//! polls (the application's turn, a yield, time descheduled), and the batch
//! sizes. They are what explains a latency tail.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::inet_hashtables::InetHashTables;
use crate::ipv4::af_inet::sk_prot;
use crate::ipv4::{arp, ip_input, tcp};
use crate::latency::{LatencyHistogram, LatencySummary};
use crate::net::Net;
use crate::netdev_queue::NetdevQueue;
use crate::netdevice::{Desc, NetDevice};
use crate::schedstat::ThreadSched;
use crate::skbuff::SkBuff;
use crate::snmp::MibCounter;
use crate::sock::Sock;
use crate::umem::{FramePool, Umem};
use crate::wire::ethernet::{self, ethertype, EthernetFrame, EthernetRepr, PktType};

/// How often the loop gives frames its cache does not need back to the
/// shared free list.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(100);

/// Polls that received nothing after which the fill ring is topped up all the
/// same (about 35 µs of idle polls): see [`Napi::poll`].
const REFILL_IDLE_POLLS: u32 = 1024;

/// What the loop did: its busy share is our `si`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoopStats {
    /// Polls made.
    pub polls: u64,
    /// Polls that found work.
    pub busy_polls: u64,
    /// Nanoseconds spent in polls that found work.
    pub busy_ns: u64,
    /// Nanoseconds spent in all polls.
    pub total_ns: u64,
    /// Descriptors taken off the rx ring.
    pub rx_packets: u64,
    /// Descriptors put on the tx ring.
    pub tx_packets: u64,
    /// Publications made for the control endpoint and the metrics
    /// ([`crate::Stack::publish`]).
    #[serde(default)]
    pub publications: u64,
    /// CPU time the publications took on the loop's thread, ns (between
    /// polls: not in `busy_ns` or `total_ns`).
    #[serde(default)]
    pub publish_ns: u64,
    /// The loop's thread as the scheduler saw it at the last
    /// [`Self::sample_sched`]: time on a CPU, time descheduled while
    /// runnable, preemptions.
    #[serde(default)]
    pub sched: ThreadSched,
    /// CPU time of the loop's thread from [`Self::start`] to the last
    /// [`Self::sample_sched`], ns.
    #[serde(default)]
    pub loop_cpu_ns: u64,
    /// CPU time of the whole process over the same span, ns: the loop's
    /// thread, the control endpoint's, the metrics server's, the capture
    /// writer's, the application's when threaded (ended threads included).
    #[serde(default)]
    pub process_cpu_ns: u64,
    /// Threaded: times the loop blocked after a poll that woke a thread that
    /// had not run yet, handing it a core they share ([`crate::handoff`]).
    #[serde(default)]
    pub handoffs: u64,
    /// Of those, the ones that ended at the bound: neither the woken thread
    /// nor a frame woke the loop.
    #[serde(default)]
    pub handoff_timeouts: u64,
    /// Time the loop spent blocked in those, ns.
    #[serde(default)]
    pub handoff_ns: u64,
    /// The loop thread's and the process's CPU time at [`Self::start`].
    #[serde(skip)]
    pub(crate) cpu_base: (u64, u64),
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

    /// Reads the scheduler's figures of the calling thread, which must be the
    /// loop's, and the process's CPU time (at a publication and at exit: two
    /// procfs reads and a clock read, a few µs).
    /// Keeps the last figures when procfs cannot be read.
    pub fn sample_sched(&mut self) {
        if let Ok(s) = ThreadSched::current() {
            self.sched = s;
        }
        self.loop_cpu_ns = crate::schedstat::thread_cpu_ns().saturating_sub(self.cpu_base.0);
        self.process_cpu_ns = crate::schedstat::process_cpu_ns().saturating_sub(self.cpu_base.1);
    }

    /// Empty stats whose CPU times count from now: call it on the loop's
    /// thread as the loop starts, so that setup is not counted.
    pub fn start() -> LoopStats {
        let cpu_base = (crate::schedstat::thread_cpu_ns(), crate::schedstat::process_cpu_ns());
        LoopStats { cpu_base, ..LoopStats::default() }
    }

    /// CPU time of the process's other threads, ns, between [`Self::start`]
    /// and the last [`Self::sample_sched`]: what observing (and, threaded,
    /// the application's threads) cost besides the loop.
    pub fn other_threads_cpu_ns(&self) -> u64 {
        self.process_cpu_ns.saturating_sub(self.loop_cpu_ns)
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

/// Where the loop's polls spend their time, in four histograms (values in
/// ns, or descriptors for the batches): recording one poll is a few index
/// computations and adds, no allocation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollHistograms {
    /// Duration of each poll that found work, ns.
    pub busy_poll_ns: LatencyHistogram,
    /// From the end of one poll to the start of the next, ns: the
    /// application's turn (run to completion), a yield to readers (threaded),
    /// a publication, and any time the thread was descheduled.
    pub poll_gap_ns: LatencyHistogram,
    /// Descriptors taken off the rx ring by each poll that took any.
    pub rx_batch: LatencyHistogram,
    /// Descriptors put on the tx ring by each poll that put any.
    pub tx_batch: LatencyHistogram,
}

/// [`PollHistograms`]' figures, as the report and `--stats-json` give them.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct PollSummary {
    /// Polls that found work: duration, ns.
    pub busy_poll: LatencySummary,
    /// Time between polls, ns.
    pub poll_gap: LatencySummary,
    /// Rx batch sizes, descriptors.
    pub rx_batch: BatchSummary,
    /// Tx batch sizes, descriptors.
    pub tx_batch: BatchSummary,
}

/// Batch sizes in descriptors: how many polls moved any, the mean, p50, p99
/// and the largest.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct BatchSummary {
    /// Polls that moved at least one descriptor.
    pub count: u64,
    /// Mean descriptors per such poll.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// The largest batch.
    pub max: u64,
}

impl BatchSummary {
    fn of(h: &LatencyHistogram) -> BatchSummary {
        let s = h.summary();
        BatchSummary { count: s.count, mean: s.mean_ns, p50: s.p50_ns, p99: s.p99_ns, max: s.max_ns }
    }
}

impl PollHistograms {
    /// Records one poll that did `r` in `poll_ns`, `gap_ns` after the end of
    /// the previous one (`None` for the first).
    #[inline]
    pub fn record(&mut self, r: PollResult, gap_ns: Option<u64>, poll_ns: u64) {
        if let Some(gap) = gap_ns {
            self.poll_gap_ns.record(gap);
        }
        if r.did_work() {
            self.busy_poll_ns.record(poll_ns);
        }
        if r.rx > 0 {
            self.rx_batch.record(r.rx as u64);
        }
        if r.tx > 0 {
            self.tx_batch.record(r.tx as u64);
        }
    }

    /// Adds what `other` recorded.
    pub fn merge(&mut self, other: &PollHistograms) {
        self.busy_poll_ns.merge(&other.busy_poll_ns);
        self.poll_gap_ns.merge(&other.poll_gap_ns);
        self.rx_batch.merge(&other.rx_batch);
        self.tx_batch.merge(&other.tx_batch);
    }

    /// The four summaries.
    pub fn summary(&self) -> PollSummary {
        PollSummary {
            busy_poll: self.busy_poll_ns.summary(),
            poll_gap: self.poll_gap_ns.summary(),
            rx_batch: BatchSummary::of(&self.rx_batch),
            tx_batch: BatchSummary::of(&self.tx_batch),
        }
    }
}

/// What one poll did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollResult {
    /// Descriptors taken off the rx ring.
    pub rx: usize,
    /// Descriptors put on the tx ring.
    pub tx: usize,
    /// Frames taken back from the completion ring.
    pub completed: usize,
}

impl PollResult {
    /// Whether the poll moved anything.
    pub fn did_work(&self) -> bool {
        self.rx + self.tx + self.completed > 0
    }
}

/// The NAPI poller: the device, its queue and the rx batch.
pub struct Napi<D: NetDevice> {
    dev: D,
    q: NetdevQueue,
    rx_batch: Vec<Desc>,
    /// Descriptors taken from the rx ring per poll.
    weight: usize,
    /// Time zero of the rx stamps (`SkBuff::rx_ns`).
    epoch: Instant,
    /// When the cache is next trimmed.
    housekeeping_at: Option<Instant>,
    /// The last poll received: the next one tops the fill ring up.
    refill_due: bool,
    /// Polls since the fill ring was last topped up.
    idle_since_refill: u32,
    /// The time of the last poll.
    last_poll: Option<Instant>,
}

impl<D: NetDevice> Napi<D> {
    /// A poller over `dev`, whose frames come from `umem`/`pool`, taking up
    /// to `weight` descriptors per poll. Fills the fill ring.
    pub fn new(dev: D, umem: Arc<Umem>, pool: Arc<FramePool>, weight: usize) -> Napi<D> {
        let mut napi = Napi {
            dev,
            q: NetdevQueue::new(umem, pool),
            rx_batch: Vec::with_capacity(weight),
            weight,
            epoch: Instant::now(),
            housekeeping_at: None,
            refill_due: false,
            idle_since_refill: 0,
            last_poll: None,
        };
        napi.refill_due = napi.refill();
        napi
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// The device, mutably.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    /// The device queue (frame cache and transmit batch).
    pub fn queue(&self) -> &NetdevQueue {
        &self.q
    }

    /// The device queue, mutably (the socket calls take and return frames).
    pub fn queue_mut(&mut self) -> &mut NetdevQueue {
        &mut self.q
    }

    /// Time zero of the rx stamps.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The time passed to the last poll, if any.
    pub fn last_poll(&self) -> Option<Instant> {
        self.last_poll
    }

    /// Keeps the fill ring full: from the local cache first, topped up from
    /// the shared list when the cache runs low.
    /// Whether the ring was left short (the cache and the shared list had
    /// too few frames: the socks or the application hold them).
    fn refill(&mut self) -> bool {
        let room = self.dev.fill_room();
        self.q.top_up(room);
        self.dev.fill(self.q.cache()) < room
    }

    /// One NAPI poll at `now`, for the socks in `socks` (receive) and those
    /// on `scheduled` (transmit).
    pub fn poll(
        &mut self,
        now: Instant,
        net: &mut Net,
        socks: &InetHashTables,
        scheduled: &ArrayQueue<Arc<Sock>>,
    ) -> PollResult {
        self.last_poll = Some(now);
        if let Some(tap) = self.q.tap_mut() {
            tap.set_time(now);
        }
        let completed = self.dev.complete(self.q.cache());
        net.tx_stamps.completed(self.q.cache(), completed, self.epoch);

        // Transmit first: what the application queued since the last poll
        // (its replies, run to completion; a reader's sends, threaded) goes
        // out now, not after this poll's receive work.
        let mut pending = scheduled.len();
        while pending > 0 {
            pending -= 1;
            let Some(sock) = scheduled.pop() else { break };
            // Clear the mark before draining: a send racing with us re-marks.
            sock.tx_scheduled.store(false, Ordering::SeqCst);
            (sk_prot(&sock).push_pending)(net, &mut self.q, &sock, self.weight, now);
            // sk_write_space: the senders waiting for room, not the readers.
            sock.wq.wake_up_write_space();
            if sock.queued_xmit() > 0 && !sock.tx_scheduled.swap(true, Ordering::SeqCst) {
                let _ = scheduled.push(sock);
            }
        }
        let mut tx = self.xmit(net);

        // The fill ring, for what the last poll received: here, after the
        // replies have gone, not in the poll that received, and not in a
        // poll that follows idle ones. Its room is read from the ring's
        // consumer index, a cache line the kernel writes for every frame it
        // takes (on veth on the *sender's* CPU): reading it costs a transfer
        // between cores, which a frame that has just arrived would wait
        // behind. A ring left short (frames held by the socks) is topped up
        // at every poll until it is full again; otherwise every
        // REFILL_IDLE_POLLS idle polls, with the frames the application gave back.
        if self.refill_due || self.idle_since_refill >= REFILL_IDLE_POLLS {
            self.refill_due = self.refill();
            self.idle_since_refill = 0;
        } else {
            self.idle_since_refill += 1;
        }

        let mut batch = std::mem::take(&mut self.rx_batch);
        self.dev.receive(self.weight, &mut batch);
        let rx = batch.len();
        if rx > 0 {
            // The tap sees the batch before any check (`deliver_skb` to
            // `ptype_all`): one branch per batch, none per packet.
            if self.q.tapping() {
                self.q.tap_rx_batch(&batch);
            }
            net.rx_sampler.start_batch(now.saturating_duration_since(self.epoch).as_nanos() as u64);
            // Once per batch, not per packet: an `Arc` clone is a locked add.
            let umem = self.q.umem().clone();
            for d in batch.drain(..) {
                netif_receive(net, socks, &mut self.q, &umem, d, now);
            }
            // The ACKs of TCP's GRO aggregates still open.
            if !net.tcp.gro_held.is_empty() {
                tcp::input::napi_gro_flush(net, &mut self.q, &umem, now);
            }
            // sk_data_ready, once per sock per batch: one fence, not one per datagram.
            for key in net.rx_woken.drain(..) {
                if let Some(sock) = socks.lookup(&key) {
                    sock.wq.wake_up();
                }
            }
        }
        self.rx_batch = batch;
        self.refill_due |= rx > 0;
        // Then the timers: after the receive work, so that a loop resumed
        // after a pause takes the ACKs that waited in the rx ring before it
        // decides that a loss probe or a retransmission is due. (Linux takes
        // each ACK as it arrives; a timer that fires late sees them all.)
        // What the timers send (an ARP request, a retransmission) leaves in
        // the kick below, with the receive work's answers.
        if net.next_timer().is_some_and(|t| t <= now) {
            arp::neigh_timers(net, &mut self.q, now);
            let umem = self.q.umem().clone();
            tcp::timer::tcp_timers(net, &mut self.q, &umem, now);
            crate::ipv4::ip_fragment::ip_expire(net, &mut self.q, &umem, now);
        }
        // What the receive work itself answered (ICMP, ARP, TCP's ACKs and
        // RSTs) leaves in this poll too: a second kick only when it queued any.
        tx += self.xmit(net);

        if self.housekeeping_at.is_none_or(|t| t <= now) {
            self.housekeeping_at = Some(now + HOUSEKEEPING_INTERVAL);
            // Keep the loop's cache from hoarding frames other threads need.
            self.q.trim(4 * self.weight);
        }

        let r = PollResult { rx, tx, completed };
        if !r.did_work() {
            self.dev.wake_rx();
        }
        r
    }

    /// Hands the transmit batch to the tx ring (the device kicks the kernel
    /// only when `need_wakeup` says so); returns how many went. What the
    /// ring has no room for waits on the batch for the next poll.
    #[inline]
    fn xmit(&mut self, net: &mut Net) -> usize {
        let backlog = self.q.tx_backlog();
        if backlog == 0 {
            return 0;
        }
        let tx = self.dev.transmit(self.q.tx_batch());
        net.tx_stamps.transmitted(tx, self.epoch);
        net.mib.XskTxFrames += tx as u64;
        if tx < backlog {
            net.mib.XskTxRingFull += (backlog - tx) as u64;
        }
        tx
    }

    /// When the next poll is due even if no packet arrives (smoltcp's
    /// `poll_at`): the time of the last poll when packets still wait for the
    /// tx ring, else the earliest protocol timer; `None` when nothing but the
    /// device can give the loop work, so a caller may sleep until a frame arrives.
    pub fn poll_at(&self, net: &Net) -> Option<Instant> {
        if self.q.tx_backlog() > 0 {
            return self.last_poll;
        }
        net.next_timer()
    }

    /// Frees every frame waiting outside the device and the socks (on shutdown).
    pub(crate) fn release_backlog(&mut self, net: &mut Net) {
        for d in net.neigh.drain_queued() {
            self.q.free_frame(d.frame);
        }
        self.q.drop_tx_backlog();
        net.tx_stamps.forget_queued();
        net.ipfrags.release(|f| self.q.free_frame(f));
    }
}

/// `__netif_receive_skb`: one received frame. Classifies the Ethernet
/// destination as `eth_type_trans` does (`PktType`; the device has checked the
/// descriptor), drops another host's frame, and dispatches on the EtherType.
#[inline]
fn netif_receive(net: &mut Net, socks: &InetHashTables, q: &mut NetdevQueue, umem: &Umem, d: Desc, now: Instant) {
    net.mib.XskRxFrames += 1;
    if d.nr_frags != 0 {
        return netif_receive_chained(net, socks, q, umem, d, now);
    }
    let start = d.offset as usize;
    let end = start + d.len as usize;
    // The device checked that the data lies inside the frame
    // (`NetDevice::receive`; `XskRxInvalidAddr` counts what it refused).
    let frame = umem.frame(&d.frame);
    let Ok(eth) = EthernetRepr::parse(&EthernetFrame::new_unchecked(&frame[start..end])) else {
        net.mib.XskRxRunts += 1;
        return q.kfree_skb_reason(d.frame, MibCounter::XskRxRunts);
    };
    // eth_type_trans: host, broadcast, multicast or another host's. Both
    // ip_rcv_core and arp_rcv drop the last before they count anything.
    let pkt_type = PktType::classify(eth.dst, net.mac);
    if pkt_type == PktType::OtherHost {
        net.mib.XskRxOtherHost += 1;
        return q.kfree_skb_reason(d.frame, MibCounter::XskRxOtherHost);
    }
    let l3 = start + ethernet::HEADER_LEN;
    match eth.ethertype {
        ethertype::IPV4 => ip_input::ip_rcv(net, socks, q, umem, d.frame, l3..end, pkt_type, now),
        ethertype::ARP => arp::arp_rcv(net, q, umem, d.frame, l3, end - l3, now),
        _ => {
            net.mib.XskRxNoHandler += 1;
            q.kfree_skb_reason(d.frame, MibCounter::XskRxNoHandler);
        }
    }
}

/// [`netif_receive`] for a frame in several descriptors (AF_XDP multi-buffer,
/// docs/jumbo.md): the same classification on the head piece (which holds at
/// least `MB_MIN_HEAD` bytes), then the chain to `ip_rcv_chained`. ARP in
/// such a frame (padding past the 28-byte body) goes on in its head frame,
/// the rest of the chain freed, as `arp_rcv` reads the body only.
#[cold]
#[inline(never)]
fn netif_receive_chained(
    net: &mut Net,
    socks: &InetHashTables,
    q: &mut NetdevQueue,
    umem: &Umem,
    d: Desc,
    now: Instant,
) {
    let mut skb = SkBuff::from_chain(d.frame, d.offset as usize, d.len as usize, d.nr_frags);
    let start = d.offset as usize;
    let head_end = start + skb.head_len(umem);
    let eth = EthernetRepr::parse(&EthernetFrame::new_unchecked(&umem.frame(skb.head_frame())[start..head_end]));
    let Ok(eth) = eth else {
        net.mib.XskRxRunts += 1;
        return skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::XskRxRunts));
    };
    let pkt_type = PktType::classify(eth.dst, net.mac);
    if pkt_type == PktType::OtherHost {
        net.mib.XskRxOtherHost += 1;
        return skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::XskRxOtherHost));
    }
    match eth.ethertype {
        ethertype::IPV4 => {
            skb.pull(umem, ethernet::HEADER_LEN);
            ip_input::ip_rcv_chained(net, socks, q, umem, skb, pkt_type, now);
        }
        ethertype::ARP => {
            let l3 = start + ethernet::HEADER_LEN;
            let mut head = None;
            skb.free(umem, |f| match head {
                None => head = Some(f),
                Some(_) => q.free_frame(f),
            });
            let head = head.expect("a chain has a head");
            arp::arp_rcv(net, q, umem, head, l3, head_end - l3, now);
        }
        _ => {
            net.mib.XskRxNoHandler += 1;
            skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::XskRxNoHandler));
        }
    }
}
