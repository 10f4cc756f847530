//! Admission: what vouch serves and why. It answers the registry's
//! questions (`registry::gate::Gate`): what a reader may see
//! (`visibility.rs`, the invariant of spec/threat-model.md) and what a
//! pushed manifest means. Arrows point one way: admission uses the
//! registry's storage and the ledger; the registry knows no policy.
//!
//! A decision is a pipeline (`decide.rs`): classify what arrived by its
//! structure (`evidence.rs`), gather and verify the evidence about the
//! image in one pass (`gather.rs`), evaluate the policy (pure), append the
//! decision to the ledger, then record the state, vouch's countersignature
//! (`countersign.rs`) and the push itself in one durable batch
//! (`accept.rs`, which also logs tags). A decision that changes nothing is
//! not logged again. Evaluations of one image are
//! serialised; different images are decided concurrently.

mod accept;
mod bundles;
pub mod countersign;
mod decide;
pub mod evidence;
mod gather;
mod gather_attest;
mod gather_notation;
mod image;
mod opened;
mod reevaluate;
pub mod visibility;

pub use reevaluate::{Reevaluation, Scope};

use crate::policy::{IdentityMatcher, Policy, Unreferenced};
use crate::registry::error::RegistryError;
use crate::registry::gate::{Accepted, Gate, ManifestPush, Visible};
use crate::registry::meta::{AdmissionState, ManifestRecord};
use crate::registry::names::{RepoName, Tag};
use crate::registry::AppState;
use crate::signature::PublicKey;
use countersign::Countersigner;
use futures_util::future::BoxFuture;
use vouch_ledger::entry::{Digest, Entry, PolicyEntry};
use vouch_ledger::store::Ledger;

/// Evaluations of different images run concurrently; of one image, one at
/// a time, through one of this many locks (by a hash of repository and
/// digest).
const LOCK_STRIPES: usize = 64;
/// Tag changes of one (repository, tag) are checked and committed one at a
/// time, through one of this many locks.
const TAG_LOCK_STRIPES: usize = 256;
/// Evidence held in memory at once by all evaluations, in bytes.
const EVIDENCE_MEMORY: usize = 64 << 20;

/// The policy in force, and where the ledger logged it.
#[derive(Debug)]
pub struct Admission {
    /// The policy.
    pub policy: Policy,
    /// Its digest (of its canonical document).
    pub policy_digest: Digest,
    /// The ledger index of its `policy` entry.
    pub policy_index: u64,
    keys: Vec<PublicKey>,
    identities: Vec<(String, IdentityMatcher)>,
    notation: Vec<(String, std::sync::Arc<crate::notation::TrustPolicy>)>,
    /// Notation chains' revocation status, fetched and kept.
    revocation: std::sync::Arc<crate::revocation::Checker>,
    countersigner: Option<Countersigner>,
    registry_names: Vec<String>,
    locks: Vec<tokio::sync::Mutex<()>>,
    tag_locks: Vec<tokio::sync::Mutex<()>>,
    /// The same locks across replicas, when the metadata is shared.
    shared_locks: Option<crate::registry::meta::SharedLocks>,
    evidence_memory: tokio::sync::Semaphore,
    /// Attestation envelopes opened before (`opened.rs`).
    opened: opened::OpenedEnvelopes,
}

/// The locks of some tags: this process's, then every replica's.
pub(crate) struct TagLocks<'a> {
    _local: Vec<tokio::sync::MutexGuard<'a, ()>>,
    _shared: Option<crate::registry::meta::SharedGuard>,
}

impl Admission {
    /// Puts the policy in force: logs it to the ledger first, unless this
    /// exact policy (by digest) already was.
    pub async fn load(
        policy: Policy,
        ledger: &Ledger,
        meta: &crate::registry::meta::Meta,
    ) -> Result<Admission, RegistryError> {
        let policy_digest = policy.digest();
        let policy_index = match meta.policy_index(&policy_digest)? {
            Some(i) => i,
            None => {
                let entry = Entry::Policy(PolicyEntry {
                    name: policy.name.clone(),
                    version: meta.policy_count()? + 1,
                    digest: policy_digest.clone(),
                });
                let index = append(ledger, entry).await?;
                let mut b = meta.batch();
                b.record_policy(&policy_digest, index);
                b.commit(true)?;
                index
            }
        };
        // The document itself, for the policy history page (a diff needs
        // the text; the ledger holds only the digest).
        let mut b = meta.batch();
        b.set_marker(&format!("policy-document/{policy_digest}"), policy.canonical());
        b.commit(true)?;
        // Every authority any rule names, for signatures or attestations.
        let (keys, identities) = policy.authorities();
        let notation = policy.notation_trust();
        Ok(Admission {
            policy,
            policy_digest,
            policy_index,
            keys,
            identities,
            notation,
            revocation: Default::default(),
            countersigner: None,
            registry_names: vec!["localhost".into()],
            locks: (0..LOCK_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            tag_locks: (0..TAG_LOCK_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            shared_locks: None,
            evidence_memory: tokio::sync::Semaphore::new(EVIDENCE_MEMORY),
            opened: Default::default(),
        })
    }

    /// Takes tag locks in `pg` too, where every replica sharing the
    /// metadata takes them (`meta/shared_locks.rs`).
    pub fn with_shared_locks(mut self, pg: std::sync::Arc<crate::registry::meta::Postgres>) -> Admission {
        self.shared_locks = Some(crate::registry::meta::SharedLocks::new(pg));
        self
    }

    /// Saves revocation answers in `dir` and reads them back after a
    /// restart (`revocation/saved.rs`).
    pub fn with_revocation_saved_in(mut self, dir: &std::path::Path) -> Admission {
        self.revocation = std::sync::Arc::new(crate::revocation::Checker::saving_in(dir));
        self
    }

    /// Countersigns every image admitted from now on (`countersign.rs`).
    pub fn with_countersigner(mut self, countersigner: Countersigner) -> Admission {
        self.countersigner = Some(countersigner);
        self
    }

    /// The countersigner, if any.
    pub fn countersigner(&self) -> Option<&Countersigner> {
        self.countersigner.as_ref()
    }

    /// The names clients reach this registry by (`host[:port]`): a
    /// signature's docker-reference must name one of them (with the
    /// repository) unless the rule relaxes it. A loopback name brings its
    /// equivalents (`127.0.0.1:P`, `localhost:P`, `[::1]:P`). The first
    /// name is the one vouch's countersignatures use.
    pub fn with_registry_names(mut self, names: &[String]) -> Admission {
        let mut all: Vec<String> = Vec::new();
        for name in names {
            all.push(name.clone());
            let port = name
                .rsplit_once(':')
                .map(|(_, p)| p)
                .filter(|p| p.bytes().all(|b| b.is_ascii_digit()));
            let host = port.map_or(name.as_str(), |p| &name[..name.len() - p.len() - 1]);
            if ["127.0.0.1", "localhost", "[::1]"].contains(&host) {
                for alias in ["127.0.0.1", "localhost", "[::1]"] {
                    all.push(port.map_or(alias.to_owned(), |p| format!("{alias}:{p}")));
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        all.retain(|n| seen.insert(n.clone()));
        if let (Some(c), Some(first)) = (&self.countersigner, all.first()) {
            c.set_registry(first);
        }
        if !all.is_empty() {
            self.registry_names = all;
        }
        self
    }

    /// The lock of one image's evaluations.
    async fn lock(&self, repo: &RepoName, digest: &Digest) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (repo.as_str(), digest.as_str()).hash(&mut h);
        self.locks[(h.finish() % LOCK_STRIPES as u64) as usize].lock().await
    }

    /// The locks of the tags `tags` of `repo`, changes to which the ledger
    /// may have to record: a push checks where its tags point and commits
    /// under them, and an admission logs the tags pointing to the admitted
    /// image under them, so each sees the other whole. One stripe per
    /// (repository, tag) hash, taken in ascending order (so two pushes of
    /// several tags cannot deadlock), after an image's [`Self::lock`],
    /// never before. Pushes of different tags do not wait for each other.
    /// With shared metadata, the same tags' locks in the database follow,
    /// so replicas see each other's changes whole too.
    async fn tag_locks<T: AsRef<str>>(&self, repo: &RepoName, tags: &[T]) -> Result<TagLocks<'_>, RegistryError> {
        use std::hash::{Hash as _, Hasher as _};
        let mut stripes: Vec<usize> = tags
            .iter()
            .map(|t| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                (repo.as_str(), t.as_ref()).hash(&mut h);
                (h.finish() % TAG_LOCK_STRIPES as u64) as usize
            })
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for i in stripes {
            guards.push(self.tag_locks[i].lock().await);
        }
        let shared = match &self.shared_locks {
            Some(locks) => {
                let keys = tags
                    .iter()
                    .map(|t| crate::registry::meta::tag_key(repo.as_str(), t.as_ref()))
                    .collect();
                Some(locks.lock(keys)?)
            }
            None => None,
        };
        Ok(TagLocks {
            _local: guards,
            _shared: shared,
        })
    }
}

/// Appends an entry to the ledger; returns its index once durable.
/// Appends `entries` in this order, sharing group commits; their indexes.
pub(crate) async fn append_all(ledger: &Ledger, entries: Vec<Entry>) -> Result<Vec<u64>, RegistryError> {
    let encoded = entries
        .iter()
        .map(|e| {
            e.encode()
                .map_err(|e| RegistryError::Internal(format!("encoding a ledger entry: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    ledger.append_all(encoded).await.map_err(ledger_error)
}

/// A failed append as the registry answers it: the shared ledger store
/// not answering is 503 (try again), anything else 500.
fn ledger_error(e: vouch_ledger::store::AppendError) -> RegistryError {
    match e {
        vouch_ledger::store::AppendError::Unavailable(_) => RegistryError::Unavailable(format!("ledger: {e}")),
        e => RegistryError::Internal(format!("ledger: {e}")),
    }
}

pub(crate) async fn append(ledger: &Ledger, entry: Entry) -> Result<u64, RegistryError> {
    let bytes = entry
        .encode()
        .map_err(|e| RegistryError::Internal(format!("encoding a ledger entry: {e}")))?;
    ledger.append(bytes).await.map_err(ledger_error)
}

impl Gate for Admission {
    fn manifest_visible(
        &self,
        app: &AppState,
        repo: &RepoName,
        digest: &Digest,
        record: &ManifestRecord,
    ) -> Result<Visible, RegistryError> {
        visibility::manifest_visible(app, repo, digest, record)
    }

    fn blob_visible(&self, app: &AppState, repo: &RepoName, digest: &Digest) -> Result<Visible, RegistryError> {
        visibility::blob_visible(app, repo, digest, self.policy.unreferenced_blobs == Unreferenced::Serve)
    }

    /// Admitted content; and, for deletion, what vouch wrote itself (its
    /// countersigned signatures and admission bundles, which clients fetch
    /// to verify): a pusher may not take those away.
    fn protected(&self, record: &ManifestRecord, deleting: bool) -> bool {
        record.state == AdmissionState::Admitted || (deleting && record.evidence.as_ref().is_some_and(|e| e.own))
    }

    fn accept<'a>(
        &'a self,
        app: &'a AppState,
        push: ManifestPush<'a>,
    ) -> BoxFuture<'a, Result<Accepted, RegistryError>> {
        Box::pin(self.accept_push(app, push))
    }

    fn hold<'a>(
        &'a self,
        repo: &'a RepoName,
        digest: &'a Digest,
        tags: &'a [Tag],
    ) -> BoxFuture<'a, Box<dyn Send + 'a>> {
        Box::pin(async move {
            let image = self.lock(repo, digest).await;
            // Without the database's locks (it does not answer), the
            // destructive change's own commit fails the same way.
            let tags = self.tag_locks(repo, tags).await;
            Box::new((image, tags)) as Box<dyn Send + 'a>
        })
    }

    fn before_destroy<'a>(
        &'a self,
        app: &'a AppState,
        repo: &'a RepoName,
        digest: &'a Digest,
        tag: Option<&'a Tag>,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            // Deleting admitted content (the manifest, or a tag pointing to
            // it) is logged first, so no such deletion goes unrecorded.
            if app
                .meta
                .manifest(repo, digest)?
                .is_some_and(|r| self.protected(&r, true))
            {
                let entry = Entry::Delete(vouch_ledger::entry::DeleteEntry {
                    repo: repo.to_string(),
                    digest: digest.clone(),
                    tag: tag.map(|t| t.as_str().to_owned()),
                });
                append(&app.ledger, entry).await?;
            }
            Ok(())
        })
    }

    fn reevaluate<'a>(
        &'a self,
        app: &'a AppState,
        all: bool,
    ) -> BoxFuture<'a, Result<serde_json::Value, RegistryError>> {
        Box::pin(async move {
            let scope = if all { Scope::All } else { Scope::Quarantined };
            let report = self.reevaluate(app, scope).await;
            Ok(serde_json::to_value(report).expect("serialize"))
        })
    }
}
