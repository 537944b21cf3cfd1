//! The embedded XDP object (`xdp-prog/xsknet.bpf.c`, built by `build.rs`) and the
//! Rust mirrors of `xdp-prog/xsknet_common.h`: the program and map names, the
//! config map's value, the counter indices. A test checks the mirrors against
//! the header that C compiles against.
#![allow(unsafe_code)] // `aya::Pod` for the config map's value type, with a SAFETY line

use std::net::Ipv4Addr;

use aya::{maps::Array, programs::Xdp, Ebpf};

use super::XdpError;

/// The compiled `xdp-prog/xsknet.bpf.c` (built by `build.rs`).
pub(crate) static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xsknet.bpf.o"));

/// `SEC("xdp")` function name in the object.
pub const PROGRAM: &str = "xsknet_xdp";
/// Map names, as in `xsknet_common.h`.
pub(crate) const CONFIG_MAP: &str = "xsknet_config";
pub(crate) const XSKS_MAP: &str = "xsks_map";
pub(crate) const STATS_MAP: &str = "xsknet_stats";
/// `XSKNET_MAX_QUEUES`: entries in `xsks_map`.
pub const MAX_QUEUES: u32 = 64;

/// Mirror of `struct xsknet_config` in `xsknet_common.h`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct XsknetConfig {
    /// Network byte order; 0 makes the program pass everything.
    ipv4_addr: u32,
    /// `XSKNET_F_*`.
    flags: u32,
}

/// `XSKNET_F_DROP`: drop our frames instead of redirecting them.
pub(crate) const XSKNET_F_DROP: u32 = 1 << 0;

// SAFETY: `repr(C)` with two `u32` fields: no padding, and every bit pattern is a
// valid value, so it may be copied to and from the kernel's bytes.
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
}

impl XsknetStat {
    pub(crate) const ALL: [Self; 7] = [
        Self::Rx,
        Self::RedirectIpv4,
        Self::RedirectArp,
        Self::PassNotOurs,
        Self::PassNoSocket,
        Self::PassMalformed,
        Self::Drop,
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
        }
    }
}

/// The program in the loaded object.
pub(crate) fn xdp_program(ebpf: &mut Ebpf) -> Result<&mut Xdp, XdpError> {
    ebpf.program_mut(PROGRAM)
        .and_then(|p| <&mut Xdp>::try_from(p).ok())
        .ok_or(XdpError::MissingFromObject { name: PROGRAM })
}

/// Writes `struct xsknet_config` (our address, `XSKNET_F_*` flags) into the config map.
pub(crate) fn write_config(ebpf: &mut Ebpf, addr: Ipv4Addr, flags: u32) -> Result<(), XdpError> {
    let map = ebpf.map_mut(CONFIG_MAP).ok_or(XdpError::MissingFromObject { name: CONFIG_MAP })?;
    let mut config: Array<_, XsknetConfig> = Array::try_from(map).map_err(|e| XdpError::map(CONFIG_MAP, e))?;
    let value = XsknetConfig {
        // The octets in memory order are network byte order.
        ipv4_addr: u32::from_ne_bytes(addr.octets()),
        flags,
    };
    config.set(0, value, 0).map_err(|e| XdpError::map(CONFIG_MAP, e))
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
        assert_eq!(fields, ["__u32 ipv4_addr;", "__u32 flags;"]);
        assert_eq!(std::mem::size_of::<XsknetConfig>(), 8);

        for (define, value) in [
            ("XSKNET_CONFIG_MAP", format!("\"{CONFIG_MAP}\"")),
            ("XSKNET_XSKS_MAP", format!("\"{XSKS_MAP}\"")),
            ("XSKNET_STATS_MAP", format!("\"{STATS_MAP}\"")),
            ("XSKNET_MAX_QUEUES", MAX_QUEUES.to_string()),
        ] {
            let line = format!("#define {define} {value}");
            assert!(COMMON_H.contains(&line), "xsknet_common.h lacks `{line}`");
        }
    }

    #[test]
    fn object_is_embedded() {
        assert_eq!(&OBJECT[..4], b"\x7fELF");
        let has = |needle: &[u8]| OBJECT.windows(needle.len()).any(|w| w == needle);
        for name in [PROGRAM, CONFIG_MAP, XSKS_MAP, STATS_MAP, ".BTF"] {
            assert!(has(name.as_bytes()), "{name} missing from xsknet.bpf.o");
        }
    }
}
