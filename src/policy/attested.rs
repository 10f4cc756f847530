//! What verified attestations say, as a policy sees it (spec/policy.md,
//! "Attestation content"): each predicate with its type and signer, and
//! two normalised readings of the common kinds, vulnerability scans and
//! SLSA provenance, with the declarative rules over them. Pure.

use super::image::{parse_duration, show_duration};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// cosign's vulnerability scan predicate (cosign `specs/COSIGN_VULN_ATTESTATION_SPEC.md`).
pub const COSIGN_VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
/// in-toto's vulnerabilities predicate, version 0.1 (`spec/predicates/vuln.md`).
pub const IN_TOTO_VULNS: &str = "https://in-toto.io/attestation/vulns/v0.1";
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
    /// many times that, and the time to build it).
    pub predicate: Box<RawValue>,
    /// When it was signed, if a transparency log vouches for it (keyless
    /// attestations: the Rekor entry's integrated time, checked with its
    /// SET); `None` for a key's signature, which carries no time.
    pub signed_at: Option<i64>,
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
            predicate: serde_json::value::to_raw_value(predicate).expect("a JSON value serialises"),
            signed_at: None,
        }
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

/// Severities, lowest first; scanners' words and CVSS scores map here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Unknown, negligible or none.
    Unknown,
    /// Low.
    Low,
    /// Medium (moderate).
    Medium,
    /// High (important).
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// A scanner's word (`CRITICAL`, `Moderate`) or a CVSS score (`9.8`).
    pub fn parse(s: &str) -> Severity {
        match s.trim().to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" | "important" => Severity::High,
            "medium" | "moderate" => Severity::Medium,
            "low" => Severity::Low,
            other => match other.parse::<f64>() {
                Ok(v) if v >= 9.0 => Severity::Critical,
                Ok(v) if v >= 7.0 => Severity::High,
                Ok(v) if v >= 4.0 => Severity::Medium,
                Ok(v) if v > 0.0 => Severity::Low,
                _ => Severity::Unknown,
            },
        }
    }
}

/// A vulnerability scan, normalised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scan {
    /// `scanner.uri`.
    pub scanner: String,
    /// When the scan finished (or started, if that is all it says), RFC 3339.
    pub scanned_at: Option<String>,
    /// The same, in seconds since the epoch.
    pub scanned_unix: Option<i64>,
    /// `scanner.db.lastUpdate` (in-toto) or `scanner.db.version` (cosign).
    pub database: Option<String>,
    /// Findings by severity.
    pub by_severity: BTreeMap<Severity, u64>,
    /// Finding ids, worst first (at most 20), for denials.
    pub worst: Vec<(Severity, String)>,
    /// The fingerprint of its signer.
    pub signer: String,
}

fn rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Reads a scan from a cosign vuln/v1 or in-toto vulns/v0.1 predicate. The
/// result is read in the in-toto list form, or as Trivy's or Grype's JSON
/// report (what cosign's predicate carries); another form is an error,
/// never an empty scan.
pub fn read_scan(p: &Predicate) -> Option<Result<Scan, String>> {
    if p.predicate_type != COSIGN_VULN && p.predicate_type != IN_TOTO_VULNS {
        return None;
    }
    #[derive(Deserialize, Default)]
    struct Doc {
        #[serde(default)]
        scanner: ScannerDoc,
        #[serde(default)]
        metadata: MetaDoc,
    }
    #[derive(Deserialize, Default)]
    struct ScannerDoc {
        #[serde(default)]
        uri: Option<String>,
        #[serde(default)]
        db: DbDoc,
        #[serde(default)]
        result: Option<Box<RawValue>>,
    }
    #[derive(Deserialize, Default)]
    struct DbDoc {
        #[serde(default, rename = "lastUpdate")]
        last_update: Option<String>,
        #[serde(default)]
        version: Option<String>,
    }
    #[derive(Deserialize, Default)]
    struct MetaDoc {
        #[serde(default, rename = "scanStartedOn")]
        started: Option<String>,
        #[serde(default, rename = "scanFinishedOn")]
        finished: Option<String>,
    }
    let unreadable = |why: String| Some(Err(format!("{} scan: {why}", p.predicate_type)));
    let doc: Doc = match serde_json::from_str(p.predicate.get()) {
        Ok(d) => d,
        Err(e) => return unreadable(format!("not readable: {e}")),
    };
    let scanner = doc.scanner.uri.unwrap_or_default();
    let at = doc.metadata.finished.or(doc.metadata.started);
    let database = doc.scanner.db.last_update.or(doc.scanner.db.version);
    let findings = match doc.scanner.result.as_deref().map(findings) {
        Some(Ok(f)) => f,
        Some(Err(e)) => return unreadable(format!("by {scanner:?}: {e}")),
        None => {
            return unreadable(format!(
                "by {scanner:?}: its result is in no form vouch reads (in-toto list, Trivy or Grype JSON)"
            ))
        }
    };
    let mut by_severity = BTreeMap::new();
    for (s, _) in &findings {
        *by_severity.entry(*s).or_insert(0) += 1;
    }
    let mut worst = findings;
    worst.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    worst.dedup();
    worst.truncate(20);
    Some(Ok(Scan {
        scanner,
        scanned_unix: at.as_deref().and_then(rfc3339),
        scanned_at: at,
        database,
        by_severity,
        worst,
        signer: p.signer.clone(),
    }))
}

/// A severity as scanners write it: a word, a number, or a list of
/// `{method, score}` (in-toto), whose highest counts.
#[derive(Deserialize)]
#[serde(untagged)]
enum SeverityField {
    Word(String),
    Number(f64),
    Scores(Vec<Score>),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct Score {
    #[serde(default)]
    score: Option<ScoreValue>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ScoreValue {
    Word(String),
    Number(f64),
    Other(serde::de::IgnoredAny),
}

impl SeverityField {
    fn severity(&self) -> Severity {
        match self {
            SeverityField::Word(w) => Severity::parse(w),
            SeverityField::Number(n) => Severity::parse(&n.to_string()),
            SeverityField::Scores(scores) => scores
                .iter()
                .map(|s| match &s.score {
                    Some(ScoreValue::Word(w)) => Severity::parse(w),
                    Some(ScoreValue::Number(n)) => Severity::parse(&n.to_string()),
                    _ => Severity::Unknown,
                })
                .max()
                .unwrap_or(Severity::Unknown),
            SeverityField::Other(_) => Severity::Unknown,
        }
    }
}

/// One finding with an `id` and a `severity`, maybe under `vulnerability`.
#[derive(Deserialize)]
struct Finding {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    severity: Option<SeverityField>,
    #[serde(default)]
    vulnerability: Option<Box<Finding>>,
}

impl Finding {
    fn read(&self) -> (Severity, String) {
        if let Some(inner) = &self.vulnerability {
            return inner.read();
        }
        (
            self.severity
                .as_ref()
                .map_or(Severity::Unknown, SeverityField::severity),
            self.id.as_ref().and_then(|v| v.as_str()).unwrap_or("").to_owned(),
        )
    }
}

/// (severity, id) of each finding in a scan result.
fn findings(result: &RawValue) -> Result<Vec<(Severity, String)>, String> {
    let text = result.get().trim_start();
    // in-toto vulns/v0.1: [{"id", "severity": [{"method", "score"}]}],
    // the entry possibly wrapped in "vulnerability".
    if text.starts_with('[') {
        let list: Vec<Finding> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        return Ok(list.iter().map(Finding::read).collect());
    }
    #[derive(Deserialize)]
    struct Report {
        // Trivy: {"Results": [{"Vulnerabilities": [{"VulnerabilityID", "Severity"}]}]}.
        #[serde(default, rename = "Results")]
        results: Option<Vec<TrivyResult>>,
        // Grype: {"matches": [{"vulnerability": {"id", "severity"}}]}.
        #[serde(default)]
        matches: Option<Vec<Finding>>,
    }
    #[derive(Deserialize)]
    struct TrivyResult {
        #[serde(default, rename = "Vulnerabilities")]
        vulnerabilities: Option<Vec<TrivyVulnerability>>,
    }
    #[derive(Deserialize)]
    struct TrivyVulnerability {
        #[serde(default, rename = "VulnerabilityID")]
        id: Option<serde_json::Value>,
        #[serde(default, rename = "Severity")]
        severity: Option<SeverityField>,
    }
    let report: Report = serde_json::from_str(text).map_err(|e| e.to_string())?;
    match (report.results, report.matches) {
        (Some(results), _) => Ok(results
            .iter()
            .flat_map(|r| r.vulnerabilities.iter().flatten())
            .map(|v| {
                (
                    v.severity.as_ref().map_or(Severity::Unknown, SeverityField::severity),
                    v.id.as_ref().and_then(|i| i.as_str()).unwrap_or("").to_owned(),
                )
            })
            .collect()),
        (None, Some(matches)) => Ok(matches.iter().map(Finding::read).collect()),
        (None, None) => Err("its result is in no form vouch reads (in-toto list, Trivy or Grype JSON)".into()),
    }
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

/// `vulnerabilities = { keys, deny_at, max_age }`: the newest scan signed
/// by one of the keys must be at most `max_age` old and find nothing at or
/// above `deny_at`.
#[derive(Debug, Clone)]
pub struct VulnRule {
    /// The trusted scanners, with their fingerprints.
    pub signers: Vec<(String, super::Authority)>,
    /// The least severity that denies.
    pub deny_at: Severity,
    /// Oldest scan accepted, in seconds.
    pub max_age: Option<u64>,
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

impl VulnRule {
    /// Failures, naming the scan and the findings.
    pub fn failures(&self, predicates: &[Predicate], now: i64) -> Vec<String> {
        let mut scans = Vec::new();
        let mut unreadable = Vec::new();
        for p in predicates.iter().filter(|p| trusts(&self.signers, &p.signer)) {
            match read_scan(p) {
                Some(Ok(scan)) => scans.push(scan),
                Some(Err(e)) => unreadable.push(e),
                None => {}
            }
        }
        // The newest scan decides; one without a readable time, or with one
        // in the future (which would stay newest for ever), is never newest.
        for s in &mut scans {
            if s.scanned_unix
                .is_some_and(|t| t > now.saturating_add(super::image::FUTURE_SLACK))
            {
                s.scanned_unix = None;
            }
        }
        scans.sort_by_key(|s| std::cmp::Reverse(s.scanned_unix.unwrap_or(i64::MIN)));
        let Some(scan) = scans.first() else {
            let mut out = vec![format!(
                "needs a vulnerability scan ({COSIGN_VULN} or {IN_TOTO_VULNS}) signed by one of {} trusted scanners",
                self.signers.len()
            )];
            out.extend(unreadable);
            return out;
        };
        let named = format!(
            "the newest scan (by {}, {})",
            scan.scanner,
            scan.scanned_at.as_deref().unwrap_or("no time")
        );
        // A trusted scan that cannot be read, or has no valid time, could be
        // the newest: it fails the rule rather than let an older one decide.
        let mut out = unreadable;
        let timeless = scans.iter().filter(|s| s.scanned_unix.is_none()).count();
        if timeless > 0 {
            out.push(format!(
                "{timeless} trusted scan(s) without a valid scan time (missing, unreadable, or in the future): \
                 which is newest cannot be told"
            ));
        }
        if let Some(max) = self.max_age {
            match scan.scanned_unix {
                None => out.push(format!("{named} has no valid scan time; the rule's max_age needs one")),
                Some(t) if now.saturating_sub(t) > max as i64 => out.push(format!(
                    "{named} is {} old; the rule's max_age is {}",
                    super::image::age(now.saturating_sub(t)),
                    show_duration(max)
                )),
                Some(_) => {}
            }
        }
        let bad: Vec<&(Severity, String)> = scan.worst.iter().filter(|(s, _)| *s >= self.deny_at).collect();
        if !bad.is_empty() {
            let count: u64 = scan
                .by_severity
                .iter()
                .filter(|(s, _)| **s >= self.deny_at)
                .map(|(_, n)| n)
                .sum();
            let ids: Vec<String> = bad.iter().take(5).map(|(s, id)| format!("{id} ({s:?})")).collect();
            out.push(format!(
                "{named} finds {count} vulnerabilit{} at or above {:?}: {}",
                if count == 1 { "y" } else { "ies" },
                self.deny_at,
                ids.join(", ")
            ));
        }
        out
    }
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

fn trusts(signers: &[(String, super::Authority)], fingerprint: &str) -> bool {
    signers.iter().any(|(f, _)| f == fingerprint)
}

/// Parses a `deny_at` severity word.
pub fn parse_severity(s: &str) -> Result<Severity, String> {
    match Severity::parse(s) {
        Severity::Unknown => Err(format!("{s:?} is not a severity: low, medium, high or critical")),
        v if s.parse::<f64>().is_ok() => Err(format!("{s:?}: give a severity word, not a score (got {v:?})")),
        v => Ok(v),
    }
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
    fn scans_in_each_form_normalise_to_severities() {
        let in_toto = p(
            IN_TOTO_VULNS,
            serde_json::json!({"scanner": {"uri": "pkg:github/aquasecurity/trivy", "db": {"lastUpdate": "2024-01-01T00:00:00Z"},
                "result": [{"id": "CVE-1", "severity": [{"method": "nvd", "score": "medium"}, {"method": "cvss_score", "score": "9.8"}]},
                           {"vulnerability": {"id": "CVE-2", "severity": [{"method": "nvd", "score": "low"}]}}]},
                "metadata": {"scanStartedOn": "2024-01-01T00:00:00Z", "scanFinishedOn": "2024-01-01T00:05:00Z"}}),
        );
        let s = read_scan(&in_toto).unwrap().unwrap();
        assert_eq!(s.by_severity.get(&Severity::Critical), Some(&1));
        assert_eq!(s.worst[0], (Severity::Critical, "CVE-1".into()));
        assert_eq!(s.scanned_at.as_deref(), Some("2024-01-01T00:05:00Z"));
        let trivy = p(
            COSIGN_VULN,
            serde_json::json!({"scanner": {"uri": "trivy", "result": {"Results": [{"Vulnerabilities": [{"VulnerabilityID": "CVE-3", "Severity": "HIGH"}]}]}}}),
        );
        assert_eq!(
            read_scan(&trivy).unwrap().unwrap().worst,
            [(Severity::High, "CVE-3".into())]
        );
        let grype = p(
            COSIGN_VULN,
            serde_json::json!({"scanner": {"uri": "grype", "result": {"matches": [{"vulnerability": {"id": "GHSA-x", "severity": "Critical"}}]}}}),
        );
        assert_eq!(
            read_scan(&grype).unwrap().unwrap().worst,
            [(Severity::Critical, "GHSA-x".into())]
        );
        let odd = p(
            COSIGN_VULN,
            serde_json::json!({"scanner": {"uri": "x", "result": {"other": 1}}}),
        );
        assert!(read_scan(&odd).unwrap().unwrap_err().contains("no form vouch reads"));
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

    #[test]
    fn severities_and_their_words() {
        assert_eq!(Severity::parse("CRITICAL"), Severity::Critical);
        assert_eq!(Severity::parse("Moderate"), Severity::Medium);
        assert_eq!(Severity::parse("7.5"), Severity::High);
        assert_eq!(Severity::parse("0"), Severity::Unknown);
        assert!(parse_severity("high").is_ok());
        assert!(parse_severity("9.0").is_err() && parse_severity("severe").is_err());
    }
}
