//! Prometheus metrics (`GET /metrics`, text exposition format 0.0.4) and the
//! one log line per request.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Upper bounds (seconds) of the request duration histogram.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Counters of a running registry.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    duration_buckets: [AtomicU64; BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_micros: AtomicU64,
    bytes_sent: AtomicU64,
}

impl Metrics {
    fn observe(&self, method: &str, status: u16, seconds: f64, bytes: u64) {
        *self
            .requests
            .lock()
            .expect("lock")
            .entry((method.to_owned(), status))
            .or_default() += 1;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.duration_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        self.duration_sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The exposition text; `ledger_size` is the ledger's current tree
    /// size, `commits_lost` its commits other replicas beat.
    pub fn render(&self, ledger_size: u64, commits_lost: u64) -> String {
        let mut out = String::new();
        out.push_str("# HELP vouch_http_requests_total HTTP requests answered, by method and status.\n");
        out.push_str("# TYPE vouch_http_requests_total counter\n");
        for ((method, status), n) in self.requests.lock().expect("lock").iter() {
            out.push_str(&format!(
                "vouch_http_requests_total{{method=\"{method}\",status=\"{status}\"}} {n}\n"
            ));
        }
        out.push_str("# HELP vouch_http_request_duration_seconds Time to produce response headers.\n");
        out.push_str("# TYPE vouch_http_request_duration_seconds histogram\n");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let n = self.duration_buckets[i].load(Ordering::Relaxed);
            out.push_str(&format!(
                "vouch_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {n}\n"
            ));
        }
        let count = self.duration_count.load(Ordering::Relaxed);
        out.push_str(&format!(
            "vouch_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n"
        ));
        let sum = self.duration_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        out.push_str(&format!("vouch_http_request_duration_seconds_sum {sum}\n"));
        out.push_str(&format!("vouch_http_request_duration_seconds_count {count}\n"));
        out.push_str("# HELP vouch_http_response_bytes_total Bytes announced in Content-Length of responses.\n");
        out.push_str("# TYPE vouch_http_response_bytes_total counter\n");
        out.push_str(&format!(
            "vouch_http_response_bytes_total {}\n",
            self.bytes_sent.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP vouch_ledger_entries Entries in the ledger.\n");
        out.push_str("# TYPE vouch_ledger_entries gauge\n");
        out.push_str(&format!("vouch_ledger_entries {ledger_size}\n"));
        out.push_str(
            "# HELP vouch_ledger_commits_lost_total Ledger commits another replica beat, made again on its tree.\n",
        );
        out.push_str("# TYPE vouch_ledger_commits_lost_total counter\n");
        out.push_str(&format!("vouch_ledger_commits_lost_total {commits_lost}\n"));
        out
    }
}

/// `GET /metrics`.
pub async fn serve_metrics(State(app): State<Arc<super::AppState>>) -> Response {
    let body = app.metrics.render(app.ledger.size(), app.ledger.commits_lost());
    ([("content-type", "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// Records every request in the metrics and logs one line for it: method,
/// path, status, bytes, duration.
pub async fn observe(State(app): State<Arc<super::AppState>>, req: Request, next: Next) -> Response {
    let (method, path, start) = (req.method().clone(), req.uri().path().to_owned(), Instant::now());
    let resp = next.run(req).await;
    let elapsed = start.elapsed().as_secs_f64();
    let bytes: u64 = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let status = resp.status().as_u16();
    app.metrics.observe(method.as_str(), status, elapsed, bytes);
    tracing::info!(%method, %path, status, bytes, elapsed_ms = elapsed * 1e3, "request");
    resp
}
