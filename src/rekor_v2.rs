//! Rekor v2 entries in keyless Sigstore bundles (spec/signatures.md,
//! "Rekor v2 and timestamps"). A Rekor v2 entry has no signed entry
//! timestamp: the log proves inclusion with an inclusion proof to a
//! checkpoint it signed (a C2SP signed note, checked here with the ledger's
//! own note code), and the time the short-lived certificate is checked at
//! comes from an RFC 3161 timestamp over the signature by a timestamp
//! authority of the trusted root ([`crate::rfc3161`]).
//!
//! Read: `dsse` entries of version 0.0.2, the kind a DSSE bundle logs.

use crate::keyless::{KeylessProblem, TrustedRoot};
use crate::rfc3161::TimestampAuthority;
use base64::Engine as _;
use vouch_ledger::{Checkpoint, Hash};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Most RFC 3161 timestamps read from one bundle (sigstore-go's bound).
const MAX_TIMESTAMPS: usize = 32;

/// The `timestampAuthorities` of a trusted root.
pub fn timestamp_authorities(doc: &serde_json::Value) -> Result<Vec<TimestampAuthority>, String> {
    let mut out = Vec::new();
    for tsa in doc["timestampAuthorities"].as_array().into_iter().flatten() {
        let mut chain = Vec::new();
        for cert in tsa["certChain"]["certificates"].as_array().into_iter().flatten() {
            let der = cert["rawBytes"]
                .as_str()
                .and_then(|r| B64.decode(r).ok())
                .ok_or("a timestamp authority certificate's rawBytes is not base64")?;
            chain.push(der);
        }
        if chain.is_empty() {
            return Err("a timestamp authority has no certificates".into());
        }
        let window =
            crate::trusted_root::Window::parse(&tsa["validFor"]).map_err(|e| format!("a timestamp authority's {e}"))?;
        out.push(TimestampAuthority {
            chain,
            valid_from: window.from,
            valid_to: window.to,
        });
    }
    Ok(out)
}

/// Whether a bundle's transparency log entry is a Rekor v2 one (Rekor v1's
/// `intoto` 0.0.2 is not).
pub fn is_v2(tlog: &serde_json::Value) -> bool {
    matches!(
        (
            tlog["kindVersion"]["kind"].as_str(),
            tlog["kindVersion"]["version"].as_str()
        ),
        (Some("dsse" | "hashedrekord"), Some("0.0.2"))
    )
}

/// What a bundle signed, which its log entry must record.
#[derive(Debug, Clone, Copy)]
pub enum Signed<'a> {
    /// A DSSE envelope's payload (a `dsse` entry records its SHA-256).
    Dsse(&'a [u8]),
    /// A message, by its SHA-256 (a `hashedrekord` entry records it).
    Message(&'a [u8; 32]),
}

/// Verifies a Rekor v2 entry for what was `signed` with `signature` by the
/// certificate `leaf` (DER): the entry (`dsse` or `hashedrekord` 0.0.2, as
/// the bundle's content) records them, it is in a log of the trusted root
/// (inclusion proof to a checkpoint that log signed), and the required
/// number of trusted timestamp authorities timestamped the signature.
/// Returns the timestamps' times (at least one), at each of which the
/// certificate must have been valid.
pub fn verify_entry(
    root: &TrustedRoot,
    tlog: &serde_json::Value,
    signed: Signed<'_>,
    signature: &[u8],
    leaf: &[u8],
    timestamps: &serde_json::Value,
) -> Result<Vec<i64>, KeylessProblem> {
    let (kind, version) = (
        tlog["kindVersion"]["kind"].as_str().unwrap_or(""),
        tlog["kindVersion"]["version"].as_str().unwrap_or(""),
    );
    let expected = match signed {
        Signed::Dsse(_) => "dsse",
        Signed::Message(_) => "hashedrekord",
    };
    if kind != expected || version != "0.0.2" {
        return Err(KeylessProblem::UnsupportedEntry(
            kind.chars().take(40).collect(),
            version.chars().take(20).collect(),
        ));
    }
    let body = tlog["canonicalizedBody"]
        .as_str()
        .and_then(|b| B64.decode(b).ok())
        .ok_or_else(|| KeylessProblem::Malformed("the entry body is not base64".into()))?;
    entry_records(&body, signed, signature, leaf)?;
    let times = signing_times(root, signature, timestamps)?;
    verify_inclusion(root, &body, tlog, times[0])?;
    Ok(times)
}

/// A `dsse` 0.0.2 body names the payload's SHA-256, the signatures and
/// their certificates; a `hashedrekord` 0.0.2 body the message's SHA-256,
/// the signature and its certificate (rekor-tiles' entry types).
fn entry_records(body: &[u8], signed: Signed<'_>, signature: &[u8], leaf: &[u8]) -> Result<(), KeylessProblem> {
    use sha2::Digest as _;
    let body: serde_json::Value = serde_json::from_slice(body).map_err(|_| KeylessProblem::EntryMismatch)?;
    let (kind, spec, hash, signatures) = match signed {
        Signed::Dsse(payload) => {
            let spec = &body["spec"]["dsseV002"];
            let signatures: Vec<&serde_json::Value> = spec["signatures"].as_array().into_iter().flatten().collect();
            ("dsse", spec, sha2::Sha256::digest(payload).to_vec(), signatures)
        }
        Signed::Message(digest) => {
            let spec = &body["spec"]["hashedRekordV002"];
            ("hashedrekord", spec, digest.to_vec(), vec![&spec["signature"]])
        }
    };
    if body["apiVersion"].as_str() != Some("0.0.2") || body["kind"].as_str() != Some(kind) {
        return Err(KeylessProblem::EntryMismatch);
    }
    let hashed = match signed {
        Signed::Dsse(_) => &spec["payloadHash"],
        Signed::Message(_) => &spec["data"],
    };
    let payload_ok = hashed["algorithm"].as_str() == Some("SHA2_256")
        && hashed["digest"].as_str() == Some(B64.encode(hash).as_str());
    let (sig, cert) = (B64.encode(signature), B64.encode(leaf));
    let signed = signatures.iter().any(|s| {
        s["content"].as_str() == Some(sig.as_str())
            && s["verifier"]["x509Certificate"]["rawBytes"].as_str() == Some(cert.as_str())
    });
    if payload_ok && signed {
        Ok(())
    } else {
        Err(KeylessProblem::EntryMismatch)
    }
}

/// RFC 9162 inclusion of the body under the proof's root, and a checkpoint
/// of that size and root signed by a Rekor v2 log of the trusted root.
fn verify_inclusion(
    root: &TrustedRoot,
    body: &[u8],
    tlog: &serde_json::Value,
    time: i64,
) -> Result<(), KeylessProblem> {
    let bad = |why: &str| KeylessProblem::BadInclusionProof(why.to_owned());
    let number = |v: &serde_json::Value| v.as_u64().or_else(|| v.as_str()?.parse().ok());
    let hash = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|s| B64.decode(s).ok())
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(Hash)
    };
    let proof = &tlog["inclusionProof"];
    if proof.is_null() {
        return Err(bad("a Rekor v2 entry needs an inclusion proof"));
    }
    let index = number(&proof["logIndex"]).ok_or_else(|| bad("no logIndex"))?;
    if number(&tlog["logIndex"]) != Some(index) {
        return Err(bad("the entry's logIndex is missing or not the proof's"));
    }
    let size = number(&proof["treeSize"]).ok_or_else(|| bad("no treeSize"))?;
    let root_hash = hash(&proof["rootHash"]).ok_or_else(|| bad("no rootHash"))?;
    let path: Vec<Hash> = proof["hashes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(hash)
        .collect::<Option<_>>()
        .ok_or_else(|| bad("a proof hash is not 32 base64 bytes"))?;
    vouch_ledger::verify_inclusion(body, index, size, &path, &root_hash)
        .map_err(|e| KeylessProblem::BadInclusionProof(e.to_string()))?;
    let note = proof["checkpoint"]["envelope"]
        .as_str()
        .ok_or_else(|| bad("no checkpoint"))?;
    // A log counts within its window (`validFor`) at the signing time.
    let signed = root
        .rekor_v2
        .iter()
        .filter(|(_, valid)| valid.contains(time))
        .filter_map(|(key, _)| Checkpoint::open(note.as_bytes(), key).ok())
        .any(|c| c.size == size && c.root == root_hash);
    if signed {
        Ok(())
    } else {
        Err(bad(
            "the checkpoint is not one a Rekor v2 log of the trusted root signed for the proof's size and root",
        ))
    }
}

/// The times of the RFC 3161 timestamps of `signature` by trusted
/// authorities, one per authority, as many as the policy requires.
fn signing_times(root: &TrustedRoot, signature: &[u8], data: &serde_json::Value) -> Result<Vec<i64>, KeylessProblem> {
    let tokens: Vec<&str> = data["rfc3161Timestamps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["signedTimestamp"].as_str())
        .collect();
    if tokens.len() > MAX_TIMESTAMPS {
        return Err(KeylessProblem::Malformed(format!(
            "more than {MAX_TIMESTAMPS} RFC 3161 timestamps"
        )));
    }
    let mut last = None;
    let mut by: Vec<(usize, i64)> = Vec::new();
    for token in tokens {
        let der = B64
            .decode(token)
            .map_err(|_| KeylessProblem::Malformed("a signedTimestamp is not base64".into()))?;
        match crate::rfc3161::verify(&der, signature, &root.tsas) {
            Ok((time, tsa)) if !by.iter().any(|(t, _)| *t == tsa) => by.push((tsa, time)),
            Ok(_) => {}
            Err(e) => last = Some(e),
        }
    }
    let required = root.required_timestamps.max(1);
    if by.len() >= required {
        return Ok(by.into_iter().map(|(_, time)| time).collect());
    }
    Err(match (by.len(), last) {
        (0, Some(e)) => KeylessProblem::BadRfc3161(e.to_string()),
        (0, None) => KeylessProblem::NotTimestamped,
        (found, _) => KeylessProblem::BadRfc3161(format!(
            "RFC 3161 timestamps by {found} distinct trusted authorities verify; the policy requires {required}"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rekor_v2_kinds_take_the_v2_path() {
        let kv = |kind: &str, version: &str| serde_json::json!({"kindVersion": {"kind": kind, "version": version}});
        assert!(is_v2(&kv("dsse", "0.0.2")) && is_v2(&kv("hashedrekord", "0.0.2")));
        assert!(!is_v2(&kv("intoto", "0.0.2")), "Rekor v1's intoto 0.0.2 has a SET");
        assert!(!is_v2(&kv("dsse", "0.0.1")));
    }
}
