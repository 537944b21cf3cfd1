//! IPv4 (RFC 791): the header checks of Linux `ip_rcv_core()` and the header the send path
//! writes.
//!
//! This module owns header validation in the kernel's order, so that each rejection maps to
//! the SNMP counter Linux bumps for it (`IpInHdrErrors`, `IpExtInCsumErrors`,
//! `IpExtInTruncatedPkts`; see `net/ipv4/ip_input.c`), and the options' validation of
//! `ip_options_compile()` ([`ip_options_compile`], `net/ipv4/ip_options.c`). It does not judge
//! addresses (`IpInAddrErrors`) or reassemble fragments: those belong to the receive loop that
//! has the interface's configuration. Outgoing headers are 20 bytes, without options.

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

/// Byte ranges of the fixed header's fields, for code that patches headers in place by
/// offset (the traffic generator's per-packet path).
pub mod field {
    use core::ops::Range;

    /// Version and IHL.
    pub const VER_IHL: usize = 0;
    /// DSCP and ECN.
    pub const TOS: usize = 1;
    /// Total length.
    pub const LENGTH: Range<usize> = 2..4;
    /// Identification.
    pub const IDENT: Range<usize> = 4..6;
    /// Flags and fragment offset.
    pub const FLAGS_FRAG: Range<usize> = 6..8;
    /// Time to live.
    pub const TTL: usize = 8;
    /// Protocol.
    pub const PROTOCOL: usize = 9;
    /// Header checksum.
    pub const CHECKSUM: Range<usize> = 10..12;
    /// Source address.
    pub const SRC_ADDR: Range<usize> = 12..16;
    /// Destination address.
    pub const DST_ADDR: Range<usize> = 16..20;
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

/// ECN codepoints (RFC 3168 §5), the low two bits of the TOS byte.
pub mod ecn {
    /// Not ECN-capable transport.
    pub const NOT_ECT: u8 = 0;
    /// ECN-capable transport, ECT(1).
    pub const ECT1: u8 = 1;
    /// ECN-capable transport, ECT(0).
    pub const ECT0: u8 = 2;
    /// Congestion experienced.
    pub const CE: u8 = 3;
}

/// A view of an IPv4 datagram at the start of `buffer` (the Ethernet payload, possibly with
/// Ethernet padding after the datagram).
///
/// Getters read the header in place. After [`Ipv4Packet::check`] (or from
/// [`Ipv4Packet::new_checked`]) `20 <= header_len() <= total_len() <= buffer.len()` holds and
/// nothing panics; after only [`Ipv4Packet::check_version_ihl`] the fixed 20-byte header may
/// be read; on an unchecked view getters panic below 20 bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without checking it.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after [`Ipv4Packet::check`].
    ///
    /// # Errors
    /// As [`Ipv4Packet::check`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Ipv4Error> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// The first two checks of [`Ipv4Packet::check`]: 20 bytes, version 4, IHL at least 5.
    /// This is as far as Linux `ip_rcv_core()` has got when it counts the ECN codepoint
    /// (`IpExtIn*Pkts`), before it looks at the full header length or the checksum; after it,
    /// the fixed header's getters ([`Ipv4Packet::ecn`] among them) do not panic.
    ///
    /// # Errors
    /// [`Ipv4Error::HdrError`] if the buffer is shorter than 20 bytes, the version is not 4,
    /// or the IHL is below 5.
    #[inline]
    pub fn check_version_ihl(&self) -> Result<(), Ipv4Error> {
        let Some(h) = self.buffer.as_ref().first_chunk::<MIN_HEADER_LEN>() else {
            return Err(Ipv4Error::HdrError);
        };
        if h[0] >> 4 != 4 || usize::from(h[0] & 0x0F) * 4 < MIN_HEADER_LEN {
            return Err(Ipv4Error::HdrError);
        }
        Ok(())
    }

    /// Validates the datagram as Linux `ip_rcv_core()` does, in the same order:
    ///
    /// 1. fewer than 20 bytes → [`Ipv4Error::HdrError`];
    /// 2. version ≠ 4 or IHL < 5 → `HdrError`;
    /// 3. fewer than IHL*4 bytes → `HdrError`;
    /// 4. header checksum bad → [`Ipv4Error::ChecksumError`];
    /// 5. total length > bytes received → [`Ipv4Error::Truncated`];
    /// 6. total length < IHL*4 → `HdrError`.
    ///
    /// Options are accepted but not interpreted. Bytes past `total_len` are padding:
    /// [`Ipv4Packet::payload`] ends before them (as `pskb_trim_rcsum()`).
    ///
    /// # Errors
    /// As listed.
    #[inline]
    pub fn check(&self) -> Result<(), Ipv4Error> {
        self.check_received(self.buffer.as_ref().len())
    }

    /// [`Self::check`] for a datagram of which this buffer holds the first
    /// bytes (the head piece of a multi-buffer frame) and `received` bytes
    /// came in all: step 5 compares the total length with `received`.
    ///
    /// # Errors
    /// As [`Self::check`].
    #[inline]
    pub fn check_received(&self, received: usize) -> Result<(), Ipv4Error> {
        self.check_version_ihl()?;
        let packet = self.buffer.as_ref();
        let header_len = self.header_len();
        let Some(full_header) = packet.get(..header_len) else {
            return Err(Ipv4Error::HdrError);
        };
        let header_ok = if header_len == MIN_HEADER_LEN {
            header_sum(full_header) == 0xFFFF
        } else {
            checksum::checksum(full_header) == 0
        };
        if !header_ok {
            return Err(Ipv4Error::ChecksumError);
        }
        let total_len = self.total_len();
        if total_len > received {
            return Err(Ipv4Error::Truncated);
        }
        if total_len < header_len {
            return Err(Ipv4Error::HdrError);
        }
        Ok(())
    }

    /// The buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn fixed(&self) -> &[u8; MIN_HEADER_LEN] {
        self.buffer.as_ref().first_chunk::<MIN_HEADER_LEN>().expect("IPv4 packet shorter than 20 bytes")
    }

    /// The version field (4 for IPv4).
    #[inline]
    pub fn version(&self) -> u8 {
        self.fixed()[field::VER_IHL] >> 4
    }

    /// IHL * 4: the header length in bytes, options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.fixed()[field::VER_IHL] & 0x0F) * 4
    }

    /// The whole TOS byte: DSCP << 2 | ECN.
    #[inline]
    pub fn tos(&self) -> u8 {
        self.fixed()[field::TOS]
    }

    /// Differentiated services codepoint (RFC 2474): the TOS byte's upper six bits.
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.tos() >> 2
    }

    /// ECN codepoint (RFC 3168), see [`ecn`]: the TOS byte's lower two bits.
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.tos() & 0x03
    }

    /// Total length of the datagram in bytes, header included.
    #[inline]
    pub fn total_len(&self) -> usize {
        let h = self.fixed();
        usize::from(u16::from_be_bytes([h[2], h[3]]))
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        let h = self.fixed();
        u16::from_be_bytes([h[4], h[5]])
    }

    #[inline]
    fn frag_field(&self) -> u16 {
        let h = self.fixed();
        u16::from_be_bytes([h[6], h[7]])
    }

    /// The DF flag.
    #[inline]
    pub fn dont_fragment(&self) -> bool {
        self.frag_field() & FLAG_DF != 0
    }

    /// The MF flag.
    #[inline]
    pub fn more_fragments(&self) -> bool {
        self.frag_field() & FLAG_MF != 0
    }

    /// Fragment offset in 8-byte units.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        self.frag_field() & FRAG_OFFSET_MASK
    }

    /// True for any fragment of a fragmented datagram: MF set or a non-zero offset
    /// (Linux `ip_is_fragment()`).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.frag_field() & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.fixed()[field::TTL]
    }

    /// The protocol of the payload, see [`protocol`].
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.fixed()[field::PROTOCOL]
    }

    /// The header checksum as sent.
    #[inline]
    pub fn checksum(&self) -> u16 {
        let h = self.fixed();
        u16::from_be_bytes([h[10], h[11]])
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        let h = self.fixed();
        Ipv4Addr::new(h[12], h[13], h[14], h[15])
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        let h = self.fixed();
        Ipv4Addr::new(h[16], h[17], h[18], h[19])
    }

    /// True when the header checksum (over IHL*4 bytes) verifies. False when the buffer is
    /// shorter than the header or the IHL is below 5; never panics.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let b = self.buffer.as_ref();
        let header_len = usize::from(b.first().map_or(0, |v| v & 0x0F)) * 4;
        match b.get(..header_len) {
            Some(h) if header_len == MIN_HEADER_LEN => header_sum(h) == 0xFFFF,
            Some(h) if header_len > MIN_HEADER_LEN => checksum::checksum(h) == 0,
            _ => false,
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv4Packet<&'a T> {
    /// The options: bytes 20..IHL*4. Empty if the buffer is shorter.
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        self.buffer.as_ref().get(MIN_HEADER_LEN..self.header_len()).unwrap_or(&[])
    }

    /// The payload: `buffer[header_len..total_len]`, Ethernet padding trimmed. Empty if the
    /// view did not pass [`Ipv4Packet::check`].
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.buffer.as_ref().get(self.header_len()..self.total_len()).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    #[inline]
    fn fixed_mut(&mut self) -> &mut [u8; MIN_HEADER_LEN] {
        self.buffer.as_mut().first_chunk_mut::<MIN_HEADER_LEN>().expect("IPv4 packet shorter than 20 bytes")
    }

    /// Sets version 4 and IHL `header_len / 4`.
    ///
    /// # Panics
    /// In debug builds, if `header_len` is not a multiple of 4 in 20..=60.
    #[inline]
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        debug_assert!(header_len.is_multiple_of(4) && (MIN_HEADER_LEN..=60).contains(&header_len));
        self.fixed_mut()[field::VER_IHL] = 0x40 | (header_len / 4) as u8;
    }

    /// Sets the TOS byte (DSCP << 2 | ECN).
    #[inline]
    pub fn set_tos(&mut self, tos: u8) {
        self.fixed_mut()[field::TOS] = tos;
    }

    /// Sets the ECN codepoint, keeping the DSCP.
    #[inline]
    pub fn set_ecn(&mut self, ecn: u8) {
        let h = self.fixed_mut();
        h[1] = (h[1] & !0x03) | (ecn & 0x03);
    }

    /// Sets the total length in bytes.
    #[inline]
    pub fn set_total_len(&mut self, total_len: u16) {
        self.fixed_mut()[field::LENGTH].copy_from_slice(&total_len.to_be_bytes());
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        self.fixed_mut()[field::IDENT].copy_from_slice(&ident.to_be_bytes());
    }

    /// Sets the flags and the fragment offset (in 8-byte units, 13 bits) together.
    #[inline]
    pub fn set_fragment(&mut self, dont_fragment: bool, more_fragments: bool, frag_offset: u16) {
        let mut v = frag_offset & FRAG_OFFSET_MASK;
        if dont_fragment {
            v |= FLAG_DF;
        }
        if more_fragments {
            v |= FLAG_MF;
        }
        self.fixed_mut()[field::FLAGS_FRAG].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the time to live.
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.fixed_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, protocol: u8) {
        self.fixed_mut()[field::PROTOCOL] = protocol;
    }

    /// Sets the checksum field (see [`Ipv4Packet::fill_checksum`] to compute it).
    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        self.fixed_mut()[field::CHECKSUM].copy_from_slice(&checksum.to_be_bytes());
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.fixed_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.fixed_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// The options, writable (bytes 20..IHL*4).
    ///
    /// # Panics
    /// If the buffer is shorter than IHL*4.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[MIN_HEADER_LEN..hl]
    }

    /// Computes the header checksum over IHL*4 bytes and writes it.
    ///
    /// # Panics
    /// If the buffer is shorter than IHL*4.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let h = &self.buffer.as_ref()[..hl];
        let c = if hl == MIN_HEADER_LEN { !header_sum(h) } else { checksum::checksum(h) };
        self.set_checksum(c);
    }

    /// The payload, writable: `buffer[header_len..total_len]`.
    ///
    /// # Panics
    /// If the buffer is shorter than the total length, or that is below the header length.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, total) = (self.header_len(), self.total_len());
        &mut self.buffer.as_mut()[hl..total]
    }
}

/// The fields of an IPv4 header without options, as the receive path reads them and the send
/// path writes them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol of the payload (`protocol::UDP`, …).
    pub protocol: u8,
    /// Bytes after the header: total length - IHL*4.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DSCP << 2 | ECN.
    pub tos: u8,
    /// Identification (for reassembly).
    pub ident: u16,
    /// The DF flag.
    pub dont_fragment: bool,
    /// The MF flag.
    pub more_fragments: bool,
    /// Fragment offset in 8-byte units.
    pub frag_offset: u16,
}

impl Ipv4Repr {
    /// Validates `packet` ([`Ipv4Packet::check`], Linux's order) and reads its header.
    /// Options are skipped: `payload_len` counts from IHL*4, so the payload is
    /// [`Ipv4Packet::payload`].
    ///
    /// # Errors
    /// As [`Ipv4Packet::check`].
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Ipv4Packet<&T>) -> Result<Self, Ipv4Error> {
        Self::parse_received(packet, packet.buffer.as_ref().len())
    }

    /// [`Self::parse`] for a datagram of which `packet` holds the first bytes
    /// and `received` bytes came in all ([`Ipv4Packet::check_received`]).
    ///
    /// # Errors
    /// As [`Self::parse`].
    #[inline]
    pub fn parse_received<T: AsRef<[u8]> + ?Sized>(
        packet: &Ipv4Packet<&T>,
        received: usize,
    ) -> Result<Self, Ipv4Error> {
        packet.check_received(received)?;
        let frag = packet.frag_field();
        Ok(Ipv4Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.total_len() - packet.header_len(),
            ttl: packet.ttl(),
            tos: packet.tos(),
            ident: packet.ident(),
            dont_fragment: frag & FLAG_DF != 0,
            more_fragments: frag & FLAG_MF != 0,
            frag_offset: frag & FRAG_OFFSET_MASK,
        })
    }

    /// True for any fragment of a fragmented datagram: MF set or a non-zero offset
    /// (Linux `ip_is_fragment()`).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.more_fragments || self.frag_offset != 0
    }

    /// The DSCP: upper six bits of `tos`.
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.tos >> 2
    }

    /// The ECN codepoint: lower two bits of `tos`, see [`ecn`].
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.tos & 0x03
    }

    /// Writes a 20-byte header without options into `packet`, checksum computed: total length
    /// `20 + payload_len`. The payload is left alone.
    ///
    /// # Panics
    /// If the buffer is shorter than 20 bytes. `payload_len` must be at most 65515 (checked in
    /// debug builds; release builds truncate the total length).
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Ipv4Packet<&mut T>) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX) - MIN_HEADER_LEN);
        let total = (MIN_HEADER_LEN + self.payload_len) as u16;
        let mut frag = self.frag_offset & FRAG_OFFSET_MASK;
        if self.dont_fragment {
            frag |= FLAG_DF;
        }
        if self.more_fragments {
            frag |= FLAG_MF;
        }
        let h = packet.fixed_mut();
        h[field::VER_IHL] = 0x45;
        h[field::TOS] = self.tos;
        h[field::LENGTH].copy_from_slice(&total.to_be_bytes());
        h[field::IDENT].copy_from_slice(&self.ident.to_be_bytes());
        h[field::FLAGS_FRAG].copy_from_slice(&frag.to_be_bytes());
        h[field::TTL] = self.ttl;
        h[field::PROTOCOL] = self.protocol;
        h[field::CHECKSUM].fill(0);
        h[field::SRC_ADDR].copy_from_slice(&self.src.octets());
        h[field::DST_ADDR].copy_from_slice(&self.dst.octets());
        let c = !header_sum(h);
        h[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }

    /// Length of the header this emits: [`MIN_HEADER_LEN`] (no options).
    #[inline]
    pub const fn header_len(&self) -> usize {
        MIN_HEADER_LEN
    }

    /// Bytes the datagram needs: `20 + payload_len`.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        MIN_HEADER_LEN + self.payload_len
    }

    /// The sum of the pseudo-header that UDP and TCP checksums cover (RFC 768, RFC 793 §3.1)
    /// for this datagram's addresses and protocol and a segment of `segment_len` bytes; see
    /// [`checksum::pseudo_header_sum`].
    #[inline]
    pub fn pseudo_header_sum(&self, segment_len: u16) -> u64 {
        checksum::pseudo_header_sum(self.src, self.dst, self.protocol, segment_len)
    }
}

/// IP option types (`IPOPT_*`, include/uapi/linux/ip.h): the copied flag, class and number
/// in one byte.
pub mod option {
    /// `IPOPT_END`: end of the option list.
    pub const END: u8 = 0;
    /// `IPOPT_NOOP`: one byte of padding.
    pub const NOOP: u8 = 1;
    /// `IPOPT_RR`: record route.
    pub const RR: u8 = 7;
    /// `IPOPT_TIMESTAMP`.
    pub const TIMESTAMP: u8 = 68;
    /// `IPOPT_SEC`: security (RFC 1108).
    pub const SEC: u8 = 130;
    /// `IPOPT_LSRR`: loose source and record route.
    pub const LSRR: u8 = 131;
    /// `IPOPT_CIPSO`: commercial IP security option.
    pub const CIPSO: u8 = 134;
    /// `IPOPT_SID`: stream identifier.
    pub const SID: u8 = 136;
    /// `IPOPT_SSRR`: strict source and record route.
    pub const SSRR: u8 = 137;
    /// `IPOPT_RA`: router alert (RFC 2113).
    pub const RA: u8 = 148;

    /// Timestamp flags (the low four bits of the option's fourth byte).
    pub mod ts_flag {
        /// `IPOPT_TS_TSONLY`: timestamps only.
        pub const TSONLY: u8 = 0;
        /// `IPOPT_TS_TSANDADDR`: each timestamp preceded by an address.
        pub const TSANDADDR: u8 = 1;
        /// `IPOPT_TS_PRESPEC`: prespecified addresses.
        pub const PRESPEC: u8 = 3;
    }
}

/// Where `ip_options_compile()` found the options it keeps track of, each as the offset of
/// the option's type byte from the start of the IP header (0: absent), as `struct
/// ip_options` holds them (include/net/inet_sock.h).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Ipv4Options {
    /// Loose or strict source route (`opt->srr`).
    pub srr: u8,
    /// The source route is strict (`IPOPT_SSRR`).
    pub is_strictroute: bool,
    /// Record route (`opt->rr`).
    pub rr: u8,
    /// Timestamp (`opt->ts`).
    pub ts: u8,
    /// Router alert with value 0 (`opt->router_alert`).
    pub router_alert: u8,
}

/// A received header's options that `ip_options_compile()` rejects: Linux answers with ICMP
/// parameter problem (type 12, code 0) whose pointer is [`OptionsError::pointer`], and counts
/// `IpInHdrErrors`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct OptionsError {
    /// The offending byte's offset from the start of the IP header (`pp_ptr - iph`).
    pub pointer: u8,
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad IPv4 option at header byte {}", self.pointer)
    }
}

impl std::error::Error for OptionsError {}

/// Validates the options of a received header (`options`: the bytes from 20 to IHL*4) as
/// `__ip_options_compile()` does for an incoming skb (net/ipv4/ip_options.c), in its order:
/// `END` ends the list, `NOOP` is one byte; any other option needs a length byte, a length
/// of at least 2 that fits in what is left; record route and timestamp need a pointer
/// that is at least 4 (5) and, while the option has room left, room for one more entry
/// (a full timestamp option's overflow counter must not be 15 already); a source route
/// needs a pointer of at least 4 and may not repeat, nor may record route or timestamp;
/// router alert needs a length of 4. CIPSO is refused (pointer at its length byte when
/// shorter than 8, else at its DOI), as Linux does when no CIPSO DOI is configured
/// (net/ipv4/cipso_ipv4.c `cipso_v4_validate()`, the default). Other option types are
/// accepted and skipped, as Linux does for a received packet.
///
/// The options are read, not rewritten: Linux also records our address and a timestamp in
/// record-route and timestamp options that have room, which only matters when it forwards
/// the datagram or echoes its options (xsknet does neither).
///
/// # Errors
/// [`OptionsError`] with the pointer Linux puts in its parameter problem.
pub fn ip_options_compile(options: &[u8]) -> Result<Ipv4Options, OptionsError> {
    let mut opt = Ipv4Options::default();
    let mut i = 0;
    // Offsets from the IP header: the options start at byte 20 (IHL <= 15, so < 60).
    let at = |i: usize, k: usize| OptionsError { pointer: (MIN_HEADER_LEN + i + k) as u8 };
    while i < options.len() {
        let l = options.len() - i;
        let o = &options[i..];
        match o[0] {
            option::END => break,
            option::NOOP => {
                i += 1;
                continue;
            }
            _ => {}
        }
        if l < 2 {
            return Err(at(i, 0));
        }
        let optlen = usize::from(o[1]);
        if optlen < 2 || optlen > l {
            return Err(at(i, 0));
        }
        let o = &o[..optlen];
        let here = (MIN_HEADER_LEN + i) as u8;
        match o[0] {
            option::SSRR | option::LSRR => {
                if optlen < 3 {
                    return Err(at(i, 1));
                }
                if o[2] < 4 {
                    return Err(at(i, 2));
                }
                // RFC 1812 5.2.4.1: at most one source route.
                if opt.srr != 0 {
                    return Err(at(i, 0));
                }
                opt.is_strictroute = o[0] == option::SSRR;
                opt.srr = here;
            }
            option::RR => {
                if opt.rr != 0 {
                    return Err(at(i, 0));
                }
                if optlen < 3 {
                    return Err(at(i, 1));
                }
                let ptr = usize::from(o[2]);
                if ptr < 4 {
                    return Err(at(i, 2));
                }
                if ptr <= optlen && ptr + 3 > optlen {
                    return Err(at(i, 2));
                }
                opt.rr = here;
            }
            option::TIMESTAMP => {
                if opt.ts != 0 {
                    return Err(at(i, 0));
                }
                if optlen < 4 {
                    return Err(at(i, 1));
                }
                let ptr = usize::from(o[2]);
                if ptr < 5 {
                    return Err(at(i, 2));
                }
                let flag = o[3] & 0x0F;
                if ptr <= optlen {
                    if ptr + 3 > optlen {
                        return Err(at(i, 2));
                    }
                    let entry_has_addr = flag == option::ts_flag::TSANDADDR || flag == option::ts_flag::PRESPEC;
                    if entry_has_addr && ptr + 7 > optlen {
                        return Err(at(i, 2));
                    }
                } else if flag != option::ts_flag::PRESPEC && o[3] >> 4 == 15 {
                    // The overflow counter would wrap.
                    return Err(at(i, 3));
                }
                opt.ts = here;
            }
            option::RA => {
                if optlen < 4 {
                    return Err(at(i, 1));
                }
                if o[2] == 0 && o[3] == 0 {
                    opt.router_alert = here;
                }
            }
            option::CIPSO => {
                // No DOI is known: `cipso_v4_doi_search()` finds none.
                return Err(at(i, if optlen < 8 { 1 } else { 2 }));
            }
            _ => {}
        }
        i += optlen;
    }
    Ok(opt)
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

    fn check(p: &[u8]) -> Result<Ipv4Repr, Ipv4Error> {
        Ipv4Repr::parse(&Ipv4Packet::new_unchecked(p))
    }

    /// (IHL*4, total length) of a packet that passes the check.
    fn lens(p: &[u8]) -> (usize, usize) {
        let v = Ipv4Packet::new_checked(p).unwrap();
        (v.header_len(), v.total_len())
    }

    fn payload(p: &[u8]) -> &[u8] {
        Ipv4Packet::new_checked(p).unwrap().payload()
    }

    /// The header the send path writes: no options, TOS 0, not a fragment.
    #[allow(clippy::too_many_arguments)]
    fn write(
        buf: &mut [u8],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: u8,
        payload_len: usize,
        ttl: u8,
        ident: u16,
        dont_fragment: bool,
    ) {
        let repr = Ipv4Repr {
            src,
            dst,
            protocol,
            payload_len,
            ttl,
            tos: 0,
            ident,
            dont_fragment,
            more_fragments: false,
            frag_offset: 0,
        };
        repr.emit(&mut Ipv4Packet::new_unchecked(buf));
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
        let h = check(&PACKET_BYTES).unwrap();
        assert_eq!(lens(&PACKET_BYTES), (20, 84));
        assert_eq!(
            h,
            Ipv4Repr {
                payload_len: 64,
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
        assert_eq!(payload(&PACKET_BYTES), &PACKET_BYTES[20..]);
        assert_eq!(h.payload_len, 64);
    }

    #[test]
    fn check_accepts_ethernet_padding() {
        let h = check(&PADDED_BYTES).unwrap();
        assert_eq!(lens(&PADDED_BYTES), (20, 30));
        assert_eq!(h.protocol, protocol::UDP);
        assert_eq!(payload(&PADDED_BYTES), &PADDED_BYTES[20..30]);
    }

    #[test]
    fn check_accepts_options() {
        let h = check(&OPTIONS_BYTES).unwrap();
        assert_eq!(lens(&OPTIONS_BYTES), (24, 34));
        assert_eq!(h.payload_len, 10);
        assert_eq!(payload(&OPTIONS_BYTES), &PADDED_BYTES[20..30]);
        assert_eq!(Ipv4Packet::new_checked(&OPTIONS_BYTES[..]).unwrap().options(), &[0x94, 0x04, 0, 0]);
        // The option bytes are covered by the checksum.
        let mut bad = OPTIONS_BYTES;
        bad[21] ^= 0x01;
        assert_eq!(check(&bad), Err(Ipv4Error::ChecksumError));
    }

    #[test]
    fn reject_shorter_than_20() {
        for len in 0..MIN_HEADER_LEN {
            assert_eq!(check(&PACKET_BYTES[..len]), Err(Ipv4Error::HdrError));
        }
    }

    #[test]
    fn reject_ihl_below_5() {
        for ihl in 0..5u8 {
            let p = patched(PACKET_BYTES, 0, &[0x40 | ihl]);
            assert_eq!(check(&p), Err(Ipv4Error::HdrError), "ihl {ihl}");
        }
    }

    #[test]
    fn reject_version_6_in_ipv4_ethertype() {
        // An IPv6 header's first byte (0x60) where IPv4 was announced; and version 6 with a
        // plausible IHL and a correct IPv4 checksum: version is checked before the checksum.
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        assert_eq!(check(&v6), Err(Ipv4Error::HdrError));
        let p = patched(PACKET_BYTES, 0, &[0x65]);
        assert_eq!(check(&p), Err(Ipv4Error::HdrError));
        for version in [0u8, 1, 5, 15] {
            let p = patched(PACKET_BYTES, 0, &[version << 4 | 5]);
            assert_eq!(check(&p), Err(Ipv4Error::HdrError));
        }
    }

    #[test]
    fn reject_shorter_than_ihl() {
        // IHL 6 but only 22 bytes: HdrError even though the checksum would be bad too.
        assert_eq!(check(&OPTIONS_BYTES[..22]), Err(Ipv4Error::HdrError));
        // IHL 15 (60 bytes) in a 46-byte frame.
        let p = patched(PADDED_BYTES, 0, &[0x4F]);
        assert_eq!(check(&p), Err(Ipv4Error::HdrError));
    }

    #[test]
    fn reject_bad_checksum() {
        for i in 0..MIN_HEADER_LEN {
            let mut p = PACKET_BYTES;
            p[i] ^= 0x10;
            if i == 0 {
                // Version 5: HdrError comes first.
                assert_eq!(check(&p), Err(Ipv4Error::HdrError));
            } else {
                assert_eq!(check(&p), Err(Ipv4Error::ChecksumError), "byte {i}");
            }
        }
        // The payload is not covered.
        let mut p = PACKET_BYTES;
        p[40] ^= 0xFF;
        assert!(check(&p).is_ok());
    }

    #[test]
    fn checksum_checked_before_lengths() {
        let mut p = patched(PACKET_BYTES, 2, &[0xFF, 0xFF]);
        p[11] ^= 1;
        assert_eq!(check(&p), Err(Ipv4Error::ChecksumError));
        let mut p = patched(PACKET_BYTES, 2, &[0x00, 0x10]);
        p[11] ^= 1;
        assert_eq!(check(&p), Err(Ipv4Error::ChecksumError));
    }

    #[test]
    fn reject_truncated() {
        // Frame cut short: total length 84, fewer bytes received.
        for len in [20, 21, 28, 83] {
            assert_eq!(check(&PACKET_BYTES[..len]), Err(Ipv4Error::Truncated));
        }
        // Total length larger than the frame.
        let p = patched(PACKET_BYTES, 2, &[0x00, 85]);
        assert_eq!(check(&p), Err(Ipv4Error::Truncated));
        let p = patched(PACKET_BYTES, 2, &[0xFF, 0xFF]);
        assert_eq!(check(&p), Err(Ipv4Error::Truncated));
    }

    #[test]
    fn reject_total_len_below_header_len() {
        for total in [0u16, 1, 19] {
            let p = patched(PACKET_BYTES, 2, &total.to_be_bytes());
            assert_eq!(check(&p), Err(Ipv4Error::HdrError), "total {total}");
        }
        // With options: 20..23 is below IHL*4 = 24.
        let p = patched(OPTIONS_BYTES, 2, &[0, 23]);
        assert_eq!(check(&p), Err(Ipv4Error::HdrError));
        // Exactly the header is a valid (empty) datagram.
        let p = patched(OPTIONS_BYTES, 2, &[0, 24]);
        assert_eq!(check(&p).unwrap().payload_len, 0);
        assert_eq!(payload(&p), &[] as &[u8]);
    }

    #[test]
    fn fragments() {
        let mf = patched(PACKET_BYTES, 6, &[0x20, 0x00]);
        let h = check(&mf).unwrap();
        assert!(h.more_fragments && !h.dont_fragment && h.frag_offset == 0 && h.is_fragment());
        let last = patched(PACKET_BYTES, 6, &[0x00, 0xB9]);
        let h = check(&last).unwrap();
        assert!(!h.more_fragments && h.frag_offset == 185 && h.is_fragment());
        let max = patched(PACKET_BYTES, 6, &[0x7F, 0xFF]);
        let h = check(&max).unwrap();
        assert!(h.dont_fragment && h.more_fragments && h.frag_offset == 0x1FFF);
    }

    #[test]
    fn write_matches_real_header() {
        let mut buf = [0u8; 20];
        write(&mut buf, A, B, protocol::ICMP, 64, 64, 0x4c2d, true);
        assert_eq!(buf, PACKET_BYTES[..20]);
        let mut buf = [0u8; 20];
        write(&mut buf, A, B, protocol::UDP, 10, 64, 0x1235, true);
        assert_eq!(buf, PADDED_BYTES[..20]);
    }

    #[test]
    fn write_cross_checked() {
        let mut buf = [0u8; 60];
        for (i, payload_len) in [0usize, 1, 8, 40, 1480, 65515].into_iter().enumerate() {
            let src = Ipv4Addr::new(192, 168, i as u8, 0xFE);
            let dst = Ipv4Addr::new(0xFF, 0, 0x80, i as u8);
            let ident = (i as u16).wrapping_mul(0x9E37);
            write(&mut buf, src, dst, protocol::TCP, payload_len, 1, ident, i % 2 == 0);
            let mut zeroed = buf;
            zeroed[10] = 0;
            zeroed[11] = 0;
            assert_eq!(u16::from_be_bytes([buf[10], buf[11]]), naive_checksum(&zeroed[..20]));
            let total = 20 + payload_len;
            let mut frame = vec![0u8; total];
            frame[..20].copy_from_slice(&buf[..20]);
            let h = check(&frame).unwrap();
            assert_eq!((h.src, h.dst, h.ident, h.ttl), (src, dst, ident, 1));
            assert_eq!((lens(&frame).1, h.dont_fragment), (total, i % 2 == 0));
        }
    }

    #[test]
    fn tos_dscp_ecn_and_fragments_round_trip() {
        let repr = Ipv4Repr {
            src: A,
            dst: B,
            protocol: protocol::ICMP,
            payload_len: 8,
            ttl: 3,
            tos: 0xc0 | ecn::CE,
            ident: 0xBEEF,
            dont_fragment: false,
            more_fragments: true,
            frag_offset: 0x1ABC,
        };
        assert_eq!((repr.dscp(), repr.ecn(), repr.header_len(), repr.buffer_len()), (0x30, ecn::CE, 20, 28));
        let mut buf = [0u8; 28];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
        let mut zeroed = buf;
        zeroed[10] = 0;
        zeroed[11] = 0;
        assert_eq!(u16::from_be_bytes([buf[10], buf[11]]), naive_checksum(&zeroed[..20]));
        assert_eq!(buf[1], 0xc3, "TOS written as given");
        let view = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!((view.version(), view.tos(), view.dscp(), view.ecn()), (4, 0xc3, 0x30, ecn::CE));
        assert_eq!((view.more_fragments(), view.frag_offset(), view.is_fragment()), (true, 0x1ABC, true));
        assert!(view.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&view), Ok(repr));
    }

    #[test]
    fn ecn_readable_after_the_version_check_only() {
        // A bad checksum and a cut header: check() refuses, but version and IHL are right,
        // so the ECN codepoint can be counted as Linux does.
        let mut p = PACKET_BYTES;
        p[1] = ecn::ECT0;
        let view = Ipv4Packet::new_unchecked(&p[..20]);
        assert_eq!(view.check(), Err(Ipv4Error::ChecksumError));
        assert_eq!(view.check_version_ihl(), Ok(()));
        assert_eq!(view.ecn(), ecn::ECT0);
        let opts = Ipv4Packet::new_unchecked(&OPTIONS_BYTES[..22]);
        assert_eq!((opts.check_version_ihl(), opts.check()), (Ok(()), Err(Ipv4Error::HdrError)));
        for bad in [&PACKET_BYTES[..19], &patched(PACKET_BYTES, 0, &[0x44])[..], &patched(PACKET_BYTES, 0, &[0x65])] {
            assert_eq!(Ipv4Packet::new_unchecked(bad).check_version_ihl(), Err(Ipv4Error::HdrError));
        }
    }

    #[test]
    fn setters_then_fill_checksum() {
        let mut buf = [0u8; 34];
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.set_version_and_header_len(24);
        p.set_tos(0x10);
        p.set_ecn(ecn::ECT1);
        p.set_total_len(34);
        p.set_ident(0x1236);
        p.set_fragment(true, false, 0);
        p.set_ttl(64);
        p.set_protocol(protocol::UDP);
        p.set_src_addr(A);
        p.set_dst_addr(B);
        p.options_mut().copy_from_slice(&[0x94, 0x04, 0, 0]);
        p.payload_mut().copy_from_slice(&OPTIONS_BYTES[24..]);
        p.set_tos(0);
        p.fill_checksum();
        assert_eq!(buf, OPTIONS_BYTES);
        let v = Ipv4Packet::new_unchecked(&buf[..]);
        assert_eq!(v.checksum(), 0x7f8e);
        assert!(!Ipv4Packet::new_unchecked(&buf[..19]).verify_checksum());
        assert!(!Ipv4Packet::new_unchecked(&[0x44u8; 20][..]).verify_checksum());
    }

    #[test]
    fn every_prefix_is_ok_or_err() {
        for base in [&PACKET_BYTES[..], &PADDED_BYTES[..], &OPTIONS_BYTES[..]] {
            for len in 0..=base.len() {
                let _ = check(&base[..len]);
            }
        }
    }

    #[test]
    fn error_display() {
        assert_eq!(Ipv4Error::ChecksumError.to_string(), "bad IPv4 header checksum");
        assert!(!Ipv4Error::HdrError.to_string().is_empty());
        assert!(!Ipv4Error::Truncated.to_string().is_empty());
    }

    /// `__ip_options_compile()`'s answers, pointer by pointer (net/ipv4/ip_options.c).
    #[test]
    fn options_validated_as_ip_options_compile() {
        let ok = |o: &[u8]| ip_options_compile(o).unwrap_or_else(|e| panic!("{o:02x?}: {e}"));
        let bad = |o: &[u8]| ip_options_compile(o).map(|_| ()).map_err(|e| e.pointer);
        // The example: IHL 6 with 07 ff 00 00, the length runs past the header.
        assert_eq!(bad(&[0x07, 0xff, 0, 0]), Err(20));
        // Padding and the end of the list; what follows END is not looked at.
        assert_eq!(ok(&[1, 1, 1, 1]), Ipv4Options::default());
        assert_eq!(ok(&[0, 0x07, 0xff, 0]), Ipv4Options::default());
        assert_eq!(ok(&[]), Ipv4Options::default());
        // A type byte with no room for its length; a length below 2.
        assert_eq!(bad(&[1, 1, 1, 0x44]), Err(23));
        assert_eq!(bad(&[0x99, 1, 0, 0]), Err(20));
        assert_eq!(bad(&[1, 0x99, 0, 0]), Err(21));
        // Unknown, security and stream ID options are skipped on receive.
        assert_eq!(ok(&[0x99, 4, 0xaa, 0xbb]), Ipv4Options::default());
        assert_eq!(ok(&[option::SID, 4, 0, 1]), Ipv4Options::default());
        assert_eq!(ok(&[option::SEC, 3, 0, 1]), Ipv4Options::default());
        // Record route: room for one address at pointer 4, or full (pointer past the end).
        assert_eq!(ok(&[7, 7, 4, 0, 0, 0, 0, 0]).rr, 20);
        assert_eq!(ok(&[7, 3, 4, 0]).rr, 20);
        assert_eq!(bad(&[7, 2, 0, 0]), Err(21));
        assert_eq!(bad(&[7, 7, 3, 0, 0, 0, 0, 0]), Err(22));
        assert_eq!(bad(&[7, 7, 5, 0, 0, 0, 0, 0]), Err(22));
        assert_eq!(bad(&[7, 3, 4, 7, 3, 4, 0, 0]), Err(23));
        // Timestamp: pointer at least 5, an entry's room, the overflow counter.
        assert_eq!(ok(&[68, 8, 5, 0, 0, 0, 0, 0]).ts, 20);
        assert_eq!(bad(&[68, 3, 5, 0]), Err(21));
        assert_eq!(bad(&[68, 8, 4, 0, 0, 0, 0, 0]), Err(22));
        assert_eq!(bad(&[68, 8, 6, 0, 0, 0, 0, 0]), Err(22));
        assert_eq!(bad(&[68, 8, 5, 1, 0, 0, 0, 0]), Err(22));
        assert_eq!(ok(&[68, 12, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0]).ts, 20);
        assert_eq!(ok(&[68, 4, 5, 0xe0]).ts, 20);
        assert_eq!(bad(&[68, 4, 5, 0xf0]), Err(23));
        assert_eq!(ok(&[68, 4, 5, 0xf3]).ts, 20);
        // An unknown flag is not checked on receive.
        assert_eq!(ok(&[68, 8, 5, 2, 0, 0, 0, 0]).ts, 20);
        // Source routes: pointer at least 4, only one.
        let srr = ok(&[option::LSRR, 7, 4, 10, 0, 0, 9, 0]);
        assert_eq!((srr.srr, srr.is_strictroute), (20, false));
        assert!(ok(&[option::SSRR, 3, 4, 0]).is_strictroute);
        assert_eq!(bad(&[option::LSRR, 2, 0, 0]), Err(21));
        assert_eq!(bad(&[option::SSRR, 3, 3, 0]), Err(22));
        assert_eq!(bad(&[option::LSRR, 3, 4, option::SSRR, 3, 4, 0, 0]), Err(23));
        // Router alert: length 4; value 0 is the one Linux keeps.
        assert_eq!(ok(&[option::RA, 4, 0, 0]).router_alert, 20);
        assert_eq!(ok(&[option::RA, 4, 0, 1]).router_alert, 0);
        assert_eq!(bad(&[option::RA, 2, 0, 0]), Err(21));
        // CIPSO with no DOI configured.
        assert_eq!(bad(&[option::CIPSO, 4, 0, 0]), Err(21));
        assert_eq!(bad(&[option::CIPSO, 8, 0, 0, 0, 1, 0, 0]), Err(22));
        // Every byte string of one option word, none panics.
        for a in 0..=255u8 {
            for b in [0u8, 1, 2, 3, 4, 5, 8, 0xff] {
                let _ = ip_options_compile(&[a, b, 5, 0xf1]);
                let _ = ip_options_compile(&[a]);
            }
        }
    }
}
