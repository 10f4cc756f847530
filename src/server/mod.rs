//! The listener: accepts connections, plain or TLS, and serves the app on
//! each, within bounds (spec/threat-model.md, "Bounds"):
//!
//! - at most [`ConnLimits::max_connections`] connections at once: beyond
//!   that, accepting waits (the kernel's backlog queues them);
//! - at most [`ConnLimits::max_per_client`] per client address: more are
//!   closed as soon as they are accepted;
//! - a request's headers must arrive within [`ConnLimits::header_timeout`]
//!   (also the TLS handshake, and the wait for the next request on a
//!   kept-alive connection);
//! - a connection on which no byte moves either way for
//!   [`ConnLimits::idle_timeout`] is closed, whatever it was doing.
//!
//! Shutdown: stop accepting, let requests in flight finish, and after
//! `drain` close what is left.
//!
//! Connections are served on the calling runtime, or by single-threaded
//! reader runtimes, one per core (`readers.rs`).

mod readers;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bounds on connections.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once per client address.
    pub max_per_client: usize,
    /// Time for a request's headers (and a TLS handshake) to arrive.
    pub header_timeout: Duration,
    /// Time a connection may stay without moving a byte.
    pub idle_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> ConnLimits {
        ConnLimits {
            max_connections: 1024,
            max_per_client: 128,
            header_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// Connections open per client address.
#[derive(Debug, Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in [`PerClient`], given back when it closes.
struct ClientSlot {
    counts: Arc<PerClient>,
    ip: IpAddr,
}

impl ClientSlot {
    fn take(counts: &Arc<PerClient>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut map = counts.0.lock().expect("lock");
        let n = map.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock().expect("lock");
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// An IO stream that fails once no byte has moved for `timeout`.
struct Idle<T> {
    inner: T,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<T> Idle<T> {
    fn new(inner: T, timeout: Duration) -> Idle<T> {
        Idle {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    fn progress(&mut self) {
        let next = tokio::time::Instant::now() + self.timeout;
        self.deadline.as_mut().reset(next);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "connection idle for too long")
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.progress();
                Poll::Ready(r)
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.progress();
                Poll::Ready(r)
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }

    // Vectored writes pass through, so that hyper writes a body chunk with
    // its headers in one writev rather than copying both into one buffer.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                this.progress();
                Poll::Ready(r)
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A TLS acceptor from a PEM certificate chain and key.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| format!("TLS certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("TLS certificate {}: no certificate in it", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("TLS key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate and key do not go together: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// What every accept loop of one server shares: the bounds, the TLS
/// acceptor, and the graceful shutdown its connections watch.
struct Shared {
    permits: Arc<tokio::sync::Semaphore>,
    per_client: Arc<PerClient>,
    graceful: hyper_util::server::graceful::GracefulShutdown,
    builder: hyper_util::server::conn::auto::Builder<TokioExecutor>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnLimits,
}

impl Shared {
    fn new(tls: Option<tokio_rustls::TlsAcceptor>, limits: ConnLimits) -> Shared {
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout);
        builder.http2().timer(TokioTimer::new());
        Shared {
            permits: Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1))),
            per_client: Arc::new(PerClient::default()),
            graceful: hyper_util::server::graceful::GracefulShutdown::new(),
            builder,
            tls,
            limits,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains for
/// at most `drain`. With `readers` above 0, connections are served by that
/// many single-threaded reader runtimes and only requests other than reads
/// run on the calling (main) runtime (`readers.rs`); with 0, all of it runs
/// on the calling runtime. Returns whether every connection finished in
/// time, or why the readers could not start.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
    readers: usize,
) -> std::io::Result<bool> {
    let readers = match readers {
        0 => None,
        n => Some(readers::Readers::start(n)?),
    };
    let shared = Shared::new(tls, limits);
    accept_loop(&listener, &shared, &app, readers.as_ref(), shutdown).await;
    drop(listener);
    let drained = tokio::select! {
        () = shared.graceful.shutdown() => true,
        () = tokio::time::sleep(drain) => false,
    };
    // Only now: the readers' runtimes drive the connections that drained.
    if let Some(readers) = readers {
        readers.end().await;
    }
    Ok(drained)
}

/// Accepts connections on `listener` until `stop` completes, serving `app`
/// on each: in a task of the current runtime, or of the least busy of
/// `readers` (whose requests other than reads come back to this one).
async fn accept_loop(
    listener: &tokio::net::TcpListener,
    shared: &Shared,
    app: &Router,
    readers: Option<&readers::Readers>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            p = shared.permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
        let (stream, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors, say: wait a moment, go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Some(slot) = ClientSlot::take(&shared.per_client, addr.ip(), shared.limits.max_per_client) else {
            tracing::debug!(%addr, "connection refused: too many from this client");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let svc = Conn {
            app: app.clone(),
            addr,
            main: readers.map(|_| tokio::runtime::Handle::current()),
        };
        let connection = Connection {
            builder: shared.builder.clone(),
            watcher: shared.graceful.watcher(),
            tls: shared.tls.clone(),
            limits: shared.limits.clone(),
            svc,
            addr,
        };
        match readers {
            None => {
                tokio::spawn(async move {
                    let _held = (permit, slot);
                    connection.serve(stream).await;
                });
            }
            Some(readers) => readers.hand_over(stream, connection, (permit, slot)),
        }
    }
}

/// One accepted connection's settings, to be served where it is placed.
struct Connection {
    builder: hyper_util::server::conn::auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnLimits,
    svc: Conn,
    addr: SocketAddr,
}

impl Connection {
    /// Serves HTTP on `stream` (after the TLS handshake, with TLS) until
    /// it closes, fails or goes idle.
    async fn serve(self, stream: tokio::net::TcpStream) {
        let Connection {
            builder,
            watcher,
            tls,
            limits,
            svc,
            addr,
        } = self;
        let io = Idle::new(stream, limits.idle_timeout);
        let result = match tls {
            None => {
                watcher
                    .watch(
                        builder
                            .serve_connection_with_upgrades(TokioIo::new(io), svc)
                            .into_owned(),
                    )
                    .await
            }
            Some(acceptor) => match tokio::time::timeout(limits.header_timeout, acceptor.accept(io)).await {
                Ok(Ok(tls)) => {
                    watcher
                        .watch(
                            builder
                                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                                .into_owned(),
                        )
                        .await
                }
                Ok(Err(e)) => Err(e.into()),
                Err(_) => Err("TLS handshake timed out".into()),
            },
        };
        if let Err(e) = result {
            tracing::debug!(%addr, error = %e, "connection ended with an error");
        }
    }
}

/// Whether a reader thread serves a request itself: reads, a lookup and a
/// write to the socket. Everything else (pushes, whose admission checks
/// signatures and runs Rego for up to 250 ms) runs on the main runtime, so
/// that no connection of a reader thread waits behind it.
fn served_in_place(method: &hyper::Method) -> bool {
    method == hyper::Method::GET || method == hyper::Method::HEAD
}

/// The app for one connection: its peer address reaches the handlers (for
/// per-client limits and loopback checks). With `main`, requests not
/// [`served_in_place`] run there, and are cancelled, as they would be in
/// place, if the connection drops them.
#[derive(Clone)]
struct Conn {
    app: Router,
    addr: SocketAddr,
    main: Option<tokio::runtime::Handle>,
}

/// A request's task on the main runtime, aborted if dropped (as the
/// request would be in place, if the connection drops it).
struct Remote(tokio::task::JoinHandle<Result<axum::response::Response, std::convert::Infallible>>);

impl Drop for Remote {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Future for Remote {
    type Output = Result<axum::response::Response, std::convert::Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        use axum::response::IntoResponse as _;
        Pin::new(&mut self.0).poll(cx).map(|joined| {
            Ok(match joined {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(e) => {
                    tracing::error!(error = %e, "a request's task on the main runtime failed");
                    hyper::StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
            })
        })
    }
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Conn {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    /// In place (no allocation per request), or on the main runtime.
    type Future = futures_util::future::Either<tower::util::Oneshot<Router, axum::extract::Request>, Remote>;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        use futures_util::future::Either;
        use tower::ServiceExt as _;
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnectInfo(self.addr));
        let app = self.app.clone();
        match &self.main {
            Some(main) if !served_in_place(req.method()) => Either::Right(Remote(main.spawn(app.oneshot(req)))),
            _ => Either::Left(app.oneshot(req)),
        }
    }
}
