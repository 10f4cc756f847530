//! A real PostgreSQL server (Debian's `postgresql`, 15 on bookworm) on
//! 127.0.0.1 and a port of its own, for the metadata tests. `.ci/run`
//! installs it; the cluster is made with `initdb` in a temporary directory
//! and run as the `postgres` user when the tests run as root.
//!
//! Clients log in as [`USER`] with a password (SCRAM-SHA-256), as over a
//! network; the server runs with `fsync` on, its default.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The role the tests connect as (the cluster's superuser).
pub const USER: &str = "vouch";
/// Its password.
pub const PASSWORD: &str = "vouch-test-password";

/// A running PostgreSQL; stopped when dropped, or when the test process
/// ends however it ends (its shell wrapper reads our end of a pipe).
pub struct PostgresServer {
    /// The port on 127.0.0.1.
    pub port: u16,
    bin: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
    /// The wrappers of earlier runs of this server ([`Self::restart`]),
    /// whose pipes stay open until the end (closing one removes the
    /// directory).
    retired: Vec<ChildStdin>,
    script: String,
    dir: tempfile::TempDir,
}

/// Starts a wrapper script under `sh` (a test server's: it stops the
/// server when its stdin closes); returns it and our end of its stdin.
pub fn spawn_wrapper(script: &str) -> (Child, std::process::ChildStdin) {
    let mut child = Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

/// Where Debian installs the server's programs: the newest
/// `/usr/lib/postgresql/<version>/bin` holding `postgres`.
fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// The command running `program` as the `postgres` user when we are root
/// (PostgreSQL refuses to run as root), else as ourselves.
fn as_owner(program: &std::path::Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--clear-groups", "--"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PostgresServer {
    /// Starts one, or returns `None` (reported) when PostgreSQL is not
    /// installed outside CI; under CI (CI=true) a missing server fails.
    pub fn start() -> Option<PostgresServer> {
        Self::start_with(&[], &[])
    }

    /// As [`Self::start`], with `files` copied into the server's directory
    /// (mode 0600, under the names given) and `settings` (`name=value`,
    /// where `$DIR` stands for that directory).
    pub fn start_with(settings: &[&str], files: &[(&str, &Path)]) -> Option<PostgresServer> {
        let Some(bin) = bin_dir() else {
            let why = "PostgreSQL is not installed (apt-get install postgresql)";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("skipped: {why}");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        for (name, from) in files {
            let to = dir.path().join(name);
            std::fs::copy(from, &to).unwrap();
            std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        }
        // As root, the server's files belong to `postgres`; otherwise they
        // are ours already, and this chown fails harmlessly.
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status();
        let out = as_owner(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "-A", "scram-sha-256", "--auth-local=trust", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync", "--pwfile"])
            .arg(&pwfile)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let postgres = as_owner(&bin.join("postgres"));
        let mut argv: Vec<String> = std::iter::once(postgres.get_program())
            .chain(postgres.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        argv.extend([
            "-D".into(),
            data.display().to_string(),
            "-p".into(),
            port.to_string(),
            "-k".into(),
            dir.path().display().to_string(),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
            "-c".into(),
            "max_connections=300".into(),
        ]);
        for setting in settings {
            argv.extend(["-c".into(), setting.replace("$DIR", &dir.path().display().to_string())]);
        }
        // The wrapper stops the server when our end of its stdin closes
        // (when this value drops, or the test process dies): SIGINT (a fast
        // shutdown), and SIGKILL if it has not exited 5 s later. It exits
        // with the server; once stopped, its directory is removed (a server
        // kept in a static is never dropped).
        let script = format!(
            "exec 3<&0; {} >{dir}/postgres.log 2>&1 & pid=$!; \
             (read _ <&3; kill -INT $pid; sleep 5; kill -9 $pid 2>/dev/null; rm -rf {dir}) & wait $pid",
            argv.join(" "),
            dir = dir.path().display()
        );
        let (child, stdin) = spawn_wrapper(&script);
        let mut running = PostgresServer {
            port,
            bin,
            child,
            stdin: Some(stdin),
            retired: Vec::new(),
            script,
            dir,
        };
        running.wait_until_up();
        Some(running)
    }

    /// Stops the server (a fast shutdown, as an operator's restart does),
    /// runs `while_down`, and starts it again on the same data and port.
    pub fn restart(&mut self, while_down: impl FnOnce()) {
        let pidfile = self.dir.path().join("data/postmaster.pid");
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let pid = pid.lines().next().unwrap().trim().to_owned();
        assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
        self.child.wait().unwrap();
        self.retired.extend(self.stdin.take());
        while_down();
        let (child, stdin) = spawn_wrapper(&self.script);
        (self.child, self.stdin) = (child, Some(stdin));
        self.wait_until_up();
    }

    /// Waits until the server answers a query.
    fn wait_until_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.try_psql("postgres", "SELECT 1").is_ok() {
                return;
            }
            let exited = self.child.try_wait().unwrap().is_some();
            assert!(
                !exited && Instant::now() < deadline,
                "PostgreSQL did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `psql` connected to `database` as the test user, reading no
    /// `.psqlrc`, stopping at the first error.
    fn psql_command(&self, database: &str) -> Command {
        let psql = self.bin.join("psql");
        let mut c = Command::new(if psql.exists() { psql } else { "psql".into() });
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            USER,
            "-d",
            database,
        ])
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .env("PGPASSWORD", PASSWORD);
        c
    }

    /// Runs the SQL file `path` (a `pg_dump` of a database, meta-commands
    /// included) in `database` with `psql -f`, panicking on failure.
    pub fn psql_file(&self, database: &str, path: &std::path::Path) {
        let out = self.psql_command(database).arg("-f").arg(path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "psql -f {}: {err}", path.display());
    }

    fn try_psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let out = self
            .psql_command(database)
            .args(["-A", "-t", "-c", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs `sql` in `database` with `psql` (an independent client);
    /// returns its unaligned output, panicking on failure.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        self.try_psql(database, sql)
            .unwrap_or_else(|e| panic!("psql {sql:?}: {e}"))
    }

    /// Creates the database `name` unless it exists; returns its URL.
    pub fn database(&self, name: &str) -> String {
        let exists = self.psql(
            "postgres",
            &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
        );
        if exists.is_empty() {
            self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        }
        self.url(name)
    }

    /// A new database of its own; returns its URL.
    pub fn fresh_database(&self) -> String {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.database(&format!("fresh{n}"))
    }

    /// The `--database` URL of `database`, password included.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{database}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // Closing the pipe stops the server; the wrapper waits for it.
        self.stdin.take();
        let _ = self.child.wait();
        self.retired.clear();
    }
}

/// Where test registries keep their metadata: RocksDB, or, with
/// `VOUCH_TEST_DATABASE=postgres` (tools/test.sh runs the black-box and
/// in-process suites again so), a real PostgreSQL this test process starts
/// once, in a database of its own for each data directory (so a restart
/// finds its metadata again). Returns the `--database` URL.
pub fn test_database(data: &Path) -> Option<String> {
    match std::env::var("VOUCH_TEST_DATABASE").as_deref() {
        Ok("postgres") => {}
        Ok("rocksdb") | Err(_) => return None,
        Ok(other) => panic!("VOUCH_TEST_DATABASE={other}: expected postgres or rocksdb"),
    }
    static SERVER: std::sync::OnceLock<PostgresServer> = std::sync::OnceLock::new();
    let server = SERVER.get_or_init(|| PostgresServer::start().expect("VOUCH_TEST_DATABASE=postgres needs PostgreSQL"));
    let path = std::fs::canonicalize(data).unwrap_or_else(|_| data.to_owned());
    let digest = vouch::registry::digest::sha256_of(path.as_os_str().as_encoded_bytes());
    let hex = digest.as_str().trim_start_matches("sha256:");
    Some(server.database(&format!("t{}", &hex[..16])))
}

/// The metadata and the ledger of an in-process test registry over the
/// data directory `data`, opened as `opened`: in its RocksDB, or, as
/// [`test_database`] chooses, both in PostgreSQL (as `vouch serve
/// --database` keeps a new directory's).
pub fn test_stores(
    data: &Path,
    opened: &vouch::data_dir::Opened,
) -> (vouch::registry::meta::Meta, vouch_ledger::store::Ledger) {
    use vouch::registry::meta::{Meta, Postgres, PostgresRows};
    match test_database(data) {
        Some(url) => {
            let pg = std::sync::Arc::new(Postgres::open(&url).unwrap());
            let rows = std::sync::Arc::new(PostgresRows::new(pg.clone()));
            let ledger = vouch_ledger::store::Ledger::open_rows(rows, opened.signer.clone()).unwrap();
            (Meta::postgres(pg), ledger)
        }
        None => (Meta::new(opened.db.clone()), opened.ledger.clone()),
    }
}
