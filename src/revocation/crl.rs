//! RFC 5280 §5 certificate revocation lists, read for one certificate:
//! a complete CRL issued and signed by the certificate's issuer (§6.3.3),
//! current, whose scope covers the certificate, and the delta CRL it
//! points to (Freshest CRL, §5.2.6) when it points to one: the delta's
//! entries override the base's (§5.2.4). Pure: the caller fetches and
//! gives the time. Indirect CRLs are not read (the status is then
//! unavailable rather than half-known).

use super::{Answer, CLOCK_SKEW};
use x509_parser::extensions::{CRLDistributionPoints, DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer as _, X509Certificate};
use x509_parser::revocation_list::{CertificateRevocationList, RevokedCertificate};

const OID_CRL_NUMBER: &str = "2.5.29.20";
const OID_DELTA_INDICATOR: &str = "2.5.29.27";
const OID_ISSUING_DP: &str = "2.5.29.28";
const OID_AKI: &str = "2.5.29.35";
const OID_FRESHEST: &str = "2.5.29.46";
const OID_REASON: &str = "2.5.29.21";
const OID_INVALIDITY: &str = "2.5.29.24";
/// `removeFromCRL` (RFC 5280 §5.3.1): in a delta CRL, the certificate is
/// no longer revoked (a hold released).
const REMOVE_FROM_CRL: u8 = 8;

/// What a verified CRL (with its delta, if any) says about the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// Its status: good when not listed.
    pub answer: Answer,
    /// When the next CRL is due (`nextUpdate`; the earlier of base and delta).
    pub next_update: Option<i64>,
    /// The delta CRLs the base points to (HTTP URLs), when read without
    /// one: the answer is then the base's alone and must not be used.
    pub delta_urls: Vec<String>,
}

/// A CRL checked as `issuer`'s and as covering `cert`, with the facts
/// delta processing needs.
struct Checked<'a> {
    crl: CertificateRevocationList<'a>,
    /// `cRLNumber`, big-endian without leading zeros.
    number: Option<Vec<u8>>,
    /// `deltaCRLIndicator`: the base CRL number a delta is relative to.
    delta_of: Option<Vec<u8>>,
    /// Freshest CRL HTTP URLs.
    freshest: Vec<String>,
    next_update: Option<i64>,
}

/// An INTEGER's content, unsigned, big-endian, without leading zeros.
fn unsigned(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().skip_while(|b| **b == 0).copied().collect()
}

/// `a <= b` for two numbers as [`unsigned`] gives them.
fn at_most(a: &[u8], b: &[u8]) -> bool {
    (a.len(), a) <= (b.len(), b)
}

/// The HTTP URLs of a Freshest CRL extension's value.
fn freshest_urls(value: &[u8]) -> Result<Vec<String>, String> {
    let (_, points) = CRLDistributionPoints::from_der(value).map_err(|_| "the CRL's Freshest CRL does not parse")?;
    let mut urls = Vec::new();
    for p in points.iter().filter(|p| p.crl_issuer.is_none()) {
        if let Some(DistributionPointName::FullName(names)) = &p.distribution_point {
            for n in names {
                if let GeneralName::URI(u) = n {
                    if super::http(u) {
                        urls.push((*u).to_owned());
                    }
                }
            }
        }
    }
    match urls.is_empty() {
        true => Err("the CRL names a delta CRL at no HTTP URL".into()),
        false => Ok(urls),
    }
}

/// Parses `der` and checks it is `issuer`'s CRL covering `cert`: named by
/// the issuer, signed with its key (allowed to sign CRLs), its scope (the
/// Issuing Distribution Point, §5.2.5) including the certificate, no
/// critical extension vouch does not process, not issued in the future.
fn check<'a>(
    der: &'a [u8],
    cert: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
    now: i64,
) -> Result<Checked<'a>, String> {
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
    if crl.last_update().timestamp() > now + CLOCK_SKEW {
        return Err("the CRL's thisUpdate is in the future".into());
    }
    let mut checked = Checked {
        number: crl.crl_number().map(|n| unsigned(&n.to_bytes_be())),
        delta_of: None,
        freshest: Vec::new(),
        // RFC 5280 §5.1.2.5 requires nextUpdate; without one, a day.
        next_update: Some(crl.next_update().map_or(
            crl.last_update().timestamp() + super::MAX_AGE_WITHOUT_NEXT_UPDATE,
            |t| t.timestamp(),
        )),
        crl: crl.clone(),
    };
    for ext in crl.extensions() {
        match ext.oid.to_id_string().as_str() {
            OID_DELTA_INDICATOR => match crate::der::tlv(ext.value) {
                Ok((t, [])) if t.tag == 0x02 => checked.delta_of = Some(unsigned(t.content)),
                _ => return Err("the CRL's deltaCRLIndicator is not an INTEGER".into()),
            },
            OID_FRESHEST => checked.freshest = freshest_urls(ext.value)?,
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
    Ok(checked)
}

/// `cert`'s entry in `crl`, refusing one with a critical extension vouch
/// does not process.
fn entry<'c>(
    crl: &'c CertificateRevocationList<'_>,
    cert: &X509Certificate<'_>,
) -> Result<Option<&'c RevokedCertificate<'c>>, String> {
    let Some(entry) = crl
        .iter_revoked_certificates()
        .find(|r| r.raw_serial() == cert.raw_serial())
    else {
        return Ok(None);
    };
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
    Ok(Some(entry))
}

/// What an entry says: revoked, or (`removeFromCRL`, in a delta) no longer.
fn answer_of(entry: &RevokedCertificate<'_>) -> Answer {
    let reason = entry.reason_code().map(|(_, r)| r.0);
    match reason {
        Some(REMOVE_FROM_CRL) => Answer::Good,
        _ => Answer::Revoked {
            at: entry.revocation_date.timestamp(),
            reason,
            invalidity: entry.invalidity_date().map(|(_, t)| t.timestamp()),
        },
    }
}

/// Reads the complete CRL `der` for `cert` (issued by `issuer`) at `now`,
/// with `delta` (a delta CRL's DER) if given. A listed certificate is
/// revoked even if the CRL has expired (trust-store-trust-policy.md,
/// "Revocation Checking with CRL"); an unlisted one needs a current CRL.
/// A hold (`certificateHold`) counts as revoked while listed. Without a
/// delta, a base that names one answers with `delta_urls` set.
pub fn read(
    der: &[u8],
    delta: Option<&[u8]>,
    cert: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
    now: i64,
) -> Result<Reading, String> {
    let base = check(der, cert, issuer, now)?;
    if base.delta_of.is_some() {
        return Err("the CRL at a distribution point is a delta CRL".into());
    }
    let mut answer = match entry(&base.crl, cert)? {
        Some(e) if answer_of(e) != Answer::Good => answer_of(e),
        _ => Answer::Good,
    };
    let mut next_update = base.next_update;
    let mut delta_urls = Vec::new();
    match (delta, base.freshest.is_empty()) {
        (None, false) => delta_urls = base.freshest.clone(),
        (Some(_), true) => return Err("a delta CRL was given for a CRL that names none".into()),
        (None, true) => {}
        (Some(delta), false) => {
            let d = check(delta, cert, issuer, now)?;
            // §5.2.4: a delta applies to a complete CRL at least as new as
            // the base it names, and is itself newer.
            let (Some(of), Some(number), Some(base_number)) = (&d.delta_of, &d.number, &base.number) else {
                return Err("the delta CRL or its base lacks a CRL number or deltaCRLIndicator".into());
            };
            if !at_most(of, base_number) || at_most(number, base_number) {
                return Err("the delta CRL does not apply to this base CRL (CRL numbers)".into());
            }
            if let Some(e) = entry(&d.crl, cert)? {
                answer = answer_of(e);
            }
            if let Some(next) = d.next_update.filter(|n| now > n + CLOCK_SKEW) {
                if answer == Answer::Good {
                    return Err(format!("the delta CRL expired at {}", super::shown(next)));
                }
            }
            next_update = match (next_update, d.next_update) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    if answer == Answer::Good {
        if let Some(next) = base.next_update.filter(|n| now > n + CLOCK_SKEW) {
            return Err(format!("the CRL expired at {}", super::shown(next)));
        }
    }
    Ok(Reading {
        answer,
        next_update,
        delta_urls,
    })
}
