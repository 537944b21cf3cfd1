//! The whole softirq path over the in-memory device: no kernel, no root.
//! Frames are built with the wire module, injected as the NIC would deliver
//! them, and what the stack transmits is parsed back and checked.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xsknet::netdevice::{MemDevice, MemWire};
use xsknet::umem::Umem;
use xsknet::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use xsknet::wire::ethernet::{ethertype, EthernetFrame, EthernetRepr, HEADER_LEN as ETH_LEN};
use xsknet::wire::icmp::{self, msg_type, IcmpPacket, IcmpRepr};
use xsknet::wire::ipv4::{self, protocol, Ipv4Packet, Ipv4Repr};
use xsknet::wire::udp::{UdpPacket, UdpRepr};
use xsknet::wire::{build, EthernetAddress};
use xsknet::{Errno, Fd, SockType, Stack, StackConfig, ThreadedStack};

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const FRAMES: u32 = 256;

fn stack_with(cfg: impl FnOnce(&mut StackConfig)) -> (Stack<MemDevice>, MemWire) {
    let (umem, pool) = Umem::new(FRAMES, 2048).unwrap();
    let umem = Arc::new(umem);
    let dev = MemDevice::new(umem.clone(), 64, 64);
    let wire = dev.wire();
    let mut c = StackConfig::new(OUR_MAC, OUR_IP, 24);
    cfg(&mut c);
    (Stack::new(dev, umem, Arc::new(pool), c), wire)
}

fn stack() -> (Stack<MemDevice>, MemWire) {
    stack_with(|_| {})
}

fn eth(dst: EthernetAddress, ty: u16, payload: &[u8]) -> Vec<u8> {
    build::ethernet(&EthernetRepr { dst, src: PEER_MAC, ethertype: ty }, payload)
}

/// The peer's IPv4 header: DF, TTL 64, ident 0x1234.
fn peer_ip(proto: u8) -> Ipv4Repr {
    build::ipv4_repr(PEER_IP, OUR_IP, proto, 0x1234)
}

fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
    build::ipv4(&peer_ip(proto), payload)
}

fn udp_datagram(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    build::udp(PEER_IP, OUR_IP, &UdpRepr { src_port: sport, dst_port: dport, payload_len: 0 }, payload)
}

fn udp_frame(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let eth = EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::IPV4 };
    build::udp_frame(
        &eth,
        &peer_ip(protocol::UDP),
        &UdpRepr { src_port: sport, dst_port: dport, payload_len: 0 },
        payload,
    )
}

fn echo_request(id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let eth = EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::IPV4 };
    build::icmp_frame(&eth, &peer_ip(protocol::ICMP), &IcmpRepr::echo(msg_type::ECHO_REQUEST, id, seq), data)
}

fn arp(op: ArpOperation, dst: EthernetAddress, target_hw: EthernetAddress) -> Vec<u8> {
    let repr = ArpRepr { operation: op, sender_hw: PEER_MAC, sender_ip: PEER_IP, target_hw, target_ip: OUR_IP };
    build::arp_frame(&EthernetRepr { dst, src: PEER_MAC, ethertype: ethertype::ARP }, &repr)
}

fn parse_eth(frame: &[u8]) -> EthernetRepr {
    EthernetRepr::parse(&EthernetFrame::new_unchecked(frame)).unwrap()
}

fn parse_arp(frame: &[u8]) -> ArpRepr {
    ArpRepr::parse(&ArpPacket::new_unchecked(&frame[ETH_LEN..])).unwrap()
}

fn icmp_check(msg: &[u8]) -> Result<IcmpRepr, icmp::IcmpError> {
    IcmpRepr::parse(&IcmpPacket::new_unchecked(msg))
}

/// The peer asks for us, so both sides know each other.
fn learn_peer(s: &mut Stack<MemDevice>, w: &MemWire) {
    w.inject(&arp(ArpOperation::Request, EthernetAddress::BROADCAST, EthernetAddress::default()));
    s.poll(Instant::now());
    let out = w.take_transmitted();
    assert_eq!(out.len(), 1, "one ARP reply");
}

fn poll_n(s: &mut Stack<MemDevice>, n: usize) {
    for _ in 0..n {
        s.poll(Instant::now());
    }
}

fn assert_census(s: &Stack<MemDevice>) {
    let c = s.frame_census();
    assert_eq!(c.accounted(), c.total, "frames lost or duplicated: {c:?}");
}

/// Parses a transmitted IPv4 frame: Ethernet header, IP header, payload.
fn parse_ip(frame: &[u8]) -> (EthernetRepr, Ipv4Repr, Vec<u8>) {
    let e = parse_eth(frame);
    assert_eq!(e.ethertype, ethertype::IPV4);
    let packet = Ipv4Packet::new_unchecked(&frame[ETH_LEN..]);
    let ip = Ipv4Repr::parse(&packet).expect("valid IP header out");
    (e, ip, packet.payload().to_vec())
}

#[test]
fn arp_request_for_us_is_answered_and_teaches_the_neighbour() {
    let (mut s, w) = stack();
    w.inject(&arp(ArpOperation::Request, EthernetAddress::BROADCAST, EthernetAddress::default()));
    s.poll(Instant::now());
    let out = w.take_transmitted();
    assert_eq!(out.len(), 1);
    let e = parse_eth(&out[0]);
    assert_eq!((e.dst, e.src, e.ethertype), (PEER_MAC, OUR_MAC, ethertype::ARP));
    let a = parse_arp(&out[0]);
    assert_eq!(a.operation, ArpOperation::Reply);
    assert_eq!((a.sender_hw, a.sender_ip, a.target_hw, a.target_ip), (OUR_MAC, OUR_IP, PEER_MAC, PEER_IP));
    let m = s.snmp();
    assert_eq!((m.XskArpInRequests, m.XskArpOutReplies), (1, 1));
    // Having learnt the peer, a ping is answered without asking.
    w.inject(&echo_request(7, 1, b"abc"));
    s.poll(Instant::now());
    assert_eq!(w.take_transmitted().len(), 1);
    assert_eq!(s.snmp().XskArpOutRequests, 0);
    assert_census(&s);
}

#[test]
fn ping_waits_for_arp_then_the_reply_goes_out() {
    let (mut s, w) = stack();
    let data: Vec<u8> = (0..56).collect();
    w.inject(&echo_request(0x0b1f, 1, &data));
    s.poll(Instant::now());
    let out = w.take_transmitted();
    assert_eq!(out.len(), 1, "an ARP request, the reply waits");
    let e = parse_eth(&out[0]);
    assert_eq!((e.dst, e.ethertype), (EthernetAddress::BROADCAST, ethertype::ARP));
    let a = parse_arp(&out[0]);
    assert_eq!((a.operation, a.target_ip), (ArpOperation::Request, PEER_IP));
    assert_eq!(s.frame_census().awaiting_neighbour, 1);

    w.inject(&arp(ArpOperation::Reply, OUR_MAC, OUR_MAC));
    s.poll(Instant::now());
    let out = w.take_transmitted();
    assert_eq!(out.len(), 1);
    let (e, ip, msg) = parse_ip(&out[0]);
    assert_eq!((e.dst, e.src), (PEER_MAC, OUR_MAC));
    assert_eq!((ip.src, ip.dst, ip.protocol, ip.ttl), (OUR_IP, PEER_IP, protocol::ICMP, 64));
    let h = icmp_check(&msg).expect("valid ICMP checksum");
    assert_eq!((h.msg_type, h.echo_ident(), h.echo_seq()), (msg_type::ECHO_REPLY, 0x0b1f, 1));
    assert_eq!(&msg[8..], &data[..]);
    let m = s.snmp();
    assert_eq!((m.IcmpInEchos, m.IcmpOutEchoReps, m.IcmpMsgOutType0, m.IpOutRequests), (1, 1, 1, 1));
    assert_census(&s);
}

#[test]
fn udp_is_delivered_read_and_echoed() {
    let (mut s, w) = stack();
    learn_peer(&mut s, &w);
    let fd = s.socket(SockType::Dgram).unwrap();
    s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    for size in [0usize, 1, 18, 64, 511, 1472] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
        w.inject(&udp_frame(40000, 7, &payload));
        s.poll(Instant::now());
        let mut buf = [0u8; 2048];
        let (n, peer) = s.recv_from(fd, &mut buf).unwrap();
        assert_eq!(&buf[..n], &payload[..]);
        assert_eq!(peer, SocketAddrV4::new(PEER_IP, 40000));
        assert_eq!(s.recv_from(fd, &mut buf), Err(Errno::EAGAIN));
        assert_eq!(s.send_to(fd, &buf[..n], peer), Ok(n));
        s.poll(Instant::now());
        let out = w.take_transmitted();
        assert_eq!(out.len(), 1);
        let (e, ip, seg) = parse_ip(&out[0]);
        assert_eq!(e.dst, PEER_MAC);
        assert_eq!((ip.src, ip.dst), (OUR_IP, PEER_IP));
        let packet = UdpPacket::new_unchecked(&seg[..]);
        let uh = UdpRepr::parse(&packet).unwrap();
        assert_eq!((uh.src_port, uh.dst_port), (7, 40000));
        assert!(packet.verify_checksum(ip.src, ip.dst));
        assert_ne!(packet.checksum(), 0);
        assert_eq!(&seg[8..], &payload[..]);
    }
    let m = s.snmp();
    assert_eq!((m.UdpInDatagrams, m.UdpOutDatagrams, m.IpInDelivers), (6, 6, 6));
    assert_census(&s);
}

/// A reply the application queued after a poll leaves at the start of the
/// next poll, before that poll's receive work; what the receive work answers
/// leaves in the same poll. Two kicks at most, one when only one step sent.
#[test]
fn queued_replies_leave_before_the_receive_work() {
    let (mut s, w) = stack();
    learn_peer(&mut s, &w);
    let fd = s.socket(SockType::Dgram).unwrap();
    s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    w.inject(&udp_frame(40000, 7, b"ping"));
    s.poll(Instant::now());
    let mut buf = [0u8; 64];
    let (n, peer) = s.recv_from(fd, &mut buf).unwrap();
    s.send_to(fd, &buf[..n], peer).unwrap();
    // Before the next poll, an echo request arrives.
    w.inject(&echo_request(1, 1, b"x"));
    let kicks = s.snmp().XskTxKicks;
    s.poll(Instant::now());
    let out = w.take_transmitted();
    let protocols: Vec<u8> = out.iter().map(|f| parse_ip(f).1.protocol).collect();
    assert_eq!(protocols, [protocol::UDP, protocol::ICMP], "the queued reply first");
    assert_eq!(s.snmp().XskTxKicks - kicks, 2);
    // Only the application's reply: one kick.
    s.send_to(fd, b"again", peer).unwrap();
    s.poll(Instant::now());
    assert_eq!(w.take_transmitted().len(), 1);
    assert_eq!(s.snmp().XskTxKicks - kicks, 3);
    assert_census(&s);
}

#[test]
fn closed_port_gets_port_unreachable_quoting_the_datagram() {
    let (mut s, w) = stack();
    learn_peer(&mut s, &w);
    let frame = udp_frame(40000, 9, b"anyone there?");
    w.inject(&frame);
    s.poll(Instant::now());
    let out = w.take_transmitted();
    assert_eq!(out.len(), 1);
    let (_, ip, msg) = parse_ip(&out[0]);
    assert_eq!((ip.protocol, ip.dst, ip.tos), (protocol::ICMP, PEER_IP, 0xc0));
    let h = icmp_check(&msg).unwrap();
    assert_eq!((h.msg_type, h.code), (msg_type::DEST_UNREACH, icmp::unreach_code::PORT));
    assert_eq!(&msg[8..], &frame[ETH_LEN..], "quotes the whole offending datagram");
    let m = s.snmp();
    assert_eq!((m.UdpNoPorts, m.IcmpOutDestUnreachs, m.IcmpOutMsgs, m.IpInDelivers), (1, 1, 1, 1));
    assert_census(&s);
}

#[test]
fn port_unreachable_is_rate_limited_per_host() {
    let (mut s, w) = stack();
    learn_peer(&mut s, &w);
    for _ in 0..10 {
        w.inject(&udp_frame(40000, 9, b"x"));
        s.poll(Instant::now());
    }
    let m = s.snmp();
    assert_eq!(m.UdpNoPorts, 10);
    // inet_peer_xrlim_allow: a burst of 6 (unless the sysctls here say otherwise).
    assert_eq!(m.IcmpOutDestUnreachs + m.IcmpOutRateLimitHost + m.IcmpOutRateLimitGlobal, 10);
    assert!(m.IcmpOutDestUnreachs <= 6, "{m:?}");
    assert_eq!(w.take_transmitted().len() as u64, m.IcmpOutDestUnreachs);
}

/// Each malformed frame is dropped and counted under the name Linux uses.
#[test]
fn every_rejection_is_counted_by_reason() {
    let good = ipv4(protocol::UDP, &udp_datagram(40000, 7, b"hello"));
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut p = good.clone();
        f(&mut p);
        eth(OUR_MAC, ethertype::IPV4, &p)
    };
    let fix_ip_csum = |p: &mut Vec<u8>| {
        p[10] = 0;
        p[11] = 0;
        let c = xsknet::wire::checksum::checksum(&p[..(p[0] & 0xf) as usize * 4]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    };
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("runt", vec![0u8; 10], &["XskRxRunts"]),
        (
            "other host",
            {
                let mut f = udp_frame(40000, 7, b"x");
                f[0] = 0x04;
                f
            },
            &["XskRxOtherHost"],
        ),
        ("ipv6 ethertype", eth(OUR_MAC, ethertype::IPV6, &[0u8; 40]), &["XskRxNoHandler"]),
        (
            "ip bad checksum",
            with(&|p| p[10] ^= 0xff),
            &["IpInReceives", "IpInHdrErrors", "IpExtInCsumErrors", "IpExtInNoECTPkts"],
        ),
        (
            "ip version 6",
            with(&|p| {
                p[0] = 0x65;
                fix_ip_csum(p)
            }),
            &["IpInReceives", "IpInHdrErrors"],
        ),
        (
            "ihl 4",
            with(&|p| {
                p[0] = 0x44;
            }),
            &["IpInReceives", "IpInHdrErrors"],
        ),
        (
            "truncated",
            with(&|p| {
                p[2..4].copy_from_slice(&200u16.to_be_bytes());
                fix_ip_csum(p)
            }),
            &["IpInReceives", "IpExtInTruncatedPkts", "IpExtInNoECTPkts"],
        ),
        (
            "total < ihl",
            with(&|p| {
                p[2..4].copy_from_slice(&16u16.to_be_bytes());
                fix_ip_csum(p)
            }),
            &["IpInReceives", "IpInHdrErrors", "IpExtInNoECTPkts"],
        ),
        (
            "wrong destination",
            with(&|p| {
                p[19] = 99;
                fix_ip_csum(p)
            }),
            &["IpInReceives", "IpInAddrErrors", "IpExtInNoECTPkts"],
        ),
        (
            "broadcast source",
            with(&|p| {
                p[12..16].copy_from_slice(&[255; 4]);
                fix_ip_csum(p)
            }),
            &["IpInReceives", "XskIpInMartianSrc", "IpExtInNoECTPkts"],
        ),
        (
            "fragment",
            with(&|p| {
                p[6] = 0x20;
                fix_ip_csum(p)
            }),
            // A first fragment: held for reassembly (ip_defrag), nothing more counted yet.
            &["IpInReceives", "IpReasmReqds", "IpExtInNoECTPkts"],
        ),
        (
            "udp bad checksum, bound port",
            with(&|p| p[27] ^= 0x01),
            &["IpInReceives", "IpInDelivers", "UdpInErrors", "UdpInCsumErrors", "IpExtInNoECTPkts"],
        ),
        (
            "udp bad checksum, closed port: the same csum_error path, no port unreachable",
            {
                let mut f = udp_frame(40000, 9, b"hello");
                let last = f.len() - 1;
                f[last] ^= 0x01;
                f
            },
            &["IpInReceives", "IpInDelivers", "UdpInErrors", "UdpInCsumErrors", "IpExtInNoECTPkts"],
        ),
        (
            "CE mark and a bad header checksum: ECN is counted before the checksum",
            with(&|p| {
                Ipv4Packet::new_unchecked(&mut p[..]).set_ecn(ipv4::ecn::CE);
                p[10] ^= 0xff;
            }),
            &["IpInReceives", "IpInHdrErrors", "IpExtInCsumErrors", "IpExtInCEPkts"],
        ),
        (
            "ECT(1) with IHL 4: no ECN count before the version and IHL check",
            with(&|p| {
                Ipv4Packet::new_unchecked(&mut p[..]).set_ecn(ipv4::ecn::ECT1);
                p[0] = 0x44;
                fix_ip_csum(p)
            }),
            &["IpInReceives", "IpInHdrErrors"],
        ),
        (
            "udp length beyond payload",
            with(&|p| p[24..26].copy_from_slice(&100u16.to_be_bytes())),
            &["IpInReceives", "IpInDelivers", "UdpInErrors", "IpExtInNoECTPkts"],
        ),
        (
            "udp length below 8",
            with(&|p| p[24..26].copy_from_slice(&4u16.to_be_bytes())),
            &["IpInReceives", "IpInDelivers", "UdpInErrors", "IpExtInNoECTPkts"],
        ),
        (
            "icmp bad checksum",
            {
                let mut f = echo_request(1, 1, b"x");
                let last = f.len() - 1;
                f[last] ^= 0xff;
                f
            },
            &["IpInReceives", "IpInDelivers", "IcmpInMsgs", "IcmpInErrors", "IcmpInCsumErrors", "IpExtInNoECTPkts"],
        ),
        (
            "arp for hardware type 7",
            {
                let mut f = arp(ArpOperation::Request, EthernetAddress::BROADCAST, EthernetAddress::default());
                f[ETH_LEN + 1] = 7;
                f
            },
            &["XskArpInErrors"],
        ),
    ];
    for (name, frame, expect) in cases {
        let (mut s, w) = stack();
        let fd = s.socket(SockType::Dgram).unwrap();
        s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
        w.inject(&frame);
        s.poll(Instant::now());
        let m = s.snmp();
        let nonzero: Vec<&str> =
            m.iter().filter(|(n, v)| *v != 0 && *n != "XskRxFrames" && *n != "IpExtInOctets").map(|(n, _)| n).collect();
        let mut want: Vec<&str> = expect.to_vec();
        want.sort();
        let mut got = nonzero.clone();
        got.sort();
        assert_eq!(got, want, "case {name}");
        assert!(w.take_transmitted().is_empty(), "case {name}: nothing is sent");
        let mut buf = [0u8; 64];
        assert_eq!(s.recv_from(fd, &mut buf), Err(Errno::EAGAIN), "case {name}: nothing delivered");
        assert_census(&s);
    }
}

#[test]
fn udp_checksum_zero_and_ip_options_are_accepted() {
    let (mut s, w) = stack();
    let fd = s.socket(SockType::Dgram).unwrap();
    s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    let mut d = udp_datagram(1, 7, b"no checksum");
    d[6] = 0;
    d[7] = 0;
    w.inject(&eth(OUR_MAC, ethertype::IPV4, &ipv4(protocol::UDP, &d)));
    // IHL 6 with a NOP/EOL option word.
    let d = udp_datagram(2, 7, b"options");
    let ip = Ipv4Repr { ident: 1, dont_fragment: false, ..peer_ip(protocol::UDP) };
    let p = build::ipv4_with_options(&ip, &[1, 1, 1, 0], &d);
    assert_eq!((p[0], Ipv4Packet::new_checked(&p[..]).map(|v| v.header_len())), (0x46, Ok(24)));
    w.inject(&eth(OUR_MAC, ethertype::IPV4, &p));
    // A short datagram in a padded 60-byte frame.
    let mut f = udp_frame(3, 7, b"hi");
    f.resize(60, 0);
    w.inject(&f);
    s.poll(Instant::now());
    let mut buf = [0u8; 64];
    let got: Vec<Vec<u8>> = (0..3)
        .map(|_| {
            let (n, _) = s.recv_from(fd, &mut buf).unwrap();
            buf[..n].to_vec()
        })
        .collect();
    assert_eq!(got, vec![b"no checksum".to_vec(), b"options".to_vec(), b"hi".to_vec()]);
}

#[test]
fn unknown_protocol_gets_protocol_unreachable() {
    let (mut s, w) = stack();
    learn_peer(&mut s, &w);
    w.inject(&eth(OUR_MAC, ethertype::IPV4, &ipv4(253, b"what is this")));
    s.poll(Instant::now());
    let out = w.take_transmitted();
    assert_eq!(out.len(), 1);
    let (_, _, msg) = parse_ip(&out[0]);
    let h = icmp_check(&msg).unwrap();
    assert_eq!((h.msg_type, h.code), (msg_type::DEST_UNREACH, icmp::unreach_code::PROTOCOL));
    let m = s.snmp();
    assert_eq!((m.IpInUnknownProtos, m.IpInDelivers), (1, 0));
}

#[test]
fn rcvbuf_overflow_is_a_counted_drop() {
    // Four frames' worth of receive buffer.
    let (mut s, w) = stack_with(|c| c.rcvbuf = 4 * 2048);
    let fd = s.socket(SockType::Dgram).unwrap();
    s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    for i in 0..10u8 {
        w.inject(&udp_frame(40000, 7, &[i]));
    }
    s.poll(Instant::now());
    let m = s.snmp();
    assert_eq!((m.UdpRcvbufErrors, m.UdpInErrors), (6, 6));
    assert_eq!(s.frame_census().in_socks, 4);
    let mut buf = [0u8; 8];
    for i in 0..4u8 {
        let (n, _) = s.recv_from(fd, &mut buf).unwrap();
        assert_eq!(&buf[..n], &[i], "the oldest first");
    }
    assert_eq!(s.snmp().UdpInDatagrams, 4);
    assert_census(&s);
}

#[test]
fn emfile_at_the_descriptor_limit() {
    let (mut s, _w) = stack_with(|c| c.max_fds = 16);
    let fds: Vec<_> = (0..16).map(|_| s.socket(SockType::Dgram).unwrap()).collect();
    assert_eq!(fds, (0..16).map(Fd).collect::<Vec<_>>());
    let e = s.socket(SockType::Dgram).unwrap_err();
    assert_eq!(e, Errno::EMFILE);
    assert_eq!(e.to_string(), "Too many open files");
    s.close(Fd(3)).unwrap();
    assert_eq!(s.socket(SockType::Dgram), Ok(Fd(3)), "lowest free descriptor first");
    assert_eq!(s.close(Fd(99)), Err(Errno::EBADF));
}

#[test]
fn bind_errors_match_linux() {
    let (mut s, _w) = stack();
    let a = s.socket(SockType::Dgram).unwrap();
    let b = s.socket(SockType::Dgram).unwrap();
    s.bind(a, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5000)).unwrap();
    assert_eq!(s.bind(b, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5000)), Err(Errno::EADDRINUSE));
    assert_eq!(s.bind(a, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5001)), Err(Errno::EINVAL), "already bound");
    assert_eq!(s.bind(b, SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 9), 5001)), Err(Errno::EADDRNOTAVAIL));
    s.bind(b, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    let port = s.local_addr(b).unwrap().port();
    assert!((32768..=60999).contains(&port), "ephemeral port {port}");
    // After close the port is free again.
    s.close(a).unwrap();
    let c = s.socket(SockType::Dgram).unwrap();
    s.bind(c, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5000)).unwrap();
}

#[test]
fn send_errors() {
    let (mut s, _w) = stack();
    let fd = s.socket(SockType::Dgram).unwrap();
    let peer = SocketAddrV4::new(PEER_IP, 9);
    // Past the largest IP datagram (ip_fragment sends anything smaller).
    assert_eq!(s.send_to(fd, &[0u8; 65508], peer), Err(Errno::EMSGSIZE));
    assert_eq!(s.send_to(fd, b"x", SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 9)), Err(Errno::ENETUNREACH));
    assert_eq!(s.snmp().IpOutNoRoutes, 1, "udp_sendmsg counts the failed route lookup");
    assert_eq!(s.send_to(fd, b"x", SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 255), 9)), Err(Errno::EACCES));
    assert_eq!(s.send_to(fd, b"x", SocketAddrV4::new(Ipv4Addr::BROADCAST, 9)), Err(Errno::EACCES));
    assert_eq!(s.send(fd, b"x"), Err(Errno::EDESTADDRREQ));
    // Autobind on first send.
    assert_eq!(s.send_to(fd, b"x", peer), Ok(1));
    assert!(s.local_addr(fd).unwrap().port() >= 32768);
}

#[test]
fn sndbuf_full_is_eagain_and_drains() {
    let (mut s, w) = stack_with(|c| c.sndbuf = 2 * 2048);
    learn_peer(&mut s, &w);
    let fd = s.socket(SockType::Dgram).unwrap();
    let peer = SocketAddrV4::new(PEER_IP, 9);
    assert_eq!(s.send_to(fd, b"1", peer), Ok(1));
    assert_eq!(s.send_to(fd, b"2", peer), Ok(1));
    assert_eq!(s.send_to(fd, b"3", peer), Err(Errno::EAGAIN));
    s.poll(Instant::now());
    assert_eq!(s.send_to(fd, b"3", peer), Ok(1));
    s.poll(Instant::now());
    assert_eq!(w.take_transmitted().len(), 3);
    assert_census(&s);
}

#[test]
fn connected_socket_gets_econnrefused_from_port_unreachable() {
    let (mut s, w) = stack();
    learn_peer(&mut s, &w);
    let fd = s.socket(SockType::Dgram).unwrap();
    let peer = SocketAddrV4::new(PEER_IP, 9);
    s.connect(fd, peer).unwrap();
    s.send(fd, b"knock").unwrap();
    s.poll(Instant::now());
    let out = w.take_transmitted();
    assert_eq!(out.len(), 1);
    // The peer answers with port unreachable quoting our datagram.
    let quoted = &out[0][ETH_LEN..];
    let mut m = vec![0u8; 8 + quoted.len()];
    let n = IcmpRepr::dest_unreachable(icmp::unreach_code::PORT).emit_quoting(&mut m, quoted);
    w.inject(&eth(OUR_MAC, ethertype::IPV4, &ipv4(protocol::ICMP, &m[..n])));
    s.poll(Instant::now());
    let mut buf = [0u8; 8];
    assert_eq!(s.recv_from(fd, &mut buf), Err(Errno::ECONNREFUSED));
    assert_eq!(s.recv_from(fd, &mut buf), Err(Errno::EAGAIN), "reported once");
    assert_eq!(s.snmp().IcmpInDestUnreachs, 1);
}

/// An ICMP message of `msg_type`/`code`, its 4 bytes of header `rest` and `body`, with its checksum.
fn icmp_message(msg_type: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut m = vec![msg_type, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(body);
    IcmpPacket::new_unchecked(&mut m[..]).fill_checksum();
    m
}

/// `__udp4_lib_err` without IP_RECVERR: only a fatal error reaches a connected
/// socket (`icmp_err_convert`: protocol unreachable is ENOPROTOOPT, a parameter
/// problem EPROTO); host unreachable and time exceeded change nothing. Each
/// type is counted as Linux's `Icmp` line counts it.
#[test]
fn icmp_errors_reach_a_connected_socket_as_linux_reports_them() {
    let (mut s, w) = stack();
    learn_peer(&mut s, &w);
    let fd = s.socket(SockType::Dgram).unwrap();
    s.connect(fd, SocketAddrV4::new(PEER_IP, 9)).unwrap();
    s.send(fd, b"knock").unwrap();
    s.poll(Instant::now());
    let out = w.take_transmitted();
    let quoted = out[0][ETH_LEN..].to_vec();
    let mut buf = [0u8; 8];
    let cases: [(u8, u8, Option<Errno>); 5] = [
        (msg_type::DEST_UNREACH, 1, None),
        (msg_type::TIME_EXCEEDED, 0, None),
        (msg_type::SOURCE_QUENCH, 0, None),
        (msg_type::DEST_UNREACH, 2, Some(Errno::ENOPROTOOPT)),
        (msg_type::PARAMETER_PROBLEM, 0, Some(Errno::EPROTO)),
    ];
    for (t, code, want) in cases {
        w.inject(&eth(OUR_MAC, ethertype::IPV4, &ipv4(protocol::ICMP, &icmp_message(t, code, [0; 4], &quoted))));
        s.poll(Instant::now());
        assert_eq!(s.recv_from(fd, &mut buf), Err(want.unwrap_or(Errno::EAGAIN)), "type {t} code {code}");
    }
    let m = s.snmp();
    assert_eq!((m.IcmpInDestUnreachs, m.IcmpInTimeExcds, m.IcmpInSrcQuenchs, m.IcmpInParmProbs), (2, 1, 1, 1));
    assert_eq!((m.IcmpMsgInType3, m.IcmpMsgInType4, m.IcmpMsgInType11, m.IcmpMsgInType12), (2, 1, 1, 1));
    assert_eq!((m.IcmpInMsgs, m.IcmpInErrors), (5, 0));
    assert_census(&s);
}

/// `icmp_unreach` wants a whole IP header (IHL at least 5) and
/// `icmp_socket_deliver` 8 bytes past it; `icmp_redirect` the same. Short
/// quotes are `IcmpInErrors`, except for a destination unreachable with a
/// code past `NR_ICMP_UNREACH`, which is never delivered. So is a whole
/// quote of a datagram no socket of ours sent (`__udp4_lib_err`,
/// `tcp_v4_err` find none); one our socket on port 7 sent is not.
#[test]
fn icmp_error_with_a_short_quote_is_an_input_error() {
    let (mut s, w) = stack();
    learn_peer(&mut s, &w);
    let fd = s.socket(SockType::Dgram).unwrap();
    s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    let sent = |proto: u8, sport: u16| {
        let l4 = match proto {
            protocol::UDP => {
                build::udp(OUR_IP, PEER_IP, &UdpRepr { src_port: sport, dst_port: 9, payload_len: 0 }, b"")
            }
            _ => [sport.to_be_bytes(), 9u16.to_be_bytes(), [0, 0], [0, 1]].concat(),
        };
        build::ipv4(&build::ipv4_repr(OUR_IP, PEER_IP, proto, 1), &l4)
    };
    let ours = sent(protocol::UDP, 7);
    let nobodys = sent(protocol::UDP, 4444);
    let tcp = sent(protocol::TCP, 4444);
    let cases: [(u8, u8, &[u8], u64); 10] = [
        (msg_type::TIME_EXCEEDED, 0, &ours[..20], 1),
        (msg_type::TIME_EXCEEDED, 0, &ours[..27], 1),
        (msg_type::TIME_EXCEEDED, 0, &ours[..28], 0),
        (msg_type::PARAMETER_PROBLEM, 0, &ours[..19], 1),
        (msg_type::DEST_UNREACH, 3, &ours[..24], 1),
        (msg_type::DEST_UNREACH, 16, &ours[..24], 0),
        (msg_type::REDIRECT, 0, &ours[..12], 1),
        (msg_type::DEST_UNREACH, 3, &nobodys[..28], 1),
        (msg_type::REDIRECT, 1, &nobodys[..28], 1),
        (msg_type::DEST_UNREACH, 3, &tcp[..28], 1),
    ];
    for (i, (t, code, quote, errors)) in cases.into_iter().enumerate() {
        let before = s.snmp().IcmpInErrors;
        w.inject(&eth(OUR_MAC, ethertype::IPV4, &ipv4(protocol::ICMP, &icmp_message(t, code, [0; 4], quote))));
        s.poll(Instant::now());
        assert_eq!(s.snmp().IcmpInErrors - before, errors, "case {i}: type {t} code {code}, {} bytes", quote.len());
    }
    let m = s.snmp();
    assert_eq!((m.IcmpInRedirects, m.IcmpMsgInType5, m.IcmpInMsgs), (2, 2, 10));
    assert_census(&s);
}

/// `icmp_timestamp` (RFC 792): a 20-byte timestamp reply with the request's
/// identifier, sequence number and originate timestamp, and the receive and
/// transmit timestamps in milliseconds since midnight UTC; a request without
/// an originate timestamp is an input error.
#[test]
fn timestamp_request_is_answered_as_linux_does() {
    let (mut s, w) = stack();
    learn_peer(&mut s, &w);
    let request = icmp_message(
        msg_type::TIMESTAMP,
        0,
        [0x12, 0x34, 0x00, 0x07],
        &[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    w.inject(&eth(OUR_MAC, ethertype::IPV4, &ipv4(protocol::ICMP, &request)));
    s.poll(Instant::now());
    let out = w.take_transmitted();
    assert_eq!(out.len(), 1, "one reply");
    let ip = Ipv4Packet::new_checked(&out[0][ETH_LEN..]).unwrap();
    assert_eq!((ip.protocol(), ip.dst_addr()), (protocol::ICMP, PEER_IP));
    let reply = ip.payload();
    assert_eq!(reply.len(), 20);
    assert_eq!(&reply[..2], &[msg_type::TIMESTAMP_REPLY, 0]);
    assert_eq!(&reply[4..12], &[0x12, 0x34, 0x00, 0x07, 0xde, 0xad, 0xbe, 0xef], "id, sequence, originate");
    let ms = u32::from_be_bytes(reply[12..16].try_into().unwrap());
    assert!(ms < 86_400_000, "milliseconds since midnight: {ms}");
    assert_eq!(reply[12..16], reply[16..20], "receive = transmit");
    assert!(IcmpPacket::new_checked(reply).is_ok_and(|p| p.verify_checksum()), "checksum");
    let m = s.snmp();
    assert_eq!((m.IcmpInTimestamps, m.IcmpMsgInType13, m.IcmpOutTimestampReps, m.IcmpMsgOutType14), (1, 1, 1, 1));

    let short = icmp_message(msg_type::TIMESTAMP, 0, [0; 4], &[1, 2, 3]);
    w.inject(&eth(OUR_MAC, ethertype::IPV4, &ipv4(protocol::ICMP, &short)));
    s.poll(Instant::now());
    assert!(w.take_transmitted().is_empty());
    assert_eq!((s.snmp().IcmpInTimestamps, s.snmp().IcmpInErrors), (2, 1));
    assert_census(&s);
}

#[test]
fn close_returns_every_frame_the_sock_held() {
    let (mut s, w) = stack();
    let fd = s.socket(SockType::Dgram).unwrap();
    s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    for i in 0..20u8 {
        w.inject(&udp_frame(40000, 7, &[i; 100]));
    }
    poll_n(&mut s, 2);
    assert_eq!(s.frame_census().in_socks, 20);
    s.close(fd).unwrap();
    assert_eq!(s.frame_census().in_socks, 0);
    assert_census(&s);
    assert_eq!(s.open_fds(), 0);
}

#[test]
fn fill_ring_is_kept_full_and_empty_fill_ring_drops_are_counted() {
    let (mut s, w) = stack_with(|c| c.rcvbuf = 1 << 30);
    let fd = s.socket(SockType::Dgram).unwrap();
    s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    use xsknet::netdevice::NetDevice;
    assert_eq!(s.device().fill_room(), 0, "filled at start");
    // Never read: the sock holds frames until the UMEM runs dry, and the
    // device then drops on an empty fill ring, counted.
    let mut delivered = 0;
    for _ in 0..(FRAMES as usize * 2) {
        if w.inject(&udp_frame(40000, 7, b"x")) {
            delivered += 1;
        }
        s.poll(Instant::now());
    }
    assert!(delivered < FRAMES as usize * 2);
    assert!(w.stats().rx_fill_ring_empty_descs > 0);
    assert_census(&s);
    // Reading gives the frames back and the fill ring fills again.
    let mut buf = [0u8; 8];
    while s.recv_from(fd, &mut buf).is_ok() {}
    s.poll(Instant::now());
    assert_eq!(s.device().fill_room(), 0);
    assert_census(&s);
}

/// The fill ring is topped up at the start of the poll after the one that
/// received, once the replies have gone: the poll that receives does not read
/// the ring's consumer index between a frame's arrival and its delivery.
#[test]
fn the_fill_ring_is_topped_up_in_the_poll_after_the_one_that_received() {
    let (mut s, w) = stack_with(|_| {});
    let fd = s.socket(SockType::Dgram).unwrap();
    s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    use xsknet::netdevice::NetDevice;
    assert_eq!(s.device().fill_room(), 0, "filled at start");
    assert!(w.inject(&udp_frame(40000, 7, b"one")));
    assert!(w.inject(&udp_frame(40000, 7, b"two")));
    let r = s.poll(Instant::now());
    assert_eq!(r.rx, 2);
    assert_eq!(s.device().fill_room(), 2, "not in the poll that received");
    let mut buf = [0u8; 8];
    assert_eq!(s.recv_from(fd, &mut buf).unwrap().0, 3);
    s.poll(Instant::now());
    assert_eq!(s.device().fill_room(), 0, "the next poll tops it up");
    // Idle polls leave it alone; it stays full.
    for _ in 0..2000 {
        s.poll(Instant::now());
    }
    assert_eq!(s.device().fill_room(), 0);
    assert_census(&s);
}

/// A deterministic random mix of good and bad traffic, reads and sends:
/// after every step each frame is in exactly one place.
#[test]
fn frame_census_holds_through_mixed_traffic() {
    let (mut s, w) = stack_with(|c| c.rcvbuf = 16 * 2048);
    learn_peer(&mut s, &w);
    let fd = s.socket(SockType::Dgram).unwrap();
    s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    let mut seed: u64 = 0x2545F4914F6CDD1D;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut buf = [0u8; 2048];
    for _ in 0..5000 {
        match rand() % 9 {
            0 | 1 => {
                let n = (rand() % 1400) as usize;
                w.inject(&udp_frame(40000, 7, &vec![1u8; n]));
            }
            2 => {
                w.inject(&udp_frame(40000, (rand() % 20) as u16, b"maybe closed"));
            }
            3 => {
                let mut f = udp_frame(40000, 7, b"corrupt me");
                let i = (rand() as usize) % f.len();
                f[i] ^= 1 << (rand() % 8);
                w.inject(&f);
            }
            4 => {
                w.inject(&echo_request(1, rand() as u16, b"ping"));
            }
            5 => {
                if let Ok((n, peer)) = s.recv_from(fd, &mut buf) {
                    let _ = s.send_to(fd, &buf[..n], peer);
                }
            }
            6 => {
                let _ = w.take_transmitted();
            }
            7 => {
                let f = udp_frame(40000, 7, b"x");
                w.inject(&f[..(rand() as usize) % f.len()]);
            }
            _ => {
                s.poll(Instant::now());
            }
        }
        assert_census(&s);
    }
    s.close(fd).unwrap();
    poll_n(&mut s, 3);
    let _ = w.take_transmitted();
    poll_n(&mut s, 3);
    s.release_backlog();
    let c = s.frame_census();
    assert_eq!(c.in_socks + c.awaiting_neighbour + c.tx_backlog, 0);
    assert_census(&s);
}

#[test]
fn threaded_reader_blocks_and_is_woken_by_the_loop() {
    let (s, w) = stack();
    let t = ThreadedStack::spawn(s).unwrap();
    let h = t.handle();
    let fd = h.socket(SockType::Dgram).unwrap();
    h.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    // Nothing yet: times out.
    let mut buf = [0u8; 64];
    assert_eq!(h.recv_from(fd, &mut buf, Some(Duration::from_millis(20))), Err(Errno::EAGAIN));
    let w2 = w.clone();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        w2.inject(&arp(ArpOperation::Request, EthernetAddress::BROADCAST, EthernetAddress::default()));
        w2.inject(&udp_frame(40000, 7, b"wake up"));
    });
    let (n, peer) = h.recv_from(fd, &mut buf, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(&buf[..n], b"wake up");
    sender.join().unwrap();
    h.send_to(fd, b"awake", peer).unwrap();
    let mut out = Vec::new();
    for _ in 0..500 {
        out.extend(w.take_transmitted());
        if out.len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(out.len(), 2, "ARP reply and the datagram");
    let snap = h.snapshot().unwrap();
    assert_eq!((snap.mib.UdpInDatagrams, snap.mib.UdpOutDatagrams), (1, 1));
    h.close(fd).unwrap();
    let (s, _) = t.stop().unwrap();
    assert_census(&s);
}

#[test]
fn threaded_poll_reports_readiness() {
    use xsknet::socket::{PollFd, POLLIN, POLLOUT};
    let (s, w) = stack();
    let t = ThreadedStack::spawn(s).unwrap();
    let h = t.handle();
    let a = h.socket(SockType::Dgram).unwrap();
    let b = h.socket(SockType::Dgram).unwrap();
    h.bind(a, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    h.bind(b, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 8)).unwrap();
    let mut fds = [PollFd::new(a, POLLIN), PollFd::new(b, POLLIN)];
    assert_eq!(h.poll(&mut fds, Some(Duration::from_millis(10))), 0);
    w.inject(&udp_frame(1, 8, b"for b"));
    assert_eq!(h.poll(&mut fds, Some(Duration::from_secs(5))), 1);
    assert_eq!((fds[0].revents, fds[1].revents), (0, POLLIN));
    let mut out = [PollFd::new(a, POLLOUT), PollFd::new(Fd(99), POLLIN)];
    assert_eq!(h.poll(&mut out, Some(Duration::ZERO)), 2);
    assert_eq!(out[1].revents, xsknet::socket::POLLNVAL);
    drop(t);
}

/// On virtual time, with no sleep: a datagram to an unknown neighbour waits
/// while ARP asks again every `retrans_time`, `poll_at` says when the next
/// request is due, and after `mcast_solicit` requests what waited is dropped
/// and counted (XskNeighUnresDiscards), as Linux's neighbour timers do.
#[test]
fn arp_retries_and_gives_up_on_virtual_time() {
    use xsknet::neighbour::{MCAST_SOLICIT, RETRANS_TIME};
    let (mut s, w) = stack();
    let t0 = Instant::now();
    assert_eq!(s.poll_at(), None, "nothing to do but wait for the device");
    let fd = s.socket(SockType::Dgram).unwrap();
    s.send_to(fd, b"hello", SocketAddrV4::new(PEER_IP, 9)).unwrap();
    s.poll(t0);
    let arp_requests =
        |w: &MemWire| w.take_transmitted().iter().filter(|f| parse_eth(f).ethertype == ethertype::ARP).count();
    assert_eq!(arp_requests(&w), 1, "first request at once");
    for probe in 1..MCAST_SOLICIT as u32 {
        let due = t0 + RETRANS_TIME * probe;
        assert_eq!(s.poll_at(), Some(due), "probe {probe}");
        s.poll(due - Duration::from_millis(1));
        assert_eq!(arp_requests(&w), 0, "not before it is due");
        s.poll(due);
        assert_eq!(arp_requests(&w), 1, "request {} at {probe} s", probe + 1);
    }
    assert_eq!(s.snmp().XskNeighUnresDiscards, 0, "still waiting");
    s.poll(t0 + RETRANS_TIME * u32::from(MCAST_SOLICIT));
    assert_eq!(arp_requests(&w), 0);
    assert_eq!(s.snmp().XskNeighUnresDiscards, 1, "the datagram is dropped, counted");
    assert_eq!(s.poll_at(), None);
    s.close(fd).unwrap();
    assert_census(&s);
}

/// Nanoseconds since `t`.
fn ns(t: Instant) -> u64 {
    t.elapsed().as_nanos() as u64
}

/// The send-side stages with one send in 1 sampled: the send is timed to
/// the tx ring by the poll that puts it there, and on to the completion ring
/// by the poll that reaps it once the wire took it; both within the real
/// time that passed between the calls (no sleep needed).
#[test]
fn a_sampled_datagram_send_is_timed_to_the_tx_ring_and_to_its_completion() {
    let (mut s, w) = stack_with(|c| c.rx_latency_sample = 1);
    learn_peer(&mut s, &w);
    poll_n(&mut s, 1);
    let fd = s.socket(SockType::Dgram).unwrap();
    let peer = SocketAddrV4::new(PEER_IP, 40000);
    for take_copies in [true, false] {
        s.reset_stage_latency();
        let before_send = Instant::now();
        assert_eq!(s.send_to(fd, b"timed", peer), Ok(5));
        assert!(s.stage_latency().send_to_tx.is_empty(), "not on the tx ring before a poll");
        s.poll(Instant::now());
        let after_tx = Instant::now();
        let send_to_tx_bound = ns(before_send);
        let st = s.stage_latency();
        assert_eq!(st.send_to_tx.count(), 1);
        assert!(st.send_to_tx.max() <= send_to_tx_bound, "{st:?} beyond {send_to_tx_bound} ns");
        assert!(st.tx_to_completion.is_empty(), "still on the ring");
        // The wire takes it; the next poll reaps the completion ring.
        if take_copies {
            assert_eq!(w.take_transmitted().len(), 1);
        } else {
            assert_eq!(w.complete_transmitted(), 1);
        }
        let before_reap = Instant::now();
        s.poll(Instant::now());
        let st = s.stage_latency();
        assert_eq!(st.tx_to_completion.count(), 1, "{st:?}");
        // On the ring before `after_tx`, back after `before_reap`.
        let v = st.tx_to_completion.max();
        let (lower, upper) = ((before_reap - after_tx).as_nanos() as u64, ns(before_send));
        assert!((lower..=upper).contains(&v), "{v} ns outside {lower}..={upper}");
        assert_eq!(st.rx_to_read.count(), 0, "nothing read");
    }
    // Polls with nothing sent record nothing more.
    poll_n(&mut s, 3);
    let st = s.stage_latency();
    assert_eq!((st.send_to_tx.count(), st.tx_to_completion.count()), (1, 1));
    assert_census(&s);
}

/// A batch of sampled sends: the first one queued is followed; the others
/// wait for the ring while it does and are not, so one poll records one
/// value per stage. With sampling off nothing is recorded at all.
#[test]
fn sampling_one_send_at_a_time_and_none_at_rate_zero() {
    for (rate, expect) in [(1u32, 1u64), (0, 0)] {
        let (mut s, w) = stack_with(|c| c.rx_latency_sample = rate);
        learn_peer(&mut s, &w);
        let fd = s.socket(SockType::Dgram).unwrap();
        for i in 0..10u8 {
            assert_eq!(s.send_to(fd, &[i; 32], SocketAddrV4::new(PEER_IP, 9)), Ok(32));
        }
        s.poll(Instant::now());
        assert_eq!(w.complete_transmitted(), 10);
        s.poll(Instant::now());
        let st = s.stage_latency();
        assert_eq!((st.send_to_tx.count(), st.tx_to_completion.count()), (expect, expect), "rate {rate}");
        s.reset_stage_latency();
        let st = s.stage_latency();
        assert!(st.send_to_tx.is_empty() && st.tx_to_completion.is_empty() && st.rx_to_read.is_empty());
        assert_census(&s);
    }
}

/// Sends through a `StackHandle` are stamped on the application thread and
/// timed by the loop; the snapshot shows all three stages.
#[test]
fn threaded_sends_are_timed_and_in_the_snapshot() {
    let (mut s, w) = stack_with(|c| c.rx_latency_sample = 1);
    learn_peer(&mut s, &w);
    let t = ThreadedStack::spawn(s).unwrap();
    let h = t.handle();
    let fd = h.socket(SockType::Dgram).unwrap();
    let started = Instant::now();
    h.send_to(fd, b"from a thread", SocketAddrV4::new(PEER_IP, 9)).unwrap();
    let mut sent = 0;
    let mut snap = h.snapshot().unwrap();
    for _ in 0..2500 {
        sent += w.complete_transmitted();
        snap = h.snapshot().unwrap();
        if sent == 1 && snap.stage_latency.tx_to_completion.count() == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let bound = ns(started);
    let st = &snap.stage_latency;
    assert_eq!(sent, 1);
    assert_eq!((st.send_to_tx.count(), st.tx_to_completion.count()), (1, 1), "{st:?}");
    assert!(st.send_to_tx.max() + st.tx_to_completion.max() <= bound, "{st:?} beyond {bound} ns");
    assert_eq!(st.rx_to_read, snap.rx_latency);
    h.close(fd).unwrap();
    let (s, _) = t.stop().unwrap();
    assert_eq!(s.stage_latency().send_to_tx.count(), 1);
    assert_census(&s);
}

/// The statistics page (`xsknet stat -l`, `top`) carries the send-side
/// stages beside rx-to-read, in the packet's order.
#[test]
fn the_published_page_has_all_three_stages() {
    let (mut s, w) = stack_with(|c| c.rx_latency_sample = 1);
    let (p, r) = xsknet::publish::Publisher::new(s.epoch());
    s.attach_publisher(p);
    learn_peer(&mut s, &w);
    let fd = s.socket(SockType::Dgram).unwrap();
    s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    assert_eq!(s.send_to(fd, b"published", SocketAddrV4::new(PEER_IP, 9)), Ok(9));
    s.poll(Instant::now());
    assert_eq!(w.complete_transmitted(), 1);
    w.inject(&udp_frame(40000, 7, b"in"));
    s.poll(Instant::now());
    let mut buf = [0u8; 16];
    assert_eq!(s.recv_from(fd, &mut buf).unwrap().0, 2);
    s.publish(&mut xsknet::softirq::LoopStats::default(), Instant::now() + xsknet::publish::PUBLISH_INTERVAL);
    let page = r.read().unwrap();
    let stages: Vec<(&str, u64)> = page.stages().into_iter().map(|(n, h)| (n, h.count())).collect();
    assert_eq!(stages, [("rx_to_read", 1), ("send_to_tx", 1), ("tx_to_completion", 1)]);
    let st = s.stage_latency();
    assert_eq!((&page.send_to_tx, &page.tx_to_completion), (&st.send_to_tx, &st.tx_to_completion));
}

/// Counter names and values.
type Counts = Vec<(&'static str, u64)>;

/// The counters that changed, without the two every frame moves.
fn changed(s: &Stack<MemDevice>) -> Vec<(&'static str, u64)> {
    let mut v: Vec<_> = s
        .snmp()
        .iter()
        .filter(|(n, v)| *v != 0 && !["XskRxFrames", "IpExtInOctets", "IpExtInNoECTPkts"].contains(n))
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<(&'static str, u64)>) -> Vec<(&'static str, u64)> {
    v.sort();
    v
}

/// A frame to `dst_mac` carrying a UDP datagram to `dst`:`dport`.
fn udp_to(dst_mac: EthernetAddress, dst: Ipv4Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let d = build::udp(PEER_IP, dst, &UdpRepr { src_port: 40000, dst_port: dport, payload_len: 0 }, payload);
    eth(dst_mac, ethertype::IPV4, &build::ipv4(&build::ipv4_repr(PEER_IP, dst, protocol::UDP, 7), &d))
}

/// A frame to us whose IPv4 header carries `options` and a UDP datagram to `dport`.
fn udp_with_options(options: &[u8], dport: u16) -> Vec<u8> {
    let d = udp_datagram(40000, dport, b"options");
    eth(OUR_MAC, ethertype::IPV4, &build::ipv4_with_options(&peer_ip(protocol::UDP), options, &d))
}

const MCAST_MAC: EthernetAddress = EthernetAddress([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]);

/// The example: IHL 6 with option bytes 07 ff 00 00 (a record route
/// whose length runs past the header). Linux's ip_options_compile answers with
/// a parameter problem pointing at byte 20 and counts IpInHdrErrors; nothing
/// is delivered. The other malformed options answer with their own pointer.
#[test]
fn bad_ip_options_get_parameter_problem_with_linux_pointer() {
    for (options, pointer) in [
        (&[0x07, 0xff, 0x00, 0x00][..], 20u8),
        (&[0x01, 0x07, 0x03, 0x03][..], 23),
        (&[0x44, 0x08, 0x06, 0x00, 0, 0, 0, 0][..], 22),
        (&[0x94, 0x02, 0x00, 0x00][..], 21),
        (&[0x86, 0x08, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00][..], 22),
    ] {
        let (mut s, w) = stack();
        let fd = s.socket(SockType::Dgram).unwrap();
        s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
        learn_peer(&mut s, &w);
        let frame = udp_with_options(options, 7);
        w.inject(&frame);
        s.poll(Instant::now());
        let out = w.take_transmitted();
        assert_eq!(out.len(), 1, "{options:02x?}: one parameter problem");
        let (_, ip, msg) = parse_ip(&out[0]);
        assert_eq!((ip.protocol, ip.dst, ip.tos), (protocol::ICMP, PEER_IP, 0xc0));
        let h = icmp_check(&msg).unwrap();
        assert_eq!((h.msg_type, h.code, h.rest), (12, 0, [pointer, 0, 0, 0]), "{options:02x?}");
        assert_eq!(&msg[8..], &frame[ETH_LEN..], "quotes the offending datagram");
        let m = s.snmp();
        assert_eq!((m.IpInHdrErrors, m.IcmpOutParmProbs, m.IcmpMsgOutType12, m.IcmpOutMsgs), (1, 1, 1, 1));
        assert_eq!((m.IpInDelivers, m.UdpInDatagrams), (0, 0));
        let mut buf = [0u8; 64];
        assert_eq!(s.recv_from(fd, &mut buf), Err(Errno::EAGAIN), "{options:02x?}: not delivered");
        assert_census(&s);
    }
}

/// Well-formed options are accepted; a source route is dropped without a word
/// (accept_source_route is off in a fresh namespace's conf/all).
#[test]
fn good_ip_options_pass_and_source_routes_are_dropped() {
    let (mut s, w) = stack();
    let fd = s.socket(SockType::Dgram).unwrap();
    s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    learn_peer(&mut s, &w);
    // Record route with room, a timestamp, router alert.
    for options in [&[0x07, 0x07, 0x04, 0, 0, 0, 0, 0][..], &[0x44, 0x08, 0x05, 0x00, 0, 0, 0, 0], &[0x94, 4, 0, 0]] {
        w.inject(&udp_with_options(options, 7));
    }
    s.poll(Instant::now());
    let mut buf = [0u8; 64];
    for _ in 0..3 {
        assert_eq!(s.recv_from(fd, &mut buf).map(|(n, _)| n), Ok(7));
    }
    // Loose source route through 10.0.0.9, and a strict one.
    w.inject(&udp_with_options(&[0x83, 0x07, 0x04, 10, 0, 0, 9, 0], 7));
    w.inject(&udp_with_options(&[0x89, 0x07, 0x08, 10, 0, 0, 9, 0], 7));
    s.poll(Instant::now());
    assert_eq!(s.recv_from(fd, &mut buf), Err(Errno::EAGAIN));
    assert!(w.take_transmitted().is_empty());
    let m = s.snmp();
    assert_eq!((m.XskIpInSrcRoute, m.IpInHdrErrors, m.IpInDelivers), (2, 0, 3));
    assert_census(&s);
}

/// The pkt_type examples: a datagram to our address but in a frame
/// to the Ethernet broadcast (or a multicast) address, for a closed port,
/// counts UdpNoPorts and gets no port unreachable; a datagram for us in a
/// frame to a multicast MAC is delivered. The rest of the kind: an echo
/// request to the broadcast MAC is answered (icmp_reply does not look at
/// pkt_type); a TCP SYN in a broadcast frame is dropped before TcpInSegs (no
/// reset); bad options in a broadcast frame count IpInHdrErrors, no ICMP.
#[test]
fn pkt_type_is_followed_as_linux_does() {
    let (mut s, w) = stack();
    let fd = s.socket(SockType::Dgram).unwrap();
    s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    learn_peer(&mut s, &w);
    let base = s.snmp();

    w.inject(&udp_to(EthernetAddress::BROADCAST, OUR_IP, 9, b"closed, broadcast MAC"));
    w.inject(&udp_to(MCAST_MAC, OUR_IP, 9, b"closed, multicast MAC"));
    s.poll(Instant::now());
    assert!(w.take_transmitted().is_empty(), "no port unreachable for a link-layer broadcast");
    let m = s.snmp();
    assert_eq!((m.UdpNoPorts, m.IcmpOutMsgs, m.IcmpOutRateLimitHost), (2, 0, 0));

    w.inject(&udp_to(MCAST_MAC, OUR_IP, 7, b"for us, multicast MAC"));
    w.inject(&udp_to(EthernetAddress::BROADCAST, OUR_IP, 7, b"for us, broadcast MAC"));
    s.poll(Instant::now());
    let mut buf = [0u8; 64];
    assert_eq!(s.recv_from(fd, &mut buf).map(|(n, _)| &buf[..n] == b"for us, multicast MAC"), Ok(true));
    assert_eq!(s.recv_from(fd, &mut buf).map(|(n, _)| &buf[..n] == b"for us, broadcast MAC"), Ok(true));

    let mut ping = echo_request(9, 1, b"ping to the broadcast MAC");
    ping[..6].copy_from_slice(&EthernetAddress::BROADCAST.0);
    w.inject(&ping);
    s.poll(Instant::now());
    let out = w.take_transmitted();
    assert_eq!(out.len(), 1, "the echo request is answered");
    let (e, ip, msg) = parse_ip(&out[0]);
    assert_eq!((e.dst, ip.dst, icmp_check(&msg).unwrap().msg_type), (PEER_MAC, PEER_IP, msg_type::ECHO_REPLY));

    let syn = xsknet::wire::tcp::TcpRepr {
        src_port: 40000,
        dst_port: 9,
        seq: 1,
        flags: xsknet::wire::tcp::flags::SYN,
        window: 1000,
        ..Default::default()
    };
    let tcp = build::tcp(PEER_IP, OUR_IP, &syn, &[]);
    w.inject(&eth(EthernetAddress::BROADCAST, ethertype::IPV4, &ipv4(protocol::TCP, &tcp)));
    s.poll(Instant::now());
    assert!(w.take_transmitted().is_empty(), "no reset for a SYN in a broadcast frame");

    let mut bad_options = udp_with_options(&[0x07, 0xff, 0, 0], 7);
    bad_options[..6].copy_from_slice(&EthernetAddress::BROADCAST.0);
    w.inject(&bad_options);
    s.poll(Instant::now());
    assert!(w.take_transmitted().is_empty(), "no parameter problem for a link-layer broadcast");

    let m = s.snmp();
    let d = |f: fn(&xsknet::snmp::Mib) -> u64| f(&m) - f(&base);
    assert_eq!(d(|m| m.IpInReceives), 7);
    assert_eq!(d(|m| m.IpInDelivers), 6);
    assert_eq!(d(|m| m.UdpInDatagrams), 2);
    assert_eq!(d(|m| m.IcmpOutEchoReps), 1);
    assert_eq!((d(|m| m.XskTcpInNotHost), d(|m| m.TcpInSegs), d(|m| m.TcpOutRsts)), (1, 0, 0));
    assert_eq!((d(|m| m.IpInHdrErrors), d(|m| m.IcmpOutParmProbs)), (1, 0));
    assert_eq!((d(|m| m.IpExtInBcastPkts), d(|m| m.IpExtInMcastPkts)), (0, 0), "unicast IP destinations");
    assert_census(&s);
}

/// Destinations other than our own address, now that the XDP program hands
/// every IPv4 frame to our MAC to the stack: another host's address counts
/// IpInAddrErrors (ip_error, forwarding off), the subnet and limited broadcast
/// are delivered as broadcasts (no port unreachable: UdpIgnoredMulti; echo
/// ignored as icmp_echo_ignore_broadcasts says), 224.0.0.1 as a multicast,
/// other groups and martian destinations are dropped uncounted by SNMP.
#[test]
fn ip_destinations_follow_the_input_route() {
    let (mut s, w) = stack();
    let fd = s.socket(SockType::Dgram).unwrap();
    s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    learn_peer(&mut s, &w);
    let base = changed(&s);
    let subnet_bcast = Ipv4Addr::new(10, 0, 0, 255);
    let cases: Vec<(&str, Vec<u8>, Counts)> = vec![
        (
            "another host's address",
            udp_to(OUR_MAC, Ipv4Addr::new(10, 0, 0, 77), 7, b"x"),
            vec![("IpInReceives", 1), ("IpInAddrErrors", 1)],
        ),
        (
            "subnet broadcast, closed port",
            udp_to(EthernetAddress::BROADCAST, subnet_bcast, 9, b"x"),
            vec![
                ("IpInReceives", 1),
                ("IpExtInBcastPkts", 1),
                ("IpExtInBcastOctets", 29),
                ("IpInDelivers", 1),
                ("UdpIgnoredMulti", 1),
            ],
        ),
        (
            "limited broadcast, bound port",
            udp_to(EthernetAddress::BROADCAST, Ipv4Addr::BROADCAST, 7, b"x"),
            vec![("IpInReceives", 1), ("IpExtInBcastPkts", 1), ("IpExtInBcastOctets", 29), ("IpInDelivers", 1)],
        ),
        (
            "all-hosts group, closed port",
            udp_to(MCAST_MAC, Ipv4Addr::new(224, 0, 0, 1), 9, b"x"),
            vec![
                ("IpInReceives", 1),
                ("IpExtInMcastPkts", 1),
                ("IpExtInMcastOctets", 29),
                ("IpInDelivers", 1),
                ("UdpIgnoredMulti", 1),
            ],
        ),
        (
            "a group not joined",
            udp_to(EthernetAddress([0x01, 0, 0x5e, 1, 1, 1]), Ipv4Addr::new(239, 1, 1, 1), 7, b"x"),
            vec![("IpInReceives", 1), ("XskIpInMcastNotJoined", 1)],
        ),
        (
            "loopback destination",
            udp_to(OUR_MAC, Ipv4Addr::LOCALHOST, 7, b"x"),
            vec![("IpInReceives", 1), ("XskIpInMartianDst", 1)],
        ),
        (
            "echo request to the subnet broadcast",
            {
                let icmp = build::icmp(&IcmpRepr::echo(msg_type::ECHO_REQUEST, 1, 1), b"all of you");
                let ip = build::ipv4(&build::ipv4_repr(PEER_IP, subnet_bcast, protocol::ICMP, 9), &icmp);
                eth(EthernetAddress::BROADCAST, ethertype::IPV4, &ip)
            },
            vec![
                ("IpInReceives", 1),
                ("IpExtInBcastPkts", 1),
                ("IpExtInBcastOctets", 38),
                ("IpInDelivers", 1),
                ("IcmpInMsgs", 1),
                ("IcmpInEchos", 1),
                ("IcmpMsgInType8", 1),
                ("IcmpInErrors", 1),
            ],
        ),
    ];
    let mut total = base.clone();
    for (name, frame, add) in cases {
        w.inject(&frame);
        s.poll(Instant::now());
        assert!(w.take_transmitted().is_empty(), "{name}: nothing is sent");
        for (k, v) in add {
            match total.iter_mut().find(|(n, _)| *n == k) {
                Some(e) => e.1 += v,
                None => total.push((k, v)),
            }
        }
        assert_eq!(changed(&s), sorted(total.clone()), "{name}");
    }
    let mut buf = [0u8; 64];
    assert_eq!(s.recv_from(fd, &mut buf).map(|(n, _)| n), Ok(1), "the limited broadcast reached the socket");
    assert_eq!(s.recv_from(fd, &mut buf), Err(Errno::EAGAIN));
}

/// The peer's new MAC, announced by gratuitous ARP.
const NEW_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x99]);

fn arp_frame(eth_dst: EthernetAddress, repr: &ArpRepr) -> Vec<u8> {
    build::arp_frame(&EthernetRepr { dst: eth_dst, src: repr.sender_hw, ethertype: ethertype::ARP }, repr)
}

/// Our neighbour entry for `ip`: (lladdr, state) as `ip neigh` shows them.
fn neigh(s: &Stack<MemDevice>, ip: Ipv4Addr) -> Option<(Option<String>, String)> {
    s.neighbours().into_iter().find(|e| e.ip == ip).map(|e| (e.lladdr, e.state))
}

/// An echo request now is answered to `mac`.
fn echo_goes_to(s: &mut Stack<MemDevice>, w: &MemWire, now: Instant, mac: EthernetAddress) {
    w.inject(&echo_request(9, 1, b"garp"));
    s.poll(now);
    let out: Vec<_> = w.take_transmitted().into_iter().filter(|f| parse_eth(f).ethertype == ethertype::IPV4).collect();
    assert_eq!(out.len(), 1, "one echo reply");
    assert_eq!(parse_eth(&out[0]).dst, mac);
}

/// Issue 8, item 2: a gratuitous ARP request (sender = target = the peer's
/// address, broadcast) announcing a new MAC for a neighbour we have updates
/// the entry (arp_is_garp overrides locktime; a request leaves it STALE), so
/// the echo reply goes to the new MAC. It is not answered.
#[test]
fn gratuitous_arp_request_updates_an_existing_entry() {
    let (mut s, w) = stack();
    let t0 = Instant::now();
    learn_peer(&mut s, &w);
    assert_eq!(neigh(&s, PEER_IP), Some((Some(PEER_MAC.to_string()), "STALE".into())));
    let garp = ArpRepr {
        operation: ArpOperation::Request,
        sender_hw: NEW_MAC,
        sender_ip: PEER_IP,
        target_hw: EthernetAddress::default(),
        target_ip: PEER_IP,
    };
    w.inject(&arp_frame(EthernetAddress::BROADCAST, &garp));
    s.poll(t0);
    assert!(w.take_transmitted().is_empty(), "a gratuitous ARP is not answered");
    assert_eq!(neigh(&s, PEER_IP), Some((Some(NEW_MAC.to_string()), "STALE".into())));
    echo_goes_to(&mut s, &w, t0, NEW_MAC);
    assert_eq!(neigh(&s, PEER_IP).unwrap().1, "DELAY", "a send to a STALE entry");
    let m = s.snmp();
    assert_eq!((m.XskArpCacheLookups, m.XskArpCacheHits, m.XskArpCacheAllocs), (2, 1, 1));
    assert_census(&s);
}

/// The same with a gratuitous reply (sender = target address and sender =
/// target MAC), broadcast: the entry takes the new MAC, STALE (a broadcast
/// reply does not assert reachability).
#[test]
fn gratuitous_arp_reply_updates_an_existing_entry() {
    let (mut s, w) = stack();
    let t0 = Instant::now();
    learn_peer(&mut s, &w);
    let garp = ArpRepr {
        operation: ArpOperation::Reply,
        sender_hw: NEW_MAC,
        sender_ip: PEER_IP,
        target_hw: NEW_MAC,
        target_ip: PEER_IP,
    };
    w.inject(&arp_frame(EthernetAddress::BROADCAST, &garp));
    s.poll(t0);
    assert!(w.take_transmitted().is_empty());
    assert_eq!(neigh(&s, PEER_IP), Some((Some(NEW_MAC.to_string()), "STALE".into())));
    echo_goes_to(&mut s, &w, t0, NEW_MAC);
    assert_census(&s);
}

/// Gratuitous or unsolicited ARP never creates an entry (arp_accept 0).
#[test]
fn unsolicited_arp_creates_no_entry() {
    let (mut s, w) = stack();
    let t0 = Instant::now();
    let garp = ArpRepr {
        operation: ArpOperation::Reply,
        sender_hw: NEW_MAC,
        sender_ip: PEER_IP,
        target_hw: NEW_MAC,
        target_ip: PEER_IP,
    };
    w.inject(&arp_frame(EthernetAddress::BROADCAST, &garp));
    let request = ArpRepr { operation: ArpOperation::Request, target_hw: EthernetAddress::default(), ..garp };
    w.inject(&arp_frame(EthernetAddress::BROADCAST, &request));
    let reply = ArpRepr { target_hw: OUR_MAC, target_ip: OUR_IP, ..garp };
    w.inject(&arp_frame(OUR_MAC, &reply));
    s.poll(t0);
    assert!(s.neighbours().is_empty());
    let m = s.snmp();
    assert_eq!((m.XskArpCacheLookups, m.XskArpCacheHits, m.XskArpCacheAllocs), (3, 0, 0));
    assert_eq!(m.XskArpIgnored, 2, "the two not for our address");
    assert_census(&s);
}

/// A reply to our MAC confirms (REACHABLE); a reply with another MAC within
/// `locktime` of the last change is ignored (the first answer wins), and
/// taken after it.
#[test]
fn arp_reply_locktime_and_reachable() {
    use xsknet::neighbour::LOCKTIME;
    let (mut s, w) = stack();
    let t0 = Instant::now();
    let fd = s.socket(SockType::Dgram).unwrap();
    s.send_to(fd, b"hello", SocketAddrV4::new(PEER_IP, 9)).unwrap();
    s.poll(t0);
    assert_eq!(neigh(&s, PEER_IP), Some((None, "INCOMPLETE".into())));
    w.take_transmitted();
    let reply = ArpRepr {
        operation: ArpOperation::Reply,
        sender_hw: PEER_MAC,
        sender_ip: PEER_IP,
        target_hw: OUR_MAC,
        target_ip: OUR_IP,
    };
    w.inject(&arp_frame(OUR_MAC, &reply));
    s.poll(t0);
    assert_eq!(neigh(&s, PEER_IP), Some((Some(PEER_MAC.to_string()), "REACHABLE".into())));
    let out = w.take_transmitted();
    assert_eq!(out.len(), 1, "the datagram that waited");
    assert_eq!(parse_eth(&out[0]).dst, PEER_MAC);
    let other = ArpRepr { sender_hw: NEW_MAC, ..reply };
    w.inject(&arp_frame(OUR_MAC, &other));
    s.poll(t0 + LOCKTIME / 2);
    assert_eq!(neigh(&s, PEER_IP).unwrap().0, Some(PEER_MAC.to_string()), "within locktime");
    w.inject(&arp_frame(OUR_MAC, &other));
    s.poll(t0 + LOCKTIME + Duration::from_millis(1));
    assert_eq!(neigh(&s, PEER_IP), Some((Some(NEW_MAC.to_string()), "REACHABLE".into())));
    // A broadcast reply with the same MAC does not downgrade the entry.
    w.inject(&arp_frame(EthernetAddress::BROADCAST, &other));
    s.poll(t0 + LOCKTIME * 3);
    assert_eq!(neigh(&s, PEER_IP).unwrap().1, "REACHABLE");
    s.close(fd).unwrap();
    assert_census(&s);
}

/// A flood of 10,000 ARP requests from distinct senders: the table stops at
/// gc_thresh3 (what cannot be added is counted in table_fulls and, as in
/// Linux, gets no reply), the neighbour in use stays REACHABLE, and once the
/// flood's entries are 5 s old a forced collection makes room again.
#[test]
fn arp_flood_keeps_the_table_bounded_and_the_active_neighbour() {
    use xsknet::neighbour::{GC_THRESH2, GC_THRESH3};
    let (mut s, w) = stack();
    let t0 = Instant::now();
    let fd = s.socket(SockType::Dgram).unwrap();
    s.send_to(fd, b"hello", SocketAddrV4::new(PEER_IP, 9)).unwrap();
    s.poll(t0);
    let reply = ArpRepr {
        operation: ArpOperation::Reply,
        sender_hw: PEER_MAC,
        sender_ip: PEER_IP,
        target_hw: OUR_MAC,
        target_ip: OUR_IP,
    };
    w.inject(&arp_frame(OUR_MAC, &reply));
    s.poll(t0);
    w.take_transmitted();
    let flood = |i: u32| ArpRepr {
        operation: ArpOperation::Request,
        sender_hw: EthernetAddress([0x02, 0x10, (i >> 16) as u8, (i >> 8) as u8, i as u8, 0]),
        sender_ip: Ipv4Addr::from(0xac10_0000 + i),
        target_hw: EthernetAddress::default(),
        target_ip: OUR_IP,
    };
    let mut replies = 0;
    for chunk in (0..10_000u32).collect::<Vec<_>>().chunks(32) {
        for &i in chunk {
            assert!(w.inject(&arp_frame(EthernetAddress::BROADCAST, &flood(i))));
        }
        s.poll(t0);
        replies += w.take_transmitted().len();
    }
    let m = s.snmp();
    assert_eq!(s.neighbours().len(), GC_THRESH3);
    assert_eq!(replies, GC_THRESH3 - 1, "answered while there was room");
    assert_eq!(m.XskArpCacheTableFulls, 10_000 - (GC_THRESH3 as u64 - 1));
    assert_eq!(m.XskArpInRequests, 10_000);
    assert_eq!(neigh(&s, PEER_IP), Some((Some(PEER_MAC.to_string()), "REACHABLE".into())));
    // The active neighbour is still served.
    s.send_to(fd, b"again", SocketAddrV4::new(PEER_IP, 9)).unwrap();
    s.poll(t0);
    let out = w.take_transmitted();
    assert_eq!(out.len(), 1);
    assert_eq!(parse_eth(&out[0]).dst, PEER_MAC);
    // 5 s on, a new sender gets in: the oldest flood entries make room.
    let t1 = t0 + Duration::from_secs(6);
    w.inject(&arp_frame(EthernetAddress::BROADCAST, &flood(20_000)));
    s.poll(t1);
    assert_eq!(w.take_transmitted().len(), 1, "answered");
    assert_eq!(s.neighbours().len(), GC_THRESH2);
    assert!(neigh(&s, PEER_IP).is_some());
    s.close(fd).unwrap();
    assert_census(&s);
}

/// The frame census and UdpInDatagrams count each sock once, whichever
/// tables hold it: UDP socks bound (in both the socket table and the
/// descriptor table), fresh ones (descriptor table only), TCP socks beside
/// them, with descriptors closed and reused in between.
#[test]
fn census_counts_each_sock_once_whatever_tables_hold_it() {
    let (mut s, w) = stack();
    learn_peer(&mut s, &w);
    let mut tcp = Vec::new();
    for _ in 0..40 {
        tcp.push(s.socket(SockType::Stream).unwrap());
    }
    let a = s.socket(SockType::Dgram).unwrap();
    s.bind(a, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    for fd in tcp.drain(..20) {
        s.close(fd).unwrap();
    }
    let fresh = s.socket(SockType::Dgram).unwrap();
    let b = s.socket(SockType::Dgram).unwrap();
    s.bind(b, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 9)).unwrap();
    for i in 0..5u8 {
        w.inject(&udp_frame(40000, 7, &[i]));
        w.inject(&udp_frame(40000, 9, &[i]));
    }
    s.poll(Instant::now());
    assert_eq!(s.frame_census().in_socks, 10);
    assert_census(&s);
    let mut buf = [0u8; 8];
    for _ in 0..3 {
        s.recv_from(a, &mut buf).unwrap();
    }
    assert_eq!(s.snmp().UdpInDatagrams, 3);
    assert_eq!(s.frame_census().in_socks, 7);
    s.close(b).unwrap();
    assert_eq!(s.frame_census().in_socks, 2);
    assert_eq!(s.snmp().UdpInDatagrams, 3);
    assert_census(&s);
    s.close(fresh).unwrap();
    s.close(a).unwrap();
    for fd in tcp {
        s.close(fd).unwrap();
    }
    assert_eq!(s.snmp().UdpInDatagrams, 3);
    assert_census(&s);
}

/// UdpInDatagrams with readers on their own threads: each datagram read
/// counted once, while the socks stay open and after they close.
#[test]
fn threaded_readers_count_each_datagram_once() {
    let (s, w) = stack();
    let t = ThreadedStack::spawn(s).unwrap();
    let h = t.handle();
    w.inject(&arp(ArpOperation::Request, EthernetAddress::BROADCAST, EthernetAddress::default()));
    let fds: Vec<Fd> = (0..3u16)
        .map(|i| {
            let fd = h.socket(SockType::Dgram).unwrap();
            h.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7 + i)).unwrap();
            fd
        })
        .collect();
    let readers: Vec<_> = fds
        .iter()
        .map(|&fd| {
            let h = t.handle();
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                let mut n = 0;
                while h.recv_from(fd, &mut buf, Some(Duration::from_millis(300))).is_ok() {
                    n += 1;
                }
                n
            })
        })
        .collect();
    for i in 0..60u16 {
        w.inject(&udp_frame(40000, 7 + i % 3, &[i as u8]));
        if i % 20 == 19 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let read: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert_eq!(read, 60);
    assert_eq!(h.snapshot().unwrap().mib.UdpInDatagrams, 60);
    h.close(fds[0]).unwrap();
    assert_eq!(h.snapshot().unwrap().mib.UdpInDatagrams, 60);
    for &fd in &fds[1..] {
        h.close(fd).unwrap();
    }
    let (s, _) = t.stop().unwrap();
    assert_eq!(s.snmp().UdpInDatagrams, 60);
    assert_census(&s);
}
