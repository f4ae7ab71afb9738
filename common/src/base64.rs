//! systemd's base64 decoder (`src/basic/hexdecoct.c` `unbase64mem_full()` and
//! `unbase64_next()`), reproduced byte for byte, and the encoder the host uses.
//!
//! Rules: whitespace `" \t\n\r"` is skipped anywhere; padding is mandatory
//! (a short final group is `EPIPE`); padding in the first or second position of
//! a group, a non-`=` after a third-position `=`, or non-zero trailing bits are
//! `EINVAL`; anything after the padding is `ENAMETOOLONG`. Which alphabet is
//! accepted depends on the systemd version: see [`Alphabet`].

use base64::Engine as _;
use thiserror::Error;

use crate::secret::Secret;

/// Which characters decode to 62 and 63.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alphabet {
    /// `+` and `/` only (older systemd, e.g. 252).
    Standard,
    /// `+`/`-` → 62 and `/`/`_` → 63, mixed freely (newer systemd).
    StandardAndUrlSafe,
}

/// Why systemd refuses a base64 value. Each variant names the errno systemd
/// logs in `Failed to base64 decode credential '%s', ignoring: %m`.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Base64Error {
    /// A byte outside the alphabet (`EINVAL`).
    #[error("invalid base64 character at offset {offset} (EINVAL)")]
    InvalidChar {
        /// The byte.
        byte: u8,
        /// Its offset in the value.
        offset: usize,
    },
    /// A URL-safe character this systemd version does not accept (`EINVAL`).
    #[error("URL-safe base64 character '{}' at offset {offset}, which systemd {version} does not accept (EINVAL)", *byte as char)]
    UrlSafeChar {
        /// `-` or `_`.
        byte: u8,
        /// Its offset.
        offset: usize,
        /// The systemd version the rule applies to.
        version: u32,
    },
    /// `=` where a data character must be (`EINVAL`).
    #[error("base64 padding at offset {offset}, in position {position} of a group (EINVAL)")]
    MisplacedPadding {
        /// Offset of the `=`.
        offset: usize,
        /// 1-based position inside the 4-character group.
        position: u8,
    },
    /// The last group is incomplete: padding is mandatory (`EPIPE`).
    #[error("base64 value ends inside a group: padding is mandatory (EPIPE)")]
    Truncated,
    /// The bits the padding drops are not zero (`EINVAL`).
    #[error("base64 group before padding has non-zero trailing bits (EINVAL)")]
    TrailingBits,
    /// Something follows the padding (`ENAMETOOLONG`).
    #[error("data after base64 padding (ENAMETOOLONG)")]
    DataAfterPadding,
}

impl Base64Error {
    /// The errno name systemd reports for this error.
    pub fn errno(&self) -> &'static str {
        match self {
            Base64Error::Truncated => "EPIPE",
            Base64Error::DataAfterPadding => "ENAMETOOLONG",
            _ => "EINVAL",
        }
    }
}

const PAD: i32 = i32::MAX;

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

struct Cursor<'a> {
    input: &'a [u8],
    pos: usize,
    alphabet: Alphabet,
    version: u32,
}

impl Cursor<'_> {
    fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    /// `unbase64_next()`: skip whitespace, decode one character (padding as
    /// `PAD`), then skip the whitespace that follows. `Ok(None)` is `-EPIPE`.
    fn next(&mut self) -> Result<Option<(i32, usize)>, Base64Error> {
        while self.pos < self.input.len() && is_whitespace(self.input[self.pos]) {
            self.pos += 1;
        }
        if self.pos == self.input.len() {
            return Ok(None);
        }
        let offset = self.pos;
        let byte = self.input[offset];
        let value = match byte {
            b'=' => PAD,
            b'A'..=b'Z' => i32::from(byte - b'A'),
            b'a'..=b'z' => i32::from(byte - b'a') + 26,
            b'0'..=b'9' => i32::from(byte - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            b'-' | b'_' if self.alphabet == Alphabet::StandardAndUrlSafe => {
                if byte == b'-' {
                    62
                } else {
                    63
                }
            }
            b'-' | b'_' => {
                return Err(Base64Error::UrlSafeChar {
                    byte,
                    offset,
                    version: self.version,
                })
            }
            _ => return Err(Base64Error::InvalidChar { byte, offset }),
        };
        self.pos += 1;
        while self.pos < self.input.len() && is_whitespace(self.input[self.pos]) {
            self.pos += 1;
        }
        Ok(Some((value, offset)))
    }
}

/// Decodes `input` exactly as systemd does. `version` only labels errors.
pub fn decode_systemd(
    input: &[u8],
    alphabet: Alphabet,
    version: u32,
) -> Result<Secret, Base64Error> {
    let mut cur = Cursor {
        input,
        pos: 0,
        alphabet,
        version,
    };
    // Every four characters decode to at most three bytes: the value is
    // written into a buffer of that size and cut to what was written.
    let mut out = vec![0u8; input.len() / 4 * 3];
    let mut written = 0;
    let result = decode_into(&mut cur, &mut out, &mut written, true);
    out.truncate(written);
    let secret = Secret::new(out);
    result.map(|()| secret)
}

/// Each byte's 6-bit value in `alphabet`, or 0xff for anything else
/// (padding, whitespace and invalid bytes alike: those take the slow path).
const fn sextets(url_safe: bool) -> [u8; 256] {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'+' as usize] = 62;
    t[b'/' as usize] = 63;
    if url_safe {
        t[b'-' as usize] = 62;
        t[b'_' as usize] = 63;
    }
    t
}

const STANDARD_SEXTETS: [u8; 256] = sextets(false);
const BOTH_SEXTETS: [u8; 256] = sextets(true);

/// Decodes plain characters at the cursor four at a time, as long as all
/// four are in the alphabet: the common case, taken without
/// [`Cursor::next`]'s per-byte whitespace and padding checks, with plain
/// indexing (no `Vec::push` per byte). Anything else is left to the slow
/// path, which gives the same result and the precise error.
fn fast_run(cur: &mut Cursor<'_>, table: &[u8; 256], out: &mut [u8], written: &mut usize) {
    let input = cur.input;
    let (mut i, mut o) = (cur.pos, *written);
    while i + 4 <= input.len() && o + 3 <= out.len() {
        let a = table[usize::from(input[i])];
        let b = table[usize::from(input[i + 1])];
        let c = table[usize::from(input[i + 2])];
        let d = table[usize::from(input[i + 3])];
        if (a | b | c | d) & 0xc0 != 0 {
            break;
        }
        let n = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c) << 6 | u32::from(d);
        out[o] = (n >> 16) as u8;
        out[o + 1] = (n >> 8) as u8;
        out[o + 2] = n as u8;
        i += 4;
        o += 3;
    }
    cur.pos = i;
    *written = o;
}

/// Appends `bytes` at `*written` (within the room [`decode_systemd`]
/// sized: at most three bytes per four characters consumed).
fn put(out: &mut [u8], written: &mut usize, bytes: &[u8]) {
    out[*written..*written + bytes.len()].copy_from_slice(bytes);
    *written += bytes.len();
}

/// `unbase64mem_full()`'s loop, writing into `out` from `*written` on
/// (`out` has room for three bytes per four characters of the input);
/// `fast` takes [`fast_run`] where it can (always, except in the test that
/// holds both paths to the same results).
fn decode_into(
    cur: &mut Cursor<'_>,
    out: &mut [u8],
    written: &mut usize,
    fast: bool,
) -> Result<(), Base64Error> {
    let table = match cur.alphabet {
        Alphabet::Standard => &STANDARD_SEXTETS,
        Alphabet::StandardAndUrlSafe => &BOTH_SEXTETS,
    };
    loop {
        if fast {
            fast_run(cur, table, out, written);
        }
        let Some((a, a_off)) = cur.next()? else {
            return Ok(());
        };
        if a == PAD {
            return Err(Base64Error::MisplacedPadding {
                offset: a_off,
                position: 1,
            });
        }
        let (b, b_off) = cur.next()?.ok_or(Base64Error::Truncated)?;
        if b == PAD {
            return Err(Base64Error::MisplacedPadding {
                offset: b_off,
                position: 2,
            });
        }
        let (c, _) = cur.next()?.ok_or(Base64Error::Truncated)?;
        let (d, d_off) = cur.next()?.ok_or(Base64Error::Truncated)?;
        if c == PAD {
            if d != PAD {
                return Err(Base64Error::MisplacedPadding {
                    offset: d_off,
                    position: 4,
                });
            }
            if b & 15 != 0 {
                return Err(Base64Error::TrailingBits);
            }
            if cur.remaining() > 0 {
                return Err(Base64Error::DataAfterPadding);
            }
            put(out, written, &[((a << 2) | (b >> 4)) as u8]);
            return Ok(());
        }
        if d == PAD {
            if c & 3 != 0 {
                return Err(Base64Error::TrailingBits);
            }
            if cur.remaining() > 0 {
                return Err(Base64Error::DataAfterPadding);
            }
            put(
                out,
                written,
                &[
                    ((a << 2) | (b >> 4)) as u8,
                    (((b << 4) | (c >> 2)) & 0xff) as u8,
                ],
            );
            return Ok(());
        }
        put(
            out,
            written,
            &[
                ((a << 2) | (b >> 4)) as u8,
                (((b << 4) | (c >> 2)) & 0xff) as u8,
                (((c << 6) | d) & 0xff) as u8,
            ],
        );
    }
}

/// Standard padded base64 on one line: the host's encoding.
pub fn encode(value: &[u8]) -> Secret {
    Secret::new(
        base64::engine::general_purpose::STANDARD
            .encode(value)
            .into_bytes(),
    )
}

/// Length of [`encode`]'s output for `n` input bytes.
pub const fn encoded_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(s: &str) -> Result<Vec<u8>, Base64Error> {
        decode_systemd(s.as_bytes(), Alphabet::StandardAndUrlSafe, 257).map(|s| s.expose().to_vec())
    }

    fn dec252(s: &str) -> Result<Vec<u8>, Base64Error> {
        decode_systemd(s.as_bytes(), Alphabet::Standard, 252).map(|s| s.expose().to_vec())
    }

    // Cases from systemd's src/test/test-hexdecoct.c (test_unbase64mem) and the
    // rules in the reference, §1.3.
    #[test]
    fn test_systemd_vectors() {
        assert_eq!(dec("").unwrap(), b"");
        assert_eq!(dec("Zg==").unwrap(), b"f");
        assert_eq!(dec("Zm8=").unwrap(), b"fo");
        assert_eq!(dec("Zm9v").unwrap(), b"foo");
        assert_eq!(dec("Zm9vYg==").unwrap(), b"foob");
        assert_eq!(dec("Zm9vYmE=").unwrap(), b"fooba");
        assert_eq!(dec("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(dec(" Z m9v\tYm\r\nFy \n").unwrap(), b"foobar");
        assert_eq!(dec("A"), Err(Base64Error::Truncated));
        assert_eq!(dec("AB"), Err(Base64Error::Truncated));
        assert_eq!(dec("ABC"), Err(Base64Error::Truncated));
        assert_eq!(dec("Zg="), Err(Base64Error::Truncated));
        assert_eq!(dec("Zm9vYmFyZ"), Err(Base64Error::Truncated));
        assert!(matches!(
            dec("=AAA"),
            Err(Base64Error::MisplacedPadding { position: 1, .. })
        ));
        assert!(matches!(
            dec("A=AA"),
            Err(Base64Error::MisplacedPadding { position: 2, .. })
        ));
        assert!(matches!(
            dec("AA=A"),
            Err(Base64Error::MisplacedPadding { position: 4, .. })
        ));
        assert_eq!(dec("QR=="), Err(Base64Error::TrailingBits));
        assert_eq!(dec("QUF="), Err(Base64Error::TrailingBits));
        assert_eq!(dec("QQ==QQ=="), Err(Base64Error::DataAfterPadding));
        assert_eq!(dec("QQ== x"), Err(Base64Error::DataAfterPadding));
        assert_eq!(dec("QQ==  \n").unwrap(), b"A");
        assert!(matches!(
            dec("Zm9v!"),
            Err(Base64Error::InvalidChar {
                byte: b'!',
                offset: 4
            })
        ));
        assert!(matches!(
            dec("Zm9v\0"),
            Err(Base64Error::InvalidChar { byte: 0, .. })
        ));
        assert!(matches!(
            dec("\u{0b}"),
            Err(Base64Error::InvalidChar { byte: 0x0b, .. })
        ));
    }

    #[test]
    fn test_url_safe_depends_on_version() {
        assert_eq!(dec("-_-_").unwrap(), dec("+/+/").unwrap());
        assert_eq!(dec("+_-/").unwrap(), dec("+/+/").unwrap());
        assert!(matches!(
            dec252("-_-_"),
            Err(Base64Error::UrlSafeChar {
                byte: b'-',
                offset: 0,
                version: 252
            })
        ));
        assert_eq!(dec252("+/+/").unwrap(), vec![0xfb, 0xff, 0xbf]);
    }

    #[test]
    fn test_errno_names() {
        assert_eq!(Base64Error::Truncated.errno(), "EPIPE");
        assert_eq!(Base64Error::DataAfterPadding.errno(), "ENAMETOOLONG");
        assert_eq!(Base64Error::TrailingBits.errno(), "EINVAL");
    }

    proptest! {
        #[test]
        fn prop_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let enc = encode(&bytes);
            prop_assert_eq!(enc.len(), encoded_len(bytes.len()));
            let back = decode_systemd(enc.expose(), Alphabet::Standard, 252).unwrap();
            prop_assert_eq!(back.expose(), &bytes[..]);
        }

        #[test]
        fn prop_agrees_with_strict_decoder(s in "[A-Za-z0-9+/=]{0,64}") {
            // Where the base64 crate's strict padded decoder accepts, systemd must
            // produce the same bytes.
            if let Ok(v) = base64::engine::general_purpose::STANDARD.decode(s.as_bytes()) {
                prop_assert_eq!(dec(&s).unwrap(), v);
            }
        }

        #[test]
        fn prop_fast_path_changes_nothing(
            s in "[A-Za-z0-9+/=_ \t\n\r-]{0,48}",
            url in any::<bool>(),
            version in 252u32..263,
        ) {
            let alphabet = if url { Alphabet::StandardAndUrlSafe } else { Alphabet::Standard };
            let slow = |input: &[u8]| {
                let mut cur = Cursor { input, pos: 0, alphabet, version };
                let mut out = vec![0u8; input.len() / 4 * 3];
                let mut n = 0;
                decode_into(&mut cur, &mut out, &mut n, false).map(|()| out[..n].to_vec())
            };
            let fast = decode_systemd(s.as_bytes(), alphabet, version).map(|v| v.expose().to_vec());
            prop_assert_eq!(fast, slow(s.as_bytes()));
        }

        #[test]
        fn prop_fast_path_changes_nothing_on_near_valid_input(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            edits in proptest::collection::vec((any::<usize>(), "[ \t\n\r=_A-]"), 0..4),
            url in any::<bool>(),
        ) {
            let alphabet = if url { Alphabet::StandardAndUrlSafe } else { Alphabet::Standard };
            let mut text = encode(&bytes).expose().to_vec();
            for (at, c) in &edits {
                let at = at % (text.len() + 1);
                text.insert(at, c.as_bytes()[0]);
            }
            let mut cur = Cursor { input: &text, pos: 0, alphabet, version: 257 };
            let mut out = vec![0u8; text.len() / 4 * 3];
            let mut n = 0;
            let slow = decode_into(&mut cur, &mut out, &mut n, false).map(|()| out[..n].to_vec());
            let fast = decode_systemd(&text, alphabet, 257).map(|v| v.expose().to_vec());
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn prop_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_systemd(&bytes, Alphabet::Standard, 252);
            let _ = decode_systemd(&bytes, Alphabet::StandardAndUrlSafe, 257);
        }
    }
}
