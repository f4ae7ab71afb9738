//! vmcreds-host: deliver secrets to a VM as SMBIOS Type 11 credentials without
//! exposing them, and verify the guest's report.
//!
//! The layers: [`cli`] (arguments as typed) → [`source`] (loading, binary-safe)
//! → [`plan`] (validation with `vmcreds_common`'s rules, the manifest, the
//! target's budget) → [`target`] (how each hypervisor receives the strings) →
//! [`cmd`] (one file per subcommand). Format rules live in `vmcreds_common`
//! only.

#![deny(missing_docs)]

use std::process::ExitCode;

pub mod api_client;
pub mod cli;
pub mod cmd;
pub mod fsutil;
pub mod plan;
pub mod source;
pub mod target;

/// Exit code for a refused input or a usage error.
pub const EXIT_REFUSED: u8 = 2;
/// Exit code when something could not be read, written, executed or connected.
pub const EXIT_IO: u8 = 3;

/// The exit code for an error: 3 when an I/O error is in its chain, else 2.
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    if err
        .chain()
        .any(|e| e.downcast_ref::<std::io::Error>().is_some())
    {
        EXIT_IO
    } else {
        EXIT_REFUSED
    }
}

/// Runs a parsed command line.
pub fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    use cli::Command;
    use target::TargetKind;
    match cli.command {
        Command::Qemu(a) => cmd::qemu::run(a),
        Command::CloudHypervisor(a) => cmd::cloud_hypervisor::run(a),
        Command::Crosvm(a) => cmd::crosvm::run(a),
        Command::Firecracker(_) => cmd::refused::run(TargetKind::Firecracker),
        Command::Kvmtool(_) => cmd::refused::run(TargetKind::Kvmtool),
        Command::Manifest(a) => cmd::manifest::run(a),
        Command::Collect(a) => cmd::collect::run(a),
        Command::Verify(a) => cmd::verify::run(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_exit_codes() {
        let io = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::NotFound))
            .context("cannot open x");
        assert_eq!(exit_code_for(&io), EXIT_IO);
        let refused = anyhow::anyhow!("bad name");
        assert_eq!(exit_code_for(&refused), EXIT_REFUSED);
    }
}
