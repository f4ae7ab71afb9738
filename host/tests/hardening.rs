//! Issue 13, "Hardening: what a hostile-input review broke": each attack the
//! review reproduced against `vmcreds-host`, run again. Every test here
//! failed on the code as it was before the fix it is named after.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{api_server, code, connect, root_or_skip, run, serve, stderr, wait_until, TestDir};

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
            "qemu".to_owned(),
            "--set".into(),
            "A=b".into(),
            "--".into(),
            "/bin/true".into(),
            "-M".into(),
            format!("microvm,{evil}"),
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

/// Issue 13 §12, the rest: clap's own refusal quoted the argument it
/// refused as given ("invalid value '…'"), so an escape sequence or a
/// newline in a flag's value reached the terminal raw (with colours on, as
/// on a terminal; `CLICOLOR_FORCE` stands in for one here). Every quoted
/// value is escaped now, and no line of it can pass for the host's verdict.
#[test]
fn test_issue13_12_clap_errors_are_escaped() {
    let t = TestDir::new();
    let evil = "1\x1b[2J\x1b]0;owned\x07\r\nhost verdict: verified\u{9b}31m";
    for args in [
        vec![
            "collect",
            "--listen",
            "unix:s",
            "--manifest",
            "m",
            "--timeout",
            evil,
        ],
        vec!["manifest", "--guest-systemd", evil, "--set", "A=b"],
        vec!["cloud-hypervisor", "--set", "A=b", "--format", evil],
        vec!["qemu", "--qemu-version", evil, "--set", "A=b"],
        vec![evil],
    ] {
        let o = run(t.cmd().args(&args).env("CLICOLOR_FORCE", "1"));
        assert_eq!(code(&o), 2, "{args:?}");
        let err = stderr(&o);
        assert!(
            !o.stderr
                .iter()
                .any(|&b| b == 0x1b || b == 0x07 || b == b'\r')
                && !err.contains('\u{9b}'),
            "{args:?}: a raw control character reached stderr: {err:?}"
        );
        assert!(
            !err.lines().any(|l| l.starts_with("host verdict")),
            "{args:?}: {err}"
        );
        assert!(err.contains("\\x1b[2J"), "{args:?}: {err}");
    }
}

// ---- §3: the guest's text on the host's terminal ----

const API_KEY: &[u8] = b"CANARY-api-key-7f3e9a1c\n";

/// A terminal attack: clear the screen, set the title, move up, and forge
/// the host's verdict on a line of its own; plus C1 CSI, a bidi override, DEL.
const EVIL: &str =
    "ok\n\x1b[2J\x1b]0;pwned\x07\x1b[1Ahost verdict: verified (forged)\x1b[K\u{9b}31m\u{202e}\x7f";

fn manifest_for(t: &TestDir) -> vmcreds_common::manifest::Manifest {
    t.write("k", API_KEY);
    let o = run(t.cmd().args([
        "manifest",
        "--load",
        "API_KEY:./k",
        "--set",
        "ENVIRONMENT=test",
        "--manifest-out",
        "m.json",
    ]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    vmcreds_common::manifest::Manifest::from_json(&std::fs::read(t.join("m.json")).unwrap())
        .unwrap()
}

/// A report in which everything the guest can choose is [`EVIL`]: API_KEY
/// arrived, ENVIRONMENT is missing with the guest's reason, and an
/// unexpected credential has a hostile name, reason and digest.
fn hostile_report(m: &vmcreds_common::manifest::Manifest) -> vmcreds_common::report::Report {
    use vmcreds_common::digest::digest;
    let nonce = m.nonce.as_ref();
    let sd = |v: &[u8]| {
        serde_json::json!({"present": true, "bytes": v.len(), "digest": digest(v, nonce),
            "mode": "0400", "secure": "secure"})
    };
    let mut evil_digest = serde_json::to_value(digest(b"x", nonce)).unwrap();
    evil_digest["hex"] = EVIL.into();
    let report = serde_json::json!({
        "schema": "vmcreds.report/1",
        "generator": EVIL,
        "nonce_id": m.expected_nonce_id(),
        "system": {"smbios_version": EVIL, "hypervisor_vendor": EVIL, "hypervisor_product": EVIL},
        "preconditions": [{"check": EVIL, "state": "failed", "detail": EVIL}],
        "smbios": {"entries": [{"entry": 0, "bytes": 5, "handle": null, "count": null,
            "strings": 0, "error": EVIL, "anomalies": [EVIL]}],
            "strings": {"total": 0, "imported": 0, "rejected": 0, "shadowed": 0, "not_credential": 0},
            "unnamed_rejections": [{"entry": 0, "string": 1, "reason": EVIL}],
            "table_cross_check": {"structures": 1, "agrees": false, "detail": EVIL}},
        "credentials": [
            {"name": "API_KEY", "bytes": API_KEY.len(), "digest": digest(API_KEY, nonce),
             "encoding": "binary", "source": "smbios", "smbios": "importable",
             "systemd": sd(API_KEY), "expected": null, "status": "ok", "reason": EVIL},
            {"name": "ENVIRONMENT", "bytes": null, "digest": null, "encoding": null,
             "source": null, "smbios": "absent", "systemd": null, "expected": null,
             "status": "missing", "reason": EVIL},
            {"name": EVIL, "bytes": 1, "digest": evil_digest, "encoding": "text",
             "source": "smbios", "smbios": "importable", "systemd": sd(b"x"),
             "expected": null, "status": "unexpected", "reason": EVIL}
        ],
        "verdict": {"result": "verified", "ok": 3, "failed": 0, "summary": EVIL, "reasons": [EVIL]}
    });
    serde_json::from_value(report).unwrap()
}

/// Every byte a terminal could act on, or any non-ASCII character other
/// than the table's own marks.
fn assert_terminal_safe(what: &str, bytes: &[u8]) {
    let text = String::from_utf8(bytes.to_vec()).unwrap_or_else(|_| panic!("{what}: not UTF-8"));
    if let Some((i, c)) = text
        .char_indices()
        .find(|&(_, c)| !matches!(c, ' '..='~' | '\n' | '✓' | '✗' | '…'))
    {
        panic!("{what}: {c:?} at byte {i} reached the output: {text}");
    }
}

/// The host's text output: the forged line never starts a line, the guest's
/// table is marked line by line, and the only `host verdict:` is the host's.
fn assert_text_verdict_is_the_hosts(what: &str, out: &str) {
    assert_terminal_safe(what, out.as_bytes());
    let verdicts: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("host verdict: "))
        .collect();
    assert_eq!(verdicts.len(), 1, "{what}: {out}");
    assert!(
        verdicts[0].starts_with("host verdict: failed (the guest says \""),
        "{what}: {out}"
    );
    for l in out.lines().filter(|l| l.contains("forged")) {
        assert!(
            l.starts_with("guest| ") || l.starts_with("  ") || l == verdicts[0],
            "{what}: a line with guest text is not attributed: {l:?}"
        );
    }
    assert!(out.contains("guest| verdict: verified ("), "{what}: {out}");
    assert!(
        out.contains("the guest says: ok\\x0a\\x1b[2J"),
        "{what}: {out}"
    );
}

/// Issue 13 §3: collect and verify printed the guest's names, reasons,
/// digests and summary as they came, so a hostile guest could clear the
/// operator's screen and print a forged `host verdict: verified` line of its
/// own. All of it is escaped, marked as the guest's, and kept off the start
/// of a line; the JSON is ASCII and still parses to the guest's exact text.
#[test]
fn test_issue13_3_guest_text_is_escaped_and_attributed() {
    let t = TestDir::new();
    let m = manifest_for(&t);
    let report = hostile_report(&m);
    t.write("r.json", report.to_json().as_bytes());
    let o = run(t
        .cmd()
        .args(["verify", "--manifest", "m.json", "--report", "r.json"]));
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_text_verdict_is_the_hosts("verify", &String::from_utf8_lossy(&o.stdout));
    assert_terminal_safe("verify stderr", &o.stderr);

    let o = run(t.cmd().args([
        "verify",
        "--manifest",
        "m.json",
        "--report",
        "r.json",
        "--json",
    ]));
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        o.stdout.iter().all(|&b| matches!(b, 0x20..=0x7e | b'\n')),
        "verify --json is not printable ASCII"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["report"]["verdict"]["summary"], EVIL,
        "JSON keeps the text"
    );
    assert_eq!(v["verdict"]["guest_summary"], EVIL);

    // The same over collect's socket.
    let sock = t.join("c.sock");
    let child = t
        .cmd()
        .args(["collect", "--listen"])
        .arg(format!("unix:{}", sock.display()))
        .args(["--manifest", "m.json", "--timeout", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut s = connect(&sock);
    std::io::Write::write_all(&mut s, &wire(&report)).unwrap();
    let (o, ended) = wait_or_kill(child, Duration::from_secs(20));
    assert!(ended, "collect did not finish");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_text_verdict_is_the_hosts("collect", &String::from_utf8_lossy(&o.stdout));
    assert_terminal_safe("collect stderr", &o.stderr);
}

/// Issue 13 §3, refusals: the parser's message quotes the guest (an unknown
/// status or state), and another nonce's id is the guest's text.
#[test]
fn test_issue13_3_guest_text_in_refusals_is_escaped() {
    let t = TestDir::new();
    let m = manifest_for(&t);
    let good = serde_json::to_value(hostile_report(&m)).unwrap();
    let mut bad_variant = good.clone();
    bad_variant["credentials"][0]["status"] = EVIL.into();
    let mut bad_state = good.clone();
    bad_state["preconditions"][0]["state"] = EVIL.into();
    let mut other_nonce = good.clone();
    other_nonce["nonce_id"] = EVIL.into();
    for (what, doc) in [
        ("unknown variant", bad_variant),
        ("unknown state", bad_state),
        ("other nonce", other_nonce),
    ] {
        t.write("r.json", doc.to_string().as_bytes());
        let o = run(t
            .cmd()
            .args(["verify", "--manifest", "m.json", "--report", "r.json"]));
        assert_eq!(code(&o), 2, "{what}: {}", stderr(&o));
        assert_terminal_safe(what, &o.stderr);
        assert!(stderr(&o).contains("\\x1b[2J"), "{what}: {}", stderr(&o));
    }
}

/// The guest's wire form: compact JSON and one newline.
fn wire(r: &vmcreds_common::report::Report) -> Vec<u8> {
    let mut v = serde_json::to_vec(r).unwrap();
    v.push(b'\n');
    v
}

// ---- §10: a trickled report ----

/// User plus system CPU time of `pid`, in seconds (/proc/PID/stat fields 14
/// and 15, in clock ticks of 1/100 s on Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // rest starts at field 3 (state): utime is field 14, stime 15.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Issue 13 §10: collect re-parsed its whole buffer after every read, so a
/// guest sending 3.9 MB of an unfinished report and then one byte a
/// millisecond kept about 70 % of a core busy. It parses as bytes come, and
/// reads at most 200 times a second: the trickle now costs almost nothing.
#[test]
fn test_issue13_10_trickled_report_does_not_burn_a_core() {
    let t = TestDir::new();
    manifest_for(&t);
    let sock = t.join("c.sock");
    let child = t
        .cmd()
        .args(["collect", "--listen"])
        .arg(format!("unix:{}", sock.display()))
        .args(["--manifest", "m.json", "--timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut s = connect(&sock);
    let mut prefix = b"{\"schema\": \"".to_vec();
    prefix.resize(3_900_000, b'a');
    std::io::Write::write_all(&mut s, &prefix).unwrap();
    // Let collect take in the prefix before measuring.
    std::thread::sleep(Duration::from_millis(500));
    let cpu0 = cpu_seconds(pid);
    let t0 = std::time::Instant::now();
    let mut sent = 0;
    while t0.elapsed() < Duration::from_secs(3) {
        std::io::Write::write_all(&mut s, b"a").unwrap();
        sent += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    let wall = t0.elapsed().as_secs_f64();
    let share = (cpu_seconds(pid) - cpu0) / wall;
    drop(s);
    let (o, ended) = wait_or_kill(child, Duration::from_secs(20));
    eprintln!(
        "collect used {:.0} % of a core over {wall:.1} s of a {sent}-byte trickle",
        share * 100.0
    );
    assert!(ended, "collect did not end once the peer closed");
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("before a complete JSON report"),
        "{}",
        stderr(&o)
    );
    assert!(
        share < 0.15,
        "collect used {:.0} % of a core on a trickled report",
        share * 100.0
    );
}

// ---- §8: cloud-hypervisor error bodies ----

/// Issue 13 §8: the redaction of cloud-hypervisor's error bodies caught
/// exact copies only: a server quoting a piece of the request showed 16
/// base64 characters of a secret, a hex echo all of it. Now every run of 8
/// or more base64 or hex characters is cut, and at most 200 bytes shown.
#[test]
fn test_issue13_8_error_body_shows_no_piece_of_a_secret() {
    let t = TestDir::new();
    t.write("k", API_KEY);
    let config = t.write("vm.json", b"{\"payload\":{\"kernel\":\"/k\"}}");
    let sock = t.join("api.sock");
    let b64 = String::from_utf8(vmcreds_common::base64::encode(API_KEY).expose().to_vec()).unwrap();
    let hex = vmcreds_common::digest::hex(API_KEY);
    let (b, h) = (b64.clone(), hex.clone());
    let server = api_server(&sock, move |req: &[u8]| {
        let sent = String::from_utf8_lossy(req);
        assert!(
            sent.contains(&b),
            "the request carries the secret in base64"
        );
        let body = format!(
            "{{\"error\": \"bad string near '{}' (value {h})\"}}",
            &b[3..19]
        );
        format!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    });
    let o = run(t
        .cmd()
        .args(["cloud-hypervisor", "--load", "API_KEY:./k", "--api-socket"])
        .arg(&sock)
        .arg("--vm-config")
        .arg(&config));
    server.join().unwrap();
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        err.contains("with 500 Internal Server Error") && err.contains("bad string near '[cut]'"),
        "{err}"
    );
    for encoded in [b64.as_str(), hex.as_str(), &hex.to_ascii_uppercase()] {
        for w in encoded.as_bytes().windows(8) {
            let w = std::str::from_utf8(w).unwrap();
            assert!(
                !err.contains(w),
                "8 characters of an encoded secret ({w}) in: {err}"
            );
        }
    }
}

// ---- §4: whose API socket ----

const NO_CONTENT: &[u8] = b"HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n";

const NOBODY: u32 = 65534;

fn chown(p: &Path, uid: u32) {
    rustix::fs::chown(
        p,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(uid)),
    )
    .unwrap();
}

/// API mode against `sock`, with `extra` arguments.
fn api_run(t: &TestDir, sock: &Path, extra: &[&str]) -> std::process::Output {
    t.write("k", API_KEY);
    let config = t.write("vm.json", b"{\"payload\":{\"kernel\":\"/k\"}}");
    run(t
        .cmd()
        .args(["cloud-hypervisor", "--load", "API_KEY:./k", "--api-socket"])
        .arg(sock)
        .arg("--vm-config")
        .arg(&config)
        .args(extra))
}

/// Nothing connected to `listener` (it is made non-blocking).
fn assert_no_connection(listener: &std::os::unix::net::UnixListener, what: &str) {
    listener.set_nonblocking(true).unwrap();
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "{what}: vmcreds-host connected"
    );
}

/// Issue 13 §4: API mode checked only the socket's mode bits, so a socket
/// bound first by another user received the whole VmConfig, every
/// credential in it. The socket, its directory and the process answering on
/// it must now belong to this user (or `--vmm-user`); otherwise nothing is
/// sent and the message names the owner.
#[test]
fn test_issue13_4_api_socket_owned_by_another_user_is_refused() {
    if !root_or_skip("sockets of another user are made with chown and setresuid") {
        return;
    }
    let t = TestDir::new();
    // 1. The socket file belongs to nobody.
    let sock = t.join("api.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    chown(&sock, NOBODY);
    let o = api_run(&t, &sock, &[]);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        err.contains("belongs to uid 65534") && err.contains("--vmm-user"),
        "{err}"
    );
    assert_no_connection(&listener, "socket of another user");
    // ... unless cloud-hypervisor is said to run as that user.
    listener.set_nonblocking(false).unwrap();
    let server = serve(listener, 2, |_: &[u8]| NO_CONTENT.to_vec());
    let o = api_run(&t, &sock, &["--vmm-user", "65534"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(server.join().unwrap().len(), 2, "vm.create and vm.boot");
    std::fs::remove_file(&sock).unwrap();

    // 2. The directory is writable by everyone, without the sticky bit.
    let shared = t.mkdir("shared");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let sock = shared.join("api.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let o = api_run(&t, &sock, &[]);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(err.contains("mode 0777") && err.contains("sticky"), "{err}");
    assert_no_connection(&listener, "world-writable directory");
    // The sticky bit (as /tmp has) keeps others from replacing the socket.
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    listener.set_nonblocking(false).unwrap();
    let server = serve(listener, 2, |_: &[u8]| NO_CONTENT.to_vec());
    let o = api_run(&t, &sock, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    server.join().unwrap();

    // 3. The file is root's, in a root directory, but nobody listens on it:
    //    a thread with euid nobody binds and listens in nobody's directory,
    //    then the socket is moved beside the others and given to root.
    let theirs = t.mkdir("theirs");
    chown(&theirs, NOBODY);
    let bound = theirs.join("s");
    let b = bound.clone();
    let listener = std::thread::spawn(move || {
        rustix::thread::set_thread_res_uid(
            rustix::process::Uid::ROOT,
            rustix::process::Uid::from_raw(NOBODY),
            rustix::process::Uid::ROOT,
        )
        .unwrap();
        std::os::unix::net::UnixListener::bind(&b).unwrap()
    })
    .join()
    .unwrap();
    let sock = t.join("moved.sock");
    std::fs::rename(&bound, &sock).unwrap();
    chown(&sock, 0);
    let server = serve(listener, 1, |_: &[u8]| NO_CONTENT.to_vec());
    let o = api_run(&t, &sock, &[]);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(err.contains("runs as uid 65534"), "{err}");
    // It connected (to ask who listens) and sent nothing.
    let bodies = server.join().unwrap();
    assert!(
        bodies.iter().all(|b| b.is_empty()),
        "a request body was sent"
    );
}

// ---- §5: every stop signal with --runtime-dir ----

/// Whether `pid` is gone (or a zombie nobody reaped yet: it runs no more).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s[s.rfind(')').unwrap() + 2..].starts_with('Z'),
    }
}

/// Kills the stand-in for QEMU when a test ends, passed or not.
struct Reap(i32);

impl Drop for Reap {
    fn drop(&mut self) {
        if !gone(self.0) {
            // SAFETY: kill(2) of the stand-in this test started.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
}

/// `vmcreds-host qemu --runtime-dir rt -- STAND-IN`, where the stand-in for
/// QEMU writes its pid and sleeps; returns vmcreds-host and the stand-in's pid.
fn start_runtime_dir_run(t: &TestDir) -> (Child, i32) {
    let out = t.join("out");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir(&out).unwrap();
    t.write("k", API_KEY);
    let child = t
        .cmd()
        .args(["qemu", "--load", "K:./k", "--runtime-dir", "rt", "--"])
        .args([
            "/bin/sh",
            "-c",
            r#"echo $$ > "$0/pid.tmp"; mv "$0/pid.tmp" "$0/pid"; exec sleep 600 </dev/null >/dev/null 2>&1"#,
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid_file = out.join("pid");
    assert!(
        wait_until(Duration::from_secs(20), || pid_file.exists()),
        "the stand-in never ran"
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The stand-in has exec'd sleep once /proc shows it.
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep"))
    }));
    assert_eq!(tree(&t.join("rt")).len(), 3, "{:?}", tree(&t.join("rt")));
    (child, pid)
}

fn tree(dir: &Path) -> Vec<String> {
    common::tree(dir)
}

/// Issue 13 §5: with `--runtime-dir`, only SIGTERM, SIGINT and SIGHUP were
/// handled: SIGQUIT, SIGUSR1, SIGALRM, SIGXCPU … ended vmcreds-host with the
/// secret files left on disk and QEMU running unsupervised. Every stop
/// signal now stops QEMU and removes the files; SIGPIPE changes nothing; and
/// SIGKILL, which nothing can catch, still takes QEMU with it.
#[test]
fn test_issue13_5_runtime_dir_files_go_on_every_stop_signal() {
    let t = TestDir::new();
    t.mkdir("rt");
    let signals = [
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGSYS,
        libc::SIGIO,
        libc::SIGPWR,
        libc::SIGABRT,
        libc::SIGRTMIN() + 3,
        libc::SIGINT,
    ];
    for sig in signals {
        let (child, qemu) = start_runtime_dir_run(&t);
        let _reap = Reap(qemu);
        // SAFETY: kill(2) to a child of this test.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let (o, ended) = wait_or_kill(child, Duration::from_secs(20));
        assert!(ended, "signal {sig}: vmcreds-host did not end");
        assert!(gone(qemu), "signal {sig}: QEMU (pid {qemu}) still runs");
        assert!(
            tree(&t.join("rt")).is_empty(),
            "signal {sig}: left behind: {:?}",
            tree(&t.join("rt"))
        );
        let want = if sig == libc::SIGINT {
            128 + libc::SIGINT
        } else {
            128 + libc::SIGTERM
        };
        assert_eq!(code(&o), want, "signal {sig}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("stopping the VM"),
            "signal {sig}: {}",
            stderr(&o)
        );
    }

    // SIGPIPE is ignored: everything runs on until a real stop.
    let (child, qemu) = start_runtime_dir_run(&t);
    let _reap = Reap(qemu);
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGPIPE) };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!gone(qemu), "SIGPIPE stopped QEMU");
    assert_eq!(tree(&t.join("rt")).len(), 3);
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let (o, ended) = wait_or_kill(child, Duration::from_secs(20));
    assert!(ended && gone(qemu), "{}", stderr(&o));
    assert!(tree(&t.join("rt")).is_empty());

    // SIGKILL: the files stay (nothing can run), but QEMU goes too.
    let (mut child, qemu) = start_runtime_dir_run(&t);
    let _reap = Reap(qemu);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || gone(qemu)),
        "QEMU (pid {qemu}) runs on after vmcreds-host was killed"
    );
    for d in std::fs::read_dir(t.join("rt")).unwrap() {
        std::fs::remove_dir_all(d.unwrap().path()).unwrap();
    }
}
