//! One durable step: every write a request makes goes into one [`Batch`],
//! committed as one RocksDB `WriteBatch` (with the WAL fsync'd when it
//! acknowledges something), so a crash leaves all of it or none of it.

use super::{key, ref_key, referrer_key, Meta, CF_ATTACH, CF_BLOBS, CF_DECISIONS, CF_EVIDENCE};
use super::{EvidenceKind, ManifestRecord};
use super::{CF_MANIFESTS, CF_POLICIES, CF_REFERRERS, CF_REFS, CF_REPOS, CF_STATE, CF_TAGS, CF_UPLOADS};
use crate::registry::error::RegistryError;
use crate::registry::names::{RepoName, Tag};
use rocksdb::WriteBatch;
use vouch_ledger::entry::Digest;

/// Writes to commit together.
pub struct Batch<'m> {
    meta: &'m Meta,
    pub(super) b: WriteBatch,
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Batch({} writes)", self.b.len())
    }
}

impl<'m> Batch<'m> {
    pub(super) fn new(meta: &'m Meta) -> Batch<'m> {
        Batch {
            meta,
            b: WriteBatch::default(),
        }
    }

    pub(super) fn cf(&self, name: &str) -> &'m rocksdb::ColumnFamily {
        self.meta.cf(name)
    }

    /// Writes (or replaces) a manifest record; the repository exists.
    pub fn put_record(
        &mut self,
        repo: &RepoName,
        digest: &Digest,
        record: &ManifestRecord,
    ) -> Result<(), RegistryError> {
        self.b.put_cf(self.cf(CF_REPOS), repo.as_str(), b"");
        self.b
            .put_cf(self.cf(CF_MANIFESTS), key(repo, digest.as_str()), record.encode()?);
        Ok(())
    }

    /// Indexes what a manifest references (blobs, or an index's manifests).
    pub fn index_refs(&mut self, repo: &RepoName, digest: &Digest, refs: &[Digest]) {
        for r in refs {
            self.b.put_cf(self.cf(CF_REFS), ref_key(repo.as_str(), r, digest), b"");
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
        self.b
            .put_cf(self.cf(CF_REFERRERS), referrer_key(repo, subject, digest), value);
    }

    /// Indexes a manifest as evidence about `subject`.
    pub fn index_evidence(&mut self, repo: &RepoName, subject: &Digest, digest: &Digest, kind: EvidenceKind) {
        self.b.put_cf(
            self.cf(CF_EVIDENCE),
            referrer_key(repo, subject, digest),
            kind.as_str().as_bytes(),
        );
    }

    /// Points a tag at a manifest.
    pub fn set_tag(&mut self, repo: &RepoName, tag: &Tag, digest: &Digest) {
        self.b
            .put_cf(self.cf(CF_TAGS), key(repo, tag.as_str()), digest.as_str());
    }

    /// Removes a tag.
    pub fn delete_tag(&mut self, repo: &RepoName, tag: &Tag) {
        self.b.delete_cf(self.cf(CF_TAGS), key(repo, tag.as_str()));
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
        self.b.delete_cf(self.cf(CF_MANIFESTS), key(repo, digest.as_str()));
        self.b.delete_cf(self.cf(CF_DECISIONS), key(repo, digest.as_str()));
        for r in refs {
            self.b.delete_cf(self.cf(CF_REFS), ref_key(repo.as_str(), r, digest));
        }
        if let Some(subject) = subject {
            self.b
                .delete_cf(self.cf(CF_REFERRERS), referrer_key(repo, subject, digest));
        }
        if let Some(e) = &record.evidence {
            self.b
                .delete_cf(self.cf(CF_EVIDENCE), referrer_key(repo, &e.subject, digest));
        }
        for (tag, target) in self.meta.tags_with_targets(repo)? {
            if &target == digest {
                self.b.delete_cf(self.cf(CF_TAGS), key(repo, &tag));
            }
        }
        Ok(())
    }

    /// Records the summary of the latest decision about a manifest.
    pub fn put_decision(&mut self, repo: &RepoName, digest: &Digest, summary: &serde_json::Value) {
        self.b.put_cf(
            self.cf(CF_DECISIONS),
            key(repo, digest.as_str()),
            serde_json::to_vec(summary).expect("serialize a JSON value"),
        );
    }

    /// Queues a decision's bundle to be attached as a referrer.
    pub fn queue_bundle(&mut self, repo: &RepoName, digest: &Digest, index: u64, admit: bool) {
        let k = [key(repo, digest.as_str()), vec![0], index.to_be_bytes().to_vec()].concat();
        self.b.put_cf(self.cf(CF_ATTACH), k, [u8::from(admit)]);
    }

    /// Forgets a queued bundle (attached, or its image is gone).
    pub fn forget_bundle(&mut self, repo: &RepoName, digest: &Digest, index: u64) {
        let k = [key(repo, digest.as_str()), vec![0], index.to_be_bytes().to_vec()].concat();
        self.b.delete_cf(self.cf(CF_ATTACH), k);
    }

    /// Links a stored blob into a repository.
    pub fn link_blob(&mut self, repo: &RepoName, digest: &Digest, size: u64) {
        self.b.put_cf(self.cf(CF_REPOS), repo.as_str(), b"");
        self.b
            .put_cf(self.cf(CF_BLOBS), key(repo, digest.as_str()), size.to_be_bytes());
    }

    /// Unlinks a blob from a repository.
    pub fn unlink_blob(&mut self, repo: &str, digest: &Digest) {
        self.b.delete_cf(
            self.cf(CF_BLOBS),
            [repo.as_bytes(), &[0], digest.as_str().as_bytes()].concat(),
        );
    }

    /// Records an upload session: its repository and who opened it.
    pub fn put_upload(&mut self, id: &str, repo: &RepoName, owner: &str) {
        self.b
            .put_cf(self.cf(CF_UPLOADS), id, [repo.as_str(), owner].join("\0"));
    }

    /// Forgets an upload session.
    pub fn delete_upload(&mut self, id: &str) {
        self.b.delete_cf(self.cf(CF_UPLOADS), id);
    }

    /// Remembers that a policy was logged at `index`.
    pub fn record_policy(&mut self, digest: &Digest, index: u64) {
        self.b
            .put_cf(self.cf(CF_POLICIES), digest.as_str(), index.to_be_bytes());
    }

    /// Sets a marker in `reg_state`.
    pub fn set_marker(&mut self, name: &str, value: &[u8]) {
        self.b.put_cf(self.cf(CF_STATE), name, value);
    }

    /// Whether nothing was written to the batch.
    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }

    /// Commits the batch: durably (WAL fsync'd before returning) when
    /// `sync`, which every write that a response acknowledges uses.
    pub fn commit(self, sync: bool) -> Result<(), RegistryError> {
        let mut o = rocksdb::WriteOptions::default();
        o.set_sync(sync);
        self.meta.db.write_opt(self.b, &o)?;
        Ok(())
    }
}
