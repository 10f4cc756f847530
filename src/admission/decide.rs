//! The decision pipeline: classify, gather and verify, evaluate, log
//! (see the module documentation of `admission`). What a push does with it
//! is in `accept.rs`.

use super::countersign::Incoming;
use super::evidence::{self, Candidate};
use super::gather::IdentityCheck;
use super::Admission;
use crate::policy::Subject;
use crate::registry::error::RegistryError;
use crate::registry::manifest::{validate, References, DOCKER_LIST, OCI_INDEX};
use crate::registry::meta::{AdmissionState, Batch, Evidence, EvidenceKind, ManifestRecord};
use crate::registry::names::RepoName;
use crate::registry::AppState;
use std::collections::HashMap;
use std::ops::ControlFlow;
use vouch_ledger::entry::{DecisionEntry, Digest, Entry, Verdict};

/// Evidence problems named in one denial at most.
const MAX_NOTES: usize = 5;
/// Reasons a decision records at most (a Rego module can deny with many),
/// and the characters of each: so that a decision entry always fits in a
/// ledger entry (65,535 bytes), whatever the policy or the evidence says.
const MAX_REASONS: usize = 16;
const MAX_REASON_CHARS: usize = 1000;
/// Signers and evidence manifests a decision names at most.
const MAX_SIGNERS: usize = 64;
const MAX_EVIDENCE: usize = 64;

/// Now, in seconds since the Unix epoch.
fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// At most [`MAX_REASONS`] reasons of at most [`MAX_REASON_CHARS`]
/// characters; the last one says how many more there were.
fn bounded_reasons(reasons: Vec<String>) -> Vec<String> {
    let n = reasons.len();
    let mut out: Vec<String> = reasons
        .into_iter()
        .take(MAX_REASONS)
        .map(|r| r.chars().take(MAX_REASON_CHARS).collect())
        .collect();
    if n > MAX_REASONS {
        out[MAX_REASONS - 1] = format!("... and {} more reasons", n - MAX_REASONS + 1);
    }
    out
}

/// An evaluation's result, before it is logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Outcome {
    pub admit: bool,
    pub reasons: Vec<String>,
    pub signers: Vec<String>,
    pub evidence: Vec<Digest>,
    /// A denial that rests on evidence not all read (a bound was reached,
    /// or storage failed): it decides nothing and the manifest keeps its
    /// state. Otherwise anyone who may push could take an admission back
    /// by flooding an image with junk evidence, and a disk hiccup would be
    /// logged as a verdict.
    pub undetermined: bool,
}

impl Outcome {
    /// A denial for a reason that is the manifest's own (it does not parse).
    fn failed(why: String) -> Outcome {
        Outcome {
            admit: false,
            reasons: bounded_reasons(vec![format!("evaluation failed: {why}")]),
            signers: Vec::new(),
            evidence: Vec::new(),
            undetermined: false,
        }
    }

    /// No verdict: reading what the decision rests on failed.
    fn unavailable(e: RegistryError) -> Outcome {
        Outcome {
            undetermined: true,
            ..Outcome::failed(e.to_string())
        }
    }

    /// Its summary, as `reg_decisions` keeps it to compare the next one with.
    fn summary(&self) -> serde_json::Value {
        serde_json::json!({ "admit": self.admit, "reasons": self.reasons, "signers": self.signers })
    }
}

/// A push's `tag` entries, to log right after its decision: each with
/// whether the tag pointed to admitted content before; which are logged
/// depends on the verdict ([`TagMoves::entries`]).
#[derive(Debug)]
pub(super) struct TagMoves(pub Vec<(Entry, bool)>);

impl TagMoves {
    /// The entries to log: every move if the push's manifest is admitted,
    /// else those off admitted content.
    pub fn entries(self, admitted: bool) -> Vec<Entry> {
        self.0
            .into_iter()
            .filter(|(_, was_admitted)| admitted || *was_admitted)
            .map(|(e, _)| e)
            .collect()
    }
}

/// When an evaluation is logged as a new decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LogWhen {
    /// When its verdict, signers or reasons differ from the last decision
    /// (new evidence, a push).
    OutcomeChanged,
    /// When its verdict differs (re-evaluation).
    VerdictChanged,
}

pub(super) fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

impl Admission {
    /// Classifies a manifest by its structure: evidence about which
    /// manifest, or not evidence. Reads the candidate's blobs (bounded).
    pub(super) async fn classify(
        &self,
        app: &AppState,
        repo: &RepoName,
        media_type: &str,
        bytes: &[u8],
        refs: &References,
        hint: Option<&Digest>,
    ) -> Result<Option<Evidence>, RegistryError> {
        // Only a manifest of a few layers can be evidence: others are not
        // parsed any further.
        if refs.blobs.len() > evidence::MAX_EVIDENCE_LAYERS + 1 || !refs.manifests.is_empty() {
            return Ok(None);
        }
        let doc: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
        let Some(c) = evidence::candidate(media_type, &doc, refs) else {
            return Ok(None);
        };
        let blobs = self.read_candidate(app, repo, &c).await?;
        let opened = match c.kind {
            EvidenceKind::CosignAttestation => self.open_layers(&c, &blobs),
            _ => HashMap::new(),
        };
        let subjects_of = |d: &Digest| opened.get(d).and_then(|o| o.subjects());
        let blob = |d: &Digest| blobs.get(d).map(Vec::as_slice);
        let Some(subject) = evidence::recognise_with(&c, repo.as_str(), hint, blob, subjects_of) else {
            return Ok(None);
        };
        let countersigned = c.kind == EvidenceKind::CosignSignature
            && doc["layers"].as_array().into_iter().flatten().any(|l| {
                let payload = l["digest"].as_str().and_then(Digest::parse).and_then(|d| blobs.get(&d));
                let signature = l["annotations"][crate::signature::SIGNATURE_ANNOTATION].as_str();
                payload.is_some_and(|p| self.is_own_layer(&subject, signature, p))
            });
        Ok(Some(Evidence {
            kind: c.kind,
            subject,
            countersigned,
            own: false,
        }))
    }

    /// The candidate's blobs, each within its bound (`candidate` checked the
    /// declared sizes, which the registry checked against the blobs).
    async fn read_candidate(
        &self,
        app: &AppState,
        repo: &RepoName,
        c: &Candidate,
    ) -> Result<HashMap<Digest, Vec<u8>>, RegistryError> {
        let total: u64 = c.blobs().iter().map(|(_, n)| *n).sum();
        let _room = self
            .evidence_memory
            .acquire_many(u32::try_from(total.max(1)).unwrap_or(u32::MAX))
            .await
            .map_err(|e| RegistryError::Internal(e.to_string()))?;
        let mut out = HashMap::new();
        for (d, declared) in c.blobs() {
            if out.contains_key(&d) || !app.meta.blob_linked(repo, &d)? {
                continue;
            }
            if app.blob_size(&d).await? == Some(declared) {
                out.insert(d.clone(), app.read_blob(&d).await?);
            }
        }
        Ok(out)
    }

    /// Evaluates the manifest `digest` (`record`: stored, or arriving now)
    /// of `repo`: gathers and verifies its evidence (with `extra`, evidence
    /// arriving now), applies the policy. Never fails: a failure to evaluate
    /// is a denial naming it.
    pub(super) async fn evaluate(
        &self,
        app: &AppState,
        repo: &RepoName,
        digest: &Digest,
        record: &ManifestRecord,
        extra: Option<(&Digest, &ManifestRecord)>,
    ) -> Outcome {
        let refs = match validate(&record.media_type, &record.bytes) {
            Ok(r) => r,
            Err(e) => return Outcome::failed(e.to_string()),
        };
        let attachment = (refs.subject.is_some() && !evidence::runnable(&refs) && !is_index(&record.media_type))
            .then(|| refs.artifact_type.clone().unwrap_or_default());
        // Declared sizes were checked against the stored blobs at push;
        // their sum is checked too (a sum past 2^64 exceeds any limit).
        let size = refs
            .declared_total()
            .and_then(|t| t.checked_add(record.bytes.len() as u64))
            .unwrap_or(u64::MAX);
        let mut subject = Subject {
            repo: repo.to_string(),
            media_type: record.media_type.clone(),
            size,
            digest: digest.to_string(),
            manifest: serde_json::Value::Null,
            attachment: attachment.clone(),
            foreign_layers: refs.foreign.len(),
            configs: Default::default(),
            evaluated_at: now_unix(),
            predicates: Vec::new(),
            evidence_incomplete: false,
        };
        // The manifest as a JSON document, and the image configuration(s),
        // only for a rule that reads them (Rego, rules over the
        // configuration): a large manifest costs several times its size as
        // one, and configurations are blobs to read.
        // The rule depends on the repository and the attachment type only.
        let rule = self.policy.rule_for(&subject).map(|(_, r)| r);
        if rule.is_some_and(|r| r.reads_image()) {
            subject.manifest = serde_json::from_slice(&record.bytes).unwrap_or_default();
            subject.configs = match self.read_configs(app, repo, record, &refs).await {
                Ok(c) => c,
                Err(e) => return Outcome::unavailable(e),
            };
        }
        let identity = IdentityCheck {
            mode: rule.map(|r| r.signed_identity).unwrap_or_default(),
            registries: &self.registry_names,
            repo,
        };
        let keep = rule.is_some_and(|r| r.reads_predicates());
        let mut findings = match self.findings(app, repo, digest, &identity, extra, keep).await {
            Ok(f) => f,
            Err(e) => return Outcome::unavailable(e),
        };
        subject.predicates = std::mem::take(&mut findings.predicates);
        subject.evidence_incomplete = findings.incomplete;
        let evaluate = || {
            self.policy
                .evaluate_with(&subject, &findings.signers, &findings.attested)
        };
        // Rules over predicates (Rego's bounded 250 ms among them) can take
        // this thread for a while: other tasks move off it meanwhile.
        let mut decision = match keep {
            true => crate::registry::meta::blocking(evaluate),
            false => evaluate(),
        };
        let mut evidence: Vec<Digest> = findings.evidence.into_iter().collect();
        // A manifest an admitted image index lists (one platform of a
        // multi-platform image) is covered by the index's decision: signers
        // sign the index. Never an attachment.
        if !decision.admit && attachment.is_none() {
            match admitted_index_listing(app, repo, digest) {
                Ok(Some(index)) => {
                    decision.admit = true;
                    decision.reasons.push(format!("covered by the admitted index {index}"));
                    evidence.push(index);
                }
                Ok(None) => {}
                Err(e) => return Outcome::unavailable(e),
            }
        }
        // A denial says what was wrong with the evidence there was (the
        // first few problems, in a stable order), not only what was missing.
        if !decision.admit {
            decision.reasons.extend(findings.notes.into_values().take(MAX_NOTES));
        }
        let undetermined = !decision.admit && findings.incomplete && !keep;
        Outcome {
            undetermined,
            admit: decision.admit,
            reasons: bounded_reasons(decision.reasons),
            signers: decision.signers.into_iter().take(MAX_SIGNERS).collect(),
            evidence: evidence.into_iter().take(MAX_EVIDENCE).collect(),
        }
    }

    /// Logs `outcome` as a decision about `digest` unless it changes
    /// nothing (`when`), and stages what follows in `batch`: the state, the
    /// summary, the bundle to attach, and vouch's countersignature (written
    /// on admit, withdrawn on revocation). Returns the new state.
    pub(super) async fn record(
        &self,
        app: &AppState,
        (repo, digest, record): (&RepoName, &Digest, &ManifestRecord),
        outcome: Outcome,
        (when, incoming, moves): (LogWhen, Incoming<'_>, &mut Option<TagMoves>),
        batch: &mut Batch<'_>,
    ) -> Result<AdmissionState, RegistryError> {
        if outcome.undetermined {
            tracing::warn!(%repo, %digest, reasons = ?outcome.reasons, "evidence not all read: no decision, the state stands");
            return Ok(record.state);
        }
        let last = app.meta.decision(repo, digest)?;
        let decided = matches!(record.state, AdmissionState::Admitted | AdmissionState::Denied);
        let same = last.as_ref().is_some_and(|d| match when {
            LogWhen::OutcomeChanged => d["outcome"] == outcome.summary(),
            LogWhen::VerdictChanged => d["outcome"]["admit"].as_bool() == Some(outcome.admit),
        });
        if decided && same && (record.state == AdmissionState::Admitted) == outcome.admit {
            return Ok(record.state);
        }
        let revoking = record.state == AdmissionState::Admitted && !outcome.admit;
        let mut reasons = outcome.reasons.clone();
        if revoking {
            if let Some(c) = self.countersigner() {
                if let Some(withdrawn) = c.withdraw(self, app, repo, digest, incoming, batch).await? {
                    reasons.push(format!("vouch's countersignature {withdrawn} is withdrawn"));
                }
            }
        }
        let entry = Entry::Decision(DecisionEntry {
            repo: repo.to_string(),
            digest: digest.clone(),
            media_type: record.media_type.clone(),
            verdict: if outcome.admit { Verdict::Admit } else { Verdict::Deny },
            reasons: reasons.clone(),
            evidence: outcome.evidence.clone(),
            signers: outcome.signers.clone(),
            policy: self.policy_digest.clone(),
            policy_index: self.policy_index,
            time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        });
        // Write-ahead for a verdict that changes: the state is pending (and
        // synced) before the decision is in the ledger. A crash between the
        // append and the caller's commit then leaves a pending image, which
        // the next start decides again, never a revoked image still served
        // (or an admitted one shown as denied) against what the ledger says.
        // If the append fails, the state is put back: the request failed and
        // changed nothing.
        let ahead = decided && (record.state == AdmissionState::Admitted) != outcome.admit;
        if ahead {
            let mut b = app.meta.batch();
            b.put_record(repo, digest, &record.with_state(AdmissionState::Pending))?;
            b.commit(true)?;
        }
        // The decision is durable in the ledger before anything it causes;
        // the push's tag entries (`moves`, taken: logged here) follow it,
        // in the same group commit.
        let mut entries = vec![entry];
        if let Some(m) = moves.take() {
            entries.extend(m.entries(outcome.admit));
        }
        let index = match super::append_all(&app.ledger, entries).await {
            Ok(indexes) => indexes[0],
            Err(e) => {
                if ahead {
                    let mut b = app.meta.batch();
                    b.put_record(repo, digest, record)?;
                    b.commit(true)?;
                }
                return Err(e);
            }
        };
        let state = if outcome.admit {
            AdmissionState::Admitted
        } else {
            AdmissionState::Denied
        };
        let mut summary = serde_json::json!({
            "verdict": if outcome.admit { "admit" } else { "deny" },
            "reasons": reasons,
            "signers": outcome.signers,
            "policy": self.policy_digest.as_str(),
            "ledger_index": index,
            "outcome": outcome.summary(),
        });
        if revoking {
            summary["revokes"] = last
                .as_ref()
                .map_or(serde_json::Value::Null, |d| d["ledger_index"].clone());
        }
        if let (true, Some(c)) = (outcome.admit, self.countersigner()) {
            let attested = super::countersign::Attested {
                ledger_index: index,
                checkpoint_size: app.ledger.size(),
                policy: &self.policy_digest,
                policy_index: self.policy_index,
            };
            let sig = c
                .countersign(self, app, (repo, digest), &attested, incoming, batch)
                .await?;
            summary["countersignature"] = sig.as_str().into();
        }
        batch.put_record(repo, digest, &record.with_state(state))?;
        batch.put_decision(repo, digest, &summary);
        batch.queue_bundle(repo, digest, index, outcome.admit);
        Ok(state)
    }
}

/// An admitted image index in `repo` that lists the manifest `digest`.
fn admitted_index_listing(app: &AppState, repo: &RepoName, digest: &Digest) -> Result<Option<Digest>, RegistryError> {
    let mut found = None;
    app.meta.for_each_referencing(repo, digest, |m, r| {
        if r.state == AdmissionState::Admitted && is_index(&r.media_type) {
            found = Some(m.clone());
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })?;
    Ok(found)
}
