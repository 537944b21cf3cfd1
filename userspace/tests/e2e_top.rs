//! `xsknet top` against a running instance, read as a person reads it:
//! `xsknet echo` serves in one namespace of a veth pair while the peer's
//! kernel sends it UDP; `xsknet top` runs in a tmux pane of 160×50 whose
//! screen the test reads (`tmux capture-pane`), then quits it with `q`; the
//! plain output (`--plain --count 2`) is read from a pipe; and top is seen
//! to exit with a clear message when the instance stops.
//!
//! Needs root (skips otherwise, fails under `CI`), `iproute2`, `ethtool`
//! and `tmux`.

mod common;

use std::io::Read;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use xsknet::testing::{self, in_netns, NetNsPair, NetNsPairOptions};

/// A tmux server of the test's own (`tmux -L NAME`), killed on drop so that
/// a failing test leaves no pane running.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Tmux {
        Tmux { socket: format!("xsknet-top-test-{}", std::process::id()) }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("tmux: {e} (apt-get install tmux, or make deps)"))
    }

    /// The pane's screen as text.
    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", "top"]);
        assert!(out.status.success(), "capture-pane: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `ok(screen)` or `timeout`; returns the last screen and whether it passed.
    fn wait_for(&self, timeout: Duration, ok: impl Fn(&str) -> bool) -> (String, bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.screen();
            if ok(&s) {
                return (s, true);
            }
            if Instant::now() >= deadline {
                return (s, false);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// UDP datagrams from the peer's kernel to the echo port, about 2000 a
/// second, until `stop` (at most 60 s); returns how many were sent.
fn drive_udp(peer_ns: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        in_netns(&peer_ns, || {
            let s = UdpSocket::bind((PEER_ADDR, 0)).expect("bind");
            s.set_nonblocking(true).unwrap();
            let t0 = Instant::now();
            let mut sent = 0;
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(60) {
                for _ in 0..2 {
                    if s.send_to(&[0x5a; 100], (SERVER_ADDR, ECHO_PORT)).is_ok() {
                        sent += 1;
                    }
                }
                while s.recv(&mut buf).is_ok() {}
                std::thread::sleep(Duration::from_millis(1));
            }
            sent
        })
    })
}

/// The packets per second on the screen's `rx ring` row (`12.3k` → 12300).
fn rx_ring_rate(screen: &str) -> Option<f64> {
    let line = screen.lines().find(|l| l.contains("rx ring"))?;
    let after = line.split("rx ring").nth(1)?;
    let tok = after.split_whitespace().next()?;
    let (num, mult) = match tok.chars().last()? {
        'k' => (&tok[..tok.len() - 1], 1e3),
        'M' => (&tok[..tok.len() - 1], 1e6),
        _ => (tok, 1.0),
    };
    num.parse::<f64>().ok().map(|v| v * mult)
}

#[test]
fn top_shows_a_running_instance_on_a_terminal_and_in_plain_lines() {
    if !testing::require_root("top_shows_a_running_instance_on_a_terminal_and_in_plain_lines") {
        return;
    }
    let have_tmux = Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success());
    assert!(have_tmux, "tmux not found: apt-get install tmux (make deps)");
    let pair = NetNsPair::with_options(&NetNsPairOptions {
        peer_addr: Some((PEER_ADDR, PREFIX)),
        ipv6: false,
        ..NetNsPairOptions::default()
    })
    .expect("netns pair");
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let load = drive_udp(pair.peer_ns().to_string(), stop.clone());

    // On a terminal: tmux gives top a pseudo-terminal of 160×50.
    let tmux = Tmux::new();
    let cmd = format!("{BIN} top --iface {}; echo \"top exited with status $?\"; sleep 60", pair.ifname());
    let out = tmux.run(&["new-session", "-d", "-s", "top", "-x", "160", "-y", "50", &cmd]);
    assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
    let headings =
        ["Loop (si)", "Stages", "Drops by reason", "Frames", "fill headroom", "Latency", "TCP sockets", "rx ring"];
    let (screen, ok) = tmux.wait_for(Duration::from_secs(10), |s| {
        headings.iter().all(|h| s.contains(h))
            && s.contains("over the last")
            && rx_ring_rate(s).is_some_and(|r| r > 0.0)
    });
    assert!(ok, "top's screen lacks a heading or a non-zero rx rate after 10 s:\n{screen}");
    assert!(screen.contains(&format!("on {} queue 0", pair.ifname())), "{screen}");
    assert!(screen.contains("ESTAB") && screen.contains("LISTEN"), "{screen}");
    let out = tmux.run(&["send-keys", "-t", "top", "q"]);
    assert!(out.status.success());
    let (screen, ok) = tmux.wait_for(Duration::from_secs(5), |s| s.contains("top exited with status"));
    assert!(ok, "top did not exit within 5 s of q:\n{screen}");
    assert!(screen.contains("top exited with status 0"), "{screen}");
    // The terminal is back: the main screen, not top's.
    assert!(!screen.contains("Drops by reason"), "{screen}");

    // In a pipe: plain lines, a header and one per refresh.
    let out = Command::new(BIN)
        .args(["top", "--iface", pair.ifname(), "--count", "2", "--interval", "0.5"])
        .stdin(Stdio::null())
        .output()
        .expect("xsknet top");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "top --count 2: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two lines:\n{text}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(&header[..5], ["uptime", "si%", "age_ms", "xdp/s", "rx/s"], "{text}");
    let rx = header.iter().position(|&c| c == "rx/s").unwrap();
    for l in &lines[1..] {
        let fields: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(fields.len(), header.len(), "{text}");
        let rate: f64 = fields[rx].parse().unwrap_or_else(|_| panic!("rx/s {:?} in\n{text}", fields[rx]));
        assert!(rate > 0.0, "rx/s is 0 while traffic flows:\n{text}");
    }

    // The instance going away: a clear message and an exit, not a panic.
    let mut top = Command::new(BIN)
        .args(["top", "--iface", pair.ifname(), "--plain", "--interval", "0.2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xsknet top");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let sent = load.join().expect("load thread");
    assert!(sent > 0);
    let f = x.stop();
    f.assert_clean_exit();
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = top.try_wait().expect("top's status") {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = top.kill();
            let _ = top.wait();
            panic!("top still runs 5 s after the instance stopped");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    top.stderr.take().expect("piped stderr").read_to_string(&mut err).expect("top's stderr");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("has stopped") && !err.contains("panicked"), "{err}");
}
