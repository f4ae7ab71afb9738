//! `cargo xtask test`: the workspace tests, then the real-VM scenarios.
//!
//! For a boot scenario the driver:
//! 1. writes the scenario's secrets to `<run>/credentials/` (0400) and sets
//!    `CREDENTIALS_DIRECTORY` to it, as systemd's `LoadCredential=` would;
//! 2. packs a per-boot overlay: the static `vmcreds-guest`, `vmcreds-check.service` when
//!    `guest/units/` has it, the probe unit, and `/etc/vmcreds-test/run.sh` (the scenario's
//!    `vmcreds-guest check --json --report-to virtio-port:vmcreds.report ...`);
//! 3. starts `vmcreds-host collect --listen unix:SOCK --manifest M --json --report-out R`
//!    first (listener first: it reads M only once the report has arrived) and waits for SOCK;
//! 4. runs `vmcreds-host qemu SOURCES --manifest-out M -- qemu-system-x86_64 ARGS` in its own
//!    process group (the host execs QEMU, as users run it; QEMU's report chardev connects to
//!    SOCK at start-up);
//! 5. waits (with deadlines) for the guest to power off and for `collect` to exit, and compares
//!    `collect`'s exit code, verdict and rows, and the guest report, with the scenario.
//!
//! Every scenario either runs and passes or fails: there is no pending or skipped state. A
//! scenario that needs a hypervisor the machine lacks is listed as NOT RUN with the reason,
//! and fails the run when `VMCREDS_REQUIRE` names that hypervisor.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::flags::Test;
use crate::hv;
use crate::image::{self, BaseImage, Kernel, Overlay};
use crate::leak;
use crate::scenarios::{self, Expect, Guest, Scenario, Source};
use crate::util::{self, mkdirp};
use crate::vm::{self, Guarded, VmSpec};

/// How one (scenario, generation) run ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Everything matched.
    Pass,
    /// Something differed; the text says what.
    Fail(String),
}

/// Everything a scenario run needs.
pub struct Env {
    /// Repository root.
    pub root: PathBuf,
    /// Kernel.
    pub kernel: Kernel,
    /// `vmcreds-host` (debug build).
    pub host: PathBuf,
    /// `vmcreds-guest` (static musl).
    pub guest: PathBuf,
    /// Use KVM.
    pub kvm: bool,
    /// The Debian mirror images are built from.
    pub mirror: String,
}

/// `cargo xtask test`.
pub fn run(root: &Path, flags: &Test) -> Result<ExitCode> {
    let t0 = Instant::now();
    let mut failed = false;
    let mut lines: Vec<String> = Vec::new();

    if flags.vm_only {
        lines.push("SKIP   cargo test --workspace (--vm-only)".into());
    } else {
        let t = Instant::now();
        let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["test", "--workspace"])
            .current_dir(root)
            .status()
            .context("could not run cargo test")?;
        lines.push(format!(
            "{:<6} cargo test --workspace ({})",
            if st.success() { "PASS" } else { "FAIL" },
            util::secs(t.elapsed())
        ));
        failed |= !st.success();
    }

    if flags.vm_only || flags.fuzz_seconds == 0 {
        lines.push("SKIP   fuzz smoke".into());
    } else {
        let t = Instant::now();
        let r = crate::fuzz::run(root, flags.fuzz_seconds, &[], false);
        lines.push(format!(
            "{:<6} fuzz: corpus replay + {} s per target ({}){}",
            if r.is_ok() { "PASS" } else { "FAIL" },
            flags.fuzz_seconds,
            util::secs(t.elapsed()),
            r.as_ref()
                .err()
                .map(|e| format!(": {e:#}"))
                .unwrap_or_default()
        ));
        failed |= r.is_err();
    }

    if !flags.no_vm {
        match prepare(root, flags.kvm, flags.image.mirror.as_deref()) {
            Ok(env) => {
                match run_vms(&env, flags) {
                    Ok((l, f)) => {
                        lines.extend(l);
                        failed |= f;
                    }
                    Err(e) => {
                        lines.push(format!("FAIL   VM scenarios could not run: {e:#}"));
                        failed = true;
                    }
                }
                for kind in [hv::Kind::CloudHypervisor, hv::Kind::Crosvm] {
                    let (l, f) = run_hv(&env, flags, kind);
                    lines.extend(l);
                    failed |= f;
                }
            }
            Err(e) => {
                lines.push(format!("FAIL   VM scenarios could not run: {e:#}"));
                failed = true;
            }
        }
    } else {
        lines.push("SKIP   VM scenarios (--no-vm)".into());
    }
    eprintln!("\n== xtask test summary ({}) ==", util::secs(t0.elapsed()));
    for l in &lines {
        eprintln!("{l}");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The scenarios of one KVM-only hypervisor: NOT RUN (with the reason) when no binary is
/// given, a failure instead when `VMCREDS_REQUIRE` names it.
fn run_hv(env: &Env, flags: &Test, kind: hv::Kind) -> (Vec<String>, bool) {
    let flag = match kind {
        hv::Kind::CloudHypervisor => flags.hv.cloud_hypervisor.as_deref(),
        hv::Kind::Crosvm => flags.hv.crosvm.as_deref(),
    };
    let binary = match hv::find(kind, flag) {
        Ok(b) => b,
        Err(e) => return (vec![format!("FAIL   {}-*: {e:#}", kind.prefix())], true),
    };
    let Some(binary) = binary else {
        let why = format!(
            "no {} binary: set {} or pass --{}",
            kind.program(),
            kind.env_var(),
            kind.program()
        );
        return if hv::required(kind.program()) {
            (
                vec![format!(
                    "FAIL   {}-* ({why}; VMCREDS_REQUIRE names {})",
                    kind.prefix(),
                    kind.program()
                )],
                true,
            )
        } else {
            (vec![format!("NOT RUN {}-* ({why})", kind.prefix())], false)
        };
    };
    let found = format!("{} at {}", binary.version, binary.path.display());
    let prepared = match kind {
        hv::Kind::CloudHypervisor => crate::hv_scenarios::HvEnv::prepare(
            env,
            binary,
            flags.hv.cloud_hypervisor_fw_cfg.as_deref(),
        )
        .map(|h| {
            let fw_cfg = h
                .ch_fw_cfg
                .as_ref()
                .map(|b| format!("; fw_cfg build {} at {}", b.version, b.path.display()));
            (
                format!("{}{}", h.placement.describe(), fw_cfg.unwrap_or_default()),
                crate::hv_scenarios::run_all(&h, &flags.only, &flags.generations()),
            )
        }),
        hv::Kind::Crosvm => crate::crosvm_scenarios::CrosvmEnv::prepare(env, binary).map(|c| {
            (
                c.placement.describe().to_string(),
                crate::crosvm_scenarios::run_all(&c, &flags.only, &flags.generations()),
            )
        }),
    };
    let (info, ran) = match prepared {
        Ok(p) => p,
        Err(e) => {
            return (
                vec![format!("FAIL   {}-* ({found}): {e:#}", kind.prefix())],
                true,
            )
        }
    };
    let mut lines = vec![format!("INFO   {found}, {info}")];
    let mut failed = false;
    for r in ran {
        let detail = match &r.outcome {
            Outcome::Pass => String::new(),
            Outcome::Fail(m) => format!(": {m}"),
        };
        failed |= matches!(r.outcome, Outcome::Fail(_));
        lines.push(format!(
            "{:<7} {} [{}] ({}){detail}",
            label(&r.outcome),
            r.scenario,
            r.generation,
            util::secs(r.elapsed)
        ));
    }
    (lines, failed)
}

/// Prepares binaries and images and builds the environment every run shares.
pub fn prepare(root: &Path, kvm: bool, mirror: Option<&str>) -> Result<Env> {
    crate::deps::ensure(true)?;
    let mirror = crate::mirror::resolve(mirror)?;
    let t = Instant::now();
    let guest = image::guest_binary(root)?;
    let host = image::host_binary(root)?;
    eprintln!("xtask: binaries built in {}", util::secs(t.elapsed()));
    let kernel = image::kernel(root)?;
    Ok(Env {
        root: root.to_path_buf(),
        kernel,
        host,
        guest,
        kvm,
        mirror,
    })
}

fn run_vms(env: &Env, flags: &Test) -> Result<(Vec<String>, bool)> {
    let root = env.root.as_path();
    let generations = flags.generations();
    let mut jobs: Vec<(Scenario, String)> = Vec::new();
    for s in scenarios::all() {
        if !flags.only.is_empty() && !flags.only.iter().any(|o| o == s.name) {
            continue;
        }
        match s.guest {
            Guest::Busybox => jobs.push((s.clone(), "busybox".into())),
            Guest::Systemd => {
                for g in &generations {
                    if s.generations.is_empty() || s.generations.contains(&g.as_str()) {
                        jobs.push((s.clone(), g.clone()));
                    }
                }
            }
        }
    }
    // Images first, sequentially (debootstrap and packing are I/O and network bound).
    let mut bases: Vec<(String, BaseImage)> = Vec::new();
    for (s, g) in &jobs {
        if bases.iter().any(|(n, _)| n == g) || matches!(s.expect, Expect::HostRefuses(_)) {
            continue;
        }
        let t = Instant::now();
        let b = if g == "busybox" {
            image::busybox_base(root)?
        } else {
            image::systemd_base(root, g, &env.mirror)?
        };
        eprintln!("xtask: image {g} ready in {}", util::secs(t.elapsed()));
        bases.push((g.clone(), b));
    }
    let queue = Mutex::new(jobs.into_iter().enumerate().collect::<VecDeque<_>>());
    let results: Mutex<Vec<RunResult>> = Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for _ in 0..flags.jobs.max(1) {
            sc.spawn(|| loop {
                let Some((i, (s, g))) = queue.lock().expect("queue lock").pop_front() else {
                    break;
                };
                let t = Instant::now();
                let base = bases.iter().find(|(n, _)| *n == g).map(|(_, b)| b);
                eprintln!("xtask: run {} on {g}: {}", s.name, s.about);
                let o = run_one(env, &s, &g, base)
                    .map(|(o, _)| o)
                    .unwrap_or_else(|e| Outcome::Fail(format!("{e:#}")));
                let d = t.elapsed();
                eprintln!(
                    "xtask: {} on {g}: {} ({})",
                    s.name,
                    label(&o),
                    util::secs(d)
                );
                results
                    .lock()
                    .expect("results lock")
                    .push((i, s.name.to_string(), g, o, d));
            });
        }
    });
    let mut results = results.into_inner().expect("results lock");
    results.sort_by_key(|r| r.0);
    let mut lines = Vec::new();
    let mut failed = false;
    for (_, name, g, o, d) in results {
        let detail = match &o {
            Outcome::Pass => String::new(),
            Outcome::Fail(m) => format!(": {m}"),
        };
        failed |= matches!(o, Outcome::Fail(_));
        lines.push(format!(
            "{:<7} {name} [{g}] ({}){detail}",
            label(&o),
            util::secs(d)
        ));
    }
    let (l, f) = crate::switch_root::run(env, flags);
    lines.extend(l);
    failed |= f;
    Ok((lines, failed))
}

/// (job index, scenario, generation, outcome, wall time).
type RunResult = (usize, String, String, Outcome, Duration);

fn label(o: &Outcome) -> &'static str {
    match o {
        Outcome::Pass => "PASS",
        Outcome::Fail(_) => "FAIL",
    }
}

/// Host arguments for a scenario's sources.
fn host_source_args(s: &Scenario) -> Vec<OsString> {
    source_args(&s.sources, &s.host_flags)
}

/// Host arguments for `sources` (in order), then `flags`.
pub fn source_args(sources: &[Source], flags: &[String]) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    for src in sources {
        match src {
            Source::Load { name, file, .. } => {
                a.push("--load".into());
                a.push(format!("{name}:{file}").into());
            }
            Source::Set(n, v) => {
                a.push("--set".into());
                a.push(format!("{n}={v}").into());
            }
            Source::Oem(o) => {
                a.push("--oem".into());
                a.push(o.into());
            }
        }
    }
    a.extend(flags.iter().map(OsString::from));
    a
}

/// Writes the scenario's secret files (0400) into `dir`.
fn write_credentials(s: &Scenario, dir: &Path) -> Result<()> {
    write_credential_files(&s.sources, dir)
}

/// Writes the files of `sources`' `--load`s (0400) into `dir` (0700).
pub fn write_credential_files(sources: &[Source], dir: &Path) -> Result<()> {
    mkdirp(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    for src in sources {
        if let Source::Load { file, data, .. } = src {
            let p = dir.join(file);
            let _ = fs::remove_file(&p);
            fs::write(&p, data)?;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o400))?;
        }
    }
    Ok(())
}

/// A fresh run directory under `target/vm/runs/`.
pub fn run_dir(root: &Path, name: &str, generation: &str) -> Result<PathBuf> {
    let d = root.join("target/vm/runs").join(format!(
        "{}-{name}-{generation}-{}",
        util::stamp(),
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&d);
    mkdirp(&d)?;
    Ok(d)
}

/// `s` in single quotes for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The per-boot overlay of a scenario.
pub fn overlay(env: &Env, s: &Scenario, guest: Guest) -> Result<Overlay> {
    let mut o = Overlay::default();
    let bin =
        fs::read(&env.guest).with_context(|| format!("could not read {}", env.guest.display()))?;
    o.file("/usr/local/bin/vmcreds-guest", bin, 0o755);
    let mut check =
        String::from("vmcreds-guest check --json --report-to virtio-port:vmcreds.report");
    for a in &s.check_args {
        check.push(' ');
        check.push_str(&shell_quote(a));
    }
    match guest {
        Guest::Systemd => {
            crate::probe::add_probe(&mut o, "scenario");
            let unit = env.root.join("guest/units/vmcreds-check.service");
            if let Ok(u) = fs::read(&unit) {
                o.file("/etc/systemd/system/vmcreds-check.service", u, 0o644)
                    .link(
                        "/etc/systemd/system/multi-user.target.wants/vmcreds-check.service",
                        "/etc/systemd/system/vmcreds-check.service",
                    );
                o.link("/usr/bin/vmcreds-guest", "/usr/local/bin/vmcreds-guest");
            }
            o.file(
                "/etc/vmcreds-test/check.args",
                s.check_args.join("\n"),
                0o644,
            );
            o.file(
                "/etc/vmcreds-test/run.sh",
                format!("#!/bin/sh\nexport PATH=/usr/local/bin:$PATH\n{check}\n"),
                0o755,
            );
        }
        Guest::Busybox => {
            o.file(
                "/etc/vmcreds-test/init.sh",
                format!(
                    "#!/bin/sh\necho @@VMCREDS-PROBE-BEGIN@@\necho '@@SECTION run'\n\
                     vmcreds-guest import --to /run/credentials/@system\necho \"import exit=$?\"\n\
                     ls -la /run/credentials/@system\n{check}\necho \"exit=$?\"\n\
                     echo @@VMCREDS-PROBE-END@@\n"
                ),
                0o755,
            );
        }
    }
    Ok(o)
}

/// Runs the boot scenario `name` on `generation` once; returns its outcome
/// and run directory (for `cargo xtask bench`, which reads the probe).
pub fn run_scenario(env: &Env, name: &str, generation: &str) -> Result<(Outcome, PathBuf)> {
    let s = scenarios::all()
        .into_iter()
        .find(|s| s.name == name)
        .with_context(|| format!("no scenario named {name}"))?;
    let base = image::systemd_base(&env.root, generation, &env.mirror)?;
    run_one(env, &s, generation, Some(&base))
}

fn run_one(
    env: &Env,
    s: &Scenario,
    generation: &str,
    base: Option<&BaseImage>,
) -> Result<(Outcome, PathBuf)> {
    let dir = run_dir(&env.root, s.name, generation)?;
    let creds = dir.join("credentials");
    write_credentials(s, &creds)?;
    let manifest = dir.join("manifest.json");
    let outcome = match &s.expect {
        Expect::HostRefuses(text) => host_refuses(env, s, &dir, &creds, &manifest, text),
        Expect::Verdict {
            host_exit,
            result,
            rows,
            report_mentions,
        } => {
            let base = base.context("no image for this generation")?;
            let guest = if generation == "busybox" {
                Guest::Busybox
            } else {
                Guest::Systemd
            };
            let o = overlay(env, s, guest)?;
            let ov = dir.join("overlay.cpio");
            o.pack(&dir.join("overlay"), &ov)?;
            let initrd = dir.join("initrd.img");
            image::concat_initrd(&[&base.cpio, &env.kernel.modules_cpio, &ov], &initrd)?;
            let mut extra: Vec<OsString> = Vec::new();
            for (name, data) in &s.fw_cfg {
                let f = dir.join(format!("fw_cfg-{name}"));
                fs::write(&f, data)?;
                extra.push("-fw_cfg".into());
                extra.push(
                    format!(
                        "name=opt/io.systemd.credentials/{},file={}",
                        vm::qemu_escape(name),
                        vm::qemu_escape(&f.to_string_lossy())
                    )
                    .into(),
                );
            }
            let spec = VmSpec {
                name: format!("{}-{generation}", s.name),
                kernel: env.kernel.vmlinuz.clone(),
                initrd,
                append: format!("quiet systemd.show_status=0 {}", s.append),
                machine: s.machine.into(),
                mem_mib: 512,
                kvm: env.kvm,
                extra,
                report_socket: Some(dir.join("report.sock")),
                run_dir: dir.clone(),
            };
            let exp = Expected {
                host_exit: *host_exit,
                result,
                rows,
                report_mentions,
            };
            boot_and_collect(env, s, &spec, &creds, &manifest, &exp).map(|(o, _)| o)
        }
    }?;
    Ok((with_leak_scan(outcome, s, &dir), dir))
}

/// Fails a run whose artifacts hold any of its secrets (raw, base64 or hex),
/// outside the intended delivery: see `leak.rs`.
fn with_leak_scan(outcome: Outcome, s: &Scenario, dir: &Path) -> Outcome {
    let mut secrets = secrets_of(&s.sources);
    secrets.extend(s.fw_cfg.iter().map(|(_, data)| data.as_slice()));
    let findings = leak::scan_run_dir(dir, &secrets);
    with_findings(outcome, findings, dir)
}

/// The secret values among `sources` (`--load`ed files; `--set` and `--oem` are public).
pub fn secrets_of(sources: &[Source]) -> Vec<&[u8]> {
    sources
        .iter()
        .filter_map(|src| match src {
            Source::Load { data, .. } => Some(data.as_slice()),
            _ => None,
        })
        .collect()
}

/// `outcome`, failed when the leak scan found anything.
pub fn with_findings(outcome: Outcome, findings: Vec<String>, dir: &Path) -> Outcome {
    match (findings.is_empty(), outcome) {
        (true, o) => o,
        (false, Outcome::Fail(m)) => {
            Outcome::Fail(format!("{m}; secret leak: {}", findings.join("; ")))
        }
        (false, _) => Outcome::Fail(format!(
            "secret leak: {} (logs in {})",
            findings.join("; "),
            dir.display()
        )),
    }
}

/// The expectation of a boot scenario.
pub struct Expected<'a> {
    /// `collect` exit code.
    pub host_exit: i32,
    /// `verified` / `failed`.
    pub result: &'a str,
    /// (name, status) rows.
    pub rows: &'a [(String, &'static str)],
    /// Strings the guest report must contain.
    pub report_mentions: &'a [&'static str],
}

/// What `collect` printed.
pub struct Collected {
    /// Its stdout (`--json`: the host verdict).
    pub stdout: String,
    /// The guest report it received (`--report-out`).
    pub report: String,
    /// Its exit code.
    pub exit: Option<i32>,
}

/// Boots through the host CLI with `collect` listening; returns the outcome and what collect
/// printed.
pub fn boot_and_collect(
    env: &Env,
    s: &Scenario,
    spec: &VmSpec,
    creds: &Path,
    manifest: &Path,
    exp: &Expected,
) -> Result<(Outcome, Collected)> {
    let dir = &spec.run_dir;
    let nothing = |msg: String| {
        Ok((
            Outcome::Fail(msg),
            Collected {
                stdout: String::new(),
                report: String::new(),
                exit: None,
            },
        ))
    };
    // Listener first: collect binds SOCK now and reads the manifest only once the report
    // has arrived, so QEMU's chardev finds the socket at start-up.
    let sock = spec
        .report_socket
        .clone()
        .context("a boot scenario needs a report socket")?;
    let report_out = dir.join("report.json");
    let mut ccmd = Command::new(&env.host);
    ccmd.arg("collect")
        .arg("--listen")
        .arg(format!("unix:{}", sock.display()))
        .arg("--manifest")
        .arg(manifest)
        .arg("--json")
        .arg("--timeout")
        .arg("600")
        .arg("--report-out")
        .arg(&report_out);
    let mut collect = Guarded::spawn_split(
        &format!("collect {}", spec.name),
        &mut ccmd,
        &dir.join("collect.json"),
        Some(&dir.join("collect.err")),
        vec![],
    )?;
    if !util::wait_until(Duration::from_secs(30), || {
        sock.exists() || matches!(collect.poll(), Ok(Some(_)))
    }) || !sock.exists()
    {
        let err = fs::read_to_string(dir.join("collect.err")).unwrap_or_default();
        return nothing(format!(
            "collect did not listen on {}: {}",
            sock.display(),
            err.trim()
        ));
    }
    let mut cmd = Command::new(&env.host);
    cmd.arg("qemu")
        .args(host_source_args(s))
        .arg("--manifest-out")
        .arg(manifest)
        .arg("--")
        .arg("qemu-system-x86_64")
        .args(spec.qemu_args())
        .env("CREDENTIALS_DIRECTORY", creds);
    fs::write(dir.join("host-argv.txt"), util::show(&cmd))?;
    let mut qemu = Guarded::spawn(
        &format!("vm {}", spec.name),
        &mut cmd,
        &dir.join("qemu.log"),
        vec![spec.console_log(), spec.probe_log()],
    )?;
    // The manifest appears before the host execs QEMU; a refusal ends the process instead.
    let appeared = util::wait_until(Duration::from_secs(30), || {
        manifest.exists() || matches!(qemu.poll(), Ok(Some(_)))
    });
    if !manifest.exists() {
        let log = fs::read_to_string(dir.join("qemu.log")).unwrap_or_default();
        let msg = if appeared {
            "host exited before writing the manifest"
        } else {
            "no manifest after 30 s"
        };
        return nothing(format!("{msg}: {}", log.trim()));
    }
    // A systemd guest reports within ~70 s here; a busybox guest within ~10 s.
    let vm_deadline = if s.guest == Guest::Busybox { 180 } else { 600 };
    let qst = qemu.wait_until(Instant::now() + Duration::from_secs(vm_deadline));
    // The guest has powered off; the report (if any) was written before that.
    let cst = collect.wait_until(Instant::now() + Duration::from_secs(20));
    let collected = Collected {
        stdout: fs::read_to_string(dir.join("collect.json")).unwrap_or_default(),
        report: fs::read_to_string(&report_out).unwrap_or_default(),
        exit: cst.as_ref().ok().and_then(|s| s.code()),
    };
    let mut problems = Vec::new();
    if let Err(e) = &qst {
        problems.push(format!("{e:#}"));
    }
    if let Err(e) = &cst {
        problems.push(format!("{e:#}"));
    }
    if problems.is_empty() {
        problems = compare(exp, &collected);
        let probe = fs::read(spec.probe_log()).unwrap_or_default();
        problems.extend(cvm_problems(&probe, &collected.report));
    }
    if problems.is_empty() {
        qemu.ok = true;
        collect.ok = true;
        // The initrd is a 35 MB copy of cached parts; a passing run does not need it kept.
        let _ = fs::remove_file(&spec.initrd);
        Ok((Outcome::Pass, collected))
    } else {
        Ok((
            Outcome::Fail(problems.join("; ") + &format!(" (logs in {})", dir.display())),
            collected,
        ))
    }
}

/// Where the guest's real `systemd-detect-virt --cvm` (the probe's `cvm` section; systemd
/// ≥ 254) says `none`, the check's `not_confidential_vm` precondition must say so too: the
/// check asks systemd only when CPUID leaves it something to find, and this holds that rule to
/// real systemd in every boot.
fn cvm_problems(probe: &[u8], report: &str) -> Vec<String> {
    let secs = vm::probe_sections(probe);
    let Some(said) = vm::section(&secs, "cvm").map(|l| l.join(" ").trim().to_owned()) else {
        return vec![]; // busybox, or no probe: nothing to compare with
    };
    if said != "none" {
        // systemd < 254 has no --cvm; a CVM cannot be made under TCG.
        return vec![];
    }
    let Ok(report) = serde_json::from_str::<Value>(report) else {
        return vec![]; // no report: compare() already said what is wrong
    };
    let pre = report["preconditions"]
        .as_array()
        .and_then(|v| v.iter().find(|p| p["check"] == "not_confidential_vm"));
    match pre {
        Some(p) if p["state"] == "ok" && p["detail"] == "no confidential VM detected" => vec![],
        Some(p) => vec![format!(
            "systemd-detect-virt --cvm says none, but the check's not_confidential_vm is {} ({})",
            p["state"], p["detail"]
        )],
        None => vec!["the report has no not_confidential_vm precondition".into()],
    }
}

/// Compares what `collect` said with the expectation; returns the differences.
pub fn compare(exp: &Expected, c: &Collected) -> Vec<String> {
    let mut p = Vec::new();
    if c.exit != Some(exp.host_exit) {
        p.push(format!(
            "collect exited {:?}, expected {}",
            c.exit, exp.host_exit
        ));
    }
    let v: Value = match serde_json::from_str(&c.stdout) {
        Ok(v) => v,
        Err(_) => {
            p.push("collect --json printed no JSON".into());
            return p;
        }
    };
    let result = v
        .get("result")
        .or_else(|| v.pointer("/verdict/result"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    if result != exp.result {
        p.push(format!("host verdict {result}, expected {}", exp.result));
    }
    let rows = v
        .get("rows")
        .or_else(|| v.pointer("/verdict/rows"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (name, status) in exp.rows {
        let got = rows
            .iter()
            .find(|r| r.get("name").and_then(Value::as_str) == Some(name.as_str()))
            .and_then(|r| r.get("status").and_then(Value::as_str));
        if !got.is_some_and(|g| status.split('|').any(|alt| alt == g)) {
            p.push(format!("{name}: status {got:?}, expected {status}"));
        }
    }
    for m in exp.report_mentions {
        if !c.report.contains(m) && !c.stdout.contains(m) {
            p.push(format!("guest report does not mention {m}"));
        }
    }
    p
}

/// What a host command that must refuse before any VM did (`host.out`, `host.err` and
/// `host-argv.txt` in the run directory).
pub(crate) struct HostRefusal {
    /// Its exit code.
    pub code: Option<i32>,
    /// What it printed for the hypervisor (nothing, when it refused).
    pub out: String,
    /// What it said.
    pub err: String,
    /// Prints the logs on drop unless the caller passes the run.
    pub guard: Guarded,
}

impl HostRefusal {
    /// Runs `cmd` (a `vmcreds-host` command line) in `dir`, for at most a minute.
    pub fn run(name: &str, cmd: &mut Command, dir: &Path) -> Result<HostRefusal> {
        fs::write(dir.join("host-argv.txt"), util::show(cmd))?;
        let mut guard = Guarded::spawn_split(
            &format!("host {name}"),
            cmd,
            &dir.join("host.out"),
            Some(&dir.join("host.err")),
            vec![],
        )?;
        let st = guard.wait_until(Instant::now() + Duration::from_secs(60))?;
        Ok(HostRefusal {
            code: st.code(),
            out: fs::read_to_string(dir.join("host.out")).unwrap_or_default(),
            err: fs::read_to_string(dir.join("host.err")).unwrap_or_default(),
            guard,
        })
    }

    /// What is wrong with it as a refusal that mentions `text`: an exit code other than 2,
    /// arguments printed for the hypervisor, an error that does not mention `text`.
    pub fn problems(&self, text: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.code != Some(2) {
            p.push(format!("host exited {:?}, expected 2", self.code));
        }
        if !self.out.trim().is_empty() {
            p.push("the host printed arguments for the hypervisor".into());
        }
        if !self.err.to_lowercase().contains(&text.to_lowercase()) {
            p.push(format!("host error does not mention {text:?}"));
        }
        p
    }

    /// Pass when `problems` is empty, else a failure quoting what the host said.
    pub fn outcome(&mut self, problems: &[String]) -> Outcome {
        if problems.is_empty() {
            self.guard.ok = true;
            Outcome::Pass
        } else {
            Outcome::Fail(format!(
                "{} (host said: {})",
                problems.join("; "),
                self.err.trim()
            ))
        }
    }
}

/// A host-refusal scenario: `vmcreds-host qemu` must exit 2 and never start the hypervisor.
fn host_refuses(
    env: &Env,
    s: &Scenario,
    dir: &Path,
    creds: &Path,
    manifest: &Path,
    text: &str,
) -> Result<Outcome> {
    let fake = dir.join("fakebin/qemu-system-x86_64");
    let marker = dir.join("hypervisor-started");
    util::write_file(
        &fake,
        format!(
            // Answers vmcreds-host's release check as a fixed QEMU would.
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'QEMU emulator version 10.2.0'; exit 0; fi\ntouch {}\n",
            shell_quote(&marker.to_string_lossy())
        )
        .as_bytes(),
    )?;
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755))?;
    let mut cmd = Command::new(&env.host);
    cmd.arg("qemu")
        .args(host_source_args(s))
        .arg("--manifest-out")
        .arg(manifest)
        .arg("--")
        .arg(&fake)
        .args(["-M", s.machine, "-nodefaults", "-display", "none"])
        .env("CREDENTIALS_DIRECTORY", creds);
    let mut r = HostRefusal::run(s.name, &mut cmd, dir)?;
    let mut p = r.problems(text);
    if marker.exists() {
        p.push("the hypervisor was started".into());
    }
    Ok(r.outcome(&p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_must_agree_with_real_systemd_on_confidential_vms() {
        let probe = |cvm: &str| {
            format!("@@VMCREDS-PROBE-BEGIN@@\n@@SECTION cvm\n{cvm}\n@@VMCREDS-PROBE-END@@\n")
                .into_bytes()
        };
        let report = |state: &str, detail: &str| {
            format!(
                r#"{{"preconditions":[{{"check":"not_confidential_vm","state":"{state}","detail":"{detail}"}}]}}"#
            )
        };
        let ok = report("ok", "no confidential VM detected");
        assert!(cvm_problems(&probe("none"), &ok).is_empty());
        let guessed = report("failed", "/proc/cpuinfo has flag sev");
        let p = cvm_problems(&probe("none"), &guessed);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("says none"), "{p:?}");
        assert_eq!(cvm_problems(&probe("none"), "{}").len(), 1);
        // 252 has no --cvm; nothing to compare with, and no probe at all.
        let old = probe("systemd-detect-virt: unrecognized option '--cvm'");
        assert!(cvm_problems(&old, &guessed).is_empty());
        assert!(cvm_problems(b"", &guessed).is_empty());
    }

    #[test]
    fn compare_reports_each_difference() {
        let rows = vec![("A".to_string(), "ok"), ("B".to_string(), "missing")];
        let exp = Expected {
            host_exit: 1,
            result: "failed",
            rows: &rows,
            report_mentions: &["import_credentials"],
        };
        let good = Collected {
            stdout: r#"{"result":"failed","rows":[{"name":"A","status":"ok"},{"name":"B","status":"missing"}]}"#.into(),
            report: "... import_credentials ...".into(),
            exit: Some(1),
        };
        assert!(compare(&exp, &good).is_empty());
        let bad = Collected {
            stdout: r#"{"result":"verified","rows":[{"name":"A","status":"ok"}]}"#.into(),
            report: String::new(),
            exit: Some(0),
        };
        let p = compare(&exp, &bad);
        assert_eq!(p.len(), 4, "{p:?}");
    }

    #[test]
    fn host_args_keep_source_order() {
        let s = &scenarios::all()[0];
        let a: Vec<String> = host_source_args(s)
            .iter()
            .map(|x| x.to_string_lossy().into_owned())
            .collect();
        assert_eq!(a[0], "--load");
        assert_eq!(a[1], "API_KEY:host-api-key");
        assert!(a.contains(&"ENVIRONMENT=test".to_string()));
    }
}
