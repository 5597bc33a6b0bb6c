//! `GET /metrics`: the serving counters in the OpenMetrics text format, moving with traffic.

mod common;

use common::Server;
use reqwest::StatusCode;
use serde_json::json;

fn value(text: &str, series: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
}

#[tokio::test]
async fn metrics_count_requests_decisions_and_bids() {
    let server = Server::start(&["--demo"]);
    let anon = server.client(None);
    for i in 0..3 {
        let r = anon
            .post(
                "/v1/decide",
                &json!({"placements": [{"id": "demo-mrec"}, {"id": "nope"}], "user": {"id": format!("m{i}")}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let bid =
        json!({"id": "m-bid", "imp": [{"id": "1", "banner": {"w": 300, "h": 250}}], "site": {"domain": "x.example"}});
    assert_eq!(anon.post("/openrtb2/bid", &bid).await.status, StatusCode::OK);
    let r = reqwest::get(format!("{}/metrics", server.base)).await.expect("scrape");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap_or("").starts_with("application/openmetrics-text"));
    let text = r.text().await.expect("body");
    assert_eq!(value(&text, "adp_decide_requests_total "), Some(3), "{text}");
    assert_eq!(value(&text, "adp_decisions_total{result=\"fill\"} "), Some(3), "{text}");
    assert_eq!(value(&text, "adp_decisions_total{result=\"no_fill\"} "), Some(3), "{text}");
    assert_eq!(value(&text, "adp_bid_requests_total "), Some(1), "{text}");
    assert_eq!(value(&text, "adp_bids_total "), Some(1), "{text}");
    // The three decide requests and the bid went through the serving thread's batches
    // (server.batch_requests, on by default), one batch each: the client waits for each answer.
    assert_eq!(value(&text, "adp_serving_batches_total "), Some(4), "{text}");
    assert!(value(&text, "adp_catalog_version ").is_some_and(|v| v > 0), "{text}");
    // HTTP requests by route and status, latency by route (the names the chart's alerts use).
    assert_eq!(value(&text, "adp_http_requests_total{route=\"decide\",status=\"200\"} "), Some(3), "{text}");
    assert_eq!(value(&text, "adp_http_requests_total{route=\"bid\",status=\"200\"} "), Some(1), "{text}");
    assert_eq!(value(&text, "adp_http_request_duration_seconds_count{route=\"decide\"} "), Some(3), "{text}");
    assert_eq!(
        value(&text, "adp_http_request_duration_seconds_bucket{le=\"+Inf\",route=\"decide\"} ")
            .or_else(|| value(&text, "adp_http_request_duration_seconds_bucket{route=\"decide\",le=\"+Inf\"} ")),
        Some(3),
        "{text}"
    );
    // A client error is counted under its status.
    assert_eq!(anon.post("/v1/decide", &json!({"placements": "x"})).await.status, StatusCode::BAD_REQUEST);
    let text = reqwest::get(format!("{}/metrics", server.base)).await.expect("scrape").text().await.expect("body");
    assert_eq!(value(&text, "adp_http_requests_total{route=\"decide\",status=\"400\"} "), Some(1), "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "OpenMetrics ends with # EOF");
}
