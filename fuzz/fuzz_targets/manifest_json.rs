//! Manifest documents from untrusted places (the guest credential, files).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vmcreds_common::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::from_json(data) {
        let again = Manifest::from_json(m.to_json().as_bytes()).expect("own output parses");
        assert_eq!(again, m);
    }
});
