//! `vmcreds-host firecracker` and `vmcreds-host kvmtool`: refused (exit 2).
//! Neither VMM builds SMBIOS tables; the message names the alternatives
//! ([`crate::hv::refused::Refused`]).

use crate::exit::{Exit, Result};
use crate::hv::refused::Refused;

/// Refuses `hv`, naming the alternatives.
pub fn run(hv: Refused) -> Result<Exit> {
    Err(hv.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_refusals_exit_2() {
        for hv in [Refused::Firecracker, Refused::Kvmtool] {
            assert_eq!(run(hv).unwrap_err().exit(), Exit::Refused);
        }
    }
}
