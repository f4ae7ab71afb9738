//! Credential names: systemd's rule and the stricter portable rule.
//!
//! systemd's `credential_name_valid()` (`src/shared/creds-util.c`) is
//! `filename_is_valid() && fdname_is_valid()`: 1–255 bytes, each 0x20–0x7E, no
//! `/`, no `:`, not `.` or `..`. Over SMBIOS a name also cannot contain `=`,
//! because the first `=` ends it. The portable rule (`[A-Za-z0-9_.@+-]`) is what
//! every hypervisor option parser carries unescaped.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::escape::escape_name;

/// Longest valid name: `NAME_MAX` and `FDNAME_MAX` (`src/shared/creds-util.h`
/// `CREDENTIAL_NAME_MAX`).
pub const CREDENTIAL_NAME_MAX: usize = 255;

/// Which rule a name is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NameRule {
    /// `[A-Za-z0-9_.@+-]` only: safe for every hypervisor's option parser.
    #[default]
    Portable,
    /// systemd's `credential_name_valid()` (plus no `=`, which SMBIOS cannot carry).
    Systemd,
}

/// Why a name is refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum NameError {
    /// The name is empty.
    #[error("credential name is empty")]
    Empty,
    /// Longer than systemd allows.
    #[error("credential name is {actual} bytes, systemd allows at most {limit}")]
    TooLong {
        /// The limit (255).
        limit: usize,
        /// The name's length.
        actual: usize,
    },
    /// `.` or `..`.
    #[error("credential name \"{0}\" is not a valid file name")]
    Dots(String),
    /// A byte systemd refuses (control, DEL, non-ASCII, `/`, `:`).
    #[error("credential name \"{name}\" has byte 0x{byte:02x} at offset {offset}, which systemd refuses ({why})")]
    ForbiddenByte {
        /// The escaped name.
        name: String,
        /// The offending byte.
        byte: u8,
        /// Its offset in the name.
        offset: usize,
        /// systemd's rule that refuses it.
        why: &'static str,
    },
    /// `=` would end the name early inside an OEM string.
    #[error("credential name \"{name}\" contains '=' at offset {offset}: in an OEM string the first '=' ends the name")]
    Equals {
        /// The escaped name.
        name: String,
        /// Offset of the `=`.
        offset: usize,
    },
    /// Valid for systemd but not portable across hypervisor parsers.
    #[error("credential name \"{name}\" has {shown} at offset {offset}, outside the portable set [A-Za-z0-9_.@+-] (it breaks hypervisor option parsers)")]
    NotPortable {
        /// The escaped name.
        name: String,
        /// The character, shown quoted.
        shown: String,
        /// Its offset.
        offset: usize,
    },
}

/// Result alias for name checks.
pub type Result<T> = std::result::Result<T, NameError>;

/// Checks `name` exactly as systemd's `credential_name_valid()` does.
///
/// `=` is not refused here (systemd accepts it in a file name); an OEM string
/// simply cannot carry it, which [`CredentialName::parse`] checks.
pub fn check_systemd(name: &[u8]) -> Result<()> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name == b"." || name == b".." {
        return Err(NameError::Dots(escape_name(name)));
    }
    if name.len() > CREDENTIAL_NAME_MAX {
        return Err(NameError::TooLong {
            limit: CREDENTIAL_NAME_MAX,
            actual: name.len(),
        });
    }
    for (offset, &byte) in name.iter().enumerate() {
        let why = match byte {
            b'/' => "no '/' in a file name",
            b':' => "no ':' in a file descriptor name",
            0x20..=0x7e => continue,
            _ => "only bytes 0x20-0x7e",
        };
        return Err(NameError::ForbiddenByte {
            name: escape_name(name),
            byte,
            offset,
            why,
        });
    }
    Ok(())
}

/// True for the bytes of the portable set `[A-Za-z0-9_.@+-]`.
pub fn is_portable_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'+' | b'-')
}

/// A credential name valid for systemd and carriable in an OEM string.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CredentialName(String);

impl CredentialName {
    /// Validates `name` against `rule` (and, always, systemd's rule and no `=`).
    pub fn parse(name: &str, rule: NameRule) -> Result<Self> {
        let bytes = name.as_bytes();
        check_systemd(bytes)?;
        if let Some(offset) = bytes.iter().position(|&b| b == b'=') {
            return Err(NameError::Equals {
                name: escape_name(bytes),
                offset,
            });
        }
        if rule == NameRule::Portable {
            if let Some(offset) = bytes.iter().position(|&b| !is_portable_byte(b)) {
                return Err(NameError::NotPortable {
                    name: escape_name(bytes),
                    shown: format!("'{}'", bytes[offset] as char),
                    offset,
                });
            }
        }
        Ok(CredentialName(name.to_owned()))
    }

    /// Validates raw bytes as systemd does a name it reads (systemd's rule,
    /// no `=`): one step, so every refusal is the real reason.
    pub fn from_systemd_bytes(bytes: &[u8]) -> Result<Self> {
        check_systemd(bytes)?;
        // check_systemd passed: every byte is printable ASCII, so each is
        // its own char.
        Self::parse(
            &bytes.iter().map(|&b| char::from(b)).collect::<String>(),
            NameRule::Systemd,
        )
    }

    /// The name; always printable ASCII.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CredentialName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self> {
        CredentialName::parse(&s, NameRule::Systemd)
    }
}

impl From<CredentialName> for String {
    fn from(n: CredentialName) -> String {
        n.0
    }
}

impl fmt::Display for CredentialName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CredentialName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn test_from_systemd_bytes_gives_the_real_reason() {
        assert_eq!(
            CredentialName::from_systemd_bytes(b"A B").unwrap().as_str(),
            "A B"
        );
        assert_eq!(
            CredentialName::from_systemd_bytes(b""),
            Err(NameError::Empty)
        );
        assert!(matches!(
            CredentialName::from_systemd_bytes(b"a/b"),
            Err(NameError::ForbiddenByte { byte: b'/', .. })
        ));
        assert!(matches!(
            CredentialName::from_systemd_bytes(b"a=b"),
            Err(NameError::Equals { offset: 1, .. })
        ));
        assert!(matches!(
            CredentialName::from_systemd_bytes(b"\xff"),
            Err(NameError::ForbiddenByte { byte: 0xff, .. })
        ));
    }

    #[test]
    fn test_systemd_rule_edges() {
        assert_eq!(check_systemd(b""), Err(NameError::Empty));
        assert!(matches!(check_systemd(b"."), Err(NameError::Dots(_))));
        assert!(matches!(check_systemd(b".."), Err(NameError::Dots(_))));
        assert!(check_systemd(b"...").is_ok());
        assert!(check_systemd(&[b'a'; 255]).is_ok());
        assert_eq!(
            check_systemd(&[b'a'; 256]),
            Err(NameError::TooLong {
                limit: 255,
                actual: 256
            })
        );
        for bad in [b'/', b':', 0x1f, 0x7f, 0x80, 0xff, 0] {
            let name = [b'a', bad, b'b'];
            match check_systemd(&name) {
                Err(NameError::ForbiddenByte { byte, offset, .. }) => {
                    assert_eq!((byte, offset), (bad, 1));
                }
                other => panic!("byte {bad:#x}: {other:?}"),
            }
        }
        // Space, comma, '=' and '"' are valid file and fd names.
        assert!(check_systemd(b"a b,c=\"d").is_ok());
    }

    #[test]
    fn test_parse_refuses_equals_and_non_portable() {
        assert!(matches!(
            CredentialName::parse("a=b", NameRule::Systemd),
            Err(NameError::Equals { offset: 1, .. })
        ));
        let err = CredentialName::parse("a,b", NameRule::Portable).unwrap_err();
        assert!(matches!(err, NameError::NotPortable { offset: 1, .. }));
        // The rule's text; what to pass to the host is the host's to say.
        assert!(err.to_string().contains("portable set"), "{err}");
        assert!(!err.to_string().contains("--"), "{err}");
        assert!(CredentialName::parse("a,b", NameRule::Systemd).is_ok());
        for ok in ["API_KEY", "vmcreds.manifest", "a-b+c@d.e", "0"] {
            assert!(
                CredentialName::parse(ok, NameRule::Portable).is_ok(),
                "{ok}"
            );
        }
    }

    #[test]
    fn test_serde_validates() {
        let n: CredentialName = serde_json::from_str("\"API_KEY\"").unwrap();
        assert_eq!(n.as_str(), "API_KEY");
        assert!(serde_json::from_str::<CredentialName>("\"a/b\"").is_err());
    }

    proptest! {
        #[test]
        fn prop_portable_implies_systemd(s in "[A-Za-z0-9_.@+-]{1,255}") {
            prop_assume!(s != "." && s != "..");
            prop_assert!(CredentialName::parse(&s, NameRule::Portable).is_ok());
            prop_assert!(check_systemd(s.as_bytes()).is_ok());
        }

        #[test]
        fn prop_check_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = check_systemd(&bytes);
        }
    }
}
