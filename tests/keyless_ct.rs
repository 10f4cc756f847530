//! Certificate transparency for keyless signatures, against the real
//! server: the independent keyless signer (`tests/keyless_sign.py`) embeds
//! an RFC 6962 SCT from a test CT log listed in the trusted root's
//! `ctlogs`, as Fulcio does. A certificate with no SCT, with an SCT over
//! other bytes, or with one from a log the root does not list is refused
//! with its reason; the sound one admits. (Every other keyless test runs
//! with SCTs too, so they are checked on every keyless path.)

mod common;

use common::run;
use std::process::{Command, Stdio};

#[test]
fn keyless_certificates_need_an_sct_from_a_trusted_ct_log() {
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
            "version = 1\nname = \"ct\"\ntrusted_root = \"trusted_root.json\"\n\
             [identities]\ndev = {{ issuer = \"{issuer}\", subject = \"{subject}\" }}\n\
             [[rule]]\nrepositories = \"**\"\nsignatures = {{ keys = [\"dev\"] }}\n"
        ),
    )
    .unwrap();
    let policy = w.join("policy.toml");
    let (mut server, addr) =
        common::start_server(&w.join("data"), &["--policy", policy.to_str().unwrap()], Stdio::null());
    let accept = ("Accept", "application/vnd.oci.image.manifest.v1+json");
    let sign = |repo: &str, variant: &str| {
        let digest = common::witnesses::push_tiny_image(&addr, repo, "v1", repo);
        let wd = w.to_str().unwrap();
        let (ok, out) = run(Command::new("python3")
            .arg(script)
            .args(["sign", &addr, repo, &digest, wd, subject, issuer, variant]));
        assert!(ok, "{variant}: {out}");
        common::http(&addr, "GET", &format!("/v2/{repo}/manifests/v1"), &[accept], &[]).unwrap()
    };
    for (variant, why) in [
        ("no-sct", "carries no signed certificate timestamp"),
        (
            "bad-sct",
            "no signed certificate timestamp by a certificate transparency log of the trusted root verifies",
        ),
        (
            "untrusted-sct",
            "no signed certificate timestamp by a certificate transparency log of the trusted root verifies",
        ),
    ] {
        let r = sign(&format!("ct/{variant}"), variant);
        let body = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, 403, "{variant}: {body}");
        assert!(body.contains(why), "{variant}: expected {why:?} in {body}");
    }
    let r = sign("ct/sound", "");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    server.kill().unwrap();
    server.wait().unwrap();
}
