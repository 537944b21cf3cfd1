//! The stack: the owned parts of one xsknet instance, put together.
//!
//! [`Stack`] holds four parts, each owned by one module, and lends them to
//! each other only as arguments for the length of a call:
//!
//! | part | module | Linux |
//! |---|---|---|
//! | the NAPI poller: device, frame cache, transmit batch | [`crate::softirq::Napi`] | `napi_struct`, `netdev_queue` |
//! | the protocol state: addresses, routes, neighbours, counters | [`crate::net::Net`] | `struct net` |
//! | the socket tables | [`crate::inet_hashtables::InetHashTables`] | `inet_hashinfo`, `udp_table` |
//! | the fd table | [`crate::fdtable::FdTable`] | `files_struct` |
//!
//! One [`Stack::poll`] at a time passed in lends the protocol state and the
//! socket tables to the poller, which lends them with its queue to the
//! protocol handlers packet by packet. [`Stack::poll_at`] says when to poll
//! again if no frame arrives. The socket calls (`crate::socket`) reach socks
//! through the fd table and frames through the poller's queue.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::eventpoll::EpollTable;
use crate::fdtable::{FdTable, DEFAULT_MAX_FDS};
use crate::inet_diag::{inet_diag, SockDiag};
use crate::inet_hashtables::InetHashTables;
use crate::ipv4::inet_fragment::IpFragTable;
use crate::latency::{ns_since, LatencyHistogram, SharedLatencyHistogram, StageLatency};
use crate::net::Net;
use crate::netdevice::{DeviceStats, NetDevice};
use crate::publish::Publisher;
use crate::route::Route;
use crate::snmp::Mib;
use crate::sock::{ProtoSock, Sock, DEFAULT_RCVBUF, DEFAULT_SNDBUF};
use crate::softirq::{LoopStats, Napi, PollHistograms, PollResult};
use crate::stream::TcpState;
pub use crate::umem::FrameCensus;
use crate::umem::{FramePool, Umem};
use crate::wire::EthernetAddress;

/// Descriptors per rx batch: NAPI's weight (`NAPI_POLL_WEIGHT`).
pub const NAPI_POLL_WEIGHT: usize = 64;

/// One datagram in this many is stamped for the rx-to-read latency histogram
/// by default: about one per 64-descriptor batch under load, and a prime, so
/// that the stamped one is not always at the same place in a full batch.
pub const DEFAULT_RX_LATENCY_SAMPLE: u32 = 61;

/// How long a blocked reader of a threaded stack spins before it sleeps, by
/// default (`StackConfig::busy_read`, `SO_BUSY_POLL`): about four times the
/// gap between datagrams at 75 000 a second, so that under load a reader
/// seldom sleeps, for at most 5 % of an idle core at 1 000 a second.
pub const DEFAULT_BUSY_READ: Duration = Duration::from_micros(50);

/// Where the application's data starts in a frame it sends from: room for
/// Ethernet, IPv4 with options and a TCP header with options.
pub const TX_HEADROOM: usize = 256;

/// What a stack is made with.
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// Our link-layer address (the interface's).
    pub mac: EthernetAddress,
    /// Our IPv4 address.
    pub addr: Ipv4Addr,
    /// The subnet's prefix length, 0–32.
    pub prefix_len: u8,
    /// The next hop for destinations off the local subnet.
    pub gateway: Option<Ipv4Addr>,
    /// The descriptor limit (`ulimit -n`).
    pub max_fds: usize,
    /// Receive buffer of new sockets, bytes (`net.core.rmem_default`).
    pub rcvbuf: usize,
    /// Send buffer of new sockets, bytes (`net.core.wmem_default`).
    pub sndbuf: usize,
    /// Descriptors taken from the rx ring per poll.
    pub napi_weight: usize,
    /// TTL of datagrams we send (`net.ipv4.ip_default_ttl`).
    pub ttl: u8,
    /// Record the rx-to-read latency of one datagram in this many, and the
    /// send-to-tx and tx-to-completion latencies of one send in this many
    /// per sending thread (1: every one, at the cost of clock reads per
    /// packet; 0: none).
    pub rx_latency_sample: u32,
    /// How long a reader blocked in a threaded stack's `recv_from` (or any
    /// blocking call) spins before it sleeps: `net.core.busy_read`, the
    /// default of each new socket's `SO_BUSY_POLL` ([`DEFAULT_BUSY_READ`];
    /// Linux's default is 0, see docs/latency.md for why ours is not).
    pub busy_read: Duration,
    /// `net.ipv4.tcp_syncookies`: SYN cookies when a listener's SYN queue
    /// is full (Linux's default), never, or always (docs/tcp.md).
    pub tcp_syncookies: crate::ipv4::tcp::syncookies::TcpSyncookies,
    /// `net.ipv4.tcp_max_tw_buckets`: TIME-WAIT sockets at most; a
    /// connection closed past it gets none (`TcpExtTCPTimeWaitOverflow`).
    pub tcp_max_tw_buckets: usize,
    /// `net.ipv4.tcp_challenge_ack_limit`: challenge ACKs (RFC 5961) the
    /// stack sends a second, all connections together, a budget drawn at
    /// random around it each second; `u32::MAX`, the default as in Linux
    /// since 6.0, is no host-wide limit (each connection still sends at
    /// most one per 500 ms).
    pub tcp_challenge_ack_limit: u32,
    /// `net.ipv4.tcp_slow_start_after_idle`: a connection that sent nothing
    /// for longer than its RTO starts again from (at most) the initial
    /// window, halved per RTO of idle time (RFC 2861; on, as in Linux).
    pub tcp_slow_start_after_idle: bool,
    /// `net.ipv4.tcp_moderate_rcvbuf`: receive buffers grow with what the
    /// application reads in a round trip (on, as in Linux;
    /// `ipv4::tcp::rcvbuf`). `SO_RCVBUF` turns it off for its socket.
    pub tcp_moderate_rcvbuf: bool,
    /// GRO (`ethtool -K IFACE gro on`, Linux's default): the TCP segments of
    /// one connection that Linux would merge in a NAPI poll get one ACK
    /// decision, not one each (`ipv4::tcp::offload`).
    pub gro: bool,
    /// `net.ipv4.tcp_timestamps`: RFC 7323 timestamps offered and accepted
    /// with a random offset (Linux's default), without one, or not at all
    /// (docs/tcp.md, "Timestamps and PAWS").
    pub tcp_timestamps: crate::ipv4::tcp::timestamps::TcpTimestamps,
    /// `net.ipv4.tcp_recovery`: 1 (Linux's default) marks losses by time
    /// with RACK and sends tail loss probes (RFC 8985); 0 marks a hole lost
    /// once `tcp_reordering` segments above it are SACKed (RFC 6675), and
    /// a lost tail waits for the RTO (docs/tcp.md, "SACK and loss recovery").
    pub tcp_recovery: u8,
    /// `net.ipv4.tcp_early_retrans`: 3 (Linux's default) or 4 sends a tail
    /// loss probe two RTTs after the last segment when nothing came back
    /// (RFC 8985 §7); 0 leaves a lost tail to the RTO.
    pub tcp_early_retrans: u8,
    /// `CONFIG_HZ`: the jiffies a second of the kernel whose TCP is copied, the tick of
    /// CUBIC's clock (net/ipv4/tcp_cubic.c keeps it in `tcp_jiffies32`); 1000 by default.
    /// The xsknet binary gives the running kernel's ([`crate::jiffies::host_hz`]).
    pub hz: u32,
    /// `net.ipv4.tcp_congestion_control`: new TCP sockets' algorithm
    /// (CUBIC, Linux's default; `SockOpt::Congestion` per socket).
    pub tcp_congestion: crate::stream::CongAlgo,
    /// `SO_MAX_PACING_RATE` every new TCP socket starts with, bytes per second; `u64::MAX`
    /// (the default, `~0`) leaves it unset, so connections do not pace, as Linux's CUBIC
    /// over a qdisc other than fq (docs/tcp.md, "Pacing"). Linux has no sysctl for it: this
    /// is as if each application set the option before `listen()` or `connect()`.
    pub tcp_max_pacing_rate: u64,
    /// `net.ipv4.tcp_mem`: pages of 4096 bytes all TCP connections may
    /// hold together (min, pressure, max; docs/tcp.md, "TCP memory");
    /// `None` derives them from the buffer budget, `max_fds` sockets with
    /// full TCP buffers, as `tcp_init_mem` does from the machine's memory
    /// ([`crate::ipv4::tcp::mem::TcpMemLimits::from_budget`]).
    pub tcp_mem: Option<crate::ipv4::tcp::mem::TcpMemLimits>,
    /// The interface's MTU, bytes of IP datagram (`dev->mtu`; 1500 by
    /// default): what sends are laid out for and `IP_MTU` starts from.
    pub mtu: usize,
}

impl StackConfig {
    /// A configuration for `mac` and `addr/prefix_len` with Linux's defaults:
    /// no gateway, 1024 descriptors, 212992-byte buffers, TTL 64.
    pub fn new(mac: EthernetAddress, addr: Ipv4Addr, prefix_len: u8) -> StackConfig {
        StackConfig {
            mac,
            addr,
            prefix_len,
            gateway: None,
            max_fds: DEFAULT_MAX_FDS,
            rcvbuf: DEFAULT_RCVBUF,
            sndbuf: DEFAULT_SNDBUF,
            napi_weight: NAPI_POLL_WEIGHT,
            ttl: 64,
            rx_latency_sample: DEFAULT_RX_LATENCY_SAMPLE,
            busy_read: DEFAULT_BUSY_READ,
            tcp_syncookies: crate::ipv4::tcp::syncookies::TcpSyncookies::WhenFull,
            tcp_max_tw_buckets: crate::ipv4::tcp::TCP_MAX_TW_BUCKETS,
            tcp_challenge_ack_limit: u32::MAX,
            tcp_slow_start_after_idle: true,
            tcp_moderate_rcvbuf: true,
            gro: true,
            tcp_timestamps: crate::ipv4::tcp::timestamps::TcpTimestamps::On,
            tcp_recovery: crate::ipv4::tcp::rack::TCP_RACK_LOSS_DETECTION,
            tcp_early_retrans: 3,
            hz: crate::jiffies::HZ_DEFAULT,
            tcp_congestion: crate::stream::CongAlgo::Cubic,
            tcp_max_pacing_rate: u64::MAX,
            tcp_mem: None,
            mtu: crate::net::DEFAULT_MTU,
        }
    }

    /// The routing table these addresses make.
    pub fn route(&self) -> Route {
        Route { addr: self.addr, prefix_len: self.prefix_len, gateway: self.gateway }
    }
}

/// One xsknet instance: the NAPI poller over a device `D`, the protocol
/// state, the socket tables and the fd table.
pub struct Stack<D: NetDevice> {
    pub(crate) napi: Napi<D>,
    pub(crate) net: Net,
    pub(crate) socks: InetHashTables,
    pub(crate) files: FdTable,
    /// The epoll instances (`crate::eventpoll`).
    pub(crate) epolls: EpollTable,
    /// Socks with something on their write queue, for the poller.
    pub(crate) tx_scheduled: Arc<ArrayQueue<Arc<Sock>>>,
    /// Datagrams read from socks since closed (UdpInDatagrams of dead socks).
    pub(crate) closed_datagrams_read: u64,
    /// `sendto()` calls refused for want of a route (IpOutNoRoutes), counted
    /// by the application side, which may be another thread.
    pub(crate) out_no_routes: Arc<AtomicU64>,
    pub(crate) cfg: StackConfig,
    /// Rx-to-read latency of the datagrams read through this `Stack` (boxed:
    /// 9 KiB of buckets would push the hot fields apart).
    pub(crate) rx_latency: Box<LatencyHistogram>,
    /// Rx-to-read latency of the datagrams read through `StackHandle`s
    /// while a `ThreadedStack` runs (merged into `rx_latency` when it stops).
    pub(crate) handle_rx_latency: Arc<SharedLatencyHistogram>,
    /// Publishes the counters for other threads, when attached.
    publisher: Option<Box<Publisher>>,
    /// Where the polls of [`Self::poll_timed`] spent their time (boxed: 36
    /// KiB of buckets).
    pub(crate) poll_hist: Box<PollHistograms>,
    /// When the last [`Self::poll_timed`] ended.
    last_poll_end: Option<Instant>,
    /// Where `recv_with` copies a datagram of several frames (empty until
    /// the first one).
    pub(crate) chain_scratch: Vec<u8>,
}

impl<D: NetDevice> Stack<D> {
    /// Builds the stack over `dev`, whose frames come from `umem`/`pool`, and
    /// fills the device's fill ring.
    pub fn new(dev: D, umem: Arc<Umem>, pool: Arc<FramePool>, cfg: StackConfig) -> Stack<D> {
        let mut net = Net::new(cfg.mac, cfg.route(), cfg.ttl, cfg.rx_latency_sample, cfg.napi_weight);
        net.tcp.syncookies = cfg.tcp_syncookies;
        net.tcp.max_tw_buckets = cfg.tcp_max_tw_buckets;
        net.tcp.challenge_ack_limit = cfg.tcp_challenge_ack_limit;
        net.tcp.slow_start_after_idle = cfg.tcp_slow_start_after_idle;
        net.tcp.moderate_rcvbuf = cfg.tcp_moderate_rcvbuf;
        net.tcp.gro = cfg.gro;
        net.tcp.ts_clock.mode = cfg.tcp_timestamps;
        net.tcp.mem.limits = cfg.tcp_mem.unwrap_or_else(|| {
            crate::ipv4::tcp::mem::TcpMemLimits::from_budget(
                cfg.max_fds,
                crate::sock::TCP_RMEM_DEFAULT + crate::ipv4::tcp::TCP_RCV_SLACK,
                crate::sock::TCP_WMEM_DEFAULT,
            )
        });
        net.tcp.recovery = cfg.tcp_recovery;
        net.tcp.early_retrans = cfg.tcp_early_retrans;
        net.tcp.hz = crate::jiffies::tick(cfg.hz);
        net.mtu = cfg.mtu;
        // Reassembly holds at most half the UMEM (`crate::ipv4::ip_fragment`).
        net.ipfrags = IpFragTable::new(umem.frame_size() as usize, umem.frame_count() as usize / 2);
        Stack {
            napi: Napi::new(dev, umem, pool, cfg.napi_weight),
            net,
            socks: InetHashTables::default(),
            files: FdTable::new(cfg.max_fds),
            epolls: EpollTable::default(),
            tx_scheduled: Arc::new(ArrayQueue::new(cfg.max_fds.max(1))),
            closed_datagrams_read: 0,
            out_no_routes: Arc::default(),
            rx_latency: Box::default(),
            handle_rx_latency: Arc::new(SharedLatencyHistogram::new()),
            publisher: None,
            poll_hist: Box::default(),
            last_poll_end: None,
            chain_scratch: Vec::new(),
            cfg,
        }
    }

    /// One NAPI poll at `now` (see [`crate::softirq`]): the time of the
    /// stack's timers and the rx stamps. Call it as often as possible when
    /// busy-polling, or when the device has frames or [`Self::poll_at`] is due.
    #[inline]
    pub fn poll(&mut self, now: Instant) -> PollResult {
        self.napi.poll(now, &mut self.net, &self.socks, &self.tx_scheduled)
    }

    /// When [`Self::poll`] must run again even if no frame arrives: a
    /// protocol timer, or packets still waiting for the tx ring. `None`: only
    /// the device can bring work.
    pub fn poll_at(&self) -> Option<Instant> {
        self.napi.poll_at(&self.net)
    }

    /// Every socket, as `ss -a` lists them: UDP and TCP, listeners with
    /// their request socks, connections with or without a descriptor,
    /// TIME-WAIT (see [`crate::inet_diag`]).
    pub fn sockets(&self) -> Vec<SockDiag> {
        inet_diag(&self.files, &self.socks, &self.net.tcp, self.cfg.addr)
    }

    /// One poll now, as a loop makes it: reads the clock, polls, keeps
    /// `stats` (the busy share) and the poll histograms
    /// ([`Self::poll_histograms`]: the poll's duration, the gap since the
    /// previous one, the batch sizes), and publishes if a publication is due.
    /// Two clock reads per poll.
    #[inline]
    pub fn poll_timed(&mut self, stats: &mut LoopStats) -> PollResult {
        let t0 = Instant::now();
        let r = self.poll(t0);
        let t1 = Instant::now();
        let poll_ns = t1.saturating_duration_since(t0).as_nanos() as u64;
        stats.record(r, poll_ns);
        let gap_ns = self.last_poll_end.map(|e| t0.saturating_duration_since(e).as_nanos() as u64);
        self.poll_hist.record(r, gap_ns, poll_ns);
        self.publish(stats, t0);
        // A publication's own time counts in the next gap.
        self.last_poll_end = Some(t1);
        r
    }

    /// Polls until `stop()` says so, with [`Self::poll_timed`]. `stop` runs
    /// on the loop's thread between polls, for work that must happen there;
    /// its time is not counted as busy (it is in the gaps between polls).
    pub fn run_until(&mut self, stats: &mut LoopStats, mut stop: impl FnMut(&mut Self) -> bool) {
        while !stop(self) {
            self.poll_timed(stats);
        }
        stats.sample_sched();
    }

    /// The time passed to the last poll, if any.
    pub fn poll_time(&self) -> Option<Instant> {
        self.napi.last_poll()
    }

    /// Where the polls of [`Self::poll_timed`] spent their time so far.
    pub fn poll_histograms(&self) -> &PollHistograms {
        &self.poll_hist
    }

    /// From now on, [`Self::publish`] publishes the counters through `p`
    /// (see [`crate::publish`]) for the control endpoint and other readers.
    pub fn attach_publisher(&mut self, p: Publisher) {
        self.publisher = Some(Box::new(p));
    }

    /// Publishes the counters, the loop's `softirq` figures, the frame
    /// census and the latency histograms if a publisher is attached and
    /// its interval has passed at `now`, and answers the socket listings
    /// asked for. Call it after every poll: between publications it costs
    /// one comparison. A publication is counted in `softirq`
    /// (`publications`, and the loop thread's CPU time it took in
    /// `publish_ns`: two reads of `CLOCK_THREAD_CPUTIME_ID`, so that time
    /// the thread spent descheduled is not in it).
    #[inline]
    pub fn publish(&mut self, softirq: &mut LoopStats, now: Instant) {
        if self.publisher.as_ref().is_some_and(|p| now >= p.due) {
            let t0 = crate::schedstat::thread_cpu_ns();
            self.publish_now(softirq, now);
            softirq.publications += 1;
            softirq.publish_ns += crate::schedstat::thread_cpu_ns().saturating_sub(t0);
        }
    }

    #[cold]
    #[inline(never)]
    fn publish_now(&mut self, softirq: &LoopStats, now: Instant) {
        let Some(mut p) = self.publisher.take() else { return };
        let s = &mut *p.scratch;
        s.uptime_ns = now.saturating_duration_since(self.napi.epoch()).as_nanos() as u64;
        s.mib = self.snmp();
        s.softirq = *softirq;
        // Publications run on the loop's thread: its scheduler figures.
        s.softirq.sample_sched();
        s.device = self.device_stats();
        s.census = self.frame_census();
        s.fill_room = self.napi.device().fill_room() as u64;
        s.fill_capacity = self.napi.device().fill_capacity() as u64;
        s.tcp_states = [0; TcpState::ALL.len()];
        for (state, n) in self.net.tcp.count_by_state() {
            if let Some(i) = TcpState::ALL.iter().position(|&x| x == state) {
                s.tcp_states[i] = n as u64;
            }
        }
        s.rx_latency.clone_from(&self.rx_latency);
        s.rx_latency.merge(&self.handle_rx_latency.snapshot());
        s.send_to_tx.clone_from(&self.net.tx_stamps.send_to_tx);
        s.tx_to_completion.clone_from(&self.net.tx_stamps.tx_to_completion);
        p.sample_xdp();
        p.commit(now);
        p.serve_requests(|| self.sockets());
        self.publisher = Some(p);
    }

    /// The instant the stack's clock counts from (the rx stamps, the
    /// published uptime).
    pub fn epoch(&self) -> Instant {
        self.napi.epoch()
    }

    /// The configuration the stack was made with.
    pub fn config(&self) -> &StackConfig {
        &self.cfg
    }

    /// The UMEM the stack's frames live in.
    pub fn umem(&self) -> &Arc<Umem> {
        self.napi.queue().umem()
    }

    /// The device.
    pub fn device(&self) -> &D {
        self.napi.device()
    }

    /// The device, mutably.
    pub fn device_mut(&mut self) -> &mut D {
        self.napi.device_mut()
    }

    /// The neighbour table as `ip neigh` lists it (address, link-layer
    /// address, NUD state), sorted by address.
    pub fn neighbours(&self) -> Vec<crate::neighbour::NeighEntry> {
        self.net.neigh.entries()
    }

    /// A copy of every counter. UdpInDatagrams counts the application's
    /// reads: those through the stack are in the MIB already, those of other
    /// threads (`StackHandle`) are summed from the socks.
    pub fn snmp(&self) -> Mib {
        let mut m = self.net.mib;
        let threaded_reads: u64 = self
            .all_socks()
            .map(|s| match &s.proto {
                ProtoSock::Udp(u) => u.datagrams_read.load(Ordering::Relaxed),
                ProtoSock::Tcp(_) => 0,
            })
            .sum();
        m.UdpInDatagrams += self.closed_datagrams_read + threaded_reads;
        m.IpOutNoRoutes += self.out_no_routes.load(Ordering::Relaxed);
        m.XskCaptureDrops = self.napi.queue().capture_drops();
        m.XskTxKicks = self.napi.device().tx_kicks();
        m.XskRxWakeups = self.napi.device().rx_wakeups();
        m
    }

    /// Starts capturing frames to `tap` (`--pcap`, see [`crate::capture`]).
    pub fn attach_capture(&mut self, tap: crate::capture::CaptureTap) {
        self.napi.queue_mut().attach_capture(tap);
    }

    /// Stops the capture, if any, and gives its tap back (for
    /// [`crate::capture::CaptureTap::finish`]).
    pub fn detach_capture(&mut self) -> Option<crate::capture::CaptureTap> {
        self.napi.queue_mut().detach_capture()
    }

    /// The time from the rx ring to the application's read, in nanoseconds,
    /// of the sampled datagrams (one in `StackConfig::rx_latency_sample`)
    /// read so far: through this `Stack`, and, once a `ThreadedStack` is
    /// stopped, through its `StackHandle`s.
    pub fn rx_latency(&self) -> &LatencyHistogram {
        &self.rx_latency
    }

    /// Forgets the latencies recorded so far (to leave out a warm-up).
    pub fn reset_rx_latency(&mut self) {
        *self.rx_latency = LatencyHistogram::new();
    }

    /// The three stage latencies (ns) of the sampled packets so far
    /// (`crate::latency`): rx ring to read as [`Self::rx_latency`], the
    /// application's send to the tx ring, and the tx ring to the completion
    /// ring (one send in `StackConfig::rx_latency_sample`). A copy.
    pub fn stage_latency(&self) -> StageLatency {
        StageLatency {
            rx_to_read: (*self.rx_latency).clone(),
            send_to_tx: (*self.net.tx_stamps.send_to_tx).clone(),
            tx_to_completion: (*self.net.tx_stamps.tx_to_completion).clone(),
        }
    }

    /// Forgets the latencies of all three stages and the poll histograms
    /// recorded so far.
    pub fn reset_stage_latency(&mut self) {
        self.reset_rx_latency();
        self.net.tx_stamps.reset();
        *self.poll_hist = PollHistograms::default();
    }

    /// Records the rx-to-read latency of a datagram stamped at `rx_ns`.
    #[cold]
    #[inline(never)]
    pub(crate) fn record_rx_latency(&mut self, rx_ns: u64) {
        let now = ns_since(self.napi.epoch());
        self.rx_latency.record(now.saturating_sub(rx_ns));
    }

    /// The device's own counters (`XDP_STATISTICS` for an AF_XDP socket).
    pub fn device_stats(&self) -> DeviceStats {
        self.napi.device().stats()
    }

    /// Where every frame is now.
    pub fn frame_census(&self) -> FrameCensus {
        let q = self.napi.queue();
        FrameCensus {
            total: q.umem().frame_count() as usize,
            in_kernel: self.napi.device().frames_in_kernel(),
            free_local: q.cached(),
            free_shared: q.pool().len(),
            // Only a datagram sock holds frames (`queue_rcv`, `queue_xmit`): a
            // stream's bytes are copied out of them (its rings).
            in_socks: self.all_socks().filter(|s| s.udp().is_some()).map(|s| s.queued()).sum(),
            awaiting_neighbour: self.net.neigh.queued(),
            tx_backlog: q.tx_backlog(),
            in_reasm: self.net.ipfrags.frames(),
        }
    }

    /// Every sock that can hold frames, once: those bound in the socket
    /// tables, then those reachable through a descriptor and not bound.
    /// A descriptor's sock is looked up by address among the bound ones
    /// (sorted: listeners, UDP sockets, actively opened connections; not
    /// the accepted ones), not hashed. A publication
    /// walks this every 100 ms: with 4 000 connections, the list of socks
    /// seen that each one was searched in before took 7 ms of the loop's
    /// time; this takes about 0.5 ms (docs/benchmarks.md, `bench/idle-conns.sh`).
    fn all_socks(&self) -> impl Iterator<Item = &Arc<Sock>> {
        let mut bound: Vec<&Arc<Sock>> = self.socks.socks().collect();
        bound.sort_unstable_by_key(|s| Arc::as_ptr(s));
        bound.dedup_by_key(|s| Arc::as_ptr(s));
        let unbound = {
            let bound = bound.clone();
            self.files
                .iter()
                .map(|(_, s)| s)
                .filter(move |s| bound.binary_search_by_key(&Arc::as_ptr(s), |b| Arc::as_ptr(b)).is_err())
        };
        bound.into_iter().chain(unbound)
    }

    /// Frees every frame the stack holds outside the device and the socks
    /// (on shutdown), so the census can be checked after a run.
    pub fn release_backlog(&mut self) {
        self.napi.release_backlog(&mut self.net);
    }
}
