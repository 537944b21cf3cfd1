//! ARP (RFC 826) for IPv4 over Ethernet: the 28-byte request/reply that the neighbour layer
//! sends and answers.
//!
//! This module owns the packet layout and the checks Linux applies before `arp_process()`
//! (`net/ipv4/arp.c`) looks at an ARP packet at all: hardware address length 6, protocol
//! IPv4 with length 4, and an operation of request or reply. Other hardware or protocol
//! combinations (and RARP, InARP) are rejected. Like Linux, which has no SNMP counter for
//! these, callers count them under an `Xsk` name of their own.

use core::fmt;
use std::net::Ipv4Addr;

use super::ethernet::EthernetAddress;

/// Length of an Ethernet/IPv4 ARP packet. The Ethernet payload may be longer (padding).
pub const PACKET_LEN: usize = 28;

/// `ARPHRD_ETHER`.
const HTYPE_ETHERNET: u16 = 1;
/// `ARPHRD_IEEE802`: Linux accepts it on Ethernet devices as well (`arp_process()`).
const HTYPE_IEEE802: u16 = 6;
/// `ETH_P_IP`.
const PTYPE_IPV4: u16 = 0x0800;
const OP_REQUEST: u16 = 1;
const OP_REPLY: u16 = 2;

/// The ARP operation (`ar_op`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ArpOperation {
    /// `ARPOP_REQUEST` (1): who has `target_ip`?
    Request,
    /// `ARPOP_REPLY` (2): `sender_ip` is at `sender_hw`.
    Reply,
}

impl ArpOperation {
    /// The on-the-wire value.
    #[inline]
    pub const fn code(self) -> u16 {
        match self {
            ArpOperation::Request => OP_REQUEST,
            ArpOperation::Reply => OP_REPLY,
        }
    }
}

/// Why a packet was not accepted as Ethernet/IPv4 ARP.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ArpError {
    /// Shorter than the 28-byte Ethernet/IPv4 ARP packet.
    Truncated,
    /// Hardware type not Ethernet (1, or IEEE 802 = 6), or hardware address length not 6.
    UnsupportedHardware,
    /// Protocol type not IPv4 (0x0800), or protocol address length not 4.
    UnsupportedProtocol,
    /// Operation neither request (1) nor reply (2).
    UnknownOperation,
}

impl fmt::Display for ArpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArpError::Truncated => "ARP packet shorter than 28 bytes",
            ArpError::UnsupportedHardware => "ARP hardware type is not Ethernet with 6-byte addresses",
            ArpError::UnsupportedProtocol => "ARP protocol type is not IPv4 with 4-byte addresses",
            ArpError::UnknownOperation => "ARP operation is neither request nor reply",
        })
    }
}

impl std::error::Error for ArpError {}

/// An Ethernet/IPv4 ARP packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ArpPacket {
    pub operation: ArpOperation,
    pub sender_hw: EthernetAddress,
    pub sender_ip: Ipv4Addr,
    pub target_hw: EthernetAddress,
    pub target_ip: Ipv4Addr,
}

impl ArpPacket {
    /// Parses the ARP packet at the start of `payload` (the Ethernet payload; trailing padding
    /// is ignored). Checks run in the order of the fields.
    #[inline]
    pub fn parse(payload: &[u8]) -> Result<Self, ArpError> {
        let Some(p) = payload.first_chunk::<PACKET_LEN>() else {
            return Err(ArpError::Truncated);
        };
        let htype = u16::from_be_bytes([p[0], p[1]]);
        let ptype = u16::from_be_bytes([p[2], p[3]]);
        let (hlen, plen) = (p[4], p[5]);
        if (htype != HTYPE_ETHERNET && htype != HTYPE_IEEE802) || hlen != 6 {
            return Err(ArpError::UnsupportedHardware);
        }
        if ptype != PTYPE_IPV4 || plen != 4 {
            return Err(ArpError::UnsupportedProtocol);
        }
        let operation = match u16::from_be_bytes([p[6], p[7]]) {
            OP_REQUEST => ArpOperation::Request,
            OP_REPLY => ArpOperation::Reply,
            _ => return Err(ArpError::UnknownOperation),
        };
        Ok(ArpPacket {
            operation,
            sender_hw: EthernetAddress([p[8], p[9], p[10], p[11], p[12], p[13]]),
            sender_ip: Ipv4Addr::new(p[14], p[15], p[16], p[17]),
            target_hw: EthernetAddress([p[18], p[19], p[20], p[21], p[22], p[23]]),
            target_ip: Ipv4Addr::new(p[24], p[25], p[26], p[27]),
        })
    }

    /// Writes the packet into `buf[..28]` with hardware type Ethernet (1), as Linux
    /// `arp_create()` does for an Ethernet device.
    ///
    /// # Panics
    /// If `buf` is shorter than [`PACKET_LEN`].
    #[inline]
    pub fn write(&self, buf: &mut [u8]) {
        debug_assert!(buf.len() >= PACKET_LEN, "ARP packet needs 28 bytes");
        let p = &mut buf[..PACKET_LEN];
        p[0..2].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        p[2..4].copy_from_slice(&PTYPE_IPV4.to_be_bytes());
        p[4] = 6;
        p[5] = 4;
        p[6..8].copy_from_slice(&self.operation.code().to_be_bytes());
        p[8..14].copy_from_slice(&self.sender_hw.0);
        p[14..18].copy_from_slice(&self.sender_ip.octets());
        p[18..24].copy_from_slice(&self.target_hw.0);
        p[24..28].copy_from_slice(&self.target_ip.octets());
    }

    /// The reply to this request from the owner of `our_hw` (RFC 826: swap sender and target,
    /// fill in our hardware address). Meaningful for requests whose `target_ip` is ours.
    #[inline]
    pub fn reply(&self, our_hw: EthernetAddress) -> ArpPacket {
        ArpPacket {
            operation: ArpOperation::Reply,
            sender_hw: our_hw,
            sender_ip: self.target_ip,
            target_hw: self.sender_hw,
            target_ip: self.sender_ip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10.0.0.1 (02:00:00:00:00:01) asks who has 10.0.0.2.
    const PACKET_BYTES: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x0a, 0x00, //
        0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x0a, 0x00, 0x00, 0x02,
    ];

    /// 10.0.0.2 (02:00:00:00:00:02) answers 10.0.0.1.
    const REPLY_BYTES: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, //
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x0a, 0x00, //
        0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, //
        0x0a, 0x00, 0x00, 0x01,
    ];

    const A_HW: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const B_HW: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
    const A_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn request() -> ArpPacket {
        ArpPacket {
            operation: ArpOperation::Request,
            sender_hw: A_HW,
            sender_ip: A_IP,
            target_hw: EthernetAddress::default(),
            target_ip: B_IP,
        }
    }

    #[test]
    fn parse_request() {
        assert_eq!(ArpPacket::parse(&PACKET_BYTES), Ok(request()));
    }

    #[test]
    fn parse_with_ethernet_padding() {
        let mut padded = [0u8; 46];
        padded[..28].copy_from_slice(&PACKET_BYTES);
        assert_eq!(ArpPacket::parse(&padded), Ok(request()));
    }

    #[test]
    fn parse_reply_and_build_reply() {
        let reply = ArpPacket::parse(&REPLY_BYTES).unwrap();
        assert_eq!(reply.operation, ArpOperation::Reply);
        assert_eq!(request().reply(B_HW), reply);
        let mut buf = [0u8; 28];
        reply.write(&mut buf);
        assert_eq!(buf, REPLY_BYTES);
    }

    #[test]
    fn write_round_trips() {
        let mut buf = [0xEEu8; 30];
        request().write(&mut buf);
        assert_eq!(buf[..28], PACKET_BYTES);
        assert_eq!(buf[28..], [0xEE, 0xEE]);
    }

    #[test]
    fn reject_truncated() {
        for len in 0..PACKET_LEN {
            assert_eq!(ArpPacket::parse(&PACKET_BYTES[..len]), Err(ArpError::Truncated));
        }
    }

    fn with(at: usize, bytes: &[u8]) -> [u8; 28] {
        let mut p = PACKET_BYTES;
        p[at..at + bytes.len()].copy_from_slice(bytes);
        p
    }

    #[test]
    fn reject_hardware() {
        for bad in [with(0, &[0, 0]), with(0, &[0, 0x20]), with(4, &[8]), with(4, &[0])] {
            assert_eq!(ArpPacket::parse(&bad), Err(ArpError::UnsupportedHardware));
        }
        // IEEE 802 hardware type is accepted, as Linux does on Ethernet devices.
        assert_eq!(ArpPacket::parse(&with(0, &[0, 6])), Ok(request()));
    }

    #[test]
    fn reject_protocol() {
        for bad in [with(2, &[0x86, 0xdd]), with(5, &[16]), with(2, &[0x08, 0x06])] {
            assert_eq!(ArpPacket::parse(&bad), Err(ArpError::UnsupportedProtocol));
        }
    }

    #[test]
    fn hardware_checked_before_protocol_before_operation() {
        let both = with(0, &[0, 0, 0x86, 0xdd, 6, 4, 0, 9]);
        assert_eq!(ArpPacket::parse(&both), Err(ArpError::UnsupportedHardware));
        let proto_op = with(2, &[0x86, 0xdd, 6, 4, 0, 9]);
        assert_eq!(ArpPacket::parse(&proto_op), Err(ArpError::UnsupportedProtocol));
    }

    #[test]
    fn reject_operation() {
        // 3/4 are RARP, 8/9 InARP, 0 is reserved.
        for op in [0u16, 3, 4, 8, 9, 0x0100, 0xFFFF] {
            let bad = with(6, &op.to_be_bytes());
            assert_eq!(ArpPacket::parse(&bad), Err(ArpError::UnknownOperation), "op {op}");
        }
    }

    #[test]
    fn error_display() {
        for e in [
            ArpError::Truncated,
            ArpError::UnsupportedHardware,
            ArpError::UnsupportedProtocol,
            ArpError::UnknownOperation,
        ] {
            assert!(e.to_string().starts_with("ARP"));
        }
    }
}
