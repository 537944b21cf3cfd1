//! Differential test: the same raw frames to Linux and to xsknet, the same
//! counters out.
//!
//! Two veth pairs. In the first, the target namespace's kernel owns 10.77.0.2/24
//! and a kernel UDP socket echoes on port 7; in the second, `xsknet echo` serves
//! the same address and port. From each peer namespace the test injects the same
//! list of Ethernet frames through `AF_PACKET` (good ones and every kind of
//! malformed one), then compares the kernel's SNMP counters (the delta of
//! `/proc/net/snmp` and `/proc/net/netstat`, read in the target namespace) with
//! xsknet's JSON report, counter by counter, and prints both columns.
//!
//! Needs root (skips otherwise, fails under `CI`), `iproute2` and `ethtool`.

mod common;

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, UdpSocket},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::*;
use xsknet::testing::{self, in_netns, send_raw_frame, NetNsPair, NetNsPairOptions};
use xsknet::wire::arp::{ArpOperation, ArpRepr};
use xsknet::wire::ethernet::EthernetRepr;
use xsknet::wire::{build, ethernet::ethertype, ipv4::protocol, EthernetAddress};

/// The counters both stacks must agree on, in nstat's names.
const COMPARED: &[&str] = &[
    "IpInReceives",
    "IpInHdrErrors",
    "IpInAddrErrors",
    "IpInUnknownProtos",
    "IpInDelivers",
    "IpOutRequests",
    "IpExtInCsumErrors",
    "IpExtInTruncatedPkts",
    "IpExtInNoECTPkts",
    "IcmpInMsgs",
    "IcmpInErrors",
    "IcmpInCsumErrors",
    "IcmpInEchos",
    "IcmpOutEchoReps",
    "IcmpOutDestUnreachs",
    "IcmpOutMsgs",
    "IcmpMsgInType8",
    "IcmpMsgOutType0",
    "IcmpMsgOutType3",
    "UdpInDatagrams",
    "UdpNoPorts",
    "UdpInErrors",
    "UdpInCsumErrors",
    "UdpOutDatagrams",
];

/// The peer's source port for every datagram; a socket bound there in the peer
/// namespace takes the echoes (else the peer would answer them with ICMP port
/// unreachable, traffic of its own in the counters).
const PEER_PORT: u16 = 40000;
const CLOSED_PORT: u16 = 9999;
/// A unicast MAC that is neither side's.
const OTHER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x99, 0x99];
const PAUSE: Duration = Duration::from_millis(30);

/// Builds the cases for a pair: (target MAC, peer MAC) → frames.
type CaseList = fn([u8; 6], [u8; 6]) -> Vec<Case>;

struct Case {
    name: &'static str,
    frame: Vec<u8>,
    /// Whether a UDP echo server reads it (and so echoes it).
    echoed: bool,
}

/// The frames, from the peer (its MAC, 10.77.0.1) to the target (`dst_mac`,
/// 10.77.0.2). Every one is at least 14 + 20 bytes with 10.77.0.2 at offset 16
/// of the IP header, so xsknet's XDP program hands all of them to xsknet.
/// Three of them provoke ICMP errors: below the per-host burst of 6.
fn cases(dst_mac: [u8; 6], src_mac: [u8; 6]) -> Vec<Case> {
    let (src, dst) = (PEER_ADDR, SERVER_ADDR);
    let udp_to = |dport: u16, payload: &[u8]| udp_datagram(src, dst, PEER_PORT, dport, payload);
    let ip =
        |ident: u16, proto: u8, options: &[u8], payload: &[u8]| ipv4_packet(src, dst, proto, ident, options, payload);
    let eth = |ip: Vec<u8>| eth_frame(dst_mac, src_mac, ethertype::IPV4, &ip);
    // A 2000-byte datagram to a closed port in two fragments: reassembled,
    // then answered with port unreachable.
    let closed_big = udp_to(CLOSED_PORT, &pattern(2000));
    let closed_fragment = |offset: usize, len: usize, mf: bool| {
        let mut p = ip(35, protocol::UDP, &[], &closed_big[offset..offset + len]);
        let word = (u16::from(mf) << 13) | (offset / 8) as u16;
        p[6..8].copy_from_slice(&word.to_be_bytes());
        fix_ipv4_checksum(&mut p);
        eth(p)
    };
    let with_udp = |ident: u16, dport: u16, payload: &[u8], edit: &dyn Fn(&mut Vec<u8>)| {
        let mut d = udp_to(dport, payload);
        edit(&mut d);
        eth(ip(ident, protocol::UDP, &[], &d))
    };
    let with_ip = |ident: u16, edit: &dyn Fn(&mut Vec<u8>)| {
        let mut p = ip(ident, protocol::UDP, &[], &udp_to(ECHO_PORT, b"malformed ip header"));
        edit(&mut p);
        eth(p)
    };
    let bad_udp_csum = |d: &mut Vec<u8>| {
        let good = u16::from_be_bytes([d[6], d[7]]);
        let bad: u16 = if good == 0x1234 { 0x4321 } else { 0x1234 };
        d[6..8].copy_from_slice(&bad.to_be_bytes());
    };
    let nothing = |_: &mut Vec<u8>| {};

    let mut padded = eth(ip(3, protocol::UDP, &[], &udp_to(ECHO_PORT, b"hi")));
    assert!(padded.len() < 60);
    padded.resize(60, 0);

    let echo = icmp_echo_request(0x4242, 1, b"differential ping 0123456789");
    let mut bad_echo = echo.clone();
    bad_echo[2] ^= 0x5a;

    let mut other_host = eth(ip(18, protocol::UDP, &[], &udp_to(ECHO_PORT, b"not for you")));
    other_host[..6].copy_from_slice(&OTHER_MAC);

    vec![
        Case {
            name: "good UDP to port 7",
            frame: with_udp(1, ECHO_PORT, b"hello differential", &nothing),
            echoed: true,
        },
        Case {
            name: "good UDP, IP options (IHL 6, 4 x NOP)",
            frame: eth(ip(2, protocol::UDP, &[1, 1, 1, 1], &udp_to(ECHO_PORT, b"with ip options"))),
            echoed: true,
        },
        Case { name: "good UDP, Ethernet padding (60-byte frame)", frame: padded, echoed: true },
        Case {
            name: "UDP checksum 0 (none) to port 7",
            frame: with_udp(4, ECHO_PORT, b"no checksum", &|d| {
                d[6] = 0;
                d[7] = 0;
            }),
            echoed: true,
        },
        Case {
            name: "UDP bad checksum to port 7",
            frame: with_udp(5, ECHO_PORT, b"bad checksum, open port", &bad_udp_csum),
            echoed: false,
        },
        Case {
            name: "UDP bad checksum to a closed port",
            frame: with_udp(6, CLOSED_PORT, b"bad checksum, closed port", &bad_udp_csum),
            echoed: false,
        },
        Case { name: "UDP to a closed port", frame: with_udp(7, CLOSED_PORT, b"closed port", &nothing), echoed: false },
        Case {
            name: "UDP length > IP payload",
            frame: with_udp(8, ECHO_PORT, b"udp length too long", &|d| {
                let len = d.len() as u16 + 10;
                d[4..6].copy_from_slice(&len.to_be_bytes());
            }),
            echoed: false,
        },
        Case {
            name: "UDP length < 8",
            frame: with_udp(9, ECHO_PORT, b"udp length too short", &|d| {
                d[4..6].copy_from_slice(&4u16.to_be_bytes());
            }),
            echoed: false,
        },
        Case { name: "IP bad header checksum", frame: with_ip(10, &|p| p[10] ^= 0xff), echoed: false },
        Case {
            name: "IP version 6 in an IPv4 frame",
            frame: with_ip(11, &|p| {
                p[0] = 0x65;
                fix_ipv4_checksum(p);
            }),
            echoed: false,
        },
        Case {
            name: "IP IHL 4",
            frame: with_ip(12, &|p| {
                p[0] = 0x44;
                fix_ipv4_checksum(p);
            }),
            echoed: false,
        },
        Case {
            name: "IP total length > frame (truncated)",
            frame: with_ip(13, &|p| {
                let len = p.len() as u16 + 40;
                p[2..4].copy_from_slice(&len.to_be_bytes());
                fix_ipv4_checksum(p);
            }),
            echoed: false,
        },
        Case {
            name: "IP total length < IHL*4",
            frame: with_ip(14, &|p| {
                p[2..4].copy_from_slice(&16u16.to_be_bytes());
                fix_ipv4_checksum(p);
            }),
            echoed: false,
        },
        Case { name: "IP protocol 253 (unknown)", frame: eth(ip(15, 253, &[], b"experimental")), echoed: false },
        Case { name: "ICMP echo request", frame: eth(ip(16, protocol::ICMP, &[], &echo)), echoed: false },
        Case {
            name: "ICMP echo request, bad checksum",
            frame: eth(ip(17, protocol::ICMP, &[], &bad_echo)),
            echoed: false,
        },
        Case { name: "good UDP to another host's MAC", frame: other_host, echoed: false },
        Case {
            name: "2000-byte UDP to a closed port, fragment 2 of 2",
            frame: closed_fragment(1480, 528, false),
            echoed: false,
        },
        Case {
            name: "2000-byte UDP to a closed port, fragment 1 of 2 (port unreachable)",
            frame: closed_fragment(0, 1480, true),
            echoed: false,
        },
    ]
}

/// What one run produced.
struct Run {
    /// Counter values: the kernel's deltas, or xsknet's report.
    counters: BTreeMap<String, i64>,
    /// Payloads the peer got back, sorted.
    echoes: Vec<Vec<u8>>,
    /// Linux only: the counters each case changed.
    per_case: Vec<(&'static str, BTreeMap<String, i64>)>,
}

fn peer_options(addr: Option<(Ipv4Addr, u8)>) -> NetNsPairOptions {
    NetNsPairOptions { addr, peer_addr: Some((PEER_ADDR, PREFIX)), ipv6: false, ..NetNsPairOptions::default() }
}

/// A socket on the peer's source port that takes the echoes.
fn peer_sink(pair: &NetNsPair) -> UdpSocket {
    let s = in_netns(pair.peer_ns(), || UdpSocket::bind((PEER_ADDR, PEER_PORT))).expect("bind the peer's sink");
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    s
}

/// Reads echoes until `expected` arrived and then nothing more for a moment,
/// or until nothing arrives for the socket's timeout.
fn collect_echoes(sink: &UdpSocket, expected: usize) -> Vec<Vec<u8>> {
    let mut echoes = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        match sink.recv_from(&mut buf) {
            Ok((n, from)) => {
                assert_eq!(from, (SERVER_ADDR, ECHO_PORT).into());
                echoes.push(buf[..n].to_vec());
            }
            Err(_) if echoes.len() >= expected => break,
            Err(_) => {}
        }
    }
    echoes.sort();
    echoes
}

/// Waits until the path to 10.77.0.2 answers ARP: the link is up and the
/// target stack is serving. ARP is in none of the compared counters.
fn wait_for_arp(pair: &NetNsPair) {
    let mac =
        arp_probe(pair.peer_ns(), pair.peer_ifname(), pair.peer_mac(), PEER_ADDR, SERVER_ADDR, Duration::from_secs(5))
            .expect("10.77.0.2 never answered ARP");
    assert_eq!(mac, pair.mac(), "ARP reply with the wrong MAC");
}

fn delta(after: &BTreeMap<String, i64>, before: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0))).collect()
}

/// Section prefixes of the IPv4 counters (TCP, MPTCP and the rest are noise here).
fn ipv4_counter(name: &str) -> bool {
    ["Ip", "Icmp", "Udp"].iter().any(|p| name.starts_with(p))
        && !name.starts_with("UdpLite")
        && !name.starts_with("IpForwarding")
        && !name.starts_with("IpDefaultTTL")
}

fn run_linux(cases: CaseList) -> Run {
    let pair = NetNsPair::with_options(&peer_options(Some((SERVER_ADDR, PREFIX)))).expect("netns pair");
    // The kernel's echo server, on a thread with a socket made in the target
    // namespace; the read timeout lets it see the stop flag.
    let server = in_netns(pair.ns(), || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, ECHO_PORT)))
        .expect("bind the kernel echo server");
    server.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let read = Arc::new(AtomicU64::new(0));
    let thread = {
        let (stop, read) = (stop.clone(), read.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = server.recv_from(&mut buf) {
                    read.fetch_add(1, Ordering::SeqCst);
                    // An echo may fail (no route back): the kernel counts that.
                    let _ = server.send_to(&buf[..n], from);
                }
            }
        })
    };
    let sink = peer_sink(&pair);
    wait_for_arp(&pair);

    let cases = cases(pair.mac(), pair.peer_mac());
    let first = kernel_counters(pair.ns());
    let mut before = first.clone();
    let mut per_case = Vec::new();
    let mut expected_reads = 0;
    for case in &cases {
        send_raw_frame(pair.peer_ns(), pair.peer_ifname(), &case.frame)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        if case.echoed {
            expected_reads += 1;
        }
        // UdpInDatagrams counts when the application reads.
        let deadline = Instant::now() + Duration::from_secs(2);
        while read.load(Ordering::SeqCst) < expected_reads && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(PAUSE);
        let now = kernel_counters(pair.ns());
        let d: BTreeMap<_, _> = delta(&now, &before).into_iter().filter(|(k, v)| *v != 0 && ipv4_counter(k)).collect();
        per_case.push((case.name, d));
        before = now;
    }
    std::thread::sleep(Duration::from_millis(100));
    let last = kernel_counters(pair.ns());
    let echoes = collect_echoes(&sink, expected_reads as usize);
    stop.store(true, Ordering::Relaxed);
    thread.join().expect("echo server thread");
    eprintln!("the kernel echo server read {} datagrams ({expected_reads} expected)", read.load(Ordering::SeqCst));
    Run { counters: delta(&last, &first), echoes, per_case }
}

fn run_xsknet(cases: CaseList) -> Run {
    let pair = NetNsPair::with_options(&peer_options(None)).expect("netns pair");
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &[]);
    let sink = peer_sink(&pair);
    wait_for_arp(&pair);
    let cases = cases(pair.mac(), pair.peer_mac());
    for case in &cases {
        send_raw_frame(pair.peer_ns(), pair.peer_ifname(), &case.frame)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        std::thread::sleep(PAUSE);
    }
    let expected = cases.iter().filter(|c| c.echoed).count();
    let echoes = collect_echoes(&sink, expected);
    std::thread::sleep(Duration::from_millis(100));
    let f = x.stop();
    f.assert_clean_exit();
    let counters = f.json["counters"]
        .as_object()
        .expect("counters object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_i64().expect("integer counter")))
        .collect();
    eprintln!("xsknet report:\n{}", f.stdout);
    Run { counters, echoes, per_case: Vec::new() }
}

/// Prints what Linux counted per case and the two columns for `names`, and
/// returns the names whose values differ.
fn compare(linux: &Run, xsk: &Run, names: &[&'static str]) -> Vec<&'static str> {
    eprintln!("\nLinux, counters changed by each case:");
    for (name, d) in &linux.per_case {
        let changes: Vec<String> = d.iter().map(|(k, v)| format!("{k} {v:+}")).collect();
        eprintln!("  {name:<42} {}", changes.join(" "));
    }
    let mismatches = counter_table(&linux.counters, &xsk.counters, names);
    // Anything else Linux counted in these sections, for the reader.
    let others: Vec<String> = linux
        .counters
        .iter()
        .filter(|(k, v)| **v != 0 && ipv4_counter(k) && !names.contains(&k.as_str()))
        .map(|(k, v)| {
            let x = xsk.counters.get(k).map_or("-".to_string(), |x| x.to_string());
            format!("{k} linux {v} xsknet {x}")
        })
        .collect();
    eprintln!("  not compared, changed on Linux: {}", others.join("; "));
    eprintln!("  echoes at the peer: linux {} xsknet {}", linux.echoes.len(), xsk.echoes.len());
    mismatches
}

#[test]
fn same_frames_same_counters_as_linux() {
    if !testing::require_root("same_frames_same_counters_as_linux") {
        return;
    }
    let linux = run_linux(cases);
    let xsk = run_xsknet(cases);
    let mut names = COMPARED.to_vec();
    names.extend(["IpReasmReqds", "IpReasmOKs", "IpReasmFails"]);
    let mismatches = compare(&linux, &xsk, &names);
    assert_eq!(linux.echoes.len(), 4, "the kernel echoed {:?}", linux.echoes);
    assert_eq!(xsk.echoes, linux.echoes, "xsknet echoed other datagrams than Linux");
    assert!(mismatches.is_empty(), "counters differ between Linux and xsknet: {mismatches:?} (table above)");
}

/// Frames where Linux's answer does not depend on sysctls, beyond the first
/// list: martian sources, a source with no route back, ECN marks, ICMP types
/// xsknet only counts, an IP fragment, and ten datagrams to a closed port (past
/// the per-host ICMP burst of 6, so the rate limit shows).
///
/// ICMP errors of every type Linux delivers, whole and with quotes too short
/// to deliver, and timestamp requests (answered).
///
/// Left out on purpose: a subnet-broadcast source (Linux accepts it when
/// rp_filter is 0, as in a fresh namespace, and drops it as a martian when
/// rp_filter is on; xsknet drops it).
fn more_cases(dst_mac: [u8; 6], src_mac: [u8; 6]) -> Vec<Case> {
    let eth = |ip: Vec<u8>| eth_frame(dst_mac, src_mac, ethertype::IPV4, &ip);
    let udp_from = |ident: u16, src: Ipv4Addr, dport: u16, tos: u8| {
        let d = udp_datagram(src, SERVER_ADDR, PEER_PORT, dport, b"more cases");
        let mut p = ipv4_packet(src, SERVER_ADDR, protocol::UDP, ident, &[], &d);
        p[1] = tos;
        fix_ipv4_checksum(&mut p);
        eth(p)
    };
    let icmp = |ident: u16, msg: Vec<u8>| eth(ipv4_packet(PEER_ADDR, SERVER_ADDR, protocol::ICMP, ident, &[], &msg));
    // An ICMP message: type, code, checksum, then `rest`.
    let icmp_msg = |msg_type: u8, code: u8, rest: &[u8]| {
        let mut m = vec![msg_type, code, 0, 0];
        m.extend_from_slice(rest);
        let c = xsknet::wire::checksum::checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        m
    };
    // What a port unreachable from the peer quotes: a datagram we sent it.
    let quoted = ipv4_packet(
        SERVER_ADDR,
        PEER_ADDR,
        protocol::UDP,
        77,
        &[],
        &udp_datagram(SERVER_ADDR, PEER_ADDR, ECHO_PORT, PEER_PORT, b"x"),
    );
    let unreach_body = [&[0u8; 4][..], &quoted].concat();
    // Datagrams no socket sent: UDP from port 5555, and TCP from port 5555 with no connection.
    let nobodys = ipv4_packet(
        SERVER_ADDR,
        PEER_ADDR,
        protocol::UDP,
        78,
        &[],
        &udp_datagram(SERVER_ADDR, PEER_ADDR, 5555, PEER_PORT, b"x"),
    );
    let nobodys_body = [&[0u8; 4][..], &nobodys].concat();
    let tcp_quote = ipv4_packet(SERVER_ADDR, PEER_ADDR, protocol::TCP, 79, &[], &[0x15, 0xb3, 0x9c, 0x40, 0, 0, 0, 1]);
    let tcp_body = [&[0u8; 4][..], &tcp_quote].concat();
    // Identifier 9, sequence 1, an originate timestamp, receive and transmit 0.
    let timestamp_body = [0, 9, 0, 1, 0x01, 0x02, 0x03, 0x04, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut fragment = ipv4_packet(
        PEER_ADDR,
        SERVER_ADDR,
        protocol::UDP,
        30,
        &[],
        &udp_datagram(PEER_ADDR, SERVER_ADDR, PEER_PORT, ECHO_PORT, b"first fragment!!"),
    );
    fragment[6] = 0x20; // MF, offset 0
    fix_ipv4_checksum(&mut fragment);
    // Fragment `[offset, offset + len)` of the IP payload `dgram`, MF as given.
    let frag = |ident: u16, dgram: &[u8], offset: usize, len: usize, mf: bool| {
        let mut p = ipv4_packet(PEER_ADDR, SERVER_ADDR, protocol::UDP, ident, &[], &dgram[offset..offset + len]);
        let word = (u16::from(mf) << 13) | (offset / 8) as u16;
        p[6..8].copy_from_slice(&word.to_be_bytes());
        fix_ipv4_checksum(&mut p);
        eth(p)
    };
    let echo_big = udp_datagram(PEER_ADDR, SERVER_ADDR, PEER_PORT, ECHO_PORT, &pattern(3000));
    let case = |name, frame, echoed| Case { name, frame, echoed };

    let mut v = vec![
        case("UDP from 0.0.0.0 (martian)", udp_from(20, Ipv4Addr::UNSPECIFIED, ECHO_PORT, 0), false),
        case("UDP from 127.0.0.1 (martian)", udp_from(21, Ipv4Addr::LOCALHOST, ECHO_PORT, 0), false),
        case("UDP from our own 10.77.0.2 (martian)", udp_from(22, SERVER_ADDR, ECHO_PORT, 0), false),
        case("UDP from 224.0.0.5 (martian)", udp_from(24, Ipv4Addr::new(224, 0, 0, 5), ECHO_PORT, 0), false),
        case("UDP from 192.0.2.1 (no route back)", udp_from(25, Ipv4Addr::new(192, 0, 2, 1), ECHO_PORT, 0), false),
        case("UDP, ECT(0)", udp_from(26, PEER_ADDR, ECHO_PORT, 0x02), true),
        case("UDP, CE", udp_from(27, PEER_ADDR, ECHO_PORT, 0x03), true),
        case("ICMP type 99 (unknown)", icmp(29, icmp_msg(99, 0, &[0; 4])), false),
        case("ICMP, 4 bytes, good checksum", icmp(31, icmp_msg(8, 0, &[])), false),
        case("ICMP echo reply", icmp(32, icmp_msg(0, 0, &[0, 1, 0, 1])), false),
        case("ICMP port unreachable", icmp(33, icmp_msg(3, 3, &unreach_body)), false),
        case("ICMP dest unreachable quoting nothing", icmp(34, icmp_msg(3, 3, &[0; 4])), false),
        case("ICMP timestamp request", icmp(50, icmp_msg(13, 0, &timestamp_body)), false),
        case("ICMP timestamp request, 3 data bytes", icmp(51, icmp_msg(13, 0, &[0, 9, 0, 2, 1, 2, 3])), false),
        case("ICMP time exceeded quoting 20 bytes", icmp(52, icmp_msg(11, 0, &unreach_body[..24])), false),
        case("ICMP time exceeded", icmp(53, icmp_msg(11, 0, &unreach_body)), false),
        case("ICMP parameter problem", icmp(54, icmp_msg(12, 0, &unreach_body)), false),
        case("ICMP source quench", icmp(55, icmp_msg(4, 0, &unreach_body)), false),
        case("ICMP redirect quoting 12 bytes", icmp(56, icmp_msg(5, 0, &unreach_body[..16])), false),
        case("ICMP redirect", icmp(57, icmp_msg(5, 1, &unreach_body)), false),
        case("ICMP dest unreachable code 16, 24 bytes", icmp(58, icmp_msg(3, 16, &unreach_body[..28])), false),
        case("ICMP host unreachable, 24 bytes", icmp(59, icmp_msg(3, 1, &unreach_body[..28])), false),
        case("ICMP port unreachable, UDP no socket sent", icmp(60, icmp_msg(3, 3, &nobodys_body)), false),
        case("ICMP port unreachable, TCP of no connection", icmp(61, icmp_msg(3, 3, &tcp_body)), false),
        case("ICMP time exceeded, UDP no socket sent", icmp(62, icmp_msg(11, 0, &nobodys_body)), false),
        case("ICMP extended echo request (RFC 8335)", icmp(63, icmp_msg(42, 0, &[0, 1, 1, 0])), false),
        case("IP fragment (MF, offset 0)", eth(fragment), false),
        case("overlapping fragments: 0..1480", frag(36, &echo_big, 0, 1480, true), false),
        case("overlapping fragments: 1000..2480", frag(36, &echo_big, 1000, 1480, true), false),
        case("duplicate fragment: 0..1480", frag(37, &echo_big, 0, 1480, true), false),
        case("duplicate fragment: 0..1480 again", frag(37, &echo_big, 0, 1480, true), false),
        case("fragment past the end: last 1480..2000", frag(38, &echo_big, 1480, 520, false), false),
        case("fragment past the end: 2000..2008", frag(38, &echo_big, 2000, 8, true), false),
    ];
    for i in 0..10 {
        v.push(case("UDP to a closed port (rate limit)", udp_from(40 + i, PEER_ADDR, CLOSED_PORT, 0), false));
    }
    v
}

#[test]
fn more_frames_same_counters_as_linux() {
    if !testing::require_root("more_frames_same_counters_as_linux") {
        return;
    }
    let linux = run_linux(more_cases);
    let xsk = run_xsknet(more_cases);
    let mut names = COMPARED.to_vec();
    names.extend([
        "IpOutNoRoutes",
        "IpReasmReqds",
        "IpReasmOKs",
        "IpReasmFails",
        "IpExtReasmOverlaps",
        "IpExtInECT0Pkts",
        "IpExtInCEPkts",
        "IcmpInDestUnreachs",
        "IcmpInEchoReps",
        "IcmpMsgInType0",
        "IcmpMsgInType3",
        "IcmpOutRateLimitHost",
        "IcmpInTimestamps",
        "IcmpInTimeExcds",
        "IcmpInParmProbs",
        "IcmpInSrcQuenchs",
        "IcmpInRedirects",
        "IcmpOutTimestampReps",
        "IcmpMsgInType4",
        "IcmpMsgInType5",
        "IcmpMsgInType11",
        "IcmpMsgInType12",
        "IcmpMsgInType13",
        "IcmpMsgOutType14",
        "IcmpMsgInType42",
    ]);
    let mut mismatches = compare(&linux, &xsk, &names);
    // Linux counts the timestamp reply as an echo reply: icmp_reply() leaves
    // fl4_icmp_type 0, and __ip_make_skb() counts a raw socket's ICMP by it
    // (the ICMP control socket is SOCK_RAW). xsknet counts it by its type
    // (docs/architecture.md); the replies sent, together, are the same.
    let get = |r: &Run, k: &str| r.counters.get(k).copied().unwrap_or(0);
    for (echo, ts) in [("IcmpOutEchoReps", "IcmpOutTimestampReps"), ("IcmpMsgOutType0", "IcmpMsgOutType14")] {
        assert_eq!(get(&linux, ts), 0, "Linux counted {ts}: the quirk below is gone, compare directly");
        assert_eq!(get(&linux, echo), get(&xsk, echo) + get(&xsk, ts), "{echo} + {ts}");
        mismatches.retain(|m| *m != echo && *m != ts);
    }
    assert_eq!(xsk.echoes, linux.echoes, "xsknet echoed other datagrams than Linux");
    assert!(mismatches.is_empty(), "counters differ between Linux and xsknet: {mismatches:?} (table above)");
}

/// Issue 8, items 1, 3 and 4: frames the XDP program used to leave to the
/// kernel (another address, unreadable headers) and frames whose answer
/// depends on the link-layer destination (`pkt_type`) or on the IP options.
/// Each example of the issue is here: IHL 6 with option bytes `07 ff 00 00`
/// (parameter problem, IpInHdrErrors), a closed port in a frame to the
/// Ethernet broadcast (UdpNoPorts, no ICMP), a datagram for us in a frame to
/// a multicast MAC (delivered); with the rest of their kind.
fn ingress_cases(dst_mac: [u8; 6], src_mac: [u8; 6]) -> Vec<Case> {
    const BCAST: [u8; 6] = [0xff; 6];
    const MCAST: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01];
    let subnet_bcast = Ipv4Addr::new(10, 77, 0, 255);
    let frame = |mac: [u8; 6], ip: Vec<u8>| eth_frame(mac, src_mac, ethertype::IPV4, &ip);
    let udp = |ident: u16, dst: Ipv4Addr, dport: u16, options: &[u8], payload: &[u8]| {
        let d = udp_datagram(PEER_ADDR, dst, PEER_PORT, dport, payload);
        ipv4_packet(PEER_ADDR, dst, protocol::UDP, ident, options, &d)
    };
    let echo = |ident: u16, dst: Ipv4Addr| {
        ipv4_packet(PEER_ADDR, dst, protocol::ICMP, ident, &[], &icmp_echo_request(0x4343, ident, b"ingress ping"))
    };
    let syn = {
        let repr = xsknet::wire::tcp::TcpRepr {
            src_port: PEER_PORT,
            dst_port: ECHO_PORT,
            seq: 1,
            flags: xsknet::wire::tcp::flags::SYN,
            window: 1000,
            ..Default::default()
        };
        let seg = xsknet::wire::build::tcp(PEER_ADDR, SERVER_ADDR, &repr, &[]);
        ipv4_packet(PEER_ADDR, SERVER_ADDR, protocol::TCP, 90, &[], &seg)
    };
    let case = |name, frame, echoed| Case { name, frame, echoed };
    vec![
        case(
            "IP options 07 ff 00 00 (length past the header)",
            frame(dst_mac, udp(60, SERVER_ADDR, ECHO_PORT, &[0x07, 0xff, 0, 0], b"opt")),
            false,
        ),
        case(
            "IP options: timestamp pointer 4",
            frame(dst_mac, udp(61, SERVER_ADDR, ECHO_PORT, &[0x44, 0x08, 0x04, 0, 0, 0, 0, 0], b"ts")),
            false,
        ),
        case(
            "IP options: CIPSO (no DOI)",
            frame(dst_mac, udp(62, SERVER_ADDR, ECHO_PORT, &[0x86, 0x08, 0, 0, 0, 1, 0, 0], b"cipso")),
            false,
        ),
        case(
            "IP options: record route with room",
            frame(dst_mac, udp(63, SERVER_ADDR, ECHO_PORT, &[0x07, 0x07, 0x04, 0, 0, 0, 0, 0], b"rr ok")),
            true,
        ),
        case(
            "IP options: loose source route",
            frame(dst_mac, udp(64, SERVER_ADDR, ECHO_PORT, &[0x83, 0x07, 0x04, 10, 77, 0, 1, 0], b"lsrr")),
            false,
        ),
        case(
            "IP options: bad, broadcast MAC (no ICMP)",
            frame(BCAST, udp(65, SERVER_ADDR, ECHO_PORT, &[0x07, 0xff, 0, 0], b"opt")),
            false,
        ),
        case(
            "UDP closed port, broadcast MAC",
            frame(BCAST, udp(66, SERVER_ADDR, CLOSED_PORT, &[], b"bcast mac")),
            false,
        ),
        case(
            "UDP closed port, multicast MAC",
            frame(MCAST, udp(67, SERVER_ADDR, CLOSED_PORT, &[], b"mcast mac")),
            false,
        ),
        case(
            "UDP to port 7, multicast MAC",
            frame(MCAST, udp(68, SERVER_ADDR, ECHO_PORT, &[], b"for us, mcast mac")),
            true,
        ),
        case(
            "UDP to port 7, broadcast MAC",
            frame(BCAST, udp(69, SERVER_ADDR, ECHO_PORT, &[], b"for us, bcast mac")),
            true,
        ),
        case("ICMP echo, broadcast MAC", frame(BCAST, echo(70, SERVER_ADDR)), false),
        case("TCP SYN, broadcast MAC", frame(BCAST, syn), false),
        case(
            "IP protocol 253, broadcast MAC (no ICMP)",
            frame(BCAST, ipv4_packet(PEER_ADDR, SERVER_ADDR, 253, 71, &[], b"x")),
            false,
        ),
        case(
            "UDP to another address, our MAC",
            frame(dst_mac, udp(72, Ipv4Addr::new(10, 77, 0, 77), ECHO_PORT, &[], b"not me")),
            false,
        ),
        case(
            "UDP to the subnet broadcast, closed port",
            frame(BCAST, udp(73, subnet_bcast, CLOSED_PORT, &[], b"all")),
            false,
        ),
        case(
            "UDP to 255.255.255.255, port 7",
            frame(BCAST, udp(74, Ipv4Addr::BROADCAST, ECHO_PORT, &[], b"limited broadcast")),
            true,
        ),
        case("ICMP echo to the subnet broadcast", frame(BCAST, echo(75, subnet_bcast)), false),
        case(
            "UDP to 224.0.0.1, closed port",
            frame(MCAST, udp(76, Ipv4Addr::new(224, 0, 0, 1), CLOSED_PORT, &[], b"all hosts")),
            false,
        ),
        case(
            "UDP to 239.1.2.3 (not joined)",
            frame([0x01, 0, 0x5e, 1, 2, 3], udp(77, Ipv4Addr::new(239, 1, 2, 3), ECHO_PORT, &[], b"group")),
            false,
        ),
        case(
            "IPv4 header cut at 12 bytes",
            frame(dst_mac, udp(78, SERVER_ADDR, ECHO_PORT, &[], b"cut")[..12].to_vec()),
            false,
        ),
        case(
            "IP options: bad, to another address",
            frame(dst_mac, udp(79, Ipv4Addr::new(10, 77, 0, 77), ECHO_PORT, &[0x07, 0xff, 0, 0], b"opt")),
            false,
        ),
        case(
            "IP options: bad, ICMP echo",
            frame(dst_mac, {
                let body = icmp_echo_request(0x4343, 80, b"ingress ping");
                ipv4_packet(PEER_ADDR, SERVER_ADDR, protocol::ICMP, 80, &[0x94, 0x02, 0, 0], &body)
            }),
            false,
        ),
        case(
            "IP options: bad, ICMP port unreachable (an error)",
            frame(dst_mac, {
                let quoted = udp(81, PEER_ADDR, PEER_PORT, &[], b"q");
                let mut m = vec![3, 3, 0, 0, 0, 0, 0, 0];
                m.extend_from_slice(&quoted);
                let c = xsknet::wire::checksum::checksum(&m);
                m[2..4].copy_from_slice(&c.to_be_bytes());
                ipv4_packet(PEER_ADDR, SERVER_ADDR, protocol::ICMP, 81, &[0x07, 0xff, 0, 0], &m)
            }),
            false,
        ),
        case(
            "IP options: router alert",
            frame(dst_mac, udp(82, SERVER_ADDR, ECHO_PORT, &[0x94, 0x04, 0, 0], b"ra ok")),
            true,
        ),
        case(
            "IP options: bad, fragment at offset 8",
            frame(dst_mac, {
                let mut p = udp(83, SERVER_ADDR, ECHO_PORT, &[0x07, 0xff, 0, 0], b"frag");
                p[6] = 0x00;
                p[7] = 0x01;
                fix_ipv4_checksum(&mut p);
                p
            }),
            false,
        ),
        case(
            "UDP to 0.0.0.0 (martian destination)",
            frame(dst_mac, udp(84, Ipv4Addr::UNSPECIFIED, ECHO_PORT, &[], b"zero")),
            false,
        ),
        case(
            "UDP from our own address to the subnet broadcast",
            frame(BCAST, {
                let d = udp_datagram(SERVER_ADDR, subnet_bcast, PEER_PORT, ECHO_PORT, b"me");
                ipv4_packet(SERVER_ADDR, subnet_bcast, protocol::UDP, 85, &[], &d)
            }),
            false,
        ),
    ]
}

#[test]
fn ingress_frames_same_counters_as_linux() {
    if !testing::require_root("ingress_frames_same_counters_as_linux") {
        return;
    }
    let linux = run_linux(ingress_cases);
    let xsk = run_xsknet(ingress_cases);
    let mut names = COMPARED.to_vec();
    names.extend([
        "IpExtInBcastPkts",
        "IpExtInBcastOctets",
        "IpExtInMcastPkts",
        "IpExtInMcastOctets",
        "IcmpOutParmProbs",
        "IcmpMsgOutType12",
        "IcmpMsgInType8",
        "IcmpInDestUnreachs",
        "IcmpOutRateLimitHost",
        "IpReasmReqds",
        "UdpIgnoredMulti",
        "TcpInSegs",
        "TcpOutRsts",
    ]);
    let mismatches = compare(&linux, &xsk, &names);
    assert_eq!(linux.echoes.len(), 5, "the kernel echoed {:?}", linux.echoes);
    assert_eq!(xsk.echoes, linux.echoes, "xsknet echoed other datagrams than Linux");
    assert!(mismatches.is_empty(), "counters differ between Linux and xsknet: {mismatches:?} (table above)");
}

/// An entry as `ip neigh` shows it: (lladdr, state).
type NeighView = (Option<String>, String);

const GARP_MAC_1: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x77, 0x01];
const GARP_MAC_2: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x77, 0x02];

/// A gratuitous ARP from the peer's address with `mac`: a request (target
/// MAC zero) or a reply (target MAC = `mac`), broadcast.
fn gratuitous_arp(op: ArpOperation, mac: [u8; 6]) -> Vec<u8> {
    let repr = ArpRepr {
        operation: op,
        sender_hw: EthernetAddress(mac),
        sender_ip: PEER_ADDR,
        target_hw: if op == ArpOperation::Reply { EthernetAddress(mac) } else { EthernetAddress::default() },
        target_ip: PEER_ADDR,
    };
    build::arp_frame(
        &EthernetRepr { dst: EthernetAddress::BROADCAST, src: EthernetAddress(mac), ethertype: ethertype::ARP },
        &repr,
    )
}

/// `view` with the peer's own MAC (random per pair) written `peer`.
fn peer_as_name(view: Option<NeighView>, pair: &NetNsPair) -> Option<NeighView> {
    let peer = testing::format_mac(pair.peer_mac());
    view.map(|(mac, state)| (mac.map(|m| if m == peer { "peer".to_string() } else { m }), state))
}

/// The kernel's entry for the peer, from `ip -j neigh show`.
fn kernel_neigh(pair: &NetNsPair) -> Option<NeighView> {
    let out = pair.run(&["ip", "-j", "neigh", "show", &PEER_ADDR.to_string(), "dev", pair.ifname()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j neigh");
    let e = v.as_array()?.first()?;
    let state = e["state"].as_array()?.first()?.as_str()?.to_string();
    Some((e["lladdr"].as_str().map(str::to_string), state))
}

/// xsknet's entry for the peer, from the report's `neighbours`.
fn xsknet_neigh(json: &serde_json::Value) -> Option<NeighView> {
    let e = json["neighbours"].as_array()?.iter().find(|e| e["ip"] == PEER_ADDR.to_string())?;
    Some((e["lladdr"].as_str().map(str::to_string), e["state"].as_str()?.to_string()))
}

/// The peer's gratuitous ARP (issue 8, item 2): a request, then a reply, each
/// announcing a new MAC for 10.77.0.1, which both sides learnt from the
/// peer's request for 10.77.0.2; the target's entry for the peer after each
/// step is the same in Linux and in xsknet. Needs the XDP program to hand
/// xsknet every ARP (not only ARP for its address).
#[test]
fn gratuitous_arp_updates_the_neighbour_as_linux() {
    if !testing::require_root("gratuitous_arp_updates_the_neighbour_as_linux") {
        return;
    }
    let frames = [gratuitous_arp(ArpOperation::Request, GARP_MAC_1), gratuitous_arp(ArpOperation::Reply, GARP_MAC_2)];

    let pair = NetNsPair::with_options(&peer_options(Some((SERVER_ADDR, PREFIX)))).expect("netns pair");
    wait_for_arp(&pair);
    let mut linux = vec![peer_as_name(kernel_neigh(&pair), &pair)];
    for f in &frames {
        send_raw_frame(pair.peer_ns(), pair.peer_ifname(), f).expect("send the gratuitous ARP");
        std::thread::sleep(PAUSE);
        linux.push(peer_as_name(kernel_neigh(&pair), &pair));
    }
    drop(pair);

    // xsknet's table is read from the exit report: one run per step.
    let mut xsk = Vec::new();
    for n in 0..=frames.len() {
        let pair = NetNsPair::with_options(&peer_options(None)).expect("netns pair");
        let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &[]);
        wait_for_arp(&pair);
        for f in &frames[..n] {
            send_raw_frame(pair.peer_ns(), pair.peer_ifname(), f).expect("send the gratuitous ARP");
            std::thread::sleep(PAUSE);
        }
        let f = x.stop();
        f.assert_clean_exit();
        xsk.push(peer_as_name(xsknet_neigh(&f.json), &pair));
    }
    eprintln!("linux:  {linux:?}\nxsknet: {xsk:?}");
    let mac = |m: [u8; 6]| Some(testing::format_mac(m));
    assert_eq!(linux[0], Some((Some("peer".into()), "STALE".into())), "Linux learns the asking peer");
    assert_eq!(linux[1].as_ref().map(|e| e.0.clone()), Some(mac(GARP_MAC_1)), "Linux takes the new MAC");
    assert_eq!(linux[2].as_ref().map(|e| e.0.clone()), Some(mac(GARP_MAC_2)));
    assert_eq!(xsk, linux, "the peer's entry after the request for us, a gratuitous request, a gratuitous reply");
}
