//! `--storage` URLs (src/registry/blobs/storage_url.rs): any text parses or is
//! refused with a reason, never a panic; a parsed URL names a bucket, a
//! prefix without stray slashes, and shows no option's value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch::registry::blobs::storage_url::parse_url;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse_url(text) {
        Err(reason) => assert!(!reason.is_empty()),
        Ok(u) => {
            assert!(!u.bucket.is_empty());
            assert!(!u.prefix.starts_with('/') && !u.prefix.ends_with('/'));
            assert_eq!(u.identity, format!("s3://{}/{}", u.bucket, u.prefix));
            // Names only: the values (which may be secrets) never show.
            let names: Vec<&str> = u.options.iter().map(|(k, _)| k.as_str()).collect();
            let expected = match names.is_empty() {
                true => u.identity.clone(),
                false => format!("{} (options: {})", u.identity, names.join(", ")),
            };
            assert_eq!(u.shown, expected);
        }
    }
});
