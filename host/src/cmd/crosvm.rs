//! `vmcreds-host crosvm [SOURCES] [--form smbios|oem-strings] [--crosvm PATH]`:
//! prints crosvm's arguments, one per line: `--smbios` and
//! `oem-strings=[…]` (current crosvm), or `--oem-strings STRING` pairs
//! (older crosvm). crosvm has no file or fd input for SMBIOS, so the
//! credentials end up on its argv; a warning says so once on stderr.

use vmcreds_common::Secret;

use super::{load_plan, print_delivery, ManifestOut};
use crate::cli::{CrosvmArgs, CrosvmForm};
use crate::exit::{Exit, IoError, Result};
use crate::hv::crosvm::{self as hv, Form};
use crate::show_path;

/// Runs `crosvm`.
pub fn run(args: CrosvmArgs) -> Result<Exit> {
    let form = match (args.form, &args.crosvm) {
        (Some(CrosvmForm::Smbios), _) => Form::Smbios,
        (Some(CrosvmForm::OemStrings), _) => Form::OemStrings,
        (None, Some(path)) => hv::form_of(path)
            .map_err(|e| IoError::new(format!("cannot run {} run --help", show_path(path)), e))?,
        (None, None) => Form::default(),
    };
    tracing::info!(form = ?form, "crosvm form");
    let plan = load_plan(&args.sources, hv::BUDGET)?;
    let words = hv::args(&plan, form)?;
    let mut out = Secret::new(Vec::with_capacity(words.iter().map(|w| w.len() + 1).sum()));
    for w in words {
        out.extend_from_slice(w.as_bytes());
        out.extend_from_slice(b"\n");
        drop(Secret::new(w.into_bytes()));
    }
    if !cfg!(target_arch = "x86_64") {
        eprintln!("vmcreds-host: warning: crosvm builds SMBIOS tables only on x86_64 (--smbios and --oem-strings exist only there)");
    }
    let manifest = ManifestOut::write(&args.sources, &plan)?;
    drop(plan);
    eprintln!("vmcreds-host: warning: {}", hv::ARGV_WARNING);
    print_delivery(&out, manifest)
}
