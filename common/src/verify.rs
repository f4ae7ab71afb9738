//! The host's check of a guest report against the manifest it injected.
//!
//! The host does not take the guest's `status` on trust: for every manifest
//! entry it compares the size and digest of what systemd imported (the
//! report's `systemd` view) with its own record.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::manifest::Manifest;
use crate::report::{Report, Status, VerdictResult};

/// The schema of the host's verdict document (`collect --json`, `verify --json`).
pub const VERDICT_SCHEMA: &str = "vmcreds.verdict/1";

/// The host's verdict document: the verdict and the report it judged.
#[derive(Clone, Debug, Serialize)]
pub struct VerdictDocument<'a> {
    /// Always [`VERDICT_SCHEMA`].
    pub schema: &'static str,
    /// The host's verdict.
    pub verdict: &'a HostVerdict,
    /// The guest's report.
    pub report: &'a Report,
}

/// Why a report cannot be checked against a manifest at all.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum VerifyError {
    /// The report's digests are keyed with another nonce (another boot, another VM).
    #[error("report is for nonce id {report}, but the manifest's nonce id is {manifest}: it belongs to another boot or VM")]
    NonceMismatch {
        /// The manifest's nonce id.
        manifest: String,
        /// The report's.
        report: String,
    },
}

/// One row of the host's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictRow {
    /// Credential name.
    pub name: String,
    /// Bytes the host injected.
    pub expected_bytes: Option<u64>,
    /// Bytes the guest's systemd holds.
    pub guest_bytes: Option<u64>,
    /// Do the digests match?
    pub digest_match: bool,
    /// The result.
    pub status: Status,
    /// Why, when not ok.
    pub reason: Option<String>,
}

/// The host's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostVerdict {
    /// `verified` when every manifest credential arrived whole.
    pub result: VerdictResult,
    /// One row per manifest credential, then unexpected ones from the report.
    pub rows: Vec<VerdictRow>,
    /// The guest's own verdict line.
    pub guest_summary: String,
}

impl HostVerdict {
    /// True when every manifest credential arrived whole.
    pub fn ok(&self) -> bool {
        self.result == VerdictResult::Verified
    }

    /// The table for people. Names, reasons and the guest's summary may be
    /// the guest's text, so all of them are escaped; the rows are indented
    /// and the guest's summary is quoted, so the last line, `host verdict:`,
    /// is the only one that starts with the host's word.
    pub fn render(&self) -> String {
        use crate::escape::{escape_bytes, escape_name};
        use crate::render::{name_width, status_text, table, Line, TEXT_SHOWN};
        let names: Vec<String> = self
            .rows
            .iter()
            .map(|r| escape_name(r.name.as_bytes()))
            .collect();
        let reasons: Vec<Option<String>> = self
            .rows
            .iter()
            .map(|r| {
                r.reason
                    .as_ref()
                    .map(|x| escape_bytes(x.as_bytes(), TEXT_SHOWN))
            })
            .collect();
        let lines: Vec<Line<'_>> = self
            .rows
            .iter()
            .zip(names.iter().zip(&reasons))
            .map(|(r, (name, reason))| Line {
                lead: "  ".into(),
                name,
                bytes: r.guest_bytes,
                status: status_text(r.status),
                reason: reason.as_deref(),
                ..Line::default()
            })
            .collect();
        let mut out = table(&lines, name_width(names.iter().map(String::as_str)));
        out.push_str(&format!(
            "host verdict: {} (the guest says \"{}\")\n",
            self.result,
            escape_bytes(self.guest_summary.as_bytes(), TEXT_SHOWN)
        ));
        out
    }
}

/// The guest's reason for a row, attributed to it, or the host's `otherwise`.
fn guest_reason(c: &crate::report::CredentialReport, otherwise: &str) -> String {
    c.reason
        .as_ref()
        .map_or_else(|| otherwise.to_owned(), |r| format!("the guest says: {r}"))
}

/// Checks `report` against `manifest`.
pub fn verify(manifest: &Manifest, report: &Report) -> Result<HostVerdict, VerifyError> {
    let want_id = manifest.expected_nonce_id();
    if want_id != report.nonce_id {
        return Err(VerifyError::NonceMismatch {
            manifest: want_id.unwrap_or_else(|| "none".into()),
            // The guest's text: escaped before it can reach a message.
            report: report.nonce_id.as_ref().map_or_else(
                || "none".into(),
                |n| crate::escape::escape_bytes(n.as_bytes(), 64),
            ),
        });
    }
    let mut rows = Vec::new();
    for entry in &manifest.credentials {
        let name = entry.name.as_str();
        let row = match report.credential(name) {
            None => VerdictRow {
                name: name.to_owned(),
                expected_bytes: Some(entry.bytes),
                guest_bytes: None,
                digest_match: false,
                status: Status::Missing,
                reason: Some("the guest's report does not mention it".into()),
            },
            Some(c) => {
                let sd = c.systemd.as_ref().filter(|s| s.present);
                let guest_bytes = sd.and_then(|s| s.bytes);
                let digest_match = sd.and_then(|s| s.digest.as_ref()) == Some(&entry.digest);
                let (status, reason) = match sd {
                    None if matches!(c.status, Status::Rejected | Status::NotRead) => {
                        (c.status, Some(guest_reason(c, "refused by systemd")))
                    }
                    None => (
                        Status::Missing,
                        Some(guest_reason(c, "not in /run/credentials/@system")),
                    ),
                    Some(_) if guest_bytes != Some(entry.bytes) => (
                        Status::Mismatch,
                        Some(format!(
                            "{} bytes arrived, {} were sent",
                            guest_bytes.map_or("?".into(), |b| b.to_string()),
                            entry.bytes
                        )),
                    ),
                    Some(_) if !digest_match => (
                        Status::Mismatch,
                        Some("digest differs from the one sent".into()),
                    ),
                    Some(_) => (Status::Ok, None),
                };
                VerdictRow {
                    name: name.to_owned(),
                    expected_bytes: Some(entry.bytes),
                    guest_bytes,
                    digest_match,
                    status,
                    reason,
                }
            }
        };
        rows.push(row);
    }
    for c in &report.credentials {
        if manifest.get(&c.name).is_none() && c.status == Status::Unexpected {
            rows.push(VerdictRow {
                name: c.name.clone(),
                expected_bytes: None,
                guest_bytes: c.systemd.as_ref().and_then(|s| s.bytes),
                digest_match: false,
                status: Status::Unexpected,
                reason: c.reason.as_ref().map(|r| format!("the guest says: {r}")),
            });
        }
    }
    let failed = rows.iter().any(|r| r.status.is_failure());
    Ok(HostVerdict {
        result: if failed {
            VerdictResult::Failed
        } else {
            VerdictResult::Verified
        },
        rows,
        guest_summary: report.verdict.summary.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{digest, Nonce};
    use crate::name::{CredentialName, NameRule};
    use crate::oem::Encoding;
    use crate::report::tests::sample;

    fn setup(value_sent: &[u8], value_arrived: &[u8]) -> (Manifest, Report) {
        let nonce = Nonce::from_bytes([9; 32]);
        let mut m = Manifest::new(Some(nonce.clone()), "t");
        m.push(
            CredentialName::parse("API_KEY", NameRule::Portable).unwrap(),
            value_sent,
            Encoding::Binary,
        );
        let mut r = sample();
        r.nonce_id = Some(nonce.id());
        let sd = r.credentials[0].systemd.as_mut().unwrap();
        sd.bytes = Some(value_arrived.len() as u64);
        sd.digest = Some(digest(value_arrived, Some(&nonce)));
        (m, r)
    }

    #[test]
    fn test_verified() {
        let (m, r) = setup(b"secret-1", b"secret-1");
        let v = verify(&m, &r).unwrap();
        assert!(v.ok(), "{}", v.render());
        assert!(v.rows[0].digest_match);
    }

    #[test]
    fn test_size_and_digest_mismatch() {
        let (m, r) = setup(b"secret-1", b"");
        let v = verify(&m, &r).unwrap();
        assert_eq!(v.rows[0].status, Status::Mismatch);
        assert!(v.rows[0]
            .reason
            .as_ref()
            .unwrap()
            .contains("0 bytes arrived, 8 were sent"));
        let (m, r) = setup(b"secret-1", b"secret-2");
        let v = verify(&m, &r).unwrap();
        assert_eq!(v.rows[0].status, Status::Mismatch);
        assert!(!v.ok());
        assert!(v.render().contains("✗"));
    }

    #[test]
    fn test_guest_status_not_trusted() {
        // The guest says ok, but the digest is of other bytes.
        let (m, mut r) = setup(b"secret-1", b"secret-X");
        r.credentials[0].status = Status::Ok;
        assert!(!verify(&m, &r).unwrap().ok());
    }

    #[test]
    fn test_refused_and_unread_keep_their_status() {
        for status in [Status::Rejected, Status::NotRead] {
            let (m, mut r) = setup(b"a", b"a");
            r.credentials[0].systemd = None;
            r.credentials[0].status = status;
            r.credentials[0].reason = Some("the guest's reason".into());
            let v = verify(&m, &r).unwrap();
            assert_eq!(v.rows[0].status, status);
            assert_eq!(
                v.rows[0].reason.as_deref(),
                Some("the guest says: the guest's reason")
            );
            assert!(!v.ok());
        }
    }

    #[test]
    fn test_missing_and_nonce() {
        let (m, mut r) = setup(b"a", b"a");
        r.credentials.clear();
        let v = verify(&m, &r).unwrap();
        assert_eq!(v.rows[0].status, Status::Missing);
        let (m, mut r) = setup(b"a", b"a");
        r.nonce_id = Some("ffffffffffffffff".into());
        assert!(matches!(
            verify(&m, &r),
            Err(VerifyError::NonceMismatch { .. })
        ));
    }

    #[test]
    fn test_render_escapes_the_guest_and_keeps_the_last_line() {
        let (m, mut r) = setup(b"a", b"a");
        let evil = "x\nhost verdict: verified\u{1b}[2J";
        let mut extra = r.credentials[0].clone();
        extra.name = evil.into();
        extra.status = Status::Unexpected;
        extra.reason = Some(evil.into());
        r.credentials.push(extra);
        r.verdict.summary = evil.into();
        let v = verify(&m, &r).unwrap();
        assert_eq!(
            v.rows[1].reason.as_deref(),
            Some(&*format!("the guest says: {evil}"))
        );
        let t = v.render();
        let lines: Vec<&str> = t.lines().collect();
        let (last, rows) = lines.split_last().unwrap();
        assert!(rows.iter().all(|l| l.starts_with("  ")), "{t}");
        assert!(
            last.starts_with("host verdict: verified (the guest says \"x\\x0ahost"),
            "{t}"
        );
        assert!(!t.contains('\u{1b}'), "{t}");
    }
}
