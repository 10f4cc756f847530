//! Witnesses end to end (c2sp.org/tlog-witness, tlog-cosignature), with
//! real processes: `vouch serve --witness` against `vouch witness` and
//! against an independent witness written from the spec in Python
//! (tests/witness_peer.py); the Python client against `vouch witness`;
//! every refusal the spec names; a witness killed mid-request; and a log
//! that tries to show two histories.

mod common;

use common::witnesses::*;
use std::process::{Command, Stdio};
use vouch_ledger::cosignature::CosignerKey;
use vouch_ledger::witness::parse_cosignature_lines;
use vouch_ledger::Note;

fn vouch(args: &[&str]) -> (bool, String) {
    common::run(Command::new(env!("CARGO_BIN_EXE_vouch")).args(args))
}

fn python(args: &[&str]) -> (bool, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/witness_peer.py");
    common::run(Command::new("python3").arg(script).args(args))
}

/// The log key of a data directory a server created.
fn log_vkey(data: &std::path::Path) -> String {
    std::fs::read_to_string(data.join("ledger.vkey"))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn checkpoints_are_cosigned_by_vouch_and_independent_witnesses_and_clients_require_them() {
    if !common::have_python_module("cryptography") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // A first start creates the log key the witnesses are configured with.
    let (mut first, _) = common::start_server(&data, &[], Stdio::null());
    first.kill().unwrap();
    first.wait().unwrap();
    let log = log_vkey(&data);
    std::fs::create_dir_all(tmp.path().join("w2")).unwrap();
    let w1 = start_vouch_witness(
        &tmp.path().join("w1"),
        "witness.test/vouch",
        std::slice::from_ref(&log),
        &[],
    );
    let w2 = start_python_witness(
        &tmp.path().join("w2"),
        "witness.test/python",
        7,
        std::slice::from_ref(&log),
    );
    let flags = [
        format!("w1=http://{}+{}", w1.addr, w1.vkey),
        format!("w2=http://{}/some/prefix+{}", w2.addr, w2.vkey),
    ];
    let (mut server, addr) =
        common::start_server(&data, &["--witness", &flags[0], "--witness", &flags[1]], Stdio::null());
    let digest = push_tiny_image(&addr, "team/app", "v1", "a");
    let size = ledger_size(&addr);
    let note = wait_for_cosigned(&addr, size, 2);

    // Independently verified: the log's signature and both cosignatures.
    let note_file = tmp.path().join("checkpoint");
    std::fs::write(&note_file, &note).unwrap();
    let (ok, out) = python(&[
        "verify",
        "--log-vkey",
        &log,
        "--witness-vkey",
        &w1.vkey,
        "--witness-vkey",
        &w2.vkey,
        "--threshold",
        "2",
        note_file.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("witness.test/vouch") && out.contains("witness.test/python"),
        "{out}"
    );

    // vouch verify: the bundle's checkpoint carries both.
    let image = format!("{addr}/team/app@{digest}");
    let key_file = data.join("ledger.vkey");
    let key = key_file.to_str().unwrap();
    let (ok, out) = vouch(&[
        "verify",
        &image,
        "--log-key",
        key,
        "--witness",
        &w1.vkey,
        "--witness",
        &w2.vkey,
        "--output",
        "json",
    ]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["witnesses"].as_array().unwrap().len(), 2, "{out}");

    // A witness that never saw this log: all three required fails, naming it.
    let stranger = vouch_ledger::cosignature::Cosigner::new(
        "witness.test/stranger",
        ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
    )
    .unwrap();
    let stranger = stranger.verifier().to_string();
    let args = [
        "verify",
        &image,
        "--log-key",
        key,
        "--witness",
        &w1.vkey,
        "--witness",
        &w2.vkey,
    ];
    let (ok, out) = vouch(&[&args[..], &["--witness", &stranger]].concat());
    assert!(!ok && out.contains("missing: witness.test/stranger"), "{out}");
    // ... and two of three suffices.
    let (ok, out) = vouch(&[&args[..], &["--witness", &stranger, "--witness-threshold", "2"]].concat());
    assert!(ok, "{out}");
    let url = format!("http://{addr}");
    let (ok, out) = vouch(&["audit", "--log", &url, "--log-key", key, "--witness", &w2.vkey]);
    assert!(
        ok && out.contains("cosigned by 1 witness(es): witness.test/python"),
        "{out}"
    );

    // Growth: the next checkpoint is cosigned with proofs from the last.
    push_tiny_image(&addr, "team/app", "v2", "b");
    wait_for_cosigned(&addr, ledger_size(&addr), 2);

    // A restart serves the cosigned checkpoint at once (kept on disk).
    server.kill().unwrap();
    server.wait().unwrap();
    let (mut server, addr) =
        common::start_server(&data, &["--witness", &flags[0], "--witness", &flags[1]], Stdio::null());
    let r = common::http(&addr, "GET", "/ledger/checkpoint", &[], &[]).unwrap();
    assert_eq!(String::from_utf8_lossy(&r.body).matches('\u{2014}').count(), 3);
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn until_witnesses_cosign_no_checkpoint_is_served_and_one_witness_counts_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let key =
        vouch_ledger::cosignature::Cosigner::new("witness.test/down", ed25519_dalek::SigningKey::from_bytes(&[4; 32]))
            .unwrap();
    let vkey = key.verifier().to_string();
    // A witness nobody listens for: the served checkpoint would otherwise
    // be the newest, then go back to the first cosigned one.
    let down = format!("w=http://127.0.0.1:9+{vkey}");
    let (mut server, addr) = common::start_server(&data, &["--witness", &down], Stdio::null());
    let r = common::http(&addr, "GET", "/ledger/checkpoint", &[], &[]).unwrap();
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("retry-after"), Some("1"));
    server.kill().unwrap();
    server.wait().unwrap();

    // The same witness twice is one witness: refused, not counted twice.
    let twice = format!("w2=http://127.0.0.1:10+{vkey}");
    let (ok, out) = common::run(
        Command::new(env!("CARGO_BIN_EXE_vouch"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .args(["--witness", &down, "--witness", &twice]),
    );
    assert!(!ok && out.contains("are the same witness"), "{out}");
    let (ok, out) = vouch(&[
        "audit",
        "--log",
        "http://127.0.0.1:9",
        "--log-key",
        &log_vkey(&data),
        "--witness",
        &vkey,
        "--witness",
        &vkey,
    ]);
    assert!(!ok && out.contains("are the same witness"), "{out}");
}

#[test]
fn the_independent_client_gets_cosignatures_from_vouch_witness() {
    if !common::have_python_module("cryptography") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (mut server, addr) = common::start_server(&data, &[], Stdio::null());
    let log = log_vkey(&data);
    let w = start_vouch_witness(&tmp.path().join("w"), "witness.test/w", std::slice::from_ref(&log), &[]);
    let add = || {
        python(&[
            "add",
            "--witness-url",
            &format!("http://{}", w.addr),
            "--log-url",
            &format!("http://{addr}"),
            "--log-vkey",
            &log,
            "--witness-vkey",
            &w.vkey,
        ])
    };
    let (ok, out) = add();
    assert!(ok, "{out}");
    push_tiny_image(&addr, "app", "v1", "x");
    // The client learns the witness's size from a 409 and proves growth.
    let (ok, out) = add();
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["size"].as_u64(), Some(ledger_size(&addr)), "{out}");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn vouch_witness_refuses_what_the_spec_refuses_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let log = TestLog::new("log.test/a", 1, 40, "honest");
    let fork = TestLog::new("log.test/a", 1, 40, "forked");
    let other_key = TestLog::new("log.test/a", 2, 40, "honest");
    let unknown = TestLog::new("log.test/unknown", 3, 40, "honest");
    let w = start_vouch_witness(&tmp.path().join("w"), "witness.test/w", &[log.vkey()], &[]);
    let key = CosignerKey::parse(&w.vkey).unwrap();
    let post = |body: &[u8]| add_checkpoint(&w.addr, body);

    // First contact: old 0, no proof.
    let (status, _, body) = post(&log.request(0, 10));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let cosigned = |size: u64, body: &[u8]| {
        let mut note = Note::parse(log.checkpoint(size).as_bytes()).unwrap();
        for sig in parse_cosignature_lines(body).unwrap() {
            note.put_signature(sig).unwrap();
        }
        key.verify(&note).unwrap().is_some()
    };
    assert!(cosigned(10, &body));

    let refusals: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unknown log", unknown.request(10, 20), 404),
        ("signed by another key", other_key.request(10, 20), 403),
        ("rollback: old past the checkpoint", log.request(20, 15), 400),
        ("old is not the witness's size", log.request(5, 20), 409),
        ("fork at the same size", fork.request(10, 10), 409),
        ("proof from a forked tree", fork.request(10, 20), 422),
        ("malformed body", b"old ten\n\nx".to_vec(), 400),
    ];
    for (what, body, want) in &refusals {
        let (status, ct, answer) = post(body);
        assert_eq!(status, *want, "{what}: {}", String::from_utf8_lossy(&answer));
        if *what == "old is not the witness's size" {
            assert_eq!((ct.as_str(), answer.as_slice()), ("text/x.tlog.size", &b"10\n"[..]));
        }
    }
    // A bad proof: one hash changed.
    let mut bad = String::from_utf8(log.request(10, 20)).unwrap();
    let line = bad.lines().nth(1).unwrap().to_owned();
    let flipped = format!("{}{}", if line.starts_with('A') { 'B' } else { 'A' }, &line[1..]);
    bad = bad.replacen(&line, &flipped, 1);
    assert_eq!(post(bad.as_bytes()).0, 422);

    // None of those moved the record: size 10 still, growth from it works.
    let (status, ct, body) = post(&log.request(0, 20));
    assert_eq!(
        (status, ct.as_str(), body.as_slice()),
        (409, "text/x.tlog.size", &b"10\n"[..])
    );
    let (status, _, body) = post(&log.request(10, 20));
    assert_eq!(status, 200);
    assert!(cosigned(20, &body));
    // The same checkpoint again is cosigned again (old = size, same root).
    assert_eq!(post(&log.request(20, 20)).0, 200);

    // A rate limit per log: 1 a second, bursts of 2.
    let slow = start_vouch_witness(
        &tmp.path().join("slow"),
        "witness.test/slow",
        &[log.vkey()],
        &["--rate-per-log", "1"],
    );
    let statuses: Vec<u16> = (0..4)
        .map(|_| add_checkpoint(&slow.addr, &log.request(0, 5)).0)
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
}

/// The witness is killed (-9) at random points while a client keeps
/// growing the log; after each restart it must remember at least every
/// size it cosigned, and never cosign a fork of anything it cosigned.
#[test]
fn a_witness_killed_mid_request_never_cosigns_an_inconsistent_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("w");
    let log = std::sync::Arc::new(TestLog::new("log.test/crash", 1, 3000, "honest"));
    let fork = TestLog::new("log.test/crash", 1, 3000, "forked");
    let mut acked = 0u64;
    for round in 0..4u64 {
        let w = start_vouch_witness(&dir, "witness.test/crash", &[log.vkey()], &["--rate-per-log", "100000"]);
        // Learn the witness's size after the restart: at least what it acked.
        let (status, _, body) = add_checkpoint(&w.addr, &log.request(0, 1));
        let mut size = if status == 409 {
            String::from_utf8(body).unwrap().trim().parse().unwrap()
        } else {
            assert_eq!(status, 200);
            1
        };
        assert!(
            size >= acked,
            "round {round}: the witness forgot size {acked}, it is at {size}"
        );
        if size > 0 {
            // Never a second root for a size it cosigned...
            assert_eq!(add_checkpoint(&w.addr, &fork.request(size, size)).0, 409);
            // ... nor growth from a fork.
            assert_eq!(add_checkpoint(&w.addr, &fork.request(size, size + 3)).0, 422);
        }
        let (addr, log) = (w.addr.clone(), log.clone());
        let kill_after = std::time::Duration::from_millis(30 + (round * 37) % 90);
        let client = std::thread::spawn(move || {
            let mut acked = size;
            let start = std::time::Instant::now();
            while size < 2999 && start.elapsed() < kill_after * 3 {
                let next = size + 1;
                let Ok(r) = common::http(&addr, "POST", "/add-checkpoint", &[], &log.request(size, next)) else {
                    break;
                };
                if r.status == 200 {
                    acked = next;
                    size = next;
                } else {
                    break;
                }
            }
            acked
        });
        std::thread::sleep(kill_after);
        drop(w); // SIGKILL
        acked = acked.max(client.join().unwrap());
        eprintln!("round {round}: the witness had cosigned up to size {acked} when killed");
    }
    assert!(acked > 0, "no checkpoint was ever cosigned");
}

/// A log holding its key tries to show history A to some witnesses and a
/// fork B of the same size to others, in every order: with 3 witnesses
/// and a threshold of 2 (a majority), at most one of A and B ever gathers
/// the threshold, and every witness cosigns at most one of them.
#[test]
fn a_split_view_never_gathers_a_threshold_on_both_sides() {
    if !common::have_python_module("cryptography") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // One log origin per attempt, so that every attempt starts fresh.
    let attempts: Vec<(TestLog, TestLog)> = (0..8u8)
        .map(|i| {
            let origin = format!("log.test/split{i}");
            (
                TestLog::new(&origin, 10 + i, 12, "A"),
                TestLog::new(&origin, 10 + i, 12, "B"),
            )
        })
        .collect();
    let logs: Vec<String> = attempts.iter().map(|(a, _)| a.vkey()).collect();
    std::fs::create_dir_all(tmp.path().join("w3")).unwrap();
    let witnesses = [
        start_vouch_witness(&tmp.path().join("w1"), "witness.test/1", &logs, &[]),
        start_vouch_witness(&tmp.path().join("w2"), "witness.test/2", &logs, &[]),
        start_python_witness(&tmp.path().join("w3"), "witness.test/3", 3, &logs),
    ];
    for (attempt, (a, b)) in attempts.iter().enumerate() {
        // Bit k of the attempt: witness k is offered B first, then A.
        let (mut on_a, mut on_b) = (0, 0);
        for (k, w) in witnesses.iter().enumerate() {
            let order: [(&TestLog, &mut i32); 2] = if attempt >> k & 1 == 1 {
                [(b, &mut on_b), (a, &mut on_a)]
            } else {
                [(a, &mut on_a), (b, &mut on_b)]
            };
            let mut cosigned_here = 0;
            for (side, count) in order {
                // The log offers the checkpoint as a first contact, then
                // with the size the witness names, as an honest log would.
                let (mut status, _, body) = add_checkpoint(&w.addr, &side.request(0, 12));
                if status == 409 {
                    let theirs: u64 = String::from_utf8(body).unwrap().trim().parse().unwrap_or(0);
                    status = add_checkpoint(&w.addr, &side.request(theirs, 12)).0;
                }
                if status == 200 {
                    *count += 1;
                    cosigned_here += 1;
                }
            }
            assert_eq!(
                cosigned_here, 1,
                "attempt {attempt}: witness {k} cosigned {cosigned_here} of A and B"
            );
        }
        assert!(
            !(on_a >= 2 && on_b >= 2),
            "attempt {attempt}: both histories reached the threshold ({on_a} and {on_b})"
        );
    }
}
