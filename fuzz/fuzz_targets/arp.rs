//! Fuzz target `arp`: [`xsknet_fuzz::arp`] on each input (docs/fuzzing.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xsknet_fuzz::arp(data));
