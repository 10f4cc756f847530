//! Entry decoding: never panics, and whatever decodes is the canonical
//! encoding of what it decodes to.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_ledger::entry::Entry;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = Entry::decode(data) {
        assert_eq!(entry.encode().unwrap(), data, "decoded a non-canonical entry");
    }
});
