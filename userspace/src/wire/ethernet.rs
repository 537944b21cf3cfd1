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

/// What the destination MAC says about a received frame: `skb->pkt_type` as
/// `eth_type_trans()` sets it (net/ethernet/eth.c; values from
/// include/uapi/linux/if_packet.h). The layers above follow it as Linux does:
/// `ip_rcv_core()` drops [`PktType::OtherHost`], `__icmp_send()` sends no error
/// about a frame that was not [`PktType::Host`], `tcp_v4_rcv()` drops one.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum PktType {
    /// `PACKET_HOST`: to our own MAC.
    #[default]
    Host,
    /// `PACKET_BROADCAST`: to ff:ff:ff:ff:ff:ff.
    Broadcast,
    /// `PACKET_MULTICAST`: to any other group address (I/G bit set). The NIC's
    /// filter decides which groups reach the host; what it let through is taken.
    Multicast,
    /// `PACKET_OTHERHOST`: to another host's unicast MAC (promiscuous mode, or a
    /// bridge or veth that does not filter).
    OtherHost,
}

impl PktType {
    /// `eth_type_trans()`'s classification of a frame to `dst` arriving on an
    /// interface whose address is `ours`.
    #[inline]
    pub fn classify(dst: EthernetAddress, ours: EthernetAddress) -> PktType {
        if dst.is_multicast() {
            if dst.is_broadcast() {
                PktType::Broadcast
            } else {
                PktType::Multicast
            }
        } else if dst == ours {
            PktType::Host
        } else {
            PktType::OtherHost
        }
    }
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

/// A view of an Ethernet II frame in `buffer`: header fields in place, payload after it.
///
/// Frames from [`EthernetFrame::new_checked`] hold at least [`HEADER_LEN`] bytes, so no getter
/// panics; on a frame from [`EthernetFrame::new_unchecked`] getters panic if it is shorter.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` without checking it.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer` after [`EthernetFrame::check`].
    ///
    /// # Errors
    /// [`EthernetError::Truncated`] if `buffer` is shorter than the header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, EthernetError> {
        let f = Self::new_unchecked(buffer);
        f.check()?;
        Ok(f)
    }

    /// The receive check: the buffer holds the 14-byte header.
    ///
    /// # Errors
    /// [`EthernetError::Truncated`] if it does not.
    #[inline]
    pub fn check(&self) -> Result<(), EthernetError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(EthernetError::Truncated);
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
        self.buffer.as_ref().first_chunk::<HEADER_LEN>().expect("Ethernet frame shorter than its header")
    }

    /// Destination MAC address (bytes 0..6).
    #[inline]
    pub fn dst_addr(&self) -> EthernetAddress {
        let h = self.header();
        EthernetAddress([h[0], h[1], h[2], h[3], h[4], h[5]])
    }

    /// Source MAC address (bytes 6..12).
    #[inline]
    pub fn src_addr(&self) -> EthernetAddress {
        let h = self.header();
        EthernetAddress([h[6], h[7], h[8], h[9], h[10], h[11]])
    }

    /// EtherType (bytes 12..14), see [`ethertype`].
    #[inline]
    pub fn ethertype(&self) -> u16 {
        let h = self.header();
        u16::from_be_bytes([h[12], h[13]])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> EthernetFrame<&'a T> {
    /// Everything after the header, Ethernet padding included.
    ///
    /// # Panics
    /// If the frame is shorter than the header (not checked).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    fn header_mut(&mut self) -> &mut [u8; HEADER_LEN] {
        self.buffer.as_mut().first_chunk_mut::<HEADER_LEN>().expect("Ethernet frame shorter than its header")
    }

    /// Sets the destination MAC address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.header_mut()[0..6].copy_from_slice(&addr.0);
    }

    /// Sets the source MAC address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.header_mut()[6..12].copy_from_slice(&addr.0);
    }

    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        self.header_mut()[12..14].copy_from_slice(&ethertype.to_be_bytes());
    }

    /// The payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The fields of an Ethernet II header. The payload is [`EthernetFrame::payload`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Destination address.
    pub dst: EthernetAddress,
    /// Source address.
    pub src: EthernetAddress,
    /// EtherType (`ethertype::IPV4`, `ethertype::ARP`).
    pub ethertype: u16,
}

impl EthernetRepr {
    /// Checks `frame` ([`EthernetFrame::check`]) and reads its header.
    ///
    /// # Errors
    /// [`EthernetError::Truncated`] if it is shorter than 14 bytes.
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &EthernetFrame<&T>) -> Result<Self, EthernetError> {
        frame.check()?;
        Ok(EthernetRepr { dst: frame.dst_addr(), src: frame.src_addr(), ethertype: frame.ethertype() })
    }

    /// Writes the header into `frame`; the payload is left alone.
    ///
    /// # Panics
    /// If the frame's buffer is shorter than [`HEADER_LEN`]; callers size their buffers with
    /// [`EthernetRepr::buffer_len`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, frame: &mut EthernetFrame<&mut T>) {
        let h = frame.header_mut();
        h[0..6].copy_from_slice(&self.dst.0);
        h[6..12].copy_from_slice(&self.src.0);
        h[12..14].copy_from_slice(&self.ethertype.to_be_bytes());
    }

    /// Length of the header this emits: [`HEADER_LEN`].
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Bytes a frame with `payload_len` bytes of payload needs: `14 + payload_len`.
    #[inline]
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkt_type_as_eth_type_trans() {
        let ours = EthernetAddress([0x02, 0, 0, 0, 0, 2]);
        let c = |d: [u8; 6]| PktType::classify(EthernetAddress(d), ours);
        assert_eq!(c([0x02, 0, 0, 0, 0, 2]), PktType::Host);
        assert_eq!(c([0xff; 6]), PktType::Broadcast);
        assert_eq!(c([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]), PktType::Multicast);
        assert_eq!(c([0x33, 0x33, 0, 0, 0, 1]), PktType::Multicast);
        // A group bit on an address that is otherwise ours is still multicast.
        assert_eq!(c([0x03, 0, 0, 0, 0, 2]), PktType::Multicast);
        assert_eq!(c([0x02, 0, 0, 0, 0, 3]), PktType::OtherHost);
    }

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

    fn parse(frame: &[u8]) -> Result<EthernetRepr, EthernetError> {
        EthernetRepr::parse(&EthernetFrame::new_unchecked(frame))
    }

    fn write(repr: &EthernetRepr, buf: &mut [u8]) {
        repr.emit(&mut EthernetFrame::new_unchecked(buf));
    }

    #[test]
    fn parse_arp_broadcast() {
        let h = parse(&PACKET_BYTES).unwrap();
        assert_eq!(h.dst, EthernetAddress::BROADCAST);
        assert_eq!(h.src, SRC);
        assert_eq!(h.ethertype, ethertype::ARP);
        let f = EthernetFrame::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!((f.dst_addr(), f.src_addr(), f.ethertype()), (h.dst, h.src, h.ethertype));
        assert_eq!(f.payload(), &PACKET_BYTES[HEADER_LEN..]);
    }

    #[test]
    fn parse_exactly_header() {
        let h = parse(&PACKET_BYTES[..HEADER_LEN]).unwrap();
        assert_eq!(h.ethertype, ethertype::ARP);
        assert_eq!(EthernetFrame::new_checked(&PACKET_BYTES[..HEADER_LEN]).unwrap().payload(), &[] as &[u8]);
    }

    #[test]
    fn reject_truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(parse(&PACKET_BYTES[..len]), Err(EthernetError::Truncated));
            assert_eq!(EthernetFrame::new_checked(&PACKET_BYTES[..len]), Err(EthernetError::Truncated));
        }
    }

    #[test]
    fn write_round_trips() {
        let h = parse(&PACKET_BYTES).unwrap();
        let mut buf = [0u8; HEADER_LEN];
        write(&h, &mut buf);
        assert_eq!(buf, PACKET_BYTES[..HEADER_LEN]);
        let ip = EthernetRepr { dst: SRC, src: EthernetAddress([0x02, 0, 0, 0, 0, 0x02]), ethertype: ethertype::IPV4 };
        let mut buf = [0xAAu8; 20];
        write(&ip, &mut buf);
        assert_eq!(&buf[12..14], &[0x08, 0x00]);
        assert_eq!(&buf[14..], &[0xAA; 6], "write stays inside the header");
        assert_eq!(parse(&buf).unwrap(), ip);
        assert_eq!((ip.header_len(), ip.buffer_len(6)), (HEADER_LEN, 20));
    }

    #[test]
    fn setters_write_in_place() {
        let mut buf = PACKET_BYTES;
        let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
        f.set_dst_addr(SRC);
        f.set_src_addr(EthernetAddress::BROADCAST);
        f.set_ethertype(ethertype::IPV6);
        f.payload_mut()[0] = 0x60;
        assert_eq!(&buf[..15], &[2, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x86, 0xdd, 0x60]);
        assert_eq!(EthernetFrame::new_unchecked(buf).into_inner()[15..], PACKET_BYTES[15..]);
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
