//! What a pusher cannot do to an admission (spec/threat-model.md):
//!
//! - flood an image with junk evidence: vouch reads at most 256 evidence
//!   manifests per image, so past that bound a denial would rest on
//!   evidence it never read. Such a denial decides nothing: the image keeps
//!   its state, and a re-evaluation reports it as a failure, not a verdict;
//! - take away what vouch wrote (its countersigned signature, its admission
//!   bundle), which clients fetch to verify: deleting it is an admin's act.

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

#[tokio::test]
async fn deleting_what_vouch_wrote_is_an_admins_act() {
    let (policy, key) = key_policy(7, "");
    let dir = tempfile::tempdir().unwrap();
    let mut state = state_in(dir.path());
    state.access = users_access(dir.path(), true);
    let admission = vouch::admission::Admission::load(policy, &state.ledger, &state.meta)
        .await
        .unwrap()
        .with_countersigner(vouch::countersign::Countersigner::new(
            p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap(),
        ))
        .with_registry_names(&[REGISTRY_NAME.to_owned()]);
    let admission = std::sync::Arc::new(admission);
    state.gate = admission.clone();
    let state = std::sync::Arc::new(state);
    let r = &vouch::registry::app(state.clone());
    let (pusher, admin) = (basic("pusher", "pw"), basic("admin", "pw"));
    let (image, ..) = push_image(r, "team/app", "v1", b"countersigned", Some(&pusher)).await;
    let put = push_signature(r, "team/app", &image, &key, Some(&pusher)).await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());
    // What vouch serve's bundle task does.
    assert_eq!(admission.attach_pending(&state).await.unwrap(), 1);

    // vouch's own: the countersigned signature under the .sig tag, and the
    // admission bundle referrer.
    let sig_tag = format!("sha256-{}.sig", &image[7..]);
    let head = call(r, "HEAD", &format!("/v2/team/app/manifests/{sig_tag}"), &[], vec![]).await;
    let countersigned = head.header("docker-content-digest");
    let listing = call(r, "GET", &format!("/v2/team/app/referrers/{image}"), &[], vec![]).await;
    let index: serde_json::Value = serde_json::from_slice(&listing.body).unwrap();
    let bundle = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["artifactType"] == vouch::admission::evidence::BUNDLE_ARTIFACT_TYPE)
        .and_then(|m| m["digest"].as_str())
        .expect("an admission bundle referrer")
        .to_owned();
    let as_pusher = [("authorization", pusher.as_str())];
    for path in [
        format!("/v2/team/app/manifests/{bundle}"),
        format!("/v2/team/app/manifests/{countersigned}"),
        format!("/v2/team/app/manifests/{sig_tag}"),
    ] {
        let del = call(r, "DELETE", &path, &as_pusher, vec![]).await;
        assert_eq!(del.status, StatusCode::FORBIDDEN, "{path}: {}", del.text());
        assert!(del.text().contains("vouch's own"), "{}", del.text());
    }
    assert!(anonymous_gets(r, &format!("/v2/team/app/manifests/{bundle}")).await);
    // A signer adding a signature moves the .sig tag off vouch's copy: not
    // an admin's act (cosign does it for every new signature).
    let other = p256::ecdsa::SigningKey::from_slice(&[8; 32]).unwrap();
    let put = push_signature(r, "team/app", &image, &other, Some(&pusher)).await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());
    // An admin may delete the bundle; the ledger logs it first.
    let before = ledger_entries(&state).len();
    let del = call(
        r,
        "DELETE",
        &format!("/v2/team/app/manifests/{bundle}"),
        &[("authorization", admin.as_str())],
        vec![],
    )
    .await;
    assert_eq!(del.status, StatusCode::ACCEPTED, "{}", del.text());
    let logged = ledger_entries(&state)[before..].to_vec();
    assert!(
        logged
            .iter()
            .any(|e| matches!(e, vouch_ledger::entry::Entry::Delete(d) if d.digest.as_str() == bundle)),
        "{logged:?}"
    );
}

/// Under a rule that reads what attestations say (here a Rego module; the
/// same holds for `vulnerabilities`, `provenance` and `sbom`), evidence not
/// all read could hide a newer scan with a critical finding: the flood that
/// decides nothing above denies here, naming why, rather than let an
/// admission stand on part of the evidence.
#[tokio::test]
async fn under_a_rule_over_attestation_content_evidence_not_all_read_denies() {
    use p256::pkcs8::EncodePublicKey as _;
    let dir = tempfile::tempdir().unwrap();
    let key = p256::ecdsa::SigningKey::from_slice(&[8; 32]).unwrap();
    let pem = key
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    std::fs::write(
        dir.path().join("content.rego"),
        "package vouch\n\ndeny contains \"never\" if { false }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        format!(
            "version = 1\nname = \"content\"\n[keys]\nk = \"\"\"{pem}\"\"\"\n[[rule]]\nrepositories = \"**\"\n\
             signatures = {{ keys = [\"k\"] }}\nrego = \"content.rego\"\n"
        ),
    )
    .unwrap();
    let policy = vouch::policy::Policy::load(&dir.path().join("p.toml")).unwrap();
    let reg = admission_registry(policy, false).await;
    let r = &reg.router;
    let (image, ..) = push_image(r, "team/app", "v1", b"an image under a content rule", None).await;
    let reference = format!("{REGISTRY_NAME}/team/app");
    let genuine = signature_manifest(r, "team/app", &image, &reference, &key, None).await;
    let tag = format!("sha256-{}.sig", &image[7..]);
    let put = put_manifest(r, "team/app", &tag, OCI, &genuine, None).await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());
    let path = format!("/v2/team/app/manifests/{image}");
    assert!(anonymous_gets(r, &path).await, "the signed image is admitted");
    for junk in junk_before(&genuine, 257) {
        let put = put_manifest(r, "team/app", &tag, OCI, &junk, None).await;
        assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());
    }
    assert!(
        !anonymous_gets(r, &path).await,
        "an admission stood on evidence not all read"
    );
    let logged = format!("{:?}", ledger_entries(&reg.state));
    assert!(logged.contains("not all evidence could be read"), "{logged}");
}
