//! A Notation trust policy as a vouch policy names it (`[notation.<name>]`,
//! spec/policy.md): trust stores of root certificates and the trusted
//! identities, with a verification level. This is the Notary Project's
//! trust policy (trust-store-trust-policy.md, "Trust Policy Properties")
//! with its `registryScopes` left to the rule's `repositories`.

use sha2::Digest as _;

/// What a verification level does with one validation (Notary Project
/// trust policy, "Signature Verification details").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A failure fails the signature.
    Enforce,
    /// A failure is noted; the signature still counts.
    Log,
    /// Not checked (revocation only).
    Skip,
}

/// The verification level. `audit` and `skip` are refused at load: they
/// verify no signer, and a signer is what a vouch rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Every validation enforced.
    Strict,
    /// Authentic timestamp, expiry and revocation only logged.
    Permissive,
}

/// The actions for the validations a level may relax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Actions {
    /// The certificates valid at the authentic time.
    pub authentic_timestamp: Action,
    /// The signature's `io.cncf.notary.expiry` not passed.
    pub expiry: Action,
    /// The revocation status known and good.
    pub revocation: Action,
}

impl Actions {
    /// A level's actions, with `overrides` (`authenticTimestamp`, `expiry`,
    /// `revocation`) applied.
    pub fn of(level: Level, overrides: &std::collections::BTreeMap<String, Action>) -> Result<Actions, String> {
        let base = match level {
            Level::Strict => Action::Enforce,
            Level::Permissive => Action::Log,
        };
        let mut a = Actions {
            authentic_timestamp: base,
            expiry: base,
            revocation: base,
        };
        for (what, action) in overrides {
            match (what.as_str(), action) {
                ("authentic_timestamp" | "authenticTimestamp", Action::Enforce | Action::Log) => {
                    a.authentic_timestamp = *action
                }
                ("expiry", Action::Enforce | Action::Log) => a.expiry = *action,
                ("revocation", _) => a.revocation = *action,
                ("authenticity" | "integrity", _) => {
                    return Err(format!(
                        "override {what}: vouch always enforces {what} (a signer that is not authenticated is not a signer)"
                    ))
                }
                (other, action) => {
                    return Err(format!(
                        "override {other} = {action:?} is not a Notation override (authentic_timestamp and expiry take enforce or log; revocation also skip)"
                    ))
                }
            }
        }
        Ok(a)
    }
}

/// One trusted identity: the subject attributes the signing certificate
/// must have, or any certificate under the stores.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Identity {
    /// `*`.
    Any,
    /// `x509.subject: C=.., ST=.., O=..`: each attribute, equal.
    Subject(Vec<(String, String)>),
}

impl Identity {
    /// Parses a `trustedIdentities` item (trust-store-trust-policy.md,
    /// "Trusted Identities Constraints"): `*`, or `x509.subject:` and
    /// comma-separated RDNs with `\,`, `\;`, `\\` and `\ ` escapes, which
    /// must include C, ST and O and name no attribute twice.
    pub fn parse(text: &str) -> Result<Identity, String> {
        if text.trim() == "*" {
            return Ok(Identity::Any);
        }
        let Some(dn) = text.trim_start().strip_prefix("x509.subject:") else {
            return Err(format!(
                "{text:?}: a trusted identity is \"*\" or \"x509.subject: C=.., ST=.., O=..\""
            ));
        };
        let attributes = parse_dn(dn).map_err(|e| format!("{text:?}: {e}"))?;
        for required in ["C", "ST", "O"] {
            if !attributes.iter().any(|(k, _)| k == required) {
                return Err(format!(
                    "{text:?}: a trusted identity must name C, ST and O (it lacks {required})"
                ));
            }
        }
        Ok(Identity::Subject(attributes))
    }

    /// Whether a certificate subject (its attributes) is this identity.
    pub fn matches(&self, subject: &[(String, String)]) -> bool {
        match self {
            Identity::Any => true,
            Identity::Subject(wanted) => wanted.iter().all(|(k, v)| {
                let mut found = subject.iter().filter(|(sk, _)| sk == k);
                matches!((found.next(), found.next()), (Some((_, sv)), None) if sv == v)
            }),
        }
    }

    /// Whether some certificate could be both identities: they agree on
    /// every attribute they both name (trust-store-trust-policy.md: such
    /// identities overlap, and the policy is invalid).
    pub fn overlaps(&self, other: &Identity) -> bool {
        match (self, other) {
            (Identity::Subject(a), Identity::Subject(b)) => a
                .iter()
                .all(|(k, v)| b.iter().find(|(bk, _)| bk == k).is_none_or(|(_, bv)| bv == v)),
            _ => true,
        }
    }
}

/// Splits a DN's text into (attribute, value) pairs.
fn parse_dn(dn: &str) -> Result<Vec<(String, String)>, String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = dn.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ (',' | ';' | '\\' | ' ' | '+' | '=' | '"' | '<' | '>' | '#')) => {
                    current.push('\u{0}');
                    current.push(e);
                }
                _ => return Err("a backslash escapes only , ; \\ and a space".into()),
            },
            ',' => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    let mut out: Vec<(String, String)> = Vec::new();
    for part in parts {
        let Some((k, v)) = part.split_once('=') else {
            return Err(format!("{:?} is not ATTRIBUTE=value", unescape(&part)));
        };
        let key = k.trim().to_ascii_uppercase();
        let value = unescape(trim_unescaped(v));
        if key.is_empty() || value.is_empty() {
            return Err(format!("{:?} has an empty attribute or value", unescape(&part)));
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err(format!("{key} is named twice"));
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Trims spaces that were not escaped (escapes are marked by a NUL before
/// the escaped character).
fn trim_unescaped(v: &str) -> &str {
    let start = v.trim_start_matches(' ');
    let mut end = start.len();
    let bytes = start.as_bytes();
    while end > 0 && bytes[end - 1] == b' ' && !(end >= 2 && bytes[end - 2] == 0) {
        end -= 1;
    }
    &start[..end]
}

fn unescape(v: &str) -> String {
    v.replace('\u{0}', "")
}

/// A named Notation trust policy, as loaded.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    /// Its name in the policy file.
    pub name: String,
    /// `ca` roots (DER): for the `notary.x509` signing scheme.
    pub ca: Vec<Vec<u8>>,
    /// `signing_authority` roots (DER): for `notary.x509.signingAuthority`.
    pub signing_authority: Vec<Vec<u8>>,
    /// `tsa` roots (DER): for RFC 3161 timestamp countersignatures.
    pub tsa: Vec<Vec<u8>>,
    /// The trusted identities (at least one).
    pub identities: Vec<Identity>,
    /// The level it was given.
    pub level: Level,
    /// What the level and its overrides do.
    pub actions: Actions,
}

impl TrustPolicy {
    /// Its stable name in decisions and canonical policies:
    /// `notation:sha256:<hex>` over every setting, roots by digest.
    pub fn fingerprint(&self) -> String {
        let digests = |certs: &[Vec<u8>]| -> Vec<String> {
            let mut d: Vec<String> = certs.iter().map(|c| hex::encode(sha2::Sha256::digest(c))).collect();
            d.sort();
            d
        };
        let doc = serde_json::json!({
            "ca": digests(&self.ca),
            "signing_authority": digests(&self.signing_authority),
            "tsa": digests(&self.tsa),
            "identities": self.identities,
            "level": self.level,
            "actions": self.actions,
        });
        let bytes = serde_json::to_vec(&doc).expect("serialize a JSON value");
        format!("notation:sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
    }
}

/// Reads a trust store file: PEM (one or more `CERTIFICATE` blocks) or one
/// DER certificate, as the Notary Project's trust store reads `.pem`,
/// `.crt` and `.cer` files. Each must parse as X.509.
pub fn read_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    use x509_parser::prelude::FromDer as _;
    let ders: Vec<Vec<u8>> = if bytes.starts_with(b"-----") || bytes.iter().take(64).all(u8::is_ascii) {
        x509_parser::pem::Pem::iter_from_buffer(bytes)
            .map(|p| match p {
                Ok(p) if p.label == "CERTIFICATE" => Ok(p.contents),
                Ok(p) => Err(format!("a {} block where a CERTIFICATE was expected", p.label)),
                Err(e) => Err(format!("not PEM: {e}")),
            })
            .collect::<Result<_, _>>()?
    } else {
        vec![bytes.to_vec()]
    };
    if ders.is_empty() {
        return Err("holds no certificate".into());
    }
    for der in &ders {
        x509_parser::certificate::X509Certificate::from_der(der)
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    }
    Ok(ders)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn identities_parse_with_escapes_and_need_c_st_o() {
        let id = Identity::parse(r"x509.subject: C=US, ST=WA, O=acme\, inc., OU=\ spaced\ ").unwrap();
        assert_eq!(
            id,
            Identity::Subject(attrs(&[
                ("C", "US"),
                ("ST", "WA"),
                ("O", "acme, inc."),
                ("OU", " spaced ")
            ]))
        );
        assert_eq!(Identity::parse("*").unwrap(), Identity::Any);
        assert!(Identity::parse("x509.subject: C=US, O=acme")
            .unwrap_err()
            .contains("lacks ST"));
        assert!(Identity::parse("x509.subject: C=US, ST=WA, O=a, O=b").is_err());
        assert!(Identity::parse("C=US, ST=WA, O=a").is_err());
        assert!(Identity::parse(r"x509.subject: C=US, ST=WA, O=a\q").is_err());
    }

    #[test]
    fn identities_match_subsets_of_the_subject_and_overlap_when_they_agree() {
        let id = Identity::parse("x509.subject: C=US, ST=WA, O=acme-rockets.io").unwrap();
        let leaf = attrs(&[
            ("C", "US"),
            ("ST", "WA"),
            ("L", "Seattle"),
            ("O", "acme-rockets.io"),
            ("CN", "x"),
        ]);
        assert!(id.matches(&leaf));
        let evil = attrs(&[("C", "US"), ("ST", "WA"), ("O", "evil.example"), ("CN", "x")]);
        assert!(!id.matches(&evil));
        let twice = attrs(&[("C", "US"), ("ST", "WA"), ("O", "acme-rockets.io"), ("O", "evil")]);
        assert!(
            !id.matches(&twice),
            "an attribute named twice in the certificate matches nothing"
        );
        let narrower = Identity::parse("x509.subject: C=US, ST=WA, O=acme-rockets.io, OU=Finance").unwrap();
        assert!(id.overlaps(&narrower));
        let other = Identity::parse("x509.subject: C=US, ST=WA, O=wabbit").unwrap();
        assert!(!id.overlaps(&other));
    }

    #[test]
    fn levels_and_overrides_decide_what_is_enforced() {
        let none = Default::default();
        let strict = Actions::of(Level::Strict, &none).unwrap();
        assert_eq!(strict.expiry, Action::Enforce);
        let permissive = Actions::of(Level::Permissive, &none).unwrap();
        assert_eq!(permissive.authentic_timestamp, Action::Log);
        let o = [
            ("revocation".to_string(), Action::Skip),
            ("expiry".to_string(), Action::Log),
        ]
        .into();
        let custom = Actions::of(Level::Strict, &o).unwrap();
        assert_eq!(
            (custom.revocation, custom.expiry, custom.authentic_timestamp),
            (Action::Skip, Action::Log, Action::Enforce)
        );
        assert!(Actions::of(Level::Strict, &[("authenticity".to_string(), Action::Log)].into()).is_err());
        assert!(Actions::of(Level::Strict, &[("expiry".to_string(), Action::Skip)].into()).is_err());
    }
}
