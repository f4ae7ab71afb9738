//! The guest's check, as a pure function: what the machine shows (an
//! [`Observation`], read by `vmcreds-guest`'s `observe`) and what is
//! expected ([`Expectations`]) in, the `vmcreds.report/1` [`Report`] out.
//! It is the guest's half of what [`crate::verify`] is for the host, and,
//! like it, does no I/O.
//!
//! The parts, each tested on in-memory data:
//! - [`entries`]: one [`crate::report::EntryReport`] per `11-N/raw`, the
//!   string counts, and every anomaly;
//! - [`rows`]: one row per credential name seen anywhere (SMBIOS strings in
//!   order, then imported files, then expectations) and its classification
//!   ([`rows::classify`]): status and reason;
//! - [`verdict`]: the overall result and its reasons;
//! - [`confidential`]: the `not_confidential_vm` precondition and which
//!   sources a confidential VM leaves systemd, per version;
//! - [`boot`]: whether credentials missing from `@system` were never
//!   imported or imported in the initrd and lost at switch-root.

use crate::digest::{Digest, Nonce};
use crate::file_kind::FileKind;
use crate::manifest::Manifest;
use crate::predict::{self, Prediction, PriorCredential};
use crate::report::{
    Precondition, Report, Storage, System, SystemdView, TableCrossCheck, REPORT_SCHEMA,
};
use crate::systemd::{Behaviour, Gate, SystemdVersion};

pub mod boot;
pub mod confidential;
pub mod entries;
pub mod expect;
pub mod rows;
pub mod verdict;

pub use boot::BootEvidence;
pub use confidential::{CpuidView, CvmFinding};
pub use expect::Expect;

/// The name of the credential that carries the VMM's notify socket (added by
/// the VMM or `vmcreds-host --oem`, never listed in a manifest).
pub const NOTIFY_CREDENTIAL: &str = "vmm.notify_socket";

/// One `/sys/firmware/dmi/entries/11-N/raw` file as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEntry {
    /// The N.
    pub index: u32,
    /// Its bytes, as far as they were read.
    pub bytes: Vec<u8>,
    /// The file was larger than this bound, and was read only that far.
    pub cut_at: Option<usize>,
}

/// A credential offered over QEMU fw_cfg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FwCfgCredential {
    /// Name (escaped when not a valid credential name).
    pub name: String,
    /// Size, when known.
    pub bytes: Option<u64>,
}

/// One entry of the imported credentials directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedFile {
    /// Its name (escaped when not a valid credential name).
    pub name: String,
    /// What it is.
    pub kind: ImportedKind,
}

/// A regular file, or something else (never followed or opened).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportedKind {
    /// A regular file.
    Regular {
        /// Size in bytes.
        bytes: u64,
        /// Permission bits.
        mode: u32,
        /// Digest of the contents (keyed with [`Observation::nonce`]);
        /// `None` for a file over systemd's per-credential limit, which is
        /// not read (it cannot have come from systemd).
        digest: Option<Digest>,
    },
    /// Not a regular file.
    Other(FileKind),
}

/// The imported credentials directory (`/run/credentials/@system`, or where
/// `vmcreds-guest import` wrote).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedListing {
    /// Its entries, sorted by name.
    pub files: Vec<ImportedFile>,
    /// How its file system stores them.
    pub storage: Storage,
    /// How that was judged, for people ("tmpfs without noswap").
    pub storage_detail: String,
}

impl ImportedListing {
    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&ImportedFile> {
        self.files
            .binary_search_by(|f| cmp_names(&f.name, name))
            .ok()
            .map(|i| &self.files[i])
    }

    /// The report's view of `name` (present or not).
    pub fn view(&self, name: &str) -> SystemdView {
        self.view_of(self.get(name))
    }

    /// The report's view of `file`, one of this listing's entries (or none).
    pub fn view_of(&self, file: Option<&ImportedFile>) -> SystemdView {
        match file.map(|f| &f.kind) {
            Some(ImportedKind::Regular {
                bytes,
                mode,
                digest,
            }) => SystemdView {
                present: true,
                bytes: Some(*bytes),
                digest: digest.clone(),
                mode: Some(crate::report::FileMode(*mode & 0o7777)),
                secure: Some(Storage::of_file(*mode, self.storage)),
            },
            _ => SystemdView {
                present: false,
                bytes: None,
                digest: None,
                mode: None,
                secure: None,
            },
        }
    }
}

/// `a.cmp(b)`, eight bytes at a time: `str`'s comparison is a call to
/// musl's `memcmp`, which compares byte by byte, and names that share a
/// prefix (`BENCH_000`, `BENCH_001`) are compared some thousands of times
/// per check (sorting the rows, looking up files).
pub fn cmp_names(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let word = |c: &[u8]| u64::from_be_bytes(c.try_into().unwrap_or_default());
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        let (x, y) = (word(x), word(y));
        if x != y {
            return x.cmp(&y);
        }
    }
    // Whatever is left of the shorter one is under eight bytes.
    let n = a.len().min(b.len());
    let done = n - n % 8;
    a[done..].cmp(&b[done..])
}

/// Sorts `v` by `cmp`, stably (equal items keep their order), in place.
///
/// Every list the guest sorts goes through here, so that the static binary
/// holds one instance of the standard library's stable sort (some 4 KB of
/// code each; the binary has a size budget): [`stable_order`] sorts the
/// indices, and the items are then moved into place, each swap putting
/// one where it belongs.
pub fn sort_stable_by<T>(v: &mut [T], cmp: impl Fn(&T, &T) -> std::cmp::Ordering) {
    let mut order = stable_order(v.len(), &|a, b| cmp(&v[a], &v[b]));
    // `order[i]` is the index of the item that goes to `i`; an entry is set
    // to its own index once its place is filled. Each cycle of the
    // permutation is followed once.
    for start in 0..v.len() {
        let mut j = start;
        loop {
            let k = order[j];
            order[j] = j;
            if k == start || k == j {
                break;
            }
            v.swap(j, k);
            j = k;
        }
    }
}

/// The indices `0..n` stably sorted by `cmp` (which compares the items at
/// two indices).
#[inline(never)]
pub fn stable_order(n: usize, cmp: &dyn Fn(usize, usize) -> std::cmp::Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| cmp(a, b));
    order
}

/// The whole-table reader's findings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableReading {
    /// System facts for the report.
    pub system: System,
    /// The comparison with the per-entry files (`None` when there is no table).
    pub cross_check: Option<TableCrossCheck>,
}

/// Everything the check needs from the machine, read once.
#[derive(Debug)]
pub struct Observation {
    /// Who read it, for the report's `generator` (`vmcreds-guest 0.1.0`).
    pub reader: String,
    /// The running systemd and how it was found.
    pub systemd: SystemdVersion,
    /// The `11-N/raw` files, in order.
    pub entries: Vec<RawEntry>,
    /// Reading the entries stopped at this total bound.
    pub entries_cut_at: Option<usize>,
    /// The whole table: system facts and the cross-check.
    pub table: TableReading,
    /// systemd's silent preconditions, as checked.
    pub preconditions: Vec<Precondition>,
    /// Names of credentials on the kernel command line.
    pub cmdline_credentials: Vec<String>,
    /// Credentials offered over fw_cfg.
    pub fw_cfg: Vec<FwCfgCredential>,
    /// Whether this is a confidential VM, and which kind.
    pub cvm: CvmFinding,
    /// What the boot chain shows of the import (kernel log, PID 1's
    /// environment, mounts).
    pub boot: BootEvidence,
    /// The imported directory, `None` when it does not exist.
    pub imported: Option<ImportedListing>,
    /// That directory, for messages.
    pub imported_dir: String,
    /// The key of every digest here (the manifest's nonce), if any.
    pub nonce: Option<Nonce>,
    /// systemd's import of `entries` after `fw_cfg`, predicted by
    /// [`predict_import`] (kept here because reading needs it too: the
    /// manifest can come from SMBIOS).
    pub prediction: Prediction,
}

impl Observation {
    /// The systemd behaviour modelled.
    pub fn behaviour(&self) -> Behaviour {
        self.systemd.behaviour()
    }

    /// The sources that systemd reads on this machine.
    pub fn gate(&self) -> Gate {
        self.cvm.gate(&self.behaviour())
    }
}

/// The fw_cfg credentials systemd imports before SMBIOS, by its rules.
pub fn fw_cfg_priors(fw_cfg: &[FwCfgCredential]) -> Vec<PriorCredential> {
    predict::fw_cfg_imports(
        fw_cfg
            .iter()
            .map(|c| (c.name.as_str(), c.bytes.unwrap_or(0) as usize)),
    )
}

/// What systemd `behaviour` imports from `entries` after `fw_cfg`.
pub fn predict_import(
    entries: &[RawEntry],
    behaviour: &Behaviour,
    fw_cfg: &[FwCfgCredential],
) -> Prediction {
    predict_import_gated(
        entries,
        behaviour,
        fw_cfg,
        Gate {
            fw_cfg: true,
            smbios: true,
        },
    )
}

/// [`predict_import`] on a machine where systemd reads only what `gate`
/// lets it: fw_cfg credentials that it does not read shadow nothing (a
/// confidential VM; under Intel TDX systemd ≥ 262 reads SMBIOS but not
/// fw_cfg). SMBIOS strings are predicted as if read either way: a refused
/// SMBIOS is the `not_confidential_vm` precondition's to explain.
pub fn predict_import_gated(
    entries: &[RawEntry],
    behaviour: &Behaviour,
    fw_cfg: &[FwCfgCredential],
    gate: Gate,
) -> Prediction {
    let raw: Vec<&[u8]> = entries.iter().map(|e| e.bytes.as_slice()).collect();
    let priors = if gate.fw_cfg {
        fw_cfg_priors(fw_cfg)
    } else {
        Vec::new()
    };
    predict::predict(&raw, behaviour, &priors)
}

/// Where the manifest in force came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestSource {
    /// `--manifest FILE`.
    File(String),
    /// The imported `vmcreds.manifest` credential.
    Imported,
    /// The `vmcreds.manifest` string in SMBIOS (systemd did not import it).
    Smbios,
}

/// What the check measures the machine against.
#[derive(Clone, Debug, Default)]
pub struct Expectations {
    /// The manifest in force, and where it came from.
    pub manifest: Option<(Manifest, ManifestSource)>,
    /// Why the `vmcreds.manifest` credential found could not be used.
    pub manifest_problem: Option<String>,
    /// `--expect` arguments.
    pub expects: Vec<Expect>,
}

impl Expectations {
    /// The manifest in force.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref().map(|(m, _)| m)
    }

    /// Whether anything is expected at all.
    pub fn any(&self) -> bool {
        self.manifest.is_some() || !self.expects.is_empty()
    }
}

/// How much beyond the expectations fails the check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strictness {
    /// Only expected credentials that are missing, differ or were refused.
    #[default]
    Lenient,
    /// Also no expectations, unexpected credentials, anomalies, and storage
    /// that is not `secure`.
    Strict,
}

/// The check: the report for `obs` measured against `exp`.
pub fn evaluate(obs: &Observation, exp: &Expectations, strictness: Strictness) -> Report {
    let smbios = entries::summarise(obs);
    let rows = rows::rows(obs, exp);
    let boot = boot::assess_rows(obs, &rows);
    let credentials = rows
        .iter()
        .map(|row| rows::classify_with(row, obs, exp, &boot))
        .collect::<Vec<_>>();
    let verdict = verdict::verdict(&credentials, &smbios, exp, strictness, &boot.summary);
    let mut system = obs.table.system.clone();
    system.systemd_version = obs.systemd.version;
    system.predicted_for_systemd = obs.systemd.version;
    let mut preconditions = obs.preconditions.clone();
    preconditions.extend(boot.preconditions);
    Report {
        schema: REPORT_SCHEMA.into(),
        generator: obs.reader.clone(),
        nonce_id: obs.nonce.as_ref().map(Nonce::id),
        system,
        preconditions,
        smbios: smbios.report,
        credentials,
        verdict,
        cut: None,
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! In-memory observations for the check's unit tests.

    use super::*;
    use crate::digest::digest;
    use crate::report::{CheckState, PreconditionId};
    use crate::type11::build;

    /// A systemd-257 VM with dmi-sysfs, no Type 11 and an empty, secure `@system`.
    pub fn vm() -> Observation {
        Observation {
            reader: "vmcreds-guest test".into(),
            systemd: SystemdVersion {
                version: Some(257),
                detail: "systemd 257 (test)".into(),
            },
            entries: Vec::new(),
            entries_cut_at: None,
            table: TableReading::default(),
            preconditions: vec![Precondition {
                check: PreconditionId::DmiSysfs,
                state: CheckState::Ok,
                detail: "/sys/firmware/dmi/entries exists".into(),
            }],
            cmdline_credentials: Vec::new(),
            fw_cfg: Vec::new(),
            cvm: CvmFinding::NotCvm,
            boot: BootEvidence::default(),
            imported: Some(ImportedListing {
                files: Vec::new(),
                storage: Storage::Secure,
                storage_detail: "ramfs".into(),
            }),
            imported_dir: "/run/credentials/@system".into(),
            nonce: None,
            prediction: Prediction::default(),
        }
    }

    /// Sets the SMBIOS entries (each a list of strings) and predicts.
    pub fn with_entries(mut o: Observation, entries: &[&[&[u8]]]) -> Observation {
        o.entries = entries
            .iter()
            .enumerate()
            .map(|(i, strings)| RawEntry {
                index: i as u32,
                bytes: build(0x100 + i as u16, strings),
                cut_at: None,
            })
            .collect();
        repredict(o)
    }

    /// Predicts again after the entries or fw_cfg changed.
    pub fn repredict(mut o: Observation) -> Observation {
        o.prediction = predict_import_gated(&o.entries, &o.behaviour(), &o.fw_cfg, o.gate());
        o
    }

    /// Adds an imported file (mode 0400) holding `value`.
    pub fn imported(mut o: Observation, name: &str, value: &[u8]) -> Observation {
        imported_mode(&mut o, name, value, 0o400);
        o
    }

    /// Adds an imported file with `mode`.
    pub fn imported_mode(o: &mut Observation, name: &str, value: &[u8], mode: u32) {
        let d = digest(value, o.nonce.as_ref());
        let l = o.imported.as_mut().expect("a listing");
        l.files.push(ImportedFile {
            name: name.into(),
            kind: ImportedKind::Regular {
                bytes: value.len() as u64,
                mode,
                digest: Some(d),
            },
        });
        l.files.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// `io.systemd.credential:NAME=VALUE`.
    pub fn text(name: &str, value: &[u8]) -> Vec<u8> {
        let mut s = format!("io.systemd.credential:{name}=").into_bytes();
        s.extend_from_slice(value);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{imported, repredict, vm};
    use super::*;
    use crate::report::Report;
    use proptest::prelude::*;

    fn oem_string() -> impl Strategy<Value = Vec<u8>> {
        (
            prop_oneof![
                Just(&b"io.systemd.credential:"[..]),
                Just(&b"io.systemd.credential.binary:"[..]),
                Just(&b"io.systemd.credential:vmcreds.manifest="[..]),
                Just(&b"io.systemd.credential:A="[..]),
                Just(&b""[..]),
            ],
            proptest::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(p, rest)| [p, &rest].concat())
    }

    proptest! {
        /// The word-at-a-time comparison orders names as `str` does.
        #[test]
        fn fuzz_cmp_names_is_str_order(
            a in "[A-Ca-c_.\u{80}-\u{100}]{0,20}",
            b in "[A-Ca-c_.\u{80}-\u{100}]{0,20}",
            prefix in "[A-Z]{0,17}",
        ) {
            let (a, b) = (format!("{prefix}{a}"), format!("{prefix}{b}"));
            prop_assert_eq!(cmp_names(&a, &b), a.cmp(&b));
            prop_assert_eq!(cmp_names(&a, &a), std::cmp::Ordering::Equal);
        }

        /// The one sort: the standard library's stable sort's result, in
        /// place, equal items in their order.
        #[test]
        fn fuzz_sort_stable_by_is_a_stable_sort(
            keys in proptest::collection::vec(0u8..6, 0..70),
        ) {
            let mut items: Vec<(u8, usize)> = keys.iter().copied().zip(0..).collect();
            let mut want = items.clone();
            want.sort_by_key(|&(k, _)| k);
            sort_stable_by(&mut items, |a, b| a.0.cmp(&b.0));
            prop_assert_eq!(items, want);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary entries (hostile structures included), fw_cfg, imported
        /// files and expectations through the whole decision: never a panic,
        /// a report that renders and round-trips through JSON, and a verdict
        /// consistent with its rows.
        #[test]
        fn fuzz_evaluate(
            raw in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..3),
            strings in proptest::collection::vec(oem_string(), 0..6),
            count in any::<u8>(),
            version in prop_oneof![Just(None), Just(Some(252u32)), Just(Some(257u32)), Just(Some(262u32))],
            files in proptest::collection::vec(("[A-Za-z][A-Za-z.]{0,7}", proptest::collection::vec(any::<u8>(), 0..16)), 0..3),
            fw in proptest::collection::vec("[A-Z]{1,4}", 0..2),
            expects in proptest::collection::vec("[A-Z]{1,3}(:[0-9]{1,2})?", 0..3),
            strict in any::<bool>(),
            log in proptest::collection::vec(prop_oneof![
                Just("systemd 257.1 running in system mode".to_owned()),
                Just("systemd 252.1 running in system mode".to_owned()),
                Just("Running in initrd.".to_owned()),
                Just("systemd.import_credentials=no is set, skipping importing of credentials.".to_owned()),
                "Received regular credentials: [A-Z, ]{0,12}",
                "Acquired [0-9]{1,2} regular credentials, [0-9] untrusted credentials.",
            ], 0..8),
            mounted in proptest::option::of(any::<bool>()),
            tdx in any::<bool>(),
        ) {
            let mut o = vm();
            o.systemd.version = version;
            let mut kmsg = b"6,0,0,-;Linux\n".to_vec();
            for (i, l) in log.iter().enumerate() {
                kmsg.extend_from_slice(format!("6,{},0,-;systemd[1]: {l}\n", i + 1).as_bytes());
            }
            o.boot.kernel_log = boot::KernelLog::from_records(&boot::kmsg_records(&kmsg));
            o.boot.system_dir_mounted = mounted;
            o.boot.pid1_credentials_directory = Some(Some("/run/credentials/@system".into()));
            if tdx {
                o.cvm = CvmFinding::Cvm { kind: Some(crate::systemd::Cvm::Tdx), how: "t".into() };
            }
            let refs: Vec<&[u8]> = strings.iter().map(|s| s.as_slice()).collect();
            let mut built = crate::type11::build(0x100, &refs);
            built[4] = count;
            o.entries = std::iter::once(built).chain(raw).enumerate()
                .map(|(i, bytes)| RawEntry { index: i as u32, bytes, cut_at: None })
                .collect();
            o.fw_cfg = fw.iter().map(|n| FwCfgCredential { name: n.clone(), bytes: Some(3) }).collect();
            let mut o = repredict(o);
            for (n, v) in &files {
                o = imported(o, n, v);
            }
            let exp = Expectations {
                expects: expects.iter().map(|e| e.parse().unwrap()).collect(),
                ..Default::default()
            };
            let strictness = if strict { Strictness::Strict } else { Strictness::Lenient };
            let r = evaluate(&o, &exp, strictness);
            let _ = crate::render::report_table(&r);
            let _ = crate::render::preamble(&r, &o.imported_dir);
            prop_assert_eq!(Report::from_json(r.to_json().as_bytes()).unwrap(), r.clone());
            let failing = r.credentials.iter().filter(|c| c.status.is_failure()).count();
            prop_assert!(r.verdict.failed as usize >= failing);
            if failing > 0 {
                prop_assert_eq!(r.verdict.result, crate::report::VerdictResult::Failed);
            }
            // Every name of every row is unique.
            let mut names: Vec<&str> = r.credentials.iter().map(|c| c.name.as_str()).collect();
            names.sort_unstable();
            let before = names.len();
            names.dedup();
            prop_assert_eq!(before, names.len());
        }
    }
}
