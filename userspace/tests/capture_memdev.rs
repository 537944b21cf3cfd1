//! Packet capture over the in-memory device: every dropping path hands its
//! frame to a drop capture with its reason, the counters agree with the
//! file, and a capture of everything sees each frame in and out once.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use xsknet::capture::{drop_comment, CaptureMode, CaptureOptions, CaptureTap};
use xsknet::netdevice::{MemDevice, MemWire};
use xsknet::snmp::MibCounter;
use xsknet::umem::Umem;
use xsknet::wire::arp::{ArpOperation, ArpRepr};
use xsknet::wire::ethernet::{ethertype, EthernetRepr, HEADER_LEN as ETH_LEN};
use xsknet::wire::icmp::{msg_type, IcmpRepr};
use xsknet::wire::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use xsknet::wire::tcp::{flags, TcpRepr};
use xsknet::wire::udp::UdpRepr;
use xsknet::wire::{build, EthernetAddress};
use xsknet::{SockType, Stack, StackConfig};

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn stack(rcvbuf: usize) -> (Stack<MemDevice>, MemWire) {
    let (umem, pool) = Umem::new(256, 2048).unwrap();
    let umem = Arc::new(umem);
    let dev = MemDevice::new(umem.clone(), 64, 64);
    let wire = dev.wire();
    let mut c = StackConfig::new(OUR_MAC, OUR_IP, 24);
    c.rcvbuf = rcvbuf;
    (Stack::new(dev, umem, Arc::new(pool), c), wire)
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("xsknet-capture-memdev-{}-{name}.pcapng", std::process::id()))
}

/// One captured frame: interface, EPB flags, bytes, comment.
type Captured = (u32, u32, Vec<u8>, Option<String>);

fn read_back(path: &Path) -> Vec<Captured> {
    let mut r = PcapNgReader::new(File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(b) = r.next_block() {
        if let Block::EnhancedPacket(p) = b.unwrap() {
            let (mut fl, mut comment) = (0, None);
            for o in &p.options {
                match o {
                    EnhancedPacketOption::Flags(f) => fl = *f,
                    EnhancedPacketOption::Comment(c) => comment = Some(c.to_string()),
                    _ => {}
                }
            }
            out.push((p.interface_id, fl, p.data.to_vec(), comment));
        }
    }
    out
}

fn ip(src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> Ipv4Repr {
    build::ipv4_repr(src, dst, proto, 0x1234)
}

fn eth(dst: EthernetAddress, ty: u16) -> EthernetRepr {
    EthernetRepr { dst, src: PEER_MAC, ethertype: ty }
}

fn udp_frame(dport: u16, payload: &[u8]) -> Vec<u8> {
    build::udp_frame(
        &eth(OUR_MAC, ethertype::IPV4),
        &ip(PEER_IP, OUR_IP, protocol::UDP),
        &UdpRepr { src_port: 40000, dst_port: dport, payload_len: 0 },
        payload,
    )
}

/// `f` applied to the IPv4 header of `frame`, checksum refilled.
fn mangle_ip(mut frame: Vec<u8>, f: impl FnOnce(&mut Ipv4Packet<&mut [u8]>)) -> Vec<u8> {
    let mut p = Ipv4Packet::new_unchecked(&mut frame[ETH_LEN..]);
    f(&mut p);
    p.fill_checksum();
    frame
}

fn tcp_frame(flags_: u8) -> Vec<u8> {
    let repr =
        TcpRepr { src_port: 40000, dst_port: 9, seq: 1, ack: 0, flags: flags_, window: 1000, ..TcpRepr::default() };
    build::tcp_frame(&eth(OUR_MAC, ethertype::IPV4), &ip(PEER_IP, OUR_IP, protocol::TCP), &repr, &[])
}

/// Each received frame the stack drops, with the counter it must be
/// captured under.
fn bad_frames() -> Vec<(MibCounter, Vec<u8>)> {
    let udp = udp_frame(7, b"hello");
    let l4 = ETH_LEN + 20;
    let mut v = vec![
        (MibCounter::XskRxRunts, vec![0u8; 10]),
        (MibCounter::XskRxOtherHost, {
            let mut f = udp.clone();
            f[..6].copy_from_slice(&[2, 9, 9, 9, 9, 9]);
            f
        }),
        (MibCounter::XskRxNoHandler, build::ethernet(&eth(OUR_MAC, 0x86dd), &[0u8; 40])),
        (MibCounter::IpInHdrErrors, {
            // Version 6 in an IPv4 frame, checksum right.
            let mut f = udp.clone();
            f[ETH_LEN] = 0x65;
            mangle_ip(f, |_| {})
        }),
        (MibCounter::IpExtInCsumErrors, {
            let mut f = udp.clone();
            f[ETH_LEN + 10] ^= 0xff;
            f
        }),
        (MibCounter::IpExtInTruncatedPkts, mangle_ip(udp.clone(), |p| p.set_total_len(1000))),
        (MibCounter::IpInAddrErrors, mangle_ip(udp.clone(), |p| p.set_dst_addr(Ipv4Addr::new(10, 0, 0, 77)))),
        (MibCounter::XskIpInMartianSrc, mangle_ip(udp.clone(), |p| p.set_src_addr(Ipv4Addr::BROADCAST))),
        // A fragment of fewer than 8 bytes with MF: no bytes once cut to a
        // multiple of 8, so ip_frag_queue drops it (and its queue).
        (
            MibCounter::IpReasmFails,
            mangle_ip(udp.clone(), |p| {
                p.set_fragment(false, true, 0);
                p.set_total_len(27);
            }),
        ),
        (
            MibCounter::IpInUnknownProtos,
            build::ipv4_frame(&eth(OUR_MAC, ethertype::IPV4), &ip(PEER_IP, OUR_IP, 99), &[0; 8]),
        ),
        (MibCounter::UdpInErrors, {
            let mut f = udp.clone();
            f[l4 + 4..l4 + 6].copy_from_slice(&3u16.to_be_bytes()); // UDP length below the header's
            f
        }),
        (MibCounter::UdpInCsumErrors, {
            let mut f = udp.clone();
            f[l4 + 8] ^= 0xff;
            f
        }),
        (MibCounter::UdpNoPorts, udp_frame(9, b"closed")),
        (MibCounter::TcpInErrs, {
            let mut f = tcp_frame(flags::SYN);
            f[l4 + 12] = 4 << 4; // data offset 4 words
            f
        }),
        (MibCounter::TcpInCsumErrors, {
            let mut f = tcp_frame(flags::SYN);
            f[l4 + 16] ^= 0xff;
            f
        }),
        (MibCounter::IcmpInCsumErrors, {
            let mut f = build::icmp_frame(
                &eth(OUR_MAC, ethertype::IPV4),
                &ip(PEER_IP, OUR_IP, protocol::ICMP),
                &IcmpRepr::echo(msg_type::ECHO_REQUEST, 1, 1),
                b"x",
            );
            f[l4 + 2] ^= 0xff;
            f
        }),
        (MibCounter::IcmpInErrors, {
            let mut f = build::icmp_frame(
                &eth(OUR_MAC, ethertype::IPV4),
                &ip(PEER_IP, OUR_IP, protocol::ICMP),
                &IcmpRepr::echo(msg_type::ECHO_REQUEST, 1, 1),
                b"x",
            );
            // Type 40 (above NR_ICMP_TYPES), checksum adjusted for it.
            f[l4] = 40;
            f[l4 + 2..l4 + 4].copy_from_slice(&[0, 0]);
            let sum = xsknet::wire::checksum::checksum(&f[l4..]);
            f[l4 + 2..l4 + 4].copy_from_slice(&sum.to_be_bytes());
            f
        }),
    ];
    let arp = ArpRepr {
        operation: ArpOperation::Request,
        sender_hw: PEER_MAC,
        sender_ip: Ipv4Addr::new(224, 0, 0, 1),
        target_hw: EthernetAddress::default(),
        target_ip: OUR_IP,
    };
    v.push((MibCounter::XskArpInErrors, build::arp_frame(&eth(EthernetAddress::BROADCAST, ethertype::ARP), &arp)));
    v
}

#[test]
fn every_receive_drop_is_captured_with_its_reason() {
    let path = tmp("rx-drops");
    let (mut s, w) = stack(xsknet::sock::DEFAULT_RCVBUF);
    let fd = s.socket(SockType::Dgram).unwrap();
    s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    s.attach_capture(CaptureTap::start(&CaptureOptions::new(&path, CaptureMode::Drops, 2048)).unwrap());
    let frames = bad_frames();
    for (reason, f) in &frames {
        let before = s.snmp().value(*reason);
        assert!(w.inject(f));
        s.poll(Instant::now());
        assert_eq!(s.snmp().value(*reason), before + 1, "{}", reason.name());
    }
    // A good datagram is not a drop.
    assert!(w.inject(&udp_frame(7, b"fine")));
    s.poll(Instant::now());
    let sum = s.detach_capture().unwrap().finish();
    assert_eq!((sum.frames_written, sum.capture_drops), (frames.len() as u64, 0), "{sum:?}");
    let got = read_back(&path);
    assert_eq!(got.len(), frames.len());
    for ((reason, sent), (iface, fl, data, comment)) in frames.iter().zip(&got) {
        assert_eq!(comment.as_deref(), Some(drop_comment(*reason).as_str()));
        assert_eq!((*iface, *fl, data), (0, 1, sent), "{}: captured as received, inbound", reason.name());
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn drops_on_the_way_out_are_captured_without_a_next_hop() {
    let path = tmp("tx-drops");
    let (mut s, w) = stack(4 * 2048);
    let fd = s.socket(SockType::Dgram).unwrap();
    s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    s.attach_capture(CaptureTap::start(&CaptureOptions::new(&path, CaptureMode::Drops, 2048)).unwrap());
    // A ping from off the subnet, no gateway: the reply has no route.
    let far = Ipv4Addr::new(192, 0, 2, 1);
    let ping = build::icmp_frame(
        &eth(OUR_MAC, ethertype::IPV4),
        &ip(far, OUR_IP, protocol::ICMP),
        &IcmpRepr::echo(msg_type::ECHO_REQUEST, 1, 1),
        b"ping",
    );
    let t0 = Instant::now();
    assert!(w.inject(&ping));
    s.poll(t0);
    // A datagram to an on-link host that never answers ARP.
    let silent = Ipv4Addr::new(10, 0, 0, 9);
    s.send_to(fd, b"anyone?", SocketAddrV4::new(silent, 9)).unwrap();
    for i in 0..10 {
        s.poll(t0 + Duration::from_secs(i));
    }
    // More datagrams than the receive buffer holds.
    for _ in 0..8 {
        assert!(w.inject(&udp_frame(7, b"fill")));
    }
    s.poll(t0 + Duration::from_secs(11));
    let m = s.snmp();
    assert_eq!((m.IpOutNoRoutes, m.XskNeighUnresDiscards), (1, 1));
    assert!(m.UdpRcvbufErrors > 0);
    let sum = s.detach_capture().unwrap().finish();
    let got = read_back(&path);
    assert_eq!(sum.frames_written, got.len() as u64);
    let mut by_reason: BTreeMap<String, Vec<&Captured>> = BTreeMap::new();
    for c in &got {
        by_reason.entry(c.3.clone().unwrap()).or_default().push(c);
    }
    let no_route = &by_reason[&drop_comment(MibCounter::IpOutNoRoutes)];
    assert_eq!(no_route.len(), 1);
    // No next hop: an Ethernet header with zero addresses, EtherType IPv4.
    let no_next_hop = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
    let (iface, fl, data, _) = no_route[0];
    let reply = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&data[ETH_LEN..])).unwrap();
    assert_eq!((*iface, *fl, &data[..ETH_LEN]), (0, 2, &no_next_hop[..]), "outbound");
    assert_eq!((reply.dst, reply.protocol), (far, protocol::ICMP));
    let unres = &by_reason[&drop_comment(MibCounter::XskNeighUnresDiscards)];
    let (_, _, data, _) = unres[0];
    let dgram = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&data[ETH_LEN..])).unwrap();
    assert_eq!((unres.len(), &data[..ETH_LEN], dgram.dst), (1, &no_next_hop[..], silent));
    assert_eq!(by_reason[&drop_comment(MibCounter::UdpRcvbufErrors)].len() as u64, m.UdpRcvbufErrors);
    assert_eq!(by_reason.len(), 3, "{:?}", by_reason.keys());
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_capture_of_everything_sees_each_frame_in_and_out() {
    let path = tmp("all");
    let (mut s, w) = stack(xsknet::sock::DEFAULT_RCVBUF);
    let fd = s.socket(SockType::Dgram).unwrap();
    s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    let mut o = CaptureOptions::new(&path, CaptureMode::All, 2048);
    o.snaplen = 50;
    s.attach_capture(CaptureTap::start(&o).unwrap());
    // Learn the peer, then echo 5 datagrams and refuse one.
    let arp = ArpRepr {
        operation: ArpOperation::Request,
        sender_hw: PEER_MAC,
        sender_ip: PEER_IP,
        target_hw: EthernetAddress::default(),
        target_ip: OUR_IP,
    };
    let arp = build::arp_frame(&eth(EthernetAddress::BROADCAST, ethertype::ARP), &arp);
    assert!(w.inject(&arp));
    s.poll(Instant::now());
    let mut sent = vec![arp];
    for i in 0..5u8 {
        let f = udp_frame(7, &[i; 100]);
        assert!(w.inject(&f));
        sent.push(f);
        s.poll(Instant::now());
        let mut buf = [0u8; 200];
        let (n, peer) = s.recv_from(fd, &mut buf).unwrap();
        s.send_to(fd, &buf[..n], peer).unwrap();
        s.poll(Instant::now());
    }
    let closed = udp_frame(9, b"closed");
    assert!(w.inject(&closed));
    sent.push(closed);
    s.poll(Instant::now());
    let out = w.take_transmitted();
    assert_eq!(out.len(), 1 + 5 + 1, "ARP reply, 5 echoes, 1 port unreachable");
    let m = s.snmp();
    assert_eq!(m.XskCaptureDrops, 0);
    let sum = s.detach_capture().unwrap().finish();
    let got = read_back(&path);
    assert_eq!(sum.frames_written as usize, sent.len() + out.len());
    let inbound: Vec<&Captured> = got.iter().filter(|c| c.1 == 1).collect();
    let outbound: Vec<&Captured> = got.iter().filter(|c| c.1 == 2).collect();
    assert_eq!(inbound.len(), sent.len());
    assert_eq!(outbound.len(), out.len());
    for (c, f) in inbound.iter().zip(&sent).chain(outbound.iter().zip(&out)) {
        assert_eq!(&c.2[..], &f[..f.len().min(50)], "cut to the snap length");
        assert_eq!((c.0, c.3.as_deref()), (0, None));
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_full_capture_queue_is_counted_not_the_traffic() {
    let path = tmp("full");
    let (mut s, w) = stack(xsknet::sock::DEFAULT_RCVBUF);
    let fd = s.socket(SockType::Dgram).unwrap();
    s.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    let mut o = CaptureOptions::new(&path, CaptureMode::All, 2048);
    o.slots = 1;
    s.attach_capture(CaptureTap::start(&o).unwrap());
    for _ in 0..60 {
        assert!(w.inject(&udp_frame(7, &[1; 64])));
    }
    s.poll(Instant::now());
    let m = s.snmp();
    // Every datagram reached the socket, captured or not.
    assert_eq!((m.XskRxFrames, m.UdpRcvbufErrors), (60, 0));
    let mut buf = [0u8; 100];
    let mut read = 0;
    while s.recv_from(fd, &mut buf).is_ok() {
        read += 1;
    }
    assert_eq!(read, 60);
    // One slot for 60 frames in one poll: the writer cannot keep up.
    assert!(m.XskCaptureDrops > 0, "{m:?}");
    let sum = s.detach_capture().unwrap().finish();
    assert_eq!(sum.capture_drops, m.XskCaptureDrops);
    assert_eq!(sum.frames_written + sum.capture_drops, 60);
    assert_eq!(read_back(&path).len() as u64, sum.frames_written);
    std::fs::remove_file(&path).unwrap();
}
