//! The guard: the hard-IRQ stage's defence against floods, and its rules.
//!
//! Linux drops a flood in its softirq, after the parse it was meant to spare:
//! operators answer it by dropping in XDP, before the packet costs a copy
//! (Cloudflare's L4Drop, Facebook's Katran). The guard is that stage for
//! xsknet, in `xdp-prog/xsknet.bpf.c`, off by default (`XSKNET_F_GUARD`):
//! for each frame that is ours, before it is redirected into the AF_XDP
//! socket, the allowlist (an allowlisted source is never dropped), the
//! blocklist, `ip_rcv_core()`'s header checks (`net/ipv4/ip_input.c`),
//! a tightened limit for sources user space singles out, the per-source
//! packet, byte and SYN buckets, and a global bucket per protocol.
//!
//! This module owns the guard's maps from user space: [`GuardRules`] (what a
//! rules file says, in TOML), [`Guard`] (a handle any thread may use to change
//! rules at run time, read counters per reason and per rule, and read the top
//! talkers), and the mirrors of the C enums.
//!
//! Kernel documentation: [LPM trie](https://docs.kernel.org/bpf/map_lpm_trie.html),
//! [LRU hash](https://docs.kernel.org/bpf/map_hash.html),
//! [batch lookups](https://docs.kernel.org/bpf/map_hash.html#bpf-map-lookup-batch).

use std::{
    collections::BTreeMap,
    fmt,
    net::Ipv4Addr,
    path::Path,
    str::FromStr,
    sync::{Arc, Mutex, MutexGuard},
};

use aya::{
    maps::{lpm_trie::Key, Array, HashMap, LpmTrie, Map, MapData, MapError, PerCpuArray, PerCpuValues},
    Ebpf,
};
use serde::{Deserialize, Serialize};

use crate::adaptive::AdaptiveConfig;

use super::{
    bpf,
    object::{
        set_config, BucketCfg, GuardConfigRaw, HeavyTable, SourceRaw, XsknetConfig, CONFIG_MAP, GUARD_ALLOW_MAP,
        GUARD_BLOCK_MAP, GUARD_CONFIG_MAP, GUARD_F_DROP_MALFORMED, GUARD_F_TIGHT, GUARD_HEAVY_MAP, GUARD_MAX_RULES,
        GUARD_MAX_TIGHT, GUARD_RULE_HITS_MAP, GUARD_SOURCES_MAP, GUARD_STATS_MAP, GUARD_TIGHT_MAP, XSKNET_F_DROP,
        XSKNET_F_GUARD,
    },
    XdpError,
};

/// The largest burst a bucket takes (tokens: packets or bytes). The program
/// keeps nano-tokens in a `u64`: 1e9 × 1e9 leaves room for a refill.
pub const MAX_BURST: u64 = 1_000_000_000;
/// The largest rate a bucket takes (tokens per second).
pub const MAX_RATE: u64 = 1_000_000_000_000;

// ---- prefixes --------------------------------------------------------------

/// An IPv4 source prefix, `ADDR/LEN` (`203.0.113.0/24`) or `ADDR` (a /32),
/// with no host bits set past `LEN`, as `ip route` insists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GuardPrefix {
    addr: Ipv4Addr,
    len: u8,
}

impl GuardPrefix {
    /// `addr/len`.
    ///
    /// # Errors
    /// A [`RuleError`] for `len` over 32 or host bits set past `len`.
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<GuardPrefix, RuleError> {
        if len > 32 {
            return Err(RuleError(format!("{addr}/{len}: the prefix length must be 0 to 32")));
        }
        let masked = Ipv4Addr::from(u32::from(addr) & mask(len));
        if masked != addr {
            return Err(RuleError(format!("{addr}/{len}: host bits set past /{len} (did you mean {masked}/{len}?)")));
        }
        Ok(GuardPrefix { addr, len })
    }

    /// One address, a /32.
    pub fn host(addr: Ipv4Addr) -> GuardPrefix {
        GuardPrefix { addr, len: 32 }
    }

    /// The network address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length, 0 to 32.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `addr` is inside the prefix.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.len) == u32::from(self.addr)
    }

    fn key(&self) -> Key<u32> {
        // The octets in memory order are network byte order, as the program reads them.
        Key::new(u32::from(self.len), u32::from_ne_bytes(self.addr.octets()))
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

impl fmt::Display for GuardPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for GuardPrefix {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<GuardPrefix, RuleError> {
        let (a, l) = s.split_once('/').unwrap_or((s, "32"));
        let addr: Ipv4Addr = a
            .trim()
            .parse()
            .map_err(|_| RuleError(format!("'{s}': not an IPv4 prefix (ADDR/LEN or ADDR, e.g. 203.0.113.0/24)")))?;
        let len: u8 =
            l.trim().parse().map_err(|_| RuleError(format!("'{s}': the prefix length must be a number, 0 to 32")))?;
        GuardPrefix::new(addr, len)
    }
}

impl Serialize for GuardPrefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GuardPrefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<GuardPrefix, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

// ---- rules -----------------------------------------------------------------

/// A rule that cannot be: a bad prefix, a zero or too large rate or burst.
/// The message says what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

/// A token bucket: `pps` packets a second, at most `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RateFile")]
pub struct Rate {
    /// Packets per second, 1 to [`MAX_RATE`].
    pub pps: u64,
    /// Packets a full bucket holds, 1 to [`MAX_BURST`]: what may arrive at once.
    pub burst: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateFile {
    pps: u64,
    burst: Option<u64>,
}

impl TryFrom<RateFile> for Rate {
    type Error = RuleError;

    fn try_from(r: RateFile) -> Result<Rate, RuleError> {
        Rate::new(r.pps, r.burst.unwrap_or_else(|| default_burst(r.pps)))
    }
}

/// A tenth of a second's worth, at least 1: what a rule without `burst` gets.
fn default_burst(rate: u64) -> u64 {
    (rate / 10).clamp(1, MAX_BURST)
}

fn check_bucket(what: &str, rate: u64, burst: u64) -> Result<(), RuleError> {
    if rate == 0 || rate > MAX_RATE {
        return Err(RuleError(format!("{what}: the rate must be 1 to {MAX_RATE} a second, not {rate}")));
    }
    if burst == 0 || burst > MAX_BURST {
        return Err(RuleError(format!("{what}: burst must be 1 to {MAX_BURST}, not {burst}")));
    }
    Ok(())
}

impl Rate {
    /// `pps` packets a second, `burst` at once.
    ///
    /// # Errors
    /// A [`RuleError`] when either is 0 or past [`MAX_RATE`] / [`MAX_BURST`].
    pub fn new(pps: u64, burst: u64) -> Result<Rate, RuleError> {
        check_bucket("pps", pps, burst)?;
        Ok(Rate { pps, burst })
    }

    fn bucket(rate: Option<Rate>) -> BucketCfg {
        rate.map_or_else(BucketCfg::default, |r| BucketCfg::new(r.pps, r.burst))
    }
}

/// The per-source limits: a packet bucket, a byte bucket, or both, for each
/// source address (IPv4 `saddr`, ARP `ar_sip`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SourceLimitFile", into = "SourceLimitFile")]
pub struct SourceLimit {
    /// Packets per second and burst (packets).
    pub packets: Option<Rate>,
    /// Bytes per second (whole frames, Ethernet header included) and burst
    /// (bytes, at least one full frame: 1514).
    pub bytes: Option<ByteRate>,
}

/// A byte bucket: `bytes_per_sec` bytes a second, at most `burst_bytes` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRate {
    /// Bytes per second (not bits).
    pub bytes_per_sec: u64,
    /// Bytes a full bucket holds.
    pub burst_bytes: u64,
}

impl ByteRate {
    /// `bytes_per_sec` bytes a second, `burst_bytes` at once.
    ///
    /// # Errors
    /// A [`RuleError`] when either is 0 or too large, or the burst is
    /// smaller than a full Ethernet frame (1514 bytes: such a frame could
    /// never pass).
    pub fn new(bytes_per_sec: u64, burst_bytes: u64) -> Result<ByteRate, RuleError> {
        check_bucket("bytes_per_sec", bytes_per_sec, burst_bytes)?;
        if burst_bytes < 1514 {
            return Err(RuleError(format!(
                "burst_bytes {burst_bytes}: less than a full Ethernet frame (1514 bytes), which could never pass"
            )));
        }
        Ok(ByteRate { bytes_per_sec, burst_bytes })
    }
}

/// The rules file's `[per_source]` table.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceLimitFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pps: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    burst: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_per_sec: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    burst_bytes: Option<u64>,
}

impl From<SourceLimit> for SourceLimitFile {
    fn from(l: SourceLimit) -> SourceLimitFile {
        SourceLimitFile {
            pps: l.packets.map(|r| r.pps),
            burst: l.packets.map(|r| r.burst),
            bytes_per_sec: l.bytes.map(|b| b.bytes_per_sec),
            burst_bytes: l.bytes.map(|b| b.burst_bytes),
        }
    }
}

impl TryFrom<SourceLimitFile> for SourceLimit {
    type Error = RuleError;

    fn try_from(f: SourceLimitFile) -> Result<SourceLimit, RuleError> {
        let packets = match (f.pps, f.burst) {
            (Some(pps), burst) => Some(Rate::new(pps, burst.unwrap_or_else(|| default_burst(pps)))?),
            (None, Some(_)) => return Err(RuleError("burst without pps: say how many packets a second".into())),
            (None, None) => None,
        };
        let bytes = match (f.bytes_per_sec, f.burst_bytes) {
            (Some(b), burst) => Some(ByteRate::new(b, burst.unwrap_or_else(|| default_burst(b).max(65_536)))?),
            (None, Some(_)) => {
                return Err(RuleError("burst_bytes without bytes_per_sec: say how many bytes a second".into()))
            }
            (None, None) => None,
        };
        if packets.is_none() && bytes.is_none() {
            return Err(RuleError(
                "[per_source] needs pps, bytes_per_sec or both (leave the table out for none)".into(),
            ));
        }
        Ok(SourceLimit { packets, bytes })
    }
}

/// The protocols with a global limit (`enum xsknet_guard_proto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GuardProto {
    /// IPv4 protocol 17.
    Udp = 0,
    /// IPv4 protocol 6.
    Tcp = 1,
    /// IPv4 protocol 1.
    Icmp = 2,
    /// ARP (ethertype 0x0806) asking for our address.
    Arp = 3,
    /// Any other IPv4 protocol.
    Other = 4,
}

impl GuardProto {
    /// Every protocol, in the enum's order.
    pub const ALL: [GuardProto; 5] = [Self::Udp, Self::Tcp, Self::Icmp, Self::Arp, Self::Other];

    /// The name, as the rules file spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Icmp => "icmp",
            Self::Arp => "arp",
            Self::Other => "other",
        }
    }

    /// The C enumerator's name, for the header drift test.
    #[cfg(test)]
    fn c_name(self) -> &'static str {
        match self {
            Self::Udp => "XSKNET_GUARD_PROTO_UDP",
            Self::Tcp => "XSKNET_GUARD_PROTO_TCP",
            Self::Icmp => "XSKNET_GUARD_PROTO_ICMP",
            Self::Arp => "XSKNET_GUARD_PROTO_ARP",
            Self::Other => "XSKNET_GUARD_PROTO_OTHER",
        }
    }
}

/// The global limits, one packet bucket per protocol for all sources together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalLimits {
    /// UDP.
    pub udp: Option<Rate>,
    /// TCP.
    pub tcp: Option<Rate>,
    /// ICMP.
    pub icmp: Option<Rate>,
    /// ARP.
    pub arp: Option<Rate>,
    /// Other IPv4 protocols.
    pub other: Option<Rate>,
}

impl GlobalLimits {
    /// The limit of `proto`.
    pub fn get(&self, proto: GuardProto) -> Option<Rate> {
        match proto {
            GuardProto::Udp => self.udp,
            GuardProto::Tcp => self.tcp,
            GuardProto::Icmp => self.icmp,
            GuardProto::Arp => self.arp,
            GuardProto::Other => self.other,
        }
    }

    /// Sets the limit of `proto`.
    pub fn set(&mut self, proto: GuardProto, rate: Option<Rate>) {
        *match proto {
            GuardProto::Udp => &mut self.udp,
            GuardProto::Tcp => &mut self.tcp,
            GuardProto::Icmp => &mut self.icmp,
            GuardProto::Arp => &mut self.arp,
            GuardProto::Other => &mut self.other,
        } = rate;
    }
}

/// Every rule of the guard, as a rules file (TOML) writes them:
///
/// ```toml
/// drop_malformed = true
/// allow = ["10.77.0.1"]                 # never dropped by the guard
/// block = ["203.0.113.0/24"]
///
/// [per_source]                          # each source address
/// pps = 50000                           # packets a second
/// burst = 5000                          # packets at once (default: pps / 10)
/// bytes_per_sec = 12500000              # optional: bytes a second
/// burst_bytes = 1250000                 # bytes at once (default: max(bytes_per_sec / 10, 65536))
///
/// [syn_per_source]                      # TCP SYN without ACK, each source
/// pps = 100
/// burst = 200
///
/// [global]                              # all sources together, per protocol
/// udp = { pps = 1000000, burst = 100000 }
/// icmp = { pps = 1000 }
///
/// [adaptive]                            # for the adaptive controller
/// threshold = 0.5                       # (crate::adaptive::AdaptiveConfig)
/// tighten_pps = 100
/// hold_secs = 1
/// ```
///
/// Every key is optional; an empty file is no rule at all.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardRules {
    /// Drop malformed IPv4 at XDP (`ip_rcv_core()`'s checks).
    pub drop_malformed: bool,
    /// Sources the guard never drops (checked first).
    pub allow: Vec<GuardPrefix>,
    /// Sources the guard drops.
    pub block: Vec<GuardPrefix>,
    /// Limits per source address.
    pub per_source: Option<SourceLimit>,
    /// SYNs (without ACK) per source address.
    pub syn_per_source: Option<Rate>,
    /// Limits per protocol, all sources together.
    pub global: GlobalLimits,
    /// The adaptive controller's settings ([`crate::adaptive`]): carried, not
    /// read by the program.
    pub adaptive: Option<AdaptiveConfig>,
}

/// A rules file that could not be read or parsed: the message names the file,
/// and the line and column to fix.
#[derive(Debug, thiserror::Error)]
pub enum RulesFileError {
    /// Reading the file failed.
    #[error("reading guard rules {path}: {source}")]
    Read {
        /// The file.
        path: String,
        #[source]
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid rules.
    #[error("guard rules {path}: {detail}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong and where ("line 3, column 7"), with the line quoted.
        detail: String,
    },
}

impl GuardRules {
    /// What `--guard` alone turns on (docs/guard.md gives the reasoning):
    /// malformed IPv4 dropped; each source at most 50 000 packets a second
    /// with a burst of 5 000 (four times a fast UDP ping-pong client, and a
    /// 600 Mbit/s stream of full frames), no byte limit; 100 SYNs a second per
    /// source with a burst of 200; the adaptive mode with its defaults
    /// ([`AdaptiveConfig::default`]: heavy sources tightened to 100 packets a
    /// second after a second of the softirq 50 % busy); no global limit, no
    /// list.
    pub fn default_policy() -> GuardRules {
        GuardRules {
            drop_malformed: true,
            per_source: Some(SourceLimit { packets: Some(Rate { pps: 50_000, burst: 5_000 }), bytes: None }),
            syn_per_source: Some(Rate { pps: 100, burst: 200 }),
            adaptive: Some(AdaptiveConfig::default()),
            ..GuardRules::default()
        }
    }

    /// Parses a rules file's text; `origin` names it in errors.
    ///
    /// # Errors
    /// [`RulesFileError::Parse`], with the line and column and what to fix.
    pub fn from_toml(text: &str, origin: &str) -> Result<GuardRules, RulesFileError> {
        let rules: GuardRules = toml::from_str(text)
            .map_err(|e| RulesFileError::Parse { path: origin.to_owned(), detail: e.to_string().trim().to_owned() })?;
        rules.check().map_err(|e| RulesFileError::Parse { path: origin.to_owned(), detail: e.0 })?;
        Ok(rules)
    }

    /// Reads and parses a rules file.
    ///
    /// # Errors
    /// [`RulesFileError::Read`] or [`RulesFileError::Parse`].
    pub fn load(path: &Path) -> Result<GuardRules, RulesFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| RulesFileError::Read { path: path.display().to_string(), source })?;
        GuardRules::from_toml(&text, &path.display().to_string())
    }

    /// The rules as a rules file would write them.
    ///
    /// # Errors
    /// A [`RuleError`] with the serializer's message (none is expected: every
    /// field has a TOML form).
    pub fn to_toml(&self) -> Result<String, RuleError> {
        toml::to_string(self).map_err(|e| RuleError(format!("writing the rules as TOML: {e}")))
    }

    /// What no single value can say: the lists fit in the program's maps,
    /// the adaptive settings make sense.
    ///
    /// # Errors
    /// A [`RuleError`] saying what to fix.
    pub fn check(&self) -> Result<(), RuleError> {
        let n = self.allow.len() + self.block.len();
        if n > GUARD_MAX_RULES as usize {
            return Err(RuleError(format!(
                "{n} allow and block rules: at most {GUARD_MAX_RULES} together (aggregate prefixes)"
            )));
        }
        for (name, list) in [("allow", &self.allow), ("block", &self.block)] {
            let mut seen = std::collections::BTreeSet::new();
            if let Some(p) = list.iter().find(|p| !seen.insert(**p)) {
                return Err(RuleError(format!("{p} is in {name} twice: list each prefix once")));
            }
        }
        if let Some(a) = &self.adaptive {
            a.validate().map_err(RuleError)?;
            if a.tighten_pps > MAX_RATE {
                return Err(RuleError(format!(
                    "[adaptive] tighten_pps {}: at most {MAX_RATE} a second",
                    a.tighten_pps
                )));
            }
        }
        Ok(())
    }

    fn raw(&self, tight: bool) -> GuardConfigRaw {
        let packets = self.per_source.and_then(|s| s.packets);
        let bytes = self.per_source.and_then(|s| s.bytes);
        let mut global = [BucketCfg::default(); 5];
        for p in GuardProto::ALL {
            global[p as usize] = Rate::bucket(self.global.get(p));
        }
        GuardConfigRaw {
            flags: if self.drop_malformed { GUARD_F_DROP_MALFORMED } else { 0 } | if tight { GUARD_F_TIGHT } else { 0 },
            pad: 0,
            src_pps: Rate::bucket(packets),
            src_bytes: bytes.map_or_else(BucketCfg::default, |b| BucketCfg::new(b.bytes_per_sec, b.burst_bytes)),
            src_syn: Rate::bucket(self.syn_per_source),
            global,
        }
    }
}

// ---- updates ---------------------------------------------------------------

/// A change to the guard at run time ([`Guard::apply`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum GuardUpdate {
    /// Turn the guard on (`XSKNET_F_GUARD`) with the rules in force.
    Enable,
    /// Turn it off: the program goes back to redirecting every frame that is ours.
    Disable,
    /// Add a blocklist rule (no change if it is there).
    Block(GuardPrefix),
    /// Remove a blocklist rule.
    Unblock(GuardPrefix),
    /// Add an allowlist rule (no change if it is there).
    Allow(GuardPrefix),
    /// Remove an allowlist rule.
    Unallow(GuardPrefix),
    /// Set (or, with `None`, clear) the per-source limits.
    SetSourceLimit(Option<SourceLimit>),
    /// Set (or clear) the per-source SYN limit.
    SetSynLimit(Option<Rate>),
    /// Set (or clear) a protocol's global limit.
    SetGlobal(GuardProto, Option<Rate>),
    /// Drop malformed IPv4, or leave it to the softirq.
    SetDropMalformed(bool),
    /// Put these rules in force in place of all others (tightened sources stay).
    Replace(Box<GuardRules>),
    /// Limit `addr` to `pps` packets a second (a burst of one second's worth),
    /// on top of the other limits: the adaptive mode's tool.
    Tighten {
        /// The source.
        addr: Ipv4Addr,
        /// Packets per second, at least 1.
        pps: u64,
    },
    /// Lift the tightened limit of `addr`.
    Relax {
        /// The source.
        addr: Ipv4Addr,
    },
}

impl fmt::Display for GuardUpdate {
    /// As `xsknet guard` spells the change: `block 10.66.0.0/16`,
    /// `tighten 10.66.0.1 to 100 pps`, `off`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = |r: &Option<Rate>| r.map_or("none".to_string(), |r| format!("{} pps, burst {}", r.pps, r.burst));
        match self {
            GuardUpdate::Enable => write!(f, "on"),
            GuardUpdate::Disable => write!(f, "off"),
            GuardUpdate::Block(p) => write!(f, "block {p}"),
            GuardUpdate::Unblock(p) => write!(f, "unblock {p}"),
            GuardUpdate::Allow(p) => write!(f, "allow {p}"),
            GuardUpdate::Unallow(p) => write!(f, "unallow {p}"),
            GuardUpdate::SetSourceLimit(None) => write!(f, "per-source limit none"),
            GuardUpdate::SetSourceLimit(Some(l)) => {
                write!(f, "per-source limit {}", rate(&l.packets))?;
                match l.bytes {
                    Some(b) => write!(f, "; {} bytes/s, burst {}", b.bytes_per_sec, b.burst_bytes),
                    None => Ok(()),
                }
            }
            GuardUpdate::SetSynLimit(r) => write!(f, "per-source SYN limit {}", rate(r)),
            GuardUpdate::SetGlobal(p, r) => write!(f, "global {} limit {}", p.name(), rate(r)),
            GuardUpdate::SetDropMalformed(on) => write!(f, "drop malformed {}", if *on { "on" } else { "off" }),
            GuardUpdate::Replace(r) => write!(
                f,
                "load rules ({} allow, {} block{})",
                r.allow.len(),
                r.block.len(),
                if r.adaptive.is_some() { ", adaptive" } else { "" }
            ),
            GuardUpdate::Tighten { addr, pps } => write!(f, "tighten {addr} to {pps} pps"),
            GuardUpdate::Relax { addr } => write!(f, "relax {addr}"),
        }
    }
}

impl Rate {
    /// `pps` packets a second with the rules file's default burst: a tenth
    /// of a second's worth, at least 1 (what `xsknet guard limit` uses
    /// without `--burst`).
    ///
    /// # Errors
    /// As [`Rate::new`].
    pub fn with_default_burst(pps: u64) -> Result<Rate, RuleError> {
        Rate::new(pps, default_burst(pps))
    }
}

impl ByteRate {
    /// `bytes_per_sec` with the rules file's default burst: a tenth of a
    /// second's worth, at least 64 KiB.
    ///
    /// # Errors
    /// As [`ByteRate::new`].
    pub fn with_default_burst(bytes_per_sec: u64) -> Result<ByteRate, RuleError> {
        ByteRate::new(bytes_per_sec, default_burst(bytes_per_sec).max(65_536))
    }
}

/// Why [`Guard::apply`] failed. Nothing changed when it fails, except for a
/// [`GuardUpdate::Replace`] that failed at a map, which may leave part of the
/// new lists in.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// A value the guard cannot take.
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// Every rule slot is taken.
    #[error("the guard holds {max} allow and block rules already: remove one, or aggregate prefixes")]
    RulesFull {
        /// `XSKNET_GUARD_MAX_RULES`.
        max: u32,
    },
    /// No such rule to remove.
    #[error("{prefix} is not in the {list}")]
    NoSuchRule {
        /// "allowlist" or "blocklist".
        list: &'static str,
        /// The prefix asked for.
        prefix: GuardPrefix,
    },
    /// Too many sources tightened at once.
    #[error("{max} sources are tightened already: relax one first")]
    TightFull {
        /// `XSKNET_GUARD_MAX_TIGHT`.
        max: u32,
    },
    /// The source is not tightened.
    #[error("{addr} is not tightened")]
    NotTightened {
        /// The source asked for.
        addr: Ipv4Addr,
    },
    /// A map could not be read or written.
    #[error(transparent)]
    Xdp(#[from] XdpError),
}

// ---- counters --------------------------------------------------------------

/// Mirror of `enum xsknet_guard_stat`: what the guard did with a frame. Each
/// frame the guard looks at is counted in exactly one.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GuardStat {
    /// Passed every check.
    Pass = 0,
    /// Allowlisted: passed with no check.
    PassAllow,
    /// Blocklisted source.
    DropBlock,
    /// IPv4 version is not 4.
    DropMalformedVersion,
    /// IPv4 IHL under 5.
    DropMalformedIhl,
    /// IPv4 header longer than the frame.
    DropMalformedHdrLen,
    /// IPv4 header checksum wrong.
    DropMalformedCsum,
    /// IPv4 total length past the frame.
    DropMalformedTruncated,
    /// IPv4 total length shorter than the header.
    DropMalformedTotLen,
    /// Over the source's tightened limit.
    DropTight,
    /// Over the per-source packet rate.
    DropSourcePps,
    /// Over the per-source byte rate.
    DropSourceBytes,
    /// Over the per-source SYN rate.
    DropSyn,
    /// Over the global UDP rate.
    DropGlobalUdp,
    /// Over the global TCP rate.
    DropGlobalTcp,
    /// Over the global ICMP rate.
    DropGlobalIcmp,
    /// Over the global ARP rate.
    DropGlobalArp,
    /// Over the global rate of other IPv4 protocols.
    DropGlobalOther,
}

impl GuardStat {
    /// Every counter, in the C enum's order.
    pub const ALL: [GuardStat; 18] = [
        Self::Pass,
        Self::PassAllow,
        Self::DropBlock,
        Self::DropMalformedVersion,
        Self::DropMalformedIhl,
        Self::DropMalformedHdrLen,
        Self::DropMalformedCsum,
        Self::DropMalformedTruncated,
        Self::DropMalformedTotLen,
        Self::DropTight,
        Self::DropSourcePps,
        Self::DropSourceBytes,
        Self::DropSyn,
        Self::DropGlobalUdp,
        Self::DropGlobalTcp,
        Self::DropGlobalIcmp,
        Self::DropGlobalArp,
        Self::DropGlobalOther,
    ];

    /// The counter's name, as `xsknet stat` prints it (after the `XdpProg…` names).
    pub fn name(self) -> &'static str {
        match self {
            Self::Pass => "XdpGuardPass",
            Self::PassAllow => "XdpGuardPassAllowlist",
            Self::DropBlock => "XdpGuardDropBlocklist",
            Self::DropMalformedVersion => "XdpGuardDropMalformedVersion",
            Self::DropMalformedIhl => "XdpGuardDropMalformedIhl",
            Self::DropMalformedHdrLen => "XdpGuardDropMalformedHdrLen",
            Self::DropMalformedCsum => "XdpGuardDropMalformedCsum",
            Self::DropMalformedTruncated => "XdpGuardDropMalformedTruncated",
            Self::DropMalformedTotLen => "XdpGuardDropMalformedTotLen",
            Self::DropTight => "XdpGuardDropTightened",
            Self::DropSourcePps => "XdpGuardDropSourcePps",
            Self::DropSourceBytes => "XdpGuardDropSourceBytes",
            Self::DropSyn => "XdpGuardDropSynRate",
            Self::DropGlobalUdp => "XdpGuardDropGlobalUdp",
            Self::DropGlobalTcp => "XdpGuardDropGlobalTcp",
            Self::DropGlobalIcmp => "XdpGuardDropGlobalIcmp",
            Self::DropGlobalArp => "XdpGuardDropGlobalArp",
            Self::DropGlobalOther => "XdpGuardDropGlobalOther",
        }
    }

    /// What the counter counts, in a few words; for the drops, the softirq
    /// counter that would have counted the frame without the guard.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::Pass => "passed every check of the guard",
            Self::PassAllow => "allowlisted source: passed with no check",
            Self::DropBlock => "blocklisted source",
            Self::DropMalformedVersion => "IPv4 version not 4 (IpInHdrErrors without the guard)",
            Self::DropMalformedIhl => "IPv4 IHL under 5 (IpInHdrErrors without the guard)",
            Self::DropMalformedHdrLen => "IPv4 header longer than the frame (IpInHdrErrors without the guard)",
            Self::DropMalformedCsum => {
                "IPv4 header checksum wrong (IpInHdrErrors and IpExtInCsumErrors without the guard)"
            }
            Self::DropMalformedTruncated => "IPv4 total length past the frame (IpExtInTruncatedPkts without the guard)",
            Self::DropMalformedTotLen => "IPv4 total length under the header (IpInHdrErrors without the guard)",
            Self::DropTight => "over the source's tightened packet rate",
            Self::DropSourcePps => "over the per-source packet rate",
            Self::DropSourceBytes => "over the per-source byte rate",
            Self::DropSyn => "over the per-source SYN rate",
            Self::DropGlobalUdp => "over the global UDP packet rate",
            Self::DropGlobalTcp => "over the global TCP packet rate",
            Self::DropGlobalIcmp => "over the global ICMP packet rate",
            Self::DropGlobalArp => "over the global ARP packet rate",
            Self::DropGlobalOther => "over the global packet rate of other IPv4",
        }
    }

    /// Whether the frame was dropped.
    pub fn is_drop(self) -> bool {
        !matches!(self, Self::Pass | Self::PassAllow)
    }

    /// The C enumerator's name, for the header drift test.
    #[cfg(test)]
    fn c_name(self) -> &'static str {
        match self {
            Self::Pass => "XSKNET_GUARD_PASS",
            Self::PassAllow => "XSKNET_GUARD_PASS_ALLOW",
            Self::DropBlock => "XSKNET_GUARD_DROP_BLOCK",
            Self::DropMalformedVersion => "XSKNET_GUARD_DROP_MALFORMED_VERSION",
            Self::DropMalformedIhl => "XSKNET_GUARD_DROP_MALFORMED_IHL",
            Self::DropMalformedHdrLen => "XSKNET_GUARD_DROP_MALFORMED_HDR_LEN",
            Self::DropMalformedCsum => "XSKNET_GUARD_DROP_MALFORMED_CSUM",
            Self::DropMalformedTruncated => "XSKNET_GUARD_DROP_MALFORMED_TRUNCATED",
            Self::DropMalformedTotLen => "XSKNET_GUARD_DROP_MALFORMED_TOT_LEN",
            Self::DropTight => "XSKNET_GUARD_DROP_TIGHT",
            Self::DropSourcePps => "XSKNET_GUARD_DROP_SRC_PPS",
            Self::DropSourceBytes => "XSKNET_GUARD_DROP_SRC_BYTES",
            Self::DropSyn => "XSKNET_GUARD_DROP_SYN",
            Self::DropGlobalUdp => "XSKNET_GUARD_DROP_GLOBAL_UDP",
            Self::DropGlobalTcp => "XSKNET_GUARD_DROP_GLOBAL_TCP",
            Self::DropGlobalIcmp => "XSKNET_GUARD_DROP_GLOBAL_ICMP",
            Self::DropGlobalArp => "XSKNET_GUARD_DROP_GLOBAL_ARP",
            Self::DropGlobalOther => "XSKNET_GUARD_DROP_GLOBAL_OTHER",
        }
    }
}

/// One counter of [`GuardCounters`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardReasonCount {
    /// [`GuardStat::name`], e.g. `XdpGuardDropBlocklist`.
    pub name: String,
    /// Frames, summed over the CPUs.
    pub value: u64,
}

/// Which list a rule is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleList {
    /// The allowlist.
    Allow,
    /// The blocklist.
    Block,
}

impl RuleList {
    fn name(self) -> &'static str {
        match self {
            RuleList::Allow => "allowlist",
            RuleList::Block => "blocklist",
        }
    }
}

/// The frames a rule matched (its slot in `guard_rule_hits`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardRuleHits {
    /// Allow or block.
    pub list: RuleList,
    /// The rule's prefix.
    pub prefix: GuardPrefix,
    /// Frames whose source it was the longest match for, since it was added.
    pub hits: u64,
}

/// The guard's counters, summed over the CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardCounters {
    /// Whether the guard is on.
    pub enabled: bool,
    /// Every [`GuardStat`], in its order, by name.
    pub reasons: Vec<GuardReasonCount>,
    /// Every allow and block rule in force, allowlist first, each in the order added.
    pub rules: Vec<GuardRuleHits>,
}

impl GuardCounters {
    /// The value of one counter.
    pub fn get(&self, stat: GuardStat) -> u64 {
        self.reasons.iter().find(|r| r.name == stat.name()).map_or(0, |r| r.value)
    }

    /// Frames the guard dropped, all reasons together.
    pub fn dropped(&self) -> u64 {
        GuardStat::ALL.iter().filter(|s| s.is_drop()).map(|&s| self.get(s)).sum()
    }

    /// The hits of a rule, if it is in force.
    pub fn rule_hits(&self, list: RuleList, prefix: GuardPrefix) -> Option<u64> {
        self.rules.iter().find(|r| r.list == list && r.prefix == prefix).map(|r| r.hits)
    }
}

/// A source as the guard counted it in XDP (its `guard_sources` entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Talker {
    /// The source address (IPv4 `saddr`, ARP `ar_sip`).
    pub addr: Ipv4Addr,
    /// Frames it sent that the guard looked at (passed or dropped by a rate
    /// limit; not the allowlisted, blocklisted or malformed ones), since its
    /// entry was made. The LRU map evicts the least recently seen sources
    /// when full: a count can start again from 0.
    pub packets: u64,
    /// Their bytes, Ethernet header included.
    pub bytes: u64,
    /// The tightened limit it is under, packets a second.
    pub tightened_pps: Option<u64>,
}

impl From<&Talker> for crate::adaptive::TalkerCount {
    fn from(t: &Talker) -> crate::adaptive::TalkerCount {
        crate::adaptive::TalkerCount { addr: t.addr, pkts: t.packets }
    }
}

// ---- the handle ------------------------------------------------------------

/// The guard's maps and the rules in force, behind one lock.
struct State {
    ipv4_addr: Ipv4Addr,
    /// `XSKNET_F_DROP` and `XSKNET_F_GUARD`, as last written.
    xdp_flags: u32,
    rules: GuardRules,
    /// Each rule slot (`guard_rule_hits` index): the rule holding it.
    slots: Vec<Option<(RuleList, GuardPrefix)>>,
    /// Tightened sources and their limits (packets a second).
    tightened: BTreeMap<Ipv4Addr, u64>,
    nr_cpus: usize,
    config: Array<MapData, XsknetConfig>,
    guard_config: Array<MapData, GuardConfigRaw>,
    allow: LpmTrie<MapData, u32, u32>,
    block: LpmTrie<MapData, u32, u32>,
    rule_hits: PerCpuArray<MapData, u64>,
    stats: PerCpuArray<MapData, u64>,
    sources: Map,
    tight: HashMap<MapData, u32, BucketCfg>,
    heavy: Array<MapData, HeavyTable>,
}

/// A handle on the guard of a loaded program: cheap to clone, usable from any
/// thread (`Send + Sync`, `&self` methods; a mutex orders the changes). Rule
/// changes take effect for the next frame, with no reload.
///
/// It also owns the program's config map (`xsknet_config`), so that the
/// guard's on/off flag and [`super::XdpProgram::set_drop`] never overwrite
/// each other.
#[derive(Clone)]
pub struct Guard {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, XdpError> {
    ebpf.take_map(name).ok_or(XdpError::MissingFromObject { name })
}

fn typed<M: TryFrom<Map, Error = MapError>>(ebpf: &mut Ebpf, name: &'static str) -> Result<M, XdpError> {
    M::try_from(take(ebpf, name)?).map_err(|e| XdpError::map(name, e))
}

impl Guard {
    /// Takes the config map and the guard's maps out of a loaded object (they
    /// stay in the kernel, held by the program and by this handle). The guard
    /// starts off, with no rule.
    ///
    /// # Errors
    /// [`XdpError::MissingFromObject`] or [`XdpError::Map`].
    pub(crate) fn take_from(ebpf: &mut Ebpf, ipv4_addr: Ipv4Addr) -> Result<Guard, XdpError> {
        let nr_cpus = aya::util::nr_cpus().map_err(|(what, e)| XdpError::syscall(format!("reading {what}"), e))?;
        let state = State {
            ipv4_addr,
            xdp_flags: 0,
            rules: GuardRules::default(),
            slots: vec![None; GUARD_MAX_RULES as usize],
            tightened: BTreeMap::new(),
            nr_cpus,
            config: typed(ebpf, CONFIG_MAP)?,
            guard_config: typed(ebpf, GUARD_CONFIG_MAP)?,
            allow: typed(ebpf, GUARD_ALLOW_MAP)?,
            block: typed(ebpf, GUARD_BLOCK_MAP)?,
            rule_hits: typed(ebpf, GUARD_RULE_HITS_MAP)?,
            stats: typed(ebpf, GUARD_STATS_MAP)?,
            sources: take(ebpf, GUARD_SOURCES_MAP)?,
            tight: typed(ebpf, GUARD_TIGHT_MAP)?,
            heavy: typed(ebpf, GUARD_HEAVY_MAP)?,
        };
        Ok(Guard { state: Arc::new(Mutex::new(state)) })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves maps and mirror as far as the
        // last completed write: still consistent enough to go on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets `XSKNET_F_DROP` (the benchmark's ceiling), keeping the guard's flag.
    pub(crate) fn set_xdp_drop(&self, drop: bool) -> Result<(), XdpError> {
        let mut s = self.lock();
        let flags = if drop { s.xdp_flags | XSKNET_F_DROP } else { s.xdp_flags & !XSKNET_F_DROP };
        s.write_xdp_flags(flags)
    }

    /// Applies one change; it is in force for the next frame.
    ///
    /// # Errors
    /// [`GuardError::Rule`] for a value the guard cannot take,
    /// [`GuardError::RulesFull`] / [`GuardError::TightFull`] when a map is full,
    /// [`GuardError::NoSuchRule`] / [`GuardError::NotTightened`] for a removal
    /// of what is not there, [`GuardError::Xdp`] when a map write fails.
    pub fn apply(&self, update: &GuardUpdate) -> Result<(), GuardError> {
        let mut s = self.lock();
        match update {
            GuardUpdate::Enable => {
                let flags = s.xdp_flags | XSKNET_F_GUARD;
                s.write_xdp_flags(flags)?;
            }
            GuardUpdate::Disable => {
                let flags = s.xdp_flags & !XSKNET_F_GUARD;
                s.write_xdp_flags(flags)?;
            }
            GuardUpdate::Block(p) => s.add_rule(RuleList::Block, *p)?,
            GuardUpdate::Unblock(p) => s.remove_rule(RuleList::Block, *p)?,
            GuardUpdate::Allow(p) => s.add_rule(RuleList::Allow, *p)?,
            GuardUpdate::Unallow(p) => s.remove_rule(RuleList::Allow, *p)?,
            GuardUpdate::SetSourceLimit(l) => {
                let mut rules = s.rules.clone();
                rules.per_source = *l;
                s.write_limits(rules)?;
            }
            GuardUpdate::SetSynLimit(r) => {
                let mut rules = s.rules.clone();
                rules.syn_per_source = *r;
                s.write_limits(rules)?;
            }
            GuardUpdate::SetGlobal(proto, r) => {
                let mut rules = s.rules.clone();
                rules.global.set(*proto, *r);
                s.write_limits(rules)?;
            }
            GuardUpdate::SetDropMalformed(on) => {
                let mut rules = s.rules.clone();
                rules.drop_malformed = *on;
                s.write_limits(rules)?;
            }
            GuardUpdate::Replace(rules) => s.replace(rules)?,
            GuardUpdate::Tighten { addr, pps } => s.tighten(*addr, *pps)?,
            GuardUpdate::Relax { addr } => s.relax(*addr)?,
        }
        Ok(())
    }

    /// The rules in force (with the adaptive settings they were given).
    pub fn rules(&self) -> GuardRules {
        self.lock().rules.clone()
    }

    /// Whether the guard is on.
    pub fn enabled(&self) -> bool {
        self.lock().xdp_flags & XSKNET_F_GUARD != 0
    }

    /// The tightened sources and their limits (packets a second).
    pub fn tightened(&self) -> BTreeMap<Ipv4Addr, u64> {
        self.lock().tightened.clone()
    }

    /// Reads the counters: one lookup per reason and one per rule in force.
    ///
    /// # Errors
    /// [`XdpError::Map`] when a lookup fails.
    pub fn counters(&self) -> Result<GuardCounters, XdpError> {
        let s = self.lock();
        let mut reasons = Vec::with_capacity(GuardStat::ALL.len());
        for stat in GuardStat::ALL {
            let v = s.stats.get(&(stat as u32), 0).map_err(|e| XdpError::map(GUARD_STATS_MAP, e))?;
            reasons.push(GuardReasonCount {
                name: stat.name().to_owned(),
                value: v.iter().copied().fold(0, u64::wrapping_add),
            });
        }
        let mut rules = Vec::new();
        for list in [RuleList::Allow, RuleList::Block] {
            let prefixes = match list {
                RuleList::Allow => &s.rules.allow,
                RuleList::Block => &s.rules.block,
            };
            for prefix in prefixes {
                let Some(slot) = s.slot_of(list, *prefix) else { continue };
                let v = s.rule_hits.get(&slot, 0).map_err(|e| XdpError::map(GUARD_RULE_HITS_MAP, e))?;
                rules.push(GuardRuleHits { list, prefix: *prefix, hits: v.iter().copied().fold(0, u64::wrapping_add) });
            }
        }
        Ok(GuardCounters { enabled: s.xdp_flags & XSKNET_F_GUARD != 0, reasons, rules })
    }

    /// The `n` heaviest sources (most packets first, at most 256) from the
    /// heavy-hitter table the program keeps (`guard_heavy`): one lookup, one
    /// system call, a few microseconds whatever the number of sources. A
    /// source holds its hash's slot until a source that has sent more packets
    /// hashes there, so a heavy source that collides with a heavier one is
    /// missing here (read [`Guard::sources`] for every source).
    ///
    /// # Errors
    /// [`XdpError::Map`] when the lookup fails.
    pub fn talkers(&self, n: usize) -> Result<Vec<Talker>, XdpError> {
        let s = self.lock();
        let table = s.heavy.get(&0, 0).map_err(|e| XdpError::map(GUARD_HEAVY_MAP, e))?;
        let talkers = table
            .slot
            .iter()
            .filter(|slot| slot.rx_packets > 0)
            .map(|slot| {
                let addr = Ipv4Addr::from(slot.addr.to_ne_bytes());
                Talker {
                    addr,
                    packets: slot.rx_packets,
                    bytes: slot.rx_bytes,
                    tightened_pps: s.tightened.get(&addr).copied(),
                }
            })
            .collect();
        Ok(heaviest(talkers, n))
    }

    /// The `n` sources that sent the most packets, from the whole table of
    /// sources (`guard_sources`), read with `BPF_MAP_LOOKUP_BATCH`, 4096
    /// entries a call: exact, but a full table (65 536 sources, as a spoofed
    /// flood makes it) takes tens of milliseconds (docs/guard.md).
    ///
    /// # Errors
    /// [`XdpError::Syscall`] when the batch lookup fails.
    pub fn sources(&self, n: usize) -> Result<Vec<Talker>, XdpError> {
        let s = self.lock();
        let Map::LruHashMap(data) = &s.sources else {
            return Err(XdpError::MissingFromObject { name: GUARD_SOURCES_MAP });
        };
        let entries: Vec<(u32, SourceRaw)> = bpf::hash_lookup_batch(data)
            .map_err(|e| XdpError::syscall("reading the guard's sources (BPF_MAP_LOOKUP_BATCH)", e))?;
        let talkers: Vec<Talker> = entries
            .into_iter()
            .map(|(key, v)| {
                let addr = Ipv4Addr::from(key.to_ne_bytes());
                Talker {
                    addr,
                    packets: v.rx_packets,
                    bytes: v.rx_bytes,
                    tightened_pps: s.tightened.get(&addr).copied(),
                }
            })
            .collect();
        Ok(heaviest(talkers, n))
    }
}

/// The `n` heaviest of `talkers` (most packets, then most bytes, then the
/// lower address), most first.
fn heaviest(mut talkers: Vec<Talker>, n: usize) -> Vec<Talker> {
    let order =
        |a: &Talker, b: &Talker| b.packets.cmp(&a.packets).then(b.bytes.cmp(&a.bytes)).then(a.addr.cmp(&b.addr));
    // The n heaviest in linear time, then only those sorted.
    if n < talkers.len() {
        talkers.select_nth_unstable_by(n, order);
        talkers.truncate(n);
    }
    talkers.sort_unstable_by(order);
    talkers
}

impl State {
    fn write_xdp_flags(&mut self, flags: u32) -> Result<(), XdpError> {
        set_config(&mut self.config, self.ipv4_addr, flags)?;
        self.xdp_flags = flags;
        Ok(())
    }

    fn slot_of(&self, list: RuleList, prefix: GuardPrefix) -> Option<u32> {
        self.slots.iter().position(|s| *s == Some((list, prefix))).map(|i| i as u32)
    }

    fn trie(&mut self, list: RuleList) -> (&mut LpmTrie<MapData, u32, u32>, &'static str) {
        match list {
            RuleList::Allow => (&mut self.allow, GUARD_ALLOW_MAP),
            RuleList::Block => (&mut self.block, GUARD_BLOCK_MAP),
        }
    }

    fn list_mut(&mut self, list: RuleList) -> &mut Vec<GuardPrefix> {
        match list {
            RuleList::Allow => &mut self.rules.allow,
            RuleList::Block => &mut self.rules.block,
        }
    }

    fn add_rule(&mut self, list: RuleList, prefix: GuardPrefix) -> Result<(), GuardError> {
        if self.slot_of(list, prefix).is_some() {
            return Ok(());
        }
        let slot = self.slots.iter().position(Option::is_none).ok_or(GuardError::RulesFull { max: GUARD_MAX_RULES })?;
        let slot = slot as u32;
        // A reused slot starts from 0 hits.
        let zeros = PerCpuValues::try_from(vec![0u64; self.nr_cpus])
            .map_err(|e| XdpError::syscall("zeroing a rule's hits", e))?;
        self.rule_hits.set(slot, zeros, 0).map_err(|e| XdpError::map(GUARD_RULE_HITS_MAP, e))?;
        let (trie, name) = self.trie(list);
        trie.insert(&prefix.key(), slot, 0).map_err(|e| XdpError::map(name, e))?;
        self.slots[slot as usize] = Some((list, prefix));
        self.list_mut(list).push(prefix);
        Ok(())
    }

    fn remove_rule(&mut self, list: RuleList, prefix: GuardPrefix) -> Result<(), GuardError> {
        let slot = self.slot_of(list, prefix).ok_or(GuardError::NoSuchRule { list: list.name(), prefix })?;
        let (trie, name) = self.trie(list);
        trie.remove(&prefix.key()).map_err(|e| XdpError::map(name, e))?;
        self.slots[slot as usize] = None;
        self.list_mut(list).retain(|p| *p != prefix);
        Ok(())
    }

    /// Writes `guard_config` from `rules` (limits and flags; not the lists).
    fn write_limits(&mut self, rules: GuardRules) -> Result<(), GuardError> {
        rules.check()?;
        let raw = rules.raw(!self.tightened.is_empty());
        self.guard_config.set(0, raw, 0).map_err(|e| XdpError::map(GUARD_CONFIG_MAP, e))?;
        self.rules = GuardRules {
            allow: std::mem::take(&mut self.rules.allow),
            block: std::mem::take(&mut self.rules.block),
            ..rules
        };
        Ok(())
    }

    fn replace(&mut self, rules: &GuardRules) -> Result<(), GuardError> {
        rules.check()?;
        for list in [RuleList::Allow, RuleList::Block] {
            let old: Vec<GuardPrefix> = match list {
                RuleList::Allow => self.rules.allow.clone(),
                RuleList::Block => self.rules.block.clone(),
            };
            let new = match list {
                RuleList::Allow => &rules.allow,
                RuleList::Block => &rules.block,
            };
            for p in old.iter().filter(|p| !new.contains(p)) {
                self.remove_rule(list, *p)?;
            }
            for p in new {
                self.add_rule(list, *p)?;
            }
        }
        // The lists in the new order; the limits and the rest from `rules`.
        let (allow, block) = (rules.allow.clone(), rules.block.clone());
        self.write_limits(rules.clone())?;
        self.rules.allow = allow;
        self.rules.block = block;
        Ok(())
    }

    fn tighten(&mut self, addr: Ipv4Addr, pps: u64) -> Result<(), GuardError> {
        check_bucket(&format!("tightening {addr}"), pps, 1)?;
        if !self.tightened.contains_key(&addr) && self.tightened.len() >= GUARD_MAX_TIGHT as usize {
            return Err(GuardError::TightFull { max: GUARD_MAX_TIGHT });
        }
        let cfg = BucketCfg::new(pps, pps.min(MAX_BURST));
        let key = u32::from_ne_bytes(addr.octets());
        self.tight.insert(key, cfg, 0).map_err(|e| XdpError::map(GUARD_TIGHT_MAP, e))?;
        let was_empty = self.tightened.is_empty();
        self.tightened.insert(addr, pps);
        if was_empty {
            self.write_limits(self.rules.clone())?;
        }
        Ok(())
    }

    fn relax(&mut self, addr: Ipv4Addr) -> Result<(), GuardError> {
        if !self.tightened.contains_key(&addr) {
            return Err(GuardError::NotTightened { addr });
        }
        let key = u32::from_ne_bytes(addr.octets());
        match self.tight.remove(&key) {
            Ok(()) => {}
            // Gone already: what we want.
            Err(MapError::KeyNotFound) => {}
            Err(e) => return Err(XdpError::map(GUARD_TIGHT_MAP, e).into()),
        }
        self.tightened.remove(&addr);
        if self.tightened.is_empty() {
            self.write_limits(self.rules.clone())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdp::object::{Bucket, GUARD_HEAVY_SLOTS, GUARD_MAX_SOURCES, GUARD_PROTOS};

    const COMMON_H: &str = include_str!("../../../xdp-prog/xsknet_common.h");

    fn c_block<'a>(start: &str, end: &str) -> Vec<&'a str>
    where
        'static: 'a,
    {
        let body = COMMON_H
            .split_once(start)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(body, _)| body)
            .unwrap_or_else(|| panic!("{start} in xsknet_common.h"));
        body.lines()
            .map(|l| l.split("/*").next().unwrap_or("").trim().trim_end_matches(','))
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The Rust mirrors must match `xsknet_common.h`, which C compiles against.
    #[test]
    fn mirrors_match_common_header() {
        let mut names: Vec<&str> = GuardStat::ALL.iter().map(|s| s.c_name()).collect();
        names.push("XSKNET_GUARD_STAT__MAX");
        assert_eq!(c_block("enum xsknet_guard_stat {", "}"), names);
        for (i, s) in GuardStat::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
        let mut protos: Vec<&str> = GuardProto::ALL.iter().map(|p| p.c_name()).collect();
        protos.push("XSKNET_GUARD_PROTO__MAX");
        assert_eq!(c_block("enum xsknet_guard_proto {", "}"), protos);
        for (i, p) in GuardProto::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i);
        }
        assert_eq!(GuardProto::ALL.len(), GUARD_PROTOS);

        assert_eq!(
            c_block("struct xsknet_guard_bucket_cfg {", "};"),
            ["__u64 rate;", "__u64 burst;", "__u64 fill_ns;"]
        );
        assert_eq!(std::mem::size_of::<BucketCfg>(), 24);
        assert_eq!(c_block("struct xsknet_guard_bucket {", "};"), ["__u64 tokens;", "__u64 last_ns;"]);
        assert_eq!(std::mem::size_of::<Bucket>(), 16);
        assert_eq!(
            c_block("struct xsknet_guard_config {", "};"),
            [
                "__u32 flags;",
                "__u32 pad;",
                "struct xsknet_guard_bucket_cfg src_pps;",
                "struct xsknet_guard_bucket_cfg src_bytes;",
                "struct xsknet_guard_bucket_cfg src_syn;",
                "struct xsknet_guard_bucket_cfg global[XSKNET_GUARD_PROTO__MAX];",
            ]
        );
        assert_eq!(std::mem::size_of::<GuardConfigRaw>(), 8 + 24 * 8);
        assert_eq!(c_block("struct xsknet_guard_prefix {", "};"), ["__u32 prefixlen;", "__u32 addr;"]);
        assert_eq!(std::mem::size_of::<Key<u32>>(), 8);
        assert_eq!(
            c_block("struct xsknet_guard_source {", "};"),
            [
                "struct xsknet_guard_bucket pps;",
                "struct xsknet_guard_bucket bytes;",
                "struct xsknet_guard_bucket syn;",
                "struct xsknet_guard_bucket tight;",
                "__u64 rx_packets;",
                "__u64 rx_bytes;",
            ]
        );
        assert_eq!(std::mem::size_of::<SourceRaw>(), 16 * 4 + 16);
        assert_eq!(
            c_block("struct xsknet_guard_heavy {", "};"),
            ["__u32 addr;", "__u32 pad;", "__u64 rx_packets;", "__u64 rx_bytes;"]
        );
        assert_eq!(
            c_block("struct xsknet_guard_heavy_table {", "};"),
            ["struct xsknet_guard_heavy slot[XSKNET_GUARD_HEAVY_SLOTS];"]
        );
        assert_eq!(std::mem::size_of::<HeavyTable>(), 24 * GUARD_HEAVY_SLOTS);

        for (define, value) in [
            ("XSKNET_F_GUARD", "(1u << 1)".to_string()),
            ("XSKNET_GUARD_F_DROP_MALFORMED", "(1u << 0)".to_string()),
            ("XSKNET_GUARD_F_TIGHT", "(1u << 1)".to_string()),
            ("XSKNET_GUARD_MAX_RULES", GUARD_MAX_RULES.to_string()),
            ("XSKNET_GUARD_MAX_SOURCES", GUARD_MAX_SOURCES.to_string()),
            ("XSKNET_GUARD_MAX_TIGHT", GUARD_MAX_TIGHT.to_string()),
            ("XSKNET_GUARD_HEAVY_SLOTS", GUARD_HEAVY_SLOTS.to_string()),
            ("XSKNET_GUARD_HEAVY_MAP", format!("\"{GUARD_HEAVY_MAP}\"")),
            ("XSKNET_GUARD_CONFIG_MAP", format!("\"{GUARD_CONFIG_MAP}\"")),
            ("XSKNET_GUARD_ALLOW_MAP", format!("\"{GUARD_ALLOW_MAP}\"")),
            ("XSKNET_GUARD_BLOCK_MAP", format!("\"{GUARD_BLOCK_MAP}\"")),
            ("XSKNET_GUARD_RULE_HITS_MAP", format!("\"{GUARD_RULE_HITS_MAP}\"")),
            ("XSKNET_GUARD_STATS_MAP", format!("\"{GUARD_STATS_MAP}\"")),
            ("XSKNET_GUARD_SOURCES_MAP", format!("\"{GUARD_SOURCES_MAP}\"")),
            ("XSKNET_GUARD_TIGHT_MAP", format!("\"{GUARD_TIGHT_MAP}\"")),
            ("XSKNET_GUARD_GLOBAL_MAP", format!("\"{}\"", crate::xdp::object::GUARD_GLOBAL_MAP)),
        ] {
            let line = format!("#define {define} {value}");
            assert!(COMMON_H.contains(&line), "xsknet_common.h lacks `{line}`");
        }
        assert_eq!(GUARD_F_DROP_MALFORMED, 1);
        assert_eq!(GUARD_F_TIGHT, 2);
        assert_eq!(XSKNET_F_GUARD, 2);
    }

    #[test]
    fn prefixes_parse_and_say_what_is_wrong() {
        let p: GuardPrefix = "203.0.113.0/24".parse().unwrap();
        assert_eq!((p.addr(), p.prefix_len()), (Ipv4Addr::new(203, 0, 113, 0), 24));
        assert_eq!(p.to_string(), "203.0.113.0/24");
        assert!(p.contains(Ipv4Addr::new(203, 0, 113, 77)));
        assert!(!p.contains(Ipv4Addr::new(203, 0, 114, 1)));
        assert_eq!("10.1.2.3".parse::<GuardPrefix>().unwrap(), GuardPrefix::host(Ipv4Addr::new(10, 1, 2, 3)));
        let all: GuardPrefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(
            "10.0.0.5/8".parse::<GuardPrefix>().unwrap_err().0,
            "10.0.0.5/8: host bits set past /8 (did you mean 10.0.0.0/8?)"
        );
        assert!("10.0.0.0/33".parse::<GuardPrefix>().unwrap_err().0.contains("0 to 32"));
        assert!("10.0.0/8".parse::<GuardPrefix>().unwrap_err().0.contains("not an IPv4 prefix"));
        assert!("10.0.0.0/x".parse::<GuardPrefix>().unwrap_err().0.contains("must be a number"));
    }

    #[test]
    fn a_full_rules_file_parses() {
        let text = r#"
drop_malformed = true
allow = ["10.77.0.1", "192.168.0.0/16"]
block = ["203.0.113.0/24"]

[per_source]
pps = 1000
burst = 50
bytes_per_sec = 1250000
burst_bytes = 125000

[syn_per_source]
pps = 10
burst = 20

[global]
udp = { pps = 100000, burst = 1000 }
icmp = { pps = 100 }

[adaptive]
threshold = 0.6
tighten_pps = 500
hold_secs = 2
max_sources = 3
"#;
        let r = GuardRules::from_toml(text, "rules.toml").unwrap();
        assert!(r.drop_malformed);
        assert_eq!(r.allow, ["10.77.0.1/32".parse().unwrap(), "192.168.0.0/16".parse().unwrap()]);
        assert_eq!(r.block, ["203.0.113.0/24".parse().unwrap()]);
        assert_eq!(
            r.per_source,
            Some(SourceLimit {
                packets: Some(Rate { pps: 1000, burst: 50 }),
                bytes: Some(ByteRate { bytes_per_sec: 1_250_000, burst_bytes: 125_000 })
            })
        );
        assert_eq!(r.syn_per_source, Some(Rate { pps: 10, burst: 20 }));
        assert_eq!(r.global.udp, Some(Rate { pps: 100_000, burst: 1000 }));
        assert_eq!(r.global.icmp, Some(Rate { pps: 100, burst: 10 }), "default burst: a tenth of a second");
        assert_eq!(r.global.tcp, None);
        assert_eq!(
            r.adaptive,
            Some(AdaptiveConfig {
                threshold: 0.6,
                tighten_pps: 500,
                hold: std::time::Duration::from_secs(2),
                max_sources: 3,
                ..AdaptiveConfig::default()
            })
        );
        // And back: what rules() returns can be written as a file and read again.
        assert_eq!(GuardRules::from_toml(&r.to_toml().unwrap(), "again").unwrap(), r);
    }

    #[test]
    fn an_empty_file_is_no_rule() {
        assert_eq!(GuardRules::from_toml("", "empty.toml").unwrap(), GuardRules::default());
        let raw = GuardRules::default().raw(false);
        assert_eq!(raw, GuardConfigRaw::default());
    }

    #[test]
    fn bad_files_say_what_and_where() {
        let cases: &[(&str, &[&str])] = &[
            ("drop_malformed = true\nblock = [\"10.0.0.5/8\"]\n", &["line 2", "did you mean 10.0.0.0/8?"]),
            ("allow = [\"10.0.0/8\"]\n", &["line 1", "not an IPv4 prefix"]),
            ("\n\n[per_source]\npps = 0\n", &["line 3", "the rate must be 1 to"]),
            ("[per_source]\npps = 10\nburst = 0\n", &["line 1", "burst must be 1 to"]),
            ("[per_source]\nburst = 10\n", &["burst without pps"]),
            ("[per_source]\nbytes_per_sec = 1000\nburst_bytes = 100\n", &["less than a full Ethernet frame"]),
            ("[per_source]\n", &["needs pps, bytes_per_sec or both"]),
            ("[per_sorce]\npps = 1\n", &["line 1", "unknown field `per_sorce`"]),
            ("[global]\nsctp = { pps = 1 }\n", &["line 2", "unknown field `sctp`"]),
            ("[syn_per_source]\npps = 10\nburts = 3\n", &["unknown field `burts`"]),
            ("drop_malformed = yes\n", &["line 1"]),
            ("[adaptive]\nthreshold = 1.5\n", &["adaptive.threshold is 1.5"]),
            ("allow = [\"10.0.0.1\", \"10.0.0.1/32\"]\n", &["10.0.0.1/32 is in allow twice"]),
            ("[adaptive]\ntighten_pps = 2000000000000\n", &["tighten_pps 2000000000000: at most"]),
            ("[adaptive]\ntighten_to_pps = 5\n", &["line 2", "unknown field `tighten_to_pps`"]),
        ];
        for (text, wants) in cases {
            let e = GuardRules::from_toml(text, "bad.toml").unwrap_err().to_string();
            assert!(e.starts_with("guard rules bad.toml: "), "{e}");
            for want in *wants {
                assert!(e.contains(want), "{text:?}: {e} lacks {want:?}");
            }
        }
        let many: Vec<String> = (0..=GUARD_MAX_RULES).map(|i| format!("\"10.{}.{}.0/24\"", i / 256, i % 256)).collect();
        let e = GuardRules::from_toml(&format!("block = [{}]\n", many.join(",")), "big.toml").unwrap_err();
        assert!(e.to_string().contains("at most 1024 together"), "{e}");

        let missing = GuardRules::load(Path::new("/nonexistent/rules.toml")).unwrap_err();
        assert!(missing.to_string().starts_with("reading guard rules /nonexistent/rules.toml: "), "{missing}");
    }

    #[test]
    fn the_default_policy_is_generous_to_a_client_and_checks_headers() {
        let r = GuardRules::default_policy();
        assert!(r.drop_malformed);
        assert!(r.allow.is_empty() && r.block.is_empty());
        let packets = r.per_source.and_then(|s| s.packets).unwrap();
        // A busy-polling UDP ping-pong client does about 1/4.4 µs = 230 000 round
        // trips a second at best on one core; a fixed-rate client far fewer.
        assert!(packets.pps >= 50_000 && packets.burst >= 1000, "{packets:?}");
        assert_eq!(r.per_source.and_then(|s| s.bytes), None);
        assert!(r.syn_per_source.is_some());
        assert_eq!(r.global, GlobalLimits::default());
        assert_eq!(r.adaptive, Some(AdaptiveConfig::default()));
        assert!(r.check().is_ok());
        assert_eq!(GuardRules::from_toml(&r.to_toml().unwrap(), "default").unwrap(), r);
        let raw = r.raw(false);
        assert_eq!(raw.flags, GUARD_F_DROP_MALFORMED);
        assert_eq!(raw.src_pps, BucketCfg { rate: 50_000, burst: 5_000, fill_ns: 100_000_000 });
        assert_eq!(raw.src_bytes.rate, 0);
        assert_eq!(raw.src_syn, BucketCfg { rate: 100, burst: 200, fill_ns: 2_000_000_000 });
    }

    #[test]
    fn buckets_fill_in_whole_nanoseconds_rounded_up() {
        assert_eq!(BucketCfg::new(3, 7), BucketCfg { rate: 3, burst: 7, fill_ns: 2_333_333_334 });
        assert_eq!(BucketCfg::new(0, 7), BucketCfg::default(), "rate 0 is no limit");
        assert_eq!(BucketCfg::new(MAX_RATE, MAX_BURST).fill_ns, 1_000_000);
    }

    #[test]
    fn counters_name_every_reason_and_sum_the_drops() {
        let reasons = GuardStat::ALL
            .iter()
            .enumerate()
            .map(|(i, s)| GuardReasonCount { name: s.name().into(), value: i as u64 })
            .collect();
        let c = GuardCounters { enabled: true, reasons, rules: Vec::new() };
        assert_eq!(c.get(GuardStat::DropBlock), 2);
        assert_eq!(c.dropped(), (2..18).sum::<u64>());
        let names: std::collections::HashSet<&str> = GuardStat::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), GuardStat::ALL.len());
        assert!(GuardStat::ALL.iter().all(|s| s.name().starts_with("XdpGuard")));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["reasons"][2]["name"], "XdpGuardDropBlocklist");
    }

    #[test]
    fn heaviest_first_and_only_n() {
        let t =
            |a: u8, packets, bytes| Talker { addr: Ipv4Addr::new(10, 0, 0, a), packets, bytes, tightened_pps: None };
        let all = vec![t(1, 5, 500), t(2, 9, 90), t(3, 5, 600), t(4, 1, 1), t(5, 9, 90)];
        let top: Vec<u8> = heaviest(all.clone(), 3).iter().map(|t| t.addr.octets()[3]).collect();
        assert_eq!(top, [2, 5, 3], "packets, then bytes, then the lower address");
        assert_eq!(heaviest(all.clone(), 10).len(), 5);
        assert!(heaviest(all.clone(), 0).is_empty());
        let count = crate::adaptive::TalkerCount::from(&all[1]);
        assert_eq!((count.addr, count.pkts), (Ipv4Addr::new(10, 0, 0, 2), 9));
    }

    #[test]
    fn the_handle_goes_to_other_threads() {
        fn send_sync_clone<T: Send + Sync + Clone + 'static>() {}
        send_sync_clone::<Guard>();
        send_sync_clone::<GuardCounters>();
        send_sync_clone::<GuardRules>();
    }

    #[test]
    fn updates_travel_as_json() {
        let u = GuardUpdate::Tighten { addr: Ipv4Addr::new(10, 0, 0, 9), pps: 100 };
        let back: GuardUpdate = serde_json::from_str(&serde_json::to_string(&u).unwrap()).unwrap();
        assert_eq!(back, u);
        let b: GuardUpdate = serde_json::from_str(r#"{"Block":"203.0.113.0/24"}"#).unwrap();
        assert_eq!(b, GuardUpdate::Block("203.0.113.0/24".parse().unwrap()));
        assert!(serde_json::from_str::<GuardUpdate>(r#"{"Block":"203.0.113.1/24"}"#).is_err());
    }
}
