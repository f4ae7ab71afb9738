//! `vmcreds-host manifest [SOURCES]`: the manifest JSON on stdout; nothing is
//! injected. The manifest is keyed with a fresh nonce (plain sha256 with
//! `--no-manifest`), and only systemd's own limits are checked (no target).

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use vmcreds_common::limits::Budget;

use super::{load_plan, write_manifest_out};
use crate::cli::ManifestArgs;

/// Runs `manifest`.
pub fn run(args: ManifestArgs) -> anyhow::Result<ExitCode> {
    let plan = load_plan(&args.sources, Budget::QEMU_64)?;
    write_manifest_out(&args.sources, &plan)?;
    std::io::stdout()
        .write_all(plan.manifest.to_json().as_bytes())
        .context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}
