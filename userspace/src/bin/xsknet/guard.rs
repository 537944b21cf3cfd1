//! `xsknet guard`: the XDP guard of a running instance, looked at and
//! changed through its control endpoint; and the thread that runs the
//! guard's adaptive mode inside an instance (`xsknet::adaptive` decides,
//! this thread reads the loop's time, asks the XDP program for its top
//! talkers, applies the changes, logs and counts them).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use xsknet::adaptive::{Adaptive, AdaptiveConfig, AdaptiveShared, Change, LoopTime, TalkerCount};
use xsknet::control::{GuardView, Request};
use xsknet::publish::StatsReader;
use xsknet::xdp::guard::{
    ByteRate, Guard, GuardError, GuardPrefix, GuardProto, GuardRules, GuardStat, GuardUpdate, Rate, RuleList,
    SourceLimit,
};

use crate::inspect::{ask, Which};
use crate::BoxError;

/// `xsknet guard`'s options.
#[derive(Args, Clone, Debug)]
pub struct GuardArgs {
    #[command(flatten)]
    which: Which,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
    /// How many of the top talkers to list.
    #[arg(short = 'n', long, default_value_t = 10)]
    talkers: usize,
    #[command(subcommand)]
    command: Option<GuardCommand>,
}

/// What to do; without one, show the guard.
#[derive(Subcommand, Clone, Debug)]
enum GuardCommand {
    /// The rules in force, the counters by reason and by rule, the tightened sources and
    /// the top talkers (the default).
    Show,
    /// Turn the guard on with the rules in force.
    On,
    /// Turn it off: every frame that is ours goes to the softirq again.
    Off,
    /// Drop every frame from these sources (ADDR or ADDR/LEN).
    Block {
        #[arg(required = true, value_name = "PREFIX")]
        prefixes: Vec<GuardPrefix>,
    },
    /// Remove blocklist rules.
    Unblock {
        #[arg(required = true, value_name = "PREFIX")]
        prefixes: Vec<GuardPrefix>,
    },
    /// Never drop a frame from these sources: no limit, no check applies to them.
    Allow {
        #[arg(required = true, value_name = "PREFIX")]
        prefixes: Vec<GuardPrefix>,
    },
    /// Remove allowlist rules.
    Unallow {
        #[arg(required = true, value_name = "PREFIX")]
        prefixes: Vec<GuardPrefix>,
    },
    /// Set a rate limit: per source, SYNs per source, or all sources of one protocol
    /// together (--pps and/or --bytes-per-sec; --none removes it).
    Limit(LimitArgs),
    /// Drop malformed IPv4 in XDP (on), or leave it to the softirq to count (off).
    Malformed {
        #[arg(value_enum)]
        state: OnOff,
    },
    /// Put the rules of a rules file in force in place of all others (docs/guard.md).
    Load {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Limit one source to PPS packets a second on top of the other limits (what the
    /// adaptive mode does to a heavy talker).
    Tighten {
        addr: Ipv4Addr,
        #[arg(long)]
        pps: u64,
    },
    /// Lift a source's tightened limit.
    Relax { addr: Ipv4Addr },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum OnOff {
    On,
    Off,
}

/// Which limit `xsknet guard limit` sets.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LimitWhat {
    /// Each source address (packets and/or bytes a second).
    Source,
    /// TCP SYNs without ACK from each source.
    Syn,
    /// All UDP together.
    Udp,
    /// All TCP together.
    Tcp,
    /// All ICMP together.
    Icmp,
    /// All ARP together.
    Arp,
    /// All other IPv4 protocols together.
    Other,
}

#[derive(Args, Clone, Debug)]
struct LimitArgs {
    #[arg(value_enum)]
    what: LimitWhat,
    /// Packets a second.
    #[arg(long, conflicts_with = "none")]
    pps: Option<u64>,
    /// Packets at once (default: a tenth of a second's worth).
    #[arg(long, requires = "pps")]
    burst: Option<u64>,
    /// Bytes a second (whole frames; `source` only).
    #[arg(long, conflicts_with = "none")]
    bytes_per_sec: Option<u64>,
    /// Bytes at once (default: a tenth of a second's worth, at least 64 KiB).
    #[arg(long, requires = "bytes_per_sec")]
    burst_bytes: Option<u64>,
    /// Remove the limit.
    #[arg(long)]
    none: bool,
}

impl LimitArgs {
    fn update(&self) -> Result<GuardUpdate, BoxError> {
        let rate = match (self.pps, self.burst) {
            (Some(p), Some(b)) => Some(Rate::new(p, b)?),
            (Some(p), None) => Some(Rate::with_default_burst(p)?),
            _ => None,
        };
        let bytes = match (self.bytes_per_sec, self.burst_bytes) {
            (Some(b), Some(burst)) => Some(ByteRate::new(b, burst)?),
            (Some(b), None) => Some(ByteRate::with_default_burst(b)?),
            _ => None,
        };
        if !self.none && rate.is_none() && bytes.is_none() {
            return Err("say the limit: --pps N (and/or --bytes-per-sec N for source), or --none to remove it".into());
        }
        if bytes.is_some() && self.what != LimitWhat::Source {
            return Err("--bytes-per-sec is a per-source limit: use it with `limit source`".into());
        }
        let proto = |p| Ok(GuardUpdate::SetGlobal(p, rate));
        match self.what {
            LimitWhat::Source => {
                Ok(GuardUpdate::SetSourceLimit((!self.none).then_some(SourceLimit { packets: rate, bytes })))
            }
            LimitWhat::Syn => Ok(GuardUpdate::SetSynLimit(rate)),
            LimitWhat::Udp => proto(GuardProto::Udp),
            LimitWhat::Tcp => proto(GuardProto::Tcp),
            LimitWhat::Icmp => proto(GuardProto::Icmp),
            LimitWhat::Arp => proto(GuardProto::Arp),
            LimitWhat::Other => proto(GuardProto::Other),
        }
    }
}

impl GuardCommand {
    /// The changes to send, one request each.
    fn updates(&self) -> Result<Vec<GuardUpdate>, BoxError> {
        let each = |ps: &[GuardPrefix], f: fn(GuardPrefix) -> GuardUpdate| ps.iter().map(|&p| f(p)).collect();
        Ok(match self {
            GuardCommand::Show => vec![],
            GuardCommand::On => vec![GuardUpdate::Enable],
            GuardCommand::Off => vec![GuardUpdate::Disable],
            GuardCommand::Block { prefixes } => each(prefixes, GuardUpdate::Block),
            GuardCommand::Unblock { prefixes } => each(prefixes, GuardUpdate::Unblock),
            GuardCommand::Allow { prefixes } => each(prefixes, GuardUpdate::Allow),
            GuardCommand::Unallow { prefixes } => each(prefixes, GuardUpdate::Unallow),
            GuardCommand::Limit(l) => vec![l.update()?],
            GuardCommand::Malformed { state } => vec![GuardUpdate::SetDropMalformed(*state == OnOff::On)],
            GuardCommand::Load { file } => vec![GuardUpdate::Replace(Box::new(GuardRules::load(file)?))],
            GuardCommand::Tighten { addr, pps } => vec![GuardUpdate::Tighten { addr: *addr, pps: *pps }],
            GuardCommand::Relax { addr } => vec![GuardUpdate::Relax { addr: *addr }],
        })
    }
}

/// `xsknet guard …`.
///
/// # Errors
///
/// No instance, not root, an instance without a guard, or a change the guard
/// refuses (each says what to do).
pub fn guard(a: &GuardArgs) -> Result<(), BoxError> {
    let path = a.which.path().map_err(crate::inspect::needs_root)?;
    let mut updates = a.command.as_ref().map(GuardCommand::updates).transpose()?.unwrap_or_default();
    let talkers = Some(a.talkers);
    // `limit source` with one of packets and bytes keeps the other as it is.
    if let [GuardUpdate::SetSourceLimit(Some(new))] = &mut updates[..] {
        if new.packets.is_none() || new.bytes.is_none() {
            let now: GuardView = ask(&path, Request::Guard { update: None, talkers: Some(0) })?;
            if let Some(old) = now.rules.per_source {
                new.packets = new.packets.or(old.packets);
                new.bytes = new.bytes.or(old.bytes);
            }
        }
    }
    let mut view: Option<GuardView> = None;
    for (i, update) in updates.iter().enumerate() {
        match ask(&path, Request::Guard { update: Some(update.clone()), talkers }) {
            Ok(v) => view = Some(v),
            // Each change is a request of its own: say which went in before one failed.
            Err(e) if i > 0 => {
                let done: Vec<String> = updates[..i].iter().map(ToString::to_string).collect();
                return Err(format!("{e} (applied before it: {}; the rest not)", done.join(", ")).into());
            }
            Err(e) => return Err(e),
        }
        if !a.json {
            println!("guard: {update}");
        }
    }
    let view = match view {
        Some(v) => v,
        None => ask(&path, Request::Guard { update: None, talkers })?,
    };
    let on_off = matches!(updates[..], [GuardUpdate::Enable] | [GuardUpdate::Disable]);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else if updates.is_empty() {
        print_view(&view, a.talkers);
    } else if !on_off {
        println!("guard is {}", if view.counters.enabled { "on" } else { "off" });
    }
    Ok(())
}

fn print_view(v: &GuardView, asked: usize) {
    let r = &v.rules;
    println!("guard: {}", if v.counters.enabled { "on" } else { "off (rules kept; `xsknet guard on` applies them)" });
    let rate = |x: Option<Rate>| x.map_or("none".to_string(), |x| format!("{} pps, burst {}", x.pps, x.burst));
    println!("  drop malformed IPv4   {}", if r.drop_malformed { "yes" } else { "no (the softirq counts it)" });
    let src = r.per_source.map_or("none".to_string(), |l| {
        let mut s = rate(l.packets);
        if let Some(b) = l.bytes {
            s.push_str(&format!("; {} bytes/s, burst {}", b.bytes_per_sec, b.burst_bytes));
        }
        s
    });
    println!("  per source            {src}");
    println!("  SYN per source        {}", rate(r.syn_per_source));
    for p in GuardProto::ALL {
        if let Some(g) = r.global.get(p) {
            println!("  all {:<17} {}", p.name(), rate(Some(g)));
        }
    }
    match &r.adaptive {
        Some(c) => println!(
            "  adaptive              at {:.0} % busy for {:?}: heavy sources to {} pps; relaxed after {:?} under it",
            c.threshold * 100.0,
            c.hold,
            c.tighten_pps,
            c.relax_hold
        ),
        None => println!("  adaptive              off"),
    }
    println!();
    println!("  {:<8} {:<20} {:>14}", "list", "prefix", "hits");
    if v.counters.rules.is_empty() {
        println!("  (no allow or block rule)");
    }
    for h in &v.counters.rules {
        let list = match h.list {
            RuleList::Allow => "allow",
            RuleList::Block => "block",
        };
        println!("  {list:<8} {:<20} {:>14}", h.prefix.to_string(), h.hits);
    }
    println!();
    println!("  {:<32} {:>14}  meaning", "counter", "frames");
    for s in GuardStat::ALL {
        let n = v.counters.get(s);
        if n > 0 || !s.is_drop() {
            println!("  {:<32} {:>14}  {}", s.name(), n, s.meaning());
        }
    }
    println!("  {:<32} {:>14}  every drop reason together", "dropped", v.counters.dropped());
    if let Some(a) = v.adaptive {
        println!(
            "\n  adaptive: {} tightened now; {} tightenings, {} relaxations so far; softirq {:.1} % busy",
            a.tightened,
            a.tightens,
            a.relaxes,
            a.busy_share_ppm as f64 / 1e4
        );
    }
    if !v.tightened.is_empty() {
        println!("\n  {:<16} {:>12}", "tightened", "limit pps");
        for (addr, pps) in &v.tightened {
            println!("  {:<16} {pps:>12}", addr.to_string());
        }
    }
    println!("\n  {:<16} {:>14} {:>16}  (counted in XDP since each entry was made)", "top talkers", "frames", "bytes");
    if v.talkers.is_empty() && asked > 0 {
        println!("  (none: the guard counts sources only while it is on, allowlisted ones not at all)");
    }
    for t in &v.talkers {
        let tight = t.tightened_pps.map_or(String::new(), |p| format!("  tightened to {p} pps"));
        println!("  {:<16} {:>14} {:>16}{tight}", t.addr.to_string(), t.packets, t.bytes);
    }
}

/// How often the adaptive thread looks.
const ADAPTIVE_STEP: Duration = Duration::from_millis(100);

/// The top talkers the adaptive thread reads: enough to find every source
/// with at least `min_share` of the frames, and the tightened ones.
const ADAPTIVE_TALKERS: usize = 256;

/// The thread that runs the guard's adaptive mode. It runs as long as the
/// guard does, and follows the `[adaptive]` section of the rules in force:
/// a rules file loaded at run time (`xsknet guard load`) turns the mode on,
/// off (relaxing what it tightened) or changes its settings.
pub struct AdaptiveThread {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    shared: AdaptiveShared,
}

impl AdaptiveThread {
    /// Starts it: every 100 ms it reads the loop's busy and total time from
    /// the statistics page and, when the policy asks, the top talkers; it
    /// applies the policy's changes to the guard and logs each one.
    ///
    /// # Errors
    ///
    /// The thread could not be spawned.
    pub fn spawn(guard: Guard, stats: StatsReader) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = AdaptiveShared::default();
        let (s, sh) = (stop.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("xsknet-adaptive".into())
            .spawn(move || run_adaptive(&guard, &stats, &s, &sh))?;
        Ok(Self { stop, thread, shared })
    }

    /// Its figures, for the control endpoint and the exit report.
    pub fn shared(&self) -> AdaptiveShared {
        self.shared.clone()
    }

    /// Stops it and relaxes nothing (the program goes with the process).
    pub fn stop(self) -> xsknet::adaptive::AdaptiveStats {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.shared.load()
    }
}

/// Applies the policy's changes to the guard, logs them, and takes back a
/// tightening the guard refused.
fn apply_changes(guard: &Guard, policy: &mut Adaptive, changes: Vec<Change>, why_relaxed: &str) {
    for change in changes {
        let (update, line) = match change {
            Change::Tighten { addr, pps, seen_pps, busy_share } => (
                GuardUpdate::Tighten { addr, pps },
                format!(
                    "tightened {addr} to {pps} pps: it sent {seen_pps:.0} pps while the softirq was {:.0} % busy",
                    busy_share * 100.0
                ),
            ),
            Change::Relax { addr, after } => (
                GuardUpdate::Relax { addr },
                format!("relaxed {addr} after {:.1} s: {why_relaxed}", after.as_secs_f64()),
            ),
        };
        match guard.apply(&update) {
            Ok(()) => eprintln!("xsknet: guard: adaptive: {line}"),
            // Relaxed by hand in the meantime: nothing left to do.
            Err(GuardError::NotTightened { .. }) => {}
            Err(e) => {
                eprintln!("xsknet: guard: adaptive: could not apply `{update}`: {e}");
                if let GuardUpdate::Tighten { addr, .. } = update {
                    policy.forget(addr);
                }
            }
        }
    }
}

fn run_adaptive(guard: &Guard, stats: &StatsReader, stop: &AtomicBool, shared: &AdaptiveShared) {
    let mut in_force: Option<AdaptiveConfig> = None;
    let mut policy = Adaptive::new(AdaptiveConfig::default());
    let mut warned = false;
    while !stop.load(Ordering::Relaxed) {
        // Follow the rules in force: `xsknet guard load` may have changed them.
        let want = guard.rules().adaptive;
        if want != in_force {
            match want {
                Some(cfg) => {
                    if in_force.is_none() {
                        policy = Adaptive::new(cfg);
                        eprintln!("xsknet: guard: adaptive: on, at {:.0} % busy", cfg.threshold * 100.0);
                    } else {
                        policy.reconfigure(cfg);
                        eprintln!("xsknet: guard: adaptive: new settings, at {:.0} % busy", cfg.threshold * 100.0);
                    }
                }
                None => {
                    let changes = policy.release_all(Instant::now());
                    apply_changes(guard, &mut policy, changes, "the adaptive mode was turned off");
                    eprintln!("xsknet: guard: adaptive: off");
                }
            }
            in_force = want;
            shared.store(&policy.stats());
        }
        std::thread::sleep(ADAPTIVE_STEP);
        if in_force.is_none() {
            continue;
        }
        let Ok(p) = stats.read() else { continue };
        let time = LoopTime { busy_ns: p.softirq.busy_ns, total_ns: p.softirq.total_ns };
        // Sources relaxed by hand (`xsknet guard relax`) are no longer ours.
        if policy.stats().tightened > 0 {
            let now_tight = guard.tightened();
            policy.retain_tightened(|a| now_tight.contains_key(&a));
        }
        let talkers = if policy.wants_talkers() {
            match guard.talkers(ADAPTIVE_TALKERS) {
                Ok(t) => Some(t.iter().map(|t| TalkerCount { addr: t.addr, pkts: t.packets }).collect::<Vec<_>>()),
                Err(e) => {
                    if !warned {
                        log::warn!("guard: adaptive mode cannot read the top talkers: {e}");
                        warned = true;
                    }
                    None
                }
            }
        } else {
            None
        };
        let changes = policy.step(Instant::now(), time, talkers.as_deref());
        apply_changes(guard, &mut policy, changes, "it has stayed under its limit");
        shared.store(&policy.stats());
    }
}
