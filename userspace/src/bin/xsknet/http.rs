//! `xsknet http`: the application stage as a static-file HTTP/1.1 server
//! (message syntax from RFC 9112, semantics from RFC 9110) on xsknet's TCP
//! sockets. GET and HEAD of the regular files under a root directory;
//! persistent connections and pipelined requests (RFC 9112 §9.3); bodies
//! streamed from the file in chunks as the send buffer takes them, so a file
//! is never held whole in memory.
//!
//! Run to completion (the default), one thread polls the stack and serves
//! every connection without blocking, as `tcp_serve::TcpService` does;
//! `--threaded` runs the loop on its own thread and each connection on a
//! thread of its own, on blocking calls. Both drive the same per-connection
//! state machine ([`Conn::serve`]) through [`StreamIo`].
//!
//! Requests are read into a buffer of [`MAX_REQUEST_HEAD`] bytes: a request
//! line that does not fit gets 414, headers that do not fit 431. The
//! request-target is percent-decoded once and refused (400) if any segment is
//! `..`; the path is then opened beneath the root with `openat2(2)` and
//! `RESOLVE_BENEATH` (404 for any step out of it), so symbolic links out of
//! the root serve nothing.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::ErrorKind;
use std::net::SocketAddrV4;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use xsknet::eventpoll::{EPOLLET, EPOLLIN, EPOLLOUT, EPOLLRDHUP};
use xsknet::netdevice::NetDevice;
use xsknet::report::{AppStats, HttpStats};
use xsknet::softirq::LoopStats;
use xsknet::{signal, EpollEvent, EpollFd, EpollOp, Errno, Fd, Shutdown, SockOpt, Stack, StackHandle, ThreadedStack};

use super::{should_stop, tcp_serve, BoxError, ServeArgs, Ticker};

/// The longest request line plus header section we read, bytes (nginx's
/// `large_client_header_buffers` default is 8 KiB a line).
pub const MAX_REQUEST_HEAD: usize = 8192;
/// Header fields per request, at most (more: 431).
const MAX_HEADERS: usize = 64;
/// File bytes read per chunk into a connection's output buffer.
const CHUNK: usize = 64 * 1024;
/// How long a connection we close keeps reading (and discarding) what the
/// client still sends, so that our response is not lost to a reset
/// (Apache's lingering close; RFC 9112 §9.6).
const LINGER: Duration = Duration::from_secs(2);
/// How long a blocking call of the threaded mode waits before the
/// connection's thread looks at the clock and the stop flag.
const THREAD_WAIT: Duration = Duration::from_millis(100);

/// `xsknet http`'s options: the shared ones and the root.
#[derive(clap::Args, Clone)]
pub struct HttpArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Directory whose files are served (`index.html` for a directory).
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// Close a connection after SECS seconds without progress: idle between requests (nginx's
    /// `keepalive_timeout`; a request half-read gets 408), or a response the client has not
    /// read any of for that long (nginx's `send_timeout`: the body is then cut short).
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = xsknet::cli::parse_secs)]
    pub idle_timeout: f64,
    /// Keep a requested file open and its metadata for SECS seconds before looking it up again
    /// (nginx's `open_file_cache` with `open_file_cache_valid`): a file replaced or changed is
    /// served as it was for at most that long. 0: open every request's file anew.
    #[arg(long, value_name = "SECS", default_value_t = 1.0, value_parser = xsknet::cli::parse_secs)]
    pub open_file_cache_valid: f64,
}

/// What the server needs to know, checked.
#[derive(Clone, Debug)]
pub struct Config {
    /// The root directory, open (`O_PATH`): requests are resolved beneath it.
    pub root_dir: Arc<OwnedFd>,
    /// Idle connections are closed after this.
    pub idle_timeout: Duration,
    /// How long an open file is served from [`OpenFileCache`] (zero: not cached).
    pub open_file_cache_valid: Duration,
}

impl HttpArgs {
    /// The checked configuration.
    ///
    /// # Errors
    ///
    /// The root does not exist or is not a directory; the timeout is zero.
    pub fn config(&self) -> Result<Config, BoxError> {
        let root = std::fs::canonicalize(&self.root).map_err(|e| format!("--root {}: {e}", self.root.display()))?;
        if !root.is_dir() {
            return Err(format!("--root {}: not a directory", self.root.display()).into());
        }
        if self.idle_timeout <= 0.0 {
            return Err("--idle-timeout must be more than 0".into());
        }
        let root_dir = Arc::new(open_root(&root)?);
        Ok(Config {
            root_dir,
            idle_timeout: Duration::from_secs_f64(self.idle_timeout),
            open_file_cache_valid: Duration::from_secs_f64(self.open_file_cache_valid),
        })
    }
}

/// The socket calls a connection makes, as the two ways to run provide them.
pub trait StreamIo {
    /// `recv()`: 0 at the end of the stream, `EAGAIN` when nothing waits (now,
    /// or within the threaded mode's wait).
    fn recv(&mut self, fd: Fd, buf: &mut [u8]) -> Result<usize, Errno>;
    /// `send()`: how much of `data` was queued; `EAGAIN` when none.
    fn send(&mut self, fd: Fd, data: &[u8]) -> Result<usize, Errno>;
    /// `shutdown(SHUT_WR)`: our FIN after the data.
    fn shutdown_write(&mut self, fd: Fd) -> Result<(), Errno>;
    /// `setsockopt(TCP_CORK, 1)`: the last partial segment waits for more,
    /// or for the FIN to ride on it.
    fn cork(&mut self, fd: Fd) -> Result<(), Errno>;
}

impl<D: NetDevice> StreamIo for Stack<D> {
    fn recv(&mut self, fd: Fd, buf: &mut [u8]) -> Result<usize, Errno> {
        Stack::recv(self, fd, buf)
    }
    fn send(&mut self, fd: Fd, data: &[u8]) -> Result<usize, Errno> {
        Stack::send(self, fd, data)
    }
    fn shutdown_write(&mut self, fd: Fd) -> Result<(), Errno> {
        self.shutdown(fd, Shutdown::Write)
    }
    fn cork(&mut self, fd: Fd) -> Result<(), Errno> {
        self.setsockopt(fd, SockOpt::TcpCork(true))
    }
}

/// The threaded mode's calls: blocking, reads for at most [`THREAD_WAIT`].
struct Blocking<'a>(&'a StackHandle);

impl StreamIo for Blocking<'_> {
    fn recv(&mut self, fd: Fd, buf: &mut [u8]) -> Result<usize, Errno> {
        self.0.recv(fd, buf, Some(THREAD_WAIT))
    }
    fn send(&mut self, fd: Fd, data: &[u8]) -> Result<usize, Errno> {
        self.0.send(fd, data)
    }
    fn shutdown_write(&mut self, fd: Fd) -> Result<(), Errno> {
        self.0.shutdown(fd, Shutdown::Write)
    }
    fn cork(&mut self, fd: Fd) -> Result<(), Errno> {
        self.0.setsockopt(fd, SockOpt::TcpCork(true))
    }
}

/// Whether a connection goes on after a call of [`Conn::serve`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Waiting for the peer (bytes to read, or room to send).
    Open,
    /// Over: close the descriptor.
    Closed,
}

/// One connection: the bytes of requests not yet answered, the response
/// being sent and, for a file, the part of it not yet read.
pub struct Conn {
    fd: Fd,
    /// Received and not yet parsed, at most [`MAX_REQUEST_HEAD`] bytes.
    inbuf: Vec<u8>,
    /// The response bytes to send: headers, then chunks of the body.
    out: Vec<u8>,
    /// How much of `out` went.
    out_pos: usize,
    /// The body's file, the offset of its next byte to send and how many
    /// bytes are still to send (read with `pread`: the file may be shared
    /// through [`OpenFileCache`]).
    body: Option<(Arc<File>, u64, u64)>,
    /// Request body bytes still to skip (a GET may carry one).
    discard: u64,
    /// Close once the response is sent.
    close_after: bool,
    /// `TCP_CORK` is set: the response before our FIN is being sent, and
    /// its last segment carries the FIN (nginx's `tcp_nopush`), one packet
    /// fewer than data and FIN apart.
    corked: bool,
    /// The peer sent its FIN.
    peer_eof: bool,
    /// Set once we sent our FIN: reading and discarding until then.
    lingering_until: Option<Instant>,
    /// The last read or send that moved bytes.
    last_active: Instant,
    /// Which connection this is, for the server's timer heap (0 outside it).
    id: u64,
}

impl Conn {
    /// A connection accepted at `now`.
    pub fn new(fd: Fd, now: Instant) -> Conn {
        Conn {
            fd,
            inbuf: Vec::with_capacity(MAX_REQUEST_HEAD),
            out: Vec::new(),
            out_pos: 0,
            body: None,
            discard: 0,
            close_after: false,
            corked: false,
            peer_eof: false,
            lingering_until: None,
            last_active: now,
            id: 0,
        }
    }

    /// When its clock next needs looking at: the end of its lingering
    /// close, or else of its idle timeout.
    fn deadline(&self, cfg: &Config) -> Instant {
        self.lingering_until.unwrap_or(self.last_active + cfg.idle_timeout)
    }

    /// Moves the connection as far as it goes without waiting: sends what
    /// is pending, reads the file on, answers the next request, reads more.
    /// `scratch` is the buffer reads go through.
    pub fn serve<I: StreamIo>(
        &mut self,
        io: &mut I,
        cfg: &Config,
        stats: &mut HttpStats,
        caches: &mut Caches,
        now: Instant,
        scratch: &mut [u8],
    ) -> Progress {
        if self.lingering_until.is_none() && now.saturating_duration_since(self.last_active) >= cfg.idle_timeout {
            stats.idle_timeouts += 1;
            let half_read = self.out_pos == self.out.len() && self.body.is_none() && !self.inbuf.is_empty();
            if !half_read {
                return Progress::Closed;
            }
            // RFC 9110 §15.5.9: the request did not arrive in time. The
            // clock restarts for sending the 408 (and counts it once).
            self.inbuf.clear();
            self.last_active = now;
            self.error_response(408, stats, caches);
        }
        loop {
            if let Some(until) = self.lingering_until {
                return match io.recv(self.fd, scratch) {
                    Ok(n) if n > 0 => {
                        stats.bytes_received += n as u64;
                        continue;
                    }
                    Err(Errno::EAGAIN) if now < until => Progress::Open,
                    _ => Progress::Closed,
                };
            }
            if self.out_pos < self.out.len() {
                if self.close_after && !self.corked {
                    // Best effort: without the cork the FIN follows the data apart.
                    let _ = io.cork(self.fd);
                    self.corked = true;
                }
                match io.send(self.fd, &self.out[self.out_pos..]) {
                    Ok(n) => {
                        self.out_pos += n;
                        stats.bytes_sent += n as u64;
                        self.last_active = now;
                        continue;
                    }
                    Err(Errno::EAGAIN) => return Progress::Open,
                    Err(_) => {
                        stats.errors += 1;
                        return Progress::Closed;
                    }
                }
            }
            if let Some((file, offset, left)) = &mut self.body {
                if *left > 0 {
                    let want = (*left).min(CHUNK as u64) as usize;
                    self.out.resize(want, 0);
                    self.out_pos = 0;
                    match file.read_at(&mut self.out, *offset) {
                        Ok(n) if n > 0 => {
                            self.out.truncate(n);
                            *offset += n as u64;
                            *left -= n as u64;
                            continue;
                        }
                        _ => {
                            // Shorter than announced (truncated while we sent
                            // it) or unreadable: the framing cannot be kept.
                            stats.errors += 1;
                            return Progress::Closed;
                        }
                    }
                }
                self.body = None;
            }
            // The response is out.
            if self.close_after {
                if io.shutdown_write(self.fd).is_err() {
                    return Progress::Closed;
                }
                self.lingering_until = Some(now + LINGER);
                continue;
            }
            if self.discard > 0 {
                let n = (self.discard).min(self.inbuf.len() as u64) as usize;
                self.inbuf.drain(..n);
                self.discard -= n as u64;
            }
            if self.discard == 0 && !self.inbuf.is_empty() && self.next_request(cfg, stats, caches, now) {
                continue;
            }
            // Need more bytes.
            if self.peer_eof {
                // A request cut short by the FIN is not answered (nginx neither).
                return Progress::Closed;
            }
            let room = (MAX_REQUEST_HEAD - self.inbuf.len()).min(scratch.len());
            match io.recv(self.fd, &mut scratch[..room]) {
                Ok(0) => self.peer_eof = true,
                Ok(n) => {
                    self.inbuf.extend_from_slice(&scratch[..n]);
                    stats.bytes_received += n as u64;
                    self.last_active = now;
                }
                Err(Errno::EAGAIN) => return Progress::Open,
                Err(_) => {
                    stats.errors += 1;
                    return Progress::Closed;
                }
            }
        }
    }

    /// Parses the request at the head of `inbuf` and queues its response;
    /// false when it has not all arrived yet.
    fn next_request(&mut self, cfg: &Config, stats: &mut HttpStats, caches: &mut Caches, now: Instant) -> bool {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let parsed = match req.parse(&self.inbuf) {
            Ok(httparse::Status::Complete(len)) => Request::from_parsed(&req).map(|r| (r, len)),
            Ok(httparse::Status::Partial) if self.inbuf.len() < MAX_REQUEST_HEAD => return false,
            Ok(httparse::Status::Partial) => {
                // RFC 9112 §3: 414 for a request-target too long to read,
                // RFC 6585 §5: 431 for header fields too large.
                Err(if self.inbuf.contains(&b'\n') { 431 } else { 414 })
            }
            Err(httparse::Error::TooManyHeaders) => Err(431),
            Err(httparse::Error::Version) => Err(505),
            Err(_) => Err(400),
        };
        let (r, len) = match parsed {
            Ok(v) => v,
            Err(status) => {
                self.inbuf.clear();
                self.error_response(status, stats, caches);
                return true;
            }
        };
        self.inbuf.drain(..len);
        self.discard = r.content_length;
        self.close_after = !r.keep_alive;
        if !matches!(r.method.as_str(), "GET" | "HEAD") {
            self.response(405, &r, None, stats, caches);
            return true;
        }
        match caches.files.resolve(cfg, &r.target, now) {
            Ok(Target::File(file, meta)) => {
                let len = meta.len();
                self.response(200, &r, Some((&meta, len)), stats, caches);
                if r.method == "GET" && len > 0 {
                    self.body = Some((file, 0, len));
                }
            }
            Ok(Target::Redirect(location)) => {
                let mut r = r;
                r.location = Some(location);
                self.response(301, &r, None, stats, caches);
            }
            Err(status) => {
                if status == 400 {
                    self.close_after = true;
                }
                self.response(status, &r, None, stats, caches);
            }
        }
        true
    }

    /// Queues a response to a request that could not be read, and closes after.
    fn error_response(&mut self, status: u16, stats: &mut HttpStats, caches: &mut Caches) {
        self.close_after = true;
        let r = Request {
            method: "GET".into(),
            target: Vec::new(),
            keep_alive: false,
            http10_keep_alive: false,
            content_length: 0,
            location: None,
        };
        self.response(status, &r, None, stats, caches);
    }

    /// Writes the status line and header fields into `out`, and an error's
    /// short text body; `file` gives a file's metadata and length.
    fn response(
        &mut self,
        status: u16,
        r: &Request,
        file: Option<(&std::fs::Metadata, u64)>,
        stats: &mut HttpStats,
        caches: &mut Caches,
    ) {
        use std::io::Write as _;
        stats.requests += 1;
        *stats.by_status.entry(status).or_default() += 1;
        let reason = reason(status);
        // An error's body: "404 Not Found\n" (no allocation: the status has three digits).
        let error_len = 3 + 1 + reason.len() + 1;
        self.out.clear();
        self.out_pos = 0;
        let o = &mut self.out;
        // Writes to a Vec cannot fail.
        let _ = write!(o, "HTTP/1.1 {status} {reason}\r\nServer: xsknet\r\nDate: {}\r\n", caches.dates.now());
        let len = match file {
            Some((meta, len)) => {
                let _ = write!(o, "Content-Type: {}\r\n", content_type(&r.target));
                if let Ok(t) = meta.modified() {
                    let _ = write!(o, "Last-Modified: {}\r\n", caches.dates.format(t));
                }
                len
            }
            None => {
                let _ = write!(o, "Content-Type: text/plain; charset=utf-8\r\n");
                error_len as u64
            }
        };
        let _ = write!(o, "Content-Length: {len}\r\n");
        if status == 405 {
            let _ = write!(o, "Allow: GET, HEAD\r\n");
        }
        if let Some(loc) = &r.location {
            let _ = write!(o, "Location: {loc}\r\n");
        }
        if self.close_after {
            let _ = write!(o, "Connection: close\r\n");
        } else if r.http10_keep_alive {
            let _ = write!(o, "Connection: keep-alive\r\n");
        }
        let _ = write!(o, "\r\n");
        if file.is_none() && r.method != "HEAD" {
            let _ = writeln!(o, "{status} {reason}");
        }
    }
}

/// What the server takes from a request.
struct Request {
    method: String,
    /// The request-target as sent.
    target: Vec<u8>,
    /// Whether the connection persists after the response (RFC 9112 §9.3).
    keep_alive: bool,
    /// An HTTP/1.0 client asked to keep the connection: say we do.
    http10_keep_alive: bool,
    /// The request's body length, to skip.
    content_length: u64,
    /// For a redirect.
    location: Option<String>,
}

impl Request {
    /// The fields we use, checked: a Host for HTTP/1.1 (RFC 9112 §3.2), one
    /// Content-Length (§6.3), no Transfer-Encoding (we read no bodies:
    /// 501, RFC 9112 §6.1).
    fn from_parsed(req: &httparse::Request<'_, '_>) -> Result<Request, u16> {
        let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
            return Err(400);
        };
        let mut hosts = 0;
        let mut content_length: Option<u64> = None;
        let (mut close, mut keep_alive) = (false, false);
        for h in req.headers.iter() {
            let value = std::str::from_utf8(h.value).map_err(|_| 400u16)?.trim();
            if h.name.eq_ignore_ascii_case("host") {
                hosts += 1;
            } else if h.name.eq_ignore_ascii_case("content-length") {
                let n: u64 = value.parse().map_err(|_| 400u16)?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(400);
                }
                content_length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(501);
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in value.split(',').map(str::trim) {
                    close |= token.eq_ignore_ascii_case("close");
                    keep_alive |= token.eq_ignore_ascii_case("keep-alive");
                }
            }
        }
        if hosts > 1 || (version == 1 && hosts == 0) {
            return Err(400);
        }
        let persistent = !close && (version == 1 || keep_alive);
        Ok(Request {
            method: method.to_string(),
            target: path.as_bytes().to_vec(),
            keep_alive: persistent,
            http10_keep_alive: persistent && version == 0,
            content_length: content_length.unwrap_or(0),
            location: None,
        })
    }
}

/// Where a request-target leads.
enum Target {
    /// A regular file, open, and its metadata.
    File(Arc<File>, std::fs::Metadata),
    /// A directory named without its trailing slash: the URL with it.
    Redirect(String),
}

/// Maps a request-target to a file under the root directory `root`: 400 for
/// a target that is not a path or climbs with `..`, 404 for what does not
/// exist, is not a regular file, or lies outside the root once symbolic
/// links are followed (an absolute link, even one back into the root, or a
/// relative one that climbs out); 403 for what we may not read.
///
/// One `openat2(2)` with `RESOLVE_BENEATH` walks the path (the kernel
/// refuses any step out of `root`), then one `fstat`: the same two calls per
/// request as nginx's `open`/`fstat` (`ngx_open_cached_file` without its
/// cache), where `realpath(3)` cost a `readlink` per path component.
fn resolve(root: &OwnedFd, target: &[u8]) -> Result<Target, u16> {
    // The absolute-form (RFC 9112 §3.2.2): keep the path.
    let mut path = target;
    for scheme in [&b"http://"[..], b"https://"] {
        if path.len() >= scheme.len() && path[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &path[scheme.len()..];
            path = rest.iter().position(|&b| b == b'/').map_or(&b"/"[..], |i| &rest[i..]);
        }
    }
    if path.first() != Some(&b'/') {
        return Err(400);
    }
    if let Some(end) = path.iter().position(|&b| b == b'?' || b == b'#') {
        path = &path[..end];
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode(path).collect();
    if decoded.contains(&0) {
        return Err(400);
    }
    // The path relative to the root, `.` for the root itself.
    let mut rel: Vec<u8> = Vec::with_capacity(decoded.len() + 11);
    for segment in decoded.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => return Err(400),
            s => {
                if !rel.is_empty() {
                    rel.push(b'/');
                }
                rel.extend_from_slice(s);
            }
        }
    }
    if rel.is_empty() {
        rel.push(b'.');
    }
    let (mut file, mut meta) = open_beneath(root, &rel)?;
    if meta.is_dir() {
        if decoded.last() != Some(&b'/') {
            return Ok(Target::Redirect(format!("{}/", String::from_utf8_lossy(path))));
        }
        rel.extend_from_slice(b"/index.html");
        (file, meta) = open_beneath(root, &rel)?;
    }
    if !meta.is_file() {
        return Err(404);
    }
    Ok(Target::File(Arc::new(file), meta))
}

/// Opens `rel` under `root` for reading, never leaving it (`RESOLVE_BENEATH`,
/// and no `/proc` magic links), and reads its metadata. `O_NONBLOCK`:
/// opening a FIFO must not wait for a writer; the metadata then tells what
/// was opened.
fn open_beneath(root: &OwnedFd, rel: &[u8]) -> Result<(File, std::fs::Metadata), u16> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let fd = rustix::fs::openat2(
        root,
        OsStr::from_bytes(rel),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| errno_status(e.raw_os_error()))?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|e| io_status(&e))?;
    Ok((file, meta))
}

/// The status for a failed `openat2`: 403 for what we may not read, 404 for
/// the rest (no such file, not a directory on the way, `EXDEV`: a step out
/// of the root, `ELOOP`: too many links).
fn errno_status(errno: i32) -> u16 {
    match errno {
        libc::EACCES | libc::EPERM => 403,
        _ => 404,
    }
}

/// Opens the root directory that [`resolve`] walks from (`O_PATH`: no read
/// permission needed on it), and checks that this kernel has `openat2`
/// (Linux 5.6).
///
/// # Errors
///
/// The root cannot be opened, or `openat2` fails on it.
fn open_root(root: &Path) -> Result<OwnedFd, BoxError> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let fd = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| format!("--root {}: {e}", root.display()))?;
    rustix::fs::openat2(&fd, ".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), ResolveFlags::BENEATH)
        .map_err(|e| format!("--root {}: openat2 (Linux 5.6): {e}", root.display()))?;
    Ok(fd)
}

/// The status for a failed open or lookup.
fn io_status(e: &std::io::Error) -> u16 {
    match e.kind() {
        ErrorKind::PermissionDenied => 403,
        _ => 404,
    }
}

/// RFC 9110 §15's reason phrases for the statuses we send.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// The media type of a file by its extension (the common ones of nginx's
/// `mime.types`), `application/octet-stream` otherwise.
fn content_type(target: &[u8]) -> &'static str {
    let path = target.split(|&b| b == b'?' || b == b'#').next().unwrap_or(b"");
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(b"");
    let name = if name.is_empty() { &b"index.html"[..] } else { name };
    let ext = match name.iter().rposition(|&b| b == b'.') {
        Some(i) => String::from_utf8_lossy(&name[i + 1..]).to_ascii_lowercase(),
        None => String::new(),
    };
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        "mp4" => "video/mp4",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        _ => "application/octet-stream",
    }
}

/// The `Date` field's text (RFC 9110 §6.6.1), formatted once a second, and
/// the last `Last-Modified` formatted (the same file's, request after
/// request).
#[derive(Default)]
pub struct DateCache {
    secs: u64,
    text: String,
    last: Option<(SystemTime, String)>,
}

impl DateCache {
    /// The current time as an IMF-fixdate.
    pub fn now(&mut self) -> &str {
        let now = SystemTime::now();
        let secs = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if secs != self.secs || self.text.is_empty() {
            self.secs = secs;
            self.text = httpdate::fmt_http_date(now);
        }
        &self.text
    }

    /// `t` as an IMF-fixdate (for `Last-Modified`), formatted again only
    /// when it differs from the last one asked for.
    pub fn format(&mut self, t: SystemTime) -> &str {
        if self.last.as_ref().is_none_or(|(at, _)| *at != t) {
            self.last = Some((t, httpdate::fmt_http_date(t)));
        }
        self.last.as_ref().map_or("", |(_, text)| text.as_str())
    }
}

/// What a server keeps from one response to the next: the `Date` text and
/// the files it has open. Run to completion, one for all connections;
/// threaded, one per connection's thread.
#[derive(Default)]
pub struct Caches {
    /// The `Date` and `Last-Modified` texts.
    pub dates: DateCache,
    /// The files requested lately, open.
    pub files: OpenFileCache,
}

/// Files open for the request-targets asked for lately, as nginx's
/// `open_file_cache` keeps them (`ngx_open_cached_file`): a request for the
/// same target within [`Config::open_file_cache_valid`] of its lookup is
/// served from the open file and the metadata read then, without `openat2`,
/// `fstat` or `close`; past that, the target is looked up again. At most
/// [`OPEN_FILE_CACHE_MAX`] entries: when full, the stale ones go, and all of
/// them if none is. Only files are kept, not redirects or errors (nginx's
/// `open_file_cache_errors off`).
#[derive(Default)]
pub struct OpenFileCache {
    entries: HashMap<Vec<u8>, CachedFile>,
}

/// Entries of an [`OpenFileCache`], at most (nginx's `open_file_cache max=1000`
/// as commonly configured).
pub const OPEN_FILE_CACHE_MAX: usize = 1000;

struct CachedFile {
    file: Arc<File>,
    meta: std::fs::Metadata,
    /// When the target was looked up.
    at: Instant,
}

impl OpenFileCache {
    /// [`resolve`] for `target`, from the cache when its entry is younger
    /// than `cfg.open_file_cache_valid` at `now`.
    fn resolve(&mut self, cfg: &Config, target: &[u8], now: Instant) -> Result<Target, u16> {
        let valid = cfg.open_file_cache_valid;
        if valid.is_zero() {
            return resolve(&cfg.root_dir, target);
        }
        if let Some(e) = self.entries.get(target) {
            if now.saturating_duration_since(e.at) < valid {
                return Ok(Target::File(e.file.clone(), e.meta.clone()));
            }
        }
        let found = resolve(&cfg.root_dir, target);
        match &found {
            Ok(Target::File(file, meta)) => {
                if self.entries.len() >= OPEN_FILE_CACHE_MAX && !self.entries.contains_key(target) {
                    self.entries.retain(|_, e| now.saturating_duration_since(e.at) < valid);
                    if self.entries.len() >= OPEN_FILE_CACHE_MAX {
                        self.entries.clear();
                    }
                }
                let e = CachedFile { file: file.clone(), meta: meta.clone(), at: now };
                self.entries.insert(target.to_vec(), e);
            }
            _ => {
                self.entries.remove(target);
            }
        }
        found
    }

    /// Files open in the cache.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A connection's clock in the timer heap: when, which descriptor, and which
/// connection on it (descriptors are reused; a stale entry is dropped).
type Timer = std::cmp::Reverse<(Instant, i32, u64)>;

/// A listener and its connections, served run-to-completion: an epoll
/// instance says which are ready (edge-triggered, for input and room to
/// send, as nginx asks), and a heap of deadlines runs the clocks (idle
/// timeout, lingering close), as nginx's timer tree does: a turn with
/// nothing due looks at the earliest deadline only.
struct HttpService {
    listen_fd: Fd,
    ep: EpollFd,
    events: Vec<EpollEvent>,
    /// Connections by descriptor number.
    conns: Vec<Option<Conn>>,
    /// Each open connection's entry, due at or before its deadline:
    /// activity moves a deadline later without touching the heap, and an
    /// entry found due early goes back in at the real deadline (lazily, as
    /// nginx's `ngx_event_add_timer` skips small moves). A lingering close
    /// adds a second entry at its end, sooner than the idle clock's. A
    /// closed connection's entries are dropped when due, or sooner by
    /// [`HttpService::drop_stale_timers`].
    timers: std::collections::BinaryHeap<Timer>,
    /// Connections accepted so far: each one's id in its heap entry.
    accepted: u64,
    /// Connections open now.
    open: usize,
    /// When the descriptor limit was last reported.
    emfile_warned: Option<Instant>,
    scratch: Vec<u8>,
    caches: Caches,
    stats: HttpStats,
}

impl HttpService {
    fn new<D: NetDevice>(stack: &mut Stack<D>, listen_fd: Fd) -> Result<HttpService, Errno> {
        let ep = stack.epoll_create();
        stack.epoll_ctl(ep, EpollOp::Add, listen_fd, EpollEvent::new(EPOLLIN, listen_fd.0 as u64))?;
        Ok(HttpService {
            listen_fd,
            ep,
            events: vec![EpollEvent::default(); 256],
            conns: Vec::new(),
            timers: std::collections::BinaryHeap::new(),
            accepted: 0,
            open: 0,
            emfile_warned: None,
            scratch: vec![0; MAX_REQUEST_HEAD],
            caches: Caches::default(),
            stats: HttpStats::default(),
        })
    }

    /// Accepts what waits, moves on every connection that is ready, then
    /// runs the clocks that are due.
    fn serve<D: NetDevice>(&mut self, stack: &mut Stack<D>, cfg: &Config, now: Instant) {
        let n = stack.epoll_wait(self.ep, &mut self.events, Some(Duration::ZERO)).unwrap_or(0);
        for i in 0..n {
            let fd = Fd(self.events[i].data as i32);
            if fd == self.listen_fd {
                self.accept(stack, cfg, now);
            } else {
                self.serve_one(stack, cfg, now, fd);
            }
        }
        self.run_timers(stack, cfg, now);
    }

    /// The clocks due at `now`: a connection whose deadline really passed
    /// gets a turn (which closes it, or sends its 408 and restarts the
    /// clock); one active since goes back in at its new deadline.
    fn run_timers<D: NetDevice>(&mut self, stack: &mut Stack<D>, cfg: &Config, now: Instant) {
        while let Some(&std::cmp::Reverse((at, fd, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let deadline = |conns: &[Option<Conn>]| match conns.get(fd as usize) {
                Some(Some(c)) if c.id == id => Some(c.deadline(cfg)),
                _ => None,
            };
            let Some(due) = deadline(&self.conns) else { continue };
            if due <= now {
                self.serve_one(stack, cfg, now, Fd(fd));
            }
            if let Some(due) = deadline(&self.conns) {
                // At least a millisecond on: this loop ends whatever the turn did.
                self.timers.push(std::cmp::Reverse((due.max(now + Duration::from_millis(1)), fd, id)));
            }
        }
    }

    /// A closed connection's entries stay in the heap until due: when they
    /// outnumber the open connections' (twice over, and by 1024), they go,
    /// and the heap gives back its memory, so that it is bounded by the
    /// connections open, not by those accepted within an idle timeout (a
    /// client connecting and closing in a loop). Linear, so at most once per
    /// as many closes as there are entries: constant per close on average.
    fn drop_stale_timers(&mut self) {
        if self.timers.len() <= 2 * self.open + 1024 {
            return;
        }
        let conns = &self.conns;
        self.timers
            .retain(|std::cmp::Reverse((_, fd, id))| matches!(conns.get(*fd as usize), Some(Some(c)) if c.id == *id));
        self.timers.shrink_to(2 * self.timers.len() + 1024);
    }

    fn accept<D: NetDevice>(&mut self, stack: &mut Stack<D>, cfg: &Config, now: Instant) {
        loop {
            let fd = match stack.accept(self.listen_fd) {
                Ok((fd, _)) => fd,
                Err(Errno::EMFILE) => {
                    tcp_serve::warn_emfile(&mut self.emfile_warned);
                    return;
                }
                Err(_) => return,
            };
            self.stats.connections += 1;
            // Responses go out whole: no Nagle wait for the last segment of one.
            let _ = stack.setsockopt(fd, SockOpt::TcpNodelay(true));
            let events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
            if stack.epoll_ctl(self.ep, EpollOp::Add, fd, EpollEvent::new(events, fd.0 as u64)).is_err() {
                let _ = stack.close(fd);
                continue;
            }
            let slot = fd.0 as usize;
            if self.conns.len() <= slot {
                self.conns.resize_with(slot + 1, || None);
            }
            self.accepted += 1;
            self.open += 1;
            let mut c = Conn::new(fd, now);
            c.id = self.accepted;
            self.timers.push(std::cmp::Reverse((c.deadline(cfg), fd.0, c.id)));
            self.conns[slot] = Some(c);
        }
    }

    /// One connection's turn; closes it when it is over.
    fn serve_one<D: NetDevice>(&mut self, stack: &mut Stack<D>, cfg: &Config, now: Instant, fd: Fd) {
        let slot = fd.0 as usize;
        let Some(c) = self.conns.get_mut(slot).and_then(Option::as_mut) else { return };
        let lingering = c.lingering_until.is_some();
        if c.serve(stack, cfg, &mut self.stats, &mut self.caches, now, &mut self.scratch) == Progress::Closed {
            self.conns[slot] = None;
            let _ = stack.close(fd);
            self.open -= 1;
            self.drop_stale_timers();
        } else if let (Some(until), false) = (c.lingering_until, lingering) {
            // Its lingering close began: due sooner than its idle clock.
            self.timers.push(std::cmp::Reverse((until, fd.0, c.id)));
        }
    }

    /// Closes every connection, the listener and the epoll instance.
    fn close<D: NetDevice>(self, stack: &mut Stack<D>) {
        for c in self.conns.into_iter().flatten() {
            let _ = stack.close(c.fd);
        }
        let _ = stack.close(self.listen_fd);
        let _ = stack.epoll_close(self.ep);
    }
}

/// Serves `cfg.root` on TCP `local` until SIGINT/SIGTERM or `deadline`, run
/// to completion or threaded as `args` say; returns the stack and the counts
/// for the exit report.
///
/// # Errors
///
/// `bind()`/`listen()` failures; the threaded loop's start or panic.
pub fn run<D: NetDevice + Send + 'static>(
    cfg: &Config,
    stack: Stack<D>,
    local: SocketAddrV4,
    args: &ServeArgs,
    setup: &str,
    deadline: Option<Instant>,
    interval: Option<Duration>,
) -> Result<(Stack<D>, LoopStats, AppStats, Option<HttpStats>), BoxError> {
    let (stack, loop_stats, stats) = if args.threaded {
        run_threaded(cfg, stack, local, args, setup, deadline, interval)?
    } else {
        run_to_completion(cfg, stack, local, &args.listen(0), setup, deadline, interval)?
    };
    let app = AppStats { tcp_accepted: stats.connections, tcp_bytes: stats.bytes_received, ..AppStats::default() };
    Ok((stack, loop_stats, app, Some(stats)))
}

fn listen_error(e: Errno, local: SocketAddrV4) -> BoxError {
    format!("listen on TCP port {}: {e} ({})", local.port(), e.name()).into()
}

fn run_to_completion<D: NetDevice>(
    cfg: &Config,
    mut stack: Stack<D>,
    local: SocketAddrV4,
    listen: &tcp_serve::Listen,
    setup: &str,
    deadline: Option<Instant>,
    interval: Option<Duration>,
) -> Result<(Stack<D>, LoopStats, HttpStats), BoxError> {
    let listen_fd = tcp_serve::listener(&mut stack, local, listen).map_err(|e| listen_error(e, local))?;
    let mut svc = HttpService::new(&mut stack, listen_fd)?;
    println!("xsknet: ready: {setup}");
    let mut stats = LoopStats::start();
    let mut ticker = Ticker::new(interval);
    let mut n_polls: u32 = 0;
    loop {
        n_polls = n_polls.wrapping_add(1);
        if n_polls.is_multiple_of(1024) {
            if should_stop(deadline) {
                break;
            }
            if ticker.due() {
                ticker.tick(&stack.snmp(), svc.stats.requests, "requests", stats.busy_share());
            }
        }
        stack.poll_timed(&mut stats);
        let t0 = stack.poll_time().unwrap_or_else(Instant::now);
        svc.serve(&mut stack, cfg, t0);
    }
    stats.sample_sched();
    // Let what is queued go out before closing.
    let drain_until = Instant::now() + Duration::from_millis(50);
    while Instant::now() < drain_until {
        stack.poll(Instant::now());
    }
    let http_stats = std::mem::take(&mut svc.stats);
    svc.close(&mut stack);
    crate::finish_tcp(&mut stack);
    stack.release_backlog();
    Ok((stack, stats, http_stats))
}

/// Adds one connection's counts to the total.
fn merge(total: &Mutex<HttpStats>, s: HttpStats) {
    let mut t = total.lock().unwrap_or_else(|e| e.into_inner());
    t.connections += s.connections;
    t.requests += s.requests;
    t.bytes_received += s.bytes_received;
    t.bytes_sent += s.bytes_sent;
    t.idle_timeouts += s.idle_timeouts;
    t.errors += s.errors;
    for (status, n) in s.by_status {
        *t.by_status.entry(status).or_default() += n;
    }
}

fn run_threaded<D: NetDevice + Send + 'static>(
    cfg: &Config,
    stack: Stack<D>,
    local: SocketAddrV4,
    args: &ServeArgs,
    setup: &str,
    deadline: Option<Instant>,
    interval: Option<Duration>,
) -> Result<(Stack<D>, LoopStats, HttpStats), BoxError> {
    let threaded = ThreadedStack::spawn_on(stack, args.cpu)?;
    let h = threaded.handle();
    let listen = args.listen(0);
    let lfd = tcp_serve::listener_threaded(&h, local, &listen).map_err(|e| listen_error(e, local))?;
    println!("xsknet: ready: {setup}");
    let total = Arc::new(Mutex::new(HttpStats::default()));
    let mut ticker = Ticker::new(interval);
    let mut threads: Vec<(Fd, std::thread::JoinHandle<()>)> = Vec::new();
    while !should_stop(deadline) {
        if ticker.due() {
            if let Ok(s) = h.snapshot() {
                let requests = total.lock().map_or(0, |t| t.requests);
                ticker.tick(&s.mib, requests, "requests", s.loop_stats.busy_share());
            }
        }
        threads.retain(|(_, t)| !t.is_finished());
        let fd = match h.accept(lfd, Some(THREAD_WAIT)) {
            Ok((fd, _)) => fd,
            Err(_) => continue,
        };
        let _ = h.setsockopt(fd, SockOpt::TcpNodelay(true));
        let (h, cfg, total) = (h.clone(), cfg.clone(), total.clone());
        threads.push((
            fd,
            std::thread::spawn(move || {
                let mut stats = HttpStats { connections: 1, ..HttpStats::default() };
                let mut caches = Caches::default();
                let mut scratch = vec![0; MAX_REQUEST_HEAD];
                let mut conn = Conn::new(fd, Instant::now());
                while !signal::stop_requested() {
                    let now = Instant::now();
                    if conn.serve(&mut Blocking(&h), &cfg, &mut stats, &mut caches, now, &mut scratch)
                        == Progress::Closed
                    {
                        break;
                    }
                }
                let _ = h.close(fd);
                merge(&total, stats);
            }),
        ));
    }
    // Threads see the stop within THREAD_WAIT unless a send waits for a peer
    // that does not read: closing its descriptor ends that wait.
    let give_up = Instant::now() + Duration::from_secs(1);
    while threads.iter().any(|(_, t)| !t.is_finished()) && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(10));
    }
    for (fd, t) in threads {
        if !t.is_finished() {
            let _ = h.close(fd);
        }
        let _ = t.join();
    }
    let _ = h.close(lfd);
    let (mut stack, stats) = threaded.stop().map_err(|_| "the softirq thread panicked")?;
    crate::finish_tcp(&mut stack);
    stack.release_backlog();
    let total = std::mem::take(&mut *total.lock().unwrap_or_else(|e| e.into_inner()));
    Ok((stack, stats, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_by_extension() {
        assert_eq!(content_type(b"/a/b.HTML"), "text/html; charset=utf-8");
        assert_eq!(content_type(b"/"), "text/html; charset=utf-8");
        assert_eq!(content_type(b"/x.bin?y=1.html"), "application/octet-stream");
        assert_eq!(content_type(b"/noext"), "application/octet-stream");
        assert_eq!(content_type(b"/p.png"), "image/png");
    }

    /// A root with a file, a directory with an index, one without, and
    /// symbolic links in and out; and the directory above it (to remove).
    fn tree() -> (PathBuf, PathBuf) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = std::env::temp_dir().join(format!("xsknet-http-unit-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("dir")).unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        std::fs::write(root.join("a.txt"), b"a").unwrap();
        std::fs::write(root.join("dir/index.html"), b"<p>").unwrap();
        std::fs::write(base.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(base.join("secret"), root.join("out")).unwrap();
        std::os::unix::fs::symlink("a.txt", root.join("in")).unwrap();
        std::os::unix::fs::symlink("../secret", root.join("up")).unwrap();
        std::os::unix::fs::symlink(root.join("a.txt"), root.join("abs")).unwrap();
        (std::fs::canonicalize(&root).unwrap(), base)
    }

    fn status(r: Result<Target, u16>) -> u16 {
        match r {
            Ok(Target::File(..)) => 200,
            Ok(Target::Redirect(_)) => 301,
            Err(s) => s,
        }
    }

    #[test]
    fn resolve_serves_the_root_and_nothing_outside_it() {
        let (root, base) = tree();
        let root = open_root(&root).unwrap();
        let r = |t: &str| status(resolve(&root, t.as_bytes()));
        assert_eq!(r("/a.txt"), 200);
        assert_eq!(r("/a.txt?x=1"), 200);
        assert_eq!(r("http://host/a.txt"), 200);
        assert_eq!(r("/%61.txt"), 200);
        assert_eq!(r("/in"), 200, "a symbolic link inside the root");
        assert_eq!(r("/dir/"), 200);
        assert_eq!(r("/dir"), 301);
        assert_eq!(r("/empty/"), 404, "no index.html");
        assert_eq!(r("/missing"), 404);
        assert_eq!(r("/a.txt/x"), 404);
        assert_eq!(r("/out"), 404, "a symbolic link out of the root");
        assert_eq!(r("/up"), 404, "a relative symbolic link that climbs out of the root");
        assert_eq!(r("/abs"), 404, "an absolute symbolic link, even one back into the root (RESOLVE_BENEATH)");
        for t in ["/../secret", "/dir/../../secret", "/%2e%2e/secret", "/%2E%2E%2fsecret", "/..%2fsecret"] {
            assert_eq!(r(t), 400, "{t}");
        }
        assert_eq!(r("/%252e%252e/secret"), 404, "decoded once only");
        for t in ["secret", "*", "../secret", "/a%00.txt"] {
            assert_eq!(r(t), 400, "{t}");
        }
        match resolve(&root, b"/dir?q") {
            Ok(Target::Redirect(l)) => assert_eq!(l, "/dir/"),
            _ => panic!("no redirect"),
        }
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn open_file_cache_serves_a_file_until_its_lookup_is_stale() {
        let (root, base) = tree();
        let root_dir = Arc::new(open_root(&root).unwrap());
        let valid = Duration::from_secs(1);
        let cfg = Config { root_dir, idle_timeout: Duration::from_secs(5), open_file_cache_valid: valid };
        let mut cache = OpenFileCache::default();
        let t0 = Instant::now();
        let inode = |r: Result<Target, u16>| match r {
            Ok(Target::File(f, _)) => std::os::unix::fs::MetadataExt::ino(&f.metadata().unwrap()),
            _ => 0,
        };
        let first = inode(cache.resolve(&cfg, b"/a.txt", t0));
        assert_ne!(first, 0);
        assert_eq!(inode(cache.resolve(&cfg, b"/a.txt", t0 + valid / 2)), first, "served from the cache");
        assert_eq!(cache.len(), 1);
        // Replaced: the old file is served while the lookup is valid, the new one after.
        std::fs::remove_file(root.join("a.txt")).unwrap();
        std::fs::write(root.join("a.txt"), b"new").unwrap();
        assert_eq!(inode(cache.resolve(&cfg, b"/a.txt", t0 + valid / 2)), first);
        let second = inode(cache.resolve(&cfg, b"/a.txt", t0 + valid));
        assert_ne!(second, first, "looked up again once stale");
        // Removed: 404 once stale, and the entry goes.
        std::fs::remove_file(root.join("a.txt")).unwrap();
        assert_eq!(status(cache.resolve(&cfg, b"/a.txt", t0 + valid * 3)), 404);
        assert_eq!(cache.len(), 0);
        // Redirects and errors are not kept.
        assert_eq!(status(cache.resolve(&cfg, b"/dir", t0)), 301);
        assert_eq!(status(cache.resolve(&cfg, b"/missing", t0)), 404);
        assert_eq!(cache.len(), 0);
        // Bounded: when full, the stale entries go.
        std::fs::write(root.join("a.txt"), b"a").unwrap();
        for i in 0..OPEN_FILE_CACHE_MAX {
            let _ = cache.resolve(&cfg, format!("/a.txt?{i}").as_bytes(), t0);
        }
        assert_eq!(cache.len(), OPEN_FILE_CACHE_MAX);
        assert_eq!(status(cache.resolve(&cfg, b"/in", t0 + valid * 2)), 200);
        assert_eq!(cache.len(), 1);
        // Zero: nothing is kept.
        let cfg = Config { open_file_cache_valid: Duration::ZERO, ..cfg };
        let mut cache = OpenFileCache::default();
        assert_eq!(status(cache.resolve(&cfg, b"/in", t0)), 200);
        assert_eq!(cache.len(), 0);
        std::fs::remove_file(root.join("a.txt")).unwrap();
        std::fs::remove_dir_all(base).unwrap();
    }

    /// A connection's peer in memory: what it sends, what it is sent.
    struct Mem {
        input: Vec<u8>,
        eof: bool,
        output: Vec<u8>,
        /// Bytes `send` takes per call (a small send buffer).
        room: usize,
        shut: bool,
        /// `output`'s length when the cork was set.
        corked_at: Option<usize>,
    }

    impl StreamIo for Mem {
        fn recv(&mut self, _: Fd, buf: &mut [u8]) -> Result<usize, Errno> {
            if self.input.is_empty() {
                return if self.eof { Ok(0) } else { Err(Errno::EAGAIN) };
            }
            let n = buf.len().min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input.drain(..n);
            Ok(n)
        }
        fn send(&mut self, _: Fd, data: &[u8]) -> Result<usize, Errno> {
            let n = data.len().min(self.room);
            self.output.extend_from_slice(&data[..n]);
            Ok(n)
        }
        fn shutdown_write(&mut self, _: Fd) -> Result<(), Errno> {
            self.shut = true;
            Ok(())
        }
        fn cork(&mut self, _: Fd) -> Result<(), Errno> {
            self.corked_at.get_or_insert(self.output.len());
            Ok(())
        }
    }

    fn exchange(input: &[u8], eof: bool) -> (String, Mem, HttpStats, Progress) {
        let (root, base) = tree();
        let root_dir = Arc::new(open_root(&root).unwrap());
        let cfg =
            Config { root_dir, idle_timeout: Duration::from_secs(5), open_file_cache_valid: Duration::from_secs(1) };
        let mut io = Mem { input: input.to_vec(), eof, output: Vec::new(), room: 7, shut: false, corked_at: None };
        let mut stats = HttpStats::default();
        let mut conn = Conn::new(Fd(3), Instant::now());
        let mut scratch = vec![0; 100];
        let p = conn.serve(&mut io, &cfg, &mut stats, &mut Caches::default(), Instant::now(), &mut scratch);
        std::fs::remove_dir_all(base).unwrap();
        (String::from_utf8_lossy(&io.output).into_owned(), io, stats, p)
    }

    fn statuses(out: &str) -> Vec<&str> {
        out.match_indices("HTTP/1.1 ").map(|(i, _)| &out[i + 9..i + 12]).collect()
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_and_keep_the_connection() {
        let req = b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nHEAD /a.txt HTTP/1.1\r\nHost: x\r\n\r\n\
                    GET /nope HTTP/1.1\r\nHost: x\r\n\r\nPOST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
                    GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n";
        let (out, io, stats, p) = exchange(req, false);
        assert_eq!(p, Progress::Open);
        assert!(!io.shut);
        assert_eq!(statuses(&out), ["200", "200", "404", "405", "200"], "{out}");
        assert!(out.contains("Allow: GET, HEAD\r\n"));
        assert_eq!(out.matches("Content-Length: 1\r\n").count(), 3, "{out}");
        assert_eq!(out.matches("\r\n\r\na").count(), 2, "GET bodies, HEAD none: {out}");
        assert_eq!(stats.requests, 5);
        assert_eq!(stats.by_status.values().sum::<u64>(), 5);
        assert_eq!(stats.bytes_sent, out.len() as u64);
        assert_eq!(stats.bytes_received, req.len() as u64);
    }

    #[test]
    fn close_and_http10_end_the_connection_after_the_response() {
        let (out, io, _, p) = exchange(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /a.txt", false);
        assert_eq!((statuses(&out), io.shut, p), (vec!["200"], true, Progress::Open), "{out}");
        assert!(out.contains("Connection: close\r\n"));
        assert_eq!(io.corked_at, Some(0), "corked before the response that ends the connection");
        let (out, io, _, _) = exchange(b"GET /a.txt HTTP/1.0\r\n\r\n", false);
        assert_eq!((statuses(&out), io.shut), (vec!["200"], true), "{out}");
        let (out, io, _, _) = exchange(b"GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false);
        assert_eq!((statuses(&out), io.shut), (vec!["200"], false), "{out}");
        assert_eq!(io.corked_at, None, "a kept connection is not corked");
        assert!(out.contains("Connection: keep-alive\r\n"));
    }

    #[test]
    fn malformed_and_oversized_requests_get_their_status_and_a_close() {
        for (req, want) in [
            (&b"GET /a.txt HTTP/1.1\r\n\r\n"[..], "400"),
            (b"GET /a.txt HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "400"),
            (b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
            (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", "505"),
            (b"GET /../x HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
            (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", "501"),
        ] {
            let (out, io, _, _) = exchange(req, false);
            assert_eq!(statuses(&out), [want], "{}", String::from_utf8_lossy(req));
            assert!(io.shut && out.contains("Connection: close\r\n"), "{out}");
        }
        let mut long = b"GET /".to_vec();
        long.resize(MAX_REQUEST_HEAD + 10, b'a');
        assert_eq!(statuses(&exchange(&long, false).0), ["414"]);
        let mut big = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
        while big.len() < MAX_REQUEST_HEAD + 10 {
            big.extend_from_slice(b"X-Filler: 0123456789abcdef\r\n");
        }
        assert_eq!(statuses(&exchange(&big, false).0), ["431"]);
    }

    #[test]
    fn a_request_cut_short_by_fin_is_not_answered() {
        let (out, _, stats, p) = exchange(b"GET /a.txt HTTP/1.1\r\nHo", true);
        assert_eq!((out.as_str(), stats.requests, p), ("", 0, Progress::Closed));
    }
}
