//! ICMPv4 (RFC 792): the checks of Linux `icmp_rcv()`, echo replies made in place, and the
//! destination-unreachable errors that `icmp_send()` builds.
//!
//! This module owns the message layout and checksum, not the policy: which requests to answer,
//! rate limits, and counters (`IcmpInCsumErrors`, `IcmpInErrors`, `IcmpOutEchoReps`,
//! `IcmpOutDestUnreachs`) belong to the receive loop. See `net/ipv4/icmp.c`.

use core::fmt;

use std::net::Ipv4Addr;

use super::checksum;
use super::ipv4::{Ipv4Packet, MIN_HEADER_LEN as IPV4_MIN_HEADER_LEN};

/// Length of the ICMP header: type, code, checksum and four type-specific bytes.
pub const HEADER_LEN: usize = 8;

/// Maximum bytes of the offending datagram that Linux quotes in an ICMP error: `icmp_send()`
/// caps the whole ICMP error IP packet at 576 bytes, so 576 - 20 (IP) - 8 (ICMP) = 548.
pub const MAX_QUOTED_LEN: usize = 548;

/// ICMP message types (`include/uapi/linux/icmp.h`).
pub mod msg_type {
    /// `ICMP_ECHOREPLY`.
    pub const ECHO_REPLY: u8 = 0;
    /// `ICMP_DEST_UNREACH`.
    pub const DEST_UNREACH: u8 = 3;
    /// `ICMP_SOURCE_QUENCH`.
    pub const SOURCE_QUENCH: u8 = 4;
    /// `ICMP_REDIRECT`.
    pub const REDIRECT: u8 = 5;
    /// `ICMP_ECHO`.
    pub const ECHO_REQUEST: u8 = 8;
    /// `ICMP_TIME_EXCEEDED`.
    pub const TIME_EXCEEDED: u8 = 11;
    /// `ICMP_PARAMETERPROB`.
    pub const PARAMETER_PROBLEM: u8 = 12;
    /// `ICMP_TIMESTAMP`.
    pub const TIMESTAMP: u8 = 13;
    /// `ICMP_TIMESTAMPREPLY`.
    pub const TIMESTAMP_REPLY: u8 = 14;
    /// `ICMP_ADDRESS`: address mask request.
    pub const ADDRESS: u8 = 17;
    /// `ICMP_ADDRESSREPLY`: address mask reply.
    pub const ADDRESS_REPLY: u8 = 18;

    /// Whether `t` is an error message (`icmp_pointers[t].error` in net/ipv4/icmp.c):
    /// no ICMP error is ever sent about one.
    #[inline]
    pub fn is_error(t: u8) -> bool {
        matches!(t, DEST_UNREACH | SOURCE_QUENCH | REDIRECT | TIME_EXCEEDED | PARAMETER_PROBLEM)
    }
}

/// Codes of [`msg_type::TIME_EXCEEDED`].
pub mod exc_code {
    /// `ICMP_EXC_FRAGTIME`: fragment reassembly time exceeded.
    pub const FRAGTIME: u8 = 1;
}

/// Codes of [`msg_type::DEST_UNREACH`].
pub mod unreach_code {
    /// `ICMP_NET_UNREACH`: no route to the network.
    pub const NET_UNREACH: u8 = 0;
    /// `ICMP_HOST_UNREACH`: the host does not answer (ARP failed at the last hop).
    pub const HOST_UNREACH: u8 = 1;
    /// `ICMP_PROT_UNREACH`: no handler for the IP protocol.
    pub const PROTOCOL: u8 = 2;
    /// `ICMP_PORT_UNREACH`: no socket bound to the UDP port.
    pub const PORT: u8 = 3;
    /// `ICMP_FRAG_NEEDED`: DF set and the datagram larger than the next hop's
    /// MTU, which the message's last two bytes of header give (RFC 1191).
    pub const FRAG_NEEDED: u8 = 4;
}

/// Why `icmp_rcv()` would drop the message.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum IcmpError {
    /// Shorter than the 8-byte header (checksum valid). Linux: `IcmpInErrors`.
    Truncated,
    /// Checksum over the message does not verify. Linux: `IcmpInCsumErrors` and
    /// `IcmpInErrors`.
    ChecksumError,
    /// An error message whose quoted IPv4 header is cut below 20 bytes or has an IHL below 5
    /// (`icmp_unreach()`'s `out_err`). Linux: `IcmpInErrors`.
    BadQuote,
}

impl fmt::Display for IcmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IcmpError::Truncated => "ICMP message shorter than its 8-byte header",
            IcmpError::ChecksumError => "bad ICMP checksum",
            IcmpError::BadQuote => "ICMP error quotes no valid IPv4 header",
        })
    }
}

impl std::error::Error for IcmpError {}

/// A view of an ICMP message in `buffer` (the IP payload, trimmed to the datagram): the
/// message is the whole buffer, its checksum covers all of it.
///
/// After [`IcmpPacket::check`] (or from [`IcmpPacket::new_checked`]) the buffer holds the
/// 8-byte header and nothing panics; on an unchecked view getters panic below 8 bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wraps `buffer` without checking it.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        IcmpPacket { buffer }
    }

    /// Wraps `buffer` after [`IcmpPacket::check`].
    ///
    /// # Errors
    /// As [`IcmpPacket::check`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, IcmpError> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// Validates the message as Linux `icmp_rcv()`: first the checksum over the whole
    /// message, then the header length. So a message shorter than 8 bytes whose checksum
    /// still verifies is [`IcmpError::Truncated`], and a bad checksum is reported before
    /// truncation. An empty message has a bad checksum (its sum is 0).
    ///
    /// # Errors
    /// [`IcmpError::ChecksumError`], then [`IcmpError::Truncated`], as above.
    #[inline]
    pub fn check(&self) -> Result<(), IcmpError> {
        let m = self.buffer.as_ref();
        if checksum::checksum(m) != 0 {
            return Err(IcmpError::ChecksumError);
        }
        if m.len() < HEADER_LEN {
            return Err(IcmpError::Truncated);
        }
        Ok(())
    }

    /// The buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn header(&self) -> &[u8; HEADER_LEN] {
        self.buffer.as_ref().first_chunk::<HEADER_LEN>().expect("ICMP message shorter than 8 bytes")
    }

    /// The message type, see [`msg_type`].
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.header()[0]
    }

    /// The code, see [`unreach_code`] for destination unreachable.
    #[inline]
    pub fn code(&self) -> u8 {
        self.header()[1]
    }

    /// The checksum as sent.
    #[inline]
    pub fn checksum(&self) -> u16 {
        let h = self.header();
        u16::from_be_bytes([h[2], h[3]])
    }

    /// The four type-specific bytes: identifier and sequence number for echo, unused (or
    /// next-hop MTU) for destination unreachable.
    #[inline]
    pub fn rest(&self) -> [u8; 4] {
        let h = self.header();
        [h[4], h[5], h[6], h[7]]
    }

    /// Echo identifier (bytes 4..6).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        let h = self.header();
        u16::from_be_bytes([h[4], h[5]])
    }

    /// Echo sequence number (bytes 6..8).
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        let h = self.header();
        u16::from_be_bytes([h[6], h[7]])
    }

    /// True when the checksum over the whole buffer verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> IcmpPacket<&'a T> {
    /// The body after the 8-byte header: echo data, or the quoted datagram of an error.
    ///
    /// # Panics
    /// If the buffer is shorter than the header (not checked).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// The quoted datagram of an error message (destination unreachable and the like), as a
    /// view; see [`IcmpQuote::new_checked`].
    ///
    /// # Errors
    /// [`IcmpError::BadQuote`] if the body holds no plausible IPv4 header; `Truncated` if the
    /// message is shorter than its header.
    #[inline]
    pub fn quote(&self) -> Result<IcmpQuote<&'a [u8]>, IcmpError> {
        let body = self.buffer.as_ref().get(HEADER_LEN..).ok_or(IcmpError::Truncated)?;
        IcmpQuote::new_checked(body)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    #[inline]
    fn header_mut(&mut self) -> &mut [u8; HEADER_LEN] {
        self.buffer.as_mut().first_chunk_mut::<HEADER_LEN>().expect("ICMP message shorter than 8 bytes")
    }

    /// Sets the type.
    #[inline]
    pub fn set_msg_type(&mut self, msg_type: u8) {
        self.header_mut()[0] = msg_type;
    }

    /// Sets the code.
    #[inline]
    pub fn set_code(&mut self, code: u8) {
        self.header_mut()[1] = code;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        self.header_mut()[2..4].copy_from_slice(&checksum.to_be_bytes());
    }

    /// Sets the four type-specific bytes.
    #[inline]
    pub fn set_rest(&mut self, rest: [u8; 4]) {
        self.header_mut()[4..8].copy_from_slice(&rest);
    }

    /// Computes the checksum over the whole buffer and writes it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// The body after the header, writable.
    ///
    /// # Panics
    /// If the buffer is shorter than the header.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Turns an echo request in place into an echo reply (`icmp_echo()`): type 8 → 0, the
    /// identifier, sequence and data stay, and the checksum is updated incrementally (RFC
    /// 1624), not recomputed.
    ///
    /// The result is bit-identical to a full recompute: in the one case where RFC 1624 eqn. 3
    /// differs (a reply that is all zeros, i.e. identifier, sequence and data all 0, where it
    /// would give 0x0000 and a receiver would reject the message), the checksum is set to
    /// 0xFFFF. Messages shorter than 4 bytes are left alone (callers pass messages that passed
    /// [`IcmpPacket::check`]).
    #[inline]
    pub fn echo_request_to_reply(&mut self) {
        let message = self.buffer.as_mut();
        let Some(h) = message.first_chunk_mut::<4>() else {
            return;
        };
        let old = u16::from_be_bytes([h[0], h[1]]);
        let new = u16::from_be_bytes([msg_type::ECHO_REPLY, h[1]]);
        let old_csum = u16::from_be_bytes([h[2], h[3]]);
        let mut csum = checksum::update(old_csum, old, new);
        h[0] = msg_type::ECHO_REPLY;
        // Rare: only when the rest of the message sums to 0xFFFF; then scan once for the
        // all-zero message, whose checksum must be 0xFFFF ("negative zero" is not a valid sum).
        if csum == 0 && new == 0 && message[4..].iter().all(|&b| b == 0) {
            csum = 0xFFFF;
        }
        message[2..4].copy_from_slice(&csum.to_be_bytes());
    }
}

/// The fields of an ICMP header. The body is [`IcmpPacket::payload`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IcmpRepr {
    /// Type (RFC 792; `msg_type::ECHO_REQUEST`, …).
    pub msg_type: u8,
    /// Code within the type.
    pub code: u8,
    /// Type-specific: identifier and sequence number for echo, unused (0) for destination
    /// unreachable.
    pub rest: [u8; 4],
}

impl IcmpRepr {
    /// An echo request or reply header.
    #[inline]
    pub fn echo(msg_type: u8, ident: u16, seq: u16) -> IcmpRepr {
        let [a, b] = ident.to_be_bytes();
        let [c, d] = seq.to_be_bytes();
        IcmpRepr { msg_type, code: 0, rest: [a, b, c, d] }
    }

    /// A destination-unreachable header with `code` (see [`unreach_code`]), unused bytes 0.
    #[inline]
    pub fn dest_unreachable(code: u8) -> IcmpRepr {
        IcmpRepr { msg_type: msg_type::DEST_UNREACH, code, rest: [0; 4] }
    }

    /// A time-exceeded header with `code` (see [`exc_code`]), unused bytes 0.
    #[inline]
    pub fn time_exceeded(code: u8) -> IcmpRepr {
        IcmpRepr { msg_type: msg_type::TIME_EXCEEDED, code, rest: [0; 4] }
    }

    /// A parameter-problem header (code 0) pointing at byte `pointer` of the offending
    /// datagram's IP header, as `icmp_send(skb, ICMP_PARAMETERPROB, 0, htonl(pointer << 24))`
    /// writes it (RFC 792).
    #[inline]
    pub fn parameter_problem(pointer: u8) -> IcmpRepr {
        IcmpRepr { msg_type: msg_type::PARAMETER_PROBLEM, code: 0, rest: [pointer, 0, 0, 0] }
    }

    /// Validates `packet` ([`IcmpPacket::check`], `icmp_rcv()`'s order) and reads its header.
    ///
    /// # Errors
    /// As [`IcmpPacket::check`].
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &IcmpPacket<&T>) -> Result<Self, IcmpError> {
        packet.check()?;
        Ok(IcmpRepr { msg_type: packet.msg_type(), code: packet.code(), rest: packet.rest() })
    }

    /// Echo identifier (`rest[0..2]`).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        u16::from_be_bytes([self.rest[0], self.rest[1]])
    }

    /// Echo sequence number (`rest[2..4]`).
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        u16::from_be_bytes([self.rest[2], self.rest[3]])
    }

    /// Writes the header and the checksum over the whole packet buffer, the body already in
    /// place.
    ///
    /// # Panics
    /// If the buffer is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut IcmpPacket<&mut T>) {
        packet.set_msg_type(self.msg_type);
        packet.set_code(self.code);
        packet.set_rest(self.rest);
        packet.fill_checksum();
    }

    /// Writes an error message (this header) at the start of `buf`, quoting
    /// `min(original.len(), MAX_QUOTED_LEN)` bytes of `original` (the offending IP datagram
    /// from its IP header, trimmed to its total length), as `icmp_send()` does; returns the
    /// message length.
    ///
    /// # Panics
    /// If `buf` is shorter than the message (`8 + MAX_QUOTED_LEN` always suffices).
    #[inline]
    pub fn emit_quoting(&self, buf: &mut [u8], original: &[u8]) -> usize {
        let quoted = &original[..original.len().min(MAX_QUOTED_LEN)];
        let len = HEADER_LEN + quoted.len();
        let mut packet = IcmpPacket::new_unchecked(&mut buf[..len]);
        packet.payload_mut().copy_from_slice(quoted);
        self.emit(&mut packet);
        len
    }

    /// Length of the header: [`HEADER_LEN`].
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Bytes a message with `body_len` bytes of body needs: `8 + body_len`.
    #[inline]
    pub const fn buffer_len(&self, body_len: usize) -> usize {
        HEADER_LEN + body_len
    }
}

/// A view of the datagram an ICMP error quotes: its IPv4 header (options included) and the
/// first bytes of its transport header (RFC 792: at least 8, Linux quotes up to
/// [`MAX_QUOTED_LEN`]). The quoted header's total length is the original's, so the quote is
/// usually shorter than it says: only the fixed fields are read.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IcmpQuote<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpQuote<T> {
    /// Wraps the body of an error message after the checks of `icmp_unreach()`: room for a
    /// 20-byte IPv4 header with IHL at least 5.
    ///
    /// # Errors
    /// [`IcmpError::BadQuote`] otherwise (Linux: `IcmpInErrors`).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, IcmpError> {
        match buffer.as_ref().first_chunk::<IPV4_MIN_HEADER_LEN>() {
            Some(h) if usize::from(h[0] & 0x0F) * 4 >= IPV4_MIN_HEADER_LEN => Ok(IcmpQuote { buffer }),
            _ => Err(IcmpError::BadQuote),
        }
    }

    /// The quoted IPv4 header, as [`Ipv4Packet`] reads it: only its fixed
    /// fields, which `new_checked` made sure are there.
    #[inline]
    fn ip(&self) -> Ipv4Packet<&[u8]> {
        Ipv4Packet::new_unchecked(self.buffer.as_ref())
    }

    /// The quoted header's version field.
    #[inline]
    pub fn version(&self) -> u8 {
        self.ip().version()
    }

    /// The quoted header's length in bytes (IHL * 4, at least 20).
    #[inline]
    pub fn header_len(&self) -> usize {
        self.ip().header_len()
    }

    /// The quoted datagram's protocol.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.ip().protocol()
    }

    /// The quoted datagram's source address (ours, if we sent it).
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        self.ip().src_addr()
    }

    /// The quoted datagram's destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.ip().dst_addr()
    }

    /// Up to the first 8 bytes of the quoted transport header (fewer if the quote is cut).
    #[inline]
    pub fn transport_header(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let start = self.header_len().min(b.len());
        &b[start..b.len().min(start + 8)]
    }

    /// Source and destination port of a quoted UDP or TCP header (its first four bytes), or
    /// `None` if the quote ends before them.
    #[inline]
    pub fn ports(&self) -> Option<(u16, u16)> {
        match *self.transport_header() {
            [a, b, c, d, ..] => Some((u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ICMP part of a Linux `ping` (id 0x0b1f, seq 1): 8-byte header, 16-byte
    /// `struct timeval`, then the pattern 0x10..=0x37.
    const PACKET_BYTES: [u8; 64] = [
        0x08, 0x00, 0x8e, 0xf1, 0x0b, 0x1f, 0x00, 0x01, //
        0xa3, 0xe1, 0x44, 0x67, 0x00, 0x00, 0x00, 0x00, //
        0xb1, 0xd2, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, //
        0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, //
        0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, //
        0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, //
        0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    ];

    /// The reply Linux sends to it.
    const REPLY_BYTES: [u8; 64] = [
        0x00, 0x00, 0x96, 0xf1, 0x0b, 0x1f, 0x00, 0x01, //
        0xa3, 0xe1, 0x44, 0x67, 0x00, 0x00, 0x00, 0x00, //
        0xb1, 0xd2, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, //
        0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, //
        0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, //
        0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, //
        0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    ];

    /// A UDP datagram to a closed port (10.0.0.1:40000 → 10.0.0.2:7777, "hi"), the original
    /// quoted by a port-unreachable error.
    const UDP_PACKET_BYTES: [u8; 30] = [
        0x45, 0x00, 0x00, 0x1e, 0x12, 0x35, 0x40, 0x00, //
        0x40, 0x11, 0x14, 0x98, 0x0a, 0x00, 0x00, 0x01, //
        0x0a, 0x00, 0x00, 0x02, 0x9c, 0x40, 0x1e, 0x61, //
        0x00, 0x0a, 0xc8, 0xcc, 0x68, 0x69,
    ];

    fn check(message: &[u8]) -> Result<IcmpRepr, IcmpError> {
        IcmpRepr::parse(&IcmpPacket::new_unchecked(message))
    }

    fn echo_request_to_reply(message: &mut [u8]) {
        IcmpPacket::new_unchecked(message).echo_request_to_reply();
    }

    fn write_echo(buf: &mut [u8], msg_type: u8, ident: u16, seq: u16, payload_len: usize) -> usize {
        let repr = IcmpRepr::echo(msg_type, ident, seq);
        let len = repr.buffer_len(payload_len);
        repr.emit(&mut IcmpPacket::new_unchecked(&mut buf[..len]));
        len
    }

    fn write_dest_unreachable(buf: &mut [u8], code: u8, original: &[u8]) -> usize {
        IcmpRepr::dest_unreachable(code).emit_quoting(buf, original)
    }

    /// Independent RFC 1071 checksum for cross-checks.
    fn naive_checksum(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for pair in data.chunks(2) {
            s += u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
        }
        while s > 0xFFFF {
            s = (s & 0xFFFF) + (s >> 16);
        }
        !(s as u16)
    }

    fn naive_fill(m: &mut [u8]) {
        m[2] = 0;
        m[3] = 0;
        let c = naive_checksum(m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn check_echo_request() {
        let h = check(&PACKET_BYTES).unwrap();
        assert_eq!(h.msg_type, msg_type::ECHO_REQUEST);
        assert_eq!(h.code, 0);
        assert_eq!(IcmpPacket::new_checked(&PACKET_BYTES[..]).unwrap().checksum(), 0x8ef1);
        assert_eq!((h.echo_ident(), h.echo_seq()), (0x0b1f, 1));
        assert_eq!(check(&REPLY_BYTES).unwrap().msg_type, msg_type::ECHO_REPLY);
    }

    #[test]
    fn check_header_only_and_odd_length() {
        let mut m = [0x08, 0x00, 0, 0, 0x12, 0x34, 0x56, 0x78];
        naive_fill(&mut m);
        assert!(check(&m).is_ok());
        let mut odd = [0x08, 0x00, 0, 0, 0x12, 0x34, 0x56, 0x78, 0xAB];
        naive_fill(&mut odd);
        assert!(check(&odd).is_ok());
    }

    #[test]
    fn reject_bad_checksum() {
        for i in 0..PACKET_BYTES.len() {
            let mut m = PACKET_BYTES;
            m[i] ^= 0x01;
            assert_eq!(check(&m), Err(IcmpError::ChecksumError), "byte {i}");
        }
        // A message cut short almost never still verifies.
        assert_eq!(check(&PACKET_BYTES[..63]), Err(IcmpError::ChecksumError));
        assert_eq!(check(&[]), Err(IcmpError::ChecksumError));
        assert_eq!(check(&[0]), Err(IcmpError::ChecksumError));
    }

    #[test]
    fn reject_truncated_with_valid_checksum() {
        // Shorter than 8 bytes but checksummed: Truncated, as Linux (checksum first).
        for len in 4..HEADER_LEN {
            let mut m = [0x08u8, 0x00, 0, 0, 0x12, 0x34, 0x56, 0x78];
            let m = &mut m[..len];
            naive_fill(m);
            assert_eq!(check(m), Err(IcmpError::Truncated), "len {len}");
        }
        assert_eq!(check(&[0xFF, 0xFF]), Err(IcmpError::Truncated));
        assert_eq!(check(&[0xFF, 0xFF, 0x00]), Err(IcmpError::Truncated));
        assert_eq!(check(&[0xF7, 0xFF, 0x08]), Err(IcmpError::Truncated));
    }

    #[test]
    fn echo_reply_matches_linux() {
        let mut m = PACKET_BYTES;
        echo_request_to_reply(&mut m);
        assert_eq!(m, REPLY_BYTES);
        assert!(check(&m).is_ok());
    }

    /// Deterministic xorshift64*.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    #[test]
    fn echo_reply_incremental_equals_recompute() {
        let mut rng = Rng(0xD1B5_4A32_D192_ED03);
        let mut buf = [0u8; 8 + 101];
        let mut cases = 0;
        for payload_len in 0..=101usize {
            for round in 0..60 {
                // Edge values first, then random ones; code byte varies too.
                let (ident, seq) = match round {
                    0 => (0, 0),
                    1 => (0xFFFF, 0xFFFF),
                    2 => (0, 0xFFFF),
                    3 => (0xF7FF, 0),
                    _ => (rng.next() as u16, rng.next() as u16),
                };
                let fill = match round % 4 {
                    0 => 0x00,
                    1 => 0xFF,
                    _ => 0x100,
                };
                for b in &mut buf[8..8 + payload_len] {
                    *b = if fill == 0x100 { rng.next() as u8 } else { fill as u8 };
                }
                let code = if round == 5 { 0x42 } else { 0 };
                let m = &mut buf[..8 + payload_len];
                write_echo(m, msg_type::ECHO_REQUEST, ident, seq, payload_len);
                m[1] = code;
                naive_fill(m);
                assert_eq!(check(m).map(|h| h.msg_type), Ok(msg_type::ECHO_REQUEST));

                let mut reply = [0u8; 8 + 101];
                let reply = &mut reply[..m.len()];
                reply.copy_from_slice(m);
                echo_request_to_reply(reply);

                let mut expect = [0u8; 8 + 101];
                let expect = &mut expect[..m.len()];
                expect.copy_from_slice(m);
                expect[0] = msg_type::ECHO_REPLY;
                naive_fill(expect);
                assert_eq!(reply, expect, "ident {ident:#x} seq {seq:#x} len {payload_len}");
                assert!(check(reply).is_ok());
                cases += 1;
            }
        }
        assert!(cases > 6000);
    }

    #[test]
    fn echo_reply_all_zero_message() {
        // ident 0, seq 0, no data: the one case where plain RFC 1624 would give 0x0000.
        let mut m = [0x08, 0x00, 0xF7, 0xFF, 0, 0, 0, 0];
        assert!(check(&m).is_ok());
        echo_request_to_reply(&mut m);
        assert_eq!(m, [0, 0, 0xFF, 0xFF, 0, 0, 0, 0]);
        assert!(check(&m).is_ok());
        // Short input is left alone.
        let mut short = [0x08, 0x00, 0xF7];
        echo_request_to_reply(&mut short);
        assert_eq!(short, [0x08, 0x00, 0xF7]);
    }

    #[test]
    fn write_echo_matches_ping() {
        let mut buf = PACKET_BYTES;
        buf[..8].fill(0);
        assert_eq!(write_echo(&mut buf, msg_type::ECHO_REQUEST, 0x0b1f, 1, 56), 64);
        assert_eq!(buf, PACKET_BYTES);
    }

    #[test]
    fn dest_unreachable_port() {
        let mut buf = [0u8; HEADER_LEN + MAX_QUOTED_LEN];
        let len = write_dest_unreachable(&mut buf, unreach_code::PORT, &UDP_PACKET_BYTES);
        assert_eq!(len, 8 + 30);
        let m = &buf[..len];
        assert_eq!(&m[..2], &[3, 3]);
        assert_eq!(&m[4..8], &[0; 4]);
        assert_eq!(&m[8..], &UDP_PACKET_BYTES);
        let mut zeroed = [0u8; 38];
        zeroed.copy_from_slice(m);
        zeroed[2] = 0;
        zeroed[3] = 0;
        assert_eq!(u16::from_be_bytes([m[2], m[3]]), naive_checksum(&zeroed));
        let h = check(m).unwrap();
        assert_eq!((h.msg_type, h.code), (msg_type::DEST_UNREACH, unreach_code::PORT));
    }

    #[test]
    fn dest_unreachable_caps_quote_at_548() {
        let mut original = [0u8; 1500];
        for (i, b) in original.iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        for orig_len in [0usize, 1, 29, 547, 548, 549, 1000, 1500] {
            let mut buf = [0xA5u8; 1600];
            let len = write_dest_unreachable(&mut buf, unreach_code::PROTOCOL, &original[..orig_len]);
            let quoted = orig_len.min(548);
            assert_eq!(len, 8 + quoted);
            assert!(len <= 576 - 20);
            assert_eq!(&buf[8..len], &original[..quoted]);
            assert_eq!(buf[len], 0xA5, "nothing written past the message");
            assert_eq!(check(&buf[..len]).map(|h| h.code), Ok(unreach_code::PROTOCOL));
            let mut copy = [0u8; 1600];
            copy[..len].copy_from_slice(&buf[..len]);
            naive_fill(&mut copy[..len]);
            assert_eq!(copy[..len], buf[..len]);
        }
    }

    #[test]
    fn view_getters_and_setters() {
        let v = IcmpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!((v.msg_type(), v.code(), v.echo_ident(), v.echo_seq()), (8, 0, 0x0b1f, 1));
        assert_eq!(v.rest(), [0x0b, 0x1f, 0, 1]);
        assert_eq!(v.payload(), &PACKET_BYTES[8..]);
        assert!(v.verify_checksum());
        let mut m = PACKET_BYTES;
        let mut p = IcmpPacket::new_unchecked(&mut m[..]);
        p.set_msg_type(msg_type::ECHO_REPLY);
        p.set_code(0);
        p.set_rest([0x0b, 0x1f, 0, 1]);
        p.payload_mut()[0] = 0xa3;
        p.fill_checksum();
        assert_eq!(p.into_inner(), &REPLY_BYTES[..]);
        let r = IcmpRepr::echo(msg_type::ECHO_REQUEST, 0x0b1f, 1);
        assert_eq!((r.echo_ident(), r.echo_seq(), r.header_len(), r.buffer_len(56)), (0x0b1f, 1, 8, 64));
        assert_eq!(check(&PACKET_BYTES), Ok(r));
    }

    #[test]
    fn quoted_header_and_ports() {
        let mut buf = [0u8; HEADER_LEN + MAX_QUOTED_LEN];
        let len = write_dest_unreachable(&mut buf, unreach_code::PORT, &UDP_PACKET_BYTES);
        let msg = IcmpPacket::new_checked(&buf[..len]).unwrap();
        let q = msg.quote().unwrap();
        assert_eq!((q.version(), q.header_len(), q.protocol()), (4, 20, 17));
        assert_eq!((q.src_addr(), q.dst_addr()), (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(q.ports(), Some((40000, 7777)));
        assert_eq!(q.transport_header(), &UDP_PACKET_BYTES[20..28]);
        // Cut after the ports, and before them.
        assert_eq!(IcmpQuote::new_checked(&UDP_PACKET_BYTES[..24]).unwrap().ports(), Some((40000, 7777)));
        assert_eq!(IcmpQuote::new_checked(&UDP_PACKET_BYTES[..23]).unwrap().ports(), None);
        assert_eq!(IcmpQuote::new_checked(&UDP_PACKET_BYTES[..20]).unwrap().transport_header(), &[] as &[u8]);
        // No room for an IPv4 header, or IHL below 5: icmp_unreach()'s input error.
        assert_eq!(IcmpQuote::new_checked(&UDP_PACKET_BYTES[..19]), Err(IcmpError::BadQuote));
        let mut ihl4 = UDP_PACKET_BYTES;
        ihl4[0] = 0x44;
        assert_eq!(IcmpQuote::new_checked(&ihl4[..]), Err(IcmpError::BadQuote));
        // IHL beyond the quote: the header is read, the ports are not there.
        let mut ihl15 = UDP_PACKET_BYTES;
        ihl15[0] = 0x4F;
        assert_eq!(IcmpQuote::new_checked(&ihl15[..]).unwrap().ports(), None);
        assert_eq!(IcmpPacket::new_unchecked(&[0u8; 4][..]).quote(), Err(IcmpError::Truncated));
    }

    #[test]
    fn every_prefix_is_ok_or_err() {
        for len in 0..=PACKET_BYTES.len() {
            let _ = check(&PACKET_BYTES[..len]);
        }
    }

    #[test]
    fn error_display() {
        assert_eq!(IcmpError::ChecksumError.to_string(), "bad ICMP checksum");
        assert!(IcmpError::Truncated.to_string().contains("8-byte"));
        assert!(IcmpError::BadQuote.to_string().contains("IPv4"));
    }
}
