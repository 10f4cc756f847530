//! RFC 6960 OCSP, the two halves a verifier needs: the request for one
//! certificate's status (§4.1.1: one `CertID` by SHA-256 and a nonce, no
//! signature) and the reading of the responder's answer (§4.2.1), whose
//! signature must be the issuing CA's or that of a responder the CA
//! delegated to (§4.2.2.2), and which, if it carries a nonce, must carry
//! the request's (RFC 8954). Pure: the caller fetches, and gives the time
//! and the nonce.

use super::{Answer, CLOCK_SKEW};
use crate::der::{children, encode, generalized_time, tlv, Tlv};
use sha2::Digest as _;
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// id-sha256 (2.16.840.1.101.3.4.2.1), DER content.
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
/// id-pkix-ocsp-basic (1.3.6.1.5.5.7.48.1.1), DER content.
const OID_BASIC: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01];
/// id-pkix-ocsp-nonce (1.3.6.1.5.5.7.48.1.2), DER content.
const OID_NONCE: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02];
/// Nonce length sent: RFC 8954 §2.1 allows 1 to 32 octets and recommends 32.
pub const NONCE_LEN: usize = 32;
/// id-ce-invalidityDate (2.5.29.24), DER content.
const OID_INVALIDITY: &[u8] = &[0x55, 0x1d, 0x18];
/// id-pkix-ocsp-nocheck (1.3.6.1.5.5.7.48.1.5): a delegated responder
/// whose own revocation need not be checked (§4.2.2.2.1).
const OID_NOCHECK: &str = "1.3.6.1.5.5.7.48.1.5";

/// What a verified response says about the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// Its status.
    pub answer: Answer,
    /// Until when the answer holds (`nextUpdate`), if the responder says.
    pub next_update: Option<i64>,
    /// The DER of a delegated responder without `id-pkix-ocsp-nocheck`,
    /// whose own revocation the caller must check (from its CRLs).
    pub unchecked_responder: Option<Vec<u8>>,
}

/// `CertID` (§4.1.1) of `cert` issued by `issuer`: SHA-256 of the issuer's
/// name as the certificate encodes it and of the issuer's public key
/// (the BIT STRING's value), and the serial number.
fn cert_id(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> Vec<u8> {
    let algorithm = encode(0x30, &[encode(0x06, OID_SHA256), vec![0x05, 0x00]].concat());
    let name_hash = sha2::Sha256::digest(cert.issuer().as_raw());
    let key_hash = sha2::Sha256::digest(&issuer.public_key().subject_public_key.data);
    encode(
        0x30,
        &[
            algorithm,
            encode(0x04, &name_hash),
            encode(0x04, &key_hash),
            encode(0x02, cert.raw_serial()),
        ]
        .concat(),
    )
}

/// The DER `OCSPRequest` asking for `cert`'s status, with `nonce`:
/// `SEQUENCE { tbsRequest SEQUENCE { requestList SEQUENCE OF Request,
/// requestExtensions [2] EXPLICIT Extensions } }`,
/// `Request ::= SEQUENCE { reqCert CertID }`, the one extension
/// id-pkix-ocsp-nonce whose value is the DER `Nonce ::= OCTET STRING`
/// (RFC 8954 §2.1).
pub fn request(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>, nonce: &[u8]) -> Vec<u8> {
    let list = encode(0x30, &encode(0x30, &cert_id(cert, issuer)));
    let extension = encode(
        0x30,
        &[encode(0x06, OID_NONCE), encode(0x04, &encode(0x04, nonce))].concat(),
    );
    let extensions = encode(0xa2, &encode(0x30, &extension));
    encode(0x30, &encode(0x30, &[list, extensions].concat()))
}

/// Whether a response's nonce extension value `value` is `sent`: the DER
/// `Nonce` (RFC 8954), or the bare octets some responders wrote under
/// RFC 6960's looser wording.
fn same_nonce(value: &[u8], sent: &[u8]) -> bool {
    match tlv(value) {
        Ok((t, rest)) if t.tag == 0x04 && rest.is_empty() && t.content == sent => true,
        _ => value == sent,
    }
}

/// The key the cache keeps an answer under: the request names it.
pub fn key(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> Vec<u8> {
    cert_id(cert, issuer)
}

fn parts<'a>(content: &'a [u8], what: &str) -> Result<Vec<Tlv<'a>>, String> {
    children(content).map_err(|_| format!("the OCSP response's {what} is not DER"))
}

fn one<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<Tlv<'a>, String> {
    match tlv(input) {
        Ok((t, rest)) if t.tag == tag && rest.is_empty() => Ok(t),
        _ => Err(format!("the OCSP response's {what} is not DER")),
    }
}

/// `responseStatus` values (§4.2.1), named.
fn status_name(code: u8) -> &'static str {
    match code {
        1 => "malformedRequest",
        2 => "internalError",
        3 => "tryLater",
        5 => "sigRequired",
        6 => "unauthorized",
        _ => "an undefined status",
    }
}

/// Whether two `CertID`s name the same certificate: the same hash
/// algorithm (its parameters, NULL or absent, aside), name hash, key hash
/// and serial number.
fn same_cert_id(a: &[u8], b: &[u8]) -> bool {
    let fields = |raw: &[u8]| -> Option<Vec<Vec<u8>>> {
        let (t, _) = tlv(raw).ok()?;
        let f = children(t.content).ok()?;
        let [alg, name, key, serial] = &f[..] else { return None };
        let oid = children(alg.content).ok()?.first()?.content.to_vec();
        Some(vec![oid, name.raw.to_vec(), key.raw.to_vec(), serial.raw.to_vec()])
    };
    matches!((fields(a), fields(b)), (Some(x), Some(y)) if x == y)
}

/// Refuses a critical extension in `list` (`[n] EXPLICIT Extensions`),
/// and returns the value of `wanted` if present.
fn extensions<'a>(list: &Tlv<'a>, wanted: &[u8]) -> Result<Option<&'a [u8]>, String> {
    let seq = one(list.content, 0x30, "extensions")?;
    let mut found = None;
    for ext in parts(seq.content, "extensions")? {
        let f = parts(ext.content, "extension")?;
        let oid = f
            .first()
            .filter(|t| t.tag == 0x06)
            .ok_or("an OCSP extension has no OID")?;
        let critical = f.get(1).is_some_and(|t| t.tag == 0x01 && t.content == [0xff]);
        let value = f
            .last()
            .filter(|t| t.tag == 0x04)
            .ok_or("an OCSP extension has no value")?;
        if oid.content == wanted {
            found = Some(value.content);
        } else if critical {
            return Err("the OCSP response has a critical extension vouch does not process".into());
        }
    }
    Ok(found)
}

/// Verifies `signature` (a BIT STRING) by `alg` (an AlgorithmIdentifier)
/// over `signed` with `key`'s public key.
fn signed_by(key: &X509Certificate<'_>, alg: &Tlv<'_>, signature: &Tlv<'_>, signed: &[u8]) -> bool {
    use x509_parser::prelude::AlgorithmIdentifier;
    let Ok((_, alg)) = AlgorithmIdentifier::from_der(alg.raw) else {
        return false;
    };
    let Some((0, bits)) = signature.content.split_first() else {
        return false;
    };
    crate::p521::verify_signature(key.public_key(), &alg, bits, signed)
}

/// A responder the issuer delegated to (§4.2.2.2): issued and signed by
/// it, valid now, with the id-kp-OCSPSigning extended key usage.
fn delegated_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>, now: i64) -> bool {
    let v = cert.validity();
    cert.issuer() == issuer.subject()
        && crate::p521::signed_by(cert, issuer.public_key())
        && v.not_before.timestamp() <= now
        && now <= v.not_after.timestamp()
        && cert
            .extended_key_usage()
            .ok()
            .flatten()
            .is_some_and(|e| e.value.ocsp_signing)
}

/// Reads a DER `OCSPResponse` for `cert` (issued by `issuer`) at `now`:
/// successful, a basic response, signed by the issuer or a delegated
/// responder, answering for this certificate, current (`thisUpdate` not
/// ahead of `now`, `nextUpdate` not passed). Anything else is an error
/// naming what was wrong: the status is then unavailable from this source.
/// `nonce` is the one the request carried: a response carrying another
/// answered another request (a recorded answer replayed), and is refused;
/// one carrying none is read (most responders send pre-produced answers,
/// RFC 8954 §3), its freshness then resting on its `thisUpdate`.
pub fn read(
    response: &[u8],
    cert: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
    now: i64,
    nonce: Option<&[u8]>,
) -> Result<Reading, String> {
    let outer = one(response, 0x30, "body")?;
    let top = parts(outer.content, "body")?;
    match top.first() {
        Some(s) if s.tag == 0x0a && s.content == [0] => {}
        Some(s) if s.tag == 0x0a && s.content.len() == 1 => {
            return Err(format!("the OCSP responder answered {}", status_name(s.content[0])))
        }
        _ => return Err("the OCSP response has no responseStatus".into()),
    }
    let bytes = top
        .get(1)
        .filter(|t| t.tag == 0xa0)
        .ok_or("the OCSP response is successful but carries no responseBytes")?;
    let bytes = one(bytes.content, 0x30, "responseBytes")?;
    let rb = parts(bytes.content, "responseBytes")?;
    match &rb[..] {
        [oid, _] if oid.tag == 0x06 && oid.content == OID_BASIC => {}
        _ => return Err("the OCSP response is not an id-pkix-ocsp-basic response".into()),
    }
    let basic = one(rb[1].content, 0x30, "BasicOCSPResponse")?;
    let b = parts(basic.content, "BasicOCSPResponse")?;
    let (Some(tbs), Some(alg), Some(sig)) = (b.first(), b.get(1), b.get(2)) else {
        return Err("the OCSP BasicOCSPResponse is incomplete".into());
    };
    if tbs.tag != 0x30 || alg.tag != 0x30 || sig.tag != 0x03 {
        return Err("the OCSP BasicOCSPResponse is not tbsResponseData, signatureAlgorithm, signature".into());
    }
    let data = parts(tbs.content, "tbsResponseData")?;
    let mut at = usize::from(data.first().is_some_and(|t| t.tag == 0xa0));
    if at == 1 && data[0].content != [0x02, 0x01, 0x00] {
        return Err("the OCSP response is not version 1".into());
    }
    at += 1; // responderID: the signature above is what counts.
    let produced = data.get(at).filter(|t| t.tag == 0x18);
    let responses = data.get(at + 1).filter(|t| t.tag == 0x30);
    let (Some(_), Some(responses)) = (produced, responses) else {
        return Err("the OCSP tbsResponseData lacks producedAt or responses".into());
    };
    if let Some(ext) = data.get(at + 2).filter(|t| t.tag == 0xa1) {
        let echoed = extensions(ext, OID_NONCE)?;
        if let (Some(sent), Some(echoed)) = (nonce, echoed) {
            if !same_nonce(echoed, sent) {
                return Err("the OCSP response carries another request's nonce: a replayed answer".into());
            }
        }
    }
    let wanted = cert_id(cert, issuer);
    let mut reading = None;
    for single in parts(responses.content, "responses")? {
        let f = parts(single.content, "SingleResponse")?;
        if f.first().is_some_and(|id| same_cert_id(id.raw, &wanted)) {
            reading = Some(read_single(&f, now)?);
            break;
        }
    }
    let Some(mut reading) = reading else {
        return Err(format!(
            "the OCSP response does not answer for serial {}",
            hex::encode(cert.raw_serial())
        ));
    };
    // §4.2.2.2: the issuer itself, or a responder it delegated to.
    if !signed_by(issuer, alg, sig, tbs.raw) {
        let carried: Vec<Tlv<'_>> = match b.get(3) {
            Some(c) if c.tag == 0xa0 => parts(one(c.content, 0x30, "certs")?.content, "certs")?,
            _ => Vec::new(),
        };
        let signer = carried.iter().find_map(|c| {
            let (_, d) = X509Certificate::from_der(c.raw).ok()?;
            (delegated_by(&d, issuer, now) && signed_by(&d, alg, sig, tbs.raw)).then_some((d, c.raw))
        });
        let Some((responder, raw)) = signer else {
            return Err(format!(
                "the OCSP response is signed neither by the issuer {} nor by a responder it delegated to",
                issuer.subject()
            ));
        };
        let nocheck = responder
            .extensions()
            .iter()
            .any(|e| e.oid.to_id_string() == OID_NOCHECK);
        if !nocheck {
            reading.unchecked_responder = Some(raw.to_vec());
        }
    }
    Ok(reading)
}

/// One `SingleResponse` (§4.2.1): certStatus, thisUpdate, nextUpdate and
/// the invalidity date among its extensions.
fn read_single(f: &[Tlv<'_>], now: i64) -> Result<Reading, String> {
    let time = |t: Option<&Tlv<'_>>, what: &str| -> Result<i64, String> {
        let t = t
            .filter(|t| t.tag == 0x18)
            .ok_or(format!("the OCSP response's {what} is missing"))?;
        generalized_time(t.content).map_err(|_| format!("the OCSP response's {what} is not a GeneralizedTime"))
    };
    let status = f.get(1).ok_or("the OCSP SingleResponse has no certStatus")?;
    let this_update = time(f.get(2), "thisUpdate")?;
    let mut rest = f.iter().skip(3);
    let mut next_update = None;
    let mut invalidity = None;
    for t in &mut rest {
        match t.tag {
            0xa0 => next_update = Some(time(Some(&one(t.content, 0x18, "nextUpdate")?), "nextUpdate")?),
            0xa1 => {
                if let Some(v) = extensions(t, OID_INVALIDITY)? {
                    invalidity = Some(time(Some(&one(v, 0x18, "invalidityDate")?), "invalidityDate")?);
                }
            }
            _ => return Err("the OCSP SingleResponse has an unknown field".into()),
        }
    }
    if this_update > now + CLOCK_SKEW {
        return Err("the OCSP response's thisUpdate is in the future".into());
    }
    // Without nextUpdate ("newer information is always available",
    // §4.2.2.1) the answer holds for a day from thisUpdate.
    let expires = next_update.unwrap_or(this_update + super::MAX_AGE_WITHOUT_NEXT_UPDATE);
    if now > expires + CLOCK_SKEW {
        return Err(format!("the OCSP response expired at {}", super::shown(expires)));
    }
    let answer = match status.tag {
        0x80 => Answer::Good,
        0x82 => Answer::Unknown,
        0xa1 => {
            let r = parts(status.content, "RevokedInfo")?;
            let at = time(r.first(), "revocationTime")?;
            let reason = match r.get(1) {
                Some(t) if t.tag == 0xa0 => match one(t.content, 0x0a, "revocationReason")?.content {
                    [code] => Some(*code),
                    _ => return Err("the OCSP response's revocationReason is not one byte".into()),
                },
                _ => None,
            };
            Answer::Revoked { at, reason, invalidity }
        }
        _ => return Err("the OCSP certStatus is not good, revoked or unknown".into()),
    };
    Ok(Reading {
        answer,
        next_update,
        unchecked_responder: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_echoed_as_the_der_nonce_or_its_bare_octets() {
        let sent = [7u8; NONCE_LEN];
        assert!(same_nonce(&encode(0x04, &sent), &sent));
        assert!(same_nonce(&sent, &sent), "RFC 6960's bare octets");
        let mut other = sent;
        other[31] ^= 1;
        assert!(!same_nonce(&encode(0x04, &other), &sent));
        assert!(!same_nonce(&other, &sent));
        // Not a prefix, not a longer OCTET STRING, not another type.
        assert!(!same_nonce(&encode(0x04, &sent[..16]), &sent));
        assert!(!same_nonce(&encode(0x04, &[&sent[..], &[0]].concat()), &sent));
        assert!(!same_nonce(&encode(0x0c, &sent), &sent));
    }
}
