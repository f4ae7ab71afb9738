//! What differs between systemd versions in the SMBIOS import path.
//!
//! The import logic (`src/core/import-creds.c`) is the same from v252 to
//! today in everything the [`crate::predict`] module models except the rows
//! below. Each row is pinned by the real-VM ground truth in
//! `xtask/ground-truth/` (systemd 252 from Debian bookworm, 254 from
//! bookworm-backports, 257 from trixie, 262 from sid); where a threshold
//! falls between two measured versions the upstream commit decides, and the
//! doc comment says which side was measured.

/// The first systemd version that imports SMBIOS Type 11 credentials (NEWS
/// "CHANGES WITH 252").
pub const FIRST_SMBIOS_IMPORT: u32 = 252;

/// The first systemd version that refuses SMBIOS and fw_cfg credentials in a
/// confidential VM (systemd/systemd#28299, NEWS 254).
pub const FIRST_CVM_REFUSAL: u32 = 254;

/// The first systemd version whose base64 decoder accepts the URL-safe
/// alphabet (`-` and `_`, also mixed with `+` `/`): commit `a5559e0622`
/// "hexdecoct: implicitly parse URL-safe base64 format, too" (2023-11-03),
/// first tagged v255-rc1. Measured (2026-12-01, `xtask/ground-truth`):
/// 252.39 and 254.26 refuse `gt_b64url` and `gt_b64mixed`; 257.13 and 262.1
/// import both. 255 and 256 were not run: they are on the commit's side.
pub const FIRST_URL_SAFE_BASE64: u32 = 255;

/// The first systemd version that reads a raw Type 11 entry to EOF.
/// Earlier ones used `read_virtual_file()`, a single `read()` that sysfs
/// caps at one page: only the first 4096 bytes of the entry are parsed and
/// the string crossing that boundary is cut (systemd/systemd#33539, merged
/// 2024-06-29, "Use read_full_file_full() in read_smbios11_field()").
/// Measured: 252 and 254 imported 117 of 301 strings of a 65 159-byte entry
/// and the 117th arrived as 1 byte; 257 and 262 imported all 301
/// (`xtask/ground-truth`). 256 was not run; it was released (2024-06-11)
/// before the fix was merged.
pub const FIRST_FULL_RAW_READ: u32 = 257;

/// The first systemd version that imports SMBIOS credentials in an Intel TDX
/// confidential VM: systemd/systemd#42835 ("vmspawn: add Intel TDX
/// confidential VM support", merged 2026-07-01 after v261) makes
/// `import_credentials_smbios()` return early only when
/// `cv > 0 && cv != CONFIDENTIAL_VIRTUALIZATION_TDX`, because TDVF measures
/// the SMBIOS table into RTMR0; `import_credentials_qemu()` (fw_cfg) still
/// refuses every confidential VM. Modelled from the PR's diff and the
/// disassembly of Debian's 262.1 build (`cmp $0x4` after
/// `detect_confidential_virtualization()` in the SMBIOS path, a plain
/// `> 0` test in the fw_cfg path; 257.13 has `> 0` in both). Not run: no
/// TDX host here.
pub const FIRST_TDX_SMBIOS_TRUST: u32 = 262;

/// The first systemd version that imports `/.extra/system_credentials/` in
/// the initrd as trusted credentials into `/run/credentials/@system`:
/// systemd/systemd#42272 ("vmspawn: deliver credentials via initrd cpio
/// under SEV-SNP"; NEWS 262: "systemd now imports credentials from
/// /.extra/system_credentials/ in the initrd as trusted system
/// credentials"). A VMM appends them to the initrd as a cpio archive
/// (`systemd-vmspawn --coco=sev-snp`); PID 1 reads them in the initrd
/// before fw_cfg and SMBIOS, so a credential there wins over an SMBIOS
/// string of the same name (first writer wins). Modelled from NEWS and the
/// 262.1 disassembly; not run (no SEV-SNP host here).
pub const FIRST_INITRD_SYSTEM_CREDENTIALS: u32 = 262;

/// The first systemd version whose PID 1 reports what it received at info
/// level: `Received regular credentials: A, B` and `Acquired N regular
/// credentials, M untrusted credentials.` (`report_credentials()` in
/// `src/core/import-creds.c`), and the first that merges
/// `/run/credentials/@initrd` after switch-root. Measured from the shipped
/// binaries: both texts are in Debian's 254.26, 257.13 and 262.1 builds
/// and absent from 252.39's, whose only import summary (`Imported %u
/// credentials from kernel command line/smbios/fw_cfg.`) is a debug line.
/// 253 was not examined.
pub const FIRST_IMPORT_REPORT: u32 = 254;

/// A confidential-computing technology, as systemd names it
/// (`confidential_virtualization_table`, `systemd-detect-virt --cvm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cvm {
    /// AMD SEV.
    Sev,
    /// AMD SEV-ES.
    SevEs,
    /// AMD SEV-SNP.
    SevSnp,
    /// Intel TDX.
    Tdx,
    /// IBM Secure Execution (s390x).
    Protvirt,
    /// Arm CCA.
    Cca,
}

impl Cvm {
    /// systemd's name (`systemd-detect-virt --cvm` prints it).
    pub fn as_str(self) -> &'static str {
        match self {
            Cvm::Sev => "sev",
            Cvm::SevEs => "sev-es",
            Cvm::SevSnp => "sev-snp",
            Cvm::Tdx => "tdx",
            Cvm::Protvirt => "protvirt",
            Cvm::Cca => "cca",
        }
    }

    /// Parses systemd's name; `None` for `none`, empty or unknown text.
    pub fn from_systemd(s: &str) -> Option<Cvm> {
        [
            Cvm::Sev,
            Cvm::SevEs,
            Cvm::SevSnp,
            Cvm::Tdx,
            Cvm::Protvirt,
            Cvm::Cca,
        ]
        .into_iter()
        .find(|c| c.as_str() == s.trim())
    }

    /// The technology a `/proc/cpuinfo` `flags` line shows, the most
    /// specific first (an SEV-SNP guest also has `sev` and `sev_es`), with
    /// the flag that showed it.
    pub fn from_cpu_flags<'a>(flags: impl IntoIterator<Item = &'a str>) -> Option<(Cvm, &'a str)> {
        let mut best: Option<(Cvm, &str, u8)> = None;
        for f in flags {
            let hit = match f {
                "tdx_guest" => (Cvm::Tdx, 4),
                "sev_snp" => (Cvm::SevSnp, 3),
                "sev_es" => (Cvm::SevEs, 2),
                "sev" => (Cvm::Sev, 1),
                _ => continue,
            };
            if best.map_or(true, |(_, _, rank)| hit.1 > rank) {
                best = Some((hit.0, f, hit.1));
            }
        }
        best.map(|(c, f, _)| (c, f))
    }
}

impl std::fmt::Display for Cvm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of its firmware sources systemd reads on a machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    /// QEMU fw_cfg (`import_credentials_qemu()`).
    pub fw_cfg: bool,
    /// SMBIOS Type 11 (`import_credentials_smbios()`).
    pub smbios: bool,
}

/// How one systemd version reads and decodes SMBIOS credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Behaviour {
    /// The version modelled.
    pub version: u32,
    /// Which base64 alphabet its decoder accepts.
    pub alphabet: crate::base64::Alphabet,
    /// Whether it imports SMBIOS credentials at all.
    pub imports_smbios: bool,
    /// Whether a confidential VM stops the import.
    pub refuses_in_cvm: bool,
    /// Most bytes of one raw entry systemd reads; the rest is silently cut
    /// (`read_full_file_full(..., sizeof(dmi_field_header) + max_size, ...)`
    /// where the `sizeof` is of a pointer: 8 + 1 MiB).
    pub raw_read_max: usize,
    /// Whether SMBIOS is read in an Intel TDX guest ([`FIRST_TDX_SMBIOS_TRUST`]).
    pub smbios_trusted_under_tdx: bool,
    /// Whether `/.extra/system_credentials/` in the initrd is imported as
    /// trusted ([`FIRST_INITRD_SYSTEM_CREDENTIALS`]).
    pub imports_initrd_system_credentials: bool,
    /// Whether PID 1 logs `Received regular credentials: …` and `Acquired N
    /// regular credentials, …` at info level ([`FIRST_IMPORT_REPORT`]).
    pub reports_received_credentials: bool,
}

impl Behaviour {
    /// The behaviour of systemd `version`.
    pub fn of(version: u32) -> Self {
        Behaviour {
            version,
            alphabet: if version >= FIRST_URL_SAFE_BASE64 {
                crate::base64::Alphabet::StandardAndUrlSafe
            } else {
                crate::base64::Alphabet::Standard
            },
            imports_smbios: version >= FIRST_SMBIOS_IMPORT,
            refuses_in_cvm: version >= FIRST_CVM_REFUSAL,
            raw_read_max: if version >= FIRST_FULL_RAW_READ {
                crate::limits::SYSTEMD_RAW_READ_MAX
            } else {
                crate::limits::SYSTEMD_ONE_PAGE_READ
            },
            smbios_trusted_under_tdx: version >= FIRST_TDX_SMBIOS_TRUST,
            imports_initrd_system_credentials: version >= FIRST_INITRD_SYSTEM_CREDENTIALS,
            reports_received_credentials: version >= FIRST_IMPORT_REPORT,
        }
    }

    /// Which sources this version reads on a machine that is a confidential
    /// VM (`in_cvm`) of the technology `kind` (`None`: not recognised).
    /// Containers are a separate precondition.
    pub fn gate(&self, in_cvm: bool, kind: Option<Cvm>) -> Gate {
        if in_cvm && self.refuses_in_cvm {
            Gate {
                fw_cfg: false,
                smbios: kind == Some(Cvm::Tdx) && self.smbios_trusted_under_tdx,
            }
        } else {
            Gate {
                fw_cfg: true,
                smbios: true,
            }
        }
    }

    /// The behaviour assumed when the running version is unknown: the newest.
    pub fn newest() -> Self {
        Behaviour::of(u32::MAX)
    }
}

/// The running systemd version and how it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemdVersion {
    /// The version, when known.
    pub version: Option<u32>,
    /// How it was found, for people.
    pub detail: String,
}

impl SystemdVersion {
    /// The behaviour to model: the version's, or the newest when unknown.
    pub fn behaviour(&self) -> Behaviour {
        self.version.map_or_else(Behaviour::newest, Behaviour::of)
    }
}

/// Well-known system credentials that reconfigure the guest at boot
/// (`systemd.system-credentials(7)`, v252–v262): a name, or a prefix ending
/// in `.` for a family, and what it does. Delivered by mistake (a typo) or
/// by someone who should not, each changes the machine, so the host warns.
pub const RECONFIGURING: &[(&str, &str)] = &[
    ("systemd.extra-unit.", "adds a unit file to the guest"),
    ("systemd.unit-dropin.", "adds a drop-in to a guest unit"),
    (
        "tmpfiles.extra",
        "creates, changes or removes files at boot (tmpfiles.d lines)",
    ),
    ("fstab.extra", "adds mounts (fstab lines)"),
    ("sysctl.extra", "sets kernel parameters (sysctl.d lines)"),
    (
        "sysusers.extra",
        "creates users and groups (sysusers.d lines)",
    ),
    (
        "ssh.authorized_keys.root",
        "lets the holder of a key log in as root over SSH",
    ),
    (
        "ssh.ephemeral-authorized_keys-all",
        "lets the holder of a key log in over SSH",
    ),
    ("ssh.listen", "opens SSH listening sockets"),
    ("passwd.", "sets root's password or shell"),
    (
        "firstboot.",
        "sets first-boot settings (locale, keymap, timezone)",
    ),
    ("system.machine_id", "sets the machine ID"),
    (
        "network.",
        "configures the network (links, addresses, DNS, hosts, WireGuard)",
    ),
    ("login.issue", "writes the login banner"),
    ("login.motd", "writes the message of the day"),
    ("vconsole.", "configures the console (keymap, font)"),
    ("getty.ttys.", "starts gettys on terminals"),
    (
        "cryptsetup.",
        "unlocks encrypted disks (passphrase, PIN or key)",
    ),
    (
        "journal.forward_to_socket",
        "forwards the journal to a socket",
    ),
    ("home.create.", "creates systemd-homed users"),
];

/// What credential `name` does to the guest at boot, when it is one of
/// [`RECONFIGURING`].
pub fn reconfigures(name: &str) -> Option<&'static str> {
    RECONFIGURING.iter().find_map(|&(n, what)| {
        let hit = if n.ends_with('.') {
            name.starts_with(n) && name.len() > n.len()
        } else {
            name == n
        };
        hit.then_some(what)
    })
}

/// Parses the version from `systemctl --version`'s first line
/// (`systemd 252 (252.39-1~deb12u1)`) or a bare number.
pub fn parse_version(text: &str) -> Option<u32> {
    let first = text.lines().next()?.trim();
    let word = first.strip_prefix("systemd ").unwrap_or(first);
    let digits: String = word.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base64::Alphabet;

    #[test]
    fn test_versions() {
        assert_eq!(Behaviour::of(252).alphabet, Alphabet::Standard);
        // Measured on 252 and 254 (refused) and 257, 262 (accepted); 255 is
        // a5559e0622's first release.
        assert_eq!(Behaviour::of(254).alphabet, Alphabet::Standard);
        assert_eq!(Behaviour::of(255).alphabet, Alphabet::StandardAndUrlSafe);
        assert_eq!(Behaviour::of(257).alphabet, Alphabet::StandardAndUrlSafe);
        assert!(!Behaviour::of(251).imports_smbios);
        assert!(!Behaviour::of(252).refuses_in_cvm);
        assert!(Behaviour::of(254).refuses_in_cvm);
        assert_eq!(Behaviour::of(252).raw_read_max, 4096);
        assert_eq!(Behaviour::of(256).raw_read_max, 4096);
        assert_eq!(Behaviour::of(257).raw_read_max, 8 + 1024 * 1024);
    }

    #[test]
    fn test_confidential_vm_gate() {
        let open = Gate {
            fw_cfg: true,
            smbios: true,
        };
        let shut = Gate {
            fw_cfg: false,
            smbios: false,
        };
        let smbios_only = Gate {
            fw_cfg: false,
            smbios: true,
        };
        // (version, in a CVM, kind, gate)
        let cases = [
            (252, true, Some(Cvm::SevSnp), open),
            (253, true, Some(Cvm::Tdx), open),
            (254, false, None, open),
            (254, true, Some(Cvm::Sev), shut),
            (254, true, Some(Cvm::Tdx), shut),
            (257, true, None, shut),
            (261, true, Some(Cvm::Tdx), shut),
            (262, true, Some(Cvm::Tdx), smbios_only),
            (262, true, Some(Cvm::SevSnp), shut),
            (262, true, Some(Cvm::SevEs), shut),
            (262, true, Some(Cvm::Cca), shut),
            (262, true, None, shut),
            (262, false, Some(Cvm::Tdx), open),
        ];
        for (v, in_cvm, kind, want) in cases {
            assert_eq!(
                Behaviour::of(v).gate(in_cvm, kind),
                want,
                "{v} {in_cvm} {kind:?}"
            );
        }
    }

    #[test]
    fn test_new_version_rules() {
        // (version, TDX trusts SMBIOS, imports /.extra/system_credentials, logs the import report)
        let cases = [
            (252, false, false, false),
            (253, false, false, false),
            (254, false, false, true),
            (257, false, false, true),
            (261, false, false, true),
            (262, true, true, true),
        ];
        for (v, tdx, cpio, report) in cases {
            let b = Behaviour::of(v);
            assert_eq!(b.smbios_trusted_under_tdx, tdx, "{v}");
            assert_eq!(b.imports_initrd_system_credentials, cpio, "{v}");
            assert_eq!(b.reports_received_credentials, report, "{v}");
        }
    }

    #[test]
    fn test_cvm_names_and_cpu_flags() {
        for c in [
            Cvm::Sev,
            Cvm::SevEs,
            Cvm::SevSnp,
            Cvm::Tdx,
            Cvm::Protvirt,
            Cvm::Cca,
        ] {
            assert_eq!(Cvm::from_systemd(c.as_str()), Some(c));
        }
        assert_eq!(Cvm::from_systemd("none"), None);
        assert_eq!(Cvm::from_systemd("tdx\n"), Some(Cvm::Tdx), "as printed");
        assert_eq!(Cvm::from_systemd("tdx2"), None);
        // (flags, most specific technology and its flag)
        let cases: [(&str, Option<(Cvm, &str)>); 5] = [
            ("fpu vme hypervisor", None),
            ("fpu sev hypervisor", Some((Cvm::Sev, "sev"))),
            ("sev_snp sev sev_es", Some((Cvm::SevSnp, "sev_snp"))),
            ("sev sev_es", Some((Cvm::SevEs, "sev_es"))),
            ("tdx_guest fpu", Some((Cvm::Tdx, "tdx_guest"))),
        ];
        for (flags, want) in cases {
            assert_eq!(Cvm::from_cpu_flags(flags.split(' ')), want, "{flags}");
        }
    }

    #[test]
    fn test_reconfiguring_names() {
        assert_eq!(
            reconfigures("systemd.extra-unit.foo.service"),
            Some("adds a unit file to the guest")
        );
        assert!(reconfigures("passwd.hashed-password.root").is_some());
        assert!(reconfigures("firstboot.locale").is_some());
        assert!(reconfigures("tmpfiles.extra").is_some());
        assert!(reconfigures("system.machine_id").is_some());
        assert_eq!(
            reconfigures("tmpfiles.extra2"),
            None,
            "exact names are exact"
        );
        assert_eq!(reconfigures("passwd."), None, "a family needs a member");
        assert_eq!(reconfigures("API_KEY"), None);
        assert_eq!(reconfigures("vmm.notify_socket"), None);
    }

    #[test]
    fn test_parse_version() {
        assert_eq!(
            parse_version("systemd 252 (252.39-1~deb12u1)\n+PAM"),
            Some(252)
        );
        assert_eq!(parse_version("257"), Some(257));
        assert_eq!(parse_version("systemd 258~rc1"), Some(258));
        assert_eq!(parse_version("nonsense"), None);
        assert_eq!(parse_version(""), None);
    }
}
