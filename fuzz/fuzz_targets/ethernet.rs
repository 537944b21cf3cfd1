//! Fuzz target `ethernet`: [`xsknet_fuzz::ethernet`] on each input (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xsknet_fuzz::ethernet(data));
