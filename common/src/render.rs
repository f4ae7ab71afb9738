//! Tables for people: the guest's check (`API_KEY  44 bytes  sha256:…  ✓ ok`),
//! the host's verdict and the guest's `list`, all through one line
//! renderer. Never a value: names, sizes, short digests, statuses, reasons.

use std::fmt::Write as _;

use crate::digest::Digest;
use crate::escape::{escape_bytes, escape_name};
use crate::report::{CheckState, PreconditionId, Report, Status};

/// Most bytes of one free-text field of a report shown by [`escaped`].
pub const TEXT_SHOWN: usize = 1000;

/// A copy of `report` with every string in it escaped (names as
/// [`escape_name`], other text as [`escape_bytes`], at most [`TEXT_SHOWN`]
/// bytes each): what the host renders of a report that came from a guest, so
/// that no control sequence, no line break and no non-ASCII character the
/// guest chose reaches a terminal or a journal. Numbers and enums are kept.
pub fn escaped(report: &Report) -> Report {
    let t = |s: &mut String| *s = escape_bytes(s.as_bytes(), TEXT_SHOWN);
    let o = |s: &mut Option<String>| {
        if let Some(s) = s {
            *s = escape_bytes(s.as_bytes(), TEXT_SHOWN);
        }
    };
    let d = |d: &mut Option<Digest>| {
        if let Some(d) = d {
            d.hex = escape_bytes(d.hex.as_bytes(), 64);
        }
    };
    let mut r = report.clone();
    t(&mut r.schema);
    t(&mut r.generator);
    o(&mut r.nonce_id);
    o(&mut r.system.smbios_version);
    o(&mut r.system.hypervisor_vendor);
    o(&mut r.system.hypervisor_product);
    for p in &mut r.preconditions {
        if let PreconditionId::Other(s) = &mut p.check {
            t(s);
        }
        t(&mut p.detail);
    }
    for e in &mut r.smbios.entries {
        o(&mut e.error);
        e.anomalies.iter_mut().for_each(t);
    }
    for u in &mut r.smbios.unnamed_rejections {
        t(&mut u.reason);
    }
    if let Some(x) = &mut r.smbios.table_cross_check {
        t(&mut x.detail);
    }
    for c in &mut r.credentials {
        c.name = escape_name(c.name.as_bytes());
        d(&mut c.digest);
        if let Some(sd) = &mut c.systemd {
            d(&mut sd.digest);
        }
        if let Some(x) = &mut c.expected {
            d(&mut x.digest);
        }
        o(&mut c.reason);
    }
    t(&mut r.verdict.summary);
    r.verdict.reasons.iter_mut().for_each(t);
    r
}

/// The mark people look for: ✓ for ok, ✗ for a failure, ! for unexpected.
pub fn status_mark(status: Status) -> &'static str {
    match status {
        Status::Ok => "✓",
        Status::Unexpected => "!",
        _ => "✗",
    }
}

/// `✓ ok`, `✗ missing`, …
pub fn status_text(status: Status) -> String {
    format!("{} {}", status_mark(status), status)
}

/// The width of the name column: the longest name, between 4 and 40.
pub fn name_width<'a>(names: impl IntoIterator<Item = &'a str>) -> usize {
    names
        .into_iter()
        .map(str::len)
        .max()
        .unwrap_or(4)
        .clamp(4, 40)
}

/// One line of a table.
#[derive(Debug, Default)]
pub struct Line<'a> {
    /// Text before the name column (`11-0#1   ` in `list`).
    pub lead: String,
    /// The name.
    pub name: &'a str,
    /// The size.
    pub bytes: Option<u64>,
    /// The digest column: `None` for a table without one, `Some(None)` for "-".
    pub digest: Option<Option<&'a Digest>>,
    /// The status column.
    pub status: String,
    /// Why, when there is something to say.
    pub reason: Option<&'a str>,
}

/// Renders `lines` with the name column `width` wide.
pub fn table(lines: &[Line<'_>], width: usize) -> String {
    let mut out = String::new();
    for l in lines {
        let bytes = l
            .bytes
            .map_or_else(|| "-".to_owned(), |b| format!("{b} bytes"));
        let _ = write!(out, "{}{:<width$}  {:>13}", l.lead, l.name, bytes);
        if let Some(d) = l.digest {
            let d = d.map_or_else(|| "-".to_owned(), |d| format!("{}:{}", d.alg, d.short()));
            let _ = write!(out, "  {d:<24}");
        }
        let _ = write!(out, "  {}", l.status);
        if let Some(r) = l.reason {
            let _ = write!(out, "  ({r})");
        }
        out.push('\n');
    }
    out
}

/// The per-credential table of a report, then the verdict line.
pub fn report_table(report: &Report) -> String {
    let lines: Vec<Line<'_>> = report
        .credentials
        .iter()
        .map(|c| {
            let sd = c.systemd.as_ref();
            Line {
                name: &c.name,
                bytes: sd.and_then(|s| s.bytes).or(c.bytes),
                digest: Some(sd.and_then(|s| s.digest.as_ref()).or(c.digest.as_ref())),
                status: status_text(c.status),
                reason: c.reason.as_deref(),
                ..Line::default()
            }
        })
        .collect();
    let width = name_width(report.credentials.iter().map(|c| c.name.as_str()));
    let mut out = table(&lines, width);
    let _ = writeln!(
        out,
        "verdict: {} ({})",
        report.verdict.result, report.verdict.summary
    );
    out
}

/// The lines above the table: the system, failed or unknown preconditions,
/// entry errors and anomalies, refused strings without a name, and a
/// disagreeing table cross-check. `dir` is the directory read.
pub fn preamble(report: &Report, dir: &str) -> String {
    let s = &report.system;
    let c = &report.smbios.strings;
    let entries = report.smbios.entries.len();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "vmcreds-guest: systemd {}, SMBIOS {} ({}), {} / {}, {entries} Type 11 entr{}, {} string(s): {} imported, {} rejected, {} shadowed, {}{} not credentials; reading {dir}",
        s.systemd_version
            .map_or("unknown (modelling the newest)".into(), |v| v.to_string()),
        s.smbios_version.as_deref().unwrap_or("?"),
        s.entry_point.map_or("no entry point", |e| e.as_str()),
        s.hypervisor_vendor.as_deref().unwrap_or("?"),
        s.hypervisor_product.as_deref().unwrap_or("?"),
        if entries == 1 { "y" } else { "ies" },
        c.total,
        c.imported,
        c.rejected,
        c.shadowed,
        if c.not_read > 0 {
            format!("{} not read, ", c.not_read)
        } else {
            String::new()
        },
        c.not_credential
    );
    for p in report
        .preconditions
        .iter()
        .filter(|p| p.state != CheckState::Ok)
    {
        let _ = writeln!(out, "precondition {} {}: {}", p.check, p.state, p.detail);
    }
    if let Some(cut) = &report.cut {
        let _ = writeln!(out, "{}", cut.describe());
    }
    for e in &report.smbios.entries {
        if let Some(err) = &e.error {
            let _ = writeln!(out, "entry 11-{}: {err}", e.entry);
        }
        for a in &e.anomalies {
            let _ = writeln!(out, "entry 11-{}: {a}", e.entry);
        }
    }
    for n in &report.smbios.not_imported {
        let _ = writeln!(
            out,
            "entry 11-{} string {}{}: {}: {}",
            n.entry,
            n.string,
            n.name
                .as_deref()
                .map_or(String::new(), |name| format!(" ({name})")),
            n.outcome,
            n.reason
        );
    }
    if let Some(x) = report
        .smbios
        .table_cross_check
        .as_ref()
        .filter(|x| !x.agrees)
    {
        let _ = writeln!(out, "table cross-check disagrees: {}", x.detail);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::digest;

    #[test]
    fn test_line_layout() {
        let d = digest(b"x", None);
        let lines = [
            Line {
                name: "API_KEY",
                bytes: Some(44),
                digest: Some(Some(&d)),
                status: status_text(Status::Ok),
                ..Line::default()
            },
            Line {
                lead: "11-0#2   ".into(),
                name: "B",
                digest: Some(None),
                status: status_text(Status::Missing),
                reason: Some("why"),
                ..Line::default()
            },
            Line {
                name: "C",
                bytes: Some(1),
                status: status_text(Status::Unexpected),
                ..Line::default()
            },
        ];
        let t = table(&lines, name_width(["API_KEY", "B", "C"]));
        let l: Vec<&str> = t.lines().collect();
        assert_eq!(
            l[0],
            format!("API_KEY       44 bytes  sha256:{:<17}  ✓ ok", d.short())
        );
        assert_eq!(
            l[1],
            "11-0#2   B                    -  -                         ✗ missing  (why)"
        );
        assert_eq!(l[2], "C              1 bytes  ! unexpected");
    }

    #[test]
    fn test_report_table_and_verdict_line() {
        let t = report_table(&crate::report::tests::sample());
        assert!(
            t.contains("API_KEY") && t.contains("44 bytes") && t.contains("✓ ok"),
            "{t}"
        );
        assert!(
            t.ends_with("verdict: verified (1/1 credentials verified)\n"),
            "{t}"
        );
    }

    #[test]
    fn test_width_bounds() {
        assert_eq!(name_width([]), 4);
        assert_eq!(name_width(["a"]), 4);
        assert_eq!(name_width([&*"n".repeat(60)]), 40);
    }

    #[test]
    fn test_escaped_leaves_no_control_or_line_break() {
        let mut r = crate::report::tests::sample();
        let evil = "\u{1b}[2J\nhost verdict: verified\u{9b}\u{202e}\u{7}";
        r.credentials[0].name = evil.into();
        r.credentials[0].reason = Some(evil.into());
        r.credentials[0].digest.as_mut().unwrap().hex = evil.into();
        r.verdict.summary = evil.into();
        r.verdict.reasons = vec![evil.into()];
        r.preconditions[0].detail = evil.into();
        let t = report_table(&escaped(&r)) + &preamble(&escaped(&r), "/x");
        for l in t.lines() {
            assert!(!l.starts_with("host verdict"), "{l}");
        }
        assert!(
            t.chars()
                .all(|c| (' '..='~').contains(&c) || "\n✓✗!…".contains(c)),
            "{t}"
        );
        assert!(
            t.contains("\\x1b[2J\\x0ahost verdict: verified\\xc2\\x9b"),
            "{t}"
        );
    }
}
