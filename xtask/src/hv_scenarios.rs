//! The cloud-hypervisor scenarios of `cargo xtask test` (`ch-…` in the summary), run on a
//! binary the user gives, where it can run (`nested.rs`): the project's host CLI delivers the
//! credentials to real cloud-hypervisor in each of its modes, a real guest (busybox through
//! `vmcreds-guest import`, or real systemd with `vmcreds-check.service`) reports over
//! cloud-hypervisor's hybrid vsock, and `vmcreds-host collect` says whether everything
//! arrived. A few scenarios only need the host CLI and the binary (a refusal before any VM).
//!
//! In the job, the VMM side of the guest's vsock is `$RUN/vsock`: the guest's report to
//! `vsock:2:9999` reaches `collect` listening on `$RUN/vsock_9999`, and a notify peer on
//! `vsock-stream:2:8888` is `vsock-listen` on `$RUN/vsock_8888`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::hv;
use crate::image::{self, Overlay};
use crate::leak::{self, Treat};
use crate::nested::{self, Job, Placement};
use crate::scenarios::{reference_sources, test_bytes, Expect, Source};
use crate::test::{self, shell_quote, Collected, Env, Expected, Outcome};
use crate::util::{self, mkdirp};
use crate::vm;

/// How the host hands the credentials to cloud-hypervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `vmcreds-host cloud-hypervisor --api-socket … --vm-config …`: `vm.create` + `vm.boot`.
    Api,
    /// `--format arg`: one `--platform` value on cloud-hypervisor's command line.
    Argv,
    /// `--fw-cfg --runtime-dir DIR`: files and one `--fw-cfg-config` (a `fw_cfg` build).
    FwCfg,
    /// microvm.nix's runner command (as evaluated from upstream), run by bash, with the fw_cfg
    /// route as its `extraArgsScript` (a `fw_cfg` build).
    MicrovmNix,
    /// No VM: the host must refuse before anything starts.
    HostOnly,
    /// No host CLI: cloud-hypervisor itself is given one `--platform oem_strings=[…]` making
    /// a Type 11 structure of exactly this many bytes, and the guest shows what arrived (the
    /// measurement behind the host's budget).
    Window(usize),
}

impl Mode {
    /// The name recorded in ground truth.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Api => "api",
            Mode::Argv => "argv",
            Mode::FwCfg => "fw_cfg",
            Mode::MicrovmNix => "microvm_nix",
            Mode::HostOnly => "host_only",
            Mode::Window(_) => "window",
        }
    }

    /// Needs a cloud-hypervisor built with its `fw_cfg` cargo feature.
    pub fn needs_fw_cfg(self) -> bool {
        matches!(self, Mode::FwCfg | Mode::MicrovmNix)
    }

    /// The credentials are on the VMM's command line by design (the host warns).
    fn argv_carries_secrets(self) -> bool {
        self == Mode::Argv
    }
}

/// One scenario.
#[derive(Debug, Clone)]
pub struct HvScenario {
    /// Name in the summary and for `--only`.
    pub name: &'static str,
    /// One line for people.
    pub about: &'static str,
    /// The delivery.
    pub mode: Mode,
    /// Guests: `busybox` or systemd generations (`host` for a host-only scenario).
    pub generations: &'static [&'static str],
    /// Host sources, in order.
    pub sources: Vec<Source>,
    /// Extra host flags.
    pub host_flags: Vec<String>,
    /// The guest's check unit runs with `--notify`, and a peer on the notify port reads each
    /// message to EOF and closes, as microvm.nix's forwarder does, except that it holds a
    /// connection carrying vmcreds' `STATUS=` line open this many seconds.
    pub notify_hold: Option<u32>,
    /// The expectation.
    pub expect: Expect,
}

/// The notify port microvm.nix's runner uses (`vmm.notify_socket=vsock-stream:2:8888`).
const NOTIFY_PORT: u32 = 8888;
/// The report port of every scenario.
const REPORT_PORT: u32 = 9999;
/// Every guest of the matrix.
const ALL_GUESTS: &[&str] = &["busybox", "bookworm", "trixie", "sid"];

pub(crate) fn set(name: &str, value: &str) -> Source {
    Source::Set(name.into(), value.into())
}

pub(crate) fn verified(names: &[&str]) -> Expect {
    Expect::Verdict {
        host_exit: 0,
        result: "verified",
        rows: names.iter().map(|n| (n.to_string(), "ok")).collect(),
        report_mentions: vec![],
    }
}

pub(crate) const REFERENCE_NAMES: &[&str] = &[
    "API_KEY",
    "DB_PASSWORD",
    "JWT_SECRET",
    "ENVIRONMENT",
    "CLUSTER",
];

/// The largest Type 11 structure the host lets through to cloud-hypervisor.
fn budget_bytes() -> usize {
    vmcreds_host::hv::cloud_hypervisor::BUDGET
        .max_type11_bytes
        .expect("cloud-hypervisor's budget is bounded")
}

/// The largest Type 11 structure measured to arrive whole under cloud-hypervisor (v53.0).
const WINDOW_FITS: usize = vmcreds_host::hv::cloud_hypervisor::MEASURED_TYPE11_MAX;

/// Host flags of the budget scenarios: text encoding (the value's bytes are the string's),
/// no manifest, a guest systemd that reads the whole entry.
pub(crate) fn budget_flags() -> Vec<String> {
    [
        "--encoding",
        "text",
        "--guest-systemd",
        "257",
        "--no-manifest",
    ]
    .map(String::from)
    .to_vec()
}

/// `n` strings `io.systemd.credential:SNNN=x`, with the flags that keep the count exact.
pub(crate) fn many(n: usize) -> (Vec<Source>, Vec<String>) {
    (
        (0..n).map(|i| set(&format!("S{i:03}"), "x")).collect(),
        ["--guest-systemd", "257", "--no-manifest"]
            .map(String::from)
            .to_vec(),
    )
}

/// Strings of `io.systemd.credential:LNN=fff…` whose Type 11 structure is exactly `structure`
/// bytes (16 strings of about 4 KiB, as the measurement used).
fn window_strings(structure: usize) -> Vec<String> {
    let n = 16;
    // 5 (header) + Σ(len + 1) + 1 (final NUL) = structure.
    let total = structure - 6 - n;
    let prefix = |i: usize| format!("io.systemd.credential:L{i:02}=");
    let fixed: usize = (0..n).map(|i| prefix(i).len()).sum();
    let fill = total - fixed;
    (0..n)
        .map(|i| {
            let len = fill / n + usize::from(i < fill % n);
            format!("{}{}", prefix(i), "f".repeat(len))
        })
        .collect()
}

/// One `--set BIG=…` text credential whose Type 11 structure (header, the string and its NUL,
/// the final NUL) is exactly `structure` bytes.
pub(crate) fn one_string_structure(structure: usize) -> Source {
    let fixed = 5 + b"io.systemd.credential:BIG=".len() + 1 + 1;
    set("BIG", &"b".repeat(structure - fixed))
}

/// Every cloud-hypervisor scenario.
pub fn all() -> Vec<HvScenario> {
    let base = |name, about, mode, generations| HvScenario {
        name,
        about,
        mode,
        generations,
        sources: reference_sources(),
        host_flags: vec![],
        notify_hold: None,
        expect: verified(REFERENCE_NAMES),
    };
    let big = test_bytes("big-40k", 40 * 1024);
    vec![
        base(
            "ch-api",
            "API mode (vm.create + vm.boot): no secret on any command line, report over vsock",
            Mode::Api,
            ALL_GUESTS,
        ),
        base(
            "ch-argv",
            "argv mode: one --platform value that cloud-hypervisor's parser carries unchanged",
            Mode::Argv,
            ALL_GUESTS,
        ),
        base(
            "ch-fw-cfg",
            "fw_cfg mode: 0400 files and one --fw-cfg-config (paths only on the command line)",
            Mode::FwCfg,
            ALL_GUESTS,
        ),
        HvScenario {
            notify_hold: Some(120),
            sources: {
                let mut s = reference_sources();
                s.push(Source::Oem(format!(
                    "io.systemd.credential:vmm.notify_socket=vsock-stream:2:{NOTIFY_PORT}"
                )));
                s
            },
            ..base(
                "ch-notify",
                "check --notify to vmm.notify_socket: PID 1's messages are read and closed (as \
                 microvm.nix's forwarder does), vmcreds' own is held 120 s, and neither PID 1 nor \
                 the check unit waits",
                Mode::Argv,
                &["trixie", "sid"],
            )
        },
        HvScenario {
            sources: many(255).0,
            host_flags: many(255).1,
            expect: verified(&["S000", "S127", "S254"]),
            ..base(
                "ch-limit-255",
                "255 strings, the most one Type 11 structure counts: all arrive",
                Mode::Argv,
                &["trixie"],
            )
        },
        HvScenario {
            sources: many(256).0,
            host_flags: many(256).1,
            expect: Expect::HostRefuses("255"),
            ..base(
                "ch-refuse-256",
                "256 strings: refused before cloud-hypervisor starts (its count byte would wrap)",
                Mode::HostOnly,
                &["host"],
            )
        },
        HvScenario {
            sources: vec![one_string_structure(budget_bytes())],
            host_flags: budget_flags(),
            expect: verified(&["BIG"]),
            ..base(
                "ch-limit-budget",
                "a Type 11 structure of exactly the host's cloud-hypervisor budget arrives whole",
                Mode::Argv,
                &["busybox"],
            )
        },
        HvScenario {
            sources: vec![one_string_structure(budget_bytes() + 1)],
            host_flags: budget_flags(),
            expect: Expect::HostRefuses("cloud-hypervisor can carry"),
            ..base(
                "ch-refuse-over-budget",
                "one byte over the budget: refused before cloud-hypervisor starts",
                Mode::HostOnly,
                &["host"],
            )
        },
        HvScenario {
            sources: vec![],
            expect: Expect::HostRefuses(""),
            ..base(
                "ch-window-fits",
                "cloud-hypervisor itself, given a Type 11 structure of 65404 bytes (its SMBIOS \
                 area then ends at 1 MiB): the guest reads it whole",
                Mode::Window(WINDOW_FITS),
                &["busybox"],
            )
        },
        HvScenario {
            sources: vec![],
            expect: Expect::HostRefuses(""),
            ..base(
                "ch-window-over",
                "one byte more: the guest has no DMI at all, and cloud-hypervisor says nothing",
                Mode::Window(WINDOW_FITS + 1),
                &["busybox"],
            )
        },
        HvScenario {
            sources: vec![
                set("SMALL", "fits-in-the-first-page"),
                Source::Load {
                    name: "BIG".into(),
                    file: "big".into(),
                    data: big,
                },
            ],
            host_flags: vec!["--guest-systemd".into(), "257".into()],
            expect: Expect::Verdict {
                host_exit: 1,
                result: "failed",
                rows: vec![("BIG".into(), "missing|mismatch|rejected")],
                report_mentions: vec![],
            },
            ..base(
                "ch-loss-252-4k",
                "forced past the host's check onto systemd 252: the 40 KiB value is lost or cut, \
                 and the verdict says so",
                Mode::Argv,
                &["bookworm"],
            )
        },
        HvScenario {
            expect: Expect::HostRefuses("fw_cfg cargo feature"),
            ..base(
                "ch-refuse-no-fw-cfg",
                "--fw-cfg with a cloud-hypervisor built without its fw_cfg feature: refused, \
                 naming the binary and its version",
                Mode::HostOnly,
                &["host"],
            )
        },
        base(
            "ch-microvm-nix",
            "microvm.nix's cloud-hypervisor runner command, run by bash, with vmcreds' fw_cfg \
             route as its extraArgsScript: no patched runner, no secret on argv",
            Mode::MicrovmNix,
            &["trixie"],
        ),
    ]
}

/// What the cloud-hypervisor runs share.
pub struct HvEnv<'a> {
    /// The QEMU tier's environment (root, kernel, binaries, mirror).
    pub env: &'a Env,
    /// The default build.
    pub ch: hv::Binary,
    /// A build with the `fw_cfg` feature (the default build when it has it).
    pub ch_fw_cfg: Option<hv::Binary>,
    /// Where the VMM runs.
    pub placement: Placement,
    /// vmcreds-host, static (it runs in the outer guest).
    pub host_static: PathBuf,
    /// The notify peer.
    pub vsock_listen: PathBuf,
}

impl<'a> HvEnv<'a> {
    /// Finds the binaries and decides the placement.
    pub fn prepare(env: &'a Env, ch: hv::Binary, fw_flag: Option<&Path>) -> Result<Self> {
        let ch_fw_cfg = if ch.fw_cfg {
            Some(ch.clone())
        } else {
            let named = fw_flag
                .map(Path::to_path_buf)
                .or_else(|| std::env::var_os("CLOUD_HYPERVISOR_FW_CFG").map(PathBuf::from));
            match named {
                Some(p) => Some(hv::inspect(hv::Kind::CloudHypervisor, &p)?),
                None => None,
            }
        };
        if let Some(b) = &ch_fw_cfg {
            if !b.fw_cfg {
                bail!(
                    "{} ({}) was given as the fw_cfg build, but its --help has no --fw-cfg-config",
                    b.path.display(),
                    b.version
                );
            }
        }
        let placement = nested::placement(&env.root, &env.kernel, &ch);
        Ok(HvEnv {
            env,
            ch,
            ch_fw_cfg,
            placement,
            host_static: nested::static_host_binary(&env.root)?,
            vsock_listen: nested::vsock_listen(&env.root)?,
        })
    }
}

/// What one run left, for the summary and for ground truth.
pub struct Ran {
    /// Scenario name.
    pub scenario: &'static str,
    /// Guest.
    pub generation: String,
    /// The outcome.
    pub outcome: Outcome,
    /// Its run directory (`out/` holds what the job wrote).
    pub dir: PathBuf,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs one scenario on one guest.
pub fn run_one(h: &HvEnv, s: &HvScenario, generation: &str) -> Ran {
    timed_run(&h.env.root, s.name, generation, |dir| {
        run_in(h, s, generation, dir)
    })
}

/// `run` in a fresh run directory for `scenario` on `generation`, timed; an error is the
/// run's failure.
pub(crate) fn timed_run(
    root: &Path,
    scenario: &'static str,
    generation: &str,
    run: impl FnOnce(&Path) -> Result<Outcome>,
) -> Ran {
    let t = Instant::now();
    let (outcome, dir) = match test::run_dir(root, scenario, generation) {
        Ok(dir) => {
            let o = run(&dir).unwrap_or_else(|e| Outcome::Fail(format!("{e:#}")));
            (o, dir)
        }
        Err(e) => (Outcome::Fail(format!("{e:#}")), PathBuf::new()),
    };
    Ran {
        scenario,
        generation: generation.to_string(),
        outcome,
        dir,
        elapsed: t.elapsed(),
    }
}

fn run_in(h: &HvEnv, s: &HvScenario, generation: &str, dir: &Path) -> Result<Outcome> {
    let vmm = if s.mode.needs_fw_cfg() {
        h.ch_fw_cfg.as_ref().with_context(|| {
            format!(
                "{} needs a cloud-hypervisor built with its fw_cfg cargo feature; {} ({}) lacks \
                 it: give one with --cloud-hypervisor-fw-cfg or CLOUD_HYPERVISOR_FW_CFG",
                s.name,
                h.ch.path.display(),
                h.ch.version
            )
        })?
    } else {
        &h.ch
    };
    if s.mode == Mode::HostOnly {
        let Expect::HostRefuses(text) = &s.expect else {
            bail!("{}: a host-only scenario must expect a refusal", s.name);
        };
        return host_refuses(h, s, dir, text);
    }
    let window = match s.mode {
        Mode::Window(bytes) => Some(bytes),
        _ => None,
    };
    let job = Job {
        name: format!("{}-{generation}", s.name),
        run_dir: dir.to_path_buf(),
        deadline: Duration::from_secs(if generation == "busybox" { 240 } else { 600 }),
    };
    let jd = job.dir();
    mkdirp(&jd.join("inner"))?;
    test::write_credential_files(&s.sources, &jd.join("creds"))?;
    nested::add_binary(&jd, &vmm.path, "cloud-hypervisor")?;
    nested::add_binary(&jd, &h.host_static, "vmcreds-host")?;
    nested::add_binary(&jd, &h.vsock_listen, "vsock-listen")?;
    if s.mode == Mode::MicrovmNix {
        nested::add_binary(&jd, Path::new("/bin/bash"), "bash")?;
    }
    fs::copy(&h.env.kernel.vmlinuz, jd.join("inner/vmlinuz"))?;
    if let Some(bytes) = window {
        fs::write(
            jd.join("platform.arg"),
            format!("oem_strings=[{}]", window_strings(bytes).join(",")),
        )?;
    }
    inner_initrd(h, s, generation, dir, &jd.join("inner/initrd.img"))?;
    let mem_mib = if generation == "busybox" { 512 } else { 1024 };
    fs::write(jd.join("scenario.sh"), script(s, generation, mem_mib))?;
    let finished = nested::run_retrying(&h.env.root, &h.env.kernel, h.placement, &job);
    let mut finished = match finished {
        Ok(f) => f,
        Err(e) => {
            let o = Outcome::Fail(format!("{e:#} (run directory {})", dir.display()));
            return Ok(leak_checked(o, s, dir));
        }
    };
    let out = &finished.out;
    let mut problems = Vec::new();
    if !finished.completed {
        problems.push("the job did not run to its end".to_string());
    }
    if let Some(bytes) = window {
        problems.extend(window_problems(out, bytes));
    }
    let host_rc = fs::read_to_string(out.join("host.rc")).unwrap_or_default();
    if window.is_none() && host_rc.trim() != "0" {
        problems.push(format!(
            "vmcreds-host exited {:?}: {}",
            host_rc.trim(),
            fs::read_to_string(out.join("host.err"))
                .unwrap_or_default()
                .trim()
        ));
    }
    problems.extend(verdict_problems(&s.expect, out, "collect"));
    if let Some(hold) = s.notify_hold {
        problems.extend(notify_problems(out, hold));
    }
    let outcome = finished.outcome(&problems);
    Ok(leak_checked(outcome, s, dir))
}

/// How the host's verdict in `out` (`NAME.json`, `NAME.rc`, with the guest's `report.json`)
/// differs from `expect`; nothing when the scenario expects no verdict.
pub(crate) fn verdict_problems(expect: &Expect, out: &Path, name: &str) -> Vec<String> {
    let Expect::Verdict {
        host_exit,
        result,
        rows,
        report_mentions,
    } = expect
    else {
        return vec![];
    };
    let read = |f: &str| fs::read_to_string(out.join(f)).unwrap_or_default();
    let collected = Collected {
        stdout: read(&format!("{name}.json")),
        report: read("report.json"),
        exit: read(&format!("{name}.rc")).trim().parse().ok(),
    };
    test::compare(
        &Expected {
            host_exit: *host_exit,
            result,
            rows,
            report_mentions,
        },
        &collected,
    )
}

/// What the guest saw of a window structure: the whole entry when it fits the measured
/// window, no DMI at all one byte over it.
fn window_problems(out: &Path, bytes: usize) -> Vec<String> {
    let probe = fs::read(out.join("inner-probe.log")).unwrap_or_default();
    if !vm::probe_complete(&probe) {
        return vec!["the guest's probe did not finish".into()];
    }
    let secs = vm::probe_sections(&probe);
    let raw = vm::section(&secs, "type11-raw").unwrap_or(&[]);
    let sizes: Vec<&str> = raw
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    let kernel = vm::section(&secs, "kernel-dmi").unwrap_or(&[]).join(" | ");
    let mut p = Vec::new();
    if bytes <= WINDOW_FITS {
        if sizes != [bytes.to_string().as_str()] {
            p.push(format!(
                "expected one 11-0 entry of {bytes} bytes, the guest read {sizes:?}"
            ));
        }
    } else if !sizes.is_empty() || !kernel.contains("Firmware registration failed") {
        p.push(format!(
            "expected no DMI in the guest, it read entries {sizes:?} (kernel: {kernel})"
        ));
    }
    p
}

/// The notify peer got the check's `STATUS=` line, and the check unit finished long before
/// the peer let go of the connection.
fn notify_problems(out: &Path, hold: u32) -> Vec<String> {
    let mut p = Vec::new();
    let got: Vec<String> = (0..256)
        .filter_map(|n| fs::read(out.join(format!("notify.{n}"))).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect();
    if !got.iter().any(|m| m.contains("STATUS=vmcreds")) {
        p.push(format!(
            "the notify peer received no STATUS=vmcreds line ({} connection(s))",
            got.len()
        ));
    }
    let probe = fs::read(out.join("inner-probe.log")).unwrap_or_default();
    let secs = vm::probe_sections(&probe);
    let unit = vm::section(&secs, "check-unit")
        .map(|l| l.join(" "))
        .unwrap_or_default();
    if !unit.contains("ActiveState=active") || !unit.contains("Result=success") {
        p.push(format!("vmcreds-check.service did not succeed: {unit}"));
    }
    let timing = vm::section(&secs, "timing").unwrap_or(&[]).join(" ");
    let stamp = |key: &str| -> Option<u64> {
        timing
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
    };
    match (
        stamp("InactiveExitTimestampMonotonic="),
        stamp("ActiveEnterTimestampMonotonic="),
    ) {
        (Some(a), Some(b)) if b >= a && b - a < u64::from(hold) * 1_000_000 / 2 => {}
        (a, b) => p.push(format!(
            "the check unit's activation ({a:?} → {b:?} µs) is not well inside the peer's \
             {hold} s hold"
        )),
    }
    p
}

/// `outcome`, failed when any file the job left holds a secret outside its delivery.
fn leak_checked(outcome: Outcome, s: &HvScenario, dir: &Path) -> Outcome {
    let host_only = s.mode == Mode::HostOnly;
    job_leak_checked(outcome, &s.sources, dir, host_only, |out, rel| {
        // In argv mode the VMM's command line carries the strings by design; which pids were
        // the VMM is in the `comm` files beside each snapshot.
        let vmm_cmdline = || -> bool {
            let Some(stem) = rel.strip_suffix(".cmdline") else {
                return false;
            };
            fs::read_to_string(out.join(format!("{stem}.comm")))
                .is_ok_and(|c| c.trim().starts_with("cloud-hypervis"))
        };
        match rel {
            // The delivery itself: the --platform value the host printed.
            "host.out" if s.mode == Mode::Argv => Treat::Skip,
            _ if rel.ends_with("inner-probe.log") => Treat::Probe,
            // microvm.nix's runner has no console: the probe shares the kernel's.
            "inner-console.log" if s.mode == Mode::MicrovmNix => Treat::Probe,
            _ if s.mode.argv_carries_secrets() && vmm_cmdline() => Treat::Skip,
            _ => Treat::Whole,
        }
    })
}

/// `outcome`, failed when a file a nested job left (in `out/`, and in `first-try-out/` when
/// it was tried twice) holds one of the secrets of `sources`, read as `treat(out, path)`
/// says, or when a job that had a secret long enough to find left no process snapshot. A
/// host-only run (`host_only`) is judged on what the host printed and was run with.
pub(crate) fn job_leak_checked(
    outcome: Outcome,
    sources: &[Source],
    dir: &Path,
    host_only: bool,
    treat: impl Fn(&Path, &str) -> Treat,
) -> Outcome {
    let secrets = test::secrets_of(sources);
    if host_only {
        // The credential files are the input.
        let (findings, _) = leak::scan_tree(dir, &secrets, |rel| {
            if rel.starts_with("host") {
                Treat::Whole
            } else {
                Treat::Skip
            }
        });
        return test::with_findings(outcome, findings, dir);
    }
    let mut findings = Vec::new();
    for attempt in ["out", "first-try-out"] {
        let out = dir.join(attempt);
        if !out.exists() {
            continue;
        }
        let (found, scanned) = leak::scan_tree(&out, &secrets, |rel| treat(&out, rel));
        findings.extend(found.into_iter().map(|f| format!("{attempt}/{f}")));
        let snapshots = out.join("procs");
        if secrets.iter().any(|x| x.len() >= leak::MIN_SECRET_LEN) {
            let n = fs::read_dir(&snapshots).map(|r| r.count()).unwrap_or(0);
            if n == 0 || scanned == 0 {
                findings.push(format!(
                    "no process snapshot to scan in {} ({scanned} files scanned)",
                    snapshots.display()
                ));
            }
        }
    }
    test::with_findings(outcome, findings, dir)
}

/// Quoted host source arguments for the job's shell script.
fn quoted_sources(s: &HvScenario) -> String {
    test::source_args(&s.sources, &s.host_flags)
        .iter()
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The guest's kernel command line (`vmcreds.probe_tty=hvc0`: the probe writes to the virtio
/// console, the kernel to ttyS0; microvm.nix's runner has no console, so there the probe
/// shares ttyS0).
fn inner_cmdline(generation: &str, mode: Mode) -> String {
    let quiet = if generation == "busybox" {
        "quiet"
    } else {
        "quiet systemd.show_status=0"
    };
    let tty = if mode == Mode::MicrovmNix {
        "ttyS0"
    } else {
        "hvc0"
    };
    format!("console=ttyS0 panic=-1 {quiet} vmcreds.probe_tty={tty}")
}

/// The job script of `s` on `generation`.
fn script(s: &HvScenario, generation: &str, mem_mib: u32) -> String {
    let cmdline = inner_cmdline(generation, s.mode);
    let sources = quoted_sources(s);
    let mut sh = format!(
        r#". "$IN/lib.sh"
CH=$IN/bin/cloud-hypervisor
export CREDENTIALS_DIRECTORY=$IN/creds
cd "$RUN"
mark "{name} on {generation}"
"#,
        name = s.name
    );
    let inner = format!(
        r#"--kernel "$IN/inner/vmlinuz" --initramfs "$IN/inner/initrd.img" --cmdline '{cmdline}' --cpus boot=1 --memory size={mem_mib}M --serial "file=$OUT/inner-console.log" --console "file=$OUT/inner-probe.log" --vsock "cid=3,socket=$RUN/vsock""#
    );
    if let Some(hold) = s.notify_hold {
        sh.push_str(&format!(
            "vsock-listen \"$RUN/vsock_{NOTIFY_PORT}\" \"$OUT/notify\" 256 {hold} 300 STATUS=vmcreds 2> \"$OUT/notify.err\" &\nNOTIFY=$!\n"
        ));
    }
    // The VMM runs in the background with a deadline of its own (a killer, so that no
    // wrapper process repeats its arguments), and every process is snapshotted while it runs.
    let vmm_wait = r#"VMM=$!
( sleep 480; kill -9 $VMM 2>/dev/null ) &
KILLER=$!
snapshot_procs_while $VMM
wait $VMM; echo $? > "$OUT/vmm.rc"; mark "cloud-hypervisor exited rc=$(cat "$OUT/vmm.rc")"
kill $KILLER 2>/dev/null
checkpoint
"#;
    let manifest = r#""$OUT/manifest.json""#;
    match s.mode {
        Mode::Api => {
            let bytes = u64::from(mem_mib) << 20;
            sh.push_str(&format!(
                r#"start_collect "$RUN/vsock_{REPORT_PORT}" {manifest}
cat > "$OUT/vm.json" <<EOF
{{"payload": {{"kernel": "$IN/inner/vmlinuz", "initramfs": "$IN/inner/initrd.img", "cmdline": "{cmdline}"}},
 "cpus": {{"boot_vcpus": 1, "max_vcpus": 1}}, "memory": {{"size": {bytes}}},
 "serial": {{"mode": "File", "file": "$OUT/inner-console.log"}},
 "console": {{"mode": "File", "file": "$OUT/inner-probe.log"}},
 "vsock": {{"cid": 3, "socket": "$RUN/vsock"}}}}
EOF
"$CH" --api-socket "path=$RUN/api.sock" > "$OUT/vmm.out" 2> "$OUT/vmm.err" &
{vmm_wait_head}wait_sock "$RUN/api.sock" || mark "no API socket"
echo "vmcreds-host cloud-hypervisor --cloud-hypervisor \$CH --api-socket \$RUN/api.sock --vm-config \$OUT/vm.json {sources} --manifest-out \$OUT/manifest.json" > "$OUT/host.argv"
"$VH" cloud-hypervisor --cloud-hypervisor "$CH" --api-socket "$RUN/api.sock" --vm-config "$OUT/vm.json" {sources} --manifest-out {manifest} > "$OUT/host.out" 2> "$OUT/host.err"
echo $? > "$OUT/host.rc"; mark "vmcreds-host exited rc=$(cat "$OUT/host.rc")"
dump_procs "$OUT/procs/0"
{vmm_wait_tail}"#,
                vmm_wait_head = "VMM=$!\n( sleep 480; kill -9 $VMM 2>/dev/null ) &\nKILLER=$!\nsnapshot_procs_while $VMM\n",
                vmm_wait_tail = "wait $VMM; echo $? > \"$OUT/vmm.rc\"; mark \"cloud-hypervisor exited rc=$(cat \"$OUT/vmm.rc\")\"\nkill $KILLER 2>/dev/null\ncheckpoint\n",
            ));
        }
        Mode::Argv => {
            sh.push_str(&format!(
                r#"start_collect "$RUN/vsock_{REPORT_PORT}" {manifest}
echo "vmcreds-host cloud-hypervisor --cloud-hypervisor \$CH {sources} --manifest-out \$OUT/manifest.json --format arg" > "$OUT/host.argv"
"$VH" cloud-hypervisor --cloud-hypervisor "$CH" {sources} --manifest-out {manifest} --format arg > "$OUT/host.out" 2> "$OUT/host.err"
echo $? > "$OUT/host.rc"; mark "vmcreds-host exited rc=$(cat "$OUT/host.rc")"
P=$(sed -n 2p "$OUT/host.out")
"$CH" {inner} --platform "$P" > "$OUT/vmm.out" 2> "$OUT/vmm.err" &
{vmm_wait}"#
            ));
        }
        Mode::FwCfg => {
            sh.push_str(&format!(
                r#"start_collect "$RUN/vsock_{REPORT_PORT}" {manifest}
mkdir -p "$RUN/fw-cfg"
echo "vmcreds-host cloud-hypervisor --cloud-hypervisor \$CH --fw-cfg --runtime-dir \$RUN/fw-cfg {sources} --manifest-out \$OUT/manifest.json" > "$OUT/host.argv"
"$VH" cloud-hypervisor --cloud-hypervisor "$CH" --fw-cfg --runtime-dir "$RUN/fw-cfg" {sources} --manifest-out {manifest} > "$OUT/host.out" 2> "$OUT/host.err"
echo $? > "$OUT/host.rc"; mark "vmcreds-host exited rc=$(cat "$OUT/host.rc")"
ls -laR "$RUN/fw-cfg" > "$OUT/fw-cfg-files.ls"
"$CH" {inner} $(cat "$OUT/host.out") > "$OUT/vmm.out" 2> "$OUT/vmm.err" &
{vmm_wait}"#
            ));
        }
        Mode::MicrovmNix => sh.push_str(&microvm_nix(&sources, &cmdline)),
        Mode::HostOnly => {}
        Mode::Window(_) => {
            sh.push_str(&format!(
                r#""$CH" {inner} --platform "$(cat "$IN/platform.arg")" > "$OUT/vmm.out" 2> "$OUT/vmm.err" &
{vmm_wait}"#
            ));
            return sh;
        }
    }
    sh.push_str("wait_collect\n");
    if s.notify_hold.is_some() {
        sh.push_str("kill $NOTIFY 2>/dev/null\n");
    }
    sh.push_str("checkpoint\n");
    sh
}

/// microvm.nix's cloud-hypervisor runner (`lib/runners/cloud-hypervisor.nix` at 71beea0, as
/// evaluated with nixpkgs' real lib: `shared/reference/measured-2026-12.md`), store paths
/// substituted, run the way `microvm-run` runs it: bash, `set -eou pipefail`,
/// `runtime_args=$(extraArgsScript)`, `exec COMMAND ${runtime_args:-}` (unquoted: word
/// splitting and globbing apply). The extraArgsScript is vmcreds' fw_cfg route.
fn microvm_nix(sources: &str, cmdline: &str) -> String {
    // The runner's own command line, with microvm.nix's notify string in its --platform.
    let command = format!(
        r#"$IN/bin/cloud-hypervisor --cpus 'boot=2' --watchdog --kernel $IN/inner/vmlinuz --initramfs $IN/inner/initrd.img --cmdline 'earlyprintk=ttyS0 {cmdline} reboot=t root=/dev/vda' --seccomp true --memory 'mergeable=on,shared=off,size=1024M' --platform 'oem_strings=[io.systemd.credential:ENVIRONMENT=test,io.systemd.credential:vmm.notify_socket=vsock-stream:2:{NOTIFY_PORT}],serial_number=abc' --console null --serial tty --vsock 'cid=3,socket=notify.vsock' --disk 'num_queues=2,path=store.img,readonly=on' --api-socket vm1.sock"#
    );
    format!(
        r#"mkdir -p "$RUN/mvm" "$RUN/fw-cfg"
cd "$RUN/mvm"
truncate -s 16M store.img
cat > extra-args-script <<EOF
#!/bin/sh
exec "$VH" cloud-hypervisor --cloud-hypervisor "$IN/bin/cloud-hypervisor" --fw-cfg --runtime-dir "$RUN/fw-cfg" {sources} --manifest-out "$OUT/manifest.json" 2> "$OUT/host.err"
EOF
chmod 0755 extra-args-script
cat > microvm-run <<EOF
#! $IN/bin/bash
set -eou pipefail
runtime_args=\$($RUN/mvm/extra-args-script)
exec {command} \${{runtime_args:-}}
EOF
chmod 0755 microvm-run
cp microvm-run extra-args-script "$OUT/"
# microvm.nix's preStart forwards notify.vsock_{NOTIFY_PORT} to the host's notify socket.
vsock-listen "$RUN/mvm/notify.vsock_{NOTIFY_PORT}" "$OUT/notify" 256 0 300 2> "$OUT/notify.err" &
NOTIFY=$!
start_collect "$RUN/mvm/notify.vsock_{REPORT_PORT}" "$OUT/manifest.json"
echo "microvm-run (see microvm-run, extra-args-script)" > "$OUT/host.argv"
"$IN/bin/bash" ./microvm-run > "$OUT/inner-console.log" 2> "$OUT/vmm.err" &
VMM=$!
( sleep 480; kill -9 $VMM 2>/dev/null ) &
KILLER=$!
snapshot_procs_while $VMM
wait $VMM; echo $? > "$OUT/vmm.rc"; mark "microvm-run exited rc=$(cat "$OUT/vmm.rc")"
kill $KILLER $NOTIFY 2>/dev/null
# The probe shared ttyS0 with the kernel: its part, for the checks that read it.
sed -n '/@@VMCREDS-PROBE-BEGIN@@/,/@@VMCREDS-PROBE-END@@/p' "$OUT/inner-console.log" | tr -d '\r' > "$OUT/inner-probe.log"
[ -s "$OUT/manifest.json" ] && echo 0 > "$OUT/host.rc" || echo 1 > "$OUT/host.rc"
ls -laR "$RUN/fw-cfg" > "$OUT/fw-cfg-files.ls"
checkpoint
"#
    )
}

/// The probe of a busybox inner guest: what it saw, between the probe's markers.
pub(crate) const BUSYBOX_PROBE: &str = r#"hexs() { od -An -v -tx1 | tr -d ' \n'; }
echo "@@SECTION dmi-id"; for f in sys_vendor product_name; do echo "$f=$(cat /sys/class/dmi/id/$f 2>&1)"; done
echo "@@SECTION entry-point"; head -c 5 /sys/firmware/dmi/tables/smbios_entry_point | hexs; echo
echo "@@SECTION dmi-table-size"; wc -c < /sys/firmware/dmi/tables/DMI
echo "@@SECTION dmi-table"; base64 -w0 < /sys/firmware/dmi/tables/DMI; echo
echo "@@SECTION type11-raw"
for e in /sys/firmware/dmi/entries/11-*; do
  [ -e "$e/raw" ] || continue
  echo "$(basename "$e") $(wc -c < "$e/raw") $(sha256sum < "$e/raw" | cut -d' ' -f1) $(base64 -w0 < "$e/raw")"
done
echo "@@SECTION kernel-dmi"; dmesg | grep -iE 'dmi|smbios' | head -n 20
echo "@@SECTION fw-cfg"; ls /sys/firmware/qemu_fw_cfg/by_name/opt/io.systemd.credentials 2>&1
echo "@@SECTION creds"
for f in /run/credentials/@system/*; do
  [ -f "$f" ] || continue
  n=$(basename "$f")
  echo "$(printf '%s' "$n" | hexs) $(stat -c '%s %a %U' "$f") $(sha256sum < "$f" | cut -d' ' -f1)"
done
"#;

/// Builds the inner guest's initrd for a cloud-hypervisor scenario: its check reports to
/// vsock (hybrid vsock on the VMM's side).
fn inner_initrd(h: &HvEnv, s: &HvScenario, generation: &str, dir: &Path, to: &Path) -> Result<()> {
    let report = format!("vsock:2:{REPORT_PORT}");
    let busybox_run = if matches!(s.mode, Mode::Window(_)) {
        String::new()
    } else {
        format!(
            "vmcreds-guest import --to /run/credentials/@system --report-to {report}\n\
             echo \"import exit=$?\"\n"
        )
    };
    let mut install_unit = vec!["--report-to".to_string(), report];
    if s.notify_hold.is_some() {
        install_unit.push("--notify".into());
    }
    let guest = InnerGuest {
        busybox_run,
        modules: "virtio_pci\nvirtio_console\nqemu_fw_cfg\nvsock\nvmw_vsock_virtio_transport\n",
        install_unit,
    };
    inner_guest_initrd(h.env, generation, &guest, |_| {}, dir, to)
}

/// What differs between the inner guests of two hypervisors' scenarios.
pub(crate) struct InnerGuest {
    /// busybox: the commands its init runs before the probe (in the probe's `run` section).
    pub busybox_run: String,
    /// systemd: the modules loaded before the check runs (it is ordered after
    /// systemd-modules-load.service), so its report has a device to go to.
    pub modules: &'static str,
    /// systemd: `vmcreds-guest install-unit`'s arguments after `--root TREE`.
    pub install_unit: Vec<String>,
}

/// Builds an inner guest's initrd: the generation's base, the kernel's modules, and an
/// overlay with the static guest binary, its check (systemd: `vmcreds-check.service` as
/// `install-unit` writes it, plus what `systemd_extra` adds; busybox: an init running
/// `busybox_run`), and the probe.
pub(crate) fn inner_guest_initrd(
    env: &Env,
    generation: &str,
    guest: &InnerGuest,
    systemd_extra: impl FnOnce(&mut Overlay),
    dir: &Path,
    to: &Path,
) -> Result<()> {
    let mut o = Overlay::default();
    let bin =
        fs::read(&env.guest).with_context(|| format!("could not read {}", env.guest.display()))?;
    o.file("/usr/local/bin/vmcreds-guest", bin, 0o755);
    let base = if generation == "busybox" {
        o.file(
            "/etc/vmcreds-test/init.sh",
            format!(
                "#!/bin/sh\necho @@VMCREDS-PROBE-BEGIN@@\necho '@@SECTION run'\n\
                 {}{BUSYBOX_PROBE}echo @@VMCREDS-PROBE-END@@\n",
                guest.busybox_run
            ),
            0o755,
        );
        image::busybox_base(&env.root)?
    } else {
        crate::probe::add_probe(&mut o, "scenario");
        // The probe reports the check unit's state and timing when this file exists.
        o.file("/etc/vmcreds-test/check.args", "", 0o644);
        // The probe or the report uses hvc0, where systemd's getty generator would start a
        // getty (it takes the tty and cuts the output: seen on sid).
        o.link("/etc/systemd/system/serial-getty@hvc0.service", "/dev/null");
        o.link("/usr/bin/vmcreds-guest", "/usr/local/bin/vmcreds-guest");
        o.file(
            "/etc/modules-load.d/vmcreds-test.conf",
            guest.modules,
            0o644,
        );
        systemd_extra(&mut o);
        image::systemd_base(&env.root, generation, &env.mirror)?
    };
    let packed = dir.join("inner-overlay.cpio");
    o.pack_with(&dir.join("inner-overlay"), &packed, |tree| {
        if generation == "busybox" {
            return Ok(());
        }
        let mut c = Command::new(&env.guest);
        c.arg("install-unit")
            .arg("--root")
            .arg(tree)
            .args(&guest.install_unit);
        util::run(c.stdout(std::process::Stdio::null()))
    })?;
    image::concat_initrd(&[&base.cpio, &env.kernel.modules_cpio, &packed], to)
}

/// A host-only scenario: `vmcreds-host cloud-hypervisor` asked with the real binary must exit
/// 2 and say `text`, and start nothing.
fn host_refuses(h: &HvEnv, s: &HvScenario, dir: &Path, text: &str) -> Result<Outcome> {
    let creds = dir.join("creds");
    test::write_credential_files(&s.sources, &creds)?;
    let mut cmd = Command::new(&h.env.host);
    cmd.arg("cloud-hypervisor")
        .arg("--cloud-hypervisor")
        .arg(&h.ch.path)
        .args(test::source_args(&s.sources, &s.host_flags))
        .env("CREDENTIALS_DIRECTORY", &creds);
    if s.name == "ch-refuse-no-fw-cfg" {
        if h.ch.fw_cfg {
            bail!(
                "{} needs a cloud-hypervisor without the fw_cfg feature, but {} has it",
                s.name,
                h.ch.path.display()
            );
        }
        cmd.args(["--fw-cfg", "--runtime-dir"])
            .arg(dir.join("fw-cfg"));
    } else {
        cmd.args(["--format", "arg"]);
    }
    let mut r = test::HostRefusal::run(s.name, &mut cmd, dir)?;
    let mut p = r.problems(text);
    if s.name == "ch-refuse-no-fw-cfg" && !r.err.contains(h.ch.release()) {
        p.push(format!(
            "host error does not name the version {}",
            h.ch.release()
        ));
    }
    if dir
        .join("fw-cfg")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some())
    {
        p.push("files were written before the refusal".into());
    }
    Ok(r.outcome(&p))
}

/// Runs every scenario (those named in `only`, when given) on `generations` (the
/// scenarios' own guests when empty), one job at a time.
pub fn run_all(h: &HvEnv, only: &[String], generations: &[String]) -> Vec<Ran> {
    run_matrix(
        &all(),
        |s| (s.name, s.about, s.generations),
        only,
        generations,
        |s, g| run_one(h, s, g),
    )
}

/// Runs `run(scenario, guest)` for each scenario named in `only` (all when empty), on each of
/// its guests that `generations` asks for (all when empty; `busybox` and `host` always), one
/// at a time, saying each on stderr. `about` gives a scenario's name, line and guests.
pub(crate) fn run_matrix<S>(
    scenarios: &[S],
    about: impl Fn(&S) -> (&'static str, &'static str, &'static [&'static str]),
    only: &[String],
    generations: &[String],
    mut run: impl FnMut(&S, &str) -> Ran,
) -> Vec<Ran> {
    let mut ran = Vec::new();
    for s in scenarios {
        let (name, line, guests) = about(s);
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        for g in guests {
            let asked = generations.is_empty()
                || generations.iter().any(|x| x == g)
                || *g == "busybox"
                || *g == "host";
            if !asked {
                continue;
            }
            eprintln!("xtask: run {name} on {g}: {line}");
            let r = run(s, g);
            eprintln!(
                "xtask: {name} on {g}: {} ({})",
                match &r.outcome {
                    Outcome::Pass => "PASS",
                    Outcome::Fail(_) => "FAIL",
                },
                util::secs(r.elapsed)
            );
            ran.push(r);
        }
    }
    ran
}

/// A scenario's sources as recorded: `--load`s with their (made-up) values in base64, so that
/// `cargo test` can hand the host CLI the same inputs again.
pub(crate) fn recorded_sources(sources: &[Source], host_flags: &[String]) -> Value {
    let sources: Vec<Value> = sources
        .iter()
        .map(|src| match src {
            Source::Load { name, file, data } => json!({
                "load": name, "file": file,
                "base64": String::from_utf8_lossy(vmcreds_common::base64::encode(data).expose()),
            }),
            Source::Set(n, v) => json!({"set": format!("{n}={v}")}),
            Source::Oem(o) => json!({"oem": o}),
        })
        .collect();
    json!({"sources": sources, "host_flags": host_flags})
}

/// What the guest's probe (`inner-probe.log` in a job's `out/`) saw, as ground truth: its
/// systemd, DMI identity, entry point and table, the raw Type 11 entries, fw_cfg, and what
/// `/run/credentials/@system` held.
pub(crate) fn guest_view(out: &Path) -> Value {
    let probe = fs::read(out.join("inner-probe.log")).unwrap_or_default();
    let secs = vm::probe_sections(&probe);
    let one = |n: &str| vm::section(&secs, n).map(|l| l.join("\n"));
    let raw: Vec<Value> = vm::section(&secs, "type11-raw")
        .unwrap_or(&[])
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            json!({"entry": f.first(), "size": f.get(1).and_then(|s| s.parse::<u64>().ok()),
                   "sha256": f.get(2), "base64": f.get(3).filter(|b| **b != "-")})
        })
        .collect();
    let imported: Vec<Value> = vm::section(&secs, "creds")
        .unwrap_or(&[])
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let hex = f
                .first()
                .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
            (f.len() >= 5 && hex).then(|| {
                json!({"name_hex": f[0], "size": f[1].parse::<u64>().ok(), "mode": f[2],
                       "owner": f[3], "sha256": f[4]})
            })
        })
        .collect();
    json!({
        "systemd_version": one("systemd-version"),
        "dmi_id": one("dmi-id"),
        "entry_point_hex": one("entry-point"),
        "dmi_table_size": one("dmi-table-size").and_then(|s| s.trim().parse::<u64>().ok()),
        "dmi_table_base64": one("dmi-table").filter(|s| !s.trim().is_empty() && s.trim() != "-"),
        "type11_raw": raw,
        "fw_cfg": one("fw-cfg"),
        "imported": imported,
        "check_unit": one("check-unit"),
    })
}

/// What a run saw, as ground truth: the guest's view (SMBIOS, imported credentials), what the
/// host sent and what it concluded. Nothing here is a real secret: the scenarios' values are
/// made up (`scenarios::test_secret`).
pub fn record(h: &HvEnv, r: &Ran) -> Value {
    let inputs = all()
        .into_iter()
        .find(|s| s.name == r.scenario)
        .map(|s| (recorded_sources(&s.sources, &s.host_flags), s.mode.as_str()));
    let out = r.dir.join("out");
    let text = |f: &str| fs::read_to_string(out.join(f)).ok();
    let jsonf = |f: &str| -> Value {
        text(f)
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    };
    json!({
        "scenario": r.scenario,
        "mode": inputs.as_ref().map(|(_, m)| *m),
        "inputs": inputs.map(|(v, _)| v),
        "generation": r.generation,
        "outcome": match &r.outcome { Outcome::Pass => "pass".to_string(), Outcome::Fail(m) => format!("fail: {m}") },
        "seconds": r.elapsed.as_secs_f64(),
        "placement": h.placement.describe(),
        "produced_utc": util::utc_now(),
        "host_budget_type11_bytes": budget_bytes(),
        "host_argv": text("host.argv").map(|t| t.trim().to_string()),
        "host_stdout": text("host.out"),
        "host_rc": text("host.rc").map(|t| t.trim().to_string()),
        "vmm_rc": text("vmm.rc").map(|t| t.trim().to_string()),
        "collect_rc": text("collect.rc").map(|t| t.trim().to_string()),
        "manifest": jsonf("manifest.json"),
        "report": jsonf("report.json"),
        "verdict": jsonf("collect.json"),
        "guest": guest_view(&out),
        "timeline": text("timeline.txt"),
    })
}

/// `cargo xtask hv-ground-truth`: runs the scenarios and writes what they saw to
/// `xtask/ground-truth/cloud-hypervisor-<version>.json`.
pub fn ground_truth(
    h: &HvEnv,
    only: &[String],
    generations: &[String],
    commit: Option<&str>,
) -> Result<PathBuf> {
    let ran = run_all(h, only, generations);
    let runs: Vec<Value> = ran.iter().map(|r| record(h, r)).collect();
    let doc = json!({
        "schema": "vmcreds.hv-ground-truth/1",
        "hypervisor": "cloud-hypervisor",
        "version": h.ch.version,
        "fw_cfg_build_version": h.ch_fw_cfg.as_ref().map(|b| b.version.clone()),
        "source_commit": commit,
        "placement": h.placement.describe(),
        "kernel_package": h.env.kernel.package,
        "qemu_version": crate::ground_truth::qemu_version(),
        "produced_utc": util::utc_now(),
        "produced_by": "cargo xtask hv-ground-truth (xtask/src/hv_scenarios.rs)",
        "host_budget_type11_bytes": budget_bytes(),
        "runs": runs,
    });
    let path = h
        .env
        .root
        .join("xtask/ground-truth")
        .join(format!("cloud-hypervisor-{}.json", h.ch.release()));
    write_recording(&path, merge_runs(fs::read(&path).ok(), doc), &ran)?;
    Ok(path)
}

/// Writes the recording `doc` to `path`, then fails naming every run of `ran` that failed
/// (the file keeps them, as `outcome: fail: …`, for whoever looks into it).
pub(crate) fn write_recording(path: &Path, doc: Value, ran: &[Ran]) -> Result<()> {
    fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")?;
    let failed: Vec<String> = ran
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Fail(m) => Some(format!("{} [{}]: {m}", r.scenario, r.generation)),
            Outcome::Pass => None,
        })
        .collect();
    if !failed.is_empty() {
        bail!(
            "wrote {}, but {} run(s) failed: {}",
            path.display(),
            failed.len(),
            failed.join("; ")
        );
    }
    Ok(())
}

/// `new` with the runs of `old` (an earlier file of the same release) that `new` did not run
/// again (same scenario and guest), so `--only NAME` adds to a file instead of replacing it.
/// Each run keeps its own `produced_utc`; the top level describes the newest run.
pub(crate) fn merge_runs(old: Option<Vec<u8>>, mut new: Value) -> Value {
    let Some(old) = old.and_then(|b| serde_json::from_slice::<Value>(&b).ok()) else {
        return new;
    };
    let key = |r: &Value| (r["scenario"].clone(), r["generation"].clone());
    let ran: Vec<_> = new["runs"]
        .as_array()
        .map(|v| v.iter().map(key).collect())
        .unwrap_or_default();
    let mut runs: Vec<Value> = old["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| !ran.contains(&key(r)))
        .collect();
    if let Some(v) = new["runs"].as_array() {
        runs.extend(v.iter().cloned());
    }
    new["runs"] = json!(runs);
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_runs_not_run_again() {
        let old = json!({"runs": [{"scenario": "a", "generation": "x", "v": 1},
                                  {"scenario": "b", "generation": "x", "v": 1}]});
        let new = json!({"runs": [{"scenario": "b", "generation": "x", "v": 2}]});
        let m = merge_runs(Some(serde_json::to_vec(&old).unwrap()), new.clone());
        let runs = m["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0]["scenario"], "a");
        assert_eq!(runs[1]["v"], 2);
        assert_eq!(merge_runs(None, new.clone()), new);
    }

    #[test]
    fn names_are_unique_and_prefixed() {
        let all = all();
        let mut names: Vec<_> = all.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert!(all.iter().all(|s| s.name.starts_with("ch-")));
        for s in &all {
            assert_eq!(
                matches!(s.mode, Mode::HostOnly | Mode::Window(_)),
                matches!(s.expect, Expect::HostRefuses(_)),
                "{}",
                s.name
            );
        }
    }

    #[test]
    fn window_strings_make_the_structure_exact() {
        for bytes in [WINDOW_FITS, WINDOW_FITS + 1, 4096] {
            let v = window_strings(bytes);
            assert_eq!(5 + v.iter().map(|x| x.len() + 1).sum::<usize>() + 1, bytes);
            assert!(v.iter().all(|x| !x.contains(',') && !x.contains(']')));
        }
    }

    #[test]
    fn the_budget_structure_is_exact() {
        let b = budget_bytes();
        let Source::Set(name, value) = one_string_structure(b) else {
            panic!("a --set")
        };
        let string = format!("io.systemd.credential:{name}={value}");
        assert_eq!(5 + string.len() + 1 + 1, b);
    }

    #[test]
    fn job_scripts_are_valid_sh() {
        let d = tempfile::tempdir().unwrap();
        for s in all().iter().filter(|s| s.mode != Mode::HostOnly) {
            let f = d.path().join(format!("{}.sh", s.name));
            fs::write(&f, script(s, "trixie", 1024)).unwrap();
            let st = Command::new("sh").arg("-n").arg(&f).status().unwrap();
            assert!(st.success(), "{}", s.name);
        }
    }
}
