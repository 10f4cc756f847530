//! Signed notes and checkpoints: never panic; whatever parses is canonical
//! (prints back to the same text), and opening with a key never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_ledger::{Checkpoint, Note, VerifierKey};

const VKEY: &str = "vouch.example/ledger+c64c5c9a+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c";

fuzz_target!(|data: &[u8]| {
    if let Ok(note) = Note::parse(data) {
        if let Ok(cp) = Checkpoint::parse(note.text()) {
            assert_eq!(cp.to_text(), note.text(), "checkpoint parse is not canonical");
        }
    }
    let key = VerifierKey::parse(VKEY).unwrap();
    let _ = Checkpoint::open(data, &key);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(k) = VerifierKey::parse(text) {
            assert_eq!(k.to_string(), text.trim_end_matches('\n'));
        }
    }
});
