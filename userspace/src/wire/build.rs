//! Whole frames built from representations into a `Vec`: the one test-frame builder of the
//! project, used by unit tests, integration tests, benchmarks and the traffic generator.
//!
//! This module owns no protocol knowledge of its own: each layer is written by its `Repr`'s
//! `emit`, innermost first, so the checksums cover what is really there. Lengths are taken from
//! the data given (an `Ipv4Repr`'s, `UdpRepr`'s or `TcpRepr`'s `payload_len` is overwritten); every other
//! field is written as the caller set it. It allocates, so it is for setting up, never for the
//! per-packet path. Frames are not padded to the Ethernet minimum; a test that wants padding
//! appends it.

use std::net::Ipv4Addr;

use super::arp::{ArpPacket, ArpRepr};
use super::ethernet::{ethertype, EthernetFrame, EthernetRepr};
use super::icmp::{IcmpPacket, IcmpRepr};
use super::ipv4::{self, protocol, Ipv4Packet, Ipv4Repr};
use super::tcp::{TcpPacket, TcpRepr};
use super::udp::{UdpPacket, UdpRepr};

/// An IPv4 header as Linux sends a datagram by default: TOS 0, TTL 64, DF set (path MTU
/// discovery, `ip_dont_fragment()`), not a fragment; `payload_len` 0 until a builder sets it.
pub fn ipv4_repr(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, ident: u16) -> Ipv4Repr {
    Ipv4Repr {
        src,
        dst,
        protocol,
        payload_len: 0,
        ttl: 64,
        tos: 0,
        ident,
        dont_fragment: true,
        more_fragments: false,
        frag_offset: 0,
    }
}

/// An Ethernet frame: `eth`'s header, then `payload`.
pub fn ethernet(eth: &EthernetRepr, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; eth.buffer_len(payload.len())];
    let mut frame = EthernetFrame::new_unchecked(&mut f[..]);
    eth.emit(&mut frame);
    frame.payload_mut().copy_from_slice(payload);
    f
}

/// A 28-byte ARP packet.
pub fn arp(arp: &ArpRepr) -> Vec<u8> {
    let mut p = vec![0u8; arp.buffer_len()];
    arp.emit(&mut ArpPacket::new_unchecked(&mut p[..]));
    p
}

/// An IPv4 datagram: `ip`'s 20-byte header (total length from `payload`), then `payload`.
///
/// # Panics
/// If `payload` is longer than 65515 bytes.
pub fn ipv4(ip: &Ipv4Repr, payload: &[u8]) -> Vec<u8> {
    ipv4_with_options(ip, &[], payload)
}

/// An IPv4 datagram whose header carries `options` (IHL 5 + `options.len() / 4`), checksum
/// over the whole header, then `payload`.
///
/// # Panics
/// If `options` is not a multiple of 4 bytes or longer than 40, or the datagram is longer
/// than 65535 bytes.
pub fn ipv4_with_options(ip: &Ipv4Repr, options: &[u8], payload: &[u8]) -> Vec<u8> {
    assert!(options.len().is_multiple_of(4) && options.len() <= 40, "IP options come in up to ten 32-bit words");
    let header_len = ipv4::MIN_HEADER_LEN + options.len();
    let total = u16::try_from(header_len + payload.len()).expect("IPv4 datagram of at most 65535 bytes");
    let mut p = vec![0u8; usize::from(total)];
    let mut packet = Ipv4Packet::new_unchecked(&mut p[..]);
    Ipv4Repr { payload_len: options.len() + payload.len(), ..*ip }.emit(&mut packet);
    if !options.is_empty() {
        packet.set_version_and_header_len(header_len);
        packet.set_total_len(total);
        packet.options_mut().copy_from_slice(options);
        packet.fill_checksum();
    }
    packet.payload_mut().copy_from_slice(payload);
    p
}

/// A UDP datagram from `src` to `dst` with `udp`'s ports, UDP length from `payload`, and the
/// checksum over the pseudo-header.
///
/// # Panics
/// If `payload` is longer than 65527 bytes.
pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, udp: &UdpRepr, payload: &[u8]) -> Vec<u8> {
    let repr = UdpRepr { payload_len: payload.len(), ..*udp };
    let mut d = vec![0u8; repr.buffer_len()];
    let mut packet = UdpPacket::new_unchecked(&mut d[..]);
    packet.set_len(repr.buffer_len() as u16);
    packet.payload_mut().copy_from_slice(payload);
    repr.emit(&mut packet, src, dst);
    d
}

/// A TCP segment from `src` to `dst`: `tcp`'s header and options (data offset from
/// [`TcpRepr::header_len`]), then `payload`, checksum over the pseudo-header.
///
/// # Panics
/// If the segment is longer than 65535 bytes.
pub fn tcp(src: Ipv4Addr, dst: Ipv4Addr, tcp: &TcpRepr, payload: &[u8]) -> Vec<u8> {
    let repr = TcpRepr { payload_len: payload.len(), ..*tcp };
    assert!(repr.buffer_len() <= usize::from(u16::MAX), "TCP segment of at most 65535 bytes");
    let mut s = vec![0u8; repr.buffer_len()];
    s[repr.header_len()..].copy_from_slice(payload);
    repr.emit(&mut TcpPacket::new_unchecked(&mut s[..]), src, dst);
    s
}

/// An ICMP message: `icmp`'s header, then `body`, checksum over both.
pub fn icmp(icmp: &IcmpRepr, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; icmp.buffer_len(body.len())];
    let mut packet = IcmpPacket::new_unchecked(&mut m[..]);
    packet.payload_mut().copy_from_slice(body);
    icmp.emit(&mut packet);
    m
}

/// An Ethernet/ARP frame (42 bytes); the EtherType is set to ARP.
pub fn arp_frame(eth: &EthernetRepr, arp_repr: &ArpRepr) -> Vec<u8> {
    ethernet(&EthernetRepr { ethertype: ethertype::ARP, ..*eth }, &arp(arp_repr))
}

/// An Ethernet/IPv4/UDP frame; EtherType and IP protocol are set to IPv4 and UDP.
pub fn udp_frame(eth: &EthernetRepr, ip: &Ipv4Repr, udp_repr: &UdpRepr, payload: &[u8]) -> Vec<u8> {
    let datagram = udp(ip.src, ip.dst, udp_repr, payload);
    ipv4_frame(eth, &Ipv4Repr { protocol: protocol::UDP, ..*ip }, &datagram)
}

/// An Ethernet/IPv4/TCP frame; EtherType and IP protocol are set to IPv4 and TCP.
pub fn tcp_frame(eth: &EthernetRepr, ip: &Ipv4Repr, tcp_repr: &TcpRepr, payload: &[u8]) -> Vec<u8> {
    let segment = tcp(ip.src, ip.dst, tcp_repr, payload);
    ipv4_frame(eth, &Ipv4Repr { protocol: protocol::TCP, ..*ip }, &segment)
}

/// An Ethernet/IPv4/ICMP frame; EtherType and IP protocol are set to IPv4 and ICMP.
pub fn icmp_frame(eth: &EthernetRepr, ip: &Ipv4Repr, icmp_repr: &IcmpRepr, body: &[u8]) -> Vec<u8> {
    ipv4_frame(eth, &Ipv4Repr { protocol: protocol::ICMP, ..*ip }, &icmp(icmp_repr, body))
}

/// An Ethernet/IPv4 frame around `payload`, whatever its protocol; the EtherType is set to
/// IPv4.
pub fn ipv4_frame(eth: &EthernetRepr, ip: &Ipv4Repr, payload: &[u8]) -> Vec<u8> {
    ethernet(&EthernetRepr { ethertype: ethertype::IPV4, ..*eth }, &ipv4(ip, payload))
}

#[cfg(test)]
mod tests {
    use super::super::ethernet::EthernetAddress;
    use super::super::icmp::msg_type;
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const ETH: EthernetRepr = EthernetRepr {
        dst: EthernetAddress([2, 0, 0, 0, 0, 2]),
        src: EthernetAddress([2, 0, 0, 0, 0, 1]),
        ethertype: 0,
    };

    #[test]
    fn layers_parse_back() {
        let udp_repr = UdpRepr { src_port: 1, dst_port: 2, payload_len: 999 };
        let f = udp_frame(&ETH, &ipv4_repr(A, B, 0, 7), &udp_repr, b"abc");
        assert_eq!(f.len(), 14 + 20 + 8 + 3);
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(eth.ethertype(), ethertype::IPV4);
        let ip = Ipv4Packet::new_unchecked(eth.payload());
        let repr = Ipv4Repr::parse(&ip).unwrap();
        assert_eq!((repr.protocol, repr.payload_len, repr.ident, repr.ttl), (protocol::UDP, 11, 7, 64));
        let u = UdpPacket::new_unchecked(ip.payload());
        assert_eq!(UdpRepr::parse(&u), Ok(UdpRepr { payload_len: 3, ..udp_repr }));
        assert!(u.verify_checksum(A, B));
        assert_eq!(u.payload(), b"abc");
    }

    #[test]
    fn options_are_covered_by_the_checksum() {
        let p = ipv4_with_options(&ipv4_repr(A, B, protocol::UDP, 1), &[0x94, 4, 0, 0], b"xy");
        let v = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!(
            (v.header_len(), v.total_len(), v.options(), v.payload()),
            (24, 26, &[0x94, 4, 0, 0][..], &b"xy"[..])
        );
    }

    #[test]
    fn tcp_frame_parses_back() {
        use super::super::tcp::{flags, TcpOptions};
        let repr = TcpRepr {
            src_port: 40000,
            dst_port: 7777,
            seq: 1,
            ack: 2,
            flags: flags::PSH | flags::ACK,
            window: 512,
            urgent: 0,
            options: TcpOptions { timestamp: Some((3, 4)), ..TcpOptions::default() },
            payload_len: 999,
        };
        let f = tcp_frame(&ETH, &ipv4_repr(A, B, 0, 9), &repr, b"abcde");
        assert_eq!(f.len(), 14 + 20 + 32 + 5);
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert_eq!((ip.protocol(), ip.total_len()), (protocol::TCP, 57));
        let t = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(t.verify_checksum(A, B));
        assert_eq!(TcpRepr::parse(&t), TcpRepr { payload_len: 5, ..repr });
        assert_eq!(t.payload(), b"abcde");
    }

    #[test]
    fn icmp_and_arp_frames() {
        let f = icmp_frame(&ETH, &ipv4_repr(A, B, 0, 1), &IcmpRepr::echo(msg_type::ECHO_REQUEST, 5, 6), &[1, 2, 3]);
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(ip.protocol(), protocol::ICMP);
        let m = IcmpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((m.msg_type(), m.echo_ident(), m.echo_seq(), m.payload()), (8, 5, 6, &[1, 2, 3][..]));
        let repr = ArpRepr {
            operation: super::super::arp::ArpOperation::Request,
            sender_hw: ETH.src,
            sender_ip: A,
            target_hw: EthernetAddress::default(),
            target_ip: B,
        };
        let f = arp_frame(&ETH, &repr);
        assert_eq!((f.len(), &f[12..14]), (42, &[0x08, 0x06][..]));
        assert_eq!(ArpRepr::parse(&ArpPacket::new_unchecked(&f[14..])), Ok(repr));
    }
}
