//! What an image is, as a policy sees it (spec/policy.md, "Image
//! configuration"): the facts of an image configuration (OCI image-spec,
//! `config.md`) parsed at the edge into one small type, and the
//! declarative rules over them (`forbid_root`, `required_labels`,
//! `max_age`). Pure: admission reads the bytes, under the bounds here.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest image configuration read, in bytes. A larger one is a failure
/// of every rule that reads the configuration, naming the bound.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Most platforms of an index whose configurations are read. An index
/// listing more fails every rule that reads the configuration.
pub const MAX_PLATFORMS: usize = 64;

/// The facts of one image configuration (one platform of an index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageConfig {
    /// `os/architecture[/variant]`, from the index's descriptor when it
    /// says, else from the configuration.
    pub platform: String,
    /// `config.User`: `""` when unset (the runtime's default: root).
    pub user: String,
    /// The names in `config.Env`, never the values (they can hold secrets).
    pub env_names: Vec<String>,
    /// The values, by name: given to Rego only by a rule that opts in
    /// (`env_values = true`), never serialised otherwise.
    #[serde(skip)]
    pub env_values: BTreeMap<String, String>,
    /// `config.Labels`.
    pub labels: BTreeMap<String, String>,
    /// `created`, as written (RFC 3339), if present.
    pub created: Option<String>,
    /// `created` as seconds since the Unix epoch, if it parses.
    pub created_unix: Option<i64>,
    /// `os`.
    pub os: String,
    /// `architecture`.
    pub architecture: String,
    /// The keys of `config.ExposedPorts` (`8080/tcp`).
    pub exposed_ports: Vec<String>,
    /// `config.Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `config.Cmd`.
    pub cmd: Vec<String>,
    /// The manifest's layers: how many, and their declared sizes.
    pub layer_count: usize,
    /// Declared sizes of the layers, in manifest order (distributable ones
    /// first, then non-distributable ones).
    pub layer_sizes: Vec<u64>,
    /// The base image's name (`org.opencontainers.image.base.name`), from
    /// the manifest's annotations, else the configuration's labels.
    pub base_name: Option<String>,
    /// The base image's digest (`org.opencontainers.image.base.digest`),
    /// likewise.
    pub base_digest: Option<String>,
}

/// How far in the future a time may be (clock skew between the builder
/// or scanner and vouch) before it counts as no valid time: a date in the
/// future would otherwise satisfy any `max_age` for ever.
pub const FUTURE_SLACK: i64 = 3600;

/// The OCI annotations naming a base image.
pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
/// The digest one.
pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

impl ImageConfig {
    /// Takes the base image from the manifest's `annotations`, where the
    /// image spec puts it (a label in the configuration stays the fallback).
    pub fn with_annotations(mut self, annotations: Option<&serde_json::Value>) -> ImageConfig {
        let get = |k: &str| annotations.and_then(|a| a[k].as_str()).map(str::to_owned);
        if let Some(n) = get(BASE_NAME) {
            self.base_name = Some(n);
        }
        if let Some(d) = get(BASE_DIGEST) {
            self.base_digest = Some(d);
        }
        self
    }
}

/// What the policy knows of an image's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Configs {
    /// Not read: no rule needs it.
    #[default]
    NotRead,
    /// Not an image (an artifact, an attachment): no configuration.
    NotAnImage(String),
    /// One per platform: one for an image manifest.
    Read(Vec<ImageConfig>),
    /// Could not be read; why (a bound, a missing blob, invalid JSON).
    Unreadable(String),
}

impl Configs {
    /// The configurations, for Rego's input (empty unless read).
    pub fn images(&self) -> &[ImageConfig] {
        match self {
            Configs::Read(v) => v,
            _ => &[],
        }
    }
}

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    config: Option<ExecConfig>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ExecConfig {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
}

/// The keys of a JSON object, in order, duplicates kept.
struct Keys(Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

/// A key as Go's encoding/json matches it (what containerd, moby and
/// containers/image read configurations with): case-insensitively, with
/// the two non-ASCII letters that fold to ASCII ones.
fn go_fold(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '\u{017F}' => 's',
            '\u{212A}' => 'k',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Refuses an object in which a runtime could read a field other than the
/// one vouch reads: a key given twice, or two keys that fold to one field
/// (`"User"` and `"user"`: Go takes the last).
fn unambiguous(keys: &[String], fields: &[&str]) -> Result<(), String> {
    for field in fields {
        let folded = go_fold(field);
        let matching: Vec<&String> = keys.iter().filter(|k| go_fold(k) == folded).collect();
        if matching.len() > 1 || matching.iter().any(|k| k.as_str() != *field) {
            return Err(format!(
                "the image configuration is ambiguous: {} for the field {field:?} (runtimes match keys case-insensitively)",
                matching.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    Ok(())
}

/// Parses an image configuration. `platform` is the index descriptor's
/// platform, if any; `layer_sizes` come from the manifest.
pub fn parse_config(bytes: &[u8], platform: Option<String>, layer_sizes: Vec<u64>) -> Result<ImageConfig, String> {
    #[derive(Deserialize)]
    struct Outer {
        #[serde(default)]
        config: Option<Keys>,
    }
    let invalid = |e: serde_json::Error| format!("the image configuration is not valid: {e}");
    let top: Keys = serde_json::from_slice(bytes).map_err(invalid)?;
    unambiguous(&top.0, &["created", "os", "architecture", "variant", "config"])?;
    if let Some(exec) = serde_json::from_slice::<Outer>(bytes).map_err(invalid)?.config {
        unambiguous(&exec.0, &["User", "Env", "Labels", "ExposedPorts", "Entrypoint", "Cmd"])?;
    }
    let file: ConfigFile =
        serde_json::from_slice(bytes).map_err(|e| format!("the image configuration is not valid: {e}"))?;
    let exec = file.config.unwrap_or_default();
    let labels_of = exec.labels.clone().unwrap_or_default();
    let created_unix = file.created.as_deref().and_then(parse_rfc3339);
    let platform = platform.unwrap_or_else(|| platform_name(&file.os, &file.architecture, file.variant.as_deref()));
    let env: Vec<(String, String)> = exec
        .env
        .unwrap_or_default()
        .iter()
        .map(|e| match e.split_once('=') {
            Some((n, v)) => (n.to_owned(), v.to_owned()),
            None => (e.clone(), String::new()),
        })
        .collect();
    Ok(ImageConfig {
        platform,
        user: exec.user.unwrap_or_default(),
        env_names: env.iter().map(|(n, _)| n.clone()).collect(),
        // The last of a name wins, as runtimes apply Env in order.
        env_values: env.into_iter().collect(),
        labels: exec.labels.unwrap_or_default(),
        created: file.created,
        created_unix,
        os: file.os,
        architecture: file.architecture,
        exposed_ports: exec.exposed_ports.unwrap_or_default().into_keys().collect(),
        entrypoint: exec.entrypoint.unwrap_or_default(),
        cmd: exec.cmd.unwrap_or_default(),
        layer_count: layer_sizes.len(),
        layer_sizes,
        base_name: labels_of.get(BASE_NAME).cloned(),
        base_digest: labels_of.get(BASE_DIGEST).cloned(),
    })
}

/// The annotation with which buildx marks the build attestations it lists
/// in an index beside the images.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// Whether an index entry is a build attestation as buildx lists it, and so
/// no image to hold to the rules: annotated `vnd.docker.reference.type:
/// attestation-manifest`, platform `unknown/unknown`, and a manifest with
/// layers that are all in-toto statements. All three: the annotation and
/// the platform are the pusher's claims, and a manifest of in-toto layers
/// is no filesystem a runtime could run.
pub fn is_build_attestation(annotation: Option<&str>, platform: Option<(&str, &str)>, manifest: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Doc {
        #[serde(default)]
        layers: Vec<Layer>,
    }
    #[derive(Deserialize)]
    struct Layer {
        #[serde(default, rename = "mediaType")]
        media_type: String,
    }
    annotation == Some("attestation-manifest")
        && platform == Some(("unknown", "unknown"))
        && serde_json::from_slice::<Doc>(manifest).is_ok_and(|d| {
            !d.layers.is_empty() && d.layers.iter().all(|l| l.media_type == "application/vnd.in-toto+json")
        })
}

/// `os/architecture[/variant]`.
pub fn platform_name(os: &str, arch: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) if !v.is_empty() => format!("{os}/{arch}/{v}"),
        _ => format!("{os}/{arch}"),
    }
}

/// RFC 3339 to seconds since the epoch.
fn parse_rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Whether a configuration's user runs as root: unset, `root` or uid 0,
/// with or without a group (`0:0`, `root:wheel`). Another name is taken as
/// not root: its uid is in the image's `/etc/passwd`, which vouch does not
/// read (a rule that must be sure asks for a numeric user, with Rego).
pub fn is_root(user: &str) -> bool {
    let name = user.split_once(':').map_or(user, |(u, _)| u).trim();
    name.is_empty() || name == "root" || name.parse::<u64>() == Ok(0)
}

/// Parses `max_age`: a whole number and a unit, `s`, `m`, `h`, `d` or `w`
/// (`90d`). Returns seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a duration: a whole number and a unit (s, m, h, d, w), e.g. \"90d\"");
    let unit = s.chars().last().ok_or_else(bad)?;
    let n: u64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let per = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return Err(bad()),
    };
    n.checked_mul(per).filter(|&v| v > 0).ok_or_else(bad)
}

/// A duration in seconds, as a policy would write it (`90d`, `36h`, `45s`).
pub fn show_duration(secs: u64) -> String {
    for (unit, per) in [('w', 604_800), ('d', 86_400), ('h', 3600), ('m', 60)] {
        if secs % per == 0 {
            return format!("{}{unit}", secs / per);
        }
    }
    format!("{secs}s")
}

/// An age in whole days, for messages.
pub fn age(secs: i64) -> String {
    match secs / 86_400 {
        0 => "under a day".into(),
        1 => "1 day".into(),
        d => format!("{d} days"),
    }
}

/// The declarative rules over the configuration, as a rule sets them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageRules {
    /// Deny images that run as root.
    pub forbid_root: bool,
    /// Labels each configuration must carry (any value).
    pub required_labels: Vec<String>,
    /// Oldest `created` allowed, in seconds before the evaluation.
    pub max_age: Option<u64>,
    /// Globs of the base images allowed (by name or digest); empty: any.
    pub base_images: Vec<String>,
}

impl ImageRules {
    /// Whether any rule here reads the configuration.
    pub fn any(&self) -> bool {
        self.forbid_root || !self.required_labels.is_empty() || self.max_age.is_some() || !self.base_images.is_empty()
    }

    /// The failures of `configs` under these rules at `now` (seconds since
    /// the epoch), each naming the rule and the fact.
    pub fn failures(&self, configs: &Configs, now: i64) -> Vec<String> {
        if !self.any() {
            return Vec::new();
        }
        let images = match configs {
            Configs::Read(v) => v,
            Configs::NotAnImage(what) => {
                return vec![format!(
                    "not an image ({what}), and the rule's forbid_root, required_labels, max_age or base_images admit images only"
                )]
            }
            Configs::Unreadable(why) => return vec![format!("image configuration: {why}")],
            Configs::NotRead => return vec!["image configuration: not read (a bug: please report it)".into()],
        };
        let many = images.len() > 1;
        let mut out = Vec::new();
        for image in images {
            let on = if many {
                format!("platform {}: ", image.platform)
            } else {
                String::new()
            };
            if self.forbid_root && is_root(&image.user) {
                let user = if image.user.is_empty() {
                    "no user set, so root".to_owned()
                } else {
                    format!("user {:?}", image.user)
                };
                out.push(format!("{on}runs as root ({user}); the rule forbids root"));
            }
            let missing: Vec<&str> = self
                .required_labels
                .iter()
                .filter(|l| !image.labels.contains_key(*l))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                out.push(format!("{on}missing required label(s): {}", missing.join(", ")));
            }
            if !self.base_images.is_empty() {
                // Bounded: glob matching backtracks, and these are the pusher's.
                let matches = |v: &Option<String>| {
                    v.as_deref()
                        .is_some_and(|v| v.len() <= 1024 && self.base_images.iter().any(|g| super::glob_match(g, v)))
                };
                match (&image.base_name, &image.base_digest) {
                    (None, None) => out.push(format!(
                        "{on}names no base image ({BASE_NAME} or {BASE_DIGEST}, annotation or label); the rule's base_images needs one"
                    )),
                    _ if matches(&image.base_name) || matches(&image.base_digest) => {}
                    (name, digest) => out.push(format!(
                        "{on}base image {} ({}) is not in the rule's base_images",
                        name.as_deref().unwrap_or("unnamed"),
                        digest.as_deref().unwrap_or("no digest")
                    )),
                }
            }
            if let Some(max) = self.max_age {
                match image.created_unix {
                    None => out.push(format!(
                        "{on}no valid created time ({:?}); the rule's max_age {} needs one",
                        image.created.as_deref().unwrap_or(""),
                        show_duration(max)
                    )),
                    Some(t) if t > now.saturating_add(FUTURE_SLACK) => out.push(format!(
                        "{on}created {} is in the future; the rule's max_age {} needs a real time",
                        image.created.as_deref().unwrap_or(""),
                        show_duration(max)
                    )),
                    Some(t) if now.saturating_sub(t) > max as i64 => out.push(format!(
                        "{on}created {}, {} ago; the rule's max_age is {}",
                        image.created.as_deref().unwrap_or(""),
                        age(now.saturating_sub(t)),
                        show_duration(max)
                    )),
                    Some(_) => {}
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_a_runtime_would_read_differently_make_the_configuration_unreadable() {
        for bad in [
            r#"{"config":{"User":"1000","user":"0"}}"#,
            r#"{"config":{"user":"0"}}"#,
            r#"{"config":{"User":"1000","User":"0"}}"#,
            r#"{"config":{"User":"1000"},"Config":{"User":"0"}}"#,
            "{\"config\":{\"U\u{17F}er\":\"0\",\"User\":\"1\"}}",
        ] {
            let e = parse_config(bad.as_bytes(), None, vec![]).unwrap_err();
            assert!(e.contains("ambiguous") || e.contains("duplicate"), "{bad}: {e}");
        }
        assert!(parse_config(
            br#"{"config":{"User":"1000","Hostname":"x"},"author":"a"}"#,
            None,
            vec![]
        )
        .is_ok());
    }

    #[test]
    fn root_users() {
        for u in ["", "root", "0", "0:0", "root:wheel", " 0 ", "00"] {
            assert!(is_root(u), "{u:?}");
        }
        for u in ["1000", "1000:0", "app", "nobody:nogroup", "65534"] {
            assert!(!is_root(u), "{u:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d"), Ok(90 * 86_400));
        assert_eq!(parse_duration("36h"), Ok(36 * 3600));
        assert_eq!(parse_duration("2w"), Ok(2 * 604_800));
        for bad in ["", "d", "90", "-1d", "1.5d", "0d", "99999999999999999w", "9é"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(show_duration(90 * 86_400), "90d");
        assert_eq!(show_duration(14 * 86_400), "2w");
        assert_eq!(show_duration(61), "61s");
    }

    #[test]
    fn config_facts_never_hold_env_values() {
        let c = parse_config(
            br#"{"created":"2024-05-01T10:00:00Z","os":"linux","architecture":"arm64","variant":"v8",
                "config":{"User":"1000","Env":["PATH=/bin","TOKEN=secret","EMPTY"],"Labels":{"a":"b"},
                "ExposedPorts":{"8080/tcp":{}},"Entrypoint":["/app"],"Cmd":null}}"#,
            None,
            vec![10, 20],
        )
        .unwrap();
        assert_eq!(c.platform, "linux/arm64/v8");
        assert_eq!(c.env_names, ["PATH", "TOKEN", "EMPTY"]);
        assert!(!serde_json::to_string(&c).unwrap().contains("secret"));
        assert_eq!(c.created_unix, Some(1_714_557_600));
        assert_eq!(c.exposed_ports, ["8080/tcp"]);
        assert_eq!((c.layer_count, c.cmd.len()), (2, 0));
    }

    #[test]
    fn failures_name_the_rule_and_the_fact() {
        let image = parse_config(br#"{"created":"2020-01-01T00:00:00Z"}"#, None, vec![]).unwrap();
        let rules = ImageRules {
            forbid_root: true,
            required_labels: vec!["org.opencontainers.image.source".into()],
            max_age: Some(30 * 86_400),
            base_images: Vec::new(),
        };
        let f = rules.failures(&Configs::Read(vec![image]), 1_700_000_000);
        assert_eq!(f.len(), 3, "{f:?}");
        assert!(f[0].contains("runs as root (no user set"), "{f:?}");
        assert!(f[1].contains("org.opencontainers.image.source"), "{f:?}");
        assert!(
            f[2].contains("created 2020-01-01T00:00:00Z") && f[2].contains("max_age is 30d"),
            "{f:?}"
        );
        assert!(ImageRules::default().failures(&Configs::NotRead, 0).is_empty());
        let future = parse_config(
            br#"{"created":"2099-01-01T00:00:00Z","config":{"User":"1"}}"#,
            None,
            vec![],
        )
        .unwrap();
        let age_only = ImageRules {
            max_age: Some(86_400),
            ..ImageRules::default()
        };
        let f = age_only.failures(&Configs::Read(vec![future]), 1_700_000_000);
        assert!(f[0].contains("is in the future"), "{f:?}");
    }
}
