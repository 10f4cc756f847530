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
