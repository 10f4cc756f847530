//! Registry metadata in RocksDB, beside the ledger in the same instance.
//!
//! ```text
//! reg_repos       <repo>                    -> ""                 repositories that exist
//! reg_blobs       <repo> 0x00 <digest>      -> u64 BE size        blobs linked into a repository
//! reg_manifests   <repo> 0x00 <digest>      -> manifest record    (record.rs)
//! reg_tags        <repo> 0x00 <tag>         -> <digest>
//! reg_uploads     <session id>              -> <repo> [0x00 <owner>]
//!                                                                 open upload sessions, and who
//!                                                                 opened them (user or address)
//! reg_referrers   <repo> 0x00 <subject> 0x00 <referrer digest>
//!                                           -> descriptor JSON    manifests whose subject is <subject>
//! reg_evidence    <repo> 0x00 <subject> 0x00 <evidence digest>
//!                                           -> kind name          manifests recognised as evidence
//!                                                                 about <subject>
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
//! reg_inline      <digest>                  -> u64 BE time || bytes small blobs vouch wrote
//!                                                                 (inline.rs)
//!
//! reg_state markers: "refs" -> "1" once reg_refs covers every manifest;
//! "records" -> "2" once every manifest record is of version 2 (evidence
//! classified by structure); "evaluated" -> the digest of the last policy
//! every pending or denied image was re-evaluated under.
//! ```
//!
//! Writes go through a [`Batch`]: one WriteBatch per durable step.

mod batch;
mod committer;
pub mod copy;
mod inline;
mod kv;
mod ledger_rows;
pub mod postgres;
mod postgres_url;
mod record;
mod shared_locks;
mod state;

pub use batch::Batch;
pub use inline::MAX_INLINE;
pub(crate) use kv::blocking;
pub use ledger_rows::PostgresRows;
pub use postgres::Postgres;
pub use record::{AdmissionState, Evidence, EvidenceKind, ManifestRecord, RECORD_VERSION};
pub use shared_locks::{tag_key, SharedGuard, SharedLocks};

use super::error::RegistryError;
use super::names::{parse_digest, RepoName, Tag};
use kv::{Kv, Range};
use rocksdb::{ColumnFamilyDescriptor, Options, DB};
use std::ops::ControlFlow;
use std::sync::Arc;
use vouch_ledger::entry::Digest;

const CF_REPOS: &str = "reg_repos";
const CF_BLOBS: &str = "reg_blobs";
const CF_MANIFESTS: &str = "reg_manifests";
const CF_TAGS: &str = "reg_tags";
const CF_UPLOADS: &str = "reg_uploads";
const CF_REFERRERS: &str = "reg_referrers";
const CF_EVIDENCE: &str = "reg_evidence";
const CF_DECISIONS: &str = "reg_decisions";
const CF_POLICIES: &str = "reg_policies";
const CF_REFS: &str = "reg_refs";
const CF_STATE: &str = "reg_state";
const CF_ATTACH: &str = "reg_attach";
const CF_INLINE: &str = "reg_inline";

/// Every family of the registry's metadata.
const FAMILIES: [&str; 13] = [
    CF_REPOS,
    CF_BLOBS,
    CF_MANIFESTS,
    CF_TAGS,
    CF_UPLOADS,
    CF_REFERRERS,
    CF_EVIDENCE,
    CF_DECISIONS,
    CF_POLICIES,
    CF_REFS,
    CF_STATE,
    CF_ATTACH,
    CF_INLINE,
];

/// The registry's column families, to open with the ledger's.
pub fn column_families() -> Vec<ColumnFamilyDescriptor> {
    FAMILIES
        .into_iter()
        .map(|n| {
            // Small memtables: RocksDB's default (64 MiB each, two per family)
            // would let a burst of large manifests hold hundreds of MiB in
            // memory until a flush. Writes are fsync'd through the WAL anyway.
            let mut o = Options::default();
            o.set_write_buffer_size(MEMTABLE_BYTES);
            o.set_max_write_buffer_number(2);
            ColumnFamilyDescriptor::new(n, o)
        })
        .collect()
}

/// Memtable size of each registry column family.
const MEMTABLE_BYTES: usize = 8 << 20;

/// Handle to the registry's metadata.
#[derive(Clone)]
pub struct Meta {
    kv: Kv,
    /// Synced RocksDB writes from async tasks (`Batch::commit_durable`).
    committer: Option<committer::Committer>,
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

/// An upload session's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    /// The repository it uploads into.
    pub repo: String,
    /// Who opened it: a user name, or the client's address (empty for
    /// sessions from before owners were recorded).
    pub owner: String,
}

impl Meta {
    /// Metadata in `db`, which must have [`column_families`].
    pub fn new(db: Arc<DB>) -> Meta {
        Meta {
            committer: Some(committer::Committer::start(db.clone())),
            kv: Kv::Rocks(db),
        }
    }

    /// Metadata in a PostgreSQL database.
    pub fn postgres(db: Arc<Postgres>) -> Meta {
        Meta {
            kv: Kv::Postgres(db),
            committer: None,
        }
    }

    /// Whether no metadata is stored at all (a registry never used).
    pub fn is_empty(&self) -> Result<bool, RegistryError> {
        self.is_empty_in(&FAMILIES)
    }

    /// Whether no row of `families` is stored.
    pub fn is_empty_in(&self, families: &[&'static str]) -> Result<bool, RegistryError> {
        for &family in families {
            let mut any = false;
            let range = Range {
                family,
                start: b"",
                prefix: b"",
            };
            self.kv.scan(range, &mut |_, _| {
                any = true;
                Ok(ControlFlow::Break(()))
            })?;
            if any {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A new batch of writes.
    pub fn batch(&self) -> Batch<'_> {
        Batch::new(self)
    }

    /// Runs `f` over each `(key suffix, value)` under `prefix` in `cf`, in
    /// key order, until it breaks.
    fn scan(
        &self,
        family: &'static str,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<ControlFlow<()>, RegistryError>,
    ) -> Result<(), RegistryError> {
        let range = Range {
            family,
            start: prefix,
            prefix,
        };
        self.kv.scan(range, &mut |k, v| f(&k[prefix.len()..], v))
    }

    /// Runs `f` over every key and value of `family`, in key order.
    fn scan_all(
        &self,
        family: &'static str,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), RegistryError>,
    ) -> Result<(), RegistryError> {
        self.scan(family, b"", |k, v| f(k, v).map(|()| ControlFlow::Continue(())))
    }

    /// Whether `family` holds `key`.
    fn has(&self, family: &'static str, key: &[u8]) -> Result<bool, RegistryError> {
        Ok(self.kv.get(family, key, |_| ())?.is_some())
    }

    /// Whether the repository exists (has had a blob or manifest pushed).
    pub fn repo_exists(&self, repo: &RepoName) -> Result<bool, RegistryError> {
        self.has(CF_REPOS, repo.as_str().as_bytes())
    }

    /// Repositories in name order, after `after`, at most `limit`.
    pub fn repos(&self, after: Option<&str>, limit: usize) -> Result<Vec<RepoName>, RegistryError> {
        let start = after.map(|a| [a.as_bytes(), &[0]].concat()).unwrap_or_default();
        let mut out = Vec::new();
        let range = Range {
            family: CF_REPOS,
            start: &start,
            prefix: b"",
        };
        self.kv.scan(range, &mut |k, _| {
            if out.len() >= limit {
                return Ok(ControlFlow::Break(()));
            }
            let name =
                std::str::from_utf8(k).map_err(|_| RegistryError::Internal("a repository key is corrupt".into()))?;
            out.push(RepoName::parse(name)?);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    /// The size a blob was linked into a repository with, if it is linked.
    pub fn blob_link(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        let v = self
            .kv
            .get(CF_BLOBS, &key(repo, digest.as_str()), |v| <[u8; 8]>::try_from(v).ok())?;
        Ok(v.flatten().map(u64::from_be_bytes))
    }

    /// Whether a blob is linked into a repository.
    pub fn blob_linked(&self, repo: &RepoName, digest: &Digest) -> Result<bool, RegistryError> {
        self.has(CF_BLOBS, &key(repo, digest.as_str()))
    }

    /// Descriptors of the manifests in `repo` whose subject is `subject`,
    /// in referrer digest order, after `after`, until `keep` has taken `limit`.
    pub fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        mut keep: impl FnMut(&Digest, &serde_json::Value) -> Result<bool, RegistryError>,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>, RegistryError> {
        let prefix = [key(repo, subject.as_str()), vec![0]].concat();
        let mut out = Vec::new();
        self.scan(CF_REFERRERS, &prefix, |rest, v| {
            let corrupt = || RegistryError::Internal(format!("referrer record of {repo}@{subject} is corrupt"));
            let digest = std::str::from_utf8(rest)
                .ok()
                .and_then(Digest::parse)
                .ok_or_else(corrupt)?;
            let d: serde_json::Value = serde_json::from_slice(v).map_err(|_| corrupt())?;
            if keep(&digest, &d)? {
                out.push(d);
            }
            Ok(if out.len() >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
        Ok(out)
    }

    /// The digests of the manifests recognised as evidence about `subject`.
    pub fn evidence_for(&self, repo: &RepoName, subject: &Digest, limit: usize) -> Result<Vec<Digest>, RegistryError> {
        let prefix = [key(repo, subject.as_str()), vec![0]].concat();
        let mut out = Vec::new();
        self.scan(CF_EVIDENCE, &prefix, |rest, _| {
            let d = std::str::from_utf8(rest)
                .ok()
                .and_then(Digest::parse)
                .ok_or_else(|| RegistryError::Internal("an evidence key is corrupt".into()))?;
            out.push(d);
            Ok(if out.len() >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
        Ok(out)
    }

    /// The size of a stored manifest, without reading it into memory.
    pub fn manifest_size(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        let Some(len) = self
            .kv
            .get(CF_MANIFESTS, &key(repo, digest.as_str()), ManifestRecord::bytes_len)?
        else {
            return Ok(None);
        };
        let len = len.ok_or_else(|| RegistryError::Internal(format!("manifest record {repo}@{digest} is corrupt")))?;
        Ok(Some(len as u64))
    }

    /// A stored manifest.
    pub fn manifest(&self, repo: &RepoName, digest: &Digest) -> Result<Option<ManifestRecord>, RegistryError> {
        let Some(record) = self
            .kv
            .get(CF_MANIFESTS, &key(repo, digest.as_str()), ManifestRecord::decode)?
        else {
            return Ok(None);
        };
        record
            .map(Some)
            .ok_or_else(|| RegistryError::Internal(format!("manifest record {repo}@{digest} is corrupt")))
    }

    /// Whether a manifest is stored.
    pub fn manifest_exists(&self, repo: &RepoName, digest: &Digest) -> Result<bool, RegistryError> {
        self.has(CF_MANIFESTS, &key(repo, digest.as_str()))
    }

    /// The digest a tag points to.
    pub fn tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<Digest>, RegistryError> {
        let v = self.kv.get(CF_TAGS, &key(repo, tag.as_str()), |v| {
            Digest::parse(std::str::from_utf8(v).ok()?)
        })?;
        Ok(v.flatten())
    }

    /// All tags of a repository, sorted, with the digests they point to.
    pub fn tags_with_targets(&self, repo: &RepoName) -> Result<Vec<(String, Digest)>, RegistryError> {
        let mut out = Vec::new();
        self.scan(CF_TAGS, &key(repo, ""), |tag, target| {
            let target = std::str::from_utf8(target)
                .ok()
                .and_then(Digest::parse)
                .ok_or_else(|| RegistryError::Internal("a tag record is corrupt".into()))?;
            out.push((String::from_utf8_lossy(tag).into_owned(), target));
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    /// All tags of a repository, sorted.
    pub fn tags(&self, repo: &RepoName) -> Result<Vec<String>, RegistryError> {
        Ok(self.tags_with_targets(repo)?.into_iter().map(|(t, _)| t).collect())
    }

    /// An upload session's record.
    pub fn upload(&self, id: &str) -> Result<Option<UploadRecord>, RegistryError> {
        self.kv.get(CF_UPLOADS, id.as_bytes(), |v| {
            let text = String::from_utf8_lossy(v);
            let (repo, owner) = text.split_once('\0').unwrap_or((&text, ""));
            UploadRecord {
                repo: repo.to_owned(),
                owner: owner.to_owned(),
            }
        })
    }

    /// Every open upload session: its id and record.
    pub fn uploads(&self) -> Result<Vec<(String, UploadRecord)>, RegistryError> {
        let mut ids = Vec::new();
        self.scan_all(CF_UPLOADS, |k, _| {
            ids.push(String::from_utf8_lossy(k).into_owned());
            Ok(())
        })?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(r) = self.upload(&id)? {
                out.push((id, r));
            }
        }
        Ok(out)
    }

    /// Calls `f` with every stored manifest, in every repository, one at a
    /// time (none is kept: a registry may hold millions).
    pub fn for_each_manifest(
        &self,
        mut f: impl FnMut(&RepoName, &Digest, &ManifestRecord) -> Result<(), RegistryError>,
    ) -> Result<(), RegistryError> {
        self.scan_all(CF_MANIFESTS, |k, v| {
            let (repo, digest) = split_key(k)?;
            let (repo, digest) = (RepoName::parse(repo)?, parse_digest(digest)?);
            let record = ManifestRecord::decode(v)
                .ok_or_else(|| RegistryError::Internal(format!("manifest record {repo}@{digest} is corrupt")))?;
            f(&repo, &digest, &record)
        })
    }

    /// The first stored manifest of `repo` for which `wanted` holds.
    pub fn find_manifest(
        &self,
        repo: &RepoName,
        mut wanted: impl FnMut(&Digest, &ManifestRecord) -> Result<bool, RegistryError>,
    ) -> Result<Option<Digest>, RegistryError> {
        let mut found = None;
        self.scan(CF_MANIFESTS, &key(repo, ""), |rest, v| {
            let digest = std::str::from_utf8(rest)
                .ok()
                .and_then(Digest::parse)
                .ok_or_else(|| RegistryError::Internal("a manifest key is corrupt".into()))?;
            let record = ManifestRecord::decode(v)
                .ok_or_else(|| RegistryError::Internal(format!("manifest record {repo}@{digest} is corrupt")))?;
            if wanted(&digest, &record)? {
                found = Some(digest);
                return Ok(ControlFlow::Break(()));
            }
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(found)
    }

    /// Visits the manifests of `repo` that reference `digest` (a blob, or
    /// for an index a manifest), until `visit` breaks.
    pub fn for_each_referencing(
        &self,
        repo: &RepoName,
        digest: &Digest,
        mut visit: impl FnMut(&Digest, &ManifestRecord) -> ControlFlow<()>,
    ) -> Result<(), RegistryError> {
        let prefix = [key(repo, digest.as_str()), vec![0]].concat();
        self.scan(CF_REFS, &prefix, |rest, _| {
            let manifest = std::str::from_utf8(rest)
                .ok()
                .and_then(|m| parse_digest(m).ok())
                .ok_or_else(|| RegistryError::Internal("a reference key is corrupt".into()))?;
            Ok(match self.manifest(repo, &manifest)? {
                Some(record) => visit(&manifest, &record),
                None => ControlFlow::Continue(()),
            })
        })
    }

    /// Every blob link: repository and digest.
    pub fn all_blob_links(&self) -> Result<Vec<(String, Digest)>, RegistryError> {
        let mut out = Vec::new();
        self.scan_all(CF_BLOBS, |k, _| {
            let (repo, digest) = split_key(k)?;
            out.push((repo.to_owned(), parse_digest(digest)?));
            Ok(())
        })?;
        Ok(out)
    }

    /// Up to `limit` decisions whose bundle still has to be attached:
    /// repository, digest, ledger index, whether it admitted.
    pub fn pending_bundles(&self, limit: usize) -> Result<Vec<(RepoName, Digest, u64, bool)>, RegistryError> {
        let corrupt = || RegistryError::Internal("a pending bundle key is corrupt".into());
        let mut out = Vec::new();
        self.scan(CF_ATTACH, b"", |k, v| {
            if out.len() >= limit {
                return Ok(ControlFlow::Break(()));
            }
            let (head, index) = k.split_at(k.len().checked_sub(9).ok_or_else(corrupt)?);
            let index = u64::from_be_bytes(index[1..].try_into().map_err(|_| corrupt())?);
            let (repo, digest) = split_key(head)?;
            out.push((
                RepoName::parse(repo)?,
                parse_digest(digest)?,
                index,
                v.first() == Some(&1),
            ));
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    /// The summary of the latest decision about a manifest.
    pub fn decision(&self, repo: &RepoName, digest: &Digest) -> Result<Option<serde_json::Value>, RegistryError> {
        let v = self.kv.get(CF_DECISIONS, &key(repo, digest.as_str()), |v| {
            serde_json::from_slice(v).ok()
        })?;
        Ok(v.flatten())
    }

    /// The latest decision summaries of `repo`'s manifests, in digest
    /// order, at most `limit`: one bounded scan, for the web pages.
    pub fn decisions_in(
        &self,
        repo: &RepoName,
        limit: usize,
    ) -> Result<Vec<(String, serde_json::Value)>, RegistryError> {
        let mut out = Vec::new();
        self.scan(CF_DECISIONS, &key(repo, ""), |digest, v| {
            if let Ok(summary) = serde_json::from_slice(v) {
                out.push((String::from_utf8_lossy(digest).into_owned(), summary));
            }
            Ok(if out.len() >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
        Ok(out)
    }

    /// Tags of `repo` after `after` (sorted), at most `limit`, with their
    /// targets: one bounded scan.
    pub fn tags_after(
        &self,
        repo: &RepoName,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, Digest)>, RegistryError> {
        let prefix = key(repo, "");
        let start = if after.is_empty() {
            prefix.clone()
        } else {
            [key(repo, after), vec![0]].concat()
        };
        let mut out = Vec::new();
        let range = Range {
            family: CF_TAGS,
            start: &start,
            prefix: &prefix,
        };
        self.kv.scan(range, &mut |k, v| {
            if out.len() >= limit {
                return Ok(ControlFlow::Break(()));
            }
            let target = std::str::from_utf8(v)
                .ok()
                .and_then(Digest::parse)
                .ok_or_else(|| RegistryError::Internal("a tag record is corrupt".into()))?;
            out.push((String::from_utf8_lossy(&k[prefix.len()..]).into_owned(), target));
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }
}
