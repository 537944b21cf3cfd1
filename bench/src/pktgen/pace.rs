//! Pacing: a token bucket on the monotonic clock, handing out packets in
//! batches sized to the rate.
//!
//! Tokens accrue at `rate` per second (kept in nano-packets, integers only, so
//! that no rounding drifts the rate over a long run). The loop asks for up to
//! a batch; the bucket grants nothing until a whole **quantum** is there, so
//! the sender wakes the kernel once per quantum rather than once per packet:
//! about every [`QUANTUM_INTERVAL_NS`] (20 µs), between 1 packet (low rates,
//! where every packet goes out on its own and on time) and the batch size.
//! The bucket holds at most `depth` = max(quantum, 10 ms of traffic): a stall
//! shorter than that (a scheduler time slice lost to another task) is made up
//! at full speed, a batch at a time, so the average rate holds; a longer one is
//! forgiven rather than turned into a burst.

const NS: u64 = 1_000_000_000;

/// Target spacing between two grants at high rates.
pub const QUANTUM_INTERVAL_NS: u64 = 20_000;

#[derive(Clone, Debug)]
pub struct TokenBucket {
    /// Packets per second; 0 = no limit.
    rate: u64,
    quantum: u64,
    depth: u64,
    /// Tokens, in nano-packets (1 packet = 10^9).
    credit: u64,
    /// Time it takes to fill an empty bucket, ns.
    fill_ns: u64,
    last_ns: u64,
}

impl TokenBucket {
    /// A bucket for `rate` pps handing out at most `batch` packets at once,
    /// starting at `now_ns` with one quantum of credit.
    pub fn new(rate: u64, batch: u64, now_ns: u64) -> TokenBucket {
        let batch = batch.max(1);
        let (quantum, depth) = Self::sizes(rate, batch);
        let fill_ns = if rate == 0 { 0 } else { (depth * NS).div_ceil(rate) };
        TokenBucket { rate, quantum, depth, credit: quantum * NS, fill_ns, last_ns: now_ns }
    }

    /// (quantum, depth) for a rate and batch size.
    pub fn sizes(rate: u64, batch: u64) -> (u64, u64) {
        if rate == 0 {
            return (batch, batch);
        }
        let quantum = (rate * QUANTUM_INTERVAL_NS / NS).clamp(1, batch);
        let depth = (rate / 100).max(quantum);
        (quantum, depth)
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    pub fn quantum(&self) -> u64 {
        self.quantum
    }

    pub fn depth(&self) -> u64 {
        self.depth
    }

    /// Whole tokens available at `now_ns` (after refilling).
    pub fn available(&mut self, now_ns: u64) -> u64 {
        if self.rate == 0 {
            return u64::MAX;
        }
        self.refill(now_ns);
        self.credit / NS
    }

    #[inline]
    fn refill(&mut self, now_ns: u64) {
        let dt = now_ns.saturating_sub(self.last_ns);
        self.last_ns = self.last_ns.max(now_ns);
        let full = self.depth * NS;
        // dt * rate cannot overflow below fill_ns: it stays under depth * 10^9.
        self.credit = if dt >= self.fill_ns { full } else { (self.credit + dt * self.rate).min(full) };
    }

    /// Takes up to `max` packets at `now_ns`: nothing until a whole quantum
    /// (or `max`, if smaller: the end of the run, or few free frames) is there.
    #[inline]
    pub fn take(&mut self, now_ns: u64, max: u64) -> u64 {
        if self.rate == 0 {
            return max;
        }
        self.refill(now_ns);
        let avail = self.credit / NS;
        if avail < self.quantum.min(max) || max == 0 {
            return 0;
        }
        let n = avail.min(max);
        self.credit -= n * NS;
        n
    }
}
