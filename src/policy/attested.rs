//! What verified attestations say, as a policy sees it (spec/policy.md,
//! "Attestation content"): each predicate with its type and signer, and
//! SLSA provenance with the `provenance` rule over it. Scans are read in
//! `scan.rs`, SBOMs in `sbom.rs`. Pure.

use super::image::parse_duration;
use serde::Serialize;
use serde_json::value::RawValue;

pub use super::scan::{
    parse_severity, read_scan, warm as warm_scan, Scan, Severity, VulnRule, COSIGN_VULN, IN_TOTO_VULNS,
};

/// SLSA provenance v1 and v0.2.
pub const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
/// SLSA provenance v0.2.
pub const SLSA_V02: &str = "https://slsa.dev/provenance/v0.2";

/// A verified attestation's predicate, with who signed it.
#[derive(Debug, Clone, Serialize)]
pub struct Predicate {
    /// The Statement's `predicateType`.
    pub predicate_type: String,
    /// The fingerprint of the trusted key or identity that signed it.
    pub signer: String,
    /// The predicate's JSON, as signed: each reading parses what it needs
    /// straight from it (an SBOM can be megabytes; a tree of it would cost
    /// many times that, and the time to build it). Shared by the Predicate
    /// of each signer.
    pub predicate: Body,
    /// When it was signed, if a transparency log vouches for it (keyless
    /// attestations: the Rekor entry's integrated time, checked with its
    /// SET); `None` for a key's signature, which carries no time.
    pub signed_at: Option<i64>,
    /// What the rules read of it, parsed once ([`Predicate::warm`]).
    #[serde(skip)]
    pub parsed: std::sync::Arc<Parsed>,
}

/// What the rules read of a predicate that depends on its signer (a
/// scan names it), parsed at most once: ahead of the evaluation, on the
/// thread that verified it, or when a rule first asks.
#[derive(Debug, Default)]
pub struct Parsed {
    pub(super) scan: std::sync::OnceLock<Option<Result<Scan, String>>>,
}

/// A predicate's JSON text as signed, and the SBOM packages read from it
/// (parsed at most once, however many signers share it).
///
/// Read from a verified Statement whose `predicateType` comes before its
/// `predicate` (as in-toto's and cosign's writers order them), an SBOM's
/// packages are parsed while the Statement is read, in one pass
/// (`crate::attestation`); its text is then cut out of the Statement only
/// if something asks for it (Rego's input, `vouch policy check`).
#[derive(Clone)]
pub struct Body(std::sync::Arc<BodyText>);

struct BodyText {
    /// The whole Statement, when the text is cut out on demand.
    statement: std::sync::Arc<Vec<u8>>,
    text: std::sync::OnceLock<Box<RawValue>>,
    packages: std::sync::OnceLock<Option<Result<Vec<super::sbom::Package>, String>>>,
    /// The scan read from it, for the predicate type it was read as.
    scan: std::sync::OnceLock<(String, Option<Result<Scan, String>>)>,
}

impl Body {
    /// A predicate whose text is at hand.
    pub fn new(text: Box<RawValue>) -> Body {
        Body(std::sync::Arc::new(BodyText {
            statement: Default::default(),
            text: text.into(),
            packages: Default::default(),
            scan: Default::default(),
        }))
    }

    /// The predicate of `statement` (a Statement already read as valid
    /// JSON), with the SBOM packages read from it then.
    pub fn in_statement(
        statement: std::sync::Arc<Vec<u8>>,
        packages: Option<Result<Vec<super::sbom::Package>, String>>,
    ) -> Body {
        Body(std::sync::Arc::new(BodyText {
            statement,
            text: Default::default(),
            packages: packages.into(),
            scan: Default::default(),
        }))
    }

    /// Its JSON text.
    pub fn get(&self) -> &str {
        self.raw().get()
    }

    /// Its JSON text, as a raw value.
    pub fn raw(&self) -> &RawValue {
        self.0.text.get_or_init(|| {
            #[derive(serde::Deserialize)]
            struct Statement {
                #[serde(default)]
                predicate: Option<Box<RawValue>>,
            }
            serde_json::from_slice::<Statement>(&self.0.statement)
                .ok()
                .and_then(|s| s.predicate)
                .unwrap_or_else(null)
        })
    }

    /// The SBOM packages, parsed from the text on first asking unless
    /// they were read with the Statement.
    pub(super) fn packages(
        &self,
        parse: impl FnOnce(&str) -> Option<Result<Vec<super::sbom::Package>, String>>,
    ) -> Option<&Result<Vec<super::sbom::Package>, String>> {
        self.0.packages.get_or_init(|| parse(self.get())).as_ref()
    }

    /// The scan read from it as a predicate of `predicate_type` (no signer
    /// named), parsed by `parse` on first asking: kept with the predicate,
    /// so that neither another signer nor the next evaluation of an
    /// envelope kept open reads a report of megabytes again.
    pub(super) fn scan(
        &self,
        predicate_type: &str,
        parse: impl FnOnce() -> Option<Result<Scan, String>>,
    ) -> Option<Result<Scan, String>> {
        let (read_as, scan) = self.0.scan.get_or_init(|| (predicate_type.to_owned(), parse()));
        match read_as == predicate_type {
            true => scan.clone(),
            // Asked as another type (one Statement has one, so never in
            // admission): read afresh.
            false => super::scan::parse_scan(predicate_type, self),
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.raw().fmt(f)
    }
}

impl Serialize for Body {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw().serialize(s)
    }
}

impl PartialEq for Predicate {
    fn eq(&self, other: &Predicate) -> bool {
        (&self.predicate_type, &self.signer, self.predicate.get(), self.signed_at)
            == (
                &other.predicate_type,
                &other.signer,
                other.predicate.get(),
                other.signed_at,
            )
    }
}

impl Eq for Predicate {}

impl Predicate {
    /// A predicate from a JSON value (tests, `vouch policy test`).
    pub fn new(predicate_type: &str, signer: &str, predicate: &serde_json::Value) -> Predicate {
        Predicate {
            predicate_type: predicate_type.to_owned(),
            signer: signer.to_owned(),
            predicate: Body::new(serde_json::value::to_raw_value(predicate).expect("a JSON value serialises")),
            signed_at: None,
            parsed: Default::default(),
        }
    }

    /// Parses now what the rules read of it (a large SBOM takes
    /// milliseconds), so that the evaluation finds it parsed.
    pub fn warm(&self) {
        let _ = super::sbom::read_packages(self);
        let _ = read_scan(self);
    }

    /// The same verified statement's predicate, once per signer whose
    /// signature on it verified.
    pub fn for_signers<'a>(
        predicate_type: &'a str,
        signers: &'a [String],
        predicate: &'a Body,
        signed_at: Option<i64>,
    ) -> impl Iterator<Item = Predicate> + 'a {
        signers.iter().map(move |signer| Predicate {
            predicate_type: predicate_type.to_owned(),
            signer: signer.clone(),
            predicate: predicate.clone(),
            signed_at,
            parsed: Default::default(),
        })
    }

    /// The predicate as a JSON tree (for small predicates and Rego).
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.predicate.get()).unwrap_or_default()
    }
}

/// `null`, as a raw predicate.
pub fn null() -> Box<RawValue> {
    RawValue::from_string("null".into()).expect("null is JSON")
}

/// SLSA provenance, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provenance {
    /// `runDetails.builder.id` (v1) or `builder.id` (v0.2).
    pub builder_id: String,
    /// `buildDefinition.buildType` (v1) or `buildType` (v0.2).
    pub build_type: String,
    /// The source repository: GitHub's `externalParameters.workflow.repository`,
    /// else the first resolved dependency (v1) or material (v0.2), or
    /// `invocation.configSource.uri` (v0.2), without `git+` and `@ref`.
    pub source: String,
    /// The source ref (`refs/heads/main`), from the workflow parameters or
    /// the part of the source URI after `@`.
    pub source_ref: String,
    /// The fingerprint of its signer.
    pub signer: String,
}

/// Reads SLSA provenance (v1 or v0.2).
pub fn read_provenance(p: &Predicate) -> Option<Provenance> {
    if p.predicate_type != SLSA_V1 && p.predicate_type != SLSA_V02 {
        return None;
    }
    // Provenance is small: a tree is cheap here.
    let pr = &p.value();
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    let (builder_id, build_type, workflow, uri) = match p.predicate_type.as_str() {
        SLSA_V1 => (
            s(&pr["runDetails"]["builder"]["id"]),
            s(&pr["buildDefinition"]["buildType"]),
            &pr["buildDefinition"]["externalParameters"]["workflow"],
            s(&pr["buildDefinition"]["resolvedDependencies"][0]["uri"]),
        ),
        SLSA_V02 => {
            let uri = pr["invocation"]["configSource"]["uri"]
                .as_str()
                .or_else(|| pr["materials"][0]["uri"].as_str())
                .unwrap_or("")
                .to_owned();
            (
                s(&pr["builder"]["id"]),
                s(&pr["buildType"]),
                &serde_json::Value::Null,
                uri,
            )
        }
        _ => return None,
    };
    let (mut source, mut source_ref) = split_source(&uri);
    if let Some(repo) = workflow["repository"].as_str() {
        source = strip_scheme(repo).to_owned();
    }
    if let Some(r) = workflow["ref"].as_str() {
        source_ref = r.to_owned();
    }
    Some(Provenance {
        builder_id,
        build_type,
        source,
        source_ref,
        signer: p.signer.clone(),
    })
}

/// `git+https://github.com/org/app@refs/heads/main` to
/// (`github.com/org/app`, `refs/heads/main`).
fn split_source(uri: &str) -> (String, String) {
    let bare = strip_scheme(uri);
    match bare.rsplit_once('@') {
        Some((repo, r)) => (repo.trim_end_matches(".git").to_owned(), r.to_owned()),
        None => (bare.trim_end_matches(".git").to_owned(), String::new()),
    }
}

fn strip_scheme(uri: &str) -> &str {
    let uri = uri.strip_prefix("git+").unwrap_or(uri);
    uri.split_once("://").map_or(uri, |(_, rest)| rest)
}

/// `provenance = { keys, builder_id, source, ref, build_type }`: some SLSA
/// provenance signed by one of the keys matches every glob given.
#[derive(Debug, Clone)]
pub struct ProvenanceRule {
    /// The trusted builders, with their fingerprints.
    pub signers: Vec<(String, super::Authority)>,
    /// Globs over the fields (`*` within a path segment, `**` across).
    pub builder_id: Option<String>,
    /// Source repository glob (`github.com/org/*`).
    pub source: Option<String>,
    /// Ref glob (`refs/heads/main`, `refs/tags/**`).
    pub source_ref: Option<String>,
    /// Build type glob.
    pub build_type: Option<String>,
}

impl ProvenanceRule {
    /// Failures: none if some provenance by a trusted builder matches.
    pub fn failures(&self, predicates: &[Predicate]) -> Vec<String> {
        let found: Vec<Provenance> = predicates
            .iter()
            .filter(|p| trusts(&self.signers, &p.signer))
            .filter_map(read_provenance)
            .collect();
        if found.is_empty() {
            return vec![format!(
                "needs SLSA provenance ({SLSA_V1} or {SLSA_V02}) signed by one of {} trusted builders",
                self.signers.len()
            )];
        }
        let mut misses = Vec::new();
        for p in &found {
            let checks = [
                ("builder_id", &self.builder_id, &p.builder_id),
                ("source", &self.source, &p.source),
                ("ref", &self.source_ref, &p.source_ref),
                ("build_type", &self.build_type, &p.build_type),
            ];
            let wrong: Vec<String> = checks
                .iter()
                .filter_map(|(name, want, got)| {
                    let want = want.as_ref()?;
                    // Bounded: glob matching backtracks on long strings.
                    (got.len() > 1024 || !super::glob_match(want, got)).then(|| {
                        format!(
                            "{name} {:?} does not match {want:?}",
                            got.chars().take(200).collect::<String>()
                        )
                    })
                })
                .collect();
            if wrong.is_empty() {
                return Vec::new();
            }
            misses.push(format!("provenance: {}", wrong.join(", ")));
        }
        misses.truncate(3);
        misses
    }
}

pub(super) fn trusts(signers: &[(String, super::Authority)], fingerprint: &str) -> bool {
    signers.iter().any(|(f, _)| f == fingerprint)
}

/// Parses a scan `max_age`.
pub fn parse_age(s: &str) -> Result<u64, String> {
    parse_duration(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: &str, predicate: serde_json::Value) -> Predicate {
        Predicate::new(t, "k", &predicate)
    }

    #[test]
    fn provenance_reads_v1_and_v02_sources() {
        let v1 = p(
            SLSA_V1,
            serde_json::json!({"buildDefinition": {"buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {"workflow": {"ref": "refs/heads/main", "repository": "https://github.com/org/app", "path": ".github/workflows/build.yml"}},
                "resolvedDependencies": [{"uri": "git+https://github.com/org/app@refs/heads/main"}]},
                "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}}}),
        );
        let r = read_provenance(&v1).unwrap();
        assert_eq!(
            (r.source.as_str(), r.source_ref.as_str()),
            ("github.com/org/app", "refs/heads/main")
        );
        let v02 = p(
            SLSA_V02,
            serde_json::json!({"builder": {"id": "https://cloudbuild.googleapis.com/GoogleHostedWorker"}, "buildType": "bt",
                "invocation": {"configSource": {"uri": "git+https://gitlab.com/org/app.git@refs/tags/v1"}}}),
        );
        let r = read_provenance(&v02).unwrap();
        assert_eq!(
            (r.source.as_str(), r.source_ref.as_str()),
            ("gitlab.com/org/app", "refs/tags/v1")
        );
        let key = crate::signature::PublicKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key());
        let rule = ProvenanceRule {
            signers: vec![("k".into(), super::super::Authority::Key(key))],
            builder_id: None,
            source: Some("github.com/org/*".into()),
            source_ref: Some("refs/heads/main".into()),
            build_type: None,
        };
        assert!(rule.failures(std::slice::from_ref(&v1)).is_empty());
        let f = rule.failures(&[v02]);
        assert!(f[0].contains("source \"gitlab.com/org/app\" does not match"), "{f:?}");
    }
}
