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
