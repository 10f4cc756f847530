//! Revocation of Notation signing chains, end to end: the real server
//! fetches OCSP responses and CRLs from an independent revocation service
//! (`tests/notation_revocation.py`, built with Python `cryptography` from
//! RFC 6960 and RFC 5280), as the Notary Project's trust policy asks
//! ("Certificate Revocation Evaluation"). A good status admits; a revoked
//! certificate, an unknown one, an unreachable responder without a CRL,
//! and a response signed by a key the CA never certified are denied,
//! each named. Answers are kept until their nextUpdate, and saved in the
//! data directory: a restarted server uses them, verified again, while the
//! service is down.

mod common;

use common::run;
use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

const SERVICE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/notation_revocation.py");
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The revocation service, killed when dropped.
struct Service(Child, String);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the service writing its PKI into `w`; waits for its port.
fn start_service(w: &Path) -> Service {
    let mut child = Command::new("python3")
        .args([SERVICE, "serve", w.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("service said {line:?}"));
    Service(child, format!("127.0.0.1:{port}"))
}

/// Requests the service has answered, by path.
fn hits(service: &Service, path: &str) -> u64 {
    let r = common::http(&service.1, "GET", "/hits", &[], &[]).unwrap();
    let counts: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    counts[path].as_u64().unwrap_or(0)
}

/// Pushes an image to `repo:v1` and signs it with `rev-<leaf>.crt`.
fn push_and_sign(addr: &str, w: &Path, repo: &str, leaf: &str) {
    push_and_sign_stamped(addr, w, repo, leaf, &[]);
}

/// [`push_and_sign`], with a timestamp from `tsa` (`rev-tsa` or
/// `rev-tsa-revoked`) if given.
fn push_and_sign_stamped(addr: &str, w: &Path, repo: &str, leaf: &str, tsa: &[&str]) {
    let (digest, size) = common::witnesses::push_tiny_image_sized(addr, repo, "v1", repo);
    let (ok, out) = run(Command::new("python3")
        .args([SERVICE, "sign", addr, repo, &digest, w.to_str().unwrap(), leaf])
        .args(tsa)
        .env("SUBJECT_SIZE", size.to_string())
        .env("SUBJECT_MEDIA_TYPE", MANIFEST));
    assert!(ok, "{leaf}: {out}");
}

fn pull(addr: &str, repo: &str) -> (u16, String) {
    common::pull_manifest(addr, repo, "v1")
}

/// A policy trusting rev-root.crt at the strict level, with `overrides`;
/// with `open`, images under `open/` need nothing (so that `vouch policy
/// check` can read them from the server).
fn policy(w: &Path, file: &str, overrides: &str, open: bool) -> std::path::PathBuf {
    let open = match open {
        true => "[[rule]]\nrepositories = \"open/**\"\n",
        false => "",
    };
    let text = format!(
        r#"version = 1
name = "notation-revocation"
[notation.acme]
ca = ["rev-root.crt"]
tsa = ["rev-root.crt"]
identities = ["x509.subject: C=US, ST=WA, O=acme-rockets.io"]
level = "strict"
{overrides}
{open}[[rule]]
repositories = "**"
signatures = {{ keys = ["acme"] }}
"#
    );
    std::fs::write(w.join(file), text).unwrap();
    w.join(file)
}

#[test]
fn signing_chains_are_checked_against_their_ocsp_responders_and_crls() {
    if !common::have_python_module("cryptography") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let service = start_service(w);
    let served = policy(w, "policy.toml", "", true);
    let (mut server, addr) =
        common::start_server(&w.join("data"), &["--policy", served.to_str().unwrap()], Stdio::null());
    for (leaf, admitted, why) in [
        ("good", true, ""),
        // The responder's answer, signed by the issuing CA.
        ("revoked", false, "was revoked at"),
        // CRL distribution points only.
        ("crl-good", true, ""),
        ("crl-revoked", false, "(keyCompromise)"),
        // OCSP unreachable: the CRL decides.
        ("ocsp-down", true, ""),
        // A responder signed by a key the CA delegated to, with ocsp-nocheck.
        ("delegated", true, ""),
        // A base CRL naming a delta CRL: the delta's entries count.
        ("delta-good", true, ""),
        ("delta-revoked", false, "(keyCompromise)"),
        ("unavailable", false, "has no revocation status available: OCSP http://"),
        ("unknown", false, "the responder does not know the certificate"),
        ("forged", false, "signed neither by the issuer"),
        // A good answer carrying another request's nonce (RFC 8954).
        ("replayed", false, "carries another request's nonce: a replayed answer"),
    ] {
        let repo = format!("team/{leaf}");
        push_and_sign(&addr, w, &repo, leaf);
        let (status, body) = pull(&addr, &repo);
        assert_eq!(status == 200, admitted, "{leaf}: {status} {body}");
        assert!(body.contains(why), "{leaf}: expected {why:?} in {body}");
        if !admitted {
            assert!(body.contains("revocation: x5c[0]"), "{leaf}: {body}");
        }
    }
    // A timestamp's authority is checked too: a TSA listed on its CA's CRL
    // makes no authentic timestamp (strict: the signature is refused).
    push_and_sign_stamped(&addr, w, "team/stamped", "good", &["rev-tsa"]);
    let (status, body) = pull(&addr, "team/stamped");
    assert_eq!(status, 200, "{body}");
    push_and_sign_stamped(&addr, w, "team/stamped-revoked", "good", &["rev-tsa-revoked"]);
    let (status, body) = pull(&addr, "team/stamped-revoked");
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("authentic timestamp: the timestamp's authority: x5c[0] (C=US, O=vouch revocation test, CN=vouch revocation rev-tsa-revoked) was revoked at"),
        "{body}"
    );

    // The intermediate's own CRL was read (root to leaf), and the good
    // leaf's answer is kept: another image signed by it costs no fetch.
    assert!(hits(&service, "/root.crl") >= 1);
    assert!(hits(&service, "/delta.crl") >= 1);
    let asked = hits(&service, "/ocsp");
    push_and_sign(&addr, w, "team/good-again", "good");
    assert_eq!(pull(&addr, "team/good-again").0, 200);
    assert_eq!(hits(&service, "/ocsp"), asked, "the kept OCSP answer is used");

    // `vouch policy check` fetches as the server does (here of images the
    // server holds under open/); under override revocation = "log" an
    // unavailable status is only noted.
    push_and_sign(&addr, w, "open/revoked", "revoked");
    push_and_sign(&addr, w, "open/unavailable", "unavailable");
    let check = |policy: &Path, reference: &str| common::policy_check(&addr, policy, reference);
    let strict = policy(w, "policy-strict.toml", "", false);
    let (code, out) = check(&strict, "open/revoked:v1");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("verdict: DENY") && out.contains("was revoked at"), "{out}");
    let (code, out) = check(&strict, "open/unavailable:v1");
    assert_eq!(code, Some(1), "{out}");
    let logged = policy(w, "policy-log.toml", r#"override = { revocation = "log" }"#, false);
    let (code, out) = check(&logged, "open/unavailable:v1");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("verdict: ADMIT") && out.contains("has no revocation status available"),
        "{out}"
    );
    server.kill().unwrap();
    server.wait().unwrap();

    // Answers are saved in the data directory: after a restart, with the
    // revocation service gone, chains checked before are checked from
    // them (each verified again); a chain never answered has no status.
    let (mut server, addr) =
        common::start_server(&w.join("data"), &["--policy", served.to_str().unwrap()], Stdio::null());
    drop(service);
    for (leaf, admitted) in [
        ("good", true),
        ("crl-good", true),
        ("delta-good", true),
        ("crl-revoked", false),
    ] {
        let repo = format!("restarted/{leaf}");
        push_and_sign(&addr, w, &repo, leaf);
        let (status, body) = pull(&addr, &repo);
        assert_eq!(status == 200, admitted, "{leaf} after a restart: {status} {body}");
    }
    push_and_sign(&addr, w, "restarted/unavailable", "unavailable");
    let (status, body) = pull(&addr, "restarted/unavailable");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("has no revocation status available"), "{body}");
    // Saved answers that do not verify are not used: fetched anew (here
    // from no one), the status is unavailable. A byte early in each one's
    // signed part (after the 12-byte header) is flipped.
    for kind in ["ocsp", "crl"] {
        for file in std::fs::read_dir(w.join("data/revocation").join(kind)).unwrap() {
            let path = file.unwrap().path();
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[12 + 40] ^= 1;
            std::fs::write(&path, bytes).unwrap();
        }
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let (mut server, addr) =
        common::start_server(&w.join("data"), &["--policy", served.to_str().unwrap()], Stdio::null());
    push_and_sign(&addr, w, "tampered/good", "good");
    let (status, body) = pull(&addr, "tampered/good");
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("has no revocation status available: CRL http://"),
        "{body}"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}
