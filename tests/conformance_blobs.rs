//! Conformance of the blob endpoints to the OCI distribution spec
//! (opencontainers/distribution-spec `spec.md`), each test run for both
//! digest algorithms, sha256 and sha512 (digests computed here with the
//! `sha2` crate, never with vouch's own code):
//!
//! - "Pushing blobs": "Single POST" (end-4b), "POST then PUT" (end-4a,
//!   end-6), "Pushing a blob in chunks" (end-5, end-6: `Content-Range`
//!   chunks, out of order is 416, the status `GET` end-13), streamed
//!   `PATCH`es without `Content-Range`, "Cancel a blob upload" (end-14);
//! - error codes (`DIGEST_INVALID`, `BLOB_UNKNOWN`, `BLOB_UPLOAD_UNKNOWN`);
//! - "Pulling blobs" and "Checking if content exists in the registry"
//!   (end-2: `GET`/`HEAD`, `Content-Length`, `Docker-Content-Digest`, the
//!   `Range` header per RFC 9110);
//! - "Deleting Blobs" (end-10);
//! - "Mounting a blob from another repository" (end-11), with and without
//!   `from` ("The registry MAY treat the `from` parameter as optional").
//!
//! Over the in-process harness (`tests/api`): the real router, RocksDB and
//! blob files, no admission policy.

mod api;

use api::*;
use sha2::Digest as _;

const ALGS: [&str; 2] = ["sha256", "sha512"];
const OCTETS: (&str, &str) = ("content-type", "application/octet-stream");

/// `alg:hex` of `bytes`.
fn digest(alg: &str, bytes: &[u8]) -> String {
    match alg {
        "sha256" => format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes))),
        "sha512" => format!("sha512:{}", hex::encode(sha2::Sha512::digest(bytes))),
        other => panic!("no algorithm {other}"),
    }
}

/// Content unique to a test and algorithm (never a blob of another test).
fn content(what: &str, alg: &str) -> Vec<u8> {
    format!("{what} blob pushed by {alg}: 0123456789").into_bytes()
}

/// The path of a `Location` value, which may be absolute or relative.
fn path_of(location: &str) -> String {
    assert!(!location.is_empty(), "a Location header is required");
    match location.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/".into(), |i| rest[i..].to_owned()),
        None => location.to_owned(),
    }
}

/// `location` with one more query parameter (it may carry its own).
fn with_query(location: &str, param: &str) -> String {
    let path = path_of(location);
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{param}")
}

/// GETs `uri`.
async fn get(r: &Router, uri: &str) -> Resp {
    call(r, "GET", uri, &[], vec![]).await
}

/// Closes the session at `loc` with `PUT <loc>?digest=<d>` (end-6).
async fn close(r: &Router, loc: &str, d: &str, hdrs: &[(&str, &str)], body: Vec<u8>) -> Resp {
    call(r, "PUT", &with_query(loc, &format!("digest={d}")), hdrs, body).await
}

/// Starts an upload session (end-4a): its location.
async fn start(r: &Router, repo: &str) -> String {
    let resp = call(
        r,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[("content-length", "0")],
        vec![],
    )
    .await;
    assert_eq!(resp.status, StatusCode::ACCEPTED, "POST starts a session");
    path_of(resp.header("location"))
}

/// Pushes `bytes` with a single POST under their `alg` digest.
async fn push(r: &Router, repo: &str, alg: &str, bytes: &[u8]) -> String {
    let d = digest(alg, bytes);
    let uri = format!("/v2/{repo}/blobs/uploads/?digest={d}");
    let resp = call(r, "POST", &uri, &[OCTETS], bytes.to_vec()).await;
    assert_eq!(resp.status, StatusCode::CREATED, "{alg} push");
    d
}

/// GETs the blob `d` of `repo`, asserting it is served whole and named by `d`.
async fn assert_blob(r: &Router, repo: &str, d: &str, bytes: &[u8]) {
    let get = get(r, &format!("/v2/{repo}/blobs/{d}")).await;
    assert_eq!(get.status, StatusCode::OK, "GET {repo}@{d}");
    assert_eq!(get.body, bytes, "GET {repo}@{d} serves the bytes pushed");
    assert_eq!(get.header("docker-content-digest"), d, "GET {repo}@{d}");
}

async fn assert_blob_unknown(r: &Router, repo: &str, d: &str) {
    let get = get(r, &format!("/v2/{repo}/blobs/{d}")).await;
    assert_eq!(
        (get.status, get.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
        "GET {repo}@{d}"
    );
    let head = call(r, "HEAD", &format!("/v2/{repo}/blobs/{d}"), &[], vec![]).await;
    assert_eq!(head.status, StatusCode::NOT_FOUND, "HEAD {repo}@{d}");
}

#[tokio::test]
async fn single_post_with_digest_creates_the_blob_at_its_location() {
    let r = registry();
    for alg in ALGS {
        let bytes = content("single post", alg);
        let d = digest(alg, &bytes);
        let uri = format!("/v2/mono/{alg}/blobs/uploads/?digest={d}");
        let len = bytes.len().to_string();
        let resp = call(
            &r.router,
            "POST",
            &uri,
            &[OCTETS, ("content-length", &len)],
            bytes.clone(),
        )
        .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{alg}: single POST is 201");
        assert_eq!(resp.header("docker-content-digest"), d, "{alg}: the digest pushed by");
        let at = get(&r.router, &path_of(resp.header("location"))).await;
        assert_eq!(
            (at.status, at.body),
            (StatusCode::OK, bytes.clone()),
            "{alg}: Location is pullable"
        );
        assert_blob(&r.router, &format!("mono/{alg}"), &d, &bytes).await;
    }
}

#[tokio::test]
async fn post_then_put_uploads_a_blob_and_ends_the_session() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("postput/{alg}");
        let bytes = content("post then put", alg);
        let d = digest(alg, &bytes);
        let loc = start(&r.router, &repo).await;
        let len = bytes.len().to_string();
        let put = close(&r.router, &loc, &d, &[OCTETS, ("content-length", &len)], bytes.clone()).await;
        assert_eq!(put.status, StatusCode::CREATED, "{alg}: closing PUT is 201");
        assert_eq!(put.header("docker-content-digest"), d, "{alg}: the digest pushed by");
        let at = get(&r.router, &path_of(put.header("location"))).await;
        assert_eq!(at.body, bytes, "{alg}: Location is pullable");
        assert_blob(&r.router, &repo, &d, &bytes).await;
        let gone = get(&r.router, &loc).await;
        assert_eq!(
            (gone.status, gone.code().as_str()),
            (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            "{alg}: a closed session is over"
        );
    }
}

#[tokio::test]
async fn chunks_with_content_range_then_a_closing_put_with_the_last_chunk() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("chunked/{alg}");
        let whole = b"hello, chunked world".to_vec();
        let d = digest(alg, &whole);
        let mut loc = start(&r.router, &repo).await;
        for (range, chunk) in [("0-4", &whole[0..5]), ("5-11", &whole[5..12])] {
            let len = chunk.len().to_string();
            let hdrs = [OCTETS, ("content-range", range), ("content-length", &len)];
            let p = call(&r.router, "PATCH", &loc, &hdrs, chunk.to_vec()).await;
            assert_eq!(p.status, StatusCode::ACCEPTED, "{alg}: chunk {range}");
            assert_eq!(p.header("range"), format!("0-{}", range.split('-').nth(1).unwrap()));
            // "Each consecutive chunk upload SHOULD use the <location>
            // provided in the response to the previous chunk upload."
            loc = path_of(p.header("location"));
        }
        let hdrs = [OCTETS, ("content-range", "12-19"), ("content-length", "8")];
        let put = close(&r.router, &loc, &d, &hdrs, whole[12..].to_vec()).await;
        assert_eq!(
            put.status,
            StatusCode::CREATED,
            "{alg}: closing PUT with the final chunk"
        );
        assert_blob(&r.router, &repo, &d, &whole).await;
    }
}

#[tokio::test]
async fn streamed_patches_without_content_range_append_in_order() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("streamed/{alg}");
        let parts: [&[u8]; 3] = [b"stream ", b"of ", b"bytes, no ranges"];
        let whole = parts.concat();
        let mut loc = start(&r.router, &repo).await;
        let mut sent = 0;
        for part in parts {
            sent += part.len();
            let p = call(&r.router, "PATCH", &loc, &[OCTETS], part.to_vec()).await;
            assert_eq!(p.status, StatusCode::ACCEPTED, "{alg}: streamed PATCH");
            assert_eq!(p.header("range"), format!("0-{}", sent - 1), "{alg}: all bytes so far");
            loc = path_of(p.header("location"));
        }
        let d = digest(alg, &whole);
        let put = close(&r.router, &loc, &d, &[], vec![]).await;
        assert_eq!(put.status, StatusCode::CREATED, "{alg}: closing PUT without a body");
        assert_blob(&r.router, &repo, &d, &whole).await;
    }
}

#[tokio::test]
async fn upload_status_is_204_with_location_and_range() {
    let r = registry();
    for alg in ALGS {
        let loc = start(&r.router, &format!("status/{alg}")).await;
        let p = call(
            &r.router,
            "PATCH",
            &loc,
            &[OCTETS, ("content-range", "0-6")],
            b"0123456".to_vec(),
        )
        .await;
        assert_eq!(p.status, StatusCode::ACCEPTED);
        let s = get(&r.router, &loc).await;
        assert_eq!(s.status, StatusCode::NO_CONTENT, "{alg}: status of an active upload");
        assert_eq!(s.header("range"), "0-6", "{alg}: the last byte received");
        assert_eq!(path_of(s.header("location")), loc, "{alg}: where to continue");
        assert!(s.body.is_empty());
    }
}

#[tokio::test]
async fn an_out_of_order_chunk_is_416_and_the_session_continues() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("order/{alg}");
        let whole = b"0123456789abc".to_vec();
        let d = digest(alg, &whole);
        let loc = start(&r.router, &repo).await;
        let first = [OCTETS, ("content-range", "0-4"), ("content-length", "5")];
        let p = call(&r.router, "PATCH", &loc, &first, whole[..5].to_vec()).await;
        assert_eq!(p.status, StatusCode::ACCEPTED);
        // A chunk that does not start at the next byte (a gap), and one
        // that starts again at 0 (an overlap).
        for range in ["7-9", "0-2"] {
            let hdrs = [OCTETS, ("content-range", range), ("content-length", "3")];
            let bad = call(&r.router, "PATCH", &loc, &hdrs, b"xyz".to_vec()).await;
            assert_eq!(
                bad.status,
                StatusCode::RANGE_NOT_SATISFIABLE,
                "{alg}: PATCH {range} after 0-4"
            );
        }
        // The final chunk, out of order, in the closing PUT.
        let hdrs = [OCTETS, ("content-range", "8-12"), ("content-length", "5")];
        let bad = close(&r.router, &loc, &d, &hdrs, whole[8..].to_vec()).await;
        assert_eq!(
            bad.status,
            StatusCode::RANGE_NOT_SATISFIABLE,
            "{alg}: a final chunk 8-12 after 0-4"
        );
        // "A GET request may be used to retrieve the current valid offset".
        let s = get(&r.router, &loc).await;
        assert_eq!(
            (s.status, s.header("range")),
            (StatusCode::NO_CONTENT, "0-4"),
            "{alg}: nothing of a refused chunk was kept"
        );
        let hdrs = [OCTETS, ("content-range", "5-12"), ("content-length", "8")];
        let put = close(&r.router, &loc, &d, &hdrs, whole[5..].to_vec()).await;
        assert_eq!(put.status, StatusCode::CREATED, "{alg}: the upload resumes in order");
        assert_blob(&r.router, &repo, &d, &whole).await;
    }
}

#[tokio::test]
async fn a_digest_that_does_not_match_the_bytes_is_digest_invalid() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("wrong/{alg}");
        let bytes = content("mismatched", alg);
        let (claimed, actual) = (digest(alg, b"other bytes"), digest(alg, &bytes));
        let mono = call(
            &r.router,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?digest={claimed}"),
            &[OCTETS],
            bytes.clone(),
        )
        .await;
        assert_eq!(
            (mono.status, mono.code().as_str()),
            (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
            "{alg}: single POST"
        );
        let loc = start(&r.router, &repo).await;
        let put = close(&r.router, &loc, &claimed, &[OCTETS], bytes.clone()).await;
        assert_eq!(
            (put.status, put.code().as_str()),
            (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
            "{alg}: closing PUT"
        );
        let loc = start(&r.router, &repo).await;
        let p = call(&r.router, "PATCH", &loc, &[OCTETS], bytes.clone()).await;
        assert_eq!(p.status, StatusCode::ACCEPTED);
        let put = close(&r.router, &loc, &claimed, &[], vec![]).await;
        assert_eq!(
            (put.status, put.code().as_str()),
            (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
            "{alg}: closing PUT after chunks"
        );
        // Neither the claimed digest nor the bytes' own became content.
        assert_blob_unknown(&r.router, &repo, &claimed).await;
        assert_blob_unknown(&r.router, &repo, &actual).await;
    }
}

#[tokio::test]
async fn cancelling_an_upload_is_204_then_its_session_is_unknown() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("cancel/{alg}");
        let bytes = content("cancelled", alg);
        let d = digest(alg, &bytes);
        let loc = start(&r.router, &repo).await;
        let p = call(&r.router, "PATCH", &loc, &[OCTETS], bytes.clone()).await;
        assert_eq!(p.status, StatusCode::ACCEPTED);
        let del = call(&r.router, "DELETE", &loc, &[("content-length", "0")], vec![]).await;
        assert_eq!(del.status, StatusCode::NO_CONTENT, "{alg}: cancel");
        for (method, uri, body) in [
            ("GET", loc.clone(), vec![]),
            ("PATCH", loc.clone(), b"more".to_vec()),
            ("PUT", with_query(&loc, &format!("digest={d}")), vec![]),
            ("DELETE", loc.clone(), vec![]),
        ] {
            let resp = call(&r.router, method, &uri, &[], body).await;
            assert_eq!(
                (resp.status, resp.code().as_str()),
                (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
                "{alg}: {method} on a cancelled session"
            );
        }
        assert_blob_unknown(&r.router, &repo, &d).await;
    }
}

#[tokio::test]
async fn get_and_head_serve_the_blob_its_length_and_digest() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("pull/{alg}");
        let bytes = content("pulled", alg);
        let d = push(&r.router, &repo, alg, &bytes).await;
        let uri = format!("/v2/{repo}/blobs/{d}");
        let get = get(&r.router, &uri).await;
        assert_eq!((get.status, &get.body), (StatusCode::OK, &bytes), "{alg}: GET");
        assert_eq!(get.header("content-length"), bytes.len().to_string(), "{alg}: GET");
        assert_eq!(
            get.header("docker-content-digest"),
            d,
            "{alg}: GET names the digest pushed"
        );
        assert_eq!(digest(alg, &get.body), d, "{alg}: the body verifies against the digest");
        let head = call(&r.router, "HEAD", &uri, &[], vec![]).await;
        assert_eq!(head.status, StatusCode::OK, "{alg}: HEAD");
        assert_eq!(head.header("content-length"), bytes.len().to_string(), "{alg}: HEAD");
        assert_eq!(head.header("docker-content-digest"), d, "{alg}: HEAD");
        assert!(head.body.is_empty(), "{alg}: a HEAD response has no body");
    }
}

#[tokio::test]
async fn range_requests_are_206_with_content_range_or_416() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("range/{alg}");
        let bytes = b"0123456789".to_vec();
        let d = push(&r.router, &repo, alg, &bytes).await;
        let uri = format!("/v2/{repo}/blobs/{d}");
        for (range, body, content_range) in [
            ("bytes=2-4", &b"234"[..], "bytes 2-4/10"),
            ("bytes=7-", &b"789"[..], "bytes 7-9/10"),
            ("bytes=-2", &b"89"[..], "bytes 8-9/10"),
            ("bytes=0-0", &b"0"[..], "bytes 0-0/10"),
        ] {
            let part = call(&r.router, "GET", &uri, &[("range", range)], vec![]).await;
            assert_eq!(part.status, StatusCode::PARTIAL_CONTENT, "{alg}: {range}");
            assert_eq!(part.body, body, "{alg}: {range}");
            assert_eq!(part.header("content-range"), content_range, "{alg}: {range}");
            assert_eq!(part.header("content-length"), body.len().to_string(), "{alg}: {range}");
        }
        for range in ["bytes=10-20", "bytes=20-"] {
            let bad = call(&r.router, "GET", &uri, &[("range", range)], vec![]).await;
            assert_eq!(
                bad.status,
                StatusCode::RANGE_NOT_SATISFIABLE,
                "{alg}: {range} of 10 bytes"
            );
        }
    }
}

#[tokio::test]
async fn an_unknown_blob_is_404_blob_unknown() {
    let r = registry();
    for alg in ALGS {
        let bytes = content("elsewhere", alg);
        assert_blob_unknown(&r.router, &format!("unknown/{alg}"), &digest(alg, b"never pushed")).await;
        // "If the blob is not found in the repository": content of another
        // repository is not in this one.
        let d = push(&r.router, &format!("holder/{alg}"), alg, &bytes).await;
        assert_blob_unknown(&r.router, &format!("unknown/{alg}"), &d).await;
    }
}

#[tokio::test]
async fn deleting_a_blob_is_202_then_it_is_unknown() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("delete/{alg}");
        let d = push(&r.router, &repo, alg, &content("deleted", alg)).await;
        let uri = format!("/v2/{repo}/blobs/{d}");
        let del = call(&r.router, "DELETE", &uri, &[], vec![]).await;
        assert_eq!(del.status, StatusCode::ACCEPTED, "{alg}: DELETE");
        assert_blob_unknown(&r.router, &repo, &d).await;
        let again = call(&r.router, "DELETE", &uri, &[], vec![]).await;
        assert_eq!(again.status, StatusCode::NOT_FOUND, "{alg}: DELETE of a deleted blob");
    }
}

#[tokio::test]
async fn mounting_from_another_repository_links_the_blob() {
    let r = registry();
    for alg in ALGS {
        let (from, to) = (format!("source/{alg}"), format!("target/{alg}"));
        let bytes = content("mounted", alg);
        let d = push(&r.router, &from, alg, &bytes).await;
        let uri = format!("/v2/{to}/blobs/uploads/?mount={d}&from={from}");
        let mount = call(&r.router, "POST", &uri, &[("content-length", "0")], vec![]).await;
        assert_eq!(mount.status, StatusCode::CREATED, "{alg}: mount");
        let at = get(&r.router, &path_of(mount.header("location"))).await;
        assert_eq!(
            (at.status, at.body),
            (StatusCode::OK, bytes.clone()),
            "{alg}: Location is pullable"
        );
        assert_blob(&r.router, &to, &d, &bytes).await;
        assert_blob(&r.router, &from, &d, &bytes).await;
    }
}

#[tokio::test]
async fn mounting_an_unknown_blob_starts_an_upload_session_instead() {
    let r = registry();
    for alg in ALGS {
        let (from, to) = (format!("empty-source/{alg}"), format!("fallback/{alg}"));
        push(&r.router, &from, alg, &content("unrelated", alg)).await;
        let bytes = content("not yet anywhere", alg);
        let d = digest(alg, &bytes);
        let uri = format!("/v2/{to}/blobs/uploads/?mount={d}&from={from}");
        let mount = call(&r.router, "POST", &uri, &[("content-length", "0")], vec![]).await;
        assert_eq!(mount.status, StatusCode::ACCEPTED, "{alg}: an unmountable blob");
        // "the upload session has begun and ... the client MAY proceed".
        let loc = path_of(mount.header("location"));
        let put = close(&r.router, &loc, &d, &[OCTETS], bytes.clone()).await;
        assert_eq!(put.status, StatusCode::CREATED, "{alg}: upload in the fallback session");
        assert_blob(&r.router, &to, &d, &bytes).await;
    }
}

/// "The registry MAY treat the `from` parameter as
/// optional, and it MAY cross-mount the blob if it can be found."
#[tokio::test]
async fn mounting_without_from_finds_a_blob_the_caller_may_read() {
    let r = registry();
    for alg in ALGS {
        let (from, to) = (format!("anywhere/{alg}"), format!("fromless/{alg}"));
        let bytes = content("mounted without from", alg);
        let d = push(&r.router, &from, alg, &bytes).await;
        let uri = format!("/v2/{to}/blobs/uploads/?mount={d}");
        let mount = call(&r.router, "POST", &uri, &[("content-length", "0")], vec![]).await;
        assert_eq!(
            mount.status,
            StatusCode::CREATED,
            "{alg}: mount of a readable blob without from"
        );
        let at = get(&r.router, &path_of(mount.header("location"))).await;
        assert_eq!(at.body, bytes, "{alg}: Location is pullable");
        assert_blob(&r.router, &to, &d, &bytes).await;
    }
}
