//! `tcp_prot` and the socket calls of a TCP socket (net/ipv4/tcp_ipv4.c,
//! net/ipv4/tcp.c, net/ipv4/af_inet.c): `connect` (`tcp_v4_connect`),
//! `listen` (`inet_listen`), `close` (`tcp_close`), `shutdown`
//! (`tcp_shutdown`), and the application's side of `send` and `recv`
//! (`tcp_sendmsg`, `tcp_recvmsg`), which only touch the sock's byte buffers
//! and ask the loop to transmit (`tcp_push`).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use super::cb::{Listener, TcpCb};
use super::input::{finish, tcp_done, tcp_set_state, tcp_time_wait, Fate};
use super::output::{initial_window, tcp_send_active_reset, tcp_send_syn, tcp_write_xmit, TCP_ADVMSS_1500};
use super::table::{CbId, FourTuple};
use super::{TCP_FIN_TIMEOUT, TCP_RCV_WSCALE};
use crate::errno::Errno;
use crate::net::Net;
use crate::netdev_queue::NetdevQueue;
use crate::proto::{Proto, ProtoCtx};
use crate::route::OutRoute;
use crate::sock::{Sock, SOMAXCONN};
use crate::stream::TcpState;
use crate::wire::{ethernet, ipv4, tcp};

/// TCP's operations (`tcp_prot`).
pub static TCP_PROT: Proto = Proto {
    name: "TCP",
    protocol: ipv4::protocol::TCP,
    connect: tcp_v4_connect,
    sendmsg_check: tcp_sendmsg_check,
    push_pending: tcp_push_pending,
};

/// `shutdown()`'s `how`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// `SHUT_RD`: no more reading.
    Read,
    /// `SHUT_WR`: no more sending; a FIN follows the data.
    Write,
    /// `SHUT_RDWR`: both.
    Both,
}

/// The MSS we offer: the interface's `mtu` less 40 (`dst_metric_advmss`:
/// 1460 on a 1500-byte MTU, 1360 on 1400), at most 1460, and less when a
/// UMEM frame of `frame_size` bytes cannot hold a full segment with 40
/// bytes of options.
pub fn advmss(frame_size: usize, mtu: usize) -> u32 {
    let room = frame_size.saturating_sub(ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + tcp::HEADER_LEN + 40);
    let by_mtu = mtu.saturating_sub(ipv4::MIN_HEADER_LEN + tcp::HEADER_LEN);
    TCP_ADVMSS_1500.min(room as u32).min(by_mtu as u32).max(super::TCP_MIN_MSS)
}

/// `tcp_v4_connect`: picks a local port (one whose 4-tuple with `addr` is
/// free, TIME-WAIT included), sends the SYN and returns `EINPROGRESS`: the
/// connection completes in the loop (poll for `POLLOUT`).
///
/// # Errors
///
/// `EINPROGRESS` when the SYN is out; `EALREADY` while a connect is under
/// way; `EISCONN` when connected or listening; `ENETUNREACH` with no route
/// (or to a broadcast address); `EADDRNOTAVAIL` when no local port is free.
fn tcp_v4_connect(cx: &mut ProtoCtx<'_>, sock: &Arc<Sock>, addr: SocketAddrV4) -> Result<(), Errno> {
    let tsk = sock.tcp().ok_or(Errno::EOPNOTSUPP)?;
    match tsk.stream.state() {
        TcpState::SynSent | TcpState::SynRecv => return Err(Errno::EALREADY),
        TcpState::Close if tsk.cb().is_none() => {}
        _ => return Err(Errno::EISCONN),
    }
    match cx.net.route.output(*addr.ip()) {
        OutRoute::Unicast { .. } => {}
        OutRoute::NoRoute => {
            cx.net.mib.IpOutNoRoutes += 1;
            return Err(Errno::ENETUNREACH);
        }
        OutRoute::Broadcast => return Err(Errno::ENETUNREACH),
    }
    let ours = cx.net.route.addr;
    let local = match sock.local() {
        Some(l) => SocketAddrV4::new(ours, l.port()),
        None => {
            let tcp = &cx.net.tcp;
            let port = cx
                .socks
                .hash_connect(sock, ipv4::protocol::TCP, ours, |p| {
                    tcp.tuple_in_use(&FourTuple { local: SocketAddrV4::new(ours, p), remote: addr })
                        || tcp.lookup_listener(p).is_some()
                })
                .map_err(|_| Errno::EADDRNOTAVAIL)?;
            SocketAddrV4::new(ours, port)
        }
    };
    let key = FourTuple { local, remote: addr };
    if cx.net.tcp.tuple_in_use(&key) {
        return Err(Errno::EADDRNOTAVAIL);
    }
    sock.set_remote(addr);
    tsk.stream.fin_rcvd.store(false, Ordering::Relaxed);
    tsk.stream.wr_shut.store(false, Ordering::Relaxed);
    tsk.stream.rd_shut.store(false, Ordering::Relaxed);
    tsk.stream.done.store(false, Ordering::Relaxed);
    let now = cx.now;
    // tcp_connect_init: the MSS offered and used from the route's MTU, a
    // path MTU learnt from ICMP included (`dst_metric_advmss`, `tcp_sync_mss`).
    let path_mtu = cx.net.pmtu.get(*addr.ip(), cx.net.mtu, now).mtu;
    let mut cb = TcpCb::new(sock.clone(), local, addr, advmss(cx.q.umem().frame_size() as usize, path_mtu));
    if path_mtu < cx.net.mtu {
        cb.pmtu_cookie = path_mtu as u32;
    }
    let rcvbuf = tsk.rcvbuf.load(Ordering::Relaxed);
    cb.bufs = Some(tsk.stream.attach_bufs(rcvbuf + super::TCP_RCV_SLACK, tsk.sndbuf.load(Ordering::Relaxed)));
    tsk.stream.pushed.store(0, Ordering::Relaxed);
    cb.iss = cx.net.tcp.isn(local, addr, now);
    // tcp_v4_connect: the timestamp offset comes with the ISN.
    cb.ts.offset = cx.net.tcp.ts_clock.offset(*local.ip(), *addr.ip());
    cb.snd_una = cb.iss;
    cb.snd_nxt = cb.iss;
    cb.snd_max = cb.iss;
    cb.rcv_wscale = TCP_RCV_WSCALE;
    cb.rcv_wnd = initial_window(rcvbuf, cb.advmss);
    cb.rcv_ssthresh = cb.rcv_wnd;
    cb.pingpong = tsk.pingpong.load(Ordering::Relaxed);
    cb.retrans_stamp = Some(now);
    cb.rtt_probe = Some((cb.iss.wrapping_add(1), now));
    tcp_set_state(cx.net, &mut cb, TcpState::SynSent);
    let id = cx.net.tcp.insert(cb);
    cx.net.tcp.hash_established(key, id);
    let Some(mut cb) = cx.net.tcp.take(id) else { return Err(Errno::EADDRNOTAVAIL) };
    let umem = cx.q.umem().clone();
    tcp_send_syn(cx.net, cx.q, &umem, &mut cb, now);
    cx.net.mib.TcpActiveOpens += 1;
    cb.rto_at = Some(now + cb.rto);
    finish(cx.net, id, cb, Fate::Keep);
    Err(Errno::EINPROGRESS)
}

/// `tcp_sendmsg`'s checks (`sk_stream_wait_connect`, `SEND_SHUTDOWN`).
///
/// # Errors
///
/// The pending error; `EAGAIN` while the handshake is under way; `EPIPE`
/// when the socket is not connected or its sending side is shut down.
fn tcp_sendmsg_check(sock: &Sock, _len: usize, _dst: SocketAddrV4, _route: OutRoute, _mtu: usize) -> Result<(), Errno> {
    if let Some(e) = sock.take_err() {
        return Err(e);
    }
    let tsk = sock.tcp().ok_or(Errno::EOPNOTSUPP)?;
    if tsk.stream.wr_shut.load(Ordering::Acquire) {
        return Err(Errno::EPIPE);
    }
    match tsk.stream.state() {
        TcpState::Established | TcpState::CloseWait => Ok(()),
        TcpState::SynSent | TcpState::SynRecv => Err(Errno::EAGAIN),
        _ => Err(Errno::EPIPE),
    }
}

/// Application side of `send()` on a stream: copies what fits into the send
/// buffer and asks the loop to transmit (`scheduled`). `tstamp` is the
/// send's stamp for the send-to-tx latency (ns since the stack's epoch, 0:
/// not sampled); the segment that carries the first byte written is timed.
///
/// # Errors
///
/// As [`tcp_sendmsg_check`]; `EAGAIN` when the send buffer is full.
pub fn tcp_sendmsg(
    sock: &Arc<Sock>,
    scheduled: &ArrayQueue<Arc<Sock>>,
    data: &[u8],
    tstamp: u64,
) -> Result<usize, Errno> {
    tcp_sendmsg_check(sock, data.len(), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), OutRoute::NoRoute, 0)?;
    if data.is_empty() {
        return Ok(0);
    }
    let tsk = sock.tcp().ok_or(Errno::EOPNOTSUPP)?;
    let n = tsk.stream.write_stamped(data, tstamp);
    if n == 0 {
        return Err(Errno::EAGAIN);
    }
    Sock::schedule_xmit(sock, scheduled);
    Ok(n)
}

/// Application side of `recv()` on a stream: copies waiting bytes into
/// `buf`; 0 at the end of the stream (the peer's FIN, or `SHUT_RD`). A read
/// that frees half the buffer or more asks the loop to offer the bigger
/// window (`tcp_cleanup_rbuf`).
///
/// Returns the bytes read and, when they include the oldest data that was
/// waiting, its rx stamp (ns since the stack's epoch; 0 otherwise).
///
/// # Errors
///
/// `EAGAIN` when nothing waits; `ENOTCONN` on a socket never connected;
/// the pending error (`ECONNRESET`, `ETIMEDOUT`) once the data is read.
pub fn tcp_recvmsg(sock: &Arc<Sock>, scheduled: &ArrayQueue<Arc<Sock>>, buf: &mut [u8]) -> Result<(usize, u64), Errno> {
    let tsk = sock.tcp().ok_or(Errno::EOPNOTSUPP)?;
    let s = &tsk.stream;
    let (n, (queued, capacity), rx_ns) = s.read_counted(buf);
    if n > 0 {
        // The buffer as SO_RCVBUF sized it (the ring holds TCP_RCV_SLACK more).
        let cap = capacity.saturating_sub(super::TCP_RCV_SLACK);
        // tcp_cleanup_rbuf: the loop looks when this read may open the
        // window, or drained the buffer while it holds a delayed ACK.
        let drained_with_ack = n == queued && s.ack_on_read.load(Ordering::SeqCst);
        if (queued * 2 >= cap && cap > 0) || drained_with_ack {
            Sock::schedule_xmit(sock, scheduled);
        }
        return Ok((n, rx_ns));
    }
    if buf.is_empty() {
        return Ok((0, 0));
    }
    // tcp_recvmsg: the peer's FIN (SOCK_DONE) ends the stream before a
    // pending error is reported, which stays for the next send or SO_ERROR.
    if s.fin_rcvd.load(Ordering::Acquire) {
        return Ok((0, 0));
    }
    if let Some(e) = sock.take_err() {
        return Err(e);
    }
    if s.rd_shut.load(Ordering::Acquire) {
        return Ok((0, 0));
    }
    match s.state() {
        TcpState::Listen => Err(Errno::ENOTCONN),
        // Never connected, or the attempt was disconnected: no RCV_SHUTDOWN.
        TcpState::Close if !s.done.load(Ordering::Acquire) => Err(Errno::ENOTCONN),
        TcpState::Close => Ok((0, 0)),
        _ => Err(Errno::EAGAIN),
    }
}

/// `tcp_push` from the loop: a FIN if the application shut down sending,
/// a window update if its reads opened the window (`tcp_cleanup_rbuf`),
/// then whatever the windows allow (`tcp_write_xmit`).
fn tcp_push_pending(net: &mut Net, q: &mut NetdevQueue, sock: &Sock, _budget: usize, now: std::time::Instant) -> usize {
    let Some(id) = sock.tcp().and_then(|t| t.cb()) else { return 0 };
    let Some(mut cb) = net.tcp.take(id) else { return 0 };
    let umem = q.umem().clone();
    super::prune::tcp_rcvq_reclaim(net, &mut cb, now);
    if cb.tsk().stream.wr_shut.load(Ordering::Acquire) {
        tcp_close_state(net, &mut cb);
    }
    if matches!(cb.state, TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2) {
        // tcp_cleanup_rbuf: an owed ACK now if more than a segment is
        // unacknowledged, or if the reader drained the buffer (out-of-order
        // data included) after the end of a write, outside interactive mode
        // (ICSK_ACK_PUSHED) or, after two, in it (ICSK_ACK_PUSHED2).
        if cb.ack_pending && (cb.rcv_nxt.wrapping_sub(cb.rcv_wup) > cb.rcv_mss || cb.drained_after_push()) {
            cb.ack_now = true;
        }
        // And an ACK if the window we would offer (__tcp_select_window) is
        // at least twice the one left.
        let now_wnd = cb.receive_window();
        if 2 * now_wnd <= cb.rcv_full_space() {
            let new_wnd = super::output::select_window_space(&cb);
            if new_wnd != 0 && new_wnd >= 2 * now_wnd {
                cb.ack_pending = true;
                cb.ack_now = true;
            }
        }
    }
    let n = tcp_write_xmit(net, q, &umem, &mut cb, now);
    if cb.ack_now && cb.ack_pending {
        super::output::tcp_send_ack(net, q, &umem, &mut cb, now);
    }
    finish(net, id, cb, Fate::Keep);
    n
}

/// `tcp_close_state`: the state after we close our side, and the FIN queued
/// after the data.
fn tcp_close_state(net: &mut Net, cb: &mut TcpCb) {
    let next = match cb.state {
        TcpState::Established | TcpState::SynRecv => TcpState::FinWait1,
        TcpState::CloseWait => TcpState::LastAck,
        _ => return,
    };
    if cb.fin_seq.is_none() {
        cb.fin_seq = Some(cb.write_seq());
    }
    tcp_set_state(net, cb, next);
}

/// `inet_listen`: the sock starts taking connections; `backlog` is capped
/// at `SOMAXCONN`. Listening again only changes the backlog.
///
/// # Errors
///
/// `EOPNOTSUPP` on a datagram socket; `EINVAL` when connected or
/// connecting; `EADDRINUSE` when another sock listens on the port.
pub fn tcp_listen(cx: &mut ProtoCtx<'_>, sock: &Arc<Sock>, backlog: i32) -> Result<(), Errno> {
    let tsk = sock.tcp().ok_or(Errno::EOPNOTSUPP)?;
    let limit = usize::try_from(backlog).unwrap_or(SOMAXCONN).min(SOMAXCONN);
    match tsk.stream.state() {
        TcpState::Listen => {
            tsk.max_backlog.store(limit, Ordering::Relaxed);
            return Ok(());
        }
        TcpState::Close if tsk.cb().is_none() => {}
        _ => return Err(Errno::EINVAL),
    }
    let ours = cx.net.route.addr;
    let local = match sock.local() {
        Some(l) => l,
        None => {
            let tcp = &cx.net.tcp;
            let port = cx
                .socks
                .hash_connect(sock, ipv4::protocol::TCP, Ipv4Addr::UNSPECIFIED, |p| tcp.port_in_use(p))
                .map_err(|_| Errno::EADDRINUSE)?;
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)
        }
    };
    if cx.net.tcp.lookup_listener(local.port()).is_some() {
        return Err(Errno::EADDRINUSE);
    }
    tsk.max_backlog.store(limit, Ordering::Relaxed);
    let _ = tsk.accept_queue();
    let local = SocketAddrV4::new(ours, local.port());
    let mut cb = TcpCb::new(sock.clone(), local, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0), 0);
    cb.advmss = advmss(cx.q.umem().frame_size() as usize, cx.net.mtu);
    cb.listener = Some(Box::<Listener>::default());
    tcp_set_state(cx.net, &mut cb, TcpState::Listen);
    let id = cx.net.tcp.insert(cb);
    cx.net.tcp.hash_listener(local.port(), id);
    Ok(())
}

/// `tcp_reinit_congestion_control`: connection `id` takes its sock's
/// `TCP_CONGESTION` afresh when it is another algorithm than the one in use
/// (the algorithm's state starts over; the window stays).
pub fn tcp_reinit_congestion_control(net: &mut Net, id: CbId, now: std::time::Instant) {
    if let Some(mut cb) = net.tcp.take(id) {
        // tcp_set_congestion_control: the algorithm already in use is kept
        // as it is.
        let algo = cb.tsk().congestion();
        if !matches!(cb.state, TcpState::Close | TcpState::Listen) && cb.ca.algo() != algo {
            cb.ca = super::cong::Congestion::new(algo, cb.snd_nxt, now, net.tcp.hz);
        }
        finish(net, id, cb, Fate::Keep);
    }
}

/// After `setsockopt(SO_MAX_PACING_RATE)` on connection `id`: its pacing takes the new cap
/// and, for a finite one, paces from now on (net/core/sock.c `sk_setsockopt`).
pub fn tcp_set_max_pacing_rate(net: &mut Net, id: CbId) {
    if let Some(mut cb) = net.tcp.take(id) {
        let (rate, needed) = cb.tsk().max_pacing_rate();
        cb.pacing.set_max_rate(rate);
        cb.pacing.needed |= needed;
        finish(net, id, cb, Fate::Keep);
    }
}

/// `__tcp_sock_set_quickack` (net/ipv4/tcp.c) on connection (or listener)
/// `id`: `TCP_QUICKACK` 0 enters interactive mode; 1 leaves it and, when an
/// ACK is owed on an established connection, marks it pushed
/// (`ICSK_ACK_PUSHED`) and asks `tcp_cleanup_rbuf` whether it goes now: it
/// does once the reader has drained what came, or when more than a segment
/// is unacknowledged. True when it does: the caller schedules the sock for
/// transmit, and the loop's next push sends it.
pub fn tcp_set_quickack(net: &mut Net, id: CbId, on: bool) -> bool {
    let Some(mut cb) = net.tcp.take(id) else { return false };
    let mut ack_now = false;
    if on {
        cb.pingpong = false;
        if matches!(cb.state, TcpState::Established | TcpState::CloseWait) && cb.ack_pending {
            cb.ack_pushed = true;
            ack_now = cb.rcv_nxt.wrapping_sub(cb.rcv_wup) > cb.rcv_mss || cb.drained_after_push();
            cb.ack_now |= ack_now;
        }
    } else {
        cb.pingpong = true;
    }
    finish(net, id, cb, Fate::Keep);
    ack_now
}

/// After `setsockopt(SO_KEEPALIVE)` (`idle_changed` false) or
/// `TCP_KEEPIDLE` (true) on connection `id`: its keepalive timer armed,
/// moved or deleted as `tcp_set_keepalive` and `tcp_sock_set_keepidle_locked`
/// do (net/ipv4/tcp.c).
pub fn tcp_keepalive_rearm(net: &mut Net, id: CbId, idle_changed: bool, now: std::time::Instant) {
    if let Some(mut cb) = net.tcp.take(id) {
        super::timer::tcp_keepalive_rearm(&mut cb, idle_changed, now);
        finish(net, id, cb, Fate::Keep);
    }
}

/// `inet_shutdown` → `tcp_shutdown`: `SHUT_WR` queues our FIN after the
/// data; `SHUT_RD` makes reads return 0. On a socket still connecting it
/// is `tcp_disconnect`, whichever way: the attempt ends without a RST, the
/// socket back in CLOSE, not shut down, with `ECONNRESET` pending
/// (net/ipv4/af_inet.c `inet_shutdown`, case `TCP_SYN_SENT`). In CLOSE
/// the bits are set anyway and `ENOTCONN` returned, as Linux does (a
/// poller then sees `POLLRDHUP` after `SHUT_RD`).
///
/// # Errors
///
/// `ENOTCONN` in CLOSE (never connected, or over) and on a listener.
pub fn tcp_shutdown(cx: &mut ProtoCtx<'_>, sock: &Arc<Sock>, how: Shutdown) -> Result<(), Errno> {
    let tsk = sock.tcp().ok_or(Errno::EOPNOTSUPP)?;
    let state = tsk.stream.state();
    if state == TcpState::Listen {
        return Err(Errno::ENOTCONN);
    }
    if state == TcpState::SynSent {
        if let Some(id) = tsk.cb() {
            if let Some(mut cb) = cx.net.tcp.take(id) {
                tcp_disconnect(cx.net, &mut cb);
                finish(cx.net, id, cb, Fate::Done);
                return Ok(());
            }
        }
    }
    if matches!(how, Shutdown::Read | Shutdown::Both) {
        tsk.stream.rd_shut.store(true, Ordering::Release);
    }
    if matches!(how, Shutdown::Write | Shutdown::Both) {
        tsk.stream.wr_shut.store(true, Ordering::Release);
    }
    sock.wq.wake_up();
    if state == TcpState::Close {
        return Err(Errno::ENOTCONN);
    }
    if matches!(how, Shutdown::Write | Shutdown::Both) {
        if let Some(id) = tsk.cb() {
            if let Some(mut cb) = cx.net.tcp.take(id) {
                // As in `tcp_close`: pending data first, then the FIN.
                let umem = cx.q.umem().clone();
                tcp_write_xmit(cx.net, cx.q, &umem, &mut cb, cx.now);
                tcp_close_state(cx.net, &mut cb);
                tcp_write_xmit(cx.net, cx.q, &umem, &mut cb, cx.now);
                finish(cx.net, id, cb, Fate::Keep);
            }
        }
    }
    Ok(())
}

/// `tcp_disconnect` of an attempt in SYN-SENT: CLOSE without a RST (none
/// is owed for a SYN), `ECONNRESET` as the socket's error, its shutdown
/// bits cleared, so that it may connect again (net/ipv4/tcp.c). Not a
/// failed attempt in the MIB: Linux counts `TcpAttemptFails` in `tcp_done`,
/// which a disconnect does not call.
fn tcp_disconnect(net: &mut Net, cb: &mut TcpCb) {
    let stream = &cb.tsk().stream;
    stream.rd_shut.store(false, Ordering::Release);
    stream.wr_shut.store(false, Ordering::Release);
    stream.done.store(false, Ordering::Release);
    cb.sock.set_err(Errno::ECONNRESET);
    tcp_set_state(net, cb, TcpState::Close);
    cb.rto_at = None;
}

/// `tcp_close`: the application lets go of the sock. A listener resets
/// the children nobody accepted; unread data resets the connection
/// (`TCPAbortOnClose`), as does `SO_LINGER` 0; otherwise our FIN follows
/// the data and the connection finishes on its own (an orphan).
pub fn tcp_close(cx: &mut ProtoCtx<'_>, sock: &Arc<Sock>) {
    let Some(tsk) = sock.tcp() else { return };
    tsk.stream.rd_shut.store(true, Ordering::Release);
    tsk.stream.wr_shut.store(true, Ordering::Release);
    let Some(id) = tsk.cb() else { return };
    let Some(mut cb) = cx.net.tcp.take(id) else { return };
    cb.orphan = true;
    let umem = cx.q.umem().clone();
    let now = cx.now;
    let fate = match cb.state {
        TcpState::Listen => {
            tcp_listen_stop(cx, &cb);
            tcp_done(cx.net, &mut cb);
            Fate::Done
        }
        TcpState::SynSent => {
            tcp_set_state(cx.net, &mut cb, TcpState::Close);
            Fate::Done
        }
        _ => {
            let unread = tsk.stream.discard_unread() + cb.ofo_bytes;
            if unread > 0 {
                // RFC 2525 §2.17: unread data is lost, so the peer must know.
                cx.net.mib.TcpExtTCPAbortOnClose += 1;
                tcp_set_state(cx.net, &mut cb, TcpState::Close);
                tcp_send_active_reset(cx.net, cx.q, &umem, &mut cb, now);
                tcp_done(cx.net, &mut cb);
                Fate::Done
            } else if tsk.linger_zero.load(Ordering::Relaxed) {
                // Linux counts a zero-linger abort as TCPAbortOnData.
                cx.net.mib.TcpExtTCPAbortOnData += 1;
                if !matches!(cb.state, TcpState::Close | TcpState::SynSent) {
                    tcp_send_active_reset(cx.net, cx.q, &umem, &mut cb, now);
                }
                tcp_set_state(cx.net, &mut cb, TcpState::Close);
                tcp_done(cx.net, &mut cb);
                Fate::Done
            } else if cb.state == TcpState::FinWait2 {
                tcp_time_wait(cx.net, &mut cb, TcpState::FinWait2, TCP_FIN_TIMEOUT, now);
                Fate::Done
            } else {
                // Data sent and not yet pushed by the loop goes first, as
                // `tcp_sendmsg`'s `tcp_push` had sent it; the FIN rides on
                // the last data only when the windows held it back.
                tcp_write_xmit(cx.net, cx.q, &umem, &mut cb, now);
                tcp_close_state(cx.net, &mut cb);
                tcp_write_xmit(cx.net, cx.q, &umem, &mut cb, now);
                if super::wmem::tcp_out_of_memory(cx.net, &cb) {
                    // tcp_close → tcp_check_oom: an orphan that would hold
                    // data while TCP memory is over tcp_mem[2] is reset.
                    tcp_set_state(cx.net, &mut cb, TcpState::Close);
                    tcp_send_active_reset(cx.net, cx.q, &umem, &mut cb, now);
                    cx.net.mib.TcpExtTCPAbortOnMemory += 1;
                    tcp_done(cx.net, &mut cb);
                    Fate::Done
                } else {
                    Fate::Keep
                }
            }
        }
    };
    finish(cx.net, id, cb, fate);
}

/// `tcp_abort` (`tcp_disconnect` with a reset): a RST to the peer if the
/// connection is synchronized, then done; the application sees `ECONNABORTED`
/// unless it has closed.
pub fn tcp_abort(net: &mut Net, q: &mut NetdevQueue, umem: &crate::umem::Umem, id: CbId, now: std::time::Instant) {
    let Some(mut cb) = net.tcp.take(id) else { return };
    if !matches!(cb.state, TcpState::Listen | TcpState::SynSent | TcpState::Close) {
        tcp_send_active_reset(net, q, umem, &mut cb, now);
    }
    if !cb.orphan {
        cb.sock.set_err(Errno::ECONNABORTED);
    }
    tcp_set_state(net, &mut cb, TcpState::Close);
    tcp_done(net, &mut cb);
    finish(net, id, cb, Fate::Done);
}

/// Resets every orphan waiting in FIN-WAIT-2 for its peer's FIN (a
/// TIME-WAIT sock of that substate) and forgets it: the stack is going away
/// and nobody would answer that FIN. Returns how many.
pub fn tcp_reset_fin_wait2(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &crate::umem::Umem,
    now: std::time::Instant,
) -> usize {
    let keys: Vec<FourTuple> =
        net.tcp.tw.iter().filter(|(_, tw)| tw.substate == TcpState::FinWait2).map(|(k, _)| *k).collect();
    for key in &keys {
        let Some(tw) = net.tcp.tw.remove(key) else { continue };
        let rst = crate::wire::tcp::TcpRepr {
            src_port: key.local.port(),
            dst_port: key.remote.port(),
            seq: tw.snd_nxt,
            ack: tw.rcv_nxt,
            flags: crate::wire::tcp::flags::RST | crate::wire::tcp::flags::ACK,
            window: 0,
            urgent: 0,
            options: Default::default(),
            payload_len: 0,
        };
        super::output::send_bare(net, q, umem, key.local, key.remote, &rst, now);
        net.mib.TcpOutRsts += 1;
    }
    keys.len()
}

/// `inet_csk_listen_stop`: children on the accept queue are reset, request
/// socks forgotten.
fn tcp_listen_stop(cx: &mut ProtoCtx<'_>, l: &TcpCb) {
    let umem = cx.q.umem().clone();
    let Some(tsk) = l.sock.tcp() else { return };
    while let Some(child) = tsk.accept_queue().pop() {
        let Some(cid) = child.tcp().and_then(|t| t.cb()) else { continue };
        let Some(mut c) = cx.net.tcp.take(cid) else { continue };
        c.orphan = true;
        tcp_set_state(cx.net, &mut c, TcpState::Close);
        tcp_send_active_reset(cx.net, cx.q, &umem, &mut c, cx.now);
        tcp_done(cx.net, &mut c);
        finish(cx.net, cid, c, Fate::Done);
    }
}

#[cfg(test)]
mod tests {
    use super::advmss;

    /// `dst_metric_advmss`: the MTU less 40, at most what a frame holds and 1460.
    #[test]
    fn the_mss_offered_follows_the_interface_mtu() {
        assert_eq!(advmss(2048, 1500), 1460);
        assert_eq!(advmss(2048, 1400), 1360, "a smaller MTU offers less, as Linux");
        assert_eq!(advmss(2048, 9000), 1460, "a segment stays within one frame to send");
        assert_eq!(advmss(2048, 100), super::super::TCP_MIN_MSS);
    }
}
