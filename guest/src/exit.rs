//! The process outcome. `main` alone maps it to an exit status.

use thiserror::Error;

/// How a command ended (exit codes 0/1/2/3 are assigned in `main`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every expectation met, or nothing failed (0).
    Verified,
    /// Verification failed, or `get` found nothing (1).
    Failed,
    /// Usage error (2).
    Usage,
    /// Could not read what it needs (3).
    Unreadable,
}

/// A usage error (exit 2): bad arguments or a bad `--manifest` file.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Classifies an error: usage errors exit 2, everything else 3 (could not
/// read, write or connect).
pub fn classify(e: &anyhow::Error) -> Exit {
    if e.chain().any(|c| c.is::<UsageError>()) {
        Exit::Usage
    } else {
        Exit::Unreadable
    }
}

/// The hint printed after an error, if any ("run as root").
pub fn hint(e: &anyhow::Error) -> Option<&'static str> {
    e.chain()
        .filter_map(|c| c.downcast_ref::<crate::sysfs::ReadError>())
        .any(|r| r.is_permission())
        .then_some("run as root")
}
