//! The web pages at `/ui/` (spec/http-api.md, "Web pages"): read-only,
//! for whoever may pull. What was admitted and denied, why, under which
//! policy, with the ledger entry and its proof (checked in the browser with
//! WebCrypto by `proof.js`), witness cosignatures and the countersignature.
//!
//! Every page lists only repositories the caller may read (the same check
//! as a pull), pages through long lists, and reads in a bounded number of
//! scans: ledger-wide facts come from [`index::LedgerIndex`], a repository
//! page from one scan of its tags and one of its decisions.

pub mod html;
mod image;
pub mod index;

use super::access::Action;
use super::error::RegistryError;
use super::names::RepoName;
use super::routes::{client_addr, identify, App, Caller};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use html::{esc, image_link, list, page, q, short, verdict};
use std::collections::HashMap;
use std::fmt::Write as _;

type Params = Query<HashMap<String, String>>;
/// Rows per page.
const PAGE: usize = 50;

/// The routes under `/ui/`.
pub fn routes() -> axum::Router<App> {
    use axum::routing::get;
    axum::Router::new()
        .route("/ui", get(|| async { axum::response::Redirect::permanent("/ui/") }))
        .route("/ui/", get(overview))
        .route("/ui/denials", get(denials))
        .route("/ui/repositories", get(repositories))
        .route("/ui/repository", get(repository))
        .route("/ui/image", get(image))
        .route("/ui/policies", get(policies))
        .route("/ui/ledger", get(ledger))
        .route("/ui/proof.js", get(proof_js))
}

/// An error as a page, keeping the status and headers (a 401's challenge
/// makes the browser ask for credentials).
fn error_page(e: RegistryError) -> Response {
    let mut resp = e.into_response();
    let status = resp.status();
    let title = status.canonical_reason().unwrap_or("Error");
    let body = page(
        title,
        "",
        &format!(
            "<p>{}</p><p><a href=\"/ui/\">Back to the overview</a></p>",
            esc(&format!("{status}"))
        ),
    );
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp.headers_mut().remove(header::CONTENT_LENGTH);
    let mut out = (status, resp.headers().clone(), body).into_response();
    secure(&mut out);
    out
}

/// The Content-Security-Policy of every page: nothing but the page's own
/// script and inline style, never framed, no forms, no base.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn secure(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

fn html_response(body: String) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    secure(&mut resp);
    resp
}

/// Who is asking, and the host they asked (for the commands shown). The
/// pages need what a pull needs: without anonymous pulls, credentials.
async fn caller(app: &App, req: Request) -> Result<Ctx, RegistryError> {
    let addr = client_addr(&req);
    let headers = req.into_parts().0.headers;
    let caller = identify(app, &headers, addr).await?;
    if caller.principal.user.is_none() && app.access.users().is_some() && !app.access.anonymous_pull() {
        return Err(RegistryError::Unauthorized("log in to see this registry's pages"));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("REGISTRY")
        .to_owned();
    Ok(Ctx { caller, host })
}

/// The caller of a page and the host name they used.
struct Ctx {
    caller: Caller,
    host: String,
}

fn may_read(app: &App, caller: &Caller, repo: &str) -> bool {
    RepoName::parse(repo).is_ok_and(|r| caller.may(app, Action::Read, Some(&r)))
}

macro_rules! page_handler {
    ($name:ident, $body:ident) => {
        async fn $name(State(app): State<App>, Query(p): Params, req: Request) -> Response {
            let c = match caller(&app, req).await {
                Ok(c) => c,
                Err(e) => return error_page(e),
            };
            // Pages read RocksDB and may index the ledger: off the async
            // workers, so a slow page never holds up pushes and pulls.
            let page = tokio::task::spawn_blocking(move || $body(&app, &c, &p)).await;
            match page {
                Ok(Ok(body)) => html_response(body),
                Ok(Err(e)) => error_page(e),
                Err(e) => error_page(RegistryError::Internal(e.to_string())),
            }
        }
    };
}

page_handler!(overview, overview_page);
page_handler!(denials, denials_page);
page_handler!(repositories, repositories_page);
page_handler!(repository, repository_page);
use image::image_page;
page_handler!(image, image_page);
page_handler!(policies, policies_page);
page_handler!(ledger, ledger_page);

async fn proof_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("proof.js"),
    )
        .into_response()
}

type Page = Result<String, RegistryError>;

/// Most denials one page looks at to find those the caller may read.
const MAX_SCAN: usize = 10_000;

type Denial = (u64, String, String, Vec<String>);

/// Denials visible to `caller`, newest first, before ledger index `before`,
/// at most `limit`, looking at no more than [`MAX_SCAN`]; with where the
/// next page starts, if there is more.
fn visible_denials(app: &App, caller: &Caller, before: u64, limit: usize) -> (Vec<Denial>, Option<u64>) {
    let ix = app.ui_index.refreshed(&app.ledger);
    let mut rows = Vec::new();
    let mut next = None;
    let older = ix.denied.range(..(before, String::new(), String::new())).rev();
    for (n, ((i, r, d), reasons)) in older.enumerate() {
        if rows.len() == limit || n == MAX_SCAN {
            // The next page starts with the entry not looked at yet.
            next = Some(*i + 1);
            break;
        }
        if may_read(app, caller, r) {
            rows.push((*i, r.clone(), d.clone(), reasons.clone()));
        }
    }
    (rows, next)
}

fn denial_table(rows: &[Denial]) -> String {
    if rows.is_empty() {
        return "<p>No denied images you may read.</p>".to_owned();
    }
    let mut t = String::from(
        "<table><caption>Denied images, newest first</caption><thead><tr><th scope=\"col\">Image</th>\
         <th scope=\"col\">Ledger entry</th><th scope=\"col\">Why</th></tr></thead><tbody>",
    );
    for (i, repo, digest, reasons) in rows {
        let _ = write!(
            t,
            "<tr><td>{}</td><td><a href=\"/ledger/entry/{i}\">{i}</a></td><td>{}</td></tr>",
            image_link(repo, digest),
            list(reasons)
        );
    }
    t + "</tbody></table>"
}

fn checkpoint_section(app: &App) -> String {
    let published = app.published.get();
    let note = published
        .as_ref()
        .map_or_else(|| app.ledger.checkpoint(), |c| c.note.clone());
    let witnessed = match &published {
        Some(c) => format!(
            "<p>Cosigned by {} witness(es): {}.</p>",
            c.witnesses.len(),
            esc(&c.witnesses.join(", "))
        ),
        None => "<p>No witness cosignatures (no witnesses configured, or none has cosigned yet).</p>".to_owned(),
    };
    format!(
        "<p>Log key: <code id=\"log-key\">{}</code></p><h2>Latest checkpoint</h2><pre>{}</pre>{witnessed}",
        esc(&app.ledger.verifier().to_string()),
        esc(&note)
    )
}

fn overview_page(app: &App, ctx: &Ctx, _: &HashMap<String, String>) -> Page {
    let caller = &ctx.caller;
    let (rows, _) = visible_denials(app, caller, u64::MAX, 10);
    let (size, admitted, denied, policies) = {
        let ix = app.ui_index.refreshed(&app.ledger);
        (ix.scanned, ix.admitted, ix.denied.len(), ix.policies.len())
    };
    let body = format!(
        "<h2>Denials first</h2>{}<p><a href=\"/ui/denials\">All denials</a></p>\
         <h2>Summary</h2><ul><li>{size} ledger entries</li><li>{admitted} image(s) admitted, {denied} denied \
         (all repositories)</li><li>{policies} policy version(s)</li></ul>{}",
        denial_table(&rows),
        checkpoint_section(app)
    );
    Ok(page("Overview", "/ui/", &body))
}

fn denials_page(app: &App, ctx: &Ctx, p: &HashMap<String, String>) -> Page {
    let caller = &ctx.caller;
    let before = p.get("before").and_then(|b| b.parse().ok()).unwrap_or(u64::MAX);
    let (rows, next) = visible_denials(app, caller, before, PAGE);
    let mut body = denial_table(&rows);
    if let Some(next) = next {
        let _ = write!(
            body,
            "<p><a rel=\"next\" href=\"/ui/denials?before={next}\">Older denials</a></p>"
        );
    }
    Ok(page("Denials", "/ui/denials", &body))
}

fn repositories_page(app: &App, ctx: &Ctx, p: &HashMap<String, String>) -> Page {
    let caller = &ctx.caller;
    let mut after = p.get("after").cloned();
    let mut shown = Vec::new();
    let mut done = false;
    // Pages of names until PAGE readable ones (bounded: 20 scans).
    for _ in 0..20 {
        let names = app.meta.repos(after.as_deref(), PAGE * 4)?;
        done = names.len() < PAGE * 4;
        for n in names {
            after = Some(n.as_str().to_owned());
            if caller.may(app, Action::Read, Some(&n)) {
                shown.push(n);
                if shown.len() == PAGE {
                    break;
                }
            }
        }
        if done || shown.len() == PAGE {
            break;
        }
    }
    let mut body = String::from("<ul>");
    for r in &shown {
        let _ = write!(
            body,
            "<li><a href=\"/ui/repository?name={}\">{}</a></li>",
            q(r.as_str()),
            esc(r.as_str())
        );
    }
    body.push_str("</ul>");
    if shown.is_empty() {
        body = "<p>No repositories you may read.</p>".to_owned();
    }
    // More follow unless the scan reached the end; the next page starts
    // after the last name looked at, shown or not.
    if let (false, Some(last)) = (done && shown.len() < PAGE, after.as_deref()) {
        let _ = write!(
            body,
            "<p><a rel=\"next\" href=\"/ui/repositories?after={}\">More repositories</a></p>",
            q(last)
        );
    }
    Ok(page("Repositories", "/ui/repositories", &body))
}

fn repo_param(app: &App, caller: &Caller, p: &HashMap<String, String>, key: &str) -> Result<RepoName, RegistryError> {
    let name = p
        .get(key)
        .ok_or_else(|| RegistryError::NotFound(format!("give ?{key}=<repository>")))?;
    let repo = RepoName::parse(name)?;
    if !caller.may(app, Action::Read, Some(&repo)) || !app.meta.repo_exists(&repo)? {
        // The same answer for "absent" and "not yours": names are not leaked.
        return Err(RegistryError::NameUnknown(repo.to_string()));
    }
    Ok(repo)
}

/// Policy digest → (name, version, ledger index), from the ledger.
fn policy_names(app: &App) -> HashMap<String, (String, u64, u64)> {
    let ix = app.ui_index.refreshed(&app.ledger);
    ix.policies
        .iter()
        .map(|(i, p)| (p.digest.as_str().to_owned(), (p.name.clone(), p.version, *i)))
        .collect()
}

fn decision_cells(summary: Option<&serde_json::Value>, policies: &HashMap<String, (String, u64, u64)>) -> String {
    let Some(s) = summary else {
        return format!("<td>{}</td><td></td><td></td><td></td>", verdict(None));
    };
    let strings = |k: &str| -> Vec<String> {
        s[k].as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let policy = s["policy"].as_str().unwrap_or("");
    let policy = match policies.get(policy) {
        Some((name, version, _)) => format!("{} v{version}", esc(name)),
        None => esc(short(policy)),
    };
    format!(
        "<td>{}</td><td>{}</td><td>{}</td><td>{policy}</td>",
        verdict(Some(s["verdict"] == "admit")),
        list(&strings("reasons")),
        list(&strings("signers"))
    )
}

fn repository_page(app: &App, ctx: &Ctx, p: &HashMap<String, String>) -> Page {
    let caller = &ctx.caller;
    let repo = repo_param(app, caller, p, "name")?;
    let policies = policy_names(app);
    let after = p.get("after").cloned().unwrap_or_default();
    // One bounded scan of tags, one read per row shown.
    let tags = app.meta.tags_after(&repo, &after, PAGE + 1)?;
    let head = "<thead><tr><th scope=\"col\">Tag</th><th scope=\"col\">Image</th><th scope=\"col\">Verdict</th>\
                <th scope=\"col\">Reasons</th><th scope=\"col\">Signers</th><th scope=\"col\">Policy</th></tr></thead>";
    let mut body = format!("<table><caption>Tags of {}</caption>{head}<tbody>", esc(repo.as_str()));
    for (tag, digest) in tags.iter().take(PAGE) {
        let summary = app.meta.decision(&repo, digest)?;
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td>{}</tr>",
            esc(tag),
            image_link(repo.as_str(), digest.as_str()),
            decision_cells(summary.as_ref(), &policies)
        );
    }
    body.push_str("</tbody></table>");
    if tags.len() > PAGE {
        let last = &tags[PAGE - 1].0;
        let _ = write!(
            body,
            "<p><a rel=\"next\" href=\"/ui/repository?name={}&amp;after={}\">More tags</a></p>",
            q(repo.as_str()),
            q(last)
        );
    }
    // On the first page: manifests with a decision that no tag points to
    // (pushed by digest), from a bounded scan of the repository's decisions.
    if after.is_empty() {
        let tagged: std::collections::HashSet<String> = app
            .meta
            .tags_after(&repo, "", 1000)?
            .into_iter()
            .map(|(_, d)| d.to_string())
            .collect();
        let mut untagged: Vec<_> = app
            .meta
            .decisions_in(&repo, 1000)?
            .into_iter()
            .filter(|(d, _)| !tagged.contains(d))
            .collect();
        untagged.sort_by_key(|(_, s)| std::cmp::Reverse(s["ledger_index"].as_u64()));
        if !untagged.is_empty() {
            let _ = write!(
                body,
                "<h2>Manifests without a tag</h2><table><caption>With a decision, newest first (at most {PAGE})</caption>{}<tbody>",
                head.replace(">Tag<", ">Tag (none)<")
            );
            for (digest, s) in untagged.iter().take(PAGE) {
                let _ = write!(
                    body,
                    "<tr><td></td><td>{}</td>{}</tr>",
                    image_link(repo.as_str(), digest),
                    decision_cells(Some(s), &policies)
                );
            }
            body.push_str("</tbody></table>");
        }
    }
    Ok(page(
        &format!("Repository {}", repo.as_str()),
        "/ui/repositories",
        &body,
    ))
}

/// Policy versions per page of the history.
const POLICIES_PAGE: usize = 10;

fn policies_page(app: &App, ctx: &Ctx, p: &HashMap<String, String>) -> Page {
    let list: Vec<(u64, vouch_ledger::entry::PolicyEntry)> = app.ui_index.refreshed(&app.ledger).policies.clone();
    // Documents name repositories, keys and identities: shown to those who
    // may read every repository; digests and versions (public in the
    // ledger) to everyone.
    let documents = ctx.caller.may(app, Action::Read, None);
    let skip = p.get("page").and_then(|n| n.parse::<usize>().ok()).unwrap_or(0) * POLICIES_PAGE;
    let newest_first: Vec<usize> = (0..list.len()).rev().skip(skip).take(POLICIES_PAGE).collect();
    let mut sections = String::new();
    for i in &newest_first {
        let (index, pe) = &list[*i];
        let doc = |j: usize| -> Result<Option<String>, RegistryError> {
            Ok(app.meta.policy_document(list[j].1.digest.as_str())?.map(|d| pretty(&d)))
        };
        let text = if !documents {
            String::new()
        } else {
            match (doc(*i)?, i.checked_sub(1).map(doc).transpose()?.flatten()) {
                (Some(d), Some(prev)) => format!(
                    "<pre aria-label=\"changes from the previous version\">{}</pre>",
                    html::diff(&prev, &d)
                ),
                (Some(d), None) => format!("<pre>{}</pre>", esc(&d)),
                (None, _) => {
                    "<p>Document not kept (put in force before this registry kept policy documents).</p>".into()
                }
            }
        };
        let _ = write!(
            sections,
            "<section><h2>{} version {}</h2><p>Digest <code>{}</code>, ledger entry {index}.</p>{text}</section>",
            esc(&pe.name),
            pe.version,
            esc(pe.digest.as_str())
        );
    }
    let mut body = String::from(if documents {
        "<p>Newest first; each version shows its changes from the one before.</p>"
    } else {
        "<p>Newest first. The documents are shown to users who may read every repository.</p>"
    });
    body.push_str(&sections);
    if skip + POLICIES_PAGE < list.len() {
        let _ = write!(
            body,
            "<p><a rel=\"next\" href=\"/ui/policies?page={}\">Older versions</a></p>",
            skip / POLICIES_PAGE + 1
        );
    }
    Ok(page("Policy history", "/ui/policies", &body))
}

/// A Unix time as `YYYY-MM-DD hh:mm:ss UTC`.
fn utc(secs: u64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(i64::MAX)) {
        Ok(t) => format!("{} {:02}:{:02}:{:02} UTC", t.date(), t.hour(), t.minute(), t.second()),
        Err(_) => format!("{secs} (Unix time)"),
    }
}

/// A JSON document pretty-printed (for line diffs), or as it is.
fn pretty(doc: &str) -> String {
    serde_json::from_str::<serde_json::Value>(doc)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| doc.to_owned())
}

fn ledger_page(app: &App, _: &Ctx, _: &HashMap<String, String>) -> Page {
    let (days, problem, size): (Vec<_>, _, _) = {
        let ix = app.ui_index.refreshed(&app.ledger);
        let days = ix.days.iter().rev().take(90).map(|(d, v)| (*d, *v)).collect::<Vec<_>>();
        (days.into_iter().rev().collect(), ix.problem.clone(), ix.scanned)
    };
    let mut table = String::from(
        "<table><caption>Per day (UTC), last 90 days with decisions</caption><thead><tr><th scope=\"col\">Day</th>\
         <th scope=\"col\">Admissions</th><th scope=\"col\">Denials</th><th scope=\"col\">Ledger size</th></tr></thead><tbody>",
    );
    for (day, d) in days.iter().rev() {
        let date = time::OffsetDateTime::from_unix_timestamp((*day * 86_400) as i64)
            .map(|t| t.date().to_string())
            .unwrap_or_default();
        let _ = write!(
            table,
            "<tr><td>{date}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            d.admits, d.denies, d.size
        );
    }
    table.push_str("</tbody></table>");
    let problem = problem.map_or(String::new(), |p| {
        format!("<p class=\"deny\">Problem reading the ledger: {}</p>", esc(&p))
    });
    let body = format!(
        "{problem}<p>{size} entries. Tiles at <a href=\"/ledger/checkpoint\">/ledger/</a> (c2sp.org/tlog-tiles); \
         audit with <code>vouch audit --log URL --log-key KEY</code>.</p>{}{}{table}",
        checkpoint_section(app),
        html::growth_chart(&days)
    );
    Ok(page("Ledger", "/ui/ledger", &body))
}
