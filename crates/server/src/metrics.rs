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
            let up = k.get("broker_up").and_then(serde_json::Value::as_bool).unwrap_or(false);
            let mut m = enc.encode_descriptor(
                "adp_dependency_up",
                "whether a dependency answers (1) or not (0)",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::from(up)).encode(m.encode_family(&[("dependency", "kafka")])?)?;
        }
        Ok(())
    }
}

/// `GET /metrics`.
pub async fn metrics(State(st): State<AppState>) -> Response {
    let mut registry = Registry::default();
    if let Some(serving) = &st.serving {
        registry.register_collector(Box::new(ServingCollector {
            serving: Arc::clone(serving),
            kafka: st.kafka_stats.clone(),
        }));
    }
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
