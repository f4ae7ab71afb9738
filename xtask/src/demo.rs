//! `cargo xtask demo`: one throwaway VM, three secrets, the guest's verified report on the host.
//!
//! Builds what is missing (binaries, kernel, the bookworm image), boots one VM through
//! `vmcreds-host qemu`, collects the guest's report with `vmcreds-host collect`, then prints
//! the per-credential table with `vmcreds-host verify --manifest M --report R` (names, sizes,
//! digests, ✓; never values).

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::Result;

use crate::flags::Demo;
use crate::image;
use crate::scenarios::{self, Expect, Guest, Scenario};
use crate::test::{self, Expected, Outcome};
use crate::util;
use crate::vm::VmSpec;

/// `cargo xtask demo`.
pub fn run(root: &Path, flags: &Demo) -> Result<ExitCode> {
    let t0 = Instant::now();
    let env = test::prepare(root, flags.kvm, flags.image.mirror.as_deref())?;
    let base = image::systemd_base(root, &flags.generation, &env.mirror)?;
    let s = Scenario {
        name: "demo",
        about: "three secrets",
        guest: Guest::Systemd,
        generations: &[],
        sources: scenarios::reference_sources().into_iter().take(3).collect(),
        host_flags: vec![],
        machine: "q35",
        append: "",
        fw_cfg: vec![],
        check_args: vec![],
        expect: Expect::HostRefuses(""),
    };
    let dir = test::run_dir(root, "demo", &flags.generation)?;
    let creds = dir.join("credentials");
    // Reuse the scenario runner's pieces: secrets on disk, overlay, initrd.
    std::fs::create_dir_all(&creds)?;
    for src in &s.sources {
        if let scenarios::Source::Load { file, data, .. } = src {
            std::fs::write(creds.join(file), data)?;
        }
    }
    let ov = dir.join("overlay.cpio");
    test::overlay(&env, &s, Guest::Systemd)?.pack(&dir.join("overlay"), &ov)?;
    let initrd = dir.join("initrd.img");
    image::concat_initrd(&[&base.cpio, &env.kernel.modules_cpio, &ov], &initrd)?;
    let spec = VmSpec {
        name: format!("demo-{}", flags.generation),
        kernel: env.kernel.vmlinuz.clone(),
        initrd,
        append: "quiet systemd.show_status=0".into(),
        machine: "q35".into(),
        mem_mib: 512,
        kvm: flags.kvm,
        extra: vec![],
        report_socket: Some(dir.join("report.sock")),
        run_dir: dir.clone(),
    };
    let rows: Vec<(String, &'static str)> = ["API_KEY", "DB_PASSWORD", "JWT_SECRET"]
        .iter()
        .map(|n| (n.to_string(), "ok"))
        .collect();
    let exp = Expected {
        host_exit: 0,
        result: "verified",
        rows: &rows,
        report_mentions: &[],
    };
    let manifest = dir.join("manifest.json");
    eprintln!(
        "xtask: booting {} (TCG unless --kvm); console log {}",
        spec.name,
        spec.console_log().display()
    );
    let (outcome, _) = test::boot_and_collect(&env, &s, &spec, &creds, &manifest, &exp)?;
    // The table for people, from the same manifest and the report collect received.
    let st = Command::new(&env.host)
        .arg("verify")
        .arg("--manifest")
        .arg(&manifest)
        .arg("--report")
        .arg(dir.join("report.json"))
        .status();
    eprintln!("xtask: demo finished in {}", util::secs(t0.elapsed()));
    match outcome {
        Outcome::Pass if st.is_ok_and(|s| s.success()) => Ok(ExitCode::SUCCESS),
        Outcome::Pass => {
            eprintln!("xtask: vmcreds-host verify did not confirm the report");
            Ok(ExitCode::FAILURE)
        }
        Outcome::Fail(m) => {
            eprintln!("xtask: demo failed: {m}");
            Ok(ExitCode::FAILURE)
        }
    }
}
