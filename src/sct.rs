//! Signed certificate timestamps embedded in Fulcio certificates (RFC 6962
//! §3.2-3.3), checked offline against the trusted root's `ctlogs`: the
//! certificate transparency log promised to publish the certificate, so a
//! certificate Fulcio issued without logging it is refused.
//!
//! The SCT signs the precertificate: the certificate's TBSCertificate with
//! the SCT list extension removed (re-encoded here with [`crate::der`]),
//! with the SHA-256 of the issuer's public key.

use crate::der::{children, encode, tlv};
use sha2::Digest as _;

/// The SCT list extension, 1.3.6.1.4.1.11129.2.4.2.
const OID_SCT_LIST: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02];

/// A certificate transparency log of the trusted root.
#[derive(Debug, Clone)]
pub struct CtLog {
    /// SHA-256 of its public key (SPKI DER): the SCTs' log ID.
    pub id: [u8; 32],
    /// Its ECDSA P-256 key.
    pub key: p256::ecdsa::VerifyingKey,
    /// When the trusted root says its SCTs may be relied on.
    pub valid: crate::trusted_root::Window,
}

/// Why a certificate's SCTs do not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SctProblem {
    /// The certificate has no SCT list.
    #[error(
        "the certificate carries no signed certificate timestamp (it was not logged for certificate transparency)"
    )]
    Missing,
    /// The list or the certificate is malformed.
    #[error("malformed signed certificate timestamp: {0}")]
    Malformed(&'static str),
    /// No SCT by a trusted log verifies.
    #[error("no signed certificate timestamp by a certificate transparency log of the trusted root verifies")]
    Untrusted,
    /// Fewer than the policy requires.
    #[error(
        "signed certificate timestamps by {found} distinct trusted CT logs verify; the policy requires {required}"
    )]
    TooFew {
        /// Distinct logs whose SCT verified.
        found: usize,
        /// Required.
        required: usize,
    },
}

/// One SCT of a list.
struct Sct<'a> {
    log_id: &'a [u8],
    timestamp: &'a [u8],
    extensions: &'a [u8],
    hash_alg: u8,
    sig_alg: u8,
    signature: &'a [u8],
}

/// Splits a u16-length-prefixed field off `input`.
fn u16_prefixed(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = input.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    (rest.len() >= len).then(|| rest.split_at(len))
}

fn parse_sct(b: &[u8]) -> Option<Sct<'_>> {
    let (&version, rest) = b.split_first()?;
    if version != 0 || rest.len() < 40 {
        return None;
    }
    let (log_id, rest) = rest.split_at(32);
    let (timestamp, rest) = rest.split_at(8);
    let (extensions, rest) = u16_prefixed(rest)?;
    let (&[hash_alg, sig_alg], rest) = rest.split_first_chunk::<2>()?;
    let (signature, rest) = u16_prefixed(rest)?;
    rest.is_empty().then_some(Sct {
        log_id,
        timestamp,
        extensions,
        hash_alg,
        sig_alg,
        signature,
    })
}

/// A certificate taken apart: its SCT list (TLS encoding) and its
/// TBSCertificate with that extension removed (DER).
struct Precert {
    list: Vec<u8>,
    tbs: Vec<u8>,
}

/// The SCT list of a certificate and its precertificate TBS, if it has one.
fn split_certificate(cert: &[u8]) -> Result<Option<Precert>, SctProblem> {
    let m = || SctProblem::Malformed("the certificate is not DER this reader takes apart");
    let (certificate, _) = tlv(cert).map_err(|_| m())?;
    let parts = children(certificate.content).map_err(|_| m())?;
    let tbs = parts.first().filter(|t| t.tag == 0x30).ok_or_else(m)?;
    let mut fields = Vec::new();
    let mut list = None;
    for field in children(tbs.content).map_err(|_| m())? {
        if field.tag != 0xa3 {
            fields.extend_from_slice(field.raw);
            continue;
        }
        // [3] EXPLICIT Extensions: SEQUENCE OF Extension.
        let (exts, _) = tlv(field.content).map_err(|_| m())?;
        let mut kept = Vec::new();
        for ext in children(exts.content).map_err(|_| m())? {
            let inner = children(ext.content).map_err(|_| m())?;
            let is_sct = inner
                .first()
                .is_some_and(|o| o.tag == 0x06 && o.content == OID_SCT_LIST);
            if !is_sct {
                kept.extend_from_slice(ext.raw);
                continue;
            }
            // extnValue OCTET STRING wraps an OCTET STRING of the TLS list.
            let value = inner.last().filter(|v| v.tag == 0x04).ok_or_else(m)?;
            let (octets, _) = tlv(value.content).map_err(|_| m())?;
            list = Some(octets.content.to_vec());
        }
        if !kept.is_empty() {
            fields.extend(encode(0xa3, &encode(0x30, &kept)));
        }
    }
    Ok(list.map(|list| Precert {
        list,
        tbs: encode(0x30, &fields),
    }))
}

/// Checks that `leaf` (DER), issued by the holder of `issuer_spki` (DER),
/// carries SCTs that verify by `required` distinct logs of `logs`.
pub fn verify_embedded(leaf: &[u8], issuer_spki: &[u8], logs: &[CtLog], required: usize) -> Result<(), SctProblem> {
    let Precert { list, tbs: precert_tbs } = split_certificate(leaf)?.ok_or(SctProblem::Missing)?;
    let (scts, rest) = u16_prefixed(&list).ok_or(SctProblem::Malformed("the SCT list"))?;
    if !rest.is_empty() {
        return Err(SctProblem::Malformed("bytes after the SCT list"));
    }
    let issuer_key_hash = sha2::Sha256::digest(issuer_spki);
    let tbs_len = u32::try_from(precert_tbs.len())
        .ok()
        .filter(|l| *l < 1 << 24)
        .ok_or(SctProblem::Malformed("certificate too large"))?;
    let mut verified: Vec<&[u8]> = Vec::new();
    let mut rest = scts;
    while !rest.is_empty() {
        let (one, r) = u16_prefixed(rest).ok_or(SctProblem::Malformed("an SCT's length"))?;
        rest = r;
        let sct = parse_sct(one).ok_or(SctProblem::Malformed("an SCT"))?;
        // sha256 (4) with ecdsa (3): what Sigstore's CT logs sign with.
        if sct.hash_alg != 4 || sct.sig_alg != 3 {
            continue;
        }
        let Some(log) = logs.iter().find(|l| l.id[..] == *sct.log_id) else {
            continue;
        };
        // The SCT's time (milliseconds) within the log's window.
        let millis = u64::from_be_bytes(sct.timestamp.try_into().expect("8 bytes"));
        if !log.valid.contains(i64::try_from(millis / 1000).unwrap_or(i64::MAX)) {
            continue;
        }
        // RFC 6962 §3.2, digitally-signed struct for a precert entry.
        let mut signed = vec![0u8, 0u8];
        signed.extend_from_slice(sct.timestamp);
        signed.extend_from_slice(&[0, 1]);
        signed.extend_from_slice(&issuer_key_hash);
        signed.extend_from_slice(&tbs_len.to_be_bytes()[1..]);
        signed.extend_from_slice(&precert_tbs);
        signed.extend_from_slice(&(sct.extensions.len() as u16).to_be_bytes());
        signed.extend_from_slice(sct.extensions);
        use p256::ecdsa::signature::Verifier as _;
        let ok = p256::ecdsa::Signature::from_der(sct.signature).is_ok_and(|s| log.key.verify(&signed, &s).is_ok());
        if ok && !verified.contains(&sct.log_id) {
            verified.push(sct.log_id);
        }
    }
    match verified.len() {
        n if n >= required.max(1) => Ok(()),
        0 => Err(SctProblem::Untrusted),
        found => Err(SctProblem::TooFew { found, required }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scts_parse_strictly() {
        let mut sct = vec![0u8];
        sct.extend([1u8; 32]);
        sct.extend([0u8; 8]);
        sct.extend([0, 0, 4, 3, 0, 2, 0xaa, 0xbb]);
        let parsed = parse_sct(&sct).unwrap();
        assert_eq!(
            (parsed.hash_alg, parsed.sig_alg, parsed.signature),
            (4, 3, &[0xaa, 0xbb][..])
        );
        assert!(parse_sct(&sct[..sct.len() - 1]).is_none());
        let mut longer = sct.clone();
        longer.push(0);
        assert!(parse_sct(&longer).is_none());
        sct[0] = 1;
        assert!(parse_sct(&sct).is_none());
    }

    #[test]
    fn garbage_certificates_are_refused_by_name() {
        for bad in [&b""[..], b"\x30\x00", b"\x30\x03\x02\x01\x00", b"\x04\x00"] {
            assert!(verify_embedded(bad, b"", &[], 1).is_err());
        }
    }
}
