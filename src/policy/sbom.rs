//! SBOM content as a policy sees it (spec/policy.md, "Attestation
//! content"): the packages and licenses of SPDX 2.x and CycloneDX
//! attestations, and the `sbom` rule over them. Pure.

use super::attested::Predicate;
use super::glob_match;
use serde::{Deserialize, Serialize};

/// SPDX documents as in-toto predicates (2.x JSON).
pub const SPDX: &str = "https://spdx.dev/Document";
/// CycloneDX BOMs as in-toto predicates.
pub const CYCLONEDX: &str = "https://cyclonedx.org/bom";

/// Most packages read from one SBOM; a larger one is a failure of the
/// rule naming the bound, never a partial pass.
pub const MAX_PACKAGES: usize = 100_000;

/// Longest package name with version, or license id, matched against a
/// rule's globs (glob matching backtracks; these strings are the
/// producer's). A longer one is denied, named.
pub const MAX_NAME: usize = 1024;

/// A package an SBOM lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    /// Its name.
    pub name: String,
    /// Its version (`versionInfo`, `version`), or empty.
    pub version: String,
    /// The license ids its license expressions name (concluded and
    /// declared; `NOASSERTION` and `NONE` dropped).
    pub licenses: Vec<String>,
}

/// The packages of an SPDX or CycloneDX predicate; `None` for other
/// predicate types. Parsed straight from the predicate's JSON into these
/// few fields (an SBOM can be megabytes); one whose fields have other
/// types than the formats say is an error, never an empty SBOM.
pub fn read_packages(p: &Predicate) -> Option<&Result<Vec<Package>, String>> {
    p.predicate.packages(|text| parse_packages(&p.predicate_type, text))
}

/// Whether predicates of this type are SBOMs vouch reads packages from.
pub fn is_sbom(predicate_type: &str) -> bool {
    predicate_type == SPDX || predicate_type == CYCLONEDX
}

/// The packages of an SBOM predicate's JSON text; `None` for other
/// predicate types.
pub fn parse_packages(predicate_type: &str, text: &str) -> Option<Result<Vec<Package>, String>> {
    if !is_sbom(predicate_type) {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let read = deserialize_packages(predicate_type, &mut de).and_then(|list| de.end().map(|()| list));
    Some(match read {
        Ok(list) => bounded(predicate_type, list),
        Err(e) => Err(format!("{predicate_type} SBOM is not readable: {e}")),
    })
}

/// No more than [`MAX_PACKAGES`]: a larger SBOM is an error naming the
/// bound.
pub fn bounded(predicate_type: &str, list: Vec<Package>) -> Result<Vec<Package>, String> {
    match list.len() > MAX_PACKAGES {
        true => Err(format!(
            "{predicate_type} SBOM lists over {MAX_PACKAGES} packages; not read"
        )),
        false => Ok(list),
    }
}

/// The packages of an SBOM predicate of `predicate_type` (SPDX or
/// CycloneDX; any other reads as none), deserialized straight into these
/// few fields: from the predicate's text, or from the Statement while it is
/// read (`crate::attestation`), in one pass over a multi-megabyte SBOM. One
/// whose fields have other types than the formats say is an error, never
/// an empty SBOM.
pub fn deserialize_packages<'de, D: serde::Deserializer<'de>>(
    predicate_type: &str,
    d: D,
) -> Result<Vec<Package>, D::Error> {
    use std::borrow::Cow;
    // Strings borrowed from the text where they have no escapes: a large
    // SBOM's packages are read without a copy each.
    #[derive(Deserialize)]
    struct Spdx<'a> {
        #[serde(default, borrow)]
        packages: Vec<SpdxPackage<'a>>,
    }
    #[derive(Deserialize)]
    struct SpdxPackage<'a> {
        #[serde(default, borrow)]
        name: Cow<'a, str>,
        #[serde(default, rename = "versionInfo", borrow)]
        version: Cow<'a, str>,
        #[serde(default, rename = "licenseConcluded", borrow)]
        concluded: Option<Cow<'a, str>>,
        #[serde(default, rename = "licenseDeclared", borrow)]
        declared: Option<Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    struct CycloneDx {
        #[serde(default)]
        components: Vec<Component>,
    }
    #[derive(Deserialize)]
    struct Component {
        #[serde(default)]
        name: String,
        #[serde(default)]
        version: String,
        #[serde(default)]
        licenses: Vec<LicenseChoice>,
        /// Sub-components (CycloneDX nests them): read too, or a denied
        /// package could hide under another.
        #[serde(default)]
        components: Vec<Component>,
    }
    fn flattened(list: Vec<Component>) -> Vec<Component> {
        let mut out = Vec::new();
        let mut todo: Vec<Component> = list.into_iter().rev().collect();
        while let Some(mut c) = todo.pop() {
            todo.extend(std::mem::take(&mut c.components).into_iter().rev());
            out.push(c);
        }
        out
    }
    #[derive(Deserialize)]
    struct LicenseChoice {
        #[serde(default)]
        license: Option<License>,
        #[serde(default)]
        expression: Option<String>,
    }
    #[derive(Deserialize)]
    struct License {
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        name: Option<String>,
    }
    Ok(match predicate_type {
        SPDX => Spdx::deserialize(d)?
            .packages
            .into_iter()
            .map(|pkg| Package {
                licenses: [pkg.concluded, pkg.declared]
                    .iter()
                    .flatten()
                    .flat_map(|e| license_ids(e))
                    .collect(),
                name: pkg.name.into_owned(),
                version: pkg.version.into_owned(),
            })
            .collect(),
        CYCLONEDX => flattened(CycloneDx::deserialize(d)?.components)
            .into_iter()
            .map(|c| Package {
                licenses: c
                    .licenses
                    .iter()
                    .flat_map(
                        |l| match l.license.as_ref().and_then(|x| x.id.clone().or_else(|| x.name.clone())) {
                            Some(id) => vec![id],
                            None => license_ids(l.expression.as_deref().unwrap_or("")),
                        },
                    )
                    .collect(),
                name: c.name,
                version: c.version,
            })
            .collect(),
        _ => {
            serde::de::IgnoredAny::deserialize(d)?;
            Vec::new()
        }
    })
}

/// The license ids an SPDX license expression names: `MIT OR (GPL-2.0-only
/// WITH Classpath-exception-2.0)` names `MIT`, `GPL-2.0-only`,
/// `Classpath-exception-2.0`.
pub fn license_ids(expression: &str) -> Vec<String> {
    expression
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|w| !w.is_empty() && !matches!(*w, "AND" | "OR" | "WITH" | "and" | "or" | "with"))
        .filter(|w| !matches!(*w, "NOASSERTION" | "NONE"))
        .map(str::to_owned)
        .collect()
}

/// `sbom = { keys, deny_licenses, deny_packages }`: an SBOM signed by one
/// of the keys must exist, and no package in any of them may carry a
/// denied license or match a denied package.
#[derive(Debug, Clone)]
pub struct SbomRule {
    /// The trusted SBOM producers.
    pub signers: Vec<(String, super::Authority)>,
    /// License id globs (`GPL-*`, `AGPL-3.0-only`).
    pub deny_licenses: Vec<String>,
    /// Package globs: `name` or `name@version` (`log4j-core@2.14.*`).
    pub deny_packages: Vec<String>,
}

impl SbomRule {
    /// Failures, naming the package and what denied it (first five).
    pub fn failures(&self, predicates: &[Predicate]) -> Vec<String> {
        let mut read = 0;
        let mut out = Vec::new();
        let mut denied = Vec::new();
        // SPDX license ids match case-insensitively.
        let deny_licenses: Vec<String> = self.deny_licenses.iter().map(|g| g.to_ascii_lowercase()).collect();
        for p in predicates
            .iter()
            .filter(|p| self.signers.iter().any(|(f, _)| *f == p.signer))
        {
            match read_packages(p) {
                None => continue,
                Some(Err(e)) => out.push(e.clone()),
                Some(Ok(packages)) => {
                    read += 1;
                    for pkg in packages {
                        let full = format!("{}@{}", pkg.name, pkg.version);
                        if full.len() > MAX_NAME || pkg.licenses.iter().any(|l| l.len() > MAX_NAME) {
                            denied.push(format!(
                                "{}... has a name, version or license over {MAX_NAME} bytes",
                                full.chars().take(40).collect::<String>()
                            ));
                            continue;
                        }
                        if let Some(l) = pkg.licenses.iter().find(|l| {
                            let l = l.to_ascii_lowercase();
                            deny_licenses.iter().any(|g| glob_match(g, &l))
                        }) {
                            denied.push(format!("{full} is licensed {l}"));
                        }
                        if let Some(g) = self
                            .deny_packages
                            .iter()
                            .find(|g| glob_match(g, &pkg.name) || glob_match(g, &full))
                        {
                            denied.push(format!("{full} matches the denied package {g:?}"));
                        }
                    }
                }
            }
        }
        if read == 0 && out.is_empty() {
            return vec![format!(
                "needs an SBOM ({SPDX} or {CYCLONEDX}) signed by one of {} trusted keys",
                self.signers.len()
            )];
        }
        denied.sort();
        denied.dedup();
        let n = denied.len();
        if n > 0 {
            let shown: Vec<String> = denied.into_iter().take(5).collect();
            out.push(format!(
                "the SBOM has {n} denied package(s): {}{}",
                shown.join("; "),
                if n > 5 { "; ..." } else { "" }
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn license_expressions_name_their_ids() {
        assert_eq!(
            license_ids("MIT OR (GPL-2.0-only WITH Classpath-exception-2.0)"),
            ["MIT", "GPL-2.0-only", "Classpath-exception-2.0"]
        );
        assert!(license_ids("NOASSERTION").is_empty());
    }

    #[test]
    fn spdx_and_cyclonedx_packages() {
        let spdx = Predicate::new(
            SPDX,
            "k",
            &serde_json::json!({"spdxVersion": "SPDX-2.3", "packages": [
                {"name": "readline", "versionInfo": "8.2", "licenseConcluded": "GPL-3.0-or-later", "licenseDeclared": "NOASSERTION"},
                {"name": "musl", "versionInfo": "1.2.4", "licenseConcluded": "MIT"}]}),
        );
        let cdx = Predicate::new(
            CYCLONEDX,
            "k",
            &serde_json::json!({"bomFormat": "CycloneDX", "components": [
                {"name": "log4j-core", "version": "2.14.1", "licenses": [{"license": {"id": "Apache-2.0"}}]},
                {"name": "x", "version": "1", "licenses": [{"expression": "AGPL-3.0-only OR MIT"}],
                 "components": [{"name": "nested", "version": "2", "licenses": [{"license": {"id": "GPL-2.0-only"}}]}]}]}),
        );
        let p = read_packages(&spdx).unwrap().as_ref().unwrap();
        assert_eq!(p[0].licenses, ["GPL-3.0-or-later"]);
        let rule = SbomRule {
            signers: vec![(
                "k".into(),
                crate::policy::Authority::Key(crate::signature::PublicKey::Ed25519(
                    ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key(),
                )),
            )],
            deny_licenses: vec!["GPL-*".into()],
            deny_packages: vec![],
        };
        let lower = Predicate::new(
            SPDX,
            "k",
            &serde_json::json!({"packages": [{"name": "a", "versionInfo": "1", "licenseConcluded": "gpl-3.0-only"}]}),
        );
        let f = rule.failures(&[lower]);
        assert!(f[0].contains("a@1 is licensed gpl-3.0-only"), "{f:?}");
        let long = Predicate::new(
            SPDX,
            "k",
            &serde_json::json!({"packages": [{"name": "x".repeat(5000)}]}),
        );
        assert!(rule.failures(&[long])[0].contains("over 1024 bytes"));
        let c = read_packages(&cdx).unwrap().as_ref().unwrap();
        assert_eq!(c[1].licenses, ["AGPL-3.0-only", "MIT"]);
        assert_eq!(
            (c[2].name.as_str(), c[2].licenses[0].as_str()),
            ("nested", "GPL-2.0-only")
        );
    }
}
