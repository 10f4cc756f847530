//! RFC 3161 timestamp tokens (CMS SignedData over a TSTInfo) from Sigstore
//! bundles: any bytes are refused by name or verified, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vouch::rfc3161::verify(data, b"signature bytes", &[]);
});
