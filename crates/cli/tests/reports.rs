//! `GET /api/v1/reports` over HTTP on the embedded backend: traffic through decide, trackers,
//! the bidder and conversions is reported by any dimension with exact counts, as JSON and CSV,
//! and an advertiser key sees only its own rows.

mod common;

use common::{Client, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map(|i| rest[i..].to_string()).unwrap_or_default()
}

/// Polls a report until `check` accepts it (the event log writes asynchronously).
async fn report_until(c: &Client, query: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.get(&format!("/api/v1/reports?{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        if check(&r.body) || Instant::now() > deadline {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn row<'a>(body: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    body["rows"].as_array()?.iter().find(|r| r[key] == value)
}

#[tokio::test]
async fn reports_count_what_happened_by_any_dimension_as_json_and_csv() {
    let server = Server::start(&["--demo"]);
    let admin = server.admin();
    let anon = server.client(None);
    // Three decide requests for demo-mrec (all filled by Acme), one impression and one click.
    let mut first = Value::Null;
    for i in 0..3 {
        let r = anon
            .post("/v1/decide", &json!({"placements": [{"id": "demo-mrec"}], "user": {"id": format!("rep-{i}")}, "geo": {"country": "DE"}}))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        if i == 0 {
            first = r.body["decisions"][0]["ad"].clone();
        }
    }
    assert_eq!(first["line_item_id"], "demo-acme-ron");
    assert_eq!(anon.get(&path_of(first["impression_url"].as_str().expect("imp"))).await.status, StatusCode::NO_CONTENT);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let click = http
        .get(format!("{}{}", server.base, path_of(first["click_url"].as_str().expect("click"))))
        .send()
        .await
        .expect("click");
    assert_eq!(click.status(), StatusCode::FOUND);
    // A conversion by that user.
    let r = admin
        .post(
            "/v1/conversions",
            &json!({"advertiser_id": "demo-acme", "order_id": "rep-o1", "user_id": "rep-0", "value_micros": 5_000_000}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);

    let q = "dimensions=line_item&metrics=decisions,impressions,clicks,conversions,conversion_value,spend,ctr,ecpm";
    let body = report_until(&admin, q, |b| {
        row(b, "line_item", "demo-acme-ron").is_some_and(|r| r["conversions"] == 1 && r["clicks"] == 1)
    })
    .await;
    let acme = row(&body, "line_item", "demo-acme-ron").expect("acme row");
    assert_eq!(acme["decisions"], 3);
    assert_eq!(acme["impressions"], 1);
    assert_eq!(acme["clicks"], 1);
    assert_eq!(acme["conversion_value"], 5_000_000);
    assert_eq!(acme["ctr"], 1.0);
    let spend = acme["spend"].as_i64().expect("spend");
    assert!(spend > 0, "the impression spent: {acme}");
    assert_eq!(acme["ecpm"].as_f64(), Some((spend * 1000) as f64));
    // Requests and fill rate by placement and country.
    // (Impressions and clicks carry no country: they land in the row with an empty one.)
    let de_mrec = |b: &Value| -> Option<Value> {
        b["rows"].as_array()?.iter().find(|r| r["placement"] == "demo-mrec" && r["country"] == "DE").cloned()
    };
    let body = report_until(&admin, "dimensions=placement,country&metrics=requests,decisions,fill_rate", |b| {
        de_mrec(b).is_some_and(|r| r["requests"] == 3)
    })
    .await;
    let mrec = de_mrec(&body).expect("mrec in DE");
    assert_eq!(
        (mrec["country"].as_str(), mrec["requests"].as_i64(), mrec["fill_rate"].as_f64()),
        (Some("DE"), Some(3), Some(1.0))
    );
    // Days in a time zone, as CSV.
    let r = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/reports?dimensions=day,advertiser&metrics=impressions,clicks&tz=Asia/Tokyo&format=csv",
            server.base
        ))
        .bearer_auth(common::ADMIN_KEY)
        .send()
        .await
        .expect("csv");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap_or("").starts_with("text/csv"));
    let text = r.text().await.expect("body");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("day,advertiser,impressions,clicks"));
    assert!(text.lines().any(|l| l.ends_with(",demo-acme,1,1")), "{text}");
    // Bad input names the parameter.
    let r = admin.get("/api/v1/reports?dimensions=galaxy").await;
    assert_eq!((r.status, r.error().1.as_str()), (StatusCode::BAD_REQUEST, "dimensions"));
}

#[tokio::test]
async fn an_advertiser_key_sees_only_its_own_rows() {
    let server = Server::start(&["--demo"]);
    let admin = server.admin();
    let anon = server.client(None);
    // Acme fills the MREC; Globex the pre-roll.
    let r = anon
        .post("/v1/decide", &json!({"placements": [{"id": "demo-mrec"}, {"id": "demo-video"}], "user": {"id": "t1"}}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let key =
        admin.post("/api/v1/api-keys", &json!({"role": "advertiser", "advertiser_id": "demo-acme", "name": "r"})).await;
    let acme = server.client(key.body["key"].as_str());
    // Both decisions are in the log once both advertisers have a row (the writer may have
    // applied only the first placement's events when the report is first read).
    let all = report_until(&admin, "dimensions=advertiser&metrics=decisions", |b| {
        row(b, "advertiser", "demo-acme").is_some() && row(b, "advertiser", "demo-globex").is_some()
    })
    .await;
    assert!(row(&all, "advertiser", "demo-globex").is_some(), "{all}");
    let mine = report_until(&acme, "dimensions=advertiser&metrics=decisions", |_| true).await;
    let advertisers: Vec<&str> =
        mine["rows"].as_array().into_iter().flatten().filter_map(|r| r["advertiser"].as_str()).collect();
    assert_eq!(advertisers, vec!["demo-acme"]);
    let r = acme.get("/api/v1/reports?advertiser_id=demo-globex").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}
