//! Differential test for TCP: the same scripted segments to a Linux TCP server
//! and to `xsknet echo`, the same replies and the same counters out.
//!
//! Two veth pairs, as in `differential.rs`. In the first, the target
//! namespace's kernel owns 10.77.0.2/24 and a kernel echo server (a thread
//! with a `std::net` listener made in that namespace) listens on port 7; in the
//! second, `xsknet echo` serves the same address and port. From each peer
//! namespace a scripted peer speaks TCP in raw Ethernet frames through an
//! `AF_PACKET` socket bound to the peer's veth: it sends the segments, reads
//! the server's replies (so it learns the server's ISN and answers with the
//! right numbers), and answers ARP for its own address.
//!
//! The scripted peer is 10.77.0.3, an address the peer namespace's kernel does
//! not own: the replies reach its veth, but its stack drops them (not for
//! it, forwarding off) instead of answering a SYN-ACK with a RST of its own.
//!
//! Each step's replies are compared segment by segment: flags, sequence and
//! acknowledgment numbers relative to the two ISNs (so random ISNs compare),
//! the options in wire order, the window of a SYN-ACK, the data. At the end
//! the kernel's TCP counters (the delta of `/proc/net/snmp` and
//! `/proc/net/netstat` in the target namespace, read after the server closed
//! its listener) are compared with xsknet's JSON report, and both columns are
//! printed.
//!
//! Known differences, each kept out of the strict comparison with its reason,
//! are in [`KNOWN_DIFFERENCES`]. The windows of segments after the SYN-ACK
//! are printed, not compared: Linux offers its `rcv_ssthresh`, which starts
//! at the SYN-ACK's window and grows as data comes (`tcp_grow_window`);
//! xsknet offers its whole free receive buffer.
//!
//! Needs root (skips otherwise, fails under `CI`), `iproute2` and `ethtool`.

mod common;

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::{Ipv4Addr, TcpListener, TcpStream},
    os::fd::{AsRawFd, OwnedFd},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use common::*;
use xsknet::testing::{self, in_netns, NetNsPair, NetNsPairOptions};
use xsknet::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use xsknet::wire::ethernet::{self, ethertype, EthernetAddress};
use xsknet::wire::ipv4::{protocol, Ipv4Packet};
use xsknet::wire::tcp::{flags, option_kind, TcpOptions, TcpPacket, TcpRepr};

/// The scripted peer's address: on the peer's subnet, owned by no kernel.
const SCRIPT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 3);
/// A port nobody listens on.
const CLOSED_PORT: u16 = 9999;
/// How long the peer listens for replies after each segment: longer than the
/// 40 ms delayed ACK, shorter than the 1 s SYN-ACK retransmission.
const REPLY_WINDOW: Duration = Duration::from_millis(250);
/// Linux sends at most one challenge or out-of-window ACK per connection per
/// `net.ipv4.tcp_invalid_ratelimit` (500 ms, `tcp_oow_rate_limited()`): the
/// steps that provoke one wait this long first.
const OOW_GAP: Duration = Duration::from_millis(600);
/// The window our SYNs offer.
const PEER_WINDOW: u16 = 64240;
/// The window scale our SYNs offer.
const PEER_WSCALE: u8 = 7;

/// The counters both stacks must agree on, in nstat's names.
const COMPARED: &[&str] = &[
    "TcpActiveOpens",
    "TcpPassiveOpens",
    "TcpAttemptFails",
    "TcpEstabResets",
    "TcpInSegs",
    "TcpOutSegs",
    "TcpRetransSegs",
    "TcpInErrs",
    "TcpOutRsts",
    "TcpInCsumErrors",
    "TcpExtListenOverflows",
    "TcpExtListenDrops",
    "TcpExtTCPReqQFullDrop",
    "TcpExtTCPReqQFullDoCookies",
    "TcpExtSyncookiesSent",
    "TcpExtSyncookiesRecv",
    "TcpExtSyncookiesFailed",
    "TcpExtEmbryonicRsts",
    "TcpExtTCPChallengeACK",
    "TcpExtTCPSYNChallenge",
    "TcpExtTCPACKSkippedChallenge",
    "TcpExtTW",
    "TcpExtTCPAbortOnData",
    "TcpExtTCPAbortOnClose",
    "TcpExtDelayedACKLost",
    "TcpExtTCPOFOQueue",
    "TcpExtTCPOFOMerge",
    "TcpExtTCPDSACKOldSent",
    "TcpExtTCPDSACKOfoSent",
    "TcpExtTCPSynRetrans",
    "TcpExtTCPTimeouts",
    "TcpExtTCPOrigDataSent",
    "TcpExtTCPACKSkippedSeq",
    "TcpExtTCPACKSkippedSynRecv",
    "TcpExtPAWSEstab",
    "TcpExtPAWSOldAck",
    "TcpExtPAWSActive",
    "TcpExtTSEcrRejected",
    "TcpExtPAWSTimewait",
    "TcpExtTCPACKSkippedPAWS",
];

/// Steps whose replies differ on purpose, with the reason; their replies are
/// compared with the difference taken out (see [`Reply::without_timestamps`]).
/// (None since RFC 7323 timestamps came: the SYN with timestamps is
/// compared as any other step.)
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

// ---------------------------------------------------------------- replies

/// One segment from the server, as compared: numbers relative to the ISNs.
#[derive(Clone, Debug)]
struct Reply {
    flags: u8,
    /// SEG.SEQ − the server's ISN, or SEG.SEQ itself when the connection has
    /// no server ISN (a RST for a closed port).
    seq: u32,
    /// SEG.ACK − our ISN.
    ack: u32,
    /// The options in wire order, tcpdump's names.
    options: Vec<String>,
    /// The window, on a SYN-ACK only: later windows follow the receive
    /// buffer, which Linux grows as data comes (`tcp_grow_window`,
    /// `rcv_ssthresh`) and xsknet offers whole (docs/tcp.md).
    window: Option<u16>,
    data: Vec<u8>,
    /// The window field of any segment: printed, not compared.
    wire_window: u16,
}

impl PartialEq for Reply {
    fn eq(&self, other: &Reply) -> bool {
        (self.flags, self.seq, self.ack, &self.options, self.window, &self.data)
            == (other.flags, other.seq, other.ack, &other.options, other.window, &other.data)
    }
}
impl Eq for Reply {}

impl Reply {
    fn flag_text(&self) -> String {
        let mut s = String::new();
        for (bit, c) in [(flags::SYN, 'S'), (flags::FIN, 'F'), (flags::RST, 'R'), (flags::PSH, 'P')] {
            if self.flags & bit != 0 {
                s.push(c);
            }
        }
        if self.flags & flags::ACK != 0 {
            s.push('.');
        }
        s
    }

    /// The reply with the timestamps option, its NOPs and the window that
    /// depends on them taken out: what the known timestamps difference
    /// leaves to compare.
    fn without_timestamps(&self) -> Reply {
        let options = self.options.iter().filter(|o| *o != "nop" && !o.starts_with("TS")).cloned().collect();
        Reply { options, window: None, ..self.clone() }
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} seq {} ack {}", self.flag_text(), self.seq, self.ack)?;
        match self.window {
            Some(w) => write!(f, " win {w}")?,
            None => write!(f, " (win {})", self.wire_window)?,
        }
        if !self.options.is_empty() {
            write!(f, " <{}>", self.options.join(","))?;
        }
        if !self.data.is_empty() {
            write!(f, " len {}", self.data.len())?;
        }
        Ok(())
    }
}

/// tcpdump's names for the options in `raw`, in order.
fn option_names(raw: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = raw;
    while let [kind, tail @ ..] = rest {
        match *kind {
            option_kind::EOL => {
                names.push("eol".into());
                break;
            }
            option_kind::NOP => {
                names.push("nop".into());
                rest = tail;
                continue;
            }
            _ => {}
        }
        let Some(&len) = tail.first() else {
            names.push(format!("truncated kind {kind}"));
            break;
        };
        let len = usize::from(len);
        if len < 2 || len > rest.len() {
            names.push(format!("bad kind {kind} len {len}"));
            break;
        }
        let v = &rest[2..len];
        names.push(match (*kind, v.len()) {
            (option_kind::MSS, 2) => format!("mss {}", u16::from_be_bytes([v[0], v[1]])),
            (option_kind::WINDOW, 1) => format!("wscale {}", v[0]),
            (option_kind::SACK_PERM, 0) => "sackOK".into(),
            // The values are random per connection: only their presence compares.
            (option_kind::TIMESTAMP, 8) => "TS".into(),
            (option_kind::SACK, _) => format!("sack {}", v.len() / 8),
            _ => format!("kind {kind} len {len}"),
        });
        rest = &rest[len..];
    }
    names
}

// ---------------------------------------------------------------- the raw peer

/// What the scripted peer knows of one connection.
#[derive(Clone, Copy, Debug)]
struct Conn {
    sport: u16,
    dport: u16,
    /// Our ISN.
    iss: u32,
    /// Our next sequence number.
    snd_nxt: u32,
    /// The server's ISN, once a SYN-ACK told it.
    irs: Option<u32>,
    /// The server's next sequence number, as far as its segments told.
    rcv_nxt: u32,
    /// Our TSval, when this connection sends timestamps: every segment
    /// without explicit options carries it, echoing `ts_recent`.
    tsval: Option<u32>,
    /// The server's latest TSval, echoed in our TSecr.
    ts_recent: u32,
}

impl Conn {
    fn new(sport: u16, dport: u16, iss: u32) -> Conn {
        Conn { sport, dport, iss, snd_nxt: iss, irs: None, rcv_nxt: 0, tsval: None, ts_recent: 0 }
    }

    /// [`Conn::new`] for a peer that sends timestamps, starting at `tsval`.
    fn with_ts(sport: u16, dport: u16, iss: u32, tsval: u32) -> Conn {
        Conn { tsval: Some(tsval), ..Conn::new(sport, dport, iss) }
    }
}

/// One step of a script and what came back.
struct Step {
    name: String,
    replies: Vec<Reply>,
    /// Linux only: the counters the step changed.
    counters: BTreeMap<String, i64>,
}

/// The scripted peer: an `AF_PACKET` socket on the peer's veth that sends
/// frames from [`SCRIPT_ADDR`] and reads the server's.
struct RawPeer {
    fd: OwnedFd,
    ifindex: i32,
    mac: [u8; 6],
    server_mac: [u8; 6],
    ident: u16,
    /// The target namespace, when its kernel is the server: each step's
    /// counter changes are read there.
    kernel_ns: Option<String>,
    last_counters: BTreeMap<String, i64>,
    steps: Vec<Step>,
}

impl RawPeer {
    fn open(pair: &NetNsPair, kernel_ns: Option<&str>) -> RawPeer {
        let ifname = pair.peer_ifname().to_owned();
        let (fd, ifindex) = packet_socket(pair.peer_ns(), &ifname, libc::ETH_P_ALL as u16);
        let mut peer = RawPeer {
            fd,
            ifindex,
            mac: pair.peer_mac(),
            server_mac: pair.mac(),
            ident: 1,
            kernel_ns: kernel_ns.map(str::to_owned),
            last_counters: BTreeMap::new(),
            steps: Vec::new(),
        };
        if let Some(ns) = kernel_ns {
            peer.last_counters = kernel_counters(ns);
        }
        peer
    }

    fn send_frame(&self, frame: &[u8]) {
        packet_send(&self.fd, self.ifindex, frame);
    }

    /// Sends `segment` (a TCP header and data, checksum already in place, or
    /// deliberately wrong) to the server in an IPv4 packet.
    fn send_segment(&mut self, segment: &[u8]) {
        self.ident = self.ident.wrapping_add(1);
        let ip = ipv4_packet(SCRIPT_ADDR, SERVER_ADDR, protocol::TCP, self.ident, &[], segment);
        let frame = eth_frame(self.server_mac, self.mac, ethertype::IPV4, &ip);
        self.send_frame(&frame);
    }

    /// Builds and sends a well-formed segment of `c` (its ports).
    fn send_tcp(&mut self, c: &Conn, seq: u32, ack: u32, fl: u8, mut options: TcpOptions, data: &[u8]) {
        if let (Some(tsval), None) = (c.tsval, options.timestamp) {
            options.timestamp = Some((tsval, if fl & flags::ACK != 0 { c.ts_recent } else { 0 }));
        }
        let repr = TcpRepr {
            src_port: c.sport,
            dst_port: c.dport,
            seq,
            ack,
            flags: fl,
            window: PEER_WINDOW,
            urgent: 0,
            options,
            payload_len: data.len(),
        };
        let seg = xsknet::wire::build::tcp(SCRIPT_ADDR, SERVER_ADDR, &repr, data);
        self.send_segment(&seg);
    }

    /// Reads frames for `window`: answers ARP for [`SCRIPT_ADDR`], returns the
    /// TCP segments from the server to us, in arrival order.
    fn collect(&self, window: Duration) -> Vec<(TcpRepr, Vec<u8>, Vec<u8>)> {
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return got;
            }
            let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: `pfd` is one live pollfd and 1 is the count passed.
            let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as i32) };
            if n <= 0 {
                continue;
            }
            // SAFETY: `fd` is a valid socket and `buf` is live and writable for its length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < ethernet::HEADER_LEN as isize {
                continue;
            }
            let frame = &buf[..n as usize];
            let et = u16::from_be_bytes([frame[12], frame[13]]);
            let l3 = &frame[ethernet::HEADER_LEN..];
            if et == ethertype::ARP {
                self.answer_arp(l3);
            } else if et == ethertype::IPV4 {
                let Ok(ip) = Ipv4Packet::new_checked(l3) else { continue };
                if ip.src_addr() != SERVER_ADDR || ip.dst_addr() != SCRIPT_ADDR || ip.protocol() != protocol::TCP {
                    continue;
                }
                let l4 = &l3[ip.header_len()..ip.total_len()];
                let Ok(tcp) = TcpPacket::new_checked(l4) else { continue };
                got.push((TcpRepr::parse(&tcp), tcp.options().to_vec(), tcp.payload().to_vec()));
            }
        }
    }

    /// Answers an ARP request for [`SCRIPT_ADDR`] (the servers ask before
    /// their first reply, and Linux again to confirm a stale entry).
    fn answer_arp(&self, l3: &[u8]) {
        let Ok(req) = ArpRepr::parse(&ArpPacket::new_unchecked(l3)) else { return };
        if req.operation != ArpOperation::Request || req.target_ip != SCRIPT_ADDR {
            return;
        }
        let reply = ArpRepr {
            operation: ArpOperation::Reply,
            sender_hw: EthernetAddress(self.mac),
            sender_ip: SCRIPT_ADDR,
            target_hw: req.sender_hw,
            target_ip: req.sender_ip,
        };
        let frame = eth_frame(req.sender_hw.0, self.mac, ethertype::ARP, &xsknet::wire::build::arp(&reply));
        self.send_frame(&frame);
    }

    /// Collects the replies for `c` over [`REPLY_WINDOW`], learns from them
    /// (the server's ISN and next sequence number), records the step.
    fn step(&mut self, name: &str, c: &mut Conn) -> Vec<Reply> {
        self.listen(name, c, REPLY_WINDOW)
    }

    /// [`RawPeer::step`] over `window`: what the server sends unasked (a
    /// timer), or in answer to the segment just sent.
    fn listen(&mut self, name: &str, c: &mut Conn, window: Duration) -> Vec<Reply> {
        let mut replies = Vec::new();
        for (repr, options, data) in self.collect(window) {
            if repr.src_port != c.dport || repr.dst_port != c.sport {
                replies.push(Reply {
                    flags: repr.flags,
                    seq: repr.seq,
                    ack: repr.ack,
                    options: vec![format!("stray, ports {}>{}", repr.src_port, repr.dst_port)],
                    window: None,
                    data,
                    wire_window: repr.window,
                });
                continue;
            }
            let syn = repr.flags & flags::SYN != 0;
            if syn && repr.flags & flags::ACK != 0 && c.irs.is_none() {
                c.irs = Some(repr.seq);
                c.rcv_nxt = repr.seq.wrapping_add(1);
            }
            let end = repr.seq.wrapping_add(repr.seg_len());
            if c.irs.is_some() && repr.flags & flags::RST == 0 && (end.wrapping_sub(c.rcv_nxt) as i32) > 0 {
                c.rcv_nxt = end;
            }
            // What TSecr echoes: compared by what it is, not by value.
            let mut names = option_names(&options);
            if let Some((tsval, tsecr)) = repr.options.timestamp {
                let echo = match (tsecr, c.tsval) {
                    (0, _) => "TS ecr 0",
                    (e, Some(ours)) if e == ours => "TS ecr ours",
                    _ => "TS ecr other",
                };
                for n in names.iter_mut().filter(|n| *n == "TS") {
                    *n = echo.to_string();
                }
                c.ts_recent = tsval;
            }
            replies.push(Reply {
                flags: repr.flags,
                seq: repr.seq.wrapping_sub(c.irs.unwrap_or(0)),
                ack: if repr.flags & flags::ACK != 0 { repr.ack.wrapping_sub(c.iss) } else { repr.ack },
                options: names,
                window: (syn && repr.flags & flags::ACK != 0).then_some(repr.window),
                data,
                wire_window: repr.window,
            });
        }
        let counters = match &self.kernel_ns {
            Some(ns) => {
                let now = kernel_counters(ns);
                let d = delta(&now, &self.last_counters)
                    .into_iter()
                    .filter(|(k, v)| *v != 0 && k.starts_with("Tcp"))
                    .collect();
                self.last_counters = now;
                d
            }
            None => BTreeMap::new(),
        };
        self.steps.push(Step { name: name.to_owned(), replies: replies.clone(), counters });
        replies
    }

    // ---- the moves a script is made of

    /// SYN with `options`; records the SYN-ACK step.
    fn syn(&mut self, name: &str, c: &mut Conn, options: TcpOptions) -> Vec<Reply> {
        let conn = *c;
        self.send_tcp(&conn, conn.iss, 0, flags::SYN, options, &[]);
        c.snd_nxt = conn.iss.wrapping_add(1);
        self.step(name, c)
    }

    /// The three-way handshake with Linux's SYN options less timestamps.
    fn handshake(&mut self, what: &str, c: &mut Conn) {
        self.syn(&format!("{what}: SYN <mss 1460,sackOK,wscale 7>"), c, syn_options());
        // Sent whether a SYN-ACK came or not (then it acknowledges nothing
        // known, and the names of the steps stay the same on both sides).
        self.ack(&format!("{what}: the handshake's ACK"), c);
    }

    /// A pure ACK of everything the server sent.
    fn ack(&mut self, name: &str, c: &mut Conn) -> Vec<Reply> {
        let conn = *c;
        self.send_tcp(&conn, conn.snd_nxt, conn.rcv_nxt, flags::ACK, TcpOptions::default(), &[]);
        self.step(name, c)
    }

    /// In-sequence data with `fl` (ACK is added).
    fn data(&mut self, name: &str, c: &mut Conn, fl: u8, data: &[u8]) -> Vec<Reply> {
        let conn = *c;
        self.send_tcp(&conn, conn.snd_nxt, conn.rcv_nxt, fl | flags::ACK, TcpOptions::default(), data);
        c.snd_nxt = conn.snd_nxt.wrapping_add(data.len() as u32 + u32::from(fl & flags::FIN != 0));
        self.step(name, c)
    }

    /// Any segment of `c` with explicit numbers; our `snd_nxt` is left as is.
    fn raw(&mut self, name: &str, c: &mut Conn, seq: u32, ack: u32, fl: u8, data: &[u8]) -> Vec<Reply> {
        let conn = *c;
        self.send_tcp(&conn, seq, ack, fl, TcpOptions::default(), data);
        self.step(name, c)
    }
}

fn syn_options() -> TcpOptions {
    TcpOptions { mss: Some(1460), sack_permitted: true, window_scale: Some(PEER_WSCALE), ..TcpOptions::default() }
}

fn delta(after: &BTreeMap<String, i64>, before: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0))).collect()
}

// ---------------------------------------------------------------- scripts

/// Scenarios 1 to 4: a whole connection, closed ports, malformed segments,
/// and RFC 5961's checks on an established connection.
fn script_main(p: &mut RawPeer) {
    // 1. Handshake, data with PSH echoed back, our FIN, the server's FIN, last ACK.
    let mut c = Conn::new(40001, ECHO_PORT, 0x1000_0000);
    p.handshake("1 echo", &mut c);
    p.data("1 echo: data with PSH", &mut c, flags::PSH, b"hello, differential tcp\n");
    p.ack("1 echo: ACK of the echo", &mut c);
    p.data("1 echo: our FIN", &mut c, flags::FIN, &[]);
    p.ack("1 echo: last ACK", &mut c);

    // 2. A closed port.
    let mut z = Conn::new(40002, CLOSED_PORT, 0x2000_0000);
    p.syn("2 closed: SYN", &mut z, syn_options());
    p.raw("2 closed: ACK", &mut z, 0x2000_0001, 0x3333_0000, flags::ACK, &[]);
    p.raw("2 closed: RST", &mut z, 0x2000_0001, 0, flags::RST, &[]);
    p.raw("2 closed: RST|ACK", &mut z, 0x2000_0001, 0x3333_0000, flags::RST | flags::ACK, &[]);
    p.raw(
        "2 closed: FIN|PSH|ACK with data",
        &mut z,
        0x2000_0001,
        0x3333_0000,
        flags::FIN | flags::PSH | flags::ACK,
        b"bye",
    );
    p.raw("2 closed: FIN with data, no ACK", &mut z, 0x2000_0001, 0, flags::FIN, b"bye");

    // 3. Malformed SYNs for the listening port: none gets an answer.
    let mut m = Conn::new(40003, ECHO_PORT, 0x3000_0000);
    let syn = |m: &Conn| {
        let repr = TcpRepr {
            src_port: m.sport,
            dst_port: m.dport,
            seq: m.iss,
            ack: 0,
            flags: flags::SYN,
            window: PEER_WINDOW,
            urgent: 0,
            options: syn_options(),
            payload_len: 0,
        };
        xsknet::wire::build::tcp(SCRIPT_ADDR, SERVER_ADDR, &repr, &[])
    };
    let mut bad_csum = syn(&m);
    bad_csum[16] ^= 0x5a;
    p.send_segment(&bad_csum);
    p.step("3 malformed: SYN with a bad checksum", &mut m);
    let mut short_doff = syn(&m);
    short_doff[12] = 4 << 4;
    fix_tcp_checksum(&mut short_doff);
    p.send_segment(&short_doff);
    p.step("3 malformed: SYN with data offset 4", &mut m);
    let mut long_doff = syn(&m);
    long_doff[12] = 15 << 4; // 60 bytes of header in a 32-byte segment
    fix_tcp_checksum(&mut long_doff);
    p.send_segment(&long_doff);
    p.step("3 malformed: SYN with data offset 15 beyond the segment", &mut m);

    // A SYN with timestamps (RFC 7323): the SYN-ACK echoes its TSval, lays
    // SACK-permitted beside them, and rounds its window to the MSS less
    // their 12 bytes (65160 = 45 x 1448); the request is reset at once.
    let mut t = Conn::with_ts(40004, ECHO_PORT, 0x4000_0000, 0x0102_0304);
    p.syn("SYN with timestamps", &mut t, syn_options());
    let ts_conn = t;
    p.raw("RST of the timestamps request", &mut t, ts_conn.snd_nxt, 0, flags::RST, &[]);

    // 4. RFC 5961 on an established connection, then RFC 9293's other checks.
    let mut e = Conn::new(40005, ECHO_PORT, 0x5000_0000);
    p.handshake("4 established", &mut e);
    p.data("4 established: data with PSH", &mut e, flags::PSH, b"ping");
    p.ack("4 established: ACK of the echo", &mut e);
    let (rcv, snd) = (e.snd_nxt, e.rcv_nxt);
    std::thread::sleep(OOW_GAP);
    p.raw("4 established: RST in window, not RCV.NXT", &mut e, rcv.wrapping_add(100), 0, flags::RST, &[]);
    std::thread::sleep(OOW_GAP);
    p.raw("4 established: SYN at RCV.NXT", &mut e, rcv, 0, flags::SYN, &[]);
    std::thread::sleep(OOW_GAP);
    p.raw("4 established: data out of window", &mut e, rcv.wrapping_add(1 << 30), snd, flags::ACK, b"far away");
    std::thread::sleep(OOW_GAP);
    p.raw("4 established: ACK of unsent data", &mut e, rcv, snd.wrapping_add(1000), flags::ACK, &[]);
    std::thread::sleep(OOW_GAP);
    // RFC 5961 §5.2: an ACK older than SND.UNA − MAX.SND.WND is challenged,
    // where Linux takes the window as at most the bytes acknowledged so far
    // (`tcp_ack`: 4 here, the echo). At the edge it is an old ACK, ignored.
    p.raw("4 established: ACK at SND.UNA - bytes acked", &mut e, rcv, snd.wrapping_sub(4), flags::ACK, &[]);
    p.raw("4 established: ACK below SND.UNA - bytes acked", &mut e, rcv, snd.wrapping_sub(5), flags::ACK, &[]);
    std::thread::sleep(OOW_GAP);
    p.raw("4 established: RST out of window", &mut e, rcv.wrapping_add(1 << 30), 0, flags::RST, &[]);
    p.raw("4 established: RST at RCV.NXT", &mut e, rcv, 0, flags::RST, &[]);
    p.raw("4 established: ACK after the reset", &mut e, rcv, snd, flags::ACK, &[]);

    // 6. A request sock (SYN-RECEIVED on the listener): the SYN again, a
    // wrong ACK, then the final ACK carrying data, and the close.
    let mut r = Conn::new(40006, ECHO_PORT, 0x7000_0000);
    let first_syn_at = Instant::now();
    p.syn("6 syn-recv: SYN <mss 1460,sackOK,wscale 7>", &mut r, syn_options());
    let first_syn = r;
    p.syn("6 syn-recv: the same SYN again", &mut r, syn_options());
    p.syn("6 syn-recv: the same SYN a third time, at once", &mut r, syn_options());
    r.rcv_nxt = first_syn.rcv_nxt;
    let (rcv, snd) = (r.snd_nxt, r.rcv_nxt);
    // The SYN-ACK timer fires 1 s after the first SYN-ACK (the next at 3 s,
    // after the steps below).
    p.listen(
        "6 syn-recv: the SYN-ACK timer (1 s)",
        &mut r,
        (first_syn_at + Duration::from_millis(1400)).saturating_duration_since(Instant::now()),
    );
    p.raw("6 syn-recv: ACK out of window", &mut r, rcv.wrapping_add(1 << 30), snd, flags::ACK, &[]);
    p.raw("6 syn-recv: ACK out of window again, at once", &mut r, rcv.wrapping_add(1 << 30), snd, flags::ACK, &[]);
    p.raw("6 syn-recv: ACK of something else than the SYN-ACK", &mut r, rcv, snd.wrapping_add(100), flags::ACK, &[]);
    p.data("6 syn-recv: final ACK with data and PSH", &mut r, flags::PSH, b"hello");
    p.data("6 syn-recv: our FIN", &mut r, flags::FIN, &[]);
    p.ack("6 syn-recv: last ACK", &mut r);

    // 7s. With SACK (RFC 2018, RFC 2883): out-of-order data gets a SACK
    // block, the hole filled, then the same bytes again: a D-SACK block
    // (`tcp_dsack_set`, TcpExtTCPDSACKOldSent), and a duplicate of data
    // held out of order (TcpExtTCPDSACKOfoSent).
    let mut k = Conn::new(40017, ECHO_PORT, 0x7a00_0000);
    p.syn("7s sack: SYN <mss 1460,sackOK,wscale 7>", &mut k, syn_options());
    p.ack("7s sack: the handshake's ACK", &mut k);
    let (rcv, snd) = (k.snd_nxt, k.rcv_nxt);
    p.raw("7s sack: data after a 5-byte hole", &mut k, rcv.wrapping_add(5), snd, flags::ACK | flags::PSH, b"world");
    p.raw("7s sack: the same out of order again", &mut k, rcv.wrapping_add(5), snd, flags::ACK | flags::PSH, b"world");
    p.raw("7s sack: the hole filled", &mut k, rcv, snd, flags::ACK | flags::PSH, b"hello");
    k.snd_nxt = rcv.wrapping_add(10);
    p.ack("7s sack: ACK of the echo", &mut k);
    let (rcv, snd) = (k.snd_nxt, k.rcv_nxt);
    p.raw("7s sack: the first 5 bytes again", &mut k, rcv.wrapping_sub(10), snd, flags::ACK | flags::PSH, b"hello");
    p.data("7s sack: our FIN", &mut k, flags::FIN, &[]);
    p.ack("7s sack: last ACK", &mut k);

    // 7. A connection without SACK or window scaling (so Linux sends no SACK
    // or D-SACK blocks): out-of-order data, the hole filled, a duplicate,
    // and the rate limits of RFC 5961 ACKs.
    let mut n = Conn::new(40007, ECHO_PORT, 0x7800_0000);
    let mss_only = TcpOptions { mss: Some(1460), ..TcpOptions::default() };
    p.syn("7 no sack: SYN <mss 1460>", &mut n, mss_only);
    p.ack("7 no sack: the handshake's ACK", &mut n);
    let (rcv, snd) = (n.snd_nxt, n.rcv_nxt);
    p.raw("7 no sack: data after a 5-byte hole", &mut n, rcv.wrapping_add(5), snd, flags::ACK | flags::PSH, b"world");
    p.raw("7 no sack: the hole filled", &mut n, rcv, snd, flags::ACK | flags::PSH, b"hello");
    n.snd_nxt = rcv.wrapping_add(10);
    p.ack("7 no sack: ACK of the echo", &mut n);
    let (rcv, snd) = (n.snd_nxt, n.rcv_nxt);
    p.raw("7 no sack: the first 5 bytes again", &mut n, rcv.wrapping_sub(10), snd, flags::ACK | flags::PSH, b"hello");
    std::thread::sleep(OOW_GAP);
    p.raw("7 no sack: RST in window, not RCV.NXT", &mut n, rcv.wrapping_add(10), 0, flags::RST, &[]);
    p.raw("7 no sack: RST in window again, at once", &mut n, rcv.wrapping_add(20), 0, flags::RST, &[]);
    std::thread::sleep(OOW_GAP);
    p.raw("7 no sack: ACK out of window", &mut n, rcv.wrapping_add(1 << 30), snd, flags::ACK, &[]);
    p.raw("7 no sack: ACK out of window again, at once", &mut n, rcv.wrapping_add(1 << 30), snd, flags::ACK, &[]);
    p.data("7 no sack: our FIN", &mut n, flags::FIN, &[]);
    p.ack("7 no sack: last ACK", &mut n);

    // 8. The listener's odd SYNs, and a peer that offers no options at all
    // (MSS 536: the echo is cut to it) and sends its last data with its FIN.
    let mut f = Conn::new(40008, ECHO_PORT, 0x7c00_0000);
    let conn = f;
    p.send_tcp(&conn, conn.iss, 0, flags::SYN | flags::FIN, syn_options(), &[]);
    p.step("8 listener: SYN|FIN", &mut f);
    let mut d = Conn::new(40009, ECHO_PORT, 0x7d00_0000);
    let conn = d;
    p.send_tcp(&conn, conn.iss, 0, flags::SYN, syn_options(), b"data on a SYN");
    d.snd_nxt = conn.iss.wrapping_add(1);
    p.step("8 listener: SYN with data", &mut d);
    let conn = d;
    p.raw("8 listener: RST of that request", &mut d, conn.snd_nxt, 0, flags::RST, &[]);
    let mut o = Conn::new(40010, ECHO_PORT, 0x7e00_0000);
    p.syn("8 no options: SYN without options", &mut o, TcpOptions::default());
    p.ack("8 no options: the handshake's ACK", &mut o);
    p.data("8 no options: 1000 bytes with PSH", &mut o, flags::PSH, &pattern(1000));
    p.ack("8 no options: ACK of the echo", &mut o);
    p.data("8 no options: data with PSH and FIN", &mut o, flags::PSH | flags::FIN, b"last words");
    p.ack("8 no options: last ACK", &mut o);

    script_timestamps(p);
}

/// Scenario 10: a connection with RFC 7323 timestamps: every segment
/// carries them and echoes ours; PAWS (RFC 7323 §5) drops data with an old
/// TSval (`PAWSEstab`, answered with a duplicate ACK), a pure ACK far behind
/// (`PAWSEstab`), and an old ACK below RCV.NXT (`PAWSOldAck`, silently);
/// a RST is taken whatever its TSval.
fn script_timestamps(p: &mut RawPeer) {
    let mut c = Conn::with_ts(40030, ECHO_PORT, 0x5800_0000, 0x2000_0000);
    p.syn("10 timestamps: SYN <mss 1460,sackOK,TS,wscale 7>", &mut c, syn_options());
    c.tsval = Some(0x2000_0010);
    p.ack("10 timestamps: the handshake's ACK", &mut c);
    c.tsval = Some(0x2000_0020);
    p.data("10 timestamps: data with PSH", &mut c, flags::PSH, b"stamped");
    c.tsval = Some(0x2000_0030);
    p.ack("10 timestamps: ACK of the echo", &mut c);
    let (rcv, snd) = (c.snd_nxt, c.rcv_nxt);
    // Data whose TSval is older than the last one: a wrapped old segment.
    let old = TcpOptions { timestamp: Some((0x1fff_0000, c.ts_recent)), ..TcpOptions::default() };
    p.send_tcp(&c, rcv, snd, flags::ACK | flags::PSH, old, b"stale");
    p.step("10 timestamps: data with an old TSval", &mut c);
    std::thread::sleep(OOW_GAP);
    p.send_tcp(&c, rcv, snd, flags::ACK, old, &[]);
    p.step("10 timestamps: pure ACK at RCV.NXT with an old TSval", &mut c);
    p.send_tcp(&c, rcv.wrapping_sub(3), snd, flags::ACK, old, &[]);
    p.step("10 timestamps: pure ACK below RCV.NXT with an old TSval", &mut c);
    // One tick behind passes (TCP_PAWS_WINDOW): the data is echoed.
    let one_behind = TcpOptions { timestamp: Some((0x2000_002f, c.ts_recent)), ..TcpOptions::default() };
    p.send_tcp(&c, rcv, snd, flags::ACK | flags::PSH, one_behind, b"fresh");
    c.snd_nxt = rcv.wrapping_add(5);
    p.step("10 timestamps: data one tick behind", &mut c);
    c.tsval = Some(0x2000_0040);
    p.ack("10 timestamps: ACK of the second echo", &mut c);
    p.data("10 timestamps: our FIN", &mut c, flags::FIN, &[]);
    p.ack("10 timestamps: last ACK", &mut c);
}

/// Scenario 11, with `tcp_timestamps=0` on the server: the peer offers
/// timestamps and keeps sending the option; the server's segments carry
/// none.
fn script_timestamps_off(p: &mut RawPeer) {
    let mut c = Conn::with_ts(40040, ECHO_PORT, 0x5900_0000, 0x2100_0000);
    p.syn("11 timestamps off: SYN <mss 1460,sackOK,TS,wscale 7>", &mut c, syn_options());
    c.tsval = Some(0x2100_0010);
    p.ack("11 timestamps off: the handshake's ACK", &mut c);
    c.tsval = Some(0x2100_0020);
    p.data("11 timestamps off: data with PSH", &mut c, flags::PSH, b"not stamped");
    c.tsval = Some(0x2100_0030);
    p.ack("11 timestamps off: ACK of the echo", &mut c);
    p.data("11 timestamps off: our FIN", &mut c, flags::FIN, &[]);
    p.ack("11 timestamps off: last ACK", &mut c);
}

/// Scenario 5: listen backlog 1, nobody accepts, three handshakes.
fn script_backlog(p: &mut RawPeer) {
    for (i, port) in [40011u16, 40012, 40013].into_iter().enumerate() {
        let mut c = Conn::new(port, ECHO_PORT, 0x6000_0000 + (i as u32) * 0x0100_0000);
        p.handshake(&format!("5 backlog 1: handshake {}", i + 1), &mut c);
    }
}

/// A backlog-1 listener's SYN queue filled by SYNs from `port` and `port + 1`
/// (ISNs `iss` and `iss` + 2^24), then a SYN from `port + 2` (ISN `iss` + 2^25)
/// answered with a SYN cookie, and the two request socks reset; returns the
/// third connection, its cookie's ACK not sent yet. Steps named after `what`.
fn syn_to_a_full_queue(p: &mut RawPeer, what: &str, port: u16, iss: u32) -> Conn {
    let mut held: Vec<Conn> = Vec::new();
    for i in 0..2u16 {
        let mut c = Conn::new(port + i, ECHO_PORT, iss + u32::from(i) * 0x0100_0000);
        p.syn(&format!("{what}: SYN {} held", i + 1), &mut c, syn_options());
        held.push(c);
    }
    let mut k = Conn::new(port + 2, ECHO_PORT, iss + 0x0200_0000);
    p.syn(&format!("{what}: SYN to a full SYN queue"), &mut k, syn_options());
    for (i, c) in held.iter_mut().enumerate() {
        let seq = c.snd_nxt;
        p.raw(&format!("{what}: RST of request {}", i + 1), c, seq, 0, flags::RST, &[]);
    }
    k
}

/// Scenario 9: listen backlog 1, `tcp_syncookies=1` (Linux's default): two
/// SYNs fill the SYN queue (`qlen > backlog`), the third is answered with a
/// SYN cookie (MSS only: no timestamps, so no room for window scale or
/// SACK), the two request socks are reset (before their SYN-ACK timer), the
/// cookie's ACK makes the connection, and a stray ACK with a bad cookie is
/// reset.
fn script_syncookies(p: &mut RawPeer) {
    let mut k = syn_to_a_full_queue(p, "9 syncookies", 40021, 0x6100_0000);
    p.ack("9 syncookies: the cookie's ACK", &mut k);
    let mut s = Conn::new(40024, ECHO_PORT, 0x6400_0000);
    s.snd_nxt = s.iss.wrapping_add(1);
    p.raw("9 syncookies: a stray ACK, not a cookie", &mut s, 0x6400_0001, 0x0bad_c00c, flags::ACK, &[]);
}

/// Scenario 11: as scenario 9, the SYN to the full SYN queue with
/// timestamps: the cookie's SYN-ACK keeps window scale and SACK (carried in
/// the low bits of its TSval, `cookie_init_timestamp`), and the cookie's
/// ACK echoing that TSval makes a connection that has them
/// (`cookie_timestamp_decode`): out-of-order data gets a SACK block.
fn script_syncookies_ts(p: &mut RawPeer) {
    let mut held: Vec<Conn> = Vec::new();
    for (i, port) in [40041u16, 40042].into_iter().enumerate() {
        let mut c = Conn::with_ts(port, ECHO_PORT, 0x6500_0000 + (i as u32) * 0x0100_0000, 0x3000_0000);
        p.syn(&format!("11 syncookies+TS: SYN {} held", i + 1), &mut c, syn_options());
        held.push(c);
    }
    let mut k = Conn::with_ts(40043, ECHO_PORT, 0x6700_0000, 0x3000_0100);
    p.syn("11 syncookies+TS: SYN with timestamps to a full SYN queue", &mut k, syn_options());
    for (i, c) in held.iter_mut().enumerate() {
        let seq = c.snd_nxt;
        p.raw(&format!("11 syncookies+TS: RST of request {}", i + 1), c, seq, 0, flags::RST, &[]);
    }
    k.tsval = Some(0x3000_0110);
    p.ack("11 syncookies+TS: the cookie's ACK echoing its TSval", &mut k);
    let (rcv, snd) = (k.snd_nxt, k.rcv_nxt);
    p.raw("11 syncookies+TS: data after a 4-byte hole", &mut k, rcv.wrapping_add(4), snd, flags::ACK, b"sack");
}

/// Scenario 12: as scenario 9 with a server that accepts: an echo on the
/// cookie's connection, both FINs, and our last ACK twice. The second finds
/// only the listener, and its acknowledgment number less one is still a
/// valid cookie (each side's sequence moved by the same echoed bytes and a
/// FIN, and `cookie_v4_check` takes the one from the other): with the
/// overflow recent, a second connection opens on it, which our FIN then
/// closes. A kernel client in TIME_WAIT sends such an ACK when our FIN goes
/// again after its first ACK.
fn script_syncookies_last_ack_again(p: &mut RawPeer) {
    let mut k = syn_to_a_full_queue(p, "12 last ACK again", 40051, 0x6800_0000);
    p.ack("12 last ACK again: the cookie's ACK", &mut k);
    p.data("12 last ACK again: data with PSH", &mut k, flags::PSH, b"cookie\n");
    p.ack("12 last ACK again: ACK of the echo", &mut k);
    p.data("12 last ACK again: our FIN", &mut k, flags::FIN, &[]);
    p.ack("12 last ACK again: last ACK", &mut k);
    p.ack("12 last ACK again: the last ACK again, a valid cookie", &mut k);
    // The second connection begins where the first ended: our FIN closes it.
    p.data("12 last ACK again: our FIN on the second connection", &mut k, flags::FIN, &[]);
    p.ack("12 last ACK again: its last ACK", &mut k);
}

/// A request to a server whose listener has `TCP_QUICKACK` 0: the ACK of the
/// request rides on the echo, no pure ACK before it, though the request
/// comes right after the handshake (before `accept()`, or just after).
fn script_quickack_off(p: &mut RawPeer) {
    let mut c = Conn::new(40011, ECHO_PORT, 0x1100_0000);
    p.handshake("quickack off", &mut c);
    p.data("quickack off: a request, its ACK on the echo", &mut c, flags::PSH, b"request\n");
    p.ack("quickack off: ACK of the echo", &mut c);
    p.data("quickack off: a second request", &mut c, flags::PSH, b"again\n");
    p.ack("quickack off: ACK of the second echo", &mut c);
    p.data("quickack off: our FIN", &mut c, flags::FIN, &[]);
    p.ack("quickack off: last ACK", &mut c);
}

/// Recomputes the TCP checksum of `seg` (from [`SCRIPT_ADDR`] to the server)
/// after a test changed a header field.
fn fix_tcp_checksum(seg: &mut [u8]) {
    seg[16] = 0;
    seg[17] = 0;
    let len = seg.len() as u16;
    let mut pseudo = Vec::with_capacity(12 + seg.len());
    pseudo.extend_from_slice(&SCRIPT_ADDR.octets());
    pseudo.extend_from_slice(&SERVER_ADDR.octets());
    pseudo.extend_from_slice(&[0, protocol::TCP]);
    pseudo.extend_from_slice(&len.to_be_bytes());
    pseudo.extend_from_slice(seg);
    let c = xsknet::wire::checksum::checksum(&pseudo);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
}

// ---------------------------------------------------------------- the two servers

/// The kernel's TCP echo server: a listener with `backlog` made in the target
/// namespace, served by a thread (and a thread per connection) until dropped;
/// with `quickack_off`, the listener gets `TCP_QUICKACK` 0 after `listen()`,
/// which its connections inherit (as `xsknet echo --tcp-quickack 0` does).
struct KernelServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl KernelServer {
    fn start(ns: &str, backlog: i32, accept: bool, quickack_off: bool) -> KernelServer {
        let listener = in_netns(ns, || TcpListener::bind((Ipv4Addr::UNSPECIFIED, ECHO_PORT)))
            .expect("bind the kernel echo server");
        // listen(2) again sets the backlog of a listening socket (`inet_listen`).
        // SAFETY: listen(2) on a socket this function owns; no memory is passed.
        let rc = unsafe { libc::listen(listener.as_raw_fd(), backlog) };
        assert_eq!(rc, 0, "listen({backlog}): {}", std::io::Error::last_os_error());
        if quickack_off {
            let zero: libc::c_int = 0;
            // SAFETY: setsockopt(2) on a socket this function owns, with a
            // pointer to a live c_int and its size.
            let rc = unsafe {
                libc::setsockopt(
                    listener.as_raw_fd(),
                    libc::IPPROTO_TCP,
                    libc::TCP_QUICKACK,
                    (&raw const zero).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "TCP_QUICKACK: {}", std::io::Error::last_os_error());
        }
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut conns: Vec<JoinHandle<()>> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if !accept {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    match listener.accept() {
                        Ok((s, _)) => {
                            let stop = stop.clone();
                            conns.push(std::thread::spawn(move || echo(s, &stop)));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
                for t in conns {
                    let _ = t.join();
                }
                // The listener closes here, with whatever its queues hold.
            })
        };
        KernelServer { stop, thread: Some(thread) }
    }

    /// Stops serving and closes the listener.
    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("kernel server thread");
        }
    }
}

impl Drop for KernelServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Echoes `s` until the peer's FIN or an error, then closes it.
fn echo(mut s: TcpStream, stop: &AtomicBool) {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
}

/// What one run produced.
struct Run {
    steps: Vec<Step>,
    counters: BTreeMap<String, i64>,
}

fn pair_options(addr: Option<(Ipv4Addr, u8)>) -> NetNsPairOptions {
    NetNsPairOptions { addr, peer_addr: Some((PEER_ADDR, PREFIX)), ipv6: false, ..NetNsPairOptions::default() }
}

/// Waits until 10.77.0.2 answers the scripted peer's ARP: the link is up, the
/// server's stack answers, and it knows our MAC.
fn wait_for_arp(pair: &NetNsPair) {
    let mac = arp_probe(
        pair.peer_ns(),
        pair.peer_ifname(),
        pair.peer_mac(),
        SCRIPT_ADDR,
        SERVER_ADDR,
        Duration::from_secs(5),
    )
    .expect("10.77.0.2 never answered ARP");
    assert_eq!(mac, pair.mac(), "ARP reply with the wrong MAC");
}

fn run_linux(script: fn(&mut RawPeer), backlog: i32, accept: bool) -> Run {
    run_linux_with(script, backlog, accept, &[])
}

/// [`run_linux`] with `TCP_QUICKACK` 0 on the listener after `listen()`,
/// which its connections inherit.
fn run_linux_quickack_off(script: fn(&mut RawPeer)) -> Run {
    run_linux_server(script, 511, true, &[], true)
}

/// [`run_linux`] with the target namespace's `net.ipv4` sysctls set first
/// (`("tcp_timestamps", "0")`: `/proc/sys/net/ipv4/tcp_timestamps`, per namespace).
fn run_linux_with(script: fn(&mut RawPeer), backlog: i32, accept: bool, sysctls: &[(&str, &str)]) -> Run {
    run_linux_server(script, backlog, accept, sysctls, false)
}

/// The Linux run: again, up to three in all, while a step shows Linux's
/// delayed-ACK timer firing. In these scripts the server application answers
/// at once (its echo or its FIN carries the ACK); a timer that fired means
/// the test's own server thread ran late, on a machine busy with other tests
/// (a run under `make test` once sent the ACK of our FIN alone, 40 ms before
/// the FIN), not a behaviour to compare.
fn run_linux_server(
    script: fn(&mut RawPeer),
    backlog: i32,
    accept: bool,
    sysctls: &[(&str, &str)],
    quickack_off: bool,
) -> Run {
    let once = || {
        let pair = NetNsPair::with_options(&pair_options(Some((SERVER_ADDR, PREFIX)))).expect("netns pair");
        for (name, value) in sysctls {
            in_netns(pair.ns(), || std::fs::write(format!("/proc/sys/net/ipv4/{name}"), value))
                .unwrap_or_else(|e| panic!("net.ipv4.{name}={value}: {e}"));
        }
        let server = KernelServer::start(pair.ns(), backlog, accept, quickack_off);
        wait_for_arp(&pair);
        let first = kernel_counters(pair.ns());
        let mut peer = RawPeer::open(&pair, Some(pair.ns()));
        script(&mut peer);
        server.stop();
        std::thread::sleep(Duration::from_millis(100));
        let last = kernel_counters(pair.ns());
        Run { steps: peer.steps, counters: delta(&last, &first) }
    };
    let late = |run: &Run| run.steps.iter().any(|s| s.counters.get("TcpExtDelayedACKs").is_some_and(|&n| n > 0));
    let mut run = once();
    for _ in 0..2 {
        if !late(&run) {
            break;
        }
        eprintln!("Linux's delayed-ACK timer fired: its server thread ran late; Linux's run again");
        run = once();
    }
    run
}

fn run_xsknet(script: fn(&mut RawPeer), extra: &[&str]) -> Run {
    let pair = NetNsPair::with_options(&pair_options(None)).expect("netns pair");
    // The kernel's run takes the segments on a veth, whose GRO is off by
    // default: xsknet copies that device, so that two segments the script
    // sends back to back get the ACKs Linux gives them one by one, whether
    // or not they land in one rx batch.
    let args: Vec<&str> = ["--gro", "off"].iter().chain(extra).copied().collect();
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &args);
    wait_for_arp(&pair);
    let mut peer = RawPeer::open(&pair, None);
    script(&mut peer);
    let f = x.stop();
    f.assert_clean_exit();
    let counters = f.json["counters"]
        .as_object()
        .expect("counters object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_i64().expect("integer counter")))
        .collect();
    eprintln!("xsknet report:\n{}", f.stdout);
    Run { steps: peer.steps, counters }
}

/// Prints every step's replies from both and the counters in two columns;
/// returns what differs (steps, then counters).
fn compare(linux: &Run, xsk: &Run) -> (Vec<String>, Vec<&'static str>) {
    assert_eq!(linux.steps.len(), xsk.steps.len(), "the script ran differently");
    let mut bad_steps = Vec::new();
    eprintln!("\nstep by step (seq relative to the server's ISN, ack to ours):");
    for (l, x) in linux.steps.iter().zip(&xsk.steps) {
        assert_eq!(l.name, x.name);
        let known = KNOWN_DIFFERENCES.iter().find(|(n, _)| *n == l.name);
        let same = match known {
            Some(_) => {
                let strip = |r: &[Reply]| r.iter().map(Reply::without_timestamps).collect::<Vec<_>>();
                strip(&l.replies) == strip(&x.replies)
            }
            None => l.replies == x.replies,
        };
        let mark = match (same, known) {
            (true, None) => "",
            (true, Some(_)) => "  (known difference, see below)",
            (false, _) => "  <-- differs",
        };
        let show = |r: &[Reply]| {
            if r.is_empty() {
                "-".to_string()
            } else {
                r.iter().map(ToString::to_string).collect::<Vec<_>>().join(" | ")
            }
        };
        eprintln!("  {}{mark}", l.name);
        eprintln!("      linux:  {}", show(&l.replies));
        eprintln!("      xsknet: {}", show(&x.replies));
        let changes: Vec<String> = l.counters.iter().map(|(k, v)| format!("{k} {v:+}")).collect();
        eprintln!("      linux counted: {}", changes.join(" "));
        if !same {
            bad_steps.push(l.name.clone());
        }
    }
    for (name, why) in KNOWN_DIFFERENCES {
        if linux.steps.iter().any(|s| s.name == *name) {
            eprintln!("  known difference, {name}: {why}");
        }
    }
    eprintln!(
        "  not compared: the window of segments after the SYN-ACK (in parentheses): Linux offers \
         rcv_ssthresh (the SYN-ACK's window, grown as data comes, tcp_grow_window), xsknet its \
         whole free receive buffer"
    );
    let bad_counters = counter_table(&linux.counters, &xsk.counters, COMPARED);
    let others: Vec<String> = linux
        .counters
        .iter()
        .filter(|(k, v)| **v != 0 && k.starts_with("Tcp") && !COMPARED.contains(&k.as_str()))
        .map(|(k, v)| {
            let x = xsk.counters.get(k).map_or("-".to_string(), |x| x.to_string());
            format!("{k} linux {v} xsknet {x}")
        })
        .collect();
    eprintln!("  not compared, changed on Linux: {}", others.join("; "));
    (bad_steps, bad_counters)
}

fn assert_same(linux: &Run, xsk: &Run) {
    let (steps, counters) = compare(linux, xsk);
    assert!(steps.is_empty() && counters.is_empty(), "Linux and xsknet differ: steps {steps:?}, counters {counters:?}");
}

#[test]
fn tcp_same_segments_same_replies_as_linux() {
    if !testing::require_root("tcp_same_segments_same_replies_as_linux") {
        return;
    }
    let linux = run_linux(script_main, 511, true);
    let xsk = run_xsknet(script_main, &["--backlog", "511"]);
    // The script did what it means to on Linux: the echo came back and the
    // connection closed through the server's FIN.
    let echo = &linux.steps[2].replies;
    assert!(echo.iter().any(|r| r.data == b"hello, differential tcp\n"), "no echo from Linux: {echo:?}");
    assert_same(&linux, &xsk);
}

/// Listen backlog 1 on both, nobody accepts (the kernel server never calls
/// accept(); xsknet has `--max-fds 2`, its UDP socket and listener, so its
/// accept() fails with `EMFILE` and leaves the connections queued, as Linux's
/// does): the accept queue holds backlog + 1 = 2 children, the third SYN is
/// dropped and counted in `ListenOverflows` and `ListenDrops`.
#[test]
fn tcp_backlog_overflow_as_linux() {
    if !testing::require_root("tcp_backlog_overflow_as_linux") {
        return;
    }
    let linux = run_linux(script_backlog, 1, false);
    let xsk = run_xsknet(script_backlog, &["--backlog", "1", "--max-fds", "2"]);
    assert_eq!(linux.counters.get("TcpExtListenOverflows").copied(), Some(1), "Linux did not overflow as expected");
    assert_same(&linux, &xsk);
}

/// SYN cookies beside Linux's (`tcp_syncookies=1`, its default): the same
/// SYN-ACKs, the same connection from the cookie's ACK, the same reset for
/// a bad cookie, the same counters.
#[test]
fn tcp_syncookies_as_linux() {
    if !testing::require_root("tcp_syncookies_as_linux") {
        return;
    }
    let linux = run_linux(script_syncookies, 1, false);
    let xsk = run_xsknet(script_syncookies, &["--backlog", "1", "--max-fds", "2"]);
    assert_eq!(linux.counters.get("TcpExtSyncookiesSent").copied(), Some(1), "Linux sent no cookie");
    assert_eq!(linux.counters.get("TcpExtSyncookiesRecv").copied(), Some(1), "Linux took no cookie");
    assert_same(&linux, &xsk);
}

/// A duplicate of the last ACK of a connection made from a SYN cookie,
/// beside Linux's: it makes a second connection on both.
#[test]
fn tcp_syncookies_last_ack_again_as_linux() {
    if !testing::require_root("tcp_syncookies_last_ack_again_as_linux") {
        return;
    }
    let linux = run_linux(script_syncookies_last_ack_again, 1, true);
    let xsk = run_xsknet(script_syncookies_last_ack_again, &["--backlog", "1"]);
    let echo = &linux.steps[6].replies;
    assert!(echo.iter().any(|r| r.data == b"cookie\n"), "no echo from Linux: {echo:?}");
    assert_eq!(linux.counters.get("TcpExtSyncookiesRecv").copied(), Some(2), "Linux took not two cookies");
    assert_same(&linux, &xsk);
}

/// SYN cookies for a SYN with timestamps beside Linux's: window scale and
/// SACK survive the cookie, in the TSval the SYN-ACK carries.
#[test]
fn tcp_syncookies_with_timestamps_as_linux() {
    if !testing::require_root("tcp_syncookies_with_timestamps_as_linux") {
        return;
    }
    let linux = run_linux(script_syncookies_ts, 1, false);
    let xsk = run_xsknet(script_syncookies_ts, &["--backlog", "1", "--max-fds", "2"]);
    assert_eq!(linux.counters.get("TcpExtSyncookiesRecv").copied(), Some(1), "Linux took no cookie");
    // The connection from the cookie has SACK: the hole is reported.
    let last = &linux.steps.last().expect("steps").replies;
    assert!(last.iter().any(|r| r.options.iter().any(|o| o.starts_with("sack"))), "no SACK from Linux: {last:?}");
    assert_same(&linux, &xsk);
}

/// `xsknet echo --tcp-timestamps 0` beside Linux with `net.ipv4.tcp_timestamps=0`
/// (the CLI's sysctl, as Linux takes it): a SYN offering timestamps gets a
/// SYN-ACK without them, and no segment of the connection carries them.
#[test]
fn tcp_timestamps_off_as_linux() {
    if !testing::require_root("tcp_timestamps_off_as_linux") {
        return;
    }
    let linux = run_linux_with(script_timestamps_off, 511, true, &[("tcp_timestamps", "0")]);
    let xsk = run_xsknet(script_timestamps_off, &["--backlog", "511", "--tcp-timestamps", "0"]);
    let synack = &linux.steps[0].replies;
    assert!(
        synack.iter().all(|r| r.flags & flags::SYN != 0 && !r.options.iter().any(|o| o.starts_with("TS"))),
        "Linux offered timestamps: {synack:?}"
    );
    let echo = &linux.steps[2].replies;
    assert!(echo.iter().any(|r| r.data == b"not stamped"), "no echo from Linux: {echo:?}");
    assert_same(&linux, &xsk);
}

/// `xsknet echo --tcp-quickack 0` beside a Linux echo server whose listener
/// has `TCP_QUICKACK` 0: the requests' ACKs ride on the echoes on both, and
/// the same segments follow.
#[test]
fn tcp_quickack_off_as_linux() {
    if !testing::require_root("tcp_quickack_off_as_linux") {
        return;
    }
    let linux = run_linux_quickack_off(script_quickack_off);
    let xsk = run_xsknet(script_quickack_off, &["--backlog", "511", "--tcp-quickack", "0"]);
    let echo = &linux.steps[2].replies;
    assert!(echo.len() == 1 && echo[0].data == b"request\n", "Linux did not put the ACK on the echo alone: {echo:?}");
    assert_same(&linux, &xsk);
}
