//! `vmcreds-host manifest [SOURCES]`: the manifest JSON on stdout; nothing is
//! injected. The manifest is keyed with a fresh nonce (plain sha256 with
//! `--no-manifest`), and only systemd's own limits are checked (no target),
//! including the guest's read window (`--guest-systemd`).

use super::{load_plan, ManifestOut};
use crate::cli::ManifestArgs;
use crate::exit::{self, Exit, Result};
use crate::hv::Budget;

/// Runs `manifest`.
pub fn run(args: ManifestArgs) -> Result<Exit> {
    let plan = load_plan(&args.sources, Budget::ANY_TARGET)?;
    let manifest = ManifestOut::write(&args.sources, &plan)?;
    exit::write_stdout(plan.manifest.to_json().as_bytes())?;
    manifest.commit();
    Ok(Exit::Success)
}
