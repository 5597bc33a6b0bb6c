//! Tenancy: an advertiser key sees and changes only its own advertiser's objects. Another
//! tenant's objects answer 404 — never 403, never data — and lists never include them.

mod common;

use common::{seed_advertiser, Client, Server};
use reqwest::StatusCode;
use serde_json::json;

async fn advertiser_key(admin: &Client, adv: &str) -> String {
    let r = admin.post("/api/v1/api-keys", &json!({"name": adv, "role": "advertiser", "advertiser_id": adv})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["key"].as_str().expect("key").to_string()
}

/// The other tenant's objects, by URL path.
const THEIRS: &[&str] =
    &["/api/v1/advertisers/a2", "/api/v1/campaigns/a2-c1", "/api/v1/creatives/a2-cr1", "/api/v1/line-items/a2-li1"];

#[tokio::test]
async fn another_tenants_objects_are_invisible_to_every_verb() {
    let server = Server::start(&[]);
    let admin = server.admin();
    seed_advertiser(&admin, "a1").await;
    seed_advertiser(&admin, "a2").await;
    let mine = server.client(Some(&advertiser_key(&admin, "a1").await));

    for path in THEIRS {
        let before = admin.get(path).await.body;

        let get = mine.get(path).await;
        assert_eq!(get.status, StatusCode::NOT_FOUND, "GET {path}");
        assert_eq!(get.error().0, "not_found");
        assert!(get.body.get("name").is_none(), "no data leaks from {path}");

        let patch = mine.patch(path, &json!({"version": 1, "name": "hijacked"})).await;
        assert_eq!(patch.status, StatusCode::NOT_FOUND, "PATCH {path}: {}", patch.body);

        let archive = mine.archive(path).await;
        assert!(
            archive.status == StatusCode::NOT_FOUND
                || (path.contains("/advertisers/") && archive.status == StatusCode::FORBIDDEN),
            "archive {path}: {}",
            archive.status
        );
        assert_eq!(admin.get(path).await.body, before, "{path} is untouched");
    }
    // The same verbs on its own objects work.
    for path in ["/api/v1/campaigns/a1-c1", "/api/v1/creatives/a1-cr1", "/api/v1/line-items/a1-li1"] {
        assert_eq!(mine.get(path).await.status, StatusCode::OK, "GET {path}");
        let r = mine.patch(path, &json!({"version": 1, "name": "mine"})).await;
        assert_eq!(r.status, StatusCode::OK, "PATCH {path}: {}", r.body);
    }
    assert_eq!(mine.get("/api/v1/advertisers/a1").await.status, StatusCode::OK);
    let r = mine.archive("/api/v1/line-items/a1-li1").await;
    assert_eq!(r.status, StatusCode::OK, "an advertiser may archive its own line item");
}

#[tokio::test]
async fn lists_never_include_another_tenants_objects() {
    let server = Server::start(&[]);
    let admin = server.admin();
    seed_advertiser(&admin, "a1").await;
    seed_advertiser(&admin, "a2").await;
    let mine = server.client(Some(&advertiser_key(&admin, "a1").await));
    for segment in ["advertisers", "campaigns", "creatives", "line-items"] {
        let all = admin.list_all(&format!("/api/v1/{segment}")).await;
        assert_eq!(all.len(), 2, "admin sees both tenants' {segment}");
        let seen = mine.list_all(&format!("/api/v1/{segment}")).await;
        assert_eq!(seen.len(), 1, "{segment}: {seen:?}");
        let text = serde_json::to_string(&seen).expect("json");
        assert!(!text.contains("a2"), "{segment} list leaks a2: {text}");
        let filtered = mine.list_all(&format!("/api/v1/{segment}?status=active")).await;
        assert_eq!(filtered.len(), 1);
    }
    assert!(
        mine.list_all("/api/v1/campaigns?advertiser_id=a2").await.is_empty(),
        "filtering by another tenant yields nothing"
    );
    assert!(mine.list_all("/api/v1/line-items?campaign_id=a2-c1").await.is_empty());
}

#[tokio::test]
async fn advertiser_keys_cannot_reach_across_by_reference_or_into_supply() {
    let server = Server::start(&[]);
    let admin = server.admin();
    seed_advertiser(&admin, "a1").await;
    seed_advertiser(&admin, "a2").await;
    let mine = server.client(Some(&advertiser_key(&admin, "a1").await));

    let r = mine
        .post("/api/v1/campaigns", &json!({"advertiser_id": "a2", "name": "x", "start": "2026-01-01T00:00:00Z"}))
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNPROCESSABLE_ENTITY, ("reference_not_found".into(), "advertiser_id".into()))
    );
    let r = mine
        .post(
            "/api/v1/line-items",
            &json!({"campaign_id": "a1-c1", "name": "x", "start": "2026-02-01T00:00:00Z",
        "rate_micros": 1, "pacing": "asap", "creatives": [{"creative_id": "a2-cr1"}]}),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNPROCESSABLE_ENTITY, ("reference_not_found".into(), "creatives[0].creative_id".into()))
    );
    assert_eq!(admin.list_all("/api/v1/campaigns?advertiser_id=a2").await.len(), 1, "nothing was created for a2");

    let r = mine.post("/api/v1/advertisers", &json!({"name": "new"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for segment in ["publishers", "sites", "placements"] {
        assert_eq!(mine.get(&format!("/api/v1/{segment}")).await.status, StatusCode::FORBIDDEN, "{segment}");
    }
    // Approval is the admin's: an advertiser cannot approve, and editing content resets it.
    let r = mine.patch("/api/v1/creatives/a1-cr1", &json!({"version": 1, "approval": "approved"})).await;
    assert_eq!((r.status, r.error()), (StatusCode::UNPROCESSABLE_ENTITY, ("not_permitted".into(), "approval".into())));
    let r = admin.patch("/api/v1/creatives/a1-cr1", &json!({"version": 1, "approval": "approved"})).await;
    assert_eq!(r.body["approval"], "approved");
    let r = mine.patch("/api/v1/creatives/a1-cr1", &json!({"version": 2, "click_url": "https://a1.example/new"})).await;
    assert_eq!((r.status, r.body["approval"].clone()), (StatusCode::OK, json!("pending")), "{}", r.body);
}
