//! `vouch monitor` from outside: against a real `vouch serve` (a watched
//! admission alerts on stderr, by exit code and by webhook), and against
//! logs the test forges with their own key, served by a static file server
//! (Python's http.server) as tlog-tiles: a fork at the same size, a
//! rewritten history, a shrink and an entry breaking the ledger's
//! invariants are each reported, exit code 2.

mod common;

use common::witnesses::push_tiny_image;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use vouch_ledger::entry::{DecisionEntry, Digest, Entry, PolicyEntry, Verdict};
use vouch_ledger::tile::{encode_bundle, TileAddr, TileKind};
use vouch_ledger::tree::MemoryTree;
use vouch_ledger::{Checkpoint, NoteSigner};

/// Runs `vouch monitor --once` with `args`; its exit code and stderr.
fn monitor(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(["monitor", "--once"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_watched_admission_alerts_by_exit_code_stderr_and_webhook() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (mut server, addr) = common::start_server(&data, &[], Stdio::null());
    push_tiny_image(&addr, "dev/tool", "v1", "d");
    push_tiny_image(&addr, "prod/payments", "v1", "p");
    let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_url = format!("http://{}/alerts", hook.local_addr().unwrap());
    let received = std::thread::spawn(move || {
        let (mut s, _) = hook.accept().unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        s.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()
    });
    let state = tmp.path().join("monitor.json");
    let key = data.join("ledger.vkey");
    let base = [
        "--log",
        &format!("http://{addr}"),
        "--log-key",
        key.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--watch",
        "prod/**",
    ]
    .map(str::to_owned);
    let with_hook: Vec<&str> = base
        .iter()
        .map(String::as_str)
        .chain(["--webhook", &hook_url])
        .collect();
    let (code, out) = monitor(&with_hook);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("ALERT watched-admission") && out.contains("prod/payments@"),
        "{out}"
    );
    assert!(!out.contains("dev/tool@"), "{out}");
    let alert = received.join().unwrap();
    assert_eq!(alert["alert"], "watched-admission");
    assert!(alert["message"].as_str().unwrap().contains("prod/payments"), "{alert}");
    // Nothing new: all well.
    let base: Vec<&str> = base.iter().map(String::as_str).collect();
    let (code, out) = monitor(&base);
    assert_eq!(code, 0, "{out}");
    // New unwatched entries are verified from the remembered edge.
    push_tiny_image(&addr, "dev/tool", "v2", "e");
    let (code, out) = monitor(&base);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("new entries checked"), "{out}");
    server.kill().unwrap();
    server.wait().unwrap();
}

/// A log forged by the test, written as static tlog-tiles files.
struct ForgedLog {
    signer: NoteSigner,
}

fn digest(n: u64) -> Digest {
    Digest::parse(&format!("sha256:{n:064x}")).unwrap()
}

fn policy(n: u64) -> Vec<u8> {
    Entry::Policy(PolicyEntry {
        name: "p".into(),
        version: n,
        digest: digest(1000 + n),
    })
    .encode()
    .unwrap()
}

fn decision(repo: &str, n: u64, policy_index: u64, policy_digest: Digest) -> Vec<u8> {
    Entry::Decision(DecisionEntry {
        repo: repo.into(),
        digest: digest(n),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        verdict: Verdict::Admit,
        reasons: vec![],
        evidence: vec![],
        signers: vec![],
        policy: policy_digest,
        policy_index,
        time: 1_800_000_000,
    })
    .encode()
    .unwrap()
}

impl ForgedLog {
    /// Writes `entries` as the whole log under `dir/ledger/`.
    fn publish(&self, dir: &Path, entries: &[Vec<u8>]) {
        let ledger = dir.join("ledger");
        let _ = std::fs::remove_dir_all(&ledger);
        let mut tree = MemoryTree::new();
        entries.iter().for_each(|e| tree.push(e));
        let size = entries.len() as u64;
        let addr = TileAddr::for_tree(TileKind::Entries, 0, size).unwrap();
        let path = ledger.join(addr.to_string());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, encode_bundle(entries.iter().map(Vec::as_slice)).unwrap()).unwrap();
        let c = Checkpoint {
            origin: self.signer.verifier().name().to_owned(),
            size,
            root: tree.root_at(size),
            extensions: vec![],
        };
        std::fs::write(ledger.join("checkpoint"), self.signer.sign(&c.to_text())).unwrap();
    }
}

/// Python's static file server over `dir`; its base URL.
fn static_server(dir: &Path) -> (Child, String) {
    let mut child = Command::new("python3")
        .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let port = line
        .split(" port ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    (child, format!("http://127.0.0.1:{port}"))
}

#[test]
fn forks_rewrites_shrinks_and_broken_invariants_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    let log = ForgedLog {
        signer: NoteSigner::new("log.test/forged", ed25519_dalek::SigningKey::from_bytes(&[5; 32])).unwrap(),
    };
    let vkey = log.signer.verifier().to_string();
    let honest: Vec<Vec<u8>> = vec![
        policy(1),
        decision("a", 1, 0, digest(1001)),
        decision("b", 2, 0, digest(1001)),
    ];
    log.publish(&site, &honest);
    let (mut server, url) = static_server(&site);
    let state = tmp.path().join("state.json");
    let args = ["--log", &url, "--log-key", &vkey, "--state", state.to_str().unwrap()];
    let (code, out) = monitor(&args);
    assert_eq!(code, 0, "{out}");
    let remembered = std::fs::read(&state).unwrap();
    let reset = || std::fs::write(&state, &remembered).unwrap();

    // Another root for the same size.
    let mut forked = honest.clone();
    forked[2] = decision("b", 3, 0, digest(1001));
    log.publish(&site, &forked);
    let (code, out) = monitor(&args);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("ALERT misbehaviour") && out.contains("fork: two roots signed for size 3"),
        "{out}"
    );
    // Signed by the log, a fork is misbehaviour even with no witness on it.
    let witness =
        vouch_ledger::cosignature::Cosigner::new("witness.test/any", ed25519_dalek::SigningKey::from_bytes(&[8; 32]))
            .unwrap();
    let wkey = witness.verifier().to_string();
    let (code, out) = monitor(&[&args[..], &["--witness", &wkey]].concat());
    assert!(code == 2 && out.contains("fork"), "{out}");
    assert_eq!(
        std::fs::read(&state).unwrap(),
        remembered,
        "a failed check must not move the state"
    );

    // Growth that rewrites an entry already verified.
    forked.push(decision("c", 4, 0, digest(1001)));
    log.publish(&site, &forked);
    let (code, out) = monitor(&args);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("do not hash to the checkpoint's root"), "{out}");

    // A shrink.
    log.publish(&site, &honest[..2]);
    let (code, out) = monitor(&args);
    assert!(code == 2 && out.contains("the log shrank"), "{out}");

    // Honest growth, but a decision naming a policy that was never logged
    // (entry 1 is a decision, not a policy), then one naming the wrong digest.
    for (bad, expect) in [
        (
            decision("d", 5, 1, digest(1001)),
            "which is not a policy logged before it",
        ),
        (decision("d", 5, 0, digest(1002)), "which holds"),
    ] {
        reset();
        let mut grown = honest.clone();
        grown.push(bad);
        log.publish(&site, &grown);
        let (code, out) = monitor(&args);
        assert_eq!(code, 2, "{out}");
        assert!(out.contains(expect), "{out}");
    }

    // Cosigned, but long ago: with --max-age the monitor refuses to
    // believe it (exit 1, not proof of misbehaviour).
    reset();
    log.publish(&site, &honest);
    let path = site.join("ledger/checkpoint");
    let mut note = vouch_ledger::Note::parse(&std::fs::read(&path).unwrap()).unwrap();
    note.put_signature(witness.cosign(note.text(), 1_000_000_000)).unwrap();
    std::fs::write(&path, note.to_text()).unwrap();
    let with_witness = [&args[..], &["--witness", &wkey]].concat();
    let (code, out) = monitor(&with_witness);
    assert_eq!(code, 0, "{out}");
    let (code, out) = monitor(&[&with_witness[..], &["--max-age", "1h"]].concat());
    assert!(code == 1 && out.contains("stale: 0 of the 1"), "{out}");

    // A checkpoint not signed by the log's key.
    reset();
    let impostor = ForgedLog {
        signer: NoteSigner::new("log.test/forged", ed25519_dalek::SigningKey::from_bytes(&[6; 32])).unwrap(),
    };
    impostor.publish(&site, &honest);
    let (code, out) = monitor(&args);
    assert!(code == 2 && out.contains("does not verify"), "{out}");
    server.kill().unwrap();
    server.wait().unwrap();
}
