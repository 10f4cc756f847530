//! The log's signing key on disk: one line in the note private-key text form
//! (`PRIVATE+KEY+<name>+<hex id>+<base64>`), in a file of mode 0600.

use crate::note::{NoteError, NoteSigner};
use ed25519_dalek::SigningKey;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing it failed.
    #[error("log key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Its contents are not a note private key.
    #[error("log key file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: NoteError,
    },
    /// Readable by group or others.
    #[error("log key file {path} has mode {mode:o}; it must not be readable by group or others (chmod 600)")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
}

/// Loads the signer at `path`, or, if there is no such file, generates one
/// named `name_if_new` and writes it there (mode 0600, fsync'd). Returns the
/// signer and whether it was created. An existing key keeps its own name.
pub fn load_or_create_signer(path: &Path, name_if_new: &str) -> Result<(NoteSigner, bool), KeyFileError> {
    match load_signer(path) {
        Err(KeyFileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let signer = NoteSigner::new(name_if_new, key).map_err(|source| KeyFileError::Parse {
                path: path.to_owned(),
                source,
            })?;
            write_new(path, &signer).map_err(|source| KeyFileError::Io {
                path: path.to_owned(),
                source,
            })?;
            Ok((signer, true))
        }
        other => other.map(|s| (s, false)),
    }
}

/// Loads the signer at `path`, refusing a file readable by group or others.
pub fn load_signer(path: &Path) -> Result<NoteSigner, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let text = fs::read_to_string(path).map_err(io)?;
    let mode = fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    NoteSigner::parse(&text).map_err(|source| KeyFileError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Writes the key to a temporary file, fsyncs it, renames it into place and
/// fsyncs the directory: a crash leaves either no key file or a whole one.
fn write_new(path: &Path, signer: &NoteSigner) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(format!("{}\n", signer.to_private_text()).as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}
