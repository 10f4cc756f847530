//! RFC 3161 timestamps, as Sigstore bundles carry them
//! (`timestampVerificationData.rfc3161Timestamps[].signedTimestamp`): a
//! CMS `ContentInfo` (RFC 5652) holding `SignedData` over a `TSTInfo`
//! (RFC 3161 §2.4.2). Verified offline against the timestamp authorities of
//! a Sigstore trusted root: the token is signed by a trusted authority's
//! signing certificate (the first of its chain), which is valid and for
//! timestamping at the time
//! the token states; the signed attributes hold the content type and the
//! digest of the `TSTInfo`; the `TSTInfo`'s message imprint is the hash of
//! the signed bytes. Returns that time. The bundle may carry the whole
//! TimeStampResp (as Sigstore's do) or the bare token. When a trusted
//! authority's chain starts with its CA rather than its signing
//! certificate, a certificate the token carries counts if that CA issued
//! it, directly or through intermediate CAs the token also carries.
//!
//! Only what these tokens use is parsed, by a small DER reader; anything
//! else is refused by name.

use crate::der::Tlv;
use x509_parser::prelude::{FromDer as _, X509Certificate};

const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const OID_TST_INFO: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x04];
const OID_CONTENT_TYPE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03];
const OID_MESSAGE_DIGEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const OID_SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_RSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
const OID_RSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
const OID_RSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
/// The baseline time-stamp policy of RFC 3628 (ETSI TS 102 023), 0.4.0.2023.1.1.
const OID_BASELINE_POLICY: &[u8] = &[0x04, 0x00, 0x8f, 0x67, 0x01, 0x01];
/// id-kp-timeStamping, 1.3.6.1.5.5.7.3.8.
const OID_KP_TIMESTAMPING: &str = "1.3.6.1.5.5.7.3.8";

/// A timestamp authority of a trusted root.
#[derive(Debug, Clone)]
pub struct TimestampAuthority {
    /// Its certificate chain, DER, signing certificate first.
    pub chain: Vec<Vec<u8>>,
    /// When the trusted root says it may be used (seconds since the epoch).
    pub valid_from: Option<i64>,
    /// Until when, if it says.
    pub valid_to: Option<i64>,
}

/// Why a timestamp does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampProblem {
    /// The token is not a timestamp token vouch reads.
    #[error("malformed RFC 3161 timestamp: {0}")]
    Malformed(&'static str),
    /// It is for other bytes than the signature.
    #[error("the RFC 3161 timestamp is for other bytes than the signature")]
    OtherData,
    /// No trusted timestamp authority signed it (valid, at its time).
    #[error("the RFC 3161 timestamp is not signed by a trusted timestamp authority valid at its time")]
    Untrusted,
}

fn tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), TimestampProblem> {
    crate::der::tlv(input).map_err(|_| TimestampProblem::Malformed("truncated or invalid DER"))
}

fn children(content: &[u8]) -> Result<Vec<Tlv<'_>>, TimestampProblem> {
    crate::der::children(content).map_err(|_| TimestampProblem::Malformed("truncated or invalid DER"))
}

fn expect<'a>(t: Option<&Tlv<'a>>, tag: u8, what: &'static str) -> Result<Tlv<'a>, TimestampProblem> {
    t.filter(|t| t.tag == tag)
        .copied()
        .ok_or(TimestampProblem::Malformed(what))
}

/// The hash of `data` by a digest algorithm OID.
fn digest(alg: &[u8], data: &[u8]) -> Result<Vec<u8>, TimestampProblem> {
    use sha2::Digest as _;
    Ok(match alg {
        OID_SHA256 => sha2::Sha256::digest(data).to_vec(),
        OID_SHA384 => sha2::Sha384::digest(data).to_vec(),
        OID_SHA512 => sha2::Sha512::digest(data).to_vec(),
        _ => return Err(TimestampProblem::Malformed("unsupported digest algorithm")),
    })
}

/// The OID inside an AlgorithmIdentifier SEQUENCE.
fn algorithm<'a>(t: &Tlv<'a>) -> Result<&'a [u8], TimestampProblem> {
    let parts = children(t.content)?;
    Ok(expect(parts.first(), 0x06, "algorithm identifier")?.content)
}

/// `YYYYMMDDHHMMSS[.f+]Z` as seconds since the epoch.
fn generalized_time(text: &[u8]) -> Result<i64, TimestampProblem> {
    crate::der::generalized_time(text).map_err(|_| TimestampProblem::Malformed("genTime is not a GeneralizedTime"))
}

/// What a token says, before any signature is checked.
struct Token<'a> {
    tst_info: &'a [u8],
    /// `[0] IMPLICIT SignedAttributes`, as encoded.
    signed_attrs: Tlv<'a>,
    digest_alg: &'a [u8],
    signature_alg: &'a [u8],
    signature: &'a [u8],
    /// Certificates the token carries (DER), trusted only if they chain to
    /// a trusted authority.
    certificates: Vec<&'a [u8]>,
}

/// The token of a TimeStampResp (`SEQUENCE { PKIStatusInfo, token }`, what
/// Sigstore bundles carry, RFC 3161 §2.4.2), or the token itself.
fn unwrap_response(der: &[u8]) -> Result<&[u8], TimestampProblem> {
    let m = TimestampProblem::Malformed;
    let (outer, rest) = tlv(der)?;
    if outer.tag != 0x30 || !rest.is_empty() {
        return Err(m("not a TimeStampResp or a ContentInfo"));
    }
    let parts = children(outer.content)?;
    if parts.first().is_some_and(|p| p.tag == 0x06) {
        return Ok(der); // a ContentInfo: the bare token
    }
    let status = children(expect(parts.first(), 0x30, "PKIStatusInfo")?.content)?;
    // granted (0) or grantedWithMods (1)
    let granted = expect(status.first(), 0x02, "PKIStatus")?.content;
    if granted != [0] && granted != [1] {
        return Err(m("the response's status is not granted"));
    }
    Ok(expect(parts.get(1), 0x30, "the response has no token")?.raw)
}

fn parse_token(der: &[u8]) -> Result<Token<'_>, TimestampProblem> {
    let m = TimestampProblem::Malformed;
    let der = unwrap_response(der)?;
    let (info, _) = tlv(der)?;
    let info = children(info.content)?;
    if expect(info.first(), 0x06, "content type")?.content != OID_SIGNED_DATA {
        return Err(m("not CMS SignedData"));
    }
    let wrapped = expect(info.get(1), 0xa0, "SignedData")?;
    let signed_data = expect(children(wrapped.content)?.first(), 0x30, "SignedData")?;
    let sd = children(signed_data.content)?;
    // version, digestAlgorithms, encapContentInfo, [certificates], [crls], signerInfos
    let encap = children(expect(sd.get(2), 0x30, "encapContentInfo")?.content)?;
    if expect(encap.first(), 0x06, "eContentType")?.content != OID_TST_INFO {
        return Err(m("the signed content is not a TSTInfo"));
    }
    let econtent = expect(encap.get(1), 0xa0, "eContent")?;
    let tst_info = expect(children(econtent.content)?.first(), 0x04, "eContent")?.content;
    let certificates: Vec<&[u8]> = match sd.get(3).filter(|t| t.tag == 0xa0) {
        Some(set) => children(set.content)?.into_iter().map(|c| c.raw).collect(),
        None => Vec::new(),
    };
    let signer_infos = expect(sd.last(), 0x31, "signerInfos")?;
    let signers = children(signer_infos.content)?;
    if signers.len() != 1 {
        return Err(m("exactly one SignerInfo is read"));
    }
    let si = children(expect(signers.first(), 0x30, "SignerInfo")?.content)?;
    // version, sid, digestAlgorithm, [0] signedAttrs, signatureAlgorithm, signature
    let digest_alg = algorithm(&expect(si.get(2), 0x30, "digestAlgorithm")?)?;
    let signed_attrs = expect(si.get(3), 0xa0, "signedAttrs (required)")?;
    let signature_alg = algorithm(&expect(si.get(4), 0x30, "signatureAlgorithm")?)?;
    let signature = expect(si.get(5), 0x04, "signature")?.content;
    Ok(Token {
        tst_info,
        signed_attrs,
        digest_alg,
        signature_alg,
        signature,
        certificates,
    })
}

/// The signed attributes hold the TSTInfo content type and its digest.
fn check_signed_attrs(t: &Token<'_>) -> Result<(), TimestampProblem> {
    let m = TimestampProblem::Malformed;
    let (mut content_type, mut message_digest) = (None, None);
    for attr in children(t.signed_attrs.content)? {
        let parts = children(expect(Some(&attr), 0x30, "attribute")?.content)?;
        let oid = expect(parts.first(), 0x06, "attribute type")?.content;
        let values = children(expect(parts.get(1), 0x31, "attribute values")?.content)?;
        let value = values.first().copied();
        match oid {
            OID_CONTENT_TYPE => content_type = value.filter(|v| v.tag == 0x06).map(|v| v.content),
            OID_MESSAGE_DIGEST => message_digest = value.filter(|v| v.tag == 0x04).map(|v| v.content),
            _ => {}
        }
    }
    if content_type != Some(OID_TST_INFO) {
        return Err(m("the signed content type is not TSTInfo"));
    }
    if message_digest != Some(&digest(t.digest_alg, t.tst_info)?[..]) {
        return Err(m("the signed message digest is not the TSTInfo's"));
    }
    Ok(())
}

/// The TSTInfo's message imprint (algorithm, hash) and time.
fn read_tst_info(der: &[u8]) -> Result<TstInfo<'_>, TimestampProblem> {
    let (seq, _) = tlv(der)?;
    let f = children(expect(Some(&seq), 0x30, "TSTInfo")?.content)?;
    // version, policy, messageImprint, serialNumber, genTime, accuracy?, ...
    let imprint = children(expect(f.get(2), 0x30, "messageImprint")?.content)?;
    let alg = algorithm(&expect(imprint.first(), 0x30, "messageImprint algorithm")?)?;
    let hashed = expect(imprint.get(1), 0x04, "hashedMessage")?.content;
    let time = generalized_time(expect(f.get(4), 0x18, "genTime")?.content)?;
    let policy = expect(f.get(1), 0x06, "policy")?.content;
    let accuracy = match f.get(5).filter(|a| a.tag == 0x30) {
        Some(a) => Some(accuracy_seconds(a.content)?),
        None => None,
    };
    // RFC 3628 §5.2 (as the Notary Project's trust policy reads it): the
    // baseline time-stamp policy without an accuracy means one second.
    let accuracy = accuracy.unwrap_or(if policy == OID_BASELINE_POLICY { 1 } else { 0 });
    Ok(TstInfo {
        imprint_alg: alg,
        imprint: hashed,
        time,
        accuracy,
    })
}

/// The fields of a TSTInfo vouch reads.
struct TstInfo<'a> {
    imprint_alg: &'a [u8],
    imprint: &'a [u8],
    time: i64,
    /// `accuracy` in whole seconds, rounded up (0 if absent).
    accuracy: i64,
}

/// RFC 3161 §2.4.2 `Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL,
/// millis [0] INTEGER (1..999) OPTIONAL, micros [1] INTEGER (1..999)
/// OPTIONAL }`, in whole seconds, rounded up.
fn accuracy_seconds(content: &[u8]) -> Result<i64, TimestampProblem> {
    let small = |t: &Tlv<'_>| -> Result<i64, TimestampProblem> {
        if t.content.is_empty() || t.content.len() > 4 {
            return Err(TimestampProblem::Malformed("accuracy"));
        }
        Ok(t.content.iter().fold(0i64, |acc, b| (acc << 8) | i64::from(*b)))
    };
    let (mut seconds, mut micros) = (0i64, 0i64);
    for t in children(content)? {
        match t.tag {
            0x02 => seconds = small(&t)?,
            0x80 => micros += small(&t)? * 1000,
            0x81 => micros += small(&t)?,
            _ => return Err(TimestampProblem::Malformed("accuracy")),
        }
    }
    Ok(seconds + (micros + 999_999) / 1_000_000)
}

/// Whether `cert` signed `message` with the token's algorithm: ECDSA
/// (P-256, P-384) with SHA-256 or SHA-384, RSA PKCS #1 v1.5 with SHA-256,
/// 384 or 512 (`rsaEncryption` names the hash by the digest algorithm),
/// through x509-parser's ring-backed verifier.
fn signed_by(cert: &X509Certificate<'_>, alg: &[u8], digest_alg: &[u8], message: &[u8], sig: &[u8]) -> bool {
    use x509_parser::prelude::{AlgorithmIdentifier, FromDer as _};
    let alg: &[u8] = match (alg, digest_alg) {
        (OID_RSA, OID_SHA256) => OID_RSA_SHA256,
        (OID_RSA, OID_SHA384) => OID_RSA_SHA384,
        (OID_RSA, OID_SHA512) => OID_RSA_SHA512,
        (alg, _) => alg,
    };
    let encoded = crate::der::encode(0x30, &crate::der::encode(0x06, alg));
    let Ok((_, alg)) = AlgorithmIdentifier::from_der(&encoded) else {
        return false;
    };
    let sig = x509_parser::der_parser::asn1_rs::BitString::new(0, sig);
    x509_parser::verify::verify_signature(cert.public_key(), &alg, &sig, message).is_ok()
}

/// Whether `cert` may sign timestamps at `time`: valid then, with the
/// timeStamping extended key usage.
fn timestamping_at(cert: &X509Certificate<'_>, time: i64) -> bool {
    let valid = cert.validity().not_before.timestamp() <= time && time <= cert.validity().not_after.timestamp();
    let for_timestamping = cert.extended_key_usage().ok().flatten().is_some_and(|eku| {
        eku.value.time_stamping || eku.value.other.iter().any(|o| o.to_id_string() == OID_KP_TIMESTAMPING)
    });
    valid && for_timestamping
}

/// Most intermediate CAs between a trusted authority's CA and the
/// signing certificate, among the certificates a token carries.
const MAX_INTERMEDIATES: usize = 3;

/// The certificates that may have signed a token for `tsa` at `time`,
/// each with its chain to the trusted certificate (DER, the signer first):
/// its first certificate; or, when that is a CA (a trust store of roots,
/// as Notation's `tsa` store is), a certificate the token carries that
/// this CA issued, directly or through carried intermediate CAs (at most
/// [`MAX_INTERMEDIATES`], each valid at `time` and allowed to sign
/// certificates), as public timestamp authorities' tokens chain.
fn signers<'a>(
    tsa: &'a TimestampAuthority,
    carried: &[&'a [u8]],
    time: i64,
) -> Vec<(X509Certificate<'a>, Vec<&'a [u8]>)> {
    let Some((root_der, Ok((_, first)))) = tsa.chain.first().map(|d| (d.as_slice(), X509Certificate::from_der(d)))
    else {
        return Vec::new();
    };
    if !first.is_ca() {
        return vec![(first, tsa.chain.iter().map(|d| d.as_slice()).collect())];
    }
    let carried: Vec<(&'a [u8], X509Certificate<'a>)> = carried
        .iter()
        .filter_map(|der| X509Certificate::from_der(der).ok().map(|(_, c)| (*der, c)))
        .collect();
    let issued_by = |c: &X509Certificate<'_>, ca: &X509Certificate<'_>| {
        c.issuer() == ca.subject() && c.verify_signature(Some(ca.public_key())).is_ok()
    };
    let may_issue = |c: &X509Certificate<'_>| {
        let valid = c.validity().not_before.timestamp() <= time && time <= c.validity().not_after.timestamp();
        let signs = c.key_usage().ok().flatten().is_none_or(|k| k.value.key_cert_sign());
        c.is_ca() && valid && signs
    };
    // The CAs known to chain to the trusted one, found a level at a time,
    // each with the chain from it to the trusted one.
    let mut known: Vec<(&X509Certificate<'a>, Vec<&'a [u8]>)> = vec![(&first, vec![root_der])];
    for _ in 0..MAX_INTERMEDIATES {
        let mut next = Vec::new();
        for (der, c) in &carried {
            let seen = known
                .iter()
                .any(|(k, _)| k.subject() == c.subject() && k.public_key() == c.public_key());
            if !may_issue(c) || seen {
                continue;
            }
            if let Some((_, up)) = known.iter().find(|(ca, _)| issued_by(c, ca)) {
                next.push((c, [vec![*der], up.clone()].concat()));
            }
        }
        if next.is_empty() {
            break;
        }
        known.extend(next);
    }
    carried
        .iter()
        .filter(|(_, c)| !c.is_ca())
        .filter_map(|(der, c)| {
            let (_, up) = known.iter().find(|(ca, _)| issued_by(c, ca))?;
            Some((c.clone(), [vec![*der], up.clone()].concat()))
        })
        .collect()
}

/// Verifies `token` (DER) as a timestamp of `signed` by one of `tsas`;
/// returns its time (seconds since the epoch) and which authority signed.
pub fn verify(token: &[u8], signed: &[u8], tsas: &[TimestampAuthority]) -> Result<(i64, usize), TimestampProblem> {
    verify_with_chain(token, signed, tsas).map(|s| (s.time, s.by))
}

/// A verified timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    /// `genTime`, seconds since the epoch.
    pub time: i64,
    /// Its accuracy in whole seconds (RFC 3161 §2.4.2; one second for the
    /// RFC 3628 baseline policy when it states none): the signature was
    /// made within `time ± accuracy`.
    pub accuracy: i64,
    /// Which authority signed.
    pub by: usize,
    /// The signing certificate and its chain to the trusted certificate,
    /// DER, signer first (for revocation checks).
    pub chain: Vec<Vec<u8>>,
}

/// [`verify`], with the token's accuracy and the signer's chain.
pub fn verify_with_chain(
    token: &[u8],
    signed: &[u8],
    tsas: &[TimestampAuthority],
) -> Result<Stamped, TimestampProblem> {
    let t = parse_token(token)?;
    check_signed_attrs(&t)?;
    let TstInfo {
        imprint_alg,
        imprint,
        time,
        accuracy,
    } = read_tst_info(t.tst_info)?;
    if digest(imprint_alg, signed)? != imprint {
        return Err(TimestampProblem::OtherData);
    }
    // The signature covers the DER of the signed attributes as a SET
    // (RFC 5652 §5.4): the [0] IMPLICIT tag replaced by 0x31.
    let mut attrs = t.signed_attrs.raw.to_vec();
    attrs[0] = 0x31;
    for (by, tsa) in tsas.iter().enumerate() {
        let in_window = tsa.valid_from.is_none_or(|f| f <= time) && tsa.valid_to.is_none_or(|u| time <= u);
        if !in_window {
            continue;
        }
        let signer = signers(tsa, &t.certificates, time).into_iter().find(|(cert, _)| {
            timestamping_at(cert, time) && signed_by(cert, t.signature_alg, t.digest_alg, &attrs, t.signature)
        });
        if let Some((_, chain)) = signer {
            return Ok(Stamped {
                time,
                accuracy,
                by,
                chain: chain.into_iter().map(<[u8]>::to_vec).collect(),
            });
        }
    }
    Err(TimestampProblem::Untrusted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_times_parse_to_unix_seconds() {
        assert_eq!(generalized_time(b"20261207053812Z"), Ok(1_796_621_892));
        assert_eq!(generalized_time(b"20261207053812.123Z"), Ok(1_796_621_892));
        for bad in [
            &b"20261207053812"[..],
            b"2026120705381Z",
            b"20261307053812Z",
            b"2026120705381xZ",
        ] {
            assert!(generalized_time(bad).is_err());
        }
    }

    #[test]
    fn accuracy_is_whole_seconds_rounded_up() {
        use crate::der::encode;
        let acc = |parts: &[Vec<u8>]| accuracy_seconds(&parts.concat());
        assert_eq!(acc(&[encode(0x02, &[1])]), Ok(1));
        assert_eq!(acc(&[encode(0x02, &[1]), encode(0x80, &[0x01, 0xf4])]), Ok(2), "1.5 s");
        assert_eq!(acc(&[encode(0x81, &[1])]), Ok(1), "1 µs rounds up");
        assert_eq!(acc(&[]), Ok(0));
        assert!(acc(&[encode(0x04, &[1])]).is_err());
        assert!(acc(&[encode(0x02, &[1, 2, 3, 4, 5])]).is_err());
    }

    #[test]
    fn garbage_is_refused_by_name_never_a_panic() {
        for bad in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x03\x06\x01\x00",
            b"\x1f\x00",
        ] {
            assert!(matches!(verify(bad, b"x", &[]), Err(TimestampProblem::Malformed(_))));
        }
    }
}
