//! Every path the guest reads goes through [`Root`], so `--root DIR` reads a
//! captured tree instead of `/` (tests, forensics). Under a tree, every path
//! is resolved inside it (`vmcreds_os::beneath`): a symbolic link in the
//! tree never leads outside it. On the running system (`/`), links are
//! followed as any program follows them.
//!
//! Reads are bounded: a file the hypervisor or a hostile tree controls can
//! never make the guest allocate more than the caller's bound, and files are
//! opened `O_NONBLOCK` so a FIFO planted in a tree cannot stall the check.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use thiserror::Error;
use vmcreds_os::beneath::{self, RootDir};
pub use vmcreds_os::bounded::Bounded;

use crate::exit::{Classify, Exit};

/// A file or directory that could not be read (exit code 3).
#[derive(Debug, Error)]
#[error("cannot read {}", vmcreds_os::show_path(path))]
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

impl Classify<Exit> for ReadError {
    fn exit(&self) -> Exit {
        Exit::Unreadable
    }
}

/// The root every absolute path is resolved under.
#[derive(Debug)]
pub struct Root {
    /// `None`: the running system.
    tree: Option<RootDir>,
    dir: PathBuf,
}

impl Root {
    /// The running system.
    pub fn host() -> Root {
        Root {
            tree: None,
            dir: PathBuf::from("/"),
        }
    }

    /// A root at `dir`: the running system for `/`, else a tree.
    pub fn open(dir: &Path) -> Result<Root, ReadError> {
        if dir == Path::new("/") {
            return Ok(Root::host());
        }
        let tree = RootDir::open(dir).map_err(|e| ReadError::new(dir, e))?;
        Ok(Root {
            tree: Some(tree),
            dir: dir.to_owned(),
        })
    }

    /// True when this is the running system's `/` (commands may be run).
    pub fn is_host(&self) -> bool {
        self.tree.is_none()
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `abs` (an absolute path like `/sys/firmware/dmi`) under the root, for
    /// messages and for paths handed to other programs.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.dir.join(abs.trim_start_matches('/'))
    }

    /// Opens `abs` with `flags` (`O_CLOEXEC` added), resolved inside the root.
    pub fn open_at(&self, abs: &str, flags: OFlags) -> io::Result<OwnedFd> {
        match &self.tree {
            Some(t) => t.open_at(abs, flags, Mode::empty()),
            None => beneath::open_host(abs, flags, Mode::empty()),
        }
    }

    /// Writes `bytes` to `path` as a private file (0600, atomically, never
    /// through a link at the target or the temporary name). Under a tree,
    /// `path` is resolved inside it like every other path, so a link planted
    /// in the tree cannot lead the write outside; on the running system it
    /// is an ordinary path (relative to the working directory if relative).
    pub fn write_private(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        match &self.tree {
            None => vmcreds_os::private::write_atomic_private(path, bytes),
            Some(t) => {
                let abs = path.to_str().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "not a UTF-8 path")
                })?;
                t.write_file(abs, bytes, 0o600)
            }
        }
    }

    /// Does `abs` exist (without following a final symlink)?
    pub fn exists(&self, abs: &str) -> bool {
        self.open_at(abs, OFlags::PATH | OFlags::NOFOLLOW).is_ok()
    }

    /// Reads `abs` to EOF, at most `max` bytes; `Ok(None)` when it does not exist.
    pub fn read_bounded(&self, abs: &str, max: usize) -> Result<Option<Bounded>, ReadError> {
        self.read_with(abs, max, 8 * 1024)
    }

    /// [`Root::read_bounded`] into a first buffer of `first` bytes (see
    /// `vmcreds_os::bounded::read_sized`).
    pub fn read_with(
        &self,
        abs: &str,
        max: usize,
        first: usize,
    ) -> Result<Option<Bounded>, ReadError> {
        let fd = match self.open_at(abs, OFlags::RDONLY | OFlags::NOCTTY | OFlags::NONBLOCK) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ReadError::new(&self.path(abs), e)),
        };
        let b = vmcreds_os::bounded::read_sized(std::fs::File::from(fd), max, first)
            .map_err(|e| ReadError::new(&self.path(abs), e))?;
        tracing::trace!(
            path = abs,
            bytes = b.bytes.len(),
            over_bound = b.over_bound,
            "read"
        );
        Ok(Some(b))
    }

    /// Reads a small text file (≤ 1 MiB), lossily as UTF-8; `Ok(None)` when missing.
    pub fn read_text(&self, abs: &str) -> Result<Option<String>, ReadError> {
        Ok(self
            .read_bounded(abs, 1 << 20)?
            .map(|b| String::from_utf8_lossy(&b.bytes).into_owned()))
    }

    /// File names in directory `abs`, sorted; `Ok(None)` when it does not exist.
    pub fn list_dir(&self, abs: &str) -> Result<Option<Vec<OsString>>, ReadError> {
        let shown = || self.path(abs);
        let fd = match self.open_at(abs, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ReadError::new(&shown(), e)),
        };
        let dir =
            rustix::fs::Dir::read_from(&fd).map_err(|e| ReadError::new(&shown(), e.into()))?;
        let mut names = Vec::new();
        for ent in dir {
            let ent = ent.map_err(|e| ReadError::new(&shown(), e.into()))?;
            let name = ent.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(std::ffi::OsStr::from_bytes(name).to_owned());
            }
        }
        vmcreds_common::check::sort_stable_by(&mut names, |a, b| a.cmp(b));
        Ok(Some(names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_paths_stay_under_root() {
        let d = tempfile::tempdir().unwrap();
        let r = Root::open(d.path()).unwrap();
        assert_eq!(r.path("/sys/firmware"), d.path().join("sys/firmware"));
        assert!(!r.is_host());
        assert!(Root::open(Path::new("/")).unwrap().is_host());
    }

    #[test]
    fn test_bounded_read_loops_past_a_page() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), vec![7u8; 10_000]).unwrap();
        let r = Root::open(d.path()).unwrap();
        let b = r.read_bounded("/f", 20_000).unwrap().unwrap();
        assert_eq!((b.bytes.len(), b.over_bound), (10_000, false));
        let b = r.read_bounded("/f", 4096).unwrap().unwrap();
        assert_eq!((b.bytes.len(), b.over_bound), (4096, true));
        assert!(r.read_bounded("/none", 1).unwrap().is_none());
    }

    #[test]
    fn test_directory_is_a_read_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("dir")).unwrap();
        let r = Root::open(d.path()).unwrap();
        let e = r.read_bounded("/dir", 10).unwrap_err();
        assert!(e.to_string().starts_with("cannot read "), "{e}");
        assert_eq!(e.source.raw_os_error(), Some(21));
    }

    #[test]
    fn test_a_link_in_the_tree_stays_in_the_tree() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"host file").unwrap();
        std::fs::create_dir_all(d.path().join("proc")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), d.path().join("proc/cmdline"))
            .unwrap();
        let r = Root::open(d.path()).unwrap();
        assert!(
            r.read_text("/proc/cmdline").unwrap().is_none(),
            "resolved inside the tree"
        );
    }

    #[test]
    fn test_a_fifo_does_not_block() {
        let d = tempfile::tempdir().unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.path().join("fifo"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let r = Root::open(d.path()).unwrap();
        let b = r.read_bounded("/fifo", 10).unwrap().unwrap();
        assert!(b.bytes.is_empty());
    }
}
