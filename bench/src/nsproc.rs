//! A program run in a network namespace on one CPU, its output in a log
//! file, stopped with SIGINT (then SIGKILL) when dropped, so that nothing
//! outlives the namespaces: the side-by-side benchmark's and the soak's
//! servers and generators.
#![warn(clippy::undocumented_unsafe_blocks)]

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use xsknet::testing::command_in;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A running program and its log.
pub struct NsProc {
    child: Child,
    name: String,
    log: PathBuf,
}

impl NsProc {
    /// Runs `args` under `taskset -c cpu` in namespace `ns`, stdout and
    /// stderr to `dir/name.log`.
    ///
    /// # Errors
    ///
    /// The log file could not be made, or the program not started.
    pub fn spawn(ns: &str, cpu: &str, args: &[String], name: &str, dir: &Path) -> Result<NsProc, BoxError> {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let mut full = vec!["taskset".to_string(), "-c".into(), cpu.into()];
        full.extend_from_slice(args);
        let child = command_in(ns, &full).stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file).spawn()?;
        Ok(NsProc { child, name: name.to_string(), log })
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its pid (`ip netns exec` and `taskset` exec: the program's own).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for a line containing "ready".
    ///
    /// # Errors
    ///
    /// It exited first, or did not say it within `timeout` (with its log).
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), BoxError> {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if self.log().contains("ready") {
                return Ok(());
            }
            if let Some(status) = self.exited() {
                return Err(format!("{} exited ({status}) before it was ready:\n{}", self.name, self.log()).into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("{} not ready after {timeout:?}:\n{}", self.name, self.log()).into())
    }

    /// Waits up to `timeout` for it to exit by itself, else interrupts it
    /// (SIGINT, SIGKILL 10 s later); the status if it exited by itself.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.interrupt(Duration::from_secs(10))
    }

    /// Waits up to `timeout` for it to exit by itself; its log.
    ///
    /// # Errors
    ///
    /// It failed, or was still running (then interrupted), with its log.
    pub fn wait_exit(mut self, timeout: Duration) -> Result<String, BoxError> {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if let Some(status) = self.exited() {
                if !status.success() {
                    return Err(format!("{} exited ({status}):\n{}", self.name, self.log()).into());
                }
                return Ok(self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.interrupt(Duration::from_secs(5));
        Err(format!("{} still running after {timeout:?}:\n{}", self.name, self.log()).into())
    }

    /// SIGINT, waits for the exit; its log.
    ///
    /// # Errors
    ///
    /// None today: the `Result` keeps callers' `?`.
    pub fn stop(mut self) -> Result<String, BoxError> {
        self.interrupt(Duration::from_secs(5));
        Ok(self.log())
    }

    /// SIGINT, waits up to `grace`, then SIGKILL; the status if it exited
    /// before the SIGKILL.
    pub fn interrupt(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.exited() {
            return Some(s);
        }
        // SAFETY: kill(2) on our own child's pid, not reaped yet (try_wait said so).
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let t0 = Instant::now();
        while t0.elapsed() < grace {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for NsProc {
    fn drop(&mut self) {
        self.interrupt(Duration::from_secs(5));
    }
}
