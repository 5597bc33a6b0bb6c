//! store: `ScyllaStore`, the `CatalogStore` on ScyllaDB — the session, the version protocol
//! that gives gapless catalog versions with lightweight transactions, and the reads. All network
//! I/O of the crate happens here; row encoding is in `codec`, statement text in `statements`
//! and `schema`.
//!
//! # How a catalog write commits (the version protocol)
//!
//! The single row of `catalog_head` holds the newest claimed catalog version *and the write that
//! claimed it* (the object's new state, the change op, its time). A write of object X:
//!
//! 1. reads the head (version H) and *settles* it: makes sure the write that claimed H is fully
//!    applied, finishing it itself if it is not (see below);
//! 2. reads X and checks its precondition (absent for insert → else `AlreadyExists`; present at
//!    the expected version for update → else `NotFound` / `VersionConflict { current }`). A write
//!    whose precondition fails claims nothing, so failed writes never use up a version;
//! 3. claims H+1: `UPDATE catalog_head SET version = H+1, <the write> WHERE id = 0 IF version = H`.
//!    This lightweight transaction is the commit point. If another writer won H+1 first, go back
//!    to 1 (with a short randomised pause) — the precondition is checked again against the state
//!    that includes the winner's write;
//! 4. applies H+1, in this order: the query-table rows (`objects_by_*`), the object row (an LWT,
//!    `INSERT ... IF NOT EXISTS` or `UPDATE ... IF version = <version before>`), and last the
//!    `catalog_changes` row for H+1.
//!
//! Because the head can only move from H to H+1 after H is settled, and a write is settled once
//! its change row exists, the change log has no gaps and every change row names an object that
//! already shows the change: a reader that follows `changes_since` and re-reads the named
//! objects never sees an older state than the change announced.
//!
//! **Crash between claim and apply.** The claimed version is never orphaned and never a gap:
//! the head row itself says what H+1 must write, and every step of applying it is idempotent
//! (the object LWT finds the object already at or past H+1; query-table rows carry the object
//! version as their write timestamp; the change row is the same row again). Whoever next needs
//! the head settled — the next writer, `catalog_version`, `changes_since`, `snapshot` — waits
//! about 150 ms for the change row to appear and then applies the write itself. A reader
//! therefore never sees a claimed version without its change: `catalog_version` returns only a
//! settled version. A writer that dies *before* its claim leaves nothing behind.
//!
//! **Unknown outcome.** If the claim LWT itself fails (timeout, contention), the writer reads the
//! head at LOCAL_SERIAL, which completes any Paxos round in flight, and compares the claim id it
//! wrote: won → apply; lost → retry. If even that read fails the caller gets `Unavailable`,
//! although the write may have committed (and will then be applied by the next reader) — the
//! usual contract of a timed-out write; re-reading the object tells.
//!
//! All catalog writes pass through the one head row, so they are serialised (a few hundred per
//! second at most): the catalog is written by people and integrations, not by ad serving.
//! LOCAL_SERIAL makes the head linearizable within the local datacenter; run catalog writers in
//! one datacenter (readers may be anywhere).

use crate::codec::{
    change_bucket, change_buckets, corrupt, kind_bucket, matches, merge_pages, op_str, to_cql, ts, ChangeRow, Head,
    HeadRow, Intent, KeyRow, ObjectRow,
};
use crate::config::ScyllaConfig;
use crate::schema::{self, KIND_BUCKETS, SCHEMA_VERSION};
use crate::statements::Statements;
use adp_domain::{
    ApiKey, CatalogChange, CatalogStore, ChangeOp, Kind, ListQuery, Page, Record, Spec, Status, StoreError,
    StoreHealth, StoreResult,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::deserialize::row::DeserializeRow;
use scylla::response::query_result::QueryResult;
use scylla::response::PagingState;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::unprepared::Statement;
use scylla::statement::{Consistency, SerialConsistency};
use scylla::value::{CqlValue, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;
use tokio::task::JoinSet;
use uuid::Uuid;

/// How long a settling reader waits for a claimed write's own writer before finishing it.
const SETTLE_WAITS_MS: [u64; 6] = [0, 5, 10, 20, 40, 80];
/// Attempts and time a writer spends winning the head before giving up with `Unavailable`.
const CLAIM_ATTEMPTS: u32 = 100;
const CLAIM_BUDGET: Duration = Duration::from_secs(30);
/// Attempts at applying a won write (each step is idempotent, so retrying is safe).
const APPLY_ATTEMPTS: u32 = 3;
/// Concurrent point reads when a list or snapshot re-reads objects.
const READ_FAN_OUT: usize = 32;
/// Ids read from a query table per round of a list.
const LIST_BATCH: (usize, usize) = (32, 500);
/// Rounds a snapshot spends catching up with concurrent writes before giving up.
const SNAPSHOT_ROUNDS: usize = 20;
/// DDL waits for schema agreement, which can take longer than a request.
const DDL_TIMEOUT: Duration = Duration::from_secs(60);

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{what}: {e}"))
}

/// The catalog store on ScyllaDB. Cheap to clone (one session, shared).
#[derive(Clone)]
pub struct ScyllaStore {
    inner: Arc<Inner>,
}

struct Inner {
    session: Session,
    cfg: ScyllaConfig,
    /// `SELECT release_version FROM system.local`: whether the cluster answers at all.
    probe: PreparedStatement,
    /// The request-path statements; prepared at connect when the schema exists, else by
    /// `migrate` (or the first request after another process migrated).
    statements: OnceCell<Statements>,
}

impl std::fmt::Debug for ScyllaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaStore")
            .field("nodes", &self.inner.cfg.nodes)
            .field("keyspace", &self.inner.cfg.keyspace)
            .finish()
    }
}

impl ScyllaStore {
    /// Connects to the cluster (token- and shard-aware load balancing, preferring
    /// `local_datacenter` when given; LOCAL_QUORUM, LOCAL_SERIAL for LWT). Does not migrate.
    pub async fn connect(cfg: &ScyllaConfig) -> StoreResult<ScyllaStore> {
        cfg.validate().map_err(|e| unavailable("invalid ScyllaDB configuration", e))?;
        let profile = ExecutionProfile::builder()
            .consistency(Consistency::LocalQuorum)
            .serial_consistency(Some(SerialConsistency::LocalSerial))
            .request_timeout(Some(cfg.request_timeout))
            .build();
        let mut builder = SessionBuilder::new()
            .known_nodes(&cfg.nodes)
            .connection_timeout(cfg.connect_timeout)
            .default_execution_profile_handle(profile.into_handle())
            .keyspaces_to_fetch([cfg.keyspace.clone()]);
        if let Some(dc) = &cfg.local_datacenter {
            builder = builder.prefer_datacenter(dc.clone());
        }
        if let (Some(user), Some(password)) = (&cfg.username, &cfg.password) {
            builder = builder.user(user, password);
        }
        let session = builder
            .build()
            .await
            .map_err(|e| unavailable(&format!("cannot connect to ScyllaDB at {}", cfg.nodes.join(",")), e))?;
        let mut probe = session
            .prepare("SELECT release_version FROM system.local")
            .await
            .map_err(|e| unavailable("cannot prepare the health probe", e))?;
        probe.set_consistency(Consistency::One);
        probe.set_is_idempotent(true);
        let store =
            ScyllaStore { inner: Arc::new(Inner { session, cfg: cfg.clone(), probe, statements: OnceCell::new() }) };
        if let Err(e) = store.inner.st().await {
            tracing::info!(keyspace = %cfg.keyspace, error = %e, "catalog statements not prepared yet; migrate first");
        }
        tracing::info!(nodes = %cfg.nodes.join(","), keyspace = %cfg.keyspace, "connected to ScyllaDB");
        Ok(store)
    }

    pub fn keyspace(&self) -> &str {
        &self.inner.cfg.keyspace
    }
}

// ---------------------------------------------------------------------------------------------
// driver plumbing

fn rows<R>(result: QueryResult) -> StoreResult<Vec<R>>
where
    R: for<'f> DeserializeRow<'f, 'f>,
{
    let rows = result.into_rows_result().map_err(|e| corrupt(format!("expected rows: {e}")))?;
    let typed = rows.rows::<R>().map_err(|e| corrupt(format!("unexpected columns: {e}")))?;
    typed.map(|r| r.map_err(|e| corrupt(format!("undecodable row: {e}")))).collect()
}

fn first<R>(result: QueryResult) -> StoreResult<Option<R>>
where
    R: for<'f> DeserializeRow<'f, 'f>,
{
    Ok(rows::<R>(result)?.into_iter().next())
}

/// Whether a lightweight transaction applied: its `[applied]` column, found by name because the
/// other columns of an LWT result differ between servers and outcomes.
fn lwt_applied(result: QueryResult) -> StoreResult<bool> {
    let rows = result.into_rows_result().map_err(|e| corrupt(format!("LWT result: {e}")))?;
    let index = rows
        .column_specs()
        .get_by_name("[applied]")
        .map(|(i, _)| i)
        .ok_or_else(|| corrupt("LWT result without an [applied] column"))?;
    let row = rows
        .maybe_first_row::<Row>()
        .map_err(|e| corrupt(format!("LWT result: {e}")))?
        .ok_or_else(|| corrupt("LWT result without a row"))?;
    match row.columns.get(index) {
        Some(Some(CqlValue::Boolean(applied))) => Ok(*applied),
        other => Err(corrupt(format!("LWT [applied] is {other:?}"))),
    }
}

/// A pause before retrying a contended claim: grows to ~64 ms, randomised so that contenders
/// spread out.
async fn backoff(attempt: u32) {
    let base = 1u64 << attempt.min(6);
    let jitter = u64::from(Uuid::new_v4().as_u128() as u16) % (base + 1);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

fn cql_limit(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// What a write will make of its object, before it has a catalog version.
struct Draft {
    record: Record,
    op: ChangeOp,
    at: DateTime<Utc>,
    previous_parent_id: Option<String>,
}

/// Which query table a list reads.
#[derive(Clone)]
enum ListSource {
    Parent(String),
    Owner(String),
    Kind,
}

impl Inner {
    async fn st(&self) -> StoreResult<&Statements> {
        self.statements
            .get_or_try_init(|| Statements::prepare(&self.session, &self.cfg.keyspace))
            .await
            .map_err(|e| {
                unavailable(
                    &format!(
                        "cannot prepare the catalog statements of keyspace {} (not migrated? run `adplatform migrate --scylla`)",
                        self.cfg.keyspace
                    ),
                    e,
                )
            })
    }

    async fn exec(&self, st: &PreparedStatement, values: impl SerializeRow, what: &str) -> StoreResult<QueryResult> {
        self.session.execute_unpaged(st, values).await.map_err(|e| unavailable(what, e))
    }

    async fn ddl(&self, cql: &str) -> StoreResult<()> {
        let mut statement = Statement::new(cql.to_string());
        statement.set_request_timeout(Some(DDL_TIMEOUT.max(self.cfg.request_timeout)));
        let first_line = cql.lines().next().unwrap_or_default();
        match self.session.query_unpaged(statement, ()).await {
            Ok(_) => Ok(()),
            // ScyllaDB 6.x puts new NetworkTopologyStrategy keyspaces on tablets, where it does
            // not support LWT (2025.4 and later do). The seed of catalog_head is the first LWT.
            Err(e) if e.to_string().to_ascii_lowercase().contains("tablets") => Err(unavailable(
                &format!(
                    "migration statement failed ({first_line}); this ScyllaDB runs no lightweight transactions \
                     on tablets keyspaces: use ScyllaDB 2025.4 or later, or drop the empty keyspace and create it \
                     yourself with `AND tablets = {{'enabled': false}}` before migrating (crates/scylla/README.md)"
                ),
                e,
            )),
            Err(e) => Err(unavailable(&format!("migration statement failed ({first_line})"), e)),
        }
    }

    /// The newest applied migration, 0 when none is recorded (read without prepared statements,
    /// so that it works while the schema is being created).
    async fn applied_schema_version(&self) -> StoreResult<u32> {
        let ks = &self.cfg.keyspace;
        let cql = format!("SELECT version FROM {ks}.schema_migrations WHERE scope = 'catalog' LIMIT 1");
        let result =
            self.session.query_unpaged(cql, ()).await.map_err(|e| unavailable("cannot read schema_migrations", e))?;
        let version = first::<(i32,)>(result)?.map(|(v,)| v).unwrap_or(0);
        u32::try_from(version).map_err(|_| corrupt(format!("schema version {version} is negative")))
    }

    // -- objects --------------------------------------------------------------------------------

    async fn read_object(&self, kind: Kind, id: &str) -> StoreResult<Option<Record>> {
        let st = self.st().await?;
        let result = self.exec(&st.get_object, (kind.as_str(), id), "cannot read a catalog object").await?;
        first::<ObjectRow>(result)?.map(ObjectRow::decode).transpose()
    }

    /// Reads objects by id, a bounded number at a time; the result is in the order of `ids`.
    async fn read_objects(self: &Arc<Self>, keys: &[(Kind, String)]) -> StoreResult<Vec<Option<Record>>> {
        let mut out: Vec<Option<Record>> = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(READ_FAN_OUT) {
            let mut set = JoinSet::new();
            for (i, (kind, id)) in chunk.iter().enumerate() {
                let inner = Arc::clone(self);
                let (kind, id) = (*kind, id.clone());
                set.spawn(async move { (i, inner.read_object(kind, &id).await) });
            }
            let mut got: Vec<Option<Record>> = (0..chunk.len()).map(|_| None).collect();
            while let Some(joined) = set.join_next().await {
                let (i, record) = joined.map_err(|e| unavailable("object read task failed", e))?;
                if let Some(slot) = got.get_mut(i) {
                    *slot = record?;
                }
            }
            out.extend(got);
        }
        Ok(out)
    }

    /// Every object row, page by page (a scan of the whole table).
    async fn scan_objects(&self) -> StoreResult<Vec<Record>> {
        let st = self.st().await?;
        let mut paging = PagingState::start();
        let mut out = Vec::new();
        loop {
            let (result, next) = self
                .session
                .execute_single_page(&st.scan_objects, (), paging)
                .await
                .map_err(|e| unavailable("cannot scan catalog_objects", e))?;
            for row in rows::<ObjectRow>(result)? {
                out.push(row.decode()?);
            }
            match next.into_paging_control_flow() {
                ControlFlow::Break(()) => return Ok(out),
                ControlFlow::Continue(state) => paging = state,
            }
        }
    }

    /// Up to `n` ids after `after` from a list's query table, and whether more may follow.
    async fn index_page(
        self: &Arc<Self>,
        kind: Kind,
        source: &ListSource,
        after: &str,
        n: usize,
    ) -> StoreResult<(Vec<String>, bool)> {
        let st = self.st().await?;
        let limit = cql_limit(n);
        let single = |result: QueryResult| -> StoreResult<(Vec<String>, bool)> {
            let ids: Vec<String> = rows::<(String,)>(result)?.into_iter().map(|(id,)| id).collect();
            let more = ids.len() >= n;
            Ok((ids, more))
        };
        match source {
            ListSource::Parent(parent) => single(
                self.exec(&st.page_parent, (kind.as_str(), parent, after, limit), "cannot read objects_by_parent")
                    .await?,
            ),
            ListSource::Owner(owner) => single(
                self.exec(&st.page_owner, (kind.as_str(), owner, after, limit), "cannot read objects_by_owner").await?,
            ),
            ListSource::Kind => {
                let mut set = JoinSet::new();
                for bucket in 0..KIND_BUCKETS as i32 {
                    let inner = Arc::clone(self);
                    let after = after.to_string();
                    set.spawn(async move {
                        let st = inner.st().await?;
                        let result = inner
                            .exec(&st.page_kind, (kind.as_str(), bucket, after, limit), "cannot read objects_by_kind")
                            .await?;
                        Ok::<_, StoreError>(rows::<(String,)>(result)?.into_iter().map(|(id,)| id).collect::<Vec<_>>())
                    });
                }
                let mut pages = Vec::with_capacity(KIND_BUCKETS as usize);
                while let Some(joined) = set.join_next().await {
                    pages.push(joined.map_err(|e| unavailable("index read task failed", e))??);
                }
                Ok(merge_pages(pages, n))
            }
        }
    }

    // -- the version head -----------------------------------------------------------------------

    async fn read_head(&self, serial: bool) -> StoreResult<Head> {
        let st = self.st().await?;
        let statement = if serial { &st.read_head_serial } else { &st.read_head };
        let result = self.exec(statement, (), "cannot read catalog_head").await?;
        let row = first::<HeadRow>(result)?.ok_or_else(|| {
            StoreError::Unavailable("catalog_head has no row: the migration did not finish; run migrate".into())
        })?;
        row.decode()
    }

    /// The claim recorded with change `version`, `None` while that change is not applied.
    async fn change_claim(&self, version: u64) -> StoreResult<Option<Uuid>> {
        let st = self.st().await?;
        let result = self
            .exec(
                &st.change_claim,
                (change_bucket(version)?, to_cql(version, "catalog version")?),
                "cannot read catalog_changes",
            )
            .await?;
        Ok(first::<(Option<Uuid>,)>(result)?.map(|(claim,)| claim.unwrap_or_default()))
    }

    /// Makes sure the write that claimed the head's version is applied, waiting briefly for its
    /// own writer and then applying it here (its writer may have died after the claim).
    async fn settle(&self, head: &Head) -> StoreResult<()> {
        let Some(intent) = &head.intent else { return Ok(()) };
        for wait in SETTLE_WAITS_MS {
            if wait > 0 {
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            if self.change_claim(head.version).await?.is_some() {
                return Ok(());
            }
        }
        tracing::info!(
            version = head.version,
            kind = intent.record.spec.kind().as_str(),
            id = %intent.record.meta.id,
            "finishing a claimed catalog write whose writer has not applied it"
        );
        self.apply(intent).await
    }

    /// The newest catalog version, settled: its change and object are visible.
    async fn settled_version(&self) -> StoreResult<u64> {
        let head = self.read_head(false).await?;
        self.settle(&head).await?;
        Ok(head.version)
    }

    /// Applies a claimed write: query tables, then the object, then the change row. Idempotent,
    /// so the writer and any number of settling readers may run it, even concurrently.
    async fn apply(&self, intent: &Intent) -> StoreResult<()> {
        let st = self.st().await?;
        let version = intent.catalog_version();
        let row = ObjectRow::encode(&intent.record)?;
        let kind = row.kind.as_str();
        let id = row.id.as_str();
        // Query-table rows are written with the object's version as their timestamp: a delete
        // from the old parent at version v shadows the insert of version < v, however late it
        // arrives, and never the insert of a later version.
        let stamp = row.version;
        self.exec(&st.index_kind, (kind, kind_bucket(id), id, stamp), "cannot write objects_by_kind").await?;
        self.exec(&st.index_owner, (kind, &row.owner_id, id, stamp), "cannot write objects_by_owner").await?;
        if let Some(parent) = &row.parent_id {
            self.exec(&st.index_parent, (kind, parent, id, stamp), "cannot write objects_by_parent").await?;
        }
        if let Some(previous) = intent.previous_parent_id.as_ref().filter(|p| Some(*p) != row.parent_id.as_ref()) {
            self.exec(&st.unindex_parent, (stamp, kind, previous, id), "cannot write objects_by_parent").await?;
        }
        let result = match intent.op {
            ChangeOp::Created => {
                self.exec(
                    &st.insert_object,
                    (
                        kind,
                        id,
                        &row.owner_id,
                        &row.parent_id,
                        &row.status,
                        row.version,
                        &row.created_at,
                        &row.updated_at,
                        row.catalog_version,
                        &row.body,
                    ),
                    "cannot insert a catalog object",
                )
                .await?
            }
            ChangeOp::Updated | ChangeOp::Archived => {
                self.exec(
                    &st.update_object,
                    (
                        &row.parent_id,
                        &row.status,
                        row.version,
                        &row.updated_at,
                        row.catalog_version,
                        &row.body,
                        kind,
                        id,
                        row.version - 1,
                    ),
                    "cannot update a catalog object",
                )
                .await?
            }
        };
        if !lwt_applied(result)? {
            // Someone applied this version already (and maybe later ones): fine. Anything else
            // breaks the protocol's invariant.
            let stored = self.read_object(intent.record.spec.kind(), id).await?;
            match stored {
                Some(r) if r.meta.catalog_version >= version => {}
                other => {
                    return Err(corrupt(format!(
                        "catalog version {version} cannot be applied to {kind} {id}: stored (version, catalog version) is {:?}",
                        other.map(|r| (r.meta.version, r.meta.catalog_version))
                    )))
                }
            }
        }
        self.exec(
            &st.insert_change,
            (change_bucket(version)?, row.catalog_version, kind, id, op_str(intent.op), ts(&intent.at), intent.claim),
            "cannot write catalog_changes",
        )
        .await?;
        Ok(())
    }

    /// After a claim whose outcome is unknown: reads the head at LOCAL_SERIAL (completing any
    /// Paxos round in flight) and tells whether `intent` won its version.
    async fn resolve_claim(&self, intent: &Intent, error: StoreError) -> StoreResult<bool> {
        let version = intent.catalog_version();
        tracing::warn!(version, error = %error, "catalog version claim outcome unknown; reading the head back");
        let head = self.read_head(true).await.map_err(|e| {
            StoreError::Unavailable(format!(
                "claim of catalog version {version} failed ({error}) and its outcome cannot be read: {e}"
            ))
        })?;
        if head.version == version {
            return Ok(head.intent.map(|i| i.claim) == Some(intent.claim));
        }
        if head.version > version {
            // Later versions exist, so this one is applied: its change row names its claim.
            return Ok(self.change_claim(version).await? == Some(intent.claim));
        }
        Ok(false)
    }

    /// Commits one catalog write (see the module header): `build` checks the precondition on the
    /// object as stored and says what the write makes of it.
    async fn commit<F>(&self, kind: Kind, id: &str, build: F) -> StoreResult<(Record, CatalogChange)>
    where
        F: Fn(Option<Record>) -> StoreResult<Draft>,
    {
        let st = self.st().await?;
        let started = Instant::now();
        for attempt in 0..CLAIM_ATTEMPTS {
            let head = self.read_head(false).await?;
            self.settle(&head).await?;
            let draft = build(self.read_object(kind, id).await?)?;
            let mut record = draft.record;
            record.meta.catalog_version = head.version + 1;
            let intent = Intent {
                claim: Uuid::now_v7(),
                record,
                op: draft.op,
                at: draft.at,
                previous_parent_id: draft.previous_parent_id,
            };
            let claimed = self.session.execute_unpaged(&st.claim_head, intent.head_values()?).await;
            let won = match claimed {
                Ok(result) => lwt_applied(result)?,
                Err(e) => self.resolve_claim(&intent, unavailable("claim failed", e)).await?,
            };
            if won {
                let mut tries = 0;
                loop {
                    tries += 1;
                    match self.apply(&intent).await {
                        Ok(()) => return Ok((intent.record.clone(), intent.change())),
                        Err(StoreError::Unavailable(e)) if tries < APPLY_ATTEMPTS => {
                            tracing::warn!(version = intent.catalog_version(), error = %e, "retrying to apply a won catalog write");
                            backoff(tries + 2).await;
                        }
                        // The version is committed; the next reader or writer finishes it.
                        Err(e) => return Err(e),
                    }
                }
            }
            if started.elapsed() > CLAIM_BUDGET {
                break;
            }
            backoff(attempt).await;
        }
        Err(StoreError::Unavailable(format!(
            "could not claim a catalog version for {} {id}: the head stayed contended",
            kind.as_str()
        )))
    }

    /// Every change in `(after, upto]`, which must all be settled; a missing one is damage.
    async fn changes_between(&self, after: u64, upto: u64) -> StoreResult<Vec<CatalogChange>> {
        let st = self.st().await?;
        let mut out: Vec<CatalogChange> = Vec::new();
        let wanted = upto.saturating_sub(after);
        for bucket in change_buckets(after, upto)? {
            let remaining = wanted.saturating_sub(out.len() as u64);
            let limit = cql_limit(usize::try_from(remaining.min(schema::CHANGE_BUCKET_SIZE)).unwrap_or(usize::MAX));
            let result = self
                .exec(
                    &st.page_changes,
                    (bucket, to_cql(after, "catalog version")?, to_cql(upto, "catalog version")?, limit),
                    "cannot read catalog_changes",
                )
                .await?;
            for row in rows::<ChangeRow>(result)? {
                out.push(row.decode()?);
            }
        }
        for (expected, change) in (after + 1..).zip(&out) {
            if change.version != expected {
                return Err(corrupt(format!("the catalog change log has no version {expected}")));
            }
        }
        if (out.len() as u64) < wanted {
            return Err(corrupt(format!("the catalog change log has no version {}", after + 1 + out.len() as u64)));
        }
        Ok(out)
    }

    // -- api keys -------------------------------------------------------------------------------

    async fn read_key(&self, id: &str, serial: bool) -> StoreResult<Option<ApiKey>> {
        let st = self.st().await?;
        let statement = if serial { &st.get_key_serial } else { &st.get_key };
        let result = self.exec(statement, (id,), "cannot read api_keys").await?;
        first::<KeyRow>(result)?.map(KeyRow::decode).transpose()
    }

    async fn read_keys(self: &Arc<Self>, ids: &[String]) -> StoreResult<Vec<Option<ApiKey>>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(READ_FAN_OUT) {
            let mut set = JoinSet::new();
            for (i, id) in chunk.iter().enumerate() {
                let inner = Arc::clone(self);
                let id = id.clone();
                set.spawn(async move { (i, inner.read_key(&id, false).await) });
            }
            let mut got: Vec<Option<ApiKey>> = (0..chunk.len()).map(|_| None).collect();
            while let Some(joined) = set.join_next().await {
                let (i, key) = joined.map_err(|e| unavailable("key read task failed", e))?;
                if let Some(slot) = got.get_mut(i) {
                    *slot = key?;
                }
            }
            out.extend(got);
        }
        Ok(out)
    }

    async fn hash_owner(&self, key_hash: &str) -> StoreResult<Option<String>> {
        let st = self.st().await?;
        let result = self.exec(&st.get_hash, (key_hash,), "cannot read api_keys_by_hash").await?;
        Ok(first::<(Option<String>,)>(result)?.and_then(|(id,)| id))
    }
}

#[async_trait]
impl CatalogStore for ScyllaStore {
    async fn migrate(&self) -> StoreResult<u32> {
        let inner = &self.inner;
        for cql in schema::bootstrap(&inner.cfg) {
            inner.ddl(&cql).await?;
        }
        let current = inner.applied_schema_version().await?;
        if current > SCHEMA_VERSION {
            return Err(StoreError::Unavailable(format!(
                "catalog schema version {current} is newer than this binary's {SCHEMA_VERSION}"
            )));
        }
        for (version, statements) in schema::pending(&inner.cfg.keyspace, current) {
            for cql in statements {
                inner.ddl(&cql).await?;
            }
            tracing::info!(version, keyspace = %inner.cfg.keyspace, "applied catalog migration");
        }
        // Every table exists now: prepare the request-path statements.
        inner.st().await?;
        Ok(SCHEMA_VERSION)
    }

    async fn health(&self) -> StoreHealth {
        let inner = &self.inner;
        let down = |error: String| StoreHealth {
            reachable: false,
            schema_version: 0,
            expected_schema_version: SCHEMA_VERSION,
            error: Some(error),
        };
        match inner.st().await {
            Ok(st) => {
                let version = match inner.exec(&st.schema_version, (), "cannot read schema_migrations").await {
                    Ok(result) => first::<(i32,)>(result).map(|v| v.map(|(v,)| v).unwrap_or(0)),
                    Err(e) => return down(e.to_string()),
                };
                match version.map(|v| u32::try_from(v).unwrap_or(0)) {
                    Ok(v) => StoreHealth {
                        reachable: true,
                        schema_version: v,
                        expected_schema_version: SCHEMA_VERSION,
                        error: None,
                    },
                    Err(e) => StoreHealth {
                        reachable: true,
                        schema_version: 0,
                        expected_schema_version: SCHEMA_VERSION,
                        error: Some(e.to_string()),
                    },
                }
            }
            Err(not_prepared) => match inner.exec(&inner.probe, (), "ScyllaDB does not answer").await {
                // The cluster answers; the catalog schema is not there (yet).
                Ok(_) => StoreHealth {
                    reachable: true,
                    schema_version: 0,
                    expected_schema_version: SCHEMA_VERSION,
                    error: Some(not_prepared.to_string()),
                },
                Err(e) => down(e.to_string()),
            },
        }
    }

    async fn insert(&self, record: Record) -> StoreResult<(Record, CatalogChange)> {
        let kind = record.spec.kind();
        let id = record.meta.id.clone();
        self.inner
            .commit(kind, &id, |current| {
                if current.is_some() {
                    return Err(StoreError::AlreadyExists);
                }
                let mut record = record.clone();
                record.meta.version = 1;
                Ok(Draft { at: record.meta.created_at, record, op: ChangeOp::Created, previous_parent_id: None })
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
        self.inner
            .commit(kind, id, |current| {
                let current = current.ok_or(StoreError::NotFound)?;
                if current.meta.version != expected_version {
                    return Err(StoreError::VersionConflict { current: current.meta.version });
                }
                let op = if spec.status() == Status::Archived && current.spec.status() != Status::Archived {
                    ChangeOp::Archived
                } else {
                    ChangeOp::Updated
                };
                let previous_parent_id =
                    current.spec.parent_id().filter(|p| Some(*p) != spec.parent_id()).map(str::to_string);
                let mut meta = current.meta;
                meta.version += 1;
                meta.updated_at = at;
                Ok(Draft { record: Record { meta, spec: spec.clone() }, op, at, previous_parent_id })
            })
            .await
    }

    async fn get(&self, kind: Kind, id: &str) -> StoreResult<Option<Record>> {
        self.inner.read_object(kind, id).await
    }

    /// Reads ids from the most selective query table (parent, else owner, else the kind's
    /// buckets), re-reads each object from `catalog_objects` and filters on what it finds
    /// there, so a query-table row left behind by a crash or a move never shows.
    async fn list(&self, kind: Kind, query: &ListQuery) -> StoreResult<Page<Record>> {
        let limit = query.limit.max(1);
        let want = limit.saturating_add(1);
        let source = match (&query.parent_id, &query.owner_id) {
            (Some(parent), _) => ListSource::Parent(parent.clone()),
            (None, Some(owner)) => ListSource::Owner(owner.clone()),
            (None, None) => ListSource::Kind,
        };
        let mut cursor = query.after_id.clone().unwrap_or_default();
        let mut items: Vec<Record> = Vec::new();
        loop {
            let batch = (want - items.len()).clamp(LIST_BATCH.0, LIST_BATCH.1);
            let (ids, more) = self.inner.index_page(kind, &source, &cursor, batch).await?;
            let Some(last) = ids.last().cloned() else { break };
            let keys: Vec<(Kind, String)> = ids.into_iter().map(|id| (kind, id)).collect();
            for record in self.inner.read_objects(&keys).await?.into_iter().flatten() {
                if matches(query, &record) {
                    items.push(record);
                    if items.len() == want {
                        break;
                    }
                }
            }
            if items.len() == want || !more {
                break;
            }
            cursor = last;
        }
        let next_after = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|r| r.meta.id.clone())
        } else {
            None
        };
        Ok(Page { items, next_after })
    }

    /// Consistent at the returned version V: every object is as it was right after change V.
    /// The scan starts after the head (V0) is settled, so no object is older than V0; objects
    /// changed while the scan ran show a catalog version above V0. Rather than rescanning, the
    /// snapshot moves to the head now settled (V1) and re-reads just the objects that changes
    /// (V0, V1] name; it repeats until a round finds no object newer than its head.
    async fn snapshot(&self) -> StoreResult<(u64, Vec<Record>)> {
        let inner = &self.inner;
        let mut version = inner.settled_version().await?;
        let mut objects: BTreeMap<(Kind, String), Record> =
            inner.scan_objects().await?.into_iter().map(|r| ((r.spec.kind(), r.meta.id.clone()), r)).collect();
        for _ in 0..SNAPSHOT_ROUNDS {
            let head = inner.settled_version().await?;
            if head > version {
                let touched: BTreeSet<(Kind, String)> =
                    inner.changes_between(version, head).await?.into_iter().map(|c| (c.kind, c.id)).collect();
                let keys: Vec<(Kind, String)> = touched.into_iter().collect();
                for (key, record) in keys.iter().zip(inner.read_objects(&keys).await?) {
                    let record = record.ok_or_else(|| {
                        corrupt(format!("{} {} is named by a change but absent", key.0.as_str(), key.1))
                    })?;
                    objects.insert(key.clone(), record);
                }
                version = head;
            }
            if objects.values().all(|r| r.meta.catalog_version <= version) {
                return Ok((version, objects.into_values().collect()));
            }
            // An object newer than the head just read: its version is committed, so the next
            // head read shows it (or a later one).
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(StoreError::Unavailable(format!(
            "the catalog kept changing during {SNAPSHOT_ROUNDS} rounds of a snapshot; retry"
        )))
    }

    async fn catalog_version(&self) -> StoreResult<u64> {
        self.inner.settled_version().await
    }

    async fn changes_since(&self, after: u64, limit: usize) -> StoreResult<Vec<CatalogChange>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let head = self.inner.settled_version().await?;
        let upto = head.min(after.saturating_add(u64::try_from(limit).unwrap_or(u64::MAX)));
        self.inner.changes_between(after, upto).await
    }

    /// Writes the list rows, claims the hash (`IF NOT EXISTS` keeps hashes unique), then the
    /// key row (`IF NOT EXISTS` keeps ids unique). List and hash rows are only pointers: reads
    /// check them against `api_keys`, so the leftovers of a failed insert never show.
    async fn insert_api_key(&self, key: ApiKey) -> StoreResult<ApiKey> {
        let inner = &self.inner;
        let st = inner.st().await?;
        let mut key = key;
        key.version = 1;
        let row = KeyRow::encode(&key)?;
        inner.exec(&st.index_key_all, (&row.id,), "cannot write api_keys_all").await?;
        if let Some(advertiser) = &row.advertiser_id {
            inner.exec(&st.index_key_advertiser, (advertiser, &row.id), "cannot write api_keys_by_advertiser").await?;
        }
        let claimed = inner.exec(&st.claim_hash, (&row.key_hash, &row.id), "cannot write api_keys_by_hash").await?;
        if !lwt_applied(claimed)? {
            // Taken — unless by an earlier attempt at this very key that stopped before its row.
            let resumable = inner.hash_owner(&row.key_hash).await?.as_deref() == Some(row.id.as_str())
                && inner.read_key(&row.id, true).await?.is_none();
            if !resumable {
                return Err(StoreError::AlreadyExists);
            }
        }
        let inserted = inner
            .exec(
                &st.insert_key,
                (
                    &row.id,
                    &row.name,
                    &row.role,
                    &row.advertiser_id,
                    &row.prefix,
                    &row.status,
                    row.version,
                    &row.created_at,
                    &row.updated_at,
                    &row.key_hash,
                ),
                "cannot write api_keys",
            )
            .await?;
        if !lwt_applied(inserted)? {
            // The id is taken: give the hash back unless the existing key owns it.
            let existing = inner.read_key(&row.id, true).await?;
            if existing.map(|k| k.key_hash) != Some(row.key_hash.clone()) {
                inner.exec(&st.release_hash, (&row.key_hash, &row.id), "cannot release api_keys_by_hash").await?;
            }
            return Err(StoreError::AlreadyExists);
        }
        Ok(key)
    }

    async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKey>> {
        self.inner.read_key(id, false).await
    }

    async fn find_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        let Some(id) = self.inner.hash_owner(key_hash).await? else { return Ok(None) };
        Ok(self.inner.read_key(&id, false).await?.filter(|k| k.key_hash == key_hash))
    }

    async fn list_api_keys(
        &self,
        advertiser_id: Option<&str>,
        after_id: Option<&str>,
        limit: usize,
    ) -> StoreResult<Page<ApiKey>> {
        let inner = &self.inner;
        let st = inner.st().await?;
        let limit = limit.max(1);
        let want = limit.saturating_add(1);
        let mut cursor = after_id.unwrap_or_default().to_string();
        let mut items: Vec<ApiKey> = Vec::new();
        loop {
            let batch = (want - items.len()).clamp(LIST_BATCH.0, LIST_BATCH.1);
            let result = match advertiser_id {
                Some(a) => {
                    inner
                        .exec(
                            &st.page_keys_advertiser,
                            (a, &cursor, cql_limit(batch)),
                            "cannot read api_keys_by_advertiser",
                        )
                        .await?
                }
                None => inner.exec(&st.page_keys_all, (&cursor, cql_limit(batch)), "cannot read api_keys_all").await?,
            };
            let ids: Vec<String> = rows::<(String,)>(result)?.into_iter().map(|(id,)| id).collect();
            let Some(last) = ids.last().cloned() else { break };
            let more = ids.len() >= batch;
            for key in inner.read_keys(&ids).await?.into_iter().flatten() {
                if advertiser_id.is_none_or(|a| key.advertiser_id.as_deref() == Some(a)) {
                    items.push(key);
                    if items.len() == want {
                        break;
                    }
                }
            }
            if items.len() == want || !more {
                break;
            }
            cursor = last;
        }
        let next_after = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|k| k.id.clone())
        } else {
            None
        };
        Ok(Page { items, next_after })
    }

    /// `UPDATE api_keys ... IF version = expected`: name, status, version and updated_at change;
    /// role, owner and hash never do here.
    async fn update_api_key(&self, key: ApiKey, expected_version: u64) -> StoreResult<ApiKey> {
        let inner = &self.inner;
        let st = inner.st().await?;
        let current = inner.read_key(&key.id, false).await?.ok_or(StoreError::NotFound)?;
        if current.version != expected_version {
            return Err(StoreError::VersionConflict { current: current.version });
        }
        let mut next = key;
        next.version = expected_version + 1;
        let row = KeyRow::encode(&next)?;
        let result = inner
            .exec(
                &st.update_key,
                (
                    &row.name,
                    &row.status,
                    row.version,
                    &row.updated_at,
                    &row.id,
                    to_cql(expected_version, "key version")?,
                ),
                "cannot update api_keys",
            )
            .await?;
        if !lwt_applied(result)? {
            return match inner.read_key(&row.id, true).await? {
                Some(k) => Err(StoreError::VersionConflict { current: k.version }),
                None => Err(StoreError::NotFound),
            };
        }
        inner.read_key(&row.id, false).await?.ok_or(StoreError::NotFound)
    }
}
