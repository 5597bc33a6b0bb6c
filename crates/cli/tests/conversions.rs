//! Conversions over HTTP: a click's landing URL carries the click id; the advertiser's pixel
//! (or its server) reports the order; the conversion is credited to that click (or the user's
//! last click), each order counts once, tenancy holds, and attribution survives a restart.

mod common;

use common::{Client, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map(|i| rest[i..].to_string()).unwrap_or_default()
}

/// Decides for `user` on demo-mrec (Acme's run-of-network serves it) and clicks the ad.
/// Returns (line item id, click id from the landing URL).
async fn click(server: &Server, user: &str) -> (String, String) {
    let r = server
        .client(None)
        .post("/v1/decide", &json!({"placements": [{"id": "demo-mrec"}], "user": {"id": user}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ad = &r.body["decisions"][0]["ad"];
    let li = ad["line_item_id"].as_str().expect("filled").to_string();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let resp = http
        .get(format!("{}{}", server.base, path_of(ad["click_url"].as_str().expect("click url"))))
        .send()
        .await
        .expect("click");
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()["location"].to_str().expect("location").to_string();
    let click_id = location.split("adp_click=").nth(1).expect("the landing URL carries the click id").to_string();
    assert!(location.starts_with("https://"), "{location}");
    (li, click_id)
}

async fn conversions_of(admin: &Client, line_item: &str, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = admin.get("/api/v1/reports/delivery").await;
        let got = r.body["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|row| row["line_item_id"] == line_item)
            .map(|row| row["conversions"].as_u64().unwrap_or(0))
            .sum::<u64>();
        if got == want || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn pixel_and_server_conversions_are_credited_to_clicks_once_per_order() {
    let server = Server::start(&["--demo"]);
    let admin = server.admin();
    let anon = server.client(None);
    let (li, click_id) = click(&server, "buyer-1").await;
    let adv = "demo-acme";
    // The pixel with the click id: credited to that click.
    let pixel = format!("/v1/t/conv?adv={adv}&order=o-1&value=49.90&cur=USD&click={click_id}");
    assert_eq!(anon.get(&pixel).await.status, StatusCode::NO_CONTENT);
    // The same order again: refused, not counted twice.
    let again = anon.get(&pixel).await;
    assert_eq!((again.status, again.error().0.as_str()), (StatusCode::CONFLICT, "duplicate_order"));
    assert_eq!(conversions_of(&admin, &li, 1).await, 1);
    // Server to server, by user id (the user's last click on Acme), with the advertiser's key.
    let key = admin.post("/api/v1/api-keys", &json!({"role": "advertiser", "advertiser_id": adv, "name": "s2s"})).await;
    assert_eq!(key.status, StatusCode::CREATED, "{}", key.body);
    let acme = server.client(key.body["key"].as_str());
    let r = acme
        .post(
            "/v1/conversions",
            &json!({"advertiser_id": adv, "order_id": "o-2", "user_id": "buyer-1", "value_micros": 12_000_000}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!((r.body["attributed"].as_bool(), r.body["credit"].as_str()), (Some(true), Some("click")));
    assert_eq!(r.body["line_item_id"], Value::from(li.clone()));
    assert_eq!(conversions_of(&admin, &li, 2).await, 2);
    // A user who never clicked: recorded, credited to nobody, no line item's count moves.
    let r =
        acme.post("/v1/conversions", &json!({"advertiser_id": adv, "order_id": "o-3", "user_id": "stranger"})).await;
    assert_eq!((r.status, r.body["attributed"].as_bool()), (StatusCode::ACCEPTED, Some(false)));
    // Another advertiser's key cannot report Acme's conversions; bad input names the field.
    let r = acme.post("/v1/conversions", &json!({"advertiser_id": "demo-globex", "order_id": "x"})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = acme.post("/v1/conversions", &json!({"advertiser_id": adv, "order_id": "", "user_id": "u"})).await;
    assert_eq!((r.status, r.error().1.as_str()), (StatusCode::BAD_REQUEST, "order_id"));
    let r = anon.get(&format!("/v1/t/conv?adv={adv}&order=o-9&value=abc")).await;
    assert_eq!((r.status, r.error().1.as_str()), (StatusCode::BAD_REQUEST, "value"));
    assert_eq!(server.client(None).post("/v1/conversions", &json!({})).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(conversions_of(&admin, &li, 2).await, 2);
    let stats = admin.get("/api/v1/serving/stats").await.body;
    assert_eq!(stats["conversions"].as_u64(), Some(3));
}

#[tokio::test]
async fn attribution_survives_a_restart() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let mut server = Server::start_in(&dir, &["--demo"]);
    let (li, click_id) = click(&server, "buyer-2").await;
    let r = server.client(None).get(&format!("/v1/t/conv?adv=demo-acme&order=before&click={click_id}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // Let the event log write the click, then stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.terminate(), "clean shutdown");
    let server = Server::start_in(&dir, &[]);
    let r = server.client(None).get(&format!("/v1/t/conv?adv=demo-acme&order=after-restart&click={click_id}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // An order counted before the restart still counts once.
    let first = server.client(None).get(&format!("/v1/t/conv?adv=demo-acme&order=before&click={click_id}")).await;
    assert_eq!(first.status, StatusCode::CONFLICT);
    let admin = server.admin();
    let r = admin
        .post("/v1/conversions", &json!({"advertiser_id": "demo-acme", "order_id": "by-user", "user_id": "buyer-2"}))
        .await;
    assert_eq!((r.status, r.body["attributed"].as_bool()), (StatusCode::ACCEPTED, Some(true)), "{}", r.body);
    assert_eq!(conversions_of(&admin, &li, 3).await, 3);
}
