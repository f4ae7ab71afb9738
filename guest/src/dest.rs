//! Sending the report (`--report-to`) and the one-line verdict (`--notify`).
//!
//! Wire format of a report: the compact JSON document on one line followed by
//! one `\n`, written in one go and flushed; then the connection is closed.
//! The host reader must not rely on EOF (virtio-serial keeps the host side
//! open), so the newline ends the document.

use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::net::{self, AddressFamily, SocketAddrUnix, SocketType};
use thiserror::Error;

use crate::sysfs::Root;

/// Where to send a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    /// Standard output.
    Stdout,
    /// A file, written atomically (temp + rename, 0600); under `--root`
    /// resolved inside the root.
    File(PathBuf),
    /// `/dev/virtio-ports/NAME` under `--root`.
    VirtioPort(String),
    /// AF_VSOCK stream.
    Vsock {
        /// Context id.
        cid: u32,
        /// Port.
        port: u32,
    },
    /// AF_UNIX stream socket; under `--root` a path is resolved inside the
    /// root.
    Unix(PathBuf),
}

/// A destination that cannot be parsed.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("report destination \"{0}\" is not stdout, file:PATH, virtio-port:NAME, vsock:CID:PORT or unix:PATH")]
pub struct DestParseError(pub String);

fn parse_cid_port(s: &str) -> Option<(u32, u32)> {
    let (c, p) = s.split_once(':')?;
    Some((c.parse().ok()?, p.parse().ok()?))
}

impl std::str::FromStr for Dest {
    type Err = DestParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DestParseError(vmcreds_common::escape::escape_bytes(s.as_bytes(), 200));
        // A control character would break the unit line install-unit writes
        // (a newline injects lines) and a message quoting it.
        if s.chars().any(char::is_control) {
            return Err(err());
        }
        if s == "stdout" {
            return Ok(Dest::Stdout);
        }
        let (kind, rest) = s.split_once(':').ok_or_else(err)?;
        match kind {
            "file" if !rest.is_empty() => Ok(Dest::File(rest.into())),
            "unix" if !rest.is_empty() => Ok(Dest::Unix(rest.into())),
            "virtio-port"
                if !rest.is_empty() && !rest.contains('/') && rest != "." && rest != ".." =>
            {
                Ok(Dest::VirtioPort(rest.into()))
            }
            "vsock" => parse_cid_port(rest)
                .map(|(cid, port)| Dest::Vsock { cid, port })
                .ok_or_else(err),
            _ => Err(err()),
        }
    }
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dest::Stdout => f.write_str("stdout"),
            Dest::File(p) => write!(f, "file:{}", p.display()),
            Dest::VirtioPort(n) => write!(f, "virtio-port:{n}"),
            Dest::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
            Dest::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Sending failed.
#[derive(Debug, Error)]
#[error("cannot send the report to {dest}")]
pub struct SendError {
    /// The destination, as given.
    pub dest: String,
    /// The cause, with its errno.
    #[source]
    pub source: io::Error,
}

impl crate::exit::Classify<crate::exit::Exit> for SendError {
    fn exit(&self) -> crate::exit::Exit {
        crate::exit::Exit::Unreadable
    }
}

/// The wire form of a report: compact JSON and one newline.
pub fn wire(report: &vmcreds_common::report::Report) -> Vec<u8> {
    let mut v = report.to_compact_json();
    v.push(b'\n');
    v
}

/// Sends `doc` to `dest` in one write, then closes.
pub fn send(dest: &Dest, root: &Root, doc: &[u8]) -> Result<(), SendError> {
    tracing::info!(dest = %dest, bytes = doc.len(), "sending the report");
    let r = match dest {
        Dest::Stdout => {
            let mut out = io::stdout().lock();
            out.write_all(doc).and_then(|_| out.flush())
        }
        Dest::File(p) => root.write_private(p, doc),
        Dest::VirtioPort(n) => open_virtio_port(root, n, PORT_WAIT)
            .and_then(|mut f| f.write_all(doc).and_then(|_| f.flush())),
        Dest::Unix(p) => connect_report_socket(root, p).and_then(|fd| write_fd(&fd, doc)),
        Dest::Vsock { cid, port } => {
            connect_vsock(*cid, *port, SocketType::STREAM).and_then(|fd| write_fd(&fd, doc))
        }
    };
    r.map_err(|source| SendError {
        dest: dest.to_string(),
        source,
    })
}

/// How long `virtio-port:NAME` waits for the port to appear (module load,
/// udev) before giving up.
pub const PORT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens `abs` (resolved inside the root) for writing, insisting on a
/// character device: under `--root`, a link or a plain file planted at a
/// port's path is never written through.
fn open_char_device(root: &Root, abs: &str) -> io::Result<std::fs::File> {
    let fd = root.open_at(abs, rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::NOCTTY)?;
    let st = rustix::fs::fstat(&fd)?;
    let kind = vmcreds_common::file_kind::FileKind::from_mode(st.st_mode);
    if kind != vmcreds_common::file_kind::FileKind::CharDevice {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is a {kind}, not a virtio port (a character device)",
                vmcreds_os::show_path(&root.path(abs))
            ),
        ));
    }
    Ok(std::fs::File::from(fd))
}

/// Opens virtio-serial port NAME for writing: `/dev/virtio-ports/NAME` (a udev
/// symlink) or, without udev (early boot, busybox), the `/dev/vportNpM` whose
/// `/sys/class/virtio-ports/vportNpM/name` is NAME. Waits up to `wait` for it.
/// Every path is resolved inside the root, and only a character device is
/// written to.
pub fn open_virtio_port(
    root: &Root,
    name: &str,
    wait: std::time::Duration,
) -> io::Result<std::fs::File> {
    let open = |abs: &str| open_char_device(root, abs);
    let deadline = std::time::Instant::now() + wait;
    loop {
        match open(&format!("/dev/virtio-ports/{name}")) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            r => return r,
        }
        if let Ok(Some(ports)) = root.list_dir("/sys/class/virtio-ports") {
            for port in ports {
                let port = port.to_string_lossy();
                let named = root
                    .read_text(&format!("/sys/class/virtio-ports/{port}/name"))
                    .ok()
                    .flatten();
                if named.as_deref().map(str::trim) == Some(name) {
                    match open(&format!("/dev/{port}")) {
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        r => return r,
                    }
                }
            }
        }
        if std::time::Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no /dev/virtio-ports/{name} and no virtio port named {name} under /sys/class/virtio-ports after {} s (virtio_console not loaded, or no -device virtserialport,name={name})",
                    wait.as_secs()
                ),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Connects to the stream socket of `unix:PATH`. Under `--root`, PATH is
/// resolved inside the root like every other path and must be a socket;
/// `connect()` then goes through the opened socket's `/proc/self/fd/N` link,
/// so what is connected to is what was checked (systemd's
/// `connect_unix_path()` does the same). An abstract `@NAME` is no path in
/// any tree and is used as is.
fn connect_report_socket(root: &Root, p: &Path) -> io::Result<OwnedFd> {
    if root.is_host() || p.as_os_str().as_encoded_bytes().starts_with(b"@") {
        return connect_unix(p, SocketType::STREAM);
    }
    let abs = p
        .to_str()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a UTF-8 path"))?;
    let fd = root.open_at(abs, rustix::fs::OFlags::PATH)?;
    let kind = vmcreds_common::file_kind::FileKind::from_mode(rustix::fs::fstat(&fd)?.st_mode);
    if kind != vmcreds_common::file_kind::FileKind::Socket {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is a {kind}, not a socket",
                vmcreds_os::show_path(&root.path(abs))
            ),
        ));
    }
    let via = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    connect_unix(Path::new(&via), SocketType::STREAM)
}

/// Writes all of `buf` to a connected stream socket, then shuts down writing.
fn write_fd(fd: &OwnedFd, buf: &[u8]) -> io::Result<()> {
    std::fs::File::from(fd.try_clone()?).write_all(buf)?;
    let _ = net::shutdown(fd, net::Shutdown::Write);
    Ok(())
}

fn unix_addr(p: &Path) -> io::Result<SocketAddrUnix> {
    let s = p.as_os_str().as_encoded_bytes();
    Ok(match s.strip_prefix(b"@") {
        Some(name) => SocketAddrUnix::new_abstract_name(name)?,
        None => SocketAddrUnix::new(p)?,
    })
}

/// Connects an AF_UNIX socket of `ty` to `p` (`@name` is abstract).
pub fn connect_unix(p: &Path, ty: SocketType) -> io::Result<OwnedFd> {
    let addr = unix_addr(p)?;
    let fd = net::socket_with(AddressFamily::UNIX, ty, net::SocketFlags::CLOEXEC, None)?;
    net::connect(&fd, &addr)?;
    Ok(fd)
}

/// Connects an AF_VSOCK socket of `ty`. Exercised in the nested runs
/// (cloud-hypervisor's hybrid vsock, crosvm's vhost-vsock): AF_VSOCK loopback
/// does not connect on the build machine.
pub fn connect_vsock(cid: u32, port: u32, ty: SocketType) -> io::Result<OwnedFd> {
    vmcreds_os::vsock::connect(cid, port, ty)
}

/// A `vmm.notify_socket` address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotifyAddr {
    /// `vsock:`, `vsock-stream:`, `vsock-dgram:`, `vsock-seqpacket:`; `None`
    /// type means try dgram, seqpacket, then stream (systemd's order).
    Vsock {
        /// Socket type, when forced.
        ty: Option<SocketType>,
        /// Context id.
        cid: u32,
        /// Port.
        port: u32,
    },
    /// A unix socket path (`/…` or `@abstract`).
    Unix(PathBuf),
}

/// Parses the `vmm.notify_socket` credential (systemd's `socket_address_parse`
/// subset used for notify sockets).
pub fn parse_notify(s: &str) -> Option<NotifyAddr> {
    let s = s.trim_end_matches(['\n', '\r', ' ']);
    for (prefix, ty) in [
        ("vsock-stream:", Some(SocketType::STREAM)),
        ("vsock-dgram:", Some(SocketType::DGRAM)),
        ("vsock-seqpacket:", Some(SocketType::SEQPACKET)),
        ("vsock:", None),
    ] {
        if let Some(rest) = s.strip_prefix(prefix) {
            let (cid, port) = parse_cid_port(rest)?;
            return Some(NotifyAddr::Vsock { ty, cid, port });
        }
    }
    if s.starts_with('/') || s.starts_with('@') {
        return Some(NotifyAddr::Unix(s.into()));
    }
    None
}

/// The notify message: `STATUS=vmcreds: <line>`, under 4096 bytes, one line.
pub fn notify_message(verdict_line: &str) -> Vec<u8> {
    let line: String = verdict_line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut msg = format!("STATUS=vmcreds: {line}");
    let max = vmcreds_common::limits::NOTIFY_MESSAGE_MAX - 1;
    if msg.len() > max {
        let mut cut = max - 3;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
        msg.push('…');
    }
    msg.into_bytes()
}

/// Sends one notify message: one connection (or datagram) per message.
pub fn notify(addr: &NotifyAddr, msg: &[u8]) -> io::Result<()> {
    match addr {
        NotifyAddr::Unix(p) => {
            // sd_notify uses datagrams; fall back to a stream socket.
            match connect_unix(p, SocketType::DGRAM) {
                Ok(fd) => net::send(&fd, msg, net::SendFlags::empty())
                    .map(|_| ())
                    .map_err(Into::into),
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PROTOTYPE.raw_os_error()) => {
                    write_fd(&connect_unix(p, SocketType::STREAM)?, msg)
                }
                Err(e) => Err(e),
            }
        }
        NotifyAddr::Vsock { ty, cid, port } => {
            let order: Vec<SocketType> = match ty {
                Some(t) => vec![*t],
                None => vec![SocketType::DGRAM, SocketType::SEQPACKET, SocketType::STREAM],
            };
            let mut last = io::Error::from(io::ErrorKind::Unsupported);
            for t in order {
                match connect_vsock(*cid, *port, t) {
                    Ok(fd) => {
                        return if t == SocketType::STREAM {
                            write_fd(&fd, msg)
                        } else {
                            net::send(fd.as_fd(), msg, net::SendFlags::empty())
                                .map(|_| ())
                                .map_err(Into::into)
                        }
                    }
                    Err(e) => {
                        let errno = e.raw_os_error();
                        let retry = [
                            rustix::io::Errno::NODEV,
                            rustix::io::Errno::OPNOTSUPP,
                            rustix::io::Errno::PROTONOSUPPORT,
                            rustix::io::Errno::SOCKTNOSUPPORT,
                            rustix::io::Errno::PROTOTYPE,
                        ]
                        .iter()
                        .any(|x| Some(x.raw_os_error()) == errno);
                        last = e;
                        if !retry {
                            break;
                        }
                    }
                }
            }
            Err(last)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn test_parse_destinations() {
        assert_eq!("stdout".parse(), Ok(Dest::Stdout));
        assert_eq!(
            "file:/tmp/r.json".parse(),
            Ok(Dest::File("/tmp/r.json".into()))
        );
        assert_eq!(
            "virtio-port:vmcreds".parse(),
            Ok(Dest::VirtioPort("vmcreds".into()))
        );
        assert_eq!(
            "vsock:2:9999".parse(),
            Ok(Dest::Vsock { cid: 2, port: 9999 })
        );
        assert_eq!(
            "unix:/run/x.sock".parse(),
            Ok(Dest::Unix("/run/x.sock".into()))
        );
        for bad in [
            "",
            "file:",
            "vsock:2",
            "vsock:x:1",
            "vsock:1:2:3",
            "tcp:1",
            "virtio-port:../x",
            "stdout:",
            "file:/tmp/r.json\nExecStartPre=/bin/evil",
            "unix:/run/x\u{7f}",
            "vsock:2:1\t",
        ] {
            assert!(bad.parse::<Dest>().is_err(), "{bad}");
        }
        assert_eq!(
            "vsock:4294967295:1".parse::<Dest>().unwrap().to_string(),
            "vsock:4294967295:1"
        );
    }

    #[test]
    fn test_parse_notify() {
        assert_eq!(
            parse_notify("vsock-stream:2:8888\n"),
            Some(NotifyAddr::Vsock {
                ty: Some(SocketType::STREAM),
                cid: 2,
                port: 8888
            })
        );
        assert_eq!(
            parse_notify("vsock:2:1"),
            Some(NotifyAddr::Vsock {
                ty: None,
                cid: 2,
                port: 1
            })
        );
        assert!(matches!(
            parse_notify("vsock-dgram:3:1"),
            Some(NotifyAddr::Vsock {
                ty: Some(SocketType::DGRAM),
                ..
            })
        ));
        assert!(matches!(
            parse_notify("vsock-seqpacket:3:1"),
            Some(NotifyAddr::Vsock {
                ty: Some(SocketType::SEQPACKET),
                ..
            })
        ));
        assert_eq!(
            parse_notify("/run/n.sock"),
            Some(NotifyAddr::Unix("/run/n.sock".into()))
        );
        assert_eq!(parse_notify("@abs"), Some(NotifyAddr::Unix("@abs".into())));
        assert_eq!(parse_notify("vsock:2"), None);
        assert_eq!(parse_notify("tcp:1"), None);
    }

    #[test]
    fn test_notify_message_bounds() {
        let m = notify_message("verified (1/1)\nINJECT=1");
        assert_eq!(m, b"STATUS=vmcreds: verified (1/1) INJECT=1");
        let long = "é".repeat(5000);
        let m = notify_message(&long);
        assert!(m.len() < vmcreds_common::limits::NOTIFY_MESSAGE_MAX);
        assert!(std::str::from_utf8(&m).is_ok());
    }

    #[test]
    fn test_unix_stream_and_dgram_notify() {
        let d = tempfile::tempdir().unwrap();
        let sp = d.path().join("s.sock");
        let l = std::os::unix::net::UnixListener::bind(&sp).unwrap();
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut v = Vec::new();
            c.read_to_end(&mut v).unwrap();
            v
        });
        notify(&NotifyAddr::Unix(sp.clone()), b"STATUS=vmcreds: x").unwrap();
        assert_eq!(t.join().unwrap(), b"STATUS=vmcreds: x");
        let dp = d.path().join("d.sock");
        let ds = std::os::unix::net::UnixDatagram::bind(&dp).unwrap();
        notify(&NotifyAddr::Unix(dp), b"STATUS=vmcreds: y").unwrap();
        let mut buf = [0u8; 64];
        let n = ds.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=vmcreds: y");
    }

    /// A character device node (major 1, minor 3: writes are discarded) at
    /// `rel` under `dir`. Needs root.
    fn char_device(dir: &Path, rel: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o600),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
    }

    fn port_tree() -> Option<tempfile::TempDir> {
        if !vmcreds_os::require::root_or_skip("character device nodes need mknod") {
            return None;
        }
        let d = tempfile::tempdir().unwrap();
        for (port, name) in [
            ("vport1p1", "org.qemu.guest_agent.0"),
            ("vport1p2", "vmcreds.report"),
        ] {
            let sys = d.path().join(format!("sys/class/virtio-ports/{port}"));
            std::fs::create_dir_all(&sys).unwrap();
            std::fs::write(sys.join("name"), format!("{name}\n")).unwrap();
        }
        Some(d)
    }

    #[test]
    fn test_virtio_port_by_sysfs_name() {
        let Some(d) = port_tree() else { return };
        // The other port is a plain file: writing there would fail loudly.
        std::fs::create_dir_all(d.path().join("dev")).unwrap();
        std::fs::write(d.path().join("dev/vport1p1"), b"").unwrap();
        char_device(d.path(), "dev/vport1p2");
        let root = Root::open(d.path()).unwrap();
        send(&Dest::VirtioPort("vmcreds.report".into()), &root, b"{}\n").unwrap();
        assert!(std::fs::read(d.path().join("dev/vport1p1"))
            .unwrap()
            .is_empty());
        let t = std::time::Instant::now();
        let e =
            open_virtio_port(&root, "missing", std::time::Duration::from_millis(300)).unwrap_err();
        assert!(t.elapsed() >= std::time::Duration::from_millis(300));
        assert!(e.to_string().contains("virtio_console"), "{e}");
    }

    /// Issue 13 §2: `--root DIR --report-to virtio-port:NAME` wrote through a
    /// link planted at `DIR/dev/virtio-ports/NAME` into a file outside DIR.
    #[test]
    fn test_issue13_2_virtio_port_link_out_of_the_root_is_not_followed() {
        let Some(d) = port_tree() else { return };
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"a longer file that must stay as it is").unwrap();
        std::fs::create_dir_all(d.path().join("dev/virtio-ports")).unwrap();
        std::os::unix::fs::symlink(&victim, d.path().join("dev/virtio-ports/vmcreds.report"))
            .unwrap();
        let root = Root::open(d.path()).unwrap();
        let e = send(&Dest::VirtioPort("vmcreds.report".into()), &root, b"{}\n").unwrap_err();
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            b"a longer file that must stay as it is"
        );
        // A plain file in the tree is refused too: only a device is a port.
        std::fs::remove_file(d.path().join("dev/virtio-ports/vmcreds.report")).unwrap();
        std::fs::write(d.path().join("dev/virtio-ports/vmcreds.report"), b"old").unwrap();
        let e2 = send(&Dest::VirtioPort("vmcreds.report".into()), &root, b"{}\n").unwrap_err();
        assert!(format!("{:#}", anyhow::Error::new(e2)).contains("not a virtio port"));
        assert_eq!(
            std::fs::read(d.path().join("dev/virtio-ports/vmcreds.report")).unwrap(),
            b"old"
        );
        drop(e);
    }

    proptest::proptest! {
        #[test]
        fn fuzz_addresses_never_panic(s in "\\PC{0,60}") {
            let _ = s.parse::<Dest>();
            let _ = parse_notify(&s);
            proptest::prop_assert!(notify_message(&s).len() < vmcreds_common::limits::NOTIFY_MESSAGE_MAX);
        }
    }
}
