//! The data directory: everything vouch keeps on disk, under one folder.
//!
//! ```text
//! <data>/         mode 0700: only the registry's user may read anything in it
//!   ledger.key    the log's Ed25519 signing key (note private-key text, mode 0600)
//!   ledger.vkey   its public verifier key, `<origin>+<hex id>+<base64>` (for clients)
//!   admission.key vouch's countersigning key (PKCS#8 PEM, ECDSA P-256, mode 0600)
//!   admission.pub its public key, for downstream verifiers
//!   db/           RocksDB: the ledger's and the registry's column families
//!   blobs/        content-addressed blob files (src/registry/blobs/files.rs)
//!   uploads/      upload sessions in progress
//!   blob-storage  with `--storage`: the bucket and prefix that hold the blobs
//!                 and sessions instead (`s3://bucket/prefix`, one line)
//!   metadata-database  with `--database`: the PostgreSQL database holding
//!                 the registry metadata instead (`PostgreSQL instance <id>`)
//!   ledger-database    and the ledger too, when it is there (a directory
//!                 first served with `--database`, or moved by `vouch migrate`)
//! ```

use std::path::{Path, PathBuf};
use vouch_ledger::store::{load_or_create_signer, KeyFileError, Ledger, OpenError};
use vouch_ledger::NoteSigner;

/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "vouch-data";

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// Why the data directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Creating the directory or writing the verifier key failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The signing key file is unusable.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// The ledger refused to open.
    #[error(transparent)]
    Ledger(#[from] OpenError),
}

/// An opened ledger and what opening it did.
#[derive(Debug)]
pub struct Opened {
    /// The ledger.
    pub ledger: Ledger,
    /// The RocksDB instance it lives in, shared with the registry.
    pub db: std::sync::Arc<rocksdb::DB>,
    /// Whether a new signing key was generated on this open.
    pub key_created: bool,
    /// The log's signing key, for opening the ledger elsewhere.
    pub signer: NoteSigner,
}

impl DataDir {
    /// The data directory at `root` (not yet created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The signing key file.
    pub fn key_path(&self) -> PathBuf {
        self.root.join("ledger.key")
    }

    /// The verifier key file.
    pub fn vkey_path(&self) -> PathBuf {
        self.root.join("ledger.vkey")
    }

    /// The RocksDB directory.
    pub fn db_path(&self) -> PathBuf {
        self.root.join("db")
    }

    /// Opens the ledger, creating the directory, key and database on first use
    /// (the key named `origin_if_new`), and (re)writes `ledger.vkey`.
    pub fn open_ledger(&self, origin_if_new: &str) -> Result<Opened, DataDirError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| DataDirError::Io { path, source }
        };
        private_dir(&self.root).map_err(io(&self.root))?;
        private_dir(&self.db_path()).map_err(io(&self.db_path()))?;
        let (signer, key_created): (NoteSigner, bool) = load_or_create_signer(&self.key_path(), origin_if_new)?;
        let vkey = format!("{}\n", signer.verifier());
        std::fs::write(self.vkey_path(), vkey).map_err(io(&self.vkey_path()))?;
        let mut families = vouch_ledger::store::column_families();
        families.extend(crate::registry::meta::column_families());
        let db = rocksdb::DB::open_cf_descriptors(&vouch_ledger::store::db_options(), self.db_path(), families)
            .map_err(OpenError::from)?;
        let db = std::sync::Arc::new(db);
        let ledger = Ledger::open_in(db.clone(), signer.clone())?;
        Ok(Opened {
            ledger,
            db,
            key_created,
            signer,
        })
    }
}

/// The file naming where a data directory's blobs are kept, if not in it.
const BLOB_STORAGE: Binding = Binding {
    file: "blob-storage",
    what: "its blobs",
    flag: "--storage",
};

/// The file naming the PostgreSQL database holding a data directory's
/// registry metadata, if not its RocksDB.
const DATABASE: Binding = Binding {
    file: "metadata-database",
    what: "its registry metadata",
    flag: "--database",
};

/// The file naming the PostgreSQL database holding a data directory's
/// ledger, if not its RocksDB.
const LEDGER_DATABASE: Binding = Binding {
    file: "ledger-database",
    what: "its ledger",
    flag: "--database",
};

impl DataDir {
    /// Checks that `database` holds this directory's ledger, or records it
    /// on first use (`vacant` says why it cannot, if it cannot).
    pub fn bind_ledger_database(
        &self,
        database: Option<&str>,
        vacant: impl FnOnce() -> Result<(), String>,
    ) -> Result<(), String> {
        self.bind(&LEDGER_DATABASE, database, vacant)
    }

    /// Which database is recorded to hold this directory's ledger (`None`:
    /// its RocksDB).
    pub fn ledger_database(&self) -> Result<Option<String>, String> {
        self.recorded(LEDGER_DATABASE.file)
    }

    /// Records that this directory's ledger was moved to `database`.
    pub fn bind_moved_ledger_database(&self, database: &str) -> Result<(), String> {
        self.bind(&LEDGER_DATABASE, Some(database), || Ok(()))
    }

    /// Checks that `storage` (`s3://bucket/prefix`, or `None` for local
    /// files) is where this directory's blobs are, and records it on first
    /// use: the manifests and links in the database name blobs in one
    /// place, and opening them against another would serve none of them.
    /// A directory that already holds blob files does not move to a bucket
    /// this way; `vacant` says why the bucket cannot take them, if it
    /// cannot.
    pub fn bind_blob_storage(
        &self,
        storage: Option<&str>,
        vacant: impl FnOnce() -> Result<(), String>,
    ) -> Result<(), String> {
        self.bind(&BLOB_STORAGE, storage, || {
            if holds_files(&self.root.join("blobs")) {
                return Err("it holds blob files".into());
            }
            vacant()
        })
    }

    /// Checks that `database` (`postgres <instance id>`, or `None` for the
    /// RocksDB here) holds this directory's registry metadata, and records
    /// it on first use: the ledger here and the decisions there describe
    /// one registry. `vacant` says why the pair cannot be joined (local
    /// metadata, or a database already in use), if it cannot.
    pub fn bind_database(
        &self,
        database: Option<&str>,
        vacant: impl FnOnce() -> Result<(), String>,
    ) -> Result<(), String> {
        self.bind(&DATABASE, database, vacant)
    }

    /// Where this directory's blobs are recorded to be (`None`: in it).
    pub fn blob_storage(&self) -> Result<Option<String>, String> {
        self.recorded(BLOB_STORAGE.file)
    }

    /// Which database is recorded to hold this directory's registry
    /// metadata (`None`: its RocksDB).
    pub fn database(&self) -> Result<Option<String>, String> {
        self.recorded(DATABASE.file)
    }

    /// Records that this directory's blobs were moved to `storage`
    /// (`vouch migrate`, after the copy was checked).
    pub fn bind_moved_blob_storage(&self, storage: &str) -> Result<(), String> {
        self.bind(&BLOB_STORAGE, Some(storage), || Ok(()))
    }

    /// Records that this directory's registry metadata was moved to
    /// `database` (`vouch migrate`, after the copy was checked).
    pub fn bind_moved_database(&self, database: &str) -> Result<(), String> {
        self.bind(&DATABASE, Some(database), || Ok(()))
    }

    fn recorded(&self, name: &str) -> Result<Option<String>, String> {
        let file = self.root.join(name);
        match std::fs::read_to_string(&file) {
            Ok(text) => Ok(Some(text.trim().to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", file.display())),
        }
    }

    fn bind(
        &self,
        b: &Binding,
        wanted: Option<&str>,
        vacant: impl FnOnce() -> Result<(), String>,
    ) -> Result<(), String> {
        let file = self.root.join(b.file);
        let recorded = self.recorded(b.file)?;
        let (dir, what, flag) = (self.root.display(), b.what, b.flag);
        match (recorded.as_deref(), wanted) {
            (None, None) => Ok(()),
            (Some(r), Some(s)) if r == s => Ok(()),
            (Some(r), Some(s)) => Err(format!(
                "{dir} keeps {what} in {r}, not {s}: start with {flag} naming {r}"
            )),
            (Some(r), None) => Err(format!("{dir} keeps {what} in {r}: start with {flag} naming it")),
            (None, Some(s)) => {
                vacant().map_err(|why| format!("{dir} cannot keep {what} in {s}: {why} (start without {flag})"))?;
                write_synced(&file, format!("{s}\n").as_bytes()).map_err(|e| format!("{}: {e}", file.display()))
            }
        }
    }
}

/// A data directory's record of where part of its state lives.
struct Binding {
    file: &'static str,
    what: &'static str,
    flag: &'static str,
}

/// Whether a directory tree holds any file.
fn holds_files(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| match e.file_type() {
        Ok(t) if t.is_dir() => holds_files(&e.path()),
        Ok(_) => true,
        Err(_) => true,
    })
}

/// Writes a small file durably: a temporary file, fsync'd, renamed into
/// place, the directory fsync'd.
pub fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

impl DataDir {
    /// Opens an existing ledger for reading only: no lock is taken, so it
    /// works while `vouch serve` runs on the same directory, and it sees
    /// the ledger as it was when opened.
    pub fn open_ledger_read_only(&self) -> Result<Ledger, DataDirError> {
        let signer = vouch_ledger::store::load_signer(&self.key_path())?;
        let opts = vouch_ledger::store::db_options();
        let names = rocksdb::DB::list_cf(&opts, self.db_path()).map_err(OpenError::from)?;
        let db = rocksdb::DB::open_cf_for_read_only(&opts, self.db_path(), names, false).map_err(OpenError::from)?;
        Ok(Ledger::open_in(std::sync::Arc::new(db), signer)?)
    }
}

/// Creates `dir` (and its parents) with mode 0700, or, if it exists with a
/// looser mode, tightens it to 0700: it holds keys, quarantined blobs and
/// the database, which only the registry's user may read.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// A default origin for a new log: `<hostname>/vouch`.
pub fn default_origin() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '+')
        .collect();
    format!("{}/vouch", if host.is_empty() { "localhost" } else { &host })
}
