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

/// The UDP header. The datagram is `segment[..len]`, its payload `segment[8..len]`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct UdpHeader {
    pub src_port: u16,
    pub dst_port: u16,
    /// Header + payload, as sent (`ulen`).
    pub len: u16,
    pub checksum: u16,
}

impl UdpHeader {
    /// Payload length: `len - 8`.
    #[inline]
    pub fn payload_len(&self) -> usize {
        usize::from(self.len).saturating_sub(HEADER_LEN)
    }

    /// The datagram (header + payload, exactly `len` bytes) within `segment`; empty if
    /// `segment` is not the one this header was parsed from.
    #[inline]
    pub fn datagram<'a>(&self, segment: &'a [u8]) -> &'a [u8] {
        segment.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The payload (`segment[8..len]`); empty if `segment` is not the one this header was
    /// parsed from.
    #[inline]
    pub fn payload<'a>(&self, segment: &'a [u8]) -> &'a [u8] {
        segment.get(HEADER_LEN..usize::from(self.len)).unwrap_or(&[])
    }
}

/// Parses the header of `segment` (the IP payload, already trimmed to the IP total length)
/// with the length checks of Linux `__udp4_lib_rcv()`: segment shorter than 8 bytes, UDP
/// length beyond the segment, or UDP length below 8 → [`UdpError::Short`]. A UDP length
/// shorter than the segment is accepted; the datagram is the first `len` bytes
/// (`pskb_trim_rcsum()`), see [`UdpHeader::datagram`].
#[inline]
pub fn parse(segment: &[u8]) -> Result<UdpHeader, UdpError> {
    let Some(h) = segment.first_chunk::<HEADER_LEN>() else {
        return Err(UdpError::Short);
    };
    let len = u16::from_be_bytes([h[4], h[5]]);
    if usize::from(len) > segment.len() || usize::from(len) < HEADER_LEN {
        return Err(UdpError::Short);
    }
    Ok(UdpHeader {
        src_port: u16::from_be_bytes([h[0], h[1]]),
        dst_port: u16::from_be_bytes([h[2], h[3]]),
        len,
        checksum: u16::from_be_bytes([h[6], h[7]]),
    })
}

/// True when the checksum field is 0 (not computed by the sender, RFC 768) or the checksum
/// verifies over the pseudo-header and `datagram` (header + payload, exactly `len` bytes).
/// False for a `datagram` shorter than the header.
#[inline]
pub fn verify_checksum(src: Ipv4Addr, dst: Ipv4Addr, datagram: &[u8]) -> bool {
    let Some(h) = datagram.first_chunk::<HEADER_LEN>() else {
        return false;
    };
    if h[6] == 0 && h[7] == 0 {
        return true;
    }
    let Ok(len) = u16::try_from(datagram.len()) else {
        return false;
    };
    let s = checksum::sum(checksum::pseudo_header_sum(src, dst, protocol::UDP, len), datagram);
    checksum::fold(s) == 0xFFFF
}

/// Writes the 8-byte header into `datagram[..8]` and the checksum over
/// `datagram[..8 + payload_len]` (the payload already in place). A computed 0 is sent as
/// 0xFFFF (RFC 768), since 0 would mean "no checksum".
///
/// # Panics
/// If `datagram` is shorter than `8 + payload_len`. `payload_len` must be at most 65527
/// (checked in debug builds).
#[inline]
pub fn write_header(
    datagram: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    payload_len: usize,
) {
    debug_assert!(payload_len <= usize::from(u16::MAX) - HEADER_LEN);
    let len = HEADER_LEN + payload_len;
    let d = &mut datagram[..len];
    let ulen = len as u16;
    d[0..2].copy_from_slice(&src_port.to_be_bytes());
    d[2..4].copy_from_slice(&dst_port.to_be_bytes());
    d[4..6].copy_from_slice(&ulen.to_be_bytes());
    d[6] = 0;
    d[7] = 0;
    let s = checksum::sum(checksum::pseudo_header_sum(src, dst, protocol::UDP, ulen), d);
    let c = match !checksum::fold(s) {
        0 => 0xFFFF,
        c => c,
    };
    d[6..8].copy_from_slice(&c.to_be_bytes());
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
        assert_eq!(h, UdpHeader { src_port: 40000, dst_port: 7777, len: 23, checksum: 0x6cb3 });
        assert_eq!(h.payload(&PACKET_BYTES), b"hello, xsknet!\n");
        assert_eq!(h.payload_len(), 15);
        assert_eq!(h.datagram(&PACKET_BYTES), &PACKET_BYTES);
        assert!(verify_checksum(A, B, &PACKET_BYTES));
        assert_eq!(naive_udp_checksum(A, B, &PACKET_BYTES), 0x6cb3);
    }

    #[test]
    fn parse_ulen_shorter_than_segment() {
        // Linux trims the skb to ulen; bytes after it are not part of the datagram.
        let mut seg = [0u8; 30];
        seg[..23].copy_from_slice(&PACKET_BYTES);
        let h = parse(&seg).unwrap();
        assert_eq!(h.datagram(&seg), &PACKET_BYTES);
        assert!(verify_checksum(A, B, h.datagram(&seg)));
    }

    #[test]
    fn parse_empty_payload() {
        let mut d = [0u8; 8];
        write_header(&mut d, A, B, 53, 53, 0);
        let h = parse(&d).unwrap();
        assert_eq!((h.len, h.payload_len()), (8, 0));
        assert_eq!(h.payload(&d), &[] as &[u8]);
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
            assert_eq!(usize::from(h.len), 8 + payload_len);
            assert_eq!((h.src_port, h.dst_port), (payload_len as u16, 0xFFFF));
        }
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
