//! The sequencer: one committer thread that takes appends from a bounded
//! queue, assigns consecutive indexes, and commits each batch — entries, newly
//! completed tiles and a freshly signed checkpoint — as one synced WriteBatch.
//!
//! Group commit falls out of the queue: while one batch is being fsync'd, new
//! appends wait in the queue, and the next batch takes all of them.
//! Back-pressure: the queue is bounded, so submitters wait instead of growing
//! memory without limit.

use super::{cf, tile_key, tile_value, AppendError, Shared, State, CF_ENTRIES, CF_META, CF_TILES, META_CHECKPOINT};
use crate::checkpoint::Checkpoint;
use crate::hash::{leaf_hash, Hash};
use crate::note::NoteSigner;
use crate::tile::MAX_ENTRY_BYTES;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tokio::sync::{mpsc, oneshot};

/// Appends waiting to be committed, at most. Submitters beyond it wait.
const QUEUE_DEPTH: usize = 32 * 1024;
/// Largest batch, in entries and in bytes.
const MAX_BATCH_ENTRIES: usize = 16 * 1024;
const MAX_BATCH_BYTES: usize = 32 << 20;

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
    let committer = Committer {
        shared,
        signer,
        poisoned: None,
    };
    let thread = std::thread::Builder::new()
        .name("ledger-sequencer".into())
        .spawn(move || committer.run(rx))
        .expect("spawn ledger sequencer thread");
    Handle {
        tx,
        _joiner: Arc::new(Joiner(Mutex::new(Some(thread)))),
    }
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
    /// Set after a failed commit; see [`AppendError::Poisoned`].
    poisoned: Option<String>,
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
            let result = match &self.poisoned {
                Some(why) => Err(AppendError::Poisoned(why.clone())),
                None => self.commit(&batch),
            };
            for (i, req) in batch.into_iter().enumerate() {
                // A submitter that gave up waiting is not an error here.
                let _ = req.reply.send(result.clone().map(|start| start + i as u64));
            }
        }
    }

    /// Commits one batch and publishes the new state; returns its first index.
    fn commit(&mut self, batch: &[Request]) -> Result<u64, AppendError> {
        let db = &*self.shared.db;
        let current = self.shared.state.read().expect("state lock").clone();
        let start = current.edge.size();
        let mut edge = current.edge.clone();
        let mut wb = rocksdb::WriteBatch::default();
        for (i, req) in batch.iter().enumerate() {
            wb.put_cf(cf(db, CF_ENTRIES), (start + i as u64).to_be_bytes(), &req.entry);
            for tile in edge.push(req.leaf) {
                wb.put_cf(cf(db, CF_TILES), tile_key(tile.level, tile.index), tile_value(&tile));
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
        wb.put_cf(cf(db, CF_META), META_CHECKPOINT, note.as_bytes());

        // COMMIT POINT. The entries, the tiles they complete and the checkpoint
        // covering them are one WriteBatch, written with the WAL fsync'd: after
        // a crash either all of it is on disk or none of it is. Nobody has seen
        // this checkpoint yet, so if the batch is lost the same size may later
        // be signed with other entries without any published statement being
        // contradicted. Appends are acknowledged only after this returns Ok.
        //
        // If the write fails, whether the batch reached the disk is unknown
        // (a failed fsync may still have persisted it). The log stops taking
        // appends; reopening reads back whatever is durably there.
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        if let Err(e) = db.write_opt(wb, &opts) {
            let why = e.to_string();
            self.poisoned = Some(why.clone());
            return Err(AppendError::Poisoned(why));
        }
        let state = State {
            edge,
            root,
            checkpoint: note.into(),
        };
        let size = state.edge.size();
        *self.shared.state.write().expect("state lock") = Arc::new(state);
        self.shared.published.send_replace(size);
        Ok(start)
    }
}
