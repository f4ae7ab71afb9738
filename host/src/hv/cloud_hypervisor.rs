//! cloud-hypervisor (x86_64): the OEM strings reach it either as one
//! `--platform oem_strings=[...]` value on its command line, or inside the
//! VmConfig JSON of a REST `vm.create` request (no secret on argv).
//!
//! The `--platform` value must mean the same thing to both generations of
//! cloud-hypervisor's option parser (`option_parser/src/lib.rs`, reference
//! `hypervisors.md` §3.2):
//! - v26–v47: `split_commas` splits the top level on commas outside `[...]`
//!   and drops every `"`; `StringList` then splits the list on *every* comma;
//! - v48+: `split_commas` is bracket- and quote-aware and keeps the `"`;
//! - and an earlier `split_commas` that counts brackets only (`"` is text).
//!
//! A string carries through both unchanged exactly when it has none of
//! `,` `[` `]` `"`, no leading or trailing whitespace, and is not empty.
//! Credentials are base64 by default (`[A-Za-z0-9+/=]`), so only names (with
//! `--allow-any-name`), `--encoding text` values and `--oem` strings can
//! break it; those are refused here, before anything is printed.
//!
//! cloud-hypervisor itself checks nothing (`PlatformConfig::validate` ignores
//! `oem_strings`; the table writer casts the count to `u8` and writes empty
//! strings as a bare NUL), so the count, emptiness and size are checked here
//! and by the plan against [`BUDGET`].

use std::collections::HashSet;

use serde_json::{Map, Value};
use thiserror::Error;
use vmcreds_common::escape::{escape_bytes, escape_name};
use vmcreds_common::oem::{self, Parsed};
use vmcreds_common::systemd::Behaviour;
use vmcreds_common::Secret;

use super::Budget;
use crate::exit::{Classify, Exit};
use crate::plan::{OemString, Plan};
use crate::source::{Loaded, Origin};

/// cloud-hypervisor places its SMBIOS tables at `0xF0000` (a 24-byte entry
/// point, Type 0, Type 1, one Type 11, Type 127) with no size check, and the
/// guest's firmware view ends at 1 MiB. Measured on v53.0 (2026-12-06, nested,
/// any vCPU count, `xtask/ground-truth/cloud-hypervisor-v53.0.json`): a Type 11
/// structure of 65 404 bytes arrives whole (the area then ends exactly at
/// 1 MiB: 65 536 − 132); at 65 405 the guest loses all of DMI (`dmi: Firmware
/// registration failed.`); from about 65 420 it does not boot, and
/// cloud-hypervisor may still exit 0. The budget keeps 1 404 bytes of that
/// for the Type 1 and Type 3 strings `--platform` keys add (`serial_number`,
/// `uuid`, `system_*`, `chassis_asset_tag`).
pub const BUDGET: Budget = Budget {
    target: "cloud-hypervisor",
    smbios: true,
    max_type11_bytes: Some(MEASURED_TYPE11_MAX - PLATFORM_STRINGS_MARGIN),
    rule: "cloud-hypervisor puts its SMBIOS tables in the 64 KiB below 1 MiB without a size check: a Type 11 structure of 65404 bytes was measured to arrive (v53.0), one byte more loses all of DMI, and vmcreds keeps 1404 bytes for the strings --platform keys add",
};

/// The largest Type 11 structure measured to reach the guest whole under
/// cloud-hypervisor v53.0 with its default Type 0 and Type 1 tables.
pub const MEASURED_TYPE11_MAX: usize = 65_404;

/// Room kept below [`MEASURED_TYPE11_MAX`] for the strings `--platform` keys
/// add to the Type 1 and Type 3 tables.
pub const PLATFORM_STRINGS_MARGIN: usize = 1_404;

/// A cloud-hypervisor release, as its `--version` names it (`v53.0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major number (cloud-hypervisor counts releases here).
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl Version {
    /// `vMAJOR.MINOR`.
    pub const fn new(major: u32, minor: u32) -> Version {
        Version { major, minor }
    }

    /// Finds the first `vNN.M` (or `NN.M`) in `text`, e.g. the output of
    /// `cloud-hypervisor --version`: `cloud-hypervisor v53.0`.
    pub fn find(text: &str) -> Option<Version> {
        text.split(|c: char| c.is_whitespace() || c == '-')
            .find_map(|w| w.parse().ok())
    }
}

impl std::str::FromStr for Version {
    type Err = ();

    /// `v53.0`, `53.0` or `53`.
    fn from_str(s: &str) -> std::result::Result<Version, ()> {
        let s = s.strip_prefix('v').unwrap_or(s);
        let (major, minor) = s.split_once('.').unwrap_or((s, "0"));
        let num = |t: &str| {
            (!t.is_empty() && t.len() <= 6 && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse().ok())
                .flatten()
                .ok_or(())
        };
        Ok(Version {
            major: num(major)?,
            minor: num(minor)?,
        })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}.{}", self.major, self.minor)
    }
}

/// The first release with `oem_strings` (commit `57e9b801`, 2022-08).
pub const FIRST_OEM_STRINGS: Version = Version::new(26, 0);

/// The first release with the fw_cfg device (cargo feature `fw_cfg`).
pub const FIRST_FW_CFG: Version = Version::new(48, 0);

/// The `--platform` keys of `PlatformConfig::parse` (`vmm/src/config.rs`,
/// reference §3.1) and the first release that has each; anything else is
/// `OptionParserError::UnknownOption`, which stops cloud-hypervisor at
/// start. `None`: present in every release vmcreds-host supports
/// (since [`FIRST_OEM_STRINGS`]). From the reference: the `system_*` keys,
/// `chassis_asset_tag` and `iommufd_fd` came with v53.0 (`063caca4a`),
/// `iommufd` and `vfio_p2p_dma` with v52.0.
pub const PLATFORM_KEYS: &[(&str, Option<Version>)] = &[
    ("num_pci_segments", None),
    ("iommu_segments", None),
    ("iommu_address_width", None),
    ("serial_number", None),
    ("uuid", None),
    ("oem_strings", None),
    ("tdx", None),
    ("sev_snp", None),
    ("iommufd", Some(Version::new(52, 0))),
    ("vfio_p2p_dma", Some(Version::new(52, 0))),
    ("iommufd_fd", Some(Version::new(53, 0))),
    ("system_manufacturer", Some(Version::new(53, 0))),
    ("system_product_name", Some(Version::new(53, 0))),
    ("system_version", Some(Version::new(53, 0))),
    ("system_serial_number", Some(Version::new(53, 0))),
    ("system_uuid", Some(Version::new(53, 0))),
    ("system_sku_number", Some(Version::new(53, 0))),
    ("system_family", Some(Version::new(53, 0))),
    ("chassis_asset_tag", Some(Version::new(53, 0))),
];

/// The cloud-hypervisor in use, as far as vmcreds-host knows it: from
/// `--cloud-hypervisor PATH` (asked) or `--cloud-hypervisor-version V`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binary {
    /// How it was named, for messages: the path, or the flag.
    pub source: String,
    /// Its release.
    pub version: Version,
    /// Whether it has `--fw-cfg-config` (built with the `fw_cfg` feature);
    /// `None` when nobody asked the binary.
    pub fw_cfg: Option<bool>,
}

/// Why the cloud-hypervisor in use cannot take the delivery.
#[derive(Debug, Error)]
pub enum BinaryError {
    /// The binary could not be run.
    #[error("cannot run {path} --version")]
    Run {
        /// The binary.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It printed no version.
    #[error("{path} --version printed no cloud-hypervisor version (it said \"{said}\"); is it cloud-hypervisor?")]
    NoVersion {
        /// The binary.
        path: String,
        /// The first line it printed, escaped and cut.
        said: String,
    },
    /// Older than what the delivery needs.
    #[error("{binary} is cloud-hypervisor {version}; {what} needs {need} or newer")]
    TooOld {
        /// Which binary.
        binary: String,
        /// Its release.
        version: Version,
        /// What needs more.
        what: &'static str,
        /// The first release that has it.
        need: Version,
    },
    /// Built without the `fw_cfg` cargo feature.
    #[error("{binary} (cloud-hypervisor {version}) was built without its fw_cfg cargo feature: it has no --fw-cfg-config; build it with `--features fw_cfg` (in Nix, an override of cloud-hypervisor with buildFeatures = [ \"fw_cfg\" ]), or deliver over SMBIOS (--platform, or API mode)")]
    NoFwCfg {
        /// Which binary.
        binary: String,
        /// Its release.
        version: Version,
    },
}

impl Classify<Exit> for BinaryError {
    fn exit(&self) -> Exit {
        match self {
            BinaryError::Run { .. } => Exit::Io,
            _ => Exit::Refused,
        }
    }
}

impl Binary {
    /// Asks the binary at `path` for its version (and, with `fw_cfg`,
    /// whether it has `--fw-cfg-config`).
    pub fn inspect(
        path: &std::path::Path,
        fw_cfg: bool,
    ) -> std::result::Result<Binary, BinaryError> {
        let shown = crate::show_path(path);
        let run_err = |source| BinaryError::Run {
            path: shown.clone(),
            source,
        };
        let out = super::ask(path, &["--version"]).map_err(run_err)?;
        let text = String::from_utf8_lossy(&out);
        let first = text.lines().next().unwrap_or_default();
        let version = Version::find(first).ok_or_else(|| BinaryError::NoVersion {
            path: shown.clone(),
            said: escape_bytes(first.as_bytes(), 80),
        })?;
        let fw_cfg = if fw_cfg {
            let help = super::ask(path, &["--help"]).map_err(run_err)?;
            Some(
                help.windows(b"--fw-cfg-config".len())
                    .any(|w| w == b"--fw-cfg-config"),
            )
        } else {
            None
        };
        Ok(Binary {
            source: shown,
            version,
            fw_cfg,
        })
    }

    /// A release stated with `--cloud-hypervisor-version`.
    pub fn stated(version: Version) -> Binary {
        Binary {
            source: format!("--cloud-hypervisor-version {version}"),
            version,
            fw_cfg: None,
        }
    }

    /// Refuses a release without `oem_strings`.
    pub fn check_oem_strings(&self) -> std::result::Result<(), BinaryError> {
        self.at_least(FIRST_OEM_STRINGS, "--platform oem_strings")
    }

    /// Refuses a release or a build without fw_cfg.
    pub fn check_fw_cfg(&self) -> std::result::Result<(), BinaryError> {
        self.at_least(FIRST_FW_CFG, "--fw-cfg-config")?;
        if self.fw_cfg == Some(false) {
            return Err(BinaryError::NoFwCfg {
                binary: self.source.clone(),
                version: self.version,
            });
        }
        Ok(())
    }

    fn at_least(&self, need: Version, what: &'static str) -> std::result::Result<(), BinaryError> {
        if self.version < need {
            return Err(BinaryError::TooOld {
                binary: self.source.clone(),
                version: self.version,
                what,
                need,
            });
        }
        Ok(())
    }
}

/// The first release that has `--platform` key `k`, if it is a key at all.
pub fn platform_key_since(k: &str) -> Option<Option<Version>> {
    PLATFORM_KEYS
        .iter()
        .find(|(name, _)| *name == k)
        .map(|(_, v)| *v)
}

/// The key vmcreds-host fills itself.
pub const OEM_STRINGS_KEY: &str = "oem_strings";

/// The characters some `--platform` parser generation splits on, drops or
/// counts: `,` (split), `[` `]` (bracket depth, stripped at the ends of the
/// list), `"` (dropped by v26–v47, kept and toggling quotes in v48+).
pub const PARSER_SPECIAL: &[char] = &[',', '[', ']', '"'];

/// Characters allowed in `--format env` output besides ASCII letters and
/// digits: no quotes, spaces, `$`, backslash, `~`, `#` or shell operators, so
/// the line means the same to systemd's `EnvironmentFile=` and to a shell
/// that sources it.
pub const ENV_SAFE_PUNCT: &str = "_.,:/+=@%[]-";

/// The largest request body cloud-hypervisor's API server reads:
/// `micro_http` `src/server.rs:23` `MAX_PAYLOAD_SIZE = 51200`, never raised
/// by cloud-hypervisor (v53.0). Measured live on 2026-12-01: a 51 195-byte
/// `vm.create` body booted, 51 208 bytes got 400 "Request payload with size
/// 51208 is larger than the limit of 51200 allowed by server".
pub const API_BODY_MAX: usize = 51_200;

/// The environment variable patched microvm.nix runners read.
pub const ENV_VAR: &str = "MICROVM_PLATFORM_OPS";

/// Why a cloud-hypervisor delivery is refused (exit 2).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ChError {
    /// A non-secret string (or a name) with a character a parser generation mangles.
    #[error("{label}: {what} at byte offset {offset} {why}; cloud-hypervisor's --platform parsers cannot carry it unchanged (v26-v47 split on every ',' and drop '\"', v48+ treat '[' ']' '\"' as syntax){fix}")]
    Unsafe {
        /// Which string.
        label: String,
        /// The character, described (`','`).
        what: String,
        /// Its byte offset in the string.
        offset: usize,
        /// Where it is (in the name, in the string).
        why: &'static str,
        /// What to do instead.
        fix: &'static str,
    },
    /// A secret value with such a character; neither the character nor its
    /// offset is named, since they would tell something about the value.
    #[error("{label}: the value holds a character cloud-hypervisor's --platform parsers cannot carry unchanged (one of , [ ] \" a control character or leading/trailing whitespace); use --encoding binary (the default), which carries any bytes as base64, or API mode")]
    UnsafeSecret {
        /// Which credential.
        label: String,
    },
    /// A string that is not UTF-8 (cloud-hypervisor's argv is parsed as UTF-8).
    #[error("{label} is not valid UTF-8, which cloud-hypervisor's command line requires; use --encoding binary (the default) or API mode")]
    NotUtf8 {
        /// Which string.
        label: String,
    },
    /// An empty string: cloud-hypervisor would write a bare NUL and end its table early.
    #[error("{label} is empty; cloud-hypervisor writes an empty OEM string as a bare NUL, which ends the Type 11 structure early")]
    Empty {
        /// Which string.
        label: String,
    },
    /// Nothing at all to deliver (`oem_strings=[]` would be one empty string).
    #[error("there are no OEM strings to deliver (oem_strings=[] would carry one empty string); give --load, --load-dir, --set or --oem, or drop --no-manifest")]
    Nothing,
    /// `--platform-key` without `=`.
    #[error("--platform-key \"{0}\": expected K=V")]
    KeySyntax(String),
    /// A key cloud-hypervisor does not know.
    #[error("--platform-key \"{key}\": cloud-hypervisor has no --platform key of that name (it would fail with UnknownOption); known keys: {}", PLATFORM_KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", "))]
    UnknownKey {
        /// The key, escaped.
        key: String,
    },
    /// A key the cloud-hypervisor in use is too old for.
    #[error("--platform-key \"{key}\": {binary} is cloud-hypervisor {version}, which has no --platform key {key} (it came with {since}) and would fail with UnknownOption; upgrade cloud-hypervisor or leave the key out")]
    KeyTooNew {
        /// The key.
        key: String,
        /// The first release with it.
        since: Version,
        /// The release in use.
        version: Version,
        /// Which binary (or `--cloud-hypervisor-version`).
        binary: String,
    },
    /// `oem_strings` given as a platform key.
    #[error("--platform-key oem_strings: vmcreds-host builds oem_strings itself; pass extra strings with --oem STRING")]
    OemStringsKey,
    /// The same key twice.
    #[error("--platform-key \"{key}\" is given twice; cloud-hypervisor would silently keep the last one, so remove one")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// An empty platform-key value.
    #[error("--platform-key \"{key}\" has an empty value, which cloud-hypervisor treats as unset")]
    EmptyKeyValue {
        /// The key.
        key: String,
    },
    /// A character outside the env alphabet.
    #[error("{label}: {what} at byte offset {offset} is outside the shell-safe alphabet of --format env (A-Z a-z 0-9 {ENV_SAFE_PUNCT}); use --format arg or json, or API mode")]
    NotEnvSafe {
        /// Which string.
        label: String,
        /// The character, described.
        what: String,
        /// Its byte offset.
        offset: usize,
    },
    /// A secret value outside the env alphabet (not named).
    #[error("{label}: the value holds a character outside the shell-safe alphabet of --format env (A-Z a-z 0-9 {ENV_SAFE_PUNCT}); use --encoding binary (the default), --format arg or json, or API mode")]
    NotEnvSafeSecret {
        /// Which credential.
        label: String,
    },
    /// `--platform-key` in API mode.
    #[error("--platform-key is for the --platform value; in API mode put the keys into the VmConfig's \"platform\" object instead")]
    KeyInApiMode,
    /// The `vm.create` body is over what cloud-hypervisor's HTTP server reads.
    #[error("the vm.create body would be {bytes} bytes; cloud-hypervisor's API server (micro_http MAX_PAYLOAD_SIZE) refuses a request body over {API_BODY_MAX} bytes with 400, so nothing was sent; deliver fewer or smaller credentials, or use argv mode (--platform) or fw_cfg mode (--fw-cfg), which have no such limit")]
    BodyTooLarge {
        /// The serialized body's size.
        bytes: usize,
    },
    /// The VmConfig is not what cloud-hypervisor takes.
    #[error("--vm-config {file}: {problem}")]
    VmConfig {
        /// The file.
        file: String,
        /// What is wrong (never a value).
        problem: String,
    },
}

impl Classify<Exit> for ChError {
    fn exit(&self) -> Exit {
        Exit::Refused
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, ChError>;

/// The warning printed when cloud-hypervisor cannot use the strings: it
/// builds SMBIOS only on x86_64 and silently ignores `oem_strings` elsewhere.
pub const AARCH64_WARNING: &str = "cloud-hypervisor builds SMBIOS tables only on x86_64; on this host's architecture it accepts oem_strings and silently ignores them, so the credentials will not arrive";

/// The argv warning of `--format arg|env`.
pub const ARGV_WARNING: &str = "the --platform value carries the credentials (base64 is not encryption) on cloud-hypervisor's command line, which every local user can read in /proc/PID/cmdline (unless /proc is mounted with hidepid=); API mode (--api-socket PATH --vm-config FILE) keeps them off argv";

/// True when cloud-hypervisor on this host builds SMBIOS tables.
pub fn host_builds_smbios() -> bool {
    cfg!(target_arch = "x86_64")
}

fn describe(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        '\t' => "a tab".to_owned(),
        '\n' => "a newline".to_owned(),
        c if c.is_control() || c.is_whitespace() => format!("the character U+{:04X}", c as u32),
        c => format!("'{c}'"),
    }
}

/// The first character of `s` that some parser generation would mangle, or
/// that the one-word-per-line output cannot carry: `(offset, char)`.
pub fn first_unsafe(s: &str) -> Option<(usize, char)> {
    let mut chars = s.char_indices();
    if let Some((i, c)) = chars.next() {
        if c.is_whitespace() {
            return Some((i, c));
        }
    }
    if let Some((i, c)) = s
        .char_indices()
        .find(|&(_, c)| PARSER_SPECIAL.contains(&c) || c.is_control())
    {
        return Some((i, c));
    }
    if let Some((i, c)) = s.char_indices().next_back() {
        if c.is_whitespace() {
            return Some((i, c));
        }
    }
    None
}

/// The first character outside the env alphabet: `(offset, char)`.
pub fn first_not_env_safe(s: &str) -> Option<(usize, char)> {
    s.char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || ENV_SAFE_PUNCT.contains(c)))
}

/// One string checked for the command line.
#[derive(Debug)]
pub struct Checked<'a> {
    /// The string.
    pub string: &'a OemString,
}

/// Checks every plan string for the `--platform` value: non-empty, UTF-8, no
/// `,` `[` `]` `"`, no control character, no leading or trailing whitespace.
/// A character is located in a message only where
/// [`OemString::may_locate`] allows.
pub fn check_strings(plan: &Plan) -> Result<Vec<Checked<'_>>> {
    if plan.strings.is_empty() {
        return Err(ChError::Nothing);
    }
    let mut out = Vec::with_capacity(plan.strings.len());
    for s in &plan.strings {
        if s.bytes.is_empty() {
            return Err(ChError::Empty {
                label: s.label.clone(),
            });
        }
        let Ok(text) = std::str::from_utf8(s.bytes.expose()) else {
            return Err(ChError::NotUtf8 {
                label: s.label.clone(),
            });
        };
        if let Some((offset, c)) = first_unsafe(text) {
            if !s.may_locate(offset) {
                return Err(ChError::UnsafeSecret {
                    label: s.label.clone(),
                });
            }
            let (why, fix) = if s.raw {
                ("in the string", "; leave it out, or use API mode (--api-socket, --vm-config), which carries any string")
            } else if offset < s.value_offset {
                (
                    "in the credential name",
                    "; use a portable name ([A-Za-z0-9_.@+-])",
                )
            } else {
                (
                    "in the value",
                    "; use --encoding binary (the default) or API mode",
                )
            };
            return Err(ChError::Unsafe {
                label: s.label.clone(),
                what: describe(c),
                offset,
                why,
                fix,
            });
        }
        out.push(Checked { string: s });
    }
    Ok(out)
}

/// Checks that every string (and key value) is in the `--format env` alphabet.
pub fn check_env_safe(checked: &[Checked<'_>], keys: &PlatformKeys) -> Result<()> {
    for c in checked {
        let text = std::str::from_utf8(c.string.bytes.expose()).expect("checked UTF-8");
        if let Some((offset, ch)) = first_not_env_safe(text) {
            if c.string.may_locate(offset) {
                return Err(ChError::NotEnvSafe {
                    label: c.string.label.clone(),
                    what: describe(ch),
                    offset,
                });
            }
            return Err(ChError::NotEnvSafeSecret {
                label: c.string.label.clone(),
            });
        }
    }
    for (k, v) in &keys.0 {
        if let Some((offset, ch)) = first_not_env_safe(v) {
            return Err(ChError::NotEnvSafe {
                label: format!("--platform-key \"{k}\""),
                what: describe(ch),
                offset,
            });
        }
    }
    Ok(())
}

/// Validated `--platform-key` pairs, in command-line order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlatformKeys(pub Vec<(String, String)>);

fn is_integer_list(v: &str) -> bool {
    // IntegerList syntax, the same in every parser generation: [N or N-M, ...].
    let Some(inner) = v.strip_prefix('[').and_then(|v| v.strip_suffix(']')) else {
        return false;
    };
    !inner.is_empty()
        && inner.split(',').all(|item| {
            !item.is_empty()
                && item.split('-').count() <= 2
                && item
                    .split('-')
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

impl PlatformKeys {
    /// Refuses keys the cloud-hypervisor in use is too old for.
    pub fn check_version(&self, binary: &Binary) -> Result<()> {
        for (k, _) in &self.0 {
            if let Some(Some(since)) = platform_key_since(k) {
                if binary.version < since {
                    return Err(ChError::KeyTooNew {
                        key: k.clone(),
                        since,
                        version: binary.version,
                        binary: binary.source.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Parses `K=V` arguments: K must be a cloud-hypervisor platform key other
    /// than `oem_strings`, given once; V non-empty, without `,` `[` `]` `"`,
    /// control characters or outer whitespace (except an integer list
    /// `[0,2-4]` for `iommu_segments`).
    pub fn parse(args: &[String]) -> Result<PlatformKeys> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for arg in args {
            let Some((k, v)) = arg.split_once('=') else {
                return Err(ChError::KeySyntax(escape_name(arg.as_bytes())));
            };
            if k == OEM_STRINGS_KEY {
                return Err(ChError::OemStringsKey);
            }
            if platform_key_since(k).is_none() {
                return Err(ChError::UnknownKey {
                    key: escape_name(k.as_bytes()),
                });
            }
            if !seen.insert(k.to_owned()) {
                return Err(ChError::DuplicateKey { key: k.to_owned() });
            }
            if v.is_empty() {
                return Err(ChError::EmptyKeyValue { key: k.to_owned() });
            }
            let list_ok = k == "iommu_segments" && is_integer_list(v);
            if !list_ok {
                if let Some((offset, c)) = first_unsafe(v) {
                    return Err(ChError::Unsafe {
                        label: format!("--platform-key \"{k}\""),
                        what: describe(c),
                        offset,
                        why: "in the value",
                        fix: "",
                    });
                }
            }
            out.push((k.to_owned(), v.to_owned()));
        }
        Ok(PlatformKeys(out))
    }
}

/// Builds the one `--platform` value: `oem_strings=[S1,S2,...]` then `,K=V`
/// for each platform key. It holds the credentials, hence a [`Secret`].
pub fn platform_value(checked: &[Checked<'_>], keys: &PlatformKeys) -> Secret {
    let len: usize = checked
        .iter()
        .map(|c| c.string.bytes.len() + 1)
        .sum::<usize>()
        + keys
            .0
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>()
        + OEM_STRINGS_KEY.len()
        + 3;
    let mut v = Secret::new(Vec::with_capacity(len));
    v.extend_from_slice(OEM_STRINGS_KEY.as_bytes());
    v.extend_from_slice(b"=[");
    for (i, c) in checked.iter().enumerate() {
        if i > 0 {
            v.extend_from_slice(b",");
        }
        v.extend_from_slice(c.string.bytes.expose());
    }
    v.extend_from_slice(b"]");
    for (k, val) in &keys.0 {
        v.extend_from_slice(b",");
        v.extend_from_slice(k.as_bytes());
        v.extend_from_slice(b"=");
        v.extend_from_slice(val.as_bytes());
    }
    v
}

/// The `--format json` document: `{"platform": {"oem_strings": [...], K: V...},
/// "argv": ["--platform", VALUE]}` (key values as strings, as typed).
pub fn json_document(checked: &[Checked<'_>], keys: &PlatformKeys, value: &Secret) -> Secret {
    let mut platform = Map::new();
    platform.insert(
        OEM_STRINGS_KEY.to_owned(),
        Value::Array(
            checked
                .iter()
                .map(|c| {
                    Value::String(
                        std::str::from_utf8(c.string.bytes.expose())
                            .expect("checked UTF-8")
                            .to_owned(),
                    )
                })
                .collect(),
        ),
    );
    for (k, v) in &keys.0 {
        platform.insert(k.clone(), Value::String(v.clone()));
    }
    let mut doc = Map::new();
    doc.insert("platform".to_owned(), Value::Object(platform));
    doc.insert(
        "argv".to_owned(),
        Value::Array(vec![
            Value::String("--platform".to_owned()),
            Value::String(
                std::str::from_utf8(value.expose())
                    .expect("checked UTF-8")
                    .to_owned(),
            ),
        ]),
    );
    let mut doc = Value::Object(doc);
    let mut out = serde_json::to_vec_pretty(&doc).expect("a JSON value serializes");
    out.push(b'\n');
    wipe_strings(&mut doc);
    Secret::new(out)
}

/// Overwrites every string of a JSON value (best effort against copies of
/// credentials lingering in freed memory).
pub fn wipe_strings(v: &mut Value) {
    match v {
        Value::String(s) => {
            drop(Secret::new(std::mem::take(s).into_bytes()));
        }
        Value::Array(a) => a.iter_mut().for_each(wipe_strings),
        Value::Object(o) => o.values_mut().for_each(wipe_strings),
        _ => {}
    }
}

/// A VmConfig read for API mode: the document, and the strings already in
/// its `platform.oem_strings`, which go into the plan as raw strings (so the
/// plan checks duplicates and the budget over everything at once).
#[derive(Debug)]
pub struct VmConfig {
    doc: Value,
    /// The strings already in the file, as [`Loaded::Oem`] sources.
    pub existing: Vec<Loaded>,
}

/// Reads a VmConfig JSON `config` (from `file`, named in messages): a JSON
/// object with `payload` (cloud-hypervisor's vm.create requires it) whose
/// `platform.oem_strings`, if present, is an array of non-empty strings
/// without NUL.
pub fn read_vm_config(config: &[u8], file: &str) -> Result<VmConfig> {
    let bad = |problem: String| ChError::VmConfig {
        file: file.to_owned(),
        problem,
    };
    let doc: Value = serde_json::from_slice(config).map_err(|e| {
        bad(format!(
            "not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let obj = doc
        .as_object()
        .ok_or_else(|| bad("the top level is not a JSON object (a VmConfig)".to_owned()))?;
    if !obj.contains_key("payload") {
        return Err(bad(
            "has no \"payload\" (kernel or firmware), which cloud-hypervisor's vm.create requires"
                .to_owned(),
        ));
    }
    let list = match obj.get("platform") {
        None | Some(Value::Null) => None,
        Some(Value::Object(p)) => match p.get(OEM_STRINGS_KEY) {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(a),
            Some(_) => {
                return Err(bad(
                    "\"platform.oem_strings\" is not a JSON array".to_owned()
                ))
            }
        },
        Some(_) => return Err(bad("\"platform\" is not a JSON object".to_owned())),
    };
    let mut existing = Vec::new();
    for (index, item) in list.into_iter().flatten().enumerate() {
        let Some(s) = item.as_str() else {
            return Err(bad(format!(
                "platform.oem_strings[{index}] is not a string"
            )));
        };
        if s.is_empty() {
            return Err(bad(format!(
                "platform.oem_strings[{index}] is empty; cloud-hypervisor writes it as a bare NUL, which ends the Type 11 structure early"
            )));
        }
        if s.as_bytes().contains(&0) {
            return Err(bad(format!(
                "platform.oem_strings[{index}] holds a NUL byte, which splits it into two strings in the table"
            )));
        }
        existing.push(Loaded::Oem {
            origin: Origin::VmConfig {
                file: file.to_owned(),
                index,
            },
            string: s.to_owned(),
        });
    }
    Ok(VmConfig { doc, existing })
}

impl VmConfig {
    /// The `vm.create` body: the document with `platform.oem_strings`
    /// replaced by the plan's strings (which begin with the file's own, in
    /// their order, after the injected manifest). The copy of the document
    /// held here is wiped.
    pub fn into_body(mut self, plan: &Plan) -> Result<Secret> {
        let mut list = Vec::with_capacity(plan.strings.len());
        for s in &plan.strings {
            // API mode carries any bytes JSON can; an OEM string is a C string.
            let Ok(text) = std::str::from_utf8(s.bytes.expose()) else {
                return Err(ChError::NotUtf8 {
                    label: s.label.clone(),
                });
            };
            list.push(Value::String(text.to_owned()));
        }
        let obj = self.doc.as_object_mut().expect("checked to be an object");
        let platform = obj
            .entry("platform")
            .or_insert_with(|| Value::Object(Map::new()));
        if platform.is_null() {
            *platform = Value::Object(Map::new());
        }
        let platform = platform.as_object_mut().expect("checked to be an object");
        if let Some(mut old) = platform.insert(OEM_STRINGS_KEY.to_owned(), Value::Array(list)) {
            wipe_strings(&mut old);
        }
        let body = Secret::new(serde_json::to_vec(&self.doc).expect("a JSON value serializes"));
        wipe_strings(&mut self.doc);
        if body.len() > API_BODY_MAX {
            return Err(ChError::BodyTooLarge { bytes: body.len() });
        }
        Ok(body)
    }
}

/// Byte strings to blank out of anything cloud-hypervisor sends back: for
/// each credential string, its encoded value, its decoded value, and their
/// JSON and Rust-debug escaped forms. Longest first.
pub fn redaction_needles(plan: &Plan) -> Vec<Secret> {
    let mut needles: Vec<Secret> = Vec::new();
    let mut add = |b: &[u8]| {
        if !b.is_empty() {
            needles.push(Secret::new(b.to_vec()));
            if let Ok(t) = std::str::from_utf8(b) {
                let json = serde_json::to_string(t).expect("a string serializes");
                let dbg = format!("{t:?}");
                for esc in [json, dbg] {
                    let inner = &esc.as_bytes()[1..esc.len() - 1];
                    if inner != b {
                        needles.push(Secret::new(inner.to_vec()));
                    }
                    drop(Secret::new(esc.into_bytes()));
                }
            }
        }
    };
    for s in &plan.strings {
        if s.name.is_none() {
            continue;
        }
        let bytes = s.bytes.expose();
        if let Some(eq) = bytes.iter().position(|&b| b == b'=') {
            add(&bytes[eq + 1..]);
        }
        if let Parsed::Credential { value, .. } = oem::parse(bytes, &Behaviour::newest()) {
            add(value.expose());
        }
    }
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    needles
}

/// What [`redact`] puts where a value was (kept by [`scrub_runs`]).
pub const REDACTED: &[u8] = b"[REDACTED]";

/// Replaces every occurrence of a needle in `body` with [`REDACTED`].
pub fn redact(body: &[u8], needles: &[Secret]) -> Vec<u8> {
    let mut cur = body.to_vec();
    for n in needles {
        let n = n.expose();
        if n.is_empty() || n.len() > cur.len() {
            continue;
        }
        let mut out = Vec::with_capacity(cur.len());
        let mut i = 0;
        while i < cur.len() {
            if cur[i..].starts_with(n) {
                out.extend_from_slice(REDACTED);
                i += n.len();
            } else {
                out.push(cur[i]);
                i += 1;
            }
        }
        drop(Secret::new(std::mem::replace(&mut cur, out)));
    }
    cur
}

/// Most bytes of an error body quoted in a message (after scrubbing).
pub const ERROR_BODY_SHOWN: usize = 200;

/// The shortest run of base64 or hex characters [`scrub_runs`] removes.
pub const RUN_MIN: usize = 8;

/// What stands where [`scrub_runs`] removed a run.
pub const RUN_CUT: &[u8] = b"[cut]";

/// True for a character of base64 (both alphabets, with padding) or hex.
fn is_encoding_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'=')
}

/// Replaces every run of [`RUN_MIN`] or more base64 or hex characters with
/// [`RUN_CUT`]: a server that quotes a piece of the request (not an exact
/// copy [`redact`] would know) shows no encoded secret. Words of eight or
/// more letters go too; the status says what happened.
pub fn scrub_runs(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(REDACTED) {
            out.extend_from_slice(REDACTED);
            i += REDACTED.len();
            continue;
        }
        let run = text[i..]
            .iter()
            .take_while(|&&b| is_encoding_byte(b))
            .count();
        if run >= RUN_MIN {
            out.extend_from_slice(RUN_CUT);
            i += run;
        } else if run > 0 {
            out.extend_from_slice(&text[i..i + run]);
            i += run;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// A body from cloud-hypervisor for a message: exact copies of a value
/// redacted, every run of base64 or hex characters of [`RUN_MIN`] or more
/// removed, escaped, and at most [`ERROR_BODY_SHOWN`] bytes of it.
pub fn quote_body(body: &[u8], needles: &[Secret]) -> String {
    let red = Secret::new(redact(body, needles));
    let scrubbed = Secret::new(scrub_runs(red.expose()));
    escape_bytes(scrubbed.expose(), ERROR_BODY_SHOWN)
}

/// The reason phrase of a status, as RFC 9110 names it.
fn standard_reason(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => return None,
    })
}

/// The server's reason phrase for a message (already escaped by the
/// response reader): the standard one as it is, anything else redacted and
/// scrubbed like a body, since it is the server's free text too.
pub fn quote_reason(status: u16, reason: &str, needles: &[Secret]) -> String {
    match standard_reason(status) {
        Some(std) if reason.eq_ignore_ascii_case(std) => std.to_owned(),
        _ => {
            let red = Secret::new(redact(reason.as_bytes(), needles));
            let scrubbed = Secret::new(scrub_runs(red.expose()));
            escape_bytes(scrubbed.expose(), 100)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanError, PlanOptions};
    use vmcreds_common::oem::Encoding;
    use vmcreds_common::NameRule;

    fn try_plan(items: Vec<Loaded>, encoding: Encoding) -> std::result::Result<Plan, PlanError> {
        Plan::build(
            items,
            PlanOptions {
                rule: NameRule::Systemd,
                encoding,
                manifest: false,
                budget: BUDGET,
            },
        )
    }

    fn plan_of(items: Vec<Loaded>, encoding: Encoding) -> Plan {
        try_plan(items, encoding).unwrap()
    }

    /// A secret from a file.
    fn cred(name: &str, value: &[u8]) -> Loaded {
        Loaded::Credential {
            name: name.into(),
            origin: Origin::Load {
                name: name.into(),
                path: "/run/secret".into(),
            },
            value: Secret::new(value.to_vec()),
        }
    }

    /// A public `--set` value.
    fn set(name: &str, value: &[u8]) -> Loaded {
        Loaded::Credential {
            name: name.into(),
            origin: Origin::Set { name: name.into() },
            value: Secret::new(value.to_vec()),
        }
    }

    #[test]
    fn test_first_unsafe() {
        assert_eq!(first_unsafe("abc"), None);
        assert_eq!(first_unsafe("a b"), None);
        assert_eq!(first_unsafe("a,b"), Some((1, ',')));
        assert_eq!(first_unsafe(" a"), Some((0, ' ')));
        assert_eq!(first_unsafe("a "), Some((1, ' ')));
        assert_eq!(first_unsafe("a\nb"), Some((1, '\n')));
        assert_eq!(first_unsafe("x\"y"), Some((1, '"')));
    }

    #[test]
    fn test_secret_value_not_described() {
        let p = plan_of(vec![cred("K", b"CANARY,x")], Encoding::Text);
        let e = check_strings(&p).unwrap_err();
        assert_eq!(
            e,
            ChError::UnsafeSecret {
                label: "credential \"K\"".into()
            }
        );
        let p = plan_of(vec![set("K", b"CANARY,x")], Encoding::Text);
        let e = check_strings(&p).unwrap_err();
        assert!(matches!(e, ChError::Unsafe { offset: 30, .. }), "{e}");
        // A bad name is always described.
        let p = plan_of(vec![cred("A,B", b"v")], Encoding::Binary);
        let e = check_strings(&p).unwrap_err();
        assert!(e.to_string().contains("in the credential name"), "{e}");
    }

    #[test]
    fn test_versions() {
        assert_eq!(
            Version::find("cloud-hypervisor v53.0"),
            Some(Version::new(53, 0))
        );
        assert_eq!(
            Version::find("cloud-hypervisor v48.1-12-gdeadbeef"),
            Some(Version::new(48, 1))
        );
        assert_eq!(Version::find("cloud-hypervisor"), None);
        assert_eq!("52".parse(), Ok(Version::new(52, 0)));
        assert_eq!("v52.1".parse(), Ok(Version::new(52, 1)));
        assert!("v5x".parse::<Version>().is_err());
        assert!(Version::new(52, 1) < Version::new(53, 0));
        let keys =
            PlatformKeys::parse(&["system_family=x".into(), "serial_number=y".into()]).unwrap();
        assert!(keys
            .check_version(&Binary::stated(Version::new(53, 0)))
            .is_ok());
        let e = keys
            .check_version(&Binary::stated(Version::new(52, 0)))
            .unwrap_err();
        assert!(
            matches!(&e, ChError::KeyTooNew { key, since, .. } if key == "system_family" && *since == Version::new(53, 0)),
            "{e}"
        );
        assert!(
            e.to_string().contains("--cloud-hypervisor-version v52.0"),
            "{e}"
        );
        let old = Binary::stated(Version::new(47, 0));
        assert!(old.check_oem_strings().is_ok());
        assert!(
            matches!(old.check_fw_cfg(), Err(BinaryError::TooOld { need, .. }) if need == FIRST_FW_CFG)
        );
        let no_feature = Binary {
            fw_cfg: Some(false),
            ..Binary::stated(Version::new(53, 0))
        };
        assert!(matches!(
            no_feature.check_fw_cfg(),
            Err(BinaryError::NoFwCfg { .. })
        ));
        assert!(Binary::stated(Version::new(25, 0))
            .check_oem_strings()
            .is_err());
    }

    #[test]
    fn test_platform_keys() {
        let k = PlatformKeys::parse(&["serial_number=abc".into(), "iommu_segments=[0,2-4]".into()])
            .unwrap();
        assert_eq!(k.0.len(), 2);
        assert_eq!(
            PlatformKeys::parse(&["oem_strings=[x]".into()]),
            Err(ChError::OemStringsKey)
        );
        assert!(matches!(
            PlatformKeys::parse(&["bogus=1".into()]),
            Err(ChError::UnknownKey { .. })
        ));
        assert!(matches!(
            PlatformKeys::parse(&["uuid=a".into(), "uuid=b".into()]),
            Err(ChError::DuplicateKey { .. })
        ));
        assert!(matches!(
            PlatformKeys::parse(&["serial_number=a,b".into()]),
            Err(ChError::Unsafe { offset: 1, .. })
        ));
        assert!(matches!(
            PlatformKeys::parse(&["serial_number=[1]".into()]),
            Err(ChError::Unsafe { offset: 0, .. })
        ));
        assert!(matches!(
            PlatformKeys::parse(&["uuid".into()]),
            Err(ChError::KeySyntax(_))
        ));
        assert!(matches!(
            PlatformKeys::parse(&["uuid=".into()]),
            Err(ChError::EmptyKeyValue { .. })
        ));
    }

    #[test]
    fn test_redact() {
        let p = plan_of(vec![cred("K", b"CANARY")], Encoding::Binary);
        let needles = redaction_needles(&p);
        let body = b"config: io.systemd.credential.binary:K=Q0FOQVJZ and CANARY";
        let q = quote_body(body, &needles);
        assert!(!q.contains("Q0FOQVJZ") && !q.contains("CANARY"), "{q}");
        assert_eq!(q.matches("[REDACTED]").count(), 2);
    }

    fn body_of(cfg: &[u8], extra: Vec<Loaded>) -> std::result::Result<Value, String> {
        let vm = read_vm_config(cfg, "c.json").map_err(|e| e.to_string())?;
        let mut items = vm
            .existing
            .iter()
            .map(|l| match l {
                Loaded::Oem { origin, string } => Loaded::Oem {
                    origin: origin.clone(),
                    string: string.clone(),
                },
                Loaded::Credential { .. } => unreachable!("a VmConfig gives raw strings"),
            })
            .collect::<Vec<_>>();
        items.extend(extra);
        let plan = try_plan(items, Encoding::Binary)
            .map_err(|e| format!("{:#}", anyhow::Error::new(e)))?;
        let body = vm.into_body(&plan).map_err(|e| e.to_string())?;
        Ok(serde_json::from_slice(body.expose()).unwrap())
    }

    #[test]
    fn test_merge_keeps_and_refuses_duplicates() {
        let cfg = br#"{"payload":{"kernel":"/k"},"cpus":{"boot_vcpus":2},"platform":{"serial_number":"s","oem_strings":["hello"]}}"#;
        let v = body_of(cfg, vec![cred("K", b"v")]).unwrap();
        assert_eq!(v["cpus"]["boot_vcpus"], 2);
        assert_eq!(v["platform"]["serial_number"], "s");
        assert_eq!(
            v["platform"]["oem_strings"],
            serde_json::json!(["hello", "io.systemd.credential.binary:K=dg=="])
        );
        // The plan refuses a name the file and the command line both set, naming both.
        let dup = br#"{"payload":{},"platform":{"oem_strings":["io.systemd.credential:K=x"]}}"#;
        let e = body_of(dup, vec![cred("K", b"v")]).unwrap_err();
        assert!(
            e.contains("\"K\" is given twice") && e.contains("c.json: platform.oem_strings[0]"),
            "{e}"
        );
        for bad in [
            &b"[]"[..],
            b"{}",
            b"{\"payload\":{},\"platform\":[]}",
            b"{\"payload\":{},\"platform\":{\"oem_strings\":[1]}}",
            b"{\"payload\":{},\"platform\":{\"oem_strings\":[\"\"]}}",
            b"{\"payload\":{},\"platform\":{\"oem_strings\":{}}}",
            b"not json",
        ] {
            assert!(
                matches!(read_vm_config(bad, "c.json"), Err(ChError::VmConfig { .. })),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let v = body_of(br#"{"payload":{"kernel":"/k"}}"#, vec![cred("K", b"v")]).unwrap();
        assert_eq!(
            v["platform"]["oem_strings"],
            serde_json::json!(["io.systemd.credential.binary:K=dg=="])
        );
    }

    #[test]
    fn test_scrub_runs_and_reasons() {
        assert_eq!(
            scrub_runs(
                b"Error creating VM: Q0FOQVJZLWFwaS1r; deadbeefcafe, ok=1 +/-=_ ab12 [REDACTED]"
            ),
            b"Error [cut] VM: [cut]; [cut], ok=1 +/-=_ ab12 [REDACTED]".to_vec()
        );
        assert_eq!(scrub_runs(b"1234567"), b"1234567");
        assert_eq!(scrub_runs(b"12345678"), b"[cut]");
        assert_eq!(
            quote_reason(500, "internal server error", &[]),
            "Internal Server Error"
        );
        assert_eq!(quote_reason(500, "Q0FOQVJZLWFwaS1r", &[]), "[cut]");
        assert_eq!(quote_reason(599, "Whatever", &[]), "[cut]");
    }
}
