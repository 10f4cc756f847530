//! Connections served by single-threaded runtimes, one per core.
//!
//! A read of an admitted manifest, a tile or a proof is a few lookups and
//! a write to the socket. On tokio's multi-threaded runtime a share of its
//! CPU goes to workers waking and stealing from each other across cores.
//! Here the main runtime accepts every connection (one accept loop, one
//! place for the connection bounds) and hands it to the reader thread
//! serving the fewest connections; that thread runs its own
//! single-threaded runtime and serves the connection's GET and HEAD
//! requests where they arrive. Every other request (a push: its admission
//! may check signatures and run Rego for up to 250 ms, and the PostgreSQL
//! client blocks its caller) is run on the main runtime and awaited, so
//! that no connection of a reader waits behind it.
//!
//! Shutdown: accepting stops, the connections drain across all readers
//! (one graceful shutdown watches every connection), and only then do the
//! reader runtimes end.

use super::Connection;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// One reader thread: its runtime, and how many connections it serves.
struct Reader {
    runtime: tokio::runtime::Handle,
    serving: Arc<AtomicUsize>,
}

/// The reader threads, and the signal that ends them.
pub(super) struct Readers {
    readers: Vec<Reader>,
    done: tokio::sync::watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// A connection's place in its reader's count, given back when it closes.
struct Serving(Arc<AtomicUsize>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Readers {
    /// Starts `n` reader threads (at least one), idle until handed work.
    pub(super) fn start(n: usize) -> std::io::Result<Readers> {
        let (done, done_rx) = tokio::sync::watch::channel(false);
        let (mut readers, mut threads) = (Vec::new(), Vec::new());
        for i in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            readers.push(Reader {
                runtime: runtime.handle().clone(),
                serving: Arc::default(),
            });
            let mut done_rx = done_rx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("vouch-reader-{i}"))
                    .spawn(move || {
                        // Drives the connections handed to it until told to end.
                        runtime.block_on(async move {
                            let _ = done_rx.wait_for(|d| *d).await;
                        });
                    })?,
            );
        }
        Ok(Readers { readers, done, threads })
    }

    /// Serves `stream` on the reader with the fewest connections; `held`
    /// (its connection permits) is released when it closes.
    pub(super) fn hand_over<H: Send + 'static>(&self, stream: tokio::net::TcpStream, connection: Connection, held: H) {
        let reader = self
            .readers
            .iter()
            .min_by_key(|r| r.serving.load(Ordering::Relaxed))
            .expect("at least one reader");
        // Out of this runtime's reactor, into the reader's.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "a connection could not be handed to a reader");
                return;
            }
        };
        reader.serving.fetch_add(1, Ordering::Relaxed);
        let serving = Serving(reader.serving.clone());
        reader.runtime.spawn(async move {
            let _held = (held, serving);
            match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => connection.serve(stream).await,
                Err(e) => tracing::warn!(error = %e, "a reader could not take a connection"),
            }
        });
    }

    /// Ends the reader runtimes (dropping whatever they still serve) and
    /// waits for their threads.
    pub(super) async fn end(self) {
        let _ = self.done.send(true);
        for thread in self.threads {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}
