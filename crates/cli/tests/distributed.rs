//! Distributed mode on a real local cluster (`scripts/local-cluster.sh`): redis-server for
//! DragonflyDB, Tansu for Redpanda, ClickHouse, three serving processes, one API process and
//! one ingest process, all started by the script, on loopback. What issue 7 asks to show:
//!
//! - a targeting change made through the API is served by all three serving processes within 1 s;
//! - a line item with a small daily budget under concurrent load through all three processes
//!   spends no more than the budget plus the documented bound (serving processes × lease slice);
//! - a frequency cap of N is never exceeded for any user, with requests racing across processes;
//! - `kill -9` of one serving process mid-load: the others keep serving, and no acknowledged
//!   impression is lost (ClickHouse, through the API role's report, counts every one).

mod common;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PORT: u16 = 18610;
const SERVING: [u16; 3] = [PORT + 1, PORT + 2, PORT + 3];
/// Budget leased per process at a time: the overspend bound is 3 × this.
const SLICE: i64 = 5_000;
const DAILY_BUDGET: i64 = 60_000;

struct Cluster {
    dir: PathBuf,
    env_file: PathBuf,
    prefix: String,
    admin_key: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/local-cluster.sh")
}

impl Cluster {
    fn command(&self, action: &str) -> Command {
        let mut c = Command::new("bash");
        c.arg(script())
            .arg(action)
            .env("ADP_BIN", common::bin())
            .env("ADP_CLUSTER_DIR", &self.dir)
            .env("ADP_CLUSTER_PORT", PORT.to_string())
            .env("ADP_CLUSTER_PREFIX", &self.prefix)
            .env("ADP_CLUSTER_ENV", &self.env_file);
        c
    }

    fn up(&self) {
        let out = self.command("up").output().expect("run local-cluster.sh");
        assert!(
            out.status.success(),
            "local-cluster.sh up failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start() -> Cluster {
        let nonce = format!("{:x}", std::process::id() ^ (chrono::Utc::now().timestamp_subsec_nanos()));
        let prefix = format!("adpdist{nonce}");
        let dir = std::env::temp_dir().join(format!("adplatform-{prefix}"));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let env_file = dir.join("extra.env");
        std::fs::write(
            &env_file,
            format!(
                "ADP_DRAGONFLY_LEASE_SLICE_MICROS={SLICE}\nADP_DRAGONFLY_RENEW_MS=100\nADP_DRAGONFLY_LEASE_TTL_MS=3000\n\
                 ADP_DRAGONFLY_CTR_SYNC_MS=500\nADP_LOG_LEVEL=warn\nADP_SERVING_CATALOG_RELOAD_SECS=30\n"
            ),
        )
        .expect("extra env");
        let mut cluster = Cluster { dir: dir.clone(), env_file, prefix, admin_key: String::new() };
        cluster.up();
        cluster.admin_key = std::fs::read_to_string(dir.join("admin.key")).expect("admin key").trim().to_string();
        cluster
    }

    fn kill9(&self, name: &str) {
        let pid = std::fs::read_to_string(self.dir.join(format!("{name}.pid"))).expect("pid file");
        let status = Command::new("kill").args(["-9", pid.trim()]).status().expect("kill");
        assert!(status.success(), "kill -9 {name}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.command("down").output();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("cluster logs kept in {}", self.dir.display());
        }
    }
}

fn base(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The same URL on another serving process (they share keys, guards and ledgers).
fn on_port(url: &str, port: u16) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    format!("{}{path}", base(port))
}

async fn admin_get(http: &reqwest::Client, c: &Cluster, path: &str) -> Value {
    http.get(format!("{}{path}", base(PORT)))
        .bearer_auth(&c.admin_key)
        .send()
        .await
        .expect("api get")
        .json()
        .await
        .expect("api json")
}

async fn patch_line_item(http: &reqwest::Client, c: &Cluster, id: &str, mut patch: Value) -> u64 {
    let current = admin_get(http, c, &format!("/api/v1/line-items/{id}")).await;
    patch["version"] = current["version"].clone();
    let resp = http
        .patch(format!("{}/api/v1/line-items/{id}", base(PORT)))
        .bearer_auth(&c.admin_key)
        .json(&patch)
        .send()
        .await
        .expect("patch");
    assert_eq!(resp.status(), StatusCode::OK, "patch {id}");
    let body: Value = resp.json().await.expect("patch json");
    body["catalog_version"].as_u64().expect("catalog_version")
}

async fn decide(http: &reqwest::Client, port: u16, body: &Value) -> Option<Value> {
    let resp = http.post(format!("{}/v1/decide", base(port))).json(body).send().await.ok()?;
    if resp.status() != StatusCode::OK {
        return None;
    }
    resp.json().await.ok()
}

fn ad_of(resp: &Value) -> Option<&Value> {
    resp["decisions"][0]["ad"].as_object().map(|_| &resp["decisions"][0]["ad"])
}

async fn report_by_line_item(http: &reqwest::Client, c: &Cluster) -> HashMap<String, Value> {
    let now = chrono::Utc::now();
    let from = (now - chrono::Duration::hours(2)).format("%Y-%m-%dT%H:00:00Z");
    let to = (now + chrono::Duration::hours(2)).format("%Y-%m-%dT%H:00:00Z");
    let body = admin_get(http, c, &format!("/api/v1/reports?from={from}&to={to}&dimensions=line_item")).await;
    body["rows"]
        .as_array()
        .map(|rows| rows.iter().map(|r| (r["line_item"].as_str().unwrap_or_default().to_string(), r.clone())).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_serving_processes_share_catalog_budget_caps_and_lose_nothing_on_kill_9() {
    let cluster = Cluster::start();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let acknowledged = Arc::new(AtomicU64::new(0));

    // --- 1. a targeting change made through the API is served by all three within 1 s -------
    let us = json!({"placements": [{"id": "demo-mrec"}], "user": {"id": "t1"}, "geo": {"country": "US"},
                    "device": {"type": "desktop"}, "test": true});
    for port in SERVING {
        let resp = decide(&http, port, &us).await.expect("decide");
        assert_eq!(ad_of(&resp).map(|a| a["line_item_id"].clone()), Some(json!("demo-acme-ron")), "before: {resp}");
    }
    let changed_at = Instant::now();
    let version = patch_line_item(&http, &cluster, "demo-acme-ron", json!({"targeting": {"country": ["FR"]}})).await;
    let mut seen_by = Vec::new();
    for port in SERVING {
        loop {
            let v = admin_get(&http, &cluster, "/api/v1/catalog/version").await;
            assert!(v["store_version"].as_u64() >= Some(version));
            let served: Value = http
                .get(format!("{}/api/v1/catalog/version", base(port)))
                .send()
                .await
                .expect("version")
                .json()
                .await
                .expect("version json");
            let resp = decide(&http, port, &us).await.expect("decide");
            let li = ad_of(&resp).map(|a| a["line_item_id"].clone());
            if served["serving_version"].as_u64() >= Some(version) && li != Some(json!("demo-acme-ron")) {
                seen_by.push(changed_at.elapsed());
                break;
            }
            assert!(changed_at.elapsed() < Duration::from_secs(1), "process on {port} still serves the old targeting");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    eprintln!("targeting change served by all three processes after {seen_by:?}");

    // --- 2. a small daily budget under concurrent load through all three ------------------
    patch_line_item(
        &http,
        &cluster,
        "demo-acme-ron",
        json!({"budget": {"daily_micros": DAILY_BUDGET, "time_zone": "Europe/Berlin"}, "pacing": "asap"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fr = json!({"placements": [{"id": "demo-mrec"}], "geo": {"country": "FR"}, "device": {"type": "desktop"}});
    // Load until the line item has not filled for 1.5 s (its budget is used up), at most 30 s.
    let started = Instant::now();
    let last_fill_ms = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..12u16 {
        let http = http.clone();
        let fr = fr.clone();
        let acknowledged = Arc::clone(&acknowledged);
        let last_fill_ms = Arc::clone(&last_fill_ms);
        tasks.push(tokio::spawn(async move {
            let mut filled = 0u64;
            let mut i = 0u16;
            loop {
                let now_ms = started.elapsed().as_millis() as u64;
                if now_ms > 30_000 || now_ms > last_fill_ms.load(Ordering::Relaxed) + 1_500 {
                    break;
                }
                i = i.wrapping_add(1);
                let port = SERVING[usize::from((t + i) % 3)];
                let Some(resp) = decide(&http, port, &fr).await else { continue };
                let Some(ad) = ad_of(&resp) else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                if ad["line_item_id"] != json!("demo-acme-ron") {
                    continue;
                }
                filled += 1;
                last_fill_ms.fetch_max(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                // The impression reaches another process than the decision.
                let imp =
                    on_port(ad["impression_url"].as_str().unwrap_or_default(), SERVING[usize::from((t + i + 1) % 3)]);
                if let Ok(r) = http.get(imp).send().await {
                    if r.status() == StatusCode::NO_CONTENT {
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            filled
        }));
    }
    let mut filled = 0;
    for t in tasks {
        filled += t.await.expect("load task");
    }
    let impressions_after_budget = acknowledged.load(Ordering::Relaxed);
    eprintln!("budget phase: {filled} fills of the budgeted line item, {impressions_after_budget} impressions");
    assert!(filled > 0, "the budgeted line item never served");

    // --- 3. a frequency cap of N never exceeded across processes ---------------------------
    const CAP: u64 = 3;
    patch_line_item(
        &http,
        &cluster,
        "demo-acme-dach-mobile",
        json!({"frequency_caps": [{"count": CAP, "window": "day"}], "pacing": "asap"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut per_user = Vec::new();
    for u in 0..4 {
        // Each user's burst draws on fresh budget leases (a slice is a few impressions here).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let user = format!("cap-user-{u}");
        let mut racing = Vec::new();
        for k in 0..12u16 {
            let http = http.clone();
            let body = json!({"placements": [{"id": "demo-mrec"}], "user": {"id": user},
                              "geo": {"country": "DE"}, "device": {"type": "phone"}});
            racing.push(tokio::spawn(async move {
                let resp = decide(&http, SERVING[usize::from(k % 3)], &body).await;
                resp.as_ref().and_then(ad_of).is_some_and(|a| a["line_item_id"] == json!("demo-acme-dach-mobile"))
            }));
        }
        let mut shown = 0u64;
        for r in racing {
            shown += u64::from(r.await.expect("cap task"));
        }
        per_user.push(shown);
    }
    eprintln!("capped line item shown per user (cap {CAP}, 12 racing requests each): {per_user:?}");
    assert!(per_user.iter().all(|&n| n <= CAP), "a cap of {CAP} was exceeded: {per_user:?}");
    assert!(per_user.iter().all(|&n| n == CAP), "the capped line item should fill up to its cap: {per_user:?}");

    // --- 4. kill -9 of one serving process mid-load ----------------------------------------
    patch_line_item(
        &http,
        &cluster,
        "demo-acme-ron",
        json!({"budget": {"daily_micros": 1_000_000_000i64, "time_zone": "Europe/Berlin"}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let after_kill_ok = Arc::new(AtomicU64::new(0));
    let after_kill_err = Arc::new(AtomicU64::new(0));
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let unanswered: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let mut load = Vec::new();
    for t in 0..8u16 {
        let (http, fr) = (http.clone(), fr.clone());
        let (stop, acknowledged, killed) = (Arc::clone(&stop), Arc::clone(&acknowledged), Arc::clone(&killed));
        let (ok, err) = (Arc::clone(&after_kill_ok), Arc::clone(&after_kill_err));
        let unanswered = Arc::clone(&unanswered);
        load.push(tokio::spawn(async move {
            let mut i = 0u16;
            while !stop.load(Ordering::Relaxed) {
                i = i.wrapping_add(1);
                let port = SERVING[usize::from((t + i) % 3)];
                let survivor = port != SERVING[1];
                let resp = decide(&http, port, &fr).await;
                if killed.load(Ordering::Relaxed) && survivor {
                    if resp.is_some() {
                        ok.fetch_add(1, Ordering::Relaxed)
                    } else {
                        err.fetch_add(1, Ordering::Relaxed)
                    };
                }
                let Some(ad) = resp.as_ref().and_then(ad_of) else { continue };
                let imp = on_port(ad["impression_url"].as_str().unwrap_or_default(), port);
                match http.get(&imp).send().await {
                    Ok(r) if r.status() == StatusCode::NO_CONTENT => {
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => panic!("impression answered {}", r.status()),
                    // No answer (the process was killed): the event may or may not have been
                    // written; settled below by sending it again.
                    Err(_) => unanswered.lock().unwrap_or_else(|p| p.into_inner()).push(imp),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.kill9("serve2");
    killed.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.expect("load task");
    }
    let (ok, err) = (after_kill_ok.load(Ordering::Relaxed), after_kill_err.load(Ordering::Relaxed));
    eprintln!("after kill -9 of serve2: {ok} decisions served by the others, {err} failed");
    assert!(ok > 0 && err == 0, "the surviving processes must keep serving: {ok} ok, {err} failed");
    // The killed process comes back on its data dir (as a restarted pod would) and forwards
    // what its log holds.
    cluster.up();
    // Trackers that got no answer at the kill are in doubt: the killed process may have written
    // the event (it then counts) or not (and, having claimed the URL in the shared replay
    // guard, a retry would be refused) — not acknowledged either way.
    let in_doubt = unanswered.lock().unwrap_or_else(|p| p.into_inner()).len() as i64;
    eprintln!("{in_doubt} trackers unanswered at the kill (in doubt)");

    // --- every acknowledged impression reaches ClickHouse, once; spend within the bound -----
    let total = acknowledged.load(Ordering::Relaxed) as i64;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut settled_at = None;
    loop {
        let rows = report_by_line_item(&http, &cluster).await;
        let counted: i64 = rows.values().map(|r| r["impressions"].as_i64().unwrap_or(0)).sum();
        assert!(
            counted <= total + in_doubt,
            "more impressions counted ({counted}) than acknowledged ({total}) plus in doubt ({in_doubt})"
        );
        // Every acknowledged impression arrived; wait a little longer for the in-doubt ones.
        if counted >= total {
            let since = *settled_at.get_or_insert_with(Instant::now);
            if counted == total + in_doubt || since.elapsed() > Duration::from_secs(3) {
                eprintln!(
                    "{counted} impressions counted in ClickHouse: {total} acknowledged + {} of {in_doubt} in doubt",
                    counted - total
                );
                // The same report a failure prints (so it is known to work): tail gaps are the
                // duplicates serve2 sent again after its restart.
                eprintln!("{}", offset_gaps(&cluster).await);
                break;
            }
        }
        if Instant::now() >= deadline {
            // Seen once (docs/STATUS.md): say where the missing events went before failing.
            eprintln!("{}", offset_gaps(&cluster).await);
            panic!("ClickHouse counts {counted} impressions, {total} were acknowledged");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ch = clickhouse(&cluster);
    let dup = ch
        .fetch_tsv(&format!("SELECT count() - uniqExact(event_id) FROM {}", ch.table("events")))
        .await
        .expect("duplicate query");
    assert_eq!(dup.first().and_then(|r| r.first()).map(String::as_str), Some("0"), "an event stored twice");
    // What the chart's alerts and dashboard read.
    let scrape = |port: u16| {
        let http = http.clone();
        async move { http.get(format!("{}/metrics", base(port))).send().await.expect("scrape").text().await.expect("text") }
    };
    let serving_metrics = scrape(SERVING[0]).await;
    assert!(serving_metrics.contains("adp_dependency_up{dependency=\"dragonfly\"} 1"), "{serving_metrics}");
    assert!(serving_metrics.contains("adp_http_requests_total{route=\"decide\",status=\"200\"}"), "{serving_metrics}");
    assert!(serving_metrics.contains("adp_budget_lease_renewals_total"), "{serving_metrics}");
    let ingest_metrics = scrape(PORT + 9).await;
    assert!(ingest_metrics.contains("adp_ingest_lag_messages "), "{ingest_metrics}");
    // Holes the ingest re-read and recovered do not count; an accepted hole (events the broker
    // acknowledged but never delivered) would, and alerts (AdPlatformIngestOffsetGap).
    assert!(ingest_metrics.contains("adp_ingest_offset_gaps 0\n"), "{ingest_metrics}");
    assert!(ingest_metrics.contains("adp_dependency_up{dependency=\"clickhouse\"} 1"), "{ingest_metrics}");
    // The budget phase's spend (the first impressions_after_budget impressions) stays within the
    // bound. ClickHouse has the whole day; the budget phase spend is what its impressions cost.
    let ledger_spend = budget_phase_spend(&cluster, impressions_after_budget).await;
    let bound = 3 * SLICE;
    eprintln!("budget phase spend {ledger_spend} micros; budget {DAILY_BUDGET} + bound {bound}");
    assert!(ledger_spend <= DAILY_BUDGET + bound, "spent {ledger_spend} of a {DAILY_BUDGET} budget");
    // Once the load stops, at most one slice per process is left leased and unspent.
    assert!(
        ledger_spend >= DAILY_BUDGET - bound,
        "the budgeted line item should have spent its budget but for the leases in hand: {ledger_spend}"
    );
}

/// What the budget phase spent: the cost of its impressions, each a CPM win of the budgeted line
/// item at the price its auction cleared, read from the raw events in ClickHouse (the first
/// `n` impressions of `demo-acme-ron`).
/// A client of the cluster's ClickHouse database.
/// For a failure report: per Kafka partition, the offsets ClickHouse holds and the runs of
/// offsets it does not (a run in the middle that no duplicate explains is a batch the ingest
/// never received), and where each serving process's forwarder cursor stands.
async fn offset_gaps(cluster: &Cluster) -> String {
    let ch = clickhouse(cluster);
    let sql = format!(
        "SELECT kafka_partition, kafka_offset FROM {} ORDER BY kafka_partition, kafka_offset",
        ch.table("events")
    );
    let mut out = String::from("offsets stored in ClickHouse, by partition:");
    let rows = match ch.fetch_tsv(&sql).await {
        Ok(rows) => rows,
        Err(e) => return format!("{out} unreadable: {e}"),
    };
    let mut by_partition: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for row in rows {
        if let [p, o] = row.as_slice() {
            by_partition.entry(p.clone()).or_default().push(o.parse().unwrap_or(-1));
        }
    }
    for (p, offsets) in &by_partition {
        let mut runs = Vec::new();
        let mut next = 0i64;
        for &o in offsets {
            if o > next {
                runs.push(format!("{next}..={}", o - 1));
            }
            next = next.max(o + 1);
        }
        out.push_str(&format!("\n  partition {p}: {} rows, offsets 0..{next}, missing {runs:?}", offsets.len()));
    }
    for name in ["serve1", "serve2", "serve3"] {
        let dir = cluster.dir.join(name).join("events");
        let cursors: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".cursor"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect();
        out.push_str(&format!("\n  {name} forwarder cursor: {cursors:?}"));
    }
    out
}

fn clickhouse(cluster: &Cluster) -> adp_analytics::ClickHouse {
    let env = std::fs::read_to_string(cluster.dir.join("cluster.env")).expect("cluster env");
    let url = env.lines().find_map(|l| l.strip_prefix("ADP_CLICKHOUSE_URL=")).expect("clickhouse url").to_string();
    adp_analytics::ClickHouse::connect(&adp_analytics::ClickHouseSettings {
        url,
        database: cluster.prefix.clone(),
        user: "default".into(),
        password: String::new(),
        ..Default::default()
    })
    .expect("clickhouse")
}

async fn budget_phase_spend(cluster: &Cluster, n: u64) -> i64 {
    let ch = clickhouse(cluster);
    let sql = format!(
        "SELECT sum(cost_micros) FROM (SELECT cost_micros FROM {} WHERE line_item_id = 'demo-acme-ron' \
         AND kind = 'impression' ORDER BY event_time_ms, event_id LIMIT {n})",
        ch.table("events"),
    );
    let rows = ch.fetch_tsv(&sql).await.expect("spend query");
    rows.first().and_then(|r| r.first()).and_then(|v| v.parse().ok()).expect("a sum")
}
