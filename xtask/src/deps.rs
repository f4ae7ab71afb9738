//! Host tools the VM tests need, installed on demand.
//!
//! As root, a missing tool is installed with `apt-get install -y` (after `apt-get update` when
//! the package is unknown to apt) and a missing musl target with `rustup target add`. Not as
//! root, the exact commands are printed and the task fails.

use std::process::Command;

use anyhow::{bail, Result};

use crate::util::{self, have, run};

/// (program, Debian package) pairs the VM driver runs.
const TOOLS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("debootstrap", "debootstrap"),
    ("cpio", "cpio"),
    ("depmod", "kmod"),
    ("dpkg-deb", "dpkg"),
    ("gzip", "gzip"),
    ("/bin/busybox", "busybox-static"),
    ("mke2fs", "e2fsprogs"),
];

const MUSL: &str = "x86_64-unknown-linux-musl";

fn is_root() -> bool {
    util::output(Command::new("id").arg("-u"))
        .map(|s| s.trim() == "0")
        .unwrap_or(false)
}

fn musl_installed() -> bool {
    util::output(Command::new("rustup").args(["target", "list", "--installed"]))
        .map(|s| s.lines().any(|l| l.trim() == MUSL))
        // Without rustup, trust the toolchain (a distribution rustc may carry the target).
        .unwrap_or(true)
}

/// Ensures every host tool (and, unless `vm_only`, the musl target) is present.
pub fn ensure(need_musl: bool) -> Result<()> {
    let missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(p, _)| !have(p))
        .map(|(_, pkg)| *pkg)
        .collect();
    let musl_missing = need_musl && !musl_installed();
    if missing.is_empty() && !musl_missing {
        return Ok(());
    }
    let apt_cmd = format!("apt-get install -y {}", missing.join(" "));
    let rustup_cmd = format!("rustup target add {MUSL}");
    if !is_root() {
        let mut msg = String::from("missing tools for the VM tests; run as root:");
        if !missing.is_empty() {
            msg.push_str(&format!("\n  {apt_cmd}"));
        }
        if musl_missing {
            msg.push_str(&format!("\n  {rustup_cmd}"));
        }
        bail!(msg);
    }
    if !missing.is_empty() {
        eprintln!("xtask: installing {}", missing.join(" "));
        let install = || {
            run(Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"))
        };
        if install().is_err() {
            run(Command::new("apt-get").args(["update", "-q"]))?;
            install()?;
        }
    }
    if musl_missing {
        run(Command::new("rustup").args(["target", "add", MUSL]))?;
    }
    Ok(())
}

/// `cargo xtask deps`.
pub fn run_cmd() -> Result<()> {
    ensure(true)?;
    eprintln!("xtask: all tools present");
    Ok(())
}
