//! What the guest can see of the boot chain's import, for
//! `vmcreds_common::check::boot` (which decides): PID 1's lines in the
//! kernel log, `$CREDENTIALS_DIRECTORY` in PID 1's environment, whether
//! `/run/credentials/@system` is a mount point, and whether
//! `/run/credentials/@initrd` was left behind.
//!
//! The kernel log is read from `/dev/kmsg`, not from the journal: PID 1 logs
//! its import (in the initrd and again after switch-root) to the kernel log
//! because journald is not running yet, the record format is a stable kernel
//! interface (`Documentation/ABI/testing/dev-kmsg`) that a static binary
//! reads without a journal-file parser or `journalctl`, and at boot, when the
//! check runs, the ring buffer still holds the boot's first records (each
//! record's sequence number says whether it does). journald copies the same
//! lines into the journal (`journalctl -k`). Reading it needs `CAP_SYSLOG`
//! when `kernel.dmesg_restrict=1` (Debian's default); without it the
//! evidence is "not read" and the check says `unknown`, never a guess.

use std::io;

use rustix::fs::OFlags;
use vmcreds_common::check::boot::{kmsg_records, BootEvidence, KernelLog};

use crate::sysfs::Root;

/// The kernel log device.
pub const KMSG: &str = "/dev/kmsg";

/// Most bytes of kernel log kept (a 256 KiB ring buffer is Debian's default;
/// records add their headers).
pub const KMSG_MAX: usize = 4 << 20;

/// The credentials directory systemd mounts.
pub const SYSTEM_DIR: &str = "/run/credentials/@system";

/// The directory an initrd leaves for PID 1 to merge after switch-root.
pub const INITRD_DIR: &str = "/run/credentials/@initrd";

/// Reads the kernel log: from the device, one record per `read()` until
/// `EAGAIN` (records overwritten while reading, `EPIPE`, are skipped); from a
/// captured file under `--root`, to EOF. At most [`KMSG_MAX`] bytes.
pub fn read_kmsg(root: &Root) -> Result<Vec<u8>, String> {
    // The path as the guest sees it (not the --root tree's), so reports on
    // fixtures are the same from run to run.
    let shown = || KMSG.to_owned();
    let fd = root
        .open_at(KMSG, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => format!("no {KMSG}"),
            _ => format!("{}: {e}", shown()),
        })?;
    let mut out = Vec::new();
    // A record is at most about 1 KiB of text plus its dictionary.
    let mut buf = vec![0u8; 16 * 1024];
    let mut empty_reads = 0;
    while out.len() < KMSG_MAX {
        match rustix::io::read(&fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n.min(KMSG_MAX - out.len())]);
                if out.last() != Some(&b'\n') {
                    out.push(b'\n');
                }
            }
            Err(e) if e == rustix::io::Errno::PIPE => {
                // The record at our position was overwritten: go on.
                empty_reads += 1;
                if empty_reads > 1000 {
                    break;
                }
            }
            Err(e) if e == rustix::io::Errno::INTR => {}
            Err(e) if e == rustix::io::Errno::AGAIN => break,
            Err(e) => {
                if out.is_empty() {
                    return Err(format!("{}: {}", shown(), io::Error::from(e)));
                }
                break;
            }
        }
    }
    Ok(out)
}

/// `$CREDENTIALS_DIRECTORY` in PID 1's environment (`environ` as read from
/// `/proc/1/environ`), escaped; `None` when it is not set.
pub fn credentials_directory(environ: &[u8]) -> Option<String> {
    environ
        .split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(b"CREDENTIALS_DIRECTORY="))
        .map(|v| vmcreds_common::escape::escape_bytes(v, 256))
}

/// Gathers the evidence. `pid1_environ` is `/proc/1/environ` as the
/// preconditions read it (`None`: not readable). Nothing here fails the
/// check: what cannot be read is evidence not had.
pub fn read(root: &Root, pid1_environ: Option<&[u8]>) -> BootEvidence {
    let kernel_log = match read_kmsg(root) {
        Ok(bytes) => KernelLog::from_records(&kmsg_records(&bytes)),
        Err(why) => KernelLog::Unread(why),
    };
    let system_dir_mounted = match root.read_text("/proc/self/mountinfo") {
        Ok(Some(info)) if !info.is_empty() => Some(
            crate::creds_dir::parse_mountinfo(&info)
                .iter()
                .any(|m| m.point == SYSTEM_DIR),
        ),
        _ => None,
    };
    let ev = BootEvidence {
        kernel_log,
        pid1_credentials_directory: pid1_environ.map(credentials_directory),
        system_dir_mounted,
        initrd_dir_left: root.exists(INITRD_DIR),
    };
    match &ev.kernel_log {
        KernelLog::Read { runs, from_boot } => tracing::info!(
            pid1_runs = runs.len(),
            initrd = runs.iter().any(|r| r.in_initrd),
            from_boot,
            "kernel log read"
        ),
        KernelLog::Unread(why) => tracing::info!(why = %why, "kernel log not read"),
    }
    ev
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmcreds_common::check::boot::KernelLog;

    fn tree(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (p, b) in files {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b).unwrap();
        }
        d
    }

    #[test]
    fn test_evidence_from_a_tree() {
        let d = tree(&[
            (
                "dev/kmsg",
                b"6,0,1,-;Linux version 6.1\n6,1,2,-;systemd[1]: systemd 257.13-1 running in system mode (+PAM)\n SUBSYSTEM=x\n6,2,3,-;systemd[1]: Running in initrd.\n6,3,4,-;systemd[1]: Acquired 2 regular credentials, 0 untrusted credentials.\n",
            ),
            (
                "proc/self/mountinfo",
                b"27 1 253:1 / / rw - ext4 /dev/vda rw\n",
            ),
            ("run/credentials/@initrd/X", b"x"),
        ]);
        let root = Root::open(d.path()).unwrap();
        let ev = read(
            &root,
            Some(b"HOME=/\0CREDENTIALS_DIRECTORY=/run/credentials/@system\0"),
        );
        let KernelLog::Read { runs, from_boot } = &ev.kernel_log else {
            panic!("{:?}", ev.kernel_log)
        };
        assert!(from_boot);
        assert_eq!(runs.len(), 1);
        assert!(runs[0].in_initrd);
        assert_eq!(runs[0].acquired, Some((2, 0)));
        assert_eq!(ev.system_dir_mounted, Some(false));
        assert!(ev.initrd_dir_left);
        assert_eq!(
            ev.pid1_credentials_directory,
            Some(Some("/run/credentials/@system".into()))
        );
    }

    #[test]
    fn test_nothing_to_read() {
        let d = tree(&[]);
        let root = Root::open(d.path()).unwrap();
        let ev = read(&root, None);
        assert!(
            matches!(&ev.kernel_log, KernelLog::Unread(w) if w == "no /dev/kmsg"),
            "{:?}",
            ev.kernel_log
        );
        assert_eq!(ev.system_dir_mounted, None);
        assert_eq!(ev.pid1_credentials_directory, None);
        assert!(!ev.initrd_dir_left);
        assert_eq!(credentials_directory(b"A=1\0B=2"), None);
    }

    #[test]
    fn test_the_real_device_when_readable() {
        // On this machine: either a read log whose first record is the
        // boot's, or a reason (not root, dmesg_restrict).
        match read_kmsg(&Root::host()) {
            Ok(b) => {
                let r = kmsg_records(&b);
                assert!(!r.is_empty(), "a readable /dev/kmsg has records");
            }
            Err(why) => assert!(
                why == "no /dev/kmsg" || why.starts_with("/dev/kmsg: "),
                "{why}"
            ),
        }
    }
}
