//! Ingest throughput into ClickHouse (ClickHouse 18.16 and Tansu of its own, via the testkit).
//!
//! ```text
//! cargo run --release -p adp-analytics --features testkit --example ingest_bench -- [ROWS] [BATCH_ROWS] [MODE]
//! ```
//!
//! ROWS defaults to 2000000, BATCH_ROWS to 500000 (`clickhouse.batch_rows`'s default).
//!
//! MODE is `all` (the default: sink, then end to end), `sink`, `e2e`, `consume` or
//! `rowbinary FILE`:
//! 1. sink: decoded events → [`EventsSink::write`] (id lookup, RowBinary, LZ4, HTTP insert,
//!    rollup materialized view) in batches — what ClickHouse takes from the ingest;
//! 2. end to end: events already in Kafka (3 partitions) → `run_ingest` → ClickHouse, from start
//!    until every row is stored — consumer, decoding and sink together (with `RUST_LOG=
//!    adp_analytics=debug`, each batch's fill, hand-over, write and offset times are logged);
//! 3. consume: events already in Kafka → the ingest's consumer settings → poll, with and
//!    without decoding into batch rows (no ClickHouse);
//! 4. decode: records in memory → owned events, and → batch rows as the ingest reads them;
//! 5. rowbinary FILE: writes the events as the sink would insert them (RowBinary, columns
//!    `EVENT_COLUMNS`) to FILE, for timing `clickhouse-client` with none of this code in the loop.
//!
//! `BENCH_PACK=N` sets the events per Kafka message for end to end and consume (default 64, the
//! forwarder's default; 1 = one keyed message per event, as before session 12).
//! `BENCH_INSERTS=N` sets the INSERTs each batch is split into (default 2), for the sink and end
//! to end; `BENCH_LZ4=0` sends inserts uncompressed. Everything (the broker, ClickHouse, the
//! ingest) shares this machine's cores.

use adp_analytics::ingest::consumer_config;
use adp_analytics::rowbinary::{encode_event_row, event_id_bytes, Provenance};
use adp_analytics::sink::{Batch, EventsSink, IngestCounters};
use adp_analytics::testkit::{produce, produce_packed, rows_of, sample_events, ClickHouseServer, TansuBroker};
use adp_analytics::{ClickHouse, ClickHouseSettings, IngestSettings, MigrateSettings};
use adp_domain::events::Event;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOPIC: &str = "bench.events";
const PARTITIONS: i32 = 3;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
    let mut args = std::env::args().skip(1);
    let rows: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let batch_rows: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500_000);
    let mode = args.next().unwrap_or_else(|| "all".into());

    // Events: 1 ms apart from 2024-01-01, so a batch spans a few minutes of one hour or two.
    let events = sample_events(rows, 1_704_067_200_000, 1, 11);
    match mode.as_str() {
        "all" => {
            let server = ClickHouseServer::start();
            sink(&server, &events, batch_rows).await;
            end_to_end(&server, &events, batch_rows).await;
        }
        "sink" => sink(&ClickHouseServer::start(), &events, batch_rows).await,
        "e2e" => end_to_end(&ClickHouseServer::start(), &events, batch_rows).await,
        "consume" => consume_only(&events),
        "decode" => decode_only(&events),
        "rowbinary" => {
            let Some(path) = args.next() else { panic!("rowbinary needs a FILE") };
            write_rowbinary(&events, &path);
        }
        other => panic!("unknown mode `{other}`: all, sink, e2e, consume or rowbinary FILE"),
    }
}

/// Extra librdkafka settings for the consumer, from `BENCH_KAFKA="key=value,key=value"`.
fn extra_kafka_settings() -> Vec<(String, String)> {
    let raw = std::env::var("BENCH_KAFKA").unwrap_or_default();
    raw.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// INSERTs per batch at once, from `BENCH_INSERTS` (default: the ingest's default).
fn parallel_inserts() -> usize {
    std::env::var("BENCH_INSERTS").ok().and_then(|v| v.parse().ok()).unwrap_or(adp_analytics::ingest::PARALLEL_INSERTS)
}

/// Whether inserts are LZ4-compressed: not with `BENCH_LZ4=0`.
fn compress_inserts() -> bool {
    std::env::var("BENCH_LZ4").map_or(true, |v| v != "0")
}

/// CPU seconds this process (every thread; not the broker or ClickHouse) has used so far, from
/// /proc/self/stat (user + system, in clock ticks of 1/100 s as on every Linux this runs on).
fn cpu_secs() -> f64 {
    proc_cpu_secs("self")
}

/// [`cpu_secs`] of another process (0 if it is gone).
fn proc_cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which ends with the last ')': state is field 3, utime 14.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn ch_settings(server: &ClickHouseServer, db: &str) -> ClickHouseSettings {
    ClickHouseSettings { url: server.url(), database: db.into(), ..Default::default() }
}

/// 1. The sink alone.
async fn sink(server: &ClickHouseServer, events: &[Event], batch_rows: usize) {
    let rows = rows_of(events) as usize;
    let ch = ClickHouse::connect(&ch_settings(server, "bench_sink")).unwrap_or_else(|e| panic!("connect: {e}"));
    adp_analytics::migrate(&ch, &MigrateSettings { ttl_days: 0 }).await.unwrap_or_else(|e| panic!("migrate: {e}"));
    let mut sink = EventsSink::new(ch.clone(), TOPIC)
        .with_parallel_inserts(parallel_inserts())
        .with_compressed_inserts(compress_inserts());
    let batches: Vec<Batch> = events
        .chunks(batch_rows)
        .enumerate()
        .map(|(b, chunk)| {
            let mut batch = Batch::default();
            for (i, e) in chunk.iter().enumerate() {
                batch.push_event((i % 3) as i32, (b * batch_rows + i) as i64, e);
            }
            batch
        })
        .collect();
    let ch_pid = server.pid().map(|p| p.to_string()).unwrap_or_default();
    let (t, cpu, ch_cpu) = (Instant::now(), cpu_secs(), proc_cpu_secs(&ch_pid));
    let mut inserted = 0;
    for b in &batches {
        inserted += sink.write(b).await.unwrap_or_else(|e| panic!("write: {e}")).inserted;
    }
    let (secs, cpu, ch_cpu) = (t.elapsed().as_secs_f64(), cpu_secs() - cpu, proc_cpu_secs(&ch_pid) - ch_cpu);
    assert_eq!(inserted, rows as u64);
    println!("  (clickhouse-server used {ch_cpu:.2} CPU s = {:.2} µs/row)", ch_cpu * 1e6 / rows as f64);
    println!(
        "sink: {rows} rows in {secs:.2} s = {:.0} rows/s (batches of {batch_rows}, {} inserts at once, ClickHouse {}; this process {cpu:.2} CPU s = {:.2} µs/row)",
        rows as f64 / secs,
        parallel_inserts(),
        ch.version().await.unwrap_or_default(),
        cpu * 1e6 / rows as f64
    );
}

/// Events per Kafka message (`BENCH_PACK`, default 64 as the forwarder's
/// `kafka.events_per_message`; 1: one keyed message per event, as before session 12).
fn pack() -> usize {
    std::env::var("BENCH_PACK").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

/// A broker of its own with the events in [`TOPIC`], in messages as the forwarder sends them.
/// Returns the broker and the number of messages.
fn broker_with(events: &[Event]) -> (TansuBroker, usize) {
    let broker = TansuBroker::start();
    broker.create_topic(TOPIC, PARTITIONS as u32);
    let t = Instant::now();
    let messages = match pack() {
        0 | 1 => {
            produce(&broker.brokers(), TOPIC, events);
            events.len()
        }
        n => produce_packed(&broker.brokers(), TOPIC, events, PARTITIONS as usize, n) as usize,
    };
    println!(
        "(produced {} events in {messages} messages to Tansu in {:.2} s)",
        events.len(),
        t.elapsed().as_secs_f64()
    );
    (broker, messages)
}

/// 2. Kafka → ingest → ClickHouse.
async fn end_to_end(server: &ClickHouseServer, events: &[Event], batch_rows: usize) {
    let rows = rows_of(events) as usize;
    let (broker, _) = broker_with(events);
    let settings = IngestSettings {
        clickhouse: ch_settings(server, "bench_e2e"),
        brokers: broker.brokers(),
        topic: TOPIC.into(),
        group_id: "bench-ingest".into(),
        batch_rows,
        batch_ms: 1000,
        ttl_days: 0,
        client_settings: extra_kafka_settings(),
        parallel_inserts: parallel_inserts(),
        compress_inserts: compress_inserts(),
        gap_wait_ms: adp_analytics::gaps::GAP_WAIT_MS,
    };
    let ch = ClickHouse::connect(&settings.clickhouse).unwrap_or_else(|e| panic!("connect: {e}"));
    adp_analytics::migrate(&ch, &MigrateSettings { ttl_days: 0 }).await.unwrap_or_else(|e| panic!("migrate: {e}"));
    let counters = Arc::new(IngestCounters::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let ch_pid = server.pid().map(|p| p.to_string()).unwrap_or_default();
    let broker_pid = broker.pid().map(|p| p.to_string()).unwrap_or_default();
    let (t, cpu) = (Instant::now(), cpu_secs());
    let (ch_cpu, broker_cpu) = (proc_cpu_secs(&ch_pid), proc_cpu_secs(&broker_pid));
    let task = tokio::spawn(adp_analytics::run_ingest_with(settings, Arc::clone(&counters), async {
        let _ = stop_rx.await;
    }));
    let mut first_consumed: Option<Duration> = None;
    while counters.inserted.load(Ordering::Relaxed) < rows as u64 {
        assert!(t.elapsed() < Duration::from_secs(600), "ingest too slow: {:?}", counters.snapshot());
        if first_consumed.is_none() && counters.consumed.load(Ordering::Relaxed) > 0 {
            first_consumed = Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (secs, cpu) = (t.elapsed().as_secs_f64(), cpu_secs() - cpu);
    let (ch_cpu, broker_cpu) = (proc_cpu_secs(&ch_pid) - ch_cpu, proc_cpu_secs(&broker_pid) - broker_cpu);
    let _ = stop_tx.send(());
    let snapshot = task.await.unwrap_or_else(|e| panic!("join: {e}")).unwrap_or_else(|e| panic!("ingest: {e}"));
    println!(
        "end to end: {rows} rows in {secs:.2} s = {:.0} rows/s ({} inserts at once; {snapshot:?})",
        rows as f64 / secs,
        parallel_inserts()
    );
    println!("  (the ingest used {cpu:.2} CPU s = {:.2} µs/row)", cpu * 1e6 / rows as f64);
    println!(
        "  (clickhouse-server used {ch_cpu:.2} CPU s = {:.2} µs/row; tansu {broker_cpu:.2} CPU s = {:.2} µs/row)",
        ch_cpu * 1e6 / rows as f64,
        broker_cpu * 1e6 / rows as f64
    );
    if let Some(first) = first_consumed {
        let rest = secs - first.as_secs_f64();
        println!(
            "  (first message consumed after {:.2} s; from then on {:.0} rows/s)",
            first.as_secs_f64(),
            rows as f64 / rest
        );
    }
}

/// 3. Kafka → the ingest's consumer settings → poll (and decode), no ClickHouse.
fn consume_only(events: &[Event]) {
    let (broker, messages) = broker_with(events);
    for decode in [false, true, false, true] {
        let settings = IngestSettings {
            brokers: broker.brokers(),
            topic: TOPIC.into(),
            group_id: "bench-consume".into(),
            client_settings: extra_kafka_settings(),
            ..IngestSettings::default()
        };
        let consumer: BaseConsumer = consumer_config(&settings).create().unwrap_or_else(|e| panic!("consumer: {e}"));
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition_offset(TOPIC, p, Offset::Beginning).unwrap_or_else(|e| panic!("tpl: {e}"));
        }
        consumer.assign(&tpl).unwrap_or_else(|e| panic!("assign: {e}"));
        let t = Instant::now();
        let mut first: Option<Instant> = None;
        let (mut n, mut bytes) = (0usize, 0usize);
        let mut batch = Batch::default();
        while n < messages {
            assert!(t.elapsed() < Duration::from_secs(300), "consumed only {n}");
            let Some(Ok(msg)) = consumer.poll(Duration::from_millis(50)) else { continue };
            first.get_or_insert_with(Instant::now);
            n += 1;
            let payload = msg.payload().unwrap_or_default();
            bytes += payload.len();
            if decode {
                // What the ingest does: the record, read in place, into the batch's RowBinary.
                if let Some((_, e)) = batch.push_message(msg.partition(), msg.offset(), payload) {
                    panic!("decode: {e}");
                }
                if batch.len() >= 200_000 {
                    batch.clear();
                }
            }
        }
        let secs = t.elapsed().as_secs_f64();
        let steady = first.map(|f| f.elapsed().as_secs_f64()).unwrap_or(secs);
        println!(
            "consume{}: {} events in {n} messages ({:.1} MB of values) in {secs:.2} s = {:.0} events/s; after the first message {:.0} events/s",
            if decode { " + decode" } else { "" },
            events.len(),
            bytes as f64 / 1e6,
            events.len() as f64 / secs,
            events.len() as f64 / steady
        );
    }
}

/// 4. The events as RowBinary `events` rows, to a file.
fn write_rowbinary(events: &[Event], path: &str) {
    let mut out = Vec::with_capacity(events.len() * 256);
    for (i, e) in events.iter().enumerate() {
        let from = Provenance { partition: (i % 3) as u32, offset: i as i64, batch_id: 1 };
        encode_event_row(&mut out, e, &event_id_bytes(&e.id), from).unwrap_or_else(|e| panic!("row: {e}"));
    }
    std::fs::write(path, &out).unwrap_or_else(|e| panic!("write {path}: {e}"));
    println!("{} rows, {} bytes of RowBinary in {path}", events.len(), out.len());
}

/// Decoding alone, from encoded records in memory.
fn decode_only(events: &[Event]) {
    let records: Vec<Vec<u8>> = events
        .iter()
        .map(|e| {
            let mut v = Vec::new();
            adp_eventwire::encode(e, &mut v);
            v
        })
        .collect();
    for keep in [false, true] {
        let t = Instant::now();
        let mut batch: Vec<Event> = Vec::new();
        for r in &records {
            let event = adp_eventwire::decode(r).unwrap_or_else(|e| panic!("decode: {e}"));
            if keep {
                batch.push(event);
                if batch.len() >= 200_000 {
                    drop(std::mem::take(&mut batch));
                }
            }
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "decode (owned events, kept in batches: {keep}): {} records in {secs:.2} s = {:.0}/s",
            records.len(),
            records.len() as f64 / secs
        );
    }
    // What the ingest does: each record read in place into a batch's RowBinary.
    let t = Instant::now();
    let mut batch = Batch::default();
    for (i, r) in records.iter().enumerate() {
        batch.push_record((i % 3) as i32, i as i64, r).unwrap_or_else(|e| panic!("decode: {e}"));
        if batch.len() >= 200_000 {
            batch.clear();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "decode (in place into batch rows): {} records in {secs:.2} s = {:.0}/s",
        records.len(),
        records.len() as f64 / secs
    );
}
