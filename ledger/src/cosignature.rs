//! Witness cosignatures, c2sp.org/tlog-cosignature: `cosignature/v1` with
//! Ed25519 keys.
//!
//! A cosignature is a note signature line on a checkpoint whose payload is
//! `key id (4 bytes) || timestamp (u64, big-endian) || Ed25519 signature`, the
//! signature being over
//!
//! ```text
//! cosignature/v1\n
//! time <timestamp>\n
//! <the checkpoint body, with its final newline>
//! ```
//!
//! (§"Ed25519 signed message"). Key ids use signature type 0x04 (§"Format"),
//! so a cosigner key can never be mistaken for a log's note key (0x01).

use crate::note::{parse_key_text, valid_key_name, Note, NoteSignature};
use base64::{engine::general_purpose::STANDARD as B64, Engine as _};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};
use std::fmt;

/// Signature type byte of Ed25519 cosignatures, c2sp.org/tlog-cosignature.
pub const COSIGNATURE_V1_TYPE: u8 = 0x04;
/// Largest timestamp the spec allows (2^63 - 1).
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// Why a cosigner key or a cosignature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    /// The key text is not `<name>+<hex id>+<base64(0x04 || key)>`.
    #[error("witness key is malformed: {reason}")]
    BadKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A line with this witness's name and key id does not verify.
    #[error("cosignature by {name}+{id:08x} does not verify")]
    BadSignature {
        /// Witness name.
        name: String,
        /// Witness key id.
        id: u32,
    },
    /// The timestamp is over 2^63 - 1.
    #[error("cosignature by {name} has timestamp {timestamp}, over 2^63-1")]
    BadTimestamp {
        /// Witness name.
        name: String,
        /// The timestamp found.
        timestamp: u64,
    },
}

/// Key id = `SHA-256(name || 0x0A || 0x04 || public key)[:4]`, big-endian.
pub fn cosigner_key_id(name: &str, key: &VerifyingKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', COSIGNATURE_V1_TYPE]);
    h.update(key.as_bytes());
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// The message a `cosignature/v1` signs: header line, time line, checkpoint.
pub fn signed_message(checkpoint_text: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{checkpoint_text}").into_bytes()
}

/// A witness's public key: the vkey form with signature type 0x04.
#[derive(Clone, PartialEq, Eq)]
pub struct CosignerKey {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl CosignerKey {
    /// The cosigner key for `key` under `name`.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, CosignatureError> {
        if !valid_key_name(name) {
            return Err(CosignatureError::BadKey {
                reason: "invalid key name",
            });
        }
        Ok(Self {
            name: name.to_owned(),
            id: cosigner_key_id(name, &key),
            key,
        })
    }

    /// Parses `<name>+<hex id>+<base64(0x04 || key)>`; the id must match.
    pub fn parse(text: &str) -> Result<Self, CosignatureError> {
        let bad = |reason| CosignatureError::BadKey { reason };
        let (name, id, raw) = parse_key_text(text, COSIGNATURE_V1_TYPE).map_err(bad)?;
        let key = VerifyingKey::from_bytes(&raw).map_err(|_| bad("not a valid Ed25519 public key"))?;
        if cosigner_key_id(name, &key) != id {
            return Err(bad("key id does not match the key"));
        }
        Self::new(name, key)
    }

    /// The witness name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 32-bit key id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Finds this witness's cosignature on `note` and returns its timestamp:
    /// `Ok(None)` if there is none, an error if a line with this name and key
    /// id does not verify (c2sp.org/signed-note: a known key's bad signature
    /// fails the note). With several lines, the newest valid time is given.
    pub fn verify(&self, note: &Note) -> Result<Option<u64>, CosignatureError> {
        let mut newest = None;
        for sig in note.signatures() {
            if sig.name != self.name || sig.id != self.id {
                continue;
            }
            let timestamp = self.check(note.text(), sig)?;
            newest = newest.max(Some(timestamp));
        }
        Ok(newest)
    }

    /// Checks one signature line's payload against `checkpoint_text`.
    fn check(&self, checkpoint_text: &str, sig: &NoteSignature) -> Result<u64, CosignatureError> {
        let bad = || CosignatureError::BadSignature {
            name: self.name.clone(),
            id: self.id,
        };
        let payload: &[u8; 72] = sig.signature.as_slice().try_into().map_err(|_| bad())?;
        let timestamp = u64::from_be_bytes(payload[..8].try_into().expect("8 bytes"));
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::BadTimestamp {
                name: self.name.clone(),
                timestamp,
            });
        }
        let signature = ed25519_dalek::Signature::from_bytes(payload[8..].try_into().expect("64 bytes"));
        self.key
            .verify_strict(&signed_message(checkpoint_text, timestamp), &signature)
            .map_err(|_| bad())?;
        Ok(timestamp)
    }
}

impl fmt::Display for CosignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = vec![COSIGNATURE_V1_TYPE];
        raw.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, B64.encode(raw))
    }
}

impl fmt::Debug for CosignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CosignerKey({self})")
    }
}

/// A witness's private key, stored as
/// `PRIVATE+KEY+<name>+<hex id>+<base64(0x04 || 32-byte seed)>` (the
/// signed-note private key form with the cosignature type byte).
#[derive(Clone)]
pub struct Cosigner {
    verifier: CosignerKey,
    key: SigningKey,
}

impl Cosigner {
    /// A cosigner for `key` under `name`.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, CosignatureError> {
        Ok(Self {
            verifier: CosignerKey::new(name, key.verifying_key())?,
            key,
        })
    }

    /// Parses the private key text form.
    pub fn parse(text: &str) -> Result<Self, CosignatureError> {
        let bad = |reason| CosignatureError::BadKey { reason };
        let rest = text
            .trim_end_matches('\n')
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(bad("missing PRIVATE+KEY+ prefix"))?;
        let (name, id, seed) = parse_key_text(rest, COSIGNATURE_V1_TYPE).map_err(bad)?;
        let cosigner = Self::new(name, SigningKey::from_bytes(&seed))?;
        if cosigner.verifier.id != id {
            return Err(bad("key id does not match the key"));
        }
        Ok(cosigner)
    }

    /// The private key text form. Secret: write it only to a 0600 file.
    pub fn to_private_text(&self) -> String {
        let mut raw = vec![COSIGNATURE_V1_TYPE];
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.verifier.name,
            self.verifier.id,
            B64.encode(raw)
        )
    }

    /// The public key.
    pub fn verifier(&self) -> &CosignerKey {
        &self.verifier
    }

    /// Cosigns `checkpoint_text` (a checkpoint body ending in a newline) at
    /// `timestamp` (POSIX seconds, at most 2^63 - 1).
    pub fn cosign(&self, checkpoint_text: &str, timestamp: u64) -> NoteSignature {
        debug_assert!(checkpoint_text.ends_with('\n') && timestamp <= MAX_TIMESTAMP);
        let sig = self.key.sign(&signed_message(checkpoint_text, timestamp));
        let mut payload = timestamp.to_be_bytes().to_vec();
        payload.extend_from_slice(&sig.to_bytes());
        NoteSignature {
            name: self.verifier.name.clone(),
            id: self.verifier.id,
            signature: payload,
        }
    }
}

impl fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cosigner({}, <secret>)", self.verifier)
    }
}

/// A verifier's trust in witnesses: these keys, and how many of them must
/// have cosigned a checkpoint before it is believed to be the one everyone
/// sees (c2sp.org/tlog-cosignature, "Log clients can verify a quorum of
/// cosignatures to prevent split-view attacks").
#[derive(Debug, Clone)]
pub struct WitnessPolicy {
    keys: Vec<CosignerKey>,
    threshold: usize,
}

/// Why a checkpoint does not meet a [`WitnessPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessPolicyError {
    /// Fewer valid cosignatures than the threshold.
    #[error(
        "the checkpoint of size {size} carries {found} of the {threshold} witness cosignature(s) required; \
         missing: {}", missing.join(", ")
    )]
    NotEnough {
        /// The checkpoint's size.
        size: u64,
        /// Valid cosignatures by trusted witnesses.
        found: usize,
        /// Needed.
        threshold: usize,
        /// Names of the trusted witnesses without a cosignature on it.
        missing: Vec<String>,
    },
    /// A trusted witness's line does not verify.
    #[error(transparent)]
    Bad(#[from] CosignatureError),
}

impl WitnessPolicy {
    /// Trust `keys`, needing `threshold` of them (1 to `keys.len()`). One
    /// witness given twice (the same name and id, or the same public key)
    /// is refused: it would count twice towards the threshold.
    pub fn new(keys: Vec<CosignerKey>, threshold: usize) -> Result<Self, String> {
        for (i, a) in keys.iter().enumerate() {
            if let Some(b) = keys[..i]
                .iter()
                .find(|b| (b.name == a.name && b.id == a.id) || b.key == a.key)
            {
                return Err(format!(
                    "witness keys {a} and {b} are the same witness: each must be a different witness, \
                     or one would count twice"
                ));
            }
        }
        if threshold == 0 || threshold > keys.len() {
            return Err(format!(
                "a witness threshold of {threshold} needs between 1 and {} witness keys",
                keys.len()
            ));
        }
        Ok(Self { keys, threshold })
    }

    /// How many cosignatures a checkpoint needs.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Checks the cosignatures on `note` (a checkpoint of `size`); returns
    /// each trusted witness that cosigned, with its timestamp.
    pub fn check(&self, note: &Note, size: u64) -> Result<Vec<(String, u64)>, WitnessPolicyError> {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for key in &self.keys {
            match key.verify(note)? {
                Some(ts) => found.push((key.name().to_owned(), ts)),
                None => missing.push(key.name().to_owned()),
            }
        }
        if found.len() < self.threshold {
            return Err(WitnessPolicyError::NotEnough {
                size,
                found: found.len(),
                threshold: self.threshold,
                missing,
            });
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::NoteSigner;

    fn witness(seed: u8) -> Cosigner {
        Cosigner::new("witness.example/w1", SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    fn cosigned(w: &Cosigner, ts: u64) -> Note {
        let log = NoteSigner::new("log.example", SigningKey::from_bytes(&[9; 32])).unwrap();
        let text = "log.example\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let mut note = Note::parse(log.sign(text).as_bytes()).unwrap();
        note.put_signature(w.cosign(text, ts)).unwrap();
        note
    }

    #[test]
    fn cosign_and_verify_round_trip_through_text() {
        let w = witness(1);
        let note = cosigned(&w, 1_700_000_000);
        let reparsed = Note::parse(note.to_text().as_bytes()).unwrap();
        let key = CosignerKey::parse(&w.verifier().to_string()).unwrap();
        assert_eq!(key.verify(&reparsed).unwrap(), Some(1_700_000_000));
        assert_eq!(Cosigner::parse(&w.to_private_text()).unwrap().verifier(), w.verifier());
    }

    #[test]
    fn absent_is_none_and_a_bad_line_of_the_key_fails() {
        let note = cosigned(&witness(1), 5);
        let other = Cosigner::new("witness.example/w2", SigningKey::from_bytes(&[2; 32])).unwrap();
        assert_eq!(other.verifier().verify(&note).unwrap(), None);
        // The same key under the note key type (0x01) is a different id.
        let text = note.to_text().replacen("\n3\n", "\n4\n", 1);
        let tampered = Note::parse(text.as_bytes()).unwrap();
        assert!(matches!(
            witness(1).verifier().verify(&tampered),
            Err(CosignatureError::BadSignature { .. })
        ));
    }

    #[test]
    fn a_policy_counts_trusted_cosignatures_and_names_the_missing() {
        let (w1, w2) = (witness(1), witness(2));
        let w2 = Cosigner::new("witness.example/w2", w2.key).unwrap();
        let note = cosigned(&w1, 7);
        let both = WitnessPolicy::new(vec![w1.verifier().clone(), w2.verifier().clone()], 2).unwrap();
        match both.check(&note, 3) {
            Err(WitnessPolicyError::NotEnough { found: 1, missing, .. }) => {
                assert_eq!(missing, ["witness.example/w2"])
            }
            other => panic!("{other:?}"),
        }
        let one = WitnessPolicy::new(vec![w1.verifier().clone(), w2.verifier().clone()], 1).unwrap();
        assert_eq!(one.check(&note, 3).unwrap(), [("witness.example/w1".to_owned(), 7)]);
        assert!(WitnessPolicy::new(vec![w1.verifier().clone()], 2).is_err());
        // One witness twice, or one key under two names, is one witness.
        let same = vec![w1.verifier().clone(), w1.verifier().clone()];
        assert!(WitnessPolicy::new(same, 2).is_err());
        let renamed = Cosigner::new("witness.example/other", witness(1).key).unwrap();
        assert!(WitnessPolicy::new(vec![w1.verifier().clone(), renamed.verifier().clone()], 1).is_err());
    }

    #[test]
    fn malformed_keys_are_rejected() {
        let good = witness(3).verifier().to_string();
        for bad in [
            good.replacen("+", "+0", 1),
            good.replace("witness.example/w1", "witness.example/w2"),
            {
                let (head, key) = good.rsplit_once('+').unwrap();
                let mut raw = B64.decode(key).unwrap();
                raw[0] = 0x01;
                format!("{head}+{}", B64.encode(raw))
            },
            "no-plus".to_owned(),
        ] {
            assert!(CosignerKey::parse(&bad).is_err(), "accepted {bad}");
        }
        // A signed-note (0x01) vkey is not a cosigner key.
        let log = NoteSigner::new("witness.example/w1", SigningKey::from_bytes(&[3; 32])).unwrap();
        assert!(CosignerKey::parse(&log.verifier().to_string()).is_err());
    }
}
