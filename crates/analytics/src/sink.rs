//! sink: writes batches of consumed events into ClickHouse exactly once in the counts. All the
//! ClickHouse I/O of the ingest path lives here; the Kafka side is in [`crate::ingest`].
//!
//! # Why the counts are exact (on 18.16 and current servers)
//!
//! 1. **One writer per partition, one batch at a time.** One `adplatform ingest` process owns
//!    the topic's partitions (manual assignment, no group rebalances), and its sink writes one
//!    batch at a time: nothing else inserts into `events` for those partitions while a batch is
//!    looked up and inserted. A batch's rows may go in as several INSERTs running at the same
//!    time ([`EventsSink::with_parallel_inserts`]; an INSERT uses one core of 18.16), but those
//!    carry disjoint sets of (partition, id) — step 2 leaves one copy of each — and all of them
//!    belong to the batch that was just looked up, so they cannot insert anything twice.
//! 2. **Dedup by event id before every insert.** The batch is deduplicated in memory (same
//!    partition and id: kept once), then ClickHouse is asked which of its ids `events` already
//!    holds ([`EventsSink::existing`]): per UTC hour of the batch, a range of ids on the table's
//!    primary key `(event_hour, event_id)`, restricted to the batch's partitions. A copy of an
//!    event has the same id, the same event time (so the same hour) and the same key (so the
//!    same Kafka partition), hence it is found. Only absent rows are inserted.
//! 3. **Raw and rollup in one INSERT.** The rollup is a materialized view of `events`, so the
//!    rows a single INSERT adds to `events` are exactly the rows it adds to the rollup, whatever
//!    part of the INSERT the server committed. After an insert error the outcome of every INSERT
//!    of the attempt is unknown (the server may have committed all, part or nothing of each;
//!    the others may have succeeded): the sink waits for all of them to end, then first makes
//!    sure none is still running (`KILL QUERY ... SYNC` on each query id, then
//!    `system.processes`), then asks again which ids exist and inserts only the rest. Rows the
//!    failed attempt stored count as inserted then, found or not by which INSERT.
//! 4. **Offsets after the data.** The next offset of each partition is written to
//!    `ingest_offsets` (and committed to Kafka, for lag tools) only after ClickHouse acknowledged
//!    every insert of the batch. A crash in between re-reads the tail, which step 2 turns into
//!    no-ops.
//!
//! The one thing this cannot see is ClickHouse itself dying between writing a block's `events`
//! part and its rollup part (18.16 writes the table, then its views, as separate parts): raw is
//! then complete and the rollup misses that block. Nothing on the client side can cause it.
//!
//! The consumer hands over events already in the RowBinary the insert sends
//! ([`Batch::push_record`] reads a record in place): inserting a row is copying its bytes and
//! appending its provenance columns.

use crate::rowbinary::{
    encode_event_fields, encode_provenance, event_id_bytes, id_ref_bytes, Provenance, EVENT_COLUMNS,
};
use crate::store::{quote, quote_bytes, ClickHouse, Result, StoreError};
use adp_domain::events::Event;
use adp_eventwire::EventRef;
use rustc_hash::FxHashSet;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bytes of RowBinary sent per chunk of an insert.
const CHUNK_BYTES: usize = 1 << 20;
/// Two ids of one hour more than this far apart (ms, by their UUIDv7 time) are looked up as two
/// ranges.
const RANGE_GAP_MS: u64 = 2_000;
/// Id ranges per lookup query.
const TERMS_PER_QUERY: usize = 400;
/// More id ranges than this in a batch: one range per hour instead.
const MAX_TERMS: usize = 4_000;
/// A batch is split into parallel INSERTs only in parts of at least this many rows.
pub const MIN_ROWS_PER_INSERT: usize = 1_000;

/// A consumed Kafka message that decoded into an event (the owned form, for callers that have
/// events rather than records: [`Batch::push_event`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Incoming {
    pub partition: i32,
    pub offset: i64,
    pub event: Event,
}

/// What the consumer hands the sink: decoded events, already in the RowBinary the insert sends
/// (all columns but the provenance ones, which depend on the attempt), and, per partition, the
/// offset after the last message consumed (undecodable ones included).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// The rows' columns up to `reason` ([`encode_event_fields`]), one after another.
    data: Vec<u8>,
    rows: Vec<Row>,
    pub next_offsets: BTreeMap<i32, i64>,
    /// Records that did not decode (skipped; their messages' offsets still advance).
    pub undecodable: u64,
    /// Rows that are the request event a decision stands for
    /// ([`EventRef::implied_request`]): a second row of the same message.
    implied: u64,
}

/// One event of a [`Batch`]: what the sink needs to know besides its bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Row {
    partition: i32,
    offset: i64,
    event_time_ms: i64,
    /// The event id as stored and deduplicated ([`event_id_bytes`]).
    id: [u8; 16],
    /// Its bytes in `Batch::data` (none if its time cannot be stored: it is rejected).
    start: usize,
    end: usize,
}

impl Batch {
    /// A batch of owned events.
    pub fn from_incoming<'a>(events: impl IntoIterator<Item = &'a Incoming>) -> Batch {
        let mut batch = Batch::default();
        for i in events {
            batch.push_event(i.partition, i.offset, &i.event);
        }
        batch
    }

    /// Adds an owned event.
    pub fn push_event(&mut self, partition: i32, offset: i64, event: &Event) {
        self.push_view(partition, offset, &EventRef::of(event), event_id_bytes(&event.id));
    }

    /// Adds the event an adp-eventwire record holds, read in place (no owned event is made); a
    /// record [`adp_eventwire::decode`] refuses is refused with the same error and not added.
    pub fn push_record(
        &mut self,
        partition: i32,
        offset: i64,
        record: &[u8],
    ) -> Result<(), adp_eventwire::DecodeError> {
        let view = adp_eventwire::decode_ref(record)?;
        self.push_view(partition, offset, &view, id_ref_bytes(view.id));
        Ok(())
    }

    /// Adds the events of one Kafka message: an adp-eventwire batch of one or more records (the
    /// forwarder packs the events of a partition; see `adp_events::forwarder`). A record that
    /// does not decode is skipped and counted in `undecodable`, and so is the rest of the message
    /// after a broken envelope, as one; an empty message counts as one. Returns how many were
    /// skipped, and the first error.
    pub fn push_message(
        &mut self,
        partition: i32,
        offset: i64,
        value: &[u8],
    ) -> Option<(u64, adp_eventwire::DecodeError)> {
        if value.is_empty() {
            self.undecodable += 1;
            return Some((1, adp_eventwire::DecodeError::Truncated { reason: "empty" }));
        }
        let mut skipped: Option<(u64, adp_eventwire::DecodeError)> = None;
        for record in adp_eventwire::record_slices(value) {
            if let Err(e) = record.and_then(|r| self.push_record(partition, offset, r)) {
                self.undecodable += 1;
                match &mut skipped {
                    Some((n, _)) => *n += 1,
                    None => skipped = Some((1, e)),
                }
            }
        }
        skipped
    }

    /// Adds the rows of one record: the event, after the request event it stands for if it
    /// does (`events` holds one row per event of every kind, whichever way it was written).
    fn push_view(&mut self, partition: i32, offset: i64, view: &EventRef<'_>, id: [u8; 16]) {
        if let Some(request) = view.implied_request() {
            self.push_row(partition, offset, &request, id_ref_bytes(request.id));
            self.implied += 1;
        }
        self.push_row(partition, offset, view, id);
    }

    fn push_row(&mut self, partition: i32, offset: i64, view: &EventRef<'_>, id: [u8; 16]) {
        let start = self.data.len();
        // An event time a row cannot hold writes nothing; `prepare` rejects the row.
        let _ = encode_event_fields(&mut self.data, view, &id);
        let end = self.data.len();
        self.rows.push(Row { partition, offset, event_time_ms: view.event_time_ms, id, start, end });
    }

    /// Events in the batch (rows: a decision that stands for its request is two).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.next_offsets.is_empty()
    }

    /// Records in the batch, decodable or not (a decision that stands for its request is one).
    pub fn records(&self) -> u64 {
        self.rows.len() as u64 - self.implied + self.undecodable
    }

    /// Empties the batch, keeping its memory for the next one.
    pub fn clear(&mut self) {
        self.data.clear();
        self.rows.clear();
        self.next_offsets.clear();
        self.undecodable = 0;
        self.implied = 0;
    }

    /// Room for `rows` events without growing.
    pub fn with_capacity(rows: usize) -> Batch {
        Batch { data: Vec::with_capacity(rows * 256), rows: Vec::with_capacity(rows), ..Batch::default() }
    }
}

/// Counters of the ingest, shared with whoever watches it. Names follow
/// `adp_ingest_<name>_total`; `lag` is a gauge (messages in Kafka not yet in ClickHouse).
#[derive(Debug, Default)]
pub struct IngestCounters {
    /// Kafka messages taken (each holds one or more event records).
    pub consumed: AtomicU64,
    /// Records that did not decode (skipped).
    pub undecodable: AtomicU64,
    pub rejected: AtomicU64,
    pub inserted: AtomicU64,
    pub duplicates_skipped: AtomicU64,
    pub batches: AtomicU64,
    pub insert_errors: AtomicU64,
    pub lag: AtomicU64,
    /// Offset holes accepted after the wait ([`crate::gaps`]): offsets a fetch jumped over that
    /// re-reading did not bring back (compaction or transaction markers on Kafka; lost events
    /// on a broker that acknowledged them).
    pub offset_gaps: AtomicU64,
    /// Times a partition was paused and read again because a fetch jumped over offsets.
    pub gap_retries: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestSnapshot {
    pub consumed: u64,
    pub undecodable: u64,
    /// Events not stored: older than the raw retention (`ttl_days`) or after 2106.
    pub rejected: u64,
    pub inserted: u64,
    pub duplicates_skipped: u64,
    pub batches: u64,
    pub insert_errors: u64,
    pub lag: u64,
    pub offset_gaps: u64,
    pub gap_retries: u64,
}

impl IngestCounters {
    pub fn snapshot(&self) -> IngestSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        IngestSnapshot {
            consumed: g(&self.consumed),
            undecodable: g(&self.undecodable),
            rejected: g(&self.rejected),
            inserted: g(&self.inserted),
            duplicates_skipped: g(&self.duplicates_skipped),
            batches: g(&self.batches),
            insert_errors: g(&self.insert_errors),
            lag: g(&self.lag),
            offset_gaps: g(&self.offset_gaps),
            gap_retries: g(&self.gap_retries),
        }
    }
}

/// A row to insert: its index in the batch and its (partition, id).
type Sending = (usize, (u32, [u8; 16]));

/// A batch after in-memory deduplication, ready to check and insert.
struct Prepared {
    /// Row indices in the batch, in (partition, offset) order.
    rows: Vec<usize>,
    in_batch_duplicates: u64,
    rejected: u64,
}

/// What one successful [`EventsSink::write`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    pub inserted: u64,
    pub duplicates: u64,
    pub rejected: u64,
}

/// The ClickHouse side of the ingest: one instance per topic, one batch at a time.
pub struct EventsSink {
    ch: ClickHouse,
    topic: String,
    insert_timeout: Duration,
    seq: u64,
    /// The query ids of inserts whose outcome is unknown.
    uncertain: Vec<String>,
    /// The rows that insert carried: found stored on the retry, they count as inserted.
    attempted: Vec<(u32, [u8; 16])>,
    /// Days of raw events kept (0 = all): older events are rejected, not stored.
    ttl_days: u32,
    /// INSERTs a batch is split into, run at the same time.
    parallel_inserts: usize,
    /// Whether inserts are sent LZ4-compressed.
    compress_inserts: bool,
    /// Test hook: the INSERT of this index in the next write is refused by ClickHouse.
    #[cfg(feature = "testkit")]
    fail_part_once: Option<usize>,
}

impl EventsSink {
    pub fn new(ch: ClickHouse, topic: &str) -> EventsSink {
        EventsSink {
            ch,
            topic: topic.to_string(),
            insert_timeout: Duration::from_secs(120),
            seq: 0,
            uncertain: Vec::new(),
            parallel_inserts: 2,
            compress_inserts: true,
            attempted: Vec::new(),
            ttl_days: 0,
            #[cfg(feature = "testkit")]
            fail_part_once: None,
        }
    }

    /// Test hook (feature `testkit`): in the next write that sends rows, the INSERT of index
    /// `part` (0-based, of [`EventsSink::with_parallel_inserts`]) runs in ClickHouse's
    /// read-only mode, so the server refuses it while the other INSERTs of the batch go in: the
    /// partial failure a retry must turn into exact counts.
    #[cfg(feature = "testkit")]
    pub fn fail_insert_part_once(&mut self, part: usize) {
        self.fail_part_once = Some(part);
    }

    /// Rejects events older than the raw events retention (`ttl_days`, 0 = keep all): their day
    /// is dropped, so copies of them could no longer be recognised, and they would be dropped
    /// anyway.
    pub fn with_ttl_days(mut self, ttl_days: u32) -> Self {
        self.ttl_days = ttl_days;
        self
    }

    /// Splits each batch into up to `n` INSERTs of disjoint rows that run at the same time (an
    /// INSERT uses one core of ClickHouse 18.16). At least 1; parts have at least
    /// [`MIN_ROWS_PER_INSERT`] rows.
    pub fn with_parallel_inserts(mut self, n: usize) -> Self {
        self.parallel_inserts = n.max(1);
        self
    }

    /// Sends inserts uncompressed (`false`) or LZ4-compressed (`true`, the default). Over
    /// loopback, compressing costs this process and ClickHouse more CPU than it saves.
    pub fn with_compressed_inserts(mut self, compress: bool) -> Self {
        self.compress_inserts = compress;
        self
    }

    /// The start of the oldest UTC day retention keeps, in ms (0 without retention).
    fn min_event_time_ms(&self) -> i64 {
        if self.ttl_days == 0 {
            return 0;
        }
        let cutoff = chrono::Utc::now().date_naive() - chrono::Duration::days(i64::from(self.ttl_days));
        cutoff.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis()).unwrap_or(0).max(0)
    }

    pub fn clickhouse(&self) -> &ClickHouse {
        &self.ch
    }

    /// Where to resume: the next offset of each partition recorded in `ingest_offsets`.
    pub async fn load_offsets(&self) -> Result<BTreeMap<i32, i64>> {
        let rows = self.ch.fetch_tsv(&load_offsets_sql(self.ch.database(), &self.topic)).await?;
        let mut out = BTreeMap::new();
        for r in rows {
            let (Some(p), Some(o)) = (r.first(), r.get(1)) else { continue };
            let p: i32 = p.parse().map_err(|_| StoreError::Protocol(format!("partition `{p}`")))?;
            let o: i64 = o.parse().map_err(|_| StoreError::Protocol(format!("offset `{o}`")))?;
            out.insert(p, o);
        }
        Ok(out)
    }

    fn next_batch_id(&mut self) -> u64 {
        self.seq += 1;
        let ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        (ms << 12) | (self.seq & 0xfff)
    }

    /// Writes a batch's events once: settles an earlier uncertain insert, skips ids already
    /// stored, inserts the rest. An error leaves the batch to be written again with the same
    /// call; nothing is ever counted twice.
    pub async fn write(&mut self, batch: &Batch) -> Result<WriteOutcome> {
        self.settle().await?;
        let prepared = prepare(batch, self.min_event_time_ms());
        if prepared.rows.is_empty() {
            self.attempted.clear();
            return Ok(WriteOutcome {
                inserted: 0,
                duplicates: prepared.in_batch_duplicates,
                rejected: prepared.rejected,
            });
        }
        let looking_up = std::time::Instant::now();
        let existing = self.existing(batch, &prepared.rows).await?;
        let lookup_ms = looking_up.elapsed().as_millis() as u64;
        // Looked up only for rows found stored (none, unless an insert failed or a copy came in).
        let attempted: HashSet<(u32, [u8; 16])> =
            if existing.is_empty() { HashSet::new() } else { self.attempted.iter().copied().collect() };
        let batch_id = self.next_batch_id();
        let mut sending: Vec<Sending> = Vec::with_capacity(prepared.rows.len());
        let (mut duplicates, mut landed_earlier) = (prepared.in_batch_duplicates, 0u64);
        for i in &prepared.rows {
            let row = &batch.rows[*i];
            let key = (row.partition as u32, row.id);
            if existing.contains(&key) {
                // Rows an earlier, failed attempt at this batch managed to store are ours.
                if attempted.contains(&key) {
                    landed_earlier += 1;
                } else {
                    duplicates += 1;
                }
                continue;
            }
            sending.push((*i, key));
        }
        let mut rejected = prepared.rejected;
        let mut inserted = landed_earlier;
        if !sending.is_empty() {
            // Disjoint slices of the rows (no (partition, id) is in two: `prepare` kept one copy
            // of each), inserted at the same time.
            let parts = self.parallel_inserts.min(sending.len() / MIN_ROWS_PER_INSERT).max(1);
            let per_part = sending.len().div_ceil(parts);
            let slices: Vec<&[Sending]> = sending.chunks(per_part).collect();
            let query_ids: Vec<String> = if slices.len() == 1 {
                vec![format!("adp-ingest-{batch_id}")]
            } else {
                (0..slices.len()).map(|k| format!("adp-ingest-{batch_id}-{k}")).collect()
            };
            // Uncertain from here until every insert is acknowledged.
            self.uncertain.clone_from(&query_ids);
            let retrying = !self.attempted.is_empty();
            self.attempted.extend(sending.iter().map(|(_, key)| *key));
            if retrying {
                // Repeated failures add the same rows again: keep each once.
                self.attempted.sort_unstable();
                self.attempted.dedup();
            }
            #[cfg(feature = "testkit")]
            let fail_part = self.fail_part_once.take();
            #[cfg(not(feature = "testkit"))]
            let fail_part: Option<usize> = None;
            // Every insert runs to its end (none is dropped half way) before the outcome is known.
            let this = &*self;
            let outcomes = join_all(
                slices
                    .iter()
                    .zip(&query_ids)
                    .enumerate()
                    .map(|(k, (rows, q))| this.insert(q, batch, rows, batch_id, fail_part == Some(k))),
            )
            .await;
            let mut unencodable = 0;
            for outcome in outcomes {
                unencodable += outcome?;
            }
            inserted += sending.len() as u64 - unencodable;
            rejected += unencodable;
            self.uncertain.clear();
            tracing::debug!(
                rows = sending.len(),
                inserts = query_ids.len(),
                lookup_ms,
                insert_ms = looking_up.elapsed().as_millis() as u64 - lookup_ms,
                "batch inserted"
            );
        }
        self.attempted.clear();
        Ok(WriteOutcome { inserted, duplicates, rejected })
    }

    /// Inserts the rows, copying their bytes (and appending their provenance) chunk by chunk
    /// while the earlier chunks are on their way. Returns how many rows could not be encoded
    /// (none: `prepare` rejected the rows whose time a row cannot hold).
    async fn insert(
        &self,
        query_id: &str,
        batch: &Batch,
        rows: &[Sending],
        batch_id: u64,
        refuse: bool,
    ) -> Result<u64> {
        let sql = format!("INSERT INTO {} ({EVENT_COLUMNS}) FORMAT RowBinary", self.ch.table("events"));
        let client = if self.compress_inserts {
            self.ch.client().clone()
        } else {
            self.ch.client().clone().with_compression(clickhouse::Compression::None)
        };
        let mut insert = client
            .insert_formatted_with(sql)
            .with_setting("query_id", query_id)
            .with_timeouts(Some(Duration::from_secs(30)), Some(self.insert_timeout));
        if refuse {
            // Only ever set by the testkit's hook: the server refuses writes in read-only mode.
            insert = insert.with_setting("readonly", "1");
        }
        // Rows are a few hundred bytes: a chunk rarely outgrows its first allocation.
        let new_chunk = || Vec::with_capacity(CHUNK_BYTES + 64 * 1024);
        let mut chunk = new_chunk();
        let mut unencodable = 0;
        for (i, (partition, _)) in rows {
            let row = &batch.rows[*i];
            if row.start == row.end {
                // Never happens: `prepare` rejected the rows whose time a row cannot hold.
                unencodable += 1;
                continue;
            }
            chunk.extend_from_slice(&batch.data[row.start..row.end]);
            encode_provenance(&mut chunk, Provenance { partition: *partition, offset: row.offset, batch_id });
            if chunk.len() >= CHUNK_BYTES {
                insert.send(bytes::Bytes::from(std::mem::replace(&mut chunk, new_chunk()))).await?;
            }
        }
        if !chunk.is_empty() {
            insert.send(bytes::Bytes::from(chunk)).await?;
        }
        insert.end().await?;
        Ok(unencodable)
    }

    /// Makes sure the inserts whose outcome is unknown are no longer running, so that what they
    /// wrote (all, part or nothing) is visible to the next lookup.
    async fn settle(&mut self) -> Result<()> {
        while let Some(query_id) = self.uncertain.last().cloned() {
            self.settle_one(&query_id).await?;
            self.uncertain.pop();
        }
        Ok(())
    }

    async fn settle_one(&self, query_id: &str) -> Result<()> {
        let q = quote(query_id);
        self.ch.execute(&format!("KILL QUERY WHERE query_id = {q} SYNC")).await?;
        for _ in 0..600 {
            let rows = self.ch.fetch_tsv(&format!("SELECT count() FROM system.processes WHERE query_id = {q}")).await?;
            if rows.first().and_then(|r| r.first()).map(String::as_str) == Some("0") {
                tracing::info!(query_id, "uncertain insert settled; rechecking which events are stored");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(StoreError::Protocol(format!("insert {query_id} is still running after KILL QUERY")))
    }

    /// The (partition, id) pairs of `rows` that `events` already holds.
    async fn existing(&self, batch: &Batch, rows: &[usize]) -> Result<HashSet<(u32, [u8; 16])>> {
        let mut found = HashSet::new();
        for sql in lookup_sql(self.ch.database(), batch, rows) {
            let bytes = self.ch.fetch_raw(&sql, "RowBinary").await?;
            if bytes.len() % 20 != 0 {
                return Err(StoreError::Protocol(format!("id lookup returned {} bytes", bytes.len())));
            }
            for rec in bytes.chunks_exact(20) {
                let p = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
                let mut id = [0u8; 16];
                id.copy_from_slice(&rec[4..]);
                found.insert((p, id));
            }
        }
        Ok(found)
    }

    /// Records where each partition of the batch continues, after its events were stored.
    pub async fn record_offsets(&mut self, batch: &Batch) -> Result<()> {
        if batch.next_offsets.is_empty() {
            return Ok(());
        }
        let batch_id = self.next_batch_id();
        self.ch.execute(&record_offsets_sql(self.ch.database(), &self.topic, &batch.next_offsets, batch_id)).await
    }
}

/// The statement recording where each partition continues.
pub fn record_offsets_sql(database: &str, topic: &str, next: &BTreeMap<i32, i64>, batch_id: u64) -> String {
    let mut values = String::new();
    for (p, o) in next {
        if !values.is_empty() {
            values.push_str(", ");
        }
        let _ = write!(values, "({}, {p}, {o}, {batch_id}, now())", quote(topic));
    }
    format!(
        "INSERT INTO {database}.ingest_offsets (topic, kafka_partition, next_offset, batch_id, updated_at) VALUES {values}"
    )
}

/// The query reading where each partition continues: rows of (partition, next offset).
pub fn load_offsets_sql(database: &str, topic: &str) -> String {
    format!(
        // The latest record wins, not the highest offset: after a broker lost its log and the
        // partition started again from 0, the offsets recorded since are the ones to resume at.
        "SELECT kafka_partition, argMax(next_offset, batch_id) FROM {database}.ingest_offsets WHERE topic = {} GROUP BY kafka_partition",
        quote(topic)
    )
}

/// The id lookups of a batch's rows (after [`prepare`]); each answers RowBinary rows of
/// `(kafka_partition UInt32, event_id FixedString(16))` for the ids `events` already holds.
fn lookup_sql(database: &str, batch: &Batch, rows: &[usize]) -> Vec<String> {
    let mut by_hour: BTreeMap<i64, Vec<[u8; 16]>> = BTreeMap::new();
    let mut partitions: Vec<i32> = Vec::new();
    for i in rows {
        let row = &batch.rows[*i];
        by_hour.entry(crate::report::hour_of(row.event_time_ms)).or_default().push(row.id);
        partitions.push(row.partition);
    }
    partitions.sort_unstable();
    partitions.dedup();
    let mut terms = Vec::new();
    for (hour, ids) in &mut by_hour {
        ids.sort_unstable();
        for (lo, hi) in id_ranges(ids) {
            terms.push(lookup_term(*hour, &lo, &hi));
        }
    }
    if terms.len() > MAX_TERMS {
        terms = by_hour.iter().filter_map(|(hour, ids)| Some(lookup_term(*hour, ids.first()?, ids.last()?))).collect();
    }
    let partitions = partitions.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ");
    terms
        .chunks(TERMS_PER_QUERY)
        .map(|chunk| {
            format!(
                "SELECT kafka_partition, event_id FROM {database}.events WHERE kafka_partition IN ({partitions}) AND ({})",
                chunk.join(" OR ")
            )
        })
        .collect()
}

/// The id lookups [`EventsSink::write`] would run for `batch` (for tests and the chDB proof).
pub fn batch_lookup_sql(database: &str, batch: &Batch) -> Vec<String> {
    lookup_sql(database, batch, &prepare(batch, 0).rows)
}

/// In-memory deduplication (same partition and id: the first copy is kept) and time checks:
/// events before `min_time_ms` or after 2106 are rejected.
fn prepare(batch: &Batch, min_time_ms: i64) -> Prepared {
    let mut order: Vec<usize> = (0..batch.rows.len()).collect();
    order.sort_by_key(|i| (batch.rows[*i].partition, batch.rows[*i].offset));
    let mut seen: FxHashSet<(i32, [u8; 16])> =
        FxHashSet::with_capacity_and_hasher(batch.rows.len(), Default::default());
    let mut rows = Vec::with_capacity(batch.rows.len());
    let mut in_batch_duplicates = 0;
    let mut rejected = 0;
    for i in order {
        let row = &batch.rows[i];
        if !(min_time_ms..=crate::rowbinary::MAX_EVENT_TIME_MS).contains(&row.event_time_ms) {
            rejected += 1;
            continue;
        }
        if !seen.insert((row.partition, row.id)) {
            in_batch_duplicates += 1;
            continue;
        }
        rows.push(i);
    }
    Prepared { rows, in_batch_duplicates, rejected }
}

/// Runs the futures at the same time (in this task) until every one has finished; their
/// outputs in order.
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *output = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// The time (ms) in a UUIDv7's first 48 bits.
fn uuid_ms(id: &[u8; 16]) -> u64 {
    u64::from_be_bytes([0, 0, id[0], id[1], id[2], id[3], id[4], id[5]])
}

/// Sorted ids split into ranges wherever two neighbours are more than [`RANGE_GAP_MS`] apart.
fn id_ranges(sorted: &[[u8; 16]]) -> Vec<([u8; 16], [u8; 16])> {
    let mut out: Vec<([u8; 16], [u8; 16])> = Vec::new();
    for id in sorted {
        match out.last_mut() {
            Some((_, hi)) if uuid_ms(id).saturating_sub(uuid_ms(hi)) <= RANGE_GAP_MS => *hi = *id,
            _ => out.push((*id, *id)),
        }
    }
    out
}

fn lookup_term(hour: i64, lo: &[u8; 16], hi: &[u8; 16]) -> String {
    let day = chrono::DateTime::from_timestamp(hour, 0).map(|t| t.date_naive().to_string()).unwrap_or_default();
    format!(
        "(event_date = '{day}' AND event_hour = toDateTime({hour}, 'UTC') AND event_id >= {} AND event_id <= {})",
        quote_bytes(lo),
        quote_bytes(hi)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use adp_domain::events::EventKind;

    fn incoming(partition: i32, offset: i64, id: &str, t: i64) -> Incoming {
        Incoming {
            partition,
            offset,
            event: Event {
                id: id.into(),
                kind: EventKind::Impression,
                event_time_ms: t,
                receive_time_ms: t,
                ..Event::default()
            },
        }
    }

    #[test]
    fn prepare_keeps_the_first_copy_per_partition() {
        let batch = Batch::from_incoming(&[
            incoming(1, 5, "a", 1000),
            incoming(0, 9, "a", 1000),
            incoming(1, 3, "a", 1000),
            incoming(0, 10, "b", -5),
        ]);
        let p = prepare(&batch, 0);
        let kept: Vec<(i32, i64)> = p.rows.iter().map(|i| (batch.rows[*i].partition, batch.rows[*i].offset)).collect();
        assert_eq!(kept, vec![(0, 9), (1, 3)]);
        assert_eq!(p.in_batch_duplicates, 1);
        assert_eq!(p.rejected, 1);
    }

    #[test]
    fn a_decision_that_stands_for_its_request_is_two_rows_of_one_message() {
        let decision = Event {
            id: "0197a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d".into(),
            kind: EventKind::Decision,
            event_time_ms: 1_750_000_000_000,
            line_item_id: "li".into(),
            placement_id: "pl".into(),
            stands_for_request: true,
            ..Event::default()
        };
        let mut record = Vec::new();
        adp_eventwire::encode(&decision, &mut record);
        let mut batch = Batch::default();
        batch.push_record(2, 40, &record).expect("decodes");
        batch.push_record(2, 41, &record).expect("decodes");
        assert_eq!((batch.len(), batch.records()), (4, 2));
        let decision_id = event_id_bytes(&decision.id);
        let mut request_id = decision_id;
        request_id[15] ^= adp_domain::events::IMPLIED_REQUEST_ID_XOR;
        let rows: Vec<(i64, [u8; 16])> = batch.rows.iter().map(|r| (r.offset, r.id)).collect();
        assert_eq!(rows, vec![(40, request_id), (40, decision_id), (41, request_id), (41, decision_id)]);
        // The copy at offset 41 is dropped, both rows of it, and only those.
        let p = prepare(&batch, 0);
        assert_eq!((p.rows.len(), p.in_batch_duplicates), (2, 2));
        batch.clear();
        assert_eq!((batch.len(), batch.records()), (0, 0));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any Kafka message value, however damaged: no panic, every record it holds is either
        /// a row or counted as undecodable, and the count returned is the count kept.
        #[test]
        fn any_message_value_is_rows_or_counted(
            n in 0usize..4,
            at in proptest::prelude::any::<proptest::sample::Index>(),
            xor in proptest::prelude::any::<u8>(),
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let mut value = Vec::new();
            for i in 0..n {
                let e = Event {
                    id: format!("0197a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c{i:02x}"),
                    kind: EventKind::Click,
                    event_time_ms: 1_750_000_000_000,
                    ..Event::default()
                };
                adp_eventwire::encode(&e, &mut value);
            }
            value.extend_from_slice(&noise);
            if !value.is_empty() {
                let i = at.index(value.len());
                value[i] ^= xor;
            }
            let mut batch = Batch::default();
            let skipped = batch.push_message(3, 9, &value);
            proptest::prop_assert_eq!(skipped.as_ref().map_or(0, |s| s.0), batch.undecodable);
            proptest::prop_assert!(batch.records() >= 1, "an empty or damaged message counts too");
            proptest::prop_assert!(batch.rows.iter().all(|r| (r.partition, r.offset) == (3, 9)));
        }
    }

    /// A message of several records (what the forwarder sends) adds each of them under the
    /// message's offset; bad records are skipped and counted, the rest kept.
    #[test]
    fn a_message_of_several_records_adds_each() {
        let event = |n: u8| Event {
            id: format!("0197a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c{n:02x}"),
            kind: EventKind::Impression,
            event_time_ms: 1_750_000_000_000,
            ..Event::default()
        };
        let mut value = Vec::new();
        adp_eventwire::encode_batch([&event(1), &event(2)], &mut value);
        value.extend_from_slice(&[0xAE, 9, 1, 0]);
        adp_eventwire::encode(&event(3), &mut value);
        let mut batch = Batch::default();
        let skipped = batch.push_message(5, 70, &value);
        assert_eq!(skipped, Some((1, adp_eventwire::DecodeError::UnsupportedVersion { found: 9 })));
        let rows: Vec<(i32, i64, [u8; 16])> = batch.rows.iter().map(|r| (r.partition, r.offset, r.id)).collect();
        let ids = [1, 2, 3].map(|n| event_id_bytes(&event(n).id));
        assert_eq!(rows, vec![(5, 70, ids[0]), (5, 70, ids[1]), (5, 70, ids[2])]);
        assert_eq!((batch.len(), batch.records(), batch.undecodable), (3, 4, 1));
        // A cut message keeps what came before the cut; an empty one is one bad record.
        let mut cut = Batch::default();
        assert!(cut.push_message(5, 71, &value[..value.len() - 1]).is_some());
        assert_eq!((cut.len(), cut.undecodable), (2, 2));
        assert_eq!(cut.push_message(5, 72, &[]).map(|(n, _)| n), Some(1));
        // One record alone, what older forwarders sent, is a message too.
        let mut one = Vec::new();
        adp_eventwire::encode(&event(4), &mut one);
        assert_eq!(cut.push_message(5, 73, &one), None);
        assert_eq!(cut.len(), 3);
    }

    #[test]
    fn ranges_split_on_time_gaps() {
        let id = |ms: u64, n: u8| {
            let mut b = [0u8; 16];
            b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
            b[15] = n;
            b
        };
        let ids = vec![id(1000, 1), id(1500, 2), id(9000, 3), id(9001, 4)];
        let r = id_ranges(&ids);
        assert_eq!(r, vec![(ids[0], ids[1]), (ids[2], ids[3])]);
        assert!(lookup_term(3600, &ids[0], &ids[1]).starts_with("(event_date = '1970-01-01' AND event_hour"));
    }
}
