//! http_metrics: request counts by route and status, and latency histograms by route, for
//! `adp_http_requests_total` and `adp_http_request_duration_seconds`. Counted in per-thread
//! shards of relaxed atomics (no lock, no shared cache line on the hot path) and summed when
//! `/metrics` is read.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// Route labels; the last is everything else.
pub const ROUTES: [&str; 12] = [
    "decide",
    "bid",
    "impression",
    "click",
    "conversion",
    "win",
    "billing",
    "loss",
    "api",
    "health",
    "metrics",
    "other",
];

/// Status labels counted one by one; others are counted by class (`2xx`, ..., `5xx`).
const STATUSES: [u16; 18] = [200, 201, 204, 302, 304, 400, 401, 403, 404, 405, 409, 410, 413, 415, 422, 429, 500, 503];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const NS: usize = STATUSES.len() + CLASSES.len();

/// Upper bounds of the latency buckets, seconds (the last bucket is +Inf).
pub const BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
const NB: usize = BUCKETS.len() + 1;
const NR: usize = ROUTES.len();

struct Shard {
    counts: [[AtomicU64; NS]; NR],
    buckets: [[AtomicU64; NB]; NR],
    sum_nanos: [AtomicU64; NR],
}

impl Shard {
    fn new() -> Shard {
        Shard {
            counts: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            buckets: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            sum_nanos: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

static SHARDS: Mutex<Vec<Arc<Shard>>> = Mutex::new(Vec::new());

thread_local! {
    static SHARD: Arc<Shard> = {
        let shard = Arc::new(Shard::new());
        SHARDS.lock().unwrap_or_else(PoisonError::into_inner).push(Arc::clone(&shard));
        shard
    };
}

/// The route label of a request path.
pub fn route_of(path: &str) -> usize {
    let label = match path {
        "/v1/decide" => "decide",
        "/openrtb2/bid" => "bid",
        "/v1/t/imp" => "impression",
        "/v1/t/click" => "click",
        "/v1/t/conv" | "/v1/conversions" => "conversion",
        "/v1/rtb/win" => "win",
        "/v1/rtb/bill" => "billing",
        "/v1/rtb/loss" => "loss",
        "/healthz" | "/readyz" => "health",
        "/metrics" => "metrics",
        p if p.starts_with("/api/") => "api",
        _ => "other",
    };
    ROUTES.iter().position(|r| *r == label).unwrap_or(NR - 1)
}

fn status_index(status: u16) -> usize {
    match STATUSES.iter().position(|s| *s == status) {
        Some(i) => i,
        None => STATUSES.len() + usize::from((status / 100).clamp(1, 5) - 1),
    }
}

fn status_label(i: usize) -> String {
    match STATUSES.get(i) {
        Some(s) => s.to_string(),
        None => CLASSES[i - STATUSES.len()].to_string(),
    }
}

/// Counts one request.
pub fn observe(route: usize, status: u16, seconds: f64) {
    let route = route.min(NR - 1);
    let bucket = BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(NB - 1);
    SHARD.with(|s| {
        s.counts[route][status_index(status)].fetch_add(1, Ordering::Relaxed);
        s.buckets[route][bucket].fetch_add(1, Ordering::Relaxed);
        s.sum_nanos[route].fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
    });
}

/// The middleware: times and counts every request.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = route_of(req.uri().path());
    let resp = next.run(req).await;
    observe(route, resp.status().as_u16(), started.elapsed().as_secs_f64());
    resp
}

/// Sums of all shards: counts by (route, status index), buckets and nanoseconds by route.
fn totals() -> ([[u64; NS]; NR], [[u64; NB]; NR], [u64; NR]) {
    let (mut counts, mut buckets, mut sums) = ([[0u64; NS]; NR], [[0u64; NB]; NR], [0u64; NR]);
    for shard in SHARDS.lock().unwrap_or_else(PoisonError::into_inner).iter() {
        for (r, route_counts) in counts.iter_mut().enumerate() {
            for (total, n) in route_counts.iter_mut().zip(&shard.counts[r]) {
                *total += n.load(Ordering::Relaxed);
            }
            for (total, n) in buckets[r].iter_mut().zip(&shard.buckets[r]) {
                *total += n.load(Ordering::Relaxed);
            }
            sums[r] += shard.sum_nanos[r].load(Ordering::Relaxed);
        }
    }
    (counts, buckets, sums)
}

/// Writes `adp_http_requests_total{route,status}` and `adp_http_request_duration_seconds{route}`.
pub fn encode(enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
    let (counts, buckets, sums) = totals();
    let mut m = enc.encode_descriptor(
        "adp_http_requests",
        "HTTP requests answered, by route and status",
        None,
        MetricType::Counter,
    )?;
    for (r, route) in ROUTES.iter().enumerate() {
        for (s, n) in counts[r].iter().enumerate().filter(|(_, n)| **n > 0) {
            let status = status_label(s);
            let labels = [("route", *route), ("status", status.as_str())];
            prometheus_client::metrics::counter::ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
        }
    }
    let mut m = enc.encode_descriptor(
        "adp_http_request_duration_seconds",
        "time from a request's arrival to its response, by route",
        None,
        MetricType::Histogram,
    )?;
    for (r, route) in ROUTES.iter().enumerate() {
        let count: u64 = buckets[r].iter().sum();
        if count == 0 {
            continue;
        }
        let bounds: Vec<(f64, u64)> =
            BUCKETS.iter().copied().chain([f64::MAX]).zip(buckets[r].iter().copied()).collect();
        let labels = [("route", *route)];
        m.encode_family(&labels)?.encode_histogram::<Vec<(String, String)>>(
            sums[r] as f64 / 1e9,
            count,
            &bounds,
            None,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_routes_and_statuses_to_labels() {
        assert_eq!(ROUTES[route_of("/v1/decide")], "decide");
        assert_eq!(ROUTES[route_of("/api/v1/line-items/x")], "api");
        assert_eq!(ROUTES[route_of("/nope")], "other");
        assert_eq!(status_label(status_index(204)), "204");
        assert_eq!(status_label(status_index(502)), "5xx");
        assert_eq!(status_label(status_index(299)), "2xx");
    }
}
