//! The in-guest test probe: a oneshot unit that prints what the guest saw to ttyS1 between
//! markers, optionally runs the scenario's `vmcreds-guest` command, then powers off.
//!
//! Output format (parsed by `vm::probe_sections`): `@@VMCREDS-PROBE-BEGIN@@`, then sections
//! introduced by `@@SECTION <name>` lines, then `@@VMCREDS-PROBE-END@@`. Credential names and
//! journal lines are hex-encoded because names can hold any byte systemd accepts and journal
//! lines can hold anything a test string held.

use crate::image::Overlay;

/// The probe unit. It runs after `vmcreds-check.service` (if installed) and after boot-up.
pub const PROBE_UNIT: &str = "\
[Unit]
Description=vmcreds test probe (xtask)
After=multi-user.target vmcreds-check.service
ConditionPathExists=/etc/vmcreds-test/mode

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/vmcreds-probe
StandardOutput=journal+console
TimeoutStartSec=600
FailureAction=poweroff-force
";

/// The probe script (POSIX sh; runs on the debootstrap'd systemd guests).
pub const PROBE_SCRIPT: &str = r#"#!/bin/sh
# vmcreds xtask probe: see xtask/src/probe.rs
# ttyS1 unless the kernel command line names another (vmcreds.probe_tty=hvc0 under
# cloud-hypervisor, which has one serial port and a virtio console).
tty=/dev/ttyS1
for a in $(cat /proc/cmdline); do
  case "$a" in vmcreds.probe_tty=*) tty=/dev/${a#vmcreds.probe_tty=} ;; esac
done
exec >"$tty" 2>&1
stty -F "$tty" raw -echo 2>/dev/null
mode=$(cat /etc/vmcreds-test/mode)
hexs() { od -An -v -tx1 | tr -d ' \n'; }
echo "@@VMCREDS-PROBE-BEGIN@@"
echo "@@SECTION systemd-version"; systemctl --version | head -n 1
echo "@@SECTION kernel"; uname -r
echo "@@SECTION cmdline"; cat /proc/cmdline
echo "@@SECTION mount"; findmnt -n -o FSTYPE,OPTIONS /run/credentials/@system
echo "@@SECTION dir"; stat -c '%a %U %G' /run/credentials/@system 2>&1
echo "@@SECTION entry-point"; head -c 5 /sys/firmware/dmi/tables/smbios_entry_point | hexs; echo
echo "@@SECTION dmi-table-size"; wc -c < /sys/firmware/dmi/tables/DMI
echo "@@SECTION dmi-table"
if [ "$(wc -c < /sys/firmware/dmi/tables/DMI)" -le 70000 ]; then base64 -w0 < /sys/firmware/dmi/tables/DMI; echo; else echo -; fi
echo "@@SECTION type11-entries"; ls /sys/firmware/dmi/entries | grep '^11-'
echo "@@SECTION type11-raw"
for e in /sys/firmware/dmi/entries/11-*; do
  [ -e "$e/raw" ] || continue
  sz=$(wc -c < "$e/raw")
  sum=$(sha256sum < "$e/raw" | cut -d' ' -f1)
  if [ "$sz" -le 70000 ]; then b=$(base64 -w0 < "$e/raw"); else b=-; fi
  echo "$(basename "$e") $sz $sum $b"
done
echo "@@SECTION kernel-dmi"; dmesg | grep -iE 'dmi|smbios' | grep -v 'Command line' | head -n 20
echo "@@SECTION fw-cfg"; ls /sys/firmware/qemu_fw_cfg/by_name/opt/io.systemd.credentials 2>&1
echo "@@SECTION creds"
ls -A1 --quoting-style=literal /run/credentials/@system 2>/dev/null | while IFS= read -r n; do
  f="/run/credentials/@system/$n"
  hex=$(printf '%s' "$n" | hexs)
  echo "$hex $(stat -c '%s %a %U' "$f") $(sha256sum < "$f" | cut -d' ' -f1)"
done
echo "@@SECTION creds-list"; systemd-creds --system list --json=short 2>&1; echo "exit=$?"
echo "@@SECTION cvm"; systemd-detect-virt --cvm 2>&1
echo "@@SECTION journal-hex"
journalctl -b -o cat --no-pager 2>/dev/null | grep -aiE 'credential|OEM string|smbios' | while IFS= read -r l; do printf '%s' "$l" | hexs; echo; done
if [ -f /etc/vmcreds-test/check.args ]; then
  echo "@@SECTION check-unit"; systemctl show -p ActiveState,Result,ExecMainStatus vmcreds-check.service 2>&1
  echo "@@SECTION check-unit-journal"; journalctl -b -o cat --no-pager -u vmcreds-check.service 2>&1 | tail -n 60
  # For `cargo xtask bench`: the unit's activation time as systemd recorded
  # it, and `systemd-creds --system list` beside a check run the same way
  # (wall time in microseconds, five runs each; no --report-to).
  echo "@@SECTION timing"
  systemctl show -p InactiveExitTimestampMonotonic,ActiveEnterTimestampMonotonic vmcreds-check.service 2>&1
  for i in 1 2 3 4 5; do
    t0=$(date +%s%N); systemd-creds --system list >/dev/null 2>&1; t1=$(date +%s%N)
    /usr/local/bin/vmcreds-guest check --json >/dev/null 2>&1; t2=$(date +%s%N)
    echo "run $(( (t1 - t0) / 1000 )) $(( (t2 - t1) / 1000 ))"
  done
fi
if [ -x /etc/vmcreds-test/run.sh ]; then
  echo "@@SECTION run"
  /etc/vmcreds-test/run.sh 2>&1
  echo "exit=$?"
fi
echo "@@VMCREDS-PROBE-END@@"
sync
systemctl --no-block poweroff
"#;

/// Adds the probe, its unit (enabled), and the mode file to `o`.
pub fn add_probe(o: &mut Overlay, mode: &str) {
    o.file("/usr/local/sbin/vmcreds-probe", PROBE_SCRIPT, 0o755)
        .file(
            "/etc/systemd/system/vmcreds-probe.service",
            PROBE_UNIT,
            0o644,
        )
        .link(
            "/etc/systemd/system/multi-user.target.wants/vmcreds-probe.service",
            "/etc/systemd/system/vmcreds-probe.service",
        )
        .file("/etc/vmcreds-test/mode", format!("{mode}\n"), 0o644);
}
