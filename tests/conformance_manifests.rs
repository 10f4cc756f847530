//! Conformance of the manifest, tag and referrers endpoints to the OCI
//! distribution spec (opencontainers/distribution-spec `spec.md`, main),
//! each test run for both digest algorithms, sha256 and sha512 (digests
//! computed here with the `sha2` crate, never with vouch's own code):
//!
//! - "Pushing Manifests" (end-7: by tag and by digest, `201`, `Location`,
//!   `Docker-Content-Digest` "MUST be equal to the client provided digest",
//!   `MANIFEST_BLOB_UNKNOWN`, "The registry MUST store the manifest in the
//!   exact byte representation provided by the client");
//! - "Pushing Manifests with Subject" (`OCI-Subject`);
//! - the `tag` query parameter of a push by digest (main, from
//!   distribution-spec#600): every tag applied, and "For each tag that was
//!   successfully pushed, include an `OCI-Tag` response header in
//!   accordance with RFC 2616 (section 4.2) semantics";
//! - "Pulling manifests" and "Checking if content exists in the registry"
//!   (end-3: exact bytes, `Content-Type`, `404 MANIFEST_UNKNOWN`);
//! - "Listing Tags" (end-8a/8b: lexical order, `n`, `last`, `Link`);
//! - "Listing Referrers" (end-12a: `artifactType`, annotations, an empty
//!   index rather than 404);
//! - "Deleting Manifests" and "Deleting tags" (end-9).
//!
//! Over the in-process harness (`tests/api`): the real router, RocksDB and
//! blob files, no admission policy.

mod api;

use api::*;
use sha2::Digest as _;

const ALGS: [&str; 2] = ["sha256", "sha512"];
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// `alg:hex` of `bytes`.
fn digest(alg: &str, bytes: &[u8]) -> String {
    match alg {
        "sha256" => format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes))),
        "sha512" => format!("sha512:{}", hex::encode(sha2::Sha512::digest(bytes))),
        other => panic!("no algorithm {other}"),
    }
}

/// Whether `d` (of any algorithm this file knows) is the digest of `bytes`.
fn verifies(d: &str, bytes: &[u8]) -> bool {
    d.split_once(':')
        .is_some_and(|(alg, _)| ALGS.contains(&alg) && digest(alg, bytes) == d)
}

/// The path of a `Location` (or `Link`) URL, which may be absolute.
fn path_of(url: &str) -> String {
    assert!(!url.is_empty(), "a URL is required");
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/".into(), |i| rest[i..].to_owned()),
        None => url.to_owned(),
    }
}

/// Every value of a header that RFC 2616 section 4.2 makes a comma-separated
/// list: repeated fields and comma-joined values are the same thing.
fn list_header(resp: &Resp, name: &str) -> Vec<String> {
    resp.headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Pushes `bytes` with a single POST under their `alg` digest.
async fn push_blob_by(r: &Router, repo: &str, alg: &str, bytes: &[u8]) -> String {
    let d = digest(alg, bytes);
    let resp = call(
        r,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
        &[],
        bytes.to_vec(),
    )
    .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{alg} blob push");
    d
}

/// An image manifest whose config and layer are in `repo` under their `alg`
/// digests; `note` makes it unique. Laid out with spaces and a newline that
/// no serializer would reproduce, so that only the bytes pushed match.
async fn image(r: &Router, repo: &str, alg: &str, note: &str) -> Vec<u8> {
    let (config, layer) = (b"{}".to_vec(), format!("layer of {note}").into_bytes());
    let c = push_blob_by(r, repo, alg, &config).await;
    let l = push_blob_by(r, repo, alg, &layer).await;
    let extra = format!(",\n  \"annotations\" : {{ \"note\": \"{note}\" }} ");
    image_manifest(&c, config.len(), &l, layer.len(), &extra)
}

/// GETs `uri`.
async fn get(r: &Router, uri: &str) -> Resp {
    call(r, "GET", uri, &[], vec![]).await
}

async fn put(r: &Router, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> Resp {
    let uri = format!("/v2/{repo}/manifests/{reference}");
    call(r, "PUT", &uri, &[("content-type", media_type)], bytes.to_vec()).await
}

/// PUTs a manifest that must be accepted (201).
async fn created(r: &Router, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> Resp {
    let resp = put(r, repo, reference, media_type, bytes).await;
    let why = String::from_utf8_lossy(&resp.body);
    assert_eq!(resp.status, StatusCode::CREATED, "PUT {repo}:{reference}: {why}");
    resp
}

/// Asserts that GET and HEAD of `repo:reference` serve `bytes` as `media_type`.
async fn assert_manifest(r: &Router, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) {
    let uri = format!("/v2/{repo}/manifests/{reference}");
    let accept = [("accept", OCI), ("accept", INDEX)];
    let get = call(r, "GET", &uri, &accept, vec![]).await;
    assert_eq!(get.status, StatusCode::OK, "GET {repo}:{reference}");
    assert_eq!(get.body, bytes, "GET {repo}:{reference} serves the exact bytes pushed");
    assert_eq!(get.header("content-type"), media_type, "GET {repo}:{reference}");
    let named = get.header("docker-content-digest");
    assert!(
        verifies(named, bytes),
        "GET {repo}:{reference}: {named:?} does not verify the body"
    );
    if reference.contains(':') {
        assert!(
            verifies(reference, &get.body),
            "GET by {reference}: the body is not that content"
        );
    }
    let head = call(r, "HEAD", &uri, &accept, vec![]).await;
    assert_eq!(head.status, StatusCode::OK, "HEAD {repo}:{reference}");
    assert_eq!(
        head.header("content-length"),
        bytes.len().to_string(),
        "HEAD {repo}:{reference}"
    );
    assert_eq!(head.header("docker-content-digest"), named, "HEAD {repo}:{reference}");
    assert!(head.body.is_empty(), "HEAD {repo}:{reference} has no body");
}

async fn assert_manifest_unknown(r: &Router, repo: &str, reference: &str) {
    let uri = format!("/v2/{repo}/manifests/{reference}");
    let get = get(r, &uri).await;
    assert_eq!(
        (get.status, get.code().as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        "GET {repo}:{reference}"
    );
    let head = call(r, "HEAD", &uri, &[], vec![]).await;
    assert_eq!(head.status, StatusCode::NOT_FOUND, "HEAD {repo}:{reference}");
}

#[tokio::test]
async fn put_by_tag_is_201_with_a_pullable_location_and_a_verifiable_digest() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("bytag/{alg}");
        let m = image(&r.router, &repo, alg, "by tag").await;
        let resp = created(&r.router, &repo, "v1", OCI, &m).await;
        let named = resp.header("docker-content-digest").to_owned();
        assert!(
            verifies(&named, &m),
            "{alg}: Docker-Content-Digest {named:?} is not of the bytes"
        );
        let at = get(&r.router, &path_of(resp.header("location"))).await;
        assert_eq!(
            (at.status, at.body),
            (StatusCode::OK, m.clone()),
            "{alg}: Location is pullable"
        );
        assert_manifest(&r.router, &repo, "v1", OCI, &m).await;
        assert_manifest(&r.router, &repo, &named, OCI, &m).await;
    }
}

#[tokio::test]
async fn put_by_digest_answers_with_that_digest() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("bydigest/{alg}");
        let m = image(&r.router, &repo, alg, "by digest").await;
        let d = digest(alg, &m);
        let resp = created(&r.router, &repo, &d, OCI, &m).await;
        assert_eq!(
            resp.header("docker-content-digest"),
            d,
            "{alg}: \"MUST be equal to the client provided digest\""
        );
        let at = get(&r.router, &path_of(resp.header("location"))).await;
        assert_eq!(
            (at.status, at.body),
            (StatusCode::OK, m.clone()),
            "{alg}: Location is pullable"
        );
        assert_manifest(&r.router, &repo, &d, OCI, &m).await;
    }
}

#[tokio::test]
async fn put_by_a_digest_the_bytes_do_not_have_is_digest_invalid() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("mismatch/{alg}");
        let m = image(&r.router, &repo, alg, "claimed").await;
        let other = image(&r.router, &repo, alg, "sent").await;
        let claimed = digest(alg, &m);
        let resp = put(&r.router, &repo, &claimed, OCI, &other).await;
        assert_eq!(
            (resp.status, resp.code().as_str()),
            (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
            "{alg}"
        );
        assert_manifest_unknown(&r.router, &repo, &claimed).await;
        assert_manifest_unknown(&r.router, &repo, &digest(alg, &other)).await;
    }
}

#[tokio::test]
async fn an_index_is_served_with_its_own_content_type() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("index/{alg}");
        let m = image(&r.router, &repo, alg, "platform").await;
        let d = digest(alg, &m);
        created(&r.router, &repo, &d, OCI, &m).await;
        let index = format!(
            "{{\"schemaVersion\":2,\"mediaType\":\"{INDEX}\",\"manifests\":[{{\"mediaType\":\"{OCI}\",\"digest\":\"{d}\",\"size\":{},\"platform\":{{\"architecture\":\"amd64\",\"os\":\"linux\"}}}}]}}\n",
            m.len()
        )
        .into_bytes();
        let by = digest(alg, &index);
        created(&r.router, &repo, &by, INDEX, &index).await;
        created(&r.router, &repo, "multi", INDEX, &index).await;
        assert_manifest(&r.router, &repo, &by, INDEX, &index).await;
        assert_manifest(&r.router, &repo, "multi", INDEX, &index).await;
    }
}

#[tokio::test]
async fn an_unknown_manifest_is_404_manifest_unknown() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("unknown/{alg}");
        let m = image(&r.router, &repo, alg, "known").await;
        created(&r.router, &repo, "known", OCI, &m).await;
        assert_manifest_unknown(&r.router, &repo, "nope").await;
        assert_manifest_unknown(&r.router, &repo, &digest(alg, b"no such manifest")).await;
        // Stored in one repository is not stored in another.
        assert_manifest_unknown(&r.router, &format!("elsewhere/{alg}"), &digest(alg, &m)).await;
    }
}

#[tokio::test]
async fn a_manifest_naming_a_missing_blob_is_manifest_blob_unknown() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("missing/{alg}");
        let config = push_blob_by(&r.router, &repo, alg, b"{}").await;
        let absent = digest(alg, b"a layer never pushed");
        let m = image_manifest(&config, 2, &absent, 20, "");
        let d = digest(alg, &m);
        for reference in ["v1", d.as_str()] {
            let resp = put(&r.router, &repo, reference, OCI, &m).await;
            assert_eq!(
                (resp.status, resp.code().as_str()),
                (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"),
                "{alg}: PUT {reference}"
            );
        }
        assert_manifest_unknown(&r.router, &repo, "v1").await;
        assert_manifest_unknown(&r.router, &repo, &d).await;
    }
}

#[tokio::test]
async fn deleting_a_manifest_by_digest_is_202_and_removes_its_tags() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("delete/{alg}");
        let m = image(&r.router, &repo, alg, "deleted").await;
        let d = digest(alg, &m);
        created(&r.router, &repo, &d, OCI, &m).await;
        created(&r.router, &repo, &format!("{d}?tag=doomed"), OCI, &m).await;
        assert_manifest(&r.router, &repo, "doomed", OCI, &m).await;
        let del = call(&r.router, "DELETE", &format!("/v2/{repo}/manifests/{d}"), &[], vec![]).await;
        assert_eq!(del.status, StatusCode::ACCEPTED, "{alg}: DELETE by digest");
        // "a GET to /v2/<name>/manifests/<digest> and any tag pointing to
        // that digest will return a 404".
        assert_manifest_unknown(&r.router, &repo, &d).await;
        assert_manifest_unknown(&r.router, &repo, "doomed").await;
    }
}

#[tokio::test]
async fn deleting_a_tag_is_202_and_leaves_the_manifest_and_its_other_tags() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("untag/{alg}");
        let m = image(&r.router, &repo, alg, "untagged").await;
        for tag in ["old", "kept"] {
            created(&r.router, &repo, tag, OCI, &m).await;
        }
        let del = call(&r.router, "DELETE", &format!("/v2/{repo}/manifests/old"), &[], vec![]).await;
        assert_eq!(del.status, StatusCode::ACCEPTED, "{alg}: DELETE of a tag");
        assert_manifest_unknown(&r.router, &repo, "old").await;
        assert_manifest(&r.router, &repo, "kept", OCI, &m).await;
        let tags = get(&r.router, &format!("/v2/{repo}/tags/list")).await;
        let tags: serde_json::Value = serde_json::from_slice(&tags.body).unwrap();
        assert_eq!(tags["tags"], serde_json::json!(["kept"]), "{alg}");
    }
}

/// The tags of one page of `uri`, and the page its `Link` names next.
async fn tag_page(r: &Router, uri: &str) -> (Vec<String>, Option<String>) {
    let resp = get(r, uri).await;
    assert_eq!(resp.status, StatusCode::OK, "GET {uri}");
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    let tags = v["tags"]
        .as_array()
        .map_or(vec![], |t| t.iter().map(|t| t.as_str().unwrap().to_owned()).collect());
    let link = resp.headers.get("link").map(|l| {
        let l = l.to_str().unwrap();
        assert!(l.contains("rel=\"next\""), "GET {uri}: Link {l:?}");
        path_of(&l[l.find('<').unwrap() + 1..l.find('>').unwrap()])
    });
    (tags, link)
}

#[tokio::test]
async fn tags_list_in_lexical_order_paged_by_n_last_and_link() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("tags/{alg}");
        let m = image(&r.router, &repo, alg, "tagged").await;
        let all = ["alpha", "beta", "delta", "gamma", "omega"];
        for tag in ["gamma", "alpha", "omega", "beta", "delta"] {
            created(&r.router, &repo, tag, OCI, &m).await;
        }
        let base = format!("/v2/{repo}/tags/list");
        let whole = get(&r.router, &base).await;
        let v: serde_json::Value = serde_json::from_slice(&whole.body).unwrap();
        assert_eq!(v["name"], repo.as_str(), "{alg}");
        assert_eq!(v["tags"], serde_json::json!(all), "{alg}: every tag, sorted");

        // n=2 from the start: exactly 2 while more follow; the Link pages on.
        let (first, mut next) = tag_page(&r.router, &format!("{base}?n=2")).await;
        assert_eq!(first, ["alpha", "beta"], "{alg}: ?n=2");
        assert!(next.is_some(), "{alg}: ?n=2 of 5 tags has a Link to the rest");
        let mut listed = first;
        while let Some(uri) = next.take() {
            let (page, link) = tag_page(&r.router, &uri).await;
            assert!(page.len() <= 2, "{alg}: {uri} lists at most n");
            if link.is_some() {
                assert_eq!(page.len(), 2, "{alg}: {uri} has fewer than n yet more follow");
            }
            listed.extend(page);
            next = link;
        }
        assert_eq!(listed, all, "{alg}: the pages together");

        let (after, _) = tag_page(&r.router, &format!("{base}?last=beta")).await;
        assert_eq!(after, ["delta", "gamma", "omega"], "{alg}: ?last=beta");
        let (after, _) = tag_page(&r.router, &format!("{base}?n=1&last=delta")).await;
        assert_eq!(after, ["gamma"], "{alg}: ?n=1&last=delta");
        let (none, link) = tag_page(&r.router, &format!("{base}?n=0")).await;
        assert!(
            none.is_empty() && link.is_none(),
            "{alg}: n=0 is an empty list without Link"
        );
    }
}

/// An artifact manifest referring to `subject` (`size` bytes): its bytes.
async fn artifact(r: &Router, repo: &str, alg: &str, (subject, size): (&str, usize), kind: Option<&str>) -> Vec<u8> {
    let config = push_blob_by(r, repo, alg, b"{}").await;
    let label = kind.unwrap_or("untyped");
    let payload = format!("payload of a {label} referrer by {alg}").into_bytes();
    let layer = push_blob_by(r, repo, alg, &payload).await;
    let (artifact_type, config_type) = match kind {
        Some(t) => (
            format!(",\"artifactType\":\"{t}\""),
            "application/vnd.oci.empty.v1+json",
        ),
        None => (String::new(), "application/vnd.example.signature.config.v1+json"),
    };
    format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{OCI}\"{artifact_type},\
         \"config\":{{\"mediaType\":\"{config_type}\",\"digest\":\"{config}\",\"size\":2}},\
         \"layers\":[{{\"mediaType\":\"application/vnd.example.payload\",\"digest\":\"{layer}\",\"size\":{}}}],\
         \"subject\":{{\"mediaType\":\"{OCI}\",\"digest\":\"{subject}\",\"size\":{size}}},\
         \"annotations\":{{\"org.example.kind\":\"{label}\"}}}}",
        payload.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn referrers_list_artifacts_by_their_subject_with_artifact_type_and_annotations() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("referrers/{alg}");
        let subject = image(&r.router, &repo, alg, "subject").await;
        let s = digest(alg, &subject);
        created(&r.router, &repo, &s, OCI, &subject).await;
        let sbom = artifact(
            &r.router,
            &repo,
            alg,
            (&s, subject.len()),
            Some("application/vnd.example.sbom.v1"),
        )
        .await;
        let sig = artifact(&r.router, &repo, alg, (&s, subject.len()), None).await;
        let mut expected = Vec::new();
        for (bytes, artifact_type) in [
            (&sbom, "application/vnd.example.sbom.v1"),
            // No artifactType: "the descriptor's artifactType MUST be set to
            // the config descriptor's mediaType".
            (&sig, "application/vnd.example.signature.config.v1+json"),
        ] {
            let d = digest(alg, bytes);
            let resp = created(&r.router, &repo, &d, OCI, bytes).await;
            assert_eq!(resp.header("oci-subject"), s, "{alg}: OCI-Subject names the subject");
            let annotations: serde_json::Value =
                serde_json::from_slice::<serde_json::Value>(bytes).unwrap()["annotations"].clone();
            expected.push((d, bytes.len(), artifact_type, annotations));
        }
        let resp = get(&r.router, &format!("/v2/{repo}/referrers/{s}")).await;
        assert_eq!(resp.status, StatusCode::OK, "{alg}: referrers of {s}");
        assert_eq!(resp.header("content-type"), INDEX, "{alg}");
        let index: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(index["schemaVersion"], 2, "{alg}");
        assert_eq!(index["mediaType"], INDEX, "{alg}");
        let listed = index["manifests"].as_array().expect("a manifests array");
        assert_eq!(listed.len(), expected.len(), "{alg}: {listed:?}");
        for (d, size, artifact_type, annotations) in expected {
            let entry = listed
                .iter()
                .find(|e| e["digest"] == d.as_str())
                .unwrap_or_else(|| panic!("{alg}: {d} is not among the referrers of {s}: {listed:?}"));
            assert_eq!(entry["mediaType"], OCI, "{alg}: {d}");
            assert_eq!(entry["size"], size, "{alg}: {d}");
            assert_eq!(entry["artifactType"], artifact_type, "{alg}: {d}");
            assert_eq!(entry["annotations"], annotations, "{alg}: {d}");
        }
        let filtered = format!("/v2/{repo}/referrers/{s}?artifactType=application/vnd.example.sbom.v1");
        let resp = get(&r.router, &filtered).await;
        let index: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        if resp.header("oci-filters-applied").contains("artifactType") {
            assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{alg}: filtered");
            assert_eq!(index["manifests"][0]["digest"], digest(alg, &sbom), "{alg}: filtered");
        }
    }
}

#[tokio::test]
async fn referrers_of_a_digest_nothing_refers_to_is_an_empty_index() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("noreferrers/{alg}");
        let m = image(&r.router, &repo, alg, "alone").await;
        let d = digest(alg, &m);
        created(&r.router, &repo, &d, OCI, &m).await;
        for subject in [d, digest(alg, b"never pushed")] {
            let resp = get(&r.router, &format!("/v2/{repo}/referrers/{subject}")).await;
            assert_eq!(resp.status, StatusCode::OK, "{alg}: MUST NOT return 404");
            let index: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
            assert_eq!(index["manifests"], serde_json::json!([]), "{alg}: {subject}");
        }
    }
}

/// distribution-spec main (#600): "When pushing a manifest by digest, the
/// registry MAY support the pushing of tags specified by addition of `tag`
/// query parameters."
#[tokio::test]
async fn put_by_digest_with_tag_parameters_applies_every_tag_and_names_each_in_oci_tag() {
    let r = registry();
    for alg in ALGS {
        let repo = format!("tagparams/{alg}");
        let m = image(&r.router, &repo, alg, "tag parameters").await;
        let d = digest(alg, &m);
        let resp = created(&r.router, &repo, &format!("{d}?tag=a&tag=b"), OCI, &m).await;
        assert_eq!(
            resp.header("docker-content-digest"),
            d,
            "{alg}: stored by the digest given"
        );
        let mut applied = list_header(&resp, "oci-tag");
        applied.sort();
        assert_eq!(applied, ["a", "b"], "{alg}: an OCI-Tag value per tag applied");
        assert_manifest(&r.router, &repo, &d, OCI, &m).await;
        for tag in ["a", "b"] {
            assert_manifest(&r.router, &repo, tag, OCI, &m).await;
        }
        let (tags, _) = tag_page(&r.router, &format!("/v2/{repo}/tags/list")).await;
        assert_eq!(tags, ["a", "b"], "{alg}: the tags are listed");
    }
}
