//! `vouch serve`: the registry over HTTP. Everything given is checked
//! before anything is created on disk, so a bad flag or file leaves no
//! trace.

pub use crate::serve_args::ServeArgs;
use std::sync::Arc;
use std::time::Duration;
use vouch::admission::{Admission, Scope};
use vouch::data_dir::{default_origin, DataDir};
use vouch::registry::access::Access;
use vouch::registry::meta::{Meta, PostgresRows};
use vouch::registry::{app, blobs::BlobStore, AppState, Limits};
use vouch::server::{serve, tls_acceptor, ConnLimits};

type Error = Box<dyn std::error::Error>;

/// What the flags say, checked, before anything is opened.
struct Checked {
    access: Access,
    policy: vouch::policy::Policy,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

fn check(args: &ServeArgs) -> Result<Checked, Error> {
    let access = match &args.users {
        Some(path) => Access::load(path, args.access.as_deref(), !args.no_anonymous_pull)?,
        None => Access::open(),
    };
    let loopback = args.listen.ip().is_loopback();
    if access.is_open_mode() && !loopback && !args.allow_open_network {
        return Err(format!(
            "refusing to listen on {} without authentication: anyone who can reach it could push. \
             Listen on 127.0.0.1, give --users, or pass --allow-open-network if that is what you want",
            args.listen
        )
        .into());
    }
    if !access.is_open_mode() && !loopback && args.tls_cert.is_none() && !args.allow_insecure_auth {
        return Err(format!(
            "refusing to take passwords over plain HTTP on {}: they would cross the network in clear. \
             Give --tls-cert and --tls-key, or pass --allow-insecure-auth if a TLS proxy is in front",
            args.listen
        )
        .into());
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
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
        _ => None,
    };
    Ok(Checked { access, policy, tls })
}

fn limits(args: &ServeArgs) -> Limits {
    Limits {
        max_manifest_bytes: args.max_manifest_bytes,
        max_blob_bytes: args.max_blob_bytes,
        max_requests_per_client: args.max_requests_per_client,
        deletes: !args.no_delete,
        manifest_memory: args.manifest_memory,
        max_upload_sessions_per_client: args.max_upload_sessions_per_client,
        max_upload_sessions: args.max_upload_sessions,
        max_upload_bytes_per_client: args.max_upload_bytes_per_client,
        max_upload_bytes: args.max_upload_bytes,
        min_gc_grace: args.min_gc_grace,
        metrics_here: args.metrics_listen.is_none(),
    }
}

pub fn run(args: ServeArgs) -> Result<(), Error> {
    // Log lines (one per request, among others) are written to stderr by a
    // thread of their own, buffered and flushed whenever it has caught up:
    // a request never waits on a write to the terminal or a pipe. Not lossy:
    // past 128k lines queued, logging waits. Flushed when `run` returns.
    let (writer, _flush_on_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("vouch-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("VOUCH_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let Checked { access, policy, tls } = check(&args)?;
    let listener =
        std::net::TcpListener::bind(args.listen).map_err(|e| format!("listening on {}: {e}", args.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let metrics_listener = match args.metrics_listen {
        Some(m) => {
            let l = std::net::TcpListener::bind(m).map_err(|e| format!("--metrics-listen {m}: {e}"))?;
            l.set_nonblocking(true)?;
            Some(l)
        }
        None => None,
    };

    // From here on, the data directory.
    let dir = DataDir::new(&args.data);
    let opened = dir.open_ledger(&args.origin.clone().unwrap_or_else(default_origin))?;
    if opened.key_created {
        eprintln!("created a new log signing key in {}", dir.key_path().display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let Stores { meta, ledger } = open_stores(&dir, &opened, args.database.as_deref())?;
    let opened = vouch::data_dir::Opened { ledger, ..opened };
    let indexed = meta.backfill_refs(|r| {
        vouch::registry::manifest::validate(&r.media_type, &r.bytes)
            .map(|refs| refs.all())
            .unwrap_or_default()
    })?;
    if indexed > 0 {
        eprintln!("indexed the references of {indexed} stored manifest(s)");
    }
    let admission = runtime.block_on(Admission::load(policy, &opened.ledger, &meta))?;
    let admission = match meta.database() {
        Some(pg) => admission.with_shared_locks(pg),
        None => admission,
    };
    eprintln!(
        "policy {:?} ({}) in force, logged at ledger entry {}",
        admission.policy.name, admission.policy_digest, admission.policy_index
    );
    let admission = admission.with_revocation_saved_in(&dir.root().join(vouch::revocation::SAVED_DIR));
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
    let names = if args.registry_name.is_empty() {
        vec![addr.to_string()]
    } else {
        args.registry_name.clone()
    };
    let admission = Arc::new(admission.with_registry_names(&names));
    let policy_digest = admission.policy_digest.clone();
    let blobs = runtime.block_on(open_blobs(&dir, args.storage.as_deref(), &meta))?;
    eprintln!("blobs and upload sessions in {}", blobs.describe());
    let mut state = AppState::new(blobs, meta, opened.ledger.clone(), limits(&args));
    state.access = access;
    state.gate = admission.clone();
    let cosigned_file = dir.root().join(vouch::witnessing::COSIGNED_FILE);
    if !args.witnesses.is_empty() {
        state.published = Arc::new(vouch::witnessing::Published::load(
            cosigned_file,
            &opened.ledger,
            &args.witnesses,
            args.witness_threshold.unwrap_or(args.witnesses.len()),
        ));
    } else if cosigned_file.exists() {
        // Served without witnesses, the newest checkpoint is what readers
        // saw: an old cosigned one must not be served again later.
        std::fs::remove_file(&cosigned_file)?;
        eprintln!("no --witness: removed {}", cosigned_file.display());
    }
    let sessions = state.meta.uploads()?;
    let mut found = Vec::new();
    for (id, record) in sessions {
        let size = runtime.block_on(state.blobs.upload_size(&id))?.unwrap_or(0);
        found.push((id, record.owner, size));
    }
    state.uploads.rebuild(found);
    let state = Arc::new(state);

    // Before serving: manifests stored by an earlier version are classified
    // once; a new policy re-evaluates every pending and denied image
    // (admitted ones stay admitted: POST /admin/reevaluate?all=true revisits
    // those); any start decides images a crash left pending. No image can
    // stop the start: failures are reported, and the marker is set only
    // when all were decided, so a later start tries them again.
    let upgraded = runtime.block_on(admission.upgrade_records(&state))?;
    if upgraded > 0 {
        eprintln!("classified {upgraded} manifest(s) stored by an earlier version");
    }
    let new_policy = state.meta.evaluated_policy()?.as_deref() != Some(policy_digest.as_str());
    let scope = if new_policy {
        eprintln!("new policy: re-evaluating pending and denied images...");
        Scope::Quarantined
    } else {
        Scope::Pending
    };
    let report = runtime.block_on(admission.reevaluate(&state, scope));
    if new_policy || report.evaluated > 0 || report.failed > 0 {
        eprintln!(
            "re-evaluated {} image(s): {} admitted, {} denied, {} verdict(s) changed",
            report.evaluated, report.admitted, report.denied, report.changed
        );
    }
    if report.failed > 0 {
        eprintln!(
            "WARNING: {} image(s) could not be re-evaluated and keep their state: {}",
            report.failed,
            report.failures.join("; ")
        );
    } else {
        state.meta.set_evaluated_policy(&policy_digest)?;
    }
    let conn_limits = ConnLimits {
        max_connections: args.max_connections,
        max_per_client: args.max_connections_per_client,
        header_timeout: Duration::from_secs(args.header_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
    };
    let drain = Duration::from_secs(args.shutdown_timeout);
    let readers = args
        .reader_threads
        .unwrap_or_else(|| match (&args.storage, &args.database) {
            (None, None) => std::thread::available_parallelism().map_or(1, |n| n.get()),
            _ => 0,
        });
    runtime.block_on(async move {
        match state.access.users() {
            None => eprintln!(
                "WARNING: open mode: no users file (--users), so anyone who can reach {addr} may push; \
                 admin endpoints answer only on loopback"
            ),
            Some(u) => eprintln!(
                "authentication: {} user(s); anonymous pull {}{}",
                u.len(),
                if state.access.anonymous_pull() {
                    "allowed"
                } else {
                    "refused"
                },
                if args.access.is_none() {
                    "; no access file (--access): every user may read, push and delete, nobody is an admin"
                } else {
                    ""
                }
            ),
        }
        if !args.witnesses.is_empty() {
            let k = args.witness_threshold.unwrap_or(args.witnesses.len());
            eprintln!(
                "publishing checkpoints cosigned by {k} of {} witness(es): {}",
                args.witnesses.len(),
                args.witnesses
                    .iter()
                    .map(|w| w.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            vouch::witnessing::start(state.ledger.clone(), args.witnesses.clone(), k, state.published.clone());
        }
        spawn_upload_sweeper(state.clone(), Duration::from_secs(args.upload_ttl));
        spawn_bundle_attacher(state.clone(), admission.clone());
        spawn_reloader(state.clone());
        if let BlobStore::Objects(objects) = &state.blobs {
            eprintln!(
                "publishing the ledger (tlog-tiles) to {} under ledger/",
                objects.describe()
            );
            let publish = vouch::registry::blobs::ledger_tiles::keep_published(objects.clone(), state.ledger.clone());
            tokio::spawn(publish);
        }
        if let Some(every) = args.reevaluate_every {
            eprintln!(
                "re-evaluating every image every {}",
                vouch::policy::image::show_duration(every)
            );
            spawn_reevaluator(state.clone(), admission.clone(), Duration::from_secs(every));
        }
        if let Some(l) = metrics_listener {
            let l = tokio::net::TcpListener::from_std(l)?;
            eprintln!("metrics on http://{}/metrics", l.local_addr()?);
            let metrics = vouch::registry::metrics_app(state.clone());
            tokio::spawn(serve(
                l,
                None,
                metrics,
                ConnLimits::default(),
                std::future::pending(),
                drain,
                0,
            ));
        }
        println!("ledger verifier key: {}", opened.ledger.verifier());
        println!("data directory: {}", dir.root().display());
        if tls.is_some() {
            eprintln!(
                "serving HTTPS with the certificate in {}",
                args.tls_cert.as_ref().expect("with tls").display()
            );
        }
        println!("listening on {addr}");
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let drained = serve(
            listener,
            tls,
            app(state.clone()),
            conn_limits,
            shutdown_signal(),
            drain,
            readers,
        )
        .await?;
        if drained {
            eprintln!("vouch: shut down cleanly");
        } else {
            eprintln!("vouch: requests still in flight after {drain:?}; exiting (interrupted uploads can be resumed)");
        }
        Ok::<_, Error>(())
    })?;
    Ok(())
}

/// Ends idle upload sessions every quarter of the TTL (at least every second,
/// at most every 10 minutes).
fn spawn_upload_sweeper(state: Arc<AppState>, ttl: Duration) {
    let period = ttl.div_f64(4.0).clamp(Duration::from_secs(1), Duration::from_secs(600));
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
fn spawn_bundle_attacher(state: Arc<AppState>, admission: Arc<Admission>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(200));
        loop {
            every.tick().await;
            if let Err(e) = admission.attach_pending(&state).await {
                tracing::warn!(error = %e, "attaching admission bundles failed; will retry");
            }
        }
    });
}

/// Re-evaluates every stored image every `period` (`--reevaluate-every`):
/// time-bound rules (`max_age`) take images back as they age. The start
/// has just evaluated, so the first round is one period in.
fn spawn_reevaluator(state: Arc<AppState>, admission: Arc<Admission>, period: Duration) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let report = admission.reevaluate(&state, Scope::All).await;
            if report.changed > 0 || report.failed > 0 {
                tracing::info!(
                    evaluated = report.evaluated,
                    changed = report.changed,
                    failed = report.failed,
                    failures = ?report.failures,
                    "scheduled re-evaluation"
                );
            }
        }
    });
}

/// Reads the users and access files again on SIGHUP.
fn spawn_reloader(state: Arc<AppState>) {
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            match state.access.reload() {
                Ok((users, grants)) => {
                    eprintln!("vouch: reloaded the users ({users}) and access ({grants} grant(s)) files")
                }
                Err(e) => eprintln!("vouch: reloading failed, the files in force stay: {e}"),
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

/// Where the registry metadata and the ledger are.
struct Stores {
    meta: Meta,
    ledger: vouch_ledger::store::Ledger,
}

/// The registry metadata and the ledger: in this directory's RocksDB, or
/// in the `--database`. A directory that never served, started with
/// `--database`, keeps both there; one that served with its metadata
/// there before its ledger could be (or was moved by an older `vouch
/// migrate`) keeps its ledger here until `vouch migrate` moves it.
fn open_stores(
    dir: &DataDir,
    opened: &vouch::data_dir::Opened,
    database: Option<&str>,
) -> Result<Stores, Box<dyn std::error::Error>> {
    let local = Meta::new(opened.db.clone());
    let Some(url) = database else {
        dir.bind_database(None, || Ok(()))?;
        dir.bind_ledger_database(None, || Ok(()))?;
        let ledger = opened.ledger.clone();
        return Ok(Stores { meta: local, ledger });
    };
    let pg = Arc::new(vouch::registry::meta::Postgres::open(url)?);
    let identity = pg.identity();
    // The database records which registry (by its log key) it belongs to:
    // of two directories joining one empty database at once, one wins.
    let owner = opened.ledger.verifier().to_string();
    let claim = || match pg.claim(&owner) {
        Ok(None) => Ok(()),
        Ok(Some(other)) => Err(format!("the database belongs to another registry (log key {other})")),
        Err(e) => Err(e.to_string()),
    };
    let remote = Meta::postgres(pg.clone());
    let ledger_there = PostgresRows::exists(&pg)?;
    let in_use = !remote.is_empty()?;
    // A directory joins a database that holds metadata only as a replica:
    // with the same log key (the claim), and the registry's ledger in the
    // database, since two ledgers under one key would be a split view.
    let joinable = || {
        if !local.is_empty().map_err(|e| e.to_string())? {
            return Err("its RocksDB already holds registry metadata".into());
        }
        if in_use && !ledger_there {
            return Err(
                "the database already holds registry metadata whose ledger is not in it \
                (another registry's, or one whose ledger is still on its own disk: vouch migrate moves it)"
                    .into(),
            );
        }
        claim()
    };
    let first = dir.database()?.is_none();
    // The ledger's binding is written first: a crash before the metadata's
    // is bound finds an unbound directory that never served, and binds it.
    if first && dir.ledger_database()?.is_none() && opened.ledger.size() == 0 {
        dir.bind_ledger_database(Some(&identity), joinable)?;
    }
    dir.bind_database(Some(&identity), joinable)?;
    claim()?;
    eprintln!("registry metadata in {identity}");
    let ledger = match dir.ledger_database()? {
        Some(_) => {
            dir.bind_ledger_database(Some(&identity), || Ok(()))?;
            let rows = Arc::new(PostgresRows::new(pg.clone()));
            let ledger = vouch_ledger::store::Ledger::open_rows(rows, opened.signer.clone())?;
            eprintln!("ledger in {identity}, shared by every replica serving from it");
            ledger
        }
        None => opened.ledger.clone(),
    };
    if first && in_use {
        eprintln!("joined the registry in {identity} as a replica");
    }
    Ok(Stores { meta: remote, ledger })
}

/// The `reg_state` marker naming the bucket prefix of a registry whose
/// metadata is in a database.
const BLOB_STORAGE_MARKER: &str = "blob-storage";

/// The blob store `--storage` names (local files without it), checked to
/// be the one this data directory's blobs are in.
async fn open_blobs(
    dir: &DataDir,
    storage: Option<&str>,
    meta: &Meta,
) -> Result<BlobStore, Box<dyn std::error::Error>> {
    let blobs = match storage {
        None => BlobStore::files(dir.root())?,
        Some(url) => BlobStore::object_store(url).await?,
    };
    // The bucket prefix of a registry whose metadata is in a database is
    // recorded there, so that a replica joins the same one.
    let recorded = meta.marker(BLOB_STORAGE_MARKER)?;
    // A bucket prefix holding blobs belongs to another registry (or an
    // earlier one): joining it would let either's garbage collection
    // delete the other's blobs. A replica joins its registry's.
    let in_use = match (&blobs, dir.blob_storage()?) {
        (BlobStore::Objects(_), None) => !blobs.all_blobs().await?.is_empty(),
        _ => false,
    };
    let identity = blobs.identity();
    // The database names its registry's bucket: a directory joining the
    // registry (a replica) uses that one, and only that one.
    if let Some(r) = recorded.as_ref().filter(|r| Some(*r) != identity.as_ref()) {
        if dir.blob_storage()?.is_none() {
            return Err(format!(
                "the registry in this database keeps its blobs in {r}: start with --storage naming it"
            )
            .into());
        }
    }
    dir.bind_blob_storage(identity.as_deref(), || match (in_use, &recorded) {
        (true, Some(r)) if Some(r) == identity.as_ref() => Ok(()),
        (true, _) => Err("the bucket prefix already holds blobs".into()),
        (false, _) => Ok(()),
    })?;
    if meta.database().is_some() && recorded.is_none() {
        if let Some(id) = &identity {
            meta.set_marker(BLOB_STORAGE_MARKER, id)?;
        }
    }
    Ok(blobs)
}
