//! What a file is, named one way in every message of both binaries (a plain
//! type: looking at a `FileType` someone else obtained is not I/O).

use std::fmt;
use std::fs::FileType;
use std::os::unix::fs::FileTypeExt;

/// The type of a directory entry or an opened file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link (never followed where this is reported).
    Symlink,
    /// A named pipe.
    Fifo,
    /// A unix socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// Anything else.
    Other,
}

impl FileKind {
    /// The kind of `t`.
    pub fn of(t: FileType) -> FileKind {
        if t.is_file() {
            FileKind::Regular
        } else if t.is_dir() {
            FileKind::Directory
        } else if t.is_symlink() {
            FileKind::Symlink
        } else if t.is_fifo() {
            FileKind::Fifo
        } else if t.is_socket() {
            FileKind::Socket
        } else if t.is_char_device() {
            FileKind::CharDevice
        } else if t.is_block_device() {
            FileKind::BlockDevice
        } else {
            FileKind::Other
        }
    }

    /// The kind of a file whose `st_mode` is `mode` (the `S_IFMT` bits).
    pub fn from_mode(mode: u32) -> FileKind {
        match mode & 0o170000 {
            0o100000 => FileKind::Regular,
            0o040000 => FileKind::Directory,
            0o120000 => FileKind::Symlink,
            0o010000 => FileKind::Fifo,
            0o140000 => FileKind::Socket,
            0o020000 => FileKind::CharDevice,
            0o060000 => FileKind::BlockDevice,
            _ => FileKind::Other,
        }
    }

    /// The words used in messages: "symbolic link", "FIFO", …
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Regular => "regular file",
            FileKind::Directory => "directory",
            FileKind::Symlink => "symbolic link",
            FileKind::Fifo => "FIFO",
            FileKind::Socket => "socket",
            FileKind::CharDevice => "character device",
            FileKind::BlockDevice => "block device",
            FileKind::Other => "special file",
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_kinds_of_real_files() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        std::os::unix::fs::symlink(&f, d.path().join("l")).unwrap();
        let kind = |n: &str| {
            FileKind::of(
                std::fs::symlink_metadata(d.path().join(n))
                    .unwrap()
                    .file_type(),
            )
        };
        assert_eq!(kind("f"), FileKind::Regular);
        assert_eq!(kind("l"), FileKind::Symlink);
        assert_eq!(
            FileKind::of(std::fs::metadata(d.path()).unwrap().file_type()),
            FileKind::Directory
        );
        assert_eq!(
            FileKind::of(std::fs::metadata("/dev/null").unwrap().file_type()),
            FileKind::CharDevice
        );
        assert_eq!(FileKind::Symlink.to_string(), "symbolic link");
        assert_eq!(FileKind::Fifo.to_string(), "FIFO");
        use std::os::unix::fs::MetadataExt;
        for p in [d.path().to_owned(), f.clone(), "/dev/null".into()] {
            let m = std::fs::metadata(&p).unwrap();
            assert_eq!(
                FileKind::from_mode(m.mode()),
                FileKind::of(m.file_type()),
                "{}",
                p.display()
            );
        }
    }
}
