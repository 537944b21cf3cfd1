//! The socket API driven by random calls: `socket`, `bind`, `connect`, `listen`, `accept`,
//! `sendto`, `send`, `recvfrom`, `recv`, `shutdown`, `setsockopt`, `close` and the getters
//! (`poll`, and `epoll` beside it),
//! with random arguments, through the public [`xsknet::Stack`] methods, with frames and
//! virtual time in between, and a peer that answers ARP.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use xsknet::eventpoll::{EPOLLIN, EPOLLOUT};
use xsknet::socket::{PollFd, POLLIN, POLLOUT};
use xsknet::stream::CongAlgo;
use xsknet::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use xsknet::wire::build;
use xsknet::wire::ethernet::{self, ethertype, EthernetFrame, EthernetRepr};
use xsknet::{EpollEvent, EpollOp, Errno, Fd, PmtuDisc, SockOpt, SockType};

use super::input::Input;
use super::rx::{check_counters, port, Harness, MAX_OPS, OUR_IP, PEER_IP, PEER_MAC};

/// Descriptors the calls pick from: a few more than the limit, so some are never open.
pub const FDS: u8 = 10;

/// Call tags, after the operations of [`crate::rx::op`] (0-5). Taken modulo [`CALLS`].
pub mod call {
    /// `socket(type)`: a byte (bit 0: stream).
    pub const SOCKET: u8 = 6;
    /// `bind(fd, addr)`.
    pub const BIND: u8 = 7;
    /// `connect(fd, addr)`.
    pub const CONNECT: u8 = 8;
    /// `sendto(fd, len, addr)`.
    pub const SEND_TO: u8 = 9;
    /// `send(fd, len)`.
    pub const SEND: u8 = 10;
    /// `recvfrom(fd, len)`.
    pub const RECV_FROM: u8 = 11;
    /// `recv(fd, len)`.
    pub const RECV: u8 = 12;
    /// `close(fd)`.
    pub const CLOSE: u8 = 13;
    /// `setsockopt(fd, option, value)`.
    pub const SETSOCKOPT: u8 = 14;
    /// `listen(fd, backlog)`.
    pub const LISTEN: u8 = 15;
    /// `accept(fd)`.
    pub const ACCEPT: u8 = 16;
    /// `shutdown(fd, how)`.
    pub const SHUTDOWN: u8 = 17;
    /// The getters: `getsockname`, `getpeername`, `SO_ERROR`, `IP_MTU_DISCOVER`, `IP_MTU`,
    /// `TCP_INFO`, `poll`, and `epoll` beside `poll`.
    pub const GET: u8 = 18;
    /// The peer answers every ARP request we sent since it last looked.
    pub const ARP_ANSWER: u8 = 19;
}

/// How many operation tags there are.
pub const CALLS: u8 = 20;

/// A destination or bind address: ours, any, the peer, broadcasts, another subnet's, or any
/// address the fuzzer spells out.
fn addr(inp: &mut Input<'_>) -> Option<SocketAddrV4> {
    let sel = inp.u8()?;
    let ip = match sel % 8 {
        0 => OUR_IP,
        1 => Ipv4Addr::UNSPECIFIED,
        2 => PEER_IP,
        3 => Ipv4Addr::BROADCAST,
        4 => Ipv4Addr::new(10, 0, 0, 255),
        5 => Ipv4Addr::new(192, 0, 2, 1),
        6 => Ipv4Addr::new(10, 0, 0, 3),
        _ => Ipv4Addr::from(inp.u32()?),
    };
    let p = if sel & 0x80 != 0 { inp.u16()? } else { port(sel >> 3) };
    Some(SocketAddrV4::new(ip, p))
}

/// The result of a call: `Ok`, or an errno Linux has.
fn errno<T>(r: Result<T, Errno>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            assert_ne!(e.name(), "E?", "{e:?} is not an errno");
            None
        }
    }
}

/// The peer's ARP replies to the requests among `frames`.
fn arp_answers(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for f in frames {
        let Ok(eth) = EthernetRepr::parse(&EthernetFrame::new_unchecked(&f[..])) else { continue };
        if eth.ethertype != ethertype::ARP {
            continue;
        }
        let Ok(req) = ArpRepr::parse(&ArpPacket::new_unchecked(&f[ethernet::HEADER_LEN..])) else { continue };
        if req.operation != ArpOperation::Request || req.target_ip != PEER_IP {
            continue;
        }
        let reply = ArpRepr {
            operation: ArpOperation::Reply,
            sender_hw: PEER_MAC,
            sender_ip: PEER_IP,
            target_hw: req.sender_hw,
            target_ip: req.sender_ip,
        };
        out.push(build::arp_frame(
            &EthernetRepr { dst: req.sender_hw, src: PEER_MAC, ethertype: ethertype::ARP },
            &reply,
        ));
    }
    out
}

/// `socket_api`: a script of calls ([`call`]) and operations ([`crate::rx::op`]) on a stack
/// with at most 8 descriptors. Nothing panics; every error is an errno Linux has; after
/// every step the frame census adds up and at the end, after closing every descriptor and
/// letting virtual time run out the protocols' timers, no frame is held anywhere but the
/// kernel's rings and the free lists, and the link and IP counters add up.
pub fn socket_api(data: &[u8]) {
    let mut h = Harness::new(|c| {
        c.max_fds = 8;
        c.rcvbuf = 16 * 2048;
        c.sndbuf = 16 * 2048;
    });
    let zeros = vec![0x5au8; 65_000 + 0x2000];
    let mut buf = vec![0u8; 65_000 + 0x2000];
    let mut inp = Input::new(data);
    for _ in 0..MAX_OPS {
        let Some(tag) = inp.u8() else { break };
        let tag = tag % CALLS;
        let Some(done) = h.common_op(tag, &mut inp) else { break };
        if done {
            continue;
        }
        if step(&mut h, tag, &mut inp, &zeros, &mut buf).is_none() {
            break;
        }
        h.check_census();
    }
    for fd in 0..FDS {
        let _ = h.s.close(Fd(i32::from(fd)));
    }
    assert_eq!(h.s.open_fds(), 0);
    // Run out the timers: ARP gives up, TCP's retransmissions, FIN-WAIT and TIME-WAIT end,
    // reassembly queues expire.
    for _ in 0..40 {
        h.now += Duration::from_secs(30);
        h.poll();
        let out = h.take();
        for a in arp_answers(&out) {
            h.inject(&a);
        }
    }
    h.settle();
    check_counters(&h.s.snmp(), h.accepted, h.taken, false);
    h.s.release_backlog();
    let c = h.s.frame_census();
    assert_eq!(c.accounted(), c.total, "{c:?}");
    assert_eq!((c.in_socks, c.awaiting_neighbour, c.tx_backlog, c.in_reasm), (0, 0, 0, 0), "{c:?}");
}

/// One call; `None` when the input ends.
fn step(h: &mut Harness, tag: u8, inp: &mut Input<'_>, zeros: &[u8], buf: &mut [u8]) -> Option<()> {
    let s = &mut h.s;
    match tag {
        call::SOCKET => {
            let t = if inp.u8()? & 1 == 0 { SockType::Dgram } else { SockType::Stream };
            errno(s.socket(t));
        }
        call::BIND => {
            let fd = fd(inp)?;
            errno(s.bind(fd, addr(inp)?));
        }
        call::CONNECT => {
            let fd = fd(inp)?;
            errno(s.connect(fd, addr(inp)?));
        }
        call::SEND_TO => {
            let fd = fd(inp)?;
            let len = len(inp)?;
            if let Some(n) = errno(s.send_to(fd, &zeros[..len], addr(inp)?)) {
                assert!(n <= len);
            }
        }
        call::SEND => {
            let fd = fd(inp)?;
            let len = len(inp)?;
            if let Some(n) = errno(s.send(fd, &zeros[..len])) {
                assert!(n <= len);
            }
        }
        call::RECV_FROM => {
            let fd = fd(inp)?;
            let len = len(inp)?;
            if let Some((n, _)) = errno(s.recv_from(fd, &mut buf[..len])) {
                assert!(n <= len);
            }
        }
        call::RECV => {
            let fd = fd(inp)?;
            let len = len(inp)?;
            if let Some(n) = errno(s.recv(fd, &mut buf[..len])) {
                assert!(n <= len);
            }
        }
        call::CLOSE => {
            errno(s.close(fd(inp)?));
        }
        call::SETSOCKOPT => {
            let fd = fd(inp)?;
            let (which, v) = (inp.u8()?, inp.u32()?);
            let opt = match which % 16 {
                0 => SockOpt::RcvBuf(v as usize),
                1 => SockOpt::SndBuf(v as usize),
                2 => SockOpt::RcvLowat(v as usize),
                3 => SockOpt::Linger((v & 1 != 0).then(|| Duration::from_secs(u64::from(v >> 1) % 100))),
                4 => SockOpt::ReuseAddr(v & 1 != 0),
                5 => SockOpt::TcpNodelay(v & 1 != 0),
                6 => SockOpt::BusyPoll(Duration::from_micros(u64::from(v) % 2_000_000)),
                7 => SockOpt::KeepAlive(v & 1 != 0),
                8 => SockOpt::KeepIdle(v),
                9 => SockOpt::KeepIntvl(v),
                10 => SockOpt::KeepCnt(v),
                11 => SockOpt::UserTimeout(v),
                12 => SockOpt::Congestion(if v & 1 == 0 { CongAlgo::Cubic } else { CongAlgo::Reno }),
                // SO_MAX_PACING_RATE: 0, a rate in bytes per second, or ~0.
                13 => SockOpt::MaxPacingRate(if v == u32::MAX { u64::MAX } else { u64::from(v) }),
                _ => SockOpt::MtuDiscover(
                    [PmtuDisc::Dont, PmtuDisc::Want, PmtuDisc::Do, PmtuDisc::Probe][(v % 4) as usize],
                ),
            };
            errno(s.setsockopt(fd, opt));
        }
        call::LISTEN => {
            let fd = fd(inp)?;
            errno(s.listen(fd, i32::from(inp.u16()? as i16)));
        }
        call::ACCEPT => {
            errno(s.accept(fd(inp)?));
        }
        call::SHUTDOWN => {
            let fd = fd(inp)?;
            let how =
                [xsknet::Shutdown::Read, xsknet::Shutdown::Write, xsknet::Shutdown::Both][usize::from(inp.u8()? % 3)];
            errno(s.shutdown(fd, how));
        }
        call::GET => {
            let fd = fd(inp)?;
            errno(s.local_addr(fd));
            errno(s.peer_addr(fd));
            errno(s.socket_error(fd));
            errno(s.mtu_discover(fd));
            errno(s.ip_mtu(fd));
            errno(s.tcp_info(fd));
            let mut fds = [PollFd::new(fd, POLLIN | POLLOUT)];
            let n = s.poll_fds(&mut fds, Some(Duration::ZERO));
            assert!(n <= 1);
            // epoll beside poll: a level-triggered instance reports what poll just did.
            let ep = s.epoll_create();
            if errno(s.epoll_ctl(ep, EpollOp::Add, fd, EpollEvent::new(EPOLLIN | EPOLLOUT, 7))).is_some() {
                let mut ev = [EpollEvent::default(); 2];
                let m = s.epoll_wait(ep, &mut ev, Some(Duration::ZERO)).expect("an open instance, room for one");
                assert!(m <= 1);
                let got = if m == 1 { ev[0].events } else { 0 };
                assert_eq!(got, fds[0].revents as u32, "epoll and poll disagree on {fd:?}");
            }
            s.epoll_close(ep).expect("the instance just made");
        }
        call::ARP_ANSWER => {
            let out = h.take();
            for a in arp_answers(&out) {
                h.inject(&a);
            }
        }
        _ => unreachable!("tags are taken modulo CALLS"),
    }
    Some(())
}

/// A descriptor, open or not.
fn fd(inp: &mut Input<'_>) -> Option<Fd> {
    Some(Fd(i32::from(inp.u8()? % FDS)))
}

/// A buffer length: mostly small, sometimes past the largest datagram.
fn len(inp: &mut Input<'_>) -> Option<usize> {
    let v = inp.u16()?;
    Some(if v & 0x8000 != 0 { 65_000 + usize::from(v & 0x1fff) } else { usize::from(v) % 3000 })
}
