//! fw_cfg: the firmware configuration device of QEMU, which cloud-hypervisor
//! has too when built with its `fw_cfg` cargo feature (device since v48.0).
//! systemd imports every `opt/io.systemd.credentials/NAME` item, byte for
//! byte, before SMBIOS (so an fw_cfg item wins over an OEM string of the same
//! name) — if the guest's kernel has `qemu_fw_cfg` (PID 1 loads the module
//! itself only when `libkmod` is in the guest).
//!
//! The values travel as files: each credential's decoded value is a 0400
//! file in a fresh 0700 directory, and only the paths go on the VMM's
//! command line. cloud-hypervisor's `--fw-cfg-config items=[…]` is parsed
//! by its option parser (`vmm/src/vm_config/fw_cfg_config.rs` at v53.0): the
//! list is stripped of its brackets and split on every `:`, each item split
//! on `,` and each `key=value` on the first `=`, with values trimmed and
//! `"` quoting. So neither a name nor a path may hold `:` `,` `[` `]` `=`
//! `"` or whitespace; and since the one line this module prints is meant to
//! be spliced unquoted into a shell command (microvm.nix's
//! `extraArgsScript`), not `*` or `?` either, nor any control character.
//! QEMU's fw_cfg keys are at most 55 bytes, which leaves 28 for NAME.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use thiserror::Error;
use vmcreds_common::escape::escape_name;
use vmcreds_common::limits::{FW_CFG_CREDENTIAL_PREFIX, FW_CFG_NAME_MAX};
use vmcreds_common::oem::{self, Parsed};
use vmcreds_common::systemd::Behaviour;
use vmcreds_common::{CredentialName, Secret};

use super::Budget;
use crate::exit::{Classify, Exit};
use crate::plan::Plan;
use crate::private_dir::PrivateDir;

/// fw_cfg carries credentials one item each: systemd's limits apply, not
/// SMBIOS's (no 255 strings, no Type 11 read window).
pub const BUDGET: Budget = Budget {
    target: "fw_cfg",
    smbios: false,
    max_type11_bytes: None,
    rule: "",
};

/// cloud-hypervisor's option for fw_cfg items.
pub const CH_FLAG: &str = "--fw-cfg-config";

/// Characters no fw_cfg item name or path may hold (cloud-hypervisor's
/// item list syntax, and the unquoted shell splice).
const FORBIDDEN: &[char] = &[':', ',', '[', ']', '=', '"', '*', '?', '\'', '\\', '$', '`'];

/// Why an fw_cfg delivery is refused (exit 2), before anything is written.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FwCfgError {
    /// A raw string that is not a credential systemd accepts.
    #[error("{label} is not a credential string systemd imports; fw_cfg carries credentials (NAME and value) only: put other OEM strings in cloud-hypervisor's --platform")]
    NotACredential {
        /// Which string.
        label: String,
    },
    /// Over the 28 bytes an fw_cfg key leaves for the name.
    #[error("credential \"{name}\" is {len} bytes; an fw_cfg key is at most 55 bytes, so after \"opt/io.systemd.credentials/\" a name has at most {FW_CFG_NAME_MAX}; rename it, or deliver it over SMBIOS (--platform or API mode)")]
    NameTooLong {
        /// The name.
        name: String,
        /// Its length.
        len: usize,
    },
    /// A name cloud-hypervisor's item syntax cannot carry.
    #[error("credential \"{name}\" has {what} at offset {offset}, which cloud-hypervisor's --fw-cfg-config item list cannot carry (':' ',' '[' ']' '=' '\"', whitespace and shell glob characters); use a portable name ([A-Za-z0-9_.@+-])")]
    NameChar {
        /// The name, escaped.
        name: String,
        /// The character, described.
        what: String,
        /// Its byte offset.
        offset: usize,
    },
    /// A runtime directory the item list or a shell splice cannot carry.
    #[error("--runtime-dir {path}: {problem}")]
    RuntimeDir {
        /// The path, escaped.
        path: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Nothing to deliver.
    #[error("there are no credentials to deliver; give --load, --load-dir, --set or --oem, or drop --no-manifest")]
    Nothing,
}

impl Classify<Exit> for FwCfgError {
    fn exit(&self) -> Exit {
        Exit::Refused
    }
}

fn describe(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        c if c.is_control() || c.is_whitespace() => format!("the character U+{:04X}", c as u32),
        c => format!("'{c}'"),
    }
}

/// The first character of `s` an fw_cfg item or the shell splice cannot
/// carry: `(offset, char)`.
pub fn first_forbidden(s: &str) -> Option<(usize, char)> {
    s.char_indices()
        .find(|&(_, c)| FORBIDDEN.contains(&c) || c.is_whitespace() || c.is_control())
}

/// Checks the runtime directory: absolute, UTF-8, and free of every
/// character the item list or an unquoted shell splice would change.
pub fn check_runtime_dir(dir: &Path) -> Result<&str, FwCfgError> {
    let shown = crate::show_path(dir);
    let bad = |problem: String| FwCfgError::RuntimeDir {
        path: shown.clone(),
        problem,
    };
    let Some(text) = dir.to_str() else {
        return Err(bad(
            "not valid UTF-8, which cloud-hypervisor's command line requires".into(),
        ));
    };
    if !dir.is_absolute() {
        return Err(bad(
            "must be absolute: cloud-hypervisor resolves a relative file= against its own working directory"
                .into(),
        ));
    }
    if let Some((offset, c)) = first_forbidden(text) {
        return Err(bad(format!(
            "{} at byte offset {offset}, which cloud-hypervisor's --fw-cfg-config item list or an unquoted shell splice would change; choose a plain path",
            describe(c)
        )));
    }
    Ok(text)
}

/// One credential for fw_cfg: its name and decoded value.
#[derive(Debug)]
pub struct Item {
    /// The credential name.
    pub name: CredentialName,
    /// The decoded value (what systemd writes to `/run/credentials/@system/NAME`).
    pub value: Secret,
}

/// The plan's strings as fw_cfg items, each checked. The plan holds OEM
/// strings; their decoded values are what fw_cfg carries.
pub fn items(plan: &Plan) -> Result<Vec<Item>, FwCfgError> {
    if plan.strings.is_empty() {
        return Err(FwCfgError::Nothing);
    }
    let mut out = Vec::with_capacity(plan.strings.len());
    for s in &plan.strings {
        let Parsed::Credential { name, value, .. } =
            oem::parse(s.bytes.expose(), &Behaviour::newest())
        else {
            return Err(FwCfgError::NotACredential {
                label: s.label.clone(),
            });
        };
        if name.as_str().len() > FW_CFG_NAME_MAX {
            return Err(FwCfgError::NameTooLong {
                name: name.to_string(),
                len: name.as_str().len(),
            });
        }
        if let Some((offset, c)) = first_forbidden(name.as_str()) {
            return Err(FwCfgError::NameChar {
                name: escape_name(name.as_str().as_bytes()),
                what: describe(c),
                offset,
            });
        }
        out.push(Item { name, value });
    }
    Ok(out)
}

/// The files written, and what keeps them.
#[derive(Debug)]
pub struct Delivery {
    /// (item name, file) per credential, in plan order.
    pub files: Vec<(String, PathBuf)>,
    /// The private directory (removed on drop unless kept).
    pub dir: PrivateDir,
}

/// Writes each item's value as a 0400 file `fw-NNN` in a fresh 0700
/// directory under `parent`; on error, what was written is removed.
pub fn write_files(items: &[Item], parent: &Path) -> std::io::Result<Delivery> {
    let mut dir = PrivateDir::create(parent)?;
    let mut files = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = dir.write_file(&format!("fw-{i:03}"), item.value.expose())?;
        files.push((format!("{FW_CFG_CREDENTIAL_PREFIX}{}", item.name), path));
    }
    Ok(Delivery { files, dir })
}

/// cloud-hypervisor's one `--fw-cfg-config` value:
/// `items=[name=N,file=P:name=N,file=P…]`.
pub fn ch_value(files: &[(String, PathBuf)]) -> String {
    let mut v = String::from("items=[");
    for (i, (name, path)) in files.iter().enumerate() {
        if i > 0 {
            v.push(':');
        }
        let _ = write!(v, "name={name},file={}", path.display());
    }
    v.push(']');
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlanOptions;
    use crate::source::{Loaded, Origin};
    use std::os::unix::fs::MetadataExt;
    use vmcreds_common::oem::Encoding;
    use vmcreds_common::NameRule;

    fn plan(items: Vec<Loaded>, rule: NameRule) -> Result<Plan, crate::plan::PlanError> {
        Plan::build(
            items,
            PlanOptions {
                rule,
                encoding: Encoding::Binary,
                manifest: true,
                budget: BUDGET,
            },
        )
    }

    fn cred(name: &str, value: &[u8]) -> Loaded {
        Loaded::Credential {
            name: name.into(),
            origin: Origin::Load {
                name: name.into(),
                path: "/run/x".into(),
            },
            value: Secret::new(value.to_vec()),
        }
    }

    fn oem(s: &str) -> Loaded {
        Loaded::Oem {
            origin: Origin::Oem { index: 1 },
            string: s.into(),
        }
    }

    #[test]
    fn test_items_carry_decoded_values_manifest_first() {
        let p = plan(
            vec![
                cred("API_KEY", b"\0binary,[]:secret"),
                oem("io.systemd.credential:vmm.notify_socket=vsock-stream:2:8888"),
            ],
            NameRule::Portable,
        )
        .unwrap();
        let items = items(&p).unwrap();
        let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["vmcreds.manifest", "API_KEY", "vmm.notify_socket"]);
        assert_eq!(items[1].value.expose(), b"\0binary,[]:secret");
        assert_eq!(items[2].value.expose(), b"vsock-stream:2:8888");
        let m = vmcreds_common::manifest::Manifest::from_json(items[0].value.expose()).unwrap();
        assert_eq!(m, p.manifest);
    }

    #[test]
    fn test_refusals() {
        let p = plan(
            vec![cred("A", b"x"), oem("not a credential")],
            NameRule::Portable,
        )
        .unwrap();
        assert!(
            matches!(items(&p), Err(FwCfgError::NotACredential { label }) if label == "--oem #1")
        );
        let p = plan(vec![cred(&"N".repeat(28), b"x")], NameRule::Portable).unwrap();
        assert!(items(&p).is_ok());
        let p = plan(vec![cred(&"N".repeat(29), b"x")], NameRule::Portable).unwrap();
        assert!(matches!(
            items(&p),
            Err(FwCfgError::NameTooLong { len: 29, .. })
        ));
        for bad in ["a,b", "a[b", "a b", "a\"b", "a*b"] {
            let p = plan(vec![cred(bad, b"x")], NameRule::Systemd).unwrap();
            assert!(
                matches!(items(&p), Err(FwCfgError::NameChar { offset: 1, .. })),
                "{bad}"
            );
        }
        for (dir, why) in [
            ("relative/dir", "absolute"),
            ("/run/a:b", "':'"),
            ("/run/a,b", "','"),
            ("/run/a b", "space"),
            ("/run/[x]", "'['"),
            ("/run/x*", "'*'"),
            ("/run/a=b", "'='"),
        ] {
            let e = check_runtime_dir(Path::new(dir)).unwrap_err().to_string();
            assert!(e.contains(why), "{dir}: {e}");
        }
        assert_eq!(
            check_runtime_dir(Path::new("/run/vmcreds/vm-1.x")).unwrap(),
            "/run/vmcreds/vm-1.x"
        );
    }

    #[test]
    fn test_files_private_and_value_syntax() {
        let parent = tempfile::tempdir().unwrap();
        let p = plan(
            vec![cred("A", b"one"), cred("B", b"two")],
            NameRule::Portable,
        )
        .unwrap();
        let it = items(&p).unwrap();
        let d = write_files(&it, parent.path()).unwrap();
        assert_eq!(
            std::fs::metadata(d.dir.path()).unwrap().mode() & 0o777,
            0o700
        );
        for ((name, path), item) in d.files.iter().zip(&it) {
            assert_eq!(name, &format!("opt/io.systemd.credentials/{}", item.name));
            assert_eq!(std::fs::read(path).unwrap(), item.value.expose());
            assert_eq!(std::fs::metadata(path).unwrap().mode() & 0o777, 0o400);
        }
        let v = ch_value(&d.files);
        let dir = d.dir.path().display().to_string();
        assert_eq!(
            v,
            format!("items=[name=opt/io.systemd.credentials/vmcreds.manifest,file={dir}/fw-000:name=opt/io.systemd.credentials/A,file={dir}/fw-001:name=opt/io.systemd.credentials/B,file={dir}/fw-002]")
        );
        let path = d.dir.path().to_owned();
        drop(d);
        assert!(!path.exists(), "removed unless kept");
    }
}
