//! Bounds under attack (spec/threat-model.md, "Bounds and their defaults"
//! and "Failures that must not spread"), against the real `vouch serve`:
//!
//! - one server takes, one after another, an evidence amplification
//!   (thousands of signature-looking layers naming one 64 KiB blob), stalled
//!   half-sent requests, an upload-session flood, and concurrent 4 MiB
//!   manifest pushes; a second, with `--users`, takes password guessing.
//!   Meanwhile an honest client still pulls an admitted image, every bound
//!   answers as documented, and each server's peak resident memory
//!   (`VmHWM`) stays under [`RSS_LIMIT_KIB`];
//! - manifests that once made evaluation fail (a `sha512:` image, its
//!   signature and index, descriptor sizes summing past 2^64) never stop the
//!   server from starting again after SIGKILL, under a new policy that
//!   re-evaluates them, and the ledger still replays;
//! - connections beyond `--max-connections-per-client` are closed at once.
//!
//! Every attack is bounded in count and time (constants below).

mod common;

use common::{http, Resp};
use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vouch::admission::evidence::{MAX_EVIDENCE_LAYERS, MAX_SIGNATURE_PAYLOAD};
use vouch::registry::auth::MAX_FAILURES;
use vouch::signature::{SIGNATURE_ANNOTATION, SIMPLESIGNING};

/// Peak resident memory allowed to a server under any attack (200 MiB).
const RSS_LIMIT_KIB: u64 = 200 * 1024;
/// `--header-timeout` of the attacked server, seconds.
const HEADER_TIMEOUT_S: u64 = 2;
/// `--idle-timeout`: well above the header timeout, so that closing a
/// stalled request is the header timeout's doing.
const IDLE_TIMEOUT_S: u64 = 10;
/// Slack after the header timeout for the server to close stalled requests.
const STALL_SLACK: Duration = Duration::from_secs(4);
/// (a) Layers of each amplification manifest: far past the evidence bound.
const AMPLIFY_LAYERS: usize = 2_000;
/// (a) Amplification manifests pushed at once; every other one has exactly
/// [`MAX_EVIDENCE_LAYERS`] layers, so that it is read as evidence.
const AMPLIFY_MANIFESTS: usize = 8;
/// (b) Connections that send half a request line and stall.
const STALLED_CONNECTIONS: usize = 300;
/// (b) `--max-connections-per-client` of the attacked server: above the
/// stalled connections, so that (b) tests the header timeout (and the
/// honest client, from the same address, still gets in).
const CONNECTIONS_PER_CLIENT: usize = STALLED_CONNECTIONS + 100;
/// (c) `--max-upload-sessions-per-client` of the attacked server.
const UPLOAD_SESSIONS_PER_CLIENT: usize = 16;
/// (c) Upload sessions one client asks for.
const UPLOAD_POSTS: usize = 200;
/// (d) Manifest pushes at once, and the size of each body.
const BIG_MANIFEST_PUSHES: usize = 32;
const BIG_MANIFEST_BYTES: usize = 4 << 20;
/// (e) Wrong passwords one client sends in a row.
const PASSWORD_GUESSES: usize = 40;
/// Times the poisoned server is killed and started again.
const RESTARTS: usize = 3;
/// `--max-connections-per-client` in the connection cap test, and the idle
/// connections opened there.
const CONNECTION_CAP: usize = 8;
const IDLE_CONNECTIONS: usize = 20;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// A running `vouch serve`, its stderr in `log`; SIGKILLed when dropped.
struct Server {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Server {
    fn start(data: &Path, flags: &[&str], log: &Path) -> Server {
        let stderr = Stdio::from(std::fs::File::create(log).unwrap());
        let started = std::panic::catch_unwind(|| common::start_server(data, flags, stderr));
        let stderr = || std::fs::read_to_string(log).unwrap_or_default();
        let (child, addr) = started.unwrap_or_else(|_| panic!("vouch serve did not start:\n{}", stderr()));
        Server {
            child,
            addr,
            log: log.to_owned(),
        }
    }

    /// Its stderr so far, checked for panics.
    fn stderr(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap();
        assert!(!text.contains("panicked"), "vouch serve panicked:\n{text}");
        text
    }

    /// Peak resident memory (KiB) since start or the last reset.
    fn peak_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Starts the peak over from the current resident memory (where the
    /// kernel refuses, peaks only add up: still an upper bound).
    fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", common::sha256_hex(b))
}

fn sha512(b: &[u8]) -> String {
    let any = vouch::registry::names::parse_digest(&format!("sha512:{}", "0".repeat(128))).unwrap();
    let mut h = vouch::registry::digest::DigestHasher::for_digest(&any);
    h.update(b);
    h.finish().to_string()
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        for i in 0..4 {
            let c = ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char;
            out.push(if i <= chunk.len() { c } else { '=' });
        }
    }
    out
}

fn text(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// The error code of a response (empty if none).
fn code(r: &Resp) -> String {
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    v["errors"][0]["code"].as_str().unwrap_or("").to_owned()
}

/// Uploads a blob in one request; returns its digest.
fn push_blob(addr: &str, repo: &str, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let r = http(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
        &[],
        bytes,
    )
    .unwrap();
    assert_eq!(r.status, 201, "blob upload: {}", text(&r));
    d
}

fn put_manifest(addr: &str, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> std::io::Result<Resp> {
    let path = format!("/v2/{repo}/manifests/{reference}");
    http(addr, "PUT", &path, &[("Content-Type", media_type)], body)
}

/// Pushes image manifests (tag, body) all at once: each must be answered,
/// created or refused with a 4xx. Returns how many got each answer.
fn push_all(addr: &str, repo: &str, manifests: Vec<(String, Vec<u8>)>) -> BTreeMap<String, usize> {
    let mut answers = BTreeMap::new();
    std::thread::scope(|s| {
        let pushes: Vec<_> = manifests
            .into_iter()
            .map(|(tag, body)| s.spawn(move || put_manifest(addr, repo, &tag, OCI_MANIFEST, &body)))
            .collect();
        for p in pushes {
            let r = p.join().unwrap().expect("a push lost its connection");
            assert!(
                r.status == 201 || (400..500).contains(&r.status),
                "{} {}",
                r.status,
                text(&r)
            );
            let state = r.header("vouch-admission-state").unwrap_or_default();
            *answers.entry(format!("{} {}{state}", r.status, code(&r))).or_default() += 1;
        }
    });
    answers
}

fn descriptor(media_type: &str, digest: &str, size: impl std::fmt::Display, annotations: &str) -> String {
    format!(r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{size}{annotations}}}"#)
}

fn image_manifest(config: &str, layers: &[String], extra: &str) -> Vec<u8> {
    let layers = layers.join(",");
    format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{config},"layers":[{layers}]{extra}}}"#)
        .into_bytes()
}

/// A simple signing payload naming `image`, padded to `len` bytes.
fn signing_payload(reference: &str, image: &str, len: usize) -> Vec<u8> {
    let with = |pad: &str| {
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{image}"}},"type":"cosign container image signature"}},"optional":{{"pad":"{pad}"}}}}"#
        )
    };
    with(&"x".repeat(len - with("").len())).into_bytes()
}

/// `n` signature-looking layers: the payload, with a signature annotation.
fn signature_layers(payload: &str, size: impl std::fmt::Display + Copy, n: usize, salt: usize) -> Vec<String> {
    let annotation = |i: usize| format!(r#","annotations":{{"{SIGNATURE_ANNOTATION}":"MEUCIQ{salt}x{i}"}}"#);
    (0..n)
        .map(|i| descriptor(SIMPLESIGNING, payload, size, &annotation(i)))
        .collect()
}

/// An image an honest client pushed and pulls.
struct Image {
    repo: String,
    tag: String,
    digest: String,
    manifest: Vec<u8>,
    layer_digest: String,
    layer: Vec<u8>,
}

fn push_image(addr: &str, repo: &str, tag: &str) -> Image {
    let layer: Vec<u8> = (0..256u32 << 10).map(|i| (i * 31 % 251) as u8).collect();
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let (layer_digest, config_digest) = (push_blob(addr, repo, &layer), push_blob(addr, repo, config));
    let config = descriptor(CONFIG_TYPE, &config_digest, config.len(), "");
    let manifest = image_manifest(&config, &[descriptor(LAYER_TYPE, &layer_digest, layer.len(), "")], "");
    let r = put_manifest(addr, repo, tag, OCI_MANIFEST, &manifest).unwrap();
    assert_eq!(r.status, 201, "honest push: {}", text(&r));
    assert_eq!(r.header("vouch-admission-state"), Some("admitted"));
    let (repo, tag, digest) = (repo.into(), tag.into(), sha256(&manifest));
    Image {
        repo,
        tag,
        digest,
        manifest,
        layer_digest,
        layer,
    }
}

/// The honest client pulls `img`'s manifest and layer, exact bytes.
fn assert_pulls(addr: &str, img: &Image, when: &str) {
    let get = |path: String, headers: &[(&str, &str)]| {
        let r = http(addr, "GET", &path, headers, &[]).unwrap_or_else(|e| panic!("{when}: GET {path}: {e}"));
        assert_eq!(r.status, 200, "{when}: GET {path}: {}", text(&r));
        r
    };
    let m = get(
        format!("/v2/{}/manifests/{}", img.repo, img.tag),
        &[("Accept", OCI_MANIFEST)],
    );
    assert!(m.body == img.manifest, "{when}: manifest bytes changed");
    assert_eq!(m.header("vouch-admission-state"), Some("admitted"), "{when}");
    let l = get(format!("/v2/{}/blobs/{}", img.repo, img.layer_digest), &[]);
    assert!(l.body == img.layer, "{when}: layer bytes changed");
}

/// Runs `attack` while the honest client pulls, resetting the server's peak
/// memory first; returns the peak (KiB) the attack caused.
fn attack(server: &Server, img: &Image, name: &'static str, attack: impl FnOnce() + Send) -> (&'static str, u64) {
    server.reset_peak();
    let started = Instant::now();
    std::thread::scope(|s| {
        let running = s.spawn(attack);
        while !running.is_finished() {
            assert_pulls(&server.addr, img, &format!("during {name}"));
            std::thread::sleep(Duration::from_millis(200));
        }
        if let Err(panic) = running.join() {
            std::panic::resume_unwind(panic);
        }
    });
    assert_pulls(&server.addr, img, &format!("after {name}"));
    let (peak, took) = (server.peak_kib(), started.elapsed().as_secs_f64());
    eprintln!("bounds: {name}: {took:.1} s, server peak RSS (VmHWM) {peak} KiB");
    (name, peak)
}

/// (a) Manifests under the honest image's `.sig` tag whose many layers all
/// name one 64 KiB signing payload, pushed at once.
fn amplify_evidence(addr: &str, img: &Image) {
    let payload = signing_payload(
        &format!("{addr}/{}", img.repo),
        &img.digest,
        MAX_SIGNATURE_PAYLOAD as usize,
    );
    let (payload_d, config_d) = (push_blob(addr, &img.repo, &payload), push_blob(addr, &img.repo, b"{}"));
    let config = descriptor(CONFIG_TYPE, &config_d, 2, "");
    let tag = img.digest.replace(':', "-") + ".sig";
    let manifests = (0..AMPLIFY_MANIFESTS)
        .map(|i| {
            let n = [AMPLIFY_LAYERS, MAX_EVIDENCE_LAYERS][i % 2];
            let layers = signature_layers(&payload_d, payload.len(), n, i);
            (tag.clone(), image_manifest(&config, &layers, ""))
        })
        .collect();
    let answers = push_all(addr, &img.repo, manifests);
    eprintln!("bounds: {AMPLIFY_MANIFESTS} amplification manifests answered: {answers:?}");
}

/// Whether the server closed `s` (end of stream or reset), without waiting.
fn closed(mut s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// (b) Half a request line on each of many connections, then nothing: the
/// header timeout must close every one.
fn stall_requests(addr: &str) {
    let mut open: Vec<TcpStream> = (0..STALLED_CONNECTIONS)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /v2/honest/app/manif").unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    while !open.is_empty() && started.elapsed() < Duration::from_secs(HEADER_TIMEOUT_S) + STALL_SLACK {
        std::thread::sleep(Duration::from_millis(250));
        open.retain(|s| !closed(s));
    }
    let (gone, took) = (STALLED_CONNECTIONS - open.len(), started.elapsed().as_secs_f64());
    eprintln!("bounds: {gone} of {STALLED_CONNECTIONS} stalled connections closed within {took:.1} s");
    assert!(open.is_empty(), "{} stalled connections still open", open.len());
}

/// (c) Many upload sessions from one client: beyond the cap, 429 with
/// Retry-After, and no more session files. Cancels its sessions after.
fn flood_upload_sessions(addr: &str, uploads: &Path) {
    let mut sessions = Vec::new();
    for _ in 0..UPLOAD_POSTS {
        let r = http(addr, "POST", "/v2/attack/uploads/blobs/uploads/", &[], &[]).unwrap();
        match r.status {
            202 => sessions.push(r.header("location").unwrap().to_owned()),
            429 => {
                assert_eq!(code(&r), "TOOMANYREQUESTS");
                assert!(r.header("retry-after").is_some(), "429 without Retry-After");
            }
            other => panic!("upload session flood: {other} {}", text(&r)),
        }
    }
    let files = || std::fs::read_dir(uploads).unwrap().count();
    let (opened, on_disk) = (sessions.len(), files());
    eprintln!("bounds: {UPLOAD_POSTS} upload sessions asked: {opened} opened, {on_disk} session files");
    assert_eq!(opened, UPLOAD_SESSIONS_PER_CLIENT, "the per-client cap");
    assert!(on_disk <= UPLOAD_SESSIONS_PER_CLIENT, "{on_disk} session files");
    for loc in sessions {
        assert_eq!(http(addr, "DELETE", &loc, &[], &[]).unwrap().status, 204);
    }
    assert_eq!(files(), 0, "cancelled sessions left files");
}

/// (d) Concurrent ~4 MiB manifest bodies: a third not well-formed (cut at
/// the end), a third naming a missing blob, a third valid images of tens of
/// thousands of layers.
fn push_big_manifests(addr: &str, img: &Image) {
    let config = descriptor(CONFIG_TYPE, &push_blob(addr, "attack/big", b"{}"), 2, "");
    let layer_d = push_blob(addr, "attack/big", &img.layer);
    let manifests = (0..BIG_MANIFEST_PUSHES)
        .map(|i| {
            let layer = match i % 3 {
                1 => descriptor(LAYER_TYPE, &sha256(format!("missing {i}").as_bytes()), 1, ""),
                _ => descriptor(LAYER_TYPE, &layer_d, img.layer.len(), ""),
            };
            let layers = vec![layer.clone(); BIG_MANIFEST_BYTES / (layer.len() + 1)];
            let mut body = image_manifest(&config, &layers, &format!(r#","annotations":{{"n":"{i}"}}"#));
            if i % 3 == 0 {
                body.truncate(body.len() - 2);
            }
            (format!("big{i}"), body)
        })
        .collect();
    let answers = push_all(addr, "attack/big", manifests);
    eprintln!("bounds: {BIG_MANIFEST_PUSHES} manifests of ~4 MiB answered: {answers:?}");
}

#[test]
fn peak_memory_stays_bounded_under_each_attack_and_honest_pulls_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let flags = format!(
        "--header-timeout {HEADER_TIMEOUT_S} --idle-timeout {IDLE_TIMEOUT_S} \
         --max-connections-per-client {CONNECTIONS_PER_CLIENT} \
         --max-upload-sessions-per-client {UPLOAD_SESSIONS_PER_CLIENT}"
    );
    let flags: Vec<&str> = flags.split_whitespace().collect();
    let server = Server::start(&data, &flags, &dir.path().join("serve.log"));
    let (addr, uploads) = (server.addr.as_str(), data.join("uploads"));
    let img = push_image(addr, "honest/app", "v1");
    assert_pulls(addr, &img, "before the attacks");
    let peaks = [
        ("baseline", server.peak_kib()),
        attack(&server, &img, "evidence amplification", || amplify_evidence(addr, &img)),
        attack(&server, &img, "stalled requests", || stall_requests(addr)),
        attack(&server, &img, "upload session flood", || {
            flood_upload_sessions(addr, &uploads)
        }),
        attack(&server, &img, "big manifests", || push_big_manifests(addr, &img)),
        guess_passwords(&dir.path().join("with-users")),
    ];
    server.stderr();
    eprintln!("bounds: peak RSS per attack (KiB): {peaks:?}");
    for (name, peak) in peaks {
        assert!(
            peak < RSS_LIMIT_KIB,
            "{name}: peak RSS {peak} KiB is over {RSS_LIMIT_KIB} KiB"
        );
    }
}

/// (e) Wrong passwords from one client, on a server with `--users`: after
/// [`MAX_FAILURES`], 429 before bcrypt runs; a client that logged in before
/// still gets in. Returns that server's peak memory (KiB).
fn guess_passwords(dir: &Path) -> (&'static str, u64) {
    std::fs::create_dir(dir).unwrap();
    let users = dir.join("users");
    let mut add = Command::new(env!("CARGO_BIN_EXE_vouch"));
    let add = add.args(["user", "add", "--users"]).arg(&users).arg("alice");
    let mut add = add.stdin(Stdio::piped()).spawn().unwrap();
    add.stdin.take().unwrap().write_all(b"alice-right\n").unwrap();
    assert!(add.wait().unwrap().success(), "vouch user add");
    let flags = ["--users", users.to_str().unwrap()];
    let server = Server::start(&dir.join("data"), &flags, &dir.join("serve.log"));
    let started = Instant::now();
    let login = |user: &str, password: &str| {
        let auth = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
        let t = Instant::now();
        let r = http(&server.addr, "GET", "/v2/", &[("Authorization", &auth)], &[]).unwrap();
        (r, t.elapsed())
    };
    assert_eq!(login("alice", "alice-right").0.status, 200, "alice logs in first");
    let (mut checked, mut throttled) = (Vec::new(), Vec::new());
    for i in 0..PASSWORD_GUESSES {
        let (r, took) = login("alice", &format!("guess-{i}"));
        match r.status {
            401 => checked.push(took),
            429 => {
                assert_eq!(code(&r), "TOOMANYREQUESTS");
                assert!(r.header("retry-after").is_some(), "429 without Retry-After");
                throttled.push(took);
            }
            other => panic!("wrong password answered {other}"),
        }
    }
    assert_eq!(checked.len(), MAX_FAILURES as usize, "checked before the throttle");
    assert_eq!(throttled.len(), PASSWORD_GUESSES - MAX_FAILURES as usize);
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (bcrypt, refused) = (median(&mut checked), median(&mut throttled));
    eprintln!("bounds: password guessing: median {bcrypt:?} per checked guess, {refused:?} per throttled one");
    assert!(refused * 4 < bcrypt, "throttled guesses still run bcrypt");
    assert_eq!(
        login("alice", "alice-right").0.status,
        200,
        "a verified login is remembered"
    );
    let (other, _) = login("carol", "anything");
    assert_eq!(other.status, 429, "the throttled address is refused before bcrypt");
    let (peak, took) = (server.peak_kib(), started.elapsed().as_secs_f64());
    eprintln!("bounds: password guessing: {took:.1} s, server peak RSS (VmHWM) {peak} KiB");
    ("password guessing", peak)
}

/// A policy that admits everything but `poison/**`, where every image is
/// too big (`max_size = 1`): those stay denied, so each new policy
/// re-evaluates them at start. `name` makes each policy new.
fn write_policy(path: &Path, name: &str) {
    let policy = format!(
        "version = 1\nname = \"{name}\"\n\n[[rule]]\nrepositories = \"poison/**\"\nmode = \"enforce\"\nmax_size = 1\n\n[[rule]]\nrepositories = \"**\"\nmode = \"enforce\"\n"
    );
    std::fs::write(path, policy).unwrap();
}

/// Pushes to `repo` what once made evaluation fail: a `sha512:` image, its
/// signature (under its tag, which is too long to exist, and as a
/// referrer), an index of it, and a signature whose descriptor sizes sum
/// past 2^64 (refused: sizes are checked against the blobs). Returns the
/// sha512 image's digest.
fn push_poison(addr: &str, repo: &str, honest: &Image) -> String {
    let layer = format!("sha512 layer of {repo}").into_bytes();
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let (layer_d, config_d) = (push_blob(addr, repo, &layer), push_blob(addr, repo, config));
    let config_desc = descriptor(CONFIG_TYPE, &config_d, config.len(), "");
    let manifest = image_manifest(&config_desc, &[descriptor(LAYER_TYPE, &layer_d, layer.len(), "")], "");
    let image = sha512(&manifest);
    let r = put_manifest(addr, repo, &image, OCI_MANIFEST, &manifest).unwrap();
    assert_eq!(r.status, 201, "sha512 push: {}", text(&r));

    let payload = signing_payload(&format!("{addr}/{repo}"), &image, 400);
    let (payload_d, empty_d) = (push_blob(addr, repo, &payload), push_blob(addr, repo, b"{}"));
    let empty = descriptor(CONFIG_TYPE, &empty_d, 2, "");
    let layers = signature_layers(&payload_d, payload.len(), 1, 0);
    let sig = image_manifest(&empty, &layers, "");
    let r = put_manifest(addr, repo, &(image.replace(':', "-") + ".sig"), OCI_MANIFEST, &sig).unwrap();
    assert!((400..500).contains(&r.status), "a 139-character tag: {}", r.status);
    let subject = format!(r#","subject":{}"#, descriptor(OCI_MANIFEST, &image, manifest.len(), ""));
    let referrer = image_manifest(&empty, &layers, &subject);
    let r = put_manifest(addr, repo, "sha512-signature", OCI_MANIFEST, &referrer).unwrap();
    assert_eq!(r.status, 201, "signature referrer: {}", text(&r));

    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        descriptor(OCI_MANIFEST, &image, manifest.len(), "")
    );
    let r = put_manifest(addr, repo, "sha512-index", OCI_INDEX, index.as_bytes()).unwrap();
    assert_eq!(r.status, 201, "index: {}", text(&r));

    let huge = u64::MAX / 2 + 1;
    let overflow = image_manifest(
        &descriptor(CONFIG_TYPE, &empty_d, huge, ""),
        &signature_layers(&payload_d, huge, 2, 1),
        "",
    );
    let tag = honest.digest.replace(':', "-") + ".sig";
    let r = put_manifest(addr, repo, &tag, OCI_MANIFEST, &overflow).unwrap();
    assert_eq!(
        (r.status, code(&r)),
        (400, "MANIFEST_INVALID".into()),
        "sizes past 2^64"
    );
    image
}

fn assert_state(addr: &str, repo: &str, digest: &str, status: u16, state: &str) {
    let accept = ("Accept", OCI_MANIFEST);
    let r = http(addr, "HEAD", &format!("/v2/{repo}/manifests/{digest}"), &[accept], &[]).unwrap();
    assert_eq!(
        (r.status, r.header("vouch-admission-state")),
        (status, Some(state)),
        "{repo}@{digest}"
    );
}

#[test]
fn a_poisoned_push_never_stops_the_server_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let policy = dir.path().join("policy.toml");
    let start = |n: usize| {
        write_policy(&policy, &format!("bounds-{n}"));
        let flags = ["--policy", policy.to_str().unwrap()];
        Server::start(&data, &flags, &dir.path().join(format!("serve-{n}.log")))
    };
    let mut server = start(0);
    let img = push_image(&server.addr, "honest/app", "v1");
    let admitted = push_poison(&server.addr, "open/poison", &img);
    let denied = push_poison(&server.addr, "poison/app", &img);
    for n in 1..=RESTARTS {
        server.stderr();
        server.kill();
        server = start(n);
        let addr = server.addr.clone();
        let stderr = server.stderr();
        eprintln!("bounds: restart {n}:\n{stderr}");
        assert!(
            stderr.contains("re-evaluated"),
            "start {n} did not re-evaluate:\n{stderr}"
        );
        assert!(!stderr.contains("could not be re-evaluated"), "start {n}:\n{stderr}");
        assert_pulls(&addr, &img, &format!("after restart {n}"));
        assert_state(&addr, "open/poison", &admitted, 200, "admitted");
        assert_state(&addr, "poison/app", &denied, 403, "denied");
        let r = http(&addr, "POST", "/admin/reevaluate?all=true", &[], &[]).unwrap();
        assert_eq!(r.status, 200, "re-evaluation: {}", text(&r));
        let (ok, out) = common::run(
            Command::new(env!("CARGO_BIN_EXE_vouch"))
                .args(["audit", "--log", &format!("http://{addr}"), "--log-key"])
                .arg(data.join("ledger.vkey"))
                .arg("--replay"),
        );
        assert!(ok, "audit after restart {n}: {out}");
    }
    server.stderr();
}

#[test]
fn connections_are_capped_per_client() {
    let dir = tempfile::tempdir().unwrap();
    let cap = CONNECTION_CAP.to_string();
    let flags = ["--max-connections-per-client", &cap, "--header-timeout", "10"];
    let server = Server::start(&dir.path().join("data"), &flags, &dir.path().join("serve.log"));
    let conns: Vec<TcpStream> = (0..IDLE_CONNECTIONS)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let open: Vec<&TcpStream> = conns.iter().filter(|s| !closed(s)).collect();
    let refused = IDLE_CONNECTIONS - open.len();
    let mut usable = 0;
    for mut s in open {
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
        let mut head = [0u8; 12];
        if s.write_all(req.as_bytes()).is_ok() && s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200") {
            usable += 1;
        }
    }
    eprintln!("bounds: of {IDLE_CONNECTIONS} connections from one client, {refused} closed at once, {usable} usable");
    let expected = (IDLE_CONNECTIONS - CONNECTION_CAP, CONNECTION_CAP);
    assert_eq!(
        (refused, usable),
        expected,
        "beyond the cap closed at once, the rest served"
    );
    drop(conns);
    std::thread::sleep(Duration::from_millis(300));
    let r = http(&server.addr, "GET", "/v2/", &[], &[]).unwrap();
    assert_eq!(r.status, 200, "a request after the connections closed");
    server.stderr();
}
