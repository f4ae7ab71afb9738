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

const CANARY: &[u8] = b"CANARY-import-5d1e0c7a-SECRET";

/// A VM without systemd whose SMBIOS carries one credential.
fn vm_to_import() -> common::Fixture {
    let f = common::Fixture::new();
    f.remove("usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-257.so");
    f.remove("run/credentials/@system");
    let mut s = b"io.systemd.credential:API_KEY=".to_vec();
    s.extend_from_slice(CANARY);
    f.smbios(&[&s]);
    f
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn mounted(p: &Path) -> bool {
    let canon = std::fs::canonicalize(p).unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(canon.to_str().unwrap()))
}

/// Issue 13 §6: `import --to DIR` followed a symbolic link at DIR, mounted
/// over a directory that held files (hiding them), and without a mount
/// chmodded any directory 0700 and wrote the secrets into it. A link, or a
/// directory holding anything but a previous import, is refused now, and
/// nothing about it changes; the mount goes through a checked fd.
#[test]
fn test_issue13_6_import_refuses_a_link_or_a_full_directory() {
    let f = vm_to_import();
    let d = tempfile::tempdir().unwrap();
    // A link at DIR, to a directory of someone else's.
    let elsewhere = d.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o755)).unwrap();
    let link = d.path().join("creds");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    for extra in [&["--no-mount"][..], &[]] {
        let mut args = vec!["--to", link.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = f.run("import", &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains("is a symbolic link"), "{err}");
        assert_eq!(
            std::fs::read_dir(&elsewhere).unwrap().count(),
            0,
            "{extra:?}: written through the link"
        );
        assert_eq!(
            mode(&elsewhere),
            0o755,
            "{extra:?}: chmodded through the link"
        );
        assert!(
            !mounted(&elsewhere) && !mounted(&link),
            "{extra:?}: mounted over"
        );
        common::assert_output_clean("import", &out, &[CANARY]);
    }
    // A directory that holds something.
    let full = d.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(full.join("notes.txt"), b"keep").unwrap();
    for extra in [&["--no-mount"][..], &[]] {
        let mut args = vec!["--to", full.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = f.run("import", &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(
            err.contains("is not empty") && err.contains("\"notes.txt\""),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(&full).unwrap().count(), 1, "{extra:?}");
        assert_eq!(mode(&full), 0o755, "{extra:?}");
        assert!(!mounted(&full), "{extra:?}: mounted over the files");
    }
    // An empty directory, as root: the private mount, written through its fd.
    if rustix::process::geteuid().is_root() {
        let to = d.path().join("new");
        let out = f.run("import", &["--to", to.to_str().unwrap()]);
        let t = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{t}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if t.contains("new private") {
            assert!(mounted(&to), "{t}");
            assert_eq!(std::fs::read(to.join("API_KEY")).unwrap(), CANARY);
            rustix::mount::unmount(&to, rustix::mount::UnmountFlags::DETACH).unwrap();
            assert_eq!(
                std::fs::read_dir(&to).unwrap().count(),
                0,
                "the secret went under the mount, not into it"
            );
        } else {
            assert!(t.contains("plain 0700 directory"), "{t}");
        }
    }
}
