//! `adplatform ingest` as an operator runs it, against real Tansu and ClickHouse 18.16 (started
//! by the analytics testkit): `migrate --clickhouse` twice, ingest killed with SIGKILL in the
//! middle of its batches twice while events and re-sent copies keep arriving, then restarted:
//! the reports equal the unique events exactly; SIGTERM stops it cleanly with its counters.

use adp_analytics::report::{Dimension, Metric, ReportFilters, ReportQuery, Rollup};
use adp_analytics::testkit::{produce, rows_of, sample_events, ClickHouseServer, TansuBroker};
use adp_analytics::{ClickHouse, ClickHouseSettings};
use adp_domain::events::Event;
use chrono::DateTime;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const PREFIX: &str = "adpcli";
const DATABASE: &str = "adp_cli";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_adplatform")
}

/// The binary with only this test's `ADP_` variables (unknown ones are config errors).
fn command(ch: &ClickHouseServer, broker: &TansuBroker, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("ADP_")) {
        c.env_remove(k);
    }
    c.args(args)
        .env("ADP_CLICKHOUSE_URL", ch.url())
        .env("ADP_CLICKHOUSE_DATABASE", DATABASE)
        .env("ADP_CLICKHOUSE_BATCH_ROWS", "2000")
        .env("ADP_CLICKHOUSE_BATCH_MS", "100")
        .env("ADP_KAFKA_BROKERS", broker.brokers())
        .env("ADP_KAFKA_TOPIC_PREFIX", PREFIX)
        .env("ADP_LOG_LEVEL", "warn");
    c
}

fn run(ch: &ClickHouseServer, broker: &TansuBroker, args: &[&str]) -> Output {
    let out = command(ch, broker, args).output().expect("run adplatform");
    assert!(
        out.status.success(),
        "adplatform {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// An `adplatform ingest` child, killed if the test fails before it is done with it.
struct Ingest(Option<Child>);

impl Ingest {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_ingest(ch: &ClickHouseServer, broker: &TansuBroker) -> Ingest {
    let child =
        command(ch, broker, &["ingest"]).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn ingest");
    Ingest(Some(child))
}

async fn stored_rows(ch: &ClickHouse) -> u64 {
    match ch.fetch_tsv(&format!("SELECT count() FROM {}", ch.table("events"))).await {
        Ok(rows) => rows.first().and_then(|r| r.first()).and_then(|v| v.parse().ok()).unwrap_or(0),
        Err(_) => 0,
    }
}

async fn wait_rows(ch: &ClickHouse, what: &str, timeout: Duration, mut f: impl FnMut(u64) -> bool) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let n = stored_rows(ch).await;
        if f(n) {
            return n;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what} (rows stored: {n})");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Panics with the broker's log if it has exited; else false.
fn broker_died(broker: &mut TansuBroker) -> bool {
    broker.assert_running();
    false
}

async fn assert_exact(ch: &ClickHouse, unique: &[Event]) {
    let mut oracle = Rollup::new();
    unique.iter().for_each(|e| oracle.add(e));
    let base = ReportQuery {
        from: DateTime::from_timestamp(unique[0].event_time_ms / 1000 - 3600, 0).expect("t"),
        to: chrono::Utc::now() + chrono::Duration::days(1),
        time_zone: chrono_tz::Europe::Berlin,
        dimensions: vec![],
        metrics: Metric::ALL.to_vec(),
        filters: ReportFilters::default(),
    };
    let mut queries = vec![base.clone()];
    for d in Dimension::ALL {
        queries.push(ReportQuery { dimensions: vec![d], ..base.clone() });
    }
    queries.push(ReportQuery {
        dimensions: vec![Dimension::Day, Dimension::LineItem, Dimension::Creative, Dimension::Placement],
        ..base
    });
    for q in queries {
        let got = adp_analytics::query(ch, &q).await.expect("report");
        assert_eq!(got, oracle.query(&q).expect("oracle"), "report by {:?}", q.dimensions);
    }
    let rows = ch.fetch_tsv(&format!("SELECT count(), uniqExact(event_id) FROM {}", ch.table("events"))).await;
    // A decision that stands for its request is stored as two rows, the request's and its own.
    let n = rows_of(unique).to_string();
    assert_eq!(rows.expect("count")[0], vec![n.clone(), n], "raw rows = unique events, each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_killed_mid_batch_then_restarted_loses_and_doubles_nothing() {
    let started = Instant::now();
    let ch_server = ClickHouseServer::start();
    let mut broker = TansuBroker::start();
    let topic = format!("{PREFIX}.events");
    broker.create_topic(&topic, 3);

    let help = run(&ch_server, &broker, &["ingest", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("ClickHouse"));
    let first = run(&ch_server, &broker, &["migrate", "--clickhouse"]);
    assert!(String::from_utf8_lossy(&first.stdout).contains("applied [1]"), "{first:?}");
    let again = run(&ch_server, &broker, &["migrate", "--clickhouse"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already up to date"), "{again:?}");

    let settings =
        ClickHouseSettings { url: ch_server.url(), database: DATABASE.into(), ..ClickHouseSettings::default() };
    let ch = ClickHouse::connect(&settings).expect("connect");

    // One event every 40 s over the last 14 days (inside the default 400-day retention); copies
    // of every 5th event are re-sent.
    let start_ms = chrono::Utc::now().timestamp_millis() - 15 * 86_400_000;
    let unique = sample_events(30_000, start_ms, 40_000, 3);
    let copies: Vec<Event> = unique.iter().step_by(5).cloned().collect();
    produce(&broker.brokers(), &topic, &unique[..20_000]);

    // Kill 1: as soon as the first batch is stored, i.e. while the next ones are in flight.
    let mut ingest = spawn_ingest(&ch_server, &broker);
    let at_kill = wait_rows(&ch, "the first batch", Duration::from_secs(60), |n| n > 0).await;
    ingest.child().kill().expect("SIGKILL");
    let _ = ingest.child().wait();
    assert!(at_kill < rows_of(&unique[..20_000]), "killed before the end ({at_kill} rows stored)");
    produce(&broker.brokers(), &topic, &copies[..copies.len() / 2]);

    // Kill 2: in the middle of the remainder.
    let mut ingest = spawn_ingest(&ch_server, &broker);
    let at_kill = wait_rows(&ch, "more batches", Duration::from_secs(60), |n| n > at_kill + 4_000).await;
    ingest.child().kill().expect("SIGKILL");
    let _ = ingest.child().wait();
    println!("killed twice; {at_kill} rows stored at the second kill");
    produce(&broker.brokers(), &topic, &unique[20_000..]);
    produce(&broker.brokers(), &topic, &copies[copies.len() / 2..]);

    // Restart: everything arrives once.
    broker.assert_running();
    let mut ingest = spawn_ingest(&ch_server, &broker);
    // ~33k rows through a debug build: ~30 s on a fast machine, ~100 s on a slow 2-core VM.
    let stored = wait_rows(&ch, "every unique event", Duration::from_secs(300), |n| {
        n >= rows_of(&unique) || broker_died(&mut broker)
    })
    .await;
    assert_eq!(stored, rows_of(&unique));
    // Let the copies at the end of the topic be read and skipped too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = ingest.child().id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let out = ingest.0.take().expect("running").wait_with_output().expect("wait");
    assert!(out.status.success(), "SIGTERM stops the ingest cleanly: {:?}", out.status);
    let last = String::from_utf8_lossy(&out.stdout);
    let snapshot: serde_json::Value = serde_json::from_str(last.trim()).expect("final counters as JSON");
    println!("last run: {snapshot}");
    assert_eq!(snapshot["undecodable"], 0);
    assert_exact(&ch, &unique).await;
    println!(
        "ingest_killed_mid_batch_then_restarted_loses_and_doubles_nothing: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
