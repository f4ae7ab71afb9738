//! `vmcreds-host firecracker` and `vmcreds-host kvmtool`: refused (exit 2).
//! Neither VMM builds SMBIOS tables; the message names the alternatives
//! ([`crate::target::Unsupported`]).

use std::process::ExitCode;

use crate::target::TargetKind;

/// Refuses `kind`, naming the alternatives.
pub fn run(kind: TargetKind) -> anyhow::Result<ExitCode> {
    match kind.budget() {
        Err(unsupported) => Err(unsupported.into()),
        Ok(_) => anyhow::bail!("internal error: {} is not a refused target", kind.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_refusals_exit_2_with_alternatives() {
        for kind in [TargetKind::Firecracker, TargetKind::Kvmtool] {
            let e = run(kind).unwrap_err();
            assert_eq!(crate::exit_code_for(&e), crate::EXIT_REFUSED);
            let msg = format!("{e:#}");
            for want in [
                "no SMBIOS",
                "QEMU",
                "systemd.set_credential=",
                "world-readable",
            ] {
                assert!(msg.contains(want), "{msg}");
            }
        }
        let msg = format!("{:#}", run(TargetKind::Firecracker).unwrap_err());
        assert!(
            msg.contains("MMDS") && msg.contains("cloud-hypervisor"),
            "{msg}"
        );
    }
}
