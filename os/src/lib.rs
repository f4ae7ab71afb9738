//! The Linux file-system primitives `vmcreds-host` and `vmcreds-guest` share.
//!
//! - [`private`]: files only their owner can read, written atomically and
//!   never through a symbolic link;
//! - [`beneath`]: paths resolved inside a root directory, never outside it;
//! - [`bounded`]: reads that never keep more than a caller's bound;
//! - [`arena`]: a small allocator for short-lived processes;
//! - [`failure`]: errors that carry how they end the process;
//! - [`log`]: `tracing` diagnostics on stderr, journald-friendly;
//! - [`require`]: tests' preconditions (root, QEMU): skipped with a reason,
//!   or failed when `VMCREDS_REQUIRE` names them;
//! - [`usage`]: clap's refusals of a command line, escaped;
//! - [`vsock`]: `AF_VSOCK` streams (the guest connects, the host listens).
//!
//! Format rules, and the one naming of file kinds, live in `vmcreds-common`
//! (which does no I/O); this crate knows nothing about credentials.

#![deny(missing_docs)]

#[cfg(not(target_os = "linux"))]
compile_error!("vmcreds-os uses Linux system calls and runs only on Linux");

pub mod arena;
pub mod beneath;
pub mod bounded;
pub mod failure;
pub mod log;
pub mod private;
pub mod require;
pub mod usage;
pub mod vsock;

/// A path for a message: every byte outside printable ASCII (and `\` and
/// `"`) escaped as `\xNN`, so a path an operator or a hostile tree chose can
/// never put control sequences into a terminal or a journal.
pub fn show_path(p: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    vmcreds_common::escape::escape_bytes(p.as_os_str().as_bytes(), 4096)
}
