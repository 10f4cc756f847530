//! `vouch serve`: the registry over HTTP.

use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use vouch::data_dir::{default_origin, DataDir, DEFAULT_DATA_DIR};
use vouch::registry::{app, auth::Users, blobs::BlobStore, meta::Meta, AppState, Limits};

/// Options of `vouch serve`. Each can also be set in the `--config` file
/// (same names, `_` for `-`); the command line and environment win over it.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file. Keys: listen, data, origin, users,
    /// anonymous_pull, max_manifest_bytes, max_blob_bytes,
    /// max_requests_per_client, upload_ttl, allow_open_network, no_delete, policy, tls_cert,
    /// tls_key, registry_name, no_countersign. Unknown keys
    /// are errors, reported with their line and column.
    #[arg(long, value_name = "FILE", env = "VOUCH_CONFIG")]
    config: Option<PathBuf>,
    /// Address and port to listen on. Port 0 picks a free port; the address
    /// actually bound is printed as `listening on <addr>`.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        default_value = "127.0.0.1:5000",
        env = "VOUCH_LISTEN"
    )]
    listen: SocketAddr,
    /// Data directory: RocksDB (db/), blobs (blobs/), upload sessions
    /// (uploads/), the log's signing key (ledger.key) and verifier key
    /// (ledger.vkey). Created on first start.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR, env = "VOUCH_DATA")]
    data: PathBuf,
    /// The ledger's origin, used only when a new log key is created on first
    /// start. Default: <hostname>/vouch.
    #[arg(long, value_name = "NAME")]
    origin: Option<String>,
    /// Largest manifest accepted, in bytes (413 above). At least 4 MiB.
    #[arg(long, value_name = "BYTES", default_value_t = 8 << 20, value_parser = clap::value_parser!(u64).range(4 << 20..))]
    max_manifest_bytes: u64,
    /// Largest blob accepted, in bytes (413 above).
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 30)]
    max_blob_bytes: u64,
    /// Requests one client address may have in flight; more get 429
    /// TOOMANYREQUESTS with Retry-After.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    max_requests_per_client: u32,
    /// Upload sessions idle for this many seconds are ended and their data
    /// removed (checked every few minutes).
    #[arg(long, value_name = "SECONDS", default_value_t = 24 * 3600)]
    upload_ttl: u64,
    /// Admission policy (TOML, spec/policy.md). Every image is evaluated
    /// when pushed and when a signature for it arrives; each decision is
    /// appended to the ledger before the push is answered, and images not
    /// admitted answer DENIED. spec/examples/policy-open.toml admits
    /// everything. Without --policy or --trust-key, nothing unsigned is
    /// admitted.
    #[arg(long, value_name = "FILE", env = "VOUCH_POLICY", conflicts_with = "trust_key")]
    policy: Option<PathBuf>,
    /// Shorthand for a policy requiring, on every repository, a valid
    /// signature by one of these keys (PEM public key files; repeatable).
    /// With neither --policy nor --trust-key, nothing unsigned is admitted.
    #[arg(long = "trust-key", value_name = "PEM")]
    trust_key: Vec<PathBuf>,
    /// Refuse DELETE of blobs and manifests (405 UNSUPPORTED).
    #[arg(long)]
    no_delete: bool,
    /// On SIGTERM or Ctrl-C, wait this long for requests in flight before
    /// exiting anyway (upload sessions are durable and can be resumed).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    shutdown_timeout: u64,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    /// Without it vouch serves plain HTTP, meant for loopback.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The registry's name as clients reach it (`host[:port]`): vouch's
    /// countersignatures identify images as `<name>/<repository>`, which
    /// verifiers such as podman's `signedIdentity` compare with the pulled
    /// reference. Default: the address listened on.
    #[arg(long, value_name = "HOST[:PORT]", env = "VOUCH_REGISTRY_NAME")]
    registry_name: Option<String>,
    /// Do not countersign admitted images. By default vouch signs every
    /// image it admits with its admission key (<data>/admission.key,
    /// created on first start; public half admission.pub), as a
    /// cosign-compatible signature naming the decision's ledger entry.
    #[arg(long)]
    no_countersign: bool,
    /// Users file (htpasswd format, bcrypt hashes: `vouch user add` or
    /// `htpasswd -B` write it). With it, pushes and deletes need a user's
    /// credentials (HTTP basic auth). Without it vouch runs in open mode:
    /// anyone who can reach it may push.
    #[arg(long, value_name = "FILE", env = "VOUCH_USERS")]
    users: Option<PathBuf>,
    /// With --users: require credentials for pulls too.
    #[arg(long)]
    no_anonymous_pull: bool,
    /// Allow serving without authentication on a non-loopback address.
    /// Without it, vouch refuses to start open to the network.
    #[arg(long)]
    allow_open_network: bool,
}

/// The `--config` file. Every key is optional.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data: Option<PathBuf>,
    origin: Option<String>,
    users: Option<PathBuf>,
    anonymous_pull: Option<bool>,
    max_manifest_bytes: Option<u64>,
    max_blob_bytes: Option<u64>,
    max_requests_per_client: Option<u32>,
    upload_ttl: Option<u64>,
    allow_open_network: Option<bool>,
    no_delete: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    policy: Option<PathBuf>,
    registry_name: Option<String>,
    no_countersign: Option<bool>,
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
                ($field:ident) => {
                    if let (true, Some(v)) = (unset(stringify!($field)), file.$field) {
                        self.$field = v;
                    }
                };
            }
            take!(listen);
            take!(data);
            take!(max_manifest_bytes);
            take!(max_blob_bytes);
            take!(max_requests_per_client);
            take!(upload_ttl);
            take!(allow_open_network);
            take!(no_delete);
            take!(no_countersign);
            if unset("origin") && file.origin.is_some() {
                self.origin = file.origin;
            }
            if unset("users") && file.users.is_some() {
                self.users = file.users;
            }
            if unset("policy") && file.policy.is_some() {
                self.policy = file.policy;
            }
            if unset("registry_name") && file.registry_name.is_some() {
                self.registry_name = file.registry_name;
            }
            if unset("tls_cert") && file.tls_cert.is_some() {
                self.tls_cert = file.tls_cert;
            }
            if unset("tls_key") && file.tls_key.is_some() {
                self.tls_key = file.tls_key;
            }
            if let (true, Some(anonymous)) = (unset("no_anonymous_pull"), file.anonymous_pull) {
                self.no_anonymous_pull = !anonymous;
            }
        }
        if self.max_manifest_bytes < 4 << 20 {
            return Err(format!(
                "max_manifest_bytes must be at least 4 MiB (4194304), not {}",
                self.max_manifest_bytes
            )
            .into());
        }
        if self.max_requests_per_client == 0 {
            return Err("max_requests_per_client must be at least 1".into());
        }
        if self.no_anonymous_pull && self.users.is_none() {
            return Err("refusing anonymous pulls needs a users file (--users)".into());
        }
        Ok(self)
    }
}

pub fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("VOUCH_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let users = match &args.users {
        Some(path) => Some(Users::load(path, !args.no_anonymous_pull)?),
        None => None,
    };
    if users.is_none() && !args.listen.ip().is_loopback() && !args.allow_open_network {
        return Err(format!(
            "refusing to listen on {} without authentication: anyone who can reach it could push. \
             Listen on 127.0.0.1, or pass --allow-open-network if that is what you want",
            args.listen
        )
        .into());
    }
    let dir = DataDir::new(&args.data);
    let opened = dir.open_ledger(&args.origin.unwrap_or_else(default_origin))?;
    if opened.key_created {
        eprintln!("created a new log signing key in {}", dir.key_path().display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let meta = Meta::new(opened.db.clone());
    let indexed = meta.backfill_refs(|r| {
        vouch::registry::manifest::validate(&r.media_type, &r.bytes)
            .map(|refs| refs.all())
            .unwrap_or_default()
    })?;
    if indexed > 0 {
        eprintln!("indexed the references of {indexed} stored manifest(s)");
    }
    let policy = match (&args.policy, args.trust_key.as_slice()) {
        (Some(path), _) => vouch::policy::Policy::load(path)?,
        (None, []) => vouch::policy::Policy::deny_all(),
        (None, keys) => {
            let mut trusted = Vec::new();
            for path in keys {
                let pem = std::fs::read_to_string(path).map_err(|e| format!("--trust-key {}: {e}", path.display()))?;
                let key = vouch::signature::PublicKey::from_pem(&pem)
                    .map_err(|e| format!("--trust-key {}: {e}", path.display()))?;
                trusted.push(key);
            }
            vouch::policy::Policy::trusting(trusted)
        }
    };
    let admission = runtime.block_on(vouch::admission::Admission::load(policy, &opened.ledger, &meta))?;
    eprintln!(
        "policy {:?} ({}) in force, logged at ledger entry {}",
        admission.policy.name, admission.policy_digest, admission.policy_index
    );
    let admission = if args.no_countersign {
        admission
    } else {
        let (countersigner, created) = vouch::countersign::Countersigner::load_or_create(dir.root())?;
        if created {
            eprintln!(
                "created a new admission key in {}",
                dir.root().join(vouch::countersign::KEY_FILE).display()
            );
        }
        eprintln!(
            "admitted images are countersigned with the key in {} ({})",
            dir.root().join(vouch::countersign::PUB_FILE).display(),
            countersigner.public_key().fingerprint()
        );
        admission.with_countersigner(countersigner)
    };
    let policy_digest = admission.policy_digest.clone();
    let admission = Some(admission);
    let state = Arc::new(AppState {
        blobs: BlobStore::open(dir.root())?,
        meta,
        limits: Limits {
            max_manifest_bytes: args.max_manifest_bytes,
            max_blob_bytes: args.max_blob_bytes,
            max_requests_per_client: args.max_requests_per_client,
            deletes: !args.no_delete,
        },
        users,
        admission,
        ledger: opened.ledger.clone(),
        metrics: Default::default(),
        gc_lock: Default::default(),
    });
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    let listener =
        std::net::TcpListener::bind(args.listen).map_err(|e| format!("listening on {}: {e}", args.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    if let Some(c) = state.admission.as_ref().and_then(|a| a.countersigner()) {
        c.set_registry(&args.registry_name.clone().unwrap_or_else(|| addr.to_string()));
    }
    // Before serving: a new policy re-evaluates every pending and denied
    // image (admitted ones stay admitted: POST /admin/reevaluate?all=true
    // revisits those); any start decides images a crash left pending. The
    // marker is set only once all are decided, so a crash part-way repeats
    // the run on restart.
    if let Some(admission) = &state.admission {
        let new_policy = state.meta.evaluated_policy()?.as_deref() != Some(policy_digest.as_str());
        let scope = if new_policy {
            eprintln!("new policy: re-evaluating pending and denied images...");
            vouch::admission::Scope::Quarantined
        } else {
            vouch::admission::Scope::Pending
        };
        let report = runtime.block_on(admission.reevaluate(&state, scope))?;
        if new_policy || report.evaluated > 0 {
            eprintln!(
                "re-evaluated {} image(s): {} admitted, {} denied",
                report.evaluated, report.admitted, report.denied
            );
        }
        state.meta.set_evaluated_policy(&policy_digest)?;
    }
    let drain = std::time::Duration::from_secs(args.shutdown_timeout);
    runtime.block_on(async move {
        match &state.users {
            None => eprintln!("WARNING: open mode: no users file (--users), so anyone who can reach {addr} may push."),
            Some(u) => eprintln!(
                "authentication: {} user(s); anonymous pull {}",
                u.len(),
                if u.anonymous_pull { "allowed" } else { "refused" }
            ),
        }
        spawn_upload_sweeper(state.clone(), std::time::Duration::from_secs(args.upload_ttl));
        spawn_bundle_attacher(state.clone());
        // Peer addresses reach the handlers, for the per-client limits.
        let service = app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        println!("ledger verifier key: {}", opened.ledger.verifier());
        println!("data directory: {}", dir.root().display());
        match tls {
            None => {
                println!("listening on {addr}");
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let (stopping, mut stopped) = tokio::sync::watch::channel(false);
                let server = axum::serve(listener, service).with_graceful_shutdown(async move {
                    shutdown_signal().await;
                    let _ = stopping.send(true);
                });
                let deadline = async {
                    let _ = stopped.wait_for(|s| *s).await;
                    tokio::time::sleep(drain).await;
                };
                tokio::select! {
                    r = server => r?,
                    () = deadline => eprintln!("vouch: requests still in flight after {drain:?}; exiting (interrupted uploads can be resumed)"),
                }
            }
            Some((cert, key)) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                    .await
                    .map_err(|e| format!("TLS certificate {} or key {}: {e}", cert.display(), key.display()))?;
                eprintln!("serving HTTPS with the certificate in {}", cert.display());
                println!("listening on {addr}");
                let handle = axum_server::Handle::new();
                let stopper = handle.clone();
                tokio::spawn(async move {
                    shutdown_signal().await;
                    stopper.graceful_shutdown(Some(drain));
                });
                axum_server::from_tcp_rustls(listener, config)?
                    .handle(handle)
                    .serve(service)
                    .await?;
            }
        }
        eprintln!("vouch: shut down cleanly");
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}

/// Ends idle upload sessions every quarter of the TTL (at least every second,
/// at most every 10 minutes).
fn spawn_upload_sweeper(state: Arc<AppState>, ttl: std::time::Duration) {
    let period = ttl
        .div_f64(4.0)
        .clamp(std::time::Duration::from_secs(1), std::time::Duration::from_secs(600));
    tokio::spawn(async move {
        let mut every = tokio::time::interval(period);
        loop {
            every.tick().await;
            match vouch::registry::sweep_uploads(&state, ttl).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "expired upload sessions removed"),
                Err(e) => tracing::warn!(error = %e, "upload sweep failed"),
            }
        }
    });
}

/// Attaches queued admission bundles to their images as referrers, a few
/// times a second (off the push path; the queue is durable).
fn spawn_bundle_attacher(state: Arc<AppState>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            every.tick().await;
            if let Some(admission) = &state.admission {
                if let Err(e) = admission.attach_pending(&state).await {
                    tracing::warn!(error = %e, "attaching admission bundles failed; will retry");
                }
            }
        }
    });
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!("vouch: shutting down: finishing requests in flight");
}
