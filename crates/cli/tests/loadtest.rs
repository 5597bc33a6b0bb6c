//! `adplatform loadtest` end to end against a spawned `adplatform serve --demo`: the report's
//! counts agree with the server's own counters (requests received, impressions and clicks
//! counted), warm-up is sent but not measured, open loop holds its rate, a request count is
//! exact, and a bad scenario is refused naming the key.

mod common;

use common::{bin, Server};
use reqwest::StatusCode;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// A demo scenario that follows every ad and clicks half of them, with short delays.
const SCENARIO: &str = r#"
name = "test-demo"
[users]
count = 5000
zipf_exponent = 1.0
[geo.countries]
US = 2
DE = 1
[device.types]
phone = 1
desktop = 1
[[pages]]
url = "https://demo-news.example/technology/a"
placements = ["demo-leaderboard", "demo-mrec"]
[[pages]]
url = "https://demo-news.example/video/b"
placements = ["demo-leaderboard", "demo-mrec", "demo-video"]
[[key_values]]
key = "section"
values = ["technology", "sport"]
[callbacks]
impression_rate = 1.0
click_rate = 0.5
impression_delay_ms = { min = 0, max = 20 }
click_delay_ms = { min = 0, max = 50 }
"#;

fn write_scenario(dir: &Path, text: &str) -> String {
    let path = dir.join("scenario.toml");
    std::fs::write(&path, text).expect("write scenario");
    path.to_str().expect("utf-8").to_string()
}

/// Runs the binary's loadtest and returns its JSON report.
fn loadtest(base: &str, scenario: &str, dir: &Path, extra: &[&str]) -> Value {
    let report = dir.join("report.json");
    let md = dir.join("report.md");
    let mut args = vec![
        "loadtest",
        "--target",
        base,
        "--scenario",
        scenario,
        "--report-json",
        report.to_str().expect("utf-8"),
        "--report-md",
        md.to_str().expect("utf-8"),
        "--seed",
        "42",
    ];
    args.extend_from_slice(extra);
    let out = Command::new(bin()).args(&args).output().expect("run loadtest");
    assert!(
        out.status.success(),
        "loadtest failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let markdown = std::fs::read_to_string(&md).expect("markdown report");
    assert!(markdown.contains("| p50 | p90 | p99 | p99.9 | max | mean |"), "{markdown}");
    serde_json::from_str(&std::fs::read_to_string(&report).expect("json report")).expect("report is JSON")
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

async fn server_stats(server: &Server) -> Value {
    let r = server.admin().get("/api/v1/serving/stats").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

#[tokio::test]
async fn closed_loop_counts_match_the_servers_counters() {
    let server = Server::start(&["--demo"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = write_scenario(tmp.path(), SCENARIO);
    let before = server_stats(&server).await;
    assert_eq!(n(&before["requests"]), 0);

    let report = loadtest(
        &server.base,
        &scenario,
        tmp.path(),
        &["--mode", "closed", "--connections", "4", "--threads", "2", "--warmup", "1s", "--duration", "2s"],
    );
    let stats = server_stats(&server).await;
    let (total, measured) = (&report["total"], &report["measured"]);

    // Every request the load generator sent, warm-up included, reached the server once.
    assert!(n(&total["requests"]) > 100, "too few requests to mean anything: {report}");
    assert_eq!(n(&total["requests"]), n(&stats["requests"]), "report {report}\nstats {stats}");
    assert!(total["errors"].as_object().is_some_and(|e| e.is_empty()), "errors: {report}");
    assert_eq!(n(&total["statuses"]["200"]), n(&total["requests"]));
    // The warm-up was sent but is not in the measured window.
    assert!(n(&measured["requests"]) > 0 && n(&measured["requests"]) < n(&total["requests"]), "{report}");
    assert_eq!(n(&report["latency"]["count"]), n(&measured["requests"]));
    assert!(n(&report["latency"]["p50_us"]) > 0);
    assert!(n(&report["latency"]["p50_us"]) <= n(&report["latency"]["p99_us"]));
    assert!(n(&report["latency"]["p99_us"]) <= n(&report["latency"]["max_us"]));

    // Fill as the server counted it.
    assert_eq!(n(&total["placements_filled"]), n(&stats["filled"]));
    assert_eq!(n(&total["placements_requested"]), n(&stats["filled"]) + n(&stats["unfilled"]));
    assert!(report["fill_rate"].as_f64().is_some_and(|f| f > 0.5), "demo placements mostly fill: {report}");

    // Every filled ad's impression was fetched (rate 1.0) and counted; half were clicked.
    let imps = &total["impressions"];
    assert_eq!(n(&imps["sent"]), n(&total["placements_filled"]), "{report}");
    assert_eq!(n(&imps["statuses"]["204"]), n(&stats["impressions"]), "report {report}\nstats {stats}");
    assert_eq!(n(&imps["statuses"]["204"]), n(&imps["sent"]));
    let clicks = &total["clicks"];
    assert!(n(&clicks["sent"]) > 0, "{report}");
    assert_eq!(n(&clicks["statuses"]["302"]), n(&stats["clicks"]), "report {report}\nstats {stats}");
    assert_eq!(n(&clicks["statuses"]["302"]), n(&clicks["sent"]));
    let share = n(&clicks["sent"]) as f64 / n(&imps["sent"]) as f64;
    assert!((0.4..0.6).contains(&share), "click share {share}");
    assert_eq!(n(&stats["tracking_rejected"]), 0);
}

#[tokio::test]
async fn open_loop_holds_its_rate_and_request_counts_are_exact() {
    let server = Server::start(&["--demo"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = write_scenario(tmp.path(), SCENARIO);

    let report = loadtest(
        &server.base,
        &scenario,
        tmp.path(),
        &["--mode", "open", "--rate", "200", "--connections", "4", "--warmup", "0s", "--duration", "2s"],
    );
    let measured = n(&report["measured"]["requests"]);
    assert!((380..=420).contains(&measured), "200/s for 2 s sent {measured}: {report}");
    assert_eq!(report["mode"], "open");

    let report = loadtest(
        &server.base,
        &scenario,
        tmp.path(),
        &["--requests", "300", "--connections", "3", "--warmup", "0s", "--quiet"],
    );
    assert_eq!(n(&report["measured"]["requests"]), 300, "{report}");
    assert_eq!(n(&report["total"]["requests"]), 300);

    // Both runs together, as the server counted them.
    let stats = server_stats(&server).await;
    assert_eq!(n(&stats["requests"]), measured + 300);
}

#[test]
fn a_bad_scenario_is_refused_naming_the_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let scenario = write_scenario(tmp.path(), &SCENARIO.replace("click_rate = 0.5", "click_rate = 2"));
    let out = Command::new(bin())
        .args(["loadtest", "--target", "http://127.0.0.1:9", "--scenario", &scenario, "--duration", "1s"])
        .output()
        .expect("run loadtest");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("callbacks.click_rate"), "{stderr}");

    let out = Command::new(bin())
        .args(["loadtest", "--target", "http://127.0.0.1:9", "--scenario", &scenario, "--duration", "5"])
        .output()
        .expect("run loadtest");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no unit"));
}

#[test]
fn every_loadtest_flag_parses() {
    use adplatform::{Cli, Command as Cmd, CpuList, LoadMode};
    use clap::Parser;
    let cli = Cli::try_parse_from([
        "adplatform",
        "loadtest",
        "--target",
        "http://127.0.0.1:8080",
        "--scenario",
        "s.toml",
        "--duration",
        "2m",
        "--warmup",
        "500ms",
        "--mode",
        "open",
        "--rate",
        "1000",
        "--connections",
        "8",
        "--threads",
        "2",
        "--cpus",
        "2-3,5",
        "--timeout",
        "2s",
        "--seed",
        "7",
        "--report-json",
        "r.json",
        "--report-md",
        "r.md",
        "--plot",
        "p.svg",
        "--no-progress",
    ])
    .expect("parses");
    let Cmd::Loadtest(a) = cli.command else { panic!("not loadtest") };
    assert_eq!(a.duration, Some(std::time::Duration::from_secs(120)));
    assert_eq!(a.warmup, std::time::Duration::from_millis(500));
    assert_eq!((a.mode, a.rate, a.connections, a.threads), (LoadMode::Open, Some(1000.0), 8, 2));
    assert_eq!(a.cpus, Some(CpuList(vec![2, 3, 5])));
    assert_eq!((a.seed, a.no_progress), (Some(7), true));
    assert_eq!(a.plot.as_deref(), Some(std::path::Path::new("p.svg")));
    // `--quiet`, its older name, still works.
    let Cmd::Loadtest(a) =
        Cli::try_parse_from(["adplatform", "loadtest", "--target", "x", "--scenario", "s", "--quiet"])
            .expect("parses")
            .command
    else {
        panic!("not loadtest")
    };
    assert!(a.no_progress);
    assert!(Cli::try_parse_from([
        "adplatform",
        "loadtest",
        "--target",
        "x",
        "--scenario",
        "s",
        "--requests",
        "5",
        "--duration",
        "1s"
    ])
    .is_err());
    assert!(Cli::try_parse_from(["adplatform", "loadtest", "--target", "x", "--scenario", "s", "--cpus", "a"]).is_err());
}
