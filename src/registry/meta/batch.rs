//! One durable step: every write a request makes goes into one [`Batch`],
//! committed as one atomic write of the store (a RocksDB `WriteBatch` with
//! the WAL fsync'd, or a PostgreSQL transaction whose commit is flushed,
//! when it acknowledges something), so a crash leaves all of it or none of
//! it.

use super::kv::Write;
use super::{key, ref_key, referrer_key, Meta, CF_ATTACH, CF_BLOBS, CF_DECISIONS, CF_EVIDENCE};
use super::{EvidenceKind, ManifestRecord};
use super::{CF_MANIFESTS, CF_POLICIES, CF_REFERRERS, CF_REFS, CF_REPOS, CF_STATE, CF_TAGS, CF_UPLOADS};
use crate::registry::error::RegistryError;
use crate::registry::names::{RepoName, Tag};
use vouch_ledger::entry::Digest;

/// Writes to commit together.
pub struct Batch<'m> {
    meta: &'m Meta,
    writes: Vec<Write>,
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Batch({} writes)", self.writes.len())
    }
}

impl<'m> Batch<'m> {
    pub(super) fn new(meta: &'m Meta) -> Batch<'m> {
        Batch {
            meta,
            writes: Vec::new(),
        }
    }

    /// Puts `value` at `key` in `family`.
    pub(super) fn put(&mut self, family: &'static str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.writes.push(Write {
            family,
            key: key.into(),
            value: Some(value.into()),
        });
    }

    /// Deletes `key` from `family`.
    pub(super) fn delete(&mut self, family: &'static str, key: impl Into<Vec<u8>>) {
        self.writes.push(Write {
            family,
            key: key.into(),
            value: None,
        });
    }

    /// Writes (or replaces) a manifest record; the repository exists.
    pub fn put_record(
        &mut self,
        repo: &RepoName,
        digest: &Digest,
        record: &ManifestRecord,
    ) -> Result<(), RegistryError> {
        self.put(CF_REPOS, repo.as_str(), b"");
        self.put(CF_MANIFESTS, key(repo, digest.as_str()), record.encode()?);
        Ok(())
    }

    /// Indexes what a manifest references (blobs, or an index's manifests).
    pub fn index_refs(&mut self, repo: &RepoName, digest: &Digest, refs: &[Digest]) {
        for r in refs {
            self.put(CF_REFS, ref_key(repo.as_str(), r, digest), b"");
        }
    }

    /// Lists a manifest among the referrers of `subject`.
    pub fn index_referrer(
        &mut self,
        repo: &RepoName,
        subject: &Digest,
        digest: &Digest,
        descriptor: &serde_json::Value,
    ) {
        let value = serde_json::to_vec(descriptor).expect("serialize a JSON value");
        self.put(CF_REFERRERS, referrer_key(repo, subject, digest), value);
    }

    /// Indexes a manifest as evidence about `subject`.
    pub fn index_evidence(&mut self, repo: &RepoName, subject: &Digest, digest: &Digest, kind: EvidenceKind) {
        self.put(
            CF_EVIDENCE,
            referrer_key(repo, subject, digest),
            kind.as_str().as_bytes(),
        );
    }

    /// Points a tag at a manifest.
    pub fn set_tag(&mut self, repo: &RepoName, tag: &Tag, digest: &Digest) {
        self.put(CF_TAGS, key(repo, tag.as_str()), digest.as_str());
    }

    /// Removes a tag.
    pub fn delete_tag(&mut self, repo: &RepoName, tag: &Tag) {
        self.delete(CF_TAGS, key(repo, tag.as_str()));
    }

    /// Removes a manifest with everything indexed about it: what it
    /// references (`refs`), its place among its subject's referrers and its
    /// evidence index entry, its decision summary, and every tag pointing to
    /// it.
    pub fn delete_manifest(
        &mut self,
        repo: &RepoName,
        digest: &Digest,
        record: &ManifestRecord,
        refs: &[Digest],
        subject: Option<&Digest>,
    ) -> Result<(), RegistryError> {
        self.delete(CF_MANIFESTS, key(repo, digest.as_str()));
        self.delete(CF_DECISIONS, key(repo, digest.as_str()));
        for r in refs {
            self.delete(CF_REFS, ref_key(repo.as_str(), r, digest));
        }
        if let Some(subject) = subject {
            self.delete(CF_REFERRERS, referrer_key(repo, subject, digest));
        }
        if let Some(e) = &record.evidence {
            self.delete(CF_EVIDENCE, referrer_key(repo, &e.subject, digest));
        }
        for (tag, target) in self.meta.tags_with_targets(repo)? {
            if &target == digest {
                self.delete(CF_TAGS, key(repo, &tag));
            }
        }
        Ok(())
    }

    /// Records the summary of the latest decision about a manifest.
    pub fn put_decision(&mut self, repo: &RepoName, digest: &Digest, summary: &serde_json::Value) {
        self.put(
            CF_DECISIONS,
            key(repo, digest.as_str()),
            serde_json::to_vec(summary).expect("serialize a JSON value"),
        );
    }

    /// Queues a decision's bundle to be attached as a referrer.
    pub fn queue_bundle(&mut self, repo: &RepoName, digest: &Digest, index: u64, admit: bool) {
        let k = [key(repo, digest.as_str()), vec![0], index.to_be_bytes().to_vec()].concat();
        self.put(CF_ATTACH, k, [u8::from(admit)]);
    }

    /// Forgets a queued bundle (attached, or its image is gone).
    pub fn forget_bundle(&mut self, repo: &RepoName, digest: &Digest, index: u64) {
        let k = [key(repo, digest.as_str()), vec![0], index.to_be_bytes().to_vec()].concat();
        self.delete(CF_ATTACH, k);
    }

    /// Links a stored blob into a repository.
    pub fn link_blob(&mut self, repo: &RepoName, digest: &Digest, size: u64) {
        self.put(CF_REPOS, repo.as_str(), b"");
        self.put(CF_BLOBS, key(repo, digest.as_str()), size.to_be_bytes());
    }

    /// Unlinks a blob from a repository.
    pub fn unlink_blob(&mut self, repo: &str, digest: &Digest) {
        self.delete(CF_BLOBS, [repo.as_bytes(), &[0], digest.as_str().as_bytes()].concat());
    }

    /// Records an upload session: its repository and who opened it.
    pub fn put_upload(&mut self, id: &str, repo: &RepoName, owner: &str) {
        self.put(CF_UPLOADS, id, [repo.as_str(), owner].join("\0"));
    }

    /// Forgets an upload session.
    pub fn delete_upload(&mut self, id: &str) {
        self.delete(CF_UPLOADS, id);
    }

    /// Remembers that a policy was logged at `index`.
    pub fn record_policy(&mut self, digest: &Digest, index: u64) {
        self.put(CF_POLICIES, digest.as_str(), index.to_be_bytes());
    }

    /// Sets a marker in `reg_state`.
    pub fn set_marker(&mut self, name: &str, value: &[u8]) {
        self.put(CF_STATE, name, value);
    }

    /// Whether nothing was written to the batch.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Commits the batch: durably (WAL fsync'd before returning) when
    /// `sync`, which every write that a response acknowledges uses.
    pub fn commit(self, sync: bool) -> Result<(), RegistryError> {
        self.meta.kv.write(last_writes(self.writes), sync)
    }

    /// [`Self::commit`] durably, from an async task: with RocksDB, through
    /// the committer thread, which writes every batch queued meanwhile with
    /// one WAL fsync while the task waits without holding a thread.
    pub async fn commit_durable(self) -> Result<(), RegistryError> {
        match &self.meta.committer {
            Some(c) => {
                if self.writes.is_empty() {
                    return Ok(());
                }
                c.commit(last_writes(self.writes)).await
            }
            _ => self.commit(true),
        }
    }
}

/// `writes` without those a later write to the same key overrides: the
/// batch is atomic, so only each key's last write is ever seen, and a push
/// restates some keys (its repository, its record as it moves from pending
/// to decided) several times. The survivors keep their order.
fn last_writes(writes: Vec<Write>) -> Vec<Write> {
    let mut seen = std::collections::HashSet::with_capacity(writes.len());
    let keep: Vec<bool> = writes
        .iter()
        .rev()
        .map(|w| seen.insert((w.family, w.key.as_slice())))
        .collect();
    writes
        .into_iter()
        .zip(keep.into_iter().rev())
        .filter_map(|(w, k)| k.then_some(w))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(family: &'static str, key: &str, value: &str) -> Write {
        Write {
            family,
            key: key.into(),
            value: Some(value.into()),
        }
    }

    #[test]
    fn only_each_keys_last_write_is_committed_in_order() {
        let delete = Write {
            family: CF_TAGS,
            key: b"r\0t".to_vec(),
            value: None,
        };
        let writes = vec![
            put(CF_REPOS, "r", ""),
            put(CF_MANIFESTS, "r\0d", "pending"),
            delete.clone(),
            put(CF_REPOS, "r", ""),
            // The same key in another family is another key.
            put(CF_DECISIONS, "r\0d", "admit"),
            put(CF_MANIFESTS, "r\0d", "admitted"),
            put(CF_TAGS, "r\0t", "d"),
        ];
        assert_eq!(
            last_writes(writes),
            vec![
                put(CF_REPOS, "r", ""),
                put(CF_DECISIONS, "r\0d", "admit"),
                put(CF_MANIFESTS, "r\0d", "admitted"),
                put(CF_TAGS, "r\0t", "d"),
            ]
        );
        // A delete after a put wins too.
        let writes = vec![put(CF_TAGS, "r\0t", "d"), delete.clone()];
        assert_eq!(last_writes(writes), vec![delete]);
    }
}
