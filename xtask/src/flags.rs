//! Command-line flags of `cargo xtask`, parsed by hand (no dependency).
//!
//! ```text
//! cargo xtask test [--no-vm | --vm-only] [--generations bookworm,trixie,sid] [--only NAME,...] [--kvm] [--jobs N]
//!     cargo test --workspace, then the real-VM scenarios (xtask/src/scenarios.rs) against
//!     each generation; prints a summary; exits non-zero on any failure.
//! cargo xtask demo [--generation bookworm] [--kvm]
//!     one VM, three secrets; prints the guest's per-credential table as collected by the host.
//! cargo xtask images [--generations ...]
//!     builds (or reuses) the kernel and guest images and prints their paths and sizes.
//! cargo xtask ground-truth [--generations ...] [--boots hostile,table32,table32over,large200k,large1m] [--kvm]
//!     boots real systemd with hostile SMBIOS Type 11 strings and writes
//!     xtask/ground-truth/systemd-<version>.json.
//! cargo xtask deps
//!     installs what the VM tests need (root) or prints the command (not root).
//! cargo xtask tidy
//!     repository hygiene checks (also run by `cargo test -p xtask`).
//! ```

use anyhow::{bail, Result};

/// A parsed `cargo xtask` invocation.
#[derive(Debug, PartialEq)]
pub enum Cmd {
    /// `test`.
    Test(Test),
    /// `demo`.
    Demo(Demo),
    /// `images`.
    Images(Generations),
    /// `ground-truth`.
    GroundTruth(GroundTruth),
    /// `deps`.
    Deps,
    /// `tidy`.
    Tidy,
    /// `bench` (`--no-vm`: skip the in-guest part).
    Bench {
        /// Boot guests for the in-guest figures.
        vm: bool,
    },
    /// `fuzz`.
    Fuzz(Fuzz),
    /// `man [--out DIR]`: man pages and shell completions (xtask/src/man.rs).
    Man {
        /// Where to write them (default target/man).
        out: Option<std::path::PathBuf>,
    },
    /// `help`.
    Help,
}

/// Flags of `test`.
#[derive(Debug, PartialEq, Default)]
pub struct Test {
    /// Skip the VM scenarios.
    pub no_vm: bool,
    /// Skip `cargo test --workspace` (debugging the VM tier).
    pub vm_only: bool,
    /// Generations to boot.
    pub generations: Vec<String>,
    /// Only scenarios whose name is listed (all when empty).
    pub only: Vec<String>,
    /// Use KVM.
    pub kvm: bool,
    /// VMs run at the same time (1 or 2; default 2).
    pub jobs: usize,
    /// Seconds of fuzzing per target after the corpus replay (0: neither).
    pub fuzz_seconds: u64,
}

/// Flags of `demo`.
#[derive(Debug, PartialEq, Default)]
pub struct Demo {
    /// The generation to boot.
    pub generation: String,
    /// Use KVM.
    pub kvm: bool,
}

/// A list of generations.
#[derive(Debug, PartialEq, Default)]
pub struct Generations(pub Vec<String>);

/// Flags of `ground-truth`.
#[derive(Debug, PartialEq, Default)]
pub struct GroundTruth {
    /// Generations to boot.
    pub generations: Vec<String>,
    /// Boots to run (all when empty).
    pub boots: Vec<String>,
    /// Use KVM.
    pub kvm: bool,
}

/// Flags of `fuzz`.
#[derive(Debug, PartialEq, Default)]
pub struct Fuzz {
    /// Seconds per target.
    pub seconds: u64,
    /// Only these targets (all when empty).
    pub only: Vec<String>,
    /// Merge new inputs into the committed corpus.
    pub keep: bool,
}

/// The usage text printed by `help` and on usage errors.
pub const USAGE: &str = "usage: cargo xtask <test|demo|images|ground-truth|deps|tidy|help> [flags]
  test [--no-vm | --vm-only] [--generations bookworm,trixie,sid] [--only NAME,...] [--kvm] [--jobs 1|2] [--fuzz-seconds N]
  demo [--generation bookworm] [--kvm]
  images [--generations ...]
  ground-truth [--generations ...] [--boots hostile,table32,table32over,large200k,large1m] [--kvm]
  deps
  tidy
  bench [--no-vm]
  fuzz [--time SECONDS] [--target NAME,...] [--keep]
  man [--out DIR]";

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn default_generations() -> Vec<String> {
    crate::image::GENERATIONS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn check_generations(g: &[String]) -> Result<()> {
    for x in g {
        if !crate::image::GENERATIONS.contains(&x.as_str()) {
            bail!(
                "unknown generation '{}' (known: {})",
                x.escape_debug(),
                crate::image::GENERATIONS.join(", ")
            );
        }
    }
    Ok(())
}

/// Parses the arguments after `cargo xtask`.
pub fn parse(args: &[String]) -> Result<Cmd> {
    let Some((cmd, rest)) = args.split_first() else {
        return Ok(Cmd::Help);
    };
    let mut it = rest.iter();
    let value = |flag: &str, it: &mut std::slice::Iter<String>| -> Result<String> {
        match it.next() {
            Some(v) => Ok(v.clone()),
            None => bail!("{flag} needs a value"),
        }
    };
    match cmd.as_str() {
        "test" => {
            let mut t = Test {
                generations: default_generations(),
                jobs: 2,
                fuzz_seconds: 10,
                ..Test::default()
            };
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--no-vm" => t.no_vm = true,
                    "--vm-only" => t.vm_only = true,
                    "--kvm" => t.kvm = true,
                    "--generations" => t.generations = list(&value(a, &mut it)?),
                    "--only" => t.only = list(&value(a, &mut it)?),
                    "--fuzz-seconds" => {
                        let v = value(a, &mut it)?;
                        t.fuzz_seconds = v.parse().map_err(|_| {
                            anyhow::anyhow!(
                                "--fuzz-seconds takes seconds, not '{}'",
                                v.escape_debug()
                            )
                        })?;
                    }
                    "--jobs" => {
                        t.jobs = match value(a, &mut it)?.as_str() {
                            "1" => 1,
                            "2" => 2,
                            v => bail!("--jobs takes 1 or 2, not '{}'", v.escape_debug()),
                        }
                    }
                    _ => bail!("unknown flag '{}' for test\n{USAGE}", a.escape_debug()),
                }
            }
            check_generations(&t.generations)?;
            Ok(Cmd::Test(t))
        }
        "demo" => {
            let mut d = Demo {
                generation: "bookworm".into(),
                kvm: false,
            };
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--kvm" => d.kvm = true,
                    "--generation" => d.generation = value(a, &mut it)?,
                    _ => bail!("unknown flag '{}' for demo\n{USAGE}", a.escape_debug()),
                }
            }
            check_generations(std::slice::from_ref(&d.generation))?;
            Ok(Cmd::Demo(d))
        }
        "images" => {
            let mut g = default_generations();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--generations" => g = list(&value(a, &mut it)?),
                    _ => bail!("unknown flag '{}' for images\n{USAGE}", a.escape_debug()),
                }
            }
            check_generations(&g)?;
            Ok(Cmd::Images(Generations(g)))
        }
        "ground-truth" => {
            let mut g = GroundTruth {
                generations: default_generations(),
                ..GroundTruth::default()
            };
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--kvm" => g.kvm = true,
                    "--generations" => g.generations = list(&value(a, &mut it)?),
                    "--boots" => g.boots = list(&value(a, &mut it)?),
                    _ => bail!(
                        "unknown flag '{}' for ground-truth\n{USAGE}",
                        a.escape_debug()
                    ),
                }
            }
            check_generations(&g.generations)?;
            Ok(Cmd::GroundTruth(g))
        }
        "deps" if rest.is_empty() => Ok(Cmd::Deps),
        "man" => match rest {
            [] => Ok(Cmd::Man { out: None }),
            [flag, dir] if flag == "--out" => Ok(Cmd::Man {
                out: Some(dir.into()),
            }),
            _ => bail!("usage: cargo xtask man [--out DIR]"),
        },
        "tidy" if rest.is_empty() => Ok(Cmd::Tidy),
        "bench" => match rest {
            [] => Ok(Cmd::Bench { vm: true }),
            [f] if f == "--no-vm" => Ok(Cmd::Bench { vm: false }),
            _ => bail!("bench takes only --no-vm\n{USAGE}"),
        },
        "fuzz" => {
            let mut f = Fuzz {
                seconds: 60,
                ..Fuzz::default()
            };
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--time" => {
                        let v = value(a, &mut it)?;
                        f.seconds = v.parse().map_err(|_| {
                            anyhow::anyhow!("--time takes seconds, not '{}'", v.escape_debug())
                        })?;
                    }
                    "--target" => f.only = list(&value(a, &mut it)?),
                    "--keep" => f.keep = true,
                    _ => bail!("unknown flag '{}' for fuzz\n{USAGE}", a.escape_debug()),
                }
            }
            Ok(Cmd::Fuzz(f))
        }
        "help" | "--help" | "-h" => Ok(Cmd::Help),
        other => bail!("unknown command '{}'\n{USAGE}", other.escape_debug()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Cmd> {
        parse(&s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
    }

    #[test]
    fn test_flags_parse() {
        let Cmd::Test(t) = p("test --no-vm --generations bookworm,trixie --jobs 2").unwrap() else {
            panic!("not test")
        };
        assert!(t.no_vm);
        assert_eq!(t.generations, ["bookworm", "trixie"]);
        assert_eq!(t.jobs, 2);
    }

    #[test]
    fn unknown_things_are_errors() {
        assert!(p("test --generations focal")
            .unwrap_err()
            .to_string()
            .contains("unknown generation"));
        assert!(p("test --bogus").is_err());
        assert!(p("frobnicate").is_err());
        assert!(p("test --jobs 3").is_err());
        assert_eq!(p("").unwrap(), Cmd::Help);
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
}
