//! xsknet's measuring tools: the packet generator (`xsknet pktgen`), latency
//! histograms, and the pieces of the side-by-side benchmark (its TCP section
//! included).

pub mod autogroup;
pub mod hist;
pub mod impair;
pub mod nsproc;
pub mod paced_max;
pub mod pktgen;
pub mod progress;
pub mod tcp_bench;
