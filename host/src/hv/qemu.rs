//! QEMU: each OEM string reaches QEMU as `-smbios type=11,path=FILE`, where FILE
//! is `/dev/fd/N` of a sealed memfd inherited across exec, or a 0400 file in a
//! private 0700 directory. Never `value=`: the value would be on argv.

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use rustix::fs::{MemfdFlags, SealFlags};
use thiserror::Error;
use vmcreds_common::limits::SMBIOS21_TABLE_MAX;

use super::qemu_version::{PathOption, QemuVersion};
use super::Budget;
use crate::exit::{Classify, Exit};
use crate::plan::Plan;
use crate::private_dir::PrivateDir;

/// Bytes QEMU's other structures take in a pc/q35 table, reserved from the
/// 64 KiB window. Types 0, 1, 3, 4 (per vCPU), 16, 17 (per DIMM), 19, 32 and
/// 127 measured about 1.2 KiB on a 1-vCPU q35 guest; 8 KiB covers large guests.
pub const OTHER_STRUCTURES_RESERVE: usize = 8 * 1024;

/// QEMU pc/q35 with a 32-bit entry point (machine types ≤ 8.0, or `auto`
/// falling back): the whole table ≤ 65 535 bytes.
pub const BUDGET_32: Budget = Budget {
    target: "qemu",
    smbios: true,
    max_type11_bytes: Some(SMBIOS21_TABLE_MAX - OTHER_STRUCTURES_RESERVE),
    rule: "a 32-bit SMBIOS entry point limits all tables to 65535 bytes (8 KiB kept for QEMU's other structures); smbios-entry-point-type=64 does not lift it with SeaBIOS",
};

/// QEMU with `smbios-entry-point-type=64`. The 64-bit entry point does not
/// lift the 64 KiB window with SeaBIOS: measured on Debian's QEMU 7.2
/// (q35, direct kernel boot), comparing the guest's raw entry byte for
/// byte, a 64 708-byte structure arrived whole and a 65 376-byte one
/// arrived as 45 bytes. (OVMF not measured.)
pub const BUDGET_64: Budget = Budget {
    target: "qemu",
    smbios: true,
    max_type11_bytes: Some(SMBIOS21_TABLE_MAX - OTHER_STRUCTURES_RESERVE),
    rule: "QEMU with SeaBIOS cuts the SMBIOS tables at 64 KiB even with smbios-entry-point-type=64 (measured on QEMU 7.2: the guest's entry arrives silently cut); 8 KiB kept for QEMU's other structures",
};

/// Why a QEMU command line is refused (exit 2).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum QemuError {
    /// `-M microvm`: QEMU builds no SMBIOS there.
    #[error("the QEMU command uses machine type microvm ({arg}): use -M q35 or pc; microvm has no SMBIOS, so the credentials would silently never arrive; or use fw_cfg (-fw_cfg name=opt/io.systemd.credentials/NAME,file=PATH)")]
    Microvm {
        /// The machine option as given.
        arg: String,
    },
    /// `-M` at the end of the command.
    #[error("the QEMU command ends with {0} and no machine value")]
    MachineWithoutValue(String),
    /// A QEMU before 5.2, which has no `-smbios type=11,path=`.
    #[error("{from} says QEMU {version}, which has no -smbios type=11,path= (it came with QEMU 5.2); vmcreds-host delivers only through path= so that no value is on argv: upgrade QEMU")]
    PathMissing {
        /// The release.
        version: QemuVersion,
        /// Where the version came from (`PROGRAM --version`, `--qemu-version`).
        from: String,
    },
    /// A QEMU release known to lack the `path=` overrun fix.
    #[error("{from} says QEMU {version}, {why}: QEMU reads a path= file without its terminating NUL and can append garbage to a credential or crash (fixed by a7a05f5f6a40 in 10.0.0, 9.2.4 and 7.2.18); upgrade QEMU, or pass --allow-unfixed-qemu if your distribution backported the fix")]
    PathUnfixed {
        /// The release.
        version: QemuVersion,
        /// Where the version came from.
        from: String,
        /// Known-unfixed, or a development snapshot.
        why: &'static str,
    },
    /// Memfd paths printed without a command would point at this process's fds.
    #[error("without -- COMMAND, memfd paths (/dev/fd/N of this process) would be meaningless to print; pass -- qemu-system-x86_64 ARGS... to exec QEMU, or --runtime-dir DIR to print paths of files that are kept")]
    PrintMemfd,
}

/// What vmcreds-host learned from a QEMU command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Qemu {
    /// The budget: [`BUDGET_64`] with `smbios-entry-point-type=64` (with
    /// SeaBIOS the same 64 KiB window, measured), else [`BUDGET_32`]
    /// (machine types ≤ 8.0, and `auto` falling back).
    pub budget: Budget,
}

impl Classify<Exit> for QemuError {
    fn exit(&self) -> Exit {
        Exit::Refused
    }
}

/// Refuses a release that cannot carry `path=` intact, unless `allow_unfixed`
/// (then a release before 5.2 is still refused: it has no `path=`).
pub fn check_release(
    version: QemuVersion,
    from: &str,
    allow_unfixed: bool,
) -> Result<PathOption, QemuError> {
    let from = from.to_owned();
    match version.path_option() {
        PathOption::Missing => Err(QemuError::PathMissing { version, from }),
        PathOption::Fixed => Ok(PathOption::Fixed),
        other if allow_unfixed => Ok(other),
        PathOption::Overruns => Err(QemuError::PathUnfixed {
            version,
            from,
            why: "a release without the path= buffer-overrun fix",
        }),
        PathOption::Unknown => Err(QemuError::PathUnfixed {
            version,
            from,
            why: "a 10.0 development snapshot that may predate the path= buffer-overrun fix",
        }),
    }
}

/// `PROGRAM --version`, resolved through `PATH` as exec will resolve it.
pub fn ask_version(program: &Path) -> io::Result<Vec<u8>> {
    super::ask(program, &["--version"])
}

/// True when `program` (COMMAND's first word) names a QEMU system emulator
/// that answers `--version`, rather than a wrapper that might not.
pub fn is_qemu_program(program: &std::ffi::OsStr) -> bool {
    let name = Path::new(program)
        .file_name()
        .map(|n| n.as_bytes())
        .unwrap_or_default();
    name.starts_with(b"qemu-system-") || name == b"qemu-kvm" || name == b"kvm"
}

/// Splits a QemuOpts string on single commas (`,,` is a literal comma).
fn split_opts(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                out.last_mut().expect("non-empty").push(',');
            } else {
                out.push(String::new());
            }
        } else {
            out.last_mut().expect("non-empty").push(c);
        }
    }
    out
}

impl Qemu {
    /// Inspects the QEMU command (program and arguments): refuses `microvm`
    /// and picks the budget from `smbios-entry-point-type`.
    pub fn inspect(command: &[OsString]) -> Result<Qemu, QemuError> {
        let mut entry64 = false;
        let mut args = command.iter().skip(1);
        while let Some(arg) = args.next() {
            let a = arg.to_string_lossy();
            if !matches!(a.as_ref(), "-M" | "--M" | "-machine" | "--machine") {
                continue;
            }
            let Some(value) = args.next() else {
                return Err(QemuError::MachineWithoutValue(a.into_owned()));
            };
            let value = value.to_string_lossy();
            for (i, opt) in split_opts(&value).iter().enumerate() {
                let (k, v) = match opt.split_once('=') {
                    Some((k, v)) => (k, v),
                    None if i == 0 => ("type", opt.as_str()),
                    None => continue,
                };
                match k {
                    "type" if v == "microvm" => {
                        return Err(QemuError::Microvm {
                            arg: format!(
                                "{a} {}",
                                vmcreds_common::escape::escape_bytes(value.as_bytes(), 200)
                            ),
                        })
                    }
                    "smbios-entry-point-type" => entry64 = v == "64",
                    _ => {}
                }
            }
        }
        Ok(Qemu {
            budget: if entry64 { BUDGET_64 } else { BUDGET_32 },
        })
    }
}

/// `type=11,path=PATH` with commas in PATH doubled (QemuOpts escaping).
pub fn smbios_value(path: &Path) -> OsString {
    let mut v = b"type=11,path=".to_vec();
    for &b in path.as_os_str().as_bytes() {
        v.push(b);
        if b == b',' {
            v.push(b',');
        }
    }
    OsString::from_vec(v)
}

/// The delivered strings: the arguments to append, and what keeps them alive.
#[derive(Debug)]
pub struct Delivery {
    /// `-smbios`, `type=11,path=...` pairs.
    pub args: Vec<OsString>,
    /// The memfds (inherited by exec; not close-on-exec).
    pub memfds: Vec<OwnedFd>,
    /// The private directory, in file mode.
    pub dir: Option<PrivateDir>,
}

/// Writes each string into its own sealed memfd (`MFD_ALLOW_SEALING`, without
/// `MFD_CLOEXEC` so it survives exec; sealed against write, grow, shrink and
/// further sealing) and returns `/dev/fd/N` arguments.
pub fn deliver_memfd(plan: &Plan) -> io::Result<Delivery> {
    let mut d = Delivery {
        args: Vec::new(),
        memfds: Vec::new(),
        dir: None,
    };
    for (i, s) in plan.strings.iter().enumerate() {
        let fd = rustix::fs::memfd_create(format!("vmcreds-{i}"), MemfdFlags::ALLOW_SEALING)?;
        let mut file = std::fs::File::from(fd);
        file.write_all(s.bytes.expose())?;
        rustix::fs::fcntl_add_seals(
            &file,
            SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
        )?;
        let fd = OwnedFd::from(file);
        let path = format!("/dev/fd/{}", fd.as_raw_fd());
        tracing::debug!(
            string = i,
            fd = fd.as_raw_fd(),
            bytes = s.bytes.len(),
            "sealed memfd"
        );
        d.args.push("-smbios".into());
        d.args.push(smbios_value(Path::new(&path)));
        d.memfds.push(fd);
    }
    Ok(d)
}

/// Writes each string as a 0400 file in a fresh 0700 directory under `parent`.
/// On error, everything written so far is removed (the directory's `Drop`).
pub fn deliver_files(plan: &Plan, parent: &Path) -> io::Result<Delivery> {
    let mut dir = PrivateDir::create(parent)?;
    let mut args = Vec::new();
    for (i, s) in plan.strings.iter().enumerate() {
        let path = dir.write_file(&format!("oem-{i:03}"), s.bytes.expose())?;
        tracing::debug!(string = i, path = %crate::show_path(&path), bytes = s.bytes.len(), "0400 file");
        args.push(OsString::from("-smbios"));
        args.push(smbios_value(&path));
    }
    Ok(Delivery {
        args,
        memfds: Vec::new(),
        dir: Some(dir),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlanOptions;
    use crate::source::{Loaded, Origin};
    use std::os::unix::fs::MetadataExt;
    use vmcreds_common::oem::Encoding;
    use vmcreds_common::{NameRule, Secret};

    fn cmd(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn test_inspect_machine() {
        for bad in [
            &["qemu", "-M", "microvm"][..],
            &["qemu", "-machine", "microvm,x-option-roms=off"],
            &["qemu", "--machine", "type=microvm"],
        ] {
            let e = Qemu::inspect(&cmd(bad)).unwrap_err();
            assert!(e.to_string().contains("use -M q35 or pc"), "{e}");
        }
        assert_eq!(
            Qemu::inspect(&cmd(&["qemu", "-M", "q35"])).unwrap().budget,
            BUDGET_32
        );
        assert_eq!(
            Qemu::inspect(&cmd(&[
                "qemu",
                "-machine",
                "q35,smbios-entry-point-type=64"
            ]))
            .unwrap()
            .budget,
            BUDGET_64
        );
        assert_eq!(
            Qemu::inspect(&cmd(&["qemu", "-M", "pc,smbios-entry-point-type=32"]))
                .unwrap()
                .budget,
            BUDGET_32
        );
        assert!(matches!(
            Qemu::inspect(&cmd(&["qemu", "-M"])),
            Err(QemuError::MachineWithoutValue(_))
        ));
        // "microvm" as a value of another option is not a machine type.
        assert!(Qemu::inspect(&cmd(&["qemu", "-name", "microvm"])).is_ok());
    }

    #[test]
    fn test_commas_doubled() {
        assert_eq!(
            smbios_value(Path::new("/run/a,b/x")),
            OsString::from("type=11,path=/run/a,,b/x")
        );
        assert_eq!(
            split_opts("q35,,x,a=b"),
            vec!["q35,x".to_string(), "a=b".to_string()]
        );
    }

    fn plan() -> Plan {
        Plan::build(
            vec![Loaded::Credential {
                name: "K".into(),
                origin: Origin::Set { name: "K".into() },
                value: Secret::new(b"CANARY".to_vec()),
            }],
            PlanOptions {
                rule: NameRule::Portable,
                encoding: Encoding::Binary,
                manifest: true,
                budget: BUDGET_32,
            },
        )
        .unwrap()
    }

    #[test]
    fn test_memfd_sealed_and_inheritable() {
        let p = plan();
        let d = deliver_memfd(&p).unwrap();
        assert_eq!(d.args.len(), 4);
        for (fd, s) in d.memfds.iter().zip(&p.strings) {
            let seals = rustix::fs::fcntl_get_seals(fd).unwrap();
            assert!(seals.contains(
                SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE
            ));
            let flags = rustix::io::fcntl_getfd(fd).unwrap();
            assert!(!flags.contains(rustix::io::FdFlags::CLOEXEC));
            let path = format!("/dev/fd/{}", fd.as_raw_fd());
            assert_eq!(std::fs::read(&path).unwrap(), s.bytes.expose());
            let mut w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            assert!(w.write_all(b"x").is_err(), "sealed against writes");
        }
        assert!(d
            .args
            .chunks(2)
            .all(|p| p[0] == "-smbios"
                && p[1].to_str().unwrap().starts_with("type=11,path=/dev/fd/")));
    }

    #[test]
    fn test_files_private_and_removed() {
        let parent = tempfile::tempdir().unwrap();
        let p = plan();
        let d = deliver_files(&p, parent.path()).unwrap();
        let dir = d.dir.as_ref().unwrap().path().to_owned();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        let path = d.args[1]
            .to_str()
            .unwrap()
            .strip_prefix("type=11,path=")
            .unwrap()
            .to_owned();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o400);
        assert_eq!(std::fs::read(&path).unwrap(), p.strings[0].bytes.expose());
        drop(d);
        assert!(!dir.exists());
    }
}
