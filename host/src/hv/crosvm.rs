//! crosvm (x86_64): the OEM strings go on its command line (crosvm has no
//! file, fd or config-file input for SMBIOS), in one of two forms:
//!
//! - `--smbios oem-strings=[S1,S2,…]` (since crosvm `2422c65f3`, 2023): one
//!   argument parsed by crosvm's `serde_keyvalue` (`key_values.rs`
//!   `any_string`): inside the list an element is unquoted (any characters
//!   but `,` `"` `'` `[` `]`, at least one), single-quoted (no escapes) or
//!   double-quoted (`\"` and `\\` the only escapes); elements are separated
//!   by `,`. vmcreds-host writes an element unquoted when it can (base64
//!   credentials always can) and double-quoted, escaped, otherwise;
//! - the deprecated `--oem-strings STRING`, one string per argument, not
//!   split (`a2734226e`, 2022; still accepted, with a warning, in 2026).
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

/// The current option.
pub const SMBIOS_FLAG: &str = "--smbios";

/// The deprecated option that takes one OEM string.
pub const OEM_STRINGS_FLAG: &str = "--oem-strings";

/// Which of crosvm's two options carries the strings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Form {
    /// `--smbios oem-strings=[…]` (crosvm since 2023).
    #[default]
    Smbios,
    /// `--oem-strings STRING` per string (older crosvm; deprecated).
    OemStrings,
}

/// The argv warning.
pub const ARGV_WARNING: &str = "crosvm takes OEM strings only on its command line (it has no file or fd input for SMBIOS), so the credentials (base64 is not encryption) will be readable by every local user in /proc/PID/cmdline unless /proc is mounted with hidepid=; for secrets prefer QEMU or cloud-hypervisor's API or fw_cfg mode with vmcreds-host";

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
    /// A leading `-` (the deprecated form puts each string in its own argument).
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

/// Checks the plan's strings for crosvm's command line and returns them.
/// A character is located in a message only where
/// [`crate::plan::OemString::may_locate`] allows.
fn check(plan: &Plan, form: Form) -> Result<Vec<&str>, CrosvmError> {
    if plan.strings.is_empty() {
        return Err(CrosvmError::Nothing);
    }
    if plan.strings.len() > TYPE11_MAX_STRINGS {
        return Err(CrosvmError::TooMany {
            limit: TYPE11_MAX_STRINGS,
            actual: plan.strings.len(),
        });
    }
    let mut out = Vec::with_capacity(plan.strings.len());
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
        if form == Form::OemStrings && text.starts_with('-') {
            return Err(CrosvmError::LeadingDash { label: label() });
        }
        out.push(text);
    }
    Ok(out)
}

/// One element of `oem-strings=[…]`: unquoted when `serde_keyvalue` reads
/// it back unchanged that way, else double-quoted with `"` and `\` escaped.
pub fn list_element(s: &str) -> String {
    let plain = !s.is_empty() && !s.contains([',', '"', '\'', '[', ']']);
    if plain {
        return s.to_owned();
    }
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// The crosvm arguments for the plan, in `form`.
pub fn args(plan: &Plan, form: Form) -> Result<Vec<String>, CrosvmError> {
    let strings = check(plan, form)?;
    Ok(match form {
        Form::Smbios => {
            let elements: Vec<String> = strings.iter().map(|s| list_element(s)).collect();
            vec![
                SMBIOS_FLAG.to_owned(),
                format!("oem-strings=[{}]", elements.join(",")),
            ]
        }
        Form::OemStrings => strings
            .iter()
            .flat_map(|s| [OEM_STRINGS_FLAG.to_owned(), (*s).to_owned()])
            .collect(),
    })
}

/// The form a crosvm binary takes: `--smbios` when its `run --help` lists
/// it, else the deprecated `--oem-strings`.
pub fn form_of(path: &std::path::Path) -> std::io::Result<Form> {
    let help = super::ask(path, &["run", "--help"])?;
    let has = |flag: &[u8]| help.windows(flag.len()).any(|w| w == flag);
    Ok(if has(b"--smbios") {
        Form::Smbios
    } else {
        Form::OemStrings
    })
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

    fn set(value: &[u8]) -> Loaded {
        Loaded::Credential {
            name: "K".into(),
            origin: Origin::Set { name: "K".into() },
            value: Secret::new(value.to_vec()),
        }
    }

    #[test]
    fn test_both_forms_and_quoting() {
        let p = plan(
            vec![
                set(b"a,b]"),
                Loaded::Oem {
                    origin: Origin::Oem { index: 1 },
                    string: "x,[y]".into(),
                },
                Loaded::Oem {
                    origin: Origin::Oem { index: 2 },
                    string: "plain:text=v".into(),
                },
            ],
            Encoding::Text,
        );
        assert_eq!(
            args(&p, Form::OemStrings).unwrap(),
            vec![
                "--oem-strings",
                "io.systemd.credential:K=a,b]",
                "--oem-strings",
                "x,[y]",
                "--oem-strings",
                "plain:text=v"
            ]
        );
        assert_eq!(
            args(&p, Form::Smbios).unwrap(),
            vec![
                "--smbios",
                r#"oem-strings=["io.systemd.credential:K=a,b]","x,[y]",plain:text=v]"#
            ]
        );
        assert_eq!(list_element(r#"say "hi" \o/"#), r#""say \"hi\" \\o/""#);
        assert_eq!(list_element("it's"), r#""it's""#);
    }

    #[test]
    fn test_refusals() {
        let secret = |v: &[u8]| {
            plan(
                vec![Loaded::Credential {
                    name: "K".into(),
                    origin: Origin::Load {
                        name: "K".into(),
                        path: "/run/k".into(),
                    },
                    value: Secret::new(v.to_vec()),
                }],
                Encoding::Text,
            )
        };
        assert!(matches!(
            args(&secret(b"a\nb"), Form::Smbios),
            Err(CrosvmError::ControlSecret { .. })
        ));
        assert!(matches!(
            args(&plan(vec![set(b"a\nb")], Encoding::Text), Form::Smbios),
            Err(CrosvmError::Control { offset: 25, .. })
        ));
        let dash = plan(
            vec![Loaded::Oem {
                origin: Origin::Oem { index: 1 },
                string: "-x".into(),
            }],
            Encoding::Binary,
        );
        assert!(matches!(
            args(&dash, Form::OemStrings),
            Err(CrosvmError::LeadingDash { .. })
        ));
        assert!(
            args(&dash, Form::Smbios).is_ok(),
            "inside the list a '-' is text"
        );
    }
}
