//! `vouch keygen` / `vouch sign` against the real `vouch serve`, with a
//! second, independent signer (Python's `cryptography`, sharing no code with
//! vouch) appending to the same `.sig` manifest. vouch's verifier must accept
//! both, refuse an untrusted key, and refuse a signature for another image.

mod common;

use std::process::{Command, Stdio};
use vouch::registry::names::parse_digest;
use vouch::signature::{signature_tag, verify_layers, PublicKey, SignatureLayer, SIGNATURE_ANNOTATION};

fn vouch(args: &[&str]) -> (bool, String) {
    common::run(Command::new(env!("CARGO_BIN_EXE_vouch")).args(args))
}

/// Pushes a tiny image (config + layer + manifest) and returns its digest.
fn push_image(addr: &str, repo: &str, content: &[u8]) -> String {
    let push = |bytes: &[u8]| {
        let d = vouch::registry::digest::sha256_of(bytes).to_string();
        let r = common::http(
            addr,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            &[],
            bytes,
        )
        .unwrap();
        assert_eq!(r.status, 201);
        d
    };
    let (c, l) = (push(b"{}"), push(content));
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{l}","size":{}}}]}}"#,
        content.len()
    );
    let ct = ("Content-Type", "application/vnd.oci.image.manifest.v1+json");
    let r = common::http(addr, "PUT", &format!("/v2/{repo}/manifests/v1"), &[ct], m.as_bytes()).unwrap();
    assert_eq!(r.status, 201);
    r.header("docker-content-digest").unwrap().to_owned()
}

/// The layers of the image's `.sig` manifest, with their payloads.
fn signature_layers(addr: &str, repo: &str, image: &str) -> Vec<SignatureLayer> {
    let tag = signature_tag(&parse_digest(image).unwrap());
    let accept = ("Accept", "application/vnd.oci.image.manifest.v1+json");
    let r = common::http(addr, "GET", &format!("/v2/{repo}/manifests/{tag}"), &[accept], &[]).unwrap();
    assert_eq!(r.status, 200, "no signature manifest at {tag}");
    let m: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let d = l["digest"].as_str().unwrap();
            let blob = common::http(addr, "GET", &format!("/v2/{repo}/blobs/{d}"), &[], &[]).unwrap();
            SignatureLayer {
                signature: l["annotations"][SIGNATURE_ANNOTATION].as_str().map(str::to_owned),
                payload: blob.body,
            }
        })
        .collect()
}

#[test]
fn vouch_and_an_independent_signer_sign_the_same_image_and_vouch_verifies_both() {
    if !common::have_python_module("cryptography") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let (mut server, addr) = common::start_server(data.path(), &[], Stdio::null());
    let work = tempfile::tempdir().unwrap();
    let image = push_image(&addr, "signed/app", b"layer to be signed");

    let prefix = work.path().join("team");
    let (ok, out) = vouch(&["keygen", "--out", prefix.to_str().unwrap()]);
    assert!(ok, "{out}");
    let (ok, out) = vouch(&["keygen", "--out", prefix.to_str().unwrap()]);
    assert!(!ok && out.contains("refusing to overwrite"), "{out}");
    let key = prefix.with_extension("key");
    // The open policy admitted the image at push, so the .sig manifest
    // already holds vouch's countersignature; vouch sign appends to it.
    let (ok, out) = vouch(&["sign", &format!("{addr}/signed/app:v1"), "--key", key.to_str().unwrap()]);
    assert!(ok && out.contains("2 signature(s)"), "{out}");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cosign_sign.py");
    let py = Command::new("python3")
        .arg(script)
        .args([&addr, "signed/app", &image])
        .arg(work.path())
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "independent signer: {}",
        String::from_utf8_lossy(&py.stderr)
    );
    let independent_pub = String::from_utf8(py.stdout).unwrap().trim().to_owned();

    // The team's and the independent signature, and one countersignature:
    // the image was admitted at its push (the open policy) and the
    // signatures changed nothing about that, so no new decision was made
    // and vouch's layer stays where it was.
    let layers = signature_layers(&addr, "signed/app", &image);
    assert_eq!(layers.len(), 3, "the independent signature was appended");
    let ours = PublicKey::from_pem(&std::fs::read_to_string(prefix.with_extension("pub")).unwrap()).unwrap();
    let theirs = PublicKey::from_pem(&std::fs::read_to_string(&independent_pub).unwrap()).unwrap();
    let admission = PublicKey::from_pem(&std::fs::read_to_string(data.path().join("admission.pub")).unwrap()).unwrap();
    let digest = parse_digest(&image).unwrap();
    let (signers, problems) = verify_layers(&digest, &layers, &[ours.clone(), theirs.clone()]);
    assert_eq!((signers.len(), problems.len()), (2, 1), "{problems:?}");
    assert_eq!(verify_layers(&digest, &layers, &[admission]).0.len(), 1);
    // Trusting only one key: one signer, the other layers untrusted.
    let (signers, problems) = verify_layers(&digest, &layers, &[theirs]);
    assert_eq!((signers.len(), problems.len()), (1, 2));
    // The same signatures do not sign another image.
    let other = parse_digest(&push_image(&addr, "signed/app", b"another image")).unwrap();
    assert!(verify_layers(&other, &layers, &[ours]).0.is_empty());
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn an_rsa_key_signature_by_the_independent_signer_admits_and_small_rsa_keys_are_refused() {
    if !common::have_python_module("cryptography") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cosign_sign.py");
    let (ok, out) = common::run(Command::new("python3").arg(script).arg("keygen").arg(w).arg("rsa"));
    assert!(ok, "{out}");
    let rsa_pub = w.join("independent.pub");
    assert!(
        std::fs::read_to_string(&rsa_pub).unwrap().len() > 500,
        "an RSA 3072 key"
    );

    let data = w.join("data");
    let (mut server, addr) = common::start_server(&data, &["--trust-key", rsa_pub.to_str().unwrap()], Stdio::null());
    let image = push_image(&addr, "rsa/app", b"layer signed with RSA");
    let get = |path: &str| common::http(&addr, "GET", path, &[], &[]).unwrap();
    assert_eq!(get("/v2/rsa/app/manifests/v1").status, 403);
    let (ok, out) = common::run(
        Command::new("python3")
            .arg(script)
            .args([&addr, "rsa/app", &image])
            .arg(w),
    );
    assert!(ok, "{out}");
    let admitted = get("/v2/rsa/app/manifests/v1");
    assert_eq!(admitted.status, 200, "{}", String::from_utf8_lossy(&admitted.body));
    let key = PublicKey::from_pem(&std::fs::read_to_string(&rsa_pub).unwrap()).unwrap();
    assert!(key.fingerprint().starts_with("rsa:sha256:"));
    server.kill().unwrap();
    server.wait().unwrap();

    // A 1024-bit RSA key is refused at start, naming the file and the rule.
    let small = w.join("small.pub");
    let gen = "from cryptography.hazmat.primitives.asymmetric import rsa; \
               from cryptography.hazmat.primitives import serialization as s; import sys; \
               k = rsa.generate_private_key(public_exponent=65537, key_size=1024); \
               sys.stdout.buffer.write(k.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo))";
    let pem = Command::new("python3").args(["-c", gen]).output().unwrap();
    std::fs::write(&small, &pem.stdout).unwrap();
    let (ok, out) = vouch(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data",
        w.join("data2").to_str().unwrap(),
        "--trust-key",
        small.to_str().unwrap(),
    ]);
    assert!(
        !ok && out.contains("small.pub") && out.contains("RSA key of 1024 bits is too small"),
        "{out}"
    );
}
