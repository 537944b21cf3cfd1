//! The scheduler's view of the loop's thread: how long it waited on a run
//! queue while it could have run, and how often it was switched out against
//! its will. A busy-polling loop that is never descheduled has neither; when
//! it has, that time is in every packet that arrived meanwhile.
//!
//! Read from procfs, not on the per-packet path (at a publication, at exit):
//! `/proc/thread-self/schedstat` (`sum_exec_runtime` and `run_delay`, the first
//! two fields; kernel's
//! `proc_pid_schedstat`, fs/proc/base.c, and Documentation/scheduler/sched-stats.rst)
//! and `/proc/thread-self/status` (`nonvoluntary_ctxt_switches`, `task_context_switch_counts`
//! in fs/proc/array.c).

use std::io;

/// What the scheduler says about one thread, since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ThreadSched {
    /// Nanoseconds the thread ran on a CPU (`sum_exec_runtime`).
    #[serde(default)]
    pub run_ns: u64,
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
        PROCFS.with(|files| {
            let mut files = files.borrow_mut();
            if files.is_none() {
                *files = Some(ThreadFiles::open()?);
            }
            files.as_ref().expect("opened above").read()
        })
    }

    /// The figures in the text of a thread's `schedstat` and `status` files.
    ///
    /// # Errors
    ///
    /// `InvalidData` when `schedstat` has not two numbers or `status` no
    /// `nonvoluntary_ctxt_switches` line.
    pub fn parse(schedstat: &str, status: &str) -> io::Result<ThreadSched> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("no {what} in procfs"));
        let field = |i: usize, what: &str| {
            schedstat.split_ascii_whitespace().nth(i).and_then(|v| v.parse().ok()).ok_or_else(|| bad(what))
        };
        let run_ns = field(0, "sum_exec_runtime")?;
        let run_delay_ns = field(1, "run_delay")?;
        let nivcsw = status
            .lines()
            .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| bad("nonvoluntary_ctxt_switches"))?;
        Ok(ThreadSched { run_ns, run_delay_ns, nivcsw })
    }
}

thread_local! {
    /// The calling thread's procfs files, opened on its first reading:
    /// `/proc/thread-self` names the thread that opens it, and a reading
    /// then costs two `pread`s instead of two opens, reads and closes.
    static PROCFS: std::cell::RefCell<Option<ThreadFiles>> = const { std::cell::RefCell::new(None) };
}

/// One thread's `schedstat` and `status`, kept open.
struct ThreadFiles {
    schedstat: std::fs::File,
    status: std::fs::File,
}

/// Room for one reading of `status` (about 1.5 KiB on 6.x kernels; more
/// where the CPU and node masks are long).
const STATUS_BYTES: usize = 16384;

impl ThreadFiles {
    fn open() -> io::Result<ThreadFiles> {
        Ok(ThreadFiles {
            schedstat: std::fs::File::open("/proc/thread-self/schedstat")?,
            status: std::fs::File::open("/proc/thread-self/status")?,
        })
    }

    /// Reads both from their start (procfs makes the text anew at offset 0),
    /// into buffers on the stack: no allocation.
    fn read(&self) -> io::Result<ThreadSched> {
        use std::os::unix::fs::FileExt;
        let mut a = [0u8; 128];
        let mut b = [0u8; STATUS_BYTES];
        let n = self.schedstat.read_at(&mut a, 0)?;
        let m = self.status.read_at(&mut b, 0)?;
        fn text(buf: &[u8]) -> io::Result<&str> {
            std::str::from_utf8(buf).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "procfs text is not UTF-8"))
        }
        ThreadSched::parse(text(&a[..n])?, text(&b[..m])?)
    }
}

/// CPU time of the calling thread so far, ns
/// (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`: up to date, where `schedstat`'s
/// figure for a running thread may lag by a scheduler tick).
pub fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    (t.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(t.tv_nsec as u64)
}

/// CPU time of each thread of the process that still runs, ns, summed by
/// thread name (`/proc/self/task/*/comm` and `schedstat`), sorted by name.
/// Threads that ended are not in it: [`process_cpu_ns`] counts them.
pub fn threads_cpu_ns() -> Vec<(String, u64)> {
    let mut by_name: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    for t in tasks.flatten() {
        let path = t.path();
        let (Ok(comm), Ok(stat)) =
            (std::fs::read_to_string(path.join("comm")), std::fs::read_to_string(path.join("schedstat")))
        else {
            continue; // the thread ended meanwhile
        };
        let ns: u64 = stat.split_ascii_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0);
        *by_name.entry(comm.trim().to_string()).or_default() += ns;
    }
    by_name.into_iter().collect()
}

/// CPU time of the whole process so far, ns: every thread's, ended threads'
/// included (`clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`, clock_gettime(2)).
/// Zero if the clock cannot be read.
pub fn process_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    (t.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(t.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_procfs_text() {
        let status = "Name:\txsknet\nvoluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t42\n";
        let s = ThreadSched::parse("123456 7890 12\n", status).unwrap();
        assert_eq!(s, ThreadSched { run_ns: 123456, run_delay_ns: 7890, nivcsw: 42 });
        assert!(ThreadSched::parse("123456\n", status).is_err());
        assert!(ThreadSched::parse("1 2 3\n", "Name:\tx\n").is_err());
    }

    #[test]
    fn process_time_covers_this_thread() {
        // Spin until this thread has run 5 ms more (however long the machine takes).
        let start = ThreadSched::current().unwrap().run_ns;
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut thread = start;
        while thread < start + 5_000_000 && std::time::Instant::now() < give_up {
            std::hint::spin_loop();
            thread = ThreadSched::current().unwrap().run_ns;
        }
        assert!(thread >= start + 5_000_000, "the thread's run time did not grow: {start} → {thread}");
        let process = process_cpu_ns();
        assert!(process >= thread, "process {process} ns < this thread's {thread} ns");
    }

    #[test]
    fn reads_this_thread() {
        // procfs is there wherever the tests run (Linux): the figures only grow.
        let a = ThreadSched::current().unwrap();
        let b = ThreadSched::current().unwrap();
        assert!(b.run_ns >= a.run_ns && b.run_delay_ns >= a.run_delay_ns && b.nivcsw >= a.nivcsw);
    }
}
