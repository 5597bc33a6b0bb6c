//! `adplatform loadtest` with the OpenRTB target end to end: bench/scenarios/rtb-mixed.toml
//! against a spawned `adplatform serve --demo` for three seconds, the report's counts (bid
//! requests, bids, win, billing and loss notices) equal to the server's own counters; and the
//! `--plot` file is written as SVG.

mod common;

use common::{bin, Server};
use reqwest::StatusCode;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rtb_mixed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/scenarios/rtb-mixed.toml")
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("run loadtest")
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "loadtest failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test]
async fn rtb_mixed_counts_match_the_servers_counters() {
    let server = Server::start(&["--demo"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let (json, md, plot) = (tmp.path().join("r.json"), tmp.path().join("r.md"), tmp.path().join("p.svg"));
    let scenario = rtb_mixed();
    let out = run(&[
        "loadtest",
        "--target",
        &server.base,
        "--scenario",
        path(&scenario),
        "--connections",
        "4",
        "--warmup",
        "1s",
        "--duration",
        "2s",
        "--seed",
        "42",
        "--report-json",
        path(&json),
        "--report-md",
        path(&md),
        "--plot",
        path(&plot),
    ]);
    ok(&out);
    // Not a terminal: no progress bar, nothing on stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("req/s"), "a progress bar without a terminal: {stderr}");

    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json report")).expect("JSON");
    let r = server.admin().get("/api/v1/serving/stats").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let stats = r.body;
    let total = &report["total"];
    let why = format!("report {report}\nstats {stats}");
    assert_eq!(report["kind"], "openrtb");

    // Every bid request reached the bidder once and was answered: a bid (200) or none (204).
    assert!(n(&total["requests"]) > 100, "too few requests to mean anything: {why}");
    assert_eq!(n(&total["requests"]), n(&stats["bid_requests"]), "{why}");
    assert!(total["errors"].as_object().is_some_and(|e| e.is_empty()), "{why}");
    assert_eq!(n(&total["statuses"]["200"]) + n(&total["statuses"]["204"]), n(&total["requests"]), "{why}");
    assert_eq!(n(&total["statuses"]["204"]), n(&total["no_bids"]), "{why}");
    assert_eq!(n(&total["bid_responses"]) + n(&total["no_bids"]), n(&total["requests"]), "{why}");
    assert_eq!(n(&total["bids"]), n(&stats["bids"]), "{why}");
    // A bid past tmax (a busy debug build) is a 204 like any other no-bid, counted on both sides.
    let bid_rate = report["bid_rate"].as_f64().expect("bid rate");
    assert!(bid_rate > 0.5 && bid_rate <= 1.0, "the demo bids on most of rtb-mixed: {why}");

    // Every notice sent was counted once, as the server counted it.
    for (kind, counter) in [("win_notices", "wins"), ("billing_notices", "billed"), ("loss_notices", "losses")] {
        let c = &total[kind];
        assert!(n(&c["sent"]) > 0, "no {kind}: {why}");
        assert_eq!(n(&c["statuses"]["204"]), n(&c["sent"]), "{kind}: {why}");
        assert_eq!(n(&c["statuses"]["204"]), n(&stats[counter]), "{kind} vs {counter}: {why}");
    }
    // A third of the bids win (rate 0.35), most losses are notified (0.8).
    let share = n(&total["win_notices"]["sent"]) as f64 / n(&total["bids"]) as f64;
    assert!((0.25..0.45).contains(&share), "win share {share}");
    assert!(n(&total["billing_notices"]["sent"]) <= n(&total["win_notices"]["sent"]));
    assert_eq!(n(&stats["tracking_rejected"]), 0, "{why}");

    let markdown = std::fs::read_to_string(&md).expect("markdown report");
    for want in ["| bid rate |", "| no bids |", "| win notice |", "| billing notice |", "| loss notice |"] {
        assert!(markdown.contains(want), "no `{want}` in\n{markdown}");
    }
    let svg = std::fs::read_to_string(&plot).expect("plot written");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "not an SVG document");
    assert!(svg.contains("rtb-mixed"), "the plot names its scenario");
}

/// A minimal decide scenario against the demo: the plot of a short run.
const DECIDE: &str = r#"
name = "plot-check"
[users]
count = 100
zipf_exponent = 1.0
[[pages]]
url = "https://demo-news.example/a"
placements = ["demo-mrec"]
"#;

#[test]
fn the_plot_is_written_as_svg_and_a_bad_name_is_refused_before_the_run() {
    let server = Server::start(&["--demo"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = tmp.path().join("s.toml");
    std::fs::write(&scenario, DECIDE).expect("scenario");
    let plot = tmp.path().join("plot.svg");
    let out = run(&[
        "loadtest",
        "--target",
        &server.base,
        "--scenario",
        path(&scenario),
        "--warmup",
        "0s",
        "--duration",
        "1s",
        "--connections",
        "2",
        "--no-progress",
        "--plot",
        path(&plot),
    ]);
    ok(&out);
    let svg = std::fs::read_to_string(&plot).expect("plot written");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "not an SVG document");
    assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    // Three panels, their titles as SVG text, and lines on them.
    for want in ["throughput", "latency per second", "latency distribution", "plot-check"] {
        assert!(svg.contains(want), "no `{want}` in the plot");
    }
    assert!(svg.matches("<polyline").count() >= 4, "lines on every panel");
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count(), "every text closed");

    let out = run(&[
        "loadtest",
        "--target",
        &server.base,
        "--scenario",
        path(&scenario),
        "--duration",
        "30s",
        "--plot",
        path(&tmp.path().join("plot.pdf")),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(".svg or .png"), "{}", String::from_utf8_lossy(&out.stderr));
}
