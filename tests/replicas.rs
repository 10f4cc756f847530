//! Several `vouch serve` replicas sharing one bucket (a real SeaweedFS) and
//! one database (a real PostgreSQL 15): any replica takes pushes and serves
//! pulls, proofs and admission bundles of what the others admitted; a
//! replica killed with SIGKILL during a push storm through both loses no
//! acknowledged push and rejoins when restarted; a replica paused with
//! SIGSTOP mid-storm and resumed never publishes a checkpoint that
//! contradicts another's. `vouch audit` proves across replicas and restarts
//! that the one log only grew. A tag pushed through both at once is logged
//! as one chain of moves; reads go on through both while one of two
//! SeaweedFS volume servers is killed.

mod common;

use common::postgres::PostgresServer;
use common::seaweedfs::SeaweedFs;
use common::{http, KillOnDrop};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// One registry: its bucket prefix, database and first data directory.
struct Registry {
    store: SeaweedFs,
    _pg: PostgresServer,
    storage: String,
    database: String,
    work: tempfile::TempDir,
}

impl Registry {
    fn start() -> Option<Registry> {
        Self::on(SeaweedFs::start()?)
    }

    fn on(store: SeaweedFs) -> Option<Registry> {
        let pg = PostgresServer::start()?;
        Some(Registry {
            storage: store.url("shared"),
            database: pg.database("shared"),
            store,
            _pg: pg,
            work: tempfile::tempdir().unwrap(),
        })
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// A replica on data directory `name`.
    fn serve(&self, name: &str) -> Result<(KillOnDrop, String), String> {
        let args = ["--storage", &self.storage, "--database", &self.database];
        common::try_serve(&self.dir(name), &args, &self.store.env())
    }

    /// A new replica's data directory: the registry's keys, nothing else,
    /// as an operator provisions one.
    fn provision(&self, from: &str, name: &str) {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        let to = self.dir(name);
        std::fs::DirBuilder::new().mode(0o700).create(&to).unwrap();
        for key in ["ledger.key", "admission.key"] {
            std::fs::copy(self.dir(from).join(key), to.join(key)).unwrap();
            std::fs::set_permissions(to.join(key), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

/// Pushes a one-layer image unless a step is refused or the replica is
/// gone: the manifest's digest if the push was acknowledged.
fn try_push(addr: &str, repo: &str, tag: &str, layer: &[u8]) -> Option<String> {
    let blob = |bytes: &[u8]| {
        let d = format!("sha256:{}", common::sha256_hex(bytes));
        let path = format!("/v2/{repo}/blobs/uploads/?digest={d}");
        let r = http(addr, "POST", &path, &[], bytes).ok()?;
        (r.status == 201).then_some(d)
    };
    let (layer_d, config_d) = (blob(layer)?, blob(common::IMAGE_CONFIG)?);
    let manifest = common::one_layer_manifest(&config_d, &layer_d, layer.len());
    let ct = ("Content-Type", "application/vnd.oci.image.manifest.v1+json");
    let path = format!("/v2/{repo}/manifests/{tag}");
    let r = http(addr, "PUT", &path, &[ct], manifest.as_bytes()).ok()?;
    (r.status == 201).then(|| r.header("Docker-Content-Digest").unwrap().to_owned())
}

/// Reads `/ledger/checkpoint` of every address in turn until stopped, and
/// keeps each distinct note seen.
struct Watcher {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(addrs: Vec<String>) -> Watcher {
        let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let (s, n) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for a in &addrs {
                    if let Ok(r) = http(a, "GET", "/ledger/checkpoint", &[], b"") {
                        let note = String::from_utf8_lossy(&r.body).into_owned();
                        let mut n = n.lock().unwrap();
                        if r.status == 200 && !n.contains(&note) {
                            n.push(note);
                        }
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        Watcher {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Every checkpoint seen, checked to be of one tree: for each size one
    /// root (C2SP tlog-checkpoint: origin, size, base64 root).
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        let seen = self.seen.lock().unwrap();
        let mut roots: BTreeMap<u64, &str> = BTreeMap::new();
        for note in seen.iter() {
            let mut lines = note.lines();
            let (_, size, root) = (lines.next(), lines.next().unwrap(), lines.next().unwrap());
            let size: u64 = size.parse().unwrap();
            let before = roots.insert(size, root);
            assert!(
                before.is_none_or(|b| b == root),
                "two checkpoints of size {size}: roots {before:?} and {root}"
            );
        }
        roots.len()
    }
}

/// The manifest `digest` of `repo` reads back through `addr`, admitted,
/// with an admission bundle whose proofs that replica serves.
fn served_admitted(addr: &str, repo: &str, digest: &str) {
    let r = http(addr, "GET", &format!("/v2/{repo}/manifests/{digest}"), &[], b"").unwrap();
    assert_eq!(r.status, 200, "{repo}@{digest}: {}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("Vouch-Admission-State"), Some("admitted"));
    let r = http(addr, "GET", &format!("/v2/{repo}/admission/{digest}"), &[], b"").unwrap();
    assert_eq!(
        r.status,
        200,
        "{repo}@{digest} bundle: {}",
        String::from_utf8_lossy(&r.body)
    );
}

/// Storm pushes: `n` images through each of `addrs` from a thread each,
/// stopping a thread at its first push not acknowledged; the
/// acknowledged ones as (repository, manifest digest).
fn storm(addrs: &[String], n: usize, tag: &str) -> Vec<Vec<(String, String)>> {
    std::thread::scope(|s| {
        let threads: Vec<_> = addrs
            .iter()
            .enumerate()
            .map(|(t, addr)| {
                s.spawn(move || {
                    let mut done = Vec::new();
                    for i in 0..n {
                        let repo = format!("storm/r{t}");
                        let layer = format!("{tag} layer {i} of replica {t}");
                        match try_push(addr, &repo, &format!("{tag}-{i}"), layer.as_bytes()) {
                            Some(d) => done.push((repo, d)),
                            None => break,
                        }
                    }
                    done
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

/// `vouch_ledger_commits_lost_total` from a replica's metrics.
fn commits_lost(addr: &str) -> u64 {
    let r = http(addr, "GET", "/metrics", &[], b"").unwrap();
    let text = String::from_utf8_lossy(&r.body).into_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with("vouch_ledger_commits_lost_total "))
        .unwrap();
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// The checkpoint published under `base`, once it covers the tree
/// `replica` serves now.
fn published_checkpoint(base: &str, replica: &str) -> String {
    let size_of = |note: &str| note.lines().nth(1).and_then(|l| l.parse::<u64>().ok()).unwrap_or(0);
    let served = String::from_utf8(http(replica, "GET", "/ledger/checkpoint", &[], b"").unwrap().body).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let got = ureq::get(&format!("{base}/checkpoint"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok());
        match got {
            Some(note) if size_of(&note) >= size_of(&served) => return note,
            _ if std::time::Instant::now() > deadline => panic!("the bucket's checkpoint did not reach the served one"),
            _ => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}

fn audit(addr: &str, data: &Path, state: &Path) {
    common::audit(addr, data, state);
}

#[test]
fn replicas_share_one_registry_and_survive_a_replica_killed_mid_storm() {
    let Some(reg) = Registry::start() else { return };
    let state = reg.dir("audit.state");
    let (a, addr_a) = reg.serve("a").unwrap();
    let (layer, v1) = common::push_one_layer_image(&addr_a, "team/app", "v1", b"pushed through a");

    // A second replica: the registry's keys and the same bucket and database.
    // Started with another bucket prefix, or none, it is refused, naming
    // the registry's; a directory with another log key is refused too.
    reg.provision("a", "b");
    for storage in [vec!["--storage", &reg.store.url("elsewhere")], vec![]] {
        let args = [storage, vec!["--database", &reg.database]].concat();
        let e = common::try_serve(&reg.dir("b"), &args, &reg.store.env()).unwrap_err();
        assert!(e.contains("keeps its blobs in s3://vouch/shared"), "{e}");
    }
    let e = reg.serve("stranger").unwrap_err();
    assert!(e.contains("the database belongs to another registry"), "{e}");
    let (_b, addr_b) = reg.serve("b").unwrap();
    served_admitted(&addr_b, "team/app", &v1);
    let r = http(&addr_b, "GET", &format!("/v2/team/app/blobs/{layer}"), &[], b"").unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"pushed through a"[..]));
    let r = http(&addr_b, "GET", "/ledger/checkpoint", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    audit(&addr_b, &reg.dir("b"), &state);

    // b appends, then a at once, before a next follows b (every 500 ms):
    // a's commit extends a tree b has already extended, so it does not
    // take effect; a follows b's entries and commits again on top.
    for i in 0..6 {
        try_push(&addr_b, "race/app", &format!("b{i}"), format!("b {i}").as_bytes()).unwrap();
        try_push(&addr_a, "race/app", &format!("a{i}"), format!("a {i}").as_bytes()).unwrap();
    }
    assert!(commits_lost(&addr_a) > 0, "a lost a commit to b and made it again");
    audit(&addr_a, &reg.dir("a"), &state);

    // A push storm through both; replica a is killed (SIGKILL) during it.
    let watcher = Watcher::start(vec![addr_a.clone(), addr_b.clone()]);
    let addrs = [addr_a.clone(), addr_b.clone(), addr_a.clone(), addr_b.clone()];
    let killer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        drop(a);
    });
    let acked = storm(&addrs, 40, "storm");
    killer.join().unwrap();
    let through_b = acked[1].len() + acked[3].len();
    assert_eq!(
        through_b, 80,
        "every push through the surviving replica is acknowledged"
    );
    assert!(
        acked[0].len() < 40,
        "replica a was killed mid-storm: {}",
        acked[0].len()
    );

    // Every acknowledged manifest is intact and admitted, through b, and
    // its decision is in the log.
    for (repo, digest) in acked.iter().flatten() {
        served_admitted(&addr_b, repo, digest);
    }
    audit(&addr_b, &reg.dir("b"), &state);

    // The killed replica restarts and rejoins: it serves what b admitted
    // meanwhile, takes pushes, and the one log only grew.
    let (_a, addr_a) = reg.serve("a").unwrap();
    let (repo, digest) = acked[3].last().unwrap();
    served_admitted(&addr_a, repo, digest);
    let v2 = try_push(&addr_a, "team/app", "v2", b"after the restart").unwrap();
    served_admitted(&addr_b, "team/app", &v2);
    audit(&addr_a, &reg.dir("a"), &state);
    audit(&addr_b, &reg.dir("b"), &state);

    // The log is published to the bucket at its tlog-tiles paths: read
    // through SeaweedFS's filer, a plain HTTP server in front of the
    // bucket, it is checked from its tiles alone and is the same tree.
    let published = format!(
        "http://{}/buckets/{}/shared/ledger",
        reg.store.filer,
        common::seaweedfs::BUCKET
    );
    let note = published_checkpoint(&published, &addr_b);
    watcher.seen.lock().unwrap().push(note);
    let out = common::vouch_command()
        .args(["ledger", "fsck", "--mirror", &published, "--log-key"])
        .arg(reg.dir("a").join("ledger.vkey"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("fsck: ok"), "{text}{err}");
    assert!(watcher.finish() > 2);
}

#[test]
fn a_paused_replica_resumes_without_contradicting_the_log() {
    let Some(reg) = Registry::start() else { return };
    let state = reg.dir("audit.state");
    let (a, addr_a) = reg.serve("a").unwrap();
    common::push_one_layer_image(&addr_a, "team/app", "v1", b"first");
    reg.provision("a", "b");
    let (_b, addr_b) = reg.serve("b").unwrap();
    let watcher = Watcher::start(vec![addr_a.clone(), addr_b.clone()]);

    // Replica a is stopped (SIGSTOP) in the middle of its pushes, b goes on
    // appending, and a is resumed (SIGCONT): a's commits in flight were
    // made on a tree b has since extended, so they take effect only after
    // a follows b's entries.
    let pid = a.0.id().to_string();
    let signal = |s: &str| {
        assert!(std::process::Command::new("kill")
            .args([s, &pid])
            .status()
            .unwrap()
            .success())
    };
    let acked = std::thread::scope(|s| {
        let pusher = s.spawn(|| storm(&[addr_a.clone(), addr_b.clone()], 30, "paused"));
        std::thread::sleep(std::time::Duration::from_millis(700));
        signal("-STOP");
        std::thread::sleep(std::time::Duration::from_millis(1500));
        signal("-CONT");
        pusher.join().unwrap()
    });
    assert_eq!(acked[0].len() + acked[1].len(), 60, "every push is acknowledged");
    for (repo, digest) in acked.iter().flatten() {
        served_admitted(&addr_a, repo, digest);
        served_admitted(&addr_b, repo, digest);
    }
    audit(&addr_a, &reg.dir("a"), &state);
    audit(&addr_b, &reg.dir("b"), &state);
    assert!(watcher.finish() > 2);
}

/// The ledger's tag entries for `repo:tag`, in log order: (previous, digest).
fn tag_history(addr: &str, repo: &str, tag: &str) -> Vec<(Option<String>, String)> {
    // Up to the first index the replica does not have after following the
    // others (it follows before answering 404).
    let mut out = Vec::new();
    for i in 0.. {
        let r = http(addr, "GET", &format!("/ledger/entry/{i}"), &[], b"").unwrap();
        if r.status == 404 {
            break;
        }
        assert_eq!(r.status, 200, "entry {i}");
        if let vouch_ledger::entry::Entry::Tag(t) = vouch_ledger::entry::Entry::decode(&r.body).unwrap() {
            if t.repo == repo && t.tag == tag {
                out.push((t.previous.map(|d| d.to_string()), t.digest.to_string()));
            }
        }
    }
    out
}

#[test]
fn one_tag_pushed_through_two_replicas_at_once_is_logged_as_it_moved() {
    let Some(reg) = Registry::start() else { return };
    let (_a, addr_a) = reg.serve("a").unwrap();
    reg.provision("a", "b");
    let (_b, addr_b) = reg.serve("b").unwrap();
    // Rounds of two pushes of one tag, one through each replica, at once.
    for round in 0..12 {
        std::thread::scope(|s| {
            for (i, addr) in [&addr_a, &addr_b].into_iter().enumerate() {
                s.spawn(move || {
                    let layer = format!("round {round} through replica {i}");
                    try_push(addr, "team/app", "latest", layer.as_bytes()).expect("acknowledged")
                });
            }
        });
    }
    // One winner: both replicas serve the same image under the tag, and the
    // ledger's entries for the tag form one chain, each move from the
    // image the previous one moved it to, ending at that image.
    let r = http(&addr_a, "GET", "/v2/team/app/manifests/latest", &[], b"").unwrap();
    let now = r.header("Docker-Content-Digest").unwrap().to_owned();
    let r = http(&addr_b, "GET", "/v2/team/app/manifests/latest", &[], b"").unwrap();
    assert_eq!(r.header("Docker-Content-Digest"), Some(now.as_str()));
    let history = tag_history(&addr_a, "team/app", "latest");
    assert_eq!(history.len(), 24, "every move is logged: {history:?}");
    let mut at: Option<String> = None;
    for (previous, digest) in &history {
        assert_eq!(previous, &at, "a move logged from where the tag was: {history:?}");
        at = Some(digest.clone());
    }
    assert_eq!(at.as_deref(), Some(now.as_str()));
}

#[test]
fn reads_go_on_while_a_seaweedfs_volume_server_is_killed() {
    let Some(store) = SeaweedFs::start_replicated() else {
        return;
    };
    let Some(mut reg) = Registry::on(store) else { return };
    let (_a, addr_a) = reg.serve("a").unwrap();
    reg.provision("a", "b");
    let (_b, addr_b) = reg.serve("b").unwrap();
    // Layers large enough to live in volumes (each stored on both volume
    // servers), pushed through a.
    let images: Vec<(String, Vec<u8>)> = (0..8u8)
        .map(|i| {
            let layer: Vec<u8> = (0..200_000u32).map(|j| (j % 251) as u8 ^ i).collect();
            let (digest, _) = common::push_one_layer_image(&addr_a, "team/app", &format!("v{i}"), &layer);
            (digest, layer)
        })
        .collect();
    // Readers through both replicas, before and after one volume server
    // is killed with SIGKILL: every read answers the whole blob.
    let nodes = reg.store.shell("volume.list\n");
    assert!(
        nodes.matches("DataNode 127.0.0.1:").count() >= 2,
        "two volume servers: {nodes}"
    );
    let (stop, killed) = (AtomicBool::new(false), AtomicBool::new(false));
    let reads = std::thread::scope(|s| {
        let readers: Vec<_> = [&addr_a, &addr_b]
            .into_iter()
            .map(|addr| {
                let (images, stop, killed) = (&images, &stop, &killed);
                s.spawn(move || {
                    let (mut n, mut after) = (0, 0);
                    while !stop.load(Ordering::Relaxed) {
                        // Half the images are read only after the kill, so
                        // no cache in front of the volumes holds them.
                        let pick = match killed.load(Ordering::Relaxed) {
                            false => n % (images.len() / 2),
                            true => after % images.len(),
                        };
                        let (digest, layer) = &images[pick];
                        let r = http(addr, "GET", &format!("/v2/team/app/blobs/{digest}"), &[], b"").unwrap();
                        assert_eq!(r.status, 200, "read {n} of {digest} through {addr}");
                        assert!(r.body == *layer, "read {n} of {digest} through {addr} is whole");
                        n += 1;
                        after += usize::from(killed.load(Ordering::Relaxed));
                    }
                    after
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(1000));
        reg.store.kill_volume_server();
        killed.store(true, Ordering::Relaxed);
        std::thread::sleep(std::time::Duration::from_millis(4000));
        stop.store(true, Ordering::Relaxed);
        readers.into_iter().map(|r| r.join().unwrap()).sum::<usize>()
    });
    assert!(reads > 20, "reads after the kill: {reads}");
    // Manifests and the ledger too.
    for i in 0..8 {
        let r = http(&addr_b, "GET", &format!("/v2/team/app/manifests/v{i}"), &[], b"").unwrap();
        assert_eq!(r.status, 200);
    }
}
