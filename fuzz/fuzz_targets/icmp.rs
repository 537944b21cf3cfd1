//! Fuzz target `icmp`: [`xsknet_fuzz::icmp`] on each input (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xsknet_fuzz::icmp(data));
