//! crosvm (x86_64): one `--oem-strings STRING` pair of arguments per string
//! (`src/crosvm/cmdline.rs`, reference `hypervisors.md` §4). Each argument is
//! one string, not split, so commas and brackets are fine. crosvm has no
//! file, fd or config-file input for SMBIOS: the strings are on its argv.
//!
//! crosvm's `x86_64/src/smbios.rs` refuses more than 255 strings
//! (`TooManyOemStrings`) and NUL (`StringHasNullCharacter`) but not an empty
//! string; all three are checked here first, with [`BUDGET`] for sizes.

use thiserror::Error;
use vmcreds_common::limits::TYPE11_MAX_STRINGS;

use super::Budget;
use crate::exit::{Classify, Exit};
use crate::plan::Plan;

/// crosvm (x86_64) places its tables at 0xF0000 with a 64-bit entry point,
/// in the 64 KiB below 1 MiB; vmcreds keeps Type 11 under 60 KiB.
pub const BUDGET: Budget = Budget {
    target: "crosvm",
    smbios: true,
    max_type11_bytes: Some(60 * 1024),
    rule:
        "crosvm keeps its SMBIOS tables in 64 KiB below 1 MiB; vmcreds keeps Type 11 under 60 KiB",
};

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

impl Classify<Exit> for CrosvmError {
    fn exit(&self) -> Exit {
        Exit::Refused
    }
}

/// Checks the plan's strings and returns the crosvm arguments
/// (`--oem-strings`, STRING pairs). A character is located in a message only
/// where [`crate::plan::OemString::may_locate`] allows.
pub fn oem_args(plan: &Plan) -> Result<Vec<&str>, CrosvmError> {
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
            if s.may_locate(offset) {
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
                budget: BUDGET,
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
                    origin: Origin::Oem { index: 1 },
                    string: "x,[y]".into(),
                },
            ],
            Encoding::Text,
        );
        assert_eq!(
            oem_args(&p).unwrap(),
            vec![
                "--oem-strings",
                "io.systemd.credential:K=a,b]",
                "--oem-strings",
                "x,[y]"
            ]
        );
        let with_newline = |origin| {
            plan(
                vec![Loaded::Credential {
                    name: "K".into(),
                    origin,
                    value: Secret::new(b"a\nb".to_vec()),
                }],
                Encoding::Text,
            )
        };
        let secret = with_newline(Origin::Load {
            name: "K".into(),
            path: "/run/k".into(),
        });
        assert!(matches!(
            oem_args(&secret),
            Err(CrosvmError::ControlSecret { .. })
        ));
        let public = with_newline(Origin::Set { name: "K".into() });
        assert!(matches!(
            oem_args(&public),
            Err(CrosvmError::Control { offset: 25, .. })
        ));
        let p = plan(
            vec![Loaded::Oem {
                origin: Origin::Oem { index: 1 },
                string: "-x".into(),
            }],
            Encoding::Binary,
        );
        assert!(matches!(oem_args(&p), Err(CrosvmError::LeadingDash { .. })));
    }
}
