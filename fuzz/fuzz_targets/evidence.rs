//! Admission evidence parsers: DSSE envelopes, Sigstore bundles, keyless
//! signature annotations and Sigstore trusted roots never panic on any
//! input, and nothing made of fuzz bytes verifies. Image configurations,
//! scan and provenance predicates and policy durations parse or fail
//! without panicking; an in-toto Statement reads the same in one pass as
//! in two.
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
    let _ = vouch::policy::image::is_build_attestation(Some("attestation-manifest"), Some(("unknown", "unknown")), data);
    if let Ok(config) = vouch::policy::image::parse_config(data, None, vec![1, 2]) {
        assert_eq!(config.layer_count, 2);
        assert!(config.env_names.iter().all(|n| !n.contains('=')));
    }
    // Scan and provenance readings of any predicate, under each type.
    if let Ok(predicate) = serde_json::from_slice::<serde_json::Value>(data) {
        use vouch::policy::attested::*;
        for predicate_type in [COSIGN_VULN, IN_TOTO_VULNS, SLSA_V1, SLSA_V02] {
            let p = Predicate::new(predicate_type, "k", &predicate);
            if let Some(Ok(scan)) = read_scan(&p) {
                assert!(scan.worst.len() <= 20);
                assert!(scan.by_severity.values().sum::<u64>() >= scan.worst.len() as u64);
            }
            let _ = read_provenance(&p);
        }
        for predicate_type in [vouch::policy::sbom::SPDX, vouch::policy::sbom::CYCLONEDX] {
            let p = Predicate::new(predicate_type, "k", &predicate);
            if let Some(Ok(packages)) = vouch::policy::sbom::read_packages(&p) {
                assert!(packages.len() <= vouch::policy::sbom::MAX_PACKAGES);
            }
        }
    }
    // A Statement read in one pass (with an SBOM's packages) comes to
    // what reading it in two does.
    let one = vouch::attestation::read_statement_body(data.to_vec(), &image).map(|(t, n, body)| {
        let p = vouch::policy::attested::Predicate::for_signers(&t, &["k".to_owned()], &body, None)
            .next()
            .unwrap();
        let packages = vouch::policy::sbom::read_packages(&p).cloned();
        (t, n, body.get().to_owned(), packages)
    });
    let two = vouch::attestation::read_statement_with_predicate(data, &image).map(|(t, n, raw)| {
        let packages = vouch::policy::sbom::parse_packages(&t, raw.get());
        (t, n, raw.get().to_owned(), packages)
    });
    assert_eq!(one, two);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(secs) = vouch::policy::image::parse_duration(text) {
            assert!(secs > 0);
        }
    }
    assert!(vouch::attestation::verify_envelope(&image, data, &keys).is_err());
    assert!(vouch::sigstore_bundle::verify(data, &image, &keys, Some(&root)).is_err());
    // As annotations (a JSON object) with the rest as the payload.
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    if let Ok(annotations) = serde_json::from_slice::<serde_json::Value>(&data[..split]) {
        let payload = data.get(split + 1..).unwrap_or_default();
        assert!(vouch::keyless::verify(&root, &image, &annotations, payload).is_err());
    }
});
