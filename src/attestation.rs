//! in-toto attestations in DSSE envelopes, as cosign attaches them in the
//! tag scheme (spec/signatures.md, "Attestations"): layers of the image's
//! `<alg>-<hex>.att` manifest, each blob a DSSE envelope
//!
//! ```json
//! {"payloadType": "application/vnd.in-toto+json",
//!  "payload": "<base64 of an in-toto Statement>",
//!  "signatures": [{"keyid": "", "sig": "<base64>"}]}
//! ```
//!
//! signed over the DSSE pre-authentication encoding of the payload type and
//! the payload bytes. The Statement names the image among its `subject`s
//! and carries a `predicateType` (SPDX, CycloneDX, SLSA provenance, ...).

use crate::policy::attested::Body;
use crate::signature::PublicKey;
use crate::statement::{read_prepared, Statement};
use base64::Engine as _;
use vouch_ledger::entry::Digest;

pub use crate::statement::{read_statement, read_statement_body, read_statement_with_predicate, statement_subjects};

/// The DSSE payload type of in-toto Statements.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
/// Media type of a DSSE envelope layer.
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";

/// DSSE v1 pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    [
        format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), body.len()).as_bytes(),
        body,
    ]
    .concat()
}

/// A DSSE envelope, typed: its payload stays one string, never a tree.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "payloadType")]
    payload_type: String,
    /// Borrowed from the envelope's bytes when it has no escapes (base64
    /// has none): a multi-megabyte payload is not copied before decoding.
    #[serde(borrow)]
    payload: std::borrow::Cow<'a, str>,
    #[serde(default)]
    signatures: Vec<EnvelopeSignature>,
}

#[derive(serde::Deserialize)]
struct EnvelopeSignature {
    #[serde(default)]
    sig: Option<String>,
}

/// The Statement a DSSE envelope of an in-toto Statement carries (its
/// payload, decoded); `None` if it is not one.
pub fn envelope_statement(envelope: &[u8]) -> Option<Vec<u8>> {
    let env: Envelope = serde_json::from_slice(envelope).ok()?;
    if env.payload_type != IN_TOTO || env.signatures.is_empty() {
        return None;
    }
    decode_payload(&env.payload)
}

/// SHA-256 of the DSSE PAE of an in-toto payload, hashed as it is read
/// (no copy of the payload).
fn pae_digest(payload: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(format!("DSSEv1 {} {IN_TOTO} {} ", IN_TOTO.len(), payload.len()).as_bytes());
    h.update(payload);
    h.finalize().into()
}

/// Why an attestation does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationProblem {
    /// Not a DSSE envelope of an in-toto Statement.
    #[error("not a DSSE envelope of an in-toto statement")]
    NotInToto,
    /// The Statement does not name this image among its subjects.
    #[error("attests {predicate_type} for other subjects, not this image")]
    OtherSubject {
        /// Its predicate type.
        predicate_type: String,
    },
    /// No trusted key signed it.
    #[error("{predicate_type} attestation not signed by any trusted key")]
    Untrusted {
        /// Its predicate type.
        predicate_type: String,
    },
    /// Its keyless material does not verify.
    #[error("keyless {0} attestation: {1}")]
    Keyless(String, crate::keyless::KeylessProblem),
}

/// A verified attestation: its predicate type and the fingerprints of the
/// trusted keys that signed it.
#[derive(Debug, Clone)]
pub struct Attested {
    /// The Statement's `predicateType`.
    pub predicate_type: String,
    /// Fingerprints of the trusted keys whose signatures verified.
    pub signers: Vec<String>,
    /// The predicate's JSON, as signed.
    pub predicate: Body,
}

/// An envelope's payload, from standard base64 with padding (RFC 4648
/// §4), decoded with SIMD: a 5 MB SBOM's payload is 6.7 MB of it. Accepts
/// exactly what the `base64` crate's standard engine does (a property
/// test holds them to it), non-canonical trailing bits refused.
fn decode_payload(text: &str) -> Option<Vec<u8>> {
    base64_simd::STANDARD.decode_to_vec(text).ok()
}

/// A DSSE envelope of an in-toto Statement, decoded: its payload and its
/// signatures (those that are base64).
fn decode_envelope(envelope: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>), AttestationProblem> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let env: Envelope = serde_json::from_slice(envelope).map_err(|_| AttestationProblem::NotInToto)?;
    if env.payload_type != IN_TOTO {
        return Err(AttestationProblem::NotInToto);
    }
    let payload = decode_payload(&env.payload).ok_or(AttestationProblem::NotInToto)?;
    let signatures = env
        .signatures
        .iter()
        .filter_map(|s| b64.decode(s.sig.as_deref()?).ok())
        .collect();
    Ok((payload, signatures))
}

/// A DSSE envelope of an in-toto Statement, opened: all that depends on
/// its bytes alone, whichever image it is asked about and whatever keys
/// the policy trusts, so that it can be opened once and kept (admission
/// keeps envelopes it opened, by blob digest: `src/admission/opened.rs`).
pub struct Opened {
    payload: std::sync::Arc<Vec<u8>>,
    signatures: Vec<Vec<u8>>,
    /// SHA-256 of the payload's DSSE PAE, which ECDSA and RSA keys verify.
    pae_digest: [u8; 32],
    /// `None` if the payload is not a Statement.
    statement: Option<Statement>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("payload_bytes", &self.payload.len())
            .field("signatures", &self.signatures.len())
            .field("predicate_type", &self.statement.as_ref().map(|s| &s.predicate_type))
            .finish()
    }
}

impl Opened {
    /// Decodes a DSSE envelope of an in-toto payload and reads its
    /// Statement. A large payload (an SBOM can be megabytes) is hashed on a
    /// second thread while this one reads the Statement.
    pub fn open(envelope: &[u8]) -> Result<Opened, AttestationProblem> {
        let (payload, signatures) = decode_envelope(envelope)?;
        const PARALLEL_FROM: usize = 256 << 10;
        let (pae_digest, read) = if payload.len() >= PARALLEL_FROM {
            std::thread::scope(|s| {
                let hashed = s.spawn(|| pae_digest(&payload));
                let read = read_prepared(&payload);
                (hashed.join().unwrap_or_default(), read)
            })
        } else {
            (pae_digest(&payload), read_prepared(&payload))
        };
        let payload = std::sync::Arc::new(payload);
        let statement = read.map(|r| Statement::from_read(r, &payload));
        if let Some(s) = &statement {
            crate::policy::attested::warm_scan(&s.predicate_type, &s.predicate);
        }
        Ok(Opened {
            payload,
            signatures,
            pae_digest,
            statement,
        })
    }

    /// About how much memory it holds: its payload, and as much again for
    /// what was read of it.
    pub fn size(&self) -> usize {
        2 * self.payload.len() + self.signatures.iter().map(Vec::len).sum::<usize>()
    }

    /// The digests its Statement names as subjects, as recognising an
    /// `.att` layer reads them (`statement_subjects` of
    /// `envelope_statement`), where this envelope settles them: it has a
    /// signature and a Statement naming some subject. `None` otherwise,
    /// for the caller to read the bytes as before.
    pub fn subjects(&self) -> Option<Vec<Digest>> {
        let digests = self.statement.as_ref()?.subject_digests();
        (!self.signatures.is_empty() && !digests.is_empty()).then_some(digests)
    }

    /// Its Statement, if it names `image`.
    fn statement_about(&self, image: &Digest) -> Result<&Statement, AttestationProblem> {
        let s = self.statement.as_ref().ok_or(AttestationProblem::NotInToto)?;
        match s.names(image) {
            true => Ok(s),
            false => Err(AttestationProblem::OtherSubject {
                predicate_type: s.predicate_type.clone(),
            }),
        }
    }

    /// Verifies it as an attestation about `image` signed by one of
    /// `keys`; the Statement counts only if a signature verifies.
    pub fn verify(&self, image: &Digest, keys: &[PublicKey]) -> Result<Attested, AttestationProblem> {
        let s = self.statement_about(image)?;
        let signers = signers_of(&self.payload, &self.pae_digest, &self.signatures, keys);
        if signers.is_empty() {
            return Err(AttestationProblem::Untrusted {
                predicate_type: s.predicate_type.clone(),
            });
        }
        Ok(Attested {
            predicate_type: s.predicate_type.clone(),
            signers,
            predicate: s.predicate.clone(),
        })
    }

    /// Verifies it as a keyless attestation (an `.att` layer whose
    /// annotations carry a Fulcio certificate and a Rekor SET, as cosign's
    /// keyless `attest` writes them) about `image` against the trusted
    /// root; returns its predicate type, the signer's identity and the
    /// predicate.
    pub fn verify_keyless(
        &self,
        root: &crate::keyless::TrustedRoot,
        image: &Digest,
        annotations: &serde_json::Value,
    ) -> Result<(String, crate::keyless::Identity, Body), AttestationProblem> {
        let s = self.statement_about(image)?;
        let predicate_type = s.predicate_type.clone();
        let signature = self.signatures.first().ok_or(AttestationProblem::NotInToto)?;
        let (key, identity) = crate::keyless::verify_logged(root, annotations, &self.payload, signature)
            .map_err(|e| AttestationProblem::Keyless(predicate_type.clone(), e))?;
        if !PublicKey::EcdsaP256(key).verifies_digest(&self.pae_digest, signature) {
            return Err(AttestationProblem::Keyless(
                predicate_type,
                crate::keyless::KeylessProblem::BadSignature,
            ));
        }
        Ok((predicate_type, identity, s.predicate.clone()))
    }
}

/// Which of `keys` signed `payload`'s PAE (whose SHA-256 is `digest`) with
/// one of `signatures`, by fingerprint. ECDSA and RSA keys verify the
/// digest; Ed25519 keys need the PAE itself.
fn signers_of(payload: &[u8], digest: &[u8; 32], signatures: &[Vec<u8>], keys: &[PublicKey]) -> Vec<String> {
    let whole = std::sync::OnceLock::new();
    let mut signers: Vec<String> = Vec::new();
    for sig in signatures {
        for key in keys {
            let ok = match key {
                PublicKey::Ed25519(_) => key.verifies(whole.get_or_init(|| pae(IN_TOTO, payload)), sig),
                _ => key.verifies_digest(digest, sig),
            };
            let f = key.fingerprint();
            if ok && !signers.contains(&f) {
                signers.push(f);
            }
        }
    }
    signers
}

/// Verifies a keyless DSSE envelope about `image` against the trusted
/// root ([`Opened::verify_keyless`]).
pub fn verify_keyless_envelope(
    root: &crate::keyless::TrustedRoot,
    image: &Digest,
    annotations: &serde_json::Value,
    envelope: &[u8],
) -> Result<(String, crate::keyless::Identity, Body), AttestationProblem> {
    Opened::open(envelope)?.verify_keyless(root, image, annotations)
}

/// Verifies one DSSE envelope about `image` against `keys`
/// ([`Opened::verify`]).
pub fn verify_envelope(image: &Digest, envelope: &[u8], keys: &[PublicKey]) -> Result<Attested, AttestationProblem> {
    Opened::open(envelope)?.verify(image, keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer as _;
    use proptest::prelude::*;

    fn envelope(statement: &serde_json::Value, key: &p256::ecdsa::SigningKey) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let payload = serde_json::to_vec(statement).unwrap();
        let sig: p256::ecdsa::Signature = key.sign(&pae(IN_TOTO, &payload));
        serde_json::to_vec(&serde_json::json!({
            "payloadType": IN_TOTO,
            "payload": b64.encode(&payload),
            "signatures": [{ "keyid": "", "sig": b64.encode(sig.to_der().as_bytes()) }],
        }))
        .unwrap()
    }

    proptest::proptest! {
        /// Recognising an `.att` layer from an envelope already opened
        /// finds the subjects that reading its bytes finds, whatever the
        /// pusher wrote in them: wherever `Opened::subjects` settles them,
        /// `statement_subjects` of `envelope_statement` agrees.
        #[test]
        fn opened_subjects_are_the_subjects_read_from_the_bytes(
            subjects in proptest::collection::vec(
                proptest::option::of(proptest::collection::btree_map(
                    proptest::sample::select(vec!["sha256", "sha512", "md5", ""]),
                    proptest::prop_oneof![
                        "[0-9a-f]{64}".prop_map(serde_json::Value::from),
                        "[0-9a-f]{128}".prop_map(serde_json::Value::from),
                        proptest::num::u8::ANY.prop_map(serde_json::Value::from),
                    ],
                    0..3,
                )),
                0..4,
            ),
            predicate_type in proptest::option::of(proptest::sample::select(vec!["x", "https://spdx.dev/Document"])),
            signed: bool,
        ) {
            let subject: Vec<serde_json::Value> = subjects
                .iter()
                .map(|d| match d {
                    Some(d) => serde_json::json!({ "name": "n", "digest": d }),
                    None => serde_json::json!({ "name": "n" }),
                })
                .collect();
            let mut statement = serde_json::json!({ "_type": "https://in-toto.io/Statement/v1", "subject": subject, "predicate": {} });
            if let Some(t) = predicate_type {
                statement["predicateType"] = t.into();
            }
            let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
            let mut env: serde_json::Value = serde_json::from_slice(&envelope(&statement, &key)).unwrap();
            if !signed {
                env["signatures"] = serde_json::json!([]);
            }
            let bytes = serde_json::to_vec(&env).unwrap();
            let read = envelope_statement(&bytes).and_then(|p| statement_subjects(&p));
            if let Some(found) = Opened::open(&bytes).ok().and_then(|o| o.subjects()) {
                prop_assert_eq!(Some(found), read);
            } else {
                // Not settled: an unsigned envelope, no Statement, or no
                // subject digest, which the bytes are read for instead.
                prop_assert!(!signed || read.as_ref().is_none_or(Vec::is_empty));
            }
        }

        /// The SIMD decoder accepts and decodes exactly what the `base64`
        /// crate's standard engine does: canonical padded base64, from
        /// any text (wrong padding, trailing bits, other alphabets,
        /// whitespace).
        #[test]
        fn payloads_decode_as_the_standard_engine_does(
            bytes: Vec<u8>,
            cut in 0usize..4,
            noise in "[A-Za-z0-9+/=_\\- \n]{0,12}",
            at: proptest::sample::Index,
        ) {
            let b64 = base64::engine::general_purpose::STANDARD;
            let good = b64.encode(&bytes);
            let mut variants = vec![good.clone(), good.trim_end_matches('=').to_owned(), noise.clone()];
            let mut cut_text = good.clone();
            cut_text.truncate(good.len().saturating_sub(cut));
            variants.push(cut_text);
            let i = at.index(good.len() + 1);
            variants.push(format!("{}{noise}{}", &good[..i], &good[i..]));
            // Non-canonical trailing bits: the last symbol before padding
            // changed.
            if let Some(p) = good.find('=').or((!good.is_empty()).then_some(good.len())) {
                if p > 0 {
                    let mut b = good.clone().into_bytes();
                    b[p - 1] = if b[p - 1] == b'B' { b'C' } else { b'B' };
                    variants.push(String::from_utf8(b).unwrap());
                }
            }
            for v in variants {
                proptest::prop_assert_eq!(decode_payload(&v), b64.decode(v.as_bytes()).ok(), "{:?}", v);
            }
        }

        /// Any bytes, and any envelope with arbitrary payload and signature
        /// strings, give an answer, never a panic.
        #[test]
        fn never_panics(bytes: Vec<u8>, payload: Vec<u8>, sig: String, ty: String) {
            let image = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
            let keys = [PublicKey::EcdsaP256(*p256::ecdsa::SigningKey::from_slice(&[3; 32]).unwrap().verifying_key())];
            let _ = verify_envelope(&image, &bytes, &keys);
            let b64 = base64::engine::general_purpose::STANDARD;
            let env = serde_json::json!({
                "payloadType": if ty.is_empty() { IN_TOTO.to_owned() } else { ty },
                "payload": b64.encode(&payload),
                "signatures": [{ "sig": sig }, { "sig": b64.encode(&bytes) }],
            });
            let _ = verify_envelope(&image, &serde_json::to_vec(&env).unwrap(), &keys);
        }
    }

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn a_signed_statement_about_the_image_verifies_and_others_do_not() {
        let image = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        let key = p256::ecdsa::SigningKey::from_slice(&[3; 32]).unwrap();
        let trusted = [PublicKey::EcdsaP256(*key.verifying_key())];
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{ "name": "team/app", "digest": { "sha256": "ab".repeat(32) } }],
            "predicateType": "https://spdx.dev/Document",
            "predicate": {},
        });
        let ok = verify_envelope(&image, &envelope(&statement, &key), &trusted).unwrap();
        assert_eq!(ok.predicate_type, "https://spdx.dev/Document");
        assert_eq!(ok.signers, vec![trusted[0].fingerprint()]);
        let other = Digest::parse(&format!("sha256:{}", "cd".repeat(32))).unwrap();
        assert!(matches!(
            verify_envelope(&other, &envelope(&statement, &key), &trusted),
            Err(AttestationProblem::OtherSubject { .. })
        ));
        let stranger = p256::ecdsa::SigningKey::from_slice(&[4; 32]).unwrap();
        assert!(matches!(
            verify_envelope(&image, &envelope(&statement, &stranger), &trusted),
            Err(AttestationProblem::Untrusted { .. })
        ));
        assert!(matches!(
            verify_envelope(&image, b"{}", &trusted),
            Err(AttestationProblem::NotInToto)
        ));
        assert_eq!(ok.predicate.get(), "{}");
    }
}
