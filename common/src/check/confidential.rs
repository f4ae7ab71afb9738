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

/// What x86 CPUID says about the three ways systemd's detection
/// (`src/basic/confidential-virt.c`, `systemd-detect-virt --cvm`) can find a
/// confidential VM on x86_64: AMD SEV (leaf `0x8000001f` EAX bit 1, read
/// only when leaf `0x80000000` reaches it, then an MSR decides which SEV),
/// Intel TDX (leaf `0x21` signs `IntelTDX    `), and Hyper-V's isolated VMs
/// (leaf `0x40000000` signs `Microsoft Hv`, then its isolation leaves
/// decide). With none of the three, systemd answers `none` whatever else it
/// reads, so the guest need not run it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidView {
    /// The SEV bit of leaf `0x8000001f` is set.
    pub amd_sev: bool,
    /// Leaf `0x21` signs `IntelTDX    `.
    pub intel_tdx: bool,
    /// Leaf `0x40000000` signs `Microsoft Hv`.
    pub hyperv: bool,
}

impl CpuidView {
    /// The leaves' signature bytes in either register order a leaf uses
    /// (`EBX EDX ECX` for vendor strings, `EBX ECX EDX` for hypervisors).
    pub fn signs(ebx: u32, ecx: u32, edx: u32, text: &[u8; 12]) -> bool {
        let order = |a: u32, b: u32, c: u32| {
            let mut v = [0u8; 12];
            v[..4].copy_from_slice(&a.to_le_bytes());
            v[4..8].copy_from_slice(&b.to_le_bytes());
            v[8..].copy_from_slice(&c.to_le_bytes());
            v
        };
        order(ebx, edx, ecx) == *text || order(ebx, ecx, edx) == *text
    }

    /// Whether systemd could find a confidential VM on this CPU: only then
    /// is `systemd-detect-virt --cvm` worth its exec (under TCG, about as long
    /// as the rest of a check).
    pub fn may_be_cvm(&self) -> bool {
        self.amd_sev || self.intel_tdx || self.hyperv
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

    #[test]
    fn cpuid_signatures_in_either_register_order() {
        let r = |t: &[u8]| u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        // Leaf 0x21 of a TDX guest: EBX "Inte", EDX "lTDX", ECX "    ".
        let tdx = b"IntelTDX    ";
        assert!(CpuidView::signs(
            r(&tdx[0..]),
            r(&tdx[8..]),
            r(&tdx[4..]),
            tdx
        ));
        // Leaf 0x40000000 of Hyper-V: EBX "Micr", ECX "osof", EDX "t Hv".
        let hv = b"Microsoft Hv";
        assert!(CpuidView::signs(r(&hv[0..]), r(&hv[4..]), r(&hv[8..]), hv));
        // KVM's leaf 0x40000000 is not Hyper-V's.
        let kvm = b"KVMKVMKVM\0\0\0";
        assert!(!CpuidView::signs(
            r(&kvm[0..]),
            r(&kvm[4..]),
            r(&kvm[8..]),
            hv
        ));
        assert!(!CpuidView::signs(0, 0, 0, tdx));
    }

    #[test]
    fn only_a_cpu_with_none_of_the_three_rules_out_a_cvm() {
        assert!(!CpuidView::default().may_be_cvm());
        for v in [
            CpuidView {
                amd_sev: true,
                ..Default::default()
            },
            CpuidView {
                intel_tdx: true,
                ..Default::default()
            },
            CpuidView {
                hyperv: true,
                ..Default::default()
            },
        ] {
            assert!(v.may_be_cvm(), "{v:?}");
        }
    }

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
