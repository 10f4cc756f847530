//! A data directory written by the previous landed version (402a8ee; made by
//! `tools/make-upgrade-fixture.sh` with that version's binary, committed as
//! `tests/fixtures/datadir-session3.tar.gz`) opens in this one: what was
//! admitted stays admitted and served, what that version wrongly served as
//! "evidence" for its tag's name is classified by its structure and
//! quarantined, an open upload session resumes, and the ledger grows on
//! from the old checkpoint (`vouch audit --state` proves it only grew).

mod common;

use common::{http, run};
use std::process::{Command, Stdio};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/datadir-session3.tar.gz");

#[test]
fn a_data_directory_of_the_previous_version_opens_and_its_ledger_grows_on() {
    let w = tempfile::tempdir().unwrap();
    // Extracted with fresh modification times (-m), as a data directory in
    // use has: the fixture's upload session is older than the upload TTL
    // by now, and would be swept as expired instead of resumed.
    let (ok, out) = run(Command::new("tar").arg("-xzmf").arg(FIXTURE).arg("-C").arg(w.path()));
    assert!(ok, "{out}");
    let fixture: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.path().join("fixture.json")).unwrap()).unwrap();
    let f = |k: &str| fixture[k].as_str().unwrap().to_owned();
    let (v1, v2) = (f("v1"), f("v2"));
    let data = w.path().join("data");
    let log = w.path().join("serve.log");
    let (mut server, addr) = common::start_server(
        &data,
        &["--trust-key", w.path().join("team.pub").to_str().unwrap()],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let stderr = std::fs::read_to_string(&log).unwrap();
    // v1, the publisher's and vouch's .sig manifests of v1, and v2 (which the old
    // version had turned into "evidence" when its bytes came under its .sig tag).
    assert!(
        stderr.contains("classified 4 manifest(s) stored by an earlier version"),
        "{stderr}"
    );

    let get = |path: String| http(&addr, "GET", &path, &[], &[]).unwrap();
    // The admitted image, its layer and its signatures are served as before.
    let m = get("/v2/team/app/manifests/v1".into());
    assert_eq!((m.status, m.header("docker-content-digest")), (200, Some(v1.as_str())));
    assert_eq!(get(format!("/v2/team/app/blobs/{}", f("v1_layer"))).status, 200);
    let sig = get(format!("/v2/team/app/manifests/sha256-{}.sig", &v1[7..]));
    assert_eq!(sig.status, 200, "v1's signatures are evidence by their structure");
    assert_eq!(sig.header("vouch-admission-state"), Some("evidence"));
    // The denied image stays quarantined, and so does its own manifest that
    // the old version stored as "evidence" under v2's .sig tag.
    assert_eq!(get("/v2/team/app/manifests/v2".into()).status, 403);
    let disguised = get(format!("/v2/team/app/manifests/sha256-{}.sig", &v2[7..]));
    assert_eq!(disguised.status, 403, "{}", String::from_utf8_lossy(&disguised.body));
    for blob in [f("v2_layer"), f("v2_config")] {
        assert_eq!(get(format!("/v2/team/app/blobs/{blob}")).status, 403, "{blob}");
    }

    // The open upload session resumes where it was.
    let session = f("session");
    let status = http(&addr, "GET", &session, &[], &[]).unwrap();
    assert_eq!((status.status, status.header("range")), (204, Some("0-4")));
    let d = vouch::registry::digest::sha256_of(b"hello, upgraded").to_string();
    let put = http(&addr, "PUT", &format!("{session}?digest={d}"), &[], b", upgraded").unwrap();
    assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));

    // The ledger grows on: a new image, denied then signed and admitted.
    let image = common::write_layout(&w.path().join("layout"), "v3", "new after the upgrade\n");
    let (ok, out) = run(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v3", w.path().join("layout").display()),
        &format!("docker://{addr}/team/app:v3"),
    ]));
    assert!(ok, "{out}");
    let (ok, out) = run(Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(["sign", &format!("{addr}/team/app:v3"), "--key"])
        .arg(w.path().join("team.key")));
    assert!(ok, "{out}");
    let m = get("/v2/team/app/manifests/v3".into());
    assert_eq!(
        (m.status, m.header("docker-content-digest")),
        (200, Some(image.as_str()))
    );
    // Every blob of both `.sig` manifests is served and is what its digest
    // says: v1's written as files by the old version, v3's (with vouch's
    // new countersignature) kept inline in the metadata store by this one.
    for image in [v1.as_str(), image.as_str()] {
        let sig = get(format!("/v2/team/app/manifests/sha256-{}.sig", &image[7..]));
        assert_eq!(sig.status, 200, "{image}: {}", String::from_utf8_lossy(&sig.body));
        let doc: serde_json::Value = serde_json::from_slice(&sig.body).unwrap();
        let layers = doc["layers"].as_array().unwrap();
        assert!(
            layers.len() >= 2,
            "{image}: the publisher's signature and vouch's: {doc}"
        );
        let blobs = layers
            .iter()
            .chain([&doc["config"]])
            .map(|d| d["digest"].as_str().unwrap().to_owned());
        for blob in blobs {
            let b = get(format!("/v2/team/app/blobs/{blob}"));
            assert_eq!(b.status, 200, "{image}: {blob}");
            assert_eq!(format!("sha256:{}", common::sha256_hex(&b.body)), blob);
        }
    }
    let (ok, out) = run(Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(["audit", "--log", &format!("http://{addr}"), "--log-key"])
        .arg(data.join("ledger.vkey"))
        .arg("--state")
        .arg(w.path().join("checkpoint"))
        .arg("--replay"));
    assert!(ok && out.contains("consistent with the remembered checkpoint"), "{out}");
    server.kill().unwrap();
    server.wait().unwrap();
}
