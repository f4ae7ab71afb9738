//! One row per credential name, and its classification: where systemd got
//! it, what was expected of it, and its status with the reason.

use crate::digest::{digest, Digest};
use crate::manifest::{ManifestEntry, MANIFEST_CREDENTIAL};
use crate::predict::{Outcome, PredictedString};
use crate::report::{
    CheckState, CredentialReport, CredentialSource, ExpectationSource, Expected, SmbiosStatus,
    Status, SystemdView,
};

use super::boot::Assessment;
use super::{Expect, Expectations, ImportedFile, ImportedKind, Observation, NOTIFY_CREDENTIAL};

/// One credential name, the SMBIOS strings that carry it, and where else
/// it is named: the join of every source by name, made once so that no row
/// looks its name up in a list.
#[derive(Debug)]
pub struct Row<'a> {
    /// The name (escaped when it came from a refused string).
    pub name: String,
    /// Its strings, in systemd's order.
    pub strings: Vec<&'a PredictedString>,
    /// Its entry in the imported directory (an index into its files).
    pub file: Option<usize>,
    /// Its manifest entry (an index into the manifest's credentials).
    pub manifest: Option<usize>,
    /// The last `--expect` of it (an index into the expects).
    pub expect: Option<usize>,
    /// The index in the prediction's strings of the first string of it that
    /// systemd imports.
    pub first_imported: Option<usize>,
}

/// Where a name was seen (each an index into its list).
#[derive(Clone, Copy)]
enum Seen {
    String(usize),
    File(usize),
    Manifest(usize),
    Expect(usize),
}

/// The rows: SMBIOS names in order, then imported files, then the
/// manifest's and `--expect`'s names; each name once.
///
/// Every name is listed once per place it appears, in that order, then
/// grouped by a stable sort on the name (O(n log n) whatever the names:
/// they come from SMBIOS and the directory, which the other side of the
/// trust boundary chooses, so no hash table an adversary could flood).
pub fn rows<'a>(obs: &'a Observation, exp: &Expectations) -> Vec<Row<'a>> {
    let files = obs.imported.as_ref().map_or(&[][..], |l| &l.files[..]);
    let manifest = exp.manifest().map_or(&[][..], |m| &m.credentials[..]);
    let mut seen: Vec<(&str, u32, Seen)> = Vec::with_capacity(
        obs.prediction.strings.len() + files.len() + manifest.len() + exp.expects.len(),
    );
    let names = obs
        .prediction
        .strings
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((s.name.as_deref()?, Seen::String(i))))
        .chain(
            files
                .iter()
                .enumerate()
                .map(|(i, f)| (f.name.as_str(), Seen::File(i))),
        )
        .chain(
            manifest
                .iter()
                .enumerate()
                .map(|(i, e)| (e.name.as_str(), Seen::Manifest(i))),
        )
        .chain(
            exp.expects
                .iter()
                .enumerate()
                .map(|(i, x)| (x.name.as_str(), Seen::Expect(i))),
        );
    for (order, (name, at)) in names.enumerate() {
        seen.push((name, order as u32, at));
    }
    // Stable: a name's places stay in the order seen.
    super::sort_stable_by(&mut seen, |a, b| super::cmp_names(a.0, b.0));
    // Each group becomes a row, put where its name was first seen.
    let mut slots: Vec<Option<Row<'a>>> = Vec::new();
    slots.resize_with(seen.len(), || None);
    for group in seen.chunk_by(|a, b| a.0 == b.0) {
        let mut row = Row {
            name: group[0].0.to_owned(),
            strings: Vec::new(),
            file: None,
            manifest: None,
            expect: None,
            first_imported: None,
        };
        for &(_, _, at) in group {
            match at {
                Seen::String(i) => {
                    let s = &obs.prediction.strings[i];
                    if s.outcome == Outcome::Imported && row.first_imported.is_none() {
                        row.first_imported = Some(i);
                    }
                    row.strings.push(s);
                }
                Seen::File(i) => {
                    row.file.get_or_insert(i);
                }
                Seen::Manifest(i) => {
                    row.manifest.get_or_insert(i);
                }
                Seen::Expect(i) => row.expect = Some(i),
            }
        }
        slots[group[0].1 as usize] = Some(row);
    }
    slots.into_iter().flatten().collect()
}

/// What SMBIOS says about a row.
struct SmbiosFacts<'a> {
    /// The string systemd imports, else the first that decoded.
    winner: Option<&'a PredictedString>,
    status: SmbiosStatus,
    /// The first reason any of its strings was not imported (with the
    /// read-limit note, when systemd's read cut one of them).
    first_reason: Option<String>,
    /// systemd's read limit cut the last string of an entry that is this row's.
    cut_note: Option<String>,
    /// Size and digest of the winner's value.
    predicted: Option<(u64, Digest)>,
}

fn smbios_status(strings: &[&PredictedString]) -> SmbiosStatus {
    let has = |f: &dyn Fn(&Outcome) -> bool| strings.iter().any(|s| f(&s.outcome));
    if has(&|o| *o == Outcome::Imported) {
        SmbiosStatus::Importable
    } else if has(&|o| matches!(o, Outcome::Shadowed(_))) {
        SmbiosStatus::Shadowed
    } else if strings.is_empty() {
        SmbiosStatus::Absent
    } else if strings
        .iter()
        .all(|s| matches!(s.outcome, Outcome::NotRead { .. }))
    {
        SmbiosStatus::NotRead
    } else {
        SmbiosStatus::Rejected
    }
}

fn smbios_facts<'a>(row: &Row<'a>, obs: &Observation) -> SmbiosFacts<'a> {
    let winner = row
        .strings
        .iter()
        .find(|s| s.outcome == Outcome::Imported)
        .or_else(|| row.strings.iter().find(|s| s.value.is_some()))
        .copied();
    let raw_read_max = obs.behaviour().raw_read_max;
    let cut_note = row.strings.iter().find_map(|s| {
        let e = obs.prediction.entries.iter().find(|e| e.entry == s.entry)?;
        (e.cut_by_read_limit > 0 && s.string == e.strings).then(|| {
            format!(
                "string {} of entry 11-{} was cut: systemd reads only the first {raw_read_max} bytes of an entry",
                s.string, s.entry
            )
        })
    });
    let first_reason =
        row.strings
            .iter()
            .find_map(|s| s.outcome.reason())
            .map(|r| match &cut_note {
                Some(c) => format!("{r}; {c}"),
                None => r,
            });
    let predicted = winner
        .and_then(|w| w.value.as_ref())
        .map(|v| (v.len() as u64, digest(v.expose(), obs.nonce.as_ref())));
    SmbiosFacts {
        winner,
        status: smbios_status(&row.strings),
        first_reason,
        cut_note,
        predicted,
    }
}

/// Where systemd got `name`: fw_cfg wins when systemd reads fw_cfg here and
/// SMBIOS imports no string of that name; then SMBIOS, the kernel command
/// line, what the kernel log shows the initrd received (`initrd_cpio`,
/// `initrd`, [`super::boot`]), or `unknown` for a file nothing explains.
fn source(
    name: &str,
    facts: &SmbiosFacts<'_>,
    obs: &Observation,
    present: bool,
    boot: &Assessment,
) -> Option<CredentialSource> {
    // The row's strings are every string of this name, so this is "SMBIOS
    // imports one of them" without a scan of every string per row.
    let smbios_imports = facts.status == SmbiosStatus::Importable;
    if obs.gate().fw_cfg && obs.fw_cfg.iter().any(|c| c.name == name) && !smbios_imports {
        Some(CredentialSource::FwCfg)
    } else if facts.status == SmbiosStatus::Importable {
        Some(CredentialSource::Smbios)
    } else if obs.cmdline_credentials.iter().any(|c| c == name) {
        Some(CredentialSource::KernelCmdline)
    } else if !present {
        None
    } else {
        Some(boot.source(name).unwrap_or(CredentialSource::Unknown))
    }
}

/// What was expected of a name: the manifest's entry wins over `--expect`.
fn expected(manifest: Option<&ManifestEntry>, expect: Option<&Expect>) -> Option<Expected> {
    match (manifest, expect) {
        (Some(m), _) => Some(Expected {
            bytes: Some(m.bytes),
            digest: Some(m.digest.clone()),
            from: ExpectationSource::Manifest,
        }),
        (None, Some(x)) => Some(Expected {
            bytes: x.bytes,
            digest: None,
            from: ExpectationSource::Expect,
        }),
        (None, None) => None,
    }
}

/// Everything the status of one row depends on.
struct Ctx<'r, 'a> {
    row: &'r Row<'a>,
    file: Option<&'r ImportedFile>,
    facts: &'r SmbiosFacts<'a>,
    obs: &'r Observation,
    exp: &'r Expectations,
    source: Option<CredentialSource>,
    expected: Option<&'r Expected>,
    manifest_entry: Option<&'r ManifestEntry>,
    expect: Option<&'r Expect>,
    boot: &'r Assessment,
}

/// Status and reason of a name not in the imported directory.
fn absent(c: &Ctx<'_, '_>) -> (Status, Option<String>) {
    let name = c.row.name.as_str();
    let dir = c.obs.imported_dir.as_str();
    let listing = c.obs.imported.as_ref();
    if let Some(ImportedKind::Other(kind)) = c.file.map(|f| &f.kind) {
        return (
            Status::Missing,
            Some(format!(
                "{dir}/{name} is a {kind}, not a regular file (not followed)"
            )),
        );
    }
    match c.facts.status {
        SmbiosStatus::Rejected => return (Status::Rejected, c.facts.first_reason.clone()),
        SmbiosStatus::NotRead => return (Status::NotRead, c.facts.first_reason.clone()),
        _ => {}
    }
    let failed_precondition = c
        .obs
        .preconditions
        .iter()
        .find(|p| p.state == CheckState::Failed);
    let why = if c.facts.status == SmbiosStatus::Shadowed {
        c.facts.first_reason.clone()
    } else if let Some((_, reason)) = c.boot.cause(name) {
        Some(reason.to_owned())
    } else if let Some(p) = failed_precondition {
        Some(format!("precondition {} failed: {}", p.check, p.detail))
    } else if listing.is_none() {
        Some(format!(
            "{dir} does not exist: systemd imported no credentials"
        ))
    } else if c.facts.status == SmbiosStatus::Absent {
        Some(match c.obs.prediction.stopped_at() {
            Some(e) => format!(
                "not in the SMBIOS strings systemd read: entry 11-{} has a bad header, systemd stopped scanning there",
                e.entry
            ),
            None if c.obs.fw_cfg.iter().any(|f| f.name == name) && !c.obs.gate().fw_cfg => {
                format!(
                    "offered over fw_cfg, which systemd{} does not read in a confidential VM",
                    c.obs.systemd.version.map(|v| format!(" {v}")).unwrap_or_default()
                )
            }
            None if c.obs.fw_cfg.iter().any(|f| f.name == name) => {
                "offered over fw_cfg but not imported".into()
            }
            None => "not in any SMBIOS Type 11 string, fw_cfg or the kernel command line".into(),
        })
    } else {
        Some(format!(
            "systemd would import it from SMBIOS, but it is not in {dir} (PID 1 imports once per boot chain: was dmi-sysfs usable in the initrd?)"
        ))
    };
    (Status::Missing, why)
}

/// Status and reason of a name systemd imported (`view` is its file).
fn present(c: &Ctx<'_, '_>, view: &SystemdView) -> (Status, Option<String>) {
    let name = c.row.name.as_str();
    let got = view.bytes.unwrap_or(0);
    let mut problems: Vec<String> = Vec::new();
    if let Some(e) = c.expected {
        if let Some(b) = e.bytes.filter(|&b| b != got) {
            problems.push(format!("{got} bytes arrived, {b} expected ({})", e.from));
        }
        if let (Some(d), Some(g)) = (&e.digest, &view.digest) {
            if d != g && e.bytes == Some(got) {
                problems.push("digest differs from the manifest".into());
            }
        }
    }
    // --expect's size is checked even when the manifest is what is expected.
    if let (Some(_), Some(b)) = (c.manifest_entry, c.expect.and_then(|x| x.bytes)) {
        if b != got {
            problems.push(format!("{got} bytes arrived, {b} expected (--expect)"));
        }
    }
    if c.source == Some(CredentialSource::Smbios) {
        if let Some((pb, pd)) = &c.facts.predicted {
            if *pb != got {
                problems.push(format!(
                    "{got} bytes arrived, the SMBIOS string decodes to {pb}"
                ));
            } else if view.digest.as_ref() != Some(pd) {
                problems.push("digest differs from the SMBIOS string's".into());
            }
        }
    }
    if got > crate::limits::CREDENTIAL_SIZE_MAX as u64 {
        // observe does not even read such a file: it has no digest.
        problems.push(format!(
            "{got} bytes, over systemd's limit of {} per credential: systemd cannot have \
             imported this file, something else wrote it",
            crate::limits::CREDENTIAL_SIZE_MAX
        ));
    }
    let empty_expected =
        c.expected.and_then(|e| e.bytes) == Some(0) || c.expect.and_then(|x| x.bytes) == Some(0);
    if got == 0 && !empty_expected {
        problems.push(format!(
            "arrived empty (0 bytes); pass --expect {name}:0 if that is intended"
        ));
    }
    let shadowed = c.facts.status == SmbiosStatus::Shadowed;
    if !problems.is_empty() {
        // Say why another value won, when one did, or why it is short.
        problems.extend(if shadowed {
            c.facts.first_reason.clone()
        } else {
            c.facts.cut_note.clone()
        });
        return (Status::Mismatch, Some(problems.join("; ")));
    }
    // The manifest itself and the VMM's notify socket are never "unexpected".
    let infrastructure = name == MANIFEST_CREDENTIAL || name == NOTIFY_CREDENTIAL;
    if c.expected.is_none() && c.exp.any() && !infrastructure {
        (Status::Unexpected, Some("present but not expected".into()))
    } else if shadowed {
        (Status::Ok, c.facts.first_reason.clone())
    } else {
        (Status::Ok, None)
    }
}

/// The report row of `row`.
pub fn classify(row: &Row<'_>, obs: &Observation, exp: &Expectations) -> CredentialReport {
    classify_with(row, obs, exp, &super::boot::assess(obs))
}

/// [`classify`] with the boot chain already assessed (once per check).
pub fn classify_with(
    row: &Row<'_>,
    obs: &Observation,
    exp: &Expectations,
    boot: &Assessment,
) -> CredentialReport {
    let name = row.name.as_str();
    let facts = smbios_facts(row, obs);
    let listing = obs.imported.as_ref();
    let file = row.file.and_then(|i| listing?.files.get(i));
    let view = listing.map(|l| l.view_of(file));
    let is_present = view.as_ref().is_some_and(|v| v.present);
    let manifest_entry = row
        .manifest
        .and_then(|i| exp.manifest()?.credentials.get(i));
    let expect = row.expect.and_then(|i| exp.expects.get(i));
    let expected = expected(manifest_entry, expect);
    let source = source(name, &facts, obs, is_present, boot);
    let ctx = Ctx {
        row,
        file,
        facts: &facts,
        obs,
        exp,
        source,
        expected: expected.as_ref(),
        manifest_entry,
        expect,
        boot,
    };
    let (status, reason) = match view.as_ref().filter(|v| v.present) {
        Some(v) => present(&ctx, v),
        None => absent(&ctx),
    };
    let (bytes, digest) = match facts.predicted {
        Some((b, d)) => (Some(b), Some(d)),
        None => (None, None),
    };
    CredentialReport {
        name: row.name.clone(),
        bytes,
        digest,
        encoding: facts.winner.and_then(|w| w.encoding),
        source,
        smbios: facts.status,
        systemd: view,
        expected,
        status,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{imported, imported_mode, repredict, text, vm, with_entries};
    use super::super::{FwCfgCredential, ImportedFile, ManifestSource};
    use super::*;
    use crate::digest::Nonce;
    use crate::file_kind::FileKind;
    use crate::manifest::Manifest;
    use crate::name::{CredentialName, NameRule};
    use crate::oem::Encoding;
    use crate::report::{Precondition, PreconditionId};

    fn one(obs: &Observation, exp: &Expectations, name: &str) -> CredentialReport {
        let rows = rows(obs, exp);
        let row = rows
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no row {name}"));
        classify(row, obs, exp)
    }

    fn expect(list: &[&str]) -> Expectations {
        Expectations {
            expects: list.iter().map(|s| s.parse().unwrap()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn test_row_order_and_uniqueness() {
        let o = with_entries(
            vm(),
            &[&[&text("B", b"1"), &text("A", b"2"), &text("B", b"3")]],
        );
        let o = imported(imported(o, "A", b"2"), "Z", b"z");
        let exp = expect(&["Y", "A"]);
        let names: Vec<String> = rows(&o, &exp).into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["B", "A", "Z", "Y"]);
    }

    /// Each row knows, without a lookup, its file, its manifest entry, its
    /// last `--expect` and its first string systemd imports.
    #[test]
    fn test_rows_join_every_source() {
        let o = with_entries(
            vm(),
            &[&[&text("B", b"1"), &text("A", b"2"), &text("B", b"3")]],
        );
        let o = imported(imported(o, "A", b"2"), "Z", b"z");
        let m = Manifest::from_json(
            br#"{"schema":"vmcreds.manifest/1","credentials":[
              {"name":"Q","bytes":1,"digest":{"alg":"sha256","hex":"0000000000000000000000000000000000000000000000000000000000000000"},"encoding":"text"},
              {"name":"A","bytes":1,"digest":{"alg":"sha256","hex":"0000000000000000000000000000000000000000000000000000000000000000"},"encoding":"text"}]}"#,
        );
        let exp = Expectations {
            manifest: Some((m.unwrap(), ManifestSource::Imported)),
            expects: ["Y:1", "A", "Y:2"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect(),
            ..Default::default()
        };
        let rows = rows(&o, &exp);
        let get = |n: &str| rows.iter().find(|r| r.name == n).unwrap();
        let files = &o.imported.as_ref().unwrap().files;
        let b = get("B");
        assert_eq!(
            (b.strings.len(), b.first_imported, b.file),
            (2, Some(0), None)
        );
        let a = get("A");
        assert_eq!(files[a.file.unwrap()].name, "A");
        assert_eq!(
            (a.first_imported, a.manifest, a.expect),
            (Some(1), Some(1), Some(1))
        );
        assert_eq!(files[get("Z").file.unwrap()].name, "Z");
        assert_eq!(get("Q").manifest, Some(0));
        assert_eq!(get("Y").expect, Some(2), "the last --expect of a name");
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["B", "A", "Z", "Q", "Y"]);
    }

    /// (what, observation, expectations, name, status, a piece of the reason)
    type Case = (
        &'static str,
        Observation,
        Expectations,
        &'static str,
        Status,
        &'static str,
    );

    fn cases() -> Vec<Case> {
        let ok = imported(with_entries(vm(), &[&[&text("A", b"abc")]]), "A", b"abc");
        let mut cut = vm();
        cut.systemd.version = Some(252);
        let long = vec![b'l'; 4200];
        let cut = imported(
            with_entries(cut, &[&[&text("L", &long)]]),
            "L",
            &long[..4065],
        );
        let mut pre = with_entries(vm(), &[&[&text("A", b"abc")]]);
        pre.preconditions.push(Precondition {
            check: PreconditionId::ImportEnabled,
            state: CheckState::Failed,
            detail: "kernel command line has systemd.import_credentials=no".into(),
        });
        let mut nodir = with_entries(vm(), &[&[&text("A", b"abc")]]);
        nodir.imported = None;
        let mut link = with_entries(vm(), &[&[&text("A", b"abc")]]);
        link.imported.as_mut().unwrap().files.push(ImportedFile {
            name: "A".into(),
            kind: ImportedKind::Other(FileKind::Symlink),
        });
        let mut stopped = with_entries(vm(), &[&[&text("X", b"1")], &[&text("A", b"2")]]);
        stopped.entries[0].bytes[1] = 6;
        let stopped = repredict(stopped);
        let mut fw = with_entries(vm(), &[&[&text("A", b"smbios")]]);
        fw.fw_cfg.push(FwCfgCredential {
            name: "A".into(),
            bytes: Some(6),
        });
        let fw = imported(repredict(fw), "A", b"fw_cfg");
        let mut fw_lost = vm();
        fw_lost.fw_cfg.push(FwCfgCredential {
            name: "A".into(),
            bytes: Some(3),
        });
        let fw_lost = repredict(fw_lost);
        let none = Expectations::default();
        let kmsg = |lines: &[&str]| {
            let mut b = b"6,0,0,-;Linux version 6.1\n".to_vec();
            for (i, l) in lines.iter().enumerate() {
                b.extend_from_slice(format!("6,{},0,-;systemd[1]: {l}\n", i + 1).as_bytes());
            }
            super::super::boot::KernelLog::from_records(&super::super::boot::kmsg_records(&b))
        };
        let mut lost = with_entries(vm(), &[&[&text("A", b"abc")]]);
        lost.boot.kernel_log = kmsg(&[
            "systemd 257.13-1 running in system mode (+PAM)",
            "Running in initrd.",
            "Received regular credentials: A",
            "Acquired 1 regular credentials, 0 untrusted credentials.",
            "systemd 257.13-1 running in system mode (+PAM)",
        ]);
        let mut never = with_entries(vm(), &[&[&text("A", b"abc")]]);
        never.boot.kernel_log = kmsg(&[
            "systemd 257.13-1 running in system mode (+PAM)",
            "Running in initrd.",
            "Received regular credentials: FROM_CMDLINE",
            "Acquired 1 regular credentials, 0 untrusted credentials.",
            "systemd 257.13-1 running in system mode (+PAM)",
        ]);
        let mut lost_but_refused = with_entries(vm(), &[&[&text("A", b"abc")]]);
        lost_but_refused.boot = lost.boot.clone();
        lost_but_refused.preconditions.push(Precondition {
            check: PreconditionId::ImportEnabled,
            state: CheckState::Failed,
            detail: "kernel command line has systemd.import_credentials=no".into(),
        });
        let tdx = |v: u32| {
            let mut o = vm();
            o.systemd.version = Some(v);
            o.cvm = super::super::CvmFinding::Cvm {
                kind: Some(crate::systemd::Cvm::Tdx),
                how: "/proc/cpuinfo has flag tdx_guest".into(),
            };
            o.fw_cfg.push(FwCfgCredential {
                name: "A".into(),
                bytes: Some(2),
            });
            let p = super::super::confidential::precondition(&o.cvm, &o.behaviour());
            o.preconditions.push(p);
            repredict(with_entries(o, &[&[&text("A", b"smbios")]]))
        };
        let tdx_fw_only = {
            let mut o = vm();
            o.systemd.version = Some(262);
            o.cvm = super::super::CvmFinding::Cvm {
                kind: Some(crate::systemd::Cvm::Tdx),
                how: "x".into(),
            };
            o.fw_cfg.push(FwCfgCredential {
                name: "F".into(),
                bytes: Some(1),
            });
            repredict(o)
        };
        vec![
            (
                "imported in the initrd, lost at switch-root",
                lost,
                none.clone(),
                "A",
                Status::Missing,
                "imported by the initrd's systemd 257, then lost at switch-root",
            ),
            (
                "the loss explains it before a failed precondition does",
                lost_but_refused,
                none.clone(),
                "A",
                Status::Missing,
                "then lost at switch-root",
            ),
            (
                "never imported: the initrd read no SMBIOS",
                never,
                none.clone(),
                "A",
                Status::Missing,
                "never imported: the initrd's systemd 257 read no SMBIOS",
            ),
            (
                "TDX, systemd 262: SMBIOS read, fw_cfg not, so nothing shadows it",
                imported(tdx(262), "A", b"smbios"),
                expect(&["A:6"]),
                "A",
                Status::Ok,
                "",
            ),
            (
                "TDX, systemd 257: neither source is read",
                tdx(257),
                expect(&["A"]),
                "A",
                Status::Missing,
                "precondition not_confidential_vm failed: /proc/cpuinfo has flag tdx_guest: systemd ≥ 254 imports no SMBIOS or fw_cfg",
            ),
            (
                "TDX, systemd 262: a fw_cfg credential is refused",
                tdx_fw_only,
                expect(&["F"]),
                "F",
                Status::Missing,
                "offered over fw_cfg, which systemd 262 does not read in a confidential VM",
            ),
            ("ok", ok, none.clone(), "A", Status::Ok, ""),
            (
                "unexpected",
                imported(
                    imported(with_entries(vm(), &[&[&text("A", b"abc")]]), "A", b"abc"),
                    "B",
                    b"b",
                ),
                expect(&["A"]),
                "B",
                Status::Unexpected,
                "present but not expected",
            ),
            (
                "size differs from --expect",
                imported(with_entries(vm(), &[&[&text("A", b"abc")]]), "A", b"abc"),
                expect(&["A:4"]),
                "A",
                Status::Mismatch,
                "3 bytes arrived, 4 expected (expect)",
            ),
            (
                "differs from SMBIOS",
                imported(with_entries(vm(), &[&[&text("A", b"abc")]]), "A", b"abd"),
                none.clone(),
                "A",
                Status::Mismatch,
                "digest differs from the SMBIOS string's",
            ),
            (
                "short against SMBIOS",
                imported(with_entries(vm(), &[&[&text("A", b"abc")]]), "A", b"ab"),
                none.clone(),
                "A",
                Status::Mismatch,
                "2 bytes arrived, the SMBIOS string decodes to 3",
            ),
            (
                "empty",
                imported(with_entries(vm(), &[&[&text("A", b"")]]), "A", b""),
                none.clone(),
                "A",
                Status::Mismatch,
                "arrived empty (0 bytes); pass --expect A:0",
            ),
            (
                "over systemd's per-credential limit (issue 13 §11)",
                imported(vm(), "HUGE", &vec![b'h'; crate::limits::CREDENTIAL_SIZE_MAX + 1]),
                expect(&["HUGE"]),
                "HUGE",
                Status::Mismatch,
                "1048577 bytes, over systemd's limit of 1048576 per credential: systemd cannot have imported this file",
            ),
            (
                "empty on purpose",
                imported(with_entries(vm(), &[&[&text("A", b"")]]), "A", b""),
                expect(&["A:0"]),
                "A",
                Status::Ok,
                "",
            ),
            (
                "cut by the one-page read",
                cut,
                expect(&["L:4200"]),
                "L",
                Status::Mismatch,
                "string 1 of entry 11-0 was cut: systemd reads only the first 4096 bytes",
            ),
            (
                "rejected",
                with_entries(vm(), &[&[b"io.systemd.credential.binary:A=QQ"]]),
                none.clone(),
                "A",
                Status::Rejected,
                "padding is mandatory",
            ),
            (
                "missing, explained by a precondition",
                pre,
                none.clone(),
                "A",
                Status::Missing,
                "precondition import_enabled failed",
            ),
            (
                "no directory",
                nodir,
                none.clone(),
                "A",
                Status::Missing,
                "/run/credentials/@system does not exist",
            ),
            (
                "a symlink",
                link,
                none.clone(),
                "A",
                Status::Missing,
                "/run/credentials/@system/A is a symbolic link, not a regular file (not followed)",
            ),
            (
                "behind a bad header",
                stopped,
                expect(&["A"]),
                "A",
                Status::NotRead,
                "never read by systemd: its scan of the Type 11 entries stopped at entry 11-0 (Type 11 formatted length is 6",
            ),
            (
                "lost though importable",
                with_entries(vm(), &[&[&text("A", b"abc")]]),
                none.clone(),
                "A",
                Status::Missing,
                "was dmi-sysfs usable in the initrd?",
            ),
            (
                "fw_cfg wins",
                fw,
                expect(&["A:6"]),
                "A",
                Status::Ok,
                "shadowed by a credential of the same name from fw_cfg",
            ),
            (
                "offered over fw_cfg, not imported",
                fw_lost,
                expect(&["A"]),
                "A",
                Status::Missing,
                "offered over fw_cfg but not imported",
            ),
            (
                "expected, nowhere",
                vm(),
                expect(&["A"]),
                "A",
                Status::Missing,
                "not in any SMBIOS Type 11 string, fw_cfg or the kernel command line",
            ),
        ]
    }

    #[test]
    fn test_every_status_and_reason() {
        for (what, obs, exp, name, status, reason) in cases() {
            let r = one(&obs, &exp, name);
            assert_eq!(r.status, status, "{what}: {:?}", r.reason);
            let got = r.reason.unwrap_or_default();
            assert!(
                got.contains(reason),
                "{what}: reason {got:?} lacks {reason:?}"
            );
            if reason.is_empty() {
                assert!(got.is_empty(), "{what}: unexpected reason {got:?}");
            }
        }
    }

    #[test]
    fn test_sources() {
        let mut o = with_entries(vm(), &[&[&text("S", b"s")]]);
        o.cmdline_credentials.push("K".into());
        o.fw_cfg.push(FwCfgCredential {
            name: "F".into(),
            bytes: Some(1),
        });
        let o = imported(
            imported(
                imported(imported(repredict(o), "S", b"s"), "K", b"k"),
                "F",
                b"f",
            ),
            "U",
            b"u",
        );
        let none = Expectations::default();
        for (name, src) in [
            ("S", CredentialSource::Smbios),
            ("K", CredentialSource::KernelCmdline),
            ("F", CredentialSource::FwCfg),
            ("U", CredentialSource::Unknown),
        ] {
            assert_eq!(one(&o, &none, name).source, Some(src), "{name}");
        }
    }

    #[test]
    fn test_sources_by_version_and_confidential_vm() {
        let log = |v: u32| {
            let b = format!(
                "6,0,0,-;Linux\n6,1,0,-;systemd[1]: systemd {v}.1 running in system mode\n6,2,0,-;systemd[1]: Running in initrd.\n6,3,0,-;systemd[1]: Received regular credentials: CPIO\n6,4,0,-;systemd[1]: Acquired 1 regular credentials, 0 untrusted credentials.\n6,5,0,-;systemd[1]: systemd {v}.1 running in system mode\n"
            );
            super::super::boot::KernelLog::from_records(&super::super::boot::kmsg_records(
                b.as_bytes(),
            ))
        };
        let none = Expectations::default();
        // (version, confidential VM, name, source)
        let cases = [
            (262, None, "CPIO", CredentialSource::InitrdCpio),
            (257, None, "CPIO", CredentialSource::Unknown),
            (
                262,
                Some(crate::systemd::Cvm::Tdx),
                "F",
                CredentialSource::Unknown,
            ),
            (257, None, "F", CredentialSource::FwCfg),
        ];
        for (v, cvm, name, want) in cases {
            let mut o = vm();
            o.systemd.version = Some(v);
            if let Some(kind) = cvm {
                o.cvm = super::super::CvmFinding::Cvm {
                    kind: Some(kind),
                    how: "x".into(),
                };
            }
            o.fw_cfg.push(FwCfgCredential {
                name: "F".into(),
                bytes: Some(1),
            });
            o.boot.kernel_log = log(v);
            let o = imported(imported(repredict(o), "CPIO", b"c"), "F", b"f");
            assert_eq!(
                one(&o, &none, name).source,
                Some(want),
                "{v} {cvm:?} {name}"
            );
        }
    }

    #[test]
    fn test_manifest_expectations_and_infrastructure() {
        let nonce = Nonce::from_bytes([3; 32]);
        let mut m = Manifest::new(Some(nonce.clone()), "t");
        let n = |s| CredentialName::parse(s, NameRule::Portable).unwrap();
        m.push(n("A"), b"sent", Encoding::Binary);
        let mut o = vm();
        o.nonce = Some(nonce);
        let o = with_entries(
            o,
            &[&[&text("A", b"sent"), &text(NOTIFY_CREDENTIAL, b"vsock:2:1")]],
        );
        let mut o = imported(o, "A", b"sent");
        imported_mode(&mut o, NOTIFY_CREDENTIAL, b"vsock:2:1", 0o400);
        imported_mode(&mut o, MANIFEST_CREDENTIAL, b"{}", 0o400);
        let exp = Expectations {
            manifest: Some((m, ManifestSource::Imported)),
            ..Default::default()
        };
        let a = one(&o, &exp, "A");
        assert_eq!(a.status, Status::Ok);
        assert_eq!(
            a.expected.as_ref().unwrap().from,
            ExpectationSource::Manifest
        );
        assert_eq!(
            one(&o, &exp, NOTIFY_CREDENTIAL).status,
            Status::Ok,
            "never unexpected"
        );
        assert_eq!(
            one(&o, &exp, MANIFEST_CREDENTIAL).status,
            Status::Ok,
            "never unexpected"
        );
        // The manifest's digest decides: same size, same key, other bytes.
        let mut o2 = vm();
        o2.nonce = o.nonce.clone();
        let o2 = imported(with_entries(o2, &[&[&text("A", b"sENT")]]), "A", b"sENT");
        let r = one(&o2, &exp, "A");
        assert_eq!(r.status, Status::Mismatch, "{:?}", r.reason);
        assert_eq!(
            r.reason.as_deref(),
            Some("digest differs from the manifest")
        );
    }
}
