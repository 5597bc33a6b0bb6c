//! conformance: the behaviour every `CatalogStore` adapter must show. Each check takes a fresh,
//! migrated store. Run them all with `catalog_store_conformance!(factory)`, where `factory` is an
//! async fn returning `(Arc<dyn CatalogStore>, guard)`; the guard keeps temporary resources alive.

use adp_domain::{
    new_meta, ApiKey, CatalogStore, ChangeOp, KeyStatus, Kind, ListQuery, Record, Role, Spec, Status, StoreError,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;

/// A time with whole milliseconds (every adapter must keep at least that precision).
pub fn at(offset_secs: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_790_000_000_123).single().unwrap_or_default() + Duration::seconds(offset_secs)
}

/// A valid spec of `kind` whose parent is `parent`.
pub fn sample_spec(kind: Kind, parent: &str, name: &str) -> Spec {
    let v = match kind {
        Kind::Advertiser => json!({"name": name, "domains": ["shoes.example"], "categories": ["IAB18"]}),
        Kind::Campaign => json!({"advertiser_id": parent, "name": name, "start": "2026-01-01T00:00:00Z",
                                 "end": "2027-01-01T00:00:00Z", "budget_micros": 50_000_000_000i64,
                                 "frequency_caps": [{"count": 10, "window": "week"}]}),
        Kind::LineItem => json!({"campaign_id": parent, "name": name, "start": "2026-01-01T00:00:00Z",
                                 "priority": "standard", "pricing": "cpm", "rate_micros": 2_500_000,
                                 "budget": {"daily_micros": 100_000_000, "time_zone": "Europe/Berlin"},
                                 "frequency_caps": [{"count": 3, "window": "day"}, {"count": 1, "window": {"seconds": 300}}],
                                 "targeting": {"all": [{"country": ["DE", "AT"]}, {"not": {"ip_cidr": ["10.0.0.0/8"]}}]},
                                 "channels": ["direct", "rtb"], "deal_ids": ["deal-1"]}),
        Kind::Creative => json!({"advertiser_id": parent, "name": name, "approval": "approved",
                                 "content": {"banner_image": {"image_url": "https://cdn.shoes.example/a.png"}},
                                 "sizes": [{"w": 300, "h": 250}], "click_url": "https://shoes.example/",
                                 "landing_domain": "shoes.example"}),
        Kind::Publisher => json!({"name": name, "domain": "news.example"}),
        Kind::Site => json!({"publisher_id": parent, "name": name, "kind": "site", "domain": "news.example"}),
        Kind::Placement => json!({"site_id": parent, "name": name, "sizes": [{"w": 728, "h": 90}],
                                  "formats": ["banner"], "floor_micros": 500_000, "auction_type": "first_price"}),
    };
    match Spec::from_json(kind, &v) {
        Ok(spec) => spec,
        Err(e) => panic!("conformance fixture for {kind:?} is invalid: {e}"),
    }
}

fn record(kind: Kind, id: &str, owner: &str, parent: &str, t: DateTime<Utc>) -> Record {
    Record { meta: new_meta(id.to_string(), owner.to_string(), t), spec: sample_spec(kind, parent, id) }
}

async fn insert(store: &dyn CatalogStore, kind: Kind, id: &str, owner: &str, parent: &str) -> Record {
    match store.insert(record(kind, id, owner, parent, at(0))).await {
        Ok((r, _)) => r,
        Err(e) => panic!("insert {kind:?} {id}: {e}"),
    }
}

pub async fn migrate_is_idempotent_and_health_ready(store: Arc<dyn CatalogStore>) {
    let v1 = store.migrate().await.expect("migrate");
    let v2 = store.migrate().await.expect("migrate again");
    assert_eq!(v1, v2, "a second migrate must be a no-op");
    let health = store.health().await;
    assert!(health.ready(), "store should be ready after migrate: {health:?}");
    assert_eq!(health.schema_version, v1);
}

pub async fn insert_then_get_returns_the_same_record_for_every_kind(store: Arc<dyn CatalogStore>) {
    for (i, kind) in Kind::ALL.into_iter().enumerate() {
        let id = format!("obj-{i}");
        let mut want = record(kind, &id, "owner-1", "parent-1", at(i as i64));
        let (stored, change) = store.insert(want.clone()).await.expect("insert");
        assert_eq!(stored.meta.version, 1);
        assert_eq!(change.op, ChangeOp::Created);
        assert_eq!((change.kind, change.id.as_str()), (kind, id.as_str()));
        assert_eq!(stored.meta.catalog_version, change.version);
        want.meta.catalog_version = change.version;
        let got = store.get(kind, &id).await.expect("get").expect("present");
        assert_eq!(got, want, "{kind:?} must read back exactly as written");
        // Ids are scoped by kind: the same id of another kind is a different object.
        let other = Kind::ALL[(i + 1) % Kind::ALL.len()];
        if other != kind {
            assert!(store.get(other, &format!("obj-{}", i + 100)).await.expect("get").is_none());
        }
    }
    assert!(store.get(Kind::Campaign, "missing").await.expect("get").is_none());
}

pub async fn duplicate_id_is_rejected(store: Arc<dyn CatalogStore>) {
    insert(store.as_ref(), Kind::Advertiser, "a1", "a1", "").await;
    let again = store.insert(record(Kind::Advertiser, "a1", "a1", "", at(5))).await;
    assert!(matches!(again, Err(StoreError::AlreadyExists)), "got {again:?}");
    // The same id under another kind is allowed.
    insert(store.as_ref(), Kind::Publisher, "a1", "a1", "").await;
    assert_eq!(store.catalog_version().await.expect("version"), 2, "a failed insert must not bump the version");
}

pub async fn update_checks_and_bumps_the_version(store: Arc<dyn CatalogStore>) {
    let r = insert(store.as_ref(), Kind::Campaign, "c1", "a1", "a1").await;
    let mut spec = r.spec.clone();
    if let Spec::Campaign(c) = &mut spec {
        c.name = "renamed".into();
        c.budget_micros = Some(7);
    }
    let (updated, change) = store.update(Kind::Campaign, "c1", 1, spec.clone(), at(60)).await.expect("update");
    assert_eq!(updated.meta.version, 2);
    assert_eq!(updated.meta.created_at, r.meta.created_at);
    assert_eq!(updated.meta.updated_at, at(60));
    assert_eq!(change.op, ChangeOp::Updated);
    assert_eq!(store.get(Kind::Campaign, "c1").await.expect("get").expect("present").spec, spec);

    let stale = store.update(Kind::Campaign, "c1", 1, r.spec.clone(), at(61)).await;
    assert!(matches!(stale, Err(StoreError::VersionConflict { current: 2 })), "got {stale:?}");
    let missing = store.update(Kind::Campaign, "nope", 1, r.spec.clone(), at(61)).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "got {missing:?}");
    let got = store.get(Kind::Campaign, "c1").await.expect("get").expect("present");
    assert_eq!(got.spec, spec, "a rejected write must leave the object unchanged");
}

pub async fn concurrent_writers_with_one_version_have_one_winner(store: Arc<dyn CatalogStore>) {
    let r = insert(store.as_ref(), Kind::Advertiser, "a1", "a1", "").await;
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = Arc::clone(&store);
        let mut spec = r.spec.clone();
        if let Spec::Advertiser(a) = &mut spec {
            a.name = format!("writer {n}");
        }
        tasks.push(tokio::spawn(async move { store.update(Kind::Advertiser, "a1", 1, spec, at(n)).await }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.expect("join") {
            Ok(_) => wins += 1,
            Err(StoreError::VersionConflict { current: 2 }) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one writer may win a version");
    let got = store.get(Kind::Advertiser, "a1").await.expect("get").expect("present");
    assert_eq!(got.meta.version, 2);
}

pub async fn changes_are_gapless_ordered_and_typed(store: Arc<dyn CatalogStore>) {
    assert_eq!(store.catalog_version().await.expect("version"), 0);
    let a = insert(store.as_ref(), Kind::Advertiser, "a1", "a1", "").await;
    insert(store.as_ref(), Kind::Campaign, "c1", "a1", "a1").await;
    let mut archived = a.spec.clone();
    archived.set_status(Status::Archived);
    store.update(Kind::Advertiser, "a1", 1, archived.clone(), at(9)).await.expect("archive");
    store.update(Kind::Advertiser, "a1", 2, archived, at(10)).await.expect("touch archived");
    assert_eq!(store.catalog_version().await.expect("version"), 4);
    let all = store.changes_since(0, 100).await.expect("changes");
    let ops: Vec<_> = all.iter().map(|c| (c.version, c.kind, c.id.as_str(), c.op)).collect();
    assert_eq!(
        ops,
        vec![
            (1, Kind::Advertiser, "a1", ChangeOp::Created),
            (2, Kind::Campaign, "c1", ChangeOp::Created),
            (3, Kind::Advertiser, "a1", ChangeOp::Archived),
            (4, Kind::Advertiser, "a1", ChangeOp::Updated),
        ]
    );
    let tail = store.changes_since(2, 1).await.expect("changes");
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].version, 3);
    assert!(store.changes_since(4, 10).await.expect("changes").is_empty());
}

pub async fn list_filters_and_paginates(store: Arc<dyn CatalogStore>) {
    for i in 0..7 {
        insert(store.as_ref(), Kind::Campaign, &format!("c{i}"), "a1", "a1").await;
    }
    for i in 0..3 {
        insert(store.as_ref(), Kind::Campaign, &format!("x{i}"), "a2", "a2").await;
    }
    let c3 = store.get(Kind::Campaign, "c3").await.expect("get").expect("present");
    let mut paused = c3.spec.clone();
    paused.set_status(Status::Paused);
    store.update(Kind::Campaign, "c3", 1, paused, at(1)).await.expect("pause");
    let c4 = store.get(Kind::Campaign, "c4").await.expect("get").expect("present");
    let mut archived = c4.spec.clone();
    archived.set_status(Status::Archived);
    store.update(Kind::Campaign, "c4", 1, archived, at(1)).await.expect("archive");

    // Paging through owner a1, three at a time, sees every non-archived campaign exactly once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let q = ListQuery { owner_id: Some("a1".into()), after_id: after.clone(), limit: 3, ..Default::default() };
        let page = store.list(Kind::Campaign, &q).await.expect("list");
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|r| r.meta.id.clone()));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, vec!["c0", "c1", "c2", "c3", "c5", "c6"]);

    let q = |status, parent: Option<&str>| ListQuery {
        status,
        parent_id: parent.map(str::to_string),
        limit: 100,
        ..Default::default()
    };
    let ids = |p: adp_domain::Page<Record>| p.items.into_iter().map(|r| r.meta.id).collect::<Vec<_>>();
    assert_eq!(ids(store.list(Kind::Campaign, &q(Some(Status::Paused), None)).await.expect("list")), vec!["c3"]);
    assert_eq!(ids(store.list(Kind::Campaign, &q(Some(Status::Archived), None)).await.expect("list")), vec!["c4"]);
    assert_eq!(ids(store.list(Kind::Campaign, &q(None, Some("a2"))).await.expect("list")), vec!["x0", "x1", "x2"]);
    assert!(store.list(Kind::LineItem, &q(None, None)).await.expect("list").items.is_empty());
    let exact = store
        .list(Kind::Campaign, &ListQuery { owner_id: Some("a2".into()), limit: 3, ..Default::default() })
        .await
        .expect("list");
    assert_eq!(exact.items.len(), 3);
    assert!(exact.next_after.is_none(), "a page that ends the list exactly has no next cursor");
}

pub async fn snapshot_holds_everything_at_its_version(store: Arc<dyn CatalogStore>) {
    let a = insert(store.as_ref(), Kind::Advertiser, "a1", "a1", "").await;
    insert(store.as_ref(), Kind::Publisher, "p1", "p1", "").await;
    insert(store.as_ref(), Kind::Site, "s1", "p1", "p1").await;
    let mut archived = a.spec;
    archived.set_status(Status::Archived);
    store.update(Kind::Advertiser, "a1", 1, archived, at(3)).await.expect("archive");
    let (version, records) = store.snapshot().await.expect("snapshot");
    assert_eq!(version, 4);
    let keys: BTreeSet<_> = records.iter().map(|r| (r.spec.kind(), r.meta.id.clone())).collect();
    let want: BTreeSet<_> = [(Kind::Advertiser, "a1"), (Kind::Publisher, "p1"), (Kind::Site, "s1")]
        .into_iter()
        .map(|(k, id)| (k, id.to_string()))
        .collect();
    assert_eq!(keys, want, "the snapshot includes archived objects");
}

fn api_key(id: &str, advertiser: Option<&str>, hash: &str) -> ApiKey {
    ApiKey {
        id: id.into(),
        name: format!("key {id}"),
        role: if advertiser.is_some() { Role::Advertiser } else { Role::Admin },
        advertiser_id: advertiser.map(str::to_string),
        prefix: "adp_abcd".into(),
        status: KeyStatus::Active,
        version: 0,
        created_at: at(0),
        updated_at: at(0),
        key_hash: hash.into(),
    }
}

pub async fn api_keys_are_found_by_hash_listed_and_revoked(store: Arc<dyn CatalogStore>) {
    let admin = store.insert_api_key(api_key("k1", None, "h1")).await.expect("insert");
    assert_eq!(admin.version, 1);
    store.insert_api_key(api_key("k2", Some("a1"), "h2")).await.expect("insert");
    store.insert_api_key(api_key("k3", Some("a2"), "h3")).await.expect("insert");
    let dup = store.insert_api_key(api_key("k4", None, "h1")).await;
    assert!(matches!(dup, Err(StoreError::AlreadyExists)), "a hash is unique: {dup:?}");

    let found = store.find_api_key_by_hash("h2").await.expect("find").expect("present");
    assert_eq!((found.id.as_str(), found.role, found.advertiser_id.as_deref()), ("k2", Role::Advertiser, Some("a1")));
    assert_eq!(found.key_hash, "h2");
    assert!(store.find_api_key_by_hash("nope").await.expect("find").is_none());

    let mine = store.list_api_keys(Some("a1"), None, 10).await.expect("list");
    assert_eq!(mine.items.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), vec!["k2"]);
    let first = store.list_api_keys(None, None, 2).await.expect("list");
    assert_eq!(first.items.len(), 2);
    let rest = store.list_api_keys(None, first.next_after.as_deref(), 2).await.expect("list");
    assert_eq!(rest.items.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), vec!["k3"]);

    let mut revoked = found.clone();
    revoked.status = KeyStatus::Revoked;
    revoked.updated_at = at(30);
    let after = store.update_api_key(revoked.clone(), 1).await.expect("revoke");
    assert_eq!((after.status, after.version, after.updated_at), (KeyStatus::Revoked, 2, at(30)));
    let stale = store.update_api_key(revoked, 1).await;
    assert!(matches!(stale, Err(StoreError::VersionConflict { current: 2 })), "got {stale:?}");
    let got = store.get_api_key("k2").await.expect("get").expect("present");
    assert_eq!(got.status, KeyStatus::Revoked);
    assert_eq!(store.catalog_version().await.expect("version"), 0, "keys are not catalog changes");
}

/// Generates one `#[tokio::test]` per conformance check. `$factory` is an async fn returning
/// `(Arc<dyn CatalogStore>, G)`; the store must be fresh and migrated.
#[macro_export]
macro_rules! catalog_store_conformance {
    ($factory:path) => {
        $crate::catalog_store_conformance!(@cases $factory;
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
    };
    (@cases $factory:path; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard) = $factory().await;
                $crate::conformance::$case(store).await;
            }
        )*
    };
}
