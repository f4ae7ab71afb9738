//! `cargo xtask bench`: the figures the README quotes, each beside its peer
//! and its target, from one run on this machine. Not timed tests: no test
//! passes or fails on a number. The bench itself prints a table with a last
//! column saying `met` or `MISSED` for each target, lists what was missed,
//! and exits non-zero when anything was.
//!
//! 1. `vmcreds-guest check --root TREE` on a captured tree with 255
//!    credentials (~61 KiB Type 11 structure) versus `dmidecode --from-dump
//!    FILE -t 11` on the same table: whole-process wall time, median of
//!    alternating runs (one of each per round, so that both see the same
//!    machine), and the ratio (target ≤ 1.0×). The same rounds run the
//!    check's floor, `guest/examples/floor.rs`: a static binary like the
//!    guest that makes only the system calls a check cannot do without
//!    (the Type 11 entry, then `openat`, `fstat`, `read`, `close` per
//!    imported file) and nothing else, so the table shows how much of the
//!    check is process start and kernel, which no change to the check can
//!    take away.
//! 2. System calls per imported credential file (target ≤ 4: `openat`,
//!    `fstat`, `read`, `close`): `strace -f -c` counts every system call of
//!    a check on the tree, and of a check on the same tree with only
//!    [`FEW_IMPORTED`] files in `/run/credentials/@system`; the difference,
//!    per file, is what one more imported file costs, allocator calls
//!    (`mmap`, `brk`) included.
//! 3. The digest path on a 1 MiB credential (`common/benches/digest.rs`)
//!    versus `sha256sum` of 256 MiB (target ≥ 1.5 GB/s).
//! 4. The static guest binary's size (target ≤ 1 MB, 1 000 000 bytes) and a
//!    check's peak RSS (target ≤ 4 MiB + payload), from `/usr/bin/time -f %M`.
//! 5. In real guests (the `reference` scenario, TCG): `vmcreds-check.service`'s
//!    activation time as systemd recorded it, and `vmcreds-guest check` beside
//!    `systemd-creds --system list` run the same way by the probe (target: no
//!    slower; `--no-vm` skips this part).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use vmcreds_common::name::{CredentialName, NameRule};
use vmcreds_common::oem::{self, Encoding};
use vmcreds_common::type11;

/// Credentials in the captured tree.
const CREDENTIALS: usize = 255;
/// Bytes of each value: 150 bytes → 200 base64 characters → ~240-byte strings.
const VALUE_BYTES: usize = 150;
/// Whole-process runs per command.
const RUNS: usize = 200;
/// Imported files in the second tree of the system-call count.
const FEW_IMPORTED: usize = 5;
/// Most system calls one more imported credential file may cost.
const SYSCALLS_PER_FILE_MAX: f64 = 4.0;
/// Largest static guest binary, in bytes (1 MB).
const BINARY_MAX: u64 = 1_000_000;
/// Peak RSS allowed besides the payload, in KiB.
const RSS_BASE_KIB: u64 = 4096;

/// The targets, as the table shows them, and which were missed.
#[derive(Default)]
struct Targets {
    missed: Vec<String>,
}

impl Targets {
    /// `met` or `**MISSED**` for the table; remembers a miss.
    fn judge(&mut self, what: &str, met: bool) -> &'static str {
        if met {
            "met"
        } else {
            self.missed.push(what.to_owned());
            "**MISSED**"
        }
    }
}

/// Runs every benchmark, prints the table, and fails when a target is missed.
pub fn run(root: &Path, vm: bool) -> Result<ExitCode> {
    crate::deps::ensure(false)?;
    for (tool, package) in [
        ("dmidecode", "dmidecode"),
        ("sha256sum", "coreutils"),
        ("strace", "strace"),
    ] {
        if !crate::util::have(tool) {
            bail!("{tool} is needed for the comparison: apt-get install {package}");
        }
    }
    let guest = crate::image::guest_binary(root)?;
    let floor = floor_binary(root)?;
    let dir = root.join("target/bench");
    let tree = capture_tree(&dir.join("tree"), &dir.join("dmi-table.bin"), CREDENTIALS)?;
    let few = capture_tree(
        &dir.join("tree-few"),
        &dir.join("dmi-table-few.bin"),
        FEW_IMPORTED,
    )?;
    let mut targets = Targets::default();

    println!(
        "vmcreds benchmarks ({} credentials, {} runs each)",
        CREDENTIALS, RUNS
    );
    println!("machine: {}", cpu_model());

    // 1. check vs dmidecode, alternating.
    let check_cmd = || {
        let mut c = Command::new(&guest);
        c.args(["check", "--root"])
            .arg(&tree.root)
            .arg("--json")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let dmi_cmd = || {
        let mut c = Command::new("dmidecode");
        c.arg("--from-dump")
            .arg(&tree.dump)
            .args(["-t", "11"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let floor_cmd = || {
        let mut c = Command::new(&floor);
        c.arg(&tree.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let [check, dmi, bare] = median_wall_alternating([check_cmd(), dmi_cmd(), floor_cmd()])?;
    let ratio = check / dmi;
    println!();
    println!("| what | vmcreds | peer | ratio | target | |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| whole-process wall time, median of {RUNS} alternating runs | `vmcreds-guest check --root` {:.2} ms | `dmidecode --from-dump -t 11` {:.2} ms | {ratio:.2}× | ≤ 1.0× | {} |",
        check * 1e3,
        dmi * 1e3,
        targets.judge("check vs dmidecode", ratio <= 1.0),
    );
    println!(
        "| its floor: process start and only the system calls a check cannot do without (`guest/examples/floor.rs`, same rounds) | {:.2} ms | `dmidecode` {:.2} ms | {:.2}× | | |",
        bare * 1e3,
        dmi * 1e3,
        bare / dmi,
    );

    // 2. system calls per imported file.
    let calls_all = syscalls(&guest, &tree.root, &dir.join("strace-all.txt"))?;
    let calls_few = syscalls(&guest, &few.root, &dir.join("strace-few.txt"))?;
    let per_file = per_file(calls_all, calls_few);
    println!(
        "| system calls per imported credential file (`strace -f -c`: {calls_all} with {CREDENTIALS} files, {calls_few} with {FEW_IMPORTED}) | {per_file:.2} | | | ≤ {SYSCALLS_PER_FILE_MAX:.0} | {} |",
        targets.judge("system calls per file", per_file <= SYSCALLS_PER_FILE_MAX),
    );

    // 3. digest throughput vs sha256sum, and the CPU's SHA-NI limit as
    // OpenSSL reaches it (when openssl is installed).
    let digest = digest_throughput(root)?;
    let sha256sum = sha256sum_throughput(&dir)?;
    let openssl = openssl_sha256_throughput().ok();
    println!(
        "| SHA-256 of a 1 MiB credential | {:.2} GB/s (hmac-sha256 {:.2} GB/s) | `sha256sum` 256 MiB {:.2} GB/s{} | {:.2}× sha256sum | ≥ 1.5 GB/s | {} |",
        digest.0 / 1e3,
        digest.1 / 1e3,
        sha256sum,
        openssl
            .map(|g| format!("; `openssl speed -evp sha256` (SHA-NI) {g:.2} GB/s"))
            .unwrap_or_default(),
        digest.0 / 1e3 / sha256sum,
        targets.judge("digest throughput", digest.0 / 1e3 >= 1.5),
    );

    // 4. size and RSS.
    let size = fs::metadata(&guest)?.len();
    let rss_kib = peak_rss_kib(&guest, &tree.root)?;
    let payload_kib = (tree.payload_bytes / 1024) as u64;
    println!(
        "| static guest binary | {size} bytes ({:.0} KiB) | | | ≤ 1 000 000 bytes | {} |",
        size as f64 / 1024.0,
        targets.judge("binary size", size <= BINARY_MAX),
    );
    println!(
        "| peak RSS of a check | {rss_kib} KiB (payload {payload_kib} KiB) | | | ≤ {RSS_BASE_KIB} KiB + payload | {} |",
        targets.judge("peak RSS", rss_kib <= RSS_BASE_KIB + payload_kib),
    );
    if vm {
        in_guests(root, &mut targets)?;
    }
    println!();
    println!(
        "tree: {}  dump: {}  strace: {}",
        tree.root.display(),
        tree.dump.display(),
        dir.join("strace-all.txt").display()
    );
    if targets.missed.is_empty() {
        println!("every target met");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("targets MISSED: {}", targets.missed.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

/// Builds `guest/examples/floor.rs` as the guest is built (static musl,
/// release) and returns its path.
fn floor_binary(root: &Path) -> Result<PathBuf> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "x86_64-unknown-linux-musl",
            "-p",
            "vmcreds-guest",
            "--example",
            "floor",
        ])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("building guest/examples/floor.rs failed: {status}");
    }
    let p = root.join("target/x86_64-unknown-linux-musl/release/examples/floor");
    if !p.exists() {
        bail!("cargo build left no {}", p.display());
    }
    Ok(p)
}

/// Every system call of one check on `tree` (`strace -f -c`, written to
/// `out`).
fn syscalls(guest: &Path, tree: &Path, out: &Path) -> Result<u64> {
    let status = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(out)
        .arg(guest)
        .args(["check", "--root"])
        .arg(tree)
        .arg("--json")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if status.code().is_none() {
        bail!("strace of a check died: {status}");
    }
    let text = fs::read_to_string(out)?;
    strace_total(&text).with_context(|| format!("no total in {}: {text}", out.display()))
}

/// The `calls` column of the `total` line of `strace -c` output.
fn strace_total(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_end().ends_with("total"))?;
    // % time, seconds, usecs/call, calls, [errors,] "total"
    line.split_whitespace().nth(3)?.parse().ok()
}

/// What one more imported file costs, from the counts with all and with a
/// few files.
fn per_file(all: u64, few: u64) -> f64 {
    (all as f64 - few as f64) / (CREDENTIALS - FEW_IMPORTED) as f64
}

/// Part 5: boots the reference scenario per generation and reads the probe's
/// `timing` section.
fn in_guests(root: &Path, targets: &mut Targets) -> Result<()> {
    let env = crate::test::prepare(root, false, None)?;
    println!();
    println!("| in a TCG guest (reference scenario) | `vmcreds-check.service` activation | `vmcreds-guest check`, median of 5 | `systemd-creds --system list`, median of 5 | check ≤ list |");
    println!("|---|---|---|---|---|");
    for generation in ["bookworm", "trixie"] {
        let (outcome, dir) = crate::test::run_scenario(&env, "reference", generation)?;
        if !matches!(outcome, crate::test::Outcome::Pass) {
            bail!(
                "reference scenario on {generation} did not pass; logs in {}",
                dir.display()
            );
        }
        let probe = fs::read(dir.join("probe.log"))?;
        let sections = crate::vm::probe_sections(&probe);
        let timing = sections
            .iter()
            .find(|(n, _)| n == "timing")
            .map(|(_, l)| l.clone())
            .with_context(|| format!("no timing section in {}", dir.join("probe.log").display()))?;
        let t = parse_timing(&timing)?;
        println!(
            "| {generation} | {:.1} ms | {:.1} ms | {:.1} ms | {} |",
            t.activation_us as f64 / 1e3,
            t.check_us as f64 / 1e3,
            t.creds_list_us as f64 / 1e3,
            targets.judge(
                &format!("check vs systemd-creds on {generation}"),
                t.check_us <= t.creds_list_us
            ),
        );
    }
    Ok(())
}

/// What the probe's `timing` section says, in microseconds.
#[derive(Debug, PartialEq)]
struct Timing {
    activation_us: u64,
    check_us: u64,
    creds_list_us: u64,
}

fn parse_timing(lines: &[String]) -> Result<Timing> {
    let field = |key: &str| -> Option<u64> {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('=')?.trim().parse().ok())
    };
    let (start, end) = match (
        field("InactiveExitTimestampMonotonic"),
        field("ActiveEnterTimestampMonotonic"),
    ) {
        (Some(s), Some(e)) if e >= s && s > 0 => (s, e),
        _ => bail!("the probe recorded no activation timestamps: {lines:?}"),
    };
    let mut list = Vec::new();
    let mut check = Vec::new();
    for l in lines {
        let mut w = l.split_whitespace();
        if w.next() != Some("run") {
            continue;
        }
        let a = w.next().and_then(|v| v.parse::<u64>().ok());
        let b = w.next().and_then(|v| v.parse::<u64>().ok());
        if let (Some(a), Some(b)) = (a, b) {
            list.push(a);
            check.push(b);
        }
    }
    if list.is_empty() {
        bail!("the probe recorded no timed runs: {lines:?}");
    }
    let median = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    Ok(Timing {
        activation_us: end - start,
        check_us: median(&mut check),
        creds_list_us: median(&mut list),
    })
}

struct Tree {
    root: PathBuf,
    dump: PathBuf,
    payload_bytes: usize,
}

/// Builds a captured guest tree at `root` whose SMBIOS table carries
/// [`CREDENTIALS`] credentials, the first `imported` of which are in
/// `/run/credentials/@system`, and the dmidecode dump of the table at `dump`.
fn capture_tree(root: &Path, dump: &Path, imported: usize) -> Result<Tree> {
    let root = root.to_owned();
    if root.exists() {
        // Files are 0400 and directories 0700; we are the owner, so this works.
        fs::remove_dir_all(&root).with_context(|| format!("could not clear {}", root.display()))?;
    }
    let creds = root.join("run/credentials/@system");
    let entries = root.join("sys/firmware/dmi/entries/11-0");
    let tables = root.join("sys/firmware/dmi/tables");
    for d in [&creds, &entries, &tables, &root.join("proc")] {
        fs::create_dir_all(d)?;
    }
    fs::write(root.join("proc/cmdline"), "console=ttyS0 quiet\n")?;

    let mut strings = Vec::new();
    let mut payload = 0;
    let mut x: u32 = 0x1234_5678;
    for i in 0..CREDENTIALS {
        let value: Vec<u8> = (0..VALUE_BYTES)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let name = CredentialName::parse(&format!("BENCH_{i:03}"), NameRule::Portable)?;
        strings.push(oem::encode(&name, &value, Encoding::Binary)?);
        if i >= imported {
            continue;
        }
        let file = creds.join(name.as_str());
        fs::write(&file, &value)?;
        fs::set_permissions(&file, fs::Permissions::from_mode(0o400))?;
        payload += value.len();
    }
    fs::set_permissions(&creds, fs::Permissions::from_mode(0o700))?;
    let refs: Vec<&[u8]> = strings.iter().map(|s| s.expose()).collect();
    let oem11 = type11::build(0x0e00, &refs);
    fs::write(entries.join("raw"), &oem11)?;

    // A minimal table: Type 1 (QEMU-like), the Type 11 structure, Type 127.
    let mut table = Vec::new();
    table.extend_from_slice(&[1, 27, 0x00, 0x01, 1, 2, 0, 0]);
    table.extend_from_slice(&[0u8; 16]); // UUID
    table.extend_from_slice(&[6, 0, 0]); // wake-up type, SKU, family
    table.extend_from_slice(b"QEMU\0Standard PC (Q35 + ICH9, 2009)\0\0");
    table.extend_from_slice(&oem11);
    table.extend_from_slice(&[127, 4, 0xff, 0xfe, 0, 0]);
    fs::write(tables.join("DMI"), &table)?;

    // A 64-bit (_SM3_) entry point: the table follows it at offset 32 in the
    // dump, which is where `dmidecode --from-dump` looks.
    let ep = sm3_entry_point(table.len() as u32, 32);
    fs::write(tables.join("smbios_entry_point"), &ep)?;
    let mut dump_bytes = ep.clone();
    dump_bytes.resize(32, 0);
    dump_bytes.extend_from_slice(&table);
    fs::write(dump, &dump_bytes)?;
    Ok(Tree {
        root,
        dump: dump.to_owned(),
        payload_bytes: payload,
    })
}

/// SMBIOS 3.0 entry point (DSP0134 §5.2.2), 24 bytes, checksummed.
fn sm3_entry_point(table_len: u32, address: u64) -> Vec<u8> {
    let mut ep = b"_SM3_".to_vec();
    ep.push(0); // checksum, filled below
    ep.push(0x18); // length
    ep.extend_from_slice(&[3, 0, 0, 1, 0]); // major, minor, docrev, revision, reserved
    ep.extend_from_slice(&table_len.to_le_bytes());
    ep.extend_from_slice(&address.to_le_bytes());
    let sum = ep.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    ep[5] = 0u8.wrapping_sub(sum);
    ep
}

/// Median wall time of each command over [`RUNS`] rounds, each round running
/// every command once in turn (after one warm-up round, which also shows
/// that each runs).
fn median_wall_alternating<const N: usize>(mut cmds: [Command; N]) -> Result<[f64; N]> {
    for c in cmds.iter_mut() {
        let status = c.status()?;
        if status.code().is_none() {
            bail!("benchmark command died: {status}");
        }
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(RUNS); N];
    for _ in 0..RUNS {
        for (c, t) in cmds.iter_mut().zip(times.iter_mut()) {
            let start = Instant::now();
            c.status()?;
            t.push(start.elapsed().as_secs_f64());
        }
    }
    Ok(std::array::from_fn(|i| {
        let t = &mut times[i];
        t.sort_by(f64::total_cmp);
        t[RUNS / 2]
    }))
}

/// (sha256, hmac-sha256) in MB/s from `common/benches/digest.rs`.
fn digest_throughput(root: &Path) -> Result<(f64, f64)> {
    let out = crate::util::output(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "bench",
                "--quiet",
                "-p",
                "vmcreds-common",
                "--bench",
                "digest",
            ])
            .current_dir(root),
    )?;
    let mut plain = None;
    let mut keyed = None;
    for line in out.lines() {
        let mut w = line.split_whitespace();
        match (
            w.next(),
            w.next(),
            w.next().and_then(|v| v.parse::<f64>().ok()),
        ) {
            (Some("digest"), Some("sha256"), Some(v)) => plain = Some(v),
            (Some("digest"), Some("hmac-sha256"), Some(v)) => keyed = Some(v),
            _ => {}
        }
    }
    match (plain, keyed) {
        (Some(p), Some(k)) => Ok((p, k)),
        _ => bail!("digest bench printed no figures: {out}"),
    }
}

/// `sha256sum` throughput in GB/s over a 256 MiB file (best of three).
fn sha256sum_throughput(dir: &Path) -> Result<f64> {
    let file = dir.join("sha256sum-input.bin");
    const SIZE: usize = 256 << 20;
    if fs::metadata(&file).map(|m| m.len() as usize).ok() != Some(SIZE) {
        let mut data = vec![0u8; SIZE];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for chunk in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        fs::write(&file, &data)?;
    }
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let ok = Command::new("sha256sum")
            .arg(&file)
            .stdout(Stdio::null())
            .status()?
            .success();
        if !ok {
            bail!("sha256sum failed");
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(SIZE as f64 / best / 1e9)
}

/// OpenSSL's SHA-256 on 1 MiB blocks, in GB/s: what this CPU's SHA
/// extensions deliver through a tuned implementation.
fn openssl_sha256_throughput() -> Result<f64> {
    let out = Command::new("openssl")
        .args([
            "speed", "-evp", "sha256", "-bytes", "1048576", "-seconds", "2",
        ])
        .stderr(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Last line: `sha256   1136132.10k` (thousands of bytes per second).
    let kbps: f64 = text
        .lines()
        .rev()
        .find_map(|l| {
            l.strip_prefix("sha256")?
                .trim()
                .strip_suffix('k')?
                .parse()
                .ok()
        })
        .with_context(|| format!("no sha256 figure in openssl speed output: {text}"))?;
    Ok(kbps * 1e3 / 1e9)
}

/// Peak RSS of one check, in KiB, from GNU time.
fn peak_rss_kib(guest: &Path, tree: &Path) -> Result<u64> {
    if !Path::new("/usr/bin/time").exists() {
        bail!("/usr/bin/time is needed for the RSS figure: apt-get install time");
    }
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(guest)
        .args(["check", "--root"])
        .arg(tree)
        .arg("--json")
        .stdout(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .with_context(|| format!("no RSS figure in /usr/bin/time output: {text}"))
}

fn cpu_model() -> String {
    let info = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let sha = if info.contains(" sha_ni") {
        ", SHA-NI"
    } else {
        ""
    };
    format!(
        "{model}, {} cores{sha}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_timing() {
        let lines: Vec<String> = [
            "InactiveExitTimestampMonotonic=1000000",
            "ActiveEnterTimestampMonotonic=1250000",
            "run 30000 9000",
            "run 20000 7000",
            "run 40000 8000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            parse_timing(&lines).unwrap(),
            Timing {
                activation_us: 250_000,
                check_us: 8000,
                creds_list_us: 30000
            }
        );
        assert!(parse_timing(&lines[2..]).is_err(), "no timestamps");
        assert!(parse_timing(&lines[..2]).is_err(), "no runs");
    }

    #[test]
    fn test_strace_total_and_per_file() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n\
                    ------ ----------- ----------- --------- --------- ----------------\n\
                    \x20 25.70    0.000745           2       257         1 openat\n\
                    ------ ----------- ----------- --------- --------- ----------------\n\
                    100.00    0.002899           2      1283        14 total\n";
        assert_eq!(strace_total(text), Some(1283));
        let no_errors = "100.00    0.001000           1      1094           total\n";
        assert_eq!(strace_total(no_errors), Some(1094));
        assert_eq!(strace_total("nothing"), None);
        let n = (CREDENTIALS - FEW_IMPORTED) as u64;
        assert_eq!(per_file(100 + 4 * n, 100), 4.0);
        assert!(per_file(100 + 5 * n, 100) > SYSCALLS_PER_FILE_MAX);
    }

    #[test]
    fn test_a_miss_is_remembered() {
        let mut t = Targets::default();
        assert_eq!(t.judge("a", true), "met");
        assert_eq!(t.judge("b", false), "**MISSED**");
        assert_eq!(t.missed, ["b"]);
    }

    #[test]
    fn test_entry_point_checksums_to_zero() {
        let ep = sm3_entry_point(1234, 32);
        assert_eq!(ep.len(), 24);
        assert_eq!(ep.iter().fold(0u8, |a, &b| a.wrapping_add(b)), 0);
        assert_eq!(&ep[..5], b"_SM3_");
    }
}
