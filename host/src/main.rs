//! The `vmcreds-host` binary: a thin shell around the `vmcreds_host` library.
//! It alone turns an [`Exit`] into a number.

use std::io::Write as _;
use std::process::ExitCode;

use vmcreds_host::Exit;

fn code(e: Exit) -> ExitCode {
    ExitCode::from(match e {
        Exit::Success => 0,
        Exit::Failed => 1,
        Exit::Refused => 2,
        Exit::Io => 3,
        Exit::Child(status) => status,
    })
}

fn main() -> ExitCode {
    // First of all: no core dump and no /proc/PID/mem for others of this
    // user, since loaded secrets are in this process's memory. (exec resets
    // it for a hypervisor this process starts.)
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    // Everything this process creates (files, sockets) is private.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = match vmcreds_host::cli::parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            eprint!("{}", vmcreds_os::usage::render(e));
            return code(Exit::Refused);
        }
        Err(e) => {
            // --help, --version: text of our own.
            let _ = e.print();
            return code(Exit::Success);
        }
    };
    vmcreds_os::log::init("vmcreds-host", cli.verbose);
    match vmcreds_host::run(cli) {
        Ok(exit) => code(exit),
        Err(failure) => {
            let _ = writeln!(
                std::io::stderr(),
                "vmcreds-host: error: {:#}",
                failure.error()
            );
            code(failure.exit())
        }
    }
}
