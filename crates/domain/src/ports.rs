//! ports: the traits the platform's roles use; adapters (SQLite, ScyllaDB, ...) implement them.

use crate::model::{ApiKey, Kind, Meta, Record, Spec, Status};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("an object with this id already exists")]
    AlreadyExists,
    #[error("version conflict: the stored version is {current}")]
    VersionConflict { current: u64 },
    /// The backend cannot be reached or refused the operation; retrying may help.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be read back (a bug or a damaged store).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What happened to an object at a catalog version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Created,
    Updated,
    Archived,
}

/// One committed catalog change. Versions are strictly increasing without gaps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CatalogChange {
    pub version: u64,
    pub kind: Kind,
    pub id: String,
    pub op: ChangeOp,
    pub at: DateTime<Utc>,
}

/// Which objects of one kind to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only objects of this advertiser (demand side) or publisher (supply side).
    pub owner_id: Option<String>,
    /// Only children of this parent (e.g. the line items of a campaign).
    pub parent_id: Option<String>,
    /// Only this status; when `None`, everything but archived objects.
    pub status: Option<Status>,
    /// Resume after this id (ids are listed in ascending byte order).
    pub after_id: Option<String>,
    pub limit: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The id to resume after, when more may follow.
    pub next_after: Option<String>,
}

/// Whether the store can serve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct StoreHealth {
    pub reachable: bool,
    pub schema_version: u32,
    pub expected_schema_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StoreHealth {
    pub fn ready(&self) -> bool {
        self.reachable && self.schema_version == self.expected_schema_version
    }
}

/// The catalog store. Every write is atomic with its change record and bumps the catalog
/// version by exactly one. Implementations must pass `adp_store::conformance`.
#[async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    /// Applies pending schema migrations; returns the schema version now in force.
    async fn migrate(&self) -> StoreResult<u32>;

    async fn health(&self) -> StoreHealth;

    /// Inserts a new object (its `meta.version` is ignored and set to 1; `catalog_version` is
    /// assigned). Fails with `AlreadyExists` if the kind already has this id.
    async fn insert(&self, record: Record) -> StoreResult<(Record, CatalogChange)>;

    /// Replaces an object's spec if its stored version equals `expected_version`.
    async fn update(
        &self,
        kind: Kind,
        id: &str,
        expected_version: u64,
        spec: Spec,
        at: DateTime<Utc>,
    ) -> StoreResult<(Record, CatalogChange)>;

    async fn get(&self, kind: Kind, id: &str) -> StoreResult<Option<Record>>;

    async fn list(&self, kind: Kind, query: &ListQuery) -> StoreResult<Page<Record>>;

    /// Every object of every kind, archived ones included, with the version they were read at.
    async fn snapshot(&self) -> StoreResult<(u64, Vec<Record>)>;

    async fn catalog_version(&self) -> StoreResult<u64>;

    /// Changes with a version greater than `after`, oldest first, at most `limit`.
    async fn changes_since(&self, after: u64, limit: usize) -> StoreResult<Vec<CatalogChange>>;

    async fn insert_api_key(&self, key: ApiKey) -> StoreResult<ApiKey>;

    async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKey>>;

    async fn find_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>>;

    /// Lists keys in id order; `advertiser_id` narrows to one advertiser's keys.
    async fn list_api_keys(
        &self,
        advertiser_id: Option<&str>,
        after_id: Option<&str>,
        limit: usize,
    ) -> StoreResult<Page<ApiKey>>;

    /// Replaces a key's name and status if its stored version equals `expected_version`.
    async fn update_api_key(&self, key: ApiKey, expected_version: u64) -> StoreResult<ApiKey>;
}

/// Builds the `Meta` of a new object.
pub fn new_meta(id: String, owner_id: String, at: DateTime<Utc>) -> Meta {
    Meta { id, version: 1, owner_id, created_at: at, updated_at: at, catalog_version: 0 }
}

// ---------------------------------------------------------------------------------------------
// events

/// Why an event was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The bounded queue is full; the event was not taken (and is counted as rejected).
    #[error("event queue full")]
    Full,
    /// The sink has shut down.
    #[error("event sink closed")]
    Closed,
}

/// Counters of an event sink, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    /// Events taken into the queue.
    pub accepted: u64,
    /// Events refused because the queue was full.
    pub rejected_full: u64,
    /// Events durably written.
    pub written: u64,
    /// Events lost after being accepted (I/O failure); must stay 0 unless the disk fails.
    pub lost: u64,
}

/// Where events go. `submit` never blocks: it enqueues or refuses at once.
pub trait EventSink: Send + Sync + 'static {
    fn submit(&self, event: crate::events::Event) -> Result<(), SinkError>;

    /// Submits a borrowed event: the hot paths hand their events over this way, without an
    /// owned copy of a dozen strings. A sink that can encode in place overrides it; the default
    /// makes the owned event and submits that.
    fn submit_ref(&self, event: &crate::events::EventRef<'_>) -> Result<(), SinkError> {
        self.submit(event.to_event())
    }

    /// Submits the events of one request in one hand-over. A sink that can, takes all or none;
    /// the default submits them one by one and stops at the first refusal.
    fn submit_refs(&self, events: &[crate::events::EventRef<'_>]) -> Result<(), SinkError> {
        events.iter().try_for_each(|e| self.submit_ref(e))
    }
    fn stats(&self) -> SinkStats;

    /// A future that resolves (true) once every event this thread submitted before the call is
    /// written where a crash of this process cannot lose it; `None` when the sink cannot promise
    /// that now (queue full, closed, or a sink without the notion). Billable trackers await it
    /// before they answer, so an acknowledged event survives `kill -9`.
    fn written_marker(&self) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>> {
        None
    }
}

/// One row of the delivery report: one line item in one UTC hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryRow {
    /// Start of the hour, RFC 3339 UTC.
    pub hour: DateTime<Utc>,
    pub line_item_id: String,
    pub decisions: u64,
    pub impressions: u64,
    pub clicks: u64,
    /// OpenRTB bids made, and those the exchanges reported won.
    pub bids: u64,
    pub wins: u64,
    /// Conversions credited to this line item's clicks (or views).
    pub conversions: u64,
    pub spend_micros: i64,
}

// ---------------------------------------------------------------------------------------------
// frequency caps

/// One cap to enforce for one user: at most `count` impressions of `entity` per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CapRule {
    /// A stable hash naming the capped thing, e.g. of `"li:<id>"` or `"cmp:<id>"`.
    pub entity: u64,
    pub count: u32,
    pub window: crate::model::CapWindow,
}

/// Per-user impression counts behind frequency caps. Windows are fixed and aligned in UTC:
/// `{"seconds": N}` buckets of N seconds since the Unix epoch, `day` UTC days, `week` weeks
/// starting Monday 00:00 UTC, `lifetime` never resets.
pub trait FrequencyStore: Send + Sync + 'static {
    /// Whether every rule still has room for one more impression for `user_key` at `now_secs`.
    fn has_room(&self, user_key: u64, rules: &[CapRule], now_secs: i64) -> bool;
    /// Atomically: if every rule has room, counts one impression under each and returns true;
    /// otherwise changes nothing and returns false.
    fn try_count(&self, user_key: u64, rules: &[CapRule], now_secs: i64) -> bool;
}

// ---------------------------------------------------------------------------------------------
// geo from IP

/// Where an IP address is, as far as a geo database knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoInfo {
    /// ISO 3166-1 alpha-2, upper case, e.g. `DE`.
    pub country: String,
    /// The first subdivision: its ISO 3166-2 code from MaxMind GeoIP2/GeoLite2 City (`US-CA`,
    /// as requests write `geo.region`), its name from ip-location-db (`California`).
    pub region: Option<String>,
    /// The city's (English) name, when the database has cities.
    pub city: Option<String>,
}

/// Geo lookup by IP address, on the serving hot path: no I/O, no locks, no waiting.
pub trait GeoLookup: Send + Sync + 'static {
    /// Where `ip` is; `None` for addresses the database does not place (private, reserved,
    /// unknown) and for records without a valid country.
    fn lookup(&self, ip: std::net::IpAddr) -> Option<GeoInfo>;
}
