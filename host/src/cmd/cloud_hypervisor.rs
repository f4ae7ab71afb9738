//! `vmcreds-host cloud-hypervisor [SOURCES] [--platform-key K=V]... [--format arg|env|json]`
//! and API mode `vmcreds-host cloud-hypervisor --api-socket PATH --vm-config FILE [SOURCES]`.
//!
//! Argv mode prints the one `--platform` value (`--format arg`: the two
//! words, one per line; `env`: `MICROVM_PLATFORM_OPS=VALUE`; `json`: the
//! strings and the words as JSON). The credentials are then on
//! cloud-hypervisor's argv, so `arg` and `env` warn once on stderr.
//!
//! API mode reads the VmConfig JSON (never writing it back); its own
//! `platform.oem_strings` enter the plan first, so duplicates and the budget
//! are checked once over everything; the plan's strings replace
//! `platform.oem_strings` in the `PUT /api/v1/vm.create` body, then
//! `PUT /api/v1/vm.boot` follows, over the unix socket. Every check happens
//! before the socket is opened; a failed `vm.create` sends nothing more.
//! `GET /api/v1/vm.info` returns the config, credentials included, to anyone
//! who can connect: the socket must be private (0600, the VM's user).

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use vmcreds_common::Secret;
use vmcreds_os::bounded::read_bounded;

use super::{load_plan, load_plan_with, print_delivery, ManifestOut};
use crate::api_client;
use crate::cli::{ChFormat, CloudHypervisorArgs};
use crate::exit::{Classify, Exit, IoError, Result, Usage};
use crate::hv::cloud_hypervisor::{self as hv, ChError, PlatformKeys};
use crate::show_path;

/// Most bytes of a VmConfig file.
pub const VM_CONFIG_MAX: usize = 4 * 1024 * 1024;

/// How long to wait for each API answer (booting a large guest takes a while).
pub const API_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `cloud-hypervisor`.
pub fn run(args: CloudHypervisorArgs) -> Result<Exit> {
    match (&args.api_socket, &args.vm_config) {
        (Some(socket), Some(config)) => run_api(&args, socket, config),
        _ => run_argv(&args),
    }
}

fn warn_arch() {
    if !hv::host_builds_smbios() {
        eprintln!("vmcreds-host: warning: {}", hv::AARCH64_WARNING);
    }
}

fn run_argv(args: &CloudHypervisorArgs) -> Result<Exit> {
    let keys = PlatformKeys::parse(&args.platform_key)?;
    let plan = load_plan(&args.sources, hv::BUDGET)?;
    let checked = hv::check_strings(&plan)?;
    if args.format == ChFormat::Env {
        hv::check_env_safe(&checked, &keys)?;
    }
    let value = hv::platform_value(&checked, &keys);
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
            o.extend_from_slice(hv::ENV_VAR.as_bytes());
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
        ChFormat::Json => hv::json_document(&checked, &keys, &value),
    };
    drop(checked);
    warn_arch();
    let manifest = ManifestOut::write(&args.sources, &plan)?;
    drop(plan);
    if args.format != ChFormat::Json {
        eprintln!("vmcreds-host: warning: {}", hv::ARGV_WARNING);
    }
    print_delivery(&out, manifest)
}

/// Warns when the API socket can be reached by other users.
fn check_socket_mode(socket: &Path) {
    let Ok(meta) = std::fs::metadata(socket) else {
        return; // connect reports it
    };
    if meta.file_type().is_socket() && meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "vmcreds-host: warning: {} has mode {:04o}; anyone who can connect to it can read the credentials back with GET /api/v1/vm.info; make it 0600, owned by the VM's user",
            show_path(socket),
            meta.permissions().mode() & 0o7777
        );
    }
}

fn run_api(args: &CloudHypervisorArgs, socket: &Path, config: &Path) -> Result<Exit> {
    if !args.platform_key.is_empty() {
        return Err(ChError::KeyInApiMode.into());
    }
    if args.format != ChFormat::Arg {
        return Err(Usage(
            "--format is for the --platform value (argv mode); API mode prints nothing to pass on"
                .into(),
        )
        .into());
    }
    let file = show_path(config);
    let bytes = std::fs::File::open(config)
        .and_then(|f| read_bounded(f, VM_CONFIG_MAX))
        .map_err(|e| IoError::new(format!("cannot read --vm-config {file}"), e))?;
    if bytes.over_bound {
        return Err(ChError::VmConfig {
            file,
            problem: format!("over {VM_CONFIG_MAX} bytes, more than any VmConfig"),
        }
        .into());
    }
    let mut vm = hv::read_vm_config(&bytes.bytes, &file)?;
    drop(bytes);
    let existing = std::mem::take(&mut vm.existing);
    let from_file = existing.len();
    let plan = load_plan_with(&args.sources, hv::BUDGET, existing)?;
    let body = vm.into_body(&plan)?;
    let needles = hv::redaction_needles(&plan);
    warn_arch();
    let manifest = ManifestOut::write(&args.sources, &plan)?;
    let total = plan.strings.len();
    drop(plan);
    send(socket, &body, &needles)?;
    manifest.commit();
    eprintln!(
        "vmcreds-host: created and booted the VM through {} with {total} OEM strings ({} from vmcreds-host, {from_file} already in the VmConfig)",
        show_path(socket),
        total - from_file,
    );
    Ok(Exit::Success)
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

impl Classify for HttpError {
    fn exit(&self) -> Exit {
        Exit::Refused
    }
}

fn put(socket: &Path, path: &'static str, body: Option<&[u8]>) -> Result<api_client::Response> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        IoError::new(
            format!(
                "cannot connect to cloud-hypervisor's API socket {} (is cloud-hypervisor running with --api-socket?)",
                show_path(socket)
            ),
            e,
        )
    })?;
    stream
        .set_read_timeout(Some(API_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(API_TIMEOUT)))
        .map_err(|e| IoError::new(format!("cannot set timeouts on {}", show_path(socket)), e))?;
    api_client::request(&mut stream, "PUT", path, body).map_err(|e| {
        crate::exit::Failure::from(e).context(format!(
            "PUT {path} on cloud-hypervisor's API socket {}",
            show_path(socket)
        ))
    })
}

fn send(socket: &Path, body: &Secret, needles: &[Secret]) -> Result<()> {
    check_socket_mode(socket);
    let fail = |path, r: api_client::Response, after| HttpError {
        path,
        socket: show_path(socket),
        status: r.status,
        reason: r.reason.clone(),
        body: hv::quote_body(&r.body, needles),
        after,
    };
    let r = put(socket, "/api/v1/vm.create", Some(body.expose()))?;
    if !r.is_success() {
        return Err(fail("/api/v1/vm.create", r, "; vm.boot was not sent").into());
    }
    const CREATED: &str = "the VM was created but not booted (ch-remote delete removes it)";
    let r = put(socket, "/api/v1/vm.boot", None).map_err(|f| f.context(CREATED))?;
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
