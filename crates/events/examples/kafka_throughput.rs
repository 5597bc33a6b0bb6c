//! Producer throughput against a real Kafka-API broker, in events per second.
//!
//! ```text
//! cargo run --release -p adp-events --example kafka_throughput -- [BROKERS] [EVENTS] [producer|forwarder]
//! taskset -c 1 target/release/examples/kafka_throughput 127.0.0.1:19092 1000000   # one core
//! ```
//!
//! BROKERS defaults to ADP_TEST_KAFKA or the address in /var/tmp/adplatform-services/env
//! (`scripts/services.sh start`). Two measurements, each into a fresh topic:
//!
//! * `producer`: events already in memory → adp-eventwire records packed by partition as the
//!   forwarder packs them (`ADP_BENCH_EVENTS_PER_MESSAGE`, default 64; 1 = one keyed message
//!   per event) → the idempotent producer with the forwarder's settings (lz4, acks=all,
//!   linger 10 ms) → every delivery confirmed.
//! * `forwarder`: the whole path as deployed — events already committed to a local log, a
//!   `KafkaForwarder` reading them (binary records), encoding and producing them (packed by
//!   partition, `events_per_message` to a message; `ADP_BENCH_EVENTS_PER_MESSAGE=1` for one
//!   each), until the broker confirmed the last one.

use adp_domain::events::{Event, EventKind, EventRef};
use adp_domain::EventSink;
use adp_events::forwarder::{message_key, message_value, partition_for};
use adp_events::{ForwarderConfig, FsyncPolicy, KafkaForwarder, LocalLog, LogConfig};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The adplatform binary's allocator, so that the numbers are the deployed ones.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn brokers_from_env() -> Option<String> {
    if let Ok(b) = std::env::var("ADP_TEST_KAFKA") {
        return Some(b);
    }
    let text = std::fs::read_to_string("/var/tmp/adplatform-services/env").ok()?;
    text.lines().find_map(|l| l.strip_prefix("ADP_TEST_KAFKA=")).map(|s| s.trim().to_string())
}

fn event(i: u64) -> Event {
    Event {
        id: uuid::Uuid::now_v7().hyphenated().to_string(),
        kind: if matches!(i % 3, 0) { EventKind::Decision } else { EventKind::Impression },
        event_time_ms: 1_772_323_200_000 + i as i64,
        receive_time_ms: 1_772_323_200_002 + i as i64,
        request_id: format!("req-{}", i / 3),
        decision_id: format!("dec-{}", i / 3),
        advertiser_id: "shoes".into(),
        campaign_id: "spring".into(),
        line_item_id: format!("li-{}", i % 7),
        creative_id: "mrec-300x250".into(),
        publisher_id: "demo-publisher".into(),
        site_id: "demo-site".into(),
        placement_id: "demo-mrec".into(),
        deal_id: None,
        user_key: i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        country: Some("DE".into()),
        device_type: None,
        price_micros: 2_500_000,
        cost_micros: 2_500,
        currency: "EUR".into(),
        reason: None,
        stands_for_request: false,
    }
}

#[derive(Default)]
struct Counting {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    /// The events in the message.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, events: usize) {
        match result {
            Ok(_) => self.ok.fetch_add(events as u64, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(events as u64, Ordering::Relaxed),
        };
    }
}

/// Events per message: `ADP_BENCH_EVENTS_PER_MESSAGE`, else the forwarder's default.
fn events_per_message() -> usize {
    std::env::var("ADP_BENCH_EVENTS_PER_MESSAGE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ForwarderConfig::default().events_per_message)
        .max(1)
}

fn report(what: &str, n: u64, bytes: u64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{what:<10} {n} events in {secs:.3} s: {:.0} events/s, {:.1} MB/s of values",
        n as f64 / secs,
        bytes as f64 / secs / 1e6
    );
}

fn producer_only(brokers: &str, events: &[Event]) -> Result<(), Box<dyn std::error::Error>> {
    let topic = format!("bench-{}.events", uuid::Uuid::now_v7().simple());
    let config = ForwarderConfig { brokers: brokers.into(), ..ForwarderConfig::default() };
    create_topic(brokers, &topic, config.partitions)?;
    let producer: BaseProducer<Counting> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", config.linger_ms.to_string())
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "201000")
        .set("message.timeout.ms", "0")
        .create_with_context(Counting::default())?;
    // As the forwarder sends them: grouped by partition, up to `events_per_message` records to a
    // message (one: a keyed message each, placed by librdkafka), every group sent after a
    // round of 8192 events.
    let per_message = events_per_message();
    let partitions = config.partitions as usize;
    let mut packs: Vec<(Vec<u8>, usize)> = vec![(Vec::with_capacity(16 * 1024), 0); partitions];
    let mut value = Vec::with_capacity(512);
    let mut bytes = 0u64;
    let send = |partition: usize, value: &[u8], key: Option<&str>, n: usize| {
        let mut record = BaseRecord::<str, [u8], usize>::with_opaque_to(&topic, n).payload(value);
        record = match key {
            Some(key) => record.key(key),
            None => record.partition(partition as i32),
        };
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
            }
        }
        producer.poll(Duration::ZERO);
    };
    let started = Instant::now();
    for round in events.chunks(8192) {
        for e in round {
            if per_message == 1 {
                message_value(e, &mut value);
                bytes += value.len() as u64;
                send(0, &value, Some(message_key(e)), 1);
                continue;
            }
            let p = partition_for(message_key(e), partitions) as usize;
            let pack = &mut packs[p];
            let before = pack.0.len();
            adp_eventwire::encode(e, &mut pack.0);
            bytes += (pack.0.len() - before) as u64;
            pack.1 += 1;
            if pack.1 >= per_message {
                send(p, &pack.0, None, pack.1);
                pack.0.clear();
                pack.1 = 0;
            }
        }
        for (p, pack) in packs.iter_mut().enumerate() {
            if pack.1 > 0 {
                send(p, &pack.0, None, pack.1);
                pack.0.clear();
                pack.1 = 0;
            }
        }
    }
    producer.flush(Duration::from_secs(60))?;
    let elapsed = started.elapsed();
    let ctx = producer.context();
    assert_eq!(ctx.ok.load(Ordering::Relaxed), events.len() as u64, "every event confirmed");
    assert_eq!(ctx.failed.load(Ordering::Relaxed), 0);
    report("producer", events.len() as u64, bytes, elapsed);
    Ok(())
}

fn create_topic(brokers: &str, topic: &str, partitions: i32) -> Result<(), Box<dyn std::error::Error>> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in runtime.block_on(admin.create_topics([&new], &options))? {
        result.map_err(|(t, e)| format!("cannot create {t}: {e}"))?;
    }
    Ok(())
}

fn forwarder(brokers: &str, events: &[Event]) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let log_config = LogConfig { fsync: FsyncPolicy::Never, ..LogConfig::default() };
    let log = LocalLog::open(dir.path(), log_config, Arc::new(|_: &EventRef<'_>| {}))?;
    for e in events {
        while log.submit(e.clone()).is_err() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    log.flush()?;
    eprintln!("log written; forwarding");
    let mut bytes = 0u64;
    let mut value = Vec::new();
    for e in events {
        message_value(e, &mut value);
        bytes += value.len() as u64;
    }
    let prefix = format!("bench-{}", uuid::Uuid::now_v7().simple());
    let started = Instant::now();
    let f = KafkaForwarder::start(
        log.watermark(),
        ForwarderConfig {
            brokers: brokers.into(),
            topic_prefix: prefix,
            // ADP_BENCH_KAFKA="key=value,key=value": extra librdkafka settings to try.
            client_settings: std::env::var("ADP_BENCH_KAFKA")
                .unwrap_or_default()
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            // ADP_BENCH_EVENTS_PER_MESSAGE=1: one event per message, as before session 12.
            events_per_message: std::env::var("ADP_BENCH_EVENTS_PER_MESSAGE")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(ForwarderConfig::default().events_per_message),
            ..ForwarderConfig::default()
        },
    )?;
    if !f.wait_forwarded(Duration::from_secs(120)) {
        return Err(format!("not all forwarded: {:?}", f.stats()).into());
    }
    let elapsed = started.elapsed();
    let stats = f.stop(Duration::from_secs(5));
    assert_eq!(stats.forwarded, events.len() as u64);
    report("forwarder", events.len() as u64, bytes, elapsed);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().or_else(brokers_from_env).ok_or("give BROKERS or run scripts/services.sh start")?;
    let n: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1_000_000);
    let which = args.next().unwrap_or_else(|| "both".into());
    let events: Vec<Event> = (0..n).map(event).collect();
    if which != "forwarder" {
        producer_only(&brokers, &events)?;
    }
    if which != "producer" {
        forwarder(&brokers, &events)?;
    }
    Ok(())
}
