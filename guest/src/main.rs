//! The `vmcreds-guest` binary: parse, run, map the outcome to an exit code.

use std::process::ExitCode;

use vmcreds_guest::cli::Cli;
use vmcreds_guest::exit::{self, Exit};

/// A check is short and makes thousands of small allocations: see
/// `vmcreds_os::arena` for why not musl's allocator.
#[global_allocator]
static ALLOC: vmcreds_os::arena::Arena = vmcreds_os::arena::Arena::new();

fn code(e: Exit) -> ExitCode {
    ExitCode::from(match e {
        Exit::Verified | Exit::Success => 0,
        Exit::Failed => 1,
        Exit::Usage => 2,
        Exit::Unreadable => 3,
    })
}

fn main() -> ExitCode {
    // First of all: no core dump and no /proc/PID/mem for others of this
    // user, since loaded secrets are in this process's memory. (exec resets
    // it for a hypervisor this process starts.)
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    // Reports and imported files are private by default.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::parse_from(&args) {
        Ok(c) => c,
        Err(e) if e.use_stderr() => {
            eprint!("{}", vmcreds_os::usage::render(e));
            return code(Exit::Usage);
        }
        Err(e) => {
            // --help, --version: text of our own.
            let _ = e.print();
            return code(Exit::Success);
        }
    };
    vmcreds_os::log::init("vmcreds-guest", cli.verbose);
    match vmcreds_guest::run(&cli) {
        Ok(e) => code(e),
        Err(f) => {
            match exit::hint(&f) {
                Some(h) => eprintln!("vmcreds-guest: {:#}; {h}", f.error()),
                None => eprintln!("vmcreds-guest: {:#}", f.error()),
            }
            code(f.exit())
        }
    }
}
