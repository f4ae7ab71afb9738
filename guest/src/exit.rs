//! How a command ends. Every error type says its [`Exit`] ([`Classify`]); a
//! [`Failure`] carries the error to `main` with that exit
//! (`vmcreds_os::failure`), and `main` alone turns an exit into a number.

use thiserror::Error;

pub use vmcreds_os::failure::{Classify, ResultExt};

/// The outcome of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `check`/`import`: every expectation met, or nothing expected and
    /// nothing failed (0).
    Verified,
    /// A command that verifies nothing did its job (0).
    Success,
    /// Verification failed, or `get` found nothing (1).
    Failed,
    /// A usage error: bad arguments or a bad `--manifest` file (2).
    Usage,
    /// Could not read, write or connect to what it needs (3).
    Unreadable,
}

/// An error on its way to `main`, with its [`Exit`].
pub type Failure = vmcreds_os::failure::Failure<Exit>;

/// Result of a command.
pub type Result<T> = std::result::Result<T, Failure>;

/// A usage error found after argument parsing (exit 2).
#[derive(Debug, Error)]
#[error("{0}")]
pub struct Usage(pub String);

impl Classify<Exit> for Usage {
    fn exit(&self) -> Exit {
        Exit::Usage
    }
}

/// The hint printed after an error, if any ("run as root").
pub fn hint(f: &Failure) -> Option<&'static str> {
    f.error()
        .chain()
        .filter_map(|c| c.downcast_ref::<crate::sysfs::ReadError>())
        .any(|r| r.is_permission())
        .then_some("run as root")
}
