//! `vmcreds-host crosvm [SOURCES]`: prints crosvm's `--oem-strings STRING`
//! arguments, one per line. crosvm has no file or fd input for SMBIOS, so the
//! credentials end up on its argv; a warning says so once on stderr.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use vmcreds_common::limits::Budget;
use vmcreds_common::Secret;

use super::cloud_hypervisor::{is_public, public_names};
use super::{load_plan, write_manifest_out};
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
    let res = std::io::stdout()
        .write_all(out.expose())
        .and_then(|()| std::io::stdout().flush())
        .context("cannot write to stdout");
    if res.is_err() {
        if let Some(path) = &args.sources.manifest_out {
            let _ = std::fs::remove_file(path);
        }
    }
    res?;
    Ok(ExitCode::SUCCESS)
}
