//! The manifest record: what `reg_manifests` holds for each stored manifest
//! (spec/storage-layout.md, "The manifest record").
//!
//! ```text
//! version 2 (written):
//!   0x02 || state || evidence kind || flags
//!        || u16 BE length || media type
//!        || u8 length || evidence subject digest (empty unless evidence)
//!        || the manifest's exact bytes
//! version 1 (read only, from before evidence was recognised by structure):
//!   0x01 || state || u16 BE length || media type || bytes
//! ```
//!
//! state: 0 pending, 1 admitted, 2 denied, 3 evidence. evidence kind: 0 none,
//! 1 cosign signature, 2 cosign attestation, 3 Sigstore bundle, 4 admission
//! bundle. flags: bit 0, the evidence carries vouch's own countersignature;
//! bit 1, vouch wrote it. A version-1 record in state 3 has no subject: it
//! was called evidence for its tag's name, which proves nothing, so it is
//! classified again at the first start of a version that writes version 2
//! and is never served before that.

use super::super::error::RegistryError;
use vouch_ledger::entry::Digest;

/// The record version this code writes.
pub const RECORD_VERSION: u8 = 2;

/// A manifest's admission state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmissionState {
    /// Stored, not yet decided.
    Pending,
    /// Admitted under the policy.
    Admitted,
    /// Denied: quarantined.
    Denied,
    /// Evidence about another manifest, recognised by its structure
    /// ([`Evidence`]); never decided itself.
    Evidence,
}

impl AdmissionState {
    /// The name used on the wire (`Vouch-Admission-State`).
    pub fn as_str(self) -> &'static str {
        match self {
            AdmissionState::Pending => "pending",
            AdmissionState::Admitted => "admitted",
            AdmissionState::Denied => "denied",
            AdmissionState::Evidence => "evidence",
        }
    }

    fn byte(self) -> u8 {
        match self {
            AdmissionState::Pending => 0,
            AdmissionState::Admitted => 1,
            AdmissionState::Denied => 2,
            AdmissionState::Evidence => 3,
        }
    }

    fn from_byte(b: u8) -> Option<AdmissionState> {
        Some(match b {
            0 => AdmissionState::Pending,
            1 => AdmissionState::Admitted,
            2 => AdmissionState::Denied,
            3 => AdmissionState::Evidence,
            _ => return None,
        })
    }
}

/// What kind of evidence a manifest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EvidenceKind {
    /// A cosign signature manifest (simple signing payload layers).
    CosignSignature,
    /// A cosign attestation manifest (DSSE envelope layers).
    CosignAttestation,
    /// A Sigstore bundle referrer.
    SigstoreBundle,
    /// vouch's admission bundle referrer.
    AdmissionBundle,
    /// A Notary Project (Notation) signature referrer.
    NotationSignature,
}

impl EvidenceKind {
    fn byte(self) -> u8 {
        match self {
            EvidenceKind::CosignSignature => 1,
            EvidenceKind::CosignAttestation => 2,
            EvidenceKind::SigstoreBundle => 3,
            EvidenceKind::AdmissionBundle => 4,
            EvidenceKind::NotationSignature => 5,
        }
    }

    fn from_byte(b: u8) -> Option<EvidenceKind> {
        Some(match b {
            1 => EvidenceKind::CosignSignature,
            2 => EvidenceKind::CosignAttestation,
            3 => EvidenceKind::SigstoreBundle,
            4 => EvidenceKind::AdmissionBundle,
            5 => EvidenceKind::NotationSignature,
            _ => return None,
        })
    }

    /// Its name in decisions and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::CosignSignature => "cosign signature",
            EvidenceKind::CosignAttestation => "cosign attestation",
            EvidenceKind::SigstoreBundle => "Sigstore bundle",
            EvidenceKind::AdmissionBundle => "admission bundle",
            EvidenceKind::NotationSignature => "Notation signature",
        }
    }
}

/// What a manifest recognised as evidence is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// Its kind.
    pub kind: EvidenceKind,
    /// The manifest it is about, in the same repository.
    pub subject: Digest,
    /// It carries a signature by vouch's admission key (a countersignature):
    /// served only while its subject is admitted.
    pub countersigned: bool,
    /// vouch wrote it (its countersignature manifest, its admission bundle).
    pub own: bool,
}

/// A stored manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRecord {
    /// Admission state.
    pub state: AdmissionState,
    /// Its media type, as pushed.
    pub media_type: String,
    /// Its exact bytes, as pushed.
    pub bytes: Vec<u8>,
    /// What it is evidence about, when `state` is `Evidence` and it was
    /// classified by structure (always, for records of version 2).
    pub evidence: Option<Evidence>,
    /// The record version it was read from (written records are version 2).
    pub version: u8,
}

impl ManifestRecord {
    /// A new record (version 2).
    pub fn new(state: AdmissionState, media_type: &str, bytes: &[u8], evidence: Option<Evidence>) -> ManifestRecord {
        ManifestRecord {
            state,
            media_type: media_type.to_owned(),
            bytes: bytes.to_vec(),
            evidence,
            version: RECORD_VERSION,
        }
    }

    /// The record's bytes (version 2).
    pub fn encode(&self) -> Result<Vec<u8>, RegistryError> {
        let mt = self.media_type.as_bytes();
        let mt_len =
            u16::try_from(mt.len()).map_err(|_| RegistryError::ManifestInvalid("media type is too long".into()))?;
        let (kind, flags, subject) = match &self.evidence {
            None => (0, 0, ""),
            Some(e) => (
                e.kind.byte(),
                u8::from(e.countersigned) | (u8::from(e.own) << 1),
                e.subject.as_str(),
            ),
        };
        let subject_len = u8::try_from(subject.len()).expect("a digest is at most 135 characters");
        let mut out = Vec::with_capacity(8 + mt.len() + subject.len() + self.bytes.len());
        out.extend_from_slice(&[RECORD_VERSION, self.state.byte(), kind, flags]);
        out.extend_from_slice(&mt_len.to_be_bytes());
        out.extend_from_slice(mt);
        out.push(subject_len);
        out.extend_from_slice(subject.as_bytes());
        out.extend_from_slice(&self.bytes);
        Ok(out)
    }

    /// Reads a record of version 1 or 2; `None` if it is corrupt.
    pub fn decode(v: &[u8]) -> Option<ManifestRecord> {
        match *v.first()? {
            1 => {
                let state = AdmissionState::from_byte(*v.get(1)?)?;
                let len = usize::from(u16::from_be_bytes([*v.get(2)?, *v.get(3)?]));
                let media_type = std::str::from_utf8(v.get(4..4 + len)?).ok()?.to_owned();
                Some(ManifestRecord {
                    state,
                    media_type,
                    bytes: v[4 + len..].to_vec(),
                    evidence: None,
                    version: 1,
                })
            }
            2 => {
                let state = AdmissionState::from_byte(*v.get(1)?)?;
                let (kind, flags) = (*v.get(2)?, *v.get(3)?);
                let len = usize::from(u16::from_be_bytes([*v.get(4)?, *v.get(5)?]));
                let media_type = std::str::from_utf8(v.get(6..6 + len)?).ok()?.to_owned();
                let at = 6 + len;
                let subject_len = usize::from(*v.get(at)?);
                let subject = std::str::from_utf8(v.get(at + 1..at + 1 + subject_len)?).ok()?;
                let evidence = match kind {
                    0 if subject.is_empty() && flags == 0 => None,
                    0 => return None,
                    k => Some(Evidence {
                        kind: EvidenceKind::from_byte(k)?,
                        subject: Digest::parse(subject)?,
                        countersigned: flags & 1 != 0,
                        own: flags & 2 != 0,
                    }),
                };
                // Evidence and its state go together, both ways.
                if evidence.is_some() != (state == AdmissionState::Evidence) || flags & !3 != 0 {
                    return None;
                }
                Some(ManifestRecord {
                    state,
                    media_type,
                    bytes: v[at + 1 + subject_len..].to_vec(),
                    evidence,
                    version: 2,
                })
            }
            _ => None,
        }
    }

    /// The length of the manifest bytes in the encoded record `v`, without
    /// copying them (`None` if the header does not parse).
    pub fn bytes_len(v: &[u8]) -> Option<usize> {
        let at = match *v.first()? {
            1 => 4 + usize::from(u16::from_be_bytes([*v.get(2)?, *v.get(3)?])),
            2 => {
                let at = 6 + usize::from(u16::from_be_bytes([*v.get(4)?, *v.get(5)?]));
                at + 1 + usize::from(*v.get(at)?)
            }
            _ => return None,
        };
        v.len().checked_sub(at)
    }

    /// The same record in another state (not evidence).
    pub fn with_state(&self, state: AdmissionState) -> ManifestRecord {
        ManifestRecord {
            state,
            evidence: None,
            version: RECORD_VERSION,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    #[test]
    fn records_round_trip_and_version_1_still_reads() {
        let plain = ManifestRecord::new(AdmissionState::Denied, "application/x", b"{\"a\":1}", None);
        assert_eq!(ManifestRecord::decode(&plain.encode().unwrap()), Some(plain.clone()));
        let evidence = ManifestRecord::new(
            AdmissionState::Evidence,
            "application/x",
            b"{}",
            Some(Evidence {
                kind: EvidenceKind::CosignSignature,
                subject: digest('a'),
                countersigned: true,
                own: false,
            }),
        );
        let bytes = evidence.encode().unwrap();
        assert_eq!(ManifestRecord::decode(&bytes), Some(evidence));
        // Evidence without the evidence state, or the reverse, is corrupt.
        let mut wrong = bytes.clone();
        wrong[1] = 1;
        assert_eq!(ManifestRecord::decode(&wrong), None);
        let old = [&[1u8, 3, 0, 1][..], b"m", b"{}"].concat();
        let read = ManifestRecord::decode(&old).unwrap();
        assert_eq!(
            (
                read.state,
                read.media_type.as_str(),
                read.bytes.as_slice(),
                read.evidence,
                read.version
            ),
            (AdmissionState::Evidence, "m", &b"{}"[..], None, 1)
        );
        for bad in [&[][..], &[9], &[2, 0, 0, 0, 0], &[1, 7, 0, 0]] {
            assert_eq!(ManifestRecord::decode(bad), None, "{bad:?}");
        }
        // The length without decoding agrees with the decoded bytes.
        for encoded in [plain.encode().unwrap(), bytes, old.clone()] {
            let len = ManifestRecord::decode(&encoded).unwrap().bytes.len();
            assert_eq!(ManifestRecord::bytes_len(&encoded), Some(len));
        }
        assert_eq!(ManifestRecord::bytes_len(&[1, 3, 0, 9, b'm']), None);
    }
}
