//! `vouch serve`'s options, and the `--config` file that can set each.

use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use vouch::data_dir::DEFAULT_DATA_DIR;

/// Options of `vouch serve`. Each can also be set in the `--config` file
/// (same names, `_` for `-`); the command line and environment win over it.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file. Keys: every option below, with `_` for `-`
    /// (for example `max_upload_sessions = 16`), plus `anonymous_pull =
    /// false` and `registry_names = [..]`. Unknown keys are errors,
    /// reported with their line and column.
    #[arg(long, value_name = "FILE", env = "VOUCH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address and port to listen on. Port 0 picks a free port; the address
    /// actually bound is printed as `listening on <addr>`.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        default_value = "127.0.0.1:5000",
        env = "VOUCH_LISTEN"
    )]
    pub listen: SocketAddr,
    /// Data directory (mode 0700): RocksDB (db/), blobs (blobs/), upload
    /// sessions (uploads/), the log's signing key (ledger.key) and verifier
    /// key (ledger.vkey), the admission key (admission.key) and its public
    /// key (admission.pub). Created on first start.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR, env = "VOUCH_DATA")]
    pub data: PathBuf,
    /// Keep blobs and upload sessions in an S3-compatible bucket instead of
    /// <data>/blobs and <data>/uploads:
    /// s3://BUCKET[/PREFIX][?endpoint=URL&region=R&...]. Options are
    /// object_store's S3 settings; credentials come from the environment
    /// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY). The data directory
    /// remembers the bucket and refuses to start with another, or without.
    #[arg(long, value_name = "URL", env = "VOUCH_STORAGE", hide_env_values = true)]
    pub storage: Option<String>,
    /// Keep the registry's metadata (repositories, tags, manifests,
    /// referrers, admission state, upload sessions) in PostgreSQL instead
    /// of <data>/db: postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME
    /// (or libpq's key=value form). A password missing from the URL comes
    /// from PGPASSWORD. TLS is required of a server across the network
    /// (offered to one on localhost) and always verified, against
    /// ?sslrootcert=FILE or the system's roots (sslmode=disable turns it
    /// off). The tables are created on first use.
    ///
    /// A data directory first started with --database keeps its ledger
    /// there too, and then any number of replicas serve one registry: each
    /// with a data directory holding copies of ledger.key and
    /// admission.key, the same --storage and the same --database. (A
    /// directory whose metadata moved there before the ledger could keeps
    /// its ledger in <data>/db until `vouch migrate --to-database` moves
    /// it.) The data directory remembers the database and refuses to start
    /// with another, or without.
    #[arg(long, value_name = "URL", env = "VOUCH_DATABASE", hide_env_values = true)]
    pub database: Option<String>,
    /// The ledger's origin, used only when a new log key is created on first
    /// start. Default: <hostname>/vouch.
    #[arg(long, value_name = "NAME")]
    pub origin: Option<String>,
    /// Admission policy (TOML, spec/policy.md). Every image is evaluated
    /// when pushed and when evidence for it arrives; each decision is
    /// appended to the ledger before the push is answered, and images not
    /// admitted answer DENIED. spec/examples/policy-open.toml admits
    /// everything. Without --policy or --trust-key, nothing is admitted.
    #[arg(long, value_name = "FILE", env = "VOUCH_POLICY", conflicts_with = "trust_key")]
    pub policy: Option<PathBuf>,
    /// Shorthand for a policy requiring, on every repository, a valid
    /// signature by one of these keys (PEM public key files; repeatable),
    /// made for this registry's name and the repository.
    #[arg(long = "trust-key", value_name = "PEM")]
    pub trust_key: Vec<PathBuf>,
    /// The registry's name as clients reach it (`host[:port]`; repeatable).
    /// A signature counts only if its docker-reference names one of these
    /// and the repository (unless the policy relaxes it); vouch's
    /// countersignatures use the first. Default: the address listened on
    /// (a loopback name also stands for its loopback equivalents).
    #[arg(long = "registry-name", value_name = "HOST[:PORT]", env = "VOUCH_REGISTRY_NAME")]
    pub registry_name: Vec<String>,
    /// Do not countersign admitted images. By default vouch signs every
    /// image it admits with its admission key (<data>/admission.key,
    /// created on first start; public half admission.pub), as a
    /// cosign-compatible signature naming the decision's ledger entry.
    #[arg(long)]
    pub no_countersign: bool,
    /// Users file (htpasswd format, bcrypt hashes: `vouch user add` or
    /// `htpasswd -B` write it; reloaded on SIGHUP). With it, clients need a
    /// user's credentials (HTTP basic auth) for what they do; see --access.
    /// Without it vouch runs in open mode: anyone who can reach it may push,
    /// only loopback clients are admins, and nobody reads quarantined content.
    #[arg(long, value_name = "FILE", env = "VOUCH_USERS")]
    pub users: Option<PathBuf>,
    /// Access file (TOML, spec/access.md; `vouch user grant` writes it;
    /// reloaded on SIGHUP): which user may read, push, delete or administer
    /// which repositories. Without it, every user may read, push and delete
    /// everywhere, and nobody is an admin.
    #[arg(long, value_name = "FILE", env = "VOUCH_ACCESS")]
    pub access: Option<PathBuf>,
    /// With --users: require credentials for pulls too.
    #[arg(long)]
    pub no_anonymous_pull: bool,
    /// Allow serving without authentication on a non-loopback address.
    #[arg(long)]
    pub allow_open_network: bool,
    /// Allow passwords over plain HTTP on a non-loopback address. Without
    /// it, --users on a non-loopback address needs --tls-cert.
    #[arg(long)]
    pub allow_insecure_auth: bool,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    /// Without it vouch serves plain HTTP, meant for loopback.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Refuse DELETE of blobs and manifests (405 UNSUPPORTED).
    #[arg(long)]
    pub no_delete: bool,
    /// Serve Prometheus metrics on this address instead of at /metrics on
    /// --listen (where they need the rights a pull needs).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<SocketAddr>,
    /// Largest manifest accepted, in bytes (413 above). At least 4 MiB.
    #[arg(long, value_name = "BYTES", default_value_t = 8 << 20)]
    pub max_manifest_bytes: u64,
    /// Manifest bodies held in memory at once by all pushes, in bytes; a
    /// push waits for room before reading its body.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
    pub manifest_memory: u64,
    /// Largest blob accepted, in bytes (413 above).
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 30)]
    pub max_blob_bytes: u64,
    /// Requests one client address may have in flight; more get 429
    /// TOOMANYREQUESTS with Retry-After.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_requests_per_client: u32,
    /// Connections open at once; beyond it, new ones wait to be accepted.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_connections: usize,
    /// Connections one client address may have open; more are closed.
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub max_connections_per_client: usize,
    /// Seconds a client has to send a request's headers (and to finish a
    /// TLS handshake, and between requests on a kept-alive connection).
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    pub header_timeout: u64,
    /// Seconds a connection may go without a byte moving either way.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub idle_timeout: u64,
    /// Threads that serve reads (GET and HEAD), each a single-threaded
    /// runtime accepting its own share of the connections; every other
    /// request (pushes, admission) runs on the main runtime. 0 serves
    /// everything on the main runtime. Default: one per core when the
    /// metadata and blobs are local (no --database, no --storage), else 0:
    /// a remote store's client blocks or spawns on the thread it is called
    /// from.
    #[arg(long, value_name = "N")]
    pub reader_threads: Option<usize>,
    /// Upload sessions one client (user, or address) may have open.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_upload_sessions_per_client: u32,
    /// Upload sessions open at once in all.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_upload_sessions: u32,
    /// Bytes one client's open upload sessions may hold.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 30)]
    pub max_upload_bytes_per_client: u64,
    /// Bytes all open upload sessions may hold.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 30)]
    pub max_upload_bytes: u64,
    /// Upload sessions idle for this many seconds are ended and their data
    /// removed (checked every few minutes).
    #[arg(long, value_name = "SECONDS", default_value_t = 24 * 3600)]
    pub upload_ttl: u64,
    /// The least grace period `POST /admin/gc?grace=` accepts, in seconds:
    /// younger blobs are never collected, so pushes in flight keep theirs.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub min_gc_grace: u64,
    /// On SIGTERM or Ctrl-C, wait this long for requests in flight before
    /// exiting anyway (upload sessions are durable and can be resumed).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub shutdown_timeout: u64,
    /// Re-evaluate every stored image, admitted ones too, this often
    /// (`30m`, `6h`, `1d`): an image that no longer complies (its
    /// `max_age` passed, its evidence was removed) is taken back and one
    /// that now complies is admitted, each change a logged decision. Off
    /// unless given; `POST /admin/reevaluate?all=true` does the same once.
    #[arg(long, value_name = "DURATION", value_parser = parse_every)]
    pub reevaluate_every: Option<u64>,
    /// A witness to ask for cosignatures (c2sp.org/tlog-witness):
    /// `NAME=URL+VKEY`, the URL its submission prefix and VKEY its
    /// cosignature/v1 key (what `vouch witness` prints). Repeatable. Every
    /// new checkpoint is offered to each, and /ledger/checkpoint serves the
    /// newest one cosigned by --witness-threshold of them (spec/witness.md).
    #[arg(long = "witness", value_name = "NAME=URL+VKEY")]
    pub witnesses: Vec<vouch::witnessing::WitnessSpec>,
    /// How many of the --witness cosignatures a checkpoint needs before it
    /// is published. Default: all of them.
    #[arg(long, value_name = "K")]
    pub witness_threshold: Option<usize>,
}

/// `--reevaluate-every`: a duration as policies write them (`6h`).
fn parse_every(s: &str) -> Result<u64, String> {
    let secs = vouch::policy::image::parse_duration(s)?;
    if secs > 366 * 86_400 {
        return Err(format!("{s:?}: at most a year (366d)"));
    }
    Ok(secs)
}

/// The `--config` file. Every key is optional.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data: Option<PathBuf>,
    storage: Option<String>,
    database: Option<String>,
    origin: Option<String>,
    users: Option<PathBuf>,
    access: Option<PathBuf>,
    anonymous_pull: Option<bool>,
    policy: Option<PathBuf>,
    registry_name: Option<String>,
    registry_names: Option<Vec<String>>,
    no_countersign: Option<bool>,
    allow_open_network: Option<bool>,
    allow_insecure_auth: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    no_delete: Option<bool>,
    metrics_listen: Option<SocketAddr>,
    max_manifest_bytes: Option<u64>,
    manifest_memory: Option<u64>,
    max_blob_bytes: Option<u64>,
    max_requests_per_client: Option<u32>,
    max_connections: Option<usize>,
    max_connections_per_client: Option<usize>,
    header_timeout: Option<u64>,
    idle_timeout: Option<u64>,
    reader_threads: Option<usize>,
    max_upload_sessions_per_client: Option<u32>,
    max_upload_sessions: Option<u32>,
    max_upload_bytes_per_client: Option<u64>,
    max_upload_bytes: Option<u64>,
    upload_ttl: Option<u64>,
    min_gc_grace: Option<u64>,
    shutdown_timeout: Option<u64>,
    reevaluate_every: Option<String>,
    witnesses: Option<Vec<String>>,
    witness_threshold: Option<usize>,
}

impl ServeArgs {
    /// Fills every setting not given on the command line or in the
    /// environment from the config file, then checks the result.
    pub fn merge_config(mut self, matches: &clap::ArgMatches) -> Result<ServeArgs, Box<dyn std::error::Error>> {
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path).map_err(|e| format!("config file {}: {e}", path.display()))?;
            let file: FileConfig = toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
            let unset = |id: &str| {
                !matches!(
                    matches.value_source(id),
                    Some(clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable)
                )
            };
            macro_rules! take {
                ($($field:ident),*) => {$(
                    if let (true, Some(v)) = (unset(stringify!($field)), file.$field) {
                        self.$field = v;
                    }
                )*};
            }
            macro_rules! take_some {
                ($($field:ident),*) => {$(
                    if let (true, Some(v)) = (unset(stringify!($field)), file.$field) {
                        self.$field = Some(v);
                    }
                )*};
            }
            take!(
                listen,
                data,
                no_countersign,
                allow_open_network,
                allow_insecure_auth,
                no_delete,
                max_manifest_bytes,
                manifest_memory,
                max_blob_bytes,
                max_requests_per_client,
                max_connections,
                max_connections_per_client,
                header_timeout,
                idle_timeout,
                max_upload_sessions_per_client,
                max_upload_sessions,
                max_upload_bytes_per_client,
                max_upload_bytes,
                upload_ttl,
                min_gc_grace,
                shutdown_timeout
            );
            take_some!(
                reader_threads,
                storage,
                database,
                origin,
                users,
                access,
                policy,
                tls_cert,
                tls_key,
                metrics_listen,
                witness_threshold
            );
            if unset("witnesses") {
                for w in file.witnesses.into_iter().flatten() {
                    self.witnesses.push(
                        w.parse()
                            .map_err(|e| format!("config file {}: witnesses: {e}", path.display()))?,
                    );
                }
            }
            if unset("registry_name") {
                self.registry_name.extend(
                    file.registry_name
                        .into_iter()
                        .chain(file.registry_names.into_iter().flatten()),
                );
            }
            if let (true, Some(every)) = (unset("reevaluate_every"), &file.reevaluate_every) {
                self.reevaluate_every = Some(
                    parse_every(every).map_err(|e| format!("config file {}: reevaluate_every: {e}", path.display()))?,
                );
            }
            if let (true, Some(anonymous)) = (unset("no_anonymous_pull"), file.anonymous_pull) {
                self.no_anonymous_pull = !anonymous;
            }
        }
        self.check()?;
        Ok(self)
    }

    fn check(&self) -> Result<(), String> {
        let at_least = |name: &str, value: u64, min: u64| {
            if value < min {
                Err(format!("{name} must be at least {min}, not {value}"))
            } else {
                Ok(())
            }
        };
        at_least("max_manifest_bytes", self.max_manifest_bytes, 4 << 20)?;
        at_least("manifest_memory", self.manifest_memory, self.max_manifest_bytes)?;
        at_least("max_requests_per_client", self.max_requests_per_client.into(), 1)?;
        at_least("max_connections", self.max_connections as u64, 1)?;
        at_least("max_connections_per_client", self.max_connections_per_client as u64, 1)?;
        at_least("header_timeout", self.header_timeout, 1)?;
        at_least("idle_timeout", self.idle_timeout, 1)?;
        at_least(
            "max_upload_sessions_per_client",
            self.max_upload_sessions_per_client.into(),
            1,
        )?;
        at_least("max_upload_sessions", self.max_upload_sessions.into(), 1)?;
        if self.no_anonymous_pull && self.users.is_none() {
            return Err("refusing anonymous pulls needs a users file (--users)".into());
        }
        if self.access.is_some() && self.users.is_none() {
            return Err("an access file (--access) needs a users file (--users)".into());
        }
        let keys: Vec<_> = self.witnesses.iter().map(|w| w.key.clone()).collect();
        if !keys.is_empty() {
            vouch_ledger::cosignature::WitnessPolicy::new(keys, 1).map_err(|e| format!("--witness: {e}"))?;
        }
        if let Some(k) = self.witness_threshold {
            if k == 0 || k > self.witnesses.len() {
                return Err(format!(
                    "--witness-threshold {k}: give between 1 and the number of --witness ({})",
                    self.witnesses.len()
                ));
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("--tls-cert and --tls-key go together".into());
        }
        Ok(())
    }
}
