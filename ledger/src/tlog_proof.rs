//! Offline inclusion proofs in the c2sp.org/tlog-proof@v1 text form: the
//! entry's index, its inclusion proof, and the signed checkpoint it is
//! proven against, verifiable with nothing but the log's key.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! [extra <base64>]
//! index <decimal>
//! <base64 hash>            (zero or more, from the leaf's sibling upwards)
//!
//! <the signed checkpoint, verbatim>
//! ```

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::hash::Hash;
use crate::note::{VerifierKey, MAX_NOTE_BYTES};
use crate::proof::{verify_inclusion, ProofError};
use base64::{engine::general_purpose::STANDARD as B64, Engine as _};

const HEADER: &str = "c2sp.org/tlog-proof@v1";
/// Most proof hashes accepted (a tree of 2^64 entries needs 64).
const MAX_HASHES: usize = 64;
/// Largest `extra` accepted, in bytes.
const MAX_EXTRA: usize = 16 * 1024;

/// A parsed proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque, unauthenticated application data.
    pub extra: Option<Vec<u8>>,
    /// The entry's index.
    pub index: u64,
    /// The inclusion proof, leaf's sibling first.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: Vec<u8>,
}

/// Why a proof was rejected.
#[derive(Debug, thiserror::Error)]
pub enum TlogProofError {
    /// Not in the c2sp.org/tlog-proof@v1 form.
    #[error("not a c2sp.org/tlog-proof@v1 proof: {0}")]
    Malformed(&'static str),
    /// The checkpoint is bad or not signed by the key.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The entry is not at that index under the checkpoint's root.
    #[error("inclusion proof does not verify: {0}")]
    Inclusion(#[from] ProofError),
}

impl TlogProof {
    /// The text form.
    pub fn to_text(&self) -> String {
        let mut out = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", B64.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.proof {
            out.push_str(&h.to_base64());
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&String::from_utf8_lossy(&self.checkpoint));
        out
    }

    /// Parses the text form canonically (it prints back to the same bytes);
    /// the checkpoint is checked only by [`Self::verify`].
    pub fn parse(bytes: &[u8]) -> Result<TlogProof, TlogProofError> {
        let bad = TlogProofError::Malformed;
        if bytes.len() > MAX_NOTE_BYTES + MAX_EXTRA * 2 + MAX_HASHES * 45 + 64 {
            return Err(bad("too large"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
        let (head, checkpoint) = text
            .split_once("\n\n")
            .ok_or(bad("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(bad("first line is not c2sp.org/tlog-proof@v1"));
        }
        let mut line = lines.next().ok_or(bad("no index line"))?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            let data = B64.decode(b64).map_err(|_| bad("extra is not base64"))?;
            if data.len() > MAX_EXTRA || B64.encode(&data) != b64 {
                return Err(bad("extra is too large or not canonical base64"));
            }
            extra = Some(data);
            line = lines.next().ok_or(bad("no index line"))?;
        }
        let digits = line.strip_prefix("index ").ok_or(bad("no index line"))?;
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        let index = canonical
            .then(|| digits.parse().ok())
            .flatten()
            .ok_or(bad("index is not a canonical decimal"))?;
        let proof = lines
            .map(|l| Hash::from_base64(l).ok_or(bad("a proof line is not a base64 SHA-256 hash")))
            .collect::<Result<Vec<_>, _>>()?;
        if proof.len() > MAX_HASHES {
            return Err(bad("too many proof hashes"));
        }
        Ok(TlogProof {
            extra,
            index,
            proof,
            checkpoint: checkpoint.as_bytes().to_vec(),
        })
    }

    /// Verifies the checkpoint's signature with `key` and that `entry` is at
    /// [`Self::index`] in its tree; returns the checkpoint.
    pub fn verify(&self, entry: &[u8], key: &VerifierKey) -> Result<Checkpoint, TlogProofError> {
        let checkpoint = Checkpoint::open(&self.checkpoint, key)?;
        verify_inclusion(entry, self.index, checkpoint.size, &self.proof, &checkpoint.root)?;
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::NoteSigner;
    use crate::tree::{inclusion_proof, MemoryTree};

    fn proof_for(index: u64, extra: Option<Vec<u8>>) -> (TlogProof, NoteSigner, Vec<u8>) {
        let signer = NoteSigner::new("proof.test/log", ed25519_dalek::SigningKey::from_bytes(&[8; 32])).unwrap();
        let mut tree = MemoryTree::new();
        for i in 0..37u32 {
            tree.push(&i.to_be_bytes());
        }
        let cp = Checkpoint {
            origin: "proof.test/log".into(),
            size: 37,
            root: tree.root_at(37),
            extensions: vec![],
        };
        let proof = TlogProof {
            extra,
            index,
            proof: inclusion_proof(&tree, index, 37).unwrap(),
            checkpoint: signer.sign(&cp.to_text()).into_bytes(),
        };
        (proof, signer, (index as u32).to_be_bytes().to_vec())
    }

    #[test]
    fn round_trips_and_verifies() {
        for extra in [None, Some(b"context".to_vec())] {
            let (p, signer, entry) = proof_for(21, extra);
            let text = p.to_text();
            let parsed = TlogProof::parse(text.as_bytes()).unwrap();
            assert_eq!(parsed, p);
            assert_eq!(parsed.to_text(), text);
            assert_eq!(parsed.verify(&entry, signer.verifier()).unwrap().size, 37);
            assert!(parsed.verify(b"other", signer.verifier()).is_err());
        }
    }

    #[test]
    fn tampering_and_malformed_forms_are_rejected() {
        let (p, signer, entry) = proof_for(5, None);
        let text = p.to_text();
        let wrong_index = text.replacen("index 5\n", "index 6\n", 1);
        assert!(TlogProof::parse(wrong_index.as_bytes())
            .unwrap()
            .verify(&entry, signer.verifier())
            .is_err());
        for bad in [
            text.replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1),
            text.replacen("index 5", "index 05", 1),
            text.replacen("index 5\n", "", 1),
            text.replacen("\n\n", "\n", 1),
            text.replacen('=', "", 1),
        ] {
            let parsed = TlogProof::parse(bad.as_bytes());
            assert!(
                parsed.is_err() || parsed.unwrap().verify(&entry, signer.verifier()).is_err(),
                "{bad}"
            );
        }
    }
}
