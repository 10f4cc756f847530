//! `vouch migrate` moves a registry served from one data directory to a
//! real SeaweedFS bucket and a real PostgreSQL database; `vouch serve` with
//! `--storage` and `--database` then serves the same images, the same
//! admission state and an upload half done, and `vouch audit` holds across
//! the move: the same checkpoint before and after, and a log that only
//! grows from there.

mod common;

use common::postgres::PostgresServer;
use common::seaweedfs::SeaweedFs;
use common::{http, sha256_hex, KillOnDrop, OPEN_POLICY};
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn vouch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vouch"));
    for v in [
        "VOUCH_STORAGE",
        "VOUCH_DATABASE",
        "VOUCH_CONFIG",
        "VOUCH_DATA",
        "PGPASSWORD",
    ] {
        c.env_remove(v);
    }
    c
}

fn serve(data: &Path, args: &[&str], store: &SeaweedFs) -> Result<(KillOnDrop, String), String> {
    let mut child = vouch()
        .args(["serve", "--listen", "127.0.0.1:0", "--policy", OPEN_POLICY, "--data"])
        .arg(data)
        .args(args)
        .envs(store.env())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    match lines.find_map(|l| l.ok()?.strip_prefix("listening on ").map(str::to_owned)) {
        Some(addr) => Ok((KillOnDrop(child), addr)),
        None => Err(String::from_utf8_lossy(&child.wait_with_output().unwrap().stderr).into_owned()),
    }
}

/// `vouch migrate` with `args`: whether it succeeded, and its stderr.
fn migrate(args: &[&str], store: &SeaweedFs) -> (bool, String) {
    let out = vouch().arg("migrate").args(args).envs(store.env()).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn audit(addr: &str, data: &Path, state: &Path) {
    let out = vouch()
        .args(["audit", "--replay", "--log", &format!("http://{addr}"), "--log-key"])
        .arg(data.join("ledger.vkey"))
        .arg("--state")
        .arg(state)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vouch audit failed: {text}");
}

/// Pushes a one-layer image tagged `tag`; returns (layer, manifest) digests.
fn push_image(addr: &str, repo: &str, tag: &str, layer: &[u8]) -> (String, String) {
    let put_blob = |bytes: &[u8]| {
        let d = format!("sha256:{}", sha256_hex(bytes));
        let r = http(
            addr,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            &[],
            bytes,
        )
        .unwrap();
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        d
    };
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let (layer_d, config_d) = (put_blob(layer), put_blob(config));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_d, "size": layer.len()}]
    })
    .to_string();
    (layer_d, common::put_manifest(addr, repo, tag, manifest.as_bytes()))
}

#[test]
fn a_registry_moves_to_a_bucket_and_postgres_with_its_ledger_unchanged() {
    let Some(store) = SeaweedFs::start() else { return };
    let Some(pg) = PostgresServer::start() else { return };
    let (storage, database) = (store.url("moved"), pg.database("moved"));
    let work = tempfile::tempdir().unwrap();
    let (data, state) = (work.path().join("data"), work.path().join("audit.state"));

    // A registry on local disk: an admitted image, an upload half done.
    let (server, addr) = serve(&data, &[], &store).unwrap();
    let layer: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let (layer_d, manifest_d) = push_image(&addr, "team/app", "v1", &layer);
    let r = http(&addr, "POST", "/v2/team/app/blobs/uploads/", &[], b"").unwrap();
    let session = r.header("Location").unwrap().to_owned();
    assert_eq!(http(&addr, "PATCH", &session, &[], b"first half|").unwrap().status, 202);
    audit(&addr, &data, &state);
    let checkpoint = http(&addr, "GET", "/ledger/checkpoint", &[], b"").unwrap().body;

    // Refused while the server runs, and without a destination.
    let from = data.to_str().unwrap();
    let (ok, e) = migrate(&["--from", from, "--to-database", &database], &store);
    assert!(!ok && e.contains("is `vouch serve` running on it?"), "{e}");
    drop(server);
    let (ok, e) = migrate(&["--from", from], &store);
    assert!(!ok && e.contains("nothing to move"), "{e}");

    let args = ["--from", from, "--to-storage", &storage, "--to-database", &database];
    let (ok, out) = migrate(&args, &store);
    assert!(ok, "vouch migrate failed: {out}");
    assert!(
        out.contains("blobs: 2 copied and checked, and 1 upload session(s)"),
        "{out}"
    );
    assert!(out.contains("rows copied and counted"), "{out}");
    assert!(
        !data.join("blobs").exists() && !data.join("uploads").exists(),
        "local blobs removed"
    );
    assert!(store
        .list_keys("moved/blobs/")
        .iter()
        .any(|k| k.ends_with(&layer_d[7..])));
    // Run again: nothing left to do, and it says so.
    let (ok, again) = migrate(&args, &store);
    assert!(ok && again.contains("already in"), "{again}");

    // Served from the bucket and the database, as before the move.
    let (_server, addr) = serve(&data, &["--storage", &storage, "--database", &database], &store).unwrap();
    let after = http(&addr, "GET", "/ledger/checkpoint", &[], b"").unwrap().body;
    assert_eq!(after, checkpoint, "the same checkpoint after the move");
    audit(&addr, &data, &state);
    let r = http(&addr, "GET", "/v2/team/app/manifests/v1", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Docker-Content-Digest"), Some(manifest_d.as_str()));
    assert_eq!(r.header("Vouch-Admission-State"), Some("admitted"));
    let r = http(&addr, "GET", &format!("/v2/team/app/blobs/{layer_d}"), &[], b"").unwrap();
    assert!(r.status == 200 && r.body == layer, "the layer reads back whole");
    let r = http(&addr, "GET", &session, &[], b"").unwrap();
    assert_eq!(
        (r.status, r.header("Range")),
        (204, Some("0-10")),
        "the session resumes"
    );
    let whole = b"first half|second half";
    let d = format!("sha256:{}", sha256_hex(whole));
    let sep = if session.contains('?') { '&' } else { '?' };
    let r = http(&addr, "PUT", &format!("{session}{sep}digest={d}"), &[], b"second half").unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));

    // The log grows on from the moved registry, and the audit follows it.
    push_image(&addr, "team/app", "v2", b"another layer");
    audit(&addr, &data, &state);

    // A database holding another registry is not a destination.
    let other = work.path().join("other");
    drop(serve(&other, &[], &store).unwrap());
    let (ok, e) = migrate(&["--from", other.to_str().unwrap(), "--to-database", &database], &store);
    assert!(!ok && e.contains("already holds another registry's metadata"), "{e}");
}
