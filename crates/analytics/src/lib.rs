//! analytics: the ClickHouse side of reporting. The pure part ([`report`]: query types, metric
//! definitions, the in-process rollup) builds without ClickHouse or Kafka; the `clickhouse`
//! feature (default) adds the schema and its migrations ([`schema`]), the Kafka → ClickHouse
//! ingest ([`ingest`], [`sink`]) and reports answered from ClickHouse ([`query`]).
//!
//! Data flow: `<topic_prefix>.events` (adp-eventwire records, keyed by decision id) →
//! [`ingest::run_ingest`] → `events` (raw, one row per event, exactly once) → materialized view
//! → `rollup_hourly` → [`query::query`].
#![forbid(unsafe_code)]

pub mod report;

#[cfg(feature = "clickhouse")]
pub mod gaps;
#[cfg(feature = "clickhouse")]
pub mod ingest;
#[cfg(feature = "clickhouse")]
pub mod query;
#[cfg(feature = "clickhouse")]
pub mod rowbinary;
#[cfg(feature = "clickhouse")]
pub mod schema;
#[cfg(feature = "clickhouse")]
pub mod sink;
#[cfg(feature = "clickhouse")]
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use report::{Dimension, Metric, MetricValue, ReportFilters, ReportQuery, ReportRow, Rollup, Totals};

#[cfg(feature = "clickhouse")]
pub use ingest::{run_ingest, run_ingest_with, IngestSettings};
#[cfg(feature = "clickhouse")]
pub use query::query;
#[cfg(feature = "clickhouse")]
pub use schema::{migrate, MigrateSettings};
#[cfg(feature = "clickhouse")]
pub use sink::{IngestCounters, IngestSnapshot};
#[cfg(feature = "clickhouse")]
pub use store::{ClickHouse, ClickHouseSettings};
