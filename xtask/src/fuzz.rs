//! `cargo xtask fuzz`: libFuzzer over every parser of untrusted bytes.
//!
//! The targets live in `fuzz/` (a cargo-fuzz crate outside the workspace, so
//! `cargo fuzz run NAME` works too). This driver needs no cargo-fuzz: it
//! builds them with the same instrumentation flags cargo-fuzz passes, then for
//! each target (1) replays the committed corpus and every reproducer in
//! `fuzz/regressions/NAME/` once (`-runs=0`), and (2) fuzzes for the given
//! time on a scratch copy of the corpus. `--keep` merges new inputs back into
//! `fuzz/corpus/NAME/` (for long runs whose corpus should be committed).
//! A crash leaves its input in `target/fuzz/artifacts/NAME/` and fails the run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// cargo-fuzz's instrumentation (`cargo fuzz build` with `--sanitizer none`).
const SANCOV_FLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing -Cdebug-assertions -Coverflow-checks";

/// Longest input the fuzzers generate (larger than any Type 11 header game,
/// small enough to keep runs fast).
const MAX_LEN: &str = "-max_len=8192";

/// The targets, in `fuzz/Cargo.toml` order.
pub fn targets(root: &Path) -> Result<Vec<String>> {
    let manifest = fs::read_to_string(root.join("fuzz/Cargo.toml"))?;
    let names: Vec<String> = manifest
        .split("[[bin]]")
        .skip(1)
        .filter_map(|block| {
            block.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("name = \"")
                    .and_then(|r| r.strip_suffix('"'))
                    .map(str::to_owned)
            })
        })
        .collect();
    if names.is_empty() {
        bail!("fuzz/Cargo.toml declares no [[bin]] targets");
    }
    Ok(names)
}

/// Builds the fuzz targets and returns the directory of the binaries.
pub fn build(root: &Path) -> Result<PathBuf> {
    let target_dir = root.join("target/fuzz");
    crate::util::run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--quiet",
                "--release",
                "--target",
                "x86_64-unknown-linux-gnu",
            ])
            .arg("--target-dir")
            .arg(&target_dir)
            .current_dir(root.join("fuzz"))
            // Only the fuzz targets get the flags: with --target, build scripts
            // and proc macros are built without RUSTFLAGS.
            .env("RUSTFLAGS", SANCOV_FLAGS),
    )
    .context("building the fuzz targets")?;
    Ok(target_dir.join("x86_64-unknown-linux-gnu/release"))
}

/// Replays the corpus and reproducers, then fuzzes each target for `seconds`.
pub fn run(root: &Path, seconds: u64, only: &[String], keep: bool) -> Result<()> {
    let bin_dir = build(root)?;
    let mut failed = Vec::new();
    for name in targets(root)? {
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        let bin = bin_dir.join(&name);
        let corpus = root.join("fuzz/corpus").join(&name);
        let regressions = root.join("fuzz/regressions").join(&name);
        let artifacts = root.join("target/fuzz/artifacts").join(&name);
        fs::create_dir_all(&artifacts)?;
        fs::create_dir_all(&corpus)?;

        let mut replay = Command::new(&bin);
        replay.arg("-runs=0").arg(MAX_LEN).arg(&corpus);
        if regressions.is_dir() {
            replay.arg(&regressions);
        }
        if !quiet_ok(&mut replay)? {
            failed.push(format!(
                "{name}: a committed corpus or regression input fails"
            ));
            continue;
        }

        // Fuzz on a scratch copy so a routine run leaves the repository alone.
        let scratch = root.join("target/fuzz/corpus").join(&name);
        let _ = fs::remove_dir_all(&scratch);
        fs::create_dir_all(&scratch)?;
        for e in fs::read_dir(&corpus)? {
            let e = e?;
            fs::copy(e.path(), scratch.join(e.file_name()))?;
        }
        let mut fuzz = Command::new(&bin);
        fuzz.arg(&scratch)
            .arg(format!("-max_total_time={seconds}"))
            .arg(MAX_LEN)
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-print_final_stats=1");
        let ok = quiet_ok(&mut fuzz)?;
        eprintln!(
            "fuzz {name}: {} for {seconds} s",
            if ok { "ok" } else { "CRASH" }
        );
        if !ok {
            failed.push(format!("{name}: crash, input in {}", artifacts.display()));
            continue;
        }
        if keep {
            crate::util::run(
                Command::new(&bin)
                    .arg("-merge=1")
                    .arg(MAX_LEN)
                    .arg(&corpus)
                    .arg(&scratch),
            )?;
        }
    }
    if !failed.is_empty() {
        bail!("fuzzing failed:\n  {}", failed.join("\n  "));
    }
    Ok(())
}

/// Runs a fuzzer, keeping its chatter out of the way unless it fails.
fn quiet_ok(cmd: &mut Command) -> Result<bool> {
    let out = cmd
        .output()
        .with_context(|| format!("could not run {}", crate::util::show(cmd)))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(25).collect();
        for l in tail.iter().rev() {
            eprintln!("  | {l}");
        }
    }
    Ok(out.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_every_target_has_a_source_and_a_corpus() {
        let root = crate::project_root();
        let names = targets(&root).unwrap();
        assert!(names.len() >= 6, "{names:?}");
        for n in names {
            assert!(
                root.join(format!("fuzz/fuzz_targets/{n}.rs")).is_file(),
                "{n} has no source"
            );
            assert!(
                root.join(format!("fuzz/corpus/{n}")).is_dir(),
                "{n} has no corpus"
            );
        }
    }
}
