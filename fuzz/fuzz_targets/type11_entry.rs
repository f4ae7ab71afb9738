//! The raw Type 11 entry parser: any bytes, no panic, no out-of-bounds string.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vmcreds_common::type11;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = type11::parse_entry(data) {
        for s in &entry.strings {
            assert!(s.offset + s.bytes.len() <= data.len());
            assert!(!s.bytes.is_empty());
            assert!(!s.bytes.contains(&0));
        }
        for a in &entry.anomalies {
            let _ = a.to_string();
        }
    }
});
