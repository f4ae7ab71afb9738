//! Everything a check reads, read once: the Type 11 entries, the whole
//! table, the systemd version, the preconditions and the other sources
//! ([`read_smbios`]); then the manifest in force and the imported directory,
//! digested with the manifest's nonce ([`observe`]). The decision is
//! `vmcreds_common::check::evaluate`, which does no I/O.

use std::path::Path;

use vmcreds_common::check::{
    self, Expect, Expectations, ManifestSource, Observation, TableReading, NOTIFY_CREDENTIAL,
};
use vmcreds_common::limits::MANIFEST_SIZE_MAX;
use vmcreds_common::manifest::{Manifest, MANIFEST_CREDENTIAL};
use vmcreds_common::predict::Prediction;
use vmcreds_common::report::Precondition;
use vmcreds_common::systemd::SystemdVersion;

use crate::creds_dir::{self, CredsLocation};
use crate::dmi;
use crate::exit::{Result, Usage};
use crate::precond::{self, Cmdline};
use crate::sysfs::{ReadError, Root};

/// Who reads: the report's `generator`.
pub fn reader() -> String {
    format!("vmcreds-guest {}", env!("CARGO_PKG_VERSION"))
}

/// What SMBIOS and the other sources hold, and systemd's import predicted.
#[derive(Debug)]
pub struct SmbiosReading {
    /// The running systemd.
    pub systemd: SystemdVersion,
    /// The `11-N/raw` files.
    pub entries: Vec<check::RawEntry>,
    /// Reading stopped at this total bound.
    pub entries_cut_at: Option<usize>,
    /// The whole table.
    pub table: TableReading,
    /// The preconditions.
    pub preconditions: Vec<Precondition>,
    /// The kernel command line, parsed (names only).
    pub cmdline: Cmdline,
    /// fw_cfg credentials.
    pub fw_cfg: Vec<check::FwCfgCredential>,
    /// Whether this is a confidential VM, and which kind.
    pub cvm: check::CvmFinding,
    /// What the boot chain shows of the import.
    pub boot: check::BootEvidence,
    /// systemd's import, predicted.
    pub prediction: Prediction,
}

impl SmbiosReading {
    /// The value of `name` that systemd imports from SMBIOS, if any.
    pub fn imported_value(&self, name: &str) -> Option<&vmcreds_common::Secret> {
        self.prediction
            .imported()
            .find(|s| s.name.as_deref() == Some(name))
            .and_then(|s| s.value.as_ref())
    }
}

/// Reads the SMBIOS side and predicts. Errors are "could not read" (exit 3).
pub fn read_smbios(root: &Root, systemd_override: Option<u32>) -> Result<SmbiosReading> {
    let (entries, entries_cut_at) = dmi::read_entries(root)?;
    let table = dmi::read_table(root, &entries)?;
    let systemd = precond::systemd_version(root, systemd_override)?;
    let facts = precond::check(root, &systemd)?;
    let fw_cfg = precond::fw_cfg(root)?;
    let behaviour = systemd.behaviour();
    let prediction =
        check::predict_import_gated(&entries, &behaviour, &fw_cfg, facts.cvm.gate(&behaviour));
    let boot = crate::boot::read(root, facts.pid1_environ.as_deref());
    tracing::info!(
        systemd = %systemd.detail,
        entries = entries.len(),
        strings = prediction.strings.len(),
        importable = prediction.imported().count(),
        fw_cfg = fw_cfg.len(),
        "SMBIOS read and systemd's import predicted"
    );
    for p in &facts.preconditions {
        tracing::debug!(check = %p.check, state = %p.state, detail = %p.detail, "precondition");
    }
    Ok(SmbiosReading {
        systemd,
        entries,
        entries_cut_at,
        table,
        preconditions: facts.preconditions,
        cmdline: facts.cmdline,
        fw_cfg,
        cvm: facts.cvm,
        boot,
        prediction,
    })
}

/// Reads and parses `--manifest FILE` (a usage error when it is not a
/// manifest or too large; exit 3 when it cannot be read).
pub fn manifest_file(p: &Path) -> Result<(Manifest, ManifestSource)> {
    let shown = vmcreds_os::show_path(p);
    let b = std::fs::File::open(p)
        .and_then(|f| vmcreds_os::bounded::read_bounded(f, MANIFEST_SIZE_MAX))
        .map_err(|e| ReadError::new(p, e))?;
    if b.over_bound {
        return Err(Usage(format!(
            "--manifest {shown}: larger than {MANIFEST_SIZE_MAX} bytes"
        ))
        .into());
    }
    let m =
        Manifest::from_json(&b.bytes).map_err(|e| Usage(format!("--manifest {shown}: {e:#}")))?;
    Ok((m, ManifestSource::File(shown)))
}

/// The manifest in force, and why a `vmcreds.manifest` credential found could
/// not be used.
struct ManifestChoice {
    manifest: Option<(Manifest, ManifestSource)>,
    problem: Option<String>,
}

/// The manifest in force: `--manifest FILE` (already read), else the
/// imported `vmcreds.manifest`, else the one in SMBIOS; and, when the
/// credential found does not parse, why.
fn choose_manifest(
    root: &Root,
    loc: &CredsLocation,
    smbios: &SmbiosReading,
    file: Option<&(Manifest, ManifestSource)>,
) -> Result<ManifestChoice> {
    let chosen = |manifest, problem| Ok(ManifestChoice { manifest, problem });
    if let Some(m) = file {
        return chosen(Some(m.clone()), None);
    }
    let (bytes, source) = match creds_dir::read_one(root, loc, MANIFEST_CREDENTIAL)? {
        Some(b) => (b, ManifestSource::Imported),
        None => match smbios.imported_value(MANIFEST_CREDENTIAL) {
            Some(v) => (v.expose().to_vec(), ManifestSource::Smbios),
            None => return chosen(None, None),
        },
    };
    match Manifest::from_json(&bytes) {
        Ok(m) => chosen(Some((m, source)), None),
        Err(e) => {
            let whence = if source == ManifestSource::Imported {
                "imported"
            } else {
                "SMBIOS"
            };
            chosen(
                None,
                Some(format!(
                    "the {whence} {MANIFEST_CREDENTIAL} credential is not a valid manifest: {e}"
                )),
            )
        }
    }
}

/// The nonce of the manifest in force (for `list`, which reads no listing).
pub fn manifest_nonce(
    root: &Root,
    loc: &CredsLocation,
    smbios: &SmbiosReading,
) -> Result<Option<vmcreds_common::Nonce>> {
    Ok(choose_manifest(root, loc, smbios, None)?
        .manifest
        .and_then(|(m, _)| m.nonce))
}

/// What the check is told to expect on the command line.
#[derive(Clone, Debug, Default)]
pub struct Asked {
    /// `--manifest FILE`, read.
    pub manifest: Option<(Manifest, ManifestSource)>,
    /// `--expect` arguments.
    pub expects: Vec<Expect>,
}

/// The observation and the expectations, ready for `evaluate`.
#[derive(Debug)]
pub struct Observed {
    /// What the machine shows.
    pub observation: Observation,
    /// What it is measured against.
    pub expectations: Expectations,
}

/// Completes `smbios` with the manifest in force and the imported directory
/// at `loc`, digested with the manifest's nonce.
pub fn observe(
    root: &Root,
    loc: &CredsLocation,
    smbios: SmbiosReading,
    asked: &Asked,
) -> Result<Observed> {
    let ManifestChoice {
        manifest,
        problem: manifest_problem,
    } = choose_manifest(root, loc, &smbios, asked.manifest.as_ref())?;
    let nonce = manifest.as_ref().and_then(|(m, _)| m.nonce.clone());
    tracing::info!(
        manifest = ?manifest.as_ref().map(|(_, s)| s),
        nonce_id = ?nonce.as_ref().map(|n| n.id()),
        problem = manifest_problem.is_some(),
        "manifest in force"
    );
    let imported = creds_dir::read_listing(root, loc, nonce.as_ref())?;
    match &imported {
        Some(l) => {
            tracing::info!(dir = %loc.display(), files = l.files.len(), storage = %l.storage, "imported credentials listed")
        }
        None => tracing::info!(dir = %loc.display(), "no imported credentials directory"),
    }
    Ok(Observed {
        observation: Observation {
            reader: reader(),
            systemd: smbios.systemd,
            entries: smbios.entries,
            entries_cut_at: smbios.entries_cut_at,
            table: smbios.table,
            preconditions: smbios.preconditions,
            cmdline_credentials: smbios.cmdline.credential_names,
            fw_cfg: smbios.fw_cfg,
            cvm: smbios.cvm,
            boot: smbios.boot,
            imported,
            imported_dir: loc.display(),
            nonce,
            prediction: smbios.prediction,
        },
        expectations: Expectations {
            manifest,
            manifest_problem,
            expects: asked.expects.clone(),
        },
    })
}

/// The `vmm.notify_socket` credential's value: imported at `loc`, else what
/// systemd imports from SMBIOS.
pub fn notify_socket(
    root: &Root,
    loc: &CredsLocation,
    obs: &Observation,
) -> Result<Option<Vec<u8>>> {
    if let Some(v) = creds_dir::read_one(root, loc, NOTIFY_CREDENTIAL)? {
        return Ok(Some(v));
    }
    Ok(obs
        .prediction
        .imported()
        .find(|s| s.name.as_deref() == Some(NOTIFY_CREDENTIAL))
        .and_then(|s| s.value.as_ref())
        .map(|v| v.expose().to_vec()))
}
