//! `cargo xtask ground-truth`: what real systemd does with hostile SMBIOS Type 11 strings.
//!
//! For each generation (bookworm = systemd 252, trixie = 257, sid) the driver boots QEMU with
//! one `-smbios type=11,path=FILE` per input string (QEMU puts them all in one Type 11
//! structure), lets systemd import them, and records, per input string, what appeared in
//! `/run/credentials/@system` (name, size, sha256, mode) and the journal lines about it. The
//! results are written to `xtask/ground-truth/systemd-<version>.json`; the guest developer
//! checks the predictor against them.
//!
//! Boots per generation:
//! - `hostile`: about 60 odd strings (values, base64 variants, names, prefixes, duplicates);
//! - `table32`: 300 small credentials plus a filler so the whole SMBIOS table is exactly
//!   65 535 bytes under the 32-bit entry point (whether QEMU starts one byte above is recorded);
//! - `table32over`: the same with the filler one byte longer (65 536-byte table);
//! - `large200k`, `large1m`: `smbios-entry-point-type=64` with a 200 KiB / 1 MiB text
//!   credential between two small ones.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::flags::GroundTruth;
use crate::image::{self, Overlay};
use crate::util::{self, hex, sha256_hex, unhex};
use crate::vm::{self, VmSpec};

const T: &[u8] = b"io.systemd.credential:";
const B: &[u8] = b"io.systemd.credential.binary:";

/// Handles of the hand-made Type 11 structures (QEMU's own Type 11 uses 0xe00).
const STRUCTURE_HANDLE_BASE: u16 = 0xe00;

/// Bytes of the SMBIOS table that are not the Type 11 structure, for `-M q35 -m 512`, one
/// CPU, QEMU 7.2 (measured: /sys/firmware/dmi/tables/DMI = 385 bytes with an 9-byte Type 11).
/// The `table32` boot records the real figure, so a different QEMU shows up in the fixture.
const TABLE_OVERHEAD_Q35_512M: usize = 376;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The hostile input strings, in the order they are passed (order matters for duplicates).
pub fn hostile_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let n255 = vec![b'n'; 255];
    let n256 = vec![b'm'; 256];
    vec![
        ("text plain", cat(&[T, b"gt_text=hello world"])),
        ("binary plain", cat(&[B, b"gt_bin=aGVsbG8gd29ybGQ="])),
        ("text trailing newline", cat(&[T, b"gt_nl=line\n"])),
        ("text CRLF", cat(&[T, b"gt_crlf=line\r\n"])),
        ("text = inside value", cat(&[T, b"gt_eq=a=b=c"])),
        ("text leading spaces", cat(&[T, b"gt_lead=   x"])),
        ("text trailing spaces", cat(&[T, b"gt_trail=x   "])),
        ("text commas", cat(&[T, b"gt_comma=a,b,,c"])),
        ("text brackets", cat(&[T, b"gt_brackets=[a],[b]"])),
        ("text quotes", cat(&[T, b"gt_quotes=\"q\" 'q' \\"])),
        ("text non-UTF-8", cat(&[T, b"gt_nonutf8=\xff\xfe\x80ok"])),
        ("text control bytes", cat(&[T, b"gt_ctrl=\x01\x1b[0m\x7f"])),
        ("text empty value", cat(&[T, b"gt_empty="])),
        ("binary standard alphabet +/", cat(&[B, b"gt_b64std=+/+/"])),
        ("binary URL-safe alphabet -_", cat(&[B, b"gt_b64url=-_-_"])),
        ("binary mixed alphabets", cat(&[B, b"gt_b64mixed=+_-/"])),
        (
            "binary missing padding (2 chars)",
            cat(&[B, b"gt_b64nopad2=QQ"]),
        ),
        (
            "binary missing padding (3 chars)",
            cat(&[B, b"gt_b64nopad3=QUI"]),
        ),
        ("binary one char", cat(&[B, b"gt_b64one=Q"])),
        (
            "binary whitespace inside",
            cat(&[B, b"gt_b64ws=aGVs\nbG8g d29y\tbGQ=\r\n"]),
        ),
        (
            "binary non-zero trailing bits",
            cat(&[B, b"gt_b64bits=QR=="]),
        ),
        (
            "binary data after padding",
            cat(&[B, b"gt_b64after=QQ==QQ=="]),
        ),
        (
            "binary single padding after full",
            cat(&[B, b"gt_b64extrapad=QUJD="]),
        ),
        ("binary empty value", cat(&[B, b"gt_b64empty="])),
        ("binary whitespace only", cat(&[B, b"gt_b64wsonly=   "])),
        ("binary only =", cat(&[B, b"gt_b64eqonly=="])),
        ("binary invalid character", cat(&[B, b"gt_b64bad=QU*D"])),
        (
            "binary decodes to non-UTF-8",
            cat(&[B, b"gt_b64bytes=//79"]),
        ),
        ("name empty (text)", cat(&[T, b"=v"])),
        ("name empty (binary)", cat(&[B, b"=QQ=="])),
        ("name .", cat(&[T, b".=v"])),
        ("name ..", cat(&[T, b"..=v"])),
        ("name ...", cat(&[T, b"...=v"])),
        ("name leading dot", cat(&[T, b".gt_hidden=v"])),
        ("name with /", cat(&[T, b"gt/slash=v"])),
        ("name with :", cat(&[T, b"gt:colon=v"])),
        ("name with space", cat(&[T, b"gt space=v"])),
        ("name leading space", cat(&[T, b" gt_lspace=v"])),
        ("name trailing space", cat(&[T, b"gt_tspace =v"])),
        ("name with ,", cat(&[T, b"gt,comma=v"])),
        ("name with quotes and brackets", cat(&[T, b"gt\"q[b]=v"])),
        ("name with backslash", cat(&[T, b"gt\\bs=v"])),
        ("name with tab", cat(&[T, b"gt\ttab=v"])),
        ("name with 0x7F", cat(&[T, b"gt\x7fdel=v"])),
        ("name non-ASCII UTF-8", cat(&[T, "gt_café=v".as_bytes()])),
        ("name non-UTF-8 byte", cat(&[T, b"gt_\xff=v"])),
        ("name 255 bytes", cat(&[T, &n255, b"=v"])),
        ("name 256 bytes", cat(&[T, &n256, b"=v"])),
        ("no = (text)", cat(&[T, b"gt_noeq"])),
        ("no = (binary)", cat(&[B, b"gt_noeqb"])),
        ("prefix only", T.to_vec()),
        (
            "wrong-case prefix",
            b"io.systemd.Credential:gt_case=v".to_vec(),
        ),
        (
            "prefix without colon",
            b"io.systemd.credentialgt_nocolon=v".to_vec(),
        ),
        (
            "binary prefix typo",
            b"io.systemd.credential.base64:gt_typo=QQ==".to_vec(),
        ),
        ("leading space before prefix", cat(&[b" ", T, b"gt_lsp=v"])),
        (
            "non-credential string",
            b"vmcreds ground truth: not a credential".to_vec(),
        ),
        (
            "vmm.notify_socket style",
            cat(&[T, b"vmm.notify_socket=vsock-stream:2:8888"]),
        ),
        ("duplicate: first (text)", cat(&[T, b"gt_dup=first"])),
        ("duplicate: second (text)", cat(&[T, b"gt_dup=second"])),
        ("duplicate: third (binary)", cat(&[B, b"gt_dup=dGhpcmQ="])),
        ("duplicate: binary first, invalid", cat(&[B, b"gt_dup2=QQ"])),
        (
            "duplicate: text after invalid binary",
            cat(&[T, b"gt_dup2=after-invalid"]),
        ),
        ("duplicate: binary then text", cat(&[B, b"gt_dup3=b25l"])),
        ("duplicate: text after binary", cat(&[T, b"gt_dup3=two"])),
    ]
}

/// The 300 small credentials and the filler of the `table32` boot; the filler makes the
/// Type 11 structure `target_raw` bytes long.
fn table32_inputs(target_raw: usize) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| {
            (
                format!("small #{i}"),
                format!("io.systemd.credential:gt_c{i:03}=v{i:03}").into_bytes(),
            )
        })
        .collect();
    // Structure = 5 (header) + sum(len + 1) + 1 (final NUL).
    let used: usize = 5 + v.iter().map(|(_, s)| s.len() + 1).sum::<usize>() + 1;
    let prefix = b"io.systemd.credential:gt_filler=";
    let fill = target_raw - used - 1 - prefix.len();
    let mut filler = prefix.to_vec();
    filler.extend(vec![b'f'; fill]);
    v.push(("filler".into(), filler));
    v
}

fn large_inputs(value_len: usize) -> Vec<(String, Vec<u8>)> {
    let mut big = b"io.systemd.credential:gt_big=".to_vec();
    big.extend(vec![b'b'; value_len]);
    vec![
        (
            "small before".into(),
            b"io.systemd.credential:gt_before=ok".to_vec(),
        ),
        (format!("text value of {value_len} bytes"), big),
        (
            "small after".into(),
            b"io.systemd.credential:gt_after=ok".to_vec(),
        ),
    ]
}

/// One ground-truth boot: its inputs and QEMU machine.
struct Boot {
    name: &'static str,
    machine: &'static str,
    mem_mib: u32,
    inputs: Vec<(String, Vec<u8>)>,
    /// When set, the inputs are not passed as `-smbios type=11,path=` strings: each of these
    /// hand-made structures is passed as `-smbios file=BLOB`, which QEMU copies into the
    /// table byte for byte (one structure per file, so QEMU's structure count stays right).
    /// `inputs` then lists every string of every structure, labelled with its structure.
    structures: Vec<RawStructure>,
}

/// A Type 11 structure made by hand, hostile in its header or its termination.
struct RawStructure {
    label: &'static str,
    /// The formatted-area length byte (5 is the only one systemd accepts).
    length: u8,
    /// The `count` byte (systemd ignores it; dmidecode trusts it).
    count: u8,
    strings: Vec<Vec<u8>>,
    /// Ends with the extra NUL that closes the string set; without it the kernel's walk runs
    /// on into the next structure.
    terminated: bool,
}

impl RawStructure {
    fn ok(label: &'static str, strings: Vec<Vec<u8>>) -> Self {
        RawStructure {
            label,
            length: 5,
            count: strings.len() as u8,
            strings,
            terminated: true,
        }
    }

    /// The structure's bytes with `handle`.
    fn bytes(&self, handle: u16) -> Vec<u8> {
        let mut b = vec![11, self.length];
        b.extend_from_slice(&handle.to_le_bytes());
        b.push(self.count);
        // A longer formatted area: filler bytes after the count.
        b.extend(std::iter::repeat(0xa5).take(usize::from(self.length).saturating_sub(5)));
        for s in &self.strings {
            b.extend_from_slice(s);
            b.push(0);
        }
        if self.terminated {
            if self.strings.is_empty() {
                b.push(0);
            }
            b.push(0);
        }
        b
    }
}

fn boots() -> Vec<Boot> {
    vec![
        Boot {
            name: "hostile",
            machine: "q35",
            mem_mib: 512,
            inputs: hostile_inputs()
                .into_iter()
                .map(|(l, s)| (l.to_string(), s))
                .collect(),
            structures: vec![],
        },
        Boot {
            name: "table32",
            machine: "q35,smbios-entry-point-type=32",
            mem_mib: 512,
            inputs: table32_inputs(65535 - TABLE_OVERHEAD_Q35_512M),
            structures: vec![],
        },
        Boot {
            name: "table32over",
            machine: "q35,smbios-entry-point-type=32",
            mem_mib: 512,
            inputs: table32_inputs(65535 - TABLE_OVERHEAD_Q35_512M + 1),
            structures: vec![],
        },
        Boot {
            name: "large200k",
            machine: "q35,smbios-entry-point-type=64",
            mem_mib: 512,
            inputs: large_inputs(200 * 1024),
            structures: vec![],
        },
        Boot {
            name: "large1m",
            machine: "q35,smbios-entry-point-type=64",
            mem_mib: 512,
            inputs: large_inputs(1024 * 1024),
            structures: vec![],
        },
        structure_boot("structs-several", several_structures()),
        structure_boot("structs-badlen", badlen_structures(false)),
        structure_boot("structs-badlen-first", badlen_structures(true)),
        structure_boot("structs-unterminated", unterminated_structures()),
    ]
}

fn structure_boot(name: &'static str, structures: Vec<RawStructure>) -> Boot {
    let inputs = structures
        .iter()
        .enumerate()
        .flat_map(|(i, st)| {
            st.strings.iter().enumerate().map(move |(j, s)| {
                (
                    format!("structure {i} ({}) string {j}", st.label),
                    s.clone(),
                )
            })
        })
        .collect();
    Boot {
        name,
        machine: "q35",
        mem_mib: 512,
        inputs,
        structures,
    }
}

/// Five Type 11 structures in one table: counts that disagree with the strings, one with no
/// strings, a name repeated across structures, and a name systemd refuses between good ones.
fn several_structures() -> Vec<RawStructure> {
    let mut low = RawStructure::ok(
        "count 1, three strings",
        vec![
            cat(&[T, b"gt_s1a=a"]),
            cat(&[T, b"gt_s1b=b"]),
            cat(&[T, b"gt_s1c=c"]),
        ],
    );
    low.count = 1;
    let mut high = RawStructure::ok(
        "count 9, two strings, the second repeats a name of structure 0",
        vec![cat(&[T, b"gt_s3a=a"]), cat(&[T, b"gt_s0a=second"])],
    );
    high.count = 9;
    vec![
        RawStructure::ok(
            "valid",
            vec![cat(&[T, b"gt_s0a=first"]), cat(&[B, b"gt_s0b=dHdv"])],
        ),
        low,
        RawStructure::ok("no strings", vec![]),
        high,
        RawStructure::ok(
            "a refused name between good ones",
            vec![
                cat(&[T, b"gt_s4a=a"]),
                cat(&[T, b"gt\x01ctl=v"]),
                cat(&[B, b"gt_s4c=QQ=="]),
            ],
        ),
    ]
}

/// A structure whose formatted length is 6, between (or before) valid ones: systemd stops
/// scanning at such an entry, so everything after it is lost.
fn badlen_structures(first: bool) -> Vec<RawStructure> {
    let mut bad = RawStructure::ok("length 6", vec![cat(&[T, b"gt_bl1=v"])]);
    bad.length = 6;
    let before = RawStructure::ok("valid, before", vec![cat(&[T, b"gt_bl0=v"])]);
    let after = RawStructure::ok("valid, after", vec![cat(&[T, b"gt_bl2=v"])]);
    if first {
        vec![bad, after]
    } else {
        vec![before, bad, after]
    }
}

/// A structure without its closing NUL: the kernel's walk takes the next structure's bytes
/// as more strings of this one.
fn unterminated_structures() -> Vec<RawStructure> {
    let mut open = RawStructure::ok("unterminated", vec![cat(&[T, b"gt_u1=v"])]);
    open.terminated = false;
    vec![
        RawStructure::ok("valid, before", vec![cat(&[T, b"gt_u0=v"])]),
        open,
        RawStructure::ok("valid, after", vec![cat(&[T, b"gt_u2=v"])]),
    ]
}

/// Runs the experiment for the generations in `flags`.
pub fn run(root: &Path, flags: &GroundTruth) -> Result<()> {
    crate::deps::ensure(false)?;
    let mirror = crate::mirror::resolve(flags.image.mirror.as_deref())?;
    let kernel = image::kernel(root)?;
    let out_dir = root.join("xtask/ground-truth");
    util::mkdirp(&out_dir)?;
    let generations = if flags.generations.is_empty() {
        image::GENERATIONS
            .iter()
            .map(|g| g.name.to_string())
            .collect()
    } else {
        flags.generations.clone()
    };
    for generation in &generations {
        let t = Instant::now();
        let base = image::systemd_base(root, generation, &mirror)?;
        let mut boots_json = Vec::new();
        let mut version = String::from("unknown");
        for boot in boots() {
            if !flags.boots.is_empty() && !flags.boots.iter().any(|b| b == boot.name) {
                continue;
            }
            let (v, j) = run_boot(root, &kernel, &base, &boot, flags.kvm)?;
            version = v;
            boots_json.push(j);
        }
        let short = version
            .split_whitespace()
            .nth(1)
            .unwrap_or("unknown")
            .to_string();
        let top = json!({
            "produced_utc": util::utc_now(),
            "kernel_package": kernel.package,
            "kernel_release": kernel.release,
            "qemu_version": qemu_version(),
        });
        let doc = json!({
            "schema": "vmcreds.ground-truth/1",
            "generation": generation,
            "systemd_version": version,
            "kernel_package": kernel.package,
            "kernel_release": kernel.release,
            "qemu_version": qemu_version(),
            "produced_utc": util::utc_now(),
            "produced_by": "cargo xtask ground-truth (xtask/src/ground_truth.rs)",
            "boots": boots_json,
        });
        let path = out_dir.join(format!("systemd-{short}.json"));
        let mut doc = doc;
        if let Some(boots) = doc["boots"].as_array_mut() {
            for b in boots {
                for k in PER_BOOT_FACTS {
                    if b.get(k).is_none() {
                        b[k] = top[*k].clone();
                    }
                }
            }
        }
        let doc = merge_boots(fs::read(&path).ok(), doc);
        fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")?;
        eprintln!(
            "xtask: ground truth {generation} ({version}) -> {} in {}",
            path.display(),
            util::secs(t.elapsed())
        );
    }
    Ok(())
}

/// Facts of a run that each boot carries, so that boots of different runs can share a file.
const PER_BOOT_FACTS: &[&str] = &[
    "produced_utc",
    "kernel_package",
    "kernel_release",
    "qemu_version",
];

/// `new` with the boots of `old` (an earlier file of the same systemd version) that `new`
/// did not run again, so `--boots NAME` adds to a file instead of replacing it. A boot keeps
/// the facts of its own run ([`PER_BOOT_FACTS`]).
fn merge_boots(old: Option<Vec<u8>>, mut new: Value) -> Value {
    let Some(old) = old.and_then(|b| serde_json::from_slice::<Value>(&b).ok()) else {
        return new;
    };
    let ran: Vec<Value> = new["boots"]
        .as_array()
        .map(|b| b.iter().map(|x| x["boot"].clone()).collect())
        .unwrap_or_default();
    let mut kept: Vec<Value> = old["boots"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|b| !ran.contains(&b["boot"]))
        .map(|mut b| {
            for k in PER_BOOT_FACTS {
                if b.get(k).is_none() {
                    b[k] = old[k].clone();
                }
            }
            b
        })
        .collect();
    if let Some(b) = new["boots"].as_array() {
        kept.extend(b.iter().cloned());
    }
    new["boots"] = json!(kept);
    new
}

/// The first line of `qemu-system-x86_64 --version`.
pub(crate) fn qemu_version() -> String {
    util::output(Command::new("qemu-system-x86_64").arg("--version"))
        .map(|s| s.lines().next().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// Boots once and returns (systemd version line, boot JSON).
fn run_boot(
    root: &Path,
    kernel: &image::Kernel,
    base: &image::BaseImage,
    boot: &Boot,
    kvm: bool,
) -> Result<(String, Value)> {
    let run_dir = root.join("target/vm/runs").join(format!(
        "{}-gt-{}-{}",
        util::stamp(),
        base.generation,
        boot.name
    ));
    util::mkdirp(&run_dir)?;
    let sdir = run_dir.join("smbios");
    util::mkdirp(&sdir)?;
    let mut extra = Vec::new();
    if boot.structures.is_empty() {
        for (i, (_, s)) in boot.inputs.iter().enumerate() {
            if s.contains(&0) {
                bail!("ground-truth input {i} contains NUL, which path= cannot carry");
            }
            let p = sdir.join(format!("{i:03}"));
            fs::write(&p, s)?;
            extra.push("-smbios".into());
            extra.push(format!("type=11,path={}", vm::qemu_escape(&p.to_string_lossy())).into());
        }
    } else {
        for (i, st) in boot.structures.iter().enumerate() {
            let p = sdir.join(format!("structure-{i}.bin"));
            fs::write(&p, st.bytes(STRUCTURE_HANDLE_BASE + i as u16))?;
            extra.push("-smbios".into());
            extra.push(format!("file={}", vm::qemu_escape(&p.to_string_lossy())).into());
        }
    }
    let mut o = Overlay::default();
    crate::probe::add_probe(&mut o, "ground-truth");
    let overlay = run_dir.join("overlay.cpio");
    o.pack(&run_dir.join("overlay"), &overlay)?;
    let initrd = run_dir.join("initrd.img");
    image::concat_initrd(&[&base.cpio, &kernel.modules_cpio, &overlay], &initrd)?;
    let spec = VmSpec {
        name: format!("gt-{}-{}", base.generation, boot.name),
        kernel: kernel.vmlinuz.clone(),
        initrd: initrd.clone(),
        append: "systemd.log_level=debug printk.devkmsg=on log_buf_len=16M systemd.show_status=0"
            .into(),
        machine: boot.machine.into(),
        mem_mib: boot.mem_mib,
        kvm,
        extra,
        report_socket: None,
        run_dir: run_dir.clone(),
    };
    let mut refusal = Value::Null;
    if boot.name == "table32" {
        refusal = qemu_refusal_one_byte_over(&spec, &run_dir)?;
    }
    eprintln!(
        "xtask: booting {} ({} strings)",
        spec.name,
        boot.inputs.len()
    );
    let mut r = vm::boot(&spec, &[], Duration::from_secs(600))?;
    if !vm::probe_complete(&r.probe) {
        bail!(
            "{}: the probe did not finish (qemu {}, {}); console log {}",
            spec.name,
            r.status,
            r.qemu_log.trim(),
            spec.console_log().display()
        );
    }
    let secs = vm::probe_sections(&r.probe);
    let one = |n: &str| {
        vm::section(&secs, n)
            .map(|l| l.join("\n"))
            .unwrap_or_default()
    };
    let version = one("systemd-version");
    let mut imported = Vec::new();
    for line in vm::section(&secs, "creds").unwrap_or(&[]) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 {
            continue;
        }
        let name = unhex(f[0]).unwrap_or_default();
        imported.push(json!({
            "name_hex": f[0],
            "name": String::from_utf8_lossy(&name),
            "size": f[1].parse::<u64>().unwrap_or(0),
            "mode": f[2],
            "owner": f[3],
            "sha256": f[4],
        }));
    }
    let journal: Vec<String> = vm::section(&secs, "journal-hex")
        .unwrap_or(&[])
        .iter()
        .filter_map(|h| unhex(h))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect();
    let inputs: Vec<Value> = boot
        .inputs
        .iter()
        .map(|(label, s)| classify(label, s, &imported, &journal, boot.name == "hostile"))
        .collect();
    let raw: Vec<Value> = vm::section(&secs, "type11-raw")
        .unwrap_or(&[])
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            json!({"entry": f.first(), "size": f.get(1).and_then(|s| s.parse::<u64>().ok()), "sha256": f.get(2),
                   "base64": f.get(3).filter(|b| **b != "-")})
        })
        .collect();
    let (expected_raw_len, note, structures) = if boot.structures.is_empty() {
        (
            Some(5 + boot.inputs.iter().map(|(_, s)| s.len() + 1).sum::<usize>() + 1),
            "one -smbios type=11,path=FILE per input, in input order",
            Value::Null,
        )
    } else {
        let list: Vec<Value> = boot
            .structures
            .iter()
            .enumerate()
            .map(|(i, st)| {
                json!({
                    "label": st.label,
                    "length": st.length,
                    "count": st.count,
                    "strings": st.strings.len(),
                    "terminated": st.terminated,
                    "hex": hex(&st.bytes(STRUCTURE_HANDLE_BASE + i as u16)),
                })
            })
            .collect();
        (
            None,
            "one -smbios file=BLOB per structure (the bytes in structures[].hex), in order",
            json!(list),
        )
    };
    let dmi_table = one("dmi-table");
    let doc = json!({
        "boot": boot.name,
        "produced_utc": util::utc_now(),
        "machine": boot.machine,
        "memory_mib": boot.mem_mib,
        "kernel_cmdline": one("cmdline"),
        "boot_seconds": r.elapsed.as_secs_f64(),
        "qemu_args_note": note,
        "structures": structures,
        "dmi_table_base64": if dmi_table.trim().is_empty() || dmi_table.trim() == "-" { Value::Null } else { json!(dmi_table.trim()) },
        "entry_point_hex": one("entry-point"),
        "dmi_table_size": one("dmi-table-size").trim().parse::<u64>().ok(),
        "kernel_dmi_lines": vm::section(&secs, "kernel-dmi").unwrap_or(&[]),
        "type11_expected_raw_size": expected_raw_len,
        "type11_raw": raw,
        "qemu_refusal_one_byte_over": refusal,
        "credentials_mount": one("mount"),
        "credentials_dir": one("dir"),
        "systemd_creds_list": one("creds-list"),
        "imported": imported,
        "journal": journal,
        "inputs": inputs,
    });
    r.guard.ok = true;
    Ok((version, doc))
}

/// Starts QEMU paused with one more filler byte than the `table32` boot and records whether it
/// refuses (newer QEMUs: `SMBIOS 2.1 table length ... exceeds 65535`; QEMU 7.2 starts).
fn qemu_refusal_one_byte_over(spec: &VmSpec, run_dir: &Path) -> Result<Value> {
    let inputs = table32_inputs(65535 - TABLE_OVERHEAD_Q35_512M + 1);
    let dir = run_dir.join("smbios-over");
    util::mkdirp(&dir)?;
    let mut extra = Vec::new();
    for (i, (_, s)) in inputs.iter().enumerate() {
        let p = dir.join(format!("{i:03}"));
        fs::write(&p, s)?;
        extra.push("-smbios".into());
        extra.push(format!("type=11,path={}", p.display()).into());
    }
    let mut over = spec.clone();
    over.extra = extra;
    over.name = format!("{}-over", spec.name);
    over.run_dir = run_dir.join("over");
    util::mkdirp(&over.run_dir)?;
    let mut args = over.qemu_args();
    args.push("-S".into());
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(&args);
    let mut g = vm::Guarded::spawn(&over.name, &mut cmd, &over.run_dir.join("qemu.log"), vec![])?;
    g.ok = true;
    // A refusal exits within a second; a paused VM keeps running and is killed at the deadline.
    let exited = util::wait_until(Duration::from_secs(5), || matches!(g.poll(), Ok(Some(_))));
    let log = fs::read_to_string(over.run_dir.join("qemu.log")).unwrap_or_default();
    g.kill();
    Ok(json!({
        "type11_raw_size": 65535 - TABLE_OVERHEAD_Q35_512M + 1,
        "qemu_exited": exited,
        "qemu_message": log.trim(),
    }))
}

/// What happened to one input string: imported (as which file), shadowed, or not imported.
fn classify(
    label: &str,
    s: &[u8],
    imported: &[Value],
    journal: &[String],
    with_hex: bool,
) -> Value {
    let (kind, rest) = if let Some(r) = s.strip_prefix(B) {
        ("binary", Some(r))
    } else if let Some(r) = s.strip_prefix(T) {
        ("text", Some(r))
    } else {
        ("not-a-credential", None)
    };
    let mut v = json!({
        "label": label,
        "kind": kind,
        "string_len": s.len(),
        "string_sha256": sha256_hex(s),
    });
    if with_hex {
        v["string_hex"] = json!(hex(s));
    }
    let Some(rest) = rest else {
        v["outcome"] = json!("not-imported");
        v["journal"] = json!(journal_mentions(journal, s));
        return v;
    };
    let Some(eq) = rest.iter().position(|&b| b == b'=') else {
        v["outcome"] = json!("not-imported");
        v["journal"] = json!(journal
            .iter()
            .filter(|l| l.contains("lacks '='"))
            .cloned()
            .collect::<Vec<_>>());
        return v;
    };
    let name = &rest[..eq];
    let value = &rest[eq + 1..];
    v["name_hex"] = json!(hex(name));
    let expected: Option<Vec<u8>> = if kind == "binary" {
        // Both alphabets: what any systemd version imports decodes here.
        vmcreds_common::base64::decode_systemd(
            value,
            vmcreds_common::base64::Alphabet::StandardAndUrlSafe,
            0,
        )
        .ok()
        .map(|v| v.expose().to_vec())
    } else {
        Some(value.to_vec())
    };
    let file = imported.iter().find(|f| f["name_hex"] == json!(hex(name)));
    match (file, expected) {
        (Some(f), Some(exp))
            if f["sha256"] == json!(sha256_hex(&exp)) && f["size"] == json!(exp.len()) =>
        {
            v["outcome"] = json!("imported");
            v["imported_as"] = f.clone();
        }
        (Some(f), _) => {
            // A file of that name exists but holds other bytes: an earlier string won, or
            // systemd decoded/truncated differently than a lenient decoder would.
            v["outcome"] = json!("name-present-other-content");
            v["file"] = f.clone();
        }
        (None, _) => v["outcome"] = json!("not-imported"),
    }
    let needle = format!("'{}'", String::from_utf8_lossy(name));
    let mut lines: Vec<String> = if name.is_empty() {
        journal
            .iter()
            .filter(|l| l.contains("''"))
            .cloned()
            .collect()
    } else {
        journal
            .iter()
            .filter(|l| l.contains(&needle))
            .cloned()
            .collect()
    };
    lines.extend(journal_mentions(journal, s));
    lines.dedup();
    v["journal"] = json!(lines);
    v
}

/// Journal lines that quote the whole string (systemd's debug line for non-credential strings).
fn journal_mentions(journal: &[String], s: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(s);
    if text.len() < 8 {
        return Vec::new();
    }
    journal
        .iter()
        .filter(|l| l.contains(text.as_ref()))
        .cloned()
        .collect()
}

/// Paths of the fixture files currently in the repo.
pub fn fixtures(root: &Path) -> Vec<PathBuf> {
    fs::read_dir(root.join("xtask/ground-truth"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_have_no_nul_and_table32_is_exact() {
        for (l, s) in hostile_inputs() {
            assert!(!s.contains(&0), "{l}");
        }
        let v = table32_inputs(65535 - TABLE_OVERHEAD_Q35_512M);
        let raw: usize = 5 + v.iter().map(|(_, s)| s.len() + 1).sum::<usize>() + 1;
        assert_eq!(raw + TABLE_OVERHEAD_Q35_512M, 65535);
    }

    #[test]
    fn raw_structures_have_the_bytes_they_claim() {
        let ok = RawStructure::ok("x", vec![b"ab".to_vec()]);
        assert_eq!(ok.bytes(0xe01), [11, 5, 0x01, 0x0e, 1, b'a', b'b', 0, 0]);
        let empty = RawStructure::ok("none", vec![]);
        assert_eq!(empty.bytes(0xe00), [11, 5, 0x00, 0x0e, 0, 0, 0]);
        let mut long = RawStructure::ok("len 6", vec![b"a".to_vec()]);
        long.length = 6;
        assert_eq!(long.bytes(0xe00), [11, 6, 0x00, 0x0e, 1, 0xa5, b'a', 0, 0]);
        let mut open = RawStructure::ok("open", vec![b"a".to_vec()]);
        open.terminated = false;
        assert_eq!(open.bytes(0xe00), [11, 5, 0x00, 0x0e, 1, b'a', 0]);
        for b in boots().iter().filter(|b| !b.structures.is_empty()) {
            let strings: usize = b.structures.iter().map(|s| s.strings.len()).sum();
            assert_eq!(b.inputs.len(), strings, "{}", b.name);
        }
    }

    #[test]
    fn merging_keeps_boots_not_run_again() {
        let old = json!({"produced_utc": "then", "boots": [{"boot": "a", "v": 1}, {"boot": "b", "v": 1}]});
        let new =
            json!({"produced_utc": "now", "boots": [{"boot": "b", "v": 2}, {"boot": "c", "v": 2}]});
        let m = merge_boots(Some(serde_json::to_vec(&old).unwrap()), new.clone());
        let boots = m["boots"].as_array().unwrap();
        let names: Vec<&str> = boots.iter().map(|b| b["boot"].as_str().unwrap()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(boots[0]["produced_utc"], "then");
        assert_eq!(boots[0]["kernel_package"], serde_json::Value::Null);
        assert_eq!(boots[1]["v"], 2);
        assert_eq!(merge_boots(None, new.clone()), new);
        assert_eq!(merge_boots(Some(b"not json".to_vec()), new.clone()), new);
    }

    #[test]
    fn classify_matches_imported_file_by_digest() {
        let s = cat(&[B, b"x=aGk="]);
        let imported = vec![json!({"name_hex": hex(b"x"), "size": 2, "sha256": sha256_hex(b"hi")})];
        let v = classify("t", &s, &imported, &[], false);
        assert_eq!(v["outcome"], "imported");
        let v = classify("t", &cat(&[T, b"x=other"]), &imported, &[], false);
        assert_eq!(v["outcome"], "name-present-other-content");
        let v = classify("t", &cat(&[T, b"y=1"]), &imported, &[], false);
        assert_eq!(v["outcome"], "not-imported");
    }

    #[test]
    fn fixtures_parse_as_json() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let systemd = fixtures(root).into_iter().filter(|f| {
            f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("systemd-"))
        });
        let mut n = 0;
        for f in systemd {
            let v: Value = serde_json::from_slice(&fs::read(&f).unwrap()).unwrap();
            assert_eq!(v["schema"], "vmcreds.ground-truth/1", "{}", f.display());
            n += 1;
        }
        assert!(n >= 4, "{n} systemd ground-truth files");
    }
}
