//! Black-box tests: the real `vouch serve` on 127.0.0.1 (port chosen by the
//! OS), driven by real clients. Test images are OCI layouts written here.
//!
//! A missing client fails the test under CI (CI=true); elsewhere it is
//! reported and the test returns.

mod common;

use common::{have, sha256_hex, write_layout};

use std::path::Path;
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    addr: String,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() -> Server {
    serve_with(&[])
}

fn serve_with(extra: &[&str]) -> Server {
    let data = tempfile::tempdir().unwrap();
    let (child, addr) = common::start_server(data.path(), extra, Stdio::null());
    Server {
        child,
        addr,
        _data: data,
    }
}

fn skopeo(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("skopeo").args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn skopeo_pushes_inspects_lists_pulls_copies_and_deletes() {
    if !have("skopeo") {
        return;
    }
    let server = serve();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let digest = write_layout(&layout, "v1", "hello from a test image\n");
    let reg = |r: &str| format!("docker://{}/{r}", server.addr);
    let oci = |p: &Path, tag: &str| format!("oci:{}:{tag}", p.display());

    let (ok, _, err) = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &oci(&layout, "v1"),
        &reg("team/app:v1"),
    ]);
    assert!(ok, "push: {err}");

    let (ok, out, err) = skopeo(&["inspect", "--tls-verify=false", &reg("team/app:v1")]);
    assert!(ok, "inspect: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Digest"], digest, "the manifest's digest round-trips");
    let (ok, out, _) = skopeo(&["inspect", "--tls-verify=false", "--raw", &reg("team/app:v1")]);
    assert!(ok);
    assert_eq!(
        format!("sha256:{}", sha256_hex(out.as_bytes())),
        digest,
        "exact manifest bytes"
    );

    let (ok, out, err) = skopeo(&["list-tags", "--tls-verify=false", &reg("team/app")]);
    assert!(ok, "list-tags: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // v1, and the tag of vouch's countersignature of the admitted image.
    let countersignature = format!("{}.sig", digest.replace(':', "-"));
    assert_eq!(v["Tags"], serde_json::json!([countersignature, "v1"]));

    // Pull back into a new layout: same manifest, same layer bytes.
    let back = work.path().join("back");
    let (ok, _, err) = skopeo(&["copy", "--src-tls-verify=false", &reg("team/app:v1"), &oci(&back, "v1")]);
    assert!(ok, "pull: {err}");
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest);
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let name = entry.unwrap().file_name();
        assert_eq!(
            std::fs::read(layout.join("blobs/sha256").join(&name)).unwrap(),
            std::fs::read(back.join("blobs/sha256").join(&name)).unwrap(),
            "blob {name:?} differs after the round trip"
        );
    }

    // Copy between repositories of the registry (blobs are mounted).
    let (ok, _, err) = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &reg("team/app:v1"),
        &reg("mirror/app:copied"),
    ]);
    assert!(ok, "copy between repositories: {err}");
    let (ok, out, _) = skopeo(&["inspect", "--tls-verify=false", &reg("mirror/app:copied")]);
    assert!(ok);
    assert!(out.contains(&digest));

    // Delete, after which the tag is gone.
    let (ok, _, err) = skopeo(&["delete", "--tls-verify=false", &reg("team/app:v1")]);
    assert!(ok, "delete: {err}");
    let (ok, _, err) = skopeo(&["inspect", "--tls-verify=false", &reg("team/app:v1")]);
    assert!(!ok);
    assert!(err.contains("manifest unknown"), "{err}");
    // The copy in the other repository is untouched.
    assert!(skopeo(&["inspect", "--tls-verify=false", &reg("mirror/app:copied")]).0);
}

#[test]
fn podman_pulls_and_pushes_with_the_vfs_driver() {
    if !have("podman") || !have("skopeo") {
        return;
    }
    let server = serve();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let digest = write_layout(&layout, "v1", "hello from podman's test\n");
    let (ok, _, err) = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{}/pm/app:v1", server.addr),
    ]);
    assert!(ok, "seed push: {err}");
    let podman = |args: &[&str]| common::podman(work.path(), args);
    let image = format!("{}/pm/app:v1", server.addr);
    let (ok, _, err) = podman(&["pull", "--tls-verify=false", &image]);
    assert!(ok, "podman pull: {err}");
    let (ok, out, err) = podman(&["image", "inspect", "--format", "{{.Digest}}", &image]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), digest, "podman pulled the pushed manifest");

    let pushed = format!("{}/pm/pushed:p1", server.addr);
    assert!(podman(&["tag", &image, &pushed]).0);
    let (ok, _, err) = podman(&["push", "--tls-verify=false", &pushed]);
    assert!(ok, "podman push: {err}");
    assert!(podman(&["rmi", "--force", &image, &pushed]).0);
    let (ok, _, err) = podman(&["pull", "--tls-verify=false", &pushed]);
    assert!(ok, "podman pull of what podman pushed: {err}");
    let (ok, out, _) = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{pushed}")]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Layers"].as_array().map(Vec::len), Some(1));
}

#[test]
fn users_from_htpasswd_and_vouch_user_add_can_push_and_anyone_can_pull() {
    if !have("skopeo") || !have("htpasswd") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let users = work.path().join("users");
    // One user hashed by Apache's htpasswd (bcrypt), one by vouch.
    let out = Command::new("htpasswd")
        .args(["-Bbn", "alice", "from-apache"])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&users, &out.stdout).unwrap();
    let mut add = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(["user", "add", "--users"])
        .arg(&users)
        .arg("bob")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut add.stdin.take().unwrap(), b"from-vouch\n").unwrap();
    assert!(add.wait().unwrap().success());

    let server = serve_with(&["--users", users.to_str().unwrap()]);
    let layout = work.path().join("layout");
    write_layout(&layout, "v1", "authenticated push\n");
    let src = format!("oci:{}:v1", layout.display());
    let dest = |tag: &str| format!("docker://{}/auth/app:{tag}", server.addr);
    let (ok, _, err) = skopeo(&["copy", "--dest-tls-verify=false", &src, &dest("anon")]);
    assert!(
        !ok && err.contains("unauthorized"),
        "an anonymous push must be refused: {err}"
    );
    let (ok, _, err) = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:wrong",
        &src,
        &dest("wrong"),
    ]);
    assert!(
        !ok && err.contains("unauthorized"),
        "a wrong password must be refused: {err}"
    );
    for (creds, tag) in [("alice:from-apache", "a"), ("bob:from-vouch", "b")] {
        let (ok, _, err) = skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            creds,
            &src,
            &dest(tag),
        ]);
        assert!(ok, "push as {creds}: {err}");
    }
    let (ok, out, err) = skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/auth/app", server.addr),
    ]);
    assert!(ok, "anonymous pull: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // a and b (one image), and the tag of vouch's countersignature of it.
    let tags: Vec<&str> = v["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert_eq!(tags.len(), 3, "{tags:?}");
    assert!(tags[0] == "a" && tags[1] == "b" && tags[2].starts_with("sha256-") && tags[2].ends_with(".sig"));
}

#[test]
fn oras_py_pushes_artifacts_with_a_subject_and_finds_them_as_referrers() {
    if !common::have_python_module("oras.client") {
        return;
    }
    let server = serve();
    let work = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oras_artifacts.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&server.addr)
        .arg(work.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "oras-py flow failed:\n{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
    assert_eq!(v["referrers"], 1);
    assert_eq!(v["pulled"], serde_json::json!(["report.txt"]));
}

#[test]
fn https_with_a_certificate_that_skopeo_verifies() {
    if !have("skopeo") || !have("openssl") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let certs = work.path().join("certs.d");
    // A test CA, and a server certificate it issues for 127.0.0.1.
    let common::TestCertificates { ca, cert, key } = common::test_certificates(work.path());
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(&ca, certs.join("ca.crt")).unwrap();
    let server = serve_with(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    let layout = work.path().join("layout");
    let digest = write_layout(&layout, "v1", "over TLS\n");
    let dest = format!("docker://{}/tls/app:v1", server.addr);
    // TLS is verified against the test CA: no --tls-verify=false here.
    let (ok, _, err) = skopeo(&[
        "copy",
        "--dest-cert-dir",
        certs.to_str().unwrap(),
        &format!("oci:{}:v1", layout.display()),
        &dest,
    ]);
    assert!(ok, "push over HTTPS: {err}");
    let (ok, out, err) = skopeo(&["inspect", "--cert-dir", certs.to_str().unwrap(), &dest]);
    assert!(ok, "inspect over HTTPS: {err}");
    assert!(out.contains(&digest));
    // Without the CA the certificate is refused, and plain HTTP gets no answer.
    let (ok, _, err) = skopeo(&["inspect", &dest]);
    assert!(!ok && err.contains("certificate"), "{err}");
    assert!(common::http(&server.addr, "GET", "/v2/", &[], &[]).map_or(true, |r| r.status != 200));
    // `vouch verify` over HTTPS with the private CA; without it, the error
    // says what to do.
    let vkey = server._data.path().join("ledger.vkey");
    let reference = format!("{}/tls/app:v1", server.addr);
    let verify = |extra: &[&str]| {
        common::run(
            Command::new(env!("CARGO_BIN_EXE_vouch"))
                .args(["verify", &reference, "--log-key"])
                .arg(&vkey)
                .args(extra),
        )
    };
    let (ok, out) = verify(&["--ca-cert", ca.to_str().unwrap()]);
    assert!(ok && out.contains("verified: tls/app@"), "{out}");
    let (ok, out) = verify(&[]);
    assert!(
        !ok && out.contains("--ca-cert") && out.contains("--plain-http"),
        "{out}"
    );
}

#[test]
fn the_real_server_limits_requests_per_client_and_sweeps_idle_uploads() {
    use std::io::Write as _;
    let server = serve_with(&["--max-requests-per-client", "1", "--upload-ttl", "1"]);
    // An upload session, left idle.
    let start = common::http(&server.addr, "POST", "/v2/sweep/app/blobs/uploads/", &[], &[]).unwrap();
    assert_eq!(start.status, 202);
    let loc = start.header("location").unwrap().to_owned();
    // One request stays in flight: its body is announced but never sent.
    let mut slow = std::net::TcpStream::connect(&server.addr).unwrap();
    write!(
        slow,
        "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial"
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let second = common::http(&server.addr, "GET", "/v2/", &[], &[]).unwrap();
    assert_eq!(
        second.status, 429,
        "a second request from the same address must be refused"
    );
    assert_eq!(second.header("retry-after"), Some("1"));
    assert!(String::from_utf8_lossy(&second.body).contains("TOOMANYREQUESTS"));
    drop(slow);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(common::http(&server.addr, "GET", "/v2/", &[], &[]).unwrap().status, 200);
    // The idle session is ended by the sweeper within a few seconds.
    let gone = (0..40).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(250));
        common::http(&server.addr, "GET", &loc, &[], &[]).unwrap().status == 404
    });
    assert!(gone, "an upload idle past --upload-ttl was not swept");
}

fn sigterm(child: &std::process::Child) {
    let sent = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success());
}

#[test]
fn sigterm_drains_then_exits_and_an_interrupted_upload_resumes_after_restart() {
    // Connections served on the main runtime (0), and by reader threads
    // (the default on local storage is one per core; 3 here).
    for readers in ["0", "3"] {
        sigterm_drains_with_reader_threads(readers);
    }
}

fn sigterm_drains_with_reader_threads(readers: &str) {
    use std::io::Write as _;
    let data = tempfile::tempdir().unwrap();
    let start = |extra: &[&str]| {
        let args = [&["--reader-threads", readers], extra].concat();
        common::start_server(data.path(), &args, Stdio::piped())
    };
    let (mut child, addr) = start(&["--shutdown-timeout", "1"]);
    let s = common::http(&addr, "POST", "/v2/term/app/blobs/uploads/", &[], &[]).unwrap();
    let loc = s.header("location").unwrap().to_owned();
    assert_eq!(
        common::http(&addr, "PATCH", &loc, &[], b"first chunk ").unwrap().status,
        202
    );
    // A second chunk is in flight, stalled, when SIGTERM arrives.
    let mut stalled = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stalled,
        "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nnever fin"
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let t0 = std::time::Instant::now();
    sigterm(&child);
    let status = child.wait().unwrap();
    let waited = t0.elapsed();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "readers {readers}: exit status {status}: {err}");
    assert!(
        err.contains("shutting down") && err.contains("requests still in flight"),
        "{err}"
    );
    assert!(waited < std::time::Duration::from_secs(10), "took {waited:?} to stop");
    drop(stalled);

    // After a restart the session holds exactly the acknowledged chunk.
    let (mut child, addr) = start(&[]);
    let st = common::http(&addr, "GET", &loc, &[], &[]).unwrap();
    assert_eq!((st.status, st.header("range")), (204, Some("0-11")));
    let d = format!("sha256:{}", sha256_hex(b"first chunk and the rest"));
    let done = common::http(&addr, "PUT", &format!("{loc}?digest={d}"), &[], b"and the rest").unwrap();
    assert_eq!(done.status, 201);
    // With nothing in flight, SIGTERM stops it cleanly at once.
    sigterm(&child);
    assert!(child.wait().unwrap().success());
}
