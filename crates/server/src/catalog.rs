//! catalog: the management plane's rules over the store — tenancy, references between
//! objects, optimistic concurrency, read-only fields — and the in-process change feed that
//! tells the serving plane about every committed change.

use crate::auth::Principal;
use crate::error::ApiError;
use adp_domain::{
    new_meta, validate_id, Approval, CatalogChange, CatalogStore, Kind, ListQuery, Page, Record, Spec, Status,
    StoreError,
};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// Fields the platform owns; a client may echo them back unchanged but never set them.
const META_FIELDS: &[&str] = &["id", "version", "created_at", "updated_at", "catalog_version"];

/// Fields a merge patch replaces whole instead of merging into (one-key tagged unions).
pub const ATOMIC_FIELDS: &[&str] = &["targeting", "content"];

/// A field derived from the owner and shown read-only (e.g. a line item's advertiser).
fn derived_field(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::LineItem => Some("advertiser_id"),
        Kind::Placement => Some("publisher_id"),
        _ => None,
    }
}

/// Publishes committed catalog changes in-process. Subscribers that fall behind get
/// `Lagged` and must reload by version (`CatalogStore::changes_since` / `snapshot`).
#[derive(Clone)]
pub struct ChangeFeed {
    tx: broadcast::Sender<CatalogChange>,
    version: Arc<watch::Sender<u64>>,
}

impl ChangeFeed {
    pub fn new(initial_version: u64) -> ChangeFeed {
        let (tx, _) = broadcast::channel(4096);
        let (version, _) = watch::channel(initial_version);
        ChangeFeed { tx, version: Arc::new(version) }
    }

    pub fn publish(&self, change: CatalogChange) {
        let v = change.version;
        // No subscriber is not an error: the serving plane may not be running.
        let _ = self.tx.send(change);
        self.version.send_if_modified(|cur| {
            let newer = v > *cur;
            if newer {
                *cur = v;
            }
            newer
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<CatalogChange> {
        self.tx.subscribe()
    }

    /// The highest version published so far.
    pub fn watch_version(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

/// Filters of a list request, already parsed.
#[derive(Debug, Default, Clone)]
pub struct ListParams {
    pub status: Option<Status>,
    /// `advertiser_id` (demand side) or `publisher_id` (supply side).
    pub owner_id: Option<String>,
    /// The direct parent, e.g. `campaign_id` for line items.
    pub parent_id: Option<String>,
    pub after_id: Option<String>,
    pub limit: usize,
}

#[derive(Clone)]
pub struct CatalogService {
    store: Arc<dyn CatalogStore>,
    feed: ChangeFeed,
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

/// The JSON a client sees: spec fields, meta fields and derived fields.
pub fn record_json(r: &Record) -> Value {
    let mut v = r.spec.to_json();
    if let Some(m) = v.as_object_mut() {
        m.insert("id".into(), Value::from(r.meta.id.clone()));
        m.insert("version".into(), Value::from(r.meta.version));
        m.insert(
            "created_at".into(),
            Value::from(r.meta.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        m.insert(
            "updated_at".into(),
            Value::from(r.meta.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        m.insert("catalog_version".into(), Value::from(r.meta.catalog_version));
        if let Some(f) = derived_field(r.spec.kind()) {
            m.insert(f.into(), Value::from(r.meta.owner_id.clone()));
        }
    }
    v
}

fn what(kind: Kind) -> &'static str {
    match kind {
        Kind::Advertiser => "advertiser",
        Kind::Campaign => "campaign",
        Kind::LineItem => "line item",
        Kind::Creative => "creative",
        Kind::Publisher => "publisher",
        Kind::Site => "site",
        Kind::Placement => "placement",
    }
}

impl CatalogService {
    pub fn new(store: Arc<dyn CatalogStore>, feed: ChangeFeed) -> CatalogService {
        CatalogService { store, feed }
    }

    pub fn feed(&self) -> &ChangeFeed {
        &self.feed
    }

    /// Whether `who` may see objects of `kind` at all.
    fn check_kind(&self, who: &Principal, kind: Kind) -> Result<(), ApiError> {
        if kind.is_demand() || who.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("publishers, sites and placements are managed with an admin key"))
        }
    }

    fn visible(who: &Principal, r: &Record) -> bool {
        match who.advertiser_id() {
            None => true,
            Some(adv) => r.spec.kind().is_demand() && r.meta.owner_id == adv,
        }
    }

    /// Reads an object `who` may see; another tenant's object is indistinguishable from none.
    async fn load(&self, who: &Principal, kind: Kind, id: &str) -> Result<Record, ApiError> {
        self.check_kind(who, kind)?;
        match self.store.get(kind, id).await? {
            Some(r) if Self::visible(who, &r) => Ok(r),
            _ => Err(ApiError::not_found(what(kind))),
        }
    }

    pub async fn get(&self, who: &Principal, kind: Kind, id: &str) -> Result<Record, ApiError> {
        self.load(who, kind, id).await
    }

    pub async fn list(&self, who: &Principal, kind: Kind, params: ListParams) -> Result<Page<Record>, ApiError> {
        self.check_kind(who, kind)?;
        let mut owner_id = params.owner_id;
        if let Some(adv) = who.advertiser_id() {
            match &owner_id {
                Some(o) if o != adv => return Ok(Page { items: vec![], next_after: None }),
                _ => owner_id = Some(adv.to_string()),
            }
        }
        let query = ListQuery {
            owner_id,
            parent_id: params.parent_id,
            status: params.status,
            after_id: params.after_id,
            limit: params.limit,
        };
        Ok(self.store.list(kind, &query).await?)
    }

    pub async fn create(&self, who: &Principal, kind: Kind, body: Value) -> Result<Record, ApiError> {
        self.check_kind(who, kind)?;
        if kind == Kind::Advertiser {
            who.require_admin()?;
        }
        let Value::Object(mut fields) = body else {
            return Err(ApiError::bad_request("invalid_type", "", "the body must be a JSON object"));
        };
        let id = match fields.remove("id") {
            None | Some(Value::Null) => format!("{}_{}", kind.id_prefix(), uuid::Uuid::now_v7().simple()),
            Some(Value::String(s)) => {
                validate_id(&s, "id")?;
                s
            }
            Some(_) => return Err(ApiError::bad_request("invalid_type", "id", "an id is a string")),
        };
        for f in META_FIELDS.iter().copied().chain(derived_field(kind)) {
            if fields.contains_key(f) {
                return Err(ApiError::bad_request("read_only_field", f, format!("`{f}` is set by the platform")));
            }
        }
        let mut spec = Spec::from_json(kind, &Value::Object(fields))?;
        if let Spec::Creative(c) = &mut spec {
            if !who.is_admin() && c.approval != Approval::Pending {
                return Err(ApiError::unprocessable(
                    "not_permitted",
                    "approval",
                    "only an admin may approve or reject creatives",
                ));
            }
        }
        let owner_id = self.resolve_owner(who, &id, &spec).await?;
        self.check_references(&spec, &owner_id).await?;
        let at = now();
        let (record, change) = self.store.insert(Record { meta: new_meta(id, owner_id, at), spec }).await?;
        tracing::info!(kind = kind.as_str(), id = %record.meta.id, version = change.version, "catalog object created");
        self.feed.publish(change);
        Ok(record)
    }

    /// The owner of a new object: itself for advertisers and publishers, else its parent's owner.
    async fn resolve_owner(&self, who: &Principal, id: &str, spec: &Spec) -> Result<String, ApiError> {
        let (Some(parent_id), Some((field, parent_kind))) = (spec.parent_id(), spec.kind().parent()) else {
            return Ok(id.to_string());
        };
        let parent = match self.store.get(parent_kind, parent_id).await? {
            Some(p) if Self::visible(who, &p) => p,
            _ => {
                return Err(ApiError::unprocessable(
                    "reference_not_found",
                    field,
                    format!("{} `{parent_id}` does not exist", what(parent_kind)),
                ))
            }
        };
        if parent.spec.status() == Status::Archived {
            return Err(ApiError::unprocessable(
                "reference_archived",
                field,
                format!("{} `{parent_id}` is archived", what(parent_kind)),
            ));
        }
        let owner = match parent_kind {
            Kind::Advertiser | Kind::Publisher => parent.meta.id,
            _ => parent.meta.owner_id,
        };
        Ok(owner)
    }

    /// Checks that need other objects: a line item's flight lies within its campaign's, and
    /// its creatives exist and belong to the same advertiser.
    async fn check_references(&self, spec: &Spec, owner_id: &str) -> Result<(), ApiError> {
        let Spec::LineItem(li) = spec else { return Ok(()) };
        if let Some(campaign) = self.store.get(Kind::Campaign, &li.campaign_id).await? {
            if let Spec::Campaign(c) = &campaign.spec {
                if li.start < c.start {
                    return Err(ApiError::unprocessable(
                        "outside_campaign_flight",
                        "start",
                        "the line item starts before its campaign",
                    ));
                }
                if let (Some(ce), Some(le)) = (c.end, li.end) {
                    if le > ce {
                        return Err(ApiError::unprocessable(
                            "outside_campaign_flight",
                            "end",
                            "the line item ends after its campaign",
                        ));
                    }
                }
            }
        }
        for (i, a) in li.creatives.iter().enumerate() {
            let field = format!("creatives[{i}].creative_id");
            match self.store.get(Kind::Creative, &a.creative_id).await? {
                Some(c) if c.meta.owner_id == owner_id => {}
                _ => {
                    return Err(ApiError::unprocessable(
                        "reference_not_found",
                        &field,
                        format!("creative `{}` does not exist for this advertiser", a.creative_id),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Applies a JSON merge patch (RFC 7396). `version` comes from the body or `If-Match`.
    pub async fn patch(
        &self,
        who: &Principal,
        kind: Kind,
        id: &str,
        body: Value,
        if_match: Option<u64>,
    ) -> Result<Record, ApiError> {
        let Value::Object(mut patch) = body else {
            return Err(ApiError::bad_request("invalid_type", "", "the body must be a JSON merge patch object"));
        };
        let version = expected_version(patch.remove("version"), if_match)?;
        let current = self.load(who, kind, id).await?;
        strip_echoed_read_only(&mut patch, &current, kind)?;
        let mut merged = current.spec.to_json();
        let patch = Value::Object(patch);
        json_patch::merge(&mut merged, &patch);
        // Tagged unions are replaced whole: merging `{"all": ..}` into `{"any": ..}` would
        // leave both keys, which no client means.
        for field in ATOMIC_FIELDS {
            if let (Some(v), Some(m)) = (patch.get(*field).filter(|v| !v.is_null()), merged.as_object_mut()) {
                m.insert((*field).to_string(), v.clone());
            }
        }
        let mut spec = Spec::from_json(kind, &merged)?;
        if let (Some(old), Some(new), Some((field, _))) = (current.spec.parent_id(), spec.parent_id(), kind.parent()) {
            if old != new {
                return Err(ApiError::unprocessable(
                    "immutable_field",
                    field,
                    format!("`{field}` cannot change after creation"),
                ));
            }
        }
        if let (Spec::Creative(old), Spec::Creative(new)) = (&current.spec, &mut spec) {
            if !who.is_admin() {
                if new.approval != old.approval {
                    return Err(ApiError::unprocessable(
                        "not_permitted",
                        "approval",
                        "only an admin may approve or reject creatives",
                    ));
                }
                // An advertiser's change to what is shown needs a new review.
                if new.content != old.content
                    || new.click_url != old.click_url
                    || new.landing_domain != old.landing_domain
                {
                    new.approval = Approval::Pending;
                }
            }
        }
        if kind == Kind::Advertiser && !who.is_admin() && spec.status() != current.spec.status() {
            return Err(ApiError::unprocessable(
                "not_permitted",
                "status",
                "only an admin may change an advertiser's status",
            ));
        }
        if current.meta.version != version {
            return Err(StoreError::VersionConflict { current: current.meta.version }.into());
        }
        if spec == current.spec {
            return Ok(current);
        }
        self.check_references(&spec, &current.meta.owner_id).await?;
        self.write(kind, id, version, spec).await
    }

    pub async fn archive(
        &self,
        who: &Principal,
        kind: Kind,
        id: &str,
        if_match: Option<u64>,
    ) -> Result<Record, ApiError> {
        if kind == Kind::Advertiser {
            who.require_admin()?;
        }
        let current = self.load(who, kind, id).await?;
        if let Some(v) = if_match {
            if v != current.meta.version {
                return Err(StoreError::VersionConflict { current: current.meta.version }.into());
            }
        }
        if current.spec.status() == Status::Archived {
            return Ok(current);
        }
        let mut spec = current.spec.clone();
        spec.set_status(Status::Archived);
        self.write(kind, id, current.meta.version, spec).await
    }

    async fn write(&self, kind: Kind, id: &str, version: u64, spec: Spec) -> Result<Record, ApiError> {
        let (record, change) = self.store.update(kind, id, version, spec, now()).await?;
        tracing::info!(kind = kind.as_str(), id, version = change.version, op = ?change.op, "catalog object changed");
        self.feed.publish(change);
        Ok(record)
    }
}

fn expected_version(from_body: Option<Value>, if_match: Option<u64>) -> Result<u64, ApiError> {
    let body = match from_body {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| ApiError::bad_request("invalid_type", "version", "version is a positive integer"))?,
        ),
    };
    match (body, if_match) {
        (Some(a), Some(b)) if a != b => {
            Err(ApiError::bad_request("version_mismatch", "version", "the body's version and If-Match disagree"))
        }
        (Some(v), _) | (None, Some(v)) => Ok(v),
        (None, None) => Err(ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "version_required",
            "send the version you read, in the body (`version`) or as `If-Match`",
        )
        .with_field("version")),
    }
}

/// Clients often send back an object they read: meta fields equal to the stored ones are
/// dropped, changed ones are refused.
fn strip_echoed_read_only(patch: &mut Map<String, Value>, current: &Record, kind: Kind) -> Result<(), ApiError> {
    let shown = record_json(current);
    for f in META_FIELDS.iter().copied().filter(|f| *f != "version").chain(derived_field(kind)) {
        if let Some(v) = patch.remove(f) {
            if shown.get(f) != Some(&v) {
                return Err(ApiError::bad_request("read_only_field", f, format!("`{f}` is set by the platform")));
            }
        }
    }
    Ok(())
}
