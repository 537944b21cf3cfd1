//! IP fragments over the in-memory device: reassembly (`ip_defrag`) in order,
//! out of order, with duplicates and overlaps, its timeout and memory bound;
//! fragmentation on send (`ip_do_fragment`), DF and `IP_MTU_DISCOVER`, and
//! the path MTU that ICMP fragmentation-needed lowers. No kernel, no root:
//! virtual time is passed to `poll`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xsknet::netdevice::{MemDevice, MemWire};
use xsknet::umem::Umem;
use xsknet::wire::arp::{ArpOperation, ArpRepr};
use xsknet::wire::checksum;
use xsknet::wire::ethernet::{ethertype, EthernetFrame, EthernetRepr, HEADER_LEN as ETH_LEN};
use xsknet::wire::icmp::{IcmpPacket, IcmpRepr};
use xsknet::wire::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use xsknet::wire::udp::UdpRepr;
use xsknet::wire::{build, EthernetAddress};
use xsknet::{Errno, Fd, PmtuDisc, SockOpt, SockType, Stack, StackConfig};

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PORT: u16 = 7000;

fn stack_frames(frames: u32) -> (Stack<MemDevice>, MemWire) {
    let (umem, pool) = Umem::new(frames, 2048).unwrap();
    let umem = Arc::new(umem);
    let dev = MemDevice::new(umem.clone(), 64, 64);
    let wire = dev.wire();
    let c = StackConfig::new(OUR_MAC, OUR_IP, 24);
    (Stack::new(dev, umem, Arc::new(pool), c), wire)
}

fn stack() -> (Stack<MemDevice>, MemWire) {
    stack_frames(512)
}

fn eth(payload: &[u8]) -> Vec<u8> {
    build::ethernet(&EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::IPV4 }, payload)
}

/// A UDP datagram from the peer to `dport`, header and payload.
fn udp_datagram(dport: u16, payload: &[u8]) -> Vec<u8> {
    build::udp(PEER_IP, OUR_IP, &UdpRepr { src_port: 5555, dst_port: dport, payload_len: 0 }, payload)
}

/// The fragment of `ip_payload` at `[offset, offset + len)`, MF as given.
fn fragment(ident: u16, ip_payload: &[u8], offset: usize, len: usize, mf: bool) -> Vec<u8> {
    let repr = Ipv4Repr {
        dont_fragment: false,
        more_fragments: mf,
        frag_offset: (offset / 8) as u16,
        ..build::ipv4_repr(PEER_IP, OUR_IP, protocol::UDP, ident)
    };
    eth(&build::ipv4(&repr, &ip_payload[offset..offset + len]))
}

/// `ip_payload` cut in fragments of `size` bytes (a multiple of 8), in order.
fn fragments(ident: u16, ip_payload: &[u8], size: usize) -> Vec<Vec<u8>> {
    (0..ip_payload.len())
        .step_by(size)
        .map(|off| {
            let len = size.min(ip_payload.len() - off);
            fragment(ident, ip_payload, off, len, off + len < ip_payload.len())
        })
        .collect()
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn bound(s: &mut Stack<MemDevice>) -> Fd {
    let fd = s.socket(SockType::Dgram).unwrap();
    s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT)).unwrap();
    fd
}

fn learn_peer(s: &mut Stack<MemDevice>, w: &MemWire, now: Instant) {
    let repr = ArpRepr {
        operation: ArpOperation::Request,
        sender_hw: PEER_MAC,
        sender_ip: PEER_IP,
        target_hw: EthernetAddress::default(),
        target_ip: OUR_IP,
    };
    w.inject(&build::arp_frame(
        &EthernetRepr { dst: EthernetAddress::BROADCAST, src: PEER_MAC, ethertype: ethertype::ARP },
        &repr,
    ));
    s.poll(now);
    assert_eq!(w.take_transmitted().len(), 1, "one ARP reply");
}

fn inject_all(s: &mut Stack<MemDevice>, w: &MemWire, frames: &[Vec<u8>], now: Instant) {
    for f in frames {
        assert!(w.inject(f));
        s.poll(now);
    }
}

fn assert_census(s: &Stack<MemDevice>) {
    let c = s.frame_census();
    assert_eq!(c.accounted(), c.total, "frames lost or duplicated: {c:?}");
}

fn parse_ip(frame: &[u8]) -> (Ipv4Repr, Vec<u8>) {
    let e = EthernetRepr::parse(&EthernetFrame::new_unchecked(frame)).unwrap();
    assert_eq!(e.ethertype, ethertype::IPV4);
    let p = Ipv4Packet::new_unchecked(&frame[ETH_LEN..]);
    (Ipv4Repr::parse(&p).expect("a valid IP header"), p.payload().to_vec())
}

#[test]
fn reassembles_in_order_and_recv_returns_the_whole_datagram() {
    let (mut s, w) = stack();
    let fd = bound(&mut s);
    let now = Instant::now();
    for size in [1473usize, 4000, 20000, 65507] {
        let data = pattern(size);
        let frags = fragments(size as u16, &udp_datagram(PORT, &data), 1480);
        inject_all(&mut s, &w, &frags, now);
        let mut buf = vec![0u8; 65536];
        let (n, from) = s.recv_from(fd, &mut buf).unwrap();
        assert_eq!(n, size, "the whole datagram");
        assert_eq!(&buf[..n], &data[..], "{size} bytes intact across frames");
        assert_eq!(from, SocketAddrV4::new(PEER_IP, 5555));
        assert_census(&s);
    }
    let m = s.snmp();
    assert_eq!(m.IpReasmOKs, 4);
    assert_eq!(m.IpReasmReqds, 2 + 3 + 14 + 45);
    assert_eq!(m.IpReasmFails, 0);
    assert_eq!(m.IpInDelivers, 4, "a reassembled datagram is delivered once");
    assert_eq!(m.UdpInDatagrams, 4);
    assert_eq!(s.frame_census().in_reasm, 0);
}

#[test]
fn out_of_order_and_duplicates() {
    let (mut s, w) = stack();
    let fd = bound(&mut s);
    let now = Instant::now();
    let data = pattern(6000);
    let mut frags = fragments(9, &udp_datagram(PORT, &data), 1480);
    frags.reverse();
    // A duplicate of the (now first injected) last fragment and of a middle one.
    let dup_last = frags[0].clone();
    let dup_mid = frags[2].clone();
    frags.insert(1, dup_last);
    frags.insert(4, dup_mid);
    let n_frags = frags.len() as u64;
    inject_all(&mut s, &w, &frags[..frags.len() - 1], now);
    assert_eq!(s.frame_census().in_reasm, 4, "the held fragments show in the census");
    assert_census(&s);
    inject_all(&mut s, &w, &frags[frags.len() - 1..], now);
    let mut buf = vec![0u8; 8000];
    let (n, _) = s.recv_from(fd, &mut buf).unwrap();
    assert_eq!(&buf[..n], &data[..]);
    let m = s.snmp();
    assert_eq!((m.IpReasmReqds, m.IpReasmOKs, m.IpReasmFails), (n_frags, 1, 0));
    assert_eq!(m.XskIpFragDups, 2, "duplicates dropped, the queue kept");
    assert_census(&s);
}

#[test]
fn overlapping_fragment_drops_the_whole_queue() {
    let (mut s, w) = stack();
    let fd = bound(&mut s);
    let now = Instant::now();
    let dgram = udp_datagram(PORT, &pattern(3000));
    // 0..1480, then 1000..2480 overlaps the first partly.
    inject_all(&mut s, &w, &[fragment(1, &dgram, 0, 1480, true), fragment(1, &dgram, 1000, 1480, true)], now);
    let m = s.snmp();
    assert_eq!((m.IpExtReasmOverlaps, m.IpReasmFails), (1, 1));
    assert_eq!(s.frame_census().in_reasm, 0, "every fragment of the queue freed");
    // The rest of the datagram starts a new queue that never completes.
    inject_all(&mut s, &w, &[fragment(1, &dgram, 1480, dgram.len() - 1480, false)], now);
    assert_eq!(s.recv_from(fd, &mut [0u8; 4000]), Err(Errno::EAGAIN));
    assert_census(&s);
}

/// Linux's runs: a fragment that spans two adjacent fragments which arrived
/// apart (two runs) overlaps; one inside a run of fragments that arrived in
/// order is a duplicate.
#[test]
fn duplicate_or_overlap_follows_the_runs() {
    let (mut s, w) = stack();
    let now = Instant::now();
    let dgram = udp_datagram(PORT, &pattern(100));
    // In order: 0..16 and 16..32 make one run; 8..24 lies inside it.
    inject_all(
        &mut s,
        &w,
        &[fragment(2, &dgram, 0, 16, true), fragment(2, &dgram, 16, 16, true), fragment(2, &dgram, 8, 16, true)],
        now,
    );
    assert_eq!((s.snmp().XskIpFragDups, s.snmp().IpExtReasmOverlaps), (1, 0));
    // Apart: 0..16, then 32..48, then 16..32 (its own run): 8..24 spans two runs.
    inject_all(
        &mut s,
        &w,
        &[
            fragment(3, &dgram, 0, 16, true),
            fragment(3, &dgram, 32, 16, true),
            fragment(3, &dgram, 16, 16, true),
            fragment(3, &dgram, 8, 16, true),
        ],
        now,
    );
    assert_eq!((s.snmp().XskIpFragDups, s.snmp().IpExtReasmOverlaps), (1, 1));
    assert_census(&s);
}

#[test]
fn bad_fragments_fail_fast() {
    let (mut s, w) = stack();
    let now = Instant::now();
    let dgram = udp_datagram(PORT, &pattern(3000));
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "two last fragments that disagree",
            vec![fragment(10, &dgram, 1480, 800, false), fragment(10, &dgram, 1480, 808, false)],
        ),
        (
            "bytes past the last fragment's end",
            vec![fragment(11, &dgram, 1480, 800, false), fragment(11, &dgram, 2400, 16, true)],
        ),
        (
            "a last fragment before bytes held",
            vec![fragment(12, &dgram, 1480, 800, true), fragment(12, &dgram, 8, 792, false)],
        ),
        ("a fragment of no bytes", vec![fragment(13, &dgram, 0, 1480, true), fragment(13, &dgram, 1480, 0, true)]),
    ];
    for (i, (what, frames)) in cases.iter().enumerate() {
        inject_all(&mut s, &w, frames, now);
        assert_eq!(s.snmp().IpReasmFails, i as u64 + 1, "{what}");
        assert_eq!(s.frame_census().in_reasm, 0, "{what}: the queue is gone");
    }
    assert_census(&s);
}

#[test]
fn timeout_sends_time_exceeded_only_with_the_first_fragment() {
    let (mut s, w) = stack();
    let _fd = bound(&mut s);
    let t0 = Instant::now();
    learn_peer(&mut s, &w, t0);
    let dgram = udp_datagram(PORT, &pattern(3000));
    // Queue 20 has its first fragment, queue 21 only a later one.
    inject_all(&mut s, &w, &[fragment(20, &dgram, 0, 1480, true), fragment(21, &dgram, 1480, 1480, true)], t0);
    s.poll(t0 + Duration::from_secs(29));
    assert_eq!(s.snmp().IpReasmTimeout, 0, "not before ipfrag_time");
    assert!(w.take_transmitted().is_empty());
    s.poll(t0 + Duration::from_secs(31));
    let m = s.snmp();
    assert_eq!((m.IpReasmTimeout, m.IpReasmFails), (2, 2));
    assert_eq!((m.IcmpOutTimeExcds, m.IcmpMsgOutType11, m.IcmpOutMsgs), (1, 1, 1));
    let out = w.take_transmitted();
    assert_eq!(out.len(), 1, "one time exceeded, for the queue whose first fragment came");
    let (ip, icmp) = parse_ip(&out[0]);
    assert_eq!((ip.dst, ip.protocol, ip.dont_fragment), (PEER_IP, protocol::ICMP, false));
    let repr = IcmpRepr::parse(&IcmpPacket::new_unchecked(&icmp[..])).unwrap();
    assert_eq!((repr.msg_type, repr.code), (11, 1), "fragment reassembly time exceeded");
    let quoted = Ipv4Packet::new_unchecked(&icmp[8..]);
    assert_eq!(
        (quoted.ident(), quoted.more_fragments(), quoted.frag_offset()),
        (20, true, 0),
        "quotes the first fragment"
    );
    assert_eq!(icmp.len(), 8 + 548, "as much of it as fits in 576 bytes");
    assert_eq!(s.frame_census().in_reasm, 0);
    assert_census(&s);
}

#[test]
fn a_fragment_flood_is_bounded_and_leaks_nothing() {
    let (mut s, w) = stack_frames(512);
    let t0 = Instant::now();
    let dgram = udp_datagram(PORT, &pattern(3000));
    // 1000 first fragments of distinct datagrams, from many sources so that
    // ipfrag_max_dist does not step in.
    for i in 0..1000u16 {
        let mut f = fragment(i, &dgram, 0, 1480, true);
        let mut p = Ipv4Packet::new_unchecked(&mut f[ETH_LEN..]);
        p.set_src_addr(Ipv4Addr::new(10, 0, (i >> 8) as u8 + 1, i as u8));
        p.fill_checksum();
        w.inject(&f);
        s.poll(t0);
        assert_census(&s);
    }
    let c = s.frame_census();
    assert_eq!(c.in_reasm, 256, "half the UMEM at most: {c:?}");
    let m = s.snmp();
    assert_eq!(m.IpReasmFails, 1000 - 256, "the rest refused");
    // Unfragmented traffic still gets frames and is delivered.
    let fd = bound(&mut s);
    w.inject(&eth(&build::ipv4(&build::ipv4_repr(PEER_IP, OUR_IP, protocol::UDP, 1), &udp_datagram(PORT, b"hi"))));
    s.poll(t0);
    assert_eq!(s.recv_from(fd, &mut [0u8; 16]).map(|(n, _)| n), Ok(2));
    s.poll(t0 + Duration::from_secs(31));
    assert_eq!(s.frame_census().in_reasm, 0, "all freed by the timer");
    assert_eq!(s.snmp().IpReasmTimeout, 256);
    assert_census(&s);
}

#[test]
fn too_far_restarts_a_queue() {
    let (mut s, w) = stack();
    let now = Instant::now();
    let dgram = udp_datagram(PORT, &pattern(3000));
    inject_all(&mut s, &w, &[fragment(1, &dgram, 0, 1480, true)], now);
    // 65 fragments of other datagrams from the same source go by.
    for i in 0..65u16 {
        inject_all(&mut s, &w, &[fragment(100 + i, &dgram, 1480, 8, true)], now);
    }
    let before = s.snmp().IpReasmFails;
    inject_all(&mut s, &w, &[fragment(1, &dgram, 1480, dgram.len() - 1480, false)], now);
    assert_eq!(s.snmp().IpReasmFails, before + 1, "ip_frag_too_far");
    assert_eq!(s.snmp().IpReasmOKs, 0, "the first fragment went with the old queue");
    assert_census(&s);
}

#[test]
fn small_buffer_truncates_and_drops_the_rest() {
    let (mut s, w) = stack();
    let fd = bound(&mut s);
    let now = Instant::now();
    let data = pattern(5000);
    inject_all(&mut s, &w, &fragments(5, &udp_datagram(PORT, &data), 1480), now);
    inject_all(&mut s, &w, &fragments(6, &udp_datagram(PORT, &data[..3000]), 1480), now);
    let c = s.frame_census();
    assert_eq!(c.in_socks, 4 + 3, "both chains counted frame for frame: {c:?}");
    assert_census(&s);
    let mut buf = vec![0u8; 2000];
    assert_eq!(s.recv_from(fd, &mut buf).map(|(n, _)| n), Ok(2000));
    assert_eq!(&buf[..], &data[..2000]);
    // The next read is the next datagram: the rest of the first is gone.
    let mut big = vec![0u8; 9000];
    assert_eq!(s.recv_from(fd, &mut big).map(|(n, _)| n), Ok(3000));
    assert_census(&s);
}

#[test]
fn recv_with_sees_the_whole_reassembled_datagram() {
    let (mut s, w) = stack();
    let fd = bound(&mut s);
    let data = pattern(10000);
    inject_all(&mut s, &w, &fragments(7, &udp_datagram(PORT, &data), 1480), Instant::now());
    let got = s.recv_with(fd, |d, _| d.to_vec()).unwrap();
    assert_eq!(got, data);
    assert_census(&s);
}

#[test]
fn reassembled_datagram_with_bad_checksum_or_to_a_closed_port() {
    let (mut s, w) = stack();
    let _fd = bound(&mut s);
    let t0 = Instant::now();
    learn_peer(&mut s, &w, t0);
    let mut bad = udp_datagram(PORT, &pattern(4000));
    bad[2000] ^= 1;
    inject_all(&mut s, &w, &fragments(30, &bad, 1480), t0);
    assert_eq!((s.snmp().UdpInCsumErrors, s.snmp().UdpInErrors), (1, 1));
    let closed = udp_datagram(PORT + 1, &pattern(4000));
    inject_all(&mut s, &w, &fragments(31, &closed, 1480), t0);
    assert_eq!(s.snmp().UdpNoPorts, 1);
    let out = w.take_transmitted();
    assert_eq!(out.len(), 1, "port unreachable");
    let (_, icmp) = parse_ip(&out[0]);
    let quoted = Ipv4Packet::new_unchecked(&icmp[8..]);
    assert_eq!(quoted.total_len(), 20 + closed.len(), "quotes the reassembled header");
    assert!(!quoted.more_fragments());
    assert_eq!(&icmp[8 + 20..8 + 20 + 8], &closed[..8], "and its UDP header");
    assert_census(&s);
}

/// Parses the fragments we sent and puts the UDP datagram back together.
fn sent_fragments(out: &[Vec<u8>]) -> (Vec<Ipv4Repr>, Vec<u8>) {
    let mut hdrs = Vec::new();
    let mut dgram = Vec::new();
    for f in out {
        let (ip, payload) = parse_ip(f);
        assert_eq!(usize::from(ip.frag_offset) * 8, dgram.len(), "contiguous offsets");
        dgram.extend_from_slice(&payload);
        hdrs.push(ip);
    }
    (hdrs, dgram)
}

#[test]
fn large_send_is_fragmented_as_linux() {
    let (mut s, w) = stack();
    let t0 = Instant::now();
    learn_peer(&mut s, &w, t0);
    let fd = s.socket(SockType::Dgram).unwrap();
    let data = pattern(4000);
    assert_eq!(s.send_to(fd, &data, SocketAddrV4::new(PEER_IP, 9)), Ok(4000));
    s.poll(t0);
    let out = w.take_transmitted();
    assert_eq!(out.len(), 3);
    let (hdrs, dgram) = sent_fragments(&out);
    let lens: Vec<_> = out.iter().map(|f| f.len() - ETH_LEN).collect();
    assert_eq!(lens, [1500, 1500, 20 + 4008 - 2960], "MTU-sized, the rest last");
    assert_eq!(hdrs.iter().map(|h| h.frag_offset).collect::<Vec<_>>(), [0, 185, 370]);
    assert_eq!(hdrs.iter().map(|h| h.more_fragments).collect::<Vec<_>>(), [true, true, false]);
    assert!(hdrs.iter().all(|h| h.ident == hdrs[0].ident && !h.dont_fragment), "one ID, no DF");
    assert!(checksum::verify_pseudo(OUR_IP, PEER_IP, protocol::UDP, &dgram), "UDP checksum over the datagram");
    assert_eq!(&dgram[8..], &data[..]);
    let m = s.snmp();
    assert_eq!((m.IpFragOKs, m.IpFragCreates, m.IpFragFails), (1, 3, 0));
    assert_eq!((m.IpOutRequests, m.IpOutTransmits, m.UdpOutDatagrams), (1, 3, 1));
    // The largest datagram: 45 fragments.
    assert_eq!(s.send_to(fd, &pattern(65507), SocketAddrV4::new(PEER_IP, 9)), Ok(65507));
    s.poll(t0);
    let out = w.take_transmitted();
    assert_eq!(out.len(), 45);
    let (_, dgram) = sent_fragments(&out);
    assert_eq!(dgram.len(), 65515);
    assert!(checksum::verify_pseudo(OUR_IP, PEER_IP, protocol::UDP, &dgram));
    assert_eq!(s.send_to(fd, &pattern(65508), SocketAddrV4::new(PEER_IP, 9)), Err(Errno::EMSGSIZE));
    assert_census(&s);
}

#[test]
fn a_send_the_pool_cannot_supply_fails_whole() {
    let (mut s, w) = stack_frames(96);
    let t0 = Instant::now();
    learn_peer(&mut s, &w, t0);
    let fd = s.socket(SockType::Dgram).unwrap();
    // 64 frames on the fill ring leave about 32: 45 are needed.
    assert_eq!(s.send_to(fd, &pattern(65507), SocketAddrV4::new(PEER_IP, 9)), Err(Errno::ENOBUFS));
    s.poll(t0);
    assert!(w.take_transmitted().is_empty(), "never a partial datagram");
    assert_census(&s);
    assert_eq!(s.send_to(fd, &pattern(20000), SocketAddrV4::new(PEER_IP, 9)), Ok(20000));
}

#[test]
fn df_and_ip_id_as_linux() {
    let (mut s, w) = stack();
    let t0 = Instant::now();
    learn_peer(&mut s, &w, t0);
    let peer = SocketAddrV4::new(PEER_IP, 9);
    let fd = s.socket(SockType::Dgram).unwrap();
    assert_eq!(s.mtu_discover(fd), Ok(PmtuDisc::Want));
    s.send_to(fd, &[1; 1472], peer).unwrap();
    s.poll(t0);
    let (ip, _) = parse_ip(&w.take_transmitted()[0]);
    assert!(ip.dont_fragment, "IP_PMTUDISC_WANT: DF on what fits");
    assert_eq!(ip.ident, 0, "a DF datagram of an unconnected socket has ID 0");
    // Connected: the socket's own counter.
    let c = s.socket(SockType::Dgram).unwrap();
    s.connect(c, peer).unwrap();
    s.send(c, b"a").unwrap();
    s.send(c, b"b").unwrap();
    s.poll(t0);
    let ids: Vec<_> = w.take_transmitted().iter().map(|f| parse_ip(f).0).map(|h| (h.dont_fragment, h.ident)).collect();
    assert_eq!(ids[1].1, ids[0].1.wrapping_add(1), "inet_id counts up: {ids:?}");
    assert!(ids[0].0 && ids[1].0);
    // DONT: no DF, the stack's identifiers.
    s.setsockopt(fd, SockOpt::MtuDiscover(PmtuDisc::Dont)).unwrap();
    s.send_to(fd, b"x", peer).unwrap();
    s.poll(t0);
    assert!(!parse_ip(&w.take_transmitted()[0]).0.dont_fragment);
    // DO: DF, and a datagram past the MTU is EMSGSIZE.
    s.setsockopt(fd, SockOpt::MtuDiscover(PmtuDisc::Do)).unwrap();
    assert_eq!(s.send_to(fd, &[0; 1473], peer), Err(Errno::EMSGSIZE));
    s.setsockopt(fd, SockOpt::MtuDiscover(PmtuDisc::Probe)).unwrap();
    assert_eq!(s.send_to(fd, &[0; 1473], peer), Err(Errno::EMSGSIZE));
    assert_eq!(s.send_to(fd, &[0; 1472], peer), Ok(1472));
    s.poll(t0);
    assert!(parse_ip(&w.take_transmitted()[0]).0.dont_fragment);
    assert_eq!(s.ip_mtu(fd), Err(Errno::ENOTCONN), "IP_MTU needs a connected socket");
    assert_eq!(s.ip_mtu(c), Ok(1500));
    assert_census(&s);
}

/// ICMP fragmentation needed quoting a datagram `sport` → `dport` we sent.
fn frag_needed(sport: u16, dport: u16, mtu: u16) -> Vec<u8> {
    let quoted_ip = Ipv4Repr { payload_len: 1472 + 8, ..build::ipv4_repr(OUR_IP, PEER_IP, protocol::UDP, 0) };
    let mut quote = vec![0u8; 28];
    quoted_ip.emit(&mut Ipv4Packet::new_unchecked(&mut quote[..20]));
    quote[20..22].copy_from_slice(&sport.to_be_bytes());
    quote[22..24].copy_from_slice(&dport.to_be_bytes());
    let [a, b] = mtu.to_be_bytes();
    let repr = IcmpRepr { msg_type: 3, code: 4, rest: [0, 0, a, b] };
    let mut msg = vec![0u8; 8 + quote.len()];
    repr.emit_quoting(&mut msg, &quote);
    eth(&build::ipv4(&build::ipv4_repr(PEER_IP, OUR_IP, protocol::ICMP, 77), &msg))
}

#[test]
fn frag_needed_lowers_the_path_mtu() {
    let (mut s, w) = stack();
    let t0 = Instant::now();
    learn_peer(&mut s, &w, t0);
    let peer = SocketAddrV4::new(PEER_IP, 9);
    let c = s.socket(SockType::Dgram).unwrap();
    s.connect(c, peer).unwrap();
    let sport = s.local_addr(c).unwrap().port();
    w.inject(&frag_needed(sport, 9, 1000));
    s.poll(t0);
    assert_eq!(s.ip_mtu(c), Ok(1000));
    assert_eq!(s.socket_error(c), Ok(Some(Errno::EMSGSIZE)), "a connected socket hears of it");
    // WANT: a datagram past the new MTU goes in fragments without DF.
    s.send(c, &pattern(1200)).unwrap();
    s.poll(t0);
    let out = w.take_transmitted();
    let (hdrs, _) = sent_fragments(&out);
    assert_eq!(out.iter().map(|f| f.len() - ETH_LEN).collect::<Vec<_>>(), [996, 20 + 1208 - 976]);
    assert!(hdrs.iter().all(|h| !h.dont_fragment));
    // DO: EMSGSIZE past it.
    s.setsockopt(c, SockOpt::MtuDiscover(PmtuDisc::Do)).unwrap();
    assert_eq!(s.send(c, &[0; 973]), Err(Errno::EMSGSIZE));
    assert_eq!(s.send(c, &[0; 972]), Ok(972));
    // Below min_pmtu: 552, locked, and no DF under WANT.
    s.setsockopt(c, SockOpt::MtuDiscover(PmtuDisc::Want)).unwrap();
    w.inject(&frag_needed(sport, 9, 300));
    s.poll(t0);
    w.take_transmitted();
    assert_eq!(s.ip_mtu(c), Ok(552));
    let _ = s.socket_error(c);
    s.send(c, b"small").unwrap();
    s.poll(t0);
    assert!(!parse_ip(&w.take_transmitted()[0]).0.dont_fragment, "a locked path MTU clears DF");
    // After ip_rt_mtu_expires the device MTU is back.
    s.poll(t0 + Duration::from_secs(601));
    assert_eq!(s.ip_mtu(c), Ok(1500));
    assert_census(&s);
}

#[test]
fn frag_needed_for_an_unknown_port_changes_nothing() {
    let (mut s, w) = stack();
    let t0 = Instant::now();
    learn_peer(&mut s, &w, t0);
    let c = s.socket(SockType::Dgram).unwrap();
    s.connect(c, SocketAddrV4::new(PEER_IP, 9)).unwrap();
    w.inject(&frag_needed(1, 9, 1000));
    s.poll(t0);
    assert_eq!(s.ip_mtu(c), Ok(1500), "no socket sent it: __udp4_lib_err returns early");
}

#[test]
fn a_fragmented_ping_is_answered_in_fragments() {
    let (mut s, w) = stack();
    let t0 = Instant::now();
    learn_peer(&mut s, &w, t0);
    let data = pattern(4000);
    let mut msg = vec![0u8; 8 + data.len()];
    IcmpRepr::echo(8, 0x4242, 7).emit(&mut IcmpPacket::new_unchecked(&mut msg[..]));
    msg[8..].copy_from_slice(&data);
    let mut p = IcmpPacket::new_unchecked(&mut msg[..]);
    p.fill_checksum();
    let frags: Vec<Vec<u8>> = fragments(55, &msg, 1480)
        .into_iter()
        .map(|mut f| {
            let mut ip = Ipv4Packet::new_unchecked(&mut f[ETH_LEN..]);
            ip.set_protocol(protocol::ICMP);
            ip.fill_checksum();
            f
        })
        .collect();
    inject_all(&mut s, &w, &frags, t0);
    let out = w.take_transmitted();
    assert_eq!(out.len(), 3, "the reply in fragments");
    let mut reply = Vec::new();
    for f in &out {
        let (ip, payload) = parse_ip(f);
        assert_eq!((ip.protocol, ip.dst, ip.dont_fragment), (protocol::ICMP, PEER_IP, false));
        assert_eq!(usize::from(ip.frag_offset) * 8, reply.len());
        reply.extend_from_slice(&payload);
    }
    assert_eq!(checksum::checksum(&reply), 0, "the reply's checksum holds across fragments");
    let r = IcmpRepr::parse(&IcmpPacket::new_unchecked(&reply[..])).unwrap();
    assert_eq!(r, IcmpRepr::echo(0, 0x4242, 7));
    assert_eq!(&reply[8..], &data[..]);
    let m = s.snmp();
    assert_eq!((m.IcmpInEchos, m.IcmpOutEchoReps, m.IpReasmOKs, m.IpFragOKs, m.IpFragCreates), (1, 1, 1, 1, 3));
    assert_census(&s);
}

/// `frames` with the Ethernet destination of those at `indices` made the
/// broadcast address, as a peer's frames to ff:ff:ff:ff:ff:ff arrive.
fn as_link_broadcast(mut frames: Vec<Vec<u8>>, indices: &[usize]) -> Vec<Vec<u8>> {
    for &i in indices {
        frames[i][..6].copy_from_slice(&EthernetAddress::BROADCAST.0);
    }
    frames
}

/// `frames` (IPv4 in Ethernet) readdressed to `dst`, the IP checksum fixed
/// (the payload's checksum must have been made for `dst`).
fn readdressed(frames: Vec<Vec<u8>>, dst: Ipv4Addr) -> Vec<Vec<u8>> {
    frames
        .into_iter()
        .map(|mut f| {
            let mut ip = Ipv4Packet::new_unchecked(&mut f[ETH_LEN..]);
            ip.set_dst_addr(dst);
            ip.fill_checksum();
            f
        })
        .collect()
}

#[test]
fn a_reassembled_datagrams_errors_follow_its_first_fragments_pkt_type() {
    // ip_frag_reasm morphs the head (the fragment at offset 0) into the
    // datagram: its pkt_type is the datagram's, and __icmp_send sends no
    // error about one that came as link-layer broadcast.
    let (mut s, w) = stack();
    let t0 = Instant::now();
    learn_peer(&mut s, &w, t0);
    let closed = udp_datagram(PORT + 1, &pattern(4000));
    inject_all(&mut s, &w, &as_link_broadcast(fragments(40, &closed, 1480), &[0, 1, 2]), t0);
    assert_eq!(s.snmp().UdpNoPorts, 1, "counted as Linux counts it");
    assert!(w.take_transmitted().is_empty(), "no port unreachable for a link-layer broadcast");
    inject_all(&mut s, &w, &as_link_broadcast(fragments(41, &closed, 1480), &[0]), t0);
    assert_eq!(s.snmp().UdpNoPorts, 2);
    assert!(w.take_transmitted().is_empty(), "the first fragment's pkt_type decides");
    inject_all(&mut s, &w, &as_link_broadcast(fragments(42, &closed, 1480), &[1, 2]), t0);
    assert_eq!(s.snmp().UdpNoPorts, 3);
    assert_eq!(w.take_transmitted().len(), 1, "a unicast first fragment: port unreachable");
    assert_eq!(s.snmp().IcmpOutDestUnreachs, 1);
    assert_census(&s);
}

#[test]
fn a_reassembled_datagram_to_a_broadcast_address_is_delivered_as_a_broadcast() {
    let (mut s, w) = stack();
    let t0 = Instant::now();
    learn_peer(&mut s, &w, t0);
    let bcast = Ipv4Addr::new(10, 0, 0, 255);
    // UDP datagrams with their checksum made for the broadcast address.
    let to_bcast = |dport: u16, payload: &[u8]| {
        build::udp(PEER_IP, bcast, &UdpRepr { src_port: 5555, dst_port: dport, payload_len: 0 }, payload)
    };
    let closed = to_bcast(PORT + 1, &pattern(3000));
    inject_all(&mut s, &w, &readdressed(fragments(50, &closed, 1480), bcast), t0);
    let m = s.snmp();
    assert_eq!((m.UdpIgnoredMulti, m.UdpNoPorts, m.IpExtInBcastPkts), (1, 0, 3), "__udp4_lib_mcast_deliver");
    assert!(w.take_transmitted().is_empty(), "no ICMP about a broadcast");
    // A socket on the wildcard address takes it.
    let fd = bound(&mut s);
    let open = to_bcast(PORT, &pattern(3000));
    inject_all(&mut s, &w, &readdressed(fragments(51, &open, 1480), bcast), t0);
    let mut buf = vec![0u8; 4000];
    let (n, from) = s.recv_from(fd, &mut buf).expect("the broadcast datagram");
    assert_eq!((n, from), (3000, SocketAddrV4::new(PEER_IP, 5555)));
    assert_eq!(&buf[..n], &pattern(3000)[..]);
    // A fragmented ping to the broadcast address is ignored
    // (icmp_echo_ignore_broadcasts), as one in one frame is.
    let mut msg = vec![0u8; 8 + 3000];
    IcmpRepr::echo(8, 0x4243, 1).emit(&mut IcmpPacket::new_unchecked(&mut msg[..]));
    msg[8..].copy_from_slice(&pattern(3000));
    IcmpPacket::new_unchecked(&mut msg[..]).fill_checksum();
    let frags: Vec<Vec<u8>> = readdressed(fragments(52, &msg, 1480), bcast)
        .into_iter()
        .map(|mut f| {
            let mut ip = Ipv4Packet::new_unchecked(&mut f[ETH_LEN..]);
            ip.set_protocol(protocol::ICMP);
            ip.fill_checksum();
            f
        })
        .collect();
    let errors = s.snmp().IcmpInErrors;
    inject_all(&mut s, &w, &frags, t0);
    assert!(w.take_transmitted().is_empty(), "no echo reply to a broadcast");
    assert_eq!((s.snmp().IcmpInEchos, s.snmp().IcmpInErrors), (1, errors + 1));
    assert_census(&s);
}

/// `frames` (IPv4 in Ethernet) with the protocol field made TCP, the IP
/// checksum fixed.
fn as_tcp(frames: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    frames
        .into_iter()
        .map(|mut f| {
            let mut ip = Ipv4Packet::new_unchecked(&mut f[ETH_LEN..]);
            ip.set_protocol(protocol::TCP);
            ip.fill_checksum();
            f
        })
        .collect()
}

/// A TCP segment that came in IP fragments goes to TCP as Linux delivers it
/// (`ip_local_deliver` reassembles before the protocol): a SYN in two
/// fragments gets its SYN-ACK, a 4000-byte data segment in three is read
/// whole, and a fragmented segment from a link-layer broadcast is dropped as
/// one in one frame would be.
#[test]
fn a_tcp_segment_in_fragments_is_reassembled_and_delivered() {
    use xsknet::wire::tcp::{flags, TcpOptions, TcpPacket, TcpRepr};
    let (mut s, w) = stack_frames(1024);
    let t0 = Instant::now();
    learn_peer(&mut s, &w, t0);
    let l = s.socket(SockType::Stream).unwrap();
    s.bind(l, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80)).unwrap();
    s.listen(l, 16).unwrap();
    let seg = |seq: u32, ack: u32, fl: u8, options: TcpOptions, data: &[u8]| {
        let r = TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq,
            ack,
            flags: fl,
            window: 64240,
            options,
            ..TcpRepr::default()
        };
        build::tcp(PEER_IP, OUR_IP, &r, data)
    };
    let syn = seg(1000, 0, flags::SYN, TcpOptions { mss: Some(1460), ..TcpOptions::default() }, &[]);
    assert_eq!(syn.len(), 24);
    inject_all(&mut s, &w, &as_tcp(vec![fragment(60, &syn, 0, 16, true), fragment(60, &syn, 16, 8, false)]), t0);
    let out = w.take_transmitted();
    assert_eq!(out.len(), 1, "the SYN-ACK");
    let (_, sa) = parse_ip(&out[0]);
    let sa = TcpRepr::parse(&TcpPacket::new_unchecked(&sa[..]));
    assert_eq!((sa.flags, sa.ack), (flags::SYN | flags::ACK, 1001));
    let iss = sa.seq;
    inject_all(
        &mut s,
        &w,
        &[eth(&build::ipv4(
            &build::ipv4_repr(PEER_IP, OUR_IP, protocol::TCP, 61),
            &seg(1001, iss + 1, flags::ACK, TcpOptions::default(), &[]),
        ))],
        t0,
    );
    let (fd, _) = s.accept(l).expect("the connection");
    let data = pattern(4000);
    let big = seg(1001, iss + 1, flags::ACK | flags::PSH, TcpOptions::default(), &data);
    inject_all(&mut s, &w, &as_tcp(fragments(62, &big, 1480)), t0);
    let mut buf = vec![0u8; 8000];
    assert_eq!(s.recv(fd, &mut buf), Ok(4000));
    assert_eq!(&buf[..4000], &data[..]);
    let m = s.snmp();
    assert_eq!((m.IpReasmOKs, m.TcpInSegs, m.XskIpReasmUnsupported), (2, 3, 0));
    // From a link-layer broadcast: dropped, counted, no answer.
    let more = seg(5001, iss + 1, flags::ACK | flags::PSH, TcpOptions::default(), &data);
    w.take_transmitted();
    inject_all(&mut s, &w, &as_link_broadcast(as_tcp(fragments(63, &more, 1480)), &[0]), t0);
    assert_eq!(s.snmp().XskTcpInNotHost, 1);
    assert_eq!(s.recv(fd, &mut buf), Err(Errno::EAGAIN));
    s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    s.close(fd).unwrap();
    s.close(l).unwrap();
    s.poll(t0);
    assert_census(&s);
}
