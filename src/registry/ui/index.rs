//! What the web pages show about the ledger as a whole, derived from the
//! ledger itself and kept in memory: each page view reads only the entries
//! appended since the last one (whole entry bundles, 256 entries a read),
//! so a page costs the same on a registry of 10 images or of 10 million.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use vouch_ledger::entry::{Entry, PolicyEntry, Verdict};
use vouch_ledger::store::Ledger;
use vouch_ledger::tile::{decode_bundle, TileAddr, TileKind, TILE_WIDTH};

/// Seconds in a day: the plot's bucket.
const DAY: u64 = 86_400;

/// Per-day counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Day {
    /// Ledger size at the end of the day (as far as dated entries tell).
    pub size: u64,
    /// Admissions logged that day.
    pub admits: u64,
    /// Denials logged that day.
    pub denies: u64,
}

/// The ledger, indexed for the pages.
#[derive(Debug, Default)]
pub struct Indexed {
    /// Entries read so far.
    pub scanned: u64,
    /// Per day (days since the epoch).
    pub days: BTreeMap<u64, Day>,
    /// Latest decision per image: `(repo, digest)` → (index, admitted).
    pub latest: HashMap<(String, String), (u64, bool)>,
    /// Images whose latest decision is a denial: (index, repo, digest) →
    /// the reasons.
    pub denied: BTreeMap<(u64, String, String), Vec<String>>,
    /// Every policy entry: (index, entry).
    pub policies: Vec<(u64, PolicyEntry)>,
    /// Images currently admitted.
    pub admitted: u64,
    /// A problem met while reading (shown, never hidden). A broken entry
    /// stops the index; a failed read is retried at the next view.
    pub problem: Option<String>,
    /// Whether `problem` is a broken ledger (permanent), not a failed read.
    broken: bool,
}

/// The shared index.
#[derive(Debug, Default)]
pub struct LedgerIndex {
    inner: Mutex<Indexed>,
}

impl LedgerIndex {
    /// The index brought up to the ledger's current size.
    pub fn refreshed(&self, ledger: &Ledger) -> MutexGuard<'_, Indexed> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let size = ledger.size();
        if !inner.broken {
            inner.problem = None;
        }
        while inner.scanned < size && inner.problem.is_none() {
            let tile = inner.scanned / TILE_WIDTH;
            let addr = TileAddr::for_tree(TileKind::Entries, tile, size).expect("a tile below the size");
            let bundle = match ledger.tile(addr) {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    inner.problem = Some(format!("reading {addr}: {e}"));
                    break;
                }
            };
            let entries = decode_bundle(&bundle).unwrap_or_default();
            let before = inner.scanned;
            for (i, bytes) in entries.iter().enumerate() {
                let index = tile * TILE_WIDTH + i as u64;
                if index >= inner.scanned {
                    inner.add(index, bytes);
                    inner.scanned = index + 1;
                }
            }
            if inner.scanned == before {
                inner.problem = Some(format!("{addr} does not hold entry {before}"));
                inner.broken = true;
            }
        }
        inner
    }
}

impl Indexed {
    fn add(&mut self, index: u64, bytes: &[u8]) {
        match Entry::decode(bytes) {
            Ok(Entry::Policy(p)) => self.policies.push((index, p)),
            Ok(Entry::Decision(d)) => {
                let admit = d.verdict == Verdict::Admit;
                let day = self.days.entry(d.time / DAY).or_default();
                day.size = day.size.max(index + 1);
                if admit {
                    day.admits += 1;
                } else {
                    day.denies += 1;
                }
                let key = (d.repo.clone(), d.digest.as_str().to_owned());
                if let Some((old, was_admitted)) = self.latest.insert(key.clone(), (index, admit)) {
                    self.denied.remove(&(old, key.0.clone(), key.1.clone()));
                    self.admitted -= u64::from(was_admitted);
                }
                self.admitted += u64::from(admit);
                if !admit {
                    self.denied.insert((index, key.0, key.1), d.reasons);
                }
            }
            Ok(Entry::Tag(_) | Entry::Delete(_)) => {
                if let Some((_, last)) = self.days.iter_mut().next_back() {
                    last.size = index + 1;
                }
            }
            Err(e) => {
                self.problem = Some(format!("ledger entry {index} does not decode: {e}"));
                self.broken = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouch_ledger::entry::{DecisionEntry, Digest};

    fn decision(repo: &str, n: u8, admit: bool, time: u64) -> Vec<u8> {
        Entry::Decision(DecisionEntry {
            repo: repo.into(),
            digest: Digest::parse(&format!("sha256:{}", hex::encode([n; 32]))).unwrap(),
            media_type: "m".into(),
            verdict: if admit { Verdict::Admit } else { Verdict::Deny },
            reasons: vec![],
            evidence: vec![],
            signers: vec![],
            policy: Digest::parse(&format!("sha256:{}", "0".repeat(64))).unwrap(),
            policy_index: 0,
            time,
        })
        .encode()
        .unwrap()
    }

    #[test]
    fn the_latest_decision_wins_and_days_are_counted() {
        let mut ix = Indexed::default();
        ix.add(1, &decision("a", 1, false, DAY * 3));
        ix.add(2, &decision("a", 2, true, DAY * 3 + 5));
        assert_eq!((ix.denied.len(), ix.admitted), (1, 1));
        // An admission of the denied image takes it off the denials.
        ix.add(3, &decision("a", 1, true, DAY * 4));
        assert_eq!((ix.denied.len(), ix.admitted), (0, 2));
        // A revocation puts it back, counted once.
        ix.add(4, &decision("a", 1, false, DAY * 4));
        assert_eq!((ix.denied.len(), ix.admitted), (1, 1));
        assert_eq!(
            ix.days[&3],
            Day {
                size: 3,
                admits: 1,
                denies: 1
            }
        );
        assert_eq!(
            ix.days[&4],
            Day {
                size: 5,
                admits: 1,
                denies: 1
            }
        );
    }
}
