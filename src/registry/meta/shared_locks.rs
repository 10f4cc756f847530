//! Locks every replica sharing the metadata database respects: PostgreSQL
//! session-level advisory locks, taken on one connection of this process's
//! own (not the pool's), so that an admission's tag check, its ledger
//! entries and its metadata commit happen under one lock across replicas
//! as they do under the process's own mutexes. Without it, two replicas
//! moving one tag at once could each log a move from the same previous
//! image: one winner in the metadata, but a ledger that does not say what
//! happened (`tests/replicas.rs`).
//!
//! The locks are taken with `pg_try_advisory_lock` and retried with a
//! backoff, never waited for on the connection, so one connection serves
//! every lock of the process without a lock wait blocking an unlock. They
//! are reentrant per session (this process's own mutexes keep its tasks
//! apart), and are released by `pg_advisory_unlock` when the guard drops,
//! or by the server when the connection ends (a replica that dies holds
//! nothing).

use super::postgres::{connect, wait, Postgres, READ_TIMEOUT};
use crate::registry::error::RegistryError;
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::Client;

/// The longest pause between two tries of a lock another replica holds.
const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// Advisory locks on the metadata database for this process.
pub struct SharedLocks {
    pg: Arc<Postgres>,
    conn: Arc<tokio::sync::Mutex<Option<Client>>>,
}

impl std::fmt::Debug for SharedLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedLocks({:?})", self.pg)
    }
}

/// Held locks; released when dropped.
#[must_use]
pub struct SharedGuard {
    pg: Arc<Postgres>,
    conn: Arc<tokio::sync::Mutex<Option<Client>>>,
    keys: Vec<i64>,
}

/// The advisory lock key of tag `tag` of `repo`: the first 8 bytes of a
/// SHA-256, the same in every replica and every build.
pub fn tag_key(repo: &str, tag: &str) -> i64 {
    let h = Sha256::new()
        .chain_update(b"vouch tag lock\0")
        .chain_update(repo.as_bytes())
        .chain_update(b"\0")
        .chain_update(tag.as_bytes())
        .finalize();
    i64::from_be_bytes(h[..8].try_into().expect("8 bytes"))
}

impl SharedLocks {
    /// Locks on `pg`.
    pub fn new(pg: Arc<Postgres>) -> SharedLocks {
        SharedLocks {
            pg,
            conn: Default::default(),
        }
    }

    /// Takes the locks `keys` (in sorted order), waiting while another
    /// replica holds one, for at most 30 s (then `503 UNAVAILABLE`).
    pub fn lock(&self, mut keys: Vec<i64>) -> Result<SharedGuard, RegistryError> {
        keys.sort_unstable();
        keys.dedup();
        let (pool, conn, wanted) = (self.pg.pool.clone(), self.conn.clone(), keys.clone());
        wait(&self.pg.runtime, READ_TIMEOUT, async move {
            let mut backoff = Duration::from_millis(1);
            loop {
                let mut held = conn.lock().await;
                if held.as_ref().is_none_or(|c| c.is_closed()) {
                    *held = Some(connect(&pool).await?);
                }
                let client = held.as_ref().expect("connected");
                if try_all(client, &wanted).await? {
                    return Ok(());
                }
                drop(held);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        })?;
        Ok(SharedGuard {
            pg: self.pg.clone(),
            conn: self.conn.clone(),
            keys,
        })
    }
}

/// Takes every lock of `keys` or none.
async fn try_all(client: &Client, keys: &[i64]) -> Result<bool, tokio_postgres::Error> {
    for (i, k) in keys.iter().enumerate() {
        let got: bool = client.query_one("SELECT pg_try_advisory_lock($1)", &[k]).await?.get(0);
        if !got {
            for taken in &keys[..i] {
                client.execute("SELECT pg_advisory_unlock($1)", &[taken]).await?;
            }
            return Ok(false);
        }
    }
    Ok(true)
}

impl std::fmt::Debug for SharedGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedGuard({:?})", self.keys)
    }
}

impl Drop for SharedGuard {
    fn drop(&mut self) {
        let (conn, keys) = (self.conn.clone(), std::mem::take(&mut self.keys));
        // Not waited for: the next lock of a key this process holds is
        // reentrant, and a lost connection released everything anyway.
        self.pg.runtime.spawn(async move {
            if let Some(client) = conn.lock().await.as_ref() {
                for k in keys {
                    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&k]).await;
                }
            }
        });
    }
}
