//! The README's quick start, run as written: every command block of its
//! "Quick start" section, line by line and in order, in a fresh directory,
//! with `cargo run --release --` standing for the `vouch` binary under
//! test. So the README cannot drift from what vouch does.
//!
//! How lines are run: a `serve` line stops the previous server and starts
//! its own in the background (on a free port, which stands for the
//! README's 127.0.0.1:5000), and waits for `listening on`; every other line
//! runs in bash and must succeed, unless its comment says `# denied`, when
//! it must fail. Paths under `spec/` and `tools/` are the repository's.
//! `.ci/run` (the test command itself) and `apt-get` are skipped (CI has
//! installed the packages). podman runs with the vfs driver in the test's
//! own storage.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The command blocks (four-space indented) of the README's quick start.
fn quick_start_blocks() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(Path::new(REPO).join("README.md")).unwrap();
    let start = text.find("## Quick start").expect("a Quick start section");
    let end = start
        + text[start..]
            .find("\n## Map of the repository")
            .expect("the section after it");
    let mut blocks: Vec<Vec<String>> = Vec::new();
    let mut previous_blank = true;
    let mut current: Option<Vec<String>> = None;
    for line in text[start..end].lines() {
        match line.strip_prefix("    ") {
            Some(code) if previous_blank || current.is_some() => {
                current.get_or_insert_with(Vec::new).push(code.to_owned());
            }
            _ => {
                if let Some(block) = current.take() {
                    blocks.push(block);
                }
            }
        }
        previous_blank = line.trim().is_empty();
    }
    blocks.extend(current);
    blocks
}

/// A README line made runnable here: the binary for `cargo run`, the test's
/// port for 5000, the repository's `spec/` and `tools/`; with whether it is
/// expected to fail (`# denied`). `None` for lines not to run.
fn runnable(line: &str, vouch: &str, port: u16) -> Option<(String, bool)> {
    let (command, comment) = match line.find("   #") {
        Some(i) => (line[..i].trim_end(), line[i..].trim_start_matches([' ', '#']).trim()),
        None => (line.trim_end(), ""),
    };
    let command = match command.split_once(" && ") {
        Some((first, rest)) if first.starts_with("apt-get ") => rest,
        _ => command,
    };
    if command.starts_with(".ci/run") || command.starts_with("apt-get ") || command.is_empty() {
        return None;
    }
    let command = command
        .replace("cargo run --release --", vouch)
        .replace("127.0.0.1:5000", &format!("127.0.0.1:{port}"))
        .replace(" spec/", &format!(" {REPO}/spec/"))
        .replace("tools/", &format!("{REPO}/tools/"));
    Some((command, comment.starts_with("denied")))
}

/// Starts a `serve` line in the background; returns once it listens.
fn serve(command: &str, port: u16, dir: &Path) -> Child {
    let mut child = Command::new("bash")
        .args(["-c", &format!("exec {command} --listen 127.0.0.1:{port}")])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.starts_with("listening on"))),
        "`{command}` exited before listening"
    );
    child
}

fn stop(server: &mut Option<Child>) {
    if let Some(mut child) = server.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[test]
fn every_command_of_the_quick_start_runs_as_written() {
    for tool in ["skopeo", "podman", "curl"] {
        if !common::have(tool) {
            return;
        }
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    // podman as the tests run it: vfs storage of its own, no cgroups or events.
    std::fs::write(
        dir.join("storage.conf"),
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/podman-root\"\nrunroot = \"{0}/podman-run\"\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("containers.conf"),
        "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"none\"\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let vouch = env!("CARGO_BIN_EXE_vouch");
    let blocks = quick_start_blocks();
    assert!(blocks.len() >= 8, "the quick start has its command blocks: {blocks:?}");
    let mut server: Option<Child> = None;
    let mut ran = 0;
    for block in &blocks {
        for line in block {
            let Some((command, fails)) = runnable(line, vouch, port) else {
                continue;
            };
            ran += 1;
            if command.contains(&format!("{vouch} serve")) {
                stop(&mut server);
                server = Some(serve(&command, port, dir));
                continue;
            }
            let out = Command::new("bash")
                .args(["-c", &command])
                .current_dir(dir)
                .env("CONTAINERS_STORAGE_CONF", dir.join("storage.conf"))
                .env("CONTAINERS_CONF", dir.join("containers.conf"))
                .env_remove("VOUCH_DATA")
                .env_remove("VOUCH_CREDS")
                .output()
                .unwrap();
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() == fails {
                stop(&mut server);
                panic!(
                    "README line `{line}` {}: {said}",
                    if fails {
                        "succeeded, but the README says it is denied"
                    } else {
                        "failed"
                    }
                );
            }
        }
    }
    stop(&mut server);
    assert!(ran >= 25, "only {ran} commands ran");
}
