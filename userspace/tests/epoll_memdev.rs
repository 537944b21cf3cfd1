//! epoll over UDP socks on the in-memory device (no kernel, no root): what
//! `epoll_wait` reports, level-triggered, edge-triggered and one-shot, the
//! errors of `epoll_ctl(2)` and `epoll_wait(2)`, and that a closed
//! descriptor leaves every instance (`fs/eventpoll.c`).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use xsknet::eventpoll::{EPOLLERR, EPOLLET, EPOLLHUP, EPOLLIN, EPOLLONESHOT, EPOLLOUT};
use xsknet::netdevice::{MemDevice, MemWire};
use xsknet::umem::Umem;
use xsknet::wire::ethernet::{ethertype, EthernetRepr};
use xsknet::wire::ipv4::protocol;
use xsknet::wire::udp::UdpRepr;
use xsknet::wire::{build, EthernetAddress};
use xsknet::{EpollEvent, EpollFd, EpollOp, Errno, Fd, SockType, Stack, StackConfig};

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const NOW: Option<Duration> = Some(Duration::ZERO);

struct Bench {
    s: Stack<MemDevice>,
    w: MemWire,
}

impl Bench {
    fn new() -> Bench {
        let (umem, pool) = Umem::new(1024, 2048).unwrap();
        let umem = Arc::new(umem);
        let dev = MemDevice::new(umem.clone(), 256, 256);
        let w = dev.wire();
        let mut c = StackConfig::new(OUR_MAC, OUR_IP, 24);
        c.max_fds = 2048;
        Bench { s: Stack::new(dev, umem, Arc::new(pool), c), w }
    }

    /// A UDP socket bound to `port`.
    fn udp(&mut self, port: u16) -> Fd {
        let fd = self.s.socket(SockType::Dgram).unwrap();
        self.s.bind(fd, SocketAddrV4::new(OUR_IP, port)).unwrap();
        fd
    }

    /// A datagram from the peer to `port`, taken by one poll.
    fn datagram(&mut self, port: u16, payload: &[u8]) {
        let eth = EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::IPV4 };
        let ip = build::ipv4_repr(PEER_IP, OUR_IP, protocol::UDP, 0x1234);
        let udp = UdpRepr { src_port: 40000, dst_port: port, payload_len: 0 };
        assert!(self.w.inject(&build::udp_frame(&eth, &ip, &udp, payload)));
        self.s.poll(std::time::Instant::now());
    }

    /// What `epoll_wait` reports now, as (events, data).
    fn ready(&mut self, ep: EpollFd) -> Vec<(u32, u64)> {
        let mut ev = [EpollEvent::default(); 64];
        let n = self.s.epoll_wait(ep, &mut ev, NOW).unwrap();
        ev[..n].iter().map(|e| (e.events, e.data)).collect()
    }

    fn read(&mut self, fd: Fd) -> Result<usize, Errno> {
        let mut buf = [0u8; 2048];
        self.s.recv_from(fd, &mut buf).map(|(n, _)| n)
    }
}

#[test]
fn level_triggered_reports_while_data_waits() {
    let mut b = Bench::new();
    let fd = b.udp(7);
    let ep = b.s.epoll_create();
    b.s.epoll_ctl(ep, EpollOp::Add, fd, EpollEvent::new(EPOLLIN, 70)).unwrap();
    assert_eq!(b.ready(ep), vec![]);
    b.datagram(7, b"one");
    b.datagram(7, b"two");
    assert_eq!(b.ready(ep), vec![(EPOLLIN, 70)]);
    assert_eq!(b.ready(ep), vec![(EPOLLIN, 70)], "still unread: reported again");
    assert_eq!(b.read(fd), Ok(3));
    assert_eq!(b.ready(ep), vec![(EPOLLIN, 70)], "one datagram left");
    assert_eq!(b.read(fd), Ok(3));
    assert_eq!(b.ready(ep), vec![], "read to the end: off the list");
    assert_eq!(b.ready(ep), vec![]);
}

#[test]
fn edge_triggered_reports_once_per_arrival() {
    let mut b = Bench::new();
    let fd = b.udp(7);
    let ep = b.s.epoll_create();
    b.s.epoll_ctl(ep, EpollOp::Add, fd, EpollEvent::new(EPOLLIN | EPOLLET, 1)).unwrap();
    b.datagram(7, b"one");
    assert_eq!(b.ready(ep), vec![(EPOLLIN, 1)]);
    assert_eq!(b.ready(ep), vec![], "unread, but no new wake-up");
    b.datagram(7, b"two");
    assert_eq!(b.ready(ep), vec![(EPOLLIN, 1)], "a new datagram is a new edge");
    assert_eq!(b.read(fd), Ok(3));
    assert_eq!(b.read(fd), Ok(3));
    assert_eq!(b.ready(ep), vec![]);
}

#[test]
fn one_shot_is_disabled_until_modified() {
    let mut b = Bench::new();
    let fd = b.udp(7);
    let ep = b.s.epoll_create();
    b.s.epoll_ctl(ep, EpollOp::Add, fd, EpollEvent::new(EPOLLIN | EPOLLONESHOT, 5)).unwrap();
    b.datagram(7, b"one");
    assert_eq!(b.ready(ep), vec![(EPOLLIN, 5)]);
    b.datagram(7, b"two");
    assert_eq!(b.ready(ep), vec![], "spent: nothing until EPOLL_CTL_MOD");
    b.s.epoll_ctl(ep, EpollOp::Mod, fd, EpollEvent::new(EPOLLIN | EPOLLONESHOT, 6)).unwrap();
    assert_eq!(b.ready(ep), vec![(EPOLLIN, 6)], "armed again, and ready already");
    assert_eq!(b.ready(ep), vec![]);
}

#[test]
fn a_udp_socket_is_writable_at_once_and_errors_and_hangups_are_not_asked_for() {
    let mut b = Bench::new();
    let fd = b.udp(7);
    let ep = b.s.epoll_create();
    b.s.epoll_ctl(ep, EpollOp::Add, fd, EpollEvent::new(EPOLLOUT, 9)).unwrap();
    assert_eq!(b.ready(ep), vec![(EPOLLOUT, 9)]);
    // A datagram makes it readable, which it did not ask for.
    b.datagram(7, b"x");
    assert_eq!(b.ready(ep), vec![(EPOLLOUT, 9)]);
    // Asking for EPOLLERR and EPOLLHUP is allowed, as in Linux, though they
    // are reported whether asked for or not.
    b.s.epoll_ctl(ep, EpollOp::Mod, fd, EpollEvent::new(EPOLLIN | EPOLLERR | EPOLLHUP, 9)).unwrap();
    assert_eq!(b.ready(ep), vec![(EPOLLIN, 9)]);
}

#[test]
fn only_the_woken_descriptor_is_reported_among_a_thousand() {
    let mut b = Bench::new();
    let ep = b.s.epoll_create();
    let fds: Vec<Fd> = (0..1000u16).map(|i| b.udp(10_000 + i)).collect();
    for (i, &fd) in fds.iter().enumerate() {
        b.s.epoll_ctl(ep, EpollOp::Add, fd, EpollEvent::new(EPOLLIN, i as u64)).unwrap();
    }
    assert_eq!(b.ready(ep), vec![]);
    b.datagram(10_000 + 617, b"here");
    b.datagram(10_000 + 3, b"and here");
    assert_eq!(b.ready(ep), vec![(EPOLLIN, 617), (EPOLLIN, 3)], "in the order they were woken");
}

#[test]
fn what_does_not_fit_waits_for_the_next_call() {
    let mut b = Bench::new();
    let ep = b.s.epoll_create();
    let fds: Vec<Fd> = (0..3u16).map(|i| b.udp(7 + i)).collect();
    for (i, &fd) in fds.iter().enumerate() {
        b.s.epoll_ctl(ep, EpollOp::Add, fd, EpollEvent::new(EPOLLIN | EPOLLET, i as u64)).unwrap();
        b.datagram(7 + i as u16, b"d");
    }
    let mut two = [EpollEvent::default(); 2];
    assert_eq!(b.s.epoll_wait(ep, &mut two, NOW), Ok(2));
    assert_eq!((two[0].data, two[1].data), (0, 1));
    let mut one = [EpollEvent::default(); 1];
    assert_eq!(b.s.epoll_wait(ep, &mut one, NOW), Ok(1), "the third, edge-triggered, is not lost");
    assert_eq!(one[0], EpollEvent::new(EPOLLIN, 2));
    assert_eq!(b.s.epoll_wait(ep, &mut one, NOW), Ok(0));
}

#[test]
fn epoll_ctl_and_epoll_wait_fail_as_linux_does() {
    let mut b = Bench::new();
    let fd = b.udp(7);
    let ep = b.s.epoll_create();
    let ev = EpollEvent::new(EPOLLIN, 0);
    assert_eq!(b.s.epoll_ctl(ep, EpollOp::Mod, fd, ev), Err(Errno::ENOENT));
    assert_eq!(b.s.epoll_ctl(ep, EpollOp::Del, fd, ev), Err(Errno::ENOENT));
    b.s.epoll_ctl(ep, EpollOp::Add, fd, ev).unwrap();
    assert_eq!(b.s.epoll_ctl(ep, EpollOp::Add, fd, ev), Err(Errno::EEXIST));
    assert_eq!(b.s.epoll_ctl(ep, EpollOp::Add, Fd(900), ev), Err(Errno::EBADF));
    assert_eq!(b.s.epoll_ctl(EpollFd(42), EpollOp::Add, fd, ev), Err(Errno::EBADF));
    // EPOLLEXCLUSIVE and EPOLLWAKEUP are not implemented: refused, not ignored.
    for flag in [libc::EPOLLEXCLUSIVE as u32, libc::EPOLLWAKEUP as u32, libc::EPOLLPRI as u32] {
        assert_eq!(b.s.epoll_ctl(ep, EpollOp::Mod, fd, EpollEvent::new(EPOLLIN | flag, 0)), Err(Errno::EINVAL));
    }
    assert_eq!(b.s.epoll_wait(ep, &mut [], NOW), Err(Errno::EINVAL), "maxevents 0");
    assert_eq!(b.s.epoll_wait(EpollFd(42), &mut [EpollEvent::default()], NOW), Err(Errno::EBADF));
    b.s.epoll_ctl(ep, EpollOp::Del, fd, ev).unwrap();
    b.datagram(7, b"unwatched");
    assert_eq!(b.ready(ep), vec![]);
    b.s.epoll_close(ep).unwrap();
    assert_eq!(b.s.epoll_close(ep), Err(Errno::EBADF));
    assert_eq!(b.s.epoll_create(), ep, "the lowest free slot again");
}

#[test]
fn a_closed_descriptor_leaves_every_instance() {
    let mut b = Bench::new();
    let fd = b.udp(7);
    let (ep1, ep2) = (b.s.epoll_create(), b.s.epoll_create());
    b.s.epoll_ctl(ep1, EpollOp::Add, fd, EpollEvent::new(EPOLLIN, 1)).unwrap();
    b.s.epoll_ctl(ep2, EpollOp::Add, fd, EpollEvent::new(EPOLLIN | EPOLLET, 2)).unwrap();
    b.datagram(7, b"d");
    b.s.close(fd).unwrap();
    assert_eq!(b.ready(ep1), vec![], "woken, then closed: not reported");
    assert_eq!(b.ready(ep2), vec![]);
    // The number comes back for a new socket, which neither instance watches.
    let again = b.udp(8);
    assert_eq!(again, fd);
    b.datagram(8, b"d");
    assert_eq!(b.ready(ep1), vec![]);
    b.s.epoll_ctl(ep1, EpollOp::Add, again, EpollEvent::new(EPOLLIN, 3)).unwrap();
    assert_eq!(b.ready(ep1), vec![(EPOLLIN, 3)]);
}

#[test]
fn epoll_wait_drives_the_loop_until_the_timeout() {
    let mut b = Bench::new();
    let fd = b.udp(7);
    let ep = b.s.epoll_create();
    b.s.epoll_ctl(ep, EpollOp::Add, fd, EpollEvent::new(EPOLLIN, 1)).unwrap();
    // Waiting in the rx ring, not yet polled: epoll_wait runs the loop.
    let eth = EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::IPV4 };
    let ip = build::ipv4_repr(PEER_IP, OUR_IP, protocol::UDP, 0x1234);
    let udp = UdpRepr { src_port: 40000, dst_port: 7, payload_len: 0 };
    assert!(b.w.inject(&build::udp_frame(&eth, &ip, &udp, b"in the ring")));
    let mut ev = [EpollEvent::default(); 4];
    assert_eq!(b.s.epoll_wait(ep, &mut ev, Some(Duration::from_secs(5))), Ok(1));
    assert_eq!(b.read(fd), Ok(11));
    assert_eq!(b.s.epoll_wait(ep, &mut ev, Some(Duration::from_millis(2))), Ok(0), "the timeout passes");
}

/// Linux (ep_send_events + ep_done_scan) puts the items that did not fit
/// back at the head and the level-triggered ones it reported at the tail, so
/// with maxevents 1 two always-ready descriptors take turns.
#[test]
fn level_triggered_with_small_maxevents_does_not_starve() {
    let mut b = Bench::new();
    let ep = b.s.epoll_create();
    let a = b.udp(7);
    let c = b.udp(8);
    b.s.epoll_ctl(ep, EpollOp::Add, a, EpollEvent::new(EPOLLIN, 1)).unwrap();
    b.s.epoll_ctl(ep, EpollOp::Add, c, EpollEvent::new(EPOLLIN, 2)).unwrap();
    b.datagram(7, b"a");
    b.datagram(8, b"c");
    let mut seen = Vec::new();
    for _ in 0..4 {
        let mut one = [EpollEvent::default(); 1];
        assert_eq!(b.s.epoll_wait(ep, &mut one, NOW), Ok(1));
        seen.push(one[0].data);
    }
    assert!(seen.contains(&2), "the second descriptor is never reported: {seen:?}");
}

/// EPOLLOUT level-triggered on many always-writable UDP sockets, maxevents 4:
/// every descriptor must come up within a few calls.
#[test]
fn level_triggered_epollout_round_robins() {
    let mut b = Bench::new();
    let ep = b.s.epoll_create();
    for i in 0..10u16 {
        let fd = b.udp(100 + i);
        b.s.epoll_ctl(ep, EpollOp::Add, fd, EpollEvent::new(EPOLLOUT, i as u64)).unwrap();
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let mut four = [EpollEvent::default(); 4];
        let n = b.s.epoll_wait(ep, &mut four, NOW).unwrap();
        for e in &four[..n] {
            seen.insert(e.data);
        }
    }
    assert_eq!(seen.len(), 10, "only {seen:?} reported in 10 calls");
}

/// A descriptor closed while on the ready list, its number reused and added
/// again before the next epoll_wait: reported once, not twice.
#[test]
fn fd_reuse_before_the_next_wait_is_not_reported_twice() {
    let mut b = Bench::new();
    let ep = b.s.epoll_create();
    let fd = b.udp(7);
    b.s.epoll_ctl(ep, EpollOp::Add, fd, EpollEvent::new(EPOLLIN, 1)).unwrap();
    b.datagram(7, b"d");
    b.s.close(fd).unwrap();
    let again = b.udp(8);
    assert_eq!(again, fd);
    b.datagram(8, b"e");
    b.s.epoll_ctl(ep, EpollOp::Add, again, EpollEvent::new(EPOLLIN, 2)).unwrap();
    assert_eq!(b.ready(ep), vec![(EPOLLIN, 2)], "first wait");
    assert_eq!(b.ready(ep), vec![(EPOLLIN, 2)], "second wait");
}

/// EPOLL_CTL_DEL then EPOLL_CTL_ADD of a ready descriptor before the next
/// epoll_wait: one event.
#[test]
fn del_then_add_is_reported_once() {
    let mut b = Bench::new();
    let ep = b.s.epoll_create();
    let fd = b.udp(7);
    b.s.epoll_ctl(ep, EpollOp::Add, fd, EpollEvent::new(EPOLLIN | EPOLLET, 1)).unwrap();
    b.datagram(7, b"d");
    b.s.epoll_ctl(ep, EpollOp::Del, fd, EpollEvent::default()).unwrap();
    b.s.epoll_ctl(ep, EpollOp::Add, fd, EpollEvent::new(EPOLLIN | EPOLLET, 2)).unwrap();
    assert_eq!(b.ready(ep), vec![(EPOLLIN, 2)]);
}
