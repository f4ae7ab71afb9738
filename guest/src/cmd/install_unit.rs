//! `install-unit`: writes `vmcreds-check.service` into an image (or `/`) and
//! enables it for `multi-user.target`, with `ExecStart=` and the sandbox
//! fitted to the flags.
//!
//! Run as root on a build host against an image that may hold any links
//! (`etc -> /etc` is normal in images), every path is resolved inside the
//! image (`vmcreds_os::beneath`): missing directories are created 0755, the
//! unit is written under a random temporary name created exclusively and
//! without following links, `fchmod`ed to 0644 and renamed into place, and
//! the `.wants/` link is created, never followed.

use std::io;
use std::path::PathBuf;

use thiserror::Error;
use vmcreds_os::beneath::RootDir;

use crate::cli::InstallUnitArgs;
use crate::dest::Dest;
use crate::exit::{Classify, Exit, Result};

/// The unit as shipped.
pub const UNIT_TEMPLATE: &str = include_str!("../../units/vmcreds-check.service");
/// The unit's name.
pub const UNIT_NAME: &str = "vmcreds-check.service";
/// Where the binary is installed in images (the real-VM driver uses it too).
pub const BINARY_PATH: &str = "/usr/local/bin/vmcreds-guest";

/// Writing the unit failed.
#[derive(Debug, Error)]
#[error("cannot write {}", vmcreds_os::show_path(path))]
pub struct InstallError {
    /// The path.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: io::Error,
}

impl Classify<Exit> for InstallError {
    fn exit(&self) -> Exit {
        Exit::Unreadable
    }
}

/// Where the unit goes in the image.
const UNIT_DIR: &str = "/etc/systemd/system";

/// systemd's path escaping for unit names (`systemd-escape --path`, simplified).
pub fn escape_unit_path(p: &str) -> String {
    let trimmed = p.trim_matches('/');
    let mut out = String::new();
    for (i, b) in trimmed.bytes().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b':' => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// Quotes one ExecStart= argument for systemd (double quotes when needed).
fn quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@=,+".contains(&b))
    {
        arg.replace('%', "%%").replace('$', "$$")
    } else {
        let escaped = arg
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('%', "%%")
            .replace('$', "$$");
        format!("\"{escaped}\"")
    }
}

/// The unit text for these flags.
pub fn render(strict: bool, notify: bool, report_to: &[Dest]) -> String {
    let mut exec = format!("ExecStart={BINARY_PATH} check");
    if strict {
        exec.push_str(" --strict");
    }
    for d in report_to {
        exec.push_str(" --report-to ");
        exec.push_str(&quote(&d.to_string()));
    }
    if notify {
        exec.push_str(" --notify");
    }
    let mut unit_extra = String::new();
    // The notify address comes from the vmm.notify_socket credential at run
    // time: vsock or an abstract unix socket need the host's network namespace.
    let mut private_network = !notify;
    for d in report_to {
        match d {
            Dest::VirtioPort(n) => {
                let dev = format!(
                    "{}.device",
                    escape_unit_path(&format!("/dev/virtio-ports/{n}"))
                );
                unit_extra.push_str(&format!("Wants={dev}\nAfter={dev}\n"));
            }
            Dest::Vsock { .. } => private_network = false,
            Dest::Unix(p) if p.as_os_str().as_encoded_bytes().starts_with(b"@") => {
                private_network = false
            }
            // No ReadWritePaths= for files: it would create the mount
            // namespace the unit must not have (see the unit).
            Dest::File(_) | Dest::Unix(_) | Dest::Stdout => {}
        }
    }
    let mut out = String::new();
    for line in UNIT_TEMPLATE.lines() {
        if line.starts_with("ExecStart=") {
            out.push_str(&exec);
            out.push('\n');
            continue;
        }
        if line == "PrivateNetwork=yes" && !private_network {
            out.push_str(
                "# PrivateNetwork= off: the report goes over vsock or an abstract unix socket\n",
            );
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line == "Conflicts=shutdown.target" {
            out.push_str(&unit_extra);
        }
    }
    out
}

/// Runs `install-unit`.
pub fn run(args: &InstallUnitArgs) -> Result<Exit> {
    let fail = |path: String, source| InstallError {
        path: args.root.join(path.trim_start_matches('/')),
        source,
    };
    let image = RootDir::open(&args.root).map_err(|e| fail("/".into(), e))?;
    let wants = format!("{UNIT_DIR}/multi-user.target.wants");
    image
        .create_dir_all(&wants, 0o755)
        .map_err(|e| fail(wants.clone(), e))?;
    tracing::debug!(dir = %vmcreds_os::show_path(&image.shown(&wants)), "directories present, new ones 0755");
    let unit = format!("{UNIT_DIR}/{UNIT_NAME}");
    let text = render(args.strict, args.notify, &args.report_to);
    image
        .write_file(&unit, text.as_bytes(), 0o644)
        .map_err(|e| fail(unit.clone(), e))?;
    tracing::info!(path = %vmcreds_os::show_path(&image.shown(&unit)), bytes = text.len(), destinations = args.report_to.len(), "unit written");
    let link = format!("{wants}/{UNIT_NAME}");
    image
        .symlink(&link, &format!("../{UNIT_NAME}"))
        .map_err(|e| fail(link.clone(), e))?;
    tracing::info!(link = %vmcreds_os::show_path(&image.shown(&link)), "enabled for multi-user.target");
    println!(
        "installed {} and enabled it ({}); it runs {BINARY_PATH}",
        vmcreds_os::show_path(&image.shown(&unit)),
        vmcreds_os::show_path(&image.shown(&link))
    );
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_render_flags() {
        let u = render(
            true,
            false,
            &[
                "virtio-port:org.vmcreds.0".parse().unwrap(),
                "file:/var/lib/vmcreds/r.json".parse().unwrap(),
            ],
        );
        assert!(u.contains("ExecStart=/usr/local/bin/vmcreds-guest check --strict --report-to virtio-port:org.vmcreds.0 --report-to file:/var/lib/vmcreds/r.json\n"), "{u}");
        assert!(
            u.contains("Wants=dev-virtio\\x2dports-org.vmcreds.0.device\n"),
            "{u}"
        );
        assert!(!u.contains("ReadWritePaths="), "{u}");
        for l in [
            "ProtectSystem=",
            "PrivateTmp=",
            "ProtectHome=",
            "PrivateDevices=",
            "ProtectKernelTunables=",
        ] {
            assert!(
                !u.lines().any(|x| x.starts_with(l)),
                "{l} would hide /run/credentials"
            );
        }
        assert!(u.contains("PrivateMounts=no\n"));
        assert!(u.contains("PrivateNetwork=yes"));
        let v = render(false, false, &["vsock:2:9000".parse().unwrap()]);
        assert!(!v.contains("PrivateNetwork=yes"), "{v}");
        assert!(
            v.contains("ExecStart=/usr/local/bin/vmcreds-guest check --report-to vsock:2:9000\n")
        );
        assert_eq!(
            render(false, false, &[])
                .lines()
                .filter(|l| l.starts_with("ExecStart="))
                .count(),
            1
        );
    }

    #[test]
    fn test_render_notify() {
        let n = render(false, true, &["vsock:2:9999".parse().unwrap()]);
        assert!(
            n.contains(
                "ExecStart=/usr/local/bin/vmcreds-guest check --report-to vsock:2:9999 --notify\n"
            ),
            "{n}"
        );
        assert!(!n.contains("PrivateNetwork=yes"), "{n}");
        let n = render(false, true, &[]);
        assert!(!n.contains("PrivateNetwork=yes"), "{n}");
        assert!(render(false, false, &[]).contains("PrivateNetwork=yes"));
    }

    #[test]
    fn test_escape_and_quote() {
        assert_eq!(
            escape_unit_path("/dev/virtio-ports/a b"),
            "dev-virtio\\x2dports-a\\x20b"
        );
        assert_eq!(quote("file:/a b"), "\"file:/a b\"");
        assert_eq!(quote("a%b"), "\"a%%b\"");
    }
}
