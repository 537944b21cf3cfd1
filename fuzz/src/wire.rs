//! One target per parser of `xsknet::wire`: the bytes are the layer's header and payload
//! (for UDP and TCP, after 8 bytes that give the pseudo-header's source and destination).
//!
//! Each body checks that parsing never panics and that the view and the repr agree with each
//! other; for what parses, that emitting the repr and parsing the result gives the same
//! repr; and that the checksum helpers agree with [`reference_sum`], a plain word-by-word
//! one's-complement sum written for the purpose.

use std::net::Ipv4Addr;

use xsknet::wire::arp::{self, ArpPacket, ArpRepr};
use xsknet::wire::checksum;
use xsknet::wire::ethernet::{self, EthernetFrame, EthernetRepr, PktType};
use xsknet::wire::icmp::{self, msg_type, IcmpPacket, IcmpQuote, IcmpRepr};
use xsknet::wire::ipv4::{self, protocol, Ipv4Packet, Ipv4Repr};
use xsknet::wire::tcp::{TcpOptions, TcpPacket, TcpRepr};
use xsknet::wire::udp::{self, UdpPacket, UdpRepr};
use xsknet::wire::EthernetAddress;

/// The RFC 1071 sum, the slow way: `initial` plus every big-endian 16-bit word of `data` (an
/// odd last byte padded with zero on its right), carries folded back in after each addition.
/// Returns the folded 16-bit sum (not inverted).
pub fn reference_sum(initial: u16, data: &[u8]) -> u16 {
    let mut s = u32::from(initial);
    for pair in data.chunks(2) {
        let word = (u32::from(pair[0]) << 8) | u32::from(pair.get(1).copied().unwrap_or(0));
        s += word;
        s = (s & 0xFFFF) + (s >> 16);
    }
    s as u16
}

/// The reference pseudo-header (RFC 768, RFC 9293 §3.1) sum for `protocol` and `len`, folded.
fn reference_pseudo(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: usize) -> u16 {
    let mut b = Vec::with_capacity(12);
    b.extend_from_slice(&src.octets());
    b.extend_from_slice(&dst.octets());
    b.extend_from_slice(&[0, protocol]);
    b.extend_from_slice(&(len as u16).to_be_bytes());
    reference_sum(0, &b)
}

/// Whether a block that carries its own checksum field verifies: its folded sum is all ones.
fn verifies(folded: u16) -> bool {
    folded == 0xFFFF
}

/// Whether two 16-bit one's-complement values are the same number: 0x0000 and 0xFFFF are
/// both zero.
fn same(a: u16, b: u16) -> bool {
    a % 0xFFFF == b % 0xFFFF
}

/// The checksum helpers against the reference over `data`, whatever it holds.
fn check_checksum_helpers(data: &[u8]) {
    let r = reference_sum(0, data);
    let c = checksum::checksum(data);
    assert!(same(!c, r), "checksum {c:#06x}, reference sum {r:#06x}");
    let folded = checksum::fold(checksum::sum(0, data));
    assert!(same(folded, r), "fold(sum) {folded:#06x}, reference sum {r:#06x}");
    // Chaining: sum(sum(0, a), b) is sum(0, a ++ b) for an even split.
    let mid = (data.len() / 2) & !1;
    let chained = checksum::fold(checksum::sum(checksum::sum(0, &data[..mid]), &data[mid..]));
    assert!(same(chained, r), "chained {chained:#06x}, reference sum {r:#06x}");
    // RFC 1624 incremental update of the first word, against a recompute.
    if data.len() >= 4 {
        let mut changed = data.to_vec();
        let old = u16::from_be_bytes([data[0], data[1]]);
        let new = u16::from_be_bytes([data[3], data[2]]);
        changed[0..2].copy_from_slice(&new.to_be_bytes());
        let updated = checksum::update(c, old, new);
        let recomputed = checksum::checksum(&changed);
        assert!(same(updated, recomputed), "update {updated:#06x}, recompute {recomputed:#06x}");
    }
}

/// `ethernet`: an Ethernet II frame.
pub fn ethernet(data: &[u8]) {
    let frame = EthernetFrame::new_unchecked(data);
    let checked = EthernetFrame::new_checked(data).is_ok();
    let Ok(repr) = EthernetRepr::parse(&frame) else {
        assert!(!checked && data.len() < ethernet::HEADER_LEN);
        return;
    };
    assert!(checked && data.len() >= ethernet::HEADER_LEN);
    assert_eq!((frame.dst_addr(), frame.src_addr(), frame.ethertype()), (repr.dst, repr.src, repr.ethertype));
    assert_eq!(frame.payload(), &data[ethernet::HEADER_LEN..]);
    let mut buf = data.to_vec();
    buf[..ethernet::HEADER_LEN].fill(0);
    repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    assert_eq!(buf, data, "the header written back is the one read");
    assert_eq!(EthernetRepr::parse(&EthernetFrame::new_unchecked(&buf[..])).ok(), Some(repr));
    let ours = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
    let t = PktType::classify(repr.dst, ours);
    match t {
        PktType::Host => assert_eq!(repr.dst, ours),
        PktType::Broadcast => assert!(repr.dst.is_broadcast()),
        PktType::Multicast => assert!(repr.dst.is_multicast() && !repr.dst.is_broadcast()),
        PktType::OtherHost => assert!(repr.dst.is_unicast() && repr.dst != ours),
    }
    // The address's text form reads back.
    assert_eq!(repr.src.to_string().parse::<EthernetAddress>().ok(), Some(repr.src));
}

/// `arp`: an ARP packet (the Ethernet payload).
pub fn arp(data: &[u8]) {
    let packet = ArpPacket::new_unchecked(data);
    let checked = ArpPacket::new_checked(data).is_ok();
    let Ok(repr) = ArpRepr::parse(&packet) else {
        assert!(!checked);
        return;
    };
    assert!(checked && data.len() >= arp::PACKET_LEN);
    let mut buf = [0u8; arp::PACKET_LEN];
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
    // Everything but the hardware type (IEEE 802, 6, is read; Ethernet, 1, is written).
    assert_eq!(&buf[2..], &data[2..arp::PACKET_LEN]);
    assert_eq!(ArpRepr::parse(&ArpPacket::new_unchecked(&buf[..])).ok(), Some(repr));
    let ours = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
    let reply = repr.reply(ours);
    reply.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
    let back = ArpRepr::parse(&ArpPacket::new_unchecked(&buf[..])).expect("a reply parses");
    assert_eq!(back, reply);
    assert_eq!((back.target_ip, back.target_hw, back.sender_ip), (repr.sender_ip, repr.sender_hw, repr.target_ip));
}

/// `ipv4`: an IPv4 datagram, options and all.
pub fn ipv4(data: &[u8]) {
    check_checksum_helpers(data);
    let packet = Ipv4Packet::new_unchecked(data);
    if packet.check_version_ihl().is_ok() {
        // The fixed header's getters; the full header may run past the buffer still.
        let _ = (packet.ecn(), packet.dscp(), packet.total_len(), packet.frag_offset(), packet.src_addr());
        let hl = packet.header_len();
        assert!(hl >= ipv4::MIN_HEADER_LEN);
        if hl <= data.len() {
            assert_eq!(packet.verify_checksum(), verifies(reference_sum(0, &data[..hl])));
        }
    }
    let checked = Ipv4Packet::new_checked(data).is_ok();
    let Ok(repr) = Ipv4Repr::parse(&packet) else {
        assert!(!checked);
        return;
    };
    assert!(checked);
    let (hl, total) = (packet.header_len(), packet.total_len());
    assert!(hl >= ipv4::MIN_HEADER_LEN && hl <= total && total <= data.len(), "{hl} {total} {}", data.len());
    assert!(verifies(reference_sum(0, &data[..hl])), "a header that parses verifies");
    assert_eq!(repr.payload_len, total - hl);
    assert_eq!(packet.payload(), &data[hl..total], "the payload ends at the total length");
    assert_eq!(packet.options(), &data[ipv4::MIN_HEADER_LEN..hl]);
    assert_eq!(repr.is_fragment(), repr.more_fragments || repr.frag_offset != 0);
    // ip_options_compile: never past the header, pointers inside it.
    if let Ok(opt) = ipv4::ip_options_compile(packet.options()) {
        for at in [opt.srr, opt.rr, opt.ts, opt.router_alert] {
            assert!(at == 0 || (usize::from(at) >= ipv4::MIN_HEADER_LEN && usize::from(at) < hl));
        }
    } else if let Err(e) = ipv4::ip_options_compile(packet.options()) {
        assert!(usize::from(e.pointer) >= ipv4::MIN_HEADER_LEN && usize::from(e.pointer) < hl, "{e}");
    }
    // Written back without options, it parses to the same header.
    let mut buf = vec![0u8; ipv4::MIN_HEADER_LEN + repr.payload_len];
    buf[ipv4::MIN_HEADER_LEN..].copy_from_slice(packet.payload());
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
    let again = Ipv4Packet::new_checked(&buf[..]).expect("an emitted header checks");
    assert_eq!(Ipv4Repr::parse(&again).ok(), Some(repr));
    assert_eq!(again.payload(), packet.payload());
    assert_eq!(checksum::checksum(&buf[..ipv4::MIN_HEADER_LEN]), 0, "the emitted checksum verifies");
    // The pseudo-header sum against the reference.
    let p = checksum::fold(repr.pseudo_header_sum(repr.payload_len as u16));
    assert!(same(p, reference_pseudo(repr.src, repr.dst, repr.protocol, repr.payload_len)));
}

/// `icmp`: an ICMP message (the IP payload).
pub fn icmp(data: &[u8]) {
    let packet = IcmpPacket::new_unchecked(data);
    assert_eq!(packet.verify_checksum(), verifies(reference_sum(0, data)));
    // Quoting this message as the offending datagram of an error.
    let mut out = vec![0u8; icmp::HEADER_LEN + icmp::MAX_QUOTED_LEN];
    let err = IcmpRepr::dest_unreachable(icmp::unreach_code::PORT);
    let n = err.emit_quoting(&mut out, data);
    assert_eq!(n, icmp::HEADER_LEN + data.len().min(icmp::MAX_QUOTED_LEN));
    assert_eq!(IcmpRepr::parse(&IcmpPacket::new_unchecked(&out[..n])).ok(), Some(err));
    assert_eq!(&out[icmp::HEADER_LEN..n], &data[..n - icmp::HEADER_LEN]);
    if let Ok(q) = IcmpQuote::new_checked(data) {
        // The quote is cut by design: its IHL may run past it, and the transport header is
        // what is left, at most 8 bytes.
        assert!(q.header_len() >= ipv4::MIN_HEADER_LEN);
        let th = q.transport_header();
        assert!(th.len() <= 8 && (th.is_empty() || q.header_len() + th.len() <= data.len()));
        assert_eq!(q.ports().is_some(), th.len() >= 4);
        let _ = (q.version(), q.protocol(), q.src_addr(), q.dst_addr());
    }
    let checked = IcmpPacket::new_checked(data).is_ok();
    let Ok(repr) = IcmpRepr::parse(&packet) else {
        assert!(!checked);
        return;
    };
    assert!(checked && data.len() >= icmp::HEADER_LEN && packet.verify_checksum());
    assert_eq!((repr.msg_type, repr.code, repr.rest), (packet.msg_type(), packet.code(), packet.rest()));
    if let Ok(q) = packet.quote() {
        let _ = (q.ports(), q.protocol(), q.transport_header());
    }
    let mut buf = data.to_vec();
    repr.emit(&mut IcmpPacket::new_unchecked(&mut buf[..]));
    assert_eq!(IcmpRepr::parse(&IcmpPacket::new_unchecked(&buf[..])).ok(), Some(repr));
    assert_eq!((&buf[..2], &buf[4..]), (&data[..2], &data[4..]), "only the checksum may be written differently");
    if repr.msg_type == msg_type::ECHO_REQUEST {
        // icmp_echo's incremental update gives a reply that verifies, bit for bit what a
        // recompute gives.
        let mut reply = data.to_vec();
        IcmpPacket::new_unchecked(&mut reply[..]).echo_request_to_reply();
        let r = IcmpRepr::parse(&IcmpPacket::new_unchecked(&reply[..])).expect("the reply verifies");
        assert_eq!((r.msg_type, r.code, r.rest), (msg_type::ECHO_REPLY, repr.code, repr.rest));
        let mut recomputed = reply.clone();
        IcmpPacket::new_unchecked(&mut recomputed[..]).fill_checksum();
        assert_eq!(reply, recomputed);
    }
}

/// The pseudo-header's addresses from the first 8 bytes, and the rest.
fn addresses(data: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, &[u8])> {
    let (a, rest) = data.split_first_chunk::<4>()?;
    let (b, rest) = rest.split_first_chunk::<4>()?;
    Some((Ipv4Addr::from(*a), Ipv4Addr::from(*b), rest))
}

/// `udp`: source and destination addresses (8 bytes), then a UDP datagram.
pub fn udp(data: &[u8]) {
    let Some((src, dst, seg)) = addresses(data) else { return };
    let packet = UdpPacket::new_unchecked(seg);
    let verified = packet.verify_checksum(src, dst);
    let checked = UdpPacket::new_checked(seg).is_ok();
    let Ok(repr) = UdpRepr::parse(&packet) else {
        assert!(!checked);
        return;
    };
    assert!(checked);
    let ulen = udp::HEADER_LEN + repr.payload_len;
    assert!(ulen <= seg.len());
    assert_eq!(packet.payload(), &seg[udp::HEADER_LEN..ulen]);
    let reference = packet.checksum() == 0
        || verifies(reference_sum(reference_pseudo(src, dst, protocol::UDP, ulen), &seg[..ulen]));
    assert_eq!(verified, reference, "verify_checksum against the reference");
    assert_eq!(
        checksum::verify_pseudo(src, dst, protocol::UDP, &seg[..ulen]),
        verifies(reference_sum(reference_pseudo(src, dst, protocol::UDP, ulen), &seg[..ulen]))
    );
    let mut buf = vec![0u8; ulen];
    buf[udp::HEADER_LEN..].copy_from_slice(packet.payload());
    repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), src, dst);
    let again = UdpPacket::new_checked(&buf[..]).expect("an emitted datagram checks");
    assert_eq!(UdpRepr::parse(&again).ok(), Some(repr));
    assert!(again.verify_checksum(src, dst) && again.checksum() != 0, "sent with a checksum that verifies");
    assert_eq!(&buf[..4], &seg[..4]);
}

/// `tcp`: source and destination addresses (8 bytes), then a TCP segment, options and all.
pub fn tcp(data: &[u8]) {
    let Some((src, dst, seg)) = addresses(data) else { return };
    let packet = TcpPacket::new_unchecked(seg);
    let reference =
        seg.len() <= 0xFFFF && verifies(reference_sum(reference_pseudo(src, dst, protocol::TCP, seg.len()), seg));
    assert_eq!(packet.verify_checksum(src, dst), reference, "verify_checksum against the reference");
    let Ok(packet) = TcpPacket::new_checked(seg) else { return };
    let _ = TcpOptions::parse(packet.options(), true);
    let _ = TcpOptions::parse(packet.options(), false);
    let repr = TcpRepr::parse(&packet);
    assert_eq!(repr.payload_len, packet.payload().len());
    assert_eq!(packet.header_len() + repr.payload_len, seg.len());
    assert!(usize::from(repr.options.sack_len) <= 4);
    let hl = repr.header_len();
    assert!(hl.is_multiple_of(4) && hl <= 60, "options of {hl} bytes written for a header of {}", packet.header_len());
    let mut buf = vec![0u8; hl + repr.payload_len];
    buf[hl..].copy_from_slice(packet.payload());
    repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), src, dst);
    let again = TcpPacket::new_checked(&buf[..]).expect("an emitted segment checks");
    assert!(again.verify_checksum(src, dst), "sent with a checksum that verifies");
    let back = TcpRepr::parse(&again);
    assert_eq!(back.options.sack_blocks(), repr.options.sack_blocks());
    let norm = |mut r: TcpRepr| {
        // Only the first sack_len blocks mean anything.
        let n = usize::from(r.options.sack_len);
        r.options.sack_blocks[n..].fill(Default::default());
        r
    };
    assert_eq!(norm(back), norm(repr));
    assert_eq!(again.payload(), packet.payload());
}
