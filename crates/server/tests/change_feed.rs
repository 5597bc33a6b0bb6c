//! The in-process catalog change feed: every committed write over HTTP is published once, in
//! version order, with its operation; `/api/v1/catalog/version` agrees.

use adp_domain::{CatalogStore, ChangeOp, Kind};
use adp_server::{auth, AppState, HttpSettings};
use adp_store::SqliteStore;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "feed-test-admin-key-000";

#[tokio::test]
async fn committed_writes_are_published_in_version_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open_in_dir(dir.path()).expect("open");
    store.migrate().await.expect("migrate");
    let store: Arc<dyn CatalogStore> = Arc::new(store);
    auth::install_bootstrap_key(store.as_ref(), KEY).await.expect("key");
    let state = AppState::new(Arc::clone(&store)).await.expect("state");
    let mut changes = state.feed().subscribe();
    let mut version = state.feed().watch_version();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(adp_server::serve(listener, state, HttpSettings::default(), std::future::pending()));

    let http = reqwest::Client::new();
    let send = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = http.request(method, format!("{base}{path}")).bearer_auth(KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
    };
    let ok = |r: reqwest::Response| {
        assert!(r.status().is_success(), "{}", r.status());
    };
    ok(send(reqwest::Method::POST, "/api/v1/advertisers", Some(json!({"id": "a1", "name": "A"}))).await.expect("send"));
    ok(send(
        reqwest::Method::POST,
        "/api/v1/campaigns",
        Some(json!({"id": "c1", "advertiser_id": "a1", "name": "C", "start": "2026-01-01T00:00:00Z"})),
    )
    .await
    .expect("send"));
    ok(send(reqwest::Method::PATCH, "/api/v1/campaigns/c1", Some(json!({"version": 1, "name": "C2"})))
        .await
        .expect("send"));
    // A rejected write publishes nothing.
    let stale = send(reqwest::Method::PATCH, "/api/v1/campaigns/c1", Some(json!({"version": 1, "name": "C3"})))
        .await
        .expect("send");
    assert_eq!(stale.status(), reqwest::StatusCode::CONFLICT);
    ok(send(reqwest::Method::POST, "/api/v1/campaigns/c1/archive", None).await.expect("send"));

    let mut got = Vec::new();
    for _ in 0..4 {
        let c = tokio::time::timeout(Duration::from_secs(5), changes.recv()).await.expect("in time").expect("change");
        got.push((c.version, c.kind, c.id, c.op));
    }
    assert_eq!(
        got,
        vec![
            (1, Kind::Advertiser, "a1".to_string(), ChangeOp::Created),
            (2, Kind::Campaign, "c1".to_string(), ChangeOp::Created),
            (3, Kind::Campaign, "c1".to_string(), ChangeOp::Updated),
            (4, Kind::Campaign, "c1".to_string(), ChangeOp::Archived),
        ]
    );
    assert!(changes.try_recv().is_err(), "nothing else was published");
    assert_eq!(*version.borrow_and_update(), 4);
    let v: Value =
        http.get(format!("{base}/api/v1/catalog/version")).send().await.expect("send").json().await.expect("json");
    assert_eq!(v["version"], 4);
    assert_eq!(store.changes_since(0, 10).await.expect("changes").len(), 4, "the feed matches the store's change log");
}
