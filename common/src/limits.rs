//! Limits of systemd, SMBIOS and each hypervisor, and the budget check the
//! host runs before any VM starts.

use thiserror::Error;

/// Largest decoded credential systemd imports (`CREDENTIAL_SIZE_MAX`,
/// `src/shared/creds-util.h`).
pub const CREDENTIAL_SIZE_MAX: usize = 1024 * 1024;

/// Largest decoded total across fw_cfg, SMBIOS, kernel command line and
/// `@initrd` (`CREDENTIALS_TOTAL_SIZE_MAX`).
pub const CREDENTIALS_TOTAL_SIZE_MAX: usize = 1024 * 1024;

/// String indices in an SMBIOS structure are one byte, 1..=255 (DSP0134 §6.1.3).
pub const TYPE11_MAX_STRINGS: usize = 255;

/// The formatted area of a Type 11 structure is 5 bytes.
pub const TYPE11_HEADER_LEN: usize = 5;

/// A 32-bit (`_SM_`) entry point has a u16 table length: all structures
/// together ≤ 65 535 bytes (QEMU `SMBIOS_21_MAX_TABLES_LEN`, edk2
/// `SMBIOS_TABLE_MAX_LENGTH`).
pub const SMBIOS21_TABLE_MAX: usize = 0xffff;

/// Bytes QEMU's other structures take in a pc/q35 table, reserved from the
/// 32-bit budget. Types 0, 1, 3, 4 (per vCPU), 16, 17 (per DIMM), 19, 32 and
/// 127 measured about 1.2 KiB on a 1-vCPU q35 guest; 8 KiB covers large guests.
pub const QEMU_OTHER_STRUCTURES_RESERVE: usize = 8 * 1024;

/// cloud-hypervisor places its tables in `0xF0000..0x100000` (64 KiB) after a
/// 24-byte entry point, followed by the MP table, with no size check; beyond
/// it they spill silently into RAM. Stay well under: 60 KiB for Type 11
/// (`hypervisors.md` §3.3).
pub const CLOUD_HYPERVISOR_TYPE11_BUDGET: usize = 60 * 1024;

/// QEMU's fw_cfg keys are ≤ 55 characters (`FW_CFG_MAX_FILE_PATH` − 1).
pub const FW_CFG_KEY_MAX: usize = 55;

/// The fw_cfg directory systemd imports from.
pub const FW_CFG_CREDENTIAL_PREFIX: &str = "opt/io.systemd.credentials/";

/// Longest credential name that fits an fw_cfg key (55 − 27 = 28).
pub const FW_CFG_NAME_MAX: usize = FW_CFG_KEY_MAX - FW_CFG_CREDENTIAL_PREFIX.len();

/// systemd's notify messages over `vmm.notify_socket` are < 4096 bytes
/// (`NOTIFY_BUFFER_MAX` = `PIPE_BUF`).
pub const NOTIFY_MESSAGE_MAX: usize = 4096;

/// Largest report document the host accepts.
pub const REPORT_SIZE_MAX: usize = 4 * 1024 * 1024;

/// Largest manifest document accepted (from a file or the guest credential).
pub const MANIFEST_SIZE_MAX: usize = CREDENTIAL_SIZE_MAX;

/// systemd reads at most this many bytes of one raw Type 11 entry and
/// silently cuts the rest (`sizeof(dmi_field_header) + CREDENTIALS_TOTAL_SIZE_MAX`,
/// the `sizeof` being a pointer's). A structure must stay within it, or its
/// last credential arrives truncated or not at all. This is why a 1 MiB
/// binary credential cannot travel over SMBIOS: its base64 is 1.33 MiB.
pub const SYSTEMD_RAW_READ_MAX: usize = 8 + CREDENTIALS_TOTAL_SIZE_MAX;

/// systemd before 257 reads one page of a raw entry (see
/// [`crate::systemd::FIRST_FULL_RAW_READ`]): a Type 11 structure larger than
/// this loses every string past the boundary, silently.
pub const SYSTEMD_ONE_PAGE_READ: usize = 4096;

/// What a target can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Name of the target, for messages.
    pub target: &'static str,
    /// Most strings in the one Type 11 structure the target builds.
    pub max_strings: usize,
    /// Most bytes of the Type 11 structure (header, strings, NULs), if bounded.
    pub max_type11_bytes: Option<usize>,
    /// Why `max_type11_bytes` is what it is, for messages.
    pub table_rule: &'static str,
}

impl Budget {
    /// This budget, narrowed to what the oldest guest systemd reads of one
    /// raw entry ([`crate::systemd::Behaviour::raw_read_max`]).
    pub fn for_guest(mut self, guest: &crate::systemd::Behaviour) -> Budget {
        let cap = guest.raw_read_max;
        if !matches!(self.max_type11_bytes, Some(m) if m <= cap) {
            self.max_type11_bytes = Some(cap);
            self.table_rule = if cap == SYSTEMD_ONE_PAGE_READ {
                "systemd before 257 reads only the first 4096 bytes of the Type 11 entry and silently loses the rest; if every guest runs systemd 257 or newer, say so with --guest-systemd 257"
            } else {
                "systemd reads at most 8 + 1048576 bytes of one Type 11 entry and silently cuts the rest"
            };
        }
        self
    }

    /// QEMU pc/q35 with a 32-bit entry point (machine types ≤ 8.0, or `auto`
    /// falling back): the whole table ≤ 65 535 bytes.
    pub const QEMU_32: Budget = Budget {
        target: "qemu",
        max_strings: TYPE11_MAX_STRINGS,
        max_type11_bytes: Some(SMBIOS21_TABLE_MAX - QEMU_OTHER_STRUCTURES_RESERVE),
        table_rule: "a 32-bit SMBIOS entry point limits all tables to 65535 bytes (8 KiB kept for QEMU's other structures); smbios-entry-point-type=64 does not lift it with SeaBIOS",
    };
    /// QEMU with `smbios-entry-point-type=64`. The 64-bit entry point does not
    /// lift the 64 KiB window with SeaBIOS: measured on Debian's QEMU 7.2
    /// (q35, direct kernel boot), comparing the guest's raw entry byte for
    /// byte, a 64 708-byte structure arrived whole and a 65 376-byte one
    /// arrived as 45 bytes. (OVMF not measured.)
    pub const QEMU_64: Budget = Budget {
        target: "qemu",
        max_strings: TYPE11_MAX_STRINGS,
        max_type11_bytes: Some(SMBIOS21_TABLE_MAX - QEMU_OTHER_STRUCTURES_RESERVE),
        table_rule: "QEMU with SeaBIOS cuts the SMBIOS tables at 64 KiB even with smbios-entry-point-type=64 (measured on QEMU 7.2: the guest's entry arrives silently cut); 8 KiB kept for QEMU's other structures",
    };
    /// cloud-hypervisor (x86_64).
    pub const CLOUD_HYPERVISOR: Budget = Budget {
        target: "cloud-hypervisor",
        max_strings: TYPE11_MAX_STRINGS,
        max_type11_bytes: Some(CLOUD_HYPERVISOR_TYPE11_BUDGET),
        table_rule: "cloud-hypervisor keeps its SMBIOS tables in 64 KiB below 1 MiB without a size check; vmcreds keeps Type 11 under 60 KiB",
    };
    /// crosvm (x86_64): 64-bit entry point, `TooManyOemStrings` above 255.
    pub const CROSVM: Budget = Budget {
        target: "crosvm",
        max_strings: TYPE11_MAX_STRINGS,
        max_type11_bytes: Some(CLOUD_HYPERVISOR_TYPE11_BUDGET),
        table_rule: "crosvm keeps its SMBIOS tables in 64 KiB below 1 MiB; vmcreds keeps Type 11 under 60 KiB",
    };
}

/// A limit that a set of credentials exceeds.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum LimitError {
    /// One credential is over systemd's 1 MiB.
    #[error("credential \"{name}\" is {actual} bytes, over systemd's limit of {limit} bytes per credential by {}", actual - limit)]
    CredentialTooLarge {
        /// The credential.
        name: String,
        /// Limit.
        limit: usize,
        /// Its decoded size.
        actual: usize,
    },
    /// All credentials together are over systemd's 1 MiB.
    #[error("credentials total {actual} bytes, over systemd's limit of {limit} bytes for all credentials together by {}", actual - limit)]
    TotalTooLarge {
        /// Limit.
        limit: usize,
        /// Decoded total.
        actual: usize,
    },
    /// More strings than one Type 11 structure holds.
    #[error("{actual} OEM strings, but {target} builds one Type 11 structure of at most {limit} strings (the count byte would wrap)")]
    TooManyStrings {
        /// Target name.
        target: &'static str,
        /// Limit.
        limit: usize,
        /// Strings requested.
        actual: usize,
    },
    /// The Type 11 structure would not fit the target's table.
    #[error("the Type 11 structure would be {actual} bytes, over the {limit} bytes {target} can carry by {}: {rule}", actual - limit)]
    TableTooLarge {
        /// Target name.
        target: &'static str,
        /// Limit.
        limit: usize,
        /// Structure size.
        actual: usize,
        /// Why the limit exists.
        rule: &'static str,
    },
}

/// What a credential set uses of a budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Strings in the structure.
    pub strings: usize,
    /// Bytes of the Type 11 structure.
    pub type11_bytes: usize,
    /// Decoded credential bytes (what counts against systemd's total).
    pub decoded_total: usize,
}

/// Size of the Type 11 structure holding strings of these lengths (header,
/// each string plus NUL, final NUL; two NULs when there are none).
pub fn type11_size<I: IntoIterator<Item = usize>>(string_lens: I) -> usize {
    let mut n = 0;
    let mut total = TYPE11_HEADER_LEN;
    for len in string_lens {
        n += 1;
        total += len + 1;
    }
    total + if n == 0 { 2 } else { 1 }
}

/// Checks `strings` (the OEM strings as they will be emitted) and `decoded`
/// (name, decoded size of each credential) against systemd's limits and `budget`.
pub fn check_budget(
    budget: &Budget,
    string_lens: &[usize],
    decoded: &[(&str, usize)],
) -> Result<Usage, LimitError> {
    for &(name, size) in decoded {
        if size > CREDENTIAL_SIZE_MAX {
            return Err(LimitError::CredentialTooLarge {
                name: name.to_owned(),
                limit: CREDENTIAL_SIZE_MAX,
                actual: size,
            });
        }
    }
    let decoded_total: usize = decoded.iter().map(|&(_, s)| s).sum();
    if decoded_total > CREDENTIALS_TOTAL_SIZE_MAX {
        return Err(LimitError::TotalTooLarge {
            limit: CREDENTIALS_TOTAL_SIZE_MAX,
            actual: decoded_total,
        });
    }
    if string_lens.len() > budget.max_strings {
        return Err(LimitError::TooManyStrings {
            target: budget.target,
            limit: budget.max_strings,
            actual: string_lens.len(),
        });
    }
    let type11_bytes = type11_size(string_lens.iter().copied());
    if let Some(limit) = budget.max_type11_bytes {
        if type11_bytes > limit {
            return Err(LimitError::TableTooLarge {
                target: budget.target,
                limit,
                actual: type11_bytes,
                rule: budget.table_rule,
            });
        }
    }
    Ok(Usage {
        strings: string_lens.len(),
        type11_bytes,
        decoded_total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_fw_cfg_name_max_is_28() {
        assert_eq!(FW_CFG_NAME_MAX, 28);
    }

    #[test]
    fn test_type11_size() {
        assert_eq!(type11_size([]), 7);
        assert_eq!(type11_size([3]), 5 + 4 + 1);
        assert_eq!(type11_size([3, 0]), 5 + 4 + 1 + 1);
    }

    #[test]
    fn test_credential_limit_edge() {
        let b = Budget::QEMU_64;
        assert!(check_budget(&b, &[10], &[("a", CREDENTIAL_SIZE_MAX)]).is_ok());
        let e = check_budget(&b, &[10], &[("a", CREDENTIAL_SIZE_MAX + 1)]).unwrap_err();
        assert_eq!(
            e,
            LimitError::CredentialTooLarge {
                name: "a".into(),
                limit: CREDENTIAL_SIZE_MAX,
                actual: CREDENTIAL_SIZE_MAX + 1
            }
        );
        assert!(e.to_string().contains("by 1"), "{e}");
    }

    #[test]
    fn test_total_limit_edge() {
        let b = Budget::QEMU_64;
        let half = CREDENTIALS_TOTAL_SIZE_MAX / 2;
        assert!(check_budget(&b, &[1, 1], &[("a", half), ("b", half)]).is_ok());
        assert!(matches!(
            check_budget(&b, &[1, 1], &[("a", half), ("b", half + 1)]),
            Err(LimitError::TotalTooLarge { actual, .. }) if actual == CREDENTIALS_TOTAL_SIZE_MAX + 1
        ));
    }

    #[test]
    fn test_string_count_edge() {
        let b = Budget::QEMU_64;
        assert!(check_budget(&b, &[1; 255], &[]).is_ok());
        assert!(matches!(
            check_budget(&b, &[1; 256], &[]),
            Err(LimitError::TooManyStrings {
                limit: 255,
                actual: 256,
                ..
            })
        ));
    }

    #[test]
    fn test_table_edge() {
        let b = Budget::QEMU_32;
        let limit = b.max_type11_bytes.unwrap();
        let fits = limit - TYPE11_HEADER_LEN - 2; // one string: len + NUL + final NUL
        assert_eq!(check_budget(&b, &[fits], &[]).unwrap().type11_bytes, limit);
        let e = check_budget(&b, &[fits + 1], &[]).unwrap_err();
        assert!(matches!(e, LimitError::TableTooLarge { actual, .. } if actual == limit + 1));
        assert!(e.to_string().contains("smbios-entry-point-type=64"));
        // SeaBIOS: the 64-bit entry point keeps the same window.
        assert!(check_budget(&Budget::QEMU_64, &[fits], &[]).is_ok());
        let e = check_budget(&Budget::QEMU_64, &[fits + 1], &[]).unwrap_err();
        assert!(
            e.to_string()
                .contains("even with smbios-entry-point-type=64"),
            "{e}"
        );
    }

    #[test]
    fn test_guest_systemd_narrows_the_budget() {
        use crate::systemd::Behaviour;
        let old = Budget::QEMU_32.for_guest(&Behaviour::of(252));
        assert_eq!(old.max_type11_bytes, Some(SYSTEMD_ONE_PAGE_READ));
        let page_fit = SYSTEMD_ONE_PAGE_READ - TYPE11_HEADER_LEN - 2;
        assert!(check_budget(&old, &[page_fit], &[]).is_ok());
        let e = check_budget(&old, &[page_fit + 1], &[]).unwrap_err();
        assert!(e.to_string().contains("--guest-systemd 257"), "{e}");
        let new = Budget::QEMU_32.for_guest(&Behaviour::of(257));
        assert_eq!(new.max_type11_bytes, Budget::QEMU_32.max_type11_bytes);
        let ch = Budget::CLOUD_HYPERVISOR.for_guest(&Behaviour::of(257));
        assert_eq!(ch, Budget::CLOUD_HYPERVISOR);
    }
}
