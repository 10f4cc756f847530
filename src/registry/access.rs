//! Who may do what, decided in one place (spec/access.md).
//!
//! Four actions, granted per repository glob: `read`, `push`, `delete`,
//! `admin` (admin implies the other three). Grants live in an access file
//! (TOML, managed with `vouch user grant` / `revoke`):
//!
//! ```toml
//! version = 1
//!
//! [[grant]]
//! user = "alice"              # a user of the users file, or "*" for every one
//! repositories = "team/**"    # `*` within a path segment, `**` across segments
//! actions = ["read", "push", "delete"]
//! ```
//!
//! The global operator endpoints (`/admin/...`) need `admin` on `**`.
//! With a users file but no access file, every user may read, push and
//! delete everywhere and nobody is an admin. Anonymous clients may read when
//! anonymous pull is on. In open mode (no users file) anyone may read,
//! push and delete, and clients on the loopback interface are admins.
//!
//! Reading *quarantined* content (not admitted) needs push rights to the
//! repository granted to an authenticated user: [`Access::reads_quarantined`].
//! Anonymous clients never read it, not even in open mode, where they push.

use super::auth::Users;
use super::names::{glob_match, RepoName};
use super::path::Route;
use axum::http::Method;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The access file format version this code reads and writes.
pub const ACCESS_VERSION: u32 = 1;

/// An action on a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Pull: manifests, blobs, tags, referrers, admission bundles.
    Read,
    /// Push: uploads, mounts, manifests, tags.
    Push,
    /// Delete manifests, tags and blobs (not admitted content).
    Delete,
    /// Everything, and: delete or move tags off admitted content; on `**`,
    /// the operator endpoints (garbage collection, re-evaluation).
    Admin,
}

impl Action {
    /// Its name in files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Push => "push",
            Action::Delete => "delete",
            Action::Admin => "admin",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "read" => Action::Read,
            "push" => Action::Push,
            "delete" => Action::Delete,
            "admin" => Action::Admin,
            _ => return None,
        })
    }
}

/// One grant: a user (or `*`), a repository glob, actions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// A user name, or `*` for every authenticated user.
    pub user: String,
    /// A repository glob.
    pub repositories: String,
    /// What they may do there.
    pub actions: BTreeSet<Action>,
}

impl Grant {
    fn covers(&self, user: &str, action: Action, repo: Option<&RepoName>) -> bool {
        let who = self.user == "*" || self.user == user;
        // admin includes everything; push and delete include read (a push
        // checks what is there; a deleter finds what to delete).
        let what = self.actions.contains(&action)
            || self.actions.contains(&Action::Admin)
            || (action == Action::Read
                && (self.actions.contains(&Action::Push) || self.actions.contains(&Action::Delete)));
        let where_ = match repo {
            Some(r) => glob_match(&self.repositories, r.as_str()),
            // A global action needs the grant to cover every repository.
            None => self.repositories == "**",
        };
        who && what && where_
    }
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessFile {
    version: u32,
    #[serde(default, rename = "grant")]
    grants: Vec<Grant>,
}

/// An access file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AccessFileError {
    /// Reading or writing it failed.
    #[error("access file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not a valid access file (the message names the line and column, or the grant).
    #[error("access file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The grants in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants(pub Vec<Grant>);

impl Grants {
    /// Without an access file: every user may read, push and delete in
    /// every repository; nobody is an admin.
    pub fn default_for_users() -> Grants {
        Grants(vec![Grant {
            user: "*".into(),
            repositories: "**".into(),
            actions: [Action::Read, Action::Push, Action::Delete].into(),
        }])
    }

    /// Reads an access file.
    pub fn load(path: &Path) -> Result<Grants, AccessFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| AccessFileError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses an access file's text.
    pub fn parse(text: &str, path: &Path) -> Result<Grants, AccessFileError> {
        let invalid = |message: String| AccessFileError::Invalid {
            path: path.to_owned(),
            message,
        };
        let file: AccessFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if file.version != ACCESS_VERSION {
            return Err(invalid(format!(
                "version {} is not supported (this build reads version {ACCESS_VERSION})",
                file.version
            )));
        }
        for (i, g) in file.grants.iter().enumerate() {
            if g.user.is_empty() || g.repositories.is_empty() || g.actions.is_empty() {
                return Err(invalid(format!(
                    "grant {}: needs a user, a repositories glob and at least one action",
                    i + 1
                )));
            }
        }
        Ok(Grants(file.grants))
    }

    /// Whether `user` may do `action` in `repo` (`None`: a global action).
    pub fn allows(&self, user: &str, action: Action, repo: Option<&RepoName>) -> bool {
        self.0.iter().any(|g| g.covers(user, action, repo))
    }

    /// The file's text.
    pub fn to_toml(&self) -> String {
        let file = AccessFile {
            version: ACCESS_VERSION,
            grants: self.0.clone(),
        };
        format!(
            "# vouch access file (spec/access.md); managed with `vouch user grant` and `vouch user revoke`\n{}",
            toml::to_string(&file).expect("serialize the access file")
        )
    }

    /// Writes the file atomically (mode 0600, fsync'd, renamed into place).
    pub fn save(&self, path: &Path) -> Result<(), AccessFileError> {
        crate::registry::auth::write_private(path, self.to_toml().as_bytes()).map_err(|source| AccessFileError::Io {
            path: path.to_owned(),
            source,
        })
    }
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The authenticated user, if any.
    pub user: Option<String>,
    /// The client's address (`None` in-process, treated as loopback).
    pub addr: Option<IpAddr>,
    /// The request names a client behind a proxy (`Forwarded`,
    /// `X-Forwarded-For` or `X-Real-IP`).
    pub proxied: bool,
}

/// Headers by which a reverse proxy names the client it forwards for.
pub const PROXY_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

impl Principal {
    /// Whether the request came from this machine: over the loopback
    /// interface, and not forwarded by a proxy there (a reverse proxy on
    /// the same host would otherwise make every client an open-mode admin).
    pub fn loopback(&self) -> bool {
        !self.proxied && self.addr.is_none_or(|a| a.is_loopback())
    }

    /// Who opened an upload session: the user, or the client's address.
    pub fn owner(&self) -> String {
        match (&self.user, self.addr) {
            (Some(u), _) => format!("user:{u}"),
            (None, Some(a)) => format!("addr:{a}"),
            (None, None) => "addr:local".into(),
        }
    }
}

/// Users, grants and modes: everything the one authorization check reads.
#[derive(Debug)]
pub struct Access {
    users: RwLock<Option<Arc<Users>>>,
    grants: RwLock<Arc<Grants>>,
    anonymous_pull: bool,
    files: Option<(PathBuf, Option<PathBuf>)>,
}

impl Access {
    /// Open mode: no users file.
    pub fn open() -> Access {
        Access {
            users: RwLock::new(None),
            grants: RwLock::new(Arc::new(Grants(Vec::new()))),
            anonymous_pull: true,
            files: None,
        }
    }

    /// Users (and their grants: the access file's, or
    /// [`Grants::default_for_users`]); `anonymous_pull` lets clients without
    /// credentials read.
    pub fn with_users(users: Users, grants: Grants, anonymous_pull: bool) -> Access {
        Access {
            users: RwLock::new(Some(Arc::new(users))),
            grants: RwLock::new(Arc::new(grants)),
            anonymous_pull,
            files: None,
        }
    }

    /// Loads the users file and, if given, the access file; remembers both
    /// for [`Access::reload`].
    pub fn load(
        users: &Path,
        access: Option<&Path>,
        anonymous_pull: bool,
    ) -> Result<Access, Box<dyn std::error::Error>> {
        let grants = match access {
            Some(p) => Grants::load(p)?,
            None => Grants::default_for_users(),
        };
        let mut a = Access::with_users(Users::load(users)?, grants, anonymous_pull);
        a.files = Some((users.to_owned(), access.map(Path::to_owned)));
        Ok(a)
    }

    /// Reads the users and access files again (SIGHUP); on an error keeps
    /// what is in force and says why.
    pub fn reload(&self) -> Result<(usize, usize), Box<dyn std::error::Error>> {
        let Some((users_path, access_path)) = &self.files else {
            return Ok((0, 0));
        };
        let users = Users::load(users_path)?;
        let grants = match access_path {
            Some(p) => Grants::load(p)?,
            None => Grants::default_for_users(),
        };
        let counts = (users.len(), grants.0.len());
        *self.users.write().expect("lock") = Some(Arc::new(users));
        *self.grants.write().expect("lock") = Arc::new(grants);
        Ok(counts)
    }

    /// The users, unless in open mode.
    pub fn users(&self) -> Option<Arc<Users>> {
        self.users.read().expect("lock").clone()
    }

    /// Whether there is no users file.
    pub fn is_open_mode(&self) -> bool {
        self.users.read().expect("lock").is_none()
    }

    /// Whether clients without credentials may read.
    pub fn anonymous_pull(&self) -> bool {
        self.anonymous_pull
    }

    /// THE check: whether `who` may do `action` in `repo` (`None`: a
    /// global action, the operator endpoints).
    pub fn allows(&self, who: &Principal, action: Action, repo: Option<&RepoName>) -> bool {
        match (self.is_open_mode(), &who.user) {
            (true, _) => action != Action::Admin || who.loopback(),
            (false, None) => action == Action::Read && self.anonymous_pull,
            (false, Some(user)) => self.grants.read().expect("lock").allows(user, action, repo),
        }
    }

    /// Whether `who` may read content of `repo` that is not admitted:
    /// an authenticated user with push rights there.
    pub fn reads_quarantined(&self, who: &Principal, repo: &RepoName) -> bool {
        who.user.is_some() && self.allows(who, Action::Push, Some(repo))
    }
}

/// The table of what each endpoint needs (spec/http-api.md, "Access"):
/// the action, and whether it applies to the route's repository or is
/// global. `None`: nothing (the ledger, `/v2/` itself).
pub fn required(method: &Method, route: &Route<'_>) -> Option<Action> {
    let read = matches!(*method, Method::GET | Method::HEAD);
    match route {
        Route::Base => None,
        Route::Blob { .. } | Route::Manifest { .. } if *method == Method::DELETE => Some(Action::Delete),
        Route::UploadStart { .. } | Route::Upload { .. } => Some(Action::Push),
        Route::Blob { .. }
        | Route::Manifest { .. }
        | Route::Tags { .. }
        | Route::Referrers { .. }
        | Route::Admission { .. }
        | Route::Catalog
            if read =>
        {
            Some(Action::Read)
        }
        // Writes (PUT of a manifest; other methods, which the handlers
        // answer with 405 once the caller may write).
        _ => Some(Action::Push),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_cover_by_user_glob_and_action_and_admin_implies_the_rest() {
        let g = Grants::parse(
            "version = 1\n[[grant]]\nuser = \"alice\"\nrepositories = \"team/**\"\nactions = [\"read\", \"push\"]\n\
             [[grant]]\nuser = \"*\"\nrepositories = \"pub/*\"\nactions = [\"read\"]\n\
             [[grant]]\nuser = \"ops\"\nrepositories = \"**\"\nactions = [\"admin\"]\n\
             [[grant]]\nuser = \"ci\"\nrepositories = \"ci/*\"\nactions = [\"push\"]\n\
             [[grant]]\nuser = \"janitor\"\nrepositories = \"ci/*\"\nactions = [\"delete\"]\n",
            Path::new("a.toml"),
        )
        .unwrap();
        let repo = |s: &str| RepoName::parse(s).unwrap();
        // push and delete include read, nothing else.
        for user in ["ci", "janitor"] {
            assert!(g.allows(user, Action::Read, Some(&repo("ci/app"))), "{user}");
            assert!(!g.allows(user, Action::Read, Some(&repo("team/app"))), "{user}");
            assert!(!g.allows(user, Action::Admin, Some(&repo("ci/app"))), "{user}");
        }
        assert!(!g.allows("ci", Action::Delete, Some(&repo("ci/app"))));
        assert!(!g.allows("janitor", Action::Push, Some(&repo("ci/app"))));
        assert!(g.allows("alice", Action::Push, Some(&repo("team/app/x"))));
        assert!(!g.allows("alice", Action::Delete, Some(&repo("team/app"))));
        assert!(!g.allows("alice", Action::Read, Some(&repo("other/app"))));
        assert!(g.allows("bob", Action::Read, Some(&repo("pub/app"))));
        assert!(!g.allows("bob", Action::Read, Some(&repo("pub/a/b"))));
        assert!(g.allows("ops", Action::Delete, Some(&repo("any/thing"))));
        assert!(g.allows("ops", Action::Admin, None));
        assert!(!g.allows("alice", Action::Admin, None));
        assert_eq!(Grants::parse(&g.to_toml(), Path::new("a.toml")).unwrap(), g);
        let bad = Grants::parse(
            "version = 1\n[[grant]]\nuser = \"a\"\nrepositories = \"**\"\nactions = [\"fly\"]\n",
            Path::new("a.toml"),
        );
        assert!(bad.unwrap_err().to_string().contains("line 5"));
    }
}
