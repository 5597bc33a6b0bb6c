//! serving_http: the HTTP face of the serving role — decide (POST and GET), the trackers, the
//! delivery report and the serving counters.

use crate::api::RawBody;
use crate::auth::Principal;
use crate::bidder::{NoBid, NoticeOutcome};
use crate::error::ApiError;
use crate::serving::{
    parse_decide, DecideRequest, DeviceReq, GeoReq, KvValue, PageReq, PlacementReq, Serving, UserReq,
};
use crate::tracking::TrackKind;
use crate::AppState;
use adp_domain::{Kind, Spec};
use adp_openrtb::{BidResponse, OPENRTB_VERSION, OPENRTB_VERSION_HEADER};

/// `x-openrtb-version`, made once (a `&str` header name is parsed on every insert).
const OPENRTB_VERSION_NAME: axum::http::HeaderName = axum::http::HeaderName::from_static(OPENRTB_VERSION_HEADER);
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;

/// A 1×1 transparent GIF.
const PIXEL_GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
    0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02,
    0x02, 0x44, 0x01, 0x00, 0x3b,
];

fn serving(st: &AppState) -> Result<&Arc<Serving>, ApiError> {
    st.serving.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "role_disabled", "the serving role is not running here")
    })
}

pub(crate) fn cors(mut resp: Response) -> Response {
    resp.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    resp
}

/// Decides on this process's state, or (distributed mode) with the shared caps; the answer as
/// JSON.
async fn decide_any(st: &AppState, req: Result<DecideRequest, ApiError>) -> Result<Vec<u8>, ApiError> {
    let req = req?;
    let s = serving(st)?;
    match s.shared() {
        None => s.decide_json(&req),
        Some(shared) => shared.decide(s, &req).await.map(|resp| resp.to_json()),
    }
}

/// The client's address for the geo lookup when `geo.use_client_addr` is on: the TCP peer,
/// or with `geo.trust_forwarded_for` the first `X-Forwarded-For` entry (then the peer is the
/// proxy, and is never used). Unreadable headers are ignored: they are the proxy's, not the
/// caller's, and must not fail an ad request.
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    /// What the request's headers and its connection's `ConnectInfo` say, per the geo settings.
    pub(crate) fn of(st: &AppState, headers: &HeaderMap, extensions: &axum::http::Extensions) -> ClientIp {
        let Some(geo) = st.serving.as_ref().map(|s| &s.settings().geo).filter(|g| g.use_client_addr) else {
            return ClientIp(None);
        };
        if geo.trust_forwarded_for {
            return ClientIp(first_forwarded_for(headers));
        }
        ClientIp(extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientIp::of(st, &parts.headers, &parts.extensions))
    }
}

/// The first (the client's) address of `X-Forwarded-For`, e.g. `203.0.113.7, 10.0.0.2`.
fn first_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let value = headers.get("x-forwarded-for")?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    first.parse().ok().or_else(|| first.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

fn with_client_ip(req: Result<DecideRequest, ApiError>, client: ClientIp) -> Result<DecideRequest, ApiError> {
    req.map(|mut r| {
        r.client_ip = client.0;
        r
    })
}

async fn decide_post(State(st): State<AppState>, client: ClientIp, body: Result<RawBody, ApiError>) -> Response {
    decide_body(&st, client, body.map(|RawBody(bytes)| bytes)).await
}

/// `POST /v1/decide` once its body is read (also called by the hot-path dispatcher, `net`).
pub(crate) async fn decide_body(
    st: &AppState,
    client: ClientIp,
    body: Result<axum::body::Bytes, ApiError>,
) -> Response {
    cors(match decide_result(st, client, body).await {
        Ok(json) => json_bytes(json),
        Err(e) => e.into_response(),
    })
}

/// The decide answer as JSON bytes, or the error to answer with (the CORS header is the
/// caller's).
pub(crate) async fn decide_result(
    st: &AppState,
    client: ClientIp,
    body: Result<axum::body::Bytes, ApiError>,
) -> Result<Vec<u8>, ApiError> {
    let req = with_client_ip(body.and_then(|bytes| parse_decide(&bytes)), client);
    decide_any(st, req).await
}

/// A JSON answer already written.
fn json_bytes(bytes: Vec<u8>) -> Response {
    let mut resp = bytes.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// `GET /v1/decide?placement=ID&uid=U&url=...` for simple tags.
fn decide_from_query(q: QueryPairs) -> Result<DecideRequest, ApiError> {
    let Query(pairs) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    let mut req = DecideRequest::default();
    let mut user = UserReq::default();
    let mut device = DeviceReq::default();
    let mut geo = GeoReq::default();
    for (k, v) in pairs {
        match k.as_str() {
            "placement" => req.placements.push(PlacementReq { id: Some(v), ..Default::default() }),
            "uid" => user.id = Some(v),
            "seg" => user.segments.push(v),
            "url" => req.page = Some(PageReq { url: v, referrer: None }),
            "bundle" => req.app = Some(crate::serving::AppReq { bundle: v }),
            "country" => geo.country = Some(v),
            "region" => geo.region = Some(v),
            "ip" => device.ip = Some(v),
            "lang" => device.language = Some(v),
            "deal" => req.deals.push(v),
            "kv" => {
                let (key, value) = v
                    .split_once(':')
                    .ok_or_else(|| ApiError::bad_request("invalid_value", "kv", "key-values are written key:value"))?;
                req.key_values.insert(key.to_string(), KvValue::One(value.to_string()));
            }
            "test" => req.test = v == "1" || v == "true",
            other => {
                return Err(ApiError::bad_request(
                    "unknown_parameter",
                    other,
                    "expected placement, uid, seg, url, bundle, country, region, ip, lang, deal, kv or test",
                ))
            }
        }
    }
    req.user = Some(user);
    req.device = Some(device);
    req.geo = Some(geo);
    Ok(req)
}

async fn decide_get(State(st): State<AppState>, client: ClientIp, q: QueryPairs) -> Response {
    let result = decide_any(&st, with_client_ip(decide_from_query(q), client)).await;
    cors(match result {
        Ok(json) => json_bytes(json),
        Err(e) => e.into_response(),
    })
}

fn tracking_params(q: QueryPairs) -> Result<(String, String, bool), ApiError> {
    let Query(pairs) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    let (mut p, mut s, mut gif) = (None, None, false);
    for (k, v) in pairs {
        match k.as_str() {
            "p" => p = Some(v),
            "s" => s = Some(v),
            "f" => gif = v == "gif",
            _ => {}
        }
    }
    let p = p.ok_or_else(|| ApiError::bad_request("missing_field", "p", "the tracking URL lost its payload"))?;
    let s = s.ok_or_else(|| ApiError::bad_request("missing_field", "s", "the tracking URL lost its signature"))?;
    Ok((p, s, gif))
}

/// Counts a tracker on this process, or (distributed mode) exactly once across processes.
async fn track_any(st: &AppState, kind: TrackKind, p: &str, s: &str) -> Result<crate::tracking::TrackedAd, ApiError> {
    let serving = serving(st)?;
    match serving.shared() {
        None => {
            let ad = serving.track(kind, p, s)?;
            serving.await_written().await;
            Ok(ad)
        }
        Some(shared) => shared.track(serving, kind, p, s).await,
    }
}

async fn track_impression(State(st): State<AppState>, q: QueryPairs) -> Response {
    let result = match tracking_params(q) {
        Ok((p, s, gif)) => track_any(&st, TrackKind::Impression, &p, &s).await.map(|_| gif),
        Err(e) => Err(e),
    };
    cors(match result {
        Ok(true) => {
            ([(header::CONTENT_TYPE, "image/gif"), (header::CACHE_CONTROL, "no-store")], PIXEL_GIF).into_response()
        }
        Ok(false) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    })
}

async fn track_click(State(st): State<AppState>, q: QueryPairs) -> Response {
    let result = match tracking_params(q) {
        Ok((p, s, _)) => track_any(&st, TrackKind::Click, &p, &s).await,
        Err(e) => Err(e),
    };
    let append = st.serving.as_ref().is_some_and(|s| s.settings().attribution.append_click_id);
    let result = result.map(|mut ad| {
        if append && !ad.landing_url.is_empty() {
            // The click id rides along to the landing page, whose conversion pixel sends it back.
            let sep = if ad.landing_url.contains('?') { '&' } else { '?' };
            let (base, fragment) = match ad.landing_url.split_once('#') {
                Some((b, f)) => (b.to_string(), format!("#{f}")),
                None => (ad.landing_url.clone(), String::new()),
            };
            ad.landing_url = format!("{base}{sep}adp_click={}{fragment}", ad.decision_id);
        }
        ad
    });
    match result {
        Ok(ad) => match HeaderValue::from_str(&ad.landing_url) {
            Ok(loc) => (
                StatusCode::FOUND,
                [(header::LOCATION, loc), (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            )
                .into_response(),
            Err(_) => ApiError::internal("landing URL is not a valid header").into_response(),
        },
        Err(e) => e.into_response(),
    }
}

fn parse_time(v: &str, field: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::bad_request("invalid_value", field, "an RFC 3339 time, e.g. 2026-11-27T00:00:00Z"))
}

/// The delivery rows from the report backend (ClickHouse in distributed mode): the same
/// hours, line items and counts the in-process rollup gives.
async fn delivery_from_backend(
    backend: &crate::ReportBackend,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<adp_domain::DeliveryRow>, ApiError> {
    use adp_analytics::report::{Dimension, DimensionValue, ReportFilters, ReportQuery};
    use chrono::DurationRound;
    let hour = chrono::TimeDelta::hours(1);
    let query = ReportQuery {
        from: from.duration_trunc(hour).unwrap_or(from),
        to,
        time_zone: chrono_tz::UTC,
        dimensions: vec![Dimension::Hour, Dimension::LineItem],
        metrics: Vec::new(),
        filters: ReportFilters::default(),
    };
    let rows = backend(query).await.map_err(|e| {
        tracing::warn!(error = %e, "report backend failed");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "report_backend_unavailable", e)
    })?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let (Some(DimensionValue::Hour(secs)), Some(DimensionValue::Id(li))) =
            (row.dimensions.first(), row.dimensions.get(1))
        else {
            continue;
        };
        let (Some(hour), false) = (DateTime::<Utc>::from_timestamp(*secs, 0), li.is_empty()) else { continue };
        let t = &row.totals;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        out.push(adp_domain::DeliveryRow {
            hour,
            line_item_id: li.clone(),
            decisions: n(t.decisions),
            impressions: n(t.billable_impressions()),
            clicks: n(t.clicks),
            bids: n(t.bids),
            wins: n(t.wins),
            conversions: n(t.conversions),
            spend_micros: t.spend_micros,
        });
    }
    Ok(out)
}

/// `GET /api/v1/reports/delivery?from=&to=`: per line item per hour, [from, to).
async fn delivery_report(
    State(st): State<AppState>,
    who: Principal,
    q: QueryPairs,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(pairs) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    let now = Utc::now();
    let (mut from, mut to) = (now - Duration::hours(24), now + Duration::hours(1));
    for (k, v) in pairs {
        match k.as_str() {
            "from" => from = parse_time(&v, "from")?,
            "to" => to = parse_time(&v, "to")?,
            other => return Err(ApiError::bad_request("unknown_parameter", other, "expected from and to")),
        }
    }
    if to <= from {
        return Err(ApiError::bad_request("invalid_value", "to", "`to` must be after `from`"));
    }
    let mut rows = match &st.report_backend {
        Some(backend) => delivery_from_backend(backend, from, to).await?,
        None => serving(&st)?.rollup().query(from, to),
    };
    if let Some(adv) = who.advertiser_id() {
        let mut mine = std::collections::HashMap::new();
        let mut kept = Vec::with_capacity(rows.len());
        for row in rows {
            let owned = match mine.get(&row.line_item_id) {
                Some(b) => *b,
                None => {
                    let b = match st.store.get(Kind::LineItem, &row.line_item_id).await? {
                        Some(r) => matches!(r.spec, Spec::LineItem(_)) && r.meta.owner_id == adv,
                        None => false,
                    };
                    mine.insert(row.line_item_id.clone(), b);
                    b
                }
            };
            if owned {
                kept.push(row);
            }
        }
        rows = kept;
    }
    Ok(Json(json!({"from": from, "to": to, "rows": rows})))
}

/// `GET /api/v1/serving/stats`: the serving role's own counters (admin).
async fn serving_stats(State(st): State<AppState>, who: Principal) -> Result<Json<serde_json::Value>, ApiError> {
    who.require_admin()?;
    let s = serving(&st)?;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    Ok(Json(json!({
        "catalog_version": s.snapshot().version,
        "requests": load(&s.stats.requests),
        "filled": load(&s.stats.filled),
        "unfilled": load(&s.stats.unfilled),
        "impressions": load(&s.stats.impressions),
        "clicks": load(&s.stats.clicks),
        "tracking_rejected": load(&s.stats.tracking_rejected),
        "events_rejected": load(&s.stats.events_rejected),
        "bid_requests": load(&s.stats.bid_requests),
        "batches": load(&s.stats.batches),
        "bids": load(&s.stats.bids),
        "bid_timeouts": load(&s.stats.bid_timeouts),
        "wins": load(&s.stats.wins),
        "billed": load(&s.stats.billed),
        "losses": load(&s.stats.losses),
        "conversions": load(&s.stats.conversions),
        "events": s.event_stats(),
        "kafka": st.kafka_stats.as_ref().map(|stats| stats()),
    })))
}

/// When a bid request arrived (before its body was read), for the tmax deadline.
#[derive(Clone, Copy)]
struct Arrived(Instant);

async fn stamp_arrival(mut req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    req.extensions_mut().insert(Arrived(Instant::now()));
    next.run(req).await
}

fn openrtb_json(status: StatusCode, body: &BidResponse) -> Response {
    let mut bytes = Vec::with_capacity(4096);
    match sonic_rs::to_writer(&mut bytes, body) {
        Ok(()) => {
            let mut resp = (status, bytes).into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            h.insert(OPENRTB_VERSION_NAME, HeaderValue::from_static(OPENRTB_VERSION));
            resp
        }
        Err(e) => ApiError::internal(format!("bid response not serialisable: {e}")).into_response(),
    }
}

fn no_bid_response(st: &Serving, request_id: &str, nb: &NoBid) -> Response {
    if st.settings().rtb.no_bid_with_nbr {
        openrtb_json(StatusCode::OK, &nb.response(request_id))
    } else {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        resp.headers_mut().insert(OPENRTB_VERSION_NAME, HeaderValue::from_static(OPENRTB_VERSION));
        resp
    }
}

/// `POST /openrtb2/bid`: an OpenRTB 2.5 or 2.6 bid request (gzip accepted and, when the
/// exchange accepts it, answered gzipped). Malformed JSON → 400; a request the spec calls
/// invalid → 400 naming the field (or 200 with nbr 2 in nbr mode); no bid → 204 (or nbr).
async fn openrtb_bid(
    State(st): State<AppState>,
    arrived: Option<axum::Extension<Arrived>>,
    body: Result<RawBody, ApiError>,
) -> Response {
    let arrived = arrived.map_or_else(Instant::now, |a| a.0 .0);
    bid_body(&st, arrived, body.map(|RawBody(b)| b)).await
}

/// `POST /openrtb2/bid` once its (decoded) body is read (also called by the hot-path
/// dispatcher, `net`, for requests without content coding).
pub(crate) async fn bid_body(st: &AppState, arrived: Instant, body: Result<axum::body::Bytes, ApiError>) -> Response {
    let s = match serving(st) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let bytes = match body {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let mut dom = adp_openrtb::BidDom::default();
    let req = match bid_request(s, &bytes, &mut dom) {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let deadline = crate::bidder::deadline(arrived, req.tmax, s.settings().rtb.network_allowance_ms);
    let result = match s.shared() {
        None => s.bid(&req, deadline),
        Some(shared) => {
            let rules = crate::distributed::Shared::rtb_cap_rules(s);
            let freq = shared.bid_caps(crate::bidder::user_of(&req), &rules).await;
            s.bid_with(&req, deadline, freq.as_ref())
        }
    };
    bid_answer(s, &req.id, &result)
}

/// A bid request's body parsed, 2.5-normalised and validated; or the answer to a body that is
/// not a valid bid request (400, or 200 with nbr 2 in nbr mode). The request borrows from `dom`.
fn bid_request<'a>(
    s: &Serving,
    bytes: &'a [u8],
    dom: &'a mut adp_openrtb::BidDom,
) -> Result<adp_openrtb::BidRequest<'a>, Box<Response>> {
    let mut req = match adp_openrtb::parse_request_for_bidding_fast(bytes, dom) {
        Ok(r) => r,
        Err(e) => {
            let code = if e.kind == adp_openrtb::ParseErrorKind::Data { "invalid_value" } else { "malformed_json" };
            return Err(Box::new(
                ApiError::new(StatusCode::BAD_REQUEST, code, e.to_string()).with_field(e.path).into_response(),
            ));
        }
    };
    req.normalize_2_5();
    if let Err(e) = req.validate() {
        if s.settings().rtb.no_bid_with_nbr {
            let nb = NoBid { nbr: e.nbr, reason: e.reason.as_str(), imps: Vec::new() };
            let mut r = nb.response(&req.id);
            r.ext = Some(json!({"adplatform": {"reason": e.reason.as_str(), "field": e.path}}));
            return Err(Box::new(openrtb_json(StatusCode::OK, &r)));
        }
        return Err(Box::new(
            ApiError::new(StatusCode::BAD_REQUEST, e.reason.as_str(), e.reason.message())
                .with_field(e.path)
                .into_response(),
        ));
    }
    Ok(req)
}

/// The answer to a bid request that was bid on: the bids, or the no-bid.
fn bid_answer(s: &Serving, request_id: &str, result: &Result<BidResponse, NoBid>) -> Response {
    match result {
        Ok(resp) => openrtb_json(StatusCode::OK, resp),
        Err(nb) => no_bid_response(s, request_id, nb),
    }
}

/// A bid request waiting in a serving thread's batch (`net`): when it arrived, its body, and
/// where its answer goes.
pub(crate) struct QueuedBid {
    pub arrived: Instant,
    pub body: Result<axum::body::Bytes, ApiError>,
    pub reply: tokio::sync::oneshot::Sender<Response>,
}

/// Answers a batch of bid requests of one serving thread in embedded mode, in stages: every
/// body parsed and validated, then every request bid on, then every answer written. Each stage
/// runs its own code for the whole batch while that code is in the CPU's caches (a bid's code,
/// parser, engine, signer and serializer together, is larger than the instruction cache).
/// The same answers as [`bid_body`], request by request. A request whose handling panics fails
/// alone (its reply is dropped: 500 from `net`). In distributed mode each request is answered
/// through `bid_body` (it awaits the shared counters).
pub(crate) async fn bid_batch(st: &AppState, mut batch: Vec<QueuedBid>) {
    let s = match serving(st) {
        Ok(s) if s.shared().is_none() => s,
        // Not reached (`net` batches in embedded mode only): one by one, as `Job::run` would.
        _ => {
            for q in batch {
                if !q.reply.is_closed() {
                    let _ = q.reply.send(bid_body(st, q.arrived, q.body).await);
                }
            }
            return;
        }
    };
    // A connection that went away while its request waited gets no answer (and no bid).
    batch.retain(|q| !q.reply.is_closed());
    let mut doms: Vec<adp_openrtb::BidDom> = batch.iter().map(|_| adp_openrtb::BidDom::default()).collect();
    let mut bodies = Vec::with_capacity(batch.len());
    let mut waiting = Vec::with_capacity(batch.len());
    for q in batch {
        match q.body {
            Ok(b) => {
                bodies.push(b);
                waiting.push((q.arrived, q.reply));
            }
            Err(e) => {
                let _ = q.reply.send(e.into_response());
            }
        }
    }
    // Parse and validate.
    let mut parsed: Vec<Option<Result<adp_openrtb::BidRequest<'_>, Box<Response>>>> = bodies
        .iter()
        .zip(doms.iter_mut())
        .map(|(b, dom)| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let dom = dom; // moved in: the closure is FnOnce and the request may borrow it
                bid_request(s, b, dom)
            }))
            .ok()
        })
        .collect();
    // Bid.
    let network_allowance_ms = s.settings().rtb.network_allowance_ms;
    let results: Vec<Option<Result<BidResponse, NoBid>>> = parsed
        .iter()
        .zip(&waiting)
        .map(|(p, (arrived, _))| match p {
            Some(Ok(req)) => {
                let deadline = crate::bidder::deadline(*arrived, req.tmax, network_allowance_ms);
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.bid(req, deadline))).ok()
            }
            _ => None,
        })
        .collect();
    // Answer (the requests and their bodies' copies are dropped after the last answer is written).
    let mut answers = Vec::with_capacity(waiting.len());
    for (p, result) in parsed.iter_mut().zip(&results) {
        answers.push(match (&*p, result) {
            (Some(Ok(req)), Some(result)) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bid_answer(s, &req.id, result))).ok()
            }
            // Not a valid bid request: its answer is ready.
            (Some(Err(_)), _) => p.take().and_then(Result::err).map(|resp| *resp),
            // Its parse or its bid panicked.
            _ => None,
        });
    }
    for (answer, (_, reply)) in answers.into_iter().zip(waiting) {
        match answer {
            Some(resp) => {
                let _ = reply.send(resp);
            }
            None => tracing::error!("a bid request panicked in the serving thread's worker"),
        }
    }
    drop(results);
    drop(parsed);
    drop(doms);
}

/// `GET /v1/t/conv?adv=&order=&value=&cur=&click=&uid=[&f=gif]`: the advertiser's conversion
/// pixel. `value` is in currency units (e.g. 12.50); 204 (or a GIF) when counted.
async fn conversion_pixel(State(st): State<AppState>, q: QueryPairs) -> Response {
    let result = (|| {
        let Query(pairs) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
        let mut req = crate::conversions::ConversionRequest::default();
        let mut gif = false;
        for (k, v) in pairs {
            match k.as_str() {
                "adv" => req.advertiser_id = v,
                "order" => req.order_id = v,
                "click" | "adp_click" => req.click_id = Some(v),
                "uid" => req.user_id = Some(v),
                "cur" => req.currency = Some(v),
                "value" => {
                    req.value_micros = adp_openrtb::price::parse_price_micros(&v)
                        .map_err(|e| ApiError::bad_request("invalid_value", "value", e.to_string()))?
                }
                "f" => gif = v == "gif",
                other => {
                    return Err(ApiError::bad_request(
                        "unknown_parameter",
                        other,
                        "expected adv, order, value, cur, click, uid or f",
                    ))
                }
            }
        }
        serving(&st)?.convert(&req, Utc::now()).map(|_| gif)
    })();
    cors(match result {
        Ok(true) => {
            ([(header::CONTENT_TYPE, "image/gif"), (header::CACHE_CONTROL, "no-store")], PIXEL_GIF).into_response()
        }
        Ok(false) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    })
}

/// `POST /v1/conversions`: a conversion reported server to server with an API key (an
/// advertiser's key reports its own conversions only).
async fn conversion_s2s(
    State(st): State<AppState>,
    who: Principal,
    body: Result<RawBody, ApiError>,
) -> Result<(StatusCode, Json<crate::conversions::ConversionResult>), ApiError> {
    let RawBody(bytes) = body?;
    let req: crate::conversions::ConversionRequest = crate::serving::parse_json_body(&bytes)?;
    if let Some(own) = who.advertiser_id() {
        if own != req.advertiser_id {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "an advertiser reports its own conversions")
                .with_field("advertiser_id"));
        }
    }
    let result = serving(&st)?.convert(&req, Utc::now())?;
    Ok((StatusCode::ACCEPTED, Json(result)))
}

type NoticeParams = (String, String, Option<String>, Option<String>);

fn notice_params(q: QueryPairs) -> Result<NoticeParams, ApiError> {
    let Query(pairs) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    let (mut p, mut s, mut price, mut loss) = (None, None, None, None);
    for (k, v) in pairs {
        match k.as_str() {
            "p" => p = Some(v),
            "s" => s = Some(v),
            "price" => price = Some(v),
            "loss" => loss = Some(v),
            _ => {}
        }
    }
    let p = p.ok_or_else(|| ApiError::bad_request("missing_field", "p", "the notice URL lost its payload"))?;
    let s = s.ok_or_else(|| ApiError::bad_request("missing_field", "s", "the notice URL lost its signature"))?;
    Ok((p, s, price, loss))
}

async fn notice(st: AppState, kind: TrackKind, q: QueryPairs) -> Response {
    let result = match (notice_params(q), serving(&st)) {
        (Ok((p, s, price, loss)), Ok(serving)) => match serving.shared() {
            None => {
                let r = serving.notice(kind, &p, &s, price.as_deref(), loss.as_deref());
                serving.await_written().await;
                r
            }
            Some(shared) => shared.notice(serving, kind, &p, &s, price.as_deref(), loss.as_deref()).await,
        },
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    match result {
        Ok(NoticeOutcome::Done(Some(markup))) => {
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], markup)
                .into_response()
        }
        Ok(NoticeOutcome::Done(None)) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn notice_win(State(st): State<AppState>, q: QueryPairs) -> Response {
    notice(st, TrackKind::Win, q).await
}

async fn notice_billing(State(st): State<AppState>, q: QueryPairs) -> Response {
    notice(st, TrackKind::Billing, q).await
}

async fn notice_loss(State(st): State<AppState>, q: QueryPairs) -> Response {
    notice(st, TrackKind::Loss, q).await
}

/// Decide, the bidder, the trackers and notices: the hot path.
pub fn hot_routes() -> Router<AppState> {
    decide_routes().merge(bid_routes()).merge(track_routes())
}

/// The decide role: `/v1/decide`.
pub fn decide_routes() -> Router<AppState> {
    Router::new().route("/v1/decide", get(decide_get).post(decide_post))
}

/// The bid role: `/openrtb2/bid` (gzip in and out).
pub fn bid_routes() -> Router<AppState> {
    Router::new()
        .route("/openrtb2/bid", post(openrtb_bid))
        .layer(CompressionLayer::new().gzip(true).no_br().no_deflate().no_zstd())
        .layer(RequestDecompressionLayer::new().gzip(true).no_br().no_deflate().no_zstd())
        .layer(axum::middleware::from_fn(stamp_arrival))
}

/// The track role: impression and click trackers, the conversion pixel, win/billing/loss notices.
pub fn track_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/t/imp", get(track_impression))
        .route("/v1/t/click", get(track_click))
        .route("/v1/t/conv", get(conversion_pixel))
        .route("/v1/rtb/win", get(notice_win))
        .route("/v1/rtb/bill", get(notice_billing))
        .route("/v1/rtb/loss", get(notice_loss))
}

/// Server-to-server conversions (with the track role when the api role runs elsewhere).
pub fn conversion_routes() -> Router<AppState> {
    Router::new().route("/v1/conversions", post(conversion_s2s))
}

/// The delivery report and the serving counters.
pub fn reporting_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/reports/delivery", get(delivery_report))
        .route("/api/v1/serving/stats", get(serving_stats))
        .route("/api/v1/reports", get(crate::reports::report))
        .route("/v1/conversions", post(conversion_s2s))
}
