//! The TCP side of `xsknet echo` and `xsknet sink` (RFC 862 and RFC 863
//! define both services over TCP too): a listener on the same port as the
//! UDP socket, its connections served from the same loop (run to
//! completion) or by a thread each (threaded).

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use xsknet::netdevice::NetDevice;
use xsknet::{Errno, Fd, SockOpt, SockType, Stack, StackHandle};

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

/// A listener and its connections, served run-to-completion.
pub struct TcpService {
    mode: Mode,
    listen_fd: Fd,
    conns: Vec<Conn>,
    buf: Vec<u8>,
    /// When the descriptor limit was last reported.
    emfile_warned: Option<std::time::Instant>,
    /// Counts.
    pub stats: Arc<TcpAppStats>,
}

/// Says (at most once a minute) that connections wait in the accept queue
/// because the descriptor limit is reached.
fn warn_emfile(last: &mut Option<std::time::Instant>) {
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
        *last = Some(std::time::Instant::now());
        eprintln!(
            "xsknet: accept: Too many open files (EMFILE): connections wait in the accept queue; raise --max-fds"
        );
    }
}

/// Makes the listening socket: `SO_REUSEADDR` (a restarted server must not
/// wait for its old connections' TIME-WAIT), bound to `local`, listening.
///
/// # Errors
///
/// `bind()`'s and `listen()`'s.
pub fn listener<D: NetDevice>(stack: &mut Stack<D>, local: SocketAddrV4, backlog: i32) -> Result<Fd, Errno> {
    let fd = stack.socket(SockType::Stream)?;
    stack.setsockopt(fd, SockOpt::ReuseAddr(true))?;
    stack.bind(fd, local)?;
    stack.listen(fd, backlog)?;
    Ok(fd)
}

impl TcpService {
    /// Serves connections accepted on `listen_fd`.
    pub fn new(mode: Mode, listen_fd: Fd) -> TcpService {
        TcpService {
            mode,
            listen_fd,
            conns: Vec::new(),
            buf: vec![0; 64 * 1024],
            emfile_warned: None,
            stats: Arc::default(),
        }
    }

    /// Accepts what waits, then reads (and echoes) on every connection, as
    /// far as the buffers allow without blocking.
    pub fn serve<D: NetDevice>(&mut self, stack: &mut Stack<D>) {
        loop {
            match stack.accept(self.listen_fd) {
                Ok((fd, _)) => {
                    self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    self.conns.push(Conn { fd, pending: Vec::new(), eof: false });
                }
                Err(Errno::EMFILE) => {
                    warn_emfile(&mut self.emfile_warned);
                    break;
                }
                Err(_) => break,
            }
        }
        let mut i = 0;
        while i < self.conns.len() {
            if self.serve_one(stack, i) {
                i += 1;
            } else {
                let c = self.conns.swap_remove(i);
                let _ = stack.close(c.fd);
            }
        }
    }

    /// One connection's turn; false when it is over.
    fn serve_one<D: NetDevice>(&mut self, stack: &mut Stack<D>, i: usize) -> bool {
        let c = &mut self.conns[i];
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
        for c in self.conns {
            let _ = stack.close(c.fd);
        }
        let _ = stack.close(self.listen_fd);
    }
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
