//! ECDSA on P-521, which ring (behind x509-parser's verifier) lacks: the
//! Notary Project signs with it (ES512, signature-specification.md,
//! "Algorithm Selection") and allows it anywhere in a chain. Verified with
//! RustCrypto's `p521` (spec/design.md), and only for P-521 keys: every
//! other key goes through x509-parser and ring as before.

use p521::ecdsa::signature::hazmat::PrehashVerifier as _;
use p521::ecdsa::{Signature, VerifyingKey};
use sha2::Digest as _;
use x509_parser::prelude::{AlgorithmIdentifier, SubjectPublicKeyInfo, X509Certificate};

const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P521: &str = "1.3.132.0.35";
const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";

/// The P-521 key of `spki`, if it is one.
fn key(spki: &SubjectPublicKeyInfo<'_>) -> Option<VerifyingKey> {
    if spki.algorithm.algorithm.to_id_string() != OID_EC {
        return None;
    }
    let curve = spki.algorithm.parameters.as_ref()?.as_oid().ok()?.to_id_string();
    (curve == OID_P521)
        .then(|| VerifyingKey::from_sec1_bytes(&spki.subject_public_key.data).ok())
        .flatten()
}

/// Whether `spki` is a P-521 key.
pub fn is_p521(spki: &SubjectPublicKeyInfo<'_>) -> bool {
    key(spki).is_some()
}

/// ES512 (RFC 7518 §3.4): `signature` is `r ‖ s`, 66 bytes each, over
/// SHA-512 of `message`, by the uncompressed point `point`.
pub fn verify_es512(point: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let (Ok(k), Ok(sig)) = (VerifyingKey::from_sec1_bytes(point), Signature::from_slice(signature)) else {
        return false;
    };
    k.verify_prehash(&sha2::Sha512::digest(message), &sig).is_ok()
}

/// An X.509 signature (`ecdsa-with-SHA384` or `-SHA512`, DER `r`, `s`)
/// over `message` by a P-521 key. `None` if `spki` is not P-521.
fn verify_der(
    spki: &SubjectPublicKeyInfo<'_>,
    alg: &AlgorithmIdentifier<'_>,
    signature: &[u8],
    message: &[u8],
) -> Option<bool> {
    let k = key(spki)?;
    let Ok(sig) = Signature::from_der(signature) else {
        return Some(false);
    };
    let digest = match alg.algorithm.to_id_string().as_str() {
        OID_ECDSA_SHA384 => sha2::Sha384::digest(message).to_vec(),
        OID_ECDSA_SHA512 => sha2::Sha512::digest(message).to_vec(),
        _ => return Some(false),
    };
    Some(k.verify_prehash(&digest, &sig).is_ok())
}

/// x509-parser's `verify_signature`, and P-521 keys besides.
pub fn verify_signature(
    spki: &SubjectPublicKeyInfo<'_>,
    alg: &AlgorithmIdentifier<'_>,
    signature: &[u8],
    message: &[u8],
) -> bool {
    if let Some(ok) = verify_der(spki, alg, signature, message) {
        return ok;
    }
    let bits = x509_parser::der_parser::asn1_rs::BitString::new(0, signature);
    x509_parser::verify::verify_signature(spki, alg, &bits, message).is_ok()
}

/// Whether `cert` is signed by `issuer`'s key (P-521 included).
pub fn signed_by(cert: &X509Certificate<'_>, issuer: &SubjectPublicKeyInfo<'_>) -> bool {
    let message = cert.tbs_certificate.as_ref();
    match verify_der(issuer, &cert.signature_algorithm, &cert.signature_value.data, message) {
        Some(ok) => ok,
        None => cert.verify_signature(Some(issuer)).is_ok(),
    }
}
