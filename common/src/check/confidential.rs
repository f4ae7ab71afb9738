//! The `not_confidential_vm` precondition, per systemd version: since 254
//! PID 1 imports neither fw_cfg nor SMBIOS credentials in a confidential VM
//! (systemd/systemd#28299); since 262 it reads SMBIOS under Intel TDX, whose
//! firmware measures the table (systemd/systemd#42835), while fw_cfg stays
//! refused; and since 262 a VMM can hand credentials in through the initrd
//! instead (`/.extra/system_credentials/`, systemd/systemd#42272). The
//! guest finds out what the machine is ([`CvmFinding`]); this decides.

use crate::report::{CheckState, Precondition, PreconditionId};
use crate::systemd::{Behaviour, Cvm, Gate, FIRST_TDX_SMBIOS_TRUST};

/// What the guest found out about confidential computing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CvmFinding {
    /// Neither `/proc/cpuinfo` nor `systemd-detect-virt --cvm` could be asked.
    #[default]
    Unknown,
    /// Asked; not a confidential VM.
    NotCvm,
    /// A confidential VM.
    Cvm {
        /// The technology, when systemd's name or the CPU flag is known.
        kind: Option<Cvm>,
        /// How it was found, for people (`/proc/cpuinfo has flag tdx_guest`).
        how: String,
    },
}

impl CvmFinding {
    /// Which sources systemd `behaviour` reads here. Unknown counts as not
    /// a confidential VM (the precondition says `unknown`).
    pub fn gate(&self, behaviour: &Behaviour) -> Gate {
        match self {
            CvmFinding::Cvm { kind, .. } => behaviour.gate(true, *kind),
            _ => behaviour.gate(false, None),
        }
    }
}

/// The `not_confidential_vm` precondition for `finding` under `behaviour`.
pub fn precondition(finding: &CvmFinding, behaviour: &Behaviour) -> Precondition {
    let (state, detail) = match finding {
        CvmFinding::Unknown => (
            CheckState::Unknown,
            "cannot tell: /proc/cpuinfo not readable and systemd-detect-virt not available".into(),
        ),
        CvmFinding::NotCvm => (CheckState::Ok, "no confidential VM detected".into()),
        CvmFinding::Cvm { how, .. } if !behaviour.refuses_in_cvm => (
            CheckState::Ok,
            format!(
                "{how}, but systemd {} predates the confidential-VM refusal (254)",
                behaviour.version
            ),
        ),
        CvmFinding::Cvm { kind, how } => {
            let gate = finding.gate(behaviour);
            if gate.smbios {
                (
                    CheckState::Ok,
                    format!(
                        "{how}: systemd {} reads SMBIOS under Intel TDX, whose firmware measures it (systemd/systemd#42835; modelled from source, not run), but imports no fw_cfg credentials in a confidential VM",
                        behaviour.version
                    ),
                )
            } else {
                let mut d = format!(
                    "{how}: systemd ≥ 254 imports no SMBIOS or fw_cfg credentials in a confidential VM"
                );
                if *kind == Some(Cvm::Tdx) {
                    d.push_str(&format!(
                        " (systemd ≥ {FIRST_TDX_SMBIOS_TRUST} reads SMBIOS under TDX)"
                    ));
                }
                if behaviour.imports_initrd_system_credentials {
                    d.push_str(&format!(
                        "; systemd {} imports /.extra/system_credentials/ from the initrd instead (a cpio a VMM appends, e.g. systemd-vmspawn --coco=sev-snp)",
                        behaviour.version
                    ));
                }
                (CheckState::Failed, d)
            }
        }
    };
    Precondition {
        check: PreconditionId::NotConfidentialVm,
        state,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cvm(kind: Option<Cvm>, how: &str) -> CvmFinding {
        CvmFinding::Cvm {
            kind,
            how: how.into(),
        }
    }

    #[test]
    fn test_precondition_per_version_and_technology() {
        let tdx = cvm(Some(Cvm::Tdx), "/proc/cpuinfo has flag tdx_guest");
        let snp = cvm(Some(Cvm::SevSnp), "systemd-detect-virt --cvm says sev-snp");
        let odd = cvm(None, "systemd-detect-virt --cvm says quantum");
        // (finding, version, state, a piece of the detail, text that must not be there)
        let cases: Vec<(&CvmFinding, u32, CheckState, &str, &str)> = vec![
            (
                &CvmFinding::Unknown,
                257,
                CheckState::Unknown,
                "cannot tell",
                "TDX",
            ),
            (
                &CvmFinding::NotCvm,
                262,
                CheckState::Ok,
                "no confidential VM detected",
                "TDX",
            ),
            (
                &snp,
                252,
                CheckState::Ok,
                "predates the confidential-VM refusal (254)",
                "initrd",
            ),
            (&tdx, 253, CheckState::Ok, "systemd 253 predates", "RTMR"),
            (
                &snp,
                254,
                CheckState::Failed,
                "systemd ≥ 254 imports no SMBIOS or fw_cfg",
                "initrd",
            ),
            (
                &snp,
                257,
                CheckState::Failed,
                "in a confidential VM",
                "/.extra",
            ),
            (
                &tdx,
                257,
                CheckState::Failed,
                "(systemd ≥ 262 reads SMBIOS under TDX)",
                "initrd",
            ),
            (
                &tdx,
                261,
                CheckState::Failed,
                "(systemd ≥ 262 reads SMBIOS under TDX)",
                "initrd",
            ),
            (
                &tdx,
                262,
                CheckState::Ok,
                "reads SMBIOS under Intel TDX",
                "≥ 254 imports no SMBIOS",
            ),
            (
                &tdx,
                262,
                CheckState::Ok,
                "imports no fw_cfg credentials",
                "initrd",
            ),
            (
                &snp,
                262,
                CheckState::Failed,
                "imports /.extra/system_credentials/ from the initrd instead",
                "reads SMBIOS under TDX",
            ),
            (
                &odd,
                262,
                CheckState::Failed,
                "says quantum: systemd ≥ 254 imports no SMBIOS",
                "reads SMBIOS under",
            ),
        ];
        for (finding, v, state, has, lacks) in cases {
            let p = precondition(finding, &Behaviour::of(v));
            assert_eq!(p.check, PreconditionId::NotConfidentialVm);
            assert_eq!(p.state, state, "{v} {finding:?}: {}", p.detail);
            assert!(p.detail.contains(has), "{v} {finding:?}: {}", p.detail);
            assert!(!p.detail.contains(lacks), "{v} {finding:?}: {}", p.detail);
        }
    }

    #[test]
    fn test_texts_before_262_are_unchanged() {
        // The guest printed exactly these before the version-aware rule.
        let snp = cvm(Some(Cvm::SevSnp), "/proc/cpuinfo has flag sev_snp");
        assert_eq!(
            precondition(&snp, &Behaviour::of(257)).detail,
            "/proc/cpuinfo has flag sev_snp: systemd ≥ 254 imports no SMBIOS or fw_cfg credentials in a confidential VM"
        );
        assert_eq!(
            precondition(&snp, &Behaviour::of(252)).detail,
            "/proc/cpuinfo has flag sev_snp, but systemd 252 predates the confidential-VM refusal (254)"
        );
    }

    #[test]
    fn test_gate_follows_the_finding() {
        let b = Behaviour::of(262);
        assert!(CvmFinding::Unknown.gate(&b).fw_cfg);
        assert!(CvmFinding::NotCvm.gate(&b).smbios);
        let g = cvm(Some(Cvm::Tdx), "x").gate(&b);
        assert!(g.smbios && !g.fw_cfg);
        let g = cvm(None, "x").gate(&b);
        assert!(!g.smbios && !g.fw_cfg);
    }
}
