//! Geo from IP over HTTP: `serve` with `geo.mmdb_path` set to the real database
//! `scripts/services.sh start` fetches (ip-location-db geo-whois-asn-country). A line item
//! targets Germany; decide and OpenRTB requests that carry only an IP address are placed by
//! it, and an explicit country in the request wins over the address. A missing or damaged
//! database stops the start with an error naming the file.

mod common;

use common::{geoip_mmdb, Client, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

/// heise.de (DE), FDN's resolver (FR), and an IPv6 address in Germany, as the database says.
const DE_IP: &str = "193.99.144.80";
const FR_IP: &str = "80.67.169.12";
const DE_IP6: &str = "2a01:238:20a:202:1159::1";

fn start(env: &[(&str, &str)]) -> (Server, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mmdb = geoip_mmdb();
    let mut all = vec![("ADP_GEO_MMDB_PATH", mmdb.as_str())];
    all.extend_from_slice(env);
    let server = Server::spawn(&tmp.path().join("data"), &["--admin-key", common::ADMIN_KEY], &all);
    (server, tmp)
}

/// One advertiser whose only line item targets Germany, for direct and RTB demand.
async fn seed_germany_only(admin: &Client) {
    admin.create("advertisers", json!({"id": "geo-adv", "name": "Geo", "domains": ["geo.example"]})).await;
    admin
        .create(
            "campaigns",
            json!({"id": "geo-c", "advertiser_id": "geo-adv", "name": "c", "start": "2026-01-01T00:00:00Z",
                   "end": "2030-01-01T00:00:00Z"}),
        )
        .await;
    admin
        .create(
            "creatives",
            json!({"id": "geo-cr", "advertiser_id": "geo-adv", "name": "cr", "approval": "approved",
                   "content": {"banner_image": {"image_url": "https://cdn.geo.example/a.png"}},
                   "sizes": [{"w": 300, "h": 250}], "click_url": "https://geo.example/", "landing_domain": "geo.example"}),
        )
        .await;
    admin
        .create(
            "line-items",
            json!({"id": "geo-de", "campaign_id": "geo-c", "name": "Germany only", "start": "2026-02-01T00:00:00Z",
                   "rate_micros": 2_000_000, "pacing": "asap", "targeting": {"country": ["DE"]},
                   "creatives": [{"creative_id": "geo-cr"}], "channels": ["direct", "rtb"]}),
        )
        .await;
}

fn decide_body(device: Value, geo: Option<Value>) -> Value {
    let mut body = json!({"placements": [{"sizes": ["300x250"], "formats": ["banner"]}], "device": device});
    if let Some(g) = geo {
        body["geo"] = g;
    }
    body
}

async fn decide(c: &Client, body: &Value) -> Value {
    let r = c.post("/v1/decide", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["decisions"][0].clone()
}

/// Decides until the line item is in the serving snapshot (catalog changes arrive within ms).
async fn wait_for_fill(c: &Client, body: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let d = decide(c, body).await;
        if d["ad"]["line_item_id"] == "geo-de" {
            return d;
        }
        assert!(Instant::now() < deadline, "a German IP never filled the Germany line item: {d}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn decide_places_a_request_by_device_ip_and_an_explicit_country_wins() {
    let (server, _tmp) = start(&[]);
    seed_germany_only(&server.admin()).await;
    let anon = server.client(None);

    // Only device.ip, in Germany: filled by the Germany line item.
    wait_for_fill(&anon, &decide_body(json!({"ip": DE_IP}), None)).await;
    let d = decide(&anon, &decide_body(json!({"ip": DE_IP6}), None)).await;
    assert_eq!(d["ad"]["line_item_id"], "geo-de", "an IPv6 address in Germany: {d}");

    // An address in France: no fill, for targeting.
    let d = decide(&anon, &decide_body(json!({"ip": FR_IP}), None)).await;
    assert!(d["ad"].is_null(), "{d}");
    assert_eq!(d["no_fill_reason"], "no_matching_line_item", "{d}");

    // A private address is placed nowhere.
    let d = decide(&anon, &decide_body(json!({"ip": "10.0.0.1"}), None)).await;
    assert_eq!(d["no_fill_reason"], "no_matching_line_item", "{d}");

    // The request's own geo.country beats the address, both ways.
    let d = decide(&anon, &decide_body(json!({"ip": FR_IP}), Some(json!({"country": "de"})))).await;
    assert_eq!(d["ad"]["line_item_id"], "geo-de", "explicit DE with a French IP: {d}");
    let d = decide(&anon, &decide_body(json!({"ip": DE_IP}), Some(json!({"country": "FR"})))).await;
    assert_eq!(d["no_fill_reason"], "no_matching_line_item", "explicit FR with a German IP: {d}");

    // A bad address is still a 400 naming the field, geo or not.
    let r = anon.post("/v1/decide", &decide_body(json!({"ip": "999.1.1.1"}), None)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.error(), ("invalid_value".to_string(), "device.ip".to_string()));

    // Without a database (another server, same catalog idea) the IP alone places nothing.
    let tmp = tempfile::tempdir().expect("tempdir");
    let plain = Server::spawn(&tmp.path().join("data"), &["--admin-key", common::ADMIN_KEY], &[]);
    seed_germany_only(&plain.admin()).await;
    let c = plain.client(None);
    wait_for_fill(&c, &decide_body(json!({}), Some(json!({"country": "DE"})))).await;
    let d = decide(&c, &decide_body(json!({"ip": DE_IP}), None)).await;
    assert_eq!(d["no_fill_reason"], "no_matching_line_item", "no geo database configured: {d}");
}

fn bid_request(id: &str, device: Value, user: Option<Value>) -> Value {
    let mut req = json!({"id": id, "imp": [{"id": "1", "banner": {"format": [{"w": 300, "h": 250}]}}],
        "site": {"domain": "news.example", "page": "https://news.example/a"}, "device": device, "tmax": 500});
    if let Some(u) = user {
        req["user"] = u;
    }
    req
}

async fn bid(http: &reqwest::Client, base: &str, req: &Value) -> (StatusCode, Option<Value>) {
    let r = http.post(format!("{base}/openrtb2/bid")).json(req).send().await.expect("send");
    let status = r.status();
    let text = r.bytes().await.expect("body");
    (status, (!text.is_empty()).then(|| serde_json::from_slice(&text).expect("JSON")))
}

fn bid_line_item(body: &Option<Value>) -> Option<String> {
    let bid = &body.as_ref()?["seatbid"][0]["bid"][0];
    bid["crid"].as_str().map(str::to_string)
}

#[tokio::test]
async fn openrtb_bids_by_device_ip_and_device_or_user_geo_wins() {
    let (server, _tmp) = start(&[]);
    seed_germany_only(&server.admin()).await;
    let http = reqwest::Client::new();
    let base = server.base.clone();

    // device.ip in Germany, no device.geo: a bid (once the line item is in the snapshot).
    let deadline = Instant::now() + Duration::from_secs(5);
    let germany = bid_request("g1", json!({"ip": DE_IP}), None);
    loop {
        let (status, body) = bid(&http, &base, &germany).await;
        if status == StatusCode::OK {
            assert_eq!(bid_line_item(&body).as_deref(), Some("geo-cr"), "{body:?}");
            break;
        }
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert!(Instant::now() < deadline, "a German device.ip never got a bid");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // device.ipv6 alone.
    let (status, body) = bid(&http, &base, &bid_request("g2", json!({"ipv6": DE_IP6}), None)).await;
    assert_eq!(status, StatusCode::OK, "a German device.ipv6: {body:?}");

    // In France: no bid.
    let (status, body) = bid(&http, &base, &bid_request("f1", json!({"ip": FR_IP}), None)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body:?}");

    // device.geo.country (alpha-3, as OpenRTB writes it) beats the address, both ways.
    let (status, body) =
        bid(&http, &base, &bid_request("f2", json!({"ip": FR_IP, "geo": {"country": "DEU"}}), None)).await;
    assert_eq!(status, StatusCode::OK, "explicit DEU with a French IP: {body:?}");
    let (status, body) =
        bid(&http, &base, &bid_request("g3", json!({"ip": DE_IP, "geo": {"country": "FRA"}}), None)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "explicit FRA with a German IP: {body:?}");
    // So does user.geo.country when the device has no geo.
    let (status, body) =
        bid(&http, &base, &bid_request("f3", json!({"ip": FR_IP}), Some(json!({"geo": {"country": "DEU"}})))).await;
    assert_eq!(status, StatusCode::OK, "user.geo DEU with a French IP: {body:?}");
}

#[tokio::test]
async fn decide_without_an_ip_uses_the_first_forwarded_for_address_when_trusted() {
    let (server, _tmp) = start(&[("ADP_GEO_USE_CLIENT_ADDR", "true"), ("ADP_GEO_TRUST_FORWARDED_FOR", "true")]);
    seed_germany_only(&server.admin()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/decide", server.base);
    let body = decide_body(json!({}), None);
    let post = |xff: Option<&'static str>| {
        let mut r = http.post(&url).json(&body);
        if let Some(v) = xff {
            r = r.header("x-forwarded-for", v);
        }
        async move {
            let resp = r.send().await.expect("send");
            assert_eq!(resp.status(), StatusCode::OK);
            let v: Value = resp.json().await.expect("json");
            v["decisions"][0].clone()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let d = post(Some("193.99.144.80, 10.1.2.3")).await;
        if d["ad"]["line_item_id"] == "geo-de" {
            break;
        }
        assert!(Instant::now() < deadline, "X-Forwarded-For in Germany never filled: {d}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(post(Some("80.67.169.12")).await["no_fill_reason"], "no_matching_line_item");
    // No header: the peer is the proxy (here loopback) and is not looked up; garbage is ignored.
    assert_eq!(post(None).await["no_fill_reason"], "no_matching_line_item");
    assert_eq!(post(Some("not-an-address")).await["no_fill_reason"], "no_matching_line_item");
    // The body's device.ip comes first.
    let r = http
        .post(&url)
        .header("x-forwarded-for", "193.99.144.80")
        .json(&decide_body(json!({"ip": FR_IP}), None))
        .send()
        .await
        .expect("send");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["decisions"][0]["no_fill_reason"], "no_matching_line_item", "{v}");
}

/// Runs `adplatform ARGS` with `env` to completion (it is expected to fail fast).
fn run_failing(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(common::bin());
    for (k, _) in std::env::vars_os().filter(|(k, _)| k.to_string_lossy().starts_with("ADP_")) {
        cmd.env_remove(k);
    }
    let out = cmd.args(args).envs(env.iter().copied()).output().expect("run adplatform");
    assert!(!out.status.success(), "adplatform {args:?} should fail; stdout: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_missing_or_damaged_database_stops_the_start_naming_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let data = data.to_str().expect("utf-8");
    let serve = ["serve", "--listen", "127.0.0.1:0", "--data-dir", data];

    let missing = tmp.path().join("GeoLite2-City.mmdb");
    let missing = missing.to_str().expect("utf-8");
    let err = run_failing(&serve, &[("ADP_GEO_MMDB_PATH", missing)]);
    assert!(err.contains("geo.mmdb_path") && err.contains(missing), "{err}");
    let err = run_failing(&["check-config"], &[("ADP_GEO_MMDB_PATH", missing)]);
    assert!(err.contains("geo.mmdb_path") && err.contains(missing), "{err}");

    // Half of the real file: its metadata (at the end) is gone.
    let bytes = std::fs::read(geoip_mmdb()).expect("read the geo database");
    let damaged = tmp.path().join("damaged.mmdb");
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).expect("write");
    let damaged = damaged.to_str().expect("utf-8");
    for args in [&serve[..], &["check-config"][..]] {
        let err = run_failing(args, &[("ADP_GEO_MMDB_PATH", damaged)]);
        assert!(err.contains(damaged) && err.contains("not a usable MaxMind DB file"), "{args:?}: {err}");
    }
}
