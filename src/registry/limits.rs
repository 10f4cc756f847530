//! Per-client concurrency limits: a client (by IP address) with too many
//! requests in flight gets 429 `TOOMANYREQUESTS` with `Retry-After`, instead
//! of queueing without bound.

use super::error::RegistryError;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// Requests in flight per client address.
#[derive(Debug)]
pub struct ClientLimiter {
    max: u32,
    in_flight: Mutex<HashMap<IpAddr, u32>>,
}

impl ClientLimiter {
    /// At most `max` requests in flight per client address.
    pub fn new(max: u32) -> Self {
        ClientLimiter {
            max,
            in_flight: Mutex::default(),
        }
    }

    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut map = self.in_flight.lock().expect("lock");
        let n = map.entry(ip).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            limiter: self.clone(),
            ip,
        })
    }
}

/// One request's place; given back when the response is done (or the
/// request is abandoned).
struct Slot {
    limiter: Arc<ClientLimiter>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.limiter.in_flight.lock().expect("lock");
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// The middleware. Requests without a peer address (in-process) pass.
pub async fn limit(State(limiter): State<Arc<ClientLimiter>>, req: Request, next: Next) -> Response {
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return next.run(req).await;
    };
    match limiter.acquire(peer.ip()) {
        Some(slot) => {
            let resp = next.run(req).await;
            // The slot is held until the response body is streamed.
            let (parts, body) = resp.into_parts();
            let body = axum::body::Body::new(SlotBody { body, _slot: slot });
            Response::from_parts(parts, body)
        }
        None => RegistryError::TooManyRequests { max: limiter.max }.into_response(),
    }
}

/// A response body that keeps its request's slot until it is finished.
struct SlotBody {
    body: axum::body::Body,
    _slot: Slot,
}

impl http_body::Body for SlotBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
