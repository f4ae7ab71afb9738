//! `vmcreds-host qemu [SOURCES] [--runtime-dir DIR] [-- COMMAND ARGS...]`.
//!
//! Modes:
//! - memfd (default) with a COMMAND: the strings go into sealed memfds and
//!   vmcreds-host execs COMMAND with `-smbios type=11,path=/dev/fd/N` appended;
//!   nothing is left on disk. Without a COMMAND it refuses (the paths would be
//!   this process's fds).
//! - `--runtime-dir DIR` with a COMMAND: 0400 files in a fresh 0700
//!   `DIR/vmcreds.XXXXXXXXXXXX`; vmcreds-host runs COMMAND as a child (it does
//!   not exec), forwards SIGTERM, SIGINT and SIGHUP to it, waits, removes the
//!   files and the directory, and exits with the child's status (128 + signal
//!   if it was killed).
//! - `--runtime-dir DIR` without a COMMAND: prints the arguments one per line
//!   and keeps the files; the caller removes the directory (named on stderr)
//!   once QEMU has started.

use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitCode};

use anyhow::Context as _;
use vmcreds_common::limits::Budget;

use super::{load_plan, remove_manifest_out, write_manifest_out};
use crate::cli::QemuArgs;
use crate::target::qemu::{self as target, Delivery, Qemu, QemuError};

/// Runs `qemu`.
pub fn run(args: QemuArgs) -> anyhow::Result<ExitCode> {
    let qemu = if args.command.is_empty() {
        if args.runtime_dir.is_none() {
            return Err(QemuError::PrintMemfd.into());
        }
        Qemu {
            budget: Budget::QEMU_32,
        }
    } else {
        Qemu::inspect(&args.command)?
    };
    let plan = load_plan(&args.sources, qemu.budget)?;
    let delivery = match &args.runtime_dir {
        Some(dir) => target::deliver_files(&plan, dir).with_context(|| {
            format!(
                "cannot create the private credential files under {}",
                dir.display()
            )
        })?,
        None => target::deliver_memfd(&plan).context("cannot create a sealed memfd")?,
    };
    write_manifest_out(&args.sources, &plan)?;
    drop(plan);
    let result = if args.command.is_empty() {
        print_args(delivery)
    } else if args.runtime_dir.is_some() {
        run_child(&args, delivery)
    } else {
        exec(&args, delivery)
    };
    if result.is_err() {
        remove_manifest_out(&args.sources);
    }
    result
}

fn print_args(delivery: Delivery) -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    for a in &delivery.args {
        out.extend_from_slice(a.as_bytes());
        out.push(b'\n');
    }
    std::io::stdout()
        .write_all(&out)
        .context("cannot write to stdout")?;
    if let Some(dir) = delivery.dir {
        let kept = dir.keep();
        eprintln!(
            "vmcreds-host: the files stay in {} for QEMU to read at start-up; remove the directory once QEMU has started",
            kept.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn command(args: &QemuArgs, delivery: &Delivery) -> Command {
    let mut c = Command::new(&args.command[0]);
    c.args(&args.command[1..]).args(&delivery.args);
    c
}

fn exec(args: &QemuArgs, delivery: Delivery) -> anyhow::Result<ExitCode> {
    // The memfds are not close-on-exec: QEMU inherits them and opens
    // /dev/fd/N at start-up. exec only returns on failure.
    let err = command(args, &delivery).exec();
    drop(delivery);
    Err(err).with_context(|| format!("cannot execute {}", args.command[0].to_string_lossy()))
}

fn run_child(args: &QemuArgs, delivery: Delivery) -> anyhow::Result<ExitCode> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // Registered before the spawn, so a stop request in between is not lost
    // with the files still on disk.
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .context("cannot install signal handlers")?;
    let handle = signals.handle();
    let mut child = command(args, &delivery)
        .spawn()
        .with_context(|| format!("cannot execute {}", args.command[0].to_string_lossy()))?;
    let pid = rustix::process::Pid::from_child(&child);
    let forwarder = std::thread::spawn(move || {
        for sig in signals.forever() {
            let s = match sig {
                SIGTERM => rustix::process::Signal::TERM,
                SIGINT => rustix::process::Signal::INT,
                _ => rustix::process::Signal::HUP,
            };
            let _ = rustix::process::kill_process(pid, s);
        }
    });
    let status = child.wait();
    handle.close();
    let _ = forwarder.join();
    drop(delivery); // removes the files and the directory
    let status = status.context("cannot wait for the QEMU process")?;
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c.clamp(0, 255) as u8,
        (None, Some(s)) => (128 + s).clamp(0, 255) as u8,
        _ => 1,
    };
    Ok(ExitCode::from(code))
}
