//! `cargo xtask man [--out DIR]`: man pages and shell completions for vmcreds-host and
//! vmcreds-guest, generated from their clap definitions (`vmcreds_host::cli::Cli`,
//! `vmcreds_guest::cli::Cli`), so they keep up with every flag the binaries gain.
//!
//! Writes `DIR/man/man1/<bin>.1` and `<bin>-<subcommand>.1` (clap_mangen, one page per
//! command), and `DIR/completions/{bash,zsh,fish}/` (clap_complete). Default DIR:
//! `target/man`. The flake's package runs this and installs both.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

/// The commands to document: (binary name, its clap command).
fn commands() -> Vec<clap::Command> {
    vec![
        vmcreds_host::cli::Cli::command(),
        vmcreds_guest::cli::Cli::command(),
    ]
}

/// What was written.
#[derive(Debug)]
pub struct Written {
    /// Man pages (section 1).
    pub pages: Vec<PathBuf>,
    /// Completion scripts.
    pub completions: Vec<PathBuf>,
}

/// Generate everything into `out`.
pub fn generate(out: &Path) -> Result<Written> {
    let man_dir = out.join("man").join("man1");
    fs::create_dir_all(&man_dir).with_context(|| format!("creating {}", man_dir.display()))?;
    let mut pages = Vec::new();
    let mut completions = Vec::new();
    for cmd in commands() {
        let name = cmd.get_name().to_string();
        pages.extend(pages_for(&cmd, &name, &man_dir)?);
        for (shell, dir) in [
            (Shell::Bash, "bash"),
            (Shell::Zsh, "zsh"),
            (Shell::Fish, "fish"),
        ] {
            let dir = out.join("completions").join(dir);
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut c = cmd.clone();
            let path = clap_complete::generate_to(shell, &mut c, &name, &dir)
                .with_context(|| format!("writing the {shell} completion of {name}"))?;
            completions.push(path);
        }
    }
    Ok(Written { pages, completions })
}

/// One page for `cmd` (named `page`) and, recursively, one per subcommand
/// (`vmcreds-host-qemu.1`), as `git` and `systemd-creds` users expect.
fn pages_for(cmd: &clap::Command, page: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut cmd = cmd.clone();
    cmd.build();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(page.to_string())
        .render(&mut buf)
        .with_context(|| format!("rendering the man page of {page}"))?;
    let path = dir.join(format!("{page}.1"));
    fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
    let mut written = vec![path];
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        written.extend(pages_for(sub, &format!("{page}-{}", sub.get_name()), dir)?);
    }
    Ok(written)
}

/// `cargo xtask man [--out DIR]`.
pub fn run(root: &Path, out: Option<&Path>) -> Result<()> {
    let out = out.map_or_else(|| root.join("target").join("man"), Path::to_path_buf);
    let w = generate(&out)?;
    eprintln!(
        "man: {} pages in {}, {} completion scripts in {}",
        w.pages.len(),
        out.join("man").join("man1").display(),
        w.completions.len(),
        out.join("completions").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// roff as plain text: `\-` is a hyphen, `\fB…\fR` are font changes.
    fn plain(roff: &str) -> String {
        roff.replace("\\-", "-")
            .replace("\\fB", "")
            .replace("\\fI", "")
            .replace("\\fR", "")
            .replace("\\fP", "")
            .replace("\\(aq", "'")
    }

    /// Every long flag (`--name`), short flag (`-x`) and subcommand name that the
    /// command's own `--help` prints.
    fn help_words(cmd: &mut clap::Command) -> (Vec<String>, Vec<String>) {
        let help = cmd.render_long_help().to_string();
        let mut flags = Vec::new();
        for word in help.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']') {
            let w = word.trim_end_matches(['.', ':', ')', '>']);
            let w = w.split('=').next().unwrap_or(w);
            let long = w.starts_with("--")
                && w.len() > 2
                && w[2..]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-');
            let short = w.len() == 2 && w.starts_with('-') && w.as_bytes()[1].is_ascii_alphabetic();
            if (long || short) && !flags.contains(&w.to_string()) {
                flags.push(w.to_string());
            }
        }
        let subs = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .filter(|n| n != "help")
            .collect();
        (flags, subs)
    }

    /// The words of a text: runs of letters, digits, `-` and `_`, so `--load`
    /// and `--load-dir` are two different words and `--load=NAME` holds
    /// `--load`.
    fn words(text: &str) -> std::collections::HashSet<&str> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .filter(|w| !w.is_empty())
            .collect()
    }

    /// What `cmd --help` shows that the man page `page` (its text, as
    /// roff) lacks, each flag and subcommand matched as a whole word. A
    /// subcommand counts as present when the page names it or refers to
    /// its own page (`vmcreds-host-qemu(1)`). Returns (missing, checked).
    fn missing_from_page(cmd: &mut clap::Command, page: &str, roff: &str) -> (Vec<String>, usize) {
        let text = plain(roff);
        let have = words(&text);
        let (flags, subs) = help_words(cmd);
        let mut missing: Vec<String> = flags
            .iter()
            .filter(|f| !have.contains(f.as_str()))
            .cloned()
            .collect();
        missing.extend(
            subs.iter()
                .filter(|s| {
                    !have.contains(s.as_str()) && !have.contains(format!("{page}-{s}").as_str())
                })
                .map(|s| format!("subcommand {s}")),
        );
        (missing, flags.len() + subs.len())
    }

    fn check(cmd: &mut clap::Command, page: &str, dir: &Path, checked: &mut usize) {
        cmd.build();
        let roff = fs::read_to_string(dir.join(format!("{page}.1")))
            .unwrap_or_else(|e| panic!("{page}.1 was not written: {e}"));
        let (missing, n) = missing_from_page(cmd, page, &roff);
        assert!(
            missing.is_empty(),
            "{page}.1 lacks {missing:?}, which `{page} --help` shows"
        );
        *checked += n;
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .filter(|n| n != "help")
            .collect();
        for name in names {
            let sub = cmd
                .find_subcommand_mut(&name)
                .expect("a subcommand the command lists");
            check(sub, &format!("{page}-{name}"), dir, checked);
        }
    }

    /// The page of a tiny command, rendered by clap_mangen.
    fn roff_of(cmd: clap::Command) -> String {
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    /// The check can fail: a page rendered without `--load` (but with
    /// `--load-dir`, which contains it as a substring) or without a
    /// subcommand is caught; the full page passes.
    #[test]
    fn a_page_lacking_a_flag_is_caught() {
        use clap::{Arg, ArgAction, Command};
        let tiny = |with_load: bool, with_sub: bool| {
            let mut c = Command::new("tiny")
                .arg(Arg::new("load-dir").long("load-dir").value_name("DIR"))
                .arg(
                    Arg::new("verbose")
                        .short('v')
                        .long("verbose")
                        .action(ArgAction::Count),
                );
            if with_load {
                c = c.arg(Arg::new("load").long("load").value_name("NAME:PATH"));
            }
            if with_sub {
                c = c.subcommand(Command::new("run").about("run it"));
            }
            c
        };
        let (missing, checked) =
            missing_from_page(&mut tiny(true, true), "tiny", &roff_of(tiny(true, true)));
        assert!(missing.is_empty(), "{missing:?}");
        assert!(checked >= 6, "{checked}");
        let (missing, _) =
            missing_from_page(&mut tiny(true, true), "tiny", &roff_of(tiny(false, true)));
        assert_eq!(missing, vec!["--load".to_string()]);
        let (missing, _) =
            missing_from_page(&mut tiny(true, true), "tiny", &roff_of(tiny(true, false)));
        assert_eq!(missing, vec!["subcommand run".to_string()]);
    }

    #[test]
    fn every_flag_and_subcommand_of_help_is_in_the_man_pages() {
        let out = tempfile::tempdir().expect("a temporary directory");
        let w = generate(out.path()).expect("generate");
        let dir = out.path().join("man").join("man1");
        let mut checked = 0;
        for mut cmd in commands() {
            let name = cmd.get_name().to_string();
            check(&mut cmd, &name, &dir, &mut checked);
            for shell in ["bash", "zsh", "fish"] {
                assert!(
                    w.completions.iter().any(|p| p
                        .starts_with(out.path().join("completions").join(shell))
                        && fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false)),
                    "no {shell} completion for {name}"
                );
            }
        }
        // Both binaries have subcommands and flags: a test that found none
        // would assert nothing.
        assert!(checked > 20, "only {checked} flags and subcommands checked");
        assert!(w.pages.len() > 4, "pages: {:?}", w.pages);
    }

    #[test]
    fn completions_know_the_subcommands() {
        let out = tempfile::tempdir().expect("a temporary directory");
        generate(out.path()).expect("generate");
        let bash = fs::read_to_string(
            out.path()
                .join("completions")
                .join("bash")
                .join("vmcreds-host.bash"),
        )
        .expect("bash completion");
        for sub in vmcreds_host::cli::Cli::command().get_subcommands() {
            assert!(
                bash.contains(sub.get_name()),
                "bash completion lacks {}",
                sub.get_name()
            );
        }
    }
}
