//! `vouch ledger ...`: operator commands over the local ledger.

use clap::{Args, Subcommand};
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;
use vouch::data_dir::{default_origin, DataDir, DEFAULT_DATA_DIR};
use vouch::mirror::{export, DirSource, HttpSource};
use vouch_ledger::entry::Entry;
use vouch_ledger::fsck::{fsck, FsckReport, TileSource};
use vouch_ledger::tile::TileAddr;
use vouch_ledger::{Checkpoint, VerifierKey};

#[derive(Debug, Args)]
pub struct DataArgs {
    /// Data directory: holds the ledger database (db/), the log's signing key
    /// (ledger.key, mode 0600) and its public verifier key (ledger.vkey).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR, env = "VOUCH_DATA")]
    data: PathBuf,
    /// The PostgreSQL database holding the ledger of a directory served
    /// with --database (the URL `vouch serve --database` takes; its file
    /// `ledger-database` names the instance). Read, never written.
    #[arg(long, value_name = "URL", env = "VOUCH_DATABASE", hide_env_values = true)]
    database: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Create the ledger and its signing key if they do not exist, and print
    /// the verifier key clients need (also written to <data>/ledger.vkey).
    Init {
        #[command(flatten)]
        data: DataArgs,
        /// The log's origin (its checkpoint's first line and its key name),
        /// used only when a new key is created. Default: <hostname>/vouch.
        #[arg(long, value_name = "NAME")]
        origin: Option<String>,
    },
    /// Print the verifier key, tree size, root hash and latest signed checkpoint.
    Status {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Recompute every tile and the root from the entries and compare them
    /// with the stored tiles and the signed checkpoint. Exits non-zero naming
    /// the first difference.
    ///
    /// With --mirror, check a tlog-tiles mirror instead, trusting nothing
    /// but the log key: a directory (as written by `vouch ledger export`,
    /// or copied from any server), or an http(s) URL under which the log is
    /// published (the bucket `vouch serve --storage` publishes it to, behind
    /// any static server or CDN, or a registry's /ledger). No database is
    /// opened.
    Fsck {
        #[command(flatten)]
        data: DataArgs,
        /// A mirror directory holding `checkpoint` and `tile/...` files, or
        /// the URL they are published under.
        #[arg(long, value_name = "DIR|URL", requires = "log_key")]
        mirror: Option<String>,
        /// The log's verifier key (`<origin>+<id>+<key>`), or a file holding
        /// it such as <data>/ledger.vkey. Required with --mirror.
        #[arg(long, value_name = "VKEY|FILE")]
        log_key: Option<String>,
    },
    /// Write the current tree as a static c2sp.org/tlog-tiles mirror: every
    /// tile and entry bundle at its tlog-tiles path, then the checkpoint.
    /// Full tiles already in DIR are kept, so repeated exports are incremental.
    Export {
        #[command(flatten)]
        data: DataArgs,
        /// Directory to write the mirror into.
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
    /// Write a tile or entry bundle, by its c2sp.org/tlog-tiles path
    /// (e.g. tile/0/000, tile/1/000.p/3, tile/entries/x001/234), to stdout.
    Tile {
        #[command(flatten)]
        data: DataArgs,
        /// The tile path.
        path: String,
    },
    /// Decode and print entry INDEX: readable text, or JSON with
    /// `--output json`.
    Entry {
        #[command(flatten)]
        data: DataArgs,
        /// The entry's index.
        index: u64,
        /// Output: text or json.
        #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
        output: String,
    },
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

pub fn run(cmd: LedgerCommand) -> Result<()> {
    match cmd {
        LedgerCommand::Init { data, origin } => {
            let dir = DataDir::new(data.data);
            // An existing log keeps its origin (it is its key's name, in
            // every checkpoint): asking for another is a mistake to name.
            if let (Some(wanted), true) = (&origin, dir.key_path().exists()) {
                let existing = vouch_ledger::store::load_signer(&dir.key_path())?;
                if existing.verifier().name() != wanted {
                    return Err(format!(
                        "the log in {} already has the origin {:?}; --origin names a new log only \
                         (use another --data for a new one)",
                        dir.root().display(),
                        existing.verifier().name()
                    )
                    .into());
                }
            }
            let opened = dir.open_ledger(&origin.unwrap_or_else(default_origin))?;
            if opened.key_created {
                eprintln!("created a new log signing key in {}", dir.key_path().display());
            }
            eprintln!(
                "ledger at {} holds {} entries",
                dir.db_path().display(),
                opened.ledger.size()
            );
            eprintln!("verifier key (also in {}):", dir.vkey_path().display());
            println!("{}", opened.ledger.verifier());
        }
        LedgerCommand::Status { data } => {
            let ledger = open_existing(data)?;
            let note = ledger.checkpoint();
            let cp = Checkpoint::open(note.as_bytes(), ledger.verifier())?;
            println!("verifier key: {}", ledger.verifier());
            println!("tree size:    {}", cp.size);
            println!("root hash:    {}", cp.root.to_base64());
            println!("checkpoint:\n{note}");
        }
        LedgerCommand::Fsck {
            mirror: Some(dir),
            log_key,
            ..
        } => {
            let key = parse_log_key(log_key.as_deref().expect("clap requires --log-key"))?;
            let start = Instant::now();
            let report = if dir.starts_with("http://") || dir.starts_with("https://") {
                let source = HttpSource::new(&dir);
                fsck_mirror(&source, source.read("checkpoint")?, &key)?
            } else {
                let source = DirSource::new(&dir);
                fsck_mirror(&source, source.read("checkpoint")?, &key)?
            };
            println!(
                "fsck: ok: mirror {}: {} entries, {} tiles and the root {} match the checkpoint signed by {} ({:.1?})",
                dir,
                report.entries,
                report.tiles,
                report.root.to_base64(),
                key.name(),
                start.elapsed()
            );
        }
        LedgerCommand::Export { data, to } => {
            let ledger = open_existing(data)?;
            let start = Instant::now();
            let mut report_progress = progress("export", 0);
            let report = export(&ledger, &to, |done, total| report_progress(done * 100 / total.max(1)))?;
            println!(
                "export: {} files written, {} full tiles already present, tree size {} ({:.1?})",
                report.written,
                report.skipped,
                ledger.size(),
                start.elapsed()
            );
        }
        LedgerCommand::Fsck { data, .. } => {
            let ledger = open_existing(data)?;
            let size = ledger.size();
            let start = Instant::now();
            let report = ledger.fsck(progress("fsck", size))?;
            println!(
                "fsck: ok: {} entries, {} tiles and the root {} match the signed checkpoint ({:.1?})",
                report.entries,
                report.tiles,
                report.root.to_base64(),
                start.elapsed()
            );
        }
        LedgerCommand::Tile { data, path } => {
            let addr = TileAddr::parse(&path)?;
            let ledger = open_existing(data)?;
            let size = ledger.size();
            let bytes = ledger.tile(addr)?.ok_or_else(|| {
                format!(
                    "{path} does not exist at tree size {size}: a tile holds 256 hashes (or entries) once full; \
                     until then it exists only at its current width, as <path>.p/<width> (for level 0 \
                     and entry bundles, tile/0/000.p/{} at this size; `vouch ledger status` shows the size)",
                    size.min(256)
                )
            })?;
            std::io::stdout().write_all(&bytes)?;
        }
        LedgerCommand::Entry { data, index, output } => {
            let ledger = open_existing(data)?;
            let bytes = ledger
                .entry(index)?
                .ok_or_else(|| format!("no entry {index}: the ledger holds {} entries", ledger.size()))?;
            let entry = Entry::decode(&bytes)
                .map_err(|e| format!("entry {index} ({} bytes) does not decode: {e}", bytes.len()))?;
            let json = crate::entry_view::to_json(index, &entry);
            if output == "json" {
                println!("{}", serde_json::to_string_pretty(&json)?);
            } else {
                print!("{}", crate::entry_view::to_text(&json));
            }
        }
    }
    Ok(())
}

/// Checks a mirror from its tiles alone against its checkpoint `note`,
/// whose signature by `key` is checked first.
fn fsck_mirror<S: TileSource>(source: &S, note: Vec<u8>, key: &VerifierKey) -> Result<FsckReport> {
    let checkpoint = Checkpoint::open(&note, key)?;
    Ok(fsck(source, &checkpoint, progress("fsck", checkpoint.size))?)
}

/// A progress printer for long work: at most twice a second, to stderr.
/// With `total` 0 the value is a percentage.
fn progress(what: &'static str, total: u64) -> impl FnMut(u64) {
    let mut last = Instant::now();
    move |done| {
        if last.elapsed().as_millis() >= 500 {
            last = Instant::now();
            match (done * 100).checked_div(total) {
                Some(pct) => eprintln!("{what}: {done}/{total} entries ({pct}%)"),
                None => eprintln!("{what}: {done}%"),
            }
        }
    }
}

/// A verifier key given inline, or the path of a file holding one.
fn parse_log_key(arg: &str) -> Result<VerifierKey> {
    let text = if std::path::Path::new(arg).is_file() {
        std::fs::read_to_string(arg).map_err(|e| format!("{arg}: {e}"))?
    } else {
        arg.to_owned()
    };
    Ok(VerifierKey::parse(text.trim())?)
}

/// Opens a ledger that must already exist (commands other than init never
/// create a key or database).
fn open_existing(data: DataArgs) -> Result<vouch_ledger::store::Ledger> {
    let dir = DataDir::new(data.data);
    if !dir.key_path().exists() {
        return Err(format!(
            "no ledger in {} (no ledger.key); run `vouch ledger init --data {}` first",
            dir.root().display(),
            dir.root().display()
        )
        .into());
    }
    // The copy in db/ is not the ledger once it moved to the database.
    if let Some(bound) = dir.ledger_database()? {
        let Some(url) = data.database else {
            return Err(format!(
                "the ledger of {} is in {bound}, not in its db/: give --database naming it",
                dir.root().display()
            )
            .into());
        };
        let pg = std::sync::Arc::new(vouch::registry::meta::Postgres::open(&url)?);
        let identity = pg.identity();
        if identity != bound {
            return Err(format!(
                "the ledger of {} is in {bound}, not in {identity}",
                dir.root().display()
            )
            .into());
        }
        let signer = vouch_ledger::store::load_signer(&dir.key_path())?;
        let rows = std::sync::Arc::new(vouch::registry::meta::PostgresRows::new(pg));
        return Ok(vouch_ledger::store::Ledger::open_rows(rows, signer)?);
    }
    // Read-only: no lock, so this works while `vouch serve` runs here.
    Ok(dir.open_ledger_read_only()?)
}
