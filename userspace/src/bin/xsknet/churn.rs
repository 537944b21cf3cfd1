//! `--churn-ports LO-HI` of `xsknet echo` and `xsknet sink` (run to
//! completion): while it serves, the application opens and closes sockets on
//! those ports in a cycle, as a server whose clients come and go does. The
//! soak (`xsknet-soak`, docs/soak.md) sends traffic to the same ports, so
//! sockets are closed with datagrams still queued, listeners with connections
//! in their SYN and accept queues: what must give every frame back.
//!
//! Every [`STEP`] it takes one step: it reads (and, echo, answers) up to
//! [`READS_PER_STEP`] datagrams on each open UDP socket and accepts and closes
//! what waits on each listener; closes the oldest socket once [`MAX_OPEN`] are
//! open; and opens the next port of the range, UDP and TCP in turn.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use xsknet::netdevice::NetDevice;
use xsknet::{Errno, Fd, SockOpt, SockType, Stack};

/// Time between steps.
pub const STEP: Duration = Duration::from_millis(2);
/// Sockets open at once, at most.
pub const MAX_OPEN: usize = 24;
/// Datagrams read from each UDP socket per step (the rest wait, and some are
/// still queued when the socket closes).
pub const READS_PER_STEP: usize = 4;
/// Backlog of the churned listeners.
const BACKLOG: i32 = 16;

/// What the churn did, for the exit report.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct ChurnStats {
    /// UDP sockets opened and bound.
    pub udp_opened: u64,
    /// TCP listeners opened.
    pub tcp_listeners_opened: u64,
    /// Sockets closed (either kind).
    pub closed: u64,
    /// Datagrams read on churned UDP sockets.
    pub datagrams: u64,
    /// Connections accepted on churned listeners (and closed at once).
    pub accepted: u64,
    /// `socket`, `bind` or `listen` refused (`EADDRINUSE`, `EMFILE`, …).
    pub open_errors: u64,
}

/// The sockets the churn holds, oldest first.
pub struct Churn {
    ports: (u16, u16),
    next: u16,
    tcp_next: bool,
    open: VecDeque<(Fd, SockType)>,
    last: Instant,
    echo: bool,
    /// Counts.
    pub stats: ChurnStats,
}

impl Churn {
    /// A churn over `ports` (inclusive); `echo`: answer what it reads.
    pub fn new(ports: (u16, u16), echo: bool) -> Churn {
        Churn {
            ports,
            next: ports.0,
            tcp_next: false,
            open: VecDeque::with_capacity(MAX_OPEN + 1),
            last: Instant::now(),
            echo,
            stats: ChurnStats::default(),
        }
    }

    /// One step when [`STEP`] has passed since the last one.
    pub fn maybe_step<D: NetDevice>(&mut self, stack: &mut Stack<D>, buf: &mut [u8]) {
        if self.last.elapsed() < STEP {
            return;
        }
        self.last = Instant::now();
        for &(fd, kind) in &self.open {
            match kind {
                SockType::Dgram => {
                    for _ in 0..READS_PER_STEP {
                        let Ok((n, peer)) = stack.recv_from(fd, buf) else { break };
                        self.stats.datagrams += 1;
                        if self.echo {
                            // A full write queue drops the answer, as a non-blocking sendto would.
                            let _ = stack.send_to(fd, &buf[..n], peer);
                        }
                    }
                }
                SockType::Stream => {
                    while let Ok((c, _)) = stack.accept(fd) {
                        self.stats.accepted += 1;
                        let _ = stack.close(c);
                    }
                }
            }
        }
        if self.open.len() >= MAX_OPEN {
            if let Some((fd, _)) = self.open.pop_front() {
                let _ = stack.close(fd);
                self.stats.closed += 1;
            }
        }
        let port = self.next;
        self.next = if self.next >= self.ports.1 { self.ports.0 } else { self.next + 1 };
        let kind = if self.tcp_next { SockType::Stream } else { SockType::Dgram };
        self.tcp_next = !self.tcp_next;
        match open(stack, kind, port) {
            Ok(fd) => {
                match kind {
                    SockType::Dgram => self.stats.udp_opened += 1,
                    SockType::Stream => self.stats.tcp_listeners_opened += 1,
                }
                self.open.push_back((fd, kind));
            }
            Err(_) => self.stats.open_errors += 1,
        }
    }

    /// Closes every socket it holds.
    pub fn close_all<D: NetDevice>(&mut self, stack: &mut Stack<D>) {
        for (fd, _) in self.open.drain(..) {
            let _ = stack.close(fd);
            self.stats.closed += 1;
        }
    }
}

/// A UDP socket bound to `port`, or a TCP listener on it.
fn open<D: NetDevice>(stack: &mut Stack<D>, kind: SockType, port: u16) -> Result<Fd, Errno> {
    let fd = stack.socket(kind)?;
    let local = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    let r = match kind {
        SockType::Dgram => stack.bind(fd, local),
        SockType::Stream => stack
            .setsockopt(fd, SockOpt::ReuseAddr(true))
            .and_then(|()| stack.bind(fd, local))
            .and_then(|()| stack.listen(fd, BACKLOG)),
    };
    match r {
        Ok(()) => Ok(fd),
        Err(e) => {
            let _ = stack.close(fd);
            Err(e)
        }
    }
}
