//! `vmcreds-host crosvm [SOURCES]`: prints crosvm's `--oem-strings STRING`
//! arguments, one per line. crosvm has no file or fd input for SMBIOS, so the
//! credentials end up on its argv; a warning says so once on stderr.

use vmcreds_common::Secret;

use super::{load_plan, print_delivery, ManifestOut};
use crate::cli::CrosvmArgs;
use crate::exit::{Exit, Result};
use crate::hv::crosvm as hv;

/// Runs `crosvm`.
pub fn run(args: CrosvmArgs) -> Result<Exit> {
    let plan = load_plan(&args.sources, hv::BUDGET)?;
    let words = hv::oem_args(&plan)?;
    let mut out = Secret::new(Vec::with_capacity(words.iter().map(|w| w.len() + 1).sum()));
    for w in &words {
        out.extend_from_slice(w.as_bytes());
        out.extend_from_slice(b"\n");
    }
    drop(words);
    if !cfg!(target_arch = "x86_64") {
        eprintln!("vmcreds-host: warning: crosvm builds SMBIOS tables only on x86_64 (--smbios and --oem-strings exist only there)");
    }
    let manifest = ManifestOut::write(&args.sources, &plan)?;
    drop(plan);
    eprintln!("vmcreds-host: warning: {}", hv::ARGV_WARNING);
    print_delivery(&out, manifest)
}
