//! kafka: what the forwarder says to the Kafka API — client settings, the record (key and value)
//! of an event, the delivery context, and topic creation. No log reading and no cursor here.

use super::{Compression, ForwarderConfig};
use adp_domain::events::Event;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, ProducerContext};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The message key of an event: its `decision_id` when it has one, so that an ad's decision,
/// impression, click and notices land on one partition in order; else its own `id`.
pub fn message_key(event: &Event) -> &str {
    if event.decision_id.is_empty() {
        &event.id
    } else {
        &event.decision_id
    }
}

/// The message value of one event alone: one adp-eventwire record (schema v1), replacing `out`.
/// The forwarder packs several events into one message (see [`partition_for`]); a message of one
/// event is this.
pub fn message_value(event: &Event, out: &mut Vec<u8>) {
    out.clear();
    adp_eventwire::encode(event, out);
}

/// The partition of an event with key `key` (see [`message_key`]).
pub use adp_eventwire::partition_for;

/// The most bytes a message of several events holds: a quarter of the brokers' default message
/// limit (`message.max.bytes`, 1,000,000 in librdkafka, 1 MiB in Redpanda), so that a pack is
/// never refused for its size. One event larger than this goes alone, as it always did.
pub const MESSAGE_BYTES: usize = 256 * 1024;

/// The events of one partition waiting to be sent as one message: their records, one after
/// another (an adp-eventwire batch), and their numbers in the log.
#[derive(Default)]
pub(crate) struct Pack {
    pub value: Vec<u8>,
    pub events: Vec<u64>,
}

impl Pack {
    /// Appends `event`, number `n` in the log.
    pub fn push(&mut self, n: u64, event: &Event) {
        adp_eventwire::encode(event, &mut self.value);
        self.events.push(n);
    }

    /// Appends an adp-eventwire record as it is, event number `n` in the log.
    pub fn push_record(&mut self, n: u64, record: &[u8]) {
        self.value.extend_from_slice(record);
        self.events.push(n);
    }

    /// Whether a record of `len` bytes may join the pack: it is empty, or it stays within
    /// `max_events` events and [`MESSAGE_BYTES`].
    pub fn fits(&self, len: usize, max_events: usize) -> bool {
        self.events.is_empty() || (self.events.len() < max_events && self.value.len() + len <= MESSAGE_BYTES)
    }

    /// Whether the message is as large as it gets: `max_events` events, or [`MESSAGE_BYTES`].
    pub fn full(&self, max_events: usize) -> bool {
        self.events.len() >= max_events || self.value.len() >= MESSAGE_BYTES
    }
}

/// librdkafka settings shared by the producer and the admin client.
pub(crate) fn base_config(config: &ForwarderConfig, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("client.id", client_id)
        // Come back quickly after an outage; librdkafka's default backs off up to 10 s.
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "2000")
        .set("socket.keepalive.enable", "true")
        .set_log_level(RDKafkaLogLevel::Warning);
    c
}

/// The operator's extra librdkafka settings, applied last.
pub(crate) fn with_overrides(mut c: ClientConfig, config: &ForwarderConfig) -> ClientConfig {
    for (k, v) in &config.client_settings {
        c.set(k, v);
        if k == "debug" {
            c.set_log_level(RDKafkaLogLevel::Debug);
        }
    }
    c
}

/// The producer's settings: idempotent (no duplicates or reordering from its own retries),
/// acknowledged by all in-sync replicas, compressed, batched, and with no local delivery timeout:
/// a message waits in the producer until the broker takes it, however long it is away.
pub(crate) fn producer_config(config: &ForwarderConfig) -> ClientConfig {
    let mut c = base_config(config, "adplatform-forwarder");
    let queue = config.max_in_flight.max(100_000) + 1_000;
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", config.compression.as_str())
        .set("linger.ms", config.linger_ms.to_string())
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", queue.to_string())
        .set("message.timeout.ms", "0");
    with_overrides(c, config)
}

/// One delivery report: the numbers in the log of the message's events, and the error, if the
/// broker did not take it.
pub(crate) struct Delivery {
    pub events: Vec<u64>,
    pub error: Option<KafkaError>,
}

/// Collects delivery reports (served on the forwarding thread inside `poll`) and notes global
/// errors; sends librdkafka's log lines to `tracing`.
#[derive(Default)]
pub(crate) struct DeliveryContext {
    reports: Mutex<Vec<Delivery>>,
    /// librdkafka said every broker connection is down (cleared by the forwarder on success).
    pub all_brokers_down: AtomicBool,
}

impl DeliveryContext {
    /// Moves the reports collected so far into `out`.
    pub fn take_reports(&self, out: &mut Vec<Delivery>) {
        let mut reports = self.reports.lock().unwrap_or_else(PoisonError::into_inner);
        out.append(&mut reports);
    }
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                if !self.all_brokers_down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(reason, "kafka: all brokers are down");
                }
            }
            Some(RDKafkaErrorCode::Fatal) => tracing::error!(%error, reason, "kafka producer fatal error"),
            // librdkafka logs these itself (and suppresses repeats).
            Some(RDKafkaErrorCode::BrokerTransportFailure) => tracing::debug!(%error, reason, "kafka client error"),
            _ => tracing::warn!(%error, reason, "kafka client error"),
        }
    }
}

impl ProducerContext for DeliveryContext {
    /// The message's events (boxed: an opaque travels through librdkafka as one pointer).
    #[allow(clippy::box_collection)]
    type DeliveryOpaque = Box<Vec<u64>>;

    #[allow(clippy::box_collection)]
    fn delivery(&self, result: &DeliveryResult<'_>, events: Box<Vec<u64>>) {
        let events = *events;
        let error = result.as_ref().err().map(|(e, _)| e.clone());
        self.reports.lock().unwrap_or_else(PoisonError::into_inner).push(Delivery { events, error });
    }
}

/// The admin client's context: log lines to `tracing`.
struct AdminContext;

impl ClientContext for AdminContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "kafka admin client error");
    }
}

pub(crate) fn log_to_tracing(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        // A broker going away is logged at error level by librdkafka; the forwarder says what
        // it means (events wait in the local log), so these are warnings here.
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error
        | RDKafkaLogLevel::Warning => tracing::warn!(facility = fac, "librdkafka: {message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => tracing::info!(facility = fac, "librdkafka: {message}"),
        RDKafkaLogLevel::Debug => tracing::debug!(facility = fac, "librdkafka: {message}"),
    }
}

pub(crate) fn create_producer(config: &ForwarderConfig) -> Result<BaseProducer<DeliveryContext>, KafkaError> {
    producer_config(config).create_with_context(DeliveryContext::default())
}

/// Creates the topic with `config.partitions` partitions if it does not exist, and returns its
/// partition count. Blocks up to about `timeout`.
pub(crate) fn ensure_topic(config: &ForwarderConfig, timeout: Duration) -> Result<usize, String> {
    ensure_topic_named(config, &config.topic(), config.partitions, timeout)
}

/// Creates `topic` with `partitions` partitions if it does not exist, and returns its
/// partition count. Blocks up to about `timeout`.
pub(crate) fn ensure_topic_named(
    config: &ForwarderConfig,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<usize, String> {
    let topic = topic.to_string();
    let admin: AdminClient<AdminContext> = with_overrides(base_config(config, "adplatform-forwarder-admin"), config)
        .create_with_context(AdminContext)
        .map_err(|e| format!("cannot create a kafka admin client: {e}"))?;
    let new_topic = NewTopic::new(&topic, partitions, TopicReplication::Fixed(config.replication_factor));
    let options = AdminOptions::new().request_timeout(Some(timeout)).operation_timeout(Some(timeout));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| format!("cannot start a runtime for the kafka admin client: {e}"))?;
    let created = runtime
        .block_on(async {
            tokio::time::timeout(timeout + Duration::from_secs(1), admin.create_topics([&new_topic], &options)).await
        })
        .map_err(|_| format!("creating topic {topic} timed out"))?
        .map_err(|e| format!("cannot create topic {topic}: {e}"))?;
    for result in created {
        match result {
            Ok(_) => tracing::info!(topic, partitions, "kafka topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(format!("cannot create topic {topic}: {code}")),
        }
    }
    // A topic just created may take a moment to show in the metadata.
    let deadline = std::time::Instant::now() + timeout;
    let configured = partitions;
    let partitions = loop {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(&topic), timeout)
            .map_err(|e| format!("cannot read the metadata of topic {topic}: {e}"))?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map_or(0, |t| t.partitions().len());
        if partitions > 0 {
            break partitions;
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!("topic {topic} has no partitions yet"));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if partitions != configured as usize {
        tracing::warn!(
            topic,
            partitions,
            configured,
            "kafka topic exists with another partition count; keeping it (changing it would move keys)"
        );
    }
    Ok(partitions)
}

impl Compression {
    /// The librdkafka `compression.type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Snappy => "snappy",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample_event as event;

    #[test]
    fn key_is_the_decision_id_else_the_event_id() {
        assert_eq!(message_key(&event("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "d-1")), "d-1");
        assert_eq!(
            message_key(&event("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "")),
            "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
        );
    }

    #[test]
    fn value_is_one_eventwire_record() {
        let e = event("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "d-1");
        let mut out = vec![1, 2, 3];
        message_value(&e, &mut out);
        assert_eq!(adp_eventwire::decode(&out).expect("decodes"), e);
    }

    #[test]
    fn a_pack_is_an_eventwire_batch_of_its_events() {
        let a = event("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "d-1");
        let b = event("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c", "d-1");
        let mut pack = Pack::default();
        pack.push(7, &a);
        assert!(!pack.full(2));
        pack.push(9, &b);
        assert!(pack.full(2));
        assert_eq!(pack.events, [7, 9]);
        assert!(!pack.fits(1, 2) && pack.fits(1, 3) && !pack.fits(MESSAGE_BYTES, 3));
        assert!(Pack::default().fits(10 * MESSAGE_BYTES, 1), "an event alone always fits");
        assert_eq!(adp_eventwire::decode_batch(&pack.value).expect("decodes"), [a.clone(), b.clone()]);
        let mut copied = Pack::default();
        for (n, record) in adp_eventwire::record_slices(&pack.value).enumerate() {
            copied.push_record(n as u64, record.expect("a record"));
        }
        assert_eq!((copied.value.as_slice(), copied.events.as_slice()), (pack.value.as_slice(), &[0, 1][..]));
        let mut one = Vec::new();
        message_value(&a, &mut one);
        assert!(pack.value.starts_with(&one));
    }

    /// librdkafka's `rd_crc32` is the IEEE CRC-32 (the check value of "123456789" is
    /// 0xCBF43926); `kafka_forwarder.rs` also checks placements against librdkafka's own
    /// partitioner on a real broker.
    #[test]
    fn partition_is_crc32_of_the_key_modulo_the_count() {
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        assert_eq!(partition_for("123456789", 12), (0xCBF4_3926u32 % 12) as i32);
        assert_eq!(partition_for("anything", 1), 0);
        let spread: std::collections::BTreeSet<i32> = (0..200).map(|i| partition_for(&format!("d-{i}"), 12)).collect();
        assert_eq!(spread.len(), 12, "keys spread over every partition");
    }

    #[test]
    fn producer_is_idempotent_acks_all_and_never_times_out_locally() {
        let config = ForwarderConfig { brokers: "127.0.0.1:1".into(), ..ForwarderConfig::default() };
        let c = producer_config(&config);
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("compression.type"), Some("lz4"));
        assert_eq!(c.get("message.timeout.ms"), Some("0"));
    }
}
