//! Frames larger than a UMEM frame over the in-memory device (no kernel, no
//! root; docs/jumbo.md): AF_XDP multi-buffer receive (`XDP_PKT_CONTD`
//! descriptors chained into one packet), a packet split across two rx
//! batches, invalid sequences counted and their frames given back, the frame
//! census adding up after each; and what a send larger than a frame becomes.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Instant;

use xsknet::netdevice::{MemDevice, MemWire};
use xsknet::umem::Umem;
use xsknet::wire::arp::{ArpOperation, ArpRepr};
use xsknet::wire::ethernet::{ethertype, EthernetFrame, EthernetRepr, HEADER_LEN as ETH_LEN};
use xsknet::wire::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use xsknet::wire::udp::UdpRepr;
use xsknet::wire::{build, EthernetAddress};
use xsknet::{Fd, SockType, Stack, StackConfig};

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PORT: u16 = 7000;

/// A stack over 2048- or 4096-byte frames at `mtu`, multi-buffer as asked,
/// taking `weight` descriptors per poll.
fn stack(frame_size: u32, mtu: usize, multi_buffer: bool, weight: usize) -> (Stack<MemDevice>, MemWire) {
    let (umem, pool) = Umem::new(512, frame_size).unwrap();
    let umem = Arc::new(umem);
    let mut dev = MemDevice::new(umem.clone(), 128, 128);
    dev.set_multi_buffer(multi_buffer);
    let wire = dev.wire();
    let mut c = StackConfig::new(OUR_MAC, OUR_IP, 24);
    c.mtu = mtu;
    c.napi_weight = weight;
    (Stack::new(dev, umem, Arc::new(pool), c), wire)
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// An Ethernet frame with a UDP datagram of `payload` to our `PORT`.
fn udp_frame(payload: &[u8]) -> Vec<u8> {
    let udp = build::udp(PEER_IP, OUR_IP, &UdpRepr { src_port: 5555, dst_port: PORT, payload_len: 0 }, payload);
    let ip = build::ipv4(&build::ipv4_repr(PEER_IP, OUR_IP, protocol::UDP, 1), &udp);
    build::ethernet(&EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::IPV4 }, &ip)
}

fn bound(s: &mut Stack<MemDevice>) -> Fd {
    let fd = s.socket(SockType::Dgram).unwrap();
    s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT)).unwrap();
    fd
}

/// The peer asks for our MAC: its request teaches us its own.
fn learn_peer(s: &mut Stack<MemDevice>, w: &MemWire, now: Instant) {
    let repr = ArpRepr {
        operation: ArpOperation::Request,
        sender_hw: PEER_MAC,
        sender_ip: PEER_IP,
        target_hw: EthernetAddress::default(),
        target_ip: OUR_IP,
    };
    w.inject(&build::arp_frame(
        &EthernetRepr { dst: EthernetAddress::BROADCAST, src: PEER_MAC, ethertype: ethertype::ARP },
        &repr,
    ));
    s.poll(now);
    assert_eq!(w.take_transmitted().len(), 1, "one ARP reply");
}

fn assert_census(s: &Stack<MemDevice>) {
    let c = s.frame_census();
    assert_eq!(c.accounted(), c.total, "the frame census adds up: {c:?}");
}

/// Polls until the rx ring is drained (a few polls at most).
fn poll_all(s: &mut Stack<MemDevice>, now: Instant) {
    for _ in 0..16 {
        s.poll(now);
    }
}

#[test]
fn a_frame_in_two_descriptors_is_one_datagram() {
    let (mut s, wire) = stack(2048, 3000, true, 64);
    let fd = bound(&mut s);
    let p = pattern(2500);
    assert!(wire.inject(&udp_frame(&p)));
    poll_all(&mut s, Instant::now());
    let mut buf = vec![0u8; 4000];
    let (n, from) = s.recv_from(fd, &mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&p[..], SocketAddrV4::new(PEER_IP, 5555)));
    let d = s.device_stats();
    assert_eq!((d.xsk_rx_multibuf_packets, d.rx_dropped), (1, 0));
    assert_eq!(s.snmp().UdpInDatagrams, 1);
    assert_census(&s);
}

#[test]
fn without_multi_buffer_a_frame_larger_than_a_frame_is_dropped_by_the_device() {
    let (mut s, wire) = stack(2048, 3000, false, 64);
    let _fd = bound(&mut s);
    assert!(!wire.inject(&udp_frame(&pattern(2500))));
    poll_all(&mut s, Instant::now());
    assert_eq!(s.device_stats().rx_dropped, 1, "__xsk_rcv without XDP_USE_SG: rx_dropped");
    assert_census(&s);
}

/// A budget of 4 descriptors: the 9000-byte frame's six descriptors span
/// two or three batches; the packet is kept across them, nothing is lost.
#[test]
fn a_packet_split_across_rx_batches_is_kept_whole() {
    let (mut s, wire) = stack(2048, 9000, true, 4);
    let fd = bound(&mut s);
    let small = pattern(100);
    let big = pattern(8972);
    for p in [&small, &big, &small, &big, &small] {
        assert!(wire.inject(&udp_frame(p)));
    }
    let now = Instant::now();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 10000];
    for _ in 0..32 {
        s.poll(now);
        while let Ok((n, _)) = s.recv_from(fd, &mut buf) {
            got.push(buf[..n].to_vec());
        }
        assert_census(&s);
    }
    assert_eq!(got.len(), 5, "every datagram delivered");
    for (g, p) in got.iter().zip([&small, &big, &small, &big, &small]) {
        assert_eq!(g, p);
    }
    let d = s.device_stats();
    assert_eq!((d.xsk_rx_multibuf_packets, d.xsk_rx_multibuf_truncated, d.xsk_rx_multibuf_invalid), (2, 0, 0));
}

/// More descriptors than a 64 KiB packet needs: an invalid sequence, counted
/// once and dropped with every frame given back; the next packet is served.
#[test]
fn a_packet_of_too_many_descriptors_is_dropped_and_its_frames_returned() {
    let (mut s, wire) = stack(2048, 9000, true, 64);
    let fd = bound(&mut s);
    let head = udp_frame(&pattern(200));
    let tail = [0u8; 16];
    let mut pieces: Vec<(&[u8], bool)> = vec![(&head[..], true)];
    pieces.extend(std::iter::repeat_n((&tail[..], true), 64));
    pieces.push((&tail[..], false));
    assert!(wire.inject_descs(&pieces));
    let p = pattern(3000);
    assert!(wire.inject(&udp_frame(&p)));
    poll_all(&mut s, Instant::now());
    assert_census(&s);
    let d = s.device_stats();
    assert_eq!((d.xsk_rx_multibuf_too_big, d.xsk_rx_multibuf_packets), (1, 1));
    let mut buf = vec![0u8; 4000];
    let (n, _) = s.recv_from(fd, &mut buf).unwrap();
    assert_eq!(&buf[..n], &p[..]);
    assert!(s.recv_from(fd, &mut buf).is_err(), "the dropped packet was not delivered");
    // Every frame is back in circulation: the fill ring is full again.
    assert_eq!(s.frame_census().in_kernel, 128);
}

/// A packet cut short (`XDP_PKT_CONTD` on the last descriptor the ring
/// held), and one whose first piece is too short to hold its headers.
#[test]
fn a_packet_cut_short_and_an_invalid_head_are_counted_drops() {
    let (mut s, wire) = stack(2048, 9000, true, 64);
    let fd = bound(&mut s);
    let frame = udp_frame(&pattern(3000));
    assert!(wire.inject_descs(&[(&frame[..1792], true)]));
    poll_all(&mut s, Instant::now());
    assert_eq!(s.device_stats().xsk_rx_multibuf_truncated, 1);
    assert_census(&s);
    assert!(wire.inject_descs(&[(&frame[..60], true), (&frame[60..1852], true), (&frame[1852..], false)]));
    poll_all(&mut s, Instant::now());
    assert_eq!(s.device_stats().xsk_rx_multibuf_invalid, 1);
    assert_census(&s);
    let mut buf = vec![0u8; 4000];
    assert!(s.recv_from(fd, &mut buf).is_err(), "neither was delivered");
    // The device is ready for whole packets again.
    assert!(wire.inject(&frame));
    poll_all(&mut s, Instant::now());
    assert_eq!(s.recv_from(fd, &mut buf).unwrap().0, 3000);
    assert_census(&s);
}

/// A multi-buffer datagram to a closed port gets its port unreachable, as a
/// datagram in one frame does; one to the broadcast address does not.
#[test]
fn a_multi_buffer_datagram_to_a_closed_port() {
    let (mut s, wire) = stack(2048, 3000, true, 64);
    learn_peer(&mut s, &wire, Instant::now());
    assert!(wire.inject(&udp_frame(&pattern(2500))));
    poll_all(&mut s, Instant::now());
    assert_eq!(s.snmp().UdpNoPorts, 1);
    assert_eq!(s.snmp().IcmpOutDestUnreachs, 1);
    let sent = wire.take_transmitted();
    assert_eq!(sent.len(), 1);
    assert_census(&s);
}

/// The truncation example: 4096-byte frames at MTU 3000 take a
/// 2500-byte datagram in one frame, without multi-buffer, whole; the echo
/// goes out in one frame with DF (it fits the MTU and the frame).
#[test]
fn frame_size_4096_takes_and_sends_2500_bytes_in_one_frame() {
    let (mut s, wire) = stack(4096, 3000, false, 64);
    let fd = bound(&mut s);
    learn_peer(&mut s, &wire, Instant::now());
    let p = pattern(2500);
    assert!(wire.inject(&udp_frame(&p)));
    poll_all(&mut s, Instant::now());
    let mut buf = vec![0u8; 4000];
    let (n, from) = s.recv_from(fd, &mut buf).unwrap();
    assert_eq!(&buf[..n], &p[..], "not cut to 2048 bytes");
    s.send_to(fd, &buf[..n], from).unwrap();
    poll_all(&mut s, Instant::now());
    let sent = wire.take_transmitted();
    let frames: Vec<_> =
        sent.iter().filter(|f| EthernetFrame::new_unchecked(&f[..]).ethertype() == ethertype::IPV4).collect();
    assert_eq!(frames.len(), 1, "one frame");
    let ip = Ipv4Packet::new_unchecked(&frames[0][ETH_LEN..]);
    assert_eq!(ip.total_len(), 2528);
    assert!(ip.dont_fragment(), "DF, as Linux under IP_PMTUDISC_WANT");
    assert_census(&s);
}

/// With 2048-byte frames at MTU 3000, a send larger than a frame goes out in
/// fragments of at most a frame (no multi-buffer transmit yet), never cut.
#[test]
fn a_send_larger_than_a_frame_goes_out_in_frame_sized_fragments() {
    let (mut s, wire) = stack(2048, 3000, true, 64);
    let fd = bound(&mut s);
    learn_peer(&mut s, &wire, Instant::now());
    s.send_to(fd, &pattern(2500), SocketAddrV4::new(PEER_IP, 5555)).unwrap();
    poll_all(&mut s, Instant::now());
    let sent = wire.take_transmitted();
    let frags: Vec<_> =
        sent.iter().filter(|f| EthernetFrame::new_unchecked(&f[..]).ethertype() == ethertype::IPV4).collect();
    assert_eq!(frags.len(), 2, "two fragments");
    let total: usize = frags.iter().map(|f| Ipv4Packet::new_unchecked(&f[ETH_LEN..]).total_len() - 20).sum();
    assert_eq!(total, 2508);
    assert!(frags.iter().all(|f| f.len() <= 2048 - 256 + 14 + 20));
    assert_eq!(s.snmp().IpFragOKs, 1);
    assert_census(&s);
}

/// Fragments that are themselves multi-buffer frames (a 20000-byte datagram
/// at MTU 9000: three fragments of up to 8976 bytes, each in five or six
/// descriptors): each frame a piece of its fragment, the datagram rebuilt
/// over all of them; the fragment counts once in `IpReasmReqds`.
#[test]
fn fragments_in_multi_buffer_frames_are_reassembled() {
    let (mut s, wire) = stack(2048, 9000, true, 64);
    let fd = bound(&mut s);
    let p = pattern(20000);
    let udp = build::udp(PEER_IP, OUR_IP, &UdpRepr { src_port: 5555, dst_port: PORT, payload_len: 0 }, &p);
    let now = Instant::now();
    // Last fragment first: the queue takes them in any order.
    for off in [17952, 0, 8976] {
        let len = 8976.min(udp.len() - off);
        let repr = Ipv4Repr {
            dont_fragment: false,
            more_fragments: off + len < udp.len(),
            frag_offset: (off / 8) as u16,
            ..build::ipv4_repr(PEER_IP, OUR_IP, protocol::UDP, 77)
        };
        let ip = build::ipv4(&repr, &udp[off..off + len]);
        let frame = build::ethernet(&EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::IPV4 }, &ip);
        assert!(wire.inject(&frame));
        s.poll(now);
        assert_census(&s);
    }
    let mut buf = vec![0u8; 30000];
    let m = s.snmp();
    let (n, _) = s.recv_from(fd, &mut buf).unwrap_or_else(|e| {
        panic!("{e:?}: {:?} {:?}", s.device_stats(), m.iter().filter(|(_, v)| *v != 0).collect::<Vec<_>>())
    });
    assert_eq!(&buf[..n], &p[..]);
    assert_eq!((m.IpReasmReqds, m.IpReasmOKs, m.IpReasmFails, m.XskIpFragDups), (3, 1, 0, 0));
    assert_eq!(s.device_stats().xsk_rx_multibuf_packets, 3);
    assert_census(&s);
}

/// A TCP segment in a multi-buffer frame (a peer that sends more than our
/// MSS offered, at MTU 3000) goes to TCP whole: the 2500 bytes are read.
/// An echo request in a multi-buffer frame (`ping -s 2472` at MTU 3000) is
/// answered as Linux answers it: the reply, of the same 2480 bytes, in IP
/// fragments of at most one frame (xsknet sends no multi-buffer packets),
/// each a multiple of 8 but the last, which reassemble to the request with
/// its type turned into a reply and a valid checksum.
#[test]
fn an_echo_request_in_a_multi_buffer_frame_is_answered_in_fragments() {
    use xsknet::wire::icmp::{msg_type, IcmpPacket, IcmpRepr};
    use xsknet::wire::ipv4::Ipv4Packet;
    let (mut s, w) = stack(2048, 3000, true, 64);
    let t0 = Instant::now();
    learn_peer(&mut s, &w, t0);
    let mut echo = pattern(2480);
    IcmpRepr::echo(msg_type::ECHO_REQUEST, 0x4242, 7).emit(&mut IcmpPacket::new_unchecked(&mut echo[..]));
    IcmpPacket::new_unchecked(&mut echo[..]).fill_checksum();
    let ip = build::ipv4(&build::ipv4_repr(PEER_IP, OUR_IP, protocol::ICMP, 2), &echo);
    assert!(w.inject(&build::ethernet(&EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::IPV4 }, &ip)));
    poll_all(&mut s, t0);
    let out = w.take_transmitted();
    assert!(out.len() >= 2, "fragments: {}", out.len());
    let mut reply = vec![0u8; 2480];
    let mut got = 0;
    for (i, f) in out.iter().enumerate() {
        let p = Ipv4Packet::new_checked(&f[ETH_LEN..]).unwrap();
        assert!(f.len() <= 2048, "one frame each");
        let offset = usize::from(p.frag_offset()) * 8;
        let data = p.payload();
        assert_eq!(p.more_fragments(), i + 1 < out.len());
        assert!(!p.dont_fragment(), "no DF: Linux's ICMP socket does IP_PMTUDISC_DONT");
        if p.more_fragments() {
            assert_eq!(data.len() % 8, 0);
        }
        reply[offset..offset + data.len()].copy_from_slice(data);
        got += data.len();
    }
    assert_eq!(got, 2480);
    assert_eq!(reply[0], msg_type::ECHO_REPLY);
    assert_eq!(&reply[4..], &echo[4..], "id, sequence and data as sent");
    assert!(IcmpPacket::new_checked(&reply[..]).unwrap().verify_checksum());
    let m = s.snmp();
    assert_eq!((m.IcmpInEchos, m.IcmpOutEchoReps, m.XskIpInMultiBufUnsupported), (1, 1, 0));
    assert_eq!((m.IpFragOKs, m.IpFragCreates), (1, out.len() as u64));
    assert_census(&s);
}

#[test]
fn a_tcp_segment_in_a_multi_buffer_frame_is_taken() {
    use xsknet::wire::tcp::{flags, TcpOptions, TcpPacket, TcpRepr};
    let (mut s, w) = stack(2048, 3000, true, 64);
    let t0 = Instant::now();
    learn_peer(&mut s, &w, t0);
    let l = s.socket(SockType::Stream).unwrap();
    s.bind(l, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80)).unwrap();
    s.listen(l, 16).unwrap();
    let frame = |seq: u32, ack: u32, fl: u8, data: &[u8]| {
        let r = TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq,
            ack,
            flags: fl,
            window: 64240,
            options: if fl & flags::SYN != 0 {
                TcpOptions { mss: Some(2960), ..TcpOptions::default() }
            } else {
                TcpOptions::default()
            },
            ..TcpRepr::default()
        };
        let tcp = build::tcp(PEER_IP, OUR_IP, &r, data);
        let ip = build::ipv4(&build::ipv4_repr(PEER_IP, OUR_IP, protocol::TCP, 1), &tcp);
        build::ethernet(&EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::IPV4 }, &ip)
    };
    assert!(w.inject(&frame(1000, 0, flags::SYN, &[])));
    poll_all(&mut s, t0);
    let out = w.take_transmitted();
    assert_eq!(out.len(), 1, "the SYN-ACK");
    let sa = TcpRepr::parse(&TcpPacket::new_unchecked(&out[0][ETH_LEN + 20..]));
    assert!(w.inject(&frame(1001, sa.seq + 1, flags::ACK, &[])));
    poll_all(&mut s, t0);
    let (fd, _) = s.accept(l).expect("the connection");
    let p = pattern(2500);
    assert!(w.inject(&frame(1001, sa.seq + 1, flags::ACK | flags::PSH, &p)));
    poll_all(&mut s, t0);
    let mut buf = vec![0u8; 4000];
    assert_eq!(s.recv(fd, &mut buf), Ok(2500));
    assert_eq!(&buf[..2500], &p[..]);
    assert_eq!((s.device_stats().xsk_rx_multibuf_packets, s.snmp().XskIpInMultiBufUnsupported), (1, 0));
    s.close(fd).unwrap();
    s.close(l).unwrap();
    poll_all(&mut s, t0);
    assert_census(&s);
}
