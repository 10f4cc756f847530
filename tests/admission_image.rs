//! Rules over what an image is (spec/policy.md, "Image configuration"):
//! `forbid_root`, `required_labels`, `max_age` and Rego's `input.images`,
//! through the registry API in process, for images and for each platform
//! of an index. Each denial names the rule and the fact.

mod api;

use api::*;
use axum::http::StatusCode;

const SOURCE: &str = "org.opencontainers.image.source";

fn image_policy() -> vouch::policy::Policy {
    let text = format!(
        "version = 1\nname = \"image rules\"\n[[rule]]\nrepositories = \"**\"\nforbid_root = true\n\
         required_labels = [\"{SOURCE}\"]\nmax_age = \"30d\"\n"
    );
    vouch::policy::Policy::parse(&text, std::path::Path::new("p.toml")).unwrap()
}

/// An image configuration as docker, podman and buildah write one.
fn config(user: Option<&str>, labels: bool, created: &str) -> String {
    let user = user.map(|u| format!(r#""User":"{u}","#)).unwrap_or_default();
    let labels = if labels {
        format!(r#","Labels":{{"{SOURCE}":"https://example.com/app"}}"#)
    } else {
        String::new()
    };
    format!(
        r#"{{"created":"{created}","architecture":"amd64","os":"linux","config":{{{user}"Env":["PATH=/usr/bin","API_TOKEN=hunter2"],"Cmd":["/app"]{labels}}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
    )
}

fn recent() -> String {
    let t = time::OffsetDateTime::now_utc() - time::Duration::days(2);
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// Pushes an image with this configuration to `repo:tag`; returns its
/// digest and size.
async fn push_image(r: &axum::Router, auth: &str, repo: &str, tag: &str, config: &str) -> (String, usize) {
    let c = push_blob_as(r, repo, config.as_bytes(), auth).await;
    let layer = format!("layer of {repo}:{tag}");
    let l = push_blob_as(r, repo, layer.as_bytes(), auth).await;
    let manifest = image_manifest(&c, config.len(), &l, layer.len(), "");
    let hdrs = [("authorization", auth), ("content-type", OCI)];
    let put = call(
        r,
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &hdrs,
        manifest.clone(),
    )
    .await;
    assert_eq!(
        put.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&put.body)
    );
    (sha256(&manifest), manifest.len())
}

/// An anonymous GET: the status and the body (a denial's reasons).
async fn pull(r: &axum::Router, repo: &str, reference: &str) -> (StatusCode, String) {
    let get = call(r, "GET", &format!("/v2/{repo}/manifests/{reference}"), &[], vec![]).await;
    (get.status, String::from_utf8_lossy(&get.body).into_owned())
}

#[tokio::test]
async fn root_users_missing_labels_and_old_images_are_denied_naming_the_rule_and_the_fact() {
    let dir = tempfile::tempdir().unwrap();
    let (_state, r, auth) = admission_app(dir.path(), image_policy()).await;
    let now = recent();
    let cases = [
        ("ok", config(Some("1000:1000"), true, &now), None),
        (
            "nouser",
            config(None, true, &now),
            Some("runs as root (no user set, so root)"),
        ),
        (
            "uid0",
            config(Some("0:0"), true, &now),
            Some(r#"runs as root (user \"0:0\")"#),
        ),
        (
            "rootname",
            config(Some("root"), true, &now),
            Some("the rule forbids root"),
        ),
        (
            "nolabel",
            config(Some("app"), false, &now),
            Some(&*format!("missing required label(s): {SOURCE}")),
        ),
        (
            "old",
            config(Some("app"), true, "2020-01-01T00:00:00Z"),
            Some("created 2020-01-01T00:00:00Z"),
        ),
        (
            "nodate",
            config(Some("app"), true, "yesterday"),
            Some("no valid created time"),
        ),
    ];
    for (tag, config, denial) in cases {
        push_image(&r, &auth, "team/app", tag, &config).await;
        let (status, body) = pull(&r, "team/app", tag).await;
        match denial {
            None => assert_eq!(status, StatusCode::OK, "{tag}: {body}"),
            Some(reason) => {
                assert_eq!(status, StatusCode::FORBIDDEN, "{tag}: {body}");
                assert!(body.contains(reason), "{tag}: {body}");
            }
        }
    }
    let (_, old) = pull(&r, "team/app", "old").await;
    assert!(old.contains("days ago; the rule's max_age is 30d"), "{old}");
}

#[tokio::test]
async fn each_platform_of_an_index_is_held_to_the_rules_and_attestation_entries_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (_state, r, auth) = admission_app(dir.path(), image_policy()).await;
    let now = recent();
    let (amd, sa) = push_image(&r, &auth, "multi/app", "amd64", &config(Some("65534"), true, &now)).await;
    let (arm, sr) = push_image(&r, &auth, "multi/app", "arm64", &config(None, true, &now)).await;
    // A build attestation as buildx writes it: a configuration with no
    // user, layers that are in-toto statements; listed below as platform
    // unknown/unknown with buildx's annotation. Not an image to run.
    let (att, st) = {
        let c = config(None, false, "2000-01-01T00:00:00Z");
        let cd = push_blob_as(&r, "multi/app", c.as_bytes(), &auth).await;
        let statement =
            br#"{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://slsa.dev/provenance/v0.2"}"#;
        let sd = push_blob_as(&r, "multi/app", statement, &auth).await;
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.in-toto+json","digest":"{sd}","size":{},"annotations":{{"in-toto.io/predicate-type":"https://slsa.dev/provenance/v0.2"}}}}]}}"#,
            c.len(),
            statement.len()
        )
        .into_bytes();
        let hdrs = [("authorization", auth.as_str()), ("content-type", OCI)];
        let put = call(&r, "PUT", "/v2/multi/app/manifests/att", &hdrs, m.clone()).await;
        assert_eq!(
            put.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&put.body)
        );
        (sha256(&m), m.len())
    };
    let entry = |d: &str, s: usize, os: &str, arch: &str| {
        let annotations = if os == "unknown" {
            r#","annotations":{"vnd.docker.reference.type":"attestation-manifest","vnd.docker.reference.digest":"sha256:00"}"#
        } else {
            ""
        };
        format!(
            r#"{{"mediaType":"{OCI}","digest":"{d}","size":{s},"platform":{{"os":"{os}","architecture":"{arch}"}}{annotations}}}"#
        )
    };
    let index = |entries: Vec<String>| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
            entries.join(",")
        )
        .into_bytes()
    };
    let hdrs = [
        ("authorization", auth.as_str()),
        ("content-type", "application/vnd.oci.image.index.v1+json"),
    ];
    let both = index(vec![
        entry(&amd, sa, "linux", "amd64"),
        entry(&arm, sr, "linux", "arm64"),
        entry(&att, st, "unknown", "unknown"),
    ]);
    let put = call(&r, "PUT", "/v2/multi/app/manifests/both", &hdrs, both).await;
    assert_eq!(put.status, StatusCode::CREATED);
    let (status, body) = pull(&r, "multi/app", "both").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("platform linux/arm64: runs as root"), "{body}");
    assert!(!body.contains("linux/amd64") && !body.contains("unknown"), "{body}");
    // Without the root platform, the index is admitted: its attestation
    // entry (old, unlabelled, root) is not held to rules for images.
    let good = index(vec![
        entry(&amd, sa, "linux", "amd64"),
        entry(&att, st, "unknown", "unknown"),
    ]);
    let put = call(&r, "PUT", "/v2/multi/app/manifests/good", &hdrs, good).await;
    assert_eq!(put.status, StatusCode::CREATED);
    let (status, body) = pull(&r, "multi/app", "good").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A root image that only claims to be platform unknown/unknown, without
    // buildx's annotation, is held to the rules like any other.
    let disguised = format!(
        r#"{{"mediaType":"{OCI}","digest":"{arm}","size":{sr},"platform":{{"os":"unknown","architecture":"unknown"}}}}"#
    );
    let sneaky = index(vec![entry(&amd, sa, "linux", "amd64"), disguised]);
    let put = call(&r, "PUT", "/v2/multi/app/manifests/sneaky", &hdrs, sneaky).await;
    assert_eq!(put.status, StatusCode::CREATED);
    let (status, body) = pull(&r, "multi/app", "sneaky").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("platform unknown/unknown: runs as root"), "{body}");
    // Nor does buildx's annotation on a real platform skip the rules: a
    // runtime picks the entry by its platform, not its annotation.
    let annotated = format!(
        r#"{{"mediaType":"{OCI}","digest":"{arm}","size":{sr},"platform":{{"os":"linux","architecture":"arm64"}},"annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}}"#
    );
    let put = call(
        &r,
        "PUT",
        "/v2/multi/app/manifests/annotated",
        &hdrs,
        index(vec![entry(&amd, sa, "linux", "amd64"), annotated]),
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED);
    let (status, body) = pull(&r, "multi/app", "annotated").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("platform linux/arm64: runs as root"), "{body}");
}

#[tokio::test]
async fn what_is_not_an_image_or_cannot_be_read_fails_the_rules_naming_why() {
    let dir = tempfile::tempdir().unwrap();
    let (_state, r, auth) = admission_app_with(dir.path(), image_policy(), 8 << 20).await;
    // A configuration over the bound: not read, a failure naming the bound.
    let mut big = config(Some("app"), true, &recent());
    big.insert_str(1, &format!(r#""padding":"{}","#, "x".repeat(4 << 20)));
    push_image(&r, &auth, "big/app", "v1", &big).await;
    let (status, body) = pull(&r, "big/app", "v1").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("over the bound of 4194304"), "{body}");
    // Not JSON: named, never a pass.
    push_image(&r, &auth, "bad/app", "v1", "not json").await;
    let (status, body) = pull(&r, "bad/app", "v1").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("the image configuration is not valid"), "{body}");
    // An artifact (a Helm chart, say) is not an image.
    let c = push_blob_as(&r, "charts/app", b"{}", &auth).await;
    let l = push_blob_as(&r, "charts/app", b"chart bytes", &auth).await;
    let chart = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI}","config":{{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"{c}","size":2}},"layers":[{{"mediaType":"application/vnd.cncf.helm.chart.content.v1.tar+gzip","digest":"{l}","size":11}}]}}"#
    );
    let hdrs = [("authorization", auth.as_str()), ("content-type", OCI)];
    let put = call(&r, "PUT", "/v2/charts/app/manifests/1.0", &hdrs, chart.into_bytes()).await;
    assert_eq!(put.status, StatusCode::CREATED);
    let (status, body) = pull(&r, "charts/app", "1.0").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body.contains("not an image (application/vnd.cncf.helm.config.v1+json)"),
        "{body}"
    );
}

#[tokio::test]
async fn rego_reads_the_configuration_with_env_names_but_never_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("image.rego"),
        r#"package vouch

deny contains sprintf("exposes %s", [p]) if {
    some image in input.images
    some p in image.exposed_ports
    p == "22/tcp"
}

deny contains "an API token in the environment" if {
    some image in input.images
    "API_TOKEN" in image.env_names
}

deny contains "saw a secret" if {
    contains(json.marshal(input), "hunter2")
}
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        "version = 1\nname = \"rego\"\n[[rule]]\nrepositories = \"**\"\nrego = \"image.rego\"\n",
    )
    .unwrap();
    let policy = vouch::policy::Policy::load(&dir.path().join("p.toml")).unwrap();
    let (_state, r, auth) = admission_app(dir.path(), policy).await;
    push_image(&r, &auth, "rego/app", "v1", &config(Some("app"), true, &recent())).await;
    let (status, body) = pull(&r, "rego/app", "v1").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("an API token in the environment"), "{body}");
    assert!(!body.contains("saw a secret"), "{body}");
    let clean = config(Some("app"), true, &recent()).replace(r#","API_TOKEN=hunter2""#, "");
    push_image(&r, &auth, "rego/app", "v2", &clean).await;
    assert_eq!(pull(&r, "rego/app", "v2").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_base_image_allowlist_reads_the_manifest_annotations_or_the_labels() {
    let dir = tempfile::tempdir().unwrap();
    let policy = vouch::policy::Policy::parse(
        "version = 1\nname = \"bases\"\n[[rule]]\nrepositories = \"**\"\nbase_images = [\"docker.io/library/debian:*\"]\n",
        std::path::Path::new("p.toml"),
    )
    .unwrap();
    let (_state, r, auth) = admission_app(dir.path(), policy).await;
    let push = |tag: &'static str, config: String, annotations: &'static str| {
        let (r, auth) = (r.clone(), auth.clone());
        async move {
            let c = push_blob_as(&r, "base/app", config.as_bytes(), &auth).await;
            let l = push_blob_as(&r, "base/app", tag.as_bytes(), &auth).await;
            let m = image_manifest(&c, config.len(), &l, tag.len(), annotations);
            let hdrs = [("authorization", auth.as_str()), ("content-type", OCI)];
            let put = call(&r, "PUT", &format!("/v2/base/app/manifests/{tag}"), &hdrs, m).await;
            assert_eq!(put.status, StatusCode::CREATED);
        }
    };
    let plain = config(Some("app"), true, &recent());
    push(
        "debian",
        plain.clone(),
        r#","annotations":{"org.opencontainers.image.base.name":"docker.io/library/debian:12"}"#,
    )
    .await;
    push(
        "ubuntu",
        plain.clone(),
        r#","annotations":{"org.opencontainers.image.base.name":"docker.io/library/ubuntu:24.04","org.opencontainers.image.base.digest":"sha256:00"}"#,
    )
    .await;
    push("unnamed", plain.clone(), "").await;
    let labelled = plain.replace(
        r#""Labels":{"#,
        r#""Labels":{"org.opencontainers.image.base.name":"docker.io/library/debian:bookworm","#,
    );
    push("label", labelled, "").await;
    assert_eq!(pull(&r, "base/app", "debian").await.0, StatusCode::OK);
    assert_eq!(pull(&r, "base/app", "label").await.0, StatusCode::OK);
    let (status, body) = pull(&r, "base/app", "ubuntu").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body.contains("base image docker.io/library/ubuntu:24.04 (sha256:00) is not in the rule's base_images"),
        "{body}"
    );
    let (_, body) = pull(&r, "base/app", "unnamed").await;
    assert!(body.contains("names no base image"), "{body}");
}

#[tokio::test]
async fn a_rule_that_opts_in_gives_rego_the_environment_values() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("env.rego"),
        "package vouch\n\ndeny contains \"a real API token is baked into the image\" if {\n    \
         some image in input.images\n    image.env.API_TOKEN == \"hunter2\"\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        "version = 1\nname = \"env\"\n[[rule]]\nrepositories = \"**\"\nrego = \"env.rego\"\nenv_values = true\n",
    )
    .unwrap();
    let policy = vouch::policy::Policy::load(&dir.path().join("p.toml")).unwrap();
    let (_state, r, auth) = admission_app(dir.path(), policy).await;
    push_image(&r, &auth, "env/app", "v1", &config(Some("app"), true, &recent())).await;
    let (status, body) = pull(&r, "env/app", "v1").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("a real API token is baked into the image"), "{body}");
    let other = config(Some("app"), true, &recent()).replace("API_TOKEN=hunter2", "API_TOKEN=from-a-secret-store");
    push_image(&r, &auth, "env/app", "v2", &other).await;
    assert_eq!(pull(&r, "env/app", "v2").await.0, StatusCode::OK);
    // Without rego the option means nothing, and is refused as a mistake.
    let err = vouch::policy::Policy::parse(
        "version = 1\nname = \"x\"\n[[rule]]\nrepositories = \"**\"\nenv_values = true\n",
        std::path::Path::new("p.toml"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("rule 1: env_values"), "{err}");
}
