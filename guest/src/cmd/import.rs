//! `import --to DIR`: what systemd's PID 1 import does (reference §1.2–§1.8),
//! for guests without systemd ≥ 252: a private tmpfs (noswap) or ramfs on
//! DIR when root, else a 0700 directory; files 0400 created exclusively (the
//! first writer wins) and never left half-written; the same limits (the
//! prediction applies them); then the same check and reporting.
//!
//! DIR is opened once (`O_DIRECTORY|O_NOFOLLOW`) and everything happens
//! through that fd: a symbolic link at DIR is refused, and so is a DIR that
//! holds anything, unless it is a mount point already (used as is) or what a
//! previous import left (a 0700 directory of this user holding only 0400
//! credential files: first wins). The private file system is created with
//! `fsopen`/`fsmount` and attached with `move_mount` onto that fd, and the
//! credentials are written through the new mount's own fd; on a kernel
//! without that API (before 5.2) `mount(2)` goes through `/proc/self/fd/N`
//! of the checked fd and the mount is reopened and checked to be the new
//! one. Without a mount the fd is `fchmod`ed 0700 and written through.

use std::io::{self, Write as _};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, CWD};
use rustix::io::Errno;
use rustix::mount::MountFlags;
use thiserror::Error;
use vmcreds_common::escape::escape_name;
use vmcreds_common::report::CheckState;

use vmcreds_common::report::PreconditionId;
use vmcreds_os::show_path;

use crate::cli::ImportArgs;
use crate::cmd::check::{asked, finish};
use crate::creds_dir::CredsLocation;
use crate::exit::{Classify, Exit, Result};
use crate::observe;
use crate::precond::FW_CFG_DIR;
use crate::sysfs::Root;

/// A name that can never be a credential (`:` is not allowed in one).
const TEMP_NAME: &str = ".vmcreds:import.tmp";

/// Preparing or writing the directory failed.
#[derive(Debug, Error)]
#[error("cannot {what} {}", show_path(path))]
pub struct ImportError {
    /// What was being done.
    pub what: &'static str,
    /// Where.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: io::Error,
}

impl Classify<Exit> for ImportError {
    fn exit(&self) -> Exit {
        Exit::Unreadable
    }
}

/// A DIR `import` will not write into (exit 2).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Refused {
    /// DIR is a symbolic link.
    #[error("--to {0} is a symbolic link; import writes only into a directory it names itself (give the link's target)")]
    Symlink(String),
    /// DIR is not a directory.
    #[error("--to {0} exists and is not a directory")]
    NotDirectory(String),
    /// DIR holds something other than a previous import.
    #[error("--to {dir} is not empty (it holds {shown}) and is not a mount point: import would hide it under a mount or mix credentials into it; give an empty or new directory")]
    NotEmpty {
        /// The directory, escaped.
        dir: String,
        /// Some of its entries, escaped.
        shown: String,
    },
}

impl Classify<Exit> for Refused {
    fn exit(&self) -> Exit {
        Exit::Usage
    }
}

/// How DIR was set up.
#[derive(Debug, PartialEq, Eq)]
pub enum Setup {
    /// Mounted a filesystem with these options.
    Mounted(&'static str),
    /// DIR was already a mount point; used as is.
    ExistingMount,
    /// A plain 0700 directory.
    Directory,
    /// A 0700 directory a previous import filled; used as is.
    Reused,
}

/// DIR, ready: how it was set up, and the fd every credential is written
/// through (the new mount's root when one was mounted).
#[derive(Debug)]
pub struct Prepared {
    /// How.
    pub setup: Setup,
    /// Where to write.
    pub dir: OwnedFd,
}

/// Is the directory `fd` a mount point (its parent on another device, or
/// the root)?
fn is_mount_point(fd: &OwnedFd) -> io::Result<bool> {
    let me = rustix::fs::fstat(fd)?;
    let parent = rustix::fs::statat(fd, "..", AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(me.st_dev != parent.st_dev || me.st_ino == parent.st_ino)
}

/// The names in the directory `fd`, without `.` and `..`.
fn entries(fd: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    let mut dir = rustix::fs::Dir::read_from(fd)?;
    let mut out = Vec::new();
    while let Some(e) = dir.read() {
        let name = e?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            out.push(name);
        }
    }
    Ok(out)
}

/// What a previous import leaves: a 0700 directory of this user holding
/// only 0400 regular files of this user with credential names.
fn is_previous_import(fd: &OwnedFd, names: &[Vec<u8>]) -> io::Result<bool> {
    let euid = rustix::process::geteuid().as_raw();
    let me = rustix::fs::fstat(fd)?;
    if me.st_uid != euid || me.st_mode & 0o7777 != 0o700 {
        return Ok(false);
    }
    for n in names {
        let st = rustix::fs::statat(fd, n.as_slice(), AtFlags::SYMLINK_NOFOLLOW)?;
        let regular = rustix::fs::FileType::from_raw_mode(st.st_mode).is_file();
        let named = n == TEMP_NAME.as_bytes() || vmcreds_common::name::check_systemd(n).is_ok();
        if !regular || st.st_mode & 0o7777 != 0o400 || st.st_uid != euid || !named {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Creates DIR if needed, checks it, and, when possible, mounts a private
/// credentials file system on it.
pub fn prepare(dir: &Path, allow_mount: bool) -> Result<Prepared> {
    let err = |what, source: io::Error| ImportError {
        what,
        path: dir.to_owned(),
        source,
    };
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| err("create the parent directory of", e))?;
    }
    match rustix::fs::mkdirat(CWD, dir, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(err("create directory", e.into()).into()),
    }
    let fd = match rustix::fs::openat(
        CWD,
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // O_NOFOLLOW|O_DIRECTORY gives ELOOP or ENOTDIR for a link.
        Err(Errno::LOOP | Errno::NOTDIR) => {
            let link = rustix::fs::statat(CWD, dir, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
                rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink
            });
            return Err(if link {
                Refused::Symlink(show_path(dir))
            } else {
                Refused::NotDirectory(show_path(dir))
            }
            .into());
        }
        Err(e) => return Err(err("open", e.into()).into()),
    };
    if is_mount_point(&fd).map_err(|e| err("stat", e))? {
        return Ok(Prepared {
            setup: Setup::ExistingMount,
            dir: fd,
        });
    }
    let names = entries(&fd).map_err(|e| err("list", e))?;
    if !names.is_empty() {
        if is_previous_import(&fd, &names).map_err(|e| err("stat", e))? {
            return Ok(Prepared {
                setup: Setup::Reused,
                dir: fd,
            });
        }
        let mut shown: Vec<String> = names
            .iter()
            .take(3)
            .map(|n| format!("\"{}\"", escape_name(n)))
            .collect();
        if names.len() > 3 {
            shown.push(format!("and {} more", names.len() - 3));
        }
        return Err(Refused::NotEmpty {
            dir: show_path(dir),
            shown: shown.join(", "),
        }
        .into());
    }
    if allow_mount && rustix::process::geteuid().is_root() {
        if let Some((fs, mnt)) = mount_private(&fd, dir) {
            return Ok(Prepared {
                setup: Setup::Mounted(fs),
                dir: mnt,
            });
        }
    }
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700)).map_err(|e| err("chmod 0700", e.into()))?;
    Ok(Prepared {
        setup: Setup::Directory,
        dir: fd,
    })
}

/// Mount options: a key and its value, or a flag.
type Options = &'static [(&'static str, Option<&'static str>)];

/// The file systems tried, in systemd's `mount_credentials_fs()` order: a
/// name for people, the type, and its options.
const CANDIDATES: [(&str, &str, Options); 3] = [
    (
        "tmpfs (noswap)",
        "tmpfs",
        &[
            ("mode", Some("0700")),
            ("nr_inodes", Some("1024")),
            ("size", Some("1048576")),
            ("noswap", None),
        ],
    ),
    ("ramfs", "ramfs", &[("mode", Some("0700"))]),
    (
        "tmpfs (without noswap: the kernel lacks it)",
        "tmpfs",
        &[
            ("mode", Some("0700")),
            ("nr_inodes", Some("1024")),
            ("size", Some("1048576")),
        ],
    ),
];

/// Mounts the first candidate that works on the directory `target` (DIR)
/// and returns its name and the new mount's root fd; `None` when none does
/// (no CAP_SYS_ADMIN, a kernel without them).
fn mount_private(target: &OwnedFd, dir: &Path) -> Option<(&'static str, OwnedFd)> {
    for (shown, fs, options) in CANDIDATES {
        match mount_new_api(fs, options, target) {
            Ok(mnt) => return Some((shown, mnt)),
            Err(Errno::NOSYS) => {
                // A kernel before 5.2: mount(2) through the checked fd.
                if let Ok(mnt) = mount_legacy(fs, options, target, dir) {
                    return Some((shown, mnt));
                }
            }
            Err(_) => {}
        }
    }
    None
}

/// fsopen, fsconfig, fsmount (nodev, noexec, nosuid, nosymfollow), then
/// move_mount onto `target`; returns the mount's fd.
fn mount_new_api(
    fs: &str,
    options: &[(&str, Option<&str>)],
    target: &OwnedFd,
) -> rustix::io::Result<OwnedFd> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
        FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags,
    };
    let fsfd = fsopen(fs, FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(&fsfd, "source", fs)?;
    for (key, value) in options {
        match value {
            Some(v) => fsconfig_set_string(&fsfd, *key, *v)?,
            None => fsconfig_set_flag(&fsfd, *key)?,
        }
    }
    fsconfig_create(&fsfd)?;
    let base = MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOEXEC
        | MountAttrFlags::MOUNT_ATTR_NOSUID;
    let mnt = match fsmount(
        &fsfd,
        FsMountFlags::FSMOUNT_CLOEXEC,
        base | MountAttrFlags::MOUNT_ATTR_NOSYMFOLLOW,
    ) {
        // Before 5.14 there is no nosymfollow.
        Err(Errno::INVAL) => fsmount(&fsfd, FsMountFlags::FSMOUNT_CLOEXEC, base)?,
        r => r?,
    };
    move_mount(
        &mnt,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )?;
    Ok(mnt)
}

/// The `/proc/self/fd/N` path of `fd`, which names exactly what `fd` does.
fn proc_fd(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// mount(2) onto `/proc/self/fd/N` of `target`, then DIR reopened and
/// checked to be the new mount (another device than `target`, a tmpfs or
/// ramfs): the fd to write through.
pub fn mount_legacy(
    fs: &str,
    options: &[(&str, Option<&str>)],
    target: &OwnedFd,
    dir: &Path,
) -> io::Result<OwnedFd> {
    let data: Vec<String> = options
        .iter()
        .map(|(k, v)| v.map_or_else(|| (*k).to_owned(), |v| format!("{k}={v}")))
        .collect();
    let flags =
        MountFlags::NODEV | MountFlags::NOEXEC | MountFlags::NOSUID | MountFlags::NOSYMFOLLOW;
    rustix::mount::mount(
        fs,
        proc_fd(target).as_str(),
        fs,
        flags,
        Some(
            std::ffi::CString::new(data.join(","))
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?
                .as_c_str(),
        ),
    )?;
    let mnt = rustix::fs::openat(
        CWD,
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let under = rustix::fs::fstat(target)?;
    let on = rustix::fs::fstat(&mnt)?;
    let kind = rustix::fs::fstatfs(&mnt)?.f_type as i64;
    // TMPFS_MAGIC, RAMFS_MAGIC (linux/magic.h).
    if on.st_dev == under.st_dev || !matches!(kind, 0x0102_1994 | 0x8584_58f6) {
        let _ = rustix::mount::unmount(
            proc_fd(target).as_str(),
            rustix::mount::UnmountFlags::DETACH,
        );
        return Err(io::Error::other(format!(
            "{} is not the file system just mounted on it",
            show_path(dir)
        )));
    }
    Ok(mnt)
}

/// What happened to one credential.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// Written.
    Created,
    /// A file of that name exists: the first writer wins.
    Exists,
}

/// Writes one credential: a 0400 temp file (`O_EXCL|O_NOFOLLOW`), then a
/// hard link to NAME (fails if NAME exists: first wins), then unlink the temp
/// name. A failure never leaves a half-written NAME.
pub fn write_credential(dir: &OwnedFd, name: &str, value: &[u8]) -> io::Result<Written> {
    let open = || {
        rustix::fs::openat(
            dir,
            TEMP_NAME,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o400),
        )
    };
    let fd = match open() {
        Ok(fd) => fd,
        Err(Errno::EXIST) => {
            // A leftover from an interrupted run.
            rustix::fs::unlinkat(dir, TEMP_NAME, rustix::fs::AtFlags::empty())?;
            open()?
        }
        Err(e) => return Err(e.into()),
    };
    let res = (|| -> io::Result<Written> {
        std::fs::File::from(fd).write_all(value)?;
        match rustix::fs::linkat(dir, TEMP_NAME, dir, name, rustix::fs::AtFlags::empty()) {
            Ok(()) => Ok(Written::Created),
            Err(Errno::EXIST) => Ok(Written::Exists),
            Err(e) => Err(e.into()),
        }
    })();
    let _ = rustix::fs::unlinkat(dir, TEMP_NAME, rustix::fs::AtFlags::empty());
    res
}

/// Runs `import`.
pub fn run(args: &ImportArgs) -> Result<Exit> {
    let asked = asked(&args.expect)?;
    let root = Root::open(&args.root.root)?;
    let smbios = observe::read_smbios(&root, args.root.systemd_version)?;
    let mut log = String::new();
    let disabled = smbios
        .preconditions
        .iter()
        .any(|p| p.check == PreconditionId::ImportEnabled && p.state == CheckState::Failed);
    let prepared = prepare(&args.to, !args.no_mount)?;
    let setup = &prepared.setup;
    log.push_str(&format!(
        "import: {} is {}\n",
        show_path(&args.to),
        match setup {
            Setup::Mounted(fs) => format!("a new private {fs} mount"),
            Setup::ExistingMount => "an existing mount, used as is".into(),
            Setup::Directory => "a plain 0700 directory (no private mount)".into(),
            Setup::Reused => "a 0700 directory a previous import filled, used as is".into(),
        }
    ));
    if disabled {
        log.push_str(
            "import: systemd.import_credentials=no on the kernel command line: nothing imported\n",
        );
    } else {
        let dir = &prepared.dir;
        let (mut created, mut skipped) = (0usize, 0usize);
        // fw_cfg first (systemd imports it before SMBIOS), then SMBIOS.
        let mut values: Vec<(String, vmcreds_common::Secret)> = Vec::new();
        for p in vmcreds_common::check::fw_cfg_priors(&smbios.fw_cfg) {
            if let Some(b) = root.read_bounded(
                &format!("{FW_CFG_DIR}/{}/raw", p.name.as_str()),
                vmcreds_common::limits::CREDENTIAL_SIZE_MAX,
            )? {
                values.push((
                    p.name.as_str().to_owned(),
                    vmcreds_common::Secret::new(b.bytes),
                ));
            }
        }
        for s in smbios.prediction.imported() {
            if let (Some(n), Some(v)) = (&s.name, &s.value) {
                values.push((n.clone(), v.clone()));
            }
        }
        for (name, value) in &values {
            match write_credential(dir, name, value.expose()) {
                Ok(Written::Created) => created += 1,
                Ok(Written::Exists) => skipped += 1,
                Err(e) if e.raw_os_error() == Some(Errno::NOSPC.raw_os_error()) => {
                    log.push_str(&format!(
                        "import: no space left writing \"{}\": the rest is not imported (as systemd does)\n",
                        escape_name(name.as_bytes())
                    ));
                    break;
                }
                Err(e) => {
                    return Err(ImportError {
                        what: "write a credential into",
                        path: args.to.clone(),
                        source: e,
                    }
                    .into())
                }
            }
        }
        log.push_str(&format!(
            "import: {created} credential(s) written, {skipped} already present (first wins)\n"
        ));
        if matches!(setup, Setup::Mounted(_)) {
            let flags = MountFlags::RDONLY
                | MountFlags::NODEV
                | MountFlags::NOEXEC
                | MountFlags::NOSUID
                | MountFlags::NOSYMFOLLOW;
            // Through the mount's own fd, not DIR's path.
            if rustix::mount::mount_remount(proc_fd(dir).as_str(), flags, "").is_err() {
                log.push_str("import: could not remount read-only\n");
            }
        }
    }
    let loc = CredsLocation::Dir(args.to.clone());
    let observed = observe::observe(&root, &loc, smbios, &asked)?;
    if args.expect.json {
        eprint!("{log}");
    } else {
        super::write_stdout(log.as_bytes())?;
    }
    finish(&root, &loc, &observed, &args.expect, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn refusal(r: Result<Prepared>) -> Refused {
        let f = r.unwrap_err();
        f.error()
            .downcast_ref::<Refused>()
            .cloned()
            .expect("a refusal")
    }

    #[test]
    fn test_write_first_wins_and_mode() {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let p = prepare(d.path(), false).unwrap();
        assert_eq!(p.setup, Setup::Directory);
        let dir = p.dir;
        assert_eq!(
            write_credential(&dir, "A", b"first").unwrap(),
            Written::Created
        );
        assert_eq!(
            write_credential(&dir, "A", b"second").unwrap(),
            Written::Exists
        );
        assert_eq!(std::fs::read(d.path().join("A")).unwrap(), b"first");
        let m = std::fs::metadata(d.path().join("A")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o400);
        assert!(!d.path().join(TEMP_NAME).exists());
        assert_eq!(
            std::fs::metadata(d.path()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // What a previous import left is used again, as is.
        assert_eq!(prepare(d.path(), false).unwrap().setup, Setup::Reused);
    }

    #[test]
    fn test_links_and_full_directories_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::os::unix::fs::symlink(&target, d.path().join("link")).unwrap();
        assert!(matches!(
            refusal(prepare(&d.path().join("link"), false)),
            Refused::Symlink(_)
        ));
        std::fs::write(d.path().join("file"), b"x").unwrap();
        assert!(matches!(
            refusal(prepare(&d.path().join("file"), false)),
            Refused::NotDirectory(_)
        ));
        // Not an import's leftovers: a file of another mode, another name.
        std::fs::write(target.join("notes\x1b.txt"), b"keep").unwrap();
        let r = refusal(prepare(&target, false));
        assert!(
            matches!(&r, Refused::NotEmpty { shown, .. } if shown == "\"notes\\x1b.txt\""),
            "{r:?}"
        );
        assert_eq!(
            std::fs::read(target.join("notes\x1b.txt")).unwrap(),
            b"keep"
        );
        // A 0400 file with a credential name in a 0700 directory is an import's.
        std::fs::remove_file(target.join("notes\x1b.txt")).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(target.join("API_KEY"), b"v").unwrap();
        std::fs::set_permissions(
            target.join("API_KEY"),
            std::fs::Permissions::from_mode(0o400),
        )
        .unwrap();
        assert_eq!(prepare(&target, false).unwrap().setup, Setup::Reused);
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            refusal(prepare(&target, false)),
            Refused::NotEmpty { .. }
        ));
    }

    /// The path for kernels before 5.2 (this machine has the new API): a
    /// mount through /proc/self/fd/N, then the mount reopened and checked.
    #[test]
    fn test_legacy_mount_through_the_fd() {
        if !vmcreds_os::require::root_or_skip("mounting needs root") {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("m");
        std::fs::create_dir(&dir).unwrap();
        let fd = rustix::fs::openat(
            CWD,
            &dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        let (_, fs, options) = CANDIDATES[1];
        let mnt = match mount_legacy(fs, options, &fd, &dir) {
            Ok(m) => m,
            Err(e) if e.raw_os_error() == Some(Errno::PERM.raw_os_error()) => {
                vmcreds_os::require::have_or_skip(
                    "root",
                    false,
                    &format!("root may not mount here: no CAP_SYS_ADMIN ({e})"),
                );
                return;
            }
            Err(e) => panic!("{e}"),
        };
        write_credential(&mnt, "A", b"in the mount").unwrap();
        assert_eq!(std::fs::read(dir.join("A")).unwrap(), b"in the mount");
        rustix::mount::unmount(&dir, rustix::mount::UnmountFlags::DETACH).unwrap();
        assert!(
            !dir.join("A").exists(),
            "written under the mount, not into it"
        );
    }
}
