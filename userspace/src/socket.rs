//! The socket API: `socket`, `bind`, `connect`, `recvfrom`, `sendto`,
//! `close` and `poll`, in two ways to run.
//!
//! * **Run to completion** — methods on [`Stack`]: the application's thread
//!   drives the loop ([`Stack::poll`]) and its sockets. No locks, no
//!   cross-thread wake-ups; `recv_from` returns `EAGAIN` when nothing waits.
//! * **Threaded** — [`ThreadedStack`]: the loop runs on its own thread, as
//!   the softirq does; applications on other threads block in
//!   [`StackHandle::recv_from`] and are woken when data arrives. Calls that
//!   change the demultiplexing table (`bind`, `close`) are carried to the loop
//!   thread as the syscall would enter the kernel; data moves through the
//!   socks' lock-free queues.
//!
//! Descriptors are small integers from our own fd table (`crate::fdtable`),
//! lowest free first, `EMFILE` past the limit.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::errno::Errno;
use crate::fdtable::{Fd, FdTable};
use crate::netdevice::{DeviceStats, NetDevice};
use crate::skbuff::SkBuff;
use crate::snmp::Mib;
use crate::sock::{wait_event, Sock, SockType};
use crate::softirq::{ns_since, LatencyHistogram, LoopStats, SharedLatencyHistogram};
use crate::stack::{FrameCensus, Stack, TX_HEADROOM};
use crate::umem::{Frame, Umem};
use crate::wire::ipv4::protocol;

/// Largest UDP payload we send: one 1500-byte MTU frame, no fragmentation.
pub const MTU: usize = 1500;
pub const MAX_UDP_PAYLOAD: usize = MTU - 20 - 8;

/// Readiness events (`poll(2)`).
pub const POLLIN: i16 = libc::POLLIN;
pub const POLLOUT: i16 = libc::POLLOUT;
pub const POLLERR: i16 = libc::POLLERR;
pub const POLLNVAL: i16 = libc::POLLNVAL;

/// One entry of a `poll` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollFd {
    pub fd: Fd,
    pub events: i16,
    pub revents: i16,
}

impl PollFd {
    pub fn new(fd: Fd, events: i16) -> PollFd {
        PollFd { fd, events, revents: 0 }
    }
}

fn protocol_of(sock: &Sock) -> u8 {
    match sock.sock_type {
        SockType::Dgram => protocol::UDP,
    }
}

/// A datagram copied out by [`sock_recv`].
struct Received {
    len: usize,
    peer: SocketAddrV4,
    frame: Frame,
    /// Its rx stamp, 0 if not sampled.
    rx_ns: u64,
}

/// Copies the oldest datagram into `buf` (truncating, as `recvfrom` does
/// without MSG_TRUNC) and gives back its frame.
#[inline]
fn sock_recv(umem: &Umem, sock: &Sock, buf: &mut [u8]) -> Result<Received, Errno> {
    if let Some(e) = sock.take_err() {
        return Err(e);
    }
    let skb = sock.dequeue_rcv().ok_or(Errno::EAGAIN)?;
    let data = skb.data(umem);
    let len = data.len().min(buf.len());
    copy_datagram(&mut buf[..len], &data[..len]);
    Ok(Received { len, peer: skb.peer(), rx_ns: skb.rx_ns, frame: skb.into_frame() })
}

/// `dst.copy_from_slice(src)`, with datagrams of 8 to 32 bytes copied inline
/// as two overlapping fixed-size moves: a call to `memcpy` costs more than
/// the copy of a small datagram.
#[inline(always)]
fn copy_datagram(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if (16..=32).contains(&n) {
        dst[..16].copy_from_slice(&src[..16]);
        dst[n - 16..n].copy_from_slice(&src[n - 16..]);
    } else if (8..16).contains(&n) {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..n].copy_from_slice(&src[n - 8..]);
    } else {
        dst.copy_from_slice(src);
    }
}

/// What the route lookup says about a destination (`ip_route_output`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutRoute {
    Unicast,
    /// The subnet's or the limited broadcast address.
    Broadcast,
    /// Off the subnet with no gateway: IpOutNoRoutes.
    NoRoute,
}

impl OutRoute {
    pub(crate) fn of(cfg: &crate::stack::StackConfig, dst: Ipv4Addr) -> OutRoute {
        if dst.is_broadcast() || dst == cfg.broadcast() {
            OutRoute::Broadcast
        } else if cfg.next_hop(dst).is_some() {
            OutRoute::Unicast
        } else {
            OutRoute::NoRoute
        }
    }
}

/// Checks a send before taking a frame for it, in `udp_sendmsg`'s order.
/// A missing route is counted (IpOutNoRoutes) in `no_routes`.
fn check_send(
    sock: &Sock,
    len: usize,
    dst: SocketAddrV4,
    route: OutRoute,
    no_routes: &std::sync::atomic::AtomicU64,
) -> Result<(), Errno> {
    if let Some(e) = sock.take_err() {
        return Err(e);
    }
    if len > MAX_UDP_PAYLOAD {
        return Err(Errno::EMSGSIZE);
    }
    if dst.port() == 0 || dst.ip().is_unspecified() {
        return Err(Errno::EINVAL);
    }
    match route {
        OutRoute::Unicast => Ok(()),
        OutRoute::NoRoute => {
            no_routes.fetch_add(1, Ordering::Relaxed);
            Err(Errno::ENETUNREACH)
        }
        // No SO_BROADCAST (yet): Linux refuses with EACCES.
        OutRoute::Broadcast => Err(Errno::EACCES),
    }
}

/// Copies `data` into `frame` after the headroom and queues it on the sock's
/// write queue; schedules the sock for the loop.
fn sock_send(
    umem: &Umem,
    sock: &Arc<Sock>,
    scheduled: &ArrayQueue<Arc<Sock>>,
    mut frame: Frame,
    data: &[u8],
    dst: SocketAddrV4,
) -> Result<usize, (Errno, Frame)> {
    umem.frame_mut(&mut frame)[TX_HEADROOM..TX_HEADROOM + data.len()].copy_from_slice(data);
    let skb = SkBuff::new(frame, TX_HEADROOM, data.len(), dst);
    if let Err(skb) = sock.queue_xmit(skb) {
        return Err((Errno::EAGAIN, skb.into_frame()));
    }
    // The load first: once scheduled, later sends skip the locked swap. It
    // pairs with the loop's clearing of the mark before it drains (SeqCst on
    // both sides): a send that sees the stale mark is seen by that drain.
    if !sock.tx_scheduled.load(Ordering::SeqCst) && !sock.tx_scheduled.swap(true, Ordering::SeqCst) {
        // Holds every sock at most once and is sized for the fd limit.
        let _ = scheduled.push(sock.clone());
    }
    Ok(data.len())
}

fn readiness(sock: Option<&Arc<Sock>>, events: i16) -> i16 {
    match sock {
        None => POLLNVAL,
        Some(s) => {
            let mut r = 0;
            if s.readable() {
                r |= POLLIN;
            }
            if s.writable() {
                r |= POLLOUT;
            }
            r & (events | POLLERR)
        }
    }
}

/// Run-to-completion API.
impl<D: NetDevice> Stack<D> {
    /// `socket(AF_INET, type, 0)`: the lowest free descriptor.
    pub fn socket(&mut self, sock_type: SockType) -> Result<Fd, Errno> {
        // Read only through `&mut self`: its receive queue needs no atomic
        // read-modify-write on the way out.
        let sock =
            Arc::new(Sock::new_exclusive(sock_type, self.cfg.rcvbuf, self.cfg.sndbuf, self.umem.frame_size() as usize));
        self.fds.alloc(sock)
    }

    /// `bind()`: port 0 picks an ephemeral port; the address must be ours or
    /// 0.0.0.0.
    pub fn bind(&mut self, fd: Fd, addr: SocketAddrV4) -> Result<(), Errno> {
        let sock = self.fds.get(fd)?.clone();
        self.hash_sock(&sock, protocol_of(&sock), addr)
    }

    /// `connect()` on a datagram socket: sets the default destination (and
    /// makes port unreachable errors from it come back as ECONNREFUSED).
    pub fn connect(&mut self, fd: Fd, addr: SocketAddrV4) -> Result<(), Errno> {
        let sock = self.fds.get(fd)?.clone();
        if sock.local().is_none() {
            self.hash_sock(&sock, protocol_of(&sock), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
        }
        sock.set_remote(addr)
    }

    /// `getsockname()`.
    pub fn local_addr(&self, fd: Fd) -> Result<SocketAddrV4, Errno> {
        let sock = self.fds.get(fd)?;
        Ok(sock.local().unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))
    }

    /// `recvfrom()`, non-blocking: `EAGAIN` when nothing waits (poll first,
    /// or drive the loop with [`Stack::poll`]).
    pub fn recv_from(&mut self, fd: Fd, buf: &mut [u8]) -> Result<(usize, SocketAddrV4), Errno> {
        let sock = self.fds.get(fd)?;
        let r = sock_recv(&self.umem, sock, buf)?;
        self.mib.UdpInDatagrams += 1;
        if r.rx_ns != 0 {
            self.record_rx_latency(r.rx_ns);
        }
        self.free_frame(r.frame);
        Ok((r.len, r.peer))
    }

    /// Reads the oldest datagram in place, without a copy: `f` sees the
    /// payload in its UMEM frame, which is recycled when `f` returns.
    pub fn recv_with<R>(&mut self, fd: Fd, f: impl FnOnce(&[u8], SocketAddrV4) -> R) -> Result<R, Errno> {
        let sock = self.fds.get(fd)?;
        if let Some(e) = sock.take_err() {
            return Err(e);
        }
        let skb = sock.dequeue_rcv().ok_or(Errno::EAGAIN)?;
        self.mib.UdpInDatagrams += 1;
        if skb.rx_ns != 0 {
            self.record_rx_latency(skb.rx_ns);
        }
        let r = f(skb.data(&self.umem), skb.peer());
        self.free_frame(skb.into_frame());
        Ok(r)
    }

    /// `sendto()`, non-blocking: `EAGAIN` when sndbuf is full. An unbound
    /// socket is bound to an ephemeral port first, as Linux autobinds.
    pub fn send_to(&mut self, fd: Fd, data: &[u8], dst: SocketAddrV4) -> Result<usize, Errno> {
        let sock = self.fds.get(fd)?;
        check_send(sock, data.len(), dst, OutRoute::of(&self.cfg, *dst.ip()), &self.out_no_routes)?;
        if !sock.sndbuf_has_room() {
            return Err(Errno::EAGAIN);
        }
        if sock.local().is_none() {
            let sock = sock.clone();
            self.hash_sock(&sock, protocol_of(&sock), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
        }
        // Borrowed, not cloned: an `Arc` clone and drop are two locked
        // instructions per datagram.
        let sock = self.fds.get(fd)?;
        let frame = self.free.pop().or_else(|| self.pool.get()).ok_or(Errno::ENOBUFS)?;
        sock_send(&self.umem, sock, &self.tx_scheduled, frame, data, dst).map_err(|(e, frame)| {
            self.free.push(frame);
            e
        })
    }

    /// `send()` on a connected socket.
    pub fn send(&mut self, fd: Fd, data: &[u8]) -> Result<usize, Errno> {
        let dst = self.fds.get(fd)?.remote().ok_or(Errno::EDESTADDRREQ)?;
        self.send_to(fd, data, dst)
    }

    /// `close()`: frees the descriptor and every frame the sock held.
    pub fn close(&mut self, fd: Fd) -> Result<(), Errno> {
        let sock = self.fds.close(fd)?;
        self.unhash_sock(&sock, protocol_of(&sock));
        Ok(())
    }

    /// `poll()`: drives the loop until a descriptor is ready or the timeout
    /// passes (`None`: forever, `Some(0)`: just look). Returns how many are
    /// ready.
    pub fn poll_fds(&mut self, fds: &mut [PollFd], timeout: Option<Duration>) -> usize {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let mut ready = 0;
            for p in fds.iter_mut() {
                p.revents = readiness(self.fds.get(p.fd).ok(), p.events);
                ready += usize::from(p.revents != 0);
            }
            if ready > 0 || deadline.is_some_and(|d| Instant::now() >= d) {
                return ready;
            }
            self.poll();
        }
    }

    /// Descriptors open now.
    pub fn open_fds(&self) -> usize {
        self.fds.open_count()
    }
}

/// Work the loop thread does for the application threads.
enum Ctl {
    Bind(Arc<Sock>, SocketAddrV4, mpsc::SyncSender<Result<(), Errno>>),
    Close(Arc<Sock>, mpsc::SyncSender<()>),
    Snapshot(mpsc::SyncSender<Snapshot>),
}

/// Counters, frame whereabouts and the rx-to-read latency at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub mib: Mib,
    pub device: DeviceStats,
    pub census: FrameCensus,
    pub loop_stats: LoopStats,
    /// Rx-to-read latency (ns) of the sampled datagrams the application
    /// threads have read so far (see [`Stack::rx_latency`]).
    pub rx_latency: LatencyHistogram,
}

struct Shared {
    fds: Mutex<FdTable>,
    ctl: Mutex<mpsc::Sender<Ctl>>,
    umem: Arc<Umem>,
    pool: Arc<crate::umem::FramePool>,
    tx_scheduled: Arc<ArrayQueue<Arc<Sock>>>,
    /// The stack's epoch, for the readers' side of the rx-to-read latency.
    epoch: Instant,
    rx_latency: SharedLatencyHistogram,
    rcvbuf: usize,
    sndbuf: usize,
    stop: AtomicBool,
    /// The loop thread is gone (stopped or panicked): calls fail, not hang.
    dead: AtomicBool,
    /// For the route check of `send_to`.
    cfg: crate::stack::StackConfig,
    /// IpOutNoRoutes, shared with the stack (application threads count it).
    out_no_routes: Arc<std::sync::atomic::AtomicU64>,
}

/// The stack with its loop on a thread of its own.
pub struct ThreadedStack<D: NetDevice + Send + 'static> {
    handle: StackHandle,
    thread: Option<JoinHandle<(Stack<D>, LoopStats)>>,
}

/// A handle for application threads: cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct StackHandle {
    shared: Arc<Shared>,
}

impl<D: NetDevice + Send + 'static> ThreadedStack<D> {
    /// Moves `stack` onto a new thread that polls it until [`Self::stop`].
    pub fn spawn(stack: Stack<D>) -> std::io::Result<ThreadedStack<D>> {
        let (tx, rx) = mpsc::channel::<Ctl>();
        let cfg = stack.cfg.clone();
        let shared = Arc::new(Shared {
            fds: Mutex::new(FdTable::new(cfg.max_fds)),
            ctl: Mutex::new(tx),
            umem: stack.umem.clone(),
            pool: stack.pool.clone(),
            tx_scheduled: stack.tx_scheduled.clone(),
            epoch: stack.epoch,
            rx_latency: SharedLatencyHistogram::new(),
            rcvbuf: cfg.rcvbuf,
            sndbuf: cfg.sndbuf,
            stop: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            out_no_routes: stack.out_no_routes.clone(),
            cfg,
        });
        let loop_shared = shared.clone();
        let thread = std::thread::Builder::new().name("xsknet-softirq".into()).spawn(move || {
            struct MarkDead(Arc<Shared>);
            impl Drop for MarkDead {
                fn drop(&mut self) {
                    self.0.dead.store(true, Ordering::SeqCst);
                }
            }
            let guard = MarkDead(loop_shared);
            let mut stack = stack;
            let mut stats = LoopStats::default();
            let mut idle_polls = 0u32;
            while !guard.0.stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let r = stack.poll();
                stats.record(r, t0.elapsed().as_nanos() as u64);
                // The softirq gives the CPU back: after handing readers a
                // batch, and when it keeps finding nothing, it yields, so that
                // an application thread sharing its core runs at once instead
                // of at the end of the loop's time slice. With the reader on
                // another core this is a cheap system call that returns at once.
                if r.rx > 0 {
                    idle_polls = 0;
                    std::thread::yield_now();
                } else if r.did_work() {
                    idle_polls = 0;
                } else {
                    idle_polls += 1;
                    if idle_polls >= 64 {
                        idle_polls = 0;
                        std::thread::yield_now();
                    }
                }
                while let Ok(c) = rx.try_recv() {
                    match c {
                        Ctl::Bind(sock, addr, reply) => {
                            let _ = reply.send(stack.hash_sock(&sock, protocol_of(&sock), addr));
                        }
                        Ctl::Close(sock, reply) => {
                            stack.unhash_sock(&sock, protocol_of(&sock));
                            let _ = reply.send(());
                        }
                        Ctl::Snapshot(reply) => {
                            let mut rx_latency = guard.0.rx_latency.snapshot();
                            rx_latency.merge(stack.rx_latency());
                            let _ = reply.send(Snapshot {
                                mib: stack.snmp(),
                                device: stack.device_stats(),
                                census: stack.frame_census(),
                                loop_stats: stats,
                                rx_latency,
                            });
                        }
                    }
                }
            }
            (stack, stats)
        })?;
        Ok(ThreadedStack { handle: StackHandle { shared }, thread: Some(thread) })
    }

    pub fn handle(&self) -> StackHandle {
        self.handle.clone()
    }

    /// Stops the loop and takes the stack back (for final counters). The
    /// latencies the application threads recorded are merged into the
    /// stack's (`Stack::rx_latency`).
    pub fn stop(mut self) -> std::thread::Result<(Stack<D>, LoopStats)> {
        self.handle.shared.stop.store(true, Ordering::SeqCst);
        let r = self.thread.take().expect("joined once").join().map(|(mut stack, stats)| {
            stack.rx_latency.merge(&self.handle.shared.rx_latency.snapshot());
            (stack, stats)
        });
        // Wake anyone still blocked so they see the loop is gone.
        let fds = self.handle.shared.fds.lock().unwrap_or_else(|e| e.into_inner());
        for (_, s) in fds.iter() {
            s.mark_closed();
        }
        r
    }
}

impl<D: NetDevice + Send + 'static> Drop for ThreadedStack<D> {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.handle.shared.stop.store(true, Ordering::SeqCst);
            let _ = t.join();
        }
    }
}

impl StackHandle {
    fn call<T>(&self, make: impl FnOnce(mpsc::SyncSender<T>) -> Ctl) -> Result<T, Errno> {
        if self.shared.dead.load(Ordering::SeqCst) {
            return Err(Errno::ESHUTDOWN);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.shared.ctl.lock().unwrap_or_else(|e| e.into_inner()).send(make(tx)).map_err(|_| Errno::ESHUTDOWN)?;
        rx.recv().map_err(|_| Errno::ESHUTDOWN)
    }

    fn sock(&self, fd: Fd) -> Result<Arc<Sock>, Errno> {
        self.shared.fds.lock().unwrap_or_else(|e| e.into_inner()).get(fd).cloned()
    }

    pub fn socket(&self, sock_type: SockType) -> Result<Fd, Errno> {
        let sock = Arc::new(Sock::new(
            sock_type,
            self.shared.rcvbuf,
            self.shared.sndbuf,
            self.shared.umem.frame_size() as usize,
        ));
        self.shared.fds.lock().unwrap_or_else(|e| e.into_inner()).alloc(sock)
    }

    pub fn bind(&self, fd: Fd, addr: SocketAddrV4) -> Result<(), Errno> {
        let sock = self.sock(fd)?;
        self.call(|reply| Ctl::Bind(sock, addr, reply))?
    }

    pub fn connect(&self, fd: Fd, addr: SocketAddrV4) -> Result<(), Errno> {
        let sock = self.sock(fd)?;
        if sock.local().is_none() {
            self.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
        }
        sock.set_remote(addr)
    }

    pub fn local_addr(&self, fd: Fd) -> Result<SocketAddrV4, Errno> {
        Ok(self.sock(fd)?.local().unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))
    }

    /// `recvfrom()`, blocking until a datagram arrives or `timeout` passes
    /// (`EAGAIN`, as with `SO_RCVTIMEO`). The loop thread wakes us.
    pub fn recv_from(&self, fd: Fd, buf: &mut [u8], timeout: Option<Duration>) -> Result<(usize, SocketAddrV4), Errno> {
        let sock = self.sock(fd)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            match sock_recv(&self.shared.umem, &sock, buf) {
                Ok(r) => {
                    sock.datagrams_read.fetch_add(1, Ordering::Relaxed);
                    if r.rx_ns != 0 {
                        self.shared.rx_latency.record(ns_since(self.shared.epoch).saturating_sub(r.rx_ns));
                    }
                    self.shared.pool.put(r.frame);
                    return Ok((r.len, r.peer));
                }
                Err(Errno::EAGAIN) => {
                    if sock.is_closed() || self.shared.dead.load(Ordering::SeqCst) {
                        return Err(Errno::EBADF);
                    }
                    if !wait_event(&[&sock.wq], deadline, || sock.readable()) {
                        return Err(Errno::EAGAIN);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `sendto()`, blocking while sndbuf is full.
    pub fn send_to(&self, fd: Fd, data: &[u8], dst: SocketAddrV4) -> Result<usize, Errno> {
        let sock = self.sock(fd)?;
        check_send(&sock, data.len(), dst, OutRoute::of(&self.shared.cfg, *dst.ip()), &self.shared.out_no_routes)?;
        if sock.local().is_none() {
            self.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
        }
        let mut frame = self.shared.pool.get().ok_or(Errno::ENOBUFS)?;
        loop {
            match sock_send(&self.shared.umem, &sock, &self.shared.tx_scheduled, frame, data, dst) {
                Ok(n) => return Ok(n),
                Err((Errno::EAGAIN, f)) => {
                    frame = f;
                    if self.shared.dead.load(Ordering::SeqCst) {
                        self.shared.pool.put(frame);
                        return Err(Errno::ESHUTDOWN);
                    }
                    wait_event(&[&sock.wq], Some(Instant::now() + Duration::from_millis(100)), || sock.writable());
                }
                Err((e, f)) => {
                    self.shared.pool.put(f);
                    return Err(e);
                }
            }
        }
    }

    pub fn close(&self, fd: Fd) -> Result<(), Errno> {
        let sock = self.shared.fds.lock().unwrap_or_else(|e| e.into_inner()).close(fd)?;
        if self.shared.dead.load(Ordering::SeqCst) {
            sock.mark_closed();
            let pool = &self.shared.pool;
            sock.purge(|skb| pool.put(skb.into_frame()));
            return Ok(());
        }
        self.call(|reply| Ctl::Close(sock, reply))
    }

    /// `poll()`: sleeps until a descriptor is ready or the timeout passes.
    pub fn poll(&self, fds: &mut [PollFd], timeout: Option<Duration>) -> usize {
        let socks: Vec<Option<Arc<Sock>>> = fds.iter().map(|p| self.sock(p.fd).ok()).collect();
        let queues: Vec<&crate::sock::WaitQueue> = socks.iter().flatten().map(|s| &s.wq).collect();
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut ready = 0;
        wait_event(&queues, deadline, || {
            ready = 0;
            for (p, s) in fds.iter_mut().zip(&socks) {
                p.revents = readiness(s.as_ref(), p.events);
                ready += usize::from(p.revents != 0);
            }
            ready > 0
        });
        ready
    }

    /// Counters, device statistics, the frame census and the rx-to-read
    /// latency, from the loop.
    pub fn snapshot(&self) -> Result<Snapshot, Errno> {
        self.call(Ctl::Snapshot)
    }

    /// Forgets the rx-to-read latencies recorded so far (to leave out a
    /// warm-up).
    pub fn reset_rx_latency(&self) {
        self.shared.rx_latency.reset();
    }

    pub fn open_fds(&self) -> usize {
        self.shared.fds.lock().unwrap_or_else(|e| e.into_inner()).open_count()
    }
}

#[cfg(test)]
mod tests {
    use super::copy_datagram;

    #[test]
    fn copy_datagram_copies_every_length() {
        let src: Vec<u8> = (0..100u8).collect();
        for n in 0..100 {
            let mut dst = [0xEEu8; 128];
            copy_datagram(&mut dst[..n], &src[..n]);
            assert_eq!(&dst[..n], &src[..n], "len {n}");
            assert!(dst[n..].iter().all(|&b| b == 0xEE), "len {n}: wrote past the end");
        }
    }
}
