//! What systemd imported: the files of `/run/credentials/@system` (or the
//! directory `import --to` wrote), by name, size, streamed digest and mode,
//! and how safe the filesystem is, as `systemd-creds list` says.
//!
//! Files are opened with `O_NOFOLLOW` after an `lstat`: symlinks and other
//! non-regular files are recorded, never followed or opened (a FIFO would block).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use vmcreds_common::digest::{Hasher, Nonce};
use vmcreds_common::escape::escape_name;
use vmcreds_common::report::SystemdView;

use zeroize::Zeroize;

use crate::sysfs::{ReadError, Root};

/// Where PID 1 puts system credentials.
pub const SYSTEM_DIR: &str = "/run/credentials/@system";

/// `RAMFS_MAGIC` (`include/uapi/linux/magic.h`).
pub const RAMFS_MAGIC: i64 = 0x8584_58f6;
/// `TMPFS_MAGIC`.
pub const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Largest credential file read in full (the manifest, the notify socket).
pub const SMALL_FILE_MAX: usize = vmcreds_common::limits::CREDENTIAL_SIZE_MAX;

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// Its name (escaped if not printable ASCII).
    pub name: String,
    /// What it is.
    pub kind: Kind,
}

/// A regular file or something else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    Regular {
        /// Size in bytes.
        bytes: u64,
        /// Permission bits.
        mode: u32,
        /// Digest of the contents.
        digest: vmcreds_common::Digest,
    },
    /// Not a regular file (`symlink`, `directory`, `fifo`, …): not followed.
    Other(&'static str),
}

/// The directory as read.
#[derive(Clone, Debug)]
pub struct Listing {
    /// The directory that was read (for messages).
    pub path: PathBuf,
    /// Its entries, sorted by name.
    pub files: Vec<Imported>,
    /// `secure`, `weak` or unknown (per file, `insecure` overrides).
    pub fs_secure: &'static str,
    /// How the filesystem was judged, for people.
    pub fs_detail: String,
}

impl Listing {
    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&Imported> {
        // `files` is sorted by name (read_dir).
        self.files
            .binary_search_by(|f| f.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.files[i])
    }

    /// The report's view of `name` (present or not).
    pub fn view(&self, name: &str) -> SystemdView {
        match self.get(name).map(|f| &f.kind) {
            Some(Kind::Regular {
                bytes,
                mode,
                digest,
            }) => SystemdView {
                present: true,
                bytes: Some(*bytes),
                digest: Some(digest.clone()),
                mode: Some(format!("{:04o}", mode & 0o7777)),
                secure: Some(secure_of(*mode, self.fs_secure).to_owned()),
            },
            _ => SystemdView {
                present: false,
                bytes: None,
                digest: None,
                mode: None,
                secure: None,
            },
        }
    }
}

/// A name as reports show it: valid credential names as they are (like
/// `vmcreds_common::predict` does), anything else escaped.
pub fn display_name(bytes: &[u8]) -> String {
    match vmcreds_common::name::check_systemd(bytes) {
        Ok(()) => String::from_utf8_lossy(bytes).into_owned(),
        Err(_) => escape_name(bytes),
    }
}

/// `insecure` when group or other bits or owner-write/execute are set
/// (`(st_mode & 0377) != 0`, systemd-creds), else the filesystem's verdict.
pub fn secure_of(mode: u32, fs: &'static str) -> &'static str {
    if mode & 0o377 != 0 {
        "insecure"
    } else {
        fs
    }
}

fn kind_name(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "device"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading without following a final symlink, refusing
/// anything but a regular file (checked before and after open).
pub fn open_regular(path: &Path) -> io::Result<Result<File, &'static str>> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_file() {
        return Ok(Err(kind_name(meta.file_type())));
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)?;
    let m2 = f.metadata()?;
    if !m2.file_type().is_file() || m2.ino() != meta.ino() || m2.dev() != meta.dev() {
        return Ok(Err("replaced while being read"));
    }
    Ok(Ok(f))
}

/// Reads a credential file in full, bounded; `Ok(None)` when absent or not regular.
pub fn read_small(path: &Path) -> Result<Option<Vec<u8>>, ReadError> {
    read_regular(path, SMALL_FILE_MAX)
}

/// Reads a regular file (never through a symlink), at most `max` bytes;
/// `Ok(None)` when absent or not a regular file.
pub fn read_regular(path: &Path, max: usize) -> Result<Option<Vec<u8>>, ReadError> {
    let f = match open_regular(path) {
        Ok(Ok(f)) => f,
        Ok(Err(_)) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::new(path, e)),
    };
    let b = crate::sysfs::read_from(f, max).map_err(|e| ReadError::new(path, e))?;
    Ok(Some(b.bytes))
}

/// Lists `dir` (a real path), digesting every regular file with `nonce`.
/// `Ok(None)` when the directory does not exist.
pub fn read_dir(
    dir: &Path,
    nonce: Option<&Nonce>,
    fs: (&'static str, String),
) -> Result<Option<Listing>, ReadError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::new(dir, e)),
    };
    let mut files = Vec::new();
    // One read buffer for every file, wiped (as far as it was used) at the end.
    let mut buf = ReadBuffer::default();
    for ent in rd {
        let ent = ent.map_err(|e| ReadError::new(dir, e))?;
        let raw = ent.file_name();
        let name = display_name(raw.as_encoded_bytes());
        let path = ent.path();
        let kind = match open_regular(&path) {
            Ok(Ok(f)) => {
                let meta = f.metadata().map_err(|e| ReadError::new(&path, e))?;
                let digest = buf.hash(f, nonce).map_err(|e| ReadError::new(&path, e))?;
                Kind::Regular {
                    bytes: meta.len(),
                    mode: meta.mode() & 0o7777,
                    digest,
                }
            }
            Ok(Err(what)) => Kind::Other(what),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ReadError::new(&path, e)),
        };
        files.push(Imported { name, kind });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Some(Listing {
        path: dir.to_owned(),
        files,
        fs_secure: fs.0,
        fs_detail: fs.1,
    }))
}

/// A read buffer for credential files, grown to the largest file seen (at
/// most 64 KiB) and wiped on drop, as far as it was used: it held credential
/// bytes. (Allocating and wiping 64 KiB per file cost more than everything
/// else a 255-credential check does.)
#[derive(Default)]
struct ReadBuffer {
    buf: Vec<u8>,
}

impl ReadBuffer {
    const MAX: usize = 64 * 1024;

    fn hash(&mut self, mut f: File, nonce: Option<&Nonce>) -> io::Result<vmcreds_common::Digest> {
        let want = f
            .metadata()
            .map(|m| (m.len() as usize).saturating_add(1))
            .unwrap_or(Self::MAX)
            .clamp(512, Self::MAX);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        let mut h = Hasher::new(nonce);
        loop {
            match f.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => h.update(&self.buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(h.finish())
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

/// One line of `/proc/self/mountinfo`: mount point, filesystem type, options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Mount point (octal escapes decoded).
    pub point: String,
    /// Filesystem type.
    pub fstype: String,
    /// Mount options and super options, comma-joined.
    pub options: String,
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text (`proc(5)`), skipping malformed lines.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 6 || r.len() < 3 {
            continue;
        }
        out.push(Mount {
            point: unescape_mountinfo(l[4]),
            fstype: r[0].to_owned(),
            options: format!("{},{}", l[5], r[2]),
        });
    }
    out
}

/// Judges the filesystem of `mount_point` like `systemd-creds`: `secure` on
/// ramfs or on tmpfs with `noswap`, else `weak`. Uses `mountinfo` (under the
/// root) for the type and options and, when `statfs_of` is given (the running
/// system), `statfs(2)`'s magic.
pub fn judge_fs(
    root: &Root,
    mount_point: &str,
    statfs_of: Option<&Path>,
) -> Result<(&'static str, String), ReadError> {
    let info = root.read_text("/proc/self/mountinfo")?.unwrap_or_default();
    let mount = parse_mountinfo(&info)
        .into_iter()
        .rfind(|m| m.point == mount_point);
    // f_type is i64 on x86_64 but narrower on some 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    let magic = statfs_of.and_then(|p| rustix::fs::statfs(p).ok().map(|s| s.f_type as i64));
    let fstype = match (&mount, magic) {
        (Some(m), _) => m.fstype.clone(),
        (None, Some(RAMFS_MAGIC)) => "ramfs".into(),
        (None, Some(TMPFS_MAGIC)) => "tmpfs".into(),
        (None, Some(other)) => format!("filesystem magic {other:#x}"),
        (None, None) => {
            return Ok((
                "weak",
                format!("no mount at {mount_point} in mountinfo: not its own ramfs/tmpfs"),
            ))
        }
    };
    let noswap = mount
        .as_ref()
        .is_some_and(|m| m.options.split(',').any(|o| o == "noswap"));
    Ok(match fstype.as_str() {
        "ramfs" => ("secure", "ramfs".into()),
        "tmpfs" if noswap => ("secure", "tmpfs with noswap".into()),
        "tmpfs" => ("weak", "tmpfs without noswap (may be swapped out)".into()),
        other => ("weak", format!("{other}: not ramfs or tmpfs")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn test_listing_digests_and_refuses_symlinks() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("A"), b"hello").unwrap();
        std::fs::set_permissions(d.path().join("A"), std::fs::Permissions::from_mode(0o400))
            .unwrap();
        std::fs::write(d.path().join("B"), b"x").unwrap();
        std::fs::set_permissions(d.path().join("B"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.path().join("L")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.path().join("F"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let l = read_dir(d.path(), None, ("secure", String::new()))
            .unwrap()
            .unwrap();
        assert_eq!(l.files.len(), 4);
        let a = l.view("A");
        assert_eq!(a.bytes, Some(5));
        assert_eq!(
            a.digest,
            Some(vmcreds_common::digest::digest(b"hello", None))
        );
        assert_eq!(a.mode.as_deref(), Some("0400"));
        assert_eq!(a.secure.as_deref(), Some("secure"));
        assert_eq!(l.view("B").secure.as_deref(), Some("insecure"));
        assert_eq!(l.get("L").unwrap().kind, Kind::Other("symlink"));
        assert_eq!(l.get("F").unwrap().kind, Kind::Other("fifo"));
        assert!(!l.view("L").present);
        assert!(
            read_dir(&d.path().join("none"), None, ("weak", String::new()))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn test_mountinfo_and_judgement() {
        let text = "36 25 0:32 / /run/credentials/@system ro,nosuid,nodev,noexec,relatime,nosymfollow shared:13 - tmpfs none rw,size=1024k,nr_inodes=1024,mode=700,noswap\n\
                    bad line\n\
                    37 25 0:33 / /run/a\\040b rw - ramfs ramfs rw,mode=700\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].point, "/run/a b");
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("proc/self")).unwrap();
        std::fs::write(d.path().join("proc/self/mountinfo"), text).unwrap();
        let root = Root::new(d.path());
        assert_eq!(judge_fs(&root, SYSTEM_DIR, None).unwrap().0, "secure");
        assert_eq!(judge_fs(&root, "/run/a b", None).unwrap().0, "secure");
        assert_eq!(judge_fs(&root, "/other", None).unwrap().0, "weak");
        std::fs::write(
            d.path().join("proc/self/mountinfo"),
            "1 2 0:3 / /run/credentials/@system rw - tmpfs tmpfs rw,mode=700\n",
        )
        .unwrap();
        assert_eq!(judge_fs(&root, SYSTEM_DIR, None).unwrap().0, "weak");
    }

    proptest::proptest! {
        #[test]
        fn fuzz_mountinfo_never_panics(text in "\\PC{0,300}", raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = parse_mountinfo(&text);
            let _ = parse_mountinfo(&String::from_utf8_lossy(&raw));
            let _ = display_name(&raw);
        }
    }
}
