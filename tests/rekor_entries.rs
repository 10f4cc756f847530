//! Rekor entry kinds cosign has produced, end to end against the real
//! server. Keyless Sigstore bundles logged in Rekor v2: bundles made by an independent signer written from the
//! Sigstore specs (`tests/rekor_v2_sign.py`), with a Rekor v2 `dsse` 0.0.2
//! entry, an inclusion proof to a checkpoint signed (C2SP signed note) by a
//! test log, and an RFC 3161 timestamp of the signature made by a real
//! timestamp authority, `openssl ts`. Each broken part is refused with its
//! reason and the image stays quarantined; the sound bundle admits it.
//! And keyless attestations logged as Rekor v1 `intoto` 0.0.1 entries, as
//! cosign wrote them in 2023-2024 (`tests/keyless_sign.py`).

mod common;

use common::run;
use std::process::{Command, Stdio};

const V2_SIGNER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rekor_v2_sign.py");
const ISSUER: &str = "https://issuer.test";
const SUBJECT: &str = "dev@example.test";

/// Pushes a small image to `<repo>:v1`, has the Rekor v2 signer push a
/// signature bundle for it (`variant` broken, or sound if empty), and
/// returns the answer to a pull of it.
fn pushed_and_bundled(addr: &str, w: &std::path::Path, repo: &str, variant: &str) -> common::Resp {
    pushed_and_signed(addr, w, repo, "bundle", variant)
}

/// [`pushed_and_bundled`] for either kind of bundle: `bundle` (a DSSE
/// envelope, a `dsse` entry) or `message` (a message signature over the
/// manifest, a `hashedrekord` entry).
fn pushed_and_signed(addr: &str, w: &std::path::Path, repo: &str, kind: &str, variant: &str) -> common::Resp {
    let digest = common::witnesses::push_tiny_image(addr, repo, "v1", repo);
    let accept = ("Accept", "application/vnd.oci.image.manifest.v1+json");
    let path = format!("/v2/{repo}/manifests/v1");
    let head = common::http(addr, "HEAD", &path, &[accept], &[]).unwrap();
    // The signer cannot read a quarantined manifest: it is told its size.
    let size = head.header("content-length").unwrap().to_owned();
    let wd = w.to_str().unwrap();
    let sign_v1 = "https://sigstore.dev/cosign/sign/v1";
    let mut args = vec![kind, addr, repo, &digest, wd, SUBJECT, ISSUER];
    if kind == "bundle" {
        args.push(sign_v1);
    }
    if !variant.is_empty() {
        args.push(variant);
    }
    let (ok, out) = run(Command::new("python3")
        .arg(V2_SIGNER)
        .args(&args)
        .env("SUBJECT_SIZE", &size));
    assert!(ok, "{variant}: {out}");
    common::http(addr, "GET", &path, &[accept], &[]).unwrap()
}

/// A test Sigstore of the Rekor v2 era in `w` (the independent signer's
/// `setup`), and a server whose policy `name` trusts its one identity.
fn v2_server(w: &std::path::Path, name: &str) -> (std::process::Child, String) {
    let (ok, out) = run(Command::new("python3").arg(V2_SIGNER).arg("setup").arg(w));
    assert!(ok, "{out}");
    std::fs::write(
        w.join("policy.toml"),
        format!(
            "version = 1\nname = \"{name}\"\ntrusted_root = \"trusted_root.json\"\n\
             [identities]\ndev = {{ issuer = \"{ISSUER}\", subject = \"{SUBJECT}\" }}\n\
             [[rule]]\nrepositories = \"**\"\nsignatures = {{ keys = [\"dev\"] }}\n"
        ),
    )
    .unwrap();
    let policy = w.join("policy.toml");
    common::start_server(&w.join("data"), &["--policy", policy.to_str().unwrap()], Stdio::null())
}

#[test]
fn rekor_v2_bundles_with_rfc3161_timestamps_admit_and_each_broken_part_is_refused() {
    if !common::have_python_module("cryptography") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (mut server, addr) = v2_server(w, "rekor-v2");
    // One image per bundle, so that each denial names exactly its problem
    // (a denial names at most five evidence problems).
    let push = |repo: &str, variant: &str| pushed_and_bundled(&addr, w, repo, variant);
    for (variant, why) in [
        ("no-timestamp", "needs an RFC 3161 timestamp of the signature"),
        ("untrusted-tsa", "not signed by a trusted timestamp authority"),
        ("expired", "certificate not valid at the logged time"),
        ("bad-proof", "inclusion proof does not verify"),
        ("bad-checkpoint", "not one a Rekor v2 log of the trusted root signed"),
        ("wrong-entry", "the log entry does not match this signature"),
    ] {
        let r = push(&format!("v2/{variant}"), variant);
        let body = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, 403, "{variant}: {body}");
        assert!(body.contains(why), "{variant}: expected {why:?} in {body}");
    }
    let r = push("v2/sound", "");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    server.kill().unwrap();
    server.wait().unwrap();
}

/// Message signatures over the image manifest itself, logged in Rekor v2
/// as `hashedrekord` 0.0.2 entries: the sound one signs the image; each
/// broken part is refused with its reason, and a sound signature of other
/// bytes is not evidence about this image at all.
#[test]
fn rekor_v2_hashedrekord_message_signatures_admit_and_each_broken_part_is_refused() {
    if !common::have_python_module("cryptography") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (mut server, addr) = v2_server(w, "rekor-v2-messages");
    for (variant, why) in [
        ("no-timestamp", "needs an RFC 3161 timestamp of the signature"),
        ("untrusted-tsa", "not signed by a trusted timestamp authority"),
        ("expired", "certificate not valid at the logged time"),
        ("bad-proof", "inclusion proof does not verify"),
        ("bad-checkpoint", "not one a Rekor v2 log of the trusted root signed"),
        ("wrong-entry", "the log entry does not match this signature"),
        ("bad-signature", "signature does not verify"),
        ("other-digest", "needs signatures by 1 of 1 trusted keys, has 0"),
    ] {
        let r = pushed_and_signed(&addr, w, &format!("msg/{variant}"), "message", variant);
        let body = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, 403, "{variant}: {body}");
        assert!(body.contains(why), "{variant}: expected {why:?} in {body}");
    }
    let r = pushed_and_signed(&addr, w, "msg/sound", "message", "");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn keyless_attestations_logged_as_intoto_v001_entries_count() {
    if !common::have_python_module("cryptography") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keyless_sign.py");
    let (ok, out) = run(Command::new("python3").arg(script).arg("setup").arg(w));
    assert!(ok, "{out}");
    let (issuer, subject, spdx) = ("https://issuer.test", "dev@example.test", "https://spdx.dev/Document");
    std::fs::write(
        w.join("policy.toml"),
        format!(
            "version = 1\nname = \"intoto\"\ntrusted_root = \"trusted_root.json\"\n\
             [identities]\ndev = {{ issuer = \"{issuer}\", subject = \"{subject}\" }}\n\
             [[rule]]\nrepositories = \"**\"\nsignatures = {{ keys = [\"dev\"] }}\n\
             attestations = [{{ predicate_type = \"{spdx}\", keys = [\"dev\"] }}]\n"
        ),
    )
    .unwrap();
    let policy = w.join("policy.toml");
    let (mut server, addr) =
        common::start_server(&w.join("data"), &["--policy", policy.to_str().unwrap()], Stdio::null());
    let digest = common::witnesses::push_tiny_image(&addr, "sbom/app", "v1", "intoto 0.0.1");
    let accept = ("Accept", "application/vnd.oci.image.manifest.v1+json");
    let status = || common::http(&addr, "GET", "/v2/sbom/app/manifests/v1", &[accept], &[]).unwrap();
    let wd = w.to_str().unwrap();
    let (ok, out) = run(Command::new("python3")
        .arg(script)
        .args(["sign", &addr, "sbom/app", &digest, wd, subject, issuer, ""]));
    assert!(ok, "{out}");
    let r = status();
    assert!(
        r.status == 403 && String::from_utf8_lossy(&r.body).contains(spdx),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let (ok, out) = run(Command::new("python3").arg(script).args([
        "attest",
        &addr,
        "sbom/app",
        &digest,
        wd,
        subject,
        issuer,
        spdx,
        "intoto-v001",
    ]));
    assert!(ok, "{out}");
    let r = status();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn a_policy_can_require_timestamps_by_more_authorities() {
    if !common::have_python_module("cryptography") {
        return;
    }
    use base64::Engine as _;
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (ok, out) = run(Command::new("python3").arg(V2_SIGNER).arg("setup").arg(w));
    assert!(ok, "{out}");
    // The root also lists the second authority (whose timestamps the
    // signer does not add): two authorities, one timestamp.
    let der = |name: &str| {
        let pem = std::fs::read(w.join(name)).unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        base64::engine::general_purpose::STANDARD.encode(block.contents)
    };
    let root_path = w.join("trusted_root.json");
    let mut root: serde_json::Value = serde_json::from_slice(&std::fs::read(&root_path).unwrap()).unwrap();
    let other = serde_json::json!({
        "subject": {"organization": "vouch test", "commonName": "other"},
        "certChain": {"certificates": [{"rawBytes": der("other-tsa.pem")}, {"rawBytes": der("other-tsa-root.pem")}]},
        "validFor": {"start": "2020-01-01T00:00:00Z"}
    });
    root["timestampAuthorities"].as_array_mut().unwrap().push(other);
    std::fs::write(&root_path, serde_json::to_vec(&root).unwrap()).unwrap();
    let (issuer, subject) = (ISSUER, SUBJECT);
    let policy = |timestamps: usize| {
        format!(
            "version = 1\nname = \"two-tsas\"\ntrusted_root = \"trusted_root.json\"\n\
             [sigstore]\ntimestamps = {timestamps}\n\
             [identities]\ndev = {{ issuer = \"{issuer}\", subject = \"{subject}\" }}\n\
             [[rule]]\nrepositories = \"**\"\nsignatures = {{ keys = [\"dev\"] }}\n"
        )
    };
    // More than the root lists is refused when the policy loads.
    std::fs::write(w.join("three.toml"), policy(3)).unwrap();
    let err = vouch::policy::Policy::load(&w.join("three.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[sigstore] timestamps = 3: give between 1 and the 2"),
        "{err}"
    );
    std::fs::write(w.join("policy.toml"), policy(2)).unwrap();
    let policy = w.join("policy.toml");
    let (mut server, addr) =
        common::start_server(&w.join("data"), &["--policy", policy.to_str().unwrap()], Stdio::null());
    let r = pushed_and_bundled(&addr, w, "two/app", "");
    let body = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, 403, "{body}");
    assert!(
        body.contains("timestamps by 1 distinct trusted authorities verify; the policy requires 2"),
        "{body}"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}
