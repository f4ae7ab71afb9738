//! The overall result: `verified`, `failed` or `unverified`, with a summary
//! for people and every reason it is not `verified`.

use crate::report::{CredentialReport, Status, Storage, Verdict, VerdictResult};

use super::entries::Summary;
use super::{Expectations, Strictness};

/// The longest summary kept (it ends up in notify messages and journals).
pub const SUMMARY_MAX: usize = 1000;

/// Everything that makes the check fail, one line each.
fn problems(
    credentials: &[CredentialReport],
    smbios: &Summary,
    exp: &Expectations,
    strictness: Strictness,
    causes: &[String],
) -> Vec<String> {
    let mut p: Vec<String> = credentials
        .iter()
        .filter(|c| c.status.is_failure())
        .map(|c| format!("{} {}", c.name, c.status))
        .collect();
    if !p.is_empty() {
        p.extend(causes.iter().cloned());
    }
    let unnamed = smbios.report.unnamed_rejections.len();
    if unnamed > 0 {
        p.push(format!(
            "{unnamed} credential string(s) without '=' rejected"
        ));
    }
    p.extend(exp.manifest_problem.clone());
    if strictness == Strictness::Strict {
        if !exp.any() {
            p.push("strict: nothing to verify against (no manifest, no --expect)".into());
        }
        let unexpected: Vec<&str> = credentials
            .iter()
            .filter(|c| c.status == Status::Unexpected)
            .map(|c| c.name.as_str())
            .collect();
        if !unexpected.is_empty() {
            p.push(format!("strict: unexpected {}", unexpected.join(", ")));
        }
        if !smbios.anomalies.is_empty() {
            p.push(format!(
                "strict: {} anomaly(ies): {}",
                smbios.anomalies.len(),
                smbios.anomalies.join("; ")
            ));
        }
        let weak: Vec<String> = credentials
            .iter()
            .filter_map(|c| {
                let s = c.systemd.as_ref()?.secure?;
                (s != Storage::Secure).then(|| format!("{} {s}", c.name))
            })
            .collect();
        if !weak.is_empty() {
            p.push(format!("strict: storage not secure: {}", weak.join(", ")));
        }
    }
    p
}

/// Cuts `s` to at most [`SUMMARY_MAX`] bytes at a character boundary.
fn bounded(mut s: String) -> String {
    if s.len() > SUMMARY_MAX {
        let mut cut = SUMMARY_MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// The verdict on `credentials`; `causes` name, one line each, where in the
/// boot chain failing credentials were lost ([`super::boot`]).
pub fn verdict(
    credentials: &[CredentialReport],
    smbios: &Summary,
    exp: &Expectations,
    strictness: Strictness,
    causes: &[String],
) -> Verdict {
    let reasons = problems(credentials, smbios, exp, strictness, causes);
    let count = |s: Status| credentials.iter().filter(|c| c.status == s).count();
    let ok = count(Status::Ok);
    let unexpected = count(Status::Unexpected);
    let total = credentials.len();
    let result = if !reasons.is_empty() {
        VerdictResult::Failed
    } else if exp.any() {
        VerdictResult::Verified
    } else {
        VerdictResult::Unverified
    };
    let summary = match result {
        VerdictResult::Verified if unexpected > 0 => {
            format!("{ok}/{total} credentials verified, {unexpected} unexpected")
        }
        VerdictResult::Verified => format!("{ok}/{total} credentials verified"),
        VerdictResult::Unverified => format!(
            "{ok}/{total} credentials arrived as SMBIOS predicts; nothing to verify against"
        ),
        VerdictResult::Failed => format!("{ok}/{total} ok; failing: {}", reasons.join("; ")),
    };
    let failed = credentials.iter().filter(|c| c.status.is_failure()).count()
        + smbios.report.unnamed_rejections.len();
    Verdict {
        result,
        ok: ok as u64,
        failed: failed as u64,
        summary: bounded(summary),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{CredentialReport, Smbios, SmbiosStatus, SystemdView, UnnamedRejection};

    fn cred(name: &str, status: Status, secure: Option<Storage>) -> CredentialReport {
        CredentialReport {
            name: name.into(),
            bytes: None,
            digest: None,
            encoding: None,
            source: None,
            smbios: SmbiosStatus::Absent,
            systemd: secure.map(|s| SystemdView {
                present: true,
                bytes: Some(1),
                digest: None,
                mode: None,
                secure: Some(s),
            }),
            expected: None,
            status,
            reason: None,
        }
    }

    fn summary(anomalies: &[&str], unnamed: usize) -> Summary {
        let mut report = Smbios::default();
        for i in 0..unnamed {
            report.unnamed_rejections.push(UnnamedRejection {
                entry: 0,
                string: i as u64 + 1,
                reason: "OEM string lacks '=' character".into(),
            });
        }
        Summary {
            report,
            anomalies: anomalies.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn expecting() -> Expectations {
        Expectations {
            expects: vec!["A".parse().unwrap()],
            ..Default::default()
        }
    }

    #[test]
    fn test_results() {
        let ok = [cred("A", Status::Ok, Some(Storage::Secure))];
        let v = verdict(
            &ok,
            &summary(&[], 0),
            &expecting(),
            Strictness::Lenient,
            &[],
        );
        assert_eq!((v.result, v.ok, v.failed), (VerdictResult::Verified, 1, 0));
        assert_eq!(v.summary, "1/1 credentials verified");
        let v = verdict(
            &ok,
            &summary(&[], 0),
            &Expectations::default(),
            Strictness::Lenient,
            &[],
        );
        assert_eq!(v.result, VerdictResult::Unverified);
        let bad = [
            cred("A", Status::Missing, None),
            cred("B", Status::Unexpected, None),
        ];
        let v = verdict(
            &bad,
            &summary(&[], 1),
            &expecting(),
            Strictness::Lenient,
            &[],
        );
        assert_eq!((v.result, v.ok, v.failed), (VerdictResult::Failed, 0, 2));
        assert_eq!(
            v.reasons,
            ["A missing", "1 credential string(s) without '=' rejected"]
        );
        // A cause found in the boot chain follows the credential failures,
        // and only when something failed.
        let causes = ["lost at switch-root: A (switch_root_handoff)".to_owned()];
        let v = verdict(
            &bad,
            &summary(&[], 0),
            &expecting(),
            Strictness::Lenient,
            &causes,
        );
        assert_eq!(
            v.reasons,
            ["A missing", "lost at switch-root: A (switch_root_handoff)"]
        );
        assert_eq!(
            v.summary,
            "0/2 ok; failing: A missing; lost at switch-root: A (switch_root_handoff)"
        );
        let v = verdict(
            &ok,
            &summary(&[], 0),
            &expecting(),
            Strictness::Lenient,
            &causes,
        );
        assert_eq!(v.result, VerdictResult::Verified);
        let mut exp = expecting();
        exp.manifest_problem =
            Some("the imported vmcreds.manifest credential is not a valid manifest".into());
        let v = verdict(&ok, &summary(&[], 0), &exp, Strictness::Lenient, &[]);
        assert_eq!(v.result, VerdictResult::Failed);
    }

    #[test]
    fn test_strict_adds_four_reasons() {
        let creds = [
            cred("A", Status::Ok, Some(Storage::Weak)),
            cred("B", Status::Unexpected, Some(Storage::Secure)),
        ];
        let lenient = verdict(
            &creds,
            &summary(&["11-0: odd"], 0),
            &Expectations::default(),
            Strictness::Lenient,
            &[],
        );
        assert_eq!(lenient.result, VerdictResult::Unverified);
        let v = verdict(
            &creds,
            &summary(&["11-0: odd"], 0),
            &Expectations::default(),
            Strictness::Strict,
            &[],
        );
        assert_eq!(v.result, VerdictResult::Failed);
        assert_eq!(
            v.reasons,
            [
                "strict: nothing to verify against (no manifest, no --expect)",
                "strict: unexpected B",
                "strict: 1 anomaly(ies): 11-0: odd",
                "strict: storage not secure: A weak",
            ]
        );
    }

    #[test]
    fn test_summary_is_bounded() {
        let many: Vec<CredentialReport> = (0..200)
            .map(|i| cred(&format!("NAME_{i:04}_é"), Status::Missing, None))
            .collect();
        let v = verdict(
            &many,
            &summary(&[], 0),
            &expecting(),
            Strictness::Lenient,
            &[],
        );
        assert!(v.summary.len() <= SUMMARY_MAX + '…'.len_utf8());
        assert!(v.summary.ends_with('…'));
        assert_eq!(v.reasons.len(), 200, "the reasons are all kept");
    }
}
