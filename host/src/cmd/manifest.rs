//! `vmcreds-host manifest [SOURCES]`: the manifest JSON on stdout; nothing is
//! injected. The manifest is keyed with a fresh nonce (plain sha256 with
//! `--no-manifest`), and only systemd's own limits are checked (no target),
//! including the guest's read window (`--guest-systemd`).

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use vmcreds_common::limits::{Budget, TYPE11_MAX_STRINGS};

use super::{load_plan, write_manifest_out};
use crate::cli::ManifestArgs;

/// No hypervisor's table limit: only systemd's (the guest's read window, per
/// credential, total) and SMBIOS's 255 strings.
const ANY_TARGET: Budget = Budget {
    target: "SMBIOS",
    max_strings: TYPE11_MAX_STRINGS,
    max_type11_bytes: None,
    table_rule: "",
};

/// Runs `manifest`.
pub fn run(args: ManifestArgs) -> anyhow::Result<ExitCode> {
    let plan = load_plan(&args.sources, ANY_TARGET)?;
    write_manifest_out(&args.sources, &plan)?;
    std::io::stdout()
        .write_all(plan.manifest.to_json().as_bytes())
        .context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}
