//! Manifest validation at push: well-formed JSON of a supported media type,
//! matching the request's Content-Type, whose references exist.

use super::error::RegistryError;
use super::names::parse_digest;
use vouch_ledger::entry::Digest;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// What a manifest points at, for existence checks.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct References {
    /// Blobs (config and layers) that must be in the repository.
    pub blobs: Vec<Digest>,
    /// The sizes their descriptors declare, in the same order.
    pub blob_sizes: Vec<u64>,
    /// Manifests (index entries) that must be in the repository.
    pub manifests: Vec<Digest>,
    /// The sizes their descriptors declare, in the same order.
    pub manifest_sizes: Vec<u64>,
    /// An image manifest's config media type.
    pub config_media_type: Option<String>,
    /// The `subject`, which need not exist yet.
    pub subject: Option<Digest>,
    /// The artifact type a referrers listing shows: `artifactType`, or for
    /// an image manifest without one, its config's media type.
    pub artifact_type: Option<String>,
    /// The manifest's `annotations`, copied into referrers listings.
    pub annotations: Option<serde_json::Value>,
}

impl References {
    /// Every blob and manifest referenced (not the subject).
    pub fn all(&self) -> Vec<Digest> {
        self.blobs.iter().chain(&self.manifests).cloned().collect()
    }

    /// The sum of the sizes its descriptors declare, or `None` if it does
    /// not fit in 64 bits.
    pub fn declared_total(&self) -> Option<u64> {
        self.blob_sizes
            .iter()
            .chain(&self.manifest_sizes)
            .try_fold(0u64, |sum, n| sum.checked_add(*n))
    }
}

/// Checks a manifest's body against the Content-Type it was pushed with and
/// returns what it references.
pub fn validate(content_type: &str, bytes: &[u8]) -> Result<References, RegistryError> {
    let invalid = |m: String| RegistryError::ManifestInvalid(m);
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if ![OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].contains(&media_type) {
        return Err(invalid(format!(
            "unsupported manifest media type {media_type:?} (Content-Type); expected one of {OCI_MANIFEST}, {OCI_INDEX}, {DOCKER_MANIFEST}, {DOCKER_LIST}"
        )));
    }
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("not well-formed JSON: {e}")))?;
    let obj = doc.as_object().ok_or_else(|| invalid("not a JSON object".into()))?;
    if let Some(mt) = obj.get("mediaType") {
        if mt.as_str() != Some(media_type) {
            return Err(invalid(format!(
                "mediaType {mt} does not match Content-Type {media_type:?}"
            )));
        }
    }
    if obj.get("schemaVersion").and_then(|v| v.as_u64()) != Some(2) {
        return Err(invalid("schemaVersion must be 2".into()));
    }
    let descriptor = |d: &serde_json::Value, what: &str| -> Result<(Digest, u64), RegistryError> {
        let text = d
            .get("digest")
            .and_then(|v| v.as_str())
            .ok_or_else(|| invalid(format!("{what} has no digest")))?;
        let size = d
            .get("size")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| invalid(format!("{what} has no size (a non-negative integer)")))?;
        Ok((parse_digest(text).map_err(|e| invalid(format!("{what}: {e}")))?, size))
    };
    let mut refs = References::default();
    if let Some(subject) = obj.get("subject") {
        refs.subject = Some(descriptor(subject, "subject")?.0);
    }
    refs.artifact_type = obj.get("artifactType").and_then(|v| v.as_str()).map(str::to_owned);
    if refs.artifact_type.is_none() {
        let config_type = obj
            .get("config")
            .and_then(|c| c.get("mediaType"))
            .and_then(|v| v.as_str());
        refs.artifact_type = config_type.map(str::to_owned);
    }
    refs.annotations = obj.get("annotations").filter(|a| a.is_object()).cloned();
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = obj
                .get("config")
                .ok_or_else(|| invalid("image manifest has no config".into()))?;
            refs.config_media_type = config.get("mediaType").and_then(|v| v.as_str()).map(str::to_owned);
            let (d, size) = descriptor(config, "config")?;
            refs.blobs.push(d);
            refs.blob_sizes.push(size);
            let layers = obj
                .get("layers")
                .and_then(|l| l.as_array())
                .ok_or_else(|| invalid("image manifest has no layers array".into()))?;
            for (i, layer) in layers.iter().enumerate() {
                let (d, size) = descriptor(layer, &format!("layer {i}"))?;
                refs.blobs.push(d);
                refs.blob_sizes.push(size);
            }
        }
        _ => {
            let manifests = obj
                .get("manifests")
                .and_then(|m| m.as_array())
                .ok_or_else(|| invalid("index has no manifests array".into()))?;
            for (i, m) in manifests.iter().enumerate() {
                let (d, size) = descriptor(m, &format!("manifest {i}"))?;
                refs.manifests.push(d);
                refs.manifest_sizes.push(size);
            }
        }
    }
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn image_manifests_list_their_blobs() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"{}","size":2}},"layers":[{{"mediaType":"y","digest":"{}","size":3}}],"subject":{{"mediaType":"z","digest":"{}","size":4}}}}"#,
            d('a'),
            d('b'),
            d('c')
        );
        let r = validate(OCI_MANIFEST, m.as_bytes()).unwrap();
        assert_eq!(r.blobs.len(), 2);
        assert_eq!(r.subject.unwrap().as_str(), d('c'));
        assert!(
            validate(OCI_INDEX, m.as_bytes()).is_err(),
            "mediaType must match Content-Type"
        );
        assert!(validate("application/json", m.as_bytes()).is_err());
        assert!(validate(OCI_MANIFEST, b"{").is_err());
        assert!(validate(
            OCI_MANIFEST,
            br#"{"schemaVersion":2,"config":{"digest":"sha256:zz","size":1},"layers":[]}"#
        )
        .is_err());
    }
}
