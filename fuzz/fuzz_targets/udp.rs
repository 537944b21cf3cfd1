//! Fuzz target `udp`: [`xsknet_fuzz::udp`] on each input (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xsknet_fuzz::udp(data));
