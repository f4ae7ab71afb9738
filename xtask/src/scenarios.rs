//! The real-VM scenarios, as data: credentials in, expected verdict and statuses out.
//!
//! Each scenario runs against each systemd generation unless it names its own. The runner
//! (`test.rs`) turns one into: credential files in a `$CREDENTIALS_DIRECTORY`-style directory,
//! `vmcreds-host qemu SOURCES --manifest-out M -- qemu-system-x86_64 ...`, the guest's
//! `vmcreds-guest check --json --report-to virtio-port:vmcreds.report`, and
//! `vmcreds-host collect --listen unix:SOCK --manifest M --json`, whose verdict is compared
//! with `Expect`. No value ever appears in a scenario's output: only names, sizes, statuses.

/// Which guest image a scenario boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guest {
    /// A debootstrap'd systemd guest (the generation decides the version).
    Systemd,
    /// busybox init, no systemd: credentials arrive through `vmcreds-guest import`.
    Busybox,
}

/// One host-side credential source.
#[derive(Debug, Clone)]
pub enum Source {
    /// `--load NAME:FILE` with FILE a bare name looked up in `$CREDENTIALS_DIRECTORY`.
    Load {
        /// Credential name.
        name: String,
        /// File name in the credentials directory.
        file: String,
        /// Contents.
        data: Vec<u8>,
    },
    /// `--set NAME=VALUE`.
    Set(String, String),
    /// `--oem STRING`.
    Oem(String),
}

/// What the scenario must end with.
#[derive(Debug, Clone)]
pub enum Expect {
    /// The VM boots; `collect` exits with `host_exit` and this verdict.
    Verdict {
        /// `vmcreds-host collect` exit code (0 verified, 1 failed).
        host_exit: i32,
        /// `verified` or `failed`.
        result: &'static str,
        /// (credential name, status) rows that must be in the host's verdict; a status may list
        /// alternatives separated by `|`.
        rows: Vec<(String, &'static str)>,
        /// Strings that must appear in the guest's report (e.g. a precondition id).
        report_mentions: Vec<&'static str>,
    },
    /// `vmcreds-host qemu` must exit 2 before QEMU starts; its stderr mentions this text.
    HostRefuses(&'static str),
}

/// One scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name used by `--only` and in the summary.
    pub name: &'static str,
    /// One line for people.
    pub about: &'static str,
    /// The guest image.
    pub guest: Guest,
    /// Generations (empty: every generation asked for).
    pub generations: &'static [&'static str],
    /// Host sources, in order.
    pub sources: Vec<Source>,
    /// Extra host flags (`--allow-any-name`, ...).
    pub host_flags: Vec<String>,
    /// `-M` value.
    pub machine: &'static str,
    /// Extra kernel command line.
    pub append: &'static str,
    /// `-fw_cfg name=opt/io.systemd.credentials/NAME,file=...` items.
    pub fw_cfg: Vec<(String, Vec<u8>)>,
    /// Extra `vmcreds-guest check` arguments.
    pub check_args: Vec<String>,
    /// The expectation.
    pub expect: Expect,
}

/// Generations whose systemd reads a whole Type 11 entry (252 and 254 read only its first
/// 4096 bytes; see xtask/ground-truth/).
const READS_WHOLE_ENTRY: &[&str] = &["trixie", "sid"];

/// Generations whose systemd reads only the first 4096 bytes of a Type 11 entry.
const READS_ONE_PAGE: &[&str] = &["bookworm", "bookworm-backports"];

fn load(name: &str, file: &str, data: impl Into<Vec<u8>>) -> Source {
    Source::Load {
        name: name.into(),
        file: file.into(),
        data: data.into(),
    }
}

fn set(name: &str, value: &str) -> Source {
    Source::Set(name.into(), value.into())
}

/// Deterministic test bytes: `len` bytes derived from `seed` (canary-like, never printed).
pub fn test_bytes(seed: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = crate::util::sha256(seed.as_bytes());
    while out.len() < len {
        out.extend_from_slice(&block);
        block = crate::util::sha256(&block);
    }
    out.truncate(len);
    out
}

/// A printable secret of `len` bytes (base64 alphabet), like an API key.
pub fn test_secret(seed: &str, len: usize) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    test_bytes(seed, len)
        .iter()
        .map(|b| A[(*b & 63) as usize])
        .collect()
}

fn ok_rows(names: &[&str]) -> Vec<(String, &'static str)> {
    names.iter().map(|n| (n.to_string(), "ok")).collect()
}

/// The reference sources: three secrets from a credentials directory plus two settings.
pub fn reference_sources() -> Vec<Source> {
    vec![
        load("API_KEY", "host-api-key", test_secret("api-key", 44)),
        load(
            "DB_PASSWORD",
            "host-db-password",
            test_secret("db-password", 44),
        ),
        load(
            "JWT_SECRET",
            "host-jwt-secret",
            test_secret("jwt-secret", 88),
        ),
        set("ENVIRONMENT", "test"),
        set("CLUSTER", "ci-eu-1"),
    ]
}

/// Every scenario, in run order.
pub fn all() -> Vec<Scenario> {
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("H_COMMAS", b"a,b,,c,".to_vec()),
        ("H_EQUALS", b"=a=b==".to_vec()),
        ("H_BRACKETS", b"[oem_strings=[x]]".to_vec()),
        ("H_QUOTES", b"\"double\" 'single' \\".to_vec()),
        ("H_NEWLINES", b"line1\nline2\r\n\n".to_vec()),
        ("H_NUL", b"a\0b\0\0".to_vec()),
        ("H_NON_UTF8", vec![0xff, 0xfe, 0x80, 0xc3, 0x28]),
        ("H_EMPTY", Vec::new()),
        ("H_BINARY", test_bytes("binary", 256)),
    ];
    let hostile_names: Vec<&str> = hostile.iter().map(|(n, _)| *n).collect();
    vec![
        Scenario {
            name: "reference",
            about: "three secrets from $CREDENTIALS_DIRECTORY and two settings, all verified",
            guest: Guest::Systemd,
            generations: &[],
            sources: reference_sources(),
            host_flags: vec![],
            machine: "q35",
            append: "",
            fw_cfg: vec![],
            check_args: vec![],
            expect: Expect::Verdict {
                host_exit: 0,
                result: "verified",
                rows: ok_rows(&["API_KEY", "DB_PASSWORD", "JWT_SECRET", "ENVIRONMENT", "CLUSTER"]),
                report_mentions: vec![],
            },
        },
        Scenario {
            name: "hostile-values",
            about: "commas, =, brackets, quotes, newlines, NUL, non-UTF-8, empty and binary values",
            guest: Guest::Systemd,
            generations: &[],
            sources: hostile
                .iter()
                .map(|(n, v)| load(n, &format!("file-{}", n.to_lowercase()), v.clone()))
                .collect(),
            host_flags: vec![],
            machine: "q35",
            append: "",
            fw_cfg: vec![],
            check_args: vec![],
            expect: Expect::Verdict {
                host_exit: 0,
                result: "verified",
                rows: ok_rows(&hostile_names),
                report_mentions: vec![],
            },
        },
        Scenario {
            name: "limit-40k-ep32",
            about: "a 40 KiB value fits the 32-bit table (65 535 bytes) and arrives whole",
            guest: Guest::Systemd,
            generations: READS_WHOLE_ENTRY,
            sources: vec![load("BIG", "big", test_bytes("big-40k", 40 * 1024))],
            host_flags: vec!["--guest-systemd".into(), "257".into()],
            machine: "q35,smbios-entry-point-type=32",
            append: "",
            fw_cfg: vec![],
            check_args: vec![],
            expect: Expect::Verdict {
                host_exit: 0,
                result: "verified",
                rows: ok_rows(&["BIG"]),
                report_mentions: vec![],
            },
        },
        Scenario {
            name: "limit-refuse-64k-ep64",
            about: "64 KiB (87 KiB in base64) with smbios-entry-point-type=64: QEMU 7.2 + SeaBIOS 1.16 wrap the table length at 64 KiB (the guest sees a corrupted table), so the host must refuse",
            guest: Guest::Systemd,
            generations: &["bookworm"],
            sources: vec![load("BIG", "big", test_bytes("big-64k", 64 * 1024))],
            host_flags: vec![],
            machine: "q35,smbios-entry-point-type=64",
            append: "",
            fw_cfg: vec![],
            check_args: vec![],
            expect: Expect::HostRefuses(""),
        },
        Scenario {
            name: "limit-refuse-systemd252-4k",
            about: "40 KiB by default: refused, systemd before 257 reads only the first 4096 bytes of a Type 11 entry",
            guest: Guest::Systemd,
            generations: &["bookworm"],
            sources: vec![load("BIG", "big", test_bytes("big-40k", 40 * 1024))],
            host_flags: vec![],
            machine: "q35,smbios-entry-point-type=32",
            append: "",
            fw_cfg: vec![],
            check_args: vec![],
            expect: Expect::HostRefuses("4096"),
        },
        Scenario {
            name: "loss-systemd252-4k",
            about: "forced past the host's check (--guest-systemd 257) onto systemd 252 or 254: the 40 KiB value is lost or cut, and the verdict says so",
            guest: Guest::Systemd,
            generations: READS_ONE_PAGE,
            sources: vec![
                set("SMALL", "fits-in-the-first-page"),
                load("BIG", "big", test_bytes("big-40k", 40 * 1024)),
            ],
            host_flags: vec!["--guest-systemd".into(), "257".into()],
            machine: "q35,smbios-entry-point-type=32",
            append: "",
            fw_cfg: vec![],
            check_args: vec![],
            expect: Expect::Verdict {
                host_exit: 1,
                result: "failed",
                rows: vec![("BIG".into(), "missing|mismatch|rejected")],
                report_mentions: vec![],
            },
        },
        Scenario {
            name: "limit-refuse-table-32",
            about: "64 KiB under a 32-bit entry point: refused before QEMU starts",
            guest: Guest::Systemd,
            generations: &["bookworm"],
            sources: vec![load("BIG", "big", test_bytes("big-64k", 64 * 1024))],
            host_flags: vec![],
            machine: "q35,smbios-entry-point-type=32",
            append: "",
            fw_cfg: vec![],
            check_args: vec![],
            expect: Expect::HostRefuses(""),
        },
        Scenario {
            name: "limit-refuse-1mib",
            about: "a value of 1 MiB + 1 byte: refused before QEMU starts (systemd's per-credential limit)",
            guest: Guest::Systemd,
            generations: &["bookworm"],
            sources: vec![load("HUGE", "huge", test_bytes("huge", 1024 * 1024 + 1))],
            host_flags: vec![],
            machine: "q35,smbios-entry-point-type=64",
            append: "",
            fw_cfg: vec![],
            check_args: vec![],
            expect: Expect::HostRefuses(""),
        },
        Scenario {
            name: "limit-255-strings",
            about: "255 credentials (--no-manifest: a 255-entry manifest would not fit), the most one Type 11 structure can count: all arrive",
            guest: Guest::Systemd,
            generations: READS_WHOLE_ENTRY,
            sources: (0..255).map(|i| set(&format!("S{i:03}"), "x")).collect(),
            host_flags: vec!["--guest-systemd".into(), "257".into(), "--no-manifest".into()],
            machine: "q35",
            append: "",
            fw_cfg: vec![],
            check_args: vec![],
            expect: Expect::Verdict {
                host_exit: 0,
                result: "verified",
                rows: ok_rows(&["S000", "S127", "S254"]),
                report_mentions: vec![],
            },
        },
        Scenario {
            name: "limit-refuse-256-strings",
            about: "256 credentials (257 strings with the manifest): refused, the count byte would wrap",
            guest: Guest::Systemd,
            generations: &["bookworm"],
            sources: (0..256).map(|i| set(&format!("S{i:03}"), "x")).collect(),
            host_flags: vec![],
            machine: "q35",
            append: "",
            fw_cfg: vec![],
            check_args: vec![],
            expect: Expect::HostRefuses(""),
        },
        Scenario {
            name: "loss-import-disabled",
            about: "systemd.import_credentials=no: nothing imported, the guest says why",
            guest: Guest::Systemd,
            generations: &[],
            sources: vec![load("API_KEY", "host-api-key", test_secret("api-key", 44))],
            host_flags: vec![],
            machine: "q35",
            append: "systemd.import_credentials=no",
            fw_cfg: vec![],
            check_args: vec![],
            expect: Expect::Verdict {
                host_exit: 1,
                result: "failed",
                rows: vec![("API_KEY".into(), "missing")],
                report_mentions: vec!["import_credentials"],
            },
        },
        Scenario {
            name: "loss-explained",
            about: "fw_cfg shadowing, raw --oem strings with an invalid name and invalid base64, a missing --expect",
            guest: Guest::Systemd,
            generations: &[],
            sources: vec![
                load("API_KEY", "host-api-key", test_secret("api-key", 44)),
                load("SHADOWED", "host-shadowed", test_secret("shadowed", 32)),
                Source::Oem("io.systemd.credential:bad/name=x".into()),
                Source::Oem("io.systemd.credential.binary:BAD_B64=QQ".into()),
            ],
            host_flags: vec![],
            machine: "q35",
            append: "",
            fw_cfg: vec![("SHADOWED".into(), b"from fw_cfg, not from the host's SMBIOS".to_vec())],
            check_args: vec!["--expect".into(), "NOT_SENT:16".into()],
            expect: Expect::Verdict {
                host_exit: 1,
                result: "failed",
                rows: vec![("API_KEY".into(), "ok"), ("SHADOWED".into(), "mismatch")],
                report_mentions: vec!["NOT_SENT", "BAD_B64", "fw_cfg"],
            },
        },
        Scenario {
            name: "microvm-refused",
            about: "-M microvm has no SMBIOS: the host refuses and names q35/pc",
            guest: Guest::Systemd,
            generations: &["bookworm"],
            sources: vec![load("API_KEY", "host-api-key", test_secret("api-key", 44))],
            host_flags: vec![],
            machine: "microvm",
            append: "",
            fw_cfg: vec![],
            check_args: vec![],
            expect: Expect::HostRefuses("microvm"),
        },
        Scenario {
            name: "busybox-import",
            about: "a guest without systemd gets its credentials through vmcreds-guest import",
            guest: Guest::Busybox,
            generations: &["busybox"],
            sources: reference_sources(),
            host_flags: vec![],
            machine: "q35",
            append: "",
            fw_cfg: vec![],
            check_args: vec![],
            expect: Expect::Verdict {
                host_exit: 0,
                result: "verified",
                rows: ok_rows(&["API_KEY", "DB_PASSWORD", "JWT_SECRET", "ENVIRONMENT", "CLUSTER"]),
                report_mentions: vec![],
            },
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_reference_sizes_match_the_issue() {
        let all = all();
        let mut names: Vec<_> = all.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
        let sizes: Vec<usize> = reference_sources()
            .iter()
            .filter_map(|s| match s {
                Source::Load { data, .. } => Some(data.len()),
                _ => None,
            })
            .collect();
        assert_eq!(sizes, [44, 44, 88]);
    }

    #[test]
    fn test_bytes_are_deterministic() {
        assert_eq!(test_bytes("x", 100), test_bytes("x", 100));
        assert_ne!(test_bytes("x", 100), test_bytes("y", 100));
        assert_eq!(test_secret("x", 44).len(), 44);
    }
}
