//! A registry served with `--database` by the previous landed version
//! (f1848a4, which put the registry metadata in PostgreSQL and kept the
//! ledger in the data directory; made by
//! `tools/make-upgrade-fixture-postgres.sh` with that version's binary,
//! committed as `tests/fixtures/datadir-session9-postgres.tar.gz`: the data
//! directory and the database as `pg_dump` wrote it) opens in this one: it
//! serves what was admitted, its ledger stays in the data directory and
//! grows on from the old checkpoint; `vouch migrate --to-database` then
//! moves the ledger to the database row for row, the same checkpoint is
//! served from there, `vouch ledger fsck --database` checks it in the
//! database, and `vouch audit --state` proves the log only grew across all
//! of it.

mod common;

use common::postgres::PostgresServer;
use common::{http, run};
use std::process::Command;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/datadir-session9-postgres.tar.gz"
);

#[test]
fn metadata_in_postgres_from_the_previous_version_serves_on_and_its_ledger_moves_there() {
    let Some(pg) = PostgresServer::start() else { return };
    let w = tempfile::tempdir().unwrap();
    let (ok, out) = run(Command::new("tar").arg("-xzmf").arg(FIXTURE).arg("-C").arg(w.path()));
    assert!(ok, "{out}");
    let url = pg.database("registry");
    pg.psql_file("registry", &w.path().join("registry.sql"));
    let fixture: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.path().join("fixture.json")).unwrap()).unwrap();
    let v1 = fixture["v1"].as_str().unwrap();
    let (data, state) = (w.path().join("data"), w.path().join("checkpoint"));
    let old_checkpoint = std::fs::read(&state).unwrap();

    // The old layout serves as it is: metadata in the database, the ledger
    // in the data directory, at the old checkpoint.
    let (server, addr) = common::try_serve(&data, &["--database", &url], &[]).unwrap();
    assert!(
        !data.join("ledger-database").exists(),
        "the ledger stays local until moved"
    );
    let r = http(&addr, "GET", "/v2/team/app/manifests/v1", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Docker-Content-Digest"), Some(v1));
    assert_eq!(r.header("Vouch-Admission-State"), Some("admitted"));
    let served = http(&addr, "GET", "/ledger/checkpoint", &[], b"").unwrap().body;
    assert_eq!(served, old_checkpoint);
    common::push_one_layer_image(&addr, "team/app", "v2", b"pushed after the upgrade");
    common::audit(&addr, &data, &state);
    let before_move = http(&addr, "GET", "/ledger/checkpoint", &[], b"").unwrap().body;
    drop(server);

    // vouch migrate moves the ledger alone: the metadata is there already.
    let out = common::vouch_command()
        .args(["migrate", "--from", data.to_str().unwrap(), "--to-database", &url])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vouch migrate: {err}");
    assert!(err.contains("metadata: already in PostgreSQL instance"), "{err}");
    assert!(
        err.contains("ledger: ") && err.contains("rows copied and checked"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("ledger-database")).unwrap(),
        std::fs::read_to_string(data.join("metadata-database")).unwrap()
    );

    // Served from the database: the same checkpoint, and it grows on.
    let (_server, addr) = common::try_serve(&data, &["--database", &url], &[]).unwrap();
    let after_move = http(&addr, "GET", "/ledger/checkpoint", &[], b"").unwrap().body;
    assert_eq!(after_move, before_move, "the same checkpoint after the move");
    let families = pg.psql("registry", "SELECT string_agg(DISTINCT family, ',') FROM vouch_kv");
    assert!(families.contains("ledger_entries"), "{families}");
    common::push_one_layer_image(&addr, "team/app", "v3", b"pushed after the move");
    let r = http(&addr, "GET", "/v2/team/app/manifests/v2", &[], b"").unwrap();
    assert_eq!(r.header("Vouch-Admission-State"), Some("admitted"));
    common::audit(&addr, &data, &state);
    // The ledger commands name where the ledger went instead of reading
    // the directory's stale copy.
    let out = common::vouch_command()
        .args(["ledger", "status", "--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("give --database naming it"),
        "{err}"
    );
    // With the database, they read it there: fsck recomputes every tile
    // and the root from the rows.
    let after = String::from_utf8(http(&addr, "GET", "/ledger/checkpoint", &[], b"").unwrap().body).unwrap();
    let ledger = |cmd: &str| {
        let out = common::vouch_command()
            .args(["ledger", cmd, "--data", data.to_str().unwrap(), "--database", &url])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
        text
    };
    let fsck = ledger("fsck");
    assert!(fsck.contains("fsck: ok"), "{fsck}");
    let status = ledger("status");
    assert!(status.contains(after.trim_end()), "{status}");
}
