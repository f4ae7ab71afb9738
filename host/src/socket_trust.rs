//! Who may receive the credentials over a unix socket (cloud-hypervisor's
//! API socket): the socket, its directory and the process answering on it
//! must belong to this process's effective user, to the VMM's user named
//! with `--vmm-user`, or to root (who can read this process's memory
//! anyway, and whose systemd binds the socket of a socket-activated VMM:
//! `SO_PEERCRED` then names PID 1).
//!
//! Mode bits alone say nothing about who bound a socket: another user who
//! binds the path first (a shared or world-writable directory, a VMM not yet
//! running) would receive the whole VmConfig, every credential in it. So,
//! before anything is sent, [`check_path`] checks the owner of the socket
//! (links followed) and of the directory holding it (root may own that
//! directory too; one writable by others needs the sticky bit), and after
//! connecting [`check_peer`] checks `SO_PEERCRED`, the credentials of the
//! process that listens: the path can be swapped between the two, the peer
//! cannot.

use std::fs::Metadata;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use thiserror::Error;

use crate::exit::{Classify, Exit};
use crate::show_path;

/// The users whose socket may receive the credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trusted {
    /// This process's effective user.
    pub euid: u32,
    /// The VMM's user, from `--vmm-user`.
    pub vmm: Option<u32>,
}

impl Trusted {
    /// The effective user, and `vmm` if given.
    pub fn new(vmm: Option<u32>) -> Trusted {
        Trusted {
            euid: rustix::process::geteuid().as_raw(),
            vmm,
        }
    }

    fn allows(&self, uid: u32) -> bool {
        uid == 0 || uid == self.euid || self.vmm == Some(uid)
    }

    /// "uid 0 (root)", "uid 1000 (alice) or root", "uid 1000 (alice), uid
    /// 107 (ch) or root", for messages.
    pub fn describe(&self) -> String {
        let mut users = vec![self.euid];
        if let Some(v) = self.vmm.filter(|v| !users.contains(v)) {
            users.push(v);
        }
        let named: Vec<String> = users.iter().filter(|&&u| u != 0).map(|&u| who(u)).collect();
        match named.len() {
            0 => who(0),
            1 => format!("{} or root", named[0]),
            _ => format!("{} or root", named.join(", ")),
        }
    }
}

/// Why the credentials are not sent over a socket.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TrustError {
    /// The socket file belongs to another user.
    #[error("{socket} belongs to {owner}, not to {trusted}: whoever owns the API socket receives every credential, so nothing is sent (if cloud-hypervisor runs as that user, say so with --vmm-user)")]
    SocketOwner {
        /// The socket, escaped.
        socket: String,
        /// Its owner.
        owner: String,
        /// Who may own it.
        trusted: String,
    },
    /// The directory holding the socket belongs to another user.
    #[error("{dir}, the directory of the API socket, belongs to {owner}, not to {trusted}: its owner can replace the socket, so nothing is sent (if cloud-hypervisor runs as that user, say so with --vmm-user)")]
    DirectoryOwner {
        /// The directory, escaped.
        dir: String,
        /// Its owner.
        owner: String,
        /// Who may own it.
        trusted: String,
    },
    /// Others can replace the socket.
    #[error("{dir}, the directory of the API socket, has mode {mode:04o}: others can write to it and it has no sticky bit, so anyone could replace the socket; nothing is sent (keep the socket in a directory only the VM's user can write, e.g. a RuntimeDirectory=)")]
    DirectoryWritable {
        /// The directory, escaped.
        dir: String,
        /// Its mode.
        mode: u32,
    },
    /// The process answering is another user's.
    #[error("the process answering on {socket} (pid {pid}) runs as {owner}, not as {trusted}: nothing is sent (if cloud-hypervisor runs as that user, say so with --vmm-user)")]
    Peer {
        /// The socket, escaped.
        socket: String,
        /// The peer's pid.
        pid: i32,
        /// The peer's user.
        owner: String,
        /// Who may answer.
        trusted: String,
    },
    /// `--vmm-user` names no user.
    #[error("--vmm-user \"{0}\": no such user in /etc/passwd (give a user name or a numeric uid)")]
    UnknownUser(String),
}

impl Classify<Exit> for TrustError {
    fn exit(&self) -> Exit {
        Exit::Refused
    }
}

/// `uid N (name)`, or `uid N` for a uid /etc/passwd does not name.
pub fn who(uid: u32) -> String {
    match user_name(uid) {
        Some(n) => format!(
            "uid {uid} ({})",
            vmcreds_common::escape::escape_name(n.as_bytes())
        ),
        None => format!("uid {uid}"),
    }
}

fn passwd() -> Vec<(String, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((name.to_owned(), uid))
        })
        .collect()
}

/// The name /etc/passwd gives `uid`.
pub fn user_name(uid: u32) -> Option<String> {
    passwd()
        .into_iter()
        .find(|(_, u)| *u == uid)
        .map(|(n, _)| n)
}

/// Parses `--vmm-user USER|UID`: a numeric uid as it is, a name through
/// /etc/passwd.
pub fn parse_user(s: &str) -> Result<u32, TrustError> {
    if let Ok(uid) = s.parse::<u32>() {
        return Ok(uid);
    }
    passwd()
        .into_iter()
        .find(|(n, _)| n == s)
        .map(|(_, u)| u)
        .ok_or_else(|| TrustError::UnknownUser(vmcreds_common::escape::escape_name(s.as_bytes())))
}

/// Checks the socket's owner and its directory's. A path that cannot be
/// examined is left to `connect(2)` to report (and [`check_peer`] to judge).
pub fn check_path(socket: &Path, trusted: &Trusted) -> Result<(), TrustError> {
    let Ok(real) = std::fs::canonicalize(socket) else {
        return Ok(());
    };
    let Ok(meta) = std::fs::metadata(&real) else {
        return Ok(());
    };
    check_socket_meta(socket, &meta, trusted)?;
    let dir = real.parent().unwrap_or(Path::new("/"));
    if let Ok(d) = std::fs::metadata(dir) {
        check_dir_meta(dir, &d, trusted)?;
    }
    Ok(())
}

fn check_socket_meta(socket: &Path, meta: &Metadata, trusted: &Trusted) -> Result<(), TrustError> {
    if meta.file_type().is_socket() && !trusted.allows(meta.uid()) {
        return Err(TrustError::SocketOwner {
            socket: show_path(socket),
            owner: who(meta.uid()),
            trusted: trusted.describe(),
        });
    }
    Ok(())
}

fn check_dir_meta(dir: &Path, meta: &Metadata, trusted: &Trusted) -> Result<(), TrustError> {
    if !trusted.allows(meta.uid()) {
        return Err(TrustError::DirectoryOwner {
            dir: show_path(dir),
            owner: who(meta.uid()),
            trusted: trusted.describe(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(TrustError::DirectoryWritable {
            dir: show_path(dir),
            mode,
        });
    }
    Ok(())
}

/// Checks who listens on a connected socket, from its `SO_PEERCRED`
/// ([`peer_of`]).
pub fn check_peer(
    cred: &rustix::net::UCred,
    socket: &Path,
    trusted: &Trusted,
) -> Result<(), TrustError> {
    let uid = cred.uid.as_raw();
    if trusted.allows(uid) {
        return Ok(());
    }
    Err(TrustError::Peer {
        socket: show_path(socket),
        pid: cred.pid.as_raw_nonzero().get(),
        owner: who(uid),
        trusted: trusted.describe(),
    })
}

/// The credentials of the process that listens on a connected socket.
pub fn peer_of(stream: impl AsFd) -> std::io::Result<rustix::net::UCred> {
    Ok(rustix::net::sockopt::socket_peercred(stream)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn test_parse_user_and_who() {
        assert_eq!(parse_user("0").unwrap(), 0);
        assert_eq!(parse_user("root").unwrap(), 0);
        assert_eq!(parse_user("4294967295").unwrap(), u32::MAX);
        assert!(matches!(
            parse_user("no-such-user-\x1b"),
            Err(TrustError::UnknownUser(n)) if n == "no-such-user-\\x1b"
        ));
        assert_eq!(who(0), "uid 0 (root)");
    }

    #[test]
    fn test_directory_rules() {
        let me = Trusted::new(None);
        let d = tempfile::tempdir().unwrap();
        for (mode, ok) in [
            (0o700, true),
            (0o755, true),
            (0o777, false),
            (0o1777, true),
            (0o770, false),
        ] {
            std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            let m = std::fs::metadata(d.path()).unwrap();
            assert_eq!(check_dir_meta(d.path(), &m, &me).is_ok(), ok, "{mode:o}");
        }
        let other = Trusted {
            euid: me.euid.wrapping_add(1),
            vmm: None,
        };
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let m = std::fs::metadata(d.path()).unwrap();
        // Root may own the directory; anyone else must be trusted.
        assert_eq!(check_dir_meta(d.path(), &m, &other).is_ok(), me.euid == 0);
        assert_eq!(
            Trusted {
                euid: 0,
                vmm: Some(0)
            }
            .describe(),
            "uid 0 (root)"
        );
        assert!(Trusted {
            euid: 0,
            vmm: Some(65534)
        }
        .describe()
        .ends_with(" or root"));
        let vmm = Trusted {
            euid: other.euid,
            vmm: Some(me.euid),
        };
        assert!(check_dir_meta(d.path(), &m, &vmm).is_ok());
    }

    #[test]
    fn test_socket_owner_and_peer() {
        let me = Trusted::new(None);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        let l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        assert_eq!(check_path(&p, &me), Ok(()));
        let c = std::os::unix::net::UnixStream::connect(&p).unwrap();
        let cred = peer_of(&c).unwrap();
        assert_eq!(cred.uid.as_raw(), me.euid);
        assert!(check_peer(&cred, &p, &me).is_ok());
        let other = Trusted {
            euid: me.euid.wrapping_add(1),
            vmm: None,
        };
        let meta = std::fs::metadata(&p).unwrap();
        if me.euid == 0 {
            // Root's socket and root's listener are always acceptable.
            assert!(check_socket_meta(&p, &meta, &other).is_ok());
            assert!(check_peer(&cred, &p, &other).is_ok());
        } else {
            assert!(matches!(
                check_socket_meta(&p, &meta, &other),
                Err(TrustError::SocketOwner { .. })
            ));
            let e = check_peer(&cred, &p, &other).unwrap_err().to_string();
            assert!(e.contains("runs as uid") && e.contains("--vmm-user"), "{e}");
        }
        drop(l);
        // A path that does not exist is connect's to report.
        assert_eq!(check_path(&d.path().join("none"), &other), Ok(()));
    }
}
