//! error: the one table from fault to HTTP status. Every error body is
//! `{"error": {"code": "...", "message": "...", "field": "json.path"}}`.

use adp_domain::{error::FaultClass, FieldError, StoreError};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

/// The error envelope.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable reason, e.g. `unknown_field`, `version_conflict`.
    pub code: String,
    pub message: String,
    /// JSON path of the field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), field: None }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message).with_field(field)
    }

    pub fn unprocessable(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with_field(field)
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        let status = match e.class {
            FaultClass::Malformed => StatusCode::BAD_REQUEST,
            FaultClass::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let field = (!e.field.is_empty()).then_some(e.field);
        ApiError { status, code: e.code, message: e.message, field }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found("object"),
            StoreError::AlreadyExists => {
                ApiError::new(StatusCode::CONFLICT, "already_exists", "an object with this id already exists")
                    .with_field("id")
            }
            StoreError::VersionConflict { current } => ApiError::new(
                StatusCode::CONFLICT,
                "version_conflict",
                format!("the object changed since you read it: its version is now {current}; read it again and retry"),
            )
            .with_field("version"),
            StoreError::Unavailable(msg) => {
                tracing::warn!(error = %msg, "catalog store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the catalog store is unavailable; retry later",
                )
            }
            StoreError::Corrupt(msg) => {
                tracing::error!(error = %msg, "catalog store returned corrupt data");
                ApiError::internal("stored data could not be read")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            ErrorBody { error: ErrorDetail { code: self.code.to_string(), message: self.message, field: self.field } };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
