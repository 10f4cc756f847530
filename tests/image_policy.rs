//! Rules over what an image is, end to end: images built by podman (its
//! own configuration writer: `podman import --change USER=... --change
//! LABEL ...`) pushed to the real `vouch serve` with podman, under a policy
//! that forbids root and requires a source label. A root image is denied
//! naming the rule and the fact, to podman and to skopeo; the compliant
//! image is pulled back.

mod common;

use std::process::{Command, Stdio};

#[test]
fn podman_images_are_held_to_rules_over_their_configuration() {
    if !common::have("podman") || !common::have("skopeo") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::write(
        w.join("policy.toml"),
        "version = 1\nname = \"no root\"\n[[rule]]\nrepositories = \"**\"\nforbid_root = true\n\
         required_labels = [\"org.opencontainers.image.source\"]\nmax_age = \"7d\"\n",
    )
    .unwrap();
    let policy = w.join("policy.toml");
    let (server, addr) = common::start_server(&w.join("data"), &["--policy", policy.to_str().unwrap()], Stdio::null());
    let _server = common::KillOnDrop(server);
    // A one-file root filesystem, as a tar podman imports.
    std::fs::create_dir(w.join("rootfs")).unwrap();
    std::fs::write(w.join("rootfs/hello"), "hello from an image podman built\n").unwrap();
    let (ok, out) = common::run(
        Command::new("tar")
            .arg("-C")
            .arg(w.join("rootfs"))
            .arg("-cf")
            .arg(w.join("rootfs.tar"))
            .arg("."),
    );
    assert!(ok, "{out}");
    let tar = w.join("rootfs.tar");
    let podman = |args: &[&str]| common::podman(w, args);
    let label = "LABEL org.opencontainers.image.source=https://example.com/app";
    for (name, changes, denial) in [
        ("team/app:v1", vec!["USER=1000:1000", label], None),
        (
            "team/app:root",
            vec![label],
            Some("runs as root (no user set, so root)"),
        ),
        (
            "team/app:unlabelled",
            vec!["USER=app"],
            Some("missing required label(s): org.opencontainers.image.source"),
        ),
    ] {
        let local = format!("localhost/{name}");
        let mut args = vec!["import"];
        for c in &changes {
            args.extend(["--change", c]);
        }
        let tar = tar.to_str().unwrap();
        args.extend([tar, &local]);
        let (ok, _, err) = podman(&args);
        assert!(ok, "podman import {name}: {err}");
        let remote = format!("{addr}/{name}");
        let (ok, _, err) = podman(&["push", "--tls-verify=false", &local, &remote]);
        assert!(ok, "podman push {name}: {err}");
        assert!(podman(&["rmi", "--force", &local]).0);
        let (ok, _, err) = podman(&["pull", "--tls-verify=false", &remote]);
        match denial {
            None => assert!(ok, "podman pull {name}: {err}"),
            Some(reason) => {
                assert!(!ok && err.contains("denied"), "podman pull {name}: {err}");
                let (ok, out) = common::run(Command::new("skopeo").args([
                    "inspect",
                    "--tls-verify=false",
                    &format!("docker://{remote}"),
                ]));
                assert!(!ok && out.contains(reason), "skopeo inspect {name}: {out}");
            }
        }
    }
}

/// `--reevaluate-every` with a `max_age`: an image admitted when fresh is
/// taken back once it is older than the bound, with a logged decision,
/// without any push or restart.
#[test]
fn scheduled_reevaluation_takes_back_an_image_past_its_max_age() {
    if !common::have("podman") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    std::fs::write(
        w.join("policy.toml"),
        "version = 1\nname = \"fresh\"\n[[rule]]\nrepositories = \"**\"\nmax_age = \"20s\"\n",
    )
    .unwrap();
    let policy = w.join("policy.toml");
    let (server, addr) = common::start_server(
        &w.join("data"),
        &["--policy", policy.to_str().unwrap(), "--reevaluate-every", "1s"],
        Stdio::null(),
    );
    let _server = common::KillOnDrop(server);
    std::fs::create_dir(w.join("rootfs")).unwrap();
    std::fs::write(w.join("rootfs/hello"), "fresh\n").unwrap();
    let (ok, out) = common::run(
        Command::new("tar")
            .arg("-C")
            .arg(w.join("rootfs"))
            .arg("-cf")
            .arg(w.join("rootfs.tar"))
            .arg("."),
    );
    assert!(ok, "{out}");
    let podman = |args: &[&str]| common::podman(w, args);
    let (ok, _, err) = podman(&[
        "import",
        w.join("rootfs.tar").to_str().unwrap(),
        "localhost/fresh/app:v1",
    ]);
    assert!(ok, "podman import: {err}");
    let remote = format!("{addr}/fresh/app:v1");
    let (ok, _, err) = podman(&["push", "--tls-verify=false", "localhost/fresh/app:v1", &remote]);
    assert!(ok, "podman push: {err}");
    let accept = (
        "Accept",
        "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json",
    );
    let get = || common::http(&addr, "GET", "/v2/fresh/app/manifests/v1", &[accept], &[]).unwrap();
    assert_eq!(get().status, 200, "admitted while fresh");
    let start = std::time::Instant::now();
    let denied = loop {
        let resp = get();
        if resp.status == 403 {
            break String::from_utf8_lossy(&resp.body).into_owned();
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(90), "never taken back");
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(denied.contains("the rule's max_age is 20s"), "{denied}");
    // The revocation is a logged decision, named in the denial, and the
    // image's state says so.
    assert!(denied.contains("(ledger entry "), "{denied}");
    let head = common::http(&addr, "HEAD", "/v2/fresh/app/manifests/v1", &[accept], &[]).unwrap();
    assert_eq!(head.header("vouch-admission-state"), Some("denied"));
}
