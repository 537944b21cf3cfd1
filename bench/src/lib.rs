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

/// The median of some values (the upper one of an even count), NaN values
/// left out; NaN when none is left.
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(|a, b| a.total_cmp(b));
    s[s.len() / 2]
}
