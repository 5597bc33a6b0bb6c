//! catalog_bus: catalog changes between processes over the Kafka-API bus (distributed mode).
//!
//! The API role writes the catalog store and then publishes each committed change, as JSON,
//! to the one-partition topic `<topic_prefix>.catalog` (one partition keeps versions in
//! order). Every serving process follows that topic from its end — by partition assignment,
//! not a consumer group, so a process starts following at once and never waits for a group
//! rebalance — and rebuilds its snapshot from the store when a newer version arrives. A change
//! lost on the way (broker away while the API wrote) is caught by the serving processes'
//! periodic reload by version (`serving.catalog_reload_secs`).

use crate::forwarder::kafka::{base_config, ensure_topic_named, log_to_tracing, with_overrides};
use crate::forwarder::ForwarderConfig;
use adp_domain::CatalogChange;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The catalog topic for a topic prefix.
pub fn catalog_topic(topic_prefix: &str) -> String {
    format!("{topic_prefix}.catalog")
}

struct BusContext;

impl ClientContext for BusContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_to_tracing(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "kafka catalog bus client error");
    }
}

impl ProducerContext for BusContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            tracing::warn!(error = %e, "catalog change not delivered to the bus; serving processes catch up by reload");
        }
    }
}

impl ConsumerContext for BusContext {}

/// Publishes committed catalog changes (the API role).
pub struct CatalogPublisher {
    producer: BaseProducer<BusContext>,
    topic: String,
}

impl CatalogPublisher {
    /// Connects and makes sure the topic exists (blocking, up to about `timeout`).
    pub fn new(config: &ForwarderConfig, timeout: Duration) -> Result<CatalogPublisher, String> {
        let topic = catalog_topic(&config.topic_prefix);
        ensure_topic_named(config, &topic, 1, timeout)?;
        let mut c = base_config(config, "adplatform-catalog-publisher");
        // Not idempotent: a retried duplicate is harmless (serving processes reload by version)
        // and an idempotent producer's first send waits for its producer id (~0.5 s here).
        c.set("enable.idempotence", "false").set("acks", "all").set("linger.ms", "0");
        let producer = with_overrides(c, config)
            .create_with_context(BusContext)
            .map_err(|e| format!("cannot create the catalog bus producer: {e}"))?;
        Ok(CatalogPublisher { producer, topic })
    }

    /// Sends one change and waits up to `timeout` for the broker to take it (blocking).
    pub fn publish(&self, change: &CatalogChange, timeout: Duration) -> Result<(), String> {
        let payload = serde_json::to_vec(change).map_err(|e| format!("cannot encode a catalog change: {e}"))?;
        self.producer
            .send(BaseRecord::<str, [u8], ()>::to(&self.topic).key("catalog").payload(&payload))
            .map_err(|(e, _)| format!("cannot queue a catalog change: {e}"))?;
        self.producer.flush(timeout).map_err(|e| format!("catalog change not confirmed by the broker: {e}"))
    }
}

/// Follows the catalog topic from its end on a thread of its own and calls `on_change` for
/// each change that arrives; stops when dropped.
pub struct CatalogSubscriber {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CatalogSubscriber {
    /// Creates the topic if needed, assigns every partition at its end and starts following.
    /// Returns once the assignment is in place, so no change committed after this returns is
    /// missed.
    pub fn start(
        config: &ForwarderConfig,
        timeout: Duration,
        on_change: impl Fn(CatalogChange) + Send + 'static,
    ) -> Result<CatalogSubscriber, String> {
        let topic = catalog_topic(&config.topic_prefix);
        let partitions = ensure_topic_named(config, &topic, 1, timeout)?;
        let mut c = base_config(config, "adplatform-catalog-subscriber");
        // Assignment, not subscription: the group id is required by librdkafka but never joined.
        c.set("group.id", "adplatform-catalog-followers")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("fetch.wait.max.ms", "50")
            // Come back quickly after an empty or failed fetch (the default backs off 500 ms).
            .set("fetch.error.backoff.ms", "20")
            .set("auto.offset.reset", "latest");
        let consumer: BaseConsumer<BusContext> = with_overrides(c, config)
            .create_with_context(BusContext)
            .map_err(|e| format!("cannot create the catalog bus consumer: {e}"))?;
        // Start at the end as it is now, read explicitly: a change published after `start`
        // returns has a later offset and is seen (`Offset::End` would be resolved later, and a
        // change landing before that would be skipped).
        let mut list = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            let (_, high) = consumer
                .fetch_watermarks(&topic, p, timeout)
                .map_err(|e| format!("cannot read the end of {topic}/{p}: {e}"))?;
            list.add_partition_offset(&topic, p, Offset::Offset(high))
                .map_err(|e| format!("cannot assign {topic}/{p}: {e}"))?;
        }
        consumer.assign(&list).map_err(|e| format!("cannot assign the catalog topic: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("catalog-bus".into())
            .spawn(move || {
                while !stop_flag.load(Ordering::Relaxed) {
                    match consumer.poll(Duration::from_millis(100)) {
                        None => {}
                        Some(Ok(msg)) => match msg.payload().map(serde_json::from_slice::<CatalogChange>) {
                            Some(Ok(change)) => on_change(change),
                            Some(Err(e)) => tracing::warn!(error = %e, "unreadable catalog change on the bus; skipped"),
                            None => {}
                        },
                        Some(Err(e)) => tracing::debug!(error = %e, "catalog bus poll error"),
                    }
                }
            })
            .map_err(|e| format!("cannot start the catalog bus thread: {e}"))?;
        Ok(CatalogSubscriber { stop, thread: Some(thread) })
    }
}

impl Drop for CatalogSubscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
