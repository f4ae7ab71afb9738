//! Keeping a report within what the host reads ([`REPORT_SIZE_MAX`]).
//!
//! A guest can hold far more than a report can carry: 20 000 files in
//! `@system` make 10 MB of rows. [`fit`] drops rows, least telling first,
//! until the document fits, and says in [`Cut`], in a verdict reason and in
//! the summary what went. The verdict and every count were computed before
//! the cut and cover everything; rows of expected credentials go last, since
//! the host verifies against them.
//!
//! The bound is on [`Report::to_json`] (pretty); the compact wire form is
//! never longer. Whoever sends or prints a report as JSON calls [`fit`]
//! first; a table for people is not cut.

use serde::{Deserialize, Serialize};

use crate::limits::REPORT_SIZE_MAX;
use crate::report::Report;

/// What [`fit`] left out of a report (each field a number of rows).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cut {
    /// The limit the report was cut to.
    pub limit: u64,
    /// The size of the whole report before the cut.
    pub full_bytes: u64,
    /// `credentials` rows left out.
    pub credentials: u64,
    /// `smbios.not_imported` rows left out.
    pub not_imported: u64,
    /// `smbios.unnamed_rejections` rows left out.
    pub unnamed_rejections: u64,
    /// `smbios.entries` rows left out.
    pub entries: u64,
    /// `verdict.reasons` lines left out.
    pub reasons: u64,
}

impl Cut {
    /// One line for people.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (n, what) in [
            (self.credentials, "credential rows"),
            (self.not_imported, "not-imported string rows"),
            (self.unnamed_rejections, "unnamed rejections"),
            (self.entries, "Type 11 entry rows"),
            (self.reasons, "verdict reasons"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        format!(
            "the report was cut from {} to at most {} bytes: {} left out (the verdict and the counts cover everything)",
            self.full_bytes,
            self.limit,
            parts.join(", ")
        )
    }
}

/// Room kept for the cut note, the reason line and the summary.
const RESERVE: usize = 4096;

/// Which list a candidate row is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum List {
    Credentials,
    NotImported,
    Unnamed,
    Entries,
    Reasons,
}

/// Bytes a pretty-printed element adds to its array: its text, each of its
/// lines indented by `indent` (4 for `credentials`, 6 for the arrays one
/// object deeper), and the `,` and newline between elements.
fn cost<T: Serialize>(row: &T, indent: usize) -> usize {
    let s = crate::json_out::pretty(row, 1024);
    let s = s.strip_suffix('\n').unwrap_or(&s);
    s.len() + indent * (s.matches('\n').count() + 1) + 2
}

/// The rows in the order they are given up: unexpected credentials that
/// are fine, strings systemd did not import, unexpected failures, unnamed
/// rejections, entries, verdict reasons past the first, and at the very
/// end expected credentials. Within each, the last row first.
fn candidates(r: &Report) -> Vec<(List, usize, usize)> {
    let creds = |keep: fn(&crate::report::CredentialReport) -> bool| {
        r.credentials
            .iter()
            .enumerate()
            .rev()
            .filter(move |(_, c)| keep(c))
            .map(|(i, c)| (List::Credentials, i, cost(c, 4)))
    };
    let mut out: Vec<(List, usize, usize)> = Vec::new();
    out.extend(creds(|c| c.expected.is_none() && !c.status.is_failure()));
    out.extend(
        r.smbios
            .not_imported
            .iter()
            .enumerate()
            .rev()
            .map(|(i, s)| (List::NotImported, i, cost(s, 6))),
    );
    out.extend(creds(|c| c.expected.is_none() && c.status.is_failure()));
    out.extend(
        r.smbios
            .unnamed_rejections
            .iter()
            .enumerate()
            .rev()
            .map(|(i, s)| (List::Unnamed, i, cost(s, 6))),
    );
    out.extend(
        r.smbios
            .entries
            .iter()
            .enumerate()
            .rev()
            .map(|(i, s)| (List::Entries, i, cost(s, 6))),
    );
    out.extend(
        r.verdict
            .reasons
            .iter()
            .enumerate()
            .skip(1)
            .rev()
            .map(|(i, s)| (List::Reasons, i, cost(s, 6))),
    );
    out.extend(creds(|c| c.expected.is_some()));
    out
}

/// Removes the marked rows of one list, keeping order.
fn drop_marked<T>(v: &mut Vec<T>, marked: &[usize]) -> u64 {
    if marked.is_empty() {
        return 0;
    }
    let mut gone = vec![false; v.len()];
    for &i in marked {
        gone[i] = true;
    }
    let mut i = 0;
    v.retain(|_| {
        i += 1;
        !gone[i - 1]
    });
    marked.len() as u64
}

/// Cuts `report` to at most `limit` bytes of [`Report::to_json`] (nothing
/// is cut when it fits) and returns that JSON. Deterministic: the same
/// report is cut the same way.
pub fn fit(report: &mut Report, limit: usize) -> String {
    let json = report.to_json();
    let full = json.len();
    if full <= limit {
        return json;
    }
    drop(json);
    let mut cut = Cut {
        limit: limit as u64,
        full_bytes: full as u64,
        ..Cut::default()
    };
    let mut size = full;
    // Each round removes what the estimate says is too much; a second round
    // covers an estimate that was short.
    while size + RESERVE > limit {
        let excess = size + RESERVE - limit;
        let mut freed = 0;
        let mut marked: [Vec<usize>; 5] = Default::default();
        for (list, i, c) in candidates(report) {
            if freed >= excess {
                break;
            }
            marked[list as usize].push(i);
            freed += c;
        }
        if marked.iter().all(Vec::is_empty) {
            break; // nothing left to give up
        }
        let [creds, not_imported, unnamed, entries, reasons] = &marked;
        cut.credentials += drop_marked(&mut report.credentials, creds);
        cut.not_imported += drop_marked(&mut report.smbios.not_imported, not_imported);
        cut.unnamed_rejections += drop_marked(&mut report.smbios.unnamed_rejections, unnamed);
        cut.entries += drop_marked(&mut report.smbios.entries, entries);
        cut.reasons += drop_marked(&mut report.verdict.reasons, reasons);
        size = report.to_json().len();
    }
    let line = cut.describe();
    report.verdict.reasons.push(line.clone());
    report.verdict.summary = format!("{}; {line}", report.verdict.summary);
    report.cut = Some(cut);
    report.to_json()
}

/// [`fit`] to [`REPORT_SIZE_MAX`], what `collect` and `verify` read.
pub fn fit_for_host(report: &mut Report) -> String {
    fit(report, REPORT_SIZE_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;
    use crate::report::{ExpectationSource, Expected, Status, StringReport};

    /// A report with `n` unexpected fine credentials, one expected and one
    /// unexpected failure, and `n` not-imported strings.
    fn big(n: usize) -> Report {
        let mut r = sample();
        let row = r.credentials[0].clone();
        r.credentials.clear();
        for i in 0..n {
            let mut c = row.clone();
            c.name = format!("extra.{i:06}");
            r.credentials.push(c);
        }
        let mut expected = row.clone();
        expected.name = "EXPECTED".into();
        expected.expected = Some(Expected {
            bytes: Some(44),
            digest: None,
            from: ExpectationSource::Manifest,
        });
        r.credentials.insert(n / 2, expected);
        let mut bad = row.clone();
        bad.name = "BAD_EXTRA".into();
        bad.status = Status::Missing;
        r.credentials.push(bad);
        for i in 0..n {
            r.smbios.not_imported.push(StringReport {
                entry: 0,
                string: i as u64 + 1,
                name: Some(format!("n{i}")),
                encoding: None,
                outcome: crate::predict::OutcomeKind::Rejected,
                reason: "bad base64".into(),
            });
        }
        r.verdict.reasons = vec!["first".into(), "second".into()];
        r
    }

    #[test]
    fn test_a_report_that_fits_is_untouched() {
        let mut r = big(10);
        let before = r.clone();
        fit(&mut r, REPORT_SIZE_MAX);
        assert_eq!(r, before);
        assert!(
            !r.to_json().contains("\"cut\""),
            "no cut field when nothing was cut"
        );
    }

    #[test]
    fn test_cut_unexpected_fine_rows_first_and_say_so() {
        let mut r = big(400);
        let full = r.to_json().len();
        let limit = full - 20_000;
        let verdict = (r.verdict.result, r.verdict.ok, r.verdict.failed);
        fit(&mut r, limit);
        let json = r.to_json();
        assert!(json.len() <= limit, "{} > {limit}", json.len());
        assert!(
            json.len() + 2 * RESERVE > limit,
            "cut far more than needed: {} of {limit}",
            json.len()
        );
        let cut = r.cut.clone().expect("cut recorded");
        assert_eq!(cut.full_bytes, full as u64);
        assert_eq!(cut.limit, limit as u64);
        assert!(cut.credentials > 0);
        assert_eq!(cut.not_imported, 0, "fine extras go first");
        // The last rows went; the expected row and the failure stay.
        assert!(r.credentials.iter().any(|c| c.name == "EXPECTED"));
        assert!(r.credentials.iter().any(|c| c.name == "BAD_EXTRA"));
        assert!(r.credentials.iter().any(|c| c.name == "extra.000000"));
        assert!(!r.credentials.iter().any(|c| c.name == "extra.000399"));
        assert_eq!(
            r.credentials.len() as u64 + cut.credentials,
            402,
            "every row counted"
        );
        assert_eq!((r.verdict.result, r.verdict.ok, r.verdict.failed), verdict);
        assert!(r
            .verdict
            .reasons
            .last()
            .unwrap()
            .contains("credential rows"));
        assert!(r.verdict.summary.contains("the report was cut"));
        // And it survives the host's parser.
        assert_eq!(Report::from_json(json.as_bytes()).unwrap(), r);
    }

    #[test]
    fn test_cut_deep_keeps_expected_rows_last() {
        let mut r = big(3000);
        fit(&mut r, 40_000);
        assert!(r.to_json().len() <= 40_000, "{}", r.to_json().len());
        let cut = r.cut.clone().unwrap();
        assert!(cut.not_imported > 0 && cut.credentials > 0, "{cut:?}");
        assert!(r.credentials.iter().any(|c| c.name == "EXPECTED"));
        assert_eq!(r.verdict.reasons[0], "first");
        assert!(cut.describe().contains("not-imported string rows"));
    }

    #[test]
    fn test_deterministic() {
        let (mut a, mut b) = (big(500), big(500));
        fit(&mut a, 60_000);
        fit(&mut b, 60_000);
        assert_eq!(a, b);
    }
}
