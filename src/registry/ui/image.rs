//! The image page: the decision, its ledger entry, witness cosignatures,
//! the countersignature, and the admission bundle with the in-browser check.

use super::html::{esc, list, page, short, verdict};
use super::{policy_names, repo_param, utc, Ctx, Page};
use crate::registry::error::RegistryError;
use crate::registry::routes::App;
use std::collections::HashMap;
use vouch_ledger::entry::Entry;

pub(super) fn image_page(app: &App, ctx: &Ctx, p: &HashMap<String, String>) -> Page {
    let caller = &ctx.caller;
    let repo = repo_param(app, caller, p, "repo")?;
    let digest = crate::registry::names::parse_digest(p.get("digest").map_or("", String::as_str))?;
    let summary = app
        .meta
        .decision(&repo, &digest)?
        .ok_or_else(|| RegistryError::ManifestUnknown(format!("no decision about {repo}@{digest}")))?;
    let index = summary["ledger_index"].as_u64().unwrap_or(0);
    let policies = policy_names(app);
    let entry = app
        .ledger
        .entry(index)
        .ok()
        .flatten()
        .and_then(|e| Entry::decode(&e).ok());
    let Some(Entry::Decision(d)) =
        entry.filter(|e| matches!(e, Entry::Decision(d) if d.repo == repo.as_str() && d.digest == digest))
    else {
        return Err(RegistryError::Internal(format!(
            "ledger entry {index} is not the decision about {repo}@{digest}"
        )));
    };
    let bundle = crate::registry::ledger_api::bundle(app, &repo, &digest, index)?;
    let bundle_text = String::from_utf8_lossy(&bundle).into_owned();
    let (name, version, policy_index) = policies
        .get(d.policy.as_str())
        .cloned()
        .unwrap_or_else(|| ("?".into(), 0, d.policy_index));
    let evidence: Vec<String> = d.evidence.iter().map(|e| e.as_str().to_owned()).collect();
    let countersignature = match summary["countersignature"].as_str() {
        Some(sig) => format!(
            "<p>vouch countersigned this admission: signature manifest <code>{}</code>, in the image's \
             cosign signature tag; check it with the registry's <code>admission.pub</code> \
             (<code>cosign verify --key admission.pub</code>).</p>",
            esc(sig)
        ),
        None if d.verdict == vouch_ledger::entry::Verdict::Admit => {
            "<p>No countersignature (countersigning is off on this registry).</p>".to_owned()
        }
        None => "<p>No countersignature: vouch countersigns only admitted images.</p>".to_owned(),
    };
    let addr = &ctx.host;
    let vkey = app.ledger.verifier().to_string();
    let body = format!(
        "<h2>Decision</h2><dl><dt>Verdict</dt><dd>{}</dd><dt>Reasons</dt><dd>{}</dd><dt>Signers</dt><dd>{}</dd>\
         <dt>Policy</dt><dd>{} version {version}, <code>{}</code>, ledger entry {policy_index} \
         (<a href=\"/ui/policies\">history</a>)</dd><dt>Attestations and signatures used</dt><dd>{}</dd>\
         <dt>Decided</dt><dd>{}</dd></dl>\
         <h2>Ledger entry</h2><p>Entry <a href=\"/ledger/entry/{index}\">{index}</a> of the ledger \
         (canonical CBOR, spec/ledger.md).</p>\
         <h2>Witness cosignatures</h2>{}\
         <h2>Countersignature</h2>{countersignature}\
         <h2>Inclusion proof</h2><p>The admission bundle below holds the decision and policy entries, each with \
         an inclusion proof to a signed checkpoint. Check it here with the log key \
         <code>{}</code> (shown by this registry: a check against keys it shows proves the bundle is \
         consistent, not that the registry is honest; compare the key with one you obtained yourself):</p><p><button type=\"button\" id=\"verify-proof\">Verify the proof in this browser</button></p>\
         <p id=\"proof-result\" role=\"status\" aria-live=\"polite\">Not checked yet (needs JavaScript).</p>\
         <label for=\"bundle\">Admission bundle (JSON; edit it to see a tampered proof fail)</label>\
         <textarea id=\"bundle\" data-log-key=\"{}\" data-witness-keys=\"{}\" data-witness-threshold=\"{}\" data-repo=\"{}\" data-digest=\"{}\" spellcheck=\"false\">{}</textarea>\
         <p>Check it offline, with nothing but the log key: save the bundle (<a href=\"/v2/{}/admission/{}\">download</a>) \
         and run <code>vouch verify {}/{}@{} --bundle bundle.json --log-key '{}'</code>.</p>\
         <script src=\"/ui/proof.js\"></script>",
        verdict(Some(d.verdict == vouch_ledger::entry::Verdict::Admit)),
        list(&d.reasons),
        list(&d.signers),
        esc(&name),
        esc(d.policy.as_str()),
        list(&evidence),
        utc(d.time),
        cosignature_list(app, &bundle_text),
        esc(&vkey),
        esc(&vkey),
        esc(&app.published.witness_keys().join(" ")),
        if app.published.configured() { app.published.threshold() } else { 0 },
        esc(repo.as_str()),
        esc(digest.as_str()),
        esc(&bundle_text),
        repo.as_str(),
        digest.as_str(),
        esc(addr),
        esc(repo.as_str()),
        esc(digest.as_str()),
        esc(&vkey),
    );
    Ok(page(
        &format!("Image {}@{}", repo.as_str(), short(digest.as_str())),
        "/ui/repositories",
        &body,
    ))
}

/// The cosignature lines on the bundle's decision checkpoint, named.
fn cosignature_list(app: &App, bundle: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(bundle).unwrap_or_default();
    let proof = v["decision"]["proof"].as_str().unwrap_or("");
    let note = proof.split_once("\n\n").map_or("", |(_, n)| n);
    let Ok(note) = vouch_ledger::Note::parse(note.as_bytes()) else {
        return "<p>The bundle's checkpoint could not be read.</p>".to_owned();
    };
    let log = app.ledger.verifier();
    let mut rows = Vec::new();
    let mut known = std::collections::HashSet::new();
    // Each witness this registry names, its line checked here.
    for vkey in app.published.witness_keys() {
        let Ok(key) = vouch_ledger::cosignature::CosignerKey::parse(vkey) else {
            continue;
        };
        known.insert((key.name().to_owned(), key.id()));
        rows.push(match key.verify(&note) {
            Ok(Some(t)) => format!("{}: cosignature verified, made {}", key.name(), utc(t)),
            Ok(None) => format!("{}: no cosignature", key.name()),
            Err(e) => format!("{}: {e}", key.name()),
        });
    }
    for sig in note.signatures() {
        let ours = sig.name == log.name() && sig.id == log.id();
        if !ours && !known.contains(&(sig.name.clone(), sig.id)) {
            rows.push(format!(
                "{} (key {:08x}): not a witness this registry names, not checked",
                sig.name, sig.id
            ));
        }
    }
    if rows.is_empty() {
        return "<p>None: this registry names no witnesses.</p>".to_owned();
    }
    format!(
        "<p>On the proof's checkpoint (size {}); <code>vouch verify --witness KEY</code> checks them with \
         keys you obtained yourself:</p>{}",
        vouch_ledger::Checkpoint::parse(note.text()).map_or(0, |c| c.size),
        list(&rows)
    )
}
