//! Attestations among the evidence about an image: the layers of a cosign
//! `.att` manifest, DSSE envelopes signed by a key or keyless. All of a
//! manifest's envelopes are read first (one memory permit for all, within
//! the evaluation's budget), then verified on up to [`WORKERS`] threads at
//! once; when rules read predicates, each verified predicate is parsed
//! for them on the same thread ([`Predicate::warm`]). A 5 MB SBOM takes
//! milliseconds to verify and as many to parse, and a scan beside it need
//! not wait. The outcomes are then recorded in layer order, as before.
//! Envelopes opened before, by this evaluation or another, are not read or
//! opened again (`opened.rs`); their signatures are verified all the same.

use super::evidence::{MAX_ENVELOPE, MAX_EVIDENCE_LAYERS};
use super::gather::{Findings, Found, Reader};
use super::Admission;
use crate::attestation::Opened;
use crate::policy::attested::Predicate;
use crate::policy::identities_matching;
use crate::registry::error::RegistryError;
use std::collections::HashMap;
use std::sync::Arc;
use vouch_ledger::entry::Digest;

/// Threads verifying one manifest's attestations at once.
const WORKERS: usize = 2;

/// What one layer came to.
enum Outcome {
    /// A verified Statement: its type, who signed it, and (if kept) its
    /// predicate once per signer.
    Counted(String, Vec<String>, Vec<Predicate>),
    /// Why it did not count.
    Note(String),
}

impl Admission {
    pub(super) async fn attestations(
        &self,
        reader: &mut Reader<'_>,
        image: &Digest,
        manifest: &Digest,
        layers: &[serde_json::Value],
        f: &mut Findings,
    ) -> Result<(), RegistryError> {
        let mut wanted = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            let Some(d) = layer["digest"].as_str().and_then(Digest::parse) else {
                continue;
            };
            if reader.seen.insert((d.clone(), layer["annotations"].to_string())) {
                wanted.push((i, d));
            }
        }
        let sizes: Vec<(Digest, u64)> = wanted.iter().map(|(_, d)| (d.clone(), MAX_ENVELOPE)).collect();
        // Envelopes opened before are not read again (`opened.rs`).
        let opened: HashMap<Digest, Arc<Opened>> = wanted
            .iter()
            .filter_map(|(_, d)| Some((d.clone(), self.opened.get(d)?)))
            .collect();
        let (envelopes, _room) = reader.read_all(&sizes, f, |d| opened.contains_key(d)).await?;
        let jobs: Vec<(usize, &serde_json::Value, &Digest, Found)> = wanted
            .iter()
            .zip(envelopes)
            .filter_map(|((i, d), e)| Some((*i, &layers[*i]["annotations"], d, e?)))
            .collect();
        let keep = f.keep_predicates;
        let outcomes = on_workers(&jobs, |(i, annotations, digest, found)| {
            if is_keyless(annotations) && self.policy.trusted_root.is_none() {
                return Outcome::Note(format!("attestation {i}: keyless, but the policy has no trusted_root"));
            }
            let envelope = match found {
                Found::AtHand => opened[*digest].clone(),
                Found::Bytes(bytes) => match Opened::open(bytes) {
                    Ok(o) => {
                        let o = Arc::new(o);
                        self.opened.keep(digest, o.clone());
                        o
                    }
                    Err(e) => return Outcome::Note(format!("attestation {i}: {e}")),
                },
            };
            self.verify_attestation(image, *i, annotations, &envelope, keep)
        });
        for ((i, ..), outcome) in jobs.iter().zip(outcomes) {
            match outcome {
                Outcome::Counted(predicate_type, signers, predicates) => {
                    f.evidence.insert(manifest.clone());
                    f.predicates.extend(predicates);
                    f.attested
                        .extend(signers.into_iter().map(|s| (predicate_type.clone(), s)));
                }
                Outcome::Note(text) => f.note(1, *i, text),
            }
        }
        Ok(())
    }

    /// Opens the envelopes of an `.att` manifest (`manifest`, evidence
    /// just stored in `repo`) whose image is not here yet, so that the
    /// image's push finds them open (`opened.rs`): the work moves from the
    /// image's push, which waits for its decision, to the attestations'.
    /// Nothing is decided here; a blob not read or not opened is simply
    /// read by the image's evaluation.
    pub(super) async fn open_ahead(
        &self,
        app: &crate::registry::AppState,
        repo: &crate::registry::names::RepoName,
        manifest: &[u8],
    ) -> Result<(), RegistryError> {
        let doc: serde_json::Value = serde_json::from_slice(manifest).unwrap_or_default();
        let mut wanted: Vec<(Digest, u64)> = Vec::new();
        for layer in doc["layers"].as_array().into_iter().flatten().take(MAX_EVIDENCE_LAYERS) {
            match layer["digest"].as_str().and_then(Digest::parse) {
                Some(d) if !wanted.iter().any(|(w, _)| *w == d) => wanted.push((d, MAX_ENVELOPE)),
                _ => {}
            }
        }
        // Read as an evaluation would (linked here, within the bounds and
        // the evidence memory), skipping those already open.
        let mut reader = Reader::new(app, self, repo);
        let (found, _room) = reader
            .read_all(&wanted, &mut Findings::default(), |d| self.opened.get(d).is_some())
            .await?;
        let blobs: Vec<(&Digest, Vec<u8>)> = wanted
            .iter()
            .zip(found)
            .filter_map(|((d, _), f)| match f? {
                Found::Bytes(bytes) => Some((d, bytes)),
                Found::AtHand => None,
            })
            .collect();
        on_workers(&blobs, |(d, bytes)| {
            if let Ok(o) = Opened::open(bytes) {
                self.opened.keep(d, Arc::new(o));
            }
        });
        Ok(())
    }

    /// Opens the envelopes of an `.att` candidate's layers (`blobs`, as
    /// read to recognise it), or finds them open, and keeps them: recognising
    /// it reads their subjects from what is opened, and its subject's
    /// evaluation (now, or when the image arrives) finds them open, so each
    /// Statement is read once.
    pub(super) fn open_layers(
        &self,
        c: &super::evidence::Candidate,
        blobs: &HashMap<Digest, Vec<u8>>,
    ) -> HashMap<Digest, Arc<Opened>> {
        let mut out = HashMap::new();
        let mut closed: Vec<(&Digest, &Vec<u8>)> = Vec::new();
        for (d, _) in &c.layers {
            match (self.opened.get(d), blobs.get_key_value(d)) {
                (Some(o), _) => {
                    out.insert(d.clone(), o);
                }
                (None, Some(kv)) if !closed.iter().any(|(k, _)| *k == d) => closed.push(kv),
                _ => {}
            }
        }
        let opened = on_workers(&closed, |(_, bytes)| Opened::open(bytes).ok().map(Arc::new));
        for ((d, _), o) in closed.into_iter().zip(opened) {
            if let Some(o) = o {
                self.opened.keep(d, o.clone());
                out.insert(d.clone(), o);
            }
        }
        out
    }

    /// Verifies one envelope (layer `i`), keyless or by the policy's keys.
    fn verify_attestation(
        &self,
        image: &Digest,
        i: usize,
        annotations: &serde_json::Value,
        envelope: &Opened,
        keep: bool,
    ) -> Outcome {
        let (predicate_type, signers, predicate, signed_at) = if is_keyless(annotations) {
            let Some(root) = &self.policy.trusted_root else {
                return Outcome::Note(format!("attestation {i}: keyless, but the policy has no trusted_root"));
            };
            match envelope.verify_keyless(root, image, annotations) {
                Ok((predicate_type, id, predicate)) => {
                    let matched = identities_matching(&self.identities, &id);
                    if matched.is_empty() {
                        return Outcome::Note(format!(
                            "attestation {i}: keyless {predicate_type} by {} from {} is not a trusted identity",
                            id.subject, id.issuer
                        ));
                    }
                    (predicate_type, matched, predicate, Some(id.logged_at))
                }
                Err(e) => return Outcome::Note(format!("attestation {i}: {e}")),
            }
        } else {
            match envelope.verify(image, &self.keys) {
                Ok(a) => (a.predicate_type, a.signers, a.predicate, None),
                Err(e) => return Outcome::Note(format!("attestation {i}: {e}")),
            }
        };
        let predicates: Vec<Predicate> = match keep {
            true => Predicate::for_signers(&predicate_type, &signers, &predicate, signed_at).collect(),
            false => Vec::new(),
        };
        for p in &predicates {
            p.warm();
        }
        Outcome::Counted(predicate_type, signers, predicates)
    }
}

/// Whether a layer's annotations carry a keyless signature's certificate.
fn is_keyless(annotations: &serde_json::Value) -> bool {
    annotations.get(crate::keyless::CERTIFICATE_ANNOTATION).is_some()
}

/// `f` of each item, on up to [`WORKERS`] threads (this one among them),
/// results in the items' order. Opening megabytes of envelopes takes this
/// thread for milliseconds: on a tokio worker, its other tasks move to
/// another thread meanwhile ([`crate::registry::meta::blocking`]).
fn on_workers<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    match items.len() {
        0 => Vec::new(),
        _ => crate::registry::meta::blocking(|| each_on_workers(items, f)),
    }
}

fn each_on_workers<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.len() < 2 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> = items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let work = || loop {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(item) = items.get(i) else { break };
        let r = f(item);
        *results[i].lock().expect("a worker panicked") = Some(r);
    };
    std::thread::scope(|s| {
        for _ in 1..WORKERS.min(items.len()) {
            s.spawn(work);
        }
        work();
    });
    results
        .into_iter()
        .map(|r| r.into_inner().expect("a worker panicked").expect("every item done"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn workers_keep_the_items_order() {
        let items: Vec<u64> = (0..37).collect();
        let out = super::on_workers(&items, |n| n * n);
        assert_eq!(out, items.iter().map(|n| n * n).collect::<Vec<_>>());
        assert_eq!(super::on_workers(&[5u64], |n| n + 1), vec![6]);
        assert!(super::on_workers(&[] as &[u64], |n| *n).is_empty());
    }
}
