//! One suite over both metadata stores: RocksDB (the embedded default) and
//! a real PostgreSQL (`vouch serve --database`). Every read and write of
//! the registry's metadata behaves the same in both: the same keys in the
//! same order, batches all-or-nothing, scans that page through more rows
//! than one round trip holds, and, for PostgreSQL, what one connection
//! commits is what another (a second replica) reads.

mod common;

use common::postgres::PostgresServer;
use std::ops::ControlFlow;
use std::sync::Arc;
use vouch::data_dir::DataDir;
use vouch::registry::meta::{AdmissionState, Evidence, EvidenceKind, ManifestRecord, Meta, Postgres};
use vouch::registry::names::{RepoName, Tag};
use vouch_ledger::entry::Digest;

fn digest(n: u32) -> Digest {
    vouch::registry::digest::sha256_of(&n.to_be_bytes())
}

fn repo(name: &str) -> RepoName {
    RepoName::parse(name).unwrap()
}

fn tag(name: &str) -> Tag {
    Tag::parse(name).unwrap()
}

fn record(n: u32) -> ManifestRecord {
    let bytes = format!("{{\"schemaVersion\":2,\"n\":{n}}}");
    ManifestRecord::new(
        AdmissionState::Pending,
        "application/vnd.oci.image.manifest.v1+json",
        bytes.as_bytes(),
        None,
    )
}

/// The RocksDB store of a new data directory.
fn rocks(dir: &std::path::Path) -> Meta {
    let opened = DataDir::new(dir).open_ledger("meta.test/vouch").unwrap();
    Meta::new(opened.db.clone())
}

/// One PostgreSQL for this test process (None, reported, when it is not
/// installed outside CI).
fn server() -> Option<&'static PostgresServer> {
    static SERVER: std::sync::OnceLock<Option<PostgresServer>> = std::sync::OnceLock::new();
    SERVER.get_or_init(PostgresServer::start).as_ref()
}

/// Runs `suite` against RocksDB and against a new PostgreSQL database.
fn on_both(suite: impl Fn(&Meta, &dyn Fn() -> Meta)) {
    let dir = tempfile::tempdir().unwrap();
    let local = rocks(dir.path());
    suite(&local, &|| local.clone());
    let Some(server) = server() else { return };
    let url = server.fresh_database();
    let pg = Meta::postgres(Arc::new(Postgres::open(&url).unwrap()));
    // Another handle on the same database: a second replica.
    suite(&pg, &|| Meta::postgres(Arc::new(Postgres::open(&url).unwrap())));
}

#[test]
fn a_manifest_with_its_tags_links_and_indexes_reads_back_alike() {
    on_both(|meta, replica| {
        assert!(meta.is_empty().unwrap());
        let (r, subject, sig) = (repo("team/app"), digest(1), digest(2));
        let mut b = meta.batch();
        b.link_blob(&r, &digest(10), 1234);
        b.put_record(&r, &subject, &record(1)).unwrap();
        b.index_refs(&r, &subject, &[digest(10)]);
        b.set_tag(&r, &tag("v1"), &subject);
        b.set_tag(&r, &tag("latest"), &subject);
        let evidence = Evidence {
            kind: EvidenceKind::CosignSignature,
            subject: subject.clone(),
            countersigned: false,
            own: false,
        };
        let sig_record = ManifestRecord::new(AdmissionState::Evidence, "application/x", b"{}", Some(evidence));
        b.put_record(&r, &sig, &sig_record).unwrap();
        let descriptor = serde_json::json!({"digest": sig.as_str(), "size": 2});
        b.index_referrer(&r, &subject, &sig, &descriptor);
        b.index_evidence(&r, &subject, &sig, EvidenceKind::CosignSignature);
        b.put_decision(&r, &subject, &serde_json::json!({"verdict": "admit"}));
        b.queue_bundle(&r, &subject, 7, true);
        b.record_policy(&digest(99), 3);
        b.set_marker("evaluated", digest(99).as_str().as_bytes());
        b.put_upload("session-1", &r, "alice");
        let inline = b.put_inline_blob(&r, b"inline bytes");
        b.commit(true).unwrap();

        // Read through a second handle: what one replica commits, another sees.
        let other = replica();
        for m in [meta, &other] {
            assert!(!m.is_empty().unwrap());
            assert!(m.repo_exists(&r).unwrap());
            assert!(!m.repo_exists(&repo("team")).unwrap());
            assert_eq!(m.blob_link(&r, &digest(10)).unwrap(), Some(1234));
            assert!(m.blob_linked(&r, &inline).unwrap());
            assert_eq!(m.manifest(&r, &subject).unwrap(), Some(record(1)));
            assert_eq!(
                m.manifest_size(&r, &subject).unwrap(),
                Some(record(1).bytes.len() as u64)
            );
            assert_eq!(m.tag(&r, &tag("v1")).unwrap(), Some(subject.clone()));
            assert_eq!(m.tags(&r).unwrap(), ["latest", "v1"]);
            let referrers = m.referrers(&r, &subject, |_, _| Ok(true), 10).unwrap();
            assert_eq!(referrers, std::slice::from_ref(&descriptor));
            assert_eq!(m.evidence_for(&r, &subject, 10).unwrap(), std::slice::from_ref(&sig));
            assert_eq!(m.decision(&r, &subject).unwrap().unwrap()["verdict"], "admit");
            assert_eq!(m.pending_bundles(10).unwrap(), [(r.clone(), subject.clone(), 7, true)]);
            assert_eq!(m.policy_index(&digest(99)).unwrap(), Some(3));
            assert_eq!(m.policy_count().unwrap(), 1);
            assert_eq!(m.evaluated_policy().unwrap().as_deref(), Some(digest(99).as_str()));
            let uploads = m.uploads().unwrap();
            assert_eq!(uploads.len(), 1);
            assert_eq!(
                (uploads[0].0.as_str(), uploads[0].1.owner.as_str()),
                ("session-1", "alice")
            );
            assert_eq!(m.inline_blob(&inline).unwrap().as_deref(), Some(&b"inline bytes"[..]));
            assert_eq!(m.inline_blobs().unwrap()[0].1, 12);
            let mut referencing = Vec::new();
            m.for_each_referencing(&r, &digest(10), |d, _| {
                referencing.push(d.clone());
                ControlFlow::Continue(())
            })
            .unwrap();
            assert_eq!(referencing, std::slice::from_ref(&subject));
        }

        // Deleting the manifest takes its tags, references and decision.
        let mut b = meta.batch();
        b.delete_manifest(&r, &subject, &record(1), &[digest(10)], None)
            .unwrap();
        b.forget_bundle(&r, &subject, 7);
        b.delete_upload("session-1");
        b.commit(true).unwrap();
        assert_eq!(meta.manifest(&r, &subject).unwrap(), None);
        assert!(meta.tags(&r).unwrap().is_empty());
        assert_eq!(meta.decision(&r, &subject).unwrap(), None);
        assert!(meta.pending_bundles(10).unwrap().is_empty());
        assert!(meta.uploads().unwrap().is_empty());
    });
}

#[test]
fn a_batch_not_committed_writes_nothing() {
    on_both(|meta, _| {
        let r = repo("dropped");
        let mut b = meta.batch();
        b.put_record(&r, &digest(1), &record(1)).unwrap();
        b.set_tag(&r, &tag("v1"), &digest(1));
        drop(b);
        assert!(!meta.repo_exists(&r).unwrap());
        assert_eq!(meta.tag(&r, &tag("v1")).unwrap(), None);
        assert!(meta.is_empty().unwrap());
    });
}

/// Repository names that are prefixes of one another, and tags across
/// more rows than a page: scans stop at their repository and page in
/// byte order.
#[test]
fn scans_keep_to_their_repository_and_page_in_order() {
    on_both(|meta, _| {
        let names = ["a", "a-b", "a/b", "ab", "b"];
        let mut b = meta.batch();
        for (i, n) in names.iter().enumerate() {
            b.put_record(&repo(n), &digest(i as u32), &record(i as u32)).unwrap();
            b.set_tag(&repo(n), &tag("only"), &digest(i as u32));
        }
        // 1500 tags in "a/b": more than one round trip of a PostgreSQL scan.
        for t in 0..1500u32 {
            b.set_tag(&repo("a/b"), &tag(&format!("t{t:05}")), &digest(2));
        }
        b.commit(false).unwrap();
        let listed: Vec<String> = meta.repos(None, 100).unwrap().iter().map(|r| r.to_string()).collect();
        assert_eq!(listed, names);
        let after: Vec<String> = meta
            .repos(Some("a-b"), 2)
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(after, ["a/b", "ab"]);
        assert_eq!(meta.tags(&repo("a")).unwrap(), ["only"]);
        assert_eq!(meta.tags(&repo("ab")).unwrap(), ["only"]);
        let all = meta.tags(&repo("a/b")).unwrap();
        assert_eq!(all.len(), 1501);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        // Paging by `last`, as GET /tags/list?n=&last= does.
        let (mut seen, mut last) = (Vec::new(), String::new());
        loop {
            let page = meta.tags_after(&repo("a/b"), &last, 400).unwrap();
            if page.is_empty() {
                break;
            }
            last = page.last().unwrap().0.clone();
            seen.extend(page.into_iter().map(|(t, _)| t));
        }
        assert_eq!(seen, all);
        let mut n = 0;
        meta.for_each_manifest(|_, _, _| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, names.len());
        let found = meta.find_manifest(&repo("ab"), |_, r| Ok(r == &record(3))).unwrap();
        assert_eq!(found, Some(digest(3)));
    });
}

/// Two replicas committing at once: every batch lands whole, and both see
/// all of them.
#[test]
fn concurrent_batches_from_two_handles_all_land() {
    on_both(|meta, replica| {
        let other = replica();
        std::thread::scope(|s| {
            for (side, m) in [(0u32, meta), (1, &other)] {
                s.spawn(move || {
                    for i in 0..50u32 {
                        let n = side * 1000 + i;
                        let r = repo(&format!("r{side}"));
                        let mut b = m.batch();
                        b.put_record(&r, &digest(n), &record(n)).unwrap();
                        b.set_tag(&r, &tag(&format!("t{i}")), &digest(n));
                        b.commit(true).unwrap();
                    }
                });
            }
        });
        for m in [meta, &other] {
            for side in 0..2u32 {
                let r = repo(&format!("r{side}"));
                let tags = m.tags_with_targets(&r).unwrap();
                assert_eq!(tags.len(), 50);
                for (t, d) in tags {
                    let i: u32 = t[1..].parse().unwrap();
                    assert_eq!(d, digest(side * 1000 + i));
                    assert_eq!(m.manifest(&r, &d).unwrap(), Some(record(side * 1000 + i)));
                }
            }
        }
    });
}

#[test]
fn postgres_refuses_bad_urls_and_unreachable_servers_with_reasons() {
    let e = Postgres::open("mysql://root@localhost/x").unwrap_err().to_string();
    assert!(e.contains("not a PostgreSQL URL"), "{e}");
    let e = Postgres::open("postgres://vouch@127.0.0.1:1").unwrap_err().to_string();
    assert!(e.contains("names no database"), "{e}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = Postgres::open(&format!("postgres://vouch:pw@127.0.0.1:{port}/db"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--database") && e.to_lowercase().contains("refused"), "{e}");
    let Some(server) = server() else { return };
    let url = server.fresh_database().replace(common::postgres::PASSWORD, "wrong");
    let e = Postgres::open(&url).unwrap_err().to_string();
    assert!(e.contains("password authentication failed"), "{e}");
}

/// The schema is created once, versioned, and a schema from a newer vouch
/// is refused rather than misread.
#[test]
fn postgres_schema_is_versioned_and_a_newer_one_is_refused() {
    let Some(server) = server() else { return };
    let url = server.fresh_database();
    let first = Postgres::open(&url).unwrap();
    let again = Postgres::open(&url).unwrap();
    assert_eq!(first.instance(), again.instance(), "one instance id per database");
    let name = url.rsplit('/').next().unwrap();
    let tables = server.psql(
        name,
        "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'public'",
    );
    assert_eq!(tables, "vouch_kv,vouch_schema");
    // A role that may only read and write the tables (no right to create
    // any) starts on them, as the threat model advises.
    server.psql(
        name,
        "CREATE ROLE app LOGIN PASSWORD 'app-pw'; GRANT SELECT, INSERT, UPDATE, DELETE ON vouch_kv, vouch_schema TO app",
    );
    let app = url.replace(
        &format!("{}:{}", common::postgres::USER, common::postgres::PASSWORD),
        "app:app-pw",
    );
    let restricted = Meta::postgres(Arc::new(Postgres::open(&app).unwrap()));
    let mut b = restricted.batch();
    b.set_tag(&repo("r"), &tag("t"), &digest(1));
    b.commit(true).unwrap();
    server.psql(name, "UPDATE vouch_schema SET version = 99");
    let e = Postgres::open(&url).unwrap_err().to_string();
    assert!(e.contains("schema is version 99"), "{e}");
}
