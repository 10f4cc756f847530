//! Every digest algorithm vouch accepts works end to end through admission,
//! against the real `vouch serve` and the real `vouch` client: sha256,
//! sha512 and blake3. Blobs and the manifest are pushed by that algorithm
//! (digests computed by the `sha2` and `blake3` crates here, not by vouch),
//! the image is quarantined until signed, `vouch sign` signs it (under the
//! `.sig` tag, or with an OCI 1.1 referrer where that tag cannot exist: a
//! sha512 tag would be 135 characters), it is admitted and pulled whole by
//! digest with `Docker-Content-Digest` in its own algorithm, and `vouch
//! verify` checks its admission against the ledger.

mod common;

use common::{http, run};
use sha2::Digest as _;
use std::process::{Command, Stdio};

fn digest(alg: &str, bytes: &[u8]) -> String {
    let hex = match alg {
        "sha256" => hex::encode(sha2::Sha256::digest(bytes)),
        "sha512" => hex::encode(sha2::Sha512::digest(bytes)),
        "blake3" => blake3::hash(bytes).to_hex().to_string(),
        other => panic!("{other}"),
    };
    format!("{alg}:{hex}")
}

fn vouch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vouch"));
    c.env_remove("VOUCH_CREDS");
    c
}

#[test]
fn sha256_sha512_and_blake3_images_are_pushed_signed_admitted_pulled_and_verified() {
    let w = tempfile::tempdir().unwrap();
    let (ok, out) = run(vouch().args(["keygen", "--out"]).arg(w.path().join("team")));
    assert!(ok, "{out}");
    let data = w.path().join("data");
    let public = w.path().join("team.pub");
    let (server, addr) = common::start_server(&data, &["--trust-key", public.to_str().unwrap()], Stdio::null());
    let _server = common::KillOnDrop(server);

    for alg in ["sha256", "sha512", "blake3"] {
        let repo = format!("digests/{alg}");
        // Blobs by the algorithm: monolithic, and in two chunks.
        let config = format!(r#"{{"architecture":"amd64","os":"linux","alg":"{alg}"}}"#).into_bytes();
        let layer = format!("a layer addressed by {alg}").into_bytes();
        let (c, l) = (digest(alg, &config), digest(alg, &layer));
        let r = http(
            &addr,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?digest={c}"),
            &[],
            &config,
        )
        .unwrap();
        assert_eq!(r.status, 201, "{alg} config: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("docker-content-digest"), Some(c.as_str()));
        let r = http(&addr, "POST", &format!("/v2/{repo}/blobs/uploads/"), &[], &[]).unwrap();
        assert_eq!(r.status, 202);
        let location = r.header("location").unwrap().to_owned();
        let (a, b) = layer.split_at(5);
        let r = http(&addr, "PATCH", &location, &[("Content-Range", "0-4")], a).unwrap();
        assert_eq!(r.status, 202);
        let location = r.header("location").unwrap().to_owned();
        let sep = if location.contains('?') { '&' } else { '?' };
        let r = http(&addr, "PUT", &format!("{location}{sep}digest={l}"), &[], b).unwrap();
        assert_eq!(r.status, 201, "{alg} layer: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("docker-content-digest"), Some(l.as_str()));

        // The manifest, by a digest of the algorithm.
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{l}","size":{}}}]}}"#,
            config.len(),
            layer.len()
        );
        let m = digest(alg, manifest.as_bytes());
        let ct = ("Content-Type", "application/vnd.oci.image.manifest.v1+json");
        let put = http(
            &addr,
            "PUT",
            &format!("/v2/{repo}/manifests/{m}"),
            &[ct],
            manifest.as_bytes(),
        )
        .unwrap();
        assert_eq!(
            put.status,
            201,
            "{alg} manifest: {}",
            String::from_utf8_lossy(&put.body)
        );
        assert_eq!(put.header("docker-content-digest"), Some(m.as_str()));
        assert_eq!(put.header("vouch-admission-state"), Some("denied"));
        let path = format!("/v2/{repo}/manifests/{m}");
        assert_eq!(
            http(&addr, "GET", &path, &[], &[]).unwrap().status,
            403,
            "{alg}: served unsigned"
        );

        // Signed with the vouch client: admitted.
        let (ok, out) = run(vouch()
            .args(["sign", &format!("{addr}/{repo}@{m}"), "--key"])
            .arg(w.path().join("team.key")));
        assert!(ok, "{alg}: {out}");
        if alg == "sha512" {
            assert!(out.contains("referrer"), "{out}");
        }
        let get = http(&addr, "GET", &path, &[], &[]).unwrap();
        assert_eq!(get.status, 200, "{alg}: not admitted once signed");
        assert_eq!(get.body, manifest.as_bytes());
        assert_eq!(get.header("docker-content-digest"), Some(m.as_str()));
        for (d, bytes) in [(&c, &config), (&l, &layer)] {
            let blob = http(&addr, "GET", &format!("/v2/{repo}/blobs/{d}"), &[], &[]).unwrap();
            assert_eq!((blob.status, &blob.body), (200, bytes), "{alg} blob {d}");
        }
        // The signature is a referrer of the image (sha512), or under its tag.
        let referrers = http(&addr, "GET", &format!("/v2/{repo}/referrers/{m}"), &[], &[]).unwrap();
        assert_eq!(referrers.status, 200);

        // The client checks the admission against the ledger.
        let (ok, out) = run(vouch()
            .args(["verify", &format!("{addr}/{repo}@{m}"), "--log-key"])
            .arg(data.join("ledger.vkey")));
        assert!(ok && out.contains("verified"), "{alg}: {out}");
    }
}
