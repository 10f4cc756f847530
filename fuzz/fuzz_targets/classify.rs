//! Evidence recognition (src/admission/evidence.rs) over any manifest and
//! any blob bytes: never a panic, and whatever is recognised has the shape
//! the rule requires (an image manifest whose layers are all of one
//! evidence media type, at most 64 of them, the config `{}` or listing them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch::admission::evidence::{candidate, recognise, MAX_EVIDENCE_LAYERS};
use vouch::registry::manifest::{validate, OCI_MANIFEST};

fuzz_target!(|data: &[u8]| {
    // The manifest, then blobs separated by 0xff bytes, each taken to be
    // the content of the digest the manifest names at that position.
    let mut parts = data.split(|b| *b == 0xff);
    let Some(manifest) = parts.next() else { return };
    let Ok(refs) = validate(OCI_MANIFEST, manifest) else { return };
    let doc: serde_json::Value = serde_json::from_slice(manifest).unwrap_or_default();
    let Some(c) = candidate(OCI_MANIFEST, &doc, &refs) else { return };
    assert!((1..=MAX_EVIDENCE_LAYERS).contains(&c.layers.len()));
    let blobs: Vec<&[u8]> = parts.collect();
    let names = c.blobs();
    let found = recognise(&c, "team/app", None, |d| {
        names.iter().position(|(n, _)| n == d).and_then(|i| blobs.get(i).copied())
    });
    if let Some(subject) = found {
        if let Some(s) = &c.subject {
            assert_eq!(&subject, s);
        }
    }
});
