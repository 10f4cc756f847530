//! `vouch serve --database postgres://...` against a real PostgreSQL: the
//! registry's metadata lives in the database (read back here with `psql`,
//! an independent client), what was acknowledged survives `kill -9`, and
//! the data directory and the database are bound to each other.
//!
//! The rest of the black-box suite also runs on PostgreSQL
//! (`VOUCH_TEST_DATABASE=postgres`, tools/test.sh).

mod common;

use common::postgres::PostgresServer;
use common::{http, KillOnDrop, OPEN_POLICY};
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// `vouch serve` on `data` with `args`: the server and its address, or
/// what it printed when it refused to start.
fn serve(data: &Path, args: &[&str]) -> Result<(KillOnDrop, String), String> {
    common::try_serve(data, args, &[])
}

/// Pushes a one-layer image tagged `tag`; returns the manifest's digest.
fn push_image(addr: &str, repo: &str, tag: &str, layer: &[u8]) -> String {
    common::push_one_layer_image(addr, repo, tag, layer).1
}

#[test]
fn metadata_lives_in_postgres_survives_kill_9_and_binds_the_data_directory() {
    let Some(pg) = PostgresServer::start() else { return };
    let url = pg.database("registry");
    let data = tempfile::tempdir().unwrap();
    let (server, addr) = serve(data.path(), &["--database", &url]).unwrap();
    let digest = push_image(&addr, "team/app", "v1", b"layer one");

    // The database holds the tag and the admitted manifest, as psql reads it.
    let tag = pg.psql(
        "registry",
        "SELECT convert_from(v, 'UTF8') FROM vouch_kv WHERE family = 'reg_tags' AND k = convert_to('team/app', 'UTF8') || '\\x00'::bytea || convert_to('v1', 'UTF8')",
    );
    assert_eq!(tag, digest);
    let families = pg.psql("registry", "SELECT string_agg(DISTINCT family, ',') FROM vouch_kv");
    for f in [
        "reg_manifests",
        "reg_blobs",
        "reg_decisions",
        "reg_policies",
        "reg_repos",
        "ledger_meta",
        "ledger_entries",
    ] {
        assert!(families.contains(f), "{f} in {families}");
    }
    // A new directory keeps its ledger there too: the served checkpoint is
    // the row's, byte for byte.
    let bound = std::fs::read_to_string(data.path().join("metadata-database")).unwrap();
    assert!(bound.starts_with("PostgreSQL instance "), "{bound}");
    let ledger_bound = std::fs::read_to_string(data.path().join("ledger-database")).unwrap();
    assert_eq!(ledger_bound, bound);
    let row = pg.psql(
        "registry",
        "SELECT convert_from(v, 'UTF8') FROM vouch_kv WHERE family = 'ledger_meta' AND k = convert_to('checkpoint', 'UTF8')",
    );
    let served = http(&addr, "GET", "/ledger/checkpoint", &[], b"").unwrap();
    assert_eq!(row.trim_end(), String::from_utf8_lossy(&served.body).trim_end());

    // An upload in progress and everything acknowledged survive kill -9.
    let session = common::start_half_upload(&addr, "team/app");
    drop(server); // SIGKILL
    let (server, addr) = serve(data.path(), &["--database", &url]).unwrap();
    let r = http(&addr, "GET", "/v2/team/app/manifests/v1", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
    assert_eq!(r.header("Vouch-Admission-State"), Some("admitted"));
    let r = http(&addr, "GET", "/v2/team/app/tags/list", &[], b"").unwrap();
    let tags = serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["tags"].clone();
    // v1, and vouch's countersignature's cosign-style tag.
    assert!(tags.as_array().unwrap().contains(&serde_json::json!("v1")), "{tags}");
    common::finish_half_upload(&addr, &session);
    let r = http(&addr, "GET", "/v2/_catalog", &[], b"").unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["repositories"],
        serde_json::json!(["team/app"])
    );
    drop(server);

    // The directory refuses to start on its RocksDB, or another database.
    let e = serve(data.path(), &[]).unwrap_err();
    assert!(e.contains("keeps its registry metadata in PostgreSQL instance"), "{e}");
    let e = serve(data.path(), &["--database", &pg.database("other")]).unwrap_err();
    assert!(e.contains("keeps its registry metadata in PostgreSQL instance"), "{e}");

    // A new directory (a new log key) does not join a database another
    // registry uses; a directory that served on its RocksDB does not move
    // to a database.
    let fresh = tempfile::tempdir().unwrap();
    let e = serve(fresh.path(), &["--database", &url]).unwrap_err();
    assert!(e.contains("the database belongs to another registry (log key "), "{e}");
    assert!(!fresh.path().join("ledger-database").exists());
    let local = tempfile::tempdir().unwrap();
    drop(serve(local.path(), &[]).unwrap());
    let e = serve(local.path(), &["--database", &pg.database("third")]).unwrap_err();
    assert!(e.contains("its RocksDB already holds registry metadata"), "{e}");
}

#[test]
fn a_database_that_cannot_serve_stops_the_start_with_a_reason() {
    let data = tempfile::tempdir().unwrap();
    let e = serve(data.path(), &["--database", "postgres://vouch@127.0.0.1:1"]).unwrap_err();
    assert!(e.contains("names no database"), "{e}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = serve(
        data.path(),
        &["--database", &format!("postgres://vouch:pw@127.0.0.1:{port}/x")],
    )
    .unwrap_err();
    assert!(e.contains("--database") && e.to_lowercase().contains("refused"), "{e}");
    let Some(pg) = PostgresServer::start() else { return };
    let wrong = pg.database("registry").replace(common::postgres::PASSWORD, "wrong");
    let e = serve(data.path(), &["--database", &wrong]).unwrap_err();
    assert!(e.contains("password authentication failed"), "{e}");
    // The password may come from PGPASSWORD instead of the URL.
    let bare = pg
        .database("registry")
        .replace(&format!(":{}", common::postgres::PASSWORD), "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(["serve", "--listen", "127.0.0.1:0", "--policy", OPEN_POLICY, "--data"])
        .arg(data.path())
        .args(["--database", &bare])
        .env("PGPASSWORD", common::postgres::PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let up = lines.any(|l| l.is_ok_and(|l| l.starts_with("listening on ")));
    drop(KillOnDrop(child));
    assert!(up, "PGPASSWORD supplies the password");
}

/// TLS to the database is verified against the CA the URL names
/// (`sslrootcert`), or the system's roots: a server whose certificate they
/// do not vouch for is refused, with a hint.
#[test]
fn tls_to_the_database_is_verified_against_sslrootcert() {
    if !common::have("openssl") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let certs = common::test_certificates(work.path());
    let ssl = [
        "ssl=on",
        "ssl_cert_file=$DIR/server.pem",
        "ssl_key_file=$DIR/server.key",
    ];
    let files = [
        ("server.pem", certs.cert.as_path()),
        ("server.key", certs.key.as_path()),
    ];
    let Some(pg) = PostgresServer::start_with(&ssl, &files) else {
        return;
    };
    let url = pg.database("registry");
    let ca = certs.ca.display().to_string();
    let data = tempfile::tempdir().unwrap();
    let verified = format!("{url}?sslmode=verify-full&sslrootcert={ca}");
    let (server, addr) = serve(data.path(), &["--database", &verified]).unwrap();
    push_image(&addr, "tls/app", "v1", b"over TLS");
    let encrypted = pg.psql(
        "registry",
        "SELECT count(*) FILTER (WHERE s.ssl) || '/' || count(*) FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'vouch'",
    );
    let (tls, all) = encrypted.split_once('/').unwrap();
    assert!(all != "0" && tls == all, "vouch's connections over TLS: {encrypted}");
    drop(server);

    // Another CA, or the system's roots, do not vouch for this server.
    let other = tempfile::tempdir().unwrap();
    let other_ca = common::test_certificates(other.path()).ca.display().to_string();
    for url in [
        format!("{url}?sslmode=require&sslrootcert={other_ca}"),
        format!("{url}?sslmode=require"),
    ] {
        let e = serve(data.path(), &["--database", &url]).unwrap_err();
        assert!(e.contains("certificate") && e.contains("sslrootcert=FILE"), "{e}");
    }
    // A CA file that does not exist is named.
    let e = serve(
        data.path(),
        &["--database", &format!("{url}?sslrootcert=/nonexistent/ca.pem")],
    )
    .unwrap_err();
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    // TLS turned off explicitly still connects (the server allows it).
    drop(serve(data.path(), &["--database", &format!("{url}?sslmode=disable")]).unwrap());
}

/// A database restart while vouch runs: requests meanwhile get
/// `503 UNAVAILABLE` with `Retry-After` and change nothing; afterwards vouch
/// reconnects by itself and serves as before.
#[test]
fn a_database_restart_answers_503_meanwhile_and_loses_nothing() {
    let Some(mut pg) = PostgresServer::start() else { return };
    let data = tempfile::tempdir().unwrap();
    let (_server, addr) = serve(data.path(), &["--database", &pg.database("registry")]).unwrap();
    let digest = push_image(&addr, "team/app", "v1", b"before the restart");
    pg.restart(|| {
        let r = http(&addr, "GET", "/v2/team/app/manifests/v1", &[], b"").unwrap();
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
        assert!(String::from_utf8_lossy(&r.body).contains("UNAVAILABLE"));
        assert_eq!(r.header("Retry-After"), Some("1"));
        let manifest = common::one_layer_manifest(&digest, &digest, 1);
        let r = http(
            &addr,
            "PUT",
            "/v2/team/app/manifests/v2",
            &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
            manifest.as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    });
    let r = http(&addr, "GET", "/v2/team/app/manifests/v1", &[], b"").unwrap();
    assert_eq!(
        (r.status, r.header("Docker-Content-Digest")),
        (200, Some(digest.as_str()))
    );
    let r = http(&addr, "GET", "/v2/team/app/tags/list", &[], b"").unwrap();
    let tags = serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["tags"].clone();
    assert!(
        !tags.as_array().unwrap().contains(&serde_json::json!("v2")),
        "nothing of the refused push: {tags}"
    );
    push_image(&addr, "team/app", "v3", b"after the restart");
}
