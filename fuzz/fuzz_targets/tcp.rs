//! Fuzz target `tcp`: [`xsknet_fuzz::tcp`] on each input (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xsknet_fuzz::tcp(data));
