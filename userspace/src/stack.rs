//! The stack: everything the softirq loop owns, in one place (our `struct
//! net` plus the `net_device` it polls).
//!
//! [`Stack`] holds the device, the loop's frame cache, the demultiplexing
//! table, the neighbour table, the counters and the batches that carry
//! descriptors between the rings and the protocol handlers. The protocol
//! handlers (`crate::ipv4`) and the loop (`crate::softirq`) are `impl Stack`
//! blocks in their own modules; the socket API (`crate::socket`) reaches the
//! socks through the fd table.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_queue::ArrayQueue;

use crate::errno::Errno;
use crate::fdtable::{FdTable, DEFAULT_MAX_FDS};
use crate::ipv4::icmp::IcmpRateLimit;
use crate::neighbour::NeighTable;
use crate::netdevice::{Desc, DeviceStats, NetDevice};
use crate::snmp::Mib;
use crate::sock::{Sock, DEFAULT_RCVBUF, DEFAULT_SNDBUF};
use crate::softirq::LatencyHistogram;
use crate::umem::{Frame, FramePool, Umem};
use crate::wire::EthernetAddress;

/// Descriptors per rx batch: NAPI's weight (`NAPI_POLL_WEIGHT`).
pub const NAPI_POLL_WEIGHT: usize = 64;

/// One datagram in this many is stamped for the rx-to-read latency histogram
/// by default: about one per 64-descriptor batch under load, and a prime, so
/// that the stamped one is not always at the same place in a full batch.
pub const DEFAULT_RX_LATENCY_SAMPLE: u32 = 61;

/// Where the application's data starts in a frame it sends from: room for
/// Ethernet, IPv4 with options and a TCP header with options.
pub const TX_HEADROOM: usize = 256;

#[derive(Clone, Debug)]
pub struct StackConfig {
    pub mac: EthernetAddress,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    /// The next hop for destinations off the local subnet.
    pub gateway: Option<Ipv4Addr>,
    /// The descriptor limit (`ulimit -n`).
    pub max_fds: usize,
    pub rcvbuf: usize,
    pub sndbuf: usize,
    /// Descriptors taken from the rx ring per poll.
    pub napi_weight: usize,
    /// TTL of datagrams we send (`net.ipv4.ip_default_ttl`).
    pub ttl: u8,
    /// Record the rx-to-read latency of one datagram in this many (1: every
    /// one, at the cost of a clock read per read; 0: none).
    pub rx_latency_sample: u32,
}

impl StackConfig {
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
        }
    }

    fn netmask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix_len.min(32)))
        }
    }

    /// Whether `ip` is on our subnet (reached directly, without a gateway).
    pub fn on_link(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.addr)) & self.netmask() == 0
    }

    /// The next hop for `dst` (`ip_route_output`): `dst` itself on the
    /// subnet, else the gateway; `None` is IpOutNoRoutes.
    pub fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.on_link(dst) {
            Some(dst)
        } else {
            self.gateway
        }
    }

    /// The subnet's broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.netmask())
    }
}

/// The key socks are found by: protocol and local port. TCP will add the
/// remote address for established connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DemuxKey {
    pub protocol: u8,
    pub port: u16,
}

/// A multiplicative hasher for small keys (FxHash): the per-packet lookup
/// costs a multiply, not SipHash's rounds. Keys are not attacker-chosen in
/// a way that matters: there are at most 65536 ports per protocol.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub type DemuxTable = HashMap<DemuxKey, Arc<Sock>, BuildHasherDefault<FxHasher>>;

/// Where every frame of the UMEM is, at one moment. The parts always add up
/// to the UMEM's frame count; a frame missing from the census is a leak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FrameCensus {
    pub total: usize,
    /// On the fill, rx, tx or completion ring.
    pub in_kernel: usize,
    /// In the loop's own free cache.
    pub free_local: usize,
    /// In the shared free list.
    pub free_shared: usize,
    /// On socks' receive and write queues.
    pub in_socks: usize,
    /// Waiting for ARP.
    pub awaiting_neighbour: usize,
    /// Waiting for room on the tx ring.
    pub tx_backlog: usize,
}

impl FrameCensus {
    pub fn accounted(&self) -> usize {
        self.in_kernel + self.free_local + self.free_shared + self.in_socks + self.awaiting_neighbour + self.tx_backlog
    }
}

pub struct Stack<D: NetDevice> {
    pub(crate) dev: D,
    pub(crate) umem: Arc<Umem>,
    pub(crate) pool: Arc<FramePool>,
    /// The loop's private free frames: recycled and reused without touching
    /// shared memory.
    pub(crate) free: Vec<Frame>,
    pub(crate) cfg: StackConfig,
    pub(crate) fds: FdTable,
    pub(crate) demux: DemuxTable,
    pub(crate) neigh: NeighTable<Desc>,
    pub(crate) rx_batch: Vec<Desc>,
    /// Socks that received data in this rx batch, to wake once it is queued.
    pub(crate) rx_woken: Vec<DemuxKey>,
    /// Packets ready for the tx ring, oldest first.
    pub(crate) tx_batch: Vec<Desc>,
    /// Socks with something on their write queue.
    pub(crate) tx_scheduled: Arc<ArrayQueue<Arc<Sock>>>,
    pub(crate) mib: Mib,
    /// Datagrams read from socks since closed (UdpInDatagrams of dead socks).
    pub(crate) closed_datagrams_read: u64,
    /// `sendto()` calls refused for want of a route (IpOutNoRoutes), counted
    /// by the application side, which may be another thread.
    pub(crate) out_no_routes: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) icmp_ratelimit: IcmpRateLimit,
    pub(crate) ip_ident: u16,
    pub(crate) next_ephemeral: u16,
    pub(crate) last_timer_run: Instant,
    /// Cap on the tx backlog, so a full tx ring cannot grow memory.
    pub(crate) tx_backlog_max: usize,
    /// Time zero of the rx stamps (`SkBuff::rx_ns`).
    pub(crate) epoch: Instant,
    /// The current rx batch's stamp: when its descriptors left the rx ring.
    pub(crate) rx_stamp_ns: u64,
    /// Datagrams to go before the next one is stamped (0: sampling is off).
    pub(crate) rx_sample_countdown: u32,
    /// Rx-to-read latency of the datagrams read through this `Stack` (boxed:
    /// 9 KiB of buckets would push the loop's hot fields apart).
    pub(crate) rx_latency: Box<LatencyHistogram>,
}

impl<D: NetDevice> Stack<D> {
    /// Builds the stack over `dev`, whose frames come from `umem`/`pool`.
    pub fn new(dev: D, umem: Arc<Umem>, pool: Arc<FramePool>, cfg: StackConfig) -> Stack<D> {
        let frames = umem.frame_count() as usize;
        let mut stack = Stack {
            dev,
            umem,
            pool,
            free: Vec::with_capacity(frames),
            fds: FdTable::new(cfg.max_fds),
            demux: DemuxTable::default(),
            neigh: NeighTable::default(),
            rx_batch: Vec::with_capacity(cfg.napi_weight),
            rx_woken: Vec::with_capacity(cfg.napi_weight),
            tx_batch: Vec::with_capacity(frames),
            tx_scheduled: Arc::new(ArrayQueue::new(cfg.max_fds.max(1))),
            mib: Mib::default(),
            closed_datagrams_read: 0,
            out_no_routes: Arc::default(),
            icmp_ratelimit: IcmpRateLimit::from_sysctls(),
            ip_ident: 1,
            next_ephemeral: 32768,
            last_timer_run: Instant::now(),
            tx_backlog_max: frames / 2,
            epoch: Instant::now(),
            rx_stamp_ns: 0,
            rx_sample_countdown: cfg.rx_latency_sample,
            rx_latency: Box::default(),
            cfg,
        };
        stack.refill();
        stack
    }

    pub fn config(&self) -> &StackConfig {
        &self.cfg
    }

    pub fn umem(&self) -> &Arc<Umem> {
        &self.umem
    }

    pub fn device(&self) -> &D {
        &self.dev
    }

    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    /// A copy of every counter. UdpInDatagrams counts the application's
    /// reads: those through the stack are in the MIB already, those of other
    /// threads (`StackHandle`) are summed from the socks.
    pub fn snmp(&self) -> Mib {
        let mut m = self.mib;
        m.UdpInDatagrams += self.closed_datagrams_read
            + self.socks().map(|s| s.datagrams_read.load(std::sync::atomic::Ordering::Relaxed)).sum::<u64>();
        m.IpOutNoRoutes += self.out_no_routes.load(std::sync::atomic::Ordering::Relaxed);
        m
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

    /// Records the rx-to-read latency of a datagram stamped at `rx_ns`.
    #[cold]
    #[inline(never)]
    pub(crate) fn record_rx_latency(&mut self, rx_ns: u64) {
        let now = crate::softirq::ns_since(self.epoch);
        self.rx_latency.record(now.saturating_sub(rx_ns));
    }

    /// The device's own counters (`XDP_STATISTICS` for an AF_XDP socket).
    pub fn device_stats(&self) -> DeviceStats {
        self.dev.stats()
    }

    /// Where every frame is now.
    pub fn frame_census(&self) -> FrameCensus {
        FrameCensus {
            total: self.umem.frame_count() as usize,
            in_kernel: self.dev.frames_in_kernel(),
            free_local: self.free.len(),
            free_shared: self.pool.len(),
            in_socks: self.socks().map(|s| s.queued()).sum(),
            awaiting_neighbour: self.neigh.queued(),
            tx_backlog: self.tx_batch.len(),
        }
    }

    /// Every sock that can hold frames: those bound in the demux table and
    /// those only reachable through a descriptor.
    fn socks(&self) -> impl Iterator<Item = &Arc<Sock>> {
        let mut seen: Vec<*const Sock> = Vec::new();
        self.demux.values().chain(self.fds.iter().map(|(_, s)| s)).filter(move |s| {
            let p = Arc::as_ptr(s);
            if seen.contains(&p) {
                false
            } else {
                seen.push(p);
                true
            }
        })
    }

    /// A free frame for a packet the stack itself builds (a reply).
    #[inline]
    pub(crate) fn alloc_frame(&mut self) -> Option<Frame> {
        self.free.pop().or_else(|| self.pool.get())
    }

    /// Returns a frame to the loop's cache.
    #[inline]
    pub(crate) fn free_frame(&mut self, frame: Frame) {
        self.free.push(frame);
    }

    /// Keeps the fill ring full: from the local cache first, topped up from
    /// the shared list when the cache runs low.
    pub(crate) fn refill(&mut self) -> usize {
        let want = self.dev.fill_capacity();
        if self.free.len() < want / 2 {
            while self.free.len() < want {
                match self.pool.get() {
                    Some(f) => self.free.push(f),
                    None => break,
                }
            }
        }
        self.dev.fill(&mut self.free)
    }

    /// Binds `sock` to `port` (0: an ephemeral port) for `protocol`.
    pub(crate) fn hash_sock(&mut self, sock: &Arc<Sock>, protocol: u8, addr: SocketAddrV4) -> Result<(), Errno> {
        if sock.local().is_some() {
            return Err(Errno::EINVAL);
        }
        let ip = *addr.ip();
        if !ip.is_unspecified() && ip != self.cfg.addr {
            return Err(Errno::EADDRNOTAVAIL);
        }
        let port = if addr.port() == 0 { self.ephemeral_port(protocol)? } else { addr.port() };
        let key = DemuxKey { protocol, port };
        if self.demux.contains_key(&key) {
            return Err(Errno::EADDRINUSE);
        }
        sock.set_local(SocketAddrV4::new(ip, port))?;
        self.demux.insert(key, sock.clone());
        Ok(())
    }

    /// Removes `sock` from the demux table and frees what it holds.
    pub(crate) fn unhash_sock(&mut self, sock: &Arc<Sock>, protocol: u8) {
        if let Some(local) = sock.local() {
            let key = DemuxKey { protocol, port: local.port() };
            if self.demux.get(&key).is_some_and(|s| Arc::ptr_eq(s, sock)) {
                self.demux.remove(&key);
            }
        }
        sock.mark_closed();
        self.closed_datagrams_read += sock.datagrams_read.swap(0, std::sync::atomic::Ordering::Relaxed);
        let free = &mut self.free;
        sock.purge(|skb| free.push(skb.into_frame()));
    }

    /// The ephemeral range of `net.ipv4.ip_local_port_range` (32768–60999).
    fn ephemeral_port(&mut self, protocol: u8) -> Result<u16, Errno> {
        for _ in 0..(60999 - 32768 + 1) {
            let port = self.next_ephemeral;
            self.next_ephemeral = if port >= 60999 { 32768 } else { port + 1 };
            if !self.demux.contains_key(&DemuxKey { protocol, port }) {
                return Ok(port);
            }
        }
        Err(Errno::EADDRINUSE)
    }

    /// Frees every frame the stack holds outside the device and the socks
    /// (on shutdown), so the census can be checked after a run.
    pub fn release_backlog(&mut self) {
        for d in self.neigh.drain_queued() {
            self.free.push(d.frame);
        }
        for d in std::mem::take(&mut self.tx_batch) {
            self.free.push(d.frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_arithmetic() {
        let c = StackConfig::new(EthernetAddress([2, 0, 0, 0, 0, 1]), Ipv4Addr::new(10, 1, 2, 3), 24);
        assert!(c.on_link(Ipv4Addr::new(10, 1, 2, 200)));
        assert!(!c.on_link(Ipv4Addr::new(10, 1, 3, 1)));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 1, 2, 255));
        let all = StackConfig::new(EthernetAddress::default(), Ipv4Addr::new(10, 0, 0, 1), 0);
        assert!(all.on_link(Ipv4Addr::new(8, 8, 8, 8)));
    }
}
