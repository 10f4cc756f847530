//! Certificate revocation, as the Notary Project's trust policy asks it
//! (trust-store-trust-policy.md, "Certificate Revocation Evaluation"): for
//! each certificate of a chain, root to leaf, the OCSP responders its
//! Authority Information Access names (RFC 6960, `ocsp.rs`), then, if they
//! give no answer, its CRL distribution points (RFC 5280, `crl.rs`). A
//! certificate that names neither is not revoked; one that names a source
//! but whose status no source gives is "revocation unavailable".
//!
//! Only URLs named by certificates that already chain to a trust store are
//! fetched (the caller checks authenticity first), over plain HTTP as the
//! specification says, each OCSP responder within 2 seconds and each CRL
//! within 5, with bounded answers. Answers are kept until their
//! `nextUpdate` (at most a day), so re-evaluation and many signatures by
//! one certificate cost one fetch; a server also saves them in its data
//! directory (`saved.rs`), so that a restart costs none either.

pub mod crl;
pub mod ocsp;
mod saved;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// Seconds a `thisUpdate` may lie ahead of, or a `nextUpdate` behind, the
/// clock: responders and verifiers disagree by this much in practice.
pub const CLOCK_SKEW: i64 = 300;
/// How long an answer is kept at most, whatever its `nextUpdate` says.
const KEEP_AT_MOST: i64 = 24 * 3600;
/// How old (since its `thisUpdate`) an answer without a `nextUpdate` may
/// be: otherwise a recorded "good" could be replayed for ever.
pub const MAX_AGE_WITHOUT_NEXT_UPDATE: i64 = 24 * 3600;
/// The folder of a data directory where a server saves answers.
pub const SAVED_DIR: &str = "revocation";
/// Largest OCSP response read.
const MAX_OCSP: u64 = 64 << 10;
/// Largest CRL read: code-signing CAs' lists are far smaller.
const MAX_CRL: u64 = 32 << 20;
/// Bytes of CRLs kept, and OCSP answers kept, before the cache starts over.
const KEEP_CRL_BYTES: usize = 64 << 20;
const KEEP_OCSP: usize = 4096;
const OID_OCSP: &str = "1.3.6.1.5.5.7.48.1";

/// What a source says about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Not revoked.
    Good,
    /// Revoked at `at`, for `reason` (RFC 5280 §5.3.1 CRLReason), the key
    /// compromised since `invalidity` if the source says.
    Revoked {
        /// revocationTime / revocationDate.
        at: i64,
        /// The CRLReason code.
        reason: Option<u8>,
        /// The invalidity date.
        invalidity: Option<i64>,
    },
    /// The responder does not know the certificate.
    Unknown,
}

/// A time for messages, RFC 3339.
pub fn shown(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

/// RFC 5280 §5.3.1 reason codes, named.
fn reason_name(code: u8) -> &'static str {
    match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        _ => "an undefined reason",
    }
}

/// Whether an answer revokes a signature made at `signed_at` (the upper
/// end of its authentic signing time, if it has one): a revoked
/// certificate with an invalidity date after that time signed while its
/// key was sound (trust-store-trust-policy.md, "Revocation Checking with
/// OCSP" and "with CRL"); without a timestamp or an invalidity date, a
/// revocation always counts.
pub fn revokes(answer: &Answer, signed_at: Option<i64>) -> Option<String> {
    let Answer::Revoked { at, reason, invalidity } = answer else {
        return None;
    };
    if let (Some(invalid), Some(signed)) = (invalidity, signed_at) {
        if signed < *invalid {
            return None;
        }
    }
    let why = reason.map_or(String::new(), |r| format!(" ({})", reason_name(r)));
    Some(format!("was revoked at {}{why}", shown(*at)))
}

/// Where a certificate's status is published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// OCSP responders (Authority Information Access), HTTP only.
    pub ocsp: Vec<String>,
    /// CRL distribution points, HTTP only, of the CA itself.
    pub crl: Vec<String>,
    /// Sources named but not fetched: other schemes (LDAP), or CRLs
    /// another issuer signs.
    pub other: Vec<String>,
}

fn http(u: &str) -> bool {
    u.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://"))
}

/// The revocation sources `cert` names.
pub fn sources(cert: &X509Certificate<'_>) -> Sources {
    let mut s = Sources::default();
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::AuthorityInfoAccess(aia) => {
                for d in aia
                    .accessdescs
                    .iter()
                    .filter(|d| d.access_method.to_id_string() == OID_OCSP)
                {
                    match &d.access_location {
                        GeneralName::URI(u) if http(u) => s.ocsp.push((*u).to_owned()),
                        other => s.other.push(format!("OCSP {other}")),
                    }
                }
            }
            ParsedExtension::CRLDistributionPoints(points) => {
                for p in points.iter() {
                    let names = match &p.distribution_point {
                        Some(DistributionPointName::FullName(names)) => names.as_slice(),
                        _ => &[],
                    };
                    for n in names {
                        match n {
                            GeneralName::URI(u) if http(u) && p.crl_issuer.is_none() => s.crl.push((*u).to_owned()),
                            other => s.other.push(format!("CRL {other}")),
                        }
                    }
                    if names.is_empty() {
                        s.other.push("a CRL distribution point without a URI".into());
                    }
                }
            }
            _ => {}
        }
    }
    s
}

/// The first of `certs` that names a revocation source, fetched or not.
pub fn first_naming_sources(certs: &[X509Certificate<'_>]) -> Option<usize> {
    certs.iter().position(|c| sources(c) != Sources::default())
}

/// Answers kept, each until a time.
#[derive(Debug, Default)]
struct Kept {
    ocsp: HashMap<Vec<u8>, (Answer, i64)>,
    crls: HashMap<String, (Arc<Vec<u8>>, i64)>,
    crl_bytes: usize,
}

/// Fetches and checks revocation status, keeping answers while they hold.
#[derive(Debug)]
pub struct Checker {
    ocsp_agent: ureq::Agent,
    crl_agent: ureq::Agent,
    kept: Mutex<Kept>,
    /// Where answers are saved across restarts, if anywhere.
    saved: Option<saved::Saved>,
}

/// Where a CRL's bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Got {
    /// Kept in memory: verified when it was kept.
    Kept,
    /// Saved in the data directory, kept until then: not verified yet.
    Saved(i64),
    /// Fetched now.
    Fetched,
}

impl Default for Checker {
    fn default() -> Self {
        Self::new()
    }
}

fn agent(timeout: u64) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(3)
        .timeout_global(Some(Duration::from_secs(timeout)))
        .build()
        .into()
}

/// GETs `url` (or POSTs an OCSP request to it); the body of a 2xx answer.
fn fetch(agent: &ureq::Agent, url: &str, post: Option<&[u8]>, limit: u64) -> Result<Vec<u8>, String> {
    let response = match post {
        Some(body) => agent
            .post(url)
            .header("Content-Type", "application/ocsp-request")
            .send(body),
        None => agent.get(url).call(),
    };
    let mut r = response.map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("HTTP {}", r.status()));
    }
    r.body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| format!("reading the answer: {e}"))
}

impl Checker {
    /// A checker with nothing kept.
    pub fn new() -> Checker {
        Checker {
            ocsp_agent: agent(2),
            crl_agent: agent(5),
            kept: Mutex::new(Kept::default()),
            saved: None,
        }
    }

    /// A checker that also saves answers in `dir` and reads them back
    /// after a restart (`saved.rs`), each verified again when read. Files
    /// no longer kept are removed now.
    pub fn saving_in(dir: &std::path::Path) -> Checker {
        let saved = saved::Saved::new(dir);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let removed = saved.prune(now);
        if removed > 0 {
            tracing::info!(dir = %dir.display(), removed, "removed revocation answers no longer kept");
        }
        Checker {
            saved: Some(saved),
            ..Checker::new()
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks `certs` (signing certificate first, root last; each issued
    /// by the next), root to leaf, for a signature made at `signed_at`.
    /// The error names the certificate and why: revoked, or unavailable
    /// with each source's failure.
    pub fn check_chain(&self, certs: &[X509Certificate<'_>], signed_at: Option<i64>, now: i64) -> Result<(), String> {
        for i in (0..certs.len()).rev() {
            let (cert, issuer) = (&certs[i], certs.get(i + 1).unwrap_or(&certs[i]));
            let failure = match self.status(cert, issuer, now) {
                Ok(None) => continue,
                Ok(Some(answer)) => match revokes(&answer, signed_at) {
                    None => continue,
                    Some(why) => why,
                },
                Err(why) => format!("has no revocation status available: {why}"),
            };
            return Err(format!("x5c[{i}] ({}) {failure}", cert.subject()));
        }
        Ok(())
    }

    /// The status of `cert`: `None` if it names no source, an answer from
    /// the first source that gives one (OCSP first), else every source's
    /// failure.
    fn status(
        &self,
        cert: &X509Certificate<'_>,
        issuer: &X509Certificate<'_>,
        now: i64,
    ) -> Result<Option<Answer>, String> {
        let s = sources(cert);
        if s.ocsp.is_empty() && s.crl.is_empty() {
            return match s.other.is_empty() {
                true => Ok(None),
                false => Err(format!(
                    "it names only sources vouch does not fetch: {}",
                    s.other.join(", ")
                )),
            };
        }
        let mut why = Vec::new();
        for url in &s.ocsp {
            match self.ocsp(url, cert, issuer, now) {
                Ok(Answer::Unknown) => why.push(format!("OCSP {url}: the responder does not know the certificate")),
                Ok(answer) => return Ok(Some(answer)),
                Err(e) => why.push(format!("OCSP {url}: {e}")),
            }
        }
        for url in &s.crl {
            match self.crl(url, cert, issuer, now) {
                Ok(answer) => return Ok(Some(answer)),
                Err(e) => why.push(format!("CRL {url}: {e}")),
            }
        }
        Err(why.join("; "))
    }

    fn ocsp(
        &self,
        url: &str,
        cert: &X509Certificate<'_>,
        issuer: &X509Certificate<'_>,
        now: i64,
    ) -> Result<Answer, String> {
        let key = ocsp::key(cert, issuer);
        if let Some((answer, until)) = self.kept().ocsp.get(&key) {
            if now <= *until {
                return Ok(answer.clone());
            }
        }
        let saved = self.saved.as_ref();
        if let Some((body, until)) = saved.and_then(|s| s.load(saved::Kind::Ocsp, &key, now, MAX_OCSP)) {
            // Read again as if just fetched, but for the nonce, which was
            // checked when it was; one that does not verify is fetched anew.
            if let Ok(reading) = self.checked_ocsp(&body, cert, issuer, now, None) {
                self.keep_ocsp(
                    key,
                    &reading.answer,
                    reading.next_update.map_or(until, |n| n.min(until)),
                );
                return Ok(reading.answer);
            }
        }
        let mut nonce = [0u8; ocsp::NONCE_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| "no randomness for the OCSP request's nonce".to_owned())?;
        let request = ocsp::request(cert, issuer, &nonce);
        let body = fetch(&self.ocsp_agent, url, Some(&request), MAX_OCSP)?;
        let reading = self.checked_ocsp(&body, cert, issuer, now, Some(&nonce))?;
        if let Some(next) = reading.next_update {
            let until = next.min(now + KEEP_AT_MOST);
            if let Some(s) = saved {
                s.save(saved::Kind::Ocsp, &key, &body, until);
            }
            self.keep_ocsp(key, &reading.answer, until);
        }
        Ok(reading.answer)
    }

    /// An OCSP response read for `cert` (`ocsp::read`), its delegated
    /// responder checked not revoked.
    fn checked_ocsp(
        &self,
        body: &[u8],
        cert: &X509Certificate<'_>,
        issuer: &X509Certificate<'_>,
        now: i64,
        nonce: Option<&[u8]>,
    ) -> Result<ocsp::Reading, String> {
        let reading = ocsp::read(body, cert, issuer, now, nonce)?;
        if let Some(der) = &reading.unchecked_responder {
            self.responder_not_revoked(der, issuer, now)?;
        }
        Ok(reading)
    }

    fn keep_ocsp(&self, key: Vec<u8>, answer: &Answer, until: i64) {
        let mut kept = self.kept();
        if kept.ocsp.len() >= KEEP_OCSP {
            kept.ocsp.clear();
        }
        kept.ocsp.insert(key, (answer.clone(), until));
    }

    /// A delegated responder without id-pkix-ocsp-nocheck must itself not
    /// be revoked; its CRLs say (trust-store-trust-policy.md, "Revocation
    /// Checking with OCSP", step 4). OCSP is not asked, which could loop.
    fn responder_not_revoked(&self, der: &[u8], issuer: &X509Certificate<'_>, now: i64) -> Result<(), String> {
        let (_, responder) =
            X509Certificate::from_der(der).map_err(|e| format!("the delegated responder's certificate: {e}"))?;
        let urls = sources(&responder).crl;
        if urls.is_empty() {
            return Ok(());
        }
        let mut why = Vec::new();
        for url in &urls {
            match self.crl(url, &responder, issuer, now) {
                Ok(Answer::Good) => return Ok(()),
                Ok(_) => return Err("the delegated OCSP responder's certificate is revoked".into()),
                Err(e) => why.push(format!("CRL {url}: {e}")),
            }
        }
        Err(format!(
            "the delegated OCSP responder's own status is unavailable: {}",
            why.join("; ")
        ))
    }

    /// The CRL at `url`: kept in memory or saved (unless `fetch_anew`),
    /// or fetched; kept only once it has verified ([`Checker::crl_once`]).
    fn crl_bytes(&self, url: &str, now: i64, fetch_anew: bool) -> Result<(Arc<Vec<u8>>, Got), String> {
        if !fetch_anew {
            let held = self
                .kept()
                .crls
                .get(url)
                .filter(|(_, until)| now <= *until)
                .map(|(der, _)| Arc::clone(der));
            if let Some(der) = held {
                return Ok((der, Got::Kept));
            }
            let saved = self.saved.as_ref();
            if let Some((der, until)) = saved.and_then(|s| s.load(saved::Kind::Crl, url.as_bytes(), now, MAX_CRL)) {
                return Ok((Arc::new(der), Got::Saved(until)));
            }
        }
        Ok((Arc::new(fetch(&self.crl_agent, url, None, MAX_CRL)?), Got::Fetched))
    }

    /// Keeps a verified CRL in memory until `until`, and saves it if it
    /// was fetched.
    fn keep_crl_got(&self, url: &str, der: Arc<Vec<u8>>, got: Got, until: i64) {
        match got {
            Got::Kept => {}
            Got::Saved(saved_until) => self.keep_crl(url, der, until.min(saved_until)),
            Got::Fetched => {
                if let Some(s) = &self.saved {
                    s.save(saved::Kind::Crl, url.as_bytes(), &der, until);
                }
                self.keep_crl(url, der, until);
            }
        }
    }

    fn keep_crl(&self, url: &str, der: Arc<Vec<u8>>, until: i64) {
        let mut kept = self.kept();
        if kept.crl_bytes + der.len() > KEEP_CRL_BYTES {
            kept.crls.clear();
            kept.crl_bytes = 0;
        }
        kept.crl_bytes += der.len();
        if let Some((old, _)) = kept.crls.insert(url.to_owned(), (der, until)) {
            kept.crl_bytes -= old.len();
        }
    }

    /// `cert`'s status on the CRL at `url`, and on the delta CRL it names.
    /// If that fails on CRLs saved before a restart, they are fetched anew.
    fn crl(
        &self,
        url: &str,
        cert: &X509Certificate<'_>,
        issuer: &X509Certificate<'_>,
        now: i64,
    ) -> Result<Answer, String> {
        let mut used_saved = false;
        match self.crl_once(url, cert, issuer, now, false, &mut used_saved) {
            Err(_) if used_saved => self.crl_once(url, cert, issuer, now, true, &mut used_saved),
            answer => answer,
        }
    }

    fn crl_once(
        &self,
        url: &str,
        cert: &X509Certificate<'_>,
        issuer: &X509Certificate<'_>,
        now: i64,
        fetch_anew: bool,
        used_saved: &mut bool,
    ) -> Result<Answer, String> {
        let (der, got) = self.crl_bytes(url, now, fetch_anew)?;
        *used_saved |= matches!(got, Got::Saved(_));
        let mut reading = crl::read(&der, None, cert, issuer, now)?;
        let mut delta_got = None;
        if !reading.delta_urls.is_empty() {
            let mut why = Vec::new();
            let mut applied = None;
            for delta_url in &reading.delta_urls {
                let read = self.crl_bytes(delta_url, now, fetch_anew).and_then(|(delta, got)| {
                    *used_saved |= matches!(got, Got::Saved(_));
                    Ok((crl::read(&der, Some(&delta), cert, issuer, now)?, delta, got))
                });
                match read {
                    Ok((r, delta, got)) => {
                        applied = Some(r);
                        delta_got = Some((delta_url.clone(), delta, got));
                        break;
                    }
                    Err(e) => why.push(format!("delta CRL {delta_url}: {e}")),
                }
            }
            reading = applied.ok_or_else(|| why.join("; "))?;
        }
        let until = reading.next_update.map(|next| next.min(now + KEEP_AT_MOST));
        if let Some(until) = until {
            self.keep_crl_got(url, der, got, until);
            if let Some((delta_url, delta, got)) = delta_got {
                self.keep_crl_got(&delta_url, delta, got, until);
            }
        }
        Ok(reading.answer)
    }
}

#[cfg(test)]
mod tests;
