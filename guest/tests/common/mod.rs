//! Fixture trees for `--root`, a command builder, and the canary check.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;

/// The built binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vmcreds-guest")
}

/// A Type 1 structure naming the hypervisor.
pub fn type1(vendor: &[u8], product: &[u8]) -> Vec<u8> {
    let mut s = vec![1, 27, 0x00, 0x01, 1, 2, 0, 0];
    s.resize(27, 0);
    s.extend_from_slice(vendor);
    s.push(0);
    s.extend_from_slice(product);
    s.extend_from_slice(&[0, 0]);
    s
}

/// A 64-bit entry point for a table of at most `len` bytes.
pub fn ep64(len: u32) -> Vec<u8> {
    let mut e = vec![0u8; 24];
    e[..5].copy_from_slice(b"_SM3_");
    e[6] = 24;
    e[7] = 3;
    e[10] = 1;
    e[12..16].copy_from_slice(&len.to_le_bytes());
    let s: u8 = e.iter().fold(0u8, |a, &x| a.wrapping_add(x));
    e[5] = 0u8.wrapping_sub(s);
    e
}

/// A captured guest tree.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// A systemd 257 VM with dmi-sysfs, an empty `@system` on a noswap
    /// tmpfs, and no Type 11 entries yet.
    pub fn new() -> Self {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        f.write(
            "proc/cmdline",
            b"BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro console=ttyS0\n",
        );
        f.write(
            "proc/cpuinfo",
            b"processor\t: 0\nflags\t\t: fpu vme de pse hypervisor\n\n",
        );
        f.write("proc/1/environ", b"HOME=/\0TERM=linux\0");
        f.write(
            "proc/self/mountinfo",
            b"27 1 253:1 / / rw,relatime - ext4 /dev/vda1 rw\n\
              40 27 0:40 / /run/credentials/@system ro,nosuid,nodev,noexec,relatime,nosymfollow - tmpfs none rw,size=1024k,nr_inodes=1024,mode=700,noswap\n",
        );
        f.write(
            "usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-257.so",
            b"",
        );
        f.mkdir("sys/firmware/dmi/entries");
        f.mkdir("run/credentials/@system");
        f
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A path under the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file under the root (creating directories).
    pub fn write(&self, rel: &str, bytes: &[u8]) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    /// Creates a directory under the root.
    pub fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.path(rel)).unwrap();
    }

    /// Removes a file or directory tree under the root.
    pub fn remove(&self, rel: &str) {
        let p = self.path(rel);
        if p.is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        } else {
            std::fs::remove_file(p).unwrap();
        }
    }

    /// Sets `11-N/raw`.
    pub fn entry(&self, n: u32, raw: &[u8]) {
        self.write(&format!("sys/firmware/dmi/entries/11-{n}/raw"), raw);
    }

    /// One Type 11 entry holding `strings`, and a matching whole table.
    pub fn smbios(&self, strings: &[&[u8]]) -> Vec<u8> {
        let raw = vmcreds_common::type11::build(0x0b00, strings);
        self.entry(0, &raw);
        self.table(&[&raw]);
        raw
    }

    /// The whole table (QEMU Type 1, the given Type 11 structures, Type 127)
    /// and a 64-bit entry point.
    pub fn table(&self, type11: &[&[u8]]) {
        let mut t = type1(b"QEMU", b"Standard PC (Q35 + ICH9, 2009)");
        for s in type11 {
            t.extend_from_slice(s);
        }
        t.extend_from_slice(&[127, 4, 0xff, 0xff, 0, 0]);
        self.write("sys/firmware/dmi/tables/DMI", &t);
        self.write(
            "sys/firmware/dmi/tables/smbios_entry_point",
            &ep64(t.len() as u32),
        );
    }

    /// A credential as systemd imported it (0400).
    pub fn imported(&self, name: &str, value: &[u8]) {
        self.imported_mode(name, value, 0o400);
    }

    /// A credential as imported, with a mode.
    pub fn imported_mode(&self, name: &str, value: &[u8], mode: u32) {
        let p = self.path(&format!("run/credentials/@system/{name}"));
        std::fs::write(&p, value).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A QEMU fw_cfg credential.
    pub fn fw_cfg(&self, name: &str, value: &[u8]) {
        let base = format!("sys/firmware/qemu_fw_cfg/by_name/opt/io.systemd.credentials/{name}");
        self.write(&format!("{base}/raw"), value);
        self.write(
            &format!("{base}/size"),
            format!("{}\n", value.len()).as_bytes(),
        );
    }

    /// `vmcreds-guest SUBCOMMAND --root ROOT ARGS…`.
    pub fn cmd(&self, sub: &str, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg(sub).arg("--root").arg(self.root()).args(args);
        c.env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("NOTIFY_SOCKET");
        c
    }

    /// Runs a subcommand and returns its output.
    pub fn run(&self, sub: &str, args: &[&str]) -> Output {
        self.cmd(sub, args).output().unwrap()
    }

    /// `check --json`: exit code and the parsed report.
    pub fn check_json(&self, args: &[&str]) -> (i32, vmcreds_common::report::Report, Output) {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.run("check", &a);
        let code = out.status.code().expect("exited, not killed");
        assert_ne!(
            code,
            101,
            "panicked: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = vmcreds_common::report::Report::from_json(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not a report ({e}); stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, r, out)
    }
}

/// The forms of a canary that must never appear: raw, base64 (both
/// alphabets, and the unpadded core), lowercase and uppercase hex.
pub fn canary_forms(value: &[u8]) -> Vec<Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(value);
    let url = base64::engine::general_purpose::URL_SAFE.encode(value);
    let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        value.to_vec(),
        b64.trim_end_matches('=').as_bytes().to_vec(),
        url.trim_end_matches('=').as_bytes().to_vec(),
        hex.as_bytes().to_vec(),
        hex.to_uppercase().into_bytes(),
    ]
}

/// Asserts no canary form occurs in `hay`; a failure names the stream and
/// offset, never the bytes.
pub fn assert_no_canary(stream: &str, hay: &[u8], canaries: &[&[u8]]) {
    for (i, c) in canaries.iter().enumerate() {
        for (j, form) in canary_forms(c).iter().enumerate() {
            if form.len() < 6 {
                continue;
            }
            if let Some(off) = hay.windows(form.len()).position(|w| w == form.as_slice()) {
                panic!("canary {i} (form {j}) leaked into {stream} at offset {off}");
            }
        }
    }
}

/// Asserts no canary in an output's stdout and stderr.
pub fn assert_output_clean(what: &str, out: &Output, canaries: &[&[u8]]) {
    assert_no_canary(&format!("{what} stdout"), &out.stdout, canaries);
    assert_no_canary(&format!("{what} stderr"), &out.stderr, canaries);
}

/// Skip with a reason, or fail when `VMCREDS_REQUIRE` names the missing
/// precondition: the one rule of both binaries' tests.
#[allow(unused_imports)] // each test binary uses its own share
pub use vmcreds_os::require::{have_or_skip, root_or_skip};

/// A character device node (major 1, minor 3: writes are discarded) at
/// `rel` under the fixture, standing in for a virtio-serial port whose
/// contents the real-VM tier checks. Needs root (mknod).
pub fn null_port(f: &Fixture, rel: &str) {
    let p = f.path(rel);
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
