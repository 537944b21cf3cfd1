//! The exit report of the `xsknet` command: what every stage counted, from the
//! XDP program to the application, printed as a table and written as JSON
//! (`--stats-json`).
//!
//! The MIB rows are named by [`MibCounter`] variants, so a misspelt counter
//! does not compile; the "drops by reason" lines iterate the counter table and
//! take each drop's meaning from it (`snmp.rs`), so the text is written once.

use std::fmt::Write as _;
use std::time::Duration;

use crate::adaptive::AdaptiveStats;
use crate::latency::{LatencySummary, StageSummary};
use crate::netdevice::DeviceStats;
use crate::snmp::{Mib, MibCounter};
use crate::softirq::{LoopStats, PollSummary};
use crate::umem::FrameCensus;
use crate::xdp::guard::{GuardStat, RuleList};
use crate::xdp::{GuardCounters, XdpProgStats};

/// What the application saw (beyond the stack's counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AppStats {
    /// Datagrams read.
    pub datagrams: u64,
    /// Payload bytes read.
    pub bytes: u64,
    /// Echoes that could not be queued (sndbuf or frames exhausted).
    pub echo_send_failed: u64,
    /// TCP connections accepted.
    pub tcp_accepted: u64,
    /// Bytes read from TCP connections.
    pub tcp_bytes: u64,
}

/// What `xsknet http` served: its requests by the status of their responses.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HttpStats {
    /// Connections accepted.
    pub connections: u64,
    /// Responses started: one per request, and one per malformed or
    /// timed-out request (400, 408, 414, 431, 505).
    pub requests: u64,
    /// `requests` by status code; the values add up to `requests`.
    pub by_status: std::collections::BTreeMap<u16, u64>,
    /// Request bytes read from connections.
    pub bytes_received: u64,
    /// Response bytes queued on connections, headers and bodies.
    pub bytes_sent: u64,
    /// Connections closed for being idle longer than the timeout.
    pub idle_timeouts: u64,
    /// Connections that ended in a socket error (reset, timeout) or a file
    /// that could not be read to its announced length.
    pub errors: u64,
}

/// The MIB counters shown per stage, in path order.
const STAGES: &[(&str, &[MibCounter])] = {
    use MibCounter::*;
    &[
        ("softirq: frames", &[XskRxFrames, XskTxFrames]),
        ("ARP", &[XskArpInRequests, XskArpOutReplies, XskArpInReplies, XskArpOutRequests]),
        ("IP in", &[IpInReceives, IpInDelivers, IpExtInOctets]),
        ("ICMP", &[IcmpInMsgs, IcmpInEchos, IcmpOutEchoReps, IcmpOutDestUnreachs, IcmpOutMsgs]),
        ("UDP", &[UdpInDatagrams, UdpOutDatagrams]),
        (
            "TCP",
            &[
                TcpPassiveOpens,
                TcpActiveOpens,
                TcpAttemptFails,
                TcpEstabResets,
                TcpInSegs,
                TcpOutSegs,
                TcpRetransSegs,
                TcpOutRsts,
            ],
        ),
        ("IP out", &[IpOutRequests, IpOutTransmits, IpExtOutOctets]),
    ]
};

/// Stages shown only when one of their counters moved: most runs see no
/// fragment, SYN cookie, keepalive or memory pressure, and a table of zeros
/// hides what did happen.
const STAGES_IF_USED: &[(&str, &[MibCounter])] = {
    use MibCounter::*;
    &[
        ("IP fragments", &[IpReasmReqds, IpReasmOKs, IpFragOKs, IpFragCreates]),
        (
            "TCP, SYN cookies",
            &[TcpExtTCPReqQFullDoCookies, TcpExtSyncookiesSent, TcpExtSyncookiesRecv, TcpExtSyncookiesFailed],
        ),
        ("TCP keepalive", &[TcpExtTCPKeepAlive]),
        (
            "TCP memory (tcp_mem)",
            &[
                TcpExtTCPMemoryPressures,
                TcpExtTCPMemoryPressuresChrono,
                TcpExtPruneCalled,
                TcpExtOfoPruned,
                TcpExtRcvPruned,
            ],
        ),
        ("TCP, ICMP ignored", &[TcpExtOutOfWindowIcmps]),
    ]
};

/// Everything the exit report shows.
#[derive(Clone, Debug)]
pub struct Report<'a> {
    /// The "ready" line's description of the setup.
    pub setup: &'a str,
    /// From ready to stop.
    pub elapsed: Duration,
    /// The stack's counters.
    pub mib: Mib,
    /// The socket's `XDP_STATISTICS`.
    pub device: DeviceStats,
    /// Where every UMEM frame is.
    pub census: FrameCensus,
    /// The XDP program's counters.
    pub xdp: XdpProgStats,
    /// The XDP program's id and whether it was still attached at exit
    /// ([`crate::xdp::XdpLinkWatch`]), when it was watched.
    pub xdp_attached: Option<(u32, bool)>,
    /// The guard's counters, when it was on (`--guard`, `--guard-rules`).
    pub guard: Option<GuardCounters>,
    /// What the guard's adaptive mode did, when it ran.
    pub adaptive: Option<AdaptiveStats>,
    /// The softirq loop's work.
    pub loop_stats: LoopStats,
    /// The application's.
    pub app: AppStats,
    /// Rx ring to application read, sampled.
    pub rx_latency: LatencySummary,
    /// The three stages' times, sampled (`rx_to_read` is `rx_latency`).
    pub stage_latency: StageSummary,
    /// Where the loop's polls spent their time (`Stack::poll_histograms`).
    pub poll: PollSummary,
    /// TCP sockets by state at exit, as `ss` names the states (TIME-WAIT included).
    pub tcp_states: Vec<(&'static str, usize)>,
    /// `xsknet http`'s counts; `None` for the other commands.
    pub http: Option<HttpStats>,
    /// The neighbour table at exit, as `ip neigh` lists it.
    pub neighbours: Vec<crate::neighbour::NeighEntry>,
    /// CPU time of each thread still running at exit, ns, by thread name
    /// (whole lives, setup included: [`crate::schedstat::threads_cpu_ns`]).
    pub threads_cpu_ns: Vec<(String, u64)>,
}

/// A duration in ns as a person reads it: "45 ns", "12.3 µs", "4.1 ms".
fn fmt_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

impl Report<'_> {
    /// The report as printed, lines ending in `\n`, starting with a blank line.
    pub fn render(&self) -> String {
        let mut o = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_to(&mut o);
        o
    }

    /// Prints [`render`](Self::render) on stdout.
    pub fn print(&self) {
        // Not print!: after a SIGHUP the terminal may be gone (EIO), and
        // print! would panic before `--stats-json` is written.
        let _ = std::io::Write::write_all(&mut std::io::stdout(), self.render().as_bytes());
    }

    fn write_to(&self, o: &mut String) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let l = &self.loop_stats;
        writeln!(o)?;
        writeln!(o, "xsknet: stopped after {:.1} s: {}", secs, self.setup)?;
        writeln!(
            o,
            "  application: {} datagrams, {} bytes ({:.0} datagrams/s){}",
            self.app.datagrams,
            self.app.bytes,
            self.app.datagrams as f64 / secs,
            if self.app.echo_send_failed > 0 {
                format!(", {} echoes not sent", self.app.echo_send_failed)
            } else {
                String::new()
            }
        )?;
        if self.app.tcp_accepted > 0 || !self.tcp_states.is_empty() {
            let states: Vec<String> = self.tcp_states.iter().map(|(s, n)| format!("{n} {s}")).collect();
            writeln!(
                o,
                "  tcp: {} connection{} accepted, {} bytes read; sockets at exit: {}",
                self.app.tcp_accepted,
                if self.app.tcp_accepted == 1 { "" } else { "s" },
                self.app.tcp_bytes,
                if states.is_empty() { "none".to_string() } else { states.join(", ") }
            )?;
        }
        if let Some(h) = &self.http {
            let statuses: Vec<String> = h.by_status.iter().map(|(s, n)| format!("{n} × {s}")).collect();
            writeln!(
                o,
                "  http: {} connections, {} requests ({}), {} bytes sent, {} idle timeouts, {} errors",
                h.connections,
                h.requests,
                if statuses.is_empty() { "none".to_string() } else { statuses.join(", ") },
                h.bytes_sent,
                h.idle_timeouts,
                h.errors
            )?;
        }
        writeln!(
            o,
            "  softirq loop: {} polls, {:.1} % busy (our si), {} rx / {} tx descriptors",
            l.polls,
            l.busy_share() * 100.0,
            l.rx_packets,
            l.tx_packets
        )?;
        if l.loop_cpu_ns > 0 {
            let each =
                l.publish_ns.checked_div(l.publications).map_or(String::new(), |ns| format!(", {} each", fmt_ns(ns)));
            writeln!(
                o,
                "  CPU: loop thread {}, other threads {}; {} publications{each}",
                fmt_ns(l.loop_cpu_ns),
                fmt_ns(l.other_threads_cpu_ns()),
                l.publications,
            )?;
        }
        match self.xdp_attached {
            Some((id, true)) => writeln!(o, "  XDP program: id {id}, attached until exit")?,
            Some((id, false)) => writeln!(
                o,
                "  XDP program: id {id}, DETACHED while running (another process took it off the interface, e.g. \
                 with --replace, or the interface went away): frames stopped reaching this instance then"
            )?,
            None => {}
        }
        let p = &self.poll;
        if p.busy_poll.count > 0 {
            writeln!(
                o,
                "  polls: busy p50 {}, p99 {}, max {}; between polls p50 {}, p99 {}, p99.9 {}, max {}",
                fmt_ns(p.busy_poll.p50_ns),
                fmt_ns(p.busy_poll.p99_ns),
                fmt_ns(p.busy_poll.max_ns),
                fmt_ns(p.poll_gap.p50_ns),
                fmt_ns(p.poll_gap.p99_ns),
                fmt_ns(p.poll_gap.p999_ns),
                fmt_ns(p.poll_gap.max_ns)
            )?;
            writeln!(
                o,
                "  batches: rx mean {:.1} (max {}), tx mean {:.1} (max {}); {} tx kicks; descheduled {:.1} ms, {} preemptions",
                p.rx_batch.mean,
                p.rx_batch.max,
                p.tx_batch.mean,
                p.tx_batch.max,
                self.mib.XskTxKicks,
                l.sched.run_delay_ns as f64 / 1e6,
                l.sched.nivcsw
            )?;
        }
        let st = &self.stage_latency;
        let stages = [
            ("rx ring to application read", &self.rx_latency),
            ("application send to tx ring", &st.send_to_tx),
            ("tx ring to completion", &st.tx_to_completion),
        ];
        if stages.iter().any(|(_, r)| r.count > 0) {
            writeln!(o, "  time per stage (sampled):")?;
        }
        for (name, r) in stages.into_iter().filter(|(_, r)| r.count > 0) {
            let us = |ns: u64| ns as f64 / 1000.0;
            writeln!(
                o,
                "    {name:<28} {:>9} sampled: p50 {:.1} µs, p99 {:.1}, p99.9 {:.1}, max {:.1}",
                r.count,
                us(r.p50_ns),
                us(r.p99_ns),
                us(r.p999_ns),
                us(r.max_ns)
            )?;
        }
        writeln!(o, "\n  {:<22} {:<28} {:>14}", "stage", "counter", "value")?;
        let x = &self.xdp;
        let rows: [(&str, u64); 10] = [
            ("rx", x.rx),
            ("redirect_ipv4", x.redirect_ipv4),
            ("redirect_arp", x.redirect_arp),
            ("pass_not_ours", x.pass_not_ours),
            ("pass_no_socket", x.pass_no_socket),
            ("pass_malformed", x.pass_malformed),
            ("drop", x.drop),
            ("guard_drop", x.guard_drop),
            ("pass_other_host", x.pass_other_host),
            ("pass_kernel_addr", x.pass_kernel_addr),
        ];
        for (i, (name, v)) in rows.into_iter().enumerate() {
            writeln!(o, "  {:<22} {:<28} {:>14}", if i == 0 { "hard IRQ (XDP)" } else { "" }, name, v)?;
        }
        if let Some(g) = &self.guard {
            // Both passes, then the drops that happened, each with its meaning.
            let shown = GuardStat::ALL.iter().filter(|s| !s.is_drop() || g.get(**s) > 0);
            for (i, stat) in shown.enumerate() {
                let why = if stat.is_drop() { format!("  {}", stat.meaning()) } else { String::new() };
                writeln!(
                    o,
                    "  {:<22} {:<28} {:>14}{why}",
                    if i == 0 { "guard (XDP)" } else { "" },
                    stat.name(),
                    g.get(*stat)
                )?;
            }
            for r in &g.rules {
                let list = if r.list == RuleList::Allow { "allow" } else { "block" };
                writeln!(o, "  {:<22} {:<28} {:>14}", "", format!("{list} {}", r.prefix), r.hits)?;
            }
        }
        if let Some(a) = &self.adaptive {
            let rows = [
                ("XdpGuardAdaptiveTightens", a.tightens, "  sources tightened by the adaptive mode"),
                ("XdpGuardAdaptiveRelaxes", a.relaxes, "  sources relaxed again"),
                ("tightened at exit", a.tightened, ""),
            ];
            for (i, (name, v, why)) in rows.into_iter().enumerate() {
                writeln!(o, "  {:<22} {:<28} {:>14}{why}", if i == 0 { "guard (adaptive)" } else { "" }, name, v)?;
            }
        }
        let d = &self.device;
        let rings: [(&str, u64); 5] = [
            ("rx_dropped", d.rx_dropped),
            ("rx_ring_full", d.rx_ring_full),
            ("rx_fill_ring_empty_descs", d.rx_fill_ring_empty_descs),
            ("rx_invalid_descs", d.rx_invalid_descs),
            ("tx_invalid_descs", d.tx_invalid_descs),
        ];
        for (i, (name, v)) in rings.into_iter().enumerate() {
            writeln!(o, "  {:<22} {:<28} {:>14}", if i == 0 { "rings (XDP_STATISTICS)" } else { "" }, name, v)?;
        }
        let checks: [(&str, u64); 7] = [
            ("XskRxInvalidAddr", d.xsk_rx_invalid_addr),
            ("XskCqInvalidAddr", d.xsk_cq_invalid_addr),
            ("XskInKernelUnderflow", d.xsk_in_kernel_underflow),
            ("XskRxMultiBufPackets", d.xsk_rx_multibuf_packets),
            ("XskRxMultiBufTooBig", d.xsk_rx_multibuf_too_big),
            ("XskRxMultiBufInvalid", d.xsk_rx_multibuf_invalid),
            ("XskRxMultiBufTruncated", d.xsk_rx_multibuf_truncated),
        ];
        for (i, (name, v)) in checks.into_iter().enumerate() {
            writeln!(o, "  {:<22} {:<28} {:>14}", if i == 0 { "rings (our checks)" } else { "" }, name, v)?;
        }
        let used = |counters: &[MibCounter]| counters.iter().any(|c| self.mib.value(*c) > 0);
        let shown = STAGES_IF_USED.iter().filter(|(_, counters)| used(counters));
        for (stage, counters) in STAGES.iter().chain(shown) {
            for (i, c) in counters.iter().enumerate() {
                writeln!(o, "  {:<22} {:<28} {:>14}", if i == 0 { stage } else { "" }, c.name(), self.mib.value(*c))?;
            }
        }
        let drops: Vec<(MibCounter, &str, u64)> = MibCounter::ALL
            .iter()
            .filter_map(|&c| Some((c, c.drop_reason()?, self.mib.value(c))))
            .filter(|&(_, _, v)| v > 0)
            .collect();
        writeln!(o, "\n  drops by reason:{}", if drops.is_empty() { " none" } else { "" })?;
        for (c, why, v) in drops {
            writeln!(o, "    {:<26} {:>12}  {}", c.name(), v, why)?;
        }
        let c = &self.census;
        writeln!(
            o,
            "\n  frames: {} in UMEM = {} in kernel rings + {} free + {} in socks + {} awaiting ARP + {} tx backlog + {} in reassembly{}",
            c.total,
            c.in_kernel,
            c.free_local + c.free_shared,
            c.in_socks,
            c.awaiting_neighbour,
            c.tx_backlog,
            c.in_reasm,
            if c.accounted() == c.total {
                " (all accounted for)".to_string()
            } else {
                format!(" — {} MISSING", c.total as i64 - c.accounted() as i64)
            }
        )
    }

    /// The JSON object `--stats-json` writes: `setup`, `elapsed_s`, `counters`
    /// (every MIB counter by nstat name), `xdp_prog`, `xdp_program` (its `id` and
    /// whether it was still `attached` at exit; `null` when not watched), `guard` (when on: its
    /// counters by reason and per rule), `xdp_statistics`,
    /// `frames`, `softirq` (with `run_delay_ns`, `nivcsw`, the threaded loop's
    /// `handoffs`, `handoff_timeouts` and `handoff_ns`, and `poll`: the
    /// poll histograms' summaries), `application`, `rx_latency`, `stage_latency`
    /// (`rx_to_read`, `send_to_tx`, `tx_to_completion`, each as
    /// `rx_latency`), `neighbours` (the neighbour table at exit, as `ip neigh`
    /// lists it: `ip`, `lladdr`, `state`), and `http` for `xsknet http`
    /// (status codes as keys of `by_status`).
    pub fn to_json(&self) -> serde_json::Value {
        let counters: serde_json::Map<String, serde_json::Value> =
            self.mib.iter().map(|(n, v)| (n.to_string(), serde_json::Value::from(v))).collect();
        let mut json = serde_json::json!({
            "setup": self.setup,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "counters": counters,
            "xdp_prog": self.xdp,
            "xdp_program": self.xdp_attached.map(|(id, attached)| serde_json::json!({ "id": id, "attached": attached })),
            "xdp_statistics": self.device,
            "frames": self.census,
            "softirq": {
                "polls": self.loop_stats.polls,
                "busy_polls": self.loop_stats.busy_polls,
                "busy_share": self.loop_stats.busy_share(),
                "busy_ns": self.loop_stats.busy_ns,
                "total_ns": self.loop_stats.total_ns,
                "rx_packets": self.loop_stats.rx_packets,
                "tx_packets": self.loop_stats.tx_packets,
                "loop_cpu_ns": self.loop_stats.loop_cpu_ns,
                "other_threads_cpu_ns": self.loop_stats.other_threads_cpu_ns(),
                "threads_cpu_ns": self.threads_cpu_ns.iter().cloned().collect::<std::collections::BTreeMap<String, u64>>(),
                "publications": self.loop_stats.publications,
                "publish_ns": self.loop_stats.publish_ns,
                "run_delay_ns": self.loop_stats.sched.run_delay_ns,
                "nivcsw": self.loop_stats.sched.nivcsw,
                "handoffs": self.loop_stats.handoffs,
                "handoff_timeouts": self.loop_stats.handoff_timeouts,
                "handoff_ns": self.loop_stats.handoff_ns,
                "poll": self.poll,
            },
            "application": self.app,
            "tcp_sockets_by_state": self.tcp_states.iter().map(|(s, n)| (s.to_string(), serde_json::Value::from(*n))).collect::<serde_json::Map<String, serde_json::Value>>(),
            "rx_latency": self.rx_latency,
            "stage_latency": self.stage_latency,
            "neighbours": self.neighbours,
        });
        if let Some(h) = &self.http {
            json["http"] = serde_json::json!(h);
        }
        if let Some(g) = &self.guard {
            json["guard"] = serde_json::json!(g);
        }
        if let Some(a) = &self.adaptive {
            json["guard_adaptive"] = serde_json::json!(a);
        }
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(mib: Mib) -> Report<'static> {
        Report {
            setup: "udp echo on veth0 10.77.0.2:7",
            elapsed: Duration::from_secs(2),
            mib,
            device: DeviceStats { rx_ring_full: 5, ..DeviceStats::default() },
            census: FrameCensus { total: 10, in_kernel: 6, free_local: 4, ..FrameCensus::default() },
            xdp: XdpProgStats { rx: 12, redirect_ipv4: 11, redirect_arp: 1, ..XdpProgStats::default() },
            guard: None,
            adaptive: None,
            loop_stats: LoopStats::default(),
            threads_cpu_ns: vec![("xsknet".into(), 1)],
            xdp_attached: Some((42, true)),
            app: AppStats { datagrams: 4, bytes: 400, echo_send_failed: 0, tcp_accepted: 0, tcp_bytes: 0 },
            tcp_states: Vec::new(),
            rx_latency: LatencySummary::default(),
            stage_latency: StageSummary::default(),
            poll: PollSummary::default(),
            http: None,
            neighbours: Vec::new(),
        }
    }

    #[test]
    fn table_has_every_stage_and_the_drops_with_their_meaning() {
        let text = report(Mib { XskRxFrames: 12, UdpNoPorts: 3, IpInReceives: 11, ..Mib::default() }).render();
        assert!(text.starts_with("\nxsknet: stopped after 2.0 s: udp echo on veth0 10.77.0.2:7\n"), "{text}");
        assert!(text.contains("  application: 4 datagrams, 400 bytes (2 datagrams/s)\n"), "{text}");
        let row = |stage: &str, name: &str, v: u64| format!("  {stage:<22} {name:<28} {v:>14}\n");
        assert!(text.contains(&row("hard IRQ (XDP)", "rx", 12)));
        assert!(text.contains(&row("", "redirect_arp", 1)));
        assert!(text.contains(&row("", "rx_ring_full", 5)));
        assert!(text.contains(&row("rings (our checks)", "XskRxInvalidAddr", 0)));
        assert!(text.contains(&row("", "XskInKernelUnderflow", 0)));
        assert!(text.contains(&row("softirq: frames", "XskRxFrames", 12)));
        assert!(text.contains(&row("IP in", "IpInReceives", 11)));
        assert!(text.contains(&row("IP out", "IpOutRequests", 0)));
        assert!(text.contains("\n  drops by reason:\n    UdpNoPorts                            3  no socket on the port (port unreachable, unless broadcast or rate-limited)\n"), "{text}");
        assert!(text.ends_with(
            "6 in kernel rings + 4 free + 0 in socks + 0 awaiting ARP + 0 tx backlog + 0 in reassembly (all \
             accounted for)\n"
        ));

        let none = report(Mib::default()).render();
        assert!(none.contains("\n  drops by reason: none\n"));
        assert!(!none.contains("IP fragments") && !none.contains("SYN cookies"), "unused: not shown\n{none}");
    }

    #[test]
    fn the_xdp_program_is_said_attached_or_detached() {
        let mut r = report(Mib::default());
        assert!(r.render().contains("\n  XDP program: id 42, attached until exit\n"));
        assert_eq!(r.to_json()["xdp_program"], serde_json::json!({ "id": 42, "attached": true }));
        r.xdp_attached = Some((42, false));
        let text = r.render();
        assert!(text.contains("\n  XDP program: id 42, DETACHED while running"), "{text}");
        assert_eq!(r.to_json()["xdp_program"]["attached"], false);
        r.xdp_attached = None;
        assert!(!r.render().contains("XDP program:"));
    }

    #[test]
    fn tcp_memory_pressure_is_shown_when_it_happened() {
        let none = report(Mib::default()).render();
        assert!(!none.contains("tcp_mem"), "{none}");
        let text = report(Mib { TcpExtTCPMemoryPressures: 1, TcpExtPruneCalled: 7, ..Mib::default() }).render();
        let row = |stage: &str, name: &str, v: u64| format!("  {stage:<22} {name:<28} {v:>14}\n");
        assert!(text.contains(&row("TCP memory (tcp_mem)", "TcpExtTCPMemoryPressures", 1)), "{text}");
        assert!(text.contains(&row("", "TcpExtPruneCalled", 7)), "{text}");
    }

    #[test]
    fn fragments_and_cookies_are_shown_when_they_happened() {
        let text = report(Mib { IpReasmReqds: 2, IpReasmOKs: 1, TcpExtSyncookiesSent: 3, ..Mib::default() }).render();
        let row = |stage: &str, name: &str, v: u64| format!("  {stage:<22} {name:<28} {v:>14}\n");
        assert!(text.contains(&row("IP fragments", "IpReasmReqds", 2)), "{text}");
        assert!(text.contains(&row("", "IpFragCreates", 0)), "{text}");
        assert!(text.contains(&row("", "TcpExtSyncookiesSent", 3)), "{text}");
        assert!(!text.contains("TCP keepalive"), "{text}");
    }

    #[test]
    fn json_lists_the_neighbours_as_ip_neigh() {
        let mut r = report(Mib::default());
        r.neighbours = vec![crate::neighbour::NeighEntry {
            ip: std::net::Ipv4Addr::new(10, 77, 0, 1),
            lladdr: Some("02:00:00:00:00:01".into()),
            state: "STALE".into(),
        }];
        let j = r.to_json();
        assert_eq!(j["neighbours"][0]["ip"], "10.77.0.1");
        assert_eq!(j["neighbours"][0]["lladdr"], "02:00:00:00:00:01");
        assert_eq!(j["neighbours"][0]["state"], "STALE");
    }

    #[test]
    fn json_has_every_counter_by_name() {
        let j = report(Mib { UdpNoPorts: 3, ..Mib::default() }).to_json();
        assert_eq!(j["counters"]["UdpNoPorts"], 3);
        assert_eq!(j["counters"].as_object().unwrap().len(), MibCounter::ALL.len());
        assert_eq!(j["xdp_prog"]["redirect_ipv4"], 11);
        assert_eq!(j["xdp_statistics"]["rx_ring_full"], 5);
        assert_eq!(j["frames"]["total"], 10);
        assert_eq!(j["application"]["datagrams"], 4);
        assert_eq!(j["elapsed_s"], 2.0);
        for key in ["setup", "softirq", "rx_latency"] {
            assert!(j.get(key).is_some(), "{key}");
        }
        assert!(j.get("http").is_none());
    }

    #[test]
    fn a_line_per_stage_that_was_sampled_and_all_three_in_the_json() {
        let mut r = report(Mib::default());
        assert!(!r.render().contains("time per stage"), "nothing sampled, no block");
        let s = |count, p50_ns, max_ns| LatencySummary {
            count,
            p50_ns,
            p99_ns: max_ns,
            p999_ns: max_ns,
            max_ns,
            ..LatencySummary::default()
        };
        r.rx_latency = s(3, 1_500, 9_000);
        r.stage_latency =
            StageSummary { rx_to_read: r.rx_latency, send_to_tx: s(7, 2_000, 4_000), ..StageSummary::default() };
        let text = r.render();
        assert!(text.contains("\n  time per stage (sampled):\n"), "{text}");
        assert!(
            text.contains(
                "    rx ring to application read          3 sampled: p50 1.5 µs, p99 9.0, p99.9 9.0, max 9.0\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "    application send to tx ring          7 sampled: p50 2.0 µs, p99 4.0, p99.9 4.0, max 4.0\n"
            ),
            "{text}"
        );
        assert!(!text.contains("tx ring to completion"), "an empty stage gets no line: {text}");
        let j = r.to_json();
        assert_eq!(j["rx_latency"]["count"], 3, "the old key stays");
        assert_eq!(j["stage_latency"]["rx_to_read"]["count"], 3);
        assert_eq!(j["stage_latency"]["send_to_tx"]["p50_ns"], 2_000);
        assert_eq!(j["stage_latency"]["tx_to_completion"]["count"], 0);
    }

    #[test]
    fn the_guard_shows_its_passes_its_drops_and_its_rules_when_on() {
        use crate::xdp::guard::{GuardReasonCount, GuardRuleHits};
        let mut r = report(Mib::default());
        assert!(!r.render().contains("guard (XDP)"), "off: no guard lines");
        assert!(r.to_json().get("guard").is_none());
        let value = |s: GuardStat| match s {
            GuardStat::Pass => 40,
            GuardStat::DropBlock => 7,
            GuardStat::DropMalformedCsum => 2,
            _ => 0,
        };
        r.guard = Some(GuardCounters {
            enabled: true,
            reasons: GuardStat::ALL
                .iter()
                .map(|&s| GuardReasonCount { name: s.name().into(), value: value(s) })
                .collect(),
            rules: vec![GuardRuleHits { list: RuleList::Block, prefix: "203.0.113.0/24".parse().unwrap(), hits: 7 }],
        });
        r.xdp.guard_drop = 9;
        let text = r.render();
        let row = |stage: &str, name: &str, v: u64| format!("  {stage:<22} {name:<28} {v:>14}");
        assert!(text.contains(&format!("{}\n", row("", "guard_drop", 9))), "{text}");
        assert!(text.contains(&format!("{}\n", row("guard (XDP)", "XdpGuardPass", 40))), "{text}");
        assert!(text.contains(&format!("{}\n", row("", "XdpGuardPassAllowlist", 0))), "{text}");
        assert!(text.contains(&format!("{}  blocklisted source\n", row("", "XdpGuardDropBlocklist", 7))), "{text}");
        let csum = format!(
            "{}  IPv4 header checksum wrong (IpInHdrErrors and IpExtInCsumErrors",
            row("", "XdpGuardDropMalformedCsum", 2)
        );
        assert!(text.contains(&csum), "{text}");
        assert!(!text.contains("XdpGuardDropSyn"), "drops that did not happen are left out: {text}");
        assert!(text.contains(&format!("{}\n", row("", "block 203.0.113.0/24", 7))), "{text}");
        let j = r.to_json();
        assert_eq!(j["guard"]["reasons"][2]["name"], "XdpGuardDropBlocklist");
        assert_eq!(j["guard"]["rules"][0]["hits"], 7);
        assert_eq!(j["xdp_prog"]["guard_drop"], 9);
        assert!(j.get("guard_adaptive").is_none() && !text.contains("guard (adaptive)"));
        // The adaptive mode, when it ran.
        r.adaptive = Some(AdaptiveStats { tightens: 3, relaxes: 2, tightened: 1, busy_share_ppm: 0 });
        let text = r.render();
        let want = format!("{}  sources tightened", row("guard (adaptive)", "XdpGuardAdaptiveTightens", 3));
        assert!(text.contains(&want), "{text}");
        assert!(text.contains(&format!("{}\n", row("", "tightened at exit", 1))), "{text}");
        assert_eq!(r.to_json()["guard_adaptive"]["relaxes"], 2);
    }

    #[test]
    fn http_counts_by_status_in_the_table_and_the_json() {
        let mut r = report(Mib::default());
        let by_status = [(200, 7), (404, 2)].into_iter().collect();
        r.http = Some(HttpStats { connections: 3, requests: 9, by_status, bytes_sent: 1234, ..HttpStats::default() });
        let text = r.render();
        assert!(
            text.contains(
                "  http: 3 connections, 9 requests (7 × 200, 2 × 404), 1234 bytes sent, 0 idle timeouts, 0 errors\n"
            ),
            "{text}"
        );
        let j = r.to_json();
        assert_eq!(j["http"]["by_status"]["200"], 7);
        assert_eq!(j["http"]["by_status"]["404"], 2);
        assert_eq!(j["http"]["requests"], 9);
    }
}
