//! The web pages on a registry of UI_IMAGES images (default 10,000), over
//! real parts (RocksDB, blob files, fsync'd admission decisions, the HTTP
//! server on loopback), all in this process on the same two cores:
//!
//!     cargo bench --bench ui
//!
//! Half the images are pushed to `dev/rNN` (admitted) and half to
//! `denied/rNN` (denied: the policy requires a label they lack), across 100
//! repositories. Then: the first page view (which indexes the whole ledger),
//! and UI_VIEWS sequential views (default 200) of each page, p50 and p99.

#[allow(dead_code)]
mod common;
#[path = "common/http.rs"]
#[allow(dead_code)]
mod http;

use http::{serve, state, Conn};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const POLICY: &str = r#"
version = 1
name = "ui-bench"
unreferenced_blobs = "serve"

[[rule]]
repositories = "denied/**"
required_labels = ["org.opencontainers.image.source"]

[[rule]]
repositories = "**"
"#;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let (images, views) = (env("UI_IMAGES", 10_000), env("UI_VIEWS", 200));
    let dir = tempfile::tempdir_in(common::bench_dir()).unwrap();
    let data = vouch::data_dir::DataDir::new(dir.path());
    let opened = data.open_ledger("bench.local/vouch").unwrap();
    let rt = common::runtime();
    let mut st = state(opened.db.clone(), opened.ledger.clone(), dir.path());
    let policy_file = dir.path().join("policy.toml");
    std::fs::write(&policy_file, POLICY).unwrap();
    let policy = vouch::policy::Policy::load(&policy_file).unwrap();
    let a = rt
        .block_on(vouch::admission::Admission::load(policy, &st.ledger, &st.meta))
        .unwrap();
    st.gate = Arc::new(a.with_registry_names(&["127.0.0.1".to_owned()]));
    let addr = serve(&rt, Arc::new(st));
    let ledger = opened.ledger.clone();
    let client_rt = common::runtime();
    client_rt.block_on(async move {
        let started = Instant::now();
        let clients = 16;
        let per = images / clients;
        let tasks: Vec<_> = (0..clients)
            .map(|t| {
                tokio::spawn(async move {
                    let mut c = Conn::open(addr).await;
                    let config = br#"{"architecture":"amd64","os":"linux","config":{}}"#.to_vec();
                    let layer = vec![7u8; 512];
                    let (cd, ld) = (
                        vouch::registry::digest::sha256_of(&config),
                        vouch::registry::digest::sha256_of(&layer),
                    );
                    for i in 0..per {
                        let n = t * per + i;
                        let repo = format!("{}/r{:02}", if n % 2 == 0 { "dev" } else { "denied" }, n % 100 / 2);
                        if i < 100 {
                            for b in [&config, &layer] {
                                let d = vouch::registry::digest::sha256_of(b);
                                let path = format!("/v2/{repo}/blobs/uploads/?digest={d}");
                                assert_eq!(c.call("POST", &path, "application/octet-stream", b).await.0, 201);
                            }
                        }
                        let manifest = format!(
                            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":512}}],"annotations":{{"n":"{n}"}}}}"#,
                            config.len()
                        );
                        let path = format!("/v2/{repo}/manifests/t{n}");
                        let (status, body) = c
                            .call("PUT", &path, "application/vnd.oci.image.manifest.v1+json", manifest.as_bytes())
                            .await;
                        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        println!(
            "pushed {} images into 100 repositories in {:.1?}; the ledger holds {} entries",
            per * clients,
            started.elapsed(),
            ledger.size()
        );

        let mut c = Conn::open(addr).await;
        let first = Instant::now();
        let (status, body) = c.call("GET", "/ui/", "text/html", b"").await;
        assert_eq!(status, 200);
        println!(
            "first view of /ui/ (indexes the whole ledger): {:.2?}, {} bytes",
            first.elapsed(),
            body.len()
        );
        let (_, repo_page) = c.call("GET", "/ui/repository?name=denied%2Fr07", "text/html", b"").await;
        let page = String::from_utf8_lossy(&repo_page);
        let image = page
            .split("href=\"/ui/image?")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .map(|q| format!("/ui/image?{}", q.replace("&amp;", "&")))
            .expect("an image link");
        for path in [
            "/ui/",
            "/ui/denials",
            "/ui/denials?before=5000",
            "/ui/repositories",
            "/ui/repository?name=denied%2Fr07",
            image.as_str(),
            "/ui/policies",
            "/ui/ledger",
        ] {
            let mut lat = Vec::new();
            let mut bytes = 0;
            for _ in 0..views {
                let at = Instant::now();
                let (status, body) = c.call("GET", path, "text/html", b"").await;
                lat.push(at.elapsed());
                assert_eq!(status, 200, "{path}");
                bytes = body.len();
            }
            lat.sort();
            let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
            println!(
                "  {:<44} p50 {:>9.2?}  p99 {:>9.2?}  ({bytes} bytes)",
                if path.len() > 44 { &path[..44] } else { path },
                pct(0.5),
                pct(0.99)
            );
        }
    });
    drop(client_rt);
    rt.shutdown_timeout(Duration::from_secs(1));
}
