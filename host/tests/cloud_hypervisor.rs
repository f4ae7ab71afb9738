//! The cloud-hypervisor target, tested without cloud-hypervisor (it is not
//! packaged for this machine): the `--platform` value against faithful ports
//! of both generations of cloud-hypervisor's option parser (the oracles
//! below), and API mode against a local unix-socket HTTP server that records
//! the requests and answers as cloud-hypervisor does (204 No Content, or an
//! error status with a body).
//!
//! Canary rule for this file: in `--format arg|env|json` the credentials'
//! base64 *is* the delivery, so it may appear on stdout inside the
//! `--platform` value, and nowhere else: never raw, never on stderr, never in
//! an error message. API mode prints no form of a credential at all.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use common::reference::{
    assert_no_canary, assert_no_canary_but_delivery, setup_creds, API_KEY, DB_PASSWORD, JWT_SECRET,
    NOTIFY,
};
use common::{code, run, stderr, stdout, TestDir};
use proptest::prelude::*;
use serde_json::{json, Value};
use vmcreds_common::manifest::Manifest;
use vmcreds_common::oem::{self, Encoding, Parsed};
use vmcreds_common::systemd::Behaviour;
use vmcreds_common::{NameRule, Secret};
use vmcreds_host::hv::cloud_hypervisor::{self as ch, PlatformKeys};
use vmcreds_host::plan::{Plan, PlanOptions};
use vmcreds_host::source::{Loaded, Origin};

use common::ch_oracle as oracle;

use oracle::Gen;

fn both(value: &str) -> [Result<Option<Vec<String>>, oracle::Error>; 2] {
    [
        oracle::oem_strings(Gen::V26, value),
        oracle::oem_strings(Gen::V48, value),
    ]
}

#[test]
fn oracle_early_generation_keeps_quotes_as_text() {
    let early = |v| oracle::oem_strings(Gen::Early, v);
    assert_eq!(early("oem_strings=[\"x\"]"), Ok(strs(&["\"x\""])));
    assert_eq!(early("oem_strings=[\"a,b\"]"), Ok(strs(&["\"a", "b\""])));
    assert_eq!(early("oem_strings=[a,b]"), Ok(strs(&["a", "b"])));
    assert!(early("oem_strings=[a]b]").is_err());
}

fn strs(v: &[&str]) -> Option<Vec<String>> {
    Some(v.iter().map(|s| s.to_string()).collect())
}

// ---------------------------------------------------------------------------
// The oracles on values that break each generation (reference §3.2 table).

#[test]
fn oracle_table_of_breaking_values() {
    use oracle::Error::*;
    let ok = |v: &[&str]| Ok(strs(v));
    // One intended string "a,b" splits in both generations.
    assert_eq!(
        both("oem_strings=[a,b]"),
        [ok(&["a", "b"]), ok(&["a", "b"])]
    );
    // Quotes: dropped by v26-v47, kept by v48+.
    assert_eq!(both("oem_strings=[\"x\"]"), [ok(&["x"]), ok(&["\"x\""])]);
    // Quoting a comma: v26 drops the quotes and still splits the list;
    // v48 keeps one string, quotes included. Neither yields `a,b`.
    assert_eq!(
        both("oem_strings=[\"a,b\"]"),
        [ok(&["a", "b"]), ok(&["\"a,b\""])]
    );
    // Unbalanced brackets: the whole --platform is refused by both.
    for v in ["oem_strings=[a[b]", "oem_strings=[a]b]", "oem_strings=[a"] {
        let [a, b] = both(v);
        assert!(matches!(a, Err(InvalidSyntax(_))), "{v}: {a:?}");
        assert!(matches!(b, Err(InvalidSyntax(_))), "{v}: {b:?}");
    }
    // An unbalanced quote: v26 and v48 both refuse.
    let [a, b] = both("oem_strings=[a\"b]");
    assert!(a.is_err() && b.is_err());
    // Brackets at the ends of the list are stripped, all of them.
    assert_eq!(both("oem_strings=[[a]]"), [ok(&["a"]), ok(&["a"])]);
    // Outer whitespace inside the brackets: v26 keeps it, v48 trims it.
    assert_eq!(both("oem_strings=[ a ]"), [ok(&[" a "]), ok(&["a"])]);
    // Empty lists and elements become empty strings.
    assert_eq!(both("oem_strings=[]"), [ok(&[""]), ok(&[""])]);
    assert_eq!(
        both("oem_strings=[a,,b]"),
        [ok(&["a", "", "b"]), ok(&["a", "", "b"])]
    );
    // '=' is fine (the top level splits on the first '=' only).
    assert_eq!(
        both("oem_strings=[io.systemd.credential:x=y=z]"),
        [
            ok(&["io.systemd.credential:x=y=z"]),
            ok(&["io.systemd.credential:x=y=z"])
        ]
    );
    // cloud-hypervisor's own test string (tests_wrappers.rs, _test_dmi_oem_strings).
    assert_eq!(
        both("oem_strings=[io.systemd.credential:xx=yy,This is a test string]"),
        [
            ok(&["io.systemd.credential:xx=yy", "This is a test string"]),
            ok(&["io.systemd.credential:xx=yy", "This is a test string"])
        ]
    );
    // Other keys around the list.
    for g in oracle::GENS {
        assert_eq!(
            oracle::get(g, "oem_strings=[a,b],serial_number=s1", "serial_number"),
            Ok(Some("s1".into()))
        );
        assert!(matches!(
            oracle::parse(g, "oem_strings=[a],bogus=1"),
            Err(UnknownOption(k)) if k == "bogus"
        ));
    }
    // The unquoted value of a scalar key: quotes dequoted in v48 only for get().
    assert_eq!(
        oracle::get(Gen::V48, "serial_number=\"a,b\"", "serial_number"),
        Ok(Some("a,b".into()))
    );
    assert_eq!(
        oracle::get(Gen::V26, "serial_number=\"a,b\"", "serial_number"),
        Ok(Some("a,b".into()))
    );
}

// ---------------------------------------------------------------------------
// Library-level properties.

fn opts(encoding: Encoding, manifest: bool) -> PlanOptions {
    PlanOptions {
        rule: NameRule::Portable,
        encoding,
        manifest,
        budget: ch::BUDGET,
    }
}

fn name_strategy() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.@+-]{1,16}".prop_filter("not . or ..", |n| n != "." && n != "..")
}

/// Names systemd accepts but the parsers may mangle (`--allow-any-name`).
fn any_name_strategy() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[A-Za-z0-9 ,\\[\\]\".@_-]{1,12}")
        .unwrap()
        .prop_filter("not . or ..", |n| n != "." && n != "..")
}

/// Non-secret strings over an alphabet that includes every troublemaker.
fn oem_strategy() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-z0-9 =:,\\[\\]\"\t\\n.-]{0,12}").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    /// Whatever the host accepts round-trips through both parser generations
    /// to exactly the intended strings; whatever it refuses has a character
    /// some generation mangles (or the output cannot carry).
    #[test]
    fn accepted_sets_round_trip_through_both_generations(
        creds in proptest::collection::vec((prop_oneof![name_strategy(), any_name_strategy()], proptest::collection::vec(any::<u8>(), 0..48)), 0..8),
        oems in proptest::collection::vec(oem_strategy(), 0..4),
        text in any::<bool>(),
        manifest in any::<bool>(),
        serial in proptest::option::of("[A-Za-z0-9_.:-]{1,12}"),
    ) {
        let mut loaded = Vec::new();
        for (n, v) in &creds {
            loaded.push(Loaded::Credential {
                name: n.clone(),
                origin: Origin::Set { name: n.clone() },
                value: Secret::new(v.clone()),
            });
        }
        for (i, s) in oems.iter().enumerate() {
            loaded.push(Loaded::Oem { origin: Origin::Oem { index: i + 1 }, string: s.clone() });
        }
        let encoding = if text { Encoding::Text } else { Encoding::Binary };
        // systemd's name rule (--allow-any-name): names may hold , [ ] " and spaces.
        let o = PlanOptions { rule: NameRule::Systemd, ..opts(encoding, manifest) };
        let Ok(plan) = Plan::build(loaded, o) else {
            // Duplicates, empty --oem, NUL in text: the plan's business.
            return Ok(());
        };
        let keys_args: Vec<String> = serial.iter().map(|s| format!("serial_number={s}")).collect();
        let keys = PlatformKeys::parse(&keys_args).unwrap();
        match ch::check_strings(&plan) {
            Ok(checked) => {
                let value = ch::platform_value(&checked, &keys);
                let value = std::str::from_utf8(value.expose()).unwrap();
                let want: Vec<String> = plan
                    .strings
                    .iter()
                    .map(|s| String::from_utf8(s.bytes.expose().to_vec()).unwrap())
                    .collect();
                for g in oracle::GENS {
                    prop_assert_eq!(oracle::oem_strings(g, value).unwrap(), Some(want.clone()), "{:?}", g);
                    prop_assert_eq!(oracle::get(g, value, "serial_number").unwrap(), serial.clone());
                }
                // And the env alphabet holds whenever the env check passes.
                if ch::check_env_safe(&checked, &keys).is_ok() {
                    prop_assert!(value.chars().all(|c| c.is_ascii_alphanumeric() || ch::ENV_SAFE_PUNCT.contains(c)));
                }
            }
            Err(_) => {
                let bad = plan.strings.iter().any(|s| match std::str::from_utf8(s.bytes.expose()) {
                    Ok(t) => t.is_empty() || ch::first_unsafe(t).is_some(),
                    Err(_) => true,
                });
                prop_assert!(bad || plan.strings.is_empty());
            }
        }
    }

    /// Binary credentials (the default) are never refused for their values.
    #[test]
    fn binary_credentials_always_carry(
        creds in proptest::collection::btree_map(name_strategy(), proptest::collection::vec(any::<u8>(), 0..64), 1..10),
    ) {
        let loaded = creds.iter().map(|(n, v)| Loaded::Credential {
            name: n.clone(),
            origin: Origin::Load { name: n.clone(), path: PathBuf::from("/x") },
            value: Secret::new(v.clone()),
        }).collect();
        let plan = Plan::build(loaded, opts(Encoding::Binary, true)).unwrap();
        let checked = ch::check_strings(&plan).unwrap();
        prop_assert!(ch::check_env_safe(&checked, &PlatformKeys::default()).is_ok());
        let value = ch::platform_value(&checked, &PlatformKeys::default());
        let value = std::str::from_utf8(value.expose()).unwrap();
        for g in oracle::GENS {
            let got = oracle::oem_strings(g, value).unwrap().unwrap();
            prop_assert_eq!(got.len(), creds.len() + 1);
            for (s, (n, v)) in got[1..].iter().zip(&creds) {
                match oem::parse(s.as_bytes(), &Behaviour::newest()) {
                    Parsed::Credential { name, value, .. } => {
                        prop_assert_eq!(name.as_str(), n.as_str());
                        prop_assert_eq!(value.expose(), &v[..]);
                    }
                    other => prop_assert!(false, "{:?}", other),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The CLI: the reference scenario.

const SOURCES: &[&str] = &[
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
];

/// The strings the reference scenario must deliver after the manifest.
fn expected_after_manifest() -> Vec<(Option<&'static str>, Vec<u8>)> {
    vec![
        (Some("API_KEY"), API_KEY.to_vec()),
        (Some("DB_PASSWORD"), DB_PASSWORD.to_vec()),
        (Some("JWT_SECRET"), JWT_SECRET.to_vec()),
        (Some("ENVIRONMENT"), b"test".to_vec()),
        (Some("CLUSTER"), b"prod-eu-1".to_vec()),
        (None, NOTIFY.as_bytes().to_vec()),
    ]
}

/// Checks the delivered strings: the manifest first (equal to `manifest_out`),
/// then the scenario in order, each decoding to its value.
fn check_delivered(strings: &[String], manifest_out: &Path) {
    let want = expected_after_manifest();
    assert_eq!(strings.len(), want.len() + 1, "{} strings", strings.len());
    let m = match oem::parse(strings[0].as_bytes(), &Behaviour::of(252)) {
        Parsed::Credential { name, value, .. } => {
            assert_eq!(name.as_str(), "vmcreds.manifest");
            Manifest::from_json(value.expose()).unwrap()
        }
        _ => panic!("the first string is not the manifest credential"),
    };
    assert_eq!(
        m,
        Manifest::from_json(&std::fs::read(manifest_out).unwrap()).unwrap()
    );
    assert_eq!(m.credentials.len(), 6, "5 credentials + vmm.notify_socket");
    for (s, (name, value)) in strings[1..].iter().zip(want) {
        match name {
            None => assert_eq!(s.as_bytes(), &value[..]),
            Some(n) => match oem::parse(s.as_bytes(), &Behaviour::of(252)) {
                Parsed::Credential {
                    name: got,
                    encoding,
                    value: v,
                } => {
                    assert_eq!(got.as_str(), n);
                    assert_eq!(encoding, Encoding::Binary);
                    assert!(v.expose() == &value[..], "value of {n} differs");
                }
                _ => panic!("string for {n} is not an importable credential"),
            },
        }
    }
}

fn ch_cmd(t: &TestDir, creds: &Path) -> std::process::Command {
    let mut c = t.cmd();
    c.arg("cloud-hypervisor")
        .env("CREDENTIALS_DIRECTORY", creds)
        .args(SOURCES);
    c
}

fn warnings(err: &str) -> usize {
    err.lines().filter(|l| l.contains("warning:")).count()
}

#[test]
fn reference_scenario_arg_format() {
    let t = TestDir::new();
    let creds = setup_creds(&t);
    let m = t.join("manifest.json");
    let o = run(ch_cmd(&t, &creds)
        .args(["--platform-key", "serial_number=vm-01", "--manifest-out"])
        .arg(&m));
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    let out = stdout(&o);
    let words: Vec<&str> = out.lines().collect();
    assert_eq!(words.len(), 2, "two argv words");
    assert_eq!(words[0], "--platform");
    for g in oracle::GENS {
        let strings = oracle::oem_strings(g, words[1])
            .unwrap_or_else(|e| panic!("{g:?} refuses the value: {e:?}"))
            .unwrap();
        check_delivered(&strings, &m);
        assert_eq!(
            oracle::get(g, words[1], "serial_number").unwrap(),
            Some("vm-01".into())
        );
    }
    // One warning: argv is world-readable; it points to API mode.
    assert_eq!(warnings(&err), 1, "{err}");
    assert!(err.contains("/proc/PID/cmdline") && err.contains("--api-socket"));
    assert_no_canary("stderr", &o.stderr);
    assert_no_canary_but_delivery("stdout", &o.stdout);
    assert_eq!(
        std::fs::metadata(&m).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn reference_scenario_env_format() {
    let t = TestDir::new();
    let creds = setup_creds(&t);
    let m = t.join("manifest.json");
    let o = run(ch_cmd(&t, &creds)
        .args(["--format", "env", "--manifest-out"])
        .arg(&m));
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "one line");
    let value = out
        .strip_prefix("MICROVM_PLATFORM_OPS=")
        .and_then(|v| v.strip_suffix('\n'))
        .expect("MICROVM_PLATFORM_OPS=VALUE\\n");
    assert!(value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ch::ENV_SAFE_PUNCT.contains(c)));
    for g in oracle::GENS {
        check_delivered(&oracle::oem_strings(g, value).unwrap().unwrap(), &m);
    }
    // A shell that sources the file sees the same value, byte for byte.
    let env = t.write("platform.env", out.as_bytes());
    let sh = std::process::Command::new("sh")
        .arg("-c")
        .arg(". \"$1\"; printf %s \"$MICROVM_PLATFORM_OPS\"")
        .arg("sh")
        .arg(&env)
        .output()
        .unwrap();
    assert!(sh.status.success());
    assert_eq!(sh.stdout, value.as_bytes());
    assert_eq!(warnings(&err), 1, "{err}");
    assert_no_canary("stderr", &o.stderr);
    assert_no_canary_but_delivery("stdout", &o.stdout);
}

#[test]
fn reference_scenario_json_format() {
    let t = TestDir::new();
    let creds = setup_creds(&t);
    let m = t.join("manifest.json");
    let o = run(ch_cmd(&t, &creds)
        .args([
            "--format",
            "json",
            "--platform-key",
            "uuid=1234",
            "--manifest-out",
        ])
        .arg(&m));
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let strings: Vec<String> = doc["platform"]["oem_strings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    check_delivered(&strings, &m);
    assert_eq!(doc["platform"]["uuid"], "1234");
    assert_eq!(doc["argv"][0], "--platform");
    for g in oracle::GENS {
        assert_eq!(
            oracle::oem_strings(g, doc["argv"][1].as_str().unwrap()).unwrap(),
            Some(strings.clone())
        );
    }
    assert_eq!(warnings(&err), 0, "json is not argv: {err}");
    assert_no_canary("stderr", &o.stderr);
    assert_no_canary_but_delivery("stdout", &o.stdout);
}

fn refused(t: &TestDir, creds: &Path, extra: &[&str]) -> String {
    common::reference::refused(t, ch_cmd(t, creds), extra)
}

#[test]
fn bad_input_is_refused_with_the_reason() {
    let t = TestDir::new();
    let creds = setup_creds(&t);
    let err = refused(&t, &creds, &["--oem", "tag=a,b"]);
    assert!(
        err.contains("--oem #2") && err.contains("','") && err.contains("offset 5"),
        "{err}"
    );
    let err = refused(&t, &creds, &["--oem", "x]"]);
    assert!(err.contains("']'") && err.contains("offset 1"), "{err}");
    let err = refused(&t, &creds, &["--oem", "say \"hi\""]);
    assert!(err.contains("'\"'") && err.contains("offset 4"), "{err}");
    let err = refused(&t, &creds, &["--oem", " lead"]);
    assert!(err.contains("a space") && err.contains("offset 0"), "{err}");
    let err = refused(&t, &creds, &["--oem", ""]);
    assert!(err.contains("--oem #2 is empty"), "{err}");
    let err = refused(&t, &creds, &["--platform-key", "oem_strings=[x]"]);
    assert!(err.contains("--oem STRING"), "{err}");
    let err = refused(&t, &creds, &["--platform-key", "no_such_key=1"]);
    assert!(
        err.contains("no_such_key") && err.contains("serial_number"),
        "{err}"
    );
    let err = refused(&t, &creds, &["--platform-key", "serial_number=a,b"]);
    assert!(err.contains("','"), "{err}");
    // A secret in text encoding with a ',' in it: refused, neither the
    // character nor the offset named (they would describe the secret).
    let o = run(t.cmd().env("CREDENTIALS_DIRECTORY", &creds).args([
        "cloud-hypervisor",
        "--encoding",
        "text",
        "--load",
        "JWT_SECRET:host-jwt-secret",
    ]));
    assert_eq!(code(&o), 2);
    assert!(o.stdout.is_empty());
    assert_no_canary("stderr", &o.stderr);
    let err = stderr(&o);
    assert!(err.contains("credential \"JWT_SECRET\""), "{err}");
    assert!(
        err.contains("--encoding binary") && !err.contains("offset"),
        "{err}"
    );
    // --format env refuses what a shell or EnvironmentFile= would reinterpret.
    let err = refused(&t, &creds, &["--format", "env", "--oem", "a b$c"]);
    assert!(err.contains("a space") && err.contains("offset 1"), "{err}");
}

#[test]
fn too_many_strings_are_refused() {
    let t = TestDir::new();
    let mut c = t.cmd();
    c.arg("cloud-hypervisor")
        .args(["--no-manifest", "--guest-systemd", "257"]);
    for i in 0..256 {
        c.arg("--set").arg(format!("C{i}=v"));
    }
    let o = run(&mut c);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        err.contains("256 OEM strings") && err.contains("255"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    // 255 fit.
    let mut c = t.cmd();
    c.arg("cloud-hypervisor")
        .args(["--no-manifest", "--guest-systemd", "257"]);
    for i in 0..255 {
        c.arg("--set").arg(format!("C{i}=v"));
    }
    let o = run(&mut c);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let value = stdout(&o).lines().nth(1).unwrap().to_owned();
    for g in oracle::GENS {
        assert_eq!(oracle::oem_strings(g, &value).unwrap().unwrap().len(), 255);
    }
}

#[test]
fn over_the_table_window_is_refused() {
    // 48 000 bytes are 64 000 of base64, plus the manifest: over the 64 000
    // bytes kept for Type 11.
    let t = TestDir::new();
    let big = t.write("big", &vec![b'A'; 48_000]);
    let o = run(t
        .cmd()
        .args(["cloud-hypervisor", "--guest-systemd", "257", "--load"])
        .arg(format!("BIG:{}", big.display())));
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        err.contains("Type 11 structure") && err.contains("64000"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn nothing_to_deliver_is_refused() {
    let t = TestDir::new();
    let o = run(t.cmd().args(["cloud-hypervisor", "--no-manifest"]));
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no OEM strings"), "{}", stderr(&o));
}

// ---------------------------------------------------------------------------
// API mode against a recording server.

#[derive(Clone, Debug)]
struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// How the server answers one request.
#[derive(Clone)]
enum Reply {
    /// `204 No Content`, as cloud-hypervisor answers vm.create and vm.boot.
    NoContent,
    /// A status with a JSON body.
    Status(u16, &'static str, String),
    /// 500 whose body echoes the request body (a worst case for secrecy).
    EchoError,
}

struct Server {
    path: PathBuf,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn read_request(s: &mut std::os::unix::net::UnixStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end - 4].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

impl Server {
    fn start(dir: &Path, replies: Vec<Reply>) -> Server {
        let path = dir.join("ch-api.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, st) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut n = 0;
            let mut open = Vec::new();
            while !st.load(Ordering::SeqCst) {
                let mut s = match listener.accept() {
                    Ok((s, _)) => s,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let Some(req) = read_request(&mut s) else {
                    continue;
                };
                let reply = replies.get(n).cloned().unwrap_or(Reply::Status(
                    500,
                    "Internal Server Error",
                    "\"unexpected request\"".into(),
                ));
                n += 1;
                // micro_http's exact shape: no reason phrase, keep-alive, and
                // the connection stays open (kept in `open` below).
                let resp = match reply {
                    Reply::NoContent => {
                        b"HTTP/1.1 204 \r\nServer: Cloud Hypervisor API\r\nConnection: keep-alive\r\n\r\n".to_vec()
                    }
                    Reply::Status(code, reason, body) => format!(
                        "HTTP/1.1 {code} {reason}\r\nServer: Cloud Hypervisor API\r\nConnection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .into_bytes(),
                    Reply::EchoError => {
                        let mut body = b"\"Error creating VM: config ".to_vec();
                        body.extend_from_slice(&req.body);
                        body.push(b'"');
                        let mut r = format!(
                            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(&body);
                        r
                    }
                };
                r.lock().unwrap().push(req);
                let _ = s.write_all(&resp);
                open.push(s);
            }
        });
        Server {
            path,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<Request> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        self.requests.lock().unwrap().clone()
    }
}

const VM_CONFIG: &str = r#"{
  "cpus": {"boot_vcpus": 2, "max_vcpus": 2},
  "memory": {"size": 536870912},
  "payload": {"kernel": "/nix/store/x-linux/bzImage", "cmdline": "console=ttyS0 root=/dev/vda"},
  "disks": [{"path": "/var/lib/microvms/vm1/root.img"}],
  "vsock": {"cid": 3, "socket": "/var/lib/microvms/vm1/notify.vsock"},
  "platform": {"serial_number": "vm1", "oem_strings": ["io.systemd.credential:vmm.notify_socket=vsock-stream:2:8888"]}
}"#;

fn api_cmd(t: &TestDir, creds: &Path, server: &Path, config: &Path) -> std::process::Command {
    let mut c = t.cmd();
    c.arg("cloud-hypervisor")
        .env("CREDENTIALS_DIRECTORY", creds)
        .arg("--api-socket")
        .arg(server)
        .arg("--vm-config")
        .arg(config)
        .args(&SOURCES[..SOURCES.len() - 2]); // the notify string is in the config
    c
}

#[test]
fn api_mode_creates_then_boots() {
    let t = TestDir::new();
    let creds = setup_creds(&t);
    let config = t.write("vm.json", VM_CONFIG.as_bytes());
    let m = t.join("manifest.json");
    let server = Server::start(t.path(), vec![Reply::NoContent, Reply::NoContent]);
    let o = run(api_cmd(&t, &creds, &server.path, &config)
        .arg("--manifest-out")
        .arg(&m));
    let reqs = server.finish();
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    // API mode prints no form of any credential, not even base64.
    assert_no_canary("stdout", &o.stdout);
    assert_no_canary("stderr", &o.stderr);
    assert!(!err.contains("/proc/PID/cmdline"), "no argv warning: {err}");
    // create, then boot; nothing else.
    let order: Vec<(&str, &str)> = reqs
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        order,
        [("PUT", "/api/v1/vm.create"), ("PUT", "/api/v1/vm.boot")]
    );
    let create = &reqs[0];
    assert_eq!(create.headers["content-type"], "application/json");
    assert_eq!(create.headers["host"], "localhost");
    assert_eq!(create.headers["connection"], "close");
    assert_eq!(
        create.headers["content-length"],
        create.body.len().to_string()
    );
    assert!(reqs[1].body.is_empty());
    // The config kept, the strings merged: the file's first, then ours.
    let sent: Value = serde_json::from_slice(&create.body).unwrap();
    let orig: Value = serde_json::from_str(VM_CONFIG).unwrap();
    for k in ["cpus", "memory", "payload", "disks", "vsock"] {
        assert_eq!(sent[k], orig[k], "{k} changed");
    }
    assert_eq!(sent["platform"]["serial_number"], "vm1");
    let strings: Vec<String> = sent["platform"]["oem_strings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    // The manifest first, then the file's own string, then ours. The file's
    // string went through the plan too: it is in the manifest, which the
    // guest can then verify it against.
    let m_doc = Manifest::from_json(&std::fs::read(&m).unwrap()).unwrap();
    assert_eq!(strings[1], NOTIFY);
    assert_eq!(
        m_doc.credentials.len(),
        6,
        "5 credentials + the file's vmm.notify_socket"
    );
    assert!(m_doc.get("vmm.notify_socket").is_some());
    let mut delivered = vec![strings[0].clone()];
    delivered.extend(strings[2..].iter().cloned());
    delivered.push(strings[1].clone());
    check_delivered(&delivered, &m);
    // The VmConfig file is never modified.
    assert_eq!(std::fs::read(&config).unwrap(), VM_CONFIG.as_bytes());
}

#[test]
fn api_mode_carries_strings_argv_mode_refuses() {
    // JSON carries ',' and ']' verbatim: API mode accepts what argv mode cannot.
    let t = TestDir::new();
    let config = t.write("vm.json", b"{\"payload\":{\"kernel\":\"/k\"}}");
    let server = Server::start(t.path(), vec![Reply::NoContent, Reply::NoContent]);
    let mut c = t.cmd();
    c.args(["cloud-hypervisor", "--no-manifest", "--oem", "a,b]\"c"])
        .arg("--api-socket")
        .arg(&server.path)
        .arg("--vm-config")
        .arg(&config);
    let o = run(&mut c);
    let reqs = server.finish();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let sent: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(sent["platform"]["oem_strings"], json!(["a,b]\"c"]));
}

/// Runs API mode with input that must be refused before anything is sent.
fn api_refused(t: &TestDir, config: &str, extra: &[&str]) -> String {
    let creds = setup_creds(t);
    let cfg = t.write("vm-refused.json", config.as_bytes());
    let m = t.join("refused-manifest.json");
    let server = Server::start(t.path(), vec![Reply::NoContent, Reply::NoContent]);
    let o = run(api_cmd(t, &creds, &server.path, &cfg)
        .args(extra)
        .arg("--manifest-out")
        .arg(&m));
    let reqs = server.finish();
    std::fs::remove_file(t.join("ch-api.sock")).unwrap();
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{extra:?}: {err}");
    assert!(reqs.is_empty(), "{extra:?}: {} requests sent", reqs.len());
    assert!(!m.exists());
    assert_no_canary("stdout", &o.stdout);
    assert_no_canary("stderr", &o.stderr);
    err
}

#[test]
fn api_mode_input_errors_send_nothing() {
    let t = TestDir::new();
    let err = api_refused(&t, VM_CONFIG, &["--oem", ""]);
    assert!(err.contains("is empty"), "{err}");
    let err = api_refused(&t, VM_CONFIG, &["--platform-key", "uuid=1"]);
    assert!(err.contains("VmConfig"), "{err}");
    let err = api_refused(&t, VM_CONFIG, &["--format", "env"]);
    assert!(err.contains("argv mode"), "{err}");
    let err = api_refused(
        &t,
        r#"{"payload":{"kernel":"/k"},"platform":{"oem_strings":["io.systemd.credential:API_KEY=x"]}}"#,
        &[],
    );
    assert!(
        err.contains("platform.oem_strings[0]")
            && err.contains("\"API_KEY\" is given twice")
            && err.contains("--load \"API_KEY\""),
        "{err}"
    );
    let err = api_refused(&t, r#"{"cpus":{}}"#, &[]);
    assert!(err.contains("payload"), "{err}");
    let err = api_refused(&t, "{not json", &[]);
    assert!(err.contains("not valid JSON"), "{err}");
    let err = api_refused(&t, r#"{"payload":{},"platform":{"oem_strings":[""]}}"#, &[]);
    assert!(err.contains("oem_strings[0] is empty"), "{err}");
    // 256 strings: 250 in the file, 5 credentials and the manifest from us.
    let many: Vec<String> = (0..250).map(|i| format!("tag{i}")).collect();
    let cfg = json!({"payload": {"kernel": "/k"}, "platform": {"oem_strings": many}}).to_string();
    let err = api_refused(&t, &cfg, &[]);
    assert!(err.contains("256 OEM strings"), "{err}");
    // Within the Type 11 budget but over micro_http's 51 200-byte body:
    // refused here rather than answered 400 by cloud-hypervisor.
    let big = t.write("big", &vec![b'A'; 39_000]);
    let err = api_refused(
        &t,
        VM_CONFIG,
        &[
            "--guest-systemd",
            "257",
            "--load",
            &format!("BIG:{}", big.display()),
        ],
    );
    assert!(
        err.contains("the vm.create body would be")
            && err.contains("over 51200 bytes")
            && err.contains("--fw-cfg"),
        "{err}"
    );
}

#[test]
fn api_mode_unreachable_socket_exits_3() {
    let t = TestDir::new();
    let creds = setup_creds(&t);
    let config = t.write("vm.json", VM_CONFIG.as_bytes());
    let m = t.join("manifest.json");
    // No such file.
    let missing = t.join("missing.sock");
    let o = run(api_cmd(&t, &creds, &missing, &config)
        .arg("--manifest-out")
        .arg(&m));
    let err = stderr(&o);
    assert_eq!(code(&o), 3, "{err}");
    assert!(
        err.contains(&missing.display().to_string()) && err.contains("os error 2"),
        "{err}"
    );
    assert!(!m.exists(), "manifest of a VM that never started");
    assert_no_canary("stderr", &o.stderr);
    // A socket nobody listens on.
    let dead = t.join("dead.sock");
    drop(UnixListener::bind(&dead).unwrap());
    let o = run(&mut api_cmd(&t, &creds, &dead, &config));
    let err = stderr(&o);
    assert_eq!(code(&o), 3, "{err}");
    assert!(err.contains("Connection refused"), "{err}");
    // An unreadable VmConfig is exit 3 too, with the path.
    let o = run(&mut api_cmd(&t, &creds, &dead, &t.join("nope.json")));
    assert_eq!(code(&o), 3);
    assert!(stderr(&o).contains("nope.json"));
}

#[test]
fn api_mode_error_answer_is_quoted_redacted_and_stops() {
    let t = TestDir::new();
    let creds = setup_creds(&t);
    let config = t.write("vm.json", VM_CONFIG.as_bytes());
    let m = t.join("manifest.json");
    // cloud-hypervisor echoing the config in its error body: the worst case,
    // with binary (base64) and text values (JSON-escaped in the echo).
    for extra in [
        &SOURCES[..SOURCES.len() - 2],
        &[
            "--encoding",
            "text",
            "--load",
            "API_KEY:host-api-key",
            "--load",
            "JWT_SECRET:host-jwt-secret",
            "--set",
            "SHORT=x1",
        ][..],
    ] {
        let server = Server::start(t.path(), vec![Reply::EchoError]);
        let mut c = t.cmd();
        c.arg("cloud-hypervisor")
            .env("CREDENTIALS_DIRECTORY", &creds)
            .arg("--api-socket")
            .arg(&server.path)
            .arg("--vm-config")
            .arg(&config)
            .args(extra)
            .arg("--manifest-out")
            .arg(&m);
        let o = run(&mut c);
        let reqs = server.finish();
        std::fs::remove_file(t.join("ch-api.sock")).unwrap();
        let err = stderr(&o);
        assert_ne!(code(&o), 0, "{err}");
        assert_eq!(reqs.len(), 1, "no vm.boot after a failed vm.create");
        // The request did carry the canaries (so the echo held them).
        let b64 = vmcreds_common::base64::encode(API_KEY);
        let body = &reqs[0].body;
        assert!(
            [&b"CANARY-api-key-7f3e9a1c\\n"[..], b64.expose()]
                .iter()
                .any(|n| body.windows(n.len()).any(|w| w == *n)),
            "the request carries the canary"
        );
        // Runs of 8 or more base64 or hex characters are cut (issue 13 §8),
        // "creating" with them.
        assert!(
            err.contains("vm.create") && err.contains("500") && err.contains("Error [cut] VM"),
            "{err}"
        );
        assert!(err.contains("vm.boot was not sent"), "{err}");
        assert!(!err.contains("x1"), "short text value redacted too: {err}");
        assert!(err.len() < 600, "the body is cut to a short excerpt");
        assert_no_canary("stdout", &o.stdout);
        assert_no_canary("stderr", &o.stderr);
        assert!(!m.exists());
    }
}

#[test]
fn api_mode_error_statuses() {
    let t = TestDir::new();
    let creds = setup_creds(&t);
    let config = t.write("vm.json", VM_CONFIG.as_bytes());
    // A 400 on create, as for a config cloud-hypervisor rejects.
    let server = Server::start(
        t.path(),
        vec![Reply::Status(
            400,
            "Bad Request",
            "\"Error parsing config: missing field `kernel`\"".into(),
        )],
    );
    let o = run(&mut api_cmd(&t, &creds, &server.path, &config));
    let reqs = server.finish();
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert_eq!(reqs.len(), 1);
    assert!(
        err.contains("400 Bad Request") && err.contains("missing field"),
        "{err}"
    );
    std::fs::remove_file(t.join("ch-api.sock")).unwrap();
    // create succeeds, boot fails: say the VM is left created.
    let server = Server::start(
        t.path(),
        vec![
            Reply::NoContent,
            Reply::Status(500, "", "\"Error booting VM: VmBoot(...)\"".into()),
        ],
    );
    let o = run(&mut api_cmd(&t, &creds, &server.path, &config));
    let reqs = server.finish();
    let err = stderr(&o);
    assert_ne!(code(&o), 0);
    assert_eq!(reqs.len(), 2);
    assert!(
        err.contains("vm.boot on ")
            && err.contains("with 500: ")
            && err.contains("created but not booted"),
        "{err}"
    );
    assert_no_canary("stderr", &o.stderr);
}

#[test]
fn api_mode_warns_about_a_shared_socket() {
    let t = TestDir::new();
    let config = t.write("vm.json", b"{\"payload\":{\"kernel\":\"/k\"}}");
    let server = Server::start(t.path(), vec![Reply::NoContent, Reply::NoContent]);
    std::fs::set_permissions(&server.path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut c = t.cmd();
    c.args(["cloud-hypervisor", "--set", "A=b"])
        .arg("--api-socket")
        .arg(&server.path)
        .arg("--vm-config")
        .arg(&config);
    let o = run(&mut c);
    server.finish();
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(err.contains("0666") && err.contains("vm.info"), "{err}");
}

#[test]
fn help_says_vm_info_echoes_the_config() {
    let t = TestDir::new();
    let o = run(t.cmd().args(["cloud-hypervisor", "--help"]));
    let out = stdout(&o);
    assert!(
        out.contains("--api-socket") && out.contains("--vm-config"),
        "{out}"
    );
    assert!(out.contains("vm.info") && out.contains("0600"), "{out}");
}
