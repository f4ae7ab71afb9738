//! Issue 13, "Hardening: what a hostile-input review broke": each attack the
//! review reproduced against `vmcreds-host`, run again. Every test here
//! failed on the code as it was before the fix it is named after.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{code, run, stderr, wait_until, TestDir};

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

/// Waits for `child` at most `timeout`; kills it if it is still running.
/// Returns its output and whether it ended by itself.
fn wait_or_kill(mut child: Child, timeout: Duration) -> (std::process::Output, bool) {
    let ended = wait_until(timeout, || child.try_wait().unwrap().is_some());
    if !ended {
        let _ = child.kill();
    }
    (child.wait_with_output().unwrap(), ended)
}

// ---- §7: not dumpable ----

/// The owner of `/proc/PID/environ` once `pid` runs `bin`: root for a
/// process that is not dumpable, its own user otherwise (the kernel's
/// task_dump_owner; the directory itself keeps the process's user).
fn proc_owner_once_running(pid: u32, bin: &str) -> Option<u32> {
    let mut owner = None;
    wait_until(Duration::from_secs(10), || {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        if !cmdline.starts_with(bin.as_bytes()) {
            return false; // not exec'd yet
        }
        owner = std::fs::metadata(format!("/proc/{pid}/environ"))
            .ok()
            .map(|m| m.uid());
        owner == Some(0)
    });
    owner
}

/// Issue 13 §7: a core dump (or another process of the same user reading
/// `/proc/PID/mem`) of vmcreds-host waiting on a slow source held the loaded
/// secrets. It is not dumpable from its start: the kernel then gives
/// `/proc/PID/*` to root, which the test sees while the process waits on a
/// FIFO whose writer (the test) has written nothing yet.
#[test]
fn test_issue13_7_host_is_not_dumpable() {
    let t = TestDir::new();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let fifo = t.join("slow-source");
    mkfifo(&fifo);
    // The test holds the FIFO open for writing (O_RDWR never blocks), so the
    // source has a writer and vmcreds-host waits for its bytes.
    let writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let bin = env!("CARGO_BIN_EXE_vmcreds-host");
    let mut c = t.cmd();
    c.args(["manifest", "--load", "A:./slow-source"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let own_uid = rustix::process::geteuid().as_raw();
    if own_uid == 0 {
        // As root, /proc/PID/* is root's either way: run it as nobody.
        use std::os::unix::process::CommandExt;
        c.uid(65534).gid(65534);
    }
    let child = c.spawn().unwrap();
    let owner = proc_owner_once_running(child.id(), bin);
    drop(writer);
    let (_, _) = wait_or_kill(child, Duration::from_secs(1));
    assert_eq!(
        owner,
        Some(0),
        "/proc/PID/environ of vmcreds-host (running as uid {}) is not root's: the process is dumpable",
        if own_uid == 0 { 65534 } else { own_uid }
    );
}

// ---- §11: a FIFO without a writer ----

/// Issue 13 §11: `--load X:FIFO` with nothing writing to the FIFO blocked
/// forever in open(2), without a word. It is refused at once, naming the
/// FIFO and what to do instead.
#[test]
fn test_issue13_11_load_fifo_without_writer_is_refused_not_waited_for() {
    let t = TestDir::new();
    mkfifo(&t.join("fifo"));
    let child = t
        .cmd()
        .args(["manifest", "--load", "A:./fifo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (o, ended) = wait_or_kill(child, Duration::from_secs(10));
    assert!(ended, "vmcreds-host still waits for a writer after 10 s");
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("\"A\"") && err.contains("./fifo") && err.contains("FIFO with no writer"),
        "{err}"
    );
}

/// Issue 13 §11, the decision kept: a pipe with a writer (bash process
/// substitution, a FIFO whose writer started first) is read to its end, even
/// when the writer takes its time.
#[test]
fn test_issue13_11_load_from_process_substitution_still_works() {
    if !Path::new("/bin/bash").exists() {
        panic!("/bin/bash is needed for process substitution (Debian has it)");
    }
    let t = TestDir::new();
    let o = Command::new("/bin/bash")
        .args([
            "-c",
            r#"exec "$0" manifest --load 'A:'<(sleep 0.5; printf 'slow-value') --load 'B:'<(printf 'fast')"#,
            env!("CARGO_BIN_EXE_vmcreds-host"),
        ])
        .current_dir(t.path())
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let m = vmcreds_common::manifest::Manifest::from_json(&o.stdout).unwrap();
    assert_eq!(m.get("A").unwrap().bytes, 10);
    assert_eq!(m.get("B").unwrap().bytes, 4);
    // A FIFO whose writer is there first is read too.
    let fifo = t.join("fifo");
    mkfifo(&fifo);
    let w = fifo.clone();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&w)
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        std::io::Write::write_all(&mut f, b"abc").unwrap();
        // Keep it open (as a writer) until vmcreds-host has read the bytes,
        // then close: EOF.
        std::thread::sleep(Duration::from_millis(300));
    });
    std::thread::sleep(Duration::from_millis(100));
    let o = run(t.cmd().args(["manifest", "--load", "C:./fifo"]));
    writer.join().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let m = vmcreds_common::manifest::Manifest::from_json(&o.stdout).unwrap();
    assert_eq!(m.get("C").unwrap().bytes, 3);
}

// ---- §12: operator paths in messages ----

/// Issue 13 §12: an escape sequence in a `--load` or `--load-dir` path went
/// raw into the terminal with the error. Paths are escaped like names.
#[test]
fn test_issue13_12_paths_in_host_messages_are_escaped() {
    let t = TestDir::new();
    let evil = "./x\x1b]0;owned\x07\x1b[2J\n";
    for args in [
        vec!["manifest".to_owned(), "--load".into(), format!("A:{evil}")],
        vec!["manifest".to_owned(), "--load-dir".into(), evil.to_owned()],
        vec![
            "verify".to_owned(),
            "--manifest".into(),
            evil.to_owned(),
            "--report".into(),
            evil.to_owned(),
        ],
        vec![
            "collect".to_owned(),
            "--listen".into(),
            format!("unix:{evil}/s"),
            "--manifest".into(),
            "m.json".into(),
            "--timeout".into(),
            "1".into(),
        ],
    ] {
        let o = run(t.cmd().args(&args));
        assert_ne!(code(&o), 0, "{args:?}");
        let err = stderr(&o);
        assert!(
            !o.stderr.iter().any(|&b| b == 0x1b || b == 0x07),
            "{args:?}: a raw control byte reached stderr: {err:?}"
        );
        assert!(
            err.contains("x\\x1b]0;owned\\x07\\x1b[2J\\x0a"),
            "{args:?}: {err}"
        );
    }
}
