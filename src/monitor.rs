//! `vouch monitor`: follow a vouch ledger and raise an alarm when it
//! misbehaves or admits what a team watches for (spec/witness.md,
//! "Monitor").
//!
//! Each poll reads the checkpoint, checks the log's signature (and the
//! witnesses' cosignatures, if asked), then reads every new entry from the
//! tlog-tiles entry bundles and appends it to the tree it remembers (its
//! right edge): the new root must be the checkpoint's. That one check proves
//! both that the log only grew and that the entries are the ones the
//! checkpoint commits to. Every entry is then checked against the ledger's
//! invariants. Built on the ledger's verification half and an HTTP client:
//! no server code.
//!
//! Exit codes: 0 all well; 1 the monitor could not do its job (network,
//! bad arguments, a state file it cannot read; when following, retried, and
//! alerted after 3 polls in a row); 2 the log misbehaved (fork, shrink, a
//! bad signature, an entry breaking an invariant); 3 with `--once`, an
//! admission matching `--watch` was seen.

use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use vouch_ledger::edge::{levels, Edge};
use vouch_ledger::entry::{Entry, Verdict};
use vouch_ledger::tile::{decode_bundle, TileAddr, TileKind, TILE_WIDTH};
use vouch_ledger::{leaf_hash, Checkpoint, Hash, Note, VerifierKey};

/// Options of `vouch monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The registry's base URL (the ledger is read from <url>/ledger/), or
    /// any static copy of its tiles.
    #[arg(long, value_name = "URL")]
    log: String,
    /// The log's verifier key (`<origin>+<id>+<key>`), or a file holding it.
    #[arg(long, value_name = "VKEY|FILE")]
    log_key: String,
    /// Where the monitor remembers what it verified (the checkpoint, the
    /// tree's right edge, the policies logged): the next run, or the next
    /// poll, starts there. Without it every run starts from entry 0.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Check once and exit (for cron or CI); otherwise poll forever.
    #[arg(long)]
    once: bool,
    /// Time between polls, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    interval: u64,
    /// Alert when an image in a repository matching this glob is admitted
    /// (`*` within a path segment, `**` across). Repeatable.
    #[arg(long, value_name = "GLOB")]
    watch: Vec<String>,
    /// Alert when an admission names a signer matching this glob (a key
    /// fingerprint or a certificate identity). Repeatable.
    #[arg(long, value_name = "GLOB")]
    watch_signer: Vec<String>,
    /// Also POST each alert as JSON to this URL (`{"alert", "message",
    /// "log", "index"}`).
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    #[command(flatten)]
    witnesses: crate::witness_trust::WitnessTrust,
    /// With --witness: the threshold of cosignatures must be at most this
    /// old (`15m`, `2h`). A vouch log has its checkpoint cosigned again
    /// every minute even when idle, so stale cosignatures mean the log is
    /// showing this monitor an old state (or its witnesses are down).
    #[arg(long, value_name = "DURATION", requires = "witnesses", value_parser = vouch::policy::image::parse_duration)]
    max_age: Option<u64>,
}

/// What the monitor has verified so far.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Remembered {
    /// The last verified checkpoint note.
    checkpoint: Option<String>,
    /// The tree's right edge at that size, per tile level, base64 hashes.
    edge: Vec<Vec<String>>,
    /// Index → digest of every policy entry seen.
    policies: BTreeMap<u64, String>,
}

/// Why a poll ended badly.
enum Trouble {
    /// The monitor could not check (exit 1; retried when following).
    Failed(String),
    /// The log misbehaved (exit 2, always).
    Misbehaved(String),
}

impl From<String> for Trouble {
    fn from(e: String) -> Self {
        Trouble::Failed(e)
    }
}

struct Monitor {
    args: MonitorArgs,
    key: VerifierKey,
    witnesses: Option<vouch_ledger::cosignature::WitnessPolicy>,
    agent: ureq::Agent,
    base: String,
    edge: Edge,
    root: Hash,
    remembered: Remembered,
    watched_seen: bool,
    /// Polls in a row that could not check the log.
    failures: u32,
}

/// After this many polls in a row that could not check the log (it does
/// not answer, serves no cosigned checkpoint, withholds tiles), following
/// mode alerts: a log that cannot be checked is a log that may be hiding.
const FAILURES_BEFORE_ALERT: u32 = 3;

pub fn run(args: MonitorArgs) -> ExitCode {
    match Monitor::new(args) {
        Ok(m) => m.run(),
        Err(e) => {
            eprintln!("vouch monitor: {e}");
            ExitCode::from(1)
        }
    }
}

impl Monitor {
    fn new(args: MonitorArgs) -> Result<Self, String> {
        let text = std::fs::read_to_string(&args.log_key).unwrap_or_else(|_| args.log_key.clone());
        let key = VerifierKey::parse(text.trim()).map_err(|e| format!("--log-key: {e}"))?;
        let witnesses = args.witnesses.policy()?;
        let remembered: Remembered = match args.state.as_ref().map(std::fs::read) {
            Some(Ok(bytes)) => serde_json::from_slice(&bytes).map_err(|e| format!("state file: {e}"))?,
            Some(Err(e)) if e.kind() != std::io::ErrorKind::NotFound => return Err(format!("state file: {e}")),
            _ => Remembered::default(),
        };
        let (edge, root) = restore_edge(&remembered, &key)?;
        Ok(Self {
            base: args.log.trim_end_matches('/').to_owned(),
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(60)))
                .build()
                .new_agent(),
            args,
            key,
            witnesses,
            edge,
            root,
            remembered,
            watched_seen: false,
            failures: 0,
        })
    }

    fn run(mut self) -> ExitCode {
        loop {
            match self.poll() {
                Ok(()) => self.failures = 0,
                Err(Trouble::Misbehaved(m)) => {
                    self.alert("misbehaviour", &m, None);
                    return ExitCode::from(2);
                }
                Err(Trouble::Failed(e)) if self.args.once => {
                    eprintln!("vouch monitor: {e}");
                    return ExitCode::from(1);
                }
                Err(Trouble::Failed(e)) => {
                    self.failures += 1;
                    eprintln!("vouch monitor: {e} (retrying)");
                    if self.failures == FAILURES_BEFORE_ALERT {
                        let msg = format!("{} polls in a row could not check the log: {e}", self.failures);
                        self.alert("unverifiable", &msg, None);
                    }
                }
            }
            if self.args.once {
                return ExitCode::from(if self.watched_seen { 3 } else { 0 });
            }
            std::thread::sleep(Duration::from_secs(self.args.interval.max(1)));
        }
    }

    fn get(&self, path: &str) -> Result<Vec<u8>, String> {
        let url = format!("{}/ledger/{path}", self.base);
        let mut resp = self.agent.get(&url).call().map_err(|e| format!("GET {url}: {e}"))?;
        resp.body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .map_err(|e| format!("GET {url}: {e}"))
    }

    /// One poll: checkpoint, new entries, invariants, state.
    fn poll(&mut self) -> Result<(), Trouble> {
        let bytes = self.get("checkpoint")?;
        let bad = |e: String| Trouble::Misbehaved(e);
        let new = Checkpoint::open(&bytes, &self.key)
            .map_err(|e| bad(format!("the log's checkpoint does not verify with its key: {e}")))?;
        let old_size = self.edge.size();
        if new.size < old_size {
            return Err(bad(format!(
                "the log shrank: its checkpoint has {} entries, {old_size} were verified before",
                new.size
            )));
        }
        if new.size == old_size && new.root != self.root {
            return Err(bad(format!(
                "fork: two roots signed for size {}: {} verified before, {} now",
                new.size,
                self.root.to_base64(),
                new.root.to_base64()
            )));
        }
        // Checked after the shrink and fork checks: a history the log signed
        // is evidence whatever the witnesses say. Too few cosignatures may
        // be a witness outage: nothing to believe yet, not misbehaviour.
        if let Some(policy) = &self.witnesses {
            let note = Note::parse(&bytes).map_err(|e| bad(e.to_string()))?;
            let cosigned = policy
                .check(&note, new.size)
                .map_err(|e| Trouble::Failed(e.to_string()))?;
            if let Some(max) = self.args.max_age {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let fresh = cosigned.iter().filter(|(_, t)| now.saturating_sub(*t) <= max).count();
                if fresh < policy.threshold() {
                    return Err(Trouble::Failed(format!(
                        "stale: {fresh} of the {} cosignatures required are at most {} old; the log may be \
                         showing this monitor an old state, or its witnesses are down",
                        policy.threshold(),
                        vouch::policy::image::show_duration(max)
                    )));
                }
            }
        }
        if new.size == old_size {
            return Ok(());
        }
        let mut edge = self.edge.clone();
        let mut policies = self.remembered.policies.clone();
        let mut alerts = Vec::new();
        self.read_entries(old_size, new.size, |index, bytes| {
            edge.push(leaf_hash(bytes));
            check_entry(index, bytes, &mut policies)
                .map_err(Trouble::Misbehaved)
                .map(|watched| alerts.extend(watched.filter(|w| self.watches(w)).map(|w| (index, w))))
        })?;
        if edge.root() != new.root {
            return Err(bad(format!(
                "fork: the entries from {old_size} to {} do not hash to the checkpoint's root {}: \
                 the log rewrote its history or serves entries it did not sign",
                new.size,
                new.root.to_base64()
            )));
        }
        for (index, w) in alerts {
            self.watched_seen = true;
            let msg = format!(
                "watched admission at ledger entry {index}: {}@{} signed by [{}]",
                w.repo,
                w.digest,
                w.signers.join(", ")
            );
            self.alert("watched-admission", &msg, Some(index));
        }
        eprintln!(
            "monitor: {} verified up to size {} (root {}), {} new entries checked",
            self.key.name(),
            new.size,
            new.root.to_base64(),
            new.size - old_size
        );
        self.edge = edge;
        self.root = new.root;
        self.remembered = Remembered {
            checkpoint: Some(String::from_utf8_lossy(&bytes).into_owned()),
            edge: (0..levels(self.edge.size()) as u8)
                .map(|l| self.edge.row(l).iter().map(Hash::to_base64).collect())
                .collect(),
            policies,
        };
        self.save().map_err(Trouble::Failed)
    }

    /// Calls `each` on entries `from..to`, in order, from the entry bundles
    /// of the tree of `to` entries, with progress on long catch-ups.
    fn read_entries(
        &self,
        from: u64,
        to: u64,
        mut each: impl FnMut(u64, &[u8]) -> Result<(), Trouble>,
    ) -> Result<(), Trouble> {
        let (started, mut last) = (Instant::now(), Instant::now());
        for tile in from / TILE_WIDTH..to.div_ceil(TILE_WIDTH) {
            let addr = TileAddr::for_tree(TileKind::Entries, tile, to).expect("tile within the tree");
            let bytes = self.get(&addr.to_string())?;
            let entries = decode_bundle(&bytes).map_err(|e| Trouble::Misbehaved(format!("{addr}: {e}")))?;
            if entries.len() != usize::from(addr.width) {
                return Err(Trouble::Misbehaved(format!(
                    "{addr} holds {} entries, not {}",
                    entries.len(),
                    addr.width
                )));
            }
            for (i, e) in entries.into_iter().enumerate() {
                let index = tile * TILE_WIDTH + i as u64;
                if index >= from {
                    each(index, e)?;
                }
            }
            if last.elapsed() >= Duration::from_millis(500) {
                last = Instant::now();
                let done = ((tile + 1) * TILE_WIDTH).min(to);
                eprintln!("monitor: read {done}/{to} entries ({:.0?})", started.elapsed());
            }
        }
        Ok(())
    }

    fn watches(&self, d: &vouch_ledger::entry::DecisionEntry) -> bool {
        use vouch::policy::glob_match;
        self.args.watch.iter().any(|g| glob_match(g, &d.repo))
            || self
                .args
                .watch_signer
                .iter()
                .any(|g| d.signers.iter().any(|s| glob_match(g, s)))
    }

    /// An alert: a line on stderr and, if configured, a webhook POST.
    fn alert(&self, kind: &str, message: &str, index: Option<u64>) {
        eprintln!("ALERT {kind}: {} ({}): {message}", self.key.name(), self.base);
        if let Some(url) = &self.args.webhook {
            let body = serde_json::json!({ "alert": kind, "message": message, "log": self.key.name(), "index": index });
            let sent = self
                .agent
                .post(url)
                .header("content-type", "application/json")
                .send(&serde_json::to_vec(&body).expect("serialize")[..]);
            if let Err(e) = sent {
                eprintln!("vouch monitor: webhook {url}: {e}");
            }
        }
    }

    fn save(&self) -> Result<(), String> {
        let Some(path) = &self.args.state else {
            return Ok(());
        };
        let bytes = serde_json::to_vec_pretty(&self.remembered).expect("serialize");
        // Written whole or not at all: a temporary file beside it, synced,
        // renamed over it, the directory synced.
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".writing");
        let tmp = PathBuf::from(tmp);
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, &bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            std::fs::File::open(dir.unwrap_or(std::path::Path::new(".")))?.sync_all()
        };
        write().map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The remembered edge, checked against the remembered checkpoint.
fn restore_edge(r: &Remembered, key: &VerifierKey) -> Result<(Edge, Hash), String> {
    let Some(note) = &r.checkpoint else {
        return Ok((Edge::new(), Hash::empty_tree()));
    };
    let c = Checkpoint::open(note.as_bytes(), key).map_err(|e| format!("state file: its checkpoint: {e}"))?;
    let rows: Option<Vec<Vec<Hash>>> = r
        .edge
        .iter()
        .map(|row| row.iter().map(|h| Hash::from_base64(h)).collect())
        .collect();
    let edge = rows
        .and_then(|rows| Edge::from_rows(c.size, rows))
        .filter(|e| e.root() == c.root)
        .ok_or("state file: its tree edge does not match its checkpoint")?;
    Ok((edge, c.root))
}

/// Checks one entry against the ledger's invariants (spec/ledger.md): it
/// decodes; a decision names a policy logged earlier, at the index it
/// claims, with the digest it claims. Returns an admission decision, for
/// the watch list.
fn check_entry(
    index: u64,
    bytes: &[u8],
    policies: &mut BTreeMap<u64, String>,
) -> Result<Option<vouch_ledger::entry::DecisionEntry>, String> {
    let entry = Entry::decode(bytes).map_err(|e| format!("entry {index} does not decode: {e}"))?;
    match entry {
        Entry::Policy(p) => {
            policies.insert(index, p.digest.as_str().to_owned());
            Ok(None)
        }
        Entry::Decision(d) => {
            match policies.get(&d.policy_index) {
                None => Err(format!(
                    "entry {index}: a decision on {}@{} names policy entry {}, which is not a policy logged before it",
                    d.repo, d.digest, d.policy_index
                )),
                Some(p) if p != d.policy.as_str() => Err(format!(
                    "entry {index}: a decision on {}@{} names policy {} at entry {}, which holds {p}",
                    d.repo, d.digest, d.policy, d.policy_index
                )),
                Some(_) => Ok(()),
            }?;
            Ok((d.verdict == Verdict::Admit).then_some(d))
        }
        Entry::Tag(_) | Entry::Delete(_) => Ok(None),
    }
}
