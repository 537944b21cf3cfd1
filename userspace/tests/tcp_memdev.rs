//! TCP over the in-memory device against a scripted peer, on virtual time:
//! every segment we send is parsed back and checked field by field (flags,
//! sequence and acknowledgment numbers, options, window) against what Linux
//! sends in the same place (net/ipv4/tcp_input.c, tcp_output.c,
//! tcp_minisocks.c, tcp_timer.c, tcp_ipv4.c), and the counters against the
//! ones Linux moves (`nstat` names). Time is `t0 + Duration` passed to
//! `Stack::poll`, so the 127-second SYN timeout or a 60-second TIME-WAIT takes
//! microseconds. Every test ends with the frame census balanced and no
//! socket left but TIME-WAIT.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xsknet::eventpoll::{EPOLLET, EPOLLIN, EPOLLOUT, EPOLLRDHUP};
use xsknet::netdevice::{MemDevice, MemWire};
use xsknet::snmp::Mib;
use xsknet::socket::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDHUP};
use xsknet::stream::CongAlgo;
use xsknet::umem::Umem;
use xsknet::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use xsknet::wire::ethernet::{ethertype, EthernetFrame, EthernetRepr, HEADER_LEN as ETH_LEN};
use xsknet::wire::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use xsknet::wire::tcp::{flags, SackBlock, TcpOptions, TcpPacket, TcpRepr};
use xsknet::wire::{build, EthernetAddress};
use xsknet::{
    EpollEvent, EpollOp, Errno, Fd, PollFd, Shutdown, SockOpt, SockType, Stack, StackConfig, TcpInfo, TcpState,
};

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const FRAMES: u32 = 512;
/// Our listening port.
const LPORT: u16 = 80;
/// The peer's port.
const PPORT: u16 = 40000;
/// The peer's initial sequence number.
const PISN: u32 = 0x1000_0000;
/// The window Linux puts in a SYN or SYN-ACK with a 128 KiB receive buffer
/// and MSS 1460 (`tcp_select_initial_window`: 65535 rounded down to the MSS).
const SYN_WINDOW: u16 = 64240;
/// The peer's window field after the handshake (scaled by 10: 64512 bytes).
const PEER_WIN: u16 = 63;
/// Our window field after the handshake: 64240 rounded up to the scale
/// unit (1 << 10) and scaled, as Linux 6.18 sends it (`win 63` in tcpdump).
const OUR_WIN: u16 = 63;
const MSS: usize = 1460;

const SYN: u8 = flags::SYN;
const ACK: u8 = flags::ACK;
const RST: u8 = flags::RST;
const FIN: u8 = flags::FIN;
const PSH: u8 = flags::PSH;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A segment as it left the stack: header and data.
#[derive(Clone, Debug)]
struct Seg {
    r: TcpRepr,
    data: Vec<u8>,
}

impl Seg {
    fn flags(&self) -> u8 {
        self.r.flags
    }
}

/// The options a Linux SYN carries with timestamps off: MSS 1460,
/// SACK-permitted, window scale 10 (Linux 6.16 and later).
fn linux_syn_options() -> TcpOptions {
    TcpOptions { mss: Some(1460), sack_permitted: true, window_scale: Some(10), ..TcpOptions::default() }
}

/// A SYN or SYN-ACK from the peer as Linux sends it: its options and its
/// window (`sport` → `dport`).
fn syn_hdr(sport: u16, dport: u16, seq: u32, ack: u32, fl: u8) -> TcpRepr {
    TcpRepr { options: linux_syn_options(), ..hdr(sport, dport, seq, ack, fl, SYN_WINDOW) }
}

/// A header from the peer (`sport` → `dport`).
fn hdr(sport: u16, dport: u16, seq: u32, ack: u32, fl: u8, window: u16) -> TcpRepr {
    TcpRepr { src_port: sport, dst_port: dport, seq, ack, flags: fl, window, ..TcpRepr::default() }
}

/// The stack, its wire, and the virtual clock.
struct Bench {
    s: Stack<MemDevice>,
    w: MemWire,
    t0: Instant,
    now: Instant,
}

impl Bench {
    fn new() -> Bench {
        Bench::with_config(|_| {})
    }

    /// [`Bench::new`] with a configuration `tweak` changes.
    fn with_config(tweak: impl FnOnce(&mut StackConfig)) -> Bench {
        let (umem, pool) = Umem::new(FRAMES, 2048).unwrap();
        let umem = Arc::new(umem);
        let dev = MemDevice::new(umem.clone(), 256, 256);
        let w = dev.wire();
        let mut c = StackConfig::new(OUR_MAC, OUR_IP, 24);
        tweak(&mut c);
        let s = Stack::new(dev, umem, Arc::new(pool), c);
        let t0 = Instant::now();
        let mut b = Bench { s, w, t0, now: t0 };
        // The peer asks for us first, so both sides know each other.
        let repr = ArpRepr {
            operation: ArpOperation::Request,
            sender_hw: PEER_MAC,
            sender_ip: PEER_IP,
            target_hw: EthernetAddress::default(),
            target_ip: OUR_IP,
        };
        let eth = EthernetRepr { dst: EthernetAddress::BROADCAST, src: PEER_MAC, ethertype: ethertype::ARP };
        b.w.inject(&build::arp_frame(&eth, &repr));
        b.s.poll(t0);
        assert_eq!(b.w.take_transmitted().len(), 1, "one ARP reply");
        b
    }

    /// Moves the clock to `t0 + d` and runs the loop (timers included).
    fn at(&mut self, d: Duration) {
        let now = self.t0 + d;
        assert!(now >= self.now, "time goes forward");
        self.now = now;
        self.s.poll(now);
    }

    /// Time since `t0`.
    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Runs the loop now.
    fn poll(&mut self) {
        self.s.poll(self.now);
    }

    /// The peer sends `r` with `data` (from `PEER_IP`), and the loop runs.
    fn send(&mut self, r: TcpRepr, data: &[u8]) {
        self.inject(&r, data);
        self.s.poll(self.now);
    }

    /// The peer's segment `r` with `data` waits in the rx ring.
    fn inject(&mut self, r: &TcpRepr, data: &[u8]) {
        let eth = EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::IPV4 };
        let ip = build::ipv4_repr(PEER_IP, OUR_IP, protocol::TCP, 0x1234);
        assert!(self.w.inject(&build::tcp_frame(&eth, &ip, r, data)));
    }

    /// The peer's segments `rs` (no data) all wait in the rx ring, and one
    /// poll takes them: the ACKs of one burst, handled at one instant.
    fn send_batch(&mut self, rs: &[TcpRepr]) {
        for r in rs {
            self.inject(r, &[]);
        }
        self.s.poll(self.now);
    }

    /// What we sent since the last call: TCP segments, checked (Ethernet,
    /// IPv4 with DF, TTL 64, checksum). An ARP request for the peer is
    /// answered and the loop run again.
    fn out(&mut self) -> Vec<Seg> {
        self.s.poll(self.now);
        let mut segs = Vec::new();
        loop {
            let frames = self.w.take_transmitted();
            if frames.is_empty() {
                return segs;
            }
            let mut arp = false;
            for f in frames {
                let e = EthernetRepr::parse(&EthernetFrame::new_unchecked(&f[..])).unwrap();
                if e.ethertype == ethertype::ARP {
                    let a = ArpRepr::parse(&ArpPacket::new_unchecked(&f[ETH_LEN..])).unwrap();
                    assert_eq!((a.operation, a.target_ip), (ArpOperation::Request, PEER_IP));
                    arp = true;
                    continue;
                }
                assert_eq!((e.ethertype, e.dst, e.src), (ethertype::IPV4, PEER_MAC, OUR_MAC));
                let p = Ipv4Packet::new_unchecked(&f[ETH_LEN..]);
                let ip = Ipv4Repr::parse(&p).expect("valid IP header");
                assert_eq!((ip.src, ip.dst, ip.protocol, ip.ttl), (OUR_IP, PEER_IP, protocol::TCP, 64));
                let bytes = p.payload();
                let t = TcpPacket::new_checked(bytes).expect("valid TCP header");
                assert!(t.verify_checksum(OUR_IP, PEER_IP), "TCP checksum");
                segs.push(Seg { r: TcpRepr::parse(&t), data: t.payload().to_vec() });
            }
            if arp {
                let repr = ArpRepr {
                    operation: ArpOperation::Reply,
                    sender_hw: PEER_MAC,
                    sender_ip: PEER_IP,
                    target_hw: OUR_MAC,
                    target_ip: OUR_IP,
                };
                let eth = EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::ARP };
                self.w.inject(&build::arp_frame(&eth, &repr));
                self.s.poll(self.now);
            }
        }
    }

    /// Exactly one segment went out; it is returned.
    fn one(&mut self) -> Seg {
        let out = self.out();
        assert_eq!(out.len(), 1, "one segment at {:?}: {out:?}", self.elapsed());
        out.into_iter().next().unwrap()
    }

    /// Nothing went out.
    fn none(&mut self) {
        let out = self.out();
        let brief: Vec<_> = out.iter().map(|s| (s.r.seq, s.r.ack, s.r.flags, s.data.len())).collect();
        assert!(out.is_empty(), "nothing at {:?}: {brief:?}", self.elapsed());
    }

    fn revents(&mut self, fd: Fd, events: i16) -> i16 {
        let mut p = [PollFd::new(fd, events)];
        self.s.poll_fds(&mut p, Some(Duration::ZERO));
        p[0].revents
    }

    fn listener(&mut self, backlog: i32) -> Fd {
        let fd = self.s.socket(SockType::Stream).unwrap();
        self.s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, LPORT)).unwrap();
        self.s.listen(fd, backlog).unwrap();
        fd
    }

    /// A passive open from the peer's `pport` with Linux's SYN options; returns
    /// our ISN (the handshake complete, the child on the accept queue).
    fn handshake_in(&mut self, pport: u16) -> u32 {
        let syn = syn_hdr(pport, LPORT, PISN, 0, SYN);
        self.send(syn, &[]);
        let sa = self.one();
        assert_eq!(sa.flags(), SYN | ACK);
        let iss = sa.r.seq;
        self.send(hdr(pport, LPORT, PISN + 1, iss.wrapping_add(1), ACK, PEER_WIN), &[]);
        self.none();
        iss
    }

    /// A listener on `LPORT` and one accepted connection from `PPORT`:
    /// (listener, connection, our ISN).
    fn accepted(&mut self) -> (Fd, Fd, u32) {
        let l = self.listener(16);
        let iss = self.handshake_in(PPORT);
        let (fd, peer) = self.s.accept(l).unwrap();
        assert_eq!(peer, SocketAddrV4::new(PEER_IP, PPORT));
        (l, fd, iss)
    }

    /// An active open to the peer's `PPORT`, answered: (connection, our
    /// port, our ISN).
    fn connected(&mut self) -> (Fd, u16, u32) {
        let fd = self.s.socket(SockType::Stream).unwrap();
        assert_eq!(self.s.connect(fd, SocketAddrV4::new(PEER_IP, PPORT)), Err(Errno::EINPROGRESS));
        let syn = self.one();
        let port = syn.r.src_port;
        let iss = syn.r.seq;
        let sa = syn_hdr(PPORT, port, PISN, iss.wrapping_add(1), SYN | ACK);
        self.send(sa, &[]);
        let ack = self.one();
        assert_eq!((ack.flags(), ack.r.seq, ack.r.ack), (ACK, iss.wrapping_add(1), PISN + 1));
        assert_eq!(self.s.socket_error(fd), Ok(None));
        (fd, port, iss)
    }

    fn state(&self, fd: Fd) -> TcpState {
        self.s.tcp_info(fd).unwrap().state
    }

    /// Every frame accounted for, and no socket left but TIME-WAIT.
    fn end(&mut self) {
        self.out();
        let c = self.s.frame_census();
        assert_eq!(c.accounted(), c.total, "frames lost or duplicated: {c:?}");
        for (state, n) in self.s.tcp_states() {
            assert!(state == TcpState::TimeWait || n == 0, "{state:?} × {n} left");
        }
    }
}

/// TCP socks by state, in the order of the state numbers.
fn states(b: &Bench) -> Vec<(TcpState, usize)> {
    let mut v = b.s.tcp_states();
    v.retain(|&(_, n)| n > 0);
    v.sort_by_key(|&(s, _)| s as u8);
    v
}

/// Reads everything waiting on `fd`.
fn read_all(b: &mut Bench, fd: Fd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match b.s.recv(fd, &mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN) => return out,
            Err(e) => panic!("recv: {e:?}"),
        }
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + 3) as u8).collect()
}

// ---------------------------------------------------------------- passive open

#[test]
fn passive_open_answers_with_linux_syn_ack_and_accepts() {
    let mut b = Bench::new();
    let l = b.listener(16);
    assert_eq!(b.s.accept(l), Err(Errno::EAGAIN));
    let syn = syn_hdr(PPORT, LPORT, PISN, 0, SYN);
    b.send(syn, &[]);
    let sa = b.one();
    assert_eq!((sa.r.src_port, sa.r.dst_port), (LPORT, PPORT));
    assert_eq!((sa.flags(), sa.r.ack, sa.r.window), (SYN | ACK, PISN + 1, SYN_WINDOW));
    let want = TcpOptions { mss: Some(1460), sack_permitted: true, window_scale: Some(10), ..TcpOptions::default() };
    assert_eq!(sa.r.options, want);
    assert!(sa.data.is_empty());
    // tcp_options_write: MSS, NOP NOP SACK-perm, NOP WS.
    let mut raw = [0u8; 12];
    sa.r.options.emit(&mut raw);
    assert_eq!(raw, [2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 10]);
    assert_eq!(b.s.accept(l), Err(Errno::EAGAIN), "no child before the final ACK");
    assert_eq!(b.s.snmp().TcpPassiveOpens, 0, "not per SYN");
    b.send(hdr(PPORT, LPORT, PISN + 1, sa.r.seq.wrapping_add(1), ACK, PEER_WIN), &[]);
    b.none();
    assert_ne!(b.revents(l, POLLIN) & POLLIN, 0, "the listener is readable");
    let (fd, peer) = b.s.accept(l).unwrap();
    assert_eq!(peer, SocketAddrV4::new(PEER_IP, PPORT));
    assert_eq!(b.state(fd), TcpState::Established);
    assert_eq!(b.s.accept(l), Err(Errno::EAGAIN));
    let info = b.s.tcp_info(fd).unwrap();
    assert_eq!((info.snd_mss, info.snd_wnd), (1460, 63 << 10));
    let m = b.s.snmp();
    assert_eq!((m.TcpPassiveOpens, m.TcpActiveOpens, m.TcpCurrEstab), (1, 0, 1));
    assert_eq!((m.TcpInSegs, m.TcpOutSegs, m.TcpRetransSegs, m.TcpOutRsts), (2, 1, 0, 0));
    // ISNs are not predictable: a second connection's differs by more than time.
    let iss2 = b.handshake_in(PPORT + 1);
    assert_ne!(iss2, sa.r.seq);
    assert_eq!(b.s.snmp().TcpPassiveOpens, 2, "once per completed handshake");
    b.s.close(l).unwrap();
    // The unaccepted child is reset as the listener goes (inet_csk_listen_stop).
    let rst = b.one();
    assert_eq!(
        (rst.flags(), rst.r.dst_port, rst.r.seq, rst.r.ack),
        (RST | ACK, PPORT + 1, iss2.wrapping_add(1), PISN + 1)
    );
    // The accepted connection lives on without its listener and closes with our FIN.
    b.s.close(fd).unwrap();
    let fin = b.one();
    assert_eq!((fin.flags(), fin.r.seq, fin.r.ack), (FIN | ACK, sa.r.seq.wrapping_add(1), PISN + 1));
    b.send(hdr(PPORT, LPORT, PISN + 1, sa.r.seq.wrapping_add(2), FIN | ACK, PEER_WIN), &[]);
    let ack = b.one();
    assert_eq!((ack.flags(), ack.r.seq, ack.r.ack), (ACK, sa.r.seq.wrapping_add(2), PISN + 2));
    b.end();
}

#[test]
fn syn_ack_carries_only_the_options_the_syn_had() {
    let mut b = Bench::new();
    let l = b.listener(16);
    // No options: MSS alone (Linux always sends its MSS), unscaled window.
    b.send(hdr(PPORT, LPORT, PISN, 0, SYN, 8192), &[]);
    let sa = b.one();
    assert_eq!(sa.r.options, TcpOptions { mss: Some(1460), ..TcpOptions::default() });
    assert_eq!(sa.r.window, SYN_WINDOW);
    // SACK-permitted alone.
    let mut syn = hdr(PPORT + 1, LPORT, PISN, 0, SYN, 8192);
    syn.options = TcpOptions { mss: Some(1400), sack_permitted: true, ..TcpOptions::default() };
    b.send(syn, &[]);
    let sa2 = b.one();
    assert_eq!(sa2.r.options, TcpOptions { mss: Some(1460), sack_permitted: true, ..TcpOptions::default() });
    // Window scale alone.
    let mut syn = hdr(PPORT + 2, LPORT, PISN, 0, SYN, 8192);
    syn.options = TcpOptions { window_scale: Some(2), ..TcpOptions::default() };
    b.send(syn, &[]);
    let sa3 = b.one();
    assert_eq!(sa3.r.options, TcpOptions { mss: Some(1460), window_scale: Some(10), ..TcpOptions::default() });
    // Complete the first: no window scaling, the MSS 536 default for sending.
    b.send(hdr(PPORT, LPORT, PISN + 1, sa.r.seq.wrapping_add(1), ACK, 8192), &[]);
    let (fd, _) = b.s.accept(l).unwrap();
    let info = b.s.tcp_info(fd).unwrap();
    assert_eq!((info.snd_mss, info.snd_wnd), (536, 8192));
    assert_eq!(b.s.send(fd, &[7u8; 1000]), Ok(1000));
    b.poll();
    let out = b.out();
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].data.len(), out[0].flags()), (536, ACK));
    assert_eq!((out[1].data.len(), out[1].flags()), (464, ACK | PSH));
    // Our window is unscaled on this connection: 64240 bytes offered as is.
    assert_eq!(out[0].r.window, SYN_WINDOW);
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.s.close(l).unwrap();
    let rst = b.one();
    assert_eq!(rst.flags(), RST | ACK);
    b.end();
}

#[test]
fn retransmitted_syn_gets_the_syn_ack_again() {
    let mut b = Bench::new();
    let l = b.listener(16);
    let syn = syn_hdr(PPORT, LPORT, PISN, 0, SYN);
    b.send(syn, &[]);
    let first = b.one();
    b.at(ms(500));
    b.send(syn, &[]);
    let again = b.one();
    assert_eq!(again.r, first.r, "the same SYN-ACK: same ISN, options, window");
    let m = b.s.snmp();
    assert_eq!((m.TcpOutSegs, m.TcpRetransSegs, m.TcpExtTCPSynRetrans), (2, 1, 1), "tcp_make_synack counts each");
    // The request's timer restarts from the resent SYN-ACK (tcp_check_req:
    // mod_timer_pending with reqsk_timeout): 1.5 s, not 1 s.
    b.at(ms(1000));
    b.none();
    b.at(ms(1499));
    b.none();
    b.at(ms(1500));
    assert_eq!(b.one().r, first.r);
    b.send(hdr(PPORT, LPORT, PISN + 1, first.r.seq.wrapping_add(1), ACK, PEER_WIN), &[]);
    assert_eq!(b.s.snmp().TcpPassiveOpens, 1);
    let (fd, _) = b.s.accept(l).unwrap();
    abort_close_and_end(&mut b, fd, l);
}

#[test]
fn syn_ack_is_retransmitted_with_backoff_then_the_request_goes() {
    let mut b = Bench::new();
    let l = b.listener(16);
    let syn = syn_hdr(PPORT, LPORT, PISN, 0, SYN);
    b.send(syn, &[]);
    let first = b.one();
    // reqsk_timer_handler: TCP_TIMEOUT_INIT << num_timeout, tcp_synack_retries 5.
    let mut t = 0;
    for gap in [1u64, 2, 4, 8, 16] {
        b.at(secs(t + gap) - ms(1));
        b.none();
        t += gap;
        b.at(secs(t));
        let sa = b.one();
        assert_eq!(sa.r, first.r, "the same SYN-ACK at {t} s");
    }
    // The last SYN-ACK gets 32 s; then the request is dropped.
    b.at(secs(t + 31));
    b.none();
    b.at(secs(t + 32));
    b.none();
    let m = b.s.snmp();
    assert_eq!((m.TcpOutSegs, m.TcpRetransSegs, m.TcpExtTCPTimeouts), (6, 5, 6));
    // The final ACK now finds no request: the listener resets it.
    b.send(hdr(PPORT, LPORT, PISN + 1, first.r.seq.wrapping_add(1), ACK, PEER_WIN), &[]);
    let rst = b.one();
    assert_eq!((rst.flags(), rst.r.seq, rst.r.ack), (RST, first.r.seq.wrapping_add(1), 0));
    assert_eq!(b.s.accept(l), Err(Errno::EAGAIN));
    assert_eq!(b.s.snmp().TcpPassiveOpens, 0);
    b.s.close(l).unwrap();
    b.end();
}

#[test]
fn backlog_one_holds_two_children_then_syns_are_dropped() {
    let mut b = Bench::new();
    let l = b.listener(1);
    b.handshake_in(PPORT);
    b.handshake_in(PPORT + 1);
    // sk_acceptq_is_full: 2 > 1. The SYN is dropped silently.
    let syn = syn_hdr(PPORT + 2, LPORT, PISN, 0, SYN);
    b.send(syn, &[]);
    b.none();
    let m = b.s.snmp();
    assert_eq!((m.TcpExtListenOverflows, m.TcpExtListenDrops, m.TcpPassiveOpens), (1, 1, 2));
    // accept() makes room; the peer's retransmitted SYN is answered.
    let (a, _) = b.s.accept(l).unwrap();
    b.at(secs(1));
    b.send(syn, &[]);
    let sa = b.one();
    assert_eq!((sa.flags(), sa.r.ack), (SYN | ACK, PISN + 1));
    b.send(hdr(PPORT + 2, LPORT, PISN + 1, sa.r.seq.wrapping_add(1), ACK, PEER_WIN), &[]);
    b.none();
    assert_eq!(b.s.snmp().TcpPassiveOpens, 3);
    let (c, _) = b.s.accept(l).unwrap();
    let (d, _) = b.s.accept(l).unwrap();
    assert_eq!(b.s.accept(l), Err(Errno::EAGAIN));
    for fd in [a, c, d] {
        b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
        b.s.close(fd).unwrap();
    }
    assert_eq!(b.out().len(), 3, "three RSTs");
    b.s.close(l).unwrap();
    b.end();
}

/// A drop capture (`--pcap-drops`) sees a SYN the full accept queue dropped,
/// under `TcpExtListenOverflows`, and nothing of the handshakes that passed.
#[test]
fn a_syn_dropped_by_a_full_accept_queue_is_captured_with_its_reason() {
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
    use pcap_file::pcapng::{Block, PcapNgReader};
    use xsknet::capture::{drop_comment, CaptureMode, CaptureOptions, CaptureTap};
    use xsknet::snmp::MibCounter;

    let path = std::env::temp_dir().join(format!("xsknet-tcp-drops-{}.pcapng", std::process::id()));
    let mut b = Bench::new();
    b.s.attach_capture(CaptureTap::start(&CaptureOptions::new(&path, CaptureMode::Drops, 2048)).unwrap());
    let _l = b.listener(1);
    b.handshake_in(PPORT);
    b.handshake_in(PPORT + 1);
    let syn = syn_hdr(PPORT + 2, LPORT, PISN, 0, SYN);
    b.send(syn, &[]);
    b.none();
    assert_eq!(b.s.snmp().TcpExtListenOverflows, 1);
    let sum = b.s.detach_capture().unwrap().finish();
    assert_eq!(sum.frames_written, 1, "{sum:?}");
    let mut r = PcapNgReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let mut got = Vec::new();
    while let Some(block) = r.next_block() {
        if let Block::EnhancedPacket(p) = block.unwrap() {
            let comment = p.options.iter().find_map(|o| match o {
                EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                _ => None,
            });
            let tcp = TcpPacket::new_unchecked(&p.data[ETH_LEN + 20..]);
            got.push((comment, tcp.src_port(), tcp.flags()));
        }
    }
    assert_eq!(got, vec![(Some(drop_comment(MibCounter::TcpExtListenOverflows)), PPORT + 2, SYN)]);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn final_ack_to_a_full_accept_queue_is_dropped_and_the_syn_ack_resent() {
    let mut b = Bench::new();
    let l = b.listener(1);
    b.handshake_in(PPORT);
    // Two requests wait while the accept queue holds one child.
    let syn = syn_hdr(PPORT + 1, LPORT, PISN, 0, SYN);
    b.send(syn, &[]);
    let sa1 = b.one();
    let mut syn2 = syn;
    syn2.src_port = PPORT + 2;
    b.send(syn2, &[]);
    let sa2 = b.one();
    assert_eq!(sa2.flags(), SYN | ACK);
    b.send(hdr(PPORT + 1, LPORT, PISN + 1, sa1.r.seq.wrapping_add(1), ACK, PEER_WIN), &[]);
    b.none();
    // Full (two children): the third final ACK is dropped, no RST
    // (tcp_abort_on_overflow 0), the request stays.
    b.send(hdr(PPORT + 2, LPORT, PISN + 1, sa2.r.seq.wrapping_add(1), ACK, PEER_WIN), &[]);
    b.none();
    let m = b.s.snmp();
    assert_eq!((m.TcpExtListenOverflows, m.TcpExtListenDrops, m.TcpPassiveOpens), (1, 1, 2));
    // Its SYN-ACK timer resends the SYN-ACK at 1 s.
    b.at(secs(1));
    let again = b.one();
    assert_eq!(again.r, sa2.r);
    let (a, _) = b.s.accept(l).unwrap();
    b.send(hdr(PPORT + 2, LPORT, PISN + 1, sa2.r.seq.wrapping_add(1), ACK, PEER_WIN), &[]);
    b.none();
    assert_eq!(b.s.snmp().TcpPassiveOpens, 3);
    let (c, _) = b.s.accept(l).unwrap();
    let (d, peer) = b.s.accept(l).unwrap();
    assert_eq!(peer.port(), PPORT + 2);
    for fd in [a, c, d] {
        b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
        b.s.close(fd).unwrap();
    }
    b.s.close(l).unwrap();
    b.end();
}

#[test]
fn ack_or_data_to_a_listener_gets_a_rst_from_its_ack_field() {
    let mut b = Bench::new();
    let l = b.listener(16);
    b.send(hdr(PPORT, LPORT, 5000, 0xdead_beef, ACK, PEER_WIN), b"data");
    let rst = b.one();
    assert_eq!((rst.flags(), rst.r.seq, rst.r.ack, rst.r.window), (RST, 0xdead_beef, 0, 0));
    assert_eq!((rst.r.src_port, rst.r.dst_port), (LPORT, PPORT));
    // A RST to a listener is ignored.
    b.send(hdr(PPORT, LPORT, 5000, 0, RST, 0), &[]);
    b.none();
    let m = b.s.snmp();
    assert_eq!((m.TcpOutRsts, m.TcpOutSegs, m.TcpInSegs), (1, 1, 2));
    b.s.close(l).unwrap();
    b.end();
}

// ---------------------------------------------------------------- active open

#[test]
fn active_open_sends_syn_with_options_and_completes_through_poll() {
    let mut b = Bench::new();
    let fd = b.s.socket(SockType::Stream).unwrap();
    assert_eq!(b.s.connect(fd, SocketAddrV4::new(PEER_IP, PPORT)), Err(Errno::EINPROGRESS));
    assert_eq!(b.s.connect(fd, SocketAddrV4::new(PEER_IP, PPORT)), Err(Errno::EALREADY));
    let syn = b.one();
    assert_eq!((syn.flags(), syn.r.ack, syn.r.window, syn.r.dst_port), (SYN, 0, SYN_WINDOW, PPORT));
    assert!((32768..=60999).contains(&syn.r.src_port), "ephemeral port {}", syn.r.src_port);
    // Linux's SYN with its defaults (tcp_timestamps=1): timestamps too,
    // TSecr 0, laid out by tcp_options_write as MSS, SACK-permitted beside
    // the timestamps, NOP window scale.
    let (tsval, tsecr) = syn.r.options.timestamp.expect("timestamps on the SYN");
    assert_eq!(tsecr, 0);
    assert_eq!(syn.r.options, TcpOptions { timestamp: Some((tsval, 0)), ..linux_syn_options() });
    let mut raw = [0u8; 20];
    syn.r.options.emit(&mut raw);
    let v = tsval.to_be_bytes();
    assert_eq!(raw, [2, 4, 0x05, 0xb4, 4, 2, 8, 10, v[0], v[1], v[2], v[3], 0, 0, 0, 0, 1, 3, 3, 10]);
    assert_eq!(b.state(fd), TcpState::SynSent);
    assert_eq!(b.revents(fd, POLLOUT), 0);
    assert_eq!(b.s.send(fd, b"x"), Err(Errno::EAGAIN));
    let iss = syn.r.seq;
    b.at(ms(10));
    let sa = syn_hdr(PPORT, syn.r.src_port, PISN, iss.wrapping_add(1), SYN | ACK);
    b.send(sa, &[]);
    let ack = b.one();
    // tcp_send_ack after tcp_finish_connect: our window from rcv_ssthresh, scaled by 10.
    assert_eq!((ack.flags(), ack.r.seq, ack.r.ack, ack.r.window), (ACK, iss.wrapping_add(1), PISN + 1, OUR_WIN));
    assert_eq!(ack.r.options, TcpOptions::default());
    assert_eq!(b.revents(fd, POLLOUT), POLLOUT);
    assert_eq!(b.s.socket_error(fd), Ok(None));
    assert_eq!(b.state(fd), TcpState::Established);
    let info = b.s.tcp_info(fd).unwrap();
    assert_eq!((info.snd_mss, info.snd_wnd, info.rtt_us), (1460, SYN_WINDOW as u32, 10_000));
    let m = b.s.snmp();
    assert_eq!((m.TcpActiveOpens, m.TcpCurrEstab, m.TcpOutSegs, m.TcpInSegs), (1, 1, 2, 1));
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    let rst = b.one();
    assert_eq!((rst.flags(), rst.r.seq, rst.r.ack), (RST | ACK, iss.wrapping_add(1), PISN + 1));
    let m = b.s.snmp();
    assert_eq!((m.TcpEstabResets, m.TcpCurrEstab, m.TcpOutRsts, m.TcpExtTCPAbortOnData), (1, 0, 1, 1));
    b.end();
}

#[test]
fn rst_ack_to_our_syn_refuses_the_connection() {
    let mut b = Bench::new();
    let fd = b.s.socket(SockType::Stream).unwrap();
    assert_eq!(b.s.connect(fd, SocketAddrV4::new(PEER_IP, PPORT)), Err(Errno::EINPROGRESS));
    let syn = b.one();
    let iss = syn.r.seq;
    // A RST without ACK, and a RST|ACK of something else, are ignored in SYN-SENT.
    b.send(hdr(PPORT, syn.r.src_port, 0, 0, RST, 0), &[]);
    b.send(hdr(PPORT, syn.r.src_port, 0, iss.wrapping_add(7), RST | ACK, 0), &[]);
    b.none();
    assert_eq!(b.state(fd), TcpState::SynSent);
    // A bare ACK of something else gets a RST from its ACK field.
    b.send(hdr(PPORT, syn.r.src_port, 77, iss.wrapping_add(7), ACK, 0), &[]);
    let rst = b.one();
    assert_eq!((rst.flags(), rst.r.seq, rst.r.ack), (RST, iss.wrapping_add(7), 0));
    assert_eq!(b.state(fd), TcpState::SynSent);
    // What a closed Linux port answers: RST|ACK, seq 0, ack ISS + 1.
    b.send(hdr(PPORT, syn.r.src_port, 0, iss.wrapping_add(1), RST | ACK, 0), &[]);
    b.none();
    // tcp_poll after tcp_done: shut both ways (SHUTDOWN_MASK), with an error;
    // Linux reports 0x201d here (a refused connect to 127.0.0.1:1).
    let all = POLLIN | POLLOUT | POLLRDHUP;
    assert_eq!(b.revents(fd, all), POLLIN | POLLOUT | POLLERR | POLLHUP | POLLRDHUP);
    assert_eq!(b.s.socket_error(fd), Ok(Some(Errno::ECONNREFUSED)));
    let m = b.s.snmp();
    assert_eq!((m.TcpActiveOpens, m.TcpAttemptFails, m.TcpEstabResets, m.TcpCurrEstab), (1, 1, 0, 0));
    b.s.close(fd).unwrap();
    b.end();
}

/// `tcp_poll`'s hang-up bits, each as Linux 6.18 reports them (the values
/// in the comments are what `poll(2)` returned for a kernel socket in the
/// same place, asked for POLLIN | POLLOUT | POLLRDHUP): a fresh socket is
/// POLLOUT | POLLHUP (0x14); shut down both ways before the peer's FIN,
/// everything but POLLERR (0x2015); reset by the peer, everything
/// (0x201d), and then the first send fails with ECONNRESET, the next with
/// EPIPE, and reads return 0.
#[test]
fn poll_hang_up_bits_are_tcp_polls() {
    let mut b = Bench::new();
    let all = POLLIN | POLLOUT | POLLRDHUP;
    let fresh = b.s.socket(SockType::Stream).unwrap();
    assert_eq!(b.revents(fresh, all), POLLOUT | POLLHUP, "a fresh socket");
    b.s.close(fresh).unwrap();

    let (fd, port, iss) = b.connected();
    assert_eq!(b.revents(fd, all), POLLOUT, "connected");
    b.s.shutdown(fd, Shutdown::Both).unwrap();
    assert_eq!(b.revents(fd, all), POLLIN | POLLOUT | POLLHUP | POLLRDHUP, "shut down both ways, no FIN yet");
    b.poll();
    let fin = b.one();
    assert_eq!((fin.flags() & FIN, fin.r.seq), (FIN, iss.wrapping_add(1)));
    b.s.close(fd).unwrap();
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(2), RST | ACK, 0), &[]);
    b.none();

    let (l, fd, iss) = b.accepted();
    assert_eq!(b.revents(fd, all), POLLOUT, "accepted");
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(1), RST | ACK, 0), &[]);
    b.none();
    assert_eq!(b.revents(fd, all), POLLIN | POLLOUT | POLLERR | POLLHUP | POLLRDHUP, "reset by the peer");
    assert_eq!(b.s.send(fd, b"x"), Err(Errno::ECONNRESET));
    assert_eq!(b.s.send(fd, b"x"), Err(Errno::EPIPE));
    assert_eq!(b.s.recv(fd, &mut [0u8; 8]), Ok(0));
    assert_eq!(b.revents(fd, all), POLLIN | POLLOUT | POLLHUP | POLLRDHUP, "the error taken");
    b.s.close(fd).unwrap();
    b.s.close(l).unwrap();
    b.end();
}

#[test]
fn simultaneous_open_goes_through_syn_recv() {
    let mut b = Bench::new();
    let fd = b.s.socket(SockType::Stream).unwrap();
    assert_eq!(b.s.connect(fd, SocketAddrV4::new(PEER_IP, PPORT)), Err(Errno::EINPROGRESS));
    let syn = b.one();
    let (port, iss) = (syn.r.src_port, syn.r.seq);
    // The peer's SYN crosses ours.
    let psyn = syn_hdr(PPORT, port, PISN, 0, SYN);
    b.send(psyn, &[]);
    let sa = b.one();
    assert_eq!((sa.flags(), sa.r.seq, sa.r.ack, sa.r.window), (SYN | ACK, iss, PISN + 1, SYN_WINDOW));
    // The SYN sent again with ACK (tcp_send_synack): tcp_syn_options puts
    // timestamps on it whenever tcp_timestamps is on, TSecr 0 as the
    // peer's SYN had none; the connection then goes without them.
    let own_ts = sa.r.options.timestamp;
    assert_eq!(own_ts.map(|t| t.1), Some(0));
    assert_eq!(sa.r.options, TcpOptions { timestamp: own_ts, ..linux_syn_options() });
    assert_eq!(b.state(fd), TcpState::SynRecv);
    // Its SYN-ACK answers ours (tcp_validate_incoming lets this SYN pass in SYN-RECV).
    let psa = syn_hdr(PPORT, port, PISN, iss.wrapping_add(1), SYN | ACK);
    b.send(psa, &[]);
    assert_eq!(b.state(fd), TcpState::Established);
    // tcp_data_queue takes the SYN as a retransmission: an ACK at once.
    let ack = b.one();
    assert_eq!((ack.flags(), ack.r.seq, ack.r.ack), (ACK, iss.wrapping_add(1), PISN + 1));
    assert_eq!(ack.r.options.timestamp, None, "the peer's SYN had no timestamps");
    assert_eq!(b.s.snmp().TcpExtDelayedACKLost, 1);
    assert_eq!(b.revents(fd, POLLOUT), POLLOUT);
    assert_eq!(b.s.socket_error(fd), Ok(None));
    let m = b.s.snmp();
    assert_eq!((m.TcpActiveOpens, m.TcpPassiveOpens, m.TcpCurrEstab, m.TcpExtTCPChallengeACK), (1, 0, 1, 0));
    // Data flows.
    b.out();
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(1), ACK | PSH, PEER_WIN), b"hi");
    assert_eq!(read_all(&mut b, fd), b"hi");
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.end();
}

#[test]
fn ephemeral_ports_skip_a_four_tuple_in_time_wait() {
    let mut b = Bench::new();
    let (fd, port, iss) = b.connected();
    // We close first: FIN-WAIT-1, -2, then TIME-WAIT on the peer's FIN.
    b.s.close(fd).unwrap();
    let fin = b.one();
    assert_eq!((fin.flags(), fin.r.seq), (FIN | ACK, iss.wrapping_add(1)));
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(2), FIN | ACK, PEER_WIN), &[]);
    let ack = b.one();
    assert_eq!((ack.flags(), ack.r.seq, ack.r.ack), (ACK, iss.wrapping_add(2), PISN + 2));
    assert_eq!(states(&b), vec![(TcpState::TimeWait, 1)]);
    // Many connects to the same peer: never the port in TIME-WAIT.
    let mut fds = Vec::new();
    for _ in 0..200 {
        let fd = b.s.socket(SockType::Stream).unwrap();
        assert_eq!(b.s.connect(fd, SocketAddrV4::new(PEER_IP, PPORT)), Err(Errno::EINPROGRESS));
        let s = b.one();
        assert_ne!(s.r.src_port, port);
        assert!((32768..=60999).contains(&s.r.src_port));
        fds.push(fd);
    }
    for fd in fds {
        b.s.close(fd).unwrap();
    }
    b.end();
}

// ---------------------------------------------------------------- no socket

#[test]
fn segments_for_no_socket_get_the_rst_tcp_v4_send_reset_builds() {
    let mut b = Bench::new();
    // SYN: seq 0, ACK = SEG.SEQ + 1.
    b.send(hdr(PPORT, 81, PISN, 0, SYN, SYN_WINDOW), &[]);
    let r = b.one();
    assert_eq!((r.flags(), r.r.seq, r.r.ack, r.r.window), (RST | ACK, 0, PISN + 1, 0));
    assert_eq!((r.r.src_port, r.r.dst_port), (81, PPORT));
    assert!(r.r.options.is_empty() && r.data.is_empty());
    // SYN with data: + data.
    b.send(hdr(PPORT, 81, PISN, 0, SYN, SYN_WINDOW), b"abcd");
    assert_eq!(b.one().r.ack, PISN + 5);
    // FIN with data and no ACK: + data + 1.
    b.send(hdr(PPORT, 81, 500, 0, FIN, 1000), b"abc");
    let r = b.one();
    assert_eq!((r.flags(), r.r.seq, r.r.ack), (RST | ACK, 0, 504));
    // Anything with ACK: seq = its ACK field, no ACK flag.
    b.send(hdr(PPORT, 81, 500, 0x8000_0001, ACK | PSH, 1000), b"abc");
    let r = b.one();
    assert_eq!((r.flags(), r.r.seq, r.r.ack), (RST, 0x8000_0001, 0));
    b.send(hdr(PPORT, 81, 500, 42, FIN | ACK, 1000), &[]);
    let r = b.one();
    assert_eq!((r.flags(), r.r.seq, r.r.ack), (RST, 42, 0));
    // Never a RST for a RST.
    b.send(hdr(PPORT, 81, 500, 42, RST | ACK, 0), &[]);
    b.send(hdr(PPORT, 81, 500, 0, RST, 0), &[]);
    b.none();
    let m = b.s.snmp();
    assert_eq!((m.TcpInSegs, m.TcpOutRsts, m.TcpOutSegs, m.TcpInErrs), (7, 5, 5, 0));
    b.end();
}

// ---------------------------------------------------------------- RFC 5961

#[test]
fn rst_resets_only_at_rcv_nxt_else_challenge_ack() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    // In the window but not RCV.NXT: a challenge ACK, nothing else.
    b.send(hdr(PPORT, LPORT, PISN + 1 + 1000, 0, RST, 0), &[]);
    let c = b.one();
    assert_eq!((c.flags(), c.r.seq, c.r.ack, c.r.window), (ACK, iss.wrapping_add(1), PISN + 1, OUR_WIN));
    assert_eq!(b.state(fd), TcpState::Established);
    assert_eq!(b.s.snmp().TcpExtTCPChallengeACK, 1);
    // Out of the window: dropped silently.
    b.at(ms(600));
    b.send(hdr(PPORT, LPORT, PISN.wrapping_sub(100_000), 0, RST, 0), &[]);
    b.none();
    // Exactly RCV.NXT: reset.
    b.send(hdr(PPORT, LPORT, PISN + 1, 0, RST, 0), &[]);
    b.none();
    let mut buf = [0u8; 8];
    assert_eq!(b.s.recv(fd, &mut buf), Err(Errno::ECONNRESET));
    assert_eq!(b.state(fd), TcpState::Close);
    let m = b.s.snmp();
    assert_eq!((m.TcpEstabResets, m.TcpCurrEstab, m.TcpExtTCPChallengeACK, m.TcpOutRsts), (1, 0, 1, 0));
    b.s.close(fd).unwrap();
    b.none();
    b.s.close(l).unwrap();
    b.end();
}

#[test]
fn syn_on_an_established_connection_gets_a_challenge_ack_rate_limited() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    b.send(hdr(PPORT, LPORT, PISN + 1, 0, SYN, SYN_WINDOW), &[]);
    let c = b.one();
    assert_eq!((c.flags(), c.r.seq, c.r.ack), (ACK, iss.wrapping_add(1), PISN + 1));
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPSYNChallenge, m.TcpExtTCPChallengeACK, m.TcpInErrs), (1, 1, 1));
    // tcp_send_challenge_ack: at most one per 500 ms (tcp_invalid_ratelimit).
    b.at(ms(100));
    b.send(hdr(PPORT, LPORT, PISN + 1, 0, SYN, SYN_WINDOW), &[]);
    b.send(hdr(PPORT, LPORT, PISN + 1 + 10, 0, RST, 0), &[]);
    b.none();
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPSYNChallenge, m.TcpExtTCPChallengeACK, m.TcpExtTCPACKSkippedChallenge), (2, 1, 2));
    b.at(ms(500));
    b.send(hdr(PPORT, LPORT, PISN + 1 + 10, 0, RST, 0), &[]);
    assert_eq!(b.one().r.ack, PISN + 1);
    assert_eq!(b.s.snmp().TcpExtTCPChallengeACK, 2);
    assert_eq!(b.state(fd), TcpState::Established);
    // In CLOSE-WAIT the SYN is challenged the same, but TcpInErrs counts
    // only on the established fast path (tcp_rcv_established's syn_inerr).
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(1), FIN | ACK, PEER_WIN), &[]);
    b.at(ms(1100));
    b.out();
    assert_eq!(b.state(fd), TcpState::CloseWait);
    b.send(hdr(PPORT, LPORT, PISN + 2, 0, SYN, SYN_WINDOW), &[]);
    let c = b.one();
    assert_eq!((c.flags(), c.r.seq, c.r.ack), (ACK, iss.wrapping_add(1), PISN + 2));
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPSYNChallenge, m.TcpExtTCPChallengeACK, m.TcpInErrs), (3, 3, 2));
    abort_close_and_end(&mut b, fd, l);
}

#[test]
fn out_of_window_data_gets_a_duplicate_ack_and_is_dropped() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    // Beyond the window.
    b.send(hdr(PPORT, LPORT, PISN + 1 + 1_000_000, iss.wrapping_add(1), ACK, PEER_WIN), b"far");
    let d = b.one();
    assert_eq!((d.flags(), d.r.seq, d.r.ack), (ACK, iss.wrapping_add(1), PISN + 1));
    // Old data (a retransmission of what we have): acknowledged at once.
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(1), ACK, PEER_WIN), b"abc");
    b.at(ms(40));
    let a = b.one();
    assert_eq!(a.r.ack, PISN + 4);
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(1), ACK, PEER_WIN), b"abc");
    let d = b.one();
    assert_eq!((d.flags(), d.r.ack), (ACK, PISN + 4));
    assert_eq!(b.s.snmp().TcpExtDelayedACKLost, 1);
    assert_eq!(read_all(&mut b, fd), b"abc");
    b.s.close(fd).unwrap();
    b.s.close(l).unwrap();
    let fin = b.one();
    assert_eq!(fin.flags(), FIN | ACK);
    b.send(hdr(PPORT, LPORT, PISN + 4, iss.wrapping_add(2), RST, 0), &[]);
    b.end();
}

#[test]
fn syn_is_retransmitted_linearly_then_with_backoff_until_etimedout() {
    let mut b = Bench::new();
    let fd = b.s.socket(SockType::Stream).unwrap();
    assert_eq!(b.s.connect(fd, SocketAddrV4::new(PEER_IP, PPORT)), Err(Errno::EINPROGRESS));
    let syn = b.one();
    // Linux 6.18 (tcp_syn_retries 6, tcp_syn_linear_timeouts 4), as tcpdump
    // shows it: four retransmissions a second apart after the first, then
    // backoff; tcp_write_timeout gives up after 6 + 4 retransmissions.
    for t in [1u64, 2, 3, 4, 5, 7, 11, 19, 35, 67] {
        b.at(secs(t) - ms(1));
        b.none();
        b.at(secs(t));
        let again = b.one();
        // The same SYN, its TSval from the clock of the moment (ms).
        let tsval = |s: &Seg| s.r.options.timestamp.expect("timestamps").0;
        assert_eq!(tsval(&again).wrapping_sub(tsval(&syn)), t as u32 * 1000, "TSval at {t} s");
        let same = TcpRepr { options: TcpOptions { timestamp: syn.r.options.timestamp, ..again.r.options }, ..again.r };
        assert_eq!(same, syn.r, "the same SYN at {t} s");
        assert_eq!(b.s.socket_error(fd), Ok(None));
    }
    b.at(secs(131) - ms(1));
    b.none();
    assert_eq!(b.state(fd), TcpState::SynSent);
    b.at(secs(131));
    b.none();
    assert_ne!(b.revents(fd, POLLOUT) & POLLERR, 0);
    assert_eq!(b.s.socket_error(fd), Ok(Some(Errno::ETIMEDOUT)));
    let m = b.s.snmp();
    assert_eq!((m.TcpActiveOpens, m.TcpAttemptFails, m.TcpOutSegs), (1, 1, 1));
    assert_eq!((m.TcpRetransSegs, m.TcpExtTCPSynRetrans, m.TcpExtTCPTimeouts), (10, 10, 11));
    b.s.close(fd).unwrap();
    b.end();
}

// ---------------------------------------------------------------- data

#[test]
fn data_is_cut_to_the_mss_with_psh_on_the_last_segment_of_each_send() {
    // The retransmission timer alone: no tail loss probe before it
    // (`tcp_early_retrans=0`; with Linux's default 3 a probe goes first).
    let mut b = Bench::with_config(|c| c.tcp_early_retrans = 0);
    let (l, fd, iss) = b.accepted();
    let data = pattern(4000);
    assert_eq!(b.s.send(fd, &data), Ok(4000));
    let out = b.out();
    let got: Vec<(u8, u32, usize)> = out.iter().map(|s| (s.flags(), s.r.seq.wrapping_sub(iss), s.data.len())).collect();
    assert_eq!(got, vec![(ACK, 1, 1460), (ACK, 1461, 1460), (ACK | PSH, 2921, 1080)]);
    for s in &out {
        assert_eq!((s.r.ack, s.r.window), (PISN + 1, OUR_WIN));
        assert!(s.r.options.is_empty());
    }
    let sent: Vec<u8> = out.iter().flat_map(|s| s.data.clone()).collect();
    assert_eq!(sent, data);
    // Nagle: a small send waits while a small segment is unacknowledged.
    assert_eq!(b.s.send(fd, b"tail"), Ok(4));
    b.none();
    b.at(ms(5));
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(4001), ACK, PEER_WIN), &[]);
    let t = b.one();
    assert_eq!((t.flags(), t.r.seq.wrapping_sub(iss), t.data.as_slice()), (ACK | PSH, 4001, &b"tail"[..]));
    let m = b.s.snmp();
    assert_eq!((m.TcpOutSegs, m.TcpRetransSegs, m.TcpExtTCPOrigDataSent), (5, 0, 4));
    // The peer's data arrives in order and is read back.
    let incoming = pattern(3000);
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(4005), ACK, PEER_WIN), &incoming[..1460]);
    b.send(hdr(PPORT, LPORT, PISN + 1461, iss.wrapping_add(4005), ACK, PEER_WIN), &incoming[1460..2920]);
    b.send(hdr(PPORT, LPORT, PISN + 2921, iss.wrapping_add(4005), ACK | PSH, PEER_WIN), &incoming[2920..]);
    assert_ne!(b.revents(fd, POLLIN) & POLLIN, 0);
    assert_eq!(read_all(&mut b, fd), incoming);
    assert_eq!(b.s.tcp_info(fd).unwrap().bytes_received, 3000);
    b.s.close(fd).unwrap();
    b.s.close(l).unwrap();
    let fin = b.out().into_iter().last().unwrap();
    assert_eq!((fin.flags() & FIN, fin.r.seq.wrapping_sub(iss)), (FIN, 4005));
    b.send(hdr(PPORT, LPORT, PISN + 3001, iss.wrapping_add(4006), RST, 0), &[]);
    b.end();
}

#[test]
fn tcp_nodelay_sends_small_segments_at_once() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    b.s.setsockopt(fd, SockOpt::TcpNodelay(true)).unwrap();
    for (i, chunk) in [&b"ab"[..], b"cd", b"ef"].iter().enumerate() {
        assert_eq!(b.s.send(fd, chunk), Ok(2));
        let s = b.one();
        assert_eq!((s.flags(), s.r.seq.wrapping_sub(iss), s.data.as_slice()), (ACK | PSH, 1 + 2 * i as u32, *chunk));
    }
    abort_close_and_end(&mut b, fd, l);
}

#[test]
fn tcp_cork_holds_a_partial_segment_until_the_fin_or_the_uncork() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    b.s.setsockopt(fd, SockOpt::TcpNodelay(true)).unwrap();
    b.s.setsockopt(fd, SockOpt::TcpCork(true)).unwrap();
    // Full segments go; the partial tail waits, TCP_NODELAY or not.
    let data = pattern(2000);
    assert_eq!(b.s.send(fd, &data), Ok(2000));
    let s = b.one();
    assert_eq!((s.flags(), s.r.seq.wrapping_sub(iss), s.data.len()), (ACK, 1, 1460));
    b.none();
    // Taking the cork out pushes it (__tcp_sock_set_cork → tcp_push_pending_frames).
    b.s.setsockopt(fd, SockOpt::TcpCork(false)).unwrap();
    let s = b.one();
    assert_eq!((s.flags(), s.r.seq.wrapping_sub(iss), s.data.len()), (ACK | PSH, 1461, 540));
    assert_eq!(s.data, data[1460..]);
    // Corked again: the last data and the FIN of a shutdown go in one segment (tcp_send_fin
    // sets FIN on the unsent tail), as nginx's responses with tcp_nopush before a close.
    b.s.setsockopt(fd, SockOpt::TcpCork(true)).unwrap();
    assert_eq!(b.s.send(fd, b"bye"), Ok(3));
    b.none();
    b.s.shutdown(fd, Shutdown::Write).unwrap();
    let s = b.one();
    assert_eq!((s.flags(), s.r.seq.wrapping_sub(iss), s.data.as_slice()), (ACK | PSH | FIN, 2001, &b"bye"[..]));
    assert_eq!(b.s.snmp().TcpExtTCPOrigDataSent, 3);
    abort_close_and_end(&mut b, fd, l);
}

/// The peer sends `n` bytes at `seq` (offset from its ISN + 1).
fn peer_data(b: &mut Bench, iss: u32, off: u32, data: &[u8]) {
    b.send(hdr(PPORT, LPORT, PISN + 1 + off, iss.wrapping_add(1), ACK | PSH, PEER_WIN), data);
}

#[test]
fn quick_acks_at_start_then_delayed_ack_after_40ms() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    // tcp_event_data_recv starts in quick-ACK mode: 16 ACKs at once
    // (tcp_incr_quickack: min(rcv_wnd / (2 * rcv_mss), 16)).
    let mut off = 0;
    let mut t = 0;
    for i in 0..16 {
        t += 100;
        b.at(ms(t));
        peer_data(&mut b, iss, off, &[i as u8; 100]);
        off += 100;
        let a = b.one();
        assert_eq!((a.flags(), a.r.seq, a.r.ack), (ACK, iss.wrapping_add(1), PISN + 1 + off), "quick ACK {i}");
    }
    // Then the ACK waits for the 40 ms delayed-ACK timer.
    t += 100;
    b.at(ms(t));
    peer_data(&mut b, iss, off, &[9; 100]);
    off += 100;
    b.none();
    b.at(ms(t + 39));
    b.none();
    b.at(ms(t + 40));
    let a = b.one();
    assert_eq!((a.flags(), a.r.ack), (ACK, PISN + 1 + off));
    let m = b.s.snmp();
    assert_eq!((m.TcpExtDelayedACKs, m.TcpOutSegs), (1, 18), "SYN-ACK, 16 quick ACKs, one delayed");
    assert_eq!(read_all(&mut b, fd).len(), off as usize);
    abort_close_and_end(&mut b, fd, l);
}

#[test]
fn sending_data_does_not_use_up_quick_acks() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    peer_data(&mut b, iss, 0, &[1; 100]);
    assert_eq!(b.one().r.ack, PISN + 101);
    // Ten segments of ours carry an ACK, but none was owed
    // (tcp_dec_quickack_mode counts only ACKs of new data). The peer's data
    // comes less than an RTO apart (a longer gap would give the quick ACKs
    // back: `a_gap_longer_than_the_rto_gives_the_quick_acks_back`).
    b.at(ms(50));
    assert_eq!(b.s.send(fd, &pattern(14600)), Ok(14600));
    assert_eq!(b.out().len(), 10);
    b.send(hdr(PPORT, LPORT, PISN + 101, iss.wrapping_add(14601), ACK, PEER_WIN), &[]);
    // 15 quick ACKs are left.
    let mut off = 100;
    let mut t = 50;
    for i in 0..15 {
        t += 100;
        b.at(ms(t));
        peer_data(&mut b, iss, off, &[i as u8; 100]);
        off += 100;
        let a = b.one();
        assert_eq!(a.r.ack, PISN + 1 + off, "quick ACK {i}");
    }
    t += 100;
    b.at(ms(t));
    peer_data(&mut b, iss, off, &[0; 100]);
    b.none();
    b.at(ms(t + 40));
    b.one();
    read_all(&mut b, fd);
    abort_close_and_end(&mut b, fd, l);
}

/// `TCP_QUICKACK` 0 on an accepted connection: the first request's ACK is
/// not sent at once but rides on the reply, one segment fewer; Linux 6.18
/// does the same (`tcp_differential`, `tcp_quickack_off_as_linux`, with the
/// option on the listener).
#[test]
fn tcp_quickack_off_lets_the_reply_carry_the_ack_of_the_request() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    assert_eq!(b.s.setsockopt(fd, SockOpt::TcpQuickAck(false)), Ok(()));
    peer_data(&mut b, iss, 0, b"GET / HTTP/1.1\r\n\r\n");
    b.none();
    assert_eq!(read_all(&mut b, fd), b"GET / HTTP/1.1\r\n\r\n");
    // A read that drains the request does not send it either: in
    // interactive mode only a second pushed segment does (ICSK_ACK_PUSHED2).
    b.none();
    b.at(ms(1));
    assert_eq!(b.s.send(fd, b"HTTP/1.1 200 OK\r\n\r\n"), Ok(19));
    let reply = b.one();
    assert_eq!((reply.r.ack, reply.data.len()), (PISN + 1 + 18, 19), "the reply carries the ACK");
    let m = b.s.snmp();
    assert_eq!((m.TcpOutSegs, m.TcpExtDelayedACKs), (2, 0), "the SYN-ACK and the reply");
    abort_close_and_end(&mut b, fd, l);
}

/// `TCP_QUICKACK` 0 on a listener after `listen()` holds for its
/// connections from their first data (`sk_clone_lock` copies `icsk_ack`), a
/// request that comes before `accept()` included; set before `listen()`, it
/// is gone (`inet_csk_delack_init`), as on Linux 6.18.
#[test]
fn tcp_quickack_off_on_a_listener_holds_for_its_connections() {
    let mut b = Bench::new();
    let l = b.listener(16);
    b.s.setsockopt(l, SockOpt::TcpQuickAck(false)).unwrap();
    let iss = b.handshake_in(PPORT);
    peer_data(&mut b, iss, 0, b"request");
    b.none();
    let (fd, _) = b.s.accept(l).unwrap();
    assert_eq!(read_all(&mut b, fd), b"request");
    assert_eq!(b.s.send(fd, b"reply"), Ok(5));
    let reply = b.one();
    assert_eq!((reply.r.ack, reply.data.len()), (PISN + 1 + 7, 5));
    abort_close_and_end(&mut b, fd, l);

    let mut b = Bench::new();
    let l = b.s.socket(SockType::Stream).unwrap();
    b.s.setsockopt(l, SockOpt::TcpQuickAck(false)).unwrap();
    b.s.bind(l, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, LPORT)).unwrap();
    b.s.listen(l, 16).unwrap();
    let iss = b.handshake_in(PPORT);
    peer_data(&mut b, iss, 0, b"request");
    assert_eq!(b.one().r.ack, PISN + 1 + 7, "listen() reset it: a quick ACK");
    let (fd, _) = b.s.accept(l).unwrap();
    abort_close_and_end(&mut b, fd, l);
}

/// The handshake's RTT is the first minimum RTT (`tcpi_min_rtt`) of a
/// connection with SACK too, passive and active: Linux's `tcp_ack_update_rtt`
/// takes every sample into it (`tcp_update_rtt_min`), the SYN-ACK's
/// (`tcp_synack_rtt_meas`) and the SYN's included.
#[test]
fn the_handshake_rtt_starts_the_minimum_rtt_with_sack() {
    let mut b = Bench::new();
    let l = b.listener(16);
    let syn = syn_hdr(PPORT, LPORT, PISN, 0, SYN);
    b.send(syn, &[]);
    let sa = b.one();
    b.at(ms(5));
    b.send(hdr(PPORT, LPORT, PISN + 1, sa.r.seq.wrapping_add(1), ACK, PEER_WIN), &[]);
    let (fd, _) = b.s.accept(l).unwrap();
    assert_eq!(b.s.tcp_info(fd).unwrap().min_rtt_us, 5_000, "passive");
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    assert_eq!(b.one().flags(), RST | ACK, "the reset of the close");
    let c = b.s.socket(SockType::Stream).unwrap();
    assert_eq!(b.s.connect(c, SocketAddrV4::new(PEER_IP, PPORT)), Err(Errno::EINPROGRESS));
    let syn = b.one();
    b.at(ms(12));
    let sa = syn_hdr(PPORT, syn.r.src_port, PISN, syn.r.seq.wrapping_add(1), SYN | ACK);
    b.send(sa, &[]);
    b.one();
    assert_eq!(b.s.tcp_info(c).unwrap().min_rtt_us, 7_000, "active");
    abort_close_and_end(&mut b, c, l);
}

/// In interactive mode with no reply, the ACK waits for the delayed-ACK
/// timer (40 ms), which ends the mode (`tcp_delack_timer_handler`): the
/// next data is ACKed at once again. `TCP_QUICKACK` is not permanent.
#[test]
fn tcp_quickack_off_without_a_reply_acks_after_40ms_and_ends() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    b.s.setsockopt(fd, SockOpt::TcpQuickAck(false)).unwrap();
    peer_data(&mut b, iss, 0, &[1; 100]);
    b.none();
    b.at(ms(39));
    b.none();
    b.at(ms(40));
    assert_eq!(b.one().r.ack, PISN + 101);
    assert_eq!(b.s.snmp().TcpExtDelayedACKs, 1);
    b.at(ms(50));
    peer_data(&mut b, iss, 100, &[2; 100]);
    assert_eq!(b.one().r.ack, PISN + 201, "quick ACK again");
    read_all(&mut b, fd);
    abort_close_and_end(&mut b, fd, l);
}

/// `TCP_QUICKACK` 1 leaves interactive mode and sends the ACK owed for data
/// the application has read (`__tcp_sock_set_quickack` → `tcp_cleanup_rbuf`);
/// with the data still unread, the ACK keeps waiting for the timer.
#[test]
fn tcp_quickack_on_sends_the_ack_owed_for_read_data() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    b.s.setsockopt(fd, SockOpt::TcpQuickAck(false)).unwrap();
    peer_data(&mut b, iss, 0, &[1; 100]);
    b.none();
    b.s.setsockopt(fd, SockOpt::TcpQuickAck(true)).unwrap();
    b.none();
    assert_eq!(read_all(&mut b, fd).len(), 100);
    b.s.setsockopt(fd, SockOpt::TcpQuickAck(true)).unwrap();
    assert_eq!(b.one().r.ack, PISN + 101);
    assert_eq!(b.s.snmp().TcpExtDelayedACKs, 0);
    abort_close_and_end(&mut b, fd, l);
}

/// `TCP_QUICKACK` 0 before `connect()`: the ACK of the SYN-ACK waits (at most
/// `TCP_DELACK_MAX`, 200 ms) for the first data to carry it
/// (`tcp_rcv_synsent_state_process`, "save one ACK"), and the connection
/// leaves interactive mode (`tcp_enter_quickack_mode`). A datagram socket
/// refuses the option.
#[test]
fn tcp_quickack_off_before_connect_saves_the_third_ack() {
    let mut b = Bench::new();
    let u = b.s.socket(SockType::Dgram).unwrap();
    assert_eq!(b.s.setsockopt(u, SockOpt::TcpQuickAck(false)), Err(Errno::ENOPROTOOPT));
    let fd = b.s.socket(SockType::Stream).unwrap();
    b.s.setsockopt(fd, SockOpt::TcpQuickAck(false)).unwrap();
    assert_eq!(b.s.connect(fd, SocketAddrV4::new(PEER_IP, PPORT)), Err(Errno::EINPROGRESS));
    let syn = b.one();
    let (port, iss) = (syn.r.src_port, syn.r.seq);
    let sa = syn_hdr(PPORT, port, PISN, iss.wrapping_add(1), SYN | ACK);
    b.send(sa, &[]);
    b.none();
    assert_eq!(b.state(fd), TcpState::Established);
    b.at(ms(5));
    assert_eq!(b.s.send(fd, b"request"), Ok(7));
    let first = b.one();
    assert_eq!((first.r.seq, first.r.ack, first.data.len()), (iss.wrapping_add(1), PISN + 1, 7));
    // A second connection that never sends: its ACK goes at 200 ms.
    let fd2 = b.s.socket(SockType::Stream).unwrap();
    b.s.setsockopt(fd2, SockOpt::TcpQuickAck(false)).unwrap();
    assert_eq!(b.s.connect(fd2, SocketAddrV4::new(PEER_IP, PPORT)), Err(Errno::EINPROGRESS));
    let syn2 = b.one();
    let sa2 = syn_hdr(PPORT, syn2.r.src_port, PISN, syn2.r.seq.wrapping_add(1), SYN | ACK);
    b.send(sa2, &[]);
    b.none();
    b.at(ms(5 + 199));
    b.none();
    b.at(ms(5 + 200));
    let ack = b.one();
    assert_eq!((ack.flags(), ack.r.ack, ack.data.len()), (ACK, PISN + 1, 0));
    assert_eq!(b.s.snmp().TcpExtDelayedACKs, 1);
    for f in [fd, fd2] {
        b.s.setsockopt(f, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
        b.s.close(f).unwrap();
    }
    b.s.close(u).unwrap();
    b.end();
}

/// A connection of ours over a 300 ms path (RTO 900 ms), its 16 quick ACKs
/// used up by segments 10 ms apart; returns the port, our ISS, the peer's
/// offset and the time.
fn slow_path_past_quick_acks(b: &mut Bench) -> (Fd, u16, u32, u32, Duration) {
    let (fd, port, iss) = connected_after_with(b, ms(300), TcpOptions::default());
    let mut off = 0;
    let mut t = b.elapsed();
    for i in 0..16 {
        t += ms(10);
        b.at(t);
        peer_100(b, port, iss, &mut off, i);
        assert_eq!(b.one().r.ack, PISN + 1 + off, "quick ACK {i}");
    }
    (fd, port, iss, off, t)
}

/// 100 bytes of the peer (`byte`, PSH) from `port` at offset `off` of its
/// stream, which moves on; the loop runs.
fn peer_100(b: &mut Bench, port: u16, iss: u32, off: &mut u32, byte: u8) {
    b.send(hdr(PPORT, port, PISN + 1 + *off, iss.wrapping_add(1), ACK | PSH, PEER_WIN), &[byte; 100]);
    *off += 100;
}

/// Closes `fd` with a RST (linger 0) and checks nothing is left.
fn abort_and_end(b: &mut Bench, fd: Fd) {
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.end();
}

/// Closes `fd` with a RST (linger 0), then its listener `l`, and checks
/// nothing is left.
fn abort_close_and_end(b: &mut Bench, fd: Fd, l: Fd) {
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.s.close(l).unwrap();
    b.end();
}

#[test]
fn the_delayed_ack_timeout_doubles_when_it_fires_up_to_delack_max() {
    let mut b = Bench::new();
    let (fd, port, iss, mut off, mut t) = slow_path_past_quick_acks(&mut b);
    // Lone segments 400 ms apart (more than ato, less than the RTO). Each
    // waits for the delayed-ACK timer, which doubles ato when it fires
    // (tcp_delack_timer_handler): 40, 80, 160 ms, then 320 bounded by
    // TCP_DELACK_MAX (the segments end writes, ICSK_ACK_PUSHED) and by the
    // 300 ms SRTT (tcp_send_delayed_ack): 200 ms.
    let delacks = b.s.snmp().TcpExtDelayedACKs;
    for wait in [40, 80, 160, 200, 200] {
        t += ms(400);
        b.at(t);
        peer_100(&mut b, port, iss, &mut off, 1);
        b.at(t + ms(wait - 1));
        b.none();
        b.at(t + ms(wait));
        assert_eq!(b.one().r.ack, PISN + 1 + off, "the delayed ACK after {wait} ms");
    }
    assert_eq!(b.s.snmp().TcpExtDelayedACKs - delacks, 5);
    // Segments 10 ms apart bring ato down again (ato / 2 + 20 ms each,
    // tcp_event_data_recv: from 860 ms to 40.4 after twelve); the next lone
    // segment's ACK waits 40.4 ms, not 200.
    t += ms(400);
    for _ in 0..12 {
        t += ms(10);
        b.at(t);
        peer_100(&mut b, port, iss, &mut off, 2);
        b.out();
    }
    b.at(t + ms(250));
    b.out();
    t += ms(400);
    b.at(t);
    peer_100(&mut b, port, iss, &mut off, 3);
    b.at(t + ms(40));
    b.none();
    b.at(t + ms(41));
    assert_eq!(b.one().r.ack, PISN + 1 + off);
    abort_and_end(&mut b, fd);
}

#[test]
fn a_gap_longer_than_the_rto_gives_the_quick_acks_back() {
    let mut b = Bench::new();
    let (fd, port, iss, mut off, mut t) = slow_path_past_quick_acks(&mut b);
    // Within the RTO (900 ms): delayed.
    t += ms(800);
    b.at(t);
    peer_100(&mut b, port, iss, &mut off, 1);
    b.none();
    b.at(t + ms(40));
    b.one();
    // Past it: "the sender failed to restart its window", ACK at once
    // (tcp_event_data_recv → tcp_incr_quickack).
    t += ms(1000);
    b.at(t);
    peer_100(&mut b, port, iss, &mut off, 2);
    assert_eq!(b.one().r.ack, PISN + 1 + off);
    abort_and_end(&mut b, fd);
}

#[test]
fn the_last_quick_ack_takes_the_delayed_ack_timeout_back_to_its_minimum() {
    let mut b = Bench::new();
    let (fd, port, iss, mut off, mut t) = slow_path_past_quick_acks(&mut b);
    let seg = |b: &mut Bench, t: Duration, off: &mut u32| {
        b.at(t);
        b.send(hdr(PPORT, port, PISN + 1 + *off, iss.wrapping_add(1), ACK | PSH, PEER_WIN), &[1; 100]);
        *off += 100;
    };
    // Three missed delayed ACKs (40, 80, 160 ms) take ato to 320 ms.
    for wait in [40, 80, 160] {
        t += ms(400);
        seg(&mut b, t, &mut off);
        b.at(t + ms(wait));
        assert_eq!(b.one().r.ack, PISN + 1 + off, "the delayed ACK after {wait} ms");
    }
    // A gap past the RTO (900 ms) gives quick ACKs back; segments 400 ms
    // apart (more than ato, less than the RTO) leave ato as it is while
    // they are used up, each ACKed at once.
    t += ms(1000);
    let mut quick = 0;
    loop {
        seg(&mut b, t, &mut off);
        let out = b.out();
        if out.is_empty() {
            break;
        }
        assert_eq!(out.len(), 1);
        quick += 1;
        assert!(quick <= 16, "at most TCP_MAX_QUICKACKS quick ACKs");
        t += ms(400);
    }
    assert!(quick >= 2, "tcp_incr_quickack gives at least two: {quick}");
    // The last quick ACK deflated ato to TCP_ATO_MIN (tcp_dec_quickack_mode):
    // this segment's ACK waits 40 ms, not 200 (320 bounded by
    // TCP_DELACK_MAX).
    b.at(t + ms(39));
    b.none();
    b.at(t + ms(40));
    assert_eq!(b.one().r.ack, PISN + 1 + off);
    abort_and_end(&mut b, fd);
}

#[test]
fn full_segments_are_acked_every_second_one() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    // Use up the quick ACKs with small segments.
    let mut off = 0;
    let mut t = 0;
    for i in 0..16 {
        t += 100;
        b.at(ms(t));
        peer_data(&mut b, iss, off, &[i as u8; 10]);
        off += 10;
        b.one();
    }
    read_all(&mut b, fd);
    t += 100;
    b.at(ms(t));
    // One full segment: delayed. The second: more than one MSS unacknowledged, ACK now.
    for round in 0..3 {
        peer_data(&mut b, iss, off, &[1; MSS]);
        off += MSS as u32;
        b.none();
        peer_data(&mut b, iss, off, &[2; MSS]);
        off += MSS as u32;
        let a = b.one();
        assert_eq!((a.flags(), a.r.ack), (ACK, PISN + 1 + off), "round {round}");
        read_all(&mut b, fd);
    }
    assert_eq!(b.s.snmp().TcpExtDelayedACKs, 0);
    abort_close_and_end(&mut b, fd, l);
}

/// A connection whose quick ACKs are used up (16 small segments, read).
fn accepted_past_quick_acks(b: &mut Bench) -> (Fd, Fd, u32, u32, u64) {
    let (l, fd, iss) = b.accepted();
    let mut off = 0;
    let mut t = 0;
    for i in 0..16 {
        t += 100;
        b.at(ms(t));
        peer_data(b, iss, off, &[i as u8; 10]);
        off += 10;
        b.one();
    }
    read_all(b, fd);
    b.at(ms(t + 100));
    (l, fd, iss, off, t + 100)
}

/// `n` full segments of the peer from `off`, all in the rx ring for one
/// poll; PSH on those at the indices in `psh`. Returns the ACK numbers sent.
fn burst(b: &mut Bench, iss: u32, off: &mut u32, n: usize, psh: &[usize]) -> Vec<u32> {
    for i in 0..n {
        let fl = if psh.contains(&i) { ACK | PSH } else { ACK };
        b.inject(&hdr(PPORT, LPORT, PISN + 1 + *off, iss.wrapping_add(1), fl, PEER_WIN), &[i as u8; MSS]);
        *off += MSS as u32;
    }
    b.out().iter().inspect(|a| assert_eq!(a.flags(), ACK)).map(|a| a.r.ack).collect()
}

#[test]
fn a_burst_in_one_batch_gets_one_ack_per_gro_aggregate() {
    let mut b = Bench::new();
    let (l, fd, iss, mut off, _) = accepted_past_quick_acks(&mut b);
    // Twenty full segments in one poll are one GRO aggregate
    // (tcp_gro_receive): one ACK decision, one ACK, at the end of the batch.
    let merged = b.s.snmp().XskTcpGroMerged;
    assert_eq!(burst(&mut b, iss, &mut off, 20, &[]), vec![PISN + 1 + off]);
    assert_eq!(b.s.snmp().XskTcpGroMerged - merged, 19);
    assert_eq!(read_all(&mut b, fd).len(), 20 * MSS);
    // PSH ends an aggregate after the segment that carries it: the first
    // five are one, the next fifteen another.
    let start = off;
    assert_eq!(burst(&mut b, iss, &mut off, 20, &[4]), vec![PISN + 1 + start + 5 * MSS as u32, PISN + 1 + off]);
    read_all(&mut b, fd);
    // A gap: the segment after it is out of order, not part of the
    // aggregate before it, and is acknowledged (a duplicate ACK) at once.
    let before_gap = off;
    for i in 0..4u32 {
        if i != 2 {
            b.inject(
                &hdr(PPORT, LPORT, PISN + 1 + off + i * MSS as u32, iss.wrapping_add(1), ACK, PEER_WIN),
                &[7; MSS],
            );
        }
    }
    let acks: Vec<u32> = b.out().iter().map(|a| a.r.ack).collect();
    assert_eq!(acks, vec![PISN + 1 + before_gap + 2 * MSS as u32; 2], "the aggregate's ACK, then the duplicate ACK");
    assert_eq!(b.s.snmp().TcpExtTCPOFOQueue, 1);
    abort_close_and_end(&mut b, fd, l);
}

#[test]
fn a_read_that_drains_the_end_of_a_write_sends_the_delayed_ack() {
    let mut b = Bench::new();
    let (l, fd, iss, mut off, _) = accepted_past_quick_acks(&mut b);
    let small = |b: &mut Bench, off: &mut u32, byte: u8| {
        b.send(hdr(PPORT, LPORT, PISN + 1 + *off, iss.wrapping_add(1), ACK | PSH, PEER_WIN), &[byte; 100]);
        *off += 100;
    };
    // A short segment, the end of a write: its ACK is delayed...
    small(&mut b, &mut off, 1);
    b.none();
    // ...a read that leaves some of it sends nothing...
    let mut half = [0u8; 50];
    assert_eq!(b.s.recv(fd, &mut half), Ok(50));
    b.none();
    // ...the read that drains the buffer sends it (tcp_cleanup_rbuf,
    // ICSK_ACK_PUSHED outside interactive mode), not the 40 ms timer.
    assert_eq!(read_all(&mut b, fd).len(), 50);
    assert_eq!(b.one().r.ack, PISN + 1 + off);
    // Interactive mode: a reply within ato of the data.
    small(&mut b, &mut off, 2);
    assert_eq!(b.s.send(fd, b"reply"), Ok(5));
    let r = b.one();
    assert_eq!((r.data.len(), r.r.ack), (5, PISN + 1 + off), "the ACK rides on the reply");
    b.send(hdr(PPORT, LPORT, PISN + 1 + off, iss.wrapping_add(6), ACK, PEER_WIN), &[]);
    read_all(&mut b, fd);
    // Now one end of a write is not enough: the drained read sends nothing...
    small(&mut b, &mut off, 3);
    b.none();
    read_all(&mut b, fd);
    b.none();
    // ...two are (ICSK_ACK_PUSHED2).
    small(&mut b, &mut off, 4);
    b.none();
    read_all(&mut b, fd);
    assert_eq!(b.one().r.ack, PISN + 1 + off);
    assert_eq!(b.s.snmp().TcpExtDelayedACKs, 0, "no ACK waited for the timer");
    abort_close_and_end(&mut b, fd, l);
}

#[test]
fn with_gro_off_a_burst_is_acked_every_second_segment() {
    let mut b = Bench::with_config(|c| c.gro = false);
    let (l, fd, iss, mut off, _) = accepted_past_quick_acks(&mut b);
    let start = off;
    let acks = burst(&mut b, iss, &mut off, 10, &[]);
    let every_second: Vec<u32> = (1..=5).map(|k| PISN + 1 + start + 2 * k * MSS as u32).collect();
    assert_eq!(acks, every_second);
    assert_eq!(b.s.snmp().XskTcpGroMerged, 0);
    read_all(&mut b, fd);
    abort_close_and_end(&mut b, fd, l);
}

#[test]
fn out_of_order_data_is_queued_dup_acked_and_delivered_when_the_gap_fills() {
    let mut b = Bench::new();
    let l = b.listener(16);
    // No SACK offered: Linux's duplicate ACKs then carry no SACK blocks.
    let mut syn = hdr(PPORT, LPORT, PISN, 0, SYN, SYN_WINDOW);
    syn.options = TcpOptions { mss: Some(1460), window_scale: Some(7), ..TcpOptions::default() };
    b.send(syn, &[]);
    let iss = b.one().r.seq;
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(1), ACK, PEER_WIN), &[]);
    let (fd, _) = b.s.accept(l).unwrap();
    let data = pattern(3000);
    // Bytes 1000..2000 and 2000..3000 come before 0..1000.
    peer_data(&mut b, iss, 1000, &data[1000..2000]);
    let d = b.one();
    assert_eq!((d.flags(), d.r.seq, d.r.ack, d.r.options), (ACK, iss.wrapping_add(1), PISN + 1, TcpOptions::default()));
    peer_data(&mut b, iss, 2000, &data[2000..]);
    assert_eq!(b.one().r.ack, PISN + 1);
    // A duplicate of queued data is merged, acked at once.
    peer_data(&mut b, iss, 1500, &data[1500..2500]);
    assert_eq!(b.one().r.ack, PISN + 1);
    assert_eq!(b.revents(fd, POLLIN), 0, "nothing readable across the gap");
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPOFOQueue, m.TcpExtTCPOFODrop), (3, 0));
    // The gap fills: everything is delivered, and the ACK goes at once.
    peer_data(&mut b, iss, 0, &data[..1000]);
    let a = b.one();
    assert_eq!((a.flags(), a.r.ack), (ACK, PISN + 3001));
    assert_eq!(read_all(&mut b, fd), data);
    abort_close_and_end(&mut b, fd, l);
}

// ---------------------------------------------------------------- tcp_mem

/// Data from the peer's `pport` at offset `off` of its stream.
fn peer_data_from(b: &mut Bench, pport: u16, iss: u32, off: u32, data: &[u8]) {
    b.send(hdr(pport, LPORT, PISN + 1 + off, iss.wrapping_add(1), ACK | PSH, PEER_WIN), data);
}

/// A listener and `n` accepted connections from ports `PPORT..`, each
/// with our ISN: (listener, [(port, connection, ISN)]).
fn accepted_many(b: &mut Bench, n: u16) -> (Fd, Vec<(u16, Fd, u32)>) {
    let l = b.listener(64);
    let mut conns = Vec::new();
    for i in 0..n {
        let iss = b.handshake_in(PPORT + i);
        let (fd, peer) = b.s.accept(l).unwrap();
        assert_eq!(peer.port(), PPORT + i);
        conns.push((PPORT + i, fd, iss));
    }
    (l, conns)
}

/// Out-of-order data from many connections against a small `tcp_mem` (16,
/// 32, 48 pages): what all connections hold never passes `tcp_mem[2]`; past
/// `tcp_mem[1]` pressure starts (`TCPMemoryPressures`, once) and a
/// connection over its fair share (`tcp_mem[2]` / connections) gets no more
/// pages: `tcp_try_rmem_schedule` calls `tcp_prune_queue`
/// (`PruneCalled`), whose `tcp_prune_ofo_queue` cannot help a segment that
/// lands last in the queue, so it is dropped (`TCPOFODrop`) unanswered, as
/// `tcp_data_queue_ofo` drops it before `TCPOFOQueue` and the ACK.
/// Filling a gap under pressure prunes that connection's queue instead
/// (`OfoPruned`), and once the connections hold less than `tcp_mem[0]`
/// pressure ends, its length in `TCPMemoryPressuresChrono`
/// (net/core/sock.c `__sk_mem_raise_allocated`, net/ipv4/tcp_input.c
/// `tcp_try_rmem_schedule`, `tcp_prune_queue`, `tcp_prune_ofo_queue`,
/// net/ipv4/tcp.c `tcp_enter_memory_pressure`; `tcp_mem` is one for the
/// whole machine in Linux, not per namespace, so no kernel runs this beside
/// us).
#[test]
fn an_out_of_order_flood_from_many_connections_stays_under_tcp_mem() {
    let limits = xsknet::ipv4::tcp::mem::TcpMemLimits { min: 16, pressure: 32, max: 48 };
    let mut b = Bench::with_config(|c| c.tcp_mem = Some(limits));
    let (l, conns) = accepted_many(&mut b, 8);
    let seg = pattern(1460);
    let mut peak = 0;
    let mut pressure_at = None;
    // Each connection: segments 1..=30 of 1460 bytes, segment 0 missing.
    for k in 1..=30u32 {
        for &(pport, _, iss) in &conns {
            let before = b.s.snmp();
            peer_data_from(&mut b, pport, iss, k * 1460, &seg);
            let m = b.s.snmp();
            peak = peak.max(m.XskSockstatTcpMem);
            assert!(m.XskSockstatTcpMem <= limits.max, "{} pages > tcp_mem[2]", m.XskSockstatTcpMem);
            if m.TcpExtTCPOFODrop > before.TcpExtTCPOFODrop {
                assert_eq!(m.TcpExtTCPOFOQueue, before.TcpExtTCPOFOQueue, "a dropped segment is not queued");
                assert_eq!(m.TcpExtPruneCalled, before.TcpExtPruneCalled + 1);
                b.none();
            } else {
                assert_eq!(m.TcpExtTCPOFOQueue, before.TcpExtTCPOFOQueue + 1);
                let a = b.one();
                assert_eq!(a.r.ack, PISN + 1, "a duplicate ACK for queued data");
            }
            if pressure_at.is_none() && m.TcpExtTCPMemoryPressures == 1 {
                pressure_at = Some(b.elapsed());
            }
        }
        b.at(b.elapsed() + ms(1));
    }
    let m = b.s.snmp();
    assert_eq!(m.TcpExtTCPMemoryPressures, 1, "one episode");
    assert!(pressure_at.is_some());
    // 9 socks (8 connections and the listener): a connection gets pages
    // while it holds fewer than 48 / 9, so 5 pages and 14 segments each
    // (14 × 1460 = 20440 bytes, 5 pages; the 15th wants a 6th).
    assert_eq!(m.TcpExtTCPOFOQueue, 8 * 14);
    assert_eq!(m.TcpExtTCPOFODrop, 8 * 16);
    assert_eq!(m.TcpExtPruneCalled, m.TcpExtTCPOFODrop);
    assert_eq!((m.TcpExtRcvPruned, m.TcpExtOfoPruned, m.TcpExtTCPMemoryPressuresChrono), (0, 0, 0));
    assert_eq!(peak, 40);
    assert_eq!(m.XskSockstatTcpMem, 40);
    // The gap of the first connection fills: under pressure, and over its
    // share, its out-of-order queue is pruned to make room (OfoPruned) and
    // the segment is taken; the ACK covers it alone, with no SACK blocks.
    let (pport, fd, iss) = conns[0];
    peer_data_from(&mut b, pport, iss, 0, &seg);
    let a = b.one();
    assert_eq!((a.r.ack, a.r.options.sack_blocks()), (PISN + 1 + 1460, &[][..]));
    let m = b.s.snmp();
    assert_eq!((m.TcpExtOfoPruned, m.TcpExtPruneCalled), (1, 8 * 16 + 1));
    assert_eq!(m.XskSockstatTcpMem, 40 - 5 + 1);
    assert_eq!(read_all(&mut b, fd), seg);
    // The others' gaps fill too; each prunes its queue while pressure
    // lasts; below tcp_mem[0] (16 pages) it ends.
    let t_fill = b.elapsed();
    b.at(t_fill + ms(250));
    let mut pruned = 1;
    for &(pport, fd, iss) in &conns[1..] {
        peer_data_from(&mut b, pport, iss, 0, &seg);
        let m = b.s.snmp();
        if m.TcpExtOfoPruned > pruned {
            pruned = m.TcpExtOfoPruned;
            assert_eq!(b.one().r.ack, PISN + 1 + 1460);
            assert_eq!(read_all(&mut b, fd), seg);
        } else {
            // Pressure is over: the queue stays and the gap's filling
            // delivers it all.
            let a = b.one();
            assert_eq!(a.r.ack, PISN + 1 + 15 * 1460);
            assert_eq!(read_all(&mut b, fd).len(), 15 * 1460);
        }
    }
    let m = b.s.snmp();
    assert_eq!(m.TcpExtTCPMemoryPressures, 1);
    assert_eq!(m.TcpExtTCPMemoryPressuresChrono, (t_fill + ms(250) - pressure_at.unwrap()).as_millis() as u64);
    // Pages still held: one per pruned connection (its segment, read but
    // not yet seen read by the loop), six by each whose queue stayed.
    assert_eq!(m.XskSockstatTcpMem, pruned + 2 * 6);
    for &(_, fd, _) in &conns {
        b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
        b.s.close(fd).unwrap();
    }
    b.s.close(l).unwrap();
    assert_eq!(b.s.snmp().XskSockstatTcpMem, 0, "every page back once the connections are gone");
    b.end();
}

/// Every way a connection ends gives its pages back: a child never
/// accepted, with data and out-of-order data queued, reset when its listener
/// closes (`inet_csk_listen_stop`), as well as a reset from the peer.
#[test]
fn every_end_of_a_connection_gives_its_tcp_memory_back() {
    let mut b = Bench::new();
    let l = b.listener(16);
    let iss = b.handshake_in(PPORT);
    peer_data_from(&mut b, PPORT, iss, 0, &pattern(1400));
    peer_data_from(&mut b, PPORT, iss, 1400, &pattern(1400));
    peer_data_from(&mut b, PPORT, iss, 5000, &pattern(1400));
    b.out();
    let iss2 = b.handshake_in(PPORT + 1);
    peer_data_from(&mut b, PPORT + 1, iss2, 1000, &pattern(1000));
    b.out();
    assert_eq!(b.s.snmp().XskSockstatTcpMem, 2 + 1, "3 × 1400 bytes in two pages, 1000 in one");
    let (fd, _) = b.s.accept(l).unwrap();
    b.send(hdr(PPORT, LPORT, PISN + 1 + 2800, iss.wrapping_add(1), RST, 0), &[]);
    assert_eq!(b.s.snmp().XskSockstatTcpMem, 1, "a reset connection holds nothing");
    b.s.close(l).unwrap();
    b.out();
    assert_eq!(b.s.snmp().XskSockstatTcpMem, 0, "nor a child reset with its listener");
    b.s.close(fd).unwrap();
    b.end();
}

/// In-order data over `tcp_mem[2]` (2 pages): while the connection holds
/// less than `tcp_rmem[0]` (4096 bytes) it gets pages even under pressure
/// (`sk_get_rmem0`); past that, the segment that wants a third page is
/// refused: `tcp_prune_queue` (`PruneCalled`) has no out-of-order data to
/// prune, and with unread data in the receive queue the segment is dropped
/// (`TCPRcvQDrop`), with an ACK at once (`ICSK_ACK_NOW`) that does not cover
/// it. Once the application has read, the pages come back, pressure ends
/// (`TCPMemoryPressuresChrono`), and the retransmission is taken, the first
/// segment of an empty queue being always taken (`sk_forced_mem_schedule`).
#[test]
fn in_order_data_over_tcp_mem_max_is_dropped_until_the_reader_frees_it() {
    let limits = xsknet::ipv4::tcp::mem::TcpMemLimits { min: 1, pressure: 1, max: 2 };
    let mut b = Bench::with_config(|c| c.tcp_mem = Some(limits));
    let (l, fd, iss) = b.accepted();
    let data = pattern(6 * 1460);
    // Two segments in the first page; the third takes a second one (over
    // tcp_mem[1]: pressure), granted under tcp_rmem[0]; the fourth and
    // fifth fit the reserve.
    for k in 0..5 {
        peer_data(&mut b, iss, k * 1460, &data[k as usize * 1460..(k as usize + 1) * 1460]);
        b.out();
        let m = b.s.snmp();
        assert_eq!(m.TcpExtTCPMemoryPressures, u64::from(k >= 2), "segment {k}");
        assert_eq!(m.XskSockstatTcpMem, if k < 2 { 1 } else { 2 }, "segment {k}");
    }
    peer_data(&mut b, iss, 5 * 1460, &data[5 * 1460..]);
    let a = b.one();
    assert_eq!(a.r.ack, PISN + 1 + 5 * 1460, "the ACK goes at once and does not cover the drop");
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPRcvQDrop, m.TcpExtPruneCalled, m.TcpExtRcvPruned, m.TcpExtOfoPruned), (1, 1, 0, 0));
    assert_eq!((m.TcpExtTCPMemoryPressures, m.XskSockstatTcpMem), (1, 2));
    assert_eq!(read_all(&mut b, fd), data[..5 * 1460]);
    // The reader took it all: the retransmission finds the queue empty, the
    // reads' pages go back and pressure ends (0 < tcp_mem[0]).
    b.at(ms(10));
    peer_data(&mut b, iss, 5 * 1460, &data[5 * 1460..]);
    assert_eq!(b.out().last().map(|a| a.r.ack), Some(PISN + 1 + 6 * 1460));
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPRcvQDrop, m.TcpExtTCPMemoryPressuresChrono, m.XskSockstatTcpMem), (1, 10, 1));
    assert_eq!(read_all(&mut b, fd), data[5 * 1460..]);
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.s.close(l).unwrap();
    assert_eq!(b.s.snmp().XskSockstatTcpMem, 0);
    b.end();
}

/// The highest sequence number after the data of `out`, or `high`.
fn highest_end(out: &[Seg], mut high: u32) -> u32 {
    for sgm in out {
        let end = sgm.r.seq.wrapping_add(sgm.data.len() as u32);
        if (end.wrapping_sub(high) as i32) > 0 {
            high = end;
        }
    }
    high
}

/// The peer acknowledges everything we sent up to `high`, then what that
/// lets go, batch after batch, until nothing more goes out; returns the
/// bytes acknowledged in all.
fn ack_everything(b: &mut Bench, port: u16, iss: u32, mut high: u32) -> u32 {
    loop {
        b.at(b.elapsed() + ms(1));
        b.send(hdr(PPORT, port, PISN + 1, high, ACK, PEER_WIN), &[]);
        let out = b.out();
        if out.is_empty() {
            return high.wrapping_sub(iss.wrapping_add(1));
        }
        high = highest_end(&out, high);
    }
}

/// What the application writes is charged to `tcp_mem` too (`sk_wmem_queued`,
/// `sk_wmem_schedule`). With `tcp_mem` 2 6 6, six pages of writes are
/// granted; the seventh is over the hard limit: pressure starts
/// (`TCPMemoryPressures`), the send buffer is cut to half the queue
/// (`sk_stream_moderate_sndbuf`: `tb` 12288 in `ss -m`) and the bytes are
/// charged anyway, so the next `send()` gets `EAGAIN` and `POLLOUT` is off.
/// As the peer's ACKs free the queue the pages go back; below `tcp_mem[0]`
/// pressure ends (`TCPMemoryPressuresChrono`), `tcp_new_space` grows the
/// buffer back and the writer is writeable again. Every page comes back
/// when the connection is aborted.
#[test]
fn a_writer_stopped_by_tcp_mem_max_is_woken_when_acks_free_memory() {
    let limits = xsknet::ipv4::tcp::mem::TcpMemLimits { min: 2, pressure: 6, max: 6 };
    let mut b = Bench::with_config(|c| c.tcp_mem = Some(limits));
    let (fd, port, iss) = connected_after(&mut b, ms(10));
    let chunk = pattern(4096);
    let mut high = iss.wrapping_add(1);
    for k in 1..=6u64 {
        assert_eq!(b.s.send(fd, &chunk), Ok(4096));
        high = highest_end(&b.out(), high);
        let m = b.s.snmp();
        assert_eq!((m.XskSockstatTcpMem, m.TcpExtTCPMemoryPressures), (k, 0), "chunk {k}");
    }
    assert_eq!(b.s.send(fd, &chunk), Ok(4096), "the loop has not seen it yet");
    high = highest_end(&b.out(), high);
    let m = b.s.snmp();
    assert_eq!((m.XskSockstatTcpMem, m.TcpExtTCPMemoryPressures), (7, 1), "charged anyway, over tcp_mem[2]");
    assert_eq!(b.s.send(fd, &chunk), Err(Errno::EAGAIN), "sk_stream_memory_free fails");
    assert_eq!(b.revents(fd, POLLOUT), 0);
    let conn = b.s.sockets().into_iter().find(|d| d.fd == Some(fd.0)).unwrap();
    assert_eq!((conn.skmem.sndbuf, conn.skmem.wmem_queued, conn.skmem.wmem_alloc), (12288, 7 * 4096, 0));
    assert_eq!(conn.skmem.forward_alloc, 0);
    let t_pressure = b.elapsed();
    // The peer acknowledges what came, and what the ACKs let go after it.
    assert_eq!(ack_everything(&mut b, port, iss, high), 7 * 4096);
    let m = b.s.snmp();
    assert_eq!((m.XskSockstatTcpMem, m.TcpExtTCPMemoryPressures), (0, 1));
    assert!(m.TcpExtTCPMemoryPressuresChrono > 0);
    assert!(m.TcpExtTCPMemoryPressuresChrono <= (b.elapsed() - t_pressure).as_millis() as u64);
    assert_eq!(b.revents(fd, POLLOUT), POLLOUT, "woken: room again");
    let conn = b.s.sockets().into_iter().find(|d| d.fd == Some(fd.0)).unwrap();
    assert_eq!((conn.skmem.sndbuf, conn.skmem.wmem_queued), (262_144, 0), "grown back to its size");
    // Writing again charges again; an abort gives every page back.
    assert_eq!(b.s.send(fd, &pattern(10_000)), Ok(10_000));
    b.out();
    assert_eq!(b.s.snmp().XskSockstatTcpMem, 3);
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.out();
    assert_eq!(b.s.snmp().XskSockstatTcpMem, 0, "nothing left charged");
    b.end();
}

/// A connection closed while it queues more than `SOCK_MIN_SNDBUF` and TCP
/// memory is over `tcp_mem[2]` sends its FIN, then is reset (`tcp_close` →
/// `tcp_check_oom`, `TcpExtTCPAbortOnMemory`), and its pages come back.
#[test]
fn an_orphan_over_tcp_mem_max_is_reset_at_close() {
    let limits = xsknet::ipv4::tcp::mem::TcpMemLimits { min: 1, pressure: 2, max: 2 };
    let mut b = Bench::with_config(|c| c.tcp_mem = Some(limits));
    let (fd, port, iss) = connected_after(&mut b, ms(10));
    assert_eq!(b.s.send(fd, &pattern(6000)), Ok(6000));
    b.out();
    assert_eq!(b.s.send(fd, &pattern(6000)), Ok(6000));
    let sent = b.out();
    assert!(!sent.is_empty());
    assert_eq!(b.s.snmp().XskSockstatTcpMem, 3, "over tcp_mem[2]: charged anyway");
    b.s.close(fd).unwrap();
    // The last data (Nagle does not hold a segment our FIN rides on,
    // `tcp_nagle_test`) with the FIN, then the reset.
    let out = b.out();
    let fl: Vec<u8> = out.iter().map(Seg::flags).collect();
    assert_eq!(fl, [FIN | PSH | ACK, RST | ACK], "the FIN, then tcp_check_oom's reset");
    assert_eq!(out[1].r.seq, iss.wrapping_add(1 + 12_000 + 1));
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPAbortOnMemory, m.XskSockstatTcpMem), (1, 0));
    // The peer's late ACK finds no connection.
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(1 + 12_000), ACK, PEER_WIN), &[]);
    assert_eq!(b.one().flags(), RST);
    b.end();
}

/// With `SO_SNDBUF` set (`SOCK_SNDBUF_LOCK`) memory pressure never cuts the
/// buffer (`tb` stays 65536): a charge over `tcp_mem[2]` while the queue is
/// under the buffer stops the writer at what is queued (Linux: the
/// allocation fails and `sk_stream_wait_memory` waits); an ACK that frees
/// bytes lets it try again (`sk_stream_write_space`), and the next write
/// over the limit stops it again, until the memory is back.
#[test]
fn a_writer_with_so_sndbuf_waits_at_tcp_mem_max_and_retries_after_acks() {
    let limits = xsknet::ipv4::tcp::mem::TcpMemLimits { min: 2, pressure: 6, max: 6 };
    let mut b = Bench::with_config(|c| c.tcp_mem = Some(limits));
    let (fd, port, iss) = {
        let fd = b.s.socket(SockType::Stream).unwrap();
        b.s.setsockopt(fd, SockOpt::SndBuf(65_536)).unwrap();
        assert_eq!(b.s.connect(fd, SocketAddrV4::new(PEER_IP, PPORT)), Err(Errno::EINPROGRESS));
        let syn = b.one();
        let (port, iss) = (syn.r.src_port, syn.r.seq);
        b.at(ms(10));
        let sa = syn_hdr(PPORT, port, PISN, iss.wrapping_add(1), SYN | ACK);
        b.send(sa, &[]);
        b.one();
        b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(1), ACK, PEER_WIN), &[]);
        b.none();
        (fd, port, iss)
    };
    let chunk = pattern(4096);
    let mut high = iss.wrapping_add(1);
    for _ in 0..7 {
        assert_eq!(b.s.send(fd, &chunk), Ok(4096));
        high = highest_end(&b.out(), high);
    }
    let m = b.s.snmp();
    assert_eq!((m.XskSockstatTcpMem, m.TcpExtTCPMemoryPressures), (7, 1));
    assert_eq!(b.s.send(fd, &chunk), Err(Errno::EAGAIN), "stopped at what is queued");
    let conn = b.s.sockets().into_iter().find(|d| d.fd == Some(fd.0)).unwrap();
    assert_eq!((conn.skmem.sndbuf, conn.skmem.wmem_queued), (65_536, 7 * 4096), "the buffer is not cut");
    // The peer acknowledges the first segment: 1460 bytes freed, no page
    // back, still over: the writer may try, and is stopped again.
    b.at(ms(20));
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(1 + 1460), ACK, PEER_WIN), &[]);
    high = highest_end(&b.out(), high);
    assert_eq!(b.revents(fd, POLLOUT), POLLOUT, "woken to try again");
    assert_eq!(b.s.send(fd, &chunk), Ok(4096));
    high = highest_end(&b.out(), high);
    assert_eq!(b.s.snmp().XskSockstatTcpMem, 8);
    assert_eq!(b.s.send(fd, &chunk), Err(Errno::EAGAIN));
    // Everything acknowledged: the pages come back, the writer goes on.
    assert_eq!(ack_everything(&mut b, port, iss, high), 8 * 4096);
    assert_eq!(b.s.snmp().XskSockstatTcpMem, 0);
    assert_eq!(b.s.send(fd, &chunk), Ok(4096));
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    assert_eq!(b.s.snmp().XskSockstatTcpMem, 0);
    b.end();
}

/// An orphan still sending when TCP memory goes over `tcp_mem[2]` (another
/// connection's writes) is reset when its retransmission timer fires
/// (`tcp_write_timeout` → `tcp_out_of_resources` → `tcp_check_oom`,
/// `TcpExtTCPAbortOnMemory`), and its pages come back.
#[test]
fn an_orphan_over_tcp_mem_max_is_reset_at_its_retransmission_timer() {
    let limits = xsknet::ipv4::tcp::mem::TcpMemLimits { min: 1, pressure: 3, max: 3 };
    let mut b = Bench::with_config(|c| c.tcp_mem = Some(limits));
    let (a, _, a_iss) = connected_after(&mut b, ms(10));
    assert_eq!(b.s.send(a, &pattern(6000)), Ok(6000));
    b.out();
    b.s.close(a).unwrap();
    let fin = b.out();
    assert!(fin.last().is_some_and(|s| s.flags() & FIN != 0), "the orphan's FIN: {fin:?}");
    assert_eq!(b.s.snmp().XskSockstatTcpMem, 2, "under tcp_mem[2]: the orphan lives");
    // A second connection's write takes the total over tcp_mem[2].
    let fd = b.s.socket(SockType::Stream).unwrap();
    assert_eq!(b.s.connect(fd, SocketAddrV4::new(PEER_IP, PPORT + 1)), Err(Errno::EINPROGRESS));
    let syn = b.one();
    let sa = syn_hdr(PPORT + 1, syn.r.src_port, PISN, syn.r.seq.wrapping_add(1), SYN | ACK);
    b.send(sa, &[]);
    b.out();
    assert_eq!(b.s.send(fd, &pattern(8192)), Ok(8192));
    b.out();
    assert_eq!(b.s.snmp().XskSockstatTcpMem, 4);
    // The orphan's RTO (1 s after its data, no RTT sample but the handshake's) fires.
    b.at(secs(2));
    let out = b.out();
    let rst: Vec<_> = out.iter().filter(|s| s.flags() & RST != 0).collect();
    assert_eq!(rst.len(), 1, "{out:?}");
    assert_eq!(rst[0].r.seq, a_iss.wrapping_add(1 + 6000 + 1));
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPAbortOnMemory, m.XskSockstatTcpMem), (1, 2));
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    assert_eq!(b.s.snmp().XskSockstatTcpMem, 0);
    b.end();
}

/// `tcpi_unacked` is `packets_out`, segments (as `ss -ti` prints
/// `unacked:`), not bytes: three 100-byte segments and five full ones are
/// 8; an ACK of the small ones and half a full one leaves 5 (the rest of a
/// partly acknowledged segment still counts, `tcp_tso_acked`); a timeout
/// leaves them queued, still 5; our FIN counts one.
#[test]
fn tcpi_unacked_counts_segments_as_packets_out() {
    let mut b = Bench::new();
    let (fd, port, iss) = connected_after(&mut b, ms(10));
    b.s.setsockopt(fd, SockOpt::TcpNodelay(true)).unwrap();
    assert_eq!(b.s.tcp_info(fd).unwrap().unacked, 0);
    for _ in 0..3 {
        assert_eq!(b.s.send(fd, &pattern(100)), Ok(100));
        assert_eq!(b.one().data.len(), 100);
    }
    assert_eq!(b.s.tcp_info(fd).unwrap().unacked, 3);
    assert_eq!(b.s.send(fd, &pattern(5 * MSS)), Ok(5 * MSS));
    assert_eq!(b.out().len(), 5);
    assert_eq!(b.s.tcp_info(fd).unwrap().unacked, 8);
    b.at(ms(20));
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(1 + 300 + 730), ACK, PEER_WIN), &[]);
    b.out();
    assert_eq!(b.s.tcp_info(fd).unwrap().unacked, 5);
    // The retransmission timer fires: the head goes again, nothing leaves the queue.
    b.at(secs(2));
    assert!(!b.out().is_empty());
    assert_eq!(b.s.tcp_info(fd).unwrap().unacked, 5);
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(1 + 300 + 5 * MSS as u32), ACK, PEER_WIN), &[]);
    b.out();
    assert_eq!(b.s.tcp_info(fd).unwrap().unacked, 0);
    b.s.shutdown(fd, Shutdown::Write).unwrap();
    assert_eq!(b.one().flags(), FIN | ACK);
    assert_eq!(b.s.tcp_info(fd).unwrap().unacked, 1, "the FIN");
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.end();
}

/// A tail loss probe that pacing holds back (`SO_MAX_PACING_RATE` 14600
/// bytes/s: a segment every 100 ms once ten have gone free) is not sent as a
/// retransmission of the last segment instead: Linux's `tcp_send_loss_probe`
/// finds new data the window allows, `tcp_write_xmit` sends nothing
/// (`tcp_pacing_check`), and it only re-arms the retransmission timer
/// (`rearm_timer`). When pacing releases the new segment, `tcp_write_xmit`
/// schedules the probe again, which then resends that tail segment.
#[test]
fn a_loss_probe_held_back_by_pacing_waits_for_the_paced_segment() {
    let mut b = Bench::new();
    let (fd, port, iss) = connected_after(&mut b, ms(10));
    b.s.setsockopt(fd, SockOpt::MaxPacingRate(14_600)).unwrap();
    let data = pattern(12 * MSS);
    assert_eq!(b.s.send(fd, &data[..10 * MSS]), Ok(10 * MSS));
    assert_eq!(b.out().len(), 10, "the first ten segments are not paced");
    // Eight come back at 20 ms (srtt 10 ms: the probe is 2·srtt + 2 ms away).
    b.at(ms(20));
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(1 + 8 * MSS as u32), ACK, PEER_WIN), &[]);
    b.none();
    assert_eq!(b.s.send(fd, &data[10 * MSS..]), Ok(2 * MSS));
    let s11 = b.one();
    assert_eq!(s11.r.seq, iss.wrapping_add(1 + 10 * MSS as u32), "the eleventh goes; the twelfth waits 90 ms");
    // The probe timer fires at 42 ms with the twelfth held back: nothing goes.
    b.at(ms(41));
    b.none();
    b.at(ms(43));
    b.none();
    assert_eq!(b.s.snmp().TcpExtTCPLossProbes, 0);
    // Pacing lets the twelfth go at 110 ms (100 ms less the 10 ms credit).
    b.at(ms(109));
    b.none();
    b.at(ms(110));
    let s12 = b.one();
    assert_eq!((s12.r.seq, s12.data.len()), (iss.wrapping_add(1 + 11 * MSS as u32), MSS));
    // It schedules the probe: 22 ms later the tail goes again.
    b.at(ms(131));
    b.none();
    b.at(ms(132));
    let probe = b.one();
    assert_eq!((probe.r.seq, probe.data.len()), (s12.r.seq, MSS), "the last segment, again");
    assert_eq!(b.s.snmp().TcpExtTCPLossProbes, 1);
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.end();
}

/// F-RTO (RFC 5682 with SACK, Linux's `tcp_frto` 2) finds a spurious
/// timeout without timestamps: the ACKs are late, the RTO sends the head
/// again; the ACK of the head (the original arrived) makes F-RTO send new
/// data instead of the rest of the old (step 2b); the next ACK covers data
/// never sent again, so the timeout was spurious (step 3b,
/// `TcpExtTCPSpuriousRTOs`, `TcpExtTCPLossUndo`): the window and threshold
/// are as before it, and nothing old is sent again.
#[test]
fn f_rto_finds_a_spurious_timeout_without_timestamps() {
    let mut b = Bench::new();
    let (fd, port, iss) = connected_after(&mut b, ms(10));
    let data = pattern(30 * MSS);
    assert_eq!(b.s.send(fd, &data), Ok(30 * MSS));
    assert_eq!(b.out().len(), 10);
    let before_rto = b.s.tcp_info(fd).unwrap();
    // The loss probe (2·srtt + 2 ms) sends the eleventh; no ACK comes.
    b.at(ms(40));
    let probe = b.one();
    assert_eq!(probe.r.seq, iss.wrapping_add(1 + 10 * MSS as u32));
    // The RTO: the head again.
    b.at(secs(1));
    let head = b.one();
    assert_eq!((head.r.seq, head.data.len()), (iss.wrapping_add(1), MSS));
    assert_eq!(b.s.snmp().TcpExtTCPTimeouts, 1);
    // The ACK of the original head: F-RTO sends new data, not the second segment.
    b.at(secs(1) + ms(5));
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(1 + MSS as u32), ACK, PEER_WIN), &[]);
    let new = b.out();
    assert!(!new.is_empty());
    for sgm in &new {
        assert!(
            !((sgm.r.seq.wrapping_sub(iss.wrapping_add(1 + 11 * MSS as u32))) as i32).is_negative(),
            "new data only, not {:?}",
            sgm.r.seq.wrapping_sub(iss)
        );
    }
    // The ACK of everything sent once before the timeout: spurious.
    b.at(secs(1) + ms(10));
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(1 + 11 * MSS as u32), ACK, PEER_WIN), &[]);
    b.out();
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPSpuriousRTOs, m.TcpExtTCPLossUndo), (1, 1));
    let after = b.s.tcp_info(fd).unwrap();
    assert!(after.snd_cwnd >= before_rto.snd_cwnd, "{} < {}", after.snd_cwnd, before_rto.snd_cwnd);
    assert_eq!(after.snd_ssthresh, before_rto.snd_ssthresh);
    assert_eq!(m.TcpRetransSegs, 1, "only the timeout's head went twice");
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.end();
}

/// F-RTO when the loss is real (RFC 5682 step 3a): after the head's ACK
/// the new data goes, and the next ACK SACKs only that new data: the old
/// data skipped is lost after all and goes again, from the second segment
/// on; the timeout stands (no `TcpExtTCPSpuriousRTOs`, no undo).
#[test]
fn f_rto_resends_the_old_data_when_the_new_is_sacked() {
    let mut b = Bench::new();
    let (fd, port, iss) = connected_after(&mut b, ms(10));
    let seq = |k: usize| iss.wrapping_add(1 + (k * MSS) as u32);
    assert_eq!(b.s.send(fd, &pattern(30 * MSS)), Ok(30 * MSS));
    assert_eq!(b.out().len(), 10);
    b.at(ms(40));
    assert_eq!(b.one().r.seq, seq(10), "the loss probe");
    b.at(secs(1));
    assert_eq!(b.one().r.seq, seq(0), "the RTO");
    b.at(secs(1) + ms(5));
    b.send(hdr(PPORT, port, PISN + 1, seq(1), ACK, PEER_WIN), &[]);
    let new = b.out();
    assert_eq!(new.iter().map(|s| s.r.seq).collect::<Vec<_>>(), [seq(11), seq(12)], "step 2b: new data");
    // Only the new data arrived: a SACK of it, the ACK still at the second segment.
    b.at(secs(1) + ms(10));
    b.send(sack_ack(port, seq(1), &[(seq(11), seq(12))]), &[]);
    let again = b.out();
    assert_eq!(again.first().map(|s| s.r.seq), Some(seq(1)), "step 3a: the old data again: {again:?}");
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPSpuriousRTOs, m.TcpExtTCPLossUndo), (0, 0));
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.end();
}

// ---------------------------------------------------------------- retransmission

/// An active open whose SYN-ACK comes `rtt` after the SYN: (connection,
/// our port, our ISN). The peer's window is 64512 (63 << 10).
fn connected_after(b: &mut Bench, rtt: Duration) -> (Fd, u16, u32) {
    connected_after_with(b, rtt, linux_syn_options())
}

/// [`connected_after`] with the peer's SYN-ACK carrying `options`.
fn connected_after_with(b: &mut Bench, rtt: Duration, options: TcpOptions) -> (Fd, u16, u32) {
    let fd = b.s.socket(SockType::Stream).unwrap();
    assert_eq!(b.s.connect(fd, SocketAddrV4::new(PEER_IP, PPORT)), Err(Errno::EINPROGRESS));
    let syn = b.one();
    let (port, iss) = (syn.r.src_port, syn.r.seq);
    b.at(b.elapsed() + rtt);
    let mut sa = hdr(PPORT, port, PISN, iss.wrapping_add(1), SYN | ACK, SYN_WINDOW);
    sa.options = options;
    b.send(sa, &[]);
    assert_eq!(b.one().r.ack, PISN + 1);
    // The peer's first ACK sets its scaled window.
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(1), ACK, PEER_WIN), &[]);
    b.none();
    (fd, port, iss)
}

#[test]
fn rto_follows_rfc6298_with_backoff_and_karn() {
    // The retransmission timer alone: no tail loss probe before it
    // (`tcp_early_retrans=0`; with Linux's default 3 a probe goes first).
    let mut b = Bench::with_config(|c| c.tcp_early_retrans = 0);
    let (fd, port, iss) = connected_after(&mut b, ms(100));
    // One sample of 100 ms: SRTT 100 ms, RTTVAR 50 ms, RTO 100 + max(200, 200) = 300 ms.
    let info = b.s.tcp_info(fd).unwrap();
    assert_eq!((info.rtt_us, info.rttvar_us, info.rto_us), (100_000, 50_000, 300_000));
    assert_eq!(b.s.send(fd, &pattern(1000)), Ok(1000));
    let first = b.one();
    assert_eq!((first.flags(), first.r.seq.wrapping_sub(iss), first.data.len()), (ACK | PSH, 1, 1000));
    // Backoff doubles: 300, 600, 1200 ms.
    let mut t = 100;
    for (n, gap) in [300u64, 600, 1200].into_iter().enumerate() {
        b.at(ms(t + gap - 1));
        b.none();
        t += gap;
        b.at(ms(t));
        let r = b.one();
        assert_eq!((r.r.seq, r.data.as_slice(), r.flags()), (first.r.seq, first.data.as_slice(), ACK | PSH));
        assert_eq!(b.s.tcp_info(fd).unwrap().retransmits, n as u32 + 1);
    }
    let m = b.s.snmp();
    assert_eq!((m.TcpRetransSegs, m.TcpExtTCPTimeouts, m.TcpOutSegs), (3, 3, 3));
    // The ACK of the retransmitted segment gives no RTT sample (Karn), so
    // the backed-off RTO stays (RFC 6298 §5.7): 300 << 3 = 2400 ms.
    b.at(ms(t + 100));
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(1001), ACK, PEER_WIN), &[]);
    let info = b.s.tcp_info(fd).unwrap();
    assert_eq!((info.rtt_us, info.rto_us, info.retransmits), (100_000, 2_400_000, 0));
    t += 100;
    assert_eq!(b.s.send(fd, b"next"), Ok(4));
    let n = b.one();
    assert_eq!(n.r.seq.wrapping_sub(iss), 1001);
    b.at(ms(t + 2399));
    b.none();
    b.at(ms(t + 2400));
    assert_eq!(b.one().r.seq, n.r.seq);
    t += 2400;
    // A fresh segment, acknowledged without retransmission, gives a sample
    // of 50 ms and resets the backoff: SRTT 93.75 ms, RTTVAR 50 ms, RTO 293.75 ms.
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(1005), ACK, PEER_WIN), &[]);
    assert_eq!(b.s.send(fd, b"more"), Ok(4));
    b.one();
    b.at(ms(t + 50));
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(1009), ACK, PEER_WIN), &[]);
    let info = b.s.tcp_info(fd).unwrap();
    assert_eq!((info.rtt_us, info.rttvar_us, info.rto_us), (93_750, 50_000, 293_750));
    b.s.close(fd).unwrap();
    let fin = b.one();
    assert_eq!((fin.flags(), fin.r.seq.wrapping_sub(iss)), (FIN | ACK, 1009));
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(1010), RST, 0), &[]);
    b.end();
}

#[test]
fn three_duplicate_acks_fast_retransmit_and_newreno_partial_acks() {
    let mut b = Bench::new();
    // A peer without SACK (with SACK, Linux counts SACKed segments, not
    // duplicate ACKs: `tcp_dupack_heuristics`).
    let no_sack = TcpOptions { sack_permitted: false, ..linux_syn_options() };
    let (fd, port, iss) = connected_after_with(&mut b, ms(100), no_sack);
    let data = pattern(7 * MSS);
    assert_eq!(b.s.send(fd, &data), Ok(data.len()));
    let out = b.out();
    assert_eq!(out.len(), 7);
    let seg = |i: u32| iss.wrapping_add(1 + i * MSS as u32);
    let ack = |b: &mut Bench, a: u32| b.send(hdr(PPORT, port, PISN + 1, a, ACK, PEER_WIN), &[]);
    b.at(ms(150));
    // Segments 1 and 3 (0-based) are lost: ACK of 0, then duplicates for 2, 4, 5, 6.
    ack(&mut b, seg(1));
    b.none();
    ack(&mut b, seg(1));
    ack(&mut b, seg(1));
    b.none();
    ack(&mut b, seg(1));
    let r = b.one();
    assert_eq!((r.flags(), r.r.seq, r.data.as_slice()), (ACK, seg(1), &data[MSS..2 * MSS]));
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPFastRetrans, m.TcpRetransSegs, m.TcpExtTCPRenoRecovery), (1, 1, 1));
    ack(&mut b, seg(1));
    b.none();
    // The retransmission fills the first hole: a partial ACK, and the next
    // hole goes at once (RFC 6582 §3.2 step 5).
    b.at(ms(250));
    ack(&mut b, seg(3));
    let r = b.one();
    assert_eq!((r.r.seq, r.data.as_slice()), (seg(3), &data[3 * MSS..4 * MSS]));
    assert_eq!(b.s.snmp().TcpExtTCPFastRetrans, 2);
    // All acknowledged: recovery ends, no timeout ever fired.
    b.at(ms(350));
    ack(&mut b, seg(7));
    b.none();
    b.at(ms(5000));
    b.none();
    let m = b.s.snmp();
    assert_eq!((m.TcpRetransSegs, m.TcpExtTCPTimeouts), (2, 0));
    b.s.close(fd).unwrap();
    let fin = b.one();
    assert_eq!((fin.flags(), fin.r.seq), (FIN | ACK, seg(7)));
    b.send(hdr(PPORT, port, PISN + 1, seg(7).wrapping_add(1), RST, 0), &[]);
    b.end();
}

#[test]
fn data_retransmission_gives_up_after_tcp_retries2() {
    let mut b = Bench::new();
    let (fd, _port, iss) = connected_after(&mut b, ms(100));
    assert_eq!(b.s.send(fd, b"lost"), Ok(4));
    let first = b.one();
    // RTO 300 ms doubling to the 120 s cap. tcp_retries2 15 gives
    // tcp_model_timeout(15, 200 ms) = 924.6 s from the first retransmission:
    // 15 retransmissions, then ETIMEDOUT at the 16th timeout.
    let mut t = 100u64;
    let mut rto = 300u64;
    for n in 1..=15 {
        t += rto;
        rto = (rto * 2).min(120_000);
        b.at(ms(t));
        let r = b.one();
        assert_eq!(r.r.seq, first.r.seq, "retransmission {n} at {t} ms");
    }
    assert_eq!(t, 873_400);
    b.at(ms(t + rto - 1));
    b.none();
    assert_eq!(b.state(fd), TcpState::Established);
    b.at(ms(t + rto));
    b.none();
    let mut buf = [0u8; 4];
    assert_eq!(b.s.recv(fd, &mut buf), Err(Errno::ETIMEDOUT));
    let m = b.s.snmp();
    assert_eq!((m.TcpRetransSegs, m.TcpExtTCPTimeouts, m.TcpExtTCPAbortOnTimeout), (15, 16, 1));
    assert_eq!((m.TcpEstabResets, m.TcpCurrEstab, m.TcpOutRsts), (1, 0, 0));
    let _ = iss;
    b.s.close(fd).unwrap();
    b.end();
}

// ---------------------------------------------------------------- windows

#[test]
fn zero_window_stops_the_peer_and_a_read_sends_the_window_update() {
    let mut b = Bench::new();
    let l = b.s.socket(SockType::Stream).unwrap();
    b.s.setsockopt(l, SockOpt::RcvBuf(4096)).unwrap();
    b.s.bind(l, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, LPORT)).unwrap();
    b.s.listen(l, 4).unwrap();
    // No window scaling: windows are bytes.
    let mut syn = hdr(PPORT, LPORT, PISN, 0, SYN, SYN_WINDOW);
    syn.options = TcpOptions { mss: Some(1460), ..TcpOptions::default() };
    b.send(syn, &[]);
    let sa = b.one();
    // tcp_select_initial_window: 4096 rounded down to the MSS.
    assert_eq!(sa.r.window, 2920);
    let iss = sa.r.seq;
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(1), ACK, SYN_WINDOW), &[]);
    let (fd, _) = b.s.accept(l).unwrap();
    let data = pattern(2921);
    peer_data(&mut b, iss, 0, &data[..1460]);
    let a = b.one();
    assert_eq!((a.r.ack, a.r.window), (PISN + 1461, 1460));
    peer_data(&mut b, iss, 1460, &data[1460..2920]);
    let a = b.one();
    assert_eq!((a.r.ack, a.r.window), (PISN + 2921, 0));
    assert_eq!(b.s.snmp().TcpExtTCPToZeroWindowAdv, 1);
    // The peer's probe with a byte: dropped, answered with the zero window.
    peer_data(&mut b, iss, 2920, &data[2920..]);
    let a = b.one();
    assert_eq!((a.r.ack, a.r.window), (PISN + 2921, 0));
    assert_eq!(b.s.snmp().TcpExtTCPZeroWindowDrop, 1);
    // The application reads: the window opens at once (tcp_cleanup_rbuf).
    assert_eq!(read_all(&mut b, fd), &data[..2920]);
    let u = b.one();
    assert_eq!((u.flags(), u.r.seq, u.r.ack, u.r.window), (ACK, iss.wrapping_add(1), PISN + 2921, 2920));
    assert_eq!(b.s.snmp().TcpExtTCPFromZeroWindowAdv, 1);
    b.s.close(fd).unwrap();
    b.s.close(l).unwrap();
    assert_eq!(b.one().flags(), FIN | ACK);
    b.send(hdr(PPORT, LPORT, PISN + 2921, iss.wrapping_add(2), RST, 0), &[]);
    b.end();
}

#[test]
fn zero_window_probes_back_off_until_the_window_opens() {
    let mut b = Bench::new();
    let (fd, port, iss) = connected_after(&mut b, ms(100));
    // The peer's window closes.
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(1), ACK, 0), &[]);
    assert_eq!(b.s.send(fd, b"waiting"), Ok(7));
    b.none();
    // tcp_probe_timer: probes at RTO (300 ms), then doubling: an ACK at
    // snd_una - 1 with no data (tcp_xmit_probe_skb).
    let mut t = 100;
    for gap in [300u64, 600, 1200] {
        b.at(ms(t + gap - 1));
        b.none();
        t += gap;
        b.at(ms(t));
        let p = b.one();
        assert_eq!((p.flags(), p.r.seq, p.r.ack, p.data.len()), (ACK, iss, PISN + 1, 0), "probe at {t} ms");
    }
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPWinProbe, m.TcpRetransSegs), (3, 0));
    assert_eq!(b.state(fd), TcpState::Established);
    // The window opens: the data goes at once.
    b.at(ms(t + 10));
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(1), ACK, PEER_WIN), &[]);
    let d = b.one();
    assert_eq!((d.flags(), d.r.seq.wrapping_sub(iss), d.data.as_slice()), (ACK | PSH, 1, &b"waiting"[..]));
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.end();
}

// ---------------------------------------------------------------- close

#[test]
fn active_close_fin_wait_to_time_wait_for_60s() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    b.s.close(fd).unwrap();
    let fin = b.one();
    assert_eq!((fin.flags(), fin.r.seq, fin.r.ack, fin.r.window), (FIN | ACK, iss.wrapping_add(1), PISN + 1, OUR_WIN));
    assert_eq!(states(&b), vec![(TcpState::FinWait1, 1), (TcpState::Listen, 1)]);
    b.at(ms(10));
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(2), ACK, PEER_WIN), &[]);
    b.none();
    assert_eq!(states(&b), vec![(TcpState::FinWait2, 1), (TcpState::Listen, 1)]);
    b.at(ms(20));
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(2), FIN | ACK, PEER_WIN), &[]);
    let a = b.one();
    assert_eq!((a.flags(), a.r.seq, a.r.ack), (ACK, iss.wrapping_add(2), PISN + 2));
    assert_eq!(states(&b), vec![(TcpState::TimeWait, 1), (TcpState::Listen, 1)]);
    // A retransmitted FIN is ACKed again and restarts the 60 s.
    b.at(secs(10));
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(2), FIN | ACK, PEER_WIN), &[]);
    let a = b.one();
    assert_eq!((a.flags(), a.r.seq, a.r.ack), (ACK, iss.wrapping_add(2), PISN + 2));
    b.at(secs(70) - ms(1));
    assert_eq!(states(&b), vec![(TcpState::TimeWait, 1), (TcpState::Listen, 1)]);
    assert_eq!(b.s.snmp().TcpExtTW, 0);
    b.at(secs(70));
    assert_eq!(states(&b), vec![(TcpState::Listen, 1)]);
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTW, m.TcpEstabResets, m.TcpCurrEstab), (1, 0, 0));
    b.s.close(l).unwrap();
    b.end();
}

#[test]
fn passive_close_close_wait_to_last_ack_to_closed() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(1), FIN | ACK, PEER_WIN), &[]);
    // tcp_fin enters interactive mode: the ACK is delayed.
    b.none();
    assert_eq!(b.state(fd), TcpState::CloseWait);
    assert_eq!(b.s.snmp().TcpCurrEstab, 1, "CLOSE-WAIT counts as established");
    let mut buf = [0u8; 8];
    assert_eq!(b.s.recv(fd, &mut buf), Ok(0));
    b.at(ms(40));
    let a = b.one();
    assert_eq!((a.flags(), a.r.seq, a.r.ack), (ACK, iss.wrapping_add(1), PISN + 2));
    // Still writable in CLOSE-WAIT.
    assert_eq!(b.s.send(fd, b"bye"), Ok(3));
    assert_eq!(b.one().data, b"bye");
    b.s.close(fd).unwrap();
    let fin = b.one();
    assert_eq!((fin.flags(), fin.r.seq, fin.r.ack), (FIN | ACK, iss.wrapping_add(4), PISN + 2));
    assert_eq!(states(&b), vec![(TcpState::LastAck, 1), (TcpState::Listen, 1)]);
    assert_eq!(b.s.snmp().TcpCurrEstab, 0);
    b.send(hdr(PPORT, LPORT, PISN + 2, iss.wrapping_add(5), ACK, PEER_WIN), &[]);
    b.none();
    assert_eq!(states(&b), vec![(TcpState::Listen, 1)]);
    let m = b.s.snmp();
    assert_eq!((m.TcpEstabResets, m.TcpExtTW, m.TcpOutRsts), (0, 0, 0));
    b.s.close(l).unwrap();
    b.end();
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    b.s.close(fd).unwrap();
    assert_eq!(b.one().flags(), FIN | ACK);
    // The peer's FIN crosses ours (it has not seen ours).
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(1), FIN | ACK, PEER_WIN), &[]);
    let a = b.one();
    assert_eq!((a.flags(), a.r.seq, a.r.ack), (ACK, iss.wrapping_add(2), PISN + 2));
    assert_eq!(states(&b), vec![(TcpState::Listen, 1), (TcpState::Closing, 1)]);
    b.send(hdr(PPORT, LPORT, PISN + 2, iss.wrapping_add(2), ACK, PEER_WIN), &[]);
    b.none();
    assert_eq!(states(&b), vec![(TcpState::TimeWait, 1), (TcpState::Listen, 1)]);
    b.at(secs(60));
    assert_eq!(states(&b), vec![(TcpState::Listen, 1)]);
    assert_eq!(b.s.snmp().TcpExtTW, 1);
    b.s.close(l).unwrap();
    b.end();
}

#[test]
fn orphaned_fin_wait_2_ends_after_60s() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    b.s.close(fd).unwrap();
    b.one();
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(2), ACK, PEER_WIN), &[]);
    assert_eq!(states(&b), vec![(TcpState::FinWait2, 1), (TcpState::Listen, 1)]);
    b.at(secs(60) - ms(1));
    assert_eq!(states(&b), vec![(TcpState::FinWait2, 1), (TcpState::Listen, 1)]);
    b.at(secs(60));
    assert_eq!(states(&b), vec![(TcpState::Listen, 1)]);
    b.none();
    // The peer's late FIN finds nothing: RST from its ACK field.
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(2), FIN | ACK, PEER_WIN), &[]);
    let r = b.one();
    assert_eq!((r.flags(), r.r.seq), (RST, iss.wrapping_add(2)));
    b.s.close(l).unwrap();
    b.end();
}

#[test]
fn shutdown_write_half_closes_and_reads_still_work() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    b.s.shutdown(fd, Shutdown::Write).unwrap();
    let fin = b.one();
    assert_eq!((fin.flags(), fin.r.seq), (FIN | ACK, iss.wrapping_add(1)));
    assert_eq!(b.state(fd), TcpState::FinWait1);
    assert_eq!(b.s.send(fd, b"x"), Err(Errno::EPIPE));
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(2), ACK, PEER_WIN), &[]);
    assert_eq!(b.state(fd), TcpState::FinWait2);
    // A socket still open waits in FIN-WAIT-2 as long as it takes.
    b.at(secs(120));
    assert_eq!(b.state(fd), TcpState::FinWait2);
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(2), ACK | PSH, PEER_WIN), b"reply");
    assert_eq!(b.one().r.ack, PISN + 6);
    assert_eq!(read_all(&mut b, fd), b"reply");
    b.send(hdr(PPORT, LPORT, PISN + 6, iss.wrapping_add(2), FIN | ACK, PEER_WIN), &[]);
    let a = b.one();
    assert_eq!((a.flags(), a.r.seq, a.r.ack), (ACK, iss.wrapping_add(2), PISN + 7));
    let mut buf = [0u8; 4];
    assert_eq!(b.s.recv(fd, &mut buf), Ok(0));
    b.s.close(fd).unwrap();
    b.none();
    assert_eq!(states(&b), vec![(TcpState::TimeWait, 1), (TcpState::Listen, 1)]);
    b.s.close(l).unwrap();
    b.end();
}

#[test]
fn close_with_unread_data_resets() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    peer_data(&mut b, iss, 0, b"unread");
    b.one();
    b.s.close(fd).unwrap();
    let r = b.one();
    assert_eq!((r.flags(), r.r.seq, r.r.ack), (RST | ACK, iss.wrapping_add(1), PISN + 7));
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPAbortOnClose, m.TcpEstabResets, m.TcpOutRsts, m.TcpCurrEstab), (1, 1, 1, 0));
    assert_eq!(states(&b), vec![(TcpState::Listen, 1)]);
    b.s.close(l).unwrap();
    b.end();
}

#[test]
fn data_after_close_resets() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    b.s.close(fd).unwrap();
    assert_eq!(b.one().flags(), FIN | ACK);
    // Data that does not acknowledge our FIN: FIN-WAIT-1, nobody to read it.
    peer_data(&mut b, iss, 0, b"late");
    let r = b.one();
    assert_eq!((r.flags(), r.r.seq, r.r.ack), (RST, iss.wrapping_add(1), 0));
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPAbortOnData, m.TcpOutRsts), (1, 1));
    assert_eq!(states(&b), vec![(TcpState::Listen, 1)]);
    // Same in FIN-WAIT-2 (the orphan's TIME-WAIT sock).
    b.handshake_in(PPORT + 1);
    let (fd2, _) = b.s.accept(l).unwrap();
    b.s.close(fd2).unwrap();
    let fin = b.one();
    let snd = fin.r.seq;
    b.send(hdr(PPORT + 1, LPORT, PISN + 1, snd.wrapping_add(1), ACK, PEER_WIN), &[]);
    b.none();
    b.send(hdr(PPORT + 1, LPORT, PISN + 1, snd.wrapping_add(1), ACK | PSH, PEER_WIN), b"late");
    let r = b.one();
    assert_eq!((r.flags(), r.r.seq), (RST, snd.wrapping_add(1)));
    assert_eq!(states(&b), vec![(TcpState::Listen, 1)]);
    // tcp_timewait_state_process answers TCP_TW_RST and the sock goes,
    // without a counter.
    assert_eq!(b.s.snmp().TcpExtTCPAbortOnData, 1);
    b.s.close(l).unwrap();
    b.end();
}

#[test]
fn a_higher_syn_reopens_a_time_wait_four_tuple_through_the_listener() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    b.s.close(fd).unwrap();
    b.one();
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(2), FIN | ACK, PEER_WIN), &[]);
    b.one();
    assert_eq!(states(&b), vec![(TcpState::TimeWait, 1), (TcpState::Listen, 1)]);
    // An old SYN (not above RCV.NXT) gets the TIME-WAIT ACK.
    b.send(hdr(PPORT, LPORT, PISN, 0, SYN, SYN_WINDOW), &[]);
    let a = b.one();
    assert_eq!((a.flags(), a.r.seq, a.r.ack), (ACK, iss.wrapping_add(2), PISN + 2));
    // A new one: the listener answers with ISN = snd_nxt + 65535 + 2
    // (tcp_timewait_state_process).
    let nisn = PISN + 1_000_000;
    let syn = syn_hdr(PPORT, LPORT, nisn, 0, SYN);
    b.send(syn, &[]);
    let sa = b.one();
    assert_eq!((sa.flags(), sa.r.seq, sa.r.ack), (SYN | ACK, iss.wrapping_add(2 + 65537), nisn + 1));
    b.send(hdr(PPORT, LPORT, nisn + 1, sa.r.seq.wrapping_add(1), ACK, PEER_WIN), &[]);
    let (fd2, peer) = b.s.accept(l).unwrap();
    assert_eq!(peer, SocketAddrV4::new(PEER_IP, PPORT));
    assert_eq!(b.state(fd2), TcpState::Established);
    let m = b.s.snmp();
    assert_eq!((m.TcpPassiveOpens, m.TcpExtTW), (2, 0));
    b.s.setsockopt(fd2, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd2).unwrap();
    b.s.close(l).unwrap();
    b.end();
}

#[test]
fn answered_zero_window_probes_restart_the_timer_and_never_time_out() {
    let mut b = Bench::new();
    let (fd, port, iss) = connected_after(&mut b, ms(100));
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(1), ACK, 0), &[]);
    assert_eq!(b.s.send(fd, b"waiting"), Ok(7));
    b.none();
    // Each probe is answered 10 ms later with the window still shut:
    // tcp_ack_probe restarts the timer from the answer, with the backoff so
    // far; icsk_probes_out goes back to 0, so the peer is never given up.
    let mut t = 100;
    let mut gap = 300u64;
    for n in 0..20 {
        b.at(ms(t + gap - 1));
        b.none();
        t += gap;
        b.at(ms(t));
        let p = b.one();
        assert_eq!((p.flags(), p.r.seq, p.data.len()), (ACK, iss, 0), "probe {n} at {t} ms");
        t += 10;
        b.at(ms(t));
        b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(1), ACK, 0), &[]);
        b.none();
        gap = (gap * 2).min(120_000);
    }
    assert_eq!(b.state(fd), TcpState::Established);
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPWinProbe, m.TcpExtTCPAbortOnTimeout), (20, 0));
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(1), ACK, PEER_WIN), &[]);
    assert_eq!(b.one().data, b"waiting");
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.end();
}

#[test]
fn out_of_window_acks_are_answered_once_per_500ms() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    let far = PISN + 1 + 10_000_000;
    b.send(hdr(PPORT, LPORT, far, iss.wrapping_add(1), ACK, PEER_WIN), &[]);
    let d = b.one();
    assert_eq!((d.flags(), d.r.seq, d.r.ack), (ACK, iss.wrapping_add(1), PISN + 1));
    // tcp_oow_rate_limited: a bare ACK within 500 ms gets nothing.
    b.at(ms(499));
    b.send(hdr(PPORT, LPORT, far, iss.wrapping_add(1), ACK, PEER_WIN), &[]);
    b.none();
    assert_eq!(b.s.snmp().TcpExtTCPACKSkippedSeq, 1);
    // Data is never rate-limited.
    b.send(hdr(PPORT, LPORT, far, iss.wrapping_add(1), ACK, PEER_WIN), b"x");
    assert_eq!(b.one().r.ack, PISN + 1);
    b.at(ms(1100));
    b.send(hdr(PPORT, LPORT, far, iss.wrapping_add(1), ACK, PEER_WIN), &[]);
    assert_eq!(b.one().r.ack, PISN + 1);
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPACKSkippedSeq, m.TcpExtTCPACKSkippedChallenge, m.TcpExtTCPChallengeACK), (1, 0, 0));
    abort_close_and_end(&mut b, fd, l);
}

#[test]
fn an_orphans_fin_is_retransmitted_eight_times_then_given_up() {
    let mut b = Bench::new();
    let (fd, port, iss) = connected_after(&mut b, ms(100));
    b.s.close(fd).unwrap();
    let fin = b.one();
    assert_eq!((fin.flags(), fin.r.seq), (FIN | ACK, iss.wrapping_add(1)));
    // tcp_orphan_retries: 8 while the RTO is below 120 s, measured as
    // tcp_model_timeout(8, 200 ms) = 102.2 s from the first retransmission.
    let mut t = 100u64;
    let mut rto = 300u64;
    for n in 1..=8 {
        t += rto;
        rto *= 2;
        b.at(ms(t));
        let r = b.one();
        assert_eq!((r.flags(), r.r.seq, r.r.ack), (FIN | ACK, iss.wrapping_add(1), PISN + 1), "FIN {n} at {t} ms");
    }
    assert_eq!(states(&b), vec![(TcpState::FinWait1, 1)]);
    b.at(ms(t + rto - 1));
    b.none();
    b.at(ms(t + rto));
    b.none();
    assert_eq!(states(&b), vec![]);
    let m = b.s.snmp();
    assert_eq!((m.TcpRetransSegs, m.TcpExtTCPTimeouts, m.TcpExtTCPAbortOnTimeout), (8, 9, 1));
    // The peer's late ACK finds no socket.
    b.send(hdr(PPORT, port, PISN + 1, iss.wrapping_add(2), ACK, PEER_WIN), &[]);
    assert_eq!(b.one().flags(), RST);
    b.end();
}

#[test]
fn rst_to_a_request_sock_drops_it_as_a_failed_attempt() {
    let mut b = Bench::new();
    let l = b.listener(16);
    let syn = syn_hdr(PPORT, LPORT, PISN, 0, SYN);
    b.send(syn, &[]);
    let sa = b.one();
    // tcp_check_req: an in-window RST ends the request.
    b.send(hdr(PPORT, LPORT, PISN + 1, 0, RST, 0), &[]);
    b.none();
    let m = b.s.snmp();
    assert_eq!((m.TcpExtEmbryonicRsts, m.TcpAttemptFails, m.TcpPassiveOpens), (1, 1, 0));
    // No request left: its SYN-ACK timer sends nothing, the final ACK is reset.
    b.at(secs(1));
    b.none();
    b.send(hdr(PPORT, LPORT, PISN + 1, sa.r.seq.wrapping_add(1), ACK, PEER_WIN), &[]);
    let r = b.one();
    assert_eq!((r.flags(), r.r.seq), (RST, sa.r.seq.wrapping_add(1)));
    assert_eq!(b.s.accept(l), Err(Errno::EAGAIN));
    // A final ACK that carries data: the child has it at accept().
    b.send(syn, &[]);
    let sa = b.one();
    b.send(hdr(PPORT, LPORT, PISN + 1, sa.r.seq.wrapping_add(1), ACK | PSH, PEER_WIN), b"GET /");
    let a = b.one();
    assert_eq!((a.flags(), a.r.ack), (ACK, PISN + 6));
    let (fd, _) = b.s.accept(l).unwrap();
    assert_eq!(read_all(&mut b, fd), b"GET /");
    abort_close_and_end(&mut b, fd, l);
}

#[test]
fn after_a_timeout_the_head_goes_alone_then_slow_start_resends_the_rest() {
    let mut b = Bench::new();
    let (fd, port, iss) = connected_after(&mut b, ms(100));
    let data = pattern(3 * MSS);
    assert_eq!(b.s.send(fd, &data), Ok(data.len()));
    assert_eq!(b.out().len(), 3);
    let seg = |i: u32| iss.wrapping_add(1 + i * MSS as u32);
    // All three lost: the RTO (300 ms) resends the head only (cwnd 1, tcp_enter_loss).
    b.at(ms(400));
    let h = b.one();
    assert_eq!((h.r.seq, h.data.len(), h.flags()), (seg(0), MSS, ACK));
    // Its ACK grows cwnd to 2: the other two go again (tcp_xmit_retransmit_queue in Loss).
    b.at(ms(500));
    b.send(hdr(PPORT, port, PISN + 1, seg(1), ACK, PEER_WIN), &[]);
    let out = b.out();
    let got: Vec<(u32, u8)> = out.iter().map(|s| (s.r.seq, s.flags())).collect();
    assert_eq!(got, vec![(seg(1), ACK), (seg(2), ACK | PSH)]);
    let m = b.s.snmp();
    assert_eq!((m.TcpRetransSegs, m.TcpExtTCPTimeouts, m.TcpExtTCPSlowStartRetrans), (3, 1, 2));
    b.send(hdr(PPORT, port, PISN + 1, seg(3), ACK, PEER_WIN), &[]);
    b.none();
    assert_eq!(b.s.tcp_info(fd).unwrap().unacked, 0);
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.end();
}

#[test]
fn out_of_order_fin_and_sequence_wrap() {
    let mut b = Bench::new();
    let l = b.listener(16);
    // The peer's sequence numbers wrap past 2^32 within the data.
    let pisn: u32 = 0xffff_fc00;
    let mut syn = hdr(PPORT, LPORT, pisn, 0, SYN, SYN_WINDOW);
    syn.options = TcpOptions { mss: Some(1460), window_scale: Some(7), ..TcpOptions::default() };
    b.send(syn, &[]);
    let iss = b.one().r.seq;
    let ack = iss.wrapping_add(1);
    b.send(hdr(PPORT, LPORT, pisn.wrapping_add(1), ack, ACK, PEER_WIN), &[]);
    let (fd, _) = b.s.accept(l).unwrap();
    let data = pattern(3000);
    let at = |off: u32| pisn.wrapping_add(1).wrapping_add(off);
    // The last part with the FIN first, then the middle, then the start.
    b.send(hdr(PPORT, LPORT, at(2000), ack, ACK | FIN, PEER_WIN), &data[2000..]);
    assert_eq!(b.one().r.ack, at(0));
    b.send(hdr(PPORT, LPORT, at(1000), ack, ACK, PEER_WIN), &data[1000..2000]);
    assert_eq!(b.one().r.ack, at(0));
    assert_eq!(b.state(fd), TcpState::Established);
    // Partly old, partly new: the start, overlapping the queued middle.
    b.send(hdr(PPORT, LPORT, at(0), ack, ACK, PEER_WIN), &data[..1500]);
    let a = b.one();
    // Everything up to and including the FIN.
    assert_eq!((a.flags(), a.r.ack), (ACK, at(3001)));
    assert_eq!(b.state(fd), TcpState::CloseWait);
    assert_eq!(read_all(&mut b, fd), data);
    let mut buf = [0u8; 4];
    assert_eq!(b.s.recv(fd, &mut buf), Ok(0));
    b.s.close(fd).unwrap();
    let fin = b.one();
    assert_eq!((fin.flags(), fin.r.seq, fin.r.ack), (FIN | ACK, ack, at(3001)));
    b.send(hdr(PPORT, LPORT, at(3001), ack.wrapping_add(1), ACK, PEER_WIN), &[]);
    b.s.close(l).unwrap();
    b.end();
}

#[test]
fn a_handshake_without_rtt_sample_leaves_the_rto_at_3s() {
    // The retransmission timer alone: no tail loss probe before it
    // (`tcp_early_retrans=0`; with Linux's default 3 a probe goes first).
    let mut b = Bench::with_config(|c| c.tcp_early_retrans = 0);
    // Active: the SYN is retransmitted, so its SYN-ACK gives no sample (Karn).
    let fd = b.s.socket(SockType::Stream).unwrap();
    assert_eq!(b.s.connect(fd, SocketAddrV4::new(PEER_IP, PPORT)), Err(Errno::EINPROGRESS));
    let syn = b.one();
    let (port, iss) = (syn.r.src_port, syn.r.seq);
    b.at(secs(1));
    b.one();
    b.at(ms(1200));
    let sa = syn_hdr(PPORT, port, PISN, iss.wrapping_add(1), SYN | ACK);
    b.send(sa, &[]);
    b.one();
    // tcp_init_metrics: RTO 3 s (TCP_TIMEOUT_FALLBACK), no SRTT.
    let info = b.s.tcp_info(fd).unwrap();
    assert_eq!((info.rtt_us, info.rto_us), (0, 3_000_000));
    assert_eq!(b.s.send(fd, b"data"), Ok(4));
    let d = b.one();
    b.at(ms(4199));
    b.none();
    b.at(ms(4200));
    assert_eq!(b.one().r.seq, d.r.seq);
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    assert_eq!(b.one().flags(), RST | ACK);
    // Passive: the SYN-ACK went twice (a retransmitted SYN), so the final
    // ACK gives no sample either (tcp_synack_rtt_meas).
    let l = b.listener(4);
    let psyn = syn_hdr(PPORT, LPORT, PISN, 0, SYN);
    b.send(psyn, &[]);
    let sa = b.one();
    b.at(ms(4500));
    b.send(psyn, &[]);
    b.one();
    b.at(ms(4600));
    b.send(hdr(PPORT, LPORT, PISN + 1, sa.r.seq.wrapping_add(1), ACK, PEER_WIN), &[]);
    let (c, _) = b.s.accept(l).unwrap();
    let info = b.s.tcp_info(c).unwrap();
    assert_eq!((info.rtt_us, info.rto_us), (0, 3_000_000));
    b.s.setsockopt(c, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(c).unwrap();
    b.s.close(l).unwrap();
    b.end();
}

/// `ss -a` of the stack: each kind of socket with the state, queues and
/// descriptor `ss` shows for it (net/ipv4/inet_diag.c, tcp_diag.c, udp_diag.c).
#[test]
fn sockets_lists_every_kind_as_ss_shows_them() {
    use xsknet::inet_diag::Netid;
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    // Unread data on the accepted connection: Recv-Q.
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(1), ACK | PSH, PEER_WIN), b"hello");
    b.out();
    // A second child still on the accept queue, and a SYN still in the SYN queue.
    b.handshake_in(PPORT + 1);
    let syn = syn_hdr(PPORT + 2, LPORT, PISN, 0, SYN);
    b.send(syn, &[]);
    b.one();
    // A UDP socket with one datagram waiting.
    let u = b.s.socket(SockType::Dgram).unwrap();
    b.s.bind(u, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 53)).unwrap();
    let eth = EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::IPV4 };
    let ip = build::ipv4_repr(PEER_IP, OUR_IP, protocol::UDP, 7);
    let udp = xsknet::wire::udp::UdpRepr { src_port: 5353, dst_port: 53, payload_len: 5 };
    assert!(b.w.inject(&build::udp_frame(&eth, &ip, &udp, b"query")));
    b.poll();
    // A TCP socket neither connected nor listening.
    let idle = b.s.socket(SockType::Stream).unwrap();

    let all = b.s.sockets();
    let find = |state: TcpState, port: u16| {
        all.iter()
            .find(|d| d.state == state && d.remote.map_or(0, |r| r.port()) == port)
            .unwrap_or_else(|| panic!("no {state:?} from port {port}: {all:#?}"))
    };
    let listener = find(TcpState::Listen, 0);
    assert_eq!(
        (listener.fd, listener.recv_q, listener.send_q),
        (Some(l.0), 1, 16),
        "Recv-Q: the accept queue; Send-Q: the backlog"
    );
    let conn = find(TcpState::Established, PPORT);
    assert_eq!((conn.fd, conn.recv_q, conn.send_q, conn.local), (Some(fd.0), 5, 0, SocketAddrV4::new(OUR_IP, LPORT)));
    assert_eq!(conn.tcp_info.unwrap().bytes_received, 5);
    assert_eq!(conn.skmem.rmem_alloc, 5);
    let child = find(TcpState::Established, PPORT + 1);
    assert_eq!(child.fd, None, "not accepted yet: no descriptor");
    let req = find(TcpState::SynRecv, PPORT + 2);
    assert_eq!((req.fd, req.local), (None, SocketAddrV4::new(OUR_IP, LPORT)));
    let dgram = all.iter().find(|d| d.netid == Netid::Udp).unwrap();
    assert_eq!((dgram.state, dgram.fd, dgram.local.port(), dgram.skmem.frames), (TcpState::Close, Some(u.0), 53, 1));
    assert!(dgram.recv_q > 0 && dgram.recv_q == dgram.skmem.rmem_alloc, "{dgram:?}");
    let unconn = all.iter().find(|d| d.fd == Some(idle.0)).unwrap();
    assert_eq!((unconn.netid, unconn.state), (Netid::Tcp, TcpState::Close));
    assert_eq!(all.len(), 6, "{all:#?}");
    // `ss -s`'s count (and the published one) has the request sock as SYN-RECV too.
    assert!(b.s.tcp_states().contains(&(TcpState::SynRecv, 1)), "{:?}", b.s.tcp_states());

    // Our close, the peer's FIN: TIME-WAIT, listed without a descriptor.
    b.s.recv(fd, &mut [0; 16]).unwrap();
    b.s.close(fd).unwrap();
    let fin = b.one();
    b.send(hdr(PPORT, LPORT, PISN + 6, fin.r.seq.wrapping_add(1), FIN | ACK, PEER_WIN), &[]);
    b.one();
    let tw = b.s.sockets().into_iter().find(|d| d.remote.map(|r| r.port()) == Some(PPORT)).unwrap();
    assert_eq!((tw.state, tw.fd), (TcpState::TimeWait, None));
}

#[test]
fn a_stream_send_is_timed_to_the_tx_ring_and_on_to_the_completion_ring() {
    // One send in 1: every send is sampled; the segment carrying its first
    // byte is the one followed.
    let mut b = Bench::with_config(|c| c.rx_latency_sample = 1);
    let (l, fd, iss) = b.accepted();
    let st = b.s.stage_latency();
    assert!(st.send_to_tx.is_empty() && st.tx_to_completion.is_empty(), "the handshake is no send: {st:?}");
    let before_send = Instant::now();
    assert_eq!(b.s.send(fd, &pattern(4000)), Ok(4000));
    b.poll();
    let after_first_poll = Instant::now();
    let on_ring = before_send.elapsed().as_nanos() as u64;
    let st = b.s.stage_latency();
    assert_eq!(st.send_to_tx.count(), 1, "one send, one sample: {st:?}");
    assert!(
        st.send_to_tx.max() <= on_ring,
        "{} ns within the {on_ring} ns the send and poll took",
        st.send_to_tx.max()
    );
    assert!(st.tx_to_completion.is_empty(), "nothing came back yet");
    let out = b.out();
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].r.seq.wrapping_sub(iss), 1);
    // `out` took the frames (they went to the completion ring) and polled
    // once more only if an ARP had to be answered: the next poll reaps them.
    let before_reap = Instant::now();
    b.poll();
    let st = b.s.stage_latency();
    assert_eq!(st.tx_to_completion.count(), 1, "{st:?}");
    // On the ring during the first poll, back during the last one.
    let lower = (before_reap - after_first_poll).as_nanos() as u64;
    let upper = before_send.elapsed().as_nanos() as u64;
    let v = st.tx_to_completion.max();
    assert!((lower..=upper).contains(&v), "{v} ns outside {lower}..={upper}");
    assert_eq!(st.send_to_tx.count(), 1, "three segments, one sample");
    // A second send is the second sample, once it leaves.
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(4001), ACK, PEER_WIN), &[]);
    assert_eq!(b.s.send(fd, b"tail"), Ok(4));
    assert_eq!(b.one().data, b"tail");
    assert_eq!(b.s.stage_latency().send_to_tx.count(), 2);
    b.s.close(fd).unwrap();
    b.s.close(l).unwrap();
    b.out();
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(4006), RST, 0), &[]);
    b.end();
}

/// What went out since the last call, raw: (TCP segments, ARP requests).
fn segments_and_arp(b: &mut Bench) -> (usize, Vec<ArpRepr>) {
    b.poll();
    let (mut tcp, mut arp) = (0, Vec::new());
    for f in b.w.take_transmitted() {
        let e = EthernetRepr::parse(&EthernetFrame::new_unchecked(&f[..])).unwrap();
        if e.ethertype == ethertype::ARP {
            arp.push(ArpRepr::parse(&ArpPacket::new_unchecked(&f[ETH_LEN..])).unwrap());
        } else {
            tcp += 1;
        }
    }
    (tcp, arp)
}

fn peer_state(b: &Bench) -> String {
    b.s.neighbours().into_iter().find(|n| n.ip == PEER_IP).expect("the peer's entry").state
}

/// TCP confirms its neighbour as Linux does: an ACK of new data sets
/// `sk_dst_pending_confirm` (tcp_ack → sk_dst_confirm) and the next segment
/// sent confirms the entry (sock_confirm_neigh), so a connection whose data
/// is acknowledged keeps the peer REACHABLE and sends no ARP probe, for as
/// long as it lasts.
#[test]
fn acknowledged_data_keeps_the_neighbour_reachable_without_arp_probes() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    // The peer's entry is STALE (learnt from its ARP request); the SYN-ACK
    // made it DELAY. The handshake's ACK confirms nothing (the child's
    // tcp_ack finds nothing in flight), so the data must be acknowledged
    // and the next segment sent within the 5 s of DELAY.
    let mut sent = 0u32;
    for i in 0..60u64 {
        b.at(secs(2 * i + 1));
        b.s.send(fd, &[7; 100]).unwrap();
        sent += 100;
        let (tcp, arp) = segments_and_arp(&mut b);
        assert_eq!((tcp, arp.len()), (1, 0), "at {:?}: the data, no ARP: {arp:?}", b.elapsed());
        b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(1 + sent), ACK, PEER_WIN), &[]);
        assert_eq!(segments_and_arp(&mut b), (0, vec![]));
    }
    assert_eq!(peer_state(&b), "REACHABLE", "after {:?}", b.elapsed());
    abort_close_and_end(&mut b, fd, l);
}

/// A connection that only receives makes no forward progress: its ACKs
/// confirm nothing, and the entry goes STALE, DELAY, then PROBE with a
/// unicast ARP request, as Linux's does.
#[test]
fn a_receive_only_connection_does_not_confirm_the_neighbour() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    let mut off = 0u32;
    let mut probe = None;
    for i in 1..=36u64 {
        b.at(secs(5 * i) - ms(4000));
        peer_data(&mut b, iss, off, &[5; 100]);
        off += 100;
        let (_, arp) = segments_and_arp(&mut b);
        if let Some(a) = arp.first() {
            probe = Some((b.elapsed(), *a));
            break;
        }
    }
    let (at, a) = probe.expect("an ARP probe within 180 s");
    assert_eq!((a.operation, a.target_ip), (ArpOperation::Request, PEER_IP), "at {at:?}");
    assert_eq!(peer_state(&b), "PROBE");
    assert_eq!(read_all(&mut b, fd).len(), off as usize);
    // The peer answers the probe: REACHABLE again.
    let repr = ArpRepr {
        operation: ArpOperation::Reply,
        sender_hw: PEER_MAC,
        sender_ip: PEER_IP,
        target_hw: OUR_MAC,
        target_ip: OUR_IP,
    };
    b.w.inject(&build::arp_frame(&EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::ARP }, &repr));
    b.poll();
    assert_eq!(peer_state(&b), "REACHABLE");
    abort_close_and_end(&mut b, fd, l);
}

/// A keepalive probe: an ACK at `snd_una - 1` (our ISN on a connection
/// that sent nothing), of `rcv_nxt`, no data.
fn assert_keepalive_probe(p: &Seg, iss: u32, at: Duration) {
    assert_eq!((p.flags(), p.r.seq, p.r.ack, p.data.len()), (ACK, iss, PISN + 1, 0), "keepalive probe at {at:?}");
}

/// `tcp_keepalive_timer` on virtual time: after TCP_KEEPIDLE of silence a
/// probe (an ACK at snd_una - 1) every TCP_KEEPINTVL, and after TCP_KEEPCNT
/// unanswered probes a reset and ETIMEDOUT, as Linux does.
#[test]
fn keepalive_probes_an_idle_connection_then_resets_it_after_keepcnt() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    // TCP_KEEPIDLE first: with SO_KEEPALIVE off it only stores the value.
    b.s.setsockopt(fd, SockOpt::KeepIdle(10)).unwrap();
    b.s.setsockopt(fd, SockOpt::KeepIntvl(5)).unwrap();
    b.s.setsockopt(fd, SockOpt::KeepCnt(3)).unwrap();
    b.s.setsockopt(fd, SockOpt::KeepAlive(true)).unwrap();
    b.at(ms(9_999));
    b.none();
    for (n, t) in [10u64, 15, 20].into_iter().enumerate() {
        b.at(secs(t) - ms(1));
        b.none();
        b.at(secs(t));
        assert_keepalive_probe(&b.one(), iss, b.elapsed());
        assert_eq!(b.s.snmp().TcpExtTCPKeepAlive, n as u64 + 1);
    }
    assert_eq!(b.state(fd), TcpState::Established);
    // The third probe unanswered for TCP_KEEPINTVL: a reset, ETIMEDOUT.
    b.at(secs(25));
    let rst = b.one();
    assert_eq!((rst.flags(), rst.r.seq), (RST | ACK, iss.wrapping_add(1)));
    assert_eq!(b.s.socket_error(fd), Ok(Some(Errno::ETIMEDOUT)));
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPKeepAlive, m.TcpExtTCPAbortOnTimeout, m.TcpOutRsts), (3, 1, 1));
    b.s.close(fd).unwrap();
    b.s.close(l).unwrap();
    b.end();
}

/// Any ACK answers a probe, and data or ACKs from the peer count as heard:
/// the next probe comes TCP_KEEPIDLE after the peer was last heard from.
#[test]
fn an_answered_probe_or_incoming_data_keeps_the_connection_alive() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    b.s.setsockopt(fd, SockOpt::KeepAlive(true)).unwrap();
    b.s.setsockopt(fd, SockOpt::KeepIdle(10)).unwrap();
    b.s.setsockopt(fd, SockOpt::KeepIntvl(5)).unwrap();
    b.s.setsockopt(fd, SockOpt::KeepCnt(2)).unwrap();
    b.at(secs(10));
    assert_keepalive_probe(&b.one(), iss, b.elapsed());
    // The peer answers with an ACK of snd_una.
    b.at(secs(11));
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(1), ACK, PEER_WIN), &[]);
    b.none();
    b.at(secs(21) - ms(1));
    b.none();
    b.at(secs(21));
    assert_keepalive_probe(&b.one(), iss, b.elapsed());
    // Data from the peer at 23 s: heard; the ACK owed goes out, no probe
    // until 33 s, and the probes counted so far are forgiven.
    b.at(secs(23));
    peer_data(&mut b, iss, 0, b"ping");
    let a = b.one();
    assert_eq!((a.flags(), a.r.ack), (ACK, PISN + 1 + 4));
    b.at(secs(33) - ms(1));
    b.none();
    b.at(secs(33));
    let p = b.one();
    assert_eq!((p.flags(), p.r.seq, p.r.ack), (ACK, iss, PISN + 1 + 4));
    b.at(secs(38));
    assert_eq!(b.one().r.seq, iss, "the second probe");
    assert_eq!(b.state(fd), TcpState::Established);
    b.at(secs(43));
    assert_eq!(b.one().flags(), RST | ACK, "TCP_KEEPCNT 2 unanswered");
    assert_eq!(b.s.snmp().TcpExtTCPKeepAlive, 4);
    b.s.close(fd).unwrap();
    b.s.close(l).unwrap();
    b.end();
}

/// A listener's SO_KEEPALIVE and TCP_KEEP* go to its children, whose timer
/// starts at the handshake; off, it stops.
#[test]
fn a_child_inherits_the_listeners_keepalive_and_off_stops_it() {
    let mut b = Bench::new();
    let l = b.listener(16);
    b.s.setsockopt(l, SockOpt::KeepAlive(true)).unwrap();
    b.s.setsockopt(l, SockOpt::KeepIdle(30)).unwrap();
    b.at(secs(1));
    let iss = b.handshake_in(PPORT);
    let (fd, _) = b.s.accept(l).unwrap();
    b.at(secs(31) - ms(1));
    b.none();
    b.at(secs(31));
    assert_keepalive_probe(&b.one(), iss, b.elapsed());
    b.s.setsockopt(fd, SockOpt::KeepAlive(false)).unwrap();
    b.at(secs(3600));
    b.none();
    assert_eq!(b.state(fd), TcpState::Established);
    // On again: TCP_KEEPIDLE from now.
    b.s.setsockopt(fd, SockOpt::KeepAlive(true)).unwrap();
    b.at(secs(3630));
    assert_keepalive_probe(&b.one(), iss, b.elapsed());
    abort_close_and_end(&mut b, fd, l);
}

/// The default keepalive is Linux's: 7200 s idle, 75 s apart, 9 probes.
#[test]
fn keepalive_defaults_are_linuxs() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    b.s.setsockopt(fd, SockOpt::KeepAlive(true)).unwrap();
    b.at(secs(7200) - ms(1));
    b.none();
    for k in 0..9u64 {
        b.at(secs(7200 + 75 * k));
        assert_keepalive_probe(&b.one(), iss, b.elapsed());
    }
    b.at(secs(7200 + 75 * 9) - ms(1));
    b.none();
    b.at(secs(7200 + 75 * 9));
    assert_eq!(b.one().flags(), RST | ACK);
    assert_eq!(b.s.socket_error(fd), Ok(Some(Errno::ETIMEDOUT)));
    b.s.close(fd).unwrap();
    b.s.close(l).unwrap();
    b.end();
}

/// TCP_USER_TIMEOUT: unacknowledged data fails the connection that long
/// after its first retransmission, on time (the RTO is cut to what is
/// left), with ETIMEDOUT and no reset; and it replaces TCP_KEEPCNT.
#[test]
fn tcp_user_timeout_bounds_retransmission_and_keepalive() {
    let mut b = Bench::new();
    let (fd, _port, _iss) = connected_after(&mut b, ms(100));
    b.s.setsockopt(fd, SockOpt::UserTimeout(5_000)).unwrap();
    assert_eq!(b.s.send(fd, b"lost"), Ok(4));
    let first = b.one();
    // RTO 300 ms, doubling: retransmissions at 400, 1000, 2200, 4600 ms;
    // the first at 400 ms starts the 5 s, so the next timer is cut to 5400.
    for t in [400u64, 1000, 2200, 4600] {
        b.at(ms(t));
        assert_eq!(b.one().r.seq, first.r.seq, "retransmission at {t} ms");
    }
    b.at(ms(5_399));
    b.none();
    assert_eq!(b.state(fd), TcpState::Established);
    b.at(ms(5_400));
    b.none();
    assert_eq!(b.s.socket_error(fd), Ok(Some(Errno::ETIMEDOUT)));
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPAbortOnTimeout, m.TcpOutRsts), (1, 0));
    b.s.close(fd).unwrap();
    b.end();

    // With keepalive: the probes go on until the user timeout has passed
    // since the peer was last heard, whatever TCP_KEEPCNT says.
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    b.s.setsockopt(fd, SockOpt::KeepAlive(true)).unwrap();
    b.s.setsockopt(fd, SockOpt::KeepIdle(10)).unwrap();
    b.s.setsockopt(fd, SockOpt::KeepIntvl(5)).unwrap();
    b.s.setsockopt(fd, SockOpt::KeepCnt(1)).unwrap();
    b.s.setsockopt(fd, SockOpt::UserTimeout(22_000)).unwrap();
    for t in [10u64, 15, 20] {
        b.at(secs(t));
        assert_keepalive_probe(&b.one(), iss, b.elapsed());
    }
    // At 25 s, 25 s of silence ≥ 22 s with a probe out: the reset.
    b.at(secs(25));
    assert_eq!(b.one().flags(), RST | ACK);
    assert_eq!(b.s.socket_error(fd), Ok(Some(Errno::ETIMEDOUT)));
    b.s.close(fd).unwrap();
    b.s.close(l).unwrap();
    b.end();
}

/// do_tcp_setsockopt's ranges, and the options on a datagram socket.
#[test]
fn keepalive_options_are_checked_as_linux_checks_them() {
    let mut b = Bench::new();
    let fd = b.s.socket(SockType::Stream).unwrap();
    for bad in [SockOpt::KeepIdle(0), SockOpt::KeepIdle(32768), SockOpt::KeepIntvl(0), SockOpt::KeepIntvl(32768)] {
        assert_eq!(b.s.setsockopt(fd, bad), Err(Errno::EINVAL), "{bad:?}");
    }
    for bad in [SockOpt::KeepCnt(0), SockOpt::KeepCnt(128), SockOpt::UserTimeout(1 << 31)] {
        assert_eq!(b.s.setsockopt(fd, bad), Err(Errno::EINVAL), "{bad:?}");
    }
    for ok in [SockOpt::KeepIdle(32767), SockOpt::KeepIntvl(1), SockOpt::KeepCnt(127), SockOpt::UserTimeout(0)] {
        assert_eq!(b.s.setsockopt(fd, ok), Ok(()), "{ok:?}");
    }
    let udp = b.s.socket(SockType::Dgram).unwrap();
    assert_eq!(b.s.setsockopt(udp, SockOpt::KeepAlive(true)), Ok(()), "SO_KEEPALIVE: any socket");
    assert_eq!(b.s.setsockopt(udp, SockOpt::KeepIdle(10)), Err(Errno(libc::ENOPROTOOPT)));
    b.s.close(fd).unwrap();
    b.s.close(udp).unwrap();
    b.end();
}

/// The SYN-ACK of each SYN from `ports`, held on the listener's SYN queue
/// (nobody sends the final ACK).
fn syns_held(b: &mut Bench, ports: std::ops::Range<u16>) -> Vec<Seg> {
    ports
        .map(|p| {
            let syn = syn_hdr(p, LPORT, PISN, 0, SYN);
            b.send(syn, &[]);
            b.one()
        })
        .collect()
}

/// `tcp_syncookies=1`, Linux's default: with the SYN queue full
/// (`qlen > backlog`), a SYN gets a SYN-ACK whose ISN is a cookie, with the
/// MSS option only (no room for window scale and SACK without timestamps),
/// and no request sock; the peer's ACK with the cookie makes the connection.
#[test]
fn a_full_syn_queue_answers_with_a_syn_cookie_and_its_ack_connects() {
    let mut b = Bench::new();
    let l = b.listener(1);
    let held = syns_held(&mut b, PPORT..PPORT + 2);
    assert!(held.iter().all(|s| s.r.options.window_scale.is_some()), "ordinary SYN-ACKs");
    let syn = syn_hdr(PPORT + 2, LPORT, PISN, 0, SYN);
    b.send(syn, &[]);
    let sa = b.one();
    assert_eq!((sa.flags(), sa.r.ack), (SYN | ACK, PISN + 1));
    assert_eq!(sa.r.options, TcpOptions { mss: Some(1460), ..TcpOptions::default() }, "MSS only");
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPReqQFullDoCookies, m.TcpExtSyncookiesSent, m.TcpExtTCPReqQFullDrop), (1, 1, 0));
    // No request sock: the SYN-ACK is not retransmitted.
    b.at(secs(1));
    assert_eq!(b.out().len(), 2, "the two held requests' SYN-ACKs again, not the cookie's");
    // The ACK, with data: the connection, its data, accept().
    b.send(hdr(PPORT + 2, LPORT, PISN + 1, sa.r.seq.wrapping_add(1), ACK | PSH, 229), b"hello");
    let ack = b.one();
    assert_eq!((ack.flags(), ack.r.ack), (ACK, PISN + 1 + 5));
    let m = b.s.snmp();
    assert_eq!((m.TcpExtSyncookiesRecv, m.TcpExtSyncookiesFailed, m.TcpPassiveOpens), (1, 0, 1));
    let (fd, peer) = b.s.accept(l).unwrap();
    assert_eq!(peer, SocketAddrV4::new(PEER_IP, PPORT + 2));
    assert_eq!(read_all(&mut b, fd), b"hello");
    // The MSS from the cookie; no window scale: the peer's window unscaled.
    let info = b.s.tcp_info(fd).unwrap();
    assert_eq!((info.snd_mss, info.snd_wnd), (1460, 229), "the window unscaled");
    assert_eq!(b.s.send(fd, &[1; 3000]), Ok(3000));
    let out = b.out();
    assert_eq!(out.iter().map(|s| s.data.len()).collect::<Vec<_>>(), vec![229], "the peer's window, 229 bytes");
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.s.close(l).unwrap();
    b.out();
    b.end();
}

/// An ACK to a listener that sent cookies lately is checked: a bad cookie
/// counts SyncookiesFailed and gets the reset any stray ACK gets; once no
/// cookie has gone for TCP_SYNCOOKIE_VALID (2 min), ACKs are not checked.
#[test]
fn a_stray_ack_with_a_bad_cookie_gets_a_reset() {
    let mut b = Bench::new();
    let l = b.listener(1);
    // Before any cookie: a stray ACK is reset, not checked.
    b.send(hdr(PPORT + 9, LPORT, PISN + 1, 12345, ACK, PEER_WIN), &[]);
    assert_eq!(b.one().flags(), RST);
    assert_eq!(b.s.snmp().TcpExtSyncookiesFailed, 0);
    syns_held(&mut b, PPORT..PPORT + 3);
    assert_eq!(b.s.snmp().TcpExtSyncookiesSent, 1);
    b.send(hdr(PPORT + 9, LPORT, PISN + 1, 12345, ACK, PEER_WIN), &[]);
    let rst = b.one();
    assert_eq!((rst.flags(), rst.r.seq), (RST, 12345));
    assert_eq!((b.s.snmp().TcpExtSyncookiesFailed, b.s.snmp().TcpExtSyncookiesRecv), (1, 0));
    // A cookie older than two minutes fails too.
    let syn = syn_hdr(PPORT + 5, LPORT, PISN, 0, SYN);
    b.at(secs(10));
    b.send(syn, &[]);
    let sa = b.out().into_iter().find(|s| s.r.dst_port == PPORT + 5).expect("the cookie SYN-ACK");
    b.at(secs(10 + 181));
    b.send(hdr(PPORT + 5, LPORT, PISN + 1, sa.r.seq.wrapping_add(1), ACK, PEER_WIN), &[]);
    assert!(b.out().iter().any(|s| s.flags() == RST && s.r.dst_port == PPORT + 5), "an expired cookie is reset");
    b.s.close(l).unwrap();
    b.out();
    b.end();
}

/// `tcp_syncookies=0`: a full SYN queue drops the SYN (TCPReqQFullDrop,
/// ListenDrops), as before cookies.
#[test]
fn without_syncookies_a_full_syn_queue_drops_the_syn() {
    let mut b = Bench::with_config(|c| c.tcp_syncookies = xsknet::ipv4::tcp::syncookies::TcpSyncookies::Off);
    let l = b.listener(1);
    syns_held(&mut b, PPORT..PPORT + 2);
    let syn = syn_hdr(PPORT + 2, LPORT, PISN, 0, SYN);
    b.send(syn, &[]);
    b.none();
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPReqQFullDrop, m.TcpExtListenDrops, m.TcpExtSyncookiesSent), (1, 1, 0));
    b.s.close(l).unwrap();
    b.out();
    b.end();
}

/// A SYN flood from many ports: the SYN queue stays at its bound, every SYN
/// past it is answered with a cookie and keeps nothing, and a legitimate
/// client that answers its cookie connects.
#[test]
fn a_syn_flood_keeps_the_syn_queue_bounded_and_a_client_still_connects() {
    let mut b = Bench::new();
    let l = b.listener(16);
    for p in 0..5000u16 {
        let syn = syn_hdr(1024 + p, LPORT, PISN.wrapping_add(u32::from(p)), 0, SYN);
        b.send(syn, &[]);
        b.w.take_transmitted();
    }
    let m = b.s.snmp();
    assert_eq!(m.TcpExtSyncookiesSent, 5000 - 17, "17 request socks (qlen > 16 is full), then cookies");
    assert_eq!(states(&b), vec![(TcpState::SynRecv, 17), (TcpState::Listen, 1)]);
    let syn = syn_hdr(PPORT, LPORT, PISN, 0, SYN);
    b.send(syn, &[]);
    let sa = b.one();
    b.send(hdr(PPORT, LPORT, PISN + 1, sa.r.seq.wrapping_add(1), ACK, PEER_WIN), &[]);
    let (fd, _) = b.s.accept(l).expect("the legitimate client");
    let c = b.s.frame_census();
    assert_eq!(c.accounted(), c.total);
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.s.close(l).unwrap();
    b.out();
    b.end();
}

/// `tcp_max_tw_buckets`: past it, a connection that would enter TIME-WAIT
/// is closed outright (TcpExtTCPTimeWaitOverflow) and its 4-tuple is free
/// at once; memory stays bounded however many connections close.
#[test]
fn tcp_max_tw_buckets_bounds_time_wait() {
    let mut b = Bench::with_config(|c| c.tcp_max_tw_buckets = 2);
    let l = b.listener(16);
    for i in 0..3u16 {
        let iss = b.handshake_in(PPORT + i);
        let (fd, _) = b.s.accept(l).unwrap();
        b.s.close(fd).unwrap();
        assert_eq!(b.one().flags(), FIN | ACK);
        b.send(hdr(PPORT + i, LPORT, PISN + 1, iss.wrapping_add(2), FIN | ACK, PEER_WIN), &[]);
        assert_eq!(b.one().flags(), ACK);
    }
    assert_eq!(states(&b), vec![(TcpState::TimeWait, 2), (TcpState::Listen, 1)]);
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPTimeWaitOverflow, m.TcpEstabResets), (1, 0));
    // The third 4-tuple is free: the same SYN is a new connection at once,
    // while the first's gets the TIME-WAIT ACK.
    let syn = syn_hdr(PPORT + 2, LPORT, PISN, 0, SYN);
    b.send(syn, &[]);
    assert_eq!(b.one().flags(), SYN | ACK);
    b.s.close(l).unwrap();
    b.out();
    b.end();
}

/// An ACK of `ack` from the peer on `PPORT` to our `port` with SACK `blocks`.
fn sack_ack(port: u16, ack: u32, blocks: &[(u32, u32)]) -> TcpRepr {
    let mut r = hdr(PPORT, port, PISN + 1, ack, ACK, PEER_WIN);
    r.options.sack_len = blocks.len() as u8;
    for (b, &(left, right)) in r.options.sack_blocks.iter_mut().zip(blocks) {
        *b = SackBlock { left, right };
    }
    r
}

/// The window after fast retransmit of 10 segments in flight: CUBIC (the
/// default, as Linux's) keeps β = 717/1024 of it, Reno half, and
/// `TCP_CONGESTION` picks per socket; ssthresh and cwnd when recovery ends.
fn ssthresh_after_fast_retransmit(algo: Option<CongAlgo>) -> (u32, u32) {
    let mut b = Bench::new();
    let (fd, port, iss) = connected_after(&mut b, ms(100));
    if let Some(a) = algo {
        b.s.setsockopt(fd, SockOpt::Congestion(a)).unwrap();
    }
    let data = pattern(10 * MSS);
    assert_eq!(b.s.send(fd, &data), Ok(data.len()));
    assert_eq!(b.out().len(), 10, "the initial window");
    let seg = |i: u32| iss.wrapping_add(1 + i * MSS as u32);
    b.at(ms(150));
    // Segment 1 lost: the peer SACKs 2, 3, 4 (with SACK, Linux enters
    // recovery on SACKed segments, not on duplicate ACKs alone).
    b.send(hdr(PPORT, port, PISN + 1, seg(1), ACK, PEER_WIN), &[]);
    for i in 2..5 {
        b.send(sack_ack(port, seg(1), &[(seg(2), seg(i + 1))]), &[]);
    }
    assert_eq!(b.out().len(), 1, "the fast retransmission");
    b.send(hdr(PPORT, port, PISN + 1, seg(10), ACK, PEER_WIN), &[]);
    let info = b.s.tcp_info(fd).unwrap();
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.out();
    b.end();
    (info.snd_ssthresh, info.snd_cwnd)
}

#[test]
fn cubic_is_the_default_and_tcp_congestion_selects_reno() {
    assert_eq!(ssthresh_after_fast_retransmit(None), (7, 7), "CUBIC: 10 × 717 / 1024");
    assert_eq!(ssthresh_after_fast_retransmit(Some(CongAlgo::Cubic)), (7, 7));
    assert_eq!(ssthresh_after_fast_retransmit(Some(CongAlgo::Reno)), (5, 5), "Reno: half");
    assert_eq!(CongAlgo::from_name("bbr"), Err(Errno(libc::ENOENT)), "not one of ours");
    assert_eq!(CongAlgo::from_name("reno").map(CongAlgo::name), Ok("reno"));
}

/// HyStart through the stack: each ACK of new data gives the congestion
/// control an RTT sample (the newest segment it covers, as Linux's
/// `tcp_clean_rtx_queue`), so in slow start with ACKs 1 ms apart and RTT
/// 20 ms and more, HyStart leaves slow start once the window passes 16: here
/// the second round's samples are 9 ms above the first's minimum (the test's
/// clock), so its delay test fires first, after 8 samples of the round, as
/// Linux's would; ssthresh = cwnd then.
#[test]
fn hystart_ends_slow_start_through_the_stack() {
    let mut b = Bench::new();
    let (fd, port, _iss) = connected_after(&mut b, ms(20));
    b.s.setsockopt(fd, SockOpt::SndBuf(4 << 20)).unwrap();
    let data = pattern(4_000_000);
    let mut sent = 0usize;
    let mut t = b.elapsed();
    let mut log = Vec::new();
    for _round in 0..7 {
        while sent < data.len() {
            match b.s.send(fd, &data[sent..]) {
                Ok(n) if n > 0 => sent += n,
                _ => break,
            }
        }
        let segs = b.out();
        let info = b.s.tcp_info(fd).unwrap();
        log.push((segs.len(), info.snd_cwnd, info.snd_ssthresh));
        t += ms(20);
        for (i, s) in segs.iter().enumerate() {
            let end = s.r.seq.wrapping_add(s.data.len() as u32);
            b.at(t + Duration::from_micros(1000 * i as u64));
            b.send(hdr(PPORT, port, PISN + 1, end, ACK, 1000), &[]);
        }
        t = b.elapsed();
    }
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPHystartDelayDetect, m.TcpExtTCPHystartTrainDetect), (1, 0), "{log:?}");
    let info = b.s.tcp_info(fd).unwrap();
    assert_eq!(u64::from(info.snd_ssthresh), m.TcpExtTCPHystartDelayCwnd, "{log:?}");
    assert!((16..40).contains(&info.snd_ssthresh), "left slow start past 16: {log:?}");
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.out();
    b.end();
}

/// Round trips of a bulk writer on `fd`, one per entry of `rtts`: each writes all it can,
/// then the peer (window 4 MiB) acknowledges every segment that round's RTT later. Checks
/// that the peer sees the bytes written, in order, each once; returns per round the segments
/// sent, `snd_cwnd` and `sk_sndbuf` (`ss -m`'s `tb`).
fn bulk_rounds(b: &mut Bench, fd: Fd, port: u16, iss: u32, rtts: &[u64]) -> Vec<(usize, u32, u64)> {
    let data = pattern(16_000_000);
    let (mut sent, mut seen) = (0usize, 0usize);
    let mut log = Vec::new();
    for &rtt in rtts {
        while sent < data.len() {
            match b.s.send(fd, &data[sent..]) {
                Ok(n) if n > 0 => sent += n,
                _ => break,
            }
        }
        let segs = b.out();
        for sgm in &segs {
            assert_eq!(sgm.r.seq.wrapping_sub(iss.wrapping_add(1)) as usize, seen, "in order, once: {log:?}");
            assert_eq!(sgm.data, data[seen..seen + sgm.data.len()], "the bytes written: {log:?}");
            seen += sgm.data.len();
        }
        let info = b.s.tcp_info(fd).unwrap();
        let conn = b.s.sockets().into_iter().find(|d| d.fd == Some(fd.0)).unwrap();
        log.push((segs.len(), info.snd_cwnd, conn.skmem.sndbuf));
        let t = b.elapsed() + ms(rtt);
        for (i, sgm) in segs.iter().enumerate() {
            b.at(t + Duration::from_micros(10 * i as u64));
            b.send(hdr(PPORT, port, PISN + 1, sgm.r.seq.wrapping_add(sgm.data.len() as u32), ACK, 4096), &[]);
        }
    }
    log
}

/// Send-buffer autotuning (`tcp_new_space` → `tcp_sndbuf_expand`): a writer that found
/// the buffer full, with fewer than cwnd segments in flight after an ACK's push (the buffer,
/// not the window, holding the sender back), gets two windows of segments
/// (`2 × cwnd × per_mss`, 2304 bytes a 1460-byte segment on 6.18, as `ss -m` shows Linux's
/// `tb`), the ring at least doubled each time, the bytes in flight kept in order across
/// each growth. With `SO_SNDBUF` set, the buffer stays.
#[test]
fn the_send_buffer_grows_with_the_congestion_window() {
    let mut b = Bench::new();
    let (fd, port, iss) = connected_after(&mut b, ms(20));
    let log = bulk_rounds(&mut b, fd, port, iss, &[20; 6]);
    assert_eq!(log[0].2, 262_144, "the first buffer: {log:?}");
    // 2 × cwnd × 2304 passes 256 KiB at cwnd 57, but while the ring (181 segments) holds
    // data the window has not sent, every ACK's push fills cwnd and
    // tcp_should_expand_sndbuf says no, as Linux's does after tcp_push_pending_frames. In
    // the round that starts with cwnd 80, the unsent data runs out near cwnd 130: the first
    // growth is to two such windows, not the doubling (524288) of the round's first ACK.
    assert_eq!((log[3].1, log[3].2), (80, 262_144), "{log:?}");
    assert!(log[4].2 > 524_288, "grown when the buffer, not cwnd, held the sender: {log:?}");
    // Grown once the window outgrew what the ring holds, at least doubling each time.
    let sizes: Vec<u64> = log.iter().map(|l| l.2).collect();
    assert!(sizes.windows(2).all(|w| w[1] == w[0] || w[1] >= 2 * w[0]), "{log:?}");
    let last = log.last().unwrap();
    assert!(last.2 >= 1 << 20, "grown past 1 MiB: {log:?}");
    assert!(last.2 <= (4 << 20) as u64, "at most tcp_wmem[2]: {log:?}");
    // The ACKs of the last round may have grown it once more.
    let now = b.s.sockets().into_iter().find(|d| d.fd == Some(fd.0)).unwrap().skmem.sndbuf;
    assert!(now == last.2 || now >= 2 * last.2, "{log:?}, now {now}");
    let mut seen = sizes.clone();
    seen.push(now);
    seen.dedup();
    assert_eq!(b.s.snmp().XskTcpSndbufGrown, seen.len() as u64 - 1, "{log:?}, now {now}");
    assert_eq!(b.s.snmp().XskTcpSndbufGrowRefused, 0);
    assert!(last.0 > 2 * log[2].0, "more segments a round trip once grown: {log:?}");
    abort_and_end(&mut b, fd);

    // SO_SNDBUF locks the buffer (SOCK_SNDBUF_LOCK): never expanded.
    let mut b = Bench::new();
    let (fd, port, iss) = connected_after(&mut b, ms(20));
    b.s.setsockopt(fd, SockOpt::SndBuf(131_072)).unwrap();
    let locked = bulk_rounds(&mut b, fd, port, iss, &[20; 6]);
    assert!(locked.iter().all(|l| l.2 == locked[0].2), "{locked:?}");
    assert_eq!(b.s.snmp().XskTcpSndbufGrown, 0);
    abort_and_end(&mut b, fd);
}

/// Where xsknet counts less than Linux: of cwnd, only what the path holds beyond the
/// sender's own queue (`cwnd × min_rtt / srtt`). A round trip that goes from 1 ms to 20 ms
/// as the writer sends more (its own queue, as on a veth pair), with Reno (no HyStart) in
/// slow start past cwnd 179: the ring (179 segments) runs out of unsent data before cwnd is
/// full in the last round trip, where Linux's count (2 × cwnd × 2304 bytes) grows it; the
/// path's part of cwnd (cwnd × 1 ms / srtt, srtt 9 ms by then) does not.
#[test]
fn a_round_trip_that_is_the_sender_s_own_queue_does_not_grow_the_send_buffer() {
    let mut b = Bench::new();
    let (fd, port, iss) = connected_after(&mut b, ms(1));
    b.s.setsockopt(fd, SockOpt::Congestion(CongAlgo::Reno)).unwrap();
    let log = bulk_rounds(&mut b, fd, port, iss, &[1, 20, 20, 20, 20, 20]);
    assert!(log.last().unwrap().1 > 179, "cwnd past what the ring holds: {log:?}");
    assert!(log.iter().all(|l| l.2 == 262_144), "{log:?}");
    assert_eq!(b.s.snmp().XskTcpSndbufGrown, 0);
    abort_and_end(&mut b, fd);
}

/// With TCP_USER_TIMEOUT set, Linux's tcp_write_timeout gives up on it
/// instead of tcp_retries2 (retransmits_timed_out(sk, retry_until,
/// user_timeout) ignores the count when the timeout is set): a 30-minute
/// user timeout keeps the connection retransmitting past tcp_retries2's
/// 924.6 s, and it fails at the user timeout.
#[test]
fn a_user_timeout_longer_than_tcp_retries2_replaces_it() {
    let mut b = Bench::new();
    let (fd, _port, _iss) = connected_after(&mut b, ms(100));
    b.s.setsockopt(fd, SockOpt::UserTimeout(1_800_000)).unwrap();
    assert_eq!(b.s.send(fd, b"lost"), Ok(4));
    let _first = b.one();
    let mut t = 100u64;
    while t < 1_200_000 {
        t += 1_000;
        b.at(ms(t));
        let _ = b.out();
    }
    assert_eq!(b.s.socket_error(fd), Ok(None), "gave up before the user timeout (at most 1200 s in)");
    assert_eq!(b.state(fd), TcpState::Established);
    while b.s.socket_error(fd) == Ok(None) {
        t += 1_000;
        b.at(ms(t));
        let _ = b.out();
    }
    // The first retransmission at 400 ms, then 1800 s.
    assert_eq!(t, 1_801_100, "fails on the first poll (1 s apart from 100 ms) at or after 400 ms + 1800 s");
    b.s.close(fd).unwrap();
    b.end();
}

// ---------------------------------------------------------------- RFC 7323 timestamps

/// The peer's first TSval in the timestamp tests.
const PEER_TS: u32 = 0x7000_0000;

/// Linux's SYN options with timestamps (TSval `tsval`, TSecr `tsecr`).
fn ts_syn_options(tsval: u32, tsecr: u32) -> TcpOptions {
    TcpOptions { timestamp: Some((tsval, tsecr)), ..linux_syn_options() }
}

/// A header from the peer on `PPORT` → `LPORT` with timestamps.
fn ts_hdr(seq: u32, ack: u32, fl: u8, tsval: u32, tsecr: u32) -> TcpRepr {
    let mut r = hdr(PPORT, LPORT, seq, ack, fl, PEER_WIN);
    r.options.timestamp = Some((tsval, tsecr));
    r
}

/// A passive open with timestamps: the SYN at 0 with TSval `PEER_TS`, the
/// final ACK 10 ms later with `PEER_TS + 10`: (listener, connection, our
/// ISN, our SYN-ACK's TSval).
fn ts_accepted(b: &mut Bench) -> (Fd, Fd, u32, u32) {
    let l = b.listener(16);
    let mut syn = hdr(PPORT, LPORT, PISN, 0, SYN, SYN_WINDOW);
    syn.options = ts_syn_options(PEER_TS, 0);
    b.send(syn, &[]);
    let sa = b.one();
    let (tsval, tsecr) = sa.r.options.timestamp.expect("timestamps in the SYN-ACK");
    assert_eq!(tsecr, PEER_TS, "the SYN-ACK echoes the SYN's TSval");
    b.at(ms(10));
    b.send(ts_hdr(PISN + 1, sa.r.seq.wrapping_add(1), ACK, PEER_TS + 10, tsval), &[]);
    b.none();
    let (fd, _) = b.s.accept(l).unwrap();
    (l, fd, sa.r.seq, tsval)
}

#[test]
fn a_syn_with_timestamps_gets_them_back_in_linux_order_and_the_mss_shrinks_by_12() {
    let mut b = Bench::new();
    let l = b.listener(16);
    let mut syn = hdr(PPORT, LPORT, PISN, 0, SYN, SYN_WINDOW);
    syn.options = ts_syn_options(PEER_TS, 0);
    b.send(syn, &[]);
    let sa = b.one();
    // tcp_synack_options and tcp_options_write: MSS, SACK-permitted beside
    // the timestamps, NOP window scale; the window a multiple of 1460 - 12
    // (tcp_openreq_init_rwin: 65160 = 45 x 1448).
    let (tsval, tsecr) = sa.r.options.timestamp.expect("timestamps");
    assert_eq!((tsecr, sa.r.window), (PEER_TS, 65160));
    let mut raw = [0u8; 20];
    sa.r.options.emit(&mut raw);
    let (v, e) = (tsval.to_be_bytes(), PEER_TS.to_be_bytes());
    assert_eq!(raw, [2, 4, 0x05, 0xb4, 4, 2, 8, 10, v[0], v[1], v[2], v[3], e[0], e[1], e[2], e[3], 1, 3, 3, 10]);
    b.at(ms(10));
    b.send(ts_hdr(PISN + 1, sa.r.seq.wrapping_add(1), ACK, PEER_TS + 10, tsval), &[]);
    let (fd, _) = b.s.accept(l).unwrap();
    let info = b.s.tcp_info(fd).unwrap();
    // mss_cache less TCPOLEN_TSTAMP_ALIGNED; `ss -i` shows "ts sack wscale:10,10".
    assert_eq!((info.snd_mss, info.options, info.snd_wscale, info.rcv_wscale), (1448, 1 | 2 | 4, 10, 10));
    assert_eq!(info.rtt_us, 10_000, "the SYN-ACK timed by its own clock");
    // Data: full segments of 1448 bytes, each with TSval from our clock
    // (ms) and TSecr the peer's latest TSval.
    b.at(ms(25));
    let data = pattern(3000);
    assert_eq!(b.s.send(fd, &data), Ok(3000));
    let out = b.out();
    let lens: Vec<usize> = out.iter().map(|s| s.data.len()).collect();
    assert_eq!(lens, [1448, 1448, 104]);
    for s in &out {
        assert_eq!(s.r.options.timestamp, Some((tsval.wrapping_add(25), PEER_TS + 10)));
        let mut raw = [0u8; 12];
        assert_eq!(s.r.options.emit(&mut raw), 12, "NOP NOP TS");
        assert_eq!(raw[..4], [1, 1, 8, 10]);
    }
    // The peer's data with a newer TSval: the ACK echoes it.
    b.at(ms(30));
    b.send(ts_hdr(PISN + 1, sa.r.seq.wrapping_add(1 + 3000), ACK | PSH, PEER_TS + 30, tsval + 25), b"hi");
    assert_eq!(read_all(&mut b, fd), b"hi");
    let ack = b.one();
    assert_eq!(ack.r.options.timestamp, Some((tsval.wrapping_add(30), PEER_TS + 30)));
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    let rst = b.one();
    assert_eq!(rst.r.options.timestamp, Some((tsval.wrapping_add(30), PEER_TS + 30)), "a RST of ours has them too");
    b.s.close(l).unwrap();
    b.end();
}

#[test]
fn paws_drops_a_segment_with_an_old_timestamp_and_counts_it() {
    let mut b = Bench::new();
    let (l, fd, iss, tsval) = ts_accepted(&mut b);
    let (seq, ack) = (PISN + 1, iss.wrapping_add(1));
    b.at(ms(20));
    b.send(ts_hdr(seq, ack, ACK | PSH, PEER_TS + 20, tsval), b"new");
    assert_eq!(read_all(&mut b, fd), b"new");
    b.out();
    // An old duplicate of the next bytes (RFC 7323 §5: its TSval is from
    // before the last one): dropped, counted, answered with our ACK.
    b.at(ms(30));
    b.send(ts_hdr(seq + 3, ack, ACK | PSH, PEER_TS + 5, tsval), b"old");
    assert_eq!(read_all(&mut b, fd), b"", "nothing delivered");
    let dup = b.one();
    assert_eq!((dup.flags(), dup.r.ack), (ACK, seq + 3));
    assert_eq!(dup.r.options.timestamp, Some((tsval.wrapping_add(30), PEER_TS + 20)), "ts_recent unchanged");
    let m = b.s.snmp();
    assert_eq!((m.TcpExtPAWSEstab, m.TcpExtPAWSOldAck, m.TcpExtTCPACKSkippedPAWS), (1, 0, 0));
    // One tick behind is inside TCP_PAWS_WINDOW: taken.
    b.send(ts_hdr(seq + 3, ack, ACK | PSH, PEER_TS + 19, tsval), b"one");
    assert_eq!(read_all(&mut b, fd), b"one");
    b.out();
    // A pure ACK below RCV.NXT with an old TSval: PAWSOldAck, no answer.
    b.send(ts_hdr(seq, ack, ACK, PEER_TS + 1, tsval), &[]);
    b.none();
    // A pure ACK at RCV.NXT far behind: PAWSEstab, and the duplicate ACK is
    // rate-limited with the connection's other out-of-window answers.
    b.send(ts_hdr(seq + 6, ack, ACK, PEER_TS + 1, tsval), &[]);
    assert_eq!(b.one().r.ack, seq + 6);
    b.send(ts_hdr(seq + 6, ack, ACK, PEER_TS + 1, tsval), &[]);
    b.none();
    // A fresh pure ACK (the window's last update now at RCV.NXT), then one
    // reordered behind it by less than the RTO x 1.2 ticks: a duplicate ACK
    // that moves no window, accepted silently (tcp_disordered_ack_check).
    b.send(ts_hdr(seq + 6, ack, ACK, PEER_TS + 21, tsval), &[]);
    b.send(ts_hdr(seq + 6, ack, ACK, PEER_TS + 15, tsval), &[]);
    b.none();
    let m = b.s.snmp();
    assert_eq!((m.TcpExtPAWSEstab, m.TcpExtPAWSOldAck, m.TcpExtTCPACKSkippedPAWS), (3, 1, 1));
    // A RST is taken whatever its timestamp (RFC 7323 §5.3 R1).
    b.send(ts_hdr(seq + 6, 0, RST, PEER_TS, 0), &[]);
    assert_eq!(b.state(fd), TcpState::Close);
    b.s.close(fd).unwrap();
    b.s.close(l).unwrap();
    b.end();
}

#[test]
fn paws_lets_an_old_timestamp_through_after_2147_idle_seconds() {
    let mut b = Bench::new();
    let (l, fd, iss, tsval) = ts_accepted(&mut b);
    let (seq, ack) = (PISN + 1, iss.wrapping_add(1));
    // ts_recent stored 10 ms in; TCP_PAWS_WRAP (INT_MAX / USEC_PER_SEC s,
    // Linux 6.7 and later; RFC 7323 §5.5 says 24 days) later it is too old
    // to judge by.
    b.at(ms(10) + secs(2146));
    b.send(ts_hdr(seq, ack, ACK | PSH, PEER_TS - 1000, tsval), b"a");
    assert_eq!(read_all(&mut b, fd), b"");
    assert_eq!(b.s.snmp().TcpExtPAWSEstab, 1);
    b.out();
    b.at(ms(10) + secs(2147));
    b.send(ts_hdr(seq, ack, ACK | PSH, PEER_TS - 1000, tsval), b"b");
    assert_eq!(read_all(&mut b, fd), b"b");
    let a = b.one();
    assert_eq!(a.r.options.timestamp.map(|t| t.1), Some(PEER_TS - 1000), "the old TSval is now ts_recent");
    assert_eq!(b.s.snmp().TcpExtPAWSEstab, 1);
    abort_close_and_end(&mut b, fd, l);
}

// ---------------------------------------------------------------- SACK loss recovery

/// Ten segments of ours in flight after an active open with a 100 ms RTT:
/// (bench, connection, our port, `seg(i)` = sequence number of segment i,
/// the data).
fn ten_in_flight() -> (Bench, Fd, u16, impl Fn(u32) -> u32, Vec<u8>) {
    ten_in_flight_with(|_| {})
}

/// [`ten_in_flight`] with a configuration `tweak` changes.
fn ten_in_flight_with(tweak: impl FnOnce(&mut StackConfig)) -> (Bench, Fd, u16, impl Fn(u32) -> u32, Vec<u8>) {
    let mut b = Bench::with_config(tweak);
    let (fd, port, iss) = connected_after(&mut b, ms(100));
    let data = pattern(10 * MSS);
    assert_eq!(b.s.send(fd, &data), Ok(data.len()));
    assert_eq!(b.out().len(), 10, "the initial window");
    let seg = move |i: u32| iss.wrapping_add(1 + i * MSS as u32);
    b.at(ms(150));
    (b, fd, port, seg, data)
}

/// Closes `fd` with a reset and checks the frames.
fn abort(mut b: Bench, fd: Fd) {
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.out();
    b.end();
}

#[test]
fn a_lost_segment_is_recovered_by_sack_without_a_timeout() {
    let (mut b, fd, port, seg, data) = ten_in_flight();
    // Segment 1 is lost; the peer SACKs 2, 3, 4 as they come.
    b.send(hdr(PPORT, port, PISN + 1, seg(1), ACK, PEER_WIN), &[]);
    b.send(sack_ack(port, seg(1), &[(seg(2), seg(3))]), &[]);
    b.send(sack_ack(port, seg(1), &[(seg(2), seg(4))]), &[]);
    b.none();
    let cwnd = b.s.tcp_info(fd).unwrap().snd_cwnd;
    // The third SACKed segment: recovery (tcp_dupack_heuristics: sacked_out + 1 > reordering).
    b.send(sack_ack(port, seg(1), &[(seg(2), seg(5))]), &[]);
    let r = b.one();
    assert_eq!((r.flags(), r.r.seq, r.data.as_slice()), (ACK, seg(1), &data[MSS..2 * MSS]));
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPSackRecovery, m.TcpExtTCPRenoRecovery, m.TcpExtTCPFastRetrans), (1, 0, 1));
    let info = b.s.tcp_info(fd).unwrap();
    assert_eq!(info.snd_ssthresh, cwnd * 717 / 1024, "CUBIC's β");
    // PRR (RFC 6937, as Linux): cwnd = pipe + sndcnt. Of the 9 segments out,
    // 3 are SACKed and 1 is lost: 5 in the pipe, and this ACK delivered one,
    // so one more may go (the fast retransmit): 6, not yet ssthresh.
    assert_eq!(info.snd_cwnd, 6, "PRR: pipe 5 + 1");
    // More SACKs: no other hole, nothing more to send.
    for i in 6..=10 {
        b.send(sack_ack(port, seg(1), &[(seg(2), seg(i))]), &[]);
    }
    b.none();
    // The retransmission arrives: all acknowledged, recovery over.
    b.at(ms(250));
    b.send(hdr(PPORT, port, PISN + 1, seg(10), ACK, PEER_WIN), &[]);
    b.none();
    b.at(ms(5000));
    b.none();
    let m = b.s.snmp();
    assert_eq!((m.TcpRetransSegs, m.TcpExtTCPTimeouts, m.TcpExtTCPFastRetrans), (1, 0, 1));
    assert_eq!((m.TcpExtTCPSACKDiscard, m.TcpExtTCPDSACKUndo, m.TcpExtTCPFullUndo), (0, 0, 0));
    let info = b.s.tcp_info(fd).unwrap();
    assert_eq!((info.snd_cwnd, info.unacked), (info.snd_ssthresh, 0));
    abort(b, fd);
}

#[test]
fn two_holes_in_one_window_are_both_retransmitted_in_one_recovery() {
    let (mut b, fd, port, seg, data) = ten_in_flight();
    // Segments 1 and 3 are lost.
    b.send(hdr(PPORT, port, PISN + 1, seg(1), ACK, PEER_WIN), &[]);
    b.send(sack_ack(port, seg(1), &[(seg(2), seg(3))]), &[]);
    b.send(sack_ack(port, seg(1), &[(seg(4), seg(5)), (seg(2), seg(3))]), &[]);
    b.none();
    // Three segments SACKed: recovery; only segment 1 has three above it.
    b.send(sack_ack(port, seg(1), &[(seg(4), seg(6)), (seg(2), seg(3))]), &[]);
    let r = b.one();
    assert_eq!((r.r.seq, r.data.as_slice()), (seg(1), &data[MSS..2 * MSS]));
    // A fourth: segment 3 has three SACKed above it too, and the pipe has
    // room: it goes, in the same recovery, before any partial ACK.
    b.send(sack_ack(port, seg(1), &[(seg(4), seg(7)), (seg(2), seg(3))]), &[]);
    let r = b.one();
    assert_eq!((r.r.seq, r.data.as_slice()), (seg(3), &data[3 * MSS..4 * MSS]));
    b.send(sack_ack(port, seg(1), &[(seg(4), seg(10)), (seg(2), seg(3))]), &[]);
    b.none();
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPSackRecovery, m.TcpExtTCPFastRetrans, m.TcpRetransSegs), (1, 2, 2));
    // Both retransmissions arrive: the first fills hole 1 (a partial ACK
    // up to hole 3, nothing sent again), the second ends recovery.
    b.at(ms(250));
    b.send(sack_ack(port, seg(3), &[(seg(4), seg(10))]), &[]);
    b.none();
    b.send(hdr(PPORT, port, PISN + 1, seg(10), ACK, PEER_WIN), &[]);
    b.at(ms(5000));
    b.none();
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPSackRecovery, m.TcpRetransSegs, m.TcpExtTCPTimeouts), (1, 2, 0));
    abort(b, fd);
}

#[test]
fn reordering_is_not_mistaken_for_loss_and_raises_the_threshold() {
    let (mut b, fd, port, seg, _) = ten_in_flight();
    // Segment 1 comes after 2 and 3: two SACKed segments, no recovery.
    b.send(hdr(PPORT, port, PISN + 1, seg(1), ACK, PEER_WIN), &[]);
    b.send(sack_ack(port, seg(1), &[(seg(2), seg(3))]), &[]);
    b.send(sack_ack(port, seg(1), &[(seg(2), seg(4))]), &[]);
    b.none();
    // It arrives: the cumulative ACK covers data below the highest SACK
    // that was never sent again: reordering (tcp_clean_rtx_queue).
    b.send(hdr(PPORT, port, PISN + 1, seg(4), ACK, PEER_WIN), &[]);
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPSACKReorder, m.TcpExtTCPSackRecovery, m.TcpRetransSegs), (1, 0, 0));
    // Segment 9 is SACKed before 5: from 5 to the end of 9, 5 segments of
    // reordering (tcp_sacktag_one → tcp_check_sack_reordering, `fack` the
    // start of the segment after the highest SACKed): `reordering` is 5.
    b.send(sack_ack(port, seg(4), &[(seg(9), seg(10))]), &[]);
    b.send(sack_ack(port, seg(4), &[(seg(5), seg(6)), (seg(9), seg(10))]), &[]);
    assert_eq!(b.s.snmp().TcpExtTCPSACKReorder, 2);
    let info = b.s.tcp_info(fd).unwrap();
    assert_eq!((info.reordering, info.reord_seen, info.sacked), (5, 2, 2));
    // So three SACKed segments (5, 6, 9) do not start recovery any more...
    b.send(sack_ack(port, seg(4), &[(seg(5), seg(7)), (seg(9), seg(10))]), &[]);
    b.none();
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPSackRecovery, m.TcpExtTCPSACKReorder), (0, 3), "6 SACKed below 9: reordering");
    // ...and 4, 7, 8 arrive late, as the peer's ACK says (4 acknowledged
    // below the highest SACK: reordering again).
    b.send(hdr(PPORT, port, PISN + 1, seg(10), ACK, PEER_WIN), &[]);
    b.at(ms(5000));
    b.none();
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPSackRecovery, m.TcpRetransSegs, m.TcpExtTCPTimeouts), (0, 0, 0));
    assert_eq!(m.TcpExtTCPSACKReorder, 4);
    abort(b, fd);
}

#[test]
fn a_late_segment_acknowledged_with_a_retransmission_is_reordering() {
    // RFC 6675's DupThresh alone (`tcp_recovery=0`), so that segment 5 is
    // not marked lost by time while it is late.
    let (mut b, fd, port, seg, _) = ten_in_flight_with(|c| c.tcp_recovery = 0);
    b.send(hdr(PPORT, port, PISN + 1, seg(1), ACK, PEER_WIN), &[]);
    for i in 3..=5 {
        b.send(sack_ack(port, seg(1), &[(seg(2), seg(i))]), &[]);
    }
    assert_eq!(b.one().r.seq, seg(1), "segment 1 lost: the fast retransmission");
    // Segment 6 comes, 5 does not yet: one SACKed segment above it, not lost.
    b.send(sack_ack(port, seg(1), &[(seg(6), seg(7)), (seg(2), seg(5))]), &[]);
    b.none();
    assert_eq!(b.s.snmp().TcpExtTCPSACKReorder, 0);
    // The retransmission of 1 and the late 5 arrive: one cumulative ACK
    // covers both. 5 was never sent twice nor SACKed, and lies below the
    // highest SACKed: reordering (tcp_clean_rtx_queue's `reord`), though
    // the head of the ACK was a retransmission.
    b.send(hdr(PPORT, port, PISN + 1, seg(7), ACK, PEER_WIN), &[]);
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPSACKReorder, m.TcpRetransSegs), (1, 1));
    let info = b.s.tcp_info(fd).unwrap();
    // From 5 to the ACK (nothing SACKed any more: `snd_una`): 2 segments,
    // under the degree of 3, which stays.
    assert_eq!((info.reord_seen, info.reordering), (1, 3));
    b.send(hdr(PPORT, port, PISN + 1, seg(10), ACK, PEER_WIN), &[]);
    b.none();
    abort(b, fd);
}

/// What the ACK after a fast retransmission echoes in the timestamp test below.
#[derive(Clone, Copy, PartialEq)]
enum Echo {
    /// The TSval of the original transmissions: they arrived late.
    Original,
    /// The TSval of the retransmission: the copy filled the hole.
    Retransmission,
}

/// Ten segments in flight on a connection with timestamps; segment 1 is
/// SACKed around until a fast retransmission at 60 ms; then an ACK of
/// `acked` segments echoes `echo`. Returns the counters, the `tcp_info`
/// before the reduction, and after the ACK.
fn ack_after_fast_retransmit_with_ts(acked: u32, echo: Echo) -> (Mib, TcpInfo, TcpInfo) {
    // No tail loss probe (PTO 20 ms) before the SACKs at 60 ms.
    let mut b = Bench::with_config(|c| c.tcp_early_retrans = 0);
    let (_l, fd, iss, tsval) = ts_accepted(&mut b);
    let mss = 1448;
    assert_eq!(b.s.send(fd, &pattern(10 * mss)), Ok(10 * mss));
    let sent = b.out();
    assert_eq!(sent.len(), 10);
    assert_eq!(sent[1].r.options.timestamp.map(|t| t.0), Some(tsval.wrapping_add(10)));
    let seg = |i: u32| iss.wrapping_add(1 + i * mss as u32);
    let ack = |ack: u32, tsecr: u32, blocks: &[(u32, u32)]| {
        let mut r = ts_hdr(PISN + 1, ack, ACK, PEER_TS + 60, tsecr);
        r.options.sack_len = blocks.len() as u8;
        for (b, &(left, right)) in r.options.sack_blocks.iter_mut().zip(blocks) {
            *b = SackBlock { left, right };
        }
        r
    };
    b.at(ms(60));
    b.send(ack(seg(1), tsval.wrapping_add(10), &[]), &[]);
    let before = b.s.tcp_info(fd).unwrap();
    for i in 3..=5 {
        b.send(ack(seg(1), tsval.wrapping_add(10), &[(seg(2), seg(i))]), &[]);
    }
    let rexmit = b.one();
    assert_eq!(rexmit.r.seq, seg(1), "the fast retransmission");
    let rexmit_ts = rexmit.r.options.timestamp.expect("timestamps").0;
    assert_eq!(rexmit_ts, tsval.wrapping_add(60));
    // At once (segments 5 to 9 still within RACK's window).
    let tsecr = if echo == Echo::Original { tsval.wrapping_add(10) } else { rexmit_ts };
    b.send(ack(seg(acked), tsecr, &[]), &[]);
    let after = b.s.tcp_info(fd).unwrap();
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPSackRecovery, m.TcpRetransSegs, m.TcpExtTCPTimeouts), (1, 1, 0));
    (m, before, after)
}

#[test]
fn an_ack_echoing_the_original_undoes_a_fast_recovery() {
    // RFC 3522 (Eifel detection) as Linux's tcp_packet_delayed: the partial
    // ACK up to 5 echoes the TSval of the original segment 1, sent before
    // the retransmission: it was late, not lost. Reordering by timestamps,
    // and with no retransmission left out, the reduction is undone
    // (tcp_try_undo_partial).
    let (m, before, after) = ack_after_fast_retransmit_with_ts(5, Echo::Original);
    assert_eq!((m.TcpExtTCPTSReorder, m.TcpExtTCPPartialUndo, m.TcpExtTCPSACKReorder), (1, 1, 0));
    assert_eq!((after.snd_cwnd, after.snd_ssthresh), (before.snd_cwnd, before.snd_ssthresh));
    // From 1 to 5: 4 segments, over the degree of 3.
    assert_eq!((after.reordering, after.reord_seen), (4, 1));
    // The same ACK echoing the retransmission: the copy filled the hole,
    // the reduction stands.
    let (m, before, after) = ack_after_fast_retransmit_with_ts(5, Echo::Retransmission);
    assert_eq!((m.TcpExtTCPTSReorder, m.TcpExtTCPPartialUndo), (0, 0));
    assert!(after.snd_ssthresh < before.snd_cwnd);
    // An ACK of everything echoing the original ends the recovery undone
    // (tcp_try_undo_recovery: TcpExtTCPFullUndo).
    let (m, before, after) = ack_after_fast_retransmit_with_ts(10, Echo::Original);
    assert_eq!((m.TcpExtTCPFullUndo, m.TcpExtTCPPartialUndo), (1, 0));
    assert_eq!((after.snd_cwnd, after.snd_ssthresh), (before.snd_cwnd, before.snd_ssthresh));
    let (m, ..) = ack_after_fast_retransmit_with_ts(10, Echo::Retransmission);
    assert_eq!(m.TcpExtTCPFullUndo, 0);
}

#[test]
fn a_spurious_fast_retransmit_is_undone_by_dsack() {
    let (mut b, fd, port, seg, _) = ten_in_flight();
    b.send(hdr(PPORT, port, PISN + 1, seg(1), ACK, PEER_WIN), &[]);
    let before = b.s.tcp_info(fd).unwrap();
    for i in 3..=5 {
        b.send(sack_ack(port, seg(1), &[(seg(2), seg(i))]), &[]);
    }
    assert_eq!(b.one().r.seq, seg(1), "the fast retransmission");
    let reduced = b.s.tcp_info(fd).unwrap();
    assert!(reduced.snd_cwnd < before.snd_cwnd);
    // Segment 1 was only late: the ACK covers everything, recovery ends...
    b.send(hdr(PPORT, port, PISN + 1, seg(10), ACK, PEER_WIN), &[]);
    assert_eq!(b.s.tcp_info(fd).unwrap().snd_cwnd, reduced.snd_ssthresh);
    // ...and the retransmission comes back as a D-SACK (RFC 2883 §4.1.1):
    // every retransmission of the episode was spurious, the reduction is undone.
    b.send(sack_ack(port, seg(10), &[(seg(1), seg(2))]), &[]);
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPDSACKRecv, m.TcpExtTCPDSACKRecvSegs, m.TcpExtTCPDSACKUndo), (1, 1, 1));
    assert_eq!((m.TcpExtTCPDSACKIgnoredOld, m.TcpExtTCPDSACKIgnoredNoUndo, m.TcpExtTCPDSACKIgnoredDubious), (0, 0, 0));
    let after = b.s.tcp_info(fd).unwrap();
    assert_eq!(after.snd_cwnd, before.snd_cwnd, "tcp_undo_cwnd_reduction: prior_cwnd");
    assert_eq!(after.snd_ssthresh, before.snd_ssthresh, "prior_ssthresh");
    // A second D-SACK of the same data: no episode left to undo.
    b.send(sack_ack(port, seg(10), &[(seg(1), seg(2))]), &[]);
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPDSACKRecv, m.TcpExtTCPDSACKIgnoredDubious, m.TcpExtTCPDSACKUndo), (2, 1, 1));
    abort(b, fd);
}

#[test]
fn a_zero_length_dsack_is_dubious_and_undoes_nothing() {
    // tcp_dsack_seen returns 0 for a block with `!before(start_seq,
    // end_seq)`: tcp_check_dsack counts it in TcpExtTCPDSACKIgnoredDubious
    // and it is no D-SACK (nothing is in flight: no block is read further).
    // A malformed block must not take a retransmission off `undo_retrans`:
    // the reduction of a real loss would be undone.
    let (mut b, fd, port, seg, _) = ten_in_flight();
    b.send(hdr(PPORT, port, PISN + 1, seg(1), ACK, PEER_WIN), &[]);
    for i in 3..=5 {
        b.send(sack_ack(port, seg(1), &[(seg(2), seg(i))]), &[]);
    }
    assert_eq!(b.one().r.seq, seg(1), "the fast retransmission");
    b.send(hdr(PPORT, port, PISN + 1, seg(10), ACK, PEER_WIN), &[]);
    let reduced = b.s.tcp_info(fd).unwrap();
    b.send(sack_ack(port, seg(10), &[(seg(1), seg(1))]), &[]);
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPDSACKRecv, m.TcpExtTCPDSACKIgnoredDubious, m.TcpExtTCPDSACKRecvSegs), (1, 1, 0));
    assert_eq!((m.TcpExtTCPDSACKIgnoredOld, m.TcpExtTCPSACKDiscard), (0, 0));
    assert_eq!(m.TcpExtTCPDSACKUndo, 0, "no retransmission was shown spurious");
    let after = b.s.tcp_info(fd).unwrap();
    assert_eq!((after.snd_cwnd, after.snd_ssthresh, after.dsack_dups), (reduced.snd_cwnd, reduced.snd_ssthresh, 0));
    abort(b, fd);
}

#[test]
fn a_dsack_on_the_ack_that_ends_recovery_is_a_full_undo() {
    let (mut b, fd, port, seg, _) = ten_in_flight();
    b.send(hdr(PPORT, port, PISN + 1, seg(1), ACK, PEER_WIN), &[]);
    let before = b.s.tcp_info(fd).unwrap();
    for i in 3..=5 {
        b.send(sack_ack(port, seg(1), &[(seg(2), seg(i))]), &[]);
    }
    assert_eq!(b.one().r.seq, seg(1), "the fast retransmission");
    // The ACK past high_seq reports the retransmission as a duplicate:
    // tcp_try_undo_recovery undoes as recovery ends (TcpExtTCPFullUndo).
    b.send(sack_ack(port, seg(10), &[(seg(1), seg(2))]), &[]);
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPDSACKRecv, m.TcpExtTCPFullUndo, m.TcpExtTCPDSACKUndo), (1, 1, 0));
    let after = b.s.tcp_info(fd).unwrap();
    assert_eq!((after.snd_cwnd, after.snd_ssthresh), (before.snd_cwnd, before.snd_ssthresh));
    abort(b, fd);
}

#[test]
fn a_spurious_timeout_is_undone_by_dsack() {
    let mut b = Bench::new();
    let (fd, port, iss) = connected_after(&mut b, ms(100));
    let data = pattern(2 * MSS);
    assert_eq!(b.s.send(fd, &data), Ok(data.len()));
    assert_eq!(b.out().len(), 2);
    let before = b.s.tcp_info(fd).unwrap();
    // RTO 300 ms: the head goes again, the window drops to one segment.
    b.at(ms(400));
    let r = b.one();
    assert_eq!((r.r.seq, r.data.len()), (iss.wrapping_add(1), MSS));
    assert_eq!(b.s.tcp_info(fd).unwrap().snd_cwnd, 1);
    // Both segments had arrived; the ACK was late. The peer D-SACKs the copy.
    b.at(ms(450));
    let end = iss.wrapping_add(1 + 2 * MSS as u32);
    b.send(sack_ack(port, end, &[(iss.wrapping_add(1), iss.wrapping_add(1 + MSS as u32))]), &[]);
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPTimeouts, m.TcpExtTCPDSACKRecv, m.TcpExtTCPLossUndo), (1, 1, 1));
    let after = b.s.tcp_info(fd).unwrap();
    assert_eq!((after.snd_cwnd, after.snd_ssthresh), (before.snd_cwnd, before.snd_ssthresh));
    assert_eq!((after.unacked, after.retransmits), (0, 0));
    // Sending goes on at the restored window.
    assert_eq!(b.s.send(fd, &pattern(4 * MSS)), Ok(4 * MSS));
    assert_eq!(b.out().len(), 4);
    abort(b, fd);
}

#[test]
fn after_a_timeout_data_the_peer_sacked_is_not_sent_again() {
    let (mut b, fd, port, seg, data) = ten_in_flight();
    // Segments 0 and 1 lost; 2..5 SACKed (recovery), then the retransmission is lost too.
    for i in 3..=6 {
        b.send(sack_ack(port, seg(0), &[(seg(2), seg(i))]), &[]);
    }
    // Both holes have three SACKed segments above them: both are lost.
    let seqs: Vec<u32> = b.out().iter().map(|s| s.r.seq).collect();
    assert_eq!(seqs, vec![seg(0), seg(1)]);
    // The timeout: go-back-N from the head, skipping 2..5.
    b.at(ms(2000));
    assert_eq!(b.one().r.seq, seg(0));
    b.send(sack_ack(port, seg(1), &[(seg(2), seg(6))]), &[]);
    let out = b.out();
    let seqs: Vec<u32> = out.iter().map(|s| s.r.seq).collect();
    assert_eq!(seqs, vec![seg(1), seg(6)], "slow start from 1: two segments, the SACKed ones skipped");
    assert_eq!(out[1].data.as_slice(), &data[6 * MSS..7 * MSS]);
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPTimeouts, m.TcpExtTCPSACKReneging), (1, 0));
    abort(b, fd);
}

#[test]
fn a_timeout_with_the_head_sacked_is_reneging() {
    let (mut b, fd, port, seg, _) = ten_in_flight();
    b.send(sack_ack(port, seg(1), &[(seg(2), seg(4))]), &[]);
    // The peer acknowledges up to 2 but not the 2..4 it SACKed: it dropped
    // them (tcp_check_sack_reneging). The timer is cut to srtt/2 = 46.875 ms.
    b.send(hdr(PPORT, port, PISN + 1, seg(2), ACK, PEER_WIN), &[]);
    b.none();
    b.at(ms(196));
    b.none();
    b.at(ms(197));
    assert_eq!(b.one().r.seq, seg(2));
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPSACKReneging, m.TcpExtTCPTimeouts), (1, 1));
    // The scoreboard is forgotten: slow start sends 3 again.
    b.send(hdr(PPORT, port, PISN + 1, seg(3), ACK, PEER_WIN), &[]);
    let seqs: Vec<u32> = b.out().iter().map(|s| s.r.seq).collect();
    assert_eq!(seqs, vec![seg(3), seg(4)]);
    abort(b, fd);
}

#[test]
fn sack_blocks_outside_what_was_sent_are_discarded() {
    let (mut b, fd, port, seg, _) = ten_in_flight();
    b.send(hdr(PPORT, port, PISN + 1, seg(1), ACK, PEER_WIN), &[]);
    // Beyond snd_nxt, reversed, and starting at snd_una (tcp_is_sackblock_valid).
    b.send(sack_ack(port, seg(1), &[(seg(9), seg(11))]), &[]);
    b.send(sack_ack(port, seg(1), &[(seg(5), seg(4))]), &[]);
    b.send(sack_ack(port, seg(1), &[(seg(1), seg(2))]), &[]);
    assert_eq!(b.s.snmp().TcpExtTCPSACKDiscard, 3);
    // A D-SACK for data never sent twice is dubious (tcp_dsack_seen), and
    // then an ordinary block below snd_una: discarded too.
    b.send(sack_ack(port, seg(1), &[(seg(0), seg(1))]), &[]);
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPDSACKRecv, m.TcpExtTCPDSACKIgnoredDubious, m.TcpExtTCPSACKDiscard), (1, 1, 4));
    // Old blocks on a reordered ACK (below its own ACK) are not counted.
    b.send(sack_ack(port, seg(0), &[(seg(0), seg(1))]), &[]);
    assert_eq!(b.s.snmp().TcpExtTCPSACKDiscard, 4);
    b.none();
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPSackRecovery, m.TcpRetransSegs), (0, 0));
    abort(b, fd);
}

#[test]
fn duplicate_data_is_reported_in_a_dsack_block() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    let data = pattern(4000);
    peer_data(&mut b, iss, 0, &data[..1000]);
    assert_eq!(b.one().r.options.sack_len, 0);
    // The same segment again: the ACK reports it first (RFC 2883 §4.1.1).
    peer_data(&mut b, iss, 0, &data[..1000]);
    let a = b.one();
    assert_eq!(a.r.ack, PISN + 1001);
    assert_eq!(a.r.options.sack_blocks(), &[SackBlock { left: PISN + 1, right: PISN + 1001 }]);
    assert_eq!(b.s.snmp().TcpExtTCPDSACKOldSent, 1);
    // Out of order, then the same again: a D-SACK inside the SACK block (§4.1.3).
    peer_data(&mut b, iss, 2000, &data[2000..3000]);
    let block = SackBlock { left: PISN + 2001, right: PISN + 3001 };
    assert_eq!(b.one().r.options.sack_blocks(), &[block]);
    peer_data(&mut b, iss, 2000, &data[2000..3000]);
    assert_eq!(b.one().r.options.sack_blocks(), &[block, block]);
    assert_eq!(b.s.snmp().TcpExtTCPDSACKOfoSent, 1);
    // Once only: the next ACK has the SACK block alone.
    peer_data(&mut b, iss, 3000, &data[3000..]);
    assert_eq!(b.one().r.options.sack_blocks(), &[SackBlock { left: PISN + 2001, right: PISN + 4001 }]);
    peer_data(&mut b, iss, 1000, &data[1000..2000]);
    assert_eq!(b.one().r.options.sack_len, 0);
    assert_eq!(read_all(&mut b, fd), data);
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPDSACKOldSent, m.TcpExtTCPDSACKOfoSent), (1, 1));
    abort_close_and_end(&mut b, fd, l);
}

/// The RTT after the ACK of data sent twice: from TSecr with timestamps
/// (`tcp_ack_update_rtt`), none without (Karn, RFC 6298 §3).
fn rtt_after_a_retransmission(with_ts: bool) -> (u32, u32) {
    let mut b = Bench::new();
    let (fd, iss, tsval) = if with_ts {
        let (_l, fd, iss, tsval) = ts_accepted(&mut b);
        (fd, iss, tsval)
    } else {
        let l = b.listener(16);
        let syn = syn_hdr(PPORT, LPORT, PISN, 0, SYN);
        b.send(syn, &[]);
        let sa = b.one();
        b.at(ms(10));
        b.send(hdr(PPORT, LPORT, PISN + 1, sa.r.seq.wrapping_add(1), ACK, PEER_WIN), &[]);
        let (fd, _) = b.s.accept(l).unwrap();
        (fd, sa.r.seq, 0)
    };
    assert_eq!(b.s.tcp_info(fd).unwrap().rtt_us, 10_000);
    assert_eq!(b.s.send(fd, b"lost"), Ok(4));
    let first = b.one();
    // The RTO (10 ms + 200 ms, sent at 10 ms) sends it again; its TSval is
    // the clock then.
    b.at(ms(220));
    let again = b.one();
    assert_eq!((again.r.seq, again.data.as_slice()), (first.r.seq, &b"lost"[..]));
    if with_ts {
        assert_eq!(again.r.options.timestamp.map(|t| t.0), Some(tsval.wrapping_add(220)));
    }
    // The ACK 50 ms later echoes the retransmission's TSval.
    b.at(ms(270));
    let mut a = hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(5), ACK, PEER_WIN);
    if with_ts {
        a.options.timestamp = Some((PEER_TS + 270, tsval.wrapping_add(220)));
    }
    b.send(a, &[]);
    let info = b.s.tcp_info(fd).unwrap();
    (info.rtt_us, info.rto_us)
}

#[test]
fn rtt_from_tsecr_on_a_retransmitted_segment() {
    // srtt 10 ms, the sample 50 ms: 10 - 10/8 + 50/8 = 15 ms; the RTO
    // 15 ms + max(4 x rttvar, 200 ms), the backoff gone (RFC 6298 §5.7: only
    // a valid sample resets it).
    let (rtt, rto) = rtt_after_a_retransmission(true);
    assert_eq!((rtt, rto), (15_000, 215_000));
    // Without timestamps Karn allows no sample: the RTT stays, the RTO
    // (210 ms) keeps its backoff.
    let (rtt, rto) = rtt_after_a_retransmission(false);
    assert_eq!((rtt, rto), (10_000, 420_000));
}

#[test]
fn timestamps_off_in_the_config_are_neither_offered_nor_accepted() {
    let mut b = Bench::with_config(|c| c.tcp_timestamps = xsknet::ipv4::tcp::timestamps::TcpTimestamps::Off);
    let l = b.listener(16);
    let mut syn = hdr(PPORT, LPORT, PISN, 0, SYN, SYN_WINDOW);
    syn.options = ts_syn_options(PEER_TS, 0);
    b.send(syn, &[]);
    let sa = b.one();
    // net.ipv4.tcp_timestamps=0: the SYN-ACK as to a SYN without them.
    assert_eq!((sa.r.options, sa.r.window), (linux_syn_options(), SYN_WINDOW));
    b.send(ts_hdr(PISN + 1, sa.r.seq.wrapping_add(1), ACK, PEER_TS + 1, 0), &[]);
    let (fd, _) = b.s.accept(l).unwrap();
    assert_eq!((b.s.tcp_info(fd).unwrap().snd_mss, b.s.tcp_info(fd).unwrap().options & 1), (1460, 0));
    assert_eq!(b.s.send(fd, b"x"), Ok(1));
    assert_eq!(b.one().r.options.timestamp, None);
    // An active open offers none either.
    let c = b.s.socket(SockType::Stream).unwrap();
    assert_eq!(b.s.connect(c, SocketAddrV4::new(PEER_IP, PPORT)), Err(Errno::EINPROGRESS));
    assert_eq!(b.one().r.options, linux_syn_options());
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.s.close(c).unwrap();
    b.s.close(l).unwrap();
    b.out();
}

#[test]
fn an_active_open_takes_timestamps_from_the_syn_ack_and_checks_its_tsecr() {
    let mut b = Bench::new();
    let fd = b.s.socket(SockType::Stream).unwrap();
    assert_eq!(b.s.connect(fd, SocketAddrV4::new(PEER_IP, PPORT)), Err(Errno::EINPROGRESS));
    let syn = b.one();
    let (port, iss) = (syn.r.src_port, syn.r.seq);
    let (tsval, _) = syn.r.options.timestamp.unwrap();
    b.at(ms(10));
    // A SYN-ACK echoing a TSval we never sent: reset (PAWSActive).
    let mut bad = hdr(PPORT, port, PISN, iss.wrapping_add(1), SYN | ACK, SYN_WINDOW);
    bad.options = ts_syn_options(PEER_TS, tsval.wrapping_add(5000));
    b.send(bad, &[]);
    let rst = b.one();
    assert_eq!((rst.flags(), rst.r.seq), (RST, iss.wrapping_add(1)));
    assert_eq!((b.s.snmp().TcpExtPAWSActive, b.state(fd)), (1, TcpState::SynSent));
    // The right one.
    let mut sa = hdr(PPORT, port, PISN, iss.wrapping_add(1), SYN | ACK, SYN_WINDOW);
    sa.options = ts_syn_options(PEER_TS, tsval);
    b.send(sa, &[]);
    let ack = b.one();
    assert_eq!(ack.r.options.timestamp, Some((tsval.wrapping_add(10), PEER_TS)));
    let info = b.s.tcp_info(fd).unwrap();
    assert_eq!((info.snd_mss, info.options & 1, info.rtt_us), (1448, 1, 10_000));
    b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    b.s.close(fd).unwrap();
    b.end();
}

#[test]
fn a_final_ack_echoing_no_syn_ack_tsval_or_an_old_tsval_makes_no_child() {
    let mut b = Bench::new();
    let l = b.listener(16);
    let mut syn = hdr(PPORT, LPORT, PISN, 0, SYN, SYN_WINDOW);
    syn.options = ts_syn_options(PEER_TS, 0);
    b.send(syn, &[]);
    let sa = b.one();
    let (tsval, _) = sa.r.options.timestamp.unwrap();
    let ack = sa.r.seq.wrapping_add(1);
    // tcp_check_req (Linux 6.15 and later): TSecr not among our SYN-ACKs'.
    b.send(ts_hdr(PISN + 1, ack, ACK, PEER_TS + 1, tsval.wrapping_add(77)), &[]);
    let a = b.one();
    assert_eq!((a.flags(), a.r.seq, a.r.ack), (ACK, ack, PISN + 1));
    assert_eq!(a.r.options.timestamp.map(|t| t.1), Some(PEER_TS), "the request's ACK echoes ts_recent");
    assert_eq!(b.s.snmp().TcpExtTSEcrRejected, 1);
    assert_eq!(b.s.accept(l), Err(Errno::EAGAIN));
    // PAWS: a TSval older than the SYN's (rate-limited answer: none now).
    b.send(ts_hdr(PISN + 1, ack, ACK, PEER_TS - 1, tsval), &[]);
    b.none();
    assert_eq!(b.s.snmp().TcpExtPAWSEstab, 1);
    assert_eq!(b.s.accept(l), Err(Errno::EAGAIN));
    // The right one.
    b.send(ts_hdr(PISN + 1, ack, ACK, PEER_TS + 2, tsval), &[]);
    let (fd, _) = b.s.accept(l).unwrap();
    assert_eq!(b.s.send(fd, b"x"), Ok(1));
    assert_eq!(b.one().r.options.timestamp.map(|t| t.1), Some(PEER_TS + 2));
    abort_close_and_end(&mut b, fd, l);
}

#[test]
fn time_wait_checks_paws_and_reopens_for_a_syn_with_a_newer_timestamp() {
    let mut b = Bench::new();
    let (l, fd, iss, tsval) = ts_accepted(&mut b);
    // We close first: FIN, the peer's ACK and FIN, TIME-WAIT.
    b.at(ms(20));
    b.s.close(fd).unwrap();
    let fin = b.one();
    assert_eq!(fin.flags(), FIN | ACK);
    let (seq, ack) = (PISN + 1, iss.wrapping_add(2));
    b.send(ts_hdr(seq, ack, FIN | ACK, PEER_TS + 20, tsval + 20), &[]);
    let last = b.one();
    assert_eq!(last.r.options.timestamp, Some((tsval.wrapping_add(20), PEER_TS + 20)));
    assert_eq!(states(&b), [(TcpState::TimeWait, 1), (TcpState::Listen, 1)]);
    // An old duplicate: PAWSTimewait, our ACK again with the timestamps.
    b.at(ms(30));
    b.send(ts_hdr(seq, ack, FIN | ACK, PEER_TS + 5, tsval + 20), &[]);
    let again = b.one();
    assert_eq!((again.flags(), again.r.ack), (ACK, seq + 1));
    assert_eq!(again.r.options.timestamp, Some((tsval.wrapping_add(30), PEER_TS + 20)));
    assert_eq!(b.s.snmp().TcpExtPAWSTimewait, 1);
    // A SYN with a lower sequence number but a newer TSval reopens the
    // 4-tuple (tcp_timewait_state_process), with an ISN past the old one.
    let mut syn = hdr(PPORT, LPORT, PISN - 1000, 0, SYN, SYN_WINDOW);
    syn.options = ts_syn_options(PEER_TS + 30, 0);
    b.send(syn, &[]);
    let sa = b.one();
    assert_eq!((sa.flags(), sa.r.ack), (SYN | ACK, PISN - 999));
    assert_eq!(sa.r.seq, iss.wrapping_add(2).wrapping_add(65535 + 2));
    b.s.close(l).unwrap();
    b.end();
}

#[test]
fn a_syn_cookie_with_timestamps_keeps_window_scale_and_sack() {
    let mut b = Bench::with_config(|c| c.tcp_syncookies = xsknet::ipv4::tcp::syncookies::TcpSyncookies::Always);
    let l = b.listener(16);
    let mut syn = hdr(PPORT, LPORT, PISN, 0, SYN, SYN_WINDOW);
    syn.options = ts_syn_options(PEER_TS, 0);
    b.send(syn, &[]);
    let sa = b.one();
    // cookie_init_timestamp: window scale 10 and SACK in TSval's low 6 bits
    // (less the offset, which the SYN-ACK's echo cannot tell us: both are
    // checked by the connection the ACK makes).
    assert_eq!(sa.r.options, TcpOptions { timestamp: sa.r.options.timestamp, ..linux_syn_options() });
    assert_eq!(b.s.snmp().TcpExtSyncookiesSent, 1);
    let (tsval, _) = sa.r.options.timestamp.unwrap();
    b.at(ms(10));
    b.send(ts_hdr(PISN + 1, sa.r.seq.wrapping_add(1), ACK, PEER_TS + 10, tsval), &[]);
    let (fd, _) = b.s.accept(l).unwrap();
    let info = b.s.tcp_info(fd).unwrap();
    assert_eq!((info.options, info.snd_wscale, info.rcv_wscale, info.snd_mss), (1 | 2 | 4, 10, 10, 1448));
    assert_eq!(info.snd_wnd, u32::from(PEER_WIN) << 10, "the peer's window scaled");
    // The RTT from TSecr: the cookie's TSval is up to 63 ticks before the
    // clock (cookie_init_timestamp), so the sample is 10 to 73 ms, as Linux's.
    assert!((10_000..74_000).contains(&info.rtt_us), "RTT from TSecr: {}", info.rtt_us);
    assert_eq!(b.s.snmp().TcpExtSyncookiesRecv, 1);
    // A cookie ACK without timestamps gets no window scale or SACK.
    let syn = syn_hdr(PPORT + 1, LPORT, PISN, 0, SYN);
    b.send(syn, &[]);
    let sa = b.one();
    assert_eq!(sa.r.options, TcpOptions { mss: Some(1460), ..TcpOptions::default() });
    b.send(hdr(PPORT + 1, LPORT, PISN + 1, sa.r.seq.wrapping_add(1), ACK, PEER_WIN), &[]);
    let (fd2, _) = b.s.accept(l).unwrap();
    assert_eq!(b.s.tcp_info(fd2).unwrap().options, 0);
    for f in [fd, fd2] {
        b.s.setsockopt(f, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
        b.s.close(f).unwrap();
    }
    b.s.close(l).unwrap();
    b.end();
}

/// RACK-TLP (RFC 8985 §7, `tcp_schedule_loss_probe`, `tcp_send_loss_probe`):
/// the last three segments of a flight are lost, so no SACK comes back.
/// Two smoothed RTTs (plus 2 ms, in whole jiffies) after the last ACK, the last segment goes
/// again as a probe (`TcpExtTCPLossProbes`); the peer SACKs it, RACK marks
/// the two below it lost (sent before it, older than the RTT plus the
/// reordering window), and recovery repairs them: no timeout.
#[test]
fn a_lost_tail_is_recovered_by_a_loss_probe_without_a_timeout() {
    let (mut b, fd, port, seg, data) = ten_in_flight();
    // 0..=6 arrive; 7, 8, 9 are lost.
    b.send(hdr(PPORT, port, PISN + 1, seg(7), ACK, PEER_WIN), &[]);
    b.none();
    let info = b.s.tcp_info(fd).unwrap();
    // Whole jiffies (HZ 1000, the default): usecs_to_jiffies(2·srtt + 2 ms).
    let pto = xsknet::jiffies::round_up(Duration::from_micros(2 * u64::from(info.rtt_us)) + ms(2), 1000);
    assert!(Duration::from_micros(u64::from(info.rto_us)) > pto, "the probe comes before the RTO");
    b.at(ms(150) + pto - Duration::from_micros(10));
    b.none();
    b.at(ms(150) + pto);
    let p = b.one();
    assert_eq!((p.r.seq, p.data.as_slice()), (seg(9), &data[9 * MSS..]), "the last segment again");
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPLossProbes, m.TcpRetransSegs, m.TcpExtTCPTimeouts), (1, 1, 0));
    // The peer SACKs the probe an RTT later: 7 and 8 are lost.
    b.at(ms(150) + pto + ms(60));
    b.send(sack_ack(port, seg(7), &[(seg(9), seg(10))]), &[]);
    let r = b.one();
    assert_eq!((r.r.seq, r.data.as_slice()), (seg(7), &data[7 * MSS..8 * MSS]));
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPSackRecovery, m.TcpExtTCPFastRetrans), (1, 1));
    b.send(sack_ack(port, seg(8), &[(seg(9), seg(10))]), &[]);
    let r = b.one();
    assert_eq!(r.r.seq, seg(8));
    b.send(hdr(PPORT, port, PISN + 1, seg(10), ACK, PEER_WIN), &[]);
    b.at(secs(5));
    b.none();
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPTimeouts, m.TcpRetransSegs, m.TcpExtTCPLossProbes), (0, 3, 1));
    abort(b, fd);
}

/// Linux's `tcp_init_undo` (since "tcp: fix incorrect undo caused by DSACK
/// of TLP retransmit", v6.10) counts a loss probe still out in
/// `undo_retrans`: its D-SACK shows the probe spurious, not the fast
/// retransmission of a segment really lost. Segment 1 is lost; the tail
/// probe (of 9) goes out; the SACK of 2..=9 starts recovery and segment 1
/// is sent again; then the probe comes back D-SACKed. The reduction stands.
#[test]
fn a_dsack_of_the_loss_probe_does_not_undo_a_real_recovery() {
    let (mut b, fd, port, seg, _) = ten_in_flight();
    b.send(hdr(PPORT, port, PISN + 1, seg(1), ACK, PEER_WIN), &[]);
    b.none();
    let info = b.s.tcp_info(fd).unwrap();
    // Whole jiffies (HZ 1000, the default): usecs_to_jiffies(2·srtt + 2 ms).
    let pto = xsknet::jiffies::round_up(Duration::from_micros(2 * u64::from(info.rtt_us)) + ms(2), 1000);
    b.at(ms(150) + pto);
    assert_eq!(b.one().r.seq, seg(9), "the loss probe");
    let before = b.s.tcp_info(fd).unwrap();
    // 2..=9 arrived, 1 did not: RACK marks 1 lost, the fast retransmission.
    b.at(ms(150) + pto + ms(60));
    b.send(sack_ack(port, seg(1), &[(seg(2), seg(10))]), &[]);
    assert_eq!(b.one().r.seq, seg(1), "the fast retransmission");
    let reduced = b.s.tcp_info(fd).unwrap();
    assert!(reduced.snd_cwnd < before.snd_cwnd);
    // The probe, a duplicate of 9, is D-SACKed (RFC 2883 §4.2, inside the SACK block).
    b.send(sack_ack(port, seg(1), &[(seg(9), seg(10)), (seg(2), seg(10))]), &[]);
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPDSACKOfoRecv, m.TcpExtTCPSackRecovery), (1, 1));
    assert_eq!(m.TcpExtTCPDSACKUndo, 0, "segment 1 was really lost: no undo");
    let after = b.s.tcp_info(fd).unwrap();
    assert!(after.snd_cwnd < before.snd_cwnd, "cwnd {} restored to {}", after.snd_cwnd, before.snd_cwnd);
    abort(b, fd);
}

/// A loop that was descheduled past the probe and retransmission timeouts
/// while the peer's ACKs waited in the rx ring. In Linux the ACKs would have
/// been taken as they arrived; here the poll that resumes the loop takes
/// them before it runs the timers, so nothing is resent: neither a loss
/// probe nor a timeout, and the ACKs' RTT sample includes the pause.
#[test]
fn a_descheduled_loop_reads_the_waiting_acks_before_its_timers() {
    let (mut b, fd, port, seg, _) = ten_in_flight();
    let eth = EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::IPV4 };
    let ip = build::ipv4_repr(PEER_IP, OUR_IP, protocol::TCP, 0x1234);
    // The ACKs arrive at 150 ms, while the loop is not running.
    for i in [2, 4, 6, 8, 10] {
        let ack = hdr(PPORT, port, PISN + 1, seg(i), ACK, PEER_WIN);
        assert!(b.w.inject(&build::tcp_frame(&eth, &ip, &ack, &[])));
    }
    let info = b.s.tcp_info(fd).unwrap();
    let rto = Duration::from_micros(u64::from(info.rto_us));
    // The loop runs again well after the probe and the RTO were due.
    b.at(ms(150) + 3 * rto);
    b.none();
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPLossProbes, m.TcpExtTCPTimeouts, m.TcpRetransSegs), (0, 0, 0));
    assert_eq!(b.s.tcp_info(fd).unwrap().unacked, 0, "the whole flight acknowledged");
    b.at(ms(150) + 20 * rto);
    b.none();
    abort(b, fd);
}

/// RACK (`tcp_rack_detect_loss` on a retransmitted skb): the fast
/// retransmission of segment 1 is lost too. Data sent after it (new
/// segments PRR let out in the same recovery) is SACKed an RTT later, so
/// the retransmission is lost again (`TcpExtTCPLostRetransmit`) and goes a
/// third time at once, not after the RTO.
#[test]
fn a_lost_retransmission_is_found_by_rack_without_a_timeout() {
    let (mut b, fd, port, seg, data) = ten_in_flight();
    assert_eq!(b.s.send(fd, &pattern(20 * MSS)), Ok(20 * MSS));
    b.none();
    b.send(hdr(PPORT, port, PISN + 1, seg(1), ACK, PEER_WIN), &[]);
    let mut sent = Vec::new();
    for i in 3..=10 {
        b.send(sack_ack(port, seg(1), &[(seg(2), seg(i))]), &[]);
        sent.extend(b.out().into_iter().map(|s| s.r.seq));
    }
    let rexmit = sent.iter().position(|&s| s == seg(1)).expect("the fast retransmit");
    let top = sent.iter().copied().max_by_key(|s| s.wrapping_sub(seg(0))).unwrap();
    assert!(sent.iter().position(|&s| s == top).unwrap() > rexmit, "new data after it: {sent:?}");
    assert_eq!(b.s.snmp().TcpExtTCPLostRetransmit, 0);
    // An RTT (50 ms) later: everything up to the newest segment is SACKed, 1 is not.
    b.at(ms(200));
    b.send(sack_ack(port, seg(1), &[(seg(2), top.wrapping_add(MSS as u32))]), &[]);
    let out = b.out();
    let again: Vec<_> = out.iter().filter(|s| s.r.seq == seg(1)).collect();
    assert_eq!(again.len(), 1, "{out:?}");
    assert_eq!(again[0].data.as_slice(), &data[MSS..2 * MSS]);
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPLostRetransmit, m.TcpExtTCPTimeouts, m.TcpExtTCPSackRecovery), (1, 0, 1));
    abort(b, fd);
}

/// [`ten_in_flight`] with 20 more segments queued, then one poll with the
/// ACK of 0 and three SACKs above the lost 1 (2, 2 .. 3, 2 .. 4): the ACKs
/// open the window for new data, the third starts recovery, and the fast
/// retransmit of 1 goes after that data. Returns what went out, in order.
fn fast_retransmit_behind_new_data() -> (Bench, Fd, u16, impl Fn(u32) -> u32, Vec<u32>) {
    let (mut b, fd, port, seg, _) = ten_in_flight();
    assert_eq!(b.s.send(fd, &pattern(20 * MSS)), Ok(20 * MSS));
    b.none();
    b.send_batch(&[
        hdr(PPORT, port, PISN + 1, seg(1), ACK, PEER_WIN),
        sack_ack(port, seg(1), &[(seg(2), seg(3))]),
        sack_ack(port, seg(1), &[(seg(2), seg(4))]),
        sack_ack(port, seg(1), &[(seg(2), seg(5))]),
    ]);
    let sent = b.out().into_iter().map(|s| s.r.seq).collect();
    (b, fd, port, seg, sent)
}

/// RACK's send order within one poll (`tcp_rack_sent_after`). One poll
/// takes a burst of ACKs: the first acknowledges segment 0 and lets new
/// data go, the next three SACK 2..4 above a hole at 1, and 1 is sent again,
/// after that new data and at the same instant. An RTT later the new data
/// is SACKed, and the retransmission's ACK is a moment behind. Linux's
/// clock would have stamped the retransmission later than the new data, so
/// it is not lost: it must not go a third time (it did when ties between
/// segments of one poll were broken by sequence number: a spurious
/// retransmission and a D-SACK for every hole of a burst).
#[test]
fn a_retransmission_sent_after_new_data_in_one_poll_waits_for_its_own_ack() {
    let (mut b, fd, port, seg, sent) = fast_retransmit_behind_new_data();
    let rexmit = sent.iter().position(|&s| s == seg(1)).expect("the fast retransmit");
    assert!(
        rexmit > 0 && sent[..rexmit].iter().all(|&s| s.wrapping_sub(seg(10)) as i32 >= 0),
        "new data first: {sent:?}"
    );
    let newest_before = sent[..rexmit].iter().copied().max_by_key(|s| s.wrapping_sub(seg(0))).unwrap();
    // An RTT (50 ms) later: 2 .. the new data sent before the retransmission is SACKed.
    b.at(ms(200));
    b.send(sack_ack(port, seg(1), &[(seg(2), newest_before.wrapping_add(MSS as u32))]), &[]);
    let again: Vec<u32> = b.out().into_iter().map(|s| s.r.seq).filter(|&s| s == seg(1)).collect();
    assert!(again.is_empty(), "segment 1 sent again before its retransmission could be acknowledged");
    // Its ACK comes: recovery goes on, nothing was lost twice.
    b.at(ms(200) + Duration::from_micros(100));
    b.send(hdr(PPORT, port, PISN + 1, newest_before.wrapping_add(MSS as u32), ACK, PEER_WIN), &[]);
    b.out();
    let m = b.s.snmp();
    assert_eq!((m.TcpExtTCPLostRetransmit, m.TcpRetransSegs, m.TcpExtTCPTimeouts), (0, 1, 0));
    abort(b, fd);
}

/// RACK's reordering window (`tcp_rack_reo_wnd`: a quarter of the minimum
/// RTT while fewer than `reordering` segments are SACKed): segment 1 comes
/// after 2, within the window: nothing is sent again. Had it not come, the
/// reordering timer (`tcp_rack_reo_timeout`) would have sent it after the
/// window: the second half.
#[test]
fn reordering_within_racks_window_is_not_marked_lost() {
    let (mut b, fd, port, seg, _) = ten_in_flight();
    // The first ACK 50 ms after the flight: the minimum RTT, window 12.5 ms.
    b.send(hdr(PPORT, port, PISN + 1, seg(1), ACK, PEER_WIN), &[]);
    b.send(sack_ack(port, seg(1), &[(seg(2), seg(3))]), &[]);
    b.none();
    b.at(ms(160));
    b.none();
    b.send(hdr(PPORT, port, PISN + 1, seg(3), ACK, PEER_WIN), &[]);
    b.at(ms(200));
    b.none();
    let m = b.s.snmp();
    assert_eq!((m.TcpRetransSegs, m.TcpExtTCPSackRecovery), (0, 0));
    // Now 3 is late and does not come: after the window and 2 ms, in whole jiffies
    // (`usecs_to_jiffies(12.5 ms + 2 ms)`: 15 at HZ 1000, the default), it goes again.
    b.send(sack_ack(port, seg(3), &[(seg(4), seg(5))]), &[]);
    b.none();
    b.at(ms(200) + Duration::from_micros(12_500) + ms(2));
    b.none();
    b.at(ms(215));
    let r = b.one();
    assert_eq!(r.r.seq, seg(3));
    let m = b.s.snmp();
    assert_eq!((m.TcpRetransSegs, m.TcpExtTCPSackRecovery, m.TcpExtTCPTimeouts), (1, 1, 0));
    abort(b, fd);
}

/// Data sent after recovery began (`high_seq` and beyond) is lost and sent
/// again; the cumulative ACK then reaches `high_seq` and ends that recovery
/// while the retransmission is still on its way, and what is still marked
/// lost starts the next at once (`tcp_time_to_recover`: `lost_out`). Linux
/// keeps a retransmission's `TCPCB_SACKED_RETRANS` mark from one recovery to
/// the next, so `tcp_xmit_retransmit_queue` does not send it again unless
/// RACK finds it lost.
#[test]
fn a_retransmission_still_out_when_recovery_ends_is_not_sent_again_by_the_next() {
    // 150 ms: 1 is lost: recovery, with 10 .. 13 sent before the fast retransmit (high_seq = 14).
    let (mut b, fd, port, seg, sent) = fast_retransmit_behind_new_data();
    assert_eq!(sent, [seg(10), seg(11), seg(12), seg(13), seg(1)]);
    // 151 ms: 2 .. 9 SACKed; PRR lets 14 and 15 go, past high_seq.
    b.at(ms(151));
    b.send(sack_ack(port, seg(1), &[(seg(2), seg(10))]), &[]);
    let sent: Vec<u32> = b.out().into_iter().map(|s| s.r.seq).collect();
    assert_eq!(sent, [seg(14), seg(15)]);
    // 200 ms: 1's retransmission came, 12 did not: 12 goes again (then new data, 16 .. 19).
    b.at(ms(200));
    b.send(sack_ack(port, seg(12), &[(seg(13), seg(14))]), &[]);
    let sent: Vec<u32> = b.out().into_iter().map(|s| s.r.seq).collect();
    assert_eq!(sent, [seg(12), seg(16), seg(17), seg(18), seg(19)]);
    // 201 ms: 15 came, 14 (sent before it) did not: 14 goes again, still in this recovery.
    b.at(ms(201));
    b.send(sack_ack(port, seg(12), &[(seg(13), seg(14)), (seg(15), seg(16))]), &[]);
    let sent: Vec<u32> = b.out().into_iter().map(|s| s.r.seq).collect();
    assert_eq!(sent, [seg(14), seg(20)]);
    let m = b.s.snmp();
    assert_eq!((m.TcpRetransSegs, m.TcpExtTCPSackRecovery), (3, 1));
    // 250 ms: 12's retransmission and 16 .. 19 came: snd_una = high_seq ends the recovery,
    // with 14 still marked lost, so the next one begins. 14's retransmission is on its way
    // (its ACK is due at 251 ms): it is not sent again.
    b.at(ms(250));
    b.send(sack_ack(port, seg(14), &[(seg(15), seg(20))]), &[]);
    let sent: Vec<u32> = b.out().into_iter().map(|s| s.r.seq).collect();
    assert!(!sent.contains(&seg(14)), "14 sent again while its retransmission is out: {sent:?}");
    let m = b.s.snmp();
    assert_eq!((m.TcpRetransSegs, m.TcpExtTCPSackRecovery), (3, 2));
    b.at(ms(251));
    b.send(hdr(PPORT, port, PISN + 1, seg(21), ACK, PEER_WIN), &[]);
    b.out();
    let m = b.s.snmp();
    assert_eq!((m.TcpRetransSegs, m.TcpExtTCPLostRetransmit, m.TcpExtTCPTimeouts), (3, 0, 0));
    abort(b, fd);
}

// ---------------------------------------------------------------- receive-buffer autotuning

/// A bulk sender that fills whatever window we offer, once a round trip of
/// `rtt`, and a reader that reads each segment as it comes: the windows we
/// offered at the end of each of `rounds` round trips, bytes.
fn fill_the_window_each_round_trip(b: &mut Bench, fd: Fd, iss: u32, rounds: usize, rtt: Duration) -> Vec<u32> {
    let mut off = 0u32;
    let mut right = PISN + 1 + (u32::from(OUR_WIN) << 10);
    let mut windows = Vec::new();
    let mut read = 0;
    for _ in 0..rounds {
        let now = b.elapsed() + rtt;
        b.at(now);
        // What the ACKs of the last round allowed; this round's ACKs reach
        // the sender a round trip later.
        let limit = right;
        while before_seq(PISN + 1 + off + MSS as u32, limit) {
            peer_data(b, iss, off, &[off as u8; MSS]);
            off += MSS as u32;
            for a in b.out() {
                right = a.r.ack.wrapping_add(u32::from(a.r.window) << 10);
            }
            read += read_all(b, fd).len();
        }
        windows.push(right.wrapping_sub(PISN + 1 + off));
    }
    assert_eq!(read, off as usize, "every byte read");
    windows
}

fn before_seq(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

/// The receive buffer as `ss -m` shows it (`rb`, `sk_rcvbuf`).
fn rcvbuf_of(b: &Bench, port: u16) -> u64 {
    let s = b.s.sockets().into_iter().find(|s| s.remote.is_some_and(|r| r.port() == port)).expect("the connection");
    s.skmem.rcvbuf
}

/// Linux's receive-buffer autotuning (net/ipv4/tcp_input.c: `tcp_rcv_rtt_measure`,
/// `tcp_rcv_space_adjust`, `tcp_rcvbuf_grow`): a reader that keeps up with a sender in slow
/// start gets a buffer, and a window, well past the initial 128 KiB; the receiver's RTT comes
/// from the time one window of data takes.
#[test]
fn the_receive_buffer_grows_with_what_the_reader_reads_each_round_trip() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    assert_eq!(rcvbuf_of(&b, PPORT), 131_072, "tcp_rmem[1] to begin with");
    let windows = fill_the_window_each_round_trip(&mut b, fd, iss, 6, ms(1));
    let last = *windows.last().unwrap();
    assert!(last > 1 << 20, "the window grew past 1 MiB: {windows:?}");
    let info = b.s.tcp_info(fd).unwrap();
    assert!(info.rcv_rtt_us > 0 && info.rcv_rtt_us <= 3000, "receiver RTT from one window: {info:?}");
    assert!(info.rcv_space as usize > 131_072, "a round trip read more than the first buffer: {info:?}");
    let rb = rcvbuf_of(&b, PPORT);
    assert!(rb >= u64::from(last) && rb <= 32 << 20, "sk_rcvbuf follows, under tcp_rmem[2]: {rb}");
    abort_close_and_end(&mut b, fd, l);
}

/// `SOCK_RCVBUF_LOCK`: a listener with `SO_RCVBUF` gives its connections a buffer that stays
/// as set; `tcp_moderate_rcvbuf = 0` keeps every buffer at `tcp_rmem[1]`.
#[test]
fn so_rcvbuf_or_tcp_moderate_rcvbuf_off_keeps_the_buffer() {
    for locked in [true, false] {
        let mut b = if locked { Bench::new() } else { Bench::with_config(|c| c.tcp_moderate_rcvbuf = false) };
        let l = b.s.socket(SockType::Stream).unwrap();
        if locked {
            b.s.setsockopt(l, SockOpt::RcvBuf(131_072)).unwrap();
        }
        b.s.bind(l, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, LPORT)).unwrap();
        b.s.listen(l, 16).unwrap();
        let iss = b.handshake_in(PPORT);
        let (fd, _) = b.s.accept(l).unwrap();
        let windows = fill_the_window_each_round_trip(&mut b, fd, iss, 12, ms(1));
        assert!(windows.iter().all(|&w| w <= 131_072), "locked {locked}: {windows:?}");
        assert_eq!(rcvbuf_of(&b, PPORT), 131_072, "locked {locked}");
        b.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
        b.s.close(fd).unwrap();
        b.s.close(l).unwrap();
        b.end();
    }
}

/// `tcp_rcvbuf_grow` from `tcp_data_queue_ofo` asks for room for what the
/// out-of-order queue spans, which grows by a segment with each segment
/// behind a hole. Linux's `sk_rcvbuf` is a number; xsknet's buffer is a ring
/// that is reallocated and copied to grow, so it must not grow at every
/// out-of-order segment of a loss episode (the per-segment path allocates
/// nothing but the rare growth).
#[test]
fn a_loss_episode_grows_the_ring_a_few_times_not_at_every_segment() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    fill_the_window_each_round_trip(&mut b, fd, iss, 4, ms(1));
    let start = (b.s.tcp_info(fd).unwrap().bytes_received) as u32;
    let rb0 = rcvbuf_of(&b, PPORT);
    // One segment lost, then as many behind it as the window we offer lets a sender send
    // (more than the buffer has room for beyond twice `rcvq_space`, so that the out-of-order
    // queue asks for more).
    let mut right = start.wrapping_add(b.s.tcp_info(fd).unwrap().rcv_wnd);
    let mut sizes = vec![rb0];
    let mut n = 0u32;
    while (n + 2) * MSS as u32 <= right.wrapping_sub(start) && n < 4000 {
        n += 1;
        peer_data(&mut b, iss, start + n * MSS as u32, &[n as u8; MSS]);
        for a in b.out() {
            right = a.r.ack.wrapping_sub(PISN + 1).wrapping_add(u32::from(a.r.window) << 10);
        }
        let rb = rcvbuf_of(&b, PPORT);
        if rb != *sizes.last().unwrap() {
            sizes.push(rb);
        }
    }
    assert!(n as usize * MSS > 2 * rb0 as usize / 3, "the window let {n} segments through");
    assert_eq!(b.s.snmp().TcpExtTCPOFODrop, 0, "all queued");
    assert!(sizes.len() <= 4, "{} growths in one loss episode: {:?}...", sizes.len() - 1, &sizes[..sizes.len().min(8)]);
    // The hole fills: all of it, in order.
    peer_data(&mut b, iss, start, &[0xee; MSS]);
    let _ = b.out();
    let got = read_all(&mut b, fd);
    assert_eq!(got.len(), (n as usize + 1) * MSS);
    assert!(got[..MSS].iter().all(|&x| x == 0xee));
    for k in 1..=n as usize {
        assert!(got[k * MSS..(k + 1) * MSS].iter().all(|&x| x == k as u8), "segment {k}");
    }
    abort_close_and_end(&mut b, fd, l);
}

/// What rings grow by, all connections together, stays under `tcp_mem`'s pressure threshold
/// (xsknet's bound: a grown ring is memory, Linux's `sk_rcvbuf` a limit): with a 2 MiB
/// threshold one connection's ring grows to about that and the next growth is refused and
/// counted; the ring it has keeps working, every byte read.
#[test]
fn receive_rings_grow_no_further_than_tcp_mems_pressure_threshold() {
    let limits = xsknet::ipv4::tcp::mem::TcpMemLimits { min: 256, pressure: 512, max: 8192 };
    let mut b = Bench::with_config(|c| c.tcp_mem = Some(limits));
    let (l, fd, iss) = b.accepted();
    let windows = fill_the_window_each_round_trip(&mut b, fd, iss, 8, ms(1));
    let m = b.s.snmp();
    assert!(m.XskTcpRcvbufGrown >= 1, "it grew: {windows:?}");
    assert!(m.XskTcpRcvbufGrowRefused >= 1, "then was refused: {windows:?}");
    let rb = rcvbuf_of(&b, PPORT);
    assert!(rb > 131_072 && rb - 131_072 <= 512 * 4096, "grown by at most the threshold: {rb}");
    assert!(windows.iter().all(|&w| w as u64 <= rb + 4096), "{windows:?} within {rb}");
    abort_close_and_end(&mut b, fd, l);
}

/// Receive-buffer autotuning starts from 10 segments of the MSS data actually carries:
/// `rcv_space` 14480 for a connection with timestamps (1460 - 12 = 1448, as `ss -ti` shows a
/// Linux 6.18 socket of either side), 14600 without (`tcp_init_buffer_space`; the passive side's
/// `advmss` is cut before it since 6.16).
#[test]
fn autotuning_starts_from_ten_segments_of_the_mss_data_carries() {
    let mut b = Bench::new();
    let (l, fd, _, _) = ts_accepted(&mut b);
    assert_eq!(b.s.tcp_info(fd).unwrap().rcv_space, 14_480);
    abort_close_and_end(&mut b, fd, l);
    let mut b = Bench::new();
    let (l, fd, _) = b.accepted();
    assert_eq!(b.s.tcp_info(fd).unwrap().rcv_space, 14_600);
    abort_close_and_end(&mut b, fd, l);
}

/// epoll over TCP (`fs/eventpoll.c` on `tcp_poll`): a listener is reported
/// once the handshake completes and leaves the ready list when its accept
/// queue is empty; a connection, edge-triggered, is reported when data comes
/// and not again until more happens, then with `EPOLLRDHUP` at the peer's
/// FIN; `EPOLL_CTL_MOD` to `EPOLLOUT` reports the room to send at once.
#[test]
fn epoll_reports_the_listener_then_the_data_then_the_fin() {
    let mut b = Bench::new();
    let l = b.listener(16);
    let ep = b.s.epoll_create();
    b.s.epoll_ctl(ep, EpollOp::Add, l, EpollEvent::new(EPOLLIN, 1)).unwrap();
    let mut ev = [EpollEvent::default(); 8];
    let now = Some(Duration::ZERO);
    assert_eq!(b.s.epoll_wait(ep, &mut ev, now), Ok(0));
    let iss = b.handshake_in(PPORT);
    assert_eq!(b.s.epoll_wait(ep, &mut ev, now), Ok(1));
    assert_eq!(ev[0], EpollEvent::new(EPOLLIN, 1));
    assert_eq!(b.s.epoll_wait(ep, &mut ev, now), Ok(1), "level-triggered: still there while a child waits");
    let (fd, _) = b.s.accept(l).unwrap();
    assert_eq!(b.s.epoll_wait(ep, &mut ev, now), Ok(0), "the accept queue is empty");

    b.s.epoll_ctl(ep, EpollOp::Add, fd, EpollEvent::new(EPOLLIN | EPOLLRDHUP | EPOLLET, 2)).unwrap();
    assert_eq!(b.s.epoll_wait(ep, &mut ev, now), Ok(0), "nothing to read yet");
    peer_data(&mut b, iss, 0, b"hello");
    let _ = b.out();
    assert_eq!(b.s.epoll_wait(ep, &mut ev, now), Ok(1));
    assert_eq!(ev[0], EpollEvent::new(EPOLLIN, 2));
    assert_eq!(b.s.epoll_wait(ep, &mut ev, now), Ok(0), "edge-triggered: once per wake-up, though unread");
    let mut buf = [0u8; 16];
    assert_eq!(b.s.recv(fd, &mut buf), Ok(5));
    b.send(hdr(PPORT, LPORT, PISN + 1 + 5, iss.wrapping_add(1), FIN | ACK, PEER_WIN), &[]);
    let _ = b.out();
    assert_eq!(b.s.epoll_wait(ep, &mut ev, now), Ok(1));
    assert_eq!(ev[0], EpollEvent::new(EPOLLIN | EPOLLRDHUP, 2), "the end of the stream");
    b.s.epoll_ctl(ep, EpollOp::Mod, fd, EpollEvent::new(EPOLLOUT, 3)).unwrap();
    assert_eq!(b.s.epoll_wait(ep, &mut ev, now), Ok(1));
    assert_eq!(ev[0], EpollEvent::new(EPOLLOUT, 3), "CLOSE-WAIT may still send");
    b.s.epoll_close(ep).unwrap();
    assert_eq!(b.s.epoll_wait(ep, &mut ev, now), Err(Errno::EBADF));
    abort_close_and_end(&mut b, fd, l);
}

fn ep_now(b: &mut Bench, ep: xsknet::EpollFd) -> Vec<(u32, u64)> {
    let mut ev = [EpollEvent::default(); 16];
    let n = b.s.epoll_wait(ep, &mut ev, Some(Duration::ZERO)).unwrap();
    ev[..n].iter().map(|e| (e.events, e.data)).collect()
}

/// An ACK that frees room in the send buffer is a write-space wake-up
/// (`sk_write_space`, keyed EPOLLOUT): an edge-triggered watcher of input
/// alone, its data unread, is not told EPOLLIN again.
#[test]
fn epoll_et_input_is_not_reported_again_by_an_ack() {
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    let ep = b.s.epoll_create();
    b.s.epoll_ctl(ep, EpollOp::Add, fd, EpollEvent::new(EPOLLIN | EPOLLET, 3)).unwrap();
    peer_data(&mut b, iss, 0, b"hello");
    let _ = b.out();
    assert_eq!(ep_now(&mut b, ep), vec![(EPOLLIN, 3)]);
    assert_eq!(ep_now(&mut b, ep), vec![]);
    b.s.setsockopt(fd, SockOpt::TcpNodelay(true)).unwrap();
    assert_eq!(b.s.send(fd, b"reply"), Ok(5));
    let _ = b.out();
    b.send(hdr(PPORT, LPORT, PISN + 1 + 5, iss.wrapping_add(1 + 5), ACK, PEER_WIN), &[]);
    let _ = b.out();
    assert_eq!(ep_now(&mut b, ep), vec![], "an ACK re-reported unread input");
    abort_close_and_end(&mut b, fd, l);
}

/// More of `tcp_poll`'s cases beside what Linux 6.18 reports for a kernel
/// socket in the same place (poll asked for POLLIN | POLLOUT | POLLRDHUP):
/// a connect that timed out 0x201d, then 0x2015 once SO_ERROR is read, reads
/// 0 and sends EPIPE; LAST-ACK and then CLOSE, and TIME-WAIT with the
/// descriptor still open, 0x2015; a reset with 5 bytes unread 0x201d, and
/// recv gives the bytes, then ECONNRESET, then 0; a reset in CLOSE-WAIT
/// leaves EPIPE as the error; an edge-triggered watcher is told of a reset
/// (IN|OUT|RDHUP asked: 0x201d; OUT only: 0x1c).
#[test]
fn poll_hang_up_bits_after_a_timeout_the_close_and_a_reset() {
    let all = POLLIN | POLLOUT | POLLRDHUP;
    let done = POLLIN | POLLOUT | POLLHUP | POLLRDHUP;
    let mut buf = [0u8; 64];

    let mut b = Bench::new();
    let fd = b.s.socket(SockType::Stream).unwrap();
    assert_eq!(b.s.connect(fd, SocketAddrV4::new(PEER_IP, PPORT)), Err(Errno::EINPROGRESS));
    let _ = b.one();
    assert_eq!(b.revents(fd, all), 0, "connecting");
    for t in [1u64, 2, 3, 4, 5, 7, 11, 19, 35, 67, 131] {
        b.at(secs(t));
        let _ = b.out();
    }
    assert_eq!(b.revents(fd, all), done | POLLERR, "the connect timed out");
    assert_eq!(b.s.socket_error(fd), Ok(Some(Errno::ETIMEDOUT)));
    assert_eq!(b.revents(fd, all), done);
    assert_eq!(b.s.recv(fd, &mut buf), Ok(0));
    assert_eq!(b.s.send(fd, b"x"), Err(Errno::EPIPE));
    b.s.close(fd).unwrap();
    b.end();

    // The peer's FIN, then ours: LAST-ACK, then CLOSE.
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(1), FIN | ACK, PEER_WIN), &[]);
    let _ = b.out();
    assert_eq!(b.revents(fd, all), POLLIN | POLLOUT | POLLRDHUP, "CLOSE-WAIT");
    b.s.shutdown(fd, Shutdown::Write).unwrap();
    let fin = b.one();
    assert_eq!(b.revents(fd, all), done, "LAST-ACK");
    b.send(hdr(PPORT, LPORT, PISN + 2, fin.r.seq.wrapping_add(1), ACK, PEER_WIN), &[]);
    assert_eq!(b.revents(fd, all), done, "CLOSE");
    assert_eq!((b.s.send(fd, b"x"), b.s.recv(fd, &mut buf)), (Err(Errno::EPIPE), Ok(0)));
    b.s.close(fd).unwrap();
    b.s.close(l).unwrap();
    b.end();

    // Ours first, then the peer's: TIME-WAIT, the descriptor still open.
    let mut b = Bench::new();
    let (l, fd, _) = b.accepted();
    b.s.shutdown(fd, Shutdown::Write).unwrap();
    let fin = b.one();
    b.send(hdr(PPORT, LPORT, PISN + 1, fin.r.seq.wrapping_add(1), FIN | ACK, PEER_WIN), &[]);
    let _ = b.out();
    assert_eq!(b.revents(fd, all), done, "TIME-WAIT");
    assert_eq!((b.s.recv(fd, &mut buf), b.s.send(fd, b"x")), (Ok(0), Err(Errno::EPIPE)));
    b.s.close(fd).unwrap();
    b.s.close(l).unwrap();
    b.end();

    // A reset with bytes unread: the bytes, then the error, then the end.
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    peer_data(&mut b, iss, 0, b"hello");
    let _ = b.out();
    b.send(hdr(PPORT, LPORT, PISN + 6, iss.wrapping_add(1), RST | ACK, 0), &[]);
    b.none();
    assert_eq!(b.revents(fd, all), done | POLLERR, "reset, 5 bytes unread");
    assert_eq!(b.s.recv(fd, &mut buf), Ok(5));
    assert_eq!(b.s.recv(fd, &mut buf), Err(Errno::ECONNRESET));
    assert_eq!(b.s.recv(fd, &mut buf), Ok(0));
    assert_eq!(b.revents(fd, all), done);
    b.s.close(fd).unwrap();
    b.s.close(l).unwrap();
    b.end();

    // A reset in CLOSE-WAIT: EPIPE (tcp_reset).
    let mut b = Bench::new();
    let (l, fd, iss) = b.accepted();
    b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(1), FIN | ACK, PEER_WIN), &[]);
    let _ = b.out();
    b.send(hdr(PPORT, LPORT, PISN + 2, iss.wrapping_add(1), RST | ACK, 0), &[]);
    b.none();
    assert_eq!(b.revents(fd, all), done | POLLERR, "reset in CLOSE-WAIT");
    // The FIN came first: reads end the stream (SOCK_DONE), the error stays.
    assert_eq!(b.s.recv(fd, &mut buf), Ok(0));
    assert_eq!(b.s.recv(fd, &mut buf), Ok(0));
    assert_eq!(b.s.socket_error(fd), Ok(Some(Errno::EPIPE)));
    b.s.close(fd).unwrap();
    b.s.close(l).unwrap();
    b.end();

    // Edge-triggered watchers are told of a reset.
    for (asked, told) in [(EPOLLIN | EPOLLOUT | EPOLLRDHUP, done | POLLERR), (EPOLLOUT, POLLOUT | POLLERR | POLLHUP)] {
        let mut b = Bench::new();
        let (l, fd, iss) = b.accepted();
        let ep = b.s.epoll_create();
        b.s.epoll_ctl(ep, EpollOp::Add, fd, EpollEvent::new(asked | EPOLLET, 7)).unwrap();
        assert_eq!(ep_now(&mut b, ep), [(EPOLLOUT, 7)]);
        assert_eq!(ep_now(&mut b, ep), []);
        b.send(hdr(PPORT, LPORT, PISN + 1, iss.wrapping_add(1), RST | ACK, 0), &[]);
        b.none();
        assert_eq!(ep_now(&mut b, ep), [(told as u16 as u32, 7)], "asked {asked:#x}");
        assert_eq!(ep_now(&mut b, ep), []);
        b.s.epoll_close(ep).unwrap();
        b.s.close(fd).unwrap();
        b.s.close(l).unwrap();
        b.end();
    }
}

/// `shutdown()` of a socket still connecting is `tcp_disconnect` in Linux
/// (inet_shutdown, case TCP_SYN_SENT): the attempt ends, CLOSE with
/// `sk_shutdown` 0 and `sk_err` ECONNRESET, whichever way it was shut. Linux
/// 6.18: shutdown returns 0, poll 0x1c (POLLOUT | POLLERR | POLLHUP), SO_ERROR
/// ECONNRESET, then 0x14, recv ENOTCONN, send EPIPE.
#[test]
fn shutdown_while_connecting_is_a_disconnect() {
    let all = POLLIN | POLLOUT | POLLRDHUP;
    for how in [Shutdown::Write, Shutdown::Read, Shutdown::Both] {
        let mut b = Bench::new();
        let fd = b.s.socket(SockType::Stream).unwrap();
        assert_eq!(b.s.connect(fd, SocketAddrV4::new(PEER_IP, PPORT)), Err(Errno::EINPROGRESS));
        let _ = b.one();
        assert_eq!(b.s.shutdown(fd, how), Ok(()));
        b.none();
        assert_eq!(b.revents(fd, all), POLLOUT | POLLERR | POLLHUP, "{how:?}");
        assert_eq!(b.s.socket_error(fd), Ok(Some(Errno::ECONNRESET)), "{how:?}");
        assert_eq!(b.revents(fd, all), POLLOUT | POLLHUP, "{how:?}");
        assert_eq!(b.s.recv(fd, &mut [0u8; 8]), Err(Errno::ENOTCONN), "{how:?}");
        assert_eq!(b.state(fd), TcpState::Close, "{how:?}");
        b.s.close(fd).unwrap();
        b.end();
    }
}
