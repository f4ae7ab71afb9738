//! How a command ends. Every error type says its [`Exit`] ([`Classify`]);
//! a [`Failure`] carries the error to `main` together with that exit
//! (`vmcreds_os::failure`), and `main` alone turns an exit into a number.

use std::io;

use thiserror::Error;

/// The outcome of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Done; for `collect` and `verify`: every credential arrived whole.
    Success,
    /// Verification failed.
    Failed,
    /// A usage error or a refused input (name, duplicate, limit, a refused
    /// target or machine type, a malformed, oversized or foreign document).
    Refused,
    /// Something could not be read, written, executed or connected to.
    Io,
    /// The hypervisor vmcreds-host ran as its child ended with this status
    /// (128 + the signal if a signal killed it), passed through.
    Child(u8),
}

pub use vmcreds_os::failure::{Classify, ResultExt};

/// An error on its way to `main`, with its [`Exit`].
pub type Failure = vmcreds_os::failure::Failure<Exit>;

/// Result of a command.
pub type Result<T> = std::result::Result<T, Failure>;

/// An operating-system failure not covered by a more specific error: what
/// was being done, and the cause with its errno (exit 3).
#[derive(Debug, Error)]
#[error("{what}")]
pub struct IoError {
    /// What was being done, with the path if there is one.
    pub what: String,
    /// The cause.
    #[source]
    pub source: io::Error,
}

impl IoError {
    /// Wraps `source` with a description of what failed.
    pub fn new(what: impl Into<String>, source: io::Error) -> IoError {
        IoError {
            what: what.into(),
            source,
        }
    }
}

impl Classify<Exit> for IoError {
    fn exit(&self) -> Exit {
        Exit::Io
    }
}

// The documents' errors, from vmcreds-common: a malformed, oversized or
// foreign document is refused input.
impl Classify<Exit> for vmcreds_common::report::ReportError {
    fn exit(&self) -> Exit {
        Exit::Refused
    }
}

impl Classify<Exit> for vmcreds_common::manifest::ManifestError {
    fn exit(&self) -> Exit {
        Exit::Refused
    }
}

impl Classify<Exit> for vmcreds_common::verify::VerifyError {
    fn exit(&self) -> Exit {
        Exit::Refused
    }
}

/// A usage error found after argument parsing (exit 2), for the few checks
/// clap cannot express.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct Usage(pub String);

impl Classify<Exit> for Usage {
    fn exit(&self) -> Exit {
        Exit::Refused
    }
}

/// Writes all of `bytes` to stdout and flushes. A closed pipe (`| head`) is
/// not an error: the reader has what it wanted.
pub fn write_stdout(bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(IoError::new("cannot write to stdout", e).into())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_context_keeps_the_exit() {
        let r: std::result::Result<(), IoError> = Err(IoError::new(
            "cannot open x",
            io::ErrorKind::NotFound.into(),
        ));
        let f = r.context("loading the plan").unwrap_err();
        assert_eq!(f.exit(), Exit::Io);
        assert_eq!(
            format!("{:#}", f.error()),
            "loading the plan: cannot open x: entity not found"
        );
        let f = Failure::from(Usage("bad".into())).context("outer");
        assert_eq!(f.exit(), Exit::Refused);
    }
}
