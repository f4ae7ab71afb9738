//! `vmcreds-host verify --manifest M --report R [--json]`, and the verdict
//! output shared with `collect`.

use std::path::Path;

use vmcreds_common::limits::{MANIFEST_SIZE_MAX, REPORT_SIZE_MAX};
use vmcreds_common::manifest::Manifest;
use vmcreds_common::render::report_table;
use vmcreds_common::report::Report;
use vmcreds_common::verify::{verify, VerdictDocument, VERDICT_SCHEMA};
use vmcreds_os::bounded::read_bounded;

use crate::cli::VerifyArgs;
use crate::exit::{self, Exit, IoError, Result, ResultExt, Usage};
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

/// Verifies `report` against `manifest` and prints the guest's table and the
/// host's verdict (or the JSON document); exit 0 verified, 1 failed.
pub fn output(manifest: &Manifest, report: &Report, json: bool) -> Result<Exit> {
    let verdict = verify(manifest, report)?;
    tracing::info!(result = %verdict.result, rows = verdict.rows.len(), "verified against the manifest");
    let text = if json {
        let mut s = serde_json::to_string_pretty(&VerdictDocument {
            schema: VERDICT_SCHEMA,
            verdict: &verdict,
            report,
        })
        .expect("the verdict serialises");
        s.push('\n');
        s
    } else {
        format!(
            "guest report:\n{}\nhost verdict:\n{}",
            report_table(report),
            verdict.render()
        )
    };
    exit::write_stdout(text.as_bytes())?;
    Ok(if verdict.ok() {
        Exit::Success
    } else {
        Exit::Failed
    })
}

/// Runs `verify`.
pub fn run(args: VerifyArgs) -> Result<Exit> {
    let manifest = read_manifest(&args.manifest)?;
    let bytes = read_file_document(&args.report, REPORT_SIZE_MAX, "report")?;
    let report =
        Report::from_json(&bytes).with_context(|| format!("report {}", show_path(&args.report)))?;
    output(&manifest, &report, args.json)
}
