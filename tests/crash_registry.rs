//! Crash test: `vouch serve` is killed with SIGKILL while 8 clients push
//! blobs (monolithic and chunked) and manifests. After each restart on the
//! same data directory: every acknowledged blob and manifest is served with
//! its exact bytes, every blob file on disk hashes to its name (no partial
//! blob is ever visible), and every interrupted upload session can be resumed
//! from the offset the registry reports and finished with the right digest.
//! Admission survives too: every acknowledged manifest is admitted with a
//! valid countersignature, no stored image is left pending, and the ledger
//! replays cleanly (`vouch audit --replay`).
//!
//! Bounded: 3 rounds, each killed after at most 700 ms of pushing.

mod common;

use common::http;
use rand::{Rng as _, SeedableRng as _};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn start(data: &Path) -> (Child, String) {
    common::start_server(data, &[], Stdio::null())
}

fn sha256(b: &[u8]) -> String {
    vouch::registry::digest::sha256_of(b).to_string()
}

#[derive(Default)]
struct Acked {
    blobs: Vec<(String, String, Vec<u8>)>,             // repo, digest, bytes
    manifests: Vec<(String, String, String, Vec<u8>)>, // repo, tag, digest, bytes
    sessions: Vec<(String, Vec<u8>, usize, bool)>,     // location, content, bytes acknowledged, final PUT sent
}

fn pusher(addr: String, worker: usize, seed: u64, acked: Arc<Mutex<Acked>>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let repo = format!("crash/w{worker}");
    for n in 0.. {
        let content: Vec<u8> = (0..rng.gen_range(1_000..200_000)).map(|_| rng.gen()).collect();
        let d = sha256(&content);
        let ok = if n % 3 == 0 {
            // Chunked: POST, PATCH half, PUT the rest.
            let Ok(start) = http(&addr, "POST", &format!("/v2/{repo}/blobs/uploads/"), &[], &[]) else {
                return;
            };
            let Some(loc) = start.header("location").map(str::to_owned) else {
                return;
            };
            let half = content.len() / 2;
            let range = format!("0-{}", half - 1);
            match http(&addr, "PATCH", &loc, &[("Content-Range", &range)], &content[..half]) {
                Ok(r) if r.status == 202 => {
                    acked
                        .lock()
                        .unwrap()
                        .sessions
                        .push((loc.clone(), content.clone(), half, false))
                }
                _ => return,
            }
            for s in acked.lock().unwrap().sessions.iter_mut().filter(|s| s.0 == loc) {
                s.3 = true;
            }
            match http(&addr, "PUT", &format!("{loc}?digest={d}"), &[], &content[half..]) {
                Ok(r) if r.status == 201 => {
                    acked.lock().unwrap().sessions.retain(|s| s.0 != loc);
                    true
                }
                _ => return,
            }
        } else {
            match http(
                &addr,
                "POST",
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                &[],
                &content,
            ) {
                Ok(r) => r.status == 201,
                Err(_) => return,
            }
        };
        assert!(ok, "push refused while the server was up");
        acked
            .lock()
            .unwrap()
            .blobs
            .push((repo.clone(), d.clone(), content.clone()));
        // A manifest over this blob (as layer) and a small config.
        let config = format!("{{\"n\":{n}}}").into_bytes();
        let cd = sha256(&config);
        if !matches!(http(&addr, "POST", &format!("/v2/{repo}/blobs/uploads/?digest={cd}"), &[], &config), Ok(r) if r.status == 201)
        {
            return;
        }
        acked
            .lock()
            .unwrap()
            .blobs
            .push((repo.clone(), cd.clone(), config.clone()));
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{d}","size":{}}}]}}"#,
            config.len(),
            content.len()
        )
        .into_bytes();
        let tag = format!("t{seed}-{n}");
        let ct = ("Content-Type", "application/vnd.oci.image.manifest.v1+json");
        match http(&addr, "PUT", &format!("/v2/{repo}/manifests/{tag}"), &[ct], &m) {
            Ok(r) if r.status == 201 => acked.lock().unwrap().manifests.push((repo.clone(), tag, sha256(&m), m)),
            _ => return,
        }
    }
}

#[test]
fn acknowledged_pushes_survive_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let mut rng = rand::thread_rng();
    let acked = Arc::new(Mutex::new(Acked::default()));
    for round in 0..3u64 {
        let (mut child, addr) = start(data.path());
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let (addr, acked) = (addr.clone(), acked.clone());
                let seed = round * 100 + w as u64;
                std::thread::spawn(move || pusher(addr, w, seed, acked))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.gen_range(100..700)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for w in workers {
            w.join().unwrap();
        }

        let (mut child, addr) = start(data.path());
        let a = acked.lock().unwrap();
        for (repo, d, bytes) in &a.blobs {
            let r = http(&addr, "GET", &format!("/v2/{repo}/blobs/{d}"), &[], &[]).unwrap();
            assert_eq!(r.status, 200, "acknowledged blob {d} lost");
            assert!(r.body == *bytes, "acknowledged blob {d} changed");
        }
        let admission_key =
            vouch::signature::PublicKey::from_pem(&std::fs::read_to_string(data.path().join("admission.pub")).unwrap())
                .unwrap();
        for (repo, tag, d, bytes) in &a.manifests {
            let r = http(&addr, "GET", &format!("/v2/{repo}/manifests/{tag}"), &[], &[]).unwrap();
            assert_eq!(r.status, 200, "acknowledged manifest {repo}:{tag} lost");
            assert_eq!(r.header("docker-content-digest"), Some(d.as_str()));
            assert_eq!(r.header("vouch-admission-state"), Some("admitted"));
            assert!(r.body == *bytes);
            // Admitted means countersigned: vouch's signature survived too.
            let sig = format!("/v2/{repo}/manifests/{}.sig", d.replace(':', "-"));
            let s = http(&addr, "GET", &sig, &[], &[]).unwrap();
            assert_eq!(s.status, 200, "countersignature of {repo}@{d} lost");
            let m: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
            let layers: Vec<vouch::signature::SignatureLayer> = m["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| vouch::signature::SignatureLayer {
                    signature: l["annotations"]["dev.cosignproject.cosign/signature"]
                        .as_str()
                        .map(str::to_owned),
                    payload: http(
                        &addr,
                        "GET",
                        &format!("/v2/{repo}/blobs/{}", l["digest"].as_str().unwrap()),
                        &[],
                        &[],
                    )
                    .unwrap()
                    .body,
                })
                .collect();
            let image = vouch::registry::names::parse_digest(d).unwrap();
            let (signers, _) = vouch::signature::verify_layers(&image, &layers, std::slice::from_ref(&admission_key));
            assert_eq!(signers.len(), 1, "no valid countersignature of {repo}@{d}");
        }
        // Nothing is left pending: a manifest stored by a push the kill cut
        // short, before its decision, is decided again at start.
        let repos: std::collections::BTreeSet<&String> = a.manifests.iter().map(|(r, ..)| r).collect();
        for repo in repos {
            let tags = http(&addr, "GET", &format!("/v2/{repo}/tags/list"), &[], &[]).unwrap();
            let tags: serde_json::Value = serde_json::from_slice(&tags.body).unwrap();
            for t in tags["tags"].as_array().unwrap().iter().filter_map(|t| t.as_str()) {
                let accept = ("Accept", "application/vnd.oci.image.manifest.v1+json");
                let h = http(&addr, "HEAD", &format!("/v2/{repo}/manifests/{t}"), &[accept], &[]).unwrap();
                let state = h.header("vouch-admission-state").unwrap_or("").to_owned();
                assert!(state == "admitted" || state == "evidence", "{repo}:{t} is {state}");
            }
        }
        // The ledger replays cleanly: every decision names a policy logged
        // before it, and indexes are contiguous.
        let (ok, out) = common::run(
            std::process::Command::new(env!("CARGO_BIN_EXE_vouch"))
                .args(["audit", "--log", &format!("http://{addr}"), "--log-key"])
                .arg(data.path().join("ledger.vkey"))
                .arg("--replay"),
        );
        assert!(ok, "audit after the crash: {out}");
        // No partial blob is visible: every blob file hashes to its name.
        let root = data.path().join("blobs/sha256");
        let mut files = 0;
        for shard in std::fs::read_dir(&root).unwrap() {
            for f in std::fs::read_dir(shard.unwrap().path()).unwrap() {
                let f = f.unwrap();
                let name = f.file_name().into_string().unwrap();
                assert_eq!(
                    sha256(&std::fs::read(f.path()).unwrap()),
                    format!("sha256:{name}"),
                    "partial blob {name}"
                );
                files += 1;
            }
        }
        // Interrupted sessions: one whose final PUT was never sent resumes
        // from the offset the registry reports; one whose PUT was in flight
        // either resumes the same way, or a retry of that PUT finishes it, or
        // it had finished (the blob is in the repository).
        let sessions = a.sessions.len();
        for (loc, content, acked_bytes, put_sent) in &a.sessions {
            let d = sha256(content);
            let st = http(&addr, "GET", loc, &[], &[]).unwrap();
            let mut history = vec![format!("status {}", st.status)];
            if st.status == 204 {
                let end: usize = st.header("range").unwrap().split_once('-').unwrap().1.parse().unwrap();
                assert!(end + 1 >= *acked_bytes, "session lost acknowledged bytes");
                let r = http(&addr, "PUT", &format!("{loc}?digest={d}"), &[], &content[end + 1..]).unwrap();
                assert_eq!(
                    r.status,
                    201,
                    "resumed session did not finish: {}",
                    String::from_utf8_lossy(&r.body)
                );
            } else {
                assert!(
                    *put_sent,
                    "session {loc} lost before its final PUT was sent (status {})",
                    st.status
                );
                let retry = http(
                    &addr,
                    "PUT",
                    &format!("{loc}?digest={d}"),
                    &[],
                    &content[content.len() / 2..],
                )
                .unwrap();
                assert!(
                    retry.status == 201 || retry.status == 404,
                    "retried PUT: {}",
                    retry.status
                );
                history.push(format!(
                    "retried PUT {}: {}",
                    retry.status,
                    String::from_utf8_lossy(&retry.body)
                ));
            }
            let repo = loc.split("/blobs/").next().unwrap().trim_start_matches("/v2/");
            let blob = http(&addr, "GET", &format!("/v2/{repo}/blobs/{d}"), &[], &[]).unwrap();
            assert_eq!(
                blob.status, 200,
                "blob of interrupted session {loc} is neither resumable nor stored ({history:?})"
            );
            assert!(blob.body == *content);
        }
        eprintln!(
            "registry crash round {round}: {} blobs and {} manifests acknowledged so far, all intact; {files} blob files verified; {sessions} interrupted sessions recovered",
            a.blobs.len(),
            a.manifests.len()
        );
        drop(a);
        acked.lock().unwrap().sessions.clear();
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(
        acked.lock().unwrap().manifests.len() > 20,
        "too little was pushed for the test to mean much"
    );
}
