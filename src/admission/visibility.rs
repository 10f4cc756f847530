//! What a reader may see: the invariant (spec/threat-model.md), decided
//! here and nowhere else. Every read path of the registry asks through
//! the `Gate` (manifests, blobs, HEAD, tags, referrers, catalog, mounts).
//!
//! A reader without push rights to a repository gets the bytes of a
//! manifest or blob in it only if:
//!
//! - (a) it is reachable from a manifest admitted there: the manifest
//!   itself and its config and layers (an index's children have decisions
//!   of their own);
//! - (b) it is evidence recognised by its structure (`evidence.rs`) about a
//!   manifest stored there, or a blob of such evidence that is content of
//!   no manifest quarantined there; evidence carrying vouch's own
//!   countersignature only while its subject is admitted;
//! - (c) it is an artifact with a `subject` the policy admitted in its own
//!   right (that is (a): it is admitted);
//!
//! and, if the policy says so (`unreferenced_blobs = "serve"`), a blob no
//! manifest there references. The OCI empty blob `{}` is always served.
//! The decision itself is two pure functions, [`manifest_rule`] and
//! [`blob_rule`], over facts read from storage.

use crate::registry::error::RegistryError;
use crate::registry::gate::Visible;
use crate::registry::meta::{AdmissionState, ManifestRecord};
use crate::registry::names::RepoName;
use crate::registry::AppState;
use std::ops::ControlFlow;
use vouch_ledger::entry::Digest;

/// Why a manifest is withheld.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Withheld {
    /// Not yet decided.
    Pending,
    /// Denied.
    Denied,
    /// Evidence from before evidence was recognised by structure, not yet
    /// classified again.
    Unclassified,
    /// Evidence about a manifest that is not in the repository, or is
    /// itself evidence.
    NoSubject,
    /// Carries vouch's countersignature of a manifest that is not admitted.
    CountersignedNotAdmitted,
}

/// The facts about a stored manifest that decide whether it is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestFacts {
    /// Its state.
    pub state: AdmissionState,
    /// For evidence classified by structure: whether it carries vouch's
    /// countersignature.
    pub evidence: Option<bool>,
    /// For evidence: the state of its subject in the same repository, if
    /// stored there.
    pub subject: Option<AdmissionState>,
}

/// Rules (a) to (c) for a manifest.
pub fn manifest_rule(f: ManifestFacts) -> Result<(), Withheld> {
    match (f.state, f.evidence, f.subject) {
        (AdmissionState::Admitted, _, _) => Ok(()),
        (AdmissionState::Pending, _, _) => Err(Withheld::Pending),
        (AdmissionState::Denied, _, _) => Err(Withheld::Denied),
        (AdmissionState::Evidence, None, _) => Err(Withheld::Unclassified),
        (AdmissionState::Evidence, Some(_), None | Some(AdmissionState::Evidence)) => Err(Withheld::NoSubject),
        (AdmissionState::Evidence, Some(true), Some(s)) if s != AdmissionState::Admitted => {
            Err(Withheld::CountersignedNotAdmitted)
        }
        (AdmissionState::Evidence, Some(_), Some(_)) => Ok(()),
    }
}

/// The facts about a blob linked into a repository, from the manifests
/// there that reference it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobFacts {
    /// Some manifest references it.
    pub referenced: bool,
    /// An admitted manifest references it.
    pub by_admitted: bool,
    /// Served evidence references it.
    pub by_served_evidence: bool,
    /// A pending or denied manifest (not evidence) references it: it is
    /// content of a quarantined image.
    pub by_quarantined: bool,
    /// It is the OCI empty blob `{}`.
    pub empty_json: bool,
    /// The policy serves blobs no manifest references.
    pub serve_unreferenced: bool,
}

/// Rules (a) to (c) for a blob.
pub fn blob_rule(f: BlobFacts) -> bool {
    f.empty_json
        || f.by_admitted
        || (f.by_served_evidence && !f.by_quarantined)
        || (!f.referenced && f.serve_unreferenced)
}

/// The digest of the OCI empty blob `{}`.
fn is_empty_json(digest: &Digest) -> bool {
    digest.algorithm() == "sha256"
        && digest.encoded() == "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
}

/// The facts of a stored manifest, reading its subject's state if needed.
fn facts(app: &AppState, repo: &RepoName, record: &ManifestRecord) -> Result<ManifestFacts, RegistryError> {
    let subject = match (&record.evidence, record.state) {
        (Some(e), AdmissionState::Evidence) => app.meta.manifest(repo, &e.subject)?.map(|s| s.state),
        _ => None,
    };
    Ok(ManifestFacts {
        state: record.state,
        evidence: record.evidence.as_ref().map(|e| e.countersigned),
        subject,
    })
}

/// Whether a reader without push rights may have the manifest's bytes.
pub fn manifest_visible(
    app: &AppState,
    repo: &RepoName,
    digest: &Digest,
    record: &ManifestRecord,
) -> Result<Visible, RegistryError> {
    let why = match manifest_rule(facts(app, repo, record)?) {
        Ok(()) => return Ok(Visible::Yes),
        Err(w) => w,
    };
    let subject = record
        .evidence
        .as_ref()
        .map(|e| e.subject.to_string())
        .unwrap_or_default();
    Ok(Visible::No(match why {
        Withheld::Pending => format!("{repo}@{digest} is pending admission"),
        Withheld::Denied => match app.meta.decision(repo, digest)? {
            Some(d) => format!(
                "{repo}@{digest} is not admitted: {} (ledger entry {})",
                d["reasons"]
                    .as_array()
                    .map(|r| r.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join("; "))
                    .unwrap_or_default(),
                d["ledger_index"]
            ),
            None => format!("{repo}@{digest} is not admitted"),
        },
        Withheld::Unclassified => {
            format!("{repo}@{digest} is being classified again; retry after the registry has started")
        }
        Withheld::NoSubject => format!("{repo}@{digest} is evidence about {subject}, which is not an image in {repo}"),
        Withheld::CountersignedNotAdmitted => {
            format!("{repo}@{digest} carries vouch's countersignature of {subject}, which is not admitted")
        }
    }))
}

/// Whether a reader without push rights may have the blob's bytes.
pub fn blob_visible(
    app: &AppState,
    repo: &RepoName,
    digest: &Digest,
    serve_unreferenced: bool,
) -> Result<Visible, RegistryError> {
    let mut f = BlobFacts {
        empty_json: is_empty_json(digest),
        serve_unreferenced,
        ..BlobFacts::default()
    };
    // One pass over the manifests that reference it, stopping at the first
    // admitted one; evidence is judged after (it needs its subject's state).
    let mut evidence = Vec::new();
    app.meta.for_each_referencing(repo, digest, |_, record| {
        // An index lists manifests, not blobs: a blob with the bytes of a
        // manifest that an admitted index lists is not content of the index
        // (the manifest may be a quarantined attachment the index names).
        if super::decide::is_index(&record.media_type) {
            return ControlFlow::Continue(());
        }
        f.referenced = true;
        match record.state {
            AdmissionState::Admitted => {
                f.by_admitted = true;
                return ControlFlow::Break(());
            }
            AdmissionState::Pending | AdmissionState::Denied => f.by_quarantined = true,
            AdmissionState::Evidence => evidence.push(record.clone()),
        }
        ControlFlow::Continue(())
    })?;
    if !f.by_admitted {
        for record in &evidence {
            if manifest_rule(facts(app, repo, record)?).is_ok() {
                f.by_served_evidence = true;
                break;
            }
        }
    }
    if blob_rule(f) {
        return Ok(Visible::Yes);
    }
    Ok(Visible::No(if f.referenced {
        format!("blob {digest} in {repo} belongs to no admitted image")
    } else {
        format!(
            "blob {digest} in {repo} is referenced by no manifest there; this policy does not serve unreferenced blobs"
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use AdmissionState::*;

    #[test]
    fn only_admitted_content_and_evidence_about_what_is_here_is_served() {
        let m = |state, evidence, subject| {
            manifest_rule(ManifestFacts {
                state,
                evidence,
                subject,
            })
        };
        assert_eq!(m(Admitted, None, None), Ok(()));
        assert_eq!(m(Pending, None, None), Err(Withheld::Pending));
        assert_eq!(m(Denied, None, None), Err(Withheld::Denied));
        assert_eq!(m(Evidence, None, Some(Admitted)), Err(Withheld::Unclassified));
        assert_eq!(m(Evidence, Some(false), None), Err(Withheld::NoSubject));
        assert_eq!(m(Evidence, Some(false), Some(Evidence)), Err(Withheld::NoSubject));
        assert_eq!(m(Evidence, Some(false), Some(Denied)), Ok(()));
        assert_eq!(
            m(Evidence, Some(true), Some(Denied)),
            Err(Withheld::CountersignedNotAdmitted)
        );
        assert_eq!(m(Evidence, Some(true), Some(Admitted)), Ok(()));
    }

    #[test]
    fn evidence_blobs_that_are_quarantined_content_are_withheld() {
        let b = |f: BlobFacts| blob_rule(f);
        assert!(b(BlobFacts {
            referenced: true,
            by_admitted: true,
            by_quarantined: true,
            ..Default::default()
        }));
        assert!(b(BlobFacts {
            referenced: true,
            by_served_evidence: true,
            ..Default::default()
        }));
        assert!(!b(BlobFacts {
            referenced: true,
            by_served_evidence: true,
            by_quarantined: true,
            ..Default::default()
        }));
        assert!(!b(BlobFacts {
            referenced: false,
            ..Default::default()
        }));
        assert!(b(BlobFacts {
            referenced: false,
            serve_unreferenced: true,
            ..Default::default()
        }));
        assert!(!b(BlobFacts {
            referenced: true,
            by_quarantined: true,
            serve_unreferenced: true,
            ..Default::default()
        }));
        assert!(b(BlobFacts {
            referenced: true,
            by_quarantined: true,
            empty_json: true,
            ..Default::default()
        }));
    }
}
