//! The embedded XDP object (`xdp-prog/xsknet.bpf.c`, built by `build.rs`) and the
//! Rust mirrors of `xdp-prog/xsknet_common.h`: the program and map names, the
//! config map's value, the counter indices. A test checks the mirrors against
//! the header that C compiles against.
#![allow(unsafe_code)] // `aya::Pod` for the maps' key and value types, each with a SAFETY line

use std::net::Ipv4Addr;

use aya::{
    maps::{Array, MapData},
    programs::Xdp,
    Ebpf,
};

use super::XdpError;

/// The compiled `xdp-prog/xsknet.bpf.c` (built by `build.rs`).
pub(crate) static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xsknet.bpf.o"));

/// `SEC("xdp")` function name in the object.
pub const PROGRAM: &str = "xsknet_xdp";
/// The same program, frags-aware (section `xdp.frags`: loaded with
/// `BPF_F_XDP_HAS_FRAGS`), for AF_XDP multi-buffer (docs/jumbo.md).
pub const PROGRAM_FRAGS: &str = "xsknet_xdp_frags";
/// Map names, as in `xsknet_common.h`.
pub(crate) const CONFIG_MAP: &str = "xsknet_config";
pub(crate) const XSKS_MAP: &str = "xsks_map";
pub(crate) const STATS_MAP: &str = "xsknet_stats";
pub(crate) const GUARD_CONFIG_MAP: &str = "guard_config";
pub(crate) const GUARD_ALLOW_MAP: &str = "guard_allow";
pub(crate) const GUARD_BLOCK_MAP: &str = "guard_block";
pub(crate) const GUARD_RULE_HITS_MAP: &str = "guard_rule_hits";
pub(crate) const GUARD_STATS_MAP: &str = "guard_stats";
pub(crate) const GUARD_SOURCES_MAP: &str = "guard_sources";
pub(crate) const GUARD_TIGHT_MAP: &str = "guard_tight";
/// The global buckets' state: only the program touches it.
#[cfg(test)]
pub(crate) const GUARD_GLOBAL_MAP: &str = "guard_global";
pub(crate) const GUARD_HEAVY_MAP: &str = "guard_heavy";
pub(crate) const KERNEL_ADDRS_MAP: &str = "kernel_addrs";
/// `XSKNET_KERNEL_ADDRS_MAX`: addresses `--pass-kernel-addrs` can leave to the kernel.
pub const KERNEL_ADDRS_MAX: usize = 256;
/// `XSKNET_GUARD_HEAVY_SLOTS`: slots of the heavy-hitter table.
pub const GUARD_HEAVY_SLOTS: usize = 256;
/// `XSKNET_GUARD_MAX_RULES`: allow and block rules together.
pub const GUARD_MAX_RULES: u32 = 1024;
/// `XSKNET_GUARD_MAX_SOURCES`: entries of the LRU hash of sources.
pub const GUARD_MAX_SOURCES: u32 = 65536;
/// `XSKNET_GUARD_MAX_TIGHT`: sources under a tightened limit at once.
pub const GUARD_MAX_TIGHT: u32 = 4096;
/// `XSKNET_MAX_QUEUES`: entries in `xsks_map`.
pub const MAX_QUEUES: u32 = 64;

/// Mirror of `struct xsknet_config` in `xsknet_common.h`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct XsknetConfig {
    /// Network byte order; 0 makes the program pass everything.
    ipv4_addr: u32,
    /// `XSKNET_F_*`.
    flags: u32,
    /// The interface's MAC; all zero until written: no unicast frame is ours.
    mac: [u8; 6],
    pad: u16,
}

/// `XSKNET_F_DROP`: drop our frames instead of redirecting them.
pub(crate) const XSKNET_F_DROP: u32 = 1 << 0;
/// `XSKNET_F_GUARD`: run the guard on our frames.
pub(crate) const XSKNET_F_GUARD: u32 = 1 << 1;
/// `XSKNET_F_PASS_KERNEL_ADDRS`: leave the kernel's addresses to the kernel.
pub(crate) const XSKNET_F_PASS_KERNEL_ADDRS: u32 = 1 << 2;
/// `XSKNET_GUARD_F_DROP_MALFORMED`.
pub(crate) const GUARD_F_DROP_MALFORMED: u32 = 1 << 0;
/// `XSKNET_GUARD_F_TIGHT`.
pub(crate) const GUARD_F_TIGHT: u32 = 1 << 1;
/// `XSKNET_GUARD_PROTO__MAX`.
pub(crate) const GUARD_PROTOS: usize = 5;

/// Mirror of `struct xsknet_guard_bucket_cfg`: one token bucket's settings.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BucketCfg {
    /// Tokens per second; 0 = no limit.
    pub(crate) rate: u64,
    /// Tokens a full bucket holds.
    pub(crate) burst: u64,
    /// ns to fill an empty bucket: `ceil(burst * 1e9 / rate)`.
    pub(crate) fill_ns: u64,
}

impl BucketCfg {
    /// `rate` tokens a second, `burst` at most (both already checked: burst ≤ 1e9).
    pub(crate) fn new(rate: u64, burst: u64) -> BucketCfg {
        if rate == 0 {
            return BucketCfg::default();
        }
        let fill_ns = (u128::from(burst) * 1_000_000_000).div_ceil(u128::from(rate));
        BucketCfg { rate, burst, fill_ns: u64::try_from(fill_ns).unwrap_or(u64::MAX) }
    }
}

/// Mirror of `struct xsknet_guard_bucket`: nano-tokens left at `last_ns`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bucket {
    pub(crate) tokens: u64,
    pub(crate) last_ns: u64,
}

/// Mirror of `struct xsknet_guard_config`, the single entry of `guard_config`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct GuardConfigRaw {
    pub(crate) flags: u32,
    pub(crate) pad: u32,
    pub(crate) src_pps: BucketCfg,
    pub(crate) src_bytes: BucketCfg,
    pub(crate) src_syn: BucketCfg,
    pub(crate) global: [BucketCfg; GUARD_PROTOS],
}

/// Mirror of `struct xsknet_guard_source`, the value of `guard_sources`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SourceRaw {
    pub(crate) pps: Bucket,
    pub(crate) bytes: Bucket,
    pub(crate) syn: Bucket,
    pub(crate) tight: Bucket,
    pub(crate) rx_packets: u64,
    pub(crate) rx_bytes: u64,
}

/// Mirror of `struct xsknet_guard_heavy`: one slot of the heavy-hitter table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct HeavySlot {
    /// Network byte order.
    pub(crate) addr: u32,
    pub(crate) pad: u32,
    pub(crate) rx_packets: u64,
    pub(crate) rx_bytes: u64,
}

/// Mirror of `struct xsknet_guard_heavy_table`, the single entry of `guard_heavy`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeavyTable {
    pub(crate) slot: [HeavySlot; GUARD_HEAVY_SLOTS],
}

// SAFETY: each is `repr(C)` with `u32`/`u64` fields (and arrays of such structs)
// laid out without padding (the u32 pair sits before the u64s), and every bit
// pattern is a valid value, so they may be copied to and from the kernel's bytes.
unsafe impl aya::Pod for BucketCfg {}
// SAFETY: as above: two `u64`, no padding, any bit pattern valid.
unsafe impl aya::Pod for Bucket {}
// SAFETY: as above: two `u32` then `u64`-only structs, no padding, any bit pattern valid.
unsafe impl aya::Pod for GuardConfigRaw {}
// SAFETY: as above: `u64`-only structs and `u64`s, no padding, any bit pattern valid.
unsafe impl aya::Pod for SourceRaw {}
// SAFETY: as above: two `u32` then two `u64`, no padding, any bit pattern valid.
unsafe impl aya::Pod for HeavySlot {}
// SAFETY: as above: an array of `HeavySlot`, no padding, any bit pattern valid.
unsafe impl aya::Pod for HeavyTable {}

// SAFETY: `repr(C)` with two `u32`, six `u8` and a `u16` (16 bytes): no padding,
// and every bit pattern is a valid value, so it may be copied to and from the
// kernel's bytes.
unsafe impl aya::Pod for XsknetConfig {}

/// Mirror of `enum xsknet_stat` in `xsknet_common.h`: indices into `xsknet_stats`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum XsknetStat {
    Rx = 0,
    RedirectIpv4 = 1,
    RedirectArp = 2,
    PassNotOurs = 3,
    PassNoSocket = 4,
    PassMalformed = 5,
    Drop = 6,
    GuardDrop = 7,
    PassOtherHost = 8,
    PassKernelAddr = 9,
}

impl XsknetStat {
    pub(crate) const ALL: [Self; 10] = [
        Self::Rx,
        Self::RedirectIpv4,
        Self::RedirectArp,
        Self::PassNotOurs,
        Self::PassNoSocket,
        Self::PassMalformed,
        Self::Drop,
        Self::GuardDrop,
        Self::PassOtherHost,
        Self::PassKernelAddr,
    ];

    /// The C enumerator's name, for the header drift test.
    #[cfg(test)]
    fn c_name(self) -> &'static str {
        match self {
            Self::Rx => "XSKNET_STAT_RX",
            Self::RedirectIpv4 => "XSKNET_STAT_REDIRECT_IPV4",
            Self::RedirectArp => "XSKNET_STAT_REDIRECT_ARP",
            Self::PassNotOurs => "XSKNET_STAT_PASS_NOT_OURS",
            Self::PassNoSocket => "XSKNET_STAT_PASS_NO_SOCKET",
            Self::PassMalformed => "XSKNET_STAT_PASS_MALFORMED",
            Self::Drop => "XSKNET_STAT_DROP",
            Self::GuardDrop => "XSKNET_STAT_GUARD_DROP",
            Self::PassOtherHost => "XSKNET_STAT_PASS_OTHER_HOST",
            Self::PassKernelAddr => "XSKNET_STAT_PASS_KERNEL_ADDR",
        }
    }
}

/// The program in the loaded object: the one loaded, `PROGRAM` or
/// `PROGRAM_FRAGS` (whichever the object has loaded; `PROGRAM` first).
pub(crate) fn xdp_program(ebpf: &mut Ebpf) -> Result<&mut Xdp, XdpError> {
    let loaded = ebpf.program(PROGRAM_FRAGS).is_some_and(|p| p.fd().is_ok());
    xdp_program_named(ebpf, if loaded { PROGRAM_FRAGS } else { PROGRAM })
}

/// The program `name` in the object.
pub(crate) fn xdp_program_named<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, XdpError> {
    ebpf.program_mut(name).and_then(|p| <&mut Xdp>::try_from(p).ok()).ok_or(XdpError::MissingFromObject { name })
}

/// Writes `struct xsknet_config` (our address, `XSKNET_F_*` flags) into the config map.
pub(crate) fn write_config(ebpf: &mut Ebpf, addr: Ipv4Addr, flags: u32) -> Result<(), XdpError> {
    let map = ebpf.map_mut(CONFIG_MAP).ok_or(XdpError::MissingFromObject { name: CONFIG_MAP })?;
    let mut config: Array<_, XsknetConfig> = Array::try_from(map).map_err(|e| XdpError::map(CONFIG_MAP, e))?;
    set_config(&mut config, addr, flags)
}

/// Writes the address and the guard's and drop flags of `struct
/// xsknet_config` through a config map handle of any ownership, keeping the
/// MAC and `XSKNET_F_PASS_KERNEL_ADDRS` already there ([`set_ingress`] owns those).
pub(crate) fn set_config<T: std::borrow::BorrowMut<MapData>>(
    config: &mut Array<T, XsknetConfig>,
    addr: Ipv4Addr,
    flags: u32,
) -> Result<(), XdpError> {
    let old = config.get(&0, 0).map_err(|e| XdpError::map(CONFIG_MAP, e))?;
    let value = XsknetConfig {
        // The octets in memory order are network byte order.
        ipv4_addr: u32::from_ne_bytes(addr.octets()),
        flags: (flags & !XSKNET_F_PASS_KERNEL_ADDRS) | (old.flags & XSKNET_F_PASS_KERNEL_ADDRS),
        ..old
    };
    config.set(0, value, 0).map_err(|e| XdpError::map(CONFIG_MAP, e))
}

/// Sets the interface's MAC in `struct xsknet_config`, and the
/// `XSKNET_F_PASS_KERNEL_ADDRS` flag with the addresses of `kernel_addrs`
/// (`None`: the flag off, the map left empty), keeping the rest.
///
/// # Errors
/// [`XdpError::Map`] when a map cannot be read or written;
/// [`XdpError::TooManyKernelAddrs`] past [`KERNEL_ADDRS_MAX`] addresses.
pub(crate) fn set_ingress(ebpf: &mut Ebpf, mac: [u8; 6], kernel_addrs: Option<&[Ipv4Addr]>) -> Result<(), XdpError> {
    if let Some(addrs) = kernel_addrs {
        if addrs.len() > KERNEL_ADDRS_MAX {
            return Err(XdpError::TooManyKernelAddrs { count: addrs.len() });
        }
        let map = ebpf.map_mut(KERNEL_ADDRS_MAP).ok_or(XdpError::MissingFromObject { name: KERNEL_ADDRS_MAP })?;
        let mut set: aya::maps::HashMap<_, u32, u8> =
            aya::maps::HashMap::try_from(map).map_err(|e| XdpError::map(KERNEL_ADDRS_MAP, e))?;
        for a in addrs {
            set.insert(u32::from_ne_bytes(a.octets()), 1, 0).map_err(|e| XdpError::map(KERNEL_ADDRS_MAP, e))?;
        }
    }
    let map = ebpf.map_mut(CONFIG_MAP).ok_or(XdpError::MissingFromObject { name: CONFIG_MAP })?;
    let mut config: Array<_, XsknetConfig> = Array::try_from(map).map_err(|e| XdpError::map(CONFIG_MAP, e))?;
    let old = config.get(&0, 0).map_err(|e| XdpError::map(CONFIG_MAP, e))?;
    let flags = match kernel_addrs {
        Some(_) => old.flags | XSKNET_F_PASS_KERNEL_ADDRS,
        None => old.flags & !XSKNET_F_PASS_KERNEL_ADDRS,
    };
    config.set(0, XsknetConfig { mac, flags, ..old }, 0).map_err(|e| XdpError::map(CONFIG_MAP, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMON_H: &str = include_str!("../../../xdp-prog/xsknet_common.h");

    /// The Rust mirrors must match `xsknet_common.h`, which C compiles against.
    #[test]
    fn mirrors_match_common_header() {
        let body = COMMON_H
            .split_once("enum xsknet_stat {")
            .and_then(|(_, rest)| rest.split_once('}'))
            .map(|(body, _)| body)
            .expect("enum xsknet_stat in xsknet_common.h");
        let c_names: Vec<&str> = body
            .lines()
            .map(|l| l.split("/*").next().unwrap_or("").trim().trim_end_matches(','))
            .filter(|l| !l.is_empty())
            .collect();
        let mut rust_names: Vec<&str> = XsknetStat::ALL.iter().map(|s| s.c_name()).collect();
        rust_names.push("XSKNET_STAT__MAX");
        assert_eq!(c_names, rust_names);
        for (i, stat) in XsknetStat::ALL.iter().enumerate() {
            assert_eq!(*stat as usize, i);
        }

        let config = COMMON_H
            .split_once("struct xsknet_config {")
            .and_then(|(_, rest)| rest.split_once("};"))
            .map(|(body, _)| body)
            .expect("struct xsknet_config in xsknet_common.h");
        let fields: Vec<&str> =
            config.lines().map(|l| l.split("/*").next().unwrap_or("").trim()).filter(|l| !l.is_empty()).collect();
        assert_eq!(fields, ["__u32 ipv4_addr;", "__u32 flags;", "__u8 mac[6];", "__u16 pad;"]);
        assert_eq!(std::mem::size_of::<XsknetConfig>(), 16);

        for (define, value) in [
            ("XSKNET_CONFIG_MAP", format!("\"{CONFIG_MAP}\"")),
            ("XSKNET_XSKS_MAP", format!("\"{XSKS_MAP}\"")),
            ("XSKNET_STATS_MAP", format!("\"{STATS_MAP}\"")),
            ("XSKNET_MAX_QUEUES", MAX_QUEUES.to_string()),
            ("XSKNET_KERNEL_ADDRS_MAP", format!("\"{KERNEL_ADDRS_MAP}\"")),
            ("XSKNET_KERNEL_ADDRS_MAX", KERNEL_ADDRS_MAX.to_string()),
        ] {
            let line = format!("#define {define} {value}");
            assert!(COMMON_H.contains(&line), "xsknet_common.h lacks `{line}`");
        }
    }

    #[test]
    fn object_is_embedded() {
        assert_eq!(&OBJECT[..4], b"\x7fELF");
        let has = |needle: &[u8]| OBJECT.windows(needle.len()).any(|w| w == needle);
        for name in [
            PROGRAM,
            CONFIG_MAP,
            XSKS_MAP,
            STATS_MAP,
            GUARD_CONFIG_MAP,
            GUARD_ALLOW_MAP,
            GUARD_BLOCK_MAP,
            GUARD_RULE_HITS_MAP,
            GUARD_STATS_MAP,
            GUARD_SOURCES_MAP,
            GUARD_TIGHT_MAP,
            GUARD_GLOBAL_MAP,
            GUARD_HEAVY_MAP,
            KERNEL_ADDRS_MAP,
            ".BTF",
        ] {
            assert!(has(name.as_bytes()), "{name} missing from xsknet.bpf.o");
        }
    }
}
