//! The latency section's maximum (issue 13): the highest **paced** rate an echo server serves
//! without loss, found by a short bisection.
//!
//! A generator sending as fast as it can measures something else: the server then takes
//! full rx batches and answers them with few `sendto` kicks, and echoes more per second than
//! it can when the same datagrams come paced, one quantum every 20 µs (`pktgen::pace`). On the
//! development VM the full-rate figure was 499–690 k/s, and half of it, paced, already lost
//! datagrams: a load of "50 %" of it measured a queue, not a latency. So the full-rate figure
//! is only the search's upper bound. The search then offers paced rates for a short trial each
//! (1 s; `--quick`: 0.5 s) and bisects between the highest rate served (at most
//! [`LOSS_LIMIT`] of the datagrams lost) and the lowest one not served, for a fixed number of
//! rates ([`SearchPlan::steps`]), so that the time it takes is bounded. The maximum is the
//! rate the generator *reached* in the highest trial served: the token bucket forgives a
//! stall of the generator's own core longer than 10 ms rather than make it up in a burst, so
//! on a busy machine it may offer less than it was asked (the report says when it did). A rate that fails is
//! tried once more (up to [`SearchPlan::retries`] times in all) before it counts as not
//! served: one trial spoiled by the machine (another task taking the server's core for a
//! time slice) must not halve the maximum.
//!
//! This module is the search's logic alone (which rate next, what the trials say); the
//! bench runs the trials (`side-by-side`, `Bench::paced_max`).

use serde::Serialize;

/// The share of the datagrams a trial may lose and still count as served (0.1 %).
pub const LOSS_LIMIT: f64 = 0.001;
/// Below this share of the rate asked, the report says the generator fell short.
pub const OFFERED_SHORT: f64 = 0.95;
/// Rates are tried in steps of this many packets a second.
pub const GRAIN_PPS: u64 = 1000;

/// How long and how finely to search.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SearchPlan {
    /// Seconds of the full-rate run that gives the upper bound.
    pub full_rate_secs: f64,
    /// Seconds of each paced trial.
    pub trial_secs: f64,
    /// Rates bisected: the result is within `upper / 2^steps` of the highest served.
    pub steps: u32,
    /// How many failed rates get a second trial.
    pub retries: u32,
}

impl SearchPlan {
    /// `make bench`'s search (2 s at full rate, then 6 rates of 1 s, two retries: at most
    /// 10 s of trials), or `--quick`'s (1 s, then 4 rates of 0.5 s, no retry: 2 s).
    pub fn new(quick: bool) -> SearchPlan {
        if quick {
            SearchPlan { full_rate_secs: 1.0, trial_secs: 0.5, steps: 4, retries: 0 }
        } else {
            SearchPlan { full_rate_secs: 2.0, trial_secs: 1.0, steps: 6, retries: 2 }
        }
    }
}

/// One paced trial, as the generator reported it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trial {
    /// The rate asked for, packets per second.
    pub rate_pps: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// The rate the generator reached (sent over the time it sent for).
    pub offered_pps: f64,
    /// Datagrams not answered.
    pub lost: u64,
    /// Whether the trial counts as served (at most [`LOSS_LIMIT`] lost).
    pub served: bool,
}

impl Trial {
    /// A trial from the generator's figures; `served` is decided here.
    pub fn new(rate_pps: u64, sent: u64, offered_pps: f64, lost: u64) -> Trial {
        let served = sent > 0 && (lost as f64) <= LOSS_LIMIT * sent as f64;
        Trial { rate_pps, sent, offered_pps, lost, served }
    }

    /// The rate this trial showed the server serves: the rate asked, or what the generator
    /// reached if less.
    pub fn served_pps(&self) -> u64 {
        self.rate_pps.min(self.offered_pps.max(0.0) as u64)
    }

    /// The share of the datagrams lost.
    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.lost as f64 / self.sent as f64
        }
    }
}

/// The search's state: the bounds, the trials so far.
#[derive(Clone, Debug, Serialize)]
pub struct PacedMax {
    /// Echoes per second that came back when the generator sent as fast as it could.
    pub full_rate_pps: f64,
    pub plan: SearchPlan,
    /// The highest rate served so far (0: none yet).
    served: u64,
    /// The lowest rate not served so far (starts at the full-rate figure).
    not_served: u64,
    /// Rates decided.
    decided: u32,
    retries_left: u32,
    /// A rate whose first trial failed and that gets a second one.
    retry: Option<u64>,
    pub trials: Vec<Trial>,
}

impl PacedMax {
    /// A search below `full_rate_pps`, the replies per second at full rate.
    pub fn new(full_rate_pps: f64, plan: SearchPlan) -> PacedMax {
        let upper = (full_rate_pps.max(0.0) as u64 / GRAIN_PPS) * GRAIN_PPS;
        PacedMax {
            full_rate_pps,
            plan,
            served: 0,
            not_served: upper,
            decided: 0,
            retries_left: plan.retries,
            retry: None,
            trials: Vec::new(),
        }
    }

    /// The next rate to try, or `None` when the search is over.
    pub fn next_rate(&self) -> Option<u64> {
        if let Some(r) = self.retry {
            return Some(r);
        }
        if self.decided >= self.plan.steps {
            return None;
        }
        let mid = (self.served + self.not_served) / 2 / GRAIN_PPS * GRAIN_PPS;
        (mid > self.served && mid < self.not_served).then_some(mid)
    }

    /// Takes a trial's outcome (of the rate [`Self::next_rate`] gave).
    pub fn record(&mut self, t: Trial) {
        let rate = t.rate_pps;
        let served = t.served;
        let retried = self.retry.take() == Some(rate);
        self.trials.push(t);
        if !served && !retried && self.retries_left > 0 {
            self.retries_left -= 1;
            self.retry = Some(rate);
            return;
        }
        self.decided += 1;
        if served {
            self.served = self.served.max(rate);
        } else {
            self.not_served = self.not_served.min(rate);
        }
    }

    /// The maximum: the rate the generator reached in the highest trial served, or, when
    /// none was, the lowest rate tried (see [`Self::lossless`]).
    pub fn pps(&self) -> u64 {
        if self.served > 0 {
            let best = self.trials.iter().filter(|t| t.served && t.rate_pps == self.served);
            best.map(Trial::served_pps).max().unwrap_or(self.served).max(GRAIN_PPS)
        } else {
            self.trials.iter().map(|t| t.rate_pps).min().unwrap_or(self.not_served).max(GRAIN_PPS)
        }
    }

    /// Whether some rate was served: `false` means even the lowest rate tried lost more
    /// than [`LOSS_LIMIT`], and [`Self::pps`] is that rate, no maximum without loss.
    pub fn lossless(&self) -> bool {
        self.served > 0
    }

    /// The trials, as the report prints them: "300000 served, 450000 lost 2.31 %, …".
    pub fn trials_text(&self) -> String {
        let one = |t: &Trial| {
            let short = if t.offered_pps < OFFERED_SHORT * t.rate_pps as f64 {
                format!(" (generator reached {:.0})", t.offered_pps)
            } else {
                String::new()
            };
            if t.served {
                format!("{} served{short}", t.rate_pps)
            } else {
                format!("{} lost {:.2} %{short}", t.rate_pps, t.loss() * 100.0)
            }
        };
        self.trials.iter().map(one).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a server that serves up to `capacity` (and, when `flaky` is
    /// given, loses once at that rate, as a trial spoiled by the machine does).
    fn search(full: f64, plan: SearchPlan, capacity: u64, mut flaky: Option<u64>) -> PacedMax {
        let mut s = PacedMax::new(full, plan);
        let mut n = 0;
        while let Some(rate) = s.next_rate() {
            n += 1;
            assert!(n < 50, "the search ends");
            let spoiled = flaky == Some(rate);
            if spoiled {
                flaky = None;
            }
            let lost = if rate <= capacity && !spoiled { rate / 2000 } else { rate / 50 };
            s.record(Trial::new(rate, rate, rate as f64, lost));
        }
        s
    }

    #[test]
    fn bisection_finds_the_highest_rate_served_within_its_resolution() {
        let plan = SearchPlan { full_rate_secs: 2.0, trial_secs: 1.0, steps: 6, retries: 2 };
        let s = search(640_000.0, plan, 250_000, None);
        assert!(s.lossless());
        // 640000 / 2^6 = 10000: within one step below the capacity, never above it.
        assert!(s.pps() <= 250_000 && s.pps() > 240_000, "{}", s.pps());
        let rates: Vec<u64> = s.trials.iter().map(|t| t.rate_pps).collect();
        assert_eq!(rates[0], 320_000, "first half the full-rate figure");
        assert_eq!(rates[1], 320_000, "a failed rate is tried again");
        assert_eq!(rates[2], 160_000);
        assert!(s.trials.len() <= 6 + 2, "bounded: {rates:?}");
        assert!(s.trials_text().starts_with("320000 lost 2.00 %, 320000 lost 2.00 %, 160000 served"));
    }

    /// One spoiled trial does not halve the maximum: the rate is tried again.
    #[test]
    fn a_single_spoiled_trial_is_retried() {
        let plan = SearchPlan::new(false);
        let clean = search(600_000.0, plan, 400_000, None);
        let spoiled = search(600_000.0, plan, 400_000, Some(300_000));
        assert_eq!(clean.pps(), spoiled.pps());
        assert!(spoiled.trials.iter().filter(|t| t.rate_pps == 300_000).count() == 2);
        // Without retries the same spoiled trial pulls the maximum below 300000.
        let quick = SearchPlan { retries: 0, ..plan };
        assert!(search(600_000.0, quick, 400_000, Some(300_000)).pps() < 300_000);
    }

    #[test]
    fn quick_search_is_shorter() {
        let s = search(600_000.0, SearchPlan::new(true), 200_000, None);
        assert_eq!(s.trials.len(), 4);
        assert!(s.pps() <= 200_000 && s.pps() > 200_000 - 600_000 / 16, "{}", s.pps());
    }

    /// Loss of at most 0.1 % counts as served; a generator short of the rate shows only
    /// the rate it reached, and the report says so.
    #[test]
    fn a_trial_is_served_within_the_loss_limit_at_the_rate_reached() {
        assert!(Trial::new(100_000, 100_000, 100_000.0, 100).served);
        assert!(!Trial::new(100_000, 100_000, 100_000.0, 101).served);
        assert!(!Trial::new(100_000, 0, 0.0, 0).served);
        let short = Trial::new(100_000, 90_000, 90_000.0, 0);
        assert!(short.served);
        assert_eq!(short.served_pps(), 90_000);
        assert_eq!(Trial::new(100_000, 100_500, 100_500.0, 0).served_pps(), 100_000);
        let mut s = PacedMax::new(200_000.0, SearchPlan { retries: 0, ..SearchPlan::new(true) });
        assert_eq!(s.next_rate(), Some(100_000));
        s.record(short);
        assert_eq!(s.pps(), 90_000, "what the generator reached");
        assert!(s.trials_text().starts_with("100000 served (generator reached 90000)"), "{}", s.trials_text());
    }

    /// A server that loses at every rate tried gets the lowest rate as its "maximum",
    /// marked as not lossless.
    #[test]
    fn no_rate_served_is_said() {
        let s = search(640_000.0, SearchPlan::new(true), 0, None);
        assert!(!s.lossless());
        assert_eq!(s.pps(), 40_000);
        assert_eq!(PacedMax::new(0.0, SearchPlan::new(true)).next_rate(), None);
    }
}
