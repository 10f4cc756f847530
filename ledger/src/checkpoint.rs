//! Checkpoints, c2sp.org/tlog-checkpoint: the signed statement of a log's size
//! and root hash.
//!
//! ```text
//! <origin>\n
//! <tree size, decimal>\n
//! <root hash, base64>\n
//! [<extension line>\n ...]
//! ```

use crate::hash::Hash;
use crate::note::{Note, NoteError, VerifierKey};

/// Most extension lines accepted after the root hash.
pub const MAX_EXTENSION_LINES: usize = 16;

/// A checkpoint body: origin, size and root, plus opaque extension lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line; by convention its key name.
    pub origin: String,
    /// Number of entries in the tree.
    pub size: u64,
    /// Root hash of the tree of `size` entries.
    pub root: Hash,
    /// Optional extension lines (each non-empty).
    pub extensions: Vec<String>,
}

/// Why a checkpoint was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The signed note around it is bad or not signed by the expected key.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The body does not follow c2sp.org/tlog-checkpoint.
    #[error("checkpoint {field} is malformed")]
    Malformed {
        /// Which line: origin, size, root or extension.
        field: &'static str,
    },
    /// The origin is not the one expected (the verifier key's name).
    #[error("checkpoint origin is {found:?}, expected {expected:?}")]
    WrongOrigin {
        /// Origin in the checkpoint.
        found: String,
        /// Origin expected.
        expected: String,
    },
}

impl Checkpoint {
    /// The canonical body text, ending in a newline.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}\n{}\n{}\n", self.origin, self.size, self.root.to_base64());
        for ext in &self.extensions {
            out.push_str(ext);
            out.push('\n');
        }
        out
    }

    /// Parses a body canonically: the result prints back to the same text.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let bad = |field| CheckpointError::Malformed { field };
        let body = text.strip_suffix('\n').ok_or(bad("final newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|l| !l.is_empty()).ok_or(bad("origin"))?;
        let size = lines.next().and_then(parse_decimal).ok_or(bad("size"))?;
        let root = lines.next().and_then(Hash::from_base64).ok_or(bad("root"))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.len() > MAX_EXTENSION_LINES || extensions.iter().any(String::is_empty) {
            return Err(bad("extension"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// Parses a signed checkpoint note, checks it is signed by `key`, and that
    /// its origin is the key's name.
    pub fn open(note: &[u8], key: &VerifierKey) -> Result<Self, CheckpointError> {
        let note = Note::parse(note)?;
        let checkpoint = Self::parse(key.open(&note)?)?;
        if checkpoint.origin != key.name() {
            return Err(CheckpointError::WrongOrigin {
                found: checkpoint.origin,
                expected: key.name().to_owned(),
            });
        }
        Ok(checkpoint)
    }
}

/// A decimal `u64` with no sign, no leading zeros and no other characters.
pub(crate) fn parse_decimal(text: &str) -> Option<u64> {
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    #[test]
    fn text_round_trip_and_rejections() {
        let c = Checkpoint {
            origin: "o.example/log".into(),
            size: 12,
            root: leaf_hash(b"r"),
            extensions: vec![],
        };
        let text = c.to_text();
        assert_eq!(Checkpoint::parse(&text).unwrap(), c);
        let root = c.root.to_base64();
        for bad in [
            format!("o.example/log\n012\n{root}\n"),
            format!("o.example/log\n+12\n{root}\n"),
            format!("o.example/log\n12\n{root}"),
            format!("\n12\n{root}\n"),
            format!("o.example/log\n12\n{}\n", &root[..root.len() - 1]),
            format!("o.example/log\n12\n{root}\n\n"),
            format!("o.example/log\n18446744073709551616\n{root}\n"),
        ] {
            assert!(Checkpoint::parse(&bad).is_err(), "accepted {bad:?}");
        }
    }
}
