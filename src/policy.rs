//! The admission policy language (`spec/policy.md`): TOML, rules matched by
//! repository glob in order, each requiring signatures by named keys (all of
//! them, or k of n) and limiting media types and size, in `enforce` or
//! `warn` mode.
//!
//! This module parses, canonicalises and evaluates; it does no I/O beyond
//! reading key files at load. Evaluation is a pure function of the policy,
//! the subject and the *set* of verified signers, so it is deterministic and
//! independent of the order evidence arrived in.

use crate::registry::digest::sha256_of;
use crate::signature::PublicKey;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use vouch_ledger::entry::Digest;

/// The policy format version this code reads.
pub const POLICY_VERSION: u32 = 1;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: u32,
    name: String,
    #[serde(default)]
    keys: BTreeMap<String, String>,
    trusted_root: Option<String>,
    #[serde(default)]
    identities: BTreeMap<String, IdentityFile>,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleFile>,
    #[serde(default)]
    unreferenced_blobs: Unreferenced,
}

/// Whether blobs that no manifest in their repository references are
/// served to readers without push rights (spec/policy.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unreferenced {
    /// Not served (the default): with mounts, an unreferenced blob could be
    /// quarantined content.
    #[default]
    Deny,
    /// Served to anyone who may pull.
    Serve,
}

/// Which registry and repository a cosign signature's
/// `critical.identity.docker-reference` must name for it to count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignedIdentity {
    /// `<registry>/<repository>`, for one of the names vouch is known by
    /// (`--registry-name`): containers/image's `matchRepoDigestOrExact`.
    #[default]
    ThisRegistry,
    /// `<any registry>/<repository>`: the same repository path on any
    /// registry (images signed where they were built, then copied here).
    AnyRegistry,
    /// Any reference: the signature binds the digest only.
    Any,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    repositories: String,
    #[serde(default = "enforce")]
    mode: Mode,
    signatures: Option<SignaturesFile>,
    media_types: Option<Vec<String>>,
    max_size: Option<u64>,
    #[serde(default)]
    attestations: Vec<AttestationFile>,
    rego: Option<String>,
    #[serde(default)]
    signed_identity: SignedIdentity,
    artifact_types: Option<Vec<String>>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFile {
    issuer: String,
    subject: Option<String>,
    subject_regex: Option<String>,
}

/// Who may sign: a public key, or a keyless identity (a Fulcio
/// certificate's OIDC issuer and subject).
#[derive(Debug, Clone)]
pub enum Authority {
    /// A public key.
    Key(PublicKey),
    /// A keyless identity.
    Identity(IdentityMatcher),
}

/// A keyless identity a policy trusts.
#[derive(Debug, Clone)]
pub struct IdentityMatcher {
    /// The OIDC issuer, exactly.
    pub issuer: String,
    /// The subject (SAN): exactly, or a whole-string regex.
    pub subject: SubjectMatch,
}

/// How a subject is matched.
#[derive(Debug, Clone)]
pub enum SubjectMatch {
    /// Equal to this.
    Exact(String),
    /// Matched in full by this regex (written without anchors).
    Regex(String, regex::Regex),
}

impl IdentityMatcher {
    /// Whether a verified identity is this one.
    pub fn matches(&self, identity: &crate::keyless::Identity) -> bool {
        identity.issuer == self.issuer
            && match &self.subject {
                SubjectMatch::Exact(s) => &identity.subject == s,
                SubjectMatch::Regex(_, r) => r.is_match(&identity.subject),
            }
    }

    /// Its stable name in policies' canonical form and in decisions:
    /// `keyless:<issuer>|<subject>` or `keyless:<issuer>|~<regex>`.
    pub fn fingerprint(&self) -> String {
        match &self.subject {
            SubjectMatch::Exact(s) => format!("keyless:{}|{s}", self.issuer),
            SubjectMatch::Regex(r, _) => format!("keyless:{}|~{r}", self.issuer),
        }
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AttestationFile {
    predicate_type: String,
    keys: Vec<String>,
}

fn enforce() -> Mode {
    Mode::Enforce
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignaturesFile {
    keys: Vec<String>,
    #[serde(default)]
    threshold: Option<Threshold>,
}

/// How many of a rule's keys must have signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum Threshold {
    /// `threshold = "all"`.
    All(AllOf),
    /// `threshold = k`.
    AtLeast(u32),
}

/// The literal `"all"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AllOf {
    /// All of the keys.
    All,
}

/// What a failed rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Failures deny (quarantine).
    Enforce,
    /// Failures are logged as reasons; the image is admitted.
    Warn,
}

/// A rule, with its keys resolved.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Repository glob: `*` within a path segment, `**` across segments.
    pub repositories: String,
    /// Enforce or warn.
    pub mode: Mode,
    /// Required signers (fingerprints) and how many of them.
    pub signatures: Option<(Vec<(String, Authority)>, u32)>,
    /// Allowed manifest media types (any if `None`).
    pub media_types: Option<Vec<String>>,
    /// Largest total size (manifest plus referenced blobs) allowed.
    pub max_size: Option<u64>,
    /// Required attestations: each predicate type, signed by one of its
    /// authorities (keys or keyless identities).
    pub attestations: Vec<(String, Vec<(String, Authority)>)>,
    /// Custom logic: a Rego module whose `deny` strings are failures.
    pub rego: Option<crate::rego::RegoModule>,
    /// What a signature's docker-reference must name.
    pub signed_identity: SignedIdentity,
    /// When set, the rule applies only to attachments (artifacts with a
    /// `subject`, not runnable, not indexes) of these artifact types.
    pub artifact_types: Option<Vec<String>>,
}

/// A loaded policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Its name.
    pub name: String,
    /// The Sigstore trusted root keyless signatures are checked against.
    pub trusted_root: Option<crate::keyless::TrustedRoot>,
    /// Its rules, in order: the first whose glob matches applies.
    pub rules: Vec<Rule>,
    /// Whether unreferenced blobs are served.
    pub unreferenced_blobs: Unreferenced,
    canonical: Vec<u8>,
}

/// Why a policy did not load.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not valid TOML for the format (unknown field, wrong type): the
    /// message names the line and column.
    #[error("policy {path}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// Valid TOML, but not a valid policy.
    #[error("policy {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// What is being admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// Repository name.
    pub repo: String,
    /// Manifest media type.
    pub media_type: String,
    /// Manifest plus referenced blob sizes, in bytes.
    pub size: u64,
    /// The manifest's digest.
    pub digest: String,
    /// The manifest itself, as JSON (for Rego rules).
    pub manifest: serde_json::Value,
    /// For an attachment (an artifact with a `subject` that is neither
    /// runnable nor an index): its artifact type.
    pub attachment: Option<String>,
}

/// The outcome of evaluating a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Admit, or deny.
    pub admit: bool,
    /// Why: failures (deny, or warnings under `warn`).
    pub reasons: Vec<String>,
    /// The signers that counted for the rule's signature requirement.
    pub signers: Vec<String>,
    /// Index of the rule that applied, if any.
    pub rule: Option<usize>,
}

impl Policy {
    /// Parses `text` (read from `path`, against which key file paths resolve).
    pub fn parse(text: &str, path: &Path) -> Result<Policy, PolicyError> {
        let shown = path.display().to_string();
        let invalid = |message: String| PolicyError::Invalid {
            path: shown.clone(),
            message,
        };
        let file: PolicyFile = toml::from_str(text).map_err(|e| PolicyError::Syntax {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        if file.version != POLICY_VERSION {
            return Err(invalid(format!(
                "version {} is not supported (this build reads version {POLICY_VERSION})",
                file.version
            )));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut keys = BTreeMap::new();
        for (name, value) in &file.keys {
            let pem = if value.contains("-----BEGIN") {
                value.clone()
            } else {
                std::fs::read_to_string(base.join(value)).map_err(|e| invalid(format!("key {name}: {value}: {e}")))?
            };
            keys.insert(
                name.clone(),
                PublicKey::from_pem(&pem).map_err(|e| invalid(format!("key {name}: {e}")))?,
            );
        }
        let trusted_root = match &file.trusted_root {
            None => None,
            Some(value) => {
                let bytes =
                    std::fs::read(base.join(value)).map_err(|e| invalid(format!("trusted_root {value}: {e}")))?;
                Some(
                    crate::keyless::TrustedRoot::parse(&bytes)
                        .map_err(|e| invalid(format!("trusted_root {value}: {e}")))?,
                )
            }
        };
        let mut identities = BTreeMap::new();
        for (name, id) in &file.identities {
            if keys.contains_key(name) {
                return Err(invalid(format!("{name:?} is both a key and an identity")));
            }
            if trusted_root.is_none() {
                return Err(invalid(format!(
                    "identity {name}: keyless identities need trusted_root (a Sigstore trusted_root.json)"
                )));
            }
            let subject = match (&id.subject, &id.subject_regex) {
                (Some(s), None) => SubjectMatch::Exact(s.clone()),
                (None, Some(r)) => SubjectMatch::Regex(
                    r.clone(),
                    regex::Regex::new(&format!("^(?:{r})$"))
                        .map_err(|e| invalid(format!("identity {name}: subject_regex: {e}")))?,
                ),
                _ => {
                    return Err(invalid(format!(
                        "identity {name}: give exactly one of subject and subject_regex"
                    )))
                }
            };
            identities.insert(
                name.clone(),
                IdentityMatcher {
                    issuer: id.issuer.clone(),
                    subject,
                },
            );
        }
        // A name in a rule: a key or an identity, with its fingerprint.
        let authority = |name: &str| match (keys.get(name), identities.get(name)) {
            (Some(key), _) => Some((key.fingerprint(), Authority::Key(key.clone()))),
            (None, Some(id)) => Some((id.fingerprint(), Authority::Identity(id.clone()))),
            (None, None) => None,
        };
        let mut rules = Vec::new();
        for (i, r) in file.rules.into_iter().enumerate() {
            let signatures = match r.signatures {
                None => None,
                Some(s) => {
                    let mut named = Vec::new();
                    for k in &s.keys {
                        named.push(
                            authority(k)
                                .ok_or_else(|| invalid(format!("rule {}: unknown key or identity {k:?}", i + 1)))?,
                        );
                    }
                    let n = named.len() as u32;
                    let k = match s.threshold.unwrap_or(Threshold::AtLeast(1)) {
                        Threshold::All(_) => n,
                        Threshold::AtLeast(k) => k,
                    };
                    if n == 0 || k == 0 || k > n {
                        return Err(invalid(format!(
                            "rule {}: threshold {k} of {n} keys is impossible",
                            i + 1
                        )));
                    }
                    Some((named, k))
                }
            };
            let mut attestations = Vec::new();
            for a in r.attestations {
                let mut named = Vec::new();
                for k in &a.keys {
                    named.push(authority(k).ok_or_else(|| {
                        invalid(format!("rule {}: attestation: unknown key or identity {k:?}", i + 1))
                    })?);
                }
                if named.is_empty() || a.predicate_type.is_empty() {
                    return Err(invalid(format!(
                        "rule {}: an attestation needs a predicate_type and at least one key",
                        i + 1
                    )));
                }
                attestations.push((a.predicate_type, named));
            }
            let rego = match &r.rego {
                None => None,
                Some(file) => {
                    let source = std::fs::read_to_string(base.join(file))
                        .map_err(|e| invalid(format!("rule {}: rego {file}: {e}", i + 1)))?;
                    Some(
                        crate::rego::RegoModule::new(file, source)
                            .map_err(|e| invalid(format!("rule {}: rego {file}: {e}", i + 1)))?,
                    )
                }
            };
            if r.artifact_types
                .as_ref()
                .is_some_and(|t| t.is_empty() || t.iter().any(String::is_empty))
            {
                return Err(invalid(format!(
                    "rule {}: artifact_types lists no artifact type, or an empty one",
                    i + 1
                )));
            }
            rules.push(Rule {
                repositories: r.repositories,
                mode: r.mode,
                signatures,
                media_types: r.media_types,
                max_size: r.max_size,
                attestations,
                rego,
                signed_identity: r.signed_identity,
                artifact_types: r.artifact_types,
            });
        }
        let mut policy = Self::from_rules(&file.name, rules);
        policy.unreferenced_blobs = file.unreferenced_blobs;
        policy.trusted_root = trusted_root;
        policy.canonical = policy.canonical_form();
        Ok(policy)
    }

    /// The policy in force when none is given: no rules, so nothing is
    /// admitted, and the reason says how to change that.
    pub fn deny_all() -> Policy {
        Self::from_rules(
            "default: nothing is admitted until vouch is given --trust-key or --policy",
            Vec::new(),
        )
    }

    /// `--trust-key`: every repository needs a signature by one of `keys`.
    pub fn trusting(keys: Vec<PublicKey>) -> Policy {
        let keys: Vec<(String, Authority)> = keys.into_iter().map(|k| (k.fingerprint(), Authority::Key(k))).collect();
        let rule = Rule {
            repositories: "**".into(),
            mode: Mode::Enforce,
            signatures: Some((keys, 1)),
            media_types: None,
            max_size: None,
            attestations: Vec::new(),
            rego: None,
            signed_identity: SignedIdentity::default(),
            artifact_types: None,
        };
        Self::from_rules("trust-key", vec![rule])
    }

    fn from_rules(name: &str, rules: Vec<Rule>) -> Policy {
        let mut policy = Policy {
            name: name.to_owned(),
            trusted_root: None,
            rules,
            unreferenced_blobs: Unreferenced::Deny,
            canonical: Vec::new(),
        };
        policy.canonical = policy.canonical_form();
        policy
    }

    /// Loads a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// The canonical document: JSON with keys replaced by their fingerprints
    /// (so the digest pins the keys themselves, not file paths), object keys
    /// sorted, no whitespace.
    fn canonical_form(&self) -> Vec<u8> {
        let rules: Vec<serde_json::Value> = self
            .rules
            .iter()
            .map(|r| {
                let mut rule = serde_json::json!({
                    "repositories": r.repositories,
                    "mode": r.mode,
                    "signatures": r.signatures.as_ref().map(|(keys, k)| serde_json::json!({
                        "keys": keys.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>(),
                        "threshold": k,
                    })),
                    "media_types": r.media_types,
                    "max_size": r.max_size,
                });
                // Only when present, so policies without attestations keep
                // the digests they had before attestations existed.
                if !r.attestations.is_empty() {
                    rule["attestations"] = r
                        .attestations
                        .iter()
                        .map(|(t, keys)| {
                            serde_json::json!({
                                "predicate_type": t,
                                "keys": keys.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>(),
                            })
                        })
                        .collect();
                }
                if let Some(m) = &r.rego {
                    rule["rego"] = m.digest.as_str().into();
                }
                // Only when not the default, likewise.
                if r.signed_identity != SignedIdentity::default() {
                    rule["signed_identity"] = serde_json::to_value(r.signed_identity).expect("serialize");
                }
                if let Some(t) = &r.artifact_types {
                    rule["artifact_types"] = t.clone().into();
                }
                rule
            })
            .collect();
        let mut doc = serde_json::json!({ "version": POLICY_VERSION, "name": self.name, "rules": rules });
        // Only when present, so policies without keyless identities keep
        // their digests.
        if let Some(root) = &self.trusted_root {
            doc["trusted_root"] = root.digest.as_str().into();
        }
        if self.unreferenced_blobs != Unreferenced::Deny {
            doc["unreferenced_blobs"] = serde_json::to_value(self.unreferenced_blobs).expect("serialize");
        }
        serde_json::to_vec(&doc).expect("serialize a JSON value")
    }

    /// The canonical document's bytes.
    pub fn canonical(&self) -> &[u8] {
        &self.canonical
    }

    /// The policy's identity: the SHA-256 of its canonical document.
    pub fn digest(&self) -> Digest {
        sha256_of(&self.canonical)
    }

    /// The rule that applies to `subject`: the first whose glob matches its
    /// repository and, if the rule names artifact types, that is an
    /// attachment of one of them.
    pub fn rule_for(&self, subject: &Subject) -> Option<(usize, &Rule)> {
        self.rules.iter().enumerate().find(|(_, r)| {
            glob_match(&r.repositories, &subject.repo)
                && match (&r.artifact_types, &subject.attachment) {
                    (None, _) => true,
                    (Some(types), Some(t)) => types.contains(t),
                    (Some(_), None) => false,
                }
        })
    }

    /// Decides about `subject`, given the fingerprints of the keys whose
    /// signatures on it verified (and no attestations).
    pub fn evaluate(&self, subject: &Subject, signers: &BTreeSet<String>) -> Decision {
        self.evaluate_with(subject, signers, &BTreeSet::new())
    }

    /// Decides about `subject`, given the fingerprints of the keys whose
    /// signatures on it verified, and its verified attestations as
    /// (predicate type, signer fingerprint) pairs.
    pub fn evaluate_with(
        &self,
        subject: &Subject,
        signers: &BTreeSet<String>,
        attested: &BTreeSet<(String, String)>,
    ) -> Decision {
        let Some((index, rule)) = self.rule_for(subject) else {
            return Decision {
                admit: false,
                reasons: vec![format!(
                    "no rule of policy {:?} matches repository {}",
                    self.name, subject.repo
                )],
                signers: vec![],
                rule: None,
            };
        };
        let mut failures = Vec::new();
        let mut counted = Vec::new();
        if let Some((keys, k)) = &rule.signatures {
            counted = keys
                .iter()
                .filter(|(f, _)| signers.contains(f))
                .map(|(f, _)| f.clone())
                .collect();
            if (counted.len() as u32) < *k {
                failures.push(format!(
                    "needs signatures by {k} of {} trusted keys, has {}",
                    keys.len(),
                    counted.len()
                ));
            }
        }
        for (predicate_type, keys) in &rule.attestations {
            let found = keys
                .iter()
                .any(|(f, _)| attested.contains(&(predicate_type.clone(), f.clone())));
            if !found {
                failures.push(format!(
                    "needs a {predicate_type} attestation signed by one of {} trusted keys",
                    keys.len()
                ));
            }
        }
        if let Some(module) = &rule.rego {
            failures.extend(module.deny(&rego_input(subject, signers, attested)));
        }
        if let Some(types) = &rule.media_types {
            if !types.contains(&subject.media_type) {
                failures.push(format!("media type {} is not allowed", subject.media_type));
            }
        }
        if let Some(max) = rule.max_size {
            if subject.size > max {
                failures.push(format!("size {} exceeds the limit of {max} bytes", subject.size));
            }
        }
        let admit = failures.is_empty() || rule.mode == Mode::Warn;
        Decision {
            admit,
            reasons: failures,
            signers: counted,
            rule: Some(index),
        }
    }
}

/// The Rego input document (spec/policy.md, "Rego").
pub fn rego_input(
    subject: &Subject,
    signers: &BTreeSet<String>,
    attested: &BTreeSet<(String, String)>,
) -> serde_json::Value {
    serde_json::json!({
        "repository": subject.repo,
        "digest": subject.digest,
        "media_type": subject.media_type,
        "size": subject.size,
        "manifest": subject.manifest,
        "signers": signers,
        "attestations": attested
            .iter()
            .map(|(t, s)| serde_json::json!({ "predicate_type": t, "signer": s }))
            .collect::<Vec<_>>(),
    })
}

pub use crate::registry::names::glob_match;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("**", "a/b/c"));
        assert!(glob_match("prod/*", "prod/app"));
        assert!(!glob_match("prod/*", "prod/team/app"));
        assert!(glob_match("prod/**", "prod/team/app"));
        assert!(glob_match("*/app", "team/app"));
        assert!(!glob_match("*/app", "a/team/app"));
        assert!(!glob_match("prod", "production"));
    }
}
