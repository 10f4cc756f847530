//! `vouch verify`: prove, with nothing but the log's key, that an image was
//! admitted under a given policy. Built on the ledger's verification half:
//! the admission bundle (`spec/bundle.md`) carries the decision and policy
//! entries with offline proofs, so it verifies offline too.

use crate::client::{parse_reference, Registry, RegistryArgs};
use base64::Engine as _;
use clap::Args;
use std::path::PathBuf;
use vouch_ledger::entry::{Digest, Entry, Verdict};
use vouch_ledger::tlog_proof::TlogProof;
use vouch_ledger::{Note, VerifierKey};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Options of `vouch verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image: <registry>/<repository>:<tag> or @<digest>.
    reference: String,
    /// The log's verifier key (`<origin>+<id>+<key>`), or a file holding it.
    #[arg(long, value_name = "VKEY|FILE")]
    log_key: String,
    /// Require this policy: a policy file (its digest is computed) or a
    /// policy digest (sha256:...).
    #[arg(long, value_name = "FILE|DIGEST")]
    policy: Option<String>,
    /// Verify this saved bundle instead of fetching one (offline).
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    /// Also save the fetched bundle here, for offline verification later.
    #[arg(long, value_name = "FILE")]
    save_bundle: Option<PathBuf>,
    /// Output: text or json.
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    output: String,
    #[command(flatten)]
    witnesses: crate::witness_trust::WitnessTrust,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run(args: VerifyArgs) -> Result<()> {
    let outcome = verify(&args);
    let json = args.output == "json";
    match &outcome {
        Ok(v) if json => println!("{}", serde_json::to_string_pretty(v)?),
        Ok(v) => println!(
            "verified: {}@{} was admitted under policy {:?} version {} ({}), ledger entries {} and {}, checkpoint of size {}{}",
            v["repository"].as_str().unwrap_or(""),
            v["digest"].as_str().unwrap_or(""),
            v["policy"]["name"].as_str().unwrap_or(""),
            v["policy"]["version"],
            v["policy"]["digest"].as_str().unwrap_or(""),
            v["decision_index"],
            v["policy"]["index"],
            v["checkpoint_size"],
            match v["witnesses"].as_array().map(Vec::len) {
                Some(n) if n > 0 => format!(", cosigned by {n} witness(es)"),
                _ => String::new(),
            }
        ),
        Err(e) if json => println!("{}", serde_json::json!({ "verified": false, "reason": e.to_string() })),
        Err(_) => {}
    }
    outcome.map(|_| ())
}

fn verify(args: &VerifyArgs) -> Result<serde_json::Value> {
    let key_text = std::fs::read_to_string(&args.log_key).unwrap_or_else(|_| args.log_key.clone());
    let key = VerifierKey::parse(key_text.trim())?;
    let witnesses = args.witnesses.policy()?;
    let image = parse_reference(&args.reference)?;
    let (bundle, digest) = match &args.bundle {
        Some(path) => {
            let bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
            let in_bundle = bundle["digest"]
                .as_str()
                .and_then(Digest::parse)
                .ok_or("bundle has no digest")?;
            if image.digest.as_ref().is_some_and(|d| d != &in_bundle) {
                return Err(format!(
                    "the bundle is about {in_bundle}, not {}",
                    image.digest.as_ref().expect("checked")
                )
                .into());
            }
            (bundle, in_bundle)
        }
        None => {
            let reg = Registry::connect(&image, &args.registry)?;
            let digest = reg.resolve(&image)?;
            let bytes = reg.get(&format!("/v2/{}/admission/{digest}", image.repo))?;
            if let Some(path) = &args.save_bundle {
                std::fs::write(path, &bytes)?;
            }
            (serde_json::from_slice(&bytes)?, digest)
        }
    };
    if bundle["version"].as_u64() != Some(1) {
        return Err("unsupported bundle version".into());
    }
    let (decision, decision_index, checkpoint, note) = open_entry(&bundle["decision"], &key, "decision")?;
    let (policy, policy_index, policy_checkpoint, policy_note) = open_entry(&bundle["policy"], &key, "policy")?;
    // The decision's checkpoint must be the one the witnesses saw: a log
    // showing this client a history no one else sees cannot gather them.
    let cosigned_by = match &witnesses {
        Some(w) => {
            let retry = |e: vouch_ledger::cosignature::WitnessPolicyError| {
                format!(
                    "{e} (a new entry is witnessed within seconds on a healthy log: retry; \
                     if it persists the log may be showing you a view others do not see)"
                )
            };
            // The policy entry's checkpoint too, unless it is the same one.
            if policy_note.text() != note.text() {
                w.check(&policy_note, policy_checkpoint).map_err(retry)?;
            }
            w.check(&note, checkpoint).map_err(retry)?
        }
        None => Vec::new(),
    };
    let Entry::Decision(d) = decision else {
        return Err("the decision entry is not an admission decision".into());
    };
    let Entry::Policy(p) = policy else {
        return Err("the policy entry is not a policy".into());
    };
    if d.repo != image.repo.as_str() || d.digest != digest {
        return Err(format!(
            "the decision is about {}@{}, not {}@{digest}",
            d.repo, d.digest, image.repo
        )
        .into());
    }
    if d.verdict != Verdict::Admit {
        // A denial that took back an admission carries the admission, with
        // its own proof: "revoked", not merely "denied".
        if !bundle["revoked"].is_null() {
            let (admitted, admitted_index, _, _) = open_entry(&bundle["revoked"], &key, "revoked admission")?;
            let Entry::Decision(a) = admitted else {
                return Err("the revoked entry is not an admission decision".into());
            };
            if a.verdict == Verdict::Admit
                && a.repo == d.repo
                && a.digest == d.digest
                && admitted_index < decision_index
            {
                return Err(format!(
                    "{}@{digest} was REVOKED: admitted at ledger entry {admitted_index}, taken back at entry {decision_index}: {}",
                    d.repo,
                    d.reasons.join("; ")
                )
                .into());
            }
            return Err("the bundle's revoked admission is not an earlier admission of this image".into());
        }
        return Err(format!(
            "{}@{digest} was denied (ledger entry {decision_index}): {}",
            d.repo,
            d.reasons.join("; ")
        )
        .into());
    }
    if d.policy_index != policy_index || d.policy != p.digest {
        return Err(format!(
            "the decision names policy {} at entry {}, but the bundle's policy entry is {} at entry {policy_index}",
            d.policy, d.policy_index, p.digest
        )
        .into());
    }
    if let Some(wanted) = &args.policy {
        let wanted = match Digest::parse(wanted) {
            Some(d) => d,
            None => vouch::policy::Policy::load(std::path::Path::new(wanted))?.digest(),
        };
        if wanted != p.digest {
            return Err(format!("admitted under policy {}, not the required {wanted}", p.digest).into());
        }
    }
    Ok(serde_json::json!({
        "verified": true,
        "repository": d.repo,
        "digest": d.digest.as_str(),
        "decision_index": decision_index,
        "signers": d.signers,
        "policy": { "name": p.name, "version": p.version, "digest": p.digest.as_str(), "index": policy_index },
        "checkpoint_size": checkpoint,
        "log": key.name(),
        "witnesses": cosigned_by.iter().map(|(name, time)| serde_json::json!({ "name": name, "time": time })).collect::<Vec<_>>(),
    }))
}

/// An entry and its offline proof: checks the proof's checkpoint with the log
/// key and the entry's inclusion; returns the decoded entry, its index, and
/// the size and note of the checkpoint it was proven against.
fn open_entry(part: &serde_json::Value, key: &VerifierKey, what: &str) -> Result<(Entry, u64, u64, Note)> {
    let entry = part["entry"]
        .as_str()
        .and_then(|e| base64::engine::general_purpose::STANDARD.decode(e).ok())
        .ok_or_else(|| format!("the bundle's {what} entry is not base64"))?;
    let proof = TlogProof::parse(part["proof"].as_str().unwrap_or("").as_bytes())
        .map_err(|e| format!("the bundle's {what} proof: {e}"))?;
    let checkpoint = proof
        .verify(&entry, key)
        .map_err(|e| format!("the {what} entry is not proven in the log: {e}"))?;
    let decoded = Entry::decode(&entry).map_err(|e| format!("the {what} entry does not decode: {e}"))?;
    let note = Note::parse(&proof.checkpoint).map_err(|e| format!("the bundle's {what} checkpoint: {e}"))?;
    Ok((decoded, proof.index, checkpoint.size, note))
}
