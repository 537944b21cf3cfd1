//! The socket listing: every socket with its state, queues, addresses and
//! buffer memory, as `ss` gets them from the kernel through `inet_diag`
//! (net/ipv4/inet_diag.c, tcp_diag.c, udp_diag.c; `ss` in iproute2).
//!
//! [`inet_diag`] walks the loop's tables (the fd table, the bound sockets,
//! TCP's control blocks, SYN queues and TIME-WAIT socks), so it runs on the
//! loop's thread, on request, never per packet.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering;

use crate::fdtable::FdTable;
use crate::inet_hashtables::InetHashTables;
use crate::ipv4::tcp::info::{tcp_get_info, TcpInfo};
use crate::ipv4::tcp::table::TcpTable;
use crate::sock::Sock;
use crate::stream::TcpState;
use crate::wire::ipv4::protocol;

/// A socket's protocol, as `ss` names it in its `Netid` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Netid {
    /// A datagram socket.
    Udp,
    /// A stream socket.
    Tcp,
}

/// A socket's memory, as `ss -m` prints it in `skmem:(…)` (`struct
/// inet_diag_meminfo` / `SK_MEMINFO_*`), in bytes, plus the UMEM frames it holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SkMem {
    /// `r`: bytes charged to the receive queue (`sk_rmem_alloc`).
    pub rmem_alloc: u64,
    /// `rb`: the receive buffer (`sk_rcvbuf`).
    pub rcvbuf: u64,
    /// `t`: bytes handed down and not yet freed (`sk_wmem_alloc`): a
    /// datagram socket's write queue; 0 for TCP, whose segments are copied
    /// into frames and hold nothing once sent.
    pub wmem_alloc: u64,
    /// `tb`: the send buffer (`sk_sndbuf`; for TCP as memory pressure left it).
    pub sndbuf: u64,
    /// `f`: bytes reserved and not yet used (`sk_forward_alloc`; TCP).
    pub forward_alloc: u64,
    /// `w`: bytes queued to send and charged to `tcp_mem` (`sk_wmem_queued`; TCP).
    pub wmem_queued: u64,
    /// UMEM frames on the socket's queues (xsknet's own: a datagram holds its frame).
    pub frames: u64,
}

/// One socket, as a line of `ss` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SockDiag {
    /// UDP or TCP.
    pub netid: Netid,
    /// The state `ss` prints: a TCP state (`ESTAB`, `LISTEN`, `SYN-RECV`,
    /// `TIME-WAIT`, …); for UDP `UNCONN`, or `ESTAB` once connected.
    pub state: TcpState,
    /// `Recv-Q`: bytes waiting to be read (a listener: connections waiting
    /// in the accept queue).
    pub recv_q: u64,
    /// `Send-Q`: bytes not yet acknowledged or sent (a listener: its backlog).
    pub send_q: u64,
    /// The local address (`0.0.0.0:0` when unbound).
    pub local: SocketAddrV4,
    /// The peer, when connected.
    pub remote: Option<SocketAddrV4>,
    /// The descriptor in the stack's fd table, if the application holds one
    /// (a connection in the accept queue, a request sock or a TIME-WAIT sock has none).
    pub fd: Option<i32>,
    /// Buffer memory (`ss -m`).
    pub skmem: SkMem,
    /// TCP's `tcp_info` (`ss -i`), for a TCP socket with a control block.
    pub tcp_info: Option<TcpInfo>,
}

/// Every socket of the stack: UDP socks bound or open, TCP control blocks
/// (listeners and connections, with or without a descriptor), each
/// listener's request socks (`SYN-RECV`), TIME-WAIT socks, and TCP sockets
/// open but neither connected nor listening. `addr` is our address, the
/// local address of a request sock on a wildcard listener. Sorted by
/// protocol, local port, then peer.
pub fn inet_diag(files: &FdTable, socks: &InetHashTables, tcp: &TcpTable, addr: Ipv4Addr) -> Vec<SockDiag> {
    let fds: HashMap<*const Sock, i32> = files.iter().map(|(fd, s)| (std::sync::Arc::as_ptr(s), fd.0)).collect();
    let fd_of = |s: &Sock| fds.get(&(s as *const Sock)).copied();
    let mut out = Vec::new();
    let mut seen_tcp: Vec<*const Sock> = Vec::new();

    for (_, cb) in tcp.iter() {
        seen_tcp.push(&*cb.sock as *const Sock);
        let t = cb.sock.tcp();
        let (recv_q, send_q) = match (&cb.listener, t) {
            (Some(_), Some(t)) => (t.accept_backlog() as u64, t.max_backlog.load(Ordering::Relaxed) as u64),
            (None, Some(t)) => (t.stream.rcv_queued() as u64, t.stream.snd_queued() as u64),
            _ => (0, 0),
        };
        out.push(SockDiag {
            netid: Netid::Tcp,
            state: cb.state,
            recv_q,
            send_q,
            // A listener shows the address it was bound to (0.0.0.0 for a wildcard).
            local: if cb.state == TcpState::Listen { cb.sock.local().unwrap_or(cb.local) } else { cb.local },
            remote: (cb.state != TcpState::Listen).then_some(cb.remote),
            fd: fd_of(&cb.sock),
            skmem: SkMem {
                forward_alloc: cb.mem.forward_alloc as u64,
                wmem_queued: cb.mem.wmem_queued as u64,
                ..skmem(&cb.sock)
            },
            tcp_info: Some(tcp_get_info(cb.state, Some(cb))),
        });
        if let Some(l) = &cb.listener {
            let local_ip = if cb.local.ip().is_unspecified() { addr } else { *cb.local.ip() };
            for peer in l.syn_queue.keys() {
                out.push(SockDiag {
                    netid: Netid::Tcp,
                    state: TcpState::SynRecv,
                    recv_q: 0,
                    send_q: 0,
                    local: SocketAddrV4::new(local_ip, cb.local.port()),
                    remote: Some(*peer),
                    fd: None,
                    skmem: SkMem::default(),
                    tcp_info: None,
                });
            }
        }
    }
    for (key, tw) in &tcp.tw {
        out.push(SockDiag {
            netid: Netid::Tcp,
            state: tw.substate,
            recv_q: 0,
            send_q: 0,
            local: key.local,
            remote: Some(key.remote),
            fd: None,
            skmem: SkMem::default(),
            tcp_info: None,
        });
    }

    let mut seen_udp: Vec<*const Sock> = Vec::new();
    for s in socks.socks().chain(files.iter().map(|(_, s)| s)) {
        let p = std::sync::Arc::as_ptr(s);
        if s.protocol == protocol::TCP {
            // A TCP socket without a control block: open, maybe bound, not yet
            // connecting or listening.
            if seen_tcp.contains(&p) {
                continue;
            }
            seen_tcp.push(p);
            let state = s.tcp().map_or(TcpState::Close, |t| t.stream.state());
            out.push(SockDiag {
                netid: Netid::Tcp,
                state,
                recv_q: 0,
                send_q: 0,
                local: s.local().unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
                remote: None,
                fd: fd_of(s),
                skmem: skmem(s),
                tcp_info: Some(tcp_get_info(state, None)),
            });
            continue;
        }
        if seen_udp.contains(&p) {
            continue;
        }
        seen_udp.push(p);
        let remote = s.remote();
        out.push(SockDiag {
            netid: Netid::Udp,
            state: if remote.is_some() { TcpState::Established } else { TcpState::Close },
            recv_q: s.rmem_alloc() as u64,
            send_q: s.wmem_alloc() as u64,
            local: s.local().unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
            remote,
            fd: fd_of(s),
            skmem: skmem(s),
            tcp_info: None,
        });
    }
    out.sort_by_key(|d| (d.netid, d.local.port(), d.remote.map(|r| (u32::from(*r.ip()), r.port())), d.fd));
    out
}

fn skmem(s: &Sock) -> SkMem {
    let (rmem_alloc, wmem_alloc) = match s.tcp() {
        Some(t) => (t.stream.rcv_queued() as u64, 0),
        None => (s.rmem_alloc() as u64, s.wmem_alloc() as u64),
    };
    SkMem {
        rmem_alloc,
        rcvbuf: s.rcvbuf() as u64,
        wmem_alloc,
        sndbuf: s.sndbuf() as u64,
        forward_alloc: 0,
        wmem_queued: 0,
        frames: s.queued() as u64,
    }
}
