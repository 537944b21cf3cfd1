//! xsknet's measuring tools: the packet generator (`xsknet pktgen`), latency
//! histograms, and the pieces of the side-by-side benchmark.

pub mod hist;
pub mod impair;
pub mod nsproc;
pub mod pktgen;
pub mod progress;
