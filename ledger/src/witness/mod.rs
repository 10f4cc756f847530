//! The witness protocol, c2sp.org/tlog-witness `add-checkpoint`, without I/O:
//! the request's wire form, the witness's decision over it, and the client's
//! reading of the answers. The witness server and the log's client wrap these
//! in HTTP and durable state.

use crate::checkpoint::{parse_decimal, Checkpoint};
use crate::hash::Hash;
use crate::note::{Note, NoteError, NoteSignature, VerifierKey};
use crate::proof::verify_consistency;

/// Most consistency proof lines a request may carry (§"add-checkpoint").
pub const MAX_PROOF_LINES: usize = 63;
/// Largest request body accepted: the proof lines plus a signed note.
pub const MAX_REQUEST_BYTES: usize = 64 + MAX_PROOF_LINES * 46 + crate::note::MAX_NOTE_BYTES;
/// Content type of a 409 answer that carries the witness's size.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// A parsed `add-checkpoint` request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the checkpoint the proof starts from.
    pub old: u64,
    /// RFC 6962 §2.1.2 consistency proof from `old` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, as sent.
    pub checkpoint: Vec<u8>,
}

/// Why a witness refuses a request; each maps to the status the spec names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The body does not follow the spec (400).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// No trusted key for the checkpoint's origin (404).
    #[error("unknown log {0:?}")]
    UnknownLog(String),
    /// No signature by a trusted key verifies (403).
    #[error("checkpoint is not signed by a trusted key of {origin:?}: {reason}")]
    NotSigned {
        /// The origin.
        origin: String,
        /// Why.
        reason: String,
    },
    /// The old size is larger than the checkpoint's (400).
    #[error("old size {old} is larger than the checkpoint size {size}")]
    OldAfterNew {
        /// Old size sent.
        old: u64,
        /// Checkpoint size.
        size: u64,
    },
    /// The old size is not the witness's latest (409, with that size).
    #[error("old size {old} is not the latest cosigned size {latest}")]
    SizeMismatch {
        /// Old size sent.
        old: u64,
        /// The witness's latest size for the log.
        latest: u64,
    },
    /// Same size as the latest, different root: a fork (409).
    #[error("checkpoint of size {size} has root {found}, but the witness cosigned root {latest}")]
    Fork {
        /// The size.
        size: u64,
        /// The root offered.
        found: Hash,
        /// The root cosigned before.
        latest: Hash,
    },
    /// The consistency proof does not verify (422).
    #[error("consistency proof from {old} to {size} does not verify: {reason}")]
    BadProof {
        /// Old size.
        old: u64,
        /// Checkpoint size.
        size: u64,
        /// Why.
        reason: String,
    },
}

impl Refusal {
    /// The HTTP status the spec gives this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) | Refusal::OldAfterNew { .. } => 400,
            Refusal::NotSigned { .. } => 403,
            Refusal::UnknownLog(_) => 404,
            Refusal::SizeMismatch { .. } | Refusal::Fork { .. } => 409,
            Refusal::BadProof { .. } => 422,
        }
    }
}

/// What a witness remembers of one log: the latest checkpoint it cosigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Witnessed {
    /// Tree size.
    pub size: u64,
    /// Root hash at that size.
    pub root: Hash,
}

impl AddCheckpoint {
    /// Parses a request body canonically (every line newline-terminated,
    /// decimal without leading zeros, canonical base64).
    pub fn parse(body: &[u8]) -> Result<Self, Refusal> {
        let bad = |what: &str| Refusal::Malformed(what.to_owned());
        if body.len() > MAX_REQUEST_BYTES {
            return Err(bad("request body is too large"));
        }
        let text = std::str::from_utf8(body).map_err(|_| bad("request body is not UTF-8"))?;
        let (head, checkpoint) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(parse_decimal)
            .ok_or_else(|| bad("first line is not `old <size>`"))?;
        let mut proof = Vec::new();
        for line in lines {
            if proof.len() == MAX_PROOF_LINES {
                return Err(bad("more than 63 consistency proof lines"));
            }
            proof.push(Hash::from_base64(line).ok_or_else(|| bad("a proof line is not a base64 hash"))?);
        }
        Ok(Self {
            old,
            proof,
            checkpoint: checkpoint.as_bytes().to_vec(),
        })
    }

    /// The request body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old);
        for h in &self.proof {
            out.push_str(&h.to_base64());
            out.push('\n');
        }
        out.push('\n');
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.checkpoint);
        bytes
    }
}

/// The witness's decision (§"add-checkpoint"), in the spec's order: the
/// checkpoint must be signed by a key `logs` trusts for its origin; `old`
/// must not pass its size and must equal `latest`'s size (or 0 with no
/// record); the same size must have the same root; the proof must verify.
/// On success returns the verified checkpoint and the record to persist
/// (atomically with the check) before any cosignature is returned.
pub fn decide(
    req: &AddCheckpoint,
    logs: &[VerifierKey],
    latest: Option<Witnessed>,
) -> Result<(Checkpoint, Witnessed), Refusal> {
    let (_, checkpoint) = authenticate(req, logs)?;
    let record = check_growth(req, &checkpoint, latest)?;
    Ok((checkpoint, record))
}

/// The checks of [`decide`] that need the record, for a checkpoint that
/// [`authenticate`] accepted: returns the record to persist.
pub fn check_growth(
    req: &AddCheckpoint,
    checkpoint: &Checkpoint,
    latest: Option<Witnessed>,
) -> Result<Witnessed, Refusal> {
    let (old, size) = (req.old, checkpoint.size);
    if old > size {
        return Err(Refusal::OldAfterNew { old, size });
    }
    let latest_size = latest.map_or(0, |w| w.size);
    if old != latest_size {
        return Err(Refusal::SizeMismatch {
            old,
            latest: latest_size,
        });
    }
    if let Some(w) = latest.filter(|w| w.size == size && w.root != checkpoint.root) {
        return Err(Refusal::Fork {
            size,
            found: checkpoint.root,
            latest: w.root,
        });
    }
    let old_root = latest.map_or_else(Hash::empty_tree, |w| w.root);
    // An old size of 0 has nothing to be consistent with: the proof must be
    // empty (§"add-checkpoint"), and any root of the first checkpoint goes.
    let proof_result = if old == 0 {
        if req.proof.is_empty() {
            Ok(())
        } else {
            Err("a proof from size 0 must be empty".to_owned())
        }
    } else {
        verify_consistency(old, size, &req.proof, &old_root, &checkpoint.root).map_err(|e| e.to_string())
    };
    proof_result.map_err(|reason| Refusal::BadProof { old, size, reason })?;
    Ok(Witnessed {
        size,
        root: checkpoint.root,
    })
}

/// The first checks of [`decide`], which need no record: the checkpoint
/// parses, its origin is a trusted log (404 otherwise) and a trusted key
/// signs it (403 otherwise). A witness runs these before charging a log's
/// rate limit or taking its lock, so unsigned requests cost a log nothing.
/// Returns the signed text and the checkpoint. A log is trusted under the
/// origin that is its key's name (c2sp.org/tlog-checkpoint: the origin
/// "should" be the key name; here it must).
pub fn authenticate(req: &AddCheckpoint, logs: &[VerifierKey]) -> Result<(String, Checkpoint), Refusal> {
    let note = Note::parse(&req.checkpoint).map_err(|e| Refusal::Malformed(format!("checkpoint note: {e}")))?;
    let checkpoint = Checkpoint::parse(note.text()).map_err(|e| Refusal::Malformed(format!("checkpoint: {e}")))?;
    let keys: Vec<&VerifierKey> = logs.iter().filter(|k| k.name() == checkpoint.origin).collect();
    if keys.is_empty() {
        return Err(Refusal::UnknownLog(checkpoint.origin));
    }
    check_log_signature(&note, &keys).map_err(|reason| Refusal::NotSigned {
        origin: checkpoint.origin.clone(),
        reason,
    })?;
    Ok((note.text().to_owned(), checkpoint))
}

/// At least one trusted key signs the note, and no trusted key's line fails.
fn check_log_signature(note: &Note, keys: &[&VerifierKey]) -> Result<(), String> {
    let mut verified = false;
    let mut last = String::from("no signature line by a trusted key");
    for key in keys {
        match key.open(note) {
            Ok(_) => verified = true,
            Err(e @ NoteError::BadSignature { .. }) => return Err(e.to_string()),
            Err(e) => last = e.to_string(),
        }
    }
    if verified {
        Ok(())
    } else {
        Err(last)
    }
}

/// Reads a 409 answer's body, `<size>\n`.
pub fn parse_size_body(body: &[u8]) -> Option<u64> {
    std::str::from_utf8(body)
        .ok()?
        .strip_suffix('\n')
        .and_then(parse_decimal)
}

/// Reads a 200 answer's body: one or more note signature lines.
pub fn parse_cosignature_lines(body: &[u8]) -> Option<Vec<NoteSignature>> {
    let text = std::str::from_utf8(body).ok()?.strip_suffix('\n')?;
    let lines: Option<Vec<_>> = text.split('\n').map(NoteSignature::parse_line).collect();
    lines.filter(|l| !l.is_empty() && l.len() <= crate::note::MAX_SIGNATURES)
}

#[cfg(test)]
mod tests;
