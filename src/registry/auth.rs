//! Who may do what: HTTP basic authentication against a users file.
//!
//! The users file is the htpasswd format with bcrypt hashes, one
//! `name:$2y$...` per line (`#` comments and blank lines allowed), as written
//! by `vouch user add` or Apache's `htpasswd -B`, and read by CNCF
//! distribution too. Pushes and deletes always need a valid user; pulls do
//! unless anonymous pull is on (the default).

use sha2::Digest as _;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The realm of the `WWW-Authenticate: Basic` challenge.
pub const REALM: &str = "vouch";

/// A users file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UsersFileError {
    /// Reading or writing it failed.
    #[error("users file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is not `name:bcrypt-hash`.
    #[error("users file {path}, line {line}: expected <name>:<bcrypt hash> ($2a$, $2b$ or $2y$)")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
}

/// The users, and which credentials have already been verified.
#[derive(Debug)]
pub struct Users {
    hashes: HashMap<String, String>,
    /// SHA-256 of `name:password` pairs that verified; bcrypt costs tens of
    /// milliseconds, and a push is many requests.
    verified: Mutex<HashSet<[u8; 32]>>,
    /// Whether reads need no credentials.
    pub anonymous_pull: bool,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains([':', '\n', '\r']) && !name.chars().any(char::is_whitespace)
}

fn parse(path: &Path, text: &str) -> Result<HashMap<String, String>, UsersFileError> {
    let mut hashes = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || UsersFileError::BadLine {
            path: path.to_owned(),
            line: i + 1,
        };
        let (name, hash) = line.split_once(':').ok_or_else(bad)?;
        let bcrypt = ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p));
        if !valid_name(name) || !bcrypt {
            return Err(bad());
        }
        hashes.insert(name.to_owned(), hash.to_owned());
    }
    Ok(hashes)
}

impl Users {
    /// Loads a users file.
    pub fn load(path: &Path, anonymous_pull: bool) -> Result<Users, UsersFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersFileError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Users {
            hashes: parse(path, &text)?,
            verified: Mutex::default(),
            anonymous_pull,
        })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether there are no users.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The user an `Authorization: Basic ...` header value names, if its
    /// password is right. May run bcrypt (tens to hundreds of milliseconds):
    /// async callers use [`Self::authenticate_cached`] first and run this on
    /// the blocking pool.
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<String> {
        let (name, password, hash, key) = self.lookup(authorization?)?;
        if self.verified.lock().expect("lock").contains(&key) {
            return Some(name);
        }
        if bcrypt::verify(password, hash).ok()? {
            self.verified.lock().expect("lock").insert(key);
            return Some(name);
        }
        None
    }

    /// `Some(user)` if these credentials already verified once (no bcrypt).
    pub fn authenticate_cached(&self, authorization: &str) -> Option<String> {
        let (name, _, _, key) = self.lookup(authorization)?;
        self.verified.lock().expect("lock").contains(&key).then_some(name)
    }

    /// Name, password, stored hash and cache key of a Basic header value.
    fn lookup<'a>(&'a self, authorization: &str) -> Option<(String, String, &'a str, [u8; 32])> {
        use base64::Engine as _;
        let encoded = authorization.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
        let pair = String::from_utf8(decoded).ok()?;
        let (name, password) = pair.split_once(':')?;
        let hash = self.hashes.get(name)?;
        let key: [u8; 32] = sha2::Sha256::digest(format!("{hash}\n{pair}").as_bytes()).into();
        Some((name.to_owned(), password.to_owned(), hash.as_str(), key))
    }
}

/// Whether an `Authorization` value is Basic with an empty user name.
pub fn is_empty_basic(authorization: &str) -> bool {
    use base64::Engine as _;
    let Some(encoded) = authorization.strip_prefix("Basic ") else {
        return false;
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .unwrap_or_default();
    decoded.is_empty() || decoded.starts_with(b":")
}

/// Adds or replaces `name` in the users file at `path` (created, mode 0600,
/// if missing) with a bcrypt hash of `password`.
pub fn add_user(path: &Path, name: &str, password: &str) -> Result<(), Box<dyn std::error::Error>> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if !valid_name(name) {
        return Err(format!("invalid user name {name:?}: no spaces or colons").into());
    }
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    let existing = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(UsersFileError::Io {
                path: path.to_owned(),
                source,
            }
            .into())
        }
    };
    parse(path, &existing)?;
    let hash = bcrypt::hash(password, bcrypt::DEFAULT_COST)?;
    let mut out: String = existing
        .lines()
        .filter(|l| l.split_once(':').map(|(n, _)| n.trim()) != Some(name))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&format!("{name}:{hash}\n"));
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    std::io::Write::write_all(&mut f, out.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn basic(user: &str, pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    }

    #[test]
    fn add_load_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        add_user(&path, "alice", "s3cret").unwrap();
        add_user(&path, "bob", "hunter2").unwrap();
        add_user(&path, "alice", "changed").unwrap();
        let users = Users::load(&path, true).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(
            users.authenticate(Some(&basic("alice", "changed"))),
            Some("alice".into())
        );
        assert_eq!(
            users.authenticate(Some(&basic("alice", "changed"))),
            Some("alice".into()),
            "cached"
        );
        assert_eq!(users.authenticate(Some(&basic("alice", "s3cret"))), None);
        assert_eq!(users.authenticate(Some(&basic("carol", "x"))), None);
        assert_eq!(users.authenticate(Some("Bearer abc")), None);
        assert_eq!(users.authenticate(None), None);
    }

    #[test]
    fn bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "# users\n\nalice:$2y$10$abcdefghijklmnopqrstuu\nbob:plaintext\n").unwrap();
        let err = Users::load(&path, true).unwrap_err();
        assert!(err.to_string().contains("line 4"), "{err}");
    }
}
