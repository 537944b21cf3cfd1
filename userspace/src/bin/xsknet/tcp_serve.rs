//! The TCP side of `xsknet echo` and `xsknet sink` (RFC 862 and RFC 863
//! define both services over TCP too): a listener on the same port as the
//! UDP socket, its connections served from the same loop (run to
//! completion) or by a thread each (threaded).

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use xsknet::eventpoll::{EPOLLET, EPOLLIN, EPOLLOUT, EPOLLRDHUP};
use xsknet::netdevice::NetDevice;
use xsknet::{EpollEvent, EpollFd, EpollOp, Errno, Fd, SockOpt, SockType, Stack, StackHandle};

/// What the TCP service did, for the exit report.
#[derive(Debug, Default)]
pub struct TcpAppStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Bytes read from connections.
    pub bytes: AtomicU64,
    /// Connections that ended in an error (reset, timeout).
    pub errors: AtomicU64,
}

/// Whether the service echoes what it reads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// RFC 862.
    Echo,
    /// RFC 863.
    Discard,
}

struct Conn {
    fd: Fd,
    /// Bytes read and not yet written back (echo).
    pending: Vec<u8>,
    /// The peer has finished sending.
    eof: bool,
}

/// The events a connection is watched for: edge-triggered, as nginx asks,
/// since a connection's turn runs until a call would block.
const CONN_EVENTS: u32 = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

/// How many ready descriptors one turn takes (the rest wait for the next).
const EVENTS_PER_TURN: usize = 256;

/// A listener and its connections, served run-to-completion: an epoll
/// instance says which are ready, so a turn costs what is ready, not what
/// is open.
pub struct TcpService {
    mode: Mode,
    listen_fd: Fd,
    ep: EpollFd,
    events: Vec<EpollEvent>,
    /// Connections by descriptor number.
    conns: Vec<Option<Conn>>,
    buf: Vec<u8>,
    /// When the descriptor limit was last reported.
    emfile_warned: Option<std::time::Instant>,
    /// Counts.
    pub stats: Arc<TcpAppStats>,
}

/// Says (at most once a minute) that connections wait in the accept queue
/// because the descriptor limit is reached.
pub(crate) fn warn_emfile(last: &mut Option<std::time::Instant>) {
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
        *last = Some(std::time::Instant::now());
        eprintln!(
            "xsknet: accept: Too many open files (EMFILE): connections wait in the accept queue; raise --max-fds"
        );
    }
}

/// How the servers listen: the backlog, and the options the listening
/// socket gets before `bind()`: `SO_REUSEADDR` (a restarted server must
/// not wait for its old connections' TIME-WAIT), and with `--so-keepalive`
/// `SO_KEEPALIVE` and `TCP_KEEPIDLE`/`INTVL`/`CNT`, which the accepted
/// connections inherit (`inet_csk_clone_lock`), as nginx's `so_keepalive`;
/// and those it gets after `listen()`, which would reset them: `TCP_QUICKACK`
/// (`--tcp-quickack`), which its connections inherit too.
#[derive(Clone, Debug)]
pub struct Listen {
    /// `listen()`'s backlog.
    pub backlog: i32,
    /// The listener's options before `bind()`, in order.
    pub opts: Vec<SockOpt>,
    /// The listener's options after `listen()`, in order.
    pub after_listen: Vec<SockOpt>,
}

/// `--so-keepalive`: `on` (Linux's defaults: 7200 s idle, 75 s apart, 9
/// probes) or `IDLE:INTVL:CNT` in seconds and probes, any of them empty for
/// its default (`30m::10`), as nginx's `listen … so_keepalive=`; a time may
/// end in `s`, `m` or `h`.
///
/// # Errors
///
/// A message naming what is wrong, for clap.
pub fn parse_keepalive(s: &str) -> Result<Keepalive, String> {
    let mut opts = vec![SockOpt::KeepAlive(true)];
    if s == "on" {
        return Ok(Keepalive(opts));
    }
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 3 {
        return Err(format!(
            "{s:?}: 'on' or IDLE:INTVL:CNT (e.g. 30m:10:5, or 600::: one left empty keeps its default)"
        ));
    }
    let secs = |p: &str, what: &str| -> Result<u32, String> {
        let (num, unit) = match p.strip_suffix('h') {
            Some(n) => (n, 3600),
            None => match p.strip_suffix('m') {
                Some(n) => (n, 60),
                None => (p.strip_suffix('s').unwrap_or(p), 1),
            },
        };
        let v: u32 = num.parse().map_err(|_| format!("{what} {p:?}: a number of seconds (or with s, m, h)"))?;
        match v.checked_mul(unit) {
            Some(t @ 1..=32767) => Ok(t),
            _ => Err(format!("{what} {p:?}: 1 to 32767 seconds, as TCP_KEEPIDLE/TCP_KEEPINTVL take")),
        }
    };
    if !parts[0].is_empty() {
        opts.push(SockOpt::KeepIdle(secs(parts[0], "idle")?));
    }
    if !parts[1].is_empty() {
        opts.push(SockOpt::KeepIntvl(secs(parts[1], "interval")?));
    }
    if !parts[2].is_empty() {
        match parts[2].parse::<u32>() {
            Ok(n @ 1..=127) => opts.push(SockOpt::KeepCnt(n)),
            _ => return Err(format!("count {:?}: 1 to 127 probes, as TCP_KEEPCNT takes", parts[2])),
        }
    }
    Ok(Keepalive(opts))
}

/// `--so-keepalive`'s socket options, in order ([`parse_keepalive`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Keepalive(pub Vec<SockOpt>);

/// Makes the listening socket: `l`'s options, bound to `local`, listening.
///
/// # Errors
///
/// `setsockopt()`'s, `bind()`'s and `listen()`'s.
pub fn listener<D: NetDevice>(stack: &mut Stack<D>, local: SocketAddrV4, l: &Listen) -> Result<Fd, Errno> {
    let fd = stack.socket(SockType::Stream)?;
    for &opt in &l.opts {
        stack.setsockopt(fd, opt)?;
    }
    stack.bind(fd, local)?;
    stack.listen(fd, l.backlog)?;
    for &opt in &l.after_listen {
        stack.setsockopt(fd, opt)?;
    }
    Ok(fd)
}

/// [`listener`] through a threaded stack's handle.
///
/// # Errors
///
/// As [`listener`].
pub fn listener_threaded(h: &StackHandle, local: SocketAddrV4, l: &Listen) -> Result<Fd, Errno> {
    let fd = h.socket(SockType::Stream)?;
    for &opt in &l.opts {
        h.setsockopt(fd, opt)?;
    }
    h.bind(fd, local)?;
    h.listen(fd, l.backlog)?;
    for &opt in &l.after_listen {
        h.setsockopt(fd, opt)?;
    }
    Ok(fd)
}

impl TcpService {
    /// Serves connections accepted on `listen_fd`.
    ///
    /// # Errors
    ///
    /// What `epoll_ctl` says about `listen_fd` (`EBADF`: not open).
    pub fn new<D: NetDevice>(stack: &mut Stack<D>, mode: Mode, listen_fd: Fd) -> Result<TcpService, Errno> {
        let ep = stack.epoll_create();
        stack.epoll_ctl(ep, EpollOp::Add, listen_fd, EpollEvent::new(EPOLLIN, fd_word(listen_fd)))?;
        Ok(TcpService {
            mode,
            listen_fd,
            ep,
            events: vec![EpollEvent::default(); EVENTS_PER_TURN],
            conns: Vec::new(),
            buf: vec![0; 64 * 1024],
            emfile_warned: None,
            stats: Arc::default(),
        })
    }

    /// Accepts what waits, then reads (and echoes) on every connection that
    /// is ready, as far as the buffers allow without blocking.
    pub fn serve<D: NetDevice>(&mut self, stack: &mut Stack<D>) {
        let n = stack.epoll_wait(self.ep, &mut self.events, Some(Duration::ZERO)).unwrap_or(0);
        for i in 0..n {
            let fd = Fd(self.events[i].data as i32);
            if fd == self.listen_fd {
                self.accept(stack);
                continue;
            }
            if !self.serve_one(stack, fd) {
                if let Some(c) = self.conns.get_mut(fd.0 as usize).and_then(Option::take) {
                    let _ = stack.close(c.fd);
                }
            }
        }
    }

    fn accept<D: NetDevice>(&mut self, stack: &mut Stack<D>) {
        loop {
            match stack.accept(self.listen_fd) {
                Ok((fd, _)) => {
                    self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    // Ready already (data came with the handshake): on the ready list at once.
                    if stack.epoll_ctl(self.ep, EpollOp::Add, fd, EpollEvent::new(CONN_EVENTS, fd_word(fd))).is_err() {
                        let _ = stack.close(fd);
                        continue;
                    }
                    let slot = fd.0 as usize;
                    if self.conns.len() <= slot {
                        self.conns.resize_with(slot + 1, || None);
                    }
                    self.conns[slot] = Some(Conn { fd, pending: Vec::new(), eof: false });
                }
                Err(Errno::EMFILE) => {
                    warn_emfile(&mut self.emfile_warned);
                    break;
                }
                Err(_) => break,
            }
        }
    }

    /// One connection's turn, until a call would block; false when it is over.
    fn serve_one<D: NetDevice>(&mut self, stack: &mut Stack<D>, fd: Fd) -> bool {
        let Some(c) = self.conns.get_mut(fd.0 as usize).and_then(Option::as_mut) else { return true };
        loop {
            if !c.pending.is_empty() {
                match stack.send(c.fd, &c.pending) {
                    Ok(n) => {
                        c.pending.drain(..n);
                        if !c.pending.is_empty() {
                            return true;
                        }
                    }
                    Err(Errno::EAGAIN) => return true,
                    Err(_) => {
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        return false;
                    }
                }
            }
            if c.eof {
                // Everything echoed: close (our FIN follows the data).
                return false;
            }
            match stack.recv(c.fd, &mut self.buf) {
                Ok(0) => c.eof = true,
                Ok(n) => {
                    self.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    if self.mode == Mode::Echo {
                        c.pending.extend_from_slice(&self.buf[..n]);
                    }
                }
                Err(Errno::EAGAIN) => return true,
                Err(_) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
            }
        }
    }

    /// Closes every connection and the listener.
    pub fn close<D: NetDevice>(self, stack: &mut Stack<D>) {
        for c in self.conns.into_iter().flatten() {
            let _ = stack.close(c.fd);
        }
        let _ = stack.close(self.listen_fd);
        let _ = stack.epoll_close(self.ep);
    }
}

/// A descriptor as epoll's user word.
fn fd_word(fd: Fd) -> u64 {
    fd.0 as u64
}

/// The threaded service: accepts on this thread until `stop()`, one thread
/// per connection doing blocking reads and writes.
pub fn serve_threaded(
    h: &StackHandle,
    mode: Mode,
    listen_fd: Fd,
    stats: Arc<TcpAppStats>,
    stop: impl Fn() -> bool,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut threads = Vec::new();
    let mut emfile_warned = None;
    while !stop() {
        let (fd, _) = match h.accept(listen_fd, Some(Duration::from_millis(100))) {
            Ok(v) => v,
            Err(Errno::EMFILE) => {
                warn_emfile(&mut emfile_warned);
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(_) => continue,
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let h = h.clone();
        let stats = stats.clone();
        threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match h.recv(fd, &mut buf, Some(Duration::from_millis(500))) {
                    Ok(0) => break,
                    Ok(n) => {
                        stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
                        if mode == Mode::Echo && h.send(fd, &buf[..n]).is_err() {
                            stats.errors.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                    Err(Errno::EAGAIN) if xsknet::signal::stop_requested() => break,
                    Err(Errno::EAGAIN) => {}
                    Err(_) => {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            let _ = h.close(fd);
        }));
        threads.retain(|t| !t.is_finished());
    }
    threads
}

#[cfg(test)]
mod keepalive_tests {
    use super::*;

    #[test]
    fn so_keepalive_takes_nginx_syntax() {
        let ok = |v: Vec<SockOpt>| Ok(Keepalive(v));
        assert_eq!(parse_keepalive("on"), ok(vec![SockOpt::KeepAlive(true)]));
        assert_eq!(
            parse_keepalive("30m:10:5"),
            ok(vec![SockOpt::KeepAlive(true), SockOpt::KeepIdle(1800), SockOpt::KeepIntvl(10), SockOpt::KeepCnt(5)])
        );
        assert_eq!(parse_keepalive("600::"), ok(vec![SockOpt::KeepAlive(true), SockOpt::KeepIdle(600)]));
        assert_eq!(parse_keepalive("::3"), ok(vec![SockOpt::KeepAlive(true), SockOpt::KeepCnt(3)]));
        assert_eq!(parse_keepalive(":1h:"), ok(vec![SockOpt::KeepAlive(true), SockOpt::KeepIntvl(3600)]));
        for bad in ["off", "600", "1:2", "0::", "10h::", "::128", "x::", "1:2:3:4"] {
            assert!(parse_keepalive(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_keepalive("10h::").unwrap_err().contains("1 to 32767"));
    }
}
