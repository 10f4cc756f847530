//! A minimal keep-alive HTTP/1.1 client and an in-process server, for the
//! benches that drive the registry over loopback (`admission`, `evidence`).

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use vouch::registry::{app, blobs::BlobStore, meta::Meta, AppState, Limits};

// ---- a minimal keep-alive HTTP/1.1 client ----------------------------------

pub struct Conn {
    r: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Conn {
    pub async fn open(addr: std::net::SocketAddr) -> Conn {
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        let (r, w) = s.into_split();
        Conn {
            r: tokio::io::BufReader::new(r),
            w,
        }
    }

    /// Sends one request; returns the status and body.
    pub async fn call(&mut self, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.w.write_all(&[head.as_bytes(), body].concat()).await.unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).await.unwrap();
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let mut len = 0usize;
        loop {
            line.clear();
            self.r.read_line(&mut line).await.unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; len];
        self.r.read_exact(&mut body).await.unwrap();
        (status, body)
    }
}

/// Serves `state` on 127.0.0.1:0 in `rt`; returns the address.
pub fn serve(rt: &tokio::runtime::Runtime, state: Arc<AppState>) -> std::net::SocketAddr {
    rt.block_on(async {
        // The registry's own accept loop (src/server/), as `vouch serve`
        // runs it on local storage (reader threads, one per core), without
        // its connection caps getting in the way of the load.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = vouch::server::ConnLimits {
            max_connections: 1 << 16,
            max_per_client: 1 << 16,
            ..Default::default()
        };
        let drain = Duration::from_secs(1);
        let readers = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::spawn(vouch::server::serve(
            listener,
            None,
            app(state),
            limits,
            std::future::pending(),
            drain,
            readers,
        ));
        addr
    })
}

pub fn state(db: Arc<rocksdb::DB>, ledger: vouch_ledger::store::Ledger, blobs: &std::path::Path) -> AppState {
    let limits = Limits {
        max_manifest_bytes: 4 << 20,
        max_blob_bytes: 1 << 30,
        max_requests_per_client: 1 << 20,
        ..Limits::default()
    };
    AppState::new(BlobStore::files(blobs).unwrap(), Meta::new(db), ledger, limits)
}

/// Every client task's latencies, once all have finished.
pub async fn latencies(tasks: Vec<tokio::task::JoinHandle<Vec<Duration>>>) -> Vec<Duration> {
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}
