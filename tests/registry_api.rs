//! The distribution API in-process (axum `oneshot`), over a real data
//! directory: RocksDB and blob files. Blobs, uploads and manifests: every
//! success path, and for bad input the spec's error code and that nothing
//! was stored.

mod api;

use api::*;
use axum::http::StatusCode;

#[tokio::test]
async fn base_endpoint_answers_with_the_api_version() {
    let r = registry();
    let resp = call(&r.router, "GET", "/v2/", &[], vec![]).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.header("docker-distribution-api-version"), "registry/2.0");
    let resp = call(&r.router, "GET", "/v2/nope", &[], vec![]).await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn monolithic_upload_then_get_head_and_ranges() {
    let r = registry();
    let content = b"0123456789".to_vec();
    let d = push_blob(&r.router, "team/app", &content).await;
    let get = call(&r.router, "GET", &format!("/v2/team/app/blobs/{d}"), &[], vec![]).await;
    assert_eq!((get.status, get.body.as_slice()), (StatusCode::OK, &content[..]));
    assert_eq!(get.header("docker-content-digest"), d);
    let head = call(&r.router, "HEAD", &format!("/v2/team/app/blobs/{d}"), &[], vec![]).await;
    assert_eq!((head.status, head.header("content-length")), (StatusCode::OK, "10"));
    assert!(head.body.is_empty());
    let part = call(
        &r.router,
        "GET",
        &format!("/v2/team/app/blobs/{d}"),
        &[("range", "bytes=2-4")],
        vec![],
    )
    .await;
    assert_eq!(
        (part.status, part.body.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &b"234"[..])
    );
    assert_eq!(part.header("content-range"), "bytes 2-4/10");
    let bad = call(
        &r.router,
        "GET",
        &format!("/v2/team/app/blobs/{d}"),
        &[("range", "bytes=20-30")],
        vec![],
    )
    .await;
    assert_eq!(bad.status, StatusCode::RANGE_NOT_SATISFIABLE);
    // The blob is not in another repository until mounted or pushed there.
    let other = call(&r.router, "GET", &format!("/v2/other/app/blobs/{d}"), &[], vec![]).await;
    assert_eq!(
        (other.status, other.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
    );
    let mount = call(
        &r.router,
        "POST",
        &format!("/v2/other/app/blobs/uploads/?mount={d}&from=team/app"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(mount.status, StatusCode::CREATED);
    let other = call(&r.router, "GET", &format!("/v2/other/app/blobs/{d}"), &[], vec![]).await;
    assert_eq!(other.body, content);
}

#[tokio::test]
async fn a_blob_of_several_read_chunks_is_served_whole_and_by_ranges_across_them() {
    let r = registry();
    // Past the registry's 512 KiB read chunk, not a multiple of it (and
    // within this harness's 1 MiB blob limit).
    let blob: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let d = push_blob(&r.router, "big/blob", &blob).await;
    let path = format!("/v2/big/blob/blobs/{d}");
    let whole = call(&r.router, "GET", &path, &[], vec![]).await;
    assert_eq!(whole.status, StatusCode::OK);
    assert!(
        whole.body == blob,
        "{} bytes, not the {} pushed",
        whole.body.len(),
        blob.len()
    );
    for (a, b) in [
        (524_000u64, 525_000u64),
        (0, 999_999),
        (524_287, 524_289),
        (600_000, 999_999),
    ] {
        let range = format!("bytes={a}-{b}");
        let part = call(&r.router, "GET", &path, &[("range", range.as_str())], vec![]).await;
        assert_eq!(part.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert!(part.body == blob[a as usize..=b as usize], "{range}");
    }
}

#[tokio::test]
async fn a_wrong_digest_is_rejected_and_leaves_nothing() {
    let r = registry();
    let wrong = sha256(b"something else");
    let resp = call(
        &r.router,
        "POST",
        &format!("/v2/team/app/blobs/uploads/?digest={wrong}"),
        &[],
        b"content".to_vec(),
    )
    .await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let get = call(&r.router, "GET", &format!("/v2/team/app/blobs/{wrong}"), &[], vec![]).await;
    assert_eq!(get.status, StatusCode::NOT_FOUND);
    assert_eq!(
        std::fs::read_dir(r.path.join("uploads")).unwrap().count(),
        0,
        "no upload left behind"
    );
    assert!(
        !r.path.join("blobs/sha256").exists() || std::fs::read_dir(r.path.join("blobs/sha256")).unwrap().count() == 0
    );
    let bad = call(
        &r.router,
        "POST",
        "/v2/team/app/blobs/uploads/?digest=sha256:nothex",
        &[],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(
        (bad.status, bad.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
}

#[tokio::test]
async fn chunked_upload_with_range_checks_status_and_resume_after_restart() {
    let r = registry();
    let start = call(&r.router, "POST", "/v2/team/app/blobs/uploads/", &[], vec![]).await;
    assert_eq!(start.status, StatusCode::ACCEPTED);
    let loc = start.header("location").to_owned();
    assert!(loc.starts_with("/v2/team/app/blobs/uploads/"));
    let p1 = call(&r.router, "PATCH", &loc, &[("content-range", "0-4")], b"hello".to_vec()).await;
    assert_eq!((p1.status, p1.header("range")), (StatusCode::ACCEPTED, "0-4"));
    // Out of order: 416 with the current range, nothing appended.
    let bad = call(&r.router, "PATCH", &loc, &[("content-range", "7-9")], b"xyz".to_vec()).await;
    assert_eq!(
        (bad.status, bad.code().as_str()),
        (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID")
    );
    assert_eq!(bad.header("range"), "0-4");
    // Another repository cannot touch this session.
    let foreign = call(
        &r.router,
        "PATCH",
        &loc.replace("team/app", "team/other"),
        &[],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(foreign.code(), "BLOB_UPLOAD_UNKNOWN");

    // The session survives a restart of the registry.
    let path = r.path.clone();
    drop(r.router);
    let router = open_at(&path);
    let status = call(&router, "GET", &loc, &[], vec![]).await;
    assert_eq!((status.status, status.header("range")), (StatusCode::NO_CONTENT, "0-4"));
    let p2 = call(&router, "PATCH", &loc, &[("content-range", "5-10")], b" world".to_vec()).await;
    assert_eq!(p2.header("range"), "0-10");
    let d = sha256(b"hello world!");
    let done = call(&router, "PUT", &format!("{loc}?digest={d}"), &[], b"!".to_vec()).await;
    assert_eq!(done.status, StatusCode::CREATED);
    let get = call(&router, "GET", &format!("/v2/team/app/blobs/{d}"), &[], vec![]).await;
    assert_eq!(get.body, b"hello world!");
    let gone = call(&router, "GET", &loc, &[], vec![]).await;
    assert_eq!(gone.code(), "BLOB_UPLOAD_UNKNOWN");

    // Cancel.
    let s = call(&router, "POST", "/v2/team/app/blobs/uploads/", &[], vec![]).await;
    let loc = s.header("location").to_owned();
    assert_eq!(
        call(&router, "DELETE", &loc, &[], vec![]).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&router, "GET", &loc, &[], vec![]).await.code(),
        "BLOB_UPLOAD_UNKNOWN"
    );
    drop(path);
}

#[tokio::test]
async fn manifests_by_tag_and_digest_with_validation() {
    let r = registry();
    let config = b"{}".to_vec();
    let layer = b"layer bytes".to_vec();
    let missing = sha256(b"never pushed");
    // A manifest whose blobs are missing is refused, and nothing is stored.
    let m = image_manifest(&missing, 5, &missing, 5, "");
    let resp = call(
        &r.router,
        "PUT",
        "/v2/team/app/manifests/v1",
        &[("content-type", OCI)],
        m,
    )
    .await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN")
    );
    assert_eq!(
        call(&r.router, "GET", "/v2/team/app/manifests/v1", &[], vec![])
            .await
            .code(),
        "MANIFEST_UNKNOWN"
    );

    let (c, l) = (
        push_blob(&r.router, "team/app", &config).await,
        push_blob(&r.router, "team/app", &layer).await,
    );
    let m = image_manifest(&c, config.len(), &l, layer.len(), "");
    let md = sha256(&m);
    // Content-Type must match the manifest's mediaType; unknown types are refused.
    for ct in [
        "application/vnd.oci.image.index.v1+json",
        "application/octet-stream",
        "",
    ] {
        let resp = call(
            &r.router,
            "PUT",
            "/v2/team/app/manifests/v1",
            &[("content-type", ct)],
            m.clone(),
        )
        .await;
        assert_eq!(resp.code(), "MANIFEST_INVALID", "{ct}");
    }
    let bad_json = call(
        &r.router,
        "PUT",
        "/v2/team/app/manifests/v1",
        &[("content-type", OCI)],
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(bad_json.code(), "MANIFEST_INVALID");
    let wrong = call(
        &r.router,
        "PUT",
        &format!("/v2/team/app/manifests/{}", sha256(b"x")),
        &[("content-type", OCI)],
        m.clone(),
    )
    .await;
    assert_eq!(wrong.code(), "DIGEST_INVALID");

    let put = call(
        &r.router,
        "PUT",
        "/v2/team/app/manifests/v1",
        &[("content-type", OCI)],
        m.clone(),
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED);
    assert_eq!(put.header("docker-content-digest"), md);
    for reference in ["v1", md.as_str()] {
        let get = call(
            &r.router,
            "GET",
            &format!("/v2/team/app/manifests/{reference}"),
            &[],
            vec![],
        )
        .await;
        assert_eq!(get.body, m, "exact bytes round-trip");
        assert_eq!(get.header("content-type"), OCI);
        assert_eq!(get.header("docker-content-digest"), md);
        assert_eq!(get.header("vouch-admission-state"), "pending");
    }
    let head = call(&r.router, "HEAD", "/v2/team/app/manifests/v1", &[], vec![]).await;
    assert_eq!(
        (head.status, head.header("content-length")),
        (StatusCode::OK, m.len().to_string().as_str())
    );

    // An index over it, and an artifact whose subject does not exist yet.
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"{OCI}","digest":"{md}","size":{}}}]}}"#,
        m.len()
    );
    let put = call(
        &r.router,
        "PUT",
        "/v2/team/app/manifests/multi",
        &[("content-type", "application/vnd.oci.image.index.v1+json")],
        index.into_bytes(),
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED);
    let future = sha256(b"a subject pushed later");
    let art = image_manifest(
        &c,
        config.len(),
        &l,
        layer.len(),
        &format!(
            r#","artifactType":"application/example","subject":{{"mediaType":"{OCI}","digest":"{future}","size":9}}"#
        ),
    );
    let put = call(
        &r.router,
        "PUT",
        "/v2/team/app/manifests/art",
        &[("content-type", OCI)],
        art,
    )
    .await;
    assert_eq!(
        (put.status, put.header("oci-subject")),
        (StatusCode::CREATED, future.as_str())
    );

    // Delete by tag, then by digest.
    assert_eq!(
        call(&r.router, "DELETE", "/v2/team/app/manifests/v1", &[], vec![])
            .await
            .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        call(&r.router, "GET", "/v2/team/app/manifests/v1", &[], vec![])
            .await
            .code(),
        "MANIFEST_UNKNOWN"
    );
    assert_eq!(
        call(&r.router, "GET", &format!("/v2/team/app/manifests/{md}"), &[], vec![])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        call(
            &r.router,
            "DELETE",
            &format!("/v2/team/app/manifests/{md}"),
            &[],
            vec![]
        )
        .await
        .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        call(&r.router, "GET", &format!("/v2/team/app/manifests/{md}"), &[], vec![])
            .await
            .code(),
        "MANIFEST_UNKNOWN"
    );
}

#[tokio::test]
async fn oversized_manifests_get_413_and_4_mib_is_accepted() {
    let r = registry();
    let (c, l) = (
        push_blob(&r.router, "big/app", b"{}").await,
        push_blob(&r.router, "big/app", b"l").await,
    );
    let pad = |n: usize| format!(r#","annotations":{{"pad":"{}"}}"#, "x".repeat(n));
    let big = image_manifest(&c, 2, &l, 1, &pad((4 << 20) - 600));
    assert!(big.len() <= 4 << 20 && big.len() > (4 << 20) - 1000);
    let ok = call(
        &r.router,
        "PUT",
        "/v2/big/app/manifests/big",
        &[("content-type", OCI)],
        big,
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&ok.body));
    let huge = image_manifest(&c, 2, &l, 1, &pad(5 << 20));
    let resp = call(
        &r.router,
        "PUT",
        "/v2/big/app/manifests/huge",
        &[("content-type", OCI)],
        huge,
    )
    .await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID")
    );
    assert_eq!(
        call(&r.router, "GET", "/v2/big/app/manifests/huge", &[], vec![])
            .await
            .code(),
        "MANIFEST_UNKNOWN"
    );
}
