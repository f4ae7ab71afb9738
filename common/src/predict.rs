//! What systemd will import from the Type 11 entries, string by string.
//!
//! Mirrors `import_credentials_smbios()` and `parse_smbios_strings()`
//! (`src/core/import-creds.c`): entries `11-0`, `11-1`, … in order; an entry
//! that is not a length-5 Type 11 header stops the scan; each string, in
//! order: prefix, first `=`, name, decode, per-credential and running-total
//! size check (`credential_size_ok()`), then `O_EXCL` create, where an
//! existing name (from fw_cfg, or an earlier string) wins silently.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::limits::{CREDENTIALS_TOTAL_SIZE_MAX, CREDENTIAL_SIZE_MAX};
use crate::name::CredentialName;
use crate::oem::{self, Encoding, Parsed, Rejection};
use crate::secret::Secret;
use crate::systemd::Behaviour;
use crate::type11::{self, Anomaly, Type11Error};

/// Where a credential that shadows an SMBIOS string came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum ShadowSource {
    /// QEMU fw_cfg (`opt/io.systemd.credentials/`), imported before SMBIOS.
    FwCfg,
    /// An earlier SMBIOS string with the same name.
    EarlierString {
        /// Its entry (the N of `11-N`).
        entry: u32,
        /// Its 1-based position in that entry.
        string: usize,
    },
}

/// What systemd does with one OEM string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not a credential string: counted, never printed.
    NotCredential,
    /// Refused with a warning.
    Rejected(Rejection),
    /// Over 1 MiB decoded: `Credential '%s' is larger than allowed limit`.
    TooLarge {
        /// Decoded size.
        bytes: usize,
    },
    /// Would push the running total over 1 MiB: `Accumulated credential size
    /// would be above allowed limit`.
    OverTotal {
        /// Decoded size.
        bytes: usize,
        /// Total imported before it.
        total_before: usize,
    },
    /// The name exists already: `Credential '%s' set twice, ignoring.` (debug).
    Shadowed(ShadowSource),
    /// In an entry systemd never parsed: its scan stopped at entry
    /// `stopped_at` (this one or an earlier one) because of `why`.
    NotRead {
        /// The N of the `11-N` whose header stopped the scan.
        stopped_at: u32,
        /// What was wrong with that header.
        why: Type11Error,
    },
    /// Imported into `/run/credentials/@system`.
    Imported,
}

/// [`Outcome`] without its details: the closed set `vmcreds-guest list`
/// prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// Not a credential string.
    NotCredential,
    /// Refused with a warning.
    Rejected,
    /// Over 1 MiB decoded.
    TooLarge,
    /// Over the 1 MiB total.
    OverTotal,
    /// Another string or fw_cfg won.
    Shadowed,
    /// In an entry systemd never read.
    NotRead,
    /// Imported.
    Imported,
}

impl OutcomeKind {
    /// The JSON and display text.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::NotCredential => "not_credential",
            OutcomeKind::Rejected => "rejected",
            OutcomeKind::TooLarge => "too_large",
            OutcomeKind::OverTotal => "over_total",
            OutcomeKind::Shadowed => "shadowed",
            OutcomeKind::NotRead => "not_read",
            OutcomeKind::Imported => "imported",
        }
    }
}

impl std::fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Outcome {
    /// Which kind of outcome this is.
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Outcome::NotCredential => OutcomeKind::NotCredential,
            Outcome::Rejected(_) => OutcomeKind::Rejected,
            Outcome::TooLarge { .. } => OutcomeKind::TooLarge,
            Outcome::OverTotal { .. } => OutcomeKind::OverTotal,
            Outcome::Shadowed(_) => OutcomeKind::Shadowed,
            Outcome::NotRead { .. } => OutcomeKind::NotRead,
            Outcome::Imported => OutcomeKind::Imported,
        }
    }

    /// A one-line reason, never containing a value.
    pub fn reason(&self) -> Option<String> {
        match self {
            Outcome::NotCredential | Outcome::Imported => None,
            Outcome::Rejected(r) => Some(r.to_string()),
            Outcome::TooLarge { bytes } => Some(format!(
                "{bytes} bytes decoded, over systemd's limit of {CREDENTIAL_SIZE_MAX} per credential"
            )),
            Outcome::OverTotal { bytes, total_before } => Some(format!(
                "{bytes} bytes would bring the total to {}, over systemd's limit of {CREDENTIALS_TOTAL_SIZE_MAX}",
                total_before + bytes
            )),
            Outcome::Shadowed(ShadowSource::FwCfg) => {
                Some("shadowed by a credential of the same name from fw_cfg, which systemd imports first".into())
            }
            Outcome::Shadowed(ShadowSource::EarlierString { entry, string }) => Some(format!(
                "shadowed by string {string} of entry 11-{entry} with the same name (systemd keeps the first)"
            )),
            Outcome::NotRead { stopped_at, why } => Some(format!(
                "never read by systemd: its scan of the Type 11 entries stopped at entry 11-{stopped_at} ({why})"
            )),
        }
    }
}

/// One OEM string and its fate.
#[derive(Debug)]
pub struct PredictedString {
    /// The N of `11-N`.
    pub entry: u32,
    /// 1-based position among the entry's non-empty strings.
    pub string: usize,
    /// How it claims to be carried (credential strings only).
    pub encoding: Option<Encoding>,
    /// The name, escaped, when one could be delimited.
    pub name: Option<String>,
    /// The decoded value, for credentials that decoded.
    pub value: Option<Secret>,
    /// What systemd does with it.
    pub outcome: Outcome,
}

/// What happened to one raw entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntrySummary {
    /// The N of `11-N`.
    pub entry: u32,
    /// Bytes in the raw file.
    pub bytes: usize,
    /// Structure handle, when the header parsed.
    pub handle: Option<u16>,
    /// Count byte, when the header parsed.
    pub count: Option<u8>,
    /// Strings found.
    pub strings: usize,
    /// The header error that stopped systemd's scan here.
    pub error: Option<Type11Error>,
    /// Tolerated oddities.
    pub anomalies: Vec<Anomaly>,
    /// systemd reads only `raw_read_max` bytes: how many it silently cut.
    pub cut_by_read_limit: usize,
}

/// The whole prediction.
#[derive(Debug, Default)]
pub struct Prediction {
    /// Per entry.
    pub entries: Vec<EntrySummary>,
    /// Per string, in systemd's order.
    pub strings: Vec<PredictedString>,
}

impl Prediction {
    /// The strings systemd imports.
    pub fn imported(&self) -> impl Iterator<Item = &PredictedString> {
        self.strings
            .iter()
            .filter(|s| s.outcome == Outcome::Imported)
    }

    /// Did a header error stop the scan?
    pub fn stopped_at(&self) -> Option<&EntrySummary> {
        self.entries.iter().find(|e| e.error.is_some())
    }
}

/// A credential imported before SMBIOS (fw_cfg), which wins over SMBIOS.
#[derive(Clone, Debug)]
pub struct PriorCredential {
    /// Its name.
    pub name: CredentialName,
    /// Its size, counted in the running total.
    pub bytes: usize,
}

/// systemd's fw_cfg import (`import_credentials_qemu()`), which runs before
/// SMBIOS: each `opt/io.systemd.credentials/NAME` with a valid name whose
/// size passes the per-credential and running-total checks is imported, in
/// directory order. Returns what [`predict`] must treat as already imported.
pub fn fw_cfg_imports<'a>(
    found: impl IntoIterator<Item = (&'a str, usize)>,
) -> Vec<PriorCredential> {
    let mut total = 0usize;
    let mut out = Vec::new();
    for (name, bytes) in found {
        let Ok(name) = CredentialName::parse(name, crate::name::NameRule::Systemd) else {
            continue;
        };
        if bytes > CREDENTIAL_SIZE_MAX || bytes > CREDENTIALS_TOTAL_SIZE_MAX - total {
            continue;
        }
        total += bytes;
        out.push(PriorCredential { name, bytes });
    }
    out
}

/// The strings of an entry systemd never parsed, delimited as dmi-sysfs
/// delimits them, each [`Outcome::NotRead`]: names and values for people;
/// they take no name from later strings and count in no total.
fn not_read(
    prediction: &mut Prediction,
    entry: u32,
    raw: &[u8],
    stopped_at: u32,
    why: &Type11Error,
    behaviour: &Behaviour,
) {
    let Some(parsed) = type11::parse_entry_lenient(raw) else {
        return;
    };
    for (n, s) in parsed.strings.iter().enumerate() {
        let (encoding, name, value) = match oem::parse(s.bytes, behaviour) {
            Parsed::NotCredential => (None, None, None),
            Parsed::Rejected { encoding, name, .. } => (Some(encoding), name, None),
            Parsed::Credential {
                name,
                encoding,
                value,
            } => (Some(encoding), Some(name.to_string()), Some(value)),
        };
        let outcome = if encoding.is_none() {
            Outcome::NotCredential
        } else {
            Outcome::NotRead {
                stopped_at,
                why: why.clone(),
            }
        };
        prediction.strings.push(PredictedString {
            entry,
            string: n + 1,
            encoding,
            name,
            value,
            outcome,
        });
    }
}

/// Predicts systemd's import of `entries` (raw contents of `11-0`, `11-1`, …
/// in order, as read to EOF), after `prior` fw_cfg credentials.
pub fn predict(entries: &[&[u8]], behaviour: &Behaviour, prior: &[PriorCredential]) -> Prediction {
    let mut prediction = Prediction::default();
    let mut seen: HashMap<String, ShadowSource> = prior
        .iter()
        .map(|p| (p.name.as_str().to_owned(), ShadowSource::FwCfg))
        .collect();
    let mut total: usize = prior.iter().map(|p| p.bytes).sum();

    let mut stopped: Option<(u32, Type11Error)> = None;
    for (i, full) in entries.iter().enumerate() {
        let entry = i as u32;
        if let Some((stopped_at, why)) = &stopped {
            not_read(&mut prediction, entry, full, *stopped_at, why, behaviour);
            continue;
        }
        let read = &full[..full.len().min(behaviour.raw_read_max)];
        let cut = full.len() - read.len();
        let parsed = match type11::parse_entry(read) {
            Ok(p) => p,
            Err(e) => {
                prediction.entries.push(EntrySummary {
                    entry,
                    bytes: full.len(),
                    handle: None,
                    count: None,
                    strings: 0,
                    error: Some(e.clone()),
                    anomalies: Vec::new(),
                    cut_by_read_limit: cut,
                });
                not_read(&mut prediction, entry, full, entry, &e, behaviour);
                stopped = Some((entry, e));
                continue;
            }
        };
        prediction.entries.push(EntrySummary {
            entry,
            bytes: full.len(),
            handle: Some(parsed.handle),
            count: Some(parsed.count),
            strings: parsed.strings.len(),
            error: None,
            anomalies: parsed.anomalies.clone(),
            cut_by_read_limit: cut,
        });
        for (n, s) in parsed.strings.iter().enumerate() {
            let string = n + 1;
            let predicted = match oem::parse(s.bytes, behaviour) {
                Parsed::NotCredential => PredictedString {
                    entry,
                    string,
                    encoding: None,
                    name: None,
                    value: None,
                    outcome: Outcome::NotCredential,
                },
                Parsed::Rejected {
                    encoding,
                    name,
                    reason,
                } => PredictedString {
                    entry,
                    string,
                    encoding: Some(encoding),
                    name,
                    value: None,
                    outcome: Outcome::Rejected(reason),
                },
                Parsed::Credential {
                    name,
                    encoding,
                    value,
                } => {
                    let bytes = value.len();
                    let outcome = if bytes > CREDENTIAL_SIZE_MAX {
                        Outcome::TooLarge { bytes }
                    } else if bytes > CREDENTIALS_TOTAL_SIZE_MAX - total {
                        Outcome::OverTotal {
                            bytes,
                            total_before: total,
                        }
                    } else if let Some(first) = seen.get(name.as_str()) {
                        Outcome::Shadowed(first.clone())
                    } else {
                        seen.insert(
                            name.as_str().to_owned(),
                            ShadowSource::EarlierString { entry, string },
                        );
                        total += bytes;
                        Outcome::Imported
                    };
                    PredictedString {
                        entry,
                        string,
                        encoding: Some(encoding),
                        name: Some(name.to_string()),
                        value: Some(value),
                        outcome,
                    }
                }
            };
            prediction.strings.push(predicted);
        }
    }
    prediction
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::NameRule;
    use crate::type11::build;

    fn b(v: u32) -> Behaviour {
        Behaviour::of(v)
    }

    fn outcomes(p: &Prediction) -> Vec<&Outcome> {
        p.strings.iter().map(|s| &s.outcome).collect()
    }

    #[test]
    fn test_order_and_duplicates() {
        let raw = build(
            0,
            &[
                b"io.systemd.credential:A=first",
                b"io.systemd.credential.binary:A=c2Vjb25k",
                b"not a credential",
                b"io.systemd.credential:B=",
            ],
        );
        let p = predict(&[&raw], &b(252), &[]);
        assert_eq!(
            outcomes(&p),
            vec![
                &Outcome::Imported,
                &Outcome::Shadowed(ShadowSource::EarlierString {
                    entry: 0,
                    string: 1
                }),
                &Outcome::NotCredential,
                &Outcome::Imported,
            ]
        );
        assert_eq!(p.strings[0].value.as_ref().unwrap().expose(), b"first");
        assert_eq!(p.imported().count(), 2);
    }

    #[test]
    fn test_fw_cfg_wins_and_counts_in_total() {
        let raw = build(
            0,
            &[b"io.systemd.credential:A=x", b"io.systemd.credential:B=yy"],
        );
        let prior = [PriorCredential {
            name: CredentialName::parse("A", NameRule::Systemd).unwrap(),
            bytes: CREDENTIALS_TOTAL_SIZE_MAX - 1,
        }];
        let p = predict(&[&raw], &b(257), &prior);
        assert_eq!(p.strings[0].outcome, Outcome::Shadowed(ShadowSource::FwCfg));
        assert_eq!(
            p.strings[1].outcome,
            Outcome::OverTotal {
                bytes: 2,
                total_before: CREDENTIALS_TOTAL_SIZE_MAX - 1
            }
        );
    }

    #[test]
    fn test_fw_cfg_imports_apply_systemd_rules() {
        let big = CREDENTIAL_SIZE_MAX + 1;
        let got = fw_cfg_imports([
            ("ok", 10),
            ("bad:name", 1),
            ("huge", big),
            ("rest", CREDENTIALS_TOTAL_SIZE_MAX - 10),
            ("over", 1),
        ]);
        let names: Vec<&str> = got.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["ok", "rest"]);
    }

    #[test]
    fn test_size_checked_before_duplicate() {
        // A duplicate that is also over the total is reported as over the total,
        // as systemd checks the size before O_EXCL.
        let big = vec![b'a'; 600 * 1024];
        let mut s1 = b"io.systemd.credential:A=".to_vec();
        s1.extend_from_slice(&big);
        // Separate entries: one entry over 8 + 1 MiB would be cut by the read limit.
        let (r0, r1) = (build(0, &[&s1]), build(1, &[&s1]));
        let p = predict(&[&r0, &r1], &b(257), &[]);
        assert_eq!(p.strings[0].outcome, Outcome::Imported);
        assert!(
            matches!(p.strings[1].outcome, Outcome::OverTotal { .. }),
            "{:?}",
            p.strings[1].outcome
        );
    }

    #[test]
    fn test_total_edge_exact() {
        let prior = [PriorCredential {
            name: CredentialName::parse("FW", NameRule::Systemd).unwrap(),
            bytes: CREDENTIALS_TOTAL_SIZE_MAX - 2,
        }];
        let raw = build(
            0,
            &[
                b"io.systemd.credential:B=b",
                b"io.systemd.credential:C=c",
                b"io.systemd.credential:D=d",
            ],
        );
        let p = predict(&[&raw], &b(257), &prior);
        assert_eq!(p.strings[0].outcome, Outcome::Imported);
        assert_eq!(
            p.strings[1].outcome,
            Outcome::Imported,
            "exactly 1 MiB in total is allowed"
        );
        assert_eq!(
            p.strings[2].outcome,
            Outcome::OverTotal {
                bytes: 1,
                total_before: CREDENTIALS_TOTAL_SIZE_MAX
            }
        );
    }

    #[test]
    fn test_bad_header_stops_the_scan() {
        let good = build(0, &[b"io.systemd.credential:A=1"]);
        let mut bad = build(1, &[b"io.systemd.credential:B=2"]);
        bad[1] = 6;
        bad.insert(5, 0);
        let later = build(
            2,
            &[
                b"io.systemd.credential:C=3",
                b"plain",
                b"io.systemd.credential:A=x",
            ],
        );
        let p = predict(&[&good, &bad, &later], &b(257), &[]);
        assert_eq!(p.entries.len(), 2, "entries systemd read");
        assert_eq!(p.stopped_at().unwrap().entry, 1);
        assert_eq!(p.imported().count(), 1);
        // Every string of the refused entry and of the later one is named.
        let lost: Vec<(u32, Option<&str>, OutcomeKind)> = p
            .strings
            .iter()
            .skip(1)
            .map(|s| (s.entry, s.name.as_deref(), s.outcome.kind()))
            .collect();
        assert_eq!(
            lost,
            [
                (1, Some("B"), OutcomeKind::NotRead),
                (2, Some("C"), OutcomeKind::NotRead),
                (2, None, OutcomeKind::NotCredential),
                (2, Some("A"), OutcomeKind::NotRead),
            ]
        );
        let r = p.strings[1].outcome.reason().unwrap();
        assert!(
            r.contains("stopped at entry 11-1") && r.contains("formatted length is 6"),
            "{r}"
        );
        assert_eq!(p.strings[2].value.as_ref().unwrap().expose(), b"3");
    }

    #[test]
    fn test_read_limit_cuts_text_value() {
        let mut s = b"io.systemd.credential:A=".to_vec();
        s.extend_from_slice(&vec![b'a'; CREDENTIALS_TOTAL_SIZE_MAX + 100]);
        let raw = build(0, &[&s]);
        let p = predict(&[&raw], &b(257), &[]);
        let e = &p.entries[0];
        assert!(e.cut_by_read_limit > 0);
        assert!(e
            .anomalies
            .iter()
            .any(|a| matches!(a, Anomaly::UnterminatedString { .. })));
        // 8 + 1 MiB - 5 header - 24 prefix bytes remain: under 1 MiB, imported truncated.
        assert_eq!(p.strings[0].outcome, Outcome::Imported);
        assert_eq!(
            p.strings[0].value.as_ref().unwrap().len(),
            8 + CREDENTIALS_TOTAL_SIZE_MAX - 5 - 24
        );
    }

    #[test]
    fn test_reasons_never_contain_values() {
        let raw = build(0, &[b"io.systemd.credential.binary:K=CANARY$SECRET"]);
        let p = predict(&[&raw], &b(257), &[]);
        let r = p.strings[0].outcome.reason().unwrap();
        assert!(!r.contains("CANARY"), "{r}");
    }
}
