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
    /// Non-distributable layers ([`is_foreign`]): referenced, never pushed
    /// and never served; not in `blobs`.
    pub foreign: Vec<Digest>,
    /// The sizes their descriptors declare, in the same order.
    pub foreign_sizes: Vec<u64>,
}

/// Media types of non-distributable ("foreign") layers: OCI image spec,
/// "Non-distributable layers" (deprecated there, still in Windows base
/// images), and Docker's foreign layer.
pub const FOREIGN_LAYER_TYPES: [&str; 5] = [
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// Most `urls` one descriptor may list.
const MAX_URLS: usize = 16;

/// Whether a layer is non-distributable: a foreign layer media type and at
/// least one URL to fetch it from (as distribution and zot accept them).
fn is_foreign(media_type: Option<&str>, urls: &[String]) -> bool {
    media_type.is_some_and(|t| FOREIGN_LAYER_TYPES.contains(&t)) && !urls.is_empty()
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
            .chain(&self.foreign_sizes)
            .try_fold(0u64, |sum, n| sum.checked_add(*n))
    }
}

/// Most descriptors (config and layers, or an index's manifests) a
/// manifest may list. Real images have tens (Docker's limit is 127 layers);
/// the bound keeps one push from costing unbounded memory.
pub const MAX_DESCRIPTORS: usize = 4096;

/// A manifest as far as the registry reads it: typed, so that the many
/// fields it does not read are skipped, never built into a JSON tree.
#[derive(serde::Deserialize)]
struct Doc {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<serde_json::Value>,
    #[serde(rename = "mediaType")]
    media_type: Option<serde_json::Value>,
    #[serde(rename = "artifactType")]
    artifact_type: Option<serde_json::Value>,
    config: Option<Desc>,
    layers: Option<Vec<Desc>>,
    manifests: Option<Vec<Desc>>,
    subject: Option<Desc>,
    annotations: Option<serde_json::Value>,
}

/// A descriptor's fields the registry reads.
#[derive(serde::Deserialize)]
struct Desc {
    #[serde(rename = "mediaType")]
    media_type: Option<serde_json::Value>,
    digest: Option<serde_json::Value>,
    size: Option<serde_json::Value>,
    urls: Option<serde_json::Value>,
}

impl Desc {
    /// Its `urls`: strings, at most [`MAX_URLS`].
    fn urls(&self, what: &str) -> Result<Vec<String>, RegistryError> {
        let invalid =
            || RegistryError::ManifestInvalid(format!("{what}: urls must be an array of at most {MAX_URLS} strings"));
        match &self.urls {
            None => Ok(Vec::new()),
            Some(serde_json::Value::Array(a)) if a.len() <= MAX_URLS => a
                .iter()
                .map(|u| u.as_str().map(str::to_owned).ok_or_else(invalid))
                .collect(),
            Some(_) => Err(invalid()),
        }
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
    let doc: Doc = serde_json::from_slice(bytes).map_err(|e| invalid(format!("not a well-formed manifest: {e}")))?;
    if let Some(mt) = &doc.media_type {
        if mt.as_str() != Some(media_type) {
            return Err(invalid(format!(
                "mediaType {mt} does not match Content-Type {media_type:?}"
            )));
        }
    }
    if doc.schema_version.as_ref().and_then(|v| v.as_u64()) != Some(2) {
        return Err(invalid("schemaVersion must be 2".into()));
    }
    let descriptor = |d: &Desc, what: &str| -> Result<(Digest, u64), RegistryError> {
        let text = d
            .digest
            .as_ref()
            .and_then(|v| v.as_str())
            .ok_or_else(|| invalid(format!("{what} has no digest")))?;
        let size = d
            .size
            .as_ref()
            .and_then(|v| v.as_u64())
            .ok_or_else(|| invalid(format!("{what} has no size (a non-negative integer)")))?;
        Ok((parse_digest(text).map_err(|e| invalid(format!("{what}: {e}")))?, size))
    };
    let mut refs = References::default();
    if let Some(subject) = &doc.subject {
        refs.subject = Some(descriptor(subject, "subject")?.0);
    }
    refs.artifact_type = doc.artifact_type.as_ref().and_then(|v| v.as_str()).map(str::to_owned);
    if refs.artifact_type.is_none() {
        let config_type = doc
            .config
            .as_ref()
            .and_then(|c| c.media_type.as_ref())
            .and_then(|v| v.as_str());
        refs.artifact_type = config_type.map(str::to_owned);
    }
    refs.annotations = doc.annotations.filter(|a| a.is_object());
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = doc
                .config
                .as_ref()
                .ok_or_else(|| invalid("image manifest has no config".into()))?;
            refs.config_media_type = config.media_type.as_ref().and_then(|v| v.as_str()).map(str::to_owned);
            let layers = doc
                .layers
                .as_ref()
                .ok_or_else(|| invalid("image manifest has no layers array".into()))?;
            if layers.len() + 1 > MAX_DESCRIPTORS {
                return Err(invalid(format!(
                    "{} layers: a manifest lists at most {MAX_DESCRIPTORS} descriptors",
                    layers.len()
                )));
            }
            let (d, size) = descriptor(config, "config")?;
            refs.blobs.push(d);
            refs.blob_sizes.push(size);
            for (i, layer) in layers.iter().enumerate() {
                let what = format!("layer {i}");
                let (d, size) = descriptor(layer, &what)?;
                let urls = layer.urls(&what)?;
                if is_foreign(layer.media_type.as_ref().and_then(|v| v.as_str()), &urls) {
                    refs.foreign.push(d);
                    refs.foreign_sizes.push(size);
                } else {
                    refs.blobs.push(d);
                    refs.blob_sizes.push(size);
                }
            }
        }
        _ => {
            let manifests = doc
                .manifests
                .as_ref()
                .ok_or_else(|| invalid("index has no manifests array".into()))?;
            if manifests.len() > MAX_DESCRIPTORS {
                return Err(invalid(format!(
                    "{} manifests: an index lists at most {MAX_DESCRIPTORS}",
                    manifests.len()
                )));
            }
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

    #[test]
    fn foreign_layers_with_urls_are_referenced_not_required() {
        let layer = |media_type: &str, urls: &str| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"{}","size":2}},"layers":[{{"mediaType":"{media_type}","digest":"{}","size":30000000{urls}}}]}}"#,
                d('a'),
                d('b')
            )
        };
        let foreign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
        let urls = r#","urls":["https://mcr.microsoft.com/v2/windows/blobs/x"]"#;
        let r = validate(OCI_MANIFEST, layer(foreign, urls).as_bytes()).unwrap();
        assert_eq!((r.blobs.len(), r.foreign.len()), (1, 1));
        assert_eq!(r.declared_total(), Some(30_000_002));
        // Without URLs, or of an ordinary media type: a layer to push.
        for m in [
            layer(foreign, ""),
            layer("application/vnd.oci.image.layer.v1.tar", urls),
        ] {
            let r = validate(OCI_MANIFEST, m.as_bytes()).unwrap();
            assert_eq!((r.blobs.len(), r.foreign.len()), (2, 0), "{m}");
        }
        assert!(validate(OCI_MANIFEST, layer(foreign, r#","urls":[1]"#).as_bytes()).is_err());
    }
}
