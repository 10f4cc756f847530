//! The access matrix: every route of the registry (the distribution API,
//! the operator endpoints, metrics, the ledger) against every kind of
//! client, all from ONE table, [`MATRIX`]. Each cell says how the request
//! is answered:
//!
//! - `✓`: let through (any status but 401 and 403; with the fixtures here,
//!   always a success, which the test checks too, so that no cell passes
//!   because its target was missing);
//! - `401`: `UNAUTHORIZED`, with `WWW-Authenticate: Basic realm="vouch"`;
//! - `403`: `DENIED`.
//!
//! It is spec/threat-model.md's "Who can cause what" made exact, over
//! `access.rs`'s `required()` table and the checks made deeper in: moving a
//! tag off or deleting admitted content (`Caller::require_admin`), blobs of
//! admitted images (never deleted), quarantined content (read only with
//! push rights), `/admin/*`, `/metrics` and the ledger.
//!
//! Every cell runs against a fresh registry (in-process: the real router
//! over a real data directory) under a policy that admits everything in
//! `app` and nothing elsewhere, with its fixtures built by a privileged
//! client (loopback in open mode, the user `admin` otherwise): an admitted
//! image `app:v1`, a quarantined one `held:v1`, a blob no manifest names,
//! an upload session. So each destructive cell has a target of its own,
//! and wrong passwords never add up to the login throttle.
//!
//! The same table, rendered as Markdown, must be in spec/http-api.md
//! between `<!-- access-matrix:begin -->` and `<!-- access-matrix:end -->`:
//! `spec_shows_the_matrix` prints what to paste there when it is not.

mod inproc;

use axum::http::StatusCode;
use inproc::*;
use std::net::SocketAddr;
use std::sync::Arc;

/// How a cell is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Let through: neither 401 nor 403.
    Allowed,
    /// 401 `UNAUTHORIZED`, with the Basic challenge.
    Unauthorized,
    /// 403 `DENIED`.
    Denied,
}

const Y: Want = Want::Allowed;
const U: Want = Want::Unauthorized;
const D: Want = Want::Denied;

impl Want {
    fn cell(self) -> &'static str {
        match self {
            Want::Allowed => "✓",
            Want::Unauthorized => "401",
            Want::Denied => "403",
        }
    }
}

/// A kind of client: the columns of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// No users file; a client on the loopback interface.
    OpenLoopback,
    /// No users file; a client on the network (`--allow-open-network`).
    OpenNetwork,
    /// Users, anonymous pull on; no credentials.
    Anonymous,
    /// Users, `--no-anonymous-pull`; no credentials.
    AnonymousNoPull,
    /// The user `reader`: `read` on `**`.
    Reader,
    /// The user `pusher`: `read`, `push`, `delete` on `**`.
    Pusher,
    /// The user `admin`: `admin` on `**`.
    Admin,
    /// The user name `admin` with a wrong password.
    WrongPassword,
}

/// The columns, in order, with their headings.
const ROLES: [(Role, &str); 8] = [
    (Role::OpenLoopback, "open mode, loopback"),
    (Role::OpenNetwork, "open mode, network (`--allow-open-network`)"),
    (Role::Anonymous, "anonymous, `--users`"),
    (Role::AnonymousNoPull, "anonymous, `--users --no-anonymous-pull`"),
    (Role::Reader, "user with `read`"),
    (Role::Pusher, "user with `read`, `push`, `delete`"),
    (Role::Admin, "user with `admin`"),
    (Role::WrongPassword, "wrong password"),
];

/// A request: the rows of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    BaseGet,
    BaseHead,
    BlobGet,
    BlobHead,
    BlobGetQuarantined,
    BlobDelete,
    BlobDeleteAdmitted,
    UploadStart,
    UploadPatch,
    UploadPut,
    UploadGet,
    UploadDelete,
    ManifestGetTag,
    ManifestGetDigest,
    ManifestHeadTag,
    ManifestHeadDigest,
    ManifestGetQuarantined,
    ManifestPutTag,
    ManifestPutDigest,
    ManifestMoveTag,
    ManifestDeleteTag,
    ManifestDeleteDigest,
    ManifestDeleteAdmittedTag,
    ManifestDeleteAdmittedDigest,
    Tags,
    Referrers,
    Admission,
    Catalog,
    Gc,
    Reevaluate,
    Metrics,
    Checkpoint,
}

/// THE table: each request, and its answer to each role of [`ROLES`]
/// (open loopback, open network, anonymous, anonymous without anonymous
/// pull, reader, pusher, admin, wrong password).
#[rustfmt::skip]
const MATRIX: &[(Op, &str, [Want; 8])] = &[
    (Op::BaseGet, "`GET /v2/`", [Y, Y, U, U, Y, Y, Y, U]),
    (Op::BaseHead, "`HEAD /v2/`", [Y, Y, U, U, Y, Y, Y, U]),
    (Op::BlobGet, "`GET /v2/<name>/blobs/<digest>`, admitted", [Y, Y, Y, U, Y, Y, Y, U]),
    (Op::BlobHead, "`HEAD /v2/<name>/blobs/<digest>`, admitted", [Y, Y, Y, U, Y, Y, Y, U]),
    (Op::BlobGetQuarantined, "`GET /v2/<name>/blobs/<digest>`, quarantined", [D, D, D, U, D, Y, Y, U]),
    (Op::BlobDelete, "`DELETE /v2/<name>/blobs/<digest>`, no manifest's content", [Y, Y, U, U, D, Y, Y, U]),
    (Op::BlobDeleteAdmitted, "`DELETE /v2/<name>/blobs/<digest>`, an admitted image's content", [D, D, U, U, D, D, D, U]),
    (Op::UploadStart, "`POST /v2/<name>/blobs/uploads/`", [Y, Y, U, U, D, Y, Y, U]),
    (Op::UploadPatch, "`PATCH /v2/<name>/blobs/uploads/<id>`", [Y, Y, U, U, D, Y, Y, U]),
    (Op::UploadPut, "`PUT /v2/<name>/blobs/uploads/<id>?digest=<d>`", [Y, Y, U, U, D, Y, Y, U]),
    (Op::UploadGet, "`GET /v2/<name>/blobs/uploads/<id>`", [Y, Y, U, U, D, Y, Y, U]),
    (Op::UploadDelete, "`DELETE /v2/<name>/blobs/uploads/<id>`", [Y, Y, U, U, D, Y, Y, U]),
    (Op::ManifestGetTag, "`GET /v2/<name>/manifests/<tag>`, admitted", [Y, Y, Y, U, Y, Y, Y, U]),
    (Op::ManifestGetDigest, "`GET /v2/<name>/manifests/<digest>`, admitted", [Y, Y, Y, U, Y, Y, Y, U]),
    (Op::ManifestHeadTag, "`HEAD /v2/<name>/manifests/<tag>`, admitted", [Y, Y, Y, U, Y, Y, Y, U]),
    (Op::ManifestHeadDigest, "`HEAD /v2/<name>/manifests/<digest>`, admitted", [Y, Y, Y, U, Y, Y, Y, U]),
    (Op::ManifestGetQuarantined, "`GET /v2/<name>/manifests/<digest>`, quarantined", [D, D, D, U, D, Y, Y, U]),
    (Op::ManifestPutTag, "`PUT /v2/<name>/manifests/<tag>`, a new tag", [Y, Y, U, U, D, Y, Y, U]),
    (Op::ManifestPutDigest, "`PUT /v2/<name>/manifests/<digest>`", [Y, Y, U, U, D, Y, Y, U]),
    (Op::ManifestMoveTag, "`PUT /v2/<name>/manifests/<tag>`, moving the tag off admitted content", [Y, D, U, U, D, D, Y, U]),
    (Op::ManifestDeleteTag, "`DELETE /v2/<name>/manifests/<tag>`, not admitted", [Y, Y, U, U, D, Y, Y, U]),
    (Op::ManifestDeleteDigest, "`DELETE /v2/<name>/manifests/<digest>`, not admitted", [Y, Y, U, U, D, Y, Y, U]),
    (Op::ManifestDeleteAdmittedTag, "`DELETE /v2/<name>/manifests/<tag>`, admitted", [Y, D, U, U, D, D, Y, U]),
    (Op::ManifestDeleteAdmittedDigest, "`DELETE /v2/<name>/manifests/<digest>`, admitted", [Y, D, U, U, D, D, Y, U]),
    (Op::Tags, "`GET /v2/<name>/tags/list`", [Y, Y, Y, U, Y, Y, Y, U]),
    (Op::Referrers, "`GET /v2/<name>/referrers/<digest>`", [Y, Y, Y, U, Y, Y, Y, U]),
    (Op::Admission, "`GET /v2/<name>/admission/<digest>`", [Y, Y, Y, U, Y, Y, Y, U]),
    (Op::Catalog, "`GET /v2/_catalog`", [Y, Y, Y, U, Y, Y, Y, U]),
    (Op::Gc, "`POST /admin/gc`", [Y, D, U, U, D, D, Y, U]),
    (Op::Reevaluate, "`POST /admin/reevaluate`", [Y, D, U, U, D, D, Y, U]),
    (Op::Metrics, "`GET /metrics`", [Y, Y, Y, U, Y, Y, Y, U]),
    (Op::Checkpoint, "`GET /ledger/checkpoint`", [Y, Y, Y, Y, Y, Y, Y, Y]),
];

/// Admits everything in `app`; `held` matches no rule, so it is denied.
const POLICY: &str = "version = 1\nname = \"app only\"\n[[rule]]\nrepositories = \"app\"\n";

/// The network client of the roles that are not on loopback.
const NETWORK: &str = "10.1.2.3:5555";

/// A matrix as Markdown, rows requests and columns roles: `cell(row, column)`.
fn markdown(cell: impl Fn(usize, usize) -> &'static str) -> String {
    let mut out = String::from("| request |");
    for (_, heading) in ROLES {
        out += &format!(" {heading} |");
    }
    out += &format!("\n|---|{}\n", "---|".repeat(ROLES.len()));
    for (row, (_, label, _)) in MATRIX.iter().enumerate() {
        out += &format!("| {label} |");
        for col in 0..ROLES.len() {
            out += &format!(" {} |", cell(row, col));
        }
        out += "\n";
    }
    out
}

/// [`MATRIX`] as Markdown.
fn expected_markdown() -> String {
    markdown(|row, col| MATRIX[row].2[col].cell())
}

/// A fresh registry for `role`: open mode, or the users of
/// [`users_access`] with anonymous pull on or off; under [`POLICY`].
async fn registry(role: Role) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let mut state = state_in(dir.path());
    match role {
        Role::OpenLoopback | Role::OpenNetwork => {}
        Role::AnonymousNoPull => state.access = users_access(dir.path(), false),
        _ => state.access = users_access(dir.path(), true),
    }
    let policy = vouch::policy::Policy::parse(POLICY, std::path::Path::new("app-only.toml")).unwrap();
    let admission = vouch::admission::Admission::load(policy, &state.ledger, &state.meta)
        .await
        .unwrap()
        .with_registry_names(&[REGISTRY_NAME.to_owned()]);
    state.gate = Arc::new(admission);
    let state = Arc::new(state);
    let router = vouch::registry::app(state.clone());
    Registry { dir, state, router }
}

/// What the requests of one cell act on.
struct Fixture {
    /// The admitted image `app:v1`: manifest, layer.
    image: String,
    layer: String,
    /// Another manifest of the same blobs (not pushed).
    other: Vec<u8>,
    /// The quarantined image `held:v1`: manifest, layer.
    held: String,
    held_layer: String,
    /// A blob in `app` that no manifest names.
    loose: String,
    /// An upload session in `app` (its location).
    upload: String,
}

/// Pushes a one-layer image to `repo:v1`; asserts its admission state.
async fn push_one(
    r: &axum::Router,
    repo: &str,
    layer: &[u8],
    state: &str,
    auth: Option<&str>,
) -> (String, String, Vec<u8>) {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let c = push_blob(r, repo, config, auth).await;
    let l = push_blob(r, repo, layer, auth).await;
    let m = image_manifest(&c, config.len(), &l, layer.len(), "");
    let put = put_manifest(r, repo, "v1", OCI, &m, auth).await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());
    assert_eq!(put.header("vouch-admission-state"), state, "{repo}:v1");
    let other = image_manifest(&c, config.len(), &l, layer.len(), r#","annotations":{"other":"1"}"#);
    (sha256(&m), l, other)
}

/// Builds the fixtures as a privileged client (`auth`, from loopback).
async fn fixture(r: &axum::Router, auth: Option<&str>) -> Fixture {
    let (image, layer, other) = push_one(r, "app", b"admitted layer", "admitted", auth).await;
    let (held, held_layer, _) = push_one(r, "held", b"quarantined layer", "denied", auth).await;
    let loose = push_blob(r, "app", b"a blob no manifest names", auth).await;
    let h: Vec<(&str, &str)> = auth.map(|a| vec![("authorization", a)]).unwrap_or_default();
    let started = call(r, "POST", "/v2/app/blobs/uploads/", &h, vec![]).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text());
    let upload = started.header("location").to_owned();
    Fixture {
        image,
        layer,
        other,
        held,
        held_layer,
        loose,
        upload,
    }
}

/// The request `op` makes: method, path, headers, body.
fn request(op: Op, f: &Fixture) -> (&'static str, String, Vec<(&'static str, String)>, Vec<u8>) {
    let (m, up) = (&f.image, &f.upload);
    let manifest = || vec![("content-type", OCI.to_owned())];
    let (method, uri, headers, body) = match op {
        Op::BaseGet => ("GET", "/v2/".to_owned(), vec![], vec![]),
        Op::BaseHead => ("HEAD", "/v2/".to_owned(), vec![], vec![]),
        Op::BlobGet => ("GET", format!("/v2/app/blobs/{}", f.layer), vec![], vec![]),
        Op::BlobHead => ("HEAD", format!("/v2/app/blobs/{}", f.layer), vec![], vec![]),
        Op::BlobGetQuarantined => ("GET", format!("/v2/held/blobs/{}", f.held_layer), vec![], vec![]),
        Op::BlobDelete => ("DELETE", format!("/v2/app/blobs/{}", f.loose), vec![], vec![]),
        Op::BlobDeleteAdmitted => ("DELETE", format!("/v2/app/blobs/{}", f.layer), vec![], vec![]),
        Op::UploadStart => ("POST", "/v2/app/blobs/uploads/".to_owned(), vec![], vec![]),
        Op::UploadPatch => (
            "PATCH",
            up.clone(),
            vec![("content-type", "application/octet-stream".to_owned())],
            b"chunk".to_vec(),
        ),
        Op::UploadPut => ("PUT", format!("{up}?digest={}", sha256(b"")), vec![], vec![]),
        Op::UploadGet => ("GET", up.clone(), vec![], vec![]),
        Op::UploadDelete => ("DELETE", up.clone(), vec![], vec![]),
        Op::ManifestGetTag => ("GET", "/v2/app/manifests/v1".to_owned(), vec![], vec![]),
        Op::ManifestGetDigest => ("GET", format!("/v2/app/manifests/{m}"), vec![], vec![]),
        Op::ManifestHeadTag => ("HEAD", "/v2/app/manifests/v1".to_owned(), vec![], vec![]),
        Op::ManifestHeadDigest => ("HEAD", format!("/v2/app/manifests/{m}"), vec![], vec![]),
        Op::ManifestGetQuarantined => ("GET", format!("/v2/held/manifests/{}", f.held), vec![], vec![]),
        Op::ManifestPutTag => ("PUT", "/v2/app/manifests/v2".to_owned(), manifest(), f.other.clone()),
        Op::ManifestPutDigest => (
            "PUT",
            format!("/v2/app/manifests/{}", sha256(&f.other)),
            manifest(),
            f.other.clone(),
        ),
        Op::ManifestMoveTag => ("PUT", "/v2/app/manifests/v1".to_owned(), manifest(), f.other.clone()),
        Op::ManifestDeleteTag => ("DELETE", "/v2/held/manifests/v1".to_owned(), vec![], vec![]),
        Op::ManifestDeleteDigest => ("DELETE", format!("/v2/held/manifests/{}", f.held), vec![], vec![]),
        Op::ManifestDeleteAdmittedTag => ("DELETE", "/v2/app/manifests/v1".to_owned(), vec![], vec![]),
        Op::ManifestDeleteAdmittedDigest => ("DELETE", format!("/v2/app/manifests/{m}"), vec![], vec![]),
        Op::Tags => ("GET", "/v2/app/tags/list".to_owned(), vec![], vec![]),
        Op::Referrers => ("GET", format!("/v2/app/referrers/{m}"), vec![], vec![]),
        Op::Admission => ("GET", format!("/v2/app/admission/{m}"), vec![], vec![]),
        Op::Catalog => ("GET", "/v2/_catalog".to_owned(), vec![], vec![]),
        Op::Gc => ("POST", "/admin/gc?grace=0".to_owned(), vec![], vec![]),
        Op::Reevaluate => ("POST", "/admin/reevaluate".to_owned(), vec![], vec![]),
        Op::Metrics => ("GET", "/metrics".to_owned(), vec![], vec![]),
        Op::Checkpoint => ("GET", "/ledger/checkpoint".to_owned(), vec![], vec![]),
    };
    (method, uri, headers, body)
}

/// The client address and credentials of `role`.
fn client(role: Role) -> (SocketAddr, Option<String>) {
    let network: SocketAddr = NETWORK.parse().unwrap();
    match role {
        Role::OpenLoopback => ("127.0.0.1:5555".parse().unwrap(), None),
        Role::OpenNetwork | Role::Anonymous | Role::AnonymousNoPull => (network, None),
        Role::Reader => (network, Some(basic("reader", "pw"))),
        Role::Pusher => (network, Some(basic("pusher", "pw"))),
        Role::Admin => (network, Some(basic("admin", "pw"))),
        Role::WrongPassword => (network, Some(basic("admin", "wrong"))),
    }
}

/// Runs one cell on a fresh registry: its class, and what is wrong with
/// the answer beyond its class (a 401 without the challenge, a 403 of
/// another code, an allowed request that failed: a broken fixture).
async fn run(op: Op, role: Role) -> (Want, Option<String>, String) {
    let reg = registry(role).await;
    let r = &reg.router;
    let privileged = match role {
        Role::OpenLoopback | Role::OpenNetwork => None,
        _ => Some(basic("admin", "pw")),
    };
    let mut f = fixture(r, privileged.as_deref()).await;
    let (addr, auth) = client(role);
    // An upload session belongs to whoever opened it: the role opens its
    // own, when it may (when it may not, the check refuses it before the
    // session is looked at).
    if matches!(op, Op::UploadPatch | Op::UploadPut | Op::UploadGet | Op::UploadDelete) {
        let h: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let own = call_from(r, addr, "POST", "/v2/app/blobs/uploads/", &h, vec![]).await;
        if own.status == StatusCode::ACCEPTED {
            f.upload = own.header("location").to_owned();
        }
    }
    let (method, uri, mut headers, body) = request(op, &f);
    if let Some(a) = auth {
        headers.push(("authorization", a));
    }
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let resp = call_from(r, addr, method, &uri, &h, body).await;
    let said = format!(
        "{} {}",
        resp.status.as_u16(),
        resp.text().replace('\n', " ").chars().take(200).collect::<String>()
    );
    let (class, problem) = match resp.status {
        StatusCode::UNAUTHORIZED => {
            let challenge = resp.header("www-authenticate");
            let bad = challenge != r#"Basic realm="vouch""#;
            (U, bad.then(|| format!("401 with WWW-Authenticate {challenge:?}")))
        }
        StatusCode::FORBIDDEN => {
            let code = resp.code();
            (D, (code != "DENIED").then(|| format!("403 with code {code:?}")))
        }
        s => (
            Y,
            (!s.is_success()).then(|| format!("allowed, but failed (a broken fixture?): {said}")),
        ),
    };
    (class, problem, said)
}

/// Every cell of [`MATRIX`], each on a fresh registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn every_route_answers_every_role_as_the_matrix_says() {
    let started = std::time::Instant::now();
    let mut columns = tokio::task::JoinSet::new();
    for (i, (role, _)) in ROLES.into_iter().enumerate() {
        columns.spawn(async move {
            let mut got = Vec::new();
            for (op, _, _) in MATRIX {
                got.push(run(*op, role).await);
            }
            (i, got)
        });
    }
    let mut observed = vec![Vec::new(); ROLES.len()];
    while let Some(done) = columns.join_next().await {
        let (i, got) = done.unwrap();
        observed[i] = got;
    }
    let mut failures = Vec::new();
    for (row, (_, label, wants)) in MATRIX.iter().enumerate() {
        for (col, (_, heading)) in ROLES.iter().enumerate() {
            let (class, problem, said) = &observed[col][row];
            if *class != wants[col] {
                failures.push(format!(
                    "{label} × {heading}: expected {}, got {}: {said}",
                    wants[col].cell(),
                    class.cell()
                ));
            } else if let Some(p) = problem {
                failures.push(format!("{label} × {heading}: {p}"));
            }
        }
    }
    println!(
        "{} cells in {:.1} s",
        MATRIX.len() * ROLES.len(),
        started.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        let seen = markdown(|row, col| observed[col][row].0.cell());
        panic!(
            "{} cell(s) disagree with the matrix:\n{}\n\nWhat the registry does:\n\n{seen}",
            failures.len(),
            failures.join("\n")
        );
    }
}

/// spec/http-api.md shows the matrix, between its markers.
#[test]
fn spec_shows_the_matrix() {
    let (begin, end) = ("<!-- access-matrix:begin -->", "<!-- access-matrix:end -->");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("spec/http-api.md");
    let spec = std::fs::read_to_string(&path).unwrap();
    let expected = expected_markdown();
    let shown = spec
        .split_once(begin)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(table, _)| table.trim());
    match shown {
        Some(table) if table == expected.trim() => {}
        Some(_) => panic!(
            "the access matrix in {} differs from tests/access.rs; paste this between the markers:\n\n{expected}",
            path.display()
        ),
        None => panic!(
            "{} has no {begin} ... {end}; add them around this table:\n\n{begin}\n{expected}{end}",
            path.display()
        ),
    }
}
