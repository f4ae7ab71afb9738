//! `get NAME`: prints one value, on purpose, as raw bytes: from
//! `/run/credentials/@system`, else from SMBIOS (what systemd would import),
//! else from QEMU fw_cfg.

use thiserror::Error;
use vmcreds_common::escape::escape_name;
use vmcreds_common::file_kind::FileKind;
use vmcreds_common::limits::CREDENTIAL_SIZE_MAX;
use vmcreds_common::Secret;

use crate::cli::GetArgs;
use crate::creds_dir::{self, CredsLocation, OneFile, SYSTEM_DIR};
use crate::exit::{Classify, Exit, Result, Usage};
use crate::observe;
use crate::precond::FW_CFG_DIR;
use crate::sysfs::Root;

/// Why `get` prints nothing (exit 1).
#[derive(Debug, Error)]
pub enum GetError {
    /// Nowhere to be found.
    #[error("credential \"{0}\" not found in {SYSTEM_DIR}, SMBIOS or fw_cfg")]
    NotFound(String),
    /// A file systemd cannot have written.
    #[error("{SYSTEM_DIR}/{name} is {bytes} bytes, over systemd's limit of {CREDENTIAL_SIZE_MAX} per credential: not a credential systemd imported; not printed")]
    TooLarge {
        /// The name, escaped.
        name: String,
        /// Its size.
        bytes: u64,
    },
    /// Not a regular file.
    #[error("{SYSTEM_DIR}/{name} is a {kind}, not a regular file: not followed, not printed")]
    NotRegular {
        /// The name, escaped.
        name: String,
        /// What it is.
        kind: FileKind,
    },
}

impl Classify<Exit> for GetError {
    fn exit(&self) -> Exit {
        Exit::Failed
    }
}

/// Runs `get`.
pub fn run(args: &GetArgs) -> Result<Exit> {
    let name = &args.name;
    let shown = escape_name(name.as_bytes());
    if let Err(e) = vmcreds_common::name::check_systemd(name.as_bytes()) {
        return Err(Usage(format!("\"{shown}\" is not a credential name: {e}")).into());
    }
    let root = Root::open(&args.root.root)?;
    let value = match creds_dir::read_file(&root, &CredsLocation::System, name)? {
        OneFile::Value(v) => v,
        OneFile::TooLarge(bytes) => return Err(GetError::TooLarge { name: shown, bytes }.into()),
        OneFile::NotRegular(kind) => return Err(GetError::NotRegular { name: shown, kind }.into()),
        OneFile::Absent => {
            let smbios = observe::read_smbios(&root, args.root.systemd_version)?;
            match smbios.imported_value(name) {
                Some(v) => v.clone(),
                None => from_fw_cfg(&root, name)?.ok_or(GetError::NotFound(shown))?,
            }
        }
    };
    super::write_stdout(value.expose())?;
    Ok(Exit::Success)
}

fn from_fw_cfg(root: &Root, name: &str) -> Result<Option<Secret>> {
    Ok(root
        .read_bounded(&format!("{FW_CFG_DIR}/{name}/raw"), CREDENTIAL_SIZE_MAX)?
        .map(|b| Secret::new(b.bytes)))
}
