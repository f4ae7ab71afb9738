//! `import --to DIR`: what systemd's PID 1 import does (reference §1.2–§1.8),
//! for guests without systemd ≥ 252: a private tmpfs (noswap) or ramfs on
//! DIR when root, else a 0700 directory; files 0400 created exclusively (the
//! first writer wins) and never left half-written; the same limits (the
//! prediction applies them); then the same check and reporting.

use std::io::{self, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use rustix::fs::{Mode, OFlags, CWD};
use rustix::io::Errno;
use rustix::mount::MountFlags;
use thiserror::Error;
use vmcreds_common::escape::escape_name;
use vmcreds_common::report::CheckState;

use vmcreds_common::report::PreconditionId;

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
#[error("cannot {what} {}", path.display())]
pub struct ImportError {
    /// What was being done.
    pub what: &'static str,
    /// Where.
    pub path: std::path::PathBuf,
    /// The cause.
    #[source]
    pub source: io::Error,
}

impl Classify<Exit> for ImportError {
    fn exit(&self) -> Exit {
        Exit::Unreadable
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
}

fn is_mount_point(p: &Path) -> io::Result<bool> {
    let m = std::fs::metadata(p)?;
    let parent = std::fs::metadata(p.join(".."))?;
    Ok(m.dev() != parent.dev() || m.ino() == parent.ino())
}

/// Creates DIR and, when possible, mounts a private credentials filesystem on it.
pub fn prepare(dir: &Path, allow_mount: bool) -> std::result::Result<Setup, ImportError> {
    let err = |what, source| ImportError {
        what,
        path: dir.to_owned(),
        source,
    };
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) => return Err(err("create directory", e)),
    }
    if is_mount_point(dir).map_err(|e| err("stat", e))? {
        return Ok(Setup::ExistingMount);
    }
    if allow_mount && rustix::process::geteuid().is_root() {
        let flags =
            MountFlags::NODEV | MountFlags::NOEXEC | MountFlags::NOSUID | MountFlags::NOSYMFOLLOW;
        // systemd's mount_credentials_fs() order.
        for (fs, data) in [
            ("tmpfs", c"mode=0700,nr_inodes=1024,size=1048576,noswap"),
            ("ramfs", c"mode=0700"),
            ("tmpfs", c"mode=0700,nr_inodes=1024,size=1048576"),
        ] {
            if rustix::mount::mount(fs, dir, fs, flags, data).is_ok() {
                return Ok(Setup::Mounted(if fs == "ramfs" {
                    "ramfs"
                } else if data.to_bytes().ends_with(b"noswap") {
                    "tmpfs (noswap)"
                } else {
                    "tmpfs (without noswap: the kernel lacks it)"
                }));
            }
        }
    }
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(|e| err("chmod 0700", e))?;
    Ok(Setup::Directory)
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
    let setup = prepare(&args.to, !args.no_mount)?;
    log.push_str(&format!(
        "import: {} is {}\n",
        args.to.display(),
        match &setup {
            Setup::Mounted(fs) => format!("a new private {fs} mount"),
            Setup::ExistingMount => "an existing mount, used as is".into(),
            Setup::Directory => "a plain 0700 directory (no private mount)".into(),
        }
    ));
    if disabled {
        log.push_str(
            "import: systemd.import_credentials=no on the kernel command line: nothing imported\n",
        );
    } else {
        let dir = rustix::fs::openat(
            CWD,
            &args.to,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ImportError {
            what: "open",
            path: args.to.clone(),
            source: e.into(),
        })?;
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
            match write_credential(&dir, name, value.expose()) {
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
            if rustix::mount::mount_remount(&args.to, flags, "").is_err() {
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

    #[test]
    fn test_write_first_wins_and_mode() {
        let d = tempfile::tempdir().unwrap();
        prepare(d.path(), false).unwrap();
        let dir = rustix::fs::openat(
            CWD,
            d.path(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
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
    }
}
