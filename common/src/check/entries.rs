//! The SMBIOS part of the report: one entry report per `11-N/raw`, the
//! string counts, the credential strings without a name, the table
//! cross-check, and every anomaly (strict mode fails on any).

use crate::predict::{EntrySummary, Outcome};
use crate::report::{EntryReport, Smbios, StringCounts, StringReport, UnnamedRejection};
use crate::type11;

use super::{Observation, RawEntry};

/// The SMBIOS part of the report, and the anomalies for the verdict.
#[derive(Debug)]
pub struct Summary {
    /// The report's `smbios` object.
    pub report: Smbios,
    /// Every anomaly, one line each (`11-N: …`).
    pub anomalies: Vec<String>,
}

/// The entry report of an entry systemd read.
fn read_entry(e: &EntrySummary) -> EntryReport {
    EntryReport {
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
    }
}

/// The entry report of an entry systemd never read: its scan stopped at
/// entry `stop`.
fn unread_entry(raw: &RawEntry, stop: u32) -> EntryReport {
    let parsed = type11::parse_entry(&raw.bytes);
    EntryReport {
        entry: raw.index,
        bytes: raw.bytes.len() as u64,
        handle: parsed.as_ref().ok().map(|x| x.handle),
        count: parsed.as_ref().ok().map(|x| x.count),
        strings: parsed.as_ref().map_or(0, |x| x.strings.len() as u64),
        error: Some(format!(
            "not read by systemd: it stopped scanning at entry 11-{stop}"
        )),
        anomalies: Vec::new(),
    }
}

/// The strings, counted by class; the refused ones without a name (so no
/// row); and every credential string that was not imported.
struct Strings {
    counts: StringCounts,
    unnamed: Vec<UnnamedRejection>,
    not_imported: Vec<StringReport>,
}

fn strings(obs: &Observation) -> Strings {
    let p = &obs.prediction;
    let mut out = Strings {
        counts: StringCounts {
            total: p.strings.len() as u64,
            ..Default::default()
        },
        unnamed: Vec::new(),
        not_imported: Vec::new(),
    };
    let c = &mut out.counts;
    for s in &p.strings {
        match &s.outcome {
            Outcome::NotCredential => c.not_credential += 1,
            Outcome::Imported => c.imported += 1,
            Outcome::Shadowed(_) => c.shadowed += 1,
            Outcome::NotRead { .. } => c.not_read += 1,
            Outcome::Rejected(_) | Outcome::TooLarge { .. } | Outcome::OverTotal { .. } => {
                c.rejected += 1;
                if s.name.is_none() {
                    out.unnamed.push(UnnamedRejection {
                        entry: s.entry,
                        string: s.string as u64,
                        reason: s.outcome.reason().unwrap_or_default(),
                    });
                }
            }
        }
        if !matches!(s.outcome, Outcome::NotCredential | Outcome::Imported) {
            out.not_imported.push(StringReport {
                entry: s.entry,
                string: s.string as u64,
                name: s.name.clone(),
                encoding: s.encoding,
                outcome: s.outcome.kind(),
                reason: s.outcome.reason().unwrap_or_default(),
            });
        }
    }
    out
}

/// The SMBIOS summary of `obs`.
pub fn summarise(obs: &Observation) -> Summary {
    let p = &obs.prediction;
    let raw_read_max = obs.behaviour().raw_read_max;
    let stop = p.stopped_at().map_or(0, |e| e.entry);
    let mut report = Smbios::default();
    let mut anomalies = Vec::new();
    for (i, raw) in obs.entries.iter().enumerate() {
        let summary = p.entries.get(i);
        let mut er = match summary {
            Some(e) => read_entry(e),
            None => unread_entry(raw, stop),
        };
        if let Some(e) = summary.filter(|e| e.cut_by_read_limit > 0) {
            er.anomalies.push(format!(
                "systemd reads only {raw_read_max} bytes of an entry: the last {} bytes are cut",
                e.cut_by_read_limit
            ));
        }
        if let Some(bound) = raw.cut_at {
            er.anomalies.push(format!(
                "file larger than {bound} bytes: vmcreds read only that much"
            ));
        }
        anomalies.extend(er.anomalies.iter().map(|a| format!("11-{}: {a}", er.entry)));
        if let Some(e) = &er.error {
            anomalies.push(format!("11-{}: {e}", er.entry));
        }
        report.entries.push(er);
    }
    if let Some(bound) = obs.entries_cut_at {
        anomalies.push(format!(
            "more than {bound} bytes of Type 11 entries: vmcreds stopped reading"
        ));
    }
    let s = strings(obs);
    report.strings = s.counts;
    report.unnamed_rejections = s.unnamed;
    report.not_imported = s.not_imported;
    report.table_cross_check = obs.table.cross_check.clone();
    if let Some(x) = report.table_cross_check.as_ref().filter(|x| !x.agrees) {
        anomalies.push(format!("table cross-check: {}", x.detail));
    }
    Summary { report, anomalies }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{repredict, text, vm, with_entries};
    use super::*;
    use crate::report::TableCrossCheck;

    #[test]
    fn test_counts_by_class() {
        let o = with_entries(
            vm(),
            &[&[
                &text("A", b"1"),
                &text("A", b"2"),
                b"io.systemd.credential:noeq",
                b"io.systemd.credential:bad/name=x",
                b"plain",
            ]],
        );
        let s = summarise(&o);
        let c = &s.report.strings;
        assert_eq!(
            (
                c.total,
                c.imported,
                c.shadowed,
                c.rejected,
                c.not_credential
            ),
            (5, 1, 1, 2, 1)
        );
        assert_eq!(s.report.unnamed_rejections.len(), 1);
        assert_eq!(s.report.unnamed_rejections[0].string, 3);
        assert!(s.anomalies.is_empty(), "{:?}", s.anomalies);
    }

    #[test]
    fn test_unread_entries_and_anomalies() {
        let mut o = with_entries(
            vm(),
            &[
                &[&text("A", b"1")],
                &[&text("B", b"2")],
                &[&text("C", b"3")],
            ],
        );
        o.entries[1].bytes[1] = 6; // a bad header: systemd stops at 11-1
        o.entries[2].cut_at = Some(16);
        o.entries_cut_at = Some(64);
        o.table.cross_check = Some(TableCrossCheck {
            structures: 2,
            agrees: false,
            detail: "1 Type 11 structure(s) in the table, 3 11-N/raw file(s)".into(),
        });
        let o = repredict(o);
        let s = summarise(&o);
        let e = &s.report.entries;
        assert_eq!(e.len(), 3);
        assert!(e[1].error.as_ref().unwrap().contains("stops scanning here"));
        assert_eq!(
            e[2].error.as_deref(),
            Some("not read by systemd: it stopped scanning at entry 11-1")
        );
        assert_eq!(
            e[2].strings, 1,
            "the unread entry is still parsed for people"
        );
        let all = s.anomalies.join("\n");
        for want in [
            "11-1: Type 11 formatted length is 6",
            "11-2: file larger than 16 bytes",
            "more than 64 bytes of Type 11 entries",
            "table cross-check: 1 Type 11 structure(s)",
        ] {
            assert!(all.contains(want), "{want} not in {all}");
        }
    }

    #[test]
    fn test_read_limit_cut_is_an_anomaly() {
        let mut o = vm();
        o.systemd.version = Some(252);
        let big = vec![b'x'; 5000];
        let o = with_entries(o, &[&[&text("BIG", &big)]]);
        let s = summarise(&o);
        assert!(
            s.report.entries[0]
                .anomalies
                .iter()
                .any(|a| a.starts_with("systemd reads only 4096 bytes of an entry")),
            "{:?}",
            s.report.entries[0].anomalies
        );
    }
}
