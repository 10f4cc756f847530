//! Helpers shared by the black-box tests.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Runs a command to completion: whether it succeeded, and its stdout and
/// stderr together.
pub fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub mod postgres;
pub mod seaweedfs;
pub mod witnesses;

/// Whether python3 can import `module`. Under CI (CI=true) a missing module
/// is a failure, not a skip: .ci/run installs it.
pub fn have_python_module(module: &str) -> bool {
    let found = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "python module {module} is required in CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: python module {module} is not installed");
    }
    found
}

/// The policy that admits everything (every decision still logged), for
/// tests that push unsigned images.
pub const OPEN_POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/examples/policy-open.toml");

/// Starts the real `vouch serve` on 127.0.0.1 with a port the OS picks,
/// data in `data`, and `extra` flags (the open policy unless they name a
/// policy or key); returns the process (stdout consumed up to the
/// `listening on` line, stderr as `stderr` says) and its address.
pub fn start_server(data: &Path, extra: &[&str], stderr: Stdio) -> (Child, String) {
    let own_policy = extra.iter().any(|a| *a == "--policy" || *a == "--trust-key");
    let policy: &[&str] = if own_policy { &[] } else { &["--policy", OPEN_POLICY] };
    spawn(data, policy, extra, stderr)
}

/// Where servers started here keep their blobs: local files, or, with
/// `VOUCH_TEST_STORAGE=s3` (tools/test.sh runs the black-box suites a
/// second time so), a real SeaweedFS this test process starts once, under
/// a prefix of its own for each data directory (so a restart finds its
/// blobs again). Returns the `--storage` URL and the environment with its
/// credentials.
pub fn test_storage(data: &Path) -> Option<(String, [(&'static str, &'static str); 2])> {
    match std::env::var("VOUCH_TEST_STORAGE").as_deref() {
        Ok("s3") => {}
        Ok("files") | Err(_) => return None,
        Ok(other) => panic!("VOUCH_TEST_STORAGE={other}: expected s3 or files"),
    }
    static SEAWEED: std::sync::OnceLock<seaweedfs::SeaweedFs> = std::sync::OnceLock::new();
    let store = SEAWEED.get_or_init(|| seaweedfs::SeaweedFs::start().expect("VOUCH_TEST_STORAGE=s3 needs weed"));
    let prefix = format!("t{}", &sha256_hex(data.as_os_str().as_encoded_bytes())[..16]);
    Some((store.url(&prefix), store.env()))
}

/// As [`start_server`], with vouch's own default policy (nothing admitted).
pub fn start_server_with_defaults(data: &Path, stderr: Stdio) -> (Child, String) {
    spawn(data, &[], &[], stderr)
}

/// As [`start_server_with_defaults`], with `extra` flags.
pub fn start_server_with_defaults_and(data: &Path, extra: &[&str], stderr: Stdio) -> (Child, String) {
    spawn(data, &[], extra, stderr)
}

fn spawn(data: &Path, policy: &[&str], extra: &[&str], stderr: Stdio) -> (Child, String) {
    let mut serve = Command::new(env!("CARGO_BIN_EXE_vouch"));
    serve
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(policy)
        .args(extra);
    if let Some((url, env)) = test_storage(data) {
        serve.args(["--storage", &url]).envs(env);
    }
    if let Some(url) = postgres::test_database(data) {
        serve.args(["--database", &url]);
    }
    let mut child = serve
        .env_remove("VOUCH_DATA")
        .env_remove("VOUCH_LISTEN")
        .env_remove("VOUCH_USERS")
        .env_remove("VOUCH_CONFIG")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = lines
        .find_map(|l| l.ok()?.strip_prefix("listening on ").map(str::to_owned))
        .expect("vouch serve exited before listening");
    (child, addr)
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal blocking HTTP/1.1 client: one request per connection.
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(std::io::ErrorKind::UnexpectedEof)?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Ok(Resp {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

/// Whether `tool` is installed (it can be started; some, like htpasswd,
/// have no `--version` and exit non-zero).
pub fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "{tool} is required in CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: {tool} is not installed");
    }
    found
}

/// PUTs an OCI image manifest to `repo` at `reference`; asserts 201 and
/// returns the digest the registry answered with.
pub fn put_manifest(addr: &str, repo: &str, reference: &str, manifest: &[u8]) -> String {
    let r = http(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        manifest,
    )
    .unwrap();
    assert_eq!(r.status, 201, "manifest: {}", String::from_utf8_lossy(&r.body));
    r.header("docker-content-digest").unwrap().to_owned()
}

pub fn sha256_hex(b: &[u8]) -> String {
    vouch::registry::digest::sha256_of(b).encoded().to_owned()
}

/// Writes a one-layer image as an OCI layout at `dir`, tagged `tag`; returns
/// its manifest digest. The layer is a real tar made by tar(1), gzip'd as
/// registries expect (clients recompress uncompressed layers on push).
pub fn write_layout(dir: &Path, tag: &str, file_content: &str) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let root = dir.join("rootfs");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("hello.txt"), file_content).unwrap();
    let tar = dir.join("layer.tar");
    let ok = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("hello.txt")
        .status()
        .unwrap();
    assert!(ok.success());
    let diff_id = sha256_hex(&std::fs::read(&tar).unwrap());
    let ok = Command::new("gzip").arg("-n").arg(&tar).status().unwrap();
    assert!(ok.success());
    let layer = std::fs::read(dir.join("layer.tar.gz")).unwrap();
    let put = |bytes: &[u8]| {
        let h = sha256_hex(bytes);
        std::fs::write(blobs.join(&h), bytes).unwrap();
        h
    };
    let layer_d = put(&layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/bin/true"]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{diff_id}"]}}}}"#
    );
    let config_d = put(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{config_d}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:{layer_d}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let manifest_d = put(manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{manifest_d}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"{tag}"}}}}]}}"#,
        manifest.len()
    );
    std::fs::write(dir.join("index.json"), index).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    format!("sha256:{manifest_d}")
}

/// Runs podman with its own storage under `dir` (vfs driver, no cgroups or
/// events: works unprivileged and in containers): success, stdout, stderr.
pub fn podman(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("podman")
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("runroot"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A server process killed when dropped, so a failing test leaves none
/// running.
#[derive(Debug)]
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A test CA and a server certificate it issues for 127.0.0.1 (files).
pub struct TestCertificates {
    /// The CA's certificate (PEM).
    pub ca: std::path::PathBuf,
    /// The server's certificate (PEM), `subjectAltName=IP:127.0.0.1`.
    pub cert: std::path::PathBuf,
    /// The server's private key (PEM, P-256).
    pub key: std::path::PathBuf,
}

/// Makes a test CA and a certificate for 127.0.0.1 in `dir` with the
/// `openssl` command (an independent implementation), valid for a day.
pub fn test_certificates(dir: &Path) -> TestCertificates {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    let ca_args = [
        "-days",
        "1",
        "-subj",
        "/CN=vouch test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ];
    openssl(&[&["req", "-x509"][..], &ec, &ca_args].concat());
    let leaf = ["-subj", "/CN=127.0.0.1", "-keyout", "key.pem", "-out", "leaf.csr"];
    openssl(&[&["req"][..], &ec, &leaf].concat());
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    TestCertificates {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    }
}

/// The `vouch` binary, inheriting none of the settings of the
/// environment it reads (`VOUCH_*` storage, database, config and data
/// directory, `PGPASSWORD`).
pub fn vouch_command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vouch"));
    for v in [
        "VOUCH_STORAGE",
        "VOUCH_DATABASE",
        "VOUCH_CONFIG",
        "VOUCH_DATA",
        "PGPASSWORD",
    ] {
        c.env_remove(v);
    }
    c
}

/// `vouch serve` on `data` with the open policy, `args` and `envs`, and no
/// `VOUCH_*` or `PGPASSWORD` setting inherited: the server and its address,
/// or what it printed when it refused to start.
pub fn try_serve(data: &Path, args: &[&str], envs: &[(&str, &str)]) -> Result<(KillOnDrop, String), String> {
    let mut serve = vouch_command();
    let mut child = serve
        .args(["serve", "--listen", "127.0.0.1:0", "--policy", OPEN_POLICY, "--data"])
        .arg(data)
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    match lines.find_map(|l| l.ok()?.strip_prefix("listening on ").map(str::to_owned)) {
        Some(addr) => Ok((KillOnDrop(child), addr)),
        None => Err(String::from_utf8_lossy(&child.wait_with_output().unwrap().stderr).into_owned()),
    }
}

/// The configuration blob of the test images.
pub const IMAGE_CONFIG: &[u8] = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;

/// An OCI image manifest naming [`IMAGE_CONFIG`] (by `config`, its digest)
/// and one layer.
pub fn one_layer_manifest(config: &str, layer: &str, layer_size: usize) -> String {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": IMAGE_CONFIG.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size}]
    })
    .to_string()
}

/// Pushes a blob in one request (POST with `?digest=`); returns its digest.
pub fn push_blob_monolithic(addr: &str, repo: &str, bytes: &[u8]) -> String {
    let d = format!("sha256:{}", sha256_hex(bytes));
    let r = http(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
        &[],
        bytes,
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    d
}

/// Pushes a one-layer image tagged `tag`, blobs in one request each;
/// returns the layer's and the manifest's digests.
pub fn push_one_layer_image(addr: &str, repo: &str, tag: &str, layer: &[u8]) -> (String, String) {
    let (layer_d, config_d) = (
        push_blob_monolithic(addr, repo, layer),
        push_blob_monolithic(addr, repo, IMAGE_CONFIG),
    );
    let manifest = one_layer_manifest(&config_d, &layer_d, layer.len());
    (layer_d, put_manifest(addr, repo, tag, manifest.as_bytes()))
}

/// Opens an upload session in `repo` and sends its first 11 bytes
/// (`first half|`); returns the session's location.
pub fn start_half_upload(addr: &str, repo: &str) -> String {
    let r = http(addr, "POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"").unwrap();
    let session = r.header("Location").unwrap().to_owned();
    let r = http(addr, "PATCH", &session, &[], b"first half|").unwrap();
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    session
}

/// Checks that a session [`start_half_upload`] opened still holds its 11
/// bytes, and finishes it with `second half`; returns the blob's digest
/// (of [`HALF_UPLOAD_WHOLE`]).
pub fn finish_half_upload(addr: &str, session: &str) -> String {
    let r = http(addr, "GET", session, &[], b"").unwrap();
    assert_eq!(
        (r.status, r.header("Range")),
        (204, Some("0-10")),
        "the session resumes"
    );
    let d = format!("sha256:{}", sha256_hex(HALF_UPLOAD_WHOLE));
    let sep = if session.contains('?') { '&' } else { '?' };
    let r = http(addr, "PUT", &format!("{session}{sep}digest={d}"), &[], b"second half").unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    d
}

/// The blob a half upload finishes as.
pub const HALF_UPLOAD_WHOLE: &[u8] = b"first half|second half";

/// `vouch audit --replay` of the log served at `addr`, under the log key
/// in `data` and with the audit state in `state`: panics with its output
/// unless the log verifies and only grew since the state's checkpoint.
pub fn audit(addr: &str, data: &Path, state: &Path) {
    let out = vouch_command()
        .args(["audit", "--replay", "--log", &format!("http://{addr}"), "--log-key"])
        .arg(data.join("ledger.vkey"))
        .arg("--state")
        .arg(state)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vouch audit failed: {text}");
}

/// GET `/v2/<repo>/manifests/<reference>` accepting an OCI image
/// manifest: the status and the body as text.
pub fn pull_manifest(addr: &str, repo: &str, reference: &str) -> (u16, String) {
    let accept = [("Accept", "application/vnd.oci.image.manifest.v1+json")];
    let r = http(addr, "GET", &format!("/v2/{repo}/manifests/{reference}"), &accept, &[]).unwrap();
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

/// `vouch policy check --policy <policy> <addr>/<reference>`: its exit
/// code, and its output then its errors.
pub fn policy_check(addr: &str, policy: &Path, reference: &str) -> (Option<i32>, String) {
    let out = vouch_command()
        .args(["policy", "check", "--policy"])
        .arg(policy)
        .arg(format!("{addr}/{reference}"))
        .output()
        .unwrap();
    let text = [out.stdout, out.stderr].concat();
    (out.status.code(), String::from_utf8_lossy(&text).into_owned())
}
