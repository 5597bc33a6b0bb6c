//! sqlite: the embedded catalog store — one file in the data dir, WAL mode, migrations applied
//! in order and recorded. Blocking SQLite calls run on tokio's blocking pool, never on the
//! async workers. Writes take an IMMEDIATE transaction, so a second process (the `apikey`
//! command beside a running server) serialises cleanly.

use adp_domain::{
    ApiKey, CatalogChange, CatalogStore, ChangeOp, KeyStatus, Kind, ListQuery, Meta, Page, Record, Role, Spec, Status,
    StoreError, StoreHealth, StoreResult,
};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Schema migrations, applied in order; the schema version is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: catalog objects, change log, API keys
    "CREATE TABLE catalog_objects (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        owner_id TEXT NOT NULL,
        parent_id TEXT,
        status TEXT NOT NULL,
        version INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        catalog_version INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (kind, id)
    ) WITHOUT ROWID;
    CREATE INDEX catalog_objects_by_owner ON catalog_objects (kind, owner_id, id);
    CREATE INDEX catalog_objects_by_parent ON catalog_objects (kind, parent_id, id);
    CREATE TABLE catalog_changes (
        version INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        op TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        advertiser_id TEXT,
        prefix TEXT NOT NULL,
        status TEXT NOT NULL,
        version INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE
    );
    CREATE INDEX api_keys_by_advertiser ON api_keys (advertiser_id, id);",
];

pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The file name of the catalog database inside the data dir.
pub const FILE_NAME: &str = "catalog.sqlite";

#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn parse_ts(s: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(corrupt)
}

fn op_str(op: ChangeOp) -> &'static str {
    match op {
        ChangeOp::Created => "created",
        ChangeOp::Updated => "updated",
        ChangeOp::Archived => "archived",
    }
}

fn parse_op(s: &str) -> StoreResult<ChangeOp> {
    match s {
        "created" => Ok(ChangeOp::Created),
        "updated" => Ok(ChangeOp::Updated),
        "archived" => Ok(ChangeOp::Archived),
        other => Err(corrupt(format!("unknown change op {other}"))),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the catalog file `dir/catalog.sqlite`. Does not migrate.
    pub fn open_in_dir(dir: &Path) -> StoreResult<SqliteStore> {
        std::fs::create_dir_all(dir)
            .map_err(|e| unavailable(format!("cannot create data dir {}: {e}", dir.display())))?;
        SqliteStore::open(&dir.join(FILE_NAME))
    }

    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        let conn = Connection::open(path).map_err(|e| unavailable(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(unavailable)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(unavailable)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(unavailable(format!("could not switch {} to WAL mode (got {mode})", path.display())));
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;").map_err(unavailable)?;
        Ok(SqliteStore { conn: Arc::new(Mutex::new(conn)), path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| unavailable("connection lock poisoned"))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| unavailable(format!("store task failed: {e}")))?
    }
}

fn schema_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    )?;
    conn.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))
}

fn record_change(
    tx: &rusqlite::Transaction<'_>,
    kind: Kind,
    id: &str,
    op: ChangeOp,
    at: DateTime<Utc>,
) -> StoreResult<CatalogChange> {
    let version: u64 = tx
        .query_row("SELECT COALESCE(MAX(version), 0) + 1 FROM catalog_changes", [], |r| r.get(0))
        .map_err(unavailable)?;
    tx.execute(
        "INSERT INTO catalog_changes (version, kind, id, op, at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![version, kind.as_str(), id, op_str(op), ts(&at)],
    )
    .map_err(unavailable)?;
    Ok(CatalogChange { version, kind, id: id.to_string(), op, at })
}

const RECORD_COLUMNS: &str = "kind, id, owner_id, version, created_at, updated_at, catalog_version, body";

fn read_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoreResult<Record>> {
    let kind: String = row.get(0)?;
    let id: String = row.get(1)?;
    let owner_id: String = row.get(2)?;
    let version: u64 = row.get(3)?;
    let created_at: String = row.get(4)?;
    let updated_at: String = row.get(5)?;
    let catalog_version: u64 = row.get(6)?;
    let body: String = row.get(7)?;
    Ok((|| {
        let kind = Kind::parse(&kind).ok_or_else(|| corrupt(format!("unknown kind {kind}")))?;
        let value: serde_json::Value = serde_json::from_str(&body).map_err(corrupt)?;
        let spec = Spec::from_json(kind, &value).map_err(|e| corrupt(format!("{kind:?} {id}: {e}")))?;
        Ok(Record {
            meta: Meta {
                id,
                version,
                owner_id,
                created_at: parse_ts(&created_at)?,
                updated_at: parse_ts(&updated_at)?,
                catalog_version,
            },
            spec,
        })
    })())
}

fn collect_records(stmt: &mut rusqlite::Statement<'_>, params: impl rusqlite::Params) -> StoreResult<Vec<Record>> {
    let rows = stmt.query_map(params, read_record).map_err(unavailable)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(unavailable)??);
    }
    Ok(out)
}

fn role_str(r: Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::Advertiser => "advertiser",
    }
}

fn key_status_str(s: KeyStatus) -> &'static str {
    match s {
        KeyStatus::Active => "active",
        KeyStatus::Revoked => "revoked",
    }
}

const KEY_COLUMNS: &str = "id, name, role, advertiser_id, prefix, status, version, created_at, updated_at, key_hash";

fn read_key(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoreResult<ApiKey>> {
    let role: String = row.get(2)?;
    let status: String = row.get(5)?;
    let created_at: String = row.get(7)?;
    let updated_at: String = row.get(8)?;
    let id: String = row.get(0)?;
    let name: String = row.get(1)?;
    let advertiser_id: Option<String> = row.get(3)?;
    let prefix: String = row.get(4)?;
    let version: u64 = row.get(6)?;
    let key_hash: String = row.get(9)?;
    Ok((|| {
        let role = match role.as_str() {
            "admin" => Role::Admin,
            "advertiser" => Role::Advertiser,
            other => return Err(corrupt(format!("unknown role {other}"))),
        };
        let status = match status.as_str() {
            "active" => KeyStatus::Active,
            "revoked" => KeyStatus::Revoked,
            other => return Err(corrupt(format!("unknown key status {other}"))),
        };
        Ok(ApiKey {
            id,
            name,
            role,
            advertiser_id,
            prefix,
            status,
            version,
            created_at: parse_ts(&created_at)?,
            updated_at: parse_ts(&updated_at)?,
            key_hash,
        })
    })())
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

#[async_trait]
impl CatalogStore for SqliteStore {
    async fn migrate(&self) -> StoreResult<u32> {
        self.run(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let current = schema_version(&tx).map_err(unavailable)?;
            if current > SCHEMA_VERSION {
                return Err(unavailable(format!(
                    "catalog schema version {current} is newer than this binary's {SCHEMA_VERSION}"
                )));
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
                let version = i as u32 + 1;
                tx.execute_batch(sql).map_err(|e| unavailable(format!("migration {version}: {e}")))?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                    params![version, ts(&Utc::now())],
                )
                .map_err(unavailable)?;
                tracing::info!(version, "applied catalog migration");
            }
            tx.commit().map_err(unavailable)?;
            Ok(SCHEMA_VERSION)
        })
        .await
    }

    async fn health(&self) -> StoreHealth {
        let result = self.run(|conn| schema_version(conn).map_err(unavailable)).await;
        match result {
            Ok(v) => {
                StoreHealth { reachable: true, schema_version: v, expected_schema_version: SCHEMA_VERSION, error: None }
            }
            Err(e) => StoreHealth {
                reachable: false,
                schema_version: 0,
                expected_schema_version: SCHEMA_VERSION,
                error: Some(e.to_string()),
            },
        }
    }

    async fn insert(&self, record: Record) -> StoreResult<(Record, CatalogChange)> {
        self.run(move |conn| {
            let Record { mut meta, spec } = record;
            let kind = spec.kind();
            let body = serde_json::to_string(&spec.to_json()).map_err(corrupt)?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let change = record_change(&tx, kind, &meta.id, ChangeOp::Created, meta.created_at)?;
            meta.version = 1;
            meta.catalog_version = change.version;
            let inserted = tx.execute(
                "INSERT INTO catalog_objects (kind, id, owner_id, parent_id, status, version, created_at, updated_at, catalog_version, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    kind.as_str(),
                    meta.id,
                    meta.owner_id,
                    spec.parent_id(),
                    spec.status().as_str(),
                    meta.version,
                    ts(&meta.created_at),
                    ts(&meta.updated_at),
                    meta.catalog_version,
                    body
                ],
            );
            match inserted {
                Err(e) if is_unique_violation(&e) => return Err(StoreError::AlreadyExists),
                Err(e) => return Err(unavailable(e)),
                Ok(_) => {}
            }
            tx.commit().map_err(unavailable)?;
            Ok((Record { meta, spec }, change))
        })
        .await
    }

    async fn update(
        &self,
        kind: Kind,
        id: &str,
        expected_version: u64,
        spec: Spec,
        at: DateTime<Utc>,
    ) -> StoreResult<(Record, CatalogChange)> {
        if spec.kind() != kind {
            return Err(StoreError::Corrupt(format!("spec of kind {:?} written as {kind:?}", spec.kind())));
        }
        let id = id.to_string();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let current = tx
                .query_row(
                    &format!("SELECT {RECORD_COLUMNS} FROM catalog_objects WHERE kind = ?1 AND id = ?2"),
                    params![kind.as_str(), id],
                    read_record,
                )
                .optional()
                .map_err(unavailable)?
                .ok_or(StoreError::NotFound)??;
            if current.meta.version != expected_version {
                return Err(StoreError::VersionConflict { current: current.meta.version });
            }
            let op = if spec.status() == Status::Archived && current.spec.status() != Status::Archived {
                ChangeOp::Archived
            } else {
                ChangeOp::Updated
            };
            let change = record_change(&tx, kind, &id, op, at)?;
            let mut meta = current.meta;
            meta.version += 1;
            meta.updated_at = at;
            meta.catalog_version = change.version;
            let body = serde_json::to_string(&spec.to_json()).map_err(corrupt)?;
            tx.execute(
                "UPDATE catalog_objects SET parent_id = ?3, status = ?4, version = ?5, updated_at = ?6, catalog_version = ?7, body = ?8
                 WHERE kind = ?1 AND id = ?2",
                params![
                    kind.as_str(),
                    id,
                    spec.parent_id(),
                    spec.status().as_str(),
                    meta.version,
                    ts(&meta.updated_at),
                    meta.catalog_version,
                    body
                ],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok((Record { meta, spec }, change))
        })
        .await
    }

    async fn get(&self, kind: Kind, id: &str) -> StoreResult<Option<Record>> {
        let id = id.to_string();
        self.run(move |conn| {
            conn.query_row(
                &format!("SELECT {RECORD_COLUMNS} FROM catalog_objects WHERE kind = ?1 AND id = ?2"),
                params![kind.as_str(), id],
                read_record,
            )
            .optional()
            .map_err(unavailable)?
            .transpose()
        })
        .await
    }

    async fn list(&self, kind: Kind, query: &ListQuery) -> StoreResult<Page<Record>> {
        let q = query.clone();
        self.run(move |conn| {
            let mut sql = format!("SELECT {RECORD_COLUMNS} FROM catalog_objects WHERE kind = ?1");
            let mut args: Vec<String> = vec![kind.as_str().to_string()];
            let mut push = |clause: &str, v: String, sql: &mut String| {
                args.push(v);
                sql.push_str(&format!(" AND {clause} ?{}", args.len()));
            };
            if let Some(o) = &q.owner_id {
                push("owner_id =", o.clone(), &mut sql);
            }
            if let Some(p) = &q.parent_id {
                push("parent_id =", p.clone(), &mut sql);
            }
            match q.status {
                Some(s) => push("status =", s.as_str().to_string(), &mut sql),
                None => push("status !=", Status::Archived.as_str().to_string(), &mut sql),
            }
            if let Some(a) = &q.after_id {
                push("id >", a.clone(), &mut sql);
            }
            let limit = q.limit.max(1);
            sql.push_str(&format!(" ORDER BY id LIMIT {}", limit + 1));
            let mut stmt = conn.prepare(&sql).map_err(unavailable)?;
            let mut items = collect_records(&mut stmt, rusqlite::params_from_iter(args.iter()))?;
            let next_after = if items.len() > limit {
                items.truncate(limit);
                items.last().map(|r| r.meta.id.clone())
            } else {
                None
            };
            Ok(Page { items, next_after })
        })
        .await
    }

    async fn snapshot(&self) -> StoreResult<(u64, Vec<Record>)> {
        self.run(|conn| {
            // A read transaction gives a consistent view of objects and version together.
            let tx = conn.transaction().map_err(unavailable)?;
            let version: u64 = tx
                .query_row("SELECT COALESCE(MAX(version), 0) FROM catalog_changes", [], |r| r.get(0))
                .map_err(unavailable)?;
            let mut stmt = tx
                .prepare(&format!("SELECT {RECORD_COLUMNS} FROM catalog_objects ORDER BY kind, id"))
                .map_err(unavailable)?;
            let records = collect_records(&mut stmt, [])?;
            drop(stmt);
            tx.commit().map_err(unavailable)?;
            Ok((version, records))
        })
        .await
    }

    async fn catalog_version(&self) -> StoreResult<u64> {
        self.run(|conn| {
            conn.query_row("SELECT COALESCE(MAX(version), 0) FROM catalog_changes", [], |r| r.get(0))
                .map_err(unavailable)
        })
        .await
    }

    async fn changes_since(&self, after: u64, limit: usize) -> StoreResult<Vec<CatalogChange>> {
        self.run(move |conn| {
            let mut stmt = conn
                .prepare("SELECT version, kind, id, op, at FROM catalog_changes WHERE version > ?1 ORDER BY version LIMIT ?2")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![after, limit as i64], |r| {
                    Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?, r.get::<_, String>(4)?))
                })
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                let (version, kind, id, op, at) = row.map_err(unavailable)?;
                let kind = Kind::parse(&kind).ok_or_else(|| corrupt(format!("unknown kind {kind}")))?;
                out.push(CatalogChange { version, kind, id, op: parse_op(&op)?, at: parse_ts(&at)? });
            }
            Ok(out)
        })
        .await
    }

    async fn insert_api_key(&self, key: ApiKey) -> StoreResult<ApiKey> {
        self.run(move |conn| {
            let mut key = key;
            key.version = 1;
            let r = conn.execute(
                &format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
                params![
                    key.id,
                    key.name,
                    role_str(key.role),
                    key.advertiser_id,
                    key.prefix,
                    key_status_str(key.status),
                    key.version,
                    ts(&key.created_at),
                    ts(&key.updated_at),
                    key.key_hash
                ],
            );
            match r {
                Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists),
                Err(e) => Err(unavailable(e)),
                Ok(_) => Ok(key),
            }
        })
        .await
    }

    async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKey>> {
        let id = id.to_string();
        self.run(move |conn| {
            conn.query_row(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"), params![id], read_key)
                .optional()
                .map_err(unavailable)?
                .transpose()
        })
        .await
    }

    async fn find_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        let key_hash = key_hash.to_string();
        self.run(move |conn| {
            conn.query_row(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ?1"),
                params![key_hash],
                read_key,
            )
            .optional()
            .map_err(unavailable)?
            .transpose()
        })
        .await
    }

    async fn list_api_keys(
        &self,
        advertiser_id: Option<&str>,
        after_id: Option<&str>,
        limit: usize,
    ) -> StoreResult<Page<ApiKey>> {
        let advertiser_id = advertiser_id.map(str::to_string);
        let after_id = after_id.map(str::to_string).unwrap_or_default();
        self.run(move |conn| {
            let limit = limit.max(1);
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE id > ?1 AND (?2 IS NULL OR advertiser_id = ?2) ORDER BY id LIMIT ?3"
                ))
                .map_err(unavailable)?;
            let rows = stmt.query_map(params![after_id, advertiser_id, (limit + 1) as i64], read_key).map_err(unavailable)?;
            let mut items = Vec::new();
            for row in rows {
                items.push(row.map_err(unavailable)??);
            }
            let next_after = if items.len() > limit {
                items.truncate(limit);
                items.last().map(|k| k.id.clone())
            } else {
                None
            };
            Ok(Page { items, next_after })
        })
        .await
    }

    async fn update_api_key(&self, key: ApiKey, expected_version: u64) -> StoreResult<ApiKey> {
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let current: u64 = tx
                .query_row("SELECT version FROM api_keys WHERE id = ?1", params![key.id], |r| r.get(0))
                .optional()
                .map_err(unavailable)?
                .ok_or(StoreError::NotFound)?;
            if current != expected_version {
                return Err(StoreError::VersionConflict { current });
            }
            let mut key = key;
            key.version = current + 1;
            tx.execute(
                "UPDATE api_keys SET name = ?2, status = ?3, version = ?4, updated_at = ?5 WHERE id = ?1",
                params![key.id, key.name, key_status_str(key.status), key.version, ts(&key.updated_at)],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            // Read back what is stored (role, hash and owner never change here).
            tx_read_key(conn, &key.id)
        })
        .await
    }
}

fn tx_read_key(conn: &Connection, id: &str) -> StoreResult<ApiKey> {
    conn.query_row(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"), params![id], read_key)
        .map_err(unavailable)?
}
