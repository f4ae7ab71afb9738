//! `vmcreds-host cloud-hypervisor --fw-cfg --runtime-dir DIR`: the credential
//! files, the one `--fw-cfg-config` line (parsed back with a port of
//! cloud-hypervisor's parser, and spliced unquoted by a real bash as
//! microvm.nix's runner does), the refusals, and the checks of the
//! cloud-hypervisor binary named with `--cloud-hypervisor`.
//!
//! Canary rule: fw_cfg mode puts only paths on stdout; no form of a secret
//! may appear in any output.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::ch_oracle as oracle;
use common::reference::{assert_no_canary, setup_creds, API_KEY, DB_PASSWORD, JWT_SECRET, NOTIFY};
use common::{code, run, stderr, stdout, TestDir};
use vmcreds_common::manifest::Manifest;

const SOURCES: &[&str] = &[
    "--load",
    "API_KEY:host-api-key",
    "--load",
    "DB_PASSWORD:host-db-password",
    "--load",
    "JWT_SECRET:host-jwt-secret",
    "--set",
    "ENVIRONMENT=test",
    "--oem",
    NOTIFY,
];

fn fw_cmd(t: &TestDir, creds: &Path, runtime: &Path) -> std::process::Command {
    let mut c = t.cmd();
    c.arg("cloud-hypervisor")
        .env("CREDENTIALS_DIRECTORY", creds)
        .args(SOURCES)
        .arg("--fw-cfg")
        .arg("--runtime-dir")
        .arg(runtime);
    c
}

/// The two words of the line, the items they name, and the private directory.
fn parse_line(out: &str) -> (Vec<(String, PathBuf)>, PathBuf) {
    assert!(
        out.ends_with('\n') && out.lines().count() == 1,
        "one line: {out:?}"
    );
    let (flag, value) = out.trim_end().split_once(' ').expect("two words");
    assert_eq!(flag, "--fw-cfg-config");
    assert!(!value.contains(' '), "the value is one word");
    let items = oracle::fw_cfg_items(value).expect("cloud-hypervisor's parser takes it");
    let files: Vec<(String, PathBuf)> = items
        .into_iter()
        .map(|(name, file, string)| {
            assert!(string.is_none(), "file items only");
            (name, PathBuf::from(file.expect("a file= item")))
        })
        .collect();
    let dir = files[0].1.parent().unwrap().to_owned();
    assert!(
        files.iter().all(|(_, f)| f.parent() == Some(&dir)),
        "one directory"
    );
    (files, dir)
}

#[test]
fn fw_cfg_mode_writes_private_files_and_one_line() {
    let t = TestDir::new();
    let creds = setup_creds(&t);
    let runtime = t.mkdir("run");
    let m = t.join("manifest.json");
    let o = run(fw_cmd(&t, &creds, &runtime).arg("--manifest-out").arg(&m));
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    let (files, dir) = parse_line(&stdout(&o));
    assert_eq!(dir.parent(), Some(runtime.as_path()));
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    let want: Vec<(&str, Vec<u8>)> = vec![
        ("API_KEY", API_KEY.to_vec()),
        ("DB_PASSWORD", DB_PASSWORD.to_vec()),
        ("JWT_SECRET", JWT_SECRET.to_vec()),
        ("ENVIRONMENT", b"test".to_vec()),
        ("vmm.notify_socket", b"vsock-stream:2:8888".to_vec()),
    ];
    assert_eq!(
        files.len(),
        want.len() + 1,
        "the manifest, then each credential"
    );
    let (mname, mfile) = &files[0];
    assert_eq!(mname, "opt/io.systemd.credentials/vmcreds.manifest");
    let injected = Manifest::from_json(&std::fs::read(mfile).unwrap()).unwrap();
    assert_eq!(
        injected,
        Manifest::from_json(&std::fs::read(&m).unwrap()).unwrap()
    );
    assert_eq!(injected.credentials.len(), want.len());
    for ((name, file), (want_name, want_value)) in files[1..].iter().zip(&want) {
        assert_eq!(name, &format!("opt/io.systemd.credentials/{want_name}"));
        assert!(
            std::fs::read(file).unwrap() == *want_value,
            "{want_name}: bytes differ"
        );
        let meta = std::fs::metadata(file).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o400, "{want_name}");
        assert_eq!(
            injected.get(want_name).unwrap().bytes,
            want_value.len() as u64
        );
        assert!(name.len() <= 55, "fw_cfg key limit");
    }
    assert!(
        err.contains("fw_cfg cargo feature") && err.contains("qemu_fw_cfg"),
        "{err}"
    );
    assert_no_canary("stdout", &o.stdout);
    assert_no_canary("stderr", &o.stderr);
}

#[test]
fn fw_cfg_line_survives_an_unquoted_bash_splice() {
    // microvm.nix: runtime_args=$(extraArgsScript); exec … ${runtime_args:-}
    let t = TestDir::new();
    let creds = setup_creds(&t);
    let runtime = t.mkdir("run");
    let line = t.join("line");
    let o = run(&mut fw_cmd(&t, &creds, &runtime));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    std::fs::write(&line, &o.stdout).unwrap();
    // A working directory full of names a glob or word splitting could hit.
    let cwd = t.mkdir("cwd");
    for name in [
        "items=n", "items=[", "i", "-", "*", "[", "]", "fw-000]", "a b",
    ] {
        std::fs::write(cwd.join(name), b"x").unwrap();
    }
    std::fs::create_dir_all(cwd.join("items=[name=opt/io.systemd.credentials")).unwrap();
    let sh = std::process::Command::new("bash")
        .arg("-c")
        .arg("set -eou pipefail; runtime_args=$(cat \"$1\"); printf '%s\\n' ${runtime_args:-}")
        .arg("bash")
        .arg(&line)
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert!(
        sh.status.success(),
        "{}",
        String::from_utf8_lossy(&sh.stderr)
    );
    let words: Vec<String> = String::from_utf8(sh.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let printed: Vec<String> = stdout(&o).split_whitespace().map(str::to_owned).collect();
    assert_eq!(words, printed, "bash passes the two words on unchanged");
}

#[test]
fn fw_cfg_refusals_write_nothing() {
    let t = TestDir::new();
    let creds = setup_creds(&t);
    let runtime = t.mkdir("run");
    let refused = |extra: &[&str], runtime: &Path| {
        let err = common::reference::refused(&t, fw_cmd(&t, &creds, runtime), extra);
        assert_eq!(
            std::fs::read_dir(t.join("run")).unwrap().count(),
            0,
            "nothing written: {err}"
        );
        err
    };
    let err = refused(&["--set", "A_NAME_OF_TWENTY_NINE_BYTES_X=v"], &runtime);
    assert!(
        err.contains("29 bytes") && err.contains("at most 28"),
        "{err}"
    );
    let err = refused(&["--allow-any-name", "--set", "a,b=v"], &runtime);
    assert!(
        err.contains("','") && err.contains("fw-cfg-config"),
        "{err}"
    );
    let err = refused(&["--oem", "not a credential"], &runtime);
    assert!(
        err.contains("--oem #2") && err.contains("--platform"),
        "{err}"
    );
    let err = refused(&[], Path::new("relative"));
    assert!(err.contains("absolute"), "{err}");
    let colon = t.mkdir("a:b");
    let err = refused(&[], &colon);
    assert!(err.contains("':'"), "{err}");
    let err = refused(&["--format", "env"], &runtime);
    assert!(err.contains("--fw-cfg-config line"), "{err}");
    // clap refuses the combinations that make no sense.
    for extra in [
        &["--platform-key", "serial_number=x"][..],
        &["--api-socket", "/s", "--vm-config", "/c"],
    ] {
        refused(extra, &runtime);
    }
    let o = run(t
        .cmd()
        .args(["cloud-hypervisor", "--fw-cfg", "--set", "A=b"]));
    assert_eq!(code(&o), 2, "--fw-cfg needs --runtime-dir");
}

/// A stand-in cloud-hypervisor binary: answers --version and --help.
fn fake_ch(t: &TestDir, name: &str, version: &str, fw_cfg: bool) -> PathBuf {
    let help = if fw_cfg {
        "--platform\n--fw-cfg-config <fw_cfg_config>"
    } else {
        "--platform"
    };
    let p = t.write(
        name,
        format!(
            "#!/bin/sh\ncase \"$1\" in --version) echo 'cloud-hypervisor {version}';; --help) printf '%s\\n' '{help}';; esac\n"
        )
        .as_bytes(),
    );
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn the_named_binary_is_checked_before_anything_is_written() {
    let t = TestDir::new();
    let creds = setup_creds(&t);
    let runtime = t.mkdir("run");
    let with = |bin: &Path| -> std::process::Command {
        let mut c = fw_cmd(&t, &creds, &runtime);
        c.arg("--cloud-hypervisor").arg(bin);
        c
    };
    let good = fake_ch(&t, "ch-good", "v53.0", true);
    let o = run(&mut with(&good));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    std::fs::remove_dir_all(&runtime).unwrap();
    std::fs::create_dir(&runtime).unwrap();
    let plain = fake_ch(&t, "ch-plain", "v53.0", false);
    let err = common::reference::refused(&t, with(&plain), &[]);
    assert!(
        err.contains("ch-plain")
            && err.contains("v53.0")
            && err.contains("without its fw_cfg cargo feature"),
        "{err}"
    );
    let old = fake_ch(&t, "ch-old", "v47.0", true);
    let err = common::reference::refused(&t, with(&old), &[]);
    assert!(
        err.contains("v47.0") && err.contains("v48.0 or newer"),
        "{err}"
    );
    let liar = fake_ch(&t, "ch-liar", "something else", true);
    let err = common::reference::refused(&t, with(&liar), &[]);
    assert!(err.contains("printed no cloud-hypervisor version"), "{err}");
    assert_eq!(
        std::fs::read_dir(&runtime).unwrap().count(),
        0,
        "nothing written"
    );
    // Not executable: exit 3, naming the binary.
    let o = run(&mut with(&t.join("missing-ch")));
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("missing-ch"));

    // argv mode: --platform keys the release lacks are refused.
    let v52 = fake_ch(&t, "ch-52", "v52.0", false);
    let mut c = t.cmd();
    c.args([
        "cloud-hypervisor",
        "--set",
        "A=b",
        "--platform-key",
        "system_family=f",
        "--cloud-hypervisor",
    ])
    .arg(&v52);
    let err = common::reference::refused(&t, c, &[]);
    assert!(
        err.contains("system_family") && err.contains("v52.0") && err.contains("v53.0"),
        "{err}"
    );
    let mut c = t.cmd();
    c.args([
        "cloud-hypervisor",
        "--set",
        "A=b",
        "--platform-key",
        "system_family=f",
        "--cloud-hypervisor-version",
        "v53.0",
    ]);
    let o = run(&mut c);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mut c = t.cmd();
    c.args([
        "cloud-hypervisor",
        "--set",
        "A=b",
        "--cloud-hypervisor-version",
        "v5x",
    ]);
    assert_eq!(code(&run(&mut c)), 2);
}
