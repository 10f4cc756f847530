//! OCSP responses and CRLs, read for a certificate of the test authority
//! (tests/notation_revocation.py) at the time its seeds were made. Any
//! bytes are refused by name or read, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use x509_parser::prelude::{FromDer as _, X509Certificate};

const LEAF: &[u8] = include_bytes!("../seeds/revocation/leaf-revoked.der");
const ISSUER: &[u8] = include_bytes!("../seeds/revocation/issuer.der");
const MADE: i64 = 1_796_683_166;

fuzz_target!(|data: &[u8]| {
    let (leaf, issuer) = (
        X509Certificate::from_der(LEAF).unwrap().1,
        X509Certificate::from_der(ISSUER).unwrap().1,
    );
    let _ = vouch::revocation::ocsp::read(data, &leaf, &issuer, MADE, Some(&[7; 32]));
    let _ = vouch::revocation::crl::read(data, None, &leaf, &issuer, MADE);
    let _ = vouch::revocation::crl::read(data, Some(data), &leaf, &issuer, MADE);
    if let Ok((_, cert)) = X509Certificate::from_der(data) {
        let _ = vouch::revocation::sources(&cert);
        let _ = vouch::revocation::ocsp::request(&cert, &issuer, data.get(..32).unwrap_or(&[1]));
    }
});
