//! The bodies of xsknet's fuzz targets (docs/fuzzing.md), one function per target, each
//! taking the fuzzer's bytes.
//!
//! A body panics when an invariant fails, which libFuzzer reports as a crash; on any other
//! input it returns. The same functions run three ways: under libFuzzer through the binaries
//! in `fuzz_targets/` (`make fuzz`), over the seed corpus in the main workspace's tests
//! (`userspace/tests/fuzz_corpus.rs`, which includes this file), and over a crash file when
//! one is turned into a regression test.
//!
//! | target | what it drives | what it asserts |
//! |---|---|---|
//! | [`ethernet`], [`arp`], [`ipv4`], [`icmp`], [`udp`], [`tcp`] | one parser of `wire/` over the bytes | no panic; what parses is emitted and parsed again to the same repr; the checksum helpers agree with a plain reference sum |
//! | [`rx_path`] | a [`xsknet::Stack`] over the in-memory device: frames, polls, virtual time | no panic; the frame census after every step; the counter identities of [`rx::check_counters`] |
//! | [`socket_api`] | the socket calls of the same stack with random arguments, frames in between | no panic; every error a known errno; the census, and every frame back after closing all |

pub mod api;
pub mod input;
pub mod rx;
pub mod seeds;
pub mod wire;

pub use api::socket_api;
pub use rx::rx_path;
pub use wire::{arp, ethernet, icmp, ipv4, tcp, udp};

/// A target's body: the fuzzer's bytes in, a panic when an invariant fails.
pub type Body = fn(&[u8]);

/// The targets, by the names of their binaries and corpus directories.
pub const TARGETS: [(&str, Body); 8] = [
    ("ethernet", ethernet),
    ("arp", arp),
    ("ipv4", ipv4),
    ("icmp", icmp),
    ("udp", udp),
    ("tcp", tcp),
    ("rx_path", rx_path),
    ("socket_api", socket_api),
];
