//! Hypervisor targets. Each `hv/<name>.rs` owns what its hypervisor can
//! carry (its [`Budget`]), its escaping and its refusal texts; the
//! hypervisors without SMBIOS are in [`refused`].

use thiserror::Error;
use vmcreds_common::limits::{self, LimitError, SYSTEMD_ONE_PAGE_READ, TYPE11_MAX_STRINGS};
use vmcreds_common::systemd::Behaviour;

pub mod ask;
pub mod cloud_hypervisor;
pub mod crosvm;
pub mod fw_cfg;
pub mod qemu;
pub mod qemu_version;
pub mod refused;

pub(crate) use ask::ask;

/// What one target can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Name of the target, for messages.
    pub target: &'static str,
    /// Whether the strings travel in one SMBIOS Type 11 structure (at most
    /// 255 strings, read by systemd within its read window); fw_cfg items
    /// do not.
    pub smbios: bool,
    /// Most bytes of the Type 11 structure (header, strings, NULs), if bounded.
    pub max_type11_bytes: Option<usize>,
    /// Why `max_type11_bytes` is what it is, for messages.
    pub rule: &'static str,
}

/// A limit a set of OEM strings exceeds.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BudgetError {
    /// One of systemd's limits.
    #[error(transparent)]
    Systemd(#[from] LimitError),
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
    /// The Type 11 structure would not fit.
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

/// Why the structure is capped at one page for systemd before 257.
const ONE_PAGE_RULE: &str = "systemd before 257 reads only the first 4096 bytes of the Type 11 entry and silently loses the rest; if every guest runs systemd 257 or newer, say so with --guest-systemd 257";
/// Why the structure is capped at systemd's read limit.
const RAW_READ_RULE: &str =
    "systemd reads at most 8 + 1048576 bytes of one Type 11 entry and silently cuts the rest";

impl Budget {
    /// No hypervisor's window at all: only systemd's limits and SMBIOS's 255
    /// strings (for `vmcreds-host manifest`).
    pub const ANY_TARGET: Budget = Budget {
        target: "SMBIOS",
        smbios: true,
        max_type11_bytes: None,
        rule: "",
    };

    /// This budget, narrowed to what the oldest guest systemd reads of one
    /// raw entry ([`Behaviour::raw_read_max`]).
    pub fn for_guest(mut self, guest: &Behaviour) -> Budget {
        if !self.smbios {
            return self;
        }
        let cap = guest.raw_read_max;
        if !matches!(self.max_type11_bytes, Some(m) if m <= cap) {
            self.max_type11_bytes = Some(cap);
            self.rule = if cap == SYSTEMD_ONE_PAGE_READ {
                ONE_PAGE_RULE
            } else {
                RAW_READ_RULE
            };
        }
        self
    }

    /// Checks the OEM strings as they will be emitted (`string_lens`) and
    /// the decoded credentials (name, size) against systemd's limits, the
    /// 255 strings of one structure, and this target's window.
    pub fn check(
        &self,
        string_lens: &[usize],
        decoded: &[(&str, usize)],
    ) -> Result<Usage, BudgetError> {
        let decoded_total = limits::check_credential_sizes(decoded)?;
        if !self.smbios {
            return Ok(Usage {
                strings: string_lens.len(),
                type11_bytes: 0,
                decoded_total,
            });
        }
        if string_lens.len() > TYPE11_MAX_STRINGS {
            return Err(BudgetError::TooManyStrings {
                target: self.target,
                limit: TYPE11_MAX_STRINGS,
                actual: string_lens.len(),
            });
        }
        let type11_bytes = limits::type11_size(string_lens.iter().copied());
        if let Some(limit) = self.max_type11_bytes {
            if type11_bytes > limit {
                return Err(BudgetError::TableTooLarge {
                    target: self.target,
                    limit,
                    actual: type11_bytes,
                    rule: self.rule,
                });
            }
        }
        Ok(Usage {
            strings: string_lens.len(),
            type11_bytes,
            decoded_total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmcreds_common::limits::{CREDENTIAL_SIZE_MAX, TYPE11_HEADER_LEN};

    #[test]
    fn test_string_count_edge() {
        let b = qemu::BUDGET_64;
        assert!(b.check(&[1; 255], &[]).is_ok());
        assert!(matches!(
            b.check(&[1; 256], &[]),
            Err(BudgetError::TooManyStrings {
                limit: 255,
                actual: 256,
                ..
            })
        ));
    }

    #[test]
    fn test_systemd_limits_come_first() {
        let e = Budget::ANY_TARGET
            .check(&[10], &[("a", CREDENTIAL_SIZE_MAX + 1)])
            .unwrap_err();
        assert!(matches!(
            e,
            BudgetError::Systemd(LimitError::CredentialTooLarge { .. })
        ));
    }

    #[test]
    fn test_table_edge() {
        let b = qemu::BUDGET_32;
        let limit = b.max_type11_bytes.unwrap();
        let fits = limit - TYPE11_HEADER_LEN - 2; // one string: len + NUL + final NUL
        assert_eq!(b.check(&[fits], &[]).unwrap().type11_bytes, limit);
        let e = b.check(&[fits + 1], &[]).unwrap_err();
        assert!(matches!(e, BudgetError::TableTooLarge { actual, .. } if actual == limit + 1));
        assert!(e.to_string().contains("smbios-entry-point-type=64"));
        // SeaBIOS: the 64-bit entry point keeps the same window.
        assert!(qemu::BUDGET_64.check(&[fits], &[]).is_ok());
        let e = qemu::BUDGET_64.check(&[fits + 1], &[]).unwrap_err();
        assert!(
            e.to_string()
                .contains("even with smbios-entry-point-type=64"),
            "{e}"
        );
    }

    #[test]
    fn test_guest_systemd_narrows_the_budget() {
        let old = qemu::BUDGET_32.for_guest(&Behaviour::of(252));
        assert_eq!(old.max_type11_bytes, Some(SYSTEMD_ONE_PAGE_READ));
        let page_fit = SYSTEMD_ONE_PAGE_READ - TYPE11_HEADER_LEN - 2;
        assert!(old.check(&[page_fit], &[]).is_ok());
        let e = old.check(&[page_fit + 1], &[]).unwrap_err();
        assert!(e.to_string().contains("--guest-systemd 257"), "{e}");
        let new = qemu::BUDGET_32.for_guest(&Behaviour::of(257));
        assert_eq!(new.max_type11_bytes, qemu::BUDGET_32.max_type11_bytes);
        let ch = cloud_hypervisor::BUDGET.for_guest(&Behaviour::of(257));
        assert_eq!(ch, cloud_hypervisor::BUDGET);
        let any = Budget::ANY_TARGET.for_guest(&Behaviour::of(257));
        assert_eq!(any.max_type11_bytes, Some(limits::SYSTEMD_RAW_READ_MAX));
    }
}
