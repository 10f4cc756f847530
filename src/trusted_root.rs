//! The parts of a Sigstore `trusted_root.json` vouch uses: Fulcio CAs,
//! transparency logs (Rekor v1, ECDSA P-256; Rekor v2, Ed25519), RFC 3161
//! timestamp authorities and certificate transparency logs, each with the
//! window (`validFor`) in which it may be relied on.

use base64::Engine as _;
use vouch_ledger::entry::Digest;
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// When a key may be relied on (seconds since the epoch; open ends).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// From.
    pub from: Option<i64>,
    /// Until.
    pub to: Option<i64>,
}

impl Window {
    /// Reads a trusted root's `validFor` (`start`, `end`, RFC 3339).
    pub fn parse(v: &serde_json::Value) -> Result<Window, String> {
        let when = |v: &serde_json::Value| -> Result<Option<i64>, String> {
            match v.as_str() {
                None => Ok(None),
                Some(t) => time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .map(|t| Some(t.unix_timestamp()))
                    .map_err(|e| format!("validFor time {t:?}: {e}")),
            }
        };
        Ok(Window {
            from: when(&v["start"])?,
            to: when(&v["end"])?,
        })
    }

    /// Whether `time` is inside.
    pub fn contains(&self, time: i64) -> bool {
        self.from.is_none_or(|f| f <= time) && self.to.is_none_or(|t| time <= t)
    }
}

/// The origin (note key name) of a Rekor v2 log: its `baseUrl`'s host and
/// port, without scheme or path.
fn origin_of(base_url: &str) -> Option<&str> {
    let rest = base_url.split_once("://").map_or(base_url, |(_, r)| r);
    let host = rest.split('/').next()?;
    (!host.is_empty()).then_some(host)
}

/// The parts of a Sigstore trusted root vouch uses.
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    /// DER certificates of the Fulcio CAs (roots and intermediates).
    pub(crate) cas: Vec<Vec<u8>>,
    /// Transparency logs: SHA-256 of the key's SPKI (the log ID), key, and
    /// when it may be relied on.
    pub(crate) tlogs: Vec<([u8; 32], p256::ecdsa::VerifyingKey, Window)>,
    /// Rekor v2 logs (Ed25519 keys): checkpoints are signed notes whose key
    /// name is the log's origin, the host of its `baseUrl`.
    pub(crate) rekor_v2: Vec<(vouch_ledger::VerifierKey, Window)>,
    /// RFC 3161 timestamp authorities.
    pub(crate) tsas: Vec<crate::rfc3161::TimestampAuthority>,
    /// Certificate transparency logs: when any is listed, a certificate
    /// needs an embedded SCT by one of them.
    pub(crate) ctlogs: Vec<crate::sct::CtLog>,
    /// SHA-256 of the file, which a policy's digest pins.
    pub digest: Digest,
    /// SCTs by distinct CT logs a certificate needs when the root lists CT
    /// logs (the policy's `[sigstore] ct_logs`; Sigstore's default, 1).
    pub required_scts: usize,
    /// RFC 3161 timestamps by distinct authorities a Rekor v2 entry needs
    /// (the policy's `[sigstore] timestamps`; default 1).
    pub required_timestamps: usize,
}

impl TrustedRoot {
    /// How many CT logs the root lists.
    pub fn ct_log_count(&self) -> usize {
        self.ctlogs.len()
    }

    /// How many timestamp authorities the root lists.
    pub fn timestamp_authority_count(&self) -> usize {
        self.tsas.len()
    }

    /// Parses a Sigstore `trusted_root.json`: its `certificateAuthorities`,
    /// its `tlogs` (ECDSA P-256 keys, as Rekor v1's are; Ed25519 keys, as
    /// Rekor v2's are) and its `timestampAuthorities`.
    pub fn parse(bytes: &[u8]) -> Result<TrustedRoot, String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        if !doc["mediaType"]
            .as_str()
            .is_some_and(|m| m.starts_with("application/vnd.dev.sigstore.trustedroot"))
        {
            return Err("mediaType is not application/vnd.dev.sigstore.trustedroot+json".into());
        }
        let mut cas = Vec::new();
        for ca in doc["certificateAuthorities"].as_array().into_iter().flatten() {
            for cert in ca["certChain"]["certificates"].as_array().into_iter().flatten() {
                let der = cert["rawBytes"]
                    .as_str()
                    .and_then(|r| b64.decode(r).ok())
                    .ok_or("a CA certificate's rawBytes is not base64")?;
                X509Certificate::from_der(&der).map_err(|e| format!("a CA certificate does not parse: {e}"))?;
                cas.push(der);
            }
        }
        let mut tlogs = Vec::new();
        let mut rekor_v2 = Vec::new();
        for log in doc["tlogs"].as_array().into_iter().flatten() {
            use p256::pkcs8::DecodePublicKey as _;
            use sha2::Digest as _;
            let der = log["publicKey"]["rawBytes"]
                .as_str()
                .and_then(|r| b64.decode(r).ok())
                .ok_or("a log key's rawBytes is not base64")?;
            if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(&der) {
                let valid = Window::parse(&log["publicKey"]["validFor"])?;
                tlogs.push((sha2::Sha256::digest(&der).into(), key, valid));
            } else if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_der(&der) {
                // A log whose origin cannot be named is skipped, not fatal:
                // the other logs of the root still count.
                let origin = log["baseUrl"].as_str().and_then(origin_of);
                if let Some(key) = origin.and_then(|o| vouch_ledger::VerifierKey::new(o, key).ok()) {
                    rekor_v2.push((key, Window::parse(&log["publicKey"]["validFor"])?));
                }
            } // another key type: not one vouch can check
        }
        if cas.is_empty() || (tlogs.is_empty() && rekor_v2.is_empty()) {
            return Err(
                "needs at least one certificate authority and one transparency log (ECDSA P-256 or Ed25519)".into(),
            );
        }
        let tsas = crate::rekor_v2::timestamp_authorities(&doc)?;
        let mut ctlogs = Vec::new();
        // Fail closed: a root that lists CT logs gets SCTs required, so a
        // log key vouch cannot check is an error, never a skipped check.
        for log in doc["ctlogs"].as_array().into_iter().flatten() {
            use p256::pkcs8::DecodePublicKey as _;
            use sha2::Digest as _;
            let der = log["publicKey"]["rawBytes"]
                .as_str()
                .and_then(|r| b64.decode(r).ok())
                .ok_or("a CT log key's rawBytes is not base64")?;
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(&der)
                .map_err(|_| "a CT log key is not ECDSA P-256, the kind vouch checks SCTs with")?;
            ctlogs.push(crate::sct::CtLog {
                id: sha2::Sha256::digest(&der).into(),
                key,
                valid: Window::parse(&log["publicKey"]["validFor"])?,
            });
        }
        Ok(TrustedRoot {
            cas,
            tlogs,
            rekor_v2,
            tsas,
            ctlogs,
            digest: crate::registry::digest::sha256_of(bytes),
            required_scts: 1,
            required_timestamps: 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_windows() {
        assert_eq!(
            origin_of("https://log2025-1.rekor.sigstore.dev"),
            Some("log2025-1.rekor.sigstore.dev")
        );
        assert_eq!(origin_of("https://rekor.test:8443/api/v2/"), Some("rekor.test:8443"));
        assert_eq!(origin_of("https://"), None);
        let w = Window::parse(&serde_json::json!({"start": "2025-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}))
            .unwrap();
        assert!(w.contains(1_750_000_000) && !w.contains(1_700_000_000) && !w.contains(1_800_000_000));
        assert!(Window::parse(&serde_json::json!({"start": "yesterday"})).is_err());
        assert!(Window::default().contains(0));
    }
}
