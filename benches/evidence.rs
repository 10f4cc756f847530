//! Admission latency with large attestations (issue 12): each image has a
//! 5 MB SPDX SBOM and a 1 MB vulnerability report attached (DSSE
//! envelopes signed with a P-256 key, in its `.att` manifest), under a
//! policy whose `sbom` and `vulnerabilities` rules read both in full.
//! Three cases, in the same run, each timing both the image manifest PUT
//! and the `.att` manifest PUT:
//!
//! - "bare": no admission, attestations pushed first;
//! - "rules, attestations first": the `.att` push opens the envelopes
//!   (src/admission/opened.rs), then the image PUT decides: verifies both
//!   envelopes' signatures, checks their Statements name the image,
//!   evaluates the rules on what was read, and logs, before the answer;
//! - "rules, image first": the image PUT stores it pending; the `.att` PUT
//!   does all the work (read, open, verify, evaluate, log) before its
//!   answer.
//!
//! It also prints one thread's time to read the SBOM's Statement and
//! packages, in one pass and in two.
//!
//!     cargo bench --bench evidence
//!
//! EVIDENCE_IMAGES images (default 40), one client, one push at a time, so
//! the figures are latencies, not queueing.

#[allow(dead_code)]
mod common;
#[path = "common/http.rs"]
#[allow(dead_code)]
mod http;

use base64::Engine as _;
use http::{percentile, serve, state, Conn};
use p256::ecdsa::signature::Signer as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

const OCI: &str = "application/vnd.oci.image.manifest.v1+json";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let images: usize = std::env::var("EVIDENCE_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let key = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
    let sbom = sbom_predicate(5_000_000);
    let vulns = vuln_predicate(1_000_000);
    println!(
        "evidence: image manifest PUT with a {:.1} MB SBOM and a {:.1} MB vulnerability report attached, {images} images, one client",
        sbom.len() as f64 / 1e6,
        vulns.len() as f64 / 1e6
    );
    statement_passes(&sbom);
    let mut results = Vec::new();
    // (name, admission, attestations pushed before the image)
    let modes = [
        ("bare", false, true),
        ("rules, attestations first", true, true),
        ("rules, image first", true, false),
    ];
    for (mode, admission, attest_first) in modes {
        let dir = tempfile::tempdir_in(common::bench_dir()).unwrap();
        let data = vouch::data_dir::DataDir::new(dir.path());
        let opened = data.open_ledger("bench.local/vouch").unwrap();
        let rt = common::runtime();
        let mut st = state(opened.db.clone(), opened.ledger.clone(), dir.path());
        if admission {
            let policy = vouch::policy::Policy::parse(&policy_text(&key), std::path::Path::new("p.toml")).unwrap();
            let a = rt
                .block_on(vouch::admission::Admission::load(policy, &st.ledger, &st.meta))
                .unwrap();
            st.gate = Arc::new(a.with_registry_names(&["127.0.0.1".to_owned()]));
        }
        let addr = serve(&rt, Arc::new(st));
        let client = common::runtime();
        let (key, sbom, vulns) = (key.clone(), sbom.clone(), vulns.clone());
        let (mut lat, mut att, denied) = client.block_on(async move {
            let mut c = Conn::open(addr).await;
            let layer = vec![7u8; 1024];
            let ld = push_blob(&mut c, &layer).await;
            let (mut lat, mut att) = (Vec::new(), Vec::new());
            let mut denied = 0;
            for i in 0..images {
                let config = format!(r#"{{"architecture":"amd64","os":"linux","config":{{"User":"1000"}},"n":{i}}}"#);
                let cd = push_blob(&mut c, config.as_bytes()).await;
                let manifest = format!(
                    r#"{{"schemaVersion":2,"mediaType":"{OCI}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":1024}}]}}"#,
                    config.len()
                );
                let digest = vouch::registry::digest::sha256_of(manifest.as_bytes());
                let predicates = [("https://spdx.dev/Document", sbom.as_str()), ("https://in-toto.io/attestation/vulns/v0.1", vulns.as_str())];
                if attest_first {
                    att.push(attach(&mut c, &key, &digest, &predicates).await);
                }
                let at = Instant::now();
                let (status, body) = c.call("PUT", &format!("/v2/bench/app/manifests/v{i}"), OCI, manifest.as_bytes()).await;
                lat.push(at.elapsed());
                assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
                if !attest_first {
                    att.push(attach(&mut c, &key, &digest, &predicates).await);
                }
                let (status, _) = c.call("GET", &format!("/v2/bench/app/manifests/v{i}"), OCI, b"").await;
                denied += usize::from(status != 200);
            }
            (lat, att, denied)
        });
        assert_eq!(denied, 0, "{mode}: every image complies, so every one is admitted");
        lat.sort();
        att.sort();
        let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
        let (a50, a99) = (percentile(&att, 0.5), percentile(&att, 0.99));
        println!(
            "  {mode:<26} image PUT p50 {p50:>9.2?}  p99 {p99:>9.2?}   .att PUT p50 {a50:>9.2?}  p99 {a99:>9.2?}  ({} images)",
            lat.len()
        );
        results.push((p99, a99));
        drop(client);
        rt.shutdown_timeout(Duration::from_secs(1));
    }
    println!(
        "  p99 above bare: image PUT, attestations first {:.2?} (goal: under 20 ms); .att PUT deciding the image, image first {:.2?}",
        results[1].0.saturating_sub(results[0].0),
        results[2].1.saturating_sub(results[0].1)
    );
}

/// One thread's time to read the SBOM's Statement and its packages: in
/// one pass (the Statement read with its packages, as admission reads it),
/// and in two (its predicate's text copied out, then parsed), the median
/// of 15 each, alternating.
fn statement_passes(sbom: &str) {
    let image = vouch::registry::digest::sha256_of(b"image");
    let statement = format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"bench/app","digest":{{"sha256":"{}"}}}}],"predicateType":"https://spdx.dev/Document","predicate":{sbom}}}"#,
        image.encoded()
    );
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        let at = Instant::now();
        let (t, _, body) = vouch::attestation::read_statement_body(statement.clone().into_bytes(), &image).unwrap();
        let p = vouch::policy::attested::Predicate::for_signers(&t, &["k".to_owned()], &body, None)
            .next()
            .unwrap();
        let n = vouch::policy::sbom::read_packages(&p).unwrap().as_ref().unwrap().len();
        one.push(at.elapsed());
        let at = Instant::now();
        let (t, _, raw) = vouch::attestation::read_statement_with_predicate(statement.as_bytes(), &image).unwrap();
        let m = vouch::policy::sbom::parse_packages(&t, raw.get())
            .unwrap()
            .unwrap()
            .len();
        two.push(at.elapsed());
        assert_eq!(n, m);
    }
    one.sort();
    two.sort();
    println!(
        "  reading the SBOM's Statement and packages, one thread: one pass {:.2?}, two passes {:.2?} (median of 15)",
        one[7], two[7]
    );
}

fn policy_text(key: &p256::ecdsa::SigningKey) -> String {
    use p256::pkcs8::EncodePublicKey as _;
    let pem = key
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    format!(
        "version = 1\nname = \"evidence bench\"\n[keys]\nscanner = \"\"\"{pem}\"\"\"\n[[rule]]\nrepositories = \"**\"\n\
         vulnerabilities = {{ keys = [\"scanner\"], deny_at = \"critical\", max_age = \"7d\" }}\n\
         sbom = {{ keys = [\"scanner\"], deny_licenses = [\"GPL-*\"] }}\n"
    )
}

async fn push_blob(c: &mut Conn, bytes: &[u8]) -> vouch_ledger::entry::Digest {
    let d = vouch::registry::digest::sha256_of(bytes);
    let (status, _) = c
        .call(
            "POST",
            &format!("/v2/bench/app/blobs/uploads/?digest={d}"),
            "application/octet-stream",
            bytes,
        )
        .await;
    assert_eq!(status, 201);
    d
}

/// Pushes DSSE envelopes of in-toto statements about `image` with these
/// predicates, as the layers of its `.att` manifest.
async fn attach(
    c: &mut Conn,
    key: &p256::ecdsa::SigningKey,
    image: &vouch_ledger::entry::Digest,
    predicates: &[(&str, &str)],
) -> Duration {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut layers = Vec::new();
    for (predicate_type, predicate) in predicates {
        let statement = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"bench/app","digest":{{"sha256":"{}"}}}}],"predicateType":"{predicate_type}","predicate":{predicate}}}"#,
            image.encoded()
        );
        let pae = vouch::attestation::pae(vouch::attestation::IN_TOTO, statement.as_bytes());
        let sig: p256::ecdsa::Signature = key.sign(&pae);
        let envelope = serde_json::json!({
            "payloadType": vouch::attestation::IN_TOTO,
            "payload": b64.encode(&statement),
            "signatures": [{"keyid": "", "sig": b64.encode(sig.to_der().as_bytes())}],
        })
        .to_string();
        let d = push_blob(c, envelope.as_bytes()).await;
        layers.push(serde_json::json!({
            "mediaType": vouch::attestation::DSSE_ENVELOPE, "digest": d.as_str(), "size": envelope.len(),
            "annotations": {"predicateType": predicate_type},
        }));
    }
    let config = b"{}";
    let cd = push_blob(c, config).await;
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.as_str(), "size": 2},
        "layers": layers,
    })
    .to_string();
    let tag = vouch::signature::signature_tag(image).replace(".sig", ".att");
    let at = Instant::now();
    let (status, body) = c
        .call(
            "PUT",
            &format!("/v2/bench/app/manifests/{tag}"),
            OCI,
            manifest.as_bytes(),
        )
        .await;
    let took = at.elapsed();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    took
}

/// An SPDX 2.3 document of about `bytes` bytes: packages with MIT and
/// Apache licenses (none denied).
fn sbom_predicate(bytes: usize) -> String {
    let mut packages = Vec::new();
    let mut size = 0;
    let mut i = 0;
    while size < bytes {
        let p = format!(
            r#"{{"name":"package-{i}","SPDXID":"SPDXRef-Package-{i}","versionInfo":"1.{i}.0","downloadLocation":"https://example.com/package-{i}-1.{i}.0.tar.gz","licenseConcluded":"{}","licenseDeclared":"NOASSERTION","copyrightText":"NOASSERTION","externalRefs":[{{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:generic/package-{i}@1.{i}.0"}}]}}"#,
            if i % 2 == 0 { "MIT" } else { "Apache-2.0" }
        );
        size += p.len() + 1;
        packages.push(p);
        i += 1;
    }
    format!(
        r#"{{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"bench","documentNamespace":"https://example.com/bench","creationInfo":{{"created":"2026-11-27T10:00:00Z","creators":["Tool: bench"]}},"packages":[{}]}}"#,
        packages.join(",")
    )
}

/// An in-toto vulns/v0.1 predicate of about `bytes` bytes, scanned now,
/// with low and medium findings only.
fn vuln_predicate(bytes: usize) -> String {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut findings = Vec::new();
    let mut size = 0;
    let mut i = 0;
    while size < bytes {
        let f = format!(
            r#"{{"id":"CVE-2026-{i:05}","severity":[{{"method":"nvd","score":"{}"}},{{"method":"cvss_score","score":"{}"}}],"annotations":[{{"package":"package-{i}"}}]}}"#,
            if i % 3 == 0 { "medium" } else { "low" },
            if i % 3 == 0 { "5.3" } else { "2.1" }
        );
        size += f.len() + 1;
        findings.push(f);
        i += 1;
    }
    format!(
        r#"{{"scanner":{{"uri":"pkg:github/aquasecurity/trivy","version":"0.50.0","db":{{"uri":"pkg:github/aquasecurity/trivy-db","version":"2","lastUpdate":"{now}"}},"result":[{}]}},"metadata":{{"scanStartedOn":"{now}","scanFinishedOn":"{now}"}}}}"#,
        findings.join(",")
    )
}
