//! A private directory of credential files that removes itself: 0700,
//! created with mkdir's exclusive semantics under a random name, holding
//! 0400 files created exclusively (never through a link).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use vmcreds_os::private::{create_exclusive, random_suffix};

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
}
