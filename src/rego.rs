//! Custom admission logic in Rego (spec/policy.md, "Rego"), evaluated with
//! regorus: a rule's module must be `package vouch`; every string in its
//! `deny` set is a failure of that rule. The input document is built by
//! admission from the image and its verified evidence (`input` in
//! spec/policy.md). Evaluation is in-process, with no network and no I/O,
//! and bounded in time.

use vouch_ledger::entry::Digest;

/// The package a module must declare.
const PACKAGE: &str = "data.vouch";
/// The rule evaluated.
const DENY: &str = "data.vouch.deny";
/// Wall-clock bound of one evaluation.
const TIME_LIMIT: std::time::Duration = std::time::Duration::from_millis(250);

/// A loaded Rego module.
#[derive(Debug, Clone)]
pub struct RegoModule {
    /// The file it came from, for messages.
    pub path: String,
    /// Its source.
    pub source: String,
    /// SHA-256 of the source, which the policy's digest pins.
    pub digest: Digest,
}

impl RegoModule {
    /// Parses `source`, refusing syntax errors (with their line and column)
    /// and modules that are not `package vouch`.
    pub fn new(path: &str, source: String) -> Result<RegoModule, String> {
        let mut engine = regorus::Engine::new();
        let package = engine
            .add_policy(path.to_owned(), source.clone())
            .map_err(|e| e.to_string())?;
        if package != PACKAGE {
            return Err(format!("the module is {package}, not package vouch"));
        }
        Ok(RegoModule {
            path: path.to_owned(),
            digest: crate::registry::digest::sha256_of(source.as_bytes()),
            source,
        })
    }

    /// The failures `deny` gives for `input`: its strings, sorted. An
    /// evaluation error (or running out of time) is itself a failure.
    pub fn deny(&self, input: &serde_json::Value) -> Vec<String> {
        match self.eval(input) {
            Ok(reasons) => reasons,
            Err(e) => vec![format!("rego {}: {e}", self.path)],
        }
    }

    fn eval(&self, input: &serde_json::Value) -> Result<Vec<String>, String> {
        let mut engine = regorus::Engine::new();
        engine
            .add_policy(self.path.clone(), self.source.clone())
            .map_err(|e| e.to_string())?;
        engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
            limit: TIME_LIMIT,
            check_interval: std::num::NonZeroU32::new(64).expect("non-zero"),
        });
        engine.set_input(regorus::Value::from_json_str(&input.to_string()).map_err(|e| e.to_string())?);
        let value = engine.eval_rule(DENY.to_owned()).map_err(|e| e.to_string())?;
        if value == regorus::Value::Undefined {
            return Ok(Vec::new());
        }
        let json: serde_json::Value =
            serde_json::from_str(&value.to_json_str().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        let mut reasons: Vec<String> = match json {
            serde_json::Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect(),
            other => return Err(format!("deny must be a set of strings, not {other}")),
        };
        reasons.sort();
        Ok(reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: &str = r#"
package vouch

deny contains msg if {
    not startswith(input.repository, "prod/")
    msg := sprintf("repository %s is not under prod/", [input.repository])
}

deny contains "no SBOM attestation" if {
    count([a | some a in input.attestations; a.predicate_type == "https://spdx.dev/Document"]) == 0
}
"#;

    #[test]
    fn deny_messages_come_from_the_input() {
        let m = RegoModule::new("limits.rego", LIMITS.into()).unwrap();
        let input = serde_json::json!({ "repository": "dev/app", "attestations": [] });
        assert_eq!(
            m.deny(&input),
            vec!["no SBOM attestation", "repository dev/app is not under prod/"]
        );
        let ok = serde_json::json!({
            "repository": "prod/app",
            "attestations": [{ "predicate_type": "https://spdx.dev/Document", "signer": "k" }],
        });
        assert!(m.deny(&ok).is_empty());
    }

    /// The example in spec/policy.md, verbatim.
    #[test]
    fn the_spec_example_works() {
        let spec = include_str!("../spec/policy.md");
        let start = spec.find("```rego\n").expect("a rego example") + "```rego\n".len();
        let source = &spec[start..start + spec[start..].find("```").unwrap()];
        let m = RegoModule::new("example.rego", source.into()).unwrap();
        let layers: Vec<serde_json::Value> = (0..21).map(|_| serde_json::json!({})).collect();
        let input = serde_json::json!({ "manifest": { "layers": layers }, "attestations": [] });
        assert_eq!(m.deny(&input), vec!["21 layers; at most 20", "no SPDX SBOM"]);
        let input = serde_json::json!({
            "manifest": { "layers": [{}] },
            "attestations": [{ "predicate_type": "https://spdx.dev/Document", "signer": "k" }],
        });
        assert!(m.deny(&input).is_empty());
    }

    #[test]
    fn bad_modules_are_refused_at_load() {
        assert!(
            RegoModule::new("x.rego", "package other\ndeny contains 1 if { true }".into())
                .unwrap_err()
                .contains("not package vouch")
        );
        let err = RegoModule::new("x.rego", "package vouch\ndeny contains if {".into()).unwrap_err();
        assert!(err.contains("x.rego"), "{err}");
    }
}
