//! Fuzz target `ipv4`: [`xsknet_fuzz::ipv4`] on each input (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xsknet_fuzz::ipv4(data));
