//! Regression tests for every way quarantined content was once served
//! (spec/threat-model.md): cross-repository mounts, disguises as evidence,
//! unreferenced blobs, signatures made for another repository, impossible
//! upload ranges. In-process, through the real router and storage.

mod inproc;

use axum::http::StatusCode;
use inproc::*;

/// A registry trusting one key, with an image in `team/app` that is
/// quarantined (never signed), and one in `team/app` admitted (signed).
struct Scene {
    reg: Registry,
    key: p256::ecdsa::SigningKey,
    /// The quarantined image: manifest, config, layer digests, and bytes.
    q: (String, String, String),
    q_manifest: Vec<u8>,
    q_config: Vec<u8>,
    q_layer: Vec<u8>,
    /// The admitted image's manifest digest.
    admitted: String,
}

async fn scene(top: &str) -> Scene {
    let (policy, key) = key_policy(7, top);
    let reg = admission_registry(policy, false).await;
    let r = &reg.router;
    let q_layer = b"secret layer of an unsigned image".to_vec();
    let q_config = br#"{"architecture":"amd64","os":"linux","config":{"Env":["SECRET=1"]}}"#.to_vec();
    let c = push_blob(r, "team/app", &q_config, None).await;
    let l = push_blob(r, "team/app", &q_layer, None).await;
    let q_manifest = image_manifest(&c, q_config.len(), &l, q_layer.len(), "");
    let put = put_manifest(r, "team/app", "unsigned", OCI, &q_manifest, None).await;
    assert_eq!(put.header("vouch-admission-state"), "denied");
    let q = (sha256(&q_manifest), c, l);
    let (admitted, ..) = push_image(r, "team/app", "signed", b"layer of the signed image", None).await;
    let put = push_signature(r, "team/app", &admitted, &key, None).await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());
    assert!(anonymous_gets(r, &format!("/v2/team/app/manifests/{admitted}")).await);
    for d in [&q.0] {
        assert!(!anonymous_gets(r, &format!("/v2/team/app/manifests/{d}")).await);
    }
    for d in [&q.1, &q.2] {
        assert!(!anonymous_gets(r, &format!("/v2/team/app/blobs/{d}")).await);
    }
    Scene {
        reg,
        key,
        q,
        q_manifest,
        q_config,
        q_layer,
        admitted,
    }
}

impl Scene {
    /// Nothing of the quarantined image is served, anywhere it was linked.
    async fn nothing_served(&self, repos: &[&str]) {
        let r = &self.reg.router;
        for repo in repos {
            for d in [&self.q.1, &self.q.2] {
                let get = call(r, "GET", &format!("/v2/{repo}/blobs/{d}"), &[], vec![]).await;
                assert_ne!(get.status, StatusCode::OK, "blob {d} served in {repo}");
                let head = call(r, "HEAD", &format!("/v2/{repo}/blobs/{d}"), &[], vec![]).await;
                assert_ne!(head.status, StatusCode::OK, "blob {d} answered HEAD in {repo}");
            }
            let m = call(r, "GET", &format!("/v2/{repo}/manifests/{}", self.q.0), &[], vec![]).await;
            assert_ne!(m.status, StatusCode::OK, "the quarantined manifest served in {repo}");
            assert!(m.body != self.q_manifest);
        }
        assert!(!anonymous_gets(r, "/v2/team/app/manifests/unsigned").await);
    }
}

#[tokio::test]
async fn a_mount_never_makes_readable_what_the_caller_could_not_read() {
    let s = scene("").await;
    let r = &s.reg.router;
    // Into a new repository, and into one where an image is admitted.
    let (other, ..) = push_image(r, "other/app", "v1", b"other admitted layer", None).await;
    push_signature(r, "other/app", &other, &s.key, None).await;
    for repo in ["fresh/app", "other/app"] {
        for d in [&s.q.1, &s.q.2] {
            // Named, or found by the registry (a mount without `from`).
            for from in ["&from=team/app", ""] {
                let m = call(
                    r,
                    "POST",
                    &format!("/v2/{repo}/blobs/uploads/?mount={d}{from}"),
                    &[],
                    vec![],
                )
                .await;
                assert_eq!(
                    m.status,
                    StatusCode::ACCEPTED,
                    "a mount of quarantined {d} ({from:?}) must fall back to an upload"
                );
            }
        }
    }
    s.nothing_served(&["fresh/app", "other/app"]).await;
    // An admitted image's layer mounts (the caller could read it).
    let layer = sha256(b"layer of the signed image");
    let m = call(
        r,
        "POST",
        &format!("/v2/fresh/app/blobs/uploads/?mount={layer}&from=team/app"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(m.status, StatusCode::CREATED);
    // Mounted, but referenced by nothing there: not served either (the
    // default policy serves no unreferenced blobs).
    assert!(!anonymous_gets(r, &format!("/v2/fresh/app/blobs/{layer}")).await);
    // Without `from`, the registry finds where the caller could read it.
    let m = call(
        r,
        "POST",
        &format!("/v2/third/app/blobs/uploads/?mount={layer}"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(m.status, StatusCode::CREATED);
    assert_eq!(m.header("location"), format!("/v2/third/app/blobs/{layer}"));
    // A blob stored nowhere: an upload session, as with `from`.
    let nowhere = sha256(b"never pushed");
    let m = call(
        r,
        "POST",
        &format!("/v2/third/app/blobs/uploads/?mount={nowhere}"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(m.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn the_quarantined_manifest_under_its_own_sig_tag_is_still_quarantined() {
    let s = scene("").await;
    let r = &s.reg.router;
    let tag = format!("sha256-{}.sig", &s.q.0[7..]);
    let put = put_manifest(r, "team/app", &tag, OCI, &s.q_manifest, None).await;
    assert_eq!(put.status, StatusCode::CREATED);
    assert_eq!(put.header("vouch-admission-state"), "denied");
    assert!(!anonymous_gets(r, &format!("/v2/team/app/manifests/{tag}")).await);
    s.nothing_served(&["team/app"]).await;
    // The same bytes under an .att tag, a bare sha256-<hex> tag, .sbom.
    for suffix in [".att", "", ".sbom"] {
        let tag = format!("sha256-{}{suffix}", &s.q.0[7..]);
        put_manifest(r, "team/app", &tag, OCI, &s.q_manifest, None).await;
        assert!(
            !anonymous_gets(r, &format!("/v2/team/app/manifests/{tag}")).await,
            "{tag}"
        );
    }
    s.nothing_served(&["team/app"]).await;
}

#[tokio::test]
async fn a_fake_signature_carrying_quarantined_blobs_serves_none_of_them() {
    let s = scene("").await;
    let r = &s.reg.router;
    // The quarantined layer relabelled as a simple signing payload.
    let config = format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#, s.q.2);
    let c = push_blob(r, "team/app", config.as_bytes(), None).await;
    let fake = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{}}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"{}","size":{},"annotations":{{"dev.cosignproject.cosign/signature":"AAAA"}}}}]}}"#,
        config.len(),
        s.q.2,
        s.q_layer.len()
    );
    let tag = format!("sha256-{}.sig", &s.admitted[7..]);
    let put = put_manifest(r, "team/app", &tag, OCI, fake.as_bytes(), None).await;
    assert_eq!(put.status, StatusCode::CREATED);
    assert_ne!(
        put.header("vouch-admission-state"),
        "evidence",
        "a gzip'd tar is no signature payload"
    );
    // The image's config as the fake signature's config.
    let payload = vouch::signature::payload(
        "registry/team/app",
        &vouch_ledger::entry::Digest::parse(&s.admitted).unwrap(),
    );
    let p = push_blob(r, "team/app", &payload, None).await;
    let fake = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"{p}","size":{},"annotations":{{"dev.cosignproject.cosign/signature":"AAAA"}}}}]}}"#,
        s.q.1,
        s.q_config.len(),
        payload.len()
    );
    let put = put_manifest(r, "team/app", &tag, OCI, fake.as_bytes(), None).await;
    assert_eq!(put.status, StatusCode::CREATED);
    assert_ne!(
        put.header("vouch-admission-state"),
        "evidence",
        "an image config is no signature config"
    );
    s.nothing_served(&["team/app"]).await;
    assert!(anonymous_gets(r, &format!("/v2/team/app/manifests/{}", s.admitted)).await);
}

#[tokio::test]
async fn a_runnable_image_with_a_subject_is_no_attachment_and_no_referrer() {
    let s = scene("").await;
    let r = &s.reg.router;
    let subject = format!(
        r#","subject":{{"mediaType":"{OCI}","digest":"{}","size":10}}"#,
        s.admitted
    );
    for extra in [
        subject.clone(),
        format!(r#","artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json"{subject}"#),
    ] {
        let m = image_manifest(&s.q.1, s.q_config.len(), &s.q.2, s.q_layer.len(), &extra);
        let put = put_manifest(r, "team/app", &sha256(&m), OCI, &m, None).await;
        assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());
        assert_eq!(put.header("vouch-admission-state"), "denied");
        assert!(!anonymous_gets(r, &format!("/v2/team/app/manifests/{}", sha256(&m))).await);
    }
    let listing = call(r, "GET", &format!("/v2/team/app/referrers/{}", s.admitted), &[], vec![]).await;
    let index: serde_json::Value = serde_json::from_slice(&listing.body).unwrap();
    let listed: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["digest"].as_str())
        .collect();
    for m in &listed {
        assert!(
            anonymous_gets(r, &format!("/v2/team/app/manifests/{m}")).await,
            "listed but not readable: {m}"
        );
    }
    s.nothing_served(&["team/app"]).await;
}

#[tokio::test]
async fn a_bundle_looking_referrer_listing_a_quarantined_layer_serves_nothing() {
    let s = scene("").await;
    let r = &s.reg.router;
    let empty = push_blob(r, "team/app", b"{}", None).await;
    let bt = "application/vnd.dev.sigstore.bundle.v0.3+json";
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI}","artifactType":"{bt}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"{bt}","digest":"{}","size":{}}}],"subject":{{"mediaType":"{OCI}","digest":"{}","size":10}}}}"#,
        s.q.2,
        s.q_layer.len(),
        s.admitted
    );
    let put = put_manifest(r, "team/app", &sha256(m.as_bytes()), OCI, m.as_bytes(), None).await;
    assert_eq!(put.status, StatusCode::CREATED);
    assert_ne!(put.header("vouch-admission-state"), "evidence");
    s.nothing_served(&["team/app"]).await;
}

#[tokio::test]
async fn an_admitted_index_listing_a_quarantined_attachment_serves_not_its_bytes_as_a_blob() {
    let s = scene("").await;
    let r = &s.reg.router;
    // An attachment of the admitted image (unsigned, and no rule admits
    // attachments): quarantined, and not covered by an index listing it.
    let empty = push_blob(r, "team/app", b"{}", None).await;
    let note = push_blob(r, "team/app", b"a private note", None).await;
    let attachment = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI}","artifactType":"application/x.note","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"text/plain","digest":"{note}","size":14}}],"subject":{{"mediaType":"{OCI}","digest":"{}","size":10}}}}"#,
        s.admitted
    );
    let a = sha256(attachment.as_bytes());
    let put = put_manifest(r, "team/app", &a, OCI, attachment.as_bytes(), None).await;
    assert_eq!(put.header("vouch-admission-state"), "denied", "{}", put.text());
    // A signed index listing the admitted image and the attachment.
    let admitted_len = call(r, "GET", &format!("/v2/team/app/manifests/{}", s.admitted), &[], vec![])
        .await
        .body
        .len();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI}","digest":"{}","size":{admitted_len}}},{{"mediaType":"{OCI}","digest":"{a}","size":{}}}]}}"#,
        s.admitted,
        attachment.len()
    );
    let put = put_manifest(r, "team/app", "multi", OCI_INDEX, index.as_bytes(), None).await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());
    let put = push_signature(r, "team/app", &sha256(index.as_bytes()), &s.key, None).await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());
    assert!(
        anonymous_gets(r, "/v2/team/app/manifests/multi").await,
        "the signed index is admitted"
    );
    assert!(!anonymous_gets(r, &format!("/v2/team/app/manifests/{a}")).await);
    // The attachment's bytes uploaded as a blob: the index lists a
    // manifest by that digest, which makes the blob no content of it.
    push_blob(r, "team/app", attachment.as_bytes(), None).await;
    assert!(
        !anonymous_gets(r, &format!("/v2/team/app/blobs/{a}")).await,
        "the quarantined attachment served as a blob"
    );
    s.nothing_served(&["team/app"]).await;
}

#[tokio::test]
async fn unreferenced_blobs_are_served_only_when_the_policy_says_so() {
    for (top, served) in [("", false), ("unreferenced_blobs = \"serve\"", true)] {
        let s = scene(top).await;
        let r = &s.reg.router;
        let d = push_blob(r, "team/app", b"referenced by nothing", None).await;
        assert_eq!(
            anonymous_gets(r, &format!("/v2/team/app/blobs/{d}")).await,
            served,
            "{top}"
        );
        // A quarantined image's blobs are referenced: never served.
        s.nothing_served(&["team/app"]).await;
    }
}

#[tokio::test]
async fn a_signature_made_for_another_repository_does_not_admit() {
    let s = scene("").await;
    let r = &s.reg.router;
    // The same bytes in dev/app and prod/app, signed for dev/app only.
    let (dev, ..) = push_image(r, "dev/app", "v1", b"promoted bytes", None).await;
    let (prod, ..) = push_image(r, "prod/app", "v1", b"promoted bytes", None).await;
    assert_eq!(dev, prod);
    push_signature(r, "dev/app", &dev, &s.key, None).await;
    assert!(anonymous_gets(r, "/v2/dev/app/manifests/v1").await);
    let m = signature_manifest(r, "prod/app", &prod, "registry/dev/app", &s.key, None).await;
    let tag = format!("sha256-{}.sig", &prod[7..]);
    put_manifest(r, "prod/app", &tag, OCI, &m, None).await;
    let denied = call(r, "GET", "/v2/prod/app/manifests/v1", &[], vec![]).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert!(
        denied
            .text()
            .contains("signed for registry/dev/app, not for registry/prod/app"),
        "{}",
        denied.text()
    );
    // A rule may relax it: signed_identity = "any" admits the same bytes.
    let (policy, key) = key_policy(7, "");
    let text = String::from_utf8(policy.canonical().to_vec()).unwrap();
    assert!(
        !text.contains("signed_identity"),
        "the default is not written into the digest"
    );
    let relaxed = vouch::policy::Policy::parse(
        &format!(
            "version = 1\nname = \"relaxed\"\n[keys]\nk = \"\"\"{}\"\"\"\n[[rule]]\nrepositories = \"**\"\nsigned_identity = \"any\"\nsignatures = {{ keys = [\"k\"] }}\n",
            p256::pkcs8::EncodePublicKey::to_public_key_pem(key.verifying_key(), p256::pkcs8::LineEnding::LF).unwrap()
        ),
        std::path::Path::new("p.toml"),
    )
    .unwrap();
    let reg = admission_registry(relaxed, false).await;
    let (prod, ..) = push_image(&reg.router, "prod/app", "v1", b"promoted bytes", None).await;
    let m = signature_manifest(&reg.router, "prod/app", &prod, "elsewhere/dev/app", &key, None).await;
    put_manifest(
        &reg.router,
        "prod/app",
        &format!("sha256-{}.sig", &prod[7..]),
        OCI,
        &m,
        None,
    )
    .await;
    assert!(anonymous_gets(&reg.router, "/v2/prod/app/manifests/v1").await);
}

#[tokio::test]
async fn an_impossible_upload_range_is_416_and_stores_nothing() {
    let reg = plain_registry();
    let r = &reg.router;
    let start = call(r, "POST", "/v2/a/b/blobs/uploads/", &[], vec![]).await;
    let loc = start.header("location").to_owned();
    for range in ["0-18446744073709551615", "5-4", "1-10", "0-", "x-y", "0-9"] {
        let patch = call(r, "PATCH", &loc, &[("content-range", range)], b"0123".to_vec()).await;
        assert_eq!(patch.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        let status = call(r, "GET", &loc, &[], vec![]).await;
        assert_eq!(status.header("range"), "0-0", "{range}: nothing stored");
    }
    let ok = call(r, "PATCH", &loc, &[("content-range", "0-3")], b"0123".to_vec()).await;
    assert_eq!((ok.status, ok.header("range")), (StatusCode::ACCEPTED, "0-3"));
    // The closing PUT's range is checked as a PATCH's is.
    let d = sha256(b"01234567");
    let put = call(
        r,
        "PUT",
        &format!("{loc}?digest={d}"),
        &[("content-range", "8-11")],
        b"4567".to_vec(),
    )
    .await;
    assert_eq!(put.status, StatusCode::RANGE_NOT_SATISFIABLE);
    let put = call(
        r,
        "PUT",
        &format!("{loc}?digest={d}"),
        &[("content-range", "4-7")],
        b"4567".to_vec(),
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());
}
