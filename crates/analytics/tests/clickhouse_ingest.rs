//! Kafka → ingest → ClickHouse 18.16 with real servers (Tansu and Debian's clickhouse-server,
//! started by the testkit on free ports): exact counts per dimension with duplicated events, and
//! a ClickHouse crash in the middle of the ingest (no loss, no duplicates, offsets still while
//! it is down), a resume offset inside a produce batch, and a hole in the offsets that the
//! offset-gap guard re-reads and then accepts.

use adp_analytics::report::{Dimension, Metric, ReportFilters, ReportQuery, Rollup};
use adp_analytics::testkit::{produce, produce_packed, rows_of, sample_events, ClickHouseServer, TansuBroker};
use adp_analytics::{ClickHouse, ClickHouseSettings, IngestCounters, IngestSettings, IngestSnapshot, MigrateSettings};
use adp_domain::events::Event;
use chrono::DateTime;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::TopicPartitionList;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOPIC: &str = "adpt.events";
const PARTITIONS: u32 = 3;

fn settings(ch: &ClickHouseServer, broker: &TansuBroker, database: &str) -> IngestSettings {
    IngestSettings {
        clickhouse: ClickHouseSettings { url: ch.url(), database: database.into(), ..ClickHouseSettings::default() },
        brokers: broker.brokers(),
        topic: TOPIC.into(),
        group_id: format!("{database}-ingest"),
        batch_rows: 5_000,
        batch_ms: 200,
        ttl_days: 0,
        client_settings: Vec::new(),
        parallel_inserts: 2,
        compress_inserts: true,
        gap_wait_ms: adp_analytics::gaps::GAP_WAIT_MS,
    }
}

/// An ingest running in the test's runtime until [`Ingest::stop`].
struct Ingest {
    counters: Arc<IngestCounters>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<IngestSnapshot, adp_analytics::ingest::IngestError>>,
}

impl Ingest {
    fn start(settings: &IngestSettings) -> Ingest {
        let counters = Arc::new(IngestCounters::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(adp_analytics::run_ingest_with(settings.clone(), Arc::clone(&counters), async {
            let _ = stopped.await;
        }));
        Ingest { counters, stop, task }
    }

    /// Stops it and returns its final counters.
    async fn stop(self) -> IngestSnapshot {
        let _ = self.stop.send(());
        self.task.await.expect("join").expect("ingest")
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("adp_analytics=info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

async fn wait_until(what: &str, timeout: Duration, counters: &IngestCounters, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {:?}", counters.snapshot());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn queries() -> Vec<ReportQuery> {
    let base = ReportQuery {
        from: DateTime::from_timestamp(1_704_067_200, 0).expect("t"),
        to: DateTime::from_timestamp(1_705_000_000, 0).expect("t"),
        time_zone: chrono_tz::UTC,
        dimensions: vec![],
        metrics: Metric::ALL.to_vec(),
        filters: ReportFilters::default(),
    };
    let mut out = vec![base.clone()];
    for d in Dimension::ALL {
        out.push(ReportQuery { dimensions: vec![d], ..base.clone() });
    }
    out.push(ReportQuery {
        time_zone: chrono_tz::America::Los_Angeles,
        dimensions: vec![Dimension::Day, Dimension::Advertiser, Dimension::Campaign, Dimension::LineItem],
        ..base.clone()
    });
    out.push(ReportQuery {
        dimensions: vec![Dimension::Hour, Dimension::Placement, Dimension::Country, Dimension::DeviceType],
        filters: ReportFilters { advertiser_id: vec!["adv-1".into()], ..ReportFilters::default() },
        ..base
    });
    out
}

/// Every report equals the in-process rollup of the unique events, and `events` holds each id
/// exactly once.
async fn assert_exact(ch: &ClickHouse, unique: &[Event]) {
    let mut oracle = Rollup::new();
    unique.iter().for_each(|e| oracle.add(e));
    for q in queries() {
        let got = adp_analytics::query(ch, &q).await.expect("report");
        let want = oracle.query(&q).expect("oracle");
        assert_eq!(got.len(), want.len(), "rows of {:?}", q.dimensions);
        assert_eq!(got, want, "report by {:?} differs", q.dimensions);
    }
    let t = ch.table("events");
    let rows = ch.fetch_tsv(&format!("SELECT count(), uniqExact(event_id) FROM {t}")).await.expect("count");
    // A decision that stands for its request is stored as two rows, the request's and its own.
    let n = rows_of(unique).to_string();
    assert_eq!(rows[0], vec![n.clone(), n], "raw rows = unique events");
    let total = adp_analytics::query(
        ch,
        &ReportQuery { dimensions: vec![], metrics: vec![Metric::Impressions], ..queries()[0].clone() },
    )
    .await
    .expect("total");
    let impressions = unique
        .iter()
        .filter(|e| {
            matches!(e.kind, adp_domain::events::EventKind::Impression | adp_domain::events::EventKind::Billing)
        })
        .count() as i64;
    assert_eq!(total[0].metric(Metric::Impressions), adp_analytics::MetricValue::Count(impressions));
}

/// Offsets committed to Kafka for the ingest's group, per partition (-1 when none).
fn committed(broker: &TansuBroker, group: &str) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS as i32 {
        tpl.add_partition(TOPIC, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(5)).expect("committed offsets");
    (0..PARTITIONS as i32)
        .map(|p| got.find_partition(TOPIC, p).and_then(|e| e.offset().to_raw()).unwrap_or(-1))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_counts_per_dimension_with_duplicates() {
    let started = Instant::now();
    init_logging();
    let ch_server = ClickHouseServer::start();
    let broker = TansuBroker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let settings = settings(&ch_server, &broker, "adp_exact");
    let ch = ClickHouse::connect(&settings.clickhouse).expect("connect");
    let first = adp_analytics::migrate(&ch, &MigrateSettings { ttl_days: 0 }).await.expect("migrate");
    assert_eq!(first.applied, vec![1]);
    let again = adp_analytics::migrate(&ch, &MigrateSettings { ttl_days: 0 }).await.expect("migrate again");
    assert!(again.applied.is_empty(), "migrations are recorded and not applied twice");

    // 2024-01-01 on, one event every 13 s (about 3.6 days), then every 7th event again, as a
    // crashed forwarder would re-send it (new offsets, same id).
    let unique = sample_events(24_000, 1_704_067_200_000, 13_000, 42);
    let copies: Vec<Event> = unique.iter().step_by(7).cloned().collect();
    // Messages of one event (keyed, placed by librdkafka: older forwarders) and packed ones
    // (placed by `partition_for`: the forwarder now), mixed: the copies of an event must meet
    // their first on one partition whichever way either was sent.
    produce(&broker.brokers(), TOPIC, &unique[..12_000]);
    let packed = produce_packed(&broker.brokers(), TOPIC, &copies[..copies.len() / 2], PARTITIONS as usize, 64)
        + produce_packed(&broker.brokers(), TOPIC, &unique[12_000..], PARTITIONS as usize, 50);
    let packed_events = (copies.len() / 2 + 12_000) as u64;
    assert!(packed * 40 < packed_events, "{packed} messages for {packed_events} events");
    produce(&broker.brokers(), TOPIC, &copies[copies.len() / 2..]);
    let messages = 12_000 + packed + (copies.len() - copies.len() / 2) as u64;
    let rows = rows_of(&unique) + rows_of(&copies);

    let ingest = Ingest::start(&settings);
    let counters = Arc::clone(&ingest.counters);
    wait_until("every message ingested", Duration::from_secs(60), &counters, || {
        counters.consumed.load(Ordering::Relaxed) == messages && counters.lag.load(Ordering::Relaxed) == 0
    })
    .await;
    wait_until("the last batch stored", Duration::from_secs(30), &counters, || {
        let s = counters.snapshot();
        s.inserted + s.duplicates_skipped == rows
    })
    .await;
    let snapshot = ingest.stop().await;
    assert_eq!(snapshot.inserted, rows_of(&unique));
    assert_eq!(snapshot.duplicates_skipped, rows_of(&copies));
    assert_eq!(snapshot.undecodable, 0);
    assert_exact(&ch, &unique).await;

    // Recorded offsets are the end of each partition; Kafka has them too.
    let sink = adp_analytics::sink::EventsSink::new(ch.clone(), TOPIC);
    let offsets = sink.load_offsets().await.expect("offsets");
    assert_eq!(offsets.values().sum::<i64>(), messages as i64);
    let kafka: i64 = committed(&broker, &settings.group_id).iter().sum();
    assert_eq!(kafka, messages as i64, "offsets committed to Kafka after the inserts");

    // A restart reads nothing again and the counts stay.
    let ingest = Ingest::start(&settings);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let snapshot = ingest.stop().await;
    assert_eq!(snapshot.consumed, 0, "resumes after the recorded offsets");
    assert_exact(&ch, &unique).await;
    println!("exact_counts_per_dimension_with_duplicates: {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_crash_during_ingest_loses_and_doubles_nothing() {
    let started = Instant::now();
    init_logging();
    let mut ch_server = ClickHouseServer::start();
    let broker = TansuBroker::start();
    broker.create_topic(TOPIC, PARTITIONS);
    let settings = settings(&ch_server, &broker, "adp_crash");
    let ch = ClickHouse::connect(&settings.clickhouse).expect("connect");
    adp_analytics::migrate(&ch, &MigrateSettings { ttl_days: 0 }).await.expect("migrate");

    let unique = sample_events(60_000, 1_704_067_200_000, 5_000, 9);
    produce(&broker.brokers(), TOPIC, &unique[..30_000]);

    let ingest = Ingest::start(&settings);
    let counters = Arc::clone(&ingest.counters);
    wait_until("a few batches stored", Duration::from_secs(60), &counters, || {
        counters.batches.load(Ordering::Relaxed) >= 2
    })
    .await;
    // Crash ClickHouse (SIGKILL) while batches are flowing.
    ch_server.kill();
    let batches_at_crash = counters.batches.load(Ordering::Relaxed);
    let kafka_at_crash = committed(&broker, &settings.group_id);
    produce(&broker.brokers(), TOPIC, &unique[30_000..]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = counters.snapshot();
    assert_eq!(s.batches, batches_at_crash, "no batch completes while ClickHouse is down");
    assert!(s.insert_errors > 0, "the inserts failed and are being retried");
    assert_eq!(committed(&broker, &settings.group_id), kafka_at_crash, "offsets do not move while ClickHouse is down");
    ch_server.restart();

    wait_until("every event stored after the restart", Duration::from_secs(60), &counters, || {
        let s = counters.snapshot();
        s.consumed == unique.len() as u64 && s.lag == 0 && s.inserted + s.duplicates_skipped == rows_of(&unique)
    })
    .await;
    let snapshot = ingest.stop().await;
    println!("after the crash: {snapshot:?}");
    assert_exact(&ch, &unique).await;
    println!("clickhouse_crash_during_ingest_loses_and_doubles_nothing: {:.1} s", started.elapsed().as_secs_f64());
}

/// The ingest resumes at an offset inside a produce batch, as it does after a restart that
/// recorded a batch cut in the middle of one. Tansu's dynostore before 0.7 selected batches by
/// base offset alone and answered such a fetch with the next batch; the offset-gap guard would
/// re-read from before the hole then. The broker the testkit runs serves the batch from the
/// offset (no re-read happens); either way nothing is lost and nothing is counted as a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_offset_inside_a_produce_batch_loses_nothing() {
    init_logging();
    let ch_server = ClickHouseServer::start();
    let broker = TansuBroker::start();
    broker.create_topic(TOPIC, 1);
    let settings = settings(&ch_server, &broker, "adp_gap");
    let ch = ClickHouse::connect(&settings.clickhouse).expect("connect");
    adp_analytics::migrate(&ch, &MigrateSettings { ttl_days: 0 }).await.expect("migrate");

    // Two produce batches of 40 (each `produce` flushes): offsets 0–39 and 40–79.
    let events = sample_events(80, 1_704_067_200_000, 1_000, 23);
    produce(&broker.brokers(), TOPIC, &events[..40]);
    produce(&broker.brokers(), TOPIC, &events[40..]);
    // Offsets 0–19 are recorded as stored: the ingest resumes at 20, inside the first batch.
    let mut sink = adp_analytics::sink::EventsSink::new(ch.clone(), TOPIC);
    let mut resume = adp_analytics::sink::Batch::default();
    resume.next_offsets.insert(0, 20);
    sink.record_offsets(&resume).await.expect("record the resume offset");

    let ingest = Ingest::start(&settings);
    let counters = Arc::clone(&ingest.counters);
    wait_until("offsets 20–79 stored", Duration::from_secs(60), &counters, || {
        let s = counters.snapshot();
        s.inserted + s.duplicates_skipped >= rows_of(&events[20..]) && s.lag == 0
    })
    .await;
    let snapshot = ingest.stop().await;
    println!("resumed inside a batch: {snapshot:?}");
    assert_eq!(snapshot.consumed, 60, "offsets 20–79, each once");
    assert_eq!(snapshot.inserted, rows_of(&events[20..]));
    assert_eq!(snapshot.offset_gaps, 0, "no hole accepted");
    assert_exact(&ch, &events[20..]).await;
    let offsets = sink.load_offsets().await.expect("offsets");
    assert_eq!(offsets.get(&0), Some(&80));
}

/// A real gap in a partition's offsets, as a broker can have: a transaction's commit marker
/// takes an offset the consumer never sees. The guard holds the partition, seeks it back and
/// re-reads it (real librdkafka pause, seek and resume), skips what the re-reads deliver again,
/// then accepts the hole once `gap_wait_ms` has passed and counts it. Every event is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_that_stays_is_re_read_then_accepted_and_counted() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    init_logging();
    let ch_server = ClickHouseServer::start();
    let broker = TansuBroker::start();
    broker.create_topic(TOPIC, 1);
    let mut settings = settings(&ch_server, &broker, "adp_hole");
    settings.gap_wait_ms = 600;
    let ch = ClickHouse::connect(&settings.clickhouse).expect("connect");
    adp_analytics::migrate(&ch, &MigrateSettings { ttl_days: 0 }).await.expect("migrate");

    let events = sample_events(60, 1_704_067_200_000, 1_000, 29);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .set("transactional.id", "adp-hole-test")
        .create()
        .expect("producer");
    producer.init_transactions(Duration::from_secs(30)).expect("init transactions");
    let mut value = Vec::new();
    // Two transactions: offsets 0–29, the first commit marker at 30, then 31–60.
    for half in events.chunks(30) {
        producer.begin_transaction().expect("begin");
        for e in half {
            value.clear();
            adp_eventwire::encode(e, &mut value);
            producer.send(BaseRecord::<str, [u8]>::to(TOPIC).key(e.id.as_str()).payload(&value)).expect("send");
        }
        producer.commit_transaction(Duration::from_secs(30)).expect("commit");
    }

    let ingest = Ingest::start(&settings);
    let counters = Arc::clone(&ingest.counters);
    wait_until("every event stored", Duration::from_secs(60), &counters, || {
        counters.snapshot().inserted == rows_of(&events)
    })
    .await;
    let snapshot = ingest.stop().await;
    println!("a hole that stays: {snapshot:?}");
    assert_eq!(snapshot.offset_gaps, 1, "the marker's offset, accepted once");
    assert!(snapshot.gap_retries >= 2, "re-read from the hole, then from before it: {snapshot:?}");
    assert_eq!(snapshot.consumed, 60, "re-delivered offsets are skipped, not taken twice");
    assert_exact(&ch, &events).await;
}

/// Two INSERTs of one batch, the server refusing one (read-only mode, through the sink's testkit
/// hook) while the other goes in: the write fails, the retry finds the stored half as its own and
/// inserts the rest. Counts exact, nothing reported as a duplicate, raw rows = unique events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_concurrent_inserts_refused_then_retried_stays_exact() {
    init_logging();
    let ch_server = ClickHouseServer::start();
    let settings =
        ClickHouseSettings { url: ch_server.url(), database: "adp_partial".into(), ..ClickHouseSettings::default() };
    let ch = ClickHouse::connect(&settings).expect("connect");
    adp_analytics::migrate(&ch, &MigrateSettings { ttl_days: 0 }).await.expect("migrate");

    let unique = sample_events(6_000, 1_704_067_200_000, 5_000, 17);
    // Every event twice in the batch (a producer retry: same partition, later offset): kept once.
    let n = unique.len();
    let incoming: Vec<adp_analytics::sink::Incoming> = (0..2 * n)
        .map(|i| adp_analytics::sink::Incoming {
            partition: (i % n % 3) as i32,
            offset: i as i64,
            event: unique[i % n].clone(),
        })
        .collect();
    let batch = adp_analytics::sink::Batch::from_incoming(&incoming);
    let mut sink = adp_analytics::sink::EventsSink::new(ch.clone(), TOPIC).with_parallel_inserts(2);

    sink.fail_insert_part_once(1);
    let err = sink.write(&batch).await.expect_err("the server refuses the second INSERT");
    println!("refused as expected: {err}");
    let t = ch.table("events");
    let stored = ch.fetch_tsv(&format!("SELECT count() FROM {t}")).await.expect("count");
    let half: u64 = stored[0][0].parse().expect("number");
    assert!(half > 0 && half < rows_of(&unique), "one INSERT went in, the other did not: {half} rows");

    let outcome = sink.write(&batch).await.expect("the retry goes in");
    assert_eq!(outcome.inserted, rows_of(&unique), "rows of the failed attempt count as inserted: {outcome:?}");
    assert_eq!(outcome.duplicates, rows_of(&unique), "only the in-batch copies are duplicates: {outcome:?}");
    assert_eq!(outcome.rejected, 0);
    assert_exact(&ch, &unique).await;
}
