//! Fuzz target `socket_api`: [`xsknet_fuzz::socket_api`] on each input (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xsknet_fuzz::socket_api(data));
