//! The `vmcreds-host` binary: a thin shell around the `vmcreds_host` library.

use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Everything this process creates (files, sockets) is private.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = match vmcreds_host::cli::parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                vmcreds_host::EXIT_REFUSED
            } else {
                0
            });
        }
    };
    match vmcreds_host::run(cli) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "vmcreds-host: error: {err:#}");
            ExitCode::from(vmcreds_host::exit_code_for(&err))
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
