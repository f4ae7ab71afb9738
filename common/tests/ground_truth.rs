//! The predictor against real systemd.
//!
//! `xtask/ground-truth/systemd-*.json` holds what real systemd (252 from
//! Debian bookworm, 257 from trixie, …) imported in a QEMU guest from a Type 11
//! structure full of hostile strings, together with the raw entry bytes the
//! guest read from `/sys/firmware/dmi/entries/11-N/raw`. This test feeds those
//! exact bytes to `predict` with the recorded systemd version and demands the
//! same set of credentials, with the same sizes and SHA-256 digests, that
//! systemd put in `/run/credentials/@system`. `cargo xtask ground-truth`
//! regenerates the files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use vmcreds_common::base64::{decode_systemd, Alphabet};
use vmcreds_common::digest::digest;
use vmcreds_common::predict::predict;
use vmcreds_common::systemd::{parse_version, Behaviour};

fn ground_truth_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../xtask/ground-truth");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("systemd-") && n.ends_with(".json")
        })
        .collect();
    files.sort();
    files
}

fn unbase64(s: &str) -> Vec<u8> {
    decode_systemd(s.as_bytes(), Alphabet::Standard, 0)
        .expect("fixture base64")
        .expose()
        .to_vec()
}

/// (name, size, sha256) of every credential systemd imported.
type Imported = BTreeSet<(String, u64, String)>;

fn observed(boot: &Value) -> Imported {
    boot["imported"]
        .as_array()
        .expect("imported[]")
        .iter()
        .map(|f| {
            let name = String::from_utf8(hex_decode(f["name_hex"].as_str().unwrap())).unwrap();
            (
                name,
                f["size"].as_u64().unwrap(),
                f["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn hex_decode(s: &str) -> Vec<u8> {
    vmcreds_common::digest::hex_decode(s).expect("lowercase hex")
}

#[test]
fn test_prediction_matches_real_systemd() {
    let files = ground_truth_files();
    assert!(
        !files.is_empty(),
        "no ground-truth files: run `cargo xtask ground-truth`"
    );
    let mut boots_checked = 0;
    for file in &files {
        let doc: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
        let version =
            parse_version(doc["systemd_version"].as_str().unwrap()).expect("systemd version");
        for boot in doc["boots"].as_array().unwrap() {
            let Some(raw) = boot["type11_raw"].as_array() else {
                continue;
            };
            if boot.get("fw_cfg").is_some_and(|v| !v.is_null()) {
                continue; // fw_cfg boots are checked by the guest's own tests
            }
            let entries: Vec<Vec<u8>> = raw
                .iter()
                .map(|e| unbase64(e["base64"].as_str().unwrap()))
                .collect();
            let refs: Vec<&[u8]> = entries.iter().map(|e| e.as_slice()).collect();
            let p = predict(&refs, &Behaviour::of(version), &[]);
            let predicted: Imported = p
                .imported()
                .map(|s| {
                    let v = s.value.as_ref().unwrap();
                    (
                        s.name.clone().unwrap(),
                        v.len() as u64,
                        digest(v.expose(), None).hex,
                    )
                })
                .collect();
            let seen = observed(boot);
            let only_predicted: Vec<_> = predicted.difference(&seen).map(|c| &c.0).collect();
            let only_seen: Vec<_> = seen.difference(&predicted).map(|c| &c.0).collect();
            assert!(
                only_predicted.is_empty() && only_seen.is_empty(),
                "{} boot {:?} (systemd {version}): predicted but not imported {only_predicted:?}; imported but not predicted {only_seen:?}",
                file.display(),
                boot["boot"]
            );
            boots_checked += 1;
        }
    }
    assert!(
        boots_checked > 0,
        "no boot with raw Type 11 bytes in {files:?}"
    );
}
