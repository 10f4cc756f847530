//! The certificate chain of a Notation signature (`x5c`): its ordering,
//! the Notary Project's certificate requirements
//! (signature-specification.md, "Certificate Requirements"), the trust
//! store it must end in, and the facts the later checks read (validity
//! periods, the signing certificate's subject and key).

use super::NotationProblem;
use x509_parser::prelude::{FromDer as _, X509Certificate};

const OID_SHA1_RSA: &str = "1.2.840.113549.1.1.5";
const OID_SHA1_ECDSA: &str = "1.2.840.10045.4.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";

/// The signing key's algorithm, which decides the JWS `alg`
/// (signature-specification.md, "Algorithm Selection").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    /// RSASSA-PSS with SHA-256 (2048-bit keys), PS256.
    Ps256,
    /// RSASSA-PSS with SHA-384 (3072-bit), PS384.
    Ps384,
    /// RSASSA-PSS with SHA-512 (4096-bit), PS512.
    Ps512,
    /// ECDSA P-256 with SHA-256, ES256.
    Es256,
    /// ECDSA P-384 with SHA-384, ES384.
    Es384,
    /// ECDSA P-521 with SHA-512, ES512 (verified by `crate::p521`).
    Es512,
}

impl KeyAlg {
    /// The JWS `alg` value.
    pub fn jws(self) -> &'static str {
        match self {
            KeyAlg::Ps256 => "PS256",
            KeyAlg::Ps384 => "PS384",
            KeyAlg::Ps512 => "PS512",
            KeyAlg::Es256 => "ES256",
            KeyAlg::Es384 => "ES384",
            KeyAlg::Es512 => "ES512",
        }
    }
}

/// A parsed, ordered chain: signing certificate first, root last.
#[derive(Debug)]
pub struct Chain<'a> {
    /// The certificates.
    pub certs: Vec<X509Certificate<'a>>,
    /// The DER of each.
    pub ders: &'a [Vec<u8>],
}

/// Bit length of a big-endian unsigned integer.
fn bit_length(bytes: &[u8]) -> usize {
    let trimmed: &[u8] = match bytes.iter().position(|b| *b != 0) {
        Some(i) => &bytes[i..],
        None => return 0,
    };
    (trimmed.len() - 1) * 8 + (8 - trimmed[0].leading_zeros() as usize)
}

/// The signing algorithm a certificate's key implies, and its raw public
/// key (PKCS #1 `RSAPublicKey` or the uncompressed EC point) as ring reads it.
pub fn key_alg<'a>(cert: &'a X509Certificate<'a>) -> Result<(KeyAlg, &'a [u8]), NotationProblem> {
    let spki = cert.public_key();
    let raw: &[u8] = &spki.subject_public_key.data;
    let weak = |what: String| NotationProblem::Certificate(format!("the signing certificate's key is {what}"));
    match spki.algorithm.algorithm.to_id_string().as_str() {
        OID_RSA => {
            let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = spki.parsed() else {
                return Err(weak("not a readable RSA key".into()));
            };
            match bit_length(rsa.modulus) {
                2048 => Ok((KeyAlg::Ps256, raw)),
                3072 => Ok((KeyAlg::Ps384, raw)),
                4096 => Ok((KeyAlg::Ps512, raw)),
                n => Err(weak(format!("RSA {n} bits (Notation signs with 2048, 3072 or 4096)"))),
            }
        }
        OID_EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            match curve.as_str() {
                OID_P256 => Ok((KeyAlg::Es256, raw)),
                OID_P384 => Ok((KeyAlg::Es384, raw)),
                OID_P521 => Ok((KeyAlg::Es512, raw)),
                other => Err(weak(format!(
                    "on curve {other:?} (Notation signs with P-256, P-384 or P-521)"
                ))),
            }
        }
        other => Err(weak(format!("of algorithm {other} (Notation signs with RSA or ECDSA)"))),
    }
}

/// Whether the parts of a certificate its signature does not cover are
/// strict: the outer `signatureAlgorithm` encoded exactly as
/// `tbsCertificate.signature` (the field after the optional version and
/// the serial number), and the `signatureValue` a BIT STRING of whole
/// bytes. Nothing else follows.
fn strict_unsigned_parts(der: &[u8]) -> bool {
    use crate::der::{children, tlv};
    let Ok((cert, _)) = tlv(der) else { return false };
    let Ok(parts) = children(cert.content) else {
        return false;
    };
    let [tbs, outer, value] = &parts[..] else { return false };
    if value.tag != 0x03 || value.content.first() != Some(&0) {
        return false;
    }
    let Ok(fields) = children(tbs.content) else {
        return false;
    };
    let skip = usize::from(fields.first().is_some_and(|f| f.tag == 0xa0));
    fields.get(skip + 1).is_some_and(|inner| inner.raw == outer.raw)
}

/// Parses `x5c` (DER, signing certificate first) and checks its order: each
/// certificate issued and signed by the next, the last self-signed
/// (signature-specification.md, "Other requirements"), no SHA-1.
pub fn parse(ders: &[Vec<u8>]) -> Result<Chain<'_>, NotationProblem> {
    let bad = |m: String| NotationProblem::Certificate(m);
    if ders.is_empty() {
        return Err(bad("x5c holds no certificate".into()));
    }
    if ders.len() > 8 {
        return Err(bad(format!(
            "x5c holds {} certificates; at most 8 are read",
            ders.len()
        )));
    }
    let mut certs = Vec::new();
    for (i, der) in ders.iter().enumerate() {
        let (rest, c) = X509Certificate::from_der(der).map_err(|e| bad(format!("x5c[{i}] is not X.509: {e}")))?;
        if !rest.is_empty() {
            return Err(bad(format!("x5c[{i}] has bytes after the certificate")));
        }
        let alg = c.signature_algorithm.algorithm.to_id_string();
        if alg == OID_SHA1_RSA || alg == OID_SHA1_ECDSA {
            return Err(bad(format!("x5c[{i}] is signed with SHA-1")));
        }
        // RFC 5280 §4.1.1.2: the outer signatureAlgorithm, which the
        // signature does not cover, must be the one the signed part names,
        // byte for byte (x509-parser reads both leniently).
        if !strict_unsigned_parts(der) {
            return Err(bad(format!(
                "x5c[{i}]'s signatureAlgorithm or signatureValue is not strict DER (RFC 5280 §4.1.1.2-3)"
            )));
        }
        certs.push(c);
    }
    for i in 0..certs.len() {
        let issuer = certs.get(i + 1).unwrap_or(&certs[i]);
        let ok = certs[i].issuer() == issuer.subject() && crate::p521::signed_by(&certs[i], issuer.public_key());
        if !ok {
            return Err(bad(match i + 1 == certs.len() {
                true => format!("x5c[{i}], the last certificate, is not a self-signed root"),
                false => format!(
                    "x5c[{i}] is not issued by x5c[{}] (x5c must be ordered leaf to root)",
                    i + 1
                ),
            }));
        }
    }
    let chain = Chain { certs, ders };
    chain.check_requirements()?;
    Ok(chain)
}

impl Chain<'_> {
    /// The signing certificate.
    pub fn leaf(&self) -> &X509Certificate<'_> {
        &self.certs[0]
    }

    /// signature-specification.md, "Certificate Requirements": CAs with
    /// critical basicConstraints cA (and pathLen honoured) and critical
    /// keyUsage keyCertSign; the signing certificate with critical keyUsage
    /// digitalSignature only (of the forbidden bits), not a CA, and no
    /// extended key usage but code signing; keys of at least 2048 (RSA)
    /// or 256 (EC) bits. A chain of one root is checked as a leaf.
    fn check_requirements(&self) -> Result<(), NotationProblem> {
        let bad = |m: String| NotationProblem::Certificate(m);
        for (i, c) in self.certs.iter().enumerate().skip(1) {
            let bc = c.basic_constraints().ok().flatten();
            match bc {
                Some(b) if b.critical && b.value.ca => {
                    if let Some(limit) = b.value.path_len_constraint {
                        // Intermediate CAs below this one.
                        if (i - 1) as u32 > limit {
                            return Err(bad(format!("x5c[{i}]'s pathLenConstraint {limit} is exceeded")));
                        }
                    }
                }
                _ => {
                    return Err(bad(format!(
                        "x5c[{i}] is a CA without critical basicConstraints cA=true"
                    )))
                }
            }
            let ku = c.key_usage().ok().flatten();
            if !ku.is_some_and(|k| k.critical && k.value.key_cert_sign()) {
                return Err(bad(format!("x5c[{i}] is a CA without critical keyUsage keyCertSign")));
            }
        }
        let leaf = self.leaf();
        if let Some(b) = leaf.basic_constraints().ok().flatten() {
            if b.value.ca {
                return Err(bad("the signing certificate is a CA (basicConstraints cA=true)".into()));
            }
        }
        let ku = leaf.key_usage().ok().flatten();
        let Some(ku) = ku.filter(|k| k.critical && k.value.digital_signature()) else {
            return Err(bad(
                "the signing certificate lacks critical keyUsage digitalSignature".into()
            ));
        };
        let k = ku.value;
        if k.key_encipherment()
            || k.data_encipherment()
            || k.key_agreement()
            || k.key_cert_sign()
            || k.crl_sign()
            || k.encipher_only()
            || k.decipher_only()
        {
            return Err(bad("the signing certificate's keyUsage allows more than signing".into()));
        }
        if let Some(eku) = leaf.extended_key_usage().ok().flatten() {
            let e = eku.value;
            if e.any || e.server_auth || e.client_auth || e.email_protection || e.time_stamping {
                return Err(bad(
                    "the signing certificate's extendedKeyUsage is not for code signing".into(),
                ));
            }
        }
        for (i, c) in self.certs.iter().enumerate() {
            let bits = c.public_key().parsed().map(|k| match k {
                x509_parser::public_key::PublicKey::RSA(r) => (bit_length(r.modulus), 2048),
                x509_parser::public_key::PublicKey::EC(e) => (e.key_size(), 256),
                _ => (0, 1),
            });
            if !bits.is_ok_and(|(n, min)| n >= min) {
                return Err(bad(format!("x5c[{i}]'s key is too short or not RSA or EC")));
            }
        }
        Ok(())
    }

    /// Whether the root is one of `store` (DER): the chain leads to a
    /// trusted certificate. Compared as bytes, so a look-alike root with
    /// the same name and another key is not trusted.
    pub fn trusted_by(&self, store: &[Vec<u8>]) -> bool {
        let root = self.ders.last().expect("a chain is never empty");
        store.iter().any(|s| s == root)
    }

    /// The first certificate not valid over `[from, to]`, if any.
    pub fn invalid_during(&self, from: i64, to: i64) -> Option<String> {
        self.certs.iter().enumerate().find_map(|(i, c)| {
            let v = c.validity();
            let ok = v.not_before.timestamp() <= from && to <= v.not_after.timestamp();
            (!ok).then(|| {
                format!(
                    "x5c[{i}] ({}) is valid {} to {}",
                    c.subject(),
                    v.not_before.to_datetime(),
                    v.not_after.to_datetime()
                )
            })
        })
    }
}

/// A certificate subject's attributes by short name (C, ST, L, O, OU, CN,
/// else the dotted OID), in order.
pub fn subject_attributes(cert: &X509Certificate<'_>) -> Vec<(String, String)> {
    cert.subject()
        .iter_attributes()
        .map(|a| {
            let oid = a.attr_type().to_id_string();
            let name = match oid.as_str() {
                "2.5.4.6" => "C",
                "2.5.4.8" => "ST",
                "2.5.4.7" => "L",
                "2.5.4.10" => "O",
                "2.5.4.11" => "OU",
                "2.5.4.3" => "CN",
                "2.5.4.5" => "SERIALNUMBER",
                "1.2.840.113549.1.9.1" => "E",
                other => other,
            };
            (name.to_owned(), a.as_str().unwrap_or("").to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn bit_lengths_ignore_leading_zeros() {
        assert_eq!(super::bit_length(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(super::bit_length(&[0x01]), 1);
        assert_eq!(super::bit_length(&[0, 0]), 0);
        let mut m = vec![0u8; 385];
        m[1] = 0xc1;
        assert_eq!(super::bit_length(&m), 3072);
    }
}
