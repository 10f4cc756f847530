//! Notary Project (Notation) signatures: the JWS envelope
//! (signature-envelope-jws.md) verified against a trust policy
//! (trust-store-trust-policy.md, "Signature Verification"), offline.
//!
//! A signature is an OCI image manifest with `config.mediaType`
//! `application/vnd.cncf.notary.signature`, one `application/jose+json`
//! layer (the envelope) and a `subject`: the signed manifest. The envelope
//! is flattened JWS JSON: `payload` (a `targetArtifact` descriptor),
//! `protected` (the signed attributes), `header` (`x5c`, an optional
//! RFC 3161 `io.cncf.notary.timestampSignature`) and `signature`. Pure
//! functions of their inputs: the caller gives the time. A COSE_Sign1
//! envelope (signature-envelope-cose.md, `application/cose`) carries the
//! same attributes in CBOR; it is read into the same model (`cose.rs`) and
//! verified by the same code.

pub mod chain;
mod cose;
pub mod trust;

use base64::Engine as _;
pub use trust::TrustPolicy;
use trust::{Action, Identity};
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// The signature manifest's `config.mediaType` (and referrers' artifact type).
pub const SIGNATURE_CONFIG: &str = "application/vnd.cncf.notary.signature";
/// The JWS envelope's layer media type.
pub const JWS: &str = "application/jose+json";
/// The COSE envelope's layer media type.
pub const COSE: &str = "application/cose";
/// The payload's content type (`cty`).
pub const PAYLOAD_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
/// Largest envelope read: one with a chain of several certificates and a
/// timestamp is a few KiB.
pub const MAX_ENVELOPE: u64 = 256 << 10;

const SCHEME: &str = "io.cncf.notary.signingScheme";
const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
const AUTHENTIC_TIME: &str = "io.cncf.notary.authenticSigningTime";
const EXPIRY: &str = "io.cncf.notary.expiry";
const PLUGIN: &str = "io.cncf.notary.verificationPlugin";
const TIMESTAMP: &str = "io.cncf.notary.timestampSignature";
/// The critical headers vouch understands and processes.
const UNDERSTOOD: [&str; 3] = [SCHEME, AUTHENTIC_TIME, EXPIRY];

/// Why a Notation signature does not count, each named for the check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotationProblem {
    /// Not an envelope vouch reads.
    #[error("malformed Notation JWS envelope: {0}")]
    Malformed(String),
    /// Integrity: the signature does not verify, or covers other content.
    #[error("integrity: {0}")]
    Integrity(String),
    /// The certificates break the Notary Project's requirements.
    #[error("certificate: {0}")]
    Certificate(String),
    /// Authenticity: not under the trust stores, or not a trusted identity.
    #[error("authenticity: {0}")]
    Authenticity(String),
    /// Authentic timestamp: a certificate not valid at the signing time.
    #[error("authentic timestamp: {0}")]
    Timestamp(String),
    /// Expiry: the signature's expiry has passed.
    #[error("expiry: {0}")]
    Expired(String),
    /// Revocation: the status could not be determined.
    #[error("revocation: {0}")]
    Revocation(String),
}

/// The signed manifest's descriptor: what `targetArtifact` must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// Its size.
    pub size: u64,
}

/// An envelope's serialization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Flattened JWS JSON (`application/jose+json`): times are RFC 3339 text.
    Jws,
    /// COSE_Sign1_Tagged (`application/cose`): times are epoch seconds.
    Cose,
}

impl Format {
    /// The layer media type of envelopes in this format.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Jws => JWS,
            Format::Cose => COSE,
        }
    }
}

/// A parsed, not yet verified, envelope.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Its serialization.
    pub format: Format,
    /// The bytes the signature is over: JWS `protected "." payload`
    /// (ASCII), COSE the `Sig_structure`'s encoding.
    signed_input: Vec<u8>,
    /// The protected header, as JSON values: JWS's as is; COSE's with
    /// `alg` as its JWS name, `crit` and `cty` by name, times as numbers.
    header: serde_json::Map<String, serde_json::Value>,
    payload: Vec<u8>,
    signature: Vec<u8>,
    chain: Vec<Vec<u8>>,
    timestamp: Option<Vec<u8>>,
}

/// A verified signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signing certificate's subject.
    pub subject: String,
    /// The authentic signing time, if there is one (a verified timestamp,
    /// or a signing authority's time).
    pub signed_at: Option<i64>,
    /// Failures the level only logs.
    pub logged: Vec<String>,
}

fn malformed(m: impl Into<String>) -> NotationProblem {
    NotationProblem::Malformed(m.into())
}

fn b64url(field: &str, v: &str) -> Result<Vec<u8>, NotationProblem> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v)
        .map_err(|_| malformed(format!("{field} is not unpadded base64url")))
}

/// Seconds since the epoch of a time attribute: RFC 3339 text in JWS,
/// an epoch-based date/time (CBOR tag 1, integer seconds) in COSE.
fn time_of(format: Format, field: &str, v: &serde_json::Value) -> Result<i64, NotationProblem> {
    if format == Format::Cose {
        return v.as_i64().ok_or_else(|| {
            malformed(format!(
                "{field} is not an epoch-based date/time (tag 1, integer seconds)"
            ))
        });
    }
    let text = v
        .as_str()
        .ok_or_else(|| malformed(format!("{field} is not a string")))?;
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| malformed(format!("{field} {text:?} is not an RFC 3339 time")))
}

/// Parses an envelope, JWS or COSE by its first byte (a JSON object, or
/// CBOR tag 18).
pub fn parse(bytes: &[u8]) -> Result<Envelope, NotationProblem> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => parse_jws(bytes),
        Some(0xd2) => cose::parse(bytes),
        _ => Err(malformed("neither a JWS JSON envelope nor a COSE_Sign1_Tagged one")),
    }
}

/// Parses a JWS envelope (signature-envelope-jws.md, "Signature Envelope":
/// flattened JWS JSON with these four members and no others).
fn parse_jws(bytes: &[u8]) -> Result<Envelope, NotationProblem> {
    let doc: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes).map_err(|e| malformed(format!("not JSON: {e}")))?;
    if let Some(extra) = doc
        .keys()
        .find(|k| !["payload", "protected", "header", "signature"].contains(&k.as_str()))
    {
        return Err(malformed(format!(
            "unknown member {extra:?} (only flattened JWS JSON is read)"
        )));
    }
    let text = |k: &str| {
        doc.get(k)
            .and_then(|v| v.as_str())
            .ok_or_else(|| malformed(format!("{k} is missing")))
    };
    let (protected_b64, payload_b64) = (text("protected")?.to_owned(), text("payload")?.to_owned());
    let payload = b64url("payload", &payload_b64)?;
    let signature = b64url("signature", text("signature")?)?;
    let protected: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&b64url("protected", &protected_b64)?)
            .map_err(|_| malformed("the protected header is not a JSON object"))?;
    let unprotected = doc
        .get("header")
        .and_then(|h| h.as_object())
        .cloned()
        .unwrap_or_default();
    let std64 = |field: &str, v: &serde_json::Value| {
        v.as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .ok_or_else(|| malformed(format!("{field} is not base64")))
    };
    let chain = unprotected
        .get("x5c")
        .and_then(|v| v.as_array())
        .ok_or_else(|| malformed("header.x5c (the certificate chain) is missing"))?
        .iter()
        .map(|c| std64("x5c", c))
        .collect::<Result<Vec<_>, _>>()?;
    let timestamp = unprotected.get(TIMESTAMP).map(|v| std64(TIMESTAMP, v)).transpose()?;
    Ok(Envelope {
        format: Format::Jws,
        signed_input: format!("{protected_b64}.{payload_b64}").into_bytes(),
        header: protected,
        payload,
        signature,
        chain,
        timestamp,
    })
}

impl Envelope {
    /// Whether its chain names revocation sources, so that verifying it
    /// may fetch (the caller then verifies off the async threads).
    pub fn names_revocation_sources(&self) -> bool {
        chain::parse(&self.chain).is_ok_and(|c| crate::revocation::first_naming_sources(&c.certs).is_some())
    }

    /// The `targetArtifact` the payload names (unverified: the signature
    /// decides whether to believe it).
    pub fn target(&self) -> Result<Target, NotationProblem> {
        let doc: serde_json::Value =
            serde_json::from_slice(&self.payload).map_err(|_| malformed("the payload is not JSON"))?;
        let t = &doc["targetArtifact"];
        Ok(Target {
            media_type: t["mediaType"].as_str().unwrap_or("").to_owned(),
            digest: t["digest"]
                .as_str()
                .ok_or_else(|| malformed("the payload names no targetArtifact.digest"))?
                .to_owned(),
            size: t["size"]
                .as_u64()
                .ok_or_else(|| malformed("the payload names no targetArtifact.size"))?,
        })
    }

    fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(|v| v.as_str())
    }

    /// Integrity (trust-store-trust-policy.md, "Validate Integrity"): the
    /// content type, the critical headers, `alg` matching the signing key
    /// (signature-envelope-jws.md, "Supported alg header values"), the
    /// signature over `protected.payload`, and the payload naming `target`.
    fn check_integrity(&self, chain: &chain::Chain<'_>, target: &Target) -> Result<(), NotationProblem> {
        if self.header_str("cty") != Some(PAYLOAD_TYPE) {
            return Err(malformed(format!("cty is not {PAYLOAD_TYPE}")));
        }
        let crit: Vec<&str> = self
            .header
            .get("crit")
            .and_then(|v| v.as_array())
            .ok_or_else(|| malformed("crit is missing"))?
            .iter()
            .map(|v| v.as_str().unwrap_or(""))
            .collect();
        if !crit.contains(&SCHEME) {
            return Err(malformed(format!("crit does not list {SCHEME}")));
        }
        for c in &crit {
            if *c == PLUGIN {
                let plugin = self.header_str(PLUGIN).unwrap_or("?");
                return Err(malformed(format!(
                    "the signature needs the verification plugin {plugin:?}, which vouch does not run"
                )));
            }
            if !UNDERSTOOD.contains(c) {
                return Err(malformed(format!("critical header {c:?} is not understood")));
            }
            if !self.header.contains_key(*c) {
                return Err(malformed(format!("critical header {c:?} is absent")));
            }
        }
        for critical in [AUTHENTIC_TIME, EXPIRY] {
            if self.header.contains_key(critical) && !crit.contains(&critical) {
                return Err(malformed(format!("{critical} is present but not listed in crit")));
            }
        }
        let (alg, key) = chain::key_alg(chain.leaf())?;
        let claimed = self.header_str("alg").unwrap_or("");
        if claimed != alg.jws() {
            return Err(NotationProblem::Integrity(format!(
                "alg {claimed:?} does not match the signing certificate's key, which signs with {}",
                alg.jws()
            )));
        }
        use ring::signature as rs;
        let by_ring: Option<&'static dyn rs::VerificationAlgorithm> = match alg {
            chain::KeyAlg::Ps256 => Some(&rs::RSA_PSS_2048_8192_SHA256),
            chain::KeyAlg::Ps384 => Some(&rs::RSA_PSS_2048_8192_SHA384),
            chain::KeyAlg::Ps512 => Some(&rs::RSA_PSS_2048_8192_SHA512),
            chain::KeyAlg::Es256 => Some(&rs::ECDSA_P256_SHA256_FIXED),
            chain::KeyAlg::Es384 => Some(&rs::ECDSA_P384_SHA384_FIXED),
            // ring has no P-521.
            chain::KeyAlg::Es512 => None,
        };
        let verified = match by_ring {
            Some(v) => rs::UnparsedPublicKey::new(v, key)
                .verify(&self.signed_input, &self.signature)
                .is_ok(),
            None => crate::p521::verify_es512(key, &self.signed_input, &self.signature),
        };
        if !verified {
            return Err(NotationProblem::Integrity(
                "the signature does not verify with the signing certificate's key".into(),
            ));
        }
        let named = self.target()?;
        if named.digest != target.digest || named.size != target.size || named.media_type != target.media_type {
            return Err(NotationProblem::Integrity(format!(
                "the payload signs {} ({} bytes, {}), not this manifest",
                named.digest, named.size, named.media_type
            )));
        }
        Ok(())
    }
}

/// Applies an action to one validation's failure: an error if enforced, a
/// logged note otherwise.
fn apply(action: Action, failure: NotationProblem, logged: &mut Vec<String>) -> Result<(), NotationProblem> {
    match action {
        Action::Enforce => Err(failure),
        Action::Log => {
            logged.push(failure.to_string());
            Ok(())
        }
        Action::Skip => Ok(()),
    }
}

/// Verifies `envelope` (the layer's bytes) as a signature of `target` under
/// `trust` at `now`, in the order of trust-store-trust-policy.md,
/// "Signature Verification": integrity, authenticity, expiry, authentic
/// timestamp, revocation; each enforced or logged as the level says.
/// Offline: revocation as [`Offline`] finds it.
pub fn verify(envelope: &[u8], target: &Target, trust: &TrustPolicy, now: i64) -> Result<Verified, NotationProblem> {
    verify_parsed(&parse(envelope)?, target, trust, now, &Offline)
}

/// Where the revocation step learns a chain's status
/// (trust-store-trust-policy.md, "Certificate Revocation Evaluation").
pub trait Revocation {
    /// `Ok` if no certificate of `chain` (signing certificate first) is
    /// revoked for a signature made at `signed_at`; else why, naming the
    /// certificate: revoked, or its status unavailable.
    fn check(&self, chain: &[X509Certificate<'_>], signed_at: Option<i64>, now: i64) -> Result<(), String>;
}

impl Revocation for crate::revocation::Checker {
    fn check(&self, chain: &[X509Certificate<'_>], signed_at: Option<i64>, now: i64) -> Result<(), String> {
        self.check_chain(chain, signed_at, now)
    }
}

/// Fetches nothing: a chain whose certificates name no OCSP responder and
/// no CRL distribution point is not revoked, as the specification says;
/// any other has no status available.
#[derive(Debug, Clone, Copy)]
pub struct Offline;

impl Revocation for Offline {
    fn check(&self, chain: &[X509Certificate<'_>], _: Option<i64>, _: i64) -> Result<(), String> {
        match crate::revocation::first_naming_sources(chain) {
            None => Ok(()),
            Some(i) => Err(format!(
                "x5c[{i}] names OCSP or CRL sources, and this check fetches nothing"
            )),
        }
    }
}

/// [`verify`] of an envelope already parsed (one envelope is checked
/// against each of a policy's trust policies), revocation found by
/// `revocation`. It is asked last, so that only URLs named by a chain
/// that leads to the trust store are ever fetched.
pub fn verify_parsed(
    env: &Envelope,
    target: &Target,
    trust: &TrustPolicy,
    now: i64,
    revocation: &dyn Revocation,
) -> Result<Verified, NotationProblem> {
    let chain = chain::parse(&env.chain)?;
    env.check_integrity(&chain, target)?;
    // Authenticity.
    let scheme = env.header_str(SCHEME).unwrap_or("");
    let (store, store_name) = match scheme {
        "notary.x509" => (&trust.ca, "ca"),
        "notary.x509.signingAuthority" => (&trust.signing_authority, "signing_authority"),
        other => {
            return Err(malformed(format!(
                "signing scheme {other:?} is not notary.x509 or notary.x509.signingAuthority"
            )))
        }
    };
    if !chain.trusted_by(store) {
        return Err(NotationProblem::Authenticity(format!(
            "the chain's root {} is not in {}'s {store_name} trust store",
            chain.certs.last().expect("non-empty").subject(),
            trust.name
        )));
    }
    let subject_attrs = chain::subject_attributes(chain.leaf());
    let subject = chain.leaf().subject().to_string();
    if !trust.identities.iter().any(|i| i.matches(&subject_attrs)) {
        return Err(NotationProblem::Authenticity(format!(
            "the signing certificate's subject {subject:?} is not a trusted identity of {}",
            trust.name
        )));
    }
    let mut logged = Vec::new();
    // Expiry.
    if let Some(expiry) = env.header.get(EXPIRY) {
        let at = time_of(env.format, EXPIRY, expiry)?;
        if now >= at {
            let shown = time::OffsetDateTime::from_unix_timestamp(at)
                .ok()
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                .unwrap_or_else(|| at.to_string());
            let text = format!("the signature expired at {shown}");
            apply(trust.actions.expiry, NotationProblem::Expired(text), &mut logged)?;
        }
    }
    // Authentic timestamp.
    let signed_at = match scheme {
        "notary.x509" => {
            if env.header.get(SIGNING_TIME).is_none() {
                return Err(malformed(format!("{SIGNING_TIME} is missing")));
            }
            time_of(env.format, SIGNING_TIME, &env.header[SIGNING_TIME])?;
            timestamped_at(env, trust, revocation, now, &mut logged)?
        }
        _ => Some((
            time_of(
                env.format,
                AUTHENTIC_TIME,
                env.header
                    .get(AUTHENTIC_TIME)
                    .ok_or_else(|| malformed(format!("{AUTHENTIC_TIME} is missing")))?,
            )?,
            0,
        )),
    };
    // The whole range the timestamp allows (its time ± its accuracy) must
    // lie within every certificate's validity ("Validate Trusted
    // Timestamp"); without one, now.
    let (from, to) = match signed_at {
        Some((t, accuracy)) => (t.saturating_sub(accuracy), t.saturating_add(accuracy)),
        None => (now, now),
    };
    if let Some(invalid) = chain.invalid_during(from, to) {
        let when = match signed_at {
            Some(_) => "over the authentic signing time's range",
            None => "now, and no trusted timestamp proves an earlier signing time",
        };
        apply(
            trust.actions.authentic_timestamp,
            NotationProblem::Timestamp(format!("{invalid}: not valid {when}")),
            &mut logged,
        )?;
    }
    // Revocation, judged at the upper end of the authentic signing time.
    if trust.actions.revocation != Action::Skip {
        if let Err(why) = revocation.check(&chain.certs, signed_at.map(|(t, accuracy)| t + accuracy), now) {
            apply(trust.actions.revocation, NotationProblem::Revocation(why), &mut logged)?;
        }
    }
    Ok(Verified {
        subject,
        signed_at: signed_at.map(|(t, _)| t),
        logged,
    })
}

/// The range an RFC 3161 timestamp countersignature puts the signing in
/// (`io.cncf.notary.timestampSignature`, under a `tsa` store): its time
/// and accuracy. "Validate Trusted Timestamp": the token must verify
/// under the store, and its TSA certificate chain must not be revoked
/// (unless revocation is skipped); a failure is the authentic timestamp's,
/// enforced or logged as the level says, and leaves no signing time.
fn timestamped_at(
    env: &Envelope,
    trust: &TrustPolicy,
    revocation: &dyn Revocation,
    now: i64,
    logged: &mut Vec<String>,
) -> Result<Option<(i64, i64)>, NotationProblem> {
    let (Some(token), false) = (&env.timestamp, trust.tsa.is_empty()) else {
        return Ok(None);
    };
    let tsas: Vec<crate::rfc3161::TimestampAuthority> = trust
        .tsa
        .iter()
        .map(|root| crate::rfc3161::TimestampAuthority {
            chain: vec![root.clone()],
            valid_from: None,
            valid_to: None,
        })
        .collect();
    let problem = match crate::rfc3161::verify_with_chain(token, &env.signature, &tsas) {
        Ok(stamped) if trust.actions.revocation == Action::Skip => return Ok(Some((stamped.time, stamped.accuracy))),
        Ok(stamped) => {
            let certs: Vec<X509Certificate<'_>> = stamped
                .chain
                .iter()
                .filter_map(|d| X509Certificate::from_der(d).ok().map(|(_, c)| c))
                .collect();
            match revocation.check(&certs, Some(stamped.time), now) {
                Ok(()) => return Ok(Some((stamped.time, stamped.accuracy))),
                Err(why) => format!("the timestamp's authority: {why}"),
            }
        }
        Err(e) => format!("the timestamp countersignature: {e}"),
    };
    apply(
        trust.actions.authentic_timestamp,
        NotationProblem::Timestamp(problem),
        logged,
    )?;
    Ok(None)
}

/// Identities that are `*` or subject patterns, for the policy loader.
pub fn identities(items: &[String]) -> Result<Vec<Identity>, String> {
    let parsed: Vec<Identity> = items.iter().map(|i| Identity::parse(i)).collect::<Result<_, _>>()?;
    if parsed.is_empty() {
        return Err("identities is empty (give \"*\" to trust any certificate under the stores)".into());
    }
    if parsed.len() > 1 && parsed.contains(&Identity::Any) {
        return Err("\"*\" must be the only identity".into());
    }
    for (i, a) in parsed.iter().enumerate() {
        if let Some(b) = parsed[i + 1..].iter().find(|b| a.overlaps(b)) {
            return Err(format!(
                "identities {a:?} and {b:?} overlap: one certificate could match both"
            ));
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests;
