//! Registry metadata in RocksDB, beside the ledger in the same instance.
//!
//! ```text
//! reg_repos       <repo>                    -> ""                 repositories that exist
//! reg_blobs       <repo> 0x00 <digest>      -> u64 BE size        blobs linked into a repository
//! reg_manifests   <repo> 0x00 <digest>      -> manifest record    (below)
//! reg_tags        <repo> 0x00 <tag>         -> <digest>
//! reg_uploads     <session id>              -> <repo>             open upload sessions
//! reg_referrers   <repo> 0x00 <subject> 0x00 <referrer digest>
//!                                           -> descriptor JSON    manifests whose subject is <subject>
//! reg_refs        <repo> 0x00 <digest> 0x00 <manifest digest>
//!                                           -> ""                 manifests referencing a blob or
//!                                                                 (an index) a manifest
//! reg_decisions   <repo> 0x00 <digest>      -> decision JSON      the latest decision's summary
//! reg_policies    <policy digest>           -> u64 BE index       policies logged, by ledger index
//! reg_state       <name>                    -> value              markers (below)
//! reg_attach      <repo> 0x00 <digest> 0x00 <u64 BE ledger index>
//!                                           -> verdict (1 admit, 0 deny)
//!                                                                 decisions whose bundle is not yet
//!                                                                 attached as a referrer
//!
//! manifest record: 0x01 (record version) || state (0 pending, 1 admitted, 2 denied, 3 evidence)
//!                  || u16 BE media type length || media type || the manifest's exact bytes
//!
//! reg_state markers: "refs" -> "1" once reg_refs covers every
//! manifest (built at first start of a version that has it); "evaluated"
//! -> the digest of the last policy every pending or denied image was
//! re-evaluated under.
//! ```
//!
//! Every write is one WriteBatch with the WAL fsync'd, so an acknowledged
//! manifest, tag or session survives a crash.

use super::error::RegistryError;
use super::names::{RepoName, Tag};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, DB};
use std::sync::Arc;
use vouch_ledger::entry::Digest;

const CF_REPOS: &str = "reg_repos";
const CF_BLOBS: &str = "reg_blobs";
const CF_MANIFESTS: &str = "reg_manifests";
const CF_TAGS: &str = "reg_tags";
const CF_UPLOADS: &str = "reg_uploads";
const CF_REFERRERS: &str = "reg_referrers";
const CF_DECISIONS: &str = "reg_decisions";
const CF_POLICIES: &str = "reg_policies";
const CF_REFS: &str = "reg_refs";
const CF_STATE: &str = "reg_state";
const CF_ATTACH: &str = "reg_attach";
const RECORD_VERSION: u8 = 1;

/// The registry's column families, to open with the ledger's.
pub fn column_families() -> Vec<ColumnFamilyDescriptor> {
    [
        CF_REPOS,
        CF_BLOBS,
        CF_MANIFESTS,
        CF_TAGS,
        CF_UPLOADS,
        CF_REFERRERS,
        CF_DECISIONS,
        CF_POLICIES,
        CF_REFS,
        CF_STATE,
        CF_ATTACH,
    ]
    .into_iter()
    .map(|n| ColumnFamilyDescriptor::new(n, Options::default()))
    .collect()
}

/// A manifest's admission state. Admission (issue 4) sets it; until then
/// every manifest stays `Pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmissionState {
    /// Stored, not yet decided.
    Pending,
    /// Admitted under the policy.
    Admitted,
    /// Denied: quarantined.
    Denied,
    /// A signature or other artifact about another manifest: always served.
    Evidence,
}

impl AdmissionState {
    /// The name used on the wire (`Vouch-Admission-State`).
    pub fn as_str(self) -> &'static str {
        match self {
            AdmissionState::Pending => "pending",
            AdmissionState::Admitted => "admitted",
            AdmissionState::Denied => "denied",
            AdmissionState::Evidence => "evidence",
        }
    }
}

/// A stored manifest.
#[derive(Debug, Clone)]
pub struct ManifestRecord {
    /// Admission state.
    pub state: AdmissionState,
    /// Its media type, as pushed.
    pub media_type: String,
    /// Its exact bytes, as pushed.
    pub bytes: Vec<u8>,
}

/// Handle to the registry's metadata.
#[derive(Clone)]
pub struct Meta {
    db: Arc<DB>,
}

impl std::fmt::Debug for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Meta")
    }
}

fn key(repo: &RepoName, rest: &str) -> Vec<u8> {
    [repo.as_str().as_bytes(), &[0], rest.as_bytes()].concat()
}

/// `<repo> 0x00 <rest>` back into its parts.
fn split_key(k: &[u8]) -> Result<(&str, &str), RegistryError> {
    let corrupt = || RegistryError::Internal("a metadata key is corrupt".into());
    let at = k.iter().position(|b| *b == 0).ok_or_else(corrupt)?;
    let repo = std::str::from_utf8(&k[..at]).map_err(|_| corrupt())?;
    let rest = std::str::from_utf8(&k[at + 1..]).map_err(|_| corrupt())?;
    Ok((repo, rest))
}

fn referrer_key(repo: &RepoName, subject: &Digest, referrer: &Digest) -> Vec<u8> {
    [
        key(repo, subject.as_str()),
        vec![0],
        referrer.as_str().as_bytes().to_vec(),
    ]
    .concat()
}

fn ref_key(repo: &str, blob: &Digest, manifest: &Digest) -> Vec<u8> {
    [
        repo.as_bytes(),
        &[0],
        blob.as_str().as_bytes(),
        &[0],
        manifest.as_str().as_bytes(),
    ]
    .concat()
}

fn state_byte(state: AdmissionState) -> u8 {
    match state {
        AdmissionState::Pending => 0,
        AdmissionState::Admitted => 1,
        AdmissionState::Denied => 2,
        AdmissionState::Evidence => 3,
    }
}

fn synced() -> rocksdb::WriteOptions {
    let mut o = rocksdb::WriteOptions::default();
    o.set_sync(true);
    o
}

impl Meta {
    /// Metadata in `db`, which must have [`column_families`].
    pub fn new(db: Arc<DB>) -> Meta {
        Meta { db }
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .unwrap_or_else(|| panic!("column family {name} was opened with the database"))
    }

    /// Whether the repository exists (has had a blob or manifest pushed).
    pub fn repo_exists(&self, repo: &RepoName) -> Result<bool, RegistryError> {
        Ok(self.db.get_pinned_cf(self.cf(CF_REPOS), repo.as_str())?.is_some())
    }

    /// Links a stored blob into a repository.
    pub fn link_blob(&self, repo: &RepoName, digest: &Digest, size: u64) -> Result<(), RegistryError> {
        let mut b = WriteBatch::default();
        b.put_cf(self.cf(CF_REPOS), repo.as_str(), b"");
        b.put_cf(self.cf(CF_BLOBS), key(repo, digest.as_str()), size.to_be_bytes());
        self.db.write_opt(b, &synced())?;
        Ok(())
    }

    /// Links blobs into a repository without waiting for the WAL fsync: they
    /// become durable with the caller's next synced write (RocksDB's WAL is
    /// sequential), which must follow before anything depends on them.
    pub fn link_blobs_unsynced(&self, repo: &RepoName, blobs: &[(Digest, u64)]) -> Result<(), RegistryError> {
        let mut b = WriteBatch::default();
        b.put_cf(self.cf(CF_REPOS), repo.as_str(), b"");
        for (digest, size) in blobs {
            b.put_cf(self.cf(CF_BLOBS), key(repo, digest.as_str()), size.to_be_bytes());
        }
        self.db.write(b)?;
        Ok(())
    }

    /// Whether a blob is linked into a repository.
    pub fn blob_linked(&self, repo: &RepoName, digest: &Digest) -> Result<bool, RegistryError> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(CF_BLOBS), key(repo, digest.as_str()))?
            .is_some())
    }

    /// Stores a manifest, moves `tag` to it, and indexes it as a referrer of
    /// its subject (`referrer`: the subject and the descriptor to list), in
    /// one synced batch.
    ///
    /// `new` is the media type, bytes and initial admission state to store
    /// (evidence is stored as such, in the same write), or `None` when the caller
    /// found this digest already stored: re-pushing identical bytes keeps the
    /// existing record, and with it its admission state. `refs` are the
    /// blobs and manifests it references, indexed for [`Meta::find_referencing`].
    pub fn put_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        new: Option<(&str, &[u8], AdmissionState)>,
        refs: &[Digest],
        tag: Option<&Tag>,
        referrer: Option<(&Digest, &serde_json::Value)>,
    ) -> Result<(), RegistryError> {
        let mut b = WriteBatch::default();
        b.put_cf(self.cf(CF_REPOS), repo.as_str(), b"");
        for r in refs {
            b.put_cf(self.cf(CF_REFS), ref_key(repo.as_str(), r, digest), b"");
        }
        if let Some((media_type, bytes, state)) = new {
            let mt = media_type.as_bytes();
            let len =
                u16::try_from(mt.len()).map_err(|_| RegistryError::ManifestInvalid("media type is too long".into()))?;
            let record = [&[RECORD_VERSION, state_byte(state)][..], &len.to_be_bytes(), mt, bytes].concat();
            b.put_cf(self.cf(CF_MANIFESTS), key(repo, digest.as_str()), record);
        }
        if let Some(tag) = tag {
            b.put_cf(self.cf(CF_TAGS), key(repo, tag.as_str()), digest.as_str());
        }
        if let Some((subject, descriptor)) = referrer {
            let value = serde_json::to_vec(descriptor).expect("serialize a JSON value");
            b.put_cf(self.cf(CF_REFERRERS), referrer_key(repo, subject, digest), value);
        }
        self.db.write_opt(b, &synced())?;
        Ok(())
    }

    /// Descriptors of the manifests in `repo` whose subject is `subject`.
    pub fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<serde_json::Value>, RegistryError> {
        let prefix = [key(repo, subject.as_str()), vec![0]].concat();
        let mode = rocksdb::IteratorMode::From(&prefix, rocksdb::Direction::Forward);
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_REFERRERS), mode) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let d = serde_json::from_slice(&v)
                .map_err(|_| RegistryError::Internal(format!("referrer record of {repo}@{subject} is corrupt")))?;
            out.push(d);
        }
        Ok(out)
    }

    /// A stored manifest.
    pub fn manifest(&self, repo: &RepoName, digest: &Digest) -> Result<Option<ManifestRecord>, RegistryError> {
        let Some(v) = self
            .db
            .get_pinned_cf(self.cf(CF_MANIFESTS), key(repo, digest.as_str()))?
        else {
            return Ok(None);
        };
        let corrupt = || RegistryError::Internal(format!("manifest record {repo}@{digest} is corrupt"));
        if v.len() < 4 || v[0] != RECORD_VERSION {
            return Err(corrupt());
        }
        let state = match v[1] {
            0 => AdmissionState::Pending,
            1 => AdmissionState::Admitted,
            2 => AdmissionState::Denied,
            3 => AdmissionState::Evidence,
            _ => return Err(corrupt()),
        };
        let len = usize::from(u16::from_be_bytes([v[2], v[3]]));
        let media_type = v.get(4..4 + len).ok_or_else(corrupt)?;
        Ok(Some(ManifestRecord {
            state,
            media_type: String::from_utf8(media_type.to_vec()).map_err(|_| corrupt())?,
            bytes: v[4 + len..].to_vec(),
        }))
    }

    /// The digest a tag points to.
    pub fn tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<Digest>, RegistryError> {
        let v = self.db.get_cf(self.cf(CF_TAGS), key(repo, tag.as_str()))?;
        Ok(v.and_then(|v| Digest::parse(std::str::from_utf8(&v).ok()?)))
    }

    /// All tags of a repository, sorted.
    pub fn tags(&self, repo: &RepoName) -> Result<Vec<String>, RegistryError> {
        let prefix = key(repo, "");
        let mode = rocksdb::IteratorMode::From(&prefix, rocksdb::Direction::Forward);
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_TAGS), mode) {
            let (k, _) = item?;
            let Some(tag) = k.strip_prefix(prefix.as_slice()) else {
                break;
            };
            out.push(String::from_utf8_lossy(tag).into_owned());
        }
        Ok(out)
    }

    /// Deletes a tag; returns whether it existed.
    pub fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool, RegistryError> {
        let existed = self.tag(repo, tag)?.is_some();
        if existed {
            let mut b = WriteBatch::default();
            b.delete_cf(self.cf(CF_TAGS), key(repo, tag.as_str()));
            self.db.write_opt(b, &synced())?;
        }
        Ok(existed)
    }

    /// Deletes a manifest, every tag pointing to it, its referrer entry
    /// (`subject`, if it has one) and its references (`refs`: blobs and
    /// manifests); returns whether it existed.
    pub fn delete_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        subject: Option<&Digest>,
        refs: &[Digest],
    ) -> Result<bool, RegistryError> {
        if self.manifest(repo, digest)?.is_none() {
            return Ok(false);
        }
        let mut b = WriteBatch::default();
        b.delete_cf(self.cf(CF_MANIFESTS), key(repo, digest.as_str()));
        for r in refs {
            b.delete_cf(self.cf(CF_REFS), ref_key(repo.as_str(), r, digest));
        }
        if let Some(subject) = subject {
            b.delete_cf(self.cf(CF_REFERRERS), referrer_key(repo, subject, digest));
        }
        for t in self.tags(repo)? {
            let tag = Tag::parse(&t)?;
            if self.tag(repo, &tag)?.as_ref() == Some(digest) {
                b.delete_cf(self.cf(CF_TAGS), key(repo, &t));
            }
        }
        self.db.write_opt(b, &synced())?;
        Ok(true)
    }

    /// Records an upload session for a repository.
    pub fn put_upload(&self, id: &str, repo: &RepoName) -> Result<(), RegistryError> {
        let mut b = WriteBatch::default();
        b.put_cf(self.cf(CF_UPLOADS), id, repo.as_str());
        self.db.write_opt(b, &synced())?;
        Ok(())
    }

    /// The repository an upload session belongs to.
    pub fn upload_repo(&self, id: &str) -> Result<Option<String>, RegistryError> {
        let v = self.db.get_cf(self.cf(CF_UPLOADS), id)?;
        Ok(v.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Finishes an upload session: links its blob into the repository and
    /// forgets the session, in one synced batch, so a crash leaves either the
    /// session or the link, never neither.
    pub fn finish_upload(&self, id: &str, repo: &RepoName, digest: &Digest, size: u64) -> Result<(), RegistryError> {
        let mut b = WriteBatch::default();
        b.put_cf(self.cf(CF_REPOS), repo.as_str(), b"");
        b.put_cf(self.cf(CF_BLOBS), key(repo, digest.as_str()), size.to_be_bytes());
        b.delete_cf(self.cf(CF_UPLOADS), id);
        self.db.write_opt(b, &synced())?;
        Ok(())
    }

    /// Every stored manifest: its repository, digest and record.
    pub fn all_manifests(&self) -> Result<Vec<(RepoName, Digest, ManifestRecord)>, RegistryError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_MANIFESTS), rocksdb::IteratorMode::Start) {
            let (k, _) = item?;
            let (repo, digest) = split_key(&k)?;
            let (repo, digest) = (RepoName::parse(repo)?, super::names::parse_digest(digest)?);
            if let Some(record) = self.manifest(&repo, &digest)? {
                out.push((repo, digest, record));
            }
        }
        Ok(out)
    }

    /// Walks the manifests of `repo` that reference `digest` (a blob, or
    /// for an index a manifest) until `wanted` accepts one. Returns whether
    /// any references it, and the first one accepted; a blob shared by many
    /// images costs one read per manifest only until a match.
    pub fn find_referencing(
        &self,
        repo: &RepoName,
        digest: &Digest,
        wanted: impl Fn(&ManifestRecord) -> bool,
    ) -> Result<(bool, Option<Digest>), RegistryError> {
        let prefix = [key(repo, digest.as_str()), vec![0]].concat();
        let mode = rocksdb::IteratorMode::From(&prefix, rocksdb::Direction::Forward);
        let mut any = false;
        for item in self.db.iterator_cf(self.cf(CF_REFS), mode) {
            let (k, _) = item?;
            let Some(manifest) = k.strip_prefix(prefix.as_slice()) else {
                break;
            };
            let manifest = std::str::from_utf8(manifest)
                .ok()
                .and_then(|m| super::names::parse_digest(m).ok())
                .ok_or_else(|| RegistryError::Internal("a reference key is corrupt".into()))?;
            if let Some(record) = self.manifest(repo, &manifest)? {
                any = true;
                if wanted(&record) {
                    return Ok((true, Some(manifest)));
                }
            }
        }
        Ok((any, None))
    }

    /// Builds the reference index over manifests stored before it existed
    /// (`refs`: what a manifest references), once.
    pub fn backfill_refs(&self, refs: impl Fn(&ManifestRecord) -> Vec<Digest>) -> Result<usize, RegistryError> {
        if self.db.get_pinned_cf(self.cf(CF_STATE), "refs")?.is_some() {
            return Ok(0);
        }
        let mut b = WriteBatch::default();
        let mut n = 0;
        for (repo, digest, record) in self.all_manifests()? {
            for r in refs(&record) {
                b.put_cf(self.cf(CF_REFS), ref_key(repo.as_str(), &r, &digest), b"");
            }
            n += 1;
        }
        b.put_cf(self.cf(CF_STATE), "refs", b"1");
        self.db.write_opt(b, &synced())?;
        Ok(n)
    }

    /// The digest of the last policy every pending or denied image was
    /// re-evaluated under.
    pub fn evaluated_policy(&self) -> Result<Option<String>, RegistryError> {
        let v = self.db.get_cf(self.cf(CF_STATE), "evaluated")?;
        Ok(v.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Remembers that every pending or denied image was re-evaluated under
    /// the policy `digest`.
    pub fn set_evaluated_policy(&self, digest: &Digest) -> Result<(), RegistryError> {
        let mut b = WriteBatch::default();
        b.put_cf(self.cf(CF_STATE), "evaluated", digest.as_str());
        self.db.write_opt(b, &synced())?;
        Ok(())
    }

    /// Every blob link: repository and digest.
    pub fn all_blob_links(&self) -> Result<Vec<(String, Digest)>, RegistryError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_BLOBS), rocksdb::IteratorMode::Start) {
            let (k, _) = item?;
            let (repo, digest) = split_key(&k)?;
            out.push((repo.to_owned(), super::names::parse_digest(digest)?));
        }
        Ok(out)
    }

    /// Removes blob links, in one synced batch.
    pub fn unlink_blobs(&self, links: &[(String, Digest)]) -> Result<(), RegistryError> {
        let mut b = WriteBatch::default();
        for (repo, digest) in links {
            b.delete_cf(
                self.cf(CF_BLOBS),
                [repo.as_bytes(), &[0], digest.as_str().as_bytes()].concat(),
            );
        }
        self.db.write_opt(b, &synced())?;
        Ok(())
    }

    /// Records an admission state (and, for a decision, its summary), in
    /// one batch, without waiting for the WAL fsync: the decision itself is
    /// already durable in the ledger, and a state lost to a power failure
    /// (a process kill loses nothing: the WAL is in the page cache) reads
    /// back as the state before it, itself a logged decision or pending.
    /// Every start decides pending images again (`Scope::Pending`).
    pub fn set_state(
        &self,
        repo: &RepoName,
        digest: &Digest,
        state: AdmissionState,
        decision: Option<&serde_json::Value>,
        bundle: Option<(u64, bool)>,
    ) -> Result<(), RegistryError> {
        let k = key(repo, digest.as_str());
        let mut record = self
            .db
            .get_cf(self.cf(CF_MANIFESTS), &k)?
            .ok_or_else(|| RegistryError::ManifestUnknown(format!("{repo}@{digest}")))?;
        record[1] = state_byte(state);
        let mut b = WriteBatch::default();
        b.put_cf(self.cf(CF_MANIFESTS), &k, record);
        if let Some(d) = decision {
            b.put_cf(
                self.cf(CF_DECISIONS),
                &k,
                serde_json::to_vec(d).expect("serialize a JSON value"),
            );
        }
        if let Some((index, admit)) = bundle {
            let pending = [&k[..], &[0], &index.to_be_bytes()].concat();
            b.put_cf(self.cf(CF_ATTACH), pending, [u8::from(admit)]);
        }
        self.db.write(b)?;
        Ok(())
    }

    /// Up to `limit` decisions whose bundle still has to be attached:
    /// repository, digest, ledger index, whether it admitted.
    pub fn pending_bundles(&self, limit: usize) -> Result<Vec<(RepoName, Digest, u64, bool)>, RegistryError> {
        let corrupt = || RegistryError::Internal("a pending bundle key is corrupt".into());
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_ATTACH), rocksdb::IteratorMode::Start)
            .take(limit)
        {
            let (k, v) = item?;
            let (head, index) = k.split_at(k.len().checked_sub(9).ok_or_else(corrupt)?);
            let index = u64::from_be_bytes(index[1..].try_into().map_err(|_| corrupt())?);
            let (repo, digest) = split_key(head)?;
            out.push((
                RepoName::parse(repo)?,
                super::names::parse_digest(digest)?,
                index,
                v.first() == Some(&1),
            ));
        }
        Ok(out)
    }

    /// Forgets a pending bundle (attached, or its image is gone).
    pub fn bundle_attached(&self, repo: &RepoName, digest: &Digest, index: u64) -> Result<(), RegistryError> {
        let k = [key(repo, digest.as_str()), vec![0], index.to_be_bytes().to_vec()].concat();
        let mut b = WriteBatch::default();
        b.delete_cf(self.cf(CF_ATTACH), k);
        self.db.write_opt(b, &synced())?;
        Ok(())
    }

    /// The summary of the latest decision about a manifest.
    pub fn decision(&self, repo: &RepoName, digest: &Digest) -> Result<Option<serde_json::Value>, RegistryError> {
        let v = self.db.get_cf(self.cf(CF_DECISIONS), key(repo, digest.as_str()))?;
        Ok(v.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// The ledger index of a policy's entry, by the policy's digest.
    pub fn policy_index(&self, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        let v = self.db.get_cf(self.cf(CF_POLICIES), digest.as_str())?;
        Ok(v.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(u64::from_be_bytes))
    }

    /// How many policies have been logged.
    pub fn policy_count(&self) -> Result<u64, RegistryError> {
        let mut n = 0;
        for item in self.db.iterator_cf(self.cf(CF_POLICIES), rocksdb::IteratorMode::Start) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// Remembers that a policy was logged at `index`.
    pub fn record_policy(&self, digest: &Digest, index: u64) -> Result<(), RegistryError> {
        let mut b = WriteBatch::default();
        b.put_cf(self.cf(CF_POLICIES), digest.as_str(), index.to_be_bytes());
        self.db.write_opt(b, &synced())?;
        Ok(())
    }

    /// Every open upload session's id.
    pub fn uploads(&self) -> Result<Vec<String>, RegistryError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_UPLOADS), rocksdb::IteratorMode::Start) {
            let (k, _) = item?;
            out.push(String::from_utf8_lossy(&k).into_owned());
        }
        Ok(out)
    }

    /// Forgets an upload session.
    pub fn delete_upload(&self, id: &str) -> Result<(), RegistryError> {
        let mut b = WriteBatch::default();
        b.delete_cf(self.cf(CF_UPLOADS), id);
        self.db.write_opt(b, &synced())?;
        Ok(())
    }
}
