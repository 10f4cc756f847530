//! Helpers for the witness and monitor tests: real `vouch witness`
//! processes, the independent Python witness (tests/witness_peer.py), and
//! logs made in the test with their own key (to play a misbehaving log).

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vouch_ledger::tree::{consistency_proof, MemoryTree};
use vouch_ledger::witness::AddCheckpoint;
use vouch_ledger::{Checkpoint, NoteSigner};

/// A running witness: the process, its address and its cosigner key.
pub struct RunningWitness {
    pub child: Child,
    pub addr: String,
    pub vkey: String,
}

impl Drop for RunningWitness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `vouch witness` with data in `dir`, trusting `logs` (vkeys).
pub fn start_vouch_witness(dir: &Path, name: &str, logs: &[String], extra: &[&str]) -> RunningWitness {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vouch"));
    cmd.args(["witness", "--listen", "127.0.0.1:0", "--name", name, "--data"])
        .arg(dir)
        .args(extra);
    for l in logs {
        cmd.args(["--log", l]);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let vkey = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .expect("vouch witness printed its key")
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = lines
        .find_map(|l| l.ok()?.strip_prefix("listening on ").map(str::to_owned))
        .expect("vouch witness exited before listening");
    // Keep draining stderr so the witness never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    RunningWitness { child, addr, vkey }
}

/// Starts the independent Python witness with a key from `seed`.
pub fn start_python_witness(dir: &Path, name: &str, seed: u8, logs: &[String]) -> RunningWitness {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/witness_peer.py");
    let seed_hex = hex::encode([seed; 32]);
    let out = Command::new("python3")
        .args([script, "vkey", "--name", name, "--seed-hex", &seed_hex])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let vkey = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let port_file = dir.join("port");
    let mut cmd = Command::new("python3");
    cmd.args([script, "serve", "--name", name, "--seed-hex", &seed_hex, "--port-file"])
        .arg(&port_file)
        .arg("--state")
        .arg(dir.join("state.json"));
    for l in logs {
        cmd.args(["--log", l]);
    }
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    let port = loop {
        if let Ok(p) = std::fs::read_to_string(&port_file) {
            break p.trim().to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "python witness did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    RunningWitness {
        child,
        addr: format!("127.0.0.1:{port}"),
        vkey,
    }
}

/// A log made by the test: its key and a tree it can extend or fork.
pub struct TestLog {
    pub signer: NoteSigner,
    pub tree: MemoryTree,
}

impl TestLog {
    /// A log named `origin` with `entries` entries tagged by `flavour` (two
    /// flavours of one log are two histories that share nothing).
    pub fn new(origin: &str, seed: u8, entries: u64, flavour: &str) -> Self {
        let signer = NoteSigner::new(origin, ed25519_dalek::SigningKey::from_bytes(&[seed; 32])).unwrap();
        let mut tree = MemoryTree::new();
        for i in 0..entries {
            tree.push(format!("{flavour} {i}").as_bytes());
        }
        Self { signer, tree }
    }

    /// The log's vkey.
    pub fn vkey(&self) -> String {
        self.signer.verifier().to_string()
    }

    /// A signed checkpoint of the first `size` entries.
    pub fn checkpoint(&self, size: u64) -> String {
        let c = Checkpoint {
            origin: self.signer.verifier().name().to_owned(),
            size,
            root: self.tree.root_at(size),
            extensions: vec![],
        };
        self.signer.sign(&c.to_text())
    }

    /// An add-checkpoint request from `old` to `size`, with the proof this
    /// log's tree gives.
    pub fn request(&self, old: u64, size: u64) -> Vec<u8> {
        let proof = if old == 0 || old >= size {
            vec![]
        } else {
            consistency_proof(&self.tree, old, size).unwrap()
        };
        AddCheckpoint {
            old,
            proof,
            checkpoint: self.checkpoint(size).into_bytes(),
        }
        .to_bytes()
    }
}

/// POSTs an add-checkpoint body; returns status, content type and body.
pub fn add_checkpoint(addr: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let r = super::http(addr, "POST", "/add-checkpoint", &[], body).unwrap();
    let ct = r.header("content-type").unwrap_or("").to_owned();
    (r.status, ct, r.body)
}

/// Pushes a small image (its own config and layer, varied by `salt`) to
/// `<repo>:<tag>` through the HTTP API; returns the manifest digest.
pub fn push_tiny_image(addr: &str, repo: &str, tag: &str, salt: &str) -> String {
    push_tiny_image_sized(addr, repo, tag, salt).0
}

/// [`push_tiny_image`], also returning the manifest's size (what a signer
/// that cannot read a quarantined manifest is told).
pub fn push_tiny_image_sized(addr: &str, repo: &str, tag: &str, salt: &str) -> (String, usize) {
    let blob = |bytes: &[u8]| {
        let d = format!("sha256:{}", super::sha256_hex(bytes));
        let path = format!("/v2/{repo}/blobs/uploads/?digest={d}");
        let r = super::http(addr, "POST", &path, &[], bytes).unwrap();
        assert_eq!(r.status, 201, "blob upload: {}", String::from_utf8_lossy(&r.body));
        (d, bytes.len())
    };
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"salt":"{salt}"}}}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
    );
    let (config_digest, config_size) = blob(config.as_bytes());
    let (layer_digest, layer_size) = blob(format!("layer {salt}").as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{layer_size}}}]}}"#
    );
    (
        super::put_manifest(addr, repo, tag, manifest.as_bytes()),
        manifest.len(),
    )
}

/// The served checkpoint, waiting (up to 20 s) until it covers `size`
/// entries and carries `cosignatures` signature lines beyond the log's.
pub fn wait_for_cosigned(addr: &str, size: u64, cosignatures: usize) -> String {
    let start = Instant::now();
    loop {
        let r = super::http(addr, "GET", "/ledger/checkpoint", &[], &[]).unwrap();
        // 503 until a first checkpoint is cosigned.
        let note = String::from_utf8(r.body).unwrap();
        if r.status == 200 {
            let n: u64 = note.lines().nth(1).unwrap().parse().unwrap();
            let sigs = note.lines().filter(|l| l.starts_with('\u{2014}')).count();
            if n >= size && sigs > cosignatures {
                return note;
            }
        } else {
            assert_eq!(r.status, 503, "{note}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no checkpoint of size >= {size} with {cosignatures} cosignature(s); last:\n{note}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The ledger's current size (the served checkpoint may lag behind while
/// witnesses cosign): the first entry index that is not there.
pub fn ledger_size(addr: &str) -> u64 {
    let mut size = 0;
    while super::http(addr, "GET", &format!("/ledger/entry/{size}"), &[], &[])
        .unwrap()
        .status
        == 200
    {
        size += 1;
    }
    size
}
