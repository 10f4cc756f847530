//! OCSP responses and CRLs made by Python `cryptography` (with the test
//! authority of tests/notation_revocation.py, kept as fuzz seeds), read as
//! the server reads them; each altered, refused by name. The service
//! itself is exercised end to end in tests/notation_revocation.rs.

use super::*;

const SEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/revocation/");
/// When the seeds were made: their answers hold for an hour either side.
const MADE: i64 = 1_796_683_166;

fn seed(name: &str) -> Vec<u8> {
    std::fs::read(format!("{SEEDS}{name}")).unwrap()
}

fn cert(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).unwrap().1
}

#[test]
fn an_ocsp_answer_signed_by_the_issuer_reads_as_revoked() {
    let (leaf, issuer) = (seed("leaf-revoked.der"), seed("issuer.der"));
    let r = ocsp::read(&seed("ocsp-revoked.der"), &cert(&leaf), &cert(&issuer), MADE, None).unwrap();
    assert!(
        matches!(
            r.answer,
            Answer::Revoked {
                reason: Some(1),
                invalidity: None,
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(r.next_update, Some(MADE + 3600));
    assert_eq!(r.unchecked_responder, None);
    // The same answer is not about another certificate.
    let other = seed("leaf-delegated.der");
    let e = ocsp::read(&seed("ocsp-revoked.der"), &cert(&other), &cert(&issuer), MADE, None).unwrap_err();
    assert!(e.contains("does not answer for serial"), "{e}");
    // Past nextUpdate (and the clock's allowance) it says nothing.
    let e = ocsp::read(
        &seed("ocsp-revoked.der"),
        &cert(&leaf),
        &cert(&issuer),
        MADE + 3600 + CLOCK_SKEW + 1,
        None,
    )
    .unwrap_err();
    assert!(e.contains("expired at"), "{e}");
    let e = ocsp::read(
        &seed("ocsp-revoked.der"),
        &cert(&leaf),
        &cert(&issuer),
        MADE - 3600 - CLOCK_SKEW - 1,
        None,
    )
    .unwrap_err();
    assert!(e.contains("in the future"), "{e}");
}

#[test]
fn an_ocsp_answer_by_a_delegated_responder_with_nocheck_reads_as_good() {
    let (leaf, issuer) = (seed("leaf-delegated.der"), seed("issuer.der"));
    let r = ocsp::read(&seed("ocsp-delegated.der"), &cert(&leaf), &cert(&issuer), MADE, None).unwrap();
    assert_eq!(r.answer, Answer::Good);
    assert_eq!(
        r.unchecked_responder, None,
        "the responder carries id-pkix-ocsp-nocheck"
    );
    // Under another issuer, nobody it delegated to signed it.
    let e = ocsp::read(&seed("ocsp-delegated.der"), &cert(&leaf), &cert(&leaf), MADE, None).unwrap_err();
    assert!(e.contains("does not answer") || e.contains("signed neither"), "{e}");
}

#[test]
fn any_altered_byte_of_an_ocsp_answer_is_refused_or_changes_nothing() {
    let (leaf, issuer) = (seed("leaf-revoked.der"), seed("issuer.der"));
    let (leaf, issuer) = (cert(&leaf), cert(&issuer));
    let good = ocsp::read(&seed("ocsp-revoked.der"), &leaf, &issuer, MADE, None).unwrap();
    let bytes = seed("ocsp-revoked.der");
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x01;
        // The signature covers tbsResponseData: what is read either
        // fails or is the same answer (flips in unsigned framing that
        // still parse, like the signature algorithm's NULL parameters).
        if let Ok(r) = ocsp::read(&b, &leaf, &issuer, MADE, None) {
            assert_eq!(r, good, "byte {i}");
        }
    }
}

#[test]
fn a_crl_lists_the_revoked_and_not_the_good() {
    let issuer = seed("issuer.der");
    let crl_der = seed("intermediate.crl");
    let (revoked, good) = (seed("leaf-revoked.der"), seed("leaf-crl-good.der"));
    let r = crl::read(&crl_der, None, &cert(&revoked), &cert(&issuer), MADE).unwrap();
    assert!(matches!(r.answer, Answer::Revoked { reason: Some(1), .. }), "{r:?}");
    let r = crl::read(&crl_der, None, &cert(&good), &cert(&issuer), MADE).unwrap();
    assert_eq!(r.answer, Answer::Good);
    // Expired: still revoked if listed, no answer if not.
    let late = MADE + 3600 + CLOCK_SKEW + 1;
    assert!(matches!(
        crl::read(&crl_der, None, &cert(&revoked), &cert(&issuer), late)
            .unwrap()
            .answer,
        Answer::Revoked { .. }
    ));
    let e = crl::read(&crl_der, None, &cert(&good), &cert(&issuer), late).unwrap_err();
    assert!(e.contains("expired at"), "{e}");
    // Not the issuer's CRL: refused.
    let e = crl::read(&crl_der, None, &cert(&issuer), &cert(&issuer), MADE).unwrap_err();
    assert!(e.contains("not by the certificate's issuer"), "{e}");
    // A flipped bit in what the signature covers.
    let mut forged = crl_der.clone();
    let at = forged.len() / 3;
    forged[at] ^= 0x01;
    assert!(crl::read(&forged, None, &cert(&good), &cert(&issuer), MADE).is_err());
}

#[test]
fn a_delta_crl_overrides_its_base_and_must_match_it() {
    let issuer = seed("issuer.der");
    let (base, delta) = (seed("base.crl"), seed("delta.crl"));
    let (revoked, good) = (seed("leaf-delta-revoked.der"), seed("leaf-delta-good.der"));
    let (revoked, good, issuer) = (cert(&revoked), cert(&good), cert(&issuer));
    // Read alone, the base names its delta, and its answer is not final.
    let r = crl::read(&base, None, &revoked, &issuer, MADE).unwrap();
    assert_eq!(r.answer, Answer::Good);
    assert_eq!(r.delta_urls.len(), 1, "{r:?}");
    assert!(r.delta_urls[0].ends_with("/delta.crl"), "{r:?}");
    // With it, the delta's entry counts.
    let r = crl::read(&base, Some(&delta), &revoked, &issuer, MADE).unwrap();
    assert!(matches!(r.answer, Answer::Revoked { reason: Some(1), .. }), "{r:?}");
    assert!(r.delta_urls.is_empty());
    let r = crl::read(&base, Some(&delta), &good, &issuer, MADE).unwrap();
    assert_eq!(r.answer, Answer::Good);
    // A delta is not a base; a base is not a delta; a delta for a CRL that
    // names none is refused.
    let e = crl::read(&delta, None, &good, &issuer, MADE).unwrap_err();
    assert!(e.contains("is a delta CRL"), "{e}");
    let e = crl::read(&base, Some(&base), &good, &issuer, MADE).unwrap_err();
    assert!(e.contains("CRL number"), "{e}");
    let e = crl::read(&seed("intermediate.crl"), Some(&delta), &good, &issuer, MADE).unwrap_err();
    assert!(e.contains("names none"), "{e}");
    // Expired: a listed entry still revokes, an unlisted one has no answer.
    let late = MADE + 3600 + CLOCK_SKEW + 1;
    assert!(matches!(
        crl::read(&base, Some(&delta), &revoked, &issuer, late).unwrap().answer,
        Answer::Revoked { .. }
    ));
    assert!(crl::read(&base, Some(&delta), &good, &issuer, late).is_err());
}

#[test]
fn the_request_names_the_certificate_as_the_answer_does() {
    let (leaf, issuer) = (seed("leaf-revoked.der"), seed("issuer.der"));
    let (leaf, issuer) = (cert(&leaf), cert(&issuer));
    // OCSPRequest → tbsRequest → requestList → Request → CertID.
    let req = ocsp::request(&leaf, &issuer, &[7; 32]);
    let mut t = crate::der::tlv(&req).unwrap().0;
    for _ in 0..4 {
        t = crate::der::tlv(t.content).unwrap().0;
    }
    assert_eq!(t.raw, ocsp::key(&leaf, &issuer));
    // The responder (Python cryptography) understood it: its answer's
    // CertID is the same certificate's.
    assert!(ocsp::read(&seed("ocsp-revoked.der"), &leaf, &issuer, MADE, None).is_ok());
}

#[test]
fn an_invalidity_date_after_the_signing_time_spares_the_signature() {
    let revoked = |invalidity| Answer::Revoked {
        at: 2_000,
        reason: Some(1),
        invalidity,
    };
    // Timestamped before the key was compromised: it stands.
    assert_eq!(revokes(&revoked(Some(1_500)), Some(1_000)), None);
    // Signed after, or at, the invalidity date: revoked.
    assert!(revokes(&revoked(Some(1_500)), Some(1_500)).is_some());
    assert!(revokes(&revoked(Some(1_500)), Some(1_600)).is_some());
    // No timestamp, or no invalidity date: a revocation always counts.
    let why = revokes(&revoked(Some(1_500)), None).unwrap();
    assert!(why.contains("keyCompromise"), "{why}");
    assert!(revokes(&revoked(None), Some(1_000)).is_some());
    assert_eq!(revokes(&Answer::Good, None), None);
    assert_eq!(revokes(&Answer::Unknown, None), None);
}

#[test]
fn only_plain_http_urls_are_fetched() {
    assert!(http("http://ocsp.example/"));
    assert!(http("HTTP://ocsp.example/"));
    assert!(!http("https://ocsp.example/"));
    assert!(!http("ldap://ldap.example/cn=CA"));
    assert!(!http("http:"));
    let leaf = seed("leaf-revoked.der");
    let s = sources(&cert(&leaf));
    assert_eq!(s.ocsp.len(), 1, "{s:?}");
    assert_eq!(s.crl.len(), 1, "{s:?}");
    assert!(s.other.is_empty(), "{s:?}");
}
