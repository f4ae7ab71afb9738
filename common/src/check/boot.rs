//! Where in the boot chain SMBIOS credentials were lost: never imported, or
//! imported in the initrd and then lost at switch-root.
//!
//! systemd's PID 1 imports once per boot chain (`import_credentials()`,
//! `src/core/import-creds.c`): in a systemd initrd it imports, and when it
//! imported anything it sets `$CREDENTIALS_DIRECTORY` (and
//! `$ENCRYPTED_CREDENTIALS_DIRECTORY` for ESP credentials), which survive the
//! re-execution at switch-root (`execv()` keeps `environ`). After
//! switch-root PID 1 then only links that directory to
//! `/run/credentials/@system` and merges `/run/credentials/@initrd`; it never
//! reads fw_cfg or SMBIOS again. So:
//! - if the initrd's mount of `@system` is not carried into the new root
//!   (`switch_root()` moves `/run` recursively; NixOS's `/sysroot/run` bind
//!   mount was not recursive, NixOS/nixpkgs#421388), what the initrd imported
//!   is gone and nothing re-imports it: **lost at switch-root**;
//! - if the initrd imported something else (fw_cfg, the kernel command line,
//!   ESP credentials, a VMM's initrd cpio) but could not read SMBIOS
//!   (dmi-sysfs not usable there, systemd/systemd#37391), SMBIOS is never read:
//!   **never imported**;
//! - if the initrd imported nothing at all, neither variable is set and PID 1
//!   imports after switch-root as if there had been no initrd.
//!
//! The evidence a guest has ([`BootEvidence`]): PID 1's own lines in the
//! kernel log (`/dev/kmsg`, where PID 1 logs before journald runs:
//! `systemd 257.13-1 running in system mode`, `Running in initrd.`,
//! `Received regular credentials: A, B`, `Acquired 2 regular credentials,
//! 0 untrusted credentials.`, the last two from systemd 254 on), PID 1's
//! environment, whether `@system` is a mount point, and whether
//! `/run/credentials/@initrd` was left behind. [`assess`] turns it into two
//! preconditions (`initrd_import`, `switch_root_handoff`), a cause per missing
//! credential, and the credentials' sources when the log names them.

use crate::report::{CheckState, CredentialSource, Precondition, PreconditionId};
use crate::systemd::{parse_version, FIRST_IMPORT_REPORT};

use super::rows::Row;
use super::Observation;

/// One record of the kernel log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsgRecord {
    /// Its sequence number (0 is the boot's first record).
    pub seq: u64,
    /// Its text, `\xNN` escapes decoded.
    pub text: String,
}

/// Decodes the kernel's `\xNN` escapes (`/dev/kmsg` escapes control bytes,
/// bytes ≥ 0x7f and `\`), lossily as UTF-8.
fn unescape_kmsg(s: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && i + 3 < s.len() && s[i + 1] == b'x' {
            if let (Some(h), Some(l)) = (hex(s[i + 2]), hex(s[i + 3])) {
                out.push(h << 4 | l);
                i += 4;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses one `/dev/kmsg` line, `PRI,SEQ,TIMESTAMP,FLAGS[,…];TEXT`
/// (`Documentation/ABI/testing/dev-kmsg`). Continuation lines (` KEY=VALUE`)
/// and anything malformed give `None`.
pub fn parse_kmsg_line(line: &[u8]) -> Option<KmsgRecord> {
    if line.first() == Some(&b' ') {
        return None;
    }
    let semi = line.iter().position(|&b| b == b';')?;
    let mut fields = line[..semi].split(|&b| b == b',');
    let _prio = fields.next()?;
    let seq = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    Some(KmsgRecord {
        seq,
        text: unescape_kmsg(&line[semi + 1..]),
    })
}

/// The records in `/dev/kmsg` output as read (one record per `read()`, each
/// ending in a newline) or as captured in a file.
pub fn kmsg_records(bytes: &[u8]) -> Vec<KmsgRecord> {
    bytes
        .split(|&b| b == b'\n')
        .filter_map(parse_kmsg_line)
        .collect()
}

/// What one run of PID 1 said about the import (the boot's first run, a run
/// after switch-root, a re-execution).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pid1Run {
    /// From `systemd 257.13-1 running in system mode (…)`.
    pub version: Option<u32>,
    /// `Running in initrd.` followed.
    pub in_initrd: bool,
    /// `systemd.import_credentials=no is set, skipping importing of credentials.`
    pub import_disabled: bool,
    /// The list after `Received regular credentials: `, as logged (names
    /// joined with `, `; the kernel may have cut a long line).
    pub received: Option<String>,
    /// From `Acquired N regular credentials, M untrusted credentials.`:
    /// (N, M). systemd logs it at info only when N or M is not 0.
    pub acquired: Option<(u32, u32)>,
}

impl Pid1Run {
    /// Whether the logged list names `name` (names may themselves contain
    /// `, `, so the list is matched, not split).
    pub fn received_names(&self, name: &str) -> bool {
        let Some(l) = &self.received else {
            return false;
        };
        l == name
            || l.starts_with(&format!("{name}, "))
            || l.ends_with(&format!(", {name}"))
            || l.contains(&format!(", {name}, "))
    }

    /// Regular credentials acquired (0 when the line is absent: systemd logs
    /// it at debug level then).
    pub fn regular(&self) -> u32 {
        self.acquired.map_or(0, |(n, _)| n)
    }

    /// Whether this run imported anything at all, so that the next PID 1
    /// finds `$CREDENTIALS_DIRECTORY` or `$ENCRYPTED_CREDENTIALS_DIRECTORY`
    /// set and imports nothing itself.
    pub fn imported_any(&self) -> bool {
        self.acquired.is_some_and(|(n, m)| n > 0 || m > 0)
    }
}

/// PID 1's runs in `records`, oldest first: each starts at its
/// `systemd … running in system mode` line.
pub fn pid1_runs(records: &[KmsgRecord]) -> Vec<Pid1Run> {
    let mut runs: Vec<Pid1Run> = Vec::new();
    for r in records {
        let Some(msg) = r.text.strip_prefix("systemd[1]: ") else {
            continue;
        };
        if msg.starts_with("systemd ") && msg.contains(" running in system mode") {
            runs.push(Pid1Run {
                version: parse_version(msg),
                ..Default::default()
            });
            continue;
        }
        let Some(run) = runs.last_mut() else {
            continue;
        };
        if msg == "Running in initrd." {
            run.in_initrd = true;
        } else if msg.starts_with("systemd.import_credentials=no is set") {
            run.import_disabled = true;
        } else if let Some(list) = msg.strip_prefix("Received regular credentials: ") {
            run.received = Some(list.to_owned());
        } else if let Some(rest) = msg.strip_prefix("Acquired ") {
            let num = |s: &str| s.trim().parse::<u32>().ok();
            if let Some((n, rest)) = rest.split_once(" regular credentials, ") {
                if let Some((m, _)) = rest.split_once(" untrusted credentials") {
                    if let (Some(n), Some(m)) = (num(n), num(m)) {
                        run.acquired = Some((n, m));
                    }
                }
            }
        }
    }
    runs
}

/// What the kernel log gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelLog {
    /// Not read: why, for people (`/dev/kmsg: Operation not permitted`).
    Unread(String),
    /// Read.
    Read {
        /// PID 1's runs, oldest first.
        runs: Vec<Pid1Run>,
        /// The first record is the boot's first (sequence number 0): no run
        /// has scrolled out of the ring buffer.
        from_boot: bool,
    },
}

impl Default for KernelLog {
    fn default() -> Self {
        KernelLog::Unread("not read".into())
    }
}

impl KernelLog {
    /// The log of `records`.
    pub fn from_records(records: &[KmsgRecord]) -> KernelLog {
        KernelLog::Read {
            runs: pid1_runs(records),
            from_boot: records.first().is_some_and(|r| r.seq == 0),
        }
    }
}

/// Everything a guest can see of the boot chain's import.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootEvidence {
    /// PID 1's lines in the kernel log.
    pub kernel_log: KernelLog,
    /// `$CREDENTIALS_DIRECTORY` in PID 1's environment: `None` when the
    /// environment could not be read, `Some(None)` when it is not set.
    pub pid1_credentials_directory: Option<Option<String>>,
    /// Whether `/run/credentials/@system` is a mount point (systemd always
    /// makes it one); `None` without a mount table.
    pub system_dir_mounted: Option<bool>,
    /// `/run/credentials/@initrd` still exists (PID 1 removes it after
    /// merging it, from systemd 254 on).
    pub initrd_dir_left: bool,
}

/// Why an importable SMBIOS credential is not in `/run/credentials/@system`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cause {
    /// The initrd's PID 1 imported it; it did not survive switch-root.
    LostAtSwitchRoot,
    /// The initrd's PID 1 imported other credentials but read no SMBIOS, so
    /// no PID 1 ever read it.
    InitrdReadNoSmbios,
    /// The same for a credential offered over fw_cfg (`qemu_fw_cfg` not
    /// usable in the initrd).
    InitrdReadNoFwCfg,
}

/// [`assess`]'s findings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assessment {
    /// `initrd_import` and `switch_root_handoff`, when they say anything.
    pub preconditions: Vec<Precondition>,
    /// The importable SMBIOS credentials missing from the directory whose
    /// loss the evidence explains, and the row reason for each.
    pub causes: Vec<(String, Cause, String)>,
    /// Sources the kernel log establishes for present credentials.
    pub sources: Vec<(String, CredentialSource)>,
    /// One summary line per cause, for the verdict.
    pub summary: Vec<String>,
}

impl Assessment {
    /// The cause and reason found for `name`.
    pub fn cause(&self, name: &str) -> Option<(Cause, &str)> {
        self.causes
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, c, r)| (*c, r.as_str()))
    }

    /// The source the kernel log establishes for `name`.
    pub fn source(&self, name: &str) -> Option<CredentialSource> {
        self.sources
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| *s)
    }
}

fn pre(check: PreconditionId, state: CheckState, detail: String) -> Precondition {
    Precondition {
        check,
        state,
        detail,
    }
}

/// Names, joined for a message.
fn join(names: &[&str]) -> String {
    names.join(", ")
}

/// The initrd's run and the run after it, from the kernel log.
fn initrd_and_host(runs: &[Pid1Run]) -> Option<(&Pid1Run, Option<&Pid1Run>)> {
    let i = runs.iter().rposition(|r| r.in_initrd)?;
    Some((&runs[i], runs.get(i + 1)))
}

fn version_text(v: Option<u32>) -> String {
    v.map_or_else(|| "systemd".to_owned(), |v| format!("systemd {v}"))
}

/// What the boot chain did with the credentials `obs` predicts systemd
/// imports from SMBIOS.
pub fn assess(obs: &Observation) -> Assessment {
    assess_rows(
        obs,
        &super::rows::rows(obs, &super::Expectations::default()),
    )
}

/// [`assess`] with the rows of `obs` already made (once per check): each
/// row knows its file and whether systemd imports a string of it, so no
/// name is looked up here.
pub fn assess_rows(obs: &Observation, rows: &[Row<'_>]) -> Assessment {
    let dir = obs.imported_dir.as_str();
    // In the order systemd imports them, each name once: a row goes where
    // its first imported string is in the prediction.
    let mut slots: Vec<Option<&Row<'_>>> = vec![None; obs.prediction.strings.len()];
    for r in rows {
        if let Some(i) = r.first_imported {
            slots[i] = Some(r);
        }
    }
    let importable_rows: Vec<&Row<'_>> = slots.into_iter().flatten().collect();
    let importable: Vec<&str> = importable_rows.iter().map(|r| r.name.as_str()).collect();
    let missing: Vec<&str> = importable_rows
        .iter()
        .filter(|r| r.file.is_none())
        .map(|r| r.name.as_str())
        .collect();
    let ev = &obs.boot;
    let mut a = Assessment::default();
    let runs: &[Pid1Run] = match &ev.kernel_log {
        KernelLog::Read { runs, .. } => runs,
        KernelLog::Unread(_) => &[],
    };
    let chain = initrd_and_host(runs);
    // Without a systemd initrd in the log there is only something to say
    // about credentials missing that no failed precondition explains.
    let explained = obs
        .preconditions
        .iter()
        .any(|p| p.state == CheckState::Failed);
    if chain.is_none() && (missing.is_empty() || explained) {
        return a;
    }

    // Sources the log establishes.
    if let Some((initrd, host)) = chain {
        // Per file: does SMBIOS bring one of its name?
        let mut file_importable = vec![false; obs.imported.as_ref().map_or(0, |l| l.files.len())];
        for r in rows {
            if let (Some(f), Some(_)) = (r.file, r.first_imported) {
                file_importable[f] = true;
            }
        }
        let explained = |i: usize, n: &str| {
            file_importable[i]
                || obs.fw_cfg.iter().any(|f| f.name == n)
                || obs.cmdline_credentials.iter().any(|c| c == n)
        };
        if let Some(l) = &obs.imported {
            for (i, f) in l.files.iter().enumerate() {
                let n = f.name.as_str();
                if explained(i, n) {
                    continue;
                }
                let cpio = initrd
                    .version
                    .is_some_and(|v| v >= crate::systemd::FIRST_INITRD_SYSTEM_CREDENTIALS);
                if initrd.received_names(n) && cpio {
                    a.sources.push((n.to_owned(), CredentialSource::InitrdCpio));
                } else if initrd.received.is_some()
                    && !initrd.received_names(n)
                    && host.is_some_and(|h| h.received_names(n))
                {
                    a.sources.push((n.to_owned(), CredentialSource::Initrd));
                }
            }
        }
    }

    match (&ev.kernel_log, chain) {
        (KernelLog::Unread(why), _) => {
            a.preconditions.push(pre(
                PreconditionId::InitrdImport,
                CheckState::Unknown,
                format!("cannot tell whether a systemd initrd imported credentials: the kernel log was not read ({why})"),
            ));
            without_log(obs, &missing, &mut a);
        }
        (KernelLog::Read { from_boot, runs }, None) => {
            let (state, detail) = if !from_boot {
                (CheckState::Unknown, "cannot tell whether a systemd initrd ran: the boot's first kernel messages have left the ring buffer")
            } else if runs.is_empty() {
                (CheckState::Unknown, "cannot tell whether a systemd initrd ran: PID 1 logged nothing at info level to the kernel log (systemd.log_level= above info?)")
            } else {
                (CheckState::Ok, "no systemd initrd: the kernel log shows PID 1 starting once, on the root file system, where it imported")
            };
            a.preconditions
                .push(pre(PreconditionId::InitrdImport, state, detail.into()));
            without_log(obs, &missing, &mut a);
        }
        (KernelLog::Read { .. }, Some((initrd, host))) => {
            with_initrd(obs, dir, &importable, &missing, initrd, host, &mut a)
        }
    }
    a
}

/// No kernel-log account of the initrd: PID 1's environment and the mount
/// table can still show credentials imported earlier in the boot chain and
/// missing now.
fn without_log(obs: &Observation, missing: &[&str], a: &mut Assessment) {
    let ev = &obs.boot;
    let dir = obs.imported_dir.as_str();
    let env_set = matches!(&ev.pid1_credentials_directory, Some(Some(_)));
    if missing.is_empty() || !env_set || ev.system_dir_mounted != Some(false) {
        return;
    }
    a.preconditions.push(pre(
        PreconditionId::SwitchRootHandoff,
        CheckState::Failed,
        format!(
            "PID 1's $CREDENTIALS_DIRECTORY is set, so an earlier stage of this boot imported credentials, but {dir} is not a mount point and lacks {}: lost at switch-root (the kernel log, which would name what the initrd imported, was not read)",
            join(missing)
        ),
    ));
    lost(obs, missing, None, a);
}

/// The causes and summary line for credentials lost at switch-root.
fn lost(obs: &Observation, names: &[&str], initrd_version: Option<u32>, a: &mut Assessment) {
    let dir = obs.imported_dir.as_str();
    let who = match initrd_version {
        Some(v) => format!("imported by the initrd's systemd {v}"),
        None => "imported earlier in the boot chain".to_owned(),
    };
    for n in names {
        a.causes.push((
            (*n).to_owned(),
            Cause::LostAtSwitchRoot,
            format!("{who}, then lost at switch-root: {dir} lacks it and PID 1 does not import again (precondition switch_root_handoff failed)"),
        ));
    }
    a.summary.push(format!(
        "lost at switch-root: {} (switch_root_handoff)",
        join(names)
    ));
}

fn with_initrd(
    obs: &Observation,
    dir: &str,
    importable: &[&str],
    missing: &[&str],
    initrd: &Pid1Run,
    host: Option<&Pid1Run>,
    a: &mut Assessment,
) {
    let sd = version_text(initrd.version);
    let reports = initrd.version.map_or(true, |v| v >= FIRST_IMPORT_REPORT);
    if initrd.import_disabled {
        a.preconditions.push(pre(
            PreconditionId::InitrdImport,
            CheckState::Ok,
            format!("the initrd's {sd} skipped importing (systemd.import_credentials=no or rd.systemd.import_credentials=no), so PID 1 imported after switch-root"),
        ));
        return;
    }
    if !reports {
        a.preconditions.push(pre(
            PreconditionId::InitrdImport,
            CheckState::Unknown,
            format!("a systemd initrd ran, but {sd} logs no import summary (systemd {FIRST_IMPORT_REPORT} and later do)"),
        ));
        return;
    }
    if !initrd.imported_any() {
        let after = match host.and_then(|h| h.acquired) {
            Some((n, _)) => format!(", and PID 1 acquired {n} after switch-root"),
            None => String::new(),
        };
        a.preconditions.push(pre(
            PreconditionId::InitrdImport,
            CheckState::Ok,
            format!("the initrd's {sd} imported no credentials, so PID 1 imported after switch-root{after}"),
        ));
        return;
    }
    let (n, m) = initrd.acquired.unwrap_or_default();
    let list = initrd.received.as_deref().unwrap_or("");
    let read_smbios: Vec<&str> = importable
        .iter()
        .copied()
        .filter(|x| initrd.received_names(x))
        .collect();
    let what = if n > 0 {
        format!("{n} regular credential(s) ({list})")
    } else {
        format!("{m} untrusted credential(s) only")
    };
    // The initrd imported, so no PID 1 after it reads SMBIOS again.
    let listed = list.split(", ").count() as u32;
    let cut = n > 0 && listed < n;
    let smbios_unread: Vec<&str> = if read_smbios.is_empty() {
        missing
            .iter()
            .copied()
            .filter(|x| !initrd.received_names(x))
            .collect()
    } else {
        Vec::new()
    };
    // fw_cfg credentials systemd would import here, missing, and not in the
    // initrd's list: qemu_fw_cfg was not usable in the initrd.
    let is_present = |x: &str| obs.imported.as_ref().is_some_and(|l| l.get(x).is_some());
    let fw_priors = if obs.gate().fw_cfg {
        super::fw_cfg_priors(&obs.fw_cfg)
    } else {
        Vec::new()
    };
    let fw_unread: Vec<&str> = fw_priors
        .iter()
        .map(|p| p.name.as_str())
        .filter(|x| !importable.contains(x) && !is_present(x) && !initrd.received_names(x))
        .collect();
    if smbios_unread.is_empty() && fw_unread.is_empty() {
        a.preconditions.push(pre(
            PreconditionId::InitrdImport,
            CheckState::Ok,
            format!("the initrd's {sd} imported {what}"),
        ));
    } else {
        let mut missed = Vec::new();
        if !smbios_unread.is_empty() {
            missed.push("none of the SMBIOS credentials: dmi-sysfs was not usable in the initrd (CONFIG_DMI_SYSFS=m and the dmi_sysfs module not in the initrd, or loaded after PID 1's import, systemd/systemd#37391)".to_owned());
        }
        if !fw_unread.is_empty() {
            missed.push(format!(
                "not the fw_cfg credential(s) {}: qemu_fw_cfg was not usable in the initrd (the module not in it)",
                join(&fw_unread)
            ));
        }
        a.preconditions.push(pre(
            PreconditionId::InitrdImport,
            if cut { CheckState::Unknown } else { CheckState::Failed },
            format!(
                "the initrd's {sd} imported {what} but {}{}; once the initrd has imported anything, PID 1 does not read SMBIOS or fw_cfg after switch-root",
                missed.join(", and "),
                if cut { " (as far as its log line, cut by the kernel, shows)" } else { "" }
            ),
        ));
        if !cut {
            for x in &smbios_unread {
                a.causes.push((
                    (*x).to_owned(),
                    Cause::InitrdReadNoSmbios,
                    format!("never imported: the initrd's {sd} read no SMBIOS (dmi-sysfs not usable there) but imported other credentials, so no PID 1 read SMBIOS after switch-root (precondition initrd_import failed)"),
                ));
            }
            for x in &fw_unread {
                a.causes.push((
                    (*x).to_owned(),
                    Cause::InitrdReadNoFwCfg,
                    format!("never imported: the initrd's {sd} read no fw_cfg (qemu_fw_cfg not usable there) but imported other credentials, so no PID 1 read fw_cfg after switch-root (precondition initrd_import failed)"),
                ));
            }
            if !smbios_unread.is_empty() {
                a.summary.push(format!(
                    "never imported, the initrd read no SMBIOS: {} (initrd_import)",
                    join(&smbios_unread)
                ));
            }
            if !fw_unread.is_empty() {
                a.summary.push(format!(
                    "never imported, the initrd read no fw_cfg: {} (initrd_import)",
                    join(&fw_unread)
                ));
            }
        }
    }
    if n == 0 {
        return;
    }
    // What the initrd received and the directory now lacks. Names may
    // contain ", ": present ones are taken out of the list before it is split.
    let present = |x: &str| obs.imported.as_ref().is_some_and(|l| l.get(x).is_some());
    let mut rest = format!(", {list}, ");
    if let Some(l) = &obs.imported {
        for f in l.files.iter().filter(|f| f.name.contains(", ")) {
            rest = rest.replace(&format!(", {}, ", f.name), ", ");
        }
    }
    let gone: Vec<&str> = rest
        .split(", ")
        .filter(|x| !x.is_empty() && !present(x))
        .collect();
    let held = obs.imported.as_ref().map_or(0, |l| l.files.len());
    let short = initrd.received.is_none() && (held as u64) < u64::from(n);
    let mounted = match obs.boot.system_dir_mounted {
        Some(false) => {
            "; it is not a mount point (the initrd's credentials mount did not come along)"
        }
        _ => "",
    };
    let left = if obs.boot.initrd_dir_left {
        "; /run/credentials/@initrd was left unmerged"
    } else {
        ""
    };
    if obs.imported.is_some() && gone.is_empty() && !short {
        a.preconditions.push(pre(
            PreconditionId::SwitchRootHandoff,
            CheckState::Ok,
            format!("what the initrd's {sd} imported is in {dir}{left}"),
        ));
        return;
    }
    let lacks = if obs.imported.is_none() {
        "does not exist".to_owned()
    } else if gone.is_empty() {
        format!("holds {held} of them")
    } else {
        format!("lacks {}", join(&gone))
    };
    a.preconditions.push(pre(
        PreconditionId::SwitchRootHandoff,
        CheckState::Failed,
        format!(
            "the initrd's {sd} acquired {n} regular credential(s), but after switch-root {dir} {lacks}{mounted}{left}: lost at switch-root; PID 1 does not import again once $CREDENTIALS_DIRECTORY is set (e.g. NixOS/nixpkgs#421388: /sysroot/run mounted without its submounts)"
        ),
    ));
    let names: Vec<String> = if gone.is_empty() {
        missing
            .iter()
            .filter(|x| !a.causes.iter().any(|(c, _, _)| c == *x))
            .map(|x| (*x).to_owned())
            .collect()
    } else {
        gone.iter().map(|x| (*x).to_owned()).collect()
    };
    if !names.is_empty() {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        lost(obs, &names, initrd.version, a);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::testing::{imported, text, vm, with_entries};
    use super::super::FwCfgCredential;
    use super::*;

    fn cause_names(a: &Assessment) -> BTreeSet<(&str, Cause)> {
        a.causes.iter().map(|(n, c, _)| (n.as_str(), *c)).collect()
    }

    const BOOT: &[u8] = b"6,0,0,-;Linux version 6.1.0-40-cloud-amd64\n";

    fn kmsg(lines: &[&str]) -> KernelLog {
        let mut b = BOOT.to_vec();
        for (i, l) in lines.iter().enumerate() {
            b.extend_from_slice(format!("6,{},{},-;{l}\n", i + 1, 1000 * i).as_bytes());
        }
        KernelLog::from_records(&kmsg_records(&b))
    }

    fn initrd(v: u32, extra: &[&str]) -> Vec<String> {
        let mut l = vec![
            format!("systemd[1]: systemd {v}.1-1 running in system mode (+PAM)"),
            "systemd[1]: Running in initrd.".to_owned(),
        ];
        l.extend(extra.iter().map(|s| format!("systemd[1]: {s}")));
        l
    }

    fn host(v: u32, extra: &[&str]) -> Vec<String> {
        let mut l = vec![format!(
            "systemd[1]: systemd {v}.1-1 running in system mode (+PAM)"
        )];
        l.extend(extra.iter().map(|s| format!("systemd[1]: {s}")));
        l
    }

    fn log(parts: &[Vec<String>]) -> KernelLog {
        let all: Vec<&str> = parts.iter().flatten().map(|s| s.as_str()).collect();
        kmsg(&all)
    }

    #[test]
    fn test_kmsg_records() {
        let raw = b"6,0,1,-;first\n SUBSYSTEM=x\n12,7,99,c,more;systemd[1]: a\\x5cb \\xe2\\x9c\\x93\nbad\n6,x,1,-;no seq\n";
        let r = kmsg_records(raw);
        assert_eq!(
            r,
            vec![
                KmsgRecord {
                    seq: 0,
                    text: "first".into()
                },
                KmsgRecord {
                    seq: 7,
                    text: "systemd[1]: a\\b ✓".into()
                }
            ]
        );
        assert_eq!(unescape_kmsg(b"\\x4"), "\\x4", "a cut escape stays");
        assert_eq!(unescape_kmsg(b"\\xzz"), "\\xzz");
    }

    #[test]
    fn test_pid1_runs() {
        let l = log(&[
            vec![
                "kernel: something".to_owned(),
                "systemd[1]: Running in initrd.".to_owned(),
            ],
            initrd(
                257,
                &[
                    "Received regular credentials: A, B, x, y",
                    "Acquired 4 regular credentials, 1 untrusted credentials.",
                ],
            ),
            host(
                257,
                &["systemd.import_credentials=no is set, skipping importing of credentials."],
            ),
            vec![
                "systemd-journald[90]: Acquired 9 regular credentials, 0 untrusted credentials."
                    .to_owned(),
            ],
        ]);
        let KernelLog::Read { runs, from_boot } = l else {
            panic!()
        };
        assert!(from_boot);
        assert_eq!(runs.len(), 2, "a line before any run is ignored");
        assert_eq!(runs[0].version, Some(257));
        assert!(runs[0].in_initrd && !runs[1].in_initrd);
        assert_eq!(runs[0].acquired, Some((4, 1)));
        assert_eq!(runs[1].acquired, None, "only PID 1's lines count");
        assert!(runs[1].import_disabled);
        for (name, listed) in [
            ("A", true),
            ("B", true),
            ("x", true),
            ("y", true),
            ("C", false),
            ("x, y", true),
            ("", false),
        ] {
            assert_eq!(runs[0].received_names(name), listed, "{name}");
        }
        let odd = Pid1Run {
            received: Some("a, b, c".into()),
            ..Default::default()
        };
        assert!(odd.received_names("b") && !odd.received_names("a, c"));
    }

    /// An observation with SMBIOS credentials A and B, `present` in `@system`.
    fn obs(present: &[&str], kernel_log: KernelLog) -> Observation {
        let mut o = with_entries(vm(), &[&[&text("A", b"a"), &text("B", b"b")]]);
        for n in present {
            o = imported(o, n, n.to_lowercase().as_bytes());
        }
        o.boot.kernel_log = kernel_log;
        o.boot.system_dir_mounted = Some(true);
        o
    }

    #[test]
    fn test_a_failed_precondition_explains_without_an_initrd() {
        let mut o = obs(&[], KernelLog::Unread("x".into()));
        o.preconditions.push(Precondition {
            check: PreconditionId::ImportEnabled,
            state: CheckState::Failed,
            detail: "systemd.import_credentials=no".into(),
        });
        assert_eq!(assess(&o), Assessment::default());
        // A systemd initrd in the log is still told.
        o.boot.kernel_log = log(&[initrd(257, &[]), host(257, &[])]);
        assert_eq!(assess(&o).preconditions.len(), 1);
    }

    fn states(a: &Assessment) -> Vec<(PreconditionId, CheckState)> {
        a.preconditions
            .iter()
            .map(|p| (p.check.clone(), p.state))
            .collect()
    }

    /// (what, observation, preconditions, causes, a piece of a precondition's detail)
    type Case = (
        &'static str,
        Observation,
        Vec<(PreconditionId, CheckState)>,
        Vec<(&'static str, Cause)>,
        &'static str,
    );

    #[test]
    fn test_cases() {
        use CheckState::{Failed, Ok as Good, Unknown};
        use PreconditionId::{InitrdImport as I, SwitchRootHandoff as H};
        let acquired_ab = "Acquired 2 regular credentials, 0 untrusted credentials.";
        let mut lost_unmounted = obs(
            &[],
            log(&[
                initrd(257, &["Received regular credentials: A, B", acquired_ab]),
                host(257, &[]),
            ]),
        );
        lost_unmounted.boot.system_dir_mounted = Some(false);
        let env = |mounted| {
            let mut o = obs(
                &[],
                KernelLog::Unread("/dev/kmsg: Operation not permitted".into()),
            );
            o.boot.pid1_credentials_directory = Some(Some("/run/credentials/@system".into()));
            o.boot.system_dir_mounted = Some(mounted);
            o
        };
        let env_only = env(false);
        let env_but_mounted = env(true);
        let mut no_dir = obs(
            &[],
            log(&[
                initrd(262, &["Received regular credentials: A, B", acquired_ab]),
                host(262, &[]),
            ]),
        );
        no_dir.imported = None;
        let mut left = obs(
            &["A", "B"],
            log(&[
                initrd(257, &["Received regular credentials: A, B", acquired_ab]),
                host(257, &[]),
            ]),
        );
        left.boot.initrd_dir_left = true;
        let mut fw_missed = obs(
            &["A", "B"],
            log(&[
                initrd(257, &["Received regular credentials: A, B", acquired_ab]),
                host(257, &["Received regular credentials: A, B", acquired_ab]),
            ]),
        );
        fw_missed.fw_cfg.push(FwCfgCredential {
            name: "FW".into(),
            bytes: Some(1),
        });
        let cases: Vec<Case> = vec![
            (
                "initrd without qemu_fw_cfg: the fw_cfg credential never imported",
                fw_missed,
                vec![(I, Failed), (H, Good)],
                vec![("FW", Cause::InitrdReadNoFwCfg)],
                "not the fw_cfg credential(s) FW: qemu_fw_cfg was not usable in the initrd",
            ),
            ("all there, no initrd", obs(&["A", "B"], log(&[host(257, &[])])), vec![], vec![], ""),
            ("all there, log unread", obs(&["A", "B"], KernelLog::Unread("x".into())), vec![], vec![], ""),
            (
                "missing, no systemd initrd",
                obs(&["A"], log(&[host(257, &["Received regular credentials: A"])])),
                vec![(I, Good)],
                vec![],
                "no systemd initrd",
            ),
            (
                "missing, PID 1 silent in the log",
                obs(&["A"], kmsg(&["kernel: nothing from PID 1"])),
                vec![(I, Unknown)],
                vec![],
                "PID 1 logged nothing at info level",
            ),
            (
                "missing, the boot's start scrolled out",
                {
                    let mut o = obs(&["A"], KernelLog::Read { runs: vec![], from_boot: false });
                    o.boot.system_dir_mounted = Some(true);
                    o
                },
                vec![(I, Unknown)],
                vec![],
                "left the ring buffer",
            ),
            (
                "initrd imported, all arrived",
                obs(&["A", "B"], log(&[initrd(257, &["Received regular credentials: A, B", acquired_ab]), host(257, &["Received regular credentials: A, B", acquired_ab])])),
                vec![(I, Good), (H, Good)],
                vec![],
                "is in /run/credentials/@system",
            ),
            (
                "lost at switch-root (NixOS/nixpkgs#421388)",
                lost_unmounted,
                vec![(I, Good), (H, Failed)],
                vec![("A", Cause::LostAtSwitchRoot), ("B", Cause::LostAtSwitchRoot)],
                "lacks A, B; it is not a mount point",
            ),
            (
                "lost, the directory gone",
                no_dir,
                vec![(I, Good), (H, Failed)],
                vec![("A", Cause::LostAtSwitchRoot), ("B", Cause::LostAtSwitchRoot)],
                "does not exist",
            ),
            (
                "one of two lost",
                obs(&["A"], log(&[initrd(257, &["Received regular credentials: A, B", acquired_ab]), host(257, &[])])),
                vec![(I, Good), (H, Failed)],
                vec![("B", Cause::LostAtSwitchRoot)],
                "lacks B",
            ),
            (
                "initrd without dmi-sysfs, imported a fw_cfg credential",
                obs(&[], log(&[initrd(257, &["Received regular credentials: FW", "Acquired 1 regular credentials, 0 untrusted credentials."]), host(257, &[])])),
                vec![(I, Failed), (H, Failed)],
                vec![("A", Cause::InitrdReadNoSmbios), ("B", Cause::InitrdReadNoSmbios), ("FW", Cause::LostAtSwitchRoot)],
                "none of the SMBIOS credentials",
            ),
            (
                "initrd without dmi-sysfs, only ESP credentials",
                obs(&[], log(&[initrd(257, &["Acquired 0 regular credentials, 2 untrusted credentials."]), host(257, &[])])),
                vec![(I, Failed)],
                vec![("A", Cause::InitrdReadNoSmbios), ("B", Cause::InitrdReadNoSmbios)],
                "2 untrusted credential(s) only",
            ),
            (
                "the initrd's list cut by the kernel",
                obs(&[], log(&[initrd(257, &["Received regular credentials: FW", "Acquired 3 regular credentials, 0 untrusted credentials."]), host(257, &[])])),
                vec![(I, Unknown), (H, Failed)],
                vec![("FW", Cause::LostAtSwitchRoot)],
                "as far as its log line",
            ),
            (
                "initrd imported nothing: PID 1 imported after switch-root",
                obs(&["A", "B"], log(&[initrd(257, &[]), host(257, &["Received regular credentials: A, B", acquired_ab])])),
                vec![(I, Good)],
                vec![],
                "imported no credentials, so PID 1 imported after switch-root, and PID 1 acquired 2",
            ),
            (
                "import disabled in the initrd only",
                obs(&["A", "B"], log(&[initrd(257, &["systemd.import_credentials=no is set, skipping importing of credentials."]), host(257, &[])])),
                vec![(I, Good)],
                vec![],
                "skipped importing",
            ),
            (
                "systemd 252 in the initrd says nothing",
                obs(&[], log(&[initrd(252, &[]), host(252, &[])])),
                vec![(I, Unknown)],
                vec![],
                "logs no import summary (systemd 254 and later do)",
            ),
            (
                "no log; environment set and no mount",
                env_only,
                vec![(I, Unknown), (H, Failed)],
                vec![("A", Cause::LostAtSwitchRoot), ("B", Cause::LostAtSwitchRoot)],
                "PID 1's $CREDENTIALS_DIRECTORY is set",
            ),
            ("no log; environment set, still a mount", env_but_mounted, vec![(I, Unknown)], vec![], "was not read (/dev/kmsg"),
            (
                "@initrd left behind",
                left,
                vec![(I, Good), (H, Good)],
                vec![],
                "/run/credentials/@initrd was left unmerged",
            ),
        ];
        for (what, o, pre, causes, detail) in cases {
            let a = assess(&o);
            assert_eq!(states(&a), pre, "{what}: {:#?}", a.preconditions);
            let want: BTreeSet<(&str, Cause)> = causes.into_iter().collect();
            assert_eq!(cause_names(&a), want, "{what}");
            assert!(
                detail.is_empty() || a.preconditions.iter().any(|p| p.detail.contains(detail)),
                "{what}: no detail with {detail:?} in {:#?}",
                a.preconditions
            );
            assert_eq!(a.summary.is_empty(), a.causes.is_empty(), "{what}");
        }
    }

    #[test]
    fn test_sources_from_the_log() {
        let with_log = |v: u32| {
            let mut o = obs(
                &["A", "B", "CPIO", "MERGED", "FW"],
                log(&[
                    initrd(
                        v,
                        &[
                            "Received regular credentials: A, B, CPIO, FW",
                            "Acquired 4 regular credentials, 0 untrusted credentials.",
                        ],
                    ),
                    host(
                        v,
                        &[
                            "Received regular credentials: A, B, CPIO, FW, MERGED",
                            "Acquired 5 regular credentials, 0 untrusted credentials.",
                        ],
                    ),
                ]),
            );
            o.fw_cfg.push(FwCfgCredential {
                name: "FW".into(),
                bytes: Some(2),
            });
            o
        };
        let a = assess(&with_log(262));
        assert_eq!(a.source("CPIO"), Some(CredentialSource::InitrdCpio));
        assert_eq!(a.source("MERGED"), Some(CredentialSource::Initrd));
        assert_eq!(a.source("A"), None, "SMBIOS explains it");
        assert_eq!(a.source("FW"), None, "fw_cfg explains it");
        // Before 262 nothing in the initrd reads /.extra/system_credentials/.
        let a = assess(&with_log(257));
        assert_eq!(a.source("CPIO"), None);
        assert_eq!(a.source("MERGED"), Some(CredentialSource::Initrd));
    }

    #[test]
    fn test_reasons_name_the_version_and_the_precondition() {
        let o = obs(
            &[],
            log(&[
                initrd(
                    257,
                    &[
                        "Received regular credentials: A, B",
                        "Acquired 2 regular credentials, 0 untrusted credentials.",
                    ],
                ),
                host(257, &[]),
            ]),
        );
        let a = assess(&o);
        let (c, r) = a.cause("A").unwrap();
        assert_eq!(c, Cause::LostAtSwitchRoot);
        assert_eq!(
            r,
            "imported by the initrd's systemd 257, then lost at switch-root: /run/credentials/@system lacks it and PID 1 does not import again (precondition switch_root_handoff failed)"
        );
        assert_eq!(
            a.summary,
            ["lost at switch-root: A, B (switch_root_handoff)"]
        );
    }

    proptest::proptest! {
        #[test]
        fn fuzz_kmsg_never_panics(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let records = kmsg_records(&raw);
            let _ = KernelLog::from_records(&records);
        }
    }
}
