//! Hypervisor targets. Each `target/<hv>.rs` owns its limits and escaping;
//! targets without SMBIOS are refused with the alternatives.

use thiserror::Error;
use vmcreds_common::limits::Budget;

pub mod cloud_hypervisor;
pub mod crosvm;
pub mod qemu;

/// The hypervisors vmcreds-host knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// QEMU (x86 `pc`/`q35`).
    Qemu,
    /// cloud-hypervisor (x86_64).
    CloudHypervisor,
    /// crosvm (x86_64).
    Crosvm,
    /// Firecracker: no SMBIOS.
    Firecracker,
    /// kvmtool: no SMBIOS.
    Kvmtool,
}

/// A target that cannot carry SMBIOS OEM strings (exit 2).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{target} builds no SMBIOS tables, so it cannot deliver systemd credentials as OEM strings; alternatives: {alternatives}")]
pub struct Unsupported {
    /// The target.
    pub target: &'static str,
    /// What to do instead.
    pub alternatives: &'static str,
}

impl TargetKind {
    /// The subcommand name.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Qemu => "qemu",
            TargetKind::CloudHypervisor => "cloud-hypervisor",
            TargetKind::Crosvm => "crosvm",
            TargetKind::Firecracker => "firecracker",
            TargetKind::Kvmtool => "kvmtool",
        }
    }

    /// What the target carries, or why it cannot.
    pub fn budget(self) -> Result<Budget, Unsupported> {
        match self {
            TargetKind::Qemu => Ok(Budget::QEMU_32),
            TargetKind::CloudHypervisor => Ok(Budget::CLOUD_HYPERVISOR),
            TargetKind::Crosvm => Ok(Budget::CROSVM),
            TargetKind::Firecracker => Err(Unsupported {
                target: "firecracker",
                alternatives: "run the guest under QEMU (-M q35 or pc) or cloud-hypervisor with vmcreds-host; or pass non-secret settings through Firecracker's MMDS (--metadata, read by a guest agent; systemd does not import MMDS); systemd.set_credential= on the kernel command line works but is world-readable in the guest's /proc/cmdline",
            }),
            TargetKind::Kvmtool => Err(Unsupported {
                target: "kvmtool",
                alternatives: "run the guest under QEMU (-M q35 or pc), cloud-hypervisor or crosvm with vmcreds-host; systemd.set_credential= on the kernel command line works but is world-readable in the guest's /proc/cmdline",
            }),
        }
    }
}

/// A hypervisor target: what it can carry.
pub trait Target {
    /// Which target.
    fn kind(&self) -> TargetKind;
    /// The budget the plan is checked against.
    fn budget(&self) -> Budget;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_refused_targets_name_alternatives() {
        for k in [TargetKind::Firecracker, TargetKind::Kvmtool] {
            let e = k.budget().unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("no SMBIOS") && msg.contains("QEMU"), "{msg}");
        }
        assert_eq!(TargetKind::Qemu.budget().unwrap(), Budget::QEMU_32);
    }
}
