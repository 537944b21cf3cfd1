//! The Prometheus endpoint: a running instance's counters served as
//! `GET /metrics` in the Prometheus text exposition format (version 0.0.4),
//! for Prometheus to scrape and Grafana to draw (`docs/grafana/`).
//!
//! This module owns the naming of every counter for Prometheus and the
//! HTTP server that serves them. Each scrape takes one [`Snapshot`] from a
//! [`SnapshotSource`] of the server's own (the loop's last publication,
//! [`crate::publish`], and the XDP program's map read now) and encodes it
//! with `prometheus-client`'s [`Collector`]: the data is aggregated
//! already, so nothing is registered or updated between scrapes. The server
//! runs on threads of its own ([`tiny_http`]'s); it never touches the loop.
//!
//! Names follow Prometheus's conventions (prefix `xsknet_`, counters end in
//! `_total`, units in the name, `snake_case`, a HELP line each):
//!
//! | family | from |
//! |---|---|
//! | `xsknet_netstat_<group>_<field>_total` | every MIB counter; `IpInReceives` is `xsknet_netstat_ip_in_receives_total`, `TcpExtTCPAbortOnData` `xsknet_netstat_tcp_ext_tcp_abort_on_data_total` (node_exporter's netstat collector keeps `Ip_InReceives`, but `promtool check metrics` refuses camelCase; the HELP line gives the `nstat` name) |
//! | `xsknet_netstat_tcp_curr_estab`, `xsknet_netstat_xsk_arp_cache_entries`, `xsknet_netstat_xsk_sockstat_tcp_mem` | `TcpCurrEstab`, `XskArpCacheEntries`, `XskSockstatTcpMem`: gauges |
//! | `xsknet_drops_total{counter,reason}` | the MIB counters that count drops, again, labelled with the reason the exit report prints |
//! | `xsknet_xdp_rx_packets_total`, `xsknet_xdp_packets_total{action}` | the XDP program's per-CPU counters, summed |
//! | `xsknet_xdp_guard_packets_total{reason}`, `xsknet_xdp_guard_adaptive_tightens_total`, `…_relaxes_total` | the XDP guard's frames by what it did with them (`XdpGuardDropBlocklist` is `reason="drop_blocklist"`), and the adaptive mode's changes; present when the guard is |
//! | `xsknet_xsk_<field>_total` | the AF_XDP socket's `XDP_STATISTICS` and our ring checks (`XskRxDropped` is `xsknet_xsk_rx_dropped_total`) |
//! | `xsknet_softirq_polls_total`, `…_busy_polls_total`, `…_busy_seconds_total`, `…_seconds_total` | the loop's polls and time (busy share: the rate of busy over the rate of all) |
//! | `xsknet_softirq_cpu_seconds_total`, `xsknet_other_threads_cpu_seconds_total` | CPU time of the loop's thread and of the process's other threads (as `process_cpu_seconds_total`) |
//! | `xsknet_softirq_publications_total`, `xsknet_softirq_publish_cpu_seconds_total` | the loop's publications and the CPU they took |
//! | `xsknet_umem_frames{place}`, `xsknet_umem_capacity_frames` | where every UMEM frame is now |
//! | `xsknet_tcp_sockets{state}` | TCP sockets by state, named as `ss` names them |
//! | `xsknet_stage_latency_seconds{stage}` | each stage's sampled latency histogram ([`PublishedStats::stages`]) in the fixed buckets of [`LATENCY_BOUNDS_NS`] |
//! | `xsknet_publish_age_seconds` | how old the loop's last publication is (over a second: the loop is stalled) |
//! | `xsknet_xdp_prog_attached{prog_id}` | 1 while the instance's XDP program is attached to its interface, 0 once it was taken off |
//! | `xsknet_start_time_seconds` | when the instance started, seconds since the Unix epoch |
//! | `xsknet_info{iface,queue,app,version,addr}` | who the instance is; always 1 |
//!
//! [`PublishedStats::stages`]: crate::publish::PublishedStats::stages

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::control::{CounterKind, Snapshot, SnapshotSource};
use crate::latency::LatencyHistogram;
use crate::snmp::MibCounter;
use crate::stream::TcpState;

/// The `Content-Type` of the answers to `GET /metrics`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The path served.
pub const PATH: &str = "/metrics";

/// The upper bounds (`le`) of the latency histograms' buckets, ns: 1, 2, 5,
/// 10, 20, 50, 100, 200, 500 µs, 1, 2, 5, 10, 100 ms and 1 s, then `+Inf`.
/// A fine bucket of the [`LatencyHistogram`] counts under a bound when its
/// highest value is at most the bound, so a bucket's count never includes a
/// value above its bound.
pub const LATENCY_BOUNDS_NS: [u64; 15] = [
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

/// A metric's type, as far as a counter of [`Snapshot::counters`] goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeriesType {
    /// Only goes up; the exposition name ends in `_total`.
    Counter,
    /// A value now.
    Gauge,
}

/// Where one counter of [`Snapshot::counters`] is exposed.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The family's name without the `_total` a counter gets
    /// (`xsknet_netstat_ip_in_receives`).
    pub family: String,
    /// The label that tells this series from the family's others, if any
    /// (`action="drop"`).
    pub label: Option<(&'static str, String)>,
    /// Counter or gauge.
    pub kind: SeriesType,
    /// What a value is divided by (1e9 for a count of ns exposed as seconds).
    pub divisor: f64,
    /// The family's HELP text.
    pub help: String,
}

impl Series {
    /// The series as a line of the exposition starts:
    /// `xsknet_xdp_packets_total{action="drop"}` (a counter gets `_total`).
    pub fn key(&self) -> String {
        let suffix = if self.kind == SeriesType::Counter { "_total" } else { "" };
        match &self.label {
            Some((k, v)) => format!("{}{suffix}{{{k}=\"{v}\"}}", self.family),
            None => format!("{}{suffix}", self.family),
        }
    }
}

/// Acronyms of the MIB's names that run into each other (`TCPSYNChallenge`).
const ACRONYMS: [(&str, &str); 9] = [
    ("TCP", "Tcp"),
    ("SYN", "Syn"),
    ("DSACK", "Dsack"),
    ("SACK", "Sack"),
    ("ACK", "Ack"),
    ("OFO", "Ofo"),
    ("ECT", "Ect"),
    ("OKs", "Oks"),
    ("RTOs", "Rtos"),
];

/// `CamelCase` (with acronyms, `TCPSYNChallenge`, `InECT1Pkts`) as
/// `snake_case` (`tcp_syn_challenge`, `in_ect1_pkts`).
pub fn snake(name: &str) -> String {
    let name = ACRONYMS.iter().fold(name.to_string(), |n, (a, w)| n.replace(a, w));
    let c: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 8);
    for (i, &ch) in c.iter().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            let prev = c[i - 1];
            let next_lower = c.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase() || prev.is_ascii_digit() || (prev.is_ascii_uppercase() && next_lower) {
                out.push('_');
            }
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// The MIB groups as `nstat` prefixes them, longest first where one
/// prefixes another (net/ipv4/proc.c: `Ip`, `IpExt`, `Icmp`, `IcmpMsg`,
/// `Udp`, `Tcp`, `TcpExt`; ours: `Xsk`).
const MIB_GROUPS: [&str; 8] = ["IpExt", "Ip", "IcmpMsg", "Icmp", "Udp", "TcpExt", "Tcp", "Xsk"];

/// Where the counter `name` of kind `kind` ([`Snapshot::counters`]) is exposed.
pub fn series(name: &str, kind: CounterKind) -> Series {
    let counter =
        |family: String, help: String| Series { family, label: None, kind: SeriesType::Counter, divisor: 1.0, help };
    match kind {
        CounterKind::Mib => {
            let (group, field) =
                MIB_GROUPS.iter().find_map(|g| name.strip_prefix(g).map(|f| (*g, f))).unwrap_or(("", name));
            let family = if group.is_empty() {
                format!("xsknet_netstat_{}", snake(field))
            } else {
                format!("xsknet_netstat_{}_{}", snake(group), snake(field))
            };
            let whose = if group == "Xsk" { "xsknet's own counter" } else { "as nstat names it (net/ipv4/proc.c)" };
            let reason = MibCounter::ALL
                .iter()
                .find(|c| c.name() == name)
                .and_then(|c| c.drop_reason())
                .map_or(String::new(), |r| format!("; a drop: {r}"));
            let help = format!("{name}, {whose}{reason}.");
            if matches!(name, "TcpCurrEstab" | "XskArpCacheEntries" | "XskSockstatTcpMem") {
                Series { kind: SeriesType::Gauge, ..counter(family, help) }
            } else {
                counter(family, help)
            }
        }
        CounterKind::XdpProg => {
            let field = name.strip_prefix("XdpProg").unwrap_or(name);
            if field == "Rx" {
                counter(
                    "xsknet_xdp_rx_packets".into(),
                    "Packets the XDP program saw (XdpProgRx), summed over CPUs.".into(),
                )
            } else {
                Series {
                    label: Some(("action", snake(field))),
                    ..counter(
                        "xsknet_xdp_packets".into(),
                        "Packets by the XDP program's verdict (XdpProg…: redirected to the AF_XDP socket, passed \
                         to the kernel, dropped), summed over CPUs."
                            .into(),
                    )
                }
            }
        }
        CounterKind::XdpStatistics => {
            let field = name.strip_prefix("Xsk").unwrap_or(name);
            counter(
                format!("xsknet_xsk_{}", snake(field)),
                format!(
                    "{name}: the AF_XDP socket's XDP_STATISTICS (include/uapi/linux/if_xdp.h) or xsknet's ring check."
                ),
            )
        }
        CounterKind::XdpGuard => {
            let field = name.strip_prefix("XdpGuard").unwrap_or(name);
            match field.strip_prefix("Adaptive") {
                Some(change) => counter(
                    format!("xsknet_xdp_guard_adaptive_{}", snake(change)),
                    format!("{name}: per-source limits the guard's adaptive mode {}.", snake(change)),
                ),
                None => Series {
                    label: Some(("reason", snake(field))),
                    ..counter(
                        "xsknet_xdp_guard_packets".into(),
                        "Frames the XDP guard passed or dropped, by reason (XdpGuard…), summed over CPUs.".into(),
                    )
                },
            }
        }
        CounterKind::Softirq if matches!(name, "SoftirqCpuNs" | "SoftirqOtherThreadsCpuNs" | "SoftirqPublishCpuNs") => {
            // CPU time, as process_cpu_seconds_total: seconds, a counter.
            let (family, what) = match name {
                "SoftirqCpuNs" => ("xsknet_softirq_cpu_seconds_total", "the softirq loop's thread"),
                "SoftirqPublishCpuNs" => {
                    ("xsknet_softirq_publish_cpu_seconds_total", "the softirq loop's thread in its publications")
                }
                _ => (
                    "xsknet_other_threads_cpu_seconds_total",
                    "the process's threads other than the loop (control endpoint, metrics server, capture writer, \
                     the application's when threaded; ended threads included)",
                ),
            };
            Series {
                divisor: 1e9,
                ..counter(
                    family.trim_end_matches("_total").to_string(),
                    format!(
                        "CPU time of {what} since the loop started, seconds, as of the last publication ({name}/1e9)."
                    ),
                )
            }
        }
        CounterKind::Softirq => {
            let field = name.strip_prefix("Softirq").unwrap_or(name);
            match field.strip_suffix("Ns") {
                Some(t) => {
                    let family = if t == "Total" {
                        "xsknet_softirq_seconds".to_string()
                    } else {
                        format!("xsknet_softirq_{}_seconds", snake(t))
                    };
                    let what = match t {
                        "Busy" => "in polls that found work",
                        "RunDelay" => "waiting on a run queue while runnable (descheduled; schedstat run_delay)",
                        _ => "running, busy or idle",
                    };
                    Series {
                        divisor: 1e9,
                        ..counter(family, format!("Seconds the softirq loop spent {what} ({name}/1e9)."))
                    }
                }
                None => counter(
                    format!("xsknet_softirq_{}", snake(field)),
                    match field {
                        "Polls" => format!("{name}: the softirq loop's polls."),
                        "Publications" => format!(
                            "{name}: the loop's publications of its counters for the control endpoint and the metrics \
                             (every 100 ms while someone may read)."
                        ),
                        "Nivcsw" => format!(
                            "{name}: times the softirq loop's thread was preempted (nonvoluntary_ctxt_switches)."
                        ),
                        _ => format!("{name}: the softirq loop's polls that found work."),
                    },
                ),
            }
        }
    }
}

/// The series of each counter, worked out at its first scrape: the names
/// are fixed, and [`series`] is string work a scrape need not repeat.
static SERIES: std::sync::LazyLock<std::sync::Mutex<SeriesTable>> = std::sync::LazyLock::new(Default::default);

/// Each counter's series, by name and kind.
type SeriesTable = HashMap<(&'static str, CounterKind), Arc<Series>>;

/// One [`Snapshot`] as a [`Collector`]: registered in a registry of its own
/// for one scrape.
#[derive(Debug)]
struct SnapshotCollector(Snapshot);

/// The label set of an exemplar: none are exposed.
type NoExemplar = Vec<(String, String)>;

/// A counter's or gauge's value.
#[derive(Clone, Copy)]
enum Value {
    Int(u64),
    Float(f64),
}

/// A series of a family: its label's value, if the family has one, and its value.
type Labelled = (Option<String>, Value);

fn encode_value(m: &mut prometheus_client::encoding::MetricEncoder, kind: SeriesType, v: Value) -> std::fmt::Result {
    let none: Option<&Exemplar<NoExemplar, f64>> = None;
    match (kind, v) {
        (SeriesType::Counter, Value::Int(v)) => m.encode_counter(&v, none),
        (SeriesType::Counter, Value::Float(v)) => m.encode_counter(&v, none),
        (SeriesType::Gauge, Value::Int(v)) => m.encode_gauge(&v),
        (SeriesType::Gauge, Value::Float(v)) => m.encode_gauge(&v),
    }
}

fn metric_type(kind: SeriesType) -> MetricType {
    match kind {
        SeriesType::Counter => MetricType::Counter,
        SeriesType::Gauge => MetricType::Gauge,
    }
}

/// A family with labelled series: `(label value, value)` each.
fn encode_labelled(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: SeriesType,
    label: &str,
    series: &[(String, Value)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, metric_type(kind))?;
    for (l, v) in series {
        let labels = [(label, l.as_str())];
        encode_value(&mut m.encode_family(&labels)?, kind, *v)?;
    }
    Ok(())
}

/// A histogram's buckets in [`LATENCY_BOUNDS_NS`], seconds, not cumulative,
/// `+Inf` last: what `encode_histogram` takes.
fn latency_buckets(h: &LatencyHistogram) -> Vec<(f64, u64)> {
    let mut out: Vec<(f64, u64)> = LATENCY_BOUNDS_NS.iter().map(|&ns| (ns as f64 / 1e9, 0)).collect();
    out.push((f64::INFINITY, 0));
    for b in h.buckets() {
        let i = LATENCY_BOUNDS_NS.iter().position(|&le| b.high <= le).unwrap_or(LATENCY_BOUNDS_NS.len());
        out[i].1 += b.count;
    }
    out
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.0;
        // The counters, grouped by family in their first appearance's order.
        let mut families: Vec<(Arc<Series>, Vec<Labelled>)> = Vec::new();
        let mut family_of: HashMap<String, usize> = HashMap::new();
        let mut known = SERIES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (name, v, kind) in s.counters() {
            let series = known.entry((name, kind)).or_insert_with(|| Arc::new(series(name, kind))).clone();
            let value = if series.divisor == 1.0 { Value::Int(v) } else { Value::Float(v as f64 / series.divisor) };
            let label = series.label.as_ref().map(|(_, l)| l.clone());
            match family_of.get(&series.family) {
                Some(&i) => families[i].1.push((label, value)),
                None => {
                    family_of.insert(series.family.clone(), families.len());
                    families.push((series, vec![(label, value)]));
                }
            }
        }
        drop(known);
        for (f, list) in &families {
            let mut m = enc.encode_descriptor(&f.family, &f.help, None, metric_type(f.kind))?;
            for (label, v) in list {
                match (label, &f.label) {
                    (Some(l), Some((k, _))) => {
                        let labels = [(*k, l.as_str())];
                        encode_value(&mut m.encode_family(&labels)?, f.kind, *v)?;
                    }
                    _ => encode_value(&mut m, f.kind, *v)?,
                }
            }
        }

        let drops: Vec<(String, String, Value)> = MibCounter::ALL
            .iter()
            .filter_map(|&c| {
                c.drop_reason().map(|r| (c.name().to_string(), r.to_string(), Value::Int(s.stats.mib.value(c))))
            })
            .collect();
        let mut m = enc.encode_descriptor(
            "xsknet_drops",
            "Packets dropped, by the MIB counter that counts them and its reason (the exit report's table; the same \
             counts as xsknet_netstat_*, and some counters overlap: IpInHdrErrors includes IpExtInCsumErrors).",
            None,
            MetricType::Counter,
        )?;
        for (counter, reason, v) in &drops {
            let labels = [("counter", counter.as_str()), ("reason", reason.as_str())];
            encode_value(&mut m.encode_family(&labels)?, SeriesType::Counter, *v)?;
        }

        let c = &s.stats.census;
        let places: Vec<(String, Value)> = [
            ("in_kernel", c.in_kernel),
            ("free_local", c.free_local),
            ("free_shared", c.free_shared),
            ("in_socks", c.in_socks),
            ("awaiting_neighbour", c.awaiting_neighbour),
            ("tx_backlog", c.tx_backlog),
            ("in_reasm", c.in_reasm),
        ]
        .into_iter()
        .map(|(p, n)| (p.to_string(), Value::Int(n as u64)))
        .collect();
        encode_labelled(
            &mut enc,
            "xsknet_umem_frames",
            "UMEM frames by where they are: in_kernel (fill, rx, tx and completion rings), free_local and free_shared \
             (free lists), in_socks (queued on sockets), awaiting_neighbour (waiting for ARP), tx_backlog (waiting for \
             the tx ring), in_reasm (IP fragments waiting for reassembly).",
            SeriesType::Gauge,
            "place",
            &places,
        )?;
        enc.encode_descriptor("xsknet_umem_capacity_frames", "UMEM frames in all.", None, MetricType::Gauge)?
            .encode_gauge(&(c.total as u64))?;

        let states: Vec<(String, Value)> = TcpState::ALL
            .iter()
            .zip(&s.stats.tcp_states)
            .map(|(st, &n)| (st.name().to_string(), Value::Int(n)))
            .collect();
        encode_labelled(
            &mut enc,
            "xsknet_tcp_sockets",
            "TCP sockets by state, named as ss names them (TIME-WAIT included).",
            SeriesType::Gauge,
            "state",
            &states,
        )?;

        let mut m = enc.encode_descriptor(
            "xsknet_stage_latency_seconds",
            "Latency of the sampled packets through each stage: rx_to_read (rx descriptor to the application's \
             read), send_to_tx (the application's send to the tx ring), tx_to_completion (tx ring to completion).",
            None,
            MetricType::Histogram,
        )?;
        for (stage, h) in s.stats.stages() {
            let labels = [("stage", stage)];
            m.encode_family(&labels)?.encode_histogram::<NoExemplar>(
                h.sum() as f64 / 1e9,
                h.count(),
                &latency_buckets(h),
                None,
            )?;
        }

        enc.encode_descriptor(
            "xsknet_publish_age_seconds",
            "Age of the loop's last publication at the scrape (it publishes every 100 ms; over a second: the loop is \
             stalled).",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&(s.age_ns as f64 / 1e9))?;
        if s.stats.xdp_prog_id != 0 {
            let id = s.stats.xdp_prog_id.to_string();
            let mut m = enc.encode_descriptor(
                "xsknet_xdp_prog_attached",
                "Whether the instance's XDP program (prog_id, as ip link and bpftool show it) is still attached to \
                 its interface: 1, or 0 once another process took it off (e.g. --replace) or the interface went \
                 away, after which nothing reaches the instance. Checked at each publication.",
                None,
                MetricType::Gauge,
            )?;
            let labels = [("prog_id", id.as_str())];
            m.encode_family(&labels)?.encode_gauge(&u64::from(s.stats.xdp_attached))?;
        }
        enc.encode_descriptor(
            "xsknet_start_time_seconds",
            "When the instance started, seconds since the Unix epoch.",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&s.info.started_unix_s)?;

        let i = &s.info;
        let labels = [
            ("iface", i.iface.clone()),
            ("queue", i.queue.to_string()),
            ("app", i.app.clone()),
            ("version", i.version.clone()),
            ("addr", format!("{}:{}", i.addr, i.port)),
        ];
        let info = prometheus_client::metrics::info::Info::new(labels);
        let m = enc.encode_descriptor("xsknet", "Who the instance is: always 1.", None, info.metric_type())?;
        info.encode(m)
    }
}

/// One snapshot in the Prometheus text exposition format (version 0.0.4).
pub fn encode(snapshot: &Snapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(snapshot.clone())));
    let mut out = String::with_capacity(32 * 1024);
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        .expect("writing to a String does not fail");
    out
}

/// Why the metrics server could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound.
    #[error("--metrics {addr}: {source}: {hint}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
        /// What to do about it.
        hint: String,
    },
    /// The server's thread could not start.
    #[error("starting the metrics server: {0}")]
    Start(String),
}

/// Parses `--metrics ADDR:PORT` (`127.0.0.1:9464`, `[::1]:9464`, `0.0.0.0:9464`).
///
/// # Errors
///
/// A message saying what is expected.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        format!(
            "{s:?} is not ADDR:PORT: give an IP address and a port, such as 127.0.0.1:9464 (this host only), \
             0.0.0.0:9464 (every address) or [::1]:9464"
        )
    })
}

/// A bound metrics server, not yet served: binding first, before the device
/// is set up, makes a port in use an error at start.
pub struct MetricsServer {
    listener: TcpListener,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` (TCP, `SO_REUSEADDR` as std sets it).
    ///
    /// # Errors
    ///
    /// [`MetricsError::Bind`] with a hint: `EADDRINUSE` (another process
    /// serves the port), `EADDRNOTAVAIL` (not an address of this host or
    /// namespace), `EACCES` (a port under 1024 without root).
    pub fn bind(addr: SocketAddr) -> Result<MetricsServer, MetricsError> {
        let listener = TcpListener::bind(addr).map_err(|source| {
            let hint = match source.kind() {
                std::io::ErrorKind::AddrInUse => format!(
                    "another process listens on port {} (`ss -ltnp 'sport = :{}'` shows which): stop it or give \
                     --metrics another port",
                    addr.port(),
                    addr.port()
                ),
                std::io::ErrorKind::AddrNotAvailable => format!(
                    "{} is not an address of this host (or network namespace): use one `ip addr` lists, 127.0.0.1, \
                     or 0.0.0.0 for all",
                    addr.ip()
                ),
                std::io::ErrorKind::PermissionDenied => {
                    "ports under 1024 need root (CAP_NET_BIND_SERVICE): run as root or use a port such as 9464"
                        .to_string()
                }
                _ => "check the address and port".to_string(),
            };
            MetricsError::Bind { addr, source, hint }
        })?;
        let addr = listener.local_addr().unwrap_or(addr);
        Ok(MetricsServer { listener, addr })
    }

    /// The address bound (with the port the kernel chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `GET /metrics` from threads of its own until the returned
    /// [`MetricsEndpoint`] is dropped: 200 with the exposition, 503 before
    /// the loop's first publication, 404 for another path, 405 (with
    /// `Allow: GET, HEAD`) for another method.
    ///
    /// # Errors
    ///
    /// [`MetricsError::Start`] when the server's threads cannot be started.
    pub fn serve(self, source: SnapshotSource) -> Result<MetricsEndpoint, MetricsError> {
        let server = Arc::new(
            tiny_http::Server::from_listener(self.listener, None).map_err(|e| MetricsError::Start(e.to_string()))?,
        );
        let thread = {
            let server = server.clone();
            std::thread::Builder::new()
                .name("xsknet-metrics".into())
                .spawn(move || {
                    // `recv` fails once `unblock` is called: the endpoint is dropped.
                    while let Ok(req) = server.recv() {
                        // The scraper may have gone: nothing to do then.
                        let _ = answer(req, &source);
                    }
                })
                .map_err(|e| MetricsError::Start(e.to_string()))?
        };
        Ok(MetricsEndpoint { addr: self.addr, server, thread: Some(thread) })
    }
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}

fn answer(req: tiny_http::Request, source: &SnapshotSource) -> std::io::Result<()> {
    let path = req.url().split('?').next().unwrap_or("");
    let text = |code: u16, body: String| {
        tiny_http::Response::from_string(body)
            .with_status_code(code)
            .with_header(header("Content-Type", "text/plain; charset=utf-8"))
    };
    if path != PATH {
        return req.respond(text(404, format!("not found: xsknet serves its metrics at {PATH}\n")));
    }
    if !matches!(req.method(), tiny_http::Method::Get | tiny_http::Method::Head) {
        let r = text(405, format!("{} {PATH}: only GET and HEAD\n", req.method()))
            .with_header(header("Allow", "GET, HEAD"));
        return req.respond(r);
    }
    match source.snapshot() {
        Ok(snap) => {
            let r = tiny_http::Response::from_string(encode(&snap)).with_header(header("Content-Type", CONTENT_TYPE));
            req.respond(r)
        }
        Err(e) => req.respond(text(503, format!("{e}\n"))),
    }
}

/// A served metrics endpoint; dropping it stops the server.
pub struct MetricsEndpoint {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsEndpoint {
    /// The address served.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adaptive::AdaptiveStats;
    use crate::control::{InstanceInfo, Netns};
    use crate::publish::{PublishedStats, Publisher};
    use crate::xdp::guard::{GuardCounters, GuardReasonCount, GuardStat};
    use crate::xdp::XdpProgStats;
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, TcpStream};
    use std::time::Instant;

    fn info() -> InstanceInfo {
        InstanceInfo {
            pid: 42,
            version: "0.1.0".into(),
            app: "echo (udp, tcp)".into(),
            iface: "veth0".into(),
            queue: 0,
            netns: Netns { inode: 1, name: None },
            addr: Ipv4Addr::new(10, 0, 0, 2),
            prefix_len: 24,
            port: 7,
            setup: "test".into(),
            started_unix_s: 1_700_000_000.5,
            prog_id: Some(42),
        }
    }

    fn snapshot() -> Snapshot {
        let mut stats = PublishedStats { uptime_ns: 9_000_000_000, ..PublishedStats::default() };
        stats.mib.IpInReceives = 12;
        stats.mib.TcpExtTCPAbortOnData = 3;
        stats.mib.UdpNoPorts = 5;
        stats.mib.TcpCurrEstab = 2;
        stats.softirq.polls = 1000;
        stats.softirq.busy_ns = 1_500_000_000;
        stats.softirq.total_ns = 9_000_000_000;
        stats.softirq.loop_cpu_ns = 4_500_000_000;
        stats.softirq.process_cpu_ns = 4_750_000_000;
        stats.softirq.publications = 90;
        stats.softirq.publish_ns = 2_700_000;
        stats.xdp_prog_id = 42;
        stats.xdp_attached = true;
        stats.device.rx_ring_full = 4;
        stats.census.total = 8192;
        stats.census.in_kernel = 4096;
        stats.tcp_states[TcpState::ALL.iter().position(|s| *s == TcpState::Established).unwrap()] = 2;
        // 500 ns, 1.5 µs, 3 µs, 2 ms (a bucket below 2 ms: 2 ms lies in 1.966..=2.031 ms), 5 s.
        for ns in [500, 1_500, 3_000, 2_000_000, 5_000_000_000] {
            stats.rx_latency.record(ns);
        }
        let xdp = XdpProgStats { rx: 20, redirect_ipv4: 10, redirect_arp: 2, drop: 1, ..XdpProgStats::default() };
        let guard = GuardCounters {
            enabled: true,
            reasons: GuardStat::ALL
                .iter()
                .map(|s| GuardReasonCount {
                    name: s.name().into(),
                    value: if *s == GuardStat::DropSourcePps { 7 } else { 0 },
                })
                .collect(),
            rules: vec![],
        };
        let adaptive = AdaptiveStats { tightens: 2, relaxes: 1, tightened: 1, busy_share_ppm: 0 };
        Snapshot {
            info: info(),
            age_ns: 50_000_000,
            stats,
            xdp: Some(xdp),
            guard: Some(guard),
            adaptive: Some(adaptive),
        }
    }

    /// The lines of `text` that start with `prefix`.
    fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn counters_and_gauges_encode_as_exact_lines() {
        let t = encode(&snapshot());
        for want in [
            "# HELP xsknet_netstat_ip_in_receives_total IpInReceives, as nstat names it (net/ipv4/proc.c).",
            "# TYPE xsknet_netstat_ip_in_receives_total counter",
            "xsknet_netstat_ip_in_receives_total 12",
            "xsknet_netstat_tcp_ext_tcp_abort_on_data_total 3",
            "# TYPE xsknet_netstat_tcp_curr_estab gauge",
            "xsknet_netstat_tcp_curr_estab 2",
            "xsknet_netstat_xsk_rx_frames_total 0",
            "xsknet_drops_total{counter=\"UdpNoPorts\",reason=\"no socket on the port (port unreachable, unless broadcast or rate-limited)\"} 5",
            "xsknet_xdp_rx_packets_total 20",
            "# TYPE xsknet_xdp_packets_total counter",
            "xsknet_xdp_packets_total{action=\"redirect_ipv4\"} 10",
            "xsknet_xdp_packets_total{action=\"drop\"} 1",
            "xsknet_xsk_rx_ring_full_total 4",
            "# TYPE xsknet_xdp_guard_packets_total counter",
            "xsknet_xdp_guard_packets_total{reason=\"drop_source_pps\"} 7",
            "xsknet_xdp_guard_packets_total{reason=\"pass_allowlist\"} 0",
            "xsknet_xdp_guard_adaptive_tightens_total 2",
            "xsknet_xdp_guard_adaptive_relaxes_total 1",
            "xsknet_softirq_polls_total 1000",
            "xsknet_softirq_busy_seconds_total 1.5",
            "xsknet_softirq_seconds_total 9.0",
            "# TYPE xsknet_softirq_cpu_seconds_total counter",
            "xsknet_softirq_cpu_seconds_total 4.5",
            "xsknet_other_threads_cpu_seconds_total 0.25",
            "xsknet_softirq_publications_total 90",
            "xsknet_softirq_publish_cpu_seconds_total 0.0027",
            "# TYPE xsknet_xdp_prog_attached gauge",
            "xsknet_xdp_prog_attached{prog_id=\"42\"} 1",
            "xsknet_umem_frames{place=\"in_kernel\"} 4096",
            "xsknet_umem_capacity_frames 8192",
            "xsknet_tcp_sockets{state=\"ESTAB\"} 2",
            "xsknet_tcp_sockets{state=\"LISTEN\"} 0",
            "xsknet_publish_age_seconds 0.05",
            "# TYPE xsknet_info gauge",
            "xsknet_info{iface=\"veth0\",queue=\"0\",app=\"echo (udp, tcp)\",version=\"0.1.0\",addr=\"10.0.0.2:7\"} 1",
        ] {
            assert!(t.lines().any(|l| l == want), "no line {want:?} in:\n{t}");
        }
        // One HELP and one TYPE per family, each before its samples.
        let helps = lines(&t, "# HELP ");
        let types = lines(&t, "# TYPE ");
        assert_eq!(helps.len(), types.len());
        let mut names: Vec<&str> = types.iter().map(|l| l.split(' ').nth(2).unwrap()).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a family written twice");
        // Every sample's name is valid and snake_case (promtool refuses camelCase).
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            assert!(name.starts_with("xsknet_"), "{l}");
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{l}");
        }
    }

    #[test]
    fn the_latency_histogram_is_cumulative_and_inf_is_the_count() {
        let snap = snapshot();
        let t = encode(&snap);
        let b = lines(&t, "xsknet_stage_latency_seconds_bucket{stage=\"rx_to_read\"");
        assert_eq!(b.len(), LATENCY_BOUNDS_NS.len() + 1, "{t}");
        let counts: Vec<u64> = b.iter().map(|l| l.rsplit(' ').next().unwrap().parse().unwrap()).collect();
        // 500 ns ≤ 1 µs; 1.5 µs ≤ 2 µs; 3 µs ≤ 5 µs; 2 ms ≤ 5 ms; 5 s only under +Inf.
        assert_eq!(counts, [1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 5]);
        assert_eq!(b[0], "xsknet_stage_latency_seconds_bucket{stage=\"rx_to_read\",le=\"1e-06\"} 1");
        assert_eq!(*b.last().unwrap(), "xsknet_stage_latency_seconds_bucket{stage=\"rx_to_read\",le=\"+Inf\"} 5");
        assert!(t.lines().any(|l| l == "xsknet_stage_latency_seconds_count{stage=\"rx_to_read\"} 5"), "{t}");
        let sum = lines(&t, "xsknet_stage_latency_seconds_sum{stage=\"rx_to_read\"}")[0];
        let sum: f64 = sum.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((sum - snap.stats.rx_latency.sum() as f64 / 1e9).abs() < 1e-12, "{sum}");
        // A fine bucket reaching past a bound counts under the next one.
        let mut h = LatencyHistogram::new();
        h.record(1_010);
        let bk = latency_buckets(&h);
        assert!(h.buckets().next().unwrap().high > 1_000);
        assert_eq!((bk[0].1, bk[1].1), (0, 1));
    }

    #[test]
    fn every_counter_has_one_series_of_its_own() {
        let snap = snapshot();
        let mut keys: Vec<String> = snap.counters().iter().map(|&(n, _, k)| series(n, k).key()).collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n);
        let t = encode(&snap);
        for (name, v, kind) in snap.counters() {
            let s = series(name, kind);
            let line = t.lines().find(|l| l.split(' ').next() == Some(s.key().as_str()));
            let line = line.unwrap_or_else(|| panic!("{name}: no {} in:\n{t}", s.key()));
            let got: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert_eq!(got, v as f64 / s.divisor, "{name}");
        }
        assert_eq!(snake("TCPSYNChallenge"), "tcp_syn_challenge");
        assert_eq!(snake("InECT1Pkts"), "in_ect1_pkts");
        assert_eq!(snake("InType0"), "in_type0");
        assert_eq!(snake("TW"), "tw");
        assert_eq!(snake("TCPACKSkippedChallenge"), "tcp_ack_skipped_challenge");
        assert_eq!(snake("InCEPkts"), "in_ce_pkts");
        assert_eq!(snake("IpReasmOKs"), "ip_reasm_oks");
        assert_eq!(snake("IpFragOKs"), "ip_frag_oks");
        assert_eq!(snake("TCPDSACKRecv"), "tcp_dsack_recv");
        assert_eq!(snake("TCPSACKReorder"), "tcp_sack_reorder");
        assert_eq!(snake("TCPSpuriousRTOs"), "tcp_spurious_rtos");
        assert_eq!(series("IcmpMsgOutType3", CounterKind::Mib).key(), "xsknet_netstat_icmp_msg_out_type3_total");
        assert_eq!(series("SoftirqTotalNs", CounterKind::Softirq).key(), "xsknet_softirq_seconds_total");
        assert_eq!(series("SoftirqCpuNs", CounterKind::Softirq).key(), "xsknet_softirq_cpu_seconds_total");
        assert_eq!(
            series("SoftirqOtherThreadsCpuNs", CounterKind::Softirq).key(),
            "xsknet_other_threads_cpu_seconds_total"
        );
        assert_eq!(series("SoftirqPublications", CounterKind::Softirq).key(), "xsknet_softirq_publications_total");
    }

    /// The Grafana dashboard (docs/grafana/) draws only what the encoder emits.
    #[test]
    fn the_dashboard_uses_only_metrics_we_emit() {
        let dash: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/grafana/xsknet-dashboard.json")).expect("dashboard JSON");
        fn queries(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        match (k.as_str(), v) {
                            ("expr" | "query" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                            _ => queries(v, out),
                        }
                    }
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| queries(v, out)),
                _ => {}
            }
        }
        let mut exprs = Vec::new();
        queries(&dash, &mut exprs);
        let emitted: Vec<String> = encode(&snapshot())
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
            .collect();
        let mut used = 0;
        for e in exprs.iter().filter(|e| e.contains("xsknet_")) {
            let mut names = 0;
            for (i, _) in e.match_indices("xsknet_") {
                let name: String = e[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                assert!(emitted.contains(&name), "the dashboard uses {name}, which is not emitted: {e}");
                names += 1;
            }
            assert!(names > 0);
            used += names;
        }
        assert!(used >= 15, "{used} metric names in the dashboard");
        let titles: Vec<&str> =
            dash["panels"].as_array().unwrap().iter().map(|p| p["title"].as_str().unwrap()).collect();
        for t in [
            "Packets per second by stage",
            "Drops per second by reason",
            "Softirq busy share",
            "Latency per stage (p50, p99)",
        ] {
            assert!(titles.contains(&t), "no panel {t:?}: {titles:?}");
        }
    }

    /// One HTTP/1.0 request to `addr`: the status code and the whole answer.
    fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
        let mut c = TcpStream::connect(addr).unwrap();
        write!(c, "{method} {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut a = String::new();
        c.read_to_string(&mut a).unwrap();
        (a.split(' ').nth(1).unwrap().parse().unwrap(), a)
    }

    #[test]
    fn the_server_answers_metrics_and_refuses_the_rest() {
        let (mut publisher, reader) = Publisher::new(Instant::now());
        let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr();
        // The port is taken now: a second bind says so, and what to do.
        match MetricsServer::bind(addr) {
            Err(e @ MetricsError::Bind { .. }) => {
                let e = e.to_string();
                assert!(e.contains("another process listens on port") && e.contains("--metrics"), "{e}");
            }
            other => panic!("bound twice: {:?}", other.map(|s| s.local_addr())),
        }
        let ep = server
            .serve(SnapshotSource { info: info(), stats: reader, xdp: None, guard: None, adaptive: None })
            .unwrap();
        let (code, a) = http(addr, "GET", "/metrics");
        assert_eq!(code, 503, "{a}");
        assert!(a.contains("not published"), "{a}");
        publisher.scratch.mib.UdpNoPorts = 7;
        publisher.commit(Instant::now());
        let (code, a) = http(addr, "GET", "/metrics");
        assert_eq!(code, 200, "{a}");
        assert!(a.contains(&format!("Content-Type: {CONTENT_TYPE}")), "{a}");
        assert!(a.lines().any(|l| l == "xsknet_netstat_udp_no_ports_total 7"), "{a}");
        // No XDP reader: its counters read zero.
        assert!(a.lines().any(|l| l == "xsknet_xdp_rx_packets_total 0"), "{a}");
        let (code, a) = http(addr, "GET", "/");
        assert_eq!(code, 404, "{a}");
        let (code, a) = http(addr, "POST", "/metrics");
        assert_eq!(code, 405, "{a}");
        assert!(a.contains("Allow: GET, HEAD"), "{a}");
        drop(ep);
        // tiny_http's accept thread closes the listener as it ends, just after.
        let t0 = Instant::now();
        while TcpStream::connect(addr).is_ok() {
            assert!(t0.elapsed() < std::time::Duration::from_secs(2), "still served after the endpoint was dropped");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(parse_addr("localhost").unwrap_err().contains("such as 127.0.0.1:9464"));
        assert_eq!(parse_addr("127.0.0.1:9464"), Ok("127.0.0.1:9464".parse().unwrap()));
    }
}
