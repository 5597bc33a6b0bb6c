//! Ingest throughput into ClickHouse (ClickHouse 18.16 and Tansu of its own, via the testkit).
//!
//! ```text
//! cargo run --release -p adp-analytics --features testkit --example ingest_bench -- [ROWS] [BATCH_ROWS]
//! ```
//!
//! Two numbers, each from an empty table:
//! 1. sink: decoded events → [`EventsSink::write`] (id lookup, RowBinary, LZ4, HTTP insert,
//!    rollup materialized view) in batches — what ClickHouse takes from the ingest;
//! 2. end to end: events already in Kafka (3 partitions) → `run_ingest` → ClickHouse, from start
//!    until every row is stored — consumer, decoding and sink together.
//!
//! Everything (the broker, ClickHouse, the ingest) shares this machine's cores.

use adp_analytics::sink::{Batch, EventsSink, Incoming, IngestCounters};
use adp_analytics::testkit::{produce, sample_events, ClickHouseServer, TansuBroker};
use adp_analytics::{ClickHouse, ClickHouseSettings, IngestSettings, MigrateSettings};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rows: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let batch_rows: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let server = ClickHouseServer::start();
    let ch_settings = |db: &str| ClickHouseSettings { url: server.url(), database: db.into(), ..Default::default() };

    // Events: 1 ms apart from 2024-01-01, so a batch spans a few minutes of one hour or two.
    let events = sample_events(rows, 1_704_067_200_000, 1, 11);

    // 1. The sink alone.
    let ch = ClickHouse::connect(&ch_settings("bench_sink")).unwrap_or_else(|e| panic!("connect: {e}"));
    adp_analytics::migrate(&ch, &MigrateSettings { ttl_days: 0 }).await.unwrap_or_else(|e| panic!("migrate: {e}"));
    let mut sink = EventsSink::new(ch.clone(), "bench.events");
    let batches: Vec<Batch> = events
        .chunks(batch_rows)
        .enumerate()
        .map(|(b, chunk)| Batch {
            events: chunk
                .iter()
                .enumerate()
                .map(|(i, e)| Incoming {
                    partition: (i % 3) as i32,
                    offset: (b * batch_rows + i) as i64,
                    event: e.clone(),
                })
                .collect(),
            ..Batch::default()
        })
        .collect();
    let t = Instant::now();
    let mut inserted = 0;
    for b in &batches {
        inserted += sink.write(b).await.unwrap_or_else(|e| panic!("write: {e}")).inserted;
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(inserted, rows as u64);
    println!(
        "sink: {rows} rows in {secs:.2} s = {:.0} rows/s (batches of {batch_rows}, ClickHouse {})",
        rows as f64 / secs,
        ch.version().await.unwrap_or_default()
    );

    // 2. Kafka → ingest → ClickHouse.
    let broker = TansuBroker::start();
    broker.create_topic("bench.events", 3);
    let t = Instant::now();
    produce(&broker.brokers(), "bench.events", &events);
    println!("(produced {rows} events to Tansu in {:.2} s)", t.elapsed().as_secs_f64());
    let settings = IngestSettings {
        clickhouse: ch_settings("bench_e2e"),
        brokers: broker.brokers(),
        topic: "bench.events".into(),
        group_id: "bench-ingest".into(),
        batch_rows,
        batch_ms: 1000,
        ttl_days: 0,
        client_settings: Vec::new(),
    };
    let ch = ClickHouse::connect(&settings.clickhouse).unwrap_or_else(|e| panic!("connect: {e}"));
    adp_analytics::migrate(&ch, &MigrateSettings { ttl_days: 0 }).await.unwrap_or_else(|e| panic!("migrate: {e}"));
    let counters = Arc::new(IngestCounters::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let t = Instant::now();
    let task = tokio::spawn(adp_analytics::run_ingest_with(settings, Arc::clone(&counters), async {
        let _ = stop_rx.await;
    }));
    while counters.inserted.load(Ordering::Relaxed) < rows as u64 {
        assert!(t.elapsed() < Duration::from_secs(600), "ingest too slow: {:?}", counters.snapshot());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    let _ = stop_tx.send(());
    let snapshot = task.await.unwrap_or_else(|e| panic!("join: {e}")).unwrap_or_else(|e| panic!("ingest: {e}"));
    println!("end to end: {rows} rows in {secs:.2} s = {:.0} rows/s ({snapshot:?})", rows as f64 / secs);
}
