//! Envelope parsing refuses what it does not read, by name, and never
//! panics. Verification of real envelopes is tested against signatures made
//! by an independent signer (tests/notation.rs).

use super::*;

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn envelope(protected: &str, payload: &str, extra: &str) -> Vec<u8> {
    format!(
        r#"{{"payload":"{}","protected":"{}","header":{{"x5c":["AAAA"]}},"signature":"AAAA"{extra}}}"#,
        b64(payload.as_bytes()),
        b64(protected.as_bytes())
    )
    .into_bytes()
}

#[test]
fn envelopes_that_are_not_flattened_jws_are_refused_by_name() {
    let ok = envelope(
        r#"{"alg":"ES256"}"#,
        r#"{"targetArtifact":{"digest":"sha256:ab","size":3}}"#,
        "",
    );
    let env = parse(&ok).unwrap();
    assert_eq!(env.target().unwrap().size, 3);
    let general = envelope("{}", "{}", r#","signatures":[]"#);
    assert!(matches!(parse(&general), Err(NotationProblem::Malformed(m)) if m.contains("signatures")));
    assert!(matches!(parse(b"[]"), Err(NotationProblem::Malformed(_))));
    let padded = ok.clone();
    let text = String::from_utf8(padded)
        .unwrap()
        .replace(r#""signature":"AAAA""#, r#""signature":"AA==""#);
    assert!(matches!(parse(text.as_bytes()), Err(NotationProblem::Malformed(m)) if m.contains("signature")));
    let no_chain = String::from_utf8(ok).unwrap().replace(r#""x5c":["AAAA"]"#, "");
    assert!(matches!(parse(no_chain.as_bytes()), Err(NotationProblem::Malformed(m)) if m.contains("x5c")));
}

proptest::proptest! {
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let target = Target { media_type: String::new(), digest: String::new(), size: 0 };
        let trust = TrustPolicy {
            name: "t".into(),
            ca: Vec::new(),
            signing_authority: Vec::new(),
            tsa: Vec::new(),
            identities: vec![Identity::Any],
            level: trust::Level::Strict,
            actions: trust::Actions::of(trust::Level::Strict, &Default::default()).unwrap(),
        };
        proptest::prop_assert!(verify(&bytes, &target, &trust, 0).is_err());
    }
}

/// An envelope made by the independent signer (tests/notation_sign.py,
/// variant `ok`) for `sha256:abab..` (1 byte), and its root CA.
const ENVELOPE: &[u8] = include_bytes!("../../fuzz/seeds/notation/ok.json");
const CA: &[u8] = include_bytes!("../../fuzz/seeds/notation/ca.pem");

fn fixture_trust(identity: &str) -> TrustPolicy {
    TrustPolicy {
        name: "acme".into(),
        ca: trust::read_certificates(CA).unwrap(),
        signing_authority: Vec::new(),
        tsa: Vec::new(),
        identities: vec![Identity::parse(identity).unwrap()],
        level: trust::Level::Strict,
        actions: trust::Actions::of(trust::Level::Strict, &Default::default()).unwrap(),
    }
}

fn fixture_target() -> Target {
    Target {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        digest: format!("sha256:{}", "ab".repeat(32)),
        size: 1,
    }
}

/// An hour after the fixture was signed (its certificates are valid then).
fn fixture_now() -> i64 {
    let env = parse(ENVELOPE).unwrap();
    time_of(Format::Jws, "t", &env.header[SIGNING_TIME]).unwrap() + 3600
}

#[test]
fn an_independent_signature_verifies_and_binds_its_target_and_identity() {
    let now = fixture_now();
    let v = verify(ENVELOPE, &fixture_target(), &fixture_trust("*"), now).unwrap();
    assert!(
        v.subject.contains("acme-rockets.io") && v.signed_at.is_none() && v.logged.is_empty(),
        "{v:?}"
    );
    let acme = fixture_trust("x509.subject: C=US, ST=WA, O=acme-rockets.io");
    assert!(verify(ENVELOPE, &fixture_target(), &acme, now).is_ok());
    let other = fixture_trust("x509.subject: C=US, ST=WA, O=wabbit-networks.io");
    let e = verify(ENVELOPE, &fixture_target(), &other, now).unwrap_err();
    assert!(matches!(e, NotationProblem::Authenticity(_)), "{e}");
    let mut bigger = fixture_target();
    bigger.size = 2;
    let e = verify(ENVELOPE, &bigger, &fixture_trust("*"), now).unwrap_err();
    assert!(matches!(e, NotationProblem::Integrity(_)), "{e}");
    // Eleven years on, the certificates have expired, and no timestamp
    // proves the signature older.
    let e = verify(
        ENVELOPE,
        &fixture_target(),
        &fixture_trust("*"),
        now + 11 * 365 * 86_400,
    )
    .unwrap_err();
    assert!(matches!(e, NotationProblem::Timestamp(_)), "{e}");
}

#[test]
fn a_reordered_or_truncated_chain_is_refused() {
    let doc: serde_json::Value = serde_json::from_slice(ENVELOPE).unwrap();
    let with_chain = |x5c: Vec<serde_json::Value>| {
        let mut d = doc.clone();
        d["header"]["x5c"] = x5c.into();
        serde_json::to_vec(&d).unwrap()
    };
    let x5c = doc["header"]["x5c"].as_array().unwrap().clone();
    let now = fixture_now();
    let trust = fixture_trust("*");
    let reversed: Vec<_> = x5c.iter().rev().cloned().collect();
    for (what, chain) in [
        ("reversed", reversed),
        ("no root", x5c[..2].to_vec()),
        ("leaf only", x5c[..1].to_vec()),
    ] {
        let e = verify(&with_chain(chain), &fixture_target(), &trust, now).unwrap_err();
        assert!(matches!(e, NotationProblem::Certificate(_)), "{what}: {e}");
    }
}

proptest::proptest! {
    /// An attacker who changes any one character of what is signed (the
    /// protected header, the payload) or of the signature gets a refusal.
    #[test]
    fn any_change_to_a_signed_part_is_refused(field in 0usize..3, at in proptest::prelude::any::<proptest::sample::Index>(), to in 0usize..64) {
        let name = ["protected", "payload", "signature"][field];
        let mut doc: serde_json::Value = serde_json::from_slice(ENVELOPE).unwrap();
        let mut text: Vec<u8> = doc[name].as_str().unwrap().as_bytes().to_vec();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let i = at.index(text.len());
        proptest::prop_assume!(text[i] != alphabet[to]);
        text[i] = alphabet[to];
        doc[name] = String::from_utf8(text).unwrap().into();
        let bytes = serde_json::to_vec(&doc).unwrap();
        proptest::prop_assert!(verify(&bytes, &fixture_target(), &fixture_trust("*"), fixture_now()).is_err());
    }
}

/// A COSE envelope from the independent signer (variant `ok`, made with
/// `--envelope cose`) for the same target, and its root CA.
const COSE_ENVELOPE: &[u8] = include_bytes!("../../fuzz/seeds/notation/cose-ok.cbor");
const COSE_CA: &[u8] = include_bytes!("../../fuzz/seeds/notation/cose-ca.pem");

#[test]
fn an_independent_cose_signature_verifies_and_any_change_to_it_is_refused() {
    let env = parse(COSE_ENVELOPE).unwrap();
    assert_eq!(env.format, Format::Cose);
    let now = time_of(Format::Cose, "t", &env.header[SIGNING_TIME]).unwrap() + 3600;
    let mut trust = fixture_trust("x509.subject: C=US, ST=WA, O=acme-rockets.io");
    trust.ca = trust::read_certificates(COSE_CA).unwrap();
    let v = verify(COSE_ENVELOPE, &fixture_target(), &trust, now).unwrap();
    assert!(v.subject.contains("acme-rockets.io"), "{v:?}");
    // Flipping any one byte of the envelope is refused, unless it falls in
    // what is neither signed nor verified (the unprotected signingAgent
    // label): then the signed bytes, signature and chain are unchanged.
    for i in 0..COSE_ENVELOPE.len() {
        let mut bad = COSE_ENVELOPE.to_vec();
        bad[i] ^= 0x01;
        if verify(&bad, &fixture_target(), &trust, now).is_ok() {
            let changed = parse(&bad).unwrap();
            let same = (
                &changed.signed_input,
                &changed.signature,
                &changed.chain,
                &changed.timestamp,
            ) == (&env.signed_input, &env.signature, &env.chain, &env.timestamp);
            assert!(same, "byte {i} flipped changed what is verified, and was accepted");
        }
    }
    // The JWS trust store does not hold this CA.
    assert!(matches!(
        verify(COSE_ENVELOPE, &fixture_target(), &fixture_trust("*"), now),
        Err(NotationProblem::Authenticity(_))
    ));
}

/// An ES512 envelope from the independent signer (tests/notation_p521.py,
/// variant `p521-ca`: a P-521 signer under a P-521 root) for the same
/// target, and that root. ring has no P-521; `crate::p521` verifies both
/// the JWS signature and the certificate's.
const ES512_ENVELOPE: &[u8] = include_bytes!("../../fuzz/seeds/notation/es512.json");
const P521_CA: &[u8] = include_bytes!("../../fuzz/seeds/notation/p521-ca.pem");

#[test]
fn an_independent_es512_signature_under_a_p521_root_verifies_and_any_change_is_refused() {
    let env = parse(ES512_ENVELOPE).unwrap();
    assert_eq!(env.header_str("alg"), Some("ES512"));
    let now = time_of(Format::Jws, "t", &env.header[SIGNING_TIME]).unwrap() + 3600;
    let mut trust = fixture_trust("x509.subject: C=US, ST=WA, O=acme-rockets.io");
    trust.ca = trust::read_certificates(P521_CA).unwrap();
    let v = verify(ES512_ENVELOPE, &fixture_target(), &trust, now).unwrap();
    assert!(v.subject.contains("acme-rockets.io"), "{v:?}");
    // Any change to the signature or the signed parts is refused.
    let doc: serde_json::Value = serde_json::from_slice(ES512_ENVELOPE).unwrap();
    for field in ["signature", "protected", "payload"] {
        let text = doc[field].as_str().unwrap();
        for i in (0..text.len()).step_by(7) {
            let mut changed = doc.clone();
            let mut t = text.as_bytes().to_vec();
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            changed[field] = String::from_utf8(t).unwrap().into();
            let bytes = serde_json::to_vec(&changed).unwrap();
            assert!(verify(&bytes, &fixture_target(), &trust, now).is_err(), "{field}[{i}]");
        }
    }
    // Any byte of the P-521 certificates' signatures.
    let chain = env.chain.clone();
    for (c, der) in chain.iter().enumerate() {
        for back in 1..=8 {
            let mut bad = env.clone();
            let at = der.len() - back * 4;
            bad.chain[c][at] ^= 0x01;
            assert!(
                verify_parsed(&bad, &fixture_target(), &trust, now, &Offline).is_err(),
                "x5c[{c}] byte {at}"
            );
        }
    }
}
