//! One file per subcommand; each `run` returns the exit code or an error that
//! `main` prints once.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use vmcreds_common::limits::Budget;
use vmcreds_common::oem::Encoding;
use vmcreds_common::systemd::{Behaviour, FIRST_SMBIOS_IMPORT};
use vmcreds_common::NameRule;

use crate::cli::{EncodingArg, SourceArgs};
use crate::fsutil::write_atomic_private;
use crate::plan::{Plan, PlanOptions};
use crate::source::{self, CREDENTIALS_DIRECTORY};

pub mod cloud_hypervisor;
pub mod collect;
pub mod crosvm;
pub mod manifest;
pub mod qemu;
pub mod refused;
pub mod verify;

/// Exit code: verification failed.
pub const EXIT_FAILED: u8 = 1;

/// Loads the sources and validates them into a plan for `budget`, narrowed to
/// what the oldest guest systemd (`--guest-systemd`) reads, printing the
/// plan's warnings on stderr.
pub fn load_plan(sources: &SourceArgs, budget: Budget) -> anyhow::Result<Plan> {
    if sources.guest_systemd < FIRST_SMBIOS_IMPORT {
        anyhow::bail!(
            "--guest-systemd {}: systemd imports SMBIOS credentials only from version {FIRST_SMBIOS_IMPORT} on; in such a guest run vmcreds-guest import instead",
            sources.guest_systemd
        );
    }
    let budget = budget.for_guest(&Behaviour::of(sources.guest_systemd));
    let cred_dir = std::env::var_os(CREDENTIALS_DIRECTORY).map(std::path::PathBuf::from);
    let loaded = source::load_all(&sources.ordered, cred_dir.as_deref())?;
    let plan = Plan::build(
        loaded,
        PlanOptions {
            rule: if sources.allow_any_name {
                NameRule::Systemd
            } else {
                NameRule::Portable
            },
            encoding: match sources.encoding {
                EncodingArg::Binary => Encoding::Binary,
                EncodingArg::Text => Encoding::Text,
            },
            manifest: !sources.no_manifest,
            budget,
        },
    )?;
    for w in &plan.warnings {
        eprintln!("vmcreds-host: warning: {w}");
    }
    Ok(plan)
}

/// Writes the plan's manifest to `--manifest-out`, if given (0600, atomically).
pub fn write_manifest_out(sources: &SourceArgs, plan: &Plan) -> anyhow::Result<()> {
    if let Some(path) = &sources.manifest_out {
        write_private(path, plan.manifest.to_json().as_bytes())?;
    }
    Ok(())
}

/// Removes `--manifest-out` again, if given: nothing half-done, the manifest
/// of a VM that never started goes too.
pub fn remove_manifest_out(sources: &SourceArgs) {
    if let Some(path) = &sources.manifest_out {
        let _ = std::fs::remove_file(path);
    }
}

/// Writes a delivery that is printed (argv words, an env line) to stdout;
/// if that fails, the manifest written for it is removed.
pub fn print_delivery(sources: &SourceArgs, out: &vmcreds_common::Secret) -> anyhow::Result<()> {
    use std::io::Write as _;
    let res = std::io::stdout()
        .write_all(out.expose())
        .and_then(|()| std::io::stdout().flush())
        .context("cannot write to stdout");
    if res.is_err() {
        remove_manifest_out(sources);
    }
    res
}

/// [`write_atomic_private`] with the path in the error.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomic_private(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// An exit code.
pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}
