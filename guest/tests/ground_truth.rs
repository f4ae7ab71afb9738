//! `check` against real systemd, string by string.
//!
//! `xtask/ground-truth/systemd-*.json` records what real systemd (252, 254, 257, 262) imported
//! from hostile Type 11 strings and hand-made hostile structures, with the raw entries the
//! guest read. Each boot whose input strings are recorded (the `hostile` strings, the
//! `structs-*` structures) is replayed here as a fixture tree: the raw entries, and
//! `/run/credentials/@system` filled with what systemd imported (the values rebuilt from the
//! inputs and checked against the recorded SHA-256 of each imported file). Then:
//! - every credential real systemd imported is an `ok` row of `check`;
//! - every credential string real systemd did not import is named, at its entry and position,
//!   in `smbios.not_imported` with a reason — including strings in entries systemd never read
//!   and strings the kernel's walk merged into a preceding unterminated structure.

mod common;

use common::Fixture;
use serde_json::Value;
use vmcreds_common::base64::{decode_systemd, Alphabet};
use vmcreds_common::digest::{digest, hex};
use vmcreds_common::report::{Report, Status};

const T: &[u8] = b"io.systemd.credential:";
const B: &[u8] = b"io.systemd.credential.binary:";

fn unhex(s: &str) -> Vec<u8> {
    vmcreds_common::digest::hex_decode(s).expect("lowercase hex")
}

fn unbase64(s: &str) -> Vec<u8> {
    decode_systemd(s.as_bytes(), Alphabet::Standard, 0)
        .unwrap()
        .expose()
        .to_vec()
}

/// The strings of a hand-made structure (`structures[].hex`): after the formatted area,
/// NUL-terminated strings up to the empty one or the end.
fn structure_strings(bytes: &[u8]) -> Vec<Vec<u8>> {
    let len = usize::from(bytes[1]);
    let mut out = Vec::new();
    for s in bytes[len..].split(|&b| b == 0) {
        if s.is_empty() {
            break;
        }
        out.push(s.to_vec());
    }
    out
}

/// The input strings of a boot, when recorded.
fn input_strings(boot: &Value) -> Option<Vec<Vec<u8>>> {
    if let Some(structures) = boot["structures"].as_array() {
        return Some(
            structures
                .iter()
                .flat_map(|s| structure_strings(&unhex(s["hex"].as_str().unwrap())))
                .collect(),
        );
    }
    boot["inputs"]
        .as_array()?
        .iter()
        .map(|i| i["string_hex"].as_str().map(unhex))
        .collect()
}

/// The value systemd writes for a credential string it imported.
fn value_of(s: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (binary, rest) = if let Some(r) = s.strip_prefix(B) {
        (true, r)
    } else {
        (false, s.strip_prefix(T)?)
    };
    let eq = rest.iter().position(|&b| b == b'=')?;
    let value = if binary {
        decode_systemd(&rest[eq + 1..], Alphabet::StandardAndUrlSafe, 0)
            .ok()?
            .expose()
            .to_vec()
    } else {
        rest[eq + 1..].to_vec()
    };
    Some((rest[..eq].to_vec(), value))
}

/// Where in the raw entries a string of the table ended up: (entry, 1-based position), and
/// whether it is that whole string (false: the kernel merged it into a longer one).
fn locate(entries: &[Vec<u8>], needle: &[u8]) -> Option<(u32, u64, bool)> {
    let strings = || {
        entries.iter().enumerate().flat_map(|(e, raw)| {
            let area = raw
                .get(1)
                .and_then(|&len| raw.get(usize::from(len)..))
                .unwrap_or(&[]);
            area.split(|&b| b == 0)
                .take_while(|s| !s.is_empty())
                .enumerate()
                .map(move |(i, s)| (e as u32, i as u64 + 1, s))
        })
    };
    strings()
        .find(|(_, _, s)| *s == needle)
        .map(|(e, i, _)| (e, i, true))
        .or_else(|| {
            strings()
                .find(|(_, _, s)| s.windows(needle.len()).any(|w| w == needle))
                .map(|(e, i, _)| (e, i, false))
        })
}

#[test]
fn test_check_names_every_string_real_systemd_did_not_import() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../xtask/ground-truth");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("systemd-") && n.ends_with(".json")
        })
        .collect();
    files.sort();
    let (mut boots, mut lost_checked, mut merged_checked) = (0, 0, 0);
    for path in &files {
        let gt: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let version =
            vmcreds_common::systemd::parse_version(gt["systemd_version"].as_str().unwrap())
                .unwrap()
                .to_string();
        for boot in gt["boots"].as_array().unwrap() {
            let Some(strings) = input_strings(boot) else {
                continue;
            };
            let Some(raws) = boot["type11_raw"].as_array().filter(|r| !r.is_empty()) else {
                continue;
            };
            let at = format!("{} boot {}", path.display(), boot["boot"]);
            let f = Fixture::new();
            f.remove("usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-257.so");
            f.write(
                &format!("usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-{version}.so"),
                b"",
            );
            let entries: Vec<Vec<u8>> = raws
                .iter()
                .map(|r| unbase64(r["base64"].as_str().unwrap()))
                .collect();
            for (i, raw) in entries.iter().enumerate() {
                f.entry(i as u32, raw);
            }
            // @system as real systemd left it, rebuilt from the inputs.
            let imported: Vec<(String, u64, String)> = boot["imported"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["name_hex"].as_str().unwrap().to_owned(),
                        c["size"].as_u64().unwrap(),
                        c["sha256"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            let mut ok_names: Vec<(String, bool)> = Vec::new();
            for (name_hex, size, sha) in &imported {
                let name = unhex(name_hex);
                let value = strings
                    .iter()
                    .filter_map(|s| value_of(s))
                    .find(|(n, v)| {
                        *n == name && v.len() as u64 == *size && digest(v, None).hex == *sha
                    })
                    .map(|(_, v)| v)
                    .unwrap_or_else(|| panic!("{at}: no input rebuilds {}", hex(&name)));
                let name = String::from_utf8(name).unwrap();
                f.imported(&name, &value);
                ok_names.push((name, value.is_empty()));
            }
            let (_, r, out): (i32, Report, _) = f.check_json(&[]);
            let rows = &r.credentials;
            for (n, empty) in &ok_names {
                let row = rows
                    .iter()
                    .find(|c| &c.name == n)
                    .unwrap_or_else(|| panic!("{at}: no row for imported {n}"));
                if *empty {
                    // Imported as it was sent, but a 0-byte credential is the silent
                    // failure this tool exists to name: flagged unless expected.
                    let reason = row.reason.as_deref().unwrap_or("");
                    assert!(reason.contains("empty"), "{at}: {n}: {reason}");
                } else {
                    assert_eq!(row.status, Status::Ok, "{at}: {n}: {:?}", row.reason);
                }
            }
            // Every credential string systemd did not import is named where it is.
            for (i, s) in strings.iter().enumerate() {
                let input = &boot["inputs"][i];
                let outcome = input["outcome"].as_str().unwrap();
                if outcome == "imported" || !(s.starts_with(T) || s.starts_with(B)) {
                    continue;
                }
                let (entry, pos, whole) = locate(&entries, s).unwrap_or_else(|| {
                    panic!("{at}: input {i} ({}) is in no entry", input["label"])
                });
                let named = r
                    .smbios
                    .not_imported
                    .iter()
                    .find(|n| n.entry == entry && n.string == pos)
                    .unwrap_or_else(|| {
                        panic!(
                            "{at}: input {i} ({}), entry 11-{entry} string {pos}, not named in smbios.not_imported: {}",
                            input["label"],
                            String::from_utf8_lossy(&out.stdout)
                        )
                    });
                assert!(!named.reason.is_empty(), "{at}: input {i}: no reason");
                lost_checked += 1;
                if !whole {
                    merged_checked += 1;
                    let (name, _) = value_of(s).unwrap();
                    let name = String::from_utf8(name).unwrap();
                    let row = rows
                        .iter()
                        .find(|c| c.name == name)
                        .unwrap_or_else(|| panic!("{at}: the merged credential {name} has no row"));
                    assert_ne!(row.status, Status::Ok, "{at}: {name}");
                }
            }
            boots += 1;
        }
    }
    assert!(boots >= 2, "only {boots} boots with recorded strings");
    assert!(lost_checked > 0, "no lost string was checked");
    assert!(
        merged_checked > 0,
        "no merged (unterminated) structure was checked"
    );
}
