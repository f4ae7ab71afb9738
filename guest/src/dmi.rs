//! The two SMBIOS readers: the per-entry files systemd reads
//! (`/sys/firmware/dmi/entries/11-N/raw`) and, independently, the whole table
//! (`/sys/firmware/dmi/tables/DMI` after `smbios_entry_point`), walked here
//! with strict bounds and compared with the per-entry files.
//!
//! # smbios-lib
//!
//! smbios-lib 0.9.4 is used only to name the hypervisor (Type 1 manufacturer
//! and product). Reading its parsing source (`src/core/undefined_struct.rs`,
//! `strings.rs`, `header.rs`, `entry_point.rs`) found:
//!
//! - `UndefinedStructTable::from(Vec<u8>)` is bounds-checked (`get`, a
//!   header-length < 4 stop, a double-NUL search that stops at the end), so
//!   the table walk itself does not panic on hostile bytes;
//! - `UndefinedStruct::new` slices `raw[..4]` after only checking that byte 1
//!   exists: a 2- or 3-byte structure panics. The table walk never builds one
//!   (it needs 6 bytes), but a direct call would;
//! - `impl Debug for UndefinedStruct` slices `fields[4..]` and panics when
//!   `fields` is shorter (e.g. `Default`); Debug and serde output of every
//!   structure also print all string values (OEM strings hold secrets);
//! - `SMBiosEntryPoint32/64` index fixed offsets after a length check that
//!   trusts the entry point's own length byte (`raw[…]` on 0x1F/0x18-byte
//!   offsets): not used here, the entry point is parsed below;
//! - `SMBiosString::to_utf8_lossy`/`ok` and `get_field_string` use `get` and a
//!   checked index: no panic.
//!
//! - it copies every structure's strings into its own `Vec`s, which vmcreds
//!   cannot wipe.
//!
//! So vmcreds hands smbios-lib only the structures [`walk_table`] validated,
//! **without the Type 11 structures** (credential values never reach it),
//! never calls `UndefinedStruct::new` directly, never Debug- or serde-prints
//! its values, and reads just two strings, escaped and cut to 64 bytes.

use std::fmt::Write as _;

use vmcreds_common::check::{RawEntry, TableReading};
use vmcreds_common::escape::escape_bytes;
use vmcreds_common::report::{EntryPointKind, TableCrossCheck};

use crate::sysfs::{ReadError, Root};

/// Where the per-entry files live.
pub const ENTRIES_DIR: &str = "/sys/firmware/dmi/entries";
/// The whole table.
pub const TABLE_PATH: &str = "/sys/firmware/dmi/tables/DMI";
/// The entry point.
pub const ENTRY_POINT_PATH: &str = "/sys/firmware/dmi/tables/smbios_entry_point";

/// Most bytes read from one `11-N/raw` file (systemd itself reads 8 + 1 MiB).
pub const RAW_ENTRY_MAX: usize = 16 << 20;
/// Most bytes read from all `11-N/raw` files together.
pub const RAW_TOTAL_MAX: usize = 64 << 20;
/// Most bytes read from the whole table (a 64-bit entry point allows 4 GiB).
pub const TABLE_MAX: usize = 16 << 20;
/// The first buffer of an entry or table read: the 64 KiB a 32-bit entry
/// point can describe, so each is one read and the one that sees the end.
const SMBIOS_WINDOW: usize = 64 * 1024;
/// Longest vendor/product string kept in the report.
const SYSTEM_STRING_MAX: usize = 64;

/// The path of `/sys/firmware/dmi/entries/11-N/raw`.
pub fn raw_path(n: u32) -> String {
    format!("{ENTRIES_DIR}/11-{n}/raw")
}

/// Reads `11-0`, `11-1`, … until the first missing one, each to EOF.
/// Returns the entries and, when reading stopped at [`RAW_TOTAL_MAX`], that bound.
pub fn read_entries(root: &Root) -> Result<(Vec<RawEntry>, Option<usize>), ReadError> {
    let mut out = Vec::new();
    let mut total = 0usize;
    for index in 0u32.. {
        if total >= RAW_TOTAL_MAX {
            return Ok((out, Some(RAW_TOTAL_MAX)));
        }
        let max = RAW_ENTRY_MAX.min(RAW_TOTAL_MAX - total);
        match root.read_with(&raw_path(index), max, SMBIOS_WINDOW)? {
            None => break,
            Some(b) => {
                total += b.bytes.len();
                out.push(RawEntry {
                    index,
                    bytes: b.bytes,
                    cut_at: b.over_bound.then_some(max),
                });
            }
        }
    }
    tracing::debug!(entries = out.len(), bytes = total, "Type 11 entries read");
    Ok((out, None))
}

/// A parsed SMBIOS entry point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryPoint {
    /// `_SM_`, `_SM3_` or `_DMI_`.
    pub kind: EntryPointKind,
    /// Major version.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Docrev (64-bit only).
    pub docrev: Option<u8>,
    /// Table length (32-bit) or maximum size (64-bit).
    pub table_len: u64,
    /// Number of structures (32-bit and legacy only).
    pub structures: Option<u16>,
    /// Checksum problems, for people.
    pub problems: Vec<String>,
}

impl EntryPoint {
    /// `3.0.0` or `2.8`.
    pub fn version(&self) -> String {
        match self.docrev {
            Some(d) => format!("{}.{}.{}", self.major, self.minor, d),
            None => format!("{}.{}", self.major, self.minor),
        }
    }
}

fn checksum_ok(b: &[u8]) -> bool {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x)) == 0
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// Parses `smbios_entry_point` (DSP0134 §5.2.1 `_SM_`, §5.2.2 `_SM3_`).
pub fn parse_entry_point(b: &[u8]) -> Result<EntryPoint, String> {
    let mut problems = Vec::new();
    if b.starts_with(b"_SM3_") {
        let len = usize::from(*b.get(6).ok_or("64-bit entry point shorter than 7 bytes")?);
        if len < 0x18 || b.len() < len {
            return Err(format!(
                "64-bit entry point length byte is {len}, file has {} bytes (need ≥ 24)",
                b.len()
            ));
        }
        if !checksum_ok(&b[..len]) {
            problems.push("64-bit entry point checksum is wrong".into());
        }
        Ok(EntryPoint {
            kind: EntryPointKind::Bits64,
            major: b[7],
            minor: b[8],
            docrev: Some(b[9]),
            table_len: u64::from(u32_at(b, 12).ok_or("short 64-bit entry point")?),
            structures: None,
            problems,
        })
    } else if b.starts_with(b"_SM_") {
        let len = usize::from(*b.get(5).ok_or("32-bit entry point shorter than 6 bytes")?);
        if len < 0x1f || b.len() < len {
            return Err(format!(
                "32-bit entry point length byte is {len}, file has {} bytes (need ≥ 31)",
                b.len()
            ));
        }
        if !checksum_ok(&b[..len]) {
            problems.push("32-bit entry point checksum is wrong".into());
        }
        if &b[16..21] != b"_DMI_" {
            problems.push("32-bit entry point lacks the _DMI_ intermediate anchor".into());
        } else if !checksum_ok(&b[16..31]) {
            problems.push("32-bit entry point intermediate checksum is wrong".into());
        }
        Ok(EntryPoint {
            kind: EntryPointKind::Bits32,
            major: b[6],
            minor: b[7],
            docrev: None,
            table_len: u64::from(u16_at(b, 22).ok_or("short 32-bit entry point")?),
            structures: u16_at(b, 28),
            problems,
        })
    } else if b.starts_with(b"_DMI_") {
        if b.len() < 15 {
            return Err("legacy _DMI_ entry point shorter than 15 bytes".into());
        }
        if !checksum_ok(&b[..15]) {
            problems.push("legacy entry point checksum is wrong".into());
        }
        Ok(EntryPoint {
            kind: EntryPointKind::Legacy,
            major: b[14] >> 4,
            minor: b[14] & 0xf,
            docrev: None,
            table_len: u64::from(u16_at(b, 6).ok_or("short legacy entry point")?),
            structures: u16_at(b, 12),
            problems,
        })
    } else {
        Err("no _SM_, _SM3_ or _DMI_ anchor".into())
    }
}

/// One structure found by [`walk_table`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Structure {
    /// Offset in the table.
    pub offset: usize,
    /// Structure type.
    pub kind: u8,
    /// Formatted length.
    pub length: u8,
    /// Handle.
    pub handle: u16,
    /// Offset one past the final double NUL.
    pub end: usize,
}

/// The result of a strict walk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Walk {
    /// The structures, in table order.
    pub structures: Vec<Structure>,
    /// Bytes validated from the start of the table.
    pub valid_len: usize,
    /// Why the walk stopped before the end, if it did.
    pub error: Option<String>,
}

/// Walks the structure table: header ≥ 4 bytes, formatted area within the
/// table, string set terminated by a double NUL within the table (found the
/// way Linux's `dmi_entry_length()` finds it, so Type 11 bytes are comparable
/// with `raw`). Stops after type 127 (end of table) or `max_structures`.
pub fn walk_table(t: &[u8], max_structures: Option<u16>) -> Walk {
    let mut w = Walk::default();
    let mut off = 0usize;
    while off < t.len() {
        if let Some(max) = max_structures {
            if w.structures.len() >= usize::from(max) {
                break;
            }
        }
        if t.len() - off < 4 {
            // Trailing padding shorter than a header.
            if t[off..].iter().all(|&b| b == 0) {
                break;
            }
            w.error = Some(format!("{} stray byte(s) at offset {off}", t.len() - off));
            break;
        }
        let kind = t[off];
        let length = t[off + 1];
        let handle = u16::from_le_bytes([t[off + 2], t[off + 3]]);
        if length < 4 {
            w.error = Some(format!(
                "structure at offset {off} has formatted length {length} (< 4)"
            ));
            break;
        }
        let strings = off + usize::from(length);
        if strings > t.len() {
            w.error = Some(format!(
                "structure at offset {off} (type {kind}) has a formatted area past the end of the table"
            ));
            break;
        }
        let Some(rel) = t[strings..].windows(2).position(|p| p == [0, 0]) else {
            w.error = Some(format!(
                "structure at offset {off} (type {kind}) has no terminating double NUL before the end of the table"
            ));
            break;
        };
        let end = strings + rel + 2;
        w.structures.push(Structure {
            offset: off,
            kind,
            length,
            handle,
            end,
        });
        w.valid_len = end;
        off = end;
        if kind == 127 {
            break;
        }
    }
    w
}

/// Reads the entry point and table, walks it, names the hypervisor, and
/// compares its Type 11 structures with `entries`.
pub fn read_table(root: &Root, entries: &[RawEntry]) -> Result<TableReading, ReadError> {
    let mut out = TableReading::default();
    let ep = root.read_bounded(ENTRY_POINT_PATH, 4096)?;
    let table = root.read_with(TABLE_PATH, TABLE_MAX, SMBIOS_WINDOW)?;
    let Some(table) = table else {
        return Ok(out);
    };
    let mut notes: Vec<String> = Vec::new();
    let mut max_structures = None;
    match ep.as_ref().map(|b| parse_entry_point(&b.bytes)) {
        Some(Ok(ep)) => {
            out.system.smbios_version = Some(ep.version());
            out.system.entry_point = Some(ep.kind);
            if ep.kind != EntryPointKind::Bits64 && ep.table_len != table.bytes.len() as u64 {
                notes.push(format!(
                    "entry point says {} table bytes, the table file has {}",
                    ep.table_len,
                    table.bytes.len()
                ));
            }
            max_structures = ep.structures.filter(|&n| n > 0);
            notes.extend(ep.problems.iter().cloned());
        }
        Some(Err(e)) => notes.push(format!("entry point: {e}")),
        None => notes.push("no smbios_entry_point file".into()),
    }
    out.system.table_bytes = Some(table.bytes.len() as u64);
    if table.over_bound {
        notes.push(format!("table larger than {TABLE_MAX} bytes, cut"));
    }
    let walk = walk_table(&table.bytes, max_structures);
    if let Some(e) = &walk.error {
        notes.push(format!("table walk stopped: {e}"));
    }
    let (vendor, product) = hypervisor(&table.bytes, &walk);
    out.system.hypervisor_vendor = vendor;
    out.system.hypervisor_product = product;

    let t11: Vec<&Structure> = walk.structures.iter().filter(|s| s.kind == 11).collect();
    let mut agrees = walk.error.is_none();
    let mut detail = String::new();
    if t11.len() != entries.len() {
        agrees = false;
        let _ = write!(
            detail,
            "{} Type 11 structure(s) in the table, {} 11-N/raw file(s); ",
            t11.len(),
            entries.len()
        );
    }
    for (s, e) in t11.iter().zip(entries) {
        let bytes = &table.bytes[s.offset..s.end];
        if !same_bytes(bytes, &e.bytes) {
            agrees = false;
            let _ = write!(
                detail,
                "11-{}: {} bytes in the raw file, {} in the table{}; ",
                e.index,
                e.bytes.len(),
                bytes.len(),
                if bytes.len() == e.bytes.len() {
                    " (contents differ)"
                } else {
                    ""
                }
            );
        }
    }
    if agrees && notes.is_empty() {
        detail = format!(
            "{} Type 11 structure(s) in the table equal the 11-N/raw files",
            t11.len()
        );
    } else {
        for n in notes {
            let _ = write!(detail, "{n}; ");
        }
        if agrees {
            detail.insert_str(
                0,
                &format!(
                    "{} Type 11 structure(s) equal the 11-N/raw files; ",
                    t11.len()
                ),
            );
        }
        while detail.ends_with("; ") {
            detail.truncate(detail.len() - 2);
        }
    }
    out.cross_check = Some(TableCrossCheck {
        structures: t11.len() as u64,
        agrees,
        detail,
    });
    Ok(out)
}

/// `a == b`, eight bytes at a time: the slice comparison is a call to
/// musl's `memcmp`, which compares byte by byte (a Type 11 structure is up
/// to 64 KiB).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or_default());
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tails_equal = ca.remainder() == cb.remainder();
    tails_equal && ca.zip(cb).all(|(x, y)| word(x) == word(y))
}

/// The Type 1 manufacturer and product of an untrusted table: [`walk_table`]
/// first, then smbios-lib on the validated prefix only. This is the whole
/// path hostile table bytes take to smbios-lib (fuzzed by
/// `fuzz/fuzz_targets/dmi_table.rs`).
pub fn table_identity(table: &[u8]) -> (Option<String>, Option<String>) {
    let walk = walk_table(table, None);
    hypervisor(table, &walk)
}

/// The validated structures except Type 11: what smbios-lib may see. It
/// copies every string into memory vmcreds cannot wipe, and its Debug and
/// serde output print them, so credential strings never reach it.
fn without_type11(table: &[u8], walk: &Walk) -> Vec<u8> {
    let mut out = Vec::with_capacity(walk.valid_len);
    for s in walk.structures.iter().filter(|s| s.kind != 11) {
        out.extend_from_slice(&table[s.offset..s.end]);
    }
    out
}

/// Type 1 manufacturer and product through smbios-lib, from the structures
/// [`walk_table`] validated, Type 11 left out; escaped, at most 64 bytes each.
fn hypervisor(table: &[u8], walk: &Walk) -> (Option<String>, Option<String>) {
    use smbioslib::{SMBiosData, SMBiosSystemInformation};
    let safe = without_type11(table, walk);
    if safe.len() < 6 {
        return (None, None);
    }
    let data = SMBiosData::from_vec_and_version(safe, None);
    let Some(t1) = data.first::<SMBiosSystemInformation<'_>>() else {
        return (None, None);
    };
    let clean = |s: smbioslib::SMBiosString| {
        s.to_utf8_lossy()
            .filter(|v| !v.is_empty())
            .map(|v| escape_bytes(v.as_bytes(), SYSTEM_STRING_MAX))
    };
    (clean(t1.manufacturer()), clean(t1.product_name()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vmcreds_common::type11::build;

    /// A Type 1 structure with manufacturer and product strings.
    pub(crate) fn type1(vendor: &[u8], product: &[u8]) -> Vec<u8> {
        let mut s = vec![1, 27, 0x00, 0x01, 1, 2, 0, 0];
        s.resize(27, 0);
        s.extend_from_slice(vendor);
        s.push(0);
        s.extend_from_slice(product);
        s.extend_from_slice(&[0, 0]);
        s
    }

    /// A 32-bit entry point for a table of `len` bytes and `n` structures.
    pub(crate) fn ep32(len: u16, n: u16) -> Vec<u8> {
        let mut e = vec![0u8; 31];
        e[..4].copy_from_slice(b"_SM_");
        e[5] = 31;
        e[6] = 2;
        e[7] = 8;
        e[16..21].copy_from_slice(b"_DMI_");
        e[22..24].copy_from_slice(&len.to_le_bytes());
        e[28..30].copy_from_slice(&n.to_le_bytes());
        e[30] = 0x28;
        let s: u8 = e[16..31].iter().fold(0u8, |a, &x| a.wrapping_add(x));
        e[21] = 0u8.wrapping_sub(s);
        let s: u8 = e.iter().fold(0u8, |a, &x| a.wrapping_add(x));
        e[4] = 0u8.wrapping_sub(s);
        e
    }

    /// A 64-bit entry point for a table of at most `len` bytes.
    pub(crate) fn ep64(len: u32) -> Vec<u8> {
        let mut e = vec![0u8; 24];
        e[..5].copy_from_slice(b"_SM3_");
        e[6] = 24;
        e[7] = 3;
        e[8] = 0;
        e[9] = 0;
        e[10] = 1;
        e[12..16].copy_from_slice(&len.to_le_bytes());
        let s: u8 = e.iter().fold(0u8, |a, &x| a.wrapping_add(x));
        e[5] = 0u8.wrapping_sub(s);
        e
    }

    #[test]
    fn test_entry_points() {
        let e = parse_entry_point(&ep32(100, 3)).unwrap();
        assert_eq!(e.kind, EntryPointKind::Bits32);
        assert_eq!(e.version(), "2.8");
        assert_eq!(e.table_len, 100);
        assert!(e.problems.is_empty(), "{:?}", e.problems);
        let e = parse_entry_point(&ep64(4096)).unwrap();
        assert_eq!(
            (e.kind, e.version().as_str()),
            (EntryPointKind::Bits64, "3.0.0")
        );
        let mut bad = ep64(10);
        bad[12] ^= 1;
        assert!(!parse_entry_point(&bad).unwrap().problems.is_empty());
        assert!(parse_entry_point(b"_SM3_").is_err());
        assert!(parse_entry_point(b"_SM_\0\x40").is_err());
        assert!(parse_entry_point(b"junk").is_err());
        assert!(parse_entry_point(b"").is_err());
    }

    #[test]
    fn test_walk_and_hypervisor() {
        let mut t = type1(b"QEMU", b"Standard PC (Q35 + ICH9, 2009)");
        let t11 = build(0x0b00, &[b"io.systemd.credential:A=1"]);
        t.extend_from_slice(&t11);
        t.extend_from_slice(&[127, 4, 0xff, 0xff, 0, 0]);
        let w = walk_table(&t, None);
        assert!(w.error.is_none(), "{:?}", w.error);
        assert_eq!(w.structures.len(), 3);
        assert_eq!(w.valid_len, t.len());
        let s = &w.structures[1];
        assert_eq!(&t[s.offset..s.end], t11.as_slice());
        let (v, p) = hypervisor(&t, &w);
        assert_eq!(v.as_deref(), Some("QEMU"));
        assert_eq!(p.as_deref(), Some("Standard PC (Q35 + ICH9, 2009)"));
        // What smbios-lib is given holds no credential string.
        let safe = without_type11(&t, &w);
        assert_eq!(safe.len(), t.len() - t11.len());
        assert!(!safe.windows(21).any(|x| x == b"io.systemd.credential"));
        // A Type 11 before Type 1 does not hide the identity.
        let mut t2 = t11.clone();
        t2.extend_from_slice(&type1(b"Cloud Hypervisor", b"cloud-hypervisor"));
        let w2 = walk_table(&t2, None);
        assert_eq!(
            hypervisor(&t2, &w2),
            (
                Some("Cloud Hypervisor".into()),
                Some("cloud-hypervisor".into())
            )
        );
    }

    #[test]
    fn test_same_bytes() {
        let a: Vec<u8> = (0..100u8).collect();
        for len in [0, 1, 7, 8, 9, 16, 63, 100] {
            assert!(same_bytes(&a[..len], &a[..len]));
            for i in 0..len {
                let mut b = a[..len].to_vec();
                b[i] ^= 0x40;
                assert!(!same_bytes(&a[..len], &b), "byte {i} of {len}");
            }
        }
        assert!(!same_bytes(&a[..8], &a[..9]));
    }

    #[test]
    fn test_walk_rejects_hostile_tables() {
        assert!(walk_table(&[1, 2, 0, 0, 0, 0], None).error.is_some());
        assert!(walk_table(&[1, 200, 0, 0, 0, 0], None).error.is_some());
        assert!(walk_table(&[1, 4, 0, 0, b'a', 0], None).error.is_some());
        assert!(walk_table(&[1, 4, 0, 0, 0, 0, 9], None).error.is_some());
        assert_eq!(walk_table(&[1, 4, 0, 0, 0, 0, 0, 0], None).error, None);
        assert_eq!(table_identity(&[1, 4]), (None, None));
    }

    proptest::proptest! {
        #[test]
        fn fuzz_walk_and_smbios_lib_never_panic(t in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let w = walk_table(&t, None);
            proptest::prop_assert!(w.valid_len <= t.len());
            for s in &w.structures {
                proptest::prop_assert!(s.offset < s.end && s.end <= t.len());
            }
            let _ = hypervisor(&t, &w);
            let _ = parse_entry_point(&t);
        }
    }
}
