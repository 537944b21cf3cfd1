//! A one-line progress display for long runs: rate, sent, received, elapsed.
//!
//! On a terminal the line is an `indicatif` bar (a message-only template on
//! stderr), redrawn in place about four times a second and cleared at the end.
//! When stderr is not a terminal the display is off, unless forced on, where it
//! prints a plain line once a second, so a log file gets a readable trace
//! instead of escape codes. The caller asks [`Progress::due`] from its loop, a
//! comparison of two `Instant`s, and pays for formatting only when a line is due.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `--progress auto|on|off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressMode {
    /// On when stderr is a terminal.
    Auto,
    On,
    Off,
}

/// The counters a line shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub sent: u64,
    /// `None` when nothing is received (not in echo mode).
    pub received: Option<u64>,
}

/// Where the lines go.
enum Sink {
    Off,
    /// An `indicatif` bar on the terminal.
    Bar(ProgressBar),
    /// Plain lines on stderr.
    Lines,
}

/// The display: see the module docs.
pub struct Progress {
    sink: Sink,
    start: Instant,
    period: Duration,
    next: Instant,
    last_at: Instant,
    last_sent: u64,
}

impl Progress {
    /// A display that starts counting at `start`.
    pub fn new(mode: ProgressMode, start: Instant) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let enabled = match mode {
            ProgressMode::Auto => terminal,
            ProgressMode::On => true,
            ProgressMode::Off => false,
        };
        let sink = match (enabled, terminal) {
            (false, _) => Sink::Off,
            (true, true) => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
                bar.set_style(
                    ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                Sink::Bar(bar)
            }
            (true, false) => Sink::Lines,
        };
        let period = if terminal { Duration::from_millis(250) } else { Duration::from_secs(1) };
        Progress { sink, start, period, next: start + period, last_at: start, last_sent: 0 }
    }

    /// Whether anything is shown.
    pub fn enabled(&self) -> bool {
        !matches!(self.sink, Sink::Off)
    }

    /// Whether a line is due at `now`.
    #[inline]
    pub fn due(&self, now: Instant) -> bool {
        self.enabled() && now >= self.next
    }

    /// Draws the line for `snap` at `now` (call when [`due`](Self::due)).
    pub fn draw(&mut self, now: Instant, snap: Snapshot) {
        if !self.enabled() {
            return;
        }
        let dt = now.duration_since(self.last_at).as_secs_f64();
        let rate = if dt > 0.0 { (snap.sent - self.last_sent) as f64 / dt } else { 0.0 };
        let line = format_line(now.duration_since(self.start), rate, snap);
        match &self.sink {
            Sink::Bar(bar) => bar.set_message(line),
            Sink::Lines => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{line}");
                let _ = err.flush();
            }
            Sink::Off => {}
        }
        self.last_at = now;
        self.last_sent = snap.sent;
        self.next = now + self.period;
    }

    /// Clears the line (terminal) so the summary that follows starts clean.
    pub fn finish(&mut self) {
        if let Sink::Bar(bar) = &self.sink {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `  1.234 Mpps  sent 12345678  received 12345600  elapsed 10.0 s`
pub fn format_line(elapsed: Duration, rate_pps: f64, snap: Snapshot) -> String {
    let rate =
        if rate_pps >= 1e6 { format!("{:7.3} Mpps", rate_pps / 1e6) } else { format!("{:7.1} kpps", rate_pps / 1e3) };
    let mut line = format!("{rate}  sent {:>12}", snap.sent);
    if let Some(r) = snap.received {
        line.push_str(&format!("  received {r:>12}"));
    }
    line.push_str(&format!("  elapsed {:6.1} s", elapsed.as_secs_f64()));
    line
}
