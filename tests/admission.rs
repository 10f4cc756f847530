//! Admission end to end, against the real `vouch serve --policy`: images
//! pushed with skopeo are quarantined until signed, once by `vouch sign` and
//! once by an independent signer (Python `cryptography`, no shared code);
//! then skopeo pulls them, HEAD worked all along, and the ledger holds the
//! policy and every decision, which `vouch audit --replay` checks.

mod common;

use common::run;
use std::process::{Command, Stdio};

fn skopeo(args: &[&str]) -> (bool, String) {
    run(Command::new("skopeo").args(args))
}

/// Pushes a new one-layer image to `<repo>:v1` with skopeo; returns its
/// `docker://` reference and its digest.
fn push_image(w: &std::path::Path, addr: &str, repo: &str) -> (String, String) {
    let image = format!("docker://{addr}/{repo}:v1");
    let (ok, out) = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &layout(w, &repo.replace('/', "-")),
        &image,
    ]);
    assert!(ok, "push {repo}: {out}");
    let accept = ("Accept", "application/vnd.oci.image.manifest.v1+json");
    let head = common::http(addr, "HEAD", &format!("/v2/{repo}/manifests/v1"), &[accept], &[]).unwrap();
    (image, head.header("docker-content-digest").unwrap().to_owned())
}

/// Every admission decision in the server's ledger, in order.
fn ledger_decisions(addr: &str) -> Vec<vouch_ledger::entry::DecisionEntry> {
    let checkpoint = common::http(addr, "GET", "/ledger/checkpoint", &[], &[]).unwrap();
    let size: u64 = String::from_utf8(checkpoint.body)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    (0..size)
        .filter_map(|i| {
            let e = common::http(addr, "GET", &format!("/ledger/entry/{i}"), &[], &[]).unwrap();
            match vouch_ledger::entry::Entry::decode(&e.body).unwrap() {
                vouch_ledger::entry::Entry::Decision(d) => Some(d),
                _ => None,
            }
        })
        .collect()
}

/// The size of the blob `digest` in one of the OCI layouts under `dir`.
fn layout_blob_size(dir: &std::path::Path, digest: &str) -> u64 {
    let hex = digest.trim_start_matches("sha256:");
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| std::fs::metadata(e.ok()?.path().join("blobs/sha256").join(hex)).ok())
        .map(|m| m.len())
        .next()
        .unwrap_or_else(|| panic!("{digest} is in no layout under {}", dir.display()))
}

/// Writes a one-layer OCI image (a real gzip'd tar layer, so podman can
/// pull it) with distinct content; returns its `oci:` reference.
fn layout(dir: &std::path::Path, name: &str) -> String {
    let root = dir.join(name);
    common::write_layout(&root, "v1", &format!("content of {name}\n"));
    format!("oci:{}:v1", root.display())
}

#[test]
fn unsigned_images_are_quarantined_until_signed_and_every_decision_is_logged() {
    if !common::have_python_module("cryptography") || !common::have("podman") || !common::have("skopeo") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let vouch = env!("CARGO_BIN_EXE_vouch");
    let (ok, out) = run(Command::new(vouch).args(["keygen", "--out"]).arg(w.join("team")));
    assert!(ok, "{out}");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cosign_sign.py");
    let (ok, out) = run(Command::new("python3").arg(script).arg("keygen").arg(w));
    assert!(ok, "{out}");
    std::fs::write(
        w.join("policy.toml"),
        "version = 1\nname = \"signed\"\n[keys]\nteam = \"team.pub\"\nindependent = \"independent.pub\"\n\
         [[rule]]\nrepositories = \"**\"\nsignatures = { keys = [\"team\", \"independent\"], threshold = 1 }\n",
    )
    .unwrap();
    let data = w.join("data");
    let policy = w.join("policy.toml");
    let (mut server, addr) = common::start_server(&data, &["--policy", policy.to_str().unwrap()], Stdio::null());
    let reg = |r: &str| format!("docker://{addr}/{r}");

    for (image, signer) in [("team/app", "vouch"), ("other/app", "independent")] {
        let (ok, out) = skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            &layout(w, image.replace('/', "-").as_str()),
            &reg(&format!("{image}:v1")),
        ]);
        assert!(ok, "push {image}: {out}");
        // Quarantined: GET is DENIED with the reason, to skopeo and podman;
        // HEAD still resolves.
        let (ok, _, err) = common::podman(w, &["pull", "--tls-verify=false", &format!("{addr}/{image}:v1")]);
        assert!(
            !ok && err.contains("denied"),
            "podman pull of a quarantined image: {err}"
        );
        let (ok, out) = skopeo(&["inspect", "--tls-verify=false", &reg(&format!("{image}:v1"))]);
        assert!(
            !ok && out.contains("denied") && out.contains("needs signatures by 1 of 2 trusted keys, has 0"),
            "{out}"
        );
        let accept = ("Accept", "application/vnd.oci.image.manifest.v1+json");
        let head = common::http(&addr, "HEAD", &format!("/v2/{image}/manifests/v1"), &[accept], &[]).unwrap();
        assert_eq!(
            head.status, 403,
            "HEAD gives the digest of a quarantined image, not its bytes or length"
        );
        let digest = head.header("docker-content-digest").unwrap().to_owned();
        assert_eq!(head.header("vouch-admission-state"), Some("denied"));

        let (ok, out) = match signer {
            "vouch" => run(Command::new(vouch)
                .args(["sign", &format!("{addr}/{image}:v1"), "--key"])
                .arg(w.join("team.key"))),
            _ => run(Command::new("python3").arg(script).args([&addr, image, &digest]).arg(w)),
        };
        assert!(ok, "{signer} signing {image}: {out}");
        let (ok, out) = skopeo(&["inspect", "--tls-verify=false", &reg(&format!("{image}:v1"))]);
        assert!(
            ok && out.contains(&digest),
            "{image} signed by {signer} should be admitted: {out}"
        );
        let back = w.join(format!("pulled-{}", image.replace('/', "-")));
        let (ok, out) = skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &reg(&format!("{image}:v1")),
            &format!("oci:{}:v1", back.display()),
        ]);
        assert!(ok, "pull {image}: {out}");
        // podman pulls it too, now that it is admitted.
        let (ok, _, err) = common::podman(w, &["pull", "--tls-verify=false", &format!("{addr}/{image}:v1")]);
        assert!(ok, "podman pull {image}: {err}");

        // The .sig manifest now also holds vouch's countersignature, naming
        // the admit decision's ledger entry; an independent verifier checks
        // it with admission.pub alone, and the publisher's signature in the
        // same manifest with the publisher's key.
        let verifier = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cosign_verify.py");
        let check = |key: &std::path::Path| {
            run(Command::new("python3")
                .arg(verifier)
                .args([&addr, image, &digest])
                .arg(key))
        };
        let (ok, out) = check(&data.join("admission.pub"));
        assert!(ok, "countersignature of {image}: {out}");
        let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        assert_eq!(line["reference"], format!("{addr}/{image}"));
        let admit_index = if signer == "vouch" { "2" } else { "5" };
        assert_eq!(line["optional"]["dev.vouch.ledger-index"], admit_index, "{out}");
        assert_eq!(line["optional"]["dev.vouch.policy-index"], "0", "{out}");
        let covered: u64 = line["optional"]["dev.vouch.checkpoint-size"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(covered > admit_index.parse().unwrap(), "{out}");
        let publisher = if signer == "vouch" {
            w.join("team.pub")
        } else {
            w.join("independent.pub")
        };
        let (ok, out) = check(&publisher);
        assert!(
            ok && out.contains("1 of 2 layer(s) verified"),
            "publisher's signature of {image}: {out}"
        );
    }

    // The ledger: the policy, then a deny and an admit for each image; the
    // auditor, with the log key alone, finds every decision naming it.
    let (ok, out) = run(Command::new(vouch)
        .args(["audit", "--log", &format!("http://{addr}"), "--log-key"])
        .arg(data.join("ledger.vkey"))
        .arg("--replay"));
    assert!(ok, "{out}");
    assert!(out.contains("replay: 7 entries") && out.contains("1 policies"), "{out}");
    let mut verdicts = Vec::new();
    for i in 0..7 {
        let e = common::http(&addr, "GET", &format!("/ledger/entry/{i}"), &[], &[]).unwrap();
        match vouch_ledger::entry::Entry::decode(&e.body).unwrap() {
            vouch_ledger::entry::Entry::Policy(p) => verdicts.push(format!("policy {}", p.name)),
            vouch_ledger::entry::Entry::Decision(d) => {
                assert_eq!(d.policy_index, 0);
                verdicts.push(format!("{} {:?} by {}", d.repo, d.verdict, d.signers.len()));
            }
            vouch_ledger::entry::Entry::Tag(t) => verdicts.push(format!("{} tag {}", t.repo, t.tag)),
            other => panic!("unexpected entry {other:?}"),
        }
    }
    // The tag v1, set while the image was quarantined, is logged once the
    // signature admits it.
    assert_eq!(
        verdicts,
        [
            "policy signed",
            "team/app Deny by 0",
            "team/app Admit by 1",
            "team/app tag v1",
            "other/app Deny by 0",
            "other/app Admit by 1",
            "other/app tag v1"
        ]
    );

    // vouch verify: online, pinning the policy file, saving the bundle.
    let vkey = data.join("ledger.vkey");
    let bundle = w.join("bundle.json");
    let verify = |extra: &[&str]| {
        let mut cmd = Command::new(vouch);
        cmd.arg("verify").args(extra).arg("--log-key").arg(&vkey);
        run(&mut cmd)
    };
    let team = format!("{addr}/team/app:v1");
    let (ok, out) = verify(&[
        &team,
        "--policy",
        policy.to_str().unwrap(),
        "--save-bundle",
        bundle.to_str().unwrap(),
    ]);
    assert!(
        ok && out.contains("verified: team/app@sha256:") && out.contains("under policy \"signed\""),
        "{out}"
    );
    let (ok, out) = verify(&[&team, "--output", "json"]);
    assert!(ok && out.contains("\"verified\": true"), "{out}");
    let (ok, out) = verify(&[&team, "--policy", &format!("sha256:{}", "0".repeat(64))]);
    assert!(!ok && out.contains("not the required"), "{out}");
    // A denied image has a bundle too, and verify refuses it.
    let (ok, out) = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &layout(w, "unsigned"),
        &reg("unsigned/app:v1"),
    ]);
    assert!(ok, "{out}");
    let (ok, out) = verify(&[&format!("{addr}/unsigned/app:v1")]);
    assert!(!ok && out.contains("was denied"), "{out}");

    // The latest decision's bundle is also attached to the image as an OCI
    // referrer (replacing the earlier decision's, so listings do not grow
    // with the history): found through the referrers API by artifact type,
    // it verifies offline like the served one.
    let head = common::http(
        &addr,
        "HEAD",
        "/v2/team/app/manifests/v1",
        &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
        &[],
    )
    .unwrap();
    let team_digest = head.header("docker-content-digest").unwrap().to_owned();
    // They are attached off the push path, within a fraction of a second.
    let path = format!(
        "/v2/team/app/referrers/{team_digest}?artifactType=application/vnd.dev.vouch.admission-bundle.v1%2Bjson"
    );
    let mut listing = serde_json::Value::Null;
    for _ in 0..50 {
        let r = common::http(&addr, "GET", &path, &[], &[]).unwrap();
        listing = serde_json::from_slice(&r.body).unwrap();
        let latest = listing["manifests"][0]["annotations"]["dev.vouch.verdict"] == "admit";
        if listing["manifests"].as_array().is_some_and(|m| m.len() == 1) && latest {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let verdicts: Vec<&str> = listing["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["annotations"]["dev.vouch.verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["admit"], "{listing}");
    let admit = listing["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["dev.vouch.verdict"] == "admit")
        .unwrap();
    let artifact = common::http(
        &addr,
        "GET",
        &format!("/v2/team/app/manifests/{}", admit["digest"].as_str().unwrap()),
        &[],
        &[],
    )
    .unwrap();
    let artifact: serde_json::Value = serde_json::from_slice(&artifact.body).unwrap();
    assert_eq!(artifact["subject"]["digest"], team_digest.as_str());
    let layer = artifact["layers"][0]["digest"].as_str().unwrap();
    let attached = common::http(&addr, "GET", &format!("/v2/team/app/blobs/{layer}"), &[], &[]).unwrap();
    let attached_path = w.join("attached.json");
    std::fs::write(&attached_path, &attached.body).unwrap();
    let (ok, out) = verify(&[&format!("{addr}/team/app"), "--bundle", attached_path.to_str().unwrap()]);
    assert!(ok, "the attached bundle: {out}");
    server.kill().unwrap();
    server.wait().unwrap();

    // Offline, from the saved bundle, with the registry gone.
    let offline = format!("{addr}/team/app");
    let (ok, out) = verify(&[&offline, "--bundle", bundle.to_str().unwrap()]);
    assert!(ok, "offline: {out}");
    // A tampered bundle, or another log's key, is refused.
    let mut b: serde_json::Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    let proof = b["decision"]["proof"]
        .as_str()
        .unwrap()
        .replacen("index ", "index 1", 1);
    b["decision"]["proof"] = proof.into();
    let tampered = w.join("tampered.json");
    std::fs::write(&tampered, serde_json::to_vec(&b).unwrap()).unwrap();
    let (ok, out) = verify(&[&offline, "--bundle", tampered.to_str().unwrap()]);
    assert!(!ok && out.contains("not proven in the log"), "{out}");
    let other = vouch_ledger::NoteSigner::new("x.test/log", ed25519_dalek::SigningKey::from_bytes(&[1; 32])).unwrap();
    let mut cmd = Command::new(vouch);
    cmd.args([
        "verify",
        &offline,
        "--bundle",
        bundle.to_str().unwrap(),
        "--log-key",
        &other.verifier().to_string(),
    ]);
    let (ok, out) = run(&mut cmd);
    assert!(!ok && out.contains("not proven in the log"), "{out}");
}

#[test]
fn by_default_nothing_unsigned_is_admitted_and_trust_key_admits_what_it_signed() {
    if std::env::var("CI").is_err() && Command::new("skopeo").arg("--version").output().is_err() {
        eprintln!("SKIPPED: skopeo is not installed");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let vouch = env!("CARGO_BIN_EXE_vouch");

    let (ok, out) = run(Command::new(vouch).args(["keygen", "--out"]).arg(w.join("k")));
    assert!(ok, "{out}");
    let key = w.join("k.pub");

    // No flags at all: the default policy admits nothing, and says why;
    // not even a signed image.
    let (mut server, addr) = common::start_server_with_defaults(&w.join("d1"), Stdio::null());
    let image = format!("docker://{addr}/plain/app:v1");
    let (ok, out) = skopeo(&["copy", "--dest-tls-verify=false", &layout(w, "plain"), &image]);
    assert!(ok, "{out}");
    let (ok, out) = skopeo(&["inspect", "--tls-verify=false", &image]);
    assert!(
        !ok && out.contains("nothing is admitted until vouch is given --trust-key or --policy"),
        "{out}"
    );
    let (ok, out) = run(Command::new(vouch)
        .args(["sign", &format!("{addr}/plain/app:v1"), "--key"])
        .arg(w.join("k.key")));
    assert!(ok, "{out}");
    assert!(!skopeo(&["inspect", "--tls-verify=false", &image]).0);
    server.kill().unwrap();
    server.wait().unwrap();

    // Restarted trusting that key: the new policy re-evaluates what was
    // quarantined before serving, and the signed image is admitted. (The
    // signature names the registry as it was reached: the new process,
    // on another port, is told that name.)
    let log = w.join("restart.log");
    let (mut server, addr) = common::start_server(
        &w.join("d1"),
        &["--trust-key", key.to_str().unwrap(), "--registry-name", &addr],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    let image = format!("docker://{addr}/plain/app:v1");
    let (ok, out) = skopeo(&["inspect", "--tls-verify=false", &image]);
    assert!(ok, "{out}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("re-evaluated 1 image(s): 1 admitted, 0 denied"), "{log}");
    server.kill().unwrap();
    server.wait().unwrap();

    // --trust-key: a signature by that key admits.
    let (mut server, addr) =
        common::start_server(&w.join("d2"), &["--trust-key", key.to_str().unwrap()], Stdio::null());
    let image = format!("docker://{addr}/keyed/app:v1");
    let (ok, out) = skopeo(&["copy", "--dest-tls-verify=false", &layout(w, "keyed"), &image]);
    assert!(ok, "{out}");
    assert!(!skopeo(&["inspect", "--tls-verify=false", &image]).0);
    let (ok, out) = run(Command::new(vouch)
        .args(["sign", &format!("{addr}/keyed/app:v1"), "--key"])
        .arg(w.join("k.key")));
    assert!(ok, "{out}");
    let (ok, out) = skopeo(&["inspect", "--tls-verify=false", &image]);
    assert!(ok, "{out}");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn a_rule_requiring_an_sbom_attestation_admits_only_once_an_independent_attester_adds_it() {
    if !common::have_python_module("cryptography") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let vouch = env!("CARGO_BIN_EXE_vouch");
    let (ok, out) = run(Command::new(vouch).args(["keygen", "--out"]).arg(w.join("team")));
    assert!(ok, "{out}");
    let signer = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cosign_sign.py");
    let attester = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cosign_attest.py");
    let (ok, out) = run(Command::new("python3").arg(signer).arg("keygen").arg(w));
    assert!(ok, "{out}");
    let spdx = "https://spdx.dev/Document";
    std::fs::write(
        w.join("policy.toml"),
        format!(
            "version = 1\nname = \"signed with sbom\"\n[keys]\nteam = \"team.pub\"\nsbom = \"independent.pub\"\n\
             [[rule]]\nrepositories = \"**\"\nsignatures = {{ keys = [\"team\"] }}\n\
             attestations = [{{ predicate_type = \"{spdx}\", keys = [\"sbom\"] }}]\n"
        ),
    )
    .unwrap();
    let data = w.join("data");
    let policy = w.join("policy.toml");
    let (mut server, addr) = common::start_server(&data, &["--policy", policy.to_str().unwrap()], Stdio::null());
    let (image, digest) = push_image(w, &addr, "sbom/app");
    let denied = |why: &str| {
        let (ok, out) = skopeo(&["inspect", "--tls-verify=false", &image]);
        assert!(!ok && out.contains(why), "expected DENIED naming {why:?}: {out}");
    };
    denied(&format!("needs a {spdx} attestation signed by one of 1 trusted keys"));

    // Signed, but not yet attested.
    let (ok, out) = run(Command::new(vouch)
        .args(["sign", &format!("{addr}/sbom/app:v1"), "--key"])
        .arg(w.join("team.key")));
    assert!(ok, "{out}");
    denied(&format!("needs a {spdx} attestation"));
    // An attestation of another predicate type does not count.
    let attest = |predicate: &str| {
        run(Command::new("python3")
            .arg(attester)
            .args([&addr, "sbom/app", &digest])
            .arg(w)
            .arg(predicate))
    };
    let (ok, out) = attest("https://cyclonedx.org/bom");
    assert!(ok, "{out}");
    denied(&format!("needs a {spdx} attestation"));
    // The SPDX attestation, appended to the same .att manifest, admits it.
    let (ok, out) = attest(spdx);
    assert!(ok, "{out}");
    let (ok, out) = skopeo(&["inspect", "--tls-verify=false", &image]);
    assert!(ok, "{out}");

    // The admit decision names the .sig and the .att manifest (and may name
    // the .att manifest the tag named before, whose CycloneDX attestation
    // verified too).
    let last_decision = ledger_decisions(&addr).pop().unwrap();
    assert_eq!(last_decision.verdict, vouch_ledger::entry::Verdict::Admit);
    let named = |suffix: &str| {
        let tag = format!("docker://{addr}/sbom/app:sha256-{}.{suffix}", &digest[7..]);
        let (ok, raw) = skopeo(&["inspect", "--raw", "--tls-verify=false", &tag]);
        assert!(ok, "{raw}");
        vouch::registry::digest::sha256_of(raw.as_bytes())
    };
    // (The .sig tag names vouch's countersigned copy by now.)
    let att = named("att");
    assert!(last_decision.evidence.contains(&att), "{att} not in {last_decision:?}");
    assert!((2..=3).contains(&last_decision.evidence.len()), "{last_decision:?}");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn keyless_signatures_are_verified_offline_against_the_trusted_root() {
    if !common::have_python_module("cryptography") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keyless_sign.py");
    let (ok, out) = run(Command::new("python3").arg(script).arg("setup").arg(w));
    assert!(ok, "{out}");
    let (issuer, subject) = ("https://issuer.test", "dev@example.test");
    std::fs::write(
        w.join("policy.toml"),
        format!(
            "version = 1\nname = \"keyless\"\ntrusted_root = \"trusted_root.json\"\n\
             [identities]\ndev = {{ issuer = \"{issuer}\", subject = \"{subject}\" }}\n\
             ci = {{ issuer = \"https://ci.test\", subject_regex = \"https://ci\\\\.test/team/.*\" }}\n\
             [[rule]]\nrepositories = \"keyless-sbom/**\"\nsignatures = {{ keys = [\"dev\"] }}\n\
             attestations = [{{ predicate_type = \"https://spdx.dev/Document\", keys = [\"dev\"] }}]\n\
             rego = \"logged.rego\"\n\
             [[rule]]\nrepositories = \"**\"\nsignatures = {{ keys = [\"dev\", \"ci\"] }}\n"
        ),
    )
    .unwrap();
    // Rego sees when a keyless attestation was logged (the Rekor entry's
    // integrated time, checked with its SET): it must be there, and recent.
    std::fs::write(
        w.join("logged.rego"),
        "package vouch\n\ndeny contains \"an attestation without a recent logged time\" if {\n    \
         some p in input.predicates\n    not p.signed_at > input.evaluated_at - 86400\n}\n",
    )
    .unwrap();
    let policy = w.join("policy.toml");
    let (mut server, addr) =
        common::start_server(&w.join("data"), &["--policy", policy.to_str().unwrap()], Stdio::null());
    let mut digests = Vec::new();
    for name in ["keyless", "keyless-ci"] {
        let image = format!("docker://{addr}/{name}/app:v1");
        let (ok, out) = skopeo(&["copy", "--dest-tls-verify=false", &layout(w, name), &image]);
        assert!(ok, "{out}");
        let head = common::http(
            &addr,
            "HEAD",
            &format!("/v2/{name}/app/manifests/v1"),
            &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
            &[],
        )
        .unwrap();
        digests.push(head.header("docker-content-digest").unwrap().to_owned());
    }
    let sign = |repo: &str, digest: &str, email: &str, issuer: &str, variant: &str| {
        let (ok, out) = run(Command::new("python3")
            .arg(script)
            .args(["sign", &addr, repo, digest])
            .arg(w)
            .args([email, issuer, variant]));
        assert!(ok, "{out}");
    };
    let admitted = |repo: &str| skopeo(&["inspect", "--tls-verify=false", &format!("docker://{addr}/{repo}:v1")]).0;

    // Each of these is refused, and the image stays quarantined: another
    // subject, another issuer, a certificate expired when the entry was
    // logged, a tampered log entry, a log the trusted root does not list.
    // The denial names what was wrong with each.
    for (email, iss, variant, why) in [
        (
            "eve@example.test",
            issuer,
            "",
            "layer 0: keyless signature by eve@example.test from https://issuer.test is not a trusted identity",
        ),
        (
            subject,
            "https://evil.test",
            "",
            "layer 1: keyless signature by dev@example.test from https://evil.test is not a trusted identity",
        ),
        (
            subject,
            issuer,
            "expired",
            "layer 2: certificate not valid at the logged time",
        ),
        (
            subject,
            issuer,
            "bad-set",
            "layer 3: the signed entry timestamp does not verify with a trusted log key",
        ),
        (
            subject,
            issuer,
            "other-log",
            "layer 4: the signed entry timestamp does not verify with a trusted log key",
        ),
    ] {
        sign("keyless/app", &digests[0], email, iss, variant);
        let (ok, out) = skopeo(&[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{addr}/keyless/app:v1"),
        ]);
        assert!(
            !ok && out.contains(why),
            "{email} {iss} {variant}: expected {why:?} in {out}"
        );
    }
    // The right identity admits, the other rejected layers notwithstanding.
    sign("keyless/app", &digests[0], subject, issuer, "");
    assert!(admitted("keyless/app"));
    // A subject matched by the regex identity admits too; one outside it not.
    sign(
        "keyless-ci/app",
        &digests[1],
        "https://ci.test/other/x",
        "https://ci.test",
        "",
    );
    assert!(!admitted("keyless-ci/app"));
    sign(
        "keyless-ci/app",
        &digests[1],
        "https://ci.test/team/release",
        "https://ci.test",
        "",
    );
    assert!(admitted("keyless-ci/app"));

    // The decisions name the keyless identities as signers.
    let signers: Vec<String> = ledger_decisions(&addr)
        .into_iter()
        .filter(|d| d.verdict == vouch_ledger::entry::Verdict::Admit)
        .map(|d| d.signers.join(","))
        .collect();
    assert_eq!(
        signers,
        [
            format!("keyless:{issuer}|{subject}"),
            "keyless:https://ci.test|~https://ci\\.test/team/.*".to_owned()
        ]
    );

    // Keyless attestations in the tag scheme (cosign's keyless `attest`
    // before v3): an SPDX statement by the trusted identity is required.
    let (image, digest) = push_image(w, &addr, "keyless-sbom/app");
    sign("keyless-sbom/app", &digest, subject, issuer, "");
    let attest = |email: &str, variant: &str, why: &str| {
        let (ok, out) = run(Command::new("python3")
            .arg(script)
            .args(["attest", &addr, "keyless-sbom/app", &digest])
            .arg(w)
            .args([email, issuer, "https://spdx.dev/Document", variant]));
        assert!(ok, "{out}");
        let (ok, out) = skopeo(&["inspect", "--tls-verify=false", &image]);
        assert!(
            ok == why.is_empty() && out.contains(why),
            "{email} {variant}: expected {why:?}: {out}"
        );
    };
    attest("eve@example.test", "", "attestation 0: keyless https://spdx.dev/Document by eve@example.test from https://issuer.test is not a trusted identity");
    attest(
        subject,
        "expired",
        "attestation 1: keyless https://spdx.dev/Document attestation: certificate not valid at the logged time",
    );
    attest(subject, "", "");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn sigstore_bundles_pushed_as_referrers_sign_and_attest_as_cosign_v3_writes_them() {
    if !common::have_python_module("cryptography") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let keyless = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keyless_sign.py");
    let signer = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cosign_sign.py");
    assert!(run(Command::new("python3").arg(keyless).arg("setup").arg(w)).0);
    assert!(run(Command::new("python3").arg(signer).arg("keygen").arg(w)).0);
    let (issuer, subject) = ("https://issuer.test", "dev@example.test");
    let (sign_v1, spdx) = ("https://sigstore.dev/cosign/sign/v1", "https://spdx.dev/Document");
    std::fs::write(
        w.join("policy.toml"),
        format!(
            "version = 1\nname = \"bundles\"\ntrusted_root = \"trusted_root.json\"\n\
             [keys]\nsbom = \"independent.pub\"\n\
             [identities]\ndev = {{ issuer = \"{issuer}\", subject = \"{subject}\" }}\n\
             [[rule]]\nrepositories = \"all-keyless/**\"\nsignatures = {{ keys = [\"dev\"] }}\n\
             attestations = [{{ predicate_type = \"{spdx}\", keys = [\"dev\"] }}]\n\
             [[rule]]\nrepositories = \"**\"\nsignatures = {{ keys = [\"dev\"] }}\n\
             attestations = [{{ predicate_type = \"{spdx}\", keys = [\"sbom\"] }}]\n"
        ),
    )
    .unwrap();
    let policy = w.join("policy.toml");
    let (mut server, addr) =
        common::start_server(&w.join("data"), &["--policy", policy.to_str().unwrap()], Stdio::null());
    let (image, digest) = push_image(w, &addr, "v3/app");
    // The signer knows the size of the manifest it pushed (a quarantined
    // image is not readable without push rights): from the layout.
    let push = |args: &[&str]| {
        let size = layout_blob_size(w, args[3]);
        let (ok, out) = run(Command::new("python3")
            .arg(keyless)
            .args(args)
            .env("SUBJECT_SIZE", size.to_string()));
        assert!(ok, "{out}");
    };
    let denied_because = |why: &str| {
        let (ok, out) = skopeo(&["inspect", "--tls-verify=false", &image]);
        assert!(!ok && out.contains(why), "expected DENIED naming {why:?}: {out}");
    };
    let wd = w.to_str().unwrap();
    // Keyless signature bundles by another subject, or with a certificate
    // expired when logged, do not count.
    push(&[
        "bundle",
        &addr,
        "v3/app",
        &digest,
        wd,
        "eve@example.test",
        issuer,
        sign_v1,
    ]);
    denied_because("needs signatures by 1 of 1");
    let sign_keyless = |variant: &str| {
        push(&[
            "bundle", &addr, "v3/app", &digest, wd, subject, issuer, sign_v1, variant,
        ])
    };
    sign_keyless("expired");
    denied_because("certificate not valid at the logged time");
    // The log entry must come with a SET (it vouches for the time), and an
    // inclusion proof that comes with it must verify against a checkpoint
    // signed by the trusted log.
    sign_keyless("no-set");
    denied_because("no signed entry timestamp");
    sign_keyless("bad-proof");
    denied_because("the log inclusion proof does not verify");
    // The right identity signs; the SPDX attestation is still missing.
    push(&["bundle", &addr, "v3/app", &digest, wd, subject, issuer, sign_v1]);
    denied_because(&format!("needs a {spdx} attestation"));
    // A key-signed SPDX attestation bundle completes the policy.
    push(&["bundle-key", &addr, "v3/app", &digest, wd, spdx]);
    let (ok, out) = skopeo(&["inspect", "--tls-verify=false", &image]);
    assert!(ok, "{out}");

    // Where the attestation authority is the keyless identity too, a
    // key-signed SBOM does not do; the identity's own SBOM bundle does.
    let (image, digest) = push_image(w, &addr, "all-keyless/app");
    push(&[
        "bundle",
        &addr,
        "all-keyless/app",
        &digest,
        wd,
        subject,
        issuer,
        sign_v1,
    ]);
    push(&["bundle-key", &addr, "all-keyless/app", &digest, wd, spdx]);
    let (ok, out) = skopeo(&["inspect", "--tls-verify=false", &image]);
    assert!(!ok && out.contains(&format!("needs a {spdx} attestation")), "{out}");
    push(&["bundle", &addr, "all-keyless/app", &digest, wd, subject, issuer, spdx]);
    let (ok, out) = skopeo(&["inspect", "--tls-verify=false", &image]);
    assert!(ok, "{out}");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn a_rego_rule_decides_with_its_own_messages_on_the_real_server() {
    if std::env::var("CI").is_err() && Command::new("skopeo").arg("--version").output().is_err() {
        eprintln!("SKIPPED: skopeo is not installed");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::write(
        w.join("limits.rego"),
        "package vouch\n\n\
         deny contains msg if {\n  not startswith(input.repository, \"prod/\")\n  \
         msg := sprintf(\"%s: only prod/ repositories are admitted\", [input.repository])\n}\n\n\
         deny contains \"an image needs a config\" if { not input.manifest.config.digest }\n",
    )
    .unwrap();
    std::fs::write(
        w.join("policy.toml"),
        "version = 1\nname = \"rego\"\n[[rule]]\nrepositories = \"**\"\nrego = \"limits.rego\"\n",
    )
    .unwrap();
    let policy = w.join("policy.toml");
    let (mut server, addr) =
        common::start_server(&w.join("data"), &["--policy", policy.to_str().unwrap()], Stdio::null());
    for (repo, admitted) in [("dev/app", false), ("prod/app", true)] {
        let image = format!("docker://{addr}/{repo}:v1");
        let (ok, out) = skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            &layout(w, &repo.replace('/', "-")),
            &image,
        ]);
        assert!(ok, "{out}");
        let (ok, out) = skopeo(&["inspect", "--tls-verify=false", &image]);
        assert_eq!(ok, admitted, "{repo}: {out}");
        if !admitted {
            assert!(out.contains("dev/app: only prod/ repositories are admitted"), "{out}");
        }
    }
    server.kill().unwrap();
    server.wait().unwrap();
}
