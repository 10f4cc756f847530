//! Admission evidence parsers: DSSE envelopes, Sigstore bundles, keyless
//! signature annotations and Sigstore trusted roots never panic on any
//! input, and nothing made of fuzz bytes verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch::keyless::TrustedRoot;
use vouch::signature::PublicKey;
use vouch_ledger::entry::Digest;

const ROOT: &[u8] = include_bytes!("../seeds/evidence/trusted_root.json");

fuzz_target!(|data: &[u8]| {
    let image = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
    let root = TrustedRoot::parse(ROOT).unwrap();
    let key = p256::ecdsa::SigningKey::from_slice(&[3; 32]).unwrap();
    let keys = [PublicKey::EcdsaP256(*key.verifying_key())];
    let _ = TrustedRoot::parse(data);
    assert!(vouch::attestation::verify_envelope(&image, data, &keys).is_err());
    assert!(vouch::sigstore_bundle::verify(data, &image, &keys, Some(&root)).is_err());
    // As annotations (a JSON object) with the rest as the payload.
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    if let Ok(annotations) = serde_json::from_slice::<serde_json::Value>(&data[..split]) {
        let payload = data.get(split + 1..).unwrap_or_default();
        assert!(vouch::keyless::verify(&root, &image, &annotations, payload).is_err());
    }
});
