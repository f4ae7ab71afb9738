//! OEM string classification for both modelled systemd generations, and the
//! encode/parse round trip for whatever credential comes out.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vmcreds_common::oem::{self, Parsed};
use vmcreds_common::systemd::Behaviour;

fuzz_target!(|data: &[u8]| {
    for version in [252, 257] {
        match oem::parse(data, &Behaviour::of(version)) {
            Parsed::Credential { name, encoding, value } => {
                // Re-encoding what systemd would import must parse back to it.
                if let Ok(s) = oem::encode(&name, value.expose(), encoding) {
                    match oem::parse(s.expose(), &Behaviour::of(version)) {
                        Parsed::Credential { value: v, .. } => assert_eq!(v.expose(), value.expose()),
                        _ => panic!("re-encoded credential does not parse"),
                    }
                }
            }
            Parsed::Rejected { reason, .. } => {
                let _ = reason.to_string();
            }
            Parsed::NotCredential => {}
        }
    }
});
