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

use common::hv_ground_truth::{
    entry_strings, label, predicted_imports, raw_entries, recorded_imports, unhex, verdicts,
    without_manifest,
};
use serde_json::Value;
use vmcreds_common::name::{CredentialName, NameRule};
use vmcreds_common::predict::PriorCredential;
use vmcreds_common::systemd::parse_version;

/// The OEM strings of `vmcreds-host cloud-hypervisor --format json` for the run's inputs.
fn host_strings(doc: &Value, run: &Value) -> Vec<Vec<u8>> {
    let version = doc["version"].as_str().unwrap();
    let release = version
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_start_matches('v')
        .split('-')
        .next()
        .unwrap();
    let out = common::hv_ground_truth::host_with_inputs(
        run,
        &["cloud-hypervisor", "--cloud-hypervisor-version", release],
        &["--format", "json"],
    );
    assert!(
        out.status.success(),
        "{}: {}",
        label(run),
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

/// Every passing cloud-hypervisor run recorded, with its file's top level.
fn runs() -> Vec<(Value, Value)> {
    common::hv_ground_truth::runs(
        "cloud-hypervisor",
        "cargo xtask hv-ground-truth --cloud-hypervisor PATH",
    )
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
        assert!(!seen.is_empty(), "{}", label(&run));
        assert_eq!(
            now,
            seen,
            "{}: the host's strings differ from those real cloud-hypervisor delivered",
            label(&run)
        );
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} api/argv runs replayed");
}

#[test]
fn test_verify_gives_the_verdict_collect_printed() {
    let mut checked = 0;
    for (_, run) in runs() {
        let Some((now, recorded, report)) = verdicts(&run) else {
            continue;
        };
        assert_eq!(
            report.system.hypervisor_product.as_deref(),
            Some("cloud-hypervisor"),
            "{}",
            label(&run)
        );
        assert_eq!(now, recorded, "{}", label(&run));
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
        let predicted = predicted_imports(&entries, v, &prior);
        let real: Vec<_> = recorded_imports(&run)
            .into_iter()
            .filter(|(name, _, _)| !fw_cfg.iter().any(|f| f.as_bytes() == name.as_slice()))
            .collect();
        assert_eq!(predicted, real, "{}", label(&run));
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
