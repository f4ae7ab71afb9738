//! The guest's whole decision on hostile input: up to three raw `11-N/raw`
//! entries (as the first bytes say how to split the input), a systemd
//! version, and imported files, through `vmcreds_common::check::evaluate`,
//! the renderers and the JSON round trip. Never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vmcreds_common::check::{
    evaluate, predict_import, Expectations, ImportedFile, ImportedKind, ImportedListing,
    Observation, RawEntry, Strictness, TableReading,
};
use vmcreds_common::digest::digest;
use vmcreds_common::report::{Report, Storage};
use vmcreds_common::systemd::SystemdVersion;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let version = [252, 254, 257, 262][usize::from(data[0] % 4)];
    let strict = data[1] & 1 == 1;
    let cuts = (usize::from(data[2]), usize::from(data[3]));
    let rest = &data[4..];
    let a = cuts.0.min(rest.len());
    let b = (a + cuts.1).min(rest.len());
    let entries: Vec<RawEntry> = [&rest[..a], &rest[a..b], &rest[b..]]
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.is_empty())
        .map(|(i, e)| RawEntry {
            index: i as u32,
            bytes: e.to_vec(),
            cut_at: None,
        })
        .collect();
    let systemd = SystemdVersion {
        version: Some(version),
        detail: "fuzz".into(),
    };
    let prediction = predict_import(&entries, &systemd.behaviour(), &[]);
    // systemd imported what the prediction says, byte for byte.
    let mut files: Vec<ImportedFile> = prediction
        .imported()
        .filter_map(|s| {
            let v = s.value.as_ref()?;
            Some(ImportedFile {
                name: s.name.clone()?,
                kind: ImportedKind::Regular {
                    bytes: v.len() as u64,
                    mode: 0o400,
                    digest: Some(digest(v.expose(), None)),
                },
            })
        })
        .collect();
    files.sort_by(|x, y| x.name.cmp(&y.name));
    files.dedup_by(|x, y| x.name == y.name);
    let obs = Observation {
        reader: "fuzz".into(),
        systemd,
        entries,
        entries_cut_at: None,
        table: TableReading::default(),
        preconditions: Vec::new(),
        cmdline_credentials: Vec::new(),
        fw_cfg: Vec::new(),
        cvm: Default::default(),
        boot: Default::default(),
        imported: Some(ImportedListing {
            files,
            storage: Storage::Secure,
            storage_detail: "fuzz".into(),
        }),
        imported_dir: "/run/credentials/@system".into(),
        nonce: None,
        prediction,
    };
    let strictness = if strict {
        Strictness::Strict
    } else {
        Strictness::Lenient
    };
    let r = evaluate(&obs, &Expectations::default(), strictness);
    let _ = vmcreds_common::render::report_table(&r);
    let _ = vmcreds_common::render::preamble(&r, &obs.imported_dir);
    assert_eq!(Report::from_json(r.to_json().as_bytes()).unwrap(), r);
    // What systemd imported as predicted is never called missing or a mismatch.
    for c in &r.credentials {
        assert!(
            !matches!(
                c.status,
                vmcreds_common::report::Status::Missing | vmcreds_common::report::Status::Mismatch
            ) || c.bytes == Some(0),
            "{} {:?}: {:?}",
            c.name,
            c.status,
            c.reason
        );
    }
});
