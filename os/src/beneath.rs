//! Paths resolved inside a root directory (a `--root` tree, an image being
//! prepared), the way systemd's `chase()` with `CHASE_PREFIX_ROOT` does:
//! every absolute path is taken relative to the root, and every symbolic
//! link, wherever it is in the path, is resolved as if the root were `/`.
//! So a link planted in the tree (`etc -> /etc`, `x -> ../../..`) can never
//! lead outside it.
//!
//! Linux ≥ 5.6 does this in the kernel: `openat2(rootfd, path,
//! RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`. Where `openat2` is missing
//! (or filtered), the fallback is stricter: it walks the path component by
//! component with `O_NOFOLLOW` and refuses any symbolic link and any `..`.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags, CWD};
use rustix::io::Errno;

/// A directory every path is resolved inside.
#[derive(Debug)]
pub struct RootDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// `abs` without its leading `/`, as a path relative to the root (`.` for `/`).
fn relative(abs: &str) -> &str {
    let rel = abs.trim_start_matches('/');
    if rel.is_empty() {
        "."
    } else {
        rel
    }
}

impl RootDir {
    /// Opens `path` as the root. The root itself is the operator's choice, so
    /// a link naming it is followed; nothing below it is, outside it.
    pub fn open(path: &Path) -> io::Result<RootDir> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(RootDir {
            fd,
            path: path.to_owned(),
        })
    }

    /// The root as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where `abs` is under the root, for messages.
    pub fn shown(&self, abs: &str) -> PathBuf {
        self.path.join(abs.trim_start_matches('/'))
    }

    /// Opens `abs` (an absolute path inside the root) with `flags`
    /// (`O_CLOEXEC` is added) and, when creating, `mode`.
    pub fn open_at(&self, abs: &str, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        let flags = flags | OFlags::CLOEXEC;
        match rustix::fs::openat2(
            &self.fd,
            relative(abs),
            flags,
            mode,
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(Errno::NOSYS) | Err(Errno::PERM) => self.open_walking(abs, flags, mode),
            r => r.map_err(Into::into),
        }
    }

    /// The fallback: one component at a time, refusing links and `..`.
    fn open_walking(&self, abs: &str, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        let rel = Path::new(relative(abs));
        let parts: Vec<&OsStr> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(p) => Some(Ok(p)),
                Component::CurDir => None,
                _ => Some(Err(())),
            })
            .collect::<Result<_, ()>>()
            .map_err(|()| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "'..' in a path inside the root (refused without openat2)",
                )
            })?;
        let mut dir = rustix::fs::openat(
            &self.fd,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let Some((last, dirs)) = parts.split_last() else {
            return Ok(rustix::fs::openat(&self.fd, ".", flags, mode)?);
        };
        for p in dirs {
            dir = rustix::fs::openat(
                &dir,
                *p,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
        }
        Ok(rustix::fs::openat(
            &dir,
            *last,
            flags | OFlags::NOFOLLOW,
            mode,
        )?)
    }

    /// Creates every missing directory of `abs` inside the root with `mode`
    /// (not affected by the umask: each is `fchmod`ed), resolving each
    /// existing component inside the root.
    pub fn create_dir_all(&self, abs: &str, mode: u32) -> io::Result<()> {
        let mut done = String::new();
        for c in Path::new(relative(abs)).components() {
            let Component::Normal(p) = c else { continue };
            done.push('/');
            done.push_str(&p.to_string_lossy());
            if p.as_bytes().contains(&b'/') {
                return Err(io::ErrorKind::InvalidInput.into());
            }
            match self.open_at(&done, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()) {
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let parent = self.parent_fd(&done)?;
            match rustix::fs::mkdirat(&parent, p, Mode::from_raw_mode(mode)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            let d = self.open_at(&done, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
            rustix::fs::fchmod(&d, Mode::from_raw_mode(mode))?;
        }
        Ok(())
    }

    /// The directory holding `abs`, opened inside the root.
    fn parent_fd(&self, abs: &str) -> io::Result<OwnedFd> {
        let parent = Path::new(abs)
            .parent()
            .and_then(Path::to_str)
            .unwrap_or("/");
        self.open_at(parent, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
    }

    /// The last component of `abs`.
    fn file_name(abs: &str) -> io::Result<&OsStr> {
        Path::new(abs)
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))
    }

    /// Writes `bytes` to `abs` inside the root, atomically, with `mode`: a
    /// temporary file with a random name created `O_CREAT|O_EXCL|O_NOFOLLOW`
    /// in the same directory, `fchmod`, write, fsync, then `renameat` over
    /// the target (a link at the target is replaced, never followed). The
    /// parent directory must exist.
    pub fn write_file(&self, abs: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
        let dir = self.parent_fd(abs)?;
        let name = Self::file_name(abs)?;
        let mut tmp = Vec::from(&b"."[..]);
        tmp.extend_from_slice(name.as_bytes());
        tmp.extend_from_slice(format!(".{}.tmp", crate::private::random_suffix()?).as_bytes());
        let tmp = OsStr::from_bytes(&tmp);
        let fd = rustix::fs::openat(
            &dir,
            tmp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let result = (|| -> io::Result<()> {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
            let mut f = std::fs::File::from(fd);
            f.write_all(bytes)?;
            f.sync_all()?;
            rustix::fs::renameat(&dir, tmp, &dir, name)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&dir, tmp, rustix::fs::AtFlags::empty());
        }
        result
    }

    /// Makes `abs` inside the root a symbolic link to `target` (replacing a
    /// link or file there; the link is created, never followed).
    pub fn symlink(&self, abs: &str, target: &str) -> io::Result<()> {
        let dir = self.parent_fd(abs)?;
        let name = Self::file_name(abs)?;
        match rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        rustix::fs::symlinkat(target, &dir, name)?;
        Ok(())
    }
}

impl AsFd for RootDir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Opens `abs` on the running system (`/`), following links as any program
/// does, with `O_CLOEXEC` added.
pub fn open_host(abs: &str, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(CWD, abs, flags | OFlags::CLOEXEC, mode)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    fn tree() -> (tempfile::TempDir, tempfile::TempDir) {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("victim"), b"outside").unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/inside"), b"inside").unwrap();
        (root, outside)
    }

    fn read(r: &RootDir, abs: &str) -> io::Result<Vec<u8>> {
        let fd = r.open_at(abs, OFlags::RDONLY, Mode::empty())?;
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(fd), &mut v)?;
        Ok(v)
    }

    #[test]
    fn test_links_resolve_inside_the_root() {
        let (root, outside) = tree();
        // An absolute link and a climbing link both land inside the root.
        symlink(outside.path().join("victim"), root.path().join("abs")).unwrap();
        symlink("../../../../../../etc/inside", root.path().join("climb")).unwrap();
        symlink("/etc", root.path().join("etclink")).unwrap();
        let r = RootDir::open(root.path()).unwrap();
        assert_eq!(read(&r, "/climb").unwrap(), b"inside");
        assert_eq!(read(&r, "/etclink/inside").unwrap(), b"inside");
        assert_eq!(
            read(&r, "/abs").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(read(&r, "/../../etc/inside").unwrap(), b"inside");
    }

    #[test]
    fn test_writes_stay_inside_and_do_not_follow() {
        let (root, outside) = tree();
        let r = RootDir::open(root.path()).unwrap();
        // A link planted at the target is replaced, its target untouched.
        symlink(outside.path().join("victim"), root.path().join("etc/unit")).unwrap();
        r.write_file("/etc/unit", b"new", 0o644).unwrap();
        assert_eq!(
            std::fs::read(outside.path().join("victim")).unwrap(),
            b"outside"
        );
        let m = std::fs::symlink_metadata(root.path().join("etc/unit")).unwrap();
        assert!(m.file_type().is_file());
        assert_eq!(m.mode() & 0o777, 0o644);
        // A directory link pointing outside: created inside the root instead.
        symlink(outside.path(), root.path().join("escape")).unwrap();
        r.create_dir_all("/escape/sub", 0o755).unwrap_or(());
        assert!(
            !outside.path().join("sub").exists(),
            "nothing created outside"
        );
        // create_dir_all makes 0755 directories whatever the umask.
        let old = rustix::process::umask(Mode::from_raw_mode(0o077));
        r.create_dir_all("/a/b/c", 0o755).unwrap();
        rustix::process::umask(old);
        for d in ["a", "a/b", "a/b/c"] {
            let mode = std::fs::metadata(root.path().join(d))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o755, "{d}");
        }
        assert_eq!(
            std::fs::read_dir(root.path().join("etc")).unwrap().count(),
            2,
            "no temp file left"
        );
    }

    #[test]
    fn test_walking_fallback_refuses_links_and_dotdot() {
        let (root, outside) = tree();
        symlink(outside.path().join("victim"), root.path().join("abs")).unwrap();
        let r = RootDir::open(root.path()).unwrap();
        assert_eq!(
            r.open_walking(
                "/etc/inside",
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty()
            )
            .map(|_| ())
            .map_err(|e| e.kind()),
            Ok(())
        );
        assert!(r
            .open_walking("/abs", OFlags::RDONLY, Mode::empty())
            .is_err());
        assert!(r
            .open_walking("/etc/../etc/inside", OFlags::RDONLY, Mode::empty())
            .is_err());
    }
}
