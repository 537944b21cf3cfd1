//! Bulk transfers through a lossy link on virtual time: xsknet sends, a
//! model of Linux's receiver (net/ipv4/tcp_input.c: an ACK every second full
//! segment or after the delayed-ACK timeout, an immediate ACK with SACK
//! blocks, most recent first, for out-of-order data, a D-SACK for a
//! duplicate, timestamps echoed as `tcp_replace_ts_recent` does) answers,
//! and a link in between loses frames at random (a fixed seed), delays them
//! and serialises them at a fixed rate, as `xsknet-impair --loss P --delay
//! D` does between the namespaces of the bench's loss rows. The time to
//! deliver the bytes is compared with what a sender recovering as Linux does
//! needs: the Mathis et al. bound for the loss rate and RTT (a SACK sender
//! without timeouts), and the counters say how the losses were repaired.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xsknet::netdevice::{MemDevice, MemWire};
use xsknet::umem::Umem;
use xsknet::wire::arp::{ArpOperation, ArpRepr};
use xsknet::wire::ethernet::{ethertype, EthernetFrame, EthernetRepr, HEADER_LEN as ETH_LEN};
use xsknet::wire::ipv4::{protocol, Ipv4Packet};
use xsknet::wire::tcp::{flags, SackBlock, TcpOptions, TcpPacket, TcpRepr};
use xsknet::wire::{build, EthernetAddress};
use xsknet::{Errno, Fd, SockOpt, SockType, Stack, StackConfig};

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const OUR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const LPORT: u16 = 80;
const PPORT: u16 = 40000;
const PISN: u32 = 0x1000_0000;
const MSS: u32 = 1460;
/// The peer's window scale: 7, its window field 32768: 4 MiB, what a
/// Linux receiver's autotuned buffer offers in a bulk transfer.
const PEER_WSCALE: u8 = 7;
const PEER_WIN: u16 = 32768;
/// Linux's delayed-ACK timeout at its floor (`TCP_ATO_MIN`, 40 ms).
const DELACK: Duration = Duration::from_millis(40);

/// xorshift64*: the link's random stream, seeded.
struct Rng(u64);

impl Rng {
    fn chance(&mut self, pct: f64) -> bool {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 11) as f64 / (1u64 << 53) as f64 * 100.0 < pct
    }
}

/// One direction of the link: random loss, a fixed delay, a rate.
struct Link {
    loss_pct: f64,
    delay: Duration,
    /// Serialisation time per byte.
    ns_per_byte: u64,
    /// When the link is free again.
    busy_until: Instant,
    queue: VecDeque<(Instant, Vec<u8>)>,
    rng: Rng,
    lost: u64,
    sent: u64,
}

impl Link {
    fn new(loss_pct: f64, delay: Duration, bps: u64, seed: u64, t0: Instant) -> Link {
        Link {
            loss_pct,
            delay,
            ns_per_byte: 8_000_000_000 / bps,
            busy_until: t0,
            queue: VecDeque::new(),
            rng: Rng(seed),
            lost: 0,
            sent: 0,
        }
    }

    fn put(&mut self, now: Instant, frame: Vec<u8>) {
        self.sent += 1;
        if self.rng.chance(self.loss_pct) {
            self.lost += 1;
            return;
        }
        let start = self.busy_until.max(now);
        self.busy_until = start + Duration::from_nanos(self.ns_per_byte * frame.len() as u64);
        self.queue.push_back((self.busy_until + self.delay, frame));
    }

    fn next(&self) -> Option<Instant> {
        self.queue.front().map(|&(t, _)| t)
    }

    fn take(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.queue.front().is_some_and(|&(t, _)| t <= now) {
            return self.queue.pop_front().map(|(_, f)| f);
        }
        None
    }
}

/// Linux's receiver, as far as a bulk sender sees it.
struct Receiver {
    rcv_nxt: u32,
    /// Out-of-order ranges above `rcv_nxt`: (left, right, when last grown).
    ofo: Vec<(u32, u32, u64)>,
    stamp: u64,
    /// Full segments received and not yet acknowledged.
    unacked: u32,
    delack_at: Option<Instant>,
    ts_recent: u32,
    last_ack_sent: u32,
    dsack: Option<(u32, u32)>,
}

fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl Receiver {
    /// Takes in `[seq, end)` with `tsval`; returns whether an ACK goes now.
    fn segment(&mut self, seq: u32, end: u32, tsval: Option<u32>, now: Instant) -> bool {
        if let Some(tsval) = tsval {
            // tcp_replace_ts_recent: the segment covers the last ACK sent.
            if !before(self.last_ack_sent, seq) {
                self.ts_recent = tsval;
            }
        }
        if !before(self.rcv_nxt, end) {
            self.dsack = Some((seq, end));
            return true;
        }
        if !before(self.rcv_nxt, seq) {
            let had_ofo = !self.ofo.is_empty();
            self.rcv_nxt = end;
            // tcp_ofo_queue.
            self.ofo.sort_by_key(|r| r.0.wrapping_sub(self.rcv_nxt) as i32);
            while let Some(&(l, r, _)) = self.ofo.first() {
                if before(self.rcv_nxt, l) {
                    break;
                }
                if before(self.rcv_nxt, r) {
                    self.rcv_nxt = r;
                }
                self.ofo.remove(0);
            }
            if had_ofo {
                return true;
            }
            self.unacked += 1;
            if self.unacked >= 2 {
                return true;
            }
            if self.delack_at.is_none() {
                self.delack_at = Some(now + DELACK);
            }
            return false;
        }
        // Out of order: held, its block first in the next ACK (tcp_sack_new_ofo_skb).
        self.stamp += 1;
        let (mut l, mut r) = (seq, end);
        let mut dup = None;
        self.ofo.retain(|&(a, b, _)| {
            if before(b, l) || before(r, a) {
                return true;
            }
            if !before(seq, a) && !before(b, end) {
                dup = Some((seq, end));
            }
            if before(a, l) {
                l = a;
            }
            if before(r, b) {
                r = b;
            }
            false
        });
        self.ofo.push((l, r, self.stamp));
        if dup.is_some() {
            self.dsack = dup;
        }
        true
    }

    /// The ACK we send now: its SACK blocks (D-SACK first, then the most
    /// recently grown ranges; three beside timestamps).
    fn ack(&mut self, tsval: Option<u32>) -> TcpRepr {
        let mut r = TcpRepr {
            src_port: PPORT,
            dst_port: LPORT,
            seq: PISN + 1,
            ack: self.rcv_nxt,
            flags: flags::ACK,
            window: PEER_WIN,
            ..TcpRepr::default()
        };
        let max = if tsval.is_some() { 3 } else { 4 };
        let mut blocks: Vec<(u32, u32)> = self.dsack.take().into_iter().collect();
        let mut ofo = self.ofo.clone();
        ofo.sort_by_key(|b| std::cmp::Reverse(b.2));
        blocks.extend(ofo.iter().map(|&(l, r, _)| (l, r)));
        blocks.truncate(max);
        r.options.sack_len = blocks.len() as u8;
        for (b, &(left, right)) in r.options.sack_blocks.iter_mut().zip(&blocks) {
            *b = SackBlock { left, right };
        }
        r.options.timestamp = tsval.map(|v| (v, self.ts_recent));
        self.unacked = 0;
        self.delack_at = None;
        self.last_ack_sent = self.rcv_nxt;
        r
    }
}

/// The outcome of one transfer.
struct Outcome {
    /// Virtual time from the first byte sent to the last delivered.
    secs: f64,
    timeouts: u64,
    retrans: u64,
    fast_retrans: u64,
    loss_probes: u64,
    loss_probe_recovery: u64,
    lost_retransmit: u64,
    lost_data: u64,
    lost_acks: u64,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.3} s; lost {} data segments and {} ACKs on the link; TcpRetransSegs {}, \
             TcpExtTCPFastRetrans {}, TcpExtTCPTimeouts {}, TcpExtTCPLossProbes {}, \
             TcpExtTCPLossProbeRecovery {}, TcpExtTCPLostRetransmit {}",
            self.secs,
            self.lost_data,
            self.lost_acks,
            self.retrans,
            self.fast_retrans,
            self.timeouts,
            self.loss_probes,
            self.loss_probe_recovery,
            self.lost_retransmit
        )
    }
}

/// Delivers `bytes` from xsknet to the receiver model through `loss_pct`
/// random loss each way, `delay` each way and a 1 Gbit/s link; `timestamps`
/// as the SYN offers them.
fn transfer(bytes: usize, loss_pct: f64, delay: Duration, seed: u64, timestamps: bool) -> Outcome {
    transfer_with(bytes, loss_pct, delay, seed, timestamps, None).0
}

/// When each data segment left xsknet (its first byte's offset in the
/// stream, and the virtual time), and the pacing rates `tcp_info` showed
/// after each ACK xsknet took in (cwnd, ssthresh, srtt µs, rate).
struct Departures {
    segs: Vec<(u32, Duration)>,
    rates: Vec<(u32, u32, u32, u64)>,
}

/// [`transfer`], with `SO_MAX_PACING_RATE` set to `max_pacing_rate` (bytes
/// per second) on the accepted connection when given; also says when each
/// data segment left.
fn transfer_with(
    bytes: usize,
    loss_pct: f64,
    delay: Duration,
    seed: u64,
    timestamps: bool,
    max_pacing_rate: Option<u64>,
) -> (Outcome, Departures) {
    let (umem, pool) = Umem::new(4096, 2048).unwrap();
    let umem = Arc::new(umem);
    let dev = MemDevice::new(umem.clone(), 1024, 1024);
    let w: MemWire = dev.wire();
    let s = Stack::new(dev, umem, Arc::new(pool), StackConfig::new(OUR_MAC, OUR_IP, 24));
    let t0 = Instant::now();
    let mut sim = Sim {
        s,
        w,
        t0,
        now: t0,
        down: Link::new(loss_pct, delay, 1_000_000_000, seed, t0),
        up: Link::new(loss_pct, delay, 1_000_000_000, seed ^ 0x9e37_79b9_7f4a_7c15, t0),
        timestamps,
        iss: 0,
        our_tsval: 0,
    };
    let eth = EthernetRepr { dst: EthernetAddress::BROADCAST, src: PEER_MAC, ethertype: ethertype::ARP };
    let arp = ArpRepr {
        operation: ArpOperation::Request,
        sender_hw: PEER_MAC,
        sender_ip: PEER_IP,
        target_hw: EthernetAddress::default(),
        target_ip: OUR_IP,
    };
    sim.w.inject(&build::arp_frame(&eth, &arp));
    sim.s.poll(t0);
    sim.w.take_transmitted();
    let fd = sim.handshake();
    sim.s.setsockopt(fd, SockOpt::SndBuf(4 << 20)).unwrap();
    if let Some(rate) = max_pacing_rate {
        sim.s.setsockopt(fd, SockOpt::MaxPacingRate(rate)).unwrap();
    }
    let mut dep = Departures { segs: Vec::new(), rates: Vec::new() };
    let iss = sim.iss;
    let mut rx = Receiver {
        rcv_nxt: iss.wrapping_add(1),
        ofo: Vec::new(),
        stamp: 0,
        unacked: 0,
        delack_at: None,
        ts_recent: sim.our_tsval,
        last_ack_sent: iss.wrapping_add(1),
        dsack: None,
    };
    let data = vec![0x5au8; 1 << 16];
    let mut queued = 0usize;
    let start = sim.now;
    let goal = iss.wrapping_add(1).wrapping_add(bytes as u32);
    let limit = start + Duration::from_secs(600);
    while before(rx.rcv_nxt, goal) {
        while queued < bytes {
            let n = (bytes - queued).min(data.len());
            match sim.s.send(fd, &data[..n]) {
                Ok(k) if k > 0 => queued += k,
                Ok(_) | Err(Errno::EAGAIN) => break,
                Err(e) => panic!("send: {e:?}"),
            }
        }
        sim.s.poll(sim.now);
        let i = sim.s.tcp_info(fd).unwrap();
        let rate = (i.snd_cwnd, i.snd_ssthresh, i.rtt_us, i.pacing_rate);
        if dep.rates.last() != Some(&rate) {
            dep.rates.push(rate);
        }
        for f in sim.w.take_transmitted() {
            if let Some((r, len)) = parse(&f) {
                if len > 0 {
                    dep.segs.push((r.seq.wrapping_sub(iss).wrapping_sub(1), sim.now - start));
                }
            }
            sim.down.put(sim.now, f);
        }
        while let Some(f) = sim.down.take(sim.now) {
            let Some((r, len)) = parse(&f) else { continue };
            let end = r.seq.wrapping_add(len as u32);
            if len > 0 && rx.segment(r.seq, end, r.options.timestamp.map(|t| t.0), sim.now) {
                let a = rx.ack(sim.peer_tsval());
                sim.up.put(sim.now, sim.frame(&a));
            }
        }
        if rx.delack_at.is_some_and(|t| t <= sim.now) {
            let a = rx.ack(sim.peer_tsval());
            sim.up.put(sim.now, sim.frame(&a));
        }
        let mut injected = false;
        while let Some(f) = sim.up.take(sim.now) {
            if !sim.w.inject(&f) {
                sim.s.poll(sim.now);
                assert!(sim.w.inject(&f), "rx ring full");
            }
            injected = true;
        }

        if injected {
            continue;
        }
        let next = [sim.down.next(), sim.up.next(), rx.delack_at, sim.s.poll_at()]
            .into_iter()
            .flatten()
            .min()
            .expect("something pending");
        assert!(next < limit, "no progress: {:?} delivered of {bytes}", rx.rcv_nxt.wrapping_sub(iss));
        sim.now = next.max(sim.now);
    }
    let m = sim.s.snmp();
    sim.s.setsockopt(fd, SockOpt::Linger(Some(Duration::ZERO))).unwrap();
    sim.s.close(fd).unwrap();
    sim.s.poll(sim.now);
    sim.w.take_transmitted();
    let outcome = Outcome {
        secs: (sim.now - start).as_secs_f64(),
        timeouts: m.TcpExtTCPTimeouts,
        retrans: m.TcpRetransSegs,
        fast_retrans: m.TcpExtTCPFastRetrans,
        loss_probes: m.TcpExtTCPLossProbes,
        loss_probe_recovery: m.TcpExtTCPLossProbeRecovery,
        lost_retransmit: m.TcpExtTCPLostRetransmit,
        lost_data: sim.down.lost,
        lost_acks: sim.up.lost,
    };
    (outcome, dep)
}

struct Sim {
    s: Stack<MemDevice>,
    w: MemWire,
    t0: Instant,
    now: Instant,
    down: Link,
    up: Link,
    timestamps: bool,
    /// Our ISN and first TSval, from the SYN-ACK.
    iss: u32,
    our_tsval: u32,
}

impl Sim {
    fn peer_tsval(&self) -> Option<u32> {
        self.timestamps.then(|| (self.now - self.t0).as_millis() as u32 + 1)
    }

    fn frame(&self, r: &TcpRepr) -> Vec<u8> {
        let eth = EthernetRepr { dst: OUR_MAC, src: PEER_MAC, ethertype: ethertype::IPV4 };
        let ip = build::ipv4_repr(PEER_IP, OUR_IP, protocol::TCP, 0x1234);
        build::tcp_frame(&eth, &ip, r, &[])
    }

    /// A passive open from the peer, accepted.
    fn handshake(&mut self) -> Fd {
        let l = self.s.socket(SockType::Stream).unwrap();
        self.s.bind(l, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, LPORT)).unwrap();
        self.s.listen(l, 16).unwrap();
        let mut syn = TcpRepr {
            src_port: PPORT,
            dst_port: LPORT,
            seq: PISN,
            flags: flags::SYN,
            window: 64240,
            ..TcpRepr::default()
        };
        syn.options = TcpOptions {
            mss: Some(MSS as u16),
            sack_permitted: true,
            window_scale: Some(PEER_WSCALE),
            timestamp: self.peer_tsval().map(|v| (v, 0)),
            ..TcpOptions::default()
        };
        let f = self.frame(&syn);
        self.w.inject(&f);
        self.now += Duration::from_millis(2);
        self.s.poll(self.now);
        let out = self.w.take_transmitted();
        let (sa, _) = parse(&out[0]).expect("SYN-ACK");
        let iss = sa.seq;
        let our_tsval = sa.options.timestamp.map_or(0, |t| t.0);
        self.iss = iss;
        self.our_tsval = our_tsval;
        self.now += Duration::from_millis(2);
        let mut ack = TcpRepr {
            src_port: PPORT,
            dst_port: LPORT,
            seq: PISN + 1,
            ack: iss.wrapping_add(1),
            flags: flags::ACK,
            window: PEER_WIN,
            ..TcpRepr::default()
        };
        ack.options.timestamp = self.peer_tsval().map(|v| (v, our_tsval));
        let f = self.frame(&ack);
        self.w.inject(&f);
        self.s.poll(self.now);
        let (fd, _) = self.s.accept(l).unwrap();
        self.s.close(l).unwrap();
        fd
    }
}

/// A TCP segment we sent: header and payload length.
fn parse(f: &[u8]) -> Option<(TcpRepr, usize)> {
    let e = EthernetFrame::new_unchecked(f);
    if e.ethertype() != ethertype::IPV4 {
        return None;
    }
    let p = Ipv4Packet::new_unchecked(&f[ETH_LEN..]);
    let t = TcpPacket::new_checked(p.payload()).ok()?;
    Some((TcpRepr::parse(&t), t.payload().len()))
}

/// The Mathis et al. bound (CCR 1997) for a SACK sender without timeouts:
/// MSS / RTT × sqrt(3/2) / sqrt(p), bytes per second.
fn mathis_bps(rtt: Duration, loss: f64) -> f64 {
    f64::from(MSS) / rtt.as_secs_f64() * (1.5f64).sqrt() / loss.sqrt()
}

/// 1 % each way, 1 ms each way: every loss is repaired within recovery,
/// and 8 MiB take no longer than 1.5 times what the Mathis bound allows.
#[test]
fn one_percent_loss_is_repaired_without_timeouts_at_the_rate_linux_reaches() {
    let bytes = 8 << 20;
    let delay = Duration::from_millis(1);
    let o = transfer(bytes, 1.0, delay, 1, true);
    let bound = bytes as f64 / mathis_bps(2 * delay, 0.01);
    eprintln!("8 MiB through 1 % loss, 1 ms each way: {o}; the Mathis bound {bound:.3} s");
    assert!(o.secs < 1.5 * bound, "{o}: against {bound:.3} s");
    assert_eq!(o.timeouts, 0, "{o}");
    // Every lost segment sent again, and little else (no lost mark gone stale).
    assert!(o.lost_data > 0 && o.retrans >= o.lost_data && o.retrans < 2 * o.lost_data, "{o}");
}

/// 5 % each way: the transfer completes, lost tails are probed (TLP) and
/// the time stays within a small multiple of the bound (before RACK-TLP a
/// lost tail or retransmission waited for the RTO: 12 to 33 timeouts for
/// 4 MiB, up to 10 times the bound).
#[test]
fn five_percent_loss_still_completes() {
    let bytes = 4 << 20;
    let delay = Duration::from_millis(1);
    for seed in 1..4 {
        let o = transfer(bytes, 5.0, delay, seed, true);
        let bound = bytes as f64 / mathis_bps(2 * delay, 0.05);
        eprintln!("4 MiB through 5 % loss, seed {seed}: {o}; the Mathis bound {bound:.3} s");
        assert!(o.secs < 8.0 * bound, "{o}: against {bound:.3} s");
        assert!(o.loss_probes > 0, "lost tails probed: {o}");
    }
}

/// The gaps between consecutive first transmissions after the first `skip`
/// data segments, and whether any two left at the same instant.
fn new_data_gaps(d: &Departures, skip: usize) -> Vec<Duration> {
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<Duration> = d.segs.iter().filter(|(off, _)| seen.insert(*off)).map(|&(_, t)| t).collect();
    firsts.windows(2).skip(skip).map(|w| w[1] - w[0]).collect()
}

/// `SO_MAX_PACING_RATE` at 100 Mbit/s on a path that could carry 1 Gbit/s:
/// after the ten unpaced segments, first transmissions leave at least half a
/// segment's time apart (the `credit` rule) and on average one segment's
/// time apart; the transfer takes what the rate says, not more (the pacing
/// timer always fires), and never times out.
#[test]
fn so_max_pacing_rate_spaces_segments_at_the_rate_and_never_stalls() {
    let bytes = 2 << 20;
    let rate: u64 = 12_500_000;
    let (o, d) = transfer_with(bytes, 0.0, Duration::from_millis(1), 1, true, Some(rate));
    let seg_time = Duration::from_nanos(1448 * 1_000_000_000 / rate);
    let gaps = new_data_gaps(&d, 10);
    let min = gaps.iter().min().copied().unwrap();
    let mean = gaps.iter().sum::<Duration>() / gaps.len() as u32;
    eprintln!("paced at {rate} B/s: {o}; gaps min {min:?} mean {mean:?}, a segment's time {seg_time:?}");
    assert!(min >= seg_time / 2, "a gap of {min:?} below half of {seg_time:?}");
    assert!(mean >= seg_time && mean < seg_time * 11 / 10, "mean gap {mean:?} against {seg_time:?}");
    let at_rate = bytes as f64 / rate as f64;
    assert!(o.secs >= at_rate && o.secs < at_rate * 1.1 + 0.02, "{o}: {at_rate:.3} s at the rate");
    assert_eq!((o.timeouts, o.retrans), (0, 0), "{o}");
}

/// Without `SO_MAX_PACING_RATE` xsknet does what Linux does with CUBIC and no
/// fq qdisc (`tcp_needs_internal_pacing` false): segments go as the window
/// opens, several at the same instant; the pacing rate is computed all the
/// same and is `tcp_update_pacing_rate`'s, 200 % of mss·cwnd/srtt while
/// cwnd < ssthresh/2 and 120 % after, both seen under 1 % loss.
#[test]
fn unpaced_by_default_with_the_pacing_rate_shown() {
    let (o, d) = transfer_with(4 << 20, 1.0, Duration::from_millis(1), 1, true, None);
    let gaps = new_data_gaps(&d, 10);
    let together = gaps.iter().filter(|g| g.is_zero()).count();
    eprintln!("unpaced: {o}; {together} of {} new segments left with the one before", gaps.len());
    // An ACK of two segments lets two more go at once, at least.
    assert!(together > gaps.len() / 3, "{together} of {}", gaps.len());
    let (mut ss, mut ca) = (0, 0);
    for &(cwnd, ssthresh, srtt, rate) in &d.rates {
        if srtt == 0 || rate == u64::MAX {
            continue;
        }
        // The receiver model ACKs every second segment: at the sample
        // points packets_out is at most cwnd.
        let ratio = if cwnd < ssthresh / 2 {
            ss += 1;
            200
        } else {
            ca += 1;
            120
        };
        let want = 1448 * 10_000 * ratio * u64::from(cwnd) / u64::from(srtt);
        assert!(rate >= want, "cwnd {cwnd} ssthresh {ssthresh} srtt {srtt}: {rate} against {want}");
    }
    assert!(ss > 0 && ca > 0, "slow start {ss}, congestion avoidance {ca}");
}

/// `SO_MAX_PACING_RATE` 0 turns pacing on with a rate of 0, which Linux's
/// `tcp_update_skb_after_send` takes as no spacing: the transfer goes as
/// unpaced; so does a rate too high to space anything.
#[test]
fn a_zero_or_huge_max_pacing_rate_does_not_stall() {
    let bytes = 1 << 20;
    let (base, _) = transfer_with(bytes, 0.0, Duration::from_millis(1), 1, true, None);
    for rate in [0, u64::MAX - 1] {
        let (o, _) = transfer_with(bytes, 0.0, Duration::from_millis(1), 1, true, Some(rate));
        eprintln!("SO_MAX_PACING_RATE {rate}: {o}; unpaced {base}");
        assert!((o.secs - base.secs).abs() < 0.002, "{o} against {base}");
        assert_eq!(o.timeouts, 0);
    }
}

/// Paced under 1 % loss: retransmissions go through the same pacing
/// (`tcp_xmit_retransmit_queue` checks it) and the flow still completes
/// without a timeout.
#[test]
fn paced_under_loss_completes_without_timeouts() {
    let bytes = 2 << 20;
    let (o, d) = transfer_with(bytes, 1.0, Duration::from_millis(1), 1, true, Some(25_000_000));
    eprintln!("paced at 200 Mbit/s through 1 % loss: {o}");
    assert_eq!(o.timeouts, 0, "{o}");
    assert!(o.retrans >= o.lost_data && o.lost_data > 0, "{o}");
    let gaps = new_data_gaps(&d, 10);
    assert!(gaps.iter().filter(|g| g.is_zero()).count() < gaps.len() / 10, "paced: few segments together");
}
