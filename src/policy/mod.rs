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

pub mod attested;
pub mod image;
mod parse;
pub mod sbom;
mod scan;

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

/// Whether a rule admits images with non-distributable ("foreign") layers:
/// layers referenced by URL, never pushed, never served (spec/policy.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ForeignLayers {
    /// Admitted like any layer (the default; Windows base images have them).
    #[default]
    Allow,
    /// A failure of the rule.
    Deny,
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

/// Who may sign: a public key, or a keyless identity (a Fulcio
/// certificate's OIDC issuer and subject).
#[derive(Debug, Clone)]
pub enum Authority {
    /// A public key.
    Key(PublicKey),
    /// A keyless identity.
    Identity(IdentityMatcher),
    /// A Notation trust policy: trust stores and trusted identities.
    Notation(std::sync::Arc<crate::notation::TrustPolicy>),
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

/// The fingerprints of the trusted identities (`identities`, as
/// [`Policy::authorities`] lists them) that a verified keyless signer is.
pub fn identities_matching(identities: &[(String, IdentityMatcher)], id: &crate::keyless::Identity) -> Vec<String> {
    identities
        .iter()
        .filter(|(_, m)| m.matches(id))
        .map(|(fp, _)| fp.clone())
        .collect()
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
    /// Whether non-distributable layers are admitted.
    pub foreign_layers: ForeignLayers,
    /// Declarative rules over the image configuration.
    pub image: image::ImageRules,
    /// A vulnerability gate over signed scans.
    pub vulnerabilities: Option<attested::VulnRule>,
    /// Required SLSA provenance.
    pub provenance: Option<attested::ProvenanceRule>,
    /// Licenses and packages an SBOM may not list.
    pub sbom: Option<sbom::SbomRule>,
    /// Whether Rego sees the values of the configuration's environment
    /// (`input.images[].env`), not only the names.
    pub env_values: bool,
}

impl Rule {
    /// Whether evaluating this rule reads the image configuration.
    pub fn reads_image(&self) -> bool {
        self.image.any() || self.rego.is_some()
    }

    /// Whether evaluating this rule reads what attestations say.
    pub fn reads_predicates(&self) -> bool {
        self.vulnerabilities.is_some() || self.provenance.is_some() || self.sbom.is_some() || self.rego.is_some()
    }
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
    /// The names the file gives its keys and identities, with their
    /// fingerprints (for `vouch policy` test cases, which use names).
    pub names: BTreeMap<String, String>,
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
    /// How many of its layers are non-distributable (referenced by URL).
    pub foreign_layers: usize,
    /// Its image configuration(s), read when the rule needs them.
    pub configs: image::Configs,
    /// When it is evaluated, in seconds since the Unix epoch (`max_age`).
    pub evaluated_at: i64,
    /// The predicates of its verified attestations, read when the rule
    /// needs them.
    pub predicates: Vec<attested::Predicate>,
    /// Not all of its evidence was read (a bound was reached). Unread
    /// evidence could hold a newer scan with a critical finding, so a rule
    /// over what attestations say fails on it.
    pub evidence_incomplete: bool,
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
            foreign_layers: ForeignLayers::default(),
            image: image::ImageRules::default(),
            vulnerabilities: None,
            provenance: None,
            sbom: None,
            env_values: false,
        };
        Self::from_rules("trust-key", vec![rule])
    }

    fn from_rules(name: &str, rules: Vec<Rule>) -> Policy {
        let mut policy = Policy {
            name: name.to_owned(),
            trusted_root: None,
            rules,
            unreferenced_blobs: Unreferenced::Deny,
            names: BTreeMap::new(),
            canonical: Vec::new(),
        };
        policy.canonical = policy.canonical_form();
        policy
    }

    /// Every key and keyless identity any rule names (for signatures,
    /// attestations, scans or provenance), each once, by fingerprint: what
    /// evidence is verified against.
    pub fn authorities(&self) -> (Vec<PublicKey>, Vec<(String, IdentityMatcher)>) {
        let mut keys: Vec<PublicKey> = Vec::new();
        let mut identities: Vec<(String, IdentityMatcher)> = Vec::new();
        for rule in &self.rules {
            let signers = rule.signatures.iter().flat_map(|(ks, _)| ks);
            let attesters = rule.attestations.iter().flat_map(|(_, ks)| ks);
            let scanners = rule.vulnerabilities.iter().flat_map(|v| &v.signers);
            let builders = rule.provenance.iter().flat_map(|p| &p.signers);
            let producers = rule.sbom.iter().flat_map(|s| &s.signers);
            let all = signers
                .chain(attesters)
                .chain(scanners)
                .chain(builders)
                .chain(producers);
            for (fingerprint, authority) in all {
                match authority {
                    Authority::Key(key) => {
                        if !keys.iter().any(|k| &k.fingerprint() == fingerprint) {
                            keys.push(key.clone());
                        }
                    }
                    Authority::Identity(m) => {
                        if !identities.iter().any(|(g, _)| g == fingerprint) {
                            identities.push((fingerprint.clone(), m.clone()));
                        }
                    }
                    // Verified per signature in admission (notation_trust).
                    Authority::Notation(_) => {}
                }
            }
        }
        (keys, identities)
    }

    /// The Notation trust policies the rules name, by fingerprint, each once.
    pub fn notation_trust(&self) -> Vec<(String, std::sync::Arc<crate::notation::TrustPolicy>)> {
        let mut out: Vec<(String, std::sync::Arc<crate::notation::TrustPolicy>)> = Vec::new();
        for rule in &self.rules {
            for (fingerprint, authority) in rule.signatures.iter().flat_map(|(ks, _)| ks) {
                if let Authority::Notation(t) = authority {
                    if !out.iter().any(|(f, _)| f == fingerprint) {
                        out.push((fingerprint.clone(), t.clone()));
                    }
                }
            }
        }
        out
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
            let mut input = rego_input(subject, signers, attested);
            if rule.env_values {
                with_env_values(&mut input, &subject.configs);
            }
            failures.extend(module.deny(&input));
        }
        if let Some(types) = &rule.media_types {
            if !types.contains(&subject.media_type) {
                failures.push(format!("media type {} is not allowed", subject.media_type));
            }
        }
        if rule.foreign_layers == ForeignLayers::Deny && subject.foreign_layers > 0 {
            failures.push(format!(
                "{} non-distributable (foreign) layer(s), which this rule does not admit",
                subject.foreign_layers
            ));
        }
        if subject.evidence_incomplete && rule.reads_predicates() {
            failures.push(
                "not all evidence could be read (a bound was reached), and the rule reads what attestations say: \
                 it cannot admit on part of them"
                    .into(),
            );
        }
        failures.extend(rule.image.failures(&subject.configs, subject.evaluated_at));
        failures.extend(attested_failures(rule, subject));
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
        "foreign_layers": subject.foreign_layers,
        "images": subject.configs.images(),
        "image_error": match &subject.configs {
            image::Configs::Unreadable(why) => Some(why.as_str()),
            _ => None,
        },
        "evaluated_at": subject.evaluated_at,
        "signers": signers,
        "attestations": attested
            .iter()
            .map(|(t, s)| serde_json::json!({ "predicate_type": t, "signer": s }))
            .collect::<Vec<_>>(),
        "predicates": subject.predicates,
        "scans": subject.predicates.iter().filter_map(|p| attested::read_scan(p)?.as_ref().ok()).collect::<Vec<_>>(),
        "provenance": subject.predicates.iter().filter_map(attested::read_provenance).collect::<Vec<_>>(),
    })
}

/// Adds each image's environment values (`env`: name to value) to a Rego
/// input, for a rule that opts in (`env_values = true`).
pub fn with_env_values(input: &mut serde_json::Value, configs: &image::Configs) {
    for (i, image) in configs.images().iter().enumerate() {
        input["images"][i]["env"] = serde_json::json!(image.env_values);
    }
}

pub use crate::registry::names::glob_match;

/// The failures of a rule's scan, provenance and SBOM rules, in that order.
/// Each reads its predicates parsed once (admission parses them on the
/// thread that verified them, `Predicate::warm`).
fn attested_failures(rule: &Rule, subject: &Subject) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(v) = &rule.vulnerabilities {
        out.extend(v.failures(&subject.predicates, subject.evaluated_at));
    }
    if let Some(p) = &rule.provenance {
        out.extend(p.failures(&subject.predicates));
    }
    if let Some(s) = &rule.sbom {
        out.extend(s.failures(&subject.predicates));
    }
    out
}

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
