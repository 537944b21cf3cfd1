//! Flood frames: the attack traffic `xsknet pktgen --flood MODE` sends, each
//! mode built once per UMEM frame and patched per packet from a fast PRNG.
//!
//! This owns stage 1 of the path in `docs/architecture.md` ("a peer sends")
//! when the peer is hostile: what reaches the receiver's XDP program and
//! softirq during a flood. What each mode sends (offsets in the Ethernet
//! frame; every frame is `--size` bytes, shorter packets padded with zeros as
//! a NIC pads to the Ethernet minimum):
//!
//! | mode | frame |
//! |---|---|
//! | `udp` | IPv4/UDP to `--dst-port`, random source port, payload of random bytes (different in every UMEM frame); both checksums right |
//! | `udp-closed` | the same to a random destination port of `--dst-ports` (never `--dst-port`) |
//! | `bad-csum` | the `udp` frame with a wrong IPv4 header checksum (the right one XOR [`BAD_CSUM_XOR`]); the UDP checksum right |
//! | `bad-len` | the `udp` frame whose IPv4 `tot_len` claims [`BAD_LEN_EXCESS`] bytes more than the frame carries (header checksum right for that length); the UDP header is the one the bytes present make (length and checksum right for them) |
//! | `arp` | an ARP request "who has `--dst`", broadcast; with `--spoof`, sender address random in the prefix and sender MAC random (locally administered unicast), in the ARP body and the Ethernet source alike |
//! | `icmp` | ICMP echo request (RFC 792), random identifier, sequence number counting up, random payload; checksums right |
//! | `syn`, `ack`, `rst` | a 20-byte TCP header (no options, no payload) to `--dst-port` from a random source port, random sequence number (and acknowledgment number for `ack`), flags SYN, ACK or RST alone; checksums right |
//!
//! IPv4 headers are 20 bytes, TTL 64, DF, identification 0. The source
//! address is `--src`, or with `--spoof PREFIX` a random address of the
//! prefix per frame; the Ethernet source is the interface's MAC for IPv4 (a
//! spoofer on one link keeps its own), per sender for ARP.
//!
//! Per packet nothing is summed over the frame again: the patch reads the
//! fields it replaces from the frame, writes the new ones, and updates each
//! checksum by the difference (RFC 1624 eqn. 3, `HC' = ~(~HC + ~m + m')`,
//! with 32-bit fields taken whole: a 32-bit word is congruent to the sum of
//! its two 16-bit words modulo 0xFFFF, and `!x` of a `u32` to `-x`). So every
//! UMEM frame may carry its own payload and no per-frame state is kept.
//! Random numbers come from wyrand (one multiply per 64 bits), seeded by
//! `--seed`.

use std::net::Ipv4Addr;

use serde::Serialize;
use xsknet::wire::arp::{self, ArpOperation, ArpRepr};
use xsknet::wire::checksum;
use xsknet::wire::ethernet::{self, ethertype, EthernetFrame, EthernetRepr};
use xsknet::wire::icmp::{self, msg_type, IcmpPacket, IcmpRepr};
use xsknet::wire::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use xsknet::wire::tcp::{self, flags, TcpOptions, TcpPacket, TcpRepr};
use xsknet::wire::udp::{self, UdpPacket, UdpRepr};
use xsknet::wire::EthernetAddress;

use super::frame::{self, MIN_FRAME_LEN};

/// `--flood MODE`: what the generator sends (see the module docs for each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FloodMode {
    /// UDP to `--dst-port` with random payloads.
    Udp,
    /// UDP to random ports of `--dst-ports`.
    UdpClosed,
    /// IPv4 with a wrong header checksum (UDP inside).
    BadCsum,
    /// IPv4 whose total length runs past the frame (UDP inside).
    BadLen,
    /// ARP requests for `--dst`.
    Arp,
    /// ICMP echo requests.
    Icmp,
    /// TCP SYN to `--dst-port`.
    Syn,
    /// TCP ACK to `--dst-port`.
    Ack,
    /// TCP RST to `--dst-port`.
    Rst,
    /// Good and malformed frames interleaved, for the soak (`super::mix`; not a flood
    /// [`FloodPatcher`] builds, and not in [`FloodMode::ALL`]).
    Mix,
}

impl FloodMode {
    /// Every mode, in the order of the docs.
    pub const ALL: [FloodMode; 9] = [
        FloodMode::Udp,
        FloodMode::UdpClosed,
        FloodMode::BadCsum,
        FloodMode::BadLen,
        FloodMode::Arp,
        FloodMode::Icmp,
        FloodMode::Syn,
        FloodMode::Ack,
        FloodMode::Rst,
    ];

    /// The name on the command line (`udp-closed`, …).
    pub fn name(self) -> &'static str {
        match self {
            FloodMode::Udp => "udp",
            FloodMode::UdpClosed => "udp-closed",
            FloodMode::BadCsum => "bad-csum",
            FloodMode::BadLen => "bad-len",
            FloodMode::Arp => "arp",
            FloodMode::Icmp => "icmp",
            FloodMode::Syn => "syn",
            FloodMode::Ack => "ack",
            FloodMode::Rst => "rst",
            FloodMode::Mix => "mix",
        }
    }

    /// Whether the frames carry UDP (all four UDP-based modes).
    fn is_udp(self) -> bool {
        matches!(self, FloodMode::Udp | FloodMode::UdpClosed | FloodMode::BadCsum | FloodMode::BadLen)
    }

    /// Whether the frames carry TCP.
    fn is_tcp(self) -> bool {
        matches!(self, FloodMode::Syn | FloodMode::Ack | FloodMode::Rst)
    }

    /// The TCP flags of the mode (0 for the others).
    pub fn tcp_flags(self) -> u8 {
        match self {
            FloodMode::Syn => flags::SYN,
            FloodMode::Ack => flags::ACK,
            FloodMode::Rst => flags::RST,
            _ => 0,
        }
    }
}

/// XOR applied to the right IPv4 header checksum in `bad-csum` frames. Any
/// non-zero value below 0xFFFF makes the checksum wrong: the difference it
/// makes is never a multiple of 0xFFFF (RFC 1071's two zeros).
pub const BAD_CSUM_XOR: u16 = 0x5A5A;
/// Bytes a `bad-len` frame's IPv4 `tot_len` claims beyond what the frame carries.
pub const BAD_LEN_EXCESS: usize = 256;
/// Source ports are random in this range (the ephemeral ports of a client).
pub const SRC_PORTS: (u16, u16) = (1024, 65535);
/// Default `--dst-ports` of `udp-closed`.
pub const DEFAULT_DST_PORTS: (u16, u16) = (1024, 65535);
/// Window of SYN and ACK segments (Linux's initial receive window for MSS 1460).
pub const TCP_WINDOW: u16 = 64240;

/// Offsets in the frame.
const IP: usize = frame::IP_OFFSET;
/// The transport header: UDP's offset in the generator's frames, TCP's and ICMP's alike.
const L4: usize = frame::UDP_OFFSET;
use frame::{IP_CSUM, IP_SRC};
const PORT_SRC: usize = L4; // UDP and TCP alike
const PORT_DST: usize = L4 + 2;
const UDP_CSUM: usize = L4 + udp::field::CHECKSUM.start;
const TCP_SEQ: usize = L4 + tcp::field::SEQ_NUM.start;
const TCP_ACK: usize = L4 + tcp::field::ACK_NUM.start;
const TCP_CSUM: usize = L4 + tcp::field::CHECKSUM.start;
const ICMP_CSUM: usize = L4 + 2;
const ICMP_IDENT: usize = L4 + 4;
const ICMP_SEQ: usize = L4 + 6;
/// Where the random payload starts (UDP and ICMP both have 8-byte headers).
pub const PAYLOAD_AT: usize = L4 + 8;
const ARP_SHA: usize = IP + 8;
const ARP_SPA: usize = IP + 14;
const ETH_SRC: usize = 6;
/// Every patched field ends before this: the patch works on a fixed array.
const PATCHED_END: usize = 60;
const _: () = assert!(PATCHED_END == MIN_FRAME_LEN && ARP_SPA + 4 <= PATCHED_END && PAYLOAD_AT <= PATCHED_END);

/// wyrand (Wang Yi's PRNG, as in `wyhash.h`): a 64-bit counter mixed by one
/// 64×64→128 multiply. Fast, good enough to scatter addresses and ports, not
/// for secrets.
#[derive(Clone, Debug)]
pub struct WyRand(u64);

impl WyRand {
    /// A generator seeded with `seed` (any value, 0 included).
    pub fn new(seed: u64) -> WyRand {
        WyRand(seed)
    }

    /// The next 64 random bits.
    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xA076_1D64_78BD_642F);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xE703_7ED1_A0B4_28DB);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

/// An IPv4 prefix (`--spoof 10.66.0.0/16`): the network address (host bits
/// cleared) and the length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    /// The network address, host bits zero.
    pub net: Ipv4Addr,
    /// The prefix length, 0 to 32.
    pub len: u8,
}

impl Prefix {
    /// Parses `ADDR/LEN`; host bits in `ADDR` are cleared.
    ///
    /// # Errors
    /// A message for a missing `/`, a bad address or a length above 32.
    pub fn parse(s: &str) -> Result<Prefix, String> {
        let (a, l) = s.split_once('/').ok_or_else(|| format!("{s}: expected a prefix like 10.66.0.0/16"))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| format!("{a}: not an IPv4 address"))?;
        let len: u8 =
            l.parse().ok().filter(|l| *l <= 32).ok_or_else(|| format!("{l}: prefix length must be 0 to 32"))?;
        Ok(Prefix { net: Ipv4Addr::from(u32::from(addr) & Self::mask_of(len)), len })
    }

    fn mask_of(len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len))
        }
    }

    /// The network mask (`/16` → 0xFFFF0000).
    pub fn mask(&self) -> u32 {
        Self::mask_of(self.len)
    }

    /// Whether `a` is inside the prefix.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask() == u32::from(self.net)
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.len)
    }
}

/// Parses `LO-HI` (`--dst-ports`), 1 ≤ LO ≤ HI ≤ 65535; a single `PORT` is `PORT-PORT`.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    let port = |p: &str| -> Result<u16, String> {
        p.trim().parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("{p}: expected a port from 1 to 65535"))
    };
    let (lo, hi) = (port(lo)?, port(hi)?);
    if lo > hi {
        return Err(format!("{s}: the range's low end is above its high end"));
    }
    Ok((lo, hi))
}

/// A port of `lo..=hi` from 16 random bits (multiply and shift; the bias is
/// below 1/65536 per port).
#[inline(always)]
fn port_in(lo: u16, hi: u16, r: u16) -> u16 {
    let span = u32::from(hi - lo) + 1;
    lo + ((u32::from(r) * span) >> 16) as u16
}

/// What stays the same in every frame of a flood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloodSpec {
    /// What to send.
    pub mode: FloodMode,
    /// The interface's MAC (the Ethernet source of IPv4 frames; of ARP too without `spoof`).
    pub src_mac: EthernetAddress,
    /// The destination's MAC (ARP goes to broadcast).
    pub dst_mac: EthernetAddress,
    /// `--src`: the source without `spoof`.
    pub src_ip: Ipv4Addr,
    /// `--dst`: the target (of ARP requests too).
    pub dst_ip: Ipv4Addr,
    /// `--dst-port`: the port of `udp`, `bad-*` and TCP modes; never hit by `udp-closed`.
    pub dst_port: u16,
    /// `udp-closed`'s destination ports, inclusive.
    pub dst_ports: (u16, u16),
    /// `--spoof`: sources random in this prefix; `None`: every frame from `src_ip`.
    pub spoof: Option<Prefix>,
    /// Ethernet frame length without FCS, [`MIN_FRAME_LEN`]..=[`MAX_FRAME_LEN`].
    pub len: usize,
}

impl FloodSpec {
    /// Checks what the frames need.
    ///
    /// # Errors
    /// A message naming the option at fault.
    pub fn check(&self) -> Result<(), String> {
        frame::FrameSpec::check_len(self.len)?;
        let (lo, hi) = self.dst_ports;
        if lo == 0 || lo > hi {
            return Err(format!("--dst-ports {lo}-{hi}: must be LO-HI with 1 <= LO <= HI <= 65535"));
        }
        if self.mode == FloodMode::UdpClosed && lo == hi && lo == self.dst_port {
            return Err(format!("--dst-ports {lo}-{hi} holds only --dst-port {lo}, which udp-closed avoids"));
        }
        if self.dst_port == 0 {
            return Err("--dst-port 0: pick a port from 1 to 65535".into());
        }
        Ok(())
    }
}

/// What varies from frame to frame; [`FloodPatcher::draw`] picks it, the
/// patch and [`write_flood_frame`] write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloodFields {
    /// IPv4 source; ARP sender address.
    pub src_ip: Ipv4Addr,
    /// UDP/TCP source port; ICMP echo identifier.
    pub src_port: u16,
    /// UDP/TCP destination port; ICMP echo sequence number.
    pub dst_port: u16,
    /// TCP sequence number.
    pub seq: u32,
    /// TCP acknowledgment number (`ack` mode; 0 otherwise).
    pub ack: u32,
    /// ARP sender MAC (and Ethernet source of ARP frames).
    pub sender_mac: EthernetAddress,
}

/// Builds flood frames and patches them per packet.
#[derive(Clone, Debug)]
pub struct FloodPatcher {
    spec: FloodSpec,
    /// Network and host mask of `spoof` (host mask 0 without it).
    net: u32,
    host_mask: u32,
}

impl FloodPatcher {
    /// A patcher for `spec`.
    ///
    /// # Errors
    /// As [`FloodSpec::check`].
    pub fn new(spec: FloodSpec) -> Result<FloodPatcher, String> {
        spec.check()?;
        if spec.mode == FloodMode::Mix {
            return Err("--flood mix is built by pktgen::mix::MixGen, not patched as a flood".into());
        }
        let (net, host_mask) = match spec.spoof {
            Some(p) => (u32::from(p.net), !p.mask()),
            None => (u32::from(spec.src_ip), 0),
        };
        Ok(FloodPatcher { spec, net, host_mask })
    }

    /// The spec.
    pub fn spec(&self) -> &FloodSpec {
        &self.spec
    }

    /// The frame length.
    pub fn len(&self) -> usize {
        self.spec.len
    }

    /// Never empty (for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The fields of packet number `n`, from `rng` (one or two draws).
    #[inline(always)]
    pub fn draw(&self, rng: &mut WyRand, n: u64) -> FloodFields {
        let s = &self.spec;
        let r = rng.next_u64();
        let src_ip = Ipv4Addr::from(self.net | (r as u32 & self.host_mask));
        let r16 = (r >> 32) as u16;
        let r16b = (r >> 48) as u16;
        let mut f = FloodFields {
            src_ip,
            src_port: port_in(SRC_PORTS.0, SRC_PORTS.1, r16),
            dst_port: s.dst_port,
            seq: 0,
            ack: 0,
            sender_mac: s.src_mac,
        };
        match s.mode {
            FloodMode::UdpClosed => {
                let p = port_in(s.dst_ports.0, s.dst_ports.1, r16b);
                // Never the open port: step past it, wrapping inside the range.
                f.dst_port = if p != s.dst_port {
                    p
                } else if p < s.dst_ports.1 {
                    p + 1
                } else {
                    s.dst_ports.0
                };
            }
            FloodMode::Icmp => {
                f.src_port = r16;
                f.dst_port = n as u16;
            }
            FloodMode::Syn | FloodMode::Ack | FloodMode::Rst => {
                let r2 = rng.next_u64();
                f.seq = r2 as u32;
                if s.mode == FloodMode::Ack {
                    f.ack = (r2 >> 32) as u32;
                }
            }
            FloodMode::Arp => {
                if s.spoof.is_some() {
                    let b = rng.next_u64().to_le_bytes();
                    // Locally administered, unicast (IEEE 802: bits 1 and 0 of the first octet).
                    f.sender_mac = EthernetAddress([(b[0] & 0xFC) | 0x02, b[1], b[2], b[3], b[4], b[5]]);
                }
            }
            FloodMode::Udp | FloodMode::BadCsum | FloodMode::BadLen | FloodMode::Mix => {}
        }
        f
    }

    /// Fills a transmit frame at start: random payload bytes, then the whole
    /// frame for fields drawn from `rng` (checksums summed once).
    ///
    /// # Panics
    /// If `buf` is shorter than the frame.
    pub fn init(&self, buf: &mut [u8], rng: &mut WyRand) {
        let len = self.spec.len;
        buf[..len].fill(0);
        if self.spec.mode.is_udp() || self.spec.mode == FloodMode::Icmp {
            rng.fill(&mut buf[PAYLOAD_AT..len]);
        }
        let f = self.draw(rng, 0);
        let payload = buf[PAYLOAD_AT..len].to_vec();
        write_flood_frame(buf, &self.spec, &f, &payload);
    }

    /// Turns a frame that holds a flood frame of this spec (from [`init`] or an
    /// earlier patch) into the one for `f`: writes the varying fields and
    /// updates the checksums by difference. No allocation, no loop.
    ///
    /// [`init`]: FloodPatcher::init
    ///
    /// # Panics
    /// If `frame` is shorter than 60 bytes.
    #[inline]
    pub fn patch(&self, frame: &mut [u8], f: &FloodFields) {
        let b: &mut [u8; PATCHED_END] = (&mut frame[..PATCHED_END]).try_into().expect("frame of at least 60 bytes");
        let mode = self.spec.mode;
        if mode == FloodMode::Arp {
            if self.spec.spoof.is_some() {
                b[ETH_SRC..ETH_SRC + 6].copy_from_slice(&f.sender_mac.0);
                b[ARP_SHA..ARP_SHA + 6].copy_from_slice(&f.sender_mac.0);
                b[ARP_SPA..ARP_SPA + 4].copy_from_slice(&f.src_ip.octets());
            }
            return;
        }
        // The source address: in the IPv4 checksum and the pseudo-header.
        let spoofed = self.host_mask != 0;
        let d_src = if spoofed { swap32(b, IP_SRC, u32::from(f.src_ip)) } else { 0 };
        if spoofed {
            let xor = if mode == FloodMode::BadCsum { BAD_CSUM_XOR } else { 0 };
            let old = get16(b, IP_CSUM) ^ xor;
            put16(b, IP_CSUM, apply(old, d_src) ^ xor);
        }
        if mode == FloodMode::Icmp {
            // No pseudo-header: the source address is not in the ICMP checksum.
            let d = swap16(b, ICMP_IDENT, f.src_port) + swap16(b, ICMP_SEQ, f.dst_port);
            let old = get16(b, ICMP_CSUM);
            put16(b, ICMP_CSUM, apply(old, d));
            return;
        }
        let mut d = d_src + swap16(b, PORT_SRC, f.src_port);
        if mode == FloodMode::UdpClosed {
            d += swap16(b, PORT_DST, f.dst_port);
        }
        if mode.is_tcp() {
            d += swap32(b, TCP_SEQ, f.seq);
            if mode == FloodMode::Ack {
                d += swap32(b, TCP_ACK, f.ack);
            }
            let old = get16(b, TCP_CSUM);
            put16(b, TCP_CSUM, apply(old, d));
        } else {
            let old = get16(b, UDP_CSUM);
            // A computed 0 goes on the wire as 0xFFFF (RFC 768).
            let c = match apply(old, d) {
                0 => 0xFFFF,
                c => c,
            };
            put16(b, UDP_CSUM, c);
        }
    }
}

#[inline(always)]
fn get16(b: &[u8; PATCHED_END], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
fn put16(b: &mut [u8; PATCHED_END], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Writes `new` at `at` and returns `~old + new` for the checksum update.
#[inline(always)]
fn swap16(b: &mut [u8; PATCHED_END], at: usize, new: u16) -> u64 {
    let old = get16(b, at);
    put16(b, at, new);
    u64::from(!old) + u64::from(new)
}

/// The same for a 32-bit field: `!old` as a `u32` is congruent to minus the
/// sum of its two 16-bit words modulo 0xFFFF (0xFFFF_FFFF = 0xFFFF × 0x10001).
#[inline(always)]
fn swap32(b: &mut [u8; PATCHED_END], at: usize, new: u32) -> u64 {
    let old = u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    b[at..at + 4].copy_from_slice(&new.to_be_bytes());
    u64::from(!old) + u64::from(new)
}

/// RFC 1624 eqn. 3 over a whole difference: `~(~HC + Σ(~m + m'))`. The added
/// 0xFFFF (≡ 0) keeps the sum non-zero, so the fold lands in `1..=0xFFFF`
/// exactly as a full recompute's does and the two always agree.
#[inline(always)]
fn apply(old_csum: u16, diff: u64) -> u16 {
    !checksum::fold(u64::from(!old_csum) + diff + 0xFFFF)
}

/// Writes the whole flood frame for `f` with `payload` (the bytes from
/// [`PAYLOAD_AT`] to the end of the frame; used by `udp*`, `bad-*` and `icmp`,
/// ignored by the others, whose frames are padded with zeros), every checksum
/// summed from scratch: the reference the patch is checked against.
///
/// # Panics
/// If `buf` is shorter than the frame or `payload` is not `len - 42` bytes for
/// a mode that carries it.
pub fn write_flood_frame(buf: &mut [u8], spec: &FloodSpec, f: &FloodFields, payload: &[u8]) {
    let len = spec.len;
    let buf = &mut buf[..len];
    buf.fill(0);
    let mode = spec.mode;
    if mode == FloodMode::Arp {
        let pkt = ArpRepr {
            operation: ArpOperation::Request,
            sender_hw: f.sender_mac,
            sender_ip: f.src_ip,
            target_hw: EthernetAddress::default(),
            target_ip: spec.dst_ip,
        };
        let n = frame::write_arp(buf, EthernetAddress::BROADCAST, &pkt);
        debug_assert_eq!(n, ethernet::HEADER_LEN + arp::PACKET_LEN);
        return;
    }
    let eth = EthernetRepr { dst: spec.dst_mac, src: spec.src_mac, ethertype: ethertype::IPV4 };
    eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    let (proto, l4_len) = if mode.is_tcp() {
        (protocol::TCP, tcp::HEADER_LEN)
    } else if mode == FloodMode::Icmp {
        (protocol::ICMP, len - L4)
    } else {
        (protocol::UDP, len - L4)
    };
    let ip = Ipv4Repr {
        src: f.src_ip,
        dst: spec.dst_ip,
        protocol: proto,
        payload_len: l4_len,
        ttl: 64,
        tos: 0,
        ident: 0,
        dont_fragment: true,
        more_fragments: false,
        frag_offset: 0,
    };
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[IP..]));
    if mode.is_tcp() {
        let seg = TcpRepr {
            src_port: f.src_port,
            dst_port: spec.dst_port,
            seq: f.seq,
            ack: f.ack,
            flags: mode.tcp_flags(),
            window: if mode == FloodMode::Rst { 0 } else { TCP_WINDOW },
            urgent: 0,
            options: TcpOptions::default(),
            payload_len: 0,
        };
        seg.emit(&mut TcpPacket::new_unchecked(&mut buf[L4..L4 + tcp::HEADER_LEN]), f.src_ip, spec.dst_ip);
        return;
    }
    buf[PAYLOAD_AT..].copy_from_slice(payload);
    if mode == FloodMode::Icmp {
        let repr = IcmpRepr::echo(msg_type::ECHO_REQUEST, f.src_port, f.dst_port);
        repr.emit(&mut IcmpPacket::new_unchecked(&mut buf[L4..]));
        debug_assert_eq!(icmp::HEADER_LEN, PAYLOAD_AT - L4);
        return;
    }
    let udp = UdpRepr { src_port: f.src_port, dst_port: f.dst_port, payload_len: len - PAYLOAD_AT };
    udp.emit(&mut UdpPacket::new_unchecked(&mut buf[L4..]), f.src_ip, spec.dst_ip);
    match mode {
        FloodMode::BadCsum => {
            let c = get_be16(buf, IP_CSUM) ^ BAD_CSUM_XOR;
            buf[IP_CSUM..IP_CSUM + 2].copy_from_slice(&c.to_be_bytes());
        }
        FloodMode::BadLen => {
            // A header that is right in itself, claiming more than the frame holds.
            let mut ip = Ipv4Packet::new_unchecked(&mut buf[IP..]);
            ip.set_total_len((len - IP + BAD_LEN_EXCESS) as u16);
            ip.fill_checksum();
        }
        _ => {}
    }
}

fn get_be16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

/// The flood part of the setup, in the JSON report.
#[derive(Clone, Debug, Serialize)]
pub struct FloodSetup {
    /// `--flood`, as on the command line (`"udp-closed"`).
    pub mode: FloodMode,
    /// `--spoof` prefix, or `None` for a single source (`--src`).
    pub spoof: Option<String>,
    /// `--seed`.
    pub seed: u64,
    /// `udp-closed`'s destination port range, `"LO-HI"`.
    pub dst_ports: Option<String>,
    /// What the mode sends, in words.
    pub sends: String,
}

impl FloodSetup {
    /// The setup of a flood of `spec` seeded with `seed`.
    pub fn new(spec: &FloodSpec, seed: u64) -> FloodSetup {
        FloodSetup {
            mode: spec.mode,
            spoof: spec.spoof.map(|p| p.to_string()),
            seed,
            dst_ports: matches!(spec.mode, FloodMode::UdpClosed | FloodMode::Mix)
                .then(|| format!("{}-{}", spec.dst_ports.0, spec.dst_ports.1)),
            sends: describe(spec),
        }
    }
}

/// One line saying what a flood of `spec` sends.
pub fn describe(spec: &FloodSpec) -> String {
    let from = match spec.spoof {
        Some(p) => format!("from random sources in {p}"),
        None => format!("from {}", spec.src_ip),
    };
    let (to, p) = (spec.dst_ip, spec.dst_port);
    match spec.mode {
        FloodMode::Udp => format!("UDP to {to}:{p} {from}, random source ports, random payloads"),
        FloodMode::UdpClosed => format!(
            "UDP to {to} ports {}-{} except {p} {from}, random source ports, random payloads",
            spec.dst_ports.0, spec.dst_ports.1
        ),
        FloodMode::BadCsum => format!("UDP to {to}:{p} {from} with a wrong IPv4 header checksum"),
        FloodMode::BadLen => {
            format!("UDP to {to}:{p} {from} whose IPv4 total length claims {BAD_LEN_EXCESS} bytes past the frame")
        }
        FloodMode::Arp => match spec.spoof {
            Some(px) => format!("ARP requests for {to} from random senders in {px} with random MACs"),
            None => format!("ARP requests for {to} from {}", spec.src_ip),
        },
        FloodMode::Icmp => format!("ICMP echo requests to {to} {from}, random identifiers"),
        FloodMode::Syn | FloodMode::Ack | FloodMode::Rst => format!(
            "TCP {} to {to}:{p} {from}, random source ports and sequence numbers",
            spec.mode.name().to_uppercase()
        ),
        FloodMode::Mix => format!(
            "a mix to {to} from {}: UDP to port {p} (echoed) and to closed ports and to ports {}-{} (opened and \
             closed by the soak), bad IPv4 and UDP checksums, truncated and short headers, bad IP options, \
             fragments (complete and never completed), ARP, ICMP echo, TCP SYN to port {p} and to closed ports \
             (docs/soak.md)",
            spec.src_ip, spec.dst_ports.0, spec.dst_ports.1
        ),
    }
}
