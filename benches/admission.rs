//! Admission benchmarks, each over real parts (RocksDB, blob files, the
//! HTTP server on loopback, fsync on every acknowledged write):
//!
//!     cargo bench --bench admission
//!
//! 1. `verify`: cosign signature verifications per second on one core, for
//!    ECDSA P-256, Ed25519 and RSA 3072 keys (`verify_layers`, payload
//!    checks included), and keyless signatures (certificate chain, Rekor SET
//!    and signature; fixtures from tests/keyless_sign.py, so this section
//!    needs python3 with `cryptography`).
//! 2. `push`: manifest PUT latency under concurrent pushes (ADM_CLIENTS
//!    keep-alive clients, default 16, ADM_PUSHES each, default 300), p50 and
//!    p99, with no admission ("bare", what a plain registry does), with the
//!    open policy (the decision appended to the ledger before the answer),
//!    and with the open policy plus vouch's countersignature.
//! 3. `proofs`: inclusion proofs served over loopback HTTP for random
//!    indexes of a BENCH_LOG_SIZE-entry log (default 10,000,000, built once
//!    under target/bench-data/), by PROOF_CLIENTS keep-alive connections
//!    (default 64) for PROOF_SECS (default 10); requests per second and
//!    latency percentiles. The load generator runs in the same process, on
//!    the same two cores.
//! 4. `get`: manifest GET latency and rate (GET_CLIENTS keep-alive clients,
//!    default 16, for GET_SECS each, default 5), with no admission ("bare":
//!    nothing is checked) and with admission: an admitted image (its state
//!    read with the record) and its `.sig` manifest (evidence: the visibility
//!    check reads its subject's state), so the cost of deciding visibility,
//!    signature lookups included, is the difference.
//!
//! Pass a section name (`verify`, `push`, `proofs`) to run only that one.

mod common;
#[path = "common/http.rs"]
mod http;

use http::{latencies, percentile, serve, state, Conn};
use rand::{Rng as _, SeedableRng as _};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vouch::signature::{payload, verify_layers, PublicKey, SignatureLayer};
use vouch_ledger::entry::Digest;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let run = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    if run("verify") {
        verify_rate();
    }
    if run("push") {
        push_latency();
    }
    if run("proofs") {
        proof_serving();
    }
    if run("get") {
        get_latency();
    }
}

// ---- 1. signature verification --------------------------------------------

fn verify_rate() {
    use base64::Engine as _;
    let image = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
    let p = payload("bench.local/team/app", &image);
    let b64 = |s: &[u8]| Some(base64::engine::general_purpose::STANDARD.encode(s));
    let ec = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
    let ed = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    eprintln!("generating an RSA 3072 key...");
    let rsa_key = rsa::RsaPrivateKey::new(&mut rand::rngs::StdRng::seed_from_u64(1), 3072).unwrap();
    let rsa_signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(rsa_key.clone());
    let ec_sig: p256::ecdsa::Signature = p256::ecdsa::signature::Signer::sign(&ec, &p);
    let rsa_sig = rsa::signature::SignatureEncoding::to_vec(&rsa::signature::Signer::sign(&rsa_signer, &p));
    let cases: Vec<(&str, Option<String>, PublicKey)> = vec![
        (
            "ecdsa-p256",
            b64(ec_sig.to_der().as_bytes()),
            PublicKey::EcdsaP256(*ec.verifying_key()),
        ),
        (
            "ed25519",
            b64(&ed25519_dalek::Signer::sign(&ed, &p).to_bytes()),
            PublicKey::Ed25519(ed.verifying_key()),
        ),
        (
            "rsa-3072",
            b64(&rsa_sig),
            PublicKey::Rsa(Box::new(rsa::pkcs1v15::VerifyingKey::new(rsa_key.to_public_key()))),
        ),
    ];
    println!("verify: cosign signature layers verified per second, one core");
    for (name, signature, key) in cases {
        let layers = [SignatureLayer {
            signature,
            payload: p.clone(),
        }];
        let keys = [key];
        let (start, mut n) = (Instant::now(), 0u64);
        while start.elapsed() < Duration::from_secs(3) {
            for _ in 0..100 {
                let (signers, _) = verify_layers(&image, &layers, &keys);
                assert_eq!(signers.len(), 1);
            }
            n += 100;
        }
        let per = start.elapsed() / n as u32;
        println!(
            "  {name:<11} {:>9.0}/s  ({per:.1?} each)",
            n as f64 / start.elapsed().as_secs_f64()
        );
    }
    keyless_rate(&image);
}

/// Keyless signatures: certificate chain (P-384 CA), SET and payload
/// signature, with fixtures from tests/keyless_sign.py (needs python3 with
/// `cryptography`, which .ci/run installs).
fn keyless_rate(image: &Digest) {
    use base64::Engine as _;
    let work = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keyless_sign.py");
    let py = |args: &[&str]| {
        let out = std::process::Command::new("python3")
            .arg(script)
            .args(args)
            .output()
            .expect("python3");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let w = work.path().to_str().unwrap();
    py(&["setup", w]);
    let fixture: serde_json::Value = serde_json::from_slice(&py(&[
        "fixture",
        image.as_str(),
        w,
        "dev@example.test",
        "https://issuer.test",
    ]))
    .unwrap();
    let root =
        vouch::keyless::TrustedRoot::parse(&std::fs::read(work.path().join("trusted_root.json")).unwrap()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(fixture["payload"].as_str().unwrap())
        .unwrap();
    let annotations = &fixture["annotations"];
    let (start, mut n) = (Instant::now(), 0u64);
    while start.elapsed() < Duration::from_secs(3) {
        for _ in 0..20 {
            vouch::keyless::verify(&root, image, annotations, &payload).unwrap();
        }
        n += 20;
    }
    let per = start.elapsed() / n as u32;
    println!(
        "  {:<11} {:>9.0}/s  ({per:.1?} each: certificate chain, SET, signature)",
        "keyless",
        n as f64 / start.elapsed().as_secs_f64()
    );
}

// ---- 2. admission latency --------------------------------------------------

fn push_latency() {
    let (clients, pushes) = (env("ADM_CLIENTS", 16), env("ADM_PUSHES", 300));
    println!("push: manifest PUT latency, {clients} concurrent clients x {pushes} pushes, each to a new tag");
    // ADM_MODE=countersignature runs the cases whose name contains it.
    let only = std::env::var("ADM_MODE").unwrap_or_default();
    for mode in ["bare", "open policy", "open policy + countersignature"] {
        if !mode.contains(only.as_str()) {
            continue;
        }
        let dir = tempfile::tempdir_in(common::bench_dir()).unwrap();
        let data = vouch::data_dir::DataDir::new(dir.path());
        let opened = data.open_ledger("bench.local/vouch").unwrap();
        let rt = common::runtime();
        let mut st = state(opened.db.clone(), opened.ledger.clone(), dir.path());
        if mode != "bare" {
            let policy = vouch::policy::Policy::load(std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/spec/examples/policy-open.toml"
            )))
            .unwrap();
            let mut a = rt
                .block_on(vouch::admission::Admission::load(policy, &st.ledger, &st.meta))
                .unwrap();
            if mode.ends_with("countersignature") {
                let (c, _) = vouch::countersign::Countersigner::load_or_create(dir.path()).unwrap();
                a = a.with_countersigner(c);
            }
            st.gate = Arc::new(a.with_registry_names(&["127.0.0.1".to_owned()]));
        }
        let addr = serve(&rt, Arc::new(st));
        let client_rt = common::runtime();
        let (took, mut lat) = client_rt.block_on(async move {
            let mut c = Conn::open(addr).await;
            let (config, layer) = (b"{}".to_vec(), vec![7u8; 1024]);
            for b in [&config, &layer] {
                let d = vouch::registry::digest::sha256_of(b);
                let path = format!("/v2/bench/app/blobs/uploads/?digest={d}");
                assert_eq!(c.call("POST", &path, "application/octet-stream", b).await.0, 201);
            }
            let (cd, ld) = (
                vouch::registry::digest::sha256_of(&config),
                vouch::registry::digest::sha256_of(&layer),
            );
            let manifest = move |n: String| {
                format!(
                    r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":1024}}],"annotations":{{"n":"{n}"}}}}"#
                )
            };
            let start = Instant::now();
            let tasks: Vec<_> = (0..clients)
                .map(|t| {
                    let manifest = manifest.clone();
                    tokio::spawn(async move {
                        let mut c = Conn::open(addr).await;
                        let mut lat = Vec::new();
                        for i in 0..pushes {
                            let body = manifest(format!("{t}-{i}"));
                            let path = format!("/v2/bench/app/manifests/t{t}-{i}");
                            let at = Instant::now();
                            let (status, _) = c
                                .call("PUT", &path, "application/vnd.oci.image.manifest.v1+json", body.as_bytes())
                                .await;
                            lat.push(at.elapsed());
                            assert_eq!(status, 201);
                        }
                        lat
                    })
                })
                .collect();
            let lat = latencies(tasks).await;
            (start.elapsed(), lat)
        });
        lat.sort();
        println!(
            "  {mode:<31} p50 {:>8.2?}  p99 {:>8.2?}  {:>6.0} pushes/s  (ledger: {} entries)",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat.len() as f64 / took.as_secs_f64(),
            opened.ledger.size()
        );
        drop(client_rt);
        rt.shutdown_timeout(Duration::from_secs(1));
    }
}

// ---- 3. proofs over HTTP ----------------------------------------------------

fn proof_serving() {
    let size = env("BENCH_LOG_SIZE", 10_000_000);
    let (clients, secs) = (env("PROOF_CLIENTS", 64), env("PROOF_SECS", 10));
    let (ledger, db) = common::big_log(size);
    let size = ledger.size();
    let blobs = tempfile::tempdir_in(common::bench_dir()).unwrap();
    let rt = common::runtime();
    let addr = serve(&rt, Arc::new(state(db, ledger, blobs.path())));
    println!(
        "proofs: GET /ledger/proof/inclusion at random indexes of a {size}-entry log, {clients} connections, {secs} s"
    );
    let client_rt = common::runtime();
    let (took, mut lat) = client_rt.block_on(async move {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let start = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|t| {
                tokio::spawn(async move {
                    let mut c = Conn::open(addr).await;
                    let mut rng = rand::rngs::StdRng::seed_from_u64(t);
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        let path = format!("/ledger/proof/inclusion?index={}&size={size}", rng.gen_range(0..size));
                        let at = Instant::now();
                        let (status, body) = c.call("GET", &path, "text/plain", b"").await;
                        lat.push(at.elapsed());
                        assert!(status == 200 && !body.is_empty());
                    }
                    lat
                })
            })
            .collect();
        let lat = latencies(tasks).await;
        (start.elapsed(), lat)
    });
    lat.sort();
    println!(
        "  {:.0} proofs/s  p50 {:.2?}  p99 {:.2?}  p99.9 {:.2?}  ({} requests)",
        lat.len() as f64 / took.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        lat.len()
    );
    rt.shutdown_timeout(Duration::from_secs(1));
}

// ---- 4. manifest GET with visibility checks --------------------------------

fn get_latency() {
    let (clients, secs) = (env("GET_CLIENTS", 16), env("GET_SECS", 5));
    println!("get: manifest GET latency, {clients} keep-alive clients, {secs} s per case");
    for mode in ["bare", "admission"] {
        let dir = tempfile::tempdir_in(common::bench_dir()).unwrap();
        let data = vouch::data_dir::DataDir::new(dir.path());
        let opened = data.open_ledger("bench.local/vouch").unwrap();
        let rt = common::runtime();
        let mut st = state(opened.db.clone(), opened.ledger.clone(), dir.path());
        if mode == "admission" {
            let policy = vouch::policy::Policy::load(std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/spec/examples/policy-open.toml"
            )))
            .unwrap();
            let (c, _) = vouch::countersign::Countersigner::load_or_create(dir.path()).unwrap();
            let a = rt
                .block_on(vouch::admission::Admission::load(policy, &st.ledger, &st.meta))
                .unwrap()
                .with_countersigner(c);
            st.gate = Arc::new(a.with_registry_names(&["127.0.0.1".to_owned()]));
        }
        let addr = serve(&rt, Arc::new(st));
        let client_rt = common::runtime();
        let paths = client_rt.block_on(async move {
            let mut c = Conn::open(addr).await;
            let (config, layer) = (b"{}".to_vec(), vec![7u8; 1024]);
            for b in [&config, &layer] {
                let d = vouch::registry::digest::sha256_of(b);
                let path = format!("/v2/bench/app/blobs/uploads/?digest={d}");
                assert_eq!(c.call("POST", &path, "application/octet-stream", b).await.0, 201);
            }
            let (cd, ld) = (
                vouch::registry::digest::sha256_of(&config),
                vouch::registry::digest::sha256_of(&layer),
            );
            let m = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":1024}}]}}"#
            );
            let ct = "application/vnd.oci.image.manifest.v1+json";
            assert_eq!(c.call("PUT", "/v2/bench/app/manifests/v1", ct, m.as_bytes()).await.0, 201);
            let d = vouch::registry::digest::sha256_of(m.as_bytes());
            let mut paths = vec![("image", "/v2/bench/app/manifests/v1".to_owned())];
            let sig = format!("/v2/bench/app/manifests/sha256-{}.sig", d.encoded());
            if c.call("GET", &sig, ct, b"").await.0 == 200 {
                paths.push(("signatures (.sig)", sig));
            }
            paths
        });
        for (what, path) in paths {
            let (took, mut lat) = client_rt.block_on(async {
                let deadline = Instant::now() + Duration::from_secs(secs);
                let start = Instant::now();
                let tasks: Vec<_> = (0..clients)
                    .map(|_| {
                        let path = path.clone();
                        tokio::spawn(async move {
                            let mut c = Conn::open(addr).await;
                            let mut lat = Vec::new();
                            while Instant::now() < deadline {
                                let at = Instant::now();
                                let (status, body) = c.call("GET", &path, "text/plain", b"").await;
                                lat.push(at.elapsed());
                                assert!(status == 200 && !body.is_empty());
                            }
                            lat
                        })
                    })
                    .collect();
                let lat = latencies(tasks).await;
                (start.elapsed(), lat)
            });
            lat.sort();
            println!(
                "  {mode:<9} {what:<17} p50 {:>8.2?}  p99 {:>8.2?}  {:>7.0} GETs/s  ({} requests in {:.1?})",
                percentile(&lat, 0.5),
                percentile(&lat, 0.99),
                lat.len() as f64 / took.as_secs_f64(),
                lat.len(),
                took
            );
        }
        drop(client_rt);
        rt.shutdown_timeout(Duration::from_secs(1));
    }
}
