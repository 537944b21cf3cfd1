//! The seed corpus: the frames the unit and integration tests use (wire/mod.rs,
//! tests/softirq_memdev.rs, tests/frag_memdev.rs), built with `wire::build`, cut to each
//! target's layer, and scripts of the stack targets that send them. `fuzz/corpus/<target>/`
//! holds these, written by `userspace/tests/fuzz_corpus.rs` (which checks that the files
//! there are what this module makes).

use std::net::Ipv4Addr;

use xsknet::wire::arp::{ArpOperation, ArpRepr};
use xsknet::wire::ethernet::{ethertype, EthernetRepr};
use xsknet::wire::icmp::{self, msg_type, IcmpRepr};
use xsknet::wire::ipv4::{protocol, Ipv4Repr};
use xsknet::wire::tcp::{self, SackBlock, TcpOptions, TcpRepr};
use xsknet::wire::udp::UdpRepr;
use xsknet::wire::{build, EthernetAddress};

use super::api::call;
use super::input::Script;
use super::rx::{op, MCAST_MAC, OUR_IP, OUR_MAC, PEER_IP, PEER_MAC};

fn ip(proto: u8) -> Ipv4Repr {
    build::ipv4_repr(PEER_IP, OUR_IP, proto, 0x1234)
}

fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
    build::udp(PEER_IP, OUR_IP, &UdpRepr { src_port: 40000, dst_port: dport, payload_len: 0 }, payload)
}

fn echo(data: &[u8]) -> Vec<u8> {
    build::icmp(&IcmpRepr::echo(msg_type::ECHO_REQUEST, 0x0b1f, 1), data)
}

fn tcp_segments() -> Vec<Vec<u8>> {
    let syn = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: 0x4031_d274,
        flags: tcp::flags::SYN,
        window: 64240,
        options: TcpOptions {
            mss: Some(1460),
            window_scale: Some(10),
            sack_permitted: true,
            timestamp: Some((0xde03_8478, 0)),
            ..Default::default()
        },
        ..Default::default()
    };
    let data = TcpRepr {
        seq: 0x4031_d275,
        ack: 0x509c_8759,
        flags: tcp::flags::PSH | tcp::flags::ACK,
        window: 63,
        options: TcpOptions { timestamp: Some((0xde03_8478, 0xd051_9250)), ..Default::default() },
        ..syn
    };
    let mut blocks = [SackBlock::default(); 4];
    blocks[0] = SackBlock { left: 0x509c_9000, right: 0x509c_9400 };
    blocks[1] = SackBlock { left: 0x509c_9800, right: 0x509c_9c00 };
    let sack = TcpRepr {
        flags: tcp::flags::ACK,
        options: TcpOptions { sack_blocks: blocks, sack_len: 2, ..data.options },
        ..data
    };
    let fin = TcpRepr { flags: tcp::flags::FIN | tcp::flags::ACK, ..data };
    let rst = TcpRepr { flags: tcp::flags::RST, options: TcpOptions::default(), ..data };
    vec![
        build::tcp(PEER_IP, OUR_IP, &syn, &[]),
        build::tcp(PEER_IP, OUR_IP, &data, b"hello, xsknet!\n"),
        build::tcp(PEER_IP, OUR_IP, &sack, &[]),
        build::tcp(PEER_IP, OUR_IP, &fin, &[]),
        build::tcp(PEER_IP, OUR_IP, &rst, &[]),
    ]
}

/// IP datagrams (header and payload) of the tests.
fn datagrams() -> Vec<Vec<u8>> {
    let payload: Vec<u8> = (0..64).collect();
    let mut v = vec![
        build::ipv4(&ip(protocol::UDP), &udp(7, b"hello, xsknet!\n")),
        build::ipv4(&ip(protocol::UDP), &udp(9, b"anyone there?")),
        build::ipv4(&ip(protocol::ICMP), &echo(&payload[..56])),
        build::ipv4(&ip(253), b"what is this"),
        // Options: NOPs and END; a record route; a timestamp; a loose source route; one
        // whose length runs past the header (issue 8's example).
        build::ipv4_with_options(&ip(protocol::UDP), &[1, 1, 1, 0], &udp(7, b"options")),
        build::ipv4_with_options(&ip(protocol::UDP), &[7, 7, 4, 0, 0, 0, 0, 0], &udp(7, b"rr")),
        build::ipv4_with_options(&ip(protocol::UDP), &[68, 12, 5, 0x01, 0, 0, 0, 0, 0, 0, 0, 0], &udp(7, b"ts")),
        build::ipv4_with_options(&ip(protocol::UDP), &[131, 7, 4, 10, 0, 0, 9, 0], &udp(7, b"lsrr")),
        build::ipv4_with_options(&ip(protocol::UDP), &[0x07, 0xff, 0, 0], &udp(7, b"bad")),
        build::ipv4_with_options(&ip(protocol::UDP), &[148, 4, 0, 0], &udp(7, b"ra")),
    ];
    for t in tcp_segments() {
        v.push(build::ipv4(&ip(protocol::TCP), &t));
    }
    v.extend(fragments());
    v
}

/// A 64-byte UDP datagram to port 7 in two fragments (offsets 0 and 40 bytes).
fn fragments() -> Vec<Vec<u8>> {
    let whole = udp(7, &[0xab; 56]);
    let first = Ipv4Repr { more_fragments: true, dont_fragment: false, ident: 0x4242, ..ip(protocol::UDP) };
    let second = Ipv4Repr { frag_offset: 5, more_fragments: false, ..first };
    vec![build::ipv4(&first, &whole[..40]), build::ipv4(&second, &whole[40..])]
}

fn eth(dst: EthernetAddress, ty: u16, payload: &[u8]) -> Vec<u8> {
    build::ethernet(&EthernetRepr { dst, src: PEER_MAC, ethertype: ty }, payload)
}

fn arp_request(target: Ipv4Addr) -> ArpRepr {
    ArpRepr {
        operation: ArpOperation::Request,
        sender_hw: PEER_MAC,
        sender_ip: PEER_IP,
        target_hw: EthernetAddress::default(),
        target_ip: target,
    }
}

/// ARP packets: a request for us, a reply to us, gratuitous ones, a DAD probe.
fn arps() -> Vec<ArpRepr> {
    let req = arp_request(OUR_IP);
    let reply = ArpRepr { operation: ArpOperation::Reply, target_hw: OUR_MAC, ..req };
    let new_mac = EthernetAddress([0x02, 0, 0, 0, 0, 0x99]);
    let garp = ArpRepr { sender_hw: new_mac, target_ip: PEER_IP, ..req };
    let garp_reply = ArpRepr { operation: ArpOperation::Reply, target_hw: new_mac, ..garp };
    let dad = ArpRepr { sender_ip: Ipv4Addr::UNSPECIFIED, ..req };
    vec![req, reply, garp, garp_reply, dad]
}

/// Whole frames.
fn frames() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = datagrams().iter().map(|d| eth(OUR_MAC, ethertype::IPV4, d)).collect();
    for a in arps() {
        v.push(build::arp_frame(
            &EthernetRepr { dst: EthernetAddress::BROADCAST, src: a.sender_hw, ethertype: ethertype::ARP },
            &a,
        ));
    }
    v.push(eth(EthernetAddress::BROADCAST, ethertype::IPV4, &datagrams()[1]));
    v.push(eth(MCAST_MAC, ethertype::IPV4, &datagrams()[0]));
    v.push(eth(OUR_MAC, ethertype::IPV6, &[0x60; 40]));
    v.push(vec![0; 10]);
    let mut padded = eth(OUR_MAC, ethertype::IPV4, &build::ipv4(&ip(protocol::UDP), &udp(7, b"hi")));
    padded.resize(60, 0);
    v.push(padded);
    v
}

/// ICMP messages: echo, echo reply, the errors we send and receive.
fn icmps() -> Vec<Vec<u8>> {
    let original = build::ipv4(&ip(protocol::UDP), &udp(9, b"anyone there?"));
    let quote = |repr: IcmpRepr| {
        let mut m = vec![0u8; icmp::HEADER_LEN + original.len()];
        let n = repr.emit_quoting(&mut m, &original);
        m.truncate(n);
        m
    };
    vec![
        echo(b"abcdefgh"),
        build::icmp(&IcmpRepr::echo(msg_type::ECHO_REPLY, 7, 1), b"abc"),
        build::icmp(&IcmpRepr::echo(msg_type::ECHO_REQUEST, 0, 0), &[]),
        quote(IcmpRepr::dest_unreachable(icmp::unreach_code::PORT)),
        quote(IcmpRepr { rest: [0, 0, 0x02, 0x40], ..IcmpRepr::dest_unreachable(icmp::unreach_code::FRAG_NEEDED) }),
        quote(IcmpRepr::time_exceeded(icmp::exc_code::FRAGTIME)),
        quote(IcmpRepr::parameter_problem(20)),
    ]
}

/// The pseudo-header's addresses as the UDP and TCP targets read them, then `seg`.
fn with_addresses(seg: &[u8]) -> Vec<u8> {
    [&PEER_IP.octets()[..], &OUR_IP.octets(), seg].concat()
}

/// A script that injects `frames` as they are, polling after each.
fn raw_script(frames: &[Vec<u8>]) -> Script {
    let mut s = Script::default();
    for f in frames {
        s.u8(op::RAW).data(f).u8(op::POLL);
    }
    s
}

/// The scripts of `rx_path`.
fn rx_scripts() -> Vec<Vec<u8>> {
    let all = frames();
    let mut out = Vec::new();
    // Each frame alone, after the peer's ARP request; then all of them, read and taken.
    let hello = build::arp_frame(
        &EthernetRepr { dst: EthernetAddress::BROADCAST, src: PEER_MAC, ethertype: ethertype::ARP },
        &arp_request(OUR_IP),
    );
    for f in &all {
        let mut s = raw_script(&[hello.clone(), f.clone()]);
        s.u8(op::READ).u8(op::TAKE);
        out.push(s.bytes);
    }
    let mut s = raw_script(&all);
    s.u8(op::READ).u8(op::TAKE);
    out.push(s.bytes);
    // UDP to each port, the application sending, time moving on (ARP gives up).
    let mut s = Script::default();
    for p in 0..8 {
        s.u8(op::UDP).u8(p).data(b"hello, xsknet!\n");
    }
    s.u8(op::POLL).u8(op::SEND).u8(0x80).u16(100).u8(op::SEND).u8(0).u16(2000);
    s.u8(op::ADVANCE).u16(100).u8(op::ADVANCE).u16(500).u8(op::READ);
    out.push(s.bytes);
    // The fragments in order, reversed, and the first alone until ipfrag_time runs out.
    let fr = fragments();
    for order in [[0, 1], [1, 0]] {
        let mut s = Script::default();
        s.u8(op::RAW).data(&hello).u8(op::POLL);
        for i in order {
            s.u8(op::IPV4).u8(0x03).data(&fr[i]);
        }
        s.u8(op::POLL).u8(op::READ).u8(op::TAKE);
        out.push(s.bytes);
    }
    let mut s = Script::default();
    s.u8(op::RAW).data(&hello).u8(op::IPV4).u8(0x03).data(&fr[0]).u8(op::POLL).u8(op::ADVANCE).u16(3100).u8(op::TAKE);
    out.push(s.bytes);
    // IPv4 with the harness fixing checksums, to each destination MAC and address.
    for flags in [0x07u8, 0x17, 0x27, 0x37, 0x47, 0x87, 0xc7, 0xd7] {
        let mut s = Script::default();
        for d in datagrams() {
            s.u8(op::IPV4).u8(flags).data(&d);
        }
        s.u8(op::POLL).u8(op::READ).u8(op::TAKE);
        out.push(s.bytes);
    }
    out
}

/// The scripts of `socket_api`.
fn api_scripts() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    // A UDP echo: socket, bind 7, a datagram in, read, answer, ARP, out.
    let mut s = Script::default();
    s.u8(call::SOCKET).u8(0).u8(call::BIND).u8(0).u8(1).u8(call::GET).u8(0);
    s.u8(op::UDP).u8(0).data(b"ping").u8(op::POLL);
    s.u8(call::RECV_FROM).u8(0).u16(100);
    s.u8(call::SEND_TO).u8(0).u16(4).u8(2 | 5 << 3);
    s.u8(op::POLL).u8(call::ARP_ANSWER).u8(op::POLL).u8(op::TAKE).u8(call::CLOSE).u8(0);
    out.push(s.bytes);
    // Connected UDP: send, port unreachable back, ECONNREFUSED; a large send in fragments;
    // IP_MTU_DISCOVER do; EMSGSIZE.
    let mut s = Script::default();
    s.u8(call::SOCKET).u8(0).u8(call::CONNECT).u8(0).u8(2 | 1 << 3).u8(call::SEND).u8(0).u16(10);
    s.u8(op::POLL).u8(call::ARP_ANSWER).u8(op::POLL).u8(op::TAKE);
    s.u8(call::SEND).u8(0).u16(2500).u8(op::POLL).u8(op::TAKE);
    s.u8(call::SETSOCKOPT).u8(0).u8(14).u32(2).u8(call::SEND).u8(0).u16(2500);
    s.u8(call::SEND).u8(0).u16(0x8000 | 600).u8(call::RECV).u8(0).u16(10).u8(call::GET).u8(0);
    out.push(s.bytes);
    // TCP: a listener, the peer's SYN, accept; a connect out; shutdown, linger, close.
    let syn = &tcp_segments()[0];
    let mut s = Script::default();
    s.u8(call::SOCKET).u8(1).u8(call::BIND).u8(0).u8(1 | 2 << 3).u8(call::LISTEN).u8(0).u16(8);
    s.u8(op::IPV4).u8(0x07).data(&build::ipv4(&ip(protocol::TCP), syn)).u8(op::POLL);
    s.u8(call::ARP_ANSWER).u8(op::POLL).u8(op::TAKE).u8(call::ACCEPT).u8(0);
    s.u8(call::SOCKET).u8(1).u8(call::SETSOCKOPT).u8(1).u8(5).u32(1).u8(call::CONNECT).u8(1).u8(2 | 2 << 3);
    s.u8(op::POLL).u8(call::ARP_ANSWER).u8(op::POLL).u8(call::SEND).u8(1).u16(100).u8(call::SHUTDOWN).u8(1).u8(1);
    s.u8(call::SETSOCKOPT).u8(1).u8(3).u32(1).u8(call::CLOSE).u8(1).u8(op::ADVANCE).u16(100).u8(call::GET).u8(1);
    out.push(s.bytes);
    // Errors: EBADF, EMFILE, EADDRINUSE, EADDRNOTAVAIL, EOPNOTSUPP.
    let mut s = Script::default();
    for _ in 0..10 {
        s.u8(call::SOCKET).u8(0);
    }
    s.u8(call::BIND).u8(0).u8(1 | 1 << 3).u8(call::BIND).u8(1).u8(1 | 1 << 3).u8(call::BIND).u8(2).u8(5);
    s.u8(call::LISTEN).u8(0).u16(1).u8(call::CLOSE).u8(9).u8(call::RECV_FROM).u8(3).u16(5);
    s.u8(call::SEND_TO).u8(3).u16(5).u8(3).u8(call::SEND_TO).u8(3).u16(5).u8(4 | 1 << 3);
    out.push(s.bytes);
    out
}

/// Every target's seeds, by target name.
pub fn seeds() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let frames = frames();
    vec![
        ("ethernet", frames.clone()),
        (
            "arp",
            arps()
                .iter()
                .map(|a| {
                    let mut f = build::arp(a);
                    if a.sender_ip.is_unspecified() {
                        f.extend_from_slice(&[0; 18]);
                    }
                    f
                })
                .collect(),
        ),
        ("ipv4", datagrams()),
        ("icmp", icmps()),
        (
            "udp",
            [udp(7, b"hello, xsknet!\n"), udp(9, b""), {
                let mut d = udp(7, b"no checksum");
                d[6..8].fill(0);
                d
            }]
            .iter()
            .map(|d| with_addresses(d.as_slice()))
            .collect(),
        ),
        ("tcp", tcp_segments().iter().map(|t| with_addresses(t.as_slice())).collect()),
        ("rx_path", rx_scripts()),
        ("socket_api", api_scripts()),
    ]
}
