//! The log's side of c2sp.org/tlog-witness: every new checkpoint is offered
//! to the configured witnesses with a consistency proof from the size each
//! last cosigned, and the checkpoint that gathers the threshold of
//! cosignatures is published at `/ledger/checkpoint` (spec/witness.md).
//!
//! Rounds: one at a time, each over the newest checkpoint, sent to every
//! witness at once; a round that ends finds the next newest, so a busy log
//! gets a cosigned checkpoint every round trip, never a queue. Pushes never
//! wait for witnesses: the sequencer publishes checkpoints as before, and
//! this task follows it.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use vouch_ledger::cosignature::CosignerKey;
use vouch_ledger::note::{Note, NoteSignature};
use vouch_ledger::store::Ledger;
use vouch_ledger::witness::{parse_cosignature_lines, parse_size_body, AddCheckpoint};
use vouch_ledger::Checkpoint;

/// Least time between two rounds: at most 40 submissions a second to each
/// witness, within `vouch witness`'s default limit of 50 a second per log.
pub const MIN_ROUND_INTERVAL: Duration = Duration::from_millis(25);
/// How long one witness request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait before retrying a failing witness.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often an unchanged checkpoint is cosigned again.
pub const REFRESH: Duration = Duration::from_secs(60);
/// The file, in the data directory, keeping the latest cosigned checkpoint
/// across restarts.
pub const COSIGNED_FILE: &str = "ledger-cosigned.checkpoint";

/// One `--witness NAME=URL+VKEY`: a label, the witness's submission prefix
/// and its cosigner key.
#[derive(Debug, Clone)]
pub struct WitnessSpec {
    /// The operator's label for it, in logs and errors.
    pub label: String,
    /// Submission prefix: requests go to `<url>/add-checkpoint`.
    pub url: String,
    /// The witness's `cosignature/v1` key.
    pub key: CosignerKey,
}

impl FromStr for WitnessSpec {
    type Err = String;

    /// `NAME=URL+VKEY`. The vkey's base64 may hold `+`, so the URL ends at
    /// the first `+` after which a valid cosigner key follows.
    fn from_str(text: &str) -> Result<Self, String> {
        let usage = "expected NAME=URL+VKEY, e.g. w1=http://127.0.0.1:7380+witness.example/w1+1a2b3c4d+BF...";
        let (label, rest) = text.split_once('=').ok_or(usage)?;
        if label.is_empty() {
            return Err(format!("no name before '=': {usage}"));
        }
        let mut last_error = String::from(usage);
        for (i, _) in rest.match_indices('+') {
            let (url, vkey) = (&rest[..i], &rest[i + 1..]);
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("witness {label}: the URL must start with http:// or https://"));
            }
            match CosignerKey::parse(vkey) {
                Ok(key) => {
                    return Ok(Self {
                        label: label.to_owned(),
                        url: url.trim_end_matches('/').to_owned(),
                        key,
                    })
                }
                Err(e) => last_error = format!("witness {label}: {e}"),
            }
        }
        Err(last_error)
    }
}

/// The checkpoint published with its cosignatures.
#[derive(Debug, Clone)]
pub struct Cosigned {
    /// Its tree size.
    pub size: u64,
    /// The signed note: the log's signature and the witnesses'.
    pub note: Arc<str>,
    /// Labels of the witnesses whose cosignatures it carries.
    pub witnesses: Vec<String>,
}

/// The latest checkpoint that met the witness threshold, shared by the
/// rounds (writer) and the ledger API (readers).
#[derive(Debug, Default)]
pub struct Published {
    latest: RwLock<Option<Arc<Cosigned>>>,
    file: Option<PathBuf>,
    /// The configured witnesses' keys (vkey text), for the web pages.
    keys: Vec<String>,
    threshold: usize,
}

impl Published {
    /// Nothing published: no witnesses are configured.
    pub fn none() -> Self {
        Self::default()
    }

    /// Witnesses configured, needing `threshold`: reads the last published
    /// checkpoint from `file` if it is still a checkpoint of `ledger`
    /// (signed by its key, a root of its tree) cosigned by `threshold` of
    /// these witnesses (a raised threshold or a replaced witness discards it).
    pub fn load(file: PathBuf, ledger: &Ledger, witnesses: &[WitnessSpec], threshold: usize) -> Self {
        let latest = std::fs::read(&file).ok().and_then(|bytes| {
            let c = Checkpoint::open(&bytes, ledger.verifier()).ok()?;
            (ledger.root_at(c.size).ok()? == c.root).then_some(())?;
            let note = Note::parse(&bytes).ok()?;
            let names: Vec<String> = witnesses
                .iter()
                .filter(|w| w.key.verify(&note).ok().flatten().is_some())
                .map(|w| w.label.clone())
                .collect();
            (names.len() >= threshold.max(1)).then_some(())?;
            Some(Arc::new(Cosigned {
                size: c.size,
                note: String::from_utf8(bytes).ok()?.into(),
                witnesses: names,
            }))
        });
        Self {
            latest: RwLock::new(latest),
            file: Some(file),
            keys: witnesses.iter().map(|w| w.key.to_string()).collect(),
            threshold: threshold.max(1),
        }
    }

    /// Whether witnesses are configured: then only cosigned checkpoints are
    /// served.
    pub fn configured(&self) -> bool {
        self.file.is_some()
    }

    /// How many cosignatures a published checkpoint carries at least.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// The configured witnesses' keys, as vkey text.
    pub fn witness_keys(&self) -> &[String] {
        &self.keys
    }

    /// The latest cosigned checkpoint, if any.
    pub fn get(&self) -> Option<Arc<Cosigned>> {
        self.latest.read().expect("published lock").clone()
    }

    /// Publishes `c`, unless it is smaller than what is published (the
    /// served checkpoint never goes back). Blocking: it writes the file.
    fn set(&self, c: Cosigned) {
        if self.get().is_some_and(|old| old.size > c.size) {
            return;
        }
        if let Some(file) = &self.file {
            // Kept only to serve the same checkpoint after a restart; the
            // cosignatures can always be gathered again, so a failed write
            // is reported, not fatal.
            if let Err(e) = crate::registry::auth::write_private(file, c.note.as_bytes()) {
                tracing::warn!("writing {}: {e}", file.display());
            }
        }
        *self.latest.write().expect("published lock") = Some(Arc::new(c));
    }
}

/// What the log knows of one witness between rounds.
#[derive(Debug)]
struct Client {
    spec: WitnessSpec,
    agent: ureq::Agent,
    /// The size the witness last cosigned, once learnt (from a 200 or 409).
    size: Option<u64>,
    failures: u32,
    retry_at: Option<Instant>,
}

impl Client {
    fn new(spec: WitnessSpec) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .new_agent();
        Self {
            spec,
            agent,
            size: None,
            failures: 0,
            retry_at: None,
        }
    }

    fn post(&self, req: &AddCheckpoint) -> Result<(u16, Vec<u8>), String> {
        let url = format!("{}/add-checkpoint", self.spec.url);
        let mut resp = self
            .agent
            .post(&url)
            .send(&req.to_bytes()[..])
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_vec()
            .map_err(|e| format!("POST {url}: reading the answer: {e}"))?;
        Ok((status, body))
    }

    /// Asks for a cosignature on `note` (a checkpoint of `ledger` at `size`).
    /// One 409 naming another size is answered at once with a proof from it.
    fn cosign(&mut self, ledger: &Ledger, note: &str, size: u64) -> Result<NoteSignature, String> {
        for _ in 0..2 {
            let old = self.size.unwrap_or(0);
            if old > size {
                return Err(format!(
                    "the witness has cosigned size {old}, beyond this log's size {size}: \
                     it has seen another history of this log (fork or rollback)"
                ));
            }
            let proof = if old == 0 || old == size {
                Vec::new()
            } else {
                ledger.consistency_proof(old, size).map_err(|e| e.to_string())?
            };
            let req = AddCheckpoint {
                old,
                proof,
                checkpoint: note.as_bytes().to_vec(),
            };
            let (status, body) = self.post(&req)?;
            match status {
                200 => {
                    let sig = self.accept(note, &body)?;
                    self.size = Some(size);
                    return Ok(sig);
                }
                409 => match parse_size_body(&body) {
                    Some(theirs) if Some(theirs) != self.size => self.size = Some(theirs),
                    Some(theirs) => return Err(format!("409: the witness is at size {theirs}")),
                    None => {
                        return Err(format!(
                            "409: the witness cosigned another root at size {size} (a fork): {}",
                            String::from_utf8_lossy(&body).trim()
                        ))
                    }
                },
                _ => {
                    return Err(format!(
                        "{status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)]).trim()
                    ))
                }
            }
        }
        Err("the witness's size kept changing".to_owned())
    }

    /// The witness's cosignature line from a 200 body, verified: other
    /// keys' lines are ignored (§"add-checkpoint").
    fn accept(&self, note: &str, body: &[u8]) -> Result<NoteSignature, String> {
        let lines = parse_cosignature_lines(body).ok_or("200 without cosignature lines")?;
        let mut cosigned = Note::parse(note.as_bytes()).map_err(|e| e.to_string())?;
        for line in lines {
            if line.name == self.spec.key.name() && line.id == self.spec.key.id() {
                cosigned.put_signature(line.clone()).map_err(|e| e.to_string())?;
                return match self.spec.key.verify(&cosigned) {
                    Ok(Some(_)) => Ok(line),
                    Ok(None) => Err("no cosignature by the witness's key".to_owned()),
                    Err(e) => Err(e.to_string()),
                };
            }
        }
        Err("the answer holds no cosignature by the witness's key".to_owned())
    }

    fn failed(&mut self, why: &str, now: Instant) {
        self.failures += 1;
        let wait = Duration::from_millis(250 << (self.failures - 1).min(7)).min(MAX_BACKOFF);
        self.retry_at = Some(now + wait);
        // The next request asks the witness's size again.
        self.size = None;
        tracing::warn!(
            witness = %self.spec.label,
            "witness refused or failed ({why}); retrying in {} ms",
            wait.as_millis()
        );
    }
}

/// Runs rounds for as long as the runtime lives.
pub fn start(ledger: Ledger, witnesses: Vec<WitnessSpec>, threshold: usize, published: Arc<Published>) {
    let mut clients: Vec<Client> = witnesses.into_iter().map(Client::new).collect();
    let mut changed = ledger.subscribe();
    tokio::spawn(async move {
        let mut done: Option<u64> = published.get().map(|c| c.size);
        loop {
            let started = Instant::now();
            let note = ledger.checkpoint();
            let size = Note::parse(note.as_bytes())
                .ok()
                .and_then(|n| Checkpoint::parse(n.text()).ok())
                .map_or(0, |c| c.size);
            if done != Some(size) {
                let (l, n, p) = (ledger.clone(), note.clone(), published.clone());
                let moved = std::mem::take(&mut clients);
                // The round and the publication (a file write) off the
                // async workers.
                let (back, ok) = tokio::task::spawn_blocking(move || {
                    let (back, cosigned) = round(&l, &n, size, moved, threshold);
                    let ok = cosigned.map(|c| p.set(c)).is_some();
                    (back, ok)
                })
                .await
                .expect("witness round");
                clients = back;
                if ok {
                    done = Some(size);
                }
                tokio::time::sleep(MIN_ROUND_INTERVAL.saturating_sub(started.elapsed())).await;
                // Retry a round that missed the threshold after the shortest backoff.
                if done != Some(size) {
                    let wait = clients
                        .iter()
                        .filter_map(|c| c.retry_at)
                        .min()
                        .map_or(MAX_BACKOFF, |t| t.saturating_duration_since(Instant::now()));
                    let _ = tokio::time::timeout(wait, changed.changed()).await;
                    continue;
                }
            }
            // An idle log's checkpoint is cosigned again every REFRESH, so
            // its cosignatures stay fresh: a monitor can tell a live log
            // from one that keeps showing it an old state (`--max-age`).
            match tokio::time::timeout(REFRESH, changed.changed()).await {
                Ok(Err(_)) => return,
                Ok(Ok(())) => {}
                Err(_) => done = None,
            }
        }
    });
}

/// One round: every witness not backing off is asked at once; the note is
/// published if at least `threshold` cosign.
fn round(
    ledger: &Ledger,
    note: &str,
    size: u64,
    mut clients: Vec<Client>,
    threshold: usize,
) -> (Vec<Client>, Option<Cosigned>) {
    let now = Instant::now();
    let results: Vec<Option<NoteSignature>> = std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter_mut()
            .map(|c| {
                s.spawn(move || {
                    if c.retry_at.is_some_and(|t| t > now) {
                        return None;
                    }
                    match c.cosign(ledger, note, size) {
                        Ok(sig) => {
                            c.failures = 0;
                            c.retry_at = None;
                            Some(sig)
                        }
                        Err(e) => {
                            c.failed(&e, Instant::now());
                            None
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(None)).collect()
    });
    let mut cosigned = match Note::parse(note.as_bytes()) {
        Ok(n) => n,
        Err(_) => return (clients, None),
    };
    let mut names = Vec::new();
    for (c, sig) in clients.iter().zip(results) {
        if let Some(sig) = sig {
            if cosigned.put_signature(sig).is_ok() {
                names.push(c.spec.label.clone());
            }
        }
    }
    if names.len() < threshold.max(1) {
        return (clients, None);
    }
    let published = Cosigned {
        size,
        note: cosigned.to_text().into(),
        witnesses: names,
    };
    (clients, Some(published))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witness_specs_parse_with_plus_signs_in_the_key() {
        let cosigner = vouch_ledger::cosignature::Cosigner::new(
            "witness.example/w1",
            ed25519_dalek::SigningKey::from_bytes(&[62; 32]),
        )
        .unwrap();
        let vkey = cosigner.verifier().to_string();
        let spec: WitnessSpec = format!("w1=http://127.0.0.1:7380/+{vkey}").parse().unwrap();
        assert_eq!(spec.url, "http://127.0.0.1:7380");
        assert_eq!(spec.key.to_string(), vkey);
        for bad in [
            format!("http://127.0.0.1:7380+{vkey}"),
            format!("w1=127.0.0.1:7380+{vkey}"),
            "w1=http://127.0.0.1:7380+witness.example/w1+00000000+AAAA".to_owned(),
        ] {
            assert!(bad.parse::<WitnessSpec>().is_err(), "accepted {bad}");
        }
    }
}
