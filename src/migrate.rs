//! `vouch migrate`: moves a single-node registry's blobs and upload
//! sessions to an S3-compatible bucket, and its registry metadata and its
//! ledger to PostgreSQL, so that `vouch serve --storage .. --database ..`
//! serves it unchanged, from as many replicas as share them. The ledger's
//! rows are copied byte for byte: every checkpoint, proof and entry is the
//! same after the move (spec/storage-layout.md, "Moving a registry").
//!
//! Each part is copied, checked, then recorded in the data directory's
//! binding file, and only then removed from the directory. The binding is
//! the commit point: a crash before it leaves the directory serving as
//! before (run the command again: copies are idempotent); a crash after it
//! leaves leftovers that a second run removes.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::io::ReaderStream;
use vouch::data_dir::{default_origin, write_synced, DataDir};
use vouch::registry::blobs::{files::FileBlobs, BlobStore};
use vouch::registry::meta::{copy, Meta, Postgres, PostgresRows};

/// `vouch migrate`'s arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Stop `vouch serve` on the directory first (the command refuses while it runs).
Then start it with the same URLs:

  vouch migrate --from /srv/vouch --to-storage 's3://bucket/vouch?endpoint=..' \\
                --to-database 'postgres://vouch@db/registry'
  vouch serve --data /srv/vouch --storage 's3://bucket/vouch?endpoint=..' \\
              --database 'postgres://vouch@db/registry'

Credentials come from the environment as for `vouch serve` (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, PGPASSWORD). An interrupted move is finished by running
the same command again.")]
pub struct MigrateArgs {
    /// The data directory of the registry to move.
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// Move blobs and upload sessions to this bucket (a `vouch serve
    /// --storage` URL). The bucket prefix must hold no blobs of another
    /// registry.
    #[arg(long, value_name = "URL")]
    to_storage: Option<String>,
    /// Move the registry metadata and the ledger to this PostgreSQL
    /// database (a `vouch serve --database` URL). It must hold no other
    /// registry's. A directory whose metadata an earlier version moved
    /// there has its ledger moved to join it.
    #[arg(long, value_name = "URL")]
    to_database: Option<String>,
}

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Runs `vouch migrate`.
pub fn run(args: MigrateArgs) -> Result<()> {
    if args.to_storage.is_none() && args.to_database.is_none() {
        return Err("nothing to move: give --to-storage, --to-database, or both".into());
    }
    let dir = DataDir::new(&args.from);
    if !dir.key_path().exists() {
        return Err(format!("{} holds no registry (no ledger.key)", args.from.display()).into());
    }
    let opened = dir.open_ledger(&default_origin()).map_err(|e| {
        format!(
            "{}: {e} (is `vouch serve` running on it? stop it before moving)",
            args.from.display()
        )
    })?;
    let before = (opened.ledger.size(), opened.ledger.root());
    let checkpoint = opened.ledger.checkpoint();
    eprintln!("ledger: {} entries, root {}", before.0, hex::encode(before.1 .0));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Some(url) = &args.to_storage {
        runtime.block_on(move_blobs(&dir, url))?;
    }
    if let Some(url) = &args.to_database {
        let owner = opened.ledger.verifier().to_string();
        let local = Meta::new(opened.db.clone());
        let pg = std::sync::Arc::new(Postgres::open(url)?);
        move_rows(&dir, &METADATA, &local, &pg, &owner, |_| Ok(()))?;
        // The moved ledger must be the same log: the same checkpoint, opened
        // and rebuilt from the database's rows, checked before the binding.
        let same_log = |pg: &std::sync::Arc<Postgres>| -> Result<()> {
            let rows = std::sync::Arc::new(PostgresRows::new(pg.clone()));
            let moved = vouch_ledger::store::Ledger::open_rows(rows, opened.signer.clone())?;
            if moved.checkpoint() != checkpoint || (moved.size(), moved.root()) != before {
                return Err(format!(
                    "the ledger in the database differs from this one (size {}, root {}): nothing was removed",
                    moved.size(),
                    hex::encode(moved.root().0)
                )
                .into());
            }
            Ok(())
        };
        move_rows(&dir, &LEDGER, &local, &pg, &owner, same_log)?;
    }
    // (The URLs may carry secrets: they are not repeated here.)
    eprintln!("moved. Start the registry with:");
    let mut serve = format!("  vouch serve --data {}", args.from.display());
    if dir.blob_storage()?.is_some() {
        serve += " --storage <the same URL>";
    }
    if dir.database()?.is_some() {
        serve += " --database <the same URL>";
    }
    eprintln!("{serve}");
    Ok(())
}

/// Copies every blob and upload session to the bucket, each through the
/// store's own upload path (so each blob is hashed again on the way and
/// lands only if it matches its digest), then binds the directory to the
/// bucket and removes the local files.
async fn move_blobs(dir: &DataDir, url: &str) -> Result<()> {
    let target = BlobStore::object_store(url).await?;
    let identity = target.identity().ok_or("--to-storage names no bucket")?;
    match dir.blob_storage()? {
        Some(bound) if bound == identity => eprintln!("blobs: already in {bound}; removing local leftovers"),
        Some(bound) => return Err(format!("the blobs are in {bound} already, not local files").into()),
        None => {
            // A prefix already written to is this move's own, interrupted
            // (its marker file names it), or another registry's.
            let marker = dir.root().join("migrating-blobs");
            let ours = std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == identity);
            if !ours && !target.all_blobs().await?.is_empty() {
                return Err(format!("{} already holds blobs of another registry", target.describe()).into());
            }
            write_synced(&marker, format!("{identity}\n").as_bytes())?;
            let files = FileBlobs::open(dir.root())?;
            let source = BlobStore::Files(files.clone());
            let blobs = source.all_blobs().await?;
            let total: u64 = blobs.iter().map(|(_, size, _)| size).sum();
            eprintln!(
                "blobs: copying {} ({}) to {}",
                blobs.len(),
                bytes(total),
                target.describe()
            );
            let mut progress = Progress::new("blobs", blobs.len(), Some(total));
            for (digest, size, _) in &blobs {
                if target.blob_size(digest).await? != Some(*size) {
                    let path = files.blob_path(digest);
                    let id = format!("migrate-{}", uuid::Uuid::new_v4());
                    copy_file(&target, &id, &path, *size).await?;
                    let stored = target.commit(&id, digest).await?;
                    target.remove_upload(&id).await?;
                    if stored != *size {
                        return Err(format!("{digest}: {stored} bytes stored, {size} expected").into());
                    }
                }
                progress.add(*size);
            }
            let sessions = source.upload_files().await?;
            for (id, _) in &sessions {
                let path = files.upload_path(id);
                let size = tokio::fs::metadata(&path).await?.len();
                if target.upload_size(id).await? != Some(size) {
                    target.remove_upload(id).await?;
                    copy_file(&target, id, &path, size).await?;
                }
            }
            eprintln!(
                "blobs: {} copied and checked, and {} upload session(s)",
                blobs.len(),
                sessions.len()
            );
            // Commit point: from here on the directory's blobs are the bucket's.
            dir.bind_moved_blob_storage(&identity)?;
        }
    }
    remove_if_present(&dir.root().join("migrating-blobs"))?;
    for sub in ["blobs", "uploads"] {
        match std::fs::remove_dir_all(dir.root().join(sub)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

/// Streams a file into a new upload session `id` of `target`.
async fn copy_file(target: &BlobStore, id: &str, path: &Path, size: u64) -> Result<()> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    target.create_upload(id).await?;
    let mut unbounded = |_| Ok(());
    target
        .append(id, ReaderStream::new(file), (size, Some(size)), &mut unbounded)
        .await?;
    Ok(())
}

/// Copies every metadata row to the database, checks the counts, binds the
/// directory to the database and clears the local rows.
/// A part of the registry that moves to the database as rows.
struct Part {
    what: &'static str,
    families: &'static [&'static str],
    /// The file naming the database while the move is under way.
    marker: &'static str,
    bound: fn(&DataDir) -> std::result::Result<Option<String>, String>,
    bind: fn(&DataDir, &str) -> std::result::Result<(), String>,
}

const METADATA: Part = Part {
    what: "metadata",
    families: copy::METADATA,
    marker: "migrating-metadata",
    bound: DataDir::database,
    bind: DataDir::bind_moved_database,
};

const LEDGER: Part = Part {
    what: "ledger",
    families: copy::LEDGER,
    marker: "migrating-ledger",
    bound: DataDir::ledger_database,
    bind: DataDir::bind_moved_ledger_database,
};

/// Copies `part`'s rows to the database, counts them, runs `check`, binds
/// the directory to the database (the commit point) and removes the local
/// rows.
fn move_rows(
    dir: &DataDir,
    part: &Part,
    local: &Meta,
    pg: &std::sync::Arc<Postgres>,
    owner: &str,
    check: impl FnOnce(&std::sync::Arc<Postgres>) -> Result<()>,
) -> Result<()> {
    let identity = pg.identity();
    let remote = Meta::postgres(pg.clone());
    let what = part.what;
    match (part.bound)(dir)? {
        Some(bound) if bound == identity => eprintln!("{what}: already in {bound}; removing local leftovers"),
        Some(bound) => return Err(format!("the {what} is in {bound} already, not in RocksDB").into()),
        None => {
            // A database already written to is this move's own, interrupted
            // (its marker file names it), or another registry's.
            let marker = dir.root().join(part.marker);
            let ours = std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == identity);
            if !ours && !remote.is_empty_in(part.families)? {
                return Err(format!("the database already holds another registry's {what}").into());
            }
            if let Some(other) = pg.claim(owner)? {
                return Err(format!("the database belongs to another registry (log key {other})").into());
            }
            write_synced(&marker, format!("{identity}\n").as_bytes())?;
            // Rows of an interrupted copy go first: the directory may have
            // served (and deleted rows) since, and a copy only puts.
            remote.clear(part.families)?;
            let total: u64 = local.row_counts(part.families)?.iter().map(|(_, n)| n).sum();
            eprintln!("{what}: copying {total} rows to {identity}");
            let mut progress = Progress::new("rows", total as usize, None);
            let mut last = (String::new(), 0);
            local.copy_into(part.families, &remote, |family, n| {
                if last.0 != family {
                    last = (family.to_owned(), 0);
                }
                progress.add_many(n - last.1);
                last.1 = n;
            })?;
            let (theirs, ours) = (remote.row_counts(part.families)?, local.row_counts(part.families)?);
            if theirs != ours {
                return Err(format!("the copy differs: {theirs:?} in the database, {ours:?} here").into());
            }
            check(pg)?;
            eprintln!("{what}: {total} rows copied and checked");
            // Commit point: from here on the directory's part is the database's.
            (part.bind)(dir, &identity)?;
        }
    }
    remove_if_present(&dir.root().join(part.marker))?;
    local.clear(part.families)?;
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("{}: {e}", path.display()).into()),
        _ => Ok(()),
    }
}

/// Progress on stderr, at most every two seconds.
struct Progress {
    what: &'static str,
    count: usize,
    /// The bytes in all, when counting bytes too.
    total: Option<u64>,
    done: (usize, u64),
    shown: Instant,
}

impl Progress {
    fn new(what: &'static str, count: usize, total: Option<u64>) -> Progress {
        Progress {
            what,
            count,
            total,
            done: (0, 0),
            shown: Instant::now(),
        }
    }

    /// One more item done, of `size` bytes.
    fn add(&mut self, size: u64) {
        self.done = (self.done.0 + 1, self.done.1 + size);
        self.show();
    }

    /// `n` more items done.
    fn add_many(&mut self, n: u64) {
        self.done.0 += n as usize;
        self.show();
    }

    fn show(&mut self) {
        if self.shown.elapsed() < Duration::from_secs(2) {
            return;
        }
        self.shown = Instant::now();
        let (what, (n, b), count) = (self.what, self.done, self.count);
        match self.total {
            Some(total) => eprintln!("  {what}: {n}/{count} ({} of {})", bytes(b), bytes(total)),
            None => eprintln!("  {what}: {n}/{count}"),
        }
    }
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
