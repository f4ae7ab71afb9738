//! The command line as typed (clap derive, no I/O). [`crate::plan`] validates it.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::hv::qemu_version::QemuVersion;
use clap::{ArgMatches, Args, Parser, Subcommand, ValueEnum};
use vmcreds_common::systemd::FIRST_SMBIOS_IMPORT;

/// vmcreds-host: deliver secrets to a VM as SMBIOS Type 11 credentials without
/// exposing them, and verify the guest's report.
#[derive(Debug, Parser)]
#[command(name = "vmcreds-host", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// More diagnostics on stderr: -v info, -vv debug, -vvv trace (names,
    /// sizes, paths and steps; never a value). RUST_LOG overrides the level.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deliver credentials to QEMU as `-smbios type=11,path=...` (sealed memfds or
    /// 0400 files), exec'ing COMMAND with the arguments appended, or printing them.
    Qemu(QemuArgs),
    /// Build one cloud-hypervisor `--platform` value, or create and boot the VM
    /// over the REST API so no secret touches argv.
    CloudHypervisor(CloudHypervisorArgs),
    /// Print crosvm's `--smbios oem-strings=[...]` (or the older `--oem-strings`) arguments.
    Crosvm(CrosvmArgs),
    /// Refused: Firecracker has no SMBIOS.
    Firecracker(RefusedArgs),
    /// Refused: kvmtool has no SMBIOS.
    Kvmtool(RefusedArgs),
    /// Print the manifest (names, byte counts, digests) of the sources as JSON.
    Manifest(ManifestArgs),
    /// Receive one guest report on a unix socket and verify it against the manifest.
    Collect(CollectArgs),
    /// Verify a guest report file against a manifest file.
    Verify(VerifyArgs),
}

/// How credential values are carried in OEM strings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum EncodingArg {
    /// `io.systemd.credential.binary:NAME=BASE64` (any bytes).
    #[default]
    Binary,
    /// `io.systemd.credential:NAME=VALUE` (refused for values with NUL).
    Text,
}

/// Credential sources and injection options, shared by every target and `manifest`.
/// The order of `--load`, `--load-dir`, `--set` and `--oem` is kept: clap
/// collects each flag apart, and [`SourceArgs::fill_order`] moves them into
/// [`SourceArgs::ordered`], the one list the rest of the program reads.
#[derive(Clone, Debug, Args)]
pub struct SourceArgs {
    /// File contents, binary-safe; PATH without '/' is looked up in $CREDENTIALS_DIRECTORY.
    #[arg(long = "load", value_name = "NAME:PATH")]
    load: Vec<String>,
    /// Each regular file of DIR is a credential named after it (dotfiles skipped,
    /// symlinks and other file types refused, empty directory refused).
    #[arg(long = "load-dir", value_name = "DIR")]
    load_dir: Vec<PathBuf>,
    /// A literal, non-secret value (it is on this process's argv).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// A raw OEM string passed as is (non-secret), e.g.
    /// io.systemd.credential:vmm.notify_socket=vsock-stream:2:8888.
    #[arg(long = "oem", value_name = "STRING")]
    oem: Vec<String>,
    /// Check names against systemd's rule instead of the portable `[A-Za-z0-9_.@+-]`.
    #[arg(long)]
    pub allow_any_name: bool,
    /// How values are carried.
    #[arg(long, value_enum, default_value_t = EncodingArg::Binary)]
    pub encoding: EncodingArg,
    /// Do not inject the vmcreds.manifest credential.
    #[arg(long)]
    pub no_manifest: bool,
    /// Write the manifest that was injected (same nonce) to FILE (0600, atomically).
    #[arg(long, value_name = "FILE")]
    pub manifest_out: Option<PathBuf>,
    /// The oldest systemd version among the guests (252 or newer). Before 257,
    /// systemd reads only the first 4096 bytes of the Type 11 entry, so the
    /// strings must fit in that.
    #[arg(long, value_name = "N", default_value_t = FIRST_SMBIOS_IMPORT)]
    pub guest_systemd: u32,
    /// The sources in command-line order, moved here from clap's four lists
    /// by [`SourceArgs::fill_order`].
    #[arg(skip)]
    pub ordered: Vec<SourceSpec>,
}

/// One source flag as typed, in command-line order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceSpec {
    /// `--load NAME:PATH`.
    Load(String),
    /// `--load-dir DIR`.
    LoadDir(PathBuf),
    /// `--set NAME=VALUE`.
    Set(String),
    /// `--oem STRING`.
    Oem(String),
}

impl Default for SourceArgs {
    fn default() -> Self {
        SourceArgs {
            load: Vec::new(),
            load_dir: Vec::new(),
            set: Vec::new(),
            oem: Vec::new(),
            allow_any_name: false,
            encoding: EncodingArg::Binary,
            no_manifest: false,
            manifest_out: None,
            guest_systemd: FIRST_SMBIOS_IMPORT,
            ordered: Vec::new(),
        }
    }
}

impl SourceArgs {
    /// Rebuilds the command-line order of the source flags from clap's
    /// indices, moving them out of clap's per-flag lists (left empty).
    pub fn fill_order(&mut self, m: &ArgMatches) {
        let mut all: Vec<(usize, SourceSpec)> = Vec::new();
        let idx =
            |id: &str| -> Vec<usize> { m.indices_of(id).map(|i| i.collect()).unwrap_or_default() };
        all.extend(
            idx("load").into_iter().zip(
                std::mem::take(&mut self.load)
                    .into_iter()
                    .map(SourceSpec::Load),
            ),
        );
        all.extend(
            idx("load_dir").into_iter().zip(
                std::mem::take(&mut self.load_dir)
                    .into_iter()
                    .map(SourceSpec::LoadDir),
            ),
        );
        all.extend(
            idx("set").into_iter().zip(
                std::mem::take(&mut self.set)
                    .into_iter()
                    .map(SourceSpec::Set),
            ),
        );
        all.extend(
            idx("oem").into_iter().zip(
                std::mem::take(&mut self.oem)
                    .into_iter()
                    .map(SourceSpec::Oem),
            ),
        );
        all.sort_by_key(|(i, _)| *i);
        self.ordered = all.into_iter().map(|(_, s)| s).collect();
    }
}

/// `qemu` arguments.
#[derive(Debug, Args)]
pub struct QemuArgs {
    /// Sources.
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Write 0400 files in a fresh private 0700 directory under DIR instead of
    /// sealed memfds.
    #[arg(long, value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,
    /// The QEMU release in use, instead of asking COMMAND's program
    /// `--version` (for wrappers, and for printed arguments).
    #[arg(long, value_name = "X.Y.Z")]
    pub qemu_version: Option<QemuVersion>,
    /// Deliver even to a QEMU release without the `path=` buffer-overrun fix
    /// (before 7.2.18, 8.0–9.2.3), e.g. one whose distribution backported it.
    #[arg(long)]
    pub allow_unfixed_qemu: bool,
    /// The QEMU command line to run with the `-smbios` arguments appended.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Output format of `cloud-hypervisor`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ChFormat {
    /// The two argv words `--platform` and its value, one per line.
    #[default]
    Arg,
    /// `MICROVM_PLATFORM_OPS=...` for runners that read it (systemd EnvironmentFile= syntax).
    Env,
    /// A JSON object `{"platform": {...}}` with `oem_strings` as an array.
    Json,
}

/// `cloud-hypervisor` arguments.
#[derive(Debug, Args)]
pub struct CloudHypervisorArgs {
    /// Sources.
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Another `--platform` key to put in the same value (e.g. serial_number=abc).
    #[arg(long = "platform-key", value_name = "K=V")]
    pub platform_key: Vec<String>,
    /// Output format (argv mode).
    #[arg(long, value_enum, default_value_t = ChFormat::Arg)]
    pub format: ChFormat,
    /// API mode: the cloud-hypervisor `--api-socket` to send vm.create and vm.boot to (keep it private, 0600 and owned by the VM's user: GET /api/v1/vm.info returns the config, credentials included, to anyone who can connect).
    #[arg(long, value_name = "PATH", requires = "vm_config")]
    pub api_socket: Option<PathBuf>,
    /// API mode: the VmConfig JSON to create the VM from (OEM strings are merged in).
    #[arg(long, value_name = "FILE", requires = "api_socket")]
    pub vm_config: Option<PathBuf>,
    /// API mode: the user cloud-hypervisor runs as, when it is not this one.
    /// The API socket, its directory and the process answering on it must
    /// belong to this process's user or to this one; anything else is refused
    /// before a byte is sent.
    #[arg(long, value_name = "USER|UID", requires = "api_socket")]
    pub vmm_user: Option<String>,
    /// fw_cfg mode: write each credential as a 0400 file in a fresh 0700
    /// directory under --runtime-dir and print one `--fw-cfg-config items=[...]`
    /// (paths only on argv; needs a cloud-hypervisor built with its fw_cfg
    /// feature, and qemu_fw_cfg in the guest).
    #[arg(long, requires = "runtime_dir", conflicts_with_all = ["api_socket", "platform_key"])]
    pub fw_cfg: bool,
    /// fw_cfg mode: where the private directory of credential files is made
    /// (absolute; kept for cloud-hypervisor to read: remove it when the VM stops).
    #[arg(long, value_name = "DIR", requires = "fw_cfg")]
    pub runtime_dir: Option<PathBuf>,
    /// The cloud-hypervisor binary the output is for: its --version (and,
    /// with --fw-cfg, its fw_cfg feature) is checked before anything is written.
    #[arg(long, value_name = "PATH", conflicts_with = "cloud_hypervisor_version")]
    pub cloud_hypervisor: Option<PathBuf>,
    /// The cloud-hypervisor release the output is for (e.g. v52.0), when the
    /// binary is not at hand: --platform keys it lacks are refused.
    #[arg(long, value_name = "VERSION", value_parser = parse_ch_version)]
    pub cloud_hypervisor_version: Option<crate::hv::cloud_hypervisor::Version>,
}

fn parse_ch_version(s: &str) -> Result<crate::hv::cloud_hypervisor::Version, String> {
    s.parse().map_err(|()| {
        format!(
            "expected a release such as v53.0, not \"{}\"",
            vmcreds_common::escape::escape_name(s.as_bytes())
        )
    })
}

/// Which crosvm option carries the strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CrosvmForm {
    /// `--smbios oem-strings=[...]` (crosvm since 2023).
    Smbios,
    /// One deprecated `--oem-strings STRING` per string (older crosvm).
    OemStrings,
}

/// `crosvm` arguments.
#[derive(Debug, Args)]
pub struct CrosvmArgs {
    /// Sources.
    #[command(flatten)]
    pub sources: SourceArgs,
    /// The option form to print (default: what --crosvm's `run --help`
    /// lists, else smbios).
    #[arg(long, value_enum)]
    pub form: Option<CrosvmForm>,
    /// The crosvm binary the output is for: its `run --help` decides the form.
    #[arg(long, value_name = "PATH")]
    pub crosvm: Option<PathBuf>,
}

/// Arguments of a refused target (accepted so the refusal, not a usage error, is shown).
#[derive(Debug, Args)]
pub struct RefusedArgs {
    /// Anything.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<OsString>,
}

/// `manifest` arguments.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// Sources.
    #[command(flatten)]
    pub sources: SourceArgs,
}

/// `collect` arguments.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// Where to listen: unix:PATH (bound 0600), or vsock:PORT (an AF_VSOCK port of this
    /// kernel, for vhost-vsock VMMs: crosvm --vsock, QEMU vhost-vsock-pci; the guest reports
    /// to vsock:2:PORT). Listening before this prints "listening". Optional when started by
    /// socket activation (LISTEN_PID/LISTEN_FDS, fd 3: AF_UNIX or AF_VSOCK).
    #[arg(long, value_name = "unix:PATH|vsock:PORT")]
    pub listen: Option<String>,
    /// The manifest that was injected (from --manifest-out).
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// Give up after this many seconds without a complete report.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
    /// Also write the report received to FILE (0600, atomically).
    #[arg(long, value_name = "FILE")]
    pub report_out: Option<PathBuf>,
    /// Print `vmcreds.verdict/1` JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// `verify` arguments.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The manifest that was injected.
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// The guest's report.
    #[arg(long, value_name = "FILE")]
    pub report: PathBuf,
    /// Print `vmcreds.verdict/1` JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Parses `args`, keeping the order of source flags.
pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().try_get_matches_from(args)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let Some((_, sub)) = matches.subcommand() {
        match &mut cli.command {
            Command::Qemu(a) => a.sources.fill_order(sub),
            Command::CloudHypervisor(a) => a.sources.fill_order(sub),
            Command::Crosvm(a) => a.sources.fill_order(sub),
            Command::Manifest(a) => a.sources.fill_order(sub),
            _ => {}
        }
    }
    Ok(cli)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn test_source_order_is_kept() {
        let cli = parse_from([
            "vmcreds-host",
            "qemu",
            "--set",
            "B=1",
            "--load",
            "A:/x",
            "--oem",
            "hello",
            "--set",
            "C=2",
            "--load-dir",
            "/d",
            "--",
            "qemu-system-x86_64",
            "-M",
            "q35",
        ])
        .unwrap();
        let Command::Qemu(q) = cli.command else {
            panic!("not qemu")
        };
        assert_eq!(
            q.sources.ordered,
            vec![
                SourceSpec::Set("B=1".into()),
                SourceSpec::Load("A:/x".into()),
                SourceSpec::Oem("hello".into()),
                SourceSpec::Set("C=2".into()),
                SourceSpec::LoadDir("/d".into()),
            ]
        );
        // One copy of the sources: clap's per-flag lists were moved out.
        let s = &q.sources;
        assert!(s.load.is_empty() && s.load_dir.is_empty() && s.set.is_empty() && s.oem.is_empty());
        assert_eq!(
            q.command,
            vec![
                OsString::from("qemu-system-x86_64"),
                "-M".into(),
                "q35".into()
            ]
        );
    }

    #[test]
    fn test_every_contract_flag_exists() {
        for args in [
            &[
                "vmcreds-host",
                "qemu",
                "--runtime-dir",
                "/r",
                "--no-manifest",
                "--manifest-out",
                "/m",
                "--allow-any-name",
                "--encoding",
                "text",
            ][..],
            &[
                "vmcreds-host",
                "cloud-hypervisor",
                "--platform-key",
                "a=b",
                "--format",
                "env",
            ],
            &[
                "vmcreds-host",
                "cloud-hypervisor",
                "--api-socket",
                "/s",
                "--vm-config",
                "/c",
            ],
            &["vmcreds-host", "crosvm", "--set", "A=b"],
            &["vmcreds-host", "firecracker"],
            &["vmcreds-host", "kvmtool", "--load", "x:y"],
            &["vmcreds-host", "manifest", "--load-dir", "/d"],
            &[
                "vmcreds-host",
                "collect",
                "--listen",
                "unix:/s",
                "--manifest",
                "/m",
                "--timeout",
                "5",
                "--report-out",
                "/r",
                "--json",
            ],
            &[
                "vmcreds-host",
                "verify",
                "--manifest",
                "/m",
                "--report",
                "/r",
                "--json",
            ],
        ] {
            assert!(parse_from(args.iter().copied()).is_ok(), "{args:?}");
        }
        assert!(parse_from(["vmcreds-host", "cloud-hypervisor", "--api-socket", "/s"]).is_err());
    }
}
