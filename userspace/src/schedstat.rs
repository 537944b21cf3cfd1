//! The scheduler's view of the loop's thread: how long it waited on a run
//! queue while it could have run, and how often it was switched out against
//! its will. A busy-polling loop that is never descheduled has neither; when
//! it has, that time is in every packet that arrived meanwhile.
//!
//! Read from procfs, not on the per-packet path (at a publication, at exit):
//! `/proc/thread-self/schedstat` (`run_delay`, the second field; kernel's
//! `proc_pid_schedstat`, fs/proc/base.c, and Documentation/scheduler/sched-stats.rst)
//! and `/proc/thread-self/status` (`nonvoluntary_ctxt_switches`, `task_context_switch_counts`
//! in fs/proc/array.c).

use std::io;

/// What the scheduler says about one thread, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ThreadSched {
    /// Nanoseconds the thread waited on a run queue while runnable
    /// (`run_delay`): the time it was descheduled when it wanted to run.
    pub run_delay_ns: u64,
    /// Times the thread was switched out while it could still run
    /// (`nonvoluntary_ctxt_switches`): preemptions by other tasks.
    pub nivcsw: u64,
}

impl ThreadSched {
    /// The calling thread's figures.
    ///
    /// # Errors
    ///
    /// The I/O error of reading `/proc/thread-self` (no procfs mounted), or
    /// `InvalidData` if its files do not read as documented (a kernel without
    /// `CONFIG_SCHED_INFO` has no `schedstat`).
    pub fn current() -> io::Result<ThreadSched> {
        let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
        let status = std::fs::read_to_string("/proc/thread-self/status")?;
        ThreadSched::parse(&schedstat, &status)
    }

    /// The figures in the text of a thread's `schedstat` and `status` files.
    ///
    /// # Errors
    ///
    /// `InvalidData` when `schedstat` has no second number or `status` no
    /// `nonvoluntary_ctxt_switches` line.
    pub fn parse(schedstat: &str, status: &str) -> io::Result<ThreadSched> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("no {what} in procfs"));
        let run_delay_ns =
            schedstat.split_ascii_whitespace().nth(1).and_then(|v| v.parse().ok()).ok_or_else(|| bad("run_delay"))?;
        let nivcsw = status
            .lines()
            .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| bad("nonvoluntary_ctxt_switches"))?;
        Ok(ThreadSched { run_delay_ns, nivcsw })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_procfs_text() {
        let status = "Name:\txsknet\nvoluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t42\n";
        let s = ThreadSched::parse("123456 7890 12\n", status).unwrap();
        assert_eq!(s, ThreadSched { run_delay_ns: 7890, nivcsw: 42 });
        assert!(ThreadSched::parse("123456\n", status).is_err());
        assert!(ThreadSched::parse("1 2 3\n", "Name:\tx\n").is_err());
    }

    #[test]
    fn reads_this_thread() {
        // procfs is there wherever the tests run (Linux): the figures only grow.
        let a = ThreadSched::current().unwrap();
        let b = ThreadSched::current().unwrap();
        assert!(b.run_delay_ns >= a.run_delay_ns && b.nivcsw >= a.nivcsw);
    }
}
