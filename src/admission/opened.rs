//! Attestation envelopes kept once opened, by blob digest.
//!
//! Opening a DSSE envelope (decoding its payload, hashing its PAE, reading
//! its Statement and an SBOM's packages) is most of an admission's work
//! when an image has megabytes of attestations, and what comes of it
//! depends on the envelope's bytes alone ([`Opened`]): a blob's digest
//! names those bytes for good. So admission keeps what it opened, for the
//! next evaluation of any image, under a memory budget; an `.att` manifest
//! pushed before its image has its envelopes opened then, and the image's
//! push finds them open.
//!
//! What is kept decides nothing by itself: each evaluation still checks
//! that the blob is linked in the repository, counts its size against the
//! evaluation's bounds as if it read it, checks the Statement names the
//! image, and verifies the signatures against the policy's keys of the
//! moment. An evaluation finds the same outcome with or without it.

use crate::attestation::Opened;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use vouch_ledger::entry::Digest;

/// Memory the kept envelopes may hold (by [`Opened::size`]).
pub(super) const BUDGET: usize = 64 << 20;

/// Opened envelopes by blob digest, the oldest dropped first.
#[derive(Default)]
pub(super) struct OpenedEnvelopes {
    kept: Mutex<Kept>,
}

impl std::fmt::Debug for OpenedEnvelopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let k = self.kept.lock().expect("never poisoned");
        write!(f, "OpenedEnvelopes({} kept, {} bytes)", k.by_digest.len(), k.bytes)
    }
}

#[derive(Default)]
struct Kept {
    by_digest: HashMap<Digest, Arc<Opened>>,
    order: VecDeque<Digest>,
    bytes: usize,
}

impl OpenedEnvelopes {
    /// The envelope with this digest, if it is kept.
    pub(super) fn get(&self, digest: &Digest) -> Option<Arc<Opened>> {
        self.kept.lock().expect("never poisoned").by_digest.get(digest).cloned()
    }

    /// Keeps `opened`, the envelope with this digest, dropping the oldest
    /// until all fit in [`BUDGET`]; one larger than it is not kept.
    pub(super) fn keep(&self, digest: &Digest, opened: Arc<Opened>) {
        let size = opened.size();
        if size > BUDGET {
            return;
        }
        let mut k = self.kept.lock().expect("never poisoned");
        if k.by_digest.contains_key(digest) {
            return;
        }
        while k.bytes + size > BUDGET {
            let Some(old) = k.order.pop_front() else { break };
            if let Some(o) = k.by_digest.remove(&old) {
                k.bytes -= o.size();
            }
        }
        k.bytes += size;
        k.order.push_back(digest.clone());
        k.by_digest.insert(digest.clone(), opened);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn envelope(filler: usize) -> (Digest, Arc<Opened>) {
        let statement = format!(
            r#"{{"predicateType":"x","subject":[],"predicate":"{}"}}"#,
            "a".repeat(filler)
        );
        let b64 = base64::engine::general_purpose::STANDARD;
        let env = serde_json::json!({
            "payloadType": crate::attestation::IN_TOTO,
            "payload": b64.encode(&statement),
            "signatures": [],
        })
        .to_string();
        let d = crate::registry::digest::sha256_of(env.as_bytes());
        (d, Arc::new(Opened::open(env.as_bytes()).unwrap()))
    }

    #[test]
    fn keeps_within_the_budget_dropping_the_oldest() {
        let kept = OpenedEnvelopes::default();
        // Each a little over a quarter of the budget: three fit.
        let envelopes: Vec<_> = (0..7).map(|i| envelope(BUDGET / 8 + 1000 + i)).collect();
        for (d, o) in &envelopes {
            kept.keep(d, o.clone());
        }
        let held: Vec<bool> = envelopes.iter().map(|(d, _)| kept.get(d).is_some()).collect();
        assert_eq!(held, [false, false, false, false, true, true, true]);
        let k = kept.kept.lock().unwrap();
        assert!(k.bytes <= BUDGET);
        assert_eq!(k.bytes, envelopes[4..].iter().map(|(_, o)| o.size()).sum::<usize>());
        drop(k);
        let (d, big) = envelope(BUDGET);
        kept.keep(&d, big);
        assert!(kept.get(&d).is_none(), "one larger than the budget is not kept");
    }
}
