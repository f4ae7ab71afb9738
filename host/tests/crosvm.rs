//! The crosvm target without crosvm (none here): the printed arguments
//! against crosvm's rules. `--smbios oem-strings=[…]` is read back with a
//! port of crosvm's `serde_keyvalue` (tests/common/crosvm_oracle.rs), with a
//! property test that everything the host accepts reads back as exactly the
//! intended strings; the deprecated `--oem-strings` takes one string per
//! argument (reference `hypervisors.md` §4). Both: more than 255 strings →
//! `TooManyOemStrings`; NUL → `StringHasNullCharacter`; no check for empty
//! strings.
//!
//! Canary rule: the credentials' base64 *is* the delivery and may appear on
//! stdout inside the arguments, and nowhere else.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::crosvm_oracle as oracle;
use common::reference::{
    assert_no_canary, assert_no_canary_but_delivery, setup_creds, API_KEY, DB_PASSWORD, JWT_SECRET,
    NOTIFY,
};
use common::{code, run, stderr, stdout, TestDir};
use proptest::prelude::*;
use vmcreds_common::manifest::Manifest;
use vmcreds_common::oem::{self, Encoding, Parsed};
use vmcreds_common::systemd::Behaviour;

const FREE_TEXT: &str = "free text, with [brackets], 'single' and \"double\" quotes \\o/";

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
        "--oem",
        FREE_TEXT,
    ]);
    c
}

/// The strings an output carries, in whichever form.
fn strings_of(out: &str) -> Vec<String> {
    let words: Vec<&str> = out.lines().collect();
    if words.first() == Some(&"--smbios") {
        assert_eq!(words.len(), 2, "one --smbios argument");
        oracle::oem_strings(words[1]).expect("crosvm's parser takes the value")
    } else {
        words
            .chunks(2)
            .map(|p| {
                assert_eq!(p[0], "--oem-strings");
                p[1].to_owned()
            })
            .collect()
    }
}

fn check_reference(strings: &[String], manifest_out: &Path) {
    assert_eq!(strings.len(), 8);
    let manifest = match oem::parse(strings[0].as_bytes(), &Behaviour::of(252)) {
        Parsed::Credential { name, value, .. } => {
            assert_eq!(name.as_str(), "vmcreds.manifest");
            Manifest::from_json(value.expose()).unwrap()
        }
        _ => panic!("the first string is not the manifest"),
    };
    assert_eq!(
        manifest,
        Manifest::from_json(&std::fs::read(manifest_out).unwrap()).unwrap()
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
    assert_eq!(strings[6], NOTIFY);
    assert_eq!(
        strings[7], FREE_TEXT,
        "commas, brackets and quotes arrive as they are"
    );
}

#[test]
fn reference_scenario_in_both_forms() {
    for (form, want_first) in [
        (None, "--smbios"),
        (Some("smbios"), "--smbios"),
        (Some("oem-strings"), "--oem-strings"),
    ] {
        let t = TestDir::new();
        let creds = setup_creds(&t);
        let m = t.join("manifest.json");
        let mut c = crosvm(&t, &creds);
        if let Some(f) = form {
            c.args(["--form", f]);
        }
        let o = run(c.arg("--manifest-out").arg(&m));
        let err = stderr(&o);
        assert_eq!(code(&o), 0, "{form:?}: {err}");
        let out = stdout(&o);
        assert_eq!(out.lines().next(), Some(want_first), "{form:?}");
        check_reference(&strings_of(&out), &m);
        assert_eq!(
            err.lines().filter(|l| l.contains("warning:")).count(),
            1,
            "one warning: argv exposure: {err}"
        );
        assert!(err.contains("/proc/PID/cmdline"), "{err}");
        assert_no_canary("stderr", &o.stderr);
        assert_no_canary_but_delivery("stdout", &o.stdout);
    }
}

#[test]
fn oracle_reads_values_as_crosvm_does() {
    // From serde_keyvalue's own tests and grammar.
    assert_eq!(
        oracle::oem_strings("oem-strings=[a,b]").unwrap(),
        ["a", "b"]
    );
    assert_eq!(
        oracle::oem_strings("oem-strings=[John Doe]").unwrap(),
        ["John Doe"]
    );
    assert_eq!(
        oracle::oem_strings(r#"oem-strings=["a,b",'c"d']"#).unwrap(),
        ["a,b", "c\"d"]
    );
    assert_eq!(
        oracle::oem_strings(r#"oem-strings=["x\"y\\z"]"#).unwrap(),
        ["x\"y\\z"]
    );
    assert_eq!(
        oracle::oem_strings("oem-strings=[]").unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(oracle::oem_strings(r#"oem-strings=[""]"#).unwrap(), [""]);
    assert!(
        oracle::oem_strings("oem-strings=[a\"b]").is_err(),
        "a quote in an unquoted string"
    );
    // confirm_separator eats the comma, then `]` ends the sequence.
    assert_eq!(oracle::oem_strings("oem-strings=[a,]").unwrap(), ["a"]);
    assert!(
        oracle::oem_strings("oem-strings=[a,,b]").is_err(),
        "empty unquoted element"
    );
    assert!(oracle::oem_strings("oem-strings=[a").is_err());
    assert!(oracle::oem_strings("oem-strings=[a]x").is_err());
    assert!(
        oracle::oem_strings(r#"oem-strings=["a\n"]"#).is_err(),
        "only \\\" and \\\\ escape"
    );
}

/// Non-secret strings over an alphabet of every troublemaker.
fn oem_strategy() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-z0-9 =:,\\[\\]\"'\\\\-]{1,14}").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    /// Whatever the host accepts in the bracketed form reads back through
    /// crosvm's parser as exactly the intended strings.
    #[test]
    fn accepted_strings_round_trip_through_serde_keyvalue(
        oems in proptest::collection::vec(oem_strategy(), 1..5),
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 0..3),
    ) {
        let t = TestDir::new();
        let mut c = t.cmd();
        c.args(["crosvm", "--no-manifest"]);
        for (i, v) in values.iter().enumerate() {
            let p = t.write(&format!("v{i}"), v);
            c.arg("--load").arg(format!("V{i}:{}", p.display()));
        }
        for o in &oems {
            c.arg(format!("--oem={o}"));
        }
        let o = run(&mut c);
        if code(&o) != 0 {
            // The host refuses only what crosvm or the output cannot carry.
            let err = stderr(&o);
            prop_assert!(
                err.contains("is empty") || err.contains("control character") || err.contains("given twice"),
                "{}",
                err
            );
            return Ok(());
        }
        let out = stdout(&o);
        let got = strings_of(&out);
        prop_assert_eq!(got.len(), values.len() + oems.len());
        for (s, v) in got.iter().zip(&values) {
            match oem::parse(s.as_bytes(), &Behaviour::newest()) {
                Parsed::Credential { value, .. } => prop_assert!(value.expose() == &v[..]),
                other => prop_assert!(false, "{:?}", other),
            }
        }
        prop_assert_eq!(&got[values.len()..], &oems[..]);
    }
}

fn refused(t: &TestDir, creds: &Path, extra: &[&str]) -> String {
    common::reference::refused(t, crosvm(t, creds), extra)
}

#[test]
fn bad_input_is_refused() {
    let t = TestDir::new();
    let creds = setup_creds(&t);
    let err = refused(&t, &creds, &["--oem", ""]);
    assert!(err.contains("--oem #3 is empty"), "{err}");
    let err = refused(&t, &creds, &["--oem", "line\nbreak"]);
    assert!(
        err.contains("control character") && err.contains("offset 4"),
        "{err}"
    );
    let err = refused(&t, &creds, &["--form", "oem-strings", "--oem=-x"]);
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
    for form in ["smbios", "oem-strings"] {
        let t = TestDir::new();
        let mut c = t.cmd();
        c.args(["crosvm", "--guest-systemd", "257", "--form", form]);
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
        c.args([
            "crosvm",
            "--no-manifest",
            "--guest-systemd",
            "257",
            "--form",
            form,
        ]);
        for i in 0..255 {
            c.arg("--set").arg(format!("C{i}=v"));
        }
        let o = run(&mut c);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(strings_of(&stdout(&o)).len(), 255);
    }
}

/// A stand-in crosvm whose `run --help` lists `flag`.
fn fake_crosvm(t: &TestDir, name: &str, flag: &str) -> PathBuf {
    let p = t.write(
        name,
        format!(
            "#!/bin/sh\n[ \"$1\" = run ] && [ \"$2\" = --help ] && printf '%s\\n' '  {flag}'\n"
        )
        .as_bytes(),
    );
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn the_named_binary_decides_the_form() {
    let t = TestDir::new();
    for (bin, flag, first) in [
        ("crosvm-new", "--smbios <SMBIOS>", "--smbios"),
        ("crosvm-old", "--oem-strings <OEM_STRINGS>", "--oem-strings"),
    ] {
        let p = fake_crosvm(&t, bin, flag);
        let o = run(t.cmd().args(["crosvm", "--set", "A=b", "--crosvm"]).arg(&p));
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(stdout(&o).lines().next(), Some(first), "{bin}");
    }
    // --form wins over the binary.
    let old = fake_crosvm(&t, "crosvm-old2", "--oem-strings");
    let o = run(t
        .cmd()
        .args(["crosvm", "--set", "A=b", "--form", "smbios", "--crosvm"])
        .arg(&old));
    assert_eq!(stdout(&o).lines().next(), Some("--smbios"));
    let o = run(t
        .cmd()
        .args(["crosvm", "--set", "A=b", "--crosvm"])
        .arg(t.join("missing")));
    assert_eq!(code(&o), 3, "{}", stderr(&o));
}
