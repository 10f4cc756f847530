//! Routing: every `/v2/` request is dispatched here over
//! [`super::path::route`], after the one authorization check
//! ([`authorize`], over `access.rs`'s table), to one function per endpoint.
//! Input is parsed into small types at the top of each handler; errors are
//! [`RegistryError`]s, whose wire form is one table.

use super::access::{required, Action, Principal};
use super::auth::Credentials;
use super::error::RegistryError;
use super::names::{parse_digest, Reference, RepoName};
use super::path::{route, Route};
use super::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

pub(super) type Result<T> = std::result::Result<T, RegistryError>;
pub(super) type App = Arc<AppState>;
pub(super) type Query = HashMap<String, Vec<String>>;

const API_VERSION: (&str, &str) = ("Docker-Distribution-API-Version", "registry/2.0");

/// Who is asking, and what the access rules let them do.
#[derive(Debug, Clone)]
pub(super) struct Caller {
    pub(super) principal: Principal,
}

impl Caller {
    /// May read content of `repo` that is not admitted (push rights there).
    pub(super) fn reads_quarantined(&self, app: &AppState, repo: &RepoName) -> bool {
        app.access.reads_quarantined(&self.principal, repo)
    }

    /// May do `action` in `repo` (`None`: globally).
    pub(super) fn may(&self, app: &AppState, action: Action, repo: Option<&RepoName>) -> bool {
        app.access.allows(&self.principal, action, repo)
    }

    /// Refuses unless the caller is an admin of `repo`: `what` says what
    /// needed it.
    pub(super) fn require_admin(&self, app: &AppState, repo: &RepoName, what: &str) -> Result<()> {
        if self.may(app, Action::Admin, Some(repo)) {
            return Ok(());
        }
        Err(match &self.principal.user {
            None if app.access.is_open_mode() => RegistryError::Forbidden(format!(
                "{what} needs an admin; in open mode only clients on the loopback interface are admins"
            )),
            None => RegistryError::Unauthorized("this needs an admin's credentials"),
            Some(u) => {
                RegistryError::Forbidden(format!("{what} needs admin rights on {repo}, which {u} does not have"))
            }
        })
    }
}

/// The client address of a request, when it came over a socket.
pub(super) fn client_addr(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
}

/// Routes every `/v2/` request.
pub async fn dispatch(State(app): State<App>, req: Request) -> Response {
    let addr = client_addr(&req);
    let (parts, body) = req.into_parts();
    let query = parse_query(parts.uri.query());
    let path = parts.uri.path().to_owned();
    let result = async {
        let r = route(&path).ok_or_else(|| RegistryError::NotFound(path.chars().take(200).collect()))?;
        let caller = identify(&app, &parts.headers, addr).await?;
        authorize(&app, &caller, &parts.method, &r)?;
        handle(&app, &caller, &parts.method, r, &query, &parts.headers, body).await
    }
    .await;
    let mut resp = result.unwrap_or_else(IntoResponse::into_response);
    resp.headers_mut()
        .insert(API_VERSION.0, HeaderValue::from_static(API_VERSION.1));
    resp
}

/// 405 with the spec's envelope, for the fixed routes (`/admin/`, `/ledger/`).
pub async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Response {
    RegistryError::Unsupported(format!("{method} is not supported on {}", uri.path())).into_response()
}

/// Who the request's credentials prove it comes from. Credentials seen
/// before are checked in memory; new ones run bcrypt on the blocking pool
/// (at most two at once), after the throttle of failed attempts
/// (`auth.rs`). Clients without credentials answer a Basic challenge with
/// an empty user and password (`Basic Og==`): that is anonymous, not wrong.
pub(super) async fn identify(app: &App, headers: &HeaderMap, addr: Option<std::net::IpAddr>) -> Result<Caller> {
    let proxied = super::access::PROXY_HEADERS.iter().any(|h| headers.contains_key(*h));
    let anonymous = Caller {
        principal: Principal {
            user: None,
            addr,
            proxied,
        },
    };
    let Some(users) = app.access.users() else {
        return Ok(anonymous);
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !super::auth::is_empty_basic(v));
    let Some(given) = given else { return Ok(anonymous) };
    let creds = Credentials::from_header(given).ok_or(RegistryError::Unauthorized(
        "malformed credentials: expected Basic base64(user:password)",
    ))?;
    let user = |c: &Credentials| Caller {
        principal: Principal {
            user: Some(c.name.clone()),
            addr,
            proxied,
        },
    };
    if users.verified_before(&creds) {
        return Ok(user(&creds));
    }
    if let Some(retry_after) = app.throttle.refused(addr, &creds.name) {
        return Err(RegistryError::LoginThrottled { retry_after });
    }
    let _slot = app
        .password_checks
        .acquire()
        .await
        .map_err(|e| RegistryError::Internal(e.to_string()))?;
    let check = {
        let (users, creds) = (users.clone(), creds.clone());
        move || users.verify(&creds)
    };
    let ok = tokio::task::spawn_blocking(check)
        .await
        .map_err(|e| RegistryError::Internal(e.to_string()))?;
    if ok {
        Ok(user(&creds))
    } else {
        app.throttle.failed(addr, &creds.name);
        Err(RegistryError::Unauthorized("wrong user name or password"))
    }
}

/// THE authorization check: the action the endpoint needs (`access.rs`'s
/// table), on the route's repository. Clients without credentials are
/// challenged (401) so that they retry with them; users without the right
/// are refused (403). `/v2/` challenges anyone without valid credentials
/// when there are users, so that `login` commands check passwords.
pub(super) fn authorize(app: &AppState, caller: &Caller, method: &Method, r: &Route<'_>) -> Result<()> {
    let who = &caller.principal;
    if let (Route::Base, false, None) = (r, app.access.is_open_mode(), &who.user) {
        return Err(RegistryError::Unauthorized("log in to push"));
    }
    let Some(action) = required(method, r) else {
        return Ok(());
    };
    let repo = match r {
        Route::Base | Route::Catalog => None,
        Route::Blob { name, .. }
        | Route::UploadStart { name }
        | Route::Upload { name, .. }
        | Route::Manifest { name, .. }
        | Route::Tags { name }
        | Route::Referrers { name, .. }
        | Route::Admission { name, .. } => Some(RepoName::parse(name)?),
    };
    let allowed = match (r, &repo) {
        // The catalog lists, per repository, what the caller may read.
        (Route::Catalog, _) => who.user.is_some() || app.access.allows(who, Action::Read, None),
        (_, repo) => app.access.allows(who, action, repo.as_ref()),
    };
    if allowed {
        return Ok(());
    }
    let place = repo.as_ref().map_or(String::new(), |r| format!(" in {r}"));
    Err(match &who.user {
        None if action == Action::Read => RegistryError::Unauthorized("this registry does not allow anonymous pulls"),
        None => RegistryError::Unauthorized("pushing and deleting need credentials"),
        Some(u) => RegistryError::Forbidden(format!("user {u} may not {}{place}", action.as_str())),
    })
}

async fn handle(
    app: &App,
    caller: &Caller,
    method: &Method,
    r: Route<'_>,
    q: &Query,
    h: &HeaderMap,
    body: Body,
) -> Result<Response> {
    use super::{blob_api, listing, manifest_api, upload_api};
    let not_allowed = |what: &str| {
        Err(RegistryError::Unsupported(format!(
            "{method} is not supported on {what}"
        )))
    };
    match r {
        Route::Base => match *method {
            Method::GET | Method::HEAD => Ok((StatusCode::OK, axum::Json(serde_json::json!({}))).into_response()),
            _ => not_allowed("/v2/"),
        },
        Route::Catalog => match *method {
            Method::GET => listing::catalog(app, caller, q),
            _ => not_allowed("the catalog"),
        },
        Route::Blob { name, digest } => {
            let (repo, digest) = (RepoName::parse(name)?, parse_digest(digest)?);
            match *method {
                Method::GET => blob_api::get(app, caller, &repo, &digest, h, true).await,
                Method::HEAD => blob_api::get(app, caller, &repo, &digest, h, false).await,
                Method::DELETE if !app.limits.deletes => Err(deletes_disabled()),
                Method::DELETE => blob_api::delete(app, &repo, &digest).await,
                _ => not_allowed("blobs"),
            }
        }
        Route::UploadStart { name } => match *method {
            Method::POST => upload_api::start(app, caller, &RepoName::parse(name)?, q, h, body).await,
            _ => not_allowed("upload sessions"),
        },
        Route::Upload { name, id } => {
            let repo = RepoName::parse(name)?;
            match *method {
                Method::PATCH => upload_api::patch(app, caller, &repo, id, h, body).await,
                Method::PUT => upload_api::finish(app, caller, (&repo, id), q, h, body).await,
                Method::GET => upload_api::status(app, caller, &repo, id).await,
                Method::DELETE => upload_api::cancel(app, caller, &repo, id).await,
                _ => not_allowed("upload sessions"),
            }
        }
        Route::Manifest { name, reference } => {
            let repo = RepoName::parse(name)?;
            // A reference outside the grammar names nothing stored: reading
            // or deleting it is 404 (the conformance suite expects it);
            // only pushing under it is 400.
            let unknown = |_| {
                RegistryError::ManifestUnknown(format!("{repo}:{}", reference.chars().take(200).collect::<String>()))
            };
            match *method {
                Method::GET | Method::HEAD => {
                    let reference = Reference::parse(reference).map_err(unknown)?;
                    manifest_api::get(app, caller, &repo, &reference, *method == Method::GET).await
                }
                Method::PUT => {
                    let reference = Reference::parse(reference)?;
                    manifest_api::put(app, caller, (&repo, &reference, q), h, body).await
                }
                Method::DELETE if !app.limits.deletes => Err(deletes_disabled()),
                Method::DELETE => {
                    let reference = Reference::parse(reference).map_err(unknown)?;
                    manifest_api::delete(app, caller, &repo, &reference).await
                }
                _ => not_allowed("manifests"),
            }
        }
        Route::Tags { name } => match *method {
            Method::GET => listing::tags(app, caller, &RepoName::parse(name)?, q),
            _ => not_allowed("tags"),
        },
        Route::Admission { name, digest } => {
            let (repo, digest) = (RepoName::parse(name)?, parse_digest(digest)?);
            match *method {
                // Decisions are public (they are in the ledger): the bundle
                // is served to anyone who may read the repository.
                Method::GET => super::ledger_api::admission_bundle(app, &repo, &digest),
                _ => not_allowed("admission bundles"),
            }
        }
        Route::Referrers { name, digest } => {
            let (repo, digest) = (RepoName::parse(name)?, parse_digest(digest)?);
            match *method {
                Method::GET => listing::referrers(app, caller, &repo, &digest, q),
                _ => not_allowed("referrers"),
            }
        }
    }
}

fn deletes_disabled() -> RegistryError {
    RegistryError::Unsupported("deletion is disabled on this registry (--no-delete)".into())
}

/// A query string's parameters, each with every value given (`?tag=a&tag=b`).
pub(super) fn parse_query(q: Option<&str>) -> Query {
    let mut out: Query = HashMap::new();
    for kv in q.unwrap_or("").split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if let (Some(k), Some(v)) = (decode(k), decode(v)) {
            out.entry(k).or_default().push(v);
        }
    }
    out
}

/// The first value of a query parameter.
pub(super) fn first<'q>(q: &'q Query, key: &str) -> Option<&'q str> {
    q.get(key).and_then(|v| v.first()).map(String::as_str)
}

/// Percent-decoding of a query component (`+` is not special in these URLs).
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `n` and `last` of a listing: how many at most (`default` if not given,
/// never more than `max`), after which name.
pub(super) fn page(q: &Query, default: usize, max: usize) -> Result<(usize, Option<String>)> {
    let n = match first(q, "n") {
        Some(n) => n
            .parse::<usize>()
            .map_err(|_| RegistryError::SizeInvalid(format!("n={n:?} is not a number")))?
            .min(max),
        None => default,
    };
    Ok((n, first(q, "last").map(str::to_owned)))
}

pub(super) fn location(v: String) -> (header::HeaderName, String) {
    (header::LOCATION, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding_keeps_every_value() {
        let q = parse_query(Some("digest=sha256%3Aabc&n=5&last&tag=a&tag=b"));
        assert_eq!(first(&q, "digest"), Some("sha256:abc"));
        assert_eq!(first(&q, "n"), Some("5"));
        assert_eq!(first(&q, "last"), Some(""));
        assert_eq!(q["tag"], ["a", "b"]);
    }
}
