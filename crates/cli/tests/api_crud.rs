//! CRUD over real HTTP for every catalog entity: create, get, update (PATCH), list, archive.

mod common;

use common::Server;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// For each entity: its URL segment, a valid create body, and a patch with the field it changes.
fn entities() -> Vec<(&'static str, Value, Value)> {
    vec![
        (
            "advertisers",
            json!({"id": "adv1", "name": "Shoes Inc", "domains": ["shoes.example"], "categories": ["IAB18"]}),
            json!({"name": "Shoes & Boots Inc"}),
        ),
        (
            "campaigns",
            json!({"id": "cmp1", "advertiser_id": "adv1", "name": "Spring", "start": "2026-03-01T00:00:00Z",
                             "end": "2026-06-01T00:00:00Z", "budget_micros": 9_000_000_000i64}),
            json!({"budget_micros": 12_000_000_000i64}),
        ),
        (
            "creatives",
            json!({"id": "cr1", "advertiser_id": "adv1", "name": "MREC", "content": {"banner_html": {"html": "<b>buy</b>"}},
                             "sizes": [{"w": 300, "h": 250}], "click_url": "https://shoes.example/", "landing_domain": "shoes.example"}),
            json!({"name": "MREC v2"}),
        ),
        (
            "line-items",
            json!({"id": "li1", "campaign_id": "cmp1", "name": "RON", "start": "2026-03-01T00:00:00Z",
                              "end": "2026-05-01T00:00:00Z", "priority": "standard", "pricing": "cpm", "rate_micros": 2_000_000,
                              "budget": {"daily_micros": 50_000_000, "lifetime_micros": 1_000_000_000, "time_zone": "America/New_York"},
                              "frequency_caps": [{"count": 3, "window": "day"}],
                              "targeting": {"all": [{"country": ["US"]}, {"daypart": {"time_zone": "America/New_York",
                                  "windows": [{"days": ["sat", "sun"], "start_hour": 10, "end_hour": 22}]}}]},
                              "creatives": [{"creative_id": "cr1", "weight": 3}], "channels": ["direct", "rtb"], "deal_ids": ["d-1"]}),
            json!({"targeting": {"any": [{"country": ["CA"]}, {"segment": ["s1"]}]}}),
        ),
        (
            "publishers",
            json!({"id": "pub1", "name": "News Corp", "domain": "news.example"}),
            json!({"name": "News Group"}),
        ),
        (
            "sites",
            json!({"id": "site1", "publisher_id": "pub1", "name": "News app", "kind": "app", "bundle": "com.news.app"}),
            json!({"categories": ["IAB12"]}),
        ),
        (
            "placements",
            json!({"id": "plc1", "site_id": "site1", "name": "Feed", "sizes": [{"w": 320, "h": 50}],
                              "formats": ["banner", "native"], "floor_micros": 300_000}),
            json!({"floor_micros": 450_000, "blocked_adomains": ["rival.example"]}),
        ),
    ]
}

#[tokio::test]
async fn every_entity_supports_create_get_patch_list_archive() {
    let server = Server::start(&[]);
    let c = server.admin();
    for (segment, body, patch) in entities() {
        let id = body["id"].as_str().expect("id").to_string();
        let created = c.create(segment, body.clone()).await;
        assert_eq!(created["version"], 1, "{segment}");
        assert_eq!(created["status"], "active", "{segment} defaults to active");
        for (k, v) in body.as_object().expect("object") {
            assert_eq!(&created[k], v, "{segment}.{k} is stored as sent");
        }

        let got = c.get(&format!("/api/v1/{segment}/{id}")).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body, created, "{segment}: GET returns what POST returned");
        assert_eq!(got.headers.get("etag").and_then(|v| v.to_str().ok()), Some("\"1\""));

        let mut p = patch.clone();
        p["version"] = json!(1);
        let patched = c.patch(&format!("/api/v1/{segment}/{id}"), &p).await;
        assert_eq!(patched.status, StatusCode::OK, "{segment}: {}", patched.body);
        assert_eq!(patched.body["version"], 2);
        for (k, v) in patch.as_object().expect("object") {
            assert_eq!(&patched.body[k], v, "{segment}.{k} changed");
        }
        assert_eq!(patched.body["name"], patch.get("name").unwrap_or(&body["name"]).clone(), "untouched fields stay");
        assert!(patched.body["catalog_version"].as_u64() > created["catalog_version"].as_u64());

        let listed = c.list_all(&format!("/api/v1/{segment}")).await;
        assert_eq!(listed.len(), 1, "{segment}");
        assert_eq!(listed[0], patched.body);

        let archived = c.archive(&format!("/api/v1/{segment}/{id}")).await;
        assert_eq!(archived.status, StatusCode::OK, "{segment}: {}", archived.body);
        assert_eq!(archived.body["status"], "archived");
        assert_eq!(archived.body["version"], 3);
        assert!(
            c.list_all(&format!("/api/v1/{segment}")).await.is_empty(),
            "{segment}: archived objects leave the default list"
        );
        let only_archived = c.list_all(&format!("/api/v1/{segment}?status=archived")).await;
        assert_eq!(only_archived.len(), 1);
        let again = c.archive(&format!("/api/v1/{segment}/{id}")).await;
        assert_eq!((again.status, again.body["version"].clone()), (StatusCode::OK, json!(3)), "archive is idempotent");
        let del = c.send(reqwest::Method::DELETE, &format!("/api/v1/{segment}/{id}"), None).await;
        assert_eq!(
            (del.status, del.body["status"].clone(), del.body["version"].clone()),
            (StatusCode::OK, json!("archived"), json!(3)),
            "DELETE archives too"
        );
        // Restore so children can still be created under it.
        let restored = c.patch(&format!("/api/v1/{segment}/{id}"), &json!({"version": 3, "status": "active"})).await;
        assert_eq!(restored.status, StatusCode::OK, "{}", restored.body);
    }
    let li = c.get("/api/v1/line-items/li1").await.body;
    assert_eq!(li["advertiser_id"], "adv1", "a line item shows its advertiser");
    let plc = c.get("/api/v1/placements/plc1").await.body;
    assert_eq!(plc["publisher_id"], "pub1", "a placement shows its publisher");
    let v = c.get("/api/v1/catalog/version").await;
    assert_eq!(v.body["version"], json!(7 * 4), "each write is one catalog version");
}

#[tokio::test]
async fn ids_are_generated_when_absent_and_lists_paginate_and_filter() {
    let server = Server::start(&[]);
    let c = server.admin();
    for a in ["a1", "a2"] {
        common::seed_advertiser(&c, a).await;
    }
    let mut ids = Vec::new();
    for i in 0..7 {
        let body = json!({"advertiser_id": "a1", "name": format!("c{i}"), "start": "2026-01-01T00:00:00Z"});
        let created = c.create("campaigns", body).await;
        let id = created["id"].as_str().expect("id").to_string();
        assert!(id.starts_with("cmp_"), "generated ids say what they name: {id}");
        ids.push(id);
    }
    let page = c.get("/api/v1/campaigns?advertiser_id=a1&limit=3").await;
    assert_eq!(page.body["items"].as_array().map(Vec::len), Some(3));
    assert!(page.body["next_cursor"].is_string());
    let all = c.list_all("/api/v1/campaigns?advertiser_id=a1&limit=3").await;
    assert_eq!(all.len(), 8, "7 new and the seeded one, each once");
    let mut seen: Vec<&str> = all.iter().filter_map(|v| v["id"].as_str()).collect();
    seen.dedup();
    assert_eq!(seen.len(), 8);
    let a2 = c.list_all("/api/v1/campaigns?advertiser_id=a2").await;
    assert_eq!(a2.len(), 1);
    let lis = c.list_all("/api/v1/line-items?campaign_id=a2-c1").await;
    assert_eq!(lis.iter().map(|v| v["id"].clone()).collect::<Vec<_>>(), vec![json!("a2-li1")]);
    let paused = c.patch(&format!("/api/v1/campaigns/{}", ids[0]), &json!({"version": 1, "status": "paused"})).await;
    assert_eq!(paused.status, StatusCode::OK);
    let only_paused = c.list_all("/api/v1/campaigns?status=paused").await;
    assert_eq!(only_paused.len(), 1);
    assert_eq!(only_paused[0]["id"], json!(ids[0]));
}

#[tokio::test]
async fn api_keys_are_created_once_listed_and_revoked() {
    let server = Server::start(&[]);
    let admin = server.admin();
    common::seed_advertiser(&admin, "a1").await;
    let created = admin
        .post("/api/v1/api-keys", &json!({"name": "a1 reporting", "role": "advertiser", "advertiser_id": "a1"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let secret = created.body["key"].as_str().expect("secret shown once").to_string();
    let id = created.body["id"].as_str().expect("id").to_string();
    assert!(created.body.get("key_hash").is_none(), "the hash is never shown");

    let got = admin.get(&format!("/api/v1/api-keys/{id}")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.body.get("key").is_none(), "the secret is not shown again");
    assert_eq!(got.body["role"], "advertiser");
    assert!(secret.starts_with(got.body["prefix"].as_str().expect("prefix")));

    let keys = admin.list_all("/api/v1/api-keys?advertiser_id=a1").await;
    assert_eq!(keys.len(), 1);
    let renamed = admin.patch(&format!("/api/v1/api-keys/{id}"), &json!({"version": 1, "name": "renamed"})).await;
    assert_eq!((renamed.status, renamed.body["name"].clone()), (StatusCode::OK, json!("renamed")));

    let adv = server.client(Some(&secret));
    assert_eq!(adv.get("/api/v1/advertisers/a1").await.status, StatusCode::OK, "the new key works");
    assert_eq!(adv.get("/api/v1/api-keys").await.status, StatusCode::FORBIDDEN, "key management is admin only");
    let revoked = admin.archive(&format!("/api/v1/api-keys/{id}")).await;
    assert_eq!((revoked.status, revoked.body["status"].clone()), (StatusCode::OK, json!("revoked")));
    let after = adv.get("/api/v1/advertisers/a1").await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "a revoked key authenticates nothing");
    assert_eq!(after.error().0, "invalid_api_key");
}

#[tokio::test]
async fn openapi_document_lists_every_route_and_schema() {
    let server = Server::start(&[]);
    let doc = server.client(None).get("/api/v1/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body["openapi"], "3.1.0");
    for (segment, _, _) in entities() {
        for path in [
            format!("/api/v1/{segment}"),
            format!("/api/v1/{segment}/{{id}}"),
            format!("/api/v1/{segment}/{{id}}/archive"),
        ] {
            assert!(doc.body["paths"][&path].is_object(), "missing {path}");
        }
    }
    for path in [
        "/api/v1/api-keys",
        "/api/v1/catalog/version",
        "/healthz",
        "/readyz",
        "/v1/decide",
        "/v1/t/imp",
        "/v1/t/click",
        "/api/v1/reports/delivery",
        "/api/v1/serving/stats",
    ] {
        assert!(doc.body["paths"][path].is_object(), "missing {path}");
    }
    for schema in [
        "Advertiser",
        "Campaign",
        "LineItem",
        "Creative",
        "Publisher",
        "Site",
        "Placement",
        "Expr",
        "ErrorBody",
        "ApiKey",
    ] {
        assert!(doc.body["components"]["schemas"][schema].is_object(), "missing schema {schema}");
    }
}
