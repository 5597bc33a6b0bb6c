//! adp-scylla: the catalog store on ScyllaDB — `ScyllaStore` implements
//! `adp_domain::CatalogStore` with the behaviour of the embedded SQLite store (and passes the
//! same conformance suite), for distributed mode. Catalog versions stay gapless and strictly
//! increasing through lightweight transactions on one head row (see `store`).
//!
//! - `config`: `ScyllaConfig` and `Replication`, validated before any name reaches CQL.
//! - `schema`: the CQL schema and migrations as text; `ddl` for `migrate --scylla --dry-run`.
//! - `codec`: rows ↔ domain values, bucket arithmetic (pure).
//! - `statements`: the prepared request-path statements and their consistency.
//! - `store`: the session, the version protocol, `CatalogStore`.
#![forbid(unsafe_code)]

mod codec;
pub mod config;
pub mod schema;
mod statements;
mod store;

pub use config::{validate_datacenter, validate_keyspace, ConfigError, Replication, ScyllaConfig};
pub use schema::{ddl, CHANGE_BUCKET_SIZE, KIND_BUCKETS, SCHEMA_VERSION};
pub use store::ScyllaStore;
