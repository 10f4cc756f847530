//! Listings and names in-process: tags with pagination, referrers with
//! filters and annotations, and the name and tag grammars.

mod api;

use api::*;
use axum::http::StatusCode;

#[tokio::test]
async fn tags_list_paginates_with_link_headers() {
    let r = registry();
    assert_eq!(
        call(&r.router, "GET", "/v2/none/tags/list", &[], vec![]).await.code(),
        "NAME_UNKNOWN"
    );
    let (c, l) = (
        push_blob(&r.router, "t/app", b"{}").await,
        push_blob(&r.router, "t/app", b"l").await,
    );
    let m = image_manifest(&c, 2, &l, 1, "");
    for tag in ["e", "a", "c", "b", "d"] {
        call(
            &r.router,
            "PUT",
            &format!("/v2/t/app/manifests/{tag}"),
            &[("content-type", OCI)],
            m.clone(),
        )
        .await;
    }
    let all = call(&r.router, "GET", "/v2/t/app/tags/list", &[], vec![]).await;
    let v: serde_json::Value = serde_json::from_slice(&all.body).unwrap();
    assert_eq!(v["tags"], serde_json::json!(["a", "b", "c", "d", "e"]));
    let page = call(&r.router, "GET", "/v2/t/app/tags/list?n=2", &[], vec![]).await;
    let v: serde_json::Value = serde_json::from_slice(&page.body).unwrap();
    assert_eq!(v["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(page.header("link"), "</v2/t/app/tags/list?n=2&last=b>; rel=\"next\"");
    let next = call(&r.router, "GET", "/v2/t/app/tags/list?n=2&last=d", &[], vec![]).await;
    let v: serde_json::Value = serde_json::from_slice(&next.body).unwrap();
    assert_eq!(v["tags"], serde_json::json!(["e"]));
    assert_eq!(next.header("link"), "");
}

#[tokio::test]
async fn invalid_names_and_tags_are_refused_by_code() {
    let r = registry();
    for path in [
        "/v2/Team/app/tags/list",
        "/v2/a..b/tags/list",
        "/v2/a/../b/tags/list",
        "/v2/-a/blobs/uploads/",
    ] {
        let resp = call(
            &r.router,
            if path.ends_with('/') { "POST" } else { "GET" },
            path,
            &[],
            vec![],
        )
        .await;
        assert_eq!(
            (resp.status, resp.code().as_str()),
            (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            "{path}"
        );
    }
    let resp = call(
        &r.router,
        "PUT",
        "/v2/a/manifests/-bad",
        &[("content-type", OCI)],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(resp.code(), "MANIFEST_INVALID");
    // Reading or deleting under a reference outside the grammar names
    // nothing stored: 404, as the OCI conformance suite expects.
    for method in ["GET", "HEAD", "DELETE"] {
        let resp = call(&r.router, method, "/v2/a/manifests/.INVALID_MANIFEST_NAME", &[], vec![]).await;
        assert_eq!(resp.status, StatusCode::NOT_FOUND, "{method}");
        if method != "HEAD" {
            assert_eq!(resp.code(), "MANIFEST_UNKNOWN", "{method}");
        }
    }
    let resp = call(&r.router, "PATCH", "/v2/a/blobs/uploads/../../etc", &[], vec![]).await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
    let resp = call(&r.router, "PUT", "/v2/a/blobs/uploads/", &[], vec![]).await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED")
    );
}

#[tokio::test]
async fn referrers_list_artifacts_by_subject_with_filters_and_annotations() {
    let r = registry();
    let (c, l) = (
        push_blob(&r.router, "ref/app", b"{}").await,
        push_blob(&r.router, "ref/app", b"l").await,
    );
    let image = image_manifest(&c, 2, &l, 1, "");
    let subject = sha256(&image);
    // Nothing refers to it yet (and it does not exist yet): an empty index.
    let empty = call(
        &r.router,
        "GET",
        &format!("/v2/ref/app/referrers/{subject}"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.header("content-type"), "application/vnd.oci.image.index.v1+json");
    let v: serde_json::Value = serde_json::from_slice(&empty.body).unwrap();
    assert_eq!(v["manifests"], serde_json::json!([]));

    // Two artifacts arrive before their subject, one of each type.
    let sig = |kind: &str, note: &str| {
        image_manifest(
            &c,
            2,
            &l,
            1,
            &format!(
                r#","artifactType":"{kind}","subject":{{"mediaType":"{OCI}","digest":"{subject}","size":{}}},"annotations":{{"note":"{note}"}}"#,
                image.len()
            ),
        )
    };
    let (a, b) = (
        sig("application/vnd.example.sig", "first"),
        sig("application/vnd.example.sbom", "second"),
    );
    for m in [&a, &b] {
        let put = call(
            &r.router,
            "PUT",
            &format!("/v2/ref/app/manifests/{}", sha256(m)),
            &[("content-type", OCI)],
            m.clone(),
        )
        .await;
        assert_eq!(put.status, StatusCode::CREATED);
    }
    call(
        &r.router,
        "PUT",
        "/v2/ref/app/manifests/v1",
        &[("content-type", OCI)],
        image.clone(),
    )
    .await;

    let all = call(
        &r.router,
        "GET",
        &format!("/v2/ref/app/referrers/{subject}"),
        &[],
        vec![],
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&all.body).unwrap();
    let list = v["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().any(|d| d["digest"] == sha256(&a)
        && d["artifactType"] == "application/vnd.example.sig"
        && d["annotations"]["note"] == "first"
        && d["size"] == a.len()));
    assert_eq!(all.header("oci-filters-applied"), "");

    let filtered = call(
        &r.router,
        "GET",
        &format!("/v2/ref/app/referrers/{subject}?artifactType=application/vnd.example.sbom"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(filtered.header("oci-filters-applied"), "artifactType");
    let v: serde_json::Value = serde_json::from_slice(&filtered.body).unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(v["manifests"][0]["digest"], sha256(&b));

    // Deleting a referrer removes it from the listing.
    let del = call(
        &r.router,
        "DELETE",
        &format!("/v2/ref/app/manifests/{}", sha256(&a)),
        &[],
        vec![],
    )
    .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    let after = call(
        &r.router,
        "GET",
        &format!("/v2/ref/app/referrers/{subject}"),
        &[],
        vec![],
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&after.body).unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_large_manifest_is_served_whole_and_listed_without_its_megabyte_of_annotations() {
    let r = registry();
    let (c, l) = (
        push_blob(&r.router, "big/app", b"{}").await,
        push_blob(&r.router, "big/app", b"l").await,
    );
    let subject = image_manifest(&c, 2, &l, 1, "");
    let put = |reference: String, bytes: Vec<u8>| {
        let router = r.router.clone();
        async move {
            let path = format!("/v2/big/app/manifests/{reference}");
            call(&router, "PUT", &path, &[("content-type", OCI)], bytes).await
        }
    };
    assert_eq!(put("v1".into(), subject.clone()).await.status, StatusCode::CREATED);
    let s = sha256(&subject);
    let with = |annotation: &str| {
        image_manifest(
            &c,
            2,
            &l,
            1,
            &format!(
                r#","annotations":{{"note":"{annotation}"}},"subject":{{"mediaType":"{OCI}","digest":"{s}","size":{}}}"#,
                subject.len()
            ),
        )
    };
    let big = with(&"x".repeat(1 << 20));
    let small = with("small");
    for m in [&big, &small] {
        assert_eq!(put(sha256(m), m.clone()).await.status, StatusCode::CREATED);
    }
    // Sixteen readers at once of the 1 MiB manifest: each gets it whole.
    let reads = (0..16).map(|_| {
        let router = r.router.clone();
        let path = format!("/v2/big/app/manifests/{}", sha256(&big));
        async move { call(&router, "GET", &path, &[], vec![]).await }
    });
    for got in futures_util::future::join_all(reads).await {
        assert_eq!(got.status, StatusCode::OK);
        assert!(
            got.body == big,
            "{} bytes, not the {} pushed",
            got.body.len(),
            big.len()
        );
        assert_eq!(got.header("content-length"), big.len().to_string());
    }
    let listing = call(&r.router, "GET", &format!("/v2/big/app/referrers/{s}"), &[], vec![]).await;
    assert!(listing.body.len() < 4096, "{} bytes", listing.body.len());
    let v: serde_json::Value = serde_json::from_slice(&listing.body).unwrap();
    let entry = |m: &[u8]| {
        v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["digest"] == sha256(m))
            .cloned()
            .unwrap()
    };
    assert_eq!(entry(&small)["annotations"]["note"], "small");
    assert!(entry(&big).get("annotations").is_none(), "{}", entry(&big));
    assert_eq!(entry(&big)["size"], big.len());
}
