//! The sequencer: one committer thread that takes appends from a bounded
//! queue, assigns consecutive indexes, and commits each batch — entries, newly
//! completed tiles and a freshly signed checkpoint — as one synced WriteBatch.
//!
//! Group commit falls out of the queue: while one batch is being fsync'd, new
//! appends wait in the queue, and the next batch takes all of them.
//! Back-pressure: the queue is bounded, so submitters wait instead of growing
//! memory without limit.
//!
//! Of rows that other processes append to as well (replicas sharing one
//! database), each commit is conditional on the checkpoint this committer
//! last read; when another committed first, the committer follows its
//! entries and commits the batch again on top of them. A thread of its own
//! re-reads the checkpoint every [`FOLLOW_EVERY`], so readers of this
//! process see the others' appends.

use super::rows::{CommitError, Family};
use super::{tile_key, tile_value, AppendError, Shared, State, META_CHECKPOINT};
use crate::checkpoint::Checkpoint;
use crate::hash::{leaf_hash, Hash};
use crate::note::NoteSigner;
use crate::tile::MAX_ENTRY_BYTES;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Appends waiting to be committed, at most. Submitters beyond it wait.
const QUEUE_DEPTH: usize = 32 * 1024;
/// Largest batch, in entries and in bytes.
const MAX_BATCH_ENTRIES: usize = 16 * 1024;
const MAX_BATCH_BYTES: usize = 32 << 20;
/// How often a process sharing its rows re-reads the checkpoint.
pub(super) const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// Commits of one batch lost to other writers before it is refused: each
/// loss means another writer made progress, so this bounds only the wait.
const MAX_CONFLICTS: usize = 1000;

struct Request {
    entry: Vec<u8>,
    /// Hashed by the submitter, so hashing spreads over the caller's threads.
    leaf: Hash,
    reply: oneshot::Sender<Result<u64, AppendError>>,
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

#[derive(Clone)]
pub(super) struct Handle {
    // Field order matters: the sender drops first, closing the queue, then the
    // joiner waits for the committer to drain it and exit.
    tx: mpsc::Sender<Request>,
    _joiner: Arc<Joiner>,
}

pub(super) fn start(shared: Arc<Shared>, signer: NoteSigner) -> Handle {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    if shared.rows.shared() {
        follow_now_and_then(Arc::downgrade(&shared));
    }
    let committer = Committer { shared, signer };
    let thread = std::thread::Builder::new()
        .name("ledger-sequencer".into())
        .spawn(move || committer.run(rx))
        .expect("spawn ledger sequencer thread");
    Handle {
        tx,
        _joiner: Arc::new(Joiner(Mutex::new(Some(thread)))),
    }
}

/// Re-reads the checkpoint every [`FOLLOW_EVERY`] until the ledger is
/// dropped. A failure is left for the next round, or for an append or a
/// reader to meet.
fn follow_now_and_then(shared: std::sync::Weak<Shared>) {
    let ticker = move || loop {
        std::thread::sleep(FOLLOW_EVERY);
        let Some(shared) = shared.upgrade() else { return };
        let _ = shared.follow();
    };
    std::thread::Builder::new()
        .name("ledger-follow".into())
        .spawn(ticker)
        .expect("spawn ledger follow thread");
}

fn request(entry: Vec<u8>) -> Result<(Request, oneshot::Receiver<Result<u64, AppendError>>), AppendError> {
    if entry.len() > MAX_ENTRY_BYTES {
        return Err(AppendError::TooLarge { len: entry.len() });
    }
    let (reply, rx) = oneshot::channel();
    Ok((
        Request {
            leaf: leaf_hash(&entry),
            entry,
            reply,
        },
        rx,
    ))
}

impl Handle {
    pub(super) async fn append(&self, entry: Vec<u8>) -> Result<u64, AppendError> {
        let (req, rx) = request(entry)?;
        self.tx.send(req).await.map_err(|_| AppendError::Closed)?;
        rx.await.map_err(|_| AppendError::Closed)?
    }

    /// Submits every entry, in order, before waiting for any: they take
    /// consecutive places in the queue (others may come between) and share
    /// group commits. Their indexes, in the same order.
    pub(super) async fn append_all(&self, entries: Vec<Vec<u8>>) -> Result<Vec<u64>, AppendError> {
        let requests: Vec<_> = entries.into_iter().map(request).collect::<Result<_, _>>()?;
        let mut replies = Vec::with_capacity(requests.len());
        for (req, rx) in requests {
            self.tx.send(req).await.map_err(|_| AppendError::Closed)?;
            replies.push(rx);
        }
        let mut out = Vec::with_capacity(replies.len());
        for rx in replies {
            out.push(rx.await.map_err(|_| AppendError::Closed)??);
        }
        Ok(out)
    }

    pub(super) fn append_blocking(&self, entry: Vec<u8>) -> Result<u64, AppendError> {
        let (req, rx) = request(entry)?;
        self.tx.blocking_send(req).map_err(|_| AppendError::Closed)?;
        rx.blocking_recv().map_err(|_| AppendError::Closed)?
    }
}

struct Committer {
    shared: Arc<Shared>,
    signer: NoteSigner,
}

impl Committer {
    fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        while let Some(first) = rx.blocking_recv() {
            let mut bytes = first.entry.len();
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH_ENTRIES && bytes < MAX_BATCH_BYTES {
                let Ok(next) = rx.try_recv() else { break };
                bytes += next.entry.len();
                batch.push(next);
            }
            let result = match self.shared.poisoned() {
                Some(why) => Err(AppendError::Poisoned(why)),
                None => self.commit(&batch),
            };
            for (i, req) in batch.into_iter().enumerate() {
                // A submitter that gave up waiting is not an error here.
                let _ = req.reply.send(result.clone().map(|start| start + i as u64));
            }
        }
    }

    /// Commits one batch and publishes the new state; returns its first
    /// index. Of shared rows, a commit another writer beat is followed and
    /// made again on top of its entries.
    fn commit(&mut self, batch: &[Request]) -> Result<u64, AppendError> {
        for _ in 0..MAX_CONFLICTS {
            match self.commit_once(batch) {
                Err(CommitError::Conflict) => {
                    self.shared.lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.shared.follow()?;
                }
                Err(CommitError::Failed(why)) if self.shared.rows.shared() => {
                    // Whether it took effect is unknown (see commit_once,
                    // which found out if it could); the next commit's
                    // condition tells, and is followed either way.
                    return Err(AppendError::Unavailable(why));
                }
                Err(CommitError::Failed(why)) => {
                    self.shared.poison(why.clone());
                    return Err(AppendError::Poisoned(why));
                }
                Ok(start) => return Ok(start),
            }
        }
        Err(AppendError::Unavailable(format!(
            "{MAX_CONFLICTS} commits in a row lost to other writers"
        )))
    }

    fn commit_once(&mut self, batch: &[Request]) -> Result<u64, CommitError> {
        let current = self.shared.state.read().expect("state lock").clone();
        let start = current.edge.size();
        let mut edge = current.edge.clone();
        let mut puts = Vec::with_capacity(batch.len() + 2);
        for (i, req) in batch.iter().enumerate() {
            puts.push((
                Family::Entries,
                (start + i as u64).to_be_bytes().to_vec(),
                req.entry.clone(),
            ));
            for tile in edge.push(req.leaf) {
                puts.push((
                    Family::Tiles,
                    tile_key(tile.level, tile.index).to_vec(),
                    tile_value(&tile),
                ));
            }
        }
        let size = edge.size();
        // The size only grows: this log signs a checkpoint only for a size it
        // has never signed before, so it can never sign two roots for one size.
        if size <= start {
            unreachable!("a non-empty batch must grow the tree ({start} -> {size})");
        }
        let root = edge.root();
        let checkpoint = Checkpoint {
            origin: self.signer.verifier().name().to_owned(),
            size,
            root,
            extensions: vec![],
        };
        let note = self.signer.sign(&checkpoint.to_text());
        puts.push((Family::Meta, META_CHECKPOINT.to_vec(), note.as_bytes().to_vec()));

        // COMMIT POINT. The entries, the tiles they complete and the checkpoint
        // covering them are one commit, durable when it returns Ok (RocksDB:
        // one WriteBatch with the WAL fsync'd; PostgreSQL: one transaction,
        // its WAL flushed): after a crash either all of it is stored or none
        // of it is. The commit takes effect only if the checkpoint row still
        // holds `current`'s note, so of writers sharing the rows only one
        // extends a given tree: the others' notes are never stored nor
        // served, and no two stored checkpoints of one size differ.
        // Nobody has seen this checkpoint before the commit, so if it is
        // lost the same size may later be signed with other entries without
        // any published statement being contradicted. Appends are
        // acknowledged only after this returns Ok.
        //
        // If the RocksDB write fails, whether the batch reached the disk is
        // unknown (a failed fsync may still have persisted it). The log stops
        // taking appends; reopening reads back whatever is durably there.
        let result = self.shared.rows.commit(puts, Some(current.checkpoint.as_bytes()));
        // A shared store's commit whose answer was lost (the connection
        // dropped during COMMIT) may have taken effect: the checkpoint row
        // says. If it holds this very note, the batch is stored, and is
        // acknowledged rather than reported as failed.
        let stored = match &result {
            Ok(()) => true,
            Err(CommitError::Failed(_)) if self.shared.rows.shared() => {
                let row = self.shared.rows.get(Family::Meta, META_CHECKPOINT);
                matches!(row, Ok(Some(v)) if *v == *note.as_bytes())
            }
            Err(_) => false,
        };
        if !stored {
            return result.map(|()| start);
        }
        self.shared.publish(State {
            edge,
            root,
            checkpoint: note.into(),
        });
        Ok(start)
    }
}
