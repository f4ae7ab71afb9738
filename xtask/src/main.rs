//! Development automation for vmcreds (`cargo xtask <cmd>`, rust-analyzer style).
//!
//! `cargo xtask test` runs the workspace tests and then the real-VM scenarios: QEMU (TCG by
//! default), a Debian cloud kernel, real systemd guests (bookworm 252, trixie 257, sid) packed
//! as initramfs images, the host CLI injecting credentials and collecting the guest's report.
//! `cargo xtask demo` boots one such VM. `cargo xtask help` (and `flags.rs`) lists every
//! subcommand; README.md's testing section has the cache layout and how to debug a run.

mod bench;
mod crosvm_scenarios;
mod demo;
mod deps;
mod flags;
mod fuzz;
mod ground_truth;
mod hv;
mod hv_scenarios;
mod image;
mod leak;
mod man;
mod mirror;
mod nested;
mod probe;
mod scenarios;
mod switch_root;
mod test;
mod tidy;
mod util;
mod vm;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

/// The repository root (xtask lives in `<root>/xtask`).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is one level below the repository root")
        .to_path_buf()
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode> {
    let root = project_root();
    match flags::Xtask::parse().cmd {
        flags::Cmd::Test(t) => test::run(&root, &t),
        flags::Cmd::Demo(d) => demo::run(&root, &d),
        flags::Cmd::Images(g) => {
            deps::ensure(false)?;
            let mirror = mirror::resolve(g.image.mirror.as_deref())?;
            let k = image::kernel(&root)?;
            eprintln!("kernel {} {}", k.release, k.vmlinuz.display());
            let gens = if g.generations.is_empty() {
                image::GENERATIONS
                    .iter()
                    .map(|g| g.name.to_string())
                    .collect()
            } else {
                g.generations
            };
            for gen in &gens {
                let b = image::systemd_base(&root, gen, &mirror)?;
                eprintln!("{gen} {}", b.cpio.display());
            }
            let b = image::busybox_base(&root)?;
            eprintln!("busybox {}", b.cpio.display());
            eprintln!("guest {}", image::guest_binary(&root)?.display());
            eprintln!("host {}", image::host_binary(&root)?.display());
            Ok(ExitCode::SUCCESS)
        }
        flags::Cmd::GroundTruth(g) => {
            ground_truth::run(&root, &g)?;
            Ok(ExitCode::SUCCESS)
        }
        flags::Cmd::HvGroundTruth(g) => {
            // With --crosvm it records crosvm (a source commit applies to one build).
            if let Some(path) = g.hv.crosvm.as_deref() {
                let cv = hv::find(hv::Kind::Crosvm, Some(path))?
                    .ok_or_else(|| anyhow::anyhow!("no crosvm at {}", path.display()))?;
                let commit = g.source_commit.as_deref().ok_or_else(|| {
                    anyhow::anyhow!(
                        "{} says only \"{}\", which does not tell builds apart: give the commit \
                         it was built from with --source-commit",
                        path.display(),
                        cv.version
                    )
                })?;
                let env = test::prepare(&root, false, g.image.mirror.as_deref())?;
                let c = crosvm_scenarios::CrosvmEnv::prepare(&env, cv)?;
                let path = crosvm_scenarios::ground_truth(&c, &g.only, &g.generations, commit)?;
                eprintln!("xtask: wrote {}", path.display());
                return Ok(ExitCode::SUCCESS);
            }
            let env = test::prepare(&root, false, g.image.mirror.as_deref())?;
            let ch = hv::find(hv::Kind::CloudHypervisor, g.hv.cloud_hypervisor.as_deref())?
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "no cloud-hypervisor binary: set CLOUD_HYPERVISOR or pass --cloud-hypervisor"
                    )
                })?;
            let h =
                hv_scenarios::HvEnv::prepare(&env, ch, g.hv.cloud_hypervisor_fw_cfg.as_deref())?;
            let path = hv_scenarios::ground_truth(
                &h,
                &g.only,
                &g.generations,
                g.source_commit.as_deref(),
            )?;
            eprintln!("xtask: wrote {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        flags::Cmd::Deps => {
            deps::run_cmd()?;
            Ok(ExitCode::SUCCESS)
        }
        flags::Cmd::Tidy => {
            tidy::run(&root)?;
            Ok(ExitCode::SUCCESS)
        }
        flags::Cmd::Bench(b) => bench::run(&root, !b.no_vm),
        flags::Cmd::Fuzz(f) => {
            fuzz::run(&root, f.seconds, &f.only, f.keep)?;
            Ok(ExitCode::SUCCESS)
        }
        flags::Cmd::Man(m) => {
            man::run(&root, m.out.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
