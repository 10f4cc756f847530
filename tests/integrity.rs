//! What is admitted stays what was admitted (issue 9's integrity findings),
//! in-process through the real router and storage: evidence that changes
//! nothing makes no decision and writes nothing; superseded bundles and
//! countersignatures are collectable; re-evaluation logs only changed
//! verdicts; descriptor sizes are facts, not claims; destroying admitted
//! content is an admin's act and logged, or refused; a revoked image loses
//! vouch's countersignature in the same step as its admission; an upload
//! session is finished once.

mod inproc;

use axum::http::StatusCode;
use inproc::*;
use vouch_ledger::entry::Entry;

fn blob_files(reg: &Registry) -> usize {
    walk(&reg.dir.path().join("data/blobs"))
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn evidence_that_changes_nothing_makes_no_decision_and_writes_nothing() {
    let (policy, key) = key_policy(3, "");
    let reg = admission_registry(policy, false).await;
    let r = &reg.router;
    let (image, ..) = push_image(r, "team/app", "v1", b"an image", None).await;
    let sig = signature_manifest(r, "team/app", &image, "registry/team/app", &key, None).await;
    let tag = format!("sha256-{}.sig", &image[7..]);
    let first = put_manifest(r, "team/app", &tag, OCI, &sig, None).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(anonymous_gets(r, "/v2/team/app/manifests/v1").await);
    let (size, files) = (reg.state.ledger.size(), blob_files(&reg));
    // The same signature manifest, again and again (the finding: 20 more
    // entries, 51 blob files, 20 bundles).
    for _ in 0..20 {
        let again = put_manifest(r, "team/app", &digest_of(&sig), OCI, &sig, None).await;
        assert_eq!(again.status, StatusCode::CREATED);
    }
    assert_eq!(reg.state.ledger.size(), size, "no decision for evidence already here");
    assert_eq!(blob_files(&reg), files, "no new countersignature");
    // Re-evaluating everything, twice, changes no verdict and logs nothing.
    for _ in 0..2 {
        let report = reg.state.gate.reevaluate(&reg.state, true).await.unwrap();
        assert_eq!(
            (report["evaluated"].as_u64(), report["changed"].as_u64()),
            (Some(1), Some(0))
        );
    }
    assert_eq!(reg.state.ledger.size(), size);
}

fn digest_of(b: &[u8]) -> String {
    sha256(b)
}

#[tokio::test]
async fn declared_sizes_are_checked_and_sums_cannot_wrap() {
    let (policy, _) = vouch::policy::Policy::parse(
        "version = 1\nname = \"small\"\n[[rule]]\nrepositories = \"**\"\nmax_size = 1000\n",
        std::path::Path::new("p.toml"),
    )
    .map(|p| (p, ()))
    .unwrap();
    let reg = admission_registry(policy, false).await;
    let r = &reg.router;
    let big = vec![7u8; 5000];
    let l = push_blob(r, "team/app", &big, None).await;
    let c = push_blob(r, "team/app", b"{}", None).await;
    // A layer declared smaller than its blob.
    let lying = image_manifest(&c, 2, &l, 100, "");
    let put = put_manifest(r, "team/app", "v1", OCI, &lying, None).await;
    assert_eq!(
        (put.status, put.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_INVALID")
    );
    assert!(put.text().contains("declares"), "{}", put.text());
    // A size near 2^64: refused the same way (and a sum could not wrap).
    let huge = image_manifest(&c, 2, &l, (u64::MAX - 5000) as usize, "");
    let put = put_manifest(r, "team/app", "v1", OCI, &huge, None).await;
    assert_eq!(put.status, StatusCode::BAD_REQUEST);
    // Declared truthfully, the image is over the rule's limit: denied.
    let honest = image_manifest(&c, 2, &l, 5000, "");
    let put = put_manifest(r, "team/app", "v1", OCI, &honest, None).await;
    assert_eq!(put.header("vouch-admission-state"), "denied");
    assert!(!anonymous_gets(r, &format!("/v2/team/app/blobs/{l}")).await);
    // Nothing of the refused pushes was stored.
    let repo = vouch::registry::names::RepoName::parse("team/app").unwrap();
    for refused in [&lying, &huge] {
        let d = vouch_ledger::entry::Digest::parse(&sha256(refused)).unwrap();
        assert!(reg.state.meta.manifest(&repo, &d).unwrap().is_none());
    }
}

#[tokio::test]
async fn destroying_admitted_content_is_an_admins_act_and_logged_or_refused() {
    let open = vouch::policy::Policy::parse(
        "version = 1\nname = \"open\"\n[[rule]]\nrepositories = \"**\"\n",
        std::path::Path::new("p.toml"),
    )
    .unwrap();
    let reg = admission_registry(open, true).await;
    let r = &reg.router;
    let (pusher, admin) = (basic("pusher", "pw"), basic("admin", "pw"));
    let (a, _, layer) = push_image(r, "team/app", "latest", b"first release", Some(&pusher)).await;
    let (b, ..) = push_image(r, "team/app", "next", b"second release", Some(&pusher)).await;
    // Moving `latest` off admitted content: refused to a pusher...
    let m = call(r, "GET", "/v2/team/app/manifests/next", &[], vec![]).await.body;
    let moved = put_manifest(r, "team/app", "latest", OCI, &m, Some(&pusher)).await;
    assert_eq!((moved.status, moved.code().as_str()), (StatusCode::FORBIDDEN, "DENIED"));
    // ...done by an admin, and logged with where it pointed before.
    let before = reg.state.ledger.size();
    let moved = put_manifest(r, "team/app", "latest", OCI, &m, Some(&admin)).await;
    assert_eq!(moved.status, StatusCode::CREATED);
    let logged: Vec<_> = ledger_entries(&reg.state)[before as usize..].to_vec();
    assert!(
        matches!(&logged[..], [Entry::Tag(t)] if t.tag == "latest" && t.digest.as_str() == b && t.previous.as_ref().map(|p| p.as_str()) == Some(a.as_str())),
        "{logged:?}"
    );
    // A blob of admitted content is never unlinked: the image would break.
    let del = call(
        r,
        "DELETE",
        &format!("/v2/team/app/blobs/{layer}"),
        &[("authorization", &admin)],
        vec![],
    )
    .await;
    assert_eq!((del.status, del.code().as_str()), (StatusCode::FORBIDDEN, "DENIED"));
    assert!(anonymous_gets(r, &format!("/v2/team/app/blobs/{layer}")).await);
    // Deleting the admitted manifest: an admin's, logged first.
    let del = call(
        r,
        "DELETE",
        &format!("/v2/team/app/manifests/{a}"),
        &[("authorization", &pusher)],
        vec![],
    )
    .await;
    assert_eq!(del.status, StatusCode::FORBIDDEN);
    let before = reg.state.ledger.size();
    let del = call(
        r,
        "DELETE",
        &format!("/v2/team/app/manifests/{a}"),
        &[("authorization", &admin)],
        vec![],
    )
    .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    assert!(matches!(&ledger_entries(&reg.state)[before as usize..], [Entry::Delete(d)] if d.digest.as_str() == a));
}

/// An admission under `policy` that countersigns with the admission key in
/// `keys` (created there on first use).
async fn countersigning(
    state: &vouch::registry::AppState,
    policy: vouch::policy::Policy,
    keys: &std::path::Path,
) -> vouch::admission::Admission {
    vouch::admission::Admission::load(policy, &state.ledger, &state.meta)
        .await
        .unwrap()
        .with_countersigner(vouch::countersign::Countersigner::load_or_create(keys).unwrap().0)
        .with_registry_names(&[REGISTRY_NAME.to_owned()])
}

/// Whether the image's `.sig` manifest, as served anonymously, has a layer
/// signed by `key`.
async fn signed_by(r: &axum::Router, image: &str, key: &vouch::signature::PublicKey) -> bool {
    let sig = call(
        r,
        "GET",
        &format!("/v2/team/app/manifests/sha256-{}.sig", &image[7..]),
        &[],
        vec![],
    )
    .await;
    if sig.status != StatusCode::OK {
        return false;
    }
    let doc: serde_json::Value = serde_json::from_slice(&sig.body).unwrap();
    let d = vouch_ledger::entry::Digest::parse(image).unwrap();
    for l in doc["layers"].as_array().unwrap() {
        let payload = call(
            r,
            "GET",
            &format!("/v2/team/app/blobs/{}", l["digest"].as_str().unwrap()),
            &[],
            vec![],
        )
        .await;
        let layer = vouch::signature::SignatureLayer {
            signature: l["annotations"]["dev.cosignproject.cosign/signature"]
                .as_str()
                .map(str::to_owned),
            payload: payload.body,
        };
        if !vouch::signature::verify_layers(&d, &[layer], std::slice::from_ref(key))
            .0
            .is_empty()
        {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn a_revoked_image_loses_vouchs_countersignature_and_verify_says_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let (policy_a, key_a) = key_policy(21, "");
    let (policy_b, _) = key_policy(22, "");
    let mut state = state_in(dir.path());
    state.gate = std::sync::Arc::new(countersigning(&state, policy_a, dir.path()).await);
    let state = std::sync::Arc::new(state);
    let r = vouch::registry::app(state.clone());
    let admission_pub = vouch::signature::PublicKey::from_pem(
        &std::fs::read_to_string(dir.path().join(vouch::countersign::PUB_FILE)).unwrap(),
    )
    .unwrap();
    let (image, ..) = push_image(&r, "team/app", "v1", b"to be revoked", None).await;
    push_signature(&r, "team/app", &image, &key_a, None).await;
    assert!(signed_by(&r, &image, &admission_pub).await, "admitted: countersigned");
    // Policy B (trusting another key) takes it back.
    let b = countersigning(&state, policy_b, dir.path()).await;
    let report = b.reevaluate(&state, vouch::admission::Scope::All).await;
    assert_eq!((report.denied, report.changed), (1, 1));
    assert!(
        !signed_by(&r, &image, &admission_pub).await,
        "revoked: the countersignature is withdrawn"
    );
    assert!(
        signed_by(
            &r,
            &image,
            &vouch::signature::PublicKey::EcdsaP256(*key_a.verifying_key())
        )
        .await,
        "the publisher's stays"
    );
    assert!(!anonymous_gets(&r, "/v2/team/app/manifests/v1").await);
    let last = ledger_entries(&state).pop().unwrap();
    assert!(
        matches!(&last, Entry::Decision(d) if d.reasons.iter().any(|x| x.contains("countersignature") && x.contains("withdrawn"))),
        "{last:?}"
    );
    // The reasons blame the publisher's signature (no longer trusted), never
    // vouch's own layer.
    let Entry::Decision(d) = &last else { unreachable!() };
    let blamed = d
        .reasons
        .iter()
        .filter(|r| r.contains("not signed by any trusted key"))
        .count();
    assert_eq!(blamed, 1, "{:?}", d.reasons);
    // The admission bundle now carries the admission it revoked, proven.
    let bundle = call(&r, "GET", &format!("/v2/team/app/admission/{image}"), &[], vec![]).await;
    let bundle: serde_json::Value = serde_json::from_slice(&bundle.body).unwrap();
    assert!(
        bundle["revoked"]["entry"].is_string() && bundle["revoked"]["proof"].is_string(),
        "{bundle}"
    );
}

#[tokio::test]
async fn an_upload_session_is_finished_once_and_never_links_what_it_did_not_upload() {
    let reg = plain_registry();
    let r = &reg.router;
    let other = push_blob(r, "elsewhere/app", b"someone else's blob", None).await;
    let start = call(r, "POST", "/v2/team/app/blobs/uploads/", &[], vec![]).await;
    let loc = start.header("location").to_owned();
    let mine = sha256(b"my bytes");
    // A session is its opener's: another client does not find it.
    let stranger: std::net::SocketAddr = "10.9.8.7:4000".parse().unwrap();
    for method in ["GET", "PATCH", "DELETE"] {
        let foreign = call_from(r, stranger, method, &loc, &[], b"x".to_vec()).await;
        assert_eq!(
            (foreign.status, foreign.code().as_str()),
            (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            "{method}"
        );
    }
    // Two finishing PUTs at once: one with the right digest, one naming
    // another stored blob. One finishes; the other finds the session gone.
    let (right, wrong) = (format!("{loc}?digest={mine}"), format!("{loc}?digest={other}"));
    let (a, b) = tokio::join!(
        call(r, "PUT", &right, &[], b"my bytes".to_vec()),
        call(r, "PUT", &wrong, &[], vec![]),
    );
    let statuses = [a.status, b.status];
    assert!(statuses.contains(&StatusCode::CREATED), "{statuses:?}");
    assert_eq!(
        call(r, "HEAD", &format!("/v2/team/app/blobs/{other}"), &[], vec![])
            .await
            .status,
        StatusCode::NOT_FOUND,
        "the session never linked a blob it did not upload"
    );
    assert_eq!(
        call(r, "PUT", &format!("{loc}?digest={mine}"), &[], vec![])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn garbage_collection_keeps_a_floor_under_its_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = state_in(dir.path());
    state.limits.min_gc_grace = vouch::registry::Limits::default().min_gc_grace;
    let r = vouch::registry::app(std::sync::Arc::new(state));
    // Loopback in open mode: an admin. A grace below the floor would take
    // the layers of pushes in flight (their manifests not yet here).
    let gc = call(&r, "POST", "/admin/gc?grace=0", &[], vec![]).await;
    assert_eq!(
        (gc.status, gc.code().as_str()),
        (StatusCode::BAD_REQUEST, "SIZE_INVALID")
    );
    assert!(gc.text().contains("--min-gc-grace"), "{}", gc.text());
    let gc = call(&r, "POST", "/admin/gc?grace=600", &[], vec![]).await;
    assert_eq!(gc.status, StatusCode::OK);
}
