//! Upload sessions in memory: how many each client has open and how many
//! bytes they hold (bounded per client and in all, `Limits`), and one lock
//! per session, so that a session is used by one request at a time and
//! finished at most once.
//!
//! The counts are rebuilt from the sessions on disk at start
//! ([`Sessions::rebuild`]); they are an admission control, not a record, so
//! nothing here needs to be durable.

use super::error::RegistryError;
use super::Limits;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Counts {
    /// Owner and bytes of each open session.
    sessions: HashMap<String, (String, u64)>,
    /// Per owner: sessions and bytes.
    owners: HashMap<String, (u32, u64)>,
    total_bytes: u64,
}

/// Open sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    counts: Mutex<Counts>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Held while a request uses a session.
#[derive(Debug)]
pub struct SessionGuard {
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Sessions {
    /// Starts counting the sessions found on disk: (id, owner, bytes).
    pub fn rebuild(&self, found: impl IntoIterator<Item = (String, String, u64)>) {
        let mut c = self.counts.lock().expect("lock");
        *c = Counts::default();
        for (id, owner, bytes) in found {
            let o = c.owners.entry(owner.clone()).or_default();
            o.0 += 1;
            o.1 += bytes;
            c.total_bytes += bytes;
            c.sessions.insert(id, (owner, bytes));
        }
    }

    /// Counts a new session for `owner`, or refuses it over the bounds.
    pub fn open(&self, id: &str, owner: &str, limits: &Limits) -> Result<(), RegistryError> {
        let mut c = self.counts.lock().expect("lock");
        let mine = c.owners.get(owner).map_or(0, |o| o.0);
        if mine >= limits.max_upload_sessions_per_client {
            return Err(RegistryError::UploadLimit(format!(
                "this client has {mine} upload sessions open (limit {}); finish or cancel some, or wait for them to expire",
                limits.max_upload_sessions_per_client
            )));
        }
        if c.sessions.len() >= limits.max_upload_sessions as usize {
            return Err(RegistryError::UploadLimit(format!(
                "the registry has {} upload sessions open (limit {}); retry later",
                c.sessions.len(),
                limits.max_upload_sessions
            )));
        }
        c.owners.entry(owner.to_owned()).or_default().0 += 1;
        c.sessions.insert(id.to_owned(), (owner.to_owned(), 0));
        Ok(())
    }

    /// How many more bytes the session `id` may take: the least of the
    /// blob limit (less what it holds), its owner's room and the registry's.
    pub fn room(&self, id: &str, limits: &Limits) -> u64 {
        let c = self.counts.lock().expect("lock");
        let (owner, held) = c.sessions.get(id).cloned().unwrap_or_default();
        let owner_bytes = c.owners.get(&owner).map_or(0, |o| o.1);
        limits
            .max_blob_bytes
            .saturating_sub(held)
            .min(limits.max_upload_bytes_per_client.saturating_sub(owner_bytes))
            .min(limits.max_upload_bytes.saturating_sub(c.total_bytes))
    }

    /// Counts `n` more bytes arriving for the session `id`, or refuses them
    /// when its owner's or the registry's sessions would hold more than
    /// they may. Checked and counted in one step, chunk by chunk, so that
    /// concurrent uploads of one client cannot each take the same room.
    pub fn charge(&self, id: &str, n: u64, limits: &Limits) -> Result<(), RegistryError> {
        let mut c = self.counts.lock().expect("lock");
        let Some((owner, held)) = c.sessions.get(id).cloned() else {
            return Ok(());
        };
        let owner_bytes = c.owners.get(&owner).map_or(0, |o| o.1);
        if owner_bytes.saturating_add(n) > limits.max_upload_bytes_per_client
            || c.total_bytes.saturating_add(n) > limits.max_upload_bytes
        {
            return Err(RegistryError::UploadLimit(format!(
                "upload sessions of this client or of the registry hold all the bytes they may \
                 (per client {}, in all {}); finish or cancel uploads first",
                limits.max_upload_bytes_per_client, limits.max_upload_bytes
            )));
        }
        c.total_bytes += n;
        if let Some(o) = c.owners.get_mut(&owner) {
            o.1 += n;
        }
        c.sessions.insert(id.to_owned(), (owner, held + n));
        Ok(())
    }

    /// Records that the session `id` now holds `bytes`.
    pub fn resized(&self, id: &str, bytes: u64) {
        let mut c = self.counts.lock().expect("lock");
        let Some((owner, held)) = c.sessions.get(id).cloned() else {
            return;
        };
        c.total_bytes = c.total_bytes - held + bytes;
        if let Some(o) = c.owners.get_mut(&owner) {
            o.1 = o.1 - held + bytes;
        }
        c.sessions.insert(id.to_owned(), (owner, bytes));
    }

    /// Stops counting a finished, cancelled or expired session.
    pub fn closed(&self, id: &str) {
        let mut c = self.counts.lock().expect("lock");
        if let Some((owner, held)) = c.sessions.remove(id) {
            c.total_bytes -= held;
            if let Some(o) = c.owners.get_mut(&owner) {
                o.0 -= 1;
                o.1 -= held;
                if o.0 == 0 {
                    c.owners.remove(&owner);
                }
            }
        }
        self.locks.lock().expect("lock").remove(id);
    }

    /// Sessions open, and the bytes they hold.
    pub fn totals(&self) -> (usize, u64) {
        let c = self.counts.lock().expect("lock");
        (c.sessions.len(), c.total_bytes)
    }

    /// Waits for the session's lock: one request at a time per session.
    /// Callers check that the session exists first (so that requests
    /// naming made-up sessions leave nothing behind here), and again once
    /// they hold the lock.
    pub async fn lock(&self, id: &str) -> SessionGuard {
        let m = self
            .locks
            .lock()
            .expect("lock")
            .entry(id.to_owned())
            .or_default()
            .clone();
        SessionGuard {
            _guard: m.lock_owned().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_bytes_are_bounded_per_owner_and_in_all() {
        let limits = Limits {
            max_upload_sessions_per_client: 2,
            max_upload_sessions: 3,
            max_upload_bytes_per_client: 100,
            max_upload_bytes: 150,
            max_blob_bytes: 80,
            ..Limits::default()
        };
        let s = Sessions::default();
        s.open("a1", "alice", &limits).unwrap();
        s.open("a2", "alice", &limits).unwrap();
        assert!(s.open("a3", "alice", &limits).is_err());
        s.open("b1", "bob", &limits).unwrap();
        assert!(s.open("c1", "carol", &limits).is_err(), "3 in all");
        assert_eq!(s.room("a1", &limits), 80);
        s.resized("a1", 70);
        assert_eq!(s.room("a1", &limits), 10, "blob limit");
        assert_eq!(s.room("a2", &limits), 30, "alice's room");
        s.resized("b1", 75);
        assert_eq!(s.room("a2", &limits), 5, "the registry's room");
        s.closed("a1");
        assert_eq!(s.totals(), (2, 75));
        s.open("c1", "carol", &limits).unwrap();
    }

    #[test]
    fn concurrent_uploads_of_one_client_cannot_each_take_the_same_room() {
        let limits = Limits {
            max_upload_bytes_per_client: 100,
            max_upload_bytes: 1000,
            max_blob_bytes: 1000,
            ..Limits::default()
        };
        let s = Sessions::default();
        s.open("a1", "alice", &limits).unwrap();
        s.open("a2", "alice", &limits).unwrap();
        // Both start with 100 bytes of room; their chunks interleave.
        assert_eq!((s.room("a1", &limits), s.room("a2", &limits)), (100, 100));
        s.charge("a1", 60, &limits).unwrap();
        assert!(s.charge("a2", 60, &limits).is_err(), "the room a1 took is gone");
        s.charge("a2", 40, &limits).unwrap();
        assert!(s.charge("a1", 1, &limits).is_err());
        assert_eq!(s.totals(), (2, 100));
        // A failed append is cut off again: resized back.
        s.resized("a2", 0);
        s.charge("a1", 40, &limits).unwrap();
    }
}
