//! Issue 13, "Hardening: what a hostile-input review broke": the attacks on
//! `vmcreds-guest`, run again. Every test here failed on the code as it was
//! before the fix it is named after.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

fn mkfifo(p: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o666),
        0,
    )
    .unwrap();
}

fn kill_and_wait(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Issue 13 §7: vmcreds-guest holds credential values (`get`, `import`,
/// every digest) and is not dumpable from its start: the kernel then gives
/// `/proc/PID/*` to root, which the test sees while the process waits on a
/// `--manifest` FIFO whose writer (the test) has written nothing yet.
#[test]
fn test_issue13_7_guest_is_not_dumpable() {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let fifo = d.path().join("manifest");
    mkfifo(&fifo);
    // Held open for writing (O_RDWR never blocks): the reader waits for bytes.
    let writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let mut c = std::process::Command::new(common::bin());
    c.args(["check", "--manifest"])
        .arg(&fifo)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let own_uid = rustix::process::geteuid().as_raw();
    if own_uid == 0 {
        // As root, /proc/PID/* is root's either way: run it as nobody.
        use std::os::unix::process::CommandExt;
        c.uid(65534).gid(65534);
    }
    let child = c.spawn().unwrap();
    let pid = child.id();
    let mut owner = None;
    wait_until(Duration::from_secs(10), || {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        if !cmdline.starts_with(common::bin().as_bytes()) {
            return false; // not exec'd yet
        }
        owner = std::fs::metadata(format!("/proc/{pid}/environ"))
            .ok()
            .map(|m| m.uid());
        owner == Some(0)
    });
    drop(writer);
    kill_and_wait(child);
    assert_eq!(
        owner,
        Some(0),
        "/proc/PID/environ of vmcreds-guest (running as uid {}) is not root's: the process is dumpable",
        if own_uid == 0 { 65534 } else { own_uid }
    );
}
