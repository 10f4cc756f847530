//! `--database` URLs (src/registry/meta/postgres.rs, `parse_url`): any text
//! parses or is refused with a reason, never a panic; a parsed URL names a
//! user and a database.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch::registry::meta::postgres::parse_url;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_url(text) {
        Err(reason) => assert!(reason.to_string().starts_with("--database: ")),
        Ok(settings) => {
            let config = settings.config;
            assert!(config.get_user().is_some());
            assert!(config.get_dbname().is_some());
            assert_eq!(config.get_application_name(), Some("vouch"));
        }
    }
});
