//! The KVM-only hypervisors the VM tier runs when the user gives one: cloud-hypervisor and
//! crosvm. xtask never builds them; it finds a binary (`--cloud-hypervisor PATH`, else
//! `$CLOUD_HYPERVISOR`, else `cloud-hypervisor` on `PATH`; likewise for crosvm), asks it for
//! its version, and shows that version in the summary.
//!
//! `VMCREDS_REQUIRE` (comma-separated, or `all`) turns "no binary" from a NOT RUN line into a
//! failure: `VMCREDS_REQUIRE=cloud-hypervisor cargo xtask test` fails on a machine without one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::util;

/// Which hypervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// cloud-hypervisor.
    CloudHypervisor,
    /// crosvm.
    Crosvm,
}

impl Kind {
    /// Program name on `PATH`, also the `VMCREDS_REQUIRE` word.
    pub fn program(self) -> &'static str {
        match self {
            Kind::CloudHypervisor => "cloud-hypervisor",
            Kind::Crosvm => "crosvm",
        }
    }

    /// The environment variable that names a binary.
    pub fn env_var(self) -> &'static str {
        match self {
            Kind::CloudHypervisor => "CLOUD_HYPERVISOR",
            Kind::Crosvm => "CROSVM",
        }
    }

    /// What prints the version: cloud-hypervisor's `--version`; crosvm has no `--version`
    /// (it exits 35, "Unrecognized argument") but a `version` subcommand (`crosvm 0.1.0`,
    /// without commit or date: builds cannot be told apart by asking).
    pub fn version_arg(self) -> &'static str {
        match self {
            Kind::CloudHypervisor => "--version",
            Kind::Crosvm => "version",
        }
    }

    /// The scenario name prefix in the summary (`ch-api`).
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::CloudHypervisor => "ch",
            Kind::Crosvm => "crosvm",
        }
    }
}

/// A hypervisor binary as found and asked.
#[derive(Debug, Clone)]
pub struct Binary {
    /// Which one.
    pub kind: Kind,
    /// Where it is.
    pub path: PathBuf,
    /// The first line of what its [`Kind::version_arg`] prints (`cloud-hypervisor v53.0`,
    /// `crosvm 0.1.0`).
    pub version: String,
    /// cloud-hypervisor only: built with the `fw_cfg` cargo feature (its `--help` lists
    /// `--fw-cfg-config`).
    pub fw_cfg: bool,
}

impl Binary {
    /// The version word (`v53.0-dirty`) as the binary prints it.
    pub fn version_word(&self) -> &str {
        self.version
            .split_whitespace()
            .nth(1)
            .unwrap_or(self.version.as_str())
    }

    /// The release (`v53.0`): the version word up to what `git describe` adds (`-dirty`,
    /// `-3-gabc123`), for file names and for what the host CLI itself calls the version.
    pub fn release(&self) -> &str {
        let w = self.version_word();
        w.split('-').next().unwrap_or(w)
    }
}

/// Whether `VMCREDS_REQUIRE` names `what` (or `all`).
pub fn required(what: &str) -> bool {
    required_in(std::env::var("VMCREDS_REQUIRE").ok().as_deref(), what)
}

fn required_in(var: Option<&str>, what: &str) -> bool {
    var.unwrap_or("")
        .split(',')
        .map(str::trim)
        .any(|w| w == what || w == "all")
}

/// Where the binary of `kind` is: `flag`, else its environment variable, else `PATH`.
/// `Ok(None)` when none is given or on `PATH`; an error when one is named but is not there.
pub fn locate(kind: Kind, flag: Option<&Path>) -> Result<Option<PathBuf>> {
    let named = flag
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(kind.env_var()).map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty());
    if let Some(p) = named {
        if !p.is_file() {
            bail!(
                "{} names {}, which is not a file",
                if flag.is_some() {
                    format!("--{}", kind.program())
                } else {
                    format!("${}", kind.env_var())
                },
                p.display()
            );
        }
        return Ok(Some(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    Ok(std::env::split_paths(&path)
        .map(|d| d.join(kind.program()))
        .find(|p| p.is_file()))
}

/// Finds and asks the binary of `kind`; `Ok(None)` when there is none.
pub fn find(kind: Kind, flag: Option<&Path>) -> Result<Option<Binary>> {
    let Some(path) = locate(kind, flag)? else {
        return Ok(None);
    };
    inspect(kind, &path).map(Some)
}

/// Asks `path` for its version (and cloud-hypervisor for its `--help`).
pub fn inspect(kind: Kind, path: &Path) -> Result<Binary> {
    let arg = kind.version_arg();
    let version = ask(path, arg)?
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
        .with_context(|| format!("{} {arg} printed nothing", path.display()))?;
    let fw_cfg = kind == Kind::CloudHypervisor && ask(path, "--help")?.contains("--fw-cfg-config");
    Ok(Binary {
        kind,
        path: path.to_path_buf(),
        version,
        fw_cfg,
    })
}

/// Runs `path arg` with a deadline and returns its stdout.
fn ask(path: &Path, arg: &str) -> Result<String> {
    // One directory per question: questions may be asked at once (tests run in threads).
    static ASKED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = ASKED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("xtask-ask-{}-{n}", std::process::id()));
    util::mkdirp(&dir)?;
    let out = dir.join("out");
    let mut cmd = Command::new(path);
    cmd.arg(arg);
    let mut g = crate::vm::Guarded::spawn_split(
        &format!("{} {arg}", path.display()),
        &mut cmd,
        &out,
        Some(&dir.join("err")),
        vec![],
    )?;
    g.ok = true;
    let st = g.wait_until(std::time::Instant::now() + Duration::from_secs(20))?;
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    if !st.success() {
        bail!("{} {arg} failed: {st}", path.display());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn require_words() {
        assert!(required_in(
            Some("qemu,cloud-hypervisor"),
            "cloud-hypervisor"
        ));
        assert!(required_in(Some("all"), "crosvm"));
        assert!(!required_in(Some("qemu"), "crosvm"));
        assert!(!required_in(None, "crosvm"));
        assert!(!required_in(Some(""), "crosvm"));
    }

    #[test]
    fn a_fake_binary_is_asked_for_its_version_and_features() {
        let d = tempfile::tempdir().unwrap();
        let fake = d.path().join("cloud-hypervisor");
        std::fs::write(
            &fake,
            "#!/bin/sh\ncase \"$1\" in\n--version) echo 'cloud-hypervisor v53.0';;\n\
             --help) echo '  --fw-cfg-config <fw_cfg_config>';;\nesac\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let b = inspect(Kind::CloudHypervisor, &fake).unwrap();
        assert_eq!(b.version, "cloud-hypervisor v53.0");
        assert_eq!(b.version_word(), "v53.0");
        assert_eq!(b.release(), "v53.0");
        let dirty = Binary {
            version: "cloud-hypervisor v53.0-dirty".into(),
            ..b.clone()
        };
        assert_eq!(dirty.release(), "v53.0");
        assert!(b.fw_cfg);
        let found = find(Kind::CloudHypervisor, Some(&fake)).unwrap().unwrap();
        assert_eq!(found.path, fake);
        let missing = d.path().join("nope");
        let e = find(Kind::CloudHypervisor, Some(&missing)).unwrap_err();
        assert!(e.to_string().contains("not a file"), "{e}");
    }

    #[test]
    fn crosvm_is_asked_with_its_version_subcommand() {
        let d = tempfile::tempdir().unwrap();
        let fake = d.path().join("crosvm");
        // As crosvm f1e797a6 answers: `--version` is an argument error (exit 35).
        std::fs::write(
            &fake,
            "#!/bin/sh\ncase \"$1\" in\nversion) echo 'crosvm 0.1.0';;\n\
             *) echo \"arg parsing failed: Unrecognized argument: $1\" >&2; exit 35;;\nesac\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let b = inspect(Kind::Crosvm, &fake).unwrap();
        assert_eq!(b.version, "crosvm 0.1.0");
        assert_eq!(b.release(), "0.1.0");
        assert!(!b.fw_cfg);
        let e = ask(&fake, "--version").unwrap_err();
        assert!(e.to_string().contains("failed"), "{e}");
    }
}
