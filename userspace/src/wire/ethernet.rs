//! Ethernet II framing (IEEE 802.3 with an EtherType): the 14-byte header that every frame in
//! the UMEM starts with, and the 48-bit MAC address type used across the stack.
//!
//! This module owns the header layout and the address classes (broadcast / multicast /
//! unicast) that decide whether a frame is for us, as `eth_type_trans()` does in Linux
//! (`net/ethernet/eth.c`). It does not strip 802.1Q tags: a tagged frame parses with
//! [`ethertype::VLAN`] and is left to the caller. The frame check sequence never reaches user
//! space (AF_XDP frames end before it), and minimum-size padding stays in the frame: the IPv4
//! layer trims it by the datagram's total length.

use core::fmt;
use core::str::FromStr;

/// Length of an Ethernet II header: destination, source, EtherType.
pub const HEADER_LEN: usize = 14;

/// EtherType values this stack recognises (IEEE registry, `include/uapi/linux/if_ether.h`).
pub mod ethertype {
    /// `ETH_P_IP`.
    pub const IPV4: u16 = 0x0800;
    /// `ETH_P_ARP`.
    pub const ARP: u16 = 0x0806;
    /// `ETH_P_IPV6`.
    pub const IPV6: u16 = 0x86DD;
    /// `ETH_P_8021Q`: an 802.1Q tag follows instead of the payload.
    pub const VLAN: u16 = 0x8100;
}

/// A 48-bit IEEE 802 MAC address.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Self = EthernetAddress([0xFF; 6]);

    /// True for ff:ff:ff:ff:ff:ff.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// True when the I/G bit (least significant bit of the first octet) is set. Broadcast is a
    /// multicast address too, as in Linux `is_multicast_ether_addr()`.
    #[inline]
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for an individual (non-group) address.
    #[inline]
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// The six octets.
    #[inline]
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

/// A string that is not six colon-separated pairs of hex digits.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ParseEthernetAddressError;

impl fmt::Display for ParseEthernetAddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid MAC address: expected six colon-separated hex bytes, like 02:00:00:00:00:01")
    }
}

impl std::error::Error for ParseEthernetAddressError {}

impl FromStr for EthernetAddress {
    type Err = ParseEthernetAddressError;

    /// Parses `aa:bb:cc:dd:ee:ff` (either case, exactly two digits per octet).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        fn hex(c: u8) -> Result<u8, ParseEthernetAddressError> {
            match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                b'A'..=b'F' => Ok(c - b'A' + 10),
                _ => Err(ParseEthernetAddressError),
            }
        }
        let s = s.as_bytes();
        if s.len() != 17 {
            return Err(ParseEthernetAddressError);
        }
        let mut out = [0u8; 6];
        for (i, octet) in out.iter_mut().enumerate() {
            let at = i * 3;
            if i > 0 && s[at - 1] != b':' {
                return Err(ParseEthernetAddressError);
            }
            *octet = hex(s[at])? << 4 | hex(s[at + 1])?;
        }
        Ok(EthernetAddress(out))
    }
}

/// Why a frame was not accepted as Ethernet II.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EthernetError {
    /// Shorter than the 14-byte header.
    Truncated,
}

impl fmt::Display for EthernetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EthernetError::Truncated => f.write_str("Ethernet frame shorter than its 14-byte header"),
        }
    }
}

impl std::error::Error for EthernetError {}

/// A parsed Ethernet II header. The payload is `frame[HEADER_LEN..]`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct EthernetHeader {
    pub dst: EthernetAddress,
    pub src: EthernetAddress,
    pub ethertype: u16,
}

impl EthernetHeader {
    /// Reads the header at the start of `frame`.
    #[inline]
    pub fn parse(frame: &[u8]) -> Result<Self, EthernetError> {
        let Some(h) = frame.first_chunk::<HEADER_LEN>() else {
            return Err(EthernetError::Truncated);
        };
        Ok(EthernetHeader {
            dst: EthernetAddress([h[0], h[1], h[2], h[3], h[4], h[5]]),
            src: EthernetAddress([h[6], h[7], h[8], h[9], h[10], h[11]]),
            ethertype: u16::from_be_bytes([h[12], h[13]]),
        })
    }

    /// Writes the header into `buf[..14]`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`HEADER_LEN`]; callers size their buffers from it.
    #[inline]
    pub fn write(&self, buf: &mut [u8]) {
        debug_assert!(buf.len() >= HEADER_LEN, "Ethernet header needs 14 bytes");
        let h = &mut buf[..HEADER_LEN];
        h[0..6].copy_from_slice(&self.dst.0);
        h[6..12].copy_from_slice(&self.src.0);
        h[12..14].copy_from_slice(&self.ethertype.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A broadcast ARP request from 02:00:00:00:00:01 (10.0.0.1 asks for 10.0.0.2), padded by
    /// the sender to the 60-byte minimum.
    const PACKET_BYTES: [u8; 60] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, //
        0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x01, //
        0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, //
        0x00, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x01, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, //
        0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00,
    ];

    const SRC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);

    #[test]
    fn parse_arp_broadcast() {
        let h = EthernetHeader::parse(&PACKET_BYTES).unwrap();
        assert_eq!(h.dst, EthernetAddress::BROADCAST);
        assert_eq!(h.src, SRC);
        assert_eq!(h.ethertype, ethertype::ARP);
    }

    #[test]
    fn parse_exactly_header() {
        let h = EthernetHeader::parse(&PACKET_BYTES[..HEADER_LEN]).unwrap();
        assert_eq!(h.ethertype, ethertype::ARP);
    }

    #[test]
    fn reject_truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(EthernetHeader::parse(&PACKET_BYTES[..len]), Err(EthernetError::Truncated));
        }
    }

    #[test]
    fn write_round_trips() {
        let h = EthernetHeader::parse(&PACKET_BYTES).unwrap();
        let mut buf = [0u8; HEADER_LEN];
        h.write(&mut buf);
        assert_eq!(buf, PACKET_BYTES[..HEADER_LEN]);
        let ip =
            EthernetHeader { dst: SRC, src: EthernetAddress([0x02, 0, 0, 0, 0, 0x02]), ethertype: ethertype::IPV4 };
        let mut buf = [0xAAu8; 20];
        ip.write(&mut buf);
        assert_eq!(&buf[12..14], &[0x08, 0x00]);
        assert_eq!(&buf[14..], &[0xAA; 6], "write stays inside the header");
        assert_eq!(EthernetHeader::parse(&buf).unwrap(), ip);
    }

    #[test]
    fn address_classes() {
        assert!(EthernetAddress::BROADCAST.is_broadcast());
        assert!(EthernetAddress::BROADCAST.is_multicast());
        assert!(!EthernetAddress::BROADCAST.is_unicast());
        let mcast = EthernetAddress([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]);
        assert!(mcast.is_multicast() && !mcast.is_broadcast() && !mcast.is_unicast());
        assert!(SRC.is_unicast() && !SRC.is_multicast() && !SRC.is_broadcast());
        assert!(EthernetAddress::default().is_unicast());
    }

    #[test]
    fn display_and_from_str() {
        let a = EthernetAddress([0x02, 0xAB, 0x0c, 0xff, 0x00, 0x10]);
        assert_eq!(a.to_string(), "02:ab:0c:ff:00:10");
        assert_eq!("02:ab:0c:ff:00:10".parse::<EthernetAddress>(), Ok(a));
        assert_eq!("02:AB:0C:FF:00:10".parse::<EthernetAddress>(), Ok(a));
        for bad in [
            "",
            "02:ab:0c:ff:00",
            "02:ab:0c:ff:00:1",
            "02:ab:0c:ff:00:100",
            "02-ab-0c-ff-00-10",
            "02:ab:0c:ff:00:1g",
            "2:ab:0c:ff:00:10:",
            "02:ab:0c:ff:00:10:",
            "+2:ab:0c:ff:00:10",
            "é2:ab:0c:ff:00:1",
        ] {
            assert_eq!(bad.parse::<EthernetAddress>(), Err(ParseEthernetAddressError), "{bad:?}");
        }
        assert!(ParseEthernetAddressError.to_string().contains("02:00:00:00:00:01"));
    }

    #[test]
    fn error_display() {
        assert!(EthernetError::Truncated.to_string().contains("14-byte"));
    }
}
