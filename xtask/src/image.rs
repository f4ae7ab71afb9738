//! Guest images for the real-VM tests, cached under `target/vm/`.
//!
//! Layout (every directory name ends in a key: the first 16 hex digits of a SHA-256 over the
//! recipe, so a changed recipe builds a new entry and an old one is never reused by mistake):
//!
//! ```text
//! target/vm/kernel/<deb-package>-<recipe>/vmlinuz          Debian cloud kernel (CONFIG_DMI_SYSFS=y)
//! target/vm/kernel/<deb-package>-<recipe>/modules.cpio.gz  virtio console/pci/mmio + qemu_fw_cfg, depmod'ed
//! target/vm/rootfs/<generation>-<key>/root/         debootstrap --variant=minbase (the slow step)
//! target/vm/rootfs/<generation>-<key>/base.cpio.gz  that tree trimmed and packed (cpio newc, gzip -1)
//! target/vm/busybox/<key>/base.cpio.gz              busybox-static + /init, no systemd
//! target/vm/runs/<stamp>-<name>/                    per boot: overlay, initrd, console and probe logs
//! ```
//!
//! The initramfs a guest boots is the concatenation `base + modules + overlay`; the kernel
//! unpacks concatenated cpio archives in order, so the per-boot overlay (the guest binary, the
//! units, the probe and the scenario's arguments) costs milliseconds instead of a repack.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::util::{self, cache_key, mkdirp, run, write_file};

/// Packages added to debootstrap's minbase. `systemd-sysv` provides `/sbin/init`; `udev` loads
/// the virtio modules on coldplug and creates `/dev/virtio-ports/<name>` (without it, the
/// report port never appears: systemd only recommends udev and debootstrap skips recommends).
pub const ROOTFS_PACKAGES: &[&str] = &["systemd", "systemd-sysv", "udev"];

/// Kernel modules the guests need that the cloud kernel builds as modules.
const MODULES: &[&str] = &[
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
    "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
    "kernel/drivers/virtio/virtio_pci.ko",
    "kernel/drivers/virtio/virtio_mmio.ko",
    "kernel/drivers/char/virtio_console.ko",
    "kernel/drivers/firmware/qemu_fw_cfg.ko",
    // The report's way out of a cloud-hypervisor guest: virtio-vsock.
    "kernel/net/vmw_vsock/vsock.ko",
    "kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
    "kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko",
];

/// Bumped whenever the module list or the kernel unpacking code changes.
const KERNEL_RECIPE: &str = "k3";

/// Bumped whenever the code that turns a debootstrap tree into `base.cpio.gz` changes.
const ROOTFS_RECIPE: &str = "rootfs-recipe-3";

/// One systemd generation of the real-VM matrix: a Debian suite, optionally with systemd
/// from that suite's backports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation {
    /// The name used by `--generations` and in the summary.
    pub name: &'static str,
    /// The suite debootstrap installs.
    pub suite: &'static str,
    /// Install `ROOTFS_PACKAGES` again from `<suite>-backports`.
    pub backports: bool,
    /// The systemd major version the suite carried when the generation was added (sid
    /// moves on: scenarios compare with `>=`, and the probe reports the real version).
    pub systemd: u32,
}

/// The systemd generations the tests run against.
pub const GENERATIONS: &[Generation] = &[
    Generation {
        name: "bookworm",
        suite: "bookworm",
        backports: false,
        systemd: 252,
    },
    Generation {
        name: "bookworm-backports",
        suite: "bookworm",
        backports: true,
        systemd: 254,
    },
    Generation {
        name: "trixie",
        suite: "trixie",
        backports: false,
        systemd: 257,
    },
    Generation {
        name: "sid",
        suite: "sid",
        backports: false,
        systemd: 262,
    },
];

impl Generation {
    /// The generation called `name`.
    pub fn by_name(name: &str) -> Option<&'static Generation> {
        GENERATIONS.iter().find(|g| g.name == name)
    }
}

/// The cached kernel: its image, release string and module archive.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// `vmlinuz` path.
    pub vmlinuz: PathBuf,
    /// `uname -r` of the guest kernel.
    pub release: String,
    /// The Debian package it came from.
    pub package: String,
    /// cpio archive with `/usr/lib/modules/<release>/` (subset, depmod'ed).
    pub modules_cpio: PathBuf,
    /// The package's whole `lib/modules/<release>/` tree (for the nested runner's outer
    /// guest, which needs `kvm` and `virtio_blk`).
    pub module_tree: PathBuf,
}

/// A packed guest base image (rootfs without per-boot files).
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// `bookworm`, `trixie`, `sid` or `busybox`.
    pub generation: String,
    /// The packed base archive.
    pub cpio: PathBuf,
}

fn vm_dir(root: &Path) -> PathBuf {
    root.join("target/vm")
}

/// Resolves `linux-image-cloud-amd64` to the versioned package it depends on.
fn resolve_kernel_package() -> Result<String> {
    let out = util::output(Command::new("apt-cache").args(["depends", "linux-image-cloud-amd64"]))?;
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(|p| p.trim().to_string())
        .find(|p| p.starts_with("linux-image-"))
        .context("apt-cache depends linux-image-cloud-amd64 names no linux-image package (run apt-get update)")
}

/// Downloads and unpacks the Debian cloud kernel once; later calls reuse the cache.
pub fn kernel(root: &Path) -> Result<Kernel> {
    let kdir = vm_dir(root).join("kernel");
    let (package, dir) = match resolve_kernel_package() {
        Ok(p) => {
            let d = kdir.join(format!("{p}-{KERNEL_RECIPE}"));
            (p, d)
        }
        Err(e) => {
            // Offline: use the newest cached kernel of this recipe if there is one.
            let suffix = format!("-{KERNEL_RECIPE}");
            let mut cached: Vec<String> = fs::read_dir(&kdir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.ends_with(&suffix))
                        .collect()
                })
                .unwrap_or_default();
            cached.sort();
            match cached.pop() {
                Some(n) => (n.trim_end_matches(&suffix).to_string(), kdir.join(&n)),
                None => return Err(e),
            }
        }
    };
    let done = dir.join(".done");
    if !done.exists() {
        let t = Instant::now();
        eprintln!("xtask: fetching kernel {package}");
        let _ = fs::remove_dir_all(&dir);
        let work = dir.join("work");
        mkdirp(&work)?;
        run(Command::new("apt-get")
            .args(["download", "-q", &package])
            .current_dir(&work))?;
        let deb = fs::read_dir(&work)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .context("apt-get download left no .deb")?;
        let x = work.join("x");
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x))?;
        let release = package.trim_start_matches("linux-image-").to_string();
        fs::copy(
            x.join(format!("boot/vmlinuz-{release}")),
            dir.join("vmlinuz"),
        )
        .context("kernel package has no /boot/vmlinuz")?;
        // Modules go to usr/lib/modules: the guests are merged-/usr, and a `lib` directory
        // entry in a later cpio archive would replace the `/lib -> usr/lib` symlink.
        let mods = dir.join("modules");
        let src = x.join("lib/modules").join(&release);
        let dst = mods.join("usr/lib/modules").join(&release);
        for m in MODULES {
            let to = dst.join(m);
            mkdirp(to.parent().expect("module path has a parent"))?;
            fs::copy(src.join(m), &to).with_context(|| format!("kernel package lacks {m}"))?;
        }
        for f in [
            "modules.builtin",
            "modules.builtin.modinfo",
            "modules.order",
        ] {
            fs::copy(src.join(f), dst.join(f))
                .with_context(|| format!("kernel package lacks {f}"))?;
        }
        run(Command::new("depmod")
            .arg("-b")
            .arg(mods.join("usr"))
            .arg(&release))?;
        util::pack_cpio(&mods, &dir.join("modules.cpio.gz"), true)?;
        fs::rename(&src, dir.join("module-tree"))
            .context("could not keep the kernel's module tree")?;
        fs::write(dir.join("release"), &release)?;
        fs::remove_dir_all(&work)?;
        fs::write(&done, util::secs(t.elapsed()))?;
        eprintln!("xtask: kernel ready in {}", util::secs(t.elapsed()));
    }
    let release = fs::read_to_string(dir.join("release"))?.trim().to_string();
    Ok(Kernel {
        vmlinuz: dir.join("vmlinuz"),
        release,
        package,
        modules_cpio: dir.join("modules.cpio.gz"),
        module_tree: dir.join("module-tree"),
    })
}

/// Builds (or reuses) the debootstrap'd systemd rootfs of the generation `name` from
/// `mirror`, packed as a cpio archive.
pub fn systemd_base(root: &Path, name: &str, mirror: &str) -> Result<BaseImage> {
    let g = Generation::by_name(name).with_context(|| format!("unknown generation {name}"))?;
    let suite = g.suite;
    let include = ROOTFS_PACKAGES.join(",");
    let mut recipe = vec![suite, mirror, "minbase", &include, ROOTFS_RECIPE];
    if g.backports {
        recipe.push("backports");
    }
    let key = cache_key(recipe);
    let dir = vm_dir(root)
        .join("rootfs")
        .join(format!("{}-{key}", g.name));
    let tree = dir.join("root");
    let strapped = dir.join(".debootstrap-done");
    let cpio = dir.join("base.cpio.gz");
    if !strapped.exists() {
        let t = Instant::now();
        eprintln!("xtask: debootstrap {suite} (minbase + {include}) from {mirror}");
        let _ = fs::remove_dir_all(&dir);
        mkdirp(&dir)?;
        let log_path = dir.join("debootstrap.log");
        let log = fs::File::create(&log_path)?;
        let st = Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={include}"))
            .arg(suite)
            .arg(&tree)
            .arg(mirror)
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .context("could not run debootstrap")?;
        if !st.success() {
            bail!(
                "debootstrap {suite} failed ({st}); log kept at {}",
                log_path.display()
            );
        }
        if g.backports {
            install_from_backports(&tree, suite, mirror, &log_path)?;
        }
        trim_rootfs(&tree)?;
        fs::write(&strapped, util::secs(t.elapsed()))?;
        eprintln!(
            "xtask: debootstrap {} took {}",
            g.name,
            util::secs(t.elapsed())
        );
    }
    if !cpio.exists() {
        let t = Instant::now();
        util::pack_cpio(&tree, &cpio, true)?;
        eprintln!(
            "xtask: packed {} base ({} MB) in {}",
            g.name,
            fs::metadata(&cpio)?.len() / 1_000_000,
            util::secs(t.elapsed())
        );
    }
    Ok(BaseImage {
        generation: g.name.to_string(),
        cpio,
    })
}

/// Replaces the rootfs packages of `tree` by those of `<suite>-backports` (bookworm's
/// backports carry systemd 254), with apt inside the tree; the backports source is removed
/// again afterwards so the image records no mirror.
fn install_from_backports(tree: &Path, suite: &str, mirror: &str, log_path: &Path) -> Result<()> {
    let list = tree.join("etc/apt/sources.list.d/vmcreds-backports.list");
    write_file(
        &list,
        format!("deb {mirror} {suite}-backports main\n").as_bytes(),
    )?;
    let log = fs::OpenOptions::new().append(true).open(log_path)?;
    let apt = |args: &[&str]| -> Result<()> {
        let st = Command::new("chroot")
            .arg(tree)
            .arg("apt-get")
            .args(["-q", "-y", "-o", "Dpkg::Options::=--force-confold"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .status()
            .context("could not run apt-get in the image (chroot)")?;
        if !st.success() {
            bail!(
                "apt-get {} in the {suite} image failed ({st}); log kept at {}",
                args.join(" "),
                log_path.display()
            );
        }
        Ok(())
    };
    apt(&["update"])?;
    let mut install = vec!["install", "--no-install-recommends", "-t"];
    let target = format!("{suite}-backports");
    install.push(&target);
    install.extend(ROOTFS_PACKAGES);
    apt(&install)?;
    fs::remove_file(&list)?;
    Ok(())
}

/// Removes what a test guest never reads and prepares systemd to run from an initramfs.
fn trim_rootfs(tree: &Path) -> Result<()> {
    for d in [
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
        "usr/share/i18n",
        "usr/share/zoneinfo",
        "var/cache/apt",
        "var/lib/apt/lists",
        "var/cache/debconf",
        "usr/lib/x86_64-linux-gnu/gconv",
        "usr/lib/udev/hwdb.d",
    ] {
        let p = tree.join(d);
        if p.exists() {
            fs::remove_dir_all(&p)?;
            mkdirp(&p)?;
        }
    }
    // The hardware database is ~10 MB and unused by a test guest.
    let _ = fs::remove_file(tree.join("usr/lib/udev/hwdb.bin"));
    let _ = fs::remove_file(tree.join("etc/udev/hwdb.bin"));
    // A getty on the serial console takes the tty and cuts the probe's output; no login is
    // ever needed in a test guest, so all gettys are masked.
    let sysd = tree.join("etc/systemd/system");
    mkdirp(&sysd)?;
    for unit in [
        "serial-getty@ttyS0.service",
        "serial-getty@ttyS1.service",
        "getty@tty1.service",
        "console-getty.service",
        "systemd-firstboot.service",
        "systemd-timesyncd.service",
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "dpkg-db-backup.timer",
        "e2scrub_all.timer",
        "fstrim.timer",
    ] {
        let p = sysd.join(unit);
        let _ = fs::remove_file(&p);
        symlink("/dev/null", &p)?;
    }
    fs::write(tree.join("etc/hostname"), "vmcreds-guest\n")?;
    // No login: an empty fstab and a fixed machine-id-free image (systemd generates one).
    fs::write(tree.join("etc/fstab"), "")?;
    let _ = fs::remove_file(tree.join("etc/machine-id"));
    fs::write(tree.join("etc/machine-id"), "")?;
    // The kernel runs /init from an initramfs; point it at systemd.
    let init = tree.join("init");
    let _ = fs::remove_file(&init);
    symlink("/lib/systemd/systemd", &init)?;
    Ok(())
}

/// The busybox-init base image: busybox-static, /init (the scenario script lives in the
/// per-boot overlay as /etc/vmcreds-test/init.sh).
pub fn busybox_base(root: &Path) -> Result<BaseImage> {
    let busybox = fs::read("/bin/busybox")
        .context("could not read /bin/busybox (apt-get install busybox-static)")?;
    let key = cache_key([&busybox[..], BUSYBOX_INIT.as_bytes()]);
    let dir = vm_dir(root).join("busybox").join(&key);
    let cpio = dir.join("base.cpio.gz");
    if !cpio.exists() {
        let tree = dir.join("root");
        let _ = fs::remove_dir_all(&tree);
        for d in [
            "bin",
            "sbin",
            "proc",
            "sys",
            "dev",
            "run",
            "tmp",
            "etc",
            "usr/local/bin",
            "usr/lib",
        ] {
            mkdirp(&tree.join(d))?;
        }
        write_file(&tree.join("bin/busybox"), &busybox)?;
        fs::set_permissions(tree.join("bin/busybox"), fs::Permissions::from_mode(0o755))?;
        write_file(&tree.join("init"), BUSYBOX_INIT.as_bytes())?;
        fs::set_permissions(tree.join("init"), fs::Permissions::from_mode(0o755))?;
        util::pack_cpio(&tree, &cpio, true)?;
    }
    Ok(BaseImage {
        generation: "busybox".into(),
        cpio,
    })
}

/// `/init` of the busybox guest: mounts the API filesystems, loads the virtio console and
/// fw_cfg modules, runs the scenario's script from the overlay, and powers off.
const BUSYBOX_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/local/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o mode=0755 run /run
# Dependency order (virtio needs virtio_ring): insmod does not resolve dependencies.
for m in virtio_ring virtio virtio_mmio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_console qemu_fw_cfg vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport; do
  f=$(find /usr/lib/modules -name "$m.ko" | head -n 1)
  [ -n "$f" ] && insmod "$f" 2>/dev/null
done
# Wait (bounded) for the report port to appear.
i=0
while [ ! -e /dev/virtio-ports/vmcreds.report ] && [ $i -lt 50 ]; do
  mdev -s 2>/dev/null
  for d in /sys/class/virtio-ports/*; do
    [ -e "$d/name" ] || continue
    n=$(cat "$d/name"); mkdir -p /dev/virtio-ports
    [ -e /dev/virtio-ports/$n ] || ln -s /dev/$(basename "$d") /dev/virtio-ports/$n
  done
  i=$((i+1)); sleep 0.1
done
# The probe writes to ttyS1; a VMM with one serial port asks for another with
# vmcreds.probe_tty= (cloud-hypervisor: hvc0, its virtio console).
tty=/dev/ttyS1
for a in $(cat /proc/cmdline); do
  case "$a" in vmcreds.probe_tty=*) tty=/dev/${a#vmcreds.probe_tty=} ;; esac
done
if [ -x /etc/vmcreds-test/init.sh ]; then
  /etc/vmcreds-test/init.sh > $tty 2>&1
fi
sync
poweroff -f
"#;

/// Files added on top of a base image for one boot.
#[derive(Debug, Default, Clone)]
pub struct Overlay {
    files: Vec<(String, Vec<u8>, u32)>,
    links: Vec<(String, String)>,
}

impl Overlay {
    /// Adds a file at the absolute guest path `path` with `mode`.
    pub fn file(&mut self, path: &str, data: impl Into<Vec<u8>>, mode: u32) -> &mut Self {
        self.files.push((path.to_string(), data.into(), mode));
        self
    }

    /// Adds a symlink `path -> target`.
    pub fn link(&mut self, path: &str, target: &str) -> &mut Self {
        self.links.push((path.to_string(), target.to_string()));
        self
    }

    /// Writes the overlay tree under `dir` and packs it to `out`.
    pub fn pack(&self, dir: &Path, out: &Path) -> Result<()> {
        self.pack_with(dir, out, |_| Ok(()))
    }

    /// Like [`Overlay::pack`], running `hook` on the tree before it is packed (e.g.
    /// `vmcreds-guest install-unit --root DIR`, which writes into an image as users run it).
    pub fn pack_with(
        &self,
        dir: &Path,
        out: &Path,
        hook: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        let _ = fs::remove_dir_all(dir);
        mkdirp(dir)?;
        for (p, data, mode) in &self.files {
            let to = dir.join(p.trim_start_matches('/'));
            write_file(&to, data)?;
            fs::set_permissions(&to, fs::Permissions::from_mode(*mode))?;
        }
        for (p, target) in &self.links {
            let to = dir.join(p.trim_start_matches('/'));
            mkdirp(to.parent().expect("overlay path has a parent"))?;
            symlink(target, &to)?;
        }
        hook(dir)?;
        // Directories created above follow the umask; the kernel applies an archive's
        // directory modes to existing directories, so make them the usual 0755.
        fix_dir_modes(dir)?;
        util::pack_cpio(dir, out, false)
    }
}

fn fix_dir_modes(dir: &Path) -> Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            fix_dir_modes(&e.path())?;
        }
    }
    Ok(())
}

/// Concatenates cpio archives into one initrd file. Each part is padded with zeros to a
/// multiple of 4 bytes: the kernel skips zeros between archives but reads an uncompressed
/// archive only at a 4-byte-aligned offset ("invalid magic at start of compressed archive").
pub fn concat_initrd(parts: &[&Path], out: &Path) -> Result<()> {
    use std::io::Write;
    let mut f =
        fs::File::create(out).with_context(|| format!("could not create {}", out.display()))?;
    for p in parts {
        let mut r = fs::File::open(p).with_context(|| format!("could not open {}", p.display()))?;
        let n = std::io::copy(&mut r, &mut f)?;
        let pad = (4 - (n % 4) as usize) % 4;
        f.write_all(&[0u8; 4][..pad])?;
    }
    Ok(())
}

/// Builds the static musl guest binary and returns its path.
pub fn guest_binary(root: &Path) -> Result<PathBuf> {
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--quiet",
                "-p",
                "vmcreds-guest",
                "--release",
                "--target",
                "x86_64-unknown-linux-musl",
            ])
            .current_dir(root),
    )?;
    let p = root.join("target/x86_64-unknown-linux-musl/release/vmcreds-guest");
    if !p.exists() {
        bail!("cargo build left no {}", p.display());
    }
    Ok(p)
}

/// Builds the host binary (debug) and returns its path.
pub fn host_binary(root: &Path) -> Result<PathBuf> {
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--quiet", "-p", "vmcreds-host"])
            .current_dir(root),
    )?;
    let p = root.join("target/debug/vmcreds-host");
    if !p.exists() {
        bail!("cargo build left no {}", p.display());
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_packs_files_and_links() {
        let tmp = std::env::temp_dir().join(format!("xtask-overlay-{}", std::process::id()));
        let mut o = Overlay::default();
        o.file("/etc/a/b.txt", b"x".to_vec(), 0o644)
            .link("/etc/c", "/dev/null");
        let out = tmp.with_extension("cpio");
        o.pack(&tmp, &out).unwrap();
        let list =
            util::output(Command::new("cpio").args(["-t", "--quiet", "-F"]).arg(&out)).unwrap();
        assert!(list.lines().any(|l| l == "etc/a/b.txt"), "{list}");
        assert!(list.lines().any(|l| l == "etc/c"), "{list}");
        let _ = fs::remove_dir_all(&tmp);
        let _ = fs::remove_file(&out);
    }
}
