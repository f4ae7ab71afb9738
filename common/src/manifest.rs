//! The manifest (`vmcreds.manifest/1`): what the host injected, by name, byte
//! count and digest. The host injects it as the `vmcreds.manifest` credential
//! (non-secret) and writes the same document with `--manifest-out`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::digest::{self, Digest, DigestAlg, Nonce};
use crate::limits::MANIFEST_SIZE_MAX;
use crate::name::CredentialName;
use crate::oem::Encoding;

/// The schema name and version.
pub const MANIFEST_SCHEMA: &str = "vmcreds.manifest/1";

/// Name of the credential that carries the manifest into the guest.
pub const MANIFEST_CREDENTIAL: &str = "vmcreds.manifest";

/// One credential the host injected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Credential name.
    pub name: CredentialName,
    /// Decoded size in bytes.
    pub bytes: u64,
    /// Digest of the decoded value (keyed with the nonce when there is one).
    pub digest: Digest,
    /// How it was carried.
    pub encoding: Encoding,
}

/// The manifest document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_SCHEMA`].
    pub schema: String,
    /// The key of the digests; absent means plain sha256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<Nonce>,
    /// [`Nonce::id`] of the nonce, which reports quote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce_id: Option<String>,
    /// The tool that wrote it.
    #[serde(default)]
    pub generator: String,
    /// The credentials, in injection order.
    pub credentials: Vec<ManifestEntry>,
}

/// Why a manifest document is refused.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// Larger than any manifest can be.
    #[error("manifest is {actual} bytes, more than the {limit} bytes a manifest can be")]
    TooLarge {
        /// Limit.
        limit: usize,
        /// Size.
        actual: usize,
    },
    /// Not JSON of the expected shape.
    #[error("manifest is not valid {MANIFEST_SCHEMA} JSON")]
    Json(#[source] serde_json::Error),
    /// Another schema.
    #[error("manifest schema is \"{0}\", expected \"{MANIFEST_SCHEMA}\"")]
    Schema(String),
    /// A name twice.
    #[error("manifest lists credential \"{0}\" twice")]
    Duplicate(String),
    /// Digest algorithm does not match the presence of a nonce, or is malformed.
    #[error("manifest digest of \"{0}\" is malformed or does not match the nonce (hmac-sha256 with a nonce, sha256 without)")]
    BadDigest(String),
    /// `nonce_id` is not the nonce's.
    #[error("manifest nonce_id does not belong to its nonce")]
    NonceId,
}

impl Manifest {
    /// An empty manifest keyed with `nonce`.
    pub fn new(nonce: Option<Nonce>, generator: &str) -> Self {
        Manifest {
            schema: MANIFEST_SCHEMA.to_owned(),
            nonce_id: nonce.as_ref().map(Nonce::id),
            nonce,
            generator: generator.to_owned(),
            credentials: Vec::new(),
        }
    }

    /// Records a credential, digesting its value with the nonce.
    pub fn push(&mut self, name: CredentialName, value: &[u8], encoding: Encoding) {
        let digest = digest::digest(value, self.nonce.as_ref());
        self.credentials.push(ManifestEntry {
            name,
            bytes: value.len() as u64,
            digest,
            encoding,
        });
    }

    /// The entry for `name`.
    pub fn get(&self, name: &str) -> Option<&ManifestEntry> {
        self.credentials.iter().find(|e| e.name.as_str() == name)
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("manifest serialises");
        s.push('\n');
        s
    }

    /// Compact JSON, one line: what is injected as the `vmcreds.manifest`
    /// credential, where every byte counts against the SMBIOS budget.
    pub fn to_json_compact(&self) -> String {
        serde_json::to_string(self).expect("manifest serialises")
    }

    /// Parses and validates a manifest document.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() > MANIFEST_SIZE_MAX {
            return Err(ManifestError::TooLarge {
                limit: MANIFEST_SIZE_MAX,
                actual: bytes.len(),
            });
        }
        let m: Manifest = serde_json::from_slice(bytes).map_err(ManifestError::Json)?;
        if m.schema != MANIFEST_SCHEMA {
            return Err(ManifestError::Schema(crate::escape::escape_bytes(
                m.schema.as_bytes(),
                64,
            )));
        }
        if let (Some(n), Some(id)) = (&m.nonce, &m.nonce_id) {
            if &n.id() != id {
                return Err(ManifestError::NonceId);
            }
        }
        let want = if m.nonce.is_some() {
            DigestAlg::HmacSha256
        } else {
            DigestAlg::Sha256
        };
        let mut seen = HashSet::new();
        for e in &m.credentials {
            if !seen.insert(e.name.as_str()) {
                return Err(ManifestError::Duplicate(e.name.to_string()));
            }
            if e.digest.alg != want || !e.digest.is_well_formed() {
                return Err(ManifestError::BadDigest(e.name.to_string()));
            }
        }
        Ok(m)
    }

    /// The nonce id reports must quote, if keyed.
    pub fn expected_nonce_id(&self) -> Option<String> {
        self.nonce.as_ref().map(Nonce::id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::NameRule;

    fn n(s: &str) -> CredentialName {
        CredentialName::parse(s, NameRule::Portable).unwrap()
    }

    #[test]
    fn test_round_trip_keyed() {
        let mut m = Manifest::new(Some(Nonce::from_bytes([3; 32])), "test");
        m.push(n("API_KEY"), b"CANARY-value-1", Encoding::Binary);
        m.push(n("ENV"), b"test", Encoding::Text);
        let json = m.to_json();
        assert!(!json.contains("CANARY"));
        assert!(json.contains("\"schema\": \"vmcreds.manifest/1\""));
        assert!(json.contains("hmac-sha256"));
        let back = Manifest::from_json(json.as_bytes()).unwrap();
        assert_eq!(back, m);
        let compact = m.to_json_compact();
        assert!(compact.len() < json.len() && !compact.contains('\n'));
        assert_eq!(Manifest::from_json(compact.as_bytes()).unwrap(), m);
        assert_eq!(back.get("API_KEY").unwrap().bytes, 14);
        assert_eq!(
            back.expected_nonce_id(),
            Some(Nonce::from_bytes([3; 32]).id())
        );
    }

    #[test]
    fn test_plain_uses_sha256() {
        let mut m = Manifest::new(None, "test");
        m.push(n("A"), b"abc", Encoding::Binary);
        assert_eq!(m.credentials[0].digest.alg, DigestAlg::Sha256);
        assert!(Manifest::from_json(m.to_json().as_bytes()).is_ok());
    }

    #[test]
    fn test_refusals() {
        assert!(matches!(
            Manifest::from_json(b"{"),
            Err(ManifestError::Json(_))
        ));
        let mut m = Manifest::new(None, "t");
        m.schema = "vmcreds.manifest/9".into();
        assert!(matches!(
            Manifest::from_json(m.to_json().as_bytes()),
            Err(ManifestError::Schema(_))
        ));
        let mut m = Manifest::new(None, "t");
        m.push(n("A"), b"1", Encoding::Binary);
        m.push(n("A"), b"2", Encoding::Binary);
        assert!(matches!(
            Manifest::from_json(m.to_json().as_bytes()),
            Err(ManifestError::Duplicate(_))
        ));
        // A sha256 digest under a nonce is inconsistent.
        let mut m = Manifest::new(Some(Nonce::from_bytes([1; 32])), "t");
        m.push(n("A"), b"1", Encoding::Binary);
        m.credentials[0].digest = digest::digest(b"1", None);
        assert!(matches!(
            Manifest::from_json(m.to_json().as_bytes()),
            Err(ManifestError::BadDigest(_))
        ));
        let mut m = Manifest::new(Some(Nonce::from_bytes([1; 32])), "t");
        m.nonce_id = Some("0000000000000000".into());
        assert!(matches!(
            Manifest::from_json(m.to_json().as_bytes()),
            Err(ManifestError::NonceId)
        ));
        let big = vec![b' '; MANIFEST_SIZE_MAX + 1];
        assert!(matches!(
            Manifest::from_json(&big),
            Err(ManifestError::TooLarge { .. })
        ));
    }
}
