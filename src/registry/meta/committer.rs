//! Synced writes of the RocksDB metadata through one committer thread, as
//! the ledger's sequencer does its appends: a request's task queues its
//! batch and awaits the answer without holding a thread, and the committer
//! writes every batch queued meanwhile as one RocksDB write with one WAL
//! fsync. Each batch stays atomic (the combined write is), and batches are
//! applied in the order they were queued.
//!
//! A task dropped while it waits (its client went away) does not return
//! before its batch is written: the caller commits under locks, and the
//! next holder must read what this batch wrote, never the state before it.
//! So the wait finishes in `Drop` ([`Pending`]), blocking that thread for
//! at most the one fsync under way.

use super::kv::Write;
use crate::registry::error::RegistryError;
use rocksdb::DB;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tokio::sync::{mpsc, oneshot};

/// Batches waiting, at most; submitters beyond it wait.
const QUEUE: usize = 4096;
/// Most writes combined into one RocksDB write.
const MAX_WRITES: usize = 64 * 1024;

struct Queued {
    writes: Vec<Write>,
    done: oneshot::Sender<Result<(), String>>,
}

/// The committer's queue. When the last handle is dropped the queue
/// closes, and the drop waits for the thread to write what was queued and
/// end, so the thread's handle on the database is gone before the drop
/// returns: a database closed later, or at process exit, has no writer left
/// behind it (a detached committer crashed test processes at exit).
#[derive(Clone)]
pub(super) struct Committer {
    // Field order matters: the sender drops first, closing the queue, then
    // the joiner waits for the thread.
    tx: mpsc::Sender<Queued>,
    _joiner: Arc<Joiner>,
}

/// Joins the committer thread when the last handle goes away.
struct Joiner(Mutex<Option<JoinHandle<()>>>);

impl Drop for Joiner {
    fn drop(&mut self) {
        if let Some(t) = self.0.lock().ok().and_then(|mut g| g.take()) {
            let _ = t.join();
        }
    }
}

impl Committer {
    pub(super) fn start(db: Arc<DB>) -> Committer {
        let (tx, rx) = mpsc::channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("vouch-meta-commit".into())
            .spawn(move || run(&db, rx))
            .expect("spawn the metadata committer thread");
        Committer {
            tx,
            _joiner: Arc::new(Joiner(Mutex::new(Some(thread)))),
        }
    }

    /// Writes `writes` atomically and durably; resolves once they are.
    /// Dropped before it is queued, it writes nothing; after, it returns
    /// (or drops) only once the batch is written.
    pub(super) async fn commit(&self, writes: Vec<Write>) -> Result<(), RegistryError> {
        let (done, answer) = oneshot::channel();
        let gone = || RegistryError::Internal("the metadata committer stopped".into());
        self.tx.send(Queued { writes, done }).await.map_err(|_| gone())?;
        let mut pending = Pending(Some(answer));
        let answer = pending.0.as_mut().expect("set above").await;
        pending.0 = None;
        answer.map_err(|_| gone())?.map_err(RegistryError::Internal)
    }
}

/// The answer to a queued batch, waited for in `Drop` if the task goes away.
struct Pending(Option<oneshot::Receiver<Result<(), String>>>);

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(mut answer) = self.0.take() else { return };
        // Polled, not `blocking_recv`, which panics on a runtime's thread;
        // the committer needs no runtime to finish.
        while let Err(oneshot::error::TryRecvError::Empty) = answer.try_recv() {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
    }
}

fn run(db: &DB, mut rx: mpsc::Receiver<Queued>) {
    while let Some(first) = rx.blocking_recv() {
        let mut n = first.writes.len();
        let mut group = vec![first];
        while n < MAX_WRITES {
            let Ok(next) = rx.try_recv() else { break };
            n += next.writes.len();
            group.push(next);
        }
        let mut batch = rocksdb::WriteBatch::default();
        for q in &group {
            super::kv::stage(db, &mut batch, &q.writes);
        }
        let mut o = rocksdb::WriteOptions::default();
        o.set_sync(true);
        // COMMIT POINT: every queued batch in one write, the WAL fsync'd
        // before any of them is answered; after a crash all of them are
        // stored or none is.
        let result = db.write_opt(batch, &o).map_err(|e| format!("metadata database: {e}"));
        for q in group {
            let _ = q.done.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, Arc<DB>) {
        let dir = tempfile::tempdir().unwrap();
        let mut families = vouch_ledger::store::column_families();
        families.extend(super::super::column_families());
        let db = DB::open_cf_descriptors(&vouch_ledger::store::db_options(), dir.path(), families).unwrap();
        (dir, Arc::new(db))
    }

    fn put(key: String, value: &str) -> Write {
        Write {
            family: super::super::CF_TAGS,
            key: key.into_bytes(),
            value: Some(value.as_bytes().to_vec()),
        }
    }

    fn get(db: &DB, key: &str) -> Option<Vec<u8>> {
        let family = db.cf_handle(super::super::CF_TAGS).unwrap();
        db.get_cf(family, key).unwrap()
    }

    #[test]
    fn concurrent_batches_are_each_written_whole_and_in_order() {
        let (_dir, db) = open();
        let c = Committer::start(db.clone());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        rt.block_on(async {
            let tasks: Vec<_> = (0..64)
                .map(|t| {
                    let (c, db) = (c.clone(), db.clone());
                    tokio::spawn(async move {
                        for i in 0..20 {
                            // Two keys per batch, and a key every task rewrites.
                            let batch = vec![
                                put(format!("t{t}-{i}-a"), "x"),
                                put(format!("t{t}-{i}-b"), "y"),
                                put(format!("t{t}-last"), &i.to_string()),
                            ];
                            c.commit(batch).await.unwrap();
                            // Answered: written.
                            assert_eq!(get(&db, &format!("t{t}-{i}-b")).as_deref(), Some(&b"y"[..]));
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        for t in 0..64 {
            assert_eq!(get(&db, &format!("t{t}-last")).as_deref(), Some(&b"19"[..]));
        }
    }

    #[test]
    fn dropping_the_last_handle_writes_what_was_queued_and_lets_go_of_the_database() {
        let (_dir, db) = open();
        let c = Committer::start(db.clone());
        let other = c.clone();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(c.commit(vec![put("k".into(), "v")])).unwrap();
        drop(c);
        assert_eq!(Arc::strong_count(&db), 2, "a handle is left: the thread runs on");
        drop(other);
        // The thread has ended and dropped its handle on the database, so
        // whoever drops `db` next closes it with no writer behind it.
        assert_eq!(Arc::strong_count(&db), 1);
        assert_eq!(get(&db, "k").as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn a_task_dropped_while_it_waits_leaves_only_once_its_batch_is_written() {
        let (_dir, db) = open();
        let c = Committer::start(db.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let mut dropped = 0;
        for i in 0..10 {
            // Large enough that writing it takes milliseconds.
            let batch: Vec<Write> = (0..50_000).map(|k| put(format!("b{i}-{k:05}"), "z")).collect();
            rt.block_on(async {
                // Polled once (which queues it), then dropped mid-wait.
                let waited = tokio::time::timeout(std::time::Duration::ZERO, c.commit(batch));
                dropped += usize::from(waited.await.is_err());
            });
            assert_eq!(
                get(&db, &format!("b{i}-49999")).as_deref(),
                Some(&b"z"[..]),
                "batch {i}"
            );
        }
        assert!(dropped > 0, "no wait was dropped: the test tested nothing");
    }
}
