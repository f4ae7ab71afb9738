//! Repository hygiene checks for the files xtask owns; `cargo test -p xtask` runs them.
//!
//! Every `.rs` file under `xtask/src` starts with a `//!` doc comment and has no trailing
//! whitespace or tabs; every ground-truth fixture is valid JSON with its schema name.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
}

/// Returns one line per problem found.
pub fn problems(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root.join("xtask/src"), &mut files);
    let mut out = Vec::new();
    for f in &files {
        let text = fs::read_to_string(f).unwrap_or_default();
        let rel = f.strip_prefix(root).unwrap_or(f).display().to_string();
        if !text.starts_with("//!") {
            out.push(format!("{rel}: does not start with a //! doc comment"));
        }
        for (i, line) in text.lines().enumerate() {
            if line.ends_with(' ') || line.ends_with('\t') {
                out.push(format!("{rel}:{}: trailing whitespace", i + 1));
            }
        }
        if text.contains("#[ignore]") && !rel.ends_with("tidy.rs") {
            out.push(format!("{rel}: #[ignore] is not allowed"));
        }
        if text.contains("#[should_panic]") && !rel.ends_with("tidy.rs") {
            out.push(format!("{rel}: #[should_panic] is not allowed"));
        }
    }
    for f in crate::ground_truth::fixtures(root) {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        let of_a_hypervisor =
            |n: &String| n.starts_with("cloud-hypervisor-") || n.starts_with("crosvm-");
        let schema = if name.as_ref().is_some_and(of_a_hypervisor) {
            "vmcreds.hv-ground-truth/1"
        } else {
            "vmcreds.ground-truth/1"
        };
        let ok = fs::read(&f)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v["schema"] == schema);
        if !ok {
            out.push(format!("{}: not a {schema} document", f.display()));
        }
    }
    out
}

/// `cargo xtask tidy`.
pub fn run(root: &Path) -> Result<()> {
    let p = problems(root);
    if p.is_empty() {
        eprintln!("xtask: tidy: ok");
        return Ok(());
    }
    for l in &p {
        eprintln!("{l}");
    }
    bail!("tidy found {} problem(s)", p.len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn tidy() {
        let p = super::problems(&crate::project_root());
        assert!(p.is_empty(), "tidy problems:\n{}", p.join("\n"));
    }
}
