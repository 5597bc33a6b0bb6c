//! Test support for the Kafka forwarder: the services `scripts/services.sh start` runs, brokers of
//! a test's own, a consumer that reads a whole topic without joining a group, and events.
#![allow(dead_code)]

use adp_domain::events::{Event, EventKind};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEFAULT_ENV_FILE: &str = "/var/tmp/adplatform-services/env";

/// A value from the environment, else from the services env file that `scripts/services.sh start`
/// writes. Missing is a failure, not a skip: the suite runs through scripts/test.sh, which starts
/// the services.
pub fn service(var: &str) -> String {
    if let Ok(v) = std::env::var(var) {
        return v;
    }
    let file = std::env::var("ADP_SERVICES_ENV").unwrap_or_else(|_| DEFAULT_ENV_FILE.to_string());
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!("{var} is not set and the services env file {file} cannot be read ({e}): run `scripts/services.sh start` first (scripts/test.sh does)")
    });
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| *k == var)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| panic!("{file} has no {var}: run `scripts/services.sh start` again"))
}

/// Test output shows the forwarder's log lines (RUST_LOG=adp_events=debug for more).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("adp_events=info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// The shared broker of the test services.
pub fn kafka() -> String {
    service("ADP_TEST_KAFKA")
}

/// A topic prefix no other test run uses.
pub fn unique_prefix(name: &str) -> String {
    format!("t-{name}-{}", uuid::Uuid::now_v7().simple())
}

/// A Tansu broker of a test's own, on a free port, so that killing it disturbs no other test.
/// Memory storage: a restart starts empty.
pub struct OwnBroker {
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl OwnBroker {
    pub fn start(log_dir: &Path) -> OwnBroker {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let mut broker = OwnBroker { port, child: None, log: log_dir.join(format!("tansu-{port}.log")) };
        broker.restart();
        broker
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker (SIGKILL) and waits until its port is closed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill tansu");
            child.wait().expect("reap tansu");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the broker (again) on the same port and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let bin = service("ADP_TEST_TANSU_BIN");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("broker log");
        let child = Command::new(&bin)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tansu ({bin}): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start on port {}; see {}", self.port, self.log.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One event read back from the topic: its message's partition and offset, its place in the
/// message, and its key ([`adp_events::forwarder::message_key`]; messages carry none).
#[derive(Debug, Clone)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub index: usize,
    pub key: String,
    pub event: Event,
}

/// The partition count of `topic`.
pub fn partitions(brokers: &str, topic: &str) -> usize {
    let consumer = consumer(brokers);
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("topic metadata");
    metadata.topics().iter().find(|t| t.name() == topic).map_or(0, |t| t.partitions().len())
}

fn consumer(brokers: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "adp-forwarder-tests")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer")
}

/// Reads every partition of `topic` from the beginning (assigned, no group join) until `expected`
/// events arrived and then `settle` passed without more, or `timeout`. Each message is an
/// adp-eventwire batch of one or more records; events come per partition in offset order, and
/// in order within a message.
pub fn consume(brokers: &str, topic: &str, expected: usize, settle: Duration, timeout: Duration) -> Vec<Consumed> {
    let consumer = consumer(brokers);
    let n = partitions(brokers, topic);
    assert!(n > 0, "topic {topic} has no partitions");
    let mut assignment = TopicPartitionList::new();
    for p in 0..n as i32 {
        assignment.add_partition_offset(topic, p, Offset::Beginning).expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(expected);
    let mut last = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                let events = adp_eventwire::decode_batch(m.payload().expect("value")).expect("eventwire records");
                assert!(!events.is_empty(), "a message holds at least one event");
                for (index, event) in events.into_iter().enumerate() {
                    let key = adp_events::forwarder::message_key(&event).to_string();
                    out.push(Consumed { partition: m.partition(), offset: m.offset(), index, key, event });
                }
                last = Instant::now();
            }
            Some(Err(e)) => panic!("consume {topic}: {e}"),
            None => {}
        }
        let now = Instant::now();
        if (out.len() >= expected && now - last >= settle) || now >= deadline {
            return out;
        }
    }
}

/// Events per message, by (partition, offset).
pub fn events_per_message(consumed: &[Consumed]) -> std::collections::HashMap<(i32, i64), usize> {
    let mut out = std::collections::HashMap::new();
    for c in consumed {
        *out.entry((c.partition, c.offset)).or_default() += 1;
    }
    out
}

/// Ids per key, in topic order (per partition, by offset), keeping only the first time each id
/// appears.
pub fn first_ids_per_key(consumed: &[Consumed]) -> BTreeMap<String, Vec<String>> {
    let mut sorted: Vec<&Consumed> = consumed.iter().collect();
    sorted.sort_by_key(|c| (c.partition, c.offset, c.index));
    let mut seen = std::collections::HashSet::new();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in sorted {
        if seen.insert(c.event.id.clone()) {
            out.entry(c.key.clone()).or_default().push(c.event.id.clone());
        }
    }
    out
}

/// Ids per key in the order given.
pub fn ids_per_key(events: &[Event]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events {
        out.entry(adp_events::forwarder::message_key(e).to_string()).or_default().push(e.id.clone());
    }
    out
}

/// Event `i` of a run: an ad's decision, impression and click share a decision id (and so a key);
/// every fourth event has none (keyed by its own id).
pub fn event(run: &str, i: u64) -> Event {
    let (kind, decision_id) = match i % 4 {
        0 => (EventKind::Request, String::new()),
        1 => (EventKind::Decision, format!("{run}-dec-{}", i / 8)),
        2 => (EventKind::Impression, format!("{run}-dec-{}", i / 8)),
        _ => (EventKind::Click, format!("{run}-dec-{}", i / 8)),
    };
    Event {
        id: uuid::Uuid::now_v7().hyphenated().to_string(),
        kind,
        event_time_ms: 1_772_323_200_000 + i as i64,
        receive_time_ms: 1_772_323_200_003 + i as i64,
        request_id: format!("{run}-req-{}", i / 4),
        decision_id,
        advertiser_id: "shoes".into(),
        campaign_id: "spring".into(),
        line_item_id: format!("li-{}", i % 3),
        creative_id: "mrec".into(),
        publisher_id: "demo-publisher".into(),
        site_id: "demo-site".into(),
        placement_id: "demo-mrec".into(),
        deal_id: matches!(i % 5, 0).then(|| "deal-1".to_string()),
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
