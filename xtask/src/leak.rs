//! The secret-leak scan of a VM run (issue 8): every artifact a run leaves
//! behind, except the intended delivery and the harness's own debug dump, must
//! be free of every secret's bytes in raw, base64 and hex form.
//!
//! Scanned: the host's argv as run (`host-argv.txt`, QEMU's argv included),
//! QEMU's and the host's stderr (`qemu.log`), the guest console (`console.log`,
//! where systemd and `vmcreds-check.service` print), `collect`'s verdict and
//! stderr, the report and the manifest, and the probe's sections that carry
//! the guest's journal and the check's output. Not scanned: `credentials/`
//! (the test's own secret files), `overlay/` and the images, and the probe's
//! `type11-raw` and `dmi-table` sections, which dump the raw entry and the
//! table on purpose so a failing run can be debugged.

use std::fs;
use std::path::Path;

/// A secret shorter than this is not scanned for: a short value (e.g. `ab`)
/// occurs by chance in any log.
pub const MIN_SECRET_LEN: usize = 8;

/// The files of a run directory that must be free of secrets.
const SCANNED: &[&str] = &[
    "host-argv.txt",
    "qemu.log",
    "console.log",
    "collect.json",
    "collect.err",
    "report.json",
    "manifest.json",
];

/// The probe sections that dump bytes on purpose.
const PROBE_DEBUG_SECTIONS: &[&str] = &["type11-raw", "dmi-table"];

/// Scans `dir` for `secrets`; returns one line per finding (file, form,
/// offset: never the bytes).
pub fn scan_run_dir(dir: &Path, secrets: &[&[u8]]) -> Vec<String> {
    let forms = forms(secrets);
    let mut findings = Vec::new();
    for name in SCANNED {
        if let Ok(bytes) = fs::read(dir.join(name)) {
            findings.extend(scan(name, &bytes, &forms));
        }
    }
    if let Ok(probe) = fs::read(dir.join("probe.log")) {
        findings.extend(scan(
            "probe.log",
            &probe_without_debug_dumps(&probe),
            &forms,
        ));
    }
    findings
}

/// How [`scan_tree`] treats one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treat {
    /// Every byte is scanned.
    Whole,
    /// A probe log: scanned without its [`PROBE_DEBUG_SECTIONS`].
    Probe,
    /// Not scanned (the intended delivery, or a debug dump of the raw table).
    Skip,
}

/// Scans every regular file under `dir` (relative path given to `treat`) for `secrets`;
/// returns the findings and how many files were scanned.
pub fn scan_tree(
    dir: &Path,
    secrets: &[&[u8]],
    treat: impl Fn(&str) -> Treat,
) -> (Vec<String>, usize) {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, std::path::PathBuf)>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(&p, base, out),
                Ok(t) if t.is_file() => {
                    let rel = p.strip_prefix(base).unwrap_or(&p).display().to_string();
                    out.push((rel, p));
                }
                _ => {}
            }
        }
    }
    let forms = forms(secrets);
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort();
    let (mut findings, mut scanned) = (Vec::new(), 0);
    for (rel, path) in files {
        let how = treat(&rel);
        if how == Treat::Skip {
            continue;
        }
        let Ok(bytes) = fs::read(&path) else { continue };
        let bytes = match how {
            Treat::Probe => probe_without_debug_dumps(&bytes),
            _ => bytes,
        };
        findings.extend(scan(&rel, &bytes, &forms));
        scanned += 1;
    }
    (findings, scanned)
}

/// (label, needle) for each secret long enough to scan for.
fn forms(secrets: &[&[u8]]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, s) in secrets.iter().enumerate() {
        if s.len() < MIN_SECRET_LEN {
            continue;
        }
        out.push((format!("secret #{i} raw"), s.to_vec()));
        out.push((
            format!("secret #{i} base64"),
            vmcreds_common::base64::encode(s).expose().to_vec(),
        ));
        out.push((
            format!("secret #{i} hex"),
            vmcreds_common::digest::hex(s).into_bytes(),
        ));
    }
    out
}

fn scan(file: &str, bytes: &[u8], forms: &[(String, Vec<u8>)]) -> Vec<String> {
    forms
        .iter()
        .filter_map(|(label, needle)| {
            bytes
                .windows(needle.len())
                .position(|w| w == needle.as_slice())
                .map(|off| format!("{label} found in {file} at offset {off}"))
        })
        .collect()
}

/// The probe log without the sections listed in [`PROBE_DEBUG_SECTIONS`].
fn probe_without_debug_dumps(probe: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(probe.len());
    let mut skipping = false;
    for line in probe.split_inclusive(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"@@SECTION ") {
            let name = String::from_utf8_lossy(rest);
            skipping = PROBE_DEBUG_SECTIONS.contains(&name.trim());
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_finds_every_form_and_skips_only_the_debug_dump() {
        let dir = std::env::temp_dir().join(format!("vmcreds-leak-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let secret = b"CANARY-leak-0123456789";
        let b64 = vmcreds_common::base64::encode(secret).expose().to_vec();
        let hex = vmcreds_common::digest::hex(secret);
        fs::write(
            dir.join("console.log"),
            [b"boot...".as_slice(), secret].concat(),
        )
        .unwrap();
        fs::write(
            dir.join("report.json"),
            [b"{\"x\":\"".as_slice(), &b64, b"\"}"].concat(),
        )
        .unwrap();
        fs::write(dir.join("qemu.log"), hex.as_bytes()).unwrap();
        let probe = [
            b"@@SECTION type11-raw\n".as_slice(),
            &b64,
            b"\n@@SECTION journal\nclean\n",
        ]
        .concat();
        fs::write(dir.join("probe.log"), probe).unwrap();
        let found = scan_run_dir(&dir, &[secret, b"short"]);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().any(|f| f.contains("raw found in console.log")));
        assert!(found
            .iter()
            .any(|f| f.contains("base64 found in report.json")));
        assert!(found.iter().any(|f| f.contains("hex found in qemu.log")));
        assert!(
            found.iter().all(|f| !f.contains("CANARY")),
            "findings never quote bytes"
        );
    }

    #[test]
    fn test_a_tree_is_scanned_file_by_file_as_told() {
        let d = tempfile::tempdir().unwrap();
        let secret = b"CANARY-tree-0123456789";
        fs::create_dir_all(d.path().join("procs/1")).unwrap();
        fs::write(d.path().join("procs/1/7.cmdline"), secret).unwrap();
        fs::write(d.path().join("procs/1/8.cmdline"), b"clean").unwrap();
        fs::write(
            d.path().join("inner-probe.log"),
            [
                b"@@SECTION dmi-table
"
                .as_slice(),
                secret,
            ]
            .concat(),
        )
        .unwrap();
        fs::write(d.path().join("delivery"), secret).unwrap();
        let treat = |rel: &str| match rel {
            "delivery" => Treat::Skip,
            "inner-probe.log" => Treat::Probe,
            _ => Treat::Whole,
        };
        let (found, scanned) = scan_tree(d.path(), &[secret], treat);
        assert_eq!(scanned, 3);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("raw found in procs/1/7.cmdline"),
            "{found:?}"
        );
    }

    #[test]
    fn test_probe_dump_is_scanned_outside_its_section() {
        let probe = b"@@SECTION type11-raw\nSECRET\n@@SECTION journal\nSECRET again\n";
        let kept = probe_without_debug_dumps(probe);
        assert_eq!(kept, b"@@SECTION journal\nSECRET again\n");
    }
}
