//! vmcreds-guest: inside a VM, prove that every SMBIOS Type 11 credential
//! arrived whole (names, byte counts, digests; never values), explain every
//! silent loss systemd has, and report back to the host.
//!
//! - [`sysfs`]: every path through `--root`, bounded reads;
//! - [`dmi`]: the `11-N/raw` entries and the whole-table cross-check;
//! - [`creds_dir`]: what systemd imported (`/run/credentials/@system`);
//! - [`precond`]: systemd's silent preconditions and other sources;
//! - [`boot`]: the boot chain's evidence (kernel log, PID 1's environment,
//!   mounts) of where credentials were lost;
//! - [`observe`]: all of the above, read once, for `vmcreds_common::check::evaluate`
//!   (the decision itself, which does no I/O);
//! - [`dest`]: `--report-to` and `--notify`;
//! - [`cmd`]: one module per subcommand; [`exit`]: the outcome.
//!
//! Format rules (names, OEM strings, Type 11, limits, the prediction, the
//! report types) come from `vmcreds_common`; none is re-implemented here.

#![deny(missing_docs)]

#[cfg(not(target_os = "linux"))]
compile_error!("vmcreds-guest reads Linux sysfs and procfs and runs only on Linux");

pub mod boot;
pub mod cli;
pub mod cmd;
pub mod creds_dir;
pub mod dest;
pub mod dmi;
pub mod exit;
pub mod observe;
pub mod precond;
pub mod sysfs;

use cli::{Cli, Command};
use exit::Exit;

/// Runs a parsed command line.
pub fn run(cli: &Cli) -> exit::Result<Exit> {
    match &cli.command {
        Command::Check(a) => cmd::check::run(a),
        Command::List(a) => cmd::list::run(a),
        Command::Get(a) => cmd::get::run(a),
        Command::Import(a) => cmd::import::run(a),
        Command::InstallUnit(a) => cmd::install_unit::run(a),
    }
}
