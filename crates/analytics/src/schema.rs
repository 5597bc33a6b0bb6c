//! schema: the ClickHouse tables, their versioned migrations and the retention of raw events.
//! Every statement runs unchanged on ClickHouse 18.16 (no LowCardinality, DateTime64, TTL or
//! query parameters there) and on a current server; `tests/clickhouse_chdb.rs` proves the
//! latter with chDB.
//!
//! # Tables
//!
//! - `events`: raw events, `MergeTree`, partitioned by UTC day, ordered by
//!   `(event_hour, event_id)`. Ids are UUIDv7 stored as `FixedString(16)`, so within an hour
//!   the key is time order: time-range scans and the ingest's "which of these ids exist"
//!   lookups read only the granules of the hours and id ranges asked for. Each row also keeps
//!   where it came from (`kafka_partition`, `kafka_offset`) and the ingest batch that wrote it.
//! - `rollup_hourly`: `SummingMergeTree` per UTC hour × advertiser × campaign × line item ×
//!   creative × publisher × site × placement × country × device type × deal, with a count per
//!   event kind, spend and conversion value. Filled by the materialized view
//!   `rollup_hourly_mv` from every insert into `events`, inside the same INSERT. Counts are
//!   `Int64` so a correction can be negative. Readers always `sum()` and `GROUP BY` (parts merge
//!   in the background).
//! - `ingest_offsets`: per topic and Kafka partition, the next offset to read, written after
//!   the events of a batch were acknowledged (`ReplacingMergeTree`, read with `max`).
//! - `schema_migrations`: the versions applied.
//!
//! # Retention
//!
//! 18.16 has no table TTL, so retention is done by dropping whole day partitions of `events`
//! older than `ttl_days` ([`apply_retention`]); the migrator and the ingest loop (hourly) call
//! it. Rollups are kept (they are small; partitioned by month for manual drops).

use crate::store::{quote, ClickHouse, Result, StoreError};

/// One schema version: statements with `{db}` standing for the database.
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub statements: &'static [&'static str],
}

/// Every migration, in order. Append only: an applied version is never edited.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "raw events, hourly rollup, ingest offsets",
    statements: &[
        "CREATE TABLE IF NOT EXISTS {db}.events (
            event_date Date,
            event_hour DateTime('UTC'),
            event_time DateTime('UTC'),
            event_time_ms Int64,
            receive_time_ms Int64,
            event_id FixedString(16),
            kind Enum8('request' = 1, 'decision' = 2, 'impression' = 3, 'click' = 4, 'bid' = 5, 'win' = 6, 'loss' = 7, 'billing' = 8, 'conversion' = 9),
            request_id String,
            decision_id String,
            advertiser_id String,
            campaign_id String,
            line_item_id String,
            creative_id String,
            publisher_id String,
            site_id String,
            placement_id String,
            deal_id String,
            user_key UInt64,
            country String,
            device_type String,
            price_micros Int64,
            cost_micros Int64,
            currency String,
            reason String,
            kafka_partition UInt32,
            kafka_offset Int64,
            batch_id UInt64
        ) ENGINE = MergeTree()
        PARTITION BY toYYYYMMDD(event_date)
        ORDER BY (event_hour, event_id)
        SETTINGS index_granularity = 8192",
        "CREATE TABLE IF NOT EXISTS {db}.rollup_hourly (
            hour DateTime('UTC'),
            advertiser_id String,
            campaign_id String,
            line_item_id String,
            creative_id String,
            publisher_id String,
            site_id String,
            placement_id String,
            country String,
            device_type String,
            deal_id String,
            requests Int64,
            decisions Int64,
            bids Int64,
            wins Int64,
            losses Int64,
            billed Int64,
            impressions Int64,
            clicks Int64,
            conversions Int64,
            spend_micros Int64,
            conversion_value_micros Int64
        ) ENGINE = SummingMergeTree((requests, decisions, bids, wins, losses, billed, impressions, clicks, conversions, spend_micros, conversion_value_micros))
        PARTITION BY toYYYYMM(hour)
        ORDER BY (hour, advertiser_id, campaign_id, line_item_id, creative_id, placement_id, site_id, publisher_id, country, device_type, deal_id)",
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.rollup_hourly_mv TO {db}.rollup_hourly AS
        SELECT
            event_hour AS hour,
            advertiser_id, campaign_id, line_item_id, creative_id, publisher_id, site_id, placement_id,
            country, device_type, deal_id,
            toInt64(countIf(kind = 'request')) AS requests,
            toInt64(countIf(kind = 'decision')) AS decisions,
            toInt64(countIf(kind = 'bid')) AS bids,
            toInt64(countIf(kind = 'win')) AS wins,
            toInt64(countIf(kind = 'loss')) AS losses,
            toInt64(countIf(kind = 'billing')) AS billed,
            toInt64(countIf(kind = 'impression')) AS impressions,
            toInt64(countIf(kind = 'click')) AS clicks,
            toInt64(countIf(kind = 'conversion')) AS conversions,
            toInt64(sum(cost_micros)) AS spend_micros,
            toInt64(sumIf(price_micros, kind = 'conversion')) AS conversion_value_micros
        FROM {db}.events
        GROUP BY hour, advertiser_id, campaign_id, line_item_id, creative_id, publisher_id, site_id, placement_id,
            country, device_type, deal_id",
        "CREATE TABLE IF NOT EXISTS {db}.ingest_offsets (
            topic String,
            kafka_partition UInt32,
            next_offset Int64,
            batch_id UInt64,
            updated_at DateTime('UTC')
        ) ENGINE = ReplacingMergeTree(batch_id)
        ORDER BY (topic, kafka_partition)",
    ],
}];

/// The newest schema version this build knows.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

/// Settings of the migrator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrateSettings {
    /// Days of raw events kept; 0 keeps them forever.
    pub ttl_days: u32,
}

/// What [`migrate`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrateReport {
    pub version: u32,
    pub applied: Vec<u32>,
    pub dropped_partitions: Vec<u32>,
}

/// Every DDL statement of every migration for `database`, in order, with the ones that create
/// the database and the migrations table first (for the chDB proof and for reading).
pub fn all_statements(database: &str) -> Vec<String> {
    let mut out = bootstrap_statements(database);
    for m in MIGRATIONS {
        out.extend(m.statements.iter().map(|s| s.replace("{db}", database)));
    }
    out
}

fn bootstrap_statements(database: &str) -> Vec<String> {
    vec![
        format!("CREATE DATABASE IF NOT EXISTS {database}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {database}.schema_migrations (version UInt32, name String, applied_at DateTime('UTC')) \
             ENGINE = MergeTree() ORDER BY version"
        ),
    ]
}

/// Versions recorded in `schema_migrations`.
pub async fn applied_versions(ch: &ClickHouse) -> Result<Vec<u32>> {
    let rows = ch
        .fetch_tsv(&format!("SELECT DISTINCT version FROM {} ORDER BY version", ch.table("schema_migrations")))
        .await?;
    rows.iter()
        .filter_map(|r| r.first())
        .map(|v| v.parse::<u32>().map_err(|e| StoreError::Protocol(format!("version `{v}`: {e}"))))
        .collect()
}

/// Creates the database and applies every migration not applied yet, in order; each version is
/// recorded after all its statements succeeded, and every statement is `IF NOT EXISTS`, so a
/// migration cut short is simply run again. Then applies retention. Idempotent.
pub async fn migrate(ch: &ClickHouse, settings: &MigrateSettings) -> Result<MigrateReport> {
    let db = ch.database();
    for s in bootstrap_statements(db) {
        ch.execute(&s).await?;
    }
    let done = applied_versions(ch).await?;
    if let Some(newer) = done.iter().find(|v| **v > latest_version()) {
        return Err(StoreError::Schema(format!(
            "the database is at schema version {newer}, newer than this build knows ({})",
            latest_version()
        )));
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        for s in m.statements {
            ch.execute(&s.replace("{db}", db))
                .await
                .map_err(|e| StoreError::Schema(format!("migration {} ({}) failed: {e}", m.version, m.name)))?;
        }
        ch.execute(&format!(
            "INSERT INTO {} (version, name, applied_at) VALUES ({}, {}, now())",
            ch.table("schema_migrations"),
            m.version,
            quote(m.name)
        ))
        .await?;
        tracing::info!(version = m.version, name = m.name, "clickhouse migration applied");
        applied.push(m.version);
    }
    let dropped_partitions = apply_retention(ch, settings.ttl_days, chrono::Utc::now()).await?;
    Ok(MigrateReport { version: latest_version(), applied, dropped_partitions })
}

/// Fails unless every migration of this build is applied.
pub async fn check_schema(ch: &ClickHouse) -> Result<()> {
    let done = applied_versions(ch).await.map_err(|e| {
        StoreError::Schema(format!("cannot read the schema version ({e}); run `adplatform migrate --clickhouse`"))
    })?;
    match MIGRATIONS.iter().find(|m| !done.contains(&m.version)) {
        None => Ok(()),
        Some(m) => Err(StoreError::Schema(format!(
            "schema version {} ({}) is not applied; run `adplatform migrate --clickhouse`",
            m.version, m.name
        ))),
    }
}

/// Drops the day partitions of `events` older than `ttl_days` before `now` (0 = keep all).
/// Returns the partitions dropped (as `YYYYMMDD`).
pub async fn apply_retention(ch: &ClickHouse, ttl_days: u32, now: chrono::DateTime<chrono::Utc>) -> Result<Vec<u32>> {
    if ttl_days == 0 {
        return Ok(Vec::new());
    }
    let cutoff = (now - chrono::Duration::days(i64::from(ttl_days))).date_naive();
    let cutoff: u32 = cutoff.format("%Y%m%d").to_string().parse().unwrap_or(0);
    let rows = ch
        .fetch_tsv(&format!(
            "SELECT DISTINCT partition FROM system.parts WHERE database = {} AND table = 'events' AND active",
            quote(ch.database())
        ))
        .await?;
    let mut dropped = Vec::new();
    for p in rows.iter().filter_map(|r| r.first()).filter_map(|p| p.trim_matches('\'').parse::<u32>().ok()) {
        if p < cutoff {
            ch.execute(&format!("ALTER TABLE {} DROP PARTITION {p}", ch.table("events"))).await?;
            tracing::info!(partition = p, ttl_days, "dropped expired raw events partition");
            dropped.push(p);
        }
    }
    dropped.sort_unstable();
    Ok(dropped)
}
