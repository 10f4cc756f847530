//! Black-box tests of the `vouch` binary's ledger commands, as an operator
//! runs them: a fresh data directory, the key and verifier key files, and the
//! errors for bad input.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Output};

fn vouch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(args)
        .env_remove("VOUCH_DATA")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn init_creates_a_private_key_and_prints_the_verifier_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let out = vouch(&["ledger", "init", "--data", data, "--origin", "cli.test/vouch"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let vkey = text(&out.stdout).trim().to_owned();
    assert!(vkey.starts_with("cli.test/vouch+"), "{vkey}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data/ledger.vkey"))
            .unwrap()
            .trim(),
        vkey
    );
    let mode = std::fs::metadata(dir.path().join("data/ledger.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // The verifier key parses with independent code.
    signed_note::StandardVerifier::new(&vkey).expect("a standard vkey");

    // A second init keeps the key.
    let again = vouch(&["ledger", "init", "--data", data]);
    assert_eq!(text(&again.stdout).trim(), vkey);

    let status = vouch(&["ledger", "status", "--data", data]);
    assert!(status.status.success());
    let s = text(&status.stdout);
    assert!(s.contains("tree size:    0") && s.contains("— cli.test/vouch "), "{s}");

    let fsck = vouch(&["ledger", "fsck", "--data", data]);
    assert!(fsck.status.success(), "{}", text(&fsck.stderr));
    assert!(text(&fsck.stdout).starts_with("fsck: ok: 0 entries"));
}

#[test]
fn commands_on_a_missing_ledger_or_bad_input_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let out = vouch(&["ledger", "status", "--data", data]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("run `vouch ledger init"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("db").exists(), "status must not create a ledger");

    assert!(vouch(&["ledger", "init", "--data", data]).status.success());
    let out = vouch(&["ledger", "tile", "tile/0/0001", "--data", data]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not a tlog-tiles path"),
        "{}",
        text(&out.stderr)
    );
    let out = vouch(&["ledger", "entry", "0", "--data", data]);
    assert!(
        text(&out.stderr).contains("no entry 0: the ledger holds 0 entries"),
        "{}",
        text(&out.stderr)
    );

    // A key readable by others is refused, naming the fix.
    std::fs::set_permissions(dir.path().join("ledger.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = vouch(&["ledger", "status", "--data", data]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("chmod 600"), "{}", text(&out.stderr));
}

/// Fills a data directory's ledger through the library, as the registry
/// will, with real decision entries.
fn ledger_with_entries(data: &std::path::Path, n: u64) {
    use vouch_ledger::entry::*;
    let (signer, _) = vouch_ledger::store::load_or_create_signer(&data.join("ledger.key"), "cli.test/vouch").unwrap();
    std::fs::write(data.join("ledger.vkey"), format!("{}\n", signer.verifier())).unwrap();
    let ledger = vouch_ledger::store::Ledger::open(&data.join("db"), signer).unwrap();
    let digest = |i: u64| Digest::parse(&format!("sha256:{:064x}", i)).unwrap();
    for i in 0..n {
        let e = Entry::Decision(DecisionEntry {
            repo: format!("team/app{}", i % 7),
            digest: digest(i),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            verdict: if i % 3 == 0 { Verdict::Deny } else { Verdict::Admit },
            reasons: vec![],
            evidence: vec![],
            signers: vec![],
            policy: digest(0),
            policy_index: 0,
            time: 1_764_000_000 + i,
        });
        ledger.append_blocking(e.encode().unwrap()).unwrap();
    }
}

#[test]
fn export_writes_a_tlog_tiles_mirror_that_fsck_checks_with_only_the_log_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mirror = dir.path().join("mirror");
    ledger_with_entries(&data, 1000);
    let (d, m) = (data.to_str().unwrap(), mirror.to_str().unwrap());
    let vkey = data.join("ledger.vkey");

    let out = vouch(&["ledger", "entry", "5", "--data", d]);
    assert!(text(&out.stdout).contains("team/app5"), "{}", text(&out.stdout));

    let out = vouch(&["ledger", "export", "--data", d, "--to", m]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for f in [
        "checkpoint",
        "tile/0/000",
        "tile/0/003.p/232",
        "tile/1/000.p/3",
        "tile/entries/003.p/232",
    ] {
        assert!(mirror.join(f).is_file(), "{f} missing from the mirror");
    }
    let fsck = |key: &str| vouch(&["ledger", "fsck", "--mirror", m, "--log-key", key]);
    let out = fsck(vkey.to_str().unwrap());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("1000 entries"), "{}", text(&out.stdout));

    // A changed hash in a tile is found and named.
    let tile = mirror.join("tile/0/001");
    let good = std::fs::read(&tile).unwrap();
    let mut bad = good.clone();
    bad[100] ^= 1;
    std::fs::write(&tile, &bad).unwrap();
    let out = fsck(vkey.to_str().unwrap());
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("tile tile/0/001 differs from the entries at hash 3"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&tile, &good).unwrap();

    // A changed entry breaks its tile.
    let bundle = mirror.join("tile/entries/002");
    let mut b = std::fs::read(&bundle).unwrap();
    let last = b.len() - 1;
    b[last] ^= 1;
    std::fs::write(&bundle, &b).unwrap();
    let out = fsck(vkey.to_str().unwrap());
    assert!(
        text(&out.stderr).contains("tile/0/002 differs"),
        "{}",
        text(&out.stderr)
    );

    // Another key of the same name is refused before any tile is read; a
    // malformed key is named as such.
    let other =
        vouch_ledger::NoteSigner::new("cli.test/vouch", ed25519_dalek::SigningKey::from_bytes(&[3; 32])).unwrap();
    let out = fsck(&other.verifier().to_string());
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is not signed by the key cli.test/vouch+"),
        "{}",
        text(&out.stderr)
    );
    let out = fsck("cli.test/vouch+00000000+AbAvT1RKSrzyXzrlIU+hLH2rIaC3S+ls/fBRX6qJnz95");
    assert!(
        text(&out.stderr).contains("key id does not match the key"),
        "{}",
        text(&out.stderr)
    );

    // Re-exporting keeps the full tiles and rewrites the rest.
    let out = vouch(&["ledger", "export", "--data", d, "--to", m]);
    assert!(
        text(&out.stdout).contains("full tiles already present"),
        "{}",
        text(&out.stdout)
    );
    let out = fsck(vkey.to_str().unwrap());
    assert!(!out.status.success(), "the corrupted bundle 002 is full and was kept");
}

#[test]
fn serve_reads_a_toml_config_and_names_bad_keys_with_their_line() {
    use std::io::{BufRead as _, Read as _};
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "listen = \"127.0.0.1:0\"\nmax_blob_bytes = 10\nlisten_adress = \"x\"\n",
    )
    .unwrap();
    let out = vouch(&[
        "serve",
        "--config",
        bad.to_str().unwrap(),
        "--data",
        dir.path().join("d").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("line 3, column 1") && err.contains("unknown field `listen_adress`"),
        "{err}"
    );

    let users = dir.path().join("users");
    vouch::registry::auth::add_user(&users, "ops", "pw").unwrap();
    let good = dir.path().join("vouch.toml");
    std::fs::write(
        &good,
        format!(
            "listen = \"127.0.0.1:0\"\nusers = \"{}\"\nanonymous_pull = false\nmax_requests_per_client = 4\n",
            users.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args([
            "serve",
            "--config",
            good.to_str().unwrap(),
            "--data",
            dir.path().join("d").to_str().unwrap(),
        ])
        .env_remove("VOUCH_DATA")
        .env_remove("VOUCH_LISTEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = lines.find_map(|l| l.ok()?.strip_prefix("listening on ").map(str::to_owned));
    child.kill().unwrap();
    child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(
        listening.is_some_and(|a| a.starts_with("127.0.0.1:") && !a.ends_with(":0")),
        "{err}"
    );
    assert!(
        err.contains("authentication: 1 user(s); anonymous pull refused"),
        "{err}"
    );
}

#[test]
fn init_on_an_existing_log_keeps_its_origin_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let first = vouch(&["ledger", "init", "--data", data, "--origin", "first.example/log"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let again = vouch(&["ledger", "init", "--data", data, "--origin", "second.example/log"]);
    assert!(!again.status.success());
    let err = text(&again.stderr);
    assert!(err.contains("already has the origin \"first.example/log\""), "{err}");
    let same = vouch(&["ledger", "init", "--data", data, "--origin", "first.example/log"]);
    assert!(same.status.success(), "{}", text(&same.stderr));
}

#[test]
fn ledger_commands_work_while_the_server_runs_and_print_readable_entries() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut server, _) = common::start_server(&data, &[], std::process::Stdio::null());
    let data = data.to_str().unwrap();
    let status = vouch(&["ledger", "status", "--data", data]);
    assert!(status.status.success(), "{}", text(&status.stderr));
    assert!(
        text(&status.stdout).contains("tree size:    1"),
        "{}",
        text(&status.stdout)
    );
    // Entry 0 is the policy the server put in force.
    let entry = vouch(&["ledger", "entry", "0", "--data", data]);
    let shown = text(&entry.stdout);
    assert!(
        entry.status.success() && shown.contains("kind: policy") && shown.contains("name: open"),
        "{shown}"
    );
    let json = vouch(&["ledger", "entry", "0", "--data", data, "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!((v["kind"].as_str(), v["index"].as_u64()), (Some("policy"), Some(0)));
    // A tile that is not full yet is named with its width; the error says so.
    let full = vouch(&["ledger", "tile", "tile/0/000", "--data", data]);
    assert!(
        !full.status.success() && text(&full.stderr).contains("tile/0/000.p/1"),
        "{}",
        text(&full.stderr)
    );
    let partial = vouch(&["ledger", "tile", "tile/0/000.p/1", "--data", data]);
    assert!(partial.status.success() && partial.stdout.len() == 32);
    server.kill().unwrap();
    server.wait().unwrap();
}
