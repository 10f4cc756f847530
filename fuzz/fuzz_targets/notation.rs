//! Notation signatures: JWS envelopes, certificate chains and trusted
//! identity strings. Any bytes are refused by name or verified, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch::notation::trust::{Actions, Identity, Level};

fuzz_target!(|data: &[u8]| {
    let trust = vouch::notation::TrustPolicy {
        name: "fuzz".into(),
        ca: vec![data.to_vec()],
        signing_authority: Vec::new(),
        tsa: vec![data.to_vec()],
        identities: vec![Identity::Any],
        level: Level::Permissive,
        actions: Actions::of(Level::Permissive, &Default::default()).unwrap(),
    };
    let target = vouch::notation::Target {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        digest: format!("sha256:{}", "ab".repeat(32)),
        size: 1,
    };
    let _ = vouch::notation::verify(data, &target, &trust, 1_800_000_000);
    if let Ok(env) = vouch::notation::parse(data) {
        let _ = env.target();
    }
    let _ = vouch::notation::chain::parse(&[data.to_vec()]);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Identity::parse(text);
        let _ = vouch::notation::trust::read_certificates(data);
    }
});
