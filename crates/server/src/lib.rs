//! server: the HTTP face of AdPlatform — management API, health and readiness, catalog
//! version — and the in-process catalog change feed. Wiring (which store, which address)
//! is the binary's job; this crate takes a listener and a store and serves.
#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod bidder;
pub mod catalog;
pub mod conversions;
pub mod demo;
pub mod distributed;
pub mod error;
pub mod http_metrics;
pub mod ids;
pub mod json_out;
pub mod markup;
pub mod metrics;
pub mod net;
pub mod openapi;
pub mod reports;
pub mod serving;
pub mod serving_http;
pub mod tracking;

use adp_domain::CatalogStore;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use catalog::{CatalogService, ChangeFeed};
use error::ApiError;
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Answer decide and bid requests in batches, one per wake-up of a serving thread
    /// (`net::worker`; embedded mode).
    pub batch_requests: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings { max_body_bytes: 1024 * 1024, batch_requests: true }
    }
}

/// Reports the state of a component wired in by the binary (e.g. the Kafka forwarder) as JSON.
pub type StatsHook = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// A boxed future, for hooks the binary wires in.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// Answers a report query from a backend other than the in-process rollup (ClickHouse in
/// distributed mode).
pub type ReportBackend = Arc<
    dyn Fn(adp_analytics::report::ReportQuery) -> BoxFuture<Result<Vec<adp_analytics::report::ReportRow>, String>>
        + Send
        + Sync,
>;

/// One dependency `/readyz` checks: its name, whether the process is unready without it, and
/// the check (Ok, or why not).
#[derive(Clone)]
pub struct ReadyCheck {
    pub name: &'static str,
    pub required: bool,
    pub check: Arc<dyn Fn() -> BoxFuture<Result<(), String>> + Send + Sync>,
}

/// A gauge the binary wires into `/metrics` (e.g. the ingest role's lag).
#[derive(Clone)]
pub struct GaugeHook {
    pub name: &'static str,
    pub help: &'static str,
    pub read: Arc<dyn Fn() -> i64 + Send + Sync>,
}

/// What every handler shares; cloned per request, so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

pub struct AppStateInner {
    pub store: Arc<dyn CatalogStore>,
    pub catalog: CatalogService,
    /// The serving role, when this process runs it.
    pub serving: Option<Arc<serving::Serving>>,
    /// The Kafka forwarder's counters, when events are forwarded (a soft dependency: shown in
    /// the serving stats and `/readyz`, never failing readiness).
    pub kafka_stats: Option<StatsHook>,
    /// Reports from ClickHouse (distributed mode); else from the serving role's rollup.
    pub report_backend: Option<ReportBackend>,
    /// Dependencies of a distributed process, checked by `/readyz`.
    pub ready_checks: Vec<ReadyCheck>,
    /// The roles this process runs (shown by `/readyz` and the catalog version).
    pub roles: Vec<&'static str>,
    /// Gauges for `/metrics` wired in by the binary.
    pub gauges: Vec<GaugeHook>,
    openapi: String,
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

impl AppState {
    /// Builds the state; the feed starts at the store's current catalog version.
    pub async fn new(store: Arc<dyn CatalogStore>) -> Result<AppState, adp_domain::StoreError> {
        let version = store.catalog_version().await?;
        let catalog = CatalogService::new(Arc::clone(&store), ChangeFeed::new(version));
        let openapi = openapi::document().to_string();
        Ok(AppState(Arc::new(AppStateInner {
            store,
            catalog,
            serving: None,
            kafka_stats: None,
            report_backend: None,
            ready_checks: Vec::new(),
            roles: vec!["decide", "bid", "track", "api", "ingest"],
            gauges: Vec::new(),
            openapi,
        })))
    }

    /// Adds the serving role (before the state is shared).
    pub fn with_serving(self, serving: Arc<serving::Serving>) -> AppState {
        let inner = self.into_inner();
        AppState(Arc::new(AppStateInner { serving: Some(serving), ..inner }))
    }

    /// Adds the Kafka forwarder's counters (before the state is shared).
    pub fn with_kafka_stats(self, stats: StatsHook) -> AppState {
        let inner = self.into_inner();
        AppState(Arc::new(AppStateInner { kafka_stats: Some(stats), ..inner }))
    }

    /// Serves reports from `backend` (before the state is shared).
    pub fn with_report_backend(self, backend: ReportBackend) -> AppState {
        let inner = self.into_inner();
        AppState(Arc::new(AppStateInner { report_backend: Some(backend), ..inner }))
    }

    /// Adds a dependency to `/readyz` (before the state is shared).
    pub fn with_ready_check(self, check: ReadyCheck) -> AppState {
        let mut inner = self.into_inner();
        inner.ready_checks.push(check);
        AppState(Arc::new(inner))
    }

    /// Adds a gauge to `/metrics` (before the state is shared).
    pub fn with_gauge(self, gauge: GaugeHook) -> AppState {
        let mut inner = self.into_inner();
        inner.gauges.push(gauge);
        AppState(Arc::new(inner))
    }

    /// Names the roles this process runs (before the state is shared).
    pub fn with_roles(self, roles: Vec<&'static str>) -> AppState {
        let inner = self.into_inner();
        AppState(Arc::new(AppStateInner { roles, ..inner }))
    }

    fn into_inner(self) -> AppStateInner {
        Arc::try_unwrap(self.0).unwrap_or_else(|shared| AppStateInner {
            store: Arc::clone(&shared.store),
            catalog: shared.catalog.clone(),
            serving: shared.serving.clone(),
            kafka_stats: shared.kafka_stats.clone(),
            report_backend: shared.report_backend.clone(),
            ready_checks: shared.ready_checks.clone(),
            roles: shared.roles.clone(),
            gauges: shared.gauges.clone(),
            openapi: shared.openapi.clone(),
        })
    }

    pub fn feed(&self) -> &ChangeFeed {
        self.catalog.feed()
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(st): State<AppState>) -> Response {
    let store = st.store.health().await;
    let mut ready = store.ready();
    let mut body = json!({"checks": {"catalog_store": store}, "roles": st.roles});
    if let Some(kafka) = &st.kafka_stats {
        // Soft: while the broker is away events wait in the local log, so serving goes on.
        let up = kafka()["broker_up"].as_bool().unwrap_or(false);
        body["checks"]["kafka"] = json!({"status": if up { "up" } else { "down" }, "required": false});
    }
    for c in &st.ready_checks {
        let result = tokio::time::timeout(std::time::Duration::from_secs(2), (c.check)())
            .await
            .unwrap_or_else(|_| Err("no answer within 2 s".to_string()));
        if result.is_err() && c.required {
            ready = false;
        }
        body["checks"][c.name] = match result {
            Ok(()) => json!({"status": "up", "required": c.required}),
            Err(e) => json!({"status": "down", "required": c.required, "error": e}),
        };
    }
    body["status"] = json!(if ready { "ready" } else { "not_ready" });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// The catalog version in the store and, on serving roles, the version of the snapshot this
/// process serves.
async fn catalog_version(State(st): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let stored = st.store.catalog_version().await?;
    let serving = st.serving.as_ref().map(|s| s.snapshot().version);
    Ok(Json(json!({"version": stored, "store_version": stored, "serving_version": serving})))
}

async fn openapi_json(State(st): State<AppState>) -> Response {
    let mut resp = st.openapi.clone().into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_route", "no such route; see /api/v1/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
}

/// Logs each request with its status and latency.
async fn access_log(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let micros = started.elapsed().as_micros() as u64;
    if status >= 500 {
        tracing::warn!(%method, path, status, micros, "request failed");
    } else {
        tracing::debug!(%method, path, status, micros, "request");
    }
    resp
}

/// Every route of the embedded server.
pub fn router(state: AppState, settings: &HttpSettings) -> Router {
    let roles = state.roles.clone();
    router_for_roles(state, settings, &roles)
}

/// The routes of the given roles (`decide`, `bid`, `track`, `api`; `ingest` has none), plus
/// health, readiness, metrics, the catalog version and the OpenAPI document on every role.
pub fn router_for_roles(state: AppState, settings: &HttpSettings, roles: &[&str]) -> Router {
    let mut r = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/catalog/version", get(catalog_version))
        .route("/api/v1/openapi.json", get(openapi_json));
    if roles.contains(&"api") {
        r = r.merge(api::catalog_routes()).merge(api::api_key_routes()).merge(serving_http::reporting_routes());
    } else if roles.contains(&"track") {
        // Server-to-server conversions are tracking.
        r = r.merge(serving_http::conversion_routes());
    }
    let mut r =
        r.fallback(not_found).method_not_allowed_fallback(method_not_allowed).layer(middleware::from_fn(access_log));
    // The hot path is counted by the serving stats, not logged per request.
    if roles.contains(&"decide") {
        r = r.merge(serving_http::decide_routes());
    }
    if roles.contains(&"bid") {
        r = r.merge(serving_http::bid_routes());
    }
    if roles.contains(&"track") {
        r = r.merge(serving_http::track_routes());
    }
    r.layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(middleware::from_fn(http_metrics::track))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    settings: HttpSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state, &settings)).with_graceful_shutdown(shutdown).await
}
