//! The guest's report meets the manifest, for `collect` and `verify`
//! alike: reading the manifest file, parsing the report the guest sent,
//! and printing the guest's table and the host's verdict.
//!
//! A report is the guest's text: everything of it that is printed is escaped
//! first (`render::escaped`; the JSON document is made ASCII), the guest's
//! table is printed with every line marked `guest| `, and the host's rows
//! are indented, so the host's own `host verdict:` line is the only one a
//! person or a log scraper can take for it. A report that does not parse is
//! refused with the parser's message escaped, since it quotes the guest.

use std::path::Path;

use vmcreds_common::escape::{ascii_json, escape_unprintable};
use vmcreds_common::limits::{MANIFEST_SIZE_MAX, REPORT_SIZE_MAX};
use vmcreds_common::manifest::Manifest;
use vmcreds_common::render::{escaped, report_table};
use vmcreds_common::report::Report;
use vmcreds_common::verify::{verify, VerdictDocument, VERDICT_SCHEMA};
use vmcreds_os::bounded::read_bounded;

use crate::exit::{self, Classify, Exit, IoError, Result, ResultExt, Usage};
use crate::show_path;

/// Reads a document file of at most `max` bytes, refusing a larger one
/// without reading all of it.
fn read_file_document(path: &Path, max: usize, what: &str) -> Result<Vec<u8>> {
    let b = std::fs::File::open(path)
        .and_then(|f| read_bounded(f, max))
        .map_err(|e| IoError::new(format!("cannot read the {what} {}", show_path(path)), e))?;
    if b.over_bound {
        return Err(Usage(format!(
            "the {what} {} is larger than the {max} bytes a {what} can be",
            show_path(path)
        ))
        .into());
    }
    Ok(b.bytes)
}

/// Reads and validates a manifest file.
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let bytes = read_file_document(path, MANIFEST_SIZE_MAX, "manifest")?;
    Manifest::from_json(&bytes).with_context(|| format!("manifest {}", show_path(path)))
}

/// Reads and parses a report file (as `verify` is given one).
pub fn read_report(path: &Path) -> Result<Report> {
    let bytes = read_file_document(path, REPORT_SIZE_MAX, "report")?;
    parse_report(&bytes).with_context(|| format!("report {}", show_path(path)))
}

/// What starts every line of the guest's table in the host's output.
pub const GUEST_MARK: &str = "guest| ";

/// A report that does not parse. The parser's message can quote the guest's
/// bytes (an unknown field or variant name), so it is kept escaped.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadReport(pub String);

impl Classify<Exit> for BadReport {
    fn exit(&self) -> Exit {
        Exit::Refused
    }
}

/// Parses a report that came from a guest, escaping any refusal.
pub fn parse_report(bytes: &[u8]) -> std::result::Result<Report, BadReport> {
    Report::from_json(bytes).map_err(|e| {
        let text = format!("{:#}", anyhow::Error::new(e));
        BadReport(escape_unprintable(text.as_bytes(), 2000))
    })
}

/// Verifies `report` against `manifest` and prints the guest's table and the
/// host's verdict (or the JSON document); exit 0 verified, 1 failed.
pub fn output(manifest: &Manifest, report: &Report, json: bool) -> Result<Exit> {
    let verdict = verify(manifest, report)?;
    tracing::info!(result = %verdict.result, rows = verdict.rows.len(), "verified against the manifest");
    let text = if json {
        let s = serde_json::to_string_pretty(&VerdictDocument {
            schema: VERDICT_SCHEMA,
            verdict: &verdict,
            report,
        })
        .expect("the verdict serialises");
        let mut s = ascii_json(&s);
        s.push('\n');
        s
    } else {
        let mut s = String::from(
            "guest report (the guest's own words, escaped; each line marked \"guest|\"):\n",
        );
        for line in report_table(&escaped(report)).lines() {
            s.push_str(GUEST_MARK);
            s.push_str(line);
            s.push('\n');
        }
        s.push_str("\nhost verdict:\n");
        s.push_str(&verdict.render());
        s
    };
    exit::write_stdout(text.as_bytes())?;
    Ok(if verdict.ok() {
        Exit::Success
    } else {
        Exit::Failed
    })
}
