//! The whole receive path over the in-memory device: any sequence of frames, polls and steps
//! of virtual time, with the frame census checked after every step and the counters checked
//! against each other at the end ([`check_counters`]).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xsknet::netdevice::{MemDevice, MemWire};
use xsknet::snmp::Mib;
use xsknet::umem::Umem;
use xsknet::wire::checksum;
use xsknet::wire::ethernet::{ethertype, EthernetRepr};
use xsknet::wire::ipv4::protocol;
use xsknet::wire::udp::UdpRepr;
use xsknet::wire::{build, EthernetAddress};
use xsknet::{Errno, Fd, SockType, Stack, StackConfig};

use super::input::Input;

/// Our interface's address.
pub const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
/// The peer's.
pub const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
/// Our address, in 10.0.0.0/24.
pub const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// The peer's.
pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The all-hosts group's MAC (224.0.0.1).
pub const MCAST_MAC: EthernetAddress = EthernetAddress([0x01, 0, 0x5e, 0, 0, 0x01]);
/// Another host's MAC.
pub const OTHER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x77]);
/// UMEM frames: few, so that the fuzzer reaches the empty fill ring and the reassembly bound.
pub const FRAMES: u32 = 128;
/// The most operations a script runs.
pub const MAX_OPS: usize = 512;
/// The largest frame an operation carries (the in-memory device takes 2048 - 256).
pub const MAX_FRAME: usize = 2048;

/// Operation tags shared by both stack targets (the value modulo the target's count).
pub mod op {
    /// A frame as it is: a byte string.
    pub const RAW: u8 = 0;
    /// An IPv4 datagram behind an Ethernet header the harness writes: a flags byte (see
    /// [`super::ipv4_frame`]), then the datagram as a byte string.
    pub const IPV4: u8 = 1;
    /// A UDP datagram from the peer to a port of ours: a port selector byte, the payload.
    pub const UDP: u8 = 2;
    /// A poll at the current time.
    pub const POLL: u8 = 3;
    /// Virtual time moves on by a 16-bit count of 10 ms, then a poll.
    pub const ADVANCE: u8 = 4;
    /// The peer takes what was transmitted (the frames go to the completion ring).
    pub const TAKE: u8 = 5;
    /// The application reads everything waiting (rx_path), or calls a socket function.
    pub const READ: u8 = 6;
    /// The application sends a UDP datagram to the peer: a port selector, a 16-bit length.
    pub const SEND: u8 = 7;
}

/// The ports a selector byte picks from: bound ones and closed ones.
pub fn port(sel: u8) -> u16 {
    match sel % 8 {
        0 => 7,
        1 => 9,
        2 => 80,
        3 => 53,
        4 => 0,
        5 => 40000,
        6 => 65535,
        _ => u16::from(sel),
    }
}

/// An Ethernet frame around `datagram`, set up as `flags` says:
///
/// - bits 4-5: the destination MAC: ours, broadcast, the all-hosts group's, another host's;
/// - bit 1: source and destination addresses set (the peer's; the destination from bits 6-7:
///   ours, the subnet broadcast, the limited broadcast, 224.0.0.1);
/// - bit 2: the UDP, TCP or ICMP checksum fixed (an unfragmented datagram, its header sound);
/// - bit 0: the IPv4 header checksum fixed (last, over the header's IHL).
pub fn ipv4_frame(flags: u8, datagram: &[u8]) -> Vec<u8> {
    let dst_mac = [OUR_MAC, EthernetAddress::BROADCAST, MCAST_MAC, OTHER_MAC][usize::from(flags >> 4) & 3];
    let mut p = datagram.to_vec();
    let ihl = p.first().map_or(0, |b| usize::from(b & 0x0f) * 4);
    if flags & 2 != 0 && p.len() >= 20 {
        let dst = [OUR_IP, Ipv4Addr::new(10, 0, 0, 255), Ipv4Addr::BROADCAST, Ipv4Addr::new(224, 0, 0, 1)]
            [usize::from(flags >> 6)];
        p[12..16].copy_from_slice(&PEER_IP.octets());
        p[16..20].copy_from_slice(&dst.octets());
    }
    if flags & 4 != 0 && ihl >= 20 && ihl <= p.len() {
        let total = usize::from(u16::from_be_bytes([p[2], p[3]])).clamp(ihl, p.len());
        let unfragmented = p[6] & 0x3f == 0 && p[7] == 0;
        let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
        let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
        let proto = p[9];
        let l4 = &mut p[ihl..total];
        let at = match proto {
            protocol::UDP => Some(6),
            protocol::TCP => Some(16),
            protocol::ICMP => Some(2),
            _ => None,
        };
        if let Some(at) = at.filter(|&at| unfragmented && l4.len() >= at + 2) {
            l4[at..at + 2].fill(0);
            let c = if proto == protocol::ICMP {
                checksum::checksum(l4)
            } else {
                checksum::compute_pseudo(src, dst, proto, l4)
            };
            l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
    }
    if flags & 1 != 0 && ihl >= 20 && ihl <= p.len() {
        p[10..12].fill(0);
        let c = checksum::checksum(&p[..ihl]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    build::ethernet(&EthernetRepr { dst: dst_mac, src: PEER_MAC, ethertype: ethertype::IPV4 }, &p)
}

/// A UDP datagram from the peer's port 40000 to `dport`, with a good checksum.
pub fn udp_frame(dport: u16, payload: &[u8]) -> Vec<u8> {
    let eth = EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::IPV4 };
    let ip = build::ipv4_repr(PEER_IP, OUR_IP, protocol::UDP, 0x1234);
    build::udp_frame(&eth, &ip, &UdpRepr { src_port: 40000, dst_port: dport, payload_len: 0 }, payload)
}

/// A stack over the in-memory device, the wire, virtual time, and what the harness counted.
pub struct Harness {
    /// The stack.
    pub s: Stack<MemDevice>,
    /// The peer's side of the device.
    pub w: MemWire,
    /// Virtual time.
    pub now: Instant,
    /// Frames the wire delivered (the rest it dropped, as the kernel would).
    pub accepted: u64,
    /// Frames the peer took off the wire.
    pub taken: u64,
}

impl Harness {
    /// A stack of [`FRAMES`] frames at 10.0.0.2/24 (`cfg` may change its configuration).
    pub fn new(cfg: impl FnOnce(&mut StackConfig)) -> Harness {
        let (umem, pool) = Umem::new(FRAMES, 2048).expect("a UMEM");
        let umem = Arc::new(umem);
        let dev = MemDevice::new(umem.clone(), 64, 64);
        let w = dev.wire();
        let mut c = StackConfig::new(OUR_MAC, OUR_IP, 24);
        cfg(&mut c);
        let s = Stack::new(dev, umem, Arc::new(pool), c);
        Harness { s, w, now: Instant::now(), accepted: 0, taken: 0 }
    }

    /// The wire delivers `frame`, if it can.
    pub fn inject(&mut self, frame: &[u8]) {
        if self.w.inject(frame) {
            self.accepted += 1;
        }
    }

    /// One poll now, then the census.
    pub fn poll(&mut self) {
        self.s.poll(self.now);
        self.check_census();
    }

    /// The peer takes what was sent.
    pub fn take(&mut self) -> Vec<Vec<u8>> {
        let out = self.w.take_transmitted();
        self.taken += out.len() as u64;
        out
    }

    /// Every frame is in exactly one place.
    pub fn check_census(&self) {
        let c = self.s.frame_census();
        assert_eq!(c.accounted(), c.total, "frames lost or counted twice: {c:?}");
    }

    /// Runs the operations both stack targets share (frames, polls, time, the peer taking
    /// frames); returns `None` when the input ends, `Some(false)` for a tag it does not own.
    pub fn common_op(&mut self, tag: u8, inp: &mut Input<'_>) -> Option<bool> {
        match tag {
            op::RAW => {
                let f = inp.bytes(MAX_FRAME)?;
                self.inject(f);
            }
            op::IPV4 => {
                let flags = inp.u8()?;
                let d = inp.bytes(MAX_FRAME)?;
                self.inject(&ipv4_frame(flags, d));
            }
            op::UDP => {
                let p = port(inp.u8()?);
                let d = inp.bytes(MAX_FRAME)?;
                self.inject(&udp_frame(p, d));
            }
            op::POLL => self.poll(),
            op::ADVANCE => {
                let steps = inp.u16()?;
                self.now += Duration::from_millis(10 * u64::from(steps));
                self.poll();
            }
            op::TAKE => {
                self.take();
            }
            _ => return Some(false),
        }
        Some(true)
    }

    /// Polls until the wire's rx ring is empty and nothing waits for the tx ring, and takes
    /// what was sent: every frame the wire delivered has been seen by the stack.
    pub fn settle(&mut self) {
        for _ in 0..4 {
            self.poll();
            self.take();
        }
    }
}

/// The counter identities the receive path keeps (net/ipv4/ip_input.c and the layers
/// above, as xsknet counts them), for `m` after every frame the wire delivered (`accepted`)
/// was polled and what was sent (`taken`) taken. With `transport`, also the identity of
/// what IP delivered, which needs every UDP datagram read (the socks' queues empty, none
/// closed with data in it).
///
/// # Panics
/// On the first identity that does not hold, naming it.
pub fn check_counters(m: &Mib, accepted: u64, taken: u64, transport: bool) {
    // Every frame off the rx ring, each dropped at the link layer, given to ip_rcv, or to
    // arp_rcv (which counts each as an error, a request or a reply).
    assert_eq!(m.XskRxFrames, accepted, "XskRxFrames = frames delivered by the wire");
    assert_eq!(
        m.XskRxFrames,
        m.XskRxRunts
            + m.XskRxOtherHost
            + m.XskRxNoHandler
            + m.IpInReceives
            + m.XskArpInErrors
            + m.XskArpInRequests
            + m.XskArpInReplies,
        "XskRxFrames = link drops + IpInReceives + ARP in: {m:?}"
    );
    assert_eq!(m.XskTxFrames, taken, "XskTxFrames = frames the peer took");
    // ip_rcv: every datagram is dropped by a check (one counter each), held for reassembly
    // (IpReasmReqds), delivered (IpInDelivers) or an unknown protocol; a reassembled datagram
    // is delivered once more (IpReasmOKs).
    let ip_out = m.IpInHdrErrors
        + m.IpExtInTruncatedPkts
        + m.XskIpInMartianSrc
        + m.XskIpInMartianDst
        + m.XskIpInMcastNotJoined
        + m.XskIpInSrcRoute
        + m.XskIpInMultiBufUnsupported
        + m.IpInAddrErrors
        + m.IpReasmReqds
        + m.IpInDelivers
        + m.IpInUnknownProtos;
    assert_eq!(
        m.IpInReceives + m.IpReasmOKs,
        ip_out,
        "IpInReceives + IpReasmOKs = IP's drops + held + delivered: {m:?}"
    );
    // ECN is counted once the version and IHL are right.
    assert!(m.IpExtInNoECTPkts + m.IpExtInECT1Pkts + m.IpExtInECT0Pkts + m.IpExtInCEPkts <= m.IpInReceives);
    assert!(m.IpExtInCsumErrors <= m.IpInHdrErrors);
    assert!(m.IpReasmOKs <= m.IpReasmReqds && m.IpReasmTimeout <= m.IpReasmFails);
    assert!(m.IpExtReasmOverlaps <= m.IpReasmFails);
    // ICMP out: each message by type, and the type counters.
    assert_eq!(
        m.IcmpOutMsgs,
        m.IcmpOutDestUnreachs + m.IcmpOutTimeExcds + m.IcmpOutParmProbs + m.IcmpOutEchoReps + m.IcmpOutTimestampReps,
        "IcmpOutMsgs = the messages by type: {m:?}"
    );
    assert_eq!(
        (m.IcmpMsgOutType0, m.IcmpMsgOutType3, m.IcmpMsgOutType11, m.IcmpMsgOutType12, m.IcmpMsgOutType14),
        (m.IcmpOutEchoReps, m.IcmpOutDestUnreachs, m.IcmpOutTimeExcds, m.IcmpOutParmProbs, m.IcmpOutTimestampReps)
    );
    assert_eq!(
        (m.IcmpMsgInType0, m.IcmpMsgInType3, m.IcmpMsgInType4, m.IcmpMsgInType5, m.IcmpMsgInType8),
        (m.IcmpInEchoReps, m.IcmpInDestUnreachs, m.IcmpInSrcQuenchs, m.IcmpInRedirects, m.IcmpInEchos)
    );
    assert_eq!(
        (m.IcmpMsgInType11, m.IcmpMsgInType12, m.IcmpMsgInType13, m.IcmpMsgInType14),
        (m.IcmpInTimeExcds, m.IcmpInParmProbs, m.IcmpInTimestamps, m.IcmpInTimestampReps)
    );
    assert_eq!((m.IcmpMsgInType17, m.IcmpMsgInType18), (m.IcmpInAddrMasks, m.IcmpInAddrMaskReps));
    assert!(m.IcmpInCsumErrors <= m.IcmpInErrors && m.IcmpInErrors <= m.IcmpInMsgs);
    assert!(m.UdpInCsumErrors + m.UdpRcvbufErrors <= m.UdpInErrors);
    if transport {
        // What IP delivered: UDP (read, a counted error, no port, a broadcast no sock
        // wanted), TCP (every segment from TcpInSegs on, or dropped before it for a link-
        // or IP-level broadcast), ICMP (IcmpInMsgs), and reassembled datagrams of a
        // protocol not taken in several frames (XskIpReasmUnsupported). A reassembled ICMP
        // message other than an echo request counts both IcmpInMsgs and
        // XskIpReasmUnsupported, so the sum may exceed IpInDelivers by at most that many.
        let sum = m.UdpInDatagrams
            + m.UdpInErrors
            + m.UdpNoPorts
            + m.UdpIgnoredMulti
            + m.TcpInSegs
            + m.XskTcpInNotHost
            + m.XskTcpInBcast
            + m.IcmpInMsgs
            + m.XskIpReasmUnsupported;
        assert!(
            m.IpInDelivers <= sum && sum - m.IpInDelivers <= m.XskIpReasmUnsupported.min(m.IpReasmOKs),
            "IpInDelivers = UDP + TCP + ICMP in: {m:?}"
        );
    }
}

/// Reads every datagram waiting on `fd`; errors other than `EAGAIN` (a pending
/// `ECONNREFUSED`, `EMSGSIZE`) are taken and reading goes on.
pub fn drain(s: &mut Stack<MemDevice>, fd: Fd, buf: &mut [u8]) {
    for _ in 0..100_000 {
        match s.recv_from(fd, buf) {
            Ok(_) => {}
            Err(Errno::EAGAIN) => return,
            Err(e) => assert_ne!(e.name(), "E?", "an errno Linux has"),
        }
    }
    panic!("a receive queue that never empties");
}

/// `rx_path`: a script of operations ([`op`]) on a stack with UDP sockets on ports 7
/// (wildcard) and 9 (connected to the peer) and a TCP listener on 80. After every step the
/// frame census adds up; at the end, with everything polled, sent, taken and read, the
/// counters satisfy [`check_counters`]; after closing every socket, every frame is back in
/// the kernel or a free list.
pub fn rx_path(data: &[u8]) {
    let mut h = Harness::new(|_| {});
    let udp7 = h.s.socket(SockType::Dgram).expect("a socket");
    h.s.bind(udp7, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).expect("bind 7");
    let udp9 = h.s.socket(SockType::Dgram).expect("a socket");
    h.s.bind(udp9, SocketAddrV4::new(OUR_IP, 9)).expect("bind 9");
    h.s.connect(udp9, SocketAddrV4::new(PEER_IP, 9)).expect("connect");
    let listener = h.s.socket(SockType::Stream).expect("a socket");
    h.s.bind(listener, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80)).expect("bind 80");
    h.s.listen(listener, 8).expect("listen");
    let mut streams: Vec<Fd> = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut inp = Input::new(data);
    for _ in 0..MAX_OPS {
        let Some(tag) = inp.u8() else { break };
        let tag = tag % 8;
        let Some(done) = h.common_op(tag, &mut inp) else { break };
        if done {
            continue;
        }
        match tag {
            op::READ => {
                drain(&mut h.s, udp7, &mut buf);
                drain(&mut h.s, udp9, &mut buf);
                while let Ok((fd, _)) = h.s.accept(listener) {
                    streams.push(fd);
                }
                for &fd in &streams {
                    let _ = h.s.recv(fd, &mut buf);
                }
                h.check_census();
            }
            op::SEND => {
                let (Some(sel), Some(len)) = (inp.u8(), inp.u16()) else { break };
                let fd = if sel & 0x80 != 0 { udp9 } else { udp7 };
                let len = usize::from(len) % 3000;
                match h.s.send_to(fd, &buf[..len], SocketAddrV4::new(PEER_IP, port(sel))) {
                    Ok(n) => assert_eq!(n, len),
                    Err(e) => assert_ne!(e.name(), "E?", "an errno Linux has"),
                }
                h.check_census();
            }
            _ => unreachable!("tags are taken modulo 8"),
        }
    }
    h.settle();
    drain(&mut h.s, udp7, &mut buf);
    drain(&mut h.s, udp9, &mut buf);
    check_counters(&h.s.snmp(), h.accepted, h.taken, true);
    for fd in [udp7, udp9, listener].into_iter().chain(streams) {
        h.s.close(fd).expect("close an open descriptor");
    }
    h.settle();
    h.s.release_backlog();
    let c = h.s.frame_census();
    assert_eq!(c.accounted(), c.total, "{c:?}");
    assert_eq!((c.in_socks, c.awaiting_neighbour, c.tx_backlog, c.in_reasm), (0, 0, 0, 0), "{c:?}");
}
