//! The socket API: `socket`, `bind`, `connect`, `recvfrom`, `sendto`,
//! `close` and `poll`, one implementation in two ways to run.
//!
//! * **Run to completion**: methods on [`Stack`]. The application's thread
//!   drives the loop ([`Stack::poll`]) and its sockets. No locks, no
//!   cross-thread wake-ups; `recv_from` returns `EAGAIN` when nothing waits.
//! * **Threaded**: [`ThreadedStack`]. The loop runs on its own thread, as
//!   the softirq does; applications on other threads hold a [`StackHandle`].
//!   Every call that changes the stack's tables (`socket`, `bind`, `connect`,
//!   `close`, autobind) is carried to the loop thread, as a system call
//!   enters the kernel, and runs there as the very same `Stack` method. Data
//!   moves without the loop: a reader takes datagrams off the sock's
//!   lock-free receive queue and sleeps on its wait queue until the loop
//!   wakes it; a sender puts them on the write queue. Both ways share the
//!   functions that do that ([`sock_recvmsg`], [`sock_sendmsg`]), the send
//!   checks (`Proto::sendmsg_check`) and the fd table (its read view for
//!   other threads).
//!
//! Descriptors are small integers from the stack's fd table
//! (`crate::fdtable`), lowest free first, `EMFILE` past the limit. Errors are
//! Linux's errno values ([`Errno`]).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::errno::Errno;
use crate::eventpoll::{sock_poll, EpollEvent, EpollFd, EpollOp};
use crate::fdtable::{Fd, FdView};
use crate::handoff::{Blocked, Handoff};
use crate::ipv4::af_inet::sk_prot;
use crate::ipv4::ip_fragment::{frag_payload, PmtuCache, IP_RT_MIN_PMTU};
use crate::ipv4::tcp::info::tcp_get_info;
pub use crate::ipv4::tcp::info::TcpInfo;
use crate::ipv4::tcp::prot::{self as tcp_prot, Shutdown};
use crate::ipv4::tcp::{MAX_TCP_KEEPCNT, MAX_TCP_KEEPIDLE};
use crate::ipv4::udp::udp_send_mtu;
use crate::latency::{ns_since, tx_stamp, LatencyHistogram, SharedLatencyHistogram, StageLatency};
use crate::netdev_queue::NetdevQueue;
use crate::netdevice::{DeviceStats, NetDevice};
use crate::proto::ProtoCtx;
use crate::route::{OutRoute, Route};
use crate::skbuff::SkbChain;
use crate::skbuff::{Readers, SkBuff};
use crate::snmp::Mib;
use crate::sock::{wait_event_for, PmtuDisc, Sock, SockType, WaitFor, WaitQueue};
use crate::softirq::LoopStats;
use crate::stack::{Stack, TX_HEADROOM};
use crate::stream::CongAlgo;
use crate::stream::TcpState;
use crate::umem::FrameCensus;
use crate::umem::{Frame, FramePool, Umem};

pub use crate::ipv4::udp::MAX_UDP_PAYLOAD;

/// Readiness events (`poll(2)`): data to read.
pub const POLLIN: i16 = libc::POLLIN;
/// Room to write.
pub const POLLOUT: i16 = libc::POLLOUT;
/// An error is pending.
pub const POLLERR: i16 = libc::POLLERR;
/// The descriptor is not open.
pub const POLLNVAL: i16 = libc::POLLNVAL;
/// Shut down both ways, or a stream socket in CLOSE, a fresh one included
/// (`tcp_poll`).
pub const POLLHUP: i16 = libc::POLLHUP;
/// Nothing more will be received: the peer's FIN, `shutdown(SHUT_RD)`, or
/// the connection's end (`RCV_SHUTDOWN`). Reported only when asked for.
pub const POLLRDHUP: i16 = libc::POLLRDHUP;

/// A socket option (`setsockopt(2)`), with Linux's meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockOpt {
    /// `SO_RCVBUF`: a TCP connection's receive buffer, bytes (taken when it connects).
    RcvBuf(usize),
    /// `SO_SNDBUF`: a TCP connection's send buffer, bytes (taken when it connects).
    SndBuf(usize),
    /// `SO_RCVLOWAT`: a stream is readable once this many bytes wait.
    RcvLowat(usize),
    /// `SO_LINGER`: `Some(0)` makes `close()` reset the connection; other
    /// values are accepted and close in the background, as with `None`.
    Linger(Option<Duration>),
    /// `SO_REUSEADDR`: `bind()` to a port that only TIME-WAIT connections use.
    ReuseAddr(bool),
    /// `TCP_NODELAY`: no Nagle.
    TcpNodelay(bool),
    /// `TCP_CORK`: hold a partial segment while set (`TCP_NAGLE_CORK`): it
    /// goes once it is full, once our FIN rides on it, or once the cork is
    /// taken out, which pushes what waits (`__tcp_sock_set_cork`). Linux's
    /// `close()` or `shutdown()` of a corked socket sends the last data and
    /// the FIN in one segment.
    TcpCork(bool),
    /// `SO_BUSY_POLL`: how long a blocking call on the socket spins before
    /// it sleeps (threaded stacks; `StackConfig::busy_read` is the default).
    BusyPoll(Duration),
    /// `IP_MTU_DISCOVER`: DF and the largest send of a datagram socket
    /// ([`PmtuDisc`]; `IP_PMTUDISC_WANT` by default).
    MtuDiscover(PmtuDisc),
    /// `SO_KEEPALIVE`: probe an idle connection (`tcp_keepalive_timer`);
    /// accepted without effect on a datagram socket, as Linux does.
    KeepAlive(bool),
    /// `TCP_KEEPIDLE`: idle seconds before the first probe, 1 to 32767
    /// (`tcp_keepalive_time`, 7200, by default).
    KeepIdle(u32),
    /// `TCP_KEEPINTVL`: seconds between probes, 1 to 32767 (75 by default).
    KeepIntvl(u32),
    /// `TCP_KEEPCNT`: unanswered probes before the connection is reset, 1
    /// to 127 (9 by default).
    KeepCnt(u32),
    /// `TCP_CONGESTION`: the congestion-control algorithm ([`CongAlgo`];
    /// [`StackConfig::tcp_congestion`], CUBIC, by default). On a connection
    /// it starts afresh (`tcp_reinit_congestion_control`).
    Congestion(CongAlgo),
    /// `TCP_USER_TIMEOUT`: milliseconds that sent data may stay
    /// unacknowledged (or keepalive probes unanswered) before the
    /// connection fails with `ETIMEDOUT`; 0 (the default) leaves it to
    /// `tcp_retries2` and `TCP_KEEPCNT`. At most `i32::MAX`.
    UserTimeout(u32),
    /// `SO_MAX_PACING_RATE`: the most bytes per second a TCP connection sends at
    /// (`sk_max_pacing_rate`); any value but `u64::MAX` (`~0`, no cap) also makes the
    /// connection pace itself (`SK_PACING_NEEDED`, net/ipv4/tcp_output.c internal pacing)
    /// at `min(this, sk_pacing_rate)`. Accepted without effect on a datagram socket.
    MaxPacingRate(u64),
    /// `TCP_QUICKACK`: `false` enters interactive ("pingpong") mode, in which
    /// the ACK of received data waits for the delayed-ACK timer (40 ms at
    /// first) so that the reply the application is about to send carries it,
    /// as HAProxy asks of Linux for an HTTP connection it has just accepted;
    /// `true` leaves that mode and sends an ACK owed for data the
    /// application has read (`__tcp_sock_set_quickack`, net/ipv4/tcp.c). The
    /// mode is left again when a delayed ACK fires without a reply to carry
    /// it, as in Linux: the option is not permanent. Set before `connect()`,
    /// the ACK of the SYN-ACK waits to ride on the first data
    /// (`tcp_rcv_synsent_state_process`, "save one ACK"). Set on a listener
    /// after `listen()` (which resets it, `inet_csk_delack_init`), its
    /// connections start in the mode (`sk_clone_lock` copies `icsk_ack`),
    /// so that even a request that comes before `accept()` is answered by
    /// one segment: HAProxy's `tcp-smart-accept` sets it so.
    TcpQuickAck(bool),
}

impl SockOpt {
    /// Whether the option changes when a connection's keepalive timer is due
    /// (`tcp_set_keepalive`, `TCP_KEEPIDLE`'s re-arm).
    fn rearms_keepalive(self) -> bool {
        matches!(self, SockOpt::KeepAlive(_) | SockOpt::KeepIdle(_))
    }

    /// Whether the loop must act on a connection when the option changes.
    fn needs_loop(self) -> bool {
        self.rearms_keepalive()
            || matches!(self, SockOpt::Congestion(_) | SockOpt::MaxPacingRate(_) | SockOpt::TcpQuickAck(_))
    }
}

/// One entry of a `poll` call (`struct pollfd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollFd {
    /// The descriptor.
    pub fd: Fd,
    /// The events asked for (`POLLIN`, `POLLOUT`).
    pub events: i16,
    /// The events that happened, set by `poll`.
    pub revents: i16,
}

impl PollFd {
    /// An entry asking for `events` on `fd`.
    pub fn new(fd: Fd, events: i16) -> PollFd {
        PollFd { fd, events, revents: 0 }
    }
}

/// A datagram taken off a receive queue by [`sock_recvmsg`].
pub(crate) struct Received {
    /// Bytes copied (the datagram, truncated to the buffer).
    pub(crate) len: usize,
    /// Who sent it.
    pub(crate) peer: SocketAddrV4,
    /// Its buffer, whose frames the caller frees (`SkBuff::free`).
    pub(crate) skb: SkBuff,
    /// Its rx stamp, 0 if not sampled.
    pub(crate) rx_ns: u64,
}

/// `sock_recvmsg` for a datagram: takes the pending error, else copies the
/// oldest datagram into `buf` (truncating, as `recvfrom` does without
/// `MSG_TRUNC`: the rest of the datagram is discarded) and gives back its
/// buffer. A datagram of several frames (reassembled) is copied across them
/// (`skb_copy_datagram_msg`).
#[inline]
pub(crate) fn sock_recvmsg(umem: &Umem, sock: &Sock, buf: &mut [u8]) -> Result<Received, Errno> {
    if let Some(e) = sock.take_err() {
        return Err(e);
    }
    let skb = sock.dequeue_rcv().ok_or(Errno::EAGAIN)?;
    let len = if skb.is_chained() {
        skb.copy_to(umem, buf)
    } else {
        let data = skb.data(umem);
        let len = data.len().min(buf.len());
        copy_datagram(&mut buf[..len], &data[..len]);
        len
    };
    Ok(Received { len, peer: skb.peer(), rx_ns: skb.tstamp, skb })
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

/// The checks of a send, before a frame is taken for it: the protocol's
/// (`Proto::sendmsg_check`) on the output route to `dst`. A send refused for
/// want of a route is counted in `no_routes` (IpOutNoRoutes).
#[inline]
fn sendmsg_check(
    sock: &Sock,
    len: usize,
    dst: SocketAddrV4,
    route: &Route,
    mtu: usize,
    no_routes: &AtomicU64,
) -> Result<(), Errno> {
    let out = route.output(*dst.ip());
    let r = (sk_prot(sock).sendmsg_check)(sock, len, dst, out, mtu);
    if out == OutRoute::NoRoute && r == Err(Errno::ENETUNREACH) {
        no_routes.fetch_add(1, Ordering::Relaxed);
    }
    r
}

/// Where a send takes its frames from: the loop's cache ([`NetdevQueue`],
/// run to completion) or the shared free list (application threads).
pub(crate) trait FrameSource {
    fn alloc(&mut self) -> Option<Frame>;
    fn free(&mut self, frame: Frame);
    fn umem(&self) -> &Umem;
}

impl FrameSource for NetdevQueue {
    fn alloc(&mut self) -> Option<Frame> {
        self.alloc_frame()
    }
    fn free(&mut self, frame: Frame) {
        self.free_frame(frame);
    }
    fn umem(&self) -> &Umem {
        NetdevQueue::umem(self)
    }
}

/// The shared free list and its UMEM.
struct PoolSource<'a>(&'a Umem, &'a FramePool);

impl FrameSource for PoolSource<'_> {
    fn alloc(&mut self) -> Option<Frame> {
        self.1.get()
    }
    fn free(&mut self, frame: Frame) {
        self.1.put(frame);
    }
    fn umem(&self) -> &Umem {
        self.0
    }
}

/// The buffer of a datagram to send: `data` copied after the headroom of
/// one frame when the IP datagram fits `mtu`, else laid out in fragments
/// (`__ip_append_data`, [`ip_append_fragments`]). `ENOBUFS` when no frame is free.
#[inline]
pub(crate) fn sock_alloc_send_skb(
    src: &mut impl FrameSource,
    data: &[u8],
    dst: SocketAddrV4,
    mtu: usize,
) -> Result<SkBuff, Errno> {
    if data.len() + UDP_IP_HEADERS <= mtu {
        let mut frame = src.alloc().ok_or(Errno::ENOBUFS)?;
        src.umem().frame_mut(&mut frame)[TX_HEADROOM..TX_HEADROOM + data.len()].copy_from_slice(data);
        return Ok(SkBuff::new(frame, TX_HEADROOM, data.len(), dst));
    }
    ip_append_fragments(src, data, dst, mtu)
}

/// The largest IP datagram a send lays out in one frame of `frame_size`
/// bytes: its payload (UDP header included) from [`TX_HEADROOM`] to the
/// frame's end, and the IP header. A datagram within the path MTU but over
/// this goes out in fragments of this size: xsknet does not send AF_XDP
/// multi-buffer packets yet (docs/jumbo.md), and never cuts a datagram.
#[inline]
pub fn tx_frame_mtu(frame_size: u32) -> usize {
    frame_size as usize - TX_HEADROOM + crate::wire::ipv4::MIN_HEADER_LEN
}

/// IPv4 and UDP headers, bytes.
const UDP_IP_HEADERS: usize = crate::wire::ipv4::MIN_HEADER_LEN + crate::wire::udp::HEADER_LEN;

/// A datagram larger than `mtu` laid out in fragments: one frame per
/// fragment, each piece at the headroom, the first `frag_payload(mtu) - 8`
/// bytes long (the UDP header goes in front of it), the others
/// `frag_payload(mtu)`, the last what is left. All or nothing: if a frame is
/// missing, those taken go back and the send fails with `ENOBUFS`, so no
/// partial datagram ever reaches the wire.
#[cold]
fn ip_append_fragments(
    src: &mut impl FrameSource,
    data: &[u8],
    dst: SocketAddrV4,
    mtu: usize,
) -> Result<SkBuff, Errno> {
    let fp = frag_payload(mtu);
    let first = fp - crate::wire::udp::HEADER_LEN;
    let fill = |src: &mut dyn FrameSource, bytes: &[u8]| -> Option<Frame> {
        let mut frame = src.alloc()?;
        src.umem().frame_mut(&mut frame)[TX_HEADROOM..TX_HEADROOM + bytes.len()].copy_from_slice(bytes);
        Some(frame)
    };
    let head = fill(src, &data[..first]).ok_or(Errno::ENOBUFS)?;
    let mut chain = SkbChain::new(src.umem(), head, TX_HEADROOM, first);
    for bytes in data[first..].chunks(fp) {
        match fill(src, bytes) {
            Some(frame) => chain.push(src.umem(), frame, TX_HEADROOM, bytes.len()),
            None => {
                let mut freed = Vec::new();
                chain.free(src.umem(), |f| freed.push(f));
                freed.into_iter().for_each(|f| src.free(f));
                return Err(Errno::ENOBUFS);
            }
        }
    }
    Ok(chain.finish(dst))
}

/// `sock_sendmsg` for a datagram: queues `skb` on the sock's write queue with
/// its send stamp `tstamp` (`crate::latency::tx_stamp`, 0: not sampled) and
/// schedules the sock for the loop. Hands the buffer back when sndbuf is full
/// (`EAGAIN`).
#[inline]
pub(crate) fn sock_sendmsg(
    sock: &Arc<Sock>,
    scheduled: &ArrayQueue<Arc<Sock>>,
    mut skb: SkBuff,
    tstamp: u64,
) -> Result<usize, SkBuff> {
    let len = skb.len();
    skb.tstamp = tstamp;
    sock.queue_xmit(skb)?;
    Sock::schedule_xmit(sock, scheduled);
    Ok(len)
}

/// The `poll(2)` events of `sock` among `events` (`POLLNVAL` for none).
fn readiness(sock: Option<&Sock>, events: i16) -> i16 {
    match sock {
        None => POLLNVAL,
        // poll(2)'s bits are epoll's for these four (`POLLRDHUP` too).
        Some(s) => (sock_poll(s) as i16) & (events | POLLERR | POLLHUP),
    }
}

/// The socket calls, run to completion on the stack's own thread.
impl<D: NetDevice> Stack<D> {
    /// `socket(AF_INET, type, 0)`: the lowest free descriptor. Its sock is
    /// read only through this `Stack` (no atomic read-modify-write per read).
    ///
    /// # Errors
    ///
    /// `EMFILE` past the descriptor limit.
    pub fn socket(&mut self, sock_type: SockType) -> Result<Fd, Errno> {
        self.socket_for(sock_type, Readers::Exclusive)
    }

    fn socket_for(&mut self, sock_type: SockType, readers: Readers) -> Result<Fd, Errno> {
        let truesize = self.umem().frame_size() as usize;
        let sock = Arc::new(Sock::with_readers(sock_type, self.cfg.rcvbuf, self.cfg.sndbuf, truesize, readers));
        sock.wq.set_busy_poll(self.cfg.busy_read);
        if let Some(t) = sock.tcp() {
            t.set_congestion(self.cfg.tcp_congestion);
            if self.cfg.tcp_max_pacing_rate != u64::MAX {
                t.set_max_pacing_rate(self.cfg.tcp_max_pacing_rate);
            }
        }
        self.files.alloc(sock)
    }

    /// `bind()`: port 0 picks an ephemeral port; the address must be ours or
    /// 0.0.0.0.
    ///
    /// # Errors
    ///
    /// `EBADF` for a descriptor not open, `EINVAL` if bound already,
    /// `EADDRNOTAVAIL` for an address not ours, `EADDRINUSE` for a port taken.
    pub fn bind(&mut self, fd: Fd, addr: SocketAddrV4) -> Result<(), Errno> {
        let sock = self.files.get(fd)?.clone();
        if let Some(t) = sock.tcp() {
            // Connections (TIME-WAIT too, unless SO_REUSEADDR) keep their
            // port after the socket that made them is closed.
            let reuse = t.reuseaddr.load(Ordering::Relaxed);
            let port = addr.port();
            if sock.local().is_none()
                && port != 0
                && if reuse { self.net.tcp.port_in_use_live(port) } else { self.net.tcp.port_in_use(port) }
            {
                return Err(Errno::EADDRINUSE);
            }
        }
        self.socks.hash(&sock, sock.protocol, addr, self.cfg.addr)
    }

    /// The time a socket call happens at: the last poll's (so that calls and
    /// timers share one clock, virtual in tests), or now before any poll.
    fn call_time(&self) -> Instant {
        self.napi.last_poll().unwrap_or_else(Instant::now)
    }

    /// What a protocol's socket call borrows.
    fn proto_ctx(&mut self) -> ProtoCtx<'_> {
        let now = self.call_time();
        ProtoCtx { net: &mut self.net, q: self.napi.queue_mut(), socks: &mut self.socks, now }
    }

    /// `listen()`: the stream socket takes connections; at most `backlog`
    /// (capped at 4096, `net.core.somaxconn`) wait to be accepted. An
    /// unbound socket gets an ephemeral port.
    ///
    /// # Errors
    ///
    /// `EBADF`; `EOPNOTSUPP` on a datagram socket; `EINVAL` when connected;
    /// `EADDRINUSE` when the port has a listener already.
    pub fn listen(&mut self, fd: Fd, backlog: i32) -> Result<(), Errno> {
        let sock = self.files.get(fd)?.clone();
        tcp_prot::tcp_listen(&mut self.proto_ctx(), &sock, backlog)
    }

    /// `accept()`, non-blocking: the oldest connection whose handshake is
    /// complete, as a new descriptor, and the peer's address.
    ///
    /// # Errors
    ///
    /// `EBADF`; `EINVAL` when not listening; `EAGAIN` when no connection
    /// waits; `EMFILE` past the descriptor limit (the connection stays queued).
    pub fn accept(&mut self, fd: Fd) -> Result<(Fd, SocketAddrV4), Errno> {
        let sock = self.files.get(fd)?;
        let tsk = sock.tcp().ok_or(Errno::EOPNOTSUPP)?;
        if tsk.stream.state() != TcpState::Listen {
            return Err(Errno::EINVAL);
        }
        if tsk.accept_backlog() == 0 {
            return Err(Errno::EAGAIN);
        }
        if self.files.open_count() >= self.files.max_fds() {
            return Err(Errno::EMFILE);
        }
        let child = tsk.accept_queue().pop().ok_or(Errno::EAGAIN)?;
        let peer = child.remote().unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        let fd = self.files.alloc(child)?;
        Ok((fd, peer))
    }

    /// `shutdown()` of a stream: `Write` sends our FIN after the data,
    /// `Read` makes reads return 0.
    ///
    /// # Errors
    ///
    /// `EBADF`; `EOPNOTSUPP` on a datagram socket; `ENOTCONN` when not connected.
    pub fn shutdown(&mut self, fd: Fd, how: Shutdown) -> Result<(), Errno> {
        let sock = self.files.get(fd)?.clone();
        tcp_prot::tcp_shutdown(&mut self.proto_ctx(), &sock, how)
    }

    /// `setsockopt()`.
    ///
    /// # Errors
    ///
    /// `EBADF`; `ENOPROTOOPT` for a TCP option on a datagram socket.
    pub fn setsockopt(&mut self, fd: Fd, opt: SockOpt) -> Result<(), Errno> {
        let sock = self.files.get(fd)?;
        set_sockopt(sock, opt)?;
        if opt == SockOpt::TcpCork(false) {
            // __tcp_sock_set_cork(sk, false): tcp_push_pending_frames.
            Sock::schedule_xmit(sock, &self.tx_scheduled);
        }
        if opt.needs_loop() {
            if let Some(id) = sock.tcp().and_then(|t| t.cb()) {
                let now = self.call_time();
                match opt {
                    SockOpt::Congestion(_) => tcp_prot::tcp_reinit_congestion_control(&mut self.net, id, now),
                    SockOpt::MaxPacingRate(_) => tcp_prot::tcp_set_max_pacing_rate(&mut self.net, id),
                    SockOpt::TcpQuickAck(on) => {
                        if tcp_prot::tcp_set_quickack(&mut self.net, id, on) {
                            Sock::schedule_xmit(sock, &self.tx_scheduled);
                        }
                    }
                    _ => tcp_prot::tcp_keepalive_rearm(&mut self.net, id, matches!(opt, SockOpt::KeepIdle(_)), now),
                }
            }
        }
        Ok(())
    }

    /// `getsockopt(IP_MTU_DISCOVER)`.
    ///
    /// # Errors
    ///
    /// `EBADF`.
    pub fn mtu_discover(&self, fd: Fd) -> Result<PmtuDisc, Errno> {
        Ok(self.files.get(fd)?.pmtudisc())
    }

    /// `getsockopt(IP_MTU)`: the path MTU to a connected socket's peer (the
    /// learned one, else the device's), bytes of IP datagram.
    ///
    /// # Errors
    ///
    /// `EBADF`; `ENOTCONN` when not connected (no cached route, as Linux).
    pub fn ip_mtu(&self, fd: Fd) -> Result<usize, Errno> {
        let sock = self.files.get(fd)?;
        let peer = sock.remote().ok_or(Errno::ENOTCONN)?;
        Ok(self.net.pmtu.get(*peer.ip(), self.net.mtu, self.call_time()).mtu)
    }

    /// `getsockopt(TCP_INFO)`: the connection's state, timers and counts.
    ///
    /// # Errors
    ///
    /// `EBADF`; `EOPNOTSUPP` on a datagram socket.
    pub fn tcp_info(&self, fd: Fd) -> Result<TcpInfo, Errno> {
        let sock = self.files.get(fd)?;
        let tsk = sock.tcp().ok_or(Errno::EOPNOTSUPP)?;
        let state = tsk.stream.state();
        Ok(tcp_get_info(state, tsk.cb().and_then(|id| self.net.tcp.get(id))))
    }

    /// On the way out (the application has closed its sockets): polls until
    /// every TCP connection has finished (its data and FIN acknowledged and
    /// the peer's FIN in; TIME-WAIT does not count) or `timeout` passes, then
    /// resets those still open, so that no peer is left waiting on a stack
    /// that is gone. Returns how many were reset.
    pub fn finish_tcp(&mut self, timeout: Duration) -> usize {
        // Unfinished: a connection with a control block, or an orphan in
        // FIN-WAIT-2 whose peer has not closed yet (the kernel would keep it
        // after the process exits and answer the peer's FIN; we cannot).
        let unfinished = |net: &crate::net::Net| {
            net.tcp.iter().any(|(_, cb)| cb.state != TcpState::Listen)
                || net.tcp.tw.values().any(|tw| tw.substate == TcpState::FinWait2)
        };
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            self.poll(now);
            if !unfinished(&self.net) || now >= deadline {
                break;
            }
        }
        let ids: Vec<_> =
            self.net.tcp.iter().filter(|(_, cb)| cb.state != TcpState::Listen).map(|(id, _)| id).collect();
        let now = self.call_time();
        let umem = self.napi.queue().umem().clone();
        for &id in &ids {
            crate::ipv4::tcp::prot::tcp_abort(&mut self.net, self.napi.queue_mut(), &umem, id, now);
        }
        let fin_wait2 = crate::ipv4::tcp::prot::tcp_reset_fin_wait2(&mut self.net, self.napi.queue_mut(), &umem, now);
        self.poll(Instant::now());
        ids.len() + fin_wait2
    }

    /// TCP sockets by state, TIME-WAIT included (what `ss -s` counts).
    pub fn tcp_states(&self) -> Vec<(TcpState, usize)> {
        self.net.tcp.count_by_state()
    }

    /// Binds an unbound sock to an ephemeral port (`inet_autobind`).
    fn autobind(&mut self, fd: Fd) -> Result<(), Errno> {
        let sock = self.files.get(fd)?;
        if sock.local().is_some() {
            return Ok(());
        }
        let sock = sock.clone();
        // inet_send_prepare() reports a failed autobind as EAGAIN.
        self.socks
            .hash(&sock, sock.protocol, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), self.cfg.addr)
            .map_err(|_| Errno::EAGAIN)
    }

    /// `connect()`: a datagram socket autobinds and sets its default
    /// destination (port unreachable errors from it come back as
    /// `ECONNREFUSED`); a stream socket sends its SYN and returns
    /// `EINPROGRESS`, as a non-blocking socket does: poll for `POLLOUT`, then
    /// [`Stack::socket_error`] says whether it connected.
    ///
    /// # Errors
    ///
    /// `EBADF` for a descriptor not open, `EAGAIN` when no ephemeral port is
    /// free (UDP), `EINPROGRESS` (TCP), and the protocol's errors.
    pub fn connect(&mut self, fd: Fd, addr: SocketAddrV4) -> Result<(), Errno> {
        if self.files.get(fd)?.sock_type == SockType::Dgram {
            self.autobind(fd)?;
        }
        let sock = self.files.get(fd)?.clone();
        (sk_prot(&sock).connect)(&mut self.proto_ctx(), &sock, addr)
    }

    /// `getsockname()`: 0.0.0.0:0 while unbound.
    ///
    /// # Errors
    ///
    /// `EBADF` for a descriptor not open.
    pub fn local_addr(&self, fd: Fd) -> Result<SocketAddrV4, Errno> {
        let sock = self.files.get(fd)?;
        Ok(sock.local().unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))
    }

    /// `recvfrom()`, non-blocking: copies the oldest datagram into `buf`
    /// (truncated to it) and returns its length and sender.
    ///
    /// # Errors
    ///
    /// `EAGAIN` when nothing waits (poll first, or drive the loop with
    /// [`Stack::poll`]), `EBADF` for a descriptor not open, or the sock's
    /// pending error (`ECONNREFUSED`).
    #[inline]
    pub fn recv_from(&mut self, fd: Fd, buf: &mut [u8]) -> Result<(usize, SocketAddrV4), Errno> {
        let sock = self.files.get(fd)?;
        let r = sock_recvmsg(self.napi.queue().umem(), sock, buf)?;
        self.net.mib.UdpInDatagrams += 1;
        if r.rx_ns != 0 {
            self.record_rx_latency(r.rx_ns);
        }
        let q = self.napi.queue_mut();
        if r.skb.is_chained() {
            let umem = q.umem().clone();
            r.skb.free(&umem, |f| q.free_frame(f));
        } else {
            q.free_frame(r.skb.into_frame());
        }
        Ok((r.len, r.peer))
    }

    /// Reads the oldest datagram in place, without a copy: `f` sees the
    /// payload in its UMEM frame and the sender; the frame is recycled when
    /// `f` returns. A datagram of several frames (reassembled) is first
    /// copied into a buffer the stack keeps for them (64 KiB, made on the
    /// first such datagram), and `f` sees that.
    ///
    /// # Errors
    ///
    /// As [`Stack::recv_from`].
    #[inline]
    pub fn recv_with<R>(&mut self, fd: Fd, f: impl FnOnce(&[u8], SocketAddrV4) -> R) -> Result<R, Errno> {
        let sock = self.files.get(fd)?;
        if let Some(e) = sock.take_err() {
            return Err(e);
        }
        let skb = sock.dequeue_rcv().ok_or(Errno::EAGAIN)?;
        self.net.mib.UdpInDatagrams += 1;
        if skb.tstamp != 0 {
            self.record_rx_latency(skb.tstamp);
        }
        if skb.is_chained() {
            let umem = self.napi.queue().umem().clone();
            let mut scratch = std::mem::take(&mut self.chain_scratch);
            scratch.resize(crate::ipv4::ip_fragment::IP_MAX_MTU, 0);
            let n = skb.copy_to(&umem, &mut scratch);
            let r = f(&scratch[..n], skb.peer());
            self.chain_scratch = scratch;
            let q = self.napi.queue_mut();
            skb.free(&umem, |fr| q.free_frame(fr));
            return Ok(r);
        }
        let r = f(skb.data(self.napi.queue().umem()), skb.peer());
        self.napi.queue_mut().free_frame(skb.into_frame());
        Ok(r)
    }

    /// `sendto()`, non-blocking. An unbound socket is bound to an ephemeral
    /// port first, as Linux autobinds (`inet_send_prepare`), then the
    /// protocol's checks run, then sndbuf's.
    ///
    /// # Errors
    ///
    /// `EBADF`; `EMSGSIZE` past [`MAX_UDP_PAYLOAD`]; `EINVAL` for port 0 or
    /// 0.0.0.0; `ENETUNREACH` with no route (counted as IpOutNoRoutes);
    /// `EACCES` for a broadcast address; the sock's pending error; `EAGAIN`
    /// when sndbuf is full; `ENOBUFS` when no UMEM frame is free.
    #[inline]
    pub fn send_to(&mut self, fd: Fd, data: &[u8], dst: SocketAddrV4) -> Result<usize, Errno> {
        self.autobind(fd)?;
        // Borrowed, not cloned: an `Arc` clone and drop are two locked
        // instructions per datagram.
        let sock = self.files.get(fd)?;
        // No path MTU is below min_pmtu: a small datagram skips the lookup.
        let mtu = if data.len() + UDP_IP_HEADERS <= IP_RT_MIN_PMTU {
            self.net.mtu
        } else {
            let now = self.napi.last_poll().unwrap_or_else(Instant::now);
            let frame_mtu = tx_frame_mtu(self.napi.queue().umem().frame_size());
            udp_send_mtu(self.net.mtu, &self.net.pmtu, sock, *dst.ip(), now).min(frame_mtu)
        };
        sendmsg_check(sock, data.len(), dst, &self.net.route, mtu, &self.out_no_routes)?;
        if !sock.sndbuf_has_room() {
            return Err(Errno::EAGAIN);
        }
        let tstamp = tx_stamp(self.cfg.rx_latency_sample, self.napi.epoch());
        let q = self.napi.queue_mut();
        let skb = sock_alloc_send_skb(q, data, dst, mtu)?;
        sock_sendmsg(sock, &self.tx_scheduled, skb, tstamp).map_err(|skb| {
            if skb.is_chained() {
                let umem = q.umem().clone();
                skb.free(&umem, |f| q.free_frame(f));
            } else {
                q.free_frame(skb.into_frame());
            }
            Errno::EAGAIN
        })
    }

    /// `send()` on a connected socket: for a stream, what fits in the send
    /// buffer (a partial count when it fills).
    ///
    /// # Errors
    ///
    /// `EDESTADDRREQ` when a datagram socket is not connected, else as
    /// [`Stack::send_to`]; for a stream `EAGAIN` when the send buffer is full,
    /// while connecting, `EPIPE` when not connected or shut down for writing,
    /// and the pending error (`ECONNRESET`).
    pub fn send(&mut self, fd: Fd, data: &[u8]) -> Result<usize, Errno> {
        let sock = self.files.get(fd)?;
        if sock.sock_type == SockType::Stream {
            let tstamp = tx_stamp(self.cfg.rx_latency_sample, self.napi.epoch());
            return tcp_prot::tcp_sendmsg(sock, &self.tx_scheduled, data, tstamp);
        }
        let dst = sock.remote().ok_or(Errno::EDESTADDRREQ)?;
        self.send_to(fd, data, dst)
    }

    /// `recv()`: a stream's waiting bytes (0 at its end), or a datagram
    /// without its sender.
    ///
    /// # Errors
    ///
    /// `EAGAIN` when nothing waits; `EBADF`; `ENOTCONN` on a stream never
    /// connected; the pending error (`ECONNRESET`, `ETIMEDOUT`, `ECONNREFUSED`).
    pub fn recv(&mut self, fd: Fd, buf: &mut [u8]) -> Result<usize, Errno> {
        let sock = self.files.get(fd)?;
        if sock.sock_type == SockType::Stream {
            let (n, rx_ns) = tcp_prot::tcp_recvmsg(sock, &self.tx_scheduled, buf)?;
            if rx_ns != 0 {
                self.record_rx_latency(rx_ns);
            }
            return Ok(n);
        }
        self.recv_from(fd, buf).map(|(n, _)| n)
    }

    /// `getsockopt(SO_ERROR)`: takes the pending error, or else the soft
    /// error (`sk_err_soft`: a TCP connection's last ICMP error), if any.
    ///
    /// # Errors
    ///
    /// `EBADF` for a descriptor not open.
    pub fn socket_error(&mut self, fd: Fd) -> Result<Option<Errno>, Errno> {
        Ok(self.files.get(fd)?.take_so_error())
    }

    /// `getpeername()`.
    ///
    /// # Errors
    ///
    /// `EBADF`; `ENOTCONN` when not connected.
    pub fn peer_addr(&self, fd: Fd) -> Result<SocketAddrV4, Errno> {
        self.files.get(fd)?.remote().ok_or(Errno::ENOTCONN)
    }

    /// `close()`: frees the descriptor, takes the sock out of the socket
    /// tables and frees every frame it held. A TCP connection closes as
    /// `tcp_close` closes it: a FIN after the data, finishing on its own
    /// (or a RST when unread data is lost, or with `SO_LINGER` 0).
    ///
    /// # Errors
    ///
    /// `EBADF` for a descriptor not open.
    pub fn close(&mut self, fd: Fd) -> Result<(), Errno> {
        let sock = self.files.close(fd)?;
        self.epolls.forget(fd);
        self.socks.unhash(&sock, sock.protocol);
        if sock.sock_type == SockType::Stream {
            tcp_prot::tcp_close(&mut self.proto_ctx(), &sock);
        }
        sock.mark_closed();
        if let Some(u) = sock.udp() {
            self.closed_datagrams_read += u.datagrams_read.swap(0, Ordering::Relaxed);
        }
        let q = self.napi.queue_mut();
        let umem = q.umem().clone();
        sock.purge(|skb| skb.free(&umem, |f| q.free_frame(f)));
        Ok(())
    }

    /// `poll()`: drives the loop until a descriptor is ready or the timeout
    /// passes (`None`: forever, `Some(0)`: just look). Returns how many are
    /// ready; a descriptor not open reports `POLLNVAL`.
    pub fn poll_fds(&mut self, fds: &mut [PollFd], timeout: Option<Duration>) -> usize {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let mut ready = 0;
            for p in fds.iter_mut() {
                p.revents = readiness(self.files.get(p.fd).ok().map(|s| &**s), p.events);
                ready += usize::from(p.revents != 0);
            }
            let now = Instant::now();
            if ready > 0 || deadline.is_some_and(|d| now >= d) {
                return ready;
            }
            self.poll(now);
        }
    }

    /// Descriptors open now.
    pub fn open_fds(&self) -> usize {
        self.files.open_count()
    }

    /// `epoll_create1(0)`: a new epoll instance ([`crate::eventpoll`]), in
    /// the lowest free slot of the stack's table of them.
    pub fn epoll_create(&mut self) -> EpollFd {
        self.epolls.create()
    }

    /// `epoll_ctl(2)`: watch `fd` for `event.events` (`EPOLLIN`,
    /// `EPOLLOUT`, `EPOLLRDHUP`; `EPOLLET`, `EPOLLONESHOT`), handing back
    /// `event.data` with each event; change that, or stop watching.
    ///
    /// # Errors
    ///
    /// `EBADF` when `ep` or `fd` is not open; `EEXIST` to add an `fd` twice;
    /// `ENOENT` to change or remove an `fd` not added; `EINVAL` for events
    /// not listed above.
    pub fn epoll_ctl(&mut self, ep: EpollFd, op: EpollOp, fd: Fd, event: EpollEvent) -> Result<(), Errno> {
        let e = self.epolls.get_mut(ep)?;
        let sock = self.files.get(fd)?;
        e.ctl(op, fd, sock, event)
    }

    /// `epoll_wait(2)`: drives the loop until a watched descriptor is ready
    /// or the timeout passes (`None`: forever, `Some(0)`: just look), and
    /// fills `events` with what is ready; returns how many. Only the
    /// descriptors whose sock was woken since they were last found not
    /// ready are looked at, not every watched one.
    ///
    /// # Errors
    ///
    /// `EBADF` when `ep` is not open; `EINVAL` when `events` is empty
    /// (`maxevents` ≤ 0).
    pub fn epoll_wait(
        &mut self,
        ep: EpollFd,
        events: &mut [EpollEvent],
        timeout: Option<Duration>,
    ) -> Result<usize, Errno> {
        if events.is_empty() {
            return Err(Errno::EINVAL);
        }
        let n = self.epolls.get_mut(ep)?.send_events(events);
        if n > 0 || timeout == Some(Duration::ZERO) {
            // Just a look (a server's turn in its own loop): no clock read.
            return Ok(n);
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(0);
            }
            self.poll(now);
            let n = self.epolls.get_mut(ep)?.send_events(events);
            if n > 0 {
                return Ok(n);
            }
        }
    }

    /// Closes the epoll instance `ep` (`close(epfd)`): what it watched is
    /// watched no more.
    ///
    /// # Errors
    ///
    /// `EBADF` when `ep` is not open.
    pub fn epoll_close(&mut self, ep: EpollFd) -> Result<(), Errno> {
        self.epolls.close(ep)
    }
}

/// The calls a [`StackHandle`] carries to the loop thread: the same
/// [`Stack`] methods, behind an object-safe face so that the handle does not
/// depend on the device type.
trait SocketCalls {
    fn socket_shared(&mut self, sock_type: SockType) -> Result<Fd, Errno>;
    fn bind(&mut self, fd: Fd, addr: SocketAddrV4) -> Result<(), Errno>;
    fn autobind(&mut self, fd: Fd) -> Result<(), Errno>;
    fn connect(&mut self, fd: Fd, addr: SocketAddrV4) -> Result<(), Errno>;
    fn close(&mut self, fd: Fd) -> Result<(), Errno>;
    fn listen(&mut self, fd: Fd, backlog: i32) -> Result<(), Errno>;
    fn accept(&mut self, fd: Fd) -> Result<(Fd, SocketAddrV4), Errno>;
    fn shutdown(&mut self, fd: Fd, how: Shutdown) -> Result<(), Errno>;
    fn tcp_info(&self, fd: Fd) -> Result<TcpInfo, Errno>;
    fn setsockopt(&mut self, fd: Fd, opt: SockOpt) -> Result<(), Errno>;
}

impl<D: NetDevice> SocketCalls for Stack<D> {
    fn socket_shared(&mut self, sock_type: SockType) -> Result<Fd, Errno> {
        self.socket_for(sock_type, Readers::Shared)
    }
    fn bind(&mut self, fd: Fd, addr: SocketAddrV4) -> Result<(), Errno> {
        Stack::bind(self, fd, addr)
    }
    fn autobind(&mut self, fd: Fd) -> Result<(), Errno> {
        Stack::autobind(self, fd)
    }
    fn connect(&mut self, fd: Fd, addr: SocketAddrV4) -> Result<(), Errno> {
        Stack::connect(self, fd, addr)
    }
    fn close(&mut self, fd: Fd) -> Result<(), Errno> {
        Stack::close(self, fd)
    }
    fn listen(&mut self, fd: Fd, backlog: i32) -> Result<(), Errno> {
        Stack::listen(self, fd, backlog)
    }
    fn accept(&mut self, fd: Fd) -> Result<(Fd, SocketAddrV4), Errno> {
        Stack::accept(self, fd)
    }
    fn shutdown(&mut self, fd: Fd, how: Shutdown) -> Result<(), Errno> {
        Stack::shutdown(self, fd, how)
    }
    fn tcp_info(&self, fd: Fd) -> Result<TcpInfo, Errno> {
        Stack::tcp_info(self, fd)
    }
    fn setsockopt(&mut self, fd: Fd, opt: SockOpt) -> Result<(), Errno> {
        Stack::setsockopt(self, fd, opt)
    }
}

/// `setsockopt()` on `sock`, from either side.
fn set_sockopt(sock: &Sock, opt: SockOpt) -> Result<(), Errno> {
    match (opt, sock.tcp()) {
        (SockOpt::BusyPoll(d), _) => sock.wq.set_busy_poll(d),
        // An IP-level option: any inet socket takes it (do_ip_setsockopt).
        (SockOpt::MtuDiscover(v), _) => sock.set_pmtudisc(v),
        // Accepted and without effect on a datagram socket: socket-level options
        // (sk_setsockopt, net/core/sock.c, takes SO_LINGER and SO_KEEPALIVE on any socket).
        (
            SockOpt::RcvBuf(_)
            | SockOpt::SndBuf(_)
            | SockOpt::RcvLowat(_)
            | SockOpt::ReuseAddr(_)
            | SockOpt::KeepAlive(_)
            | SockOpt::Linger(_),
            None,
        ) => {}
        (_, None) => return Err(Errno::ENOPROTOOPT),
        // do_tcp_setsockopt's ranges.
        (SockOpt::KeepIdle(s), Some(t)) => {
            if !(1..=MAX_TCP_KEEPIDLE).contains(&s) {
                return Err(Errno::EINVAL);
            }
            t.keepidle.store(s, Ordering::Relaxed);
        }
        (SockOpt::KeepIntvl(s), Some(t)) => {
            if !(1..=MAX_TCP_KEEPIDLE).contains(&s) {
                return Err(Errno::EINVAL);
            }
            t.keepintvl.store(s, Ordering::Relaxed);
        }
        (SockOpt::KeepCnt(n), Some(t)) => {
            if !(1..=MAX_TCP_KEEPCNT).contains(&n) {
                return Err(Errno::EINVAL);
            }
            t.keepcnt.store(n, Ordering::Relaxed);
        }
        (SockOpt::UserTimeout(ms), Some(t)) => {
            if ms > i32::MAX as u32 {
                return Err(Errno::EINVAL);
            }
            t.user_timeout.store(ms, Ordering::Relaxed);
        }
        (SockOpt::KeepAlive(b), Some(t)) => t.keepalive.store(b, Ordering::Relaxed),
        (SockOpt::Congestion(a), Some(t)) => t.set_congestion(a),
        (SockOpt::MaxPacingRate(r), Some(t)) => t.set_max_pacing_rate(r),
        // Linux doubles the value for bookkeeping and caps it at rmem_max/wmem_max.
        (SockOpt::RcvBuf(n), Some(t)) => {
            t.rcvbuf.store(n.clamp(2304, 6 << 20), Ordering::Relaxed);
            t.rcvbuf_lock.store(true, Ordering::Relaxed);
        }
        (SockOpt::SndBuf(n), Some(t)) => {
            t.sndbuf.store(n.clamp(4608, 4 << 20), Ordering::Relaxed);
            t.sndbuf_lock.store(true, Ordering::Relaxed);
        }
        (SockOpt::RcvLowat(n), Some(t)) => t.rcvlowat.store(n.max(1), Ordering::Relaxed),
        (SockOpt::Linger(l), Some(t)) => t.linger_zero.store(l == Some(Duration::ZERO), Ordering::Relaxed),
        (SockOpt::ReuseAddr(b), Some(t)) => t.reuseaddr.store(b, Ordering::Relaxed),
        (SockOpt::TcpNodelay(b), Some(t)) => t.nodelay.store(b, Ordering::Relaxed),
        (SockOpt::TcpCork(b), Some(t)) => t.cork.store(b, Ordering::Release),
        // The mode of a connection is its control block's (the loop's part,
        // `tcp_set_quickack`); this is what a socket not yet connected keeps for `connect()`.
        (SockOpt::TcpQuickAck(b), Some(t)) => t.pingpong.store(!b, Ordering::Relaxed),
    }
    Ok(())
}

/// A call carried to the loop thread.
type Call = Box<dyn FnOnce(&mut dyn SocketCalls) + Send>;

/// Work the loop thread does for the application threads.
enum Ctl {
    Call(Call),
    Snapshot(mpsc::SyncSender<Snapshot>),
}

/// Counters, frame whereabouts and the stage latencies at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The counters ([`Stack::snmp`]).
    pub mib: Mib,
    /// The device's counters.
    pub device: DeviceStats,
    /// Where every frame is.
    pub census: FrameCensus,
    /// The loop's busy share so far.
    pub loop_stats: LoopStats,
    /// Rx-to-read latency (ns) of the sampled datagrams the application
    /// threads have read so far (see [`Stack::rx_latency`]).
    pub rx_latency: LatencyHistogram,
    /// The three stages ([`Stack::stage_latency`]); `rx_to_read` is
    /// `rx_latency`.
    pub stage_latency: StageLatency,
}

struct Shared {
    /// The stack's fd table, read side.
    files: Arc<FdView>,
    ctl: Mutex<mpsc::Sender<Ctl>>,
    /// Calls sent on `ctl` that the loop has not taken yet: a loop about to
    /// block for a woken thread ([`Handoff::block`]) looks at it, as at
    /// `tx_scheduled`, so that a call sent just before it raised its flag
    /// is not left waiting for the bound.
    ctl_queued: AtomicUsize,
    umem: Arc<Umem>,
    pool: Arc<FramePool>,
    tx_scheduled: Arc<ArrayQueue<Arc<Sock>>>,
    /// The stack's epoch, for the readers' side of the rx-to-read latency
    /// and the senders' stamps.
    epoch: Instant,
    /// One send in this many is stamped (`StackConfig::rx_latency_sample`).
    latency_sample: u32,
    rx_latency: Arc<SharedLatencyHistogram>,
    stop: AtomicBool,
    /// The loop thread is gone (stopped or panicked): calls fail, not hang.
    dead: AtomicBool,
    /// For the route check of `send_to`.
    route: Route,
    /// IpOutNoRoutes, shared with the stack (application threads count it).
    out_no_routes: Arc<AtomicU64>,
    /// The device MTU and the learned path MTUs, for the layout of a send.
    mtu: usize,
    pmtu: Arc<PmtuCache>,
    /// Where the loop blocks while a thread it woke has not run, and how the
    /// application's threads wake it ([`Handoff`]).
    handoff: Handoff,
}

/// Empty polls after which a threaded loop yields the CPU (a poll that finds
/// nothing takes about 100 ns: about 0.1 ms).
const IDLE_YIELD_POLLS: u32 = 1024;

/// The longest a threaded loop stays blocked after a poll that woke a thread,
/// waiting for it to run ([`Handoff`]): a bound for a woken thread that
/// never reaches a call that releases the loop. A frame, a send or a call
/// wakes it before, and it never blocks past the stack's next protocol
/// timer, nor while frames wait for the tx ring ([`Stack::poll_at`]).
const HANDOFF_MAX: Duration = Duration::from_millis(1);

/// The stack with its loop on a thread of its own.
pub struct ThreadedStack<D: NetDevice + Send + 'static> {
    handle: StackHandle,
    thread: Option<JoinHandle<(Stack<D>, LoopStats)>>,
}

/// A handle for application threads: cheap to clone, `Send + Sync`. Its
/// calls are the socket calls of [`Stack`], blocking where Linux's block.
#[derive(Clone)]
pub struct StackHandle {
    shared: Arc<Shared>,
}

impl<D: NetDevice + Send + 'static> ThreadedStack<D> {
    /// Moves `stack` onto a new thread that polls it until [`Self::stop`].
    /// Descriptors made by [`Stack::socket`] before stay with the loop's
    /// thread (their queues have that one reader): handles see only the
    /// sockets they make themselves, and get `EBADF` for the others.
    ///
    /// # Errors
    ///
    /// The `io::Error` of a thread that could not be spawned.
    pub fn spawn(stack: Stack<D>) -> std::io::Result<ThreadedStack<D>> {
        ThreadedStack::spawn_on(stack, None)
    }

    /// As [`Self::spawn`], with the loop's thread bound to `cpu` when given
    /// (`sched_setaffinity`), before its first poll.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when `cpu` is not one this process may run on (the
    /// thread is not spawned); the `io::Error` of a thread that could not be
    /// spawned.
    pub fn spawn_on(stack: Stack<D>, cpu: Option<usize>) -> std::io::Result<ThreadedStack<D>> {
        ThreadedStack::spawn_with(stack, cpu, HANDOFF_MAX)
    }

    /// As [`Self::spawn_on`], the loop blocking at most `handoff_max` for a
    /// thread it woke (tests make it long, to look at a loop that blocks).
    pub(crate) fn spawn_with(
        mut stack: Stack<D>,
        cpu: Option<usize>,
        handoff_max: Duration,
    ) -> std::io::Result<ThreadedStack<D>> {
        let core = cpu.map(crate::cpu::core).transpose()?;
        let (tx, rx) = mpsc::channel::<Ctl>();
        let shared = Arc::new(Shared {
            files: stack.files.share(),
            ctl: Mutex::new(tx),
            ctl_queued: AtomicUsize::new(0),
            umem: stack.umem().clone(),
            pool: stack.napi.queue().pool().clone(),
            tx_scheduled: stack.tx_scheduled.clone(),
            epoch: stack.napi.epoch(),
            latency_sample: stack.cfg.rx_latency_sample,
            rx_latency: stack.handle_rx_latency.clone(),
            stop: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            route: stack.net.route,
            out_no_routes: stack.out_no_routes.clone(),
            mtu: stack.net.mtu,
            pmtu: stack.net.pmtu.clone(),
            handoff: Handoff::new()?,
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
            if let Some(core) = core {
                // Checked above to be one of ours: only a racing change of the
                // process's mask could refuse it, and then the loop runs unbound.
                let _ = core_affinity::set_for_current(core);
            }
            let mut stack = stack;
            let mut stats = LoopStats::start();
            let mut idle_polls = 0u32;
            crate::handoff::become_loop();
            // While threads this loop woke have not run: until when it may
            // still block for them.
            let mut handoff_until: Option<Instant> = None;
            while !guard.0.stop.load(Ordering::Relaxed) {
                let r = stack.poll_timed(&mut stats);
                guard.0.handoff.beat();
                // A thread the poll woke, sleeping on this core, may not get
                // it at a yield: the scheduler (EEVDF) picks only a task whose
                // lag is not negative, and a reader that spun before it slept
                // may have to wait for the loop's next idle yield, 0.1 ms
                // later. So while a thread the loop woke has not run, the loop
                // blocks instead (in ppoll() on the device's rx descriptor, so
                // a frame still wakes it, and on the hand-off's eventfd, which
                // the thread's next send or wait writes), for HANDOFF_MAX in
                // all at most. A thread woken twice before it runs is waited
                // for once ([`crate::handoff::Waiter::wake`]). A protocol
                // timer, or frames waiting for the tx ring
                // (`Stack::poll_at`), end a block too: it never holds back
                // work that is due.
                let mut handed = false;
                if crate::handoff::woken_not_run() {
                    let now = Instant::now();
                    let bound = *handoff_until.get_or_insert(now + handoff_max);
                    let until = stack.poll_at().map_or(bound, |t| t.min(bound));
                    if now < until {
                        let sh = &*guard.0;
                        let out = sh.handoff.block(stack.device_mut().rx_poll_fd(), until - now, || {
                            sh.tx_scheduled.is_empty()
                                && sh.ctl_queued.load(Ordering::Relaxed) == 0
                                && !sh.stop.load(Ordering::Relaxed)
                        });
                        if out != Blocked::NotNeeded {
                            handed = true;
                            stats.handoffs += 1;
                            stats.handoff_ns += now.elapsed().as_nanos() as u64;
                            stats.handoff_timeouts += u64::from(out == Blocked::TimedOut && until == bound);
                        }
                    } else if now >= bound {
                        crate::handoff::forget_woken();
                        handoff_until = None;
                    }
                } else {
                    handoff_until = None;
                }
                // The softirq gives the CPU back: after handing readers a
                // batch, so that a reader sharing its core runs at once instead
                // of at the end of the loop's time slice, and now and then
                // while it finds nothing (every IDLE_YIELD_POLLS, about 0.1 ms),
                // for application threads woken by something else. Not more
                // often: a yield lets any runnable task on the core, however
                // low its priority, have a slice. With the reader on another
                // core a yield is a cheap system call that returns at once.
                if handed {
                    idle_polls = 0;
                } else if r.rx > 0 {
                    idle_polls = 0;
                    std::thread::yield_now();
                } else if r.did_work() {
                    idle_polls = 0;
                } else {
                    idle_polls += 1;
                    if idle_polls >= IDLE_YIELD_POLLS {
                        idle_polls = 0;
                        std::thread::yield_now();
                    }
                }
                while let Ok(c) = rx.try_recv() {
                    guard.0.ctl_queued.fetch_sub(1, Ordering::Relaxed);
                    match c {
                        Ctl::Call(call) => call(&mut stack),
                        Ctl::Snapshot(reply) => {
                            let mut stage_latency = stack.stage_latency();
                            stage_latency.rx_to_read.merge(&guard.0.rx_latency.snapshot());
                            let _ = reply.send(Snapshot {
                                mib: stack.snmp(),
                                device: stack.device_stats(),
                                census: stack.frame_census(),
                                loop_stats: stats,
                                rx_latency: stage_latency.rx_to_read.clone(),
                                stage_latency,
                            });
                        }
                    }
                }
            }
            stats.sample_sched();
            (stack, stats)
        })?;
        Ok(ThreadedStack { handle: StackHandle { shared }, thread: Some(thread) })
    }

    /// A handle for an application thread.
    pub fn handle(&self) -> StackHandle {
        self.handle.clone()
    }

    /// Stops the loop and takes the stack back (for final counters). The
    /// latencies the application threads recorded are merged into the
    /// stack's (`Stack::rx_latency`).
    ///
    /// # Errors
    ///
    /// The panic of the loop thread, if it panicked.
    pub fn stop(mut self) -> std::thread::Result<(Stack<D>, LoopStats)> {
        let joined = self.join().expect("the loop is joined once");
        joined.map(|(mut stack, stats)| {
            stack.rx_latency.merge(&self.handle.shared.rx_latency.snapshot());
            self.handle.shared.rx_latency.reset();
            (stack, stats)
        })
    }

    /// Stops the loop thread and waits for it (if it still runs), then wakes
    /// every reader still blocked on a sock, so it sees the loop is gone.
    fn join(&mut self) -> Option<std::thread::Result<(Stack<D>, LoopStats)>> {
        let t = self.thread.take()?;
        self.handle.shared.stop.store(true, Ordering::SeqCst);
        self.handle.shared.handoff.release();
        let r = t.join();
        for s in self.handle.shared.files.socks() {
            s.mark_closed();
        }
        Some(r)
    }
}

impl<D: NetDevice + Send + 'static> Drop for ThreadedStack<D> {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

impl StackHandle {
    /// Waits as [`wait_event_for`] does, after waking the loop if it is
    /// blocked for this thread ([`Handoff::release`]): a thread about to wait
    /// for the loop's work does not leave the loop waiting for it.
    fn wait(
        &self,
        queues: &[&WaitQueue],
        wait_for: WaitFor,
        deadline: Option<Instant>,
        ready: impl FnMut() -> bool,
    ) -> bool {
        self.shared.handoff.release();
        wait_event_for(queues, wait_for, deadline, Some(&self.shared.handoff), ready)
    }

    /// Hands `c` to the loop, counted in `ctl_queued` before it is sent
    /// (a loop about to block sees it) and waking a loop already blocked.
    fn send_ctl(&self, c: Ctl) -> Result<(), Errno> {
        let sh = &self.shared;
        sh.ctl_queued.fetch_add(1, Ordering::Relaxed);
        if sh.ctl.lock().unwrap_or_else(|e| e.into_inner()).send(c).is_err() {
            sh.ctl_queued.fetch_sub(1, Ordering::Relaxed);
            return Err(Errno::ESHUTDOWN);
        }
        sh.handoff.release();
        Ok(())
    }

    /// Runs `f` on the loop thread with the stack and returns its result.
    fn call<T: Send + 'static>(&self, f: impl FnOnce(&mut dyn SocketCalls) -> T + Send + 'static) -> Result<T, Errno> {
        if self.shared.dead.load(Ordering::SeqCst) {
            return Err(Errno::ESHUTDOWN);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let call: Call = Box::new(move |s| {
            let _ = tx.send(f(s));
        });
        self.send_ctl(Ctl::Call(call))?;
        rx.recv().map_err(|_| Errno::ESHUTDOWN)
    }

    /// `socket(AF_INET, type, 0)`, carried to the loop ([`Stack::socket`]);
    /// the sock may be read by several threads at once.
    ///
    /// # Errors
    ///
    /// `EMFILE` past the descriptor limit; `ESHUTDOWN` once the loop is gone.
    pub fn socket(&self, sock_type: SockType) -> Result<Fd, Errno> {
        self.call(move |s| s.socket_shared(sock_type))?
    }

    /// `bind()`, carried to the loop ([`Stack::bind`]).
    ///
    /// # Errors
    ///
    /// As [`Stack::bind`]; `ESHUTDOWN` once the loop is gone.
    pub fn bind(&self, fd: Fd, addr: SocketAddrV4) -> Result<(), Errno> {
        self.call(move |s| s.bind(fd, addr))?
    }

    /// `connect()`, carried to the loop ([`Stack::connect`]).
    ///
    /// # Errors
    ///
    /// As [`Stack::connect`]; `ESHUTDOWN` once the loop is gone.
    pub fn connect(&self, fd: Fd, addr: SocketAddrV4) -> Result<(), Errno> {
        self.call(move |s| s.connect(fd, addr))?
    }

    /// `getsockname()`.
    ///
    /// # Errors
    ///
    /// `EBADF` for a descriptor not open.
    pub fn local_addr(&self, fd: Fd) -> Result<SocketAddrV4, Errno> {
        Ok(self.shared.files.get(fd)?.local().unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))
    }

    /// `recvfrom()`, blocking until a datagram arrives or `timeout` passes.
    /// The loop thread wakes us.
    ///
    /// # Errors
    ///
    /// `EAGAIN` when `timeout` passes first (as with `SO_RCVTIMEO`); `EBADF`
    /// for a descriptor not open, or closed (or the loop stopped) while we
    /// waited; the sock's pending error (`ECONNREFUSED`).
    pub fn recv_from(&self, fd: Fd, buf: &mut [u8], timeout: Option<Duration>) -> Result<(usize, SocketAddrV4), Errno> {
        let sock = self.shared.files.get(fd)?;
        self.recv_blocking(&sock, timeout, || {
            let r = sock_recvmsg(&self.shared.umem, &sock, buf)?;
            if let Some(u) = sock.udp() {
                u.datagrams_read.fetch_add(1, Ordering::Relaxed);
            }
            let (len, peer, rx_ns) = (r.len, r.peer, r.rx_ns);
            r.skb.free(&self.shared.umem, |f| self.shared.pool.put(f));
            Ok(((len, peer), rx_ns))
        })
    }

    /// A read that blocks: `attempt` reads without blocking and returns what
    /// it read with the data's rx stamp (0: not timed); on `EAGAIN` we sleep
    /// until the sock is readable or the deadline passes. Shared by datagram
    /// and stream reads.
    fn recv_blocking<T>(
        &self,
        sock: &Sock,
        timeout: Option<Duration>,
        mut attempt: impl FnMut() -> Result<(T, u64), Errno>,
    ) -> Result<T, Errno> {
        // The clock is read only when the call has to wait, not per datagram.
        let mut deadline = None;
        loop {
            match attempt() {
                Ok((v, rx_ns)) => {
                    if rx_ns != 0 {
                        self.shared.rx_latency.record(ns_since(self.shared.epoch).saturating_sub(rx_ns));
                    }
                    return Ok(v);
                }
                Err(Errno::EAGAIN) => {
                    if sock.is_closed() || self.shared.dead.load(Ordering::SeqCst) {
                        return Err(Errno::EBADF);
                    }
                    if deadline.is_none() {
                        deadline = timeout.map(|t| Instant::now() + t);
                    }
                    if !self.wait(&[&sock.wq], WaitFor::Read, deadline, || sock.readable()) {
                        return Err(Errno::EAGAIN);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `sendto()`, blocking while sndbuf is full. Autobinds (carried to the
    /// loop) and checks as [`Stack::send_to`] does.
    ///
    /// # Errors
    ///
    /// As [`Stack::send_to`], except that a full sndbuf waits instead of
    /// `EAGAIN`; `ESHUTDOWN` once the loop is gone.
    pub fn send_to(&self, fd: Fd, data: &[u8], dst: SocketAddrV4) -> Result<usize, Errno> {
        let sock = self.shared.files.get(fd)?;
        if sock.local().is_none() {
            self.call(move |s| s.autobind(fd))??;
        }
        let sh = &self.shared;
        let mtu = if data.len() + UDP_IP_HEADERS <= IP_RT_MIN_PMTU {
            sh.mtu
        } else {
            udp_send_mtu(sh.mtu, &sh.pmtu, &sock, *dst.ip(), Instant::now()).min(tx_frame_mtu(sh.umem.frame_size()))
        };
        sendmsg_check(&sock, data.len(), dst, &sh.route, mtu, &sh.out_no_routes)?;
        let mut skb = sock_alloc_send_skb(&mut PoolSource(&sh.umem, &sh.pool), data, dst, mtu)?;
        let tstamp = tx_stamp(sh.latency_sample, sh.epoch);
        loop {
            match sock_sendmsg(&sock, &sh.tx_scheduled, skb, tstamp) {
                Ok(n) => {
                    // Queued: a loop blocked for us transmits it now.
                    sh.handoff.release();
                    return Ok(n);
                }
                Err(back) => {
                    skb = back;
                    if sh.dead.load(Ordering::SeqCst) {
                        skb.free(&sh.umem, |f| sh.pool.put(f));
                        return Err(Errno::ESHUTDOWN);
                    }
                    let until = Some(Instant::now() + Duration::from_millis(100));
                    self.wait(&[&sock.wq], WaitFor::Write, until, || sock.writable());
                }
            }
        }
    }

    /// `connect()` of a stream socket, blocking until the handshake ends
    /// (or `timeout` passes: then `EINPROGRESS`, and the connect goes on).
    ///
    /// # Errors
    ///
    /// `ECONNREFUSED`, `ETIMEDOUT`, `ENETUNREACH` and the others of
    /// [`Stack::connect`]; `ESHUTDOWN` once the loop is gone.
    pub fn connect_stream(&self, fd: Fd, addr: SocketAddrV4, timeout: Option<Duration>) -> Result<(), Errno> {
        let sock = self.shared.files.get(fd)?;
        match self.call(move |s| s.connect(fd, addr))? {
            Err(Errno::EINPROGRESS) => {}
            other => return other,
        }
        let tsk = sock.tcp().ok_or(Errno::EOPNOTSUPP)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let done = || {
            !matches!(tsk.stream.state(), TcpState::SynSent | TcpState::SynRecv)
                || sock.has_err()
                || self.shared.dead.load(Ordering::SeqCst)
        };
        if !self.wait(&[&sock.wq], WaitFor::Any, deadline, done) {
            return Err(Errno::EINPROGRESS);
        }
        if let Some(e) = sock.take_err() {
            return Err(e);
        }
        match tsk.stream.state() {
            TcpState::Established | TcpState::CloseWait => Ok(()),
            _ => Err(Errno::ECONNREFUSED),
        }
    }

    /// `listen()`, carried to the loop ([`Stack::listen`]).
    ///
    /// # Errors
    ///
    /// As [`Stack::listen`]; `ESHUTDOWN` once the loop is gone.
    pub fn listen(&self, fd: Fd, backlog: i32) -> Result<(), Errno> {
        self.call(move |s| s.listen(fd, backlog))?
    }

    /// `accept()`, blocking until a connection is ready or `timeout` passes.
    ///
    /// # Errors
    ///
    /// As [`Stack::accept`], `EAGAIN` when `timeout` passes; `EBADF` when
    /// the listener is closed or the loop stops while we wait.
    pub fn accept(&self, fd: Fd, timeout: Option<Duration>) -> Result<(Fd, SocketAddrV4), Errno> {
        let sock = self.shared.files.get(fd)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            match self.call(move |s| s.accept(fd))? {
                Err(Errno::EAGAIN) => {}
                other => return other,
            }
            let tsk = sock.tcp().ok_or(Errno::EOPNOTSUPP)?;
            if sock.is_closed() || self.shared.dead.load(Ordering::SeqCst) {
                return Err(Errno::EBADF);
            }
            if !self.wait(&[&sock.wq], WaitFor::Read, deadline, || tsk.accept_backlog() > 0 || sock.is_closed()) {
                return Err(Errno::EAGAIN);
            }
        }
    }

    /// `send()` on a stream, blocking until all of `data` is in the send
    /// buffer (as a blocking Linux socket does).
    ///
    /// # Errors
    ///
    /// As [`Stack::send`] (a full buffer waits instead of `EAGAIN`); if an
    /// error comes after part of the data went, the part's length is returned.
    pub fn send(&self, fd: Fd, data: &[u8]) -> Result<usize, Errno> {
        let sock = self.shared.files.get(fd)?;
        let mut sent = 0;
        loop {
            let tstamp = tx_stamp(self.shared.latency_sample, self.shared.epoch);
            match tcp_prot::tcp_sendmsg(&sock, &self.shared.tx_scheduled, &data[sent..], tstamp) {
                Ok(n) => {
                    sent += n;
                    self.shared.handoff.release();
                    if sent == data.len() {
                        return Ok(sent);
                    }
                }
                Err(Errno::EAGAIN) => {
                    if self.shared.dead.load(Ordering::SeqCst) || sock.is_closed() {
                        return if sent > 0 { Ok(sent) } else { Err(Errno::ESHUTDOWN) };
                    }
                    let tsk = sock.tcp().ok_or(Errno::EOPNOTSUPP)?;
                    // Room, an error, or a state where sending cannot wait any more.
                    self.wait(&[&sock.wq], WaitFor::Any, Some(Instant::now() + Duration::from_millis(100)), || {
                        tsk.stream.snd_room() > 0
                            || sock.has_err()
                            || !matches!(
                                tsk.stream.state(),
                                TcpState::Established | TcpState::CloseWait | TcpState::SynSent | TcpState::SynRecv
                            )
                    });
                }
                Err(e) => return if sent > 0 { Ok(sent) } else { Err(e) },
            }
        }
    }

    /// `recv()` on a stream, blocking until bytes arrive, the stream ends
    /// (0), or `timeout` passes (`EAGAIN`).
    ///
    /// # Errors
    ///
    /// As [`Stack::recv`]; `EBADF` when closed or the loop stops while we wait.
    pub fn recv(&self, fd: Fd, buf: &mut [u8], timeout: Option<Duration>) -> Result<usize, Errno> {
        let sock = self.shared.files.get(fd)?;
        let r = self.recv_blocking(&sock, timeout, || tcp_prot::tcp_recvmsg(&sock, &self.shared.tx_scheduled, buf));
        // A read may have queued a window update.
        self.shared.handoff.release();
        r
    }

    /// `shutdown()`, carried to the loop ([`Stack::shutdown`]).
    ///
    /// # Errors
    ///
    /// As [`Stack::shutdown`]; `ESHUTDOWN` once the loop is gone.
    pub fn shutdown(&self, fd: Fd, how: Shutdown) -> Result<(), Errno> {
        self.call(move |s| s.shutdown(fd, how))?
    }

    /// `setsockopt()`.
    ///
    /// # Errors
    ///
    /// As [`Stack::setsockopt`].
    pub fn setsockopt(&self, fd: Fd, opt: SockOpt) -> Result<(), Errno> {
        if opt.needs_loop() {
            // The loop owns the connection's timers and congestion state.
            return self.call(move |s| s.setsockopt(fd, opt))?;
        }
        set_sockopt(&*self.shared.files.get(fd)?, opt)
    }

    /// `getsockopt(IP_MTU_DISCOVER)`.
    ///
    /// # Errors
    ///
    /// As [`Stack::mtu_discover`].
    pub fn mtu_discover(&self, fd: Fd) -> Result<PmtuDisc, Errno> {
        Ok(self.shared.files.get(fd)?.pmtudisc())
    }

    /// `getsockopt(IP_MTU)`.
    ///
    /// # Errors
    ///
    /// As [`Stack::ip_mtu`].
    pub fn ip_mtu(&self, fd: Fd) -> Result<usize, Errno> {
        let sock = self.shared.files.get(fd)?;
        let peer = sock.remote().ok_or(Errno::ENOTCONN)?;
        Ok(self.shared.pmtu.get(*peer.ip(), self.shared.mtu, Instant::now()).mtu)
    }

    /// `getsockopt(TCP_INFO)`, from the loop.
    ///
    /// # Errors
    ///
    /// As [`Stack::tcp_info`]; `ESHUTDOWN` once the loop is gone.
    pub fn tcp_info(&self, fd: Fd) -> Result<TcpInfo, Errno> {
        self.call(move |s| s.tcp_info(fd))?
    }

    /// `close()`, carried to the loop ([`Stack::close`]). Once the loop is
    /// gone the sock is closed here and its frames freed.
    ///
    /// # Errors
    ///
    /// `EBADF` for a descriptor not open.
    pub fn close(&self, fd: Fd) -> Result<(), Errno> {
        if self.shared.dead.load(Ordering::SeqCst) {
            let sock = self.shared.files.get(fd)?;
            sock.mark_closed();
            let (umem, pool) = (&self.shared.umem, &self.shared.pool);
            sock.purge(|skb| skb.free(umem, |f| pool.put(f)));
            return Ok(());
        }
        self.call(move |s| s.close(fd))?
    }

    /// `poll()`: sleeps until a descriptor is ready or the timeout passes.
    /// Returns how many are ready.
    pub fn poll(&self, fds: &mut [PollFd], timeout: Option<Duration>) -> usize {
        let socks: Vec<Option<Arc<Sock>>> = fds.iter().map(|p| self.shared.files.get(p.fd).ok()).collect();
        let queues: Vec<&WaitQueue> = socks.iter().flatten().map(|s| &s.wq).collect();
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut ready = 0;
        self.wait(&queues, WaitFor::Any, deadline, || {
            ready = 0;
            for (p, s) in fds.iter_mut().zip(&socks) {
                p.revents = readiness(s.as_deref(), p.events);
                ready += usize::from(p.revents != 0);
            }
            ready > 0
        });
        ready
    }

    /// Counters, device statistics, the frame census and the rx-to-read
    /// latency, from the loop.
    ///
    /// # Errors
    ///
    /// `ESHUTDOWN` once the loop is gone.
    pub fn snapshot(&self) -> Result<Snapshot, Errno> {
        if self.shared.dead.load(Ordering::SeqCst) {
            return Err(Errno::ESHUTDOWN);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.send_ctl(Ctl::Snapshot(tx))?;
        rx.recv().map_err(|_| Errno::ESHUTDOWN)
    }

    /// Forgets the rx-to-read latencies recorded so far (to leave out a
    /// warm-up).
    pub fn reset_rx_latency(&self) {
        self.shared.rx_latency.reset();
    }

    /// Descriptors open now.
    pub fn open_fds(&self) -> usize {
        self.shared.files.socks().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    use crate::netdevice::{MemDevice, MemWire};
    use crate::stack::StackConfig;
    use crate::wire::ethernet::EthernetRepr;
    use crate::wire::ipv4::protocol;
    use crate::wire::udp::UdpRepr;
    use crate::wire::{build, EthernetAddress};

    /// `SO_LINGER` is a socket-level option: Linux takes it on a datagram socket too;
    /// `TCP_NODELAY` is not: `ENOPROTOOPT` (udp_setsockopt → ip_setsockopt).
    #[test]
    fn so_linger_is_taken_on_a_datagram_socket_and_tcp_options_are_enoprotoopt() {
        let (mut s, _w) = stack(0);
        let fd = s.socket(SockType::Dgram).unwrap();
        assert_eq!(s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))), Ok(()));
        assert_eq!(s.setsockopt(fd, SockOpt::Linger(None)), Ok(()));
        assert_eq!(s.setsockopt(fd, SockOpt::TcpNodelay(true)), Err(Errno::ENOPROTOOPT));
        assert_eq!(Errno::ENOPROTOOPT.name(), "ENOPROTOOPT");
    }

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
        let eth = EthernetRepr { dst: OUR_MAC, src: EthernetAddress([2, 0, 0, 0, 0, 1]), ethertype: 0 };
        let ip = build::ipv4_repr(PEER_IP, OUR_IP, protocol::UDP, 1);
        build::udp_frame(&eth, &ip, &UdpRepr { src_port: 40000, dst_port: 7, payload_len: 0 }, payload)
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
            s.poll(Instant::now());
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

    /// A socket made by `Stack::socket` has one reader, the stack's thread:
    /// application threads must not read it (two of them could own one frame),
    /// so handles do not see it; the sockets they make are theirs.
    #[test]
    fn handles_do_not_see_run_to_completion_sockets() {
        let (mut s, w) = stack(0);
        let mine = s.socket(SockType::Dgram).unwrap();
        s.bind(mine, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
        let t = ThreadedStack::spawn(s).unwrap();
        let h = t.handle();
        let mut buf = [0u8; 16];
        assert!(w.inject(&udp_frame(b"ping")));
        assert_eq!(h.recv_from(mine, &mut buf, Some(Duration::ZERO)), Err(Errno::EBADF));
        assert_eq!(h.local_addr(mine), Err(Errno::EBADF));
        let theirs = h.socket(SockType::Dgram).unwrap();
        assert_ne!(theirs, mine, "the table is one: the number is taken");
        h.bind(theirs, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 8)).unwrap();
        h.close(mine).unwrap();
        let (s, _) = t.stop().unwrap();
        let c = s.frame_census();
        assert_eq!(c.accounted(), c.total, "{c:?}");
    }

    /// The loop's frame cache keeps only what the fill ring has room for, so
    /// application threads find free frames to send with, even when the UMEM
    /// is only twice the fill ring.
    #[test]
    fn threaded_senders_find_free_frames() {
        let (umem, pool) = Umem::new(128, 2048).unwrap();
        let umem = Arc::new(umem);
        let dev = MemDevice::new(umem.clone(), 64, 64);
        let s = Stack::new(dev, umem, Arc::new(pool), StackConfig::new(OUR_MAC, OUR_IP, 24));
        let t = ThreadedStack::spawn(s).unwrap();
        let h = t.handle();
        let fd = h.socket(SockType::Dgram).unwrap();
        for _ in 0..3 {
            h.snapshot().unwrap(); // a round trip: the loop has polled
        }
        assert_eq!(h.send_to(fd, b"hello", SocketAddrV4::new(PEER_IP, 9)), Ok(5));
        let snap = h.snapshot().unwrap();
        assert!(snap.census.free_local <= 4 * 64, "{:?}", snap.census);
    }

    /// Waits up to 5 s for `cond`.
    fn wait_until(mut cond: impl FnMut() -> bool, what: &str) {
        let t0 = Instant::now();
        while !cond() {
            assert!(t0.elapsed() < Duration::from_secs(5), "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// After a poll that woke a reader sleeping on the loop's core, while
    /// that reader has not run, the loop blocks instead of spinning: a frame
    /// that arrives meanwhile still wakes it and is served, and it blocks
    /// again (the reader, woken at the datagram and again at the end of each
    /// batch, is waited for once); the reader's send wakes it, and once the
    /// reader has run the loop blocks no more. The bound is long here, so
    /// that only the reader or a frame can end a block.
    #[test]
    fn threaded_loop_blocks_for_a_woken_reader_until_it_runs() {
        use crate::handoff::Waiter;
        let (s, w) = stack(0);
        let cpu = core_affinity::get_core_ids().expect("the CPUs we may use")[0];
        let t = ThreadedStack::spawn_with(s, Some(cpu.id), Duration::from_secs(30)).unwrap();
        let h = t.handle();
        let fd = h.socket(SockType::Dgram).unwrap();
        h.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
        let sock = h.shared.files.get(fd).unwrap();
        // The reader: asleep on the sock as far as the loop can tell, on the
        // loop's CPU, but it runs only when told (it waits on a channel, not
        // in its park), as a woken reader the scheduler does not pick.
        let (go, wait_go) = mpsc::channel::<()>();
        let (me_tx, me_rx) = mpsc::channel();
        let (sk, hr) = (sock.clone(), h.clone());
        let reader = std::thread::spawn(move || {
            assert!(core_affinity::set_for_current(cpu));
            let me = Waiter::current();
            sk.wq.add(WaitFor::Read);
            me.sleeping();
            me_tx.send(me.clone()).unwrap();
            wait_go.recv().unwrap();
            me.resumed();
            sk.wq.remove();
            let mut buf = [0u8; 64];
            let (_, peer) = hr.recv_from(fd, &mut buf, Some(Duration::ZERO)).unwrap();
            hr.recv_from(fd, &mut buf, Some(Duration::ZERO)).unwrap();
            hr.send_to(fd, b"pong", peer).unwrap();
        });
        let me = me_rx.recv().unwrap();
        assert!(w.inject(&udp_frame(b"one")));
        wait_until(|| h.shared.handoff.is_blocked(), "the loop blocks for the reader it woke");
        assert!(me.woken());
        assert!(w.inject(&udp_frame(b"two")));
        wait_until(|| sock.queued() == 2, "a frame that comes while the loop is blocked is served");
        wait_until(|| h.shared.handoff.is_blocked(), "and the loop blocks again: the reader has not run");
        assert!(w.take_transmitted().is_empty());
        go.send(()).unwrap();
        reader.join().unwrap();
        wait_until(|| !w.take_transmitted().is_empty(), "the reader's send woke the loop");
        let st = h.snapshot().unwrap().loop_stats;
        assert!(st.handoffs >= 2, "{st:?}");
        assert_eq!(st.handoff_timeouts, 0, "no block ended at the bound: {st:?}");
        assert!(!me.woken());
        // No reader asleep: a datagram is served with no block at all.
        assert!(w.inject(&udp_frame(b"three")));
        wait_until(|| sock.queued() == 1, "served");
        assert_eq!(h.snapshot().unwrap().loop_stats.handoffs, st.handoffs);
        assert!(!h.shared.handoff.is_blocked());
        h.close(fd).unwrap();
        let (s, _) = t.stop().unwrap();
        let c = s.frame_census();
        assert_eq!(c.accounted(), c.total, "{c:?}");
    }

    /// Dropping a `ThreadedStack` without `stop` still wakes a reader blocked
    /// without a timeout: it sees the loop is gone.
    #[test]
    fn dropping_the_threaded_stack_wakes_blocked_readers() {
        let (s, _w) = stack(0);
        let t = ThreadedStack::spawn(s).unwrap();
        let h = t.handle();
        let fd = h.socket(SockType::Dgram).unwrap();
        h.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 16];
            h.recv_from(fd, &mut buf, None)
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(t);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(reader.join().unwrap()));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(Err(Errno::EBADF)), "the reader was left asleep");
    }
}
