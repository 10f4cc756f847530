//! Who is asking: HTTP basic authentication against a users file.
//!
//! The users file is the htpasswd format with bcrypt hashes, one
//! `name:$2y$...` per line (`#` comments and blank lines allowed), as written
//! by `vouch user add` or Apache's `htpasswd -B`, and read by CNCF
//! distribution too. What each user may do is `access.rs`'s business.
//!
//! Password checks take the same time whether or not the user exists (an
//! unknown user is checked against a dummy hash of the same cost), and
//! failed attempts are throttled per client address and per user name
//! ([`Throttle`]) so that bcrypt cannot be used to burn the server's CPU.

use sha2::Digest as _;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

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
    /// SHA-256 of `hash || name:password` for credentials that verified;
    /// bcrypt costs tens of milliseconds, and a push is many requests.
    verified: Mutex<HashSet<[u8; 32]>>,
    /// A hash of a random password at the users' highest cost, checked
    /// for unknown users so that they take as long as known ones.
    dummy: OnceLock<String>,
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

/// Credentials as a Basic header carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub name: String,
    password: String,
}

impl Credentials {
    /// Parses `Basic base64(name:password)`; `None` if malformed.
    pub fn from_header(authorization: &str) -> Option<Credentials> {
        use base64::Engine as _;
        let encoded = authorization.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
        let pair = String::from_utf8(decoded).ok()?;
        let (name, password) = pair.split_once(':')?;
        Some(Credentials {
            name: name.to_owned(),
            password: password.to_owned(),
        })
    }
}

impl Users {
    /// Loads a users file.
    pub fn load(path: &Path) -> Result<Users, UsersFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersFileError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Users {
            hashes: parse(path, &text)?,
            verified: Mutex::default(),
            dummy: OnceLock::new(),
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

    /// Whether a user of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.hashes.contains_key(name)
    }

    fn cache_key(hash: &str, c: &Credentials) -> [u8; 32] {
        sha2::Sha256::digest(format!("{hash}\n{}:{}", c.name, c.password).as_bytes()).into()
    }

    /// Whether these credentials already verified once (no bcrypt).
    pub fn verified_before(&self, c: &Credentials) -> bool {
        let Some(hash) = self.hashes.get(&c.name) else {
            return false;
        };
        self.verified.lock().expect("lock").contains(&Self::cache_key(hash, c))
    }

    /// Checks a password with bcrypt (tens to hundreds of milliseconds: run
    /// it off the async workers). An unknown user is checked against a dummy
    /// hash of the same cost, so both answers take the same time.
    pub fn verify(&self, c: &Credentials) -> bool {
        match self.hashes.get(&c.name) {
            Some(hash) => {
                let ok = bcrypt::verify(&c.password, hash).unwrap_or(false);
                if ok {
                    self.verified.lock().expect("lock").insert(Self::cache_key(hash, c));
                }
                ok
            }
            None => {
                let _ = bcrypt::verify(&c.password, self.dummy_hash());
                false
            }
        }
    }

    fn dummy_hash(&self) -> &str {
        self.dummy.get_or_init(|| {
            let cost = self
                .hashes
                .values()
                .filter_map(|h| h.get(4..6)?.parse::<u32>().ok())
                .max()
                .unwrap_or(bcrypt::DEFAULT_COST);
            let random: [u8; 16] = rand::random();
            bcrypt::hash(hex::encode(random), cost.clamp(4, 31)).expect("bcrypt hashes a random password")
        })
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

/// Failed password checks allowed per client address, and per user name,
/// in one [`THROTTLE_WINDOW`]; more are refused with 429 before bcrypt runs.
pub const MAX_FAILURES: u32 = 10;
/// The window failures are counted in.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(60);
/// Clients and names remembered at most (oldest forgotten first).
const MAX_TRACKED: usize = 10_000;

/// Failed password checks, per client address and per user name.
#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Throttle {
    fn keys(addr: Option<IpAddr>, name: &str) -> [String; 2] {
        [
            format!("addr:{}", addr.map_or("local".into(), |a| a.to_string())),
            format!("user:{name}"),
        ]
    }

    /// `Some(seconds to wait)` if this client or this user name has failed
    /// too often lately.
    pub fn refused(&self, addr: Option<IpAddr>, name: &str) -> Option<u64> {
        let now = Instant::now();
        let map = self.failures.lock().expect("lock");
        Self::keys(addr, name)
            .iter()
            .filter_map(|k| map.get(k))
            .filter(|(since, n)| *n >= MAX_FAILURES && now.duration_since(*since) < THROTTLE_WINDOW)
            .map(|(since, _)| (THROTTLE_WINDOW - now.duration_since(*since)).as_secs().max(1))
            .max()
    }

    /// Counts a failed check.
    pub fn failed(&self, addr: Option<IpAddr>, name: &str) {
        let now = Instant::now();
        let mut map = self.failures.lock().expect("lock");
        if map.len() >= MAX_TRACKED {
            map.retain(|_, (since, _)| now.duration_since(*since) < THROTTLE_WINDOW);
        }
        for k in Self::keys(addr, name) {
            let e = map.entry(k).or_insert((now, 0));
            if now.duration_since(e.0) >= THROTTLE_WINDOW {
                *e = (now, 0);
            }
            e.1 += 1;
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file (mode 0600),
/// fsync'd, renamed into place, the directory fsync'd.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    std::io::Write::write_all(&mut f, bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

/// Adds or replaces `name` in the users file at `path` (created, mode 0600,
/// if missing) with a bcrypt hash of `password` (bcrypt's default cost).
pub fn add_user(path: &Path, name: &str, password: &str) -> Result<(), Box<dyn std::error::Error>> {
    add_user_with_cost(path, name, password, bcrypt::DEFAULT_COST)
}

/// [`add_user`] with a bcrypt cost (4 to 31).
pub fn add_user_with_cost(
    path: &Path,
    name: &str,
    password: &str,
    cost: u32,
) -> Result<(), Box<dyn std::error::Error>> {
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
    let hash = bcrypt::hash(password, cost)?;
    let mut out: String = existing
        .lines()
        .filter(|l| l.split_once(':').map(|(n, _)| n.trim()) != Some(name))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&format!("{name}:{hash}\n"));
    write_private(path, out.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn creds(user: &str, pass: &str) -> Credentials {
        let h = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        );
        Credentials::from_header(&h).unwrap()
    }

    #[test]
    fn add_load_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        add_user(&path, "alice", "s3cret").unwrap();
        add_user(&path, "bob", "hunter2").unwrap();
        add_user(&path, "alice", "changed").unwrap();
        let users = Users::load(&path).unwrap();
        assert_eq!(users.len(), 2);
        assert!(!users.verified_before(&creds("alice", "changed")));
        assert!(users.verify(&creds("alice", "changed")));
        assert!(users.verified_before(&creds("alice", "changed")), "cached");
        assert!(!users.verify(&creds("alice", "s3cret")));
        assert!(!users.verify(&creds("carol", "x")));
        assert_eq!(Credentials::from_header("Bearer abc"), None);
    }

    #[test]
    fn an_unknown_user_is_checked_at_the_cost_of_a_known_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        add_user_with_cost(&path, "low", "pw", 4).unwrap();
        add_user_with_cost(&path, "high", "pw", 6).unwrap();
        let users = Users::load(&path).unwrap();
        assert!(!users.verify(&creds("nobody", "pw")));
        // The dummy hash an unknown name is checked against has the users'
        // highest cost, so "no such user" takes as long as a wrong password.
        assert_eq!(&users.dummy_hash()[..7], "$2b$06$");
    }

    #[test]
    fn bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "# users\n\nalice:$2y$10$abcdefghijklmnopqrstuu\nbob:plaintext\n").unwrap();
        let err = Users::load(&path).unwrap_err();
        assert!(err.to_string().contains("line 4"), "{err}");
    }

    #[test]
    fn failures_are_throttled_per_address_and_per_name() {
        let t = Throttle::default();
        let (a, b) = (Some("10.0.0.1".parse().unwrap()), Some("10.0.0.2".parse().unwrap()));
        for _ in 0..MAX_FAILURES {
            assert_eq!(t.refused(a, "alice"), None);
            t.failed(a, "alice");
        }
        assert!(t.refused(a, "bob").is_some(), "the address is throttled");
        assert!(t.refused(b, "alice").is_some(), "the name is throttled");
        assert_eq!(t.refused(b, "bob"), None);
    }
}
