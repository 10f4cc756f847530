//! Keyless signatures (Sigstore's Fulcio and Rekor), verified offline
//! against a configured `trusted_root.json` (spec/signatures.md,
//! "Keyless"). A keyless signature in cosign's tag scheme is a `.sig` layer
//! whose annotations also carry
//!
//! - `dev.sigstore.cosign/certificate`: the short-lived leaf certificate
//!   (PEM) of the ephemeral key that signed the payload, issued by a
//!   Fulcio CA to an OIDC identity: the subject in the SAN (an email or a
//!   URI), the issuer in extension 1.3.6.1.4.1.57264.1.8 (a DER
//!   UTF8String) or the older 1.3.6.1.4.1.57264.1.1 (raw bytes);
//! - `dev.sigstore.cosign/bundle`: Rekor's signed entry timestamp (SET)
//!   over the log entry `{body, integratedTime, logID, logIndex}`.
//!
//! Verified here, with no network: the leaf was issued by a CA of the
//! trusted root and both were valid at the entry's integrated time; the
//! SET verifies with the key of the trusted log named by `logID`; the
//! entry's body (a hashedrekord) is this payload's hash and this signature;
//! the signature over the payload verifies with the leaf's key; and the
//! payload names the image. The result is the (issuer, subject) identity,
//! which policies match.

pub use crate::trusted_root::TrustedRoot;
use base64::Engine as _;
use vouch_ledger::entry::Digest;
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};

/// Annotation holding the leaf certificate.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// Annotation holding the Rekor bundle (SET and entry).
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
const OID_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
const OID_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";

/// A verified keyless signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The OIDC issuer, from the certificate.
    pub issuer: String,
    /// The subject: the SAN email or URI.
    pub subject: String,
    /// When the log integrated the signature (seconds since the epoch):
    /// the time the certificate was checked at, vouched for by the SET.
    pub logged_at: i64,
}

/// Why a keyless signature does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeylessProblem {
    /// A part is missing or malformed.
    #[error("malformed keyless signature: {0}")]
    Malformed(String),
    /// The certificate was not issued by a CA of the trusted root.
    #[error("certificate not issued by a trusted Fulcio CA")]
    UntrustedCertificate,
    /// The certificate (or its CA) was not valid when the entry was logged.
    #[error("certificate not valid at the logged time {0}")]
    Expired(i64),
    /// The SET does not verify with a trusted log's key.
    #[error("the signed entry timestamp does not verify with a trusted log key")]
    BadTimestamp,
    /// The inclusion proof, or its checkpoint, does not verify.
    #[error("the log inclusion proof does not verify: {0}")]
    BadInclusionProof(String),
    /// No signed entry timestamp: nothing vouches for when the short-lived
    /// certificate was used.
    #[error("no signed entry timestamp, so the certificate's validity at signing cannot be checked")]
    NotLogged,
    /// The log entry is about another payload or signature.
    #[error("the log entry does not match this signature")]
    EntryMismatch,
    /// The log entry is of a kind or version vouch does not read.
    #[error("Rekor entry kind {0} version {1} is not supported (vouch reads hashedrekord 0.0.1, dsse 0.0.1 and 0.0.2, and intoto 0.0.1 and 0.0.2)")]
    UnsupportedEntry(String, String),
    /// The payload signature does not verify with the certificate's key.
    #[error("the signature does not verify with the certificate's key")]
    BadSignature,
    /// A Rekor v2 entry without an RFC 3161 timestamp: nothing vouches for
    /// when the short-lived certificate was used.
    #[error("a Rekor v2 entry needs an RFC 3161 timestamp of the signature, and the bundle has none")]
    NotTimestamped,
    /// Its RFC 3161 timestamps do not verify against the trusted root.
    #[error("{0}")]
    BadRfc3161(String),
    /// Its certificate's SCTs do not verify against the trusted root.
    #[error("{0}")]
    Sct(String),
}

/// A transparency log entry as a Rekor SET covers it.
#[derive(Debug, Clone)]
pub struct LogEntry<'a> {
    /// The entry's canonicalized body, base64.
    pub body: &'a str,
    /// When the log integrated it (Unix seconds).
    pub integrated_time: i64,
    /// The log's ID, lowercase hex (SHA-256 of its key's SPKI).
    pub log_id: String,
    /// Its index in the log.
    pub log_index: i64,
}

/// Checks a signed entry timestamp: Rekor's ASN.1 DER ECDSA signature,
/// by the trusted log whose ID is `entry.log_id`, over the canonical JSON
/// `{"body","integratedTime","logID","logIndex"}` (sorted, compact).
pub fn verify_set(root: &TrustedRoot, entry: &LogEntry<'_>, set: &[u8]) -> Result<(), KeylessProblem> {
    let canonical = format!(
        r#"{{"body":{},"integratedTime":{},"logID":{},"logIndex":{}}}"#,
        serde_json::Value::from(entry.body),
        entry.integrated_time,
        serde_json::Value::from(entry.log_id.as_str()),
        entry.log_index
    );
    let set = p256::ecdsa::Signature::from_der(set).map_err(|_| KeylessProblem::BadTimestamp)?;
    let log_key = root
        .tlogs
        .iter()
        .find(|(id, _, valid)| hex::encode(id) == entry.log_id && valid.contains(entry.integrated_time))
        .map(|(_, k, _)| k)
        .ok_or(KeylessProblem::BadTimestamp)?;
    use p256::ecdsa::signature::Verifier as _;
    log_key
        .verify(canonical.as_bytes(), &set)
        .map_err(|_| KeylessProblem::BadTimestamp)
}

/// Checks a Rekor inclusion proof of an entry (`body_b64`, the canonicalized
/// body): the RFC 6962 audit path from the entry to `rootHash` at
/// `treeSize` (verified by the ledger's own verifier), and the checkpoint
/// `envelope` (a signed note) naming that size and root, signed by a
/// trusted log (ECDSA; the signature's 4-byte key hint is the start of the
/// log ID).
pub fn verify_inclusion_proof(
    root: &TrustedRoot,
    body_b64: &str,
    proof: &serde_json::Value,
) -> Result<(), KeylessProblem> {
    use p256::ecdsa::signature::Verifier as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let bad = |why: &str| KeylessProblem::BadInclusionProof(why.to_owned());
    let hash = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|s| b64.decode(s).ok())
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(vouch_ledger::Hash)
    };
    let number = |v: &serde_json::Value| v.as_u64().or_else(|| v.as_str()?.parse().ok());
    let body = b64.decode(body_b64).map_err(|_| bad("the entry body is not base64"))?;
    let index = number(&proof["logIndex"]).ok_or_else(|| bad("no logIndex"))?;
    let size = number(&proof["treeSize"]).ok_or_else(|| bad("no treeSize"))?;
    let root_hash = hash(&proof["rootHash"]).ok_or_else(|| bad("no rootHash"))?;
    let path: Vec<vouch_ledger::Hash> = proof["hashes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(hash)
        .collect::<Option<_>>()
        .ok_or_else(|| bad("a proof hash is not 32 base64 bytes"))?;
    vouch_ledger::verify_inclusion(&body, index, size, &path, &root_hash)
        .map_err(|e| KeylessProblem::BadInclusionProof(e.to_string()))?;

    // The checkpoint: "<origin>\n<size>\n<base64 root>\n[extensions]\n\n— <name> <base64 sig>\n".
    let envelope = proof["checkpoint"]["envelope"]
        .as_str()
        .ok_or_else(|| bad("no checkpoint"))?;
    let split = envelope
        .find("\n\n")
        .ok_or_else(|| bad("the checkpoint is not a signed note"))?;
    let (text, signatures) = (&envelope[..=split], &envelope[split + 2..]);
    let mut lines = text.lines().skip(1);
    let (note_size, note_root) = (lines.next(), lines.next());
    if note_size.and_then(|s| s.parse::<u64>().ok()) != Some(size)
        || note_root.map(|r| b64.decode(r).ok()) != Some(Some(root_hash.0.to_vec()))
    {
        return Err(bad("the checkpoint is not for the proof's size and root"));
    }
    let signed = signatures.lines().any(|line| {
        let Some(sig) = line
            .strip_prefix("\u{2014} ")
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|s| b64.decode(s).ok())
        else {
            return false;
        };
        let Some((hint, der)) = sig.split_first_chunk::<4>() else {
            return false;
        };
        let Ok(sig) = p256::ecdsa::Signature::from_der(der) else {
            return false;
        };
        root.tlogs
            .iter()
            .any(|(id, key, _)| &id[..4] == hint && key.verify(text.as_bytes(), &sig).is_ok())
    });
    if signed {
        Ok(())
    } else {
        Err(bad("the checkpoint is not signed by a trusted log"))
    }
}

/// A log entry's body: base64 of a JSON document.
fn entry_body(body_b64: &str) -> Result<serde_json::Value, KeylessProblem> {
    base64::engine::general_purpose::STANDARD
        .decode(body_b64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(KeylessProblem::EntryMismatch)
}

/// Checks that a Rekor v1 `hashedrekord` (0.0.1) body records a message
/// whose SHA-256 is `digest` and `signature`: a message signature's entry.
pub fn message_entry_matches(body_b64: &str, digest: &[u8; 32], signature: &[u8]) -> Result<(), KeylessProblem> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = entry_body(body_b64)?;
    let (kind, version) = (
        body["kind"].as_str().unwrap_or(""),
        body["apiVersion"].as_str().unwrap_or(""),
    );
    if kind != "hashedrekord" || !matches!(version, "" | "0.0.1") {
        return Err(KeylessProblem::UnsupportedEntry(
            kind.chars().take(40).collect(),
            version.chars().take(20).collect(),
        ));
    }
    let spec = &body["spec"];
    let ok = spec["data"]["hash"]["algorithm"].as_str() == Some("sha256")
        && spec["data"]["hash"]["value"].as_str() == Some(hex::encode(digest).as_str())
        && spec["signature"]["content"]
            .as_str()
            .and_then(|s| b64.decode(s).ok())
            .is_some_and(|s| s == signature);
    if ok {
        Ok(())
    } else {
        Err(KeylessProblem::EntryMismatch)
    }
}

/// Checks that a log entry's body records `payload` (by hash) and
/// `signature`: a `hashedrekord` (the payload is the signed message), or a
/// `dsse` entry (the payload is the envelope's payload).
pub fn entry_matches(body_b64: &str, payload: &[u8], signature: &[u8], leaf: &[u8]) -> Result<(), KeylessProblem> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = entry_body(body_b64)?;
    let hash = crate::registry::digest::sha256_of(payload);
    let is_sig = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|s| b64.decode(s).ok())
            .is_some_and(|s| s == signature)
    };
    let spec = &body["spec"];
    let (kind, version) = (
        body["kind"].as_str().unwrap_or(""),
        body["apiVersion"].as_str().unwrap_or(""),
    );
    let unsupported =
        || KeylessProblem::UnsupportedEntry(kind.chars().take(40).collect(), version.chars().take(20).collect());
    // Versions vouch reads (a missing apiVersion is read as the kind's
    // only or latest known layout); another version is named, never
    // reported as a mismatch.
    let known = match kind {
        "hashedrekord" | "dsse" => matches!(version, "" | "0.0.1"),
        "intoto" => matches!(version, "" | "0.0.1" | "0.0.2"),
        _ => false,
    };
    if !known {
        return Err(unsupported());
    }
    let ok = match body["kind"].as_str() {
        Some("hashedrekord") => {
            spec["data"]["hash"]["value"].as_str() == Some(hash.encoded()) && is_sig(&spec["signature"]["content"])
        }
        Some("dsse") => {
            spec["payloadHash"]["value"].as_str() == Some(hash.encoded())
                && spec["signatures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|s| is_sig(&s["signature"]))
        }
        // intoto v0.0.1 records no signature: Rekor checked the envelope's
        // signature with `publicKey` (the certificate, PEM) when it logged
        // it, so the entry binds the payload to the certificate, whose key
        // the caller then checks the signature with.
        Some("intoto") if version == "0.0.1" => {
            let cert = spec["publicKey"]
                .as_str()
                .and_then(|k| b64.decode(k).ok())
                .and_then(|pem| x509_parser::pem::parse_x509_pem(&pem).ok().map(|(_, p)| p.contents));
            spec["content"]["payloadHash"]["value"].as_str() == Some(hash.encoded())
                && spec["content"]["payloadHash"]["algorithm"].as_str() == Some("sha256")
                && cert.is_some_and(|c| c == leaf)
        }
        // cosign (before v3) logs attestations as intoto v0.0.2 entries,
        // whose envelope signatures are base64 of the base64 signature.
        Some("intoto") => {
            let twice = |v: &serde_json::Value| {
                v.as_str()
                    .and_then(|s| b64.decode(s).ok())
                    .and_then(|s| b64.decode(s).ok())
                    .is_some_and(|s| s == signature)
            };
            spec["content"]["payloadHash"]["value"].as_str() == Some(hash.encoded())
                && spec["content"]["envelope"]["signatures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|s| is_sig(&s["sig"]) || twice(&s["sig"]))
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(KeylessProblem::EntryMismatch)
    }
}

/// Checks a leaf certificate (DER) against the trusted root at `time`: issued
/// by a trusted CA, both valid then. Returns its P-256 key and identity.
pub fn verify_leaf(
    root: &TrustedRoot,
    leaf_der: &[u8],
    time: i64,
) -> Result<(p256::ecdsa::VerifyingKey, Identity), KeylessProblem> {
    let malformed = |what: &str| KeylessProblem::Malformed(what.to_owned());
    let (_, leaf) = X509Certificate::from_der(leaf_der).map_err(|_| malformed("certificate is not X.509"))?;
    let valid_at = |c: &X509Certificate<'_>| {
        c.validity().not_before.timestamp() <= time && time <= c.validity().not_after.timestamp()
    };
    let issuer = root
        .cas
        .iter()
        .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, c)| c))
        .find(|ca| ca.subject() == leaf.issuer() && leaf.verify_signature(Some(ca.public_key())).is_ok())
        .ok_or(KeylessProblem::UntrustedCertificate)?;
    if !valid_at(&leaf) || !valid_at(&issuer) {
        return Err(KeylessProblem::Expired(time));
    }
    // Certificate transparency (RFC 6962): with CT logs in the trusted
    // root, as Sigstore's has, an SCT by one of them must be embedded.
    if !root.ctlogs.is_empty() {
        crate::sct::verify_embedded(leaf_der, issuer.public_key().raw, &root.ctlogs, root.required_scts)
            .map_err(|e| KeylessProblem::Sct(e.to_string()))?;
    }
    let key = {
        use p256::pkcs8::DecodePublicKey as _;
        p256::ecdsa::VerifyingKey::from_public_key_der(leaf.public_key().raw)
            .map_err(|_| malformed("the certificate's key is not ECDSA P-256"))?
    };
    let mut identity = identity(&leaf).ok_or_else(|| malformed("the certificate names no OIDC issuer or subject"))?;
    identity.logged_at = time;
    Ok((key, identity))
}

/// The keyless material of one tag-scheme layer (its certificate and Rekor
/// bundle annotations), checked against the trusted root: the SET, that
/// the log entry records `logged` (the signed payload, by hash) and
/// `signature`, and the certificate at the logged time. Returns the
/// certificate's key, which the caller checks `signature` with over what
/// it signs, and its identity.
pub fn verify_logged(
    root: &TrustedRoot,
    annotations: &serde_json::Value,
    logged: &[u8],
    signature: &[u8],
) -> Result<(p256::ecdsa::VerifyingKey, Identity), KeylessProblem> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let malformed = |what: &str| KeylessProblem::Malformed(what.to_owned());
    let pem = annotations[CERTIFICATE_ANNOTATION]
        .as_str()
        .ok_or_else(|| malformed("no certificate"))?;
    let (_, pem_block) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|_| malformed("certificate is not PEM"))?;
    let bundle: serde_json::Value = annotations[BUNDLE_ANNOTATION]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .ok_or_else(|| malformed("no Rekor bundle"))?;
    let e = &bundle["Payload"];
    let entry = LogEntry {
        body: e["body"].as_str().ok_or_else(|| malformed("bundle has no body"))?,
        integrated_time: e["integratedTime"]
            .as_i64()
            .ok_or_else(|| malformed("bundle has no integratedTime"))?,
        log_id: e["logID"]
            .as_str()
            .ok_or_else(|| malformed("bundle has no logID"))?
            .to_owned(),
        log_index: e["logIndex"]
            .as_i64()
            .ok_or_else(|| malformed("bundle has no logIndex"))?,
    };
    let set = bundle["SignedEntryTimestamp"]
        .as_str()
        .and_then(|s| b64.decode(s).ok())
        .ok_or(KeylessProblem::BadTimestamp)?;
    verify_set(root, &entry, &set)?;
    entry_matches(entry.body, logged, signature, &pem_block.contents)?;
    verify_leaf(root, &pem_block.contents, entry.integrated_time)
}

/// Verifies the keyless signature of one `.sig` layer (its annotations and
/// payload) for `image`; returns the signer's identity.
pub fn verify(
    root: &TrustedRoot,
    image: &Digest,
    annotations: &serde_json::Value,
    payload: &[u8],
) -> Result<Identity, KeylessProblem> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let signature = annotations[crate::signature::SIGNATURE_ANNOTATION]
        .as_str()
        .and_then(|s| b64.decode(s).ok())
        .ok_or_else(|| KeylessProblem::Malformed("no base64 signature".into()))?;
    let (key, identity) = verify_logged(root, annotations, payload, &signature)?;
    // The payload, signed by the leaf's key, names the image.
    let (signers, _) = crate::signature::verify_layers(
        image,
        &[crate::signature::SignatureLayer {
            signature: Some(b64.encode(&signature)),
            payload: payload.to_vec(),
        }],
        &[crate::signature::PublicKey::EcdsaP256(key)],
    );
    if signers.is_empty() {
        return Err(KeylessProblem::BadSignature);
    }
    Ok(identity)
}

/// The (issuer, subject) a Fulcio certificate was issued to.
fn identity(cert: &X509Certificate<'_>) -> Option<Identity> {
    let mut issuer = None;
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        if oid == OID_ISSUER_V2 {
            // A DER UTF8String: tag 0x0c, a short length, the bytes.
            if let [0x0c, len, rest @ ..] = ext.value {
                if usize::from(*len) == rest.len() {
                    issuer = std::str::from_utf8(rest).ok().map(str::to_owned);
                }
            }
        } else if oid == OID_ISSUER_V1 && issuer.is_none() {
            issuer = std::str::from_utf8(ext.value).ok().map(str::to_owned);
        }
    }
    let san = cert.subject_alternative_name().ok().flatten()?;
    let subject = san.value.general_names.iter().find_map(|n| match n {
        GeneralName::RFC822Name(e) => Some((*e).to_owned()),
        GeneralName::URI(u) => Some((*u).to_owned()),
        _ => None,
    })?;
    Some(Identity {
        issuer: issuer?,
        subject,
        logged_at: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> TrustedRoot {
        // A root with one CA certificate (any valid DER cert will do for
        // parsing) and one P-256 log key.
        use p256::pkcs8::EncodePublicKey as _;
        let key = p256::ecdsa::SigningKey::from_slice(&[5; 32]).unwrap();
        let spki = key.verifying_key().to_public_key_der().unwrap();
        TrustedRoot {
            cas: Vec::new(),
            tlogs: vec![([0; 32], *key.verifying_key(), Default::default())],
            rekor_v2: Vec::new(),
            tsas: Vec::new(),
            ctlogs: Vec::new(),
            digest: crate::registry::digest::sha256_of(spki.as_bytes()),
            required_scts: 1,
            required_timestamps: 1,
        }
    }

    #[test]
    fn entries_of_kinds_or_versions_not_read_are_named_not_called_mismatches() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = |kind: &str, version: &str| {
            b64.encode(serde_json::json!({"apiVersion": version, "kind": kind, "spec": {}}).to_string())
        };
        for (kind, version) in [
            ("intoto", "0.0.3"),
            ("rekord", "0.0.1"),
            ("hashedrekord", "0.0.2"),
            ("dsse", "0.0.2"),
        ] {
            assert_eq!(
                entry_matches(&body(kind, version), b"payload", b"sig", b"cert"),
                Err(KeylessProblem::UnsupportedEntry(kind.into(), version.into())),
                "{kind} {version}"
            );
        }
        let e = KeylessProblem::UnsupportedEntry("intoto".into(), "0.0.3".into()).to_string();
        assert!(e.contains("kind intoto version 0.0.3 is not supported"), "{e}");
        // A known kind that records other content is still a mismatch.
        for (kind, version) in [("hashedrekord", "0.0.1"), ("intoto", "0.0.1")] {
            assert_eq!(
                entry_matches(&body(kind, version), b"payload", b"sig", b"cert"),
                Err(KeylessProblem::EntryMismatch)
            );
        }
    }

    #[test]
    fn roots_without_a_ca_or_a_log_are_refused() {
        assert!(TrustedRoot::parse(b"{}").unwrap_err().contains("mediaType"));
        let empty = br#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#;
        assert!(TrustedRoot::parse(empty).unwrap_err().contains("at least one"));
    }

    proptest::proptest! {
        /// Arbitrary annotations and payloads give an answer, never a panic.
        #[test]
        fn never_panics(sig: String, cert: String, bundle: String, payload: Vec<u8>, root_bytes: Vec<u8>) {
            let image = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
            let pem = format!("-----BEGIN CERTIFICATE-----\n{cert}\n-----END CERTIFICATE-----\n");
            for c in [cert.clone(), pem] {
                let annotations = serde_json::json!({
                    crate::signature::SIGNATURE_ANNOTATION: sig,
                    CERTIFICATE_ANNOTATION: c,
                    BUNDLE_ANNOTATION: bundle,
                });
                proptest::prop_assert!(verify(&root(), &image, &annotations, &payload).is_err());
            }
            let _ = TrustedRoot::parse(&root_bytes);
        }
    }
}
