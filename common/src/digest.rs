//! Digests of credential values: `sha256(value)` or `hmac-sha256(nonce, value)`,
//! always lowercase hex, with the algorithm named beside the digest.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

/// Length of a nonce in bytes.
pub const NONCE_LEN: usize = 32;

/// The digest algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DigestAlg {
    /// Plain SHA-256 of the value.
    #[serde(rename = "sha256")]
    Sha256,
    /// HMAC-SHA-256 of the value, keyed with the manifest's nonce.
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
}

impl fmt::Display for DigestAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DigestAlg::Sha256 => "sha256",
            DigestAlg::HmacSha256 => "hmac-sha256",
        })
    }
}

/// A digest: algorithm and lowercase hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Algorithm.
    pub alg: DigestAlg,
    /// Lowercase hex, 64 characters.
    pub hex: String,
}

impl Digest {
    /// The first 12 hex characters, for tables meant for people.
    pub fn short(&self) -> &str {
        self.hex.get(..12).unwrap_or(&self.hex)
    }

    /// True when `hex` is 64 lowercase hex digits.
    pub fn is_well_formed(&self) -> bool {
        self.hex.len() == 64
            && self
                .hex
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
}

/// Why a nonce could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum NonceError {
    /// Not 64 lowercase hex digits.
    #[error("nonce must be {} lowercase hex digits", NONCE_LEN * 2)]
    Malformed,
}

/// The manifest's random key. It is not secret from the guest (the manifest
/// credential carries it) but never appears in a report: a report names it by
/// [`Nonce::id`] only, so a report on a console gives nothing to brute-force with.
#[derive(Clone, PartialEq, Eq)]
pub struct Nonce([u8; NONCE_LEN]);

impl Nonce {
    /// Wraps random bytes (the host draws them; this crate does no I/O).
    pub fn from_bytes(bytes: [u8; NONCE_LEN]) -> Self {
        Nonce(bytes)
    }

    /// Parses lowercase hex.
    pub fn from_hex(s: &str) -> Result<Self, NonceError> {
        let bytes = hex_decode(s).ok_or(NonceError::Malformed)?;
        let arr: [u8; NONCE_LEN] = bytes.try_into().map_err(|_| NonceError::Malformed)?;
        Ok(Nonce(arr))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// A public identifier of the nonce: the first 16 hex digits of
    /// `sha256("vmcreds.nonce-id\0" || nonce)`. Reports carry this, not the nonce.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"vmcreds.nonce-id\0");
        h.update(self.0);
        hex(&h.finalize()[..8])
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce(id {})", self.id())
    }
}

impl Serialize for Nonce {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Nonce {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Nonce::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// Digests `value`: keyed when a nonce is given, plain SHA-256 otherwise.
pub fn digest(value: &[u8], nonce: Option<&Nonce>) -> Digest {
    match nonce {
        Some(n) => {
            // HMAC accepts keys of any length; new_from_slice cannot fail.
            let mut mac =
                <Hmac<Sha256> as Mac>::new_from_slice(&n.0).expect("hmac takes any key length");
            mac.update(value);
            Digest {
                alg: DigestAlg::HmacSha256,
                hex: hex(&mac.finalize().into_bytes()),
            }
        }
        None => Digest {
            alg: DigestAlg::Sha256,
            hex: hex(&Sha256::digest(value)),
        },
    }
}

/// Plain SHA-256 of `bytes` (for cache keys and test data, not credentials:
/// those go through [`digest`]).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Incremental digest, for values read in chunks.
pub enum Hasher {
    /// SHA-256.
    Plain(Sha256),
    /// HMAC-SHA-256.
    Keyed(Box<Hmac<Sha256>>),
}

impl Hasher {
    /// Starts a digest with the same choice of algorithm as [`digest`].
    pub fn new(nonce: Option<&Nonce>) -> Self {
        match nonce {
            Some(n) => Hasher::Keyed(Box::new(
                <Hmac<Sha256> as Mac>::new_from_slice(&n.0).expect("hmac takes any key length"),
            )),
            None => Hasher::Plain(Sha256::new()),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Plain(h) => h.update(bytes),
            Hasher::Keyed(m) => m.update(bytes),
        }
    }

    /// Finishes the digest.
    pub fn finish(self) -> Digest {
        match self {
            Hasher::Plain(h) => Digest {
                alg: DigestAlg::Sha256,
                hex: hex(&h.finalize()),
            },
            Hasher::Keyed(m) => Digest {
                alg: DigestAlg::HmacSha256,
                hex: hex(&m.finalize().into_bytes()),
            },
        }
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut v = vec![0u8; bytes.len() * 2];
    for (pair, &b) in v.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 15)];
    }
    String::from_utf8(v).expect("hex digits are ASCII")
}

/// The bytes of lowercase hex (the inverse of [`hex`]); `None` on an odd
/// length or any other character. The one hex decoder of the workspace.
pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    b.chunks(2)
        .map(|p| Some(val(p[0])? << 4 | val(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_sha256_known_answer() {
        assert_eq!(
            digest(b"abc", None).hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn test_hmac_known_answer() {
        // RFC 4231 test case 2 uses key "Jefe"; ours are 32-byte keys, so check
        // against an independent computation: HMAC with a 32-byte zero key.
        let n = Nonce::from_bytes([0u8; 32]);
        let d = digest(b"", Some(&n));
        assert_eq!(d.alg, DigestAlg::HmacSha256);
        assert_eq!(
            d.hex,
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"
        );
    }

    #[test]
    fn test_sha256_bytes_match_the_digest() {
        assert_eq!(hex(&sha256(b"abc")), digest(b"abc", None).hex);
    }

    #[test]
    fn test_hasher_matches_one_shot() {
        let n = Nonce::from_bytes([7u8; 32]);
        let mut h = Hasher::new(Some(&n));
        h.update(b"hello ");
        h.update(b"world");
        assert_eq!(h.finish(), digest(b"hello world", Some(&n)));
        let mut h = Hasher::new(None);
        h.update(b"hello world");
        assert_eq!(h.finish(), digest(b"hello world", None));
    }

    #[test]
    fn test_nonce_hex_round_trip_and_id() {
        let n = Nonce::from_bytes([0xab; 32]);
        let back = Nonce::from_hex(&n.to_hex()).unwrap();
        assert_eq!(back, n);
        assert_eq!(n.id().len(), 16);
        assert_ne!(n.id(), Nonce::from_bytes([0xac; 32]).id());
        assert!(!format!("{n:?}").contains(&n.to_hex()));
        assert_eq!(Nonce::from_hex("AB"), Err(NonceError::Malformed));
        assert_eq!(Nonce::from_hex(&"g".repeat(64)), Err(NonceError::Malformed));
    }

    #[test]
    fn test_serde_names() {
        let d = digest(b"x", None);
        let j = serde_json::to_string(&d).unwrap();
        assert!(j.contains("\"alg\":\"sha256\""), "{j}");
        assert!(d.is_well_formed());
        assert_eq!(d.short().len(), 12);
    }
}
