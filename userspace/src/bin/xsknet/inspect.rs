//! `xsknet list`, `xsknet stat` and `xsknet ss`: a running instance seen as
//! `nstat` and `ss` show the kernel, through its control endpoint
//! (`xsknet::control`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use xsknet::control::{self, ControlError, InstanceInfo, Request, Snapshot};
use xsknet::inet_diag::{Netid, SockDiag};
use xsknet::TcpState;

use crate::BoxError;

/// Which instance a command looks at.
#[derive(Args, Clone, Debug)]
pub struct Which {
    /// The instance on IFACE (default: the only one running).
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    /// Its rx queue (default: any; needed when one interface has several instances).
    #[arg(long)]
    pub queue: Option<u32>,
}

impl Which {
    /// The control socket of the instance meant.
    pub fn path(&self) -> Result<PathBuf, ControlError> {
        control::find(self.iface.as_deref(), self.queue)
    }
}

/// `xsknet list`: every instance with a control socket.
pub fn list() -> Result<(), BoxError> {
    let all = control::list().map_err(needs_root)?;
    if all.is_empty() {
        println!("no xsknet instance is running (no control socket in {})", control::run_dir().display());
        return Ok(());
    }
    println!(
        "{:<16} {:>5} {:<16} {:>8} {:<18} {:<20} {:<16} {:>10}  control socket",
        "iface", "queue", "netns", "pid", "app", "address", "xdp prog", "uptime"
    );
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    for path in all {
        let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        if control::remove_if_stale(&path) {
            println!("{:<93}  {} (stale: its process is gone; removed)", "-", path.display());
            continue;
        }
        match control::request::<InstanceInfo>(&path, Request::Info) {
            Ok(i) => println!(
                "{:<16} {:>5} {:<16} {:>8} {:<18} {:<20} {:<16} {:>9.0}s  {}",
                i.iface,
                i.queue,
                i.netns.label(),
                i.pid,
                i.app,
                format!("{}:{}", i.addr, i.port),
                xdp_prog(&path, &i),
                (now - i.started_unix_s).max(0.0),
                path.display()
            ),
            Err(e) => println!("{:<93}  {} ({name}: {e})", "-", path.display()),
        }
    }
    Ok(())
}

/// The instance's XDP program as `list` shows it: `ID attached`, `ID DETACHED`
/// (taken off the interface while the instance runs: it receives nothing), or
/// the id alone when the loop has not said (`-` from an instance too old to tell).
fn xdp_prog(path: &Path, i: &InstanceInfo) -> String {
    let Some(id) = i.prog_id else { return "-".into() };
    match control::request::<Snapshot>(path, Request::Stats) {
        Ok(s) if s.stats.xdp_prog_id == id => {
            format!("{id} {}", if s.stats.xdp_attached { "attached" } else { "DETACHED" })
        }
        _ => id.to_string(),
    }
}

/// Turns "permission denied" into what to do about it.
pub(crate) fn needs_root(e: ControlError) -> BoxError {
    match &e {
        ControlError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            format!("{e}: the control sockets are root's: run as root (sudo)").into()
        }
        _ => e.into(),
    }
}

pub(crate) fn ask<T: serde::de::DeserializeOwned>(path: &Path, req: Request) -> Result<T, BoxError> {
    control::request(path, req).map_err(|e| {
        if e.is_gone() {
            format!("{e}: the instance is gone (stopped, or killed and its stale socket left for the next instance on that queue to replace)").into()
        } else {
            needs_root(e)
        }
    })
}

/// `xsknet stat`'s options: `nstat`'s.
#[derive(Args, Clone, Debug)]
pub struct StatArgs {
    #[command(flatten)]
    which: Which,
    /// Absolute values, not the change since the last call (`nstat -a`).
    #[arg(short = 'a', long = "ignore")]
    absolute: bool,
    /// Counters that are zero too (`nstat -z`).
    #[arg(short = 'z', long)]
    zeros: bool,
    /// Do not update the history (`nstat -s`).
    #[arg(short = 's', long)]
    noupdate: bool,
    /// Forget the history first: values since the instance started (`nstat -r`).
    #[arg(short = 'r', long)]
    reset: bool,
    /// Print nothing, only update the history (`nstat -n`).
    #[arg(short = 'n', long)]
    nooutput: bool,
    /// JSON, as `nstat --json`: {"xsknet": {"IpInReceives": 12, …}}.
    #[arg(short = 'j', long)]
    json: bool,
    /// The per-stage latency of the sampled packets since the start (count, p50, p99, p99.9, max)
    /// after the counters (text only; `xsknet top` shows it per interval).
    #[arg(short = 'l', long)]
    latency: bool,
    /// Only counters whose name matches a PATTERN (shell wildcards, as nstat: 'Udp*').
    #[arg(value_name = "PATTERN")]
    patterns: Vec<String>,
}

/// What `stat` remembers between calls (`nstat`'s history file).
#[derive(serde::Serialize, serde::Deserialize)]
struct History {
    pid: u32,
    started_unix_s: f64,
    uptime_ns: u64,
    counters: BTreeMap<String, u64>,
}

fn history_path(control: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("XSKNET_STAT_HISTORY") {
        return PathBuf::from(p);
    }
    let stem = control.file_stem().map_or_else(|| "xsknet".into(), |s| s.to_string_lossy().into_owned());
    // The caller's uid: the owner of its /proc entry.
    let uid = std::fs::metadata("/proc/self").map_or(0, |m| std::os::unix::fs::MetadataExt::uid(&m));
    std::env::temp_dir().join(format!(".xsknet-stat.u{uid}.{stem}"))
}

/// `xsknet stat`.
pub fn stat(a: &StatArgs) -> Result<(), BoxError> {
    let path = a.which.path().map_err(needs_root)?;
    let snap: Snapshot = ask(&path, Request::Stats)?;
    let patterns = a
        .patterns
        .iter()
        .map(|p| glob::Pattern::new(p).map_err(|e| format!("pattern {p:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let hist_path = history_path(&path);
    let history: Option<History> = if a.reset {
        None
    } else {
        std::fs::read(&hist_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<History>(&b).ok())
            // Another process, or one started since: its counters are not ours to subtract.
            .filter(|h| h.pid == snap.info.pid && h.started_unix_s == snap.info.started_unix_s)
    };
    let counters = snap.counters();
    let secs = history
        .as_ref()
        .map(|h| snap.stats.uptime_ns.saturating_sub(h.uptime_ns) as f64 / 1e9)
        .unwrap_or(snap.stats.uptime_ns as f64 / 1e9);
    let rows: Vec<(&str, u64, f64)> = counters
        .iter()
        .filter(|(n, _, _)| patterns.is_empty() || patterns.iter().any(|p| p.matches(n)))
        .map(|&(n, v, _)| {
            let before = history.as_ref().and_then(|h| h.counters.get(n).copied()).unwrap_or(0);
            let delta = v.saturating_sub(before);
            let rate = if secs > 0.0 { delta as f64 / secs } else { 0.0 };
            (n, if a.absolute { v } else { delta }, rate)
        })
        .filter(|&(_, v, _)| a.zeros || v != 0)
        .collect();

    if !a.nooutput {
        if a.json {
            let obj: serde_json::Map<String, serde_json::Value> =
                rows.iter().map(|&(n, v, _)| (n.to_string(), v.into())).collect();
            println!("{}", serde_json::json!({ "xsknet": obj }));
        } else {
            println!(
                "#xsknet {} on {} queue {}, pid {}",
                snap.info.app, snap.info.iface, snap.info.queue, snap.info.pid
            );
            for (n, v, rate) in &rows {
                println!("{n:<32}{v:<16}{rate:6.1}");
            }
            if a.latency {
                print_latency(&snap);
            }
        }
        if snap.age_ns > 1_000_000_000 {
            eprintln!(
                "xsknet: the loop last published {:.1} s ago: it is stalled or descheduled",
                snap.age_ns as f64 / 1e9
            );
        }
    }
    if !a.noupdate {
        let h = History {
            pid: snap.info.pid,
            started_unix_s: snap.info.started_unix_s,
            uptime_ns: snap.stats.uptime_ns,
            counters: counters.iter().map(|&(n, v, _)| (n.to_string(), v)).collect(),
        };
        std::fs::write(&hist_path, serde_json::to_vec(&h)?)
            .map_err(|e| format!("writing the history {}: {e}", hist_path.display()))?;
    }
    Ok(())
}

fn print_latency(snap: &Snapshot) {
    println!(
        "#latency of sampled packets since the instance started (not since the last call), µs: count p50 p99 p99.9 max"
    );
    for (name, h) in snap.stats.stages() {
        let s = h.summary();
        let us = |ns: u64| ns as f64 / 1e3;
        println!(
            "{name:<32}{:<16}{:.1} {:.1} {:.1} {:.1}",
            s.count,
            us(s.p50_ns),
            us(s.p99_ns),
            us(s.p999_ns),
            us(s.max_ns)
        );
    }
}

/// `xsknet ss`'s options: `ss`'s.
#[derive(Args, Clone, Debug)]
pub struct SsArgs {
    #[command(flatten)]
    which: Which,
    /// TCP sockets.
    #[arg(short = 't', long)]
    tcp: bool,
    /// UDP sockets.
    #[arg(short = 'u', long)]
    udp: bool,
    /// Only listening sockets (TCP LISTEN, UDP unconnected).
    #[arg(short = 'l', long)]
    listening: bool,
    /// Listening and non-listening sockets, TIME-WAIT and SYN-RECV included.
    #[arg(short = 'a', long)]
    all: bool,
    /// Numeric addresses (always: xsknet resolves no names; accepted for `ss` habits).
    #[arg(short = 'n', long)]
    numeric: bool,
    /// TCP internals: rto, rtt, mss, cwnd, retransmits, bytes (`ss -i`).
    #[arg(short = 'i', long)]
    info: bool,
    /// Buffer memory: skmem (r, rb, t, tb, f, w) and the UMEM frames held (`ss -m`).
    #[arg(short = 'm', long)]
    memory: bool,
    /// The sockets as JSON.
    #[arg(short = 'j', long)]
    json: bool,
}

/// Whether `ss` without `-a` shows a socket in `state` (`SS_CONN`: not
/// listening, closed, TIME-WAIT or SYN-RECV), and with `-l`.
fn shown(d: &SockDiag, a: &SsArgs) -> bool {
    let listening = matches!(d.state, TcpState::Listen | TcpState::Close);
    let type_ok = (!a.tcp && !a.udp) || (a.tcp && d.netid == Netid::Tcp) || (a.udp && d.netid == Netid::Udp);
    let state_ok = if a.all {
        true
    } else if a.listening {
        listening
    } else {
        !listening && !matches!(d.state, TcpState::TimeWait | TcpState::SynRecv)
    };
    type_ok && state_ok
}

/// `xsknet ss`.
pub fn ss(a: &SsArgs) -> Result<(), BoxError> {
    let path = a.which.path().map_err(needs_root)?;
    let socks: Vec<SockDiag> = ask(&path, Request::Sockets)?;
    let socks: Vec<&SockDiag> = socks.iter().filter(|d| shown(d, a)).collect();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&socks)?);
        return Ok(());
    }
    let netid = !(a.tcp ^ a.udp);
    let addr = |s: std::net::SocketAddrV4, port_any: bool| {
        if port_any && s.port() == 0 {
            format!("{}:*", s.ip())
        } else {
            s.to_string()
        }
    };
    if netid {
        print!("{:<6}", "Netid");
    }
    println!(
        "{:<11}{:>7} {:>7} {:<24}{:<24}Process",
        "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port"
    );
    for d in socks {
        if netid {
            print!("{:<6}", if d.netid == Netid::Tcp { "tcp" } else { "udp" });
        }
        let peer = d.remote.map_or("0.0.0.0:*".to_string(), |r| addr(r, true));
        println!(
            "{:<11}{:>7} {:>7} {:<24}{:<24}{}",
            d.state.name(),
            d.recv_q,
            d.send_q,
            addr(d.local, true),
            peer,
            d.fd.map_or(String::new(), |fd| format!("fd={fd}"))
        );
        // As `ss` prints them: one indented line with skmem first, then the TCP internals.
        let mut extra = Vec::new();
        if a.memory {
            let m = &d.skmem;
            extra.push(format!(
                "skmem:(r{},rb{},t{},tb{},f{},w{}) frames:{}",
                m.rmem_alloc, m.rcvbuf, m.wmem_alloc, m.sndbuf, m.forward_alloc, m.wmem_queued, m.frames
            ));
        }
        if let (true, Some(t)) = (a.info, d.tcp_info.as_ref().filter(|_| d.state != TcpState::Close)) {
            extra.push(tcp_info_line(t));
        }
        if !extra.is_empty() {
            println!("\t {}", extra.join(" "));
        }
    }
    Ok(())
}

/// `ss -i`'s line for a TCP socket, its keys and units (ms), leaving out
/// what `ss`'s `tcp_show_info` leaves out: a field that is zero (rtt before
/// a sample; everything but the algorithm, cwnd and unacked for a listener,
/// whose `tcp_info` holds no more), ssthresh while infinite.
fn tcp_info_line(t: &xsknet::TcpInfo) -> String {
    let ms = |us: u32| us as f64 / 1e3;
    let mut parts = Vec::new();
    // tcp_show_info's order: the options, the algorithm, the window scales.
    if t.options & xsknet::ipv4::tcp::info::TCPI_OPT_TIMESTAMPS != 0 {
        parts.push("ts".to_string());
    }
    if t.options & xsknet::ipv4::tcp::info::TCPI_OPT_SACK != 0 {
        parts.push("sack".to_string());
    }
    parts.push(t.congestion.name().to_string());
    if t.options & xsknet::ipv4::tcp::info::TCPI_OPT_WSCALE != 0 {
        parts.push(format!("wscale:{},{}", t.snd_wscale, t.rcv_wscale));
    }
    if t.rto_us > 0 {
        parts.push(format!("rto:{}", ms(t.rto_us)));
    }
    if t.rtt_us > 0 {
        parts.push(format!("rtt:{}/{}", ms(t.rtt_us), ms(t.rttvar_us)));
    }
    for (key, v) in [("mss", t.snd_mss), ("rcvmss", t.rcv_mss), ("cwnd", t.snd_cwnd)] {
        if v > 0 {
            parts.push(format!("{key}:{v}"));
        }
    }
    // TCP_INFINITE_SSTHRESH
    if t.snd_ssthresh > 0 && t.snd_ssthresh < 0x7fff_ffff {
        parts.push(format!("ssthresh:{}", t.snd_ssthresh));
    }
    for (key, v) in [
        ("bytes_acked", t.bytes_acked),
        ("bytes_received", t.bytes_received),
        ("segs_out", t.segs_out),
        ("segs_in", t.segs_in),
    ] {
        if v > 0 {
            parts.push(format!("{key}:{v}"));
        }
    }
    // tcp_show_info: pacing_rate (bits per second), with the cap after a slash when set.
    if t.pacing_rate != 0 && t.pacing_rate != u64::MAX {
        let mut p = format!("pacing_rate {}bps", t.pacing_rate.saturating_mul(8));
        if t.max_pacing_rate != 0 && t.max_pacing_rate != u64::MAX {
            p.push_str(&format!("/{}bps", t.max_pacing_rate.saturating_mul(8)));
        }
        parts.push(p);
    }
    if t.unacked > 0 {
        parts.push(format!("unacked:{}", t.unacked));
    }
    if t.retransmits > 0 || t.total_retrans > 0 {
        parts.push(format!("retrans:{}/{}", t.retransmits, t.total_retrans));
    }
    if t.sacked > 0 && t.state != TcpState::Listen {
        parts.push(format!("sacked:{}", t.sacked));
    }
    if t.dsack_dups > 0 {
        parts.push(format!("dsack_dups:{}", t.dsack_dups));
    }
    // tcp_show_info: the degree only when it is not the default 3.
    if t.reordering != 3 {
        parts.push(format!("reordering:{}", t.reordering));
    }
    if t.reord_seen > 0 {
        parts.push(format!("reord_seen:{}", t.reord_seen));
    }
    // tcp_show_info: the receiver's side of autotuning.
    if t.rcv_rtt_us > 0 {
        parts.push(format!("rcv_rtt:{}", ms(t.rcv_rtt_us)));
    }
    for (key, v) in [("rcv_space", t.rcv_space), ("rcv_ssthresh", t.rcv_ssthresh)] {
        if v > 0 {
            parts.push(format!("{key}:{v}"));
        }
    }
    // tcp_show_info: the smallest RTT, when there is one (a listener has none).
    if t.min_rtt_us > 0 && t.min_rtt_us != u32::MAX {
        parts.push(format!("minrtt:{}", ms(t.min_rtt_us)));
    }
    for (key, v) in [("snd_wnd", t.snd_wnd), ("rcv_wnd", t.rcv_wnd)] {
        if v > 0 {
            parts.push(format!("{key}:{v}"));
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use xsknet::ipv4::tcp::info::tcp_get_info;

    /// A kernel listener under `ss -tiln` (Linux 6.18, iproute2):
    /// `\t cubic cwnd:10` (with the algorithm of `tcp_congestion_control`), and
    /// `unacked:N` once N children wait for accept.
    #[test]
    fn a_listener_shows_its_algorithm_and_window_only_as_ss_does() {
        let listener = xsknet::TcpInfo {
            state: TcpState::Listen,
            snd_cwnd: 10,
            congestion: xsknet::CongAlgo::Cubic,
            ..tcp_get_info(TcpState::Listen, None)
        };
        assert_eq!(tcp_info_line(&listener), "cubic cwnd:10");
        assert_eq!(tcp_info_line(&xsknet::TcpInfo { unacked: 2, ..listener }), "cubic cwnd:10 unacked:2");
        let reno = xsknet::TcpInfo { congestion: xsknet::CongAlgo::Reno, ..listener };
        assert_eq!(tcp_info_line(&reno), "reno cwnd:10");
    }

    /// `minrtt:` (`tcpi_min_rtt`, ms) where iproute2's `tcp_show_info` puts it,
    /// after `rcv_ssthresh:` and before `snd_wnd:`; none before the first sample.
    #[test]
    fn the_minimum_rtt_comes_before_the_windows_as_ss_prints_it() {
        let conn = xsknet::TcpInfo {
            snd_cwnd: 10,
            rcv_ssthresh: 65160,
            min_rtt_us: 28,
            snd_wnd: 101376,
            congestion: xsknet::CongAlgo::Cubic,
            ..tcp_get_info(TcpState::Established, None)
        };
        assert_eq!(tcp_info_line(&conn), "cubic cwnd:10 rcv_ssthresh:65160 minrtt:0.028 snd_wnd:101376");
        let none = xsknet::TcpInfo { min_rtt_us: u32::MAX, ..conn };
        assert_eq!(tcp_info_line(&none), "cubic cwnd:10 rcv_ssthresh:65160 snd_wnd:101376");
    }
}
