//! The check itself: the prediction, what systemd imported and what was
//! expected, combined into one `vmcreds.report/1` document. No value is ever
//! copied into the report: names, sizes, digests and reasons only.

use std::collections::HashMap;
use std::path::PathBuf;

use vmcreds_common::digest::{digest, Nonce};
use vmcreds_common::manifest::{Manifest, MANIFEST_CREDENTIAL};
use vmcreds_common::predict::{Outcome, PredictedString};
use vmcreds_common::report::{
    CheckState, CredentialReport, EntryReport, Expected, Report, Smbios, SmbiosStatus, Status,
    StringCounts, UnnamedRejection, Verdict, VerdictResult, REPORT_SCHEMA,
};
use vmcreds_common::type11;

use crate::creds_dir::{self, Kind};
use crate::exit::UsageError;
use crate::observe::{CredsLocation, Observation};

/// `--expect NAME[:BYTES]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    /// The credential name.
    pub name: String,
    /// Its size, when given.
    pub bytes: Option<u64>,
}

impl std::str::FromStr for Expect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        // Names cannot contain ':', so the last ':' separates the size.
        let (name, bytes) = match s.rsplit_once(':') {
            Some((n, b)) => (
                n,
                Some(b.parse::<u64>().map_err(|_| {
                    format!(
                        "size after ':' must be a number of bytes in \"{}\"",
                        vmcreds_common::escape::escape_name(s.as_bytes())
                    )
                })?),
            ),
            None => (s, None),
        };
        vmcreds_common::name::check_systemd(name.as_bytes()).map_err(|e| {
            format!(
                "\"{}\" is not a credential name: {e}",
                vmcreds_common::escape::escape_name(name.as_bytes())
            )
        })?;
        Ok(Expect {
            name: name.to_owned(),
            bytes,
        })
    }
}

/// What the check is told to expect.
#[derive(Clone, Debug, Default)]
pub struct Expectations {
    /// `--expect` arguments.
    pub expects: Vec<Expect>,
    /// `--manifest FILE`: the path and its contents.
    pub manifest_file: Option<(PathBuf, Vec<u8>)>,
}

/// The generator string in reports.
pub fn generator() -> String {
    format!("vmcreds-guest {}", env!("CARGO_PKG_VERSION"))
}

/// The manifest in force and where it came from.
struct ManifestChoice {
    manifest: Option<Manifest>,
    problem: Option<String>,
}

fn choose_manifest(
    obs: &Observation,
    loc: &CredsLocation,
    exp: &Expectations,
) -> Result<ManifestChoice, anyhow::Error> {
    if let Some((path, bytes)) = &exp.manifest_file {
        let m = Manifest::from_json(bytes)
            .map_err(|e| UsageError(format!("--manifest {}: {e:#}", path.display())))?;
        return Ok(ManifestChoice {
            manifest: Some(m),
            problem: None,
        });
    }
    let path = loc.path(&obs.root).join(MANIFEST_CREDENTIAL);
    let (bytes, whence) = match creds_dir::read_small(&path)? {
        Some(b) => (Some(b), "imported"),
        None => (
            obs.prediction
                .imported()
                .find(|s| s.name.as_deref() == Some(MANIFEST_CREDENTIAL))
                .and_then(|s| s.value.as_ref())
                .map(|v| v.expose().to_vec()),
            "SMBIOS",
        ),
    };
    let Some(bytes) = bytes else {
        return Ok(ManifestChoice {
            manifest: None,
            problem: None,
        });
    };
    Ok(match Manifest::from_json(&bytes) {
        Ok(m) => ManifestChoice {
            manifest: Some(m),
            problem: None,
        },
        Err(e) => ManifestChoice {
            manifest: None,
            problem: Some(format!(
                "the {whence} {MANIFEST_CREDENTIAL} credential is not a valid manifest: {e}"
            )),
        },
    })
}

fn smbios_status(strings: &[&PredictedString]) -> SmbiosStatus {
    let has = |f: &dyn Fn(&Outcome) -> bool| strings.iter().any(|s| f(&s.outcome));
    if has(&|o| *o == Outcome::Imported) {
        SmbiosStatus::Importable
    } else if has(&|o| matches!(o, Outcome::Shadowed(_))) {
        SmbiosStatus::Shadowed
    } else if strings.is_empty() {
        SmbiosStatus::Absent
    } else {
        SmbiosStatus::Rejected
    }
}

struct Row<'a> {
    name: String,
    strings: Vec<&'a PredictedString>,
}

/// Builds the report. Errors: unreadable files (exit 3), a bad `--manifest` (exit 2).
pub fn analyze(
    obs: &Observation,
    loc: &CredsLocation,
    exp: &Expectations,
    strict: bool,
) -> Result<Report, anyhow::Error> {
    let choice = choose_manifest(obs, loc, exp)?;
    let nonce: Option<&Nonce> = choice.manifest.as_ref().and_then(|m| m.nonce.as_ref());
    let listing = loc.read(&obs.root, nonce)?;
    let dir_display = match loc {
        CredsLocation::System => creds_dir::SYSTEM_DIR.to_owned(),
        CredsLocation::Dir(p) => p.display().to_string(),
    };
    let p = &obs.prediction;

    // SMBIOS summary.
    let mut smbios = Smbios::default();
    let mut anomalies: Vec<String> = Vec::new();
    let stop = p.stopped_at().map(|e| e.entry);
    for (i, raw) in obs.entries.iter().enumerate() {
        let mut er = match p.entries.get(i) {
            Some(e) => EntryReport {
                entry: e.entry,
                bytes: e.bytes as u64,
                handle: e.handle,
                count: e.count,
                strings: e.strings as u64,
                error: e
                    .error
                    .as_ref()
                    .map(|x| format!("{x}: systemd stops scanning here")),
                anomalies: e.anomalies.iter().map(|a| a.to_string()).collect(),
            },
            None => {
                let parsed = type11::parse_entry(&raw.bytes);
                EntryReport {
                    entry: raw.index,
                    bytes: raw.bytes.len() as u64,
                    handle: parsed.as_ref().ok().map(|x| x.handle),
                    count: parsed.as_ref().ok().map(|x| x.count),
                    strings: parsed.as_ref().map_or(0, |x| x.strings.len() as u64),
                    error: Some(format!(
                        "not read by systemd: it stopped scanning at entry 11-{}",
                        stop.unwrap_or(0)
                    )),
                    anomalies: Vec::new(),
                }
            }
        };
        if let Some(e) = p.entries.get(i) {
            if e.cut_by_read_limit > 0 {
                er.anomalies.push(format!(
                    "systemd reads only {} bytes of an entry: the last {} bytes are cut",
                    obs.behaviour.raw_read_max, e.cut_by_read_limit
                ));
            }
        }
        if raw.over_bound {
            er.anomalies.push(format!(
                "file larger than {} bytes: vmcreds read only that much",
                crate::dmi::RAW_ENTRY_MAX
            ));
        }
        for a in &er.anomalies {
            anomalies.push(format!("11-{}: {a}", er.entry));
        }
        if let Some(e) = &er.error {
            anomalies.push(format!("11-{}: {e}", er.entry));
        }
        smbios.entries.push(er);
    }
    if obs.entries_cut {
        anomalies.push(format!(
            "more than {} bytes of Type 11 entries: vmcreds stopped reading",
            crate::dmi::RAW_TOTAL_MAX
        ));
    }
    let mut counts = StringCounts {
        total: p.strings.len() as u64,
        ..Default::default()
    };
    for s in &p.strings {
        match &s.outcome {
            Outcome::NotCredential => counts.not_credential += 1,
            Outcome::Imported => counts.imported += 1,
            Outcome::Shadowed(_) => counts.shadowed += 1,
            Outcome::Rejected(_) | Outcome::TooLarge { .. } | Outcome::OverTotal { .. } => {
                counts.rejected += 1;
                if s.name.is_none() {
                    smbios.unnamed_rejections.push(UnnamedRejection {
                        entry: s.entry,
                        string: s.string as u64,
                        reason: s.outcome.reason().unwrap_or_default(),
                    });
                }
            }
        }
    }
    smbios.strings = counts;
    smbios.table_cross_check = obs.table.cross_check.clone();
    if let Some(x) = &smbios.table_cross_check {
        if !x.agrees {
            anomalies.push(format!("table cross-check: {}", x.detail));
        }
    }

    // Rows: SMBIOS names in order, then imported files, then expectations.
    let mut rows: Vec<Row<'_>> = Vec::new();
    let mut row_of: HashMap<String, usize> = HashMap::new();
    for s in &p.strings {
        let Some(n) = &s.name else { continue };
        match row_of.get(n) {
            Some(&i) => rows[i].strings.push(s),
            None => {
                row_of.insert(n.clone(), rows.len());
                rows.push(Row {
                    name: n.clone(),
                    strings: vec![s],
                });
            }
        }
    }
    if let Some(l) = &listing {
        for f in &l.files {
            if !row_of.contains_key(&f.name) {
                row_of.insert(f.name.clone(), rows.len());
                rows.push(Row {
                    name: f.name.clone(),
                    strings: Vec::new(),
                });
            }
        }
    }
    let manifest = choice.manifest.as_ref();
    let mut extra: Vec<String> = Vec::new();
    if let Some(m) = manifest {
        extra.extend(m.credentials.iter().map(|e| e.name.as_str().to_owned()));
    }
    extra.extend(exp.expects.iter().map(|e| e.name.clone()));
    for n in extra {
        if !row_of.contains_key(&n) {
            row_of.insert(n.clone(), rows.len());
            rows.push(Row {
                name: n,
                strings: Vec::new(),
            });
        }
    }
    let has_expectations = manifest.is_some() || !exp.expects.is_empty();

    let first_failed_precondition = obs
        .facts
        .preconditions
        .iter()
        .find(|c| c.state == CheckState::Failed)
        .map(|c| format!("precondition {} failed: {}", c.check, c.detail));

    let mut credentials = Vec::new();
    for row in &rows {
        let name = row.name.as_str();
        let winner = row
            .strings
            .iter()
            .find(|s| s.outcome == Outcome::Imported)
            .or_else(|| row.strings.iter().find(|s| s.value.is_some()))
            .copied();
        let smbios_st = smbios_status(&row.strings);
        // A string cut by systemd's read limit explains a rejection or a short value.
        let cut_note = row.strings.iter().find_map(|s| {
            let e = p.entries.iter().find(|e| e.entry == s.entry)?;
            (e.cut_by_read_limit > 0 && s.string == e.strings).then(|| {
                format!(
                    "string {} of entry 11-{} was cut: systemd reads only the first {} bytes of an entry",
                    s.string, s.entry, obs.behaviour.raw_read_max
                )
            })
        });
        let first_reason = row
            .strings
            .iter()
            .find_map(|s| s.outcome.reason())
            .map(|r| match &cut_note {
                Some(c) => format!("{r}; {c}"),
                None => r,
            });
        let predicted = winner
            .and_then(|w| w.value.as_ref())
            .map(|v| (v.len() as u64, digest(v.expose(), nonce)));
        let fw = obs.fw_cfg.iter().find(|c| c.name == name);
        let in_cmdline = obs.facts.cmdline.credential_names.iter().any(|c| c == name);
        let view = listing.as_ref().map(|l| l.view(name));
        let present = view.as_ref().is_some_and(|v| v.present);
        let source = if fw.is_some()
            && obs
                .prediction
                .strings
                .iter()
                .all(|s| s.name.as_deref() != Some(name) || s.outcome != Outcome::Imported)
        {
            Some("fw_cfg")
        } else if smbios_st == SmbiosStatus::Importable {
            Some("smbios")
        } else if in_cmdline {
            Some("kernel_cmdline")
        } else if present {
            Some("unknown")
        } else {
            None
        };
        let m_entry = manifest.and_then(|m| m.get(name));
        let x_entry = exp.expects.iter().rev().find(|e| e.name == name);
        let expected = match (m_entry, x_entry) {
            (Some(m), _) => Some(Expected {
                bytes: Some(m.bytes),
                digest: Some(m.digest.clone()),
                from: "manifest".into(),
            }),
            (None, Some(x)) => Some(Expected {
                bytes: x.bytes,
                digest: None,
                from: "expect".into(),
            }),
            (None, None) => None,
        };
        // The manifest itself and the VMM's notify socket (added by the VMM or
        // `vmcreds-host --oem`, never listed in a manifest) are not "unexpected".
        let is_manifest_cred =
            name == MANIFEST_CREDENTIAL || name == crate::cmd::check::NOTIFY_CREDENTIAL;

        let (status, reason): (Status, Option<String>) = if !present {
            let not_regular =
                listing
                    .as_ref()
                    .and_then(|l| l.get(name))
                    .and_then(|f| match f.kind {
                        Kind::Other(k) => Some(format!(
                            "{dir_display}/{name} is a {k}, not a regular file (not followed)"
                        )),
                        Kind::Regular { .. } => None,
                    });
            if let Some(r) = not_regular {
                (Status::Missing, Some(r))
            } else if smbios_st == SmbiosStatus::Rejected {
                (Status::Rejected, first_reason.clone())
            } else {
                let why = if smbios_st == SmbiosStatus::Shadowed {
                    first_reason.clone()
                } else if let Some(pf) = &first_failed_precondition {
                    Some(pf.clone())
                } else if listing.is_none() {
                    Some(format!(
                        "{dir_display} does not exist: systemd imported no credentials"
                    ))
                } else if smbios_st == SmbiosStatus::Absent {
                    match p.stopped_at() {
                        Some(e) => Some(format!(
                            "not in the SMBIOS strings systemd read: entry 11-{} has a bad header, systemd stopped scanning there",
                            e.entry
                        )),
                        None if fw.is_some() => Some("offered over fw_cfg but not imported".into()),
                        None => Some("not in any SMBIOS Type 11 string, fw_cfg or the kernel command line".into()),
                    }
                } else {
                    Some(format!(
                        "systemd would import it from SMBIOS, but it is not in {dir_display} (PID 1 imports once per boot chain: was dmi-sysfs usable in the initrd?)"
                    ))
                };
                (Status::Missing, why)
            }
        } else {
            let v = view.as_ref().expect("present");
            let got_bytes = v.bytes.unwrap_or(0);
            let mut problems: Vec<String> = Vec::new();
            if let Some(e) = &expected {
                if let Some(b) = e.bytes {
                    if b != got_bytes {
                        problems.push(format!(
                            "{got_bytes} bytes arrived, {b} expected ({})",
                            e.from
                        ));
                    }
                }
                if let (Some(d), Some(got)) = (&e.digest, &v.digest) {
                    if d != got && e.bytes == Some(got_bytes) {
                        problems.push("digest differs from the manifest".into());
                    }
                }
            }
            if let Some(x) = x_entry {
                if m_entry.is_some() {
                    if let Some(b) = x.bytes {
                        if b != got_bytes {
                            problems.push(format!(
                                "{got_bytes} bytes arrived, {b} expected (--expect)"
                            ));
                        }
                    }
                }
            }
            if source == Some("smbios") {
                if let Some((pb, pd)) = &predicted {
                    if *pb != got_bytes {
                        problems.push(format!(
                            "{got_bytes} bytes arrived, the SMBIOS string decodes to {pb}"
                        ));
                    } else if v.digest.as_ref() != Some(pd) {
                        problems.push("digest differs from the SMBIOS string's".into());
                    }
                }
            }
            let expected_empty = expected.as_ref().and_then(|e| e.bytes) == Some(0)
                || x_entry.and_then(|x| x.bytes) == Some(0);
            if got_bytes == 0 && !expected_empty {
                problems.push(format!(
                    "arrived empty (0 bytes); pass --expect {name}:0 if that is intended"
                ));
            }
            if !problems.is_empty() {
                // Say why another value won, when one did, or why it is short.
                if smbios_st == SmbiosStatus::Shadowed {
                    problems.extend(first_reason.clone());
                } else {
                    problems.extend(cut_note.clone());
                }
                (Status::Mismatch, Some(problems.join("; ")))
            } else if expected.is_none() && has_expectations && !is_manifest_cred {
                (Status::Unexpected, Some("present but not expected".into()))
            } else if smbios_st == SmbiosStatus::Shadowed {
                (Status::Ok, first_reason.clone())
            } else {
                (Status::Ok, None)
            }
        };

        credentials.push(CredentialReport {
            name: row.name.clone(),
            bytes: predicted.as_ref().map(|(b, _)| *b),
            digest: predicted.map(|(_, d)| d),
            encoding: winner.and_then(|w| w.encoding),
            source: source.map(str::to_owned),
            smbios: smbios_st,
            systemd: view,
            expected,
            status,
            reason,
        });
    }

    // Verdict.
    let failing: Vec<&CredentialReport> = credentials
        .iter()
        .filter(|c| {
            matches!(
                c.status,
                Status::Missing | Status::Mismatch | Status::Rejected
            )
        })
        .collect();
    let ok = credentials
        .iter()
        .filter(|c| c.status == Status::Ok)
        .count() as u64;
    let mut problems: Vec<String> = failing
        .iter()
        .map(|c| format!("{} {}", c.name, format!("{:?}", c.status).to_lowercase()))
        .collect();
    if !smbios.unnamed_rejections.is_empty() {
        problems.push(format!(
            "{} credential string(s) without '=' rejected",
            smbios.unnamed_rejections.len()
        ));
    }
    if let Some(pr) = &choice.problem {
        problems.push(pr.clone());
    }
    if strict {
        if !has_expectations {
            problems.push("strict: nothing to verify against (no manifest, no --expect)".into());
        }
        let unexpected: Vec<&str> = credentials
            .iter()
            .filter(|c| c.status == Status::Unexpected)
            .map(|c| c.name.as_str())
            .collect();
        if !unexpected.is_empty() {
            problems.push(format!("strict: unexpected {}", unexpected.join(", ")));
        }
        if !anomalies.is_empty() {
            problems.push(format!(
                "strict: {} anomaly(ies): {}",
                anomalies.len(),
                anomalies.join("; ")
            ));
        }
        let weak: Vec<String> = credentials
            .iter()
            .filter_map(|c| {
                let s = c.systemd.as_ref()?.secure.as_deref()?;
                (s != "secure").then(|| format!("{} {s}", c.name))
            })
            .collect();
        if !weak.is_empty() {
            problems.push(format!("strict: storage not secure: {}", weak.join(", ")));
        }
    }
    let failed = failing.len() as u64 + smbios.unnamed_rejections.len() as u64;
    let total = credentials.len();
    let result = if !problems.is_empty() {
        VerdictResult::Failed
    } else if has_expectations {
        VerdictResult::Verified
    } else {
        VerdictResult::Unverified
    };
    let mut summary = match result {
        VerdictResult::Verified => {
            let unexpected = credentials
                .iter()
                .filter(|c| c.status == Status::Unexpected)
                .count();
            if unexpected > 0 {
                format!("{ok}/{total} credentials verified, {unexpected} unexpected")
            } else {
                format!("{ok}/{total} credentials verified")
            }
        }
        VerdictResult::Unverified => format!(
            "{ok}/{total} credentials arrived as SMBIOS predicts; nothing to verify against"
        ),
        VerdictResult::Failed => format!("{ok}/{total} ok; failing: {}", problems.join("; ")),
    };
    if summary.len() > 1000 {
        let mut cut = 1000;
        while !summary.is_char_boundary(cut) {
            cut -= 1;
        }
        summary.truncate(cut);
        summary.push('…');
    }

    let mut system = obs.table.system.clone();
    system.systemd_version = obs.systemd.version;
    system.predicted_for_systemd = obs.systemd.version;

    Ok(Report {
        schema: REPORT_SCHEMA.into(),
        generator: generator(),
        nonce_id: nonce.map(Nonce::id),
        system,
        preconditions: obs.facts.preconditions.clone(),
        smbios,
        credentials,
        verdict: Verdict {
            result,
            ok,
            failed,
            summary,
            reasons: problems,
        },
    })
}

/// Lines for people above the table: the system, failed or unknown
/// preconditions, anomalies. Never a value.
pub fn preamble(report: &Report, listing_dir: &str) -> String {
    let s = &report.system;
    let c = &report.smbios.strings;
    let mut out = format!(
        "vmcreds-guest: systemd {}, SMBIOS {} ({}), {} / {}, {} Type 11 entr{}, {} string(s): {} imported, {} rejected, {} shadowed, {} not credentials; reading {listing_dir}\n",
        s.systemd_version.map_or("unknown (modelling the newest)".into(), |v| v.to_string()),
        s.smbios_version.as_deref().unwrap_or("?"),
        s.entry_point.as_deref().unwrap_or("no entry point"),
        s.hypervisor_vendor.as_deref().unwrap_or("?"),
        s.hypervisor_product.as_deref().unwrap_or("?"),
        report.smbios.entries.len(),
        if report.smbios.entries.len() == 1 { "y" } else { "ies" },
        c.total,
        c.imported,
        c.rejected,
        c.shadowed,
        c.not_credential
    );
    for p in &report.preconditions {
        if p.state != CheckState::Ok {
            out.push_str(&format!(
                "precondition {} {}: {}\n",
                p.check,
                format!("{:?}", p.state).to_lowercase(),
                p.detail
            ));
        }
    }
    for e in &report.smbios.entries {
        if let Some(err) = &e.error {
            out.push_str(&format!("entry 11-{}: {err}\n", e.entry));
        }
        for a in &e.anomalies {
            out.push_str(&format!("entry 11-{}: {a}\n", e.entry));
        }
    }
    for u in &report.smbios.unnamed_rejections {
        out.push_str(&format!(
            "entry 11-{} string {}: rejected: {}\n",
            u.entry, u.string, u.reason
        ));
    }
    if let Some(x) = &report.smbios.table_cross_check {
        if !x.agrees {
            out.push_str(&format!("table cross-check disagrees: {}\n", x.detail));
        }
    }
    out
}

/// The nonce of the manifest in force, if any (for `list`).
pub fn manifest_nonce(
    obs: &Observation,
    loc: &CredsLocation,
    exp: &Expectations,
) -> anyhow::Result<Option<Nonce>> {
    Ok(choose_manifest(obs, loc, exp)?
        .manifest
        .and_then(|m| m.nonce))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tree(
        entries: &[Vec<u8>],
        table: &[u8],
        imported: &[(String, Vec<u8>)],
    ) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let w = |rel: &str, b: &[u8]| {
            let p = d.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b).unwrap();
        };
        for (i, e) in entries.iter().enumerate() {
            w(&format!("sys/firmware/dmi/entries/11-{i}/raw"), e);
        }
        w("sys/firmware/dmi/tables/DMI", table);
        w(
            "sys/firmware/dmi/tables/smbios_entry_point",
            &crate::dmi::tests::ep64(table.len() as u32),
        );
        std::fs::create_dir_all(d.path().join("run/credentials/@system")).unwrap();
        for (n, v) in imported {
            w(&format!("run/credentials/@system/{n}"), v);
        }
        d
    }

    fn oem_string() -> impl Strategy<Value = Vec<u8>> {
        (
            prop_oneof![
                Just(&b"io.systemd.credential:"[..]),
                Just(&b"io.systemd.credential.binary:"[..]),
                Just(&b"io.systemd.credential:vmcreds.manifest="[..]),
                Just(&b""[..]),
            ],
            proptest::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(p, rest)| {
                let mut s = p.to_vec();
                s.extend_from_slice(&rest);
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Arbitrary raw entries, tables and imported files through the whole
        /// check (read, predict, cross-check, analyze, render, serialise):
        /// never a panic, always a parseable report.
        #[test]
        fn fuzz_whole_check(
            raw in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..3),
            strings in proptest::collection::vec(oem_string(), 0..6),
            count in any::<u8>(),
            table in proptest::collection::vec(any::<u8>(), 0..200),
            use_raw in any::<bool>(),
            imported in proptest::collection::vec(("[A-Za-z][A-Za-z.]{0,7}", proptest::collection::vec(any::<u8>(), 0..16)), 0..3),
            strict in any::<bool>(),
        ) {
            let mut entries = if use_raw { raw } else { Vec::new() };
            let refs: Vec<&[u8]> = strings.iter().map(|s| s.as_slice()).collect();
            let mut built = vmcreds_common::type11::build(0x100, &refs);
            built[4] = count;
            entries.push(built.clone());
            let mut t = crate::dmi::tests::type1(b"QEMU", b"pc");
            t.extend_from_slice(if use_raw { &table } else { &built });
            let d = tree(&entries, &t, &imported);
            let root = crate::sysfs::Root::new(d.path());
            let obs = crate::observe::observe(&root, None).unwrap();
            let r = analyze(&obs, &CredsLocation::System, &Expectations::default(), strict).unwrap();
            let _ = vmcreds_common::report::render_table(&r);
            let _ = preamble(&r, "x");
            let back = vmcreds_common::report::Report::from_json(&crate::dest::wire(&r)).unwrap();
            prop_assert_eq!(back, r);
        }
    }

    #[test]
    fn test_expect_parsing() {
        assert_eq!(
            "API_KEY:44".parse::<Expect>(),
            Ok(Expect {
                name: "API_KEY".into(),
                bytes: Some(44)
            })
        );
        assert_eq!(
            "A".parse::<Expect>(),
            Ok(Expect {
                name: "A".into(),
                bytes: None
            })
        );
        assert!("a/b".parse::<Expect>().is_err());
        assert!("A:x".parse::<Expect>().is_err());
        assert!(":1".parse::<Expect>().is_err());
    }
}
