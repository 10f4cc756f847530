//! Witness cosigning latency, over real parts: a RocksDB ledger with fsync'd
//! commits, two `vouch witness` servers (their RocksDB records synced
//! before each cosignature) on loopback HTTP, and the registry's witnessing
//! rounds (src/witnessing.rs), all in this process on the same two cores:
//!
//!     cargo bench --bench witness
//!
//! 1. `idle`: one entry at a time (WIT_ENTRIES, default 300): the time from
//!    the append's commit (its checkpoint published) to a checkpoint
//!    covering it cosigned by both witnesses and published.
//! 2. `load`: WIT_APPENDERS tasks (default 8) append as fast as the ledger
//!    commits for WIT_SECS (default 5); the same latency, sampled for every
//!    entry, and the appends' own latency with and without witnesses (the
//!    witnesses must not slow pushes down).

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};
use vouch::witnessing::{Published, WitnessSpec};
use vouch_ledger::cosignature::Cosigner;
use vouch_ledger::store::Ledger;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn show(what: &str, mut d: Vec<Duration>) {
    d.sort();
    println!(
        "{what}: n={} p50={:.2?} p99={:.2?} max={:.2?}",
        d.len(),
        pct(&d, 0.5),
        pct(&d, 0.99),
        d[d.len() - 1]
    );
}

/// Starts a witness for `ledger`'s log in `rt`; its `--witness` spec.
fn witness(rt: &tokio::runtime::Runtime, dir: &std::path::Path, n: u8, ledger: &Ledger) -> WitnessSpec {
    let cosigner = Cosigner::new(
        &format!("bench.local/w{n}"),
        ed25519_dalek::SigningKey::from_bytes(&[n; 32]),
    )
    .unwrap();
    let key = cosigner.verifier().to_string();
    let state = vouch::witness::state::WitnessState::open(&dir.join(format!("w{n}"))).unwrap();
    let w = Arc::new(vouch::witness::Witness::new(
        cosigner,
        vec![ledger.verifier().clone()],
        state,
        1_000_000,
    ));
    let addr = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, vouch::witness::router(w)).await });
        addr
    });
    format!("w{n}=http://{addr}+{key}").parse().unwrap()
}

/// Waits until `published` covers `size` entries; the time it took.
fn wait_cosigned(published: &Published, size: u64, since: Instant) -> Duration {
    loop {
        if published.get().is_some_and(|c| c.size >= size) {
            return since.elapsed();
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = common::runtime();
    let tmp = tempfile::tempdir_in(common::bench_dir()).unwrap();
    let entries = env("WIT_ENTRIES", 300);
    let appenders = env("WIT_APPENDERS", 8);
    let secs = env("WIT_SECS", 5);

    // Appends without witnesses first: the baseline for "does not slow pushes".
    let bare = Ledger::open(&tmp.path().join("bare"), common::signer()).unwrap();
    let (_, bare_latency) = load(&rt, &bare, appenders, secs, None);

    let ledger = Ledger::open(&tmp.path().join("log"), common::signer()).unwrap();
    let specs = vec![
        witness(&rt, tmp.path(), 1, &ledger),
        witness(&rt, tmp.path(), 2, &ledger),
    ];
    let published = Arc::new(Published::none());
    {
        let _guard = rt.enter();
        vouch::witnessing::start(ledger.clone(), specs, 2, published.clone());
    }
    // Idle: one entry at a time.
    let mut idle = Vec::new();
    for i in 0..entries {
        let index = ledger.append_blocking(format!("idle {i}").into_bytes()).unwrap();
        idle.push(wait_cosigned(&published, index + 1, Instant::now()));
    }
    show("idle: checkpoint to cosigned by 2 witnesses", idle);

    let (cosigned, with_witnesses) = load(&rt, &ledger, appenders, secs, Some(&published));
    show(
        &format!("load ({appenders} appenders): checkpoint to cosigned by 2 witnesses"),
        cosigned,
    );
    println!(
        "appends without witnesses: {} in {secs} s ({:.0}/s)",
        bare_latency.len(),
        bare_latency.len() as f64 / secs as f64
    );
    show("append latency without witnesses", bare_latency);
    println!(
        "appends with witnesses: {} in {secs} s ({:.0}/s)",
        with_witnesses.len(),
        with_witnesses.len() as f64 / secs as f64
    );
    show("append latency with witnesses", with_witnesses);
}

/// `appenders` tasks append for `secs`; returns, when `published` is given,
/// each entry's commit-to-cosigned time (measured by a watcher thread), and
/// every append's latency.
fn load(
    rt: &tokio::runtime::Runtime,
    ledger: &Ledger,
    appenders: u64,
    secs: u64,
    published: Option<&Arc<Published>>,
) -> (Vec<Duration>, Vec<Duration>) {
    let committed = Arc::new(std::sync::Mutex::new(Vec::<(u64, Instant)>::new()));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let watcher = published.map(|p| {
        let (p, committed) = (p.clone(), committed.clone());
        std::thread::spawn(move || {
            let mut out = Vec::new();
            loop {
                let pending: Vec<(u64, Instant)> = committed.lock().unwrap().split_off(0);
                let mut pending = pending.into_iter().peekable();
                if pending.peek().is_none() && Instant::now() > deadline + Duration::from_secs(2) {
                    return out;
                }
                for (index, at) in pending {
                    out.push(wait_cosigned(&p, index + 1, at));
                }
                std::thread::sleep(Duration::from_micros(100));
            }
        })
    });
    let tasks: Vec<_> = (0..appenders)
        .map(|t| {
            let (ledger, committed) = (ledger.clone(), committed.clone());
            rt.spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    let index = ledger.append(format!("load {t} {i}").into_bytes()).await.unwrap();
                    let done = Instant::now();
                    lat.push(done - t0);
                    committed.lock().unwrap().push((index, done));
                    i += 1;
                }
                lat
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(rt.block_on(t).unwrap());
    }
    let cosigned = watcher.map(|w| w.join().unwrap()).unwrap_or_default();
    (cosigned, latencies)
}
