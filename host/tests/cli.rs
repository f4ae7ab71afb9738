//! CLI tests: the binary run as a user runs it, with canary secrets whose bytes
//! must never appear in any output, argv or report.

mod common;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{code, have_or_skip, run, stderr, stdout, tree, wait_until, Canary, TestDir};
use vmcreds_common::digest::digest;
use vmcreds_common::manifest::Manifest;
use vmcreds_common::oem::{self, Parsed};
use vmcreds_common::report::{
    CredentialReport, Report, Smbios, SmbiosStatus, Status, System, SystemdView, Verdict,
    REPORT_SCHEMA,
};
use vmcreds_common::systemd::Behaviour;

const API_KEY: &[u8] = b"CANARY-api-key-7f3e9a1c\n";
const DB_PASSWORD: &[u8] = b"CANARY-db,pass]word\"=\0binary\xff";

/// The probe QEMU stands in for: records its argv, its own /proc cmdline,
/// every path= file (commas un-doubled), their modes; then waits for "go".
const PROBE: &str = r#"
out=$1; shift
printf '%s\n' "$@" > "$out/argv"
cat /proc/$$/cmdline > "$out/cmdline"
i=0
for a in "$@"; do
  case "$a" in
    type=11,path=*)
      p=$(printf '%s' "${a#type=11,path=}" | sed 's/,,/,/g')
      cat "$p" > "$out/str-$i"
      stat -L -c %a "$p" >> "$out/modes"
      stat -c %a "$(dirname "$p")" >> "$out/dirmodes"
      i=$((i+1));;
  esac
done
touch "$out/ready"
n=0
while [ ! -e "$out/go" ] && [ $n -lt 500 ]; do sleep 0.02; n=$((n+1)); done
exit 7
"#;

fn canaries() -> Vec<Canary> {
    vec![Canary::new(API_KEY), Canary::new(DB_PASSWORD)]
}

fn assert_no_canary(stream: &str, bytes: &[u8]) {
    for c in canaries() {
        c.assert_absent(stream, bytes);
    }
}

/// The reference scenario: files as systemd's LoadCredential= provides them.
fn setup_creds(t: &TestDir) -> PathBuf {
    let creds = t.mkdir("creds");
    t.write("creds/host-api-key", API_KEY);
    t.write("creds/host-db-password", DB_PASSWORD);
    creds
}

fn expected_string(name: &str, value: &[u8]) -> Vec<u8> {
    let mut s = format!("io.systemd.credential.binary:{name}=").into_bytes();
    s.extend_from_slice(vmcreds_common::base64::encode(value).expose());
    s
}

fn run_probe(runtime_dir: Option<&Path>) {
    let t = TestDir::new();
    let creds = setup_creds(&t);
    let out = t.mkdir("out");
    let mut c = t.cmd();
    c.env("CREDENTIALS_DIRECTORY", &creds)
        .args([
            "qemu",
            "--load",
            "API_KEY:host-api-key",
            "--load",
            "DB_PASSWORD:host-db-password",
        ])
        .args([
            "--set",
            "ENVIRONMENT=test",
            "--manifest-out",
            "manifest.json",
        ]);
    if let Some(rd) = runtime_dir {
        c.arg("--runtime-dir").arg(rd);
    }
    c.args(["--", "/bin/sh", "-c", PROBE, "probe"])
        .arg(&out)
        .args(["-M", "q35"]);
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || out.join("ready").exists()),
        "the probe never ran"
    );
    // The process's argv as anyone on the host sees it, while it runs.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap();
    assert_no_canary("/proc/PID/cmdline (read by the test)", &cmdline);
    std::fs::write(out.join("go"), b"").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        code(&o),
        7,
        "the probe's exit status is passed on: {}",
        stderr(&o)
    );
    assert_no_canary("stdout", &o.stdout);
    assert_no_canary("stderr", &o.stderr);

    let argv = std::fs::read(out.join("argv")).unwrap();
    assert_no_canary("probe argv", &argv);
    assert_no_canary(
        "probe /proc/self/cmdline",
        &std::fs::read(out.join("cmdline")).unwrap(),
    );
    let argv = String::from_utf8(argv).unwrap();
    assert!(!argv.contains("value="), "{argv}");
    let lines: Vec<&str> = argv.lines().collect();
    assert_eq!(
        &lines[..2],
        ["-M", "q35"],
        "the command's own arguments come first"
    );
    assert_eq!(lines.len(), 2 + 2 * 4, "{argv}");
    for pair in lines[2..].chunks(2) {
        assert_eq!(pair[0], "-smbios");
        assert!(pair[1].starts_with("type=11,path="), "{}", pair[1]);
    }

    // Each path holds exactly one OEM string; the manifest comes first.
    let strings: Vec<Vec<u8>> = (0..4)
        .map(|i| std::fs::read(out.join(format!("str-{i}"))).unwrap())
        .collect();
    let manifest_file = std::fs::read(t.join("manifest.json")).unwrap();
    let manifest = Manifest::from_json(&manifest_file).unwrap();
    match oem::parse(&strings[0], &Behaviour::of(252)) {
        Parsed::Credential { name, value, .. } => {
            assert_eq!(name.as_str(), "vmcreds.manifest");
            assert_eq!(
                Manifest::from_json(value.expose()).unwrap(),
                manifest,
                "--manifest-out is the injected one"
            );
        }
        other => panic!("first string is not the manifest: {other:?}"),
    }
    assert_eq!(strings[1], expected_string("API_KEY", API_KEY));
    assert_eq!(strings[2], expected_string("DB_PASSWORD", DB_PASSWORD));
    assert_eq!(strings[3], expected_string("ENVIRONMENT", b"test"));
    let names: Vec<&str> = manifest
        .credentials
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["API_KEY", "DB_PASSWORD", "ENVIRONMENT"]);
    assert_eq!(
        manifest.get("DB_PASSWORD").unwrap().bytes,
        DB_PASSWORD.len() as u64
    );
    assert_no_canary("manifest", &manifest_file);
    assert_eq!(
        std::fs::metadata(t.join("manifest.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    if let Some(rd) = runtime_dir {
        let modes = std::fs::read_to_string(out.join("modes")).unwrap();
        assert_eq!(modes.lines().collect::<Vec<_>>(), ["400"; 4], "file modes");
        let dirmodes = std::fs::read_to_string(out.join("dirmodes")).unwrap();
        assert_eq!(
            dirmodes.lines().collect::<Vec<_>>(),
            ["700"; 4],
            "directory modes"
        );
        assert!(tree(rd).is_empty(), "files left behind: {:?}", tree(rd));
    }
}

#[test]
fn qemu_memfd_exec_keeps_secrets_off_argv() {
    run_probe(None);
}

#[test]
fn qemu_runtime_dir_files_private_and_removed() {
    let t = TestDir::new();
    // A comma in the path: doubled for QemuOpts, un-doubled by the probe.
    let rd = t.mkdir("run,dir");
    run_probe(Some(&rd));
}

#[test]
fn qemu_runtime_dir_print_keeps_files() {
    let t = TestDir::new();
    let rd = t.mkdir("rt");
    t.write("k", API_KEY);
    let o = run(t
        .cmd()
        .args([
            "qemu",
            "--load",
            "API_KEY:./k",
            "--no-manifest",
            "--runtime-dir",
        ])
        .arg(&rd));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    canaries()[0].assert_absent_output(&o);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], "-smbios");
    let path = lines[1].strip_prefix("type=11,path=").unwrap();
    assert_eq!(
        std::fs::read(path).unwrap(),
        expected_string("API_KEY", API_KEY)
    );
    assert!(
        stderr(&o).contains("remove the directory"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn qemu_runtime_dir_forwards_sigterm_and_cleans_up() {
    let t = TestDir::new();
    let rd = t.mkdir("rt");
    let out = t.mkdir("out");
    t.write("k", API_KEY);
    let script = r#"trap 'touch "$0/got-term"; exit 143' TERM; touch "$0/ready"; while :; do sleep 0.05; done"#;
    let mut child = t
        .cmd()
        .args([
            "qemu",
            "--load",
            "K:./k",
            "--runtime-dir",
            "rt",
            "--",
            "/bin/sh",
            "-c",
            script,
        ])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || out
        .join("ready")
        .exists()));
    assert_eq!(
        tree(&rd).len(),
        3,
        "directory and two files while QEMU runs: {:?}",
        tree(&rd)
    );
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert!(wait_until(Duration::from_secs(20), || child
        .try_wait()
        .unwrap()
        .is_some()));
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 143, "{}", stderr(&o));
    assert!(out.join("got-term").exists(), "SIGTERM was not forwarded");
    assert!(tree(&rd).is_empty(), "left behind: {:?}", tree(&rd));
}

/// Runs a command that must be refused before anything happens.
struct Refusal<'a> {
    args: Vec<String>,
    code: i32,
    words: &'a [&'a str],
    env_creds: bool,
}

fn refused(t: &TestDir, r: Refusal) {
    let out = t.mkdir("out");
    let rd = t.mkdir("rt");
    let mut c = t.cmd();
    if r.env_creds {
        c.env("CREDENTIALS_DIRECTORY", t.join("creds"));
    }
    let o = run(c.args(&r.args));
    let err = stderr(&o);
    assert_eq!(code(&o), r.code, "{:?}: {err}", r.args);
    assert!(err.starts_with("vmcreds-host: error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "one error line: {err}");
    for w in r.words {
        assert!(err.contains(w), "{:?}: message lacks {w:?}: {err}", r.args);
    }
    assert!(o.stdout.is_empty(), "stdout: {}", stdout(&o));
    assert_no_canary("stderr", &o.stderr);
    assert!(!out.join("ran").exists(), "the command was executed");
    assert!(!t.join("m.json").exists(), "manifest written");
    assert!(tree(&rd).is_empty(), "left behind: {:?}", tree(&rd));
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&rd);
}

fn qemu_args(sources: &[&str], machine: &str) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "qemu".into(),
        "--manifest-out".into(),
        "m.json".into(),
        "--runtime-dir".into(),
        "rt".into(),
        // The probe is /bin/sh: say which QEMU it stands for.
        "--qemu-version".into(),
        "10.2.0".into(),
    ];
    v.extend(sources.iter().map(|s| s.to_string()));
    v.extend(
        [
            "--",
            "/bin/sh",
            "-c",
            "touch out/ran",
            "probe",
            "-M",
            machine,
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    v
}

/// Issue 2, "Bad input gets a clear error and nothing half-done".
#[test]
fn issue2_bad_input_refused_before_anything_happens() {
    let t = TestDir::new();
    setup_creds(&t);
    t.write("big", &vec![b'x'; 1024 * 1024 + 1]);
    t.write("half1", &vec![b'x'; 600 * 1024]);
    t.write("half2", &vec![b'x'; 600 * 1024]);
    t.write("50k", &vec![b'x'; 50 * 1024]);
    t.write("3k", &vec![b'x'; 3_000]);
    t.write("nul", b"a\0b");
    t.mkdir("emptydir");
    t.write("emptydir/.hidden", b"x");
    let cases: Vec<Refusal> = vec![
        Refusal {
            args: qemu_args(&["--load", "API_KEY:/nonexistent/host-api-key"], "q35"),
            code: 3,
            words: &["\"API_KEY\"", "/nonexistent/host-api-key", "os error 2"],
            env_creds: false,
        },
        Refusal {
            args: qemu_args(&["--load", "API_KEY:host-api-key"], "q35"),
            code: 2,
            words: &["\"API_KEY\"", "CREDENTIALS_DIRECTORY", "not set"],
            env_creds: false,
        },
        Refusal {
            args: qemu_args(&["--load", "API KEY:host-api-key"], "q35"),
            code: 2,
            words: &["\"API KEY\"", "portable", "offset 3", "--allow-any-name"],
            env_creds: true,
        },
        Refusal {
            args: qemu_args(&["--load", "API,KEY:host-api-key"], "q35"),
            code: 2,
            words: &["\"API,KEY\"", "breaks hypervisor option parsers"],
            env_creds: true,
        },
        Refusal {
            args: qemu_args(&["--allow-any-name", "--load", "A/B:host-api-key"], "q35"),
            code: 2,
            words: &["\"A/B\"", "'/'"],
            env_creds: true,
        },
        Refusal {
            args: qemu_args(
                &[
                    "--load",
                    "API_KEY:host-api-key",
                    "--load",
                    "API_KEY:host-db-password",
                ],
                "q35",
            ),
            code: 2,
            words: &[
                "\"API_KEY\" is given twice",
                "host-api-key",
                "host-db-password",
            ],
            env_creds: true,
        },
        Refusal {
            args: qemu_args(&["--load", "vmcreds.manifest:host-api-key"], "q35"),
            code: 2,
            words: &["reserved", "--no-manifest"],
            env_creds: true,
        },
        Refusal {
            args: qemu_args(&["--load", "BIG:./big"], "q35"),
            code: 2,
            words: &["\"BIG\"", "1048577 bytes", "1048576", "by 1"],
            env_creds: false,
        },
        Refusal {
            args: qemu_args(
                &[
                    "--no-manifest",
                    "--load",
                    "H1:./half1",
                    "--load",
                    "H2:./half2",
                ],
                "q35,smbios-entry-point-type=64",
            ),
            code: 2,
            words: &[
                "1228800 bytes",
                "1048576",
                "all credentials together",
                "by 180224",
            ],
            env_creds: false,
        },
        Refusal {
            args: qemu_args(&["--guest-systemd", "257", "--load", "F:./50k"], "q35"),
            code: 2,
            words: &["Type 11 structure", "over the 57343 bytes", "65535", "by "],
            env_creds: false,
        },
        Refusal {
            // Measured: QEMU 7.2 + SeaBIOS cuts the tables at 64 KiB even with a 64-bit entry point.
            args: qemu_args(
                &["--guest-systemd", "257", "--load", "F:./50k"],
                "q35,smbios-entry-point-type=64",
            ),
            code: 2,
            words: &[
                "over the 57343 bytes",
                "at 64 KiB even with smbios-entry-point-type=64",
                "by ",
            ],
            env_creds: false,
        },
        Refusal {
            // systemd before 257 reads one page of the entry: the default guest is 252.
            args: qemu_args(&["--load", "F:./3k"], "q35"),
            code: 2,
            words: &[
                "over the 4096 bytes",
                "first 4096 bytes",
                "--guest-systemd 257",
            ],
            env_creds: false,
        },
        Refusal {
            args: qemu_args(&["--guest-systemd", "251", "--set", "A=b"], "q35"),
            code: 2,
            words: &[
                "--guest-systemd 251",
                "only from version 252",
                "vmcreds-guest import",
            ],
            env_creds: false,
        },
        Refusal {
            args: qemu_args(&["--load-dir", "emptydir"], "q35"),
            code: 2,
            words: &["emptydir", "no regular file"],
            env_creds: false,
        },
        Refusal {
            args: qemu_args(&["--encoding", "text", "--load", "N:./nul"], "q35"),
            code: 2,
            words: &["\"N\"", "NUL", "--encoding binary"],
            env_creds: false,
        },
        Refusal {
            args: qemu_args(&["--load", "API_KEY:host-api-key"], "microvm"),
            code: 2,
            words: &["microvm", "use -M q35 or pc", "fw_cfg"],
            env_creds: true,
        },
        Refusal {
            args: qemu_args(&["--oem", ""], "q35"),
            code: 2,
            words: &["--oem #1", "empty"],
            env_creds: false,
        },
        Refusal {
            args: {
                let mut v = vec![];
                for i in 0..255 {
                    v.push("--set".to_string());
                    v.push(format!("C{i}=v"));
                }
                let refs: Vec<&str> = v.iter().map(|s| s.as_str()).collect();
                qemu_args(&refs, "q35,smbios-entry-point-type=64")
            },
            code: 2,
            words: &["256 OEM strings", "at most 255"],
            env_creds: false,
        },
    ];
    for r in cases {
        refused(&t, r);
    }
}

#[test]
fn qemu_exec_failure_is_exit_3_and_removes_manifest() {
    let t = TestDir::new();
    t.write("k", API_KEY);
    let o = run(t.cmd().args([
        "qemu",
        "--load",
        "K:./k",
        "--manifest-out",
        "m.json",
        "--",
        "/nonexistent/qemu",
    ]));
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/nonexistent/qemu") && stderr(&o).contains("os error 2"),
        "{}",
        stderr(&o)
    );
    assert!(!t.join("m.json").exists());
    let o = run(t.cmd().args(["qemu", "--load", "K:./k"]));
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--runtime-dir"), "{}", stderr(&o));
}

#[test]
fn oem_strings_pass_through_with_warnings() {
    let t = TestDir::new();
    let out = t.mkdir("out");
    let o = run(t.cmd().args([
        "qemu",
        "--no-manifest",
        "--oem",
        "io.systemd.credential:vmm.notify_socket=vsock-stream:2:8888",
        "--oem",
        "io.systemd.credential.binary:BROKEN=QQ",
        "--",
        "/bin/sh",
        "-c",
        "for a; do case $a in type=11,path=*) cat \"${a#type=11,path=}\"; echo;; esac; done > \"$0/strs\"",
    ]).arg(&out));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("warning: --oem #2") && err.contains("EPIPE"),
        "{err}"
    );
    let strs = std::fs::read_to_string(out.join("strs")).unwrap();
    assert_eq!(
        strs,
        "io.systemd.credential:vmm.notify_socket=vsock-stream:2:8888\nio.systemd.credential.binary:BROKEN=QQ\n"
    );
}

#[test]
fn manifest_subcommand_and_load_dir() {
    let t = TestDir::new();
    t.write("dir/API_KEY", API_KEY);
    t.write("dir/.ignored", b"x");
    t.write("dir/DB_PASSWORD", DB_PASSWORD);
    let o = run(t
        .cmd()
        .args(["manifest", "--load-dir", "dir", "--set", "ENVIRONMENT=test"]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_no_canary("stdout", &o.stdout);
    let m = Manifest::from_json(&o.stdout).unwrap();
    let names: Vec<&str> = m.credentials.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["API_KEY", "DB_PASSWORD", "ENVIRONMENT"]);
    let nonce = m.nonce.clone().expect("keyed");
    assert_eq!(
        m.get("API_KEY").unwrap().digest,
        digest(API_KEY, Some(&nonce))
    );
    let o = run(t.cmd().args(["manifest", "--no-manifest", "--set", "A=b"]));
    let m = Manifest::from_json(&o.stdout).unwrap();
    assert!(m.nonce.is_none());
    assert_eq!(m.credentials[0].digest, digest(b"b", None));
}

#[test]
fn refused_targets_name_alternatives() {
    let t = TestDir::new();
    for target in ["firecracker", "kvmtool"] {
        let o = run(t.cmd().args([target, "--load", "A:./x"]));
        assert_eq!(code(&o), 2);
        let err = stderr(&o);
        assert!(err.contains("no SMBIOS") && err.contains("QEMU"), "{err}");
    }
}

#[test]
fn canary_checker_finds_every_form() {
    let c = Canary::new(DB_PASSWORD);
    let mut hay = b"prefix ".to_vec();
    hay.extend_from_slice(DB_PASSWORD);
    assert_eq!(c.find(&hay), Some(("raw", 7)));
    assert_eq!(
        c.find(&expected_string("X", DB_PASSWORD)).map(|f| f.0),
        Some("base64")
    );
    assert_eq!(
        c.find(vmcreds_common::digest::hex(DB_PASSWORD).as_bytes()),
        Some(("hex", 0))
    );
    assert_eq!(
        c.find(
            vmcreds_common::digest::hex(DB_PASSWORD)
                .to_uppercase()
                .as_bytes()
        ),
        Some(("HEX", 0))
    );
    assert_eq!(c.find(b"nothing here"), None);
}

// ---- collect and verify ----

fn manifest_for(t: &TestDir) -> Manifest {
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
    Manifest::from_json(&std::fs::read(t.join("m.json")).unwrap()).unwrap()
}

fn report_for(m: &Manifest, values: &[(&str, &[u8])]) -> Report {
    let nonce = m.nonce.as_ref();
    Report {
        schema: REPORT_SCHEMA.into(),
        generator: "test".into(),
        nonce_id: m.expected_nonce_id(),
        system: System::default(),
        preconditions: vec![],
        smbios: Smbios::default(),
        credentials: values
            .iter()
            .map(|(name, v)| CredentialReport {
                name: name.to_string(),
                bytes: Some(v.len() as u64),
                digest: Some(digest(v, nonce)),
                encoding: None,
                source: Some(vmcreds_common::report::CredentialSource::Smbios),
                smbios: SmbiosStatus::Importable,
                systemd: Some(SystemdView {
                    present: true,
                    bytes: Some(v.len() as u64),
                    digest: Some(digest(v, nonce)),
                    mode: Some(vmcreds_common::report::FileMode(0o400)),
                    secure: Some(vmcreds_common::report::Storage::Secure),
                }),
                expected: None,
                status: Status::Ok,
                reason: None,
            })
            .collect(),
        // Through JSON, so fields common adds later with a default need no change here.
        verdict: serde_json::from_value::<Verdict>(serde_json::json!({
            "result": "verified",
            "ok": values.len(),
            "failed": 0,
            "summary": "guest says fine",
        }))
        .unwrap(),
        cut: None,
    }
}

/// Starts `collect` and waits until its socket exists.
fn start_collect(t: &TestDir, extra: &[&str]) -> (std::process::Child, PathBuf) {
    let sock = t.join("collect.sock");
    let child = t
        .cmd()
        .args([
            "collect",
            "--listen",
            &format!("unix:{}", sock.display()),
            "--manifest",
            "m.json",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || sock.exists()),
        "collect never listened"
    );
    (child, sock)
}

fn wait_child(mut child: std::process::Child, timeout: Duration) -> std::process::Output {
    assert!(
        wait_until(timeout, || child.try_wait().unwrap().is_some()),
        "collect did not finish in time"
    );
    child.wait_with_output().unwrap()
}

#[test]
fn collect_verifies_without_eof() {
    let t = TestDir::new();
    let m = manifest_for(&t);
    let report = report_for(&m, &[("API_KEY", API_KEY), ("ENVIRONMENT", b"test")]);
    let (child, sock) = start_collect(&t, &["--timeout", "20", "--report-out", "r.json"]);
    // Owner only from the moment it exists (0700 under the umask, then 0600).
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o077,
        0
    );
    let mut s = UnixStream::connect(&sock).unwrap();
    let json = report.to_json();
    let (a, b) = json.split_at(json.len() / 2);
    s.write_all(a.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(b.as_bytes()).unwrap();
    // The connection stays open, as QEMU's chardev keeps it after the guest closes its port.
    let o = wait_child(child, Duration::from_secs(15));
    drop(s);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("host verdict: verified"), "{out}");
    assert!(out.contains("API_KEY") && out.contains("✓"), "{out}");
    assert_no_canary("stdout", &o.stdout);
    assert!(!sock.exists(), "socket left behind");
    assert_eq!(
        Report::from_json(&std::fs::read(t.join("r.json")).unwrap()).unwrap(),
        report
    );
}

/// `collect` listens before `vmcreds-host qemu --manifest-out` has written the
/// manifest (QEMU connects at start-up), and reads it once the report is in.
#[test]
fn collect_starts_before_the_manifest_exists() {
    let t = TestDir::new();
    let (child, sock) = start_collect(&t, &["--timeout", "20"]);
    let m = manifest_for(&t);
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(
        report_for(&m, &[("API_KEY", API_KEY), ("ENVIRONMENT", b"test")])
            .to_json()
            .as_bytes(),
    )
    .unwrap();
    let o = wait_child(child, Duration::from_secs(15));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("host verdict: verified"));
}

/// A `.socket` unit (or systemd-socket-activate) passes the listening socket as
/// fd 3 with LISTEN_PID/LISTEN_FDS; the socket file is not collect's to remove.
#[test]
fn collect_by_socket_activation() {
    use std::os::fd::AsRawFd;
    let t = TestDir::new();
    let m = manifest_for(&t);
    let sock = t.join("activated.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    // Inheritable, so the shell can move it to fd 3 before exec'ing collect.
    rustix::io::fcntl_setfd(&listener, rustix::io::FdFlags::empty()).unwrap();
    let script = format!(
        "export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" collect --manifest m.json --timeout 20 3<&{}",
        listener.as_raw_fd()
    );
    let child = Command::new("/bin/sh")
        .args(["-c", &script, env!("CARGO_BIN_EXE_vmcreds-host")])
        .current_dir(t.path())
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(listener);
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(
        report_for(&m, &[("API_KEY", API_KEY), ("ENVIRONMENT", b"test")])
            .to_json()
            .as_bytes(),
    )
    .unwrap();
    let o = wait_child(child, Duration::from_secs(15));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("inherited socket (fd 3)"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("host verdict: verified"));
    assert!(
        sock.exists(),
        "an inherited socket's file belongs to whoever bound it"
    );
    // Variables meant for another process are ignored.
    let o = run(t
        .cmd()
        .args(["collect", "--manifest", "m.json", "--timeout", "1"])
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDS", "1"));
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("--listen unix:PATH"), "{}", stderr(&o));
}

/// `collect` started with fd 3 and LISTEN_*: `sh -c` moves `fd` there.
fn collect_activated_with(fd: &impl std::os::fd::AsFd, t: &TestDir) -> std::process::Output {
    use std::os::fd::AsRawFd;
    // Inheritable, so the shell can move it to fd 3 before exec'ing collect.
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()).unwrap();
    let script = format!(
        "export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" collect --manifest m.json --timeout 1 3<&{}",
        fd.as_fd().as_raw_fd()
    );
    run(Command::new("/bin/sh")
        .args(["-c", &script, env!("CARGO_BIN_EXE_vmcreds-host")])
        .current_dir(t.path())
        .env_remove("CREDENTIALS_DIRECTORY"))
}

/// A listening socket of a family collect does not read (here TCP) is refused
/// at start, before any peer could connect and be dropped.
#[test]
fn collect_by_socket_activation_refuses_other_families() {
    let t = TestDir::new();
    manifest_for(&t);
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let o = collect_activated_with(&tcp, &t);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not a listening AF_UNIX or AF_VSOCK stream socket"),
        "{}",
        stderr(&o)
    );
}

/// A vsock port of this kernel for a test: pid-derived, so parallel runs on one
/// machine do not collide.
fn test_vsock_port() -> u32 {
    40_000 + std::process::id() % 20_000
}

/// True when this kernel has AF_VSOCK (the socket can be made).
fn have_vsock() -> bool {
    use rustix::net::{socket, AddressFamily, SocketType};
    have_or_skip(
        "vsock",
        socket(AddressFamily::VSOCK, SocketType::STREAM, None).is_ok(),
        "this kernel has no AF_VSOCK (modprobe vsock)",
    )
}

/// `--listen vsock:PORT` listens on the kernel's vsock port and says so; with
/// no guest to connect (AF_VSOCK loopback does not connect on the development
/// machine: the nested crosvm run is where a report arrives), it times out as
/// documented.
#[test]
fn collect_listens_on_a_vsock_port() {
    if !have_vsock() {
        return;
    }
    let t = TestDir::new();
    manifest_for(&t);
    let port = test_vsock_port();
    let listen = format!("vsock:{port}");
    let collect = || {
        run(t.cmd().args([
            "collect",
            "--listen",
            &listen,
            "--manifest",
            "m.json",
            "--timeout",
            "1",
        ]))
    };
    let o = collect();
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("listening on vsock:{port} for one report")),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("no complete report within 1 s"),
        "{}",
        stderr(&o)
    );
    // The port is free again: a second collect binds it.
    let held = vmcreds_os::vsock::listen(port).expect("the port was released");
    let o = collect();
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("cannot listen on vsock:{port} (another process")),
        "{}",
        stderr(&o)
    );
    drop(held);
}

/// A `.socket` unit with `ListenStream=vsock::PORT` passes an AF_VSOCK
/// listener: collect takes it and waits. (Before, collect took any listener
/// and, on crosvm f1e797a6, accepted the guest's connection and then failed
/// with "did not correspond to a Unix socket", the guest unaware. No peer can
/// connect here, AF_VSOCK loopback does not connect on the development
/// machine: that a report arrives over vsock is shown by the nested
/// `crosvm-vsock` run, recorded in xtask/ground-truth/crosvm-*.json.)
#[test]
fn collect_by_socket_activation_takes_a_vsock_listener() {
    if !have_vsock() {
        return;
    }
    let t = TestDir::new();
    manifest_for(&t);
    let l = vmcreds_os::vsock::listen(test_vsock_port() + 1).unwrap();
    let o = collect_activated_with(&l, &t);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("inherited socket (fd 3)"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("no complete report within 1 s"),
        "{}",
        stderr(&o)
    );
}

/// Socket activation whose fd 3 was never passed (closed): refused with a
/// message, never an `OwnedFd` of a closed fd (REVIEW S5: a debug build
/// aborted on dropping it).
#[test]
fn collect_by_socket_activation_without_fd_3() {
    let t = TestDir::new();
    manifest_for(&t);
    let o = run(Command::new("/bin/sh")
        .args([
            "-c",
            "export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" collect --manifest m.json --timeout 1 3<&-",
            env!("CARGO_BIN_EXE_vmcreds-host"),
        ])
        .current_dir(t.path())
        .env_remove("CREDENTIALS_DIRECTORY"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("fd 3 is not open"), "{}", stderr(&o));
}

#[test]
fn collect_json_and_failed_verdict() {
    let t = TestDir::new();
    let m = manifest_for(&t);
    // ENVIRONMENT arrived with other bytes; API_KEY is missing.
    let report = report_for(&m, &[("ENVIRONMENT", b"prod")]);
    let (child, sock) = start_collect(&t, &["--timeout", "20", "--json"]);
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(report.to_json().as_bytes()).unwrap();
    let o = wait_child(child, Duration::from_secs(15));
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema"], "vmcreds.verdict/1");
    assert_eq!(v["verdict"]["result"], "failed");
    assert_eq!(v["report"]["schema"], REPORT_SCHEMA);
    let rows = v["verdict"]["rows"].as_array().unwrap();
    assert_eq!(rows[0]["name"], "API_KEY");
    assert_eq!(rows[0]["status"], "missing");
    assert_eq!(rows[1]["status"], "mismatch");
    assert!(!sock.exists());
}

#[test]
fn collect_refuses_bad_reports() {
    let t = TestDir::new();
    let m = manifest_for(&t);
    let mut other = report_for(&m, &[("API_KEY", API_KEY)]);
    other.nonce_id = Some("0123456789abcdef".into());
    let huge = {
        let mut v = b"\"".to_vec();
        v.resize(vmcreds_common::limits::REPORT_SIZE_MAX + 2, b'a');
        v
    };
    let cases: Vec<(&str, Vec<u8>, i32, &[&str])> = vec![
        (
            "malformed",
            b"{\"schema\": nope}".to_vec(),
            2,
            &["not valid JSON", "line 1"],
        ),
        (
            "not a report",
            b"{\"schema\": \"x\"}".to_vec(),
            2,
            &["not valid vmcreds.report/1"],
        ),
        (
            "other nonce",
            other.to_json().into_bytes(),
            2,
            &["nonce id 0123456789abcdef", "another boot"],
        ),
        ("oversized", huge, 2, &["exceeds 4194304 bytes"]),
    ];
    for (what, bytes, want, words) in cases {
        let (child, sock) = start_collect(&t, &["--timeout", "20"]);
        let mut s = UnixStream::connect(&sock).unwrap();
        let _ = s.write_all(&bytes); // collect may stop reading early
        let o = wait_child(child, Duration::from_secs(20));
        let err = stderr(&o);
        assert_eq!(code(&o), want, "{what}: {err}");
        for w in words {
            assert!(err.contains(w), "{what}: lacks {w:?}: {err}");
        }
        assert!(!sock.exists(), "{what}: socket left behind");
    }
}

#[test]
fn collect_timeout_and_existing_path() {
    let t = TestDir::new();
    manifest_for(&t);
    let (child, sock) = start_collect(&t, &["--timeout", "1"]);
    let o = wait_child(child, Duration::from_secs(10));
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no complete report within 1 s"),
        "{}",
        stderr(&o)
    );
    assert!(!sock.exists());
    // A connection that sends half a report and stays open also times out
    // (5 s: the connection must be made before the deadline, on a busy machine too).
    let (child, sock) = start_collect(&t, &["--timeout", "5"]);
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(b"{\"schema\":").unwrap();
    let o = wait_child(child, Duration::from_secs(20));
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no complete report within 5 s (10 bytes received)"),
        "{}",
        stderr(&o)
    );
    drop(s);
    // A regular file at the path is never replaced.
    t.write("collect.sock", b"keep");
    let o = run(t.cmd().args([
        "collect",
        "--listen",
        "unix:collect.sock",
        "--manifest",
        "m.json",
        "--timeout",
        "1",
    ]));
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("not a socket"), "{}", stderr(&o));
    assert_eq!(std::fs::read(t.join("collect.sock")).unwrap(), b"keep");
}

#[test]
fn verify_files() {
    let t = TestDir::new();
    let m = manifest_for(&t);
    std::fs::write(
        t.join("ok.json"),
        report_for(&m, &[("API_KEY", API_KEY), ("ENVIRONMENT", b"test")]).to_json(),
    )
    .unwrap();
    std::fs::write(
        t.join("bad.json"),
        report_for(&m, &[("API_KEY", &API_KEY[..23]), ("ENVIRONMENT", b"test")]).to_json(),
    )
    .unwrap();
    let o = run(t
        .cmd()
        .args(["verify", "--manifest", "m.json", "--report", "ok.json"]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("host verdict: verified"));
    let o = run(t.cmd().args([
        "verify",
        "--manifest",
        "m.json",
        "--report",
        "bad.json",
        "--json",
    ]));
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verdict"]["rows"][0]["status"], "mismatch");
    assert!(
        v["verdict"]["rows"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("23 bytes arrived, 24 were sent"),
        "{v}"
    );
    assert!(v["verdict"]["rows"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("23 bytes arrived, 24 were sent"));
    assert_no_canary("stdout", &o.stdout);
    let big = t.write(
        "big.json",
        &vec![b' '; vmcreds_common::limits::REPORT_SIZE_MAX + 10],
    );
    let o = run(t
        .cmd()
        .args(["verify", "--manifest", "m.json", "--report"])
        .arg(&big));
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("larger than the 4194304 bytes a report can be"),
        "{}",
        stderr(&o)
    );
    let o = run(t
        .cmd()
        .args(["verify", "--manifest", "m.json", "--report", "missing.json"]));
    assert_eq!(code(&o), 3);
    assert!(
        stderr(&o).contains("missing.json") && stderr(&o).contains("os error 2"),
        "{}",
        stderr(&o)
    );
}

// ---- the QEMU release ----

/// A stand-in `qemu-system-x86_64` that answers `--version` as `version`
/// does and otherwise records that it ran.
fn fake_qemu(t: &TestDir, dir: &str, version: &str) -> PathBuf {
    let d = t.mkdir(dir);
    let p = d.join("qemu-system-x86_64");
    std::fs::write(
        &p,
        format!("#!/bin/sh\nif [ \"$1\" = --version ]; then printf '%s\\n' '{version}'; exit 0; fi\ntouch \"$0.ran\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Issue 11 §4: a QEMU without the path= overrun fix is refused before
/// anything is written, unless --allow-unfixed-qemu; the release is read
/// from the program about to be executed.
#[test]
fn qemu_release_without_the_path_fix_is_refused() {
    let t = TestDir::new();
    let creds = setup_creds(&t);
    let go = |qemu: &Path, extra: &[&str]| {
        let mut c = t.cmd();
        c.env("CREDENTIALS_DIRECTORY", &creds)
            .args([
                "qemu",
                "--load",
                "API_KEY:host-api-key",
                "--manifest-out",
                "m.json",
            ])
            .args(extra)
            .arg("--")
            .arg(qemu)
            .args(["-M", "q35"]);
        let o = run(&mut c);
        assert_no_canary("stdout", &o.stdout);
        assert_no_canary("stderr", &o.stderr);
        o
    };
    let ran = |qemu: &Path| {
        let marker = PathBuf::from(format!("{}.ran", qemu.display()));
        let r = marker.exists();
        let _ = std::fs::remove_file(&marker);
        r
    };
    for (dir, banner, refused) in [
        (
            "q7217",
            "QEMU emulator version 7.2.17 (Debian 1:7.2+dfsg-7+deb12u9)",
            true,
        ),
        ("q800", "QEMU emulator version 8.0.0", true),
        ("q923", "QEMU emulator version 9.2.3", true),
        ("q9290", "QEMU emulator version 9.2.90", true),
        ("q7218", "QEMU emulator version 7.2.18", false),
        ("q924", "QEMU emulator version 9.2.4", false),
        ("q1020", "QEMU emulator version 10.2.0", false),
    ] {
        let qemu = fake_qemu(&t, dir, banner);
        let o = go(&qemu, &[]);
        let err = stderr(&o);
        if refused {
            assert_eq!(code(&o), 2, "{banner}: {err}");
            assert!(
                err.contains("--version says QEMU")
                    && err.contains("a7a05f5f6a40")
                    && err.contains("--allow-unfixed-qemu"),
                "{banner}: {err}"
            );
            assert!(!ran(&qemu), "{banner}: QEMU was executed");
            assert!(!t.join("m.json").exists(), "{banner}: manifest written");
            let o = go(&qemu, &["--allow-unfixed-qemu"]);
            assert_eq!(code(&o), 0, "{banner}: {}", stderr(&o));
            assert!(ran(&qemu), "{banner}: not executed with the override");
            assert!(stderr(&o).contains("without the path= buffer-overrun fix"));
        } else {
            assert_eq!(code(&o), 0, "{banner}: {err}");
            assert!(ran(&qemu), "{banner}: not executed");
            assert!(!err.contains("warning"), "{banner}: {err}");
        }
        let _ = std::fs::remove_file(t.join("m.json"));
    }
    // Before 5.2 there is no path= at all: refused even with the override.
    let qemu = fake_qemu(&t, "q510", "QEMU emulator version 5.1.0");
    let o = go(&qemu, &["--allow-unfixed-qemu"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("has no -smbios type=11,path="),
        "{}",
        stderr(&o)
    );
    assert!(!ran(&qemu));
    // --qemu-version instead of asking: a wrapper, or printed arguments.
    let qemu = fake_qemu(&t, "q1020b", "QEMU emulator version 10.2.0");
    let o = go(&qemu, &["--qemu-version", "9.1.0"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("--qemu-version says QEMU 9.1.0"),
        "{}",
        stderr(&o)
    );
    let o = run(t.cmd().args([
        "qemu",
        "--set",
        "A=b",
        "--runtime-dir",
        "rt-print",
        "--qemu-version",
        "8.2.2",
    ]));
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let o = run(t
        .cmd()
        .args(["qemu", "--set", "A=b", "--qemu-version", "9.2", "--", "x"]));
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let o = run(t
        .cmd()
        .args(["qemu", "--set", "A=b", "--qemu-version", "nine", "--", "x"]));
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("expected a QEMU version"),
        "{}",
        stderr(&o)
    );
    // A program that is not QEMU, or does not say its release: a warning.
    let wrapper = t.mkdir("wrap").join("run-vm");
    std::fs::copy(
        fake_qemu(&t, "q-w", "QEMU emulator version 7.0.0"),
        &wrapper,
    )
    .unwrap();
    let o = go(&wrapper, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not a qemu-system-* program")
            && stderr(&o).contains("--qemu-version"),
        "{}",
        stderr(&o)
    );
    let mute = fake_qemu(&t, "q-mute", "not a banner");
    let o = go(&mute, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot tell the QEMU release")
            && stderr(&o).contains("no \"QEMU emulator version\" line"),
        "{}",
        stderr(&o)
    );
}

// ---- the real QEMU ----

fn qemu_binary() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("qemu-system-x86_64"))
        .find(|p| p.exists())
}

/// Runs QEMU (stopped with -S, no display, QMP on stdio) and quits it over QMP.
fn qemu_quit(t: &TestDir, mut c: Command) -> std::process::Output {
    c.args([
        "-M",
        "q35,smbios-entry-point-type=32",
        "-accel",
        "tcg",
        "-S",
        "-display",
        "none",
        "-nodefaults",
        "-qmp",
        "stdio",
    ]);
    let mut child = c
        .current_dir(t.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"quit\"}\n");
    drop(stdin);
    assert!(
        wait_until(Duration::from_secs(60), || child
            .try_wait()
            .unwrap()
            .is_some()),
        "qemu did not quit"
    );
    child.wait_with_output().unwrap()
}

#[test]
fn real_qemu_accepts_the_arguments() {
    let qemu = qemu_binary();
    if !have_or_skip(
        "qemu",
        qemu.is_some(),
        "qemu-system-x86_64 is not on PATH (Debian package qemu-system-x86)",
    ) {
        return;
    }
    let qemu = qemu.unwrap();
    let t = TestDir::new();
    let creds = setup_creds(&t);
    let rd = t.mkdir("run,dir");
    for mode in ["memfd", "runtime-dir"] {
        let mut c = t.cmd();
        c.env("CREDENTIALS_DIRECTORY", &creds).args([
            "qemu",
            "--load",
            "API_KEY:host-api-key",
            "--load",
            "DB_PASSWORD:host-db-password",
            "--set",
            "ENVIRONMENT=test",
        ]);
        if mode == "runtime-dir" {
            c.arg("--runtime-dir").arg(&rd);
        }
        c.arg("--").arg(&qemu);
        let o = qemu_quit(&t, c);
        assert_eq!(
            code(&o),
            0,
            "{mode}: qemu refused the arguments: {}",
            stderr(&o)
        );
        assert!(
            stdout(&o).contains("\"return\""),
            "{mode}: no QMP answer: {}",
            stdout(&o)
        );
        assert_no_canary("qemu stdout", &o.stdout);
        assert_no_canary("qemu stderr", &o.stderr);
        assert!(tree(&rd).is_empty(), "{mode}: left behind {:?}", tree(&rd));
    }
    // The check can fail: QEMU refuses a path= file with a NUL, which vmcreds-host never writes.
    t.write("nul", b"io.systemd.credential:X=a\0b");
    let mut c = Command::new(&qemu);
    c.args(["-smbios", "type=11,path=nul"]);
    let o = qemu_quit(&t, c);
    assert_ne!(code(&o), 0, "qemu accepted a NUL in an OEM string file");
    assert!(stderr(&o).contains("NUL"), "{}", stderr(&o));
}

/// Issue 12 §4: every command at the highest level traces its steps on
/// stderr (journald-style when `$JOURNAL_STREAM` is set) and never a value.
#[test]
fn every_command_traces_at_vvv_without_a_secret() {
    let t = TestDir::new();
    let creds = setup_creds(&t);
    let runtime = t.mkdir("runtime");
    let qemu = fake_qemu(&t, "fakeqemu", "QEMU emulator version 10.0.0");
    let config = t.write("vm.json", b"{\"payload\":{\"kernel\":\"/k\"}}");
    let api = t.join("api.sock");
    let sources = [
        "--load",
        "API_KEY:host-api-key",
        "--load",
        "DB_PASSWORD:host-db-password",
        "--set",
        "ENVIRONMENT=test",
    ];
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let p = |p: &Path| p.display().to_string();
    // What runs, its arguments before the sources, what follows `-vvv`
    // (the QEMU command line), and a trace line only that path writes.
    let runs: Vec<(&str, Vec<String>, Vec<String>, &str)> = vec![
        (
            "qemu --runtime-dir",
            s(&["qemu", "--runtime-dir", &p(&runtime)]),
            vec![],
            "0400 file",
        ),
        (
            "qemu exec",
            s(&["qemu"]),
            s(&["--", &p(&qemu), "-M", "q35", "-nodefaults"]),
            "exec",
        ),
        ("manifest", s(&["manifest"]), vec![], "plan validated"),
        (
            "cloud-hypervisor arg",
            s(&["cloud-hypervisor"]),
            vec![],
            "plan validated",
        ),
        (
            "cloud-hypervisor json",
            s(&["cloud-hypervisor", "--format", "json"]),
            vec![],
            "plan validated",
        ),
        (
            "cloud-hypervisor env",
            s(&["cloud-hypervisor", "--format", "env"]),
            vec![],
            "plan validated",
        ),
        (
            "cloud-hypervisor fw_cfg",
            s(&[
                "cloud-hypervisor",
                "--fw-cfg",
                "--runtime-dir",
                &p(&runtime),
            ]),
            vec![],
            "fw_cfg files written",
        ),
        (
            "cloud-hypervisor --api-socket",
            s(&[
                "cloud-hypervisor",
                "--api-socket",
                &p(&api),
                "--vm-config",
                &p(&config),
            ]),
            vec![],
            "vm.boot answered",
        ),
        ("crosvm", s(&["crosvm"]), vec![], "crosvm form"),
    ];
    for (what, head, tail, only_here) in &runs {
        for journald in [false, true] {
            // API mode: a stand-in cloud-hypervisor answering vm.create and
            // vm.boot, the one place the values may go.
            let server = (*what == "cloud-hypervisor --api-socket").then(|| {
                let _ = std::fs::remove_file(&api);
                let l = std::os::unix::net::UnixListener::bind(&api).unwrap();
                common::serve(l, 2, |_: &[u8]| {
                    b"HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n".to_vec()
                })
            });
            let mut c = t.cmd();
            c.args(head)
                .args(sources)
                .arg("-vvv")
                .args(tail)
                .env("CREDENTIALS_DIRECTORY", &creds);
            if journald {
                c.env("JOURNAL_STREAM", "8:123");
            }
            let o = run(&mut c);
            if let Some(server) = server {
                let bodies = server.join().unwrap();
                assert!(!bodies[0].is_empty(), "{what}: no VmConfig sent");
            }
            assert_eq!(code(&o), 0, "{what}: {}", stderr(&o));
            let err = stderr(&o);
            let traced = if journald {
                "<6>info: "
            } else {
                "vmcreds-host: info: "
            };
            assert!(err.contains(traced), "{what}: no {traced:?} line in {err}");
            assert!(
                err.contains("loaded --load")
                    && err.contains("plan validated")
                    && err.contains(only_here),
                "{what}: {err}"
            );
            assert_no_canary(&format!("{what} stderr"), &o.stderr);
            if *what != "qemu exec" {
                continue;
            }
            assert!(
                qemu.with_extension("ran").exists(),
                "the fake QEMU never ran"
            );
        }
    }
    // collect, receiving a report over its socket.
    let m = manifest_for(&t);
    let r = report_for(&m, &[("API_KEY", API_KEY), ("ENVIRONMENT", b"test")]);
    for journald in [false, true] {
        let sock = t.join("collect.sock");
        let mut c = t.cmd();
        c.args(["collect", "--listen", &format!("unix:{}", sock.display())])
            .args(["--manifest", "m.json", "--timeout", "20", "-vvv"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if journald {
            c.env("JOURNAL_STREAM", "8:123");
        }
        let child = c.spawn().unwrap();
        let mut peer = common::connect(&sock);
        peer.write_all(r.to_json().as_bytes()).unwrap();
        let o = wait_child(child, Duration::from_secs(15));
        drop(peer);
        assert_eq!(code(&o), 0, "collect: {}", stderr(&o));
        let err = stderr(&o);
        let traced = if journald {
            "<6>info: "
        } else {
            "vmcreds-host: info: "
        };
        assert!(
            err.contains(&format!("{traced}report received")),
            "collect: {err}"
        );
        assert_no_canary("collect -vvv stderr", &o.stderr);
        assert_no_canary("collect -vvv stdout", &o.stdout);
        assert!(
            !err.contains(&m.nonce.as_ref().unwrap().to_hex()),
            "collect: the nonce in a trace"
        );
    }
    // verify, with the level from RUST_LOG.
    let m = manifest_for(&t);
    let r = report_for(&m, &[("API_KEY", API_KEY), ("ENVIRONMENT", b"test")]);
    t.write("r.json", r.to_json().as_bytes());
    let o = run(t
        .cmd()
        .args(["verify", "--manifest", "m.json", "--report", "r.json"])
        .env("RUST_LOG", "trace"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("vmcreds-host: info: verified against the manifest"),
        "{}",
        stderr(&o)
    );
    assert_no_canary("verify stderr", &o.stderr);
    // Without -v nothing is traced.
    let o = run(t
        .cmd()
        .args(["verify", "--manifest", "m.json", "--report", "r.json"]));
    assert!(!stderr(&o).contains("info:"), "{}", stderr(&o));
}
