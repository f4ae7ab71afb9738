//! Golden reports: `check --json` and the table for people, on fixture trees
//! that between them reach every status and most reasons. The field names
//! and values of `vmcreds.report/1` are a public interface; these files pin
//! them byte for byte, so a refactoring that changes any of it fails here.
//! `VMCREDS_BLESS=1 cargo test -p vmcreds-guest --test golden` rewrites the
//! files (then read the diff: every change there is a change of interface).

mod common;

use std::path::PathBuf;

use common::Fixture;
use vmcreds_common::digest::Nonce;
use vmcreds_common::manifest::Manifest;
use vmcreds_common::name::{CredentialName, NameRule};
use vmcreds_common::oem::Encoding;
use vmcreds_common::type11::build;

fn b64(v: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(v)
}

fn text(name: &str, value: &[u8]) -> Vec<u8> {
    let mut s = format!("io.systemd.credential:{name}=").into_bytes();
    s.extend_from_slice(value);
    s
}

fn binary(name: &str, value: &[u8]) -> Vec<u8> {
    format!("io.systemd.credential.binary:{name}={}", b64(value)).into_bytes()
}

fn n(s: &str) -> CredentialName {
    CredentialName::parse(s, NameRule::Systemd).unwrap()
}

/// A manifest credential with a fixed nonce listing `entries`.
fn manifest(entries: &[(&str, &[u8])]) -> (Vec<u8>, Vec<u8>) {
    let mut m = Manifest::new(Some(Nonce::from_bytes([0x42; 32])), "golden");
    for (name, value) in entries {
        m.push(n(name), value, Encoding::Binary);
    }
    let json = m.to_json_compact().into_bytes();
    (binary("vmcreds.manifest", &json), json)
}

/// `/dev/kmsg` records: the kernel's first, then PID 1's `lines`.
fn kmsg(lines: &[&str]) -> Vec<u8> {
    let mut b = b"6,0,0,-;Linux version 6.1.0-40-cloud-amd64\n".to_vec();
    for (i, l) in lines.iter().enumerate() {
        b.extend_from_slice(
            format!("6,{},{},-;systemd[1]: {l}\n", i + 1, 1000 * (i + 1)).as_bytes(),
        );
    }
    b
}

struct Case {
    name: &'static str,
    fixture: Fixture,
    args: Vec<String>,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut add = |name, fixture, args: &[&str]| {
        out.push(Case {
            name,
            fixture,
            args: args.iter().map(|s| s.to_string()).collect(),
        })
    };

    // Verified against the injected manifest, with an unexpected extra and
    // the notify socket (never unexpected).
    let f = Fixture::new();
    let (ms, mjson) = manifest(&[("API_KEY", b"key-1"), ("BLOB", b"\0\xffbin")]);
    let notify = text("vmm.notify_socket", b"vsock-stream:2:8888");
    f.smbios(&[
        &ms,
        &binary("API_KEY", b"key-1"),
        &binary("BLOB", b"\0\xffbin"),
        &text("EXTRA", b"x"),
        &notify,
    ]);
    f.imported("vmcreds.manifest", &mjson);
    f.imported("API_KEY", b"key-1");
    f.imported("BLOB", b"\0\xffbin");
    f.imported("EXTRA", b"x");
    f.imported("vmm.notify_socket", b"vsock-stream:2:8888");
    add("manifest-verified", f, &[]);

    // The same, strict: the unexpected credential fails it.
    let f = Fixture::new();
    let (ms, mjson) = manifest(&[("API_KEY", b"key-1")]);
    f.smbios(&[&ms, &binary("API_KEY", b"key-1"), &text("EXTRA", b"x")]);
    f.imported("vmcreds.manifest", &mjson);
    f.imported("API_KEY", b"key-1");
    f.imported("EXTRA", b"x");
    add("strict-unexpected", f, &["--strict"]);

    // Every class of string systemd refuses or ignores, and duplicates.
    let f = Fixture::new();
    f.smbios(&[
        &text("GOOD", b"v"),
        b"io.systemd.credential:bad/name=x",
        b"io.systemd.credential:no-equals",
        b"io.systemd.credential.binary:BAD_B64=QQ",
        b"io.systemd.credential.binary:URL=-_-_",
        b"not a credential at all",
        &text("GOOD", b"second"),
        &binary("EMPTY", b""),
    ]);
    f.imported("GOOD", b"v");
    f.imported("URL", b"\xfb\xff\xbf");
    f.imported("EMPTY", b"");
    add("string-classes", f, &["--expect", "GOOD:1"]);

    // Missing, explained by a precondition; a missing --expect.
    let f = Fixture::new();
    f.smbios(&[&text("API_KEY", b"k")]);
    f.write("proc/cmdline", b"ro systemd.import_credentials=no\n");
    f.remove("run/credentials/@system");
    add(
        "import-disabled",
        f,
        &["--expect", "API_KEY", "--expect", "NOT_SENT:16"],
    );

    // fw_cfg shadows SMBIOS; a kernel command line credential.
    let f = Fixture::new();
    f.smbios(&[&text("SHADOWED", b"from smbios"), &text("PLAIN", b"p")]);
    f.fw_cfg("SHADOWED", b"from fw_cfg");
    f.write(
        "proc/cmdline",
        b"ro systemd.set_credential=CMDLINE:secretvalue\n",
    );
    f.imported("SHADOWED", b"from fw_cfg");
    f.imported("PLAIN", b"p");
    f.imported("CMDLINE", b"secretvalue");
    add("fw-cfg-and-cmdline", f, &["--expect", "SHADOWED:11"]);

    // A bad header stops systemd's scan at 11-1; 11-2 is never read.
    let f = Fixture::new();
    let e0 = build(0x100, &[&text("FIRST", b"1")]);
    let mut e1 = build(0x101, &[&text("SECOND", b"2")]);
    e1[1] = 6;
    e1.insert(5, 0);
    let e2 = build(0x102, &[&text("THIRD", b"3")]);
    f.entry(0, &e0);
    f.entry(1, &e1);
    f.entry(2, &e2);
    f.table(&[&e0, &e1, &e2]);
    f.imported("FIRST", b"1");
    add("bad-header", f, &["--expect", "THIRD"]);

    // systemd 252 reads one page: the string across byte 4096 is cut.
    let f = Fixture::new();
    let big = vec![b'b'; 5000];
    let strings = [text("SMALL", b"s"), text("BIG", &big)];
    let refs: Vec<&[u8]> = strings.iter().map(|s| s.as_slice()).collect();
    let raw = f.smbios(&refs);
    let cut = 4096 - 5 - strings[0].len() - 1 - b"io.systemd.credential:BIG=".len();
    f.imported("SMALL", b"s");
    f.imported("BIG", &big[..cut]);
    assert!(raw.len() > 4096);
    add(
        "one-page-252",
        f,
        &["--systemd-version", "252", "--expect", "BIG:5000"],
    );

    // Storage: weak tmpfs, an insecure mode, a symlink, a mismatch, an empty file.
    let f = Fixture::new();
    f.write(
        "proc/self/mountinfo",
        b"40 27 0:40 / /run/credentials/@system ro,nosuid,nodev - tmpfs none rw,mode=700\n",
    );
    f.smbios(&[
        &text("A", b"aaaa"),
        &text("B", b"bbbb"),
        &text("C", b"cccc"),
        &text("D", b"dddd"),
    ]);
    f.imported("A", b"aaaa");
    f.imported_mode("B", b"bbbb", 0o644);
    std::os::unix::fs::symlink("/etc/hostname", f.path("run/credentials/@system/C")).unwrap();
    f.imported("D", b"");
    add("storage", f, &["--strict"]);

    // The whole-table reader disagrees with the per-entry files.
    let f = Fixture::new();
    let raw = build(0x0b00, &[&text("A", b"1")]);
    f.entry(0, &raw);
    let other = build(0x0b00, &[&text("A", b"2")]);
    f.table(&[&other]);
    f.imported("A", b"1");
    add("cross-check", f, &[]);

    // No dmi-sysfs at all (e.g. the module missing).
    let f = Fixture::new();
    f.remove("sys/firmware/dmi/entries");
    add("no-dmi-sysfs", f, &["--expect", "API_KEY:4"]);

    // A systemd initrd imported both, then they were lost at switch-root
    // (NixOS/nixpkgs#421388): @system is an empty directory, not a mount.
    let f = Fixture::new();
    f.smbios(&[&text("API_KEY", b"k"), &text("DB_PASSWORD", b"p")]);
    f.write(
        "proc/self/mountinfo",
        b"27 1 253:1 / / rw,relatime - ext4 /dev/vda1 rw\n",
    );
    f.write(
        "proc/1/environ",
        b"HOME=/\0CREDENTIALS_DIRECTORY=/run/credentials/@system\0",
    );
    f.write(
        "dev/kmsg",
        &kmsg(&[
            "systemd 257.13-1~deb13u1 running in system mode (+PAM +AUDIT)",
            "Running in initrd.",
            "Received regular credentials: API_KEY, DB_PASSWORD",
            "Acquired 2 regular credentials, 0 untrusted credentials.",
            "systemd 257.13-1~deb13u1 running in system mode (+PAM +AUDIT)",
        ]),
    );
    add("lost-at-switch-root", f, &["--expect", "API_KEY"]);

    // The initrd had no dmi-sysfs but imported a fw_cfg credential, so
    // nobody read SMBIOS.
    let f = Fixture::new();
    f.smbios(&[&text("API_KEY", b"k")]);
    f.fw_cfg("FW", b"f");
    f.imported("FW", b"f");
    f.write(
        "dev/kmsg",
        &kmsg(&[
            "systemd 257.13-1~deb13u1 running in system mode (+PAM +AUDIT)",
            "Running in initrd.",
            "Received regular credentials: FW",
            "Acquired 1 regular credentials, 0 untrusted credentials.",
            "systemd 257.13-1~deb13u1 running in system mode (+PAM +AUDIT)",
            "Received regular credentials: FW",
            "Acquired 1 regular credentials, 0 untrusted credentials.",
        ]),
    );
    add("initrd-read-no-smbios", f, &[]);

    // A manifest credential that does not parse; and a --manifest file.
    let f = Fixture::new();
    f.smbios(&[&text("vmcreds.manifest", b"{not json"), &text("A", b"1")]);
    f.imported("vmcreds.manifest", b"{not json");
    f.imported("A", b"1");
    add("manifest-invalid", f, &[]);

    out
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn test_reports_match_the_golden_files() {
    let bless = std::env::var_os("VMCREDS_BLESS").is_some();
    let mut failures = Vec::new();
    for case in cases() {
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let mut json_args = vec!["--json"];
        json_args.extend(&args);
        for (suffix, a) in [("json", &json_args), ("txt", &args.to_vec())] {
            let out = case.fixture.run("check", a);
            assert_ne!(out.status.code(), Some(101), "{}: panicked", case.name);
            let mut got = format!("exit {}\n", out.status.code().unwrap_or(-1)).into_bytes();
            got.extend_from_slice(&out.stdout);
            let path = golden_dir().join(format!("{}.{suffix}", case.name));
            if bless {
                std::fs::create_dir_all(golden_dir()).unwrap();
                std::fs::write(&path, &got).unwrap();
                continue;
            }
            let want = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (bless with VMCREDS_BLESS=1)", path.display()));
            if want != got {
                failures.push(format!(
                    "{}: differs from the golden file\n--- want\n{}\n--- got\n{}",
                    path.display(),
                    String::from_utf8_lossy(&want),
                    String::from_utf8_lossy(&got)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
