//! Development automation for vmcreds (`cargo xtask <cmd>`, rust-analyzer style).
//!
//! `cargo xtask test` runs the workspace tests and then the real-VM scenarios: QEMU (TCG by
//! default), a Debian cloud kernel, real systemd guests (bookworm 252, trixie 257, sid) packed
//! as initramfs images, the host CLI injecting credentials and collecting the guest's report.
//! `cargo xtask demo` boots one such VM. See `flags.rs` for every subcommand and
//! `/work/coord/readme-xtask.md` (README material) for the cache layout and debugging.

mod bench;
mod demo;
mod deps;
mod flags;
mod fuzz;
mod ground_truth;
mod image;
mod leak;
mod man;
mod probe;
mod scenarios;
mod test;
mod tidy;
mod util;
mod vm;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;

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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    match flags::parse(&args)? {
        flags::Cmd::Test(t) => test::run(&root, &t),
        flags::Cmd::Demo(d) => demo::run(&root, &d),
        flags::Cmd::Images(g) => {
            deps::ensure(false)?;
            let k = image::kernel(&root)?;
            eprintln!("kernel {} {}", k.release, k.vmlinuz.display());
            for gen in &g.0 {
                let b = image::systemd_base(&root, gen)?;
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
        flags::Cmd::Deps => {
            deps::run_cmd()?;
            Ok(ExitCode::SUCCESS)
        }
        flags::Cmd::Tidy => {
            tidy::run(&root)?;
            Ok(ExitCode::SUCCESS)
        }
        flags::Cmd::Bench { vm } => bench::run(&root, vm),
        flags::Cmd::Fuzz(f) => {
            fuzz::run(&root, f.seconds, &f.only, f.keep)?;
            Ok(ExitCode::SUCCESS)
        }
        flags::Cmd::Man { out } => {
            man::run(&root, out.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        flags::Cmd::Help => {
            eprintln!("{}", flags::USAGE);
            Ok(ExitCode::SUCCESS)
        }
    }
}
