//! Helpers for the CLI tests: a temp dir per test, a command builder for the
//! binary without `CREDENTIALS_DIRECTORY`, and a canary checker that reports
//! the stream and offset of a leak, never the bytes.

#![allow(dead_code)]

pub mod ch_oracle;
pub mod crosvm_oracle;
pub mod hv_ground_truth;
pub mod reference;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A test's private directory.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    /// A fresh directory.
    pub fn new() -> TestDir {
        TestDir {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `path/rel`.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (creating parents) and returns its path.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Creates a directory and returns its path.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.join(rel);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// A `vmcreds-host` command running in this directory, without
    /// `CREDENTIALS_DIRECTORY` from the environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vmcreds-host"));
        c.current_dir(self.path())
            .env_remove("CREDENTIALS_DIRECTORY");
        c
    }
}

/// Runs `c` and returns its output.
pub fn run(c: &mut Command) -> Output {
    c.output().expect("run vmcreds-host")
}

/// The exit code (panics on a signal).
pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exited with a code")
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A secret whose bytes must never appear in any output.
pub struct Canary {
    forms: Vec<(&'static str, Vec<u8>)>,
}

impl Canary {
    /// The canary `value`: checked raw, in base64 (the exact encoding and its
    /// padding-free inner part) and in lower and upper hex.
    pub fn new(value: &[u8]) -> Canary {
        let b64 = vmcreds_common::base64::encode(value).expose().to_vec();
        let inner = b64[..b64.len().saturating_sub(4)].to_vec();
        let hex = vmcreds_common::digest::hex(value).into_bytes();
        let upper = hex.to_ascii_uppercase();
        Canary {
            forms: vec![
                ("raw", value.to_vec()),
                ("base64", b64),
                ("base64 prefix", inner),
                ("hex", hex),
                ("HEX", upper),
            ],
        }
    }

    /// Where a form of the canary occurs in `bytes`: (form, offset).
    pub fn find(&self, bytes: &[u8]) -> Option<(&'static str, usize)> {
        for (form, needle) in &self.forms {
            if needle.is_empty() || needle.len() > bytes.len() {
                continue;
            }
            if let Some(off) = bytes.windows(needle.len()).position(|w| w == &needle[..]) {
                return Some((form, off));
            }
        }
        None
    }

    /// Panics naming the stream and offset if a form of the canary is in `bytes`.
    pub fn assert_absent(&self, stream: &str, bytes: &[u8]) {
        if let Some((form, off)) = self.find(bytes) {
            panic!("canary leaked ({form} form) in {stream} at offset {off}");
        }
    }

    /// [`Canary::assert_absent`] on stdout and stderr.
    pub fn assert_absent_output(&self, o: &Output) {
        self.assert_absent("stdout", &o.stdout);
        self.assert_absent("stderr", &o.stderr);
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Connects to a socket `collect` binds, retrying while it is not yet
/// listening (the file exists between bind and listen).
pub fn connect(sock: &Path) -> std::os::unix::net::UnixStream {
    let mut last = None;
    for _ in 0..500 {
        match std::os::unix::net::UnixStream::connect(sock) {
            Ok(s) => return s,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("cannot connect to {}: {last:?}", sock.display());
}

/// A stand-in for cloud-hypervisor's API on `listener`: answers `n`
/// requests (one per connection) with what `reply` makes of each body, and
/// returns the bodies it received (an empty one for a connection closed
/// before a request).
pub fn serve(
    listener: std::os::unix::net::UnixListener,
    n: usize,
    reply: impl Fn(&[u8]) -> Vec<u8> + Send + 'static,
) -> std::thread::JoinHandle<Vec<Vec<u8>>> {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let mut bodies = Vec::new();
        for _ in 0..n {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let got = s.read(&mut chunk).unwrap();
                if got == 0 {
                    break 0; // closed before a request: an empty body
                }
                buf.extend_from_slice(&chunk[..got]);
            };
            if head_end == 0 {
                bodies.push(Vec::new());
                continue;
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            let mut body = buf[head_end..].to_vec();
            while body.len() < len {
                let got = s.read(&mut chunk).unwrap();
                assert!(got > 0);
                body.extend_from_slice(&chunk[..got]);
            }
            let _ = s.write_all(&reply(&body));
            // Hold the connection until the client is done, as micro_http does.
            let _ = s.read(&mut chunk);
            bodies.push(body);
        }
        bodies
    })
}

/// [`serve`] of one request on a socket bound at `path`.
pub fn api_server(
    path: &Path,
    reply: impl Fn(&[u8]) -> Vec<u8> + Send + 'static,
) -> std::thread::JoinHandle<Vec<Vec<u8>>> {
    serve(
        std::os::unix::net::UnixListener::bind(path).unwrap(),
        1,
        reply,
    )
}

/// Every entry under `dir` (recursively), as paths relative to it.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Skip with a reason, or fail when `VMCREDS_REQUIRE` names the missing
/// precondition: the one rule of both binaries' tests.
#[allow(unused_imports)] // each test binary uses its own share
pub use vmcreds_os::require::{have_or_skip, root_or_skip};
