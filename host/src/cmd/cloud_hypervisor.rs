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
//! who can connect: the socket must be private (0600, the VM's user). Before
//! the first byte is sent the socket and its directory must belong to this
//! process's user (or `--vmm-user`), and after each connect so must the
//! process listening (`SO_PEERCRED`): see [`crate::socket_trust`].

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
use crate::hv::cloud_hypervisor::{self as hv, Binary, BinaryError, ChError, PlatformKeys};
use crate::hv::fw_cfg;
use crate::show_path;
use crate::socket_trust::{self, Trusted};

/// Most bytes of a VmConfig file.
pub const VM_CONFIG_MAX: usize = 4 * 1024 * 1024;

/// How long to wait for each API answer (booting a large guest takes a while).
pub const API_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `cloud-hypervisor`.
pub fn run(args: CloudHypervisorArgs) -> Result<Exit> {
    let binary = binary(&args)?;
    match (&args.api_socket, &args.vm_config, &args.runtime_dir) {
        (Some(socket), Some(config), _) => {
            check(&binary, Binary::check_oem_strings)?;
            run_api(&args, socket, config)
        }
        (_, _, Some(dir)) if args.fw_cfg => {
            check(&binary, Binary::check_fw_cfg)?;
            run_fw_cfg(&args, dir)
        }
        _ => run_argv(&args, binary.as_ref()),
    }
}

/// The cloud-hypervisor in use, when the user named it.
fn binary(args: &CloudHypervisorArgs) -> Result<Option<Binary>> {
    Ok(
        match (&args.cloud_hypervisor, args.cloud_hypervisor_version) {
            (Some(path), _) => Some(Binary::inspect(path, args.fw_cfg)?),
            (None, Some(v)) => Some(Binary::stated(v)),
            (None, None) => None,
        },
    )
}

fn check(
    binary: &Option<Binary>,
    what: fn(&Binary) -> std::result::Result<(), BinaryError>,
) -> Result<()> {
    if let Some(b) = binary {
        what(b)?;
    }
    Ok(())
}

fn warn_arch() {
    if !hv::host_builds_smbios() {
        eprintln!("vmcreds-host: warning: {}", hv::AARCH64_WARNING);
    }
}

fn run_argv(args: &CloudHypervisorArgs, binary: Option<&Binary>) -> Result<Exit> {
    let keys = PlatformKeys::parse(&args.platform_key)?;
    if let Some(b) = binary {
        b.check_oem_strings()?;
        keys.check_version(b)?;
    }
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
    let trusted = Trusted::new(
        args.vmm_user
            .as_deref()
            .map(socket_trust::parse_user)
            .transpose()?,
    );
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
    send(socket, &trusted, &body, &needles)?;
    manifest.commit();
    eprintln!(
        "vmcreds-host: created and booted the VM through {} with {total} OEM strings ({} from vmcreds-host, {from_file} already in the VmConfig)",
        show_path(socket),
        total - from_file,
    );
    Ok(Exit::Success)
}

/// fw_cfg mode: the credential files, and one `--fw-cfg-config` line.
fn run_fw_cfg(args: &CloudHypervisorArgs, dir: &Path) -> Result<Exit> {
    if args.format != ChFormat::Arg {
        return Err(Usage(
            "--format is for the --platform value; fw_cfg mode prints one --fw-cfg-config line"
                .into(),
        )
        .into());
    }
    fw_cfg::check_runtime_dir(dir)?;
    let plan = load_plan(&args.sources, fw_cfg::BUDGET)?;
    let items = fw_cfg::items(&plan)?;
    let delivery = fw_cfg::write_files(&items, dir).map_err(|e| {
        IoError::new(
            format!(
                "cannot create the private credential files under {}",
                show_path(dir)
            ),
            e,
        )
    })?;
    drop(items);
    tracing::info!(dir = %show_path(delivery.dir.path()), files = delivery.files.len(), "fw_cfg files written");
    let manifest = ManifestOut::write(&args.sources, &plan)?;
    drop(plan);
    // The line is safe to splice unquoted into a shell command: the names
    // and the directory were checked, the rest is ours.
    let line = format!(
        "{} {}\n",
        fw_cfg::CH_FLAG,
        fw_cfg::ch_value(&delivery.files)
    );
    crate::exit::write_stdout(line.as_bytes())?;
    manifest.commit();
    let n = delivery.files.len();
    let kept = delivery.dir.keep();
    eprintln!(
        "vmcreds-host: {n} credential file(s) in {} (files 0400, directory 0700) for cloud-hypervisor to read; remove the directory when the VM stops (a systemd RuntimeDirectory= does); cloud-hypervisor needs its fw_cfg cargo feature, the guest qemu_fw_cfg (systemd loads it only with libkmod in the guest, or build it in)",
        show_path(&kept)
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
    /// Reason phrase: the standard one, or the server's scrubbed like the body.
    pub reason: String,
    /// The body: credentials redacted, base64 and hex runs removed, escaped,
    /// truncated.
    pub body: String,
    /// What state the VM is left in.
    pub after: &'static str,
}

impl Classify<Exit> for HttpError {
    fn exit(&self) -> Exit {
        Exit::Refused
    }
}

fn put(
    socket: &Path,
    trusted: &Trusted,
    path: &'static str,
    body: Option<&[u8]>,
) -> Result<api_client::Response> {
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
    // Whoever listens receives every credential: it must be the VM's user.
    let cred = socket_trust::peer_of(&stream).map_err(|e| {
        IoError::new(
            format!(
                "cannot read the credentials of the process on {}",
                show_path(socket)
            ),
            e,
        )
    })?;
    socket_trust::check_peer(&cred, socket, trusted)?;
    api_client::request(&mut stream, "PUT", path, body).map_err(|e| {
        crate::exit::Failure::from(e).context(format!(
            "PUT {path} on cloud-hypervisor's API socket {}",
            show_path(socket)
        ))
    })
}

fn send(socket: &Path, trusted: &Trusted, body: &Secret, needles: &[Secret]) -> Result<()> {
    socket_trust::check_path(socket, trusted)?;
    check_socket_mode(socket);
    let fail = |path, r: api_client::Response, after| HttpError {
        path,
        socket: show_path(socket),
        status: r.status,
        reason: hv::quote_reason(r.status, &r.reason, needles),
        body: hv::quote_body(&r.body, needles),
        after,
    };
    tracing::info!(socket = %show_path(socket), body_bytes = body.len(), "PUT /api/v1/vm.create");
    let r = put(socket, trusted, "/api/v1/vm.create", Some(body.expose()))?;
    tracing::info!(status = r.status, "vm.create answered");
    if !r.is_success() {
        return Err(fail("/api/v1/vm.create", r, "; vm.boot was not sent").into());
    }
    const CREATED: &str = "the VM was created but not booted (ch-remote delete removes it)";
    let r = put(socket, trusted, "/api/v1/vm.boot", None).map_err(|f| f.context(CREATED))?;
    tracing::info!(status = r.status, "vm.boot answered");
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
