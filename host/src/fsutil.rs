//! Private files: atomic 0600 writes, a private 0700 directory of 0400 files
//! that removes itself, and bounded reads.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use vmcreds_common::digest::hex;

fn random_suffix() -> io::Result<String> {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(hex(&b))
}

/// Creates `path` for writing with `mode`; fails if anything (a symlink
/// included) is already there.
fn create_exclusive(path: &Path, mode: u32) -> io::Result<std::fs::File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

/// Writes `bytes` to `path` with mode 0600, atomically: a temporary file in
/// the same directory, fsync, then rename. The temporary file is removed on
/// every error path.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".{}.tmp", random_suffix()?));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = create_exclusive(&tmp, 0o600)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads at most `max + 1` bytes of `path` (so a caller can tell "over `max`").
pub fn read_bounded(path: &Path, max: usize) -> io::Result<Vec<u8>> {
    let f = fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(max as u64 + 1).read_to_end(&mut buf)?;
    Ok(buf)
}

/// A fresh private directory (0700, created with mkdir's exclusive semantics)
/// holding 0400 files. Dropping it removes the files and the directory unless
/// [`PrivateDir::keep`] was called.
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
    files: Vec<PathBuf>,
    keep: bool,
}

impl PrivateDir {
    /// Creates `PARENT/vmcreds.XXXXXXXXXXXX`.
    pub fn create(parent: &Path) -> io::Result<PrivateDir> {
        for _ in 0..16 {
            let path = parent.join(format!("vmcreds.{}", random_suffix()?));
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    let dir = PrivateDir {
                        path,
                        files: Vec::new(),
                        keep: false,
                    };
                    // The umask cannot widen 0700, but be explicit.
                    fs::set_permissions(&dir.path, fs::Permissions::from_mode(0o700))?;
                    return Ok(dir);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free directory name after 16 attempts",
        ))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates `name` (exclusively, mode 0400, no symlink followed) holding `bytes`.
    pub fn write_file(&mut self, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
        let path = self.path.join(name);
        let mut f = create_exclusive(&path, 0o400)?;
        self.files.push(path.clone());
        f.write_all(bytes)?;
        Ok(path)
    }

    /// Keeps the directory and its files (the caller now owns their removal).
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for f in &self.files {
            let _ = fs::remove_file(f);
        }
        let _ = fs::remove_dir(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn test_private_dir_modes_and_cleanup() {
        let parent = tempfile::tempdir().unwrap();
        let path;
        {
            let mut d = PrivateDir::create(parent.path()).unwrap();
            path = d.path().to_owned();
            let f = d.write_file("a", b"x").unwrap();
            assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o700);
            assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o400);
            assert!(
                d.write_file("a", b"y").is_err(),
                "files are created exclusively"
            );
        }
        assert!(!path.exists());
        let d = PrivateDir::create(parent.path()).unwrap();
        let kept = d.keep();
        assert!(kept.exists());
    }

    #[test]
    fn test_atomic_write() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.json");
        write_atomic_private(&p, b"one").unwrap();
        write_atomic_private(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
        assert!(write_atomic_private(&d.path().join("missing/m.json"), b"x").is_err());
    }

    #[test]
    fn test_read_bounded() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, b"12345").unwrap();
        assert_eq!(read_bounded(&p, 3).unwrap(), b"1234");
        assert_eq!(read_bounded(&p, 10).unwrap(), b"12345");
    }
}
