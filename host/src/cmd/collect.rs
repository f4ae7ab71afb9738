//! `vmcreds-host collect --listen unix:PATH --manifest M [--timeout S]
//! [--report-out FILE] [--json]`: receive ONE guest report and verify it.
//!
//! The socket is bound (mode 0600) before anything else happens, so it can be
//! started before QEMU, whose `-chardev socket` client connects at start-up
//! (where that order cannot be kept, the chardev needs QEMU's retry option:
//! `reconnect=1` up to 9.1, `reconnect-ms=` from 9.2; docs/host.md). A
//! stale socket (nothing listening) is replaced; any other existing file is
//! refused. The manifest is read once the report has arrived, so `collect`
//! can start before `vmcreds-host qemu --manifest-out` writes it. The report
//! ends at the first complete JSON value: with QEMU's
//! virtio-serial the host side of the connection stays open after the guest
//! closes its port, so EOF is not awaited. The document is parsed as its
//! bytes arrive (each byte once), the connection is read at most every
//! [`READ_GAP`] and given `--timeout` in all, so a guest trickling its report
//! costs `collect` next to nothing. The socket file appears only once it
//! listens (bound under a temporary name, then renamed) and is removed on
//! every exit path it bound itself.
//!
//! `--listen vsock:PORT` listens on an `AF_VSOCK` port of the kernel the VMM
//! runs on, for VMMs whose vsock device is the kernel's own (vhost-vsock:
//! crosvm's `--vsock`, QEMU's `vhost-vsock-pci`); the guest reports to
//! `vsock:2:PORT`. There is no file to remove and no mode to set: any local
//! VM given that port's peer could connect, as for any vsock service, so the
//! manifest's nonce is what binds a report to its run.
//!
//! Socket activation: when started with `LISTEN_PID` = its pid and
//! `LISTEN_FDS` ≥ 1 (systemd `.socket` units, `systemd-socket-activate`), it
//! uses the listening socket at fd 3 (`AF_UNIX` or `AF_VSOCK`, e.g.
//! `ListenStream=vsock::PORT`) instead of binding, and leaves the socket file
//! to whoever created it; `--listen` is then optional.

use std::fmt;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;
use vmcreds_common::limits::REPORT_SIZE_MAX;

use super::write_private;
use crate::cli::CollectArgs;
use crate::exit::{self, Classify, Exit, ResultExt};
use crate::show_path;
use crate::verdict::{output, parse_report, read_manifest};

/// Why no report was received.
#[derive(Debug, Error)]
pub enum CollectError {
    /// `--listen` is neither `unix:PATH` nor `vsock:PORT`.
    #[error("--listen \"{0}\": expected unix:PATH or vsock:PORT (PORT a number below 4294967295)")]
    ListenSyntax(String),
    /// PATH exists and is not a stale socket.
    #[error("{}: exists and is not a socket; refusing to replace it", show_path(.0))]
    NotASocket(PathBuf),
    /// PATH is a socket something listens on.
    #[error("{}: another process is listening on this socket", show_path(.0))]
    InUse(PathBuf),
    /// Neither `--listen` nor an inherited socket.
    #[error(
        "give --listen unix:PATH or vsock:PORT, or start collect by socket activation (LISTEN_FDS)"
    )]
    NoListener,
    /// fd 3 is not a listening stream socket of a family `collect` reads.
    #[error("LISTEN_FDS is set but fd 3 is not a listening AF_UNIX or AF_VSOCK stream socket")]
    NotListening,
    /// fd 3 is not open at all.
    #[error("LISTEN_FDS is set but fd 3 is not open (was the socket passed?)")]
    NotOpen,
    /// Cannot bind or inspect the socket.
    #[error("cannot listen on {}", show_path(path))]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Cannot listen on the vsock port.
    #[error("cannot listen on vsock:{port}{}", vsock_hint(source))]
    BindVsock {
        /// The port.
        port: u32,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No complete report before the deadline.
    #[error("no complete report within {secs} s ({bytes} bytes received)")]
    Timeout {
        /// The timeout.
        secs: u64,
        /// Bytes received.
        bytes: usize,
    },
    /// Accepting or reading failed.
    #[error("cannot receive the report")]
    Io(#[source] io::Error),
    /// Over the size bound.
    #[error("the report exceeds {limit} bytes without being a complete JSON document")]
    TooLarge {
        /// [`REPORT_SIZE_MAX`].
        limit: usize,
    },
    /// Not JSON.
    #[error("the report is not valid JSON (at line {line}, column {column})")]
    Malformed {
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
        /// The parser's reason.
        #[source]
        source: serde_json::Error,
    },
    /// The peer closed before a complete document.
    #[error("the connection closed after {bytes} bytes, before a complete JSON report")]
    Truncated {
        /// Bytes received.
        bytes: usize,
    },
}

impl Classify<Exit> for CollectError {
    fn exit(&self) -> Exit {
        match self {
            // Nothing arrived that could be verified: "could not receive".
            CollectError::Bind { .. }
            | CollectError::BindVsock { .. }
            | CollectError::Timeout { .. }
            | CollectError::Io(_) => Exit::Io,
            _ => Exit::Refused,
        }
    }
}

/// What a failure to bind a vsock port most likely means.
fn vsock_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EAFNOSUPPORT) => {
            " (this kernel has no AF_VSOCK: load vhost_vsock, or the vsock module the VMM needs)"
        }
        Some(libc::EADDRINUSE) => " (another process listens on this port)",
        _ => "",
    }
}

/// Where `collect` listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// `unix:PATH`: a socket file, bound 0600.
    Unix(PathBuf),
    /// `vsock:PORT`: an `AF_VSOCK` port of this kernel (any context id).
    Vsock(u32),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Unix(p) => write!(f, "unix:{}", show_path(p)),
            ListenAddr::Vsock(port) => write!(f, "vsock:{port}"),
        }
    }
}

/// Parses `unix:PATH` or `vsock:PORT` (decimal, below `VMADDR_PORT_ANY`).
pub fn parse_listen(s: &str) -> Result<ListenAddr, CollectError> {
    let bad = || CollectError::ListenSyntax(vmcreds_common::escape::escape_name(s.as_bytes()));
    if let Some(p) = s.strip_prefix("unix:") {
        return match p.is_empty() {
            false => Ok(ListenAddr::Unix(PathBuf::from(p))),
            true => Err(bad()),
        };
    }
    let port = s.strip_prefix("vsock:").ok_or_else(bad)?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match port.parse::<u32>() {
        Ok(p) if p != vmcreds_os::vsock::PORT_ANY => Ok(ListenAddr::Vsock(p)),
        _ => Err(bad()),
    }
}

/// The listening socket (`AF_UNIX` or `AF_VSOCK`); dropping it removes the
/// socket file if it is still ours.
#[derive(Debug)]
pub struct Listener {
    /// The listening socket.
    listener: OwnedFd,
    /// The socket file this process created (and removes), with its device
    /// and inode; `None` for an inherited socket.
    owned: Option<(PathBuf, (u64, u64))>,
}

impl Listener {
    /// Binds `path` with mode 0600, replacing a stale socket.
    pub fn bind(path: &Path) -> Result<Listener, CollectError> {
        let bind_err = |source| CollectError::Bind {
            path: path.to_owned(),
            source,
        };
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => match UnixStream::connect(path) {
                Ok(_) => return Err(CollectError::InUse(path.to_owned())),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path).map_err(bind_err)?;
                }
                Err(e) => return Err(bind_err(e)),
            },
            Ok(_) => return Err(CollectError::NotASocket(path.to_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(bind_err(e)),
        }
        // Bound under a temporary name beside PATH and renamed into place
        // (never over anything) once it listens: PATH never names a socket
        // that refuses connections, as it would between bind(2) and
        // listen(2), when a QEMU chardev connecting then would fail.
        let tmp = temporary_name(path).map_err(bind_err)?;
        let at = tmp.as_deref().unwrap_or(path);
        // The umask (0077) makes the socket 0700 from the start; then 0600.
        let listener = UnixListener::bind(at).map_err(bind_err)?;
        let result = (|| {
            std::fs::set_permissions(at, std::fs::Permissions::from_mode(0o600))?;
            if let Some(tmp) = &tmp {
                use rustix::fs::{renameat, renameat_with, RenameFlags, CWD};
                match renameat_with(CWD, tmp, CWD, path, RenameFlags::NOREPLACE) {
                    // A file system without RENAME_NOREPLACE: check, then rename.
                    Err(rustix::io::Errno::INVAL) => match std::fs::symlink_metadata(path) {
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            renameat(CWD, tmp, CWD, path)?
                        }
                        _ => return Err(io::ErrorKind::AlreadyExists.into()),
                    },
                    r => r?,
                }
            }
            std::fs::symlink_metadata(path)
        })();
        match result {
            Ok(m) => Ok(Listener {
                listener: listener.into(),
                owned: Some((path.to_owned(), (m.dev(), m.ino()))),
            }),
            Err(e) => {
                let _ = std::fs::remove_file(at);
                Err(match e.kind() {
                    io::ErrorKind::AlreadyExists => CollectError::InUse(path.to_owned()),
                    _ => bind_err(e),
                })
            }
        }
    }

    /// Listens on `vsock:port`.
    pub fn bind_vsock(port: u32) -> Result<Listener, CollectError> {
        let listener = vmcreds_os::vsock::listen(port)
            .map_err(|source| CollectError::BindVsock { port, source })?;
        Ok(Listener {
            listener,
            owned: None,
        })
    }

    /// Listens on `addr`.
    pub fn bind_addr(addr: &ListenAddr) -> Result<Listener, CollectError> {
        match addr {
            ListenAddr::Unix(path) => Listener::bind(path),
            ListenAddr::Vsock(port) => Listener::bind_vsock(*port),
        }
    }

    /// Accepts one connection and reads one JSON document from it by `deadline`.
    pub fn receive(&self, timeout: Duration) -> Result<Vec<u8>, CollectError> {
        let deadline = Instant::now() + timeout;
        let stream = accept_by(&self.listener, deadline, timeout)?;
        tracing::debug!("connection accepted");
        read_document(stream, deadline, timeout)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let Some((path, dev_ino)) = &self.owned else {
            return;
        };
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if (m.dev(), m.ino()) == *dev_ino {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Most bytes of a socket path (`sun_path` less its NUL).
const SUN_PATH_MAX: usize = 107;

/// A fresh name beside `path` to bind before renaming, or `None` when it
/// would not fit a socket address (then `path` is bound directly).
fn temporary_name(path: &Path) -> io::Result<Option<PathBuf>> {
    use std::os::unix::ffi::OsStrExt;
    let name = format!(".vmcreds-collect.{}", vmcreds_os::private::random_suffix()?);
    let tmp = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.join(name),
        _ => PathBuf::from(name),
    };
    Ok((tmp.as_os_str().as_bytes().len() <= SUN_PATH_MAX).then_some(tmp))
}

/// The first fd systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

/// True when `LISTEN_PID` names `pid` and `LISTEN_FDS` is at least 1.
pub fn activation_applies(listen_pid: Option<&str>, listen_fds: Option<&str>, pid: u32) -> bool {
    listen_pid.and_then(|p| p.trim().parse::<u32>().ok()) == Some(pid)
        && listen_fds
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or(0)
            >= 1
}

impl Listener {
    /// The socket passed by socket activation, if this process was given one.
    /// The `LISTEN_*` variables are removed so a child never mistakes them for its own.
    pub fn inherited() -> Result<Option<Listener>, CollectError> {
        let pid = std::env::var("LISTEN_PID").ok();
        let fds = std::env::var("LISTEN_FDS").ok();
        if !activation_applies(pid.as_deref(), fds.as_deref(), std::process::id()) {
            return Ok(None);
        }
        for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(var);
        }
        // SAFETY: fcntl(F_GETFD) on a plain number claims nothing about it:
        // on a closed fd it fails with EBADF, and it changes nothing.
        if unsafe { libc::fcntl(LISTEN_FDS_START, libc::F_GETFD) } == -1 {
            return Err(CollectError::NotOpen);
        }
        // SAFETY: fd 3 is open (checked above) and LISTEN_PID names this
        // process, so by the socket-activation protocol it was passed to it
        // for this purpose and nothing else in the process owns it:
        // vmcreds-host opens no file before this point (only the command
        // line was parsed). The fd is checked to be a listening stream socket
        // right below; if it is not, dropping the OwnedFd closes an fd that
        // was ours anyway.
        let fd = unsafe {
            <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(LISTEN_FDS_START)
        };
        if !is_listening_stream(&fd) {
            return Err(CollectError::NotListening);
        }
        Ok(Some(Listener {
            listener: fd,
            owned: None,
        }))
    }
}

/// True when `fd` is a listening `AF_UNIX` or `AF_VSOCK` stream socket.
fn is_listening_stream(fd: impl AsFd) -> bool {
    use rustix::net::{sockopt, AddressFamily, SocketType};
    let fd = fd.as_fd();
    sockopt::socket_domain(fd).is_ok_and(|d| d == AddressFamily::UNIX || d == AddressFamily::VSOCK)
        && sockopt::socket_type(fd).is_ok_and(|t| t == SocketType::STREAM)
        && sockopt::socket_acceptconn(fd).unwrap_or(false)
}

fn timeout_err(timeout: Duration, bytes: usize) -> CollectError {
    CollectError::Timeout {
        secs: timeout.as_secs(),
        bytes,
    }
}

/// An accepted stream connection, of either family: read with read(2), its
/// reads bounded by `SO_RCVTIMEO`.
struct Stream(OwnedFd);

impl Read for Stream {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        Ok(rustix::io::read(&self.0, out)?)
    }
}

impl TimedRead for Stream {
    fn set_timeout(&mut self, t: Duration) -> io::Result<()> {
        use rustix::net::sockopt::{set_socket_timeout, Timeout};
        // A zero timeout would mean "wait forever" to the kernel.
        let t = t.max(Duration::from_millis(1));
        Ok(set_socket_timeout(&self.0, Timeout::Recv, Some(t))?)
    }
}

fn accept_by(
    listener: &OwnedFd,
    deadline: Instant,
    timeout: Duration,
) -> Result<Stream, CollectError> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use rustix::net::{accept_with, SocketFlags};
    rustix::io::ioctl_fionbio(listener, true).map_err(|e| CollectError::Io(e.into()))?;
    loop {
        // The accepted socket is blocking (accept4 without SOCK_NONBLOCK);
        // its reads are bounded by SO_RCVTIMEO.
        match accept_with(listener, SocketFlags::CLOEXEC) {
            Ok(s) => return Ok(Stream(s)),
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
            // The peer gave up between its connect and this accept.
            Err(rustix::io::Errno::CONNABORTED) => {}
            Err(e) => return Err(CollectError::Io(e.into())),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timeout_err(timeout, 0));
        }
        let ts = Timespec::try_from(left).unwrap_or(Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        });
        let mut fds = [PollFd::new(listener, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(CollectError::Io(e.into())),
        }
    }
}

/// The fewest milliseconds between two reads of one connection: a peer that
/// trickles its report a byte at a time wakes `collect` at most 200 times a
/// second, whatever it sends; a fast one loses nothing (each read takes all
/// the socket buffer holds).
pub const READ_GAP: Duration = Duration::from_millis(5);

/// How much one read of the connection may take.
const READ_CHUNK: usize = 256 * 1024;

/// The connection as the parser reads it: every byte is kept (up to
/// [`REPORT_SIZE_MAX`] plus one read), every read waits at most until the
/// deadline and comes at least [`READ_GAP`] after the one before. What ends
/// a read early is kept in `failure` for the caller.
struct Connection<R> {
    stream: R,
    received: Vec<u8>,
    deadline: Instant,
    timeout: Duration,
    last_read: Option<Instant>,
    failure: Option<CollectError>,
}

/// A stream whose reads wait at most a given time.
pub trait TimedRead: Read {
    /// Makes the next reads wait at most `t`.
    fn set_timeout(&mut self, t: Duration) -> io::Result<()>;
}

impl<R: TimedRead> Connection<R> {
    fn fail(&mut self, e: CollectError) -> io::Error {
        self.failure = Some(e);
        io::Error::other("collect stopped reading")
    }
}

impl<R: TimedRead> Read for Connection<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.received.len() > REPORT_SIZE_MAX {
            return Err(self.fail(CollectError::TooLarge {
                limit: REPORT_SIZE_MAX,
            }));
        }
        if let Some(last) = self.last_read {
            let next = last + READ_GAP;
            let now = Instant::now();
            if next > now {
                std::thread::sleep((next - now).min(self.deadline.saturating_duration_since(now)));
            }
        }
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let e = timeout_err(self.timeout, self.received.len());
                return Err(self.fail(e));
            }
            self.stream.set_timeout(left).map_err(|e| {
                self.failure = Some(CollectError::Io(e));
                io::Error::other("collect stopped reading")
            })?;
            self.last_read = Some(Instant::now());
            match self.stream.read(out) {
                Ok(n) => {
                    self.received.extend_from_slice(&out[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    let e = timeout_err(self.timeout, self.received.len());
                    return Err(self.fail(e));
                }
                Err(e) => return Err(self.fail(CollectError::Io(e))),
            }
        }
    }
}

/// Reads one JSON document from `stream` by `deadline`, parsing as the bytes
/// come (each byte once: a report trickled in costs no more than one sent at
/// once), and returns exactly its bytes.
pub fn read_document<R: TimedRead>(
    stream: R,
    deadline: Instant,
    timeout: Duration,
) -> Result<Vec<u8>, CollectError> {
    let mut conn = Connection {
        stream,
        received: Vec::new(),
        deadline,
        timeout,
        last_read: None,
        failure: None,
    };
    let outcome = {
        let reader = io::BufReader::with_capacity(READ_CHUNK, &mut conn);
        let mut it =
            serde_json::Deserializer::from_reader(reader).into_iter::<serde::de::IgnoredAny>();
        match it.next() {
            Some(Ok(_)) => Ok(it.byte_offset()),
            None => Err(None),
            Some(Err(e)) => Err(Some(e)),
        }
    };
    match outcome {
        Ok(end) => {
            let mut doc = conn.received;
            doc.truncate(end);
            if doc.len() > REPORT_SIZE_MAX {
                return Err(CollectError::TooLarge {
                    limit: REPORT_SIZE_MAX,
                });
            }
            Ok(doc)
        }
        Err(e) => Err(match (conn.failure.take(), e) {
            (Some(f), _) => f,
            (None, None) => CollectError::Truncated {
                bytes: conn.received.len(),
            },
            (None, Some(e)) if e.is_eof() => CollectError::Truncated {
                bytes: conn.received.len(),
            },
            (None, Some(source)) => CollectError::Malformed {
                line: source.line(),
                column: source.column(),
                source,
            },
        }),
    }
}

/// Runs `collect`.
pub fn run(args: CollectArgs) -> exit::Result<Exit> {
    let listener = match (Listener::inherited()?, &args.listen) {
        (Some(l), _) => {
            eprintln!(
                "vmcreds-host: listening on the inherited socket (fd 3) for one report (timeout {} s)",
                args.timeout
            );
            l
        }
        (None, Some(listen)) => {
            let addr = parse_listen(listen)?;
            let l = Listener::bind_addr(&addr)?;
            eprintln!(
                "vmcreds-host: listening on {addr} for one report (timeout {} s)",
                args.timeout
            );
            l
        }
        (None, None) => return Err(CollectError::NoListener.into()),
    };
    let bytes = listener.receive(Duration::from_secs(args.timeout))?;
    tracing::info!(bytes = bytes.len(), "report received");
    drop(listener);
    let report = parse_report(&bytes).context("the report received")?;
    if let Some(out) = &args.report_out {
        write_private(out, &bytes)?;
    }
    // Read only now: `vmcreds-host qemu --manifest-out` writes it after this
    // socket must already be listening, and just before QEMU starts.
    let manifest = read_manifest(&args.manifest)?;
    output(&manifest, &report, args.json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A peer that sends `chunks` (an empty one: a pause, as a read that
    /// times out would be), then closes or stays silent.
    struct Peer {
        chunks: std::collections::VecDeque<Vec<u8>>,
        reads: usize,
    }

    impl Read for Peer {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            match self.chunks.pop_front() {
                None => Ok(0),
                Some(c) if c.is_empty() => Err(io::ErrorKind::WouldBlock.into()),
                Some(mut c) => {
                    let n = c.len().min(out.len());
                    out[..n].copy_from_slice(&c[..n]);
                    if n < c.len() {
                        self.chunks.push_front(c.split_off(n));
                    }
                    Ok(n)
                }
            }
        }
    }

    impl TimedRead for &mut Peer {
        fn set_timeout(&mut self, _: Duration) -> io::Result<()> {
            Ok(())
        }
    }

    fn read_chunks(chunks: &[&[u8]]) -> (Result<Vec<u8>, CollectError>, usize) {
        let mut p = Peer {
            chunks: chunks.iter().map(|c| c.to_vec()).collect(),
            reads: 0,
        };
        let t = Duration::from_secs(5);
        let r = read_document(&mut p, Instant::now() + t, t);
        (r, p.reads)
    }

    #[test]
    fn test_read_document_stops_at_the_end_of_the_value() {
        let (r, _) = read_chunks(&[b"  {\"a\": [1, ", b"2], \"s\": \"x\\", b"\"\"}\n trailing"]);
        assert_eq!(r.unwrap(), b"  {\"a\": [1, 2], \"s\": \"x\\\"\"}");
        // No EOF needed after the document, nor a read after its last byte.
        let (r, reads) = read_chunks(&[b"{}", b""]);
        assert_eq!(r.unwrap(), b"{}");
        assert_eq!(reads, 1);
    }

    #[test]
    fn test_read_document_refusals() {
        assert!(matches!(
            read_chunks(&[b"{\"a\" 1}"]).0,
            Err(CollectError::Malformed { line: 1, .. })
        ));
        // A syntax error is seen as soon as it arrives, not at the end.
        assert!(matches!(
            read_chunks(&[b"{\"a\": nope", b""]).0,
            Err(CollectError::Malformed { .. })
        ));
        assert!(matches!(
            read_chunks(&[b"{\"a\":"]).0,
            Err(CollectError::Truncated { bytes: 5 })
        ));
        assert!(matches!(
            read_chunks(&[b"{\"a\":", b""]).0,
            Err(CollectError::Timeout { bytes: 5, .. })
        ));
        let mut big = b"{\"s\": \"".to_vec();
        big.resize(REPORT_SIZE_MAX + 10, b'a');
        assert!(matches!(
            read_chunks(&[&big]).0,
            Err(CollectError::TooLarge { .. })
        ));
    }

    #[test]
    fn test_reads_are_spaced() {
        // Ten one-byte pieces take at least nine gaps.
        let pieces: Vec<&[u8]> = b"{\"a\":12345}".chunks(1).collect();
        let t = Instant::now();
        let (r, reads) = read_chunks(&pieces);
        assert_eq!(r.unwrap(), b"{\"a\":12345}");
        assert_eq!(reads, pieces.len());
        assert!(t.elapsed() >= READ_GAP * (pieces.len() as u32 - 1));
    }

    #[test]
    fn test_activation_applies() {
        assert!(activation_applies(Some("42"), Some("1"), 42));
        assert!(activation_applies(Some("42"), Some("2"), 42));
        assert!(
            !activation_applies(Some("41"), Some("1"), 42),
            "another process's fds"
        );
        assert!(!activation_applies(Some("42"), Some("0"), 42));
        assert!(!activation_applies(None, Some("1"), 42));
        assert!(!activation_applies(Some("42"), None, 42));
        assert!(!activation_applies(Some("x"), Some("1"), 42));
    }

    #[test]
    fn test_listen_syntax() {
        assert_eq!(
            parse_listen("unix:/a/b").unwrap(),
            ListenAddr::Unix(PathBuf::from("/a/b"))
        );
        assert_eq!(parse_listen("vsock:9999").unwrap(), ListenAddr::Vsock(9999));
        assert_eq!(parse_listen("vsock:0").unwrap(), ListenAddr::Vsock(0));
        assert_eq!(
            parse_listen("vsock:4294967294").unwrap(),
            ListenAddr::Vsock(u32::MAX - 1)
        );
        assert_eq!(parse_listen("unix:/a/b").unwrap().to_string(), "unix:/a/b");
        assert_eq!(parse_listen("vsock:7").unwrap().to_string(), "vsock:7");
        for bad in [
            "vsock:2:1",        // the guest's CID:PORT: the host listens on a port
            "vsock:",           // no port
            "vsock:4294967295", // VMADDR_PORT_ANY
            "vsock:4294967296", // too large
            "vsock:+1",         // str::parse would take it
            "vsock: 1",
            "vsock:0x10",
            "unix:",
            "tcp:1",
        ] {
            let e = parse_listen(bad).unwrap_err();
            assert!(matches!(e, CollectError::ListenSyntax(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn test_only_listening_unix_and_vsock_streams_are_taken() {
        use rustix::net::{socket, AddressFamily, SocketType};
        let d = tempfile::tempdir().unwrap();
        let unix = UnixListener::bind(d.path().join("s")).unwrap();
        assert!(is_listening_stream(&unix));
        let unbound = socket(AddressFamily::UNIX, SocketType::STREAM, None).unwrap();
        assert!(!is_listening_stream(&unbound), "not listening");
        let dgram = socket(AddressFamily::UNIX, SocketType::DGRAM, None).unwrap();
        assert!(!is_listening_stream(&dgram), "not a stream");
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(!is_listening_stream(&tcp), "a family collect does not read");
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(!is_listening_stream(&file), "not a socket");
    }

    #[test]
    fn test_receive_without_eof_and_cleanup() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        let l = Listener::bind(&p).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let p2 = p.clone();
        let t = std::thread::spawn(move || {
            let mut s = UnixStream::connect(&p2).unwrap();
            s.write_all(b"{\"schema\":").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            s.write_all(b" \"x\"}").unwrap();
            // Keep the connection open: no EOF.
            std::thread::sleep(Duration::from_millis(500));
            drop(s);
        });
        let got = l.receive(Duration::from_secs(5)).unwrap();
        assert_eq!(got, b"{\"schema\": \"x\"}");
        drop(l);
        assert!(!p.exists());
        t.join().unwrap();
    }

    #[test]
    fn test_stale_socket_replaced_other_files_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        drop(std::os::unix::net::UnixListener::bind(&p).unwrap()); // leaves a stale socket
        assert!(p.exists());
        let l = Listener::bind(&p).unwrap();
        assert!(matches!(Listener::bind(&p), Err(CollectError::InUse(_))));
        drop(l);
        std::fs::write(&p, b"x").unwrap();
        assert!(matches!(
            Listener::bind(&p),
            Err(CollectError::NotASocket(_))
        ));
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
    }

    #[test]
    fn test_timeout_and_truncation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        let l = Listener::bind(&p).unwrap();
        assert!(matches!(
            l.receive(Duration::from_millis(200)),
            Err(CollectError::Timeout { bytes: 0, .. })
        ));
        let p2 = p.clone();
        let t = std::thread::spawn(move || {
            let mut s = UnixStream::connect(&p2).unwrap();
            s.write_all(b"{\"a\":").unwrap();
        });
        assert!(matches!(
            l.receive(Duration::from_secs(5)),
            Err(CollectError::Truncated { bytes: 5 })
        ));
        t.join().unwrap();
    }
}
