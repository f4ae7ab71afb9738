//! Hypervisors without SMBIOS: vmcreds-host refuses them (exit 2) and says
//! what to do instead.

use thiserror::Error;

use crate::exit::{Classify, Exit};

/// A hypervisor that builds no SMBIOS tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum Refused {
    /// Firecracker.
    #[error("firecracker builds no SMBIOS tables, so it cannot deliver systemd credentials as OEM strings; alternatives: run the guest under QEMU (-M q35 or pc) or cloud-hypervisor with vmcreds-host; or pass non-secret settings through Firecracker's MMDS (--metadata, read by a guest agent; systemd does not import MMDS); systemd.set_credential= on the kernel command line works but is world-readable in the guest's /proc/cmdline")]
    Firecracker,
    /// kvmtool.
    #[error("kvmtool builds no SMBIOS tables, so it cannot deliver systemd credentials as OEM strings; alternatives: run the guest under QEMU (-M q35 or pc), cloud-hypervisor or crosvm with vmcreds-host; systemd.set_credential= on the kernel command line works but is world-readable in the guest's /proc/cmdline")]
    Kvmtool,
}

impl Classify<Exit> for Refused {
    fn exit(&self) -> Exit {
        Exit::Refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_refusals_name_alternatives() {
        for r in [Refused::Firecracker, Refused::Kvmtool] {
            let msg = r.to_string();
            for want in [
                "no SMBIOS",
                "QEMU",
                "systemd.set_credential=",
                "world-readable",
            ] {
                assert!(msg.contains(want), "{msg}");
            }
        }
        let msg = Refused::Firecracker.to_string();
        assert!(
            msg.contains("MMDS") && msg.contains("cloud-hypervisor"),
            "{msg}"
        );
    }
}
