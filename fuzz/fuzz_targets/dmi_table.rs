//! The guest's whole-table reader: the strict walk, then smbios-lib on the
//! validated structures minus Type 11 (smbios-lib panics on some raw bytes
//! and cannot wipe what it copies; it sees neither), and the entry-point
//! parser.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vmcreds_guest::dmi::{parse_entry_point, table_identity, walk_table};

fuzz_target!(|data: &[u8]| {
    let walk = walk_table(data, None);
    assert!(walk.valid_len <= data.len());
    for s in &walk.structures {
        assert!(s.offset < s.end && s.end <= walk.valid_len);
    }
    let (vendor, product) = table_identity(data);
    for s in [vendor, product].into_iter().flatten() {
        assert!(s.len() <= 4 * 64 + 3, "identity strings are escaped and bounded");
    }
    let _ = parse_entry_point(data);
});
