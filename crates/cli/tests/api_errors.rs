//! Client mistakes get a 4xx with a machine-readable code and the JSON path at fault; accepted
//! data is never lost by a rejected write.

mod common;

use common::{seed_advertiser, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn line_item(targeting: Value) -> Value {
    json!({"campaign_id": "a1-c1", "name": "t", "start": "2026-02-01T00:00:00Z", "rate_micros": 1_000_000,
           "pacing": "asap", "targeting": targeting})
}

#[tokio::test]
async fn missing_or_bad_keys_get_401() {
    let server = Server::start(&[]);
    let anon = server.client(None);
    let r = anon.get("/api/v1/advertisers").await;
    assert_eq!((r.status, r.error().0.as_str()), (StatusCode::UNAUTHORIZED, "unauthenticated"));
    assert_eq!(r.headers.get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    let r = server.client(Some("adp_not-a-real-key")).get("/api/v1/advertisers").await;
    assert_eq!((r.status, r.error().0.as_str()), (StatusCode::UNAUTHORIZED, "invalid_api_key"));
    let r = server.client(Some("adp_not-a-real-key")).post("/api/v1/advertisers", &json!({"name": "x"})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "auth is checked before the body");
    // Health, readiness, version and the API document need no key.
    for path in ["/healthz", "/readyz", "/api/v1/catalog/version", "/api/v1/openapi.json"] {
        assert_eq!(anon.get(path).await.status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn stale_versions_and_taken_ids_get_409() {
    let server = Server::start(&[]);
    let c = server.admin();
    seed_advertiser(&c, "a1").await;
    let ok = c.patch("/api/v1/campaigns/a1-c1", &json!({"version": 1, "name": "first"})).await;
    assert_eq!(ok.status, StatusCode::OK);
    let stale = c.patch("/api/v1/campaigns/a1-c1", &json!({"version": 1, "name": "second"})).await;
    assert_eq!((stale.status, stale.error()), (StatusCode::CONFLICT, ("version_conflict".into(), "version".into())));
    assert_eq!(c.get("/api/v1/campaigns/a1-c1").await.body["name"], "first", "the stale write changed nothing");
    // If-Match works as well as a body version.
    let r = c.send(Method::PATCH, "/api/v1/campaigns/a1-c1", Some(&json!({"name": "third"}))).await;
    assert_eq!((r.status, r.error().0.as_str()), (StatusCode::PRECONDITION_REQUIRED, "version_required"));
    let dup = c.post("/api/v1/advertisers", &json!({"id": "a1", "name": "again"})).await;
    assert_eq!((dup.status, dup.error()), (StatusCode::CONFLICT, ("already_exists".into(), "id".into())));
    assert_eq!(c.get("/api/v1/advertisers/a1").await.body["name"], "a1 inc", "the first advertiser is intact");
}

#[tokio::test]
async fn malformed_requests_get_400_with_the_field() {
    let server = Server::start(&[]);
    let c = server.admin();
    seed_advertiser(&c, "a1").await;
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        ("advertisers", json!({"name": "x", "colour": "red"}), "unknown_field", "colour"),
        ("advertisers", json!({"domains": ["x.example"]}), "missing_field", "name"),
        ("campaigns", json!({"advertiser_id": "a1", "name": "x", "start": "tomorrow"}), "invalid_value", "start"),
        (
            "campaigns",
            json!({"advertiser_id": "a1", "name": "x", "start": "2026-01-01T00:00:00Z", "budget_micros": "lots"}),
            "invalid_type",
            "budget_micros",
        ),
        (
            "line-items",
            json!({"campaign_id": "a1-c1", "name": "x", "start": "2026-02-01T00:00:00Z", "rate_micros": 1, "pacing": "asap",
                              "frequency_caps": [{"count": 1, "window": "fortnight"}]}),
            "invalid_value",
            "frequency_caps[0].window",
        ),
        (
            "line-items",
            json!({"campaign_id": "a1-c1", "name": "x", "start": "2026-02-01T00:00:00Z", "rate_micros": 1, "pacing": "asap",
                              "budget": {"daily_micros": 5, "time_zone": "Moon/Base"}}),
            "invalid_timezone",
            "budget.time_zone",
        ),
        ("advertisers", json!({"name": "x", "version": 4}), "read_only_field", "version"),
        (
            "line-items",
            json!({"campaign_id": "a1-c1", "advertiser_id": "a1", "name": "x", "start": "2026-02-01T00:00:00Z", "rate_micros": 1}),
            "read_only_field",
            "advertiser_id",
        ),
        ("placements", json!({"site_id": "s", "name": "x", "formats": []}), "empty_set", "formats"),
    ];
    for (segment, body, code, field) in cases {
        let r = c.post(&format!("/api/v1/{segment}"), &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{segment} {body}: {}", r.body);
        assert_eq!(r.error(), (code.to_string(), field.to_string()), "{segment} {body}");
    }
    let r = c.get("/api/v1/campaigns?colour=red").await;
    assert_eq!((r.status, r.error()), (StatusCode::BAD_REQUEST, ("unknown_parameter".into(), "colour".into())));
    let r = c.get("/api/v1/campaigns?limit=0").await;
    assert_eq!(r.error(), ("invalid_value".into(), "limit".into()));
    let r = c.get("/api/v1/campaigns?cursor=!!").await;
    assert_eq!(r.error(), ("invalid_cursor".into(), "cursor".into()));
    let r = c.patch("/api/v1/campaigns/a1-c1", &json!({"version": 1, "id": "other"})).await;
    assert_eq!((r.status, r.error()), (StatusCode::BAD_REQUEST, ("read_only_field".into(), "id".into())));
}

#[tokio::test]
async fn raw_bodies_are_checked_before_parsing() {
    let server = Server::start(&[]);
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/advertisers", server.base);
    let send = |body: Vec<u8>, ct: &'static str| {
        http.post(&url).bearer_auth(common::ADMIN_KEY).header("content-type", ct).body(body).send()
    };
    let r = send(b"{\"name\": ".to_vec(), "application/json").await.expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "malformed_json");
    let r = send(b"name=x".to_vec(), "application/x-www-form-urlencoded").await.expect("send");
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let mut big = b"{\"name\": \"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
    big.extend(b"\"}");
    let r = send(big, "application/json").await.expect("send");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "payload_too_large");
    // The server may close the connection it refused mid-upload: use a fresh connection.
    let r = reqwest::Client::new()
        .post(&url)
        .bearer_auth(common::ADMIN_KEY)
        .header("content-type", "application/json")
        .body("[1, 2]")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let c = server.admin();
    let r = c.get("/api/v1/no-such-thing").await;
    assert_eq!((r.status, r.error().0.as_str()), (StatusCode::NOT_FOUND, "no_route"));
    let r = c.send(Method::DELETE, "/api/v1/advertisers", None).await;
    assert_eq!((r.status, r.error().0.as_str()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    let r = c.get("/api/v1/advertisers/nobody").await;
    assert_eq!((r.status, r.error().0.as_str()), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn semantic_faults_get_422_with_the_field() {
    let server = Server::start(&[]);
    let c = server.admin();
    seed_advertiser(&c, "a1").await;
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "campaigns",
            json!({"advertiser_id": "nobody", "name": "x", "start": "2026-01-01T00:00:00Z"}),
            "reference_not_found",
            "advertiser_id",
        ),
        (
            "campaigns",
            json!({"advertiser_id": "a1", "name": "x", "start": "2026-05-01T00:00:00Z", "end": "2026-04-01T00:00:00Z"}),
            "invalid_flight",
            "end",
        ),
        (
            "line-items",
            json!({"campaign_id": "a1-c1", "name": "x", "start": "2025-01-01T00:00:00Z", "rate_micros": 1, "pacing": "asap"}),
            "outside_campaign_flight",
            "start",
        ),
        (
            "line-items",
            json!({"campaign_id": "a1-c1", "name": "x", "start": "2026-02-01T00:00:00Z", "rate_micros": 1}),
            "invalid_value",
            "pacing",
        ),
        (
            "line-items",
            json!({"campaign_id": "a1-c1", "name": "x", "start": "2026-02-01T00:00:00Z", "rate_micros": -5, "pacing": "asap"}),
            "invalid_value",
            "rate_micros",
        ),
        (
            "creatives",
            json!({"advertiser_id": "a1", "name": "x", "content": {"banner_html": {"html": "<b/>"}}, "sizes": [{"w": 300, "h": 250}],
                             "click_url": "javascript:alert(1)", "landing_domain": "a1.example"}),
            "invalid_value",
            "click_url",
        ),
        (
            "sites",
            json!({"publisher_id": "nobody", "name": "x", "kind": "site", "domain": "x.example"}),
            "reference_not_found",
            "publisher_id",
        ),
    ];
    for (segment, body, code, field) in cases {
        let r = c.post(&format!("/api/v1/{segment}"), &body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{segment} {body}: {}", r.body);
        assert_eq!(r.error(), (code.to_string(), field.to_string()), "{segment} {body}");
    }
    let r = c.patch("/api/v1/line-items/a1-li1", &json!({"version": 1, "campaign_id": "other"})).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNPROCESSABLE_ENTITY, ("immutable_field".into(), "campaign_id".into()))
    );
    assert_eq!(c.get("/api/v1/line-items/a1-li1").await.body["version"], 1, "rejected patches change nothing");
}

#[tokio::test]
async fn invalid_targeting_is_rejected_with_its_json_path() {
    let server = Server::start(&[]);
    let c = server.admin();
    seed_advertiser(&c, "a1").await;
    let cases = [
        (
            json!({"all": [{"country": ["US"]}, {"any": [{"os": ["ios"]}, {"colour": ["red"]}]}]}),
            "unknown_attribute",
            "targeting.all[1].any[1].colour",
        ),
        (json!({"not": {"ip_cidr": ["192.0.2.0/24", "192.0.2.0/40"]}}), "invalid_cidr", "targeting.not.ip_cidr[1]"),
        (json!({"all": [{"segment": []}]}), "empty_set", "targeting.all[0].segment"),
        (json!({"any": []}), "empty_set", "targeting.any"),
        (
            json!({"daypart": {"time_zone": "Europe/Paris", "windows": [{"days": ["mon"], "start_hour": 9, "end_hour": 17},
                                                                    {"days": ["tue"], "start_hour": 20, "end_hour": 6}]}}),
            "contradictory_daypart",
            "targeting.daypart.windows[1].end_hour",
        ),
        (json!({"key_value": {"key": "section"}}), "missing_field", "targeting.key_value.values"),
    ];
    for (targeting, code, field) in cases {
        let r = c.post("/api/v1/line-items", &line_item(targeting.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{targeting}: {}", r.body);
        assert_eq!(r.error(), (code.to_string(), field.to_string()), "create with {targeting}");
        let r = c.patch("/api/v1/line-items/a1-li1", &json!({"version": 1, "targeting": targeting})).await;
        assert_eq!(r.error(), (code.to_string(), field.to_string()), "patch with {targeting}");
    }
    let good = c.post("/api/v1/line-items", &line_item(json!({"ip_cidr": ["2001:db8::/32"]}))).await;
    assert_eq!(good.status, StatusCode::CREATED, "{}", good.body);
}
