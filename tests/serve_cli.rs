//! `vouch serve` as an operator starts it: everything given is checked
//! before anything is created; the data directory and the keys are
//! private; passwords never cross the network in clear by default;
//! metrics follow the rights of a pull or move to a listener of their own;
//! a running server reads its users and access files again on SIGHUP.

mod common;

use common::{http, run};
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};

fn vouch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vouch"));
    c.env_remove("VOUCH_DATA")
        .env_remove("VOUCH_USERS")
        .env_remove("VOUCH_CONFIG");
    c
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_bad_flag_or_file_leaves_nothing_behind() {
    let w = tempfile::tempdir().unwrap();
    let data = w.path().join("data");
    std::fs::write(
        w.path().join("bad.toml"),
        "version = 1\nname = \"x\"\n[[rule]]\nrepositories = 3\n",
    )
    .unwrap();
    let (ok, out) = run(vouch()
        .args(["serve", "--listen", "127.0.0.1:0", "--policy"])
        .arg(w.path().join("bad.toml"))
        .arg("--data")
        .arg(&data));
    assert!(!ok && out.contains("bad.toml") && out.contains("line 4"), "{out}");
    assert!(!data.exists(), "a refused start created {}", data.display());
    // Passwords over plain HTTP on a non-loopback address: refused.
    std::fs::write(
        w.path().join("users"),
        "alice:$2y$04$7Ez6G2bXlQ3F9c7y9yH0U.m3VkLb1YQk6w5Y7r1y1Z2Q3R4S5T6U7\n",
    )
    .unwrap();
    let (ok, out) = run(vouch()
        .args(["serve", "--listen", "0.0.0.0:0", "--users"])
        .arg(w.path().join("users"))
        .arg("--data")
        .arg(&data));
    assert!(
        !ok && out.contains("plain HTTP") && out.contains("--allow-insecure-auth"),
        "{out}"
    );
    assert!(!data.exists());
}

#[test]
fn the_data_directory_and_keys_are_private() {
    let w = tempfile::tempdir().unwrap();
    let data = w.path().join("data");
    let (mut server, _) = common::start_server(&data, &[], Stdio::null());
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(mode(&data), 0o700);
    for sub in ["blobs", "uploads", "db"] {
        assert_eq!(mode(&data.join(sub)), 0o700, "{sub}");
    }
    for key in ["ledger.key", "admission.key"] {
        assert_eq!(mode(&data.join(key)) & 0o077, 0, "{key}");
    }
    // A readable admission key is refused, as the ledger key is.
    std::fs::set_permissions(data.join("admission.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, out) = run(vouch()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--policy",
            common::OPEN_POLICY,
            "--data",
        ])
        .arg(&data));
    assert!(
        !ok && out.contains("admission.key") && out.contains("chmod 600"),
        "{out}"
    );
}

#[test]
fn metrics_need_pull_rights_or_a_listener_of_their_own() {
    let w = tempfile::tempdir().unwrap();
    let users = w.path().join("users");
    vouch::registry::auth::add_user_with_cost(&users, "alice", "pw", 4).unwrap();
    let (mut server, addr) = common::start_server(
        &w.path().join("d1"),
        &["--users", users.to_str().unwrap(), "--no-anonymous-pull"],
        Stdio::null(),
    );
    assert_eq!(http(&addr, "GET", "/metrics", &[], &[]).unwrap().status, 401);
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "alice:pw")
    );
    let m = http(&addr, "GET", "/metrics", &[("Authorization", &auth)], &[]).unwrap();
    assert_eq!(m.status, 200);
    server.kill().unwrap();
    server.wait().unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let (mut server, addr) = common::start_server(&w.path().join("d2"), &["--metrics-listen", &metrics], Stdio::null());
    assert_eq!(http(&addr, "GET", "/metrics", &[], &[]).unwrap().status, 404);
    let m = http(&metrics, "GET", "/metrics", &[], &[]).unwrap();
    assert!(m.status == 200 && String::from_utf8_lossy(&m.body).contains("vouch_ledger_entries"));
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn users_and_grants_are_read_again_on_sighup() {
    let w = tempfile::tempdir().unwrap();
    let (users, access) = (w.path().join("users"), w.path().join("access.toml"));
    vouch::registry::auth::add_user_with_cost(&users, "alice", "pw", 4).unwrap();
    let (ok, out) = run(vouch()
        .args(["user", "grant", "--access"])
        .arg(&access)
        .args(["alice", "team/**", "read"]));
    assert!(ok, "{out}");
    let (mut server, addr) = common::start_server(
        &w.path().join("data"),
        &["--users", users.to_str().unwrap(), "--access", access.to_str().unwrap()],
        Stdio::null(),
    );
    let basic = |u: &str| {
        format!(
            "Basic {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{u}:pw"))
        )
    };
    let push = |who: &str| {
        let d = vouch::registry::digest::sha256_of(b"x").to_string();
        http(
            &addr,
            "POST",
            &format!("/v2/team/app/blobs/uploads/?digest={d}"),
            &[("Authorization", &basic(who))],
            b"x",
        )
        .unwrap()
        .status
    };
    assert_eq!(push("alice"), 403, "alice may only read");
    assert_eq!(push("bob"), 401, "bob does not exist yet");
    vouch::registry::auth::add_user_with_cost(&users, "bob", "pw", 4).unwrap();
    let (ok, out) = run(vouch()
        .args(["user", "grant", "--access"])
        .arg(&access)
        .args(["bob", "team/**", "read,push"]));
    assert!(ok, "{out}");
    let hup = Command::new("kill")
        .args(["-HUP", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let mut status = 0;
    for _ in 0..50 {
        status = push("bob");
        if status == 201 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(status, 201, "bob may push after the reload");
    let (ok, out) = run(vouch().args(["user", "list", "--access"]).arg(&access));
    assert!(ok && out.contains("bob\tteam/**\tread,push"), "{out}");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn verify_and_sign_take_credentials_and_say_when_they_are_needed() {
    let w = tempfile::tempdir().unwrap();
    let users = w.path().join("users");
    vouch::registry::auth::add_user_with_cost(&users, "alice", "pw", 4).unwrap();
    let data = w.path().join("data");
    let (mut server, addr) = common::start_server(
        &data,
        &["--users", users.to_str().unwrap(), "--no-anonymous-pull"],
        Stdio::null(),
    );
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "alice:pw")
    );
    let h = [("Authorization", auth.as_str())];
    let push = |bytes: &[u8]| {
        let d = vouch::registry::digest::sha256_of(bytes).to_string();
        let r = http(
            &addr,
            "POST",
            &format!("/v2/team/app/blobs/uploads/?digest={d}"),
            &h,
            bytes,
        )
        .unwrap();
        assert_eq!(r.status, 201);
        d
    };
    let (c, l) = (push(b"{}"), push(b"a layer"));
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{l}","size":7}}]}}"#
    );
    let ct = ("Content-Type", "application/vnd.oci.image.manifest.v1+json");
    let put = http(&addr, "PUT", "/v2/team/app/manifests/v1", &[h[0], ct], m.as_bytes()).unwrap();
    assert_eq!(put.status, 201);
    let verify = |creds: Option<&str>| {
        let mut c = vouch();
        c.args(["verify", &format!("{addr}/team/app:v1"), "--log-key"])
            .arg(data.join("ledger.vkey"))
            .env_remove("VOUCH_CREDS");
        if let Some(creds) = creds {
            c.env("VOUCH_CREDS", creds);
        }
        run(&mut c)
    };
    let (ok, out) = verify(None);
    assert!(!ok && out.contains("--creds USER:PASSWORD"), "{out}");
    let (ok, out) = verify(Some("alice:pw"));
    assert!(ok && out.contains("verified: team/app@"), "{out}");
    // vouch sign: the same flag, the same hint.
    let (ok, out) = run(vouch().args(["keygen", "--out"]).arg(w.path().join("k")));
    assert!(ok, "{out}");
    let (ok, out) = run(vouch()
        .args(["sign", &format!("{addr}/team/app:v1"), "--key"])
        .arg(w.path().join("k.key"))
        .env_remove("VOUCH_CREDS"));
    assert!(!ok && out.contains("--creds USER:PASSWORD"), "{out}");
    let (ok, out) = run(vouch()
        .args(["sign", &format!("{addr}/team/app:v1"), "--key"])
        .arg(w.path().join("k.key"))
        .args(["--creds", "alice:pw"]));
    assert!(ok && out.contains("signed"), "{out}");
    server.kill().unwrap();
    server.wait().unwrap();
}
