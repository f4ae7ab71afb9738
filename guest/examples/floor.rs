//! The floor of `vmcreds-guest check` on a captured tree, for `cargo xtask
//! bench`: a program that makes only the system calls a check cannot do
//! without, and nothing else. It reads the Type 11 entry the way a check
//! does (`11-0/raw`, resolved in the tree), lists the tree's
//! `/run/credentials/@system` with one `getdents`, and reads each file with
//! `openat`, `fstat`, one sized `read` and `close`: no parsing, no digest,
//! no report. Its run time is what the kernel and process start cost the
//! check before it does any work of its own.
//!
//! `floor TREE`: exits 0 when it read at least one file.

use std::os::fd::AsFd;

use rustix::fs::{Mode, OFlags, ResolveFlags};

fn main() -> std::process::ExitCode {
    let Some(tree) = std::env::args_os().nth(1) else {
        eprintln!("usage: floor TREE");
        return std::process::ExitCode::from(2);
    };
    let Ok(root) = rustix::fs::open(
        tree.as_os_str(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return std::process::ExitCode::from(2);
    };
    let mut buf = vec![0u8; 64 * 1024];
    let in_root = |path: &str, flags: OFlags| {
        rustix::fs::openat2(
            &root,
            path,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    };
    if let Ok(fd) = in_root(
        "sys/firmware/dmi/entries/11-0/raw",
        OFlags::RDONLY | OFlags::NONBLOCK,
    ) {
        while matches!(rustix::io::read(&fd, &mut buf), Ok(n) if n > 0) {}
    }
    let Ok(dir) = in_root(
        "run/credentials/@system",
        OFlags::RDONLY | OFlags::DIRECTORY,
    ) else {
        return std::process::ExitCode::from(2);
    };
    let mut dents = Vec::with_capacity(32 * 1024);
    let mut entries = rustix::fs::RawDir::new(dir.as_fd(), dents.spare_capacity_mut());
    let mut read = 0usize;
    while let Some(Ok(ent)) = entries.next() {
        let name = ent.file_name();
        if matches!(name.to_bytes(), b"." | b"..") {
            continue;
        }
        let Ok(fd) = rustix::fs::openat(
            &dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        let Ok(st) = rustix::fs::fstat(&fd) else {
            continue;
        };
        let want = (st.st_size.max(0) as usize + 1).min(buf.len());
        if let Ok(n) = rustix::io::read(&fd, &mut buf[..want]) {
            read += usize::from(n > 0);
        }
    }
    if read > 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
