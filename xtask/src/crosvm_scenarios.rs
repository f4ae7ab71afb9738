//! The crosvm scenarios of `cargo xtask test` (`crosvm-…` in the summary), run on a binary
//! the user gives, where it can run (`nested.rs`): `vmcreds-host crosvm` prints crosvm's
//! arguments (one per line), the job splices them into crosvm's own command line, a real guest
//! (busybox through `vmcreds-guest import`, or real systemd with `vmcreds-check.service`)
//! reads its SMBIOS Type 11 entry and sends its report, and `vmcreds-host verify` gives the
//! host's verdict. A few scenarios only need the host CLI and the binary (a refusal before any
//! VM).
//!
//! The report's way back (measured on crosvm f1e797a6, see docs/TESTING.md): crosvm has no
//! hybrid vsock (`--vsock` is vhost-vsock, whose CID 2 is the kernel crosvm runs on, and
//! `collect --listen` takes only `unix:`), and its built-in virtio-console is single-port, so
//! a `name=` never reaches the guest and the port is `/dev/hvc0`. So the job backs that
//! console with a file, the guest links `/dev/virtio-ports/vmcreds.report` to `../hvc0`
//! (busybox: before `import`; systemd: an `ExecStartPre=+` drop-in on the check unit) and
//! reports to `virtio-port:vmcreds.report` as it would under QEMU, and `verify --report FILE`
//! reads the file once crosvm has exited. No product code is involved beyond what users run.
//!
//! crosvm takes OEM strings only on its command line, so its `/proc/PID/cmdline` carries the
//! credentials' base64 by design (the host warns): the leak scan skips exactly that, and every
//! other file and process snapshot must be free of every secret.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::hv;
use crate::hv_scenarios::{
    budget_flags, guest_view, inner_guest_initrd, job_leak_checked, many, merge_runs,
    one_string_structure, recorded_sources, run_matrix, timed_run, verdict_problems, verified,
    write_recording, InnerGuest, Ran, REFERENCE_NAMES,
};
use crate::image::Overlay;
use crate::leak::Treat;
use crate::nested::{self, Job, Placement};
use crate::scenarios::{reference_sources, Expect, Source};
use crate::test::{self, shell_quote, Env, Outcome};
use crate::util::{self, mkdirp};

/// Which of crosvm's options carries the strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `vmcreds-host crosvm --crosvm PATH`: the host asks the binary (`run --help`) and, as
    /// crosvm since 2023 lists `--smbios`, prints one `--smbios oem-strings=[…]`.
    Smbios,
    /// `--form oem-strings`: one deprecated `--oem-strings STRING` per string.
    OemStrings,
    /// No VM: the host must refuse before crosvm starts.
    HostOnly,
}

impl Form {
    /// The name recorded in ground truth.
    pub fn as_str(self) -> &'static str {
        match self {
            Form::Smbios => "smbios",
            Form::OemStrings => "oem_strings",
            Form::HostOnly => "host_only",
        }
    }

    /// The host's form arguments in the job script (`$CV` is the crosvm binary).
    fn host_args(self) -> &'static str {
        match self {
            Form::Smbios | Form::HostOnly => r#"--crosvm "$CV""#,
            Form::OemStrings => "--form oem-strings",
        }
    }

    /// The option the host's output must start with.
    fn first_word(self) -> Option<&'static str> {
        match self {
            Form::Smbios => Some("--smbios"),
            Form::OemStrings => Some("--oem-strings"),
            Form::HostOnly => None,
        }
    }
}

/// One scenario.
#[derive(Debug, Clone)]
pub struct CrosvmScenario {
    /// Name in the summary and for `--only`.
    pub name: &'static str,
    /// One line for people.
    pub about: &'static str,
    /// The delivery.
    pub form: Form,
    /// Guests: `busybox` or systemd generations (`host` for a host-only scenario).
    pub generations: &'static [&'static str],
    /// Host sources, in order.
    pub sources: Vec<Source>,
    /// Extra host flags.
    pub host_flags: Vec<String>,
    /// The expectation.
    pub expect: Expect,
    /// How the guest's report comes back.
    pub route: Route,
}

/// How the guest's report comes back to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Over crosvm's single-port virtio-console, backed by a file, then `verify`.
    Console,
    /// To `vsock:2:PORT` over crosvm's vhost-vsock (`--vsock cid=3`), where `collect
    /// --listen vsock:PORT` on the kernel crosvm runs on receives and verifies it.
    Vsock,
}

/// The vsock port of the report in a [`Route::Vsock`] run.
const VSOCK_REPORT_PORT: u32 = 9999;

/// The guest's report port on the console route: crosvm's single-port virtio-console,
/// `/dev/hvc0` in the guest.
const REPORT_TO: &str = "virtio-port:vmcreds.report";

/// Gives the unnamed port the name the report goes to (`/dev/virtio-ports/NAME` is what
/// udev would make for a named port; `vmcreds-guest` opens it and insists on a character
/// device).
const LINK_PORT: &str =
    "mkdir -p /dev/virtio-ports && ln -sf ../hvc0 /dev/virtio-ports/vmcreds.report";

/// The check unit's drop-in on a systemd guest: the link before the check, and the device
/// allowed (`/dev/hvc0` is char major 229 "hvc", not the unit's `char-virtio-portsdev`).
fn check_dropin() -> String {
    format!("[Service]\nExecStartPre=+/bin/sh -c \"{LINK_PORT}\"\nDeviceAllow=/dev/hvc0 w\n")
}

/// The largest Type 11 structure the host lets through to crosvm.
fn budget_bytes() -> usize {
    vmcreds_host::hv::crosvm::BUDGET
        .max_type11_bytes
        .expect("crosvm's budget is bounded")
}

/// Every crosvm scenario.
pub fn all() -> Vec<CrosvmScenario> {
    let base = |name, about, form, generations| CrosvmScenario {
        name,
        about,
        form,
        generations,
        sources: reference_sources(),
        host_flags: vec![],
        expect: verified(REFERENCE_NAMES),
        route: Route::Console,
    };
    vec![
        base(
            "crosvm-smbios",
            "vmcreds-host crosvm --crosvm PATH: the host asks the binary and prints one --smbios \
             oem-strings=[…], which crosvm carries unchanged; report over its virtio-console",
            Form::Smbios,
            &["busybox", "trixie"],
        ),
        CrosvmScenario {
            route: Route::Vsock,
            ..base(
                "crosvm-vsock",
                "the report to vsock:2:9999 over crosvm's vhost-vsock (--vsock cid=3); \
                 collect --listen vsock:9999, on the kernel crosvm runs on, verifies it",
                Form::Smbios,
                &["busybox", "trixie"],
            )
        },
        base(
            "crosvm-oem-strings",
            "the deprecated form: one --oem-strings STRING per string (--form oem-strings)",
            Form::OemStrings,
            &["busybox"],
        ),
        CrosvmScenario {
            sources: many(255).0,
            host_flags: many(255).1,
            expect: verified(&["S000", "S127", "S254"]),
            ..base(
                "crosvm-limit-255",
                "255 strings, the most crosvm takes (and one Type 11 structure counts): all arrive",
                Form::Smbios,
                &["busybox"],
            )
        },
        CrosvmScenario {
            sources: many(256).0,
            host_flags: many(256).1,
            expect: Expect::HostRefuses("255"),
            ..base(
                "crosvm-refuse-256",
                "256 strings: refused before crosvm starts (crosvm itself would exit 1, \
                 TooManyOemStrings)",
                Form::HostOnly,
                &["host"],
            )
        },
        CrosvmScenario {
            sources: vec![one_string_structure(budget_bytes())],
            host_flags: budget_flags(),
            expect: verified(&["BIG"]),
            ..base(
                "crosvm-limit-budget",
                "a Type 11 structure of exactly the host's crosvm budget arrives whole",
                Form::Smbios,
                &["busybox"],
            )
        },
        CrosvmScenario {
            sources: vec![one_string_structure(budget_bytes() + 1)],
            host_flags: budget_flags(),
            expect: Expect::HostRefuses("crosvm can carry"),
            ..base(
                "crosvm-refuse-over-budget",
                "one byte over the budget: refused before crosvm starts",
                Form::HostOnly,
                &["host"],
            )
        },
    ]
}

/// What the crosvm runs share.
pub struct CrosvmEnv<'a> {
    /// The QEMU tier's environment (root, kernel, binaries, mirror).
    pub env: &'a Env,
    /// The crosvm binary.
    pub crosvm: hv::Binary,
    /// Where it runs.
    pub placement: Placement,
    /// vmcreds-host, static (it runs in the outer guest).
    pub host_static: PathBuf,
}

impl<'a> CrosvmEnv<'a> {
    /// Builds the static host binary and decides the placement.
    pub fn prepare(env: &'a Env, crosvm: hv::Binary) -> Result<Self> {
        let placement = nested::placement(&env.root, &env.kernel, &crosvm);
        Ok(CrosvmEnv {
            env,
            crosvm,
            placement,
            host_static: nested::static_host_binary(&env.root)?,
        })
    }
}

/// Runs one scenario on one guest.
pub fn run_one(c: &CrosvmEnv, s: &CrosvmScenario, generation: &str) -> Ran {
    timed_run(&c.env.root, s.name, generation, |dir| {
        run_in(c, s, generation, dir)
    })
}

fn run_in(c: &CrosvmEnv, s: &CrosvmScenario, generation: &str, dir: &Path) -> Result<Outcome> {
    if s.form == Form::HostOnly {
        let Expect::HostRefuses(text) = &s.expect else {
            bail!("{}: a host-only scenario must expect a refusal", s.name);
        };
        return host_refuses(c, s, dir, text);
    }
    let job = Job {
        name: format!("{}-{generation}", s.name),
        run_dir: dir.to_path_buf(),
        deadline: Duration::from_secs(if generation == "busybox" { 300 } else { 600 }),
    };
    let jd = job.dir();
    mkdirp(&jd.join("inner"))?;
    test::write_credential_files(&s.sources, &jd.join("creds"))?;
    nested::add_binary(&jd, &c.crosvm.path, "crosvm")?;
    nested::add_binary(&jd, &c.host_static, "vmcreds-host")?;
    fs::copy(&c.env.kernel.vmlinuz, jd.join("inner/vmlinuz"))?;
    inner_initrd(
        c.env,
        s.route,
        generation,
        dir,
        &jd.join("inner/initrd.img"),
    )?;
    let mem_mib = if generation == "busybox" { 512 } else { 1024 };
    fs::write(jd.join("scenario.sh"), script(s, generation, mem_mib))?;
    let finished = nested::run_retrying(&c.env.root, &c.env.kernel, c.placement, &job);
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
    let read = |f: &str| fs::read_to_string(out.join(f)).unwrap_or_default();
    let host_rc = read("host.rc");
    if host_rc.trim() != "0" {
        problems.push(format!(
            "vmcreds-host exited {:?}: {}",
            host_rc.trim(),
            read("host.err").trim()
        ));
    } else {
        problems.extend(form_problems(s.form, &read("host.out")));
        let vmm_rc = read("vmm.rc");
        if vmm_rc.trim() != "0" {
            problems.push(format!(
                "crosvm exited {:?} (its stderr: {})",
                vmm_rc.trim(),
                out.join("vmm.err").display()
            ));
        }
    }
    problems.extend(verdict_problems(&s.expect, out, "verdict"));
    let outcome = finished.outcome(&problems);
    Ok(leak_checked(outcome, s, dir))
}

/// The host's output is in the scenario's form: `--smbios` and one `oem-strings=[…]`, or
/// `--oem-strings STRING` pairs only.
fn form_problems(form: Form, host_out: &str) -> Vec<String> {
    let words: Vec<&str> = host_out.lines().collect();
    let Some(first) = form.first_word() else {
        return vec![];
    };
    let ok = match form {
        Form::Smbios => {
            words.len() == 2 && words[0] == first && words[1].starts_with("oem-strings=[")
        }
        _ => {
            !words.is_empty()
                && words.len() % 2 == 0
                && words.chunks(2).all(|p| p[0] == first && !p[1].is_empty())
        }
    };
    if ok {
        vec![]
    } else {
        vec![format!(
            "the host's output is not in the {} form ({} line(s), the first {:?})",
            form.as_str(),
            words.len(),
            words
                .first()
                .map(|w| w.chars().take(20).collect::<String>())
        )]
    }
}

/// A host-only scenario: `vmcreds-host crosvm --crosvm PATH` must exit 2 and say `text`, and
/// print nothing for crosvm.
fn host_refuses(c: &CrosvmEnv, s: &CrosvmScenario, dir: &Path, text: &str) -> Result<Outcome> {
    let creds = dir.join("creds");
    test::write_credential_files(&s.sources, &creds)?;
    let mut cmd = Command::new(&c.env.host);
    cmd.arg("crosvm")
        .arg("--crosvm")
        .arg(&c.crosvm.path)
        .args(test::source_args(&s.sources, &s.host_flags))
        .env("CREDENTIALS_DIRECTORY", &creds);
    let mut r = test::HostRefusal::run(s.name, &mut cmd, dir)?;
    let outcome = r.outcome(&r.problems(text));
    Ok(leak_checked(outcome, s, dir))
}

/// Whether the snapshot file `rel` (under `out`) is the command line of a crosvm process: its
/// `argv[0]` is the crosvm binary (a process crosvm forks keeps it; a wrapper such as `timeout`
/// does not).
fn is_crosvm_cmdline(out: &Path, rel: &str) -> bool {
    if !rel.ends_with(".cmdline") {
        return false;
    }
    fs::read(out.join(rel)).is_ok_and(|b| {
        let argv0 = b.split(|&c| c == 0).next().unwrap_or_default();
        argv0 == b"crosvm" || argv0.ends_with(b"/crosvm")
    })
}

/// `outcome`, failed when any file the job left holds a secret outside its delivery (the
/// host's output, and crosvm's own command line, which carries it by design).
fn leak_checked(outcome: Outcome, s: &CrosvmScenario, dir: &Path) -> Outcome {
    let host_only = s.form == Form::HostOnly;
    job_leak_checked(outcome, &s.sources, dir, host_only, |out, rel| match rel {
        // The delivery itself: the arguments the host printed for crosvm.
        "host.out" => Treat::Skip,
        _ if rel.ends_with("inner-probe.log") => Treat::Probe,
        _ if is_crosvm_cmdline(out, rel) => Treat::Skip,
        _ => Treat::Whole,
    })
}

/// The guest's kernel command line (crosvm adds `panic=-1 console=ttyS0` itself; the probe
/// writes to ttyS1, crosvm's second serial port).
fn inner_cmdline(generation: &str) -> &'static str {
    if generation == "busybox" {
        "console=ttyS0 panic=-1 quiet"
    } else {
        "console=ttyS0 panic=-1 quiet systemd.show_status=0"
    }
}

/// The job script of `s` on `generation`.
fn script(s: &CrosvmScenario, generation: &str, mem_mib: u32) -> String {
    let sources = test::source_args(&s.sources, &s.host_flags)
        .iter()
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let form = s.form.host_args();
    let form_shown = form.replace('"', "").replace('$', "\\$");
    let cmdline = inner_cmdline(generation);
    // The report's way back: the console's file, read by `verify` once crosvm has exited; or
    // `collect` on the outer kernel's vsock port, listening before crosvm starts.
    let (vsock_arg, before, after) = match s.route {
        Route::Console => (
            "",
            String::new(),
            r#"# The port is a tty in the guest: the report arrives with CRLF line ends.
tr -d '\r' < "$OUT/report-port.raw" > "$OUT/report.json"
echo "vmcreds-host verify --manifest \$OUT/manifest.json --report \$OUT/report-port.raw --json" > "$OUT/verdict.argv"
"$VH" verify --manifest "$OUT/manifest.json" --report "$OUT/report-port.raw" --json > "$OUT/verdict.json" 2> "$OUT/verdict.err"
echo $? > "$OUT/verdict.rc"; mark "verify exited rc=$(cat "$OUT/verdict.rc")"
"#
            .to_string(),
        ),
        Route::Vsock => (
            "--vsock cid=3 ",
            format!(
                r#"echo "vmcreds-host collect --listen vsock:{port} --manifest \$OUT/manifest.json --json --timeout 400 --report-out \$OUT/report.json" > "$OUT/verdict.argv"
( "$VH" collect --listen vsock:{port} --manifest "$OUT/manifest.json" --json --timeout 400 --report-out "$OUT/report.json" > "$OUT/verdict.json" 2> "$OUT/verdict.err"; echo $? > "$OUT/verdict.rc" ) &
COLLECT=$!
i=0; until grep -q listening "$OUT/verdict.err" 2>/dev/null || [ $i -ge 100 ]; do sleep 0.1; i=$((i+1)); done
mark "collect: $(head -n 1 "$OUT/verdict.err")"
"#,
                port = VSOCK_REPORT_PORT
            ),
            r#"# collect has the report once the guest has sent it; a guest that never did leaves it
# waiting: it is stopped, and its timeout is the verdict.
i=0; until [ -s "$OUT/verdict.rc" ] || [ $i -ge 100 ]; do sleep 0.1; i=$((i+1)); done
kill $COLLECT 2>/dev/null; wait $COLLECT 2>/dev/null
mark "collect exited rc=$(cat "$OUT/verdict.rc" 2>/dev/null)"
"#
            .to_string(),
        ),
    };
    format!(
        r#". "$IN/lib.sh"
CV=$IN/bin/crosvm
export CREDENTIALS_DIRECTORY=$IN/creds
cd "$RUN"
mark "{name} on {generation}"
"$CV" version > "$OUT/crosvm-version.txt" 2>&1
echo "vmcreds-host crosvm {form_shown} {sources} --manifest-out \$OUT/manifest.json" > "$OUT/host.argv"
"$VH" crosvm {form} {sources} --manifest-out "$OUT/manifest.json" > "$OUT/host.out" 2> "$OUT/host.err"
echo $? > "$OUT/host.rc"; mark "vmcreds-host exited rc=$(cat "$OUT/host.rc")"
if [ "$(cat "$OUT/host.rc")" != 0 ]; then checkpoint; exit 1; fi
{before}# crosvm's arguments, one per line of the host's output, as positional parameters (the
# shell's own command line stays "sh scenario.sh").
set --
while IFS= read -r a; do set -- "$@" "$a"; done < "$OUT/host.out"
"$CV" run --disable-sandbox --mem {mem_mib} --cpus 1 {vsock_arg}\
  --serial "type=file,path=$OUT/inner-console.log,hardware=serial,num=1,console=true" \
  --serial "type=file,path=$OUT/inner-probe.log,hardware=serial,num=2" \
  --serial "type=file,path=$OUT/report-port.raw,hardware=virtio-console,num=1" \
  --initrd "$IN/inner/initrd.img" -p '{cmdline}' "$@" "$IN/inner/vmlinuz" > "$OUT/vmm.out" 2> "$OUT/vmm.err" &
VMM=$!
( sleep 480; kill -9 $VMM 2>/dev/null ) &
KILLER=$!
snapshot_procs_while $VMM
wait $VMM; echo $? > "$OUT/vmm.rc"; mark "crosvm exited rc=$(cat "$OUT/vmm.rc")"
kill $KILLER 2>/dev/null
checkpoint
{after}checkpoint
"#,
        name = s.name
    )
}

/// Builds the inner guest's initrd for a crosvm scenario. On the console route its check
/// reports to the virtio-console port, linked to the name the report goes to (busybox:
/// before `import`; systemd: a drop-in on the check unit); on the vsock route, to
/// `vsock:2:PORT`.
fn inner_initrd(
    env: &Env,
    route: Route,
    generation: &str,
    dir: &Path,
    initrd: &Path,
) -> Result<()> {
    let import = |report_to: &str| {
        format!(
            "vmcreds-guest import --to /run/credentials/@system --report-to {report_to}\n\
             echo \"import exit=$?\"\n"
        )
    };
    if route == Route::Vsock {
        let report_to = format!("vsock:2:{VSOCK_REPORT_PORT}");
        let guest = InnerGuest {
            busybox_run: import(&report_to),
            modules: "virtio_pci\nvirtio_console\nvsock\nvmw_vsock_virtio_transport\n",
            install_unit: vec!["--report-to".into(), report_to],
        };
        return inner_guest_initrd(env, generation, &guest, |_| {}, dir, initrd);
    }
    let guest = InnerGuest {
        busybox_run: format!("{LINK_PORT}\n{}", import(REPORT_TO)),
        modules: "virtio_pci\nvirtio_console\n",
        install_unit: vec!["--report-to".into(), REPORT_TO.into()],
    };
    let dropin = |o: &mut Overlay| {
        o.file(
            "/etc/systemd/system/vmcreds-check.service.d/crosvm-port.conf",
            check_dropin(),
            0o644,
        );
    };
    inner_guest_initrd(env, generation, &guest, dropin, dir, initrd)
}

/// Runs every scenario (those named in `only`, when given) on `generations` (the
/// scenarios' own guests when empty), one job at a time.
pub fn run_all(c: &CrosvmEnv, only: &[String], generations: &[String]) -> Vec<Ran> {
    run_matrix(
        &all(),
        |s| (s.name, s.about, s.generations),
        only,
        generations,
        |s, g| run_one(c, s, g),
    )
}

/// What a run saw, as ground truth: the guest's view (SMBIOS, imported credentials), what the
/// host printed for crosvm and what `verify` concluded. Nothing here is a real secret: the
/// scenarios' values are made up (`scenarios::test_secret`).
pub fn record(c: &CrosvmEnv, r: &Ran) -> Value {
    let inputs = all()
        .into_iter()
        .find(|s| s.name == r.scenario)
        .map(|s| (recorded_sources(&s.sources, &s.host_flags), s.form.as_str()));
    // A host-only run leaves its files in the run directory itself.
    let out = if r.dir.join("out").is_dir() {
        r.dir.join("out")
    } else {
        r.dir.clone()
    };
    let text = |f: &str| fs::read_to_string(out.join(f)).ok();
    let trimmed = |f: &str| text(f).map(|t| t.trim().to_string());
    let jsonf = |f: &str| -> Value {
        text(f)
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    };
    // crosvm's stderr: its warnings and errors (each line after its timestamp and level).
    let vmm_notes: Vec<String> = text("vmm.err")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("error"))
        .map(str::to_string)
        .collect();
    json!({
        "scenario": r.scenario,
        "mode": inputs.as_ref().map(|(_, m)| *m),
        "inputs": inputs.map(|(v, _)| v),
        "generation": r.generation,
        "outcome": match &r.outcome { Outcome::Pass => "pass".to_string(), Outcome::Fail(m) => format!("fail: {m}") },
        "seconds": r.elapsed.as_secs_f64(),
        "placement": c.placement.describe(),
        "produced_utc": util::utc_now(),
        "host_budget_type11_bytes": budget_bytes(),
        "host_argv": trimmed("host.argv").or_else(|| trimmed("host-argv.txt")),
        "host_stdout": text("host.out"),
        "host_stderr": text("host.err"),
        "host_rc": trimmed("host.rc"),
        "vmm_rc": trimmed("vmm.rc"),
        "vmm_warnings": vmm_notes,
        "verdict_argv": trimmed("verdict.argv"),
        "verdict_rc": trimmed("verdict.rc"),
        "manifest": jsonf("manifest.json"),
        "report": jsonf("report.json"),
        "verdict": jsonf("verdict.json"),
        "guest": guest_view(&out),
        "timeline": text("timeline.txt"),
    })
}

/// `new` with the runs of the file at `old` when that file records the same build (the same
/// `version` and `source_commit`: crosvm's version alone cannot tell builds apart); otherwise
/// `new` alone, so runs of two builds never share a file.
fn merge_same_build(old: Option<Vec<u8>>, new: Value) -> Value {
    let same = old
        .as_deref()
        .and_then(|b| serde_json::from_slice::<Value>(b).ok())
        .is_some_and(|o| {
            o["version"] == new["version"] && o["source_commit"] == new["source_commit"]
        });
    if same {
        merge_runs(old, new)
    } else {
        new
    }
}

/// `cargo xtask hv-ground-truth --crosvm PATH --source-commit HASH`: runs the crosvm
/// scenarios and writes what they saw to `xtask/ground-truth/crosvm-<version>.json`.
pub fn ground_truth(
    c: &CrosvmEnv,
    only: &[String],
    generations: &[String],
    commit: &str,
) -> Result<PathBuf> {
    let ran = run_all(c, only, generations);
    let runs: Vec<Value> = ran.iter().map(|r| record(c, r)).collect();
    let doc = json!({
        "schema": "vmcreds.hv-ground-truth/1",
        "hypervisor": "crosvm",
        "version": c.crosvm.version,
        "version_asked_with": hv::Kind::Crosvm.version_arg(),
        "source_commit": commit,
        "binary_sha256": fs::read(&c.crosvm.path).ok().map(|b| util::sha256_hex(&b)),
        "placement": c.placement.describe(),
        "kernel_package": c.env.kernel.package,
        "qemu_version": crate::ground_truth::qemu_version(),
        "produced_utc": util::utc_now(),
        "produced_by": "cargo xtask hv-ground-truth --crosvm (xtask/src/crosvm_scenarios.rs)",
        "host_budget_type11_bytes": budget_bytes(),
        "runs": runs,
    });
    let path = c
        .env
        .root
        .join("xtask/ground-truth")
        .join(format!("crosvm-{}.json", c.crosvm.release()));
    write_recording(&path, merge_same_build(fs::read(&path).ok(), doc), &ran)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prefixed() {
        let all = all();
        let mut names: Vec<_> = all.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert!(all.iter().all(|s| s.name.starts_with("crosvm-")));
        for s in &all {
            assert_eq!(
                s.form == Form::HostOnly,
                matches!(s.expect, Expect::HostRefuses(_)),
                "{}",
                s.name
            );
            assert_eq!(
                s.form == Form::HostOnly,
                s.generations == ["host"],
                "{}",
                s.name
            );
        }
    }

    #[test]
    fn job_scripts_are_valid_sh() {
        let d = tempfile::tempdir().unwrap();
        for s in all().iter().filter(|s| s.form != Form::HostOnly) {
            for g in s.generations {
                let f = d.path().join(format!("{}-{g}.sh", s.name));
                let text = script(s, g, 512);
                fs::write(&f, &text).unwrap();
                let st = Command::new("sh").arg("-n").arg(&f).status().unwrap();
                assert!(st.success(), "{} [{g}]", s.name);
                assert!(text.contains(s.form.host_args()), "{}", s.name);
            }
        }
    }

    /// The job splices the host's output into crosvm's argv one line per argument, as a shell
    /// reading it with `read -r` does: the list survives whole, commas and brackets included.
    #[test]
    fn the_job_splices_one_argument_per_line() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("host.out");
        fs::write(
            &out,
            "--smbios\noem-strings=[io.systemd.credential:A=a b,\"x,[y]\"]\n",
        )
        .unwrap();
        let sh = format!(
            "set --\nwhile IFS= read -r a; do set -- \"$@\" \"$a\"; done < {}\nprintf '<%s>' \"$@\"",
            shell_quote(&out.to_string_lossy())
        );
        let o = Command::new("sh").arg("-c").arg(sh).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "<--smbios><oem-strings=[io.systemd.credential:A=a b,\"x,[y]\"]>"
        );
    }

    #[test]
    fn the_output_form_is_checked() {
        let smbios = "--smbios\noem-strings=[io.systemd.credential:A=b]\n";
        let oem = "--oem-strings\nio.systemd.credential:A=b\n--oem-strings\nc\n";
        assert!(form_problems(Form::Smbios, smbios).is_empty());
        assert!(form_problems(Form::OemStrings, oem).is_empty());
        assert_eq!(form_problems(Form::Smbios, oem).len(), 1);
        assert_eq!(form_problems(Form::OemStrings, smbios).len(), 1);
        assert_eq!(form_problems(Form::OemStrings, "--oem-strings\n").len(), 1);
        assert_eq!(form_problems(Form::Smbios, "").len(), 1);
    }

    #[test]
    fn only_crosvm_command_lines_are_exempt_from_the_leak_scan() {
        let d = tempfile::tempdir().unwrap();
        let w = |n: &str, b: &[u8]| fs::write(d.path().join(n), b).unwrap();
        w(
            "1.cmdline",
            b"/in/bin/crosvm\0run\0--smbios\0oem-strings=[x]\0",
        );
        w("2.cmdline", b"timeout\0-s\0KILL\0/in/bin/crosvm\0run\0");
        w("3.cmdline", b"sh\0/in/scenario.sh\0");
        w("4.environ", b"/in/bin/crosvm\0");
        assert!(is_crosvm_cmdline(d.path(), "1.cmdline"));
        assert!(!is_crosvm_cmdline(d.path(), "2.cmdline"));
        assert!(!is_crosvm_cmdline(d.path(), "3.cmdline"));
        assert!(!is_crosvm_cmdline(d.path(), "4.environ"));
        assert!(!is_crosvm_cmdline(d.path(), "5.cmdline"));
    }

    /// A secret on a process's command line other than crosvm's fails the scan; crosvm's does
    /// not; the host's printed delivery does not.
    #[test]
    fn the_leak_scan_fails_a_wrapper_that_repeats_crosvm_arguments() {
        let s = all()
            .into_iter()
            .find(|s| s.name == "crosvm-smbios")
            .unwrap();
        let secret = test::secrets_of(&s.sources)[0].to_vec();
        let b64 = vmcreds_common::base64::encode(&secret).expose().to_vec();
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        fs::create_dir_all(out.join("procs/1")).unwrap();
        let mut crosvm = b"/in/bin/crosvm\0run\0--smbios\0".to_vec();
        crosvm.extend_from_slice(&b64);
        fs::write(out.join("procs/1/10.cmdline"), &crosvm).unwrap();
        fs::write(out.join("host.out"), &b64).unwrap();
        fs::write(out.join("vmm.err"), b"crosvm started\n").unwrap();
        assert!(matches!(
            leak_checked(Outcome::Pass, &s, d.path()),
            Outcome::Pass
        ));
        let mut wrapper = b"timeout\0-s\0KILL\0".to_vec();
        wrapper.extend_from_slice(&crosvm);
        fs::write(out.join("procs/1/11.cmdline"), &wrapper).unwrap();
        let Outcome::Fail(m) = leak_checked(Outcome::Pass, &s, d.path()) else {
            panic!("a wrapper's argv with the secret passed the scan")
        };
        assert!(m.contains("11.cmdline"), "{m}");
    }

    #[test]
    fn runs_of_another_build_are_not_merged() {
        let old = json!({"version": "crosvm 0.1.0", "source_commit": "aaa",
                         "runs": [{"scenario": "x", "generation": "busybox"}]});
        let new = |commit: &str| {
            json!({"version": "crosvm 0.1.0", "source_commit": commit,
                   "runs": [{"scenario": "y", "generation": "busybox"}]})
        };
        let bytes = Some(serde_json::to_vec(&old).unwrap());
        let same = merge_same_build(bytes.clone(), new("aaa"));
        assert_eq!(same["runs"].as_array().unwrap().len(), 2);
        let other = merge_same_build(bytes, new("bbb"));
        assert_eq!(other["runs"].as_array().unwrap().len(), 1);
        assert_eq!(merge_same_build(None, new("aaa")), new("aaa"));
    }

    #[test]
    fn the_dropin_links_the_port_before_the_check() {
        let d = check_dropin();
        assert!(d.starts_with("[Service]\n"));
        assert!(d.contains("ExecStartPre=+/bin/sh -c \"mkdir -p /dev/virtio-ports && ln -sf ../hvc0 /dev/virtio-ports/vmcreds.report\""));
        assert!(d.contains("DeviceAllow=/dev/hvc0 w"));
    }
}
