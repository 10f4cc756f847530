//! Operator endpoints: `POST /admin/gc`, `POST /admin/reevaluate`, and
//! `GET /metrics` on the main listener. The first two need `admin` on `**`
//! (in open mode: a client on the loopback interface); metrics need what a
//! pull needs.

use super::access::Action;
use super::error::RegistryError;
use super::routes::{first, identify, parse_query, App, Result};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::Method;
use axum::response::{IntoResponse, Response};

/// Identifies the caller and checks they may do `action` globally.
async fn require(app: &App, req: &Parts, action: Action, what: &str) -> Result<()> {
    let addr = req
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let caller = identify(app, &req.headers, addr).await?;
    if app.access.allows(&caller.principal, action, None) {
        return Ok(());
    }
    Err(match (&caller.principal.user, app.access.is_open_mode()) {
        (None, true) => RegistryError::Forbidden(format!(
            "{what} answers only on the loopback interface in open mode (no --users)"
        )),
        (None, false) if action == Action::Read => {
            RegistryError::Unauthorized("this registry does not allow anonymous pulls")
        }
        (None, false) => RegistryError::Unauthorized("this needs an admin's credentials"),
        (Some(u), _) => RegistryError::Forbidden(format!(
            "{what} needs {} rights on every repository (**), which {u} does not have",
            action.as_str()
        )),
    })
}

fn post_only(req: &Parts) -> Result<()> {
    if req.method == Method::POST {
        Ok(())
    } else {
        Err(RegistryError::Unsupported(format!(
            "{} is not supported on {}; use POST",
            req.method,
            req.uri.path()
        )))
    }
}

/// `POST /admin/gc[?grace=<seconds>]`: collect unreferenced blobs written
/// more than `grace` seconds ago (default one hour, at least
/// `Limits::min_gc_grace`).
pub async fn gc(State(app): State<App>, req: Request) -> Response {
    let (req, _) = req.into_parts();
    let result = async {
        post_only(&req)?;
        require(&app, &req, Action::Admin, "garbage collection").await?;
        let q = parse_query(req.uri.query());
        let grace = match first(&q, "grace") {
            Some(g) => g
                .parse::<u64>()
                .map_err(|_| RegistryError::SizeInvalid(format!("grace={g:?} is not a number of seconds")))?,
            None => 3600,
        };
        if grace < app.limits.min_gc_grace {
            return Err(RegistryError::SizeInvalid(format!(
                "grace={grace} is below the floor of {} seconds, which protects pushes in flight (--min-gc-grace)",
                app.limits.min_gc_grace
            )));
        }
        let report = super::gc::collect(&app, std::time::Duration::from_secs(grace)).await?;
        tracing::info!(?report, "garbage collection");
        Ok::<_, RegistryError>(axum::Json(report).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /admin/reevaluate[?all=true]`: re-evaluate pending and denied
/// images under the policy in force (with `all=true`, admitted ones too).
pub async fn reevaluate(State(app): State<App>, req: Request) -> Response {
    let (req, _) = req.into_parts();
    let result = async {
        post_only(&req)?;
        require(&app, &req, Action::Admin, "re-evaluation").await?;
        let q = parse_query(req.uri.query());
        let all = match first(&q, "all") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(RegistryError::SizeInvalid(format!(
                    "all={other:?}: expected true or false"
                )))
            }
        };
        let report = app.gate.reevaluate(&app, all).await?;
        tracing::info!(%report, all, "re-evaluation");
        Ok::<_, RegistryError>(axum::Json(report).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /metrics` on the main listener: what a pull needs.
pub async fn metrics(State(app): State<App>, req: Request) -> Response {
    let (req, _) = req.into_parts();
    let result = async {
        if req.method != Method::GET {
            return Err(RegistryError::Unsupported(format!(
                "{} is not supported on /metrics",
                req.method
            )));
        }
        require(&app, &req, Action::Read, "/metrics").await?;
        Ok(super::metrics::serve_metrics(State(app.clone())).await)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
