//! Credential sources: `--load`, `--load-dir`, `--set`, `--oem`, loaded in
//! command-line order into [`Secret`]s.
//!
//! Decisions (documented in the README material):
//! - `--load NAME:PATH` with a PATH without `/` is looked up in
//!   `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`); a missing variable is
//!   an error naming the variable and the credential.
//! - A file over systemd's 1 MiB per-credential limit is refused from its size,
//!   before it is read; pipes and other streams are read up to the limit plus
//!   one byte and then refused.
//! - Every source is opened `O_NONBLOCK`, so opening a FIFO never waits for a
//!   writer. A FIFO that nothing has open for writing (and that holds no
//!   bytes) is refused rather than read as an empty value; a pipe with a
//!   writer (`--load A:<(command)`, a FIFO whose writer started first) is read
//!   to EOF, saying on stderr after [`STREAM_ANNOUNCE`] that it waits, and
//!   refused once [`STREAM_IDLE_MAX`] pass without a byte or EOF.
//! - A value is read into one buffer sized from `fstat` (plus the byte that
//!   detects growth); a stream grows it through [`Secret::extend_from_slice`],
//!   which wipes the old allocation, and the read chunk is wiped too: no copy
//!   of a secret is freed unwiped.
//! - `--load-dir DIR` loads each regular file, sorted by name; names starting
//!   with `.` are skipped (editor and tool leftovers such as `.gitkeep`);
//!   symbolic links are refused (the directory's files are loaded, nothing
//!   outside it: `--load NAME:PATH` follows a link on purpose), and so is any
//!   other file type; a directory with nothing to load is refused.
//! - Error messages name the credential and the path with errno, never a value.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thiserror::Error;
use vmcreds_common::escape::escape_name;
use vmcreds_common::limits::CREDENTIAL_SIZE_MAX;
use vmcreds_common::Secret;

use vmcreds_common::file_kind::FileKind;

use crate::cli::SourceSpec;
use crate::exit::{Classify, Exit};
use crate::show_path;

/// How long a stream may give neither a byte nor EOF before it is refused.
pub const STREAM_IDLE_MAX: Duration = Duration::from_secs(60);

/// After how long of waiting on a stream vmcreds-host says so on stderr.
pub const STREAM_ANNOUNCE: Duration = Duration::from_secs(2);

/// The environment variable systemd sets for `LoadCredential=`.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// Where a credential came from, for messages (never holds a value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `--load NAME:PATH` (PATH as resolved).
    Load {
        /// The name as typed.
        name: String,
        /// The resolved path.
        path: PathBuf,
    },
    /// A file of `--load-dir DIR`.
    LoadDir {
        /// The directory.
        dir: PathBuf,
        /// The file name.
        file: String,
    },
    /// `--set NAME=...`.
    Set {
        /// The name as typed.
        name: String,
    },
    /// The n-th `--oem` (1-based).
    Oem {
        /// Position among the `--oem` flags.
        index: usize,
    },
    /// A string already in a cloud-hypervisor VmConfig's
    /// `platform.oem_strings` (API mode).
    VmConfig {
        /// The VmConfig file, for messages.
        file: String,
        /// Position in the array (0-based, as JSON counts).
        index: usize,
    },
}

impl Origin {
    /// Whether values from here are public: `--set` and `--oem` are on
    /// vmcreds-host's own argv already; files and VmConfig strings may hold
    /// secrets.
    pub fn is_public(&self) -> bool {
        matches!(self, Origin::Set { .. } | Origin::Oem { .. })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Load { name, path } => {
                write!(
                    f,
                    "--load \"{}\":{}",
                    escape_name(name.as_bytes()),
                    show_path(path)
                )
            }
            Origin::LoadDir { dir, file } => {
                write!(
                    f,
                    "--load-dir {} (file \"{}\")",
                    show_path(dir),
                    escape_name(file.as_bytes())
                )
            }
            Origin::Set { name } => write!(f, "--set \"{}\"", escape_name(name.as_bytes())),
            Origin::Oem { index } => write!(f, "--oem #{index}"),
            Origin::VmConfig { file, index } => {
                write!(f, "--vm-config {file}: platform.oem_strings[{index}]")
            }
        }
    }
}

/// One loaded source.
#[derive(Debug)]
pub enum Loaded {
    /// A named value.
    Credential {
        /// The name, not yet validated.
        name: String,
        /// Where it came from.
        origin: Origin,
        /// The value.
        value: Secret,
    },
    /// A raw OEM string, passed as given.
    Oem {
        /// Where it came from.
        origin: Origin,
        /// The string as given.
        string: String,
    },
}

/// Why a source cannot be loaded.
#[derive(Debug, Error)]
pub enum SourceError {
    /// `--load` without `:`.
    #[error("--load \"{0}\": expected NAME:PATH")]
    LoadSyntax(String),
    /// `--set` without `=`.
    #[error("--set: an argument has no '=' (expected NAME=VALUE)")]
    SetSyntax,
    /// A bare PATH but no `$CREDENTIALS_DIRECTORY`.
    #[error("credential \"{name}\": \"{path}\" has no '/', so it is looked up in ${CREDENTIALS_DIRECTORY}, but {CREDENTIALS_DIRECTORY} is not set (run under systemd with LoadCredential=, or give a path such as ./{path})")]
    NoCredentialsDirectory {
        /// The credential.
        name: String,
        /// The bare file name.
        path: String,
    },
    /// The file cannot be opened.
    #[error("credential \"{name}\": cannot open {}", show_path(path))]
    Open {
        /// The credential.
        name: String,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file cannot be read.
    #[error("credential \"{name}\": cannot read {}", show_path(path))]
    Read {
        /// The credential.
        name: String,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A directory where a file was expected.
    #[error(
        "credential \"{name}\": {} is a directory, not a file (use --load-dir)",
        show_path(path)
    )]
    IsDirectory {
        /// The credential.
        name: String,
        /// The path.
        path: PathBuf,
    },
    /// Over the per-credential limit, known from the file size.
    #[error("credential \"{name}\": {} is {actual} bytes, over systemd's limit of {limit} bytes per credential by {} (not read)", show_path(path), actual - limit)]
    TooLarge {
        /// The credential.
        name: String,
        /// The path.
        path: PathBuf,
        /// Limit.
        limit: u64,
        /// File size.
        actual: u64,
    },
    /// A FIFO nothing has open for writing: reading it would give an empty
    /// value (or, opened blocking, wait forever for a writer).
    #[error("credential \"{name}\": {} is a FIFO with no writer (nothing has it open for writing, and it holds no bytes); vmcreds-host does not wait for one: start the writer first, or pass a pipe such as --load NAME:<(command)", show_path(path))]
    NoWriter {
        /// The credential.
        name: String,
        /// The path.
        path: PathBuf,
    },
    /// A stream that gives neither bytes nor EOF for too long.
    #[error("credential \"{name}\": {} gave no byte and no end of file for {secs} s; refusing to wait longer for its writer", show_path(path))]
    Stalled {
        /// The credential.
        name: String,
        /// The path.
        path: PathBuf,
        /// [`STREAM_IDLE_MAX`] in seconds.
        secs: u64,
    },
    /// Over the per-credential limit, found while reading a stream.
    #[error(
        "credential \"{name}\": {} holds more than systemd's limit of {limit} bytes per credential",
        show_path(path)
    )]
    StreamTooLarge {
        /// The credential.
        name: String,
        /// The path.
        path: PathBuf,
        /// Limit.
        limit: u64,
    },
    /// The directory cannot be listed.
    #[error("--load-dir {}: cannot read the directory", show_path(dir))]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A symbolic link in `--load-dir`.
    #[error("--load-dir {}: \"{entry}\" is a symbolic link; only regular files inside the directory are loaded (use --load NAME:PATH to follow a link)", show_path(dir))]
    Symlink {
        /// The directory.
        dir: PathBuf,
        /// The entry, escaped.
        entry: String,
    },
    /// Another file type in `--load-dir`.
    #[error(
        "--load-dir {}: \"{entry}\" is a {kind}, not a regular file",
        show_path(dir)
    )]
    NotRegular {
        /// The directory.
        dir: PathBuf,
        /// The entry, escaped.
        entry: String,
        /// Its type.
        kind: FileKind,
    },
    /// A file name that is not UTF-8 (so not a valid credential name).
    #[error("--load-dir {}: file name \"{entry}\" is not valid UTF-8, so it cannot be a credential name", show_path(dir))]
    NotUtf8 {
        /// The directory.
        dir: PathBuf,
        /// The entry, escaped.
        entry: String,
    },
    /// Nothing to load.
    #[error(
        "--load-dir {}: no regular file to load (names starting with '.' are skipped)",
        show_path(dir)
    )]
    EmptyDir {
        /// The directory.
        dir: PathBuf,
    },
}

impl Classify<Exit> for SourceError {
    fn exit(&self) -> Exit {
        match self {
            SourceError::Open { .. } | SourceError::Read { .. } | SourceError::ReadDir { .. } => {
                Exit::Io
            }
            _ => Exit::Refused,
        }
    }
}

/// Result alias for sources.
pub type Result<T> = std::result::Result<T, SourceError>;

/// Loads every source in order. `credentials_directory` is the value of
/// `$CREDENTIALS_DIRECTORY`, if set.
pub fn load_all(specs: &[SourceSpec], credentials_directory: Option<&Path>) -> Result<Vec<Loaded>> {
    let mut out = Vec::new();
    let mut oem_index = 0;
    for spec in specs {
        match spec {
            SourceSpec::Load(arg) => {
                let (name, path) = arg
                    .split_once(':')
                    .ok_or_else(|| SourceError::LoadSyntax(escape_name(arg.as_bytes())))?;
                if name.is_empty() || path.is_empty() {
                    return Err(SourceError::LoadSyntax(escape_name(arg.as_bytes())));
                }
                let path = resolve(name, path, credentials_directory)?;
                let value = read_value(name, &path)?;
                tracing::info!(name, path = %vmcreds_os::show_path(&path), bytes = value.len(), "loaded --load");
                out.push(Loaded::Credential {
                    name: name.to_owned(),
                    origin: Origin::Load {
                        name: name.to_owned(),
                        path,
                    },
                    value,
                });
            }
            SourceSpec::LoadDir(dir) => {
                let files = load_dir(dir)?;
                tracing::info!(dir = %vmcreds_os::show_path(dir), files = files.len(), "loaded --load-dir");
                out.extend(files);
            }
            SourceSpec::Set(arg) => {
                let (name, value) = arg.split_once('=').ok_or(SourceError::SetSyntax)?;
                tracing::debug!(name, bytes = value.len(), "--set");
                out.push(Loaded::Credential {
                    name: name.to_owned(),
                    origin: Origin::Set {
                        name: name.to_owned(),
                    },
                    value: Secret::new(value.as_bytes().to_vec()),
                });
            }
            SourceSpec::Oem(s) => {
                oem_index += 1;
                tracing::debug!(index = oem_index, bytes = s.len(), "--oem");
                out.push(Loaded::Oem {
                    origin: Origin::Oem { index: oem_index },
                    string: s.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// Resolves a `--load` PATH: with a `/` as given, else in `$CREDENTIALS_DIRECTORY`.
pub fn resolve(name: &str, path: &str, credentials_directory: Option<&Path>) -> Result<PathBuf> {
    if path.contains('/') {
        return Ok(PathBuf::from(path));
    }
    match credentials_directory {
        Some(dir) => Ok(dir.join(path)),
        None => Err(SourceError::NoCredentialsDirectory {
            name: escape_name(name.as_bytes()),
            path: escape_name(path.as_bytes()),
        }),
    }
}

fn read_value(name: &str, path: &Path) -> Result<Secret> {
    // O_NONBLOCK: opening a FIFO never waits for a writer (read_open says
    // what it refuses); O_NOCTTY: a terminal never becomes ours.
    let flags = rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|source| SourceError::Open {
            name: escape_name(name.as_bytes()),
            path: path.to_owned(),
            source,
        })?;
    read_open(name, path, file)
}

/// Reads an opened source (`O_NONBLOCK`) into a [`Secret`]: at most the
/// per-credential limit plus one byte, into a buffer sized from `fstat`; a
/// stream that grows it has the old allocation wiped.
fn read_open(name: &str, path: &Path, file: File) -> Result<Secret> {
    use rustix::io::Errno;
    let limit = CREDENTIAL_SIZE_MAX;
    let read_err = |source| SourceError::Read {
        name: escape_name(name.as_bytes()),
        path: path.to_owned(),
        source,
    };
    let meta = file.metadata().map_err(read_err)?;
    if meta.is_dir() {
        return Err(SourceError::IsDirectory {
            name: escape_name(name.as_bytes()),
            path: path.to_owned(),
        });
    }
    let expected = if meta.is_file() {
        if meta.len() > limit as u64 {
            return Err(SourceError::TooLarge {
                name: escape_name(name.as_bytes()),
                path: path.to_owned(),
                limit: limit as u64,
                actual: meta.len(),
            });
        }
        meta.len() as usize
    } else {
        0
    };
    let fifo = meta.file_type().is_fifo();
    // One allocation for the expected size plus the byte that detects growth;
    // a stream grows it, wiping each old allocation (Secret::extend_from_slice).
    let mut value = Secret::new(Vec::with_capacity(expected + 1));
    let mut chunk = zeroize::Zeroizing::new([0u8; 16 * 1024]);
    // Whether the other end of a FIFO has shown it exists (data or EAGAIN).
    let mut writer_seen = false;
    let mut idle_since = Instant::now();
    let mut announced = false;
    while value.len() <= limit {
        let room = (limit + 1 - value.len()).min(chunk.len());
        match rustix::io::read(&file, &mut chunk[..room]) {
            Ok(0) => break,
            Ok(n) => {
                value.extend_from_slice(&chunk[..n]);
                writer_seen = true;
                idle_since = Instant::now();
            }
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                writer_seen = true;
                let waited = idle_since.elapsed();
                if waited >= STREAM_IDLE_MAX {
                    return Err(SourceError::Stalled {
                        name: escape_name(name.as_bytes()),
                        path: path.to_owned(),
                        secs: STREAM_IDLE_MAX.as_secs(),
                    });
                }
                if waited >= STREAM_ANNOUNCE && !announced {
                    announced = true;
                    eprintln!(
                        "vmcreds-host: waiting for the writer of {} (credential \"{}\"; at most {} s without a byte)",
                        show_path(path),
                        escape_name(name.as_bytes()),
                        STREAM_IDLE_MAX.as_secs()
                    );
                }
                let next = if announced {
                    STREAM_IDLE_MAX - waited
                } else {
                    STREAM_ANNOUNCE - waited
                };
                wait_readable(&file, next).map_err(read_err)?;
            }
            Err(e) => return Err(read_err(e.into())),
        }
    }
    if fifo && value.is_empty() && !writer_seen {
        return Err(SourceError::NoWriter {
            name: escape_name(name.as_bytes()),
            path: path.to_owned(),
        });
    }
    if value.len() > limit {
        return Err(SourceError::StreamTooLarge {
            name: escape_name(name.as_bytes()),
            path: path.to_owned(),
            limit: limit as u64,
        });
    }
    Ok(value)
}

/// Waits until `file` is readable (or hung up), at most `timeout`.
fn wait_readable(file: &File, timeout: Duration) -> io::Result<()> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let ts = Timespec::try_from(timeout).unwrap_or(Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    });
    let mut fds = [PollFd::new(file, PollFlags::IN)];
    match poll(&mut fds, Some(&ts)) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn load_dir(dir: &Path) -> Result<Vec<Loaded>> {
    let read_dir_err = |source| SourceError::ReadDir {
        dir: dir.to_owned(),
        source,
    };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_dir_err)? {
        let entry = entry.map_err(read_dir_err)?;
        let file_name = entry.file_name();
        let raw = file_name.as_encoded_bytes();
        if raw.starts_with(b".") {
            continue;
        }
        let escaped = escape_name(raw);
        let kind = entry.file_type().map_err(read_dir_err)?;
        if kind.is_symlink() {
            return Err(SourceError::Symlink {
                dir: dir.to_owned(),
                entry: escaped,
            });
        }
        if !kind.is_file() {
            return Err(SourceError::NotRegular {
                dir: dir.to_owned(),
                entry: escaped,
                kind: FileKind::of(kind),
            });
        }
        let Some(name) = file_name.to_str() else {
            return Err(SourceError::NotUtf8 {
                dir: dir.to_owned(),
                entry: escaped,
            });
        };
        entries.push(name.to_owned());
    }
    if entries.is_empty() {
        return Err(SourceError::EmptyDir {
            dir: dir.to_owned(),
        });
    }
    entries.sort();
    let mut out = Vec::with_capacity(entries.len());
    for name in entries {
        let path = dir.join(&name);
        // O_NOFOLLOW: a file replaced by a link after the listing is refused too.
        // O_NONBLOCK: a file replaced by a FIFO does not block the open.
        let flags = rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::NONBLOCK
            | rustix::fs::OFlags::NOCTTY;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits() as i32)
            .open(&path)
            .map_err(|source| SourceError::Open {
                name: escape_name(name.as_bytes()),
                path: path.clone(),
                source,
            })?;
        let meta = file.metadata().map_err(|source| SourceError::Read {
            name: escape_name(name.as_bytes()),
            path: path.clone(),
            source,
        })?;
        if !meta.is_file() {
            return Err(SourceError::NotRegular {
                dir: dir.to_owned(),
                entry: escape_name(name.as_bytes()),
                kind: FileKind::of(meta.file_type()),
            });
        }
        let value = read_open(&name, &path, file)?;
        out.push(Loaded::Credential {
            origin: Origin::LoadDir {
                dir: dir.to_owned(),
                file: name.clone(),
            },
            name,
            value,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn specs(list: &[SourceSpec]) -> Vec<SourceSpec> {
        list.to_vec()
    }

    #[test]
    fn test_load_binary_safe_and_ordered() {
        let d = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..=255u8).collect();
        std::fs::write(d.path().join("bin"), &bytes).unwrap();
        let p = format!("B:{}", d.path().join("bin").display());
        let loaded = load_all(
            &specs(&[
                SourceSpec::Set("A=x".into()),
                SourceSpec::Load(p),
                SourceSpec::Oem("raw".into()),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(loaded.len(), 3);
        match &loaded[1] {
            Loaded::Credential { name, value, .. } => {
                assert_eq!(name, "B");
                assert_eq!(value.expose(), &bytes[..]);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&loaded[2], Loaded::Oem { origin: Origin::Oem { index: 1 }, string } if string == "raw")
        );
    }

    #[test]
    fn test_bare_path_uses_credentials_directory() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("host-api-key"), b"k").unwrap();
        let loaded = load_all(
            &[SourceSpec::Load("API_KEY:host-api-key".into())],
            Some(d.path()),
        )
        .unwrap();
        assert!(matches!(&loaded[0], Loaded::Credential { value, .. } if value.expose() == b"k"));
        let err = load_all(&[SourceSpec::Load("API_KEY:host-api-key".into())], None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("CREDENTIALS_DIRECTORY") && msg.contains("API_KEY"),
            "{msg}"
        );
    }

    #[test]
    fn test_too_large_refused_from_size() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big");
        let f = File::create(&p).unwrap();
        f.set_len(CREDENTIAL_SIZE_MAX as u64 + 1).unwrap();
        let err = load_all(&[SourceSpec::Load(format!("BIG:{}", p.display()))], None).unwrap_err();
        assert!(
            matches!(err, SourceError::TooLarge { actual, .. } if actual == CREDENTIAL_SIZE_MAX as u64 + 1)
        );
        assert!(err.to_string().contains("by 1"), "{err}");
        f.set_len(CREDENTIAL_SIZE_MAX as u64).unwrap();
        assert!(load_all(&[SourceSpec::Load(format!("BIG:{}", p.display()))], None).is_ok());
    }

    #[test]
    fn test_unreadable_names_path_and_errno() {
        let err =
            load_all(&[SourceSpec::Load("X:/nonexistent/vmcreds/x".into())], None).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/vmcreds/x"));
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("os error 2"), "{source}");
    }

    #[test]
    fn test_load_dir_rules() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("b"), b"2").unwrap();
        std::fs::write(d.path().join("a"), b"1").unwrap();
        std::fs::write(d.path().join(".hidden"), b"h").unwrap();
        let loaded = load_all(&[SourceSpec::LoadDir(d.path().into())], None).unwrap();
        let names: Vec<_> = loaded
            .iter()
            .map(|l| match l {
                Loaded::Credential { name, .. } => name.clone(),
                Loaded::Oem { .. } => panic!(),
            })
            .collect();
        assert_eq!(names, ["a", "b"]);

        std::os::unix::fs::symlink("/etc/hostname", d.path().join("link")).unwrap();
        assert!(matches!(
            load_all(&[SourceSpec::LoadDir(d.path().into())], None),
            Err(SourceError::Symlink { .. })
        ));
        std::fs::remove_file(d.path().join("link")).unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        assert!(matches!(
            load_all(&[SourceSpec::LoadDir(d.path().into())], None),
            Err(SourceError::NotRegular {
                kind: FileKind::Directory,
                ..
            })
        ));

        let empty = tempfile::tempdir().unwrap();
        std::fs::write(empty.path().join(".only-hidden"), b"h").unwrap();
        assert!(matches!(
            load_all(&[SourceSpec::LoadDir(empty.path().into())], None),
            Err(SourceError::EmptyDir { .. })
        ));
    }

    #[test]
    fn test_directory_as_file_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = load_all(
            &[SourceSpec::Load(format!("D:{}", d.path().display()))],
            None,
        )
        .unwrap_err();
        assert!(matches!(err, SourceError::IsDirectory { .. }), "{err}");
    }

    #[test]
    fn test_syntax_errors_do_not_echo_values() {
        let err = load_all(&[SourceSpec::Set("CANARYVALUE".into())], None).unwrap_err();
        assert!(!err.to_string().contains("CANARY"));
        assert!(matches!(
            load_all(&[SourceSpec::Load("nocolon".into())], None),
            Err(SourceError::LoadSyntax(_))
        ));
    }
}
