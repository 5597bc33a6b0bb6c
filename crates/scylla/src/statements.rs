//! statements: every CQL statement the store runs on the request path, prepared once per
//! session and reused, each with its consistency set here: LOCAL_QUORUM reads and writes,
//! LOCAL_SERIAL for the serial phase of lightweight transactions (LWT) and for reads that must
//! see the outcome of one. Only the migration DDL in `schema.rs` runs unprepared.

use crate::codec::{HEAD_COLUMNS, KEY_COLUMNS, OBJECT_COLUMNS};
use crate::schema::MIGRATION_SCOPE;
use scylla::client::session::Session;
use scylla::errors::PrepareError;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};

/// How a statement runs.
#[derive(Clone, Copy)]
enum Access {
    /// LOCAL_QUORUM read; safe to retry or run speculatively.
    Read,
    /// LOCAL_SERIAL read: completes any LWT still in flight on the partition first.
    SerialRead,
    /// LOCAL_QUORUM write whose repetition changes nothing (fixed values and timestamps).
    IdempotentWrite,
    /// Lightweight transaction: Paxos at LOCAL_SERIAL, committed at LOCAL_QUORUM. Never retried
    /// blindly by the driver: the caller resolves an unknown outcome.
    Lwt,
}

/// Page size of the full-table scan behind `snapshot`.
const SCAN_PAGE_SIZE: i32 = 1000;

pub(crate) struct Statements {
    pub schema_version: PreparedStatement,

    pub get_object: PreparedStatement,
    pub scan_objects: PreparedStatement,
    pub insert_object: PreparedStatement,
    pub update_object: PreparedStatement,

    pub index_kind: PreparedStatement,
    pub index_owner: PreparedStatement,
    pub index_parent: PreparedStatement,
    pub unindex_parent: PreparedStatement,
    pub page_kind: PreparedStatement,
    pub page_owner: PreparedStatement,
    pub page_parent: PreparedStatement,

    pub read_head: PreparedStatement,
    pub read_head_serial: PreparedStatement,
    pub claim_head: PreparedStatement,
    pub change_claim: PreparedStatement,
    pub insert_change: PreparedStatement,
    pub page_changes: PreparedStatement,

    pub get_key: PreparedStatement,
    pub get_key_serial: PreparedStatement,
    pub insert_key: PreparedStatement,
    pub update_key: PreparedStatement,
    pub claim_hash: PreparedStatement,
    pub release_hash: PreparedStatement,
    pub get_hash: PreparedStatement,
    pub index_key_all: PreparedStatement,
    pub index_key_advertiser: PreparedStatement,
    pub page_keys_all: PreparedStatement,
    pub page_keys_advertiser: PreparedStatement,
}

async fn prepare(session: &Session, cql: String, access: Access) -> Result<PreparedStatement, PrepareError> {
    let mut st = session.prepare(cql).await?;
    match access {
        Access::Read => {
            st.set_consistency(Consistency::LocalQuorum);
            st.set_is_idempotent(true);
        }
        Access::SerialRead => {
            st.set_consistency(Consistency::LocalSerial);
            st.set_is_idempotent(true);
        }
        Access::IdempotentWrite => {
            st.set_consistency(Consistency::LocalQuorum);
            st.set_is_idempotent(true);
        }
        Access::Lwt => {
            st.set_consistency(Consistency::LocalQuorum);
            st.set_serial_consistency(Some(SerialConsistency::LocalSerial));
            st.set_is_idempotent(false);
        }
    }
    Ok(st)
}

impl Statements {
    /// Prepares every statement against `ks`; fails while the schema is not migrated.
    pub async fn prepare(session: &Session, ks: &str) -> Result<Statements, PrepareError> {
        use Access::*;
        let p = |cql: String, access| prepare(session, cql, access);
        let mut scan_objects = p(format!("SELECT {OBJECT_COLUMNS} FROM {ks}.catalog_objects"), Read).await?;
        scan_objects.set_page_size(SCAN_PAGE_SIZE);
        Ok(Statements {
            schema_version: p(
                format!("SELECT version FROM {ks}.schema_migrations WHERE scope = '{MIGRATION_SCOPE}' LIMIT 1"),
                Read,
            )
            .await?,

            get_object: p(format!("SELECT {OBJECT_COLUMNS} FROM {ks}.catalog_objects WHERE kind = ? AND id = ?"), Read)
                .await?,
            scan_objects,
            insert_object: p(
                format!(
                    "INSERT INTO {ks}.catalog_objects ({OBJECT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
                ),
                Lwt,
            )
            .await?,
            update_object: p(
                format!(
                    "UPDATE {ks}.catalog_objects SET parent_id = ?, status = ?, version = ?, updated_at = ?, \
                     catalog_version = ?, body = ? WHERE kind = ? AND id = ? IF version = ?"
                ),
                Lwt,
            )
            .await?,

            index_kind: p(
                format!("INSERT INTO {ks}.objects_by_kind (kind, bucket, id) VALUES (?, ?, ?) USING TIMESTAMP ?"),
                IdempotentWrite,
            )
            .await?,
            index_owner: p(
                format!("INSERT INTO {ks}.objects_by_owner (kind, owner_id, id) VALUES (?, ?, ?) USING TIMESTAMP ?"),
                IdempotentWrite,
            )
            .await?,
            index_parent: p(
                format!("INSERT INTO {ks}.objects_by_parent (kind, parent_id, id) VALUES (?, ?, ?) USING TIMESTAMP ?"),
                IdempotentWrite,
            )
            .await?,
            unindex_parent: p(
                format!(
                    "DELETE FROM {ks}.objects_by_parent USING TIMESTAMP ? WHERE kind = ? AND parent_id = ? AND id = ?"
                ),
                IdempotentWrite,
            )
            .await?,
            page_kind: p(
                format!("SELECT id FROM {ks}.objects_by_kind WHERE kind = ? AND bucket = ? AND id > ? LIMIT ?"),
                Read,
            )
            .await?,
            page_owner: p(
                format!("SELECT id FROM {ks}.objects_by_owner WHERE kind = ? AND owner_id = ? AND id > ? LIMIT ?"),
                Read,
            )
            .await?,
            page_parent: p(
                format!("SELECT id FROM {ks}.objects_by_parent WHERE kind = ? AND parent_id = ? AND id > ? LIMIT ?"),
                Read,
            )
            .await?,

            read_head: p(format!("SELECT {HEAD_COLUMNS} FROM {ks}.catalog_head WHERE id = 0"), Read).await?,
            read_head_serial: p(format!("SELECT {HEAD_COLUMNS} FROM {ks}.catalog_head WHERE id = 0"), SerialRead)
                .await?,
            claim_head: p(
                format!(
                    "UPDATE {ks}.catalog_head SET version = ?, claim = ?, kind = ?, object_id = ?, op = ?, at = ?, \
                     owner_id = ?, parent_id = ?, previous_parent_id = ?, status = ?, object_version = ?, \
                     created_at = ?, updated_at = ?, body = ? WHERE id = 0 IF version = ?"
                ),
                Lwt,
            )
            .await?,
            change_claim: p(
                format!("SELECT claim FROM {ks}.catalog_changes WHERE bucket = ? AND version = ?"),
                Read,
            )
            .await?,
            insert_change: p(
                format!(
                    "INSERT INTO {ks}.catalog_changes (bucket, version, kind, id, op, at, claim) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)"
                ),
                IdempotentWrite,
            )
            .await?,
            page_changes: p(
                format!(
                    "SELECT version, kind, id, op, at FROM {ks}.catalog_changes \
                     WHERE bucket = ? AND version > ? AND version <= ? LIMIT ?"
                ),
                Read,
            )
            .await?,

            get_key: p(format!("SELECT {KEY_COLUMNS} FROM {ks}.api_keys WHERE id = ?"), Read).await?,
            get_key_serial: p(format!("SELECT {KEY_COLUMNS} FROM {ks}.api_keys WHERE id = ?"), SerialRead).await?,
            insert_key: p(
                format!("INSERT INTO {ks}.api_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"),
                Lwt,
            )
            .await?,
            update_key: p(
                format!(
                    "UPDATE {ks}.api_keys SET name = ?, status = ?, version = ?, updated_at = ? WHERE id = ? IF version = ?"
                ),
                Lwt,
            )
            .await?,
            claim_hash: p(
                format!("INSERT INTO {ks}.api_keys_by_hash (key_hash, id) VALUES (?, ?) IF NOT EXISTS"),
                Lwt,
            )
            .await?,
            release_hash: p(format!("DELETE FROM {ks}.api_keys_by_hash WHERE key_hash = ? IF id = ?"), Lwt).await?,
            get_hash: p(format!("SELECT id FROM {ks}.api_keys_by_hash WHERE key_hash = ?"), Read).await?,
            index_key_all: p(format!("INSERT INTO {ks}.api_keys_all (scope, id) VALUES (0, ?)"), IdempotentWrite)
                .await?,
            index_key_advertiser: p(
                format!("INSERT INTO {ks}.api_keys_by_advertiser (advertiser_id, id) VALUES (?, ?)"),
                IdempotentWrite,
            )
            .await?,
            page_keys_all: p(format!("SELECT id FROM {ks}.api_keys_all WHERE scope = 0 AND id > ? LIMIT ?"), Read)
                .await?,
            page_keys_advertiser: p(
                format!("SELECT id FROM {ks}.api_keys_by_advertiser WHERE advertiser_id = ? AND id > ? LIMIT ?"),
                Read,
            )
            .await?,
        })
    }
}
