//! Signed notes, c2sp.org/signed-note, with Ed25519 keys (signature type 0x01).
//!
//! The parser is canonical and size-capped: a note either parses to exactly
//! the bytes it came from, or is rejected with the reason.

use base64::{engine::general_purpose::STANDARD as B64, Engine as _};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};
use std::fmt;

/// Largest signed note this crate will parse (text plus signatures).
pub const MAX_NOTE_BYTES: usize = 64 * 1024;
/// Most signature lines accepted in one note; the spec asks for at least 16.
pub const MAX_SIGNATURES: usize = 100;
/// Signature type byte for Ed25519, c2sp.org/signed-note §"Signature types".
const ED25519_TYPE: u8 = 0x01;

/// Why a note, key or signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note is larger than [`MAX_NOTE_BYTES`].
    #[error("note is {len} bytes, over the {MAX_NOTE_BYTES}-byte limit")]
    TooLarge {
        /// Size received.
        len: usize,
    },
    /// Not UTF-8, or holds a control character other than newline.
    #[error("note is not UTF-8 text free of control characters (byte offset {offset})")]
    BadText {
        /// First offending byte offset.
        offset: usize,
    },
    /// No blank line separates text from signatures, or the text is empty.
    #[error("note has no text followed by a blank line and signature lines")]
    Malformed,
    /// A signature line is not `— <name> <base64>`.
    #[error("signature line {line} is malformed")]
    BadSignatureLine {
        /// 1-based line number within the signature block.
        line: usize,
    },
    /// More than [`MAX_SIGNATURES`] signatures.
    #[error("note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    /// No signature by the trusted key.
    #[error("note is not signed by the key {name}+{id:08x}")]
    NotSignedByKey {
        /// Trusted key name.
        name: String,
        /// Trusted key id.
        id: u32,
    },
    /// A signature by the trusted key's name and id failed to verify.
    #[error("signature by {name}+{id:08x} does not verify")]
    BadSignature {
        /// Key name.
        name: String,
        /// Key id.
        id: u32,
    },
    /// A verifier key text is not `<name>+<hex id>+<base64(0x01 || key)>`.
    #[error("verifier key is malformed: {reason}")]
    BadVerifierKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A signer key text is not `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`.
    #[error("signer key is malformed: {reason}")]
    BadSignerKey {
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Key ID = `SHA-256(name || 0x0A || 0x01 || public key)[:4]`, big-endian,
/// c2sp.org/signed-note §"Ed25519 signatures".
pub fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ED25519_TYPE]);
    h.update(key.as_bytes());
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Key names are non-empty and hold no Unicode space and no `+`.
pub(crate) fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// Parses exactly 8 lowercase hex digits.
pub(crate) fn parse_hex_id(text: &str) -> Option<u32> {
    if text.len() != 8 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

/// Decodes base64 only if it is in the canonical padded form.
pub(crate) fn canonical_b64(text: &str) -> Option<Vec<u8>> {
    let bytes = B64.decode(text).ok()?;
    (B64.encode(&bytes) == text).then_some(bytes)
}

/// `<name>+<hex id>+<base64(type || 32 bytes)>` split and checked: a valid
/// name, 8 lowercase hex digits, canonical base64 of `type` and 32 bytes
/// (a key, or a seed in private key text). The id is the caller's to check.
pub(crate) fn parse_key_text(text: &str, type_byte: u8) -> Result<(&str, u32, [u8; 32]), &'static str> {
    let mut parts = text.trim_end_matches('\n').splitn(3, '+');
    let (name, id, key) = match (parts.next(), parts.next(), parts.next()) {
        (Some(n), Some(i), Some(k)) => (n, i, k),
        _ => return Err("expected <name>+<hex id>+<base64 key>"),
    };
    if !valid_key_name(name) {
        return Err("invalid key name");
    }
    let id = parse_hex_id(id).ok_or("key id is not 8 lowercase hex digits")?;
    let raw = canonical_b64(key).ok_or("key is not canonical base64")?;
    if raw.len() != 33 || raw[0] != type_byte {
        return Err(if type_byte == ED25519_TYPE {
            "key is not 0x01 followed by 32 bytes of an Ed25519 key"
        } else {
            "key is not 0x04 (cosignature/v1) followed by 32 bytes"
        });
    }
    Ok((name, id, raw[1..].try_into().expect("32 bytes")))
}

/// A public Ed25519 note verifier key, `<name>+<hex id>+<base64(0x01 || key)>`.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl VerifierKey {
    /// A verifier for `key` under `name`.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        if !valid_key_name(name) {
            return Err(NoteError::BadVerifierKey {
                reason: "invalid key name",
            });
        }
        Ok(Self {
            name: name.to_owned(),
            id: key_id(name, &key),
            key,
        })
    }

    /// Parses the vkey text form; the id must match the key.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = |reason| NoteError::BadVerifierKey { reason };
        let (name, id, raw) = parse_key_text(text, ED25519_TYPE).map_err(bad)?;
        let key = VerifyingKey::from_bytes(&raw).map_err(|_| bad("not a valid Ed25519 public key"))?;
        if key_id(name, &key) != id {
            return Err(bad("key id does not match the key"));
        }
        Ok(Self {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// The key name (for a log, its origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 32-bit key id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The Ed25519 public key.
    pub fn key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Checks that `note` is signed by this key and returns its text.
    ///
    /// Signatures by other keys are ignored; a signature with this key's name
    /// and id that fails makes the whole note fail (c2sp.org/signed-note).
    pub fn open<'n>(&self, note: &'n Note) -> Result<&'n str, NoteError> {
        let mut verified = false;
        for sig in note.signatures() {
            if sig.name != self.name || sig.id != self.id {
                continue;
            }
            let ok = <[u8; 64]>::try_from(sig.signature.as_slice())
                .map(|s| ed25519_dalek::Signature::from_bytes(&s))
                .is_ok_and(|s| self.key.verify_strict(note.text().as_bytes(), &s).is_ok());
            if !ok {
                return Err(NoteError::BadSignature {
                    name: self.name.clone(),
                    id: self.id,
                });
            }
            verified = true;
        }
        if !verified {
            return Err(NoteError::NotSignedByKey {
                name: self.name.clone(),
                id: self.id,
            });
        }
        Ok(note.text())
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = vec![ED25519_TYPE];
        raw.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, B64.encode(raw))
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

/// A private Ed25519 note signer, stored as
/// `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || 32-byte seed)>`.
#[derive(Clone)]
pub struct NoteSigner {
    verifier: VerifierKey,
    key: SigningKey,
}

impl NoteSigner {
    /// A signer for `key` under `name`.
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        let verifier = VerifierKey::new(name, key.verifying_key()).map_err(|_| NoteError::BadSignerKey {
            reason: "invalid key name",
        })?;
        Ok(Self { verifier, key })
    }

    /// Parses the private key text form.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = |reason| NoteError::BadSignerKey { reason };
        let rest = text
            .trim_end_matches('\n')
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(bad("missing PRIVATE+KEY+ prefix"))?;
        let (name, id, seed) = parse_key_text(rest, ED25519_TYPE).map_err(bad)?;
        let signer = Self::new(name, SigningKey::from_bytes(&seed))?;
        if signer.verifier.id != id {
            return Err(bad("key id does not match the key"));
        }
        Ok(signer)
    }

    /// The private key text form. Secret: write it only to a 0600 file.
    pub fn to_private_text(&self) -> String {
        let mut raw = vec![ED25519_TYPE];
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.verifier.name,
            self.verifier.id,
            B64.encode(raw)
        )
    }

    /// The matching public verifier key.
    pub fn verifier(&self) -> &VerifierKey {
        &self.verifier
    }

    /// Signs `text` (which must end in a newline) into a whole signed note.
    pub fn sign(&self, text: &str) -> String {
        debug_assert!(text.ends_with('\n'));
        let sig = self.key.sign(text.as_bytes());
        let mut raw = self.verifier.id.to_be_bytes().to_vec();
        raw.extend_from_slice(&sig.to_bytes());
        format!("{text}\n\u{2014} {} {}\n", self.verifier.name, B64.encode(raw))
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteSigner({}, <secret>)", self.verifier)
    }
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key id (first four bytes of the base64 payload).
    pub id: u32,
    /// The signature bytes after the key id.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The signature line, `— <name> <base64(id || signature)>`, without its
    /// newline.
    pub fn to_line(&self) -> String {
        let mut raw = self.id.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.signature);
        format!("\u{2014} {} {}", self.name, B64.encode(raw))
    }

    /// Parses one signature line (without its newline).
    pub fn parse_line(line: &str) -> Option<Self> {
        parse_signature_line(line)
    }
}

/// A parsed, not yet verified, signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses a signed note canonically. Verification is [`VerifierKey::open`].
    pub fn parse(bytes: &[u8]) -> Result<Self, NoteError> {
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge { len: bytes.len() });
        }
        let all = std::str::from_utf8(bytes).map_err(|e| NoteError::BadText {
            offset: e.valid_up_to(),
        })?;
        if let Some(offset) = all.bytes().position(|b| b < 0x20 && b != b'\n') {
            return Err(NoteError::BadText { offset });
        }
        // The text is separated from the signatures by the last blank line.
        let split = all.rfind("\n\n").ok_or(NoteError::Malformed)?;
        let (text, sigs) = (&all[..=split], &all[split + 2..]);
        if text.len() <= 1 || sigs.is_empty() || !sigs.ends_with('\n') {
            return Err(NoteError::Malformed);
        }
        let mut signatures = Vec::new();
        for (i, line) in sigs[..sigs.len() - 1].split('\n').enumerate() {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            signatures.push(parse_signature_line(line).ok_or(NoteError::BadSignatureLine { line: i + 1 })?);
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The signed text, ending in a newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Adds a signature line unless the note already holds one with the same
    /// name and key id (a newer cosignature replaces an older one).
    pub fn put_signature(&mut self, sig: NoteSignature) -> Result<(), NoteError> {
        if let Some(old) = self
            .signatures
            .iter_mut()
            .find(|s| s.name == sig.name && s.id == sig.id)
        {
            *old = sig;
            return Ok(());
        }
        if self.signatures.len() == MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures);
        }
        self.signatures.push(sig);
        Ok(())
    }

    /// The whole signed note: text, blank line, one line per signature.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}\n", self.text);
        for sig in &self.signatures {
            out.push_str(&sig.to_line());
            out.push('\n');
        }
        out
    }
}

fn parse_signature_line(line: &str) -> Option<NoteSignature> {
    let rest = line.strip_prefix("\u{2014} ")?;
    let (name, b64) = rest.split_once(' ')?;
    if !valid_key_name(name) {
        return None;
    }
    let raw = canonical_b64(b64)?;
    if raw.len() < 5 {
        return None;
    }
    Some(NoteSignature {
        name: name.to_owned(),
        id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
        signature: raw[4..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::new(name, SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    #[test]
    fn sign_parse_open_round_trip() {
        let s = signer("example.com/log", 7);
        let signed = s.sign("hello\nworld\n");
        let note = Note::parse(signed.as_bytes()).unwrap();
        assert_eq!(s.verifier().open(&note).unwrap(), "hello\nworld\n");
    }

    #[test]
    fn keys_round_trip_through_text() {
        let s = signer("example.com/log", 9);
        let v = VerifierKey::parse(&s.verifier().to_string()).unwrap();
        assert_eq!(&v, s.verifier());
        let s2 = NoteSigner::parse(&s.to_private_text()).unwrap();
        assert_eq!(s2.verifier(), s.verifier());
    }

    #[test]
    fn other_keys_are_ignored_but_a_bad_known_signature_fails() {
        let a = signer("a.example/log", 1);
        let b = signer("b.example/log", 2);
        let signed_a = a.sign("text\n");
        let sig_b_line = b.sign("text\n").split_once("\n\n").unwrap().1.to_owned();
        let both = format!("{signed_a}{sig_b_line}");
        let note = Note::parse(both.as_bytes()).unwrap();
        assert!(a.verifier().open(&note).is_ok());
        assert!(b.verifier().open(&note).is_ok());
        let c = signer("c.example/log", 3);
        assert!(matches!(
            c.verifier().open(&note),
            Err(NoteError::NotSignedByKey { .. })
        ));
        // Same name and id as a, different bytes: must fail the note.
        let forged = signed_a.replace("text\n\n", "texT\n\n");
        let note = Note::parse(forged.as_bytes()).unwrap();
        assert!(matches!(a.verifier().open(&note), Err(NoteError::BadSignature { .. })));
    }

    #[test]
    fn malformed_notes_are_rejected() {
        let s = signer("x.example/log", 4);
        let good = s.sign("t\n");
        for bad in [
            "".to_owned(),
            "t\n".to_owned(),
            good.replace('\n', "\r\n"),
            good.trim_end().to_owned(),
            good.replace("\u{2014}", "-"),
            good.replace('=', ""),
            format!("{good}\n"),
        ] {
            assert!(Note::parse(bad.as_bytes()).is_err(), "accepted {bad:?}");
        }
    }
}
