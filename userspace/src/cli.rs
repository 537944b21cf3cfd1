//! Command-line pieces the `xsknet` command and the bench tools share, so
//! that the same option means the same thing everywhere.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::capture::{CaptureMode, CaptureOptions, DEFAULT_QUEUE_SLOTS, DEFAULT_SNAPLEN};
use crate::device::MultiBuffer;
use crate::xdp::guard::RulesFileError;
use crate::xdp::{AttachMode, GuardRules};
use crate::xsk::BindMode;

/// `--xdp-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum XdpModeArg {
    /// Driver (native) mode, falling back to generic.
    Auto,
    /// Driver (native) mode only.
    Driver,
    /// Generic (skb) mode, on any device, slower.
    Generic,
}

impl From<XdpModeArg> for AttachMode {
    fn from(m: XdpModeArg) -> AttachMode {
        match m {
            XdpModeArg::Auto => AttachMode::Auto,
            XdpModeArg::Driver => AttachMode::Driver,
            XdpModeArg::Generic => AttachMode::Generic,
        }
    }
}

/// `--bind-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BindModeArg {
    /// Zero-copy where the driver supports it, else copy.
    Auto,
    /// Copy mode.
    Copy,
    /// Zero-copy only: fails where the driver has none.
    Zerocopy,
}

impl From<BindModeArg> for BindMode {
    fn from(m: BindModeArg) -> BindMode {
        match m {
            BindModeArg::Auto => BindMode::Auto,
            BindModeArg::Copy => BindMode::Copy,
            BindModeArg::Zerocopy => BindMode::ZeroCopy,
        }
    }
}

/// `--multi-buffer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MultiBufferArg {
    /// When the interface's MTU needs more than one UMEM frame per packet.
    Auto,
    /// Always.
    On,
    /// Never: refuse an MTU that one frame cannot hold.
    Off,
}

impl From<MultiBufferArg> for MultiBuffer {
    fn from(m: MultiBufferArg) -> MultiBuffer {
        match m {
            MultiBufferArg::Auto => MultiBuffer::Auto,
            MultiBufferArg::On => MultiBuffer::On,
            MultiBufferArg::Off => MultiBuffer::Off,
        }
    }
}

/// `--replace` and `--force`: what attaching the XDP program may override
/// (see [`crate::xdp::program::attach_with`]). Flattened into each command that
/// attaches (`#[command(flatten)]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct AttachArgs {
    /// Take the place of an XDP program already attached to IFACE.
    #[arg(long)]
    pub replace: bool,
    /// Allow IFACE even if it holds the default route (this can cut the machine off).
    #[arg(long)]
    pub force: bool,
}

/// `--pcap` and its options: packet capture to a pcapng file (see
/// [`crate::capture`]). Flattened into each serving command.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct PcapArgs {
    /// Write the frames that pass to FILE (pcapng, for tcpdump -r / tshark -r): every frame
    /// off the rx ring, before any check, and every frame sent, with its direction.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Capture only the frames the stack drops, each with its reason as a comment
    /// (the counter's name and meaning, e.g. "UdpNoPorts: no socket on the port ...").
    #[arg(long, requires = "pcap")]
    pub pcap_drops: bool,
    /// Bytes kept of each frame (longer frames are cut, their length kept), as tcpdump -s.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SNAPLEN, requires = "pcap",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub pcap_snaplen: u32,
    /// Stop capturing once the file would grow past BYTES (counted, and said at exit); at
    /// least 4096, so that the file's header and a frame fit.
    #[arg(long, value_name = "BYTES", requires = "pcap", value_parser = clap::value_parser!(u64).range(4096..))]
    pub pcap_max_size: Option<u64>,
}

impl PcapArgs {
    /// The capture these options ask for, for frames of up to `max_frame`
    /// bytes; `None` without `--pcap`.
    pub fn options(&self, max_frame: usize) -> Option<CaptureOptions> {
        let path = self.pcap.clone()?;
        Some(CaptureOptions {
            path,
            mode: if self.pcap_drops { CaptureMode::Drops } else { CaptureMode::All },
            snaplen: self.pcap_snaplen,
            max_size: self.pcap_max_size,
            slots: DEFAULT_QUEUE_SLOTS,
            max_frame,
        })
    }
}

/// `--guard` and `--guard-rules`: the XDP guard (see [`crate::xdp::guard`] and
/// docs/guard.md), off by default. Flattened into each serving command.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct GuardArgs {
    /// Turn on the XDP guard with its default policy: malformed IPv4 dropped, each source at
    /// most 50000 packets/s (burst 5000) and 100 SYNs/s (burst 200), dropped in XDP before the
    /// copy; the adaptive mode (heavy sources tightened to 100 packets/s while the softirq stays
    /// over 50 % busy); counted per reason (xsknet stat, the exit report). Changed at run time
    /// with `xsknet guard`. See docs/guard.md.
    #[arg(long)]
    pub guard: bool,
    /// Turn on the XDP guard with the rules in FILE (TOML: allow/block prefixes, per-source,
    /// SYN and per-protocol limits, drop_malformed; see docs/guard.md) in place of the
    /// default policy. Implies --guard.
    #[arg(long, value_name = "FILE")]
    pub guard_rules: Option<PathBuf>,
}

impl GuardArgs {
    /// The rules to put in force at start: `None` leaves the guard off.
    ///
    /// # Errors
    /// The rules file's [`RulesFileError`], which names the file, the line and
    /// what to fix.
    pub fn rules(&self) -> Result<Option<GuardRules>, RulesFileError> {
        match &self.guard_rules {
            Some(path) => GuardRules::load(path).map(Some),
            None => Ok(self.guard.then(GuardRules::default_policy)),
        }
    }
}

/// The TCP sysctls a serving command takes, named and valued as Linux's
/// `net.ipv4.tcp_*` (`sysctl -w net.ipv4.tcp_timestamps=0` is
/// `--tcp-timestamps 0`); each left out keeps Linux's default; and `--hz`, the
/// kernel's tick, which TCP's clock copies. Flattened into each serving
/// command (docs/tcp.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct TcpSysctlArgs {
    /// `net.ipv4.tcp_timestamps`: 1 (default) RFC 7323 timestamps with a random offset per
    /// address pair, 2 without the offset, 0 off.
    #[arg(long, value_name = "0|1|2", value_parser = clap::value_parser!(u8).range(0..=2))]
    pub tcp_timestamps: Option<u8>,
    /// `net.ipv4.tcp_syncookies`: 1 (default) SYN cookies when a listener's SYN queue is full,
    /// 2 always, 0 never.
    #[arg(long, value_name = "0|1|2", value_parser = clap::value_parser!(u8).range(0..=2))]
    pub tcp_syncookies: Option<u8>,
    /// `net.ipv4.tcp_max_tw_buckets`: TIME-WAIT sockets at most (default 131072).
    #[arg(long, value_name = "N")]
    pub tcp_max_tw_buckets: Option<usize>,
    /// `net.ipv4.tcp_challenge_ack_limit`: challenge ACKs a second for the whole stack
    /// (default: no limit, as Linux since 6.0; each connection still sends at most 2 a second).
    #[arg(long, value_name = "N")]
    pub tcp_challenge_ack_limit: Option<u32>,
    /// `net.ipv4.tcp_slow_start_after_idle`: 1 (default) a connection idle for an RTO
    /// restarts from the initial window (RFC 2861), 0 keeps its window.
    #[arg(long, value_name = "0|1", value_parser = clap::value_parser!(u8).range(0..=1))]
    pub tcp_slow_start_after_idle: Option<u8>,
    /// `net.ipv4.tcp_moderate_rcvbuf`: 1 (default) a connection's receive buffer grows from
    /// 128 KiB with what the application reads in a round trip, up to 32 MiB; 0 keeps it.
    #[arg(long, value_name = "0|1", value_parser = clap::value_parser!(u8).range(0..=1))]
    pub tcp_moderate_rcvbuf: Option<u8>,
    /// GRO, as `ethtool -K IFACE gro on|off`: on (default) the TCP segments of a connection
    /// that Linux would merge in one NAPI poll share one ACK decision (about one ACK per 64 KiB
    /// of a bulk transfer); off, each segment gets its own (one ACK per two full segments).
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    pub gro: Option<bool>,
    /// `net.ipv4.tcp_mem`: pages of 4096 bytes all TCP connections may hold: below MIN no
    /// pressure, above PRESSURE the windows stop growing, above MAX data is refused (default:
    /// derived from --max-fds connections with full buffers, as Linux derives it from memory;
    /// 4656,6208,9312 for 1024).
    #[arg(long, value_name = "MIN,PRESSURE,MAX", value_parser = crate::ipv4::tcp::mem::TcpMemLimits::parse)]
    pub tcp_mem: Option<crate::ipv4::tcp::mem::TcpMemLimits>,
    /// `CONFIG_HZ` of the kernel to copy, jiffies a second (24 to 10000): the tick of CUBIC's
    /// clock and of the loss probe and reordering timers (default: the running kernel's, read
    /// from the resolution of CLOCK_MONOTONIC_COARSE; 1000 if it cannot be read).
    #[arg(long, value_name = "100|250|300|1000", value_parser = clap::value_parser!(u32).range(24..=10000))]
    pub hz: Option<u32>,
}

impl TcpSysctlArgs {
    /// Sets in `cfg` the sysctls given.
    pub fn apply(&self, cfg: &mut crate::StackConfig) {
        use crate::ipv4::tcp::syncookies::TcpSyncookies;
        use crate::ipv4::tcp::ts_state::TcpTimestamps;
        if let Some(v) = self.tcp_timestamps {
            cfg.tcp_timestamps = match v {
                0 => TcpTimestamps::Off,
                2 => TcpTimestamps::NoOffset,
                _ => TcpTimestamps::On,
            };
        }
        if let Some(v) = self.tcp_syncookies {
            cfg.tcp_syncookies = match v {
                0 => TcpSyncookies::Off,
                2 => TcpSyncookies::Always,
                _ => TcpSyncookies::WhenFull,
            };
        }
        if let Some(v) = self.tcp_max_tw_buckets {
            cfg.tcp_max_tw_buckets = v;
        }
        if let Some(v) = self.tcp_challenge_ack_limit {
            cfg.tcp_challenge_ack_limit = v;
        }
        if let Some(v) = self.tcp_slow_start_after_idle {
            cfg.tcp_slow_start_after_idle = v == 1;
        }
        if let Some(v) = self.tcp_moderate_rcvbuf {
            cfg.tcp_moderate_rcvbuf = v == 1;
        }
        if let Some(v) = self.gro {
            cfg.gro = v;
        }
        if let Some(v) = self.tcp_mem {
            cfg.tcp_mem = Some(v);
        }
        cfg.hz = self.hz.or_else(crate::jiffies::host_hz).unwrap_or(crate::jiffies::HZ_DEFAULT);
    }
}

/// `on` or `off`, as `ethtool -K` takes a feature's setting.
///
/// # Errors
/// Anything else, with what to write instead.
pub fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("`{s}`: write on or off")),
    }
}

/// `ADDR/PREFIX`, e.g. `10.77.0.2/24`: a usable unicast address and its prefix.
pub fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (a, p) = s.split_once('/').ok_or_else(|| format!("{s}: expected ADDR/PREFIX, e.g. 10.77.0.2/24"))?;
    let addr: Ipv4Addr = a.parse().map_err(|_| format!("{a}: not an IPv4 address"))?;
    let prefix: u8 = p.parse().ok().filter(|p| *p <= 32).ok_or_else(|| format!("{p}: prefix must be 0 to 32"))?;
    if addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast() || addr.is_loopback() {
        return Err(format!("{addr}: not a usable unicast address"));
    }
    Ok((addr, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_args_flatten() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cmd {
            #[command(flatten)]
            attach: AttachArgs,
        }
        let c = Cmd::try_parse_from(["x", "--replace"]).unwrap();
        assert_eq!(c.attach, AttachArgs { replace: true, force: false });
        let c = Cmd::try_parse_from(["x", "--force", "--replace"]).unwrap();
        assert_eq!(c.attach, AttachArgs { replace: true, force: true });
        assert_eq!(Cmd::try_parse_from(["x"]).unwrap().attach, AttachArgs::default());
    }

    #[test]
    fn pcap_args() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cmd {
            #[command(flatten)]
            pcap: PcapArgs,
        }
        assert_eq!(Cmd::try_parse_from(["x"]).unwrap().pcap.options(2048), None);
        let c = Cmd::try_parse_from(["x", "--pcap", "f.pcapng", "--pcap-drops", "--pcap-snaplen", "96"]).unwrap();
        let o = c.pcap.options(2048).unwrap();
        assert_eq!((o.mode, o.snaplen, o.max_size, o.max_frame), (CaptureMode::Drops, 96, None, 2048));
        let o =
            Cmd::try_parse_from(["x", "--pcap", "f", "--pcap-max-size", "4096"]).unwrap().pcap.options(4096).unwrap();
        assert_eq!((o.mode, o.snaplen, o.max_size), (CaptureMode::All, DEFAULT_SNAPLEN, Some(4096)));
        assert!(Cmd::try_parse_from(["x", "--pcap-drops"]).is_err(), "--pcap-drops needs --pcap");
        assert!(Cmd::try_parse_from(["x", "--pcap", "f", "--pcap-snaplen", "0"]).is_err());
    }

    #[test]
    fn guard_args() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cmd {
            #[command(flatten)]
            guard: GuardArgs,
        }
        assert_eq!(Cmd::try_parse_from(["x"]).unwrap().guard.rules().unwrap(), None, "off by default");
        let on = Cmd::try_parse_from(["x", "--guard"]).unwrap().guard.rules().unwrap();
        assert_eq!(on, Some(GuardRules::default_policy()));

        let dir = std::env::temp_dir().join(format!("xsknet-guard-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, "block = [\"203.0.113.0/24\"]\n").unwrap();
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "drop_malformed = true\n[per_source]\npps = -1\n").unwrap();
        let c = Cmd::try_parse_from(["x".as_ref(), "--guard-rules".as_ref(), good.as_os_str()]).unwrap();
        let rules = c.guard.rules().unwrap().expect("--guard-rules implies --guard");
        assert_eq!(rules.block.len(), 1);
        assert!(!rules.drop_malformed, "the file's rules, not the default policy");
        let c = Cmd::try_parse_from(["x".as_ref(), "--guard-rules".as_ref(), bad.as_os_str()]).unwrap();
        let e = c.guard.rules().unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains("line 3"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tcp_sysctls_parse_as_linux_takes_them() {
        use crate::ipv4::tcp::mem::TcpMemLimits;
        use crate::ipv4::tcp::syncookies::TcpSyncookies;
        use crate::ipv4::tcp::ts_state::TcpTimestamps;
        use clap::Parser;
        #[derive(Parser)]
        struct Cmd {
            #[command(flatten)]
            tcp: TcpSysctlArgs,
        }
        let mac = crate::wire::EthernetAddress([2, 0, 0, 0, 0, 1]);
        let mut cfg = crate::StackConfig::new(mac, Ipv4Addr::new(10, 0, 0, 2), 24);
        let before = (cfg.tcp_timestamps, cfg.tcp_syncookies, cfg.tcp_mem);
        Cmd::try_parse_from(["x"]).unwrap().tcp.apply(&mut cfg);
        assert_eq!((cfg.tcp_timestamps, cfg.tcp_syncookies, cfg.tcp_mem), before, "nothing given, nothing changed");
        let c = Cmd::try_parse_from([
            "x",
            "--tcp-timestamps",
            "0",
            "--tcp-syncookies",
            "2",
            "--tcp-max-tw-buckets",
            "5",
            "--tcp-challenge-ack-limit",
            "1000",
            "--tcp-slow-start-after-idle",
            "0",
            "--tcp-moderate-rcvbuf",
            "0",
            "--tcp-mem",
            "10,20,30",
            "--gro",
            "off",
        ])
        .unwrap();
        c.tcp.apply(&mut cfg);
        assert_eq!(cfg.tcp_timestamps, TcpTimestamps::Off);
        assert_eq!(cfg.tcp_syncookies, TcpSyncookies::Always);
        assert_eq!((cfg.tcp_max_tw_buckets, cfg.tcp_challenge_ack_limit), (5, 1000));
        assert!(!cfg.tcp_slow_start_after_idle);
        assert!(!cfg.tcp_moderate_rcvbuf);
        assert!(!cfg.gro);
        assert_eq!(cfg.tcp_mem, Some(TcpMemLimits { min: 10, pressure: 20, max: 30 }));
        Cmd::try_parse_from(["x", "--tcp-timestamps", "2"]).unwrap().tcp.apply(&mut cfg);
        assert_eq!(cfg.tcp_timestamps, TcpTimestamps::NoOffset);
        for bad in [
            &["x", "--tcp-timestamps", "3"][..],
            &["x", "--tcp-syncookies", "-1"],
            &["x", "--tcp-slow-start-after-idle", "2"],
            &["x", "--tcp-mem", "1,2"],
            &["x", "--gro", "1"],
            &["x", "--tcp-mem", "3,2,1"],
        ] {
            assert!(Cmd::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cidr() {
        assert_eq!(parse_cidr("10.77.0.2/24"), Ok((Ipv4Addr::new(10, 77, 0, 2), 24)));
        assert!(parse_cidr("10.77.0.2").unwrap_err().contains("expected ADDR/PREFIX"));
        assert!(parse_cidr("10.77.0.2/33").unwrap_err().contains("prefix must be 0 to 32"));
        assert!(parse_cidr("127.0.0.1/8").unwrap_err().contains("not a usable unicast"));
        assert!(parse_cidr("x/8").unwrap_err().contains("not an IPv4 address"));
    }
}

/// Parses a duration in seconds (`--duration`, `--stats-interval`): a finite,
/// non-negative number, at most a year.
///
/// # Errors
/// A message saying what is wrong, for clap to print.
pub fn parse_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !v.is_finite() || !(0.0..=365.0 * 86400.0).contains(&v) {
        return Err(format!("'{s}': seconds must be a finite number from 0 to 31536000"));
    }
    Ok(v)
}

#[cfg(test)]
mod secs_tests {
    use super::parse_secs;

    #[test]
    fn seconds_are_finite_and_not_negative() {
        assert_eq!(parse_secs("1.5"), Ok(1.5));
        assert_eq!(parse_secs("0"), Ok(0.0));
        for bad in ["-1", "inf", "NaN", "1e30", "soon"] {
            assert!(parse_secs(bad).is_err(), "{bad}");
        }
    }
}
