//! Entry bundles: never panic; whatever decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_ledger::tile::{decode_bundle, encode_bundle};

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = decode_bundle(data) {
        assert_eq!(encode_bundle(entries).unwrap(), data);
    }
});
