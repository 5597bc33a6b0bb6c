//! schema: the ClickHouse tables, their versioned migrations and the retention of raw events.
//! On a single server every statement runs unchanged on ClickHouse 18.16 (no LowCardinality,
//! DateTime64, TTL or query parameters there) and on a current server; `tests/clickhouse_chdb.rs`
//! proves the latter with chDB. Cluster mode (below) rewrites the same statements; it needs a
//! current server with Keeper.
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
//!
//! # Cluster mode (`clickhouse.cluster`)
//!
//! For one shard with N replicas kept in step by ClickHouse Keeper (the production
//! ClickHouseInstallation: cluster `adplatform`, one shard, two replicas). With
//! [`crate::ClickHouseSettings::cluster`] set, [`for_cluster`] rewrites every DDL statement the
//! migrator and the retention run (the database, every table, the materialized view, the
//! bookkeeping table, `DROP PARTITION`):
//!
//! - ``ON CLUSTER `<name>` `` after the object's name, so every replica runs it. The server waits
//!   for every replica (`distributed_ddl_task_timeout`): with a replica down the migration fails
//!   and is simply run again once it is back (every statement is `IF NOT EXISTS`).
//! - every `*MergeTree(args)` engine becomes
//!   `Replicated*MergeTree('/clickhouse/tables/{shard}/<database>/<table>', '{replica}', args)`,
//!   keeping `PARTITION BY`, `ORDER BY` and `SETTINGS`; each server fills in its own `{shard}`
//!   and `{replica}` macros (the operator defines them). A part written on one replica is
//!   fetched by the others, and an `ALTER` (a dropped partition) goes through the replication
//!   log. The view has no engine of its own: it writes into the replicated `rollup_hourly` of
//!   the replica that took the insert.
//! - `schema_migrations` is replicated too, and a version is recorded with `insert_quorum` set
//!   to the replica count of the shard (read from `system.clusters`), so once the migration
//!   returns every replica answers the same version, whichever one a read reaches. The
//!   migration refuses a cluster the server does not know or one with more than one shard.
//!
//! Without a cluster the statements are exactly the single-server ones above. An existing
//! single-server database is not converted: its tables stay as they are (`IF NOT EXISTS`).
//!
//! **Two kinds of deduplication.** Replicated tables deduplicate inserted *blocks*: a block
//! whose content hash is among the last `replicated_deduplication_window` blocks inserted is
//! dropped whole (that is what makes a blind retry of the very same INSERT harmless). The
//! ingest does not rely on it, and it does not replace the crate's own dedup by event id
//! ([`crate::sink`]): a retry there sends only the rows not stored yet, a different block, and
//! copies of an event arrive inside different batches, so only the id lookup finds them (it is
//! also the only mechanism on 18.16 and on plain `MergeTree`). Block dedup never drops a row
//! the sink means to add, since every batch carries its own `batch_id`. The id lookup reads
//! the replica it reaches and replication is asynchronous, so the ingest should keep talking to
//! one replica (a per-replica address rather than one balancing over the replicas) for its
//! lookups to see its own latest inserts.
//!
//! **More shards are not supported.** Each shard would hold part of the events, so reads and
//! the id lookups would need `Distributed` tables over the replicated local ones (and the ingest
//! a sharding key that keeps an event's copies on one shard). None of that exists yet.

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
/// the database and the migrations table first (for the chDB proof and for reading); with a
/// `cluster`, as [`for_cluster`] rewrites them.
pub fn all_statements(database: &str, cluster: Option<&str>) -> Result<Vec<String>> {
    let mut out = bootstrap_statements(database);
    for m in MIGRATIONS {
        out.extend(m.statements.iter().map(|s| s.replace("{db}", database)));
    }
    out.iter().map(|s| for_cluster(s, cluster)).collect()
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

/// The statements [`for_cluster`] knows where to put `ON CLUSTER` in: right after the object
/// name that follows one of these.
const CLUSTER_DDL_HEADS: &[&str] = &[
    "CREATE DATABASE IF NOT EXISTS ",
    "CREATE TABLE IF NOT EXISTS ",
    "CREATE MATERIALIZED VIEW IF NOT EXISTS ",
    "ALTER TABLE ",
];

/// One DDL statement of this module (database already filled in) as it runs: unchanged without
/// a cluster; with one, `ON CLUSTER` after the object's name and every `*MergeTree` engine made
/// its `Replicated*` counterpart at `/clickhouse/tables/{shard}/<database>/<table>` with replica
/// `{replica}` (the other engine arguments, `ORDER BY`, `PARTITION BY` and `SETTINGS` kept).
/// A statement of another shape, or a table of another engine, is refused rather than left to
/// run on one replica only.
pub fn for_cluster(sql: &str, cluster: Option<&str>) -> Result<String> {
    let Some(cluster) = cluster else { return Ok(sql.to_string()) };
    let refuse = |why: &str| {
        let first = sql.lines().next().unwrap_or_default();
        StoreError::Schema(format!("cannot run `{first}` on cluster `{cluster}`: {why}"))
    };
    let head = CLUSTER_DDL_HEADS.iter().find(|h| sql.starts_with(*h)).ok_or_else(|| refuse("unknown statement"))?;
    let rest = &sql[head.len()..];
    let name_end = rest.find(|c: char| c.is_whitespace() || c == '(').unwrap_or(rest.len());
    let (name, tail) = rest.split_at(name_end);
    if name.is_empty() {
        return Err(refuse("no object name"));
    }
    let tail = match tail.find("ENGINE = ") {
        Some(at) => {
            let table = name.split_once('.').ok_or_else(|| refuse("table name without its database"))?;
            let from = at + "ENGINE = ".len();
            format!("{}{}", &tail[..from], replicated_engine(&tail[from..], table).map_err(|e| refuse(&e))?)
        }
        None if head.starts_with("CREATE TABLE") => return Err(refuse("no ENGINE clause")),
        None => tail.to_string(),
    };
    Ok(format!("{head}{name} ON CLUSTER `{cluster}`{tail}"))
}

/// `engine` (the text after `ENGINE = `, e.g. `SummingMergeTree((a, b)) ORDER BY ...`) with its
/// `*MergeTree(args)` replaced by `Replicated*MergeTree('<path>', '{replica}', args)`.
fn replicated_engine(engine: &str, (database, table): (&str, &str)) -> std::result::Result<String, String> {
    let name_end = engine.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(engine.len());
    let name = &engine[..name_end];
    if !name.ends_with("MergeTree") || name.starts_with("Replicated") {
        return Err(format!("engine `{name}` is not a plain MergeTree-family engine"));
    }
    let after = &engine[name_end..];
    let (args, rest) = match after.strip_prefix('(') {
        Some(inner) => {
            let mut depth = 1usize;
            let close = inner
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .ok_or_else(|| format!("engine `{name}` has unbalanced parentheses"))?;
            (inner[..close].trim(), &inner[close + 1..])
        }
        None => ("", after),
    };
    let separator = if args.is_empty() { "" } else { ", " };
    Ok(format!(
        "Replicated{name}('/clickhouse/tables/{{shard}}/{database}/{table}', '{{replica}}'{separator}{args}){rest}"
    ))
}

/// Where [`migrate`] runs on a cluster: the replica count of its single shard, from the
/// `(shard_num, replicas)` rows of `system.clusters`. An unknown cluster or more than one
/// shard is refused.
pub fn shard_replicas(cluster: &str, rows: &[Vec<String>]) -> Result<u64> {
    match rows {
        [] => Err(StoreError::Schema(format!(
            "cluster `{cluster}` is not defined on this server (system.clusters); check clickhouse.cluster"
        ))),
        [row] => row
            .get(1)
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| StoreError::Protocol(format!("system.clusters answered {row:?}"))),
        shards => Err(StoreError::Schema(format!(
            "cluster `{cluster}` has {} shards; the schema supports one shard with replicas \
             (more shards need Distributed tables)",
            shards.len()
        ))),
    }
}

/// Settings of the INSERT recording a version: on a cluster, written to every replica of the
/// shard before it returns, so no replica answers an older version afterwards.
fn version_insert_settings(replicas: Option<u64>) -> Vec<(&'static str, String)> {
    match replicas {
        Some(n) if n >= 2 => vec![("insert_quorum", n.to_string())],
        _ => Vec::new(),
    }
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
/// migration cut short is simply run again. Then applies retention. Idempotent. On a cluster
/// ([`ClickHouse::cluster`]) every statement runs `ON CLUSTER` (see the module docs).
pub async fn migrate(ch: &ClickHouse, settings: &MigrateSettings) -> Result<MigrateReport> {
    let db = ch.database();
    let cluster = ch.cluster();
    let replicas = match cluster {
        Some(c) => {
            let rows = ch
                .fetch_tsv(&format!(
                    "SELECT shard_num, count() FROM system.clusters WHERE cluster = {} GROUP BY shard_num",
                    quote(c)
                ))
                .await?;
            Some(shard_replicas(c, &rows)?)
        }
        None => None,
    };
    for s in bootstrap_statements(db) {
        ch.execute(&for_cluster(&s, cluster)?).await?;
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
            ch.execute(&for_cluster(&s.replace("{db}", db), cluster)?)
                .await
                .map_err(|e| StoreError::Schema(format!("migration {} ({}) failed: {e}", m.version, m.name)))?;
        }
        ch.execute_with(
            &format!(
                "INSERT INTO {} (version, name, applied_at) VALUES ({}, {}, now())",
                ch.table("schema_migrations"),
                m.version,
                quote(m.name)
            ),
            &version_insert_settings(replicas),
        )
        .await?;
        tracing::info!(version = m.version, name = m.name, cluster, "clickhouse migration applied");
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
            ch.execute(&drop_partition_sql(ch.database(), ch.cluster(), p)?).await?;
            tracing::info!(partition = p, ttl_days, "dropped expired raw events partition");
            dropped.push(p);
        }
    }
    dropped.sort_unstable();
    Ok(dropped)
}

/// The statement dropping the `events` day partition `partition` (`YYYYMMDD`).
pub fn drop_partition_sql(database: &str, cluster: Option<&str>, partition: u32) -> Result<String> {
    for_cluster(&format!("ALTER TABLE {database}.events DROP PARTITION {partition}"), cluster)
}

#[cfg(test)]
mod tests {
    //! Cluster mode is checked on the DDL text only: no server here can run a replicated
    //! cluster (the ClickHouse 18.16 from Debian has no ZooKeeper/Keeper configured, and chDB has
    //! none either). `tests/clickhouse_chdb.rs` has a current server's parser accept the text.
    use super::*;

    const DB: &str = "adp";
    const CLUSTER: &str = "adplatform";

    /// The object a statement creates or alters (`db.table`, or the database).
    fn object_of(sql: &str) -> &str {
        let head = CLUSTER_DDL_HEADS.iter().find(|h| sql.starts_with(*h)).expect("a known statement");
        sql[head.len()..].split(|c: char| c.is_whitespace() || c == '(').next().unwrap_or_default()
    }

    /// A cluster statement taken back to its single-server form.
    fn single_server_form(sql: &str) -> String {
        let sql = sql.replacen(&format!(" ON CLUSTER `{CLUSTER}`"), "", 1);
        let Some(at) = sql.find("ENGINE = Replicated") else { return sql };
        let engine_at = at + "ENGINE = Replicated".len();
        let path_at = engine_at + sql[engine_at..].find("('/clickhouse/tables/").expect("replica path");
        let replica = "'{replica}'";
        let args_at = path_at + sql[path_at..].find(replica).expect("replica macro") + replica.len();
        let args = &sql[args_at..];
        format!(
            "{}{}({}",
            &sql[..at + "ENGINE = ".len()],
            &sql[engine_at..path_at],
            args.strip_prefix(", ").unwrap_or(args)
        )
    }

    fn cluster_statements() -> Vec<String> {
        let mut all = all_statements(DB, Some(CLUSTER)).expect("every statement runs on a cluster");
        all.push(drop_partition_sql(DB, Some(CLUSTER), 20240101).expect("retention on a cluster"));
        all
    }

    #[test]
    fn every_cluster_statement_targets_the_cluster() {
        let all = cluster_statements();
        assert_eq!(all.len(), 2 + MIGRATIONS.iter().map(|m| m.statements.len()).sum::<usize>() + 1);
        for sql in &all {
            let object = object_of(sql);
            let head = &sql[..sql.find(object).expect("object") + object.len()];
            assert!(
                sql.starts_with(&format!("{head} ON CLUSTER `{CLUSTER}`")),
                "ON CLUSTER right after the object's name:\n{sql}"
            );
            assert_eq!(sql.matches("ON CLUSTER").count(), 1, "{sql}");
        }
        assert!(all[0].starts_with("CREATE DATABASE IF NOT EXISTS adp ON CLUSTER `adplatform`"));
        assert!(all
            .last()
            .is_some_and(|s| s == "ALTER TABLE adp.events ON CLUSTER `adplatform` DROP PARTITION 20240101"));
    }

    #[test]
    fn every_cluster_table_is_replicated_with_shard_and_replica_macros() {
        let mut tables = Vec::new();
        for sql in cluster_statements() {
            let Some(at) = sql.find("ENGINE = ") else {
                assert!(!sql.starts_with("CREATE TABLE"), "a table without an engine:\n{sql}");
                continue;
            };
            let (database, table) = object_of(&sql).split_once('.').expect("db.table");
            let engine = &sql[at + "ENGINE = ".len()..];
            let name = engine.split('(').next().unwrap_or_default();
            assert!(name.starts_with("Replicated") && name.ends_with("MergeTree"), "{name}:\n{sql}");
            let path = format!("('/clickhouse/tables/{{shard}}/{database}/{table}', '{{replica}}'");
            assert!(engine[name.len()..].starts_with(&path), "replica path and macro:\n{sql}");
            assert!(path.contains("{shard}") && path.contains(database) && path.contains(table));
            tables.push(table.to_string());
        }
        tables.sort();
        assert_eq!(tables, ["events", "ingest_offsets", "rollup_hourly", "schema_migrations"]);
    }

    #[test]
    fn cluster_statements_differ_from_single_server_ones_only_in_placement() {
        let mut single = all_statements(DB, None).expect("single server");
        single.push(drop_partition_sql(DB, None, 20240101).expect("retention"));
        let cluster = cluster_statements();
        assert_eq!(single.len(), cluster.len());
        for (one, many) in single.iter().zip(&cluster) {
            assert_eq!(&single_server_form(many), one, "the cluster form keeps everything else");
        }
        for sql in &single {
            assert!(!sql.contains("ON CLUSTER") && !sql.contains("Replicated"), "{sql}");
        }
    }

    #[test]
    fn single_server_statements_are_the_migrations_as_written() {
        let single = all_statements(DB, None).expect("single server");
        let mut want = vec![
            "CREATE DATABASE IF NOT EXISTS adp".to_string(),
            "CREATE TABLE IF NOT EXISTS adp.schema_migrations (version UInt32, name String, applied_at DateTime('UTC')) \
             ENGINE = MergeTree() ORDER BY version"
                .to_string(),
        ];
        want.extend(MIGRATIONS.iter().flat_map(|m| m.statements.iter().map(|s| s.replace("{db}", DB))));
        assert_eq!(single, want);
        assert_eq!(
            drop_partition_sql(DB, None, 20240101).expect("sql"),
            "ALTER TABLE adp.events DROP PARTITION 20240101"
        );
    }

    #[test]
    fn engine_arguments_stay_after_the_replica_ones() {
        let cluster = all_statements(DB, Some(CLUSTER)).expect("cluster");
        let find = |table: &str| {
            cluster
                .iter()
                .find(|s| s.starts_with(&format!("CREATE TABLE IF NOT EXISTS adp.{table} ")))
                .cloned()
                .unwrap_or_default()
        };
        assert!(find("events").contains(
            "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/adp/events', '{replica}')\n        PARTITION BY toYYYYMMDD(event_date)\n        ORDER BY (event_hour, event_id)\n        SETTINGS index_granularity = 8192"
        ));
        assert!(find("rollup_hourly").contains(
            "ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/adp/rollup_hourly', '{replica}', (requests, decisions, bids, wins, losses, billed, impressions, clicks, conversions, spend_micros, conversion_value_micros))\n        PARTITION BY toYYYYMM(hour)"
        ));
        assert!(find("ingest_offsets").ends_with(
            "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/adp/ingest_offsets', '{replica}', batch_id)\n        ORDER BY (topic, kafka_partition)"
        ));
        assert!(find("schema_migrations").ends_with(
            "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/adp/schema_migrations', '{replica}') ORDER BY version"
        ));
        assert!(cluster.iter().any(|s| s.starts_with(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS adp.rollup_hourly_mv ON CLUSTER `adplatform` TO adp.rollup_hourly AS"
        )));
    }

    #[test]
    fn statements_that_cannot_be_placed_on_a_cluster_are_refused() {
        for sql in [
            "DROP TABLE adp.events",
            "CREATE TABLE IF NOT EXISTS adp.t (a UInt8) ENGINE = Memory",
            "CREATE TABLE IF NOT EXISTS adp.t (a UInt8)",
            "CREATE TABLE IF NOT EXISTS t (a UInt8) ENGINE = MergeTree() ORDER BY a",
            "CREATE TABLE IF NOT EXISTS adp.t (a UInt8) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY a",
            "CREATE TABLE IF NOT EXISTS adp.t (a UInt8) ENGINE = SummingMergeTree((a) ORDER BY a",
        ] {
            let err = for_cluster(sql, Some(CLUSTER)).expect_err(sql);
            assert!(matches!(err, StoreError::Schema(ref m) if m.contains("adplatform")), "{sql}: {err}");
            assert_eq!(for_cluster(sql, None).expect("single server passes through"), sql);
        }
        // An engine without parentheses takes no arguments.
        assert_eq!(
            for_cluster("CREATE TABLE IF NOT EXISTS adp.t (a UInt8) ENGINE = MergeTree ORDER BY a", Some("c")).expect("ok"),
            "CREATE TABLE IF NOT EXISTS adp.t ON CLUSTER `c` (a UInt8) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/adp/t', '{replica}') ORDER BY a"
        );
    }

    #[test]
    fn the_cluster_must_be_one_known_shard() {
        let row = |shard: &str, replicas: &str| vec![shard.to_string(), replicas.to_string()];
        assert_eq!(shard_replicas(CLUSTER, &[row("1", "2")]).expect("one shard"), 2);
        let unknown = shard_replicas(CLUSTER, &[]).expect_err("unknown");
        assert!(unknown.to_string().contains("not defined"), "{unknown}");
        let sharded = shard_replicas(CLUSTER, &[row("1", "2"), row("2", "2")]).expect_err("two shards");
        assert!(sharded.to_string().contains("2 shards") && sharded.to_string().contains("Distributed"), "{sharded}");
        assert!(shard_replicas(CLUSTER, &[row("1", "x")]).is_err());
    }

    #[test]
    fn versions_are_recorded_on_every_replica() {
        assert_eq!(version_insert_settings(Some(2)), vec![("insert_quorum", "2".to_string())]);
        assert_eq!(version_insert_settings(Some(3)), vec![("insert_quorum", "3".to_string())]);
        assert!(version_insert_settings(Some(1)).is_empty(), "one replica: no quorum to wait for");
        assert!(version_insert_settings(None).is_empty(), "single server: the INSERT is unchanged");
    }
}
