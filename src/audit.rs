//! `vouch audit`: check, from outside, that a vouch ledger only ever grows,
//! and optionally replay all of it.
//!
//! Built on the ledger's verification half and an HTTP client only: it
//! shares no code path with the server that writes the log.

use clap::Args;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;
use vouch_ledger::entry::{Entry, PolicyEntry};
use vouch_ledger::fsck::{fsck, TileSource};
use vouch_ledger::tile::{decode_bundle, TileAddr, TileKind, TILE_WIDTH};
use vouch_ledger::{verify_consistency, Checkpoint, Hash, VerifierKey};

/// Options of `vouch audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The registry's base URL, e.g. http://127.0.0.1:5000 (the ledger is
    /// read from <url>/ledger/).
    #[arg(long, value_name = "URL")]
    log: String,
    /// The log's verifier key (`<origin>+<id>+<key>`), or a file holding it
    /// such as the registry's <data>/ledger.vkey.
    #[arg(long, value_name = "VKEY|FILE")]
    log_key: String,
    /// File remembering the last verified checkpoint. The new checkpoint must
    /// be consistent with it; it is replaced only when the audit passes.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Also fetch every tile and entry bundle, recompute the tree, and check
    /// every entry: it decodes, and each decision names a policy logged
    /// earlier at the index it claims, with the same digest.
    #[arg(long)]
    replay: bool,
    #[command(flatten)]
    witnesses: crate::witness_trust::WitnessTrust,
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Log {
    base: String,
    agent: ureq::Agent,
}

impl Log {
    fn get(&self, path: &str) -> Result<Vec<u8>> {
        let url = format!("{}/ledger/{path}", self.base);
        let mut resp = self.agent.get(&url).call().map_err(|e| format!("GET {url}: {e}"))?;
        Ok(resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .map_err(|e| format!("GET {url}: {e}"))?)
    }
}

pub fn run(args: AuditArgs) -> Result<()> {
    let key_text = match std::fs::read_to_string(&args.log_key) {
        Ok(t) => t,
        Err(_) => args.log_key.clone(),
    };
    let key = VerifierKey::parse(key_text.trim())?;
    let witnesses = args.witnesses.policy()?;
    let log = Log {
        base: args.log.trim_end_matches('/').to_owned(),
        agent: ureq::Agent::new_with_defaults(),
    };
    let note = log.get("checkpoint")?;
    let new = Checkpoint::open(&note, &key).map_err(|e| format!("the log's checkpoint does not verify: {e}"))?;
    println!(
        "checkpoint: size {} root {} (signature by {} verified)",
        new.size,
        new.root.to_base64(),
        key.name()
    );
    if let Some(state) = &args.state {
        match std::fs::read(state) {
            Ok(old_note) => {
                let old = Checkpoint::open(&old_note, &key)
                    .map_err(|e| format!("the remembered checkpoint in {} does not verify: {e}", state.display()))?;
                check_growth(&log, &old, &new)?;
                println!("consistent with the remembered checkpoint of size {}", old.size);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("no remembered checkpoint yet; {} will hold this one", state.display());
            }
            Err(e) => return Err(format!("{}: {e}", state.display()).into()),
        }
    }

    // After the growth check: a fork signed by the log is misbehaviour
    // whatever witnesses say of it.
    if let Some(policy) = &witnesses {
        let parsed = vouch_ledger::Note::parse(&note)?;
        let cosigned = policy.check(&parsed, new.size)?;
        let names: Vec<&str> = cosigned.iter().map(|(n, _)| n.as_str()).collect();
        println!("cosigned by {} witness(es): {}", names.len(), names.join(", "));
    }
    if args.replay {
        replay(&log, &new)?;
    }
    if let Some(state) = &args.state {
        let tmp = state.with_extension("tmp");
        std::fs::write(&tmp, &note)?;
        std::fs::rename(&tmp, state)?;
    }
    println!("audit: ok");
    Ok(())
}

/// The log only grew from `old` to `new`: never smaller, never a second root
/// for one size, and a consistency proof that verifies.
fn check_growth(log: &Log, old: &Checkpoint, new: &Checkpoint) -> Result<()> {
    if new.size < old.size {
        return Err(format!(
            "the log shrank: it now has {} entries, but {} were checkpointed before",
            new.size, old.size
        )
        .into());
    }
    if new.size == old.size {
        if new.root != old.root {
            return Err(format!(
                "fork: two different roots signed for size {}: {} and {}",
                new.size,
                old.root.to_base64(),
                new.root.to_base64()
            )
            .into());
        }
        return Ok(());
    }
    let body = log.get(&format!("proof/consistency?old={}&new={}", old.size, new.size))?;
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    let proof: Vec<Hash> = v["proof"]
        .as_array()
        .ok_or("consistency proof: no proof array")?
        .iter()
        .map(|h| {
            h.as_str()
                .and_then(Hash::from_base64)
                .ok_or("consistency proof: a hash is not base64")
        })
        .collect::<std::result::Result<_, _>>()?;
    verify_consistency(old.size, new.size, &proof, &old.root, &new.root).map_err(|e| {
        format!(
            "fork: the log of size {} is not an extension of the one of size {} seen before: {e}",
            new.size, old.size
        )
    })?;
    Ok(())
}

/// Tiles over HTTP that also checks each entry as its bundle goes by.
struct Replay<'a> {
    log: &'a Log,
    policies: std::cell::RefCell<HashMap<u64, PolicyEntry>>,
    problem: std::cell::RefCell<Option<String>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ReplayError(String);

impl TileSource for Replay<'_> {
    type Error = ReplayError;
    fn read_tile(&self, addr: TileAddr) -> std::result::Result<Vec<u8>, ReplayError> {
        let bytes = self
            .log
            .get(&addr.to_string())
            .map_err(|e| ReplayError(e.to_string()))?;
        if addr.kind == TileKind::Entries {
            for (i, e) in decode_bundle(&bytes).unwrap_or_default().into_iter().enumerate() {
                let index = addr.index * TILE_WIDTH + i as u64;
                if let Err(problem) = self.check_entry(index, e) {
                    self.problem.borrow_mut().get_or_insert(problem);
                }
            }
        }
        Ok(bytes)
    }
}

impl Replay<'_> {
    fn check_entry(&self, index: u64, bytes: &[u8]) -> std::result::Result<(), String> {
        let entry = Entry::decode(bytes).map_err(|e| format!("entry {index} does not decode: {e}"))?;
        match entry {
            Entry::Policy(p) => {
                self.policies.borrow_mut().insert(index, p);
            }
            Entry::Decision(d) => {
                let policies = self.policies.borrow();
                let named = policies.get(&d.policy_index).ok_or_else(|| {
                    format!("entry {index}: decision for {}@{} names policy entry {}, which is not a policy logged before it", d.repo, d.digest, d.policy_index)
                })?;
                if named.digest != d.policy {
                    return Err(format!(
                        "entry {index}: decision names policy {} at entry {}, which holds policy {}",
                        d.policy, d.policy_index, named.digest
                    ));
                }
            }
            Entry::Tag(_) | Entry::Delete(_) => {}
        }
        Ok(())
    }
}

fn replay(log: &Log, checkpoint: &Checkpoint) -> Result<()> {
    let start = Instant::now();
    let source = Replay {
        log,
        policies: Default::default(),
        problem: Default::default(),
    };
    let mut last = Instant::now();
    let size = checkpoint.size;
    let report = fsck(&source, checkpoint, |done| {
        if last.elapsed().as_millis() >= 500 {
            last = Instant::now();
            eprintln!(
                "replay: {done}/{size} entries ({}%)",
                (done * 100).checked_div(size).unwrap_or(100)
            );
        }
    })
    .map_err(|e| format!("replay: {e}"))?;
    if let Some(problem) = source.problem.borrow_mut().take() {
        return Err(format!("replay: {problem}").into());
    }
    println!(
        "replay: {} entries and {} tiles recomputed; root matches; every entry decodes; {} policies, every decision names one ({:.1?})",
        report.entries,
        report.tiles,
        source.policies.borrow().len(),
        start.elapsed()
    );
    Ok(())
}
