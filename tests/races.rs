//! What concurrent requests cannot do (spec/threat-model.md): a deletion or
//! a tag move that a pusher may make while an image is pending must not
//! land on the image once it is admitted, unlogged. Each round races the
//! two requests on a multi-threaded runtime and checks the invariant
//! whichever came first; the rounds vary who wins.

mod inproc;

use axum::http::StatusCode;
use inproc::*;
use vouch_ledger::entry::Entry;

const ROUNDS: usize = 40;

/// A head start for the signature in round `i`, from none to a few
/// milliseconds (a signature push takes about that long), so that rounds
/// fall on both sides of the race and in the middle of it.
async fn lag(i: usize) {
    let micros = (i % 10) as u64 * 400;
    let until = std::time::Instant::now() + std::time::Duration::from_micros(micros);
    while std::time::Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

/// Whether the ledger holds an admit decision for `digest`, and whether it
/// holds a `delete` entry for it.
fn logged(reg: &Registry, digest: &str) -> (bool, bool) {
    let mut admitted = false;
    let mut deleted = false;
    for e in ledger_entries(&reg.state) {
        match e {
            Entry::Decision(d) if d.digest.as_str() == digest => {
                admitted |= d.verdict == vouch_ledger::entry::Verdict::Admit;
            }
            Entry::Delete(d) if d.digest.as_str() == digest => deleted = true,
            _ => {}
        }
    }
    (admitted, deleted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pusher_deleting_a_pending_image_as_it_is_admitted_never_deletes_it_admitted() {
    let (policy, key) = key_policy(7, "");
    let reg = admission_registry(policy, true).await;
    let r = &reg.router;
    let pusher = basic("pusher", "pw");
    let reference = format!("{REGISTRY_NAME}/team/app");
    let mut outcomes = [0usize; 2];
    for i in 0..ROUNDS {
        let content = format!("image {i}");
        let (image, ..) = push_image(r, "team/app", &format!("v{i}"), content.as_bytes(), Some(&pusher)).await;
        let sig = signature_manifest(r, "team/app", &image, &reference, &key, Some(&pusher)).await;
        let tag = format!("sha256-{}.sig", &image[7..]);
        let (r1, r2) = (r.clone(), r.clone());
        let (p1, p2) = (pusher.clone(), pusher.clone());
        let path = format!("/v2/team/app/manifests/{image}");
        let delete = tokio::spawn(async move {
            lag(i).await;
            call(&r1, "DELETE", &path, &[("authorization", p1.as_str())], vec![]).await
        });
        let sign = tokio::spawn(async move { put_manifest(&r2, "team/app", &tag, OCI, &sig, Some(&p2)).await });
        let (delete, sign) = (delete.await.unwrap(), sign.await.unwrap());
        assert_eq!(sign.status, StatusCode::CREATED, "{}", sign.text());
        let stored = reg
            .state
            .meta
            .manifest(
                &vouch::registry::names::RepoName::parse("team/app").unwrap(),
                &vouch_ledger::entry::Digest::parse(&image).unwrap(),
            )
            .unwrap();
        let (admitted, deleted) = logged(&reg, &image);
        match delete.status {
            // The deletion came first: the signature found no image to
            // admit, and nothing was logged about it.
            StatusCode::ACCEPTED => {
                outcomes[0] += 1;
                assert!(stored.is_none());
                assert!(!admitted, "round {i}: {image} was admitted, then deleted by a pusher");
                assert!(!deleted);
            }
            // The admission came first: only an admin may delete it now.
            StatusCode::FORBIDDEN => {
                outcomes[1] += 1;
                assert!(admitted, "round {i}: refused, yet not admitted");
                assert!(stored.is_some());
            }
            s => panic!("round {i}: DELETE answered {s}: {}", delete.text()),
        }
    }
    eprintln!("deleted first: {}, admitted first: {}", outcomes[0], outcomes[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tag_moved_off_an_image_as_it_is_admitted_is_refused_or_was_never_logged_there() {
    let (policy, key) = key_policy(7, "");
    let reg = admission_registry(policy, true).await;
    let r = &reg.router;
    let pusher = basic("pusher", "pw");
    let reference = format!("{REGISTRY_NAME}/team/app");
    let mut outcomes = [0usize; 2];
    for i in 0..ROUNDS {
        let t = format!("release-{i}");
        let (image, ..) = push_image(r, "team/app", &t, format!("image {i}").as_bytes(), Some(&pusher)).await;
        let sig = signature_manifest(r, "team/app", &image, &reference, &key, Some(&pusher)).await;
        // Another image, to move the tag to (its blobs pushed, the manifest not).
        let other = format!("other {i}");
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","n":"{}"}}"#,
            sha256(other.as_bytes())
        );
        let c = push_blob(r, "team/app", config.as_bytes(), Some(&pusher)).await;
        let l = push_blob(r, "team/app", other.as_bytes(), Some(&pusher)).await;
        let moved = image_manifest(&c, config.len(), &l, other.len(), "");
        let sig_tag = format!("sha256-{}.sig", &image[7..]);
        let (r1, r2) = (r.clone(), r.clone());
        let (p1, p2) = (pusher.clone(), pusher.clone());
        let t1 = t.clone();
        let mv = tokio::spawn(async move {
            lag(i).await;
            put_manifest(&r1, "team/app", &t1, OCI, &moved, Some(&p1)).await
        });
        let sign = tokio::spawn(async move { put_manifest(&r2, "team/app", &sig_tag, OCI, &sig, Some(&p2)).await });
        let (mv, sign) = (mv.await.unwrap(), sign.await.unwrap());
        assert_eq!(sign.status, StatusCode::CREATED, "{}", sign.text());
        let last_logged = ledger_entries(&reg.state).into_iter().rev().find_map(|e| match e {
            Entry::Tag(e) if e.tag == t => Some(e.digest.to_string()),
            _ => None,
        });
        let now = call(r, "HEAD", &format!("/v2/team/app/manifests/{t}"), &[], vec![]).await;
        let now = now.header("docker-content-digest");
        match mv.status {
            // Moved before the admission: the admission found the tag gone
            // and logged no tag entry naming the image.
            StatusCode::CREATED => {
                outcomes[0] += 1;
                assert_ne!(
                    last_logged.as_deref(),
                    Some(image.as_str()),
                    "round {i}: the ledger says {t} names {image}; it names {now}"
                );
            }
            // Admitted (and its tag logged) first: moving the tag is an
            // admin's act.
            StatusCode::FORBIDDEN => {
                outcomes[1] += 1;
                assert_eq!(now, image, "round {i}");
                assert_eq!(last_logged.as_deref(), Some(image.as_str()), "round {i}");
            }
            s => panic!("round {i}: the tag move answered {s}: {}", mv.text()),
        }
    }
    eprintln!("moved first: {}, admitted first: {}", outcomes[0], outcomes[1]);
}
