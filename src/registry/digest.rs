//! Content hashing for the digest algorithms vouch verifies.

use sha2::Digest as _;
use vouch_ledger::entry::Digest;

/// An incremental hasher for one digest algorithm.
#[derive(Debug, Clone)]
pub enum DigestHasher {
    /// `sha256`
    Sha256(sha2::Sha256),
    /// `sha512`
    Sha512(sha2::Sha512),
    /// `blake3` (registered in image-spec's descriptor algorithms)
    Blake3(Box<blake3::Hasher>),
}

impl DigestHasher {
    /// A hasher for the algorithm of `digest`.
    pub fn for_digest(digest: &Digest) -> DigestHasher {
        match digest.algorithm() {
            "sha256" => DigestHasher::Sha256(sha2::Sha256::new()),
            "sha512" => DigestHasher::Sha512(sha2::Sha512::new()),
            "blake3" => DigestHasher::Blake3(Box::default()),
            other => unreachable!("Digest::parse admits no algorithm {other}"),
        }
    }

    /// A sha256 hasher, the default for content vouch names itself.
    pub fn sha256() -> DigestHasher {
        DigestHasher::Sha256(sha2::Sha256::new())
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            DigestHasher::Sha256(h) => h.update(bytes),
            DigestHasher::Sha512(h) => h.update(bytes),
            DigestHasher::Blake3(h) => {
                h.update(bytes);
            }
        }
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        let text = match self {
            DigestHasher::Sha256(h) => format!("sha256:{}", hex(&h.finalize())),
            DigestHasher::Sha512(h) => format!("sha512:{}", hex(&h.finalize())),
            DigestHasher::Blake3(h) => format!("blake3:{}", h.finalize().to_hex()),
        };
        Digest::parse(&text).expect("well-formed")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 digest of `bytes`.
pub fn sha256_of(bytes: &[u8]) -> Digest {
    let mut h = DigestHasher::sha256();
    h.update(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        // Published test vectors for the empty input.
        assert_eq!(
            sha256_of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut b = DigestHasher::for_digest(&Digest::parse(&format!("blake3:{}", "0".repeat(64))).unwrap());
        b.update(b"");
        assert_eq!(
            b.finish().as_str(),
            "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        let mut s = DigestHasher::for_digest(&Digest::parse(&format!("sha512:{}", "0".repeat(128))).unwrap());
        s.update(b"abc");
        assert!(s.finish().as_str().starts_with("sha512:ddaf35a193617aba"));
    }
}
