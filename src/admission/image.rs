//! Reads what an image is for the policy (spec/policy.md, "Image
//! configuration"): the configuration blob of an image manifest, or of each
//! platform an index lists, each within its bound. The facts are parsed by
//! `policy::image`; this file does the reads.

use super::decide::is_index;
use super::evidence;
use super::Admission;
use crate::policy::image::{
    is_build_attestation, parse_config, platform_name, Configs, ImageConfig, MAX_CONFIG_BYTES, MAX_PLATFORMS,
    REFERENCE_TYPE,
};
use crate::registry::error::RegistryError;
use crate::registry::manifest::{validate, References};
use crate::registry::meta::ManifestRecord;
use crate::registry::names::RepoName;
use crate::registry::AppState;
use vouch_ledger::entry::Digest;

/// An index's entry, as far as platforms go (OCI image-spec,
/// `image-index.md`).
#[derive(serde::Deserialize)]
struct IndexDoc {
    #[serde(default)]
    manifests: Vec<IndexEntry>,
}

#[derive(serde::Deserialize)]
struct IndexEntry {
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    annotations: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

#[derive(serde::Deserialize)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

/// Why a configuration could not be read, or a storage failure (which
/// makes the decision undetermined, never a denial).
enum Failure {
    Unreadable(String),
    Storage(RegistryError),
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Self {
        Failure::Storage(e)
    }
}

impl Admission {
    /// The configuration(s) of the manifest `record` of `repo`, whose
    /// references are `refs`. Storage failures are errors; everything else
    /// (a bound, a blob missing, invalid JSON) is [`Configs::Unreadable`].
    pub(super) async fn read_configs(
        &self,
        app: &AppState,
        repo: &RepoName,
        record: &ManifestRecord,
        refs: &References,
    ) -> Result<Configs, RegistryError> {
        let result = if is_index(&record.media_type) {
            self.index_configs(app, repo, &record.bytes).await
        } else if evidence::runnable(refs) {
            self.image_config(app, repo, refs, None).await.map(|c| vec![c])
        } else {
            let what = refs.artifact_type.clone().unwrap_or_else(|| record.media_type.clone());
            return Ok(Configs::NotAnImage(what));
        };
        match result {
            Ok(v) => Ok(Configs::Read(v)),
            Err(Failure::Unreadable(why)) => Ok(Configs::Unreadable(why)),
            Err(Failure::Storage(e)) => Err(e),
        }
    }

    /// Each platform's configuration. Build attestations that buildx lists
    /// beside the images ([`is_build_attestation`]) are not images to run
    /// and are skipped; any other entry, whatever it claims, is held to the
    /// rules.
    async fn index_configs(&self, app: &AppState, repo: &RepoName, bytes: &[u8]) -> Result<Vec<ImageConfig>, Failure> {
        let doc: IndexDoc =
            serde_json::from_slice(bytes).map_err(|e| Failure::Unreadable(format!("the index is not valid: {e}")))?;
        let entries: Vec<&IndexEntry> = doc.manifests.iter().collect();
        if entries.len() > 2 * MAX_PLATFORMS {
            return Err(Failure::Unreadable(format!(
                "the index lists {} entries; at most {} are read ({MAX_PLATFORMS} platforms and their build attestations)",
                entries.len(),
                2 * MAX_PLATFORMS
            )));
        }
        let mut out = Vec::new();
        for entry in entries {
            let unreadable = |why: String| Failure::Unreadable(format!("index entry {}: {why}", entry.digest));
            let digest = Digest::parse(&entry.digest).ok_or_else(|| unreadable("not a digest".into()))?;
            let record = app
                .meta
                .manifest(repo, &digest)?
                .ok_or_else(|| unreadable("not in this repository".into()))?;
            let annotation = entry.annotations.as_ref().and_then(|a| a.get(REFERENCE_TYPE)?.as_str());
            let claimed = entry
                .platform
                .as_ref()
                .map(|p| (p.os.as_str(), p.architecture.as_str()));
            if is_build_attestation(annotation, claimed, &record.bytes) {
                continue;
            }
            if is_index(&record.media_type) {
                return Err(unreadable(
                    "an index inside an index; nested indexes are not read".into(),
                ));
            }
            let refs = validate(&record.media_type, &record.bytes).map_err(|e| unreadable(e.to_string()))?;
            if !evidence::runnable(&refs) {
                return Err(unreadable("not an image".into()));
            }
            let platform = entry
                .platform
                .as_ref()
                .map(|p| platform_name(&p.os, &p.architecture, p.variant.as_deref()));
            out.push(self.image_config(app, repo, &refs, platform).await?);
            if out.len() > MAX_PLATFORMS {
                return Err(Failure::Unreadable(format!(
                    "the index lists more than {MAX_PLATFORMS} platforms; at most {MAX_PLATFORMS} are read"
                )));
            }
        }
        Ok(out)
    }

    /// An image manifest's configuration, read within
    /// [`MAX_CONFIG_BYTES`] and the admission's evidence memory.
    async fn image_config(
        &self,
        app: &AppState,
        repo: &RepoName,
        refs: &References,
        platform: Option<String>,
    ) -> Result<ImageConfig, Failure> {
        let (Some(config), Some(&declared)) = (refs.blobs.first(), refs.blob_sizes.first()) else {
            return Err(Failure::Unreadable("the manifest has no config".into()));
        };
        if declared > MAX_CONFIG_BYTES {
            return Err(Failure::Unreadable(format!(
                "the configuration {config} is {declared} bytes, over the bound of {MAX_CONFIG_BYTES}"
            )));
        }
        if !app.meta.blob_linked(repo, config)? || app.blob_size(config).await? != Some(declared) {
            return Err(Failure::Unreadable(format!(
                "the configuration {config} is not in this repository"
            )));
        }
        let _room = self
            .evidence_memory
            .acquire_many(u32::try_from(declared.max(1)).unwrap_or(u32::MAX))
            .await
            .map_err(|e| RegistryError::Internal(e.to_string()))?;
        let bytes = app.read_blob(config).await?;
        let mut layer_sizes = refs.blob_sizes[1..].to_vec();
        layer_sizes.extend(&refs.foreign_sizes);
        parse_config(&bytes, platform, layer_sizes)
            .map(|c| c.with_annotations(refs.annotations.as_ref()))
            .map_err(Failure::Unreadable)
    }
}
