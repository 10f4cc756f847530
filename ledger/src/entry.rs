//! The ledger's entries: versioned, canonical CBOR records (RFC 8949 §4.2.1
//! core deterministic encoding). `spec/ledger.md` holds the CDDL and examples.
//!
//! Every entry is a CBOR map with `"v": 1` and a `"kind"`. Decoding is strict:
//! unknown versions, kinds or fields, wrong types, trailing bytes and any
//! non-canonical encoding (long-form integers, indefinite lengths, unsorted or
//! duplicate keys) are rejected — an entry decodes only if re-encoding it
//! gives back exactly the same bytes.

use crate::tile::MAX_ENTRY_BYTES;
use ciborium::value::Value;
use std::fmt;

/// The entry format version this code reads and writes.
pub const ENTRY_VERSION: u64 = 1;
/// Most reasons, evidence digests or signers in one decision.
pub const MAX_LIST_LEN: usize = 256;
/// Longest text field (repository names, reasons, identities).
pub const MAX_TEXT_LEN: usize = 4096;

/// Why bytes are not a valid entry, or an entry cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Larger than a tlog-tiles bundle can carry.
    #[error("entry is {len} bytes, over the {MAX_ENTRY_BYTES}-byte limit")]
    TooLarge {
        /// Its size.
        len: usize,
    },
    /// Not a single well-formed CBOR item.
    #[error("entry is not well-formed CBOR")]
    NotCbor,
    /// A version other than [`ENTRY_VERSION`].
    #[error("entry version {0} is not supported (this build reads version {ENTRY_VERSION})")]
    UnsupportedVersion(u64),
    /// An unknown `kind`.
    #[error("entry kind {0:?} is unknown")]
    UnknownKind(String),
    /// A field is missing, unknown, of the wrong type, or out of bounds.
    #[error("entry field {field:?} is {problem}")]
    BadField {
        /// The field's key.
        field: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// Decodes, but is not the canonical encoding of what it decodes to
    /// (includes trailing bytes, duplicate keys and unknown fields).
    #[error("entry is not canonically encoded")]
    NotCanonical,
}

fn bad(field: &str, problem: &'static str) -> EntryError {
    EntryError::BadField {
        field: field.to_owned(),
        problem,
    }
}

/// A content digest as OCI writes it, `<algorithm>:<hex>`, limited to the
/// algorithms vouch accepts: sha256, sha512 and blake3.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<64 hex>`, `sha512:<128 hex>` or `blake3:<64 hex>`, lowercase.
    pub fn parse(text: &str) -> Option<Digest> {
        let (alg, hex) = text.split_once(':')?;
        let want = match alg {
            "sha256" | "blake3" => 64,
            "sha512" => 128,
            _ => return None,
        };
        let ok = hex.len() == want && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| Digest(text.to_owned()))
    }

    /// The digest text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The algorithm: `sha256`, `sha512` or `blake3`.
    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').expect("parsed digests have a colon").0
    }

    /// The hex-encoded hash after the colon.
    pub fn encoded(&self) -> &str {
        self.0.split_once(':').expect("parsed digests have a colon").1
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

/// The outcome of an admission evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Served as admitted content.
    Admit,
    /// Quarantined.
    Deny,
}

/// A policy version was published; decisions refer to it by digest and index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEntry {
    /// Policy name.
    pub name: String,
    /// Policy version, increasing per name.
    pub version: u64,
    /// Digest of the canonical policy document.
    pub digest: Digest,
}

/// An admission decision about one manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionEntry {
    /// Repository name.
    pub repo: String,
    /// Manifest digest.
    pub digest: Digest,
    /// Manifest media type.
    pub media_type: String,
    /// Admit or deny.
    pub verdict: Verdict,
    /// Why (for a deny, the failures; for an admit, any warnings).
    pub reasons: Vec<String>,
    /// Digests of the evidence used (signature and attestation manifests).
    pub evidence: Vec<Digest>,
    /// Signer identities that verified (key fingerprints, certificate subjects).
    pub signers: Vec<String>,
    /// Digest of the policy applied.
    pub policy: Digest,
    /// Ledger index of that policy's entry.
    pub policy_index: u64,
    /// Decision time, seconds since the Unix epoch.
    pub time: u64,
}

/// A tag was set or moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagEntry {
    /// Repository name.
    pub repo: String,
    /// Tag name.
    pub tag: String,
    /// Digest the tag now points to.
    pub digest: Digest,
    /// Digest it pointed to before, if any.
    pub previous: Option<Digest>,
}

/// A manifest or a tag was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteEntry {
    /// Repository name.
    pub repo: String,
    /// Digest deleted, or that the deleted tag pointed to.
    pub digest: Digest,
    /// The tag deleted; `None` when the manifest itself was deleted.
    pub tag: Option<String>,
}

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// `kind = "policy"`.
    Policy(PolicyEntry),
    /// `kind = "decision"`.
    Decision(DecisionEntry),
    /// `kind = "tag"`.
    Tag(TagEntry),
    /// `kind = "delete"`.
    Delete(DeleteEntry),
}

impl Entry {
    /// The canonical encoding. Fails only if a field breaks the format's bounds.
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        let mut out = Vec::new();
        ciborium::into_writer(&self.to_value()?, &mut out).expect("writing to a Vec");
        if out.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::TooLarge { len: out.len() });
        }
        Ok(out)
    }

    /// Decodes and validates; see the module docs for what is rejected.
    pub fn decode(bytes: &[u8]) -> Result<Entry, EntryError> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::TooLarge { len: bytes.len() });
        }
        let mut reader = bytes;
        let value: Value = ciborium::from_reader(&mut reader).map_err(|_| EntryError::NotCbor)?;
        if !reader.is_empty() {
            return Err(EntryError::NotCanonical);
        }
        let entry = Fields::new(value)?.into_entry()?;
        if entry.encode()? != bytes {
            return Err(EntryError::NotCanonical);
        }
        Ok(entry)
    }

    fn to_value(&self) -> Result<Value, EntryError> {
        let mut m = MapBuilder::default();
        m.uint("v", ENTRY_VERSION);
        match self {
            Entry::Policy(p) => {
                m.text("kind", "policy")?;
                m.text("name", &p.name)?;
                m.uint("version", p.version);
                m.digest("digest", &p.digest);
            }
            Entry::Decision(d) => {
                m.text("kind", "decision")?;
                m.text("repo", &d.repo)?;
                m.digest("digest", &d.digest);
                m.text("media_type", &d.media_type)?;
                m.text(
                    "decision",
                    match d.verdict {
                        Verdict::Admit => "admit",
                        Verdict::Deny => "deny",
                    },
                )?;
                m.texts("reasons", d.reasons.iter().map(String::as_str))?;
                m.texts("evidence", d.evidence.iter().map(Digest::as_str))?;
                m.texts("signers", d.signers.iter().map(String::as_str))?;
                m.digest("policy", &d.policy);
                m.uint("policy_index", d.policy_index);
                m.uint("time", d.time);
            }
            Entry::Tag(t) => {
                m.text("kind", "tag")?;
                m.text("repo", &t.repo)?;
                check_tag("tag", &t.tag)?;
                m.text("tag", &t.tag)?;
                m.digest("digest", &t.digest);
                m.optional("previous", t.previous.as_ref().map(Digest::as_str))?;
            }
            Entry::Delete(d) => {
                m.text("kind", "delete")?;
                m.text("repo", &d.repo)?;
                m.digest("digest", &d.digest);
                if let Some(tag) = &d.tag {
                    check_tag("tag", tag)?;
                }
                m.optional("tag", d.tag.as_deref())?;
            }
        }
        Ok(m.build())
    }
}

/// Builds a map whose keys are sorted as RFC 8949 §4.2.1 requires: by the
/// bytes of their encoding, i.e. shorter text keys first, then bytewise.
#[derive(Default)]
struct MapBuilder(Vec<(&'static str, Value)>);

impl MapBuilder {
    fn uint(&mut self, key: &'static str, v: u64) {
        self.0.push((key, Value::Integer(v.into())));
    }
    fn text(&mut self, key: &'static str, v: &str) -> Result<(), EntryError> {
        check_text(key, v)?;
        self.0.push((key, Value::Text(v.to_owned())));
        Ok(())
    }
    fn digest(&mut self, key: &'static str, v: &Digest) {
        self.0.push((key, Value::Text(v.0.clone())));
    }
    fn optional(&mut self, key: &'static str, v: Option<&str>) -> Result<(), EntryError> {
        match v {
            Some(v) => self.text(key, v),
            None => {
                self.0.push((key, Value::Null));
                Ok(())
            }
        }
    }
    fn texts<'a>(&mut self, key: &'static str, vs: impl ExactSizeIterator<Item = &'a str>) -> Result<(), EntryError> {
        if vs.len() > MAX_LIST_LEN {
            return Err(bad(key, "a list longer than the limit"));
        }
        let mut items = Vec::with_capacity(vs.len());
        for v in vs {
            check_text(key, v)?;
            items.push(Value::Text(v.to_owned()));
        }
        self.0.push((key, Value::Array(items)));
        Ok(())
    }
    fn build(mut self) -> Value {
        self.0.sort_by(|a, b| (a.0.len(), a.0).cmp(&(b.0.len(), b.0)));
        Value::Map(
            self.0
                .into_iter()
                .map(|(k, v)| (Value::Text(k.to_owned()), v))
                .collect(),
        )
    }
}

fn check_text(field: &str, v: &str) -> Result<(), EntryError> {
    if v.is_empty() {
        return Err(bad(field, "empty"));
    }
    if v.len() > MAX_TEXT_LEN {
        return Err(bad(field, "longer than the limit"));
    }
    Ok(())
}

/// Whether `tag` matches the OCI tag grammar `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`
/// (distribution-spec, "Pulling manifests"). The registry parses tags with it too.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

fn check_tag(field: &str, tag: &str) -> Result<(), EntryError> {
    if is_valid_tag(tag) {
        Ok(())
    } else {
        Err(bad(field, "not a valid OCI tag"))
    }
}

/// The fields of a decoded map, taken out one by one; whatever is left over
/// makes the re-encoding differ, so unknown fields are rejected by the
/// canonical check.
struct Fields(Vec<(Value, Value)>);

impl Fields {
    fn new(value: Value) -> Result<Self, EntryError> {
        match value {
            Value::Map(m) => Ok(Fields(m)),
            _ => Err(EntryError::NotCbor),
        }
    }

    fn take(&mut self, key: &str) -> Result<Value, EntryError> {
        let at = self.0.iter().position(|(k, _)| k.as_text() == Some(key));
        at.map(|i| self.0.remove(i).1).ok_or_else(|| bad(key, "missing"))
    }

    fn uint(&mut self, key: &str) -> Result<u64, EntryError> {
        match self.take(key)? {
            Value::Integer(i) => u64::try_from(i).map_err(|_| bad(key, "not an unsigned integer")),
            _ => Err(bad(key, "not an unsigned integer")),
        }
    }

    fn text(&mut self, key: &str) -> Result<String, EntryError> {
        match self.take(key)? {
            Value::Text(t) => {
                check_text(key, &t)?;
                Ok(t)
            }
            _ => Err(bad(key, "not a text string")),
        }
    }

    fn optional_text(&mut self, key: &str) -> Result<Option<String>, EntryError> {
        match self.take(key)? {
            Value::Null => Ok(None),
            Value::Text(t) => {
                check_text(key, &t)?;
                Ok(Some(t))
            }
            _ => Err(bad(key, "neither null nor a text string")),
        }
    }

    fn digest(&mut self, key: &str) -> Result<Digest, EntryError> {
        let t = self.text(key)?;
        Digest::parse(&t).ok_or_else(|| bad(key, "not a sha256, sha512 or blake3 digest"))
    }

    fn texts(&mut self, key: &str) -> Result<Vec<String>, EntryError> {
        let Value::Array(items) = self.take(key)? else {
            return Err(bad(key, "not an array"));
        };
        if items.len() > MAX_LIST_LEN {
            return Err(bad(key, "a list longer than the limit"));
        }
        items
            .into_iter()
            .map(|v| match v {
                Value::Text(t) => check_text(key, &t).map(|()| t),
                _ => Err(bad(key, "not an array of text strings")),
            })
            .collect()
    }

    fn into_entry(mut self) -> Result<Entry, EntryError> {
        let version = self.uint("v")?;
        if version != ENTRY_VERSION {
            return Err(EntryError::UnsupportedVersion(version));
        }
        let kind = self.text("kind")?;
        let entry = match kind.as_str() {
            "policy" => Entry::Policy(PolicyEntry {
                name: self.text("name")?,
                version: self.uint("version")?,
                digest: self.digest("digest")?,
            }),
            "decision" => Entry::Decision(DecisionEntry {
                repo: self.text("repo")?,
                digest: self.digest("digest")?,
                media_type: self.text("media_type")?,
                verdict: match self.text("decision")?.as_str() {
                    "admit" => Verdict::Admit,
                    "deny" => Verdict::Deny,
                    _ => return Err(bad("decision", "neither \"admit\" nor \"deny\"")),
                },
                reasons: self.texts("reasons")?,
                evidence: self
                    .texts("evidence")?
                    .iter()
                    .map(|t| Digest::parse(t).ok_or_else(|| bad("evidence", "not a list of digests")))
                    .collect::<Result<_, _>>()?,
                signers: self.texts("signers")?,
                policy: self.digest("policy")?,
                policy_index: self.uint("policy_index")?,
                time: self.uint("time")?,
            }),
            "tag" => Entry::Tag(TagEntry {
                repo: self.text("repo")?,
                tag: self.text("tag")?,
                digest: self.digest("digest")?,
                previous: self
                    .optional_text("previous")?
                    .map(|t| Digest::parse(&t).ok_or_else(|| bad("previous", "not a digest")))
                    .transpose()?,
            }),
            "delete" => Entry::Delete(DeleteEntry {
                repo: self.text("repo")?,
                digest: self.digest("digest")?,
                tag: self.optional_text("tag")?,
            }),
            _ => return Err(EntryError::UnknownKind(kind)),
        };
        if let Some((k, _)) = self.0.first() {
            let field = k.as_text().unwrap_or("<non-text key>").to_owned();
            return Err(EntryError::BadField {
                field,
                problem: "not a field of this kind",
            });
        }
        Ok(entry)
    }
}
