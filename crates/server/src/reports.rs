//! reports: `GET /api/v1/reports` — delivery, bidding and conversion numbers by any of hour,
//! day, advertiser, campaign, line item, creative, placement, site/app, country, device type
//! and deal, in a time zone, filtered, as JSON or CSV. Embedded mode answers from the
//! in-process report rollup fed by the event log; the ClickHouse backend (adp-analytics)
//! answers the same `ReportQuery` with the same rows for the same events.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::AppState;
use adp_analytics::report::{Dimension, Metric, MetricValue, ReportFilters, ReportQuery, ReportRow};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};
use serde_json::{json, Map, Value};

/// Longest range one report may span.
const MAX_RANGE_DAYS: i64 = 400;

fn bad(code: &'static str, field: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, field, message)
}

fn list(v: &str) -> impl Iterator<Item = String> + '_ {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

fn time(v: &str, field: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| bad("invalid_value", field, "an RFC 3339 time, e.g. 2026-11-27T00:00:00Z"))
}

/// Output format.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Json,
    Csv,
}

/// Reads the query string into a report query (tenancy applied by the caller).
pub fn parse_query(pairs: Vec<(String, String)>, accept_csv: bool) -> Result<(ReportQuery, Format), ApiError> {
    let now = Utc::now();
    let next_hour = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now) + Duration::hours(1);
    let mut q = ReportQuery {
        from: next_hour - Duration::hours(24),
        to: next_hour,
        time_zone: chrono_tz::UTC,
        dimensions: Vec::new(),
        metrics: Vec::new(),
        filters: ReportFilters::default(),
    };
    let mut format = if accept_csv { Format::Csv } else { Format::Json };
    for (k, v) in pairs {
        let f = &mut q.filters;
        match k.as_str() {
            "from" => q.from = time(&v, "from")?,
            "to" => q.to = time(&v, "to")?,
            "tz" | "time_zone" => {
                q.time_zone = v.parse().map_err(|_| bad("invalid_value", "tz", "an IANA time zone, e.g. Europe/Berlin"))?
            }
            "dimensions" => {
                for name in list(&v) {
                    let d = Dimension::parse(&name).ok_or_else(|| {
                        let known: Vec<&str> = Dimension::ALL.iter().map(|d| d.name()).collect();
                        bad("invalid_value", "dimensions", format!("unknown dimension `{name}`; known: {}", known.join(", ")))
                    })?;
                    q.dimensions.push(d);
                }
            }
            "metrics" => {
                for name in list(&v) {
                    let m = Metric::parse(&name).ok_or_else(|| {
                        let known: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                        bad("invalid_value", "metrics", format!("unknown metric `{name}`; known: {}", known.join(", ")))
                    })?;
                    q.metrics.push(m);
                }
            }
            "advertiser_id" => f.advertiser_id.extend(list(&v)),
            "campaign_id" => f.campaign_id.extend(list(&v)),
            "line_item_id" => f.line_item_id.extend(list(&v)),
            "creative_id" => f.creative_id.extend(list(&v)),
            "placement_id" => f.placement_id.extend(list(&v)),
            "site_id" => f.site_id.extend(list(&v)),
            "country" => f.country.extend(list(&v).map(|c| c.to_ascii_uppercase())),
            "device_type" => f.device_type.extend(list(&v)),
            "deal_id" => f.deal_id.extend(list(&v)),
            "format" => {
                format = match v.as_str() {
                    "json" => Format::Json,
                    "csv" => Format::Csv,
                    _ => return Err(bad("invalid_value", "format", "json or csv")),
                }
            }
            other => {
                return Err(bad(
                    "unknown_parameter",
                    other,
                    "expected from, to, tz, dimensions, metrics, format or a filter \
                     (advertiser_id, campaign_id, line_item_id, creative_id, placement_id, site_id, country, device_type, deal_id)",
                ))
            }
        }
    }
    if q.to <= q.from {
        return Err(bad("invalid_value", "to", "`to` must be after `from`"));
    }
    if q.to - q.from > Duration::days(MAX_RANGE_DAYS) {
        return Err(bad("invalid_value", "to", format!("a report spans at most {MAX_RANGE_DAYS} days")));
    }
    if q.metrics.is_empty() {
        q.metrics = Metric::ALL.to_vec();
    }
    q.validate().map_err(|e| bad("invalid_value", "dimensions", e.to_string()))?;
    Ok((q, format))
}

fn metric_json(v: MetricValue) -> Value {
    match v {
        MetricValue::Count(n) | MetricValue::Micros(n) => Value::from(n),
        MetricValue::Ratio(r) => r.map_or(Value::Null, |x| json!((x * 1e6).round() / 1e6)),
    }
}

fn metric_csv(v: MetricValue) -> String {
    match v {
        MetricValue::Count(n) | MetricValue::Micros(n) => n.to_string(),
        MetricValue::Ratio(r) => r.map_or(String::new(), |x| format!("{:.6}", x)),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The rows as the API shows them.
pub fn render(q: &ReportQuery, rows: &[ReportRow], format: Format) -> Response {
    match format {
        Format::Json => {
            let out: Vec<Value> = rows
                .iter()
                .map(|r| {
                    let mut o = Map::new();
                    for (d, label) in q.dimensions.iter().zip(r.labels(q.time_zone)) {
                        o.insert(d.name().into(), Value::from(label));
                    }
                    for m in &q.metrics {
                        o.insert(m.name().into(), metric_json(r.metric(*m)));
                    }
                    Value::Object(o)
                })
                .collect();
            let body = json!({
                "from": q.from, "to": q.to, "time_zone": q.time_zone.name(),
                "dimensions": q.dimensions.iter().map(|d| d.name()).collect::<Vec<_>>(),
                "metrics": q.metrics.iter().map(|m| m.name()).collect::<Vec<_>>(),
                "rows": out,
            });
            axum::Json(body).into_response()
        }
        Format::Csv => {
            let mut s = String::new();
            let header: Vec<&str> =
                q.dimensions.iter().map(|d| d.name()).chain(q.metrics.iter().map(|m| m.name())).collect();
            s.push_str(&header.join(","));
            s.push('\n');
            for r in rows {
                let fields: Vec<String> = r
                    .labels(q.time_zone)
                    .iter()
                    .map(|l| csv_field(l))
                    .chain(q.metrics.iter().map(|m| metric_csv(r.metric(*m))))
                    .collect();
                s.push_str(&fields.join(","));
                s.push('\n');
            }
            ([(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"))], s).into_response()
        }
    }
}

/// `GET /api/v1/reports`. An advertiser key sees its own rows only.
pub async fn report(
    State(st): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    let accept_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/csv") && !a.contains("application/json"));
    let (mut query, format) = parse_query(pairs, accept_csv)?;
    if let Some(own) = who.advertiser_id() {
        if query.filters.advertiser_id.iter().any(|a| a != own) {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "an advertiser key reports on its own rows")
                .with_field("advertiser_id"));
        }
        query.filters.advertiser_id = vec![own.to_string()];
    }
    query.validate().map_err(|e| bad("invalid_value", "dimensions", e.to_string()))?;
    let rows = match (&st.report_backend, &st.serving) {
        (Some(backend), _) => backend(query.clone()).await.map_err(|e| {
            tracing::warn!(error = %e, "report backend failed");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "report_backend_unavailable", e)
        })?,
        (None, Some(serving)) => {
            serving.rollup().report(&query).map_err(|e| bad("invalid_value", "dimensions", e.to_string()))?
        }
        (None, None) => {
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "role_disabled", "no report backend runs here"))
        }
    };
    Ok(render(&query, &rows, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn queries_are_read_and_bad_ones_name_the_parameter() {
        let (q, f) = parse_query(
            pairs(&[
                ("from", "2026-11-01T00:00:00Z"),
                ("to", "2026-11-02T00:00:00Z"),
                ("tz", "Europe/Berlin"),
                ("dimensions", "day,line_item"),
                ("metrics", "impressions,ctr"),
                ("country", "de,at"),
                ("format", "csv"),
            ]),
            false,
        )
        .expect("valid");
        assert_eq!(q.dimensions, vec![Dimension::Day, Dimension::LineItem]);
        assert_eq!(q.metrics, vec![Metric::Impressions, Metric::Ctr]);
        assert_eq!(q.filters.country, vec!["DE".to_string(), "AT".to_string()]);
        assert_eq!((q.time_zone.name(), f), ("Europe/Berlin", Format::Csv));
        for (k, v, field) in [
            ("dimensions", "galaxy", "dimensions"),
            ("metrics", "vibes", "metrics"),
            ("tz", "Mars/Olympus", "tz"),
            ("from", "yesterday", "from"),
            ("colour", "red", "colour"),
            ("dimensions", "day,day", "dimensions"),
        ] {
            let e = parse_query(pairs(&[(k, v)]), false).expect_err(k);
            assert_eq!((e.status, e.field.as_deref()), (StatusCode::BAD_REQUEST, Some(field)), "{k}={v}");
        }
        let e = parse_query(pairs(&[("from", "2026-11-02T00:00:00Z"), ("to", "2026-11-01T00:00:00Z")]), false)
            .expect_err("empty range");
        assert_eq!(e.field.as_deref(), Some("to"));
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
