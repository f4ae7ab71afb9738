//! `get NAME`: prints one value, on purpose, as raw bytes: from
//! `/run/credentials/@system`, else from SMBIOS (what systemd would import),
//! else from QEMU fw_cfg.

use vmcreds_common::escape::escape_name;
use vmcreds_common::Secret;

use crate::cli::GetArgs;
use crate::creds_dir::{self, SYSTEM_DIR};
use crate::exit::{Exit, UsageError};
use crate::observe::observe;
use crate::precond::FW_CFG_DIR;
use crate::sysfs::{ReadError, Root};

/// Runs `get`.
pub fn run(args: &GetArgs) -> anyhow::Result<Exit> {
    let name = &args.name;
    if let Err(e) = vmcreds_common::name::check_systemd(name.as_bytes()) {
        return Err(UsageError(format!(
            "\"{}\" is not a credential name: {e}",
            escape_name(name.as_bytes())
        ))
        .into());
    }
    let root = Root::new(&args.root.root);
    let value = match from_system(&root, name)? {
        Some(v) => v,
        None => {
            let obs = observe(&root, args.root.systemd_version)?;
            let smbios = obs
                .prediction
                .imported()
                .find(|s| s.name.as_deref() == Some(name.as_str()))
                .and_then(|s| s.value.clone());
            match smbios {
                Some(v) => v,
                None => match from_fw_cfg(&root, name)? {
                    Some(v) => v,
                    None => {
                        eprintln!(
                            "vmcreds-guest: credential \"{}\" not found in {SYSTEM_DIR}, SMBIOS or fw_cfg",
                            escape_name(name.as_bytes())
                        );
                        return Ok(Exit::Failed);
                    }
                },
            }
        }
    };
    super::write_stdout(value.expose())?;
    Ok(Exit::Verified)
}

fn from_system(root: &Root, name: &str) -> Result<Option<Secret>, ReadError> {
    let path = root.path(SYSTEM_DIR).join(name);
    Ok(creds_dir::read_regular(&path, 16 << 20)?.map(Secret::new))
}

fn from_fw_cfg(root: &Root, name: &str) -> Result<Option<Secret>, ReadError> {
    Ok(root
        .read_bounded(
            &format!("{FW_CFG_DIR}/{name}/raw"),
            vmcreds_common::limits::CREDENTIAL_SIZE_MAX,
        )?
        .map(|b| Secret::new(b.bytes)))
}
