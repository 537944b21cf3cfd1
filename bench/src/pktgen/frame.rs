//! The generator's frames: UDP over IPv4 over Ethernet, built once, patched per packet.
//!
//! Layout of every frame (no IP options, no VLAN):
//!
//! ```text
//!  0 Ethernet  dst MAC, src MAC, 0x0800
//! 14 IPv4      20 bytes, DF, TTL 64, ident 0, checksum
//! 34 UDP       src port, dst port, length, checksum
//! 42 payload   magic (u16) | sequence (u64) | send timestamp (u64, ns) | filler
//! ```
//!
//! All numbers are big-endian. The payload's fixed part is 18 bytes, so the
//! smallest frame is 60 bytes: the Ethernet minimum without the FCS (64 bytes
//! on the wire). An echo server sends the payload back unchanged, so the
//! sequence number and the send timestamp return with the reply.
//!
//! Per packet only the flow's source port (and, with several source
//! addresses, the address and the IPv4 checksum), the sequence number, the
//! timestamp and the UDP checksum are written. The UDP checksum is not summed
//! over the datagram again: each flow keeps the unfolded one's-complement sum
//! of everything that does not change (pseudo-header, header, payload with
//! sequence and timestamp zero), and the patch adds the two 64-bit fields to
//! it. A 64-bit big-endian field at an even offset contributes the sum of its
//! four 16-bit words, which is congruent to `(v >> 32) + (v & 0xFFFF_FFFF)`
//! modulo 0xFFFF (2^16 ≡ 1), so that is four additions and a fold (RFC 1071
//! §2; cheaper than RFC 1624's one update per changed word, and exact).

use std::net::Ipv4Addr;

use xsknet::wire::arp::{self, ArpOperation, ArpPacket, ArpRepr};
use xsknet::wire::checksum;
use xsknet::wire::ethernet::{self, ethertype, EthernetFrame, EthernetRepr};
use xsknet::wire::ipv4::{self, protocol, Ipv4Packet, Ipv4Repr};
use xsknet::wire::udp::{self, UdpPacket, UdpRepr};
use xsknet::wire::EthernetAddress;

/// Offsets in the frame.
pub const IP_OFFSET: usize = ethernet::HEADER_LEN;
pub const UDP_OFFSET: usize = IP_OFFSET + ipv4::MIN_HEADER_LEN;
pub const PAYLOAD_OFFSET: usize = UDP_OFFSET + udp::HEADER_LEN;
/// The IPv4 header checksum and source address (the floods patch them too).
pub const IP_CSUM: usize = IP_OFFSET + ipv4::field::CHECKSUM.start;
pub const IP_SRC: usize = IP_OFFSET + ipv4::field::SRC_ADDR.start;
const UDP_SRC_PORT: usize = UDP_OFFSET + udp::field::SRC_PORT.start;
const UDP_CSUM: usize = UDP_OFFSET + udp::field::CHECKSUM.start;
const SEQ_AT: usize = PAYLOAD_OFFSET + 2;
const TS_AT: usize = PAYLOAD_OFFSET + 10;

/// The payload's first two bytes: "xg", xsknet generator.
pub const MAGIC: u16 = 0x7867;
/// Magic, sequence number and timestamp.
pub const PAYLOAD_FIXED_LEN: usize = 18;
/// Smallest frame: headers and the fixed payload, 60 bytes (64 with the FCS).
pub const MIN_FRAME_LEN: usize = PAYLOAD_OFFSET + PAYLOAD_FIXED_LEN;
/// Largest frame at MTU 1500, without the FCS.
pub const MAX_FRAME_LEN: usize = 1514;
/// A 60-byte frame: the patched fields end exactly there, which lets the hot
/// path work on a fixed-size array without bounds checks.
const PATCHED_END: usize = TS_AT + 8;
const _: () = assert!(PATCHED_END == MIN_FRAME_LEN);

/// One flow: what varies between flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    pub src_ip: Ipv4Addr,
    pub src_port: u16,
}

/// The flows a run cycles through: `n` source ports counting up from
/// `src_port` (wrapping, skipping 0) and, with `vary_ips`, source addresses
/// counting up from `src` inside `src/prefix` (skipping the network and
/// broadcast addresses and `dst`). Flow `i` takes port `i` and address
/// `i mod (addresses available)`.
pub fn make_flows(
    src: Ipv4Addr,
    prefix: u8,
    dst: Ipv4Addr,
    src_port: u16,
    n: u32,
    vary_ips: bool,
) -> Result<Vec<Flow>, String> {
    if n == 0 || n > 65_535 {
        return Err(format!("--flows {n}: must be 1 to 65535 (one source port per flow)"));
    }
    if src_port == 0 {
        return Err("--src-port 0: pick a port from 1 to 65535".into());
    }
    let addrs = if vary_ips { host_addresses(src, prefix, dst, n as usize) } else { vec![src] };
    Ok((0..n)
        .map(|i| Flow {
            src_ip: addrs[i as usize % addrs.len()],
            src_port: ((u32::from(src_port) - 1 + i) % 65_535 + 1) as u16,
        })
        .collect())
}

/// Up to `n` usable addresses of `start`'s prefix, from `start` upward,
/// wrapping; never the network or broadcast address (for prefixes up to /30)
/// nor `exclude`. Always contains `start` first.
pub fn host_addresses(start: Ipv4Addr, prefix: u8, exclude: Ipv4Addr, n: usize) -> Vec<Ipv4Addr> {
    let prefix = prefix.min(32);
    let size: u64 = 1 << (32 - u32::from(prefix));
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
    let net = u32::from(start) & mask;
    let off = u64::from(u32::from(start) & !mask);
    let mut out = vec![start];
    for k in 1..size {
        if out.len() >= n {
            break;
        }
        let host = (off + k) % size;
        if size >= 4 && (host == 0 || host == size - 1) {
            continue;
        }
        let a = Ipv4Addr::from(net | host as u32);
        if a != exclude {
            out.push(a);
        }
    }
    out
}

/// What stays the same in every frame of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameSpec {
    pub src_mac: EthernetAddress,
    pub dst_mac: EthernetAddress,
    pub dst_ip: Ipv4Addr,
    pub dst_port: u16,
    /// Ethernet frame length without FCS, [`MIN_FRAME_LEN`]..=[`MAX_FRAME_LEN`].
    pub len: usize,
}

impl FrameSpec {
    pub fn check_len(len: usize) -> Result<(), String> {
        if (MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&len) {
            Ok(())
        } else {
            Err(format!(
                "--size {len}: must be {MIN_FRAME_LEN} to {MAX_FRAME_LEN} (Ethernet frame without the 4-byte FCS; \
                 a \"64-byte\" frame is --size 60)"
            ))
        }
    }
}

/// Per-flow constants of the patch.
#[derive(Clone, Copy, Debug)]
struct FlowPatch {
    src_ip: [u8; 4],
    ip_csum: [u8; 2],
    src_port: [u8; 2],
    /// Unfolded UDP checksum sum without the sequence number and timestamp.
    udp_base: u64,
}

/// Builds the frame template and patches frames per packet.
#[derive(Clone, Debug)]
pub struct Patcher {
    spec: FrameSpec,
    flows: Vec<FlowPatch>,
    /// Whether flows differ in source address (then the IPv4 header is patched too).
    vary_ips: bool,
    template: Vec<u8>,
}

impl Patcher {
    /// Prepares the template (flow 0, sequence 0, timestamp 0) and each flow's sums.
    pub fn new(spec: FrameSpec, flows: &[Flow]) -> Result<Patcher, String> {
        FrameSpec::check_len(spec.len)?;
        if flows.is_empty() {
            return Err("no flows".into());
        }
        let mut scratch = vec![0u8; spec.len];
        let mut patches = Vec::with_capacity(flows.len());
        for f in flows {
            write_frame(&mut scratch, &spec, *f, 0, 0);
            let ulen = (spec.len - UDP_OFFSET) as u16;
            let mut dgram = UdpPacket::new_unchecked(scratch[UDP_OFFSET..].to_vec());
            dgram.set_checksum(0);
            let udp_base = checksum::sum(
                checksum::pseudo_header_sum(f.src_ip, spec.dst_ip, protocol::UDP, ulen),
                &dgram.into_inner(),
            );
            patches.push(FlowPatch {
                src_ip: f.src_ip.octets(),
                ip_csum: Ipv4Packet::new_unchecked(&scratch[IP_OFFSET..]).checksum().to_be_bytes(),
                src_port: f.src_port.to_be_bytes(),
                udp_base,
            });
        }
        let vary_ips = flows.iter().any(|f| f.src_ip != flows[0].src_ip);
        write_frame(&mut scratch, &spec, flows[0], 0, 0);
        Ok(Patcher { spec, flows: patches, vary_ips, template: scratch })
    }

    pub fn spec(&self) -> &FrameSpec {
        &self.spec
    }

    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// The frame length.
    #[inline]
    pub fn len(&self) -> usize {
        self.spec.len
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The template: a complete, valid frame of flow 0 with sequence 0 and
    /// timestamp 0. Copied once into every transmit frame at start.
    pub fn template(&self) -> &[u8] {
        &self.template
    }

    /// Turns a frame holding the template into the packet `seq` of `flow`,
    /// sent at `ts_ns`. Writes 20 bytes (26 with several source addresses), no
    /// allocation, no loop.
    ///
    /// # Panics
    /// If `frame` is shorter than 60 bytes or `flow` is out of range.
    #[inline]
    pub fn patch(&self, frame: &mut [u8], flow: usize, seq: u64, ts_ns: u64) {
        let f = &self.flows[flow];
        let b: &mut [u8; PATCHED_END] = (&mut frame[..PATCHED_END]).try_into().expect("frame of at least 60 bytes");
        if self.vary_ips {
            b[IP_SRC..IP_SRC + 4].copy_from_slice(&f.src_ip);
            b[IP_CSUM..IP_CSUM + 2].copy_from_slice(&f.ip_csum);
        }
        b[UDP_SRC_PORT..UDP_SRC_PORT + 2].copy_from_slice(&f.src_port);
        b[SEQ_AT..SEQ_AT + 8].copy_from_slice(&seq.to_be_bytes());
        b[TS_AT..TS_AT + 8].copy_from_slice(&ts_ns.to_be_bytes());
        let s = f.udp_base + (seq >> 32) + (seq & 0xFFFF_FFFF) + (ts_ns >> 32) + (ts_ns & 0xFFFF_FFFF);
        // A computed 0 goes on the wire as 0xFFFF (0 means "no checksum", RFC 768).
        let c = match !checksum::fold(s) {
            0 => 0xFFFF,
            c => c,
        };
        b[UDP_CSUM..UDP_CSUM + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// Writes the whole frame for `flow`, sequence `seq`, timestamp `ts_ns`, with
/// both checksums computed from scratch (the reference the patch is checked
/// against).
pub fn write_frame(buf: &mut [u8], spec: &FrameSpec, flow: Flow, seq: u64, ts_ns: u64) {
    let len = spec.len;
    let buf = &mut buf[..len];
    let eth = EthernetRepr { dst: spec.dst_mac, src: spec.src_mac, ethertype: ethertype::IPV4 };
    eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    let ip = Ipv4Repr {
        src: flow.src_ip,
        dst: spec.dst_ip,
        protocol: protocol::UDP,
        payload_len: len - UDP_OFFSET,
        ttl: 64,
        tos: 0,
        ident: 0,
        dont_fragment: true,
        more_fragments: false,
        frag_offset: 0,
    };
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[IP_OFFSET..]));
    let payload = &mut buf[PAYLOAD_OFFSET..];
    payload[0..2].copy_from_slice(&MAGIC.to_be_bytes());
    payload[2..10].copy_from_slice(&seq.to_be_bytes());
    payload[10..18].copy_from_slice(&ts_ns.to_be_bytes());
    for (i, b) in payload[PAYLOAD_FIXED_LEN..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let udp = UdpRepr { src_port: flow.src_port, dst_port: spec.dst_port, payload_len: len - PAYLOAD_OFFSET };
    udp.emit(&mut UdpPacket::new_unchecked(&mut buf[UDP_OFFSET..]), flow.src_ip, spec.dst_ip);
}

/// Reads sequence number and timestamp back from a frame we built.
pub fn read_seq_ts(frame: &[u8]) -> Option<(u64, u64)> {
    let seq = u64::from_be_bytes(frame.get(SEQ_AT..SEQ_AT + 8)?.try_into().ok()?);
    let ts = u64::from_be_bytes(frame.get(TS_AT..TS_AT + 8)?.try_into().ok()?);
    Some((seq, ts))
}

/// What a received frame is, for the generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// An echo of one of our datagrams.
    Echo {
        seq: u64,
        ts_ns: u64,
    },
    Arp(ArpRepr),
    /// IPv4 or UDP that failed validation (header or length).
    Bad,
    /// A UDP datagram from the peer whose checksum is wrong (a kernel peer on
    /// veth with transmit checksum offload on sends them: partial checksums).
    BadChecksum,
    /// Anything else: not an echo of ours.
    Other,
}

/// Classifies a received frame. `peer`/`peer_port` is where we send to: an
/// echo comes back from there, carrying our magic.
pub fn classify(frame: &[u8], peer: Ipv4Addr, peer_port: u16) -> Received {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return Received::Bad;
    };
    let l3 = eth.payload();
    match eth.ethertype() {
        ethertype::ARP => match ArpRepr::parse(&ArpPacket::new_unchecked(l3)) {
            Ok(p) => Received::Arp(p),
            Err(_) => Received::Bad,
        },
        ethertype::IPV4 => {
            let packet = Ipv4Packet::new_unchecked(l3);
            let Ok(ip) = Ipv4Repr::parse(&packet) else {
                return Received::Bad;
            };
            if ip.protocol != protocol::UDP || ip.src != peer || ip.is_fragment() {
                return Received::Other;
            }
            let seg = UdpPacket::new_unchecked(packet.payload());
            let Ok(h) = UdpRepr::parse(&seg) else {
                return Received::Bad;
            };
            if h.src_port != peer_port {
                return Received::Other;
            }
            if !seg.verify_checksum(ip.src, ip.dst) {
                return Received::BadChecksum;
            }
            let p = seg.payload();
            if p.len() < PAYLOAD_FIXED_LEN || u16::from_be_bytes([p[0], p[1]]) != MAGIC {
                return Received::Other;
            }
            let seq = u64::from_be_bytes(p[2..10].try_into().expect("8 bytes"));
            let ts_ns = u64::from_be_bytes(p[10..18].try_into().expect("8 bytes"));
            Received::Echo { seq, ts_ns }
        }
        _ => Received::Other,
    }
}

/// Writes an Ethernet/ARP frame (42 bytes, unpadded as Linux sends them on
/// veth; a NIC pads) and returns its length.
pub fn write_arp(buf: &mut [u8], eth_dst: EthernetAddress, pkt: &ArpRepr) -> usize {
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..ethernet::HEADER_LEN + arp::PACKET_LEN]);
    EthernetRepr { dst: eth_dst, src: pkt.sender_hw, ethertype: ethertype::ARP }.emit(&mut frame);
    pkt.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
    ethernet::HEADER_LEN + arp::PACKET_LEN
}

/// "Who has `target`? Tell `ip`", broadcast.
pub fn arp_request(mac: EthernetAddress, ip: Ipv4Addr, target: Ipv4Addr) -> ArpRepr {
    ArpRepr {
        operation: ArpOperation::Request,
        sender_hw: mac,
        sender_ip: ip,
        target_hw: EthernetAddress::default(),
        target_ip: target,
    }
}
