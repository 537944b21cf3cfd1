//! Fuzz target `rx_path`: [`xsknet_fuzz::rx_path`] on each input (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xsknet_fuzz::rx_path(data));
