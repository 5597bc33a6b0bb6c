//! auth: API keys — generation, hashing (only the SHA-256 of a key is stored), the bootstrap
//! admin key, and the `Principal` every management request acts as.

use crate::error::ApiError;
use crate::AppState;
use adp_domain::{ApiKey, CatalogStore, KeyStatus, Role, StoreError};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use base64::Engine;
use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Who a request acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Admin { key_id: String },
    Advertiser { key_id: String, advertiser_id: String },
}

impl Principal {
    pub fn advertiser_id(&self) -> Option<&str> {
        match self {
            Principal::Admin { .. } => None,
            Principal::Advertiser { advertiser_id, .. } => Some(advertiser_id),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin { .. })
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("this operation needs an admin key"))
        }
    }
}

/// Minimum length of a key supplied by an operator (`--admin-key`).
pub const MIN_KEY_LEN: usize = 16;

pub fn hash_key(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A new random key secret: `adp_` and 256 random bits, base64url.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("adp_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn prefix_of(secret: &str) -> String {
    secret.chars().take(10).collect()
}

/// Stores a new key for `secret` and returns the stored record.
pub async fn create_key(
    store: &dyn CatalogStore,
    secret: &str,
    name: &str,
    role: Role,
    advertiser_id: Option<String>,
) -> Result<ApiKey, StoreError> {
    let now = Utc::now();
    let key = ApiKey {
        id: format!("key_{}", uuid::Uuid::now_v7().simple()),
        name: name.to_string(),
        role,
        advertiser_id,
        prefix: prefix_of(secret),
        status: KeyStatus::Active,
        version: 1,
        created_at: now,
        updated_at: now,
        key_hash: hash_key(secret),
    };
    store.insert_api_key(key).await
}

/// Installs the operator's bootstrap admin key if it is not stored yet. A revoked key stays
/// revoked: the operator must choose another.
pub async fn install_bootstrap_key(store: &dyn CatalogStore, secret: &str) -> Result<ApiKey, String> {
    if secret.len() < MIN_KEY_LEN {
        return Err(format!("the admin key must be at least {MIN_KEY_LEN} characters"));
    }
    match store.find_api_key_by_hash(&hash_key(secret)).await {
        Ok(Some(k)) if k.status == KeyStatus::Revoked => {
            Err(format!("the bootstrap admin key ({}) was revoked; choose another", k.id))
        }
        Ok(Some(k)) if k.role != Role::Admin => {
            Err(format!("the bootstrap key is stored as a non-admin key ({})", k.id))
        }
        Ok(Some(k)) => Ok(k),
        Ok(None) => create_key(store, secret, "bootstrap admin", Role::Admin, None).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let unauthenticated = |msg: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", msg.to_string());
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthenticated("send `Authorization: Bearer <api key>`"))?;
        let value = header.to_str().map_err(|_| unauthenticated("malformed Authorization header"))?;
        let secret = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| unauthenticated("the Authorization header must be `Bearer <api key>`"))?;
        let key = state
            .store
            .find_api_key_by_hash(&hash_key(secret))
            .await?
            .filter(|k| k.status == KeyStatus::Active)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_api_key", "unknown or revoked API key"))?;
        match (key.role, key.advertiser_id) {
            (Role::Admin, _) => Ok(Principal::Admin { key_id: key.id }),
            (Role::Advertiser, Some(advertiser_id)) => Ok(Principal::Advertiser { key_id: key.id, advertiser_id }),
            (Role::Advertiser, None) => Err(ApiError::internal("advertiser key without an advertiser")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_hash_is_stable() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        assert!(a.starts_with("adp_") && a.len() == 47, "{a}");
        assert_eq!(hash_key("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
