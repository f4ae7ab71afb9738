//! Every path the guest reads goes through [`Root`], so `--root DIR` reads a
//! captured tree instead of `/` (tests, forensics).
//!
//! Reads are bounded: a file the hypervisor or a hostile tree controls can
//! never make the guest allocate more than the caller's bound.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// A file or directory that could not be read (exit code 3).
#[derive(Debug, Error)]
#[error("cannot read {}", path.display())]
pub struct ReadError {
    /// The path, as opened (under `--root`).
    pub path: PathBuf,
    /// The cause, with its errno.
    #[source]
    pub source: io::Error,
}

impl ReadError {
    /// Wraps an I/O error with the path it happened on.
    pub fn new(path: &Path, source: io::Error) -> Self {
        ReadError {
            path: path.to_owned(),
            source,
        }
    }

    /// True when the cause is a permission problem (run as root).
    pub fn is_permission(&self) -> bool {
        self.source.kind() == io::ErrorKind::PermissionDenied
            || self.source.raw_os_error() == Some(1)
    }
}

/// The result of a bounded read.
#[derive(Debug, Default)]
pub struct Bounded {
    /// The bytes read, at most the bound.
    pub bytes: Vec<u8>,
    /// True when the file had more bytes than the bound.
    pub over_bound: bool,
}

/// The root every absolute path is resolved under.
#[derive(Clone, Debug)]
pub struct Root {
    dir: PathBuf,
}

impl Root {
    /// A root at `dir` (`/` for the running system).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Root { dir: dir.into() }
    }

    /// True when this is the running system's `/` (commands may be run).
    pub fn is_host(&self) -> bool {
        self.dir == Path::new("/")
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `abs` (an absolute path like `/sys/firmware/dmi`) under the root.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.dir.join(abs.trim_start_matches('/'))
    }

    /// Does `abs` exist (without following a final symlink)?
    pub fn exists(&self, abs: &str) -> bool {
        std::fs::symlink_metadata(self.path(abs)).is_ok()
    }

    /// Reads `abs` to EOF, at most `max` bytes; `Ok(None)` when it does not exist.
    pub fn read_bounded(&self, abs: &str, max: usize) -> Result<Option<Bounded>, ReadError> {
        read_bounded(&self.path(abs), max)
    }

    /// Reads a small text file (≤ 1 MiB), lossily as UTF-8; `Ok(None)` when missing.
    pub fn read_text(&self, abs: &str) -> Result<Option<String>, ReadError> {
        Ok(self
            .read_bounded(abs, 1 << 20)?
            .map(|b| String::from_utf8_lossy(&b.bytes).into_owned()))
    }

    /// File names in directory `abs`, sorted; `Ok(None)` when it does not exist.
    pub fn list_dir(&self, abs: &str) -> Result<Option<Vec<std::ffi::OsString>>, ReadError> {
        let p = self.path(abs);
        let rd = match std::fs::read_dir(&p) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ReadError::new(&p, e)),
        };
        let mut names = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| ReadError::new(&p, e))?;
            names.push(ent.file_name());
        }
        names.sort();
        Ok(Some(names))
    }
}

/// Reads `path` to EOF in a loop (not one page), keeping at most `max` bytes.
/// `Ok(None)` when it does not exist.
pub fn read_bounded(path: &Path, max: usize) -> Result<Option<Bounded>, ReadError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::new(path, e)),
    };
    read_from(file, max)
        .map(Some)
        .map_err(|e| ReadError::new(path, e))
}

/// Reads `r` to EOF, keeping at most `max` bytes.
pub fn read_from(r: impl Read, max: usize) -> io::Result<Bounded> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    r.take(limit).read_to_end(&mut bytes)?;
    let over_bound = bytes.len() > max;
    bytes.truncate(max);
    Ok(Bounded { bytes, over_bound })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_paths_stay_under_root() {
        let r = Root::new("/tmp/x");
        assert_eq!(
            r.path("/sys/firmware"),
            PathBuf::from("/tmp/x/sys/firmware")
        );
        assert!(!r.is_host());
        assert!(Root::new("/").is_host());
    }

    #[test]
    fn test_bounded_read_loops_past_a_page() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![7u8; 10_000]).unwrap();
        let b = read_bounded(&p, 20_000).unwrap().unwrap();
        assert_eq!(b.bytes.len(), 10_000);
        assert!(!b.over_bound);
        let b = read_bounded(&p, 4096).unwrap().unwrap();
        assert_eq!(b.bytes.len(), 4096);
        assert!(b.over_bound);
        assert!(read_bounded(&dir.path().join("none"), 1).unwrap().is_none());
    }

    #[test]
    fn test_directory_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_bounded(dir.path(), 10).unwrap_err();
        assert!(e.to_string().starts_with("cannot read "), "{e}");
        assert_eq!(e.source.raw_os_error(), Some(21));
    }
}
