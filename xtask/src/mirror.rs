//! The Debian mirror the guest images are debootstrap'd from.
//!
//! No mirror host is written into the project: the mirror is `--mirror URL`, else
//! `$VMCREDS_MIRROR`, else the first Debian archive this machine's apt already uses, read from
//! its sources (deb822 `/etc/apt/sources.list.d/*.sources` and one-line `sources.list` /
//! `sources.list.d/*.list`, in the order apt reads them). A security archive is never chosen:
//! it carries only `<suite>-security`, which debootstrap cannot start from.

use std::fs;
use std::path::Path;

use anyhow::{bail, Result};

/// Debian suite names (code names and aliases) a main archive serves.
const DEBIAN_SUITES: &[&str] = &[
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "unstable",
    "testing",
    "stable",
    "oldstable",
];

/// The mirror to use: `flag`, else `$VMCREDS_MIRROR`, else this machine's apt sources.
pub fn resolve(flag: Option<&str>) -> Result<String> {
    if let Some(m) = flag {
        return Ok(m.trim_end_matches('/').to_string());
    }
    if let Ok(m) = std::env::var("VMCREDS_MIRROR") {
        if !m.is_empty() {
            return Ok(m.trim_end_matches('/').to_string());
        }
    }
    let files = apt_source_files(Path::new("/etc/apt"));
    match from_sources(&files) {
        Some(m) => Ok(m),
        None => bail!(
            "no Debian archive found in /etc/apt/sources.list or /etc/apt/sources.list.d/ \
             (looked for a `deb` source serving one of {}); give one with --mirror URL or \
             VMCREDS_MIRROR",
            DEBIAN_SUITES.join(", ")
        ),
    }
}

/// (file name, contents) of apt's source files under `etc_apt`, in apt's order:
/// `sources.list`, then `sources.list.d/` sorted by name (`.list` and `.sources` only).
fn apt_source_files(etc_apt: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(s) = fs::read_to_string(etc_apt.join("sources.list")) {
        out.push(("sources.list".to_string(), s));
    }
    let mut names: Vec<String> = fs::read_dir(etc_apt.join("sources.list.d"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".list") || n.ends_with(".sources"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    for n in names {
        if let Ok(s) = fs::read_to_string(etc_apt.join("sources.list.d").join(&n)) {
            out.push((n, s));
        }
    }
    out
}

/// Whether `suite` is a Debian main-archive suite (`bookworm`, `bookworm-updates`,
/// `bookworm-backports`, `sid`, …), not `…-security`.
fn is_debian_main_suite(suite: &str) -> bool {
    let base = suite.split('-').next().unwrap_or("");
    DEBIAN_SUITES.contains(&base) && !suite.ends_with("-security")
}

/// The first `deb` URI of a Debian main archive in `files` (see [`apt_source_files`]).
pub fn from_sources(files: &[(String, String)]) -> Option<String> {
    for (name, text) in files {
        let found = if name.ends_with(".sources") {
            from_deb822(text)
        } else {
            from_one_line(text)
        };
        if let Some(uri) = found {
            return Some(uri.trim_end_matches('/').to_string());
        }
    }
    None
}

/// One-line format: `deb [options] URI SUITE [COMPONENT...]`.
fn from_one_line(text: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        if words.next() != Some("deb") {
            continue;
        }
        let mut rest: Vec<&str> = words.collect();
        if rest.first().is_some_and(|w| w.starts_with('[')) {
            // Options run to the word that ends with `]`.
            let end = rest.iter().position(|w| w.ends_with(']'))?;
            rest.drain(..=end);
        }
        if let [uri, suite, ..] = rest.as_slice() {
            if is_debian_main_suite(suite) {
                return Some(uri.to_string());
            }
        }
    }
    None
}

/// deb822 format: stanzas separated by blank lines with `Types:`, `URIs:`, `Suites:` and
/// optionally `Enabled: no`.
fn from_deb822(text: &str) -> Option<String> {
    for stanza in text.split("\n\n") {
        let mut types = "";
        let mut uris = "";
        let mut suites = "";
        let mut enabled = true;
        for line in stanza.lines() {
            if line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "types" => types = v.trim(),
                "uris" => uris = v.trim(),
                "suites" => suites = v.trim(),
                "enabled" => enabled = !v.trim().eq_ignore_ascii_case("no"),
                _ => {}
            }
        }
        if !enabled || !types.split_whitespace().any(|t| t == "deb") {
            continue;
        }
        if suites.split_whitespace().any(is_debian_main_suite) {
            if let Some(uri) = uris.split_whitespace().next() {
                return Some(uri.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, text: &str) -> (String, String) {
        (name.to_string(), text.to_string())
    }

    #[test]
    fn deb822_skips_security_and_disabled_stanzas() {
        let text = "Types: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\n\
                    Components: main\n\n\
                    Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n\n\
                    Types: deb deb-src\n# a comment: with a colon\nURIs: http://mirror.example/debian/\n\
                    Suites: bookworm bookworm-updates\nComponents: main\n";
        assert_eq!(
            from_sources(&[f("debian.sources", text)]).as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn one_line_format_with_options_and_comments() {
        let text = "# deb http://old.example/debian buster main\n\
                    deb https://vendor.example/apt cloud-sdk main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian trixie main\n";
        assert_eq!(
            from_sources(&[f("sources.list", text)]).as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn apt_order_decides_and_nothing_found_is_none() {
        let a = f("a.list", "deb http://first.example/debian sid main\n");
        let b = f(
            "b.sources",
            "Types: deb\nURIs: http://second.example/debian\nSuites: trixie\n",
        );
        assert_eq!(
            from_sources(&[a.clone(), b.clone()]).as_deref(),
            Some("http://first.example/debian")
        );
        assert_eq!(
            from_sources(&[b, a]).as_deref(),
            Some("http://second.example/debian")
        );
        assert_eq!(
            from_sources(&[f(
                "x.list",
                "deb https://vendor.example/apt nodistro main\n"
            )]),
            None
        );
        assert_eq!(from_sources(&[]), None);
    }

    #[test]
    fn files_are_read_in_apt_order_and_other_extensions_ignored() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("sources.list.d")).unwrap();
        fs::write(
            d.path().join("sources.list.d/z.sources"),
            "Types: deb\nURIs: http://z.example/debian\nSuites: bookworm\n",
        )
        .unwrap();
        fs::write(
            d.path().join("sources.list.d/a.list.disabled"),
            "deb http://disabled.example/debian bookworm main\n",
        )
        .unwrap();
        let files = apt_source_files(d.path());
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(
            from_sources(&files).as_deref(),
            Some("http://z.example/debian")
        );
    }

    #[test]
    fn suites_are_judged_by_their_base_name() {
        assert!(is_debian_main_suite("bookworm-backports"));
        assert!(is_debian_main_suite("sid"));
        assert!(!is_debian_main_suite("bookworm-security"));
        assert!(!is_debian_main_suite("jammy"));
        assert!(!is_debian_main_suite("nodistro"));
    }
}
