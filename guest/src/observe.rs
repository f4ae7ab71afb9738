//! Reads everything a check needs, once: the Type 11 entries, the whole
//! table, the systemd version, the preconditions and the other sources, and
//! predicts systemd's import with `vmcreds_common::predict`.

use std::path::{Path, PathBuf};

use vmcreds_common::predict::{predict, Prediction};
use vmcreds_common::systemd::Behaviour;

use crate::creds_dir::{self, Listing};
use crate::dmi::{self, RawEntry, TableReading};
use crate::precond::{self, Facts, FwCfgCredential, SystemdVersion};
use crate::sysfs::{ReadError, Root};

/// Everything read from the machine (or the `--root` tree).
#[derive(Debug)]
pub struct Observation {
    /// The root read.
    pub root: Root,
    /// The systemd version and how it was found.
    pub systemd: SystemdVersion,
    /// The behaviour modelled.
    pub behaviour: Behaviour,
    /// The `11-N/raw` files.
    pub entries: Vec<RawEntry>,
    /// Reading stopped at [`dmi::RAW_TOTAL_MAX`].
    pub entries_cut: bool,
    /// The whole-table reader's findings.
    pub table: TableReading,
    /// Preconditions and the kernel command line.
    pub facts: Facts,
    /// fw_cfg credentials.
    pub fw_cfg: Vec<FwCfgCredential>,
    /// systemd's import, predicted.
    pub prediction: Prediction,
}

/// Reads and predicts. Errors are "could not read" (exit 3).
pub fn observe(root: &Root, systemd_override: Option<u32>) -> Result<Observation, ReadError> {
    let (entries, entries_cut) = dmi::read_entries(root)?;
    let table = dmi::read_table(root, &entries)?;
    let systemd = precond::systemd_version(root, systemd_override)?;
    let behaviour = systemd.behaviour();
    let facts = precond::check(root, &systemd)?;
    let fw_cfg = precond::fw_cfg(root)?;
    let prior = precond::prior_credentials(&fw_cfg);
    let raw: Vec<&[u8]> = entries.iter().map(|e| e.bytes.as_slice()).collect();
    let prediction = predict(&raw, &behaviour, &prior);
    Ok(Observation {
        root: root.clone(),
        systemd,
        behaviour,
        entries,
        entries_cut,
        table,
        facts,
        fw_cfg,
        prediction,
    })
}

/// Where the imported credentials are read from.
#[derive(Clone, Debug)]
pub enum CredsLocation {
    /// `/run/credentials/@system` under the root.
    System,
    /// A directory `import --to` wrote (a real path).
    Dir(PathBuf),
}

impl CredsLocation {
    /// The real path of the directory.
    pub fn path(&self, root: &Root) -> PathBuf {
        match self {
            CredsLocation::System => root.path(creds_dir::SYSTEM_DIR),
            CredsLocation::Dir(p) => p.clone(),
        }
    }

    /// Reads the directory, digesting with `nonce`.
    pub fn read(
        &self,
        root: &Root,
        nonce: Option<&vmcreds_common::Nonce>,
    ) -> Result<Option<Listing>, ReadError> {
        let path = self.path(root);
        let fs = match self {
            CredsLocation::System => creds_dir::judge_fs(
                root,
                creds_dir::SYSTEM_DIR,
                root.is_host().then_some(path.as_path()),
            )?,
            CredsLocation::Dir(p) => {
                let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
                creds_dir::judge_fs(
                    &Root::new("/"),
                    &abs.to_string_lossy(),
                    Some(Path::new(&abs)),
                )?
            }
        };
        creds_dir::read_dir(&path, nonce, fs)
    }
}
