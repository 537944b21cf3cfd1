//! The sock: a receive queue and a write queue of [`SkBuff`]s, bounded in
//! bytes by rcvbuf and sndbuf (`struct sock`: `sk_receive_queue`,
//! `sk_write_queue`, `sk_rmem_alloc`, `sk_wmem_alloc`).
//!
//! The softirq loop enqueues on the receive queue and wakes readers; the
//! application dequeues. The application enqueues on the write queue and
//! schedules the sock for transmission; the loop dequeues. Both queues are
//! lock-free; the only lock is the wait queue's list of sleeping threads,
//! taken only when someone sleeps. The receive queue (`SkbQueue`) costs no
//! atomic read-modify-write when the stack's own thread reads it (run to
//! completion), one when application threads share it.
//!
//! A frame on a sock's queue is out of the fill ring until it is read, so the
//! queues are bounded: every buffer is charged its truesize (the UMEM frame
//! size), as Linux charges `skb->truesize`, and a datagram that would take the
//! receive queue past rcvbuf is dropped and counted (`UdpRcvbufErrors`).
//! Since every buffer of a sock has the same truesize, the charge is the
//! queue's length times truesize: each queue holds `buf / truesize` buffers,
//! and "past rcvbuf" is "queue full". `sk_rmem_alloc` and `sk_wmem_alloc` are
//! derived from the lengths rather than kept in atomics of their own: an
//! atomic add costs a locked instruction (about 9 ns here) per datagram.
//!
//! A [`Sock`] is the common part every protocol shares (`struct sock` and
//! `struct inet_sock`: queues, buffers, wait queue, addresses, the pending
//! error) plus the protocol's own part in [`ProtoSock`] (`struct udp_sock`
//! now, `struct tcp_sock` next). What each protocol does on the socket calls
//! is in its operations table (`crate::proto::Proto`).

use std::net::SocketAddrV4;
use std::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::errno::Errno;
use crate::handoff::Waiter;
use crate::skbuff::{Readers, SkBuff, SkbQueue};
use crate::stream::CongAlgo;
use crate::stream::{StreamSock, TcpState};

/// Linux's default `net.core.rmem_default`, in bytes.
pub const DEFAULT_RCVBUF: usize = 212_992;
/// Linux's default `net.core.wmem_default`, in bytes.
pub const DEFAULT_SNDBUF: usize = 212_992;

/// The type argument of `socket(AF_INET, type, 0)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockType {
    /// SOCK_DGRAM over IPv4: UDP.
    Dgram,
    /// SOCK_STREAM over IPv4: TCP.
    Stream,
}

impl SockType {
    /// The IP protocol of an `AF_INET` socket of this type with protocol 0
    /// (`inetsw_array` in net/ipv4/af_inet.c).
    pub fn protocol(self) -> u8 {
        match self {
            SockType::Dgram => crate::wire::ipv4::protocol::UDP,
            SockType::Stream => crate::wire::ipv4::protocol::TCP,
        }
    }
}

/// An IPv4 socket address that one thread sets and others read without a
/// lock (`inet_saddr`/`inet_sport`, `inet_daddr`/`inet_dport`): address and
/// port packed in one atomic word, 0 when unset.
#[derive(Debug, Default)]
pub struct AtomicSockAddr(AtomicU64);

impl AtomicSockAddr {
    const SET: u64 = 1 << 48;

    /// The address, if set.
    #[inline]
    pub fn get(&self) -> Option<SocketAddrV4> {
        let v = self.0.load(Ordering::Acquire);
        (v & Self::SET != 0).then(|| SocketAddrV4::new(std::net::Ipv4Addr::from((v >> 16) as u32), v as u16))
    }

    /// Sets the address.
    #[inline]
    pub fn set(&self, addr: SocketAddrV4) {
        let v = Self::SET | u64::from(u32::from(*addr.ip())) << 16 | u64::from(addr.port());
        self.0.store(v, Ordering::Release);
    }
}

/// The protocol's own part of a sock.
// The TCP part is the larger by far; boxing it would add a pointer chase to
// every stream call for no saving (socks are few and already behind an Arc).
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ProtoSock {
    /// `struct udp_sock`.
    Udp(UdpSock),
    /// The part of `struct tcp_sock` the application shares with the loop;
    /// the rest (sequence numbers, timers) is the loop's own control block.
    Tcp(TcpSock),
}

/// Linux's `net.core.somaxconn`: the cap on a listener's backlog.
pub const SOMAXCONN: usize = 4096;

/// Linux's `net.ipv4.tcp_rmem[1]`: a TCP socket's receive buffer, bytes.
pub const TCP_RMEM_DEFAULT: usize = 131_072;

/// A TCP socket's send buffer, bytes. Linux starts at `tcp_wmem[1]` (16 KiB)
/// and grows it with the congestion window up to `tcp_wmem[2]` (4 MiB);
/// xsknet does not autotune yet and starts where a bulk sender's ends up.
pub const TCP_WMEM_DEFAULT: usize = 262_144;

/// What a TCP sock shares between the application and the loop.
pub struct TcpSock {
    /// State word and byte buffers.
    pub stream: StreamSock,
    /// The accept queue of a listener (`icsk_accept_queue`): children whose
    /// handshake is complete, oldest first. Made by the first `listen()`
    /// with room for `SOMAXCONN + 1`; the backlog bound is `max_backlog`.
    accept_queue: OnceLock<ArrayQueue<Arc<Sock>>>,
    /// `sk_max_ack_backlog`: `min(backlog, SOMAXCONN)`.
    pub(crate) max_backlog: AtomicUsize,
    /// The loop's control block for this sock (`u32::MAX`: none).
    pub(crate) cb: AtomicU32,
    /// `TCP_NODELAY`: no Nagle.
    pub nodelay: AtomicBool,
    /// `TCP_CORK`: partial segments wait (`TCP_NAGLE_CORK`).
    pub cork: AtomicBool,
    /// `SO_LINGER` with a zero timeout: `close()` resets.
    pub linger_zero: AtomicBool,
    /// `SO_REUSEADDR`.
    pub reuseaddr: AtomicBool,
    /// `SO_RCVBUF` (bytes of the receive buffer a connection gets; a
    /// connection's own grows with receive-buffer autotuning, `sk_rcvbuf`).
    pub rcvbuf: AtomicUsize,
    /// `SOCK_RCVBUF_LOCK`: `SO_RCVBUF` was set, so the receive buffer is not
    /// autotuned (`tcp_rcvbuf_grow`).
    pub rcvbuf_lock: AtomicBool,
    /// `SO_SNDBUF` (bytes of the send buffer a connection gets).
    pub sndbuf: AtomicUsize,
    /// `SOCK_SNDBUF_LOCK`: `SO_SNDBUF` was set, so memory pressure does not
    /// shrink the send buffer (`sk_stream_moderate_sndbuf`).
    pub sndbuf_lock: AtomicBool,
    /// `SO_RCVLOWAT`: a reader is woken once this many bytes wait (1).
    pub rcvlowat: AtomicUsize,
    /// `SO_KEEPALIVE` (`SOCK_KEEPOPEN`).
    pub keepalive: AtomicBool,
    /// `TCP_KEEPIDLE`, seconds (0: `tcp_keepalive_time`).
    pub keepidle: AtomicU32,
    /// `TCP_KEEPINTVL`, seconds (0: `tcp_keepalive_intvl`).
    pub keepintvl: AtomicU32,
    /// `TCP_KEEPCNT` (0: `tcp_keepalive_probes`).
    pub keepcnt: AtomicU32,
    /// `TCP_USER_TIMEOUT`, milliseconds (0: off).
    pub user_timeout: AtomicU32,
    /// `TCP_CONGESTION`: 0 CUBIC, 1 Reno ([`CongAlgo`]).
    congestion: AtomicU8,
    /// `SO_MAX_PACING_RATE` (`sk_max_pacing_rate`), bytes per second; `u64::MAX` (`~0`):
    /// unset, and the connection paces only if it was ever set to another value.
    max_pacing_rate: AtomicU64,
    /// `sk_pacing_status == SK_PACING_NEEDED`: `SO_MAX_PACING_RATE` was set to a finite rate.
    pacing_needed: AtomicBool,
    /// `TCP_QUICKACK` 0 set before `connect()`: the connection starts in
    /// interactive mode (`icsk_ack.pingpong`; a connection's own mode is its
    /// control block's).
    pub pingpong: AtomicBool,
}

impl TcpSock {
    /// `keepalive_time_when`: idle time before the first probe.
    pub fn keepalive_time(&self) -> Duration {
        match self.keepidle.load(Ordering::Relaxed) {
            0 => crate::ipv4::tcp::TCP_KEEPALIVE_TIME,
            s => Duration::from_secs(u64::from(s)),
        }
    }

    /// `keepalive_intvl_when`: time between probes.
    pub fn keepalive_intvl(&self) -> Duration {
        match self.keepintvl.load(Ordering::Relaxed) {
            0 => crate::ipv4::tcp::TCP_KEEPALIVE_INTVL,
            s => Duration::from_secs(u64::from(s)),
        }
    }

    /// `keepalive_probes`: unanswered probes before the reset.
    pub fn keepalive_probes(&self) -> u32 {
        match self.keepcnt.load(Ordering::Relaxed) {
            0 => crate::ipv4::tcp::TCP_KEEPALIVE_PROBES,
            n => n,
        }
    }

    /// `TCP_CONGESTION`: the algorithm a connection of this sock uses.
    pub fn congestion(&self) -> CongAlgo {
        match self.congestion.load(Ordering::Relaxed) {
            1 => CongAlgo::Reno,
            _ => CongAlgo::Cubic,
        }
    }

    /// Sets [`Self::congestion`].
    pub fn set_congestion(&self, algo: CongAlgo) {
        self.congestion.store(algo as u8, Ordering::Relaxed);
    }

    /// `SO_MAX_PACING_RATE` (net/core/sock.c `sk_setsockopt`): the cap on the pacing rate,
    /// bytes per second; a finite one also turns TCP's internal pacing on for good
    /// (`SK_PACING_NONE` → `SK_PACING_NEEDED`). `u64::MAX` is `~0`: no cap.
    pub fn set_max_pacing_rate(&self, rate: u64) {
        if rate != u64::MAX {
            self.pacing_needed.store(true, Ordering::Relaxed);
        }
        self.max_pacing_rate.store(rate, Ordering::Relaxed);
    }

    /// `SO_MAX_PACING_RATE` as set (`u64::MAX`: no cap), and whether TCP paces itself
    /// (`tcp_needs_internal_pacing`).
    pub fn max_pacing_rate(&self) -> (u64, bool) {
        (self.max_pacing_rate.load(Ordering::Relaxed), self.pacing_needed.load(Ordering::Relaxed))
    }

    /// `icsk_user_timeout`, when set.
    pub fn user_timeout(&self) -> Option<Duration> {
        match self.user_timeout.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(u64::from(ms))),
        }
    }

    /// Copies the options a listener's child inherits (`sk_clone_lock`
    /// copies the sock, flags and `tcp_sock` fields alike).
    pub(crate) fn inherit_keepalive(&self, from: &TcpSock) {
        self.max_pacing_rate.store(from.max_pacing_rate.load(Ordering::Relaxed), Ordering::Relaxed);
        self.pacing_needed.store(from.pacing_needed.load(Ordering::Relaxed), Ordering::Relaxed);
        self.keepalive.store(from.keepalive.load(Ordering::Relaxed), Ordering::Relaxed);
        self.keepidle.store(from.keepidle.load(Ordering::Relaxed), Ordering::Relaxed);
        self.keepintvl.store(from.keepintvl.load(Ordering::Relaxed), Ordering::Relaxed);
        self.keepcnt.store(from.keepcnt.load(Ordering::Relaxed), Ordering::Relaxed);
        self.user_timeout.store(from.user_timeout.load(Ordering::Relaxed), Ordering::Relaxed);
        self.set_congestion(from.congestion());
    }
}

impl Default for TcpSock {
    fn default() -> Self {
        TcpSock {
            stream: StreamSock::default(),
            accept_queue: OnceLock::new(),
            max_backlog: AtomicUsize::new(0),
            cb: AtomicU32::new(u32::MAX),
            nodelay: AtomicBool::new(false),
            cork: AtomicBool::new(false),
            linger_zero: AtomicBool::new(false),
            reuseaddr: AtomicBool::new(false),
            rcvbuf: AtomicUsize::new(TCP_RMEM_DEFAULT),
            sndbuf: AtomicUsize::new(TCP_WMEM_DEFAULT),
            sndbuf_lock: AtomicBool::new(false),
            rcvbuf_lock: AtomicBool::new(false),
            rcvlowat: AtomicUsize::new(1),
            keepalive: AtomicBool::new(false),
            keepidle: AtomicU32::new(0),
            keepintvl: AtomicU32::new(0),
            keepcnt: AtomicU32::new(0),
            user_timeout: AtomicU32::new(0),
            congestion: AtomicU8::new(0),
            max_pacing_rate: AtomicU64::new(u64::MAX),
            pacing_needed: AtomicBool::new(false),
            pingpong: AtomicBool::new(false),
        }
    }
}

impl std::fmt::Debug for TcpSock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpSock")
            .field("state", &self.stream.state())
            .field("cb", &self.cb())
            .field("accept_backlog", &self.accept_backlog())
            .finish_non_exhaustive()
    }
}

impl TcpSock {
    /// The accept queue, made on first use.
    pub(crate) fn accept_queue(&self) -> &ArrayQueue<Arc<Sock>> {
        self.accept_queue.get_or_init(|| ArrayQueue::new(SOMAXCONN + 1))
    }

    /// Children waiting to be accepted (`sk_ack_backlog`).
    pub fn accept_backlog(&self) -> usize {
        self.accept_queue.get().map_or(0, |q| q.len())
    }

    /// `sk_acceptq_is_full`: more than the backlog wait.
    pub(crate) fn acceptq_is_full(&self) -> bool {
        self.accept_backlog() > self.max_backlog.load(Ordering::Relaxed)
    }

    /// The loop's control block index, if the sock has one.
    pub(crate) fn cb(&self) -> Option<u32> {
        let v = self.cb.load(Ordering::Acquire);
        (v != u32::MAX).then_some(v)
    }
}

/// What a UDP sock keeps beyond the common part.
#[derive(Debug, Default)]
pub struct UdpSock {
    /// Datagrams read by application threads through a `StackHandle`
    /// (UdpInDatagrams is counted on read). Reads through the `Stack` itself
    /// (run to completion) are counted in its MIB, without an atomic.
    pub(crate) datagrams_read: AtomicU64,
}

/// `IP_MTU_DISCOVER` (include/uapi/linux/in.h): whether datagrams carry DF
/// and how large a send may be (`__ip_make_skb`, `ip_dont_fragment`,
/// `__ip_append_data`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum PmtuDisc {
    /// `IP_PMTUDISC_DONT` (0): never DF; a datagram larger than the path MTU
    /// is fragmented.
    Dont = 0,
    /// `IP_PMTUDISC_WANT` (1), the default (`net.ipv4.ip_no_pmtu_disc` 0): DF
    /// when the datagram fits the path MTU (and the path MTU is not locked),
    /// fragmented without DF when it does not.
    #[default]
    Want = 1,
    /// `IP_PMTUDISC_DO` (2): always DF; a send larger than the path MTU fails
    /// with `EMSGSIZE`.
    Do = 2,
    /// `IP_PMTUDISC_PROBE` (3): always DF, sized by the device MTU whatever
    /// the path MTU (`EMSGSIZE` past it).
    Probe = 3,
}

impl PmtuDisc {
    fn from_u8(v: u8) -> PmtuDisc {
        match v {
            0 => PmtuDisc::Dont,
            2 => PmtuDisc::Do,
            3 => PmtuDisc::Probe,
            _ => PmtuDisc::Want,
        }
    }
}

/// What a sleeper on a [`WaitQueue`] waits for: the poll key it takes a
/// wake-up for. Linux's blocked reader (`__skb_wait_for_more_packets`,
/// net/core/datagram.c) sleeps with `receiver_wake_function`, which ignores
/// a wake-up whose key has neither `EPOLLIN` nor `EPOLLERR`: the write-space
/// wake-up (`sock_def_write_space`, `EPOLLOUT`) that every transmit of the
/// sock's own reply raises does not wake it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitFor {
    /// Data (or an error, or the end): `recvfrom`, `accept`.
    Read,
    /// Room in the send buffer (or an error): a blocking `sendto`, `send`.
    Write,
    /// Anything: `poll`, `connect`.
    Any,
}

/// What a wake-up says may have become true (the key `__wake_up` passes to
/// a wait queue entry's function): `EPOLLOUT` alone for the write-space
/// wake-up (`sk_write_space`), 0 for any other (data, an error, a state
/// change: the watcher looks at everything).
pub(crate) const WAKE_ANY: u32 = 0;

/// A function a wake-up calls, as a wait queue entry's `func` is called
/// (`wait_queue_entry_t`; epoll's `ep_poll_callback`). It runs on the
/// thread that wakes (the loop), so it must be short and must not block.
pub(crate) trait WakeCallback: Send + Sync {
    /// The sock may have changed; `key` is [`WAKE_ANY`] or the events that
    /// may now be true (`EPOLLOUT`).
    fn wake(&self, key: u32);
}

/// Threads sleeping on a sock (`sk_wq`), and the epoll instances watching
/// it. Wakers check counters first, so a sock nobody sleeps on and nobody
/// watches costs two atomic loads per wake-up.
#[derive(Default)]
pub struct WaitQueue {
    sleepers: AtomicUsize,
    /// Sleepers that take a write-space wake-up ([`WaitFor::Write`], [`WaitFor::Any`]).
    write_sleepers: AtomicUsize,
    threads: Mutex<Vec<(Arc<Waiter>, WaitFor)>>,
    /// How long a waiter spins before it sleeps, ns (`SO_BUSY_POLL`,
    /// `net.core.busy_read`): see [`wait_event_for`].
    busy_poll_ns: AtomicU64,
    /// How many entries `callbacks` holds, read before taking its lock.
    n_callbacks: AtomicUsize,
    /// The epoll instances watching the sock (`crate::eventpoll`).
    callbacks: Mutex<Vec<Arc<dyn WakeCallback>>>,
}

impl WaitQueue {
    /// Wakes every sleeper (`sk_data_ready`, `sk_write_space`). The fence
    /// orders what the caller stored before (the data it queued) before the
    /// look at the sleeper count, as the sleeper registers before it looks at
    /// the data: one of the two sees the other, so no wake-up is lost.
    #[inline]
    pub fn wake_up(&self) {
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) > 0 {
            self.wake_up_sleepers();
        }
        if self.n_callbacks.load(Ordering::Relaxed) > 0 {
            self.run_callbacks(WAKE_ANY);
        }
    }

    /// Wakes the sleepers this thread already sees, without the fence: a
    /// reader registering at this moment can be missed, so a [`Self::wake_up`]
    /// must follow (the loop does one per sock per batch). This one wakes a
    /// known sleeper at the first datagram, not at the end of the batch.
    #[inline]
    pub(crate) fn wake_up_seen(&self) {
        if self.sleepers.load(Ordering::Relaxed) > 0 {
            self.wake_up_sleepers();
        }
    }

    /// Wakes the sleepers that wait for room to send (`sk_write_space`, a
    /// wake-up keyed `EPOLLOUT`): not the readers ([`WaitFor`]). Ordered as
    /// [`Self::wake_up`].
    #[inline]
    pub fn wake_up_write_space(&self) {
        fence(Ordering::SeqCst);
        if self.write_sleepers.load(Ordering::Relaxed) > 0 {
            self.wake_up_writers();
        }
        if self.n_callbacks.load(Ordering::Relaxed) > 0 {
            self.run_callbacks(libc::EPOLLOUT as u32);
        }
    }

    /// Out of line, as the sleepers' wake-up.
    #[cold]
    #[inline(never)]
    fn run_callbacks(&self, key: u32) {
        let callbacks = self.callbacks.lock().unwrap_or_else(|e| e.into_inner());
        for c in callbacks.iter() {
            c.wake(key);
        }
    }

    /// Adds a function every wake-up calls (`add_wait_queue` with an entry
    /// whose `func` is epoll's callback).
    pub(crate) fn add_callback(&self, c: Arc<dyn WakeCallback>) {
        let mut callbacks = self.callbacks.lock().unwrap_or_else(|e| e.into_inner());
        callbacks.push(c);
        self.n_callbacks.store(callbacks.len(), Ordering::SeqCst);
    }

    /// Removes the function added as `c` (`remove_wait_queue`).
    pub(crate) fn remove_callback(&self, c: &Arc<dyn WakeCallback>) {
        let mut callbacks = self.callbacks.lock().unwrap_or_else(|e| e.into_inner());
        callbacks.retain(|x| !Arc::ptr_eq(x, c));
        self.n_callbacks.store(callbacks.len(), Ordering::SeqCst);
    }

    /// Out of line, so that the check above inlines into the per-packet path.
    #[cold]
    #[inline(never)]
    fn wake_up_sleepers(&self) {
        let threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        for (w, _) in threads.iter() {
            w.wake();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_up_writers(&self) {
        let threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        for (w, _) in threads.iter().filter(|(_, f)| *f != WaitFor::Read) {
            w.wake();
        }
    }

    /// Sets how long a waiter on this queue spins before it sleeps
    /// (`SO_BUSY_POLL`; zero: it sleeps at once).
    pub fn set_busy_poll(&self, d: Duration) {
        self.busy_poll_ns.store(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// How long a waiter on this queue spins before it sleeps.
    pub fn busy_poll(&self) -> Duration {
        Duration::from_nanos(self.busy_poll_ns.load(Ordering::Relaxed))
    }

    pub(crate) fn add(&self, wait_for: WaitFor) {
        self.threads.lock().unwrap_or_else(|e| e.into_inner()).push((Waiter::current(), wait_for));
        if wait_for != WaitFor::Read {
            self.write_sleepers.fetch_add(1, Ordering::SeqCst);
        }
        self.sleepers.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn remove(&self) {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = threads.iter().position(|(w, _)| w.is_current()) {
            let (_, wait_for) = threads.swap_remove(i);
            if wait_for != WaitFor::Read {
                self.write_sleepers.fetch_sub(1, Ordering::SeqCst);
            }
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The most one turn of a busy-polling waiter charges to its budget: a
/// `sched_yield` that returns at once takes well under this; one that let
/// another thread of the core run (the loop, for its whole poll) took longer,
/// and that time was not the waiter's.
const BUSY_TURN_MAX: Duration = Duration::from_micros(5);

/// What a busy-polling waiter has spent of its budget (`SO_BUSY_POLL`): its
/// own turns, each charged the time since the last one, at most
/// [`BUSY_TURN_MAX`]. On a core of its own that is the wall time, as Linux's
/// `busy_loop_timeout` counts it (net/core/dev.c). On a core it shares with the
/// loop, where it runs only when the loop yields (after a batch, or after
/// about 0.1 ms of empty polls), wall time would be the loop's: a 50 µs
/// budget would run out at its first turn, and a reader would sleep, to be
/// woken by a futex round trip, whenever datagrams come more than a poll
/// apart. Charged per turn, it spins for up to `budget / BUSY_TURN_MAX`
/// turns, never spends more than `budget` of its own CPU, and never spins
/// for more than [`BUSY_WALL_FACTOR`] × `budget` of wall time.
struct BusyBudget {
    budget: Duration,
    spent: Duration,
    last: Instant,
    /// When the wall time runs out (`None`: a budget so long it never does).
    until: Option<Instant>,
}

/// However few turns it got, a waiter stops spinning after this many times
/// its budget of wall time: datagrams further apart find it asleep, woken
/// by the loop, which hands it the core (`crate::handoff`); a waiter that
/// spun on, running only at the loop's yields, which the scheduler (EEVDF)
/// does not always give it, took a datagram up to a few hundred µs late.
const BUSY_WALL_FACTOR: u32 = 4;

impl BusyBudget {
    fn new(budget: Duration, now: Instant) -> BusyBudget {
        let until = budget.checked_mul(BUSY_WALL_FACTOR).and_then(|d| now.checked_add(d));
        BusyBudget { budget, spent: Duration::ZERO, last: now, until }
    }

    /// Charges the turn that ends at `now`; whether the budget is spent.
    fn charge(&mut self, now: Instant) -> bool {
        self.spent += now.saturating_duration_since(self.last).min(BUSY_TURN_MAX);
        self.last = now;
        self.spent >= self.budget || self.until.is_some_and(|u| now >= u)
    }
}

/// [`wait_event_for`] with [`WaitFor::Any`] (the sock layer's own tests).
#[cfg(test)]
pub(crate) fn wait_event(queues: &[&WaitQueue], deadline: Option<Instant>, ready: impl FnMut() -> bool) -> bool {
    wait_event_for(queues, WaitFor::Any, deadline, None, ready)
}

/// Waits until `ready()` or the deadline. Returns `ready()`'s last answer.
///
/// First it busy-polls, as Linux's `sk_busy_loop` does for a socket with
/// `SO_BUSY_POLL` (net/core/dev.c): for the longest budget of `queues`
/// ([`WaitQueue::set_busy_poll`], charged as [`BusyBudget`] says) it checks
/// `ready()` between yields of the CPU, unregistered, so that the loop's
/// wake-up costs it nothing (it wakes only sleepers) and data arriving
/// meanwhile is taken without a futex round trip. The yield lets a loop that
/// shares the core run, and returns at once when it does not. Then it sleeps,
/// registered on every queue in `queues` so that any of them can wake it,
/// and only for the wake-ups that `wait_for` takes: a reader
/// ([`WaitFor::Read`]) is not woken by the write space that the loop
/// announces after sending what the sock queued. Each time it runs again it
/// says so ([`Waiter::resumed`]): a threaded loop that woke it may be
/// blocked until it has ([`crate::handoff`]).
///
/// With `handoff`, the threaded loop's: a yield after which the loop has
/// not polled, and is not blocked, ends the spinning at once. The loop is
/// runnable but did not get the core, which happens on a core the two
/// share when the scheduler (EEVDF, `pick_eevdf`) finds the loop not
/// eligible (it ran more than its share): each yield then comes straight
/// back to the waiter, and the loop, with the reply the waiter just sent
/// to transmit, waited for the waiter's whole budget. Asleep, the waiter
/// leaves the core to the loop, which wakes it when data comes. Not on a
/// core of its own, where the loop polls all the time but a yield can take
/// less than one of its polls.
pub(crate) fn wait_event_for(
    queues: &[&WaitQueue],
    wait_for: WaitFor,
    deadline: Option<Instant>,
    handoff: Option<&crate::handoff::Handoff>,
    mut ready: impl FnMut() -> bool,
) -> bool {
    if ready() {
        return true;
    }
    let busy = queues.iter().map(|q| q.busy_poll()).max().unwrap_or_default();
    if !busy.is_zero() {
        let mut spent = BusyBudget::new(busy, Instant::now());
        // Only on the loop's core: on another, a yield is shorter than a poll.
        let handoff = handoff.filter(|h| h.shares_loop_cpu());
        let mut beats = handoff.map(crate::handoff::Handoff::beats);
        loop {
            std::thread::yield_now();
            if ready() {
                return true;
            }
            if let Some(h) = handoff {
                let now_beats = h.beats();
                if beats == Some(now_beats) && !h.is_blocked() {
                    break;
                }
                beats = Some(now_beats);
            }
            let now = Instant::now();
            if spent.charge(now) || deadline.is_some_and(|d| now >= d) {
                break;
            }
        }
    }
    for q in queues {
        q.add(wait_for);
    }
    let me = Waiter::current();
    let result = loop {
        // Registered before this check: a wake-up after it unparks us.
        if ready() {
            break true;
        }
        me.sleeping();
        match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    break ready();
                }
                std::thread::park_timeout(d - now);
            }
            None => std::thread::park(),
        }
        // Running again: a loop that woke us need not wait for us any more
        // (`crate::handoff`).
        me.resumed();
    };
    for q in queues {
        q.remove();
    }
    // A wake-up that came after the last look, before we left the queues.
    me.resumed();
    result
}

/// `sk_write_queue`: a single-producer ring when the stack's own thread is
/// the only sender, a multi-producer queue when application threads send.
enum WriteQueue {
    One(SkbQueue),
    /// The queue, and the frames its chained datagrams hold beyond one each.
    Many(ArrayQueue<SkBuff>, AtomicUsize),
}

impl WriteQueue {
    #[inline]
    fn push(&self, skb: SkBuff) -> Result<(), SkBuff> {
        match self {
            WriteQueue::One(q) => q.push(skb),
            WriteQueue::Many(q, frags) => {
                if skb.nr_frags != 0 {
                    // Charged in frames, as `SkbQueue::push` charges them.
                    let n = skb.nr_frags as usize;
                    if q.len() + frags.load(Ordering::Acquire) + 1 + n > q.capacity() {
                        return Err(skb);
                    }
                    frags.fetch_add(n, Ordering::AcqRel);
                    return q.push(skb).inspect_err(|_| {
                        frags.fetch_sub(n, Ordering::AcqRel);
                    });
                }
                q.push(skb)
            }
        }
    }

    #[inline]
    fn pop(&self) -> Option<SkBuff> {
        match self {
            WriteQueue::One(q) => q.pop(),
            WriteQueue::Many(q, frags) => {
                let skb = q.pop()?;
                if skb.nr_frags != 0 {
                    frags.fetch_sub(skb.nr_frags as usize, Ordering::AcqRel);
                }
                Some(skb)
            }
        }
    }

    /// Frames queued, chained datagrams' frames included.
    fn frames(&self) -> usize {
        match self {
            WriteQueue::One(q) => q.frames(),
            WriteQueue::Many(q, frags) => q.len() + frags.load(Ordering::SeqCst),
        }
    }

    #[inline]
    fn len(&self) -> usize {
        match self {
            WriteQueue::One(q) => q.len(),
            WriteQueue::Many(q, _) => q.len(),
        }
    }

    #[inline]
    fn is_full(&self) -> bool {
        match self {
            WriteQueue::One(q) => q.is_full(),
            WriteQueue::Many(q, _) => q.is_full(),
        }
    }
}

/// A sock: the common part, and the protocol's part in [`Sock::proto`].
pub struct Sock {
    /// The socket's type.
    pub sock_type: SockType,
    /// Its IP protocol (`sk_protocol`).
    pub protocol: u8,
    /// The bound local address (`inet_saddr`, `inet_sport`); set once, by
    /// bind or autobind, on the loop's thread.
    local: AtomicSockAddr,
    /// The connected peer, if any (`connect()`).
    remote: AtomicSockAddr,
    /// Holds `rcv_slots` buffers (at least one slot, even when `rcv_slots` is 0).
    receive_queue: SkbQueue,
    /// Buffers rcvbuf has room for: `rcvbuf / truesize`.
    rcv_slots: usize,
    /// Holds `snd_slots` buffers (at least one slot).
    write_queue: WriteQueue,
    /// Buffers sndbuf has room for: `sndbuf / truesize`.
    snd_slots: usize,
    truesize: usize,
    /// On the loop's list of socks with something to send.
    pub(crate) tx_scheduled: AtomicBool,
    /// `sk_err`: an asynchronous error (ICMP port unreachable on a connected
    /// socket gives ECONNREFUSED), reported by the next call.
    err: AtomicI32,
    /// `sk_err_soft`: an error that is not reported at once (TCP: an ICMP
    /// error about an established connection), but given by `SO_ERROR`
    /// and in place of `ETIMEDOUT` when the connection times out.
    err_soft: AtomicI32,
    /// `inet->pmtudisc` ([`PmtuDisc`] as a byte).
    pmtudisc: AtomicU8,
    /// `inet->inet_id`: the IP identifier of a connected socket's DF
    /// datagrams, set at connect and counted up per datagram.
    pub(crate) inet_id: AtomicU32,
    closed: AtomicBool,
    /// Threads sleeping on this sock.
    pub wq: WaitQueue,
    /// The protocol's own part.
    pub proto: ProtoSock,
}

impl Sock {
    /// A sock that application threads may read at the same time (through a
    /// `StackHandle`).
    pub fn new(sock_type: SockType, rcvbuf: usize, sndbuf: usize, truesize: usize) -> Sock {
        Sock::with_readers(sock_type, rcvbuf, sndbuf, truesize, Readers::Shared)
    }

    pub(crate) fn with_readers(
        sock_type: SockType,
        rcvbuf: usize,
        sndbuf: usize,
        truesize: usize,
        readers: Readers,
    ) -> Sock {
        // A stream keeps its data in byte buffers (`crate::stream`), not in
        // frames: its frame queues stay empty.
        let (rcv_slots, snd_slots) = match sock_type {
            SockType::Dgram => (rcvbuf / truesize, sndbuf / truesize),
            SockType::Stream => (0, 0),
        };
        Sock {
            sock_type,
            protocol: sock_type.protocol(),
            local: AtomicSockAddr::default(),
            remote: AtomicSockAddr::default(),
            receive_queue: SkbQueue::new(rcv_slots, readers),
            rcv_slots,
            write_queue: match readers {
                // The stack's own socks: the thread that owns the `Stack` both
                // sends and transmits, one producer and one consumer.
                Readers::Exclusive => WriteQueue::One(SkbQueue::new(snd_slots, Readers::Exclusive)),
                // Any number of application threads may send at once.
                Readers::Shared => WriteQueue::Many(ArrayQueue::new(snd_slots.max(1)), AtomicUsize::new(0)),
            },
            snd_slots,
            truesize,
            tx_scheduled: AtomicBool::new(false),
            err: AtomicI32::new(0),
            err_soft: AtomicI32::new(0),
            pmtudisc: AtomicU8::new(PmtuDisc::Want as u8),
            inet_id: AtomicU32::new(0),
            closed: AtomicBool::new(false),
            wq: WaitQueue::default(),
            proto: match sock_type {
                SockType::Dgram => ProtoSock::Udp(UdpSock::default()),
                SockType::Stream => ProtoSock::Tcp(TcpSock::default()),
            },
        }
    }

    /// The bound local address, if bound.
    #[inline]
    pub fn local(&self) -> Option<SocketAddrV4> {
        self.local.get()
    }

    /// Records the bound address (the socket tables do, once).
    pub(crate) fn set_local(&self, addr: SocketAddrV4) {
        self.local.set(addr);
    }

    /// The connected peer, if connected.
    #[inline]
    pub fn remote(&self) -> Option<SocketAddrV4> {
        self.remote.get()
    }

    /// `IP_MTU_DISCOVER`.
    #[inline]
    pub fn pmtudisc(&self) -> PmtuDisc {
        PmtuDisc::from_u8(self.pmtudisc.load(Ordering::Relaxed))
    }

    /// Sets `IP_MTU_DISCOVER`.
    pub(crate) fn set_pmtudisc(&self, v: PmtuDisc) {
        self.pmtudisc.store(v as u8, Ordering::Relaxed);
    }

    /// Connects to `addr`; a datagram socket may connect again, to another
    /// peer, as `ip4_datagram_connect` allows.
    pub(crate) fn set_remote(&self, addr: SocketAddrV4) {
        self.remote.set(addr);
    }

    /// Whether other threads may read this sock (made through a
    /// `StackHandle`), or only the thread that owns the `Stack`.
    pub(crate) fn shared(&self) -> bool {
        self.receive_queue.readers() == Readers::Shared
    }

    /// Who reads this sock: its children (accepted connections) read the same way.
    pub(crate) fn readers(&self) -> Readers {
        self.receive_queue.readers()
    }

    /// The UDP part, for a datagram sock.
    #[inline]
    pub fn udp(&self) -> Option<&UdpSock> {
        match &self.proto {
            ProtoSock::Udp(u) => Some(u),
            ProtoSock::Tcp(_) => None,
        }
    }

    /// The TCP part, for a stream sock.
    #[inline]
    pub fn tcp(&self) -> Option<&TcpSock> {
        match &self.proto {
            ProtoSock::Tcp(t) => Some(t),
            ProtoSock::Udp(_) => None,
        }
    }

    /// Softirq side: queues a received datagram, or hands it back when rcvbuf
    /// is full (the caller counts UdpRcvbufErrors and frees it). Only the loop
    /// that holds the sock in its demultiplexing table calls this. The caller
    /// calls `wq.wake_up()` once the batch is queued (`sk_data_ready`).
    #[inline]
    pub(crate) fn queue_rcv(&self, skb: SkBuff) -> Result<(), SkBuff> {
        // The queue holds exactly rcvbuf / truesize buffers: full is "rmem_alloc
        // + truesize > rcvbuf". A rcvbuf below one truesize takes nothing.
        if self.rcv_slots == 0 {
            return Err(skb);
        }
        self.receive_queue.push(skb)?;
        self.wq.wake_up_seen();
        Ok(())
    }

    /// Application side: the oldest received datagram. The caller counts it
    /// (UdpInDatagrams).
    #[inline]
    pub(crate) fn dequeue_rcv(&self) -> Option<SkBuff> {
        self.receive_queue.pop()
    }

    /// Application side: whether a send of one more buffer fits in sndbuf.
    #[inline]
    pub(crate) fn sndbuf_has_room(&self) -> bool {
        self.snd_slots > 0 && !self.write_queue.is_full()
    }

    /// Application side: queues a datagram for the loop to send; hands it back
    /// when sndbuf is full.
    #[inline]
    pub(crate) fn queue_xmit(&self, skb: SkBuff) -> Result<(), SkBuff> {
        if self.snd_slots == 0 {
            return Err(skb);
        }
        self.write_queue.push(skb)
    }

    /// Softirq side: the next datagram to send. Its buffer is uncharged now,
    /// as a driver that orphans skbs on transmit does (veth does).
    #[inline]
    pub(crate) fn dequeue_xmit(&self) -> Option<SkBuff> {
        self.write_queue.pop()
    }

    /// Application side: puts `sock` on the loop's list of socks with
    /// something to send (`scheduled`), at most once. The load first: once
    /// scheduled, later sends skip the locked swap. It pairs with the loop's
    /// clearing of the mark before it drains (SeqCst on both sides): a send
    /// that sees the stale mark is seen by that drain.
    #[inline]
    pub(crate) fn schedule_xmit(sock: &Arc<Sock>, scheduled: &ArrayQueue<Arc<Sock>>) {
        if !sock.tx_scheduled.load(Ordering::SeqCst) && !sock.tx_scheduled.swap(true, Ordering::SeqCst) {
            // Holds every sock at most once and is sized for the fd limit.
            let _ = scheduled.push(sock.clone());
        }
    }

    /// Whether a read would not block (`POLLIN`): data, an error, or closed;
    /// for a stream also the peer's FIN, and for a listener a child to accept.
    pub fn readable(&self) -> bool {
        self.err.load(Ordering::Relaxed) != 0 || self.is_closed() || self.data_ready()
    }

    /// `POLLIN` as `udp_poll` and `tcp_poll` report it: for a datagram sock
    /// [`Sock::readable`]; for a stream a pending error alone is `POLLERR`,
    /// not `POLLIN` (which is data, `RCV_SHUTDOWN`, or a child to accept),
    /// though it makes a blocked read return.
    pub(crate) fn poll_in(&self) -> bool {
        match &self.proto {
            ProtoSock::Udp(_) => self.readable(),
            ProtoSock::Tcp(_) => self.is_closed() || self.data_ready(),
        }
    }

    /// Whether there is something to read, an error aside: datagrams; for a
    /// stream, data (`SO_RCVLOWAT` bytes) or `RCV_SHUTDOWN`; for a listener,
    /// a child to accept (`tcp_stream_is_readable`, `inet_csk_listen_poll`).
    pub fn data_ready(&self) -> bool {
        match &self.proto {
            ProtoSock::Udp(_) => !self.receive_queue.is_empty(),
            ProtoSock::Tcp(t) => {
                let s = &t.stream;
                if s.state() == TcpState::Listen {
                    return t.accept_backlog() > 0;
                }
                s.rcv_queued() >= t.rcvlowat.load(Ordering::Relaxed).max(1)
                    || self.stream_shutdown().0
                    || (s.rcv_queued() > 0 && s.state() != TcpState::Established)
            }
        }
    }

    /// Whether a send would not block (`POLLOUT`): for a stream as
    /// `tcp_poll` says it: never while listening or connecting; at once when
    /// sending is shut down or the connection is over (the send fails
    /// without blocking); else with room in the send buffer
    /// (`sk_stream_is_writeable`).
    pub fn writable(&self) -> bool {
        match &self.proto {
            ProtoSock::Udp(_) => self.sndbuf_has_room(),
            ProtoSock::Tcp(t) => match t.stream.state() {
                TcpState::Listen | TcpState::SynSent | TcpState::SynRecv => false,
                TcpState::Close => true,
                _ => t.stream.wr_shut.load(Ordering::Acquire) || t.stream.writeable(),
            },
        }
    }

    /// The stream's `sk_shutdown` as `tcp_poll` reads it: (`RCV_SHUTDOWN`,
    /// `SEND_SHUTDOWN`). Receiving ends with the peer's FIN or a local
    /// `shutdown(SHUT_RD)`/`close()`, sending with `shutdown(SHUT_WR)`/`close()`,
    /// and both with `tcp_done` (a RST, a refused or timed-out connect, the
    /// retransmission limit), which sets `SHUTDOWN_MASK`
    /// (net/ipv4/tcp.c `tcp_done`). Never for a datagram sock.
    fn stream_shutdown(&self) -> (bool, bool) {
        match &self.proto {
            ProtoSock::Udp(_) => (false, false),
            ProtoSock::Tcp(t) => {
                let s = &t.stream;
                let done = s.done.load(Ordering::Acquire);
                let rcv = done || s.fin_rcvd.load(Ordering::Acquire) || s.rd_shut.load(Ordering::Acquire);
                let snd = done || s.wr_shut.load(Ordering::Acquire);
                (rcv, snd)
            }
        }
    }

    /// `POLLHUP`, as `tcp_poll` reports it: shut down both ways, or in
    /// CLOSE (a socket not yet connected included: Linux reports
    /// `POLLOUT | POLLHUP` for a fresh TCP socket). Never for a datagram sock.
    pub fn hung_up(&self) -> bool {
        match &self.proto {
            ProtoSock::Udp(_) => false,
            ProtoSock::Tcp(t) => {
                let (rcv, snd) = self.stream_shutdown();
                (rcv && snd) || t.stream.state() == TcpState::Close
            }
        }
    }

    /// Whether nothing more will come from the peer (`EPOLLRDHUP`, as
    /// `tcp_poll` reports `RCV_SHUTDOWN`: its FIN came, reading was shut
    /// down here, or the connection ended in `tcp_done`). Never for a
    /// datagram sock.
    pub fn peer_shut(&self) -> bool {
        self.stream_shutdown().0
    }

    /// Whether an asynchronous error is pending (`POLLERR`).
    pub fn has_err(&self) -> bool {
        self.err.load(Ordering::Relaxed) != 0
    }

    pub(crate) fn set_err(&self, e: Errno) {
        self.err.store(e.0, Ordering::Relaxed);
        self.wq.wake_up();
    }

    /// Takes the pending asynchronous error (`sock_error`).
    #[inline]
    pub(crate) fn take_err(&self) -> Option<Errno> {
        // A plain load first: the swap is a locked instruction, and every
        // read would pay for it although errors are rare.
        if self.err.load(Ordering::Relaxed) == 0 {
            return None;
        }
        match self.err.swap(0, Ordering::Relaxed) {
            0 => None,
            e => Some(Errno(e)),
        }
    }

    /// Records a soft error (`WRITE_ONCE(sk->sk_err_soft, err)`); `None` clears it.
    pub(crate) fn set_err_soft(&self, e: Option<Errno>) {
        self.err_soft.store(e.map_or(0, |e| e.0), Ordering::Relaxed);
    }

    /// The soft error, if any, left in place.
    pub fn err_soft(&self) -> Option<Errno> {
        match self.err_soft.load(Ordering::Relaxed) {
            0 => None,
            e => Some(Errno(e)),
        }
    }

    /// `getsockopt(SO_ERROR)` (net/core/sock.c `sk_getsockopt`): the pending
    /// error, or else the soft error, either taken.
    pub(crate) fn take_so_error(&self) -> Option<Errno> {
        self.take_err().or_else(|| match self.err_soft.swap(0, Ordering::Relaxed) {
            0 => None,
            e => Some(Errno(e)),
        })
    }

    pub(crate) fn mark_closed(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.wq.wake_up();
    }

    /// Whether the sock was closed (readers see `EBADF`).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Frames on both queues, for the frame census (a datagram of several
    /// frames counts them all).
    pub fn queued(&self) -> usize {
        self.receive_queue.frames() + self.write_queue.frames()
    }

    /// Bytes charged to the receive queue (`sk_rmem_alloc`).
    pub fn rmem_alloc(&self) -> usize {
        self.receive_queue.frames() * self.truesize
    }

    /// `sk_rcvbuf`, bytes: what the receive queue may hold (UDP: the slots
    /// it has, each charged a frame; TCP: `SO_RCVBUF`).
    pub fn rcvbuf(&self) -> usize {
        match self.tcp() {
            Some(t) => t.rcvbuf.load(Ordering::Relaxed),
            None => self.rcv_slots * self.truesize,
        }
    }

    /// `sk_sndbuf`, bytes, as [`Self::rcvbuf`] for the write queue (a TCP
    /// connection's as memory pressure moderated it, unless `SO_SNDBUF`
    /// locked it).
    pub fn sndbuf(&self) -> usize {
        match self.tcp() {
            Some(t) if t.sndbuf_lock.load(Ordering::Relaxed) => t.sndbuf.load(Ordering::Relaxed),
            Some(t) => t.sndbuf.load(Ordering::Relaxed).min(t.stream.sndbuf_lim()),
            None => self.snd_slots * self.truesize,
        }
    }

    /// Bytes charged to the write queue (`sk_wmem_alloc`).
    pub fn wmem_alloc(&self) -> usize {
        self.write_queue.frames() * self.truesize
    }

    /// Empties both queues (on close), handing every buffer to `free`.
    pub(crate) fn purge(&self, mut free: impl FnMut(SkBuff)) {
        while let Some(skb) = self.receive_queue.pop() {
            free(skb);
        }
        while let Some(skb) = self.write_queue.pop() {
            free(skb);
        }
    }
}

impl Sock {
    /// Frames on the write queue.
    pub fn queued_xmit(&self) -> usize {
        self.write_queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A busy-polling waiter's budget is its own turns: on its own core the
    /// wall time; a turn in which another thread held the core (a yield that
    /// came back late) charges at most `BUSY_TURN_MAX`.
    #[test]
    fn the_busy_poll_budget_counts_the_waiters_own_turns() {
        let t0 = Instant::now();
        let us = Duration::from_micros;
        // Alone on its core: yields return within a microsecond, the budget is wall time.
        let mut alone = BusyBudget::new(us(50), t0);
        let turns = (1..=100).take_while(|&i| !alone.charge(t0 + us(i))).count();
        assert_eq!(turns, 49, "spent at 50 µs");
        // Sharing it with a loop that yields after each batch, 20 µs apart: 5 µs a turn, ten
        // turns (200 µs of wall time) before it sleeps, not three.
        let mut shared = BusyBudget::new(us(50), t0);
        let turns = (1..=100).take_while(|&i| !shared.charge(t0 + us(20 * i))).count();
        assert_eq!(turns, 9);
        assert_eq!(shared.spent, us(50));
        // With 100 µs between turns (an idle loop's yields) it stops at 4 × 50 µs of wall
        // time, two turns: the next datagram finds it asleep and the loop hands it the core.
        let mut idle = BusyBudget::new(us(50), t0);
        let turns = (1..=100).take_while(|&i| !idle.charge(t0 + us(100 * i))).count();
        assert_eq!(turns, 1);
        assert_eq!(idle.spent, us(10));
    }

    /// A reader asleep is not woken by the write space the loop announces
    /// after transmitting (`receiver_wake_function`); a writer is, and a
    /// data wake-up wakes both.
    #[test]
    fn a_sleeping_reader_ignores_write_space() {
        let wq = Arc::new(WaitQueue::default());
        let wakes = Arc::new(AtomicUsize::new(0));
        let data = Arc::new(AtomicBool::new(false));
        let (w, d, n) = (wq.clone(), data.clone(), wakes.clone());
        let reader = std::thread::spawn(move || {
            wait_event_for(&[&w], WaitFor::Read, None, None, || {
                n.fetch_add(1, Ordering::SeqCst);
                d.load(Ordering::Acquire)
            })
        });
        while wq.sleepers.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        let asleep = wakes.load(Ordering::SeqCst);
        assert_eq!(wq.write_sleepers.load(Ordering::SeqCst), 0);
        for _ in 0..100 {
            wq.wake_up_write_space();
        }
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(wakes.load(Ordering::SeqCst), asleep, "no write-space wake-up reached the reader");
        data.store(true, Ordering::Release);
        wq.wake_up();
        assert!(reader.join().unwrap());
        assert_eq!(wq.sleepers.load(Ordering::SeqCst), 0);

        let room = Arc::new(AtomicBool::new(false));
        let (w, r) = (wq.clone(), room.clone());
        let writer =
            std::thread::spawn(move || wait_event_for(&[&w], WaitFor::Write, None, None, || r.load(Ordering::Acquire)));
        while wq.write_sleepers.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        room.store(true, Ordering::Release);
        wq.wake_up_write_space();
        assert!(writer.join().unwrap());
        assert_eq!((wq.sleepers.load(Ordering::SeqCst), wq.write_sleepers.load(Ordering::SeqCst)), (0, 0));
    }

    /// A waiter on the loop's CPU whose yield comes back with the loop not
    /// having polled (and not blocked) stops spinning at once and sleeps,
    /// whatever its budget: the loop is runnable and did not get the core.
    /// Nothing here plays the loop after its one beat, so the waiter, with
    /// 30 s of budget, looks at its queue a handful of times and sleeps until
    /// its deadline; with no hand-off to watch it spins until then, looking
    /// more often (how often depends on what else wants the CPU: each yield
    /// may give another task a slice).
    #[test]
    fn a_waiter_on_the_loops_core_sleeps_when_the_loop_did_not_run() {
        let cpu = core_affinity::get_core_ids().expect("the CPUs we may use")[0];
        assert!(core_affinity::set_for_current(cpu));
        let handoff = crate::handoff::Handoff::new().expect("eventfd");
        handoff.beat();
        assert!(handoff.shares_loop_cpu());
        let wq = WaitQueue::default();
        wq.set_busy_poll(Duration::from_secs(30));
        let looks = |h: Option<&crate::handoff::Handoff>| {
            let mut n = 0u32;
            let deadline = Instant::now() + Duration::from_millis(30);
            assert!(!wait_event_for(&[&wq], WaitFor::Read, Some(deadline), h, || {
                n += 1;
                false
            }));
            n
        };
        let with = looks(Some(&handoff));
        assert!(with <= 5, "{with} looks: it spun");
        let without = looks(None);
        assert!(without > 2 * with, "{without} looks without, {with} with: it did not spin");
        assert_eq!(wq.sleepers.load(Ordering::SeqCst), 0);
    }

    /// With `SO_BUSY_POLL`, a waiter sees data that arrives while it spins
    /// with no wake-up at all: it never registered as a sleeper. Without it,
    /// it sleeps registered, and a wake-up is what brings it back.
    #[test]
    fn a_busy_polling_waiter_needs_no_wake_up() {
        let wq = Arc::new(WaitQueue::default());
        wq.set_busy_poll(Duration::from_secs(30));
        let data = Arc::new(AtomicBool::new(false));
        let (w, d) = (wq.clone(), data.clone());
        let waiter = std::thread::spawn(move || {
            let t0 = Instant::now();
            let ready = wait_event(&[&w], Some(t0 + Duration::from_secs(60)), || d.load(Ordering::Acquire));
            (ready, t0.elapsed())
        });
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(wq.sleepers.load(Ordering::SeqCst), 0, "spinning, not asleep");
        data.store(true, Ordering::Release);
        let (ready, took) = waiter.join().unwrap();
        assert!(ready && took < Duration::from_secs(30), "seen while spinning, no wake-up: {took:?}");

        let wq = Arc::new(WaitQueue::default());
        let data = Arc::new(AtomicBool::new(false));
        let (w, d) = (wq.clone(), data.clone());
        let waiter = std::thread::spawn(move || wait_event(&[&w], None, || d.load(Ordering::Acquire)));
        while wq.sleepers.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        data.store(true, Ordering::Release);
        wq.wake_up();
        assert!(waiter.join().unwrap());
        assert_eq!(wq.sleepers.load(Ordering::SeqCst), 0);
    }
}
