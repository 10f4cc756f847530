//! `vouch migrate` moves a registry served from one data directory to a
//! real SeaweedFS bucket and a real PostgreSQL database; `vouch serve` with
//! `--storage` and `--database` then serves the same images, the same
//! admission state and an upload half done, and `vouch audit` holds across
//! the move: the same checkpoint before and after, and a log that only
//! grows from there.

mod common;

use common::postgres::PostgresServer;
use common::seaweedfs::SeaweedFs;
use common::{http, KillOnDrop};
use std::path::Path;

fn serve(data: &Path, args: &[&str], store: &SeaweedFs) -> Result<(KillOnDrop, String), String> {
    common::try_serve(data, args, &store.env())
}

/// `vouch migrate` with `args`: whether it succeeded, and its stderr.
fn migrate(args: &[&str], store: &SeaweedFs) -> (bool, String) {
    let out = common::vouch_command()
        .arg("migrate")
        .args(args)
        .envs(store.env())
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
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
    let (layer_d, manifest_d) = common::push_one_layer_image(&addr, "team/app", "v1", &layer);
    let session = common::start_half_upload(&addr, "team/app");
    common::audit(&addr, &data, &state);
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
    assert!(
        out.contains("metadata: ") && out.contains("rows copied and checked"),
        "{out}"
    );
    // The ledger moved too, row for row: served from the database from now on.
    assert!(out.contains("ledger: 6 rows copied and checked"), "{out}");
    let bound = std::fs::read_to_string(data.join("ledger-database")).unwrap();
    assert_eq!(bound, std::fs::read_to_string(data.join("metadata-database")).unwrap());
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
    common::audit(&addr, &data, &state);
    let r = http(&addr, "GET", "/v2/team/app/manifests/v1", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Docker-Content-Digest"), Some(manifest_d.as_str()));
    assert_eq!(r.header("Vouch-Admission-State"), Some("admitted"));
    let r = http(&addr, "GET", &format!("/v2/team/app/blobs/{layer_d}"), &[], b"").unwrap();
    assert!(r.status == 200 && r.body == layer, "the layer reads back whole");
    common::finish_half_upload(&addr, &session);

    // The log grows on from the moved registry, and the audit follows it.
    common::push_one_layer_image(&addr, "team/app", "v2", b"another layer");
    common::audit(&addr, &data, &state);

    // A database holding another registry is not a destination.
    let other = work.path().join("other");
    drop(serve(&other, &[], &store).unwrap());
    let (ok, e) = migrate(&["--from", other.to_str().unwrap(), "--to-database", &database], &store);
    assert!(!ok && e.contains("already holds another registry's metadata"), "{e}");
    // Nor is a bucket prefix holding another registry's blobs, for a move
    // or for a new directory's first start.
    let (ok, e) = migrate(&["--from", other.to_str().unwrap(), "--to-storage", &storage], &store);
    assert!(!ok && e.contains("already holds blobs of another registry"), "{e}");
    let e = serve(&work.path().join("fresh"), &["--storage", &storage], &store).unwrap_err();
    assert!(e.contains("the bucket prefix already holds blobs"), "{e}");
    // The URLs, which may hold secrets, are not printed back.
    assert!(!out.contains(&database) && !out.contains("endpoint="), "{out}");
}

/// A move interrupted after some rows reached the database (simulated from
/// the spec's layout: the marker file naming the database, rows in
/// `vouch_kv`, and a registry that went on serving meanwhile) is finished
/// by running the command again: the stale rows are gone, the registry's
/// are all there. `--to-database` alone leaves the blobs on local disk, and
/// `database = ".."` in `--config` serves the result.
#[test]
fn an_interrupted_move_is_finished_by_running_it_again() {
    let Some(pg) = PostgresServer::start() else { return };
    let url = pg.database("resumed");
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let (server, addr) = common::try_serve(&data, &[], &[]).unwrap();
    let (_, manifest) = common::push_one_layer_image(&addr, "team/app", "v1", b"layer");
    drop(server);

    // What a first attempt left: the schema, the marker, and a row the
    // registry has since deleted (a tag that no longer exists).
    pg.psql(
        "resumed",
        "CREATE TABLE vouch_schema (version integer NOT NULL, instance text NOT NULL, owner text);
         CREATE TABLE vouch_kv (family text NOT NULL, k bytea NOT NULL, v bytea NOT NULL, PRIMARY KEY (family, k));
         INSERT INTO vouch_schema VALUES (1, '0123456789abcdef0123456789abcdef', NULL);
         INSERT INTO vouch_kv VALUES ('reg_tags', convert_to('team/app', 'UTF8') || '\\x00'::bytea || convert_to('gone', 'UTF8'), convert_to('sha256:00', 'UTF8'))",
    );
    std::fs::write(
        data.join("migrating-metadata"),
        "PostgreSQL instance 0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();

    let out = common::vouch_command()
        .args(["migrate", "--from", data.to_str().unwrap(), "--to-database", &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(!data.join("migrating-metadata").exists());
    assert!(data.join("blobs").exists(), "--to-database alone leaves the blobs");
    let stale = pg.psql(
        "resumed",
        "SELECT count(*) FROM vouch_kv WHERE family = 'reg_tags' AND position('gone'::bytea in k) > 0",
    );
    assert_eq!(stale, "0", "the interrupted copy's rows were cleared");

    let config = work.path().join("vouch.toml");
    std::fs::write(&config, format!("database = \"{url}\"\n")).unwrap();
    let (_server, addr) = common::try_serve(&data, &["--config", config.to_str().unwrap()], &[]).unwrap();
    let r = http(&addr, "GET", "/v2/team/app/manifests/v1", &[], b"").unwrap();
    assert_eq!(
        (r.status, r.header("Docker-Content-Digest")),
        (200, Some(manifest.as_str()))
    );
    let r = http(&addr, "GET", "/v2/team/app/tags/list", &[], b"").unwrap();
    assert!(!String::from_utf8_lossy(&r.body).contains("gone"));
}
