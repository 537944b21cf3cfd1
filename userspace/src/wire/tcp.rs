//! TCP (RFC 9293 §3.1) over IPv4: the header checks of Linux `tcp_v4_rcv()`, the options as
//! `tcp_parse_options()` reads them and `tcp_options_write()` writes them, checksum
//! verification over the pseudo-header, and the header the send path writes.
//!
//! This module owns the segment layout: the fixed 20-byte header, the data offset, the options
//! (MSS from RFC 9293 §3.2, window scale and timestamps from RFC 7323, SACK-permitted and SACK
//! blocks from RFC 2018) and the checksum. What a segment means for a connection (sequence
//! acceptability, PAWS, which options a state honours, the counters `TcpInErrs` and
//! `TcpInCsumErrors`) belongs to the TCP state machine. See `net/ipv4/tcp_ipv4.c`,
//! `net/ipv4/tcp_input.c` and `net/ipv4/tcp_output.c`.

use core::fmt;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::checksum;
use super::ipv4::protocol;

/// Length of the header without options (data offset 5).
pub const HEADER_LEN: usize = 20;

/// Most option bytes a header carries: data offset 15 is 60 bytes (`MAX_TCP_OPTION_SPACE`).
pub const MAX_OPTIONS_LEN: usize = 40;

/// Largest window scale shift (`TCP_MAX_WSCALE`, RFC 7323 §2.3).
pub const MAX_WSCALE: u8 = 14;

/// The control bits of header byte 13 (RFC 9293 §3.1; ECE and CWR from RFC 3168).
pub mod flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field is significant.
    pub const URG: u8 = 0x20;
    /// ECN-Echo (RFC 3168).
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced (RFC 3168).
    pub const CWR: u8 = 0x80;
}

/// Option kinds (`include/net/tcp.h`, `TCPOPT_*`; IANA "TCP Option Kind Numbers").
pub mod option_kind {
    /// End of option list.
    pub const EOL: u8 = 0;
    /// No operation (padding).
    pub const NOP: u8 = 1;
    /// Maximum segment size (RFC 9293 §3.2), length 4.
    pub const MSS: u8 = 2;
    /// Window scale (RFC 7323 §2.2), length 3.
    pub const WINDOW: u8 = 3;
    /// SACK permitted (RFC 2018 §2), length 2.
    pub const SACK_PERM: u8 = 4;
    /// SACK blocks (RFC 2018 §3), length 2 + 8 per block.
    pub const SACK: u8 = 5;
    /// Timestamps (RFC 7323 §3.2), length 10.
    pub const TIMESTAMP: u8 = 8;
}

/// Byte ranges of the header's fields, for code that patches segments in place by offset.
pub mod field {
    use core::ops::Range;

    /// Source port.
    pub const SRC_PORT: Range<usize> = 0..2;
    /// Destination port.
    pub const DST_PORT: Range<usize> = 2..4;
    /// Sequence number.
    pub const SEQ_NUM: Range<usize> = 4..8;
    /// Acknowledgment number.
    pub const ACK_NUM: Range<usize> = 8..12;
    /// Data offset (upper four bits, in 32-bit words) and reserved bits.
    pub const DATA_OFF: usize = 12;
    /// Control bits, see [`super::flags`].
    pub const FLAGS: usize = 13;
    /// Window.
    pub const WIN_SIZE: Range<usize> = 14..16;
    /// Checksum.
    pub const CHECKSUM: Range<usize> = 16..18;
    /// Urgent pointer.
    pub const URGENT: Range<usize> = 18..20;
}

/// Why `tcp_v4_rcv()` would drop the segment before looking at its checksum.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TcpError {
    /// Fewer than 20 bytes, a data offset below 5, or a data offset beyond the segment. Linux
    /// counts `TcpInErrs` for the data offset below 5 (`bad_packet`); the two length cases go
    /// to `discard_it` uncounted (`pskb_may_pull()` fails).
    Short,
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpError::Short => f.write_str("TCP header does not fit the segment"),
        }
    }
}

impl std::error::Error for TcpError {}

/// A view of a TCP segment filling `buffer` (the IP payload, trimmed to the IP total length:
/// TCP has no length field of its own, so every byte after the header is payload).
///
/// After [`TcpPacket::check`] (or from [`TcpPacket::new_checked`]) `20 <= header_len() <=
/// buffer.len()` holds and nothing panics; on an unchecked view the fixed-header getters panic
/// below 20 bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buffer` without checking it.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps `buffer` after [`TcpPacket::check`].
    ///
    /// # Errors
    /// As [`TcpPacket::check`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, TcpError> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// The length checks of Linux `tcp_v4_rcv()`, in its order: room for the 20-byte header
    /// (`pskb_may_pull(skb, sizeof(struct tcphdr))`), a data offset of at least 5
    /// (`th->doff < sizeof(struct tcphdr) / 4`), room for the data offset's bytes
    /// (`pskb_may_pull(skb, th->doff * 4)`). The checksum is verified apart
    /// ([`TcpPacket::verify_checksum`]), as Linux does next; options are not judged here.
    ///
    /// # Errors
    /// [`TcpError::Short`] for any of the three.
    #[inline]
    pub fn check(&self) -> Result<(), TcpError> {
        let b = self.buffer.as_ref();
        let Some(h) = b.first_chunk::<HEADER_LEN>() else {
            return Err(TcpError::Short);
        };
        let header_len = usize::from(h[field::DATA_OFF] >> 4) * 4;
        if header_len < HEADER_LEN || header_len > b.len() {
            return Err(TcpError::Short);
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
        self.buffer.as_ref().first_chunk::<HEADER_LEN>().expect("TCP segment shorter than 20 bytes")
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

    /// Sequence number (SEG.SEQ).
    #[inline]
    pub fn seq_number(&self) -> u32 {
        let h = self.header();
        u32::from_be_bytes([h[4], h[5], h[6], h[7]])
    }

    /// Acknowledgment number (SEG.ACK); meaningful only with [`flags::ACK`].
    #[inline]
    pub fn ack_number(&self) -> u32 {
        let h = self.header();
        u32::from_be_bytes([h[8], h[9], h[10], h[11]])
    }

    /// Data offset * 4: the header length in bytes, options included (20..=60 after
    /// [`TcpPacket::check`]; 0..=60 before).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.header()[field::DATA_OFF] >> 4) * 4
    }

    /// The control bits (byte 13), see [`flags`].
    #[inline]
    pub fn flags(&self) -> u8 {
        self.header()[field::FLAGS]
    }

    /// Window (SEG.WND) as sent, before any window scaling.
    #[inline]
    pub fn window_len(&self) -> u16 {
        let h = self.header();
        u16::from_be_bytes([h[14], h[15]])
    }

    /// The checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        let h = self.header();
        u16::from_be_bytes([h[16], h[17]])
    }

    /// Urgent pointer (SEG.UP); meaningful only with [`flags::URG`].
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        let h = self.header();
        u16::from_be_bytes([h[18], h[19]])
    }

    /// True when the checksum verifies over the IPv4 pseudo-header (`src`, `dst`, protocol 6,
    /// the buffer's length) and the whole buffer: header, options and payload (RFC 9293
    /// §3.1; unlike UDP, 0 is not "none"). False for a buffer longer than 65535 bytes.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        checksum::verify_pseudo(src, dst, protocol::TCP, self.buffer.as_ref())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> TcpPacket<&'a T> {
    /// The buffer and its header length, when it holds the fixed header and the data offset
    /// is at least 5 (the header may still run past the buffer).
    #[inline]
    fn with_header_len(&self) -> Option<(&'a [u8], usize)> {
        let b: &'a [u8] = self.buffer.as_ref();
        let hl = usize::from(b.first_chunk::<HEADER_LEN>()?[field::DATA_OFF] >> 4) * 4;
        (hl >= HEADER_LEN).then_some((b, hl))
    }

    /// The options: bytes 20..data offset * 4. Empty if the buffer is shorter than that or
    /// the data offset below 5; never panics.
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        self.with_header_len().and_then(|(b, hl)| b.get(HEADER_LEN..hl)).unwrap_or(&[])
    }

    /// The payload: every byte after the header. Empty if the view would not pass
    /// [`TcpPacket::check`]; never panics.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.with_header_len().and_then(|(b, hl)| b.get(hl..)).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    #[inline]
    fn header_mut(&mut self) -> &mut [u8; HEADER_LEN] {
        self.buffer.as_mut().first_chunk_mut::<HEADER_LEN>().expect("TCP segment shorter than 20 bytes")
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

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, seq: u32) {
        self.header_mut()[field::SEQ_NUM].copy_from_slice(&seq.to_be_bytes());
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, ack: u32) {
        self.header_mut()[field::ACK_NUM].copy_from_slice(&ack.to_be_bytes());
    }

    /// Sets the data offset to `header_len / 4`, keeping the four reserved bits of byte 12.
    ///
    /// # Panics
    /// In debug builds, if `header_len` is not a multiple of 4 in 20..=60.
    #[inline]
    pub fn set_header_len(&mut self, header_len: usize) {
        debug_assert!(
            header_len.is_multiple_of(4) && (HEADER_LEN..=HEADER_LEN + MAX_OPTIONS_LEN).contains(&header_len)
        );
        let h = self.header_mut();
        h[field::DATA_OFF] = ((header_len / 4) as u8) << 4 | (h[field::DATA_OFF] & 0x0F);
    }

    /// Sets the control bits (byte 13), see [`flags`].
    #[inline]
    pub fn set_flags(&mut self, flags: u8) {
        self.header_mut()[field::FLAGS] = flags;
    }

    /// Sets the window.
    #[inline]
    pub fn set_window_len(&mut self, window: u16) {
        self.header_mut()[field::WIN_SIZE].copy_from_slice(&window.to_be_bytes());
    }

    /// Sets the checksum field (see [`TcpPacket::fill_checksum`] to compute it).
    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        self.header_mut()[field::CHECKSUM].copy_from_slice(&checksum.to_be_bytes());
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, urgent: u16) {
        self.header_mut()[field::URGENT].copy_from_slice(&urgent.to_be_bytes());
    }

    /// The options, writable (bytes 20..data offset * 4).
    ///
    /// # Panics
    /// If the buffer is shorter than the data offset's bytes, or the data offset is below 5.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }

    /// The payload, writable: every byte after the header.
    ///
    /// # Panics
    /// If the buffer is shorter than the data offset's bytes.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }

    /// Computes the checksum over the IPv4 pseudo-header (`src`, `dst`, protocol 6, the
    /// buffer's length) and the whole buffer (header, options, payload) and writes it.
    ///
    /// # Panics
    /// If the buffer is shorter than 20 bytes. It must be at most 65535 bytes (checked in
    /// debug builds).
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let len = self.buffer.as_ref().len();
        self.fill_checksum_over(src, dst, len);
    }

    /// [`TcpPacket::fill_checksum`] over the first `len` bytes of the buffer.
    #[inline]
    fn fill_checksum_over(&mut self, src: Ipv4Addr, dst: Ipv4Addr, len: usize) {
        self.set_checksum(0);
        let c = checksum::compute_pseudo(src, dst, protocol::TCP, &self.buffer.as_ref()[..len]);
        self.set_checksum(c);
    }
}

/// One SACK block (RFC 2018 §3): the sequence numbers of its first byte and of the byte
/// after its last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SackBlock {
    /// Left edge: first sequence number of the block.
    pub left: u32,
    /// Right edge: sequence number after the last byte of the block.
    pub right: u32,
}

/// The options Linux reads and writes (`struct tcp_options_received`, `struct
/// tcp_out_options`): MSS, window scale, SACK-permitted, timestamps and up to four SACK blocks.
/// Other kinds (MD5, AO, Fast Open, MPTCP, experimental) are skipped on parse and never
/// written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions {
    /// Maximum segment size in bytes (RFC 9293 §3.7.1), SYN only.
    pub mss: Option<u16>,
    /// Window scale shift (RFC 7323 §2), SYN only, at most [`MAX_WSCALE`] after parsing.
    pub window_scale: Option<u8>,
    /// SACK permitted (RFC 2018 §2), SYN only.
    pub sack_permitted: bool,
    /// Timestamps (RFC 7323 §3): (TSval, TSecr).
    pub timestamp: Option<(u32, u32)>,
    /// SACK blocks (RFC 2018 §3); the first `sack_len` are meaningful.
    pub sack_blocks: [SackBlock; 4],
    /// How many of `sack_blocks` are meaningful, 0..=4.
    pub sack_len: u8,
}

// `TCPOLEN_*` (`include/net/tcp.h`) and the aligned sizes `tcp_options_write()` writes:
// `TCPOLEN_TSTAMP_ALIGNED` 12; MSS, window scale, SACK-permitted and the SACK base 4 each.
const MSS_LEN: u8 = 4;
const WINDOW_LEN: u8 = 3;
const SACK_PERM_LEN: u8 = 2;
const TIMESTAMP_LEN: u8 = 10;
const SACK_BASE_LEN: u8 = 2;
const SACK_PERBLOCK: usize = 8;
const TSTAMP_ALIGNED: usize = 12;
const WORD: usize = 4;

impl TcpOptions {
    /// Reads `options` (the bytes between the fixed header and the data offset) as Linux
    /// `tcp_parse_options()` (`net/ipv4/tcp_input.c`) does for a segment with the SYN bit
    /// `syn`, on a connection that has every option enabled:
    ///
    /// - EOL ends the list; NOP is skipped;
    /// - any other kind needs a length byte, a length of at least 2 and no more than the bytes
    ///   left; otherwise parsing stops there. Options read before are kept and the segment is
    ///   not dropped (Linux neither);
    /// - MSS (length 4) is read on a SYN only, and a value of 0 is ignored (`if (in_mss)`);
    /// - window scale (length 3) is read on a SYN only; a shift above 14 is logged
    ///   (rate-limited, as `net_info_ratelimited()`) and taken as 14 (RFC 7323 §2.3);
    /// - SACK-permitted (length 2) is read on a SYN only;
    /// - timestamps (length 10) are read on any segment;
    /// - SACK (length 10, 18, 26 or 34: 2 + 8 per block) is read on a segment without SYN
    ///   only. Linux reads SACK blocks when SACK was negotiated; whether it was is the
    ///   connection's to judge;
    /// - an option whose length is wrong for its kind, and any other kind, is skipped by its
    ///   length. A later copy of an option replaces an earlier one.
    pub fn parse(options: &[u8], syn: bool) -> TcpOptions {
        let mut opts = TcpOptions::default();
        let mut rest = options;
        while let [kind, tail @ ..] = rest {
            match *kind {
                option_kind::EOL => break,
                option_kind::NOP => {
                    rest = tail;
                    continue;
                }
                _ => {}
            }
            let Some(&size) = tail.first() else { break };
            if size < 2 || usize::from(size) > rest.len() {
                break;
            }
            let value = &rest[2..usize::from(size)];
            match (*kind, size) {
                (option_kind::MSS, MSS_LEN) if syn => {
                    let mss = u16::from_be_bytes([value[0], value[1]]);
                    if mss != 0 {
                        opts.mss = Some(mss);
                    }
                }
                (option_kind::WINDOW, WINDOW_LEN) if syn => {
                    let shift = value[0];
                    if shift > MAX_WSCALE {
                        log_illegal_wscale(shift);
                    }
                    opts.window_scale = Some(shift.min(MAX_WSCALE));
                }
                (option_kind::SACK_PERM, SACK_PERM_LEN) if syn => opts.sack_permitted = true,
                (option_kind::TIMESTAMP, TIMESTAMP_LEN) => {
                    let tsval = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
                    let tsecr = u32::from_be_bytes([value[4], value[5], value[6], value[7]]);
                    opts.timestamp = Some((tsval, tsecr));
                }
                (option_kind::SACK, _)
                    if !syn
                        && usize::from(size) >= usize::from(SACK_BASE_LEN) + SACK_PERBLOCK
                        && (usize::from(size - SACK_BASE_LEN)).is_multiple_of(SACK_PERBLOCK) =>
                {
                    opts.sack_blocks = [SackBlock::default(); 4];
                    let mut n = 0;
                    for (block, edges) in opts.sack_blocks.iter_mut().zip(value.chunks_exact(SACK_PERBLOCK)) {
                        block.left = u32::from_be_bytes([edges[0], edges[1], edges[2], edges[3]]);
                        block.right = u32::from_be_bytes([edges[4], edges[5], edges[6], edges[7]]);
                        n += 1;
                    }
                    opts.sack_len = n;
                }
                _ => {}
            }
            rest = &rest[usize::from(size)..];
        }
        opts
    }

    /// The meaningful SACK blocks: the first `sack_len` (at most 4) of `sack_blocks`.
    #[inline]
    pub fn sack_blocks(&self) -> &[SackBlock] {
        &self.sack_blocks[..usize::from(self.sack_len).min(self.sack_blocks.len())]
    }

    /// Bytes of everything but the SACK blocks, as [`TcpOptions::emit`] lays it out.
    #[inline]
    fn base_len(&self) -> usize {
        let mut len = 0;
        if self.mss.is_some() {
            len += WORD;
        }
        if self.timestamp.is_some() {
            len += TSTAMP_ALIGNED;
        } else if self.sack_permitted {
            len += WORD;
        }
        if self.window_scale.is_some() {
            len += WORD;
        }
        len
    }

    /// How many SACK blocks [`TcpOptions::emit`] writes: `sack_len` (at most 4), cut to what
    /// fits in the 40 option bytes after the other options (`tcp_established_options()`:
    /// three blocks beside timestamps, four without).
    #[inline]
    fn sack_blocks_fitting(&self) -> usize {
        let remaining = MAX_OPTIONS_LEN - self.base_len();
        let n = self.sack_blocks().len();
        if n == 0 || remaining < WORD + SACK_PERBLOCK {
            return 0;
        }
        n.min((remaining - WORD) / SACK_PERBLOCK)
    }

    /// Bytes [`TcpOptions::emit`] writes: a multiple of 4, at most [`MAX_OPTIONS_LEN`].
    #[inline]
    pub fn len(&self) -> usize {
        let sacks = self.sack_blocks_fitting();
        self.base_len() + if sacks > 0 { WORD + sacks * SACK_PERBLOCK } else { 0 }
    }

    /// True when there is nothing to write.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the options at the start of `buf` in the order and layout of Linux
    /// `tcp_options_write()` (`net/ipv4/tcp_output.c`), every option on 32-bit words:
    ///
    /// - `02 04 mss` (MSS);
    /// - with timestamps, `04 02 08 0a TSval TSecr` when SACK-permitted is set too, else
    ///   `01 01 08 0a TSval TSecr`; without timestamps, `01 01 04 02` for SACK-permitted;
    /// - `01 03 03 shift` (window scale);
    /// - `01 01 05 len` and 8 bytes per SACK block, as many as fit (see
    ///   [`TcpOptions::len`]).
    ///
    /// Returns the bytes written, [`TcpOptions::len`]. Values are written as given (a window
    /// scale above 14 or an MSS of 0 too); which options a segment carries is the caller's
    /// choice (RFC 7323 and RFC 2018: the SYN-only ones on SYN segments).
    ///
    /// # Panics
    /// If `buf` is shorter than [`TcpOptions::len`].
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.len();
        let buf = &mut buf[..len];
        let mut at = 0;
        let mut word = |bytes: [u8; 4]| {
            buf[at..at + 4].copy_from_slice(&bytes);
            at += 4;
        };
        if let Some(mss) = self.mss {
            let [hi, lo] = mss.to_be_bytes();
            word([option_kind::MSS, MSS_LEN, hi, lo]);
        }
        if let Some((tsval, tsecr)) = self.timestamp {
            if self.sack_permitted {
                word([option_kind::SACK_PERM, SACK_PERM_LEN, option_kind::TIMESTAMP, TIMESTAMP_LEN]);
            } else {
                word([option_kind::NOP, option_kind::NOP, option_kind::TIMESTAMP, TIMESTAMP_LEN]);
            }
            word(tsval.to_be_bytes());
            word(tsecr.to_be_bytes());
        } else if self.sack_permitted {
            word([option_kind::NOP, option_kind::NOP, option_kind::SACK_PERM, SACK_PERM_LEN]);
        }
        if let Some(shift) = self.window_scale {
            word([option_kind::NOP, option_kind::WINDOW, WINDOW_LEN, shift]);
        }
        let sacks = self.sack_blocks_fitting();
        if sacks > 0 {
            let size = SACK_BASE_LEN + (sacks * SACK_PERBLOCK) as u8;
            word([option_kind::NOP, option_kind::NOP, option_kind::SACK, size]);
            for block in &self.sack_blocks[..sacks] {
                word(block.left.to_be_bytes());
                word(block.right.to_be_bytes());
            }
        }
        debug_assert_eq!(at, len);
        len
    }
}

/// printk's default rate limit, which `net_info_ratelimited()` applies: at most
/// `DEFAULT_RATELIMIT_BURST` (10) messages per `DEFAULT_RATELIMIT_INTERVAL` (5 s)
/// (`include/linux/ratelimit_types.h`). Lock-free; a race may let a message more through.
struct LogRateLimit {
    /// Start of the current interval, seconds since the Unix epoch.
    start: AtomicU64,
    /// Messages asked for in the current interval.
    count: AtomicU32,
}

impl LogRateLimit {
    const INTERVAL_SECS: u64 = 5;
    const BURST: u32 = 10;

    const fn new() -> Self {
        LogRateLimit { start: AtomicU64::new(0), count: AtomicU32::new(0) }
    }

    /// True when a message may be logged at `now` (seconds since the Unix epoch).
    fn allow(&self, now: u64) -> bool {
        let start = self.start.load(Ordering::Relaxed);
        if now >= start.saturating_add(Self::INTERVAL_SECS)
            && self.start.compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            self.count.store(0, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed) < Self::BURST
    }
}

/// Logs a received window scale above 14, as `tcp_parse_options()` does, rate-limited.
#[cold]
fn log_illegal_wscale(shift: u8) {
    static LIMIT: LogRateLimit = LogRateLimit::new();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if LIMIT.allow(now) {
        log::info!("tcp_parse_options: Illegal window scaling value {shift} > {MAX_WSCALE} received");
    }
}

/// The fields of a TCP header and its options. The payload is [`TcpPacket::payload`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number (SEG.SEQ).
    pub seq: u32,
    /// Acknowledgment number (SEG.ACK), as sent even without [`flags::ACK`].
    pub ack: u32,
    /// Control bits, see [`flags`].
    pub flags: u8,
    /// Window as sent (unscaled).
    pub window: u16,
    /// Urgent pointer, as sent even without [`flags::URG`].
    pub urgent: u16,
    /// The options ([`TcpOptions::parse`] with this segment's SYN bit).
    pub options: TcpOptions,
    /// Bytes after the header (options included in the header).
    pub payload_len: usize,
}

impl TcpRepr {
    /// Reads the header of `packet`, which passed [`TcpPacket::check`], and parses its options
    /// ([`TcpOptions::parse`] with its SYN bit). The checksum is not verified here: the
    /// receive path checks it first ([`TcpPacket::verify_checksum`]), as `tcp_v4_rcv()` does.
    ///
    /// # Panics
    /// If `packet` is shorter than 20 bytes; a data offset below 5 or beyond the buffer gives
    /// no options and no payload.
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &TcpPacket<&T>) -> TcpRepr {
        let flags = packet.flags();
        TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq: packet.seq_number(),
            ack: packet.ack_number(),
            flags,
            window: packet.window_len(),
            urgent: packet.urgent_at(),
            options: TcpOptions::parse(packet.options(), flags & flags::SYN != 0),
            payload_len: packet.payload().len(),
        }
    }

    /// Length of the header: 20 + [`TcpOptions::len`].
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// Bytes the segment needs: `header_len() + payload_len`.
    #[inline]
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Sequence space the segment occupies (RFC 9293 §3.4 SEG.LEN): `payload_len`, plus 1
    /// for SYN, plus 1 for FIN (`TCP_SKB_CB(skb)->end_seq - seq` in `tcp_v4_fill_cb()`).
    #[inline]
    pub fn seg_len(&self) -> u32 {
        self.payload_len as u32 + u32::from(self.flags & flags::SYN != 0) + u32::from(self.flags & flags::FIN != 0)
    }

    /// Writes the header (data offset from [`TcpRepr::header_len`], reserved bits 0) and the
    /// options ([`TcpOptions::emit`]), then the checksum over the pseudo-header (`src`,
    /// `dst`) and `header_len() + payload_len` bytes, the payload already in place after
    /// the header.
    ///
    /// # Panics
    /// If the buffer is shorter than `header_len() + payload_len`, which must be at most
    /// 65535 (checked in debug builds).
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut TcpPacket<&mut T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) {
        let header_len = self.header_len();
        let len = header_len + self.payload_len;
        debug_assert!(len <= usize::from(u16::MAX));
        let h = packet.header_mut();
        h[field::SRC_PORT].copy_from_slice(&self.src_port.to_be_bytes());
        h[field::DST_PORT].copy_from_slice(&self.dst_port.to_be_bytes());
        h[field::SEQ_NUM].copy_from_slice(&self.seq.to_be_bytes());
        h[field::ACK_NUM].copy_from_slice(&self.ack.to_be_bytes());
        h[field::DATA_OFF] = ((header_len / 4) as u8) << 4;
        h[field::FLAGS] = self.flags;
        h[field::WIN_SIZE].copy_from_slice(&self.window.to_be_bytes());
        h[field::URGENT].copy_from_slice(&self.urgent.to_be_bytes());
        self.options.emit(&mut packet.buffer.as_mut()[HEADER_LEN..header_len]);
        packet.fill_checksum_over(src, dst, len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Segments captured with tcpdump -xx on a veth pair between two namespaces (Linux 6.18,
    // transmit checksum offload off, so the checksums are the ones on the wire; tcpdump -vv
    // reported each "cksum correct"): `socat` from 10.0.0.1:40000 to 10.0.0.2:7777 sending
    // "hello, xsknet!\n".

    /// SYN, default sysctls: MSS 1460, SACK-permitted + timestamps packed, NOP + wscale 10.
    const SYN: [u8; 40] = [
        0x9c, 0x40, 0x1e, 0x61, 0x40, 0x31, 0xd2, 0x74, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0, //
        0x09, 0x46, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0xde, 0x03, 0x84, 0x78, //
        0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x0a,
    ];

    /// The SYN-ACK answering [`SYN`].
    const SYN_ACK: [u8; 40] = [
        0x1e, 0x61, 0x9c, 0x40, 0x50, 0x9c, 0x87, 0x58, 0x40, 0x31, 0xd2, 0x75, 0xa0, 0x12, 0xfe, 0x88, //
        0xcb, 0x05, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0xd0, 0x51, 0x92, 0x50, //
        0xde, 0x03, 0x84, 0x78, 0x01, 0x03, 0x03, 0x0a,
    ];

    /// The third ACK of the handshake: NOP NOP timestamps.
    const ACK: [u8; 32] = [
        0x9c, 0x40, 0x1e, 0x61, 0x40, 0x31, 0xd2, 0x75, 0x50, 0x9c, 0x87, 0x59, 0x80, 0x10, 0x00, 0x3f, //
        0xf8, 0x1e, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0xde, 0x03, 0x84, 0x78, 0xd0, 0x51, 0x92, 0x50,
    ];

    /// PSH|ACK with the 15 bytes of data (odd length).
    const DATA: [u8; 47] = [
        0x9c, 0x40, 0x1e, 0x61, 0x40, 0x31, 0xd2, 0x75, 0x50, 0x9c, 0x87, 0x59, 0x80, 0x18, 0x00, 0x3f, //
        0x33, 0x9f, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0xde, 0x03, 0x84, 0x78, 0xd0, 0x51, 0x92, 0x50, //
        0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x2c, 0x20, 0x78, 0x73, 0x6b, 0x6e, 0x65, 0x74, 0x21, 0x0a,
    ];

    /// SYN with `net.ipv4.tcp_timestamps=0`: MSS, NOP NOP SACK-permitted, NOP wscale.
    const SYN_NO_TS: [u8; 32] = [
        0x9c, 0x40, 0x1e, 0x61, 0x43, 0xee, 0x58, 0x7e, 0x00, 0x00, 0x00, 0x00, 0x80, 0x02, 0xfa, 0xf0, //
        0x09, 0x0d, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x01, 0x01, 0x04, 0x02, 0x01, 0x03, 0x03, 0x0a,
    ];

    /// SYN with `net.ipv4.tcp_sack=0`: MSS, NOP NOP timestamps, NOP wscale.
    const SYN_NO_SACK: [u8; 40] = [
        0x9c, 0x40, 0x1e, 0x61, 0x46, 0x54, 0x9f, 0xf6, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0, //
        0x1e, 0xe6, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x01, 0x01, 0x08, 0x0a, 0xde, 0x03, 0x9e, 0x34, //
        0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x0a,
    ];

    /// SYN with both off: MSS, NOP wscale.
    const SYN_BARE: [u8; 28] = [
        0x9c, 0x40, 0x1e, 0x61, 0x48, 0xbd, 0x31, 0x19, 0x00, 0x00, 0x00, 0x00, 0x70, 0x02, 0xfa, 0xf0, //
        0x40, 0xaa, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x0a,
    ];

    // Linux (10.0.0.2:7777, SACK and timestamps on) answering a peer at 10.0.0.3:40000 whose
    // ISN was 1000 and which sent bytes 1001..1101 and then 3001..3101 of its stream ahead of
    // byte 1 (crafted with scapy, captured on the same veth pair): duplicate ACKs carrying
    // `01 01 05 0a` and `01 01 05 12` SACK options, newest block first (RFC 2018 §4).

    /// ACK 1001 (relative 1), SACK {2001:2101}.
    const SACK_ACK_1: [u8; 44] = [
        0x1e, 0x61, 0x9c, 0x40, 0xa2, 0x25, 0x20, 0x87, 0x00, 0x00, 0x03, 0xe9, 0xb0, 0x10, 0x00, 0x40, //
        0x50, 0x8b, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0xc4, 0x88, 0x86, 0x0e, 0x00, 0x00, 0x00, 0x02, //
        0x01, 0x01, 0x05, 0x0a, 0x00, 0x00, 0x07, 0xd1, 0x00, 0x00, 0x08, 0x35,
    ];

    /// ACK 1001, SACK {4001:4101} {2001:2101}.
    const SACK_ACK_2: [u8; 52] = [
        0x1e, 0x61, 0x9c, 0x40, 0xa2, 0x25, 0x20, 0x87, 0x00, 0x00, 0x03, 0xe9, 0xd0, 0x10, 0x00, 0x40, //
        0x10, 0x92, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0xc4, 0x88, 0x86, 0x51, 0x00, 0x00, 0x00, 0x02, //
        0x01, 0x01, 0x05, 0x12, 0x00, 0x00, 0x0f, 0xa1, 0x00, 0x00, 0x10, 0x05, 0x00, 0x00, 0x07, 0xd1, //
        0x00, 0x00, 0x08, 0x35,
    ];

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const C: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

    const TSVAL_A: u32 = 0xde03_8478;
    const TSVAL_B: u32 = 0xd051_9250;

    fn packet(segment: &[u8]) -> TcpPacket<&[u8]> {
        TcpPacket::new_checked(segment).unwrap()
    }

    fn parse(segment: &[u8]) -> TcpRepr {
        TcpRepr::parse(&packet(segment))
    }

    fn opts(options: &[u8], syn: bool) -> TcpOptions {
        TcpOptions::parse(options, syn)
    }

    /// Independent RFC 9293 §3.1 checksum: pseudo-header bytes + segment with its checksum
    /// field skipped, big-endian words, u32 accumulator.
    fn naive_tcp_checksum(src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) -> u16 {
        let mut s: u32 = 0;
        let mut add = |bytes: &[u8]| {
            for pair in bytes.chunks(2) {
                s += u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
            }
        };
        add(&src.octets());
        add(&dst.octets());
        add(&[0, 6]);
        add(&(segment.len() as u16).to_be_bytes());
        add(&segment[..16]);
        add(&segment[18..]);
        while s > 0xFFFF {
            s = (s & 0xFFFF) + (s >> 16);
        }
        !(s as u16)
    }

    fn sack(blocks: &[(u32, u32)]) -> TcpOptions {
        let mut o = TcpOptions { sack_len: blocks.len() as u8, ..TcpOptions::default() };
        for (b, &(left, right)) in o.sack_blocks.iter_mut().zip(blocks) {
            *b = SackBlock { left, right };
        }
        o
    }

    fn syn_options(tsval: u32, sack_permitted: bool) -> TcpOptions {
        TcpOptions {
            mss: Some(1460),
            window_scale: Some(10),
            sack_permitted,
            timestamp: Some((tsval, 0)),
            ..TcpOptions::default()
        }
    }

    #[test]
    fn parse_linux_syn() {
        let p = packet(&SYN);
        assert_eq!((p.src_port(), p.dst_port(), p.seq_number(), p.ack_number()), (40000, 7777, 1_077_006_964, 0));
        assert_eq!(
            (p.header_len(), p.flags(), p.window_len(), p.checksum(), p.urgent_at()),
            (40, 0x02, 64240, 0x0946, 0)
        );
        assert_eq!(p.options(), &SYN[20..]);
        assert!(p.payload().is_empty());
        let r = parse(&SYN);
        assert_eq!(
            r,
            TcpRepr {
                src_port: 40000,
                dst_port: 7777,
                seq: 1_077_006_964,
                ack: 0,
                flags: flags::SYN,
                window: 64240,
                urgent: 0,
                options: syn_options(TSVAL_A, true),
                payload_len: 0,
            }
        );
        assert_eq!((r.header_len(), r.buffer_len(), r.seg_len()), (40, 40, 1));
    }

    #[test]
    fn parse_linux_handshake_and_data() {
        let r = parse(&SYN_ACK);
        assert_eq!((r.src_port, r.dst_port, r.seq, r.ack), (7777, 40000, 1_352_435_544, 1_077_006_965));
        assert_eq!((r.flags, r.window, r.seg_len()), (flags::SYN | flags::ACK, 65160, 1));
        assert_eq!(r.options, TcpOptions { timestamp: Some((TSVAL_B, TSVAL_A)), ..syn_options(0, true) });
        let r = parse(&ACK);
        assert_eq!(
            (r.seq, r.ack, r.flags, r.window, r.payload_len, r.seg_len()),
            (1_077_006_965, 1_352_435_545, flags::ACK, 63, 0, 0)
        );
        assert_eq!(r.options, TcpOptions { timestamp: Some((TSVAL_A, TSVAL_B)), ..TcpOptions::default() });
        let r = parse(&DATA);
        assert_eq!((r.flags, r.payload_len, r.seg_len(), r.header_len()), (flags::PSH | flags::ACK, 15, 15, 32));
        assert_eq!(packet(&DATA).payload(), b"hello, xsknet!\n");
        assert_eq!(r.options, parse(&ACK).options);
    }

    #[test]
    fn parse_linux_syn_option_layouts() {
        assert_eq!(parse(&SYN_NO_TS).options, TcpOptions { timestamp: None, ..syn_options(0, true) });
        assert_eq!(parse(&SYN_NO_SACK).options, syn_options(0xde03_9e34, false));
        assert_eq!(
            parse(&SYN_BARE).options,
            TcpOptions { mss: Some(1460), window_scale: Some(10), ..TcpOptions::default() }
        );
    }

    #[test]
    fn parse_linux_sack() {
        let r = parse(&SACK_ACK_1);
        assert_eq!((r.seq, r.ack, r.flags, r.window, r.payload_len), (0xa225_2087, 1001, flags::ACK, 64, 0));
        assert_eq!(r.options, TcpOptions { timestamp: Some((0xc488_860e, 2)), ..sack(&[(1001 + 1000, 1101 + 1000)]) });
        let r = parse(&SACK_ACK_2);
        assert_eq!(r.header_len(), 52);
        assert_eq!(r.options, TcpOptions { timestamp: Some((0xc488_8651, 2)), ..sack(&[(4001, 4101), (2001, 2101)]) });
        assert_eq!(r.options.sack_blocks(), &r.options.sack_blocks[..2]);
    }

    #[test]
    fn seg_len_counts_syn_and_fin() {
        let r = TcpRepr { payload_len: 100, ..TcpRepr::default() };
        assert_eq!(r.seg_len(), 100);
        assert_eq!(TcpRepr { flags: flags::SYN | flags::FIN, ..r }.seg_len(), 102);
        assert_eq!(TcpRepr { flags: flags::FIN | flags::ACK, ..r }.seg_len(), 101);
        assert_eq!(TcpRepr { flags: flags::RST | flags::PSH | flags::URG, ..r }.seg_len(), 100);
    }

    #[test]
    fn check_accepts() {
        // Header only, data offset 5.
        let mut bare = [0u8; 20];
        bare[12] = 0x50;
        assert!(TcpPacket::new_checked(&bare[..]).is_ok());
        // Data offset exactly the buffer, with options; and with payload after it.
        assert!(TcpPacket::new_checked(&SYN[..]).is_ok());
        assert!(TcpPacket::new_checked(&DATA[..]).is_ok());
        // Data offset 15: 60 bytes of header.
        let mut max = [0u8; 60];
        max[12] = 0xF0;
        assert_eq!(TcpPacket::new_checked(&max[..]).unwrap().options().len(), 40);
        // The reserved bits and flags do not matter.
        let mut odd = bare;
        odd[12] = 0x5F;
        odd[13] = 0xFF;
        assert!(TcpPacket::new_checked(&odd[..]).is_ok());
    }

    #[test]
    fn check_rejects() {
        // Shorter than the fixed header.
        for len in 0..HEADER_LEN {
            assert_eq!(TcpPacket::new_checked(&DATA[..len]).err(), Some(TcpError::Short), "len {len}");
        }
        // Data offset below 5, whatever the buffer.
        for doff in 0..5u8 {
            let mut d = DATA;
            d[12] = doff << 4;
            assert_eq!(TcpPacket::new_checked(&d[..]).err(), Some(TcpError::Short), "doff {doff}");
        }
        // Data offset beyond the buffer: a cut SYN, or doff 15 over 47 bytes.
        for len in HEADER_LEN..SYN.len() {
            assert_eq!(TcpPacket::new_checked(&SYN[..len]).err(), Some(TcpError::Short), "len {len}");
        }
        let mut d = DATA;
        d[12] = 0xF0;
        assert_eq!(TcpPacket::new_checked(&d[..]).err(), Some(TcpError::Short));
        d[12] = 0xB0; // 44 bytes of header in 47
        assert!(TcpPacket::new_checked(&d[..]).is_ok());
    }

    #[test]
    fn unchecked_views_do_not_panic_past_the_fixed_header() {
        let mut d = DATA;
        d[12] = 0x10; // doff 1
        let p = TcpPacket::new_unchecked(&d[..]);
        assert_eq!((p.header_len(), p.options(), p.payload()), (4, &[][..], &[][..]));
        let p = TcpPacket::new_unchecked(&SYN[..30]);
        assert_eq!((p.options(), p.payload()), (&[][..], &[][..]));
        assert!(!p.verify_checksum(A, B));
    }

    #[test]
    fn checksums_of_linux_segments() {
        for (seg, src, dst) in [
            (&SYN[..], A, B),
            (&SYN_ACK, B, A),
            (&ACK, A, B),
            (&DATA, A, B),
            (&SYN_NO_TS, A, B),
            (&SYN_NO_SACK, A, B),
            (&SYN_BARE, A, B),
            (&SACK_ACK_1, B, C),
            (&SACK_ACK_2, B, C),
        ] {
            let p = packet(seg);
            assert!(p.verify_checksum(src, dst));
            assert_eq!(naive_tcp_checksum(src, dst, seg), p.checksum());
            // fill_checksum writes the same value back over a damaged field.
            let mut copy = seg.to_vec();
            let mut m = TcpPacket::new_unchecked(&mut copy[..]);
            m.set_checksum(0xBEEF);
            m.fill_checksum(src, dst);
            assert_eq!(copy, seg);
        }
    }

    #[test]
    fn reject_bad_checksum() {
        for i in 0..DATA.len() {
            let mut d = DATA;
            d[i] ^= 0x01;
            assert!(!TcpPacket::new_unchecked(&d[..]).verify_checksum(A, B), "byte {i}");
        }
        assert!(!packet(&DATA).verify_checksum(A, Ipv4Addr::new(10, 0, 0, 3)));
        // Cut or extended: the pseudo-header length changes.
        assert!(!TcpPacket::new_unchecked(&DATA[..46]).verify_checksum(A, B));
        let mut longer = DATA.to_vec();
        longer.extend_from_slice(&[0, 0]);
        assert!(!TcpPacket::new_unchecked(&longer[..]).verify_checksum(A, B));
        // A zero field is not "no checksum".
        let mut d = DATA;
        d[16] = 0;
        d[17] = 0;
        assert!(!TcpPacket::new_unchecked(&d[..]).verify_checksum(A, B));
    }

    #[test]
    fn emit_matches_linux_segments() {
        for (seg, src, dst) in [
            (&SYN[..], A, B),
            (&SYN_ACK, B, A),
            (&ACK, A, B),
            (&DATA, A, B),
            (&SYN_NO_TS, A, B),
            (&SYN_NO_SACK, A, B),
            (&SYN_BARE, A, B),
            (&SACK_ACK_1, B, C),
            (&SACK_ACK_2, B, C),
        ] {
            let repr = parse(seg);
            assert_eq!(repr.buffer_len(), seg.len());
            let mut out = vec![0xA5u8; seg.len()];
            out[repr.header_len()..].copy_from_slice(&seg[repr.header_len()..]);
            repr.emit(&mut TcpPacket::new_unchecked(&mut out[..]), src, dst);
            assert_eq!(out, seg);
        }
    }

    #[test]
    fn emit_options_byte_exact() {
        let mut buf = [0u8; MAX_OPTIONS_LEN];
        for (o, bytes) in [
            (syn_options(TSVAL_A, true), &SYN[20..]),
            (TcpOptions { timestamp: None, ..syn_options(0, true) }, &SYN_NO_TS[20..]),
            (syn_options(0xde03_9e34, false), &SYN_NO_SACK[20..]),
            (TcpOptions { mss: Some(1460), window_scale: Some(10), ..TcpOptions::default() }, &SYN_BARE[20..]),
            (TcpOptions { timestamp: Some((TSVAL_A, TSVAL_B)), ..TcpOptions::default() }, &ACK[20..]),
        ] {
            assert_eq!(o.len(), bytes.len());
            assert_eq!(o.emit(&mut buf), bytes.len());
            assert_eq!(&buf[..bytes.len()], bytes);
        }
        // SACK-permitted alone, window scale alone, nothing.
        let o = TcpOptions { sack_permitted: true, ..TcpOptions::default() };
        assert_eq!((o.emit(&mut buf), &buf[..4]), (4, &[1, 1, 4, 2][..]));
        let o = TcpOptions { window_scale: Some(7), ..TcpOptions::default() };
        assert_eq!((o.emit(&mut buf), &buf[..4]), (4, &[1, 3, 3, 7][..]));
        assert_eq!(TcpOptions::default().emit(&mut buf), 0);
        assert!(TcpOptions::default().is_empty());
    }

    #[test]
    fn emit_sack_blocks() {
        let mut buf = [0u8; MAX_OPTIONS_LEN];
        // One block after timestamps: `01 01 08 0a ...` then `01 01 05 0a left right`.
        let o = TcpOptions { timestamp: Some((1, 2)), ..sack(&[(0x0102_0304, 0x0506_0708)]) };
        assert_eq!(o.emit(&mut buf), 24);
        assert_eq!(buf[..24], [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1, 5, 10, 1, 2, 3, 4, 5, 6, 7, 8]);
        // Four blocks fit without timestamps (36 bytes), three beside them (40).
        let four = sack(&[(1, 2), (3, 4), (5, 6), (7, 8)]);
        assert_eq!((four.len(), four.emit(&mut buf)), (36, 36));
        assert_eq!(buf[..4], [1, 1, 5, 34]);
        assert_eq!(opts(&buf[..36], false), four);
        let with_ts = TcpOptions { timestamp: Some((9, 10)), ..four };
        assert_eq!((with_ts.len(), with_ts.emit(&mut buf)), (40, 40));
        assert_eq!(buf[12..16], [1, 1, 5, 26]);
        let back = opts(&buf, false);
        assert_eq!((back.sack_blocks(), back.timestamp), (&four.sack_blocks[..3], Some((9, 10))));
        // With every SYN option too there is room for two.
        let crowded = TcpOptions { mss: Some(1), window_scale: Some(1), sack_permitted: true, ..with_ts };
        assert_eq!(crowded.len(), 40);
        let n = crowded.emit(&mut buf);
        assert_eq!(opts(&buf[..n], false).sack_len, 2);
        // sack_len above 4 is read as 4.
        assert_eq!(TcpOptions { sack_len: 9, ..four }.len(), 36);
    }

    #[test]
    fn options_round_trip() {
        let mut buf = [0u8; MAX_OPTIONS_LEN];
        let syn_cases = [
            syn_options(7, true),
            syn_options(7, false),
            TcpOptions { mss: Some(536), ..TcpOptions::default() },
            TcpOptions { window_scale: Some(14), sack_permitted: true, ..TcpOptions::default() },
            TcpOptions::default(),
        ];
        for o in syn_cases {
            let n = o.emit(&mut buf);
            assert!(n.is_multiple_of(4) && n == o.len());
            assert_eq!(opts(&buf[..n], true), o);
        }
        for o in [sack(&[(10, 20)]), TcpOptions { timestamp: Some((u32::MAX, 0)), ..sack(&[(1, 2), (3, 4)]) }] {
            let n = o.emit(&mut buf);
            assert_eq!(opts(&buf[..n], false), o);
        }
    }

    #[test]
    fn eol_ends_the_list() {
        let o = opts(&[2, 4, 5, 0xb4, 0, 1, 3, 3, 7, 0, 0, 0], true);
        assert_eq!(o, TcpOptions { mss: Some(1460), ..TcpOptions::default() });
        assert_eq!(opts(&[0, 2, 4, 5, 0xb4], true), TcpOptions::default());
    }

    #[test]
    fn nops_are_skipped() {
        let o = opts(&[1, 1, 1, 1, 1, 3, 3, 9, 1, 1, 1, 1], true);
        assert_eq!(o.window_scale, Some(9));
    }

    #[test]
    fn malformed_length_stops_but_keeps_earlier_options() {
        let ws = TcpOptions { window_scale: Some(7), ..TcpOptions::default() };
        // Length 0 and 1 ("silly options"), then an MSS that is never read.
        for silly in [0u8, 1] {
            assert_eq!(opts(&[1, 3, 3, 7, 8, silly, 2, 4, 5, 0xb4], true), ws, "length {silly}");
        }
        // Length past the end ("don't parse partial options").
        assert_eq!(opts(&[1, 3, 3, 7, 2, 8, 5, 0xb4], true), ws);
        // A kind as the last byte, with no length byte.
        assert_eq!(opts(&[1, 3, 3, 7, 2], true), ws);
        // Length exactly to the end is fine.
        assert_eq!(opts(&[1, 3, 3, 7, 0xfe, 4, 0, 0], true), ws);
    }

    #[test]
    fn wrong_length_is_skipped_by_its_length() {
        // MSS of length 6 and 3, then a good window scale after each.
        assert_eq!(
            opts(&[2, 6, 5, 0xb4, 0, 0, 3, 3, 7], true),
            TcpOptions { window_scale: Some(7), ..Default::default() }
        );
        assert_eq!(opts(&[2, 3, 5, 3, 3, 7], true).mss, None);
        assert_eq!(opts(&[2, 3, 5, 3, 3, 7], true).window_scale, Some(7));
        // Window scale of length 4, SACK-permitted of length 3, timestamps of length 8.
        let o = opts(&[3, 4, 7, 7, 4, 3, 0, 8, 8, 0, 0, 0, 1, 0, 0, 2, 4, 5, 0xb4], true);
        assert_eq!(o, TcpOptions { mss: Some(1460), ..TcpOptions::default() });
        // SACK lengths that are not 2 + 8n, or below one block.
        for len in [2u8, 3, 9, 11, 17, 19] {
            let mut b = vec![5, len];
            b.resize(usize::from(len), 0);
            b.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
            let o = opts(&b, false);
            assert_eq!((o.sack_len, o.timestamp), (0, Some((1, 2))), "length {len}");
        }
    }

    #[test]
    fn unknown_kinds_are_skipped_by_length() {
        // MD5 (19, 18 bytes), Fast Open (34), MPTCP (30), experimental (254), kind 99.
        let mut b = vec![19, 18];
        b.extend_from_slice(&[0xAA; 16]);
        b.extend_from_slice(&[34, 2, 30, 4, 0, 0, 254, 4, 0xf9, 0x89, 99, 3, 0xFF, 2, 4, 2, 0x18]);
        assert_eq!(opts(&b, true), TcpOptions { mss: Some(536), ..TcpOptions::default() });
    }

    #[test]
    fn window_scale_capped_at_14() {
        for (shift, expect) in [(0u8, 0u8), (13, 13), (14, 14), (15, 14), (200, 14), (255, 14)] {
            assert_eq!(opts(&[1, 3, 3, shift], true).window_scale, Some(expect), "shift {shift}");
        }
    }

    #[test]
    fn syn_only_options_ignored_without_syn() {
        assert_eq!(opts(&SYN[20..], false), TcpOptions { timestamp: Some((TSVAL_A, 0)), ..TcpOptions::default() });
        assert_eq!(opts(&[2, 4, 5, 0xb4], false).mss, None);
        assert_eq!(opts(&[1, 3, 3, 7], false).window_scale, None);
        assert!(!opts(&[1, 1, 4, 2], false).sack_permitted);
        // ... and so is a SYN-ACK's MSS read as a SYN: the SYN bit is what counts.
        assert_eq!(parse(&SYN_ACK).options.mss, Some(1460));
    }

    #[test]
    fn zero_mss_is_ignored() {
        assert_eq!(opts(&[2, 4, 0, 0], true).mss, None);
        assert_eq!(opts(&[2, 4, 5, 0xb4, 2, 4, 0, 0], true).mss, Some(1460));
    }

    #[test]
    fn sack_ignored_on_syn() {
        let b = [1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        assert_eq!(opts(&b, false).sack_blocks(), &[SackBlock { left: 1, right: 2 }]);
        assert_eq!(opts(&b, true), TcpOptions::default());
    }

    #[test]
    fn later_option_replaces_earlier() {
        let b = [
            1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, //
            1, 1, 5, 10, 0, 0, 0, 9, 0, 0, 0, 10,
        ];
        assert_eq!(opts(&b, false), sack(&[(9, 10)]));
        assert_eq!(opts(&[3, 3, 1, 3, 3, 2], true).window_scale, Some(2));
    }

    #[test]
    fn timestamps_on_any_segment() {
        let b = [1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6];
        assert_eq!(opts(&b, false).timestamp, Some((5, 6)));
        assert_eq!(opts(&b, true).timestamp, Some((5, 6)));
    }

    #[test]
    fn setters_and_getters() {
        let mut d = [0u8; 32];
        let mut p = TcpPacket::new_unchecked(&mut d[..]);
        p.set_header_len(28);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_seq_number(0xFFFF_FFFF);
        p.set_ack_number(0x8000_0001);
        p.set_flags(flags::URG | flags::ECE | flags::CWR);
        p.set_window_len(0xFFFE);
        p.set_urgent_at(77);
        p.options_mut().copy_from_slice(&[2, 4, 0x05, 0xdc, 1, 1, 1, 0]);
        p.payload_mut().copy_from_slice(b"tcp!");
        p.fill_checksum(A, B);
        let p = TcpPacket::new_checked(&d[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.seq_number(), p.ack_number()), (1, 2, 0xFFFF_FFFF, 0x8000_0001));
        assert_eq!((p.header_len(), p.flags(), p.window_len(), p.urgent_at()), (28, 0xE0, 0xFFFE, 77));
        assert_eq!((p.options(), p.payload()), (&[2, 4, 0x05, 0xdc, 1, 1, 1, 0][..], &b"tcp!"[..]));
        assert!(p.verify_checksum(A, B));
        assert_eq!(p.checksum(), naive_tcp_checksum(A, B, &d));
        assert_eq!(TcpOptions::parse(TcpPacket::new_checked(&d[..]).unwrap().options(), true).mss, Some(1500));
        // set_header_len keeps the reserved bits.
        let mut e = [0u8; 20];
        e[12] = 0x03;
        TcpPacket::new_unchecked(&mut e[..]).set_header_len(20);
        assert_eq!(e[12], 0x53);
        assert_eq!(TcpPacket::new_unchecked(&e[..]).into_inner().len(), 20);
    }

    #[test]
    fn emit_cross_checked_every_length() {
        let mut buf = [0u8; 60 + 300];
        let mut x: u32 = 0x1234_5678;
        for payload_len in 0..300usize {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let options = match payload_len % 4 {
                0 => TcpOptions::default(),
                1 => syn_options(x, true),
                2 => TcpOptions { timestamp: Some((x, !x)), ..sack(&[(x, x ^ 1), (2, 3)]) },
                _ => sack(&[(1, 2), (3, 4), (5, 6), (7, 8)]),
            };
            let syn = payload_len % 4 == 1;
            let repr = TcpRepr {
                src_port: x as u16,
                dst_port: (x >> 16) as u16,
                seq: x,
                ack: x.rotate_left(5),
                flags: if syn { flags::SYN } else { flags::ACK | (x as u8 & flags::PSH) },
                window: (x >> 8) as u16,
                urgent: 0,
                options,
                payload_len,
            };
            let hl = repr.header_len();
            for b in &mut buf[hl..hl + payload_len] {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *b = (x >> 24) as u8;
            }
            let (src, dst) = (Ipv4Addr::from(x), Ipv4Addr::from(x.rotate_left(7)));
            let seg = &mut buf[..repr.buffer_len()];
            repr.emit(&mut TcpPacket::new_unchecked(&mut seg[..]), src, dst);
            let p = TcpPacket::new_checked(&seg[..]).unwrap();
            assert!(p.verify_checksum(src, dst), "len {payload_len}");
            assert_eq!(p.checksum(), naive_tcp_checksum(src, dst, seg));
            assert_eq!(TcpRepr::parse(&p), repr, "len {payload_len}");
        }
    }

    #[test]
    fn emit_checksums_only_the_segment() {
        // A buffer longer than the segment: the checksum covers header + payload_len bytes.
        let repr = parse(&DATA);
        let mut buf = [0xFFu8; 64];
        buf[32..47].copy_from_slice(b"hello, xsknet!\n");
        repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), A, B);
        assert_eq!(buf[..47], DATA);
    }

    #[test]
    fn every_prefix_and_mutation_is_ok_or_err() {
        for seg in [&SYN[..], &SYN_ACK, &ACK, &DATA, &SYN_NO_TS, &SYN_NO_SACK, &SYN_BARE, &SACK_ACK_1, &SACK_ACK_2] {
            for len in 0..=seg.len() {
                let p = TcpPacket::new_unchecked(&seg[..len]);
                let _ = p.verify_checksum(A, B);
                if p.check().is_ok() {
                    assert_eq!(TcpRepr::parse(&p).payload_len, len - p.header_len());
                }
                let _ = (p.options(), p.payload());
            }
        }
        // Random option bytes, every SYN bit: parse never panics and emit of what it read
        // parses back to the same.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut buf = [0u8; MAX_OPTIONS_LEN];
        let mut out = [0u8; MAX_OPTIONS_LEN];
        for i in 0..50_000 {
            let len = (i % 41) as usize;
            for b in &mut buf[..len] {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Mostly small kinds and lengths, so that real options turn up.
                *b = if state.is_multiple_of(3) { (state >> 8) as u8 } else { (state >> 8) as u8 % 11 };
            }
            let syn = i % 2 == 0;
            let o = opts(&buf[..len], syn);
            assert!(o.window_scale.is_none_or(|s| s <= MAX_WSCALE));
            assert!(o.sack_len <= 4 && (o.sack_len == 0 || !syn));
            let n = o.emit(&mut out);
            let back = opts(&out[..n], syn);
            if o.sack_len <= 3 || o.timestamp.is_none() {
                assert_eq!(back, o, "{:?}", &buf[..len]);
            }
        }
    }

    #[test]
    fn log_rate_limit() {
        let l = LogRateLimit::new();
        let allowed = (0..25).filter(|_| l.allow(1000)).count();
        assert_eq!(allowed, 10);
        assert!(!l.allow(1004));
        assert!(l.allow(1005));
        assert_eq!((0..20).filter(|_| l.allow(1006)).count(), 9);
    }

    #[test]
    fn error_display() {
        assert!(TcpError::Short.to_string().contains("TCP"));
    }
}
