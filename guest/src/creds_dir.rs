//! What systemd imported: the credentials directory (`/run/credentials/@system`
//! under the root, or a directory `import --to` wrote), listed with sizes,
//! modes and digests, and its file system judged `secure` or `weak` as
//! `systemd-creds list` does.
//!
//! The listing is the check's hot path at boot. The directory is opened
//! once; entry types come from `getdents` (no `lstat` per name); each
//! regular file costs exactly `openat` (relative to the directory, never
//! following a link, never blocking on a FIFO), `fstat`, one `read` sized
//! from `fstat`, and `close`, into one buffer reused for every file and
//! wiped when done. A file over systemd's per-credential limit cannot have
//! come from systemd and is reported without being read.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use vmcreds_common::check::{ImportedFile, ImportedKind, ImportedListing};
use vmcreds_common::digest::{digest, Nonce};
use vmcreds_common::escape::escape_name;
use vmcreds_common::file_kind::FileKind;
use vmcreds_common::limits::CREDENTIAL_SIZE_MAX;
use vmcreds_common::report::Storage;

use crate::sysfs::{ReadError, Root};

/// Where PID 1 puts system credentials.
pub const SYSTEM_DIR: &str = "/run/credentials/@system";

/// `RAMFS_MAGIC` (`include/uapi/linux/magic.h`).
pub const RAMFS_MAGIC: i64 = 0x8584_58f6;
/// `TMPFS_MAGIC`.
pub const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Largest credential file read in full by name (the manifest, the notify
/// socket): systemd's per-credential limit.
pub const SMALL_FILE_MAX: usize = CREDENTIAL_SIZE_MAX;

/// Where the imported credentials are read from.
#[derive(Clone, Debug)]
pub enum CredsLocation {
    /// `/run/credentials/@system` under the root.
    System,
    /// A directory `import --to` wrote (a path on the running system).
    Dir(PathBuf),
}

impl CredsLocation {
    /// The directory, for messages.
    pub fn display(&self) -> String {
        match self {
            CredsLocation::System => SYSTEM_DIR.to_owned(),
            CredsLocation::Dir(p) => vmcreds_os::show_path(p),
        }
    }

    /// The directory's real path (under the root).
    pub fn path(&self, root: &Root) -> PathBuf {
        match self {
            CredsLocation::System => root.path(SYSTEM_DIR),
            CredsLocation::Dir(p) => p.clone(),
        }
    }

    /// Opens the directory for listing.
    fn open(&self, root: &Root) -> io::Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        match self {
            CredsLocation::System => root.open_at(SYSTEM_DIR, flags),
            CredsLocation::Dir(p) => Ok(rustix::fs::open(p, flags, Mode::empty())?),
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

/// The system calls that reading one entry makes, behind a trait so that a
/// test can count them. The budget per regular file: `openat`, `fstat`, one
/// `read`, and the `close` when the descriptor is dropped.
trait EntryIo {
    /// An open entry (closed when dropped).
    type Fd: AsFd;
    /// `openat(dir, name)`, never through a link, never blocking.
    fn open(&mut self, dir: &OwnedFd, name: &CStr) -> io::Result<Self::Fd>;
    /// `fstat(fd)`.
    fn stat(&mut self, fd: &Self::Fd) -> io::Result<rustix::fs::Stat>;
    /// `read(fd, buf)`.
    fn read(&mut self, fd: &Self::Fd, buf: &mut [u8]) -> rustix::io::Result<usize>;
}

/// The real system calls.
struct Sys;

impl EntryIo for Sys {
    type Fd = OwnedFd;

    fn open(&mut self, dir: &OwnedFd, name: &CStr) -> io::Result<OwnedFd> {
        open_entry(dir, name)
    }

    fn stat(&mut self, fd: &OwnedFd) -> io::Result<rustix::fs::Stat> {
        Ok(rustix::fs::fstat(fd)?)
    }

    fn read(&mut self, fd: &OwnedFd, buf: &mut [u8]) -> rustix::io::Result<usize> {
        rustix::io::read(fd, buf)
    }
}

/// Bytes of the buffer `getdents` fills: room for about 800 names of the
/// benchmark's length, and for any one entry (a name is at most 255 bytes).
const DENTS_BUFFER: usize = 32 * 1024;

/// One buffer for every credential file, grown to the largest one read and
/// wiped when dropped: it held credential bytes.
#[derive(Default)]
struct ReadBuffer {
    buf: Vec<u8>,
}

impl ReadBuffer {
    /// Reads all of `fd` (whose `fstat` size is `size`) into the buffer:
    /// one `read` when the file is as large as `fstat` said. Returns the
    /// bytes, or `None` when it grew past systemd's limit while being read.
    fn fill<I: EntryIo>(
        &mut self,
        io: &mut I,
        fd: &I::Fd,
        size: usize,
    ) -> io::Result<Option<&[u8]>> {
        // One byte more than the size, so that a single read returning
        // short proves the end of the file.
        let want = size + 1;
        if self.buf.len() < want {
            vmcreds_os::bounded::wipe(&mut self.buf);
            self.buf = vec![0; want];
        }
        let mut filled = 0;
        loop {
            if filled == self.buf.len() {
                if filled > CREDENTIAL_SIZE_MAX {
                    return Ok(None);
                }
                let mut grown = vec![0; (filled * 2).min(CREDENTIAL_SIZE_MAX + 1)];
                grown[..filled].copy_from_slice(&self.buf[..filled]);
                vmcreds_os::bounded::wipe(&mut self.buf);
                self.buf = grown;
            }
            match io.read(fd, &mut self.buf[filled..]) {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    if filled >= size && filled < self.buf.len() {
                        break;
                    }
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(&self.buf[..filled]))
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        vmcreds_os::bounded::wipe(&mut self.buf);
    }
}

/// Opens `name` in `dir` for reading: never through a link, never blocking.
fn open_entry(dir: &OwnedFd, name: &CStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Reads one entry that `getdents` called a regular file (or did not type).
fn read_entry(
    io: &mut impl EntryIo,
    dir: &OwnedFd,
    name: &CStr,
    buf: &mut ReadBuffer,
    nonce: Option<&Nonce>,
) -> io::Result<ImportedKind> {
    let fd = match io.open(dir, name) {
        Ok(fd) => fd,
        // Replaced by a link since the listing: report the link.
        Err(e) if e.raw_os_error() == Some(Errno::LOOP.raw_os_error()) => {
            return Ok(ImportedKind::Other(FileKind::Symlink))
        }
        Err(e) => return Err(e),
    };
    let st = io.stat(&fd)?;
    let kind = FileKind::from_mode(st.st_mode);
    if kind != FileKind::Regular {
        return Ok(ImportedKind::Other(kind));
    }
    let size = st.st_size.max(0) as u64;
    let mode = st.st_mode & 0o7777;
    if size > CREDENTIAL_SIZE_MAX as u64 {
        return Ok(ImportedKind::Regular {
            bytes: size,
            mode,
            digest: None,
        });
    }
    Ok(match buf.fill(io, &fd, size as usize)? {
        Some(bytes) => ImportedKind::Regular {
            bytes: bytes.len() as u64,
            mode,
            digest: Some(digest(bytes, nonce)),
        },
        None => ImportedKind::Regular {
            bytes: size,
            mode,
            digest: None,
        },
    })
}

/// Lists the credentials directory, digesting every regular file with
/// `nonce`. `Ok(None)` when the directory does not exist.
pub fn read_listing(
    root: &Root,
    loc: &CredsLocation,
    nonce: Option<&Nonce>,
) -> Result<Option<ImportedListing>, ReadError> {
    read_listing_with(&mut Sys, root, loc, nonce)
}

/// [`read_listing`] through `io` for each entry.
fn read_listing_with(
    io: &mut impl EntryIo,
    root: &Root,
    loc: &CredsLocation,
    nonce: Option<&Nonce>,
) -> Result<Option<ImportedListing>, ReadError> {
    let path = loc.path(root);
    let err = |e: io::Error| ReadError::new(&path, e);
    let dir = match loc.open(root) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e)),
    };
    let (storage, storage_detail) = judge_fs(root, loc, &dir)?;
    // Room for a typical directory up front: each doubling is a copy of
    // every entry so far.
    let mut files = Vec::with_capacity(64);
    let mut buf = ReadBuffer::default();
    // One buffer for every getdents (rustix's `Dir` allocates a name per
    // entry and starts small): 255 entries take one call and the end one.
    let mut dents = Vec::with_capacity(DENTS_BUFFER);
    let mut entries = rustix::fs::RawDir::new(dir.as_fd(), dents.spare_capacity_mut());
    while let Some(ent) = entries.next() {
        let ent = ent.map_err(|e| err(e.into()))?;
        let raw = ent.file_name();
        if matches!(raw.to_bytes(), b"." | b"..") {
            continue;
        }
        let name = display_name(raw.to_bytes());
        let typed = FileKind::from_mode(ent.file_type().as_raw_mode());
        let kind = match typed {
            // DT_UNKNOWN (some file systems): let the open and fstat say.
            FileKind::Regular | FileKind::Other => read_entry(io, &dir, raw, &mut buf, nonce),
            other => Ok(ImportedKind::Other(other)),
        };
        match kind {
            Ok(kind) => files.push(ImportedFile { name, kind }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(ReadError::new(
                    &path.join(raw.to_string_lossy().as_ref()),
                    e,
                ))
            }
        }
    }
    vmcreds_common::check::sort_stable_by(&mut files, |a, b| {
        vmcreds_common::check::cmp_names(&a.name, &b.name)
    });
    Ok(Some(ImportedListing {
        files,
        storage,
        storage_detail,
    }))
}

/// One credential file read by name.
#[derive(Debug)]
pub enum OneFile {
    /// Its value.
    Value(vmcreds_common::Secret),
    /// No such file (or no directory).
    Absent,
    /// A regular file over systemd's per-credential limit, so not one
    /// systemd imported; not read.
    TooLarge(u64),
    /// Not a regular file; not followed or read.
    NotRegular(FileKind),
}

/// Reads one credential file of the directory at `loc` by name: never
/// through a link, never blocking, never more than systemd's limit.
pub fn read_file(root: &Root, loc: &CredsLocation, name: &str) -> Result<OneFile, ReadError> {
    let path = loc.path(root).join(name);
    let err = |e: io::Error| ReadError::new(&path, e);
    let dir = match loc.open(root) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(OneFile::Absent),
        Err(e) => return Err(err(e)),
    };
    let cname =
        std::ffi::CString::new(name).map_err(|_| err(io::ErrorKind::InvalidInput.into()))?;
    let fd = match open_entry(&dir, &cname) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(OneFile::Absent),
        Err(e) if e.raw_os_error() == Some(Errno::LOOP.raw_os_error()) => {
            return Ok(OneFile::NotRegular(FileKind::Symlink))
        }
        Err(e) => return Err(err(e)),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| err(e.into()))?;
    let kind = FileKind::from_mode(st.st_mode);
    if kind != FileKind::Regular {
        return Ok(OneFile::NotRegular(kind));
    }
    let size = st.st_size.max(0) as u64;
    if size > SMALL_FILE_MAX as u64 {
        return Ok(OneFile::TooLarge(size));
    }
    let b =
        vmcreds_os::bounded::read_bounded(std::fs::File::from(fd), SMALL_FILE_MAX).map_err(err)?;
    let value = vmcreds_common::Secret::new(b.bytes);
    Ok(if b.over_bound {
        OneFile::TooLarge(value.len() as u64)
    } else {
        OneFile::Value(value)
    })
}

/// [`read_file`]'s value, if it has one (the manifest, the notify socket).
pub fn read_one(
    root: &Root,
    loc: &CredsLocation,
    name: &str,
) -> Result<Option<Vec<u8>>, ReadError> {
    Ok(match read_file(root, loc, name)? {
        OneFile::Value(v) => Some(v.expose().to_vec()),
        _ => None,
    })
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

/// Judges the file system of the credentials directory like `systemd-creds`:
/// `secure` on ramfs or on tmpfs with `noswap`, else `weak`. The type and
/// options come from `mountinfo` (under the root); on the running system,
/// `fstatfs` on the open directory gives the magic when mountinfo has no
/// entry for it.
fn judge_fs(
    root: &Root,
    loc: &CredsLocation,
    dir: &OwnedFd,
) -> Result<(Storage, String), ReadError> {
    let point = match loc {
        CredsLocation::System => SYSTEM_DIR.to_owned(),
        CredsLocation::Dir(p) => std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.clone())
            .to_string_lossy()
            .into_owned(),
    };
    let info = match loc {
        CredsLocation::System => root.read_text("/proc/self/mountinfo")?,
        CredsLocation::Dir(_) => Root::host().read_text("/proc/self/mountinfo")?,
    }
    .unwrap_or_default();
    let mount = parse_mountinfo(&info)
        .into_iter()
        .rfind(|m| m.point == point);
    // f_type is i64 on x86_64 but narrower on some 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    let magic = (root.is_host() || matches!(loc, CredsLocation::Dir(_)))
        .then(|| {
            rustix::fs::fstatfs(dir.as_fd())
                .ok()
                .map(|s| s.f_type as i64)
        })
        .flatten();
    let fstype = match (&mount, magic) {
        (Some(m), _) => m.fstype.clone(),
        (None, Some(RAMFS_MAGIC)) => "ramfs".into(),
        (None, Some(TMPFS_MAGIC)) => "tmpfs".into(),
        (None, Some(other)) => format!("filesystem magic {other:#x}"),
        (None, None) => {
            return Ok((
                Storage::Weak,
                format!("no mount at {point} in mountinfo: not its own ramfs/tmpfs"),
            ))
        }
    };
    let noswap = mount
        .as_ref()
        .is_some_and(|m| m.options.split(',').any(|o| o == "noswap"));
    Ok(match fstype.as_str() {
        "ramfs" => (Storage::Secure, "ramfs".into()),
        "tmpfs" if noswap => (Storage::Secure, "tmpfs with noswap".into()),
        "tmpfs" => (
            Storage::Weak,
            "tmpfs without noswap (may be swapped out)".into(),
        ),
        other => (Storage::Weak, format!("{other}: not ramfs or tmpfs")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let c = d.path().join("run/credentials/@system");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::create_dir_all(d.path().join("proc/self")).unwrap();
        std::fs::write(
            d.path().join("proc/self/mountinfo"),
            "40 27 0:40 / /run/credentials/@system ro - ramfs ramfs rw,mode=700\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn test_listing_digests_and_refuses_links() {
        let d = tree();
        let c = d.path().join("run/credentials/@system");
        std::fs::write(c.join("A"), b"hello").unwrap();
        std::fs::set_permissions(c.join("A"), std::fs::Permissions::from_mode(0o400)).unwrap();
        std::fs::write(c.join("B"), b"x").unwrap();
        std::fs::set_permissions(c.join("B"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", c.join("L")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            c.join("F"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        std::fs::write(c.join("E"), b"").unwrap();
        let root = Root::open(d.path()).unwrap();
        let l = read_listing(&root, &CredsLocation::System, None)
            .unwrap()
            .unwrap();
        assert_eq!(l.files.len(), 5);
        assert_eq!(
            (l.storage, l.storage_detail.as_str()),
            (Storage::Secure, "ramfs")
        );
        let a = l.view("A");
        assert_eq!(a.bytes, Some(5));
        assert_eq!(a.digest, Some(digest(b"hello", None)));
        assert_eq!(a.mode.unwrap().to_string(), "0400");
        assert_eq!(a.secure, Some(Storage::Secure));
        assert_eq!(l.view("B").secure, Some(Storage::Insecure));
        assert_eq!(l.view("E").bytes, Some(0));
        assert_eq!(
            l.get("L").unwrap().kind,
            ImportedKind::Other(FileKind::Symlink)
        );
        assert_eq!(
            l.get("F").unwrap().kind,
            ImportedKind::Other(FileKind::Fifo)
        );
        assert!(!l.view("L").present);
        std::fs::remove_dir_all(&c).unwrap();
        assert!(read_listing(&root, &CredsLocation::System, None)
            .unwrap()
            .is_none());
    }

    #[test]
    fn test_a_file_over_the_limit_is_not_read() {
        let d = tree();
        let f = std::fs::File::create(d.path().join("run/credentials/@system/HUGE")).unwrap();
        f.set_len(4 << 30).unwrap(); // sparse: costs nothing unless read
        let root = Root::open(d.path()).unwrap();
        let mut io = Counting::default();
        let l = read_listing_with(&mut io, &root, &CredsLocation::System, None)
            .unwrap()
            .unwrap();
        assert_eq!(
            (io.opens, io.stats, io.reads, io.closes.get()),
            (1, 1, 0, 1),
            "opened and stated, not read"
        );
        assert!(
            matches!(
                l.get("HUGE").unwrap().kind,
                ImportedKind::Regular {
                    bytes,
                    digest: None,
                    ..
                } if bytes == 4 << 30
            ),
            "{:?}",
            l.get("HUGE")
        );
    }

    /// [`Sys`], counting every call and every close.
    #[derive(Default)]
    struct Counting {
        opens: usize,
        stats: usize,
        reads: usize,
        closes: std::rc::Rc<std::cell::Cell<usize>>,
    }

    /// An open entry that counts its close.
    struct CountedFd(OwnedFd, std::rc::Rc<std::cell::Cell<usize>>);

    impl AsFd for CountedFd {
        fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
            self.0.as_fd()
        }
    }

    impl Drop for CountedFd {
        fn drop(&mut self) {
            self.1.set(self.1.get() + 1);
        }
    }

    impl EntryIo for Counting {
        type Fd = CountedFd;

        fn open(&mut self, dir: &OwnedFd, name: &CStr) -> io::Result<CountedFd> {
            self.opens += 1;
            Ok(CountedFd(Sys.open(dir, name)?, self.closes.clone()))
        }

        fn stat(&mut self, fd: &CountedFd) -> io::Result<rustix::fs::Stat> {
            self.stats += 1;
            Sys.stat(&fd.0)
        }

        fn read(&mut self, fd: &CountedFd, buf: &mut [u8]) -> rustix::io::Result<usize> {
            self.reads += 1;
            Sys.read(&fd.0, buf)
        }
    }

    /// Issue 12 §6's budget: per imported regular file one `openat`, one
    /// `fstat`, one `read` and its `close`, whatever the file's size (the
    /// read buffer grows from the `fstat` size, not by retrying); nothing
    /// is opened for a link, a FIFO or a directory.
    #[test]
    fn test_system_calls_per_file() {
        let d = tree();
        let c = d.path().join("run/credentials/@system");
        let sizes = [0usize, 1, 150, 4095, 4096, 70_000, 150, 1 << 20];
        for (i, n) in sizes.iter().enumerate() {
            std::fs::write(c.join(format!("F{i}")), vec![b'x'; *n]).unwrap();
        }
        std::os::unix::fs::symlink("F0", c.join("LINK")).unwrap();
        std::fs::create_dir(c.join("DIR")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            c.join("FIFO"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let root = Root::open(d.path()).unwrap();
        let mut io = Counting::default();
        let l = read_listing_with(&mut io, &root, &CredsLocation::System, None)
            .unwrap()
            .unwrap();
        assert_eq!(l.files.len(), sizes.len() + 3);
        for (i, n) in sizes.iter().enumerate() {
            assert_eq!(l.view(&format!("F{i}")).bytes, Some(*n as u64));
        }
        let files = sizes.len();
        assert_eq!(
            (io.opens, io.stats, io.reads, io.closes.get()),
            (files, files, files, files),
            "one openat, fstat, read and close per file"
        );
    }

    #[test]
    fn test_read_buffer_reads_past_one_page_and_grows() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let data: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let mut buf = ReadBuffer::default();
        let fd: OwnedFd = std::fs::File::open(&p).unwrap().into();
        assert_eq!(
            buf.fill(&mut Sys, &fd, data.len()).unwrap().unwrap(),
            &data[..]
        );
        // An fstat size that is too small (the file grew): still read whole.
        let fd: OwnedFd = std::fs::File::open(&p).unwrap().into();
        assert_eq!(
            buf.fill(&mut Sys, &fd, 10).unwrap().unwrap().len(),
            data.len()
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
        let d = tree();
        std::fs::write(d.path().join("proc/self/mountinfo"), text).unwrap();
        let root = Root::open(d.path()).unwrap();
        let judge = || {
            let l = read_listing(&root, &CredsLocation::System, None)
                .unwrap()
                .unwrap();
            l.storage
        };
        assert_eq!(judge(), Storage::Secure);
        std::fs::write(
            d.path().join("proc/self/mountinfo"),
            "1 2 0:3 / /run/credentials/@system rw - tmpfs tmpfs rw,mode=700\n",
        )
        .unwrap();
        assert_eq!(judge(), Storage::Weak);
        std::fs::write(d.path().join("proc/self/mountinfo"), "").unwrap();
        assert_eq!(judge(), Storage::Weak, "not its own mount");
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
