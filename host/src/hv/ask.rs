//! Asking a hypervisor binary about itself (`--version`, `--help`) before
//! anything is written: one child, no input, stdout read in this thread
//! until EOF or a deadline, then the child is killed and reaped.
//!
//! No helper thread: `--runtime-dir` blocks every stop signal in this
//! thread before it writes files, and a leftover thread would take those
//! signals with their default action. And EOF is not waited for past the
//! deadline, so a grandchild that keeps the pipe open cannot hang us.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};

/// How long asking may take.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes of an answer kept.
const ANSWER_MAX: usize = 1 << 20;

/// Runs `path args…` and returns its stdout (at most 1 MiB).
pub fn ask(path: &Path, args: &[&str]) -> io::Result<Vec<u8>> {
    ask_within(path, args, ASK_TIMEOUT)
}

/// [`ask`] with its own deadline.
pub fn ask_within(path: &Path, args: &[&str], timeout: Duration) -> io::Result<Vec<u8>> {
    let mut child = Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut out = child.stdout.take().expect("piped stdout");
    let flags = fcntl_getfl(out.as_fd())?;
    fcntl_setfl(out.as_fd(), flags | OFlags::NONBLOCK)?;
    let deadline = Instant::now() + timeout;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {} s", timeout.as_secs()),
            ));
        }
        let wait = left.min(Duration::from_secs(1));
        let wait = rustix::event::Timespec {
            tv_sec: wait.as_secs() as i64,
            tv_nsec: i64::from(wait.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&out, PollFlags::IN)];
        match poll(&mut fds, Some(&wait)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => break Err(e.into()),
        }
        match out.read(&mut chunk) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                let keep = n.min(ANSWER_MAX - answer.len());
                answer.extend_from_slice(&chunk[..keep]);
                if answer.len() == ANSWER_MAX {
                    break Ok(());
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => break Err(e),
        }
    };
    drop(out);
    // EOF (or enough): give the child what is left of the deadline to exit.
    if result.is_ok() {
        while child.try_wait()?.is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    if child.try_wait()?.is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
    result.map(|()| answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Duration) -> io::Result<Vec<u8>> {
        ask_within(Path::new("/bin/sh"), &["-c", script], timeout)
    }

    #[test]
    fn test_answer_read_to_eof() {
        assert_eq!(sh("echo v1; echo v2", ASK_TIMEOUT).unwrap(), b"v1\nv2\n");
    }

    #[test]
    fn test_silent_child_times_out_and_is_reaped() {
        let t = Instant::now();
        let e = sh("sleep 30", Duration::from_millis(300)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn test_grandchild_holding_the_pipe_does_not_hang() {
        // The shell answers and exits; a background sleep keeps stdout open.
        let t = Instant::now();
        let r = sh("echo ok; sleep 30 &", Duration::from_millis(500));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(
            matches!(&r, Err(e) if e.kind() == io::ErrorKind::TimedOut),
            "{r:?}"
        );
    }

    #[test]
    fn test_answer_is_bounded() {
        let out = sh("head -c 3000000 /dev/zero", ASK_TIMEOUT).unwrap();
        assert_eq!(out.len(), ANSWER_MAX);
    }

    #[test]
    fn test_missing_program() {
        assert!(ask(Path::new("/nonexistent/qemu"), &["--version"]).is_err());
    }
}
