//! Micro-benchmarks of the softirq path over the in-memory device: the per-packet cost of
//! xsknet without the kernel (issue 4, item 4).
//!
//! Receive (`rx/*`): a batch of 64 UDP frames is put on the `MemDevice`'s rx ring **outside
//! the timed part** (that copy is the NIC's DMA, not ours); the timed part is one
//! `Stack::poll` (rx ring → parse Ethernet/IPv4/UDP → validate both checksums → demux →
//! `queue_rcv` on the bound sock → refill the fill ring) followed by the application reading
//! every datagram until `EAGAIN` (as `xsknet sink`/`echo` do), which recycles each frame to the
//! loop's free cache. One criterion iteration is one packet (`Throughput::Elements(1)`), so
//! criterion's time is ns per packet and its throughput packets per second on one core. The
//! timed part includes one pair of clock reads per batch (under 0.5 ns per packet here).
//!
//! * `recv_with`: the zero-copy read (`Stack::recv_with`), the path of `xsknet sink`.
//! * `recv_from`: the copying read into a 2048-byte buffer (`Stack::recv_from`), `xsknet echo`.
//!
//! Sizes: 64-byte frames (60 bytes without FCS: 18 bytes of UDP payload) and 1500-byte IP
//! datagrams (1514 bytes without FCS: 1472 bytes of payload, the UDP checksum over 1480).
//!
//! Transmit (`tx/*`): 64 `send_to` calls (copy into a frame, write queue), then one poll
//! (UDP/IP/Ethernet headers, UDP checksum, tx batch → device), all timed; the "NIC" then
//! completes the frames untimed, and the next timed poll reaps the completion ring.
//!
//! The stack runs with `xsknet`'s defaults, among them the per-stage latency sampling of
//! one datagram in `DEFAULT_RX_LATENCY_SAMPLE` (61) on receive and one send in 61 on
//! transmit (`tx/*` includes following that send to the tx ring and its completion). `rx-sample-all/*` stamps and times every
//! datagram instead (`rx_latency_sample = 1`: a clock read per read), to show what that costs.
//!
//! TCP (`tcp-rx/recv`): an established connection (a scripted handshake), 32 in-order
//! 1460-byte segments injected untimed per batch, then one timed poll (checksum, lookup, the
//! state machine, the copy into the receive buffer, an ACK every second segment) and `recv`
//! into a 64 KiB buffer until `EAGAIN`. One iteration is one segment.
//!
//! Publication (`publish/every-100ms`): one publication of the counters for the control
//! endpoint and `--metrics` (`Stack::publish`: the MIB, the loop's and the scheduler's
//! figures, the frame census, the three stage histograms, written to the statistics page), as
//! the loop makes one every 100 ms. One iteration is one publication: its time divided by
//! 100 ms is the share of the loop it takes.
//!
//! Run: `cargo bench -p xsknet-bench --bench softirq` (add a filter such as `rx/recv_with` to
//! run some). Goals (issue 4): ≤ 25 ns per 64-byte packet, ≤ 80 ns per 1500-byte packet.
//! On a shared VM the figures move with the neighbours' load (±15 %): compare runs made
//! back to back, and prefer the quietest.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use xsknet::netdevice::{MemDevice, MemWire};
use xsknet::umem::Umem;
use xsknet::wire::arp::{ArpOperation, ArpRepr};
use xsknet::wire::ethernet::{ethertype, EthernetRepr};
use xsknet::wire::ipv4::{protocol, Ipv4Packet};
use xsknet::wire::tcp::{flags, TcpOptions, TcpPacket, TcpRepr};
use xsknet::wire::udp::UdpRepr;
use xsknet::wire::{build, EthernetAddress};
use xsknet::{Fd, SockType, Stack, StackConfig};

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PORT: u16 = 7;
/// NAPI's weight: the loop's rx batch.
const BATCH: u64 = 64;
/// `xsknet`'s defaults: 4096 frames of 2048 bytes, rings of 2048.
const FRAMES: u32 = 4096;
const RING: usize = 2048;

/// Frame sizes without FCS, and their UDP payloads.
const SIZES: [(usize, &str); 2] = [(18, "64"), (1472, "1500")];

struct Bench {
    stack: Stack<MemDevice>,
    wire: MemWire,
    fd: Fd,
}

fn setup() -> Bench {
    setup_with(|_| {})
}

fn setup_with(tweak: impl FnOnce(&mut StackConfig)) -> Bench {
    let (umem, pool) = Umem::new(FRAMES, 2048).expect("UMEM");
    let umem = Arc::new(umem);
    let dev = MemDevice::new(umem.clone(), RING, RING);
    let wire = dev.wire();
    let mut cfg = StackConfig::new(OUR_MAC, OUR_IP, 24);
    tweak(&mut cfg);
    let mut stack = Stack::new(dev, umem, Arc::new(pool), cfg);
    let fd = stack.socket(SockType::Dgram).expect("socket");
    stack.bind(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT)).expect("bind");
    // The peer asks for us, so the tx benchmark finds its neighbour resolved.
    let request = ArpRepr {
        operation: ArpOperation::Request,
        sender_hw: PEER_MAC,
        sender_ip: PEER_IP,
        target_hw: EthernetAddress::default(),
        target_ip: OUR_IP,
    };
    let eth = EthernetRepr { dst: EthernetAddress::BROADCAST, src: PEER_MAC, ethertype: ethertype::ARP };
    let arp = build::arp_frame(&eth, &request);
    assert!(wire.inject(&arp));
    stack.poll(std::time::Instant::now());
    assert_eq!(wire.take_transmitted().len(), 1, "ARP reply");
    Bench { stack, wire, fd }
}

/// An Ethernet + IPv4 + UDP frame from the peer to our bound port, checksums filled in.
fn udp_frame(payload_len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..payload_len).map(|i| i as u8).collect();
    let eth = EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::IPV4 };
    let ip = build::ipv4_repr(PEER_IP, OUR_IP, protocol::UDP, 1);
    build::udp_frame(&eth, &ip, &UdpRepr { src_port: 40000, dst_port: PORT, payload_len }, &payload)
}

#[derive(Clone, Copy)]
enum Read {
    With,
    From,
}

/// Times `iters` packets through poll + reads, injecting each batch of 64 untimed.
fn rx_iters(b: &mut Bench, frame: &[u8], read: Read, buf: &mut [u8], iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = BATCH.min(iters - done);
        for _ in 0..n {
            assert!(b.wire.inject(frame), "the rx ring took the frame");
        }
        let mut got = 0u64;
        let t = Instant::now();
        b.stack.poll(std::time::Instant::now());
        match read {
            Read::With => {
                while let Ok(len) = b.stack.recv_with(b.fd, |data, _peer| data.len()) {
                    black_box(len);
                    got += 1;
                }
            }
            Read::From => {
                while let Ok((len, _peer)) = b.stack.recv_from(b.fd, buf) {
                    black_box((len, &buf[..8]));
                    got += 1;
                }
            }
        }
        total += t.elapsed();
        assert_eq!(got, n, "every datagram delivered and read");
        done += n;
    }
    total
}

fn rx(c: &mut Criterion) {
    let mut g = c.benchmark_group("rx");
    g.throughput(Throughput::Elements(1));
    for (payload, label) in SIZES {
        let frame = udp_frame(payload);
        for (read, name) in [(Read::With, "recv_with"), (Read::From, "recv_from")] {
            let mut b = setup();
            let mut buf = vec![0u8; 2048];
            g.bench_function(BenchmarkId::new(name, label), |bn| {
                bn.iter_custom(|iters| rx_iters(&mut b, &frame, read, &mut buf, iters))
            });
            check(&b);
        }
    }
    g.finish();
}

/// Every datagram stamped and its latency recorded (a clock read per read).
fn rx_sample_all(c: &mut Criterion) {
    let mut g = c.benchmark_group("rx-sample-all");
    g.throughput(Throughput::Elements(1));
    for (payload, label) in SIZES {
        let frame = udp_frame(payload);
        let mut b = setup_with(|cfg| cfg.rx_latency_sample = 1);
        let mut buf = vec![0u8; 2048];
        g.bench_function(BenchmarkId::new("recv_with", label), |bn| {
            bn.iter_custom(|iters| rx_iters(&mut b, &frame, Read::With, &mut buf, iters))
        });
        check(&b);
        let h = b.stack.rx_latency();
        assert_eq!(h.count(), b.stack.snmp().UdpInDatagrams, "every datagram timed");
    }
    g.finish();
}

/// Nothing dropped, every frame accounted for.
fn check(b: &Bench) {
    let m = b.stack.snmp();
    assert_eq!(m.UdpInErrors + m.IpInHdrErrors + m.XskRxOtherHost, 0, "no drops: {m:?}");
    let census = b.stack.frame_census();
    assert_eq!(census.accounted(), census.total, "frames lost: {census:?}");
}

/// Times `iters` datagrams through send_to + poll; the NIC completes untimed.
fn tx_iters(b: &mut Bench, payload: &[u8], iters: u64) -> Duration {
    let dst = SocketAddrV4::new(PEER_IP, 40000);
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = BATCH.min(iters - done);
        let t = Instant::now();
        for _ in 0..n {
            b.stack.send_to(b.fd, payload, dst).expect("send_to");
        }
        let r = b.stack.poll(std::time::Instant::now());
        total += t.elapsed();
        assert_eq!(r.tx as u64, n, "the whole batch went to the device");
        b.wire.complete_transmitted();
        done += n;
    }
    total
}

fn tx(c: &mut Criterion) {
    let mut g = c.benchmark_group("tx");
    g.throughput(Throughput::Elements(1));
    for (payload_len, label) in SIZES {
        let payload: Vec<u8> = (0..payload_len).map(|i| i as u8).collect();
        let mut b = setup();
        g.bench_function(BenchmarkId::new("send_to", label), |bn| {
            bn.iter_custom(|iters| tx_iters(&mut b, &payload, iters))
        });
        let census = b.stack.frame_census();
        assert_eq!(census.accounted(), census.total, "frames lost: {census:?}");
    }
    g.finish();
}

/// An established TCP connection: the peer's next sequence number, ours, and the accepted fd.
struct TcpBench {
    stack: Stack<MemDevice>,
    wire: MemWire,
    fd: Fd,
    peer_seq: u32,
    our_seq: u32,
}

/// TCP segments per timed batch: half the receive buffer's worth of 1460-byte segments, so
/// the batch always fits the window offered at the end of the previous one.
const TCP_BATCH: u64 = 32;
const MSS: usize = 1460;

fn tcp_frame(seq: u32, ack: u32, flags: u8, options: TcpOptions, payload: &[u8]) -> Vec<u8> {
    let eth = EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::IPV4 };
    let ip = build::ipv4_repr(PEER_IP, OUR_IP, protocol::TCP, 1);
    let repr = TcpRepr {
        src_port: 40001,
        dst_port: PORT,
        seq,
        ack,
        flags,
        window: 512,
        urgent: 0,
        options,
        payload_len: payload.len(),
    };
    build::tcp_frame(&eth, &ip, &repr, payload)
}

/// A listener on PORT and one connection accepted from it, by a scripted handshake.
fn setup_tcp() -> TcpBench {
    let Bench { mut stack, wire, .. } = setup();
    let lfd = stack.socket(SockType::Stream).expect("socket");
    stack.bind(lfd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT)).expect("bind");
    stack.listen(lfd, 16).expect("listen");
    let syn_opts = TcpOptions { mss: Some(1460), window_scale: Some(7), sack_permitted: true, ..TcpOptions::default() };
    assert!(wire.inject(&tcp_frame(1000, 0, flags::SYN, syn_opts, &[])));
    stack.poll(Instant::now());
    let sent = wire.take_transmitted();
    wire.complete_transmitted();
    let synack = sent.last().expect("SYN-ACK");
    let ip = Ipv4Packet::new_checked(&synack[14..]).expect("IPv4");
    let t = TcpRepr::parse(&TcpPacket::new_checked(ip.payload()).expect("TCP"));
    assert_eq!(t.flags, flags::SYN | flags::ACK);
    let our_seq = t.seq.wrapping_add(1);
    assert!(wire.inject(&tcp_frame(1001, our_seq, flags::ACK, TcpOptions::default(), &[])));
    stack.poll(Instant::now());
    let (fd, _) = stack.accept(lfd).expect("accept");
    TcpBench { stack, wire, fd, peer_seq: 1001, our_seq }
}

/// Times `iters` in-order 1460-byte segments through poll (checksum, lookup, state machine,
/// copy into the receive buffer, ACK every second segment) and `recv` into a 64 KiB buffer.
fn tcp_rx_iters(b: &mut TcpBench, payload: &[u8], buf: &mut [u8], iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = TCP_BATCH.min(iters - done);
        for _ in 0..n {
            let f = tcp_frame(b.peer_seq, b.our_seq, flags::ACK | flags::PSH, TcpOptions::default(), payload);
            assert!(b.wire.inject(&f), "the rx ring took the segment");
            b.peer_seq = b.peer_seq.wrapping_add(payload.len() as u32);
        }
        let mut got = 0usize;
        let t = Instant::now();
        b.stack.poll(Instant::now());
        while let Ok(len) = b.stack.recv(b.fd, buf) {
            black_box(&buf[..8]);
            got += len;
        }
        total += t.elapsed();
        assert_eq!(got, n as usize * payload.len(), "every byte delivered and read");
        b.wire.take_transmitted();
        b.wire.complete_transmitted();
        done += n;
    }
    total
}

/// TCP bulk receive: the per-segment cost of the copy-into-a-byte-buffer design (docs/tcp.md).
fn tcp_rx(c: &mut Criterion) {
    let mut g = c.benchmark_group("tcp-rx");
    g.throughput(Throughput::Elements(1));
    let payload: Vec<u8> = (0..MSS).map(|i| i as u8).collect();
    let mut b = setup_tcp();
    let mut buf = vec![0u8; 64 * 1024];
    g.bench_function(BenchmarkId::new("recv", "1460"), |bn| {
        bn.iter_custom(|iters| tcp_rx_iters(&mut b, &payload, &mut buf, iters))
    });
    let m = b.stack.snmp();
    assert_eq!(m.TcpExtTCPZeroWindowDrop + m.TcpExtTCPRcvQDrop + m.TcpInErrs, 0, "no drops: {m:?}");
    let census = b.stack.frame_census();
    assert_eq!(census.accounted(), census.total, "frames lost: {census:?}");
    g.finish();
}

/// One publication per iteration, on a stack that has received (its histograms hold samples).
fn publish(c: &mut Criterion) {
    let mut b = setup();
    let (publisher, reader) = xsknet::publish::Publisher::new(b.stack.epoch());
    b.stack.attach_publisher(publisher);
    let frame = udp_frame(18);
    let mut buf = [0u8; 2048];
    rx_iters(&mut b, &frame, Read::From, &mut buf, 64 * 100);
    let mut stats = xsknet::softirq::LoopStats::start();
    let mut now = Instant::now();
    let mut g = c.benchmark_group("publish");
    g.throughput(Throughput::Elements(1));
    g.bench_function("every-100ms", |bench| {
        bench.iter(|| {
            // Each call is due: the clock it is given moves past the interval.
            now += Duration::from_millis(100);
            b.stack.publish(&mut stats, now);
        })
    });
    g.finish();
    assert!(stats.publications > 0 && reader.read().is_ok(), "nothing was published");
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = rx, tx, rx_sample_all, tcp_rx, publish
}
criterion_main!(benches);
