//! The command line, as typed (clap derive). Validation of values that need
//! more than parsing happens in the commands.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Arg, ArgAction, Args, FromArgMatches, Parser, Subcommand};

use vmcreds_common::check::Expect;

use crate::dest::Dest;

/// Verify, inside a VM, that every SMBIOS Type 11 credential arrived whole,
/// and report it back without a value.
#[derive(Debug, Parser)]
#[command(name = "vmcreds-guest", version, about, max_term_width = 100)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
    /// More diagnostics on stderr: -v info, -vv debug, -vvv trace (names,
    /// sizes, paths and steps; never a value). RUST_LOG overrides the level.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

impl Cli {
    /// Parses the command line (`args`, the program name first).
    ///
    /// `check`, which runs at every boot, is parsed by a clap command that
    /// holds only `check` and `-v`: clap builds every argument and help
    /// text of every subcommand before it parses, and that was some 4 % of
    /// a check's time. Anything that command does not take as it is (help,
    /// version, any error, another subcommand) is parsed again by the whole
    /// command, so what is printed and refused is clap's, for the whole
    /// command line; the tests hold both parsers to the same result.
    pub fn parse_from(args: &[OsString]) -> Result<Cli, clap::Error> {
        match Cli::parse_check(args) {
            Some(cli) => Ok(cli),
            None => Cli::try_parse_from(args),
        }
    }

    /// `vmcreds-guest check …` by a command of `check` alone, or `None`.
    fn parse_check(args: &[OsString]) -> Option<Cli> {
        if args.get(1).map(OsString::as_os_str) != Some("check".as_ref()) {
            return None;
        }
        let cmd = clap::Command::new("vmcreds-guest")
            .disable_help_flag(true)
            .disable_help_subcommand(true)
            .disable_version_flag(true)
            .arg(
                Arg::new("verbose")
                    .short('v')
                    .long("verbose")
                    .action(ArgAction::Count)
                    .global(true),
            )
            .subcommand(
                CheckArgs::augment_args(clap::Command::new("check")).disable_help_flag(true),
            );
        let mut matches = cmd.try_get_matches_from(args).ok()?;
        Cli::from_arg_matches_mut(&mut matches).ok()
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check what systemd imported against SMBIOS and the expectations.
    Check(CheckArgs),
    /// List the Type 11 credentials: names, sizes, digests (never values).
    List(ListArgs),
    /// Print one credential's value (raw bytes) on purpose.
    Get(GetArgs),
    /// Import credentials like systemd does (for guests without systemd ≥ 252), then check.
    Import(ImportArgs),
    /// Write vmcreds-check.service (and enable it for multi-user.target).
    InstallUnit(InstallUnitArgs),
}

/// Options shared by every reader.
#[derive(Debug, Args, Clone)]
pub struct RootArgs {
    /// Read every path (/sys, /proc, /run, /dev) under DIR instead of /.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Model this systemd version instead of detecting it.
    #[arg(long, value_name = "N")]
    pub systemd_version: Option<u32>,
}

/// What `check` (and `import`) measure against, and where the report goes.
#[derive(Debug, Args, Clone)]
pub struct ExpectArgs {
    /// Expect credential NAME (of BYTES bytes); repeatable.
    #[arg(long, value_name = "NAME[:BYTES]")]
    pub expect: Vec<Expect>,
    /// Expect what this vmcreds.manifest/1 file lists (instead of the vmcreds.manifest credential).
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Print the vmcreds.report/1 JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also fail on no expectations, unexpected credentials, anomalies, and weak or insecure storage.
    #[arg(long)]
    pub strict: bool,
    /// Send the report: stdout, file:PATH, virtio-port:NAME, vsock:CID:PORT, unix:PATH; repeatable.
    #[arg(long, value_name = "DEST")]
    pub report_to: Vec<Dest>,
    /// Send a one-line STATUS= verdict to the vmm.notify_socket credential's address.
    #[arg(long)]
    pub notify: bool,
}

/// `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Where to read.
    #[command(flatten)]
    pub root: RootArgs,
    /// What to verify.
    #[command(flatten)]
    pub expect: ExpectArgs,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Where to read.
    #[command(flatten)]
    pub root: RootArgs,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The credential name.
    pub name: String,
    /// Where to read.
    #[command(flatten)]
    pub root: RootArgs,
}

/// `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The directory to import into (a private tmpfs/ramfs is mounted on it when root).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Do not mount anything; use a plain 0700 directory.
    #[arg(long, hide = true)]
    pub no_mount: bool,
    /// Where to read.
    #[command(flatten)]
    pub root: RootArgs,
    /// What to verify afterwards.
    #[command(flatten)]
    pub expect: ExpectArgs,
}

/// `install-unit`.
#[derive(Debug, Args)]
pub struct InstallUnitArgs {
    /// Install into the image at DIR.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Run the check with --strict.
    #[arg(long)]
    pub strict: bool,
    /// Where the unit's check sends its report; repeatable.
    #[arg(long, value_name = "DEST")]
    pub report_to: Vec<Dest>,
    /// Run the check with --notify (a STATUS= line to the vmm.notify_socket credential's
    /// address, as microvm.nix's cloud-hypervisor runner listens for).
    #[arg(long)]
    pub notify: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        std::iter::once("vmcreds-guest")
            .chain(a.iter().copied())
            .map(OsString::from)
            .collect()
    }

    /// `check`'s own parser gives what the whole command gives, or leaves
    /// the command line to it: help, version, errors and other subcommands
    /// are always the whole command's.
    #[test]
    fn test_check_parser_agrees_with_the_whole_command() {
        let taken: &[&[&str]] = &[
            &["check"],
            &["check", "--root", "/tmp/t", "--json"],
            &["check", "--root=/r", "-v", "-v", "--strict"],
            &["check", "-vvv", "--expect", "A:3", "--expect", "B"],
            &["check", "--expect", "no such name!"],
            &[
                "check",
                "--report-to",
                "stdout",
                "--report-to",
                "file:/tmp/r",
                "--notify",
            ],
            &[
                "check",
                "--verbose",
                "--systemd-version",
                "257",
                "--manifest",
                "/m",
            ],
        ];
        for a in taken {
            let args = args(a);
            let fast = Cli::parse_check(&args).unwrap_or_else(|| panic!("not taken: {a:?}"));
            let full = Cli::try_parse_from(&args).unwrap();
            assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{a:?}");
            let via = Cli::parse_from(&args).unwrap();
            assert_eq!(format!("{via:?}"), format!("{full:?}"), "{a:?}");
        }
        let left: &[&[&str]] = &[
            &["check", "-h"],
            &["check", "--help"],
            &["check", "--version"],
            &["check", "--bogus"],
            &["check", "extra"],
            &["check", "--", "extra"],
            &["check", "--root"],
            &["check", "--systemd-version", "x"],
            &["check", "--expect", "A:many"],
            &["check", "--report-to", "nowhere:"],
            &["-v", "check"],
            &["list"],
            &["help", "check"],
            &[],
        ];
        for a in left {
            let args = args(a);
            assert!(Cli::parse_check(&args).is_none(), "taken: {a:?}");
            let full = Cli::try_parse_from(&args).map(|c| format!("{c:?}"));
            let via = Cli::parse_from(&args).map(|c| format!("{c:?}"));
            match (full, via) {
                (Ok(f), Ok(v)) => assert_eq!(f, v, "{a:?}"),
                (Err(f), Err(v)) => {
                    assert_eq!(f.kind(), v.kind(), "{a:?}");
                    assert_eq!(f.to_string(), v.to_string(), "{a:?}");
                }
                (f, v) => panic!("{a:?}: {f:?} vs {v:?}"),
            }
        }
    }
}
