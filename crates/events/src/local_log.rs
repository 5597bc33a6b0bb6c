//! local_log: the embedded durable event log — append-only, checksummed segment files in one
//! directory, written by one background thread. `submit` only enqueues: it never blocks and never
//! touches the disk.
//!
//! On disk a segment is `<dir>/<20-digit sequence>.seg` holding records
//! `[u32 LE payload length][u32 LE crc32(payload)][payload]`, payload = version byte `2` followed
//! by the event in the binary event format (adp-eventwire, schema v1); logs written by earlier
//! releases (version byte `1`, JSON) are still read. A finished segment is always fsynced before the next one is started, so
//! only the last segment can have a torn tail; `open` truncates such a tail and refuses damage
//! anywhere else. One process owns a directory at a time.
//!
//! Readers other than the replay at `open` (the Kafka forwarder) follow the log with a
//! [`LogReader`] from a [`LogPosition`] up to the [`LogWatermark`]: the end of what the writer has
//! committed (written and synced per the fsync policy). They never see a record that a failed
//! write or sync could still cut.

use adp_domain::events::{Event, EventRef};
use adp_domain::{EventSink, SinkError, SinkStats};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The record format version written in each payload's first byte.
pub const RECORD_VERSION: u8 = 2;
/// Records of earlier releases: the event as JSON.
pub const RECORD_VERSION_JSON: u8 = 1;
/// Bytes before each payload: length and crc32, both u32 little endian.
pub const RECORD_HEADER_BYTES: usize = 8;
/// The largest payload written or accepted on read; a larger length field is damage.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;
/// Segment file name suffix.
pub const SEGMENT_SUFFIX: &str = ".seg";
/// At most this many events are taken off the queue per write.
const MAX_BATCH: usize = 4096;

/// When the writer fsyncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every batch, before its events count as written.
    Always,
    /// At most this many milliseconds after a write; events count as written once synced.
    EveryMillis(u64),
    /// Never on the write path (only when a segment is finished and at close); events count as
    /// written once handed to the OS.
    Never,
}

/// How the log is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment is finished once the next record would take it past this size (a record larger
    /// than this gets a segment of its own). The records of one `submit_refs` call (one request's
    /// events) count as one record here: they stay in one segment.
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
    /// Events that may wait for the writer; `submit` refuses more with `SinkError::Full`.
    pub queue_capacity: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { segment_bytes: 64 * 1024 * 1024, fsync: FsyncPolicy::EveryMillis(100), queue_capacity: 65_536 }
    }
}

/// Sees every event the log holds, in log order, exactly once per process: first the replayed
/// ones (on the thread calling `open`), then each new one once it is written and synced per the
/// fsync policy (on the writer thread). It runs off the request path but holds up the writer, so
/// it must be quick; a panic in it is caught and logged.
pub trait EventObserver: Send + Sync + 'static {
    fn observe(&self, event: &EventRef<'_>);

    /// The events of one write, in log order (an observer can take its locks once for them).
    /// By default each goes to [`EventObserver::observe`] on its own, and a panic costs the
    /// observer only that event; an observer that takes them together misses the rest of the
    /// write if it panics.
    fn observe_all(&self, events: &[EventRef<'_>]) {
        for event in events {
            notify(self, event);
        }
    }
}

impl<F> EventObserver for F
where
    F: Fn(&EventRef<'_>) + Send + Sync + 'static,
{
    fn observe(&self, event: &EventRef<'_>) {
        self(event)
    }
}

/// Why the log could not be opened, read or shut down.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("invalid event log config: {0}")]
    InvalidConfig(&'static str),
    #[error("event log i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Damage that is not a torn tail of the last segment: accepted events would be lost.
    #[error("event log segment {segment} is corrupt at byte {offset}: {reason}")]
    Corrupt { segment: PathBuf, offset: u64, reason: String },
    /// A record written by a newer version of the platform.
    #[error("event log segment {segment} has a record of unsupported version {version} at byte {offset}")]
    UnsupportedVersion { segment: PathBuf, offset: u64, version: u8 },
    /// The writer thread is gone.
    #[error("event log writer has stopped")]
    Closed,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Io { path: path.to_path_buf(), source }
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    rejected_full: AtomicU64,
    written: AtomicU64,
    lost: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> SinkStats {
        SinkStats {
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected_full: self.rejected_full.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }
}

/// A record boundary in the log: a segment, a byte offset in it, and how many events the log
/// holds before it. `LogPosition::default()` is the start of an empty log (before segment 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPosition {
    /// Segment sequence number; 0 is before the first segment.
    pub segment: u64,
    /// Bytes of complete records before this position in `segment`.
    pub offset: u64,
    /// Events in the log before this position, counted from the first segment.
    pub events: u64,
}

#[derive(Default)]
struct WatermarkState {
    end: LogPosition,
    closed: bool,
}

/// The committed end of a log, shared with its readers: it moves forward as the writer commits
/// events (written and synced per the fsync policy) and carries the log's counters. Cheap to
/// read; readers that have caught up wait on it with [`LogWatermark::wait_beyond`].
pub struct LogWatermark {
    dir: PathBuf,
    opened: LogPosition,
    incarnation: u64,
    state: Mutex<WatermarkState>,
    moved: Condvar,
    counters: Arc<Counters>,
}

impl LogWatermark {
    fn new(dir: PathBuf, end: LogPosition, counters: Arc<Counters>) -> LogWatermark {
        // Tells this opening of the log from earlier ones (and from other processes).
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let incarnation = (nanos as u64) ^ (u64::from(std::process::id()) << 40);
        LogWatermark {
            dir,
            opened: end,
            incarnation,
            state: Mutex::new(WatermarkState { end, closed: false }),
            moved: Condvar::new(),
            counters,
        }
    }

    fn lock(&self) -> MutexGuard<'_, WatermarkState> {
        // The state is two plain values, each written whole: a panic cannot leave it torn.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The committed end when the log was opened, before anything new was written. A position a
    /// reader saved before this opening is valid only up to here: past it, the tail it pointed
    /// into was cut at open (torn or lost in a crash) and new records may start earlier.
    pub fn opened(&self) -> LogPosition {
        self.opened
    }

    /// Tells this opening of the log from every other one: positions saved with the same
    /// incarnation are valid as they are.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The end of the committed events: a reader may read up to here.
    pub fn committed(&self) -> LogPosition {
        self.lock().end
    }

    /// True once the log has been closed: the committed end will not move again.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Waits until the committed end is past `pos` or the log is closed, at most `timeout`;
    /// returns the committed end.
    pub fn wait_beyond(&self, pos: &LogPosition, timeout: Duration) -> LogPosition {
        let guard = self.lock();
        let (guard, _) = self
            .moved
            .wait_timeout_while(guard, timeout, |s| !s.closed && s.end.events <= pos.events)
            .unwrap_or_else(PoisonError::into_inner);
        guard.end
    }

    /// The log's counters (the same as `LocalLog::stats`).
    pub fn stats(&self) -> SinkStats {
        self.counters.snapshot()
    }

    fn advance(&self, segment: u64, offset: u64, events: u64) {
        let mut state = self.lock();
        state.end = LogPosition { segment, offset, events: state.end.events + events };
        drop(state);
        self.moved.notify_all();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.moved.notify_all();
    }
}

/// What the writer takes off the queue to write.
enum Item {
    Event(Box<Event>),
    Records(Vec<u8>, u32),
}

enum Msg {
    /// Boxed so that the preallocated queue stays small.
    Event(Box<Event>),
    /// Events already complete records (`encode_record_ref`, on the submitting thread), and how
    /// many.
    Records(Vec<u8>, u32),
    /// Write and sync everything before this, then answer.
    Flush(mpsc::Sender<()>),
    /// Answer once everything before this is written to the file (not necessarily synced).
    Written(tokio::sync::oneshot::Sender<()>),
}

/// The embedded event sink. See the module docs for the format and guarantees.
pub struct LocalLog {
    dir: PathBuf,
    sender: Option<SyncSender<Msg>>,
    writer: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    watermark: Arc<LogWatermark>,
    replayed: u64,
}

impl LocalLog {
    /// Opens (creating if needed) the log in `dir`, replays every stored event through
    /// `observer` in order, then starts the writer. A torn or corrupt tail of the last segment is
    /// truncated with a warning; any other damage is an error (after the events before it have
    /// been replayed).
    pub fn open(dir: impl AsRef<Path>, config: LogConfig, observer: Arc<dyn EventObserver>) -> Result<Self, LogError> {
        if config.segment_bytes == 0 {
            return Err(LogError::InvalidConfig("segment_bytes must be at least 1"));
        }
        if config.queue_capacity == 0 {
            return Err(LogError::InvalidConfig("queue_capacity must be at least 1"));
        }
        let dir = dir.as_ref().to_path_buf();
        let started = Instant::now();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let segments = list_segments(&dir)?;

        let mut replayed = 0u64;
        let mut last: Option<(u64, u64)> = None;
        for (i, (seq, path)) in segments.iter().enumerate() {
            let is_last = i + 1 == segments.len();
            let scan = scan_segment(path, &mut |event| {
                replayed += 1;
                notify(observer.as_ref(), &EventRef::of(&event));
            })?;
            let len = match scan.damage {
                None => scan.good_len,
                Some(reason) if is_last => {
                    truncate_tail(path, scan.good_len, scan.file_len, &reason)?;
                    scan.good_len
                }
                Some(reason) => {
                    return Err(LogError::Corrupt { segment: path.clone(), offset: scan.good_len, reason });
                }
            };
            if is_last {
                last = Some((*seq, len));
            }
        }

        let current = match last {
            Some((seq, len)) => {
                let path = segment_path(&dir, seq);
                let file = OpenOptions::new().append(true).open(&path).map_err(io_err(&path))?;
                Some(Segment { seq, path, file, len, committed_len: len, dirty: false })
            }
            None => None,
        };
        let next_seq = last.map_or(1, |(seq, _)| seq.saturating_add(1));
        tracing::info!(
            dir = %dir.display(),
            segments = segments.len(),
            replayed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "event log opened"
        );

        let counters = Arc::new(Counters::default());
        let end =
            last.map_or(LogPosition::default(), |(segment, offset)| LogPosition { segment, offset, events: replayed });
        let watermark = Arc::new(LogWatermark::new(dir.clone(), end, counters.clone()));
        let (sender, receiver) = mpsc::sync_channel(config.queue_capacity);
        let writer = Writer {
            dir: dir.clone(),
            config,
            observer,
            counters: counters.clone(),
            watermark: watermark.clone(),
            current,
            next_seq,
            pending: Vec::new(),
            pending_events: 0,
            last_sync: Instant::now(),
        };
        let handle = std::thread::Builder::new()
            .name("adp-event-log".into())
            .spawn(move || writer.run(receiver))
            .map_err(io_err(&dir))?;
        Ok(LocalLog { dir, sender: Some(sender), writer: Some(handle), counters, watermark, replayed })
    }

    /// The committed end of this log, for readers that follow it (see [`LogReader`]).
    pub fn watermark(&self) -> Arc<LogWatermark> {
        Arc::clone(&self.watermark)
    }

    /// How many events `open` replayed from disk.
    pub fn replayed(&self) -> u64 {
        self.replayed
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Blocks until every event accepted before this call is written, synced and observed
    /// (whatever the fsync policy).
    pub fn flush(&self) -> Result<(), LogError> {
        let sender = self.sender.as_ref().ok_or(LogError::Closed)?;
        let (tx, rx) = mpsc::channel();
        sender.send(Msg::Flush(tx)).map_err(|_| LogError::Closed)?;
        rx.recv().map_err(|_| LogError::Closed)
    }

    /// Stops accepting, writes and syncs every accepted event, and stops the writer. Returns the
    /// final counters: `accepted == written + lost`.
    pub fn close(mut self) -> Result<SinkStats, LogError> {
        self.shutdown()?;
        Ok(self.counters.snapshot())
    }

    fn shutdown(&mut self) -> Result<(), LogError> {
        // Dropping the sender lets the writer drain the queue and then stop.
        self.sender = None;
        let joined = match self.writer.take() {
            Some(handle) => handle.join().map_err(|_| LogError::Closed),
            None => Ok(()),
        };
        self.watermark.close();
        joined
    }
}

impl Drop for LocalLog {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(dir = %self.dir.display(), error = %e, "event log writer failed during shutdown");
        }
    }
}

impl EventSink for LocalLog {
    fn submit(&self, event: Event) -> Result<(), SinkError> {
        self.enqueue(Msg::Event(Box::new(event)))
    }

    /// Encoded here, on the caller's thread, into a record the writer only copies: no owned event
    /// crosses threads.
    fn submit_ref(&self, event: &EventRef<'_>) -> Result<(), SinkError> {
        self.submit_refs(std::slice::from_ref(event))
    }

    /// All of them encoded here into one message: one queue slot, one hand-over, all or none.
    fn submit_refs(&self, events: &[EventRef<'_>]) -> Result<(), SinkError> {
        // Room for typical records (~200 bytes each); larger ones grow the buffer. Sizing it
        // exactly would walk every event twice.
        let mut records = Vec::with_capacity(events.len() * 320);
        for event in events {
            if let Err(reason) = encode_record_ref(event, &mut records) {
                // Too large to be a record: refused like a full queue (counted by the caller),
                // never accepted and then lost.
                tracing::error!(reason, "events refused: cannot encode one of them");
                return Err(SinkError::Full);
            }
        }
        match u32::try_from(events.len()) {
            Ok(0) => Ok(()),
            Ok(n) => self.enqueue(Msg::Records(records, n)),
            Err(_) => Err(SinkError::Full),
        }
    }

    fn stats(&self) -> SinkStats {
        self.counters.snapshot()
    }

    fn written_marker(&self) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>> {
        let sender = self.sender.as_ref()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        // Not counted as an event; a full queue means "cannot promise", like a closed log.
        sender.try_send(Msg::Written(tx)).ok()?;
        // Someone waits: cut the writer's linger short (events alone never wake it), and let it
        // run now if it shares this CPU (a pinned single-core server).
        if let Some(writer) = &self.writer {
            writer.thread().unpark();
            std::thread::yield_now();
        }
        Some(Box::pin(async move { rx.await.is_ok() }))
    }
}

impl LocalLog {
    /// Queues events (one owned, or encoded records) for the writer, or refuses them at once.
    fn enqueue(&self, msg: Msg) -> Result<(), SinkError> {
        let Some(sender) = &self.sender else { return Err(SinkError::Closed) };
        let n = match &msg {
            Msg::Records(_, n) => u64::from(*n),
            _ => 1,
        };
        // Counted before sending so that `written + lost <= accepted` holds for any reader.
        self.counters.accepted.fetch_add(n, Ordering::Relaxed);
        match sender.try_send(msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.counters.accepted.fetch_sub(n, Ordering::Relaxed);
                self.counters.rejected_full.fetch_add(n, Ordering::Relaxed);
                Err(SinkError::Full)
            }
            Err(TrySendError::Disconnected(_)) => {
                self.counters.accepted.fetch_sub(n, Ordering::Relaxed);
                Err(SinkError::Closed)
            }
        }
    }
}

fn notify_all(observer: &dyn EventObserver, events: &[EventRef<'_>]) {
    if catch_unwind(AssertUnwindSafe(|| observer.observe_all(events))).is_err() {
        tracing::error!(events = events.len(), "event observer panicked; it missed some of these events");
    }
}

fn notify<O: EventObserver + ?Sized>(observer: &O, event: &EventRef<'_>) {
    if catch_unwind(AssertUnwindSafe(|| observer.observe(event))).is_err() {
        tracing::error!(event_id = ?event.id, "event observer panicked; it missed this event");
    }
}

// ---------------------------------------------------------------------------------------------
// records and segments

/// Encodes one event as a record. Fails only if the event cannot be serialised or is too large.
pub fn encode_record(event: &Event, out: &mut Vec<u8>) -> Result<(), String> {
    encode_record_ref(&EventRef::of(event), out)
}

/// [`encode_record`] from a borrowed event, in place: header, then the payload after it.
pub fn encode_record_ref(event: &EventRef<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER_BYTES]);
    out.push(RECORD_VERSION);
    adp_eventwire::encode_ref(event, out);
    let payload = &out[start + RECORD_HEADER_BYTES..];
    let (len, crc) = (payload.len(), crc32fast::hash(payload));
    if len > MAX_PAYLOAD_BYTES {
        out.truncate(start);
        return Err(format!("event is {len} bytes encoded, more than {MAX_PAYLOAD_BYTES}"));
    }
    // At most MAX_PAYLOAD_BYTES: fits.
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + RECORD_HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// The events of complete records written by this process (`encode_record`), one by one.
fn written_records(bytes: &[u8]) -> impl Iterator<Item = Result<EventRef<'_>, String>> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some((header, after)) = rest.split_first_chunk::<RECORD_HEADER_BYTES>() else {
            rest = &[];
            return Some(Err("a record header is cut short".to_string()));
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let Some((payload, next)) = after.split_at_checked(len) else {
            rest = &[];
            return Some(Err("a record is cut short".to_string()));
        };
        rest = next;
        Some(match payload.split_first() {
            Some((&RECORD_VERSION, body)) => adp_eventwire::decode_ref(body).map_err(|e| e.to_string()),
            _ => Err("not a record of this version".to_string()),
        })
    })
}

/// The path of segment `seq` in `dir`.
pub fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}{SEGMENT_SUFFIX}"))
}

/// The segments in `dir`, in sequence order. Other files are ignored.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) else { continue };
        match stem.parse::<u64>() {
            Ok(seq) if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) => {
                segments.push((seq, entry.path()))
            }
            _ => tracing::warn!(file = %entry.path().display(), "ignoring a file that is not an event log segment"),
        }
    }
    segments.sort();
    Ok(segments)
}

struct Scan {
    /// Bytes of complete, valid records from the start.
    good_len: u64,
    file_len: u64,
    /// What is wrong at `good_len`, if the file does not end there.
    damage: Option<String>,
}

/// Reads the records of one segment, handing each event to `on_event`, up to the end or the
/// first damage. Read failures and records of an unknown version are errors, not damage.
fn scan_segment(path: &Path, on_event: &mut dyn FnMut(Event)) -> Result<Scan, LogError> {
    let file = File::open(path).map_err(io_err(path))?;
    let file_len = file.metadata().map_err(io_err(path))?.len();
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut pos = 0u64;
    let mut payload = Vec::new();
    let damaged = |pos: u64, reason: String| Ok(Scan { good_len: pos, file_len, damage: Some(reason) });
    loop {
        let remaining = file_len - pos;
        if remaining == 0 {
            return Ok(Scan { good_len: pos, file_len, damage: None });
        }
        if remaining < RECORD_HEADER_BYTES as u64 {
            return damaged(pos, format!("torn record header ({remaining} bytes)"));
        }
        let mut header = [0u8; RECORD_HEADER_BYTES];
        reader.read_exact(&mut header).map_err(io_err(path))?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || len > MAX_PAYLOAD_BYTES {
            return damaged(pos, format!("impossible record length {len}"));
        }
        if remaining - (RECORD_HEADER_BYTES as u64) < len as u64 {
            return damaged(pos, format!("torn record: {len} byte payload, {remaining} bytes left"));
        }
        payload.resize(len, 0);
        reader.read_exact(&mut payload).map_err(io_err(path))?;
        if crc32fast::hash(&payload) != crc {
            return damaged(pos, "checksum mismatch".to_string());
        }
        on_event(decode_payload(&|| path.to_path_buf(), pos, &payload)?);
        pos += (RECORD_HEADER_BYTES + len) as u64;
    }
}

/// Decodes the payload of a record whose checksum matched, read at `offset` of the segment
/// `path` names.
fn decode_payload(path: &dyn Fn() -> PathBuf, offset: u64, payload: &[u8]) -> Result<Event, LogError> {
    match payload.split_first() {
        // sonic-rs: the same serde data model as serde_json, parsed with SIMD (replay at open and
        // the Kafka forwarder decode every record).
        Some((&RECORD_VERSION, wire)) => adp_eventwire::decode(wire).map_err(|e| LogError::Corrupt {
            segment: path(),
            offset,
            reason: format!("record does not decode as an event: {e}"),
        }),
        Some((&RECORD_VERSION_JSON, json)) => sonic_rs::from_slice::<Event>(json).map_err(|e| {
            // The checksum matched, so this is what was written: a bug, not a torn write.
            LogError::Corrupt { segment: path(), offset, reason: format!("record does not decode as an event: {e}") }
        }),
        Some((&version, _)) => Err(LogError::UnsupportedVersion { segment: path(), offset, version }),
        None => Err(LogError::Corrupt { segment: path(), offset, reason: "empty record".into() }),
    }
}

// ---------------------------------------------------------------------------------------------
// following the log

/// One event read by [`LogReader::next_raw`].
pub enum LoggedEvent<'a> {
    /// The adp-eventwire record as the log holds it, and its event read in place.
    Wire { record: &'a [u8], event: EventRef<'a> },
    /// An event from an older JSON record.
    Owned(Event),
}

/// Reads committed events in log order from a position, up to a [`LogWatermark`]'s committed end,
/// segment after segment: what a forwarder uses to follow the log while it is being written.
/// It only reads; the log's owner keeps writing meanwhile.
pub struct LogReader {
    dir: PathBuf,
    pos: LogPosition,
    /// The open segment `pos.segment`, read up to `pos.offset`.
    file: Option<BufReader<File>>,
    /// The length of `pos.segment` once it is known to be finished.
    finished_len: Option<u64>,
    payload: Vec<u8>,
}

impl LogReader {
    /// A reader of the log in `dir` starting at `from`, which must be a record boundary (a
    /// position a reader or the watermark gave). A position past the end of its segment (its tail
    /// was cut after a crash) continues at the segment's end; a segment that is gone continues at
    /// the next one.
    pub fn new(dir: impl AsRef<Path>, from: LogPosition) -> LogReader {
        LogReader { dir: dir.as_ref().to_path_buf(), pos: from, file: None, finished_len: None, payload: Vec::new() }
    }

    /// The position after the last event read.
    pub fn position(&self) -> LogPosition {
        self.pos
    }

    /// Reads the next event before `end` (a committed end from the log's watermark), or `None`
    /// when the reader has reached it. Damage before `end` is an error: committed records are
    /// complete and checksummed, so it means the disk lost them.
    pub fn next(&mut self, end: &LogPosition) -> Result<Option<Event>, LogError> {
        match self.next_raw(end)? {
            None => Ok(None),
            Some(LoggedEvent::Wire { event, .. }) => Ok(Some(event.to_event())),
            Some(LoggedEvent::Owned(event)) => Ok(Some(event)),
        }
    }

    /// [`LogReader::next`] without copying an adp-eventwire record out of the log: the record as
    /// stored and its event read in place (what the Kafka forwarder sends on as it is), or, for an
    /// older JSON record, the decoded event. A record that does not decode is an error, as for
    /// `next`, and the reader stays before it.
    pub fn next_raw(&mut self, end: &LogPosition) -> Result<Option<LoggedEvent<'_>>, LogError> {
        let Some(offset) = self.advance(end)? else { return Ok(None) };
        let (dir, seq) = (&self.dir, self.pos.segment);
        let corrupt = |reason: String| LogError::Corrupt { segment: segment_path(dir, seq), offset, reason };
        let logged = match self.payload.split_first() {
            Some((&RECORD_VERSION, wire)) => adp_eventwire::decode_ref(wire)
                .map(|event| LoggedEvent::Wire { record: wire, event })
                .map_err(|e| corrupt(format!("record does not decode as an event: {e}"))),
            _ => decode_payload(&|| segment_path(dir, seq), offset, &self.payload).map(LoggedEvent::Owned),
        };
        if logged.is_err() {
            // Stay before the record, and reopen there next time rather than mid-segment.
            self.pos.offset = offset;
            self.pos.events -= 1;
            self.file = None;
        }
        logged.map(Some)
    }

    /// Reads the next record's payload before `end` into `self.payload`, checksum checked, and
    /// moves past it; the offset it was at, or `None` at `end`.
    fn advance(&mut self, end: &LogPosition) -> Result<Option<u64>, LogError> {
        loop {
            if self.file.is_none() && !self.open_segment(end)? {
                return Ok(None);
            }
            let limit = match self.pos.segment.cmp(&end.segment) {
                std::cmp::Ordering::Equal => end.offset,
                std::cmp::Ordering::Greater => return Ok(None),
                // A finished segment: complete, synced and never written again.
                std::cmp::Ordering::Less => match self.finished_len {
                    Some(len) => len,
                    None => {
                        let path = segment_path(&self.dir, self.pos.segment);
                        let len = fs::metadata(&path).map_err(io_err(&path))?.len();
                        self.finished_len = Some(len);
                        len
                    }
                },
            };
            if self.pos.offset >= limit {
                if self.pos.segment < end.segment && self.next_segment(end)? {
                    continue;
                }
                return Ok(None);
            }
            let offset = self.pos.offset;
            let record = self.read_record(limit);
            if record.is_err() {
                // Reopen at the last good position next time rather than mid-record.
                self.file = None;
            }
            return record.map(|()| Some(offset));
        }
    }

    /// Reads the record at `pos` from the open segment, which holds complete records up to
    /// `limit`, into `self.payload`, and moves past it.
    fn read_record(&mut self, limit: u64) -> Result<(), LogError> {
        let (dir, seq, offset) = (&self.dir, self.pos.segment, self.pos.offset);
        let path = || segment_path(dir, seq);
        let io = |source| LogError::Io { path: path(), source };
        let damaged = |reason: String| LogError::Corrupt { segment: path(), offset, reason };
        let Some(file) = self.file.as_mut() else { return Err(LogError::Closed) };
        let remaining = limit - offset;
        if remaining < RECORD_HEADER_BYTES as u64 {
            return Err(damaged(format!("torn record header ({remaining} bytes)")));
        }
        let mut header = [0u8; RECORD_HEADER_BYTES];
        file.read_exact(&mut header).map_err(io)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || len > MAX_PAYLOAD_BYTES || remaining - (RECORD_HEADER_BYTES as u64) < len as u64 {
            return Err(damaged(format!("impossible record length {len} with {remaining} bytes left")));
        }
        self.payload.resize(len, 0);
        file.read_exact(&mut self.payload).map_err(io)?;
        if crc32fast::hash(&self.payload) != crc {
            return Err(damaged("checksum mismatch".to_string()));
        }
        self.pos.offset += (RECORD_HEADER_BYTES + len) as u64;
        self.pos.events += 1;
        Ok(())
    }

    /// Opens `pos.segment` at `pos.offset`, or moves on to the next segment there is. False when
    /// there is no segment to read yet.
    fn open_segment(&mut self, end: &LogPosition) -> Result<bool, LogError> {
        if self.pos.segment == 0 {
            return self.next_segment(end);
        }
        let path = segment_path(&self.dir, self.pos.segment);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::warn!(segment = %path.display(), "event log segment is gone; reading on from the next one");
                return self.next_segment(end);
            }
            Err(e) => return Err(LogError::Io { path, source: e }),
        };
        let len = file.metadata().map_err(io_err(&path))?.len();
        if self.pos.offset > len {
            tracing::warn!(
                segment = %path.display(),
                position = self.pos.offset,
                len,
                "event log segment is shorter than the read position (its tail was cut); reading on from its end"
            );
            self.pos.offset = len;
        }
        let mut reader = BufReader::with_capacity(1 << 16, file);
        io::Seek::seek(&mut reader, io::SeekFrom::Start(self.pos.offset)).map_err(io_err(&path))?;
        self.file = Some(reader);
        Ok(true)
    }

    /// Moves to the first segment after `pos.segment` (up to `end.segment`) and opens it. False
    /// when there is none.
    fn next_segment(&mut self, end: &LogPosition) -> Result<bool, LogError> {
        self.file = None;
        self.finished_len = None;
        let next = list_segments(&self.dir)?
            .into_iter()
            .map(|(seq, _)| seq)
            .find(|seq| *seq > self.pos.segment && *seq <= end.segment);
        let Some(seq) = next else { return Ok(false) };
        self.pos.segment = seq;
        self.pos.offset = 0;
        self.open_segment(end)
    }
}

fn truncate_tail(path: &Path, good_len: u64, file_len: u64, reason: &str) -> Result<(), LogError> {
    let file = OpenOptions::new().write(true).open(path).map_err(io_err(path))?;
    file.set_len(good_len).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))?;
    tracing::warn!(
        segment = %path.display(),
        kept_bytes = good_len,
        dropped_bytes = file_len - good_len,
        reason,
        "truncated a torn tail of the event log"
    );
    Ok(())
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// the writer thread

struct Segment {
    seq: u64,
    path: PathBuf,
    file: File,
    /// Bytes of complete records written.
    len: u64,
    /// Bytes whose events have been counted as written and observed: `len` under
    /// `FsyncPolicy::Never`, the synced length otherwise.
    committed_len: u64,
    /// Written to since the last sync.
    dirty: bool,
}

/// How long the writer waits for more events after a partial batch.
const LINGER: Duration = Duration::from_millis(2);

struct Writer {
    dir: PathBuf,
    config: LogConfig,
    observer: Arc<dyn EventObserver>,
    counters: Arc<Counters>,
    watermark: Arc<LogWatermark>,
    current: Option<Segment>,
    next_seq: u64,
    /// Records in `current` past `committed_len`: written, not yet synced, counted or observed.
    pending: Vec<u8>,
    /// How many events `pending` holds.
    pending_events: usize,
    last_sync: Instant,
}

impl Writer {
    fn run(mut self, receiver: Receiver<Msg>) {
        loop {
            let first = match self.sync_deadline() {
                Some(deadline) => match receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(msg) => msg,
                    Err(RecvTimeoutError::Timeout) => {
                        self.sync();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match receiver.recv() {
                    Ok(msg) => msg,
                    Err(_) => break,
                },
            };
            let mut batch = Vec::new();
            let mut flush = None;
            let mut written = Vec::new();
            match first {
                Msg::Event(event) => batch.push(Item::Event(event)),
                Msg::Records(records, n) => batch.push(Item::Records(records, n)),
                Msg::Flush(reply) => flush = Some(reply),
                Msg::Written(reply) => written.push(reply),
            }
            while flush.is_none() && batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(Msg::Event(event)) => batch.push(Item::Event(event)),
                    Ok(Msg::Records(records, n)) => batch.push(Item::Records(records, n)),
                    Ok(Msg::Flush(reply)) => flush = Some(reply),
                    Ok(Msg::Written(reply)) => written.push(reply),
                    Err(_) => break,
                }
            }
            let batch_len = batch.len();
            self.write_batch(batch);
            for reply in written {
                let _ = reply.send(());
            }
            match self.config.fsync {
                FsyncPolicy::Always => self.sync(),
                FsyncPolicy::EveryMillis(ms) if self.last_sync.elapsed() >= Duration::from_millis(ms) => self.sync(),
                _ => {}
            }
            if let Some(reply) = flush {
                self.sync();
                // The caller may have stopped waiting; nothing to do then.
                let _ = reply.send(());
            } else if batch_len < MAX_BATCH {
                // Linger so the next events pile up: a writer asleep here is not blocked on the
                // queue, so submitting never has to wake it (one wake-up per event would cost
                // the hot path a syscall and a context switch each). A request waiting for its
                // event to be written (a tracker) unparks it.
                std::thread::park_timeout(LINGER);
            }
        }
        // Every sender is gone and the queue is drained.
        self.sync();
        let stats = self.counters.snapshot();
        tracing::info!(
            dir = %self.dir.display(),
            accepted = stats.accepted,
            written = stats.written,
            lost = stats.lost,
            "event log closed"
        );
    }

    /// When the writer must wake up to sync, if anything waits for a sync.
    fn sync_deadline(&self) -> Option<Instant> {
        match self.config.fsync {
            FsyncPolicy::EveryMillis(ms) if !self.pending.is_empty() => {
                Some(self.last_sync + Duration::from_millis(ms))
            }
            _ => None,
        }
    }

    fn write_batch(&mut self, batch: Vec<Item>) {
        let mut chunk = Vec::with_capacity(batch.len() * 256);
        let mut chunk_events = 0;
        let mut scratch = Vec::new();
        for item in batch {
            let (record, n) = match item {
                Item::Records(records, n) => (records, n as usize),
                Item::Event(event) => {
                    scratch.clear();
                    if let Err(reason) = encode_record(&event, &mut scratch) {
                        tracing::error!(event_id = %event.id, reason, "event dropped: cannot encode it");
                        self.counters.lost.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    (std::mem::take(&mut scratch), 1)
                }
            };
            let current_len = self.current.as_ref().map_or(0, |s| s.len);
            let used = current_len + chunk.len() as u64;
            if used > 0 && used + record.len() as u64 > self.config.segment_bytes {
                self.append(&chunk, chunk_events);
                chunk.clear();
                chunk_events = 0;
                self.finish_segment();
            }
            chunk.extend_from_slice(&record);
            chunk_events += n;
            scratch = record;
        }
        self.append(&chunk, chunk_events);
    }

    /// Appends `events` complete records (`bytes`) to the current segment (starting one if
    /// needed).
    fn append(&mut self, bytes: &[u8], events: usize) {
        if events == 0 {
            return;
        }
        if self.current.is_none() {
            match self.start_segment() {
                Ok(segment) => self.current = Some(segment),
                Err(e) => {
                    self.lose(events, &e, "cannot start an event log segment");
                    return;
                }
            }
        }
        let Some(segment) = self.current.as_mut() else { return };
        if let Err(source) = segment.file.write_all(bytes) {
            let (path, len) = (segment.path.clone(), segment.len);
            self.lose(events, &LogError::Io { path, source }, "cannot write to the event log");
            // Earlier pending records are complete: keep them, cut only the failed write.
            self.rewind_to(len);
            return;
        }
        segment.len += bytes.len() as u64;
        segment.dirty = true;
        match self.config.fsync {
            // Handed to the OS is as written as this policy gets.
            FsyncPolicy::Never => {
                segment.committed_len = segment.len;
                self.commit(bytes, events);
            }
            FsyncPolicy::Always | FsyncPolicy::EveryMillis(_) => {
                self.pending.extend_from_slice(bytes);
                self.pending_events += events;
            }
        }
    }

    fn start_segment(&mut self) -> Result<Segment, LogError> {
        let seq = self.next_seq;
        let path = segment_path(&self.dir, seq);
        let file = OpenOptions::new().create_new(true).append(true).open(&path).map_err(io_err(&path))?;
        self.next_seq = seq.saturating_add(1);
        sync_dir(&self.dir).map_err(io_err(&self.dir))?;
        tracing::debug!(segment = %path.display(), "event log segment started");
        Ok(Segment { seq, path, file, len: 0, committed_len: 0, dirty: false })
    }

    /// Syncs and closes the current segment; the next append starts a new one.
    fn finish_segment(&mut self) {
        self.sync();
        if let Some(segment) = self.current.take() {
            tracing::debug!(segment = %segment.path.display(), seq = segment.seq, bytes = segment.len, "event log segment finished");
        }
    }

    /// Makes everything written durable, then counts and observes the pending events. On failure
    /// they are counted as lost and cut from the file, so that a replay agrees with the observer.
    fn sync(&mut self) {
        self.last_sync = Instant::now();
        let Some(segment) = self.current.as_mut() else { return };
        if !segment.dirty {
            return;
        }
        match segment.file.sync_data() {
            Ok(()) => {
                segment.dirty = false;
                segment.committed_len = segment.len;
                let pending = std::mem::take(&mut self.pending);
                let events = std::mem::take(&mut self.pending_events);
                self.commit(&pending, events);
                // Keeps its capacity for the next batch.
                self.pending = pending;
                self.pending.clear();
            }
            Err(source) => {
                let (path, committed_len) = (segment.path.clone(), segment.committed_len);
                self.pending.clear();
                let pending = std::mem::take(&mut self.pending_events);
                self.lose(pending, &LogError::Io { path: path.clone(), source }, "cannot sync the event log");
                if pending == 0 {
                    // Nothing waited on this sync (FsyncPolicy::Never): there is nothing to undo.
                    tracing::error!(segment = %path.display(), "event log sync failed; written events may not be durable");
                }
                self.rewind_to(committed_len);
            }
        }
    }

    /// Cuts the current segment back to `len` after a failed write or sync. If even that fails
    /// the segment is abandoned, its pending events are lost and the next open reports it as
    /// damaged.
    fn rewind_to(&mut self, len: u64) {
        let Some(segment) = self.current.as_mut() else { return };
        match segment.file.set_len(len) {
            Ok(()) => segment.len = len,
            Err(source) => {
                let path = segment.path.clone();
                self.pending.clear();
                let pending = std::mem::take(&mut self.pending_events);
                self.current = None;
                self.lose(
                    pending,
                    &LogError::Io { path: path.clone(), source },
                    "cannot cut a failed write from the event log",
                );
                tracing::error!(segment = %path.display(), "event log segment abandoned after a failed write");
            }
        }
    }

    /// Counts and observes `events` records (`bytes`) now written (and synced, per the policy).
    fn commit(&mut self, bytes: &[u8], events: usize) {
        self.counters.written.fetch_add(events as u64, Ordering::Relaxed);
        if let Some(segment) = &self.current {
            self.watermark.advance(segment.seq, segment.committed_len, events as u64);
        }
        let mut decoded = Vec::with_capacity(events);
        for event in written_records(bytes) {
            match event {
                Ok(event) => decoded.push(event),
                // Only this process's own encoder wrote these bytes: a bug, not damage.
                Err(reason) => tracing::error!(reason, "a written event could not be read back for the observers"),
            }
        }
        notify_all(self.observer.as_ref(), &decoded);
    }

    fn lose(&self, n: usize, error: &LogError, message: &'static str) {
        if n == 0 {
            return;
        }
        self.counters.lost.fetch_add(n as u64, Ordering::Relaxed);
        tracing::error!(dir = %self.dir.display(), events = n, error = %error, cause = message, "events lost");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        crate::testing::sample_event("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "")
    }

    #[test]
    fn record_layout_is_length_crc_version_eventwire() {
        let mut out = Vec::new();
        encode_record(&event(), &mut out).unwrap();
        let len = u32::from_le_bytes(out[0..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(out[4..8].try_into().unwrap());
        let payload = &out[RECORD_HEADER_BYTES..];
        assert_eq!(payload.len(), len);
        assert_eq!(crc, crc32fast::hash(payload));
        assert_eq!(payload[0], RECORD_VERSION);
        assert_eq!(adp_eventwire::decode(&payload[1..]).unwrap(), event());
        assert_eq!(decode_payload(&PathBuf::new, 0, payload).unwrap(), event());
    }

    #[test]
    fn json_records_of_earlier_releases_still_decode() {
        let mut payload = vec![RECORD_VERSION_JSON];
        serde_json::to_writer(&mut payload, &event()).unwrap();
        assert_eq!(decode_payload(&PathBuf::new, 0, &payload).unwrap(), event());
        assert!(matches!(decode_payload(&PathBuf::new, 0, &[9, 1, 2]), Err(LogError::UnsupportedVersion { .. })));
    }

    #[test]
    fn segment_names_are_zero_padded_and_sort_by_sequence() {
        let dir = Path::new("/data/events");
        assert_eq!(segment_path(dir, 1), Path::new("/data/events/00000000000000000001.seg"));
        assert!(segment_path(dir, 9) < segment_path(dir, 10));
    }

    #[test]
    fn scan_stops_at_the_first_damage_with_the_good_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.seg");
        let mut bytes = Vec::new();
        encode_record(&event(), &mut bytes).unwrap();
        let one = bytes.len() as u64;
        encode_record(&event(), &mut bytes).unwrap();
        bytes.truncate(bytes.len() - 1);
        fs::write(&path, &bytes).unwrap();
        let mut n = 0;
        let scan = scan_segment(&path, &mut |_| n += 1).unwrap();
        assert_eq!((n, scan.good_len, scan.file_len), (1, one, bytes.len() as u64));
        assert!(scan.damage.unwrap().contains("torn record"));
    }
}
