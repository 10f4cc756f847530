//! c2sp.org/tlog-proof@v1 parsing: never panics; whatever parses prints back
//! to the same bytes; verification of anything parsed never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_ledger::tlog_proof::TlogProof;
use vouch_ledger::VerifierKey;

const VKEY: &str = "vouch.example/ledger+c64c5c9a+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c";

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = TlogProof::parse(data) {
        assert_eq!(p.to_text().as_bytes(), data, "tlog-proof parse is not canonical");
        let _ = p.verify(b"entry", &VerifierKey::parse(VKEY).unwrap());
    }
});
