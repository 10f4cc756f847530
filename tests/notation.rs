//! Notation (Notary Project) signatures end to end against the real server,
//! made by an independent signer written from the Notary Project
//! specifications (`tests/notation_sign.py`, Python `cryptography` and
//! `openssl ts`) with certificates from its own test CA. The shipped
//! example policy admits an image once a sound signature arrives, through
//! the referrers API or the referrers tag schema; every broken signature is
//! refused naming the check it failed and leaves the image quarantined.
//! A second policy exercises trusted subjects, the signing-authority
//! scheme, RFC 3161 timestamps and the permissive level.

mod common;

use common::run;
use std::path::Path;
use std::process::{Command, Stdio};

const SIGNER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/notation_sign.py");
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Signs `repo@digest` with the independent signer; returns the signature
/// manifest's digest.
fn sign(addr: &str, w: &Path, repo: &str, digest: &str, size: usize, variant: &str, push: &str) -> String {
    sign_as(addr, w, (repo, digest, size), variant, push, "jws")
}

/// [`sign`] in a given envelope format: `jws` or `cose`.
fn sign_as(
    addr: &str,
    w: &Path,
    (repo, digest, size): (&str, &str, usize),
    variant: &str,
    push: &str,
    envelope: &str,
) -> String {
    let wd = w.to_str().unwrap();
    let (ok, out) = run(Command::new("python3")
        .arg(SIGNER)
        .args([
            "sign",
            addr,
            repo,
            digest,
            wd,
            "--variant",
            variant,
            "--push",
            push,
            "--envelope",
            envelope,
        ])
        .env("SUBJECT_SIZE", size.to_string())
        .env("SUBJECT_MEDIA_TYPE", MANIFEST));
    assert!(ok, "{variant} ({envelope}): {out}");
    out.lines().rev().find(|l| l.starts_with("sha256:")).unwrap().to_owned()
}

/// `vouch serve` under `policy`, written to `w/policy.toml`.
fn serve_policy(w: &Path, policy: &str) -> (std::process::Child, String) {
    std::fs::write(w.join("policy.toml"), policy).unwrap();
    let path = w.join("policy.toml");
    common::start_server(&w.join("data"), &["--policy", path.to_str().unwrap()], Stdio::null())
}

/// Pushes a small image to `<repo>:v1`: its digest and manifest size.
fn push_image(addr: &str, repo: &str) -> (String, usize) {
    common::witnesses::push_tiny_image_sized(addr, repo, "v1", repo)
}

fn pull(addr: &str, repo: &str) -> (u16, String) {
    common::pull_manifest(addr, repo, "v1")
}

fn pki(w: &Path) {
    let (ok, out) = run(Command::new("python3").arg(SIGNER).arg("pki").arg(w));
    assert!(ok, "{out}");
}

/// The independent signer checks its own envelopes with its own verifier
/// (tests/notation_sign_selftest.py), so that a disagreement with vouch
/// points at one side.
#[test]
fn the_independent_signer_passes_its_self_tests() {
    if !common::have_python_module("cryptography") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    pki(work.path());
    let (ok, out) = run(Command::new("python3").arg(SIGNER).arg("selftest").arg(work.path()));
    assert!(ok && out.contains("all checks passed"), "{out}");
}

#[test]
fn the_example_policy_admits_notation_signatures_under_its_ca_and_refuses_each_broken_one() {
    if !common::have_python_module("cryptography") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    pki(w);
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/examples/policy-notation.toml");
    std::fs::copy(example, w.join("policy-notation.toml")).unwrap();
    let policy = w.join("policy-notation.toml");
    let (mut server, addr) =
        common::start_server(&w.join("data"), &["--policy", policy.to_str().unwrap()], Stdio::null());

    for (variant, why) in [
        ("untrusted", "is not in acme's ca trust store"),
        ("expired", "no trusted timestamp proves an earlier signing time"),
        ("tampered", "integrity: the signature does not verify"),
        ("tampered-annotation", "integrity: the signature does not verify"),
        ("sig-expired", "expiry: the signature expired"),
        ("unknown-crit", "io.cncf.example.unknown\\\" is not understood"),
        // Signed payload names another image: not evidence about this one.
        ("other-image", "needs signatures by 1 of 1 trusted keys, has 0"),
    ] {
        let repo = format!("team/{variant}");
        let (digest, size) = push_image(&addr, &repo);
        assert_eq!(pull(&addr, &repo).0, 403, "{variant}: unsigned, quarantined");
        sign(&addr, w, &repo, &digest, size, variant, "referrers");
        let (status, body) = pull(&addr, &repo);
        assert_eq!(status, 403, "{variant}: {body}");
        assert!(body.contains(why), "{variant}: expected {why:?} in {body}");
        // The missing evidence, a sound signature, admits it.
        sign(&addr, w, &repo, &digest, size, "ok", "referrers");
        let (status, body) = pull(&addr, &repo);
        assert_eq!(status, 200, "{variant} then ok: {body}");
    }
    // COSE envelopes (application/cose): the same checks, the same reasons.
    for (variant, why) in [
        ("untrusted", "is not in acme's ca trust store"),
        ("expired", "no trusted timestamp proves an earlier signing time"),
        ("tampered", "integrity: the signature does not verify"),
        ("sig-expired", "expiry: the signature expired"),
        ("unknown-crit", "io.cncf.example.unknown\\\" is not understood"),
    ] {
        let repo = format!("cose/{variant}");
        let (digest, size) = push_image(&addr, &repo);
        sign_as(&addr, w, (&repo, &digest, size), variant, "referrers", "cose");
        let (status, body) = pull(&addr, &repo);
        assert_eq!(status, 403, "COSE {variant}: {body}");
        assert!(body.contains(why), "COSE {variant}: expected {why:?} in {body}");
    }
    for variant in ["ok", "rsa"] {
        let repo = format!("cose/{variant}-signed");
        let (digest, size) = push_image(&addr, &repo);
        sign_as(&addr, w, (&repo, &digest, size), variant, "referrers", "cose");
        let (status, body) = pull(&addr, &repo);
        assert_eq!(status, 200, "COSE {variant}: {body}");
    }
    for (variant, push) in [("ok", "referrers"), ("rsa", "referrers"), ("ok", "tag-schema")] {
        let repo = format!("team/{variant}-{push}");
        let (digest, size) = push_image(&addr, &repo);
        sign(&addr, w, &repo, &digest, size, variant, push);
        let (status, body) = pull(&addr, &repo);
        assert_eq!(status, 200, "{variant} by {push}: {body}");
        // The signature is served as a referrer of the admitted image.
        let r = common::http(&addr, "GET", &format!("/v2/{repo}/referrers/{digest}"), &[], &[]).unwrap();
        let index: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let types: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["artifactType"].as_str())
            .collect();
        assert!(types.contains(&"application/vnd.cncf.notary.signature"), "{index}");
    }
    // `vouch policy check` reads the same signatures over the OCI API and
    // comes to the same verdicts, without admitting anything.
    let check = |policy: &Path, reference: &str| common::policy_check(&addr, policy, reference);
    let (code, out) = check(&policy, "team/ok-referrers:v1");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("verdict: ADMIT") && out.contains("signed:  notation:sha256:"),
        "{out}"
    );
    // Under a policy that trusts another CA, the same signature is not enough.
    let other = std::fs::read_to_string(&policy)
        .unwrap()
        .replace("notation-ca.crt", "other-ca.crt");
    std::fs::write(w.join("policy-other.toml"), other).unwrap();
    let (code, out) = check(&w.join("policy-other.toml"), "team/ok-referrers:v1");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("verdict: DENY") && out.contains("is not in acme's ca trust store"),
        "{out}"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn subjects_signing_authorities_timestamps_and_levels_follow_the_trust_policy() {
    if !common::have_python_module("cryptography") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    pki(w);
    let (mut server, addr) = serve_policy(
        w,
        r#"version = 1
name = "notation-subjects"
[notation.acme]
ca = ["notation-ca.crt"]
signing_authority = ["sa-ca.crt"]
tsa = ["tsa-ca.crt", "tsa2-root.crt"]
identities = ["x509.subject: C=US, ST=WA, O=acme-rockets.io"]
[notation.lax]
ca = ["notation-ca.crt"]
identities = ["x509.subject: C=US, ST=WA, O=acme-rockets.io"]
level = "permissive"
[[rule]]
repositories = "lax/**"
signatures = { keys = ["lax"] }
[[rule]]
repositories = "**"
signatures = { keys = ["acme"] }
"#,
    );
    for (repo, variant, admitted, why) in [
        (
            "team/wrong-subject",
            "wrong-subject",
            false,
            "is not a trusted identity of acme",
        ),
        ("team/signing-authority", "signing-authority", true, ""),
        ("team/timestamped", "timestamped", true, ""),
        ("cose/signing-authority", "signing-authority", true, ""),
        ("cose/timestamped", "timestamped", true, ""),
        // A TSA certificate issued by an intermediate the token carries, as
        // public timestamp authorities' are.
        ("team/timestamped-chain", "timestamped-chain", true, ""),
        ("cose/timestamped-chain", "timestamped-chain", true, ""),
        (
            "cose/wrong-subject",
            "wrong-subject",
            false,
            "is not a trusted identity of acme",
        ),
        // Permissive logs an expired certificate and a passed expiry.
        ("lax/expired", "expired", true, ""),
        ("lax/sig-expired", "sig-expired", true, ""),
        // Permissive still enforces authenticity and integrity.
        ("lax/untrusted", "untrusted", false, "is not in lax's ca trust store"),
        ("lax/tampered", "tampered", false, "integrity"),
    ] {
        let (digest, size) = push_image(&addr, repo);
        let envelope = if repo.starts_with("cose/") { "cose" } else { "jws" };
        let signature = sign_as(&addr, w, (repo, &digest, size), variant, "referrers", envelope);
        let (status, body) = pull(&addr, repo);
        assert_eq!(status == 200, admitted, "{repo}: {status} {body}");
        assert!(body.contains(why), "{repo}: expected {why:?} in {body}");
        if let Some(root) = [("timestamped", "tsa-ca.crt"), ("timestamped-chain", "tsa2-root.crt")]
            .iter()
            .find_map(|(v, root)| (*v == variant).then_some(*root))
        {
            timestamp_outlives_the_certificate(&addr, w, (repo, &digest, size), &signature, root);
        }
    }
    server.kill().unwrap();
    server.wait().unwrap();
}

/// The timestamped signature, read back from the registry, verifies eleven
/// years from now, after its certificate (valid ten) has expired: the
/// timestamp proves it was made while the certificate was valid. Without
/// the `tsa` store the same envelope is refused at that time.
fn timestamp_outlives_the_certificate(
    addr: &str,
    w: &Path,
    (repo, image, size): (&str, &str, usize),
    signature: &str,
    tsa_root: &str,
) {
    let get = |path: String| {
        let r = common::http(addr, "GET", &path, &[("Accept", MANIFEST)], &[]).unwrap();
        assert_eq!(r.status, 200, "{path}");
        r.body
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&get(format!("/v2/{repo}/manifests/{signature}"))).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let envelope = get(format!("/v2/{repo}/blobs/{layer}"));
    let certs = |f: &str| vouch::notation::trust::read_certificates(&std::fs::read(w.join(f)).unwrap()).unwrap();
    use vouch::notation::trust::{Actions, Identity, Level};
    let trust = |tsa: Vec<Vec<u8>>| vouch::notation::TrustPolicy {
        name: "acme".into(),
        ca: certs("notation-ca.crt"),
        signing_authority: Vec::new(),
        tsa,
        identities: vec![Identity::Any],
        level: Level::Strict,
        actions: Actions::of(Level::Strict, &Default::default()).unwrap(),
    };
    let target = vouch::notation::Target {
        media_type: MANIFEST.into(),
        digest: image.into(),
        size: size as u64,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let later = now + 11 * 365 * 86_400;
    let v = vouch::notation::verify(&envelope, &target, &trust(certs(tsa_root)), later).unwrap();
    let stamped = v.signed_at.unwrap();
    assert!((now - 600..=now).contains(&stamped), "timestamp {stamped}, now {now}");
    let e = vouch::notation::verify(&envelope, &target, &trust(Vec::new()), later).unwrap_err();
    assert!(e.to_string().contains("no trusted timestamp"), "{e}");
    // A timestamp authority not in the store does not count either.
    let e = vouch::notation::verify(&envelope, &target, &trust(certs("other-ca.crt")), later).unwrap_err();
    assert!(e.to_string().contains("timestamp"), "{e}");
}

const P521: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/notation_p521.py");

/// ES512 signatures (P-521 keys, which ring lacks) from the independent
/// signer: a P-521 signer under the P-384 intermediate, and one under a
/// P-521 root, in JWS and COSE, admitted where their root is trusted and
/// refused where it is not.
#[test]
fn p521_signers_and_roots_are_verified() {
    if !common::have_python_module("cryptography") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (ok, out) = run(Command::new("python3").arg(P521).arg("pki").arg(w));
    assert!(ok, "{out}");
    let (mut server, addr) = serve_policy(
        w,
        r#"version = 1
name = "notation-p521"
[notation.acme]
ca = ["notation-ca.crt"]
identities = ["*"]
[notation.p521]
ca = ["p521-root.crt"]
identities = ["x509.subject: C=US, ST=WA, O=acme-rockets.io"]
[[rule]]
repositories = "p521/**"
signatures = { keys = ["p521"] }
[[rule]]
repositories = "**"
signatures = { keys = ["acme"] }
"#,
    );
    for (repo, variant, envelope, why) in [
        ("team/es512", "p521", "jws", ""),
        ("team/es512-cose", "p521", "cose", ""),
        ("p521/es512", "p521-ca", "jws", ""),
        ("p521/es512-cose", "p521-ca", "cose", ""),
        ("team/p521-root", "p521-ca", "jws", "is not in acme's ca trust store"),
    ] {
        let (digest, size) = push_image(&addr, repo);
        let (ok, out) = run(Command::new("python3")
            .args([
                P521,
                "sign",
                &addr,
                repo,
                &digest,
                w.to_str().unwrap(),
                variant,
                envelope,
            ])
            .env("SUBJECT_SIZE", size.to_string())
            .env("SUBJECT_MEDIA_TYPE", MANIFEST));
        assert!(ok, "{repo}: {out}");
        let (status, body) = pull(&addr, repo);
        assert_eq!(status == 200, why.is_empty(), "{repo}: {status} {body}");
        assert!(body.contains(why), "{repo}: expected {why:?} in {body}");
    }
    server.kill().unwrap();
    server.wait().unwrap();
}
