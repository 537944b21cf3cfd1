//! SIGINT, SIGTERM and SIGHUP as a flag the loop checks between polls, so the
//! command stops cleanly: sockets closed, XDP program detached, summary out.
//! SIGHUP is what a process gets when the terminal it runs under closes
//! (the kernel's tty hangup, `tty_vhangup`, and the shell passing it on):
//! its default action would end the process with no report and no
//! `--stats-json`, so it stops the command as the other two do.
//!
//! The handler is `signal-hook`'s (`signal_hook::flag`): it only stores to the
//! atomic, which is async-signal-safe, and chains to any handler installed
//! before it.

use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

static STOP: AtomicBool = AtomicBool::new(false);

/// Installs the handler for SIGINT, SIGTERM and SIGHUP.
///
/// # Errors
/// `sigaction(2)`'s failure.
pub fn install() -> std::io::Result<()> {
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register(sig, &STOP)?;
    }
    Ok(())
}

/// Whether a stop was asked for.
#[inline]
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Asks for a stop from inside the process (a `--duration` running out).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}
