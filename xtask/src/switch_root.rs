//! The switch-root scenarios of `cargo xtask test` (issue 11 §3): a systemd initrd built by
//! Debian's dracut, a switch-root into an ext4 root file system on a virtio disk, which is how
//! most real distributions boot, with the credentials injected by the host CLI and the guest's
//! report collected and judged by `vmcreds-host collect`, as in every other scenario.
//!
//! Images (cached under `target/vm/switch-root/<generation>-<key>/`, the key a SHA-256 over the
//! recipe, built once):
//!
//! ```text
//! tree/                      the generation's debootstrap'd base (image.rs's base.cpio.gz,
//!                            unpacked), the whole module tree of the test kernel (depmod'ed),
//!                            and dracut, kmod, e2fsprogs, zstd installed by apt in a chroot
//! initrd-plain.img           dracut --no-hostonly --add systemd (systemd is PID 1 in it)
//! initrd-no-fw-cfg.img       the same with --omit-drivers qemu_fw_cfg
//! root-<key>.img             mke2fs -t ext4 -L vmcreds-root -d tree (units, fstab, links added)
//! logs/                      one log per build step, kept
//! ```
//!
//! Per run (`target/vm/runs/<stamp>-<case>-<generation>-<pid>/`): a small ext4 disk made with
//! `mke2fs -d`, labelled `vmcreds-run` and mounted at `/usr/local` by the root's fstab, holds
//! what changes from run to run (the static `vmcreds-guest`, the probe script, the case's
//! `check` arguments and `run.sh`), so the cached root image never changes; both disks are
//! attached with `snapshot=on`, so the guest never writes either file, and the run fails if
//! the cached root image's size or modification time changed.
//!
//! The cases and what each models on real systemd (a separate root file system, PID 1 of the
//! initrd and PID 1 after switch-root both from the generation under test):
//! - `switch-root-ok`: the plain dracut initrd; the initrd's PID 1 imports the SMBIOS
//!   credentials, `switch_root()` moves `/run` (with the `@system` mount) into the new root,
//!   PID 1 after switch-root keeps it: `initrd_import` ok, `switch_root_handoff` ok, verified.
//! - `switch-root-lost`: NixOS's stage 1 before NixOS/nixpkgs#405687 (NixOS/nixpkgs#421388,
//!   open): an initrd unit bind-mounts `/run` at `/sysroot/run` non-recursively before
//!   switch-root, so the `@system` submount stays behind and PID 1, whose
//!   `$CREDENTIALS_DIRECTORY` survives the re-exec, imports nothing again: imported in the
//!   initrd, then lost. The unit is appended to the plain initrd as one more cpio archive, so
//!   the two boots differ by exactly that unit.
//! - `switch-root-fw-cfg-not-in-initrd`: the issue asks for "dmi_sysfs missing from the
//!   initrd", but Debian's kernels build dmi-sysfs in (`CONFIG_DMI_SYSFS=y` in the 6.1 cloud
//!   and generic and the 6.12 cloud kernels), so it is always there when the initrd's PID 1
//!   imports and that boot cannot be made with a Debian kernel (it needs a kernel with
//!   `CONFIG_DMI_SYSFS=m`, like NixOS's, systemd/systemd#37391). The same rule, measured with
//!   a firmware driver that *is* a module: `qemu_fw_cfg` left out of the initrd
//!   (`--omit-drivers`) while a credential is offered over fw_cfg and others over SMBIOS. The
//!   initrd's PID 1 imports the SMBIOS ones and so sets `$CREDENTIALS_DIRECTORY`; PID 1 after
//!   switch-root does not read fw_cfg again although the root loads the module: never
//!   imported, `initrd_import` failed. The host's verdict covers what the host injected
//!   (SMBIOS) and is `verified`; the guest's report, collected by the host, names the lost
//!   fw_cfg credential and the cause.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::flags::Test;
use crate::image::{self, Overlay};
use crate::leak;
use crate::scenarios::{self, Expect, Guest, Scenario, Source};
use crate::test::{self, Collected, Env, Expected, Outcome};
use crate::util::{self, cache_key, mkdirp, write_file};
use crate::vm::{self, Guarded, VmSpec};

/// Generations the switch-root cases run on. trixie's systemd (257) logs what the initrd
/// imported (`Received regular credentials: …`, 254 and later) and its dracut (106) builds
/// a systemd initrd; bookworm's 252 logs no import summary (its `initrd_import` is
/// `unknown`), and sid moves too fast to pin a dracut recipe to.
pub const GENERATIONS: &[&str] = &["trixie"];

/// Packages installed into the base tree with apt: dracut builds the initrd inside the root
/// of the generation under test, so the initrd's systemd is that generation's; e2fsprogs puts
/// `e2fsck` into the initrd (systemd-fsck-root), zstd is dracut's compressor.
const PACKAGES: &[&str] = &["dracut", "kmod", "e2fsprogs", "zstd"];

/// Bumped whenever the tree or initrd build below changes.
const TREE_RECIPE: &str = "switch-root-tree-2";

/// Bumped whenever the root image's configuration below changes.
const ROOT_RECIPE: &str = "switch-root-image-1";

/// Drivers dracut must put into every initrd (`virtio_blk` for the root disk; `ext4` is
/// built into the cloud kernel, named anyway so that another kernel cannot drop it).
const DRACUT_DRIVERS: &str = "virtio_blk virtio_pci virtio_console ext4";

/// The root disk's and the per-run disk's file system labels.
const ROOT_LABEL: &str = "vmcreds-root";
const RUN_LABEL: &str = "vmcreds-run";

/// The root image's size (sparse; `mke2fs -d` writes only what the tree holds, ~450 MB).
const ROOT_IMAGE_SIZE: &str = "1536M";

/// fstab of the root: the per-run disk is mounted read-only over `/usr/local`.
const FSTAB: &str = "\
LABEL=vmcreds-root / ext4 rw 0 1
LABEL=vmcreds-run /usr/local ext4 ro 0 0
";

/// Deadlines of the build steps (the first build needs the network).
const APT_DEADLINE: Duration = Duration::from_secs(1200);
const DRACUT_DEADLINE: Duration = Duration::from_secs(900);
const LOCAL_DEADLINE: Duration = Duration::from_secs(600);

/// The NixOS-like initrd unit (NixOS/nixpkgs#421388), as measured in the prototype.
const NIXOS_RUN_BIND_UNIT: &str = "\
# Imitates NixOS's stage-1 /sysroot/run (nixpkgs nixos/modules/system/boot/systemd/initrd.nix
# before NixOS/nixpkgs#405687): /run bind-mounted into the new root without its submounts,
# before systemd's switch_root() would move /run recursively.
[Unit]
DefaultDependencies=no
After=sysroot.mount
Requires=sysroot.mount
Before=initrd-fs.target
[Mount]
What=/run
Where=/sysroot/run
Type=none
Options=bind
";

/// Runs inside the chroot with its own mount namespace (`unshare --mount`): the API file
/// systems exist only while the command runs and vanish with it, so no mount is ever left
/// under the cache (where a later `remove_dir_all` would follow it).
const IN_CHROOT: &str = "mount -t proc proc /proc && mount -t sysfs sysfs /sys && exec \"$@\"";

/// Which initrd a case boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initrd {
    /// dracut's systemd initrd as Debian builds it.
    Plain,
    /// The plain initrd plus the NixOS-like `/sysroot/run` bind mount.
    NixosRunBind,
    /// dracut's systemd initrd without `qemu_fw_cfg`.
    NoFwCfg,
}

/// One switch-root case.
#[derive(Debug, Clone)]
pub struct Case {
    /// Name used by `--only` and in the summary.
    pub name: &'static str,
    /// What it models, for people.
    pub about: &'static str,
    /// The initrd it boots.
    pub initrd: Initrd,
    /// Host sources, in order (`vmcreds-host qemu`).
    pub sources: Vec<Source>,
    /// `-fw_cfg name=opt/io.systemd.credentials/NAME,file=...` items (outside the host CLI).
    pub fw_cfg: Vec<(String, Vec<u8>)>,
    /// Extra `vmcreds-guest check` arguments.
    pub check_args: Vec<String>,
    /// `collect`'s exit code.
    pub host_exit: i32,
    /// The host verdict.
    pub result: &'static str,
    /// (name, status) rows of the host verdict.
    pub rows: Vec<(String, &'static str)>,
    /// (precondition id, state) the guest report must hold.
    pub preconditions: Vec<(&'static str, &'static str)>,
    /// (name, status, words of the reason) rows the guest report must hold.
    pub guest_rows: Vec<(String, &'static str, &'static str)>,
    /// Whether `/run/credentials/@system` is a mount point after switch-root.
    pub system_mounted: bool,
}

fn load(name: &str, file: &str, data: Vec<u8>) -> Source {
    Source::Load {
        name: name.into(),
        file: file.into(),
        data,
    }
}

/// Every switch-root case, in run order.
pub fn all() -> Vec<Case> {
    let api_key = || {
        load(
            "API_KEY",
            "host-api-key",
            scenarios::test_secret("api-key", 44),
        )
    };
    let db = || {
        load(
            "DB_PASSWORD",
            "host-db-password",
            scenarios::test_secret("db-password", 44),
        )
    };
    let lost = "then lost at switch-root";
    vec![
        Case {
            name: "switch-root-ok",
            about: "dracut's systemd initrd imports the SMBIOS credentials and switch_root() carries the @system mount into the ext4 root: initrd_import ok, switch_root_handoff ok, verified",
            initrd: Initrd::Plain,
            sources: scenarios::reference_sources(),
            fw_cfg: vec![],
            check_args: vec![],
            host_exit: 0,
            result: "verified",
            rows: ["API_KEY", "DB_PASSWORD", "JWT_SECRET", "ENVIRONMENT", "CLUSTER"]
                .iter()
                .map(|n| (n.to_string(), "ok"))
                .collect(),
            preconditions: vec![("initrd_import", "ok"), ("switch_root_handoff", "ok")],
            guest_rows: vec![],
            system_mounted: true,
        },
        Case {
            name: "switch-root-lost",
            about: "NixOS-like initrd (NixOS/nixpkgs#421388): /run bind-mounted at /sysroot/run non-recursively, the @system mount stays behind; imported in the initrd, then lost at switch-root: switch_root_handoff failed",
            initrd: Initrd::NixosRunBind,
            sources: vec![
                api_key(),
                db(),
                Source::Set("ENVIRONMENT".into(), "test".into()),
            ],
            fw_cfg: vec![],
            check_args: vec![],
            host_exit: 1,
            result: "failed",
            rows: ["API_KEY", "DB_PASSWORD", "ENVIRONMENT"]
                .iter()
                .map(|n| (n.to_string(), "missing"))
                .collect(),
            preconditions: vec![("initrd_import", "ok"), ("switch_root_handoff", "failed")],
            guest_rows: ["API_KEY", "DB_PASSWORD", "ENVIRONMENT"]
                .iter()
                .map(|n| (n.to_string(), "missing", lost))
                .collect(),
            system_mounted: false,
        },
        Case {
            name: "switch-root-fw-cfg-not-in-initrd",
            about: "a firmware driver missing from the initrd, never imported: qemu_fw_cfg omitted by dracut, the initrd imports SMBIOS only, PID 1 after switch-root never reads fw_cfg: initrd_import failed (stands in for dmi_sysfs missing from the initrd, which Debian's kernels cannot boot: CONFIG_DMI_SYSFS=y)",
            initrd: Initrd::NoFwCfg,
            sources: vec![api_key()],
            fw_cfg: vec![("FW_TOKEN".into(), scenarios::test_secret("fw-token", 32))],
            check_args: vec!["--expect".into(), "FW_TOKEN:32".into()],
            host_exit: 0,
            result: "verified",
            rows: vec![("API_KEY".into(), "ok")],
            preconditions: vec![("initrd_import", "failed"), ("switch_root_handoff", "ok")],
            guest_rows: vec![("FW_TOKEN".into(), "missing", "read no fw_cfg")],
            system_mounted: true,
        },
    ]
}

/// The cached images of one generation.
#[derive(Debug, Clone)]
pub struct Images {
    /// `trixie-dracut`: the generation and the initrd builder, for the summary.
    pub label: String,
    /// The ext4 root image (never written).
    pub root_img: PathBuf,
    /// dracut's systemd initrd.
    pub initrd_plain: PathBuf,
    /// The same without `qemu_fw_cfg`.
    pub initrd_no_fw_cfg: PathBuf,
}

/// Runs the switch-root cases selected by `flags` (`--only`, `--generations`) one VM at a
/// time; returns summary lines and whether any failed. Nothing is printed for a selection
/// that names none of them.
pub fn run(env: &Env, flags: &Test) -> (Vec<String>, bool) {
    let cases: Vec<Case> = all()
        .into_iter()
        .filter(|c| flags.only.is_empty() || flags.only.iter().any(|o| o == c.name))
        .collect();
    let gens: Vec<String> = flags
        .generations()
        .into_iter()
        .filter(|g| GENERATIONS.contains(&g.as_str()))
        .collect();
    let mut lines = Vec::new();
    let mut failed = false;
    if cases.is_empty() {
        return (lines, failed);
    }
    for g in &gens {
        let t = Instant::now();
        let images = match images(env, g) {
            Ok(i) => i,
            Err(e) => {
                for c in &cases {
                    lines.push(format!(
                        "FAIL    {} [{g}-dracut] ({}): image: {e:#}",
                        c.name,
                        util::secs(t.elapsed())
                    ));
                }
                failed = true;
                continue;
            }
        };
        eprintln!(
            "xtask: switch-root images {} ready in {}",
            images.label,
            util::secs(t.elapsed())
        );
        for c in &cases {
            let t = Instant::now();
            eprintln!("xtask: run {} on {}: {}", c.name, images.label, c.about);
            let o =
                run_case(env, &images, c, g).unwrap_or_else(|e| Outcome::Fail(format!("{e:#}")));
            let (label, detail) = match &o {
                Outcome::Pass => ("PASS", String::new()),
                Outcome::Fail(m) => ("FAIL", format!(": {m}")),
            };
            failed |= matches!(o, Outcome::Fail(_));
            eprintln!(
                "xtask: {} on {}: {label} ({})",
                c.name,
                images.label,
                util::secs(t.elapsed())
            );
            lines.push(format!(
                "{label:<7} {} [{}] ({}){detail}",
                c.name,
                images.label,
                util::secs(t.elapsed())
            ));
        }
    }
    (lines, failed)
}

/// Runs `cmd` in its own process group with a deadline, output to `log`; fails naming the log.
fn step(what: &str, cmd: &mut Command, log: &Path, deadline: Duration) -> Result<()> {
    let t = Instant::now();
    let mut g = Guarded::spawn(what, cmd, log, vec![])?;
    let st = g.wait_until(Instant::now() + deadline)?;
    if !st.success() {
        bail!("{what} failed ({st}); log kept at {}", log.display());
    }
    g.ok = true;
    eprintln!("xtask: {what}: {}", util::secs(t.elapsed()));
    Ok(())
}

/// A command run inside `tree` (chroot) in a private mount namespace with `/proc` and `/sys`.
fn in_chroot(tree: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "--", "chroot"])
        .arg(tree)
        .args(["/bin/sh", "-c", IN_CHROOT, "sh"])
        .args(args)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C");
    c
}

/// Builds (or reuses) the images of `generation`.
pub fn images(env: &Env, generation: &str) -> Result<Images> {
    let base = image::systemd_base(&env.root, generation, &env.mirror)?;
    let g = image::Generation::by_name(generation)
        .with_context(|| format!("unknown generation {generation}"))?;
    // The base archive's directory name holds image.rs's recipe key: a new base, a new tree.
    let key = cache_key([
        TREE_RECIPE.as_bytes(),
        generation.as_bytes(),
        env.mirror.as_bytes(),
        base_dir_name(&base.cpio).as_bytes(),
        env.kernel.package.as_bytes(),
        env.kernel.release.as_bytes(),
        PACKAGES.join(",").as_bytes(),
        DRACUT_DRIVERS.as_bytes(),
    ]);
    let dir = env
        .root
        .join("target/vm/switch-root")
        .join(format!("{generation}-{key}"));
    let tree = dir.join("tree");
    let logs = dir.join("logs");
    let done = dir.join(".tree-done");
    if !done.exists() {
        let t = Instant::now();
        let _ = fs::remove_dir_all(&dir);
        mkdirp(&tree)?;
        mkdirp(&logs)?;
        build_tree(env, g.suite, &base.cpio, &dir, &tree, &logs)?;
        fs::write(&done, util::secs(t.elapsed()))?;
        eprintln!(
            "xtask: switch-root tree and initrds {generation} built in {}",
            util::secs(t.elapsed())
        );
    }
    let root_img = root_image(env, &dir, &key, &tree, &logs)?;
    Ok(Images {
        label: format!("{generation}-dracut"),
        root_img,
        initrd_plain: dir.join("initrd-plain.img"),
        initrd_no_fw_cfg: dir.join("initrd-no-fw-cfg.img"),
    })
}

/// The name of the directory that holds a base archive (`trixie-<key>`).
fn base_dir_name(cpio: &Path) -> String {
    cpio.parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| cpio.to_string_lossy().into_owned())
}

/// The slow layer: the base unpacked, the kernel's modules, dracut, two initrds.
fn build_tree(
    env: &Env,
    suite: &str,
    base: &Path,
    dir: &Path,
    tree: &Path,
    logs: &Path,
) -> Result<()> {
    // 1. The generation's debootstrap'd base (owners flattened to root by its packing).
    let cpio = dir.join("base.cpio");
    let mut gz = Command::new("gzip");
    gz.arg("-dc").arg(base);
    let mut g = Guarded::spawn_split(
        "gunzip base",
        &mut gz,
        &cpio,
        Some(&logs.join("gunzip.log")),
        vec![],
    )?;
    let st = g.wait_until(Instant::now() + LOCAL_DEADLINE)?;
    if !st.success() {
        bail!("gzip -dc {} failed ({st})", base.display());
    }
    g.ok = true;
    let mut c = Command::new("cpio");
    c.args(["-i", "-d", "-m", "--quiet", "--no-absolute-filenames", "-F"])
        .arg(&cpio)
        .current_dir(tree);
    step(
        "unpack base",
        &mut c,
        &logs.join("unpack.log"),
        LOCAL_DEADLINE,
    )?;
    fs::remove_file(&cpio)?;

    // 2. The whole module tree of the test kernel (kept by image::kernel): dracut picks
    //    modules from it, and the root's udev loads virtio_console (the report port) and
    //    qemu_fw_cfg from it.
    let release = &env.kernel.release;
    let mods = tree.join("usr/lib/modules");
    mkdirp(&mods)?;
    let mut c = Command::new("cp");
    c.arg("-a")
        .arg(&env.kernel.module_tree)
        .arg(mods.join(release));
    step(
        "copy the kernel's module tree",
        &mut c,
        &logs.join("kernel-modules.log"),
        LOCAL_DEADLINE,
    )?;

    // 3. dracut and friends from the generation's own suite.
    let sources = tree.join("etc/apt/sources.list");
    write_file(
        &sources,
        format!("deb {} {suite} main\n", env.mirror).as_bytes(),
    )?;
    let resolv = tree.join("etc/resolv.conf");
    let _ = fs::remove_file(&resolv);
    if let Ok(r) = fs::read("/etc/resolv.conf") {
        write_file(&resolv, &r)?;
    }
    step(
        "apt-get update (chroot)",
        &mut in_chroot(tree, &["apt-get", "-q", "update"]),
        &logs.join("apt-update.log"),
        APT_DEADLINE,
    )?;
    let mut install = vec![
        "apt-get",
        "-q",
        "-y",
        "-o",
        "Dpkg::Options::=--force-confold",
        "install",
        "--no-install-recommends",
    ];
    install.extend(PACKAGES);
    step(
        "apt-get install dracut (chroot)",
        &mut in_chroot(tree, &install),
        &logs.join("apt-install.log"),
        APT_DEADLINE,
    )?;
    step(
        "apt-get clean (chroot)",
        &mut in_chroot(tree, &["apt-get", "clean"]),
        &logs.join("apt-clean.log"),
        LOCAL_DEADLINE,
    )?;
    // The image records no mirror and no resolver.
    fs::write(&sources, "")?;
    fs::write(&resolv, "")?;
    let lists = tree.join("var/lib/apt/lists");
    let _ = fs::remove_dir_all(&lists);
    mkdirp(&lists)?;
    step(
        "depmod (chroot)",
        &mut in_chroot(tree, &["depmod", "-a", release]),
        &logs.join("depmod.log"),
        LOCAL_DEADLINE,
    )?;

    // 4. The initrds, built inside the root: their systemd is the generation's.
    for (file, omit) in [
        ("initrd-plain.img", None),
        ("initrd-no-fw-cfg.img", Some("qemu_fw_cfg")),
    ] {
        let out = format!("/boot/{file}");
        let mut args = vec![
            "dracut",
            "--no-hostonly",
            "--kver",
            release,
            "--add",
            "systemd",
            "--add-drivers",
            DRACUT_DRIVERS,
        ];
        if let Some(m) = omit {
            args.extend(["--omit-drivers", m]);
        }
        args.extend(["--force", &out]);
        let log = logs.join(format!("dracut-{file}.log"));
        step(
            &format!("dracut {file} (chroot)"),
            &mut in_chroot(tree, &args),
            &log,
            DRACUT_DEADLINE,
        )?;
        let listing = logs.join(format!("lsinitrd-{file}.log"));
        step(
            &format!("lsinitrd {file} (chroot)"),
            &mut in_chroot(tree, &["lsinitrd", &out]),
            &listing,
            LOCAL_DEADLINE,
        )?;
        let l = fs::read_to_string(&listing)?;
        let problems = initrd_problems(&l, omit.is_some());
        if !problems.is_empty() {
            bail!(
                "{file}: {} (listing kept at {})",
                problems.join("; "),
                listing.display()
            );
        }
        fs::rename(tree.join("boot").join(file), dir.join(file))?;
    }
    Ok(())
}

/// What an initrd listing (`lsinitrd`) lacks or holds against its recipe.
fn initrd_problems(listing: &str, without_fw_cfg: bool) -> Vec<String> {
    let mut p = Vec::new();
    if !listing.lines().any(|l| {
        l.contains(" init -> usr/lib/systemd/systemd")
            || l.ends_with(" init -> /usr/lib/systemd/systemd")
    }) {
        p.push("its /init is not systemd".to_owned());
    }
    if !listing.contains("virtio_blk.ko") {
        p.push("it lacks virtio_blk".to_owned());
    }
    let fw = listing.contains("qemu_fw_cfg.ko");
    if without_fw_cfg && fw {
        p.push("it holds qemu_fw_cfg, which it must not".to_owned());
    }
    if !without_fw_cfg && !fw {
        p.push("it lacks qemu_fw_cfg".to_owned());
    }
    p
}

/// The fast layer: units, fstab and links written into the tree, then `mke2fs -d`.
fn root_image(env: &Env, dir: &Path, key: &str, tree: &Path, logs: &Path) -> Result<PathBuf> {
    let check_unit = fs::read(env.root.join("guest/units/vmcreds-check.service")).ok();
    let key2 = cache_key([
        key.as_bytes(),
        ROOT_RECIPE.as_bytes(),
        FSTAB.as_bytes(),
        crate::probe::PROBE_UNIT.as_bytes(),
        check_unit.as_deref().unwrap_or_default(),
    ]);
    let img = dir.join(format!("root-{key2}.img"));
    if img.exists() {
        return Ok(img);
    }
    // Only one root image per tree is kept.
    for e in fs::read_dir(dir)?.filter_map(|e| e.ok()) {
        let n = e.file_name().to_string_lossy().into_owned();
        if (n.starts_with("root-") && n.ends_with(".img")) || n.ends_with(".img.part") {
            fs::remove_file(e.path())?;
        }
    }
    fs::write(tree.join("etc/fstab"), FSTAB)?;
    let sysd = tree.join("etc/systemd/system");
    let relink = |path: &Path, target: &str| -> Result<()> {
        if let Some(p) = path.parent() {
            mkdirp(p)?;
        }
        let _ = fs::remove_file(path);
        symlink(target, path).with_context(|| format!("could not link {}", path.display()))
    };
    relink(
        &sysd.join("default.target"),
        "/usr/lib/systemd/system/multi-user.target",
    )?;
    fs::write(sysd.join("vmcreds-probe.service"), crate::probe::PROBE_UNIT)?;
    relink(
        &sysd.join("multi-user.target.wants/vmcreds-probe.service"),
        "/etc/systemd/system/vmcreds-probe.service",
    )?;
    let wants_check = sysd.join("multi-user.target.wants/vmcreds-check.service");
    match &check_unit {
        Some(u) => {
            fs::write(sysd.join("vmcreds-check.service"), u)?;
            relink(&wants_check, "/etc/systemd/system/vmcreds-check.service")?;
        }
        None => {
            let _ = fs::remove_file(sysd.join("vmcreds-check.service"));
            let _ = fs::remove_file(&wants_check);
        }
    }
    // What the per-run disk brings, reached from where the probe and the unit look.
    let _ = fs::remove_dir_all(tree.join("etc/vmcreds-test"));
    relink(
        &tree.join("etc/vmcreds-test"),
        "/usr/local/etc/vmcreds-test",
    )?;
    relink(
        &tree.join("usr/bin/vmcreds-guest"),
        "/usr/local/bin/vmcreds-guest",
    )?;
    let part = img.with_extension("img.part");
    let mut c = Command::new("mke2fs");
    c.args(["-q", "-F", "-t", "ext4", "-L", ROOT_LABEL, "-d"])
        .arg(tree)
        .arg(&part)
        .arg(ROOT_IMAGE_SIZE);
    step(
        "mke2fs -d root",
        &mut c,
        &logs.join("mke2fs-root.log"),
        LOCAL_DEADLINE,
    )?;
    fs::rename(&part, &img)?;
    Ok(img)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The case's `run.sh` (run by the probe after boot, output in the probe log's `run`
/// section): the boot-chain evidence, names only, then the check that reports to the host.
fn run_script(check_args: &[String]) -> String {
    let mut check =
        String::from("vmcreds-guest check --json --report-to virtio-port:vmcreds.report");
    for a in check_args {
        check.push(' ');
        check.push_str(&shell_quote(a));
    }
    format!(
        "#!/bin/sh\n\
         export PATH=/usr/local/bin:$PATH\n\
         echo \"@@switch-root system-mount $(findmnt -n -o FSTYPE /run/credentials/@system || echo none)\"\n\
         echo \"@@switch-root pid1-env $(tr '\\0' '\\n' < /proc/1/environ | grep '^CREDENTIALS_DIRECTORY=' || echo unset)\"\n\
         echo \"@@switch-root initrd-dir $(test -e /run/credentials/@initrd && echo present || echo absent)\"\n\
         dmesg | grep -F 'systemd[1]: ' | grep -E 'Running in initrd|Received regular credentials|Acquired [0-9]+ regular|import_credentials' | sed 's/^/@@switch-root kmsg /'\n\
         {check}\n"
    )
}

/// The per-run disk's tree (mounted at `/usr/local`).
fn run_disk_overlay(env: &Env, c: &Case) -> Result<Overlay> {
    let bin =
        fs::read(&env.guest).with_context(|| format!("could not read {}", env.guest.display()))?;
    let mut o = Overlay::default();
    o.file("/bin/vmcreds-guest", bin, 0o755)
        .file("/sbin/vmcreds-probe", crate::probe::PROBE_SCRIPT, 0o755)
        .file("/etc/vmcreds-test/mode", "switch-root\n", 0o644)
        .file(
            "/etc/vmcreds-test/check.args",
            c.check_args.join("\n"),
            0o644,
        )
        .file("/etc/vmcreds-test/run.sh", run_script(&c.check_args), 0o755);
    Ok(o)
}

/// The NixOS-like unit as a cpio archive appended to the plain initrd.
fn nixos_overlay() -> Overlay {
    let mut o = Overlay::default();
    o.file(
        "/etc/systemd/system/sysroot-run.mount",
        NIXOS_RUN_BIND_UNIT,
        0o644,
    )
    .link(
        "/etc/systemd/system/initrd-fs.target.wants/sysroot-run.mount",
        "../sysroot-run.mount",
    );
    o
}

/// A `-drive` for a raw image that the guest can never write (`snapshot=on`).
fn drive_arg(img: &Path) -> OsString {
    format!(
        "file={},if=virtio,format=raw,snapshot=on",
        vm::qemu_escape(&img.to_string_lossy())
    )
    .into()
}

fn stat_of(p: &Path) -> Result<(u64, SystemTime)> {
    let m = fs::metadata(p).with_context(|| format!("could not stat {}", p.display()))?;
    Ok((m.len(), m.modified()?))
}

/// Writes the case's secret files (0400) into a 0700 `dir`.
fn write_credentials(c: &Case, dir: &Path) -> Result<()> {
    mkdirp(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    for src in &c.sources {
        if let Source::Load { file, data, .. } = src {
            let p = dir.join(file);
            let _ = fs::remove_file(&p);
            fs::write(&p, data)?;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o400))?;
        }
    }
    Ok(())
}

fn run_case(env: &Env, images: &Images, c: &Case, generation: &str) -> Result<Outcome> {
    let dir = test::run_dir(&env.root, c.name, generation)?;
    let outcome = boot_case(env, images, c, generation, &dir)?;
    let secrets: Vec<&[u8]> = c
        .sources
        .iter()
        .filter_map(|s| match s {
            Source::Load { data, .. } => Some(data.as_slice()),
            _ => None,
        })
        .chain(c.fw_cfg.iter().map(|(_, d)| d.as_slice()))
        .collect();
    let findings = leak::scan_run_dir(&dir, &secrets);
    Ok(match (findings.is_empty(), outcome) {
        (true, o) => o,
        (false, Outcome::Fail(m)) => {
            Outcome::Fail(format!("{m}; secret leak: {}", findings.join("; ")))
        }
        (false, Outcome::Pass) => Outcome::Fail(format!(
            "secret leak: {} (logs in {})",
            findings.join("; "),
            dir.display()
        )),
    })
}

fn boot_case(
    env: &Env,
    images: &Images,
    c: &Case,
    generation: &str,
    dir: &Path,
) -> Result<Outcome> {
    let creds = dir.join("credentials");
    write_credentials(c, &creds)?;
    let manifest = dir.join("manifest.json");

    let run_img = dir.join("run.img");
    let ov = run_disk_overlay(env, c)?;
    let ov_dir = dir.join("run-disk");
    ov.pack(&ov_dir, &dir.join("run-disk.cpio"))?;
    let _ = fs::remove_file(dir.join("run-disk.cpio"));
    let bytes = fs::metadata(&env.guest)?.len();
    let mib = (bytes * 2 / (1024 * 1024) + 16).max(16);
    let mut m = Command::new("mke2fs");
    m.args(["-q", "-F", "-t", "ext4", "-L", RUN_LABEL, "-d"])
        .arg(&ov_dir)
        .arg(&run_img)
        .arg(format!("{mib}M"));
    step(
        "mke2fs -d run disk",
        &mut m,
        &dir.join("mke2fs-run.log"),
        LOCAL_DEADLINE,
    )?;

    // A per-run name for the initrd: the driver removes the initrd of a passing run.
    let initrd = dir.join("initrd.img");
    match c.initrd {
        Initrd::Plain => link_or_copy(&images.initrd_plain, &initrd)?,
        Initrd::NoFwCfg => link_or_copy(&images.initrd_no_fw_cfg, &initrd)?,
        Initrd::NixosRunBind => {
            let cpio = dir.join("nixos-run-bind.cpio");
            nixos_overlay().pack(&dir.join("nixos-run-bind"), &cpio)?;
            image::concat_initrd(&[&images.initrd_plain, &cpio], &initrd)?;
        }
    }

    let mut extra: Vec<OsString> = vec![
        "-drive".into(),
        drive_arg(&images.root_img),
        "-drive".into(),
        drive_arg(&run_img),
    ];
    for (name, data) in &c.fw_cfg {
        let f = dir.join(format!("fw_cfg-{name}"));
        fs::write(&f, data)?;
        fs::set_permissions(&f, fs::Permissions::from_mode(0o400))?;
        extra.push("-fw_cfg".into());
        extra.push(
            format!(
                "name=opt/io.systemd.credentials/{},file={}",
                vm::qemu_escape(name),
                vm::qemu_escape(&f.to_string_lossy())
            )
            .into(),
        );
    }
    let spec = VmSpec {
        name: format!("{}-{generation}", c.name),
        kernel: env.kernel.vmlinuz.clone(),
        initrd,
        append: format!("root=LABEL={ROOT_LABEL} rw"),
        machine: "q35".into(),
        mem_mib: 1024,
        kvm: env.kvm,
        extra,
        report_socket: Some(dir.join("report.sock")),
        run_dir: dir.to_path_buf(),
    };
    let rows = c.rows.clone();
    let scenario = Scenario {
        name: c.name,
        about: c.about,
        guest: Guest::Systemd,
        generations: GENERATIONS,
        sources: c.sources.clone(),
        host_flags: vec![],
        machine: "q35",
        append: "",
        fw_cfg: c.fw_cfg.clone(),
        check_args: c.check_args.clone(),
        expect: Expect::Verdict {
            host_exit: c.host_exit,
            result: c.result,
            rows: rows.clone(),
            report_mentions: vec![],
        },
    };
    let exp = Expected {
        host_exit: c.host_exit,
        result: c.result,
        rows: &rows,
        report_mentions: &[],
    };
    let before = stat_of(&images.root_img)?;
    let (outcome, collected) =
        test::boot_and_collect(env, &scenario, &spec, &creds, &manifest, &exp)?;
    let mut problems = Vec::new();
    if let Outcome::Fail(m) = &outcome {
        problems.push(m.clone());
    }
    if stat_of(&images.root_img)? != before {
        problems.push(format!(
            "the cached root image {} changed during the boot",
            images.root_img.display()
        ));
    }
    // Whenever the guest reported: a host-side difference alone would hide the cause.
    if !collected.report.trim().is_empty() {
        problems.extend(report_problems(c, &collected));
        let probe = fs::read(spec.probe_log()).unwrap_or_default();
        problems.extend(evidence_problems(c, &probe));
    }
    Ok(if problems.is_empty() {
        // The run disk and its tree hold a copy of the guest binary; a passing run does not
        // need them kept.
        let _ = fs::remove_file(&run_img);
        let _ = fs::remove_dir_all(&ov_dir);
        Outcome::Pass
    } else {
        let mut m = problems.join("; ");
        if !m.contains("(logs in ") {
            m.push_str(&format!(" (logs in {})", dir.display()));
        }
        Outcome::Fail(m)
    })
}

fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    let _ = fs::remove_file(to);
    if fs::hard_link(from, to).is_err() {
        fs::copy(from, to)
            .with_context(|| format!("could not copy {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

/// Compares the guest report (as `collect` received it) with the case: precondition states
/// and row statuses with the words of their reasons.
fn report_problems(c: &Case, col: &Collected) -> Vec<String> {
    let mut p = Vec::new();
    let v: Value = match serde_json::from_str(col.report.trim()) {
        Ok(v) => v,
        Err(_) => return vec!["collect kept no guest report (--report-out)".into()],
    };
    let empty = Vec::new();
    let pre = v
        .get("preconditions")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for (id, state) in &c.preconditions {
        let got = pre
            .iter()
            .find(|x| x.get("check").and_then(Value::as_str) == Some(id))
            .and_then(|x| x.get("state").and_then(Value::as_str));
        match got {
            Some(s) if s == *state => {}
            Some(s) => p.push(format!("guest precondition {id} is {s}, expected {state}")),
            None => p.push(format!(
                "the guest report has no precondition {id} (expected {state})"
            )),
        }
    }
    let creds = v
        .get("credentials")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for (name, status, words) in &c.guest_rows {
        let row = creds
            .iter()
            .find(|r| r.get("name").and_then(Value::as_str) == Some(name.as_str()));
        let got = row.and_then(|r| r.get("status").and_then(Value::as_str));
        if got != Some(*status) {
            p.push(format!(
                "guest row {name}: status {got:?}, expected {status}"
            ));
        }
        let reason = row
            .and_then(|r| r.get("reason").and_then(Value::as_str))
            .unwrap_or("");
        if !reason.contains(words) {
            p.push(format!("guest row {name}: reason does not say {words:?}"));
        }
    }
    p
}

/// The `@@switch-root` lines `run.sh` printed into the probe log's `run` section.
fn evidence(probe: &[u8]) -> Vec<String> {
    let secs = vm::probe_sections(probe);
    vm::section(&secs, "run")
        .unwrap_or_default()
        .iter()
        .filter_map(|l| l.strip_prefix("@@switch-root "))
        .map(str::to_owned)
        .collect()
}

/// Checks the boot-chain evidence: a systemd initrd ran, and `@system` is (or is not) a
/// mount point after switch-root.
fn evidence_problems(c: &Case, probe: &[u8]) -> Vec<String> {
    let ev = evidence(probe);
    let mut p = Vec::new();
    if ev.is_empty() {
        return vec!["the probe log holds no switch-root evidence (run section)".into()];
    }
    if !ev
        .iter()
        .any(|l| l.starts_with("kmsg ") && l.contains("Running in initrd."))
    {
        p.push("the kernel log shows no systemd initrd (\"Running in initrd.\")".into());
    }
    // Offered over fw_cfg and visible after switch-root (the root loaded qemu_fw_cfg): only
    // the initrd lacked the driver.
    let secs = vm::probe_sections(probe);
    let listed = vm::section(&secs, "fw-cfg").unwrap_or_default();
    for (name, _) in &c.fw_cfg {
        if !listed.iter().any(|l| l.trim() == name) {
            p.push(format!(
                "fw_cfg item {name} not visible in the guest after switch-root"
            ));
        }
    }
    let mount = ev
        .iter()
        .find_map(|l| l.strip_prefix("system-mount "))
        .unwrap_or("?")
        .trim();
    let mounted = matches!(mount, "ramfs" | "tmpfs");
    if mounted != c.system_mounted || mount == "?" {
        p.push(format!(
            "/run/credentials/@system after switch-root: {mount} (a mount point expected: {})",
            c.system_mounted
        ));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_case_names_are_unique_and_not_scenario_names() {
        let cases = all();
        let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), cases.len());
        for s in scenarios::all() {
            assert!(!names.contains(&s.name), "{} is also a scenario", s.name);
        }
        for c in &cases {
            assert!(c.name.starts_with("switch-root-"), "{}", c.name);
            assert!(
                !c.preconditions.is_empty(),
                "{} asserts no precondition",
                c.name
            );
        }
    }

    #[test]
    fn test_every_secret_is_long_enough_for_the_leak_scan() {
        for c in all() {
            for s in &c.sources {
                if let Source::Load { data, .. } = s {
                    assert!(data.len() >= leak::MIN_SECRET_LEN, "{}", c.name);
                }
            }
            for (_, d) in &c.fw_cfg {
                assert!(d.len() >= leak::MIN_SECRET_LEN, "{}", c.name);
            }
        }
    }

    #[test]
    fn test_run_script_quotes_check_arguments_and_prints_no_values() {
        let s = run_script(&["--expect".into(), "A'B:3".into()]);
        assert!(
            s.contains("--report-to virtio-port:vmcreds.report '--expect' 'A'\\''B:3'"),
            "{s}"
        );
        // Names and mount types only: nothing reads a credential file.
        assert!(!s.contains("cat "), "{s}");
        assert!(s.contains("findmnt -n -o FSTYPE /run/credentials/@system"));
    }

    #[test]
    fn test_the_tree_key_follows_the_base_recipe_not_the_checkout() {
        assert_eq!(
            base_dir_name(Path::new("/a/target/vm/rootfs/trixie-0123/base.cpio.gz")),
            "trixie-0123"
        );
        assert_eq!(
            base_dir_name(Path::new("/elsewhere/rootfs/trixie-0123/base.cpio.gz")),
            base_dir_name(Path::new("/a/target/vm/rootfs/trixie-0123/base.cpio.gz"))
        );
    }

    #[test]
    fn test_drive_escapes_commas_and_is_never_written() {
        let a = drive_arg(Path::new("/t,x/root.img"));
        assert_eq!(
            a.to_string_lossy(),
            "file=/t,,x/root.img,if=virtio,format=raw,snapshot=on"
        );
    }

    #[test]
    fn test_initrd_listing_is_held_to_its_recipe() {
        let plain = "lrwxrwxrwx 1 root root 23 Dec  6 05:52 init -> usr/lib/systemd/systemd\n\
                     -rw-r--r-- 1 root root 1 usr/lib/modules/6.1/kernel/drivers/block/virtio_blk.ko\n\
                     -rw-r--r-- 1 root root 1 usr/lib/modules/6.1/kernel/drivers/firmware/qemu_fw_cfg.ko\n";
        assert!(initrd_problems(plain, false).is_empty());
        assert_eq!(initrd_problems(plain, true).len(), 1);
        let no_fw = plain.replace("qemu_fw_cfg.ko", "other.ko");
        assert!(initrd_problems(&no_fw, true).is_empty());
        assert_eq!(initrd_problems(&no_fw, false), ["it lacks qemu_fw_cfg"]);
        let busybox = plain.replace("usr/lib/systemd/systemd", "bin/busybox");
        assert_eq!(
            initrd_problems(&busybox, false),
            ["its /init is not systemd"]
        );
    }

    fn collected(report: &str) -> Collected {
        Collected {
            stdout: String::new(),
            report: report.into(),
            exit: Some(1),
        }
    }

    #[test]
    fn test_report_problems_name_each_difference() {
        let lost = all()
            .into_iter()
            .find(|c| c.name == "switch-root-lost")
            .unwrap();
        let good = r#"{"preconditions":[{"check":"initrd_import","state":"ok","detail":""},
            {"check":"switch_root_handoff","state":"failed","detail":""}],
            "credentials":[
            {"name":"API_KEY","status":"missing","reason":"imported by the initrd's systemd 257, then lost at switch-root: x"},
            {"name":"DB_PASSWORD","status":"missing","reason":"imported by the initrd's systemd 257, then lost at switch-root: x"},
            {"name":"ENVIRONMENT","status":"missing","reason":"imported by the initrd's systemd 257, then lost at switch-root: x"}]}"#;
        assert_eq!(
            report_problems(&lost, &collected(good)),
            Vec::<String>::new()
        );
        // What the plain boot reports is three problems for the lost case... and more.
        let ok = r#"{"preconditions":[{"check":"initrd_import","state":"ok","detail":""},
            {"check":"switch_root_handoff","state":"ok","detail":""}],
            "credentials":[{"name":"API_KEY","status":"ok","reason":null}]}"#;
        let p = report_problems(&lost, &collected(ok));
        assert!(
            p.contains(&"guest precondition switch_root_handoff is ok, expected failed".to_owned()),
            "{p:?}"
        );
        assert!(
            p.iter().any(|x| x.contains("API_KEY: status Some(\"ok\")")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|x| x.contains("DB_PASSWORD: status None")),
            "{p:?}"
        );
        assert_eq!(p.len(), 7, "{p:?}");
        let none = report_problems(&lost, &collected(r#"{"preconditions":[]}"#));
        assert!(
            none.iter()
                .any(|x| x.contains("no precondition initrd_import")),
            "{none:?}"
        );
        assert_eq!(
            report_problems(&lost, &collected("")),
            ["collect kept no guest report (--report-out)"]
        );
    }

    #[test]
    fn test_evidence_tells_a_mount_point_from_a_left_behind_directory() {
        let probe = |mount: &str, initrd: bool| -> Vec<u8> {
            format!(
                "@@VMCREDS-PROBE-BEGIN@@\n@@SECTION run\n@@switch-root system-mount {mount}\n\
                 @@switch-root pid1-env CREDENTIALS_DIRECTORY=/run/credentials/@system\n{}\
                 @@switch-root kmsg [    2.1] systemd[1]: Received regular credentials: A\n\
                 {{\"schema\":\"vmcreds.report/1\"}}\nexit=0\n@@VMCREDS-PROBE-END@@\n",
                if initrd {
                    "@@switch-root kmsg [    1.0] systemd[1]: Running in initrd.\n"
                } else {
                    ""
                }
            )
            .into_bytes()
        };
        let cases = all();
        let ok = &cases[0];
        let lost = &cases[1];
        assert!(evidence_problems(ok, &probe("ramfs", true)).is_empty());
        assert!(evidence_problems(lost, &probe("none", true)).is_empty());
        assert_eq!(evidence_problems(lost, &probe("ramfs", true)).len(), 1);
        assert_eq!(evidence_problems(ok, &probe("none", true)).len(), 1);
        assert_eq!(evidence_problems(ok, &probe("ramfs", false)).len(), 1);
        assert_eq!(evidence_problems(ok, b"no probe").len(), 1);
        let fw = &cases[2];
        let with_fw = |listed: &str| -> Vec<u8> {
            let p = String::from_utf8(probe("ramfs", true)).unwrap();
            p.replace(
                "@@SECTION run\n",
                &format!("@@SECTION fw-cfg\n{listed}\n@@SECTION run\n"),
            )
            .into_bytes()
        };
        assert!(evidence_problems(fw, &with_fw("FW_TOKEN")).is_empty());
        assert_eq!(
            evidence_problems(fw, &with_fw("ls: cannot access")),
            ["fw_cfg item FW_TOKEN not visible in the guest after switch-root"]
        );
    }
}
