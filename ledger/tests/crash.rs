//! Crash test: a child process appends at full speed from many tasks and is
//! killed with SIGKILL at a random moment, several times over one store.
//! After each kill the store is reopened and must hold every entry the child
//! saw acknowledged, byte for byte; fsck must pass; and the new checkpoint
//! must be consistent with every checkpoint the child saw signed.
//!
//! Bounded: ROUNDS kills, each after at most MAX_RUN_MS of appending.

use base64::{engine::general_purpose::STANDARD as B64, Engine as _};
use rand::Rng as _;
use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vouch_ledger::store::Ledger;
use vouch_ledger::{Checkpoint, NoteSigner};

const ROUNDS: usize = 6;
const MIN_RUN_MS: u64 = 30;
const MAX_RUN_MS: u64 = 600;
const TASKS: usize = 64;
const CHILD_ENV: &str = "VOUCH_LEDGER_CRASH_CHILD";

fn signer() -> NoteSigner {
    NoteSigner::new("crash.test/log", ed25519_dalek::SigningKey::from_bytes(&[9; 32])).unwrap()
}

fn main() {
    match std::env::var(CHILD_ENV) {
        Ok(spec) => child(&spec),
        Err(_) => parent(),
    }
}

/// Appends forever; prints `ack <index> <entry>` after each acknowledged
/// append and `cp <base64 note>` for checkpoints, one line each.
fn child(spec: &str) {
    let (dir, round) = spec.split_once('#').expect("dir#round");
    let ledger = Ledger::open(dir.as_ref(), signer()).expect("child opens the ledger");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async move {
        println!("ready {}", ledger.size());
        for task in 0..TASKS {
            let ledger = ledger.clone();
            let round = round.to_owned();
            tokio::spawn(async move {
                for n in 0u64.. {
                    let mut entry = format!("r{round}t{task}n{n}-");
                    entry.extend(std::iter::repeat_n('x', 200 + (n as usize % 56)));
                    let index = ledger.append(entry.clone().into_bytes()).await.expect("append");
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {index} {entry}").unwrap();
                    out.flush().unwrap();
                }
            });
        }
        loop {
            let note = ledger.checkpoint();
            let mut out = std::io::stdout().lock();
            writeln!(out, "cp {}", B64.encode(note.as_bytes())).unwrap();
            out.flush().unwrap();
            drop(out);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
}

fn parent() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let mut total_checkpoints = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .env(CHILD_ENV, format!("{}#{round}", dir.path().display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        let run = Duration::from_millis(rng.gen_range(MIN_RUN_MS..=MAX_RUN_MS));
        std::thread::sleep(run);
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "child should have died by SIGKILL, got {status}");
        let lines = reader.join().unwrap();

        let mut checkpoints = Vec::new();
        let mut acks_this_round = 0;
        for line in &lines {
            match line.split_once(' ') {
                Some(("ack", rest)) => {
                    let (index, entry) = rest.split_once(' ').expect("ack line");
                    let index: u64 = index.parse().unwrap();
                    assert!(
                        acked.insert(index, entry.to_owned()).is_none(),
                        "index {index} acknowledged twice"
                    );
                    acks_this_round += 1;
                }
                Some(("cp", b64)) => checkpoints.push(B64.decode(b64).unwrap()),
                Some(("ready", _)) => {}
                _ => panic!("unexpected child output {line:?}"),
            }
        }
        total_checkpoints += checkpoints.len();

        let ledger = Ledger::open(dir.path(), signer()).expect("reopen after SIGKILL");
        let size = ledger.size();
        for (&index, entry) in &acked {
            let stored = ledger.entry(index).unwrap();
            assert_eq!(
                stored.as_deref(),
                Some(entry.as_bytes()),
                "acknowledged entry {index} lost or changed"
            );
        }
        assert!(acked.keys().next_back().is_none_or(|&max| max < size));
        let report = ledger.fsck(|_| {}).expect("fsck after crash");
        assert_eq!(report.entries, size);
        let now = Checkpoint::open(ledger.checkpoint().as_bytes(), ledger.verifier()).unwrap();
        for note in &checkpoints {
            let old = Checkpoint::open(note, ledger.verifier()).expect("child's checkpoint verifies");
            assert!(
                old.size <= now.size,
                "checkpoint of size {} lost (now {})",
                old.size,
                now.size
            );
            let proof = ledger.consistency_proof(old.size, now.size).unwrap();
            vouch_ledger::verify_consistency(old.size, now.size, &proof, &old.root, &now.root)
                .unwrap_or_else(|e| panic!("checkpoint {} inconsistent with {}: {e}", old.size, now.size));
        }
        eprintln!(
            "crash round {round}: killed after {run:?}; {acks_this_round} acks, {} checkpoints seen; reopened at size {size}, fsck ok",
            checkpoints.len()
        );
    }
    assert!(
        acked.len() > 1000,
        "the child barely appended ({} acks); the test proved little",
        acked.len()
    );
    assert!(total_checkpoints > ROUNDS, "too few checkpoints observed");
    println!(
        "test crash_recovery ... ok ({} rounds, {} acknowledged entries verified)",
        ROUNDS,
        acked.len()
    );
    // The libtest summary line, so runners count this harness-less test.
    println!(
        "\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s",
        started.elapsed().as_secs_f64()
    );
}
