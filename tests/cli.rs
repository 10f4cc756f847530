//! Black-box tests of the `vouch` binary's ledger commands, as an operator
//! runs them: a fresh data directory, the key and verifier key files, and the
//! errors for bad input.

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
    let out = vouch(&[
        "ledger",
        "init",
        "--data",
        data,
        "--origin",
        "cli.test/vouch",
    ]);
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
    assert!(
        s.contains("tree size:    0") && s.contains("— cli.test/vouch "),
        "{s}"
    );

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
    assert!(
        !dir.path().join("db").exists(),
        "status must not create a ledger"
    );

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
    std::fs::set_permissions(
        dir.path().join("ledger.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = vouch(&["ledger", "status", "--data", data]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("chmod 600"),
        "{}",
        text(&out.stderr)
    );
}
