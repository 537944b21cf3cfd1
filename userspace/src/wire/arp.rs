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

/// A view of an Ethernet/IPv4 ARP packet at the start of `buffer` (the Ethernet payload;
/// padding after the 28 bytes is ignored).
///
/// Packets from [`ArpPacket::new_checked`] hold at least [`PACKET_LEN`] bytes, so no getter
/// panics; on one from [`ArpPacket::new_unchecked`] getters panic if it is shorter.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` without checking it.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps `buffer` after [`ArpPacket::check`].
    ///
    /// # Errors
    /// As [`ArpPacket::check`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ArpError> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// The checks Linux makes before `arp_process()` uses a packet, in the order of the
    /// fields.
    ///
    /// # Errors
    /// [`ArpError::Truncated`] below 28 bytes; [`ArpError::UnsupportedHardware`] for a
    /// hardware type other than Ethernet (1) or IEEE 802 (6), or a hardware address length
    /// other than 6; [`ArpError::UnsupportedProtocol`] for a protocol other than IPv4 or an
    /// address length other than 4; [`ArpError::UnknownOperation`] for an operation other than
    /// request or reply.
    #[inline]
    pub fn check(&self) -> Result<(), ArpError> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            return Err(ArpError::Truncated);
        }
        let htype = self.hardware_type();
        if (htype != HTYPE_ETHERNET && htype != HTYPE_IEEE802) || self.hardware_len() != 6 {
            return Err(ArpError::UnsupportedHardware);
        }
        if self.protocol_type() != PTYPE_IPV4 || self.protocol_len() != 4 {
            return Err(ArpError::UnsupportedProtocol);
        }
        self.operation().map(|_| ())
    }

    /// The buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn bytes(&self) -> &[u8; PACKET_LEN] {
        self.buffer.as_ref().first_chunk::<PACKET_LEN>().expect("ARP packet shorter than 28 bytes")
    }

    /// `ar_hrd`: 1 for Ethernet.
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        let p = self.bytes();
        u16::from_be_bytes([p[0], p[1]])
    }

    /// `ar_pro`: 0x0800 for IPv4.
    #[inline]
    pub fn protocol_type(&self) -> u16 {
        let p = self.bytes();
        u16::from_be_bytes([p[2], p[3]])
    }

    /// `ar_hln`: hardware address length in bytes.
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.bytes()[4]
    }

    /// `ar_pln`: protocol address length in bytes.
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.bytes()[5]
    }

    /// `ar_op`, decoded.
    ///
    /// # Errors
    /// [`ArpError::UnknownOperation`] for anything but request (1) and reply (2).
    #[inline]
    pub fn operation(&self) -> Result<ArpOperation, ArpError> {
        let p = self.bytes();
        match u16::from_be_bytes([p[6], p[7]]) {
            OP_REQUEST => Ok(ArpOperation::Request),
            OP_REPLY => Ok(ArpOperation::Reply),
            _ => Err(ArpError::UnknownOperation),
        }
    }

    /// Sender hardware address.
    #[inline]
    pub fn sender_hw(&self) -> EthernetAddress {
        let p = self.bytes();
        EthernetAddress([p[8], p[9], p[10], p[11], p[12], p[13]])
    }

    /// Sender protocol (IPv4) address.
    #[inline]
    pub fn sender_ip(&self) -> Ipv4Addr {
        let p = self.bytes();
        Ipv4Addr::new(p[14], p[15], p[16], p[17])
    }

    /// Target hardware address (zero in a request).
    #[inline]
    pub fn target_hw(&self) -> EthernetAddress {
        let p = self.bytes();
        EthernetAddress([p[18], p[19], p[20], p[21], p[22], p[23]])
    }

    /// Target protocol (IPv4) address.
    #[inline]
    pub fn target_ip(&self) -> Ipv4Addr {
        let p = self.bytes();
        Ipv4Addr::new(p[24], p[25], p[26], p[27])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    #[inline]
    fn bytes_mut(&mut self) -> &mut [u8; PACKET_LEN] {
        self.buffer.as_mut().first_chunk_mut::<PACKET_LEN>().expect("ARP packet shorter than 28 bytes")
    }

    /// Sets hardware type Ethernet (1) with 6-byte addresses and protocol IPv4 with 4-byte
    /// addresses, as Linux `arp_create()` does for an Ethernet device.
    #[inline]
    pub fn set_ethernet_ipv4(&mut self) {
        let p = self.bytes_mut();
        p[0..2].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        p[2..4].copy_from_slice(&PTYPE_IPV4.to_be_bytes());
        p[4] = 6;
        p[5] = 4;
    }

    /// Sets `ar_op`.
    #[inline]
    pub fn set_operation(&mut self, op: ArpOperation) {
        self.bytes_mut()[6..8].copy_from_slice(&op.code().to_be_bytes());
    }

    /// Sets the sender hardware address.
    #[inline]
    pub fn set_sender_hw(&mut self, addr: EthernetAddress) {
        self.bytes_mut()[8..14].copy_from_slice(&addr.0);
    }

    /// Sets the sender IPv4 address.
    #[inline]
    pub fn set_sender_ip(&mut self, addr: Ipv4Addr) {
        self.bytes_mut()[14..18].copy_from_slice(&addr.octets());
    }

    /// Sets the target hardware address.
    #[inline]
    pub fn set_target_hw(&mut self, addr: EthernetAddress) {
        self.bytes_mut()[18..24].copy_from_slice(&addr.0);
    }

    /// Sets the target IPv4 address.
    #[inline]
    pub fn set_target_ip(&mut self, addr: Ipv4Addr) {
        self.bytes_mut()[24..28].copy_from_slice(&addr.octets());
    }
}

/// The fields of an Ethernet/IPv4 ARP packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ArpRepr {
    /// Request or reply (`ar_op`).
    pub operation: ArpOperation,
    /// Sender hardware address (`ar_sha`).
    pub sender_hw: EthernetAddress,
    /// Sender protocol address (`ar_sip`).
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (`ar_tha`).
    pub target_hw: EthernetAddress,
    /// Target protocol address (`ar_tip`).
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Checks `packet` ([`ArpPacket::check`]) and reads its fields.
    ///
    /// # Errors
    /// As [`ArpPacket::check`].
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &ArpPacket<&T>) -> Result<Self, ArpError> {
        packet.check()?;
        Ok(ArpRepr {
            operation: packet.operation()?,
            sender_hw: packet.sender_hw(),
            sender_ip: packet.sender_ip(),
            target_hw: packet.target_hw(),
            target_ip: packet.target_ip(),
        })
    }

    /// Writes the 28-byte packet with hardware type Ethernet (1), as Linux `arp_create()`
    /// does for an Ethernet device. Bytes after the 28 are left alone.
    ///
    /// # Panics
    /// If the packet's buffer is shorter than [`PACKET_LEN`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut ArpPacket<&mut T>) {
        packet.set_ethernet_ipv4();
        packet.set_operation(self.operation);
        packet.set_sender_hw(self.sender_hw);
        packet.set_sender_ip(self.sender_ip);
        packet.set_target_hw(self.target_hw);
        packet.set_target_ip(self.target_ip);
    }

    /// Length of the packet: [`PACKET_LEN`] (ARP has no payload).
    #[inline]
    pub const fn header_len(&self) -> usize {
        PACKET_LEN
    }

    /// Bytes the packet needs: [`PACKET_LEN`].
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// The reply to this request from the owner of `our_hw` (RFC 826: swap sender and target,
    /// fill in our hardware address). Meaningful for requests whose `target_ip` is ours.
    #[inline]
    pub fn reply(&self, our_hw: EthernetAddress) -> ArpRepr {
        ArpRepr {
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

    fn parse(bytes: &[u8]) -> Result<ArpRepr, ArpError> {
        ArpRepr::parse(&ArpPacket::new_unchecked(bytes))
    }

    fn write(repr: &ArpRepr, buf: &mut [u8]) {
        repr.emit(&mut ArpPacket::new_unchecked(buf));
    }

    fn request() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Request,
            sender_hw: A_HW,
            sender_ip: A_IP,
            target_hw: EthernetAddress::default(),
            target_ip: B_IP,
        }
    }

    #[test]
    fn parse_request() {
        assert_eq!(parse(&PACKET_BYTES), Ok(request()));
    }

    #[test]
    fn parse_with_ethernet_padding() {
        let mut padded = [0u8; 46];
        padded[..28].copy_from_slice(&PACKET_BYTES);
        assert_eq!(parse(&padded), Ok(request()));
    }

    #[test]
    fn parse_reply_and_build_reply() {
        let reply = parse(&REPLY_BYTES).unwrap();
        assert_eq!(reply.operation, ArpOperation::Reply);
        assert_eq!(request().reply(B_HW), reply);
        let mut buf = [0u8; 28];
        write(&reply, &mut buf);
        assert_eq!(buf, REPLY_BYTES);
    }

    #[test]
    fn write_round_trips() {
        let mut buf = [0xEEu8; 30];
        write(&request(), &mut buf);
        assert_eq!(buf[..28], PACKET_BYTES);
        assert_eq!(buf[28..], [0xEE, 0xEE]);
    }

    #[test]
    fn view_getters() {
        let p = ArpPacket::new_checked(&REPLY_BYTES[..]).unwrap();
        assert_eq!((p.hardware_type(), p.protocol_type(), p.hardware_len(), p.protocol_len()), (1, 0x0800, 6, 4));
        assert_eq!(p.operation(), Ok(ArpOperation::Reply));
        assert_eq!((p.sender_hw(), p.sender_ip(), p.target_hw(), p.target_ip()), (B_HW, B_IP, A_HW, A_IP));
        assert_eq!(p.into_inner(), &REPLY_BYTES[..]);
        let r = request();
        assert_eq!((r.header_len(), r.buffer_len()), (PACKET_LEN, PACKET_LEN));
        assert_eq!(ArpPacket::new_checked(&PACKET_BYTES[..27]), Err(ArpError::Truncated));
    }

    #[test]
    fn reject_truncated() {
        for len in 0..PACKET_LEN {
            assert_eq!(parse(&PACKET_BYTES[..len]), Err(ArpError::Truncated));
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
            assert_eq!(parse(&bad), Err(ArpError::UnsupportedHardware));
        }
        // IEEE 802 hardware type is accepted, as Linux does on Ethernet devices.
        assert_eq!(parse(&with(0, &[0, 6])), Ok(request()));
    }

    #[test]
    fn reject_protocol() {
        for bad in [with(2, &[0x86, 0xdd]), with(5, &[16]), with(2, &[0x08, 0x06])] {
            assert_eq!(parse(&bad), Err(ArpError::UnsupportedProtocol));
        }
    }

    #[test]
    fn hardware_checked_before_protocol_before_operation() {
        let both = with(0, &[0, 0, 0x86, 0xdd, 6, 4, 0, 9]);
        assert_eq!(parse(&both), Err(ArpError::UnsupportedHardware));
        let proto_op = with(2, &[0x86, 0xdd, 6, 4, 0, 9]);
        assert_eq!(parse(&proto_op), Err(ArpError::UnsupportedProtocol));
    }

    #[test]
    fn reject_operation() {
        // 3/4 are RARP, 8/9 InARP, 0 is reserved.
        for op in [0u16, 3, 4, 8, 9, 0x0100, 0xFFFF] {
            let bad = with(6, &op.to_be_bytes());
            assert_eq!(parse(&bad), Err(ArpError::UnknownOperation), "op {op}");
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
