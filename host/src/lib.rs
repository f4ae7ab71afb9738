//! vmcreds-host: deliver secrets to a VM as SMBIOS Type 11 credentials without
//! exposing them, and verify the guest's report.
//!
//! The layers: [`cli`] (arguments as typed) → [`source`] (loading, binary-safe)
//! → [`plan`] (validation with `vmcreds_common`'s rules, the manifest, the
//! target's budget) → [`hv`] (how each hypervisor receives the strings, and
//! what it can carry) → [`cmd`] (one file per subcommand); `collect` and
//! `verify` share [`verdict`]. [`exit`] says how each error ends the
//! process. Format rules live in `vmcreds_common` only.

#![deny(missing_docs)]

pub mod api_client;
pub mod cli;
pub mod cmd;
pub mod exit;
pub mod hv;
pub mod plan;
pub mod private_dir;
pub mod signals;
pub mod socket_trust;
pub mod source;
pub mod verdict;

pub use exit::Exit;
pub use vmcreds_os::show_path;

/// Runs a parsed command line.
pub fn run(cli: cli::Cli) -> exit::Result<Exit> {
    use cli::Command;
    use hv::refused::Refused;
    match cli.command {
        Command::Qemu(a) => cmd::qemu::run(a),
        Command::CloudHypervisor(a) => cmd::cloud_hypervisor::run(a),
        Command::Crosvm(a) => cmd::crosvm::run(a),
        Command::Firecracker(_) => cmd::refused::run(Refused::Firecracker),
        Command::Kvmtool(_) => cmd::refused::run(Refused::Kvmtool),
        Command::Manifest(a) => cmd::manifest::run(a),
        Command::Collect(a) => cmd::collect::run(a),
        Command::Verify(a) => cmd::verify::run(a),
    }
}
