//! api: the management REST API under `/api/v1`. Routes are built from the `RESOURCES` table,
//! which the OpenAPI document is generated from too, so the two cannot drift apart.

use crate::auth::{self, Principal};
use crate::catalog::{record_json, ListParams};
use crate::error::ApiError;
use crate::AppState;
use adp_domain::{ApiKey, KeyStatus, Kind, Page, Record, Role, Status};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

/// Where a list filter points: the object's owner (advertiser or publisher) or its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterTarget {
    Owner,
    Parent,
}

pub struct Resource {
    pub kind: Kind,
    /// URL segment under `/api/v1/`.
    pub segment: &'static str,
    /// Name of the object's schema in the OpenAPI document.
    pub schema: &'static str,
    pub filters: &'static [(&'static str, FilterTarget)],
}

pub const RESOURCES: &[Resource] = &[
    Resource { kind: Kind::Advertiser, segment: "advertisers", schema: "Advertiser", filters: &[] },
    Resource {
        kind: Kind::Campaign,
        segment: "campaigns",
        schema: "Campaign",
        filters: &[("advertiser_id", FilterTarget::Owner)],
    },
    Resource {
        kind: Kind::LineItem,
        segment: "line-items",
        schema: "LineItem",
        filters: &[("campaign_id", FilterTarget::Parent), ("advertiser_id", FilterTarget::Owner)],
    },
    Resource {
        kind: Kind::Creative,
        segment: "creatives",
        schema: "Creative",
        filters: &[("advertiser_id", FilterTarget::Owner)],
    },
    Resource { kind: Kind::Publisher, segment: "publishers", schema: "Publisher", filters: &[] },
    Resource { kind: Kind::Site, segment: "sites", schema: "Site", filters: &[("publisher_id", FilterTarget::Owner)] },
    Resource {
        kind: Kind::Placement,
        segment: "placements",
        schema: "Placement",
        filters: &[("site_id", FilterTarget::Parent), ("publisher_id", FilterTarget::Owner)],
    },
];

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 500;

/// A JSON request body: `application/json`, within the body limit, well-formed.
pub struct JsonBody(pub Value);

/// A raw request body within the body limit; too large → 413 in the API's error shape.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state).await.map(RawBody).map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body exceeds the size limit",
                )
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", rej.body_text())
            }
        })
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
                mime == "application/json" || mime == "application/merge-patch+json"
            })
            .unwrap_or(false);
        if !json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as `Content-Type: application/json`",
            ));
        }
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not valid JSON: {e}"))
        })
    }
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// Reads `If-Match: "3"` (weak tags and bare numbers accepted).
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let s = v.to_str().unwrap_or("").trim();
    let s = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
    s.parse()
        .map(Some)
        .map_err(|_| ApiError::bad_request("invalid_header", "If-Match", "If-Match must carry a version, e.g. \"3\""))
}

fn object_response(status: StatusCode, r: &Record, location: Option<String>) -> Response {
    let mut resp = (status, Json(record_json(r))).into_response();
    resp.headers_mut().insert(header::ETAG, etag(r.meta.version));
    if let Some(loc) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    resp
}

pub fn encode_cursor(after_id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{after_id}"))
}

fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    let bad = || ApiError::bad_request("invalid_cursor", "cursor", "the cursor is not one this API returned");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let s = String::from_utf8(raw).map_err(|_| bad())?;
    s.strip_prefix("v1:").map(str::to_string).ok_or_else(bad)
}

/// Parses the query of a list request; unknown parameters are refused.
fn list_params(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    allowed: &[(&'static str, FilterTarget)],
) -> Result<ListParams, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    let mut p = ListParams { limit: DEFAULT_PAGE_SIZE, ..Default::default() };
    for (k, v) in pairs {
        match k.as_str() {
            "limit" => {
                p.limit = v.parse().ok().filter(|n| (1..=MAX_PAGE_SIZE).contains(n)).ok_or_else(|| {
                    ApiError::bad_request("invalid_value", "limit", format!("limit is 1..={MAX_PAGE_SIZE}"))
                })?
            }
            "cursor" => p.after_id = Some(decode_cursor(&v)?),
            "status" => {
                p.status = Some(Status::parse(&v).ok_or_else(|| {
                    ApiError::bad_request("invalid_value", "status", "status is active, paused or archived")
                })?)
            }
            other => match allowed.iter().find(|(name, _)| *name == other) {
                Some((_, FilterTarget::Owner)) => p.owner_id = Some(v),
                Some((_, FilterTarget::Parent)) => p.parent_id = Some(v),
                None => {
                    let names: Vec<&str> =
                        ["limit", "cursor", "status"].into_iter().chain(allowed.iter().map(|(n, _)| *n)).collect();
                    return Err(ApiError::bad_request(
                        "unknown_parameter",
                        other,
                        format!("unknown query parameter `{other}`; expected one of {}", names.join(", ")),
                    ));
                }
            },
        }
    }
    Ok(p)
}

fn page_json<T>(page: Page<T>, item: impl Fn(&T) -> Value) -> Value {
    json!({
        "items": page.items.iter().map(item).collect::<Vec<_>>(),
        "next_cursor": page.next_after.as_deref().map(encode_cursor),
    })
}

/// The catalog resources' routes.
pub fn catalog_routes() -> Router<AppState> {
    let mut router = Router::new();
    for res in RESOURCES {
        let kind = res.kind;
        let filters = res.filters;
        let segment = res.segment;
        router = router
            .route(
                &format!("/api/v1/{segment}"),
                post(move |State(st): State<AppState>, who: Principal, JsonBody(body): JsonBody| async move {
                    let r = st.catalog.create(&who, kind, body).await?;
                    let loc = format!("/api/v1/{segment}/{}", r.meta.id);
                    Ok::<_, ApiError>(object_response(StatusCode::CREATED, &r, Some(loc)))
                })
                .get(
                    move |State(st): State<AppState>,
                          who: Principal,
                          query: Result<Query<Vec<(String, String)>>, QueryRejection>| async move {
                        let params = list_params(query, filters)?;
                        let page = st.catalog.list(&who, kind, params).await?;
                        Ok::<_, ApiError>(Json(page_json(page, record_json)))
                    },
                ),
            )
            .route(
                &format!("/api/v1/{segment}/{{id}}"),
                get(move |State(st): State<AppState>, who: Principal, Path(id): Path<String>| async move {
                    let r = st.catalog.get(&who, kind, &id).await?;
                    Ok::<_, ApiError>(object_response(StatusCode::OK, &r, None))
                })
                .patch(
                    move |State(st): State<AppState>,
                          who: Principal,
                          Path(id): Path<String>,
                          headers: HeaderMap,
                          JsonBody(body): JsonBody| async move {
                        let r = st.catalog.patch(&who, kind, &id, body, if_match(&headers)?).await?;
                        Ok::<_, ApiError>(object_response(StatusCode::OK, &r, None))
                    },
                )
                // DELETE is the same soft delete as POST .../archive: nothing is ever erased.
                .delete(
                    move |State(st): State<AppState>, who: Principal, Path(id): Path<String>, headers: HeaderMap| {
                        archive_one(st, who, kind, id, headers)
                    },
                ),
            )
            .route(
                &format!("/api/v1/{segment}/{{id}}/archive"),
                post(move |State(st): State<AppState>, who: Principal, Path(id): Path<String>, headers: HeaderMap| {
                    archive_one(st, who, kind, id, headers)
                }),
            );
    }
    router
}

async fn archive_one(
    st: AppState,
    who: Principal,
    kind: Kind,
    id: String,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let r = st.catalog.archive(&who, kind, &id, if_match(&headers)?).await?;
    Ok(object_response(StatusCode::OK, &r, None))
}

// ---------------------------------------------------------------------------------------------
// API keys (admin only)

/// Body of `POST /api/v1/api-keys`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub name: String,
    pub role: Role,
    /// Required for (and only for) the advertiser role.
    #[serde(default)]
    pub advertiser_id: Option<String>,
}

/// Body of `PATCH /api/v1/api-keys/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyPatch {
    #[serde(default)]
    pub version: Option<u64>,
    #[serde(default)]
    pub name: Option<String>,
}

/// A newly created key: the secret `key` is shown here once and never again.
#[derive(Serialize, ToSchema)]
pub struct ApiKeyCreated {
    pub key: String,
    #[serde(flatten)]
    pub api_key: ApiKey,
}

fn read_body<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(&body, &mut track);
    T::deserialize(de).map_err(|e| {
        let path = track.path().to_string();
        let path = if path == "." { String::new() } else { path };
        adp_domain::FieldError::from_serde(path, &e).into()
    })
}

fn key_response(status: StatusCode, key: &ApiKey) -> Response {
    let mut resp = (status, Json(key)).into_response();
    resp.headers_mut().insert(header::ETAG, etag(key.version));
    resp
}

fn check_key_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > 256 {
        return Err(ApiError::unprocessable("invalid_value", "name", "name must be 1 to 256 bytes and not blank"));
    }
    Ok(())
}

async fn create_api_key(
    State(st): State<AppState>,
    who: Principal,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let req: NewApiKey = read_body(body)?;
    check_key_name(&req.name)?;
    match (req.role, &req.advertiser_id) {
        (Role::Admin, Some(_)) => {
            return Err(ApiError::unprocessable(
                "invalid_value",
                "advertiser_id",
                "an admin key belongs to no advertiser",
            ))
        }
        (Role::Advertiser, None) => {
            return Err(ApiError::bad_request(
                "missing_field",
                "advertiser_id",
                "an advertiser key needs advertiser_id",
            ))
        }
        (Role::Advertiser, Some(adv)) => {
            if st.store.get(Kind::Advertiser, adv).await?.is_none() {
                return Err(ApiError::unprocessable(
                    "reference_not_found",
                    "advertiser_id",
                    format!("advertiser `{adv}` does not exist"),
                ));
            }
        }
        (Role::Admin, None) => {}
    }
    let secret = auth::generate_secret();
    let key = auth::create_key(st.store.as_ref(), &secret, &req.name, req.role, req.advertiser_id).await?;
    tracing::info!(key_id = %key.id, role = ?key.role, "api key created");
    let mut resp = (StatusCode::CREATED, Json(ApiKeyCreated { key: secret, api_key: key.clone() })).into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("/api/v1/api-keys/{}", key.id)) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}

async fn list_api_keys(
    State(st): State<AppState>,
    who: Principal,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    who.require_admin()?;
    let p = list_params(query, &[("advertiser_id", FilterTarget::Owner)])?;
    if p.status.is_some() {
        return Err(ApiError::bad_request(
            "unknown_parameter",
            "status",
            "API keys are filtered by advertiser_id only",
        ));
    }
    let page = st.store.list_api_keys(p.owner_id.as_deref(), p.after_id.as_deref(), p.limit).await?;
    Ok(Json(page_json(page, |k| serde_json::to_value(k).unwrap_or(Value::Null))))
}

async fn load_key(st: &AppState, id: &str) -> Result<ApiKey, ApiError> {
    st.store.get_api_key(id).await?.ok_or_else(|| ApiError::not_found("API key"))
}

async fn get_api_key(State(st): State<AppState>, who: Principal, Path(id): Path<String>) -> Result<Response, ApiError> {
    who.require_admin()?;
    Ok(key_response(StatusCode::OK, &load_key(&st, &id).await?))
}

async fn patch_api_key(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let patch: ApiKeyPatch = read_body(body)?;
    let version = match (patch.version, if_match(&headers)?) {
        (Some(v), _) | (None, Some(v)) => v,
        (None, None) => {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "version_required",
                "send the version you read",
            )
            .with_field("version"))
        }
    };
    let mut key = load_key(&st, &id).await?;
    if let Some(name) = patch.name {
        check_key_name(&name)?;
        key.name = name;
    }
    key.updated_at = Utc::now();
    let key = st.store.update_api_key(key, version).await?;
    Ok(key_response(StatusCode::OK, &key))
}

/// Archiving a key revokes it; a revoked key authenticates nothing.
async fn revoke_api_key(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let mut key = load_key(&st, &id).await?;
    let version = if_match(&headers)?.unwrap_or(key.version);
    if key.status == KeyStatus::Revoked {
        return Ok(key_response(StatusCode::OK, &key));
    }
    key.status = KeyStatus::Revoked;
    key.updated_at = Utc::now();
    let key = st.store.update_api_key(key, version).await?;
    tracing::info!(key_id = %key.id, "api key revoked");
    Ok(key_response(StatusCode::OK, &key))
}

pub fn api_key_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/api-keys", post(create_api_key).get(list_api_keys))
        .route("/api/v1/api-keys/{id}", get(get_api_key).patch(patch_api_key))
        .route("/api/v1/api-keys/{id}/archive", post(revoke_api_key))
}
