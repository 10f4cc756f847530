//! What a pusher cannot do to an admission by flooding an image with junk
//! evidence (spec/threat-model.md): vouch reads at most 256 evidence
//! manifests per image, so past that bound a denial would rest on evidence
//! it never read. Such a denial decides nothing: the image keeps its state,
//! and a re-evaluation reports it as a failure rather than a verdict.

mod inproc;

use axum::http::StatusCode;
use inproc::*;

/// Junk cosign signatures of `image`: copies of the genuine signature
/// manifest `genuine` whose signature annotation is replaced (valid base64,
/// no signature), ground so that each sorts before `genuine` by digest.
/// That is where a store listing evidence by digest puts them first.
fn junk_before(genuine: &[u8], count: usize) -> Vec<Vec<u8>> {
    let text = String::from_utf8(genuine.to_vec()).unwrap();
    let key = "\"dev.cosignproject.cosign/signature\":\"";
    let start = text.find(key).unwrap() + key.len();
    let end = start + text[start..].find('"').unwrap();
    let bar = sha256(genuine);
    (0u64..)
        .map(|n| format!("{}{n:012}{}", &text[..start], &text[end..]).into_bytes())
        .filter(|m| sha256(m) < bar)
        .take(count)
        .collect()
}

#[tokio::test]
async fn junk_evidence_past_the_bound_never_takes_an_admission_back() {
    let (policy, key) = key_policy(7, "");
    let reg = admission_registry(policy, false).await;
    let r = &reg.router;
    let (image, ..) = push_image(r, "team/app", "v1", b"the admitted image", None).await;
    let reference = format!("{REGISTRY_NAME}/team/app");
    let genuine = signature_manifest(r, "team/app", &image, &reference, &key, None).await;
    let tag = format!("sha256-{}.sig", &image[7..]);
    let put = put_manifest(r, "team/app", &tag, OCI, &genuine, None).await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());
    let path = format!("/v2/team/app/manifests/{image}");
    assert!(anonymous_gets(r, &path).await, "the signed image is admitted");
    let decisions = ledger_entries(&reg.state).len();

    // 257 junk signatures that the store lists before the genuine one:
    // the 256 read are all junk.
    for junk in junk_before(&genuine, 257) {
        let put = put_manifest(r, "team/app", &tag, OCI, &junk, None).await;
        assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());
    }
    assert!(anonymous_gets(r, &path).await, "junk evidence took the admission back");
    let entries = ledger_entries(&reg.state);
    let logged = format!("{:?}", &entries[decisions..]);
    assert!(
        !logged.contains(&image[7..]),
        "a decision about the image was logged on evidence not all read: {logged}"
    );

    // A re-evaluation cannot decide either: a failure, named; the state stands.
    let report = reg.state.gate.reevaluate(&reg.state, true).await.unwrap();
    assert!(report["failed"].as_u64() >= Some(1), "{report}");
    let failures = report["failures"].as_array().unwrap();
    assert!(
        failures.iter().any(|f| {
            let f = f.as_str().unwrap_or_default();
            f.contains(&image) && f.contains("evidence")
        }),
        "{report}"
    );
    assert!(anonymous_gets(r, &path).await);
}

#[tokio::test]
async fn a_genuine_signature_admits_an_image_already_flooded_with_junk() {
    let (policy, key) = key_policy(7, "");
    let reg = admission_registry(policy, false).await;
    let r = &reg.router;
    let (image, ..) = push_image(r, "team/app", "v1", b"a flooded image", None).await;
    let reference = format!("{REGISTRY_NAME}/team/app");
    let genuine = signature_manifest(r, "team/app", &image, &reference, &key, None).await;
    let tag = format!("sha256-{}.sig", &image[7..]);
    for junk in junk_before(&genuine, 257) {
        let put = put_manifest(r, "team/app", &tag, OCI, &junk, None).await;
        assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());
    }
    let path = format!("/v2/team/app/manifests/{image}");
    assert!(!anonymous_gets(r, &path).await, "junk admits nothing");
    let put = put_manifest(r, "team/app", &tag, OCI, &genuine, None).await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());
    assert!(
        anonymous_gets(r, &path).await,
        "the signature arriving is always read, however much junk is stored"
    );
}
