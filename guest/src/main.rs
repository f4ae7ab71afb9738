//! The `vmcreds-guest` binary: parse, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use vmcreds_guest::cli::Cli;
use vmcreds_guest::exit::{self, Exit};

fn code(e: Exit) -> ExitCode {
    ExitCode::from(match e {
        Exit::Verified => 0,
        Exit::Failed => 1,
        Exit::Usage => 2,
        Exit::Unreadable => 3,
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                code(Exit::Usage)
            } else {
                code(Exit::Verified)
            };
        }
    };
    match vmcreds_guest::run(&cli) {
        Ok(e) => code(e),
        Err(e) => {
            match exit::hint(&e) {
                Some(h) => eprintln!("vmcreds-guest: {e:#}; {h}"),
                None => eprintln!("vmcreds-guest: {e:#}"),
            }
            code(exit::classify(&e))
        }
    }
}
