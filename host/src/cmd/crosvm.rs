//! `vmcreds-host crosvm [SOURCES]`: prints crosvm's `--oem-strings STRING`
//! arguments, one per line. crosvm has no file or fd input for SMBIOS, so the
//! credentials end up on its argv; a warning says so once on stderr.

use std::process::ExitCode;

use vmcreds_common::limits::Budget;
use vmcreds_common::Secret;

use super::cloud_hypervisor::{is_public, public_names};
use super::{load_plan, print_delivery, write_manifest_out};
use crate::cli::CrosvmArgs;
use crate::target::crosvm as target;

/// Runs `crosvm`.
pub fn run(args: CrosvmArgs) -> anyhow::Result<ExitCode> {
    let plan = load_plan(&args.sources, Budget::CROSVM)?;
    let names = public_names(&args.sources);
    let words = target::oem_args(&plan, is_public(&names))?;
    let mut out = Secret::new(Vec::with_capacity(words.iter().map(|w| w.len() + 1).sum()));
    for w in &words {
        out.extend_from_slice(w.as_bytes());
        out.extend_from_slice(b"\n");
    }
    drop(words);
    if !cfg!(target_arch = "x86_64") {
        eprintln!("vmcreds-host: warning: crosvm builds SMBIOS tables only on x86_64 (--smbios and --oem-strings exist only there)");
    }
    write_manifest_out(&args.sources, &plan)?;
    drop(plan);
    eprintln!("vmcreds-host: warning: {}", target::ARGV_WARNING);
    print_delivery(&args.sources, &out)?;
    Ok(ExitCode::SUCCESS)
}
