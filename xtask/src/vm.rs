//! Booting one guest under QEMU, with a process group, deadlines and a kill-on-drop guard.
//!
//! Devices of every guest:
//! - `-serial file:console.log` (ttyS0, the kernel and systemd console, kept for failures);
//! - `-serial file:probe.log` (ttyS1, written only by the test probe, so its markers are never
//!   interleaved with console messages);
//! - with a report socket: `-device virtio-serial -chardev socket,id=report,path=SOCK
//!   -device virtserialport,chardev=report,name=vmcreds.report`. QEMU is the socket *client*
//!   and the listener comes first: the driver starts `vmcreds-host collect --listen
//!   unix:SOCK` (which reads the manifest only once the report has arrived) and waits for
//!   SOCK before it starts QEMU. So no `reconnect=` option is needed, whose spelling depends
//!   on the QEMU release (`reconnect=` was removed in 10.2, `reconnect-ms=` is new in 9.2, and
//!   11.0.0 aborts when the first `reconnect-ms` connect fails, QEMU GitLab #3528).
//!
//! The guest powers itself off when done; `-no-reboot` and `panic=-1` turn a panic into an exit.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// What to boot.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// Short name for messages and the run directory.
    pub name: String,
    /// Kernel image.
    pub kernel: PathBuf,
    /// Initramfs.
    pub initrd: PathBuf,
    /// Kernel command line, appended after `console=ttyS0 panic=-1`.
    pub append: String,
    /// `-M` value, e.g. `q35` or `q35,smbios-entry-point-type=64`.
    pub machine: String,
    /// Memory in MiB.
    pub mem_mib: u32,
    /// Use KVM instead of TCG.
    pub kvm: bool,
    /// Extra QEMU arguments (e.g. `-smbios type=11,path=...`, `-fw_cfg ...`).
    pub extra: Vec<OsString>,
    /// Unix socket QEMU connects its `vmcreds.report` virtio-serial port to.
    pub report_socket: Option<PathBuf>,
    /// Run directory for logs.
    pub run_dir: PathBuf,
}

impl VmSpec {
    /// The `qemu-system-x86_64` argument list (without the program name).
    pub fn qemu_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(s.into());
        push("-M");
        push(&self.machine);
        push("-accel");
        push(if self.kvm { "kvm" } else { "tcg" });
        push("-m");
        push(&self.mem_mib.to_string());
        push("-display");
        push("none");
        push("-monitor");
        push("none");
        push("-no-reboot");
        push("-nodefaults");
        push("-kernel");
        a.push(self.kernel.clone().into());
        a.push("-initrd".into());
        a.push(self.initrd.clone().into());
        a.push("-append".into());
        a.push(format!("console=ttyS0 panic=-1 {}", self.append).into());
        a.push("-serial".into());
        a.push(qemu_file_arg("file:", &self.console_log()));
        a.push("-serial".into());
        a.push(qemu_file_arg("file:", &self.probe_log()));
        if let Some(sock) = &self.report_socket {
            a.push("-device".into());
            // microvm has no PCI: its virtio devices sit on virtio-mmio.
            a.push(
                if self.machine.starts_with("microvm") {
                    "virtio-serial-device"
                } else {
                    "virtio-serial"
                }
                .into(),
            );
            a.push("-chardev".into());
            let mut c = OsString::from("socket,id=report,path=");
            c.push(qemu_escape(&sock.to_string_lossy()));
            a.push(c);
            a.push("-device".into());
            a.push("virtserialport,chardev=report,name=vmcreds.report".into());
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// The console (ttyS0) log path.
    pub fn console_log(&self) -> PathBuf {
        self.run_dir.join("console.log")
    }

    /// The probe (ttyS1) log path.
    pub fn probe_log(&self) -> PathBuf {
        self.run_dir.join("probe.log")
    }
}

/// Doubles commas, as QemuOpts requires inside option values.
pub fn qemu_escape(s: &str) -> String {
    s.replace(',', ",,")
}

fn qemu_file_arg(prefix: &str, p: &Path) -> OsString {
    let mut s = OsString::from(prefix);
    s.push(qemu_escape(&p.to_string_lossy()));
    s
}

/// A running process in its own process group, killed (whole group) on drop.
#[derive(Debug)]
pub struct Guarded {
    child: Child,
    name: String,
    /// Logs to point at when the run fails.
    pub logs: Vec<PathBuf>,
    /// Set when the run succeeded; otherwise the drop prints the log paths.
    pub ok: bool,
    finished: Option<ExitStatus>,
}

impl Guarded {
    /// Spawns `cmd` in a new process group with stdout/stderr to `out_log`.
    pub fn spawn(
        name: &str,
        cmd: &mut Command,
        out_log: &Path,
        logs: Vec<PathBuf>,
    ) -> Result<Self> {
        Self::spawn_split(name, cmd, out_log, None, logs)
    }

    /// Like `spawn`, with stderr to `err_log` when given.
    pub fn spawn_split(
        name: &str,
        cmd: &mut Command,
        out_log: &Path,
        err_log: Option<&Path>,
        mut logs: Vec<PathBuf>,
    ) -> Result<Self> {
        use std::os::unix::process::CommandExt;
        let out = fs::File::create(out_log)
            .with_context(|| format!("could not create {}", out_log.display()))?;
        let err = match err_log {
            Some(p) => {
                fs::File::create(p).with_context(|| format!("could not create {}", p.display()))?
            }
            None => out.try_clone()?,
        };
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("could not start {}", crate::util::show(cmd)))?;
        if let Some(p) = err_log {
            logs.insert(0, p.to_path_buf());
        }
        logs.insert(0, out_log.to_path_buf());
        Ok(Guarded {
            child,
            name: name.to_string(),
            logs,
            ok: false,
            finished: None,
        })
    }

    /// Whether the process has exited (reaps it if so).
    pub fn poll(&mut self) -> Result<Option<ExitStatus>> {
        if self.finished.is_none() {
            self.finished = self.child.try_wait()?;
        }
        Ok(self.finished)
    }

    /// Waits for the process to exit, until `deadline`.
    pub fn wait_until(&mut self, deadline: Instant) -> Result<ExitStatus> {
        loop {
            if let Some(st) = self.poll()? {
                return Ok(st);
            }
            if Instant::now() >= deadline {
                self.kill();
                bail!("{} did not finish before its deadline; killed", self.name);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the whole process group.
    pub fn kill(&mut self) {
        if self.finished.is_some() {
            return;
        }
        // The child leads its own process group (`process_group(0)`), so its pid is the
        // group id: everything it started (QEMU under vmcreds-host, a nested VMM) goes too.
        if let Some(pgid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        self.finished = self.child.wait().ok();
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.kill();
        if !self.ok {
            for l in &self.logs {
                if l.exists() {
                    eprintln!("xtask: {}: log kept at {}", self.name, l.display());
                }
            }
        }
    }
}

/// Boots `spec` with `program args` (the program is qemu-system-x86_64 itself or a wrapper such
/// as `vmcreds-host qemu ... --`, whose own arguments come first) and waits for power-off.
pub fn boot(spec: &VmSpec, wrapper: &[OsString], timeout: Duration) -> Result<BootResult> {
    crate::util::mkdirp(&spec.run_dir)?;
    let mut argv: Vec<OsString> = wrapper.to_vec();
    argv.push("qemu-system-x86_64".into());
    argv.extend(spec.qemu_args());
    fs::write(
        spec.run_dir.join("argv.txt"),
        argv.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("\n"),
    )?;
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    let t = Instant::now();
    let mut g = Guarded::spawn(
        &format!("vm {}", spec.name),
        &mut cmd,
        &spec.run_dir.join("qemu.log"),
        vec![spec.console_log(), spec.probe_log()],
    )?;
    let st = g.wait_until(Instant::now() + timeout);
    let elapsed = t.elapsed();
    let st = st?;
    let probe = fs::read(spec.probe_log()).unwrap_or_default();
    let qemu_log = fs::read_to_string(spec.run_dir.join("qemu.log")).unwrap_or_default();
    Ok(BootResult {
        status: st,
        elapsed,
        probe,
        qemu_log,
        guard: g,
    })
}

/// What a boot left behind.
#[derive(Debug)]
pub struct BootResult {
    /// QEMU's exit status.
    pub status: ExitStatus,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
    /// Bytes the probe wrote to ttyS1.
    pub probe: Vec<u8>,
    /// QEMU's stdout/stderr.
    pub qemu_log: String,
    /// The guard; set `guard.ok = true` to drop the logs silently.
    pub guard: Guarded,
}

/// Sections of a probe log: `@@SECTION name` lines start one; text until the next.
pub fn probe_sections(probe: &[u8]) -> Vec<(String, Vec<String>)> {
    let text = String::from_utf8_lossy(probe).replace('\r', "");
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("@@VMCREDS-PROBE-BEGIN@@") {
            inside = true;
            continue;
        }
        if line.starts_with("@@VMCREDS-PROBE-END@@") {
            break;
        }
        if !inside {
            continue;
        }
        if let Some(name) = line.strip_prefix("@@SECTION ") {
            out.push((name.trim().to_string(), Vec::new()));
        } else if let Some(last) = out.last_mut() {
            last.1.push(line.to_string());
        }
    }
    out
}

/// The lines of section `name`, if present.
pub fn section<'a>(secs: &'a [(String, Vec<String>)], name: &str) -> Option<&'a [String]> {
    secs.iter()
        .find(|(n, _)| n == name)
        .map(|(_, l)| l.as_slice())
}

/// Whether the probe finished (its end marker is present).
pub fn probe_complete(probe: &[u8]) -> bool {
    String::from_utf8_lossy(probe).contains("@@VMCREDS-PROBE-END@@")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_args_escape_commas_and_use_tcg() {
        let spec = VmSpec {
            name: "t".into(),
            kernel: "/k".into(),
            initrd: "/i".into(),
            append: "quiet".into(),
            machine: "q35".into(),
            mem_mib: 512,
            kvm: false,
            extra: vec![],
            report_socket: Some("/tmp/a,b/s".into()),
            run_dir: "/r,un".into(),
        };
        let a: Vec<String> = spec
            .qemu_args()
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        assert!(a.windows(2).any(|w| w[0] == "-accel" && w[1] == "tcg"));
        assert!(
            a.iter().any(|s| s == "socket,id=report,path=/tmp/a,,b/s"),
            "{a:?}"
        );
        assert!(a.iter().any(|s| s == "file:/r,,un/console.log"), "{a:?}");
    }

    #[test]
    fn probe_sections_split_on_markers() {
        let log = b"noise\r\n@@VMCREDS-PROBE-BEGIN@@\r\n@@SECTION a\r\n1\r\n2\r\n@@SECTION b\r\n@@VMCREDS-PROBE-END@@\r\nafter\n";
        let s = probe_sections(log);
        assert_eq!(section(&s, "a").unwrap(), ["1", "2"]);
        assert!(section(&s, "b").unwrap().is_empty());
        assert!(probe_complete(log));
    }

    #[test]
    fn guard_kills_the_process_group() {
        let dir = std::env::temp_dir().join(format!("xtask-guard-{}", std::process::id()));
        crate::util::mkdirp(&dir).unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut g = Guarded::spawn("sleep", &mut cmd, &dir.join("out.log"), vec![]).unwrap();
        let pid = g.child.id();
        g.ok = true;
        let t = Instant::now();
        let err = g.wait_until(Instant::now() + Duration::from_millis(300));
        assert!(err.is_err());
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(!Path::new(&format!("/proc/{pid}")).exists() || g.poll().unwrap().is_some());
        let _ = fs::remove_dir_all(&dir);
    }
}
