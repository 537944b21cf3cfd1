//! The softirq: our NAPI poll loop (`net_rx_action`, net/core/dev.c).
//!
//! One [`Stack::poll`] is one NAPI poll: reap the completion ring, take up to
//! `napi_weight` descriptors from the rx ring (ring indices touched once),
//! run each through the protocol handlers, refill the fill ring, push what
//! socks have queued to send, and hand the tx batch to the ring (kicking the
//! kernel only when `need_wakeup` says so). Nothing on this path allocates or
//! locks.
//!
//! [`LoopStats`] is this stack's `si` column: the share of wall time the loop
//! spent doing work, as opposed to spinning on empty rings.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::netdevice::NetDevice;
use crate::stack::Stack;

/// How often the neighbour timers run.
const TIMER_INTERVAL: Duration = Duration::from_millis(100);

/// What the loop did: its busy share is our `si`.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct LoopStats {
    pub polls: u64,
    /// Polls that found work.
    pub busy_polls: u64,
    pub busy_ns: u64,
    pub total_ns: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

impl LoopStats {
    /// Adds one poll that took `dt_ns`.
    #[inline]
    pub fn record(&mut self, r: PollResult, dt_ns: u64) {
        self.polls += 1;
        self.total_ns += dt_ns;
        self.rx_packets += r.rx as u64;
        self.tx_packets += r.tx as u64;
        if r.did_work() {
            self.busy_polls += 1;
            self.busy_ns += dt_ns;
        }
    }

    /// Share of time spent doing work, 0.0–1.0.
    pub fn busy_share(&self) -> f64 {
        if self.total_ns == 0 {
            0.0
        } else {
            self.busy_ns as f64 / self.total_ns as f64
        }
    }
}

/// What one poll did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollResult {
    pub rx: usize,
    pub tx: usize,
    pub completed: usize,
}

impl PollResult {
    pub fn did_work(&self) -> bool {
        self.rx + self.tx + self.completed > 0
    }
}

impl<D: NetDevice> Stack<D> {
    /// One NAPI poll.
    pub fn poll(&mut self) -> PollResult {
        let now = Instant::now();
        let completed = self.dev.complete(&mut self.free);

        let mut batch = std::mem::take(&mut self.rx_batch);
        self.dev.receive(self.cfg.napi_weight, &mut batch);
        let rx = batch.len();
        if rx > 0 {
            let umem = Arc::clone(&self.umem);
            for d in batch.drain(..) {
                self.netif_receive(&umem, d, now);
            }
        }
        self.rx_batch = batch;
        self.refill();

        // Socks with data to send, each drained up to the weight.
        let mut scheduled = self.tx_scheduled.len();
        while scheduled > 0 {
            scheduled -= 1;
            let Some(sock) = self.tx_scheduled.pop() else { break };
            // Clear the mark before draining: a send racing with us re-marks.
            sock.tx_scheduled.store(false, std::sync::atomic::Ordering::SeqCst);
            self.udp_push_pending(&sock, self.cfg.napi_weight, now);
            sock.wq.wake_up();
            if sock.queued_xmit() > 0 && !sock.tx_scheduled.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let _ = self.tx_scheduled.push(sock);
            }
        }

        let mut tx = 0;
        if !self.tx_batch.is_empty() {
            let before = self.tx_batch.len();
            tx = self.dev.transmit(&mut self.tx_batch);
            self.mib.XskTxFrames += tx as u64;
            if tx < before {
                self.mib.XskTxRingFull += (before - tx) as u64;
            }
        }

        if now.duration_since(self.last_timer_run) >= TIMER_INTERVAL {
            self.last_timer_run = now;
            self.neigh_timers(now);
            // Keep the loop's cache from hoarding frames other threads need.
            let keep = self.dev.fill_capacity() + 4 * self.cfg.napi_weight;
            while self.free.len() > keep {
                let f = self.free.pop().expect("longer than keep");
                self.pool.put(f);
            }
        }

        let r = PollResult { rx, tx, completed };
        if !r.did_work() {
            self.dev.wake_rx();
        }
        r
    }

    /// Polls until `stop()` says so, keeping `stats`. `stop` runs on the
    /// loop's thread between polls, for work that must happen there; its
    /// time is not counted as busy.
    pub fn run_until(&mut self, stats: &mut LoopStats, mut stop: impl FnMut(&mut Self) -> bool) {
        while !stop(self) {
            let t0 = Instant::now();
            let r = self.poll();
            stats.record(r, t0.elapsed().as_nanos() as u64);
        }
    }
}
