//! End to end over TCP, with the kernel's own HTTP clients as the peers:
//! `xsknet http` serves a directory in one namespace of a veth pair; curl,
//! wget, ab and raw sockets in the other fetch from it. Files of 0 B to
//! 16 MiB must arrive byte for byte (sha256), errors must get their status,
//! and nothing outside the root may be served. Every test stops xsknet with
//! SIGINT, checks that every UMEM frame is accounted for and that the HTTP
//! counters of the JSON report add up. The last test runs the
//! `tcp_client` example (an active open from xsknet) against a kernel server.
//!
//! Needs root (skips otherwise, fails under `CI`), `iproute2`, `ethtool`,
//! `curl`, `wget`, `apache2-utils` (ab) and `python3`.

mod common;

use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddrV4, TcpStream},
    path::{Path, PathBuf},
    process::Output,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use common::*;
use xsknet::testing::{self, in_netns, run_in, spawn_in, NetNsPair};

const HTTP_PORT: u16 = 80;
/// The sizes fetched: empty, one byte, one full segment, past 64 KiB, 1 MB, 16 MiB.
const SIZES: [usize; 6] = [0, 1, 1460, 64 * 1024 + 1, 1_000_000, 16 << 20];
/// What the file outside the root holds: must never appear in a response.
const SECRET: &[u8] = b"the file outside the root\n";

/// A directory to serve, removed on drop: `root/` holds `f<SIZE>` for every
/// size, `index.html`, `sub/index.html`, a symbolic link `out` to `secret`
/// beside the root, and `in`, a link to `f1` inside it.
struct Site {
    base: PathBuf,
    root: PathBuf,
}

impl Site {
    fn new() -> Site {
        static N: AtomicU32 = AtomicU32::new(0);
        let base = std::env::temp_dir().join(format!(
            "xsknet-http-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        for size in SIZES {
            std::fs::write(root.join(format!("f{size}")), content(size)).unwrap();
        }
        std::fs::write(root.join("index.html"), b"<h1>xsknet</h1>\n").unwrap();
        std::fs::write(root.join("sub/index.html"), b"<p>sub</p>\n").unwrap();
        std::fs::write(base.join("secret"), SECRET).unwrap();
        std::os::unix::fs::symlink(base.join("secret"), root.join("out")).unwrap();
        std::os::unix::fs::symlink("f1", root.join("in")).unwrap();
        Site { base, root }
    }

    fn root(&self) -> &str {
        self.root.to_str().unwrap()
    }

    /// A path for a download, removed with the site.
    fn download(&self, name: &str) -> PathBuf {
        self.base.join(name)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// `size` bytes of xorshift noise seeded by the size: no two files alike,
/// and no run of bytes that compresses or repeats at a segment boundary.
fn content(size: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ size as u64;
    let mut v = Vec::with_capacity(size + 8);
    while v.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(size);
    v
}

fn sha256(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(path).output().expect("sha256sum");
    assert!(out.status.success(), "sha256sum {}: {out:?}", path.display());
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
}

fn url(path: &str) -> String {
    format!("http://{SERVER_ADDR}:{HTTP_PORT}{path}")
}

fn start(pair: &NetNsPair, site: &Site, extra: &[&str]) -> Xsknet {
    let mut args = vec!["--root", site.root()];
    args.extend_from_slice(extra);
    let x = Xsknet::start_command(pair.ns(), "http", pair.ifname(), HTTP_PORT, &args);
    warm_up_ping(pair.peer_ns(), SERVER_ADDR, Duration::from_secs(5));
    x
}

/// `curl -sS --max-time 60 ARGS` in the peer namespace.
fn curl(pair: &NetNsPair, args: &[&str]) -> Output {
    let mut all = vec!["curl", "-sS", "--max-time", "60"];
    all.extend_from_slice(args);
    run_in(pair.peer_ns(), &all)
}

/// Sends `request` from the peer namespace on a new connection, shuts down
/// our sending side, and returns everything the server sent until it closed.
fn raw(pair: &NetNsPair, request: &[u8]) -> Vec<u8> {
    in_netns(pair.peer_ns(), || {
        let addr = SocketAddrV4::new(SERVER_ADDR, HTTP_PORT);
        let mut s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request).expect("write");
        s.shutdown(Shutdown::Write).expect("shutdown");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("read to the server's FIN");
        got
    })
}

/// The status codes of the responses in `bytes`, in order.
fn statuses(bytes: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.match_indices("HTTP/1.1 ").filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok()).collect()
}

/// The HTTP section of the report: every count adds up, no errors; returns
/// (requests, responses by status).
fn http_counts(f: &Finished) -> (u64, std::collections::BTreeMap<u16, u64>) {
    let h = &f.json["http"];
    let requests = h["requests"].as_u64().unwrap_or_else(|| panic!("no http section: {}", f.json));
    let by_status: std::collections::BTreeMap<u16, u64> =
        h["by_status"].as_object().unwrap().iter().map(|(k, v)| (k.parse().unwrap(), v.as_u64().unwrap())).collect();
    assert_eq!(by_status.values().sum::<u64>(), requests, "by_status does not add up to requests: {h}");
    assert_eq!(h["errors"], 0, "{h}");
    let connections = h["connections"].as_u64().unwrap();
    assert_eq!(f.json["application"]["tcp_accepted"], connections, "{h}");
    assert_eq!(f.counter("TcpPassiveOpens"), connections, "one passive open per connection: {h}");
    assert!(f.stdout.contains(&format!("  http: {connections} connections, {requests} requests (")), "{}", f.stdout);
    (requests, by_status)
}

fn fetch_every_size(test: &str, extra: &[&str]) {
    if !testing::require_root(test) {
        return;
    }
    let pair = pair();
    let site = Site::new();
    let x = start(&pair, &site, extra);
    let mut fetches = 0;
    for size in SIZES {
        let want = sha256(&site.root.join(format!("f{size}")));
        let name = format!("f{size}");
        let got = site.download(&format!("curl-{size}"));
        let started = Instant::now();
        let out = curl(
            &pair,
            &["-o", got.to_str().unwrap(), "-w", "%{http_code} %{size_download}", &url(&format!("/{name}"))],
        );
        fetches += 1;
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("200 {size}"), "curl /{name}: {out:?}");
        assert_eq!(sha256(&got), want, "curl /{name}: content differs");
        if size == 16 << 20 {
            eprintln!("{test}: curl fetched 16 MiB in {:?}", started.elapsed());
        }
        let got = site.download(&format!("wget-{size}"));
        let out = run_in(
            pair.peer_ns(),
            &["wget", "-q", "-T", "60", "-t", "1", "-O", got.to_str().unwrap(), &url(&format!("/{name}"))],
        );
        fetches += 1;
        assert!(out.status.success(), "wget /{name}: {out:?}");
        assert_eq!(sha256(&got), want, "wget /{name}: content differs");
    }
    let f = x.stop();
    f.assert_clean_exit();
    let (requests, by_status) = http_counts(&f);
    assert_eq!(requests, fetches);
    assert_eq!(by_status.get(&200), Some(&fetches), "{by_status:?}");
    let body_bytes: u64 = SIZES.iter().map(|&s| 2 * s as u64).sum();
    let sent = f.json["http"]["bytes_sent"].as_u64().unwrap();
    assert!(
        (body_bytes..body_bytes + fetches * 400).contains(&sent),
        "bytes_sent {sent}: bodies are {body_bytes}, headers under 400 bytes each"
    );
    assert_eq!(f.counter("TcpOutRsts"), 0, "every connection closed cleanly");
}

#[test]
fn curl_and_wget_fetch_every_size_byte_exact() {
    fetch_every_size("curl_and_wget_fetch_every_size_byte_exact", &[]);
}

#[test]
fn curl_and_wget_fetch_every_size_byte_exact_threaded() {
    fetch_every_size("curl_and_wget_fetch_every_size_byte_exact_threaded", &["--threaded"]);
}

#[test]
fn head_errors_and_no_way_out_of_the_root() {
    if !testing::require_root("head_errors_and_no_way_out_of_the_root") {
        return;
    }
    let pair = pair();
    let site = Site::new();
    let x = start(&pair, &site, &[]);
    let mut expected: Vec<u16> = Vec::new();

    // HEAD: the headers of GET, no body.
    let out = curl(&pair, &["-I", "-w", "%{size_download}", &url("/f1460")]);
    expected.push(200);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\r\nContent-Length: 1460\r\n"), "{text}");
    assert!(text.contains("\r\nContent-Type: application/octet-stream\r\n"), "{text}");
    assert!(text.contains("\r\nLast-Modified: "), "{text}");
    assert!(text.ends_with("\r\n\r\n0"), "a body after HEAD's headers: {text}");
    let got = raw(&pair, b"HEAD /f1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    expected.push(200);
    assert!(got.ends_with(b"\r\n\r\n"), "{}", String::from_utf8_lossy(&got));

    // Directories: index.html, and the slash added by a redirect.
    let out = curl(&pair, &["-w", " %{http_code}", &url("/")]);
    expected.push(200);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "<h1>xsknet</h1>\n 200");
    let out = curl(&pair, &["-L", "-w", " %{http_code} %{num_redirects}", &url("/sub")]);
    expected.extend([301, 200]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "<p>sub</p>\n 200 1");
    let out = curl(&pair, &["-w", "%{http_code}", "-o", "/dev/null", &url("/in")]);
    expected.push(200);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "a symbolic link inside the root is served");

    // 404, 405 (with Allow).
    let out = curl(&pair, &["-w", "%{http_code}", "-o", "/dev/null", &url("/missing")]);
    expected.push(404);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
    let out = curl(&pair, &["-i", "-X", "POST", "-d", "x=1", &url("/f1")]);
    expected.push(405);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{text}");
    assert!(text.contains("\r\nAllow: GET, HEAD\r\n"), "{text}");

    // Malformed, too long, too large, a version we do not speak.
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"garbage\r\n\r\n".to_vec(), 400),
        (b"GET /f1 HTTP/1.1\r\n\r\n".to_vec(), 400), // no Host
        (b"GET /f1 HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n".to_vec(), 400),
        (b"GET /f1 HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(), 505),
        ([b"GET /".as_slice(), &[b'a'; 9000], b" HTTP/1.1\r\nHost: x\r\n\r\n"].concat(), 414),
        ([b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".as_slice(), &[b'b'; 9000], b"\r\n\r\n"].concat(), 431),
    ];
    for (request, status) in &cases {
        let got = raw(&pair, request);
        expected.push(*status);
        assert_eq!(statuses(&got), [*status], "{}", String::from_utf8_lossy(&request[..request.len().min(60)]));
        assert!(got.windows(19).any(|w| w == b"Connection: close\r\n"), "{}", String::from_utf8_lossy(&got));
    }

    // Out of the root: `..` plain, percent-encoded in either case, with an
    // encoded slash, in the absolute form; a symbolic link out; an absolute
    // file-system path (it names a file under the root, which does not exist).
    for (target, status) in [
        ("/../secret", 400),
        ("/sub/../../secret", 400),
        ("/%2e%2e/secret", 400),
        ("/%2E%2E/secret", 400),
        ("/sub/%2e%2e%2f%2e%2e%2fsecret", 400),
        ("/..%2fsecret", 400),
        ("http://x/../secret", 400),
        ("/out", 404),
        (&format!("/{}/secret", site.base.display()), 404),
        ("/%252e%252e/secret", 404),
        ("secret", 400),
    ] {
        let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let got = raw(&pair, request.as_bytes());
        expected.push(status);
        assert_eq!(statuses(&got), [status], "GET {target}: {}", String::from_utf8_lossy(&got));
        assert!(!got.windows(SECRET.len()).any(|w| w == SECRET), "GET {target} served the file outside the root");
    }
    let out = curl(&pair, &["--path-as-is", "-w", "%{http_code}", "-o", "/dev/null", &url("/../secret")]);
    expected.push(400);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "400");

    let f = x.stop();
    f.assert_clean_exit();
    let (requests, by_status) = http_counts(&f);
    assert_eq!(requests, expected.len() as u64);
    for status in [200, 301, 400, 404, 405, 414, 431, 505] {
        let n = expected.iter().filter(|&&s| s == status).count() as u64;
        assert_eq!(by_status.get(&status).copied().unwrap_or(0), n, "status {status}: {by_status:?}");
    }
}

#[test]
fn keep_alive_and_pipelining_share_one_connection() {
    if !testing::require_root("keep_alive_and_pipelining_share_one_connection") {
        return;
    }
    let pair = pair();
    let site = Site::new();
    let x = start(&pair, &site, &[]);

    // curl with two URLs reuses its connection: 1 connect, then 0.
    let out = curl(
        &pair,
        &["-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects}\n", &url("/f1460"), &url("/f65537")],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n0\n", "{out:?}");

    // Three requests in one write, then HTTP/1.0 without keep-alive: four
    // responses in order on one connection, which the server closes.
    let got = raw(
        &pair,
        b"GET /f1 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /f1460 HTTP/1.1\r\nHost: x\r\n\r\nGET /missing HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /f1 HTTP/1.0\r\n\r\n",
    );
    assert_eq!(statuses(&got), [200, 200, 404, 200], "{}", String::from_utf8_lossy(&got));
    let f1 = content(1);
    assert_eq!(got.windows(5).filter(|w| w[..4] == *b"\r\n\r\n" && w[4] == f1[0]).count(), 2, "two one-byte bodies");
    assert!(got.ends_with(&f1), "the last body ends the stream");

    let f = x.stop();
    f.assert_clean_exit();
    let (requests, by_status) = http_counts(&f);
    assert_eq!(requests, 6);
    assert_eq!((by_status.get(&200), by_status.get(&404)), (Some(&5), Some(&1)));
    assert_eq!(f.json["http"]["connections"], 2, "one connection for curl's two requests, one for the pipeline");
}

#[test]
fn ab_keep_alive_2000_requests_none_failed() {
    if !testing::require_root("ab_keep_alive_2000_requests_none_failed") {
        return;
    }
    let pair = pair();
    let site = Site::new();
    let x = start(&pair, &site, &[]);
    let out = run_in(pair.peer_ns(), &["ab", "-q", "-n", "2000", "-c", "16", "-k", "-s", "30", &url("/f1460")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ab: {out:?}");
    let field = |name: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name:?} in:\n{text}"));
        line[name.len()..].trim().parse().unwrap_or_else(|_| panic!("{line}"))
    };
    assert_eq!(field("Complete requests:"), 2000, "{text}");
    assert_eq!(field("Failed requests:"), 0, "{text}");
    assert_eq!(field("Keep-Alive requests:"), 2000, "{text}");
    if let Some(l) = text.lines().find(|l| l.starts_with("Requests per second:")) {
        eprintln!("ab -n 2000 -c 16 -k: {l}");
    }
    let f = x.stop();
    f.assert_clean_exit();
    let (requests, by_status) = http_counts(&f);
    assert_eq!(requests, 2000);
    assert_eq!(by_status.get(&200), Some(&2000));
    assert_eq!(f.json["http"]["connections"], 16, "ab -c 16 -k keeps 16 connections");
}

#[test]
fn idle_connections_are_closed_and_a_half_request_gets_408() {
    if !testing::require_root("idle_connections_are_closed_and_a_half_request_gets_408") {
        return;
    }
    let pair = pair();
    let site = Site::new();
    let x = start(&pair, &site, &["--idle-timeout", "0.5"]);
    let (silent, half) = in_netns(pair.peer_ns(), || {
        let addr = SocketAddrV4::new(SERVER_ADDR, HTTP_PORT).into();
        let read_all = |sent: &[u8]| {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(sent).unwrap();
            let t = Instant::now();
            let mut got = Vec::new();
            s.read_to_end(&mut got).expect("the server closes within the read timeout");
            (t.elapsed(), got)
        };
        (read_all(b""), read_all(b"GET /f1 HTTP/1.1\r\nHo"))
    });
    for (elapsed, _) in [&silent, &half] {
        assert!(
            (Duration::from_millis(400)..Duration::from_secs(3)).contains(elapsed),
            "closed after {elapsed:?}, the idle timeout is 0.5 s"
        );
    }
    assert!(silent.1.is_empty(), "{:?}", String::from_utf8_lossy(&silent.1));
    assert_eq!(statuses(&half.1), [408], "{}", String::from_utf8_lossy(&half.1));
    let f = x.stop();
    f.assert_clean_exit();
    let (requests, by_status) = http_counts(&f);
    assert_eq!((requests, by_status.get(&408)), (1, Some(&1)));
    assert_eq!(f.json["http"]["idle_timeouts"], 2);
}

/// The `tcp_client` example, built by `cargo test` beside the test binaries.
fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/tcp_http-<hash> → target/<profile>/examples/<name>
    let path = exe.parent().and_then(Path::parent).unwrap().join("examples").join(name);
    assert!(
        path.exists(),
        "{} not built: run `cargo test` (it builds the examples) or `cargo build --examples`",
        path.display()
    );
    path
}

#[test]
fn tcp_client_example_fetches_from_a_kernel_server() {
    if !testing::require_root("tcp_client_example_fetches_from_a_kernel_server") {
        return;
    }
    let pair = pair();
    let site = Site::new();
    let bin = example_bin("tcp_client");
    let mut server = spawn_in(
        pair.peer_ns(),
        &["python3", "-m", "http.server", "--bind", &PEER_ADDR.to_string(), "--directory", site.root(), "8000"],
    );
    // The server listens once a kernel connect succeeds.
    let deadline = Instant::now() + Duration::from_secs(10);
    while in_netns(pair.peer_ns(), || TcpStream::connect((PEER_ADDR, 8000))).is_err() {
        assert!(Instant::now() < deadline, "python3 -m http.server did not listen within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ip = format!("{SERVER_ADDR}/{PREFIX}");
    let body = site.download("example-body");
    let out = run_in(
        pair.ns(),
        &[
            bin.to_str().unwrap(),
            "--iface",
            pair.ifname(),
            "--ip",
            &ip,
            "--connect",
            &format!("{PEER_ADDR}:8000"),
            "--path",
            "/f65537",
            "--output",
            body.to_str().unwrap(),
        ],
    );
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tcp_client: {out:?}");
    assert!(stdout.contains("HTTP/1.0 200 OK"), "{stdout}");
    assert!(stdout.contains("\nbody: 65537 bytes\n"), "{stdout}");
    assert_eq!(sha256(&body), sha256(&site.root.join("f65537")), "the body differs");
    // The reply was read to the server's FIN.
    assert!(stdout.contains("tcp_info: state CLOSE-WAIT "), "{stdout}");
    assert!(stdout.contains("frames: all accounted for"), "{stdout}");
}

/// The idle and lingering-close clocks (the timer heap): a silent
/// connection is closed at its idle timeout, not later; one that keeps
/// sending requests is not closed; a connection accepted on a descriptor
/// just freed keeps a clock of its own (the freed one's entry does not
/// close it early); a lingering close ends about 2 s after our FIN.
#[test]
fn idle_and_linger_clocks_are_kept_per_connection() {
    if !testing::require_root("idle_and_linger_clocks_are_kept_per_connection") {
        return;
    }
    let pair = pair();
    let site = Site::new();
    let x = start(&pair, &site, &["--idle-timeout", "1"]);
    let addr: std::net::SocketAddr = SocketAddrV4::new(SERVER_ADDR, HTTP_PORT).into();
    let results = in_netns(pair.peer_ns(), || {
        let connect = move || {
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        };
        // Until the server closes: how long, and whether by FIN (not reset).
        let closed_after = |mut s: TcpStream| {
            let t = Instant::now();
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return (t.elapsed(), true),
                    Ok(_) => {}
                    Err(_) => return (t.elapsed(), false),
                }
            }
        };
        let silent = std::thread::spawn(move || closed_after(connect()));
        let busy = std::thread::spawn(move || {
            let mut s = connect();
            let mut served = 0;
            for _ in 0..5 {
                s.write_all(b"GET /f1 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.ends_with(&content(1)) || !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).expect("a response, not a close");
                    assert!(n > 0, "closed while busy after {served} responses");
                    got.extend_from_slice(&buf[..n]);
                }
                served += 1;
                std::thread::sleep(Duration::from_millis(600));
            }
            served
        });
        let reused = std::thread::spawn(move || {
            let a = connect();
            std::thread::sleep(Duration::from_millis(800));
            drop(a);
            std::thread::sleep(Duration::from_millis(20));
            closed_after(connect())
        });
        let linger = std::thread::spawn(move || {
            let mut s = connect();
            s.write_all(b"GET /f1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            let fin = Instant::now();
            // Our bytes are read and dropped while it lingers; once it has
            // closed they are answered with a reset.
            loop {
                if s.write_all(b"x").is_err() || fin.elapsed() > Duration::from_secs(10) {
                    return fin.elapsed();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        (silent.join().unwrap(), busy.join().unwrap(), reused.join().unwrap(), linger.join().unwrap())
    });
    let (silent, busy, reused, linger) = results;
    assert!(silent.1 && (900..1400).contains(&silent.0.as_millis()), "silent: {silent:?}, the idle timeout is 1 s");
    assert_eq!(busy, 5, "a connection with a request every 0.6 s is not idle");
    assert!(reused.1 && (900..1400).contains(&reused.0.as_millis()), "on a reused descriptor: {reused:?}");
    assert!((1800..2700).contains(&linger.as_millis()), "lingering close ended {linger:?} after our FIN (2 s)");
    let f = x.stop();
    f.assert_clean_exit();
    let _ = http_counts(&f);
}
