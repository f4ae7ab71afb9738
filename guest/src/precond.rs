//! The conditions under which systemd imports at all, checked the way systemd
//! checks them (silently), and the other credential sources it reads: QEMU
//! fw_cfg (before SMBIOS) and the kernel command line (after SMBIOS, names
//! only: values on `/proc/cmdline` are never kept or printed).

use std::path::Path;

use vmcreds_common::check::{confidential, CpuidView, CvmFinding, FwCfgCredential};
use vmcreds_common::escape::escape_bytes;
use vmcreds_common::report::{CheckState, Precondition, PreconditionId};
use vmcreds_common::systemd::{parse_version, Cvm, SystemdVersion};

use crate::dmi;
use crate::sysfs::{ReadError, Root};

/// fw_cfg credentials directory.
pub const FW_CFG_DIR: &str = "/sys/firmware/qemu_fw_cfg/by_name/opt/io.systemd.credentials";

/// Directories that hold `libsystemd-shared-NNN*.so`.
pub const SHARED_LIB_DIRS: &[&str] = &[
    "/lib/systemd",
    "/usr/lib/systemd",
    "/usr/lib/x86_64-linux-gnu/systemd",
    "/usr/lib64/systemd",
];

/// Finds the systemd version without running anything under a foreign root:
/// `--systemd-version`, then `libsystemd-shared-NNN*.so`, then (root `/` only)
/// `systemctl --version`.
pub fn systemd_version(root: &Root, over: Option<u32>) -> Result<SystemdVersion, ReadError> {
    if let Some(v) = over {
        return Ok(SystemdVersion {
            version: Some(v),
            detail: format!("systemd {v} (from --systemd-version)"),
        });
    }
    for dir in SHARED_LIB_DIRS {
        let Some(names) = tolerant(root.list_dir(dir))? else {
            continue;
        };
        for n in names {
            let n = n.to_string_lossy();
            if let Some(rest) = n.strip_prefix("libsystemd-shared-") {
                if n.contains(".so") {
                    if let Some(v) = parse_version(rest) {
                        return Ok(SystemdVersion {
                            version: Some(v),
                            detail: format!(
                                "systemd {v} (from {dir}/{})",
                                escape_bytes(n.as_bytes(), 80)
                            ),
                        });
                    }
                }
            }
        }
    }
    if root.is_host() {
        if let Ok(out) = std::process::Command::new("systemctl")
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
        {
            if let Some(v) = parse_version(&String::from_utf8_lossy(&out.stdout)) {
                return Ok(SystemdVersion {
                    version: Some(v),
                    detail: format!("systemd {v} (from systemctl --version)"),
                });
            }
        }
    }
    Ok(SystemdVersion {
        version: None,
        detail: "systemd version unknown (no libsystemd-shared-NNN.so found); predicting the newest systemd's behaviour".into(),
    })
}

/// What `/proc/cmdline` says about credentials (names and the boolean only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cmdline {
    /// `systemd.import_credentials=` / `rd.` form: (word as given, escaped; parsed value).
    pub import: Vec<(String, Option<bool>)>,
    /// Names from `systemd.set_credential=` and `systemd.set_credential_binary=`.
    pub credential_names: Vec<String>,
    /// The file could be read.
    pub readable: bool,
}

/// systemd's `parse_boolean()`.
pub fn parse_boolean(v: &str) -> Option<bool> {
    const YES: &[&str] = &["1", "yes", "y", "true", "t", "on"];
    const NO: &[&str] = &["0", "no", "n", "false", "f", "off"];
    if YES.iter().any(|y| y.eq_ignore_ascii_case(v)) {
        Some(true)
    } else if NO.iter().any(|n| n.eq_ignore_ascii_case(v)) {
        Some(false)
    } else {
        None
    }
}

/// Splits a kernel command line into words, removing quotes (systemd's
/// `extract_first_word(…, EXTRACT_UNQUOTE|EXTRACT_RELAX)`, simplified).
pub fn split_cmdline(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_ascii_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// `proc_cmdline_key_streq`: `-` and `_` compare equal.
fn key_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y || (matches!(x, b'-' | b'_') && matches!(y, b'-' | b'_')))
}

/// Parses a command line for credential settings. Values are dropped at once.
pub fn parse_cmdline(text: &str) -> Cmdline {
    let mut c = Cmdline {
        readable: true,
        ..Default::default()
    };
    for word in split_cmdline(text) {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word.as_str(), None),
        };
        let bare = key.strip_prefix("rd.").unwrap_or(key);
        if key_eq(bare, "systemd.import_credentials") {
            let parsed = match value {
                None => Some(true),
                Some(v) => parse_boolean(v),
            };
            c.import.push((escape_bytes(word.as_bytes(), 64), parsed));
        } else if key_eq(bare, "systemd.set_credential")
            || key_eq(bare, "systemd.set_credential_binary")
        {
            if let Some(v) = value {
                if let Some((name, _)) = v.split_once(':') {
                    c.credential_names
                        .push(crate::creds_dir::display_name(name.as_bytes()));
                }
            }
        }
    }
    c
}

/// Lists fw_cfg credentials (`…/opt/io.systemd.credentials/NAME/{size,raw}`).
pub fn fw_cfg(root: &Root) -> Result<Vec<FwCfgCredential>, ReadError> {
    let Some(names) = root.list_dir(FW_CFG_DIR)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for n in names {
        let name = crate::creds_dir::display_name(n.as_encoded_bytes());
        let base = format!("{FW_CFG_DIR}/{}", n.to_string_lossy());
        let size = root
            .read_text(&format!("{base}/size"))?
            .and_then(|s| s.trim().parse::<u64>().ok());
        let bytes = match size {
            Some(s) => Some(s),
            None => root
                .read_bounded(&format!("{base}/raw"), 2 << 20)?
                .map(|b| b.bytes.len() as u64),
        };
        out.push(FwCfgCredential { name, bytes });
    }
    Ok(out)
}

fn pre(check: PreconditionId, state: CheckState, detail: impl Into<String>) -> Precondition {
    Precondition {
        check,
        state,
        detail: detail.into(),
    }
}

/// Everything the preconditions need, read once.
#[derive(Clone, Debug)]
pub struct Facts {
    /// The kernel command line, parsed.
    pub cmdline: Cmdline,
    /// The preconditions.
    pub preconditions: Vec<Precondition>,
    /// Whether this is a confidential VM, and which kind.
    pub cvm: CvmFinding,
    /// `/proc/1/environ`, when readable (for `$CREDENTIALS_DIRECTORY`).
    pub pid1_environ: Option<Vec<u8>>,
}

/// Checks every silent precondition of systemd's import.
pub fn check(root: &Root, sd: &SystemdVersion) -> Result<Facts, ReadError> {
    let mut p = Vec::new();
    let behaviour = sd.behaviour();

    p.push(match sd.version {
        Some(v) if v < vmcreds_common::systemd::FIRST_SMBIOS_IMPORT => pre(
            PreconditionId::SystemdVersion,
            CheckState::Failed,
            format!(
                "{}: SMBIOS import needs systemd ≥ 252 (use vmcreds-guest import)",
                sd.detail
            ),
        ),
        Some(_) => pre(
            PreconditionId::SystemdVersion,
            CheckState::Ok,
            sd.detail.clone(),
        ),
        None => pre(
            PreconditionId::SystemdVersion,
            CheckState::Unknown,
            sd.detail.clone(),
        ),
    });

    // Containers: systemd's detect_container() (simplified to its files).
    let mut container = None;
    if let Some(t) = tolerant(root.read_text("/run/systemd/container"))? {
        container = Some(format!(
            "/run/systemd/container says \"{}\"",
            escape_bytes(t.trim().as_bytes(), 32)
        ));
    }
    for f in [
        "/run/host/container-manager",
        "/.dockerenv",
        "/run/.containerenv",
    ] {
        if container.is_none() && root.exists(f) {
            container = Some(format!("{f} exists"));
        }
    }
    let environ = match root.read_bounded("/proc/1/environ", 1 << 20) {
        Ok(b) => b.map(|b| b.bytes),
        Err(_) => None,
    };
    if container.is_none() {
        if let Some(env) = &environ {
            if let Some(v) = env
                .split(|&b| b == 0)
                .find_map(|kv| kv.strip_prefix(b"container="))
            {
                container = Some(format!(
                    "PID 1's environment has container={}",
                    escape_bytes(v, 32)
                ));
            }
        }
    }
    p.push(match container {
        Some(d) => pre(
            PreconditionId::NotContainer,
            CheckState::Failed,
            format!("{d}: systemd imports no SMBIOS or fw_cfg credentials in a container"),
        ),
        None if environ.is_some() => pre(
            PreconditionId::NotContainer,
            CheckState::Ok,
            "no container detected",
        ),
        None => pre(
            PreconditionId::NotContainer,
            CheckState::Ok,
            "no container files (PID 1's environment not readable)",
        ),
    });

    // Confidential VMs: systemd ≥ 254 refuses fw_cfg and SMBIOS there, and
    // from 262 reads SMBIOS under TDX (vmcreds_common::check::confidential).
    let cpuinfo = tolerant(root.read_text("/proc/cpuinfo"))?;
    let mut cvm = match &cpuinfo {
        Some(ci) => ci
            .lines()
            .filter_map(|line| line.split_once(':'))
            .filter(|(k, _)| k.trim() == "flags")
            .find_map(|(_, v)| Cvm::from_cpu_flags(v.split_ascii_whitespace()))
            .map_or(CvmFinding::NotCvm, |(kind, flag)| CvmFinding::Cvm {
                kind: Some(kind),
                how: format!("/proc/cpuinfo has flag {flag}"),
            }),
        None => CvmFinding::Unknown,
    };
    // systemd's own detection (CPUID and MSRs) is what PID 1 used. Where
    // CPUID leaves it nothing to find, its answer is "none" and it need not
    // be run; otherwise it is asked.
    let cpuid = if root.is_host() { cpuid_view() } else { None };
    if cpuid.is_some_and(|v| !v.may_be_cvm()) {
        cvm = CvmFinding::NotCvm;
    } else if root.is_host() {
        for exe in ["/usr/bin/systemd-detect-virt", "/bin/systemd-detect-virt"] {
            if !Path::new(exe).exists() {
                continue;
            }
            if let Ok(out) = std::process::Command::new(exe)
                .arg("--cvm")
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
            {
                // systemd's own detection (CPUID and MSRs) is what PID 1 used:
                // its answer replaces the cpuinfo guess either way.
                let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                if out.status.code().is_some() {
                    cvm = if out.status.success() && !s.is_empty() && s != "none" {
                        CvmFinding::Cvm {
                            kind: Cvm::from_systemd(&s),
                            how: format!(
                                "systemd-detect-virt --cvm says {}",
                                escape_bytes(s.as_bytes(), 32)
                            ),
                        }
                    } else {
                        CvmFinding::NotCvm
                    };
                }
            }
            break;
        }
    }
    p.push(confidential::precondition(&cvm, &behaviour));

    // systemd.import_credentials= on the kernel command line.
    let cmdline = match tolerant(root.read_text("/proc/cmdline"))? {
        Some(t) => parse_cmdline(&t),
        None => Cmdline::default(),
    };
    let last = cmdline.import.iter().rev().find(|(_, v)| v.is_some());
    p.push(match (cmdline.readable, last) {
        (false, _) => pre(PreconditionId::ImportEnabled, CheckState::Unknown, "/proc/cmdline not readable"),
        (true, Some((w, Some(false)))) => pre(
            PreconditionId::ImportEnabled,
            CheckState::Failed,
            format!("kernel command line has {w}: systemd skips importing credentials (an rd. form applies in a systemd initrd)"),
        ),
        (true, Some((w, _))) => pre(PreconditionId::ImportEnabled, CheckState::Ok, format!("kernel command line has {w}")),
        (true, None) => pre(
            PreconditionId::ImportEnabled,
            CheckState::Ok,
            if cmdline.import.is_empty() {
                "no systemd.import_credentials= on the kernel command line".to_owned()
            } else {
                "systemd.import_credentials= value not a boolean: systemd ignores it".to_owned()
            },
        ),
    });

    // dmi-sysfs and Type 11.
    let dmi_ok = root.exists(dmi::ENTRIES_DIR);
    p.push(if dmi_ok {
        pre(PreconditionId::DmiSysfs, CheckState::Ok, format!("{} exists", dmi::ENTRIES_DIR))
    } else {
        pre(
            PreconditionId::DmiSysfs,
            CheckState::Failed,
            format!("{} missing: dmi-sysfs not loaded or built (CONFIG_DMI_SYSFS; it must be usable in the initrd), or the machine has no SMBIOS", dmi::ENTRIES_DIR),
        )
    });
    p.push(if root.exists(&format!("{}/11-0", dmi::ENTRIES_DIR)) {
        pre(PreconditionId::Type11Present, CheckState::Ok, "11-0 exists")
    } else if dmi_ok {
        pre(
            PreconditionId::Type11Present,
            CheckState::Failed,
            "no SMBIOS Type 11: the hypervisor passed no OEM strings, e.g. QEMU -M microvm (no SMBIOS) or no -smbios type=11",
        )
    } else {
        pre(
            PreconditionId::Type11Present,
            CheckState::Unknown,
            "no SMBIOS Type 11 visible: dmi-sysfs missing (e.g. QEMU -M microvm or no -smbios type=11)",
        )
    });
    Ok(Facts {
        cmdline,
        preconditions: p,
        cvm,
        pid1_environ: environ,
    })
}

/// Permission errors count (exit 3); other errors on optional files do not.
fn tolerant<T>(r: Result<Option<T>, ReadError>) -> Result<Option<T>, ReadError> {
    match r {
        Ok(v) => Ok(v),
        Err(e) if e.is_permission() => Err(e),
        Err(_) => Ok(None),
    }
}

/// What this CPU's CPUID says about confidential computing (x86_64 only:
/// elsewhere `None`, and systemd is always asked).
#[cfg(target_arch = "x86_64")]
fn cpuid_view() -> Option<CpuidView> {
    use std::arch::x86_64::__cpuid_count;
    // SAFETY: CPUID exists on every x86_64 CPU and only reads.
    #[allow(unused_unsafe)]
    let leaf = |l: u32| unsafe { __cpuid_count(l, 0) };
    let ext_max = leaf(0x8000_0000).eax;
    let amd_sev = ext_max >= 0x8000_001f && leaf(0x8000_001f).eax & (1 << 1) != 0;
    let tdx = leaf(0x21);
    let hv = leaf(0x4000_0000);
    Some(CpuidView {
        amd_sev,
        intel_tdx: CpuidView::signs(tdx.ebx, tdx.ecx, tdx.edx, b"IntelTDX    "),
        hyperv: CpuidView::signs(hv.ebx, hv.ecx, hv.edx, b"Microsoft Hv"),
    })
}

/// Not x86_64: no CPUID to rule anything out.
#[cfg(not(target_arch = "x86_64"))]
fn cpuid_view() -> Option<CpuidView> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where CPUID rules a confidential VM out, real systemd agrees: on an
    /// x86_64 machine with `systemd-detect-virt`, it says `none` (the check
    /// no longer asks it there).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn cpuid_rules_out_only_what_systemd_would_not_find() {
        let view = cpuid_view().expect("x86_64 has CPUID");
        let exe = ["/usr/bin/systemd-detect-virt", "/bin/systemd-detect-virt"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(exe) = exe else {
            eprintln!("skipped: no systemd-detect-virt on this machine to agree with");
            return;
        };
        let out = std::process::Command::new(exe)
            .arg("--cvm")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        eprintln!("CPUID: {view:?}; systemd-detect-virt --cvm: {said:?}");
        if said.is_empty() && String::from_utf8_lossy(&out.stderr).contains("--cvm") {
            // systemd < 254 has no --cvm (and no confidential-VM refusal).
            eprintln!("skipped: this machine's systemd-detect-virt predates --cvm (254)");
            return;
        }
        if !view.may_be_cvm() {
            assert_eq!(said, "none", "CPUID {view:?}");
        } else {
            assert!(
                !said.is_empty(),
                "systemd-detect-virt --cvm printed nothing"
            );
        }
    }

    #[test]
    fn test_boolean_and_cmdline() {
        assert_eq!(parse_boolean("YES"), Some(true));
        assert_eq!(parse_boolean("off"), Some(false));
        assert_eq!(parse_boolean("maybe"), None);
        let c = parse_cmdline(
            "ro quiet \"systemd.set_credential=A:has space\" systemd.set-credential-binary=B:Zm9v rd.systemd.import_credentials=no systemd.import-credentials",
        );
        assert_eq!(c.credential_names, vec!["A", "B"]);
        assert_eq!(c.import.len(), 2);
        assert_eq!(c.import[0].1, Some(false));
        assert_eq!(c.import[1].1, Some(true));
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("Zm9v") && !dbg.contains("has space"), "{dbg}");
    }

    #[test]
    fn test_split_quotes() {
        assert_eq!(
            split_cmdline(" a 'b c'd \"\" e"),
            vec!["a", "b cd", "", "e"]
        );
    }

    #[test]
    fn test_systemd_version_from_lib() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("usr/lib/x86_64-linux-gnu/systemd");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("libsystemd-shared-252.so"), b"").unwrap();
        let v = systemd_version(&Root::open(d.path()).unwrap(), None).unwrap();
        assert_eq!(v.version, Some(252));
        assert_eq!(
            systemd_version(&Root::open(d.path()).unwrap(), Some(257))
                .unwrap()
                .version,
            Some(257)
        );
        let e = tempfile::tempdir().unwrap();
        let v = systemd_version(&Root::open(e.path()).unwrap(), None).unwrap();
        assert_eq!(v.version, None);
        assert_eq!(v.behaviour(), vmcreds_common::systemd::Behaviour::newest());
    }

    proptest::proptest! {
        #[test]
        fn fuzz_cmdline_keeps_no_values(name in "[A-Za-z0-9_]{1,12}", value in "[A-Za-z0-9+/=]{8,40}", noise in "[a-z0-9 =._-]{0,60}") {
            let line = format!("{noise} systemd.set_credential={name}:{value} {noise}");
            let c = parse_cmdline(&line);
            proptest::prop_assert!(c.credential_names.contains(&name));
            let dbg = format!("{:?}", c);
            proptest::prop_assert!(!dbg.contains(&value));
            let _ = split_cmdline(&noise);
        }
    }
}
