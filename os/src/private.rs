//! Private files: created with mode 0600 (the owner alone reads them),
//! written atomically (a temporary file beside the target, fsync, rename),
//! and never through a symbolic link planted at the target or the temporary
//! name. Both binaries write their documents (manifest, report, verdict)
//! this way and no other.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Twelve random hex digits, for names nobody can guess in advance.
pub fn random_suffix() -> io::Result<String> {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Creates `path` for writing with `mode`; fails if anything is already
/// there, a symbolic link included (`O_CREAT | O_EXCL | O_NOFOLLOW`).
pub fn create_exclusive(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC).bits() as i32)
        .open(path)
}

/// The temporary name used for `path`: `.NAME.XXXXXXXXXXXX.tmp` in the same
/// directory, so the rename stays on one file system.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".{}.tmp", random_suffix()?));
    Ok(dir.join(tmp))
}

/// Writes `bytes` to `path` with mode 0600, atomically. The temporary file is
/// removed on every error path; a reader sees the old file or the new one,
/// never a part.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn test_atomic_private_write() {
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
    fn test_symlink_at_target_is_replaced_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        let p = d.path().join("out");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        write_atomic_private(&p, b"new").unwrap();
        assert_eq!(
            fs::read(&victim).unwrap(),
            b"keep",
            "the link target is untouched"
        );
        assert!(fs::symlink_metadata(&p).unwrap().file_type().is_file());
    }

    #[test]
    fn test_exclusive_refuses_existing_and_links() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        fs::write(&f, b"x").unwrap();
        assert_eq!(
            create_exclusive(&f, 0o600).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        let l = d.path().join("l");
        std::os::unix::fs::symlink(d.path().join("nowhere"), &l).unwrap();
        assert!(create_exclusive(&l, 0o600).is_err());
        assert!(
            !d.path().join("nowhere").exists(),
            "a dangling link is not followed"
        );
    }

    #[test]
    fn test_suffixes_differ() {
        let a = random_suffix().unwrap();
        assert_eq!(a.len(), 12);
        assert_ne!(a, random_suffix().unwrap());
    }
}
