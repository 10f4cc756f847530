//! `vouch policy`: try a policy before it is put in force.
//!
//! - `vouch policy test --policy FILE DIR` runs the test cases in DIR
//!   (`*.json`: an input document and the expected verdict), as `opa test`
//!   and `kyverno test` users expect, so policies are tested in CI;
//! - `vouch policy check --policy FILE REF` evaluates an image in any
//!   registry (`policy_check.rs`).
//!
//! The case format is spec/policy.md, "Testing a policy".

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use vouch::policy::attested::Predicate;
use vouch::policy::image::{parse_config, Configs};
use vouch::policy::{Decision, Policy, Subject};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// `vouch policy ...`.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Run a folder of policy test cases: each `*.json` file holds an
    /// input document (what an image is, who signed it, what its
    /// attestations say) and the verdict expected. Prints PASS or FAIL per
    /// case and exits non-zero if any fails, naming what differed.
    Test(TestArgs),
    /// Evaluate an image in any registry against a policy, without
    /// admitting it: reads its manifest, configuration, cosign signatures
    /// and attestations, verifies them, and prints the rule that applies,
    /// the verdict and every reason.
    Check(crate::policy_check::CheckArgs),
}

/// `vouch policy test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The policy file under test.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// The folder of test cases (`*.json`, run in name order).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// `text` (default) or `json` (one object per case, and a summary).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

/// A test case (spec/policy.md, "Testing a policy").
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    input: Input,
    expect: Expect,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    repository: String,
    #[serde(default = "oci_manifest")]
    media_type: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
    /// The manifest, for Rego rules that read it.
    #[serde(default)]
    manifest: serde_json::Value,
    #[serde(default)]
    foreign_layers: usize,
    /// Names of the policy's keys or identities (or fingerprints).
    #[serde(default)]
    signers: Vec<String>,
    #[serde(default)]
    attestations: Vec<CaseAttestation>,
    /// Image configurations as registries hold them, one per platform.
    #[serde(default)]
    configs: Vec<CaseConfig>,
    /// RFC 3339; default: now.
    #[serde(default)]
    evaluated_at: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseAttestation {
    predicate_type: String,
    signer: String,
    #[serde(default)]
    predicate: serde_json::Value,
    /// RFC 3339: when a log says it was signed (keyless attestations).
    #[serde(default)]
    signed_at: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseConfig {
    #[serde(default)]
    platform: Option<String>,
    config: serde_json::Value,
    #[serde(default)]
    layer_sizes: Vec<u64>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    admit: bool,
    /// Each must be part of some reason.
    #[serde(default)]
    reasons: Vec<String>,
}

fn oci_manifest() -> String {
    "application/vnd.oci.image.manifest.v1+json".into()
}

/// Runs `vouch policy`.
pub fn run(cmd: PolicyCommand) -> Result<std::process::ExitCode> {
    match cmd {
        PolicyCommand::Test(args) => test(&args),
        PolicyCommand::Check(args) => crate::policy_check::run(&args),
    }
}

fn test(args: &TestArgs) -> Result<std::process::ExitCode> {
    let policy = Policy::load(&args.policy)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.dir)
        .map_err(|e| format!("{}: {e}", args.dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("{}: no test cases (*.json)", args.dir.display()).into());
    }
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let (name, outcome) = match run_case(&policy, file) {
            Ok((name, decision, problems)) => (name, Ok((decision, problems))),
            Err(e) => (file.display().to_string(), Err(e.to_string())),
        };
        let ok = matches!(&outcome, Ok((_, p)) if p.is_empty());
        if ok {
            passed += 1;
        } else {
            failed += 1;
        }
        if args.output == "json" {
            let line = match &outcome {
                Ok((d, problems)) => serde_json::json!({
                    "case": name, "file": file, "pass": ok, "admit": d.admit,
                    "rule": d.rule.map(|r| r + 1), "reasons": d.reasons, "problems": problems,
                }),
                Err(e) => serde_json::json!({ "case": name, "file": file, "pass": false, "error": e }),
            };
            println!("{line}");
        } else {
            match &outcome {
                Ok((_, problems)) if problems.is_empty() => println!("PASS {name}"),
                Ok((d, problems)) => {
                    println!("FAIL {name} ({})", file.display());
                    for p in problems {
                        println!("  {p}");
                    }
                    println!("  got: {}", verdict(d));
                }
                Err(e) => println!("FAIL {name}: {e}"),
            }
        }
    }
    if args.output == "json" {
        println!("{}", serde_json::json!({ "passed": passed, "failed": failed }));
    } else {
        println!("{passed} passed, {failed} failed");
    }
    Ok(if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// A decision in one line.
pub fn verdict(d: &Decision) -> String {
    let rule = d.rule.map_or("no rule".to_owned(), |r| format!("rule {}", r + 1));
    let what = if d.admit { "admit" } else { "deny" };
    if d.reasons.is_empty() {
        format!("{what} ({rule})")
    } else {
        format!("{what} ({rule}): {}", d.reasons.join("; "))
    }
}

/// Runs one case: its name, the decision, and how it differs from the
/// expectation (empty: it passes).
fn run_case(policy: &Policy, file: &Path) -> Result<(String, Decision, Vec<String>)> {
    let text = std::fs::read_to_string(file)?;
    let case: Case = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let input = case.input;
    let fingerprint = |name: &str| policy.names.get(name).cloned().unwrap_or_else(|| name.to_owned());
    let signers: BTreeSet<String> = input.signers.iter().map(|s| fingerprint(s)).collect();
    let rfc3339 = |field: &str, t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp())
            .map_err(|e| format!("{}: {field} {t:?}: {e}", file.display()))
    };
    let mut predicates: Vec<Predicate> = Vec::new();
    for a in input.attestations {
        let mut p = Predicate::new(&a.predicate_type, &fingerprint(&a.signer), &a.predicate);
        p.signed_at = a.signed_at.as_deref().map(|t| rfc3339("signed_at", t)).transpose()?;
        predicates.push(p);
    }
    let attested: BTreeSet<(String, String)> = predicates
        .iter()
        .map(|p| (p.predicate_type.clone(), p.signer.clone()))
        .collect();
    let mut images = Vec::new();
    for c in input.configs {
        let bytes = serde_json::to_vec(&c.config)?;
        images.push(parse_config(&bytes, c.platform, c.layer_sizes).map_err(|e| format!("{}: {e}", file.display()))?);
    }
    let configs = if images.is_empty() {
        Configs::NotAnImage("no configs in the test case".into())
    } else {
        Configs::Read(images)
    };
    let evaluated_at = match &input.evaluated_at {
        None => crate::policy_check::now(),
        Some(t) => rfc3339("evaluated_at", t)?,
    };
    let subject = Subject {
        repo: input.repository,
        media_type: input.media_type,
        size: input.size,
        digest: input.digest.unwrap_or_else(|| format!("sha256:{}", "0".repeat(64))),
        manifest: input.manifest,
        attachment: input.artifact_type,
        foreign_layers: input.foreign_layers,
        configs,
        evaluated_at,
        predicates,
        evidence_incomplete: false,
    };
    let decision = policy.evaluate_with(&subject, &signers, &attested);
    let mut problems = Vec::new();
    if decision.admit != case.expect.admit {
        problems.push(format!(
            "expected {}, got {}",
            if case.expect.admit { "admit" } else { "deny" },
            if decision.admit { "admit" } else { "deny" }
        ));
    }
    for want in &case.expect.reasons {
        if !decision.reasons.iter().any(|r| r.contains(want.as_str())) {
            problems.push(format!("no reason contains {want:?}"));
        }
    }
    Ok((case.name, decision, problems))
}
