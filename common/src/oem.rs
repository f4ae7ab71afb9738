//! OEM strings: encoding a credential the host's way, and classifying a string
//! the way systemd's `parse_smbios_strings()` (`src/core/import-creds.c`) does.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::base64::{self, Base64Error};
use crate::escape::escape_name;
use crate::name::{CredentialName, NameError};
use crate::secret::Secret;
use crate::systemd::Behaviour;

/// Prefix of a text credential: the value follows the first `=` verbatim.
pub const TEXT_PREFIX: &[u8] = b"io.systemd.credential:";
/// Prefix of a binary credential: the value is base64.
pub const BINARY_PREFIX: &[u8] = b"io.systemd.credential.binary:";

/// How a value is carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// `io.systemd.credential.binary:NAME=BASE64` (the default).
    #[default]
    Binary,
    /// `io.systemd.credential:NAME=VALUE`.
    Text,
}

/// Why a value cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// A text value with a NUL byte: an OEM string ends at the first NUL.
    /// (Where the NUL is would say something about the value: not reported.)
    #[error("credential \"{name}\" has a NUL byte; an OEM string ends at NUL")]
    TextHasNul {
        /// The credential.
        name: String,
    },
}

/// Encodes one credential into an OEM string (which holds the value, hence a
/// [`Secret`]). Text values are verbatim; binary values are standard padded
/// base64 on one line.
pub fn encode(
    name: &CredentialName,
    value: &[u8],
    encoding: Encoding,
) -> Result<Secret, EncodeError> {
    let prefix = match encoding {
        Encoding::Binary => BINARY_PREFIX,
        Encoding::Text => TEXT_PREFIX,
    };
    let body_len = match encoding {
        Encoding::Binary => base64::encoded_len(value.len()),
        Encoding::Text => {
            if value.contains(&0) {
                return Err(EncodeError::TextHasNul {
                    name: name.to_string(),
                });
            }
            value.len()
        }
    };
    let mut out = Secret::new(Vec::with_capacity(
        prefix.len() + name.as_str().len() + 1 + body_len,
    ));
    out.extend_from_slice(prefix);
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b"=");
    match encoding {
        Encoding::Binary => out.extend_from_slice(base64::encode(value).expose()),
        Encoding::Text => out.extend_from_slice(value),
    }
    Ok(out)
}

/// Length of [`encode`]'s output, without building it.
pub fn encoded_len(name: &CredentialName, value_len: usize, encoding: Encoding) -> usize {
    let (prefix, body) = match encoding {
        Encoding::Binary => (BINARY_PREFIX.len(), base64::encoded_len(value_len)),
        Encoding::Text => (TEXT_PREFIX.len(), value_len),
    };
    prefix + name.as_str().len() + 1 + body
}

/// Why systemd ignores a credential string. The messages follow systemd's
/// warnings but never include the value.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Rejection {
    /// `SMBIOS OEM string lacks '=' character, ignoring.`
    #[error("OEM string lacks '=' character")]
    NoEquals,
    /// `SMBIOS credential name '%s' is not valid, ignoring.`
    #[error("credential name is not valid: {0}")]
    InvalidName(NameError),
    /// `Failed to base64 decode credential '%s', ignoring: %m`
    #[error("failed to base64 decode: {0}")]
    Base64(Base64Error),
    /// The credential prefix is inside the string, not at its start: systemd
    /// ignores it as not a credential (`Ignoring OEM string: …`, debug level
    /// only), so the credential is lost without a warning.
    #[error("{}", buried_reason(*.offset, *.merged))]
    Buried {
        /// Bytes before the prefix.
        offset: usize,
        /// Those bytes are a Type 11 structure header: the structure before
        /// this one in the table has no terminating NUL, and the kernel's
        /// walk read this structure as more strings of the entry before.
        merged: bool,
    },
}

fn buried_reason(offset: usize, merged: bool) -> String {
    if merged {
        "the string begins with a Type 11 structure header: the structure before it in the \
         table lacks its terminating NUL, so the kernel read this structure as more strings of \
         that entry, and systemd ignores the string as not a credential"
            .into()
    } else {
        format!(
            "{offset} byte(s) come before the credential prefix: systemd ignores the string as \
             not a credential"
        )
    }
}

/// The first credential prefix inside `s` (not at its start): its offset,
/// the encoding it names and what follows it.
fn buried_prefix(s: &[u8]) -> Option<(usize, Encoding, &[u8])> {
    let find = |p: &[u8]| {
        s.windows(p.len())
            .skip(1)
            .position(|w| w == p)
            .map(|i| i + 1)
    };
    let text = find(TEXT_PREFIX).map(|o| (o, Encoding::Text, &s[o + TEXT_PREFIX.len()..]));
    let binary = find(BINARY_PREFIX).map(|o| (o, Encoding::Binary, &s[o + BINARY_PREFIX.len()..]));
    match (text, binary) {
        (Some(t), Some(b)) => Some(if t.0 < b.0 { t } else { b }),
        (t, b) => t.or(b),
    }
}

/// What systemd makes of one OEM string.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// No credential prefix (systemd logs it at debug level, value included;
    /// vmcreds counts it and never prints it).
    NotCredential,
    /// A credential systemd decodes (size limits and duplicates are the
    /// [`crate::predict`] module's business).
    Credential {
        /// Its name.
        name: CredentialName,
        /// How it was carried.
        encoding: Encoding,
        /// The decoded value.
        value: Secret,
    },
    /// A credential string systemd warns about and ignores.
    Rejected {
        /// How it claimed to be carried.
        encoding: Encoding,
        /// The name, escaped for display, when one could be delimited.
        name: Option<String>,
        /// Why.
        reason: Rejection,
    },
}

/// Classifies one OEM string (without its NUL) as systemd `behaviour` does.
pub fn parse(s: &[u8], behaviour: &Behaviour) -> Parsed {
    let (encoding, rest) = if let Some(rest) = s.strip_prefix(TEXT_PREFIX) {
        (Encoding::Text, rest)
    } else if let Some(rest) = s.strip_prefix(BINARY_PREFIX) {
        (Encoding::Binary, rest)
    } else if let Some((offset, encoding, rest)) = buried_prefix(s) {
        // A Type 11 header is 11, its length (the offset of the strings), a
        // handle and a count; with a handle free of zero bytes it stays
        // inside one "string" when the kernel merges two structures.
        let merged = s[0] == 11 && offset >= 5 && usize::from(s[1]) == offset;
        let name = rest
            .iter()
            .position(|&b| b == b'=')
            .map(|eq| escape_name(&rest[..eq]));
        return Parsed::Rejected {
            encoding,
            name,
            reason: Rejection::Buried { offset, merged },
        };
    } else {
        return Parsed::NotCredential;
    };
    let Some(eq) = rest.iter().position(|&b| b == b'=') else {
        return Parsed::Rejected {
            encoding,
            name: None,
            reason: Rejection::NoEquals,
        };
    };
    let (raw_name, raw_value) = (&rest[..eq], &rest[eq + 1..]);
    let name = match CredentialName::from_systemd_bytes(raw_name) {
        Ok(n) => n,
        Err(e) => {
            return Parsed::Rejected {
                encoding,
                name: Some(escape_name(raw_name)),
                reason: Rejection::InvalidName(e),
            }
        }
    };
    let value = match encoding {
        Encoding::Text => Secret::new(raw_value.to_vec()),
        Encoding::Binary => {
            match base64::decode_systemd(raw_value, behaviour.alphabet, behaviour.version) {
                Ok(v) => v,
                Err(e) => {
                    return Parsed::Rejected {
                        encoding,
                        name: Some(name.to_string()),
                        reason: Rejection::Base64(e),
                    }
                }
            }
        }
    };
    Parsed::Credential {
        name,
        encoding,
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::NameRule;
    use proptest::prelude::*;

    fn b257() -> Behaviour {
        Behaviour::of(257)
    }

    fn name(s: &str) -> CredentialName {
        CredentialName::parse(s, NameRule::Systemd).unwrap()
    }

    #[test]
    fn test_encode_binary_and_text() {
        let e = encode(&name("API_KEY"), b"hi", Encoding::Binary).unwrap();
        assert_eq!(e.expose(), b"io.systemd.credential.binary:API_KEY=aGk=");
        assert_eq!(e.len(), encoded_len(&name("API_KEY"), 2, Encoding::Binary));
        let t = encode(&name("ENV"), b"a=b,c\n", Encoding::Text).unwrap();
        assert_eq!(t.expose(), b"io.systemd.credential:ENV=a=b,c\n");
        assert_eq!(t.len(), encoded_len(&name("ENV"), 6, Encoding::Text));
        assert_eq!(
            encode(&name("X"), b"a\0b", Encoding::Text),
            Err(EncodeError::TextHasNul { name: "X".into() })
        );
        assert_eq!(
            encode(&name("E"), b"", Encoding::Binary).unwrap().expose(),
            b"io.systemd.credential.binary:E="
        );
    }

    #[test]
    fn test_parse_prefixes_are_exact() {
        for s in [
            &b"io.systemd.Credential:a=b"[..],
            b"io.systemd.credential",
            b"io.systemd.credential.binar:a=b",
            b"hello world",
        ] {
            assert_eq!(parse(s, &b257()), Parsed::NotCredential, "{s:?}");
        }
    }

    #[test]
    fn test_parse_names_a_prefix_buried_inside_a_string() {
        // A leading space: systemd ignores the string (debug level only).
        assert_eq!(
            parse(b" io.systemd.credential:a=b", &b257()),
            Parsed::Rejected {
                encoding: Encoding::Text,
                name: Some("a".into()),
                reason: Rejection::Buried {
                    offset: 1,
                    merged: false
                },
            }
        );
        // The next structure's header (type 11, length 5, handle 0x0e02,
        // count 1) read as part of this string: measured with real systemd
        // 252-262 on a table whose previous structure lacked its final NUL.
        let merged = b"\x0b\x05\x02\x0e\x01io.systemd.credential.binary:gt_u2=dg==";
        let p = parse(merged, &b257());
        assert_eq!(
            p,
            Parsed::Rejected {
                encoding: Encoding::Binary,
                name: Some("gt_u2".into()),
                reason: Rejection::Buried {
                    offset: 5,
                    merged: true
                },
            }
        );
        let Parsed::Rejected { reason, .. } = p else {
            unreachable!()
        };
        assert!(reason.to_string().contains("lacks its terminating NUL"));
        // The earlier of two prefixes decides; no '=' leaves the name unknown.
        assert_eq!(
            parse(
                b"xio.systemd.credential.binary:io.systemd.credential:",
                &b257()
            ),
            Parsed::Rejected {
                encoding: Encoding::Binary,
                name: None,
                reason: Rejection::Buried {
                    offset: 1,
                    merged: false
                },
            }
        );
    }

    #[test]
    fn test_parse_first_equals_splits_and_value_is_verbatim() {
        match parse(b"io.systemd.credential:a=b=c\n", &b257()) {
            Parsed::Credential {
                name,
                encoding,
                value,
            } => {
                assert_eq!(name.as_str(), "a");
                assert_eq!(encoding, Encoding::Text);
                assert_eq!(value.expose(), b"b=c\n");
            }
            other => panic!("{other:?}"),
        }
        match parse(b"io.systemd.credential:empty=", &b257()) {
            Parsed::Credential { value, .. } => assert!(value.is_empty()),
            other => panic!("{other:?}"),
        }
        match parse(b"io.systemd.credential.binary:empty=", &b257()) {
            Parsed::Credential { value, .. } => assert!(value.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn test_parse_rejections() {
        assert_eq!(
            parse(b"io.systemd.credential:novalue", &b257()),
            Parsed::Rejected {
                encoding: Encoding::Text,
                name: None,
                reason: Rejection::NoEquals
            }
        );
        assert!(matches!(
            parse(b"io.systemd.credential:=x", &b257()),
            Parsed::Rejected {
                reason: Rejection::InvalidName(NameError::Empty),
                ..
            }
        ));
        assert!(matches!(
            parse(b"io.systemd.credential:a/b=x", &b257()),
            Parsed::Rejected {
                reason: Rejection::InvalidName(NameError::ForbiddenByte { byte: b'/', .. }),
                ..
            }
        ));
        assert!(matches!(
            parse(b"io.systemd.credential.binary:k=QQ", &b257()),
            Parsed::Rejected {
                reason: Rejection::Base64(Base64Error::Truncated),
                name: Some(_),
                ..
            }
        ));
        assert!(matches!(
            parse(b"io.systemd.credential.binary:k=-_-_", &Behaviour::of(252)),
            Parsed::Rejected {
                reason: Rejection::Base64(Base64Error::UrlSafeChar { .. }),
                ..
            }
        ));
        assert!(matches!(
            parse(b"io.systemd.credential.binary:k=-_-_", &b257()),
            Parsed::Credential { .. }
        ));
    }

    #[test]
    fn test_rejection_text_never_has_value() {
        let canary = b"CANARY-d3adb33f";
        let mut s = b"io.systemd.credential.binary:k=".to_vec();
        s.extend_from_slice(canary);
        if let Parsed::Rejected { reason, .. } = parse(&s, &b257()) {
            assert!(!reason.to_string().contains("CANARY"));
            assert!(!reason.to_string().contains("d3adb33f"));
        } else {
            panic!("expected a rejection");
        }
        let mut s = b"io.systemd.credential:".to_vec();
        s.extend_from_slice(canary);
        let p = parse(&s, &b257());
        assert!(!format!("{p:?}").contains("CANARY"));
    }

    proptest! {
        #[test]
        fn prop_round_trip(n in "[A-Za-z0-9_.@+-]{1,64}", value in proptest::collection::vec(any::<u8>(), 0..512), text in any::<bool>()) {
            prop_assume!(n != "." && n != "..");
            let cn = CredentialName::parse(&n, NameRule::Portable).unwrap();
            let enc = if text && !value.contains(&0) { Encoding::Text } else { Encoding::Binary };
            let s = encode(&cn, &value, enc).unwrap();
            for version in [252, 257] {
                match parse(s.expose(), &Behaviour::of(version)) {
                    Parsed::Credential { name, encoding, value: v } => {
                        prop_assert_eq!(name, cn.clone());
                        prop_assert_eq!(encoding, enc);
                        prop_assert_eq!(v.expose(), &value[..]);
                    }
                    other => prop_assert!(false, "not a credential: {:?}", other),
                }
            }
        }

        #[test]
        fn prop_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut s = b"io.systemd.credential.binary:".to_vec();
            s.extend_from_slice(&bytes);
            let _ = parse(&s, &b257());
            let _ = parse(&bytes, &Behaviour::of(252));
        }
    }
}
