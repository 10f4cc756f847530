//! Tile paths: never panic; whatever parses prints back to the same path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_ledger::tile::TileAddr;

fuzz_target!(|data: &[u8]| {
    if let Ok(path) = std::str::from_utf8(data) {
        if let Ok(addr) = TileAddr::parse(path) {
            assert_eq!(addr.to_string(), path, "tile path parse is not canonical");
        }
    }
});
