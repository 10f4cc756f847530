//! The registry's own state in the metadata: markers (`reg_state`) and the
//! policies logged (`reg_policies`), and the one-time backfill of the
//! reference index.

use super::{ManifestRecord, Meta, CF_POLICIES, CF_STATE};
use crate::registry::error::RegistryError;
use vouch_ledger::entry::Digest;

impl Meta {
    /// Builds the reference index over manifests stored before it existed
    /// (`refs`: what a manifest references), once.
    pub fn backfill_refs(&self, refs: impl Fn(&ManifestRecord) -> Vec<Digest>) -> Result<usize, RegistryError> {
        if self.marker("refs")?.is_some() {
            return Ok(0);
        }
        let mut b = self.batch();
        let mut n = 0;
        self.for_each_manifest(|repo, digest, record| {
            b.index_refs(repo, digest, &refs(record));
            n += 1;
            Ok(())
        })?;
        b.set_marker("refs", b"1");
        b.commit(true)?;
        Ok(n)
    }

    /// A marker in `reg_state`.
    pub fn marker(&self, name: &str) -> Result<Option<String>, RegistryError> {
        self.kv
            .get(CF_STATE, name.as_bytes(), |v| String::from_utf8_lossy(v).into_owned())
    }

    /// Sets a marker in `reg_state`, durably.
    pub fn set_marker(&self, name: &str, value: &str) -> Result<(), RegistryError> {
        let mut b = self.batch();
        b.set_marker(name, value.as_bytes());
        b.commit(true)
    }

    /// The database this metadata is in, if it is in one.
    pub fn database(&self) -> Option<std::sync::Arc<super::Postgres>> {
        match &self.kv {
            super::kv::Kv::Postgres(pg) => Some(pg.clone()),
            super::kv::Kv::Rocks(_) => None,
        }
    }

    /// The digest of the last policy every pending or denied image was
    /// re-evaluated under.
    pub fn evaluated_policy(&self) -> Result<Option<String>, RegistryError> {
        self.marker("evaluated")
    }

    /// Remembers that every pending or denied image was re-evaluated under
    /// the policy `digest`.
    pub fn set_evaluated_policy(&self, digest: &Digest) -> Result<(), RegistryError> {
        let mut b = self.batch();
        b.set_marker("evaluated", digest.as_str().as_bytes());
        b.commit(true)
    }

    /// The canonical document of a policy put in force here, by digest
    /// (kept since policy documents were recorded: spec/storage-layout.md).
    pub fn policy_document(&self, digest: &str) -> Result<Option<String>, RegistryError> {
        self.marker(&format!("policy-document/{digest}"))
    }

    /// The ledger index of a policy's entry, by the policy's digest.
    pub fn policy_index(&self, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        let v = self
            .kv
            .get(CF_POLICIES, digest.as_str().as_bytes(), |v| <[u8; 8]>::try_from(v).ok())?;
        Ok(v.flatten().map(u64::from_be_bytes))
    }

    /// How many policies have been logged.
    pub fn policy_count(&self) -> Result<u64, RegistryError> {
        let mut n = 0;
        self.scan_all(CF_POLICIES, |_, _| {
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }
}
