//! The visibility decision (src/admission/visibility.rs) over every input:
//! the facts about a manifest or a blob, and the manifest record they are
//! read from. Never a panic; a manifest is served only if admitted or
//! evidence about a manifest here (and countersigned evidence only while
//! that manifest is admitted); a blob only for one of the invariant's
//! reasons; a record decodes only to what re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch::admission::visibility::{blob_rule, manifest_rule, BlobFacts, ManifestFacts};
use vouch::registry::meta::{AdmissionState, ManifestRecord};

fn state(b: u8) -> AdmissionState {
    match b % 4 {
        0 => AdmissionState::Pending,
        1 => AdmissionState::Admitted,
        2 => AdmissionState::Denied,
        _ => AdmissionState::Evidence,
    }
}

fuzz_target!(|data: &[u8]| {
    if let [a, b, c, d, rest @ ..] = data {
        let facts = ManifestFacts {
            state: state(*a),
            evidence: (b & 1 == 1).then_some(b & 2 == 2),
            subject: (c & 1 == 1).then(|| state(c >> 1)),
        };
        if manifest_rule(facts).is_ok() {
            let evidence_ok = facts.state == AdmissionState::Evidence
                && facts.evidence.is_some()
                && facts.subject.is_some_and(|s| s != AdmissionState::Evidence)
                && (facts.evidence == Some(false) || facts.subject == Some(AdmissionState::Admitted));
            assert!(facts.state == AdmissionState::Admitted || evidence_ok, "{facts:?}");
        }
        let f = BlobFacts {
            referenced: d & 1 == 1,
            by_admitted: d & 2 == 2,
            by_served_evidence: d & 4 == 4,
            by_quarantined: d & 8 == 8,
            empty_json: d & 16 == 16,
            serve_unreferenced: d & 32 == 32,
        };
        if blob_rule(f) {
            assert!(
                f.empty_json
                    || f.by_admitted
                    || (f.by_served_evidence && !f.by_quarantined)
                    || (!f.referenced && f.serve_unreferenced),
                "{f:?}"
            );
        }
        if let Some(record) = ManifestRecord::decode(rest) {
            if record.version == vouch::registry::meta::RECORD_VERSION {
                assert_eq!(record.encode().unwrap(), rest);
            }
        }
    }
});
