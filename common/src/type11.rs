//! The SMBIOS Type 11 (OEM Strings) structure: building one, and parsing a raw
//! entry as Linux's `/sys/firmware/dmi/entries/11-N/raw` presents it.
//!
//! DSP0134 "OEM Strings (Type 11)": a 5-byte formatted area `{u8 type = 11;
//! u8 length = 5; u16 handle; u8 count}`, then NUL-terminated strings and one
//! more NUL (two NULs when there are none). systemd accepts only length 5,
//! ignores `count`, splits the rest on NUL and skips empty strings; a final
//! string without NUL is still parsed.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::limits::{TYPE11_HEADER_LEN, TYPE11_MAX_STRINGS};

/// SMBIOS structure type of OEM Strings.
pub const TYPE_OEM_STRINGS: u8 = 11;

/// Why a raw entry is not a Type 11 structure systemd accepts (systemd:
/// `EBADMSG`, which stops its scan at this entry).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Type11Error {
    /// Fewer bytes than the 5-byte header.
    #[error("entry is {actual} bytes, shorter than the 5-byte Type 11 header")]
    TooShort {
        /// Bytes present.
        actual: usize,
    },
    /// The type byte is not 11.
    #[error("entry has structure type {actual}, not 11")]
    WrongType {
        /// The type byte.
        actual: u8,
    },
    /// The length byte is not 5 (systemd refuses any other, even spec-legal longer ones).
    #[error("Type 11 formatted length is {actual}, systemd requires exactly 5")]
    WrongLength {
        /// The length byte.
        actual: u8,
    },
}

/// Something odd about an entry that systemd tolerates but a person should know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Anomaly {
    /// The count byte disagrees with the strings found (systemd ignores it; a
    /// hypervisor wrapped it past 255, or skipped empty strings).
    CountMismatch {
        /// The count byte.
        count: u8,
        /// Non-empty strings found.
        found: usize,
    },
    /// The last string has no NUL: the entry was truncated.
    UnterminatedString {
        /// Offset of the string in the entry.
        offset: usize,
    },
    /// No final double NUL.
    MissingTerminator,
    /// Bytes after the terminating double NUL (systemd parses them as strings).
    DataAfterTerminator {
        /// How many bytes.
        bytes: usize,
    },
    /// More than 255 strings: not addressable by string index.
    TooManyStrings {
        /// Strings found.
        found: usize,
    },
}

impl std::fmt::Display for Anomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Anomaly::CountMismatch { count, found } => {
                write!(f, "count byte says {count} strings, {found} found")
            }
            Anomaly::UnterminatedString { offset } => {
                write!(f, "string at offset {offset} has no NUL: entry truncated")
            }
            Anomaly::MissingTerminator => f.write_str("no terminating double NUL"),
            Anomaly::DataAfterTerminator { bytes } => {
                write!(f, "{bytes} byte(s) after the terminating double NUL")
            }
            Anomaly::TooManyStrings { found } => {
                write!(
                    f,
                    "{found} strings, more than the 255 a structure can index"
                )
            }
        }
    }
}

/// One string of an entry, raw bytes (never assumed UTF-8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OemStringRef<'a> {
    /// Offset of the string in the entry.
    pub offset: usize,
    /// The bytes, without NUL.
    pub bytes: &'a [u8],
}

/// A parsed Type 11 entry, borrowing the raw bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Type11Entry<'a> {
    /// Structure handle.
    pub handle: u16,
    /// The count byte.
    pub count: u8,
    /// Non-empty strings, in order, as systemd splits them.
    pub strings: Vec<OemStringRef<'a>>,
    /// What systemd tolerates but a person should know.
    pub anomalies: Vec<Anomaly>,
}

/// Parses one raw entry exactly as systemd splits it, noting anomalies.
pub fn parse_entry(raw: &[u8]) -> Result<Type11Entry<'_>, Type11Error> {
    if raw.len() < TYPE11_HEADER_LEN {
        return Err(Type11Error::TooShort { actual: raw.len() });
    }
    if raw[0] != TYPE_OEM_STRINGS {
        return Err(Type11Error::WrongType { actual: raw[0] });
    }
    if usize::from(raw[1]) != TYPE11_HEADER_LEN {
        return Err(Type11Error::WrongLength { actual: raw[1] });
    }
    let handle = u16::from_le_bytes([raw[2], raw[3]]);
    let count = raw[4];
    let body = &raw[TYPE11_HEADER_LEN..];

    let mut strings = Vec::new();
    let mut anomalies = Vec::new();
    // The first empty string ends a well-formed structure: after at least one
    // string it is the final NUL; at the very start it is the "no strings"
    // form, which has two NULs.
    let mut terminator_end = None;
    let mut pos = 0;
    while pos < body.len() {
        let (s, skip, terminated) = match body[pos..].iter().position(|&b| b == 0) {
            Some(n) => (&body[pos..pos + n], n + 1, true),
            None => (&body[pos..], body.len() - pos, false),
        };
        if s.is_empty() {
            if terminator_end.is_none() {
                terminator_end = Some(if pos == 0 { 2 } else { pos + 1 });
            }
        } else {
            if !terminated {
                anomalies.push(Anomaly::UnterminatedString {
                    offset: TYPE11_HEADER_LEN + pos,
                });
            }
            strings.push(OemStringRef {
                offset: TYPE11_HEADER_LEN + pos,
                bytes: s,
            });
        }
        pos += skip;
    }
    match terminator_end {
        Some(end) if end <= body.len() => {
            if body.len() > end {
                anomalies.push(Anomaly::DataAfterTerminator {
                    bytes: body.len() - end,
                });
            }
        }
        _ => anomalies.push(Anomaly::MissingTerminator),
    }
    if usize::from(count) != strings.len() {
        anomalies.push(Anomaly::CountMismatch {
            count,
            found: strings.len(),
        });
    }
    if strings.len() > TYPE11_MAX_STRINGS {
        anomalies.push(Anomaly::TooManyStrings {
            found: strings.len(),
        });
    }
    Ok(Type11Entry {
        handle,
        count,
        strings,
        anomalies,
    })
}

/// Parses an entry systemd refuses (or never reaches) the way Linux's
/// dmi-sysfs delimits it: the strings start after the formatted area the
/// length byte names, whatever that length is. `None` when not even that
/// can be read (shorter than a header, or a length past the end). For
/// people only: systemd imports nothing from such an entry.
pub fn parse_entry_lenient(raw: &[u8]) -> Option<Type11Entry<'_>> {
    if let Ok(e) = parse_entry(raw) {
        return Some(e);
    }
    let length = usize::from(*raw.get(1)?);
    if raw.len() < TYPE11_HEADER_LEN || length < 4 || length > raw.len() {
        return None;
    }
    // Re-frame as a length-5 entry: the header fields, then the strings.
    let mut strings = Vec::new();
    let mut pos = length;
    while pos < raw.len() {
        let n = raw[pos..]
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(raw.len() - pos);
        if n > 0 {
            strings.push(OemStringRef {
                offset: pos,
                bytes: &raw[pos..pos + n],
            });
        }
        pos += n + 1;
    }
    Some(Type11Entry {
        handle: u16::from_le_bytes([raw[2], raw[3]]),
        count: raw[4],
        strings,
        anomalies: Vec::new(),
    })
}

/// Builds a Type 11 structure the way QEMU does (one structure, `count` =
/// number of strings, truncated to u8 as QEMU and cloud-hypervisor do).
/// Strings must not contain NUL; empty strings are written as given (tests
/// use this to build hostile entries).
pub fn build(handle: u16, strings: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(crate::limits::type11_size(strings.iter().map(|s| s.len())));
    out.push(TYPE_OEM_STRINGS);
    out.push(TYPE11_HEADER_LEN as u8);
    out.extend_from_slice(&handle.to_le_bytes());
    out.push(strings.len() as u8);
    for s in strings {
        out.extend_from_slice(s);
        out.push(0);
    }
    if strings.is_empty() {
        out.push(0);
    }
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn test_build_parse_round_trip() {
        let raw = build(0xe00, &[b"a=1", b"io.systemd.credential:x=y"]);
        assert_eq!(raw.len(), crate::limits::type11_size([3, 25]));
        let e = parse_entry(&raw).unwrap();
        assert_eq!(e.handle, 0xe00);
        assert_eq!(e.count, 2);
        assert_eq!(e.strings.len(), 2);
        assert_eq!(e.strings[1].bytes, b"io.systemd.credential:x=y");
        assert_eq!(e.strings[0].offset, 5);
        assert!(e.anomalies.is_empty(), "{:?}", e.anomalies);
    }

    #[test]
    fn test_empty_structure() {
        let raw = build(1, &[]);
        assert_eq!(raw, vec![11, 5, 1, 0, 0, 0, 0]);
        let e = parse_entry(&raw).unwrap();
        assert!(e.strings.is_empty());
        assert!(e.anomalies.is_empty(), "{:?}", e.anomalies);
    }

    #[test]
    fn test_header_errors() {
        assert_eq!(
            parse_entry(&[11, 5, 0, 0]),
            Err(Type11Error::TooShort { actual: 4 })
        );
        assert_eq!(
            parse_entry(&[1, 5, 0, 0, 0, 0, 0]),
            Err(Type11Error::WrongType { actual: 1 })
        );
        assert_eq!(
            parse_entry(&[11, 6, 0, 0, 0, 0, 0, 0]),
            Err(Type11Error::WrongLength { actual: 6 })
        );
    }

    #[test]
    fn test_count_mismatch_and_truncation() {
        let mut raw = build(0, &[b"abc", b"def"]);
        raw[4] = 7;
        let e = parse_entry(&raw).unwrap();
        assert!(e
            .anomalies
            .contains(&Anomaly::CountMismatch { count: 7, found: 2 }));
        // Truncated in the middle of the second string.
        let raw = build(0, &[b"abc", b"defgh"]);
        let cut = &raw[..raw.len() - 4];
        let e = parse_entry(cut).unwrap();
        assert_eq!(e.strings.len(), 2);
        assert_eq!(e.strings[1].bytes, b"def");
        assert!(e
            .anomalies
            .contains(&Anomaly::UnterminatedString { offset: 9 }));
        assert!(e.anomalies.contains(&Anomaly::MissingTerminator));
    }

    #[test]
    fn test_data_after_terminator_is_still_parsed() {
        let mut raw = build(0, &[b"abc"]);
        raw.extend_from_slice(b"xyz\0\0");
        let e = parse_entry(&raw).unwrap();
        assert_eq!(
            e.strings.len(),
            2,
            "systemd parses strings after the terminator"
        );
        assert!(e
            .anomalies
            .iter()
            .any(|a| matches!(a, Anomaly::DataAfterTerminator { .. })));
    }

    #[test]
    fn test_count_wraps_past_255() {
        let strings: Vec<Vec<u8>> = (0..256).map(|i| format!("s{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = strings.iter().map(|s| s.as_slice()).collect();
        let raw = build(0, &refs);
        assert_eq!(raw[4], 0, "256 wraps to 0 like QEMU's uint8_t");
        let e = parse_entry(&raw).unwrap();
        assert_eq!(e.strings.len(), 256);
        assert!(e
            .anomalies
            .contains(&Anomaly::TooManyStrings { found: 256 }));
        assert!(e.anomalies.contains(&Anomaly::CountMismatch {
            count: 0,
            found: 256
        }));
    }

    #[test]
    fn test_lenient_parse_of_refused_headers() {
        let mut long = build(0, &[b"io.systemd.credential:A=1", b"x"]);
        long[1] = 6;
        long.insert(5, 0xaa); // the sixth formatted byte
        assert!(parse_entry(&long).is_err());
        let e = parse_entry_lenient(&long).unwrap();
        let got: Vec<&[u8]> = e.strings.iter().map(|s| s.bytes).collect();
        assert_eq!(got, [&b"io.systemd.credential:A=1"[..], b"x"]);
        assert_eq!(e.strings[0].offset, 6);
        assert!(
            parse_entry_lenient(&[11, 200, 0, 0, 0]).is_none(),
            "length past the end"
        );
        assert!(
            parse_entry_lenient(&[11, 2, 0, 0, 0]).is_none(),
            "length under 4"
        );
        assert!(parse_entry_lenient(&[11]).is_none());
        assert_eq!(
            parse_entry_lenient(&build(0, &[b"y"]))
                .unwrap()
                .strings
                .len(),
            1
        );
    }

    proptest! {
        #[test]
        fn prop_lenient_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Some(e) = parse_entry_lenient(&raw) {
                for s in &e.strings {
                    prop_assert!(s.offset + s.bytes.len() <= raw.len());
                }
            }
        }

        #[test]
        fn prop_round_trip(strings in proptest::collection::vec(proptest::collection::vec(1u8..=255, 1..64), 0..40)) {
            let refs: Vec<&[u8]> = strings.iter().map(|s| s.as_slice()).collect();
            let raw = build(7, &refs);
            let e = parse_entry(&raw).unwrap();
            let got: Vec<&[u8]> = e.strings.iter().map(|s| s.bytes).collect();
            prop_assert_eq!(got, refs);
            prop_assert!(e.anomalies.is_empty());
        }

        #[test]
        fn prop_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut raw = raw;
            if raw.len() >= 2 { raw[0] = 11; raw[1] = 5; }
            if let Ok(e) = parse_entry(&raw) {
                for s in &e.strings {
                    prop_assert!(s.offset + s.bytes.len() <= raw.len());
                }
            }
        }
    }
}
