//! The report (`vmcreds.report/1`): what the guest saw, per credential, with
//! names, byte counts and digests, never values. Field names are a public
//! interface (documented in the README): add fields, never rename them.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::digest::Digest;
use crate::limits::REPORT_SIZE_MAX;
use crate::oem::Encoding;

/// The schema name and version.
pub const REPORT_SCHEMA: &str = "vmcreds.report/1";

/// Writes `as_str` for `Display`.
macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

/// The kind of SMBIOS entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryPointKind {
    /// `_SM_` (SMBIOS 2.x): a u16 table length.
    #[serde(rename = "32-bit")]
    Bits32,
    /// `_SM3_` (SMBIOS 3.x): a u32 maximum table size.
    #[serde(rename = "64-bit")]
    Bits64,
    /// `_DMI_` alone (before SMBIOS 2.1).
    #[serde(rename = "legacy")]
    Legacy,
}

impl EntryPointKind {
    /// The JSON and display text.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryPointKind::Bits32 => "32-bit",
            EntryPointKind::Bits64 => "64-bit",
            EntryPointKind::Legacy => "legacy",
        }
    }
}

/// Which of systemd's silent preconditions a [`Precondition`] is about.
/// Reports from a newer guest may name ones this version does not know;
/// they are kept as [`PreconditionId::Other`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreconditionId {
    /// systemd is new enough to import SMBIOS credentials (252).
    SystemdVersion,
    /// Not in a container (systemd imports nothing there).
    NotContainer,
    /// Not a confidential VM (systemd ≥ 254 imports nothing there).
    NotConfidentialVm,
    /// `systemd.import_credentials=` does not turn the import off.
    ImportEnabled,
    /// `/sys/firmware/dmi/entries` exists (dmi-sysfs).
    DmiSysfs,
    /// An SMBIOS Type 11 entry exists.
    Type11Present,
    /// A systemd initrd read the firmware's credentials (SMBIOS, fw_cfg),
    /// or imported nothing and so left the import to PID 1 after
    /// switch-root.
    InitrdImport,
    /// What the initrd imported reached `/run/credentials/@system` after
    /// switch-root.
    SwitchRootHandoff,
    /// A precondition this version does not know.
    #[serde(untagged)]
    Other(String),
}

impl PreconditionId {
    /// The JSON and display text.
    pub fn as_str(&self) -> &str {
        match self {
            PreconditionId::SystemdVersion => "systemd_version",
            PreconditionId::NotContainer => "not_container",
            PreconditionId::NotConfidentialVm => "not_confidential_vm",
            PreconditionId::ImportEnabled => "import_enabled",
            PreconditionId::DmiSysfs => "dmi_sysfs",
            PreconditionId::Type11Present => "type11_present",
            PreconditionId::InitrdImport => "initrd_import",
            PreconditionId::SwitchRootHandoff => "switch_root_handoff",
            PreconditionId::Other(s) => s,
        }
    }
}

impl std::fmt::Display for PreconditionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How safely a credential file is stored, as `systemd-creds list` judges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    /// ramfs, or tmpfs with `noswap`: never written to swap.
    Secure,
    /// Any other file system (tmpfs without `noswap` may be swapped out).
    Weak,
    /// The file's mode gives group or others access, or the owner write or
    /// execute (`(st_mode & 0377) != 0`).
    Insecure,
}

impl Storage {
    /// The JSON and display text.
    pub fn as_str(self) -> &'static str {
        match self {
            Storage::Secure => "secure",
            Storage::Weak => "weak",
            Storage::Insecure => "insecure",
        }
    }

    /// A file with `mode` on a file system judged `fs`.
    pub fn of_file(mode: u32, fs: Storage) -> Storage {
        if mode & 0o377 != 0 {
            Storage::Insecure
        } else {
            fs
        }
    }
}

/// A file mode, written in reports as four octal digits (`"0400"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl std::fmt::Display for FileMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04o}", self.0 & 0o7777)
    }
}

impl Serialize for FileMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.len() > 6 {
            return Err(serde::de::Error::custom("a file mode is 1-6 octal digits"));
        }
        u32::from_str_radix(&s, 8)
            .map(FileMode)
            .map_err(|_| serde::de::Error::custom("a file mode is octal digits"))
    }
}

/// Where an expectation came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectationSource {
    /// The manifest: the `vmcreds.manifest` credential, or `--manifest FILE`.
    Manifest,
    /// `--expect NAME[:BYTES]`.
    Expect,
}

impl ExpectationSource {
    /// The JSON and display text.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpectationSource::Manifest => "manifest",
            ExpectationSource::Expect => "expect",
        }
    }
}

/// Where systemd got a credential it imported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialSource {
    /// An SMBIOS Type 11 string.
    Smbios,
    /// QEMU's fw_cfg (`opt/io.systemd.credentials/`).
    FwCfg,
    /// `systemd.set_credential[_binary]=` on the kernel command line.
    KernelCmdline,
    /// `/run/credentials/@initrd`, merged after switch-root.
    Initrd,
    /// `/.extra/system_credentials/` in the initrd (a cpio a VMM appends,
    /// systemd ≥ 262).
    InitrdCpio,
    /// Present, but none of the above explains it.
    Unknown,
}

impl CredentialSource {
    /// The JSON and display text.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialSource::Smbios => "smbios",
            CredentialSource::FwCfg => "fw_cfg",
            CredentialSource::KernelCmdline => "kernel_cmdline",
            CredentialSource::Initrd => "initrd",
            CredentialSource::InitrdCpio => "initrd_cpio",
            CredentialSource::Unknown => "unknown",
        }
    }
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`REPORT_SCHEMA`].
    pub schema: String,
    /// The tool and version that wrote it.
    pub generator: String,
    /// [`crate::Nonce::id`] of the manifest the digests are keyed with; absent
    /// when digests are plain sha256.
    #[serde(default)]
    pub nonce_id: Option<String>,
    /// The machine.
    pub system: System,
    /// The conditions under which systemd imports at all.
    pub preconditions: Vec<Precondition>,
    /// What the SMBIOS Type 11 entries held.
    pub smbios: Smbios,
    /// One row per credential name seen anywhere (SMBIOS, `/run/credentials`,
    /// expectations).
    pub credentials: Vec<CredentialReport>,
    /// The overall result.
    pub verdict: Verdict,
    /// Present when rows were left out to keep the report within
    /// [`REPORT_SIZE_MAX`] ([`crate::report_bound::fit`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<crate::report_bound::Cut>,
}

/// The machine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct System {
    /// SMBIOS version from the entry point, e.g. `3.0.0`.
    pub smbios_version: Option<String>,
    /// `32-bit` (`_SM_`), `64-bit` (`_SM3_`) or `legacy` (`_DMI_`).
    pub entry_point: Option<EntryPointKind>,
    /// Size of the whole structure table in bytes.
    pub table_bytes: Option<u64>,
    /// Type 1 manufacturer (escaped, at most 64 bytes), e.g. `QEMU`.
    pub hypervisor_vendor: Option<String>,
    /// Type 1 product name (escaped, at most 64 bytes).
    pub hypervisor_product: Option<String>,
    /// Running systemd version.
    pub systemd_version: Option<u32>,
    /// The systemd version the prediction models.
    pub predicted_for_systemd: Option<u32>,
}

/// State of a precondition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    /// Holds: not a cause of loss.
    Ok,
    /// Does not hold: explains a loss.
    Failed,
    /// Could not be determined.
    Unknown,
}

impl CheckState {
    /// The JSON and display text.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::Ok => "ok",
            CheckState::Failed => "failed",
            CheckState::Unknown => "unknown",
        }
    }
}

/// One silent precondition of systemd's import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Precondition {
    /// Stable identifier, e.g. `not_container`, `import_enabled`, `dmi_sysfs`.
    pub check: PreconditionId,
    /// Its state.
    pub state: CheckState,
    /// What was seen, for people.
    pub detail: String,
}

/// What the Type 11 entries held.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Smbios {
    /// One per `/sys/firmware/dmi/entries/11-N/raw`.
    pub entries: Vec<EntryReport>,
    /// Counts by class.
    pub strings: StringCounts,
    /// Credential strings systemd refuses and whose name cannot be delimited
    /// (no `=`), so they have no row in `credentials`.
    pub unnamed_rejections: Vec<UnnamedRejection>,
    /// Every credential string systemd did not import, in every entry
    /// (those of entries it never read included), one each, in entry order.
    #[serde(default)]
    pub not_imported: Vec<StringReport>,
    /// Does the whole-table reader (`/sys/firmware/dmi/tables/DMI`) agree
    /// with the per-entry reader?
    pub table_cross_check: Option<TableCrossCheck>,
}

/// One raw entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryReport {
    /// The N of `11-N`.
    pub entry: u32,
    /// Bytes in the raw file.
    pub bytes: u64,
    /// Structure handle.
    pub handle: Option<u16>,
    /// Count byte.
    pub count: Option<u8>,
    /// Strings found.
    pub strings: u64,
    /// The header error that stops systemd's scan here.
    pub error: Option<String>,
    /// What systemd tolerates but a person should know.
    pub anomalies: Vec<String>,
}

/// Counts of strings by class.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StringCounts {
    /// All non-empty strings.
    pub total: u64,
    /// Credential strings systemd imports.
    pub imported: u64,
    /// Credential strings systemd refuses.
    pub rejected: u64,
    /// Credential strings that lose to an earlier one of the same name.
    pub shadowed: u64,
    /// Strings without a credential prefix (never printed).
    pub not_credential: u64,
    /// Credential strings in entries systemd never read (its scan stopped
    /// at an earlier or this entry's bad header).
    #[serde(default)]
    pub not_read: u64,
}

/// A refused string without a name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnnamedRejection {
    /// The N of `11-N`.
    pub entry: u32,
    /// 1-based position in the entry.
    pub string: u64,
    /// systemd's reason.
    pub reason: String,
}

/// One credential string systemd did not import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StringReport {
    /// The N of `11-N`.
    pub entry: u32,
    /// 1-based position in the entry.
    pub string: u64,
    /// Its name (escaped), when one could be delimited.
    pub name: Option<String>,
    /// How it claimed to be carried.
    pub encoding: Option<Encoding>,
    /// What systemd did with it: `rejected`, `too_large`, `over_total`,
    /// `shadowed` or `not_read`.
    pub outcome: crate::predict::OutcomeKind,
    /// Why.
    pub reason: String,
}

/// Comparison of the two SMBIOS readers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCrossCheck {
    /// Type 11 structures in the whole table.
    pub structures: u64,
    /// Do their bytes equal the per-entry files?
    pub agrees: bool,
    /// What differs, if anything.
    pub detail: String,
}

/// What happened to a credential in SMBIOS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmbiosStatus {
    /// systemd imports it from SMBIOS.
    Importable,
    /// systemd refuses it (name, base64, size).
    Rejected,
    /// Another credential of the same name wins.
    Shadowed,
    /// Only in entries systemd never read.
    NotRead,
    /// Not in SMBIOS.
    Absent,
}

impl SmbiosStatus {
    /// The JSON and display text.
    pub fn as_str(self) -> &'static str {
        match self {
            SmbiosStatus::Importable => "importable",
            SmbiosStatus::Rejected => "rejected",
            SmbiosStatus::Shadowed => "shadowed",
            SmbiosStatus::NotRead => "not_read",
            SmbiosStatus::Absent => "absent",
        }
    }
}

/// What systemd imported under this name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemdView {
    /// A file exists in `/run/credentials/@system`.
    pub present: bool,
    /// Its size.
    pub bytes: Option<u64>,
    /// Its digest.
    pub digest: Option<Digest>,
    /// Its mode, octal (`0400`).
    pub mode: Option<FileMode>,
    /// `secure` (ramfs, or tmpfs with noswap), `weak` (other), `insecure`
    /// (group/other bits), as `systemd-creds list` says.
    pub secure: Option<Storage>,
}

/// What was expected of a credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// Expected size, if known.
    pub bytes: Option<u64>,
    /// Expected digest, if known.
    pub digest: Option<Digest>,
    /// `manifest` (the `vmcreds.manifest` credential or `--manifest`) or `expect` (`--expect`).
    pub from: ExpectationSource,
}

/// The per-credential result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Arrived as expected (or, with no expectation, as predicted).
    Ok,
    /// Expected but not in `/run/credentials/@system`.
    Missing,
    /// Present but size or digest differ from what was expected or predicted.
    Mismatch,
    /// In SMBIOS but refused by systemd.
    Rejected,
    /// Present but not expected (fails only in strict mode).
    Unexpected,
    /// Only in SMBIOS entries systemd never read: its scan stopped at a bad
    /// Type 11 header.
    NotRead,
}

impl Status {
    /// The JSON and display text.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Missing => "missing",
            Status::Mismatch => "mismatch",
            Status::Rejected => "rejected",
            Status::Unexpected => "unexpected",
            Status::NotRead => "not_read",
        }
    }

    /// Whether the credential failed (as opposed to ok or merely unexpected).
    pub fn is_failure(self) -> bool {
        !matches!(self, Status::Ok | Status::Unexpected)
    }
}

/// One credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialReport {
    /// Name (escaped if it came from a refused string).
    pub name: String,
    /// Decoded size of the SMBIOS value.
    pub bytes: Option<u64>,
    /// Digest of the SMBIOS value.
    pub digest: Option<Digest>,
    /// How it was carried in SMBIOS.
    pub encoding: Option<Encoding>,
    /// Where systemd got it: `smbios`, `fw_cfg`, `kernel_cmdline`, `initrd`,
    /// `initrd_cpio` or `unknown`.
    pub source: Option<CredentialSource>,
    /// Its fate in SMBIOS.
    pub smbios: SmbiosStatus,
    /// What systemd imported.
    pub systemd: Option<SystemdView>,
    /// What was expected.
    pub expected: Option<Expected>,
    /// The result.
    pub status: Status,
    /// Why, when not plainly ok.
    pub reason: Option<String>,
}

/// The overall result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// `verified`: every expectation met; `failed`: something expected is
    /// missing, differs or was refused; `unverified`: nothing was expected and
    /// nothing failed.
    pub result: VerdictResult,
    /// Credentials ok.
    pub ok: u64,
    /// Credentials failing.
    pub failed: u64,
    /// One line for people.
    pub summary: String,
    /// Every reason the result is not `verified`, one per line (credential
    /// failures, and in strict mode: no expectations, unexpected credentials,
    /// anomalies, weak storage).
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// The overall result in one word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictResult {
    /// Every expectation met.
    Verified,
    /// Something failed.
    Failed,
    /// Nothing to check against, nothing failed.
    Unverified,
}

impl VerdictResult {
    /// The JSON and display text.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictResult::Verified => "verified",
            VerdictResult::Failed => "failed",
            VerdictResult::Unverified => "unverified",
        }
    }
}

display_as_str!(
    EntryPointKind,
    Storage,
    ExpectationSource,
    CredentialSource,
    CheckState,
    SmbiosStatus,
    Status,
    VerdictResult
);

/// Why a report document is refused.
#[derive(Debug, Error)]
pub enum ReportError {
    /// Over [`REPORT_SIZE_MAX`].
    #[error("report is {actual} bytes, more than the {limit} bytes a report can be")]
    TooLarge {
        /// Limit.
        limit: usize,
        /// Size.
        actual: usize,
    },
    /// Not JSON of the expected shape.
    #[error("report is not valid {REPORT_SCHEMA} JSON")]
    Json(#[source] serde_json::Error),
    /// Another schema.
    #[error("report schema is \"{0}\", expected \"{REPORT_SCHEMA}\"")]
    Schema(String),
}

impl Report {
    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        crate::json_out::pretty(self, self.size_hint())
    }

    /// Compact JSON (the wire form, without its newline).
    pub fn to_compact_json(&self) -> Vec<u8> {
        crate::json_out::compact(self, self.size_hint())
    }

    /// About what the pretty JSON takes: reserved up front, so that the
    /// buffer does not grow by doubling through the allocator.
    fn size_hint(&self) -> usize {
        4096 + 700 * self.credentials.len()
            + 300 * (self.smbios.not_imported.len() + self.smbios.entries.len())
    }

    /// Parses a report, refusing oversized or foreign documents.
    pub fn from_json(bytes: &[u8]) -> Result<Report, ReportError> {
        if bytes.len() > REPORT_SIZE_MAX {
            return Err(ReportError::TooLarge {
                limit: REPORT_SIZE_MAX,
                actual: bytes.len(),
            });
        }
        let r: Report = serde_json::from_slice(bytes).map_err(ReportError::Json)?;
        if r.schema != REPORT_SCHEMA {
            return Err(ReportError::Schema(crate::escape::escape_bytes(
                r.schema.as_bytes(),
                64,
            )));
        }
        Ok(r)
    }

    /// The credential row named `name`.
    pub fn credential(&self, name: &str) -> Option<&CredentialReport> {
        self.credentials.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::digest::digest;

    pub(crate) fn sample() -> Report {
        Report {
            schema: REPORT_SCHEMA.into(),
            generator: "vmcreds-guest test".into(),
            nonce_id: None,
            system: System::default(),
            preconditions: vec![Precondition {
                check: PreconditionId::NotContainer,
                state: CheckState::Ok,
                detail: "no container detected".into(),
            }],
            smbios: Smbios::default(),
            credentials: vec![CredentialReport {
                name: "API_KEY".into(),
                bytes: Some(44),
                digest: Some(digest(b"x", None)),
                encoding: Some(Encoding::Binary),
                source: Some(CredentialSource::Smbios),
                smbios: SmbiosStatus::Importable,
                systemd: Some(SystemdView {
                    present: true,
                    bytes: Some(44),
                    digest: Some(digest(b"x", None)),
                    mode: Some(FileMode(0o400)),
                    secure: Some(Storage::Secure),
                }),
                expected: None,
                status: Status::Ok,
                reason: None,
            }],
            verdict: Verdict {
                result: VerdictResult::Verified,
                ok: 1,
                failed: 0,
                summary: "1/1 credentials verified".into(),
                reasons: Vec::new(),
            },
            cut: None,
        }
    }

    #[test]
    fn test_json_round_trip_and_field_names() {
        let r = sample();
        let j = r.to_json();
        for field in [
            "\"schema\": \"vmcreds.report/1\"",
            "\"smbios\": \"importable\"",
            "\"status\": \"ok\"",
            "\"present\": true",
            "\"result\": \"verified\"",
            "\"alg\": \"sha256\"",
        ] {
            assert!(j.contains(field), "missing {field} in {j}");
        }
        assert_eq!(Report::from_json(j.as_bytes()).unwrap(), r);
    }

    #[test]
    fn test_refusals() {
        assert!(matches!(
            Report::from_json(b"[]"),
            Err(ReportError::Json(_))
        ));
        let mut r = sample();
        r.schema = "other/1".into();
        assert!(matches!(
            Report::from_json(r.to_json().as_bytes()),
            Err(ReportError::Schema(_))
        ));
        let big = vec![b' '; REPORT_SIZE_MAX + 1];
        assert!(matches!(
            Report::from_json(&big),
            Err(ReportError::TooLarge { .. })
        ));
    }

    #[test]
    fn test_unknown_preconditions_are_kept() {
        let mut r = sample();
        r.preconditions[0].check = PreconditionId::Other("from_a_newer_guest".into());
        let j = r.to_json();
        assert!(j.contains("\"check\": \"from_a_newer_guest\""), "{j}");
        assert_eq!(Report::from_json(j.as_bytes()).unwrap(), r);
        let known: PreconditionId = serde_json::from_str("\"dmi_sysfs\"").unwrap();
        assert_eq!(known, PreconditionId::DmiSysfs);
    }

    #[test]
    fn test_file_mode_is_octal_text() {
        assert_eq!(serde_json::to_string(&FileMode(0o400)).unwrap(), "\"0400\"");
        assert_eq!(
            serde_json::from_str::<FileMode>("\"0644\"").unwrap(),
            FileMode(0o644)
        );
        assert!(serde_json::from_str::<FileMode>("\"9\"").is_err());
        assert!(serde_json::from_str::<FileMode>("\"\"").is_err());
    }
}
