//! Timestamps of keyless signatures: RFC 3161 tokens (CMS SignedData over a
//! TSTInfo) from Sigstore bundles, and certificates with embedded RFC 6962
//! signed certificate timestamps. Any bytes are refused by name or
//! verified, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vouch::rfc3161::verify(data, b"signature bytes", &[]);
    let _ = vouch::sct::verify_embedded(data, b"issuer key", &[], 1);
});
