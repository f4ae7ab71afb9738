//! The validated plan: every OEM string to deliver, in order, and the manifest
//! injected with them. Nothing is written or executed before a plan exists, so
//! every refusal happens before anything is half-done.
//!
//! Rules (all from `vmcreds_common`): names by [`NameRule`]; duplicates refused
//! naming both sources; `vmcreds.manifest` reserved while the manifest is
//! injected; text encoding refused for values with NUL; the manifest injected
//! first (compact JSON) as the binary credential `vmcreds.manifest` keyed with
//! a fresh 32-byte nonce; raw strings (`--oem`, a VmConfig's own strings) that
//! parse as credentials recorded in the manifest, and those systemd would
//! refuse passed through with a warning; the target's [`Budget`] checked
//! once, over everything that will be in the structure.

use std::collections::HashMap;

use thiserror::Error;
use vmcreds_common::digest::{Nonce, NONCE_LEN};
use vmcreds_common::manifest::{Manifest, MANIFEST_CREDENTIAL};
use vmcreds_common::name::NameError;
use vmcreds_common::oem::{self, EncodeError, Encoding, Parsed};
use vmcreds_common::systemd::{Behaviour, FIRST_SMBIOS_IMPORT};
use vmcreds_common::{CredentialName, NameRule, Secret};

use crate::exit::{Classify, Exit};
use crate::hv::{Budget, BudgetError, Usage};
use crate::source::{Loaded, Origin};

/// The generator string written into manifests.
pub const GENERATOR: &str = concat!("vmcreds-host ", env!("CARGO_PKG_VERSION"));

/// Options that shape a plan.
#[derive(Clone, Copy, Debug)]
pub struct PlanOptions {
    /// Which name rule applies.
    pub rule: NameRule,
    /// How values are carried.
    pub encoding: Encoding,
    /// Inject `vmcreds.manifest` (and key the manifest with a nonce).
    pub manifest: bool,
    /// What the target can carry.
    pub budget: Budget,
}

/// One OEM string to deliver.
#[derive(Debug)]
pub struct OemString {
    /// What it is, for messages: `credential "NAME"`, `--oem #N`, …
    pub label: String,
    /// The credential name, when it is a credential string.
    pub name: Option<CredentialName>,
    /// Given as is by the user (`--oem`, a VmConfig's own string), not built
    /// by vmcreds-host from a name and a value.
    pub raw: bool,
    /// Whether the value is public (`--set`, `--oem`, the manifest): only
    /// then may a message locate a character in it.
    pub public: bool,
    /// Bytes before the value (prefix, name, `=`); 0 for raw strings. A
    /// character before this offset is part of the name and may always be
    /// located.
    pub value_offset: usize,
    /// The string (it holds a value, hence a [`Secret`]).
    pub bytes: Secret,
}

impl OemString {
    /// Whether a message may name the character at byte `offset`.
    pub fn may_locate(&self, offset: usize) -> bool {
        self.public || offset < self.value_offset
    }
}

/// A validated plan.
#[derive(Debug)]
pub struct Plan {
    /// The strings, in delivery order (the manifest first when injected).
    pub strings: Vec<OemString>,
    /// The manifest of everything delivered (without itself).
    pub manifest: Manifest,
    /// Whether the manifest is among `strings`.
    pub manifest_injected: bool,
    /// What the strings use of the budget.
    pub usage: Usage,
    /// Warnings for stderr (never values).
    pub warnings: Vec<String>,
}

/// What the operator can do about a name common's rules refuse.
fn name_advice(e: &NameError) -> &'static str {
    match e {
        NameError::NotPortable { .. } => "; rename it, or pass --allow-any-name",
        _ => "",
    }
}

/// What the operator can do about a value the encoding cannot carry.
fn encode_advice(e: &EncodeError) -> &'static str {
    match e {
        EncodeError::TextHasNul { .. } => ", so it needs --encoding binary (the default)",
    }
}

/// Why a plan is refused (exit 2).
#[derive(Debug, Error)]
pub enum PlanError {
    /// An invalid name; the advice naming a host flag is the host's own
    /// (common's rule knows no flags).
    #[error("{origin}: {error}{}", name_advice(error))]
    Name {
        /// Where the name came from.
        origin: String,
        /// Which rule refuses it.
        error: NameError,
    },
    /// A name given twice.
    #[error("credential \"{name}\" is given twice, by {first} and by {second}; systemd would keep the first and silently drop the second, so remove one")]
    Duplicate {
        /// The name.
        name: String,
        /// The first source.
        first: String,
        /// The second source.
        second: String,
    },
    /// `vmcreds.manifest` given by the user while the manifest is injected.
    #[error("{origin}: the name \"{MANIFEST_CREDENTIAL}\" is reserved for the manifest vmcreds-host injects; rename the credential, or pass --no-manifest")]
    Reserved {
        /// Where it came from.
        origin: String,
    },
    /// A value the encoding cannot carry.
    #[error("{origin}: {error}{}", encode_advice(error))]
    Encode {
        /// Where it came from.
        origin: String,
        /// Why.
        error: EncodeError,
    },
    /// An empty raw string.
    #[error("{origin} is empty; QEMU drops empty OEM strings (leaving a wrong count) and cloud-hypervisor ends its table early")]
    EmptyOem {
        /// Where it came from.
        origin: String,
    },
    /// `--guest-systemd` below the first version that imports SMBIOS.
    #[error("--guest-systemd {0}: systemd imports SMBIOS credentials only from version {FIRST_SMBIOS_IMPORT} on; in such a guest run vmcreds-guest import instead")]
    GuestTooOld(u32),
    /// Over a limit of systemd or the target.
    #[error("the credentials do not fit the {target} target")]
    Limit {
        /// The target.
        target: &'static str,
        /// The limit and by how much.
        #[source]
        source: BudgetError,
    },
    /// No randomness for the nonce.
    #[error("cannot draw a random nonce: {0}")]
    Random(String),
}

impl Classify<Exit> for PlanError {
    fn exit(&self) -> Exit {
        match self {
            PlanError::Random(_) => Exit::Io,
            _ => Exit::Refused,
        }
    }
}

/// Draws a fresh nonce from the OS.
pub fn fresh_nonce() -> Result<Nonce, PlanError> {
    let mut bytes = [0u8; NONCE_LEN];
    getrandom::fill(&mut bytes).map_err(|e| PlanError::Random(e.to_string()))?;
    Ok(Nonce::from_bytes(bytes))
}

/// The plan while it is being built.
struct Builder {
    opts: PlanOptions,
    manifest: Manifest,
    strings: Vec<OemString>,
    warnings: Vec<String>,
    /// Name → the source that gave it first.
    seen: HashMap<String, String>,
    /// (name, decoded size) of every credential, for systemd's limits.
    decoded: Vec<(String, usize)>,
}

impl Builder {
    /// Records credential `name` (from `origin`) with its decoded `value`:
    /// reserved name and duplicate checks, the manifest entry, the size.
    fn record(
        &mut self,
        name: &CredentialName,
        value: &[u8],
        encoding: Encoding,
        origin: &str,
    ) -> Result<(), PlanError> {
        if self.opts.manifest && name.as_str() == MANIFEST_CREDENTIAL {
            return Err(PlanError::Reserved {
                origin: origin.to_owned(),
            });
        }
        if let Some(first) = self.seen.get(name.as_str()) {
            return Err(PlanError::Duplicate {
                name: name.to_string(),
                first: first.clone(),
                second: origin.to_owned(),
            });
        }
        self.seen.insert(name.to_string(), origin.to_owned());
        if let Some(what) = vmcreds_common::systemd::reconfigures(name.as_str()) {
            self.warnings.push(format!(
                "{origin}: credential \"{name}\" is a system credential that {what} when the guest boots (systemd.system-credentials(7)); make sure it is meant"
            ));
        }
        self.manifest.push(name.clone(), value, encoding);
        self.decoded.push((name.to_string(), value.len()));
        Ok(())
    }

    /// A named value: validated, encoded, recorded.
    fn credential(&mut self, name: &str, origin: &Origin, value: &Secret) -> Result<(), PlanError> {
        let label = origin.to_string();
        let cn = CredentialName::parse(name, self.opts.rule).map_err(|error| PlanError::Name {
            origin: label.clone(),
            error,
        })?;
        let bytes = oem::encode(&cn, value.expose(), self.opts.encoding).map_err(|error| {
            PlanError::Encode {
                origin: label.clone(),
                error,
            }
        })?;
        self.record(&cn, value.expose(), self.opts.encoding, &label)?;
        self.strings.push(OemString {
            label: format!("credential \"{cn}\""),
            value_offset: oem::encoded_len(&cn, 0, self.opts.encoding),
            name: Some(cn),
            raw: false,
            public: origin.is_public(),
            bytes,
        });
        Ok(())
    }

    /// A raw string: passed as is; recorded when it is a credential, with a
    /// warning when some systemd would ignore it.
    fn raw(&mut self, origin: &Origin, string: String) -> Result<(), PlanError> {
        let label = origin.to_string();
        if string.is_empty() {
            return Err(PlanError::EmptyOem { origin: label });
        }
        let mut name = None;
        match oem::parse(string.as_bytes(), &Behaviour::newest()) {
            Parsed::NotCredential => {}
            Parsed::Rejected { name: n, reason, .. } => self.warnings.push(format!(
                "{label}: systemd will ignore this credential string{}: {reason}; passing it through as asked",
                n.map(|n| format!(" (\"{n}\")")).unwrap_or_default()
            )),
            Parsed::Credential {
                name: cn,
                encoding,
                value,
            } => {
                if let Parsed::Rejected { reason, .. } =
                    oem::parse(string.as_bytes(), &Behaviour::of(FIRST_SMBIOS_IMPORT))
                {
                    self.warnings.push(format!(
                        "{label}: systemd {FIRST_SMBIOS_IMPORT} will ignore credential \"{cn}\": {reason} (newer systemd accepts it)"
                    ));
                }
                self.record(&cn, value.expose(), encoding, &label)?;
                name = Some(cn);
            }
        }
        self.strings.push(OemString {
            label,
            name,
            raw: true,
            public: origin.is_public(),
            value_offset: 0,
            bytes: Secret::new(string.into_bytes()),
        });
        Ok(())
    }

    /// Puts the manifest first and checks the whole set against the budget.
    fn finish(mut self) -> Result<Plan, PlanError> {
        if self.opts.manifest {
            let cn = CredentialName::parse(MANIFEST_CREDENTIAL, NameRule::Portable)
                .expect("reserved name is portable");
            let json = self.manifest.to_json_compact();
            self.decoded
                .insert(0, (MANIFEST_CREDENTIAL.to_owned(), json.len()));
            let bytes = oem::encode(&cn, json.as_bytes(), Encoding::Binary)
                .expect("binary encoding takes any bytes");
            self.strings.insert(
                0,
                OemString {
                    label: format!("credential \"{MANIFEST_CREDENTIAL}\""),
                    value_offset: oem::encoded_len(&cn, 0, Encoding::Binary),
                    name: Some(cn),
                    raw: false,
                    public: true,
                    bytes,
                },
            );
        }
        let lens: Vec<usize> = self.strings.iter().map(|s| s.bytes.len()).collect();
        let decoded: Vec<(&str, usize)> =
            self.decoded.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        let usage = self
            .opts
            .budget
            .check(&lens, &decoded)
            .map_err(|source| PlanError::Limit {
                target: self.opts.budget.target,
                source,
            })?;
        tracing::info!(
            target_name = self.opts.budget.target,
            strings = usage.strings,
            type11_bytes = usage.type11_bytes,
            decoded_bytes = usage.decoded_total,
            manifest = self.opts.manifest,
            warnings = self.warnings.len(),
            "plan validated"
        );
        Ok(Plan {
            strings: self.strings,
            manifest: self.manifest,
            manifest_injected: self.opts.manifest,
            usage,
            warnings: self.warnings,
        })
    }
}

impl Plan {
    /// Validates `loaded` into a plan, drawing a fresh nonce when the manifest is injected.
    pub fn build(loaded: Vec<Loaded>, opts: PlanOptions) -> Result<Plan, PlanError> {
        let nonce = if opts.manifest {
            Some(fresh_nonce()?)
        } else {
            None
        };
        Plan::build_with_nonce(loaded, opts, nonce)
    }

    /// [`Plan::build`] with a given nonce (tests).
    pub fn build_with_nonce(
        loaded: Vec<Loaded>,
        opts: PlanOptions,
        nonce: Option<Nonce>,
    ) -> Result<Plan, PlanError> {
        let mut b = Builder {
            opts,
            manifest: Manifest::new(nonce, GENERATOR),
            strings: Vec::new(),
            warnings: Vec::new(),
            seen: HashMap::new(),
            decoded: Vec::new(),
        };
        for item in loaded {
            match item {
                Loaded::Credential {
                    name,
                    origin,
                    value,
                } => b.credential(&name, &origin, &value)?,
                Loaded::Oem { origin, string } => b.raw(&origin, string)?,
            }
        }
        b.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hv::qemu;
    use vmcreds_common::limits::{CREDENTIALS_TOTAL_SIZE_MAX, CREDENTIAL_SIZE_MAX};
    use vmcreds_common::manifest::MANIFEST_SCHEMA;

    fn opts() -> PlanOptions {
        PlanOptions {
            rule: NameRule::Portable,
            encoding: Encoding::Binary,
            manifest: true,
            budget: qemu::BUDGET_32,
        }
    }

    /// systemd's limits and 255 strings, no table limit.
    const UNBOUNDED_TABLE: Budget = Budget::ANY_TARGET;

    fn cred(name: &str, value: &[u8]) -> Loaded {
        Loaded::Credential {
            name: name.into(),
            origin: Origin::Set { name: name.into() },
            value: Secret::new(value.to_vec()),
        }
    }

    fn oem_s(i: usize, s: &str) -> Loaded {
        Loaded::Oem {
            origin: Origin::Oem { index: i },
            string: s.into(),
        }
    }

    #[test]
    fn test_manifest_first_and_binary_strings() {
        let nonce = Nonce::from_bytes([5; 32]);
        let p = Plan::build_with_nonce(
            vec![cred("API_KEY", b"CANARY\0x"), oem_s(1, "hello")],
            opts(),
            Some(nonce.clone()),
        )
        .unwrap();
        assert_eq!(p.strings.len(), 3);
        assert!(p.strings[0]
            .bytes
            .expose()
            .starts_with(b"io.systemd.credential.binary:vmcreds.manifest="));
        assert_eq!(
            p.strings[1].bytes.expose(),
            b"io.systemd.credential.binary:API_KEY=Q0FOQVJZAHg="
        );
        assert_eq!(p.strings[2].bytes.expose(), b"hello");
        assert!(p.strings[2].raw && p.strings[2].name.is_none());
        assert_eq!(p.manifest.credentials.len(), 1);
        assert_eq!(p.manifest.schema, MANIFEST_SCHEMA);
        assert_eq!(p.manifest.nonce, Some(nonce));
        // The injected manifest decodes to the same document.
        match oem::parse(p.strings[0].bytes.expose(), &Behaviour::newest()) {
            Parsed::Credential { value, .. } => {
                assert_eq!(Manifest::from_json(value.expose()).unwrap(), p.manifest);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn test_fresh_nonces_differ() {
        let a = Plan::build(vec![cred("A", b"1")], opts()).unwrap();
        let b = Plan::build(vec![cred("A", b"1")], opts()).unwrap();
        assert_ne!(a.manifest.nonce, b.manifest.nonce);
        assert_ne!(
            a.manifest.credentials[0].digest,
            b.manifest.credentials[0].digest
        );
    }

    #[test]
    fn test_no_manifest() {
        let p = Plan::build(
            vec![cred("A", b"1")],
            PlanOptions {
                manifest: false,
                ..opts()
            },
        )
        .unwrap();
        assert_eq!(p.strings.len(), 1);
        assert!(p.manifest.nonce.is_none());
        // The reserved name is free then.
        assert!(Plan::build(
            vec![cred("vmcreds.manifest", b"{}")],
            PlanOptions {
                manifest: false,
                ..opts()
            }
        )
        .is_ok());
    }

    #[test]
    fn test_names_duplicates_reserved() {
        let e = Plan::build(vec![cred("A,B", b"1")], opts()).unwrap_err();
        assert!(
            e.to_string().ends_with(
                "(it breaks hypervisor option parsers); rename it, or pass --allow-any-name"
            ),
            "{e}"
        );
        assert!(matches!(
            e,
            PlanError::Name {
                error: NameError::NotPortable { .. },
                ..
            }
        ));
        assert!(Plan::build(
            vec![cred("A,B", b"1")],
            PlanOptions {
                rule: NameRule::Systemd,
                ..opts()
            }
        )
        .is_ok());
        let e = Plan::build(vec![cred("A", b"1"), cred("A", b"2")], opts()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("\"A\" is given twice") && msg.matches("--set \"A\"").count() == 2,
            "{msg}"
        );
        let e = Plan::build(
            vec![cred("A", b"1"), oem_s(1, "io.systemd.credential:A=x")],
            opts(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("--oem #1"), "{e}");
        assert!(matches!(
            Plan::build(vec![cred("vmcreds.manifest", b"1")], opts()),
            Err(PlanError::Reserved { .. })
        ));
    }

    #[test]
    fn test_issue11_reconfiguring_names_are_warned_not_refused() {
        let p = Plan::build(
            vec![
                cred("systemd.extra-unit.evil.service", b"[Service]"),
                cred("ssh.authorized_keys.root", b"ssh-ed25519 AAAA"),
                oem_s(1, "io.systemd.credential:tmpfiles.extra=d /x"),
                cred("API_KEY", b"k"),
            ],
            opts(),
        )
        .unwrap();
        assert_eq!(p.warnings.len(), 3, "{:?}", p.warnings);
        assert!(
            p.warnings[0].contains("\"systemd.extra-unit.evil.service\"")
                && p.warnings[0].contains("adds a unit file")
        );
        assert!(p.warnings[1].contains("log in as root"));
        assert!(p.warnings[2].contains("--oem #1"));
        assert!(
            p.warnings
                .iter()
                .all(|w| !w.contains("AAAA") && !w.contains("[Service]")),
            "no value"
        );
    }

    #[test]
    fn test_text_refuses_nul() {
        let o = PlanOptions {
            encoding: Encoding::Text,
            ..opts()
        };
        let e = Plan::build(vec![cred("A", b"a\0b")], o).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("so it needs --encoding binary (the default)"),
            "{e}"
        );
        assert!(matches!(
            Err::<(), _>(e),
            Err(PlanError::Encode {
                error: EncodeError::TextHasNul { .. },
                ..
            })
        ));
        let p = Plan::build(vec![cred("A", b"a=b")], o).unwrap();
        assert_eq!(p.strings[1].bytes.expose(), b"io.systemd.credential:A=a=b");
    }

    #[test]
    fn test_oem_credentials_recorded_and_rejected_warned() {
        let p = Plan::build(
            vec![
                oem_s(
                    1,
                    "io.systemd.credential:vmm.notify_socket=vsock-stream:2:8888",
                ),
                oem_s(2, "io.systemd.credential.binary:BAD=QQ"),
                oem_s(3, "io.systemd.credential.binary:URL=-_-_"),
            ],
            opts(),
        )
        .unwrap();
        assert!(p.manifest.get("vmm.notify_socket").is_some());
        assert!(p.manifest.get("BAD").is_none());
        assert!(p.manifest.get("URL").is_some());
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("--oem #2") && p.warnings[0].contains("EPIPE"));
        assert!(p.warnings[1].contains("systemd 252"));
        assert!(matches!(
            Plan::build(vec![oem_s(1, "")], opts()),
            Err(PlanError::EmptyOem { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn prop_any_value_round_trips(
            name in "[A-Za-z0-9_.@+-]{1,40}",
            value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
        ) {
            proptest::prop_assume!(name != "." && name != ".." && name != MANIFEST_CREDENTIAL);
            let nonce = Nonce::from_bytes([7; 32]);
            let p = Plan::build_with_nonce(vec![cred(&name, &value)], opts(), Some(nonce.clone())).unwrap();
            for version in [252, 257] {
                match oem::parse(p.strings[1].bytes.expose(), &Behaviour::of(version)) {
                    Parsed::Credential { name: n, value: v, .. } => {
                        proptest::prop_assert_eq!(n.as_str(), name.as_str());
                        proptest::prop_assert_eq!(v.expose(), &value[..]);
                    }
                    other => proptest::prop_assert!(false, "{:?}", other),
                }
            }
            let e = p.manifest.get(&name).unwrap();
            proptest::prop_assert_eq!(e.bytes, value.len() as u64);
            proptest::prop_assert_eq!(&e.digest, &vmcreds_common::digest::digest(&value, Some(&nonce)));
        }
    }

    #[test]
    fn test_limits_name_rule_and_numbers() {
        // Total over systemd's 1 MiB with per-credential values within it.
        let half = vec![0u8; CREDENTIALS_TOTAL_SIZE_MAX / 2];
        let e = Plan::build(
            vec![cred("A", &half), cred("B", &half)],
            PlanOptions {
                manifest: false,
                budget: qemu::BUDGET_64,
                ..opts()
            },
        )
        .unwrap_err();
        // Base64 makes the structure exceed systemd's raw read window first.
        let msg = format!("{:#}", anyhow::Error::new(e));
        assert!(msg.contains("over the") && msg.contains("by "), "{msg}");
        let e = Plan::build(
            vec![cred("A", &vec![1u8; CREDENTIAL_SIZE_MAX + 1])],
            PlanOptions {
                manifest: false,
                encoding: Encoding::Text,
                budget: qemu::BUDGET_64,
                ..opts()
            },
        );
        assert!(matches!(
            e,
            Err(PlanError::Limit {
                source: BudgetError::Systemd(
                    vmcreds_common::limits::LimitError::CredentialTooLarge { .. }
                ),
                ..
            })
        ));
        // 32-bit table: about 40 KiB of base64 fits, 60 KiB does not.
        assert!(Plan::build(vec![cred("A", &vec![1u8; 30_000])], opts()).is_ok());
        let e = Plan::build(vec![cred("A", &vec![1u8; 45_000])], opts()).unwrap_err();
        assert!(matches!(
            e,
            PlanError::Limit {
                source: BudgetError::TableTooLarge { .. },
                ..
            }
        ));
        assert!(Plan::build(
            vec![cred("A", &vec![1u8; 45_000])],
            PlanOptions {
                budget: UNBOUNDED_TABLE,
                ..opts()
            }
        )
        .is_ok());
        // 255 strings fit (254 + the manifest), 256 do not. The manifest of 254
        // credentials is large, so no table limit here.
        let opts = || PlanOptions {
            budget: UNBOUNDED_TABLE,
            ..opts()
        };
        let many: Vec<Loaded> = (0..254).map(|i| cred(&format!("C{i}"), b"v")).collect();
        assert_eq!(Plan::build(many, opts()).unwrap().usage.strings, 255);
        let many: Vec<Loaded> = (0..255).map(|i| cred(&format!("C{i}"), b"v")).collect();
        assert!(matches!(
            Plan::build(many, opts()),
            Err(PlanError::Limit {
                source: BudgetError::TooManyStrings { actual: 256, .. },
                ..
            })
        ));
    }
}
