//! crosvm (x86_64): one `--oem-strings STRING` pair of arguments per string
//! (`src/crosvm/cmdline.rs`, reference `hypervisors.md` §4). Each argument is
//! one string, not split, so commas and brackets are fine. crosvm has no
//! file, fd or config-file input for SMBIOS: the strings are on its argv.
//!
//! crosvm's `x86_64/src/smbios.rs` refuses more than 255 strings
//! (`TooManyOemStrings`) and NUL (`StringHasNullCharacter`) but not an empty
//! string; all three are checked here first, with the plan's
//! [`Budget::CROSVM`] for sizes.

use thiserror::Error;
use vmcreds_common::limits::{Budget, TYPE11_MAX_STRINGS};

use super::{Target, TargetKind};
use crate::plan::{OemString, Plan};

/// The crosvm option that takes one OEM string.
pub const OEM_STRINGS_FLAG: &str = "--oem-strings";

/// The argv warning.
pub const ARGV_WARNING: &str = "crosvm takes OEM strings only on its command line (it has no file or fd input for SMBIOS), so the credentials (base64 is not encryption) will be readable by every local user in /proc/PID/cmdline unless /proc is mounted with hidepid=; for secrets prefer QEMU or cloud-hypervisor's API mode with vmcreds-host";

/// Why a crosvm delivery is refused (exit 2).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CrosvmError {
    /// More strings than crosvm takes.
    #[error("{actual} OEM strings, but crosvm refuses more than {limit} (TooManyOemStrings)")]
    TooMany {
        /// Limit.
        limit: usize,
        /// Strings requested.
        actual: usize,
    },
    /// An empty string.
    #[error("{label} is empty; crosvm does not check, and an empty OEM string ends the Type 11 structure early")]
    Empty {
        /// Which string.
        label: String,
    },
    /// A NUL byte (crosvm: `StringHasNullCharacter`).
    #[error("{label} holds a NUL byte, which crosvm refuses (StringHasNullCharacter); use --encoding binary (the default)")]
    Nul {
        /// Which string.
        label: String,
    },
    /// Not UTF-8 (crosvm's argv is parsed as UTF-8).
    #[error("{label} is not valid UTF-8, which crosvm's command line requires; use --encoding binary (the default)")]
    NotUtf8 {
        /// Which string.
        label: String,
    },
    /// A control character (the output is one argument per line).
    #[error("{label}: a control character at byte offset {offset}; the output is one argument per line and cannot carry it")]
    Control {
        /// Which string.
        label: String,
        /// Its byte offset.
        offset: usize,
    },
    /// A control character in a secret value (not located).
    #[error("{label}: the value holds a control character, which the one-argument-per-line output cannot carry; use --encoding binary (the default)")]
    ControlSecret {
        /// Which credential.
        label: String,
    },
    /// A leading `-`.
    #[error("{label} starts with '-', which crosvm's argument parser could take for an option")]
    LeadingDash {
        /// Which string.
        label: String,
    },
    /// Nothing to deliver.
    #[error("there are no OEM strings to deliver; give --load, --load-dir, --set or --oem, or drop --no-manifest")]
    Nothing,
}

/// The crosvm target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Crosvm;

impl Target for Crosvm {
    fn kind(&self) -> TargetKind {
        TargetKind::Crosvm
    }
    fn budget(&self) -> Budget {
        Budget::CROSVM
    }
}

fn value_start(s: &OemString) -> usize {
    if s.raw || s.name.is_none() {
        return s.bytes.len();
    }
    s.bytes
        .expose()
        .iter()
        .position(|&b| b == b'=')
        .map_or(s.bytes.len(), |i| i + 1)
}

/// Checks the plan's strings and returns the crosvm arguments
/// (`--oem-strings`, STRING pairs). `public(s)` says whether a string's value
/// may be located in a message.
pub fn oem_args(
    plan: &Plan,
    public: impl Fn(&OemString) -> bool,
) -> Result<Vec<&str>, CrosvmError> {
    if plan.strings.is_empty() {
        return Err(CrosvmError::Nothing);
    }
    if plan.strings.len() > TYPE11_MAX_STRINGS {
        return Err(CrosvmError::TooMany {
            limit: TYPE11_MAX_STRINGS,
            actual: plan.strings.len(),
        });
    }
    let mut args = Vec::with_capacity(plan.strings.len() * 2);
    for s in &plan.strings {
        let label = || s.label.clone();
        let bytes = s.bytes.expose();
        if bytes.is_empty() {
            return Err(CrosvmError::Empty { label: label() });
        }
        if bytes.contains(&0) {
            return Err(CrosvmError::Nul { label: label() });
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Err(CrosvmError::NotUtf8 { label: label() });
        };
        if let Some((offset, _)) = text.char_indices().find(|(_, c)| c.is_control()) {
            if public(s) || offset < value_start(s) {
                return Err(CrosvmError::Control {
                    label: label(),
                    offset,
                });
            }
            return Err(CrosvmError::ControlSecret { label: label() });
        }
        if text.starts_with('-') {
            return Err(CrosvmError::LeadingDash { label: label() });
        }
        args.push(OEM_STRINGS_FLAG);
        args.push(text);
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlanOptions;
    use crate::source::{Loaded, Origin};
    use vmcreds_common::oem::Encoding;
    use vmcreds_common::{NameRule, Secret};

    fn plan(items: Vec<Loaded>, encoding: Encoding) -> Plan {
        Plan::build(
            items,
            PlanOptions {
                rule: NameRule::Portable,
                encoding,
                manifest: false,
                budget: Budget::CROSVM,
            },
        )
        .unwrap()
    }

    #[test]
    fn test_args_and_refusals() {
        let p = plan(
            vec![
                Loaded::Credential {
                    name: "K".into(),
                    origin: Origin::Set { name: "K".into() },
                    value: Secret::new(b"a,b]".to_vec()),
                },
                Loaded::Oem {
                    index: 1,
                    string: "x,[y]".into(),
                },
            ],
            Encoding::Text,
        );
        assert_eq!(
            oem_args(&p, |_| false).unwrap(),
            vec![
                "--oem-strings",
                "io.systemd.credential:K=a,b]",
                "--oem-strings",
                "x,[y]"
            ]
        );
        let p = plan(
            vec![Loaded::Credential {
                name: "K".into(),
                origin: Origin::Set { name: "K".into() },
                value: Secret::new(b"a\nb".to_vec()),
            }],
            Encoding::Text,
        );
        assert!(matches!(
            oem_args(&p, |_| false),
            Err(CrosvmError::ControlSecret { .. })
        ));
        assert!(matches!(
            oem_args(&p, |_| true),
            Err(CrosvmError::Control { offset: 25, .. })
        ));
        let p = plan(
            vec![Loaded::Oem {
                index: 1,
                string: "-x".into(),
            }],
            Encoding::Binary,
        );
        assert!(matches!(
            oem_args(&p, |_| true),
            Err(CrosvmError::LeadingDash { .. })
        ));
    }
}
