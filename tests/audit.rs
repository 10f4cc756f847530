//! `vouch audit` against the real `vouch serve`: growth is proven with
//! consistency proofs across runs (--state), --replay recomputes the tree and
//! checks every entry, and forks, broken entries and wrong keys are named.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use vouch::data_dir::DataDir;
use vouch_ledger::entry::*;

fn digest(n: u64) -> Digest {
    Digest::parse(&format!("sha256:{n:064x}")).unwrap()
}

/// Appends a policy (unless `policy_at` is given) and `n` decisions naming it.
fn append(data: &Path, n: u64, policy_at: Option<u64>, seed: u64) {
    let opened = DataDir::new(data).open_ledger("audit.test/vouch").unwrap();
    let policy_index = match policy_at {
        Some(i) => i,
        None => {
            let p = Entry::Policy(PolicyEntry {
                name: "default".into(),
                version: 1,
                digest: digest(7),
            });
            opened.ledger.append_blocking(p.encode().unwrap()).unwrap()
        }
    };
    for i in 0..n {
        let d = Entry::Decision(DecisionEntry {
            repo: "audit/app".into(),
            digest: digest(seed * 1_000_000 + i),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            verdict: Verdict::Admit,
            reasons: vec![],
            evidence: vec![],
            signers: vec![],
            policy: digest(7),
            policy_index,
            time: 1_764_000_000,
        });
        opened.ledger.append_blocking(d.encode().unwrap()).unwrap();
    }
}

fn audit(addr: &str, key: &Path, state: &Path, replay: bool) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vouch"));
    cmd.args(["audit", "--log", &format!("http://{addr}"), "--log-key"])
        .arg(key)
        .arg("--state")
        .arg(state);
    if replay {
        cmd.arg("--replay");
    }
    common::run(&mut cmd)
}

#[test]
fn audit_proves_growth_replays_and_names_forks_and_broken_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (d1, state) = (dir.path().join("d1"), dir.path().join("audit.state"));
    append(&d1, 300, None, 1);
    let key = d1.join("ledger.vkey");

    // The server logs its (open) policy when it first starts: entry 301.
    let (mut server, addr) = common::start_server(&d1, &[], Stdio::null());
    let (ok, out) = audit(&addr, &key, &state, true);
    assert!(ok, "{out}");
    assert!(
        out.contains("checkpoint: size 302") && out.contains("replay: 302 entries") && out.contains("2 policies"),
        "{out}"
    );
    server.kill().unwrap();
    server.wait().unwrap();

    // The log grows; the next audit proves it is an extension of the last.
    append(&d1, 200, Some(0), 2);
    let (mut server, addr) = common::start_server(&d1, &[], Stdio::null());
    let (ok, out) = audit(&addr, &key, &state, false);
    assert!(
        ok && out.contains("consistent with the remembered checkpoint of size 302"),
        "{out}"
    );
    // A wrong key is refused before anything else.
    let other =
        vouch_ledger::NoteSigner::new("audit.test/vouch", ed25519_dalek::SigningKey::from_bytes(&[4; 32])).unwrap();
    let other_key = dir.path().join("other.vkey");
    std::fs::write(&other_key, other.verifier().to_string()).unwrap();
    let (ok, out) = audit(&addr, &other_key, &dir.path().join("unused.state"), false);
    assert!(!ok && out.contains("does not verify"), "{out}");
    server.kill().unwrap();
    server.wait().unwrap();

    // A fork: the same key signs a different history, longer than the last seen.
    let d2 = dir.path().join("d2");
    std::fs::create_dir_all(&d2).unwrap();
    std::fs::copy(d1.join("ledger.key"), d2.join("ledger.key")).unwrap();
    append(&d2, 600, None, 3);
    let (mut server, addr) = common::start_server(&d2, &[], Stdio::null());
    let before = std::fs::read(&state).unwrap();
    let (ok, out) = audit(&addr, &key, &state, false);
    assert!(
        !ok && out.contains("fork: the log of size 602 is not an extension of the one of size 502"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(&state).unwrap(),
        before,
        "a failed audit keeps the remembered checkpoint"
    );
    server.kill().unwrap();
    server.wait().unwrap();

    // A decision naming a policy that was never logged.
    let d3 = dir.path().join("d3");
    append(&d3, 5, Some(3), 4);
    let (mut server, addr) = common::start_server(&d3, &[], Stdio::null());
    let (ok, out) = audit(&addr, &d3.join("ledger.vkey"), &dir.path().join("d3.state"), true);
    assert!(
        !ok && out.contains("names policy entry 3, which is not a policy logged before it"),
        "{out}"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}
