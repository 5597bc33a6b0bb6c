//! The local event log against a real directory: replay, rollups, torn tails, corruption,
//! rotation, back-pressure and shutdown.

use adp_domain::events::{Event, EventKind, EventRef};
use adp_domain::{EventSink, SinkError};
use adp_events::local_log::{segment_path, RECORD_HEADER_BYTES, RECORD_VERSION};
use adp_events::{DeliveryRollup, DeliveryTotals, EventObserver, FsyncPolicy, LocalLog, LogConfig, LogError};
use chrono::{DateTime, Utc};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const BASE_MS: i64 = 1_772_323_200_000; // 2026-03-01T00:00:00Z

fn event(i: u64) -> Event {
    let kind = match i % 5 {
        0 | 1 => EventKind::Decision,
        2 | 3 => EventKind::Impression,
        _ => EventKind::Click,
    };
    let cost_micros = match kind {
        EventKind::Decision => 0,
        EventKind::Impression => 2_500 + i as i64,
        _ => 300_000,
    };
    let t = BASE_MS + i as i64 * 7 * 60_000; // every 7 minutes: crosses many hours
    Event {
        id: uuid::Uuid::now_v7().hyphenated().to_string(),
        kind,
        event_time_ms: t,
        receive_time_ms: t + 3,
        request_id: format!("req-{}", i / 5),
        decision_id: String::new(),
        advertiser_id: "shoes".into(),
        campaign_id: "spring".into(),
        line_item_id: format!("li-{}", i % 3),
        creative_id: "mrec".into(),
        publisher_id: "demo-publisher".into(),
        site_id: "demo-site".into(),
        placement_id: "demo-mrec".into(),
        deal_id: matches!(i % 4, 0).then(|| "deal-1".to_string()),
        user_key: i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        country: Some("DE".into()),
        device_type: None,
        price_micros: 2_500_000,
        cost_micros,
        currency: "EUR".into(),
        reason: None,
        stands_for_request: false,
    }
}

fn events(n: u64) -> Vec<Event> {
    (0..n).map(event).collect()
}

/// Records every event it sees and rolls them up.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Event>>,
    rollup: DeliveryRollup,
}

impl Recorder {
    fn seen(&self) -> Vec<Event> {
        self.seen.lock().expect("recorder lock").clone()
    }
}

impl EventObserver for Recorder {
    fn observe(&self, event: &EventRef<'_>) {
        self.seen.lock().expect("recorder lock").push(event.to_event());
        self.rollup.apply(event);
    }
}

fn config(fsync: FsyncPolicy) -> LogConfig {
    LogConfig { segment_bytes: 64 * 1024 * 1024, fsync, queue_capacity: 65_536 }
}

fn open(dir: &Path, config: LogConfig) -> (LocalLog, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let log = LocalLog::open(dir, config, recorder.clone()).expect("open log");
    (log, recorder)
}

/// Writes `evs` into a fresh log in `dir` and closes it cleanly.
fn write_all(dir: &Path, config: LogConfig, evs: &[Event]) {
    let (log, _) = open(dir, config);
    for e in evs {
        log.submit(e.clone()).expect("submit");
    }
    let stats = log.close().expect("close");
    assert_eq!((stats.written, stats.lost), (evs.len() as u64, 0));
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list segments")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

fn ids_and_kinds(evs: &[Event]) -> Vec<(String, EventKind)> {
    evs.iter().map(|e| (e.id.clone(), e.kind)).collect()
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).expect("read segment");
    bytes[offset as usize] ^= 0x5a;
    fs::write(path, bytes).expect("write segment");
}

fn expected_totals(evs: &[Event]) -> DeliveryTotals {
    let mut t = DeliveryTotals::default();
    for e in evs {
        match e.kind {
            EventKind::Decision => t.decisions += 1,
            EventKind::Impression => t.impressions += 1,
            EventKind::Click => t.clicks += 1,
            EventKind::Bid => t.bids += 1,
            EventKind::Win => t.wins += 1,
            EventKind::Billing => t.impressions += 1,
            EventKind::Conversion => t.conversions += 1,
            EventKind::Loss | EventKind::Request => {}
        }
        t.spend_micros += e.cost_micros;
    }
    t
}

fn all_time() -> (DateTime<Utc>, DateTime<Utc>) {
    (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC)
}

#[test]
fn reopen_replays_every_event_in_order_and_rebuilds_the_rollup() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(500);
    let (log, first) = open(dir.path(), config(FsyncPolicy::EveryMillis(5)));
    assert_eq!(log.replayed(), 0);
    for e in &evs {
        log.submit(e.clone()).unwrap();
    }
    let stats = log.close().unwrap();
    assert_eq!((stats.accepted, stats.written, stats.lost, stats.rejected_full), (500, 500, 0, 0));
    assert_eq!(first.seen(), evs, "the live observer sees every written event in order");
    assert_eq!(first.rollup.totals(), expected_totals(&evs));

    let (log, second) = open(dir.path(), config(FsyncPolicy::EveryMillis(5)));
    assert_eq!(log.replayed(), 500);
    assert_eq!(ids_and_kinds(&second.seen()), ids_and_kinds(&evs));
    assert_eq!(second.seen(), evs, "replay restores the events field for field");
    let (from, to) = all_time();
    let rows = second.rollup.query(from, to);
    assert_eq!(rows, first.rollup.query(from, to));
    assert!(rows.len() > 20, "500 events 7 minutes apart span ~58 hours x 3 line items: {}", rows.len());
    assert_eq!(second.rollup.totals(), expected_totals(&evs));
    assert_eq!(log.stats().written, 0, "replayed events are not counted as newly written");
    log.close().unwrap();
}

#[test]
fn borrowed_and_owned_events_interleave_in_order_under_every_fsync_policy() {
    for fsync in [FsyncPolicy::Always, FsyncPolicy::EveryMillis(5), FsyncPolicy::Never] {
        let dir = tempfile::tempdir().unwrap();
        let evs = events(300);
        let (log, first) = open(dir.path(), config(fsync));
        // Owned ones are encoded by the writer; borrowed ones on this thread (the hot paths'
        // way), alone or a request's worth at a time.
        for (i, chunk) in evs.chunks(3).enumerate() {
            match i % 3 {
                0 => chunk.iter().for_each(|e| log.submit(e.clone()).unwrap()),
                1 => chunk.iter().for_each(|e| log.submit_ref(&EventRef::of(e)).unwrap()),
                _ => log.submit_refs(&chunk.iter().map(EventRef::of).collect::<Vec<_>>()).unwrap(),
            }
        }
        let stats = log.close().unwrap();
        assert_eq!((stats.accepted, stats.written, stats.lost), (300, 300, 0), "{fsync:?}");
        assert_eq!(first.seen(), evs, "{fsync:?}: the observer sees both kinds, in order, field for field");
        assert_eq!(first.rollup.totals(), expected_totals(&evs));
        let (log, second) = open(dir.path(), config(fsync));
        assert_eq!(second.seen(), evs, "{fsync:?}: and the replay gives them back");
        log.close().unwrap();
    }
}

#[test]
fn torn_tails_are_truncated_and_the_log_appends_afterwards() {
    let tails: [(&str, Vec<u8>); 4] = [
        ("partial header", vec![0x10, 0x00, 0x00]),
        ("header promising more than is there", {
            let mut v = 200u32.to_le_bytes().to_vec();
            v.extend_from_slice(&[1, 2, 3, 4]);
            v.extend_from_slice(b"\x01{\"id\":");
            v
        }),
        ("zeroed preallocation", vec![0u8; 64]),
        ("garbage", (0..100u8).map(|b| b.wrapping_mul(37).wrapping_add(11)).collect()),
    ];
    for (what, tail) in tails {
        let dir = tempfile::tempdir().unwrap();
        let evs = events(20);
        write_all(dir.path(), config(FsyncPolicy::Always), &evs);
        let seg = segment_path(dir.path(), 1);
        let good_len = fs::metadata(&seg).unwrap().len();
        OpenOptions::new().append(true).open(&seg).unwrap().write_all(&tail).unwrap();

        let (log, rec) = open(dir.path(), config(FsyncPolicy::Always));
        assert_eq!(log.replayed(), 20, "{what}");
        assert_eq!(ids_and_kinds(&rec.seen()), ids_and_kinds(&evs), "{what}");
        assert_eq!(fs::metadata(&seg).unwrap().len(), good_len, "{what}: tail cut back to the last good record");

        let more = events(5);
        for e in &more {
            log.submit(e.clone()).unwrap();
        }
        assert_eq!(log.close().unwrap().written, 5, "{what}");

        let (log, rec) = open(dir.path(), config(FsyncPolicy::Always));
        let all: Vec<Event> = evs.iter().chain(&more).cloned().collect();
        assert_eq!(log.replayed(), 25, "{what}");
        assert_eq!(rec.seen(), all, "{what}: appends after a truncation replay cleanly");
    }
}

#[test]
fn a_flipped_byte_in_an_earlier_segment_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig { segment_bytes: 2_000, ..config(FsyncPolicy::Never) };
    write_all(dir.path(), cfg, &events(40));
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "{segs:?}");
    // inside the second record's payload of the first segment
    let first_len = fs::read(&segs[0]).unwrap()[..4].try_into().map(u32::from_le_bytes).unwrap();
    flip_byte(&segs[0], (RECORD_HEADER_BYTES as u64 + first_len as u64) + RECORD_HEADER_BYTES as u64 + 20);
    let before = fs::metadata(&segs[0]).unwrap().len();

    let rec = Arc::new(Recorder::default());
    let err = LocalLog::open(dir.path(), cfg, rec.clone()).err().expect("corruption must fail the open");
    match &err {
        LogError::Corrupt { segment, offset, .. } => {
            assert_eq!(segment, &segs[0]);
            assert_eq!(*offset, RECORD_HEADER_BYTES as u64 + first_len as u64);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("00000000000000000001.seg") && msg.contains("checksum"), "{msg}");
    assert_eq!(fs::metadata(&segs[0]).unwrap().len(), before, "an earlier segment is never truncated");
    assert_eq!(rec.seen().len(), 1, "only the record before the damage was replayed");
}

#[test]
fn a_flipped_byte_in_the_last_record_drops_only_that_record() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(30);
    write_all(dir.path(), config(FsyncPolicy::Always), &evs);
    let seg = segment_path(dir.path(), 1);
    let len = fs::metadata(&seg).unwrap().len();
    flip_byte(&seg, len - 2);

    let (log, rec) = open(dir.path(), config(FsyncPolicy::Always));
    assert_eq!(log.replayed(), 29);
    assert_eq!(ids_and_kinds(&rec.seen()), ids_and_kinds(&evs[..29]));
    assert_eq!(rec.rollup.totals(), expected_totals(&evs[..29]));
    assert!(fs::metadata(&seg).unwrap().len() < len);
}

#[test]
fn segments_rotate_at_the_size_limit_and_replay_crosses_them_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 1_200;
    let cfg = LogConfig { segment_bytes: limit, ..config(FsyncPolicy::Always) };
    let evs = events(60);
    write_all(dir.path(), cfg, &evs);

    let segs = segments(dir.path());
    assert!(segs.len() >= 5, "{} segments", segs.len());
    for (i, seg) in segs.iter().enumerate() {
        assert_eq!(seg, &segment_path(dir.path(), i as u64 + 1), "sequence numbers are consecutive from 1");
        let bytes = fs::read(seg).unwrap();
        assert!(!bytes.is_empty() && bytes.len() as u64 <= limit, "{seg:?} is {} bytes", bytes.len());
        if let Some(next) = segs.get(i + 1) {
            // rotation only when the next record would not fit
            let next_bytes = fs::read(next).unwrap();
            let next_record =
                RECORD_HEADER_BYTES as u64 + u64::from(u32::from_le_bytes(next_bytes[..4].try_into().unwrap()));
            assert!(bytes.len() as u64 + next_record > limit);
        }
    }

    let (log, rec) = open(dir.path(), cfg);
    assert_eq!(log.replayed(), 60);
    assert_eq!(rec.seen(), evs);
    // appending continues in the last segment, then rotates again
    let more = events(40);
    for e in &more {
        log.submit(e.clone()).unwrap();
    }
    log.close().unwrap();
    assert!(segments(dir.path()).len() > segs.len());
    let (log, rec) = open(dir.path(), cfg);
    assert_eq!(log.replayed(), 100);
    assert_eq!(ids_and_kinds(&rec.seen()), ids_and_kinds(&evs.iter().chain(&more).cloned().collect::<Vec<_>>()));
}

#[test]
fn a_full_queue_refuses_at_once_and_every_accepted_event_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let entered = Mutex::new(entered_tx);
    let gate = Mutex::new(gate_rx);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let observer = move |e: &EventRef<'_>| {
        let _ = entered.lock().unwrap().send(());
        // blocks the writer until the gate is dropped
        let _ = gate.lock().unwrap().recv();
        seen2.lock().unwrap().push(e.to_event().id);
    };
    let cfg = LogConfig { queue_capacity: 2, ..config(FsyncPolicy::Always) };
    let log = LocalLog::open(dir.path(), cfg, Arc::new(observer)).unwrap();

    let evs = events(10);
    log.submit(evs[0].clone()).unwrap();
    entered_rx.recv_timeout(Duration::from_secs(10)).expect("writer reached the observer");
    // the writer is stuck in the observer: exactly `queue_capacity` more fit
    log.submit(evs[1].clone()).unwrap();
    log.submit(evs[2].clone()).unwrap();
    let started = Instant::now();
    for e in &evs[3..] {
        assert_eq!(log.submit(e.clone()), Err(SinkError::Full));
    }
    assert!(started.elapsed() < Duration::from_secs(1), "submit must not block");
    let stats = log.stats();
    assert_eq!((stats.accepted, stats.rejected_full), (3, 7));
    assert!(stats.written <= 1);

    drop(gate_tx);
    let stats = log.close().unwrap();
    assert_eq!((stats.accepted, stats.written, stats.lost, stats.rejected_full), (3, 3, 0, 7));
    assert_eq!(*seen.lock().unwrap(), evs[..3].iter().map(|e| e.id.clone()).collect::<Vec<_>>());

    let (log, rec) = open(dir.path(), cfg);
    assert_eq!(log.replayed(), 3);
    assert_eq!(rec.seen(), evs[..3].to_vec());
}

#[test]
fn close_drains_every_accepted_event() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(20_000);
    let cfg = LogConfig { segment_bytes: 1024 * 1024, ..config(FsyncPolicy::Never) };
    let (log, _) = open(dir.path(), cfg);
    for e in &evs {
        log.submit(e.clone()).unwrap();
    }
    let stats = log.close().unwrap();
    assert_eq!((stats.accepted, stats.written, stats.lost), (20_000, 20_000, 0));

    let (log, rec) = open(dir.path(), cfg);
    assert_eq!(log.replayed(), 20_000);
    assert_eq!(ids_and_kinds(&rec.seen()), ids_and_kinds(&evs));
}

#[test]
fn dropping_the_log_drains_like_close() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(1_000);
    {
        let (log, _) = open(dir.path(), config(FsyncPolicy::EveryMillis(1_000)));
        for e in &evs {
            log.submit(e.clone()).unwrap();
        }
    }
    let (log, _) = open(dir.path(), config(FsyncPolicy::Always));
    assert_eq!(log.replayed(), 1_000);
}

#[test]
fn every_millis_policy_writes_and_observes_on_its_timer() {
    let dir = tempfile::tempdir().unwrap();
    let (log, rec) = open(dir.path(), config(FsyncPolicy::EveryMillis(20)));
    let evs = events(7);
    for e in &evs {
        log.submit(e.clone()).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.stats().written < 7 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(log.stats().written, 7, "synced without further submissions or a flush");
    assert_eq!(rec.rollup.totals(), expected_totals(&evs));
}

#[test]
fn flush_makes_events_written_and_observed() {
    for fsync in [FsyncPolicy::Always, FsyncPolicy::EveryMillis(60_000), FsyncPolicy::Never] {
        let dir = tempfile::tempdir().unwrap();
        let (log, rec) = open(dir.path(), config(fsync));
        let evs = events(50);
        for e in &evs {
            log.submit(e.clone()).unwrap();
        }
        log.flush().unwrap();
        assert_eq!(log.stats().written, 50, "{fsync:?}");
        assert_eq!(rec.seen(), evs, "{fsync:?}");
    }
}

#[test]
fn an_io_failure_counts_events_as_lost() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("events");
    // one record per segment: every event needs a new file
    let cfg = LogConfig { segment_bytes: 1, ..config(FsyncPolicy::Always) };
    let (log, rec) = open(&log_dir, cfg);
    log.submit(event(0)).unwrap();
    log.flush().unwrap();
    fs::remove_dir_all(&log_dir).unwrap();
    log.submit(event(1)).unwrap();
    log.submit(event(2)).unwrap();
    log.flush().unwrap();
    let stats = log.close().unwrap();
    assert_eq!((stats.accepted, stats.written, stats.lost), (3, 1, 2));
    assert_eq!(rec.seen().len(), 1, "lost events are never observed");
}

#[test]
fn a_panicking_observer_does_not_stop_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let count = Arc::new(Mutex::new(0u32));
    let count2 = count.clone();
    let observer = move |e: &EventRef<'_>| {
        let mut n = count2.lock().unwrap();
        *n += 1;
        drop(n);
        assert!(e.kind != EventKind::Click, "observer bug");
    };
    let log = LocalLog::open(dir.path(), config(FsyncPolicy::Always), Arc::new(observer)).unwrap();
    for e in events(10) {
        log.submit(e).unwrap();
    }
    let stats = log.close().unwrap();
    assert_eq!((stats.written, stats.lost), (10, 0));
    assert_eq!(*count.lock().unwrap(), 10);
}

#[test]
fn a_record_of_a_newer_version_is_an_error_not_a_truncation() {
    let dir = tempfile::tempdir().unwrap();
    write_all(dir.path(), config(FsyncPolicy::Always), &events(3));
    let seg = segment_path(dir.path(), 1);
    let mut payload = vec![RECORD_VERSION + 1];
    payload.extend_from_slice(b"{}");
    let mut record = (payload.len() as u32).to_le_bytes().to_vec();
    record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    record.extend_from_slice(&payload);
    OpenOptions::new().append(true).open(&seg).unwrap().write_all(&record).unwrap();
    let len = fs::metadata(&seg).unwrap().len();

    let err = LocalLog::open(dir.path(), config(FsyncPolicy::Always), Arc::new(|_: &EventRef<'_>| {})).err();
    assert!(
        matches!(err, Some(LogError::UnsupportedVersion { version, .. }) if version == RECORD_VERSION + 1),
        "{err:?}"
    );
    assert_eq!(fs::metadata(&seg).unwrap().len(), len);
}

#[test]
fn bad_config_and_stray_files() {
    let dir = tempfile::tempdir().unwrap();
    let noop = || -> Arc<dyn EventObserver> { Arc::new(|_: &EventRef<'_>| {}) };
    for bad in [
        LogConfig { queue_capacity: 0, ..LogConfig::default() },
        LogConfig { segment_bytes: 0, ..LogConfig::default() },
    ] {
        assert!(matches!(LocalLog::open(dir.path(), bad, noop()), Err(LogError::InvalidConfig(_))));
    }
    fs::write(dir.path().join("README"), "not a segment").unwrap();
    fs::write(dir.path().join("1.seg"), "not ours either").unwrap();
    let log = LocalLog::open(dir.path(), LogConfig::default(), noop()).unwrap();
    log.submit(event(0)).unwrap();
    assert_eq!(log.close().unwrap().written, 1);
    let log = LocalLog::open(dir.path(), LogConfig::default(), noop()).unwrap();
    assert_eq!(log.replayed(), 1);
}

#[test]
fn default_config() {
    let c = LogConfig::default();
    assert_eq!((c.segment_bytes, c.fsync, c.queue_capacity), (64 << 20, FsyncPolicy::EveryMillis(100), 65_536));
}
