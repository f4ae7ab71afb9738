//! Running a KVM-only VMM (cloud-hypervisor, crosvm) for the VM tier: directly where
//! `/dev/kvm` boots a Linux guest, otherwise nested inside a QEMU **TCG** guest whose CPU has
//! SVM emulated (`-cpu EPYC-v3,+svm,+npt`; TCG emulates it on Intel and AMD hosts alike),
//! with Debian's cloud kernel and its `kvm`/`kvm-amd` modules loaded: that outer guest has a
//! working `/dev/kvm` and the VMM runs inside it, booting the same kernel for its own guest.
//!
//! A job is a directory, the same in both placements:
//!
//! ```text
//! scenario.sh   the job, POSIX sh; it sources lib.sh and uses $IN, $OUT and $RUN
//! lib.sh        helpers: mark, checkpoint, dump_procs, wait_sock, start_collect, ...
//! bin/          the VMM, vmcreds-host (static), vsock-listen (static), bash
//! root/         shared libraries of the dynamic binaries (copied over / in the outer guest)
//! inner/        the inner guest's vmlinuz and initrd.img
//! creds/        the credential files of the scenario
//! ```
//!
//! Nested, the directory travels as a tar on a read-only virtio-blk disk (serial `vmcin`) and
//! `$OUT` comes back as a tar on one of two output disks (serials `vmcout`, `vmcout2`):
//! `checkpoint` writes them in turn with a sequence number, so a run killed at its deadline
//! still leaves the last checkpoint (the inner guest's console, the VMM's stderr) to read.
//! Progress markers go to the outer guest's second serial port (`probe.log`); its console is
//! `console.log`. Directly, `scenario.sh` runs on this machine in its own process group with
//! `$OUT` and `$RUN` under the run directory. Either way the run has a deadline, its process
//! group is killed on drop, and every file it leaves is leak-scanned by the caller.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::hv;
use crate::image::{self, Kernel};
use crate::util::{self, cache_key, mkdirp, write_file};
use crate::vm::{self, Guarded, VmSpec};

/// Where a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On this machine: `/dev/kvm` booted the probe guest.
    Direct,
    /// Inside an outer QEMU TCG guest with SVM.
    Nested,
}

impl Placement {
    /// For the summary.
    pub fn describe(self) -> &'static str {
        match self {
            Placement::Direct => "directly on /dev/kvm",
            Placement::Nested => "nested in a QEMU TCG guest with SVM",
        }
    }
}

/// Modules of the outer guest, in load order (insmod resolves no dependencies).
const OUTER_MODULES: &[&str] = &[
    "kernel/virt/lib/irqbypass.ko",
    "kernel/arch/x86/kvm/kvm.ko",
    "kernel/arch/x86/kvm/kvm-amd.ko",
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
    "kernel/drivers/virtio/virtio_pci.ko",
    "kernel/drivers/block/virtio_blk.ko",
    // crosvm's `--vsock` is vhost-vsock: the outer kernel is the guest's CID 2, where
    // `collect --listen vsock:PORT` receives the report.
    "kernel/drivers/vhost/vhost_iotlb.ko",
    "kernel/drivers/vhost/vhost.ko",
    "kernel/net/vmw_vsock/vsock.ko",
    "kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
    "kernel/drivers/vhost/vhost_vsock.ko",
];

/// Bumped whenever the outer image's recipe changes.
const OUTER_RECIPE: &str = "outer-1";

/// Memory of the outer guest: the inner guest (up to 1 GiB), its initrd unpacked in the
/// outer guest's tmpfs, and the VMM.
const OUTER_MEM_MIB: u32 = 3072;

/// `/init` of the outer guest.
const OUTER_INIT: &str = r#"#!/bin/busybox sh
# vmcreds nested runner: the outer guest (xtask/src/nested.rs).
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o mode=0755,size=2048m run /run
mount -t tmpfs -o mode=1777 tmp /tmp
mark() { echo "@@OUTER $(cut -d' ' -f1 /proc/uptime) $*" > /dev/ttyS1; }
mark init
for m in $(cat /mods/order); do
  insmod /mods/$m.ko || mark "insmod $m failed"
done
mark "modules loaded, kvm=$([ -c /dev/kvm ] && echo yes || echo no)"
IN_DISK=; OUTDISKS=
for b in /sys/block/vd*; do
  case "$(cat $b/serial 2>/dev/null)" in
    vmcin) IN_DISK=/dev/${b##*/} ;;
    vmcout|vmcout2) OUTDISKS="$OUTDISKS /dev/${b##*/}" ;;
  esac
done
export OUTDISKS
mkdir -p /in /out /run/vmcreds-test
tar xf "$IN_DISK" -C /in && mark "input unpacked" || mark "input not unpacked ($IN_DISK)"
[ -d /in/root ] && cp -a /in/root/. /
export IN=/in OUT=/out RUN=/run/vmcreds-test PATH=/in/bin:$PATH
rc=none
if [ -f /in/scenario.sh ]; then
  mark scenario-start
  sh /in/scenario.sh > /out/scenario.log 2>&1
  rc=$?
  mark "scenario-end rc=$rc"
fi
echo "$rc" > /out/scenario.rc
dmesg > /out/outer-dmesg.log
. /in/lib.sh
checkpoint && mark "output written" || mark "output not written"
sync
mark poweroff
poweroff -f
"#;

/// Helpers sourced by every `scenario.sh`, in both placements.
pub const LIB_SH: &str = r#"# vmcreds nested runner helpers (xtask/src/nested.rs); needs IN, OUT, RUN.
VH=$IN/bin/vmcreds-host
mkdir -p "$OUT" "$RUN"
now() { cut -d' ' -f1 /proc/uptime; }
mark() {
  echo "$(now) $*" >> "$OUT/timeline.txt"
  [ -n "${OUTDISKS:-}" ] && echo "@@OUTER $(now) $*" > /dev/ttyS1
  return 0
}
# checkpoint: $OUT as a tar on the output disk not written last (nested only).
checkpoint() {
  [ -n "${OUTDISKS:-}" ] || return 0
  seq=$(( $(cat "$OUT/.seq" 2>/dev/null || echo 0) + 1 ))
  echo $seq > "$OUT/.seq"
  set -- $OUTDISKS
  [ $(( seq % 2 )) = 1 ] && d=$1 || d=${2:-$1}
  tar cf "$d" -C "$OUT" . && sync
}
# dump_procs DIR: every process's argv and environment, for the leak scan.
dump_procs() {
  mkdir -p "$1"
  for dp in /proc/[0-9]*; do
    dpid=${dp#/proc/}
    cat $dp/cmdline > "$1/$dpid.cmdline" 2>/dev/null
    cat $dp/environ > "$1/$dpid.environ" 2>/dev/null
    cat $dp/comm > "$1/$dpid.comm" 2>/dev/null
  done
  return 0
}
# wait_sock PATH [TENTHS]: until PATH is a socket (default 10 s).
wait_sock() {
  i=0
  while [ ! -S "$1" ] && [ $i -lt ${2:-100} ]; do sleep 0.1; i=$((i+1)); done
  [ -S "$1" ]
}
# start_collect SOCKET MANIFEST: the host's collect, listening first.
start_collect() {
  rm -f "$1"
  echo "$VH collect --listen unix:$1 --manifest $2 --timeout ${COLLECT_TIMEOUT:-500} --report-out $OUT/report.json --json" > "$OUT/collect.argv"
  "$VH" collect --listen "unix:$1" --manifest "$2" --timeout ${COLLECT_TIMEOUT:-500} \
      --report-out "$OUT/report.json" --json > "$OUT/collect.json" 2> "$OUT/collect.err" &
  COLLECT_PID=$!
  wait_sock "$1" && mark "collect listening on $1"
}
wait_collect() {
  wait $COLLECT_PID
  echo $? > "$OUT/collect.rc"
  mark "collect exited rc=$(cat "$OUT/collect.rc")"
}
# snapshot_procs_while PID: the leak scan's view of every process, every second while PID runs.
snapshot_procs_while() {
  ( snap=0; while kill -0 $1 2>/dev/null && [ $snap -lt 600 ]; do
      sleep 1; snap=$((snap+1)); dump_procs "$OUT/procs/$snap"; done ) &
}
"#;

/// The outer guest's image: kernel and initramfs (busybox, /init, modules).
#[derive(Debug, Clone)]
pub struct Outer {
    /// The kernel (the same bzImage the inner guests boot).
    pub vmlinuz: PathBuf,
    /// busybox, `/init`, the modules.
    pub cpio: PathBuf,
}

/// Builds (or reuses) the outer guest's initramfs.
pub fn outer_image(root: &Path, kernel: &Kernel) -> Result<Outer> {
    let busybox = fs::read("/bin/busybox")
        .context("could not read /bin/busybox (apt-get install busybox-static)")?;
    let key = cache_key([
        &busybox[..],
        OUTER_INIT.as_bytes(),
        OUTER_MODULES.join(",").as_bytes(),
        kernel.release.as_bytes(),
        OUTER_RECIPE.as_bytes(),
    ]);
    let dir = root.join("target/vm/outer").join(&key);
    let cpio = dir.join("outer.cpio.gz");
    if !cpio.exists() {
        let tree = dir.join("root");
        let _ = fs::remove_dir_all(&tree);
        for d in [
            "bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "run", "tmp", "mods",
        ] {
            mkdirp(&tree.join(d))?;
        }
        write_file(&tree.join("bin/busybox"), &busybox)?;
        fs::set_permissions(tree.join("bin/busybox"), fs::Permissions::from_mode(0o755))?;
        write_file(&tree.join("init"), OUTER_INIT.as_bytes())?;
        fs::set_permissions(tree.join("init"), fs::Permissions::from_mode(0o755))?;
        let mut order = Vec::new();
        for m in OUTER_MODULES {
            let name = Path::new(m)
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("module paths end in NAME.ko");
            fs::copy(
                kernel.module_tree.join(m),
                tree.join("mods").join(format!("{name}.ko")),
            )
            .with_context(|| format!("the kernel package lacks {m}"))?;
            order.push(name);
        }
        write_file(&tree.join("mods/order"), order.join("\n").as_bytes())?;
        util::pack_cpio(&tree, &cpio, true)?;
    }
    Ok(Outer {
        vmlinuz: kernel.vmlinuz.clone(),
        cpio,
    })
}

/// Copies `binary` into `job/bin/` and, for a dynamically linked one, its shared libraries
/// and loader (from `ldd`) into `job/root/` at their own paths.
pub fn add_binary(job: &Path, binary: &Path, name: &str) -> Result<()> {
    let to = job.join("bin").join(name);
    mkdirp(to.parent().expect("bin/NAME has a parent"))?;
    fs::copy(binary, &to).with_context(|| format!("could not copy {}", binary.display()))?;
    fs::set_permissions(&to, fs::Permissions::from_mode(0o755))?;
    let out = Command::new("ldd").arg(binary).output();
    let Ok(out) = out else { return Ok(()) };
    for lib in shared_libraries(&String::from_utf8_lossy(&out.stdout)) {
        let dest = job.join("root").join(lib.trim_start_matches('/'));
        if dest.exists() {
            continue;
        }
        mkdirp(dest.parent().expect("a library path has a parent"))?;
        // The real file (ldd names symlinks such as libc.so.6), under the name asked for.
        fs::copy(&lib, &dest).with_context(|| format!("could not copy {lib}"))?;
    }
    Ok(())
}

/// The absolute library paths in `ldd` output (`libc.so.6 => /lib/… (0x…)`, `/lib64/ld-…`).
fn shared_libraries(ldd: &str) -> Vec<String> {
    ldd.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| path.to_string())
        })
        .collect()
}

/// Builds `xtask/helpers/vsock-listen.rs` into a static binary (std only, `rustc` for the
/// musl target, no cargo package of its own) and returns its path.
pub fn vsock_listen(root: &Path) -> Result<PathBuf> {
    let src = root.join("xtask/helpers/vsock-listen.rs");
    let text = fs::read(&src).with_context(|| format!("could not read {}", src.display()))?;
    let out = root
        .join("target/vm/helpers")
        .join(format!("vsock-listen-{}", cache_key([&text[..]])));
    if !out.exists() {
        mkdirp(out.parent().expect("has a parent"))?;
        let tmp = out.with_extension("part");
        util::run(
            Command::new("rustc")
                .args([
                    "--edition",
                    "2021",
                    "-O",
                    "--target",
                    "x86_64-unknown-linux-musl",
                    "-C",
                    "target-feature=+crt-static",
                    "-o",
                ])
                .arg(&tmp)
                .arg(&src),
        )?;
        fs::rename(&tmp, &out)?;
    }
    Ok(out)
}

/// Builds the host binary as a static musl binary (it runs inside the outer guest).
pub fn static_host_binary(root: &Path) -> Result<PathBuf> {
    util::run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--quiet",
                "-p",
                "vmcreds-host",
                "--release",
                "--target",
                "x86_64-unknown-linux-musl",
            ])
            .current_dir(root),
    )?;
    let p = root.join("target/x86_64-unknown-linux-musl/release/vmcreds-host");
    if !p.exists() {
        bail!("cargo build left no {}", p.display());
    }
    Ok(p)
}

/// Decides, once per binary, whether `vmm` can boot a guest on this machine's `/dev/kvm`:
/// it boots the busybox probe image with a deadline. A machine without `/dev/kvm` is nested
/// at once; so is one whose KVM cannot run a Linux guest (a paravirtual nested KVM hangs in
/// early boot: measured, see docs/TESTING.md).
pub fn placement(root: &Path, kernel: &Kernel, vmm: &hv::Binary) -> Placement {
    static CACHE: OnceLock<std::sync::Mutex<Vec<(PathBuf, Placement)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some((_, p)) = cache
        .lock()
        .expect("placement cache")
        .iter()
        .find(|(b, _)| *b == vmm.path)
    {
        return *p;
    }
    let p = match probe_direct(root, kernel, vmm) {
        Ok(true) => Placement::Direct,
        Ok(false) => Placement::Nested,
        Err(e) => {
            eprintln!("xtask: the direct KVM probe could not run ({e:#}); nesting");
            Placement::Nested
        }
    };
    cache
        .lock()
        .expect("placement cache")
        .push((vmm.path.clone(), p));
    p
}

/// How long the direct probe may take: a KVM guest reaches its /init in about a second.
const PROBE_DEADLINE: Duration = Duration::from_secs(20);

/// The marker the probe guest prints.
const PROBE_MARKER: &str = "VMCREDS-KVM-PROBE-OK";

fn probe_direct(root: &Path, kernel: &Kernel, vmm: &hv::Binary) -> Result<bool> {
    if !Path::new("/dev/kvm").exists() {
        eprintln!("xtask: no /dev/kvm: {} runs nested", vmm.kind.program());
        return Ok(false);
    }
    let dir = crate::test::run_dir(root, "kvm-probe", vmm.kind.program())?;
    let base = image::busybox_base(root)?;
    let mut o = image::Overlay::default();
    o.file(
        "/etc/vmcreds-test/init.sh",
        format!("#!/bin/sh\necho {PROBE_MARKER}\n"),
        0o755,
    );
    let ov = dir.join("overlay.cpio");
    o.pack(&dir.join("overlay"), &ov)?;
    let initrd = dir.join("initrd.img");
    image::concat_initrd(&[&base.cpio, &kernel.modules_cpio, &ov], &initrd)?;
    let log = dir.join("serial.log");
    let cmdline = "console=ttyS0 panic=-1 quiet vmcreds.probe_tty=ttyS0";
    let mut cmd = Command::new(&vmm.path);
    match vmm.kind {
        hv::Kind::CloudHypervisor => {
            cmd.arg("--kernel")
                .arg(&kernel.vmlinuz)
                .arg("--initramfs")
                .arg(&initrd)
                .args(["--cmdline", cmdline, "--cpus", "boot=1"])
                .args(["--memory", "size=256M", "--console", "off"])
                .arg("--serial")
                .arg(format!("file={}", log.display()));
        }
        hv::Kind::Crosvm => {
            cmd.args(["run", "--disable-sandbox", "--mem", "256", "--cpus", "1"])
                .arg("--serial")
                .arg(format!(
                    "type=file,path={},hardware=serial,num=1,console=true",
                    log.display()
                ))
                .arg("--initrd")
                .arg(&initrd)
                .args(["-p", cmdline])
                .arg(&kernel.vmlinuz);
        }
    }
    let t = Instant::now();
    let mut g = Guarded::spawn(
        &format!("kvm probe {}", vmm.kind.program()),
        &mut cmd,
        &dir.join("vmm.log"),
        vec![log.clone()],
    )?;
    let seen = util::wait_until(PROBE_DEADLINE, || {
        fs::read_to_string(&log).is_ok_and(|s| s.contains(PROBE_MARKER))
            || matches!(g.poll(), Ok(Some(_)))
    }) && fs::read_to_string(&log).is_ok_and(|s| s.contains(PROBE_MARKER));
    g.kill();
    g.ok = true;
    eprintln!(
        "xtask: {} on this machine's /dev/kvm: {} after {} (probe in {})",
        vmm.kind.program(),
        if seen {
            "booted a guest"
        } else {
            "no guest output"
        },
        util::secs(t.elapsed()),
        dir.display()
    );
    Ok(seen)
}

/// One job: a directory (see the module docs) run where the VMM runs.
#[derive(Debug)]
pub struct Job {
    /// For messages and process names.
    pub name: String,
    /// The run directory (the job directory is `RUN/job`).
    pub run_dir: PathBuf,
    /// The whole run may take this long (outer boot included).
    pub deadline: Duration,
}

impl Job {
    /// The job directory to fill.
    pub fn dir(&self) -> PathBuf {
        self.run_dir.join("job")
    }
}

/// What a job left.
#[derive(Debug)]
pub struct Finished {
    /// `$OUT` as the job left it (nested: from the newest checkpoint).
    pub out: PathBuf,
    /// The job's script ran to its end (`scenario.rc` exists).
    pub completed: bool,
    /// Logs to point at when something failed: the outer console and markers, or the
    /// direct run's output.
    pub logs: Vec<PathBuf>,
    /// Kept so that the caller decides whether the logs are printed on drop.
    pub guard: Guarded,
}

impl Finished {
    /// Pass when `problems` is empty (the logs are then not printed on drop), else a failure
    /// naming the problems, the job's output and its logs.
    pub fn outcome(&mut self, problems: &[String]) -> crate::test::Outcome {
        if problems.is_empty() {
            self.guard.ok = true;
            return crate::test::Outcome::Pass;
        }
        let logs: Vec<String> = self.logs.iter().map(|l| l.display().to_string()).collect();
        crate::test::Outcome::Fail(format!(
            "{} (job output in {}; logs {})",
            problems.join("; "),
            self.out.display(),
            logs.join(", ")
        ))
    }
}

/// [`run`], and when the outer guest misses its deadline, once more: the outer TCG guest
/// stopped making progress in about 1 of 20 nested boots here (measured: docs/TESTING.md).
/// The first try's logs are kept beside, as `first-try-*`.
pub fn run_retrying(
    root: &Path,
    kernel: &Kernel,
    placement: Placement,
    job: &Job,
) -> Result<Finished> {
    match run(root, kernel, placement, job) {
        Err(e) if placement == Placement::Nested => {
            eprintln!(
                "xtask: {}: {e:#}; trying the outer guest once more",
                job.name
            );
            for f in ["out", "console.log", "probe.log", "qemu.log"] {
                let _ = fs::rename(
                    job.run_dir.join(f),
                    job.run_dir.join(format!("first-try-{f}")),
                );
            }
            run(root, kernel, placement, job)
        }
        r => r,
    }
}

/// Runs `job` (its directory filled) in `placement`.
pub fn run(root: &Path, kernel: &Kernel, placement: Placement, job: &Job) -> Result<Finished> {
    let dir = job.dir();
    write_file(&dir.join("lib.sh"), LIB_SH.as_bytes())?;
    let out = job.run_dir.join("out");
    let _ = fs::remove_dir_all(&out);
    mkdirp(&out)?;
    match placement {
        Placement::Direct => run_direct(job, &dir, &out),
        Placement::Nested => run_nested(root, kernel, job, &dir, &out),
    }
}

fn run_direct(job: &Job, dir: &Path, out: &Path) -> Result<Finished> {
    let run = job.run_dir.join("run");
    mkdirp(&run)?;
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("sh");
    cmd.arg(dir.join("scenario.sh"))
        .env("IN", dir)
        .env("OUT", out)
        .env("RUN", &run)
        .env("PATH", path)
        .env_remove("OUTDISKS");
    let log = job.run_dir.join("scenario.log");
    let mut g = Guarded::spawn(&job.name, &mut cmd, &log, vec![])?;
    let st = g.wait_until(Instant::now() + job.deadline);
    if let Ok(st) = &st {
        fs::write(
            out.join("scenario.rc"),
            format!("{}\n", st.code().unwrap_or(-1)),
        )?;
    }
    Ok(Finished {
        out: out.to_path_buf(),
        completed: st.is_ok(),
        logs: vec![log],
        guard: g,
    })
}

/// Bytes of each output disk: room for the inner guest's logs and the process snapshots.
const OUT_DISK_BYTES: u64 = 256 << 20;

fn run_nested(root: &Path, kernel: &Kernel, job: &Job, dir: &Path, out: &Path) -> Result<Finished> {
    let outer = outer_image(root, kernel)?;
    let input = job.run_dir.join("in.tar");
    util::run(
        Command::new("tar")
            .arg("cf")
            .arg(&input)
            .arg("-C")
            .arg(dir)
            .arg("."),
    )?;
    let disks = [job.run_dir.join("out1.img"), job.run_dir.join("out2.img")];
    for d in &disks {
        let f = fs::File::create(d)?;
        f.set_len(OUT_DISK_BYTES)?;
    }
    let drive = |id: &str, file: &Path, serial: &str, ro: bool| -> Vec<std::ffi::OsString> {
        vec![
            "-drive".into(),
            format!(
                "if=none,id={id},format=raw,file={}{}",
                vm::qemu_escape(&file.to_string_lossy()),
                if ro { ",readonly=on" } else { "" }
            )
            .into(),
            "-device".into(),
            format!("virtio-blk-pci,drive={id},serial={serial}").into(),
        ]
    };
    let mut extra: Vec<std::ffi::OsString> = vec!["-cpu".into(), "EPYC-v3,+svm,+npt".into()];
    extra.extend(drive("in", &input, "vmcin", true));
    extra.extend(drive("out1", &disks[0], "vmcout", false));
    extra.extend(drive("out2", &disks[1], "vmcout2", false));
    let spec = VmSpec {
        name: job.name.clone(),
        kernel: outer.vmlinuz,
        initrd: outer.cpio,
        append: "loglevel=4 clocksource=hpet".into(),
        machine: "q35".into(),
        mem_mib: OUTER_MEM_MIB,
        kvm: false,
        extra,
        report_socket: None,
        run_dir: job.run_dir.clone(),
    };
    let r = vm::boot(&spec, &[], job.deadline);
    let guard = match r {
        Ok(b) => b.guard,
        Err(e) => {
            // The deadline passed: keep what the last checkpoint saved, then fail.
            let _ = unpack_newest(&disks, out);
            return Err(e.context(format!(
                "the outer guest did not finish (markers: {}; console: {}; the inner guest's \
                 logs, if a checkpoint saved them, under {})",
                spec.probe_log().display(),
                spec.console_log().display(),
                out.display()
            )));
        }
    };
    let seq = unpack_newest(&disks, out)?;
    for d in &disks {
        let _ = fs::remove_file(d);
    }
    let _ = fs::remove_file(&input);
    Ok(Finished {
        out: out.to_path_buf(),
        completed: seq.is_some() && out.join("scenario.rc").exists(),
        logs: vec![spec.console_log(), spec.probe_log()],
        guard,
    })
}

/// Unpacks the output disk with the higher checkpoint number into `out`; its number.
fn unpack_newest(disks: &[PathBuf], out: &Path) -> Result<Option<u64>> {
    let seq_of = |d: &Path| -> Option<u64> {
        let o = Command::new("tar")
            .arg("xOf")
            .arg(d)
            .arg("./.seq")
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    };
    let best = disks
        .iter()
        .filter_map(|d| seq_of(d).map(|s| (s, d)))
        .max_by_key(|(s, _)| *s);
    let Some((seq, disk)) = best else {
        return Ok(None);
    };
    util::run(Command::new("tar").arg("xf").arg(disk).arg("-C").arg(out))?;
    Ok(Some(seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_absolute_library_paths() {
        let ldd = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f83)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f83)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f83)\n\
                   \tnot a dynamic executable\n";
        assert_eq!(
            shared_libraries(ldd),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
    }

    #[test]
    fn checkpoints_alternate_and_the_newest_is_unpacked() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        fs::create_dir(&out).unwrap();
        let disks = [d.path().join("a.img"), d.path().join("b.img")];
        for (i, disk) in disks.iter().enumerate() {
            fs::File::create(disk).unwrap().set_len(1 << 20).unwrap();
            // What checkpoint does: the whole $OUT as a tar onto a raw disk.
            fs::write(out.join(".seq"), format!("{}\n", i + 1)).unwrap();
            fs::write(out.join("log"), format!("from {i}")).unwrap();
            let st = Command::new("tar")
                .arg("cf")
                .arg(disk)
                .arg("-C")
                .arg(&out)
                .arg(".")
                .status()
                .unwrap();
            assert!(st.success());
        }
        let got = d.path().join("got");
        fs::create_dir(&got).unwrap();
        assert_eq!(unpack_newest(&disks, &got).unwrap(), Some(2));
        assert_eq!(fs::read_to_string(got.join("log")).unwrap(), "from 1");
        let empty = d.path().join("empty.img");
        fs::File::create(&empty).unwrap().set_len(1 << 20).unwrap();
        assert_eq!(unpack_newest(&[empty], &got).unwrap(), None);
    }

    #[test]
    fn lib_sh_is_valid_sh() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("lib.sh");
        fs::write(&f, LIB_SH).unwrap();
        let st = Command::new("sh").arg("-n").arg(&f).status().unwrap();
        assert!(st.success());
        let g = d.path().join("init");
        fs::write(&g, OUTER_INIT).unwrap();
        let st = Command::new("sh").arg("-n").arg(&g).status().unwrap();
        assert!(st.success());
    }
}
