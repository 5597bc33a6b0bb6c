//! Following the local log while it is written: the watermark and the reader (what the Kafka
//! forwarder stands on). No broker needed.

use adp_domain::events::{Event, EventKind, EventRef};
use adp_domain::EventSink;
use adp_events::local_log::segment_path;
use adp_events::{FsyncPolicy, LocalLog, LogConfig, LogPosition, LogReader};
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn event(i: u64) -> Event {
    Event {
        id: format!("ev-{i:06}"),
        kind: EventKind::Impression,
        event_time_ms: 1_772_323_200_000 + i as i64,
        receive_time_ms: 1_772_323_200_000 + i as i64,
        request_id: format!("req-{i}"),
        decision_id: format!("dec-{}", i / 2),
        advertiser_id: "adv".into(),
        campaign_id: "cmp".into(),
        line_item_id: "li".into(),
        creative_id: "cr".into(),
        publisher_id: "pub".into(),
        site_id: "site".into(),
        placement_id: "pl".into(),
        deal_id: None,
        user_key: i,
        country: Some("DE".into()),
        device_type: None,
        price_micros: 1_000_000,
        cost_micros: 1_000,
        currency: "EUR".into(),
        reason: None,
        stands_for_request: false,
    }
}

fn open(dir: &Path, segment_bytes: u64, fsync: FsyncPolicy) -> LocalLog {
    let config = LogConfig { segment_bytes, fsync, queue_capacity: 65_536 };
    LocalLog::open(dir, config, Arc::new(|_: &EventRef<'_>| {})).expect("open log")
}

/// Reads everything up to `end`, returning the event ids.
fn read_to(reader: &mut LogReader, end: &LogPosition) -> Vec<String> {
    let mut ids = Vec::new();
    while let Some(e) = reader.next(end).expect("read") {
        ids.push(e.id);
    }
    ids
}

fn ids(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|i| event(i).id).collect()
}

#[test]
fn a_reader_follows_the_log_across_segments_and_resumes_from_a_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Small segments: 300 events span many of them.
    let log = open(dir.path(), 8 * 1024, FsyncPolicy::Never);
    let watermark = log.watermark();
    assert_eq!(watermark.committed(), LogPosition::default());
    let mut reader = LogReader::new(dir.path(), LogPosition::default());
    assert!(reader.next(&watermark.committed()).expect("empty log").is_none());

    let mut seen = Vec::new();
    let mut middle = None;
    for chunk in 0..3u64 {
        for i in chunk * 100..(chunk + 1) * 100 {
            log.submit(event(i)).expect("submit");
        }
        log.flush().expect("flush");
        let end = watermark.committed();
        assert_eq!(end.events, (chunk + 1) * 100);
        seen.extend(read_to(&mut reader, &end));
        assert_eq!(reader.position(), end, "the reader stops exactly at the committed end");
        if chunk == 0 {
            middle = Some(reader.position());
        }
    }
    assert_eq!(seen, ids(0..300));
    assert!(watermark.committed().segment > 3, "the events span several segments");

    // A new reader from a saved position reads the rest, also after the log is reopened.
    let end = watermark.committed();
    drop(log);
    let log = open(dir.path(), 8 * 1024, FsyncPolicy::Never);
    assert_eq!(log.watermark().committed(), end, "reopening restores the committed end");
    let mut resumed = LogReader::new(dir.path(), middle.expect("saved"));
    assert_eq!(read_to(&mut resumed, &end), ids(100..300));
}

#[test]
fn the_watermark_only_moves_past_synced_events_and_wakes_waiters() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Synced only on flush (or in 60 s): written events are not committed before that.
    let log = open(dir.path(), 1 << 20, FsyncPolicy::EveryMillis(60_000));
    let watermark = log.watermark();
    for i in 0..50 {
        log.submit(event(i)).expect("submit");
    }
    std::thread::sleep(Duration::from_millis(50));
    let start = LogPosition::default();
    assert_eq!(watermark.committed().events, 0, "nothing synced yet");
    let mut reader = LogReader::new(dir.path(), start);
    assert!(reader.next(&watermark.committed()).expect("read").is_none());

    let waiter = {
        let watermark = log.watermark();
        std::thread::spawn(move || watermark.wait_beyond(&start, Duration::from_secs(10)))
    };
    log.flush().expect("flush");
    let end = waiter.join().expect("waiter");
    assert_eq!(end.events, 50);
    assert_eq!(read_to(&mut reader, &end), ids(0..50));

    log.close().expect("close");
    assert!(watermark.is_closed());
    // A closed log does not keep a waiter waiting.
    let t = std::time::Instant::now();
    watermark.wait_beyond(&watermark.committed(), Duration::from_secs(10));
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_reopened_log_says_where_it_was_opened_and_is_a_new_incarnation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), 1 << 20, FsyncPolicy::Never);
    let first = log.watermark().incarnation();
    for i in 0..10 {
        log.submit(event(i)).expect("submit");
    }
    log.flush().expect("flush");
    let beyond = log.watermark().committed();
    drop(log);
    // The last 5 records vanish (as after a power loss with fsync = never).
    let mut reader = LogReader::new(dir.path(), LogPosition::default());
    for _ in 0..5 {
        reader.next(&beyond).expect("read").expect("event");
    }
    let cut = reader.position();
    let file = OpenOptions::new().write(true).open(segment_path(dir.path(), beyond.segment)).expect("segment");
    file.set_len(cut.offset).expect("cut");
    drop(file);

    let log = open(dir.path(), 1 << 20, FsyncPolicy::Never);
    let watermark = log.watermark();
    assert_eq!(watermark.opened(), cut, "the end found at open, before new writes");
    assert_ne!(watermark.incarnation(), first);
    for i in 100..103 {
        log.submit(event(i)).expect("submit");
    }
    log.flush().expect("flush");
    assert_eq!(watermark.opened(), cut, "new writes do not move it");
    let mut reader = LogReader::new(dir.path(), watermark.opened());
    assert_eq!(read_to(&mut reader, &watermark.committed()), ids(100..103));
}

#[test]
fn damage_before_the_committed_end_is_an_error_not_a_skip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), 1 << 20, FsyncPolicy::Never);
    for i in 0..3 {
        log.submit(event(i)).expect("submit");
    }
    log.flush().expect("flush");
    let end = log.watermark().committed();
    drop(log);
    let path = segment_path(dir.path(), end.segment);
    let mut bytes = std::fs::read(&path).expect("read");
    let last = bytes.len() - 3;
    bytes[last] ^= 0x5a;
    std::fs::write(&path, bytes).expect("write");
    let mut reader = LogReader::new(dir.path(), LogPosition::default());
    assert!(reader.next(&end).expect("first").is_some());
    assert!(reader.next(&end).expect("second").is_some());
    let err = reader.next(&end).expect_err("third is damaged");
    assert!(err.to_string().contains("corrupt"), "{err}");
    assert_eq!(reader.position().events, 2, "the reader stays before the damage");
}

/// `next_raw` hands out the log's adp-eventwire records as they are (what the forwarder puts in
/// its messages), and a record whose checksum holds but which does not decode is an error that
/// the reader stays before, as with `next`.
#[test]
fn raw_records_are_the_eventwire_records_and_undecodable_ones_are_errors() {
    use adp_events::local_log::{RECORD_HEADER_BYTES, RECORD_VERSION};
    use adp_events::LoggedEvent;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = open(dir.path(), 1 << 20, FsyncPolicy::Never);
    for i in 0..2 {
        log.submit(event(i)).expect("submit");
    }
    log.flush().expect("flush");
    let end = log.watermark().committed();
    drop(log);
    // A third record, checksummed, whose eventwire record has a schema version nobody knows.
    let payload = [RECORD_VERSION, 0xAE, 9, 0];
    let mut record = (payload.len() as u32).to_le_bytes().to_vec();
    record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    record.extend_from_slice(&payload);
    assert_eq!(record.len(), RECORD_HEADER_BYTES + payload.len());
    let path = segment_path(dir.path(), end.segment);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes.extend_from_slice(&record);
    std::fs::write(&path, bytes).expect("write");
    let end = LogPosition { offset: end.offset + record.len() as u64, events: end.events + 1, ..end };

    let mut reader = LogReader::new(dir.path(), LogPosition::default());
    for i in 0..2 {
        match reader.next_raw(&end).expect("read").expect("an event") {
            LoggedEvent::Wire { record, event: view } => {
                let mut expected = Vec::new();
                adp_eventwire::encode(&event(i), &mut expected);
                assert_eq!(record, expected.as_slice());
                assert_eq!(view.to_event(), event(i));
            }
            LoggedEvent::Owned(_) => panic!("the log writes eventwire records"),
        }
    }
    let before = reader.position();
    for _ in 0..2 {
        let err = reader.next_raw(&end).err().expect("the third does not decode");
        assert!(err.to_string().contains("does not decode"), "{err}");
        assert_eq!(reader.position(), before, "the reader stays before it");
    }
    assert!(reader.next(&end).is_err(), "next says the same");
}
