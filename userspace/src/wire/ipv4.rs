//! IPv4 (RFC 791): the header checks of Linux `ip_rcv_core()` and the header the send path
//! writes.
//!
//! This module owns header validation in the kernel's order, so that each rejection maps to
//! the SNMP counter Linux bumps for it (`IpInHdrErrors`, `IpExtInCsumErrors`,
//! `IpExtInTruncatedPkts`; see `net/ipv4/ip_input.c`). It does not judge addresses
//! (`IpInAddrErrors`), reassemble fragments, or interpret options: those belong to the receive
//! loop that has the interface's configuration. Outgoing headers are 20 bytes, without
//! options.

use core::fmt;
use std::net::Ipv4Addr;

use super::checksum;

/// Length of a header without options (IHL 5).
pub const MIN_HEADER_LEN: usize = 20;

/// IP protocol numbers (`include/uapi/linux/in.h`).
pub mod protocol {
    /// `IPPROTO_ICMP`.
    pub const ICMP: u8 = 1;
    /// `IPPROTO_TCP`.
    pub const TCP: u8 = 6;
    /// `IPPROTO_UDP`.
    pub const UDP: u8 = 17;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1FFF;

/// Why `ip_rcv_core()` would drop the datagram; each variant names its counter.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Ipv4Error {
    /// Malformed header: shorter than 20 bytes, version not 4, IHL < 5, shorter than IHL,
    /// or total length below the header length. Linux: `IpInHdrErrors`.
    HdrError,
    /// Header checksum does not verify. Linux: `IpExtInCsumErrors` and `IpInHdrErrors`.
    ChecksumError,
    /// Total length beyond the bytes received. Linux: `IpExtInTruncatedPkts`.
    Truncated,
}

impl fmt::Display for Ipv4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ipv4Error::HdrError => "malformed IPv4 header",
            Ipv4Error::ChecksumError => "bad IPv4 header checksum",
            Ipv4Error::Truncated => "IPv4 total length exceeds the received frame",
        })
    }
}

impl std::error::Error for Ipv4Error {}

/// A validated IPv4 header. `header_len <= total_len <= packet.len()` holds for headers
/// returned by [`Ipv4Header::check`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Header {
    /// IHL * 4, options included.
    pub header_len: usize,
    /// The datagram's total length; bytes after it are Ethernet padding.
    pub total_len: usize,
    pub tos: u8,
    pub ident: u16,
    pub dont_fragment: bool,
    pub more_fragments: bool,
    /// Fragment offset in 8-byte units.
    pub frag_offset: u16,
    pub ttl: u8,
    pub protocol: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
}

impl Ipv4Header {
    /// True for any fragment of a fragmented datagram: MF set or a non-zero offset
    /// (Linux `ip_is_fragment()`).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.more_fragments || self.frag_offset != 0
    }

    /// Validates `packet` (the Ethernet payload, possibly with Ethernet padding after the
    /// datagram) as Linux `ip_rcv_core()` does, in the same order:
    ///
    /// 1. fewer than 20 bytes → [`Ipv4Error::HdrError`];
    /// 2. version ≠ 4 or IHL < 5 → `HdrError`;
    /// 3. fewer than IHL*4 bytes → `HdrError`;
    /// 4. header checksum bad → [`Ipv4Error::ChecksumError`];
    /// 5. total length > bytes received → [`Ipv4Error::Truncated`];
    /// 6. total length < IHL*4 → `HdrError`.
    ///
    /// Options are accepted but not interpreted. Bytes past `total_len` are padding: the caller
    /// trims to `packet[..total_len]` (as `pskb_trim_rcsum()`), see [`Ipv4Header::payload`].
    #[inline]
    pub fn check(packet: &[u8]) -> Result<Ipv4Header, Ipv4Error> {
        let Some(h) = packet.first_chunk::<MIN_HEADER_LEN>() else {
            return Err(Ipv4Error::HdrError);
        };
        let version = h[0] >> 4;
        let header_len = usize::from(h[0] & 0x0F) * 4;
        if version != 4 || header_len < MIN_HEADER_LEN {
            return Err(Ipv4Error::HdrError);
        }
        let Some(full_header) = packet.get(..header_len) else {
            return Err(Ipv4Error::HdrError);
        };
        let header_ok =
            if header_len == MIN_HEADER_LEN { header_sum(h) == 0xFFFF } else { checksum::checksum(full_header) == 0 };
        if !header_ok {
            return Err(Ipv4Error::ChecksumError);
        }
        let total_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if total_len > packet.len() {
            return Err(Ipv4Error::Truncated);
        }
        if total_len < header_len {
            return Err(Ipv4Error::HdrError);
        }
        let frag = u16::from_be_bytes([h[6], h[7]]);
        Ok(Ipv4Header {
            header_len,
            total_len,
            tos: h[1],
            ident: u16::from_be_bytes([h[4], h[5]]),
            dont_fragment: frag & FLAG_DF != 0,
            more_fragments: frag & FLAG_MF != 0,
            frag_offset: frag & FRAG_OFFSET_MASK,
            ttl: h[8],
            protocol: h[9],
            src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
            dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
        })
    }

    /// The datagram's payload: `packet[header_len..total_len]`, Ethernet padding trimmed.
    /// Empty if `packet` is not the one this header was checked from.
    #[inline]
    pub fn payload<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        packet.get(self.header_len..self.total_len).unwrap_or(&[])
    }

    /// Length of the payload: `total_len - header_len`.
    #[inline]
    pub fn payload_len(&self) -> usize {
        self.total_len.saturating_sub(self.header_len)
    }

    /// Writes a 20-byte header without options into `buf[..20]`, checksum filled in: TOS 0,
    /// fragment offset 0, total length `20 + payload_len`.
    ///
    /// # Panics
    /// If `buf` is shorter than 20 bytes. `payload_len` must be at most 65515 (checked in
    /// debug builds; release builds truncate the total length).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn write(
        buf: &mut [u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: u8,
        payload_len: usize,
        ttl: u8,
        ident: u16,
        dont_fragment: bool,
    ) {
        debug_assert!(buf.len() >= MIN_HEADER_LEN, "IPv4 header needs 20 bytes");
        debug_assert!(payload_len <= usize::from(u16::MAX) - MIN_HEADER_LEN);
        let total = (MIN_HEADER_LEN + payload_len) as u16;
        let frag = if dont_fragment { FLAG_DF } else { 0 };
        let h = &mut buf[..MIN_HEADER_LEN];
        h[0] = 0x45;
        h[1] = 0;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&ident.to_be_bytes());
        h[6..8].copy_from_slice(&frag.to_be_bytes());
        h[8] = ttl;
        h[9] = protocol;
        h[10] = 0;
        h[11] = 0;
        h[12..16].copy_from_slice(&src.octets());
        h[16..20].copy_from_slice(&dst.octets());
        let c = !header_sum(h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
    }
}

/// The folded sum of a 20-byte header, as five 32-bit words with no loop (Linux
/// `ip_fast_csum()`). 0xFFFF when the checksum in it verifies.
#[inline(always)]
fn header_sum(h: &[u8]) -> u16 {
    let Some(h) = h.first_chunk::<MIN_HEADER_LEN>() else {
        return 0;
    };
    let w = |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    checksum::fold(w(0) + w(4) + w(8) + w(12) + w(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-byte ping from 10.0.0.1 to 10.0.0.2 (DF, TTL 64, id 0x4c2d), as Linux `ping`
    /// sends it: 20-byte header + 8-byte ICMP header + 56 bytes of data.
    const PACKET_BYTES: [u8; 84] = [
        0x45, 0x00, 0x00, 0x54, 0x4c, 0x2d, 0x40, 0x00, //
        0x40, 0x01, 0xda, 0x79, 0x0a, 0x00, 0x00, 0x01, //
        0x0a, 0x00, 0x00, 0x02, 0x08, 0x00, 0x8e, 0xf1, //
        0x0b, 0x1f, 0x00, 0x01, 0xa3, 0xe1, 0x44, 0x67, //
        0x00, 0x00, 0x00, 0x00, 0xb1, 0xd2, 0x05, 0x00, //
        0x00, 0x00, 0x00, 0x00, 0x10, 0x11, 0x12, 0x13, //
        0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, //
        0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, //
        0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, //
        0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, //
        0x34, 0x35, 0x36, 0x37,
    ];

    /// A UDP datagram ("hi", 10.0.0.1:40000 → 10.0.0.2:7777, total length 30) as it arrives in
    /// a minimum-size Ethernet frame: 16 bytes of padding follow the datagram.
    const PADDED_BYTES: [u8; 46] = [
        0x45, 0x00, 0x00, 0x1e, 0x12, 0x35, 0x40, 0x00, //
        0x40, 0x11, 0x14, 0x98, 0x0a, 0x00, 0x00, 0x01, //
        0x0a, 0x00, 0x00, 0x02, 0x9c, 0x40, 0x1e, 0x61, //
        0x00, 0x0a, 0xc8, 0xcc, 0x68, 0x69, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];

    /// The same UDP datagram with IHL 6: a Router Alert option (RFC 2113, 0x94 0x04 0x0000).
    const OPTIONS_BYTES: [u8; 34] = [
        0x46, 0x00, 0x00, 0x22, 0x12, 0x36, 0x40, 0x00, //
        0x40, 0x11, 0x7f, 0x8e, 0x0a, 0x00, 0x00, 0x01, //
        0x0a, 0x00, 0x00, 0x02, 0x94, 0x04, 0x00, 0x00, //
        0x9c, 0x40, 0x1e, 0x61, 0x00, 0x0a, 0xc8, 0xcc, //
        0x68, 0x69,
    ];

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

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

    /// Rewrites a header field and then fixes the checksum, so that the check under test is the
    /// one that fires.
    fn patched<const N: usize>(base: [u8; N], at: usize, bytes: &[u8]) -> [u8; N] {
        let mut p = base;
        p[at..at + bytes.len()].copy_from_slice(bytes);
        let hl = usize::from(p[0] & 0x0F) * 4;
        let hl = hl.clamp(MIN_HEADER_LEN, N);
        p[10] = 0;
        p[11] = 0;
        let c = naive_checksum(&p[..hl]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn check_ping() {
        let h = Ipv4Header::check(&PACKET_BYTES).unwrap();
        assert_eq!(
            h,
            Ipv4Header {
                header_len: 20,
                total_len: 84,
                tos: 0,
                ident: 0x4c2d,
                dont_fragment: true,
                more_fragments: false,
                frag_offset: 0,
                ttl: 64,
                protocol: protocol::ICMP,
                src: A,
                dst: B,
            }
        );
        assert!(!h.is_fragment());
        assert_eq!(h.payload(&PACKET_BYTES), &PACKET_BYTES[20..]);
        assert_eq!(h.payload_len(), 64);
    }

    #[test]
    fn check_accepts_ethernet_padding() {
        let h = Ipv4Header::check(&PADDED_BYTES).unwrap();
        assert_eq!((h.header_len, h.total_len), (20, 30));
        assert_eq!(h.protocol, protocol::UDP);
        assert_eq!(h.payload(&PADDED_BYTES), &PADDED_BYTES[20..30]);
    }

    #[test]
    fn check_accepts_options() {
        let h = Ipv4Header::check(&OPTIONS_BYTES).unwrap();
        assert_eq!((h.header_len, h.total_len), (24, 34));
        assert_eq!(h.payload(&OPTIONS_BYTES), &PADDED_BYTES[20..30]);
        // The option bytes are covered by the checksum.
        let mut bad = OPTIONS_BYTES;
        bad[21] ^= 0x01;
        assert_eq!(Ipv4Header::check(&bad), Err(Ipv4Error::ChecksumError));
    }

    #[test]
    fn reject_shorter_than_20() {
        for len in 0..MIN_HEADER_LEN {
            assert_eq!(Ipv4Header::check(&PACKET_BYTES[..len]), Err(Ipv4Error::HdrError));
        }
    }

    #[test]
    fn reject_ihl_below_5() {
        for ihl in 0..5u8 {
            let p = patched(PACKET_BYTES, 0, &[0x40 | ihl]);
            assert_eq!(Ipv4Header::check(&p), Err(Ipv4Error::HdrError), "ihl {ihl}");
        }
    }

    #[test]
    fn reject_version_6_in_ipv4_ethertype() {
        // An IPv6 header's first byte (0x60) where IPv4 was announced; and version 6 with a
        // plausible IHL and a correct IPv4 checksum: version is checked before the checksum.
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        assert_eq!(Ipv4Header::check(&v6), Err(Ipv4Error::HdrError));
        let p = patched(PACKET_BYTES, 0, &[0x65]);
        assert_eq!(Ipv4Header::check(&p), Err(Ipv4Error::HdrError));
        for version in [0u8, 1, 5, 15] {
            let p = patched(PACKET_BYTES, 0, &[version << 4 | 5]);
            assert_eq!(Ipv4Header::check(&p), Err(Ipv4Error::HdrError));
        }
    }

    #[test]
    fn reject_shorter_than_ihl() {
        // IHL 6 but only 22 bytes: HdrError even though the checksum would be bad too.
        assert_eq!(Ipv4Header::check(&OPTIONS_BYTES[..22]), Err(Ipv4Error::HdrError));
        // IHL 15 (60 bytes) in a 46-byte frame.
        let p = patched(PADDED_BYTES, 0, &[0x4F]);
        assert_eq!(Ipv4Header::check(&p), Err(Ipv4Error::HdrError));
    }

    #[test]
    fn reject_bad_checksum() {
        for i in 0..MIN_HEADER_LEN {
            let mut p = PACKET_BYTES;
            p[i] ^= 0x10;
            if i == 0 {
                // Version 5: HdrError comes first.
                assert_eq!(Ipv4Header::check(&p), Err(Ipv4Error::HdrError));
            } else {
                assert_eq!(Ipv4Header::check(&p), Err(Ipv4Error::ChecksumError), "byte {i}");
            }
        }
        // The payload is not covered.
        let mut p = PACKET_BYTES;
        p[40] ^= 0xFF;
        assert!(Ipv4Header::check(&p).is_ok());
    }

    #[test]
    fn checksum_checked_before_lengths() {
        let mut p = patched(PACKET_BYTES, 2, &[0xFF, 0xFF]);
        p[11] ^= 1;
        assert_eq!(Ipv4Header::check(&p), Err(Ipv4Error::ChecksumError));
        let mut p = patched(PACKET_BYTES, 2, &[0x00, 0x10]);
        p[11] ^= 1;
        assert_eq!(Ipv4Header::check(&p), Err(Ipv4Error::ChecksumError));
    }

    #[test]
    fn reject_truncated() {
        // Frame cut short: total length 84, fewer bytes received.
        for len in [20, 21, 28, 83] {
            assert_eq!(Ipv4Header::check(&PACKET_BYTES[..len]), Err(Ipv4Error::Truncated));
        }
        // Total length larger than the frame.
        let p = patched(PACKET_BYTES, 2, &[0x00, 85]);
        assert_eq!(Ipv4Header::check(&p), Err(Ipv4Error::Truncated));
        let p = patched(PACKET_BYTES, 2, &[0xFF, 0xFF]);
        assert_eq!(Ipv4Header::check(&p), Err(Ipv4Error::Truncated));
    }

    #[test]
    fn reject_total_len_below_header_len() {
        for total in [0u16, 1, 19] {
            let p = patched(PACKET_BYTES, 2, &total.to_be_bytes());
            assert_eq!(Ipv4Header::check(&p), Err(Ipv4Error::HdrError), "total {total}");
        }
        // With options: 20..23 is below IHL*4 = 24.
        let p = patched(OPTIONS_BYTES, 2, &[0, 23]);
        assert_eq!(Ipv4Header::check(&p), Err(Ipv4Error::HdrError));
        // Exactly the header is a valid (empty) datagram.
        let p = patched(OPTIONS_BYTES, 2, &[0, 24]);
        let h = Ipv4Header::check(&p).unwrap();
        assert_eq!(h.payload(&p), &[] as &[u8]);
    }

    #[test]
    fn fragments() {
        let mf = patched(PACKET_BYTES, 6, &[0x20, 0x00]);
        let h = Ipv4Header::check(&mf).unwrap();
        assert!(h.more_fragments && !h.dont_fragment && h.frag_offset == 0 && h.is_fragment());
        let last = patched(PACKET_BYTES, 6, &[0x00, 0xB9]);
        let h = Ipv4Header::check(&last).unwrap();
        assert!(!h.more_fragments && h.frag_offset == 185 && h.is_fragment());
        let max = patched(PACKET_BYTES, 6, &[0x7F, 0xFF]);
        let h = Ipv4Header::check(&max).unwrap();
        assert!(h.dont_fragment && h.more_fragments && h.frag_offset == 0x1FFF);
    }

    #[test]
    fn write_matches_real_header() {
        let mut buf = [0u8; 20];
        Ipv4Header::write(&mut buf, A, B, protocol::ICMP, 64, 64, 0x4c2d, true);
        assert_eq!(buf, PACKET_BYTES[..20]);
        let mut buf = [0u8; 20];
        Ipv4Header::write(&mut buf, A, B, protocol::UDP, 10, 64, 0x1235, true);
        assert_eq!(buf, PADDED_BYTES[..20]);
    }

    #[test]
    fn write_cross_checked() {
        let mut buf = [0u8; 60];
        for (i, payload_len) in [0usize, 1, 8, 40, 1480, 65515].into_iter().enumerate() {
            let src = Ipv4Addr::new(192, 168, i as u8, 0xFE);
            let dst = Ipv4Addr::new(0xFF, 0, 0x80, i as u8);
            let ident = (i as u16).wrapping_mul(0x9E37);
            Ipv4Header::write(&mut buf, src, dst, protocol::TCP, payload_len, 1, ident, i % 2 == 0);
            let mut zeroed = buf;
            zeroed[10] = 0;
            zeroed[11] = 0;
            assert_eq!(u16::from_be_bytes([buf[10], buf[11]]), naive_checksum(&zeroed[..20]));
            let total = 20 + payload_len;
            let mut frame = vec![0u8; total];
            frame[..20].copy_from_slice(&buf[..20]);
            let h = Ipv4Header::check(&frame).unwrap();
            assert_eq!((h.src, h.dst, h.ident, h.ttl), (src, dst, ident, 1));
            assert_eq!((h.total_len, h.dont_fragment), (total, i % 2 == 0));
        }
    }

    #[test]
    fn every_prefix_is_ok_or_err() {
        for base in [&PACKET_BYTES[..], &PADDED_BYTES[..], &OPTIONS_BYTES[..]] {
            for len in 0..=base.len() {
                let _ = Ipv4Header::check(&base[..len]);
            }
        }
    }

    #[test]
    fn error_display() {
        assert_eq!(Ipv4Error::ChecksumError.to_string(), "bad IPv4 header checksum");
        assert!(!Ipv4Error::HdrError.to_string().is_empty());
        assert!(!Ipv4Error::Truncated.to_string().is_empty());
    }
}
