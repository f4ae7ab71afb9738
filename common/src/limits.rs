//! Limits of systemd and SMBIOS: what any credential set must respect,
//! whatever carries it. Each hypervisor's own limits live with the host's
//! target for it.

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

/// A limit of systemd's that a set of credentials exceeds.
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

/// Checks `decoded` (name, decoded size of each credential) against systemd's
/// per-credential and total limits; returns the total.
pub fn check_credential_sizes(decoded: &[(&str, usize)]) -> Result<usize, LimitError> {
    for &(name, size) in decoded {
        if size > CREDENTIAL_SIZE_MAX {
            return Err(LimitError::CredentialTooLarge {
                name: name.to_owned(),
                limit: CREDENTIAL_SIZE_MAX,
                actual: size,
            });
        }
    }
    let total: usize = decoded.iter().map(|&(_, s)| s).sum();
    if total > CREDENTIALS_TOTAL_SIZE_MAX {
        return Err(LimitError::TotalTooLarge {
            limit: CREDENTIALS_TOTAL_SIZE_MAX,
            actual: total,
        });
    }
    Ok(total)
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
        assert_eq!(
            check_credential_sizes(&[("a", CREDENTIAL_SIZE_MAX)]),
            Ok(CREDENTIAL_SIZE_MAX)
        );
        let e = check_credential_sizes(&[("a", CREDENTIAL_SIZE_MAX + 1)]).unwrap_err();
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
        let half = CREDENTIALS_TOTAL_SIZE_MAX / 2;
        assert!(check_credential_sizes(&[("a", half), ("b", half)]).is_ok());
        assert!(matches!(
            check_credential_sizes(&[("a", half), ("b", half + 1)]),
            Err(LimitError::TotalTooLarge { actual, .. }) if actual == CREDENTIALS_TOTAL_SIZE_MAX + 1
        ));
    }
}
