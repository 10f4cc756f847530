//! `vouch witness`: a witness for any C2SP transparency log,
//! c2sp.org/tlog-witness, cosigning with c2sp.org/tlog-cosignature
//! (`cosignature/v1`, Ed25519).
//!
//! For each log it trusts (by the log's note verifier key, whose name is the
//! log's origin) it remembers the latest checkpoint it cosigned, and cosigns
//! a new one only with a consistency proof from it. The decision is
//! [`vouch_ledger::witness::decide`] (its signature checks before the
//! lock, its growth checks under it); this module adds HTTP, the durable
//! record ([`state`]) and a rate limit per log.
//!
//! Commit point: the new record is written with a synced RocksDB write
//! before the cosignature is computed or sent, under one lock with the check
//! (§"add-checkpoint": "checking the old size ... and persisting the new
//! checkpoint must be performed atomically"). A crash before the sync
//! leaves the old record and no cosignature went out; a crash after it
//! leaves the new record, which a cosignature may or may not have reached:
//! either way no later request can get a checkpoint inconsistent with one
//! that was cosigned.

pub mod state;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use vouch_ledger::cosignature::Cosigner;
use vouch_ledger::witness::{authenticate, check_growth, AddCheckpoint, Refusal, MAX_REQUEST_BYTES, SIZE_CONTENT_TYPE};
use vouch_ledger::VerifierKey;

/// Where the witness's private key is kept, in its data directory.
pub const KEY_FILE: &str = "witness.key";
/// Where its public (cosigner) key is written, for log operators.
pub const VKEY_FILE: &str = "witness.vkey";

/// A running witness's shared state.
#[derive(Debug)]
pub struct Witness {
    cosigner: Cosigner,
    logs: Vec<VerifierKey>,
    state: state::WitnessState,
    limiter: Mutex<RateLimiter>,
}

impl Witness {
    /// A witness with this key, trusting these logs, remembering in `state`.
    pub fn new(cosigner: Cosigner, logs: Vec<VerifierKey>, state: state::WitnessState, per_second: u32) -> Self {
        Self {
            cosigner,
            logs,
            state,
            limiter: Mutex::new(RateLimiter::new(per_second)),
        }
    }

    /// The witness's public key.
    pub fn vkey(&self) -> String {
        self.cosigner.verifier().to_string()
    }

    /// Handles one `add-checkpoint` body: the spec's status, content type
    /// and body. Refusals change nothing. The checks that need no record
    /// (a trusted log's signature) come first, outside the lock, and only
    /// then is the log's rate limit charged: unsigned requests naming a log
    /// cannot spend its budget.
    pub fn add_checkpoint(&self, body: &[u8], now: Instant, unix_time: u64) -> (u16, &'static str, Vec<u8>) {
        let text = "text/plain; charset=utf-8";
        let refused = |e: Refusal| match e {
            Refusal::SizeMismatch { latest, .. } => (409, SIZE_CONTENT_TYPE, format!("{latest}\n").into_bytes()),
            e => (e.status(), text, format!("{e}\n").into_bytes()),
        };
        let req = match AddCheckpoint::parse(body) {
            Ok(r) => r,
            Err(e) => return refused(e),
        };
        let (signed_text, checkpoint) = match authenticate(&req, &self.logs) {
            Ok(ok) => ok,
            Err(e) => return refused(e),
        };
        if !self.limiter.lock().expect("limiter").allow(&checkpoint.origin, now) {
            let msg = format!("too many requests for log {:?}: retry shortly\n", checkpoint.origin);
            return (429, text, msg.into_bytes());
        }
        let result = self.state.update(&checkpoint.origin, |latest| {
            check_growth(&req, &checkpoint, latest).map(|record| (record, ()))
        });
        match result {
            // Cosign the signed text exactly as received.
            Ok(Ok(())) => {
                let line = self.cosigner.cosign(&signed_text, unix_time).to_line();
                (200, text, format!("{line}\n").into_bytes())
            }
            Ok(Err(e)) => refused(e),
            Err(e) => {
                tracing::error!("witness state: {e}");
                (
                    500,
                    text,
                    b"the witness could not record its state; nothing was cosigned\n".to_vec(),
                )
            }
        }
    }
}

/// A token bucket per log: `per_second` requests a second, bursts of twice
/// that.
#[derive(Debug)]
struct RateLimiter {
    per_second: f64,
    buckets: HashMap<String, (f64, Instant)>,
}

impl RateLimiter {
    fn new(per_second: u32) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            buckets: HashMap::new(),
        }
    }

    fn allow(&mut self, log: &str, now: Instant) -> bool {
        let burst = self.per_second * 2.0;
        let (tokens, at) = self.buckets.entry(log.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

type App = Arc<Witness>;

async fn add_checkpoint(State(w): State<App>, body: Bytes) -> Response {
    let unix_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // The state write is a synced RocksDB write: off the async threads.
    let (status, content_type, body) =
        match tokio::task::spawn_blocking(move || w.add_checkpoint(&body, Instant::now(), unix_time)).await {
            Ok(r) => r,
            Err(_) => (500, "text/plain", b"internal error\n".to_vec()),
        };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    resp
}

async fn index(State(w): State<App>) -> String {
    let logs: Vec<String> = w.logs.iter().map(|k| format!("  {k}\n")).collect();
    format!(
        "vouch witness (c2sp.org/tlog-witness)\nkey: {}\nPOST /add-checkpoint\nlogs:\n{}",
        w.vkey(),
        logs.concat()
    )
}

/// The witness's routes: `POST /add-checkpoint` and `GET /` (its key and
/// the logs it witnesses).
pub fn router(w: Arc<Witness>) -> axum::Router {
    axum::Router::new()
        .route("/add-checkpoint", axum::routing::post(add_checkpoint))
        .route("/", axum::routing::get(index))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(w)
}

/// Loads the witness key from `dir`, or creates one named `name`.
pub fn load_or_create_key(dir: &std::path::Path, name: Option<&str>) -> Result<(Cosigner, bool), String> {
    let path = dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let c = Cosigner::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            if let Some(n) = name.filter(|n| *n != c.verifier().name()) {
                return Err(format!(
                    "{} holds the key of witness {:?}, not {n:?}: a witness keeps its name",
                    path.display(),
                    c.verifier().name()
                ));
            }
            Ok((c, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let name = name.ok_or_else(|| {
                format!(
                    "{} does not exist: give --name (e.g. witness.example.com/w1) to create the witness key",
                    path.display()
                )
            })?;
            let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
            let c = Cosigner::new(name, key).map_err(|e| format!("--name {name:?}: {e}"))?;
            crate::registry::auth::write_private(&path, c.to_private_text().as_bytes())
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            std::fs::write(dir.join(VKEY_FILE), format!("{}\n", c.verifier()))
                .map_err(|e| format!("writing {}: {e}", dir.join(VKEY_FILE).display()))?;
            Ok((c, true))
        }
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

/// Options of `vouch witness`.
#[derive(Debug, clap::Args)]
pub struct WitnessArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7380", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// The witness's data directory: its key (`witness.key`, created on
    /// first start) and its record of each log (a RocksDB database).
    #[arg(long, default_value = "vouch-witness", value_name = "DIR")]
    pub data: PathBuf,
    /// The witness's name, for a new key: a schema-less URL such as
    /// `witness.example.com/w1`. Needed on first start only.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// A log to witness: its note verifier key (`<origin>+<id>+<key>`, as in
    /// a vouch data directory's ledger.vkey), or a file holding one.
    /// Repeatable; requests for other logs are answered 404.
    #[arg(long = "log", value_name = "VKEY|FILE", required = true)]
    pub logs: Vec<String>,
    /// Requests a second accepted per log (bursts of twice that); beyond it
    /// the answer is 429 with Retry-After.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub rate_per_log: u32,
}

/// Runs `vouch witness` until interrupted.
pub fn run(args: WitnessArgs) -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("VOUCH_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let mut logs = Vec::new();
    for text in &args.logs {
        let text = std::fs::read_to_string(text).unwrap_or_else(|_| text.clone());
        logs.push(VerifierKey::parse(text.trim()).map_err(|e| format!("--log {}: {e}", text.trim()))?);
    }
    crate::data_dir::private_dir(&args.data)?;
    let (cosigner, created) = load_or_create_key(&args.data, args.name.as_deref())?;
    if created {
        eprintln!("created a new witness key in {}", args.data.join(KEY_FILE).display());
    }
    let state = state::WitnessState::open(&args.data.join("state"))?;
    let witness = Arc::new(Witness::new(cosigner, logs, state, args.rate_per_log));
    let listener =
        std::net::TcpListener::bind(args.listen).map_err(|e| format!("listening on {}: {e}", args.listen))?;
    listener.set_nonblocking(true)?;
    // The key first, on stdout: log operators configure vouch serve with it.
    println!("{}", witness.vkey());
    for k in &witness.logs {
        eprintln!("witnessing {}", k.name());
    }
    eprintln!("listening on {}", listener.local_addr()?);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        // The registry's accept loop: bounded connections (per client too),
        // header and idle timeouts, so slow clients cannot hold it.
        crate::server::serve(
            listener,
            None,
            router(witness),
            crate::server::ConnLimits::default(),
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
            std::time::Duration::from_secs(5),
            0,
        )
        .await?;
        Ok::<(), std::io::Error>(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_rate_limit_refills_per_log() {
        let mut r = RateLimiter::new(2);
        let t0 = Instant::now();
        assert!((0..4).all(|_| r.allow("a", t0)));
        assert!(!r.allow("a", t0));
        assert!(r.allow("b", t0), "another log has its own bucket");
        assert!(r.allow("a", t0 + Duration::from_millis(600)));
    }
}
