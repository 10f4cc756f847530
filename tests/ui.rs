//! The web pages at /ui/, against the real `vouch serve`: in a real browser
//! (headless Chromium through selenium, tests/ui_browser.py) a user goes
//! from the overview's denials to a denied image's reasons and checks an
//! admitted image's proof (then sees a tampered one fail); over HTTP, the
//! pages need what a pull needs, list only what the caller may read, and
//! page through long lists.

mod common;

use common::witnesses::push_tiny_image;
use std::path::Path;
use std::process::{Command, Stdio};

fn page(addr: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    let r = common::http(addr, "GET", path, &headers, &[]).unwrap();
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

/// A data directory holding, in each repository, one admitted image
/// (pushed under the open policy) and then one denied (pushed after a
/// restart under vouch's default policy, which admits nothing unsigned):
/// their digests, per repository.
fn admitted_then_denied(data: &Path, repos: &[&str]) -> Vec<(String, String)> {
    let (mut open, addr) = common::start_server(data, &[], Stdio::null());
    let admitted: Vec<String> = repos
        .iter()
        .map(|r| push_tiny_image(&addr, r, "v1", &format!("admitted {r}")))
        .collect();
    open.kill().unwrap();
    open.wait().unwrap();
    let (mut strict, addr) = common::start_server_with_defaults(data, Stdio::null());
    let denied = repos
        .iter()
        .map(|r| push_tiny_image(&addr, r, "v2", &format!("denied {r}")));
    let both = admitted.into_iter().zip(denied).collect();
    strict.kill().unwrap();
    strict.wait().unwrap();
    both
}

#[test]
fn in_a_real_browser_denials_lead_to_reasons_and_proofs_verify_then_fail_when_tampered() {
    if !common::have_python_module("selenium") {
        return;
    }
    let chromium = Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists();
    assert!(
        chromium || std::env::var("CI").is_err(),
        "chromium and chromium-driver are required in CI (.ci/run installs them)"
    );
    if !chromium {
        eprintln!("SKIPPED: chromium or chromedriver is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (admitted, denied) = admitted_then_denied(&data, &["team/app"]).remove(0);
    // With a witness, so that the page's check covers its cosignature too.
    let log = std::fs::read_to_string(data.join("ledger.vkey")).unwrap();
    let w =
        common::witnesses::start_vouch_witness(&tmp.path().join("w"), "witness.test/ui", &[log.trim().to_owned()], &[]);
    let flag = format!("w=http://{}+{}", w.addr, w.vkey);
    let (mut server, addr) = common::start_server_with_defaults_and(&data, &["--witness", &flag], Stdio::null());
    common::witnesses::wait_for_cosigned(&addr, common::witnesses::ledger_size(&addr), 1);
    let shot = std::env::var("VOUCH_UI_SCREENSHOT").unwrap_or_default();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ui_browser.py");
    let (ok, out) = common::run(Command::new("python3").args([
        script,
        &format!("http://{addr}"),
        "team/app",
        &denied,
        &admitted,
        &shot,
    ]));
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains("browser: Verified:") && out.contains("browser, tampered: FAILED"),
        "{out}"
    );
}

fn add_user(dir: &Path, name: &str, repos: &str) -> String {
    let users = dir.join("users");
    vouch::registry::auth::add_user_with_cost(&users, name, &format!("{name}-pw"), 4).unwrap();
    let (ok, out) = common::run(
        Command::new(env!("CARGO_BIN_EXE_vouch"))
            .args(["user", "grant", "--access"])
            .arg(dir.join("access.toml"))
            .args([name, repos, "read"]),
    );
    assert!(ok, "{out}");
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{name}:{name}-pw"))
    )
}

#[test]
fn pages_need_pull_rights_and_show_only_readable_repositories() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let images = admitted_then_denied(&data, &["team/app", "other/app"]);
    let (team_denied, other_denied) = (&images[0].1, &images[1].1);
    let alice = add_user(tmp.path(), "alice", "team/**");
    let bob = add_user(tmp.path(), "bob", "other/**");
    let users = tmp.path().join("users");
    let access = tmp.path().join("access.toml");
    let (mut server, addr) = common::start_server_with_defaults_and(
        &data,
        &[
            "--users",
            users.to_str().unwrap(),
            "--access",
            access.to_str().unwrap(),
            "--no-anonymous-pull",
        ],
        Stdio::null(),
    );

    // Anonymous: asked to log in, as a pull would be.
    let r = common::http(&addr, "GET", "/ui/", &[], &[]).unwrap();
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some_and(|c| c.starts_with("Basic")));

    // Alice reads team/**: its denial, never other/**'s.
    let (status, body) = page(&addr, "/ui/denials", Some(&alice));
    assert_eq!(status, 200);
    assert!(
        body.contains(&team_denied[..23]) && !body.contains(&other_denied[..23]),
        "{body}"
    );
    let (_, body) = page(&addr, "/ui/repositories", Some(&alice));
    assert!(body.contains("team/app") && !body.contains("other/app"), "{body}");
    // Bob cannot open team/app's pages, and cannot tell them from absent ones.
    let image = format!("/ui/image?repo=team%2Fapp&digest={}", team_denied.replace(':', "%3A"));
    let (status, body) = page(&addr, &image, Some(&bob));
    assert_eq!(status, 404, "{body}");
    let (absent, _) = page(&addr, "/ui/repository?name=team%2Fnothing", Some(&bob));
    assert_eq!(absent, 404);
    let (status, body) = page(&addr, &image, Some(&alice));
    assert_eq!(status, 200);
    assert!(body.contains("denied") && body.contains("no rule of policy"), "{body}");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn long_lists_are_paged_and_policy_history_shows_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    admitted_then_denied(&data, &["many/first"]);
    let (mut server, addr) = common::start_server_with_defaults(&data, Stdio::null());
    for i in 0..55 {
        push_tiny_image(&addr, &format!("many/r{i:02}"), "v1", &format!("n{i}"));
    }
    let (status, body) = page(&addr, "/ui/denials", None);
    assert_eq!(status, 200);
    assert_eq!(body.matches("<tr><td><a href=\"/ui/image").count(), 50, "{body}");
    let next = body
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a link to older denials")
        .replace("&amp;", "&");
    let (_, older) = page(&addr, &next, None);
    assert_eq!(older.matches("<tr><td><a href=\"/ui/image").count(), 6, "{older}");
    assert!(older.contains("many/first"), "the oldest denial is on the second page");

    // Two policies in force in turn: the history shows the second's changes.
    let (_, body) = page(&addr, "/ui/policies", None);
    assert!(body.contains("version 2") && body.contains("version 1"), "{body}");
    assert!(body.contains("<ins>") && body.contains("<del>"), "{body}");
    let (_, body) = page(&addr, "/ui/ledger", None);
    assert!(body.contains("<svg") && body.contains("Admissions (green)"), "{body}");
    server.kill().unwrap();
    server.wait().unwrap();
}
