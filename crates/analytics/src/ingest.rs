//! ingest: Kafka → ClickHouse. A consumer thread reads every partition of `<prefix>.events`
//! (manual assignment from the offsets recorded in ClickHouse: no consumer-group joins or
//! rebalances, one writer per partition), decodes adp-eventwire records in place straight into
//! the RowBinary the insert sends (no owned events: [`Batch::push_record`]) and cuts batches by rows
//! or time; the async loop hands each batch to the [`EventsSink`], retrying with backoff until
//! ClickHouse has it, and only then records the offsets. See [`crate::sink`] for why the counts
//! stay exact.
//!
//! Offsets are checked as they come ([`crate::gaps`]): a fetch that jumps over offsets the
//! broker acknowledged (Tansu does, see there) is refused and the partition read again from the
//! hole; a hole that persists past [`IngestSettings::gap_wait_ms`] is accepted and counted.
//!
//! Run one ingest process per topic. While ClickHouse is down the batch in hand is retried and
//! the consumer stops reading once its next batch is ready (bounded memory); no offset moves.

use crate::gaps::{GapGuard, Verdict};
use crate::sink::{Batch, EventsSink, IngestCounters, IngestSnapshot};
use crate::store::{ClickHouse, ClickHouseSettings, StoreError};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Settings of `adplatform ingest`.
#[derive(Clone, Debug)]
pub struct IngestSettings {
    pub clickhouse: ClickHouseSettings,
    /// Kafka bootstrap servers, e.g. `127.0.0.1:9092`.
    pub brokers: String,
    /// The events topic, `<topic_prefix>.events`.
    pub topic: String,
    /// The consumer group offsets are committed under (for lag tools; ClickHouse is the truth).
    pub group_id: String,
    /// A batch is written when it holds this many rows (events)...
    pub batch_rows: usize,
    /// ...or when its first event is this old.
    pub batch_ms: u64,
    /// Days of raw events kept (hourly partition drops); 0 keeps all.
    pub ttl_days: u32,
    /// Extra librdkafka settings, applied last.
    pub client_settings: Vec<(String, String)>,
    /// INSERTs each batch is split into, running at the same time (1..=16; an INSERT uses one
    /// core of ClickHouse 18.16). See [`crate::sink`].
    pub parallel_inserts: usize,
    /// Whether inserts are LZ4-compressed (the default). Uncompressed costs less CPU on both
    /// sides when ClickHouse is on the same machine; compressed sends ~5x fewer bytes.
    pub compress_inserts: bool,
    /// How long a hole in a partition's offsets is re-read before the ingest accepts it, counts
    /// it (`offset_gaps`) and logs it; 0 accepts holes at once (counted all the same). See
    /// [`crate::gaps`].
    pub gap_wait_ms: u64,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            clickhouse: ClickHouseSettings::default(),
            brokers: "127.0.0.1:9092".into(),
            topic: "adp.events".into(),
            group_id: "adp-ingest".into(),
            batch_rows: 500_000,
            batch_ms: 1000,
            ttl_days: 400,
            client_settings: Vec::new(),
            parallel_inserts: PARALLEL_INSERTS,
            compress_inserts: true,
            gap_wait_ms: crate::gaps::GAP_WAIT_MS,
        }
    }
}

/// The default of [`IngestSettings::parallel_inserts`].
pub const PARALLEL_INSERTS: usize = 2;

/// Why the ingest stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("invalid ingest settings: {0}")]
    Settings(String),
    #[error("the consumer thread stopped: {0}")]
    Consumer(String),
}

/// Runs the ingest until `shutdown` resolves; returns the final counters.
pub async fn run_ingest(
    settings: IngestSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<IngestSnapshot, IngestError> {
    run_ingest_with(settings, Arc::new(IngestCounters::default()), shutdown).await
}

/// [`run_ingest`] with counters the caller can watch while it runs.
pub async fn run_ingest_with(
    settings: IngestSettings,
    counters: Arc<IngestCounters>,
    shutdown: impl Future<Output = ()>,
) -> Result<IngestSnapshot, IngestError> {
    if settings.batch_rows == 0 || settings.batch_rows > 1_000_000 {
        // One INSERT stays one block (max_insert_block_size is 1,048,576 rows).
        return Err(IngestError::Settings("batch_rows must be 1..=1000000".into()));
    }
    if settings.batch_ms == 0 {
        return Err(IngestError::Settings("batch_ms must be at least 1".into()));
    }
    if !(1..=16).contains(&settings.parallel_inserts) {
        return Err(IngestError::Settings("parallel_inserts must be 1..=16".into()));
    }
    if settings.gap_wait_ms > 600_000 {
        return Err(IngestError::Settings("gap_wait_ms must be at most 600000".into()));
    }
    let ch = ClickHouse::connect(&settings.clickhouse)?;
    let mut sink = EventsSink::new(ch.clone(), &settings.topic)
        .with_ttl_days(settings.ttl_days)
        .with_parallel_inserts(settings.parallel_inserts)
        .with_compressed_inserts(settings.compress_inserts);
    let mut shutdown = std::pin::pin!(shutdown);

    // ClickHouse first: where to resume is recorded there.
    let mut backoff = Backoff::new();
    let start = loop {
        let attempt = async {
            crate::schema::check_schema(&ch).await?;
            sink.load_offsets().await
        };
        match attempt.await {
            Ok(offsets) => break offsets,
            Err(StoreError::Schema(msg)) => return Err(StoreError::Schema(msg).into()),
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.peek_ms(), "clickhouse not reachable; waiting");
                tokio::select! {
                    _ = backoff.wait() => {}
                    _ = &mut shutdown => return Ok(counters.snapshot()),
                }
            }
        }
    };
    tracing::info!(topic = %settings.topic, partitions_recorded = start.len(), "ingest starting");

    let consumer: Arc<BaseConsumer> = Arc::new(consumer_config(&settings).create()?);
    let stop = Arc::new(AtomicBool::new(false));
    let stored: Arc<Mutex<BTreeMap<i32, i64>>> = Arc::new(Mutex::new(start.clone()));
    let (tx, mut rx) = mpsc::channel::<Batch>(1);
    // Stored batches go back to the consumer thread, which empties them and fills their buffers
    // again instead of growing new ones.
    let (recycle_tx, recycle_rx) = std::sync::mpsc::sync_channel::<Batch>(1);
    let thread = {
        let reader = Reader {
            consumer: Arc::clone(&consumer),
            topic: settings.topic.clone(),
            start,
            tx,
            recycled: recycle_rx,
            stop: Arc::clone(&stop),
            counters: Arc::clone(&counters),
            stored: Arc::clone(&stored),
            batch_rows: settings.batch_rows,
            batch_wait: Duration::from_millis(settings.batch_ms),
            gap_wait: Duration::from_millis(settings.gap_wait_ms),
        };
        std::thread::Builder::new()
            .name("adp-ingest-consumer".into())
            .spawn(move || reader.run())
            .map_err(|e| IngestError::Consumer(e.to_string()))?
    };

    let mut last_retention: Option<Instant> = None;
    let mut stopping: Option<Instant> = None;
    const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
    loop {
        let waiting = Instant::now();
        let batch = if stopping.is_some() {
            rx.recv().await
        } else {
            tokio::select! {
                b = rx.recv() => b,
                _ = &mut shutdown => {
                    tracing::info!("ingest stopping: writing the batch in hand");
                    stop.store(true, Ordering::Relaxed);
                    stopping = Some(Instant::now());
                    continue;
                }
            }
        };
        let Some(batch) = batch else { break };
        let (idle, writing) = (waiting.elapsed(), Instant::now());
        let mut backoff = Backoff::new();
        let outcome = loop {
            match sink.write(&batch).await {
                Ok(outcome) => break Some(outcome),
                Err(e) => {
                    counters.insert_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, retry_in_ms = backoff.peek_ms(), "clickhouse insert failed; retrying the batch");
                }
            }
            if stopping.is_some_and(|t| t.elapsed() > SHUTDOWN_GRACE) {
                break None;
            }
            tokio::select! {
                _ = backoff.wait() => {}
                _ = &mut shutdown, if stopping.is_none() => {
                    stop.store(true, Ordering::Relaxed);
                    stopping = Some(Instant::now());
                }
            }
        };
        let Some(outcome) = outcome else {
            tracing::warn!("ingest stopped with an unwritten batch; it is read again on the next start");
            break;
        };
        let (wrote, recording) = (writing.elapsed(), Instant::now());
        // The events are stored: now the offsets may move.
        let mut backoff = Backoff::new();
        loop {
            match sink.record_offsets(&batch).await {
                Ok(()) => break,
                Err(e) if stopping.is_some_and(|t| t.elapsed() > SHUTDOWN_GRACE) => {
                    tracing::warn!(error = %e, "offsets not recorded at shutdown; the batch is deduplicated on the next start");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record offsets; retrying");
                    backoff.wait().await;
                }
            }
        }
        counters.inserted.fetch_add(outcome.inserted, Ordering::Relaxed);
        counters.duplicates_skipped.fetch_add(outcome.duplicates, Ordering::Relaxed);
        counters.rejected.fetch_add(outcome.rejected, Ordering::Relaxed);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        {
            let mut s = stored.lock().unwrap_or_else(PoisonError::into_inner);
            s.extend(batch.next_offsets.iter().map(|(p, o)| (*p, *o)));
        }
        commit_to_kafka(&consumer, &settings.topic, &batch.next_offsets);
        tracing::debug!(
            inserted = outcome.inserted,
            duplicates = outcome.duplicates,
            records = batch.records(),
            idle_ms = idle.as_millis() as u64,
            write_ms = wrote.as_millis() as u64,
            offsets_ms = recording.elapsed().as_millis() as u64,
            "batch stored"
        );
        // Never waits: a batch the consumer has no room for is dropped here.
        let _ = recycle_tx.try_send(batch);
        if last_retention.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
            last_retention = Some(Instant::now());
            if let Err(e) = crate::schema::apply_retention(&ch, settings.ttl_days, chrono::Utc::now()).await {
                tracing::warn!(error = %e, "raw events retention failed; trying again in an hour");
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    drop(rx);
    let joined = tokio::task::spawn_blocking(move || thread.join()).await;
    match joined {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(e),
        _ => return Err(IngestError::Consumer("the consumer thread panicked".into())),
    }
    let snapshot = counters.snapshot();
    tracing::info!(?snapshot, "ingest stopped");
    Ok(snapshot)
}

/// The librdkafka settings the ingest consumes with (for benchmarks too).
pub fn consumer_config(settings: &IngestSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &settings.brokers)
        .set("client.id", "adplatform-ingest")
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("max.partition.fetch.bytes", "4194304")
        .set("fetch.wait.max.ms", "100")
        // Once more than `queued.min.messages` (100k) wait in the local queue, librdkafka stops
        // fetching for `fetch.queue.backoff.ms`: at its default (1 s) a consumer that decodes
        // slower than the broker delivers got ~100k messages, then a second of nothing, and the
        // ingest ran at ~130k rows/s (BENCHMARKS.md). 10 ms keeps the queue full at the cost of
        // a timer.
        .set("fetch.queue.backoff.ms", "10")
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "2000")
        .set_log_level(RDKafkaLogLevel::Warning);
    for (k, v) in &settings.client_settings {
        c.set(k, v);
    }
    c
}

/// Commits the stored offsets to Kafka for lag tools; best effort (ClickHouse holds the truth).
fn commit_to_kafka(consumer: &BaseConsumer, topic: &str, next: &BTreeMap<i32, i64>) {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in next {
        if tpl.add_partition_offset(topic, *p, Offset::Offset(*o)).is_err() {
            return;
        }
    }
    if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
        tracing::debug!(error = %e, "kafka offset commit failed (informational only)");
    }
}

/// The consumer thread: assignment, polling, decoding, batching, lag.
struct Reader {
    consumer: Arc<BaseConsumer>,
    topic: String,
    start: BTreeMap<i32, i64>,
    tx: mpsc::Sender<Batch>,
    /// Stored batches, to be emptied and filled again (their memory is reused).
    recycled: std::sync::mpsc::Receiver<Batch>,
    stop: Arc<AtomicBool>,
    counters: Arc<IngestCounters>,
    stored: Arc<Mutex<BTreeMap<i32, i64>>>,
    batch_rows: usize,
    batch_wait: Duration,
    /// How long a hole is re-read before it is accepted ([`GapGuard`]).
    gap_wait: Duration,
}

impl Reader {
    fn run(self) -> Result<(), IngestError> {
        let mut assigned: Vec<i32> = Vec::new();
        let mut last_meta: Option<Instant> = None;
        let mut last_lag = Instant::now();
        let mut batch = self.empty_batch();
        let mut batch_started: Option<Instant> = None;
        let mut warned_decode: Option<Instant> = None;
        let mut guard = GapGuard::new(self.gap_wait);
        // The clocks are read when a poll comes back empty and every 256 messages, not per
        // message (a batch is due at most 256 messages late).
        let (mut polls, mut read_clocks) = (0u32, true);
        while !self.stop.load(Ordering::Relaxed) {
            let every = Duration::from_secs(if assigned.is_empty() { 1 } else { 30 });
            if read_clocks && last_meta.is_none_or(|t| t.elapsed() > every) {
                last_meta = Some(Instant::now());
                self.assign_new_partitions(&mut assigned, &mut guard);
                if assigned.is_empty() {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            }
            polls = polls.wrapping_add(1);
            read_clocks = polls % 256 == 0;
            match self.consumer.poll(Duration::from_millis(50)) {
                Some(Ok(msg)) => {
                    let (partition, offset) = (msg.partition(), msg.offset());
                    if self.take(&mut guard, partition, offset) {
                        self.counters.consumed.fetch_add(1, Ordering::Relaxed);
                        batch.next_offsets.insert(partition, offset + 1);
                        if let Some((skipped, e)) =
                            batch.push_message(partition, offset, msg.payload().unwrap_or_default())
                        {
                            self.counters.undecodable.fetch_add(skipped, Ordering::Relaxed);
                            if warned_decode.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                                warned_decode = Some(Instant::now());
                                tracing::warn!(partition, offset, skipped, error = %e, "skipping records that are not events");
                            }
                        }
                        batch_started.get_or_insert_with(Instant::now);
                    }
                }
                Some(Err(e)) => {
                    read_clocks = true;
                    tracing::debug!(error = %e, "kafka consumer error");
                }
                None => read_clocks = true,
            }
            if guard.holding() {
                self.reread_due(&mut guard);
            }
            // Rows, not messages: a decision that stands for its request is two rows, and one
            // batch must stay one INSERT block (`batch_rows` is at most 1M).
            let full = batch.len() + batch.undecodable as usize >= self.batch_rows;
            let due = read_clocks && batch_started.is_some_and(|t| t.elapsed() >= self.batch_wait);
            if full || due {
                let (filled, handing) = (batch_started.take().map(|t| t.elapsed()), Instant::now());
                let records = batch.records();
                if self.tx.blocking_send(std::mem::take(&mut batch)).is_err() {
                    return Ok(());
                }
                // Taken after the hand-over: by then the sink has often given one back.
                batch = self.empty_batch();
                tracing::debug!(
                    records,
                    fill_ms = filled.unwrap_or_default().as_millis() as u64,
                    blocked_ms = handing.elapsed().as_millis() as u64,
                    "batch handed to the sink"
                );
            }
            if read_clocks && last_lag.elapsed() > Duration::from_secs(2) {
                last_lag = Instant::now();
                self.update_lag(&assigned);
            }
        }
        if !batch.is_empty() {
            let _ = self.tx.blocking_send(batch);
        }
        Ok(())
    }

    /// Asks the guard about a polled message and does what it says to the partition; whether
    /// the message is taken into the batch.
    fn take(&self, guard: &mut GapGuard, partition: i32, offset: i64) -> bool {
        match guard.check(partition, offset, Instant::now) {
            Verdict::Take => true,
            Verdict::Skip => false,
            Verdict::Hold { missing, first } => {
                self.counters.gap_retries.fetch_add(1, Ordering::Relaxed);
                if first {
                    tracing::warn!(
                        partition,
                        from = missing.start,
                        to = missing.end - 1,
                        got = offset,
                        "the fetch jumped over offsets; pausing the partition to read it again from the hole"
                    );
                } else {
                    tracing::debug!(
                        partition,
                        from = missing.start,
                        got = offset,
                        "the hole is still there; reading again"
                    );
                }
                // Pausing bumps the partition's version in librdkafka: every message of it
                // already fetched (past the hole) is dropped, not delivered.
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(&self.topic, partition);
                if let Err(e) = self.consumer.pause(&tpl) {
                    // The seek when the re-read is due moves it back all the same.
                    tracing::warn!(error = %e, partition, "cannot pause a partition with a hole");
                }
                false
            }
            Verdict::TakeAfterGap { missing, waited } => {
                self.counters.offset_gaps.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    topic = %self.topic,
                    partition,
                    from = missing.start,
                    to = missing.end - 1,
                    messages = missing.end - missing.start,
                    waited_ms = waited.as_millis() as u64,
                    "offsets never delivered: reading them again did not bring them back; going on past them (compaction or transaction markers on Kafka; events lost if the broker had acknowledged them)"
                );
                true
            }
            Verdict::TakeRewound { expected } => {
                tracing::warn!(
                    partition,
                    offset,
                    expected,
                    "the consumer went back (offset reset?); reading on from here, the sink drops what it holds"
                );
                true
            }
        }
    }

    /// Seeks the paused partitions whose re-read is due back to where the guard says and
    /// resumes them. `seek` with a timeout returns once the fetcher has the new position; no
    /// message fetched before it is delivered afterwards (librdkafka's version barrier).
    fn reread_due(&self, guard: &mut GapGuard) {
        for (partition, from) in guard.due(Instant::now()) {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&self.topic, partition);
            let done = self
                .consumer
                .seek(&self.topic, partition, Offset::Offset(from), Duration::from_secs(1))
                .and_then(|()| self.consumer.resume(&tpl));
            if let Err(e) = done {
                tracing::warn!(error = %e, partition, from, "cannot seek a partition back to its hole; trying again");
                guard.postpone(partition, from, Instant::now());
            }
        }
    }

    /// A stored batch emptied, if one came back, or a new one.
    fn empty_batch(&self) -> Batch {
        match self.recycled.try_recv() {
            Ok(mut b) => {
                b.clear();
                b
            }
            Err(_) => Batch::with_capacity(self.batch_rows.min(16_384)),
        }
    }

    /// Assigns partitions of the topic not assigned yet, keeping the others where they are.
    /// The guard expects each partition at the offset it is assigned at: where it was (the
    /// guard's expected offset, else the consumer's position), the offset recorded in
    /// ClickHouse, or the partition's low watermark for one read from its beginning.
    fn assign_new_partitions(&self, assigned: &mut Vec<i32>, guard: &mut GapGuard) {
        let meta = match self.consumer.fetch_metadata(Some(&self.topic), Duration::from_secs(5)) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, topic = %self.topic, "cannot read topic metadata");
                return;
            }
        };
        let Some(t) = meta.topics().iter().find(|t| t.name() == self.topic) else { return };
        if t.error().is_some() || t.partitions().is_empty() {
            if assigned.is_empty() {
                tracing::info!(topic = %self.topic, "waiting for the topic to exist");
            }
            return;
        }
        let mut all: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
        all.sort_unstable();
        if all == *assigned {
            return;
        }
        let current = self.consumer.position().ok();
        let mut tpl = TopicPartitionList::new();
        let mut expect = Vec::with_capacity(all.len());
        for p in &all {
            let at_now = guard.expected(*p).map(Offset::Offset).or_else(|| {
                current
                    .as_ref()
                    .and_then(|c| c.find_partition(&self.topic, *p))
                    .map(|e| e.offset())
                    .filter(|o| matches!(o, Offset::Offset(_)))
            });
            let offset = match (at_now, self.start.get(p)) {
                (Some(o), _) => o,
                (None, Some(o)) => Offset::Offset(*o),
                (None, None) => Offset::Beginning,
            };
            expect.push(match offset {
                Offset::Offset(o) => Some(o),
                // A hole at the very start (the first batches stored out of order) is a hole
                // too. Unknown if the watermarks cannot be read: the first message sets it.
                _ => self
                    .consumer
                    .fetch_watermarks(&self.topic, *p, Duration::from_millis(500))
                    .ok()
                    .map(|(low, _)| low)
                    .filter(|low| *low >= 0),
            });
            if let Err(e) = tpl.add_partition_offset(&self.topic, *p, offset) {
                tracing::warn!(error = %e, partition = p, "cannot set a start offset");
                return;
            }
        }
        match self.consumer.assign(&tpl) {
            Ok(()) => {
                tracing::info!(topic = %self.topic, partitions = all.len(), "partitions assigned");
                let starts: Vec<(i32, Option<i64>)> = all.iter().copied().zip(expect).collect();
                for (p, at) in &starts {
                    guard.assigned(*p, *at);
                }
                // A partition held for a re-read is fetched from the assigned offset now.
                if let Err(e) = self.consumer.resume(&tpl) {
                    // One librdkafka kept paused would never deliver again, and the guard would
                    // not know: it seeks and resumes them once more when due.
                    tracing::warn!(error = %e, "cannot resume the assigned partitions; trying again");
                    for (p, at) in &starts {
                        if let Some(at) = at {
                            guard.postpone(*p, *at, Instant::now());
                        }
                    }
                }
                *assigned = all;
            }
            Err(e) => tracing::warn!(error = %e, "cannot assign partitions"),
        }
    }

    /// Lag: messages in Kafka not yet stored in ClickHouse.
    fn update_lag(&self, assigned: &[i32]) {
        let stored = self.stored.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let mut lag = 0u64;
        for p in assigned {
            let Ok((low, high)) = self.consumer.fetch_watermarks(&self.topic, *p, Duration::from_millis(500)) else {
                return;
            };
            let done = stored.get(p).copied().unwrap_or(low).max(low);
            lag += (high - done).max(0) as u64;
        }
        self.counters.lag.store(lag, Ordering::Relaxed);
    }
}

/// Exponential backoff, 100 ms doubling to 5 s.
struct Backoff {
    next_ms: u64,
}

impl Backoff {
    fn new() -> Self {
        Backoff { next_ms: 100 }
    }

    fn peek_ms(&self) -> u64 {
        self.next_ms
    }

    async fn wait(&mut self) {
        tokio::time::sleep(Duration::from_millis(self.next_ms)).await;
        self.next_ms = (self.next_ms * 2).min(5_000);
    }
}
