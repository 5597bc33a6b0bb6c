//! forwarder: the Kafka API event sink (Redpanda; Tansu in tests). It follows the local event
//! log — which stays the first stop of every event and is the spill — and produces each event to
//! the broker in log order. It runs on a thread of its own and never touches the request path:
//! `LocalLog::submit` neither waits for it nor knows it exists.
//!
//! # Topic layout and partition key
//!
//! * One topic, `<topic_prefix>.events` (default `adp.events`), created at start when missing
//!   with `partitions` partitions (default 12) and `replication_factor` replicas. Every event
//!   kind (request, decision, bid, win, loss, billing, impression, click, conversion) goes there.
//! * Partition: each event's key is its `decision_id` when it is not empty, else its `id`
//!   ([`message_key`]), and its partition is the CRC-32 of that key modulo the partition count
//!   ([`partition_for`], what librdkafka does with a keyed message). The decision, the
//!   impression, the click and the notices of one ad therefore share a partition and arrive in
//!   the order the log holds them; events without a decision spread by their id.
//! * Value: the records of up to `events_per_message` events of one partition, one after
//!   another (an adp-eventwire batch: `adp_eventwire::records` reads it; each record is magic
//!   `0xAE`, schema version, Protobuf body), in log order. The events read in one round are
//!   grouped by partition, so under load a message carries many events (librdkafka's work is
//!   per message) and a lone event goes out alone without waiting. No key (the events of a
//!   message have keys of their own), no headers. The message timestamp is the time it was
//!   produced.
//!
//! # Delivery
//!
//! The producer is idempotent (`enable.idempotence=true`, `acks=all`), compresses with lz4 by
//! default and batches for `linger_ms`. It has no local delivery timeout: while the broker is
//! away, messages already handed over wait in the producer, and the forwarder stops reading
//! ahead, so everything else waits in the log (counted as spilled). Once the broker answers
//! again the waiting events are forwarded in log order (counted as replayed).
//!
//! Progress is a cursor in the log directory (see [`cursor_path`]): the log position up to which
//! the broker confirmed every event, in log order. It is written atomically every
//! `cursor_interval` and at stop. After a crash (even `kill -9`) the forwarder starts again from
//! the cursor, so every event the log holds reaches the broker. An event confirmed after the
//! last cursor write is sent again then: that crash window, and a delivery failure (the producer
//! is rebuilt and forwarding resumes at the cursor), are the only sources of duplicates, and the
//! ingest side drops them by event id. Nothing is ever skipped: an event the broker refuses for
//! good stops forwarding (loudly, retried with back-off) rather than being dropped.

mod cursor;
pub(crate) mod kafka;

pub use cursor::cursor_path;
pub use kafka::{message_key, message_value, partition_for};

use crate::local_log::{LogPosition, LogReader, LogWatermark, LoggedEvent};
use kafka::{Delivery, DeliveryContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde::Serialize;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How the producer compresses batches (codecs built into librdkafka).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    None,
    #[default]
    Lz4,
    Snappy,
}

impl FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Compression::None),
            "lz4" => Ok(Compression::Lz4),
            "snappy" => Ok(Compression::Snappy),
            other => Err(format!("`{other}` is not a compression here; use lz4, snappy or none")),
        }
    }
}

/// How the forwarder reaches the broker and paces itself.
#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The topic is `<topic_prefix>.events`.
    pub topic_prefix: String,
    /// Partitions of the topic when the forwarder creates it.
    pub partitions: i32,
    /// Replicas of each partition when the forwarder creates the topic.
    pub replication_factor: i32,
    /// How long the producer waits to fill a batch.
    pub linger_ms: u64,
    pub compression: Compression,
    /// Most events handed to the producer and not yet confirmed.
    pub max_in_flight: usize,
    /// Most events in one Kafka message (1: one event per message).
    pub events_per_message: usize,
    /// With events unconfirmed this long and none confirmed meanwhile, the broker counts as
    /// unreachable: the forwarder stops reading ahead and events wait in the log.
    pub stall_after: Duration,
    /// How often the cursor is written while it moves.
    pub cursor_interval: Duration,
    /// Extra librdkafka settings, applied last (e.g. `security.protocol`).
    pub client_settings: Vec<(String, String)>,
}

impl Default for ForwarderConfig {
    fn default() -> Self {
        ForwarderConfig {
            brokers: String::new(),
            topic_prefix: "adp".into(),
            partitions: 12,
            replication_factor: 1,
            linger_ms: 10,
            compression: Compression::Lz4,
            max_in_flight: 200_000,
            events_per_message: 64,
            stall_after: Duration::from_secs(2),
            cursor_interval: Duration::from_millis(200),
            client_settings: Vec::new(),
        }
    }
}

impl ForwarderConfig {
    /// The events topic: `<topic_prefix>.events`.
    pub fn topic(&self) -> String {
        format!("{}.events", self.topic_prefix)
    }

    pub fn validate(&self) -> Result<(), ForwarderError> {
        let bad = |field, message: &str| Err(ForwarderError::InvalidConfig { field, message: message.to_string() });
        if self.brokers.trim().is_empty() {
            return bad("brokers", "must name at least one broker");
        }
        let prefix_ok = !self.topic_prefix.is_empty()
            && self.topic_prefix.len() <= 200
            && self.topic_prefix.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !prefix_ok {
            return bad("topic_prefix", "must be 1 to 200 characters of letters, digits, `.`, `_` and `-`");
        }
        if !(1..=10_000).contains(&self.partitions) {
            return bad("partitions", "must be 1..=10000");
        }
        if !(1..=32).contains(&self.replication_factor) {
            return bad("replication_factor", "must be 1..=32");
        }
        if self.linger_ms > 60_000 {
            return bad("linger_ms", "must be at most 60000");
        }
        if self.max_in_flight == 0 {
            return bad("max_in_flight", "must be at least 1");
        }
        if !(1..=10_000).contains(&self.events_per_message) {
            return bad("events_per_message", "must be 1..=10000");
        }
        Ok(())
    }
}

/// Why the forwarder could not start.
#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    #[error("invalid kafka forwarder config: {field} {message}")]
    InvalidConfig { field: &'static str, message: String },
    #[error("cannot read the forwarder cursor {path}: {source}")]
    Cursor {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the kafka producer: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("cannot start the forwarder thread: {0}")]
    Thread(std::io::Error),
}

/// The forwarder's counters. Event counts are of this process's run, except `queued` (the whole
/// unconfirmed part of the log).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ForwarderStats {
    pub topic: String,
    /// The broker took the last events sent (false while it is unreachable).
    pub broker_up: bool,
    /// Events in the log the broker has not confirmed yet (in flight or not yet read).
    pub queued: u64,
    /// Events handed to the producer and not yet confirmed.
    pub in_flight: u64,
    /// Events the broker confirmed.
    pub forwarded: u64,
    /// Events that waited in the log because the broker was unreachable.
    pub spilled: u64,
    /// Events forwarded after an outage or from before this start (the cursor was behind them).
    pub replayed: u64,
    /// Events accepted and then lost before reaching the log (disk failure); must stay 0.
    /// The forwarder itself never drops: it stops and retries instead.
    pub dropped: u64,
    /// Delivery failures (each rebuilds the producer and resumes at the cursor).
    pub delivery_failures: u64,
    /// Producers rebuilt because the broker answered but took nothing (e.g. it came back
    /// without the producer's state); each resumes at the cursor.
    pub producer_rebuilds: u64,
    /// Events sent again after a delivery failure that the broker had confirmed already:
    /// known duplicates in the topic (a crash adds unknown ones; see the module docs).
    pub resent: u64,
    /// Times the log could not be read (damage or I/O); forwarding waits and retries.
    pub log_errors: u64,
    /// The cursor: the log position up to which every event is confirmed.
    pub cursor_segment: u64,
    pub cursor_offset: u64,
}

#[derive(Default)]
struct Counters {
    acked_events: AtomicU64,
    cursor_segment: AtomicU64,
    cursor_offset: AtomicU64,
    in_flight: AtomicU64,
    forwarded: AtomicU64,
    spilled: AtomicU64,
    replayed: AtomicU64,
    delivery_failures: AtomicU64,
    producer_rebuilds: AtomicU64,
    resent: AtomicU64,
    log_errors: AtomicU64,
    broker_down: AtomicBool,
    /// While the broker is down: the events count of the log when it went down.
    down_mark: AtomicU64,
}

struct Shared {
    watermark: Arc<LogWatermark>,
    topic: String,
    counters: Counters,
    /// Set by `stop`: finish by then.
    stop_by: Mutex<Option<Instant>>,
}

impl Shared {
    fn stats(&self) -> ForwarderStats {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let committed = self.watermark.committed().events;
        let down = c.broker_down.load(Ordering::Relaxed);
        let spilling = if down { committed.saturating_sub(load(&c.down_mark)) } else { 0 };
        ForwarderStats {
            topic: self.topic.clone(),
            broker_up: !down,
            queued: committed.saturating_sub(load(&c.acked_events)),
            in_flight: load(&c.in_flight),
            forwarded: load(&c.forwarded),
            spilled: load(&c.spilled) + spilling,
            replayed: load(&c.replayed),
            dropped: self.watermark.stats().lost,
            delivery_failures: load(&c.delivery_failures),
            producer_rebuilds: load(&c.producer_rebuilds),
            resent: load(&c.resent),
            log_errors: load(&c.log_errors),
            cursor_segment: load(&c.cursor_segment),
            cursor_offset: load(&c.cursor_offset),
        }
    }

    fn stop_by(&self) -> Option<Instant> {
        *self.stop_by.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A cheap handle on a running forwarder's counters (for the stats endpoint).
#[derive(Clone)]
pub struct ForwarderStatsHandle(Arc<Shared>);

impl ForwarderStatsHandle {
    pub fn stats(&self) -> ForwarderStats {
        self.0.stats()
    }
}

/// The Kafka forwarder of one local log. See the module docs.
pub struct KafkaForwarder {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl KafkaForwarder {
    /// Starts forwarding the log behind `watermark` (see `LocalLog::watermark`) from its cursor,
    /// or from the log's beginning when there is none. Returns at once: the topic is created and
    /// the broker reached on the forwarder's thread, and while the broker is unreachable events
    /// wait in the log.
    pub fn start(watermark: Arc<LogWatermark>, config: ForwarderConfig) -> Result<KafkaForwarder, ForwarderError> {
        config.validate()?;
        let topic = config.topic();
        let dir = watermark.dir().to_path_buf();
        let cursor_file = cursor_path(&dir, &topic);
        let cursor = match cursor::load(&cursor_file) {
            Ok(Some(Ok(saved))) => valid_start(&watermark, saved, &cursor_file),
            Ok(None) => {
                tracing::info!(topic, dir = %dir.display(), "no forwarder cursor yet; forwarding the log from its beginning");
                LogPosition::default()
            }
            // A damaged cursor costs duplicates (dropped downstream by event id), never events.
            Ok(Some(Err(reason))) => {
                tracing::error!(file = %cursor_file.display(), reason, "forwarder cursor is damaged; forwarding the log again from its beginning");
                LogPosition::default()
            }
            Err(source) => return Err(ForwarderError::Cursor { path: cursor_file, source }),
        };
        // Fails early on settings librdkafka refuses.
        kafka::producer_config(&config).create_native_config()?;

        let shared = Arc::new(Shared {
            watermark: Arc::clone(&watermark),
            topic: topic.clone(),
            counters: Counters::default(),
            stop_by: Mutex::new(None),
        });
        shared.counters.acked_events.store(cursor.events, Ordering::Relaxed);
        shared.counters.cursor_segment.store(cursor.segment, Ordering::Relaxed);
        shared.counters.cursor_offset.store(cursor.offset, Ordering::Relaxed);
        let committed = watermark.committed();
        tracing::info!(
            topic,
            brokers = config.brokers,
            backlog = committed.events.saturating_sub(cursor.events),
            "kafka forwarder starting"
        );
        let forwarding = Forwarding {
            shared: Arc::clone(&shared),
            incarnation: watermark.incarnation(),
            reader: LogReader::new(&dir, cursor),
            cursor_file,
            topic,
            producer: None,
            slots: VecDeque::new(),
            acked: cursor,
            persisted: cursor,
            last_persist: Instant::now(),
            last_progress: Instant::now(),
            packs: Vec::new(),
            reports: Vec::new(),
            up: true,
            catchup_mark: committed.events,
            retry_at: Instant::now(),
            backoff: INITIAL_BACKOFF,
            next_topic_check: Instant::now(),
            answering_since: None,
            topic_ready: false,
            topic_check: None,
            config,
        };
        let thread = std::thread::Builder::new()
            .name("adp-kafka-forward".into())
            .spawn(move || forwarding.run())
            .map_err(ForwarderError::Thread)?;
        Ok(KafkaForwarder { shared, thread: Some(thread) })
    }

    pub fn stats(&self) -> ForwarderStats {
        self.shared.stats()
    }

    pub fn stats_handle(&self) -> ForwarderStatsHandle {
        ForwarderStatsHandle(Arc::clone(&self.shared))
    }

    /// Waits until every event committed to the log before this call is confirmed by the broker,
    /// at most `timeout`; true if it was.
    pub fn wait_forwarded(&self, timeout: Duration) -> bool {
        let target = self.shared.watermark.committed().events;
        let deadline = Instant::now() + timeout;
        loop {
            if self.shared.counters.acked_events.load(Ordering::Relaxed) >= target {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Forwards what the log holds for at most `timeout` (flush the log first), writes the cursor
    /// and stops. Events not confirmed by then stay in the log for the next start.
    pub fn stop(mut self, timeout: Duration) -> ForwarderStats {
        self.shutdown(timeout);
        self.shared.stats()
    }

    fn shutdown(&mut self, timeout: Duration) {
        *self.shared.stop_by.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + timeout);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("kafka forwarder thread panicked");
            }
        }
    }
}

/// Where forwarding starts from a saved cursor. A cursor from an earlier opening of the log that
/// points past where this opening found the log's end pointed into a tail that was cut (lost in
/// a crash with `fsync = never`; those events were forwarded already): start at that end, where
/// new events follow.
fn valid_start(watermark: &LogWatermark, saved: cursor::Cursor, file: &std::path::Path) -> LogPosition {
    let opened = watermark.opened();
    let beyond = (saved.pos.segment, saved.pos.offset) > (opened.segment, opened.offset);
    if saved.incarnation != watermark.incarnation() && beyond {
        tracing::warn!(
            file = %file.display(),
            cursor_segment = saved.pos.segment,
            cursor_offset = saved.pos.offset,
            log_segment = opened.segment,
            log_offset = opened.offset,
            "forwarder cursor points past the end of the log (its tail was lost); forwarding from the log's end"
        );
        return opened;
    }
    saved.pos
}

impl Drop for KafkaForwarder {
    /// Stops at once: writes the cursor of what is confirmed and leaves the rest in the log.
    fn drop(&mut self) {
        self.shutdown(Duration::ZERO);
    }
}

// ---------------------------------------------------------------------------------------------
// the forwarding thread

/// Events read and sent per round before delivery reports are served again.
const READ_BATCH: usize = 8192;
/// Events in flight while the broker is unreachable: enough to notice it is back.
const PROBE_IN_FLIGHT: usize = 64;
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a topic check (on its own thread) waits for the broker.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(3);

/// One event handed to the producer, oldest first: `slots[i]` is log event `acked.events + i`.
struct Slot {
    /// The log position after this event.
    end: (u64, u64),
    confirmed: bool,
}

struct Forwarding {
    shared: Arc<Shared>,
    /// The log's incarnation, written with the cursor.
    incarnation: u64,
    config: ForwarderConfig,
    topic: String,
    cursor_file: PathBuf,
    reader: LogReader,
    producer: Option<BaseProducer<DeliveryContext>>,
    slots: VecDeque<Slot>,
    /// Every event before this is confirmed.
    acked: LogPosition,
    persisted: LogPosition,
    last_persist: Instant,
    /// When an event was last confirmed, or sending started after a pause.
    last_progress: Instant,
    /// One per partition of the topic (empty until the topic check said how many): the events
    /// read this round, grouped into messages.
    packs: Vec<kafka::Pack>,
    reports: Vec<Delivery>,
    /// The broker answers (as far as the forwarder knows).
    up: bool,
    /// Events before this log position count as replayed when confirmed.
    catchup_mark: u64,
    /// No producer (before the first connection, after a failure) until then.
    retry_at: Instant,
    backoff: Duration,
    /// While the broker is unreachable: when to check the topic again (it may have come back
    /// empty).
    next_topic_check: Instant,
    /// While nothing is confirmed: since when the broker answers the admin client anyway.
    answering_since: Option<Instant>,
    /// The topic exists (checked once before the first producer, again after a failure).
    topic_ready: bool,
    /// A topic check running on a thread of its own.
    topic_check: Option<JoinHandle<Result<usize, String>>>,
}

impl Forwarding {
    fn run(mut self) {
        loop {
            let stop_by = self.shared.stop_by();
            let check = self.topic_check_result();
            if self.producer.is_none() {
                if stop_by.is_none() {
                    self.connect(check);
                }
            } else if let Some(result) = check {
                self.on_topic_check(result);
            }
            let confirmed = self.serve_deliveries();
            self.track_broker(confirmed);
            self.persist_cursor(stop_by.is_some());
            if let Some(deadline) = stop_by {
                let caught_up = self.slots.is_empty() && self.reader.position().events >= self.committed().events;
                if caught_up || Instant::now() >= deadline || self.producer.is_none() {
                    break;
                }
            }
            let sent = self.send_more();
            self.publish();
            if sent == 0 && confirmed == 0 {
                self.idle();
            }
        }
        // Messages still in the producer are purged when it drops; they stay in the log.
        self.producer = None;
        self.persist_cursor(true);
        self.publish();
        let stats = self.shared.stats();
        tracing::info!(
            topic = self.topic,
            forwarded = stats.forwarded,
            queued = stats.queued,
            spilled = stats.spilled,
            replayed = stats.replayed,
            "kafka forwarder stopped"
        );
    }

    fn committed(&self) -> LogPosition {
        self.shared.watermark.committed()
    }

    /// Checks the topic (creating it if needed) on a thread of its own: an unreachable broker
    /// makes that take seconds, and the forwarding loop must keep serving deliveries meanwhile.
    fn start_topic_check(&mut self) {
        if self.topic_check.is_some() {
            return;
        }
        let config = self.config.clone();
        let spawned = std::thread::Builder::new()
            .name("adp-kafka-admin".into())
            .spawn(move || kafka::ensure_topic(&config, ADMIN_TIMEOUT));
        match spawned {
            Ok(handle) => self.topic_check = Some(handle),
            Err(e) => tracing::error!(error = %e, "cannot start the kafka topic check"),
        }
    }

    /// The result of the topic check, once it is done.
    fn topic_check_result(&mut self) -> Option<Result<usize, String>> {
        if !self.topic_check.as_ref().is_some_and(|h| h.is_finished()) {
            return None;
        }
        let handle = self.topic_check.take()?;
        Some(handle.join().unwrap_or_else(|_| Err("the topic check panicked".to_string())))
    }

    /// Without a producer: makes sure of the topic, then creates the producer; on failure, backs
    /// off.
    fn connect(&mut self, check: Option<Result<usize, String>>) {
        if !self.topic_ready {
            match check {
                Some(Ok(partitions)) => {
                    tracing::debug!(topic = self.topic, partitions, "kafka topic ready");
                    self.set_partitions(partitions);
                    self.topic_ready = true;
                }
                Some(Err(reason)) => {
                    self.set_down(&reason);
                    self.back_off();
                    tracing::warn!(
                        topic = self.topic,
                        reason,
                        retry_in_ms = self.backoff.as_millis() as u64,
                        "kafka broker not ready"
                    );
                    return;
                }
                None => {
                    if Instant::now() >= self.retry_at {
                        self.start_topic_check();
                    }
                    return;
                }
            }
        }
        if Instant::now() < self.retry_at {
            return;
        }
        match kafka::create_producer(&self.config) {
            Ok(producer) => {
                self.producer = Some(producer);
                self.last_progress = Instant::now();
                self.next_topic_check = Instant::now() + self.config.stall_after;
            }
            Err(e) => {
                self.back_off();
                tracing::error!(error = %e, "cannot create the kafka producer");
            }
        }
    }

    /// The topic's partition count, as the last topic check found it (librdkafka's partitioner
    /// would follow a change too). Packs are empty between rounds, so they can be resized.
    fn set_partitions(&mut self, partitions: usize) {
        if partitions != self.packs.len() {
            if !self.packs.is_empty() {
                tracing::warn!(
                    topic = self.topic,
                    from = self.packs.len(),
                    to = partitions,
                    "kafka topic's partition count changed"
                );
            }
            self.packs.clear();
            self.packs.resize_with(partitions, kafka::Pack::default);
        }
    }

    fn back_off(&mut self) {
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Serves delivery reports; returns how many events were confirmed.
    fn serve_deliveries(&mut self) -> usize {
        let Some(producer) = &self.producer else { return 0 };
        producer.poll(Duration::ZERO);
        producer.context().take_reports(&mut self.reports);
        if self.reports.is_empty() {
            return 0;
        }
        let mut confirmed = 0;
        let mut failure = None;
        for report in self.reports.drain(..) {
            // The opaque holds the numbers in the log of the message's events.
            for &n in report.events.iter() {
                let Some(index) = n.checked_sub(self.acked.events) else { continue };
                let Some(slot) = usize::try_from(index).ok().and_then(|i| self.slots.get_mut(i)) else { continue };
                match &report.error {
                    None => {
                        slot.confirmed = true;
                        confirmed += 1;
                        // Confirmed while the broker counts as away: the first of the waiting ones.
                        if !self.up || n < self.catchup_mark {
                            self.shared.counters.replayed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Some(error) => {
                        if failure.is_none() {
                            failure = Some((n, error.to_string()));
                        }
                    }
                }
            }
        }
        self.shared.counters.forwarded.fetch_add(confirmed as u64, Ordering::Relaxed);
        while let Some(slot) = self.slots.front() {
            if !slot.confirmed {
                break;
            }
            self.acked = LogPosition { segment: slot.end.0, offset: slot.end.1, events: self.acked.events + 1 };
            self.slots.pop_front();
        }
        if confirmed > 0 {
            self.last_progress = Instant::now();
            self.backoff = INITIAL_BACKOFF;
            producer.context().all_brokers_down.store(false, Ordering::Relaxed);
        }
        if let Some((event, error)) = failure {
            self.fail(event, &error);
        }
        confirmed
    }

    /// A delivery failed (or the producer refused a message): drop the producer (its other
    /// messages are purged), resume at the cursor after a back-off. Events confirmed after the
    /// failed one will be sent again.
    fn fail(&mut self, event: u64, reason: &str) {
        let resent = self.slots.iter().filter(|s| s.confirmed).count() as u64;
        self.shared.counters.delivery_failures.fetch_add(1, Ordering::Relaxed);
        self.shared.counters.resent.fetch_add(resent, Ordering::Relaxed);
        tracing::error!(
            topic = self.topic,
            event,
            reason,
            resent,
            "kafka delivery failed; rebuilding the producer and resuming at the cursor"
        );
        self.restart_at_cursor();
        self.topic_ready = false;
        self.back_off();
    }

    fn restart_at_cursor(&mut self) {
        self.producer = None;
        self.slots.clear();
        // Events waiting in packs are behind the cursor too: read again, not sent twice.
        for pack in &mut self.packs {
            pack.value.clear();
            pack.events.clear();
        }
        self.reader = LogReader::new(self.shared.watermark.dir(), self.acked);
    }

    /// Notices the broker going away (nothing confirmed for `stall_after`, or librdkafka says all
    /// brokers are down) and coming back (something confirmed).
    fn track_broker(&mut self, confirmed: usize) {
        if self.up {
            let stalled = !self.slots.is_empty() && self.last_progress.elapsed() >= self.config.stall_after;
            let all_down = self.producer.as_ref().is_some_and(|p| p.context().all_brokers_down.load(Ordering::Relaxed));
            if stalled || all_down {
                self.set_down(if all_down { "all brokers are down" } else { "no delivery confirmed lately" });
            }
        } else if confirmed > 0 {
            self.set_up();
        } else if self.producer.is_some() && Instant::now() >= self.next_topic_check {
            // A broker that comes back empty (it lost its data) has no topic: make it again.
            self.next_topic_check = Instant::now() + self.config.stall_after.max(Duration::from_secs(1));
            self.start_topic_check();
        }
    }

    /// While the broker seems away: what the topic check says about it.
    fn on_topic_check(&mut self, result: Result<usize, String>) {
        if self.up {
            return;
        }
        match result {
            // Nothing waits for a confirmation that would say so: the broker answers.
            Ok(partitions) if self.slots.is_empty() => {
                self.set_partitions(partitions);
                self.set_up();
            }
            Ok(_) => {
                let since = *self.answering_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.config.stall_after {
                    // The broker answers but takes nothing from this producer: a broker that
                    // lost its state refuses the producer id for good. A new producer starts
                    // afresh.
                    self.answering_since = None;
                    self.shared.counters.producer_rebuilds.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        topic = self.topic,
                        "kafka broker answers but confirms nothing; rebuilding the producer and resuming at the cursor"
                    );
                    self.restart_at_cursor();
                }
            }
            Err(reason) => {
                self.answering_since = None;
                tracing::debug!(topic = self.topic, reason, "kafka broker still unreachable");
            }
        }
    }

    fn set_up(&mut self) {
        let committed = self.committed().events;
        let c = &self.shared.counters;
        let spilled = committed.saturating_sub(c.down_mark.load(Ordering::Relaxed));
        c.spilled.fetch_add(spilled, Ordering::Relaxed);
        c.broker_down.store(false, Ordering::Relaxed);
        self.catchup_mark = self.catchup_mark.max(committed);
        self.up = true;
        self.answering_since = None;
        if let Some(producer) = &self.producer {
            producer.context().all_brokers_down.store(false, Ordering::Relaxed);
        }
        tracing::info!(
            topic = self.topic,
            spilled,
            "kafka broker is back; forwarding the events that waited in the log"
        );
    }

    fn set_down(&mut self, reason: &str) {
        if !self.up {
            return;
        }
        self.up = false;
        self.answering_since = None;
        let c = &self.shared.counters;
        // Events counted as spilled in an earlier outage are not counted again.
        c.down_mark.store(self.acked.events.max(self.catchup_mark), Ordering::Relaxed);
        c.broker_down.store(true, Ordering::Relaxed);
        self.next_topic_check = Instant::now();
        tracing::warn!(topic = self.topic, reason, "kafka broker unreachable; events wait in the local log");
    }

    /// Reads committed events from the log and hands them to the producer, up to the in-flight
    /// cap, packed by partition into messages of up to `events_per_message` events (a pack is
    /// sent when full, and every pack at the end of the round); returns how many events.
    fn send_more(&mut self) -> usize {
        let Some(producer) = &self.producer else { return 0 };
        let mut refused = None;
        // Packs the producer had no room for last round go first, whatever else holds reading
        // back (their events may be the oldest in flight); while one still waits, nothing more
        // is read.
        let mut queue_full = !flush_packs(producer, &self.topic, &mut self.packs, &mut refused);
        if let Some((first, error)) = refused {
            self.fail(first, &format!("the producer refused a message: {error}"));
            return 0;
        }
        if queue_full || Instant::now() < self.retry_at || self.packs.is_empty() {
            return 0;
        }
        let cap = if self.up { self.config.max_in_flight } else { PROBE_IN_FLIGHT };
        if self.slots.len() >= cap {
            return 0;
        }
        let end = self.shared.watermark.committed();
        if self.slots.is_empty() {
            self.last_progress = Instant::now();
        }
        let (partitions, per_message) = (self.packs.len(), self.config.events_per_message);
        let mut sent = 0;
        let mut rewind = None;
        while !queue_full && refused.is_none() && self.slots.len() < cap && sent < READ_BATCH {
            let before = self.reader.position();
            let logged = match self.reader.next_raw(&end) {
                Ok(Some(logged)) => logged,
                Ok(None) => break,
                Err(e) => {
                    self.shared.counters.log_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "cannot read the event log; forwarding waits");
                    self.retry_at = Instant::now() + MAX_BACKOFF;
                    // What was read before the damage is sent below; reading resumes here.
                    self.reader = LogReader::new(self.shared.watermark.dir(), before);
                    break;
                }
            };
            // The log's records are adp-eventwire records: they go into the message as they are
            // (older JSON records are encoded).
            let (partition, len) = match &logged {
                LoggedEvent::Wire { record, event } => (adp_eventwire::partition_of(event, partitions), record.len()),
                LoggedEvent::Owned(event) => {
                    (kafka::partition_for(kafka::message_key(event), partitions), adp_eventwire::encoded_len(event))
                }
            };
            let Some(pack) = self.packs.get_mut(partition as usize) else {
                // Cannot happen (a partition is below the count); read the event again later.
                rewind = Some(before);
                break;
            };
            // A message never grows past `MESSAGE_BYTES` by taking one more event: the pack goes
            // first (an event larger than that alone is sent alone).
            if !pack.fits(len, per_message) {
                match send_pack(producer, &self.topic, partition, pack) {
                    Ok(()) => {}
                    Err(Refusal::QueueFull) => {
                        queue_full = true;
                        rewind = Some(before);
                        break;
                    }
                    // `fail` below starts again from the cursor.
                    Err(Refusal::Other(first, e)) => {
                        refused = Some((first, e));
                        break;
                    }
                }
            }
            match &logged {
                LoggedEvent::Wire { record, .. } => pack.push_record(before.events, record),
                LoggedEvent::Owned(event) => pack.push(before.events, event),
            }
            let pos = self.reader.position();
            self.slots.push_back(Slot { end: (pos.segment, pos.offset), confirmed: false });
            sent += 1;
            if pack.full(per_message) {
                match send_pack(producer, &self.topic, partition, pack) {
                    Ok(()) => {}
                    // The pack stays and goes first next round.
                    Err(Refusal::QueueFull) => queue_full = true,
                    Err(Refusal::Other(first, e)) => refused = Some((first, e)),
                }
            }
        }
        if let Some(before) = rewind {
            self.reader = LogReader::new(self.shared.watermark.dir(), before);
        }
        if !queue_full && refused.is_none() {
            flush_packs(producer, &self.topic, &mut self.packs, &mut refused);
        }
        if let Some((first, error)) = refused {
            // The producer refused a message for another reason than room: start again from
            // the cursor with a new producer (the unsent events are behind it).
            self.fail(first, &format!("the producer refused a message: {error}"));
        }
        sent
    }

    /// Nothing to do this round: wait for deliveries or for the log to grow.
    fn idle(&mut self) {
        match &self.producer {
            Some(producer) if !self.slots.is_empty() => producer.poll(Duration::from_millis(5)),
            // A closed log does not move again: nothing to wait for.
            Some(_) if Instant::now() >= self.retry_at && !self.shared.watermark.is_closed() => {
                self.shared.watermark.wait_beyond(&self.reader.position(), Duration::from_millis(50));
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }

    /// Writes the cursor if it moved and `cursor_interval` passed (or `now`).
    fn persist_cursor(&mut self, now: bool) {
        if self.acked == self.persisted || !(now || self.last_persist.elapsed() >= self.config.cursor_interval) {
            return;
        }
        self.last_persist = Instant::now();
        let saved = cursor::Cursor { pos: self.acked, incarnation: self.incarnation };
        match cursor::store(&self.cursor_file, &saved) {
            Ok(()) => self.persisted = self.acked,
            Err(e) => tracing::error!(
                file = %self.cursor_file.display(),
                error = %e,
                "cannot write the forwarder cursor; a restart would send events again"
            ),
        }
    }

    fn publish(&self) {
        let c = &self.shared.counters;
        c.acked_events.store(self.acked.events, Ordering::Relaxed);
        c.cursor_segment.store(self.acked.segment, Ordering::Relaxed);
        c.cursor_offset.store(self.acked.offset, Ordering::Relaxed);
        c.in_flight.store(self.slots.len() as u64, Ordering::Relaxed);
    }
}

/// Sends every pack that holds events; false if the producer's queue is full (the packs not
/// sent stay, in order). Another refusal goes to `refused`.
fn flush_packs(
    producer: &BaseProducer<DeliveryContext>,
    topic: &str,
    packs: &mut [kafka::Pack],
    refused: &mut Option<(u64, KafkaError)>,
) -> bool {
    for (partition, pack) in packs.iter_mut().enumerate() {
        if pack.events.is_empty() {
            continue;
        }
        match send_pack(producer, topic, partition as i32, pack) {
            Ok(()) => {}
            Err(Refusal::QueueFull) => return false,
            Err(Refusal::Other(first, e)) => {
                *refused = Some((first, e));
                return true;
            }
        }
    }
    true
}

/// Why the producer did not take a pack.
enum Refusal {
    /// Its queue is full: the pack is kept, to be sent again.
    QueueFull,
    /// Anything else: the number of the pack's first event, and the error.
    Other(u64, rdkafka::error::KafkaError),
}

/// Hands `pack` to the producer as one message to `partition` and empties it. A pack the
/// producer has no room for is left as it was.
fn send_pack(
    producer: &BaseProducer<DeliveryContext>,
    topic: &str,
    partition: i32,
    pack: &mut kafka::Pack,
) -> Result<(), Refusal> {
    let events = Box::new(std::mem::take(&mut pack.events));
    let first = events.first().copied().unwrap_or_default();
    let record = BaseRecord::<(), [u8], _>::with_opaque_to(topic, events).partition(partition).payload(&pack.value);
    match producer.send(record) {
        Ok(()) => {
            pack.value.clear();
            Ok(())
        }
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
            pack.events = *record.delivery_opaque;
            Err(Refusal::QueueFull)
        }
        Err((e, _)) => {
            pack.value.clear();
            Err(Refusal::Other(first, e))
        }
    }
}
