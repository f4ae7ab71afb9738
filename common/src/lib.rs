//! The vmcreds format, in one place.
//!
//! Everything that decides what bytes travel from a VM host to a guest as SMBIOS
//! Type 11 OEM strings, and how systemd reads them back, lives here and only
//! here:
//!
//! - [`name`]: credential names (systemd's rule and the stricter portable rule);
//! - [`base64`]: systemd's base64 decoder, byte for byte, version differences included;
//! - [`oem`]: encoding a credential into an OEM string and classifying an OEM string
//!   the way systemd's `parse_smbios_strings()` does;
//! - [`type11`]: the Type 11 structure (build and parse raw entries);
//! - [`limits`]: systemd's and SMBIOS's limits;
//! - [`predict`]: what systemd will import from a set of Type 11 entries;
//! - [`digest`], [`secret`]: digests (sha256, hmac-sha256) and the redacted byte type;
//! - [`manifest`], [`report`]: the JSON documents; [`render`]: their tables for people;
//! - [`check`]: the guest's check (observation + expectations → report), and
//!   [`verify`]: the host's (manifest + report → verdict), both pure functions.
//!
//! The crate does no process, file or network I/O.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod base64;
pub mod check;
pub mod digest;
pub mod escape;
pub mod file_kind;
pub mod json_out;
pub mod limits;
pub mod manifest;
pub mod name;
pub mod oem;
pub mod predict;
pub mod render;
pub mod report;
pub mod report_bound;
pub mod secret;
pub mod systemd;
pub mod type11;
pub mod verify;

pub use digest::{Digest, DigestAlg, Nonce};
pub use name::{CredentialName, NameRule};
pub use secret::Secret;
