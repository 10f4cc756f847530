//! Admission in-process: arrival order, pushers reading their quarantined
//! images, blob quarantine, index coverage and re-evaluation under a new
//! policy.

mod api;

use api::*;
use axum::http::StatusCode;

#[tokio::test]
async fn admission_ends_the_same_whatever_arrives_first_and_pushers_can_read_their_images() {
    let dir = tempfile::tempdir().unwrap();
    let (policy, key) = key_policy(5);
    let (state, r, auth) = admission_app(dir.path(), policy).await;

    // Blobs and the image manifest bytes, prepared (not pushed) up front.
    let (c, l) = (
        push_blob_as(&r, "order/app", b"{}", &auth).await,
        push_blob_as(&r, "order/app", b"signed layer", &auth).await,
    );
    let image = image_manifest(&c, 2, &l, 12, "");
    let image_digest = sha256(&image);

    // The signature arrives first: payload blob, then the .sig manifest.
    let sig_tag = format!("sha256-{}.sig", &image_digest[7..]);
    let put = push_signature(&r, "order/app", &image_digest, &key, &auth).await;
    assert_eq!(
        (put.status, put.header("vouch-admission-state")),
        (StatusCode::CREATED, "evidence")
    );
    let hdrs = [("authorization", auth.as_str()), ("content-type", OCI)];
    // Then the image: admitted at once, from the signature already there.
    let put = call(&r, "PUT", "/v2/order/app/manifests/v1", &hdrs, image.clone()).await;
    assert_eq!(put.header("vouch-admission-state"), "admitted");
    assert_eq!(
        call(&r, "GET", "/v2/order/app/manifests/v1", &[], vec![]).await.body,
        image
    );
    // The signature is always readable, anonymously too.
    assert_eq!(
        call(&r, "GET", &format!("/v2/order/app/manifests/{sig_tag}"), &[], vec![])
            .await
            .status,
        StatusCode::OK
    );

    // An unsigned image is denied to anonymous pulls, but its pusher reads it.
    let unsigned = image_manifest(&c, 2, &l, 12, r#","annotations":{"unsigned":"yes"}"#);
    let put = call(&r, "PUT", "/v2/order/app/manifests/v2", &hdrs, unsigned.clone()).await;
    assert_eq!(put.header("vouch-admission-state"), "denied");
    let anon = call(&r, "GET", "/v2/order/app/manifests/v2", &[], vec![]).await;
    assert_eq!((anon.status, anon.code().as_str()), (StatusCode::FORBIDDEN, "DENIED"));
    assert!(String::from_utf8_lossy(&anon.body).contains("needs signatures by 1 of 1"));
    // HEAD tells a reader without push rights the digest (so signers can
    // resolve what to sign), never the bytes or their length.
    let head = call(&r, "HEAD", "/v2/order/app/manifests/v2", &[], vec![]).await;
    assert_eq!(head.status, StatusCode::FORBIDDEN);
    assert_eq!(head.header("docker-content-digest"), sha256(&unsigned));
    let own = call(
        &r,
        "GET",
        "/v2/order/app/manifests/v2",
        &[("authorization", auth.as_str())],
        vec![],
    )
    .await;
    assert_eq!(own.body, unsigned);
    // The admitted image pushed again under another tag: its decision
    // stands (no new one), and the tag is logged. Deleting that tag is too.
    let hdrs = [("authorization", auth.as_str()), ("content-type", OCI)];
    let again = call(&r, "PUT", "/v2/order/app/manifests/again", &hdrs, image.clone()).await;
    assert_eq!(again.header("vouch-admission-state"), "admitted");
    // Deleting a tag of admitted content is an admin's act.
    let del = |who: String| {
        let r = r.clone();
        async move {
            call(
                &r,
                "DELETE",
                "/v2/order/app/manifests/again",
                &[("authorization", who.as_str())],
                vec![],
            )
            .await
        }
    };
    let refused = del(auth.clone()).await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (StatusCode::FORBIDDEN, "DENIED")
    );
    assert_eq!(del(basic("admin", "pw")).await.status, StatusCode::ACCEPTED);

    // Ledger: the policy, the admit and tag of v1, the deny of v2 (the early
    // signature made no decision), the tag "again", its deletion.
    let kinds: Vec<String> = (0..state.ledger.size())
        .map(
            |i| match vouch_ledger::entry::Entry::decode(&state.ledger.entry(i).unwrap().unwrap()).unwrap() {
                vouch_ledger::entry::Entry::Policy(_) => "policy".to_owned(),
                vouch_ledger::entry::Entry::Decision(d) => format!("{:?}", d.verdict),
                vouch_ledger::entry::Entry::Tag(t) => format!("tag {} prev {}", t.tag, t.previous.is_some()),
                vouch_ledger::entry::Entry::Delete(d) => format!("delete {:?}", d.tag),
            },
        )
        .collect();
    assert_eq!(
        kinds,
        [
            "policy",
            "Admit",
            "tag v1 prev false",
            "Deny",
            "tag again prev false",
            "delete Some(\"again\")"
        ]
    );
}

/// A registry under `policy`, with one user ("pusher"): its state, its
/// router, and that user's Authorization value. A second user, "admin"
/// (password "pw"), is an admin of every repository.
#[tokio::test]
async fn quarantine_covers_blobs_an_admitted_index_covers_its_platforms_and_policies_reevaluate() {
    let dir = tempfile::tempdir().unwrap();
    let (policy_a, key_a) = key_policy(11);
    let (policy_b, key_b) = key_policy(12);
    let (state, r, auth) = admission_app(dir.path(), policy_a).await;
    let auth = auth.as_str();
    let hdrs = |ct: &'static str| [("authorization", auth), ("content-type", ct)];
    let anon_get = |path: String| {
        let r = r.clone();
        async move { call(&r, "GET", &path, &[], vec![]).await.status }
    };

    // A two-platform image: two manifests (pushed by digest) and an index.
    let mut platforms = Vec::new();
    for arch in ["amd64", "arm64"] {
        let config = format!(r#"{{"architecture":"{arch}"}}"#);
        let layer = format!("{arch} layer");
        let mut blobs = Vec::new();
        for b in [config.as_bytes(), layer.as_bytes()] {
            blobs.push(push_blob_as(&r, "multi/app", b, auth).await);
        }
        let m = image_manifest(&blobs[0], config.len(), &blobs[1], layer.len(), "");
        let d = sha256(&m);
        let put = call(
            &r,
            "PUT",
            &format!("/v2/multi/app/manifests/{d}"),
            &hdrs(OCI),
            m.clone(),
        )
        .await;
        assert_eq!(put.header("vouch-admission-state"), "denied");
        platforms.push((d, m.len(), blobs[1].clone()));
    }
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
        platforms
            .iter()
            .map(|(d, n, _)| format!(r#"{{"mediaType":"{OCI}","digest":"{d}","size":{n}}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    let index_digest = sha256(index.as_bytes());
    let put = call(
        &r,
        "PUT",
        "/v2/multi/app/manifests/v1",
        &hdrs("application/vnd.oci.image.index.v1+json"),
        index.into_bytes(),
    )
    .await;
    assert_eq!(put.header("vouch-admission-state"), "denied");

    // Quarantined: the manifests, and their layers too, to anonymous pulls;
    // HEAD answers, and the pusher reads everything.
    let layer_path = format!("/v2/multi/app/blobs/{}", platforms[0].2);
    assert_eq!(anon_get(layer_path.clone()).await, StatusCode::FORBIDDEN);
    let denied = call(&r, "GET", &layer_path, &[], vec![]).await;
    assert_eq!(denied.code(), "DENIED");
    assert!(String::from_utf8_lossy(&denied.body).contains("belongs to no admitted image"));
    // HEAD of a withheld blob is 404: a client checking before an upload
    // uploads (which changes nothing), and learns nothing.
    assert_eq!(
        call(&r, "HEAD", &layer_path, &[], vec![]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&r, "HEAD", &layer_path, &[("authorization", auth)], vec![])
            .await
            .status,
        StatusCode::OK
    );
    let own = call(&r, "GET", &layer_path, &[("authorization", auth)], vec![]).await;
    assert_eq!(own.body, b"amd64 layer");
    let child_path = format!("/v2/multi/app/manifests/{}", platforms[1].0);
    assert_eq!(anon_get(child_path.clone()).await, StatusCode::FORBIDDEN);

    // Signing the index admits it, and with it both platforms and their
    // layers, each with its own logged decision naming the index.
    let put = push_signature(&r, "multi/app", &index_digest, &key_a, auth).await;
    assert_eq!(put.header("vouch-admission-state"), "evidence");
    for path in [
        "/v2/multi/app/manifests/v1".to_owned(),
        child_path.clone(),
        layer_path.clone(),
    ] {
        assert_eq!(anon_get(path.clone()).await, StatusCode::OK, "{path}");
    }
    let decisions = |from: u64| -> Vec<(String, String, Vec<String>)> {
        (from..state.ledger.size())
            .filter_map(|i| {
                match vouch_ledger::entry::Entry::decode(&state.ledger.entry(i).unwrap().unwrap()).unwrap() {
                    vouch_ledger::entry::Entry::Decision(d) => {
                        Some((d.digest.to_string(), format!("{:?}", d.verdict), d.reasons))
                    }
                    _ => None,
                }
            })
            .collect()
    };
    let admits: Vec<_> = decisions(0).into_iter().filter(|d| d.1 == "Admit").collect();
    assert_eq!(admits.len(), 3, "{admits:?}");
    assert_eq!(admits[0].0, index_digest);
    for (d, _, reasons) in &admits[1..] {
        assert!(platforms.iter().any(|p| &p.0 == d));
        assert!(reasons
            .iter()
            .any(|r| r.contains(&format!("covered by the admitted index {index_digest}"))));
    }

    // An image signed by key B only: denied under policy A.
    for b in [&b"{}"[..], b"solo"] {
        push_blob_as(&r, "solo/app", b, auth).await;
    }
    let solo = image_manifest(&sha256(b"{}"), 2, &sha256(b"solo"), 4, "");
    let solo_digest = sha256(&solo);
    let put = call(&r, "PUT", "/v2/solo/app/manifests/v1", &hdrs(OCI), solo).await;
    assert_eq!(put.header("vouch-admission-state"), "denied");
    push_signature(&r, "solo/app", &solo_digest, &key_b, auth).await;
    assert_eq!(
        anon_get("/v2/solo/app/manifests/v1".into()).await,
        StatusCode::FORBIDDEN
    );

    // Policy B comes into force: re-evaluating the quarantined images admits
    // the one B signed; admitted images stay admitted.
    let b = vouch::admission::Admission::load(policy_b, &state.ledger, &state.meta)
        .await
        .unwrap()
        .with_registry_names(&["registry".to_owned()]);
    let report = b.reevaluate(&state, vouch::admission::Scope::Quarantined).await;
    assert_eq!((report.evaluated, report.admitted, report.denied), (1, 1, 0));
    assert_eq!(anon_get("/v2/solo/app/manifests/v1".into()).await, StatusCode::OK);
    assert_eq!(anon_get(child_path.clone()).await, StatusCode::OK);
    // The operator's explicit re-evaluation of everything under B takes
    // back what only A signed: the index, both platforms, their layers.
    let from = state.ledger.size();
    // Only changed verdicts are logged: the solo image stays admitted.
    let report = b.reevaluate(&state, vouch::admission::Scope::All).await;
    assert_eq!(
        (report.evaluated, report.admitted, report.denied, report.changed),
        (4, 1, 3, 3)
    );
    assert_eq!(decisions(from).len(), 3);
    let again = b.reevaluate(&state, vouch::admission::Scope::All).await;
    assert_eq!((again.evaluated, again.changed, state.ledger.size()), (4, 0, from + 3));
    for path in [
        "/v2/multi/app/manifests/v1".to_owned(),
        child_path.clone(),
        layer_path.clone(),
    ] {
        assert_eq!(anon_get(path.clone()).await, StatusCode::FORBIDDEN, "{path}");
    }

    // Over HTTP (the server's policy is A): an admin's credentials needed,
    // `all` must be a boolean, and everything A signed is admitted again.
    let admin = basic("admin", "pw");
    let post = |q: &'static str, creds: Option<&str>| {
        let r = r.clone();
        let h: Vec<(String, String)> = creds
            .map(|c| vec![("authorization".to_owned(), c.to_owned())])
            .unwrap_or_default();
        async move {
            let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            call(&r, "POST", &format!("/admin/reevaluate{q}"), &h, vec![]).await
        }
    };
    assert_eq!(post("?all=true", None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(post("?all=true", Some(auth)).await.status, StatusCode::FORBIDDEN);
    let bad = post("?all=maybe", Some(&admin)).await;
    assert!(String::from_utf8_lossy(&bad.body).contains("expected true or false"));
    let ok = post("?all=true", Some(&admin)).await;
    assert_eq!(ok.status, StatusCode::OK);
    let report: serde_json::Value = serde_json::from_slice(&ok.body).unwrap();
    assert_eq!(
        (report["evaluated"].as_u64(), report["admitted"].as_u64()),
        (Some(4), Some(3))
    );
    assert_eq!(anon_get(child_path).await, StatusCode::OK);
    assert_eq!(
        anon_get("/v2/solo/app/manifests/v1".into()).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_push_by_digest_with_tag_parameters_applies_and_logs_each_tag() {
    let dir = tempfile::tempdir().unwrap();
    let (policy, key) = key_policy(5);
    let (state, r, auth) = admission_app(dir.path(), policy).await;
    let (c, l) = (
        push_blob_as(&r, "tags/app", b"{}", &auth).await,
        push_blob_as(&r, "tags/app", b"tagged layer", &auth).await,
    );
    let image = image_manifest(&c, 2, &l, 12, "");
    let d = sha256(&image);
    let put = push_signature(&r, "tags/app", &d, &key, &auth).await;
    assert_eq!(put.status, StatusCode::CREATED);
    let hdrs = [("authorization", auth.as_str()), ("content-type", OCI)];
    let uri = format!("/v2/tags/app/manifests/{d}?tag=stable&tag=1.0&tag=stable");
    let put = call(&r, "PUT", &uri, &hdrs, image.clone()).await;
    assert_eq!(
        put.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&put.body)
    );
    assert_eq!(put.header("vouch-admission-state"), "admitted");
    let applied: Vec<&str> = put
        .headers
        .get_all("oci-tag")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(applied, ["stable", "1.0"], "one OCI-Tag per tag applied, once each");
    for t in ["stable", "1.0"] {
        let get = call(&r, "GET", &format!("/v2/tags/app/manifests/{t}"), &[], vec![]).await;
        assert_eq!(
            (get.status, get.body.as_slice()),
            (StatusCode::OK, image.as_slice()),
            "{t}"
        );
    }
    // Each tag on admitted content is in the ledger.
    let logged: Vec<String> = (0..state.ledger.size())
        .filter_map(
            |i| match vouch_ledger::entry::Entry::decode(&state.ledger.entry(i).unwrap().unwrap()).unwrap() {
                vouch_ledger::entry::Entry::Tag(t) if t.digest.as_str() == d => Some(t.tag),
                _ => None,
            },
        )
        .collect();
    assert_eq!(logged, ["stable", "1.0"]);

    // An invalid tag refuses the whole push; a tag reference with ?tag= too.
    let (c2, l2) = (c.clone(), push_blob_as(&r, "tags/app", b"other", &auth).await);
    let other = image_manifest(&c2, 2, &l2, 5, "");
    let od = sha256(&other);
    let bad = call(
        &r,
        "PUT",
        &format!("/v2/tags/app/manifests/{od}?tag=ok&tag=-bad"),
        &hdrs,
        other.clone(),
    )
    .await;
    assert_eq!(
        (bad.status, bad.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_INVALID")
    );
    let gone = call(&r, "GET", &format!("/v2/tags/app/manifests/{od}"), &hdrs[..1], vec![]).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "a refused push stored nothing");
    assert_eq!(
        call(&r, "GET", "/v2/tags/app/manifests/ok", &hdrs[..1], vec![])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let both = call(&r, "PUT", "/v2/tags/app/manifests/v2?tag=v3", &hdrs, other).await;
    assert_eq!(
        (both.status, both.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_INVALID")
    );
}

/// A policy trusting the key of `seed` on every repository, with `extra`
/// lines in its rule.
fn key_policy_with(seed: u8, extra: &str) -> vouch::policy::Policy {
    use p256::pkcs8::EncodePublicKey as _;
    let key = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
    let pem = key
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    let text = format!(
        "version = 1\nname = \"key {seed}\"\n[keys]\nk = \"\"\"{pem}\"\"\"\n[[rule]]\nrepositories = \"**\"\nsignatures = {{ keys = [\"k\"] }}\n{extra}\n"
    );
    vouch::policy::Policy::parse(&text, std::path::Path::new("p.toml")).unwrap()
}

#[tokio::test]
async fn non_distributable_layers_are_referenced_never_served_and_a_rule_can_refuse_them() {
    for (extra, admitted) in [("", true), ("foreign_layers = \"deny\"", false)] {
        let dir = tempfile::tempdir().unwrap();
        let (_, key) = key_policy(5);
        let (_state, r, auth) = admission_app(dir.path(), key_policy_with(5, extra)).await;
        let config = br#"{"architecture":"amd64","os":"windows"}"#;
        let c = push_blob_as(&r, "win/app", config, &auth).await;
        let l = push_blob_as(&r, "win/app", b"a distributable layer", &auth).await;
        // The base layer: referenced by URL, never pushed here.
        let foreign = format!("sha256:{}", "f0".repeat(32));
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":{}}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{foreign}","size":1234567,"urls":["https://mcr.microsoft.com/v2/windows/servercore/blobs/{foreign}"]}},{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{l}","size":21}}]}}"#,
            config.len()
        )
        .into_bytes();
        let d = sha256(&image);
        let hdrs = [("authorization", auth.as_str()), ("content-type", OCI)];
        let put = call(&r, "PUT", "/v2/win/app/manifests/ltsc", &hdrs, image.clone()).await;
        assert_eq!(
            put.status,
            StatusCode::CREATED,
            "{extra}: {}",
            String::from_utf8_lossy(&put.body)
        );
        let put = push_signature(&r, "win/app", &d, &key, &auth).await;
        assert_eq!(put.status, StatusCode::CREATED);
        let get = call(&r, "GET", "/v2/win/app/manifests/ltsc", &[], vec![]).await;
        assert_eq!(
            get.status == StatusCode::OK,
            admitted,
            "{extra}: {}",
            String::from_utf8_lossy(&get.body)
        );
        if !admitted {
            assert!(String::from_utf8_lossy(&get.body).contains("non-distributable"));
        }
        // vouch never serves the foreign layer: it has no such blob, and
        // bytes pushed under its digest later are no content of the image.
        let blob = format!("/v2/win/app/blobs/{foreign}");
        assert_eq!(call(&r, "GET", &blob, &[], vec![]).await.status, StatusCode::NOT_FOUND);
        // An ordinary layer that is missing is still refused.
        let missing = String::from_utf8(image.clone()).unwrap().replace(
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "application/vnd.oci.image.layer.v1.tar",
        );
        let put = call(&r, "PUT", "/v2/win/app/manifests/broken", &hdrs, missing.into_bytes()).await;
        assert_eq!(
            (put.status, put.code().as_str()),
            (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN")
        );
    }
}
