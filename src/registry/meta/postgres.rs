//! Registry metadata in PostgreSQL (`vouch serve --database postgres://..`):
//! the ordered key-value interface of `kv.rs` over one table, so that every
//! replica sharing the database sees the same tags, manifests, referrers,
//! admission state, upload sessions and markers (spec/storage-layout.md,
//! "Metadata in PostgreSQL").
//!
//! ```text
//! vouch_schema (version integer, instance text)            one row
//! vouch_kv     (family text, k bytea, v bytea, PRIMARY KEY (family, k))
//! ```
//!
//! `Meta` is synchronous (RocksDB reads are), so every operation here is
//! handed to this module's own small runtime, which owns the connections,
//! and waited for on a channel: callable from an async handler, a blocking
//! thread, or no runtime at all, like a RocksDB read.

use super::kv::{Range, Visit, Write};
use crate::registry::error::RegistryError;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, Config, NoTls, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use super::postgres_url::{parse_url, Settings};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// Connections one process opens at most.
const MAX_CONNECTIONS: usize = 16;

/// How long a read may take before it fails as unavailable.
pub(super) const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a batch of writes may take (a garbage collection sweep is one
/// batch). A commit that times out may still have committed, as any
/// commit whose answer is lost.
const WRITE_TIMEOUT: Duration = Duration::from_secs(300);

/// Rows fetched per round trip of a scan: few first (most scans stop
/// early), more once a scan has shown it reads on.
const FIRST_PAGE: i64 = 64;
const PAGE: i64 = 1024;

/// Serialises schema creation between replicas starting at once (an
/// arbitrary constant: "vouchkv1" as a big-endian integer).
const SCHEMA_LOCK: i64 = 0x766f_7563_686b_7631;

/// Serialises conditional commits ([`Postgres::write_if`]): the ledger's
/// appends from every replica ("vouchlg1").
const LEDGER_LOCK: i64 = 0x766f_7563_686c_6731;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vouch_schema (version integer NOT NULL, instance text NOT NULL, owner text);
CREATE TABLE IF NOT EXISTS vouch_kv (
    family text NOT NULL,
    k bytea NOT NULL,
    v bytea NOT NULL,
    PRIMARY KEY (family, k)
);";

/// The metadata database.
pub struct Postgres {
    pub(super) runtime: Runtime,
    pub(super) pool: Arc<Pool>,
    instance: String,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Postgres({})", self.instance)
    }
}

/// The module's runtime. Dropping a runtime blocks on its threads, which
/// an async caller must not do: this one is shut down in the background.
pub(super) struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl std::ops::Deref for Runtime {
    type Target = tokio::runtime::Runtime;
    fn deref(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("taken only when dropped")
    }
}

pub(super) struct Pool {
    config: Config,
    tls: Option<MakeRustlsConnect>,
    idle: Mutex<Vec<Conn>>,
    permits: Arc<Semaphore>,
}

/// A connection with its prepared statements.
struct Conn {
    client: Client,
    get: Statement,
    scan: Statement,
    scan_below: Statement,
    put: Statement,
    delete: Statement,
}

/// A connection taken from the pool, and its place in the pool.
struct Lease {
    conn: Conn,
    _permit: OwnedSemaphorePermit,
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL is not a PostgreSQL connection string.
    #[error("--database: not a PostgreSQL URL ({0}); expected postgres://user:password@host:port/dbname")]
    Url(String),
    /// The database did not answer, or refused.
    #[error("--database: {0}")]
    Connect(String),
    /// A newer vouch wrote the schema.
    #[error(
        "--database: the schema is version {0}, written by a newer vouch; this one reads version {SCHEMA_VERSION}"
    )]
    Newer(i32),
}

impl From<tokio_postgres::Error> for RegistryError {
    fn from(e: tokio_postgres::Error) -> Self {
        // Worth a retry (503): no answer, a lost connection, and the
        // SQLSTATE classes of connection exceptions (08), insufficient
        // resources (53), operator intervention such as a restart (57) and
        // a transaction rolled back by the server (40).
        let transient = e.is_closed()
            || e.code()
                .is_none_or(|c| matches!(c.code().get(..2), Some("08" | "53" | "57" | "40")));
        let message = format!("metadata database: {}", describe(&e));
        if transient {
            RegistryError::Unavailable(message)
        } else {
            RegistryError::Internal(message)
        }
    }
}

impl Postgres {
    /// Connects to the database at `url`, creating the schema on first use.
    pub fn open(url: &str) -> Result<Postgres, OpenError> {
        let Settings { config, rootcert } = parse_url(url)?;
        let tls = super::postgres_url::connector(config.get_ssl_mode(), rootcert.as_deref()).map_err(OpenError::Url)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vouch-postgres")
            .enable_all()
            .build()
            .map_err(|e| OpenError::Connect(e.to_string()))?;
        let runtime = Runtime(Some(runtime));
        let pool = Arc::new(Pool {
            config,
            tls,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        });
        let setup = {
            let pool = pool.clone();
            async move {
                let mut client = connect(&pool).await?;
                let instance = create_schema(&mut client).await?;
                let conn = prepare(client).await?;
                pool.idle.lock().expect("pool lock").push(conn);
                Ok::<_, tokio_postgres::Error>(instance)
            }
        };
        let setup = async move { setup.await.map_err(|e| RegistryError::Unavailable(describe(&e))) };
        let (version, instance) = wait(&runtime, READ_TIMEOUT, setup).map_err(|e| {
            let why = match e {
                RegistryError::Unavailable(why) => why,
                other => other.to_string(),
            };
            let hint = if why.contains("certificate") {
                " (name the server's CA with sslrootcert=FILE in the URL, or turn TLS off with sslmode=disable)"
            } else {
                ""
            };
            OpenError::Connect(format!("{why}{hint}"))
        })?;
        if version > SCHEMA_VERSION {
            return Err(OpenError::Newer(version));
        }
        Ok(Postgres {
            runtime,
            pool,
            instance,
        })
    }

    /// The database's identity: a random id made when its schema was
    /// created, which a data directory records (`DataDir::bind_database`).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// How a data directory's binding files name this database:
    /// `PostgreSQL instance <id>`.
    pub fn identity(&self) -> String {
        format!("PostgreSQL instance {}", self.instance)
    }

    /// Runs `work` (a read) on this module's runtime and waits for it.
    fn block<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, RegistryError>> + Send + 'static,
    ) -> Result<T, RegistryError> {
        wait(&self.runtime, READ_TIMEOUT, work)
    }

    /// A key's value.
    pub fn get(&self, family: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, RegistryError> {
        let (pool, key) = (self.pool.clone(), key.to_vec());
        self.block(async move {
            let lease = pool.take().await?;
            let row = lease.conn.client.query_opt(&lease.conn.get, &[&family, &key]).await;
            pool.give(lease);
            Ok(row?.map(|r| r.get::<_, Vec<u8>>(0)))
        })
    }

    /// Visits the keys of `range` in order, a page per round trip.
    pub fn scan(&self, range: Range<'_>, visit: Visit<'_>) -> Result<(), RegistryError> {
        let below = successor(range.prefix);
        let mut from = range.start.max(range.prefix).to_vec();
        let mut page = FIRST_PAGE;
        loop {
            let (pool, family, start, below) = (self.pool.clone(), range.family, from.clone(), below.clone());
            let rows: Vec<(Vec<u8>, Vec<u8>)> = self.block(async move {
                let lease = pool.take().await?;
                let c = &lease.conn;
                let rows = match &below {
                    Some(b) => c.client.query(&c.scan_below, &[&family, &start, b, &page]).await,
                    None => c.client.query(&c.scan, &[&family, &start, &page]).await,
                };
                pool.give(lease);
                Ok(rows?.iter().map(|r| (r.get(0), r.get(1))).collect())
            })?;
            let full = rows.len() as i64 == page;
            for (k, v) in &rows {
                if visit(k, v)?.is_break() {
                    return Ok(());
                }
            }
            let Some((last, _)) = rows.last().filter(|_| full) else {
                return Ok(());
            };
            // The next key after `last` in byte order is `last || 0x00`.
            from = [last.as_slice(), &[0]].concat();
            page = PAGE;
        }
    }

    /// Applies `writes` in one transaction; with `sync`, the commit waits
    /// for its WAL flush (`synchronous_commit`), otherwise not.
    pub fn write(&self, writes: Vec<Write>, sync: bool) -> Result<(), RegistryError> {
        let pool = self.pool.clone();
        let work = async move {
            let mut lease = pool.take().await?;
            let result = apply(&mut lease.conn, &writes, sync).await;
            pool.give(lease);
            Ok(result?)
        };
        wait(&self.runtime, WRITE_TIMEOUT, work)
    }

    /// Applies `writes` in one durable transaction if the row `guard`
    /// (family, key) holds `expect` (`None`: no such row) when it commits;
    /// otherwise writes nothing and answers false. Conditional commits are
    /// serialised by a transaction-scoped advisory lock, taken before the
    /// row is read, so the check and the writes are one step for every
    /// other conditional commit (READ COMMITTED reads the row as the lock
    /// holder before left it).
    pub fn write_if(
        &self,
        guard: (&'static str, &[u8]),
        expect: Option<&[u8]>,
        writes: Vec<Write>,
    ) -> Result<bool, RegistryError> {
        let pool = self.pool.clone();
        let (family, key) = (guard.0, guard.1.to_vec());
        let expect = expect.map(<[u8]>::to_vec);
        let work = async move {
            let mut lease = pool.take().await?;
            let conn = &mut lease.conn;
            let result: Result<bool, tokio_postgres::Error> = async {
                let tx = conn.client.transaction().await?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LEDGER_LOCK]).await?;
                let now = tx.query_opt(&conn.get, &[&family, &key]).await?;
                if now.map(|r| r.get::<_, Vec<u8>>(0)) != expect {
                    tx.rollback().await?;
                    return Ok(false);
                }
                let (put, delete) = (&conn.put, &conn.delete);
                let pending = writes.iter().map(|w| {
                    let tx = &tx;
                    async move {
                        match &w.value {
                            Some(v) => tx.execute(put, &[&w.family, &w.key, v]).await,
                            None => tx.execute(delete, &[&w.family, &w.key]).await,
                        }
                    }
                });
                futures_util::future::try_join_all(pending).await?;
                // Commit point: durable once COMMIT returns (synchronous
                // commit), and the advisory lock is released with it.
                tx.commit().await.map(|()| true)
            }
            .await;
            pool.give(lease);
            Ok(result?)
        };
        wait(&self.runtime, WRITE_TIMEOUT, work)
    }

    /// Records `owner` (a registry's log key) as the database's owner,
    /// unless another registry owns it: then returns that owner. One
    /// statement, so of two registries claiming an empty database at once
    /// one wins.
    pub fn claim(&self, owner: &str) -> Result<Option<String>, RegistryError> {
        let (pool, owner) = (self.pool.clone(), owner.to_owned());
        self.block(async move {
            let lease = pool.take().await?;
            let c = &lease.conn.client;
            let claimed = c
                .execute(
                    "UPDATE vouch_schema SET owner = $1 WHERE owner IS NULL OR owner = $1",
                    &[&owner],
                )
                .await;
            let other = match claimed {
                Ok(1) => Ok(None),
                Ok(_) => c
                    .query_one("SELECT coalesce(owner, '') FROM vouch_schema LIMIT 1", &[])
                    .await
                    .map(|r| Some(r.get(0))),
                Err(e) => Err(e),
            };
            pool.give(lease);
            Ok(other?)
        })
    }

    /// Whether the database holds no metadata at all.
    pub fn is_empty(&self) -> Result<bool, RegistryError> {
        let pool = self.pool.clone();
        self.block(async move {
            let lease = pool.take().await?;
            let row = lease.conn.client.query_opt("SELECT 1 FROM vouch_kv LIMIT 1", &[]).await;
            pool.give(lease);
            Ok(row?.is_none())
        })
    }
}

/// Runs `work` on `runtime` and waits for it on a channel, not by entering
/// the runtime: the caller may itself be an async task of another runtime
/// (an axum handler), where `block_on` would panic, or of a current-thread
/// runtime (the in-process tests), where `block_in_place` would.
pub(super) fn wait<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    limit: Duration,
    work: impl Future<Output = Result<T, RegistryError>> + Send + 'static,
) -> Result<T, RegistryError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let result = tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            let why = format!("metadata database: no answer in {} s", limit.as_secs());
            Err(RegistryError::Unavailable(why))
        });
        let _ = tx.send(result);
    });
    // On a worker of a multi-threaded runtime (an axum handler), tokio is
    // told this thread blocks, and moves its other tasks to another thread:
    // otherwise each of the few workers would wait out a round trip to the
    // database with every request queued behind it.
    let result = super::kv::blocking(|| rx.recv());
    result.map_err(|_| RegistryError::Internal("metadata database: the operation was dropped".into()))?
}

/// One transaction: the writes pipelined in order, then the commit.
async fn apply(conn: &mut Conn, writes: &[Write], sync: bool) -> Result<(), tokio_postgres::Error> {
    let tx = conn.client.transaction().await?;
    if !sync {
        tx.batch_execute("SET LOCAL synchronous_commit = off").await?;
    }
    let pending = writes.iter().map(|w| {
        let (tx, put, delete) = (&tx, &conn.put, &conn.delete);
        async move {
            match &w.value {
                Some(v) => tx.execute(put, &[&w.family, &w.key, v]).await,
                None => tx.execute(delete, &[&w.family, &w.key]).await,
            }
        }
    });
    futures_util::future::try_join_all(pending).await?;
    // Commit point: once COMMIT returns (synchronous_commit on), every
    // write is in the database's fsync'd WAL; before, none is visible.
    tx.commit().await
}

impl Pool {
    /// A connection: an idle one, or a new one, within the bound.
    async fn take(&self) -> Result<Lease, RegistryError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| RegistryError::Internal("metadata database: the pool is closed".into()))?;
        let idle = self.idle.lock().expect("pool lock").pop();
        let conn = match idle {
            Some(c) if !c.client.is_closed() => c,
            _ => prepare(connect(self).await?).await?,
        };
        Ok(Lease { conn, _permit: permit })
    }

    /// Returns a connection that still works to the pool.
    fn give(&self, lease: Lease) {
        if !lease.conn.client.is_closed() {
            self.idle.lock().expect("pool lock").push(lease.conn);
        }
    }
}

pub(super) async fn connect(pool: &Pool) -> Result<Client, tokio_postgres::Error> {
    fn watch<F: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static>(connection: F) {
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "metadata database connection ended");
            }
        });
    }
    match &pool.tls {
        Some(tls) => {
            let (client, connection) = pool.config.connect(tls.clone()).await?;
            watch(connection);
            Ok(client)
        }
        None => {
            let (client, connection) = pool.config.connect(NoTls).await?;
            watch(connection);
            Ok(client)
        }
    }
}

async fn prepare(client: Client) -> Result<Conn, tokio_postgres::Error> {
    let get = client
        .prepare("SELECT v FROM vouch_kv WHERE family = $1 AND k = $2")
        .await?;
    let scan = client
        .prepare("SELECT k, v FROM vouch_kv WHERE family = $1 AND k >= $2 ORDER BY k LIMIT $3")
        .await?;
    let scan_below = client
        .prepare("SELECT k, v FROM vouch_kv WHERE family = $1 AND k >= $2 AND k < $3 ORDER BY k LIMIT $4")
        .await?;
    let put = client
        .prepare("INSERT INTO vouch_kv (family, k, v) VALUES ($1, $2, $3) ON CONFLICT (family, k) DO UPDATE SET v = EXCLUDED.v")
        .await?;
    let delete = client
        .prepare("DELETE FROM vouch_kv WHERE family = $1 AND k = $2")
        .await?;
    // A commit that acknowledges a push must be durable when it returns:
    // a server or role configured with `synchronous_commit = off` is
    // overruled for vouch's sessions (`local`, `on` and the stronger
    // settings are kept).
    let setting: String = client.query_one("SHOW synchronous_commit", &[]).await?.get(0);
    if setting == "off" {
        client.batch_execute("SET synchronous_commit = on").await?;
    }
    Ok(Conn {
        client,
        get,
        scan,
        scan_below,
        put,
        delete,
    })
}

/// Creates the tables on first use (one replica at a time, under an
/// advisory lock) and returns the schema version and instance id.
async fn create_schema(client: &mut Client) -> Result<(i32, String), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    // Tables that exist are not created again: `CREATE ... IF NOT EXISTS`
    // needs the right to create, which a role that only reads and writes
    // them lacks.
    let exists = "SELECT to_regclass('vouch_schema') IS NOT NULL AND to_regclass('vouch_kv') IS NOT NULL";
    if !tx.query_one(exists, &[]).await?.get::<_, bool>(0) {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await?;
        tx.batch_execute(SCHEMA).await?;
    }
    let found = tx
        .query_opt("SELECT version, instance FROM vouch_schema LIMIT 1", &[])
        .await?;
    let row = match found {
        Some(row) => (row.get(0), row.get(1)),
        None => {
            let instance = hex::encode(rand::random::<[u8; 16]>());
            tx.execute(
                "INSERT INTO vouch_schema (version, instance) VALUES ($1, $2)",
                &[&SCHEMA_VERSION, &instance],
            )
            .await?;
            (SCHEMA_VERSION, instance)
        }
    };
    tx.commit().await?;
    Ok(row)
}

/// The least key above every key that begins with `prefix`; `None` when
/// there is none (an empty prefix, or one of 0xff bytes only).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let keep = prefix.iter().rposition(|b| *b != 0xff)?;
    let mut s = prefix[..=keep].to_vec();
    s[keep] += 1;
    Some(s)
}

/// An error with its cause: tokio-postgres's own text omits the database's
/// message and the I/O error.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_bounds_a_prefix() {
        assert_eq!(successor(b""), None);
        assert_eq!(successor(b"\xff\xff"), None);
        assert_eq!(successor(b"a\x00"), Some(b"a\x01".to_vec()));
        assert_eq!(successor(b"ab\xff"), Some(b"ac".to_vec()));
    }

    proptest::proptest! {
        #[test]
        fn successor_is_above_every_extension_and_below_every_greater_key(
            prefix in proptest::collection::vec(proptest::num::u8::ANY, 0..6),
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..6),
            other in proptest::collection::vec(proptest::num::u8::ANY, 0..8),
        ) {
            let extended = [prefix.as_slice(), &tail].concat();
            if let Some(s) = successor(&prefix) {
                proptest::prop_assert!(extended < s);
                if !other.starts_with(&prefix) && other > prefix {
                    proptest::prop_assert!(other >= s);
                }
            } else {
                proptest::prop_assert!(prefix.iter().all(|b| *b == 0xff));
            }
        }
    }
}
