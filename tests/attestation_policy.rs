//! Rules over what attestations say (spec/policy.md, "Attestation
//! content"), end to end with the real server: images pushed with skopeo,
//! scans and SLSA provenance attested by an independent attester
//! (`tests/cosign_attest.py`, Python `cryptography`, DSSE built from the
//! spec), each denial naming the rule and the fact, and the missing or
//! better evidence admitting the image, or a new scan taking it back.

mod common;

use common::run;
use std::process::{Command, Stdio};

const ATTESTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cosign_attest.py");
const IN_TOTO_VULNS: &str = "https://in-toto.io/attestation/vulns/v0.1";
const COSIGN_VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
const SLSA_V1: &str = "https://slsa.dev/provenance/v1";

struct Registry {
    addr: String,
    work: tempfile::TempDir,
    _server: common::KillOnDrop,
}

impl Registry {
    fn start(policy: &str) -> Registry {
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        let signer = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cosign_sign.py");
        let (ok, out) = run(Command::new("python3").arg(signer).arg("keygen").arg(w));
        assert!(ok, "{out}");
        std::fs::write(w.join("policy.toml"), policy).unwrap();
        let policy = w.join("policy.toml");
        let (server, addr) =
            common::start_server(&w.join("data"), &["--policy", policy.to_str().unwrap()], Stdio::null());
        Registry {
            addr,
            work,
            _server: common::KillOnDrop(server),
        }
    }

    /// Pushes a new image to `repo:v1` with skopeo; returns its digest.
    fn push(&self, repo: &str) -> String {
        self.prepare(repo);
        self.push_prepared(repo)
    }

    /// Writes a new image for `repo` as an OCI layout, not yet pushed;
    /// returns its digest.
    fn prepare(&self, repo: &str) -> String {
        let layout = self.work.path().join(repo.replace('/', "-"));
        common::write_layout(&layout, "v1", &format!("content of {repo}\n"))
    }

    /// Pushes the image [`Self::prepare`] wrote to `repo:v1`; returns its
    /// digest.
    fn push_prepared(&self, repo: &str) -> String {
        self.push_prepared_as(repo, repo)
    }

    /// Pushes the image [`Self::prepare`] wrote for `prepared` to
    /// `repo:v1`; returns its digest.
    fn push_prepared_as(&self, prepared: &str, repo: &str) -> String {
        let layout = self.work.path().join(prepared.replace('/', "-"));
        let (ok, out) = run(Command::new("skopeo").args([
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:v1", layout.display()),
            &format!("docker://{}/{repo}:v1", self.addr),
        ]));
        assert!(ok, "push {repo}: {out}");
        let accept = ("Accept", "application/vnd.oci.image.manifest.v1+json");
        let head = common::http(&self.addr, "HEAD", &format!("/v2/{repo}/manifests/v1"), &[accept], &[]).unwrap();
        head.header("docker-content-digest").unwrap().to_owned()
    }

    /// Attests `predicate` of `predicate_type` about `digest`, signed with
    /// the independent key.
    fn attest(&self, repo: &str, digest: &str, predicate_type: &str, predicate: serde_json::Value) {
        let file = self.work.path().join("predicate.json");
        std::fs::write(&file, predicate.to_string()).unwrap();
        let (ok, out) = run(Command::new("python3")
            .arg(ATTESTER)
            .args([&self.addr, repo, digest])
            .arg(self.work.path())
            .arg(predicate_type)
            .arg(&file));
        assert!(ok, "{out}");
    }

    /// The anonymous GET of `repo:v1`: admitted, or the denial's text.
    fn pull(&self, repo: &str) -> Result<(), String> {
        let accept = ("Accept", "application/vnd.oci.image.manifest.v1+json");
        let r = common::http(&self.addr, "GET", &format!("/v2/{repo}/manifests/v1"), &[accept], &[]).unwrap();
        match r.status {
            200 => Ok(()),
            _ => Err(String::from_utf8_lossy(&r.body).into_owned()),
        }
    }
}

fn ago(days: i64) -> String {
    let t = time::OffsetDateTime::now_utc() - time::Duration::days(days);
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// An in-toto vulns/v0.1 predicate, finished `days` ago, with findings
/// (id, severity word).
fn in_toto_scan(days: i64, findings: &[(&str, &str)]) -> serde_json::Value {
    serde_json::json!({
        "scanner": {
            "uri": "pkg:github/aquasecurity/trivy@244fd47e07d1004f0aed9",
            "version": "0.19.2",
            "db": {"uri": "pkg:github/aquasecurity/trivy-db", "version": "v1", "lastUpdate": ago(days)},
            "result": findings.iter().map(|(id, s)| serde_json::json!({
                "id": id, "severity": [{"method": "nvd", "score": s}]
            })).collect::<Vec<_>>()
        },
        "metadata": {"scanStartedOn": ago(days), "scanFinishedOn": ago(days)}
    })
}

fn policy(rule: &str) -> String {
    format!("version = 1\nname = \"content\"\n[keys]\nscanner = \"independent.pub\"\nci = \"independent.pub\"\n[[rule]]\nrepositories = \"**\"\n{rule}\n")
}

#[test]
fn a_vulnerability_gate_admits_clean_recent_scans_and_takes_back_on_a_new_critical_finding() {
    if !common::have_python_module("cryptography") || !common::have("skopeo") {
        return;
    }
    let r = Registry::start(&policy(
        "vulnerabilities = { keys = [\"scanner\"], deny_at = \"critical\", max_age = \"7d\" }",
    ));
    let d = r.push("team/app");
    let needs = r.pull("team/app").unwrap_err();
    assert!(needs.contains("needs a vulnerability scan"), "{needs}");
    // A recent scan with a low finding only: admitted.
    r.attest(
        "team/app",
        &d,
        IN_TOTO_VULNS,
        in_toto_scan(1, &[("CVE-2024-0001", "low")]),
    );
    r.pull("team/app").expect("a clean recent scan admits");
    // A newer scan (cosign's predicate, with Trivy's report) finds a
    // critical vulnerability: the image is taken back, naming it.
    let trivy = serde_json::json!({
        "invocation": {"parameters": null, "uri": "", "event_id": "", "builder.id": ""},
        "scanner": {"uri": "pkg:github/aquasecurity/trivy", "version": "0.50.0",
            "db": {"uri": "", "version": ""},
            "result": {"SchemaVersion": 2, "Results": [{"Target": "app", "Vulnerabilities": [
                {"VulnerabilityID": "CVE-2024-3094", "PkgName": "xz-utils", "Severity": "CRITICAL"},
                {"VulnerabilityID": "CVE-2023-0002", "PkgName": "zlib", "Severity": "MEDIUM"}]}]}},
        "metadata": {"scanStartedOn": ago(0), "scanFinishedOn": ago(0)}
    });
    r.attest("team/app", &d, COSIGN_VULN, trivy);
    let taken = r.pull("team/app").unwrap_err();
    assert!(
        taken.contains("finds 1 vulnerability at or above Critical: CVE-2024-3094 (Critical)"),
        "{taken}"
    );
    // A clean scan that is too old does not admit.
    let old = r.push("team/old");
    r.attest("team/old", &old, IN_TOTO_VULNS, in_toto_scan(30, &[]));
    let stale = r.pull("team/old").unwrap_err();
    assert!(stale.contains("is 30 days old; the rule's max_age is 1w"), "{stale}");
}

#[test]
fn required_provenance_denies_a_wrong_builder_or_source_and_admits_the_right_one() {
    if !common::have_python_module("cryptography") || !common::have("skopeo") {
        return;
    }
    let r = Registry::start(&policy(
        "provenance = { keys = [\"ci\"], builder_id = \"https://github.com/actions/runner/*\", \
         source = \"github.com/org/*\", ref = \"refs/heads/main\" }",
    ));
    let d = r.push("team/app");
    let provenance = |builder: &str, repo: &str, git_ref: &str| {
        serde_json::json!({
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {"workflow": {"ref": git_ref, "repository": repo, "path": ".github/workflows/release.yml"}},
                "internalParameters": {"github": {"event_name": "push"}},
                "resolvedDependencies": [{"uri": format!("git+{repo}@{git_ref}"), "digest": {"gitCommit": "a".repeat(40)}}]
            },
            "runDetails": {"builder": {"id": builder}, "metadata": {"invocationId": "https://github.com/org/app/actions/runs/1"}}
        })
    };
    r.attest(
        "team/app",
        &d,
        SLSA_V1,
        provenance(
            "https://evil.example/runner",
            "https://github.com/org/app",
            "refs/heads/main",
        ),
    );
    let wrong = r.pull("team/app").unwrap_err();
    assert!(
        wrong.contains("builder_id \\\"https://evil.example/runner\\\" does not match"),
        "{wrong}"
    );
    r.attest(
        "team/app",
        &d,
        SLSA_V1,
        provenance(
            "https://github.com/actions/runner/github-hosted",
            "https://github.com/fork/app",
            "refs/heads/main",
        ),
    );
    let fork = r.pull("team/app").unwrap_err();
    assert!(
        fork.contains("source \\\"github.com/fork/app\\\" does not match"),
        "{fork}"
    );
    r.attest(
        "team/app",
        &d,
        SLSA_V1,
        provenance(
            "https://github.com/actions/runner/github-hosted",
            "https://github.com/org/app",
            "refs/heads/main",
        ),
    );
    r.pull("team/app")
        .expect("provenance from the right builder and source admits");
}

#[test]
fn an_sbom_rule_denies_a_gpl_package_and_a_denied_package_and_admits_a_clean_sbom() {
    if !common::have_python_module("cryptography") || !common::have("skopeo") {
        return;
    }
    let r = Registry::start(&policy(
        "sbom = { keys = [\"scanner\"], deny_licenses = [\"GPL-*\", \"AGPL-*\"], deny_packages = [\"log4j-core@2.14.*\"] }",
    ));
    let spdx = |packages: serde_json::Value| {
        serde_json::json!({
            "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
            "name": "app", "documentNamespace": "https://example.com/app",
            "creationInfo": {"created": "2026-11-27T10:00:00Z", "creators": ["Tool: syft-1.0"]},
            "packages": packages
        })
    };
    let d = r.push("team/app");
    assert!(r.pull("team/app").unwrap_err().contains("needs an SBOM"));
    r.attest(
        "team/app",
        &d,
        "https://spdx.dev/Document",
        spdx(serde_json::json!([
            {"name": "musl", "SPDXID": "SPDXRef-1", "versionInfo": "1.2.4", "licenseConcluded": "MIT", "downloadLocation": "NOASSERTION"},
            {"name": "readline", "SPDXID": "SPDXRef-2", "versionInfo": "8.2", "licenseConcluded": "GPL-3.0-or-later", "downloadLocation": "NOASSERTION"}
        ])),
    );
    let gpl = r.pull("team/app").unwrap_err();
    assert!(gpl.contains("readline@8.2 is licensed GPL-3.0-or-later"), "{gpl}");
    // A CycloneDX SBOM with a denied package version, on another image.
    let d2 = r.push("team/java");
    r.attest(
        "team/java",
        &d2,
        "https://cyclonedx.org/bom",
        serde_json::json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [
            {"type": "library", "name": "log4j-core", "version": "2.14.1", "licenses": [{"license": {"id": "Apache-2.0"}}]}]}),
    );
    let log4j = r.pull("team/java").unwrap_err();
    assert!(
        log4j.contains("log4j-core@2.14.1 matches the denied package"),
        "{log4j}"
    );
    // A clean SBOM admits.
    let d3 = r.push("team/clean");
    r.attest(
        "team/clean",
        &d3,
        "https://spdx.dev/Document",
        spdx(serde_json::json!([
            {"name": "musl", "SPDXID": "SPDXRef-1", "versionInfo": "1.2.4", "licenseConcluded": "MIT", "downloadLocation": "NOASSERTION"}
        ])),
    );
    r.pull("team/clean").expect("a clean SBOM admits");
}

/// Attestations pushed before their image (its digest known from its
/// layout) are opened as they arrive and kept; the image's push is then
/// decided on them exactly as if they were read afresh: the GPL package
/// denies, the clean SBOM admits, and a kept envelope counts in no other
/// repository.
#[test]
fn attestations_pushed_before_their_image_decide_its_push() {
    if !common::have_python_module("cryptography") || !common::have("skopeo") {
        return;
    }
    let r = Registry::start(&policy("sbom = { keys = [\"scanner\"], deny_licenses = [\"GPL-*\"] }"));
    let spdx = |name: &str, license: &str| {
        serde_json::json!({
            "spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "app",
            "packages": [{"name": name, "SPDXID": "SPDXRef-1", "versionInfo": "1.0", "licenseConcluded": license}]
        })
    };
    let gpl = r.prepare("team/early");
    r.attest(
        "team/early",
        &gpl,
        "https://spdx.dev/Document",
        spdx("readline", "GPL-3.0-only"),
    );
    assert_eq!(r.push_prepared("team/early"), gpl);
    let denied = r.pull("team/early").unwrap_err();
    assert!(denied.contains("readline@1.0 is licensed GPL-3.0-only"), "{denied}");

    let clean = r.prepare("team/clean");
    r.attest("team/clean", &clean, "https://spdx.dev/Document", spdx("musl", "MIT"));
    assert_eq!(r.push_prepared("team/clean"), clean);
    r.pull("team/clean")
        .expect("a clean SBOM pushed first admits the image at its push");

    // The same image pushed to another repository, where no attestation
    // is linked: the envelope kept for it in team/clean does not count.
    assert_eq!(r.push_prepared_as("team/clean", "team/copy"), clean);
    let copy = r.pull("team/copy").unwrap_err();
    assert!(copy.contains("needs an SBOM"), "{copy}");
}
