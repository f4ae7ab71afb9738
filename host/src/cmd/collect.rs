//! `vmcreds-host collect --listen unix:PATH --manifest M [--timeout S]
//! [--report-out FILE] [--json]`: receive ONE guest report and verify it.
//!
//! The socket is bound (mode 0600) before anything else happens, so it can be
//! started before QEMU, whose `-chardev socket` client connects at start-up
//! (add `reconnect=1` to the chardev if the order cannot be guaranteed). A
//! stale socket (nothing listening) is replaced; any other existing file is
//! refused. The manifest is read once the report has arrived, so `collect`
//! can start before `vmcreds-host qemu --manifest-out` writes it. The report
//! ends at the first complete JSON value: with QEMU's
//! virtio-serial the host side of the connection stays open after the guest
//! closes its port, so EOF is not awaited. The socket file is removed on every
//! exit path it bound itself.
//!
//! Socket activation: when started with `LISTEN_PID` = its pid and
//! `LISTEN_FDS` ≥ 1 (systemd `.socket` units, `systemd-socket-activate`), it
//! uses the listening socket at fd 3 instead of binding, and leaves the socket
//! file to whoever created it; `--listen` is then optional.

use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;
use vmcreds_common::limits::REPORT_SIZE_MAX;

use super::verify::{output, parse_report, read_manifest};
use super::write_private;
use crate::cli::CollectArgs;
use crate::exit::{self, Classify, Exit, ResultExt};
use crate::show_path;

/// Why no report was received.
#[derive(Debug, Error)]
pub enum CollectError {
    /// `--listen` is not `unix:PATH`.
    #[error("--listen \"{0}\": expected unix:PATH")]
    ListenSyntax(String),
    /// PATH exists and is not a stale socket.
    #[error("{}: exists and is not a socket; refusing to replace it", show_path(.0))]
    NotASocket(PathBuf),
    /// PATH is a socket something listens on.
    #[error("{}: another process is listening on this socket", show_path(.0))]
    InUse(PathBuf),
    /// Neither `--listen` nor an inherited socket.
    #[error("give --listen unix:PATH, or start collect by socket activation (LISTEN_FDS)")]
    NoListener,
    /// fd 3 is not a listening stream socket.
    #[error("LISTEN_FDS is set but fd 3 is not a listening stream socket")]
    NotListening,
    /// Cannot bind or inspect the socket.
    #[error("cannot listen on {}", show_path(path))]
    Bind {
        /// The socket path.
        path: PathBuf,
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
            CollectError::Bind { .. } | CollectError::Timeout { .. } | CollectError::Io(_) => {
                Exit::Io
            }
            _ => Exit::Refused,
        }
    }
}

/// Parses `unix:PATH`.
pub fn parse_listen(s: &str) -> Result<PathBuf, CollectError> {
    match s.strip_prefix("unix:") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Err(CollectError::ListenSyntax(
            vmcreds_common::escape::escape_name(s.as_bytes()),
        )),
    }
}

/// The bound socket; dropping it removes the socket file if it is still ours.
#[derive(Debug)]
pub struct Listener {
    /// The listener.
    pub listener: UnixListener,
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
        // The umask (0077) makes the socket 0700 from the start; then 0600.
        let listener = UnixListener::bind(path).map_err(bind_err)?;
        let result = (|| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            std::fs::symlink_metadata(path)
        })();
        match result {
            Ok(m) => Ok(Listener {
                listener,
                owned: Some((path.to_owned(), (m.dev(), m.ino()))),
            }),
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(bind_err(e))
            }
        }
    }

    /// Accepts one connection and reads one JSON document from it by `deadline`.
    pub fn receive(&self, timeout: Duration) -> Result<Vec<u8>, CollectError> {
        let deadline = Instant::now() + timeout;
        let stream = accept_by(&self.listener, deadline, timeout)?;
        tracing::debug!("connection accepted");
        read_socket_document(stream, deadline, timeout)
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
        // SAFETY: LISTEN_PID names this process, so by the socket-activation
        // protocol fd 3 was passed to it for this purpose and nothing else in
        // the process owns it: vmcreds-host opens no file before this point
        // (only the command line was parsed). The fd is checked to be a
        // listening stream socket right below; if it is not, dropping the
        // OwnedFd closes an fd that was ours anyway.
        let fd = unsafe {
            <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(LISTEN_FDS_START)
        };
        let is_listening_stream = rustix::net::sockopt::socket_type(&fd)
            .map(|t| t == rustix::net::SocketType::STREAM)
            .unwrap_or(false)
            && rustix::net::sockopt::socket_acceptconn(&fd).unwrap_or(false);
        if !is_listening_stream {
            return Err(CollectError::NotListening);
        }
        Ok(Some(Listener {
            listener: UnixListener::from(fd),
            owned: None,
        }))
    }
}

fn timeout_err(timeout: Duration, bytes: usize) -> CollectError {
    CollectError::Timeout {
        secs: timeout.as_secs(),
        bytes,
    }
}

fn accept_by(
    listener: &UnixListener,
    deadline: Instant,
    timeout: Duration,
) -> Result<UnixStream, CollectError> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    listener.set_nonblocking(true).map_err(CollectError::Io)?;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).map_err(CollectError::Io)?;
                return Ok(s);
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(CollectError::Io(e)),
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

/// The length of the first complete JSON value in `buf`, `None` if more bytes
/// are needed, or the syntax error.
pub fn complete_document(buf: &[u8]) -> Result<Option<usize>, serde_json::Error> {
    let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<serde::de::IgnoredAny>();
    match it.next() {
        None => Ok(None),
        Some(Ok(_)) => Ok(Some(it.byte_offset())),
        Some(Err(e)) if e.is_eof() => Ok(None),
        Some(Err(e)) => Err(e),
    }
}

fn read_socket_document(
    mut stream: UnixStream,
    deadline: Instant,
    timeout: Duration,
) -> Result<Vec<u8>, CollectError> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timeout_err(timeout, buf.len()));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(CollectError::Io)?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timeout_err(timeout, buf.len()))
            }
            Err(e) => return Err(CollectError::Io(e)),
        };
        if n == 0 {
            return Err(CollectError::Truncated { bytes: buf.len() });
        }
        buf.extend_from_slice(&chunk[..n]);
        match complete_document(&buf) {
            Ok(Some(end)) => {
                buf.truncate(end);
                return Ok(buf);
            }
            Ok(None) if buf.len() > REPORT_SIZE_MAX => {
                return Err(CollectError::TooLarge {
                    limit: REPORT_SIZE_MAX,
                })
            }
            Ok(None) => {}
            Err(source) => {
                return Err(CollectError::Malformed {
                    line: source.line(),
                    column: source.column(),
                    source,
                })
            }
        }
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
            let path = parse_listen(listen)?;
            let l = Listener::bind(&path)?;
            eprintln!(
                "vmcreds-host: listening on unix:{} for one report (timeout {} s)",
                show_path(&path),
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

    #[test]
    fn test_complete_document() {
        assert_eq!(complete_document(b"").unwrap(), None);
        assert_eq!(complete_document(b"  \n").unwrap(), None);
        assert_eq!(complete_document(b"{\"a\": [1, 2").unwrap(), None);
        assert_eq!(complete_document(b"{\"a\": \"x\\").unwrap(), None);
        assert_eq!(complete_document(b"{\"a\": 1}").unwrap(), Some(8));
        assert_eq!(complete_document(b" {} trailing").unwrap(), Some(3));
        assert!(complete_document(b"{\"a\" 1}").is_err());
        assert!(complete_document(b"nonsense").is_err());
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
        assert_eq!(parse_listen("unix:/a/b").unwrap(), PathBuf::from("/a/b"));
        assert!(parse_listen("vsock:2:1").is_err());
        assert!(parse_listen("unix:").is_err());
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
