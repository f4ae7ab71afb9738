//! Report documents from the guest (untrusted on the host).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vmcreds_common::render::report_table;
use vmcreds_common::report::Report;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Report::from_json(data) {
        let _ = report_table(&r);
        let again = Report::from_json(r.to_json().as_bytes()).expect("own output parses");
        assert_eq!(again, r);
    }
});
