//! `list`: the Type 11 credentials seen, by name, size and digest.

use anyhow::Context;
use serde::Serialize;
use vmcreds_common::digest::{digest, Digest};
use vmcreds_common::oem::Encoding;
use vmcreds_common::predict::Outcome;

use crate::analyze::{manifest_nonce, Expectations};
use crate::cli::ListArgs;
use crate::exit::Exit;
use crate::observe::{observe, CredsLocation};
use crate::sysfs::Root;

/// One credential string (`vmcreds-guest list --json`).
#[derive(Debug, Serialize)]
pub struct ListedString {
    /// The N of `11-N`.
    pub entry: u32,
    /// 1-based position in the entry.
    pub string: usize,
    /// Name (escaped), when one could be delimited.
    pub name: Option<String>,
    /// How it is carried.
    pub encoding: Option<Encoding>,
    /// Decoded size.
    pub bytes: Option<u64>,
    /// Digest of the decoded value.
    pub digest: Option<Digest>,
    /// `imported`, `rejected`, `too_large`, `over_total` or `shadowed`.
    pub outcome: &'static str,
    /// Why, when not imported.
    pub reason: Option<String>,
}

/// `vmcreds-guest list --json`.
#[derive(Debug, Serialize)]
pub struct Listing {
    /// Nonce id when digests are keyed.
    pub nonce_id: Option<String>,
    /// Credential strings in systemd's order.
    pub credentials: Vec<ListedString>,
    /// Strings without a credential prefix (never printed).
    pub not_credential: u64,
}

/// Runs `list`.
pub fn run(args: &ListArgs) -> anyhow::Result<Exit> {
    let root = Root::new(&args.root.root);
    let obs = observe(&root, args.root.systemd_version)?;
    let nonce = manifest_nonce(&obs, &CredsLocation::System, &Expectations::default())?;
    let mut l = Listing {
        nonce_id: nonce.as_ref().map(|n| n.id()),
        credentials: Vec::new(),
        not_credential: 0,
    };
    for s in &obs.prediction.strings {
        let outcome = match &s.outcome {
            Outcome::NotCredential => {
                l.not_credential += 1;
                continue;
            }
            Outcome::Imported => "imported",
            Outcome::Rejected(_) => "rejected",
            Outcome::TooLarge { .. } => "too_large",
            Outcome::OverTotal { .. } => "over_total",
            Outcome::Shadowed(_) => "shadowed",
        };
        l.credentials.push(ListedString {
            entry: s.entry,
            string: s.string,
            name: s.name.clone(),
            encoding: s.encoding,
            bytes: s.value.as_ref().map(|v| v.len() as u64),
            digest: s.value.as_ref().map(|v| digest(v.expose(), nonce.as_ref())),
            outcome,
            reason: s.outcome.reason(),
        });
    }
    let text = if args.json {
        let mut t = serde_json::to_string_pretty(&l).context("cannot serialise the list")?;
        t.push('\n');
        t
    } else {
        let width = l
            .credentials
            .iter()
            .filter_map(|c| c.name.as_ref().map(|n| n.len()))
            .max()
            .unwrap_or(4)
            .clamp(4, 40);
        let mut t = String::new();
        for c in &l.credentials {
            t.push_str(&format!(
                "11-{}#{:<3} {:<width$}  {:>13}  {:<24}  {}{}\n",
                c.entry,
                c.string,
                c.name.as_deref().unwrap_or("(no name)"),
                c.bytes.map_or("-".into(), |b| format!("{b} bytes")),
                c.digest
                    .as_ref()
                    .map_or("-".into(), |d| format!("{}:{}", d.alg, d.short())),
                c.outcome,
                c.reason
                    .as_ref()
                    .map_or(String::new(), |r| format!("  ({r})"))
            ));
        }
        t.push_str(&format!(
            "{} credential string(s), {} other string(s) not shown\n",
            l.credentials.len(),
            l.not_credential
        ));
        t
    };
    super::write_stdout(text.as_bytes())?;
    Ok(Exit::Verified)
}
