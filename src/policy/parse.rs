//! The policy file (TOML, spec/policy.md): parsed into a [`Policy`] with
//! its keys, identities, trusted root and Rego modules loaded, and its
//! canonical document (what its digest is the SHA-256 of).

use super::*;

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
    sigstore: Option<SigstoreFile>,
    #[serde(default)]
    notation: BTreeMap<String, NotationFile>,
}

/// `[notation.<name>]`: a Notation trust policy (trust stores of root
/// certificate files, trusted identities, a verification level).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NotationFile {
    #[serde(default)]
    ca: Vec<String>,
    #[serde(default)]
    signing_authority: Vec<String>,
    #[serde(default)]
    tsa: Vec<String>,
    identities: Vec<String>,
    level: Option<String>,
    #[serde(default, rename = "override")]
    overrides: BTreeMap<String, crate::notation::trust::Action>,
}

/// `[sigstore]`: how much keyless evidence the trusted root's parts must
/// give (each at least 1, at most what the root lists).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SigstoreFile {
    ct_logs: Option<usize>,
    timestamps: Option<usize>,
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
    #[serde(default)]
    foreign_layers: ForeignLayers,
    #[serde(default)]
    forbid_root: bool,
    #[serde(default)]
    required_labels: Vec<String>,
    max_age: Option<String>,
    vulnerabilities: Option<VulnFile>,
    provenance: Option<ProvenanceFile>,
    sbom: Option<SbomFile>,
    #[serde(default)]
    base_images: Vec<String>,
    #[serde(default)]
    env_values: bool,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SbomFile {
    keys: Vec<String>,
    #[serde(default)]
    deny_licenses: Vec<String>,
    #[serde(default)]
    deny_packages: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VulnFile {
    keys: Vec<String>,
    deny_at: String,
    max_age: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvenanceFile {
    keys: Vec<String>,
    builder_id: Option<String>,
    source: Option<String>,
    #[serde(rename = "ref")]
    source_ref: Option<String>,
    build_type: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFile {
    issuer: String,
    subject: Option<String>,
    subject_regex: Option<String>,
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
                let mut root = crate::keyless::TrustedRoot::parse(&bytes)
                    .map_err(|e| invalid(format!("trusted_root {value}: {e}")))?;
                if let Some(sigstore) = &file.sigstore {
                    let within = |what: &str, n: Option<usize>, listed: usize| match n {
                        None => Ok(1),
                        Some(n) if (1..=listed).contains(&n) => Ok(n),
                        Some(n) => Err(invalid(format!(
                            "[sigstore] {what} = {n}: give between 1 and the {listed} the trusted root lists"
                        ))),
                    };
                    root.required_scts = within("ct_logs", sigstore.ct_logs, root.ct_log_count())?;
                    root.required_timestamps =
                        within("timestamps", sigstore.timestamps, root.timestamp_authority_count())?;
                }
                Some(root)
            }
        };
        if file.sigstore.is_some() && trusted_root.is_none() {
            return Err(invalid("[sigstore] needs trusted_root".into()));
        }
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
        let mut notation = BTreeMap::new();
        for (name, n) in &file.notation {
            if keys.contains_key(name) || identities.contains_key(name) {
                return Err(invalid(format!(
                    "{name:?} is both a key or identity and a Notation trust policy"
                )));
            }
            let t = notation_trust(name, n, base).map_err(|e| invalid(format!("notation {name}: {e}")))?;
            notation.insert(name.clone(), std::sync::Arc::new(t));
        }
        // A name in a rule: a key, an identity or a Notation trust policy,
        // with its fingerprint.
        let authority = |name: &str| match (keys.get(name), identities.get(name), notation.get(name)) {
            (Some(key), _, _) => Some((key.fingerprint(), Authority::Key(key.clone()))),
            (None, Some(id), _) => Some((id.fingerprint(), Authority::Identity(id.clone()))),
            (None, None, Some(t)) => Some((t.fingerprint(), Authority::Notation(t.clone()))),
            (None, None, None) => None,
        };
        // A name that signs attestations: not a Notation trust policy, which
        // verifies image signatures only.
        let attester = |name: &str, rule: usize, what: &str| {
            match notation.contains_key(name) {
            true => Err(invalid(format!(
                "rule {rule}: {what}: {name:?} is a Notation trust policy, which verifies image signatures, not attestations"
            ))),
            false => authority(name)
                .ok_or_else(|| invalid(format!("rule {rule}: {what}: unknown key or identity {name:?}"))),
        }
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
                    named.push(attester(k, i + 1, "attestation")?);
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
            if r.required_labels.iter().any(String::is_empty) {
                return Err(invalid(format!("rule {}: required_labels lists an empty label", i + 1)));
            }
            let max_age = match &r.max_age {
                None => None,
                Some(d) => {
                    Some(image::parse_duration(d).map_err(|e| invalid(format!("rule {}: max_age: {e}", i + 1)))?)
                }
            };
            let signers = |what: &str, names: &[String]| -> Result<Vec<(String, Authority)>, PolicyError> {
                if names.is_empty() {
                    return Err(invalid(format!(
                        "rule {}: {what} needs at least one key or identity",
                        i + 1
                    )));
                }
                names.iter().map(|k| attester(k, i + 1, what)).collect()
            };
            let vulnerabilities = match &r.vulnerabilities {
                None => None,
                Some(v) => Some(attested::VulnRule {
                    signers: signers("vulnerabilities", &v.keys)?,
                    deny_at: attested::parse_severity(&v.deny_at)
                        .map_err(|e| invalid(format!("rule {}: vulnerabilities: deny_at: {e}", i + 1)))?,
                    max_age: match &v.max_age {
                        None => None,
                        Some(a) => Some(
                            attested::parse_age(a)
                                .map_err(|e| invalid(format!("rule {}: vulnerabilities: max_age: {e}", i + 1)))?,
                        ),
                    },
                }),
            };
            let provenance = match &r.provenance {
                None => None,
                Some(p) => Some(attested::ProvenanceRule {
                    signers: signers("provenance", &p.keys)?,
                    builder_id: p.builder_id.clone(),
                    source: p.source.clone(),
                    source_ref: p.source_ref.clone(),
                    build_type: p.build_type.clone(),
                }),
            };
            let sbom = match &r.sbom {
                None => None,
                Some(b) => Some(sbom::SbomRule {
                    signers: signers("sbom", &b.keys)?,
                    deny_licenses: b.deny_licenses.clone(),
                    deny_packages: b.deny_packages.clone(),
                }),
            };
            if r.env_values && r.rego.is_none() {
                return Err(invalid(format!(
                    "rule {}: env_values gives environment values to Rego, and the rule has no rego module",
                    i + 1
                )));
            }
            if r.base_images.iter().any(String::is_empty) {
                return Err(invalid(format!("rule {}: base_images lists an empty pattern", i + 1)));
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
                foreign_layers: r.foreign_layers,
                image: image::ImageRules {
                    forbid_root: r.forbid_root,
                    required_labels: r.required_labels,
                    max_age,
                    base_images: r.base_images,
                },
                vulnerabilities,
                provenance,
                sbom,
                env_values: r.env_values,
            });
        }
        let mut policy = Self::from_rules(&file.name, rules);
        policy.names = keys
            .iter()
            .map(|(n, k)| (n.clone(), k.fingerprint()))
            .chain(identities.iter().map(|(n, m)| (n.clone(), m.fingerprint())))
            .chain(notation.iter().map(|(n, t)| (n.clone(), t.fingerprint())))
            .collect();
        policy.unreferenced_blobs = file.unreferenced_blobs;
        policy.trusted_root = trusted_root;
        policy.canonical = policy.canonical_form();
        Ok(policy)
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
    pub(super) fn canonical_form(&self) -> Vec<u8> {
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
                if r.foreign_layers != ForeignLayers::default() {
                    rule["foreign_layers"] = serde_json::to_value(r.foreign_layers).expect("serialize");
                }
                if r.image.forbid_root {
                    rule["forbid_root"] = true.into();
                }
                if !r.image.required_labels.is_empty() {
                    rule["required_labels"] = r.image.required_labels.clone().into();
                }
                if let Some(secs) = r.image.max_age {
                    rule["max_age"] = secs.into();
                }
                if let Some(v) = &r.vulnerabilities {
                    rule["vulnerabilities"] = serde_json::json!({
                        "keys": v.signers.iter().map(|(f, _)| f).collect::<Vec<_>>(), "deny_at": v.deny_at, "max_age": v.max_age,
                    });
                }
                if r.env_values {
                    rule["env_values"] = true.into();
                }
                if !r.image.base_images.is_empty() {
                    rule["base_images"] = r.image.base_images.clone().into();
                }
                if let Some(b) = &r.sbom {
                    rule["sbom"] = serde_json::json!({
                        "keys": b.signers.iter().map(|(f, _)| f).collect::<Vec<_>>(),
                        "deny_licenses": b.deny_licenses, "deny_packages": b.deny_packages,
                    });
                }
                if let Some(p) = &r.provenance {
                    rule["provenance"] = serde_json::json!({
                        "keys": p.signers.iter().map(|(f, _)| f).collect::<Vec<_>>(), "builder_id": p.builder_id, "source": p.source,
                        "ref": p.source_ref, "build_type": p.build_type,
                    });
                }
                rule
            })
            .collect();
        let mut doc = serde_json::json!({ "version": POLICY_VERSION, "name": self.name, "rules": rules });
        // Only when present, so policies without keyless identities keep
        // their digests.
        if let Some(root) = &self.trusted_root {
            doc["trusted_root"] = root.digest.as_str().into();
            if (root.required_scts, root.required_timestamps) != (1, 1) {
                doc["sigstore"] = serde_json::json!({
                    "ct_logs": root.required_scts,
                    "timestamps": root.required_timestamps,
                });
            }
        }
        if self.unreferenced_blobs != Unreferenced::Deny {
            doc["unreferenced_blobs"] = serde_json::to_value(self.unreferenced_blobs).expect("serialize");
        }
        serde_json::to_vec(&doc).expect("serialize a JSON value")
    }
}

/// Loads `[notation.<name>]`: the trust stores' files (resolved against
/// the policy's folder), the identities and the level.
fn notation_trust(name: &str, n: &NotationFile, base: &Path) -> Result<crate::notation::TrustPolicy, String> {
    use crate::notation::trust::{Actions, Level};
    let store = |what: &str, files: &[String]| -> Result<Vec<Vec<u8>>, String> {
        let mut certs = Vec::new();
        for f in files {
            let bytes = std::fs::read(base.join(f)).map_err(|e| format!("{what} {f}: {e}"))?;
            certs.extend(crate::notation::trust::read_certificates(&bytes).map_err(|e| format!("{what} {f}: {e}"))?);
        }
        Ok(certs)
    };
    let ca = store("ca", &n.ca)?;
    let signing_authority = store("signing_authority", &n.signing_authority)?;
    let tsa = store("tsa", &n.tsa)?;
    if ca.is_empty() && signing_authority.is_empty() {
        return Err("give ca or signing_authority: the root certificates signatures must chain to".into());
    }
    let level = match n.level.as_deref().unwrap_or("strict") {
        "strict" => Level::Strict,
        "permissive" => Level::Permissive,
        "audit" | "skip" => {
            return Err(format!(
                "level {:?} verifies no signer, so it cannot count as one; use strict or permissive (and mode = \"warn\" on a rule that should only report)",
                n.level.as_deref().unwrap_or("")
            ))
        }
        other => return Err(format!("level {other:?} is not strict or permissive")),
    };
    Ok(crate::notation::TrustPolicy {
        name: name.to_owned(),
        ca,
        signing_authority,
        tsa,
        identities: crate::notation::identities(&n.identities)?,
        level,
        actions: Actions::of(level, &n.overrides)?,
    })
}
