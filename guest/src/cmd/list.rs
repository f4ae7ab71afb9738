//! `list`: the Type 11 credentials seen, by name, size and digest.

use serde::Serialize;
use vmcreds_common::digest::{digest, Digest};
use vmcreds_common::oem::Encoding;
use vmcreds_common::predict::OutcomeKind;
use vmcreds_common::render::{name_width, table, Line};

use crate::cli::ListArgs;
use crate::creds_dir::CredsLocation;
use crate::exit::{Exit, Result};
use crate::observe;
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
    pub outcome: OutcomeKind,
    /// Why, when not imported.
    pub reason: Option<String>,
}

/// `vmcreds-guest list --json`.
#[derive(Debug, Serialize)]
pub struct StringListing {
    /// Nonce id when digests are keyed.
    pub nonce_id: Option<String>,
    /// Credential strings in systemd's order.
    pub credentials: Vec<ListedString>,
    /// Strings without a credential prefix (never printed).
    pub not_credential: u64,
}

/// Runs `list`.
pub fn run(args: &ListArgs) -> Result<Exit> {
    let root = Root::open(&args.root.root)?;
    let smbios = observe::read_smbios(&root, args.root.systemd_version)?;
    let nonce = observe::manifest_nonce(&root, &CredsLocation::System, &smbios)?;
    let mut l = StringListing {
        nonce_id: nonce.as_ref().map(|n| n.id()),
        credentials: Vec::new(),
        not_credential: 0,
    };
    for s in &smbios.prediction.strings {
        let outcome = s.outcome.kind();
        if outcome == OutcomeKind::NotCredential {
            l.not_credential += 1;
            continue;
        }
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
        // serde_json's pretty bytes and a newline, written without
        // compiling serde_json's serialiser into the guest.
        vmcreds_common::json_out::pretty(&l, 4096 + 400 * l.credentials.len())
    } else {
        let lines: Vec<Line<'_>> = l
            .credentials
            .iter()
            .map(|c| Line {
                lead: format!("11-{}#{:<3} ", c.entry, c.string),
                name: c.name.as_deref().unwrap_or("(no name)"),
                bytes: c.bytes,
                digest: Some(c.digest.as_ref()),
                status: c.outcome.to_string(),
                reason: c.reason.as_deref(),
            })
            .collect();
        let width = name_width(l.credentials.iter().filter_map(|c| c.name.as_deref()));
        let mut t = table(&lines, width);
        t.push_str(&format!(
            "{} credential string(s), {} other string(s) not shown\n",
            l.credentials.len(),
            l.not_credential
        ));
        t
    };
    super::write_stdout(text.as_bytes())?;
    Ok(Exit::Success)
}
