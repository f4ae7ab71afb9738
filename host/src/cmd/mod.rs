//! One file per subcommand; each `run` returns the [`Exit`] or a
//! [`crate::exit::Failure`] that `main` prints once.

use std::path::Path;

use vmcreds_common::oem::Encoding;
use vmcreds_common::systemd::{Behaviour, FIRST_SMBIOS_IMPORT};
use vmcreds_common::NameRule;
use vmcreds_os::private::write_atomic_private;

use crate::cli::{EncodingArg, SourceArgs};
use crate::exit::{self, IoError, Result};
use crate::hv::Budget;
use crate::plan::{Plan, PlanError, PlanOptions};
use crate::source::{self, Loaded, CREDENTIALS_DIRECTORY};

pub mod cloud_hypervisor;
pub mod collect;
pub mod crosvm;
pub mod manifest;
pub mod qemu;
pub mod refused;
pub mod verify;

pub use crate::exit::Exit;

/// Loads the sources and validates them into a plan for `budget`, narrowed to
/// what the oldest guest systemd (`--guest-systemd`) reads, printing the
/// plan's warnings on stderr.
pub fn load_plan(sources: &SourceArgs, budget: Budget) -> Result<Plan> {
    load_plan_with(sources, budget, Vec::new())
}

/// [`load_plan`] with raw strings that come before the sources (a VmConfig's
/// own `platform.oem_strings`).
pub fn load_plan_with(sources: &SourceArgs, budget: Budget, first: Vec<Loaded>) -> Result<Plan> {
    if sources.guest_systemd < FIRST_SMBIOS_IMPORT {
        return Err(PlanError::GuestTooOld(sources.guest_systemd).into());
    }
    let budget = budget.for_guest(&Behaviour::of(sources.guest_systemd));
    let cred_dir = std::env::var_os(CREDENTIALS_DIRECTORY).map(std::path::PathBuf::from);
    let mut loaded = first;
    loaded.extend(source::load_all(&sources.ordered, cred_dir.as_deref())?);
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
    tracing::info!(
        target_name = budget.target,
        strings = plan.usage.strings,
        type11_bytes = plan.usage.type11_bytes,
        type11_max = ?budget.max_type11_bytes,
        decoded_bytes = plan.usage.decoded_total,
        "budget used"
    );
    Ok(plan)
}

/// `--manifest-out FILE`, written once the plan exists. Dropped without
/// [`ManifestOut::commit`] (the delivery failed), it removes the file again:
/// the manifest of a VM that never started does not stay behind.
#[derive(Debug)]
pub struct ManifestOut<'a> {
    path: Option<&'a Path>,
}

impl<'a> ManifestOut<'a> {
    /// Writes the plan's manifest to `--manifest-out`, if given (0600, atomically).
    pub fn write(sources: &'a SourceArgs, plan: &Plan) -> Result<ManifestOut<'a>> {
        let path = sources.manifest_out.as_deref();
        if let Some(p) = path {
            write_private(p, plan.manifest.to_json().as_bytes())?;
        }
        Ok(ManifestOut { path })
    }

    /// The delivery happened: keep the file.
    pub fn commit(mut self) {
        self.path = None;
    }
}

impl Drop for ManifestOut<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Prints a delivery (argv words, an env line); the manifest written for it
/// is kept only if that worked.
pub fn print_delivery(out: &vmcreds_common::Secret, manifest: ManifestOut<'_>) -> Result<Exit> {
    exit::write_stdout(out.expose())?;
    manifest.commit();
    Ok(Exit::Success)
}

/// [`write_atomic_private`] with the path in the error.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_private(path, bytes)
        .map_err(|e| IoError::new(format!("cannot write {}", crate::show_path(path)), e).into())
}
