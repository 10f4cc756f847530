//! Revocation answers saved in the data directory, so that a restarted
//! server does not fetch again what it fetched before, nor find a status
//! unavailable because a responder is down just then
//! (spec/storage-layout.md, "Revocation answers"). A cache: each file is
//! the answer's bytes exactly as fetched behind a small header saying until
//! when it is kept, and an answer read back is verified again as if it had
//! just been fetched (signature, issuer, times, scope). So a file that is
//! stale, torn, tampered with or from another build is never trusted, only
//! fetched again; writes need no fsync.
//!
//! ```text
//! <dir>/ocsp/<hex SHA-256 of the CertID DER>   an OCSP response
//! <dir>/crl/<hex SHA-256 of the URL>           a CRL (a base or a delta)
//! file = "VRA1" || keep-until (i64 BE, Unix seconds) || the DER as fetched
//! ```

use sha2::Digest as _;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"VRA1";
const HEADER: usize = MAGIC.len() + 8;

/// Which answers a file holds.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Ocsp,
    Crl,
}

impl Kind {
    fn folder(self) -> &'static str {
        match self {
            Kind::Ocsp => "ocsp",
            Kind::Crl => "crl",
        }
    }
}

/// The folder answers are saved in.
#[derive(Debug, Clone)]
pub(super) struct Saved {
    dir: PathBuf,
}

impl Saved {
    pub(super) fn new(dir: &Path) -> Saved {
        Saved { dir: dir.to_owned() }
    }

    fn path(&self, kind: Kind, key: &[u8]) -> PathBuf {
        self.dir
            .join(kind.folder())
            .join(hex::encode(sha2::Sha256::digest(key)))
    }

    /// The answer saved under `key`, if one is kept at `now` and is at
    /// most `limit` bytes; anything unreadable counts as none.
    pub(super) fn load(&self, kind: Kind, key: &[u8], now: i64, limit: u64) -> Option<(Vec<u8>, i64)> {
        let file = std::fs::File::open(self.path(kind, key)).ok()?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, limit + HEADER as u64 + 1), &mut bytes).ok()?;
        let (until, der) = parse(&bytes)?;
        (now <= until && der.len() as u64 <= limit).then(|| (der.to_vec(), until))
    }

    /// Removes the files no longer kept at `now`, those that are not
    /// answers, and temporary files a crash left; returns how many. Run
    /// at start, when no save is under way (one server per data
    /// directory), so that the folder holds no more than what is kept.
    pub(super) fn prune(&self, now: i64) -> usize {
        let mut removed = 0;
        for kind in [Kind::Ocsp, Kind::Crl] {
            let Ok(entries) = std::fs::read_dir(self.dir.join(kind.folder())) else {
                continue;
            };
            for path in entries.filter_map(|e| Some(e.ok()?.path())) {
                let mut header = [0u8; HEADER];
                let kept = std::fs::File::open(&path)
                    .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
                    .ok()
                    .and_then(|()| parse(&header))
                    .is_some_and(|(until, _)| now <= until);
                let ours = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()));
                if (!kept || !ours) && std::fs::remove_file(&path).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Saves `der` under `key`, kept until `until`: a temporary file
    /// renamed into place, so a reader sees the old file or the new one.
    /// A failure only costs a fetch after a restart; it is logged.
    pub(super) fn save(&self, kind: Kind, key: &[u8], der: &[u8], until: i64) {
        let path = self.path(kind, key);
        let write = || -> std::io::Result<()> {
            let folder = path.parent().expect("a file in a folder");
            std::fs::create_dir_all(folder)?;
            // Unique among this process's writers, and other processes'.
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = folder.join(format!(".tmp-{}-{n}", std::process::id()));
            let written = std::fs::write(&tmp, encode(until, der)).and_then(|()| std::fs::rename(&tmp, &path));
            if written.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            written
        };
        if let Err(e) = write() {
            tracing::warn!(path = %path.display(), error = %e, "saving a revocation answer failed");
        }
    }
}

fn encode(until: i64, der: &[u8]) -> Vec<u8> {
    [&MAGIC[..], &until.to_be_bytes(), der].concat()
}

/// A file's keep-until time and answer; `None` if it is not one.
fn parse(bytes: &[u8]) -> Option<(i64, &[u8])> {
    let rest = bytes.strip_prefix(&MAGIC[..])?;
    let (until, der) = rest.split_first_chunk::<8>()?;
    Some((i64::from_be_bytes(*until), der))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_answer_is_loaded_while_it_is_kept_and_not_after() {
        let dir = tempfile::tempdir().unwrap();
        let saved = Saved::new(dir.path());
        saved.save(Kind::Ocsp, b"cert id", b"der", 100);
        assert_eq!(
            saved.load(Kind::Ocsp, b"cert id", 100, 64),
            Some((b"der".to_vec(), 100))
        );
        assert_eq!(saved.load(Kind::Ocsp, b"cert id", 101, 64), None, "stale");
        assert_eq!(saved.load(Kind::Crl, b"cert id", 50, 64), None, "another kind");
        assert_eq!(saved.load(Kind::Ocsp, b"other", 50, 64), None);
        assert_eq!(saved.load(Kind::Ocsp, b"cert id", 50, 2), None, "over the limit");
        // Saved again: replaced.
        saved.save(Kind::Ocsp, b"cert id", b"newer", 200);
        assert_eq!(
            saved.load(Kind::Ocsp, b"cert id", 150, 64),
            Some((b"newer".to_vec(), 200))
        );
    }

    #[test]
    fn a_torn_or_foreign_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let saved = Saved::new(dir.path());
        saved.save(Kind::Crl, b"http://x/a.crl", b"der", 100);
        let path = saved.path(Kind::Crl, b"http://x/a.crl");
        for bytes in [&b""[..], b"VRA1", b"VRA1\0\0\0", b"VRA0\0\0\0\0\0\0\0\x10der"] {
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(saved.load(Kind::Crl, b"http://x/a.crl", 0, 64), None, "{bytes:?}");
        }
    }

    #[test]
    fn saving_into_a_folder_that_cannot_be_made_is_only_logged() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a file");
        std::fs::write(&file, b"").unwrap();
        let saved = Saved::new(&file);
        saved.save(Kind::Ocsp, b"k", b"der", 100);
        assert_eq!(saved.load(Kind::Ocsp, b"k", 0, 64), None);
    }

    #[test]
    fn pruning_removes_what_is_no_longer_kept_and_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let saved = Saved::new(dir.path());
        saved.save(Kind::Ocsp, b"stale", b"der", 100);
        saved.save(Kind::Ocsp, b"fresh", b"der", 300);
        saved.save(Kind::Crl, b"http://x/stale.crl", b"der", 150);
        saved.save(Kind::Crl, b"http://x/fresh.crl", b"der", 200);
        std::fs::write(dir.path().join("ocsp/.tmp-1-0"), b"VRA1").unwrap();
        std::fs::write(saved.path(Kind::Crl, b"torn"), b"VR").unwrap();
        assert_eq!(saved.prune(200), 4);
        assert!(saved.load(Kind::Ocsp, b"fresh", 200, 64).is_some());
        assert!(saved.load(Kind::Crl, b"http://x/fresh.crl", 200, 64).is_some());
        let left = |k: Kind| std::fs::read_dir(dir.path().join(k.folder())).unwrap().count();
        assert_eq!((left(Kind::Ocsp), left(Kind::Crl)), (1, 1));
        // Nothing saved yet: nothing to do.
        assert_eq!(Saved::new(&dir.path().join("none")).prune(0), 0);
    }

    proptest! {
        #[test]
        fn files_read_back_as_written(until in any::<i64>(), der in proptest::collection::vec(any::<u8>(), 0..64)) {
            let file = encode(until, &der);
            prop_assert_eq!(parse(&file), Some((until, &der[..])));
        }

        #[test]
        fn any_bytes_parse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = parse(&bytes);
        }
    }
}
