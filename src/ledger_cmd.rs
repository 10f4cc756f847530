//! `vouch ledger ...`: operator commands over the local ledger.

use crate::data_dir::{default_origin, DataDir, DEFAULT_DATA_DIR};
use clap::{Args, Subcommand};
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;
use vouch_ledger::entry::Entry;
use vouch_ledger::tile::TileAddr;
use vouch_ledger::Checkpoint;

#[derive(Debug, Args)]
pub struct DataArgs {
    /// Data directory: holds the ledger database (db/), the log's signing key
    /// (ledger.key, mode 0600) and its public verifier key (ledger.vkey).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR, env = "VOUCH_DATA")]
    data: PathBuf,
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
    /// Recompute every tile and the root from the stored entries and compare
    /// them with the stored tiles and the signed checkpoint. Exits non-zero
    /// naming the first difference.
    Fsck {
        #[command(flatten)]
        data: DataArgs,
    },
    /// Write a tile or entry bundle, by its c2sp.org/tlog-tiles path
    /// (e.g. tile/0/000, tile/1/000.p/3, tile/entries/x001/234), to stdout.
    Tile {
        #[command(flatten)]
        data: DataArgs,
        /// The tile path.
        path: String,
    },
    /// Decode and print entry INDEX.
    Entry {
        #[command(flatten)]
        data: DataArgs,
        /// The entry's index.
        index: u64,
    },
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

pub fn run(cmd: LedgerCommand) -> Result<()> {
    match cmd {
        LedgerCommand::Init { data, origin } => {
            let dir = DataDir::new(data.data);
            let opened = dir.open_ledger(&origin.unwrap_or_else(default_origin))?;
            if opened.key_created {
                eprintln!(
                    "created a new log signing key in {}",
                    dir.key_path().display()
                );
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
        LedgerCommand::Fsck { data } => {
            let ledger = open_existing(data)?;
            let size = ledger.size();
            let start = Instant::now();
            let mut last = Instant::now();
            let report = ledger.fsck(|done| {
                if last.elapsed().as_millis() >= 500 {
                    last = Instant::now();
                    eprintln!(
                        "fsck: {done}/{size} entries ({}%)",
                        done * 100 / size.max(1)
                    );
                }
            })?;
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
            let bytes = ledger
                .tile(addr)?
                .ok_or_else(|| format!("{path} does not exist at tree size {}", ledger.size()))?;
            std::io::stdout().write_all(&bytes)?;
        }
        LedgerCommand::Entry { data, index } => {
            let ledger = open_existing(data)?;
            let bytes = ledger.entry(index)?.ok_or_else(|| {
                format!(
                    "no entry {index}: the ledger holds {} entries",
                    ledger.size()
                )
            })?;
            match Entry::decode(&bytes) {
                Ok(entry) => println!("{entry:#?}"),
                Err(e) => {
                    return Err(format!(
                        "entry {index} ({} bytes) does not decode: {e}",
                        bytes.len()
                    )
                    .into())
                }
            }
        }
    }
    Ok(())
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
    Ok(dir.open_ledger("unused: the key exists")?.ledger)
}
