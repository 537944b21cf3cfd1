//! Wire formats: parsing, validation and building of the headers the stack speaks (Ethernet,
//! ARP, IPv4, ICMP, UDP, TCP with its options) and the Internet checksum.
//!
//! This is the protocol half of the softirq stage: views and values over byte slices, with no
//! state (beyond the rate limit of one log line, as Linux has for an illegal TCP window scale),
//! no allocation (outside [`build`]) and no `unsafe`, that depend on nothing else in
//! xsknet. Modelled on smoltcp's `src/wire`, every header has the same two shapes:
//!
//! - a view `XxxPacket<T: AsRef<[u8]>>` (`EthernetFrame` for Ethernet) over the bytes in
//!   place: `new_unchecked`, `check` and `new_checked` (the receive checks, in the order the
//!   Linux receive path makes them, so that every rejection maps to the counter Linux bumps
//!   for it), field getters, setters where `T: AsMut<[u8]>`, and `payload()`;
//! - a plain value `XxxRepr` with `parse(&XxxPacket<&T>)` (checks, then reads the fields) and
//!   `emit(&self, &mut XxxPacket<&mut T>)` (writes the header, checksum included), and
//!   `header_len()` / `buffer_len()`. TCP's options have a value of their own,
//!   [`tcp::TcpOptions`], read and written in Linux's layout.
//!
//! Errors are small `Copy` enums whose variants name the Linux counter each rejection bumps.
//! Deciding what to do with a valid packet (is it for us, which sock gets it, what to answer)
//! belongs to the receive loop. The IPv4 pseudo-header checksum ([`checksum::verify_pseudo`],
//! [`checksum::compute_pseudo`]) and the protocol numbers ([`ipv4::protocol`]) are shared by
//! every transport over IPv4.
#![forbid(unsafe_code)]

pub mod arp;
pub mod build;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod tcp;
pub mod udp;

pub use ethernet::EthernetAddress;

#[cfg(test)]
mod tests {
    //! Whole frames through every layer, as the receive loop will walk them.

    use std::net::Ipv4Addr;

    use super::arp::{ArpPacket, ArpRepr};
    use super::ethernet::{ethertype, EthernetFrame, EthernetRepr};
    use super::icmp::{IcmpPacket, IcmpRepr};
    use super::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
    use super::tcp::{TcpPacket, TcpRepr};
    use super::udp::{UdpPacket, UdpRepr};
    use super::*;

    /// `ping -c1 10.0.0.2` from 10.0.0.1: Ethernet + IPv4 (DF, TTL 64) + ICMP echo request
    /// (id 0x0b1f, seq 1, 56 bytes of data).
    const PING_FRAME: [u8; 98] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, //
        0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00, //
        0x00, 0x54, 0x4c, 0x2d, 0x40, 0x00, 0x40, 0x01, //
        0xda, 0x79, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, //
        0x00, 0x02, 0x08, 0x00, 0x8e, 0xf1, 0x0b, 0x1f, //
        0x00, 0x01, 0xa3, 0xe1, 0x44, 0x67, 0x00, 0x00, //
        0x00, 0x00, 0xb1, 0xd2, 0x05, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, //
        0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, //
        0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, //
        0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, //
        0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, //
        0x36, 0x37,
    ];

    /// A 60-byte UDP frame, "hello, xsknet!\n" from 10.0.0.1:40000 to 10.0.0.2:7777; the IP
    /// datagram is 43 bytes, so 3 bytes of Ethernet padding follow it.
    const UDP_FRAME: [u8; 60] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, //
        0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00, //
        0x00, 0x2b, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, //
        0x14, 0x8c, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, //
        0x00, 0x02, 0x9c, 0x40, 0x1e, 0x61, 0x00, 0x17, //
        0x6c, 0xb3, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x2c, //
        0x20, 0x78, 0x73, 0x6b, 0x6e, 0x65, 0x74, 0x21, //
        0x0a, 0x00, 0x00, 0x00,
    ];

    /// "hi" on the same ports: a 30-byte datagram and 16 bytes of Ethernet padding.
    const PADDED_FRAME: [u8; 60] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, //
        0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00, //
        0x00, 0x1e, 0x12, 0x35, 0x40, 0x00, 0x40, 0x11, //
        0x14, 0x98, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, //
        0x00, 0x02, 0x9c, 0x40, 0x1e, 0x61, 0x00, 0x0a, //
        0xc8, 0xcc, 0x68, 0x69, 0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00,
    ];

    /// "hello, xsknet!\n" over TCP from 10.0.0.1:40000 to 10.0.0.2:7777 (PSH|ACK, timestamps):
    /// the IP datagram a Linux 6.18 sender put on a veth (tcpdump -xx, checksum offload off),
    /// behind this file's Ethernet header.
    const TCP_FRAME: [u8; 81] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, //
        0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00, //
        0x00, 0x43, 0x5e, 0x40, 0x40, 0x00, 0x40, 0x06, //
        0xc8, 0x72, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, //
        0x00, 0x02, 0x9c, 0x40, 0x1e, 0x61, 0x40, 0x31, //
        0xd2, 0x75, 0x50, 0x9c, 0x87, 0x59, 0x80, 0x18, //
        0x00, 0x3f, 0x33, 0x9f, 0x00, 0x00, 0x01, 0x01, //
        0x08, 0x0a, 0xde, 0x03, 0x84, 0x78, 0xd0, 0x51, //
        0x92, 0x50, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x2c, //
        0x20, 0x78, 0x73, 0x6b, 0x6e, 0x65, 0x74, 0x21, //
        0x0a,
    ];

    /// Broadcast ARP request: who has 10.0.0.2? tell 10.0.0.1.
    const ARP_FRAME: [u8; 60] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, //
        0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x01, //
        0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, //
        0x00, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x01, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, //
        0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00,
    ];

    const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    /// What the receive path makes of a frame; `Err` carries the layer that refused it.
    #[derive(Debug, PartialEq)]
    enum Outcome {
        Arp(ArpRepr),
        Icmp(IcmpRepr),
        Udp(UdpRepr, bool),
        Tcp(TcpRepr, bool),
        OtherEthertype,
        OtherProtocol,
        Err(&'static str),
    }

    /// The receive path's parse steps, in order. Never panics on any input (that is the
    /// point of the fuzz tests below).
    fn walk(frame: &[u8]) -> Outcome {
        let eth = EthernetFrame::new_unchecked(frame);
        let Ok(eth_repr) = EthernetRepr::parse(&eth) else {
            return Outcome::Err("ethernet");
        };
        match eth_repr.ethertype {
            ethertype::ARP => match ArpRepr::parse(&ArpPacket::new_unchecked(eth.payload())) {
                Ok(p) => Outcome::Arp(p),
                Err(_) => Outcome::Err("arp"),
            },
            ethertype::IPV4 => {
                let packet = Ipv4Packet::new_unchecked(eth.payload());
                let ip = match Ipv4Repr::parse(&packet) {
                    Ok(ip) => ip,
                    Err(_) => return Outcome::Err("ipv4"),
                };
                let l4 = packet.payload();
                match ip.protocol {
                    protocol::ICMP => match IcmpRepr::parse(&IcmpPacket::new_unchecked(l4)) {
                        Ok(h) => Outcome::Icmp(h),
                        Err(_) => Outcome::Err("icmp"),
                    },
                    protocol::UDP => {
                        let udp = UdpPacket::new_unchecked(l4);
                        match UdpRepr::parse(&udp) {
                            Ok(h) => Outcome::Udp(h, udp.verify_checksum(ip.src, ip.dst)),
                            Err(_) => Outcome::Err("udp"),
                        }
                    }
                    protocol::TCP => match TcpPacket::new_checked(l4) {
                        Ok(tcp) => Outcome::Tcp(TcpRepr::parse(&tcp), tcp.verify_checksum(ip.src, ip.dst)),
                        Err(_) => Outcome::Err("tcp"),
                    },
                    _ => Outcome::OtherProtocol,
                }
            }
            _ => Outcome::OtherEthertype,
        }
    }

    /// The IP payload of a frame whose IPv4 header checks.
    fn ip_payload(frame: &[u8]) -> &[u8] {
        Ipv4Packet::new_checked(&frame[ethernet::HEADER_LEN..]).unwrap().payload()
    }

    #[test]
    fn ping_frame_through_the_stack() {
        let Outcome::Icmp(h) = walk(&PING_FRAME) else {
            panic!("{:?}", walk(&PING_FRAME));
        };
        assert_eq!((h.msg_type, h.echo_ident(), h.echo_seq()), (8, 0x0b1f, 1));
    }

    #[test]
    fn udp_frames_through_the_stack() {
        for (frame, payload) in [(&UDP_FRAME, &b"hello, xsknet!\n"[..]), (&PADDED_FRAME, b"hi")] {
            let Outcome::Udp(h, csum_ok) = walk(frame) else {
                panic!("{:?}", walk(frame));
            };
            assert!(csum_ok);
            assert_eq!((h.src_port, h.dst_port), (40000, 7777));
            assert_eq!(UdpPacket::new_checked(ip_payload(frame)).unwrap().payload(), payload);
        }
    }

    #[test]
    fn tcp_frame_through_the_stack() {
        let Outcome::Tcp(h, csum_ok) = walk(&TCP_FRAME) else {
            panic!("{:?}", walk(&TCP_FRAME));
        };
        assert!(csum_ok);
        assert_eq!(
            (h.src_port, h.dst_port, h.flags, h.payload_len),
            (40000, 7777, tcp::flags::PSH | tcp::flags::ACK, 15)
        );
        assert_eq!(h.options.timestamp, Some((0xde03_8478, 0xd051_9250)));
        assert_eq!(TcpPacket::new_checked(ip_payload(&TCP_FRAME)).unwrap().payload(), b"hello, xsknet!\n");
        // The shared builder makes the same frame from the parsed values.
        let eth = EthernetRepr { dst: MAC_B, src: MAC_A, ethertype: 0 };
        let ip = build::ipv4_repr(A, B, 0, 0x5e40);
        assert_eq!(build::tcp_frame(&eth, &ip, &h, b"hello, xsknet!\n")[..], TCP_FRAME[..]);
        // A bad checksum is seen, not refused: counting it is the receive path's.
        let mut bad = TCP_FRAME;
        bad[80] ^= 1;
        assert!(matches!(walk(&bad), Outcome::Tcp(_, false)));
    }

    #[test]
    fn padding_is_not_payload() {
        // Without trimming to total_len, the 16 padding bytes would reach UDP and (ulen 10 <
        // 32) still parse, but the checksum over 32 bytes would be wrong. Trimming gives 10.
        assert_eq!(ip_payload(&PADDED_FRAME).len(), 10);
    }

    #[test]
    fn arp_frame_through_the_stack() {
        let Outcome::Arp(p) = walk(&ARP_FRAME) else {
            panic!("{:?}", walk(&ARP_FRAME));
        };
        assert_eq!((p.sender_ip, p.target_ip), (A, B));
        assert_eq!(p.sender_hw, MAC_A);
    }

    /// Builds the echo reply the way the send path will (reply in place, swap addresses,
    /// fresh IPv4 header) and checks it against the reply Linux sends.
    #[test]
    fn build_ping_reply_frame() {
        let mut frame = PING_FRAME;
        let eth = EthernetRepr::parse(&EthernetFrame::new_unchecked(&frame[..])).unwrap();
        let ip = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&frame[14..])).unwrap();
        EthernetRepr { dst: eth.src, src: eth.dst, ethertype: ethertype::IPV4 }
            .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
        IcmpPacket::new_unchecked(&mut frame[34..]).echo_request_to_reply();
        let reply = Ipv4Repr { src: ip.dst, dst: ip.src, ident: 0x1d6e, dont_fragment: false, ..ip };
        reply.emit(&mut Ipv4Packet::new_unchecked(&mut frame[14..]));
        let Outcome::Icmp(h) = walk(&frame) else {
            panic!("{:?}", walk(&frame));
        };
        assert_eq!(h.msg_type, icmp::msg_type::ECHO_REPLY);
        assert_eq!(&frame[..6], &MAC_A.0);
        let reply_ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        assert_eq!((reply_ip.src_addr(), reply_ip.dst_addr(), reply_ip.total_len()), (B, A, 84));
        assert_eq!(&frame[38..], &PING_FRAME[38..], "id, seq and data are echoed");
    }

    #[test]
    fn build_udp_frame() {
        let mut frame = [0u8; 60];
        frame[42..57].copy_from_slice(b"hello, xsknet!\n");
        EthernetRepr { dst: MAC_B, src: MAC_A, ethertype: ethertype::IPV4 }
            .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
        let ip = Ipv4Repr { payload_len: 23, ..build::ipv4_repr(A, B, protocol::UDP, 0x1234) };
        ip.emit(&mut Ipv4Packet::new_unchecked(&mut frame[14..]));
        UdpRepr { src_port: 40000, dst_port: 7777, payload_len: 15 }.emit(
            &mut UdpPacket::new_unchecked(&mut frame[34..]),
            A,
            B,
        );
        assert_eq!(frame, UDP_FRAME);
        // The shared builder makes the same frame, without the Ethernet padding.
        let eth = EthernetRepr { dst: MAC_B, src: MAC_A, ethertype: 0 };
        let udp = UdpRepr { src_port: 40000, dst_port: 7777, payload_len: 0 };
        let built = build::udp_frame(&eth, &ip, &udp, b"hello, xsknet!\n");
        assert_eq!(built[..], UDP_FRAME[..57]);
        let arp = walk(&ARP_FRAME);
        let Outcome::Arp(req) = arp else { panic!("{arp:?}") };
        assert_eq!(
            build::arp_frame(&EthernetRepr { dst: EthernetAddress::BROADCAST, ..eth }, &req)[..],
            ARP_FRAME[..42]
        );
        let echo = IcmpRepr::echo(icmp::msg_type::ECHO_REQUEST, 0x0b1f, 1);
        let ping_ip = Ipv4Repr { ident: 0x4c2d, ..ip };
        assert_eq!(build::icmp_frame(&eth, &ping_ip, &echo, &PING_FRAME[42..])[..], PING_FRAME[..]);
    }

    #[test]
    fn port_unreachable_for_udp_frame() {
        let original = &PADDED_FRAME[14..14 + Ipv4Packet::new_checked(&PADDED_FRAME[14..]).unwrap().total_len()];
        let mut buf = [0u8; icmp::HEADER_LEN + icmp::MAX_QUOTED_LEN];
        let len = IcmpRepr::dest_unreachable(icmp::unreach_code::PORT).emit_quoting(&mut buf, original);
        assert_eq!(len, 38, "padding is not quoted");
        assert!(IcmpPacket::new_checked(&buf[..len]).is_ok());
    }

    /// Every prefix of every valid frame: each layer returns Ok or Err, never panics.
    #[test]
    fn every_prefix_never_panics() {
        for frame in [&PING_FRAME[..], &UDP_FRAME, &PADDED_FRAME, &ARP_FRAME, &TCP_FRAME] {
            for len in 0..=frame.len() {
                let _ = walk(&frame[..len]);
                let f = &frame[..len];
                let _ = EthernetRepr::parse(&EthernetFrame::new_unchecked(f));
                for start in 0..len.min(40) {
                    let s = &f[start..];
                    let _ = ArpRepr::parse(&ArpPacket::new_unchecked(s));
                    let ip = Ipv4Packet::new_unchecked(s);
                    if ip.check_version_ihl().is_ok() {
                        let _ = (ip.ecn(), ip.dscp(), ip.verify_checksum(), ip.options(), ip.payload());
                    }
                    let _ = Ipv4Repr::parse(&ip);
                    let _ = IcmpRepr::parse(&IcmpPacket::new_unchecked(s));
                    if let Ok(q) = icmp::IcmpQuote::new_checked(s) {
                        let _ = (q.ports(), q.protocol(), q.transport_header());
                    }
                    let _ = UdpRepr::parse(&UdpPacket::new_unchecked(s));
                    let _ = UdpPacket::new_unchecked(s).verify_checksum(A, B);
                    let t = TcpPacket::new_unchecked(s);
                    let _ = (t.verify_checksum(A, B), t.options(), t.payload());
                    if t.check().is_ok() {
                        let _ = TcpRepr::parse(&t);
                    }
                }
            }
        }
        // Cut inside the datagram: truncation is caught by IPv4, not by a panic further up.
        assert_eq!(walk(&PING_FRAME[..97]), Outcome::Err("ipv4"));
        assert_eq!(walk(&PING_FRAME[..34]), Outcome::Err("ipv4"));
        assert_eq!(walk(&ARP_FRAME[..41]), Outcome::Err("arp"));
        assert_eq!(walk(&UDP_FRAME[..13]), Outcome::Err("ethernet"));
        // A TCP header cut by a lying IP total length is caught by IPv4; one whose data offset
        // runs past the datagram, by TCP.
        assert_eq!(walk(&TCP_FRAME[..60]), Outcome::Err("ipv4"));
        let mut long_doff = TCP_FRAME;
        long_doff[46] = 0xF0;
        assert_eq!(walk(&long_doff), Outcome::Err("tcp"));
    }

    /// Random mutations of valid frames (deterministic xorshift, no proptest): flip bytes,
    /// cut, or set header fields to edge values, then walk. Nothing may panic, and frames whose
    /// IPv4 header verifies must keep the invariants the upper layers rely on.
    #[test]
    fn mutated_frames_never_panic() {
        let mut state: u64 = 0x853C_49E6_748F_EA9B;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let frames = [&PING_FRAME[..], &UDP_FRAME, &PADDED_FRAME, &ARP_FRAME, &TCP_FRAME];
        let mut buf = [0u8; 98];
        let mut accepted = 0;
        for i in 0..200_000 {
            let base = frames[i % frames.len()];
            let mut len = base.len();
            buf[..len].copy_from_slice(base);
            for _ in 0..=(next() % 3) {
                if len == 0 {
                    break;
                }
                let r = next();
                let at = (r >> 8) as usize % len;
                match r % 4 {
                    0 => buf[at] ^= (r >> 32) as u8,
                    1 => buf[at] = [0x00, 0xFF, 0x45, 0x4F, 0x46][(r >> 40) as usize % 5],
                    2 => len = at,
                    _ => buf[at] = buf[at].wrapping_add(1),
                }
            }
            let frame = &buf[..len];
            // Fix the IPv4 checksum half the time so the deeper layers get exercised.
            if i % 2 == 0 && len >= 34 && frame[12..14] == [0x08, 0x00] {
                let hl = (usize::from(buf[14] & 0x0F) * 4).clamp(20, len - 14);
                buf[24] = 0;
                buf[25] = 0;
                let c = checksum::checksum(&buf[14..14 + hl]);
                buf[24..26].copy_from_slice(&c.to_be_bytes());
            }
            let frame = &buf[..len];
            if let Ok(ip) = Ipv4Packet::new_checked(frame.get(14..).unwrap_or(&[])) {
                assert!(ip.header_len() >= 20 && ip.header_len() <= ip.total_len());
                assert!(ip.total_len() <= len - 14);
                assert_eq!(Ipv4Repr::parse(&ip).map(|r| r.payload_len), Ok(ip.payload().len()));
                accepted += 1;
            }
            let _ = walk(frame);
        }
        assert!(accepted > 1000, "mutations reached the upper layers ({accepted})");
    }
}
