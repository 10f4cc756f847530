//! Vulnerability scans as a policy sees them (spec/policy.md,
//! "Attestation content"): in-toto vulns/v0.1 and cosign vuln/v1
//! predicates normalised to findings by severity, and the
//! `vulnerabilities` rule over the newest trusted scan. Pure.

use super::attested::{trusts, Body, Predicate};
use super::image::show_duration;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// cosign's vulnerability scan predicate (cosign `specs/COSIGN_VULN_ATTESTATION_SPEC.md`).
pub const COSIGN_VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
/// in-toto's vulnerabilities predicate, version 0.1 (`spec/predicates/vuln.md`).
pub const IN_TOTO_VULNS: &str = "https://in-toto.io/attestation/vulns/v0.1";

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
pub fn read_scan(p: &Predicate) -> Option<&Result<Scan, String>> {
    p.parsed
        .scan
        .get_or_init(|| {
            let read = p
                .predicate
                .scan(&p.predicate_type, || parse_scan(&p.predicate_type, &p.predicate))?;
            Some(read.map(|scan| Scan {
                signer: p.signer.clone(),
                ..scan
            }))
        })
        .as_ref()
}

/// Reads now the scan a predicate of `predicate_type` holds, if it holds
/// one, and keeps it with the predicate: opening an envelope does this on
/// the worker that opens it, so that evaluations find the report read.
pub fn warm(predicate_type: &str, body: &Body) {
    let _ = body.scan(predicate_type, || parse_scan(predicate_type, body));
}

/// Reads the scan a predicate of `predicate_type` holds, with no signer
/// named yet: what depends on the predicate alone, which [`Body`] keeps for
/// every signer and evaluation of it.
pub(super) fn parse_scan(predicate_type: &str, body: &Body) -> Option<Result<Scan, String>> {
    if predicate_type != COSIGN_VULN && predicate_type != IN_TOTO_VULNS {
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
    let unreadable = |why: String| Some(Err(format!("{predicate_type} scan: {why}")));
    let doc: Doc = match serde_json::from_str(body.get()) {
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
        signer: String::new(),
    }))
}

/// A severity as scanners write it: a word, a number, or a list of
/// `{method, score}` (in-toto), whose highest counts. Read from the raw
/// JSON by its first character: serde's untagged enums would buffer every
/// finding of a megabyte report into a tree first.
fn severity_of(raw: &RawValue) -> Severity {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => {
            serde_json::from_str::<std::borrow::Cow<'_, str>>(text).map_or(Severity::Unknown, |w| Severity::parse(&w))
        }
        Some(b'-' | b'0'..=b'9') => text
            .parse::<f64>()
            .map_or(Severity::Unknown, |n| Severity::parse(&n.to_string())),
        Some(b'[') => {
            #[derive(Deserialize)]
            struct Score<'a> {
                #[serde(default, borrow)]
                score: Option<&'a RawValue>,
            }
            serde_json::from_str::<Vec<Score<'_>>>(text)
                .ok()
                .and_then(|scores| {
                    scores
                        .iter()
                        .map(|s| {
                            s.score.map_or(Severity::Unknown, |v| match v.get().as_bytes().first() {
                                Some(b'[') => Severity::Unknown,
                                _ => severity_of(v),
                            })
                        })
                        .max()
                })
                .unwrap_or(Severity::Unknown)
        }
        _ => Severity::Unknown,
    }
}

/// A finding's id: a string, else empty.
fn id_of(raw: Option<&RawValue>) -> String {
    raw.filter(|v| v.get().starts_with('"'))
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
        .unwrap_or_default()
}

/// One finding with an `id` and a `severity`, maybe under `vulnerability`.
#[derive(Deserialize)]
struct Finding<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    severity: Option<&'a RawValue>,
    #[serde(default, borrow)]
    vulnerability: Option<&'a RawValue>,
}

impl Finding<'_> {
    fn read(&self) -> (Severity, String) {
        if let Some(inner) = self
            .vulnerability
            .and_then(|v| serde_json::from_str::<Finding<'_>>(v.get()).ok())
        {
            return inner.read();
        }
        (self.severity.map_or(Severity::Unknown, severity_of), id_of(self.id))
    }
}

/// (severity, id) of each finding in a scan result.
fn findings(result: &RawValue) -> Result<Vec<(Severity, String)>, String> {
    let text = result.get().trim_start();
    // in-toto vulns/v0.1: [{"id", "severity": [{"method", "score"}]}],
    // the entry possibly wrapped in "vulnerability".
    if text.starts_with('[') {
        let list: Vec<Finding<'_>> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        return Ok(list.iter().map(Finding::read).collect());
    }
    #[derive(Deserialize)]
    struct Report<'a> {
        // Trivy: {"Results": [{"Vulnerabilities": [{"VulnerabilityID", "Severity"}]}]}.
        #[serde(default, rename = "Results", borrow)]
        results: Option<Vec<TrivyResult<'a>>>,
        // Grype: {"matches": [{"vulnerability": {"id", "severity"}}]}.
        #[serde(default, borrow)]
        matches: Option<Vec<Finding<'a>>>,
    }
    #[derive(Deserialize)]
    struct TrivyResult<'a> {
        #[serde(default, rename = "Vulnerabilities", borrow)]
        vulnerabilities: Option<Vec<TrivyVulnerability<'a>>>,
    }
    #[derive(Deserialize)]
    struct TrivyVulnerability<'a> {
        #[serde(default, rename = "VulnerabilityID", borrow)]
        id: Option<&'a RawValue>,
        #[serde(default, rename = "Severity", borrow)]
        severity: Option<&'a RawValue>,
    }
    let report: Report<'_> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    match (report.results, report.matches) {
        (Some(results), _) => Ok(results
            .iter()
            .flat_map(|r| r.vulnerabilities.iter().flatten())
            .map(|v| (v.severity.map_or(Severity::Unknown, severity_of), id_of(v.id)))
            .collect()),
        (None, Some(matches)) => Ok(matches.iter().map(Finding::read).collect()),
        (None, None) => Err("its result is in no form vouch reads (in-toto list, Trivy or Grype JSON)".into()),
    }
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

impl VulnRule {
    /// Failures, naming the scan and the findings.
    pub fn failures(&self, predicates: &[Predicate], now: i64) -> Vec<String> {
        let mut scans = Vec::new();
        let mut unreadable = Vec::new();
        for p in predicates.iter().filter(|p| trusts(&self.signers, &p.signer)) {
            match read_scan(p) {
                Some(Ok(scan)) => scans.push(scan.clone()),
                Some(Err(e)) => unreadable.push(e.clone()),
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

/// Parses a `deny_at` severity word.
pub fn parse_severity(s: &str) -> Result<Severity, String> {
    match Severity::parse(s) {
        Severity::Unknown => Err(format!("{s:?} is not a severity: low, medium, high or critical")),
        v if s.parse::<f64>().is_ok() => Err(format!("{s:?}: give a severity word, not a score (got {v:?})")),
        v => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(t: &str, predicate: serde_json::Value) -> Predicate {
        Predicate::new(t, "k", &predicate)
    }

    #[test]
    fn a_report_is_read_once_for_every_signer_and_names_each() {
        let report = serde_json::json!({"scanner": {"uri": "trivy", "result": {"Results": [{"Vulnerabilities": [
            {"VulnerabilityID": "CVE-9", "Severity": "CRITICAL"}]}]}}});
        let first = p(COSIGN_VULN, report);
        // What a second signer of the same envelope gets: the same body.
        let second = Predicate::for_signers(COSIGN_VULN, &["k2".to_owned()], &first.predicate, None)
            .next()
            .unwrap();
        let (a, b) = (
            read_scan(&first).unwrap().clone().unwrap(),
            read_scan(&second).unwrap().clone().unwrap(),
        );
        assert_eq!((a.signer.as_str(), b.signer.as_str()), ("k", "k2"));
        assert_eq!(
            Scan {
                signer: "k".into(),
                ..b.clone()
            },
            a
        );
        assert_eq!(a.worst, [(Severity::Critical, "CVE-9".into())]);
        // The body kept what it read: a parse that would differ is not run.
        let kept = first
            .predicate
            .scan(COSIGN_VULN, || panic!("read again"))
            .unwrap()
            .unwrap();
        assert_eq!(kept.worst, a.worst);
        // Asked as another type, the body is read afresh, not answered
        // from what it kept: not a scan.
        assert!(first.predicate.scan("https://example.com/other", || None).is_none());
        let other = Predicate::for_signers("https://example.com/other", &["k".to_owned()], &first.predicate, None)
            .next()
            .unwrap();
        assert!(read_scan(&other).is_none());
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
        let s = read_scan(&in_toto).unwrap().clone().unwrap();
        assert_eq!(s.by_severity.get(&Severity::Critical), Some(&1));
        assert_eq!(s.worst[0], (Severity::Critical, "CVE-1".into()));
        assert_eq!(s.scanned_at.as_deref(), Some("2024-01-01T00:05:00Z"));
        let trivy = p(
            COSIGN_VULN,
            serde_json::json!({"scanner": {"uri": "trivy", "result": {"Results": [{"Vulnerabilities": [{"VulnerabilityID": "CVE-3", "Severity": "HIGH"}]}]}}}),
        );
        assert_eq!(
            read_scan(&trivy).unwrap().clone().unwrap().worst,
            [(Severity::High, "CVE-3".into())]
        );
        let grype = p(
            COSIGN_VULN,
            serde_json::json!({"scanner": {"uri": "grype", "result": {"matches": [{"vulnerability": {"id": "GHSA-x", "severity": "Critical"}}]}}}),
        );
        assert_eq!(
            read_scan(&grype).unwrap().clone().unwrap().worst,
            [(Severity::Critical, "GHSA-x".into())]
        );
        let odd = p(
            COSIGN_VULN,
            serde_json::json!({"scanner": {"uri": "x", "result": {"other": 1}}}),
        );
        assert!(read_scan(&odd)
            .unwrap()
            .clone()
            .unwrap_err()
            .contains("no form vouch reads"));
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
