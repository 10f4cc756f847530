//! RFC 5280 §5 certificate revocation lists, read for one certificate:
//! a complete CRL issued and signed by the certificate's issuer (§6.3.3),
//! current, whose scope covers the certificate. Pure: the caller fetches
//! and gives the time. Indirect and delta CRLs are not read: a CRL that is
//! one, or that points to a delta (Freshest CRL), leaves the status
//! unavailable rather than half-known.

use super::{Answer, CLOCK_SKEW};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer as _, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

const OID_CRL_NUMBER: &str = "2.5.29.20";
const OID_DELTA_INDICATOR: &str = "2.5.29.27";
const OID_ISSUING_DP: &str = "2.5.29.28";
const OID_AKI: &str = "2.5.29.35";
const OID_FRESHEST: &str = "2.5.29.46";
const OID_REASON: &str = "2.5.29.21";
const OID_INVALIDITY: &str = "2.5.29.24";
/// `removeFromCRL` (RFC 5280 §5.3.1): an entry that only delta CRLs use.
const REMOVE_FROM_CRL: u8 = 8;

/// What a verified CRL says about the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// Its status: good when not listed.
    pub answer: Answer,
    /// When the next CRL is due (`nextUpdate`).
    pub next_update: Option<i64>,
}

/// Whether `crl`'s scope (its Issuing Distribution Point, §5.2.5) leaves
/// out `cert`, named.
fn out_of_scope(crl: &CertificateRevocationList<'_>, cert: &X509Certificate<'_>) -> Result<(), String> {
    for ext in crl.extensions() {
        match ext.oid.to_id_string().as_str() {
            OID_DELTA_INDICATOR => return Err("the CRL is a delta CRL, which vouch does not read".into()),
            OID_FRESHEST => return Err("the CRL names a delta CRL (Freshest CRL), which vouch does not read".into()),
            OID_ISSUING_DP => {
                let ParsedExtension::IssuingDistributionPoint(idp) = ext.parsed_extension() else {
                    return Err("the CRL's issuingDistributionPoint does not parse".into());
                };
                let ca = cert.basic_constraints().ok().flatten().is_some_and(|b| b.value.ca);
                if idp.indirect_crl
                    || idp.only_some_reasons.is_some()
                    || idp.only_contains_attribute_certs
                    || (idp.only_contains_ca_certs && !ca)
                    || (idp.only_contains_user_certs && ca)
                {
                    return Err("the CRL's scope (issuingDistributionPoint) does not cover this certificate".into());
                }
            }
            OID_CRL_NUMBER | OID_AKI => {}
            other if ext.critical => {
                return Err(format!(
                    "the CRL has a critical extension {other} vouch does not process"
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads a DER CRL for `cert` (issued by `issuer`) at `now`. The CRL must
/// be the issuer's: named by it, signed with its key, which must be
/// allowed to sign CRLs, and cover the certificate. A listed certificate
/// is revoked even if the CRL has expired (trust-store-trust-policy.md,
/// "Revocation Checking with CRL"); an unlisted one needs a current CRL.
/// A hold (`certificateHold`) counts as revoked while listed.
pub fn read(der: &[u8], cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>, now: i64) -> Result<Reading, String> {
    let crl = match CertificateRevocationList::from_der(der) {
        Ok(([], crl)) => crl,
        Ok(_) => return Err("the CRL has bytes after it".into()),
        Err(e) => return Err(format!("the CRL does not parse: {e}")),
    };
    if crl.issuer() != cert.issuer() {
        return Err(format!(
            "the CRL is issued by {}, not by the certificate's issuer {}",
            crl.issuer(),
            cert.issuer()
        ));
    }
    if issuer.key_usage().ok().flatten().is_some_and(|k| !k.value.crl_sign()) {
        return Err(format!("the issuer {} may not sign CRLs (keyUsage)", issuer.subject()));
    }
    let (alg, signature) = (&crl.signature_algorithm, &crl.signature_value.data);
    if !crate::p521::verify_signature(issuer.public_key(), alg, signature, crl.tbs_cert_list.as_ref()) {
        return Err(format!(
            "the CRL's signature does not verify with {}'s key",
            issuer.subject()
        ));
    }
    out_of_scope(&crl, cert)?;
    if crl.last_update().timestamp() > now + CLOCK_SKEW {
        return Err("the CRL's thisUpdate is in the future".into());
    }
    let next_update = crl.next_update().map(|t| t.timestamp());
    let listed = crl
        .iter_revoked_certificates()
        .find(|r| r.raw_serial() == cert.raw_serial());
    let answer = match listed {
        Some(entry) => {
            if let Some(e) = entry
                .extensions()
                .iter()
                .find(|e| e.critical && !matches!(e.oid.to_id_string().as_str(), OID_REASON | OID_INVALIDITY))
            {
                return Err(format!(
                    "the CRL's entry has a critical extension {} vouch does not process",
                    e.oid
                ));
            }
            let reason = entry.reason_code().map(|(_, r)| r.0);
            if reason == Some(REMOVE_FROM_CRL) {
                Answer::Good
            } else {
                Answer::Revoked {
                    at: entry.revocation_date.timestamp(),
                    reason,
                    invalidity: entry.invalidity_date().map(|(_, t)| t.timestamp()),
                }
            }
        }
        None => Answer::Good,
    };
    if answer == Answer::Good {
        if let Some(next) = next_update.filter(|n| now > n + CLOCK_SKEW) {
            return Err(format!("the CRL expired at {}", super::shown(next)));
        }
    }
    Ok(Reading { answer, next_update })
}
