//! Access files (src/registry/access.rs): any text gives grants or an
//! error, never a panic; grants that load write back to a file that loads
//! to the same grants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch::registry::access::Grants;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(grants) = Grants::parse(text, std::path::Path::new("access.toml")) {
        let again = Grants::parse(&grants.to_toml(), std::path::Path::new("access.toml")).unwrap();
        assert_eq!(again, grants);
    }
});
