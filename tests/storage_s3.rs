//! `vouch serve --storage s3://...` against a real SeaweedFS: blobs and
//! upload sessions live in the bucket, not the data directory; what was
//! acknowledged survives `kill -9`; the data directory remembers its
//! bucket and refuses to start against another, or none.
//!
//! The rest of the black-box suite also runs on SeaweedFS
//! (`VOUCH_TEST_STORAGE=s3`, tools/test.sh).

mod common;

use common::seaweedfs::SeaweedFs;
use common::{http, sha256_hex, KillOnDrop};
use std::path::Path;
use std::process::Command;

/// `vouch serve` on `data` with `args` and the store's credentials in the
/// environment: the server and its address, or what it printed when it
/// refused to start.
fn serve(data: &Path, args: &[&str], store: &SeaweedFs) -> Result<(KillOnDrop, String), String> {
    common::try_serve(data, args, &store.env())
}

/// Uploads `bytes` to `repo` in two chunks (POST, PATCH, PATCH, PUT).
fn upload_chunked(addr: &str, repo: &str, bytes: &[u8]) -> String {
    let digest = format!("sha256:{}", sha256_hex(bytes));
    let r = http(addr, "POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"").unwrap();
    assert_eq!(r.status, 202);
    let mut at = r.header("Location").unwrap().to_owned();
    let half = bytes.len() / 2;
    for (start, chunk) in [(0, &bytes[..half]), (half, &bytes[half..])] {
        let range = format!("{start}-{}", start + chunk.len() - 1);
        let r = http(addr, "PATCH", &at, &[("Content-Range", &range)], chunk).unwrap();
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(
            r.header("Range"),
            Some(format!("0-{}", start + chunk.len() - 1).as_str())
        );
        at = r.header("Location").unwrap().to_owned();
    }
    let sep = if at.contains('?') { '&' } else { '?' };
    let r = http(addr, "PUT", &format!("{at}{sep}digest={digest}"), &[], b"").unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    digest
}

/// Pushes a one-layer image (config, layer, manifest) tagged `tag`.
fn push_image(addr: &str, repo: &str, tag: &str, layer: &[u8]) -> (String, String) {
    let layer_d = upload_chunked(addr, repo, layer);
    let config_d = upload_chunked(addr, repo, common::IMAGE_CONFIG);
    let manifest = common::one_layer_manifest(&config_d, &layer_d, layer.len());
    (layer_d, common::put_manifest(addr, repo, tag, manifest.as_bytes()))
}

#[test]
fn blobs_live_in_the_bucket_survive_kill_9_and_bind_the_data_directory() {
    let Some(store) = SeaweedFs::start() else { return };
    let data = tempfile::tempdir().unwrap();
    let url = store.url("team-a");
    let (server, addr) = serve(data.path(), &["--storage", &url], &store).unwrap();

    // Larger than one PUT of the object store (8 MiB): a multipart upload.
    let layer: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 251) as u8).collect();
    let (layer_d, manifest_d) = push_image(&addr, "team/app", "v1", &layer);
    let get = |path: &str, headers: &[(&str, &str)]| http(&addr, "GET", path, headers, b"").unwrap();
    let r = get(&format!("/v2/team/app/blobs/{layer_d}"), &[]);
    assert_eq!((r.status, r.body.len()), (200, layer.len()));
    assert!(r.body == layer, "the layer reads back whole");
    let r = get(
        &format!("/v2/team/app/blobs/{layer_d}"),
        &[("Range", "bytes=1000-1999")],
    );
    assert_eq!(r.status, 206);
    assert!(r.body == layer[1000..2000]);

    // Nothing of it on local disk; the bucket holds it, and the data
    // directory names the bucket.
    assert!(
        !data.path().join("blobs").exists() || walk(&data.path().join("blobs")).is_empty(),
        "no blob files: {:?}",
        walk(&data.path().join("blobs"))
    );
    assert_eq!(
        std::fs::read_to_string(data.path().join("blob-storage")).unwrap(),
        "s3://vouch/team-a\n"
    );
    let keys = store.list_keys("team-a/blobs/");
    assert!(
        keys.iter().any(|k| k.ends_with(layer_d.trim_start_matches("sha256:"))),
        "{keys:?}"
    );
    assert!(store.list_keys("team-a/uploads/").is_empty(), "every session ended");

    // An upload in progress and everything acknowledged survive kill -9.
    let session = common::start_half_upload(&addr, "team/app");
    drop(server); // SIGKILL
    let (_server, addr) = serve(data.path(), &["--storage", &url], &store).unwrap();
    let r = http(&addr, "GET", &format!("/v2/team/app/manifests/{manifest_d}"), &[], b"").unwrap();
    assert_eq!(r.status, 200);
    let r = http(&addr, "GET", &format!("/v2/team/app/blobs/{layer_d}"), &[], b"").unwrap();
    assert!(r.status == 200 && r.body == layer);
    let d = common::finish_half_upload(&addr, &session);
    let r = http(&addr, "GET", &format!("/v2/team/app/blobs/{d}"), &[], b"").unwrap();
    assert_eq!(r.body, common::HALF_UPLOAD_WHOLE);
    drop(_server);

    // The data directory refuses another bucket prefix, and local files.
    let e = serve(data.path(), &["--storage", &store.url("team-b")], &store).unwrap_err();
    assert!(e.contains("keeps its blobs in s3://vouch/team-a"), "{e}");
    let e = serve(data.path(), &[], &store).unwrap_err();
    assert!(e.contains("keeps its blobs in s3://vouch/team-a"), "{e}");
}

#[test]
fn garbage_collection_and_upload_expiry_delete_from_the_bucket() {
    let Some(store) = SeaweedFs::start() else { return };
    let data = tempfile::tempdir().unwrap();
    let args = [
        "--storage",
        &store.url("gc"),
        "--min-gc-grace",
        "0",
        "--upload-ttl",
        "2",
    ];
    let (_server, addr) = serve(data.path(), &args, &store).unwrap();
    let (layer_d, _) = push_image(&addr, "team/app", "v1", b"a layer an image references");
    let orphan = upload_chunked(&addr, "team/app", b"a blob no manifest references");
    let hex = |d: &str| d.trim_start_matches("sha256:").to_owned();
    let held = |d: &str| store.list_keys("gc/blobs/").iter().any(|k| k.ends_with(&hex(d)));
    assert!(held(&layer_d) && held(&orphan));

    let r = http(&addr, "POST", "/admin/gc?grace=0", &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let report: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(report["blobs_removed"], 1, "{report}");
    assert!(!held(&orphan), "the unreferenced blob's object is deleted");
    assert!(held(&layer_d), "the referenced layer stays");
    let r = http(&addr, "GET", &format!("/v2/team/app/blobs/{layer_d}"), &[], b"").unwrap();
    assert_eq!(r.status, 200);

    // An abandoned session's objects go when it expires.
    let r = http(&addr, "POST", "/v2/team/app/blobs/uploads/", &[], b"").unwrap();
    let session = r.header("Location").unwrap().to_owned();
    assert_eq!(http(&addr, "PATCH", &session, &[], b"abandoned").unwrap().status, 202);
    assert!(!store.list_keys("gc/uploads/").is_empty());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while http(&addr, "GET", &session, &[], b"").unwrap().status != 404 {
        assert!(std::time::Instant::now() < deadline, "the session never expired");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(store.list_keys("gc/uploads/"), Vec::<String>::new());
}

#[test]
fn a_store_that_cannot_serve_stops_the_start_with_a_reason() {
    let Some(store) = SeaweedFs::start() else { return };
    let data = tempfile::tempdir().unwrap();
    // Wrong credentials: refused by the store before anything is served.
    let mut cmd_env = store.env();
    cmd_env[1].1 = "not-the-secret";
    let out = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .args(["--storage", &store.url("x")])
        .envs(cmd_env)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("does not answer"), "{err}");
    // No bucket, an unknown option, another scheme.
    for (url, says) in [
        ("s3://no-such-bucket/x?endpoint=ENDPOINT", "does not answer"),
        (
            "s3://vouch/x?endpoint=ENDPOINT&colour=blue",
            "unknown option \"colour\"",
        ),
        ("gs://vouch/x", "only s3:// URLs"),
    ] {
        let url = url.replace("ENDPOINT", &store.endpoint);
        let e = serve(data.path(), &["--storage", &url], &store).unwrap_err();
        assert!(e.contains(says), "{url}: {e}");
    }
    // A data directory that holds blob files does not move to a bucket.
    let local = tempfile::tempdir().unwrap();
    let (server, addr) = serve(local.path(), &[], &store).unwrap();
    upload_chunked(&addr, "team/app", b"a local blob");
    drop(server);
    let e = serve(local.path(), &["--storage", &store.url("y")], &store).unwrap_err();
    assert!(e.contains("holds blob files"), "{e}");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}
