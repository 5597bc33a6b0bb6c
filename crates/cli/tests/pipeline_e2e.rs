//! The whole event pipeline as an operator runs it: `serve --demo` with Kafka on (a real Tansu)
//! → `adplatform ingest` → ClickHouse 18.16 (both started by the analytics testkit). Traffic
//! through decide, the trackers, the bidder and its notices, and conversions; then the
//! ClickHouse report equals the embedded report of the same server row for row, by several
//! dimension sets (the "identical answers for identical traffic" of issue 6).

mod common;

use adp_analytics::report::{Dimension, Metric, ReportFilters, ReportQuery};
use adp_analytics::testkit::{ClickHouseServer, TansuBroker};
use adp_analytics::{ClickHouse, ClickHouseSettings};
use chrono::{Duration as ChronoDuration, DurationRound, TimeDelta, Utc};
use common::{Server, ADMIN_KEY};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PREFIX: &str = "adpe2e";
const DATABASE: &str = "adp_e2e";

fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map(|i| rest[i..].to_string()).unwrap_or_default()
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn adplatform(ch: &ClickHouseServer, broker: &TansuBroker, args: &[&str]) -> Command {
    let mut c = Command::new(common::bin());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("ADP_")) {
        c.env_remove(k);
    }
    c.args(args)
        .env("ADP_CLICKHOUSE_URL", ch.url())
        .env("ADP_CLICKHOUSE_DATABASE", DATABASE)
        .env("ADP_CLICKHOUSE_BATCH_MS", "100")
        .env("ADP_KAFKA_BROKERS", broker.brokers())
        .env("ADP_KAFKA_TOPIC_PREFIX", PREFIX)
        .env("ADP_LOG_LEVEL", "warn");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_to_kafka_to_clickhouse_reports_exactly_what_the_embedded_rollup_does() {
    let ch_server = ClickHouseServer::start();
    let broker = TansuBroker::start();
    let out = adplatform(&ch_server, &broker, &["migrate", "--clickhouse"]).output().expect("migrate");
    assert!(out.status.success(), "migrate: {}", String::from_utf8_lossy(&out.stderr));
    let tmp = tempfile::tempdir().expect("tmp");
    let server = Server::spawn(
        &tmp.path().join("data"),
        &["--demo", "--admin-key", ADMIN_KEY],
        &[("ADP_KAFKA_BROKERS", &broker.brokers()), ("ADP_KAFKA_TOPIC_PREFIX", PREFIX)],
    );
    let _ingest =
        Kill(adplatform(&ch_server, &broker, &["ingest"]).stdout(Stdio::null()).spawn().expect("spawn ingest"));
    let admin = server.admin();
    let anon = server.client(None);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");

    // Known traffic: 40 decide requests (two placements, two countries), impressions for every
    // other ad, a click for every fifth, 10 bids with win + billing for half and loss for the
    // rest, and two conversions.
    let mut imps = 0;
    for i in 0..40 {
        let country = if i % 3 == 0 { "DE" } else { "US" };
        let r = anon
            .post(
                "/v1/decide",
                &json!({"placements": [{"id": "demo-mrec"}, {"id": "demo-leaderboard"}], "user": {"id": format!("e2e-{i}")},
                        "geo": {"country": country}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for (j, d) in r.body["decisions"].as_array().into_iter().flatten().enumerate() {
            let ad = &d["ad"];
            if ad.is_null() || (i + j) % 2 == 1 {
                continue;
            }
            let imp = anon.get(&path_of(ad["impression_url"].as_str().expect("imp"))).await;
            assert_eq!(imp.status, StatusCode::NO_CONTENT);
            imps += 1;
            if i % 5 == 0 {
                let click = http
                    .get(format!("{}{}", server.base, path_of(ad["click_url"].as_str().expect("click"))))
                    .send()
                    .await
                    .expect("click");
                assert_eq!(click.status(), StatusCode::FOUND);
            }
        }
    }
    assert!(imps > 10);
    for i in 0..10 {
        let req = json!({"id": format!("e2e-bid-{i}"), "imp": [{"id": "1", "banner": {"format": [{"w": 300, "h": 250}]}, "bidfloor": 0.5}],
                         "site": {"domain": "news.example", "page": "https://news.example/a"}, "user": {"id": format!("e2e-b{i}")}, "tmax": 1000});
        let r = http.post(format!("{}/openrtb2/bid", server.base)).json(&req).send().await.expect("bid");
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.expect("bid json");
        let bid = &body["seatbid"][0]["bid"][0];
        let fill = |k: &str| {
            path_of(
                &bid[k].as_str().expect("notice").replace("${AUCTION_PRICE}", "1.9").replace("${AUCTION_LOSS}", "102"),
            )
        };
        let urls = if i % 2 == 0 { vec![fill("nurl"), fill("burl")] } else { vec![fill("lurl")] };
        for u in urls {
            assert_eq!(anon.get(&u).await.status, StatusCode::NO_CONTENT);
        }
    }
    for (order, user) in [("e2e-o1", "e2e-0"), ("e2e-o2", "e2e-5")] {
        let r = admin
            .post(
                "/v1/conversions",
                &json!({"advertiser_id": "demo-acme", "order_id": order, "user_id": user, "value_micros": 1_000_000}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    }

    // Both backends answer the same queries.
    let now = Utc::now();
    let to = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now) + ChronoDuration::hours(1);
    let from = to - ChronoDuration::hours(3);
    let ch = ClickHouse::connect(&ClickHouseSettings {
        url: ch_server.url(),
        database: DATABASE.into(),
        user: "default".into(),
        password: String::new(),
        ..Default::default()
    })
    .expect("clickhouse client");
    let dimension_sets = [
        vec![Dimension::LineItem],
        vec![Dimension::Hour, Dimension::Placement, Dimension::Country],
        vec![Dimension::Advertiser, Dimension::Creative, Dimension::Deal, Dimension::DeviceType],
        vec![],
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    for dims in dimension_sets {
        let names: Vec<&str> = dims.iter().map(|d| d.name()).collect();
        let q = ReportQuery {
            from,
            to,
            time_zone: chrono_tz::UTC,
            dimensions: dims.clone(),
            metrics: Metric::ALL.to_vec(),
            filters: ReportFilters::default(),
        };
        let path = format!(
            "/api/v1/reports?from={}&to={}&dimensions={}&format=csv",
            from.format("%Y-%m-%dT%H:%M:%SZ"),
            to.format("%Y-%m-%dT%H:%M:%SZ"),
            names.join(",")
        );
        loop {
            let embedded = http
                .get(format!("{}{}", server.base, path))
                .bearer_auth(ADMIN_KEY)
                .send()
                .await
                .expect("report")
                .text()
                .await
                .expect("csv");
            let rows = adp_analytics::query(&ch, &q).await.expect("clickhouse report");
            let mut from_ch = String::new();
            let header: Vec<&str> = names.iter().copied().chain(Metric::ALL.iter().map(|m| m.name())).collect();
            from_ch.push_str(&header.join(","));
            from_ch.push('\n');
            for r in &rows {
                let mut fields = r.labels(chrono_tz::UTC);
                for m in Metric::ALL {
                    fields.push(match r.metric(m) {
                        adp_analytics::MetricValue::Count(n) | adp_analytics::MetricValue::Micros(n) => n.to_string(),
                        adp_analytics::MetricValue::Ratio(x) => x.map_or(String::new(), |x| format!("{x:.6}")),
                    });
                }
                from_ch.push_str(&fields.join(","));
                from_ch.push('\n');
            }
            // Equal, and the traffic has arrived (both sides start empty).
            let arrived = rows.iter().any(|r| r.totals.clicks > 0) && rows.iter().any(|r| r.totals.wins > 0);
            if embedded == from_ch && arrived {
                break;
            }
            assert!(Instant::now() < deadline, "by {names:?}:\nembedded:\n{embedded}\nclickhouse:\n{from_ch}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let stats = admin.get("/api/v1/serving/stats").await.body;
    assert_eq!(stats["kafka"]["dropped"].as_u64(), Some(0), "{stats}");
}
