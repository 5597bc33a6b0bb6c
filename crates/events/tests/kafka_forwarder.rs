//! The Kafka forwarder against a real broker (Tansu; `scripts/services.sh start` provides it and
//! the tansu binary): delivery exactly once in order per key, a broker outage (a broker of the
//! test's own, killed and started again), and a `kill -9` of the forwarding process.

mod support;

use adp_domain::events::{Event, EventRef};
use adp_domain::{EventSink, SinkError};
use adp_events::forwarder::{cursor_path, partition_for};
use adp_events::{ForwarderConfig, FsyncPolicy, KafkaForwarder, LocalLog, LogConfig};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{consume, event, first_ids_per_key, ids_per_key, Consumed};

fn open_log(dir: &Path, fsync: FsyncPolicy) -> LocalLog {
    let config = LogConfig { segment_bytes: 4 * 1024 * 1024, fsync, queue_capacity: 65_536 };
    LocalLog::open(dir, config, Arc::new(|_: &EventRef<'_>| {})).expect("open log")
}

/// Opens the log and collects every event it replays.
fn open_log_replaying(dir: &Path) -> (LocalLog, Vec<Event>) {
    let replayed = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&replayed);
    let config = LogConfig { segment_bytes: 4 * 1024 * 1024, fsync: FsyncPolicy::Always, queue_capacity: 65_536 };
    let log =
        LocalLog::open(dir, config, Arc::new(move |e: &EventRef<'_>| sink.lock().expect("lock").push(e.to_event())))
            .expect("open log");
    let events = replayed.lock().expect("lock").clone();
    (log, events)
}

fn forwarder_config(brokers: &str, prefix: &str) -> ForwarderConfig {
    ForwarderConfig {
        brokers: brokers.to_string(),
        topic_prefix: prefix.to_string(),
        partitions: 4,
        linger_ms: 5,
        client_settings: match std::env::var("ADP_TEST_KAFKA_DEBUG") {
            Ok(d) => vec![("debug".into(), d)],
            Err(_) => Vec::new(),
        },
        ..ForwarderConfig::default()
    }
}

/// Submits without ever waiting on the log: a full queue is retried after a short pause.
fn submit_all(log: &LocalLog, events: &[Event]) {
    for e in events {
        loop {
            match log.submit(e.clone()) {
                Ok(()) => break,
                Err(SinkError::Full) => std::thread::sleep(Duration::from_millis(1)),
                Err(other) => panic!("submit: {other}"),
            }
        }
    }
}

/// Every event exactly as written, each id once, every key on its partition
/// (`partition_for`) and its events in log order.
fn assert_exactly_once_in_order(consumed: &[Consumed], events: &[Event], partitions: usize) {
    let ids: HashSet<&str> = consumed.iter().map(|c| c.event.id.as_str()).collect();
    assert_eq!(consumed.len(), events.len(), "every event once");
    assert_eq!(ids.len(), events.len(), "no duplicates");
    let by_id: std::collections::HashMap<&str, &Event> = events.iter().map(|e| (e.id.as_str(), e)).collect();
    for c in consumed {
        assert_eq!(by_id.get(c.event.id.as_str()).copied(), Some(&c.event), "the value is the event, unchanged");
        assert_eq!(c.partition, partition_for(&c.key, partitions), "key {} on its partition", c.key);
    }
    let mut partition_of = std::collections::HashMap::new();
    for c in consumed {
        let p = *partition_of.entry(c.key.as_str()).or_insert(c.partition);
        assert_eq!(p, c.partition, "key {} is on one partition", c.key);
    }
    assert_eq!(first_ids_per_key(consumed), ids_per_key(events), "per key, the log's order");
}

/// The forwarder picks each event's partition itself (it packs events into messages); it must
/// pick what librdkafka's own partitioner picks for a keyed message, so that a topic keeps its
/// layout across the change. Keyed messages produced the plain way tell where librdkafka puts
/// them.
#[test]
fn partitions_are_where_librdkafka_puts_keyed_messages() {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    support::init_tracing();
    let brokers = support::kafka();
    let prefix = support::unique_prefix("partitioner");
    let topic = format!("{prefix}.events");
    // The forwarder makes the topic (7 partitions), then stops.
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open_log(dir.path(), FsyncPolicy::Never);
    let config = ForwarderConfig { partitions: 7, ..forwarder_config(&brokers, &prefix) };
    let forwarder = KafkaForwarder::start(log.watermark(), config).expect("start");
    let deadline = Instant::now() + Duration::from_secs(30);
    while support::partitions(&brokers, &topic) != 7 {
        assert!(Instant::now() < deadline, "topic not created");
        std::thread::sleep(Duration::from_millis(50));
    }
    forwarder.stop(Duration::from_secs(5));
    let producer: BaseProducer =
        ClientConfig::new().set("bootstrap.servers", &brokers).create().expect("a plain producer");
    let events: Vec<Event> = (0..400).map(|i| event("partitioner", i)).collect();
    for e in &events {
        let mut value = Vec::new();
        adp_events::forwarder::message_value(e, &mut value);
        producer.send(BaseRecord::to(&topic).key(adp_events::forwarder::message_key(e)).payload(&value)).expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    let consumed = consume(&brokers, &topic, events.len(), Duration::from_millis(300), Duration::from_secs(30));
    assert_eq!(consumed.len(), events.len());
    let used: HashSet<i32> = consumed.iter().map(|c| c.partition).collect();
    assert_eq!(used.len(), 7, "the keys spread over every partition");
    for c in &consumed {
        assert_eq!(partition_for(&c.key, 7), c.partition, "key {}", c.key);
    }
}

/// A producer queue with room for a few messages only: packs the producer has no room for wait
/// and go first next round. Nothing fails, nothing is sent twice, order per key holds.
#[test]
fn a_full_producer_queue_slows_forwarding_and_loses_or_doubles_nothing() {
    support::init_tracing();
    let brokers = support::kafka();
    let prefix = support::unique_prefix("queuefull");
    let topic = format!("{prefix}.events");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open_log(dir.path(), FsyncPolicy::Never);
    let mut config = forwarder_config(&brokers, &prefix);
    config.events_per_message = 8;
    config.client_settings.push(("queue.buffering.max.messages".into(), "3".into()));
    let forwarder = KafkaForwarder::start(log.watermark(), config).expect("start");
    let events: Vec<Event> = (0..3_000).map(|i| event("queuefull", i)).collect();
    submit_all(&log, &events);
    log.flush().expect("flush");
    assert!(forwarder.wait_forwarded(Duration::from_secs(60)), "not all forwarded: {:?}", forwarder.stats());
    let stats = forwarder.stop(Duration::from_secs(5));
    assert_eq!(stats.forwarded, 3_000, "{stats:?}");
    assert_eq!((stats.delivery_failures, stats.producer_rebuilds, stats.resent), (0, 0, 0), "{stats:?}");
    let consumed = consume(&brokers, &topic, events.len(), Duration::from_millis(300), Duration::from_secs(30));
    assert_exactly_once_in_order(&consumed, &events, 4);
}

/// Large events: a message stops short of `MESSAGE_BYTES` (256 KiB) rather than taking one
/// more, so no pack reaches the producer's 1 MB message limit and gets refused.
#[test]
fn large_events_go_in_messages_under_the_size_limit() {
    support::init_tracing();
    let brokers = support::kafka();
    let prefix = support::unique_prefix("large");
    let topic = format!("{prefix}.events");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open_log(dir.path(), FsyncPolicy::Never);
    let forwarder = KafkaForwarder::start(log.watermark(), forwarder_config(&brokers, &prefix)).expect("start");
    // ~100 KB each, all of one ad (one key, one partition): 40 of them would be 4 MB in one pack.
    let events: Vec<Event> = (0..40)
        .map(|i| Event { request_id: format!("{i:03}{}", "r".repeat(100_000)), ..event("large", 1) })
        .map(|e| Event { id: uuid::Uuid::now_v7().hyphenated().to_string(), ..e })
        .collect();
    submit_all(&log, &events);
    log.flush().expect("flush");
    assert!(forwarder.wait_forwarded(Duration::from_secs(60)), "not all forwarded: {:?}", forwarder.stats());
    let stats = forwarder.stop(Duration::from_secs(5));
    assert_eq!((stats.forwarded, stats.delivery_failures), (40, 0), "{stats:?}");
    let consumed = consume(&brokers, &topic, events.len(), Duration::from_millis(300), Duration::from_secs(30));
    assert_exactly_once_in_order(&consumed, &events, 4);
    let per_message = support::events_per_message(&consumed);
    assert!(per_message.values().all(|n| *n <= 2), "two ~100 KB events fit in 256 KiB, three do not: {per_message:?}");
    assert!(per_message.len() >= 20);
}

#[test]
fn events_arrive_exactly_once_and_in_order_per_key() {
    support::init_tracing();
    let started = Instant::now();
    let brokers = support::kafka();
    let prefix = support::unique_prefix("once");
    let topic = format!("{prefix}.events");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open_log(dir.path(), FsyncPolicy::EveryMillis(10));
    let forwarder = KafkaForwarder::start(log.watermark(), forwarder_config(&brokers, &prefix)).expect("start");

    let events: Vec<Event> = (0..20_000).map(|i| event("once", i)).collect();
    submit_all(&log, &events);
    log.flush().expect("flush");
    assert!(forwarder.wait_forwarded(Duration::from_secs(30)), "not all forwarded: {:?}", forwarder.stats());
    let stats = forwarder.stop(Duration::from_secs(5));
    assert_eq!(stats.forwarded, 20_000, "{stats:?}");
    assert_eq!((stats.queued, stats.in_flight, stats.dropped, stats.resent), (0, 0, 0, 0), "{stats:?}");
    assert!(stats.broker_up);
    assert!(cursor_path(dir.path(), &topic).exists(), "the cursor is written at stop");

    assert_eq!(support::partitions(&brokers, &topic), 4, "created with the configured partitions");
    let consumed = consume(&brokers, &topic, events.len(), Duration::from_millis(300), Duration::from_secs(30));
    assert_exactly_once_in_order(&consumed, &events, 4);
    // Submitted in bulk, the events went out many to a message, at most 64.
    let per_message = support::events_per_message(&consumed);
    assert!(per_message.len() * 8 <= events.len(), "{} messages for {} events", per_message.len(), events.len());
    assert!(per_message.values().all(|n| *n <= 64), "at most events_per_message in a message");

    // A clean restart resumes at the cursor: the new events only, nothing sent twice.
    let forwarder = KafkaForwarder::start(log.watermark(), forwarder_config(&brokers, &prefix)).expect("restart");
    let more: Vec<Event> = (20_000..21_000).map(|i| event("once", i)).collect();
    submit_all(&log, &more);
    log.flush().expect("flush");
    assert!(forwarder.wait_forwarded(Duration::from_secs(30)), "{:?}", forwarder.stats());
    assert_eq!(forwarder.stop(Duration::from_secs(5)).forwarded, 1_000);
    let all: Vec<Event> = events.into_iter().chain(more).collect();
    let consumed = consume(&brokers, &topic, all.len(), Duration::from_millis(300), Duration::from_secs(30));
    assert_exactly_once_in_order(&consumed, &all, 4);
    eprintln!("exactly-once test took {:?}", started.elapsed());
}

/// Waits until `check` holds for the forwarder's stats, at most `timeout`.
fn wait_for(
    forwarder: &KafkaForwarder,
    timeout: Duration,
    what: &str,
    check: impl Fn(&adp_events::ForwarderStats) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let stats = forwarder.stats();
        if check(&stats) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {stats:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_broker_outage_spills_to_the_log_and_replays_in_order_when_it_is_back() {
    support::init_tracing();
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = support::OwnBroker::start(dir.path());
    let brokers = broker.address();
    let prefix = support::unique_prefix("outage");
    let topic = format!("{prefix}.events");
    let log = open_log(dir.path(), FsyncPolicy::EveryMillis(10));
    let forwarder = KafkaForwarder::start(log.watermark(), forwarder_config(&brokers, &prefix)).expect("start");

    let before: Vec<Event> = (0..5_000).map(|i| event("outage", i)).collect();
    submit_all(&log, &before);
    log.flush().expect("flush");
    assert!(forwarder.wait_forwarded(Duration::from_secs(30)), "{:?}", forwarder.stats());
    // Tansu keeps its data in memory: read what it has before it goes.
    let consumed_before = consume(&brokers, &topic, before.len(), Duration::from_millis(200), Duration::from_secs(30));
    assert_exactly_once_in_order(&consumed_before, &before, 4);

    broker.kill();
    // Under load while the broker is away: every event is accepted at once and waits in the log.
    let during: Vec<Event> = (5_000..20_000).map(|i| event("outage", i)).collect();
    let submit_started = Instant::now();
    for chunk in during.chunks(1_000) {
        for e in chunk {
            log.submit(e.clone()).expect("accepted while the broker is away");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(submit_started.elapsed() < Duration::from_secs(5), "submitting never waits on the broker");
    log.flush().expect("flush");
    wait_for(&forwarder, Duration::from_secs(10), "the outage to be noticed", |s| !s.broker_up);
    let stats = forwarder.stats();
    assert_eq!(stats.forwarded, 5_000, "nothing confirmed while the broker is away: {stats:?}");
    assert_eq!(stats.queued, 15_000, "{stats:?}");
    assert_eq!(stats.spilled, 15_000, "{stats:?}");

    broker.restart();
    assert!(forwarder.wait_forwarded(Duration::from_secs(40)), "not replayed: {:?}", forwarder.stats());
    let stats = forwarder.stop(Duration::from_secs(5));
    assert!(stats.broker_up, "{stats:?}");
    assert_eq!((stats.queued, stats.dropped, stats.spilled), (0, 0, 15_000), "{stats:?}");
    assert!(stats.replayed >= 15_000, "{stats:?}");

    // The broker came back empty: it holds what was sent after it returned.
    let consumed_after = consume(&brokers, &topic, during.len(), Duration::from_millis(500), Duration::from_secs(30));
    let after_ids: HashSet<&str> = consumed_after.iter().map(|c| c.event.id.as_str()).collect();
    let missing = during.iter().filter(|e| !after_ids.contains(e.id.as_str())).count();
    assert_eq!(missing, 0, "every event of the outage reached the broker");
    let duplicates = consumed_after.len() - after_ids.len();
    // Known re-sends, and at most the few probes in flight when a producer was rebuilt.
    assert!(duplicates as u64 <= stats.resent + 64 * stats.producer_rebuilds, "{duplicates} duplicates: {stats:?}");
    let replayed: Vec<Consumed> =
        consumed_after.into_iter().filter(|c| during.iter().any(|e| e.id == c.event.id)).collect();
    assert_eq!(first_ids_per_key(&replayed), ids_per_key(&during), "replayed in log order per key");
    eprintln!("outage test took {:?}; {stats:?}", started.elapsed());
}

const CHILD_DIR: &str = "ADP_FORWARDER_CRASH_CHILD_DIR";

/// The process the crash test kills: writes events to the log with `fsync = always` (an event is
/// acknowledged once `flush` returns) and forwards them, printing `acked N forwarded M` until it
/// is killed. Does nothing unless started by `a_killed_forwarder_...`.
#[test]
fn crash_child_process() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let brokers = std::env::var("ADP_FORWARDER_CRASH_BROKERS").expect("brokers");
    let prefix = std::env::var("ADP_FORWARDER_CRASH_PREFIX").expect("prefix");
    let log = open_log(Path::new(&dir), FsyncPolicy::Always);
    let forwarder = KafkaForwarder::start(log.watermark(), forwarder_config(&brokers, &prefix)).expect("start");
    let mut out = std::io::stdout().lock();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 0;
    while Instant::now() < deadline {
        let chunk: Vec<Event> = (i..i + 200).map(|j| event("crash", j)).collect();
        submit_all(&log, &chunk);
        log.flush().expect("flush");
        i += 200;
        writeln!(out, "acked {i} forwarded {}", forwarder.stats().forwarded).expect("stdout");
        out.flush().expect("stdout");
    }
}

#[test]
fn a_killed_forwarder_forwards_every_acknowledged_event_after_restart() {
    support::init_tracing();
    let started = Instant::now();
    let brokers = support::kafka();
    let prefix = support::unique_prefix("crash");
    let topic = format!("{prefix}.events");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "crash_child_process", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .env("ADP_FORWARDER_CRASH_BROKERS", &brokers)
        .env("ADP_FORWARDER_CRASH_PREFIX", &prefix)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the child");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut acked = 0u64;
    // Kill it mid-stream: events acknowledged, some forwarded, more on the way.
    for line in lines.by_ref() {
        let line = line.expect("line");
        let mut words = line.split_whitespace();
        if words.next() != Some("acked") {
            continue;
        }
        acked = words.next().and_then(|n| n.parse().ok()).expect("acked count");
        let forwarded: u64 = words.nth(1).and_then(|n| n.parse().ok()).expect("forwarded count");
        // ... and only once the forwarder has written its cursor at least once (every 200 ms),
        // so that the restart has a cursor to resume from.
        let cursor_written = std::fs::read_dir(dir.path())
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".cursor")))
            .unwrap_or(false);
        if acked >= 20_000 && forwarded >= 2_000 && cursor_written {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(40), "the child is too slow: {line}");
    }
    child.kill().expect("kill -9 the child");
    child.wait().expect("reap the child");
    // Lines printed before the kill may still be in the pipe.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(n) = line.strip_prefix("acked ").and_then(|r| r.split_whitespace().next()?.parse().ok()) {
            acked = n;
        }
    }
    assert!(acked >= 20_000);

    // Restart: the log replays everything it holds, the forwarder resumes at its cursor.
    let (log, in_log) = open_log_replaying(dir.path());
    assert!(in_log.len() as u64 >= acked, "the log holds every acknowledged event");
    let forwarder = KafkaForwarder::start(log.watermark(), forwarder_config(&brokers, &prefix)).expect("restart");
    let backlog = forwarder.stats().queued;
    assert!(backlog > 0 && backlog < in_log.len() as u64, "resumes at the cursor, not the start: {backlog}");
    assert!(forwarder.wait_forwarded(Duration::from_secs(30)), "{:?}", forwarder.stats());
    let stats = forwarder.stop(Duration::from_secs(5));
    assert_eq!(stats.replayed, backlog, "what was behind the cursor is replayed: {stats:?}");

    let consumed = consume(&brokers, &topic, in_log.len(), Duration::from_millis(500), Duration::from_secs(30));
    let ids: HashSet<&str> = consumed.iter().map(|c| c.event.id.as_str()).collect();
    let missing = in_log.iter().filter(|e| !ids.contains(e.id.as_str())).count();
    assert_eq!(missing, 0, "every event in the log reached the broker");
    assert_eq!(ids.len(), in_log.len(), "and nothing else");
    let duplicates = consumed.len() - ids.len();
    // Only events confirmed after the last cursor write (at most `cursor_interval` of them) come twice.
    assert!(duplicates as u64 <= backlog, "{duplicates} duplicates");
    assert_eq!(first_ids_per_key(&consumed), ids_per_key(&in_log), "log order per key, duplicates aside");
    eprintln!(
        "crash test took {:?}: {} acked, {} in the log, {backlog} replayed after the restart, {duplicates} duplicates",
        started.elapsed(),
        acked,
        in_log.len()
    );
}
