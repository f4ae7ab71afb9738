//! `vmcreds-host verify --manifest M --report R [--json]`: a report file
//! checked against a manifest file, printed as [`crate::verdict`] does for
//! `collect` too.

use crate::cli::VerifyArgs;
use crate::exit::{Exit, Result};
use crate::verdict::{output, read_manifest, read_report};

/// Runs `verify`.
pub fn run(args: VerifyArgs) -> Result<Exit> {
    let manifest = read_manifest(&args.manifest)?;
    let report = read_report(&args.report)?;
    output(&manifest, &report, args.json)
}
