//! A PSH segment wakes a reader blocked in `recv` (threaded mode), and the
//! time from the segment's arrival to the read is measured.
//!
//! The loop runs on its own thread (`ThreadedStack`) over the in-memory
//! device; the test plays the peer with literal segments. Linux wakes the
//! reader for every in-order segment (`tcp_data_ready`); xsknet does the same
//! at once, not at the end of the rx batch, so a PSH never waits.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xsknet::netdevice::{MemDevice, MemWire};
use xsknet::umem::Umem;
use xsknet::wire::ethernet::{ethertype, EthernetRepr};
use xsknet::wire::ipv4::{protocol, Ipv4Packet};
use xsknet::wire::tcp::{flags, TcpOptions, TcpPacket, TcpRepr};
use xsknet::wire::{build, EthernetAddress};
use xsknet::{SockType, Stack, StackConfig, ThreadedStack};

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PORT: u16 = 7;
const PEER_PORT: u16 = 40000;

fn segment(seq: u32, ack: u32, fl: u8, options: TcpOptions, payload: &[u8]) -> Vec<u8> {
    let eth = EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::IPV4 };
    let ip = build::ipv4_repr(PEER_IP, OUR_IP, protocol::TCP, 1);
    let repr = TcpRepr {
        src_port: PEER_PORT,
        dst_port: PORT,
        seq,
        ack,
        flags: fl,
        window: 502,
        urgent: 0,
        options,
        payload_len: payload.len(),
    };
    build::tcp_frame(&eth, &ip, &repr, payload)
}

/// The next TCP segment the stack sends, waiting for the loop thread.
fn next_sent(wire: &MemWire) -> TcpRepr {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        for f in wire.take_transmitted() {
            let Ok(ip) = Ipv4Packet::new_checked(&f[14..]) else { continue };
            if ip.protocol() == protocol::TCP {
                wire.complete_transmitted();
                return TcpRepr::parse(&TcpPacket::new_checked(ip.payload()).expect("TCP"));
            }
        }
        assert!(Instant::now() < deadline, "the loop sent no TCP segment within 5 s");
        std::thread::yield_now();
    }
}

#[test]
fn a_psh_segment_wakes_a_blocked_reader_at_once() {
    let (umem, pool) = Umem::new(256, 2048).unwrap();
    let umem = Arc::new(umem);
    let dev = MemDevice::new(umem.clone(), 64, 64);
    let wire = dev.wire();
    let mut cfg = StackConfig::new(OUR_MAC, OUR_IP, 24);
    cfg.rx_latency_sample = 1;
    let stack = Stack::new(dev, umem, Arc::new(pool), cfg);
    let t = ThreadedStack::spawn(stack).unwrap();
    let h = t.handle();
    let lfd = h.socket(SockType::Stream).unwrap();
    h.bind(lfd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT)).unwrap();
    h.listen(lfd, 8).unwrap();
    // The peer learns our MAC as a kernel would; our side learns the peer's from its ARP.
    let arp = xsknet::wire::arp::ArpRepr {
        operation: xsknet::wire::arp::ArpOperation::Request,
        sender_hw: PEER_MAC,
        sender_ip: PEER_IP,
        target_hw: EthernetAddress::default(),
        target_ip: OUR_IP,
    };
    let eth = EthernetRepr { dst: EthernetAddress::BROADCAST, src: PEER_MAC, ethertype: ethertype::ARP };
    assert!(wire.inject(&build::arp_frame(&eth, &arp)));

    let syn_opts = TcpOptions { mss: Some(1460), window_scale: Some(7), sack_permitted: true, ..Default::default() };
    assert!(wire.inject(&segment(5000, 0, flags::SYN, syn_opts, &[])));
    let synack = next_sent(&wire);
    assert_eq!(synack.flags, flags::SYN | flags::ACK);
    let our = synack.seq.wrapping_add(1);
    assert!(wire.inject(&segment(5001, our, flags::ACK, TcpOptions::default(), &[])));
    let (fd, peer) = h.accept(lfd, Some(Duration::from_secs(5))).expect("accept");
    assert_eq!(peer, SocketAddrV4::new(PEER_IP, PEER_PORT));

    let mut wakes = Vec::new();
    let mut seq = 5001u32;
    for round in 0..20u8 {
        let reader = {
            let h = h.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                let n = h.recv(fd, &mut buf, Some(Duration::from_secs(10))).expect("recv");
                (buf[..n].to_vec(), Instant::now())
            })
        };
        // Let the reader reach its sleep: this waits for a thread, not for a protocol timer.
        std::thread::sleep(Duration::from_millis(5));
        let payload = [b'a' + round; 12];
        let sent_at = Instant::now();
        assert!(wire.inject(&segment(seq, our, flags::PSH | flags::ACK, TcpOptions::default(), &payload)));
        seq = seq.wrapping_add(payload.len() as u32);
        let (got, woke_at) = reader.join().unwrap();
        assert_eq!(got, payload, "round {round}");
        wakes.push(woke_at.duration_since(sent_at));
        // Our ACK (a quick ACK at the start of the connection).
        let ack = next_sent(&wire);
        assert_eq!(ack.ack, seq, "round {round}: the data is acknowledged");
    }
    wakes.sort();
    let p50 = wakes[wakes.len() / 2];
    let max = wakes[wakes.len() - 1];
    println!("PSH segment on the rx ring -> blocked reader back from recv: p50 {p50:?}, max {max:?} (20 rounds)");
    // Woken by the segment, not by the 10 s timeout: far below it on any machine.
    assert!(max < Duration::from_secs(2), "a reader slept through a PSH segment: {wakes:?}");
    let snap = h.snapshot().unwrap();
    assert_eq!(snap.rx_latency.count(), 20, "every read timed from the rx ring");
    println!(
        "rx ring to read (the stack's own histogram): p50 {:.1} µs, max {:.1} µs",
        snap.rx_latency.summary().p50_ns as f64 / 1000.0,
        snap.rx_latency.summary().max_ns as f64 / 1000.0
    );
    h.close(fd).unwrap();
    h.close(lfd).unwrap();
    let (s, _) = t.stop().unwrap();
    let c = s.frame_census();
    assert_eq!(c.accounted(), c.total, "{c:?}");
}
