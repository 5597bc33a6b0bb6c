//! metrics: `GET /metrics` in the OpenMetrics text format (prometheus-client), read from the
//! counters the serving role keeps anyway — nothing is added to the hot path. Counters get
//! the `_total` suffix from the encoder.

use crate::serving::Serving;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

struct ServingCollector {
    serving: Arc<Serving>,
    kafka: Option<crate::StatsHook>,
}

impl fmt::Debug for ServingCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServingCollector")
    }
}

fn counter(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> fmt::Result {
    let c = ConstCounter::new(v);
    let m = enc.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

fn gauge(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: i64) -> fmt::Result {
    let g = ConstGauge::new(v);
    let m = enc.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

fn counter_family(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values {
        let labels = [(label, *value)];
        ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for ServingCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let s = &self.serving.stats;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(&mut enc, "adp_decide_requests", "decide requests (POST and GET /v1/decide)", load(&s.requests))?;
        counter_family(
            &mut enc,
            "adp_decisions",
            "placements decided, by result",
            "result",
            &[("fill", load(&s.filled)), ("no_fill", load(&s.unfilled))],
        )?;
        counter(&mut enc, "adp_impressions", "impressions counted from tracking URLs", load(&s.impressions))?;
        counter(&mut enc, "adp_clicks", "clicks counted from tracking URLs", load(&s.clicks))?;
        counter(&mut enc, "adp_conversions", "conversions recorded", load(&s.conversions))?;
        counter(
            &mut enc,
            "adp_tracking_rejected",
            "tracking and notice URLs refused (tampered, expired, replayed)",
            load(&s.tracking_rejected),
        )?;
        counter(&mut enc, "adp_bid_requests", "OpenRTB bid requests", load(&s.bid_requests))?;
        counter(&mut enc, "adp_bids", "OpenRTB bids made", load(&s.bids))?;
        counter(
            &mut enc,
            "adp_serving_batches",
            "batches of decide and bid requests answered together (server.batch_requests)",
            load(&s.batches),
        )?;
        counter(
            &mut enc,
            "adp_bid_timeouts",
            "bid requests answered no-bid because tmax ran out",
            load(&s.bid_timeouts),
        )?;
        counter_family(
            &mut enc,
            "adp_rtb_notices",
            "OpenRTB notices counted, by kind",
            "kind",
            &[("win", load(&s.wins)), ("billing", load(&s.billed)), ("loss", load(&s.losses))],
        )?;
        let ev = self.serving.event_stats();
        counter(&mut enc, "adp_events_written", "events durably written to the local log", ev.written)?;
        counter(
            &mut enc,
            "adp_events_dropped",
            "events not recorded: queue full (non-billable) or lost after acceptance (disk failure)",
            ev.rejected_full + ev.lost,
        )?;
        gauge(
            &mut enc,
            "adp_catalog_version",
            "catalog version the serving snapshot was built from",
            i64::try_from(self.serving.snapshot().version).unwrap_or(i64::MAX),
        )?;
        if let Some(kafka) = &self.kafka {
            let k = kafka();
            let num = |key: &str| k.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0);
            counter(&mut enc, "adp_kafka_forwarded", "events confirmed by the Kafka broker", num("forwarded"))?;
            gauge(
                &mut enc,
                "adp_kafka_backlog",
                "events in the local log not yet confirmed by the broker",
                i64::try_from(num("queued")).unwrap_or(i64::MAX),
            )?;
        }
        Ok(())
    }
}

/// HTTP requests by route and status, latency by route (every role).
#[derive(Debug)]
struct HttpCollector;

impl Collector for HttpCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        crate::http_metrics::encode(&mut enc)
    }
}

/// Whether each dependency answers, and the gauges the binary wired in (e.g. ingest lag).
struct StateCollector {
    dependencies: Vec<(&'static str, bool)>,
    gauges: Vec<(&'static str, &'static str, i64)>,
    shared: Option<Arc<crate::distributed::Shared>>,
}

impl fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StateCollector")
    }
}

impl Collector for StateCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        if !self.dependencies.is_empty() {
            let mut m = enc.encode_descriptor(
                "adp_dependency_up",
                "whether a dependency answers (1) or not (0)",
                None,
                MetricType::Gauge,
            )?;
            for (name, up) in &self.dependencies {
                ConstGauge::new(i64::from(*up)).encode(m.encode_family(&[("dependency", *name)])?)?;
            }
        }
        for (name, help, v) in &self.gauges {
            gauge(&mut enc, name, help, *v)?;
        }
        if let Some(shared) = &self.shared {
            let s = &shared.stats;
            let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
            counter(
                &mut enc,
                "adp_frequency_cap_conflicts",
                "winners withdrawn because another process filled the user's cap first",
                load(&s.cap_conflicts),
            )?;
            counter(
                &mut enc,
                "adp_frequency_cap_unavailable",
                "requests decided without capped line items because Dragonfly did not answer",
                load(&s.cap_unavailable),
            )?;
            counter(&mut enc, "adp_budget_lease_renewals", "budget lease rounds answered", load(&s.lease_renewals))?;
            counter(&mut enc, "adp_budget_lease_errors", "budget lease rounds that failed", load(&s.lease_errors))?;
            counter(&mut enc, "adp_budget_bookings", "spend bookings sent to the ledger", load(&s.bookings))?;
            counter(
                &mut enc,
                "adp_budget_booking_errors",
                "spend booking batches that failed (kept and retried)",
                load(&s.booking_errors),
            )?;
        }
        Ok(())
    }
}

/// `GET /metrics`.
pub async fn metrics(State(st): State<AppState>) -> Response {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(HttpCollector));
    if let Some(serving) = &st.serving {
        registry.register_collector(Box::new(ServingCollector {
            serving: Arc::clone(serving),
            kafka: st.kafka_stats.clone(),
        }));
    }
    let mut dependencies = Vec::new();
    if let Some(kafka) = &st.kafka_stats {
        dependencies.push(("kafka", kafka()["broker_up"].as_bool().unwrap_or(false)));
    }
    for c in &st.ready_checks {
        let up = matches!(tokio::time::timeout(std::time::Duration::from_secs(1), (c.check)()).await, Ok(Ok(())));
        dependencies.push((c.name, up));
    }
    let gauges = st.gauges.iter().map(|g| (g.name, g.help, (g.read)())).collect();
    let shared = st.serving.as_ref().and_then(|s| s.shared().cloned());
    registry.register_collector(Box::new(StateCollector { dependencies, gauges, shared }));
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "metrics could not be encoded").into_response(),
    }
}
