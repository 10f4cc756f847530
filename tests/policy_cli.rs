//! `vouch policy test` and `vouch policy check`, run as a user runs them:
//! the example vulnerability-gate policy with its own keys, test cases
//! written as files, and an image in a real registry (a `vouch serve`
//! under the open policy, so that it holds anything) built by podman,
//! signed by `vouch sign` and attested by an independent attester.

mod common;

use common::run;
use std::path::Path;
use std::process::{Command, Stdio};

const VOUCH: &str = env!("CARGO_BIN_EXE_vouch");

/// A folder with the vulnerability-gate example and its two keys.
fn gate(w: &Path) -> std::path::PathBuf {
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/spec/examples/policy-vuln-gate.toml"),
        w.join("policy.toml"),
    )
    .unwrap();
    for name in ["release", "scanner"] {
        let (ok, out) = run(Command::new(VOUCH).args(["keygen", "--out"]).arg(w.join(name)));
        assert!(ok, "{out}");
    }
    w.join("policy.toml")
}

fn scan(days_ago: i64, severity: &str) -> serde_json::Value {
    let t = (time::OffsetDateTime::now_utc() - time::Duration::days(days_ago))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    serde_json::json!({
        "scanner": {"uri": "pkg:github/anchore/grype", "db": {"lastUpdate": t},
                    "result": [{"id": "CVE-2024-3094", "severity": [{"method": "nvd", "score": severity}]}]},
        "metadata": {"scanStartedOn": t, "scanFinishedOn": t}
    })
}

#[test]
fn policy_test_runs_a_folder_of_cases_and_fails_naming_the_case_that_differs() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let policy = gate(w);
    let cases = w.join("cases");
    std::fs::create_dir(&cases).unwrap();
    let config = |user: &str| serde_json::json!({"os": "linux", "architecture": "amd64", "config": {"User": user}});
    let case = |file: &str, name: &str, input: serde_json::Value, expect: serde_json::Value| {
        let doc = serde_json::json!({ "name": name, "input": input, "expect": expect });
        std::fs::write(cases.join(file), doc.to_string()).unwrap();
    };
    let vulns = "https://in-toto.io/attestation/vulns/v0.1";
    case(
        "1.json",
        "a signed image with a clean recent scan is admitted",
        serde_json::json!({"repository": "prod/app", "signers": ["release"],
            "configs": [{"config": config("1000")}],
            "attestations": [{"predicate_type": vulns, "signer": "scanner", "predicate": scan(1, "low")}]}),
        serde_json::json!({"admit": true}),
    );
    case(
        "2.json",
        "a critical finding denies",
        serde_json::json!({"repository": "prod/app", "signers": ["release"],
            "configs": [{"config": config("1000")}],
            "attestations": [{"predicate_type": vulns, "signer": "scanner", "predicate": scan(1, "critical")}]}),
        serde_json::json!({"admit": false, "reasons": ["at or above Critical: CVE-2024-3094"]}),
    );
    case(
        "3.json",
        "root is denied in prod",
        serde_json::json!({"repository": "prod/app", "signers": ["release"],
            "configs": [{"config": config("")}],
            "attestations": [{"predicate_type": vulns, "signer": "scanner", "predicate": scan(1, "low")}]}),
        serde_json::json!({"admit": false, "reasons": ["runs as root"]}),
    );
    case(
        "4.json",
        "a scan signed by the release key does not count",
        serde_json::json!({"repository": "prod/app", "signers": ["release"],
            "configs": [{"config": config("1000")}],
            "attestations": [{"predicate_type": vulns, "signer": "release", "predicate": scan(1, "low")}]}),
        serde_json::json!({"admit": false, "reasons": ["needs a vulnerability scan"]}),
    );
    let test = || {
        let out = Command::new(VOUCH)
            .args(["policy", "test", "--policy"])
            .arg(&policy)
            .arg(&cases)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, out) = test();
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("PASS root is denied in prod") && out.contains("4 passed, 0 failed"),
        "{out}"
    );
    // An expectation the policy does not meet fails, naming the case, what
    // differed and what the policy decided.
    case(
        "5.json",
        "an old scan is fine (it is not)",
        serde_json::json!({"repository": "prod/app", "signers": ["release"],
            "configs": [{"config": config("1000")}],
            "attestations": [{"predicate_type": vulns, "signer": "scanner", "predicate": scan(30, "low")}]}),
        serde_json::json!({"admit": true}),
    );
    let (code, out) = test();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL an old scan is fine (it is not)"), "{out}");
    assert!(
        out.contains("expected admit, got deny") && out.contains("is 30 days old"),
        "{out}"
    );
    assert!(out.contains("4 passed, 1 failed"), "{out}");
    // A case that is not valid JSON for the format is a failure naming it.
    std::fs::write(
        cases.join("6.json"),
        r#"{"name": "x", "input": {}, "expect": {"admit": true}}"#,
    )
    .unwrap();
    let (code, out) = test();
    assert_eq!(code, Some(1));
    assert!(
        out.contains("6.json") && out.contains("missing field `repository`"),
        "{out}"
    );
}

#[test]
fn policy_check_evaluates_an_image_in_a_registry_without_admitting_it() {
    if !common::have_python_module("cryptography") || !common::have("podman") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let policy = gate(w);
    // The independent attester's key is the scanner's.
    let signer_py = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cosign_sign.py");
    let (ok, out) = run(Command::new("python3").arg(signer_py).arg("keygen").arg(w));
    assert!(ok, "{out}");
    std::fs::copy(w.join("independent.pub"), w.join("scanner.pub")).unwrap();
    let (server, addr) = common::start_server(&w.join("data"), &[], Stdio::null());
    let _server = common::KillOnDrop(server);
    // An image podman builds, running as uid 1000.
    std::fs::create_dir(w.join("rootfs")).unwrap();
    std::fs::write(w.join("rootfs/hello"), "an image to check\n").unwrap();
    let (ok, out) = run(Command::new("tar")
        .arg("-C")
        .arg(w.join("rootfs"))
        .arg("-cf")
        .arg(w.join("rootfs.tar"))
        .arg("."));
    assert!(ok, "{out}");
    let tar = w.join("rootfs.tar");
    let (ok, _, err) = common::podman(
        w,
        &[
            "import",
            "--change",
            "USER=1000",
            tar.to_str().unwrap(),
            "localhost/prod/app:v1",
        ],
    );
    assert!(ok, "podman import: {err}");
    let (ok, _, err) = common::podman(
        w,
        &[
            "push",
            "--tls-verify=false",
            "localhost/prod/app:v1",
            &format!("{addr}/prod/app:v1"),
        ],
    );
    assert!(ok, "podman push: {err}");
    let check = || {
        let out = Command::new(VOUCH)
            .args(["policy", "check", "--policy"])
            .arg(&policy)
            .arg(format!("{addr}/prod/app:v1"))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, out) = check();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("verdict: DENY") && out.contains("needs signatures by 1 of 1 trusted keys"),
        "{out}"
    );
    assert!(!out.contains("root"), "the configuration was read: user 1000: {out}");
    let (ok, out) = run(Command::new(VOUCH)
        .args(["sign", &format!("{addr}/prod/app:v1"), "--key"])
        .arg(w.join("release.key")));
    assert!(ok, "{out}");
    let accept = ("Accept", "application/vnd.oci.image.manifest.v1+json");
    let head = common::http(&addr, "HEAD", "/v2/prod/app/manifests/v1", &[accept], &[]).unwrap();
    let digest = head.header("docker-content-digest").unwrap().to_owned();
    let attest = |predicate: serde_json::Value| {
        std::fs::write(w.join("scan.json"), predicate.to_string()).unwrap();
        let (ok, out) = run(Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cosign_attest.py"))
            .args([&addr, "prod/app", &digest])
            .arg(w)
            .arg("https://in-toto.io/attestation/vulns/v0.1")
            .arg(w.join("scan.json")));
        assert!(ok, "{out}");
    };
    attest(scan(2, "critical"));
    let (code, out) = check();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("at or above Critical: CVE-2024-3094"), "{out}");
    assert!(!out.contains("needs signatures"), "the release signature counts: {out}");
    attest(scan(1, "medium"));
    let (code, out) = check();
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("verdict: ADMIT") && out.contains("rule:    1 (repositories = \"prod/**\")"),
        "{out}"
    );
    // JSON for scripts.
    let out = Command::new(VOUCH)
        .args(["policy", "check", "--output", "json", "--policy"])
        .arg(&policy)
        .arg(format!("{addr}/prod/app@{digest}"))
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["admit"], true, "{doc}");
    assert_eq!(doc["rule"], 1);
}
