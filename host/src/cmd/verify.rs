//! `vmcreds-host verify --manifest M --report R [--json]`, and the verdict
//! output shared with `collect`.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use serde::Serialize;
use vmcreds_common::limits::{MANIFEST_SIZE_MAX, REPORT_SIZE_MAX};
use vmcreds_common::manifest::Manifest;
use vmcreds_common::report::{render_table, Report};
use vmcreds_common::verify::{verify, HostVerdict};

use super::{code, EXIT_FAILED};
use crate::cli::VerifyArgs;
use crate::fsutil::read_bounded;

/// Schema of the `--json` output.
pub const VERDICT_SCHEMA: &str = "vmcreds.verdict/1";

/// The `--json` document.
#[derive(Debug, Serialize)]
pub struct VerdictDoc<'a> {
    /// Always [`VERDICT_SCHEMA`].
    pub schema: &'static str,
    /// The host's verdict.
    pub verdict: &'a HostVerdict,
    /// The guest's report.
    pub report: &'a Report,
}

/// Reads a document of at most `max` bytes, refusing a larger one without
/// reading all of it.
fn read_document(path: &Path, max: usize, what: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = read_bounded(path, max)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?;
    if bytes.len() > max {
        anyhow::bail!(
            "the {what} {} is larger than the {max} bytes a {what} can be",
            path.display()
        );
    }
    Ok(bytes)
}

/// Reads and validates a manifest file.
pub fn read_manifest(path: &Path) -> anyhow::Result<Manifest> {
    let bytes = read_document(path, MANIFEST_SIZE_MAX, "manifest")?;
    Manifest::from_json(&bytes).with_context(|| format!("manifest {}", path.display()))
}

/// Verifies `report` against `manifest` and prints the guest's table and the
/// host's verdict (or the JSON document); exit 0 verified, 1 failed.
pub fn output(manifest: &Manifest, report: &Report, json: bool) -> anyhow::Result<ExitCode> {
    let verdict = verify(manifest, report)?;
    let text = if json {
        let mut s = serde_json::to_string_pretty(&VerdictDoc {
            schema: VERDICT_SCHEMA,
            verdict: &verdict,
            report,
        })
        .context("cannot serialise the verdict")?;
        s.push('\n');
        s
    } else {
        format!(
            "guest report:\n{}\nhost verdict:\n{}",
            render_table(report),
            verdict.render()
        )
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("cannot write to stdout")?;
    Ok(if verdict.ok() {
        ExitCode::SUCCESS
    } else {
        code(EXIT_FAILED)
    })
}

/// Runs `verify`.
pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let manifest = read_manifest(&args.manifest)?;
    let bytes = read_document(&args.report, REPORT_SIZE_MAX, "report")?;
    let report =
        Report::from_json(&bytes).with_context(|| format!("report {}", args.report.display()))?;
    output(&manifest, &report, args.json)
}
