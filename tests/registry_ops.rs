//! Operating the registry in-process: users and credentials, metrics,
//! per-client limits, upload expiry, chunk rollback, garbage collection,
//! blob deletion, and the ledger served as tlog tiles.

mod api;

use api::*;
use axum::http::StatusCode;

#[tokio::test]
async fn with_a_users_file_pushes_need_credentials_and_pulls_are_anonymous() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let users_file = dir.path().join("users");
    vouch::registry::auth::add_user(&users_file, "alice", "s3cret").unwrap();
    let basic = |u: &str, p: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    let (good, wrong, empty) = (basic("alice", "s3cret"), basic("alice", "nope"), basic("", ""));
    for anonymous_pull in [true, false] {
        let users = users_access(&users_file, anonymous_pull);
        let r = open_with(&dir.path().join(format!("data-{anonymous_pull}")), Some(users));
        let blob = b"auth test".to_vec();
        let d = sha256(&blob);
        let push = format!("/v2/a/app/blobs/uploads/?digest={d}");
        // /v2/ challenges anyone without valid credentials.
        let ping = call(&r, "GET", "/v2/", &[], vec![]).await;
        assert_eq!(
            (ping.status, ping.header("www-authenticate")),
            (StatusCode::UNAUTHORIZED, "Basic realm=\"vouch\"")
        );
        assert_eq!(
            call(&r, "GET", "/v2/", &[("authorization", &good)], vec![])
                .await
                .status,
            StatusCode::OK
        );
        // Pushes: refused anonymously, with an empty login, and with a wrong password.
        for auth in [None, Some(&empty), Some(&wrong)] {
            let h: Vec<(&str, &str)> = auth.map(|a| vec![("authorization", a.as_str())]).unwrap_or_default();
            let resp = call(&r, "POST", &push, &h, blob.clone()).await;
            assert_eq!(
                (resp.status, resp.code().as_str()),
                (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
            );
        }
        assert_eq!(
            call(
                &r,
                "GET",
                &format!("/v2/a/app/blobs/{d}"),
                &[("authorization", &good)],
                vec![]
            )
            .await
            .status,
            StatusCode::NOT_FOUND,
            "refused pushes stored nothing"
        );
        assert_eq!(
            call(&r, "POST", &push, &[("authorization", &good)], blob.clone())
                .await
                .status,
            StatusCode::CREATED
        );
        // Pulls: anonymous (or with an empty login) only if allowed; a wrong password never.
        let pull = format!("/v2/a/app/blobs/{d}");
        let anon = call(&r, "GET", &pull, &[], vec![]).await;
        let empty_login = call(&r, "GET", &pull, &[("authorization", &empty)], vec![]).await;
        let expected = if anonymous_pull {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!((anon.status, empty_login.status), (expected, expected));
        assert_eq!(
            call(&r, "GET", &pull, &[("authorization", &wrong)], vec![])
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&r, "GET", &pull, &[("authorization", &good)], vec![]).await.body,
            blob
        );
        // Garbage collection is an admin action: credentials, always, and
        // a user who is not an admin is refused.
        for auth in [None, Some(&empty), Some(&wrong)] {
            let h: Vec<(&str, &str)> = auth.map(|a| vec![("authorization", a.as_str())]).unwrap_or_default();
            assert_eq!(call(&r, "POST", "/admin/gc", &h, vec![]).await.code(), "UNAUTHORIZED");
        }
        assert_eq!(
            call(&r, "POST", "/admin/gc", &[("authorization", &good)], vec![])
                .await
                .status,
            StatusCode::FORBIDDEN
        );
    }
}

#[tokio::test]
async fn metrics_count_requests_by_method_and_status() {
    let r = registry();
    call(&r.router, "GET", "/v2/", &[], vec![]).await;
    call(&r.router, "GET", "/v2/x/tags/list", &[], vec![]).await;
    let m = call(&r.router, "GET", "/metrics", &[], vec![]).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(m.header("content-type").starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(m.body).unwrap();
    assert!(
        text.contains("vouch_http_requests_total{method=\"GET\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("vouch_http_requests_total{method=\"GET\",status=\"404\"} 1"),
        "{text}"
    );
    assert!(text.contains("vouch_http_request_duration_seconds_count 2"), "{text}");
    assert!(text.contains("vouch_ledger_entries 0"), "{text}");
}

#[tokio::test]
async fn a_client_with_too_many_requests_in_flight_gets_429_with_retry_after() {
    use axum::extract::ConnectInfo;
    let r = registry();
    let peer: std::net::SocketAddr = "10.1.2.3:4000".parse().unwrap();
    // Two uploads whose bodies never end hold the client's two places.
    let mut senders = Vec::new();
    let mut pending = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
        senders.push(tx);
        let body = Body::from_stream(tokio_stream_from(rx));
        let mut req = Request::builder()
            .method("POST")
            .uri(format!("/v2/l/app/blobs/uploads/?digest={}", sha256(b"x")))
            .body(body)
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(peer));
        pending.push(tokio::spawn(r.router.clone().oneshot(req)));
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut req = Request::builder().uri("/v2/").body(Body::empty()).unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    let resp = r.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
    // Another client is not affected.
    let mut req = Request::builder().uri("/v2/").body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo("10.9.9.9:1".parse::<std::net::SocketAddr>().unwrap()));
    assert_eq!(r.router.clone().oneshot(req).await.unwrap().status(), StatusCode::OK);
    // When the uploads finish, the client may send again.
    drop(senders);
    for p in pending {
        p.await.unwrap().unwrap();
    }
    let mut req = Request::builder().uri("/v2/").body(Body::empty()).unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    assert_eq!(r.router.clone().oneshot(req).await.unwrap().status(), StatusCode::OK);
}

/// A stream over an mpsc receiver.
fn tokio_stream_from<T: Send + 'static>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn idle_upload_sessions_and_orphan_files_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(state_at(&dir.path().join("data"), None));
    let router = app(state.clone());
    let s = call(&router, "POST", "/v2/sweep/app/blobs/uploads/", &[], vec![]).await;
    let loc = s.header("location").to_owned();
    call(&router, "PATCH", &loc, &[], b"partial".to_vec()).await;
    std::fs::write(
        dir.path().join("data/uploads/0123456789abcdef0123456789abcdef"),
        b"orphan",
    )
    .unwrap();
    // Fresh sessions survive a sweep with a day's TTL.
    assert_eq!(
        vouch::registry::sweep_uploads(&state, std::time::Duration::from_secs(86400))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        call(&router, "GET", &loc, &[], vec![]).await.status,
        StatusCode::NO_CONTENT
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let removed = vouch::registry::sweep_uploads(&state, std::time::Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(removed, 2, "the idle session and the orphan file");
    assert_eq!(
        call(&router, "GET", &loc, &[], vec![]).await.code(),
        "BLOB_UPLOAD_UNKNOWN"
    );
    assert_eq!(std::fs::read_dir(dir.path().join("data/uploads")).unwrap().count(), 0);
}

#[tokio::test]
async fn a_failed_or_oversized_chunk_leaves_the_upload_as_it_was() {
    let r = registry();
    let s = call(&r.router, "POST", "/v2/t/app/blobs/uploads/", &[], vec![]).await;
    let loc = s.header("location").to_owned();
    call(&r.router, "PATCH", &loc, &[], b"kept".to_vec()).await;
    // A body that breaks off after some bytes (a client that went away).
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
        Ok(bytes::Bytes::from_static(b"lost bytes")),
        Err(std::io::Error::other("connection reset")),
    ];
    let req = Request::builder()
        .method("PATCH")
        .uri(&loc)
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    let resp = r.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let st = call(&r.router, "GET", &loc, &[], vec![]).await;
    assert_eq!(st.header("range"), "0-3", "the broken chunk was not kept");
    // A monolithic upload that breaks off leaves no session or file.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
        Ok(bytes::Bytes::from_static(b"half")),
        Err(std::io::Error::other("reset")),
    ];
    let uri = format!("/v2/t/app/blobs/uploads/?digest={}", sha256(b"half and more"));
    let req = Request::builder()
        .method("POST")
        .uri(uri)
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    assert_eq!(
        r.router.clone().oneshot(req).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        std::fs::read_dir(r.path.join("uploads")).unwrap().count(),
        1,
        "only the open chunked session remains"
    );
    // Over the 1 MiB blob limit of this registry: 413, and nothing kept.
    let big = call(&r.router, "PATCH", &loc, &[], vec![0; (1 << 20) + 1]).await;
    assert_eq!(
        (big.status, big.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID")
    );
    assert_eq!(call(&r.router, "GET", &loc, &[], vec![]).await.header("range"), "0-3");
    let d = sha256(b"kept");
    assert_eq!(
        call(&r.router, "PUT", &format!("{loc}?digest={d}"), &[], vec![])
            .await
            .status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn gc_removes_unreferenced_old_blobs_and_keeps_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(state_at(&dir.path().join("data"), None));
    let router = app(state.clone());
    let (c, l) = (
        push_blob(&router, "gc/app", b"{}").await,
        push_blob(&router, "gc/app", b"layer").await,
    );
    let m = image_manifest(&c, 2, &l, 5, "");
    assert_eq!(
        call(
            &router,
            "PUT",
            "/v2/gc/app/manifests/v1",
            &[("content-type", OCI)],
            m.clone()
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let orphan = push_blob(&router, "gc/app", b"never referenced").await;
    let mounted = call(
        &router,
        "POST",
        &format!("/v2/gc/other/blobs/uploads/?mount={orphan}&from=gc/app"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(mounted.status, StatusCode::CREATED);
    let ledger_before = state.ledger.size();

    // A request forwarded by a reverse proxy on this machine is not from
    // this machine: in open mode, no admin.
    for h in ["forwarded", "x-forwarded-for", "x-real-ip"] {
        let r = call(&router, "POST", "/admin/gc", &[(h, "203.0.113.9")], vec![]).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{h}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }

    // Within the grace period nothing unreferenced is taken.
    let r = call(&router, "POST", "/admin/gc", &[], vec![]).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (
            v["blobs_removed"].as_u64(),
            v["too_young"].as_u64(),
            v["referenced"].as_u64()
        ),
        (Some(0), Some(1), Some(2))
    );

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = call(&router, "POST", "/admin/gc?grace=1", &[], vec![]).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (v["blobs_removed"].as_u64(), v["links_removed"].as_u64()),
        (Some(1), Some(2)),
        "{v}"
    );
    assert_eq!(v["bytes_freed"].as_u64(), Some(16));
    for repo in ["gc/app", "gc/other"] {
        let get = call(&router, "GET", &format!("/v2/{repo}/blobs/{orphan}"), &[], vec![]).await;
        assert_eq!(get.code(), "BLOB_UNKNOWN");
    }
    // The image and its blobs are intact.
    assert_eq!(
        call(&router, "GET", "/v2/gc/app/manifests/v1", &[], vec![]).await.body,
        m
    );
    assert_eq!(
        call(&router, "GET", &format!("/v2/gc/app/blobs/{l}"), &[], vec![])
            .await
            .body,
        b"layer"
    );

    // Once its manifest is deleted, the image's blobs go too; the ledger is untouched.
    call(
        &router,
        "DELETE",
        &format!("/v2/gc/app/manifests/{}", sha256(&m)),
        &[],
        vec![],
    )
    .await;
    let r = call(&router, "POST", "/admin/gc?grace=0", &[], vec![]).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["blobs_removed"].as_u64(), Some(2), "{v}");
    assert_eq!(state.ledger.size(), ledger_before);
    assert_eq!(
        call(&router, "POST", "/admin/gc?grace=soon", &[], vec![]).await.code(),
        "SIZE_INVALID"
    );
}

#[tokio::test]
async fn blob_delete_unlinks_from_one_repository_and_can_be_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let router = app(Arc::new(state_at(&dir.path().join("data"), None)));
    let d = push_blob(&router, "del/a", b"shared bytes").await;
    call(
        &router,
        "POST",
        &format!("/v2/del/b/blobs/uploads/?mount={d}&from=del/a"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(
        call(&router, "DELETE", &format!("/v2/del/a/blobs/{d}"), &[], vec![])
            .await
            .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        call(&router, "GET", &format!("/v2/del/a/blobs/{d}"), &[], vec![])
            .await
            .code(),
        "BLOB_UNKNOWN"
    );
    assert_eq!(
        call(&router, "GET", &format!("/v2/del/b/blobs/{d}"), &[], vec![])
            .await
            .body,
        b"shared bytes"
    );
    assert_eq!(
        call(&router, "DELETE", &format!("/v2/del/a/blobs/{d}"), &[], vec![])
            .await
            .code(),
        "BLOB_UNKNOWN"
    );

    let mut state = state_at(&dir.path().join("data2"), None);
    state.limits.deletes = false;
    let router = app(Arc::new(state));
    let d = push_blob(&router, "del/c", b"kept").await;
    let (c, l) = (push_blob(&router, "del/c", b"{}").await, d.clone());
    let m = image_manifest(&c, 2, &l, 4, "");
    call(&router, "PUT", "/v2/del/c/manifests/v1", &[("content-type", OCI)], m).await;
    for path in [format!("/v2/del/c/blobs/{d}"), "/v2/del/c/manifests/v1".to_owned()] {
        let resp = call(&router, "DELETE", &path, &[], vec![]).await;
        assert_eq!(
            (resp.status, resp.code().as_str()),
            (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
            "{path}"
        );
    }
    assert_eq!(
        call(&router, "GET", &format!("/v2/del/c/blobs/{d}"), &[], vec![])
            .await
            .body,
        b"kept"
    );
}

#[tokio::test]
async fn the_ledger_is_served_as_tlog_tiles_with_proofs_that_verify() {
    use vouch_ledger::tile::{TileAddr, TileKind};
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(state_at(&dir.path().join("data"), None));
    let router = app(state.clone());
    let vkey = state.ledger.verifier().clone();
    let empty = call(&router, "GET", "/ledger/checkpoint", &[], vec![]).await;
    assert_eq!(vouch_ledger::Checkpoint::open(&empty.body, &vkey).unwrap().size, 0);

    for i in 0..700u64 {
        let e = vouch_ledger::entry::Entry::Tag(vouch_ledger::entry::TagEntry {
            repo: "served/app".into(),
            tag: format!("t{i}"),
            digest: vouch_ledger::entry::Digest::parse(&format!("sha256:{i:064x}")).unwrap(),
            previous: None,
        });
        state.ledger.append(e.encode().unwrap()).await.unwrap();
    }
    let cp = call(&router, "GET", "/ledger/checkpoint", &[], vec![]).await;
    assert_eq!(cp.header("content-type"), "text/plain; charset=utf-8");
    let checkpoint = vouch_ledger::Checkpoint::open(&cp.body, &vkey).expect("served checkpoint verifies");
    assert_eq!(checkpoint.size, 700);

    // Mirror every tile the checkpoint implies, over HTTP, then recompute.
    let mirror = dir.path().join("mirror");
    let kinds = [
        TileKind::Entries,
        TileKind::Hashes { level: 0 },
        TileKind::Hashes { level: 1 },
    ];
    for kind in kinds {
        for n in 0..3 {
            let Some(addr) = TileAddr::for_tree(kind, n, 700) else {
                continue;
            };
            let resp = call(&router, "GET", &format!("/ledger/{addr}"), &[], vec![]).await;
            assert_eq!(resp.status, StatusCode::OK, "{addr}");
            assert_eq!(resp.header("cache-control"), "public, max-age=31536000, immutable");
            let path = mirror.join(addr.to_string());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, &resp.body).unwrap();
        }
    }
    let report = vouch_ledger::fsck::fsck(&vouch::mirror::DirSource::new(&mirror), &checkpoint, |_| {}).unwrap();
    assert_eq!((report.entries, report.root), (700, checkpoint.root));

    // Proofs and entries verify against the served checkpoint.
    let entry = call(&router, "GET", "/ledger/entry/123", &[], vec![]).await;
    assert_eq!(entry.header("content-type"), "application/cbor");
    assert!(matches!(
        vouch_ledger::entry::Entry::decode(&entry.body),
        Ok(vouch_ledger::entry::Entry::Tag(_))
    ));
    let hashes = |v: &serde_json::Value| -> Vec<vouch_ledger::Hash> {
        v["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| vouch_ledger::Hash::from_base64(h.as_str().unwrap()).unwrap())
            .collect()
    };
    let inc = call(
        &router,
        "GET",
        "/ledger/proof/inclusion?index=123&size=700",
        &[],
        vec![],
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&inc.body).unwrap();
    vouch_ledger::verify_inclusion(&entry.body, 123, 700, &hashes(&v), &checkpoint.root).unwrap();
    let old_root = vouch_ledger::Checkpoint::open(&empty.body, &vkey).unwrap().root;
    let con = call(&router, "GET", "/ledger/proof/consistency?old=0&new=700", &[], vec![]).await;
    let v: serde_json::Value = serde_json::from_slice(&con.body).unwrap();
    vouch_ledger::verify_consistency(0, 700, &hashes(&v), &old_root, &checkpoint.root).unwrap();

    // An offline proof verifies with the key alone.
    let offline = call(&router, "GET", "/ledger/proof/tlog/123", &[], vec![]).await;
    assert!(offline.body.starts_with(b"c2sp.org/tlog-proof@v1\nindex 123\n"));
    let parsed = vouch_ledger::tlog_proof::TlogProof::parse(&offline.body).unwrap();
    assert_eq!(parsed.verify(&entry.body, &vkey).unwrap().size, 700);
    assert!(parsed.verify(b"another entry", &vkey).is_err());

    // Outside the tree, or malformed: named errors, never a panic.
    for (path, status) in [
        ("/ledger/tile/0/003", StatusCode::NOT_FOUND),
        ("/ledger/tile/0/002.p/189", StatusCode::NOT_FOUND),
        ("/ledger/tile/0/0002", StatusCode::NOT_FOUND),
        ("/ledger/entry/700", StatusCode::NOT_FOUND),
        ("/ledger/entry/x", StatusCode::BAD_REQUEST),
        ("/ledger/proof/tlog/700", StatusCode::NOT_FOUND),
        ("/ledger/proof/inclusion?index=700&size=700", StatusCode::NOT_FOUND),
        ("/ledger/proof/inclusion?index=1", StatusCode::BAD_REQUEST),
        ("/ledger/proof/consistency?old=9&new=8", StatusCode::NOT_FOUND),
    ] {
        assert_eq!(call(&router, "GET", path, &[], vec![]).await.status, status, "{path}");
    }
}

/// Small blobs vouch writes itself live inline in the metadata store: they
/// are served like files (ranges too), and garbage collection takes them
/// once nothing references them.
#[tokio::test]
async fn inline_blobs_are_served_like_files_and_collected_like_them() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(state_at(&dir.path().join("data"), None));
    let router = app(state.clone());
    let repo = vouch::registry::names::RepoName::parse("inline/app").unwrap();
    let (config, orphan_bytes) = (br#"{"inline":true}"#.to_vec(), b"an inline orphan".to_vec());
    let (c, orphan) = {
        let mut b = state.meta.batch();
        let c = b.put_inline_blob(&repo, &config);
        let o = b.put_inline_blob(&repo, &orphan_bytes);
        b.commit(true).unwrap();
        (c, o)
    };
    let l = push_blob(&router, "inline/app", b"layer").await;
    let m = image_manifest(c.as_str(), config.len(), &l, 5, "");
    let put = call(
        &router,
        "PUT",
        "/v2/inline/app/manifests/v1",
        &[("content-type", OCI)],
        m,
    )
    .await;
    assert_eq!(
        put.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&put.body)
    );
    let get = call(&router, "GET", &format!("/v2/inline/app/blobs/{c}"), &[], vec![]).await;
    assert_eq!((get.status, get.body.clone()), (StatusCode::OK, config.clone()));
    let part = call(
        &router,
        "GET",
        &format!("/v2/inline/app/blobs/{c}"),
        &[("range", "bytes=2-7")],
        vec![],
    )
    .await;
    assert_eq!(
        (part.status, part.body.clone()),
        (StatusCode::PARTIAL_CONTENT, config[2..8].to_vec())
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = call(&router, "POST", "/admin/gc?grace=1", &[], vec![]).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (v["blobs_removed"].as_u64(), v["bytes_freed"].as_u64()),
        (Some(1), Some(16)),
        "{v}"
    );
    let gone = call(&router, "GET", &format!("/v2/inline/app/blobs/{orphan}"), &[], vec![]).await;
    assert_eq!(gone.code(), "BLOB_UNKNOWN");
    assert!(state.meta.inline_blob(&orphan).unwrap().is_none());
    let kept = call(&router, "GET", &format!("/v2/inline/app/blobs/{c}"), &[], vec![]).await;
    assert_eq!(kept.body, config, "the referenced inline blob stays");
}
