//! The serving hot path end to end over HTTP: demo catalog → decide → impression → click →
//! delivery report; replayed and tampered tracking URLs change no count; frequency caps hold;
//! a targeting change is served within a second with no failed request.

mod common;

use common::{Client, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn decide(c: &Client, body: Value) -> Value {
    let r = c.post("/v1/decide", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

/// Path and query of an absolute tracking URL.
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map(|i| rest[i..].to_string()).unwrap_or_default()
}

async fn get_raw(base: &str, path: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("send")
}

/// Waits until the delivery report's totals equal `want` (the event log writes asynchronously).
async fn report_totals(admin: &Client, want: (u64, u64, u64)) -> (u64, u64, u64, i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = admin.get("/api/v1/reports/delivery").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let rows = r.body["rows"].as_array().cloned().unwrap_or_default();
        let sum = |k: &str| rows.iter().map(|row| row[k].as_u64().unwrap_or(0)).sum::<u64>();
        let spend = rows.iter().map(|row| row["spend_micros"].as_i64().unwrap_or(0)).sum::<i64>();
        let got = (sum("decisions"), sum("impressions"), sum("clicks"));
        if got == want || Instant::now() > deadline {
            return (got.0, got.1, got.2, spend);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn decide_impression_click_and_the_report_counts_exactly_what_was_done() {
    let server = Server::start(&["--demo"]);
    let admin = server.admin();
    let anon = server.client(None);
    let body = json!({"placements": [{"id": "demo-mrec"}, {"id": "demo-leaderboard"}, {"id": "demo-video"}], "user": {"id": "u1"}});
    let resp = decide(&anon, body.clone()).await;
    let decisions = resp["decisions"].as_array().expect("decisions");
    assert_eq!(decisions.len(), 3);
    let mut advertisers = Vec::new();
    for d in decisions {
        let ad = &d["ad"];
        assert!(ad.is_object(), "a request with no attributes fills every demo placement: {resp}");
        assert!(d["no_fill_reason"].is_null());
        assert!(ad["markup"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(ad["impression_url"].as_str().is_some_and(|u| u.contains("/v1/t/imp?")));
        advertisers.push(ad["advertiser_id"].clone());
    }
    advertisers.sort_by_key(|v| v.to_string());
    advertisers.dedup();
    assert_eq!(advertisers.len(), 3, "no advertiser twice on one page: {resp}");
    assert_eq!(decisions[2]["ad"]["format"], "video");
    assert!(decisions[2]["ad"]["markup"].as_str().is_some_and(|m| m.starts_with("<VAST")));

    // Two more requests: 9 decisions in all.
    let more = [decide(&anon, body.clone()).await, decide(&anon, body.clone()).await];
    let mut imp_urls: Vec<String> =
        decisions.iter().map(|d| d["ad"]["impression_url"].as_str().unwrap_or("").to_string()).collect();
    imp_urls.push(more[0]["decisions"][0]["ad"]["impression_url"].as_str().unwrap_or("").to_string());
    let click_url = decisions[0]["ad"]["click_url"].as_str().expect("click").to_string();

    // Four impressions, each counted once.
    for u in &imp_urls {
        let r = get_raw(&server.base, &path_of(u)).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    let gif = get_raw(&server.base, &format!("{}&f=gif", path_of(&imp_urls[0]))).await;
    assert_eq!(gif.status(), StatusCode::CONFLICT, "a replayed impression is refused");
    let tampered = path_of(&imp_urls[1]).replacen("p=", "p=A", 1);
    assert_eq!(get_raw(&server.base, &tampered).await.status(), StatusCode::BAD_REQUEST, "a tampered URL is refused");
    // One click: redirect to the landing page; a second is a replay.
    let r = get_raw(&server.base, &path_of(&click_url)).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let landing = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(landing.starts_with("https://"), "{landing}");
    assert_eq!(get_raw(&server.base, &path_of(&click_url)).await.status(), StatusCode::CONFLICT);

    let (decisions, impressions, clicks, spend) = report_totals(&admin, (9, 4, 1)).await;
    assert_eq!((decisions, impressions, clicks), (9, 4, 1), "the report counts exactly what was done");
    assert!(spend > 0, "CPM impressions spend budget");
    let stats = admin.get("/api/v1/serving/stats").await.body;
    assert_eq!((stats["impressions"].clone(), stats["clicks"].clone()), (json!(4), json!(1)));
    assert_eq!(stats["tracking_rejected"], json!(3));
    assert_eq!(stats["events"]["rejected_full"], json!(0));
}

#[tokio::test]
async fn frequency_caps_are_never_exceeded() {
    let server = Server::start(&["--demo"]);
    let admin = server.admin();
    // A capped line item that outbids everything for one key-value.
    let start = admin.get("/api/v1/campaigns/demo-acme-spring").await.body["start"].clone();
    let li = admin
        .post(
            "/api/v1/line-items",
            &json!({"id": "capped", "campaign_id": "demo-acme-spring", "name": "capped",
            "start": start, "priority": "sponsorship", "pricing": "cpm", "rate_micros": 50_000_000,
            "pacing": "asap", "frequency_caps": [{"count": 2, "window": "day"}],
            "targeting": {"key_value": {"key": "section", "values": ["capped"]}},
            "creatives": [{"creative_id": "demo-acme-mrec"}]}),
        )
        .await;
    assert_eq!(li.status, StatusCode::CREATED, "{}", li.body);
    let anon = server.client(None);
    let req = |uid: &str| json!({"placements": [{"id": "demo-mrec"}], "user": {"id": uid}, "key_values": {"section": "capped"}});
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut shown = 0;
    let mut total = 0;
    // N + k requests for one user: the capped line item shows at most N = 2 times.
    while total < 7 {
        let r = decide(&anon, req("heavy-user")).await;
        if r["decisions"][0]["ad"]["line_item_id"] == "capped" {
            shown += 1;
        }
        total += 1;
        if shown == 0 && Instant::now() < deadline {
            total = 0; // wait until the new line item is being served
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(shown, 2, "capped at 2 per day");
    let other = decide(&anon, req("another-user")).await;
    assert_eq!(other["decisions"][0]["ad"]["line_item_id"], "capped", "caps are per user");
    let anonymous =
        decide(&anon, json!({"placements": [{"id": "demo-mrec"}], "key_values": {"section": "capped"}})).await;
    assert_ne!(
        anonymous["decisions"][0]["ad"]["line_item_id"], "capped",
        "a capped line item never serves without a user id"
    );
}

#[tokio::test]
async fn a_targeting_change_is_served_within_a_second_without_failed_requests() {
    let server = Server::start(&["--demo"]);
    let admin = server.admin();
    let base = server.base.clone();
    // Background traffic through the swap.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut ok, mut failed) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = http
                    .post(format!("{base}/v1/decide"))
                    .json(&json!({"placements": [{"id": "demo-mrec"}], "user": {"id": "bg"}, "key_values": {"section": "sports"}}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == StatusCode::OK => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let patch = admin
        .patch(
            "/api/v1/line-items/demo-initech-retarget",
            &json!({"version": 1, "priority": "sponsorship", "pricing": "cpm",
            "rate_micros": 90_000_000, "targeting": {"key_value": {"key": "section", "values": ["gardening"]}}}),
        )
        .await;
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.body);
    let changed = Instant::now();
    let anon = server.client(None);
    let served_after = loop {
        let r = decide(
            &anon,
            json!({"placements": [{"id": "demo-mrec"}], "user": {"id": "g"}, "key_values": {"section": "gardening"}}),
        )
        .await;
        if r["decisions"][0]["ad"]["line_item_id"] == "demo-initech-retarget" {
            break changed.elapsed();
        }
        assert!(changed.elapsed() < Duration::from_secs(3), "the change was not served: {r}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = traffic.await.expect("traffic");
    assert!(served_after < Duration::from_secs(1), "served after {served_after:?}");
    assert!(ok > 0);
    assert_eq!(failed, 0, "no request failed during the swap");
}

#[tokio::test]
async fn bad_decide_requests_get_clear_4xx() {
    let server = Server::start(&["--demo"]);
    let anon = server.client(None);
    let cases = [
        (json!({"placements": []}), "invalid_value", "placements"),
        (json!({"placements": [{"id": "demo-mrec", "colour": "red"}]}), "unknown_field", "placements[0].colour"),
        (json!({"placements": [{"id": "demo-mrec"}], "device": {"ip": "999.1.1.1"}}), "invalid_value", "device.ip"),
        (
            json!({"placements": [{"id": "demo-mrec", "floor_micros": -1}]}),
            "invalid_value",
            "placements[0].floor_micros",
        ),
        (json!({"placements": [{"sizes": ["huge"]}]}), "invalid_value", "placements[0].sizes[0]"),
        (json!({"placements": [{"id": "demo-mrec"}], "geo": {"country": "Germany"}}), "invalid_value", "geo.country"),
        (json!({"placements": [{"id": 7}]}), "invalid_type", "placements[0].id"),
    ];
    for (body, code, field) in cases {
        let r = anon.post("/v1/decide", &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.error(), (code.to_string(), field.to_string()), "{body}");
    }
    // A request may raise a known placement's floor, never lower it.
    let high = decide(&anon, json!({"placements": [{"id": "demo-mrec", "floor_micros": 900_000_000}]})).await;
    assert_ne!(
        high["decisions"][0]["ad"]["line_item_id"], "demo-acme-ron",
        "a raised floor keeps cheap line items out: {high}"
    );
    let r = anon.post("/v1/decide", &json!({"placements": [{"id": "demo-mrec", "sizes": ["1x1"]}]})).await;
    assert_eq!(r.error(), ("invalid_value".to_string(), "placements[0].sizes".to_string()));
    let many: Vec<Value> = (0..17).map(|_| json!({"id": "demo-mrec"})).collect();
    assert_eq!(anon.post("/v1/decide", &json!({"placements": many})).await.status, StatusCode::BAD_REQUEST);
    let r = decide(&anon, json!({"placements": [{"id": "nope"}, {"sizes": ["300x250"], "formats": ["banner"]}]})).await;
    assert_eq!(r["decisions"][0]["no_fill_reason"], "unknown_placement");
    assert!(r["decisions"][1]["ad"].is_object(), "placements may be given by size and format: {r}");
    let http = reqwest::Client::new();
    let r = http.post(format!("{}/v1/decide", server.base)).body("{\"placements\": [").send().await.expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let big = format!("{{\"placements\": [{{\"id\": \"{}\"}}]}}", "x".repeat(2 * 1024 * 1024));
    let r = http.post(format!("{}/v1/decide", server.base)).body(big).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = get_raw(&server.base, "/v1/decide?placement=demo-mrec&uid=u9&kv=section:news").await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.expect("json");
    assert!(body["decisions"][0]["ad"].is_object());
    assert_eq!(get_raw(&server.base, "/v1/t/imp?p=abc").await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(get_raw(&server.base, "/v1/t/imp?p=abc&s=def").await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn impressions_of_requests_with_the_same_client_id_are_each_counted() {
    let server = Server::start(&["--demo"]);
    let anon = server.client(None);
    let body = json!({"id": "req-1", "placements": [{"id": "demo-mrec"}], "user": {"id": "u1"}});
    let a = decide(&anon, body.clone()).await;
    let b = decide(&anon, body).await;
    for r in [&a, &b] {
        let url = r["decisions"][0]["ad"]["impression_url"].as_str().expect("imp").to_string();
        assert_eq!(
            get_raw(&server.base, &path_of(&url)).await.status(),
            StatusCode::NO_CONTENT,
            "each decision counts once"
        );
    }
    // A test request decides but its trackers count nothing, whatever its client id says.
    let t = decide(&anon, json!({"id": "req-2", "placements": [{"id": "demo-mrec"}], "test": true})).await;
    let url = t["decisions"][0]["ad"]["impression_url"].as_str().expect("imp").to_string();
    assert_eq!(get_raw(&server.base, &path_of(&url)).await.status(), StatusCode::NO_CONTENT);
    let stats = server.admin().get("/api/v1/serving/stats").await.body;
    assert_eq!(stats["impressions"], json!(2), "{stats}");
}

#[tokio::test]
async fn a_restart_forgets_neither_spend_nor_counted_urls() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut server = Server::start_in(&dir, &["--demo"]);
    let admin = server.admin();
    let start = admin.get("/api/v1/campaigns/demo-acme-spring").await.body["start"].clone();
    // Clears at the 0.50 floor (500 micros per impression); the check reserves one impression
    // at its own rate (10,000): 3 decisions fit 11,000, the 4th does not.
    let li = admin
        .post(
            "/api/v1/line-items",
            &json!({"id": "tiny", "campaign_id": "demo-acme-spring", "name": "tiny", "start": start,
            "priority": "sponsorship", "pricing": "cpm", "rate_micros": 10_000_000, "pacing": "asap",
            "budget": {"daily_micros": 11_000}, "targeting": {"key_value": {"key": "section", "values": ["tiny"]}},
            "creatives": [{"creative_id": "demo-acme-mrec"}]}),
        )
        .await;
    assert_eq!(li.status, StatusCode::CREATED, "{}", li.body);
    let anon = server.client(None);
    let req = json!({"placements": [{"id": "demo-mrec"}], "key_values": {"section": "tiny"}});
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut urls = Vec::new();
    while urls.len() < 3 {
        let r = decide(&anon, req.clone()).await;
        if r["decisions"][0]["ad"]["line_item_id"] == "tiny" {
            urls.push(r["decisions"][0]["ad"]["impression_url"].as_str().expect("imp").to_string());
        } else {
            assert!(urls.is_empty() && Instant::now() < deadline, "tiny stopped early: {r}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for u in &urls {
        assert_eq!(get_raw(&server.base, &path_of(u)).await.status(), StatusCode::NO_CONTENT);
    }
    let r = decide(&anon, req.clone()).await;
    assert_ne!(r["decisions"][0]["ad"]["line_item_id"], "tiny", "the budget is spent: {r}");
    assert!(server.terminate());

    let server = Server::start_in(&dir, &[]);
    let anon = server.client(None);
    let r = decide(&anon, req).await;
    assert_ne!(r["decisions"][0]["ad"]["line_item_id"], "tiny", "spend survives a restart: {r}");
    assert_eq!(
        get_raw(&server.base, &path_of(&urls[0])).await.status(),
        StatusCode::CONFLICT,
        "a counted URL stays counted"
    );
    let report = server.admin().get("/api/v1/reports/delivery").await.body;
    let tiny: Vec<&Value> =
        report["rows"].as_array().expect("rows").iter().filter(|r| r["line_item_id"] == "tiny").collect();
    assert_eq!(tiny.iter().map(|r| r["impressions"].as_u64().unwrap_or(0)).sum::<u64>(), 3, "{report}");
    assert_eq!(tiny.iter().map(|r| r["spend_micros"].as_i64().unwrap_or(0)).sum::<i64>(), 1_500, "{report}");
}

#[tokio::test]
async fn the_user_agent_fills_in_the_device_and_crawlers_get_no_ads() {
    let server = Server::start(&["--demo"]);
    let anon = server.client(None);
    let ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
    let admin = server.admin();
    let start = admin.get("/api/v1/campaigns/demo-acme-spring").await.body["start"].clone();
    let li = admin
        .post(
            "/api/v1/line-items",
            &json!({"id": "iphone-safari", "campaign_id": "demo-acme-spring", "name": "iPhone Safari",
            "start": start, "priority": "sponsorship", "pricing": "cpm", "rate_micros": 5_000_000, "pacing": "asap",
            "targeting": {"all": [{"device_type": ["phone"]}, {"os": ["ios"]}, {"browser": ["safari"]}]},
            "creatives": [{"creative_id": "demo-acme-mrec"}]}),
        )
        .await;
    assert_eq!(li.status, StatusCode::CREATED, "{}", li.body);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let r = decide(&anon, json!({"placements": [{"id": "demo-mrec"}], "device": {"ua": ua}})).await;
        if r["decisions"][0]["ad"]["line_item_id"] == "iphone-safari" {
            break;
        }
        assert!(Instant::now() < deadline, "an iPhone User-Agent should match: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let desktop = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    let r = decide(&anon, json!({"placements": [{"id": "demo-mrec"}], "device": {"ua": desktop}})).await;
    assert_ne!(r["decisions"][0]["ad"]["line_item_id"], "iphone-safari", "{r}");
    // Explicit fields win over the User-Agent.
    let r = decide(&anon, json!({"placements": [{"id": "demo-mrec"}], "device": {"ua": ua, "os": "android"}})).await;
    assert_ne!(r["decisions"][0]["ad"]["line_item_id"], "iphone-safari", "{r}");
    let bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let r = decide(&anon, json!({"placements": [{"id": "demo-mrec"}], "device": {"ua": bot}})).await;
    assert_eq!(r["decisions"][0]["no_fill_reason"], "crawler", "{r}");
}

/// The hot routes read their bodies outside axum (crates/server/src/net.rs): the body limit
/// still holds, declared (Content-Length) or streamed (chunked), with the API's error shape.
#[tokio::test]
async fn oversized_hot_path_bodies_are_refused_with_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A small limit, so the client has sent its whole body before the server answers (an early
    // answer to a large upload may reset the connection under the client's feet).
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = Server::spawn(
        &tmp.path().join("data"),
        &["--admin-key", common::ADMIN_KEY],
        &[("ADP_SERVER_MAX_BODY_BYTES", "4096")],
    );
    let big = vec![b' '; 8 * 1024];
    for path in ["/v1/decide", "/openrtb2/bid"] {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", server.base))
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["error"]["code"], "payload_too_large", "{path}");

        // Chunked: no length is declared, so the limit must stop the read itself.
        let addr = server.base.trim_start_matches("http://").to_string();
        let mut s = tokio::net::TcpStream::connect(&addr).await.expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.expect("write head");
        let chunk = vec![b' '; 1024];
        for _ in 0..8 {
            // The server may answer and close before the whole body is sent.
            if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_err()
                || s.write_all(&chunk).await.is_err()
                || s.write_all(b"\r\n").await.is_err()
            {
                break;
            }
        }
        let _ = s.write_all(b"0\r\n\r\n").await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("payload_too_large"), "{path}: {answer}");
    }
    // The server still serves.
    let c = server.client(None);
    let r = c.post("/v1/decide", &json!({"placements": [{"id": "demo-mrec"}], "user": {"id": "u-after-413"}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Many decide requests at once on one serving thread, answered in batches
/// (`server.batch_requests`, the default) and one by one: each connection gets the answer to its
/// own request (the placement ids it asked for), broken JSON gets its 400, and with batching on
/// some requests shared a batch.
#[tokio::test]
async fn concurrent_decides_on_one_thread_each_get_their_own_answer_batched_or_not() {
    for batch in [true, false] {
        let server = Server::one_thread_demo(batch);
        let http = reqwest::Client::new();
        let admin = server.admin();
        let mut sent = 0u64;
        for round in 0..20 {
            let mut set = tokio::task::JoinSet::new();
            for i in 0..48 {
                let (http, url) = (http.clone(), format!("{}/v1/decide", server.base));
                set.spawn(async move {
                    let own = format!("nope-{round}-{i}");
                    let body = if i % 4 == 3 {
                        format!("{{\"placements\":[{{\"id\":\"{own}\"}}")
                    } else {
                        json!({"placements": [{"id": "demo-mrec"}, {"id": own}], "user": {"id": format!("u{i}")}})
                            .to_string()
                    };
                    let r = http.post(url).body(body).send().await.expect("send");
                    let status = r.status();
                    let v: Value = r.json().await.expect("JSON answer");
                    (i, own, status, v)
                });
            }
            while let Some(done) = set.join_next().await {
                let (i, own, status, v) = done.expect("request task");
                if i % 4 == 3 {
                    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
                    assert_eq!(v["error"]["code"], "malformed_json", "{v}");
                    continue;
                }
                assert_eq!(status, StatusCode::OK, "{v}");
                let d = v["decisions"].as_array().expect("decisions");
                assert_eq!(d.len(), 2, "{v}");
                assert_eq!((&d[0]["placement_id"], &d[1]["placement_id"]), (&json!("demo-mrec"), &json!(own)), "{v}");
                assert_eq!(d[1]["no_fill_reason"], "unknown_placement", "{v}");
            }
            sent += 48;
            let st = admin.get("/api/v1/serving/stats").await.body;
            assert_eq!(st["requests"].as_u64(), Some(sent / 4 * 3), "{st}");
            if common::batched_enough(&st, sent, round, batch) {
                break;
            }
        }
    }
}
