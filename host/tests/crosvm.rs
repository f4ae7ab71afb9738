//! The crosvm target, tested without crosvm (not packaged for this machine):
//! the printed `--oem-strings` words against crosvm's documented rules
//! (reference `hypervisors.md` §4: one argument is one string, not split;
//! more than 255 strings → `TooManyOemStrings`; NUL → `StringHasNullCharacter`;
//! no check for empty strings).
//!
//! Canary rule: the credentials' base64 *is* the delivery and may appear on
//! stdout inside the `--oem-strings` words, and nowhere else.

mod common;

use std::path::Path;

use common::reference::{
    assert_no_canary, assert_no_canary_but_delivery, setup_creds, API_KEY, DB_PASSWORD, JWT_SECRET,
    NOTIFY,
};
use common::{code, run, stderr, stdout, TestDir};
use vmcreds_common::manifest::Manifest;
use vmcreds_common::oem::{self, Encoding, Parsed};
use vmcreds_common::systemd::Behaviour;

fn crosvm(t: &TestDir, creds: &Path) -> std::process::Command {
    let mut c = t.cmd();
    c.arg("crosvm").env("CREDENTIALS_DIRECTORY", creds).args([
        "--load",
        "API_KEY:host-api-key",
        "--load",
        "DB_PASSWORD:host-db-password",
        "--load",
        "JWT_SECRET:host-jwt-secret",
        "--set",
        "ENVIRONMENT=test",
        "--set",
        "CLUSTER=prod-eu-1",
        "--oem",
        NOTIFY,
    ]);
    c
}

#[test]
fn reference_scenario_oem_strings_words() {
    let t = TestDir::new();
    let creds = setup_creds(&t);
    let m = t.join("manifest.json");
    let o = run(crosvm(&t, &creds)
        .args(["--oem", "free text, with [brackets] and \"quotes\""])
        .arg("--manifest-out")
        .arg(&m));
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    let out = stdout(&o);
    let words: Vec<&str> = out.lines().collect();
    assert_eq!(words.len(), 16, "8 pairs");
    let strings: Vec<&str> = words
        .chunks(2)
        .map(|p| {
            assert_eq!(p[0], "--oem-strings");
            p[1]
        })
        .collect();
    // The manifest first, equal to --manifest-out.
    let manifest = match oem::parse(strings[0].as_bytes(), &Behaviour::of(252)) {
        Parsed::Credential { name, value, .. } => {
            assert_eq!(name.as_str(), "vmcreds.manifest");
            Manifest::from_json(value.expose()).unwrap()
        }
        _ => panic!("the first string is not the manifest"),
    };
    assert_eq!(
        manifest,
        Manifest::from_json(&std::fs::read(&m).unwrap()).unwrap()
    );
    let want: [(&str, &[u8]); 5] = [
        ("API_KEY", API_KEY),
        ("DB_PASSWORD", DB_PASSWORD),
        ("JWT_SECRET", JWT_SECRET),
        ("ENVIRONMENT", b"test"),
        ("CLUSTER", b"prod-eu-1"),
    ];
    for (s, (n, v)) in strings[1..6].iter().zip(want) {
        match oem::parse(s.as_bytes(), &Behaviour::of(252)) {
            Parsed::Credential {
                name,
                encoding,
                value,
            } => {
                assert_eq!(name.as_str(), n);
                assert_eq!(encoding, Encoding::Binary);
                assert!(value.expose() == v, "value of {n} differs");
            }
            _ => panic!("{n} is not an importable credential"),
        }
    }
    // One argument is one string: commas, brackets and quotes pass as they are.
    assert_eq!(strings[6], NOTIFY);
    assert_eq!(strings[7], "free text, with [brackets] and \"quotes\"");
    // One warning: argv exposure.
    assert_eq!(
        err.lines().filter(|l| l.contains("warning:")).count(),
        1,
        "{err}"
    );
    assert!(err.contains("/proc/PID/cmdline"), "{err}");
    assert_no_canary("stderr", &o.stderr);
    assert_no_canary_but_delivery("stdout", &o.stdout);
}

fn refused(t: &TestDir, creds: &Path, extra: &[&str]) -> String {
    common::reference::refused(t, crosvm(t, creds), extra)
}

#[test]
fn bad_input_is_refused() {
    let t = TestDir::new();
    let creds = setup_creds(&t);
    let err = refused(&t, &creds, &["--oem", ""]);
    assert!(err.contains("--oem #2 is empty"), "{err}");
    let err = refused(&t, &creds, &["--oem", "line\nbreak"]);
    assert!(
        err.contains("control character") && err.contains("offset 4"),
        "{err}"
    );
    let err = refused(&t, &creds, &["--oem=-x"]);
    assert!(err.contains("starts with '-'"), "{err}");
    // A NUL in a text value: refused by the plan (crosvm's StringHasNullCharacter).
    let err = refused(&t, &creds, &["--encoding", "text"]);
    assert!(err.contains("NUL") && err.contains("DB_PASSWORD"), "{err}");
    // A control character in a secret text value is not located.
    let o = run(t.cmd().env("CREDENTIALS_DIRECTORY", &creds).args([
        "crosvm",
        "--encoding",
        "text",
        "--load",
        "API_KEY:host-api-key",
    ]));
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        err.contains("\"API_KEY\"") && !err.contains("offset"),
        "{err}"
    );
    assert_no_canary("stderr", &o.stderr);
}

#[test]
fn too_many_strings_are_refused() {
    let t = TestDir::new();
    let mut c = t.cmd();
    c.args(["crosvm", "--guest-systemd", "257"]);
    for i in 0..255 {
        c.arg("--set").arg(format!("C{i}=v"));
    }
    // 255 + the manifest = 256.
    let o = run(&mut c);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        err.contains("256 OEM strings") && err.contains("255"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    let mut c = t.cmd();
    c.args(["crosvm", "--no-manifest", "--guest-systemd", "257"]);
    for i in 0..255 {
        c.arg("--set").arg(format!("C{i}=v"));
    }
    let o = run(&mut c);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 510);
}
