//! Differential test for TCP's ICMP error handling (`tcp_v4_err`,
//! net/ipv4/tcp_ipv4.c): the same ICMP errors, quoting the same kind of
//! segment, to a Linux TCP client and to an xsknet one, and the errno each
//! application sees through the socket API.
//!
//! Linux's side (root): a kernel client in a namespace connects (with
//! `std::net`) to 10.77.0.3, an address no kernel owns; from the peer
//! namespace an `AF_PACKET` socket reads the client's SYN (or, for the
//! established cases, answers it with a SYN-ACK and reads the client's
//! data) and sends back an ICMP error quoting it, as a router on the path
//! would. xsknet's side runs the same exchange on the in-memory device
//! (no privileges). The two tables must be equal, and equal to what
//! `tcp_v4_err` says they are (the table in `ipv4/tcp/err.rs`).

mod common;

use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use xsknet::netdevice::{MemDevice, MemWire};
use xsknet::testing::{in_netns, NetNsPair, NetNsPairOptions};
use xsknet::umem::Umem;
use xsknet::wire::arp::{ArpOperation, ArpRepr};
use xsknet::wire::build;
use xsknet::wire::ethernet::{self, ethertype, EthernetAddress, EthernetRepr};
use xsknet::wire::icmp::{msg_type, IcmpRepr};
use xsknet::wire::ipv4::{protocol, Ipv4Packet};
use xsknet::wire::tcp::{flags, TcpOptions, TcpPacket, TcpRepr};
use xsknet::{Errno, SockType, Stack, StackConfig};

/// The remote end: on the subnet, owned by no kernel.
const SCRIPT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 3);
const SCRIPT_PORT: u16 = 5001;
/// The remote's ISN in the established cases.
const RISN: u32 = 0x5000_0000;

/// One case: an ICMP error, and whether it quotes the SYN (the handshake)
/// or data of an established connection.
#[derive(Clone, Copy, Debug)]
struct Case {
    name: &'static str,
    msg_type: u8,
    code: u8,
    /// Added to the quoted sequence number (non-zero: not a segment in flight).
    seq_off: u32,
    established: bool,
    /// The next-hop MTU of a fragmentation needed.
    mtu: u16,
}

const fn case(name: &'static str, msg_type: u8, code: u8) -> Case {
    Case { name, msg_type, code, seq_off: 0, established: false, mtu: 0 }
}

const CASES: &[Case] = &[
    case("SYN: port unreachable", msg_type::DEST_UNREACH, 3),
    case("SYN: host unreachable", msg_type::DEST_UNREACH, 1),
    case("SYN: net unreachable", msg_type::DEST_UNREACH, 0),
    case("SYN: protocol unreachable", msg_type::DEST_UNREACH, 2),
    case("SYN: administratively filtered", msg_type::DEST_UNREACH, 13),
    case("SYN: time exceeded", msg_type::TIME_EXCEEDED, 0),
    case("SYN: parameter problem", msg_type::PARAMETER_PROBLEM, 0),
    Case { seq_off: 1000, ..case("SYN: port unreachable, sequence out of window", msg_type::DEST_UNREACH, 3) },
    Case { established: true, ..case("data: host unreachable", msg_type::DEST_UNREACH, 1) },
    Case { established: true, ..case("data: port unreachable", msg_type::DEST_UNREACH, 3) },
    Case { established: true, mtu: 600, ..case("data: fragmentation needed, MTU 600", msg_type::DEST_UNREACH, 4) },
];

/// What the application saw, and what went on the wire after the ICMP.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Outcome {
    /// The handshake: connect's errno (`None`: still trying when the test
    /// stopped waiting). Established: `SO_ERROR` read twice.
    errors: Vec<Option<i32>>,
    /// Payload lengths of the data segments sent after the ICMP.
    resent: Vec<usize>,
}

/// What `tcp_v4_err` does with each case: the errno of `icmp_err_convert`
/// (or `EHOSTUNREACH` for a time exceeded, `EPROTO` for a parameter
/// problem) ending the handshake; `sk_err_soft` on a connection, read once
/// by `SO_ERROR`; a fragmentation needed lowers the MSS to 600 - 40 and
/// sends the data again in segments of that size.
fn expected(c: &Case) -> Outcome {
    let e = |e: Errno| Some(e.0);
    let errors = match (c.name, c.established) {
        (_, false) if c.seq_off != 0 => vec![None],
        (_, false) => vec![match (c.msg_type, c.code) {
            (msg_type::DEST_UNREACH, 3) => e(Errno::ECONNREFUSED),
            (msg_type::DEST_UNREACH, 1 | 13) | (msg_type::TIME_EXCEEDED, _) => e(Errno::EHOSTUNREACH),
            (msg_type::DEST_UNREACH, 0) => e(Errno::ENETUNREACH),
            (msg_type::DEST_UNREACH, 2) => e(Errno::ENOPROTOOPT),
            (msg_type::PARAMETER_PROBLEM, _) => e(Errno::EPROTO),
            _ => None,
        }],
        (_, true) if c.mtu != 0 => vec![None, None],
        (_, true) if c.code == 1 => vec![e(Errno::EHOSTUNREACH), None],
        (_, true) => vec![e(Errno::ECONNREFUSED), None],
    };
    let resent = if c.mtu != 0 { vec![560, 440] } else { vec![] };
    Outcome { errors, resent }
}

/// The ICMP error `c` quoting `quoted` (an IPv4 packet we received), with
/// its TCP sequence number moved by `c.seq_off`: the IP header and the first
/// 8 bytes of TCP, as `icmp_send` quotes (RFC 792), from 10.77.0.3.
fn icmp_error(c: &Case, quoted: &[u8]) -> Vec<u8> {
    let ip = Ipv4Packet::new_unchecked(quoted);
    let hl = ip.header_len();
    let mut body = quoted[..hl + 8].to_vec();
    let seq = u32::from_be_bytes([body[hl + 4], body[hl + 5], body[hl + 6], body[hl + 7]]).wrapping_add(c.seq_off);
    body[hl + 4..hl + 8].copy_from_slice(&seq.to_be_bytes());
    let mtu = c.mtu.to_be_bytes();
    let repr = IcmpRepr { msg_type: c.msg_type, code: c.code, rest: [0, 0, mtu[0], mtu[1]] };
    build::icmp(&repr, &body)
}

/// A SYN-ACK answering `syn` (MSS 1460, no other option), window 64240.
fn syn_ack(syn: &TcpRepr) -> TcpRepr {
    TcpRepr {
        src_port: syn.dst_port,
        dst_port: syn.src_port,
        seq: RISN,
        ack: syn.seq.wrapping_add(1),
        flags: flags::SYN | flags::ACK,
        window: 64240,
        options: TcpOptions { mss: Some(1460), ..TcpOptions::default() },
        ..TcpRepr::default()
    }
}

// ---------------------------------------------------------------- xsknet

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

/// xsknet on the in-memory device, on virtual time.
struct Mem {
    s: Stack<MemDevice>,
    w: MemWire,
    now: Instant,
}

impl Mem {
    fn new() -> Mem {
        let (umem, pool) = Umem::new(256, 2048).unwrap();
        let umem = Arc::new(umem);
        let dev = MemDevice::new(umem.clone(), 128, 128);
        let w = dev.wire();
        let s = Stack::new(dev, umem, Arc::new(pool), StackConfig::new(OUR_MAC, OUR_IP, 24));
        let mut m = Mem { s, w, now: Instant::now() };
        // The remote asks for us first, so both sides know each other.
        let repr = ArpRepr {
            operation: ArpOperation::Request,
            sender_hw: PEER_MAC,
            sender_ip: SCRIPT_ADDR,
            target_hw: EthernetAddress::default(),
            target_ip: OUR_IP,
        };
        let eth = EthernetRepr { dst: EthernetAddress::BROADCAST, src: PEER_MAC, ethertype: ethertype::ARP };
        m.w.inject(&build::arp_frame(&eth, &repr));
        m.s.poll(m.now);
        m.w.take_transmitted();
        m
    }

    /// The IPv4 packets we sent since the last call.
    fn sent(&mut self) -> Vec<Vec<u8>> {
        self.s.poll(self.now);
        self.w
            .take_transmitted()
            .into_iter()
            .filter(|f| u16::from_be_bytes([f[12], f[13]]) == ethertype::IPV4)
            .map(|f| f[ethernet::HEADER_LEN..].to_vec())
            .collect()
    }

    fn inject_ip(&mut self, proto: u8, payload: &[u8]) {
        let eth = EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::IPV4 };
        let ip = build::ipv4_repr(SCRIPT_ADDR, OUR_IP, proto, 0x4242);
        assert!(self.w.inject(&build::ipv4_frame(&eth, &ip, payload)));
        self.s.poll(self.now);
    }
}

fn tcp_of(ip: &[u8]) -> (TcpRepr, usize) {
    let p = Ipv4Packet::new_unchecked(ip);
    let t = TcpPacket::new_unchecked(&ip[p.header_len()..p.total_len()]);
    (TcpRepr::parse(&t), t.payload().len())
}

fn run_xsknet(c: &Case) -> Outcome {
    let mut m = Mem::new();
    let fd = m.s.socket(SockType::Stream).unwrap();
    assert_eq!(m.s.connect(fd, SocketAddrV4::new(SCRIPT_ADDR, SCRIPT_PORT)), Err(Errno::EINPROGRESS));
    let syn_ip = m.sent().pop().expect("a SYN");
    let (syn, _) = tcp_of(&syn_ip);
    let mut quoted = syn_ip;
    if c.established {
        let sa = syn_ack(&syn);
        m.inject_ip(protocol::TCP, &build::tcp(SCRIPT_ADDR, OUR_IP, &sa, &[]));
        m.sent();
        assert_eq!(m.s.socket_error(fd), Ok(None));
        assert_eq!(m.s.send(fd, &pattern(1000)), Ok(1000));
        quoted = m.sent().into_iter().find(|ip| tcp_of(ip).1 == 1000).expect("the data");
    }
    let before = m.s.snmp();
    m.inject_ip(protocol::ICMP, &icmp_error(c, &quoted));
    let resent: Vec<usize> = m.sent().iter().map(|ip| tcp_of(ip).1).filter(|&n| n > 0).collect();
    let after = m.s.snmp();
    // Linux counts tcp_simple_retransmit's segments as retransmissions in Loss.
    assert_eq!(after.TcpRetransSegs - before.TcpRetransSegs, resent.len() as u64, "{}", c.name);
    assert_eq!(after.TcpExtTCPSlowStartRetrans - before.TcpExtTCPSlowStartRetrans, resent.len() as u64, "{}", c.name);
    assert_eq!(after.TcpExtTCPFastRetrans, before.TcpExtTCPFastRetrans, "{}", c.name);
    assert_eq!(after.TcpExtOutOfWindowIcmps - before.TcpExtOutOfWindowIcmps, u64::from(c.seq_off != 0), "{}", c.name);
    let fails = u64::from(!c.established && c.seq_off == 0);
    assert_eq!(after.TcpAttemptFails - before.TcpAttemptFails, fails, "{}", c.name);
    if c.mtu != 0 {
        assert_eq!(m.s.tcp_info(fd).unwrap().snd_mss, 560, "tcp_sync_mss");
    }
    let errors = if c.established {
        vec![m.s.socket_error(fd).unwrap().map(|e| e.0), m.s.socket_error(fd).unwrap().map(|e| e.0)]
    } else {
        vec![m.s.socket_error(fd).unwrap().map(|e| e.0)]
    };
    Outcome { errors, resent }
}

#[test]
fn xsknet_tcp_acts_on_icmp_errors_as_tcp_v4_err() {
    for c in CASES {
        assert_eq!(run_xsknet(c), expected(c), "{}", c.name);
    }
}

/// `tcp_write_err`: a connection that times out after an ICMP error left
/// `sk_err_soft` fails with that error, not `ETIMEDOUT`; an ACK of new data
/// clears it first ("something worked", `tcp_ack`). And RFC 6069
/// (`tcp_ld_RTO_revert`): a host unreachable for the segment being
/// retransmitted undoes one backoff step, so the next retransmission comes
/// one RTO after the last instead of two.
#[test]
fn a_soft_error_is_what_a_timeout_reports_and_an_unreachable_reverts_the_backoff() {
    let mut m = Mem::new();
    let t0 = m.now;
    let fd = m.s.socket(SockType::Stream).unwrap();
    assert_eq!(m.s.connect(fd, SocketAddrV4::new(SCRIPT_ADDR, SCRIPT_PORT)), Err(Errno::EINPROGRESS));
    let (syn, _) = tcp_of(&m.sent().pop().unwrap());
    m.inject_ip(protocol::TCP, &build::tcp(SCRIPT_ADDR, OUR_IP, &syn_ack(&syn), &[]));
    m.sent();
    assert_eq!(m.s.send(fd, &pattern(100)), Ok(100));
    let data = m.sent().pop().unwrap();
    let (d, _) = tcp_of(&data);
    let unreach = Case { established: true, ..case("host unreachable", msg_type::DEST_UNREACH, 1) };
    // An ICMP, then the peer ACKs the data: the soft error is gone.
    m.inject_ip(protocol::ICMP, &icmp_error(&unreach, &data));
    let ack = TcpRepr {
        src_port: SCRIPT_PORT,
        dst_port: d.src_port,
        seq: RISN + 1,
        ack: d.seq.wrapping_add(100),
        flags: flags::ACK,
        window: 502,
        ..TcpRepr::default()
    };
    m.inject_ip(protocol::TCP, &build::tcp(SCRIPT_ADDR, OUR_IP, &ack, &[]));
    assert_eq!(m.s.socket_error(fd), Ok(None), "an ACK of new data clears sk_err_soft");
    // New data, never acknowledged: retransmitted at RTO, 2 RTO, ...
    assert_eq!(m.s.send(fd, &pattern(100)), Ok(100));
    let data = m.sent().pop().unwrap();
    let rto = Duration::from_micros(u64::from(m.s.tcp_info(fd).unwrap().rto_us));
    let sent_at = m.now;
    let mut times = Vec::new();
    let step = |m: &mut Mem, until: Duration| -> Vec<Duration> {
        let mut got = Vec::new();
        while m.now - sent_at < until {
            m.now += Duration::from_millis(1);
            got.extend(m.sent().iter().filter(|ip| tcp_of(ip).1 == 100).map(|_| m.now - sent_at));
        }
        got
    };
    // The clock moves in steps of 1 ms: a deadline is seen in the step after it.
    times.extend(step(&mut m, rto + Duration::from_millis(2)));
    assert_eq!(times.len(), 1, "the first retransmission");
    assert!(times[0] >= rto && times[0] < rto + Duration::from_millis(2), "{times:?}");
    // The host unreachable for it: one backoff step undone, the next comes
    // one RTO after the last, not two.
    m.inject_ip(protocol::ICMP, &icmp_error(&unreach, &data));
    times.extend(step(&mut m, 2 * rto + Duration::from_millis(5)));
    assert_eq!(times.len(), 2, "tcp_ld_RTO_revert: {times:?}");
    assert!(times[1] - times[0] >= rto && times[1] - times[0] < rto + Duration::from_millis(2), "{times:?}");
    // No further answer: the connection gives up (tcp_retries2) with the
    // ICMP's error in place of ETIMEDOUT.
    m.now += Duration::from_millis(1);
    let deadline = m.now + Duration::from_secs(1200);
    while m.s.tcp_info(fd).is_ok_and(|i| i.state != xsknet::TcpState::Close) && m.now < deadline {
        m.now += Duration::from_millis(500);
        m.sent();
    }
    assert!(m.now - t0 > Duration::from_secs(100), "after retries, not at once");
    let mut buf = [0u8; 16];
    assert_eq!(m.s.recv(fd, &mut buf), Err(Errno::EHOSTUNREACH));
}

/// After a fragmentation needed with MTU 600 about one connection, the MSS
/// a new connection to the same host offers in its SYN (`tcp_connect_init`:
/// `dst_metric_advmss` of a route whose MTU is the learnt path MTU).
fn syn_mss_after_frag_needed_xsknet() -> Option<u16> {
    let mut m = Mem::new();
    learn_path_mtu_600(&mut m);
    let fd2 = m.s.socket(SockType::Stream).unwrap();
    assert_eq!(m.s.connect(fd2, SocketAddrV4::new(SCRIPT_ADDR, SCRIPT_PORT + 1)), Err(Errno::EINPROGRESS));
    m.sent().iter().map(|ip| tcp_of(ip).0).find(|t| t.dst_port == SCRIPT_PORT + 1).and_then(|t| t.options.mss)
}

/// A connection to `SCRIPT_ADDR` gets a fragmentation needed with MTU 600:
/// the path MTU to that host is 600.
fn learn_path_mtu_600(m: &mut Mem) {
    let fd = m.s.socket(SockType::Stream).unwrap();
    assert_eq!(m.s.connect(fd, SocketAddrV4::new(SCRIPT_ADDR, SCRIPT_PORT)), Err(Errno::EINPROGRESS));
    let (syn, _) = tcp_of(&m.sent().pop().unwrap());
    m.inject_ip(protocol::TCP, &build::tcp(SCRIPT_ADDR, OUR_IP, &syn_ack(&syn), &[]));
    m.sent();
    assert_eq!(m.s.send(fd, &pattern(1000)), Ok(1000));
    let data = m.sent().pop().unwrap();
    let frag = Case { established: true, mtu: 600, ..case("fragmentation needed", msg_type::DEST_UNREACH, 4) };
    m.inject_ip(protocol::ICMP, &icmp_error(&frag, &data));
    m.sent();
    assert_eq!(m.s.tcp_info(fd).unwrap().snd_mss, 560);
}

/// After a path MTU of 600 to `SCRIPT_ADDR` was learnt, a listener's
/// SYN-ACK to that host: its MSS option (`tcp_make_synack`:
/// `dst_metric_advmss` of the route `inet_csk_route_req` finds, whose MTU is
/// the path MTU) and window (`tcp_openreq_init_rwin`: a multiple of that
/// MSS), and the child's sending MSS (`tcp_v4_syn_recv_sock` →
/// `tcp_sync_mss`).
fn synack_after_frag_needed_xsknet() -> (Option<u16>, u16, u32) {
    let mut m = Mem::new();
    learn_path_mtu_600(&mut m);
    let l = m.s.socket(SockType::Stream).unwrap();
    m.s.bind(l, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    m.s.listen(l, 16).unwrap();
    m.inject_ip(protocol::TCP, &build::tcp(SCRIPT_ADDR, OUR_IP, &req_syn(), &[]));
    let (sa, _) = tcp_of(&m.sent().pop().expect("SYN-ACK"));
    m.inject_ip(protocol::TCP, &build::tcp(SCRIPT_ADDR, OUR_IP, &req_ack(&sa), &[]));
    m.sent();
    let (child, _) = m.s.accept(l).expect("the child");
    (sa.options.mss, sa.window, m.s.tcp_info(child).unwrap().snd_mss)
}

#[test]
fn a_syn_ack_offers_the_mss_of_the_learnt_path_mtu() {
    assert_eq!(synack_after_frag_needed_xsknet(), (Some(560), 65520, 560));
}

#[test]
fn a_new_connection_offers_the_mss_of_the_learnt_path_mtu() {
    assert_eq!(syn_mss_after_frag_needed_xsknet(), Some(560));
}

/// `tcp_req_err`: an ICMP error about a request sock's SYN-ACK. Another
/// sequence number than our ISN is `OutOfWindowIcmps`; a host unreachable
/// with it drops the request silently (`ListenDrops`), so the final ACK
/// that follows finds none and is answered with a reset, as Linux's.
fn run_req_err_xsknet() -> (u64, u64, u8) {
    let mut m = Mem::new();
    let l = m.s.socket(SockType::Stream).unwrap();
    m.s.bind(l, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    m.s.listen(l, 16).unwrap();
    let syn = req_syn();
    m.inject_ip(protocol::TCP, &build::tcp(SCRIPT_ADDR, OUR_IP, &syn, &[]));
    let synack_ip = m.sent().pop().expect("SYN-ACK");
    let before = m.s.snmp();
    let unreach = case("host unreachable", msg_type::DEST_UNREACH, 1);
    m.inject_ip(protocol::ICMP, &icmp_error(&Case { seq_off: 1, ..unreach }, &synack_ip));
    m.inject_ip(protocol::ICMP, &icmp_error(&unreach, &synack_ip));
    let after = m.s.snmp();
    let (sa, _) = tcp_of(&synack_ip);
    m.inject_ip(protocol::TCP, &build::tcp(SCRIPT_ADDR, OUR_IP, &req_ack(&sa), &[]));
    let reply = m.sent().pop().map_or(0, |ip| tcp_of(&ip).0.flags);
    (
        after.TcpExtOutOfWindowIcmps - before.TcpExtOutOfWindowIcmps,
        after.TcpExtListenDrops - before.TcpExtListenDrops,
        reply,
    )
}

fn req_syn() -> TcpRepr {
    TcpRepr {
        src_port: SCRIPT_PORT,
        dst_port: 7,
        seq: RISN,
        flags: flags::SYN,
        window: 64240,
        options: TcpOptions { mss: Some(1460), ..TcpOptions::default() },
        ..TcpRepr::default()
    }
}

fn req_ack(synack: &TcpRepr) -> TcpRepr {
    TcpRepr {
        src_port: SCRIPT_PORT,
        dst_port: 7,
        seq: RISN + 1,
        ack: synack.seq.wrapping_add(1),
        flags: flags::ACK,
        window: 502,
        ..TcpRepr::default()
    }
}

// ---------------------------------------------------------------- Linux

/// An `AF_PACKET` socket in the peer namespace, on its veth.
struct Raw {
    fd: OwnedFd,
    ifindex: i32,
    mac: [u8; 6],
    server_mac: [u8; 6],
}

impl Raw {
    fn open(pair: &NetNsPair) -> Raw {
        let ifname = pair.peer_ifname().to_owned();
        let (fd, ifindex) = packet_socket(pair.peer_ns(), &ifname, libc::ETH_P_ALL as u16);
        Raw { fd, ifindex, mac: pair.peer_mac(), server_mac: pair.mac() }
    }

    fn send_ip(&self, proto: u8, payload: &[u8]) {
        let ip = ipv4_packet(SCRIPT_ADDR, SERVER_ADDR, proto, 0x4242, &[], payload);
        let frame = eth_frame(self.server_mac, self.mac, ethertype::IPV4, &ip);
        packet_send(&self.fd, self.ifindex, &frame);
    }

    /// TCP packets (whole IPv4 packets) from the server's `port` to
    /// 10.77.0.3 within `window`, or until `want` says enough.
    fn collect(&self, window: Duration, port: u16, want: impl Fn(&[Vec<u8>]) -> bool) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !want(&got) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: `pfd` is one live pollfd and 1 is the count passed.
            if unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) } <= 0 {
                continue;
            }
            // SAFETY: `fd` is a valid socket and `buf` is live and writable for its length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < ethernet::HEADER_LEN as isize || u16::from_be_bytes([buf[12], buf[13]]) != ethertype::IPV4 {
                continue;
            }
            let l3 = &buf[ethernet::HEADER_LEN..n as usize];
            let Ok(ip) = Ipv4Packet::new_checked(l3) else { continue };
            if ip.src_addr() == SERVER_ADDR && ip.dst_addr() == SCRIPT_ADDR && ip.protocol() == protocol::TCP {
                let pkt = l3[..ip.total_len()].to_vec();
                if tcp_of(&pkt).0.src_port == port {
                    got.push(pkt);
                }
            }
        }
        got
    }
}

fn run_linux(pair: &NetNsPair, raw: &Raw, c: &Case, port: u16) -> Outcome {
    let ns = pair.ns().to_owned();
    let dst = std::net::SocketAddr::from((SCRIPT_ADDR, SCRIPT_PORT));
    let established = c.established;
    std::thread::scope(|s| {
        let client = s.spawn(move || {
            in_netns(&ns, || {
                // A fixed source port per case, so that nothing stale matches.
                let sock = socket2_bind(port);
                let r = sock.and_then(|fd| connect_fd(fd, dst, Duration::from_millis(1500)));
                match r {
                    // 0: still connecting when the wait ended.
                    Err(e) => vec![e.raw_os_error().filter(|&e| e != 0)],
                    Ok(mut stream) if established => {
                        use std::io::Write;
                        stream.write_all(&pattern(1000)).unwrap();
                        std::thread::sleep(Duration::from_millis(600));
                        let so_error = || stream.take_error().unwrap().and_then(|e| e.raw_os_error());
                        vec![so_error(), so_error()]
                    }
                    Ok(_) => vec![None],
                }
            })
        });
        let syn_ip = raw.collect(Duration::from_secs(2), port, |g| !g.is_empty()).pop().expect("the kernel's SYN");
        let (syn, _) = tcp_of(&syn_ip);
        let mut quoted = syn_ip;
        if c.established {
            raw.send_ip(protocol::TCP, &build::tcp(SCRIPT_ADDR, SERVER_ADDR, &syn_ack(&syn), &[]));
            let got = raw.collect(Duration::from_secs(2), port, |g| g.iter().any(|ip| tcp_of(ip).1 == 1000));
            quoted = got.into_iter().find(|ip| tcp_of(ip).1 == 1000).expect("the kernel's data");
        }
        // Let the client's connect() or write() return first: an ICMP error that finds the
        // socket owned by a system call (`sock_owned_by_user`) is only a soft error in
        // tcp_v4_err, so a SYN's port unreachable would leave the connect waiting.
        std::thread::sleep(Duration::from_millis(20));
        raw.send_ip(protocol::ICMP, &icmp_error(c, &quoted));
        // Shorter than the 200 ms RTO: only what the ICMP made the kernel send.
        let resent = raw
            .collect(Duration::from_millis(100), port, |_| false)
            .iter()
            .map(|ip| tcp_of(ip).1)
            .filter(|&n| n > 0)
            .collect();
        let errors = client.join().expect("client");
        Outcome { errors, resent }
    })
}

/// A TCP socket bound to 10.77.0.2:`port`.
fn socket2_bind(port: u16) -> std::io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; returns a new descriptor or -1.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(SERVER_ADDR).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a live sockaddr_in and its exact size is passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// `connect()` on `fd`, waiting at most `timeout`: the stream, or the
/// errno the kernel gave (`SO_ERROR` once the socket is writable, as
/// `connect_timeout` reads it), or errno 0 when it is still connecting.
fn connect_fd(fd: OwnedFd, dst: std::net::SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let stream = TcpStream::from(fd);
    stream.set_nonblocking(true)?;
    let std::net::SocketAddr::V4(v4) = dst else { unreachable!() };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: `addr` is a live sockaddr_in and its exact size is passed.
    let rc = unsafe {
        libc::connect(
            stream.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if rc != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINPROGRESS) {
        return Err(std::io::Error::last_os_error());
    }
    // Until the socket is writable or failed, or the time is up; a signal that interrupts
    // poll (EINTR) is not an answer: poll again for what is left of the wait.
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut pfd = libc::pollfd { fd: stream.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
        // SAFETY: `pfd` is one live pollfd and 1 is the count passed.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
        if n > 0 {
            break;
        }
        if n == 0 {
            return Err(std::io::Error::from_raw_os_error(0));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// [`run_req_err_xsknet`] against a Linux listener.
fn run_req_err_linux(pair: &NetNsPair, raw: &Raw) -> ((u64, u64, u8), (Option<u16>, u16)) {
    let listener = in_netns(pair.ns(), || std::net::TcpListener::bind((SERVER_ADDR, 7)).expect("listen"));
    raw.send_ip(protocol::TCP, &build::tcp(SCRIPT_ADDR, SERVER_ADDR, &req_syn(), &[]));
    let synack_ip = raw.collect(Duration::from_secs(2), 7, |g| !g.is_empty()).pop().expect("SYN-ACK");
    let before = kernel_counters(pair.ns());
    let unreach = case("host unreachable", msg_type::DEST_UNREACH, 1);
    raw.send_ip(protocol::ICMP, &icmp_error(&Case { seq_off: 1, ..unreach }, &synack_ip));
    raw.send_ip(protocol::ICMP, &icmp_error(&unreach, &synack_ip));
    std::thread::sleep(Duration::from_millis(50));
    let after = kernel_counters(pair.ns());
    let (sa, _) = tcp_of(&synack_ip);
    raw.send_ip(protocol::TCP, &build::tcp(SCRIPT_ADDR, SERVER_ADDR, &req_ack(&sa), &[]));
    let reply = raw.collect(Duration::from_millis(300), 7, |g| !g.is_empty()).pop().map_or(0, |ip| tcp_of(&ip).0.flags);
    drop(listener);
    let d = |k: &str| (after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0)) as u64;
    ((d("TcpExtOutOfWindowIcmps"), d("TcpExtListenDrops"), reply), (sa.options.mss, sa.window))
}

#[test]
fn tcp_acts_on_icmp_errors_as_linux() {
    if !xsknet::testing::require_root("tcp_acts_on_icmp_errors_as_linux") {
        return;
    }
    let pair = NetNsPair::with_options(&NetNsPairOptions {
        addr: Some((SERVER_ADDR, PREFIX)),
        peer_addr: Some((PEER_ADDR, PREFIX)),
        ipv6: false,
        ..NetNsPairOptions::default()
    })
    .expect("netns pair");
    // The kernel client knows 10.77.0.3 at the peer's MAC, and segments in
    // software (no TSO on a veth without checksum offload), as xsknet does.
    let mac = xsknet::testing::format_mac(pair.peer_mac());
    let out = pair.run(&[
        "ip",
        "neigh",
        "replace",
        &SCRIPT_ADDR.to_string(),
        "lladdr",
        &mac,
        "dev",
        pair.ifname(),
        "nud",
        "permanent",
    ]);
    assert!(out.status.success(), "ip neigh: {}", String::from_utf8_lossy(&out.stderr));
    let out = pair.run(&["ethtool", "-K", pair.ifname(), "tx", "off"]);
    assert!(out.status.success(), "ethtool: {}", String::from_utf8_lossy(&out.stderr));
    let raw = Raw::open(&pair);
    let mut differ = Vec::new();
    for (i, c) in CASES.iter().enumerate() {
        let before = kernel_counters(pair.ns());
        let linux = run_linux(&pair, &raw, c, 40000 + i as u16);
        let after = kernel_counters(pair.ns());
        let d = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
        let xsk = run_xsknet(c);
        eprintln!(
            "{:<50} linux {:?} (TcpAttemptFails {}, OutOfWindowIcmps {}), xsknet {:?}",
            c.name,
            linux,
            d("TcpAttemptFails"),
            d("TcpExtOutOfWindowIcmps"),
            xsk
        );
        // The same counters as run_xsknet checks.
        assert_eq!(d("TcpExtOutOfWindowIcmps"), i64::from(c.seq_off != 0), "{}", c.name);
        assert_eq!(d("TcpAttemptFails"), i64::from(!c.established && c.seq_off == 0), "{}", c.name);
        if linux != xsk || linux != expected(c) {
            differ.push(c.name);
        }
    }
    // The frag-needed case left a path MTU of 600 to 10.77.0.3: a new
    // connection's SYN offers 560.
    let linux_mss = {
        let ns = pair.ns().to_owned();
        std::thread::scope(|sc| {
            let client = sc.spawn(move || {
                in_netns(&ns, || {
                    let dst = std::net::SocketAddr::from((SCRIPT_ADDR, SCRIPT_PORT + 1));
                    let _ = socket2_bind(40100).and_then(|fd| connect_fd(fd, dst, Duration::from_millis(300)));
                })
            });
            let syn = raw.collect(Duration::from_secs(2), 40100, |g| !g.is_empty()).pop().expect("the kernel's SYN");
            client.join().expect("client");
            tcp_of(&syn).0.options.mss
        })
    };
    let xsk_mss = syn_mss_after_frag_needed_xsknet();
    eprintln!("SYN's MSS after a path MTU of 600: linux {linux_mss:?}, xsknet {xsk_mss:?}");
    if linux_mss != xsk_mss || xsk_mss != Some(560) {
        differ.push("the MSS of a new connection after a fragmentation needed");
    }
    // The listener's SYN-ACK to that host offers 560 too, its window a
    // multiple of it.
    let (linux, linux_synack) = run_req_err_linux(&pair, &raw);
    let (xsk_mss, xsk_win, _) = synack_after_frag_needed_xsknet();
    eprintln!(
        "SYN-ACK's MSS and window after a path MTU of 600: linux {linux_synack:?}, xsknet {:?}",
        (xsk_mss, xsk_win)
    );
    if linux_synack != (xsk_mss, xsk_win) || xsk_mss != Some(560) {
        differ.push("the SYN-ACK's MSS after a fragmentation needed");
    }
    let xsk = run_req_err_xsknet();
    eprintln!("request sock: linux {linux:?}, xsknet {xsk:?} (OutOfWindowIcmps, ListenDrops, reply flags)");
    if linux != xsk || xsk != (1, 1, flags::RST) {
        differ.push("a request sock's ICMP errors");
    }
    assert!(differ.is_empty(), "differ from Linux: {differ:?}");
}

#[test]
fn xsknet_drops_a_request_sock_on_an_icmp_error_as_tcp_req_err() {
    assert_eq!(run_req_err_xsknet(), (1, 1, flags::RST));
}
