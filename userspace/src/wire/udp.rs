//! UDP (RFC 768) over IPv4: the length checks of Linux `__udp4_lib_rcv()`, checksum
//! verification over the pseudo-header, and the header the send path writes.
//!
//! This module owns the header layout and the checksum rules (0 means "not computed" on
//! receive; a computed 0 is sent as 0xFFFF). Port lookup (`UdpNoPorts`), the receive buffer
//! (`UdpRcvbufErrors`) and counting (`UdpInErrors`, `UdpInCsumErrors`) belong to the receive
//! loop and the sock layer. See `net/ipv4/udp.c`.

use core::fmt;
use std::net::Ipv4Addr;

use super::checksum;
use super::ipv4::protocol;

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// Byte ranges of the header's fields, for code that patches datagrams in place by offset
/// (the traffic generator's per-packet path).
pub mod field {
    use core::ops::Range;

    /// Source port.
    pub const SRC_PORT: Range<usize> = 0..2;
    /// Destination port.
    pub const DST_PORT: Range<usize> = 2..4;
    /// UDP length.
    pub const LENGTH: Range<usize> = 4..6;
    /// Checksum.
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// Why `__udp4_lib_rcv()` would drop the datagram.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UdpError {
    /// No room for the header, or the UDP length is below 8 or beyond the IP payload.
    /// Linux: `UdpInErrors` (the `short_packet` / `drop` paths).
    Short,
}

impl fmt::Display for UdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UdpError::Short => f.write_str("UDP length does not fit the IP payload"),
        }
    }
}

impl std::error::Error for UdpError {}

/// A view of a UDP datagram at the start of `buffer` (the IP payload, trimmed to the IP total
/// length).
///
/// After [`UdpPacket::check`] (or from [`UdpPacket::new_checked`]) `8 <= len() <=
/// buffer.len()` holds and nothing panics; on an unchecked view getters panic below 8 bytes.
/// Bytes of `buffer` after `len()` are not part of the datagram (`pskb_trim_rcsum()`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buffer` without checking it.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps `buffer` after [`UdpPacket::check`].
    ///
    /// # Errors
    /// As [`UdpPacket::check`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, UdpError> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// The length checks of Linux `__udp4_lib_rcv()`. A UDP length shorter than the buffer
    /// is accepted: the datagram is its first `len()` bytes. The checksum is verified apart
    /// ([`UdpPacket::verify_checksum`]), as Linux does only once a sock was looked up.
    ///
    /// # Errors
    /// [`UdpError::Short`] if the buffer is shorter than 8 bytes, or the UDP length is beyond
    /// the buffer or below 8.
    #[inline]
    pub fn check(&self) -> Result<(), UdpError> {
        let b = self.buffer.as_ref();
        let Some(h) = b.first_chunk::<HEADER_LEN>() else {
            return Err(UdpError::Short);
        };
        let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
        if len > b.len() || len < HEADER_LEN {
            return Err(UdpError::Short);
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
        self.buffer.as_ref().first_chunk::<HEADER_LEN>().expect("UDP datagram shorter than 8 bytes")
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        let h = self.header();
        u16::from_be_bytes([h[0], h[1]])
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        let h = self.header();
        u16::from_be_bytes([h[2], h[3]])
    }

    /// The UDP length (`ulen`): header + payload, as sent.
    #[inline]
    pub fn len(&self) -> usize {
        let h = self.header();
        usize::from(u16::from_be_bytes([h[4], h[5]]))
    }

    /// True when the UDP length is 0 (never after [`UdpPacket::check`]).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The checksum field; 0 means the sender computed none.
    #[inline]
    pub fn checksum(&self) -> u16 {
        let h = self.header();
        u16::from_be_bytes([h[6], h[7]])
    }

    /// True when the checksum field is 0 (not computed by the sender, RFC 768) or the checksum
    /// verifies over the IPv4 pseudo-header (`src`, `dst`, protocol 17, `len()`) and the
    /// datagram's `len()` bytes. False when the buffer is shorter than 8 bytes or `len()`.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let b = self.buffer.as_ref();
        let Some(h) = b.first_chunk::<HEADER_LEN>() else {
            return false;
        };
        if h[6] == 0 && h[7] == 0 {
            return true;
        }
        match b.get(..usize::from(u16::from_be_bytes([h[4], h[5]]))) {
            Some(datagram) => checksum::verify_pseudo(src, dst, protocol::UDP, datagram),
            None => false,
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> UdpPacket<&'a T> {
    /// The payload: `buffer[8..len()]`; empty if the view did not pass [`UdpPacket::check`].
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.buffer.as_ref().get(HEADER_LEN..self.len()).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    #[inline]
    fn header_mut(&mut self) -> &mut [u8; HEADER_LEN] {
        self.buffer.as_mut().first_chunk_mut::<HEADER_LEN>().expect("UDP datagram shorter than 8 bytes")
    }

    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        self.header_mut()[field::SRC_PORT].copy_from_slice(&port.to_be_bytes());
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        self.header_mut()[field::DST_PORT].copy_from_slice(&port.to_be_bytes());
    }

    /// Sets the UDP length (header + payload).
    #[inline]
    pub fn set_len(&mut self, len: u16) {
        self.header_mut()[field::LENGTH].copy_from_slice(&len.to_be_bytes());
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        self.header_mut()[field::CHECKSUM].copy_from_slice(&checksum.to_be_bytes());
    }

    /// Computes the checksum over the pseudo-header and the datagram's `len()` bytes and
    /// writes it; a computed 0 is sent as 0xFFFF (RFC 768), since 0 would mean "no checksum".
    ///
    /// # Panics
    /// If the buffer is shorter than `len()`.
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len();
        let c = match checksum::compute_pseudo(src, dst, protocol::UDP, &self.buffer.as_ref()[..len]) {
            0 => 0xFFFF,
            c => c,
        };
        self.set_checksum(c);
    }

    /// The payload, writable: `buffer[8..len()]`.
    ///
    /// # Panics
    /// If the buffer is shorter than `len()`, or that is below 8.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.len();
        &mut self.buffer.as_mut()[HEADER_LEN..len]
    }
}

/// The fields of a UDP header. The payload is [`UdpPacket::payload`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Bytes after the header: UDP length - 8.
    pub payload_len: usize,
}

impl UdpRepr {
    /// Checks the lengths of `packet` ([`UdpPacket::check`]) and reads its header. The
    /// checksum is not verified here: see [`UdpPacket::verify_checksum`].
    ///
    /// # Errors
    /// As [`UdpPacket::check`].
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &UdpPacket<&T>) -> Result<Self, UdpError> {
        packet.check()?;
        Ok(UdpRepr { src_port: packet.src_port(), dst_port: packet.dst_port(), payload_len: packet.len() - HEADER_LEN })
    }

    /// Writes the 8-byte header (UDP length `8 + payload_len`) and the checksum over the
    /// pseudo-header (`src`, `dst`) and `8 + payload_len` bytes, the payload already in place.
    /// A computed 0 is sent as 0xFFFF (RFC 768).
    ///
    /// # Panics
    /// If the buffer is shorter than `8 + payload_len`. `payload_len` must be at most 65527
    /// (checked in debug builds).
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut UdpPacket<&mut T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX) - HEADER_LEN);
        let h = packet.header_mut();
        h[field::SRC_PORT].copy_from_slice(&self.src_port.to_be_bytes());
        h[field::DST_PORT].copy_from_slice(&self.dst_port.to_be_bytes());
        h[field::LENGTH].copy_from_slice(&((HEADER_LEN + self.payload_len) as u16).to_be_bytes());
        packet.fill_checksum(src, dst);
    }

    /// Length of the header: [`HEADER_LEN`].
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Bytes the datagram needs: `8 + payload_len`.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "hello, xsknet!\n" (15 bytes, odd) from 10.0.0.1:40000 to 10.0.0.2:7777.
    const PACKET_BYTES: [u8; 23] = [
        0x9c, 0x40, 0x1e, 0x61, 0x00, 0x17, 0x6c, 0xb3, //
        0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x2c, 0x20, 0x78, //
        0x73, 0x6b, 0x6e, 0x65, 0x74, 0x21, 0x0a,
    ];

    /// "16" on the same ports: its checksum computes to 0, so it is sent as 0xFFFF.
    const ZERO_SUM_BYTES: [u8; 10] = [
        0x9c, 0x40, 0x1e, 0x61, 0x00, 0x0a, 0xff, 0xff, //
        0x31, 0x36,
    ];

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn parse(segment: &[u8]) -> Result<UdpRepr, UdpError> {
        UdpRepr::parse(&UdpPacket::new_unchecked(segment))
    }

    fn verify_checksum(src: Ipv4Addr, dst: Ipv4Addr, datagram: &[u8]) -> bool {
        UdpPacket::new_unchecked(datagram).verify_checksum(src, dst)
    }

    fn write_header(datagram: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload_len: usize) {
        let repr = UdpRepr { src_port: sport, dst_port: dport, payload_len };
        repr.emit(&mut UdpPacket::new_unchecked(datagram), src, dst);
    }

    /// Independent RFC 768 checksum: pseudo-header bytes + datagram, big-endian words.
    fn naive_udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, datagram: &[u8]) -> u16 {
        let mut s: u32 = 0;
        let mut add = |bytes: &[u8]| {
            for pair in bytes.chunks(2) {
                s += u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
            }
        };
        add(&src.octets());
        add(&dst.octets());
        add(&[0, 17]);
        add(&(datagram.len() as u16).to_be_bytes());
        add(&datagram[..6]);
        add(&datagram[8..]);
        while s > 0xFFFF {
            s = (s & 0xFFFF) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn parse_datagram() {
        let h = parse(&PACKET_BYTES).unwrap();
        assert_eq!(h, UdpRepr { src_port: 40000, dst_port: 7777, payload_len: 15 });
        let v = UdpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!((v.src_port(), v.dst_port(), v.len(), v.checksum()), (40000, 7777, 23, 0x6cb3));
        assert_eq!(v.payload(), b"hello, xsknet!\n");
        assert_eq!((h.header_len(), h.buffer_len()), (8, 23));
        assert!(!v.is_empty());
        assert!(verify_checksum(A, B, &PACKET_BYTES));
        assert_eq!(naive_udp_checksum(A, B, &PACKET_BYTES), 0x6cb3);
    }

    #[test]
    fn parse_ulen_shorter_than_segment() {
        // Linux trims the skb to ulen; bytes after it are not part of the datagram.
        let mut seg = [0u8; 30];
        seg[..23].copy_from_slice(&PACKET_BYTES);
        let h = parse(&seg).unwrap();
        assert_eq!(h.buffer_len(), PACKET_BYTES.len());
        let v = UdpPacket::new_checked(&seg[..]).unwrap();
        assert_eq!(v.payload(), &PACKET_BYTES[8..]);
        assert!(v.verify_checksum(A, B), "covers ulen bytes, not the segment");
        assert!(verify_checksum(A, B, &seg[..h.buffer_len()]));
    }

    #[test]
    fn parse_empty_payload() {
        let mut d = [0u8; 8];
        write_header(&mut d, A, B, 53, 53, 0);
        let h = parse(&d).unwrap();
        assert_eq!((h.buffer_len(), h.payload_len), (8, 0));
        assert_eq!(UdpPacket::new_checked(&d[..]).unwrap().payload(), &[] as &[u8]);
        assert!(verify_checksum(A, B, &d));
    }

    #[test]
    fn reject_short() {
        for len in 0..HEADER_LEN {
            assert_eq!(parse(&PACKET_BYTES[..len]), Err(UdpError::Short), "len {len}");
        }
        // ulen beyond the IP payload (a cut datagram).
        for len in HEADER_LEN..PACKET_BYTES.len() {
            assert_eq!(parse(&PACKET_BYTES[..len]), Err(UdpError::Short), "len {len}");
        }
        // ulen below the header.
        for ulen in [0u16, 1, 7] {
            let mut d = PACKET_BYTES;
            d[4..6].copy_from_slice(&ulen.to_be_bytes());
            assert_eq!(parse(&d), Err(UdpError::Short), "ulen {ulen}");
        }
        let mut d = PACKET_BYTES;
        d[4..6].copy_from_slice(&24u16.to_be_bytes());
        assert_eq!(parse(&d), Err(UdpError::Short));
    }

    #[test]
    fn checksum_zero_means_none() {
        let mut d = PACKET_BYTES;
        d[6] = 0;
        d[7] = 0;
        assert!(verify_checksum(A, B, &d));
        d[10] ^= 0xFF; // payload damage goes unnoticed without a checksum
        assert!(verify_checksum(A, B, &d));
    }

    #[test]
    fn reject_bad_checksum() {
        for i in 0..PACKET_BYTES.len() {
            let mut d = PACKET_BYTES;
            d[i] ^= 0x01;
            assert!(!verify_checksum(A, B, &d), "byte {i}");
        }
        // Pseudo-header: wrong address.
        assert!(!verify_checksum(A, Ipv4Addr::new(10, 0, 0, 3), &PACKET_BYTES));
        // Wrong length: datagram cut or extended.
        assert!(!verify_checksum(A, B, &PACKET_BYTES[..22]));
        assert!(!verify_checksum(A, B, &PACKET_BYTES[..7]));
    }

    #[test]
    fn swapped_addresses_still_verify() {
        // The pseudo-header sum is symmetric in src/dst: a property, not a bug.
        assert!(verify_checksum(B, A, &PACKET_BYTES));
    }

    #[test]
    fn computed_zero_sent_as_ffff() {
        let mut d = [0u8; 10];
        d[8..].copy_from_slice(b"16");
        write_header(&mut d, A, B, 40000, 7777, 2);
        assert_eq!(d, ZERO_SUM_BYTES);
        assert!(verify_checksum(A, B, &d));
        // 0x0000 would have verified too, but means "no checksum".
        assert_eq!(naive_udp_checksum(A, B, &d), 0);
    }

    #[test]
    fn write_matches_real_datagram() {
        let mut d = [0u8; 23];
        d[8..].copy_from_slice(b"hello, xsknet!\n");
        write_header(&mut d, A, B, 40000, 7777, 15);
        assert_eq!(d, PACKET_BYTES);
    }

    #[test]
    fn write_cross_checked_every_length() {
        let mut buf = [0u8; 8 + 300];
        let mut x: u32 = 0x1234_5678;
        for payload_len in 0..300usize {
            for b in &mut buf[8..8 + payload_len] {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *b = (x >> 24) as u8;
            }
            let src = Ipv4Addr::from(x);
            let dst = Ipv4Addr::from(x.rotate_left(7));
            let d = &mut buf[..8 + payload_len];
            write_header(d, src, dst, payload_len as u16, 0xFFFF, payload_len);
            let expect = match naive_udp_checksum(src, dst, d) {
                0 => 0xFFFF,
                c => c,
            };
            assert_eq!(u16::from_be_bytes([d[6], d[7]]), expect, "len {payload_len}");
            assert!(verify_checksum(src, dst, d));
            let h = parse(d).unwrap();
            assert_eq!(h.buffer_len(), 8 + payload_len);
            assert_eq!((h.src_port, h.dst_port), (payload_len as u16, 0xFFFF));
        }
    }

    #[test]
    fn setters_and_fill_checksum() {
        let mut d = [0u8; 23];
        let mut p = UdpPacket::new_unchecked(&mut d[..]);
        p.set_src_port(40000);
        p.set_dst_port(7777);
        p.set_len(23);
        p.payload_mut().copy_from_slice(b"hello, xsknet!\n");
        p.fill_checksum(A, B);
        assert_eq!(d, PACKET_BYTES);
        let mut z = ZERO_SUM_BYTES;
        let mut p = UdpPacket::new_unchecked(&mut z[..]);
        p.set_checksum(0x1234);
        p.fill_checksum(A, B);
        assert_eq!(p.into_inner(), &ZERO_SUM_BYTES[..]);
    }

    #[test]
    fn every_prefix_is_ok_or_err() {
        for len in 0..=PACKET_BYTES.len() {
            let _ = parse(&PACKET_BYTES[..len]);
            let _ = verify_checksum(A, B, &PACKET_BYTES[..len]);
        }
    }

    #[test]
    fn error_display() {
        assert!(UdpError::Short.to_string().contains("UDP"));
    }
}
