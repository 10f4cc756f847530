//! Reading a tree state out of the rows: creating an empty log, rebuilding
//! the right edge at open, and following a checkpoint another process
//! committed to the same rows.

use super::rows::{CommitError, Family, Rows};
use super::{
    tile_key, AppendError, OpenError, Shared, State, FORMAT_VERSION, META_CHECKPOINT, META_FORMAT, META_ORIGIN,
    MID_WIDTH, TILE_BYTES, TILE_VALUE_BYTES,
};
use crate::checkpoint::Checkpoint;
use crate::edge::{levels, width_at, Edge};
use crate::hash::{leaf_hash, Hash};
use crate::note::{NoteSigner, VerifierKey};
use crate::tile::{row_hash, TILE_HEIGHT};

/// Entries read per round trip while following another writer.
const FOLLOW_CHUNK: usize = 4096;

/// First open: the format row, the origin and the signed empty checkpoint,
/// in one commit, so a crash leaves either nothing or a complete log. Of
/// two processes creating one shared log at once, one commit takes effect
/// and the other finds the log created.
pub(super) fn create(rows: &dyn Rows, signer: &NoteSigner) -> Result<(), OpenError> {
    if rows
        .get(Family::Meta, META_CHECKPOINT)
        .map_err(OpenError::Store)?
        .is_some()
    {
        return Err(OpenError::Corrupt("checkpoint row without a format row".into()));
    }
    let origin = signer.verifier().name();
    let empty = Checkpoint {
        origin: origin.to_owned(),
        size: 0,
        root: Hash::empty_tree(),
        extensions: vec![],
    };
    let puts = vec![
        (
            Family::Meta,
            META_FORMAT.to_vec(),
            FORMAT_VERSION.to_be_bytes().to_vec(),
        ),
        (Family::Meta, META_ORIGIN.to_vec(), origin.as_bytes().to_vec()),
        (
            Family::Meta,
            META_CHECKPOINT.to_vec(),
            signer.sign(&empty.to_text()).into_bytes(),
        ),
    ];
    match rows.commit(puts, None) {
        Ok(()) | Err(CommitError::Conflict) => Ok(()),
        Err(CommitError::Failed(e)) => Err(OpenError::Store(e)),
    }
}

/// The latest checkpoint note in the rows, and what it says once its
/// signature by the log key is checked.
pub(super) fn read_checkpoint(rows: &dyn Rows, verifier: &VerifierKey) -> Result<(String, Checkpoint), String> {
    let note = rows
        .get(Family::Meta, META_CHECKPOINT)?
        .ok_or("no checkpoint row")?
        .to_vec();
    let checkpoint = Checkpoint::open(&note, verifier)
        .map_err(|e| format!("stored checkpoint does not verify with the log key: {e}"))?;
    let note = String::from_utf8(note).map_err(|_| "stored checkpoint is not UTF-8")?;
    Ok((note, checkpoint))
}

/// Rebuilds the partial tiles of a tree of `size` entries from the stored
/// entries (level 0) and full tiles (levels above).
pub(super) fn rebuild_edge(rows: &dyn Rows, size: u64) -> Result<Edge, OpenError> {
    let mut edge_rows = Vec::new();
    for level in 0..levels(size) as u8 {
        let width = width_at(size, level);
        let count = size >> (u32::from(TILE_HEIGHT) * u32::from(level));
        let first = count - width;
        let row = if level == 0 {
            let entries = rows.entries(first, width as usize).map_err(OpenError::Store)?;
            if entries.len() as u64 != width {
                return Err(OpenError::Corrupt(format!(
                    "entry {} is missing",
                    first + entries.len() as u64
                )));
            }
            entries.iter().map(|e| leaf_hash(e)).collect()
        } else {
            let mut row = Vec::with_capacity(width as usize);
            for i in first..count {
                let v = rows
                    .get(Family::Tiles, &tile_key(level - 1, i))
                    .map_err(OpenError::Store)?
                    .filter(|v| v.len() == TILE_VALUE_BYTES)
                    .ok_or_else(|| OpenError::Corrupt(format!("tile {}/{i} is missing or short", level - 1)))?;
                let mid = crate::tile::tile_hashes(&v[TILE_BYTES..]).expect("whole hashes");
                row.push(row_hash(&mid, 0, MID_WIDTH));
            }
            row
        };
        edge_rows.push(row);
    }
    Edge::from_rows(size, edge_rows).ok_or_else(|| OpenError::Corrupt("right edge has wrong widths".into()))
}

/// Why another writer's checkpoint was not followed.
#[derive(Debug)]
pub(super) enum Unfollowed {
    /// Its entries could not be read (now).
    Unreadable(String),
    /// The stored log shrank or forked: it is never followed.
    Contradicts(String),
}

/// The state of `checkpoint` (signed `note`), which another writer
/// committed on top of `from`: `from`'s edge extended with the entries in
/// between, whose root must be the checkpoint's. Anything else is a log
/// that forked or shrank, which is never followed.
pub(super) fn follow(
    rows: &dyn Rows,
    from: &State,
    note: String,
    checkpoint: &Checkpoint,
) -> Result<State, Unfollowed> {
    let mut edge = from.edge.clone();
    if checkpoint.size < edge.size() {
        return Err(Unfollowed::Contradicts(format!(
            "the stored checkpoint is of size {}, smaller than the {} this process has seen: the log shrank",
            checkpoint.size,
            edge.size()
        )));
    }
    while edge.size() < checkpoint.size {
        let want = (checkpoint.size - edge.size()).min(FOLLOW_CHUNK as u64) as usize;
        let entries = rows.entries(edge.size(), want).map_err(Unfollowed::Unreadable)?;
        if entries.len() != want {
            let missing = edge.size() + entries.len() as u64;
            return Err(Unfollowed::Unreadable(format!("entry {missing} is missing")));
        }
        for e in &entries {
            edge.push(leaf_hash(e));
        }
    }
    if edge.root() != checkpoint.root {
        return Err(Unfollowed::Contradicts(format!(
            "the stored checkpoint of size {} has root {}, but its entries give {}: the log forked",
            checkpoint.size,
            checkpoint.root,
            edge.root()
        )));
    }
    Ok(State {
        root: checkpoint.root,
        edge,
        checkpoint: note.into(),
    })
}

impl Shared {
    /// Replaces the published state with `state`, unless a state at least
    /// as large is already published (followers and the committer publish
    /// states of one tree, in whichever order they finish).
    pub(super) fn publish(&self, state: State) {
        let size = state.edge.size();
        let mut published = self.state.write().expect("state lock");
        if size > published.edge.size() {
            *published = std::sync::Arc::new(state);
            drop(published);
            self.published.send_replace(size);
        }
    }

    /// Why appends stopped, if they did.
    pub(super) fn poisoned(&self) -> Option<String> {
        self.poisoned.lock().expect("poison lock").clone()
    }

    /// Stops appends for good (until reopened).
    pub(super) fn poison(&self, why: String) {
        self.poisoned.lock().expect("poison lock").get_or_insert(why);
    }

    /// Re-reads the checkpoint and, if another writer extended the log,
    /// follows it and publishes the result; the tree size. A stored log
    /// that forked or shrank stops this one's appends.
    pub(super) fn follow(&self) -> Result<u64, AppendError> {
        if let Some(why) = self.poisoned() {
            return Err(AppendError::Poisoned(why));
        }
        let rows = &*self.rows;
        let current = self.state.read().expect("state lock").clone();
        let (note, checkpoint) = read_checkpoint(rows, &self.verifier).map_err(AppendError::Unavailable)?;
        if *note == *current.checkpoint {
            return Ok(current.edge.size());
        }
        match follow(rows, &current, note, &checkpoint) {
            Ok(state) => {
                self.publish(state);
                Ok(checkpoint.size)
            }
            Err(Unfollowed::Unreadable(why)) => Err(AppendError::Unavailable(why)),
            // `current` was read before the row, and every published state
            // was a row's once: the row is never older than `current`, so
            // a contradiction is the stored log's, never a race.
            Err(Unfollowed::Contradicts(why)) => {
                self.poison(why.clone());
                Err(AppendError::Poisoned(why))
            }
        }
    }
}
