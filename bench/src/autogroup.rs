//! The benchmark's share of a shared machine: the nice value of its scheduling autogroup.
//!
//! With `CONFIG_SCHED_AUTOGROUP` and `kernel.sched_autogroup_enabled` set (the development
//! VM's default), the scheduler puts the tasks of each session (`setsid`) in a group of their
//! own and shares each CPU between the groups first, then between the tasks of a group
//! (kernel/sched/autogroup.c; sched(7), "The autogroup feature"). A task's own nice value
//! ranks it only inside its group: a build that another engineer runs under `nice -n 19` in
//! a session of its own weighs as much, against the benchmark's whole session, as a task at
//! nice 0. On 2026-12-01, with three such builds on the VM, a busy-polling echo server on
//! CPU 1 was descheduled 600–750 ms a second and its round trips took milliseconds, the
//! kernel's servers' as well: the rows measured the machine.
//!
//! The benchmark therefore lowers its group's nice value for the run (`/proc/self/autogroup`;
//! lowering it needs `CAP_SYS_NICE`, which root has) and restores it when done
//! ([`AutogroupNice`]), so that the servers and the generator it starts (children: same
//! session, same group) take nearly all of their CPUs while builds elsewhere wait. At -20 the
//! group weighs 88761 against a nice-0 group's 1024 (`sched_prio_to_weight`,
//! kernel/sched/core.c). The groups still get a slice now and then: the rows then say how
//! long the loop was descheduled.

use std::path::Path;

const AUTOGROUP: &str = "/proc/self/autogroup";
const ENABLED: &str = "/proc/sys/kernel/sched_autogroup_enabled";

/// The group's nice value, set for as long as this lives and restored on drop.
#[derive(Debug)]
pub struct AutogroupNice {
    /// The group's name and the nice value it had ("/autogroup-578", 0).
    pub group: String,
    pub was: i32,
    pub now: i32,
}

impl AutogroupNice {
    /// Sets this process's autogroup's nice value to `nice` (-20 to 19).
    ///
    /// # Errors
    ///
    /// Why it was not set: autogroups off or absent (nothing to do), or the write refused
    /// (`EPERM` without `CAP_SYS_NICE`, `EINVAL` out of range).
    pub fn set(nice: i32) -> Result<AutogroupNice, String> {
        let enabled = std::fs::read_to_string(ENABLED).map(|s| s.trim() == "1").unwrap_or(false);
        if !enabled || !Path::new(AUTOGROUP).exists() {
            return Err("no scheduling autogroups (kernel.sched_autogroup_enabled is not 1)".into());
        }
        let (group, was) = read()?;
        std::fs::write(AUTOGROUP, nice.to_string()).map_err(|e| format!("{AUTOGROUP}: {e}"))?;
        let (_, now) = read()?;
        Ok(AutogroupNice { group, was, now })
    }
}

impl Drop for AutogroupNice {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(AUTOGROUP, self.was.to_string()) {
            eprintln!("side-by-side: {AUTOGROUP}: {e}: the session's autogroup keeps nice {}", self.now);
        }
    }
}

fn read() -> Result<(String, i32), String> {
    let text = std::fs::read_to_string(AUTOGROUP).map_err(|e| format!("{AUTOGROUP}: {e}"))?;
    parse(&text).ok_or_else(|| format!("{AUTOGROUP}: not understood: {text:?}"))
}

/// `/proc/PID/autogroup` as `proc_sched_autogroup_show_task` prints it: "/autogroup-578 nice 0".
pub fn parse(text: &str) -> Option<(String, i32)> {
    let mut w = text.split_whitespace();
    let group = w.next()?.to_string();
    (w.next()? == "nice").then_some(())?;
    Some((group, w.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_proc_file() {
        assert_eq!(parse("/autogroup-578 nice 0\n"), Some(("/autogroup-578".into(), 0)));
        assert_eq!(parse("/autogroup-590 nice -20\n"), Some(("/autogroup-590".into(), -20)));
        assert_eq!(parse("/autogroup-1 weight 3"), None);
        assert_eq!(parse(""), None);
    }
}
