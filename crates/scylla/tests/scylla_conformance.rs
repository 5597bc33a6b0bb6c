//! The store conformance suite on ScyllaDB, plus ScyllaDB-only checks (DDL, a writer that died
//! after claiming a version, parent moves, change-log buckets, snapshots under writes).
//!
//! Needs a CQL server: set `SCYLLA_URI` (e.g. `127.0.0.1:9042`, or several comma-separated).
//! Each test gets its own fresh keyspace (random name, SimpleStrategy RF 1), dropped afterwards.
//! The tests that need a server are `#[ignore]`d, with the reason shown by the harness, so a
//! plain `cargo test` reports them as ignored (never as passed). Run them with
//! `SCYLLA_URI=127.0.0.1:9042 cargo test -p adp-scylla -- --include-ignored`; asked for without
//! `SCYLLA_URI`, they fail. See crates/scylla/README.md.

use adp_domain::{new_meta, CatalogStore, ChangeOp, Kind, ListQuery, Record, Spec, Status};
use adp_scylla::{ddl, Replication, ScyllaConfig, ScyllaStore};
use adp_store::conformance::{self, at, sample_spec};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use uuid::Uuid;

fn scylla_uri() -> Option<String> {
    std::env::var("SCYLLA_URI").ok().filter(|s| !s.trim().is_empty())
}

/// Written to the process's stderr directly, so the harness cannot swallow it.
fn print_skipped(what: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED (no SCYLLA_URI): scylla conformance {what} — run ScyllaDB in Docker, see crates/scylla/README.md"
    );
}

fn test_config(uri: &str) -> ScyllaConfig {
    ScyllaConfig {
        nodes: uri.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
        keyspace: format!("adp_test_{}", Uuid::new_v4().simple()),
        replication: Replication::Simple { factor: 1 },
        ..ScyllaConfig::default()
    }
}

async fn raw_session(cfg: &ScyllaConfig) -> Session {
    SessionBuilder::new().known_nodes(&cfg.nodes).build().await.expect("raw session")
}

/// Drops a test keyspace; a failure only leaves a keyspace behind, so it is reported, not fatal.
async fn drop_keyspace(cfg: &ScyllaConfig) {
    let session = raw_session(cfg).await;
    if let Err(e) = session.query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", cfg.keyspace), ()).await {
        let _ = writeln!(std::io::stderr(), "could not drop test keyspace {}: {e}", cfg.keyspace);
    }
}

/// Runs `case` on a fresh, migrated store in its own keyspace and drops the keyspace afterwards,
/// also when the case panics (the panic is then re-raised).
async fn run_case<F, Fut>(name: &str, case: F)
where
    F: FnOnce(Arc<ScyllaStore>, ScyllaConfig) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(uri) = scylla_uri() else {
        print_skipped(name);
        panic!("{name} needs SCYLLA_URI (a CQL server); it is #[ignore]d unless you ask for it");
    };
    let cfg = test_config(&uri);
    let store = ScyllaStore::connect(&cfg).await.expect("connect");
    store.migrate().await.expect("migrate");
    let outcome = tokio::spawn(case(Arc::new(store), cfg.clone())).await;
    drop_keyspace(&cfg).await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test task failed: {e}"),
        }
    }
}

/// One test per check of `adp_store::conformance`; the list must equal the one in
/// `catalog_store_conformance!` (checked below). The store crate's macro cannot be used as is:
/// its tests cannot skip when there is no server.
macro_rules! scylla_conformance {
    ($($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs a CQL server: SCYLLA_URI=host:port cargo test -p adp-scylla -- --include-ignored (crates/scylla/README.md)"]
            async fn $case() {
                run_case(stringify!($case), |store, _cfg| conformance::$case(store)).await;
            }
        )*
        const CASES: &[&str] = &[$(stringify!($case)),*];
    };
}

scylla_conformance!(
    migrate_is_idempotent_and_health_ready,
    insert_then_get_returns_the_same_record_for_every_kind,
    duplicate_id_is_rejected,
    update_checks_and_bumps_the_version,
    concurrent_writers_with_one_version_have_one_winner,
    changes_are_gapless_ordered_and_typed,
    list_filters_and_paginates,
    snapshot_holds_everything_at_its_version,
    api_keys_are_found_by_hash_listed_and_revoked,
);

/// Runs without a server: a check added to the store suite must be added here too.
#[test]
fn every_conformance_check_runs_here() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/src/conformance.rs");
    let source = std::fs::read_to_string(&path).expect("read the store conformance suite");
    let start = source.find("catalog_store_conformance!(@cases $factory;").expect("the macro's case list");
    let list = &source[start..];
    let end = list.find(");").expect("end of the case list");
    let upstream: Vec<&str> =
        list[..end].lines().skip(1).map(|l| l.trim().trim_end_matches(',')).filter(|l| !l.is_empty()).collect();
    assert_eq!(upstream, CASES, "crates/store/src/conformance.rs lists other checks than this file");
}

// ---------------------------------------------------------------------------------------------
// ScyllaDB-only checks

fn advertiser(id: &str) -> Record {
    Record { meta: new_meta(id.into(), id.into(), at(0)), spec: sample_spec(Kind::Advertiser, "", id) }
}

#[tokio::test]
#[ignore = "needs a CQL server: SCYLLA_URI=host:port cargo test -p adp-scylla -- --include-ignored (crates/scylla/README.md)"]
async fn an_unmigrated_keyspace_is_reachable_but_not_ready() {
    let Some(uri) = scylla_uri() else {
        print_skipped("an_unmigrated_keyspace_is_reachable_but_not_ready");
        panic!("an_unmigrated_keyspace_is_reachable_but_not_ready needs SCYLLA_URI (a CQL server)");
    };
    let cfg = test_config(&uri);
    let store = ScyllaStore::connect(&cfg).await.expect("connect");
    let health = store.health().await;
    assert!(health.reachable, "{health:?}");
    assert!(!health.ready(), "{health:?}");
    assert!(store.get(Kind::Advertiser, "a1").await.is_err(), "no reads before migrate");
}

#[tokio::test]
#[ignore = "needs a CQL server: SCYLLA_URI=host:port cargo test -p adp-scylla -- --include-ignored (crates/scylla/README.md)"]
async fn the_printed_ddl_creates_a_ready_schema() {
    let Some(uri) = scylla_uri() else {
        print_skipped("the_printed_ddl_creates_a_ready_schema");
        panic!("the_printed_ddl_creates_a_ready_schema needs SCYLLA_URI (a CQL server)");
    };
    let cfg = test_config(&uri);
    let session = raw_session(&cfg).await;
    for statement in ddl(&cfg).expect("ddl") {
        session.query_unpaged(statement.as_str(), ()).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let store = ScyllaStore::connect(&cfg).await.expect("connect");
    let health = store.health().await;
    let inserted = store.insert(advertiser("a1")).await.map(|(_, c)| c.version);
    drop_keyspace(&cfg).await;
    assert!(health.ready(), "the dry-run DDL is the whole migration: {health:?}");
    assert_eq!(inserted.expect("insert"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a CQL server: SCYLLA_URI=host:port cargo test -p adp-scylla -- --include-ignored (crates/scylla/README.md)"]
async fn a_version_claimed_by_a_writer_that_died_is_finished_by_the_next_reader() {
    run_case("a_version_claimed_by_a_writer_that_died_is_finished_by_the_next_reader", |store, cfg| async move {
        // A writer claims version 1 for advertiser a1 and dies before applying it.
        let session = raw_session(&cfg).await;
        let body = serde_json::to_string(&sample_spec(Kind::Advertiser, "", "a1").to_json()).expect("body");
        let t = "2026-09-21T14:13:20.123Z";
        let claim = session
            .query_unpaged(
                format!(
                    "UPDATE {}.catalog_head SET version = 1, claim = ?, kind = 'advertiser', object_id = 'a1', \
                     op = 'created', at = ?, owner_id = 'a1', status = 'active', object_version = 1, \
                     created_at = ?, updated_at = ?, body = ? WHERE id = 0 IF version = 0",
                    cfg.keyspace
                ),
                (Uuid::now_v7(), t, t, t, body),
            )
            .await
            .expect("claim");
        assert!(claim.into_rows_result().is_ok());

        // Readers never see the claimed version without its change and object.
        assert_eq!(store.catalog_version().await.expect("version"), 1);
        let changes = store.changes_since(0, 10).await.expect("changes");
        assert_eq!(changes.len(), 1);
        assert_eq!((changes[0].version, changes[0].kind, changes[0].id.as_str()), (1, Kind::Advertiser, "a1"));
        assert_eq!(changes[0].op, ChangeOp::Created);
        let got = store.get(Kind::Advertiser, "a1").await.expect("get").expect("finished by the reader");
        assert_eq!((got.meta.version, got.meta.catalog_version), (1, 1));
        let listed = store.list(Kind::Advertiser, &ListQuery { limit: 10, ..Default::default() }).await.expect("list");
        assert_eq!(listed.items.len(), 1, "the query tables were written too");
        // The next write continues the sequence without a gap.
        let (_, change) = store.insert(advertiser("a2")).await.expect("insert");
        assert_eq!(change.version, 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a CQL server: SCYLLA_URI=host:port cargo test -p adp-scylla -- --include-ignored (crates/scylla/README.md)"]
async fn moving_an_object_moves_it_between_parent_lists() {
    run_case("moving_an_object_moves_it_between_parent_lists", |store, _cfg| async move {
        let li =
            Record { meta: new_meta("li1".into(), "a1".into(), at(0)), spec: sample_spec(Kind::LineItem, "c1", "li1") };
        store.insert(li.clone()).await.expect("insert");
        let mut moved = li.spec.clone();
        if let Spec::LineItem(l) = &mut moved {
            l.campaign_id = "c2".into();
        }
        store.update(Kind::LineItem, "li1", 1, moved.clone(), at(5)).await.expect("move");
        let by_parent = |p: &str| ListQuery { parent_id: Some(p.into()), limit: 10, ..Default::default() };
        assert!(store.list(Kind::LineItem, &by_parent("c1")).await.expect("list").items.is_empty());
        assert_eq!(store.list(Kind::LineItem, &by_parent("c2")).await.expect("list").items.len(), 1);
        // And back again: the later insert wins over the earlier delete.
        store.update(Kind::LineItem, "li1", 2, li.spec.clone(), at(6)).await.expect("move back");
        assert_eq!(store.list(Kind::LineItem, &by_parent("c1")).await.expect("list").items.len(), 1);
        assert!(store.list(Kind::LineItem, &by_parent("c2")).await.expect("list").items.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a CQL server: SCYLLA_URI=host:port cargo test -p adp-scylla -- --include-ignored (crates/scylla/README.md)"]
async fn changes_cross_a_bucket_boundary_in_order() {
    run_case("changes_cross_a_bucket_boundary_in_order", |store, _cfg| async move {
        let n = adp_scylla::CHANGE_BUCKET_SIZE + 5;
        for i in 0..n {
            store.insert(advertiser(&format!("a{i:05}"))).await.expect("insert");
        }
        assert_eq!(store.catalog_version().await.expect("version"), n);
        let tail = store.changes_since(995, 10).await.expect("changes");
        assert_eq!(tail.iter().map(|c| c.version).collect::<Vec<_>>(), (996..=1005).collect::<Vec<_>>());
        let all = store.changes_since(0, usize::MAX).await.expect("changes");
        assert_eq!(all.len() as u64, n);
        assert!(all.iter().zip(1..).all(|(c, v)| c.version == v));
        // The kind's buckets merge back into one id order.
        let page = store.list(Kind::Advertiser, &ListQuery { limit: 7, ..Default::default() }).await.expect("list");
        let ids: Vec<_> = page.items.iter().map(|r| r.meta.id.clone()).collect();
        assert_eq!(ids, (0..7).map(|i| format!("a{i:05}")).collect::<Vec<_>>());
        assert_eq!(page.next_after.as_deref(), Some("a00006"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a CQL server: SCYLLA_URI=host:port cargo test -p adp-scylla -- --include-ignored (crates/scylla/README.md)"]
async fn snapshots_stay_consistent_while_writes_run() {
    run_case("snapshots_stay_consistent_while_writes_run", |store, _cfg| async move {
        for i in 0..20 {
            store.insert(advertiser(&format!("a{i}"))).await.expect("insert");
        }
        let writer = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for round in 0..5u64 {
                    for i in 0..20 {
                        let id = format!("a{i}");
                        let current = store.get(Kind::Advertiser, &id).await.expect("get").expect("present");
                        let mut spec = current.spec.clone();
                        spec.set_status(if round % 2 == 0 { Status::Paused } else { Status::Active });
                        store
                            .update(Kind::Advertiser, &id, current.meta.version, spec, at(round as i64))
                            .await
                            .expect("update");
                    }
                    store.insert(advertiser(&format!("n{round}"))).await.expect("insert");
                }
            })
        };
        for _ in 0..10 {
            let (version, records) = store.snapshot().await.expect("snapshot");
            assert!(records.iter().all(|r| r.meta.catalog_version <= version), "a record newer than the snapshot");
            let created = store
                .changes_since(0, usize::MAX)
                .await
                .expect("changes")
                .into_iter()
                .filter(|c| c.version <= version && c.op == ChangeOp::Created)
                .count();
            assert_eq!(records.len(), created, "objects at version {version}");
        }
        writer.await.expect("writer");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Without a server

#[tokio::test]
async fn connecting_to_nothing_is_unavailable_not_a_panic() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let cfg = ScyllaConfig {
        nodes: vec![format!("127.0.0.1:{port}")],
        connect_timeout: std::time::Duration::from_secs(2),
        ..ScyllaConfig::default()
    };
    match ScyllaStore::connect(&cfg).await {
        Err(adp_domain::StoreError::Unavailable(msg)) => assert!(msg.contains("cannot connect"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn an_invalid_config_is_refused_before_connecting() {
    let cfg = ScyllaConfig { keyspace: "a; DROP KEYSPACE adplatform".into(), ..ScyllaConfig::default() };
    match ScyllaStore::connect(&cfg).await {
        Err(adp_domain::StoreError::Unavailable(msg)) => assert!(msg.contains("keyspace name"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}
