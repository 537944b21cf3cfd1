//! `xsknet top`: a live view of a running instance, as `top` and `vmstat`
//! show the kernel: the loop's busy share (our `si`), packets and bytes per
//! second at each stage of the path, drops by reason, where the frames are,
//! the per-stage latency and the TCP sockets by state, refreshed every
//! interval from the instance's control endpoint (`xsknet::control`).
//!
//! The figures are computed by plain functions ([`View::new`] from two
//! [`Snapshot`]s) and drawn apart from them: with ratatui on a terminal
//! ([`render`]), or as one plain line per interval ([`plain_header`],
//! [`plain_line`]) when stdout is not a terminal or with `--plain`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Args;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Gauge, Paragraph, Row, Table};
use ratatui::Frame;
use xsknet::control::{self, ControlError, CounterKind, InstanceInfo, Request, Snapshot};
use xsknet::latency::{LatencyHistogram, LatencySummary, LATENCY_BUCKETS};
use xsknet::snmp::MibCounter;
use xsknet::stack::FrameCensus;
use xsknet::xdp::guard::GuardStat;
use xsknet::{signal, TcpState};

use crate::inspect::{needs_root, Which};
use crate::BoxError;

/// A publication older than this means the loop is not polling.
const STALLED_NS: u64 = 1_000_000_000;

/// `xsknet top`'s options.
#[derive(Args, Clone, Debug)]
pub struct TopArgs {
    #[command(flatten)]
    which: Which,
    /// Seconds between refreshes (at least 0.1; the loop publishes every 0.1 s).
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = parse_interval)]
    interval: f64,
    /// Stop after N refreshes (default: until q, Esc or Ctrl-C).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// One plain line per interval, with a header line, as `vmstat` prints
    /// (the default when stdout is not a terminal).
    #[arg(long)]
    plain: bool,
}

fn parse_interval(s: &str) -> Result<f64, String> {
    let v = xsknet::cli::parse_secs(s)?;
    if v < 0.1 {
        return Err(format!("'{s}': the interval must be at least 0.1 s (the loop publishes every 0.1 s)"));
    }
    Ok(v)
}

/// What the rates of a [`View`] are taken over.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Window {
    /// The interval between two snapshots, seconds.
    Interval(f64),
    /// The instance's whole life, seconds (the first refresh, as `vmstat`'s first line).
    SinceStart(f64),
}

impl Window {
    fn secs(self) -> f64 {
        match self {
            Window::Interval(s) | Window::SinceStart(s) => s,
        }
    }

    fn label(self) -> String {
        match self {
            Window::Interval(s) => format!("over the last {s:.1} s"),
            Window::SinceStart(s) => format!("since start ({s:.1} s)"),
        }
    }
}

/// The rate at one stage of the path.
#[derive(Clone, Debug, PartialEq)]
pub struct StageRate {
    /// The stage, as the screen names it.
    pub name: &'static str,
    /// The counters it adds up (names of [`Snapshot::counters`]).
    pub counters: &'static [&'static str],
    /// Packets (frames, datagrams, segments) per second.
    pub packets: f64,
    /// Bytes per second, where a counter of bytes exists.
    pub bytes: Option<f64>,
}

/// The stages: name, packet counters (summed), byte counter. The UDP stage
/// counts what UDP took in: read by the application (`UdpInDatagrams`, which
/// Linux counts in `udp_recvmsg`), refused for want of a socket, or in error.
const STAGES: &[(&str, &[&str], Option<&str>)] = &[
    ("XDP rx", &["XdpProgRx"], None),
    ("XDP redirected", &["XdpProgRedirectIpv4", "XdpProgRedirectArp"], None),
    (
        "XDP passed",
        &[
            "XdpProgPassNotOurs",
            "XdpProgPassNoSocket",
            "XdpProgPassMalformed",
            "XdpProgPassOtherHost",
            "XdpProgPassKernelAddr",
        ],
        None,
    ),
    ("rx ring", &["XskRxFrames"], None),
    ("IP in", &["IpInReceives"], Some("IpExtInOctets")),
    ("UDP in", &["UdpInDatagrams", "UdpNoPorts", "UdpInErrors"], None),
    ("TCP in", &["TcpInSegs"], None),
    ("app UDP read", &["UdpInDatagrams"], None),
    ("UDP out", &["UdpOutDatagrams"], None),
    ("TCP out", &["TcpOutSegs"], None),
    ("IP out", &["IpOutRequests"], Some("IpExtOutOctets")),
    ("tx ring", &["XskTxFrames"], None),
];

/// A drop counter with its rate.
#[derive(Clone, Debug, PartialEq)]
pub struct DropRate {
    /// The counter's name (`nstat`'s, or ours).
    pub name: &'static str,
    /// What the drop means.
    pub reason: &'static str,
    /// Its value since the instance started.
    pub total: u64,
    /// Per second over the window.
    pub rate: f64,
}

/// The `XDP_STATISTICS` drops (include/uapi/linux/if_xdp.h) by their names
/// in [`Snapshot::counters`], with what they mean.
const DEVICE_DROPS: &[(&str, &str)] = &[
    ("XskRxDropped", "dropped by the kernel before the rx ring"),
    ("XskRxRingFull", "rx ring full: the loop did not keep up"),
    ("XskRxFillRingEmptyDescs", "fill ring empty: no frame to receive into"),
];

/// One stage's latency percentiles.
#[derive(Clone, Debug, PartialEq)]
pub struct StageLatency {
    /// The stage (`PublishedStats::stages`).
    pub name: &'static str,
    /// Its figures, ns.
    pub summary: LatencySummary,
    /// Whether they cover the window (`true`) or the whole life (no sample
    /// in the window, or the first refresh).
    pub interval: bool,
}

/// How the loop polled over the window: where a tail comes from when the
/// stages look idle (docs/latency.md).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PollRates {
    /// Polls per second (`SoftirqPolls`).
    pub polls: f64,
    /// Transmit kicks (`sendto` in copy mode) per second (`XskTxKicks`).
    pub tx_kicks: f64,
    /// Fill-ring wake-ups and busy polls per second (`XskRxWakeups`).
    pub rx_wakeups: f64,
    /// Descriptors taken off the rx ring per poll that found work (rx or
    /// tx work: a poll that only reaped completions counts too).
    pub rx_per_busy_poll: f64,
    /// Time the loop's thread waited to run while runnable, ms per second
    /// (`SoftirqRunDelayNs`, from the thread's schedstat).
    pub run_delay_ms: f64,
    /// Involuntary context switches per second (`SoftirqNivcsw`).
    pub nivcsw: f64,
}

/// Everything one refresh shows, computed from two snapshots.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    /// Who the instance is.
    pub info: InstanceInfo,
    /// Its uptime at the snapshot, ns.
    pub uptime_ns: u64,
    /// How old its last publication was, ns.
    pub age_ns: u64,
    /// Its XDP program's id and whether it is still attached, when watched.
    pub xdp_prog: Option<(u32, bool)>,
    /// What the rates cover.
    pub window: Window,
    /// The loop's busy share over the window, 0–1.
    pub busy: f64,
    /// The loop's polls, kicks and scheduling over the window.
    pub poll: PollRates,
    /// Rates per stage, in the packet's order.
    pub stages: Vec<StageRate>,
    /// The non-zero drop counters, highest rate first.
    pub drops: Vec<DropRate>,
    /// Where the frames are.
    pub census: FrameCensus,
    /// The fill ring's empty slots.
    pub fill_room: u64,
    /// The fill ring's size.
    pub fill_capacity: u64,
    /// Per-stage latency.
    pub latency: Vec<StageLatency>,
    /// TCP sockets by state, in [`TcpState::ALL`] order.
    pub tcp_states: Vec<(&'static str, u64)>,
}

impl View {
    /// The figures of `now`, as rates since `prev` (or since the start).
    pub fn new(prev: Option<&Snapshot>, now: &Snapshot) -> View {
        let prev = prev.filter(|p| same_run(p, now));
        let window = match prev {
            Some(p) => Window::Interval(now.stats.uptime_ns.saturating_sub(p.stats.uptime_ns) as f64 / 1e9),
            None => Window::SinceStart(now.stats.uptime_ns as f64 / 1e9),
        };
        let kinds: HashMap<&str, CounterKind> = now.counters().into_iter().map(|(n, _, k)| (n, k)).collect();
        let cur = counter_map(now);
        let old = prev.map(counter_map).unwrap_or_default();
        let delta =
            |name: &str| cur.get(name).copied().unwrap_or(0).saturating_sub(old.get(name).copied().unwrap_or(0));
        let rate = |d: u64| if window.secs() > 0.0 { d as f64 / window.secs() } else { 0.0 };
        // The XDP program's counters are read when the snapshot is served,
        // `age_ns` after the loop's publication: their window is their own.
        let read_at = |s: &Snapshot| s.stats.uptime_ns + s.age_ns;
        let xdp_secs = read_at(now).saturating_sub(prev.map_or(0, read_at)) as f64 / 1e9;
        let xdp_rate = |d: u64| if xdp_secs > 0.0 { d as f64 / xdp_secs } else { 0.0 };
        let stages = STAGES
            .iter()
            .map(|&(name, counters, bytes)| StageRate {
                name,
                counters,
                packets: {
                    let d = counters.iter().map(|c| delta(c)).sum();
                    if counters.iter().all(|c| kinds.get(c) == Some(&CounterKind::XdpProg)) {
                        xdp_rate(d)
                    } else {
                        rate(d)
                    }
                },
                bytes: bytes.map(|b| rate(delta(b))),
            })
            .collect();
        let mut drops: Vec<DropRate> = MibCounter::ALL
            .iter()
            .filter_map(|c| c.drop_reason().map(|r| (c.name(), r)))
            .chain(DEVICE_DROPS.iter().copied())
            .filter_map(|(name, reason)| {
                let total = cur.get(name).copied().unwrap_or(0);
                (total > 0).then(|| DropRate { name, reason, total, rate: rate(delta(name)) })
            })
            .collect();
        // The guard's drops happen in XDP, before the copy: read with the
        // XDP counters, at serve time.
        drops.extend(GuardStat::ALL.iter().filter(|s| s.is_drop()).filter_map(|s| {
            let name = s.name();
            let total = cur.get(name).copied().unwrap_or(0);
            (total > 0).then(|| DropRate { name, reason: s.meaning(), total, rate: xdp_rate(delta(name)) })
        }));
        drops.sort_by(|a, b| b.rate.total_cmp(&a.rate).then(b.total.cmp(&a.total)).then(a.name.cmp(b.name)));
        let l = &now.stats.softirq;
        let (busy_ns, total_ns) = match prev {
            Some(p) => {
                (l.busy_ns.saturating_sub(p.stats.softirq.busy_ns), l.total_ns.saturating_sub(p.stats.softirq.total_ns))
            }
            None => (l.busy_ns, l.total_ns),
        };
        let busy = if total_ns > 0 { (busy_ns as f64 / total_ns as f64).clamp(0.0, 1.0) } else { 0.0 };
        let busy_polls = delta("SoftirqBusyPolls");
        let poll = PollRates {
            polls: rate(delta("SoftirqPolls")),
            tx_kicks: rate(delta("XskTxKicks")),
            rx_wakeups: rate(delta("XskRxWakeups")),
            rx_per_busy_poll: if busy_polls > 0 {
                l.rx_packets.saturating_sub(prev.map_or(0, |p| p.stats.softirq.rx_packets)) as f64 / busy_polls as f64
            } else {
                0.0
            },
            run_delay_ms: rate(delta("SoftirqRunDelayNs")) / 1e6,
            nivcsw: rate(delta("SoftirqNivcsw")),
        };
        let latency = now
            .stats
            .stages()
            .into_iter()
            .map(|(name, h)| {
                let before = prev.and_then(|p| p.stats.stages().into_iter().find(|(n, _)| *n == name).map(|(_, h)| h));
                match before.and_then(|b| histogram_delta(h, b)).filter(|d| !d.is_empty()) {
                    Some(d) => StageLatency { name, summary: d.summary(), interval: true },
                    None => StageLatency { name, summary: h.summary(), interval: false },
                }
            })
            .collect();
        View {
            info: now.info.clone(),
            uptime_ns: now.stats.uptime_ns,
            age_ns: now.age_ns,
            xdp_prog: (now.stats.xdp_prog_id != 0).then_some((now.stats.xdp_prog_id, now.stats.xdp_attached)),
            window,
            busy,
            poll,
            stages,
            drops,
            census: now.stats.census,
            fill_room: now.stats.fill_room,
            fill_capacity: now.stats.fill_capacity,
            latency,
            tcp_states: TcpState::ALL.iter().zip(now.stats.tcp_states).map(|(s, n)| (s.name(), n)).collect(),
        }
    }

    /// Frames posted on the fill ring for the kernel to receive into: how
    /// many packets can arrive before it runs dry if the loop stops.
    pub fn fill_headroom(&self) -> u64 {
        self.fill_capacity.saturating_sub(self.fill_room)
    }

    /// The XDP program's id when it is no longer attached.
    pub fn xdp_detached(&self) -> Option<u32> {
        self.xdp_prog.and_then(|(id, attached)| (!attached).then_some(id))
    }

    /// Whether the loop has not published for over a second.
    pub fn stalled(&self) -> bool {
        self.age_ns > STALLED_NS
    }

    fn stage(&self, name: &str) -> f64 {
        self.stages.iter().find(|s| s.name == name).map_or(0.0, |s| s.packets)
    }

    fn stage_bytes(&self, name: &str) -> f64 {
        self.stages.iter().find(|s| s.name == name).and_then(|s| s.bytes).unwrap_or(0.0)
    }
}

/// Whether two snapshots come from one run of one process (else the
/// counters started again, and a difference means nothing).
fn same_run(prev: &Snapshot, now: &Snapshot) -> bool {
    prev.info.pid == now.info.pid
        && prev.info.started_unix_s == now.info.started_unix_s
        && prev.stats.uptime_ns < now.stats.uptime_ns
}

fn counter_map(s: &Snapshot) -> HashMap<&'static str, u64> {
    s.counters().into_iter().map(|(n, v, _)| (n, v)).collect()
}

/// The values recorded between `before` and `now` (two readings of one
/// histogram), or `None` if `now` holds fewer in some bucket (not the same
/// histogram, or it was reset). Count, sum and buckets are exact; the
/// window's min and max are exact when the cumulative ones moved in it,
/// else bounded by the buckets they lie in.
pub fn histogram_delta(now: &LatencyHistogram, before: &LatencyHistogram) -> Option<LatencyHistogram> {
    let (mut a, mut b) = (vec![0; LatencyHistogram::WORDS], vec![0; LatencyHistogram::WORDS]);
    now.write_words(&mut a);
    before.write_words(&mut b);
    let n = LATENCY_BUCKETS;
    let mut d = vec![0u64; LatencyHistogram::WORDS];
    for i in 0..n {
        d[i] = a[i].checked_sub(b[i])?;
    }
    let count = a[n].checked_sub(b[n])?;
    if count == 0 {
        return Some(LatencyHistogram::new());
    }
    d[n] = count;
    d[n + 1] = a[n + 1].saturating_sub(b[n + 1]);
    // Buckets only, to find the lowest and highest occupied.
    (d[n + 2], d[n + 3]) = (0, u64::MAX);
    let buckets = LatencyHistogram::from_words(&d);
    let (low, high) = match (buckets.buckets().next(), buckets.buckets().last()) {
        (Some(first), Some(last)) => (first.low, last.high),
        _ => return None,
    };
    let min = if before.is_empty() || now.min() < before.min() { now.min() } else { low.max(now.min()) };
    let max = if now.max() > before.max() { now.max() } else { high.min(now.max()) };
    (d[n + 2], d[n + 3]) = (min, max);
    Some(LatencyHistogram::from_words(&d))
}

/// A rate or count in SI units: `950`, `12.3k`, `1.45M`.
pub fn si(v: f64) -> String {
    let a = v.abs();
    if a < 1e3 {
        if v.fract() == 0.0 || a >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    } else if a < 1e6 {
        format!("{:.1}k", v / 1e3)
    } else if a < 1e9 {
        format!("{:.2}M", v / 1e6)
    } else {
        format!("{:.2}G", v / 1e9)
    }
}

/// Nanoseconds as microseconds with one decimal.
fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e3)
}

/// A duration as `top` shows uptime: `42s`, `3m07s`, `2h05m`, `3d04h`.
pub fn uptime(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// The columns of the plain output, as [`plain_line`] fills them.
const PLAIN_COLUMNS: &[(&str, usize)] = &[
    ("uptime", 8),
    ("si%", 5),
    ("age_ms", 7),
    ("xdp/s", 9),
    ("rx/s", 9),
    ("ipin/s", 9),
    ("inB/s", 11),
    ("udpin/s", 9),
    ("tcpin/s", 9),
    ("read/s", 9),
    ("ipout/s", 9),
    ("outB/s", 11),
    ("tx/s", 9),
    ("drops/s", 8),
    ("fillpost", 8),
    ("inkern", 7),
    ("free", 7),
    ("socks", 6),
    ("rx_p50us", 9),
    ("rx_p99us", 9),
    ("polls/s", 9),
    ("kicks/s", 8),
    ("desch_ms", 8),
];

/// The header line of the plain output.
pub fn plain_header() -> String {
    PLAIN_COLUMNS.iter().map(|(n, w)| format!("{n:>w$}")).collect::<Vec<_>>().join(" ")
}

/// One plain line: the view's rates as whole numbers per second (bytes
/// too), the frames, and the first stage's p50 and p99 in µs.
pub fn plain_line(v: &View) -> String {
    let r = |x: f64| format!("{x:.0}");
    let lat = v.latency.first().map(|l| l.summary).unwrap_or_default();
    // Plus zero: the sum of no rates is -0.0, printed "-0".
    let drops: f64 = v.drops.iter().map(|d| d.rate).sum::<f64>() + 0.0;
    let c = &v.census;
    let values = [
        uptime(v.uptime_ns),
        format!("{:.1}", v.busy * 100.0),
        format!("{}", v.age_ns / 1_000_000),
        r(v.stage("XDP rx")),
        r(v.stage("rx ring")),
        r(v.stage("IP in")),
        r(v.stage_bytes("IP in")),
        r(v.stage("UDP in")),
        r(v.stage("TCP in")),
        r(v.stage("app UDP read")),
        r(v.stage("IP out")),
        r(v.stage_bytes("IP out")),
        r(v.stage("tx ring")),
        r(drops),
        v.fill_headroom().to_string(),
        c.in_kernel.to_string(),
        (c.free_local + c.free_shared).to_string(),
        c.in_socks.to_string(),
        us(lat.p50_ns),
        us(lat.p99_ns),
        r(v.poll.polls),
        r(v.poll.tx_kicks),
        format!("{:.2}", v.poll.run_delay_ms),
    ];
    PLAIN_COLUMNS.iter().zip(values).map(|((_, w), s)| format!("{s:>w$}")).collect::<Vec<_>>().join(" ")
}

fn bold() -> Style {
    Style::default().add_modifier(Modifier::BOLD)
}

fn boxed(title: &str) -> Block<'_> {
    Block::default().borders(Borders::ALL).title(Span::styled(format!(" {title} "), bold()))
}

/// Rows of the header and the loop's box, on every page.
const TOP_ROWS: u16 = 3 + 5;
/// Rows of the frames box: its 7 lines, the table's header and the borders.
const FRAMES_ROWS: u16 = 7 + 3;
/// The smallest terminal that shows every box on one screen.
const FULL_WIDTH: u16 = 120;

/// A box below the loop's, as the paged layout places them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Panel {
    /// The stages beside the drops.
    StagesDrops,
    /// The latency table, full width.
    Latency,
    /// The frames beside the TCP states.
    FramesTcp,
}

/// The pages of a terminal too small for everything at once (less than
/// [`FULL_WIDTH`] columns, or too few rows): the boxes in order, as many on
/// a page as its rows hold. One page when everything fits.
fn pages(area: Rect, v: &View) -> Vec<Vec<(Panel, u16)>> {
    let stages = STAGES.len() as u16 + 3;
    if area.width >= FULL_WIDTH && area.height >= TOP_ROWS + stages + FRAMES_ROWS {
        return Vec::new();
    }
    let avail = area.height.saturating_sub(TOP_ROWS);
    let panels =
        [(Panel::StagesDrops, stages), (Panel::Latency, v.latency.len() as u16 + 3), (Panel::FramesTcp, FRAMES_ROWS)];
    let mut pages: Vec<Vec<(Panel, u16)>> = vec![Vec::new()];
    let mut used = 0;
    for (panel, rows) in panels {
        if used > 0 && used + rows > avail {
            pages.push(Vec::new());
            used = 0;
        }
        pages.last_mut().expect("one page at least").push((panel, rows));
        used += rows;
    }
    pages
}

/// How many pages `v` takes on a terminal of `area` (1 when it fits).
pub fn page_count(area: Rect, v: &View) -> usize {
    pages(area, v).len().max(1)
}

/// Draws `v` on the whole frame: the header, the busy gauge, then the
/// stages beside the drops, then frames, latency and TCP states. A
/// terminal too small for all of it (80×24, say) gets them in pages, and
/// `page` (taken modulo their number) says which is shown; Tab turns them.
pub fn render(f: &mut Frame, v: &View, page: usize) {
    let area = f.area();
    let pages = pages(area, v);
    if pages.is_empty() {
        return render_full(f, v);
    }
    let page = page % pages.len();
    let mut constraints = vec![Constraint::Length(3), Constraint::Length(5)];
    constraints.extend(pages[page].iter().map(|&(_, rows)| Constraint::Length(rows)));
    constraints.push(Constraint::Min(0));
    let rows = Layout::default().direction(Direction::Vertical).constraints(constraints).split(area);
    render_header(f, rows[0], v, Some((page, pages.len())));
    render_loop(f, rows[1], v);
    for (i, &(panel, _)) in pages[page].iter().enumerate() {
        let r = rows[2 + i];
        match panel {
            Panel::StagesDrops => {
                let cols = Layout::default()
                    .direction(Direction::Horizontal)
                    .constraints([Constraint::Percentage(45), Constraint::Percentage(55)])
                    .split(r);
                render_stages(f, cols[0], v);
                render_drops(f, cols[1], v);
            }
            Panel::Latency => render_latency(f, r, v),
            Panel::FramesTcp => {
                let cols = Layout::default()
                    .direction(Direction::Horizontal)
                    .constraints([Constraint::Percentage(55), Constraint::Percentage(45)])
                    .split(r);
                render_frames(f, cols[0], v);
                render_tcp(f, cols[1], v, true);
            }
        }
    }
}

/// Everything on one screen; every TCP state when there is room for them,
/// else those that have sockets.
fn render_full(f: &mut Frame, v: &View) {
    let full_tcp = TcpState::ALL.len() as u16 + 3;
    let tcp_compact = f.area().height < TOP_ROWS + STAGES.len() as u16 + 3 + full_tcp;
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(3),
            Constraint::Length(5),
            Constraint::Length(STAGES.len() as u16 + 3),
            Constraint::Length(if tcp_compact { FRAMES_ROWS } else { full_tcp }),
            Constraint::Min(0),
        ])
        .split(f.area());
    render_header(f, rows[0], v, None);
    render_loop(f, rows[1], v);
    let mid = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(45), Constraint::Percentage(55)])
        .split(rows[2]);
    render_stages(f, mid[0], v);
    render_drops(f, mid[1], v);
    let low = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(30), Constraint::Percentage(45), Constraint::Percentage(25)])
        .split(rows[3]);
    render_frames(f, low[0], v);
    render_latency(f, low[1], v);
    render_tcp(f, low[2], v, tcp_compact);
}

/// The loop's box: the busy gauge on its first line, then how it polled,
/// on two short lines that fit an 80-column terminal.
fn render_loop(f: &mut Frame, area: Rect, v: &View) {
    let block = boxed("Loop (si): time in polls that found work");
    let inner = block.inner(area);
    f.render_widget(block, area);
    let lines = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Length(1), Constraint::Length(1), Constraint::Length(1)])
        .split(inner);
    f.render_widget(
        Gauge::default()
            .gauge_style(Style::default().fg(if v.busy > 0.9 { Color::Red } else { Color::Green }))
            .ratio(v.busy)
            .label(format!("{:.1} % busy {}", v.busy * 100.0, v.window.label())),
        lines[0],
    );
    let p = &v.poll;
    let polls = format!(
        "{} polls/s, {} kicks/s, {} rx wake-ups/s, {:.1} rx per busy poll",
        si(p.polls),
        si(p.tx_kicks),
        si(p.rx_wakeups),
        p.rx_per_busy_poll
    );
    let sched = format!("descheduled {:.2} ms/s, {} preemptions/s", p.run_delay_ms, si(p.nivcsw));
    let sched_style = if p.run_delay_ms > 10.0 { Style::default().fg(Color::Yellow) } else { Style::default() };
    f.render_widget(Paragraph::new(polls), lines[1]);
    f.render_widget(Paragraph::new(Span::styled(sched, sched_style)), lines[2]);
}

/// The header; `page` is (shown, of) when the boxes are in pages.
fn render_header(f: &mut Frame, area: Rect, v: &View, page: Option<(usize, usize)>) {
    let i = &v.info;
    let mut lines = vec![
        Line::from(vec![
            Span::styled(format!("xsknet {}", i.app), bold()),
            Span::raw(format!(
                " on {} queue {}  {}:{}  pid {}  up {}{}",
                i.iface,
                i.queue,
                i.addr,
                i.port,
                i.pid,
                uptime(v.uptime_ns),
                i.netns.name.as_deref().map_or(String::new(), |n| format!("  netns {n}"))
            )),
            Span::raw(match v.xdp_prog {
                Some((id, true)) => format!("  XDP prog {id} attached"),
                _ => String::new(),
            }),
        ]),
        Line::from(match page {
            Some((p, n)) => format!("rates {}; Tab: page {} of {}; q quits", v.window.label(), p + 1, n),
            None => format!("rates {}; q, Esc or Ctrl-C quits", v.window.label()),
        }),
    ];
    let age = format!("published {:.2} s ago", v.age_ns as f64 / 1e9);
    lines[1].spans.insert(0, Span::raw(format!("{age}; ")));
    if v.stalled() {
        lines[1].spans.insert(0, Span::styled("LOOP STALLED: no publication for over 1 s; ", bold().fg(Color::Red)));
    }
    if let Some(id) = v.xdp_detached() {
        let text = format!("XDP PROGRAM {id} DETACHED: nothing reaches this instance; ");
        lines[1].spans.insert(0, Span::styled(text, bold().fg(Color::Red)));
    }
    f.render_widget(Paragraph::new(lines).block(Block::default().borders(Borders::BOTTOM)), area);
}

fn header_row(cells: &[&'static str]) -> Row<'static> {
    Row::new(cells.to_vec()).style(bold().fg(Color::Cyan))
}

fn render_stages(f: &mut Frame, area: Rect, v: &View) {
    let rows = v.stages.iter().map(|s| {
        Row::new(vec![
            s.name.to_string(),
            si(s.packets),
            s.bytes.map_or("-".to_string(), |b| format!("{}B", si(b))),
            sum_of(s.counters),
        ])
    });
    let t =
        Table::new(rows, [Constraint::Length(14), Constraint::Length(8), Constraint::Length(9), Constraint::Fill(1)])
            .header(header_row(&["stage", "pkts/s", "bytes/s", "counters"]))
            .block(boxed("Stages, per second"));
    f.render_widget(t, area);
}

/// Counters added up, in short: `XdpProgRedirect{Ipv4,Arp}` for
/// `XdpProgRedirectIpv4 + XdpProgRedirectArp` (their common prefix, up to
/// a word's start, written once).
pub fn sum_of(counters: &[&str]) -> String {
    let [first, rest @ ..] = counters else { return String::new() };
    if rest.is_empty() {
        return first.to_string();
    }
    let mut len = first.len();
    for c in rest {
        len = len.min(first.bytes().zip(c.bytes()).take_while(|(a, b)| a == b).count());
    }
    // Back to the start of a word (a capital) that every name continues with.
    while len > 0 && !counters.iter().all(|c| c.as_bytes().get(len).is_some_and(u8::is_ascii_uppercase)) {
        len -= 1;
    }
    if len == 0 {
        return counters.join("+");
    }
    let tails: Vec<&str> = counters.iter().map(|c| &c[len..]).collect();
    format!("{}{{{}}}", &first[..len], tails.join(","))
}

fn render_drops(f: &mut Frame, area: Rect, v: &View) {
    let block = boxed("Drops by reason");
    if v.drops.is_empty() {
        f.render_widget(Paragraph::new("no drops since start").block(block), area);
        return;
    }
    let rows = v.drops.iter().map(|d| {
        Row::new(vec![d.name.to_string(), si(d.rate), d.total.to_string(), d.reason.to_string()])
            .style(if d.rate > 0.0 { Style::default().fg(Color::Red) } else { Style::default() })
    });
    let t =
        Table::new(rows, [Constraint::Length(23), Constraint::Length(7), Constraint::Length(9), Constraint::Fill(1)])
            .header(header_row(&["counter", "/s", "total", "reason"]))
            .block(block);
    f.render_widget(t, area);
}

fn render_frames(f: &mut Frame, area: Rect, v: &View) {
    let c = &v.census;
    let rows = [
        ("in kernel rings", c.in_kernel),
        ("free", c.free_local + c.free_shared),
        ("in socks", c.in_socks),
        ("awaiting ARP", c.awaiting_neighbour),
        ("tx backlog", c.tx_backlog),
        ("in reassembly", c.in_reasm),
    ]
    .map(|(n, x)| Row::new(vec![n.to_string(), x.to_string()]));
    let headroom =
        Row::new(vec!["fill headroom".to_string(), format!("{} of {} posted", v.fill_headroom(), v.fill_capacity)])
            .style(if v.fill_capacity > 0 && v.fill_headroom() * 8 < v.fill_capacity {
                Style::default().fg(Color::Red)
            } else {
                Style::default()
            });
    let t = Table::new(rows.into_iter().chain([headroom]), [Constraint::Length(16), Constraint::Fill(1)])
        .header(header_row(&["frames", "now"]))
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(Span::styled(format!(" Frames: {} in the UMEM ", c.total), bold())),
        );
    f.render_widget(t, area);
}

fn render_latency(f: &mut Frame, area: Rect, v: &View) {
    // Too narrow for every column (the full layout's middle box on a
    // terminal under 160 columns): "over" goes, the percentiles stay.
    let with_over = area.width >= 78;
    let rows = v.latency.iter().map(|l| {
        let s = &l.summary;
        let mut cells = vec![l.name.to_string()];
        if with_over {
            cells.push(if l.interval { "interval" } else { "since start" }.to_string());
        }
        cells.extend([s.count.to_string(), us(s.p50_ns), us(s.p99_ns), us(s.p999_ns), us(s.max_ns)]);
        Row::new(cells)
    });
    let mut widths = vec![Constraint::Length(16)];
    let mut header = vec!["stage"];
    if with_over {
        widths.push(Constraint::Length(12));
        header.push("over");
    }
    widths.extend([Constraint::Length(8); 5]);
    header.extend(["samples", "p50", "p99", "p99.9", "max"]);
    let t = Table::new(rows, widths).header(header_row(&header)).block(boxed("Latency, µs"));
    f.render_widget(t, area);
}

/// The TCP states; `compact` (a paged screen) lists only those that have sockets.
fn render_tcp(f: &mut Frame, area: Rect, v: &View, compact: bool) {
    let shown: Vec<&(&str, u64)> = v.tcp_states.iter().filter(|(_, x)| !compact || *x > 0).collect();
    if shown.is_empty() {
        f.render_widget(Paragraph::new("no TCP sockets").block(boxed("TCP sockets")), area);
        return;
    }
    let rows = shown.into_iter().map(|(n, x)| Row::new(vec![n.to_string(), x.to_string()]));
    let t = Table::new(rows, [Constraint::Length(12), Constraint::Fill(1)])
        .header(header_row(&["state", "sockets"]))
        .block(boxed("TCP sockets"));
    f.render_widget(t, area);
}

/// A snapshot; `None` when the instance did not answer in time (stopped or
/// starved: top keeps asking); when it has gone away, an error that says so.
fn fetch_or_wait(path: &Path, last: &InstanceInfo) -> Result<Option<Snapshot>, BoxError> {
    match control::request::<Snapshot>(path, Request::Stats) {
        Ok(s) => Ok(Some(s)),
        Err(ControlError::NotAnswering { .. } | ControlError::Busy { .. }) => Ok(None),
        Err(e) => Err(explain(e, path, Some(last))),
    }
}

/// A snapshot; when the instance has gone away, an error that says so.
fn fetch(path: &Path, last: Option<&InstanceInfo>) -> Result<Snapshot, BoxError> {
    control::request::<Snapshot>(path, Request::Stats).map_err(|e| explain(e, path, last))
}

/// What a failed request means for top: the instance it watched is gone, or the error as it is.
fn explain(e: ControlError, path: &Path, last: Option<&InstanceInfo>) -> BoxError {
    match last {
        Some(i) if e.is_gone() => format!(
            "the instance on {} queue {} (pid {}) has stopped: its control socket {} is gone",
            i.iface,
            i.queue,
            i.pid,
            path.display()
        )
        .into(),
        _ => needs_root(e),
    }
}

/// `xsknet top`.
pub fn top(a: &TopArgs) -> Result<(), BoxError> {
    let path = a.which.path().map_err(needs_root)?;
    let first = fetch(&path, None)?;
    signal::install()?;
    if a.plain || !std::io::stdout().is_terminal() {
        run_plain(a, &path, first)
    } else {
        run_tui(a, &path, first)
    }
}

/// Sleeps until `until`, or until a stop is asked (SIGINT, SIGTERM).
fn sleep_until(until: Instant) -> bool {
    while !signal::stop_requested() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
    false
}

fn run_plain(a: &TopArgs, path: &Path, first: Snapshot) -> Result<(), BoxError> {
    let interval = Duration::from_secs_f64(a.interval);
    let mut out = std::io::stdout().lock();
    let mut prev: Option<Snapshot> = None;
    let mut snap = first;
    let mut n = 0;
    let mut due = Instant::now();
    let write = |out: &mut std::io::StdoutLock, s: String| -> std::io::Result<()> {
        writeln!(out, "{s}")?;
        out.flush()
    };
    let mut lines = vec![plain_header()];
    loop {
        let v = View::new(prev.as_ref(), &snap);
        lines.push(plain_line(&v));
        if v.stalled() {
            lines.push(format!(
                "# the loop last published {:.1} s ago: it is stalled or descheduled",
                v.age_ns as f64 / 1e9
            ));
        }
        if let Some(id) = v.xdp_detached() {
            lines.push(format!(
                "# the XDP program {id} is no longer attached to {}: nothing reaches this instance",
                v.info.iface
            ));
        }
        for l in lines.drain(..) {
            match write(&mut out, l) {
                // The reader went away (`| head`): done.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                r => r?,
            }
        }
        n += 1;
        if a.count.is_some_and(|c| n >= c) {
            return Ok(());
        }
        due += interval;
        loop {
            if !sleep_until(due) {
                return Ok(());
            }
            match fetch_or_wait(path, &snap.info)? {
                Some(next) => {
                    prev = Some(std::mem::replace(&mut snap, next));
                    break;
                }
                None => {
                    let line = format!("# pid {} does not answer: stopped or starved of CPU", snap.info.pid);
                    match write(&mut out, line) {
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                        r => r?,
                    }
                    due = Instant::now() + interval;
                }
            }
        }
    }
}

/// Leaves the terminal as it was (raw mode off, main screen back), on
/// every way out: return, error, or panic unwinding.
struct RestoreTerminal;

impl Drop for RestoreTerminal {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Whether a key asks to quit: q, Esc, Ctrl-C (raw mode turns Ctrl-C into a key).
fn quits(k: &event::KeyEvent) -> bool {
    k.kind != KeyEventKind::Release
        && (matches!(k.code, KeyCode::Char('q') | KeyCode::Esc)
            || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL)))
}

fn run_tui(a: &TopArgs, path: &Path, first: Snapshot) -> Result<(), BoxError> {
    let interval = Duration::from_secs_f64(a.interval);
    let mut terminal = ratatui::try_init()?;
    let _restore = RestoreTerminal;
    let mut prev: Option<Snapshot> = None;
    let mut snap = first;
    let mut n = 0;
    let mut due = Instant::now();
    let mut page = 0;
    loop {
        let v = View::new(prev.as_ref(), &snap);
        terminal.draw(|f| render(f, &v, page))?;
        n += 1;
        if a.count.is_some_and(|c| n >= c) {
            return Ok(());
        }
        due += interval;
        loop {
            if signal::stop_requested() {
                return Ok(());
            }
            let left = due.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if event::poll(left.min(Duration::from_millis(100)))? {
                match event::read()? {
                    Event::Key(k) if quits(&k) => return Ok(()),
                    Event::Key(k) if k.kind != KeyEventKind::Release => {
                        let turn: isize = match k.code {
                            KeyCode::Tab | KeyCode::Right | KeyCode::PageDown | KeyCode::Char(' ') => 1,
                            KeyCode::BackTab | KeyCode::Left | KeyCode::PageUp => -1,
                            _ => 0,
                        };
                        if turn != 0 {
                            let count = page_count(terminal.size()?.into(), &v) as isize;
                            page = (page as isize + turn).rem_euclid(count) as usize;
                            terminal.draw(|f| render(f, &v, page))?;
                        }
                    }
                    Event::Resize(..) => {
                        terminal.draw(|f| render(f, &v, page))?;
                    }
                    _ => {}
                }
            }
        }
        // Not answering: the last screen stays, and top asks again next time.
        if let Some(next) = fetch_or_wait(path, &snap.info)? {
            prev = Some(std::mem::replace(&mut snap, next));
        } else {
            due = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use std::net::Ipv4Addr;
    use xsknet::control::Netns;
    use xsknet::publish::PublishedStats;
    use xsknet::xdp::guard::{GuardCounters, GuardReasonCount};
    use xsknet::xdp::XdpProgStats;

    fn info() -> InstanceInfo {
        InstanceInfo {
            pid: 4242,
            version: "t".into(),
            app: "echo (udp, tcp)".into(),
            iface: "veth-t".into(),
            queue: 0,
            netns: Netns { inode: 1, name: Some("xsk-t".into()) },
            addr: Ipv4Addr::new(10, 77, 0, 2),
            prefix_len: 24,
            port: 7,
            setup: "test".into(),
            started_unix_s: 1000.0,
            prog_id: Some(42),
        }
    }

    /// A snapshot at `secs` of uptime after `n` datagrams of 100 bytes
    /// went through, each read and echoed, with one latency sample per
    /// datagram of `lat_ns`, and `no_ports` datagrams refused.
    fn snap(secs: u64, n: u64, lat_ns: u64, no_ports: u64) -> Snapshot {
        let mut s = PublishedStats { uptime_ns: secs * 1_000_000_000, ..PublishedStats::default() };
        let m = &mut s.mib;
        m.XskRxFrames = n + no_ports;
        m.IpInReceives = n + no_ports;
        m.IpExtInOctets = 128 * (n + no_ports);
        m.UdpInDatagrams = n;
        m.UdpNoPorts = no_ports;
        m.UdpOutDatagrams = n;
        m.IpOutRequests = n;
        m.IpExtOutOctets = 128 * n;
        m.XskTxFrames = n;
        s.softirq.total_ns = secs * 1_000_000_000;
        s.softirq.busy_ns = secs * 250_000_000;
        s.device.rx_ring_full = secs;
        s.census = FrameCensus {
            total: 8192,
            in_kernel: 4100,
            free_local: 60,
            free_shared: 4000,
            in_socks: 30,
            awaiting_neighbour: 2,
            tx_backlog: 0,
            in_reasm: 0,
        };
        s.fill_capacity = 4096;
        s.fill_room = 96;
        s.tcp_states[0] = 3;
        for _ in 0..n {
            s.rx_latency.record(lat_ns);
        }
        let xdp = XdpProgStats { rx: n + no_ports, redirect_ipv4: n + no_ports, ..XdpProgStats::default() };
        Snapshot { info: info(), age_ns: 50_000_000, stats: s, xdp: Some(xdp), guard: None, adaptive: None }
    }

    fn stage<'a>(v: &'a View, name: &str) -> &'a StageRate {
        v.stages.iter().find(|s| s.name == name).unwrap()
    }

    /// `snap` with the guard on, having dropped `blocked` frames of blocklisted sources.
    fn guarded(secs: u64, n: u64, blocked: u64) -> Snapshot {
        let mut s = snap(secs, n, 1_000, 0);
        s.guard = Some(GuardCounters {
            enabled: true,
            reasons: GuardStat::ALL
                .iter()
                .map(|g| GuardReasonCount {
                    name: g.name().into(),
                    value: match g {
                        GuardStat::DropBlock => blocked,
                        GuardStat::Pass => n,
                        _ => 0,
                    },
                })
                .collect(),
            rules: vec![],
        });
        s
    }

    #[test]
    fn the_guards_drops_are_listed_with_their_rates_over_the_xdp_window() {
        let a = guarded(10, 1000, 5_000);
        let mut b = guarded(12, 3000, 45_000);
        // Read later after its publication than the first one was.
        b.age_ns += 450_000_000;
        let v = View::new(Some(&a), &b);
        let d = v.drops.iter().find(|d| d.name == "XdpGuardDropBlocklist").expect("the guard's drop is listed");
        assert_eq!(d.total, 45_000);
        // Over the XDP window: (12 s + 0.5 s) - (10 s + 0.05 s).
        assert!((d.rate - 40_000.0 / 2.45).abs() < 1e-6, "{}", d.rate);
        assert_eq!(v.drops[0].name, "XdpGuardDropBlocklist", "the fastest drop comes first");
        // Reasons that never happened are not listed; passes are not drops.
        assert!(v.drops.iter().all(|d| d.name != "XdpGuardDropSourcePps" && d.name != "XdpGuardPass"));
        // Without a guard, nothing of it.
        let v = View::new(Some(&snap(10, 1000, 1_000, 0)), &snap(12, 3000, 1_000, 0));
        assert!(v.drops.iter().all(|d| !d.name.starts_with("XdpGuard")));
    }

    #[test]
    fn every_stage_and_drop_names_a_published_counter() {
        let names: Vec<&str> = snap(1, 1, 1, 0).counters().into_iter().map(|(n, _, _)| n).collect();
        for (stage, counters, bytes) in STAGES {
            for c in counters.iter().chain(bytes.iter()) {
                assert!(names.contains(c), "stage {stage}: no counter {c}");
            }
        }
        for (c, _) in DEVICE_DROPS {
            assert!(names.contains(c), "no counter {c}");
        }
    }

    #[test]
    fn the_loops_polls_kicks_and_descheduled_time_are_rates_over_the_window() {
        let at = |secs: u64, polls: u64, busy_polls: u64, rx: u64, kicks: u64, delay_ns: u64, nivcsw: u64| {
            let mut s = snap(secs, 0, 1_000, 0);
            let l = &mut s.stats.softirq;
            (l.polls, l.busy_polls, l.rx_packets) = (polls, busy_polls, rx);
            (l.sched.run_delay_ns, l.sched.nivcsw) = (delay_ns, nivcsw);
            s.stats.mib.XskTxKicks = kicks;
            s.stats.mib.XskRxWakeups = kicks / 2;
            s
        };
        let a = at(10, 1_000_000, 1_000, 8_000, 900, 5_000_000, 40);
        let b = at(12, 1_400_000, 3_000, 40_000, 4_900, 9_000_000, 140);
        let p = View::new(Some(&a), &b).poll;
        assert_eq!(p.polls, 200_000.0);
        assert_eq!(p.tx_kicks, 2_000.0);
        assert_eq!(p.rx_wakeups, 1_000.0);
        assert_eq!(p.rx_per_busy_poll, 16.0, "32000 descriptors over 2000 polls that found work");
        assert_eq!(p.run_delay_ms, 2.0, "4 ms descheduled over 2 s");
        assert_eq!(p.nivcsw, 50.0);
        // No poll found work in the window: no batch, not a division by zero.
        let idle = at(13, 1_500_000, 3_000, 40_000, 4_900, 9_000_000, 140);
        assert_eq!(View::new(Some(&b), &idle).poll.rx_per_busy_poll, 0.0);
        let line = plain_line(&View::new(Some(&a), &b));
        assert!(line.ends_with("   200000     2000     2.00"), "{line}");
    }

    #[test]
    fn rates_are_differences_over_the_uptime_difference() {
        let a = snap(10, 1000, 5_000, 10);
        let b = snap(12, 21_000, 5_000, 30);
        let v = View::new(Some(&a), &b);
        assert_eq!(v.window, Window::Interval(2.0));
        assert_eq!(stage(&v, "rx ring").packets, 10_010.0);
        assert_eq!(stage(&v, "XDP rx").packets, 10_010.0);
        assert_eq!(stage(&v, "XDP redirected").packets, 10_010.0);
        // The XDP counters are read age_ns after the publication: over their own window.
        let mut late = b.clone();
        late.age_ns += 500_000_000;
        let v2 = View::new(Some(&a), &late);
        assert_eq!(stage(&v2, "XDP rx").packets, 20_020.0 / 2.5);
        assert_eq!(stage(&v2, "rx ring").packets, 10_010.0);
        assert_eq!(stage(&v, "XDP passed").packets, 0.0);
        assert_eq!(stage(&v, "IP in").bytes, Some(128.0 * 10_010.0));
        // UDP in: read plus refused.
        assert_eq!(stage(&v, "UDP in").packets, 10_010.0);
        assert_eq!(stage(&v, "app UDP read").packets, 10_000.0);
        assert_eq!(stage(&v, "tx ring").packets, 10_000.0);
        assert_eq!(stage(&v, "TCP in").bytes, None);
        assert!((v.busy - 0.25).abs() < 1e-9);
        // The first refresh: averages since the start, as vmstat's first line.
        let v0 = View::new(None, &a);
        assert_eq!(v0.window, Window::SinceStart(10.0));
        assert_eq!(stage(&v0, "app UDP read").packets, 100.0);
        // Another process (or a restart): no difference is taken.
        let mut other = a.clone();
        other.info.pid += 1;
        assert_eq!(View::new(Some(&other), &b).window, Window::SinceStart(12.0));
        assert_eq!(v.fill_headroom(), 4000);
        assert_eq!(v.tcp_states[0], ("ESTAB", 3));
        assert_eq!(v.tcp_states.len(), TcpState::ALL.len());
    }

    #[test]
    fn drops_are_the_non_zero_drop_counters_by_rate() {
        let mut a = snap(10, 1000, 5_000, 10);
        let mut b = snap(12, 21_000, 5_000, 30);
        // A drop that happened before the window only: listed, rate 0, last.
        a.stats.mib.IpInHdrErrors = 500;
        b.stats.mib.IpInHdrErrors = 500;
        a.stats.device.rx_fill_ring_empty_descs = 0;
        b.stats.device.rx_fill_ring_empty_descs = 200;
        let v = View::new(Some(&a), &b);
        let got: Vec<(&str, u64, f64)> = v.drops.iter().map(|d| (d.name, d.total, d.rate)).collect();
        assert_eq!(
            got,
            vec![
                ("XskRxFillRingEmptyDescs", 200, 100.0),
                ("UdpNoPorts", 30, 10.0),
                ("XskRxRingFull", 12, 1.0),
                ("IpInHdrErrors", 500, 0.0),
            ]
        );
        assert_eq!(v.drops[1].reason, MibCounter::UdpNoPorts.drop_reason().unwrap());
        // Counters that are not drops never show, however large.
        assert!(v.drops.iter().all(|d| d.name != "UdpInDatagrams"));
    }

    #[test]
    fn latency_is_taken_over_the_interval_when_it_has_samples() {
        let a = snap(10, 1000, 2_000, 0);
        let mut b = a.clone();
        b.stats.uptime_ns += 1_000_000_000;
        for _ in 0..100 {
            b.stats.rx_latency.record(80_000);
        }
        let v = View::new(Some(&a), &b);
        let l = &v.latency[0];
        assert_eq!(l.name, "rx_to_read");
        assert!(l.interval);
        assert_eq!(l.summary.count, 100);
        // Only the interval's samples: all 80 µs (within a bucket's 3.1 %).
        assert!((78_000..=82_600).contains(&l.summary.p50_ns), "{:?}", l.summary);
        assert_eq!(l.summary.max_ns, 80_000);
        assert!(l.summary.min_ns >= 77_000, "{:?}", l.summary);
        // Cumulative, the median is the old 2 µs.
        assert!(b.stats.rx_latency.summary().p50_ns < 3_000);
        // No sample in the interval: cumulative, and said so.
        let mut c = b.clone();
        c.stats.uptime_ns += 1_000_000_000;
        let v = View::new(Some(&b), &c);
        assert!(!v.latency[0].interval);
        assert_eq!(v.latency[0].summary.count, 1100);
    }

    #[test]
    fn histogram_delta_subtracts_and_refuses_a_reset() {
        let mut before = LatencyHistogram::new();
        for v in [100, 200, 300] {
            before.record(v);
        }
        let mut now = before.clone();
        for v in [150, 250] {
            now.record(v);
        }
        let d = histogram_delta(&now, &before).unwrap();
        assert_eq!(d.count(), 2);
        assert_eq!(d.sum(), 400);
        assert!((145..=155).contains(&d.min()) && (245..=255).contains(&d.max()), "{:?}", d.summary());
        assert!(histogram_delta(&now, &now).unwrap().is_empty());
        // Fewer values than before: not the same histogram.
        assert_eq!(histogram_delta(&before, &now), None);
    }

    #[test]
    fn plain_lines_have_a_field_per_header_column() {
        let v = View::new(Some(&snap(10, 1000, 5_000, 0)), &snap(11, 3000, 5_000, 0));
        let h = plain_header();
        let l = plain_line(&v);
        assert_eq!(h.split_whitespace().count(), l.split_whitespace().count(), "{h}\n{l}");
        let rx = h.split_whitespace().position(|c| c == "rx/s").unwrap();
        assert_eq!(l.split_whitespace().nth(rx), Some("2000"));
        let fill = h.split_whitespace().position(|c| c == "fillpost").unwrap();
        assert_eq!(l.split_whitespace().nth(fill), Some("4000"));
    }

    #[test]
    fn formats() {
        assert_eq!(sum_of(&["XskRxFrames"]), "XskRxFrames");
        assert_eq!(sum_of(&["XdpProgRedirectIpv4", "XdpProgRedirectArp"]), "XdpProgRedirect{Ipv4,Arp}");
        assert_eq!(sum_of(&["UdpInDatagrams", "UdpNoPorts", "UdpInErrors"]), "Udp{InDatagrams,NoPorts,InErrors}");
        assert_eq!(sum_of(&["IpInReceives", "TcpInSegs"]), "IpInReceives+TcpInSegs");
        assert_eq!(si(0.0), "0");
        assert_eq!(si(2.5), "2.5");
        assert_eq!(si(950.0), "950");
        assert_eq!(si(12_345.0), "12.3k");
        assert_eq!(si(1_450_000.0), "1.45M");
        assert_eq!(uptime(42_000_000_000), "42s");
        assert_eq!(uptime(187_000_000_000), "3m07s");
        assert_eq!(uptime(7_500_000_000_000), "2h05m");
    }

    fn screen(v: &View, w: u16, h: u16) -> String {
        screen_page(v, w, h, 0)
    }

    fn screen_page(v: &View, w: u16, h: u16, page: usize) -> String {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| render(f, v, page)).unwrap();
        let buf = t.backend().buffer().clone();
        (0..h)
            .map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_screen_shows_every_section_and_the_rates() {
        let mut a = snap(10, 1000, 5_000, 10);
        a.stats.device.rx_ring_full = 0;
        let b = snap(11, 13_345, 5_000, 10);
        let v = View::new(Some(&a), &b);
        let s = screen(&v, 160, 50);
        for heading in
            ["Loop (si)", "Stages", "Drops by reason", "Frames", "Latency, µs", "TCP sockets", "fill headroom"]
        {
            assert!(s.contains(heading), "no {heading:?} on\n{s}");
        }
        assert!(s.contains("xsknet echo (udp, tcp) on veth-t queue 0"), "{s}");
        assert!(s.contains("pid 4242") && s.contains("netns xsk-t"), "{s}");
        assert!(s.contains("25.0 % busy over the last 1.0 s"), "{s}");
        // The loop's figures fit an 80-column terminal.
        let narrow = screen(&v, 80, 50);
        assert!(narrow.contains("polls/s") && narrow.contains("rx per busy poll"), "{narrow}");
        assert!(narrow.contains("descheduled 0.00 ms/s, 0 preemptions/s"), "{narrow}");
        let rx = s.lines().find(|l| l.contains("rx ring")).unwrap();
        assert!(rx.contains("12.3k"), "{rx}");
        assert!(s.contains("4000 of 4096 posted"), "{s}");
        assert!(s.contains("XskRxRingFull") && s.contains("rx ring full"), "{s}");
        assert!(s.contains("ESTAB"), "{s}");
        assert!(!s.contains("STALLED"), "{s}");
        // A stalled loop is called out.
        let mut c = b.clone();
        c.age_ns = 3_000_000_000;
        assert!(screen(&View::new(Some(&b), &c), 160, 50).contains("LOOP STALLED"));
        // The XDP program is shown, and called out once detached.
        let mut d = b.clone();
        d.stats.xdp_prog_id = 42;
        d.stats.xdp_attached = true;
        assert!(screen(&View::new(Some(&b), &d), 160, 50).contains("XDP prog 42 attached"));
        d.stats.xdp_attached = false;
        let s = screen(&View::new(Some(&b), &d), 160, 50);
        assert!(s.contains("XDP PROGRAM 42 DETACHED") && !s.contains("XDP prog 42 attached"), "{s}");
        // A small terminal does not panic.
        let _ = screen(&v, 40, 10);
    }

    /// At 80×24 the boxes come in pages that each fit, Tab turns them, and
    /// every box is on one of them, whole.
    #[test]
    fn a_small_terminal_gets_pages_that_fit() {
        let a = snap(10, 1000, 5_000, 10);
        let b = snap(11, 13_345, 5_000, 10);
        let v = View::new(Some(&a), &b);
        let area = Rect::new(0, 0, 80, 24);
        let n = page_count(area, &v);
        assert!(n >= 2, "{n} pages");
        assert_eq!(page_count(Rect::new(0, 0, 160, 50), &v), 1);
        let all: String = (0..n).map(|p| screen_page(&v, 80, 24, p)).collect::<Vec<_>>().join("\n");
        for heading in ["Stages", "Drops by reason", "Frames: 8192", "Latency, µs", "TCP sockets", "fill headroom"] {
            assert!(all.contains(heading), "no {heading:?} on any page:\n{all}");
        }
        let first = screen_page(&v, 80, 24, 0);
        assert!(first.contains(&format!("Tab: page 1 of {n}")), "{first}");
        assert!(first.contains("tx ring"), "the last stage fits:\n{first}");
        let last = screen_page(&v, 80, 24, n - 1);
        assert!(last.contains(&format!("Tab: page {n} of {n}")), "{last}");
        assert!(all.contains("4000 of 4096 posted") && all.contains("p99.9"), "{all}");
        assert_eq!(screen_page(&v, 80, 24, n), first, "pages turn round");
    }
}
