//! `vmcreds-host qemu [SOURCES] [--runtime-dir DIR] [-- COMMAND ARGS...]`.
//!
//! Modes:
//! - memfd (default) with a COMMAND: the strings go into sealed memfds and
//!   vmcreds-host execs COMMAND with `-smbios type=11,path=/dev/fd/N` appended;
//!   nothing is left on disk. Without a COMMAND it refuses (the paths would be
//!   this process's fds).
//! - `--runtime-dir DIR` with a COMMAND: 0400 files in a fresh 0700
//!   `DIR/vmcreds.XXXXXXXXXXXX`; vmcreds-host runs COMMAND as a child (it does
//!   not exec), waits, removes the files and the directory, and exits with the
//!   child's status (128 + signal if it was killed). Every signal that would
//!   end vmcreds-host and can be caught is blocked before the files exist
//!   ([`crate::signals`]): SIGINT, SIGHUP and SIGTERM are passed on as they
//!   are, any other (SIGQUIT, SIGUSR1, SIGALRM, SIGXCPU, …) as SIGTERM, and
//!   the files go when the child has ended. The child has
//!   `PR_SET_PDEATHSIG` SIGTERM: if vmcreds-host is killed outright
//!   (SIGKILL), QEMU does not run on unsupervised.
//! - `--runtime-dir DIR` without a COMMAND: prints the arguments one per line
//!   and keeps the files; the caller removes the directory (named on stderr)
//!   once QEMU has started.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::Command;

use super::{load_plan, ManifestOut};
use crate::cli::QemuArgs;
use crate::exit::{self, Exit, IoError, Result};
use crate::hv::qemu::{self as hv, Delivery, Qemu, QemuError};
use crate::hv::qemu_version::{PathOption, QemuVersion};
use crate::show_path;
use crate::signals::{self, StopSignals};

/// Runs `qemu`.
pub fn run(args: QemuArgs) -> Result<Exit> {
    let qemu = if args.command.is_empty() {
        if args.runtime_dir.is_none() {
            return Err(QemuError::PrintMemfd.into());
        }
        Qemu {
            budget: hv::BUDGET_32,
        }
    } else {
        Qemu::inspect(&args.command)?
    };
    check_release(&args)?;
    let plan = load_plan(&args.sources, qemu.budget)?;
    // Before the files exist, and until they are gone (or kept on purpose),
    // no signal ends this process: see run_child.
    let stops = match &args.runtime_dir {
        Some(_) => Some(StopSignals::block().map_err(|e| IoError::new("cannot block signals", e))?),
        None => None,
    };
    let delivery = match &args.runtime_dir {
        Some(dir) => hv::deliver_files(&plan, dir).map_err(|e| {
            IoError::new(
                format!(
                    "cannot create the private credential files under {}",
                    show_path(dir)
                ),
                e,
            )
        })?,
        None => {
            hv::deliver_memfd(&plan).map_err(|e| IoError::new("cannot create a sealed memfd", e))?
        }
    };
    let manifest = ManifestOut::write(&args.sources, &plan)?;
    drop(plan);
    if args.command.is_empty() {
        print_args(delivery)?;
        manifest.commit();
        Ok(Exit::Success)
    } else if let Some(stops) = stops {
        run_child(&args, delivery, manifest, stops)
    } else {
        exec(&args, delivery)
    }
}

/// The QEMU release COMMAND runs (or `--qemu-version`) must carry `path=`
/// intact; asked before anything is written.
fn check_release(args: &QemuArgs) -> Result<()> {
    let (version, from) = if let Some(v) = args.qemu_version {
        (v, "--qemu-version".to_owned())
    } else if let Some(program) = args.command.first() {
        let shown = show_path(Path::new(program));
        if !hv::is_qemu_program(program) {
            eprintln!("vmcreds-host: warning: {shown} is not a qemu-system-* program, so its QEMU release is not checked for the path= buffer-overrun fix (10.0.0, 9.2.4, 7.2.18); pass --qemu-version X.Y.Z to check it");
            return Ok(());
        }
        let answer = hv::ask_version(Path::new(program));
        match answer
            .as_ref()
            .ok()
            .and_then(|out| QemuVersion::from_version_output(out))
        {
            Some(v) => (v, format!("{shown} --version")),
            None => {
                let why = match answer {
                    Err(e) => e.to_string(),
                    Ok(_) => "no \"QEMU emulator version\" line".to_owned(),
                };
                eprintln!("vmcreds-host: warning: cannot tell the QEMU release of {shown} ({why}), so the path= buffer-overrun fix is not checked; pass --qemu-version X.Y.Z to check it");
                return Ok(());
            }
        }
    } else {
        return Ok(());
    };
    let found = hv::check_release(version, &from, args.allow_unfixed_qemu)?;
    tracing::info!(%version, from = %from, path_option = ?found, "QEMU release");
    if found != PathOption::Fixed {
        eprintln!("vmcreds-host: warning: delivering to QEMU {version} without the path= buffer-overrun fix, as --allow-unfixed-qemu asks; with a manifest, `vmcreds-guest check` shows a credential that arrived longer than it was sent");
    }
    Ok(())
}

fn print_args(delivery: Delivery) -> Result<()> {
    let mut out = Vec::new();
    for a in &delivery.args {
        out.extend_from_slice(a.as_bytes());
        out.push(b'\n');
    }
    exit::write_stdout(&out)?;
    if let Some(dir) = delivery.dir {
        let kept = dir.keep();
        eprintln!(
            "vmcreds-host: the files stay in {} for QEMU to read at start-up; remove the directory once QEMU has started",
            show_path(&kept)
        );
    }
    Ok(())
}

fn command(args: &QemuArgs, delivery: &Delivery) -> Command {
    let mut c = Command::new(&args.command[0]);
    c.args(&args.command[1..]).args(&delivery.args);
    c
}

fn cannot_execute(args: &QemuArgs, e: std::io::Error) -> IoError {
    IoError::new(
        format!(
            "cannot execute {}",
            show_path(std::path::Path::new(&args.command[0]))
        ),
        e,
    )
}

/// Execs QEMU; it returns only on failure, and then the manifest (not
/// committed) is removed with the delivery.
fn exec(args: &QemuArgs, delivery: Delivery) -> Result<Exit> {
    // The memfds are not close-on-exec: QEMU inherits them and opens
    // /dev/fd/N at start-up.
    tracing::info!(program = %show_path(std::path::Path::new(&args.command[0])), smbios_args = delivery.args.len(), "exec");
    let err = command(args, &delivery).exec();
    drop(delivery);
    Err(cannot_execute(args, err).into())
}

fn run_child(
    args: &QemuArgs,
    delivery: Delivery,
    manifest: ManifestOut<'_>,
    stops: StopSignals,
) -> Result<Exit> {
    let parent = rustix::process::getpid();
    let mut cmd = command(args, &delivery);
    // SAFETY: the closure runs in the forked child before exec and makes
    // only async-signal-safe system calls (prctl, getppid); it allocates
    // nothing. std has already reset the child's signal mask.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(signals::PARENT_DEATH_SIGNAL))?;
            // vmcreds-host died before the prctl: nothing would stop us later.
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::ErrorKind::Other.into());
            }
            Ok(())
        })
    };
    let spawned = cmd.spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            drop(delivery);
            return Err(cannot_execute(args, e).into());
        }
    };
    manifest.commit();
    let pid = rustix::process::Pid::from_child(&child);
    let status = loop {
        let sig = match stops.wait() {
            Ok(s) => s,
            Err(e) => {
                // Without signals nothing says when the child ends: stop it,
                // wait for it, then remove the files.
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                let _ = child.wait();
                drop(delivery);
                return Err(IoError::new("cannot wait for signals", e).into());
            }
        };
        if sig == libc::SIGCHLD {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) => continue,
                Err(e) => break Err(e),
            }
        }
        let to = signals::forwarded_as(sig);
        eprintln!(
            "vmcreds-host: {}: stopping the VM ({} to pid {}), then removing the credential files",
            signals::name(sig),
            signals::name(to.as_raw()),
            pid.as_raw_nonzero()
        );
        // Our own child, reaped only by try_wait above: the pid is still its.
        let _ = rustix::process::kill_process(pid, to);
    };
    drop(delivery); // removes the files and the directory
    stops.keep_blocked();
    let status = status.map_err(|e| IoError::new("cannot wait for the QEMU process", e))?;
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c.clamp(0, 255) as u8,
        (None, Some(s)) => (128 + s).clamp(0, 255) as u8,
        _ => 1,
    };
    Ok(Exit::Child(code))
}
