//! The packet generator behind `xsknet pktgen`: UDP over IPv4 sent through the
//! generator's own AF_XDP socket, paced or as fast as one core goes, with echo
//! round trips matched and timed.
//!
//! This is stage 1 of the path in `docs/architecture.md` ("a peer sends"), built from the same
//! parts as the stack: the XDP program attached on the generator's interface
//! with the generator's source address (so echo replies and ARP reach its
//! socket; the host's own addresses on the interface stay the kernel's, as with
//! `xsknet --pass-kernel-addrs`), one UMEM, one AF_XDP socket and its four rings.
//! The UMEM is split in two by address: **transmit frames** (below
//! `split`), each holding the pre-built frame ([`frame::Patcher`]) and only
//! patched per packet, cycling tx ring → completion ring → free list; and
//! **receive frames**, cycling fill ring → rx ring → free list, which also
//! carry our ARP answers (answered in place; a completed frame goes back to
//! the list its address belongs to).
//!
//! One thread does everything, run to completion: reap completions, receive
//! (echoes, ARP), take tokens ([`pace::TokenBucket`]), patch and queue a batch,
//! kick. Per packet there is no allocation, no system call and no lock; ring
//! indices are touched once per batch and the kernel is woken only when the
//! ring's `need_wakeup` flag asks (every batch in copy mode, where the
//! `sendto` is the copy). In copy mode the kernel sends at most 32 frames per
//! wake-up (`TX_BATCH_SIZE` in net/xdp/xsk.c), so batches go onto the ring in
//! chunks of 32: what the kernel leaves on the ring would wait for the next
//! kick, and its send timestamp would lie.
//!
//! With `--flood MODE` the transmit frames hold flood frames instead
//! ([`flood::FloodPatcher`]: built once per UMEM frame, patched per packet from
//! a PRNG), nothing is matched, and with `--no-xdp` no program is attached:
//! the socket only sends (`open_tx_only`).
//!
//! The one `unsafe` block here is the tx wake-up (`sendto` on the socket) for
//! a stalled ring, which [`NetDevice`] has no call for.
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod echo;
pub mod flood;
pub mod frame;
pub mod mix;
pub mod pace;

use std::error::Error;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use xsknet::device::{self, DeviceOptions};
use xsknet::netdevice::{Desc, DeviceStats, NetDevice};
use xsknet::umem::{Frame, FramePool, Umem};
use xsknet::wire::arp::ArpOperation;
use xsknet::wire::EthernetAddress;
use xsknet::xdp::{AttachMode, XdpProgStats};
use xsknet::xsk::{BindMode, XskConfig, XskDevice};

use crate::hist::{IntervalRecorder, Percentiles, RecordedLog};
use crate::progress::{Progress, ProgressMode, Snapshot};
use echo::{EchoCounts, EchoTracker, ReplyKind};
use flood::{FloodMode, FloodPatcher, FloodSetup, FloodSpec, Prefix, WyRand};
use frame::{Flow, FrameSpec, Patcher, Received};
use mix::{MixGen, MixKind, MixSpec, DEFAULT_CHURN_PORTS};
use pace::TokenBucket;

pub type BoxError = Box<dyn Error + Send + Sync>;

/// UMEM frame size: one frame per packet, up to 1514 bytes.
pub const FRAME_SIZE: u32 = 2048;
/// Frames the kernel takes per wake-up in copy mode (`TX_BATCH_SIZE`).
pub const COPY_MODE_KICK_BATCH: usize = 32;
/// Receive frames when not in echo mode: enough for ARP.
const RX_FRAMES_NO_ECHO: u32 = 64;
/// ARP resolution: this many requests, this far apart.
const ARP_TRIES: u32 = 5;
const ARP_INTERVAL: Duration = Duration::from_millis(400);
/// Without echo, how long to wait for the last completions.
const COMPLETION_WAIT: Duration = Duration::from_secs(1);
/// A stalled tx ring (frames out, none coming back, nothing new sent) is
/// kicked at most this often.
const STALL_KICK_INTERVAL: Duration = Duration::from_micros(50);
/// Interval of the histogram log.
const HLOG_INTERVAL: Duration = Duration::from_secs(1);

/// Everything a run needs; the command line of `xsknet-pktgen` maps onto it.
#[derive(Clone, Debug)]
pub struct Config {
    pub iface: String,
    pub queue: u32,
    pub src: Ipv4Addr,
    pub prefix: u8,
    pub dst: Ipv4Addr,
    pub dst_port: u16,
    pub src_port: u16,
    pub dst_mac: Option<EthernetAddress>,
    /// Frame length without FCS.
    pub size: usize,
    pub flows: u32,
    pub flows_src_ips: bool,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Packets per second; 0 = as fast as possible.
    pub rate: u64,
    pub echo: bool,
    pub wait: Duration,
    pub xdp_mode: AttachMode,
    pub bind_mode: BindMode,
    pub frames: u32,
    pub ring_size: u32,
    pub batch: u32,
    pub progress: ProgressMode,
    pub replace: bool,
    pub force: bool,
    /// Echo matching window (datagrams).
    pub echo_window: u64,
    /// `--flood MODE`: send a flood instead of the numbered datagrams ([`flood`]).
    pub flood: Option<FloodMode>,
    /// `--spoof PREFIX`: flood sources random in the prefix.
    pub spoof: Option<Prefix>,
    /// `--dst-ports LO-HI`: `udp-closed`'s destination ports.
    pub dst_ports: Option<(u16, u16)>,
    /// `--seed`: the flood's PRNG seed.
    pub seed: u64,
    /// `--no-xdp`: open the socket for sending only, attaching no XDP program
    /// (needs `dst_mac`; nothing is received).
    pub no_xdp: bool,
}

impl Config {
    /// A config with the command's defaults for everything but the addresses.
    pub fn new(iface: &str, src: Ipv4Addr, prefix: u8, dst: Ipv4Addr, dst_port: u16) -> Config {
        Config {
            iface: iface.to_string(),
            queue: 0,
            src,
            prefix,
            dst,
            dst_port,
            src_port: 9000,
            dst_mac: None,
            size: frame::MIN_FRAME_LEN,
            flows: 1,
            flows_src_ips: false,
            count: None,
            duration: None,
            rate: 0,
            echo: false,
            wait: Duration::from_millis(500),
            xdp_mode: AttachMode::Auto,
            bind_mode: BindMode::Auto,
            frames: 4096,
            ring_size: 2048,
            batch: 64,
            progress: ProgressMode::Auto,
            replace: false,
            force: false,
            echo_window: echo::DEFAULT_WINDOW,
            flood: None,
            spoof: None,
            dst_ports: None,
            seed: 1,
            no_xdp: false,
        }
    }

    /// Checks what can be checked without the kernel.
    pub fn validate(&self) -> Result<(), String> {
        FrameSpec::check_len(self.size)?;
        if self.count.is_none() && self.duration.is_none() {
            return Err("refusing to run unbounded: pass --count N and/or --duration SECS".into());
        }
        if self.count == Some(0) {
            return Err("--count 0: nothing to send".into());
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err("--duration must be more than 0 seconds".into());
        }
        if self.prefix > 32 {
            return Err(format!("/{}: prefix must be 0 to 32", self.prefix));
        }
        if self.src == self.dst {
            return Err(format!("--dst {} is our own --src", self.dst));
        }
        if self.dst_port == 0 {
            return Err("--dst-port 0: pick a port from 1 to 65535".into());
        }
        if self.dst_mac.is_none() && !same_prefix(self.src, self.dst, self.prefix) {
            return Err(format!(
                "{} is not in {}/{}: ARP cannot reach it; pass --dst-mac with the next hop's MAC address",
                self.dst, self.src, self.prefix
            ));
        }
        if self.echo && self.flows_src_ips {
            return Err(format!(
                "--flows-src-ips with --echo: the XDP program claims only {}, so replies to the other source \
                 addresses would go to the kernel; vary source ports only (--flows N) in echo mode",
                self.src
            ));
        }
        if !self.ring_size.is_power_of_two() || self.ring_size < 64 {
            return Err(format!("--ring-size {}: must be a power of two, at least 64", self.ring_size));
        }
        if self.batch == 0 || self.batch > self.ring_size {
            return Err(format!("--batch {}: must be 1 to --ring-size ({})", self.batch, self.ring_size));
        }
        if self.rate > 1_000_000_000 {
            return Err(format!("--rate {}: at most 10^9 pps", self.rate));
        }
        let (tx, _) = self.frame_split()?;
        if tx < self.batch {
            return Err(format!(
                "--frames {}: leaves {tx} transmit frames, fewer than --batch {}",
                self.frames, self.batch
            ));
        }
        make_flows(self)?;
        self.validate_flood()?;
        Ok(())
    }

    fn validate_flood(&self) -> Result<(), String> {
        if self.echo && self.flood.is_some() {
            return Err("--flood with --echo: a flood expects no replies; run the echo measurement as another \
                        process (or drop --echo)"
                .into());
        }
        if self.echo && self.spoof.is_some() {
            return Err("--spoof with --echo: replies to spoofed sources never come back to us".into());
        }
        if self.echo && self.no_xdp {
            return Err("--no-xdp with --echo: without the XDP program no reply reaches the generator".into());
        }
        if self.no_xdp && self.dst_mac.is_none() {
            return Err(
                "--no-xdp needs --dst-mac: without the XDP program ARP replies do not reach the generator".into()
            );
        }
        let Some(mode) = self.flood else {
            if self.spoof.is_some() || self.dst_ports.is_some() {
                return Err("--spoof and --dst-ports shape floods: they need --flood MODE".into());
            }
            return Ok(());
        };
        if self.flows != 1 || self.flows_src_ips {
            return Err("--flows/--flows-src-ips with --flood: floods draw source ports at random \
                        (and source addresses with --spoof)"
                .into());
        }
        if self.dst_ports.is_some() && !matches!(mode, FloodMode::UdpClosed | FloodMode::Mix) {
            return Err(format!("--dst-ports is for --flood udp-closed and mix, not {}", mode.name()));
        }
        if mode == FloodMode::Mix {
            if self.spoof.is_some() {
                return Err("--spoof with --flood mix: the mix comes from --src, which its echoes go back to".into());
            }
            if self.size != frame::MIN_FRAME_LEN {
                return Err("--size with --flood mix: each kind of frame has its own size (docs/soak.md)".into());
            }
        }
        self.flood_spec(EthernetAddress::default(), EthernetAddress::default()).map(|_| ())
    }

    /// The flood's frame spec, for the MACs found at run time.
    fn flood_spec(&self, src_mac: EthernetAddress, dst_mac: EthernetAddress) -> Result<Option<FloodSpec>, String> {
        let Some(mode) = self.flood else {
            return Ok(None);
        };
        let spec = FloodSpec {
            mode,
            src_mac,
            dst_mac,
            src_ip: self.src,
            dst_ip: self.dst,
            dst_port: self.dst_port,
            dst_ports: self.dst_ports.unwrap_or(if mode == FloodMode::Mix {
                DEFAULT_CHURN_PORTS
            } else {
                flood::DEFAULT_DST_PORTS
            }),
            spoof: self.spoof,
            len: self.size,
        };
        spec.check()?;
        if mode == FloodMode::Mix {
            self.mix_spec(src_mac, dst_mac).check()?;
        }
        Ok(Some(spec))
    }

    /// The mix's spec (`--flood mix`), for the MACs found at run time.
    fn mix_spec(&self, src_mac: EthernetAddress, dst_mac: EthernetAddress) -> MixSpec {
        MixSpec {
            src_mac,
            dst_mac,
            src_ip: self.src,
            dst_ip: self.dst,
            dst_port: self.dst_port,
            churn_ports: self.dst_ports.unwrap_or(DEFAULT_CHURN_PORTS),
        }
    }

    /// (transmit frames, receive frames). Transmit frames are never more than
    /// the tx ring holds, so the ring can always take what is sent.
    pub fn frame_split(&self) -> Result<(u32, u32), String> {
        let rx = if self.echo { (self.frames / 2).min(self.ring_size) } else { RX_FRAMES_NO_ECHO };
        let tx = self.frames.saturating_sub(rx).min(self.ring_size);
        if tx == 0 || self.frames < 128 {
            return Err(format!("--frames {}: need at least 128", self.frames));
        }
        Ok((tx, rx))
    }
}

fn make_flows(cfg: &Config) -> Result<Vec<Flow>, String> {
    frame::make_flows(cfg.src, cfg.prefix, cfg.dst, cfg.src_port, cfg.flows, cfg.flows_src_ips)
}

fn same_prefix(a: Ipv4Addr, b: Ipv4Addr, prefix: u8) -> bool {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
    u32::from(a) & mask == u32::from(b) & mask
}

/// The setup a result came from.
#[derive(Clone, Debug, Serialize)]
pub struct Setup {
    pub kernel: String,
    pub cpus_allowed: String,
    pub iface: String,
    pub queue: u32,
    pub src: String,
    pub dst: String,
    pub dst_mac: String,
    /// How the destination MAC was found: "arp" or "given".
    pub dst_mac_from: &'static str,
    pub dst_port: u16,
    pub src_port: u16,
    /// Ethernet frame bytes without FCS (add 4 for the frame on the wire).
    pub size: usize,
    pub flows: u32,
    pub flows_src_ips: bool,
    pub count: Option<u64>,
    pub duration_s: Option<f64>,
    /// Target rate; 0 = as fast as possible.
    pub rate_pps: u64,
    pub echo: bool,
    pub wait_ms: u64,
    /// The generator-side XDP program's attach mode, `"none"` with `--no-xdp`.
    pub xdp_mode: String,
    /// `--flood`: mode, spoof prefix, seed, what it sends (absent without `--flood`).
    pub flood: Option<FloodSetup>,
    pub bind_mode: &'static str,
    pub tx_frames: u32,
    pub rx_frames: u32,
    pub ring_size: u32,
    pub batch: u32,
    /// Packets handed out per token-bucket grant (see `pace`).
    pub pacing_quantum: u64,
    /// Frames per tx ring submission (and wake-up).
    pub kick_batch: usize,
}

/// Transmit-side counters.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct TxStats {
    /// Frames placed on the tx ring (including ARP).
    pub queued: u64,
    /// Frames the completion ring gave back.
    pub completed: u64,
    /// Submissions to the tx ring; each kicks the kernel if `need_wakeup` is set
    /// (in copy mode: always).
    pub submits: u64,
    pub frames_per_submit: f64,
    /// Submissions that found the ring full (should stay 0: transmit frames
    /// are never more than the ring holds).
    pub ring_full: u64,
    /// Reservations that got less than asked from a stale cached view of
    /// the ring, and were retried.
    pub short_reservations: u64,
    /// Extra wake-ups for a stalled ring (frames out, nothing coming back).
    pub stall_kicks: u64,
    /// Still in the kernel at the end.
    pub in_flight_at_end: u64,
}

/// Receive-side counters.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct RxStats {
    pub frames: u64,
    pub arp_requests_answered: u64,
    pub arp_replies: u64,
    /// IPv4/UDP that failed validation (header, length).
    pub bad: u64,
    /// UDP from the peer with a wrong checksum.
    pub bad_checksum: u64,
    /// Not an echo of ours.
    pub other: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct EchoReport {
    #[serde(flatten)]
    pub counts: EchoCounts,
    /// Round-trip time of unique replies.
    pub rtt_us: Percentiles,
}

/// The interface's own counters over the run (`/proc/net/dev`, deltas): what the
/// driver did with what we queued. On veth, `tx_dropped` counts frames the peer
/// could not take (its rx ring full): completed on our ring, never delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IfaceStats {
    pub tx_packets: u64,
    pub tx_dropped: u64,
    pub rx_packets: u64,
    pub rx_dropped: u64,
}

impl IfaceStats {
    /// Reads `ifname`'s line of `/proc/self/net/dev` (this process's namespace).
    pub fn read(ifname: &str) -> Option<IfaceStats> {
        let text = std::fs::read_to_string("/proc/self/net/dev").ok()?;
        Self::parse(&text, ifname)
    }

    /// Parses the `/proc/net/dev` format: `name: rx bytes packets errs drop fifo
    /// frame compressed multicast tx bytes packets errs drop ...`.
    pub fn parse(text: &str, ifname: &str) -> Option<IfaceStats> {
        let line = text.lines().find_map(|l| {
            let (name, rest) = l.split_once(':')?;
            (name.trim() == ifname).then_some(rest)
        })?;
        let v: Vec<u64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if v.len() < 16 {
            return None;
        }
        Some(IfaceStats { rx_packets: v[1], rx_dropped: v[3], tx_packets: v[9], tx_dropped: v[11] })
    }

    fn since(self, before: IfaceStats) -> IfaceStats {
        IfaceStats {
            tx_packets: self.tx_packets.wrapping_sub(before.tx_packets),
            tx_dropped: self.tx_dropped.wrapping_sub(before.tx_dropped),
            rx_packets: self.rx_packets.wrapping_sub(before.rx_packets),
            rx_dropped: self.rx_dropped.wrapping_sub(before.rx_dropped),
        }
    }
}

/// The result object (`--json`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub setup: Setup,
    /// Datagrams sent (sequence numbers 0..sent).
    pub sent: u64,
    pub bytes: u64,
    /// From the first to the last submission.
    pub elapsed_s: f64,
    pub rate_pps: f64,
    /// Whole run including ARP and the wait for the last replies.
    pub total_s: f64,
    /// Stopped early by SIGINT/SIGTERM.
    pub interrupted: bool,
    pub tx: TxStats,
    pub rx: RxStats,
    /// The generator socket's XDP_STATISTICS.
    pub xdp_statistics: DeviceStats,
    /// The interface's counters over the run (absent if unreadable).
    pub iface: Option<IfaceStats>,
    /// The generator-side XDP program's counters.
    pub xdp_prog: XdpProgStats,
    pub echo: Option<EchoReport>,
    /// `--flood mix`: frames sent of each kind ([`mix`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mix_sent: Option<Vec<MixCount>>,
}

/// Frames of one kind sent by `--flood mix`.
#[derive(Clone, Debug, Serialize)]
pub struct MixCount {
    /// The kind (`echo`, `closed-port`, …).
    pub kind: MixKind,
    /// Frames sent.
    pub sent: u64,
}

/// What [`run`] returns: the report, and in echo mode the RTT histograms.
pub struct Outcome {
    pub report: Report,
    pub rtt: Option<RecordedLog>,
}

/// The socket, its frames and their books.
struct Engine {
    dev: XskDevice,
    umem: Arc<Umem>,
    /// Frames below this address are transmit frames.
    split: u64,
    tx_free: Vec<Frame>,
    rx_free: Vec<Frame>,
    txq: Vec<Desc>,
    rxq: Vec<Desc>,
    completed: Vec<Frame>,
    /// Transmit frames (and ARP answers) given to the kernel, not yet back.
    in_flight: u64,
    kick_batch: usize,
    rx_budget: usize,
    mac: EthernetAddress,
    ip: Ipv4Addr,
    peer: Ipv4Addr,
    peer_port: u16,
    /// Set when an ARP reply for `peer` arrives.
    peer_mac: Option<EthernetAddress>,
    last_kick: Instant,
    tx: TxStats,
    rx: RxStats,
}

impl Engine {
    /// Reaps the completion ring. Returns how many came back.
    #[inline]
    fn complete(&mut self) -> usize {
        if self.in_flight == 0 {
            return 0;
        }
        let n = self.dev.complete(&mut self.completed);
        for f in self.completed.drain(..) {
            if f.addr() < self.split {
                self.tx_free.push(f);
            } else {
                self.rx_free.push(f);
            }
        }
        self.in_flight -= n as u64;
        self.tx.completed += n as u64;
        n
    }

    /// Puts what is in `txq` on the tx ring (one submission and one wake-up if
    /// the ring asks for it, unless the reservation comes up short). Returns
    /// how many the ring took; the rest stay in `txq` for the next call.
    #[inline]
    fn submit(&mut self) -> usize {
        let mut n = 0;
        loop {
            let want = self.txq.len();
            let took = self.dev.transmit(&mut self.txq);
            self.tx.submits += 1;
            n += took;
            if took == want {
                break;
            }
            // The ring's free count is cached and refreshed only when it reads
            // zero: a second reservation sees what the kernel consumed since.
            self.tx.short_reservations += 1;
            if took == 0 {
                self.tx.ring_full += 1;
                break;
            }
        }
        self.in_flight += n as u64;
        self.tx.queued += n as u64;
        n
    }

    /// Kicks the tx ring when frames are out, none came back and nothing was
    /// submitted: the kernel stopped short (copy mode sends 32 per wake-up, a
    /// busy driver can refuse) and only a wake-up moves it again.
    #[inline]
    fn kick_if_stalled(&mut self, now: Instant) {
        if self.in_flight > 0 && now.duration_since(self.last_kick) >= STALL_KICK_INTERVAL {
            kick_tx(self.dev.as_fd());
            self.last_kick = now;
            self.tx.stall_kicks += 1;
        }
    }

    /// Receives a batch, answers ARP, hands echoes to `on_echo(seq, ts_ns,
    /// now_ns)`, refills the fill ring. `clock` turns the arrival instant into
    /// the run's ns.
    #[inline]
    fn poll_rx(&mut self, clock: Instant, mut on_echo: impl FnMut(u64, u64, u64)) -> usize {
        self.dev.receive(self.rx_budget, &mut self.rxq);
        let n = self.rxq.len();
        if n == 0 {
            return 0;
        }
        let now_ns = Instant::now().duration_since(clock).as_nanos() as u64;
        self.rx.frames += n as u64;
        let mut rxq = std::mem::take(&mut self.rxq);
        for mut d in rxq.drain(..) {
            let (off, len) = (d.offset as usize, d.len as usize);
            let got = frame::classify(&self.umem.frame(&d.frame)[off..off + len], self.peer, self.peer_port);
            match got {
                Received::Echo { seq, ts_ns } => on_echo(seq, ts_ns, now_ns),
                Received::Arp(p) => {
                    if p.operation == ArpOperation::Request && p.target_ip == self.ip {
                        // Answer in the same frame; it returns to the rx list on completion.
                        let reply = p.reply(self.mac);
                        let buf = &mut self.umem.frame_mut(&mut d.frame)[off..];
                        d.len = frame::write_arp(buf, p.sender_hw, &reply) as u32;
                        self.rx.arp_requests_answered += 1;
                        self.txq.push(d);
                        continue;
                    }
                    if p.operation == ArpOperation::Reply && p.sender_ip == self.peer {
                        self.peer_mac = Some(p.sender_hw);
                        self.rx.arp_replies += 1;
                    } else {
                        self.rx.other += 1;
                    }
                }
                Received::Bad => self.rx.bad += 1,
                Received::BadChecksum => self.rx.bad_checksum += 1,
                Received::Other => self.rx.other += 1,
            }
            self.rx_free.push(d.frame);
        }
        self.rxq = rxq;
        if !self.txq.is_empty() {
            self.submit();
        }
        self.dev.fill(&mut self.rx_free);
        n
    }

    /// Broadcasts an ARP request for the peer from a transmit frame.
    fn send_arp_request(&mut self) -> Result<(), BoxError> {
        let mut f = self.tx_free.pop().ok_or("no free transmit frame for ARP")?;
        let pkt = frame::arp_request(self.mac, self.ip, self.peer);
        let len = frame::write_arp(self.umem.frame_mut(&mut f), EthernetAddress::BROADCAST, &pkt);
        self.txq.push(Desc::one(f, 0, len as u32));
        self.submit();
        Ok(())
    }
}

/// `sendto(fd, NULL, 0, MSG_DONTWAIT)`: the AF_XDP tx wake-up.
fn kick_tx(fd: BorrowedFd<'_>) {
    // SAFETY: `fd` is the open AF_XDP socket (borrowed for the call); a
    // zero-length send with null buffer and address is how AF_XDP is woken
    // (Documentation/networking/af_xdp.rst, XDP_USE_NEED_WAKEUP). Errors
    // (EAGAIN, ENOBUFS while the driver is busy) just mean "try again later".
    let _ = unsafe { libc::sendto(fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

fn cpus_allowed() -> String {
    read_trimmed("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:").map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

/// Runs the generator as `cfg` says and returns what it measured. Needs root.
/// Stops early, with a full report, on SIGINT/SIGTERM once
/// `xsknet::signal::install` has been called.
pub fn run(cfg: &Config) -> Result<Outcome, BoxError> {
    cfg.validate()?;
    let flows = make_flows(cfg)?;
    let (tx_frames, rx_frames) = cfg.frame_split()?;

    let (xdp, mac, umem, pool, dev) = if cfg.no_xdp {
        let (mac, umem, pool, dev) = open_tx_only(cfg, tx_frames + rx_frames)?;
        (None, mac, umem, pool, dev)
    } else {
        let device::Device { xdp, mac, umem, pool, xsk, .. } = device::open(&DeviceOptions {
            ifname: cfg.iface.clone(),
            queue: cfg.queue,
            ipv4_addr: cfg.src,
            xdp_mode: cfg.xdp_mode,
            bind_mode: cfg.bind_mode,
            frames: tx_frames + rx_frames,
            frame_size: FRAME_SIZE,
            ring_size: cfg.ring_size,
            replace: cfg.replace,
            force: cfg.force,
            // The generator shares its interface with the host's own traffic.
            pass_kernel_addrs: true,
            // The generator's receive side takes one frame per packet.
            multi_buffer: xsknet::device::MultiBuffer::Off,
        })?;
        (Some(xdp), mac, umem, pool, xsk)
    };
    let zero_copy = dev.zero_copy();

    let mut frames: Vec<Frame> = std::iter::from_fn(|| pool.get()).collect();
    frames.sort_by_key(Frame::addr);
    let rx_free = frames.split_off(tx_frames as usize);
    let split = u64::from(tx_frames) * u64::from(FRAME_SIZE);
    let batch = cfg.batch as usize;
    let kick_batch = if zero_copy { batch } else { batch.min(COPY_MODE_KICK_BATCH) };
    let mut eng = Engine {
        dev,
        umem: umem.clone(),
        split,
        tx_free: frames,
        rx_free,
        txq: Vec::with_capacity(batch + 64),
        rxq: Vec::with_capacity(batch.max(64)),
        completed: Vec::with_capacity(cfg.ring_size as usize),
        in_flight: 0,
        kick_batch,
        rx_budget: batch.max(64),
        mac,
        ip: cfg.src,
        peer: cfg.dst,
        peer_port: cfg.dst_port,
        peer_mac: None,
        last_kick: Instant::now(),
        tx: TxStats::default(),
        rx: RxStats::default(),
    };
    eng.dev.fill(&mut eng.rx_free);
    let t_begin = Instant::now();
    let iface_before = IfaceStats::read(&cfg.iface);

    // The destination's MAC: given, or asked for through our own socket.
    let (dst_mac, dst_mac_from) = match cfg.dst_mac {
        Some(m) => (m, "given"),
        None => (resolve(&mut eng, cfg, t_begin)?, "arp"),
    };

    // Pre-build every transmit frame.
    let spec = FrameSpec { src_mac: mac, dst_mac, dst_ip: cfg.dst, dst_port: cfg.dst_port, len: cfg.size };
    let patcher = Patcher::new(spec, &flows)?;
    let flood_spec = cfg.flood_spec(mac, dst_mac)?;
    let mut mixer = match flood_spec {
        Some(fs) if fs.mode == FloodMode::Mix => {
            Some((MixGen::new(cfg.mix_spec(mac, dst_mac))?, WyRand::new(cfg.seed)))
        }
        _ => None,
    };
    let mut flooder = match flood_spec {
        Some(fs) if fs.mode == FloodMode::Mix => None,
        Some(fs) => {
            let p = FloodPatcher::new(fs)?;
            let mut rng = WyRand::new(cfg.seed);
            for f in eng.tx_free.iter_mut() {
                p.init(umem.frame_mut(f), &mut rng);
            }
            Some((p, rng))
        }
        None => {
            for f in eng.tx_free.iter_mut() {
                umem.frame_mut(f)[..cfg.size].copy_from_slice(patcher.template());
            }
            None
        }
    };

    let mut tracker = cfg.echo.then(|| EchoTracker::new(cfg.echo_window));
    let start = Instant::now();
    let mut recorder = cfg.echo.then(|| IntervalRecorder::new(start, HLOG_INTERVAL));
    let mut bucket = TokenBucket::new(cfg.rate, u64::from(cfg.batch), 0);
    let mut progress = Progress::new(cfg.progress, start);
    let count = cfg.count.unwrap_or(u64::MAX);
    let deadline = cfg.duration.map(|d| start + d);
    let nflows = patcher.flows();
    let len = cfg.size as u32;
    let mut seq: u64 = 0;
    let mut flow: usize = 0;
    let mut first_submit: Option<Instant> = None;
    let mut last_submit = start;
    let mut sending = true;
    let mut interrupted = false;
    let mut wait_until = start;

    loop {
        let now = Instant::now();
        let came_back = eng.complete();
        if let (Some(t), Some(r)) = (tracker.as_mut(), recorder.as_mut()) {
            eng.poll_rx(start, |s, ts, now_ns| {
                if let ReplyKind::Unique { .. } = t.on_reply(s) {
                    r.record(now_ns.saturating_sub(ts));
                }
            });
            r.rotate(now);
        } else {
            eng.poll_rx(start, |_, _, _| {});
        }

        // Whatever the ring refused last time goes first.
        let mut submitted = if eng.txq.is_empty() { 0 } else { eng.submit() };
        if sending {
            if xsknet::signal::stop_requested() {
                interrupted = true;
            }
            if seq >= count || deadline.is_some_and(|d| now >= d) || interrupted {
                sending = false;
                wait_until = now + if cfg.echo { cfg.wait } else { COMPLETION_WAIT };
            } else {
                let max = (count - seq).min(batch as u64).min(eng.tx_free.len() as u64);
                let now_ns = now.duration_since(start).as_nanos() as u64;
                let n = bucket.take(now_ns, max) as usize;
                if n > 0 {
                    // Stamp as late as possible: right before the frames go on the ring.
                    let t = Instant::now();
                    let ts = t.duration_since(start).as_nanos() as u64;
                    let mut left = n;
                    while left > 0 {
                        let k = left.min(eng.kick_batch);
                        if let Some((m, rng)) = mixer.as_mut() {
                            for _ in 0..k {
                                let mut f = eng.tx_free.pop().expect("max is bounded by free frames");
                                let n = m.write(umem.frame_mut(&mut f), seq, rng);
                                eng.txq.push(Desc::one(f, 0, n as u32));
                                seq += 1;
                            }
                        } else if let Some((p, rng)) = flooder.as_mut() {
                            for _ in 0..k {
                                let mut f = eng.tx_free.pop().expect("max is bounded by free frames");
                                let fields = p.draw(rng, seq);
                                p.patch(umem.frame_mut(&mut f), &fields);
                                eng.txq.push(Desc::one(f, 0, len));
                                seq += 1;
                            }
                        } else {
                            for _ in 0..k {
                                let mut f = eng.tx_free.pop().expect("max is bounded by free frames");
                                patcher.patch(umem.frame_mut(&mut f), flow, seq, ts);
                                eng.txq.push(Desc::one(f, 0, len));
                                seq += 1;
                                flow += 1;
                                if flow == nflows {
                                    flow = 0;
                                }
                            }
                        }
                        // The ring always has room: transmit frames are never
                        // more than it holds. Should it refuse, what it left
                        // stays queued for the next submission.
                        submitted += eng.submit();
                        left -= k;
                    }
                    if let Some(t) = tracker.as_mut() {
                        t.on_sent(n as u64);
                    }
                    first_submit.get_or_insert(t);
                    last_submit = t;
                }
            }
        } else {
            let answered = tracker.as_ref().is_none_or(EchoTracker::all_answered);
            if (eng.in_flight == 0 && answered) || now >= wait_until {
                break;
            }
        }
        if came_back == 0 && submitted == 0 {
            eng.kick_if_stalled(now);
        }
        if progress.due(now) {
            let received = tracker.as_ref().map(|t| t.counts().received);
            progress.draw(now, Snapshot { sent: seq, received });
        }
    }
    progress.finish();
    let end = Instant::now();

    let xdp_statistics = eng.dev.stats();
    let iface = IfaceStats::read(&cfg.iface).zip(iface_before).map(|(a, b)| a.since(b));
    let xdp_prog = xdp.as_ref().and_then(|x| x.stats().ok()).unwrap_or_default();
    let first = first_submit.unwrap_or(start);
    let elapsed = last_submit.duration_since(first).as_secs_f64();
    // A single submission has no duration: count it as one quantum interval.
    let elapsed = if elapsed > 0.0 { elapsed } else { 1e-6 };
    let mut tx = eng.tx;
    tx.in_flight_at_end = eng.in_flight;
    tx.frames_per_submit = if tx.submits > 0 { tx.queued as f64 / tx.submits as f64 } else { 0.0 };
    let rtt = recorder.map(|r| r.finish(end));
    let echo = tracker.map(|t| EchoReport {
        counts: t.counts(),
        rtt_us: rtt.as_ref().map(|r| Percentiles::from_ns(&r.total)).unwrap_or_default(),
    });
    let report = Report {
        tool: "xsknet-pktgen",
        setup: Setup {
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            cpus_allowed: cpus_allowed(),
            iface: cfg.iface.clone(),
            queue: cfg.queue,
            src: format!("{}/{}", cfg.src, cfg.prefix),
            dst: cfg.dst.to_string(),
            dst_mac: dst_mac.to_string(),
            dst_mac_from,
            dst_port: cfg.dst_port,
            src_port: cfg.src_port,
            size: cfg.size,
            flows: cfg.flows,
            flows_src_ips: cfg.flows_src_ips,
            count: cfg.count,
            duration_s: cfg.duration.map(|d| d.as_secs_f64()),
            rate_pps: cfg.rate,
            echo: cfg.echo,
            wait_ms: cfg.wait.as_millis() as u64,
            xdp_mode: xdp.as_ref().map_or_else(|| "none".to_string(), |x| x.mode().to_string()),
            flood: flood_spec.as_ref().map(|fs| FloodSetup::new(fs, cfg.seed)),
            bind_mode: if zero_copy { "zero-copy" } else { "copy" },
            tx_frames,
            rx_frames,
            ring_size: cfg.ring_size,
            batch: cfg.batch,
            pacing_quantum: bucket.quantum(),
            kick_batch,
        },
        sent: seq,
        bytes: mixer.as_ref().map_or(seq * cfg.size as u64, |(m, _)| m.bytes()),
        elapsed_s: elapsed,
        rate_pps: seq as f64 / elapsed,
        total_s: end.duration_since(t_begin).as_secs_f64(),
        interrupted,
        tx,
        rx: eng.rx,
        xdp_statistics,
        iface,
        xdp_prog,
        echo,
        mix_sent: mixer.map(|(m, _)| m.sent().into_iter().map(|(kind, sent)| MixCount { kind, sent }).collect()),
    };
    // Socket first, then the program (bpf_link: detached on drop).
    drop(eng);
    drop(xdp);
    Ok(Outcome { report, rtt })
}

/// The AF_XDP socket and its UMEM without an XDP program (`--no-xdp`): AF_XDP
/// transmit needs only a bound socket (`xsk_bind()` in net/xdp/xsk.c asks for
/// no program); nothing reaches its rx ring, every received frame stays the
/// kernel's. Refuses the interface of the default route as attaching does.
fn open_tx_only(cfg: &Config, frames: u32) -> Result<(EthernetAddress, Arc<Umem>, FramePool, XskDevice), BoxError> {
    if !cfg.force && xsknet::xdp::holds_default_route(&cfg.iface)? {
        return Err(format!(
            "{} holds the default route: flooding from it would hit this machine's own network; pass --force if you \
             really mean it",
            cfg.iface
        )
        .into());
    }
    let mac = EthernetAddress(xsknet::xdp::interface_mac(&cfg.iface)?);
    let (umem, pool) = Umem::new(frames, FRAME_SIZE)?;
    let umem = Arc::new(umem);
    let mut xcfg = XskConfig::new(&cfg.iface, cfg.queue);
    xcfg.bind_mode = cfg.bind_mode;
    xcfg.set_ring_sizes(cfg.ring_size);
    let xsk = XskDevice::open(umem.clone(), &xcfg)?;
    Ok((mac, umem, pool, xsk))
}

/// ARP for the destination through our own socket, [`ARP_TRIES`] times.
fn resolve(eng: &mut Engine, cfg: &Config, clock: Instant) -> Result<EthernetAddress, BoxError> {
    for _ in 0..ARP_TRIES {
        eng.send_arp_request()?;
        let until = Instant::now() + ARP_INTERVAL;
        while Instant::now() < until {
            eng.complete();
            eng.poll_rx(clock, |_, _, _| {});
            if let Some(m) = eng.peer_mac {
                return Ok(m);
            }
            if xsknet::signal::stop_requested() {
                return Err("interrupted while resolving the destination by ARP".into());
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    Err(format!("nobody answered ARP for {} on {}; check the peer is up or pass --dst-mac", cfg.dst, cfg.iface).into())
}
