//! The witness protocol (c2sp.org/tlog-witness, tlog-cosignature): request
//! bodies, witness keys, cosignature lines, 409 size bodies and whole notes
//! never panic; what parses prints back to the same bytes; and the
//! witness's decision never panics and records exactly the checkpoint it
//! accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_ledger::cosignature::CosignerKey;
use vouch_ledger::witness::{decide, parse_cosignature_lines, parse_size_body, AddCheckpoint, Witnessed};
use vouch_ledger::{Hash, Note, VerifierKey};

const VKEY: &str = "vouch.example/ledger+c64c5c9a+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c";

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = AddCheckpoint::parse(data) {
        assert_eq!(req.to_bytes(), data, "add-checkpoint parse is not canonical");
        let logs = [VerifierKey::parse(VKEY).unwrap()];
        for latest in [None, Some(Witnessed { size: 3, root: Hash::empty_tree() })] {
            if let Ok((c, w)) = decide(&req, &logs, latest) {
                assert_eq!((w.size, w.root), (c.size, c.root));
                assert!(latest.is_none_or(|l| w.size >= l.size), "a rollback was accepted");
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(k) = CosignerKey::parse(text) {
            assert_eq!(k.to_string(), text.trim_end_matches('\n'));
        }
    }
    if let Some(n) = parse_size_body(data) {
        assert_eq!(format!("{n}\n").as_bytes(), data);
    }
    if let Some(lines) = parse_cosignature_lines(data) {
        let joined: String = lines.iter().map(|l| l.to_line() + "\n").collect();
        assert_eq!(joined.as_bytes(), data, "cosignature lines are not canonical");
    }
    if let Ok(note) = Note::parse(data) {
        assert_eq!(note.to_text().as_bytes(), data, "note parse is not canonical");
    }
});
