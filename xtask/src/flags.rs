//! Command-line flags of `cargo xtask` (clap derive; `cargo xtask help` lists them).
//!
//! ```text
//! cargo xtask test [--no-vm | --vm-only] [--generations G,...] [--only NAME,...] [--jobs 1|2]
//!                  [--fuzz-seconds N] [--mirror URL] [--cloud-hypervisor PATH] [--crosvm PATH]
//!     cargo test --workspace, the fuzz smoke, then the real-VM scenarios (QEMU on every
//!     generation; cloud-hypervisor and crosvm where a binary is given); prints a summary;
//!     exits non-zero on any failure.
//! cargo xtask demo [--generation G]
//!     one VM, three secrets; prints the guest's per-credential table as collected by the host.
//! cargo xtask images [--generations G,...]
//!     builds (or reuses) the kernel and guest images and prints their paths.
//! cargo xtask ground-truth [--generations G,...] [--boots NAME,...]
//!     boots real systemd with hostile SMBIOS Type 11 strings and structures and writes
//!     xtask/ground-truth/systemd-<version>.json.
//! cargo xtask hv-ground-truth [--cloud-hypervisor PATH] [--generations G,...] [--only NAME,...]
//!     runs the cloud-hypervisor scenarios on a given binary and writes what they saw to
//!     xtask/ground-truth/cloud-hypervisor-<version>.json; with --crosvm PATH --source-commit
//!     HASH, the crosvm scenarios instead, to xtask/ground-truth/crosvm-<version>.json.
//! cargo xtask deps | tidy | bench [--no-vm] | fuzz [--time S] [--target T,...] [--keep] | man [--out DIR]
//! ```

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `cargo xtask`: development automation for vmcreds.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", disable_help_subcommand = false)]
pub struct Xtask {
    /// The task.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// A task.
#[derive(Debug, Subcommand, PartialEq)]
pub enum Cmd {
    /// Workspace tests, fuzz smoke, then the real-VM scenarios.
    Test(Test),
    /// One VM, three secrets, the guest's verified report on the host.
    Demo(Demo),
    /// Build (or reuse) the kernel and guest images and print their paths.
    Images(Images),
    /// Record what real systemd imports from hostile SMBIOS strings and structures.
    GroundTruth(GroundTruth),
    /// Record what real cloud-hypervisor (and crosvm) delivered, as ground truth for CI.
    HvGroundTruth(HvGroundTruth),
    /// Install what the VM tests need (as root), or print the command.
    Deps,
    /// Repository hygiene checks (also run by `cargo test -p xtask`).
    Tidy,
    /// Benchmarks of the guest's check and the digest path.
    Bench(Bench),
    /// libFuzzer over every parser of untrusted bytes.
    Fuzz(Fuzz),
    /// Man pages and shell completions from the binaries' clap definitions.
    Man(Man),
}

/// Where guest images come from.
#[derive(Debug, Args, PartialEq, Default, Clone)]
pub struct ImageArgs {
    /// Debian mirror for debootstrap [default: the first Debian URI in this machine's apt
    /// sources; env VMCREDS_MIRROR].
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
}

/// KVM-only hypervisors the user gives (xtask never builds them).
#[derive(Debug, Args, PartialEq, Default, Clone)]
pub struct HvArgs {
    /// A cloud-hypervisor binary [default: env CLOUD_HYPERVISOR, else PATH].
    #[arg(long, value_name = "PATH")]
    pub cloud_hypervisor: Option<PathBuf>,
    /// A cloud-hypervisor binary built with the `fw_cfg` cargo feature, for the fw_cfg
    /// scenarios [default: env CLOUD_HYPERVISOR_FW_CFG, else the --cloud-hypervisor binary
    /// when it has the feature].
    #[arg(long, value_name = "PATH")]
    pub cloud_hypervisor_fw_cfg: Option<PathBuf>,
    /// A crosvm binary [default: env CROSVM, else PATH].
    #[arg(long, value_name = "PATH")]
    pub crosvm: Option<PathBuf>,
}

fn generations_arg(s: &str) -> Result<String, String> {
    if crate::image::Generation::by_name(s).is_some() {
        Ok(s.to_string())
    } else {
        Err(format!(
            "unknown generation (known: {})",
            crate::image::GENERATIONS
                .iter()
                .map(|g| g.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

fn default_generations() -> Vec<String> {
    crate::image::GENERATIONS
        .iter()
        .map(|g| g.name.to_string())
        .collect()
}

/// Flags of `test`.
#[derive(Debug, Args, PartialEq, Default)]
pub struct Test {
    /// Skip the VM scenarios.
    #[arg(long, conflicts_with = "vm_only")]
    pub no_vm: bool,
    /// Skip `cargo test --workspace` and the fuzz smoke (debugging the VM tier).
    #[arg(long)]
    pub vm_only: bool,
    /// Generations to boot [default: all].
    #[arg(long, value_delimiter = ',', value_parser = generations_arg)]
    pub generations: Vec<String>,
    /// Only scenarios whose name is listed (all when empty).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// VMs run at the same time.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub jobs: u8,
    /// Seconds of fuzzing per target after the corpus replay (0: neither).
    #[arg(long, default_value_t = 10)]
    pub fuzz_seconds: u64,
    /// Run QEMU with `-accel kvm` instead of TCG.
    #[arg(long)]
    pub kvm: bool,
    /// Image source.
    #[command(flatten)]
    pub image: ImageArgs,
    /// Hypervisor binaries.
    #[command(flatten)]
    pub hv: HvArgs,
}

impl Test {
    /// The generations asked for, or all of them.
    pub fn generations(&self) -> Vec<String> {
        if self.generations.is_empty() {
            default_generations()
        } else {
            self.generations.clone()
        }
    }
}

/// Flags of `demo`.
#[derive(Debug, Args, PartialEq, Default)]
pub struct Demo {
    /// The generation to boot.
    #[arg(long, default_value = "bookworm", value_parser = generations_arg)]
    pub generation: String,
    /// Run QEMU with `-accel kvm` instead of TCG.
    #[arg(long)]
    pub kvm: bool,
    /// Image source.
    #[command(flatten)]
    pub image: ImageArgs,
}

/// Flags of `images`.
#[derive(Debug, Args, PartialEq, Default)]
pub struct Images {
    /// Generations to build [default: all].
    #[arg(long, value_delimiter = ',', value_parser = generations_arg)]
    pub generations: Vec<String>,
    /// Image source.
    #[command(flatten)]
    pub image: ImageArgs,
}

/// Flags of `ground-truth`.
#[derive(Debug, Args, PartialEq, Default)]
pub struct GroundTruth {
    /// Generations to boot [default: all].
    #[arg(long, value_delimiter = ',', value_parser = generations_arg)]
    pub generations: Vec<String>,
    /// Boots to run (all when empty; see xtask/ground-truth/README.md).
    #[arg(long, value_delimiter = ',')]
    pub boots: Vec<String>,
    /// Run QEMU with `-accel kvm` instead of TCG.
    #[arg(long)]
    pub kvm: bool,
    /// Image source.
    #[command(flatten)]
    pub image: ImageArgs,
}

/// Flags of `hv-ground-truth`.
#[derive(Debug, Args, PartialEq, Default)]
pub struct HvGroundTruth {
    /// Generations to boot under the hypervisor [default: each scenario's own guests].
    #[arg(long, value_delimiter = ',', value_parser = generations_arg)]
    pub generations: Vec<String>,
    /// Only scenarios whose name is listed (all when empty).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// The upstream commit the binary was built from, recorded beside what it did (required
    /// with --crosvm, whose `crosvm version` prints no commit). With --crosvm PATH, crosvm's
    /// scenarios are recorded instead of cloud-hypervisor's.
    #[arg(long, value_name = "HASH")]
    pub source_commit: Option<String>,
    /// Image source.
    #[command(flatten)]
    pub image: ImageArgs,
    /// Hypervisor binaries.
    #[command(flatten)]
    pub hv: HvArgs,
}

/// Flags of `bench`.
#[derive(Debug, Args, PartialEq, Default)]
pub struct Bench {
    /// Skip the in-guest figures (no VM boots).
    #[arg(long)]
    pub no_vm: bool,
}

/// Flags of `fuzz`.
#[derive(Debug, Args, PartialEq, Default)]
pub struct Fuzz {
    /// Seconds per target.
    #[arg(long = "time", default_value_t = 60, value_name = "SECONDS")]
    pub seconds: u64,
    /// Only these targets (all when empty).
    #[arg(long = "target", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Merge new inputs into the committed corpus.
    #[arg(long)]
    pub keep: bool,
}

/// Flags of `man`.
#[derive(Debug, Args, PartialEq, Default)]
pub struct Man {
    /// Where to write them [default: target/man].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn p(s: &str) -> Result<Cmd, clap::Error> {
        Xtask::try_parse_from(std::iter::once("xtask").chain(s.split_whitespace())).map(|x| x.cmd)
    }

    #[test]
    fn the_command_line_is_consistent() {
        Xtask::command().debug_assert();
    }

    #[test]
    fn test_flags_parse() {
        let Cmd::Test(t) = p("test --no-vm --generations bookworm,trixie --jobs 2").unwrap() else {
            panic!("not test")
        };
        assert!(t.no_vm);
        assert_eq!(t.generations(), ["bookworm", "trixie"]);
        assert_eq!(t.jobs, 2);
        let Cmd::Test(t) = p("test").unwrap() else {
            panic!("not test")
        };
        assert_eq!(t.generations(), default_generations());
        assert_eq!(t.fuzz_seconds, 10);
    }

    #[test]
    fn unknown_things_are_errors() {
        let e = p("test --generations focal").unwrap_err().to_string();
        assert!(e.contains("unknown generation"), "{e}");
        assert!(p("test --bogus").is_err());
        assert!(p("frobnicate").is_err());
        assert!(p("test --jobs 3").is_err());
        assert!(p("test --no-vm --vm-only").is_err());
        assert!(p("").is_err());
        assert!(p("fuzz --time soon").is_err());
        assert_eq!(
            p("fuzz --time 5 --target oem_string --keep").unwrap(),
            Cmd::Fuzz(Fuzz {
                seconds: 5,
                only: vec!["oem_string".into()],
                keep: true
            })
        );
    }

    #[test]
    fn hypervisor_paths_and_mirror_parse() {
        let Cmd::Test(t) =
            p("test --cloud-hypervisor /x/ch --crosvm /y/crosvm --mirror http://m/debian").unwrap()
        else {
            panic!("not test")
        };
        assert_eq!(t.hv.cloud_hypervisor.as_deref(), Some("/x/ch".as_ref()));
        assert_eq!(t.hv.crosvm.as_deref(), Some("/y/crosvm".as_ref()));
        assert_eq!(t.image.mirror.as_deref(), Some("http://m/debian"));
        let Cmd::HvGroundTruth(g) =
            p("hv-ground-truth --crosvm /y/crosvm --source-commit f1e797a6 --only crosvm-smbios")
                .unwrap()
        else {
            panic!("not hv-ground-truth")
        };
        assert_eq!(g.hv.crosvm.as_deref(), Some("/y/crosvm".as_ref()));
        assert_eq!(g.source_commit.as_deref(), Some("f1e797a6"));
        assert_eq!(g.only, ["crosvm-smbios"]);
    }
}
