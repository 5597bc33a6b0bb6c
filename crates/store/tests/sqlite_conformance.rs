//! The store conformance suite on the embedded SQLite adapter, plus SQLite-only checks.

use adp_domain::{CatalogStore, Kind};
use adp_store::{catalog_store_conformance, conformance, SqliteStore};
use std::sync::Arc;

async fn fresh_sqlite() -> (Arc<dyn CatalogStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open_in_dir(dir.path()).expect("open");
    store.migrate().await.expect("migrate");
    (Arc::new(store), dir)
}

catalog_store_conformance!(fresh_sqlite);

#[tokio::test]
async fn data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = SqliteStore::open_in_dir(dir.path()).expect("open");
        store.migrate().await.expect("migrate");
        let rec = adp_domain::Record {
            meta: adp_domain::new_meta("a1".into(), "a1".into(), conformance::at(0)),
            spec: conformance::sample_spec(Kind::Advertiser, "", "shoes"),
        };
        store.insert(rec).await.expect("insert");
    }
    let store = SqliteStore::open_in_dir(dir.path()).expect("reopen");
    let health = store.health().await;
    assert!(health.ready(), "migrations are recorded in the file: {health:?}");
    let got = store.get(Kind::Advertiser, "a1").await.expect("get").expect("present");
    assert_eq!(got.spec.name(), "shoes");
    assert_eq!(store.catalog_version().await.expect("version"), 1);
}

#[tokio::test]
async fn unmigrated_store_is_not_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open_in_dir(dir.path()).expect("open");
    let health = store.health().await;
    assert!(health.reachable);
    assert!(!health.ready(), "a store without migrations must not report ready: {health:?}");
}
