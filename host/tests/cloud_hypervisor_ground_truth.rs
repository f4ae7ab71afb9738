//! The code against what real cloud-hypervisor did.
//!
//! `xtask/ground-truth/cloud-hypervisor-*.json` records live runs of `cargo xtask
//! hv-ground-truth` on a real cloud-hypervisor (nested under QEMU TCG on the machine that
//! recorded it): the inputs, what the host CLI printed, the raw SMBIOS Type 11 entries the
//! guest read, what its systemd imported, the guest's report and `collect`'s verdict. CI has
//! no cloud-hypervisor; this replays the recording through today's code:
//! - the host CLI, given the same inputs, still emits exactly the OEM strings real
//!   cloud-hypervisor put into the guest's Type 11 entry (the injected manifest aside: its
//!   nonce is new each run);
//! - `verify` gives, from the recorded manifest and report, the verdict `collect` printed;
//! - the predictor, on the recorded entries, imports what the guest's systemd imported;
//! - the host's cloud-hypervisor budget is still no larger than the structure that was seen
//!   to arrive whole, and the structure that was seen to break is beyond it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use vmcreds_common::base64::{decode_systemd, Alphabet};
use vmcreds_common::digest::digest;
use vmcreds_common::manifest::Manifest;
use vmcreds_common::name::{CredentialName, NameRule};
use vmcreds_common::predict::{predict, PriorCredential};
use vmcreds_common::report::Report;
use vmcreds_common::systemd::{parse_version, Behaviour};
use vmcreds_common::verify::{verify, HostVerdict};

const MANIFEST_PREFIX: &[u8] = b"io.systemd.credential.binary:vmcreds.manifest=";

fn files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../xtask/ground-truth");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("cloud-hypervisor-") && n.ends_with(".json")
        })
        .collect();
    v.sort();
    assert!(
        !v.is_empty(),
        "no cloud-hypervisor ground truth in {}: run `cargo xtask hv-ground-truth` where a \
         cloud-hypervisor binary is",
        dir.display()
    );
    v
}

fn unbase64(s: &str) -> Vec<u8> {
    decode_systemd(s.as_bytes(), Alphabet::Standard, 0)
        .expect("fixture base64")
        .expose()
        .to_vec()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Every passing run of every file, with its file's top level.
fn runs() -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    for f in files() {
        let doc: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        assert_eq!(
            doc["schema"],
            "vmcreds.hv-ground-truth/1",
            "{}",
            f.display()
        );
        for r in doc["runs"].as_array().unwrap() {
            if r["outcome"] == "pass" {
                out.push((doc.clone(), r.clone()));
            }
        }
    }
    out
}

/// The strings of raw Type 11 entries, in order.
fn entry_strings(raw: &[Vec<u8>]) -> Vec<Vec<u8>> {
    raw.iter()
        .flat_map(|e| {
            let len = usize::from(e[1]);
            e[len..]
                .split(|&b| b == 0)
                .take_while(|s| !s.is_empty())
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn raw_entries(run: &Value) -> Vec<Vec<u8>> {
    run["guest"]["type11_raw"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| unbase64(e["base64"].as_str().unwrap()))
        .collect()
}

/// The OEM strings of `vmcreds-host cloud-hypervisor --format json` for the run's inputs.
fn host_strings(doc: &Value, run: &Value) -> Vec<Vec<u8>> {
    let t = common::TestDir::new();
    let creds = t.mkdir("creds");
    let mut args: Vec<String> = vec!["cloud-hypervisor".into()];
    let version = doc["version"].as_str().unwrap();
    let release = version
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_start_matches('v')
        .split('-')
        .next()
        .unwrap();
    args.extend(["--cloud-hypervisor-version".into(), release.into()]);
    for s in run["inputs"]["sources"].as_array().unwrap() {
        if let Some(name) = s["load"].as_str() {
            let file = s["file"].as_str().unwrap();
            std::fs::write(creds.join(file), unbase64(s["base64"].as_str().unwrap())).unwrap();
            args.extend(["--load".into(), format!("{name}:{file}")]);
        } else if let Some(v) = s["set"].as_str() {
            args.extend(["--set".into(), v.into()]);
        } else if let Some(v) = s["oem"].as_str() {
            args.extend(["--oem".into(), v.into()]);
        }
    }
    for f in run["inputs"]["host_flags"].as_array().unwrap() {
        args.push(f.as_str().unwrap().into());
    }
    args.extend(["--format".into(), "json".into()]);
    let out = Command::new(env!("CARGO_BIN_EXE_vmcreds-host"))
        .args(&args)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let argv: Vec<&str> = v["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(argv[0], "--platform");
    // oem_strings=[a,b,...] — the host's alphabet has no ',' '[' ']' inside a string.
    let list = argv[1]
        .strip_prefix("oem_strings=[")
        .and_then(|r| r.split_once(']'))
        .map(|(l, _)| l)
        .expect("an oem_strings list");
    list.split(',').map(|s| s.as_bytes().to_vec()).collect()
}

fn without_manifest(v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.into_iter()
        .filter(|s| !s.starts_with(MANIFEST_PREFIX))
        .collect()
}

#[test]
fn test_the_host_still_emits_what_cloud_hypervisor_carried() {
    let mut checked = 0;
    for (doc, run) in runs() {
        if !matches!(run["mode"].as_str(), Some("api" | "argv")) {
            continue;
        }
        let seen = without_manifest(entry_strings(&raw_entries(&run)));
        let now = without_manifest(host_strings(&doc, &run));
        assert!(
            !seen.is_empty(),
            "{} [{}]",
            run["scenario"],
            run["generation"]
        );
        assert_eq!(
            now, seen,
            "{} [{}]: the host's strings differ from those real cloud-hypervisor delivered",
            run["scenario"], run["generation"]
        );
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} api/argv runs replayed");
}

#[test]
fn test_verify_gives_the_verdict_collect_printed() {
    let mut checked = 0;
    for (_, run) in runs() {
        if run["manifest"].is_null() || run["report"].is_null() || run["verdict"].is_null() {
            continue;
        }
        let manifest = Manifest::from_json(run["manifest"].to_string().as_bytes()).unwrap();
        let report = Report::from_json(run["report"].to_string().as_bytes()).unwrap();
        let recorded: HostVerdict = serde_json::from_value(run["verdict"]["verdict"].clone())
            .unwrap_or_else(|e| panic!("{} verdict: {e}", run["scenario"]));
        let now = verify(&manifest, &report).unwrap();
        assert_eq!(now, recorded, "{} [{}]", run["scenario"], run["generation"]);
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} verdicts replayed");
}

#[test]
fn test_the_predictor_imports_what_the_guest_systemd_imported() {
    let mut checked = 0;
    for (_, run) in runs() {
        let Some(v) = run["guest"]["systemd_version"]
            .as_str()
            .and_then(parse_version)
        else {
            continue; // busybox: vmcreds' own import, not systemd's
        };
        let entries = raw_entries(&run);
        if entries.is_empty() {
            continue;
        }
        // fw_cfg credentials (fw_cfg and microvm.nix runs) come first and win a name; the
        // predictor is given them as it is in a guest, and judged on SMBIOS's.
        // `ls` of the fw_cfg directory (in columns: its output was a tty; the names here are
        // portable), or its complaint that there is none.
        let fw_cfg: Vec<String> = run["guest"]["fw_cfg"]
            .as_str()
            .unwrap_or("")
            .lines()
            .filter(|l| !l.starts_with("ls:"))
            .flat_map(str::split_whitespace)
            .map(str::to_owned)
            .collect();
        let size_of = |name: &str| -> usize {
            run["guest"]["imported"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| unhex(c["name_hex"].as_str().unwrap()) == name.as_bytes())
                .and_then(|c| c["size"].as_u64())
                .unwrap_or(0) as usize
        };
        let prior: Vec<PriorCredential> = fw_cfg
            .iter()
            .map(|n| PriorCredential {
                name: CredentialName::parse(n, NameRule::Systemd).unwrap(),
                bytes: size_of(n),
            })
            .collect();
        let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        let p = predict(&refs, &Behaviour::of(v), &prior);
        let mut predicted: Vec<(Vec<u8>, u64, String)> = p
            .imported()
            .map(|s| {
                let val = s.value.as_ref().unwrap();
                (
                    s.name.clone().unwrap().into_bytes(),
                    val.len() as u64,
                    digest(val.expose(), None).hex,
                )
            })
            .collect();
        let mut real: Vec<(Vec<u8>, u64, String)> = run["guest"]["imported"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    unhex(c["name_hex"].as_str().unwrap()),
                    c["size"].as_u64().unwrap(),
                    c["sha256"].as_str().unwrap().to_owned(),
                )
            })
            .filter(|(name, _, _)| !fw_cfg.iter().any(|f| f.as_bytes() == name.as_slice()))
            .collect();
        predicted.sort();
        real.sort();
        assert_eq!(
            predicted, real,
            "{} [{}]",
            run["scenario"], run["generation"]
        );
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} systemd runs replayed");
}

#[test]
fn test_the_budget_is_what_was_seen_to_arrive_whole() {
    let budget = vmcreds_host::hv::cloud_hypervisor::BUDGET
        .max_type11_bytes
        .unwrap();
    let mut seen = false;
    for (_, run) in runs() {
        if run["scenario"] != "ch-limit-budget" {
            continue;
        }
        let recorded_budget = run["host_budget_type11_bytes"].as_u64().unwrap() as usize;
        let entries = raw_entries(&run);
        assert_eq!(entries.len(), 1);
        assert_eq!(
            entries[0].len(),
            recorded_budget,
            "the budget-sized structure arrived with another size"
        );
        assert!(
            budget <= recorded_budget,
            "the host's budget ({budget}) is above the {recorded_budget} bytes seen to arrive whole"
        );
        seen = true;
    }
    assert!(seen, "no ch-limit-budget run in the ground truth");
    // The window the budget is cut from: what arrived whole, and one byte more.
    let measured = vmcreds_host::hv::cloud_hypervisor::MEASURED_TYPE11_MAX;
    let window = |name: &str| -> Vec<Vec<u8>> {
        let (_, run) = runs()
            .into_iter()
            .find(|(_, r)| r["scenario"] == name)
            .unwrap_or_else(|| panic!("no {name} run in the ground truth"));
        raw_entries(&run)
    };
    let fits = window("ch-window-fits");
    assert_eq!(fits.len(), 1);
    assert_eq!(fits[0].len(), measured, "the measured window");
    assert!(window("ch-window-over").is_empty(), "one byte over: no DMI");
}
