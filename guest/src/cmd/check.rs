//! `check`: predict, read what systemd imported, compare, report.

use vmcreds_common::report::{render_table, Report, VerdictResult};

use crate::analyze::{analyze, Expectations};
use crate::cli::{CheckArgs, VerifyArgs};
use crate::creds_dir;
use crate::dest;
use crate::exit::{Exit, UsageError};
use crate::observe::{observe, CredsLocation, Observation};
use crate::sysfs::{self, ReadError, Root};

/// Runs `check`.
pub fn run(args: &CheckArgs) -> anyhow::Result<Exit> {
    let root = Root::new(&args.root.root);
    let exp = expectations(&args.verify)?;
    let obs = observe(&root, args.root.systemd_version)?;
    let loc = CredsLocation::System;
    let report = analyze(&obs, &loc, &exp, args.verify.strict)?;
    finish(&obs, &loc, &report, &args.verify, "")
}

/// Reads `--manifest` and gathers `--expect`.
pub fn expectations(v: &VerifyArgs) -> anyhow::Result<Expectations> {
    let manifest_file = match &v.manifest {
        Some(p) => {
            let b = sysfs::read_bounded(p, vmcreds_common::limits::MANIFEST_SIZE_MAX + 1)?
                .ok_or_else(|| ReadError::new(p, std::io::ErrorKind::NotFound.into()))?;
            if b.over_bound {
                return Err(UsageError(format!(
                    "--manifest {}: larger than {} bytes",
                    p.display(),
                    vmcreds_common::limits::MANIFEST_SIZE_MAX
                ))
                .into());
            }
            Some((p.clone(), b.bytes))
        }
        None => None,
    };
    Ok(Expectations {
        expects: v.expect.clone(),
        manifest_file,
    })
}

/// Prints the report, sends it, notifies, and maps the verdict.
pub fn finish(
    obs: &Observation,
    loc: &CredsLocation,
    report: &Report,
    v: &VerifyArgs,
    header: &str,
) -> anyhow::Result<Exit> {
    if v.json {
        super::write_stdout(report.to_json().as_bytes())?;
    } else {
        let dir = match loc {
            CredsLocation::System => creds_dir::SYSTEM_DIR.to_owned(),
            CredsLocation::Dir(p) => p.display().to_string(),
        };
        let text = format!(
            "{header}{}{}",
            crate::analyze::preamble(report, &dir),
            render_table(report)
        );
        super::write_stdout(text.as_bytes())?;
    }
    let doc = dest::wire(report);
    let mut first_err: Option<anyhow::Error> = None;
    for d in &v.report_to {
        if let Err(e) = dest::send(d, &obs.root, &doc) {
            eprintln!("vmcreds-guest: {:#}", anyhow::Error::from(e));
            first_err.get_or_insert_with(|| anyhow::anyhow!("could not send the report to {d}"));
        }
    }
    if v.notify {
        notify(obs, loc, report);
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(match report.verdict.result {
        VerdictResult::Failed => Exit::Failed,
        VerdictResult::Verified | VerdictResult::Unverified => Exit::Verified,
    })
}

/// The name of the notify-socket credential.
pub const NOTIFY_CREDENTIAL: &str = "vmm.notify_socket";

fn notify(obs: &Observation, loc: &CredsLocation, report: &Report) {
    let path = loc.path(&obs.root).join(NOTIFY_CREDENTIAL);
    let value = match creds_dir::read_small(&path) {
        Ok(Some(v)) => Some(v),
        _ => obs
            .prediction
            .imported()
            .find(|s| s.name.as_deref() == Some(NOTIFY_CREDENTIAL))
            .and_then(|s| s.value.as_ref())
            .map(|v| v.expose().to_vec()),
    };
    let Some(value) = value else {
        eprintln!("vmcreds-guest: --notify: no {NOTIFY_CREDENTIAL} credential, nothing sent");
        return;
    };
    let Some(addr) = std::str::from_utf8(&value)
        .ok()
        .and_then(dest::parse_notify)
    else {
        eprintln!(
            "vmcreds-guest: --notify: {NOTIFY_CREDENTIAL} is not a vsock or unix socket address"
        );
        return;
    };
    let line = format!(
        "{} ({})",
        format!("{:?}", report.verdict.result).to_lowercase(),
        report.verdict.summary
    );
    if let Err(e) = dest::notify(&addr, &dest::notify_message(&line)) {
        eprintln!("vmcreds-guest: --notify: cannot send to {NOTIFY_CREDENTIAL}: {e}");
    }
}
