//! `check`: read, evaluate, print, report.

use vmcreds_common::check::{evaluate, Strictness};
use vmcreds_common::render;
use vmcreds_common::report::{Report, VerdictResult};
use vmcreds_common::report_bound::fit_for_host;

use crate::cli::{CheckArgs, ExpectArgs};
use crate::creds_dir::CredsLocation;
use crate::dest;
use crate::exit::{Exit, Failure, Result};
use crate::observe::{self, Asked, Observed};
use crate::sysfs::Root;

/// Runs `check`.
pub fn run(args: &CheckArgs) -> Result<Exit> {
    let asked = asked(&args.expect)?;
    let root = Root::open(&args.root.root)?;
    let smbios = observe::read_smbios(&root, args.root.systemd_version)?;
    let loc = CredsLocation::System;
    let observed = observe::observe(&root, &loc, smbios, &asked)?;
    finish(&root, &loc, &observed, &args.expect, "")
}

/// What the command line asks to expect (`--manifest FILE` read here,
/// before anything of the machine).
pub fn asked(e: &ExpectArgs) -> Result<Asked> {
    Ok(Asked {
        manifest: e
            .manifest
            .as_deref()
            .map(observe::manifest_file)
            .transpose()?,
        expects: e.expect.clone(),
    })
}

/// How strict the command line asks the check to be.
pub fn strictness(e: &ExpectArgs) -> Strictness {
    if e.strict {
        Strictness::Strict
    } else {
        Strictness::Lenient
    }
}

/// Evaluates, prints the report (after `header`), sends it, notifies, and
/// maps the verdict to the exit.
pub fn finish(
    root: &Root,
    loc: &CredsLocation,
    observed: &Observed,
    e: &ExpectArgs,
    header: &str,
) -> Result<Exit> {
    let mut report = evaluate(&observed.observation, &observed.expectations, strictness(e));
    // What leaves as JSON is cut to what the host reads; a table is not.
    let json = (e.json || !e.report_to.is_empty()).then(|| fit_for_host(&mut report));
    if let (true, Some(json)) = (e.json, &json) {
        super::write_stdout(json.as_bytes())?;
    } else {
        let text = format!(
            "{header}{}{}",
            render::preamble(&report, &loc.display()),
            render::report_table(&report)
        );
        super::write_stdout(text.as_bytes())?;
    }
    let doc = if e.report_to.is_empty() {
        Vec::new()
    } else {
        dest::wire(&report)
    };
    let mut unsent = None;
    for d in &e.report_to {
        if let Err(err) = dest::send(d, root, &doc) {
            let f = Failure::from(err);
            eprintln!("vmcreds-guest: {:#}", f.error());
            unsent.get_or_insert((f.exit(), d));
        }
    }
    if e.notify {
        notify(root, loc, observed, &report);
    }
    if let Some((exit, d)) = unsent {
        return Err(Failure::new(
            exit,
            anyhow::anyhow!("could not send the report to {d}"),
        ));
    }
    Ok(match report.verdict.result {
        VerdictResult::Failed => Exit::Failed,
        VerdictResult::Verified | VerdictResult::Unverified => Exit::Verified,
    })
}

fn notify(root: &Root, loc: &CredsLocation, observed: &Observed, report: &Report) {
    use vmcreds_common::check::NOTIFY_CREDENTIAL;
    let value = match observe::notify_socket(root, loc, &observed.observation) {
        Ok(Some(v)) => v,
        Ok(None) => {
            eprintln!("vmcreds-guest: --notify: no {NOTIFY_CREDENTIAL} credential, nothing sent");
            return;
        }
        Err(f) => {
            eprintln!("vmcreds-guest: --notify: {:#}", f.error());
            return;
        }
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
    let line = format!("{} ({})", report.verdict.result, report.verdict.summary);
    if let Err(e) = dest::notify(&addr, &dest::notify_message(&line)) {
        eprintln!("vmcreds-guest: --notify: cannot send to {NOTIFY_CREDENTIAL}: {e}");
    }
}
