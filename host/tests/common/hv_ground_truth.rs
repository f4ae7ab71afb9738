//! Reading `xtask/ground-truth/<hypervisor>-*.json`, the recorded live runs of `cargo xtask
//! hv-ground-truth`, for the tests that replay them through today's code.

use std::path::{Path, PathBuf};

use serde_json::Value;
use vmcreds_common::base64::{decode_systemd, Alphabet};

/// The start of the manifest's OEM string (its nonce is new each run).
pub const MANIFEST_PREFIX: &[u8] = b"io.systemd.credential.binary:vmcreds.manifest=";

/// The recordings of `hypervisor` (`cloud-hypervisor`, `crosvm`), sorted; `record` says how
/// to make one where there is none.
pub fn files(hypervisor: &str, record: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../xtask/ground-truth");
    let prefix = format!("{hypervisor}-");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(&prefix) && n.ends_with(".json")
        })
        .collect();
    v.sort();
    assert!(
        !v.is_empty(),
        "no {hypervisor} ground truth in {}: run `{record}` where a {hypervisor} binary is",
        dir.display()
    );
    v
}

/// Every run of every recording of `hypervisor` that passed, with its file's top level.
/// Each file must name the hypervisor and the upstream commit its binary was built from.
pub fn runs(hypervisor: &str, record: &str) -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    for f in files(hypervisor, record) {
        let doc: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        let at = f.display();
        assert_eq!(doc["schema"], "vmcreds.hv-ground-truth/1", "{at}");
        assert_eq!(doc["hypervisor"], hypervisor, "{at}");
        assert!(
            doc["source_commit"].as_str().is_some_and(|c| c.len() >= 7),
            "{at}: no source commit recorded"
        );
        for r in doc["runs"].as_array().unwrap() {
            if r["outcome"] == "pass" {
                out.push((doc.clone(), r.clone()));
            }
        }
    }
    assert!(!out.is_empty(), "no passing {hypervisor} run recorded");
    out
}

/// `scenario [generation]`, for messages.
pub fn label(run: &Value) -> String {
    format!("{} [{}]", run["scenario"], run["generation"])
}

/// Standard base64 from a recording.
pub fn unbase64(s: &str) -> Vec<u8> {
    decode_systemd(s.as_bytes(), Alphabet::Standard, 0)
        .expect("fixture base64")
        .expose()
        .to_vec()
}

/// Lower-case hex from a recording.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("fixture hex"))
        .collect()
}

/// The raw SMBIOS Type 11 entries the guest read.
pub fn raw_entries(run: &Value) -> Vec<Vec<u8>> {
    run["guest"]["type11_raw"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| unbase64(e["base64"].as_str().unwrap()))
        .collect()
}

/// The strings of raw Type 11 entries, in order.
pub fn entry_strings(raw: &[Vec<u8>]) -> Vec<Vec<u8>> {
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

/// `v` without the manifest's string.
pub fn without_manifest(v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.into_iter()
        .filter(|s| !s.starts_with(MANIFEST_PREFIX))
        .collect()
}

/// `vmcreds-host ARGS…` with the run's recorded inputs (sources, then host flags), then
/// `trailing`; `--load`ed values are written to a private `$CREDENTIALS_DIRECTORY` first.
pub fn host_with_inputs(run: &Value, args: &[&str], trailing: &[&str]) -> std::process::Output {
    let t = super::TestDir::new();
    let creds = t.mkdir("creds");
    let mut argv: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    for s in run["inputs"]["sources"].as_array().unwrap() {
        if let Some(name) = s["load"].as_str() {
            let file = s["file"].as_str().unwrap();
            std::fs::write(creds.join(file), unbase64(s["base64"].as_str().unwrap())).unwrap();
            argv.extend(["--load".into(), format!("{name}:{file}")]);
        } else if let Some(v) = s["set"].as_str() {
            argv.extend(["--set".into(), v.into()]);
        } else if let Some(v) = s["oem"].as_str() {
            argv.extend(["--oem".into(), v.into()]);
        }
    }
    for f in run["inputs"]["host_flags"].as_array().unwrap() {
        argv.push(f.as_str().unwrap().into());
    }
    argv.extend(trailing.iter().map(|a| a.to_string()));
    std::process::Command::new(env!("CARGO_BIN_EXE_vmcreds-host"))
        .args(&argv)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap()
}

/// A credential as `(name, bytes, sha256 hex)`.
pub type Imported = (Vec<u8>, u64, String);

/// What the predictor imports from `entries` for systemd `version`, given the credentials
/// that came before SMBIOS (`prior`), sorted.
pub fn predicted_imports(
    entries: &[Vec<u8>],
    version: u32,
    prior: &[vmcreds_common::predict::PriorCredential],
) -> Vec<Imported> {
    use vmcreds_common::systemd::Behaviour;
    let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    let p = vmcreds_common::predict::predict(&refs, &Behaviour::of(version), prior);
    let mut v: Vec<Imported> = p
        .imported()
        .map(|s| {
            let val = s.value.as_ref().unwrap();
            (
                s.name.clone().unwrap().into_bytes(),
                val.len() as u64,
                vmcreds_common::digest::digest(val.expose(), None).hex,
            )
        })
        .collect();
    v.sort();
    v
}

/// What the guest's systemd imported into `/run/credentials/@system` in the recorded run,
/// sorted.
pub fn recorded_imports(run: &Value) -> Vec<Imported> {
    let mut v: Vec<Imported> = run["guest"]["imported"]
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
        .collect();
    v.sort();
    v
}

/// The verdict `verify` gives today for the run's recorded manifest and report, the verdict
/// recorded then, and the report; `None` for a run that recorded no verdict.
pub fn verdicts(
    run: &Value,
) -> Option<(
    vmcreds_common::verify::HostVerdict,
    vmcreds_common::verify::HostVerdict,
    vmcreds_common::report::Report,
)> {
    use vmcreds_common::{manifest::Manifest, report::Report, verify};
    if run["manifest"].is_null() || run["report"].is_null() || run["verdict"].is_null() {
        return None;
    }
    let manifest = Manifest::from_json(run["manifest"].to_string().as_bytes()).unwrap();
    let report = Report::from_json(run["report"].to_string().as_bytes()).unwrap();
    let recorded = serde_json::from_value(run["verdict"]["verdict"].clone())
        .unwrap_or_else(|e| panic!("{} verdict: {e}", label(run)));
    let now = verify::verify(&manifest, &report).unwrap();
    Some((now, recorded, report))
}
