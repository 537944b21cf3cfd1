//! The soak's traffic: `xsknet pktgen --flood mix`, good and malformed frames
//! interleaved in one stream, for `xsknet-soak` (docs/soak.md).
//!
//! This owns stage 1 of the path in `docs/architecture.md` ("a peer sends")
//! when the peer is a mixture of well-behaved and broken senders. Every kind
//! of frame is built once at start as a template ([`MixGen::new`]); packet
//! number `n` is of kind `SCHEDULE[n % 32]`, copied from its template into the
//! transmit frame and patched in the few fields that vary (ports, IP
//! identification, ICMP sequence, TCP sequence), each checksum updated by the
//! difference (RFC 1624 eqn. 3). Per packet: one copy of at most 60 bytes, no
//! allocation. In every 32 packets:
//!
//! | n | kind | frame | Linux's receiver counts |
//! |---:|---|---|---|
//! | 11 | `echo` | UDP to `--dst-port` (the echo port), 18 bytes of payload | `UdpInDatagrams` when read; echoed |
//! | 3 | `closed-port` | UDP to a random port of [`CLOSED_PORTS`] | `UdpNoPorts` (+ port unreachable, rate-limited) |
//! | 4 | `churn-port` | UDP to a random port of `--dst-ports` (the soak's server opens and closes sockets there) | either of the two above |
//! | 1 | `bad-ip-csum` | UDP whose IPv4 header checksum is wrong | `IpInHdrErrors`, `IpExtInCsumErrors` |
//! | 1 | `bad-udp-csum` | UDP to the echo port whose UDP checksum is wrong | `UdpInCsumErrors`, `UdpInErrors` |
//! | 1 | `truncated` | UDP whose IPv4 total length claims 256 bytes past the frame | `IpExtInTruncatedPkts` |
//! | 1 | `short-header` | IPv4 with IHL 4 (a 16-byte header) | `IpInHdrErrors` |
//! | 1 | `runt` | an Ethernet frame of 14 + 16 bytes: the IPv4 header cut short | `IpInHdrErrors` |
//! | 1 | `bad-options` | IHL 6 with option bytes `07 ff 00 00` (issue 8's example) | `IpInHdrErrors`, ICMP parameter problem |
//! | 2 | `frag-first`, `frag-last` | both halves of a 40-byte UDP datagram to the echo port, in a row, same identification | `IpReasmReqds` × 2, `IpReasmOKs`; echoed |
//! | 1 | `frag-incomplete` | a first fragment whose rest never comes (one of [`INCOMPLETE_IDS`] identifications) | `IpReasmReqds`, later `IpReasmTimeout` |
//! | 1 | `arp` | ARP request "who has `--dst`", broadcast | (no MIB counter) |
//! | 2 | `icmp-echo` | ICMP echo request, sequence number counting up | `IcmpInEchos`; answered |
//! | 1 | `syn-churn` | TCP SYN to a random port of `--dst-ports` (where the soak's server opens and closes listeners), random source port and sequence | `TcpInSegs`; a SYN-ACK (a SYN cookie once the SYN queue is full), or a reset from a closed port |
//! | 1 | `syn-closed` | TCP SYN to a random port of [`CLOSED_PORTS`] | `TcpInSegs`, `TcpOutRsts` |
//!
//! The fragments of a complete pair carry identifications below 0x8000 (the
//! packet's round, `n / 32`), the incomplete ones 0x8000 and up, so a pair
//! never lands in an incomplete datagram's reassembly queue. Incomplete
//! fragments reuse a few identifications: a receiver holds at most
//! [`INCOMPLETE_IDS`] of their queues at once (each lives `ipfrag_time`,
//! 30 s), and the repeats are duplicates of a fragment it already holds.

use std::net::Ipv4Addr;

use xsknet::wire::arp::{ArpOperation, ArpRepr};
use xsknet::wire::checksum;
use xsknet::wire::ethernet::{ethertype, EthernetRepr};
use xsknet::wire::icmp::{msg_type, IcmpRepr};
use xsknet::wire::ipv4::{self, protocol, Ipv4Packet};
use xsknet::wire::tcp::{self, flags, TcpOptions, TcpRepr};
use xsknet::wire::udp::UdpRepr;
use xsknet::wire::{build, EthernetAddress};

use super::flood::{WyRand, SRC_PORTS, TCP_WINDOW};

/// The kinds of frame in the mix, in the order of the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MixKind {
    /// UDP to the echo port.
    Echo,
    /// UDP to a port nothing listens on.
    ClosedPort,
    /// UDP to a port the soak's server opens and closes.
    ChurnPort,
    /// A wrong IPv4 header checksum.
    BadIpCsum,
    /// A wrong UDP checksum, to the echo port.
    BadUdpCsum,
    /// IPv4 total length past the frame.
    Truncated,
    /// IHL 4.
    ShortHeader,
    /// The IPv4 header cut short by the frame's end.
    Runt,
    /// An option whose length runs past the header.
    BadOptions,
    /// First half of a complete fragmented datagram.
    FragFirst,
    /// Second half of it.
    FragLast,
    /// A first fragment whose rest never comes.
    FragIncomplete,
    /// ARP request for the target.
    Arp,
    /// ICMP echo request.
    IcmpEcho,
    /// TCP SYN to a port where the soak's server opens and closes listeners.
    SynChurn,
    /// TCP SYN to a closed port.
    SynClosed,
}

impl MixKind {
    /// Every kind, in the order of the docs.
    pub const ALL: [MixKind; 16] = [
        MixKind::Echo,
        MixKind::ClosedPort,
        MixKind::ChurnPort,
        MixKind::BadIpCsum,
        MixKind::BadUdpCsum,
        MixKind::Truncated,
        MixKind::ShortHeader,
        MixKind::Runt,
        MixKind::BadOptions,
        MixKind::FragFirst,
        MixKind::FragLast,
        MixKind::FragIncomplete,
        MixKind::Arp,
        MixKind::IcmpEcho,
        MixKind::SynChurn,
        MixKind::SynClosed,
    ];

    /// The kind's name in the reports (`closed-port`, …).
    pub fn name(self) -> &'static str {
        match self {
            MixKind::Echo => "echo",
            MixKind::ClosedPort => "closed-port",
            MixKind::ChurnPort => "churn-port",
            MixKind::BadIpCsum => "bad-ip-csum",
            MixKind::BadUdpCsum => "bad-udp-csum",
            MixKind::Truncated => "truncated",
            MixKind::ShortHeader => "short-header",
            MixKind::Runt => "runt",
            MixKind::BadOptions => "bad-options",
            MixKind::FragFirst => "frag-first",
            MixKind::FragLast => "frag-last",
            MixKind::FragIncomplete => "frag-incomplete",
            MixKind::Arp => "arp",
            MixKind::IcmpEcho => "icmp-echo",
            MixKind::SynChurn => "syn-churn",
            MixKind::SynClosed => "syn-closed",
        }
    }

    fn index(self) -> usize {
        MixKind::ALL.iter().position(|k| *k == self).expect("every kind is in ALL")
    }
}

use MixKind as K;

/// The order of kinds in every 32 packets: the malformed ones spread between
/// the good ones, the two halves of a fragmented datagram next to each other.
pub const SCHEDULE: [MixKind; 32] = [
    K::Echo,
    K::ClosedPort,
    K::Echo,
    K::ChurnPort,
    K::BadIpCsum,
    K::Echo,
    K::IcmpEcho,
    K::FragFirst,
    K::FragLast,
    K::Echo,
    K::ChurnPort,
    K::SynChurn,
    K::Echo,
    K::ShortHeader,
    K::ClosedPort,
    K::Echo,
    K::BadUdpCsum,
    K::SynClosed,
    K::Echo,
    K::ChurnPort,
    K::Truncated,
    K::Echo,
    K::Runt,
    K::IcmpEcho,
    K::Echo,
    K::BadOptions,
    K::ClosedPort,
    K::Echo,
    K::FragIncomplete,
    K::ChurnPort,
    K::Arp,
    K::Echo,
];

/// UDP and TCP destination ports of `closed-port` and `syn-closed`: the soak
/// keeps its echo port and its opening-and-closing ports outside this range.
pub const CLOSED_PORTS: (u16, u16) = (40000, 59999);
/// Default `--dst-ports` of the mix: the ports `xsknet-soak` has its server open and close.
pub const DEFAULT_CHURN_PORTS: (u16, u16) = (20000, 20063);
/// How many identifications `frag-incomplete` cycles through.
pub const INCOMPLETE_IDS: u16 = 64;
/// UDP payload bytes of the `echo`, `churn-port`, `bad-*` and `truncated` datagrams.
pub const UDP_PAYLOAD: usize = 18;
/// UDP payload bytes of the fragmented datagram: 48 bytes of UDP in two fragments of 24.
pub const FRAG_PAYLOAD: usize = 40;
/// Bytes the `truncated` kind's total length claims past the frame.
pub const TRUNCATED_EXCESS: u16 = 256;
/// The Ethernet minimum without the FCS: shorter templates are padded with zeros (but the runt).
const MIN_LEN: usize = 60;
/// The longest template.
pub const MAX_LEN: usize = 64;

/// Offsets in the frame.
const IP: usize = 14;
const L4: usize = IP + ipv4::MIN_HEADER_LEN;
const IP_ID: usize = IP + 4;
const IP_CSUM: usize = IP + 10;
const UDP_DPORT: usize = L4 + 2;
const UDP_CSUM: usize = L4 + 6;
const TCP_SPORT: usize = L4;
const TCP_DPORT: usize = L4 + 2;
const TCP_SEQ: usize = L4 + 4;
const TCP_CSUM: usize = L4 + 16;
const ICMP_CSUM: usize = L4 + 2;
const ICMP_SEQ: usize = L4 + 6;

/// What stays the same in every frame of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MixSpec {
    /// The interface's MAC.
    pub src_mac: EthernetAddress,
    /// The target's MAC.
    pub dst_mac: EthernetAddress,
    /// `--src`.
    pub src_ip: Ipv4Addr,
    /// `--dst`.
    pub dst_ip: Ipv4Addr,
    /// `--dst-port`: the echo port (UDP) and the listener (TCP).
    pub dst_port: u16,
    /// `--dst-ports`: the ports the soak's server opens and closes.
    pub churn_ports: (u16, u16),
}

impl MixSpec {
    /// Checks that the ports keep apart: the echo port and the churned ones
    /// outside [`CLOSED_PORTS`], the echo port outside the churned ones.
    ///
    /// # Errors
    /// A message naming the option at fault.
    pub fn check(&self) -> Result<(), String> {
        let closed = CLOSED_PORTS.0..=CLOSED_PORTS.1;
        let (lo, hi) = self.churn_ports;
        if self.dst_port == 0 || closed.contains(&self.dst_port) {
            return Err(format!(
                "--dst-port {} with --flood mix: must be 1-65535 outside {}-{} (the mix's closed ports)",
                self.dst_port, CLOSED_PORTS.0, CLOSED_PORTS.1
            ));
        }
        if lo == 0 || lo > hi || hi >= CLOSED_PORTS.0 && lo <= CLOSED_PORTS.1 {
            return Err(format!(
                "--dst-ports {lo}-{hi} with --flood mix: must stay outside {}-{} (the mix's closed ports)",
                CLOSED_PORTS.0, CLOSED_PORTS.1
            ));
        }
        if (lo..=hi).contains(&self.dst_port) {
            return Err(format!("--dst-ports {lo}-{hi} with --flood mix: must not hold --dst-port {}", self.dst_port));
        }
        Ok(())
    }
}

/// One template per kind.
#[derive(Clone, Debug)]
pub struct MixGen {
    spec: MixSpec,
    templates: Vec<Vec<u8>>,
    /// Frames sent of each kind, in [`MixKind::ALL`] order.
    sent: [u64; MixKind::ALL.len()],
}

impl MixGen {
    /// Builds the templates for `spec`.
    ///
    /// # Errors
    /// As [`MixSpec::check`].
    pub fn new(spec: MixSpec) -> Result<MixGen, String> {
        spec.check()?;
        let templates = MixKind::ALL.iter().map(|k| template(&spec, *k)).collect();
        Ok(MixGen { spec, templates, sent: [0; MixKind::ALL.len()] })
    }

    /// The spec.
    pub fn spec(&self) -> &MixSpec {
        &self.spec
    }

    /// The template of `kind` (what [`MixGen::write`] patches).
    pub fn template(&self, kind: MixKind) -> &[u8] {
        &self.templates[kind.index()]
    }

    /// The kind of packet number `n`.
    #[inline]
    pub fn kind_of(n: u64) -> MixKind {
        SCHEDULE[(n % SCHEDULE.len() as u64) as usize]
    }

    /// Writes packet number `n` into `buf` and returns its length; random
    /// fields from `rng`.
    ///
    /// # Panics
    /// If `buf` is shorter than [`MAX_LEN`].
    #[inline]
    pub fn write(&mut self, buf: &mut [u8], n: u64, rng: &mut WyRand) -> usize {
        let kind = Self::kind_of(n);
        let round = n / SCHEDULE.len() as u64;
        let t = &self.templates[kind.index()];
        let len = t.len();
        let b = &mut buf[..len];
        b.copy_from_slice(t);
        self.sent[kind.index()] += 1;
        let r = rng.next_u64();
        match kind {
            K::ClosedPort => set16(b, UDP_DPORT, port_in(CLOSED_PORTS, r as u16), UDP_CSUM, true),
            K::ChurnPort => set16(b, UDP_DPORT, port_in(self.spec.churn_ports, r as u16), UDP_CSUM, true),
            K::FragFirst | K::FragLast => set16(b, IP_ID, (round & 0x7fff) as u16, IP_CSUM, false),
            K::FragIncomplete => set16(b, IP_ID, 0x8000 | (r as u16 % INCOMPLETE_IDS), IP_CSUM, false),
            K::IcmpEcho => set16(b, ICMP_SEQ, round as u16, ICMP_CSUM, false),
            K::SynChurn | K::SynClosed => {
                set16(b, TCP_SPORT, port_in(SRC_PORTS, (r >> 16) as u16), TCP_CSUM, false);
                set16(b, TCP_SEQ, (r >> 32) as u16, TCP_CSUM, false);
                set16(b, TCP_SEQ + 2, (r >> 48) as u16, TCP_CSUM, false);
                let ports = if kind == K::SynClosed { CLOSED_PORTS } else { self.spec.churn_ports };
                set16(b, TCP_DPORT, port_in(ports, r as u16), TCP_CSUM, false);
            }
            _ => {}
        }
        len
    }

    /// Bytes sent so far (Ethernet frames without the FCS).
    pub fn bytes(&self) -> u64 {
        MixKind::ALL.iter().map(|k| self.sent[k.index()] * self.templates[k.index()].len() as u64).sum()
    }

    /// Frames sent so far by kind, in [`MixKind::ALL`] order.
    pub fn sent(&self) -> Vec<(MixKind, u64)> {
        MixKind::ALL.iter().map(|k| (*k, self.sent[k.index()])).collect()
    }
}

/// A port of `lo..=hi` from 16 random bits.
#[inline]
fn port_in((lo, hi): (u16, u16), r: u16) -> u16 {
    let span = u32::from(hi - lo) + 1;
    lo + ((u32::from(r) * span) >> 16) as u16
}

/// Writes `v` at `at` and updates the checksum at `csum` by the difference
/// (RFC 1624 eqn. 3); a UDP checksum (`udp`) that comes out 0 goes out as
/// 0xFFFF (RFC 768). A deliberately wrong checksum stays wrong by the same amount.
#[inline]
fn set16(b: &mut [u8], at: usize, v: u16, csum: usize, udp: bool) {
    let old = u16::from_be_bytes([b[at], b[at + 1]]);
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
    let c = u16::from_be_bytes([b[csum], b[csum + 1]]);
    let mut n = !checksum::fold(u64::from(!c) + u64::from(!old) + u64::from(v) + 0xFFFF);
    if udp && n == 0 {
        n = 0xFFFF;
    }
    b[csum..csum + 2].copy_from_slice(&n.to_be_bytes());
}

/// The frame of `kind` before any patch.
fn template(s: &MixSpec, kind: MixKind) -> Vec<u8> {
    let eth = |payload: &[u8]| {
        build::ethernet(&EthernetRepr { dst: s.dst_mac, src: s.src_mac, ethertype: ethertype::IPV4 }, payload)
    };
    let ip = |proto: u8, ident: u16| build::ipv4_repr(s.src_ip, s.dst_ip, proto, ident);
    let udp = |dport: u16, payload: &[u8]| {
        build::udp(s.src_ip, s.dst_ip, &UdpRepr { src_port: 9000, dst_port: dport, payload_len: 0 }, payload)
    };
    let payload: Vec<u8> = (0..UDP_PAYLOAD as u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
    let udp_frame = |dport: u16| eth(&build::ipv4(&ip(protocol::UDP, 0), &udp(dport, &payload)));
    let syn = |dport: u16| {
        let seg = TcpRepr {
            src_port: 9000,
            dst_port: dport,
            seq: 0,
            ack: 0,
            flags: flags::SYN,
            window: TCP_WINDOW,
            urgent: 0,
            options: TcpOptions::default(),
            payload_len: 0,
        };
        let t = build::tcp(s.src_ip, s.dst_ip, &seg, &[]);
        debug_assert_eq!(t.len(), tcp::HEADER_LEN);
        eth(&build::ipv4(&ip(protocol::TCP, 0), &t))
    };
    let mut f = match kind {
        K::Echo => udp_frame(s.dst_port),
        K::ClosedPort => udp_frame(CLOSED_PORTS.0),
        K::ChurnPort => udp_frame(s.churn_ports.0),
        K::BadIpCsum => {
            let mut f = udp_frame(s.dst_port);
            f[IP_CSUM] ^= 0x5a;
            f
        }
        K::BadUdpCsum => {
            let mut f = udp_frame(s.dst_port);
            // Never 0 (which means "no checksum"): the right one plus one, wrapped past 0xFFFF.
            let c = u16::from_be_bytes([f[UDP_CSUM], f[UDP_CSUM + 1]]);
            let bad = if c >= 0xFFFE { 1 } else { c + 1 };
            f[UDP_CSUM..UDP_CSUM + 2].copy_from_slice(&bad.to_be_bytes());
            f
        }
        K::Truncated => {
            let mut f = udp_frame(s.dst_port);
            let mut p = Ipv4Packet::new_unchecked(&mut f[IP..]);
            let claimed = p.total_len() as u16 + TRUNCATED_EXCESS;
            p.set_total_len(claimed);
            p.fill_checksum();
            f
        }
        K::ShortHeader => {
            let mut f = udp_frame(s.dst_port);
            f[IP] = 0x44; // version 4, IHL 4
            let mut p = Ipv4Packet::new_unchecked(&mut f[IP..]);
            p.fill_checksum(); // over the 20 bytes
            f
        }
        K::Runt => {
            let mut f = udp_frame(s.dst_port);
            f.truncate(IP + 16);
            return f;
        }
        K::BadOptions => {
            let t = udp(s.dst_port, &payload);
            eth(&build::ipv4_with_options(&ip(protocol::UDP, 0), &[0x07, 0xff, 0x00, 0x00], &t))
        }
        K::FragFirst | K::FragLast | K::FragIncomplete => {
            let fp: Vec<u8> = (0..FRAG_PAYLOAD as u8).map(|i| i ^ 0xa5).collect();
            let whole = udp(s.dst_port, &fp);
            let half = whole.len() / 2;
            debug_assert!(half.is_multiple_of(8));
            let mut h = ip(protocol::UDP, 0);
            h.dont_fragment = false;
            if kind == K::FragLast {
                h.frag_offset = (half / 8) as u16;
                eth(&build::ipv4(&h, &whole[half..]))
            } else {
                h.more_fragments = true;
                eth(&build::ipv4(&h, &whole[..half]))
            }
        }
        K::Arp => {
            let a = ArpRepr {
                operation: ArpOperation::Request,
                sender_hw: s.src_mac,
                sender_ip: s.src_ip,
                target_hw: EthernetAddress::default(),
                target_ip: s.dst_ip,
            };
            build::ethernet(
                &EthernetRepr { dst: EthernetAddress::BROADCAST, src: s.src_mac, ethertype: ethertype::ARP },
                &build::arp(&a),
            )
        }
        K::IcmpEcho => {
            let m = build::icmp(&IcmpRepr::echo(msg_type::ECHO_REQUEST, 0x50ac, 0), &payload);
            eth(&build::ipv4(&ip(protocol::ICMP, 0), &m))
        }
        K::SynChurn => syn(s.churn_ports.0),
        K::SynClosed => syn(CLOSED_PORTS.0),
    };
    if f.len() < MIN_LEN {
        f.resize(MIN_LEN, 0);
    }
    debug_assert!(f.len() <= MAX_LEN);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use xsknet::wire::ipv4::Ipv4Repr;
    use xsknet::wire::tcp::TcpPacket;
    use xsknet::wire::udp::{self, UdpPacket};

    fn spec() -> MixSpec {
        MixSpec {
            src_mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_mac: EthernetAddress([2, 0, 0, 0, 0, 2]),
            src_ip: Ipv4Addr::new(10, 77, 0, 3),
            dst_ip: Ipv4Addr::new(10, 77, 0, 2),
            dst_port: 7,
            churn_ports: (20000, 20063),
        }
    }

    #[test]
    fn the_schedule_holds_each_kind_as_documented() {
        let count = |k: MixKind| SCHEDULE.iter().filter(|x| **x == k).count();
        assert_eq!(count(K::Echo), 11);
        assert_eq!(count(K::ClosedPort), 3);
        assert_eq!(count(K::ChurnPort), 4);
        assert_eq!(count(K::IcmpEcho), 2);
        for k in MixKind::ALL {
            assert!(count(k) >= 1, "{k:?} missing");
        }
        let first = SCHEDULE.iter().position(|k| *k == K::FragFirst).unwrap();
        assert_eq!(SCHEDULE[first + 1], K::FragLast, "the halves go in a row");
    }

    #[test]
    fn ports_keep_apart() {
        assert!(spec().check().is_ok());
        assert!(MixSpec { dst_port: 45000, ..spec() }.check().is_err());
        assert!(MixSpec { churn_ports: (39000, 40000), ..spec() }.check().is_err());
        assert!(MixSpec { churn_ports: (5, 10), ..spec() }.check().is_err());
        assert!(MixSpec { churn_ports: (60000, 60063), ..spec() }.check().is_ok());
    }

    /// Every patched frame is what a fresh build of the same fields gives:
    /// the checksums updated by difference are right (or wrong by design).
    #[test]
    fn patched_frames_check_as_intended() {
        let mut g = MixGen::new(spec()).unwrap();
        let mut rng = WyRand::new(7);
        let mut buf = [0u8; 2048];
        let (src, dst) = (spec().src_ip, spec().dst_ip);
        for n in 0..32 * 200u64 {
            let len = g.write(&mut buf, n, &mut rng);
            let f = &buf[..len];
            let kind = MixGen::kind_of(n);
            if kind == K::Arp || kind == K::Runt {
                continue;
            }
            let ip_ok = checksum::checksum(&f[IP..IP + usize::from(f[IP] & 0xf) * 4]) == 0;
            assert_eq!(ip_ok, kind != K::BadIpCsum, "{kind:?} n={n}");
            let ip = Ipv4Packet::new_unchecked(&f[IP..]);
            match kind {
                K::Echo | K::ClosedPort | K::ChurnPort | K::BadUdpCsum => {
                    let r = Ipv4Repr::parse(&Ipv4Packet::new_checked(&f[IP..]).unwrap()).unwrap();
                    let u = UdpPacket::new_unchecked(&f[L4..L4 + r.payload_len]);
                    assert_eq!(u.verify_checksum(src, dst), kind != K::BadUdpCsum, "{kind:?} n={n}");
                    let port = u.dst_port();
                    match kind {
                        K::ClosedPort => assert!((CLOSED_PORTS.0..=CLOSED_PORTS.1).contains(&port)),
                        K::ChurnPort => assert!((20000..=20063).contains(&port)),
                        _ => assert_eq!(port, 7),
                    }
                }
                K::SynChurn | K::SynClosed => {
                    let t = TcpPacket::new_unchecked(&f[L4..L4 + tcp::HEADER_LEN]);
                    assert!(t.verify_checksum(src, dst), "{kind:?} n={n}");
                    let range = if kind == K::SynChurn { (20000, 20063) } else { CLOSED_PORTS };
                    assert!((range.0..=range.1).contains(&t.dst_port()), "{kind:?} n={n}");
                }
                K::IcmpEcho => {
                    let end = IP + ip.total_len();
                    assert_eq!(checksum::checksum(&f[L4..end]), 0, "n={n}");
                }
                K::FragFirst | K::FragLast => assert!(ip.ident() < 0x8000),
                K::FragIncomplete => assert!(ip.ident() >= 0x8000 && ip.ident() < 0x8000 + INCOMPLETE_IDS),
                _ => {}
            }
        }
        assert!(g.sent().iter().all(|(_, n)| *n >= 200));
    }

    /// The two halves of a pair reassemble into the 48-byte UDP datagram
    /// with a right checksum.
    #[test]
    fn the_fragment_pair_reassembles() {
        let mut g = MixGen::new(spec()).unwrap();
        let mut rng = WyRand::new(1);
        let first = SCHEDULE.iter().position(|k| *k == K::FragFirst).unwrap() as u64 + 32 * 5;
        let mut a = [0u8; 128];
        let mut b = [0u8; 128];
        let la = g.write(&mut a, first, &mut rng);
        let lb = g.write(&mut b, first + 1, &mut rng);
        let (pa, pb) = (Ipv4Packet::new_unchecked(&a[IP..la]), Ipv4Packet::new_unchecked(&b[IP..lb]));
        assert_eq!(pa.ident(), pb.ident());
        assert!(pa.more_fragments() && !pb.more_fragments());
        let mut whole = pa.payload().to_vec();
        assert_eq!(usize::from(pb.frag_offset()) * 8, whole.len());
        whole.extend_from_slice(pb.payload());
        assert_eq!(whole.len(), udp::HEADER_LEN + FRAG_PAYLOAD);
        assert!(UdpPacket::new_unchecked(&whole[..]).verify_checksum(spec().src_ip, spec().dst_ip));
    }
}
