//! The code against what real crosvm did.
//!
//! `xtask/ground-truth/crosvm-*.json` records live runs of `cargo xtask hv-ground-truth
//! --crosvm PATH --source-commit HASH` on a real crosvm (nested under QEMU TCG on the machine
//! that recorded it): the inputs, the arguments the host CLI printed for crosvm, the raw SMBIOS
//! Type 11 entries the guest read, what the guest imported, the guest's report and `verify`'s
//! verdict. CI has no crosvm; this replays the recording through today's code:
//! - the host CLI, given the same inputs, still emits exactly the OEM strings real crosvm put
//!   into the guest's Type 11 entry, in either form (the injected manifest aside: its nonce is
//!   new each run);
//! - the arguments printed in the recorded run, read back the way crosvm reads them (the
//!   `serde_keyvalue` port in `common/crosvm_oracle.rs`, or one string per `--oem-strings`),
//!   are exactly the strings the guest got, manifest included;
//! - `verify` gives, from the recorded manifest and report, the verdict it printed then;
//! - the predictor, on the recorded entries, imports what the guest's systemd imported;
//! - what the host refused then it still refuses, and the host's crosvm budget is no larger
//!   than the structure that was seen to arrive whole.

mod common;

use std::process::Output;

use common::crosvm_oracle as oracle;
use common::hv_ground_truth::{
    entry_strings, label, predicted_imports, raw_entries, recorded_imports, verdicts,
    without_manifest,
};
use serde_json::Value;
use vmcreds_common::systemd::parse_version;

/// The OEM strings of crosvm arguments printed one per line, read as crosvm reads them.
fn strings_of_output(out: &str) -> Vec<Vec<u8>> {
    let words: Vec<&str> = out.lines().collect();
    if words.first() == Some(&"--smbios") {
        assert_eq!(words.len(), 2, "one --smbios argument");
        oracle::oem_strings(words[1])
            .expect("crosvm's parser takes the value")
            .into_iter()
            .map(String::into_bytes)
            .collect()
    } else {
        assert!(!words.is_empty() && words.len() % 2 == 0);
        words
            .chunks(2)
            .map(|p| {
                assert_eq!(p[0], "--oem-strings");
                p[1].as_bytes().to_vec()
            })
            .collect()
    }
}

/// `vmcreds-host crosvm` with the run's inputs in the run's form (`smbios` was asked of the
/// binary then; here the form is named, as CI has no crosvm to ask).
fn host(run: &Value) -> Output {
    let form = match run["mode"].as_str() {
        Some("oem_strings") => "oem-strings",
        _ => "smbios",
    };
    common::hv_ground_truth::host_with_inputs(run, &["crosvm"], &["--form", form])
}

fn delivered(run: &Value) -> bool {
    matches!(run["mode"].as_str(), Some("smbios" | "oem_strings"))
}

/// Every passing crosvm run recorded, with its file's top level.
fn runs() -> Vec<(Value, Value)> {
    common::hv_ground_truth::runs(
        "crosvm",
        "cargo xtask hv-ground-truth --crosvm PATH --source-commit HASH",
    )
}

#[test]
fn test_the_host_still_emits_what_crosvm_carried() {
    let mut forms = Vec::new();
    for (_, run) in runs() {
        if !delivered(&run) {
            continue;
        }
        let seen = without_manifest(entry_strings(&raw_entries(&run)));
        let out = host(&run);
        assert!(
            out.status.success(),
            "{}: {}",
            label(&run),
            String::from_utf8_lossy(&out.stderr)
        );
        let now = without_manifest(strings_of_output(&String::from_utf8_lossy(&out.stdout)));
        assert!(!seen.is_empty(), "{}", label(&run));
        assert_eq!(
            now,
            seen,
            "{}: the host's strings differ from those real crosvm delivered",
            label(&run)
        );
        forms.push(run["mode"].as_str().unwrap().to_owned());
    }
    for form in ["smbios", "oem_strings"] {
        assert!(
            forms.iter().any(|f| f == form),
            "no {form} run replayed ({forms:?})"
        );
    }
}

#[test]
fn test_the_recorded_arguments_read_back_as_the_guest_got_them() {
    let mut checked = 0;
    for (_, run) in runs() {
        if !delivered(&run) {
            continue;
        }
        let printed = run["host_stdout"].as_str().unwrap();
        let first = printed.lines().next().unwrap();
        let expected_first = match run["mode"].as_str() {
            Some("oem_strings") => "--oem-strings",
            _ => "--smbios",
        };
        assert_eq!(first, expected_first, "{}", label(&run));
        let seen = entry_strings(&raw_entries(&run));
        assert_eq!(
            strings_of_output(printed),
            seen,
            "{}: crosvm's parser (as ported) does not give what the guest read",
            label(&run)
        );
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} deliveries replayed");
}

#[test]
fn test_verify_gives_the_verdict_it_gave_then() {
    let mut checked = 0;
    for (_, run) in runs() {
        let Some((now, recorded, report)) = verdicts(&run) else {
            continue;
        };
        assert_eq!(report.system.hypervisor_product.as_deref(), Some("crosvm"));
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
        assert!(!entries.is_empty(), "{}", label(&run));
        let predicted = predicted_imports(&entries, v, &[]);
        let real = recorded_imports(&run);
        assert!(!real.is_empty(), "{}", label(&run));
        assert_eq!(predicted, real, "{}", label(&run));
        checked += 1;
    }
    assert!(checked >= 1, "no systemd run replayed");
}

#[test]
fn test_what_was_refused_is_still_refused() {
    let mut checked = 0;
    for (_, run) in runs() {
        if run["mode"] != "host_only" {
            continue;
        }
        let out = host(&run);
        assert_eq!(out.status.code(), Some(2), "{}", label(&run));
        assert!(out.stdout.is_empty(), "{}", label(&run));
        checked += 1;
    }
    assert!(checked >= 1, "no refusal replayed");
}

#[test]
fn test_the_limits_are_what_crosvm_was_seen_to_carry() {
    let budget = vmcreds_host::hv::crosvm::BUDGET.max_type11_bytes.unwrap();
    let mut seen = Vec::new();
    for (_, run) in runs() {
        match run["scenario"].as_str() {
            Some("crosvm-limit-budget") => {
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
                    "the host's crosvm budget ({budget}) is above the {recorded_budget} bytes \
                     seen to arrive whole"
                );
            }
            Some("crosvm-limit-255") => {
                let entries = raw_entries(&run);
                assert_eq!(entries.len(), 1);
                assert_eq!(entries[0][0], 11);
                assert_eq!(entries[0][4], 255, "the structure's count byte");
                assert_eq!(entry_strings(&entries).len(), 255);
            }
            _ => continue,
        }
        seen.push(run["scenario"].as_str().unwrap().to_owned());
    }
    for s in ["crosvm-limit-budget", "crosvm-limit-255"] {
        assert!(
            seen.iter().any(|x| x == s),
            "no {s} run in the ground truth"
        );
    }
}

/// A report came back over crosvm's vhost-vsock to `collect --listen vsock:PORT` on the kernel
/// crosvm ran on, from a busybox guest and from real systemd, and `collect` said verified: the
/// route docs/cloud-hypervisor.md gives crosvm users was run, not inferred.
#[test]
fn test_a_report_came_back_over_vhost_vsock_to_collect() {
    let mut guests = Vec::new();
    for (_, run) in runs() {
        if run["scenario"] != "crosvm-vsock" {
            continue;
        }
        let argv = run["verdict_argv"].as_str().unwrap_or("");
        assert!(
            argv.starts_with("vmcreds-host collect --listen vsock:"),
            "{}: {argv}",
            label(&run)
        );
        assert_eq!(run["verdict_rc"], "0", "{}", label(&run));
        assert_eq!(
            run["verdict"]["verdict"]["result"],
            "verified",
            "{}",
            label(&run)
        );
        guests.push(run["generation"].as_str().unwrap().to_owned());
    }
    guests.sort();
    assert_eq!(guests, ["busybox", "trixie"], "crosvm-vsock runs recorded");
}
