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
    if common::root_or_skip("the private mount needs root") {
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

/// `vmcreds-guest install-unit --root IMG ARGS…`.
fn install_unit(img: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::bin())
        .arg("install-unit")
        .arg("--root")
        .arg(img)
        .args(args)
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap()
}

/// Every entry under `dir`, with its kind, mode and content: what "nothing
/// changed" compares.
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let content = if m.file_type().is_file() {
                std::fs::read(&p).unwrap()
            } else if m.file_type().is_symlink() {
                std::fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                if m.file_type().is_dir() {
                    todo.push(p.clone());
                }
                Vec::new()
            };
            out.push((p, m.mode(), content));
        }
    }
    out.sort();
    out
}

/// Asserts `dir` is as `before` was; a failure names the entries that
/// changed (path, mode, size), not their bytes.
fn assert_unchanged(dir: &Path, before: &[(std::path::PathBuf, u32, Vec<u8>)], why: &str) {
    let after = snapshot(dir);
    if after != before {
        let show = |s: &[(std::path::PathBuf, u32, Vec<u8>)]| -> Vec<String> {
            s.iter()
                .map(|(p, m, c)| format!("{} {m:o} {} bytes", p.display(), c.len()))
                .collect()
        };
        panic!("{why}: before {:?}, after {:?}", show(before), show(&after));
    }
}

/// Issue 13 §1: `install-unit --root IMG`, run as root on a build host,
/// wrote `IMG/etc/systemd/system/.vmcreds-check.service.tmp` through a link
/// planted there (overwriting and chmodding any file to 0644), and followed
/// an absolute `IMG/etc` link onto the build host's own directories. Now
/// every path is resolved inside IMG: the planted link and its target stay
/// as they were, and an `etc -> /ABS` link leads to `IMG/ABS`.
#[test]
fn test_issue13_1_install_unit_stays_inside_the_image() {
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"the build host's file\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();

    // A link at the temporary name the unit used to be written under.
    let img = tempfile::tempdir().unwrap();
    let units = img.path().join("etc/systemd/system");
    std::fs::create_dir_all(&units).unwrap();
    std::os::unix::fs::symlink(&victim, units.join(".vmcreds-check.service.tmp")).unwrap();
    let before = snapshot(outside.path());
    let out = install_unit(img.path(), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_unchanged(
        outside.path(),
        &before,
        "written or chmodded through the link at the temporary name",
    );
    let unit = units.join("vmcreds-check.service");
    let m = std::fs::symlink_metadata(&unit).unwrap();
    assert!(m.file_type().is_file(), "the unit is not a regular file");
    assert_eq!(m.mode() & 0o7777, 0o644);
    assert!(std::fs::read_to_string(&unit)
        .unwrap()
        .contains("ExecStart=/usr/local/bin/vmcreds-guest check\n"));
    assert_eq!(
        std::fs::read_link(units.join("multi-user.target.wants/vmcreds-check.service")).unwrap(),
        Path::new("../vmcreds-check.service")
    );

    // `IMG/etc -> /ABS`, as images hold them: ABS is the image's, not the
    // build host's (which the test makes exist, holding the victim).
    let img = tempfile::tempdir().unwrap();
    let abs = outside.path();
    std::os::unix::fs::symlink(abs, img.path().join("etc")).unwrap();
    let inside = img.path().join(abs.strip_prefix("/").unwrap());
    std::fs::create_dir_all(&inside).unwrap();
    let before = snapshot(outside.path());
    let out = install_unit(img.path(), &["--report-to", "virtio-port:org.vmcreds.0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_unchanged(
        outside.path(),
        &before,
        "the absolute etc link was followed out of the image",
    );
    let unit = inside.join("systemd/system/vmcreds-check.service");
    assert!(
        std::fs::read_to_string(&unit)
            .unwrap()
            .contains("--report-to virtio-port:org.vmcreds.0\n"),
        "the unit did not land inside the image"
    );
    assert!(inside
        .join("systemd/system/multi-user.target.wants/vmcreds-check.service")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
}

/// A systemd 257 VM that received one credential over SMBIOS.
fn vm_with_one_credential() -> common::Fixture {
    let f = common::Fixture::new();
    let mut s = b"io.systemd.credential:API_KEY=".to_vec();
    s.extend_from_slice(CANARY);
    f.smbios(&[&s]);
    f.imported("API_KEY", CANARY);
    f
}

/// Issue 13 §2: under `--root DIR`, `--report-to file:PATH` and
/// `unix:PATH` went to the build host's PATH (a report written over any
/// file, sent to any socket), while every other path was read inside DIR.
/// Now they are resolved inside DIR too, a link in the tree included (the
/// virtio port: `guest::dest::tests::test_issue13_2_…`).
#[test]
fn test_issue13_2_file_and_unix_destinations_stay_inside_the_root() {
    let f = vm_with_one_credential();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"the build host's file\n").unwrap();
    let host_sock = outside.path().join("collect.sock");
    let host_listener = std::os::unix::net::UnixListener::bind(&host_sock).unwrap();
    host_listener.set_nonblocking(true).unwrap();
    let abs = outside.path().strip_prefix("/").unwrap().to_str().unwrap();
    // The same absolute paths inside the tree, one through a link.
    f.mkdir(abs);
    std::os::unix::fs::symlink(outside.path(), f.path("reports")).unwrap();
    let tree_listener =
        std::os::unix::net::UnixListener::bind(f.path(&format!("{abs}/collect.sock"))).unwrap();
    let reader = std::thread::spawn(move || {
        let (mut c, _) = tree_listener.accept().unwrap();
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut c, &mut v).unwrap();
        v
    });
    let before = snapshot(outside.path());
    let out = f.run(
        "check",
        &[
            "--expect",
            "API_KEY",
            "--report-to",
            &format!("file:{}", victim.display()),
            "--report-to",
            "file:/reports/report.json",
            "--report-to",
            &format!("unix:{}", host_sock.display()),
        ],
    );
    assert_unchanged(
        outside.path(),
        &before,
        "a report was written outside the root",
    );
    assert!(
        matches!(host_listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a report was sent to the build host's socket"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    for p in [format!("{abs}/victim"), format!("{abs}/report.json")] {
        let doc = std::fs::read(f.path(&p)).unwrap();
        assert!(doc.starts_with(b"{\"schema\":\"vmcreds.report/1\""), "{p}");
        assert_eq!(mode(&f.path(&p)), 0o600, "{p}");
    }
    assert!(reader
        .join()
        .unwrap()
        .starts_with(b"{\"schema\":\"vmcreds.report/1\""));
    common::assert_output_clean("check", &out, &[CANARY]);

    // Inside the tree, only a socket is connected to.
    f.write("run/not-a-socket", b"old");
    let out = f.run("check", &["--report-to", "unix:/run/not-a-socket"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("is a regular file, not a socket"), "{err}");
    assert_eq!(std::fs::read(f.path("run/not-a-socket")).unwrap(), b"old");
}

/// Issue 13 §9: a newline in `--report-to` injected lines into the unit
/// `install-unit` wrote (and left a quote open, so systemd refused the unit
/// and everything that `Requires=` it), with exit 0; and the image's new
/// directories took the umask (0700 under 077). A control character in a
/// destination is a usage error now, before anything is written, and new
/// directories are 0755 whatever the umask.
#[test]
fn test_issue13_9_install_unit_refuses_control_characters() {
    for bad in [
        "file:/var/lib/r.json\nExecStartPre=/bin/evil",
        "unix:/run/x\r.sock",
        "file:/a\u{1b}[2J",
        "file:/a\u{7f}",
        "virtio-port:org.vmcreds\t0",
    ] {
        let img = tempfile::tempdir().unwrap();
        let out = install_unit(img.path(), &["--report-to", bad]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {err}");
        assert_eq!(
            std::fs::read_dir(img.path()).unwrap().count(),
            0,
            "{bad:?}: something was written"
        );
        assert!(
            !out.stderr
                .iter()
                .any(|&b| b == 0x1b || b == b'\r' || b == 0x7f),
            "{bad:?}: a raw control character reached stderr"
        );
    }
    // The directories it creates are 0755 under umask 077.
    let img = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("umask 077 && exec \"$0\" install-unit --root \"$1\"")
        .arg(common::bin())
        .arg(img.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for d in [
        "etc",
        "etc/systemd",
        "etc/systemd/system",
        "etc/systemd/system/multi-user.target.wants",
    ] {
        assert_eq!(mode(&img.path().join(d)), 0o755, "{d}");
    }
    assert_eq!(
        mode(&img.path().join("etc/systemd/system/vmcreds-check.service")),
        0o644
    );
}

/// Issue 13 §11: `get` printed the first 16 MiB of an `@system` file of any
/// size and exited 0. systemd never writes a credential over 1 MiB, so such
/// a file is refused, from its size, with exit 1 and nothing on stdout.
#[test]
fn test_issue13_11_get_refuses_an_oversized_file() {
    let f = common::Fixture::new();
    for (name, size) in [("JUST_OVER", (1u64 << 20) + 1), ("HUGE", 20 << 20)] {
        let file =
            std::fs::File::create(f.path(&format!("run/credentials/@system/{name}"))).unwrap();
        file.set_len(size).unwrap(); // sparse: nothing to read but zeros
        drop(file);
        let out = f.run("get", &[name]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(
            out.stdout.is_empty(),
            "{name}: {} bytes printed",
            out.stdout.len()
        );
        assert!(
            err.contains(&format!("/run/credentials/@system/{name}"))
                && err.contains(&size.to_string())
                && err.contains("1048576"),
            "{name}: the message names neither the file, its size nor the limit: {err}"
        );
    }
}
