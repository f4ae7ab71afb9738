//! `vmcreds-host cloud-hypervisor [SOURCES] [--platform-key K=V]... [--format arg|env|json]`
//! and API mode `vmcreds-host cloud-hypervisor --api-socket PATH --vm-config FILE [SOURCES]`.
//!
//! Argv mode prints the one `--platform` value (`--format arg`: the two
//! words, one per line; `env`: `MICROVM_PLATFORM_OPS=VALUE`; `json`: the
//! strings and the words as JSON). The credentials are then on
//! cloud-hypervisor's argv, so `arg` and `env` warn once on stderr.
//!
//! API mode reads the VmConfig JSON (never writing it back), inserts the
//! strings into `platform.oem_strings`, and sends `PUT /api/v1/vm.create`
//! with it, then `PUT /api/v1/vm.boot`, over the unix socket. Every check
//! happens before the socket is opened; a failed `vm.create` sends nothing
//! more. `GET /api/v1/vm.info` returns the config, credentials included, to
//! anyone who can connect: the socket must be private (0600, the VM's user).

use std::collections::HashSet;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use vmcreds_common::limits::Budget;
use vmcreds_common::Secret;

use super::{load_plan, print_delivery, remove_manifest_out, write_manifest_out};
use crate::api_client;
use crate::cli::{ChFormat, CloudHypervisorArgs, SourceArgs, SourceSpec};
use crate::plan::OemString;
use crate::target::cloud_hypervisor::{self as target, ChError, PlatformKeys};

/// Most bytes of a VmConfig file.
pub const VM_CONFIG_MAX: usize = 4 * 1024 * 1024;

/// How long to wait for each API answer (booting a large guest takes a while).
pub const API_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `cloud-hypervisor`.
pub fn run(args: CloudHypervisorArgs) -> anyhow::Result<ExitCode> {
    match (&args.api_socket, &args.vm_config) {
        (Some(socket), Some(config)) => run_api(&args, socket, config),
        _ => run_argv(&args),
    }
}

/// The names whose values are public (`--set`): messages may locate a
/// character in them. `--oem` strings are public too.
pub fn public_names(sources: &SourceArgs) -> HashSet<String> {
    sources
        .ordered
        .iter()
        .filter_map(|s| match s {
            SourceSpec::Set(arg) => arg.split_once('=').map(|(n, _)| n.to_owned()),
            _ => None,
        })
        .collect()
}

/// A predicate over plan strings built from [`public_names`].
pub fn is_public(names: &HashSet<String>) -> impl Fn(&OemString) -> bool + '_ {
    move |s: &OemString| s.raw || s.name.as_ref().is_some_and(|n| names.contains(n.as_str()))
}

fn warn_arch() {
    if !target::host_builds_smbios() {
        eprintln!("vmcreds-host: warning: {}", target::AARCH64_WARNING);
    }
}

fn run_argv(args: &CloudHypervisorArgs) -> anyhow::Result<ExitCode> {
    let keys = PlatformKeys::parse(&args.platform_key)?;
    let plan = load_plan(&args.sources, Budget::CLOUD_HYPERVISOR)?;
    let names = public_names(&args.sources);
    let checked = target::check_strings(&plan, is_public(&names))?;
    if args.format == ChFormat::Env {
        target::check_env_safe(&checked, &keys)?;
    }
    let value = target::platform_value(&checked, &keys);
    let out = match args.format {
        ChFormat::Arg => {
            let mut o = Secret::new(Vec::with_capacity(value.len() + 12));
            o.extend_from_slice(b"--platform\n");
            o.extend_from_slice(value.expose());
            o.extend_from_slice(b"\n");
            o
        }
        ChFormat::Env => {
            let mut o = Secret::new(Vec::with_capacity(value.len() + 24));
            o.extend_from_slice(target::ENV_VAR.as_bytes());
            o.extend_from_slice(b"=");
            o.extend_from_slice(value.expose());
            o.extend_from_slice(b"\n");
            // The alphabet was checked per string; this is the last guard.
            assert!(
                o.expose()
                    .iter()
                    .all(|b| !matches!(b, b'"' | b'\'' | b' ' | b'\\' | b'$' | b'`' | b'\t')),
                "env output outside the shell-safe alphabet"
            );
            o
        }
        ChFormat::Json => target::json_document(&checked, &keys, &value),
    };
    drop(checked);
    warn_arch();
    write_manifest_out(&args.sources, &plan)?;
    drop(plan);
    if args.format != ChFormat::Json {
        eprintln!("vmcreds-host: warning: {}", target::ARGV_WARNING);
    }
    print_delivery(&args.sources, &out)?;
    Ok(ExitCode::SUCCESS)
}

/// Warns when the API socket can be reached by other users.
fn check_socket_mode(socket: &Path) {
    let Ok(meta) = std::fs::metadata(socket) else {
        return; // connect reports it
    };
    if meta.file_type().is_socket() && meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "vmcreds-host: warning: {} has mode {:04o}; anyone who can connect to it can read the credentials back with GET /api/v1/vm.info; make it 0600, owned by the VM's user",
            socket.display(),
            meta.permissions().mode() & 0o7777
        );
    }
}

fn run_api(args: &CloudHypervisorArgs, socket: &Path, config: &Path) -> anyhow::Result<ExitCode> {
    if !args.platform_key.is_empty() {
        return Err(ChError::KeyInApiMode.into());
    }
    if args.format != ChFormat::Arg {
        anyhow::bail!(
            "--format is for the --platform value (argv mode); API mode prints nothing to pass on"
        );
    }
    let plan = load_plan(&args.sources, Budget::CLOUD_HYPERVISOR)?;
    let bytes = crate::fsutil::read_bounded(config, VM_CONFIG_MAX)
        .with_context(|| format!("cannot read --vm-config {}", config.display()))?;
    if bytes.len() > VM_CONFIG_MAX {
        anyhow::bail!(
            "--vm-config {}: over {VM_CONFIG_MAX} bytes, more than any VmConfig",
            config.display()
        );
    }
    let merged = target::merge_vm_config(&bytes, &config.display().to_string(), &plan)?;
    drop(bytes);
    let needles = target::redaction_needles(&plan);
    warn_arch();
    write_manifest_out(&args.sources, &plan)?;
    let strings = plan.strings.len();
    drop(plan);
    let result = send(socket, &merged.body, &needles);
    drop(merged.body);
    if result.is_err() {
        remove_manifest_out(&args.sources);
    }
    result?;
    eprintln!(
        "vmcreds-host: created and booted the VM through {} with {} OEM strings ({strings} from vmcreds-host, {} already in the VmConfig)",
        socket.display(),
        merged.total,
        merged.existing
    );
    Ok(ExitCode::SUCCESS)
}

/// A non-2xx answer.
#[derive(Debug, thiserror::Error)]
#[error(
    "cloud-hypervisor answered PUT {path} on {socket} with {status}{}: \"{body}\"{after}",
    if reason.is_empty() { String::new() } else { format!(" {reason}") }
)]
pub struct HttpError {
    /// The endpoint.
    pub path: &'static str,
    /// The socket.
    pub socket: String,
    /// Status code.
    pub status: u16,
    /// Reason phrase (escaped).
    pub reason: String,
    /// The body: credentials redacted, escaped, truncated.
    pub body: String,
    /// What state the VM is left in.
    pub after: &'static str,
}

fn put(
    socket: &Path,
    path: &'static str,
    body: Option<&[u8]>,
) -> anyhow::Result<api_client::Response> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot connect to cloud-hypervisor's API socket {} (is cloud-hypervisor running with --api-socket?)",
            socket.display()
        )
    })?;
    stream
        .set_read_timeout(Some(API_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(API_TIMEOUT)))
        .with_context(|| format!("cannot set timeouts on {}", socket.display()))?;
    api_client::request(&mut stream, "PUT", path, body).with_context(|| {
        format!(
            "PUT {path} on cloud-hypervisor's API socket {}",
            socket.display()
        )
    })
}

fn send(socket: &Path, body: &Secret, needles: &[Secret]) -> anyhow::Result<()> {
    check_socket_mode(socket);
    let fail = |path, r: api_client::Response, after| HttpError {
        path,
        socket: socket.display().to_string(),
        status: r.status,
        reason: r.reason.clone(),
        body: target::quote_body(&r.body, needles),
        after,
    };
    let r = put(socket, "/api/v1/vm.create", Some(body.expose()))?;
    if !r.is_success() {
        return Err(fail("/api/v1/vm.create", r, "; vm.boot was not sent").into());
    }
    let r = put(socket, "/api/v1/vm.boot", None)
        .context("the VM was created but not booted (ch-remote delete removes it)")?;
    if !r.is_success() {
        return Err(fail(
            "/api/v1/vm.boot",
            r,
            "; the VM was created but not booted (ch-remote delete removes it)",
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_public_names_are_set_only() {
        let s = SourceArgs {
            ordered: vec![
                SourceSpec::Set("ENVIRONMENT=test".into()),
                SourceSpec::Load("API_KEY:host-api-key".into()),
            ],
            ..SourceArgs::default()
        };
        let n = public_names(&s);
        assert!(n.contains("ENVIRONMENT") && !n.contains("API_KEY"));
    }
}
