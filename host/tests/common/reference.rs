//! The reference scenario's secrets (`host-api-key`, `host-db-password`,
//! `host-jwt-secret` as `API_KEY`, `DB_PASSWORD`, `JWT_SECRET`), each a canary
//! full of characters hypervisor parsers choke on, and the checks that no
//! form of them leaks except where a target's delivery *is* its base64.

use std::path::PathBuf;
use std::process::Command;

use super::{code, run, stderr, Canary, TestDir};

pub const API_KEY: &[u8] = b"CANARY-api-key-7f3e9a1c\n";
pub const DB_PASSWORD: &[u8] = b"CANARY-db,pass]word\"=\0binary\xff";
pub const JWT_SECRET: &[u8] = b"CANARY-jwt [secret], \"quoted\"";
pub const NOTIFY: &str = "io.systemd.credential:vmm.notify_socket=vsock-stream:2:8888";

pub fn canaries() -> Vec<(Canary, Vec<u8>)> {
    [API_KEY, DB_PASSWORD, JWT_SECRET]
        .iter()
        .map(|v| {
            (
                Canary::new(v),
                vmcreds_common::base64::encode(v).expose().to_vec(),
            )
        })
        .collect()
}

/// No form of any canary anywhere in `bytes`.
pub fn assert_no_canary(stream: &str, bytes: &[u8]) {
    for (c, _) in canaries() {
        c.assert_absent(stream, bytes);
    }
    // Every canary starts with CANARY-: no escaped or partial form either.
    if let Some(off) = bytes.windows(7).position(|w| w == b"CANARY-") {
        panic!("canary prefix in {stream} at offset {off}");
    }
}

/// No form of any canary in `bytes` once the delivery itself (each value's
/// exact base64, inside the `--platform` value) is taken out.
pub fn assert_no_canary_but_delivery(stream: &str, bytes: &[u8]) {
    let mut rest = bytes.to_vec();
    for (_, b64) in canaries() {
        let mut out = Vec::new();
        let mut i = 0;
        while i < rest.len() {
            if rest[i..].starts_with(&b64) {
                i += b64.len();
            } else {
                out.push(rest[i]);
                i += 1;
            }
        }
        rest = out;
    }
    assert_no_canary(stream, &rest);
}

pub fn setup_creds(t: &TestDir) -> PathBuf {
    let dir = t.mkdir("credentials");
    t.write("credentials/host-api-key", API_KEY);
    t.write("credentials/host-db-password", DB_PASSWORD);
    t.write("credentials/host-jwt-secret", JWT_SECRET);
    dir
}

/// Runs a command that must be refused: exit 2, nothing on stdout, no
/// manifest left behind (`--manifest-out` is added), no canary in the
/// message. Returns stderr.
pub fn refused(t: &TestDir, mut cmd: Command, extra: &[&str]) -> String {
    let m = t.join("refused-manifest.json");
    let o = run(cmd.args(extra).arg("--manifest-out").arg(&m));
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{extra:?}: {err}");
    assert!(o.stdout.is_empty(), "{extra:?}: stdout not empty");
    assert!(!m.exists(), "{extra:?}: manifest written");
    assert_no_canary("stderr", &o.stderr);
    err
}
