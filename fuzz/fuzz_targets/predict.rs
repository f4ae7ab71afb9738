//! The import predictor over up to four entries cut from the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vmcreds_common::predict::predict;
use vmcreds_common::systemd::Behaviour;

fuzz_target!(|data: &[u8]| {
    // A 0xFE byte separates entries, so the fuzzer can build several.
    let entries: Vec<&[u8]> = data.split(|&b| b == 0xfe).take(4).collect();
    for version in [252, 257] {
        let p = predict(&entries, &Behaviour::of(version), &[]);
        let mut total = 0usize;
        for s in p.imported() {
            total += s.value.as_ref().map_or(0, |v| v.len());
            let _ = s.outcome.reason();
        }
        assert!(total <= vmcreds_common::limits::CREDENTIALS_TOTAL_SIZE_MAX);
    }
});
