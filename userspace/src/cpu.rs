//! Where threads run: the CPUs this process may use, and binding the calling
//! thread to one of them (`sched_setaffinity(2)`, through `core_affinity`).
//! The loop and the application can share a core or have one each
//! (`xsknet --cpu`, `--app-cpu`; docs/latency.md).

use std::io;
use std::sync::OnceLock;

/// The CPUs the process may run on, read once, at the first call: later
/// calls are not narrowed by a thread already bound (the mask read is the
/// calling thread's).
fn allowed() -> &'static [core_affinity::CoreId] {
    static ALLOWED: OnceLock<Vec<core_affinity::CoreId>> = OnceLock::new();
    ALLOWED.get_or_init(|| core_affinity::get_core_ids().unwrap_or_default())
}

/// The CPU numbered `cpu`, if this process may run on it (as it could when
/// it first asked: call this before binding any thread).
///
/// # Errors
///
/// `InvalidInput`, naming the CPUs allowed, when it may not.
pub fn core(cpu: usize) -> io::Result<core_affinity::CoreId> {
    let ids = allowed();
    ids.iter().copied().find(|c| c.id == cpu).ok_or_else(|| {
        let allowed: Vec<String> = ids.iter().map(|c| c.id.to_string()).collect();
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {cpu} is not one this process may run on (allowed: {})", allowed.join(", ")),
        )
    })
}

/// Binds the calling thread to `cpu`.
///
/// # Errors
///
/// As [`core`]; `Other` if the kernel refused the mask.
pub fn bind_current(cpu: usize) -> io::Result<()> {
    let c = core(cpu)?;
    if core_affinity::set_for_current(c) {
        Ok(())
    } else {
        Err(io::Error::other(format!("sched_setaffinity to CPU {cpu} failed")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_we_may_not_use_is_refused_with_the_allowed_ones() {
        let e = core(usize::MAX).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("allowed: "), "{e}");
        // The first allowed CPU binds (a test thread of its own, so the others are not bound).
        let first = core_affinity::get_core_ids().unwrap()[0].id;
        std::thread::spawn(move || bind_current(first)).join().unwrap().unwrap();
    }
}
