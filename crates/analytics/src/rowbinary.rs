//! rowbinary: one event as a row of the `events` table in ClickHouse's RowBinary format (the
//! format both 18.16 and current servers read), written straight from the domain event with no
//! intermediate row struct — or from a record's borrowed view ([`adp_eventwire::EventRef`]),
//! with no owned event at all. Pure: bytes in, bytes out.

use crate::report::device_type_name;
use adp_domain::events::{Event, EventKind};
use adp_eventwire::{EventRef, IdRef};
use sha2::{Digest, Sha256};

/// The column list of an insert, in the order [`encode_event_row`] writes them.
pub const EVENT_COLUMNS: &str = "event_date, event_hour, event_time, event_time_ms, receive_time_ms, event_id, kind, \
     request_id, decision_id, advertiser_id, campaign_id, line_item_id, creative_id, publisher_id, site_id, \
     placement_id, deal_id, user_key, country, device_type, price_micros, cost_micros, currency, reason, \
     kafka_partition, kafka_offset, batch_id";

/// [`EVENT_COLUMNS`] with their types, as a `file()` / `input()` structure.
pub const EVENT_STRUCTURE: &str = "event_date Date, event_hour DateTime('UTC'), event_time DateTime('UTC'), \
     event_time_ms Int64, receive_time_ms Int64, event_id FixedString(16), \
     kind Enum8('request' = 1, 'decision' = 2, 'impression' = 3, 'click' = 4, 'bid' = 5, 'win' = 6, 'loss' = 7, 'billing' = 8, 'conversion' = 9), \
     request_id String, decision_id String, advertiser_id String, campaign_id String, line_item_id String, \
     creative_id String, publisher_id String, site_id String, placement_id String, deal_id String, user_key UInt64, \
     country String, device_type String, price_micros Int64, cost_micros Int64, currency String, reason String, \
     kafka_partition UInt32, kafka_offset Int64, batch_id UInt64";

/// Largest event time a `DateTime` column holds (2106-02-07), in milliseconds.
pub const MAX_EVENT_TIME_MS: i64 = (u32::MAX as i64) * 1000 + 999;

/// Why an event cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("event time {0} ms is outside 1970..2106")]
    TimeOutOfRange(i64),
}

/// The `events.kind` enum code of a kind (the schema's `Enum8`).
pub fn kind_code(kind: EventKind) -> i8 {
    match kind {
        EventKind::Request => 1,
        EventKind::Decision => 2,
        EventKind::Impression => 3,
        EventKind::Click => 4,
        EventKind::Bid => 5,
        EventKind::Win => 6,
        EventKind::Loss => 7,
        EventKind::Billing => 8,
        EventKind::Conversion => 9,
    }
}

/// The 16 bytes an event id is stored and deduplicated as: a UUID's own bytes (UUIDv7 keeps
/// time order), any other id's SHA-256 prefix.
pub fn event_id_bytes(id: &str) -> [u8; 16] {
    if let Ok(u) = uuid::Uuid::try_parse(id) {
        return *u.as_bytes();
    }
    let digest = Sha256::new().chain_update(b"adp-event-id\0").chain_update(id.as_bytes()).finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// [`event_id_bytes`] of the id a record carries: a UUID's 16 bytes as they are (the bytes of
/// its text too), any other id as [`event_id_bytes`] makes it.
pub fn id_ref_bytes(id: IdRef<'_>) -> [u8; 16] {
    match id {
        IdRef::Uuid(bytes) => bytes,
        IdRef::Text(text) => event_id_bytes(text),
    }
}

/// Where a row came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Provenance {
    pub partition: u32,
    pub offset: i64,
    pub batch_id: u64,
}

/// Appends one `events` row (columns [`EVENT_COLUMNS`]).
pub fn encode_event_row(out: &mut Vec<u8>, e: &Event, id: &[u8; 16], from: Provenance) -> Result<(), RowError> {
    encode_event_fields(out, &EventRef::of(e), id)?;
    encode_provenance(out, from);
    Ok(())
}

/// Appends the columns of an `events` row up to `reason`: all of [`EVENT_COLUMNS`] but the last
/// three, which [`encode_provenance`] writes. Nothing is written if the time is out of range.
pub fn encode_event_fields(out: &mut Vec<u8>, e: &EventRef<'_>, id: &[u8; 16]) -> Result<(), RowError> {
    if !(0..=MAX_EVENT_TIME_MS).contains(&e.event_time_ms) {
        return Err(RowError::TimeOutOfRange(e.event_time_ms));
    }
    let secs = e.event_time_ms / 1000;
    let day = (secs / 86_400) as u16;
    let hour = (secs - secs % 3600) as u32;
    out.extend_from_slice(&day.to_le_bytes());
    out.extend_from_slice(&hour.to_le_bytes());
    out.extend_from_slice(&(secs as u32).to_le_bytes());
    out.extend_from_slice(&e.event_time_ms.to_le_bytes());
    out.extend_from_slice(&e.receive_time_ms.to_le_bytes());
    out.extend_from_slice(id);
    out.push(kind_code(e.kind) as u8);
    for s in [
        e.request_id,
        e.decision_id,
        e.advertiser_id,
        e.campaign_id,
        e.line_item_id,
        e.creative_id,
        e.publisher_id,
        e.site_id,
        e.placement_id,
    ] {
        put_str(out, s);
    }
    put_str(out, e.deal_id.unwrap_or(""));
    out.extend_from_slice(&e.user_key.to_le_bytes());
    put_str(out, e.country.unwrap_or(""));
    put_str(out, e.device_type.map(device_type_name).unwrap_or(""));
    out.extend_from_slice(&e.price_micros.to_le_bytes());
    out.extend_from_slice(&e.cost_micros.to_le_bytes());
    put_str(out, e.currency);
    put_str(out, e.reason.unwrap_or(""));
    Ok(())
}

/// Appends the last three columns of an `events` row: `kafka_partition, kafka_offset, batch_id`.
pub fn encode_provenance(out: &mut Vec<u8>, from: Provenance) {
    out.extend_from_slice(&from.partition.to_le_bytes());
    out.extend_from_slice(&from.offset.to_le_bytes());
    out.extend_from_slice(&from.batch_id.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut n = s.len() as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            id: "0190f0b8-7c1a-7d4e-8f00-0123456789ab".into(),
            kind: EventKind::Click,
            event_time_ms: 1_704_067_261_500,
            receive_time_ms: 1_704_067_261_600,
            request_id: "r".into(),
            decision_id: "d".into(),
            advertiser_id: "a".repeat(200),
            campaign_id: String::new(),
            line_item_id: "l".into(),
            creative_id: "c".into(),
            publisher_id: "p".into(),
            site_id: "s".into(),
            placement_id: "pl".into(),
            deal_id: None,
            user_key: 42,
            country: Some("DE".into()),
            device_type: None,
            price_micros: 1,
            cost_micros: 2,
            currency: "USD".into(),
            reason: None,
            stands_for_request: false,
        }
    }

    #[test]
    fn row_layout() {
        let e = event();
        let id = event_id_bytes(&e.id);
        assert_eq!(id[0], 0x01, "a UUID keeps its bytes");
        let mut out = Vec::new();
        encode_event_row(&mut out, &e, &id, Provenance { partition: 3, offset: 9, batch_id: 7 }).expect("row");
        assert_eq!(u16::from_le_bytes([out[0], out[1]]), 19_723, "2024-01-01");
        assert_eq!(u32::from_le_bytes([out[2], out[3], out[4], out[5]]), 1_704_067_200, "hour start");
        assert_eq!(u32::from_le_bytes([out[6], out[7], out[8], out[9]]), 1_704_067_261);
        assert_eq!(&out[26..42], &id);
        assert_eq!(out[42], 4, "click");
        // request_id "r", decision_id "d", then the 200-byte advertiser id with a 2-byte length.
        assert_eq!(&out[43..47], &[1, b'r', 1, b'd']);
        assert_eq!(&out[47..49], &[0xC8, 0x01]);
        assert_eq!(&out[out.len() - 20..out.len() - 16], &3u32.to_le_bytes());
        assert_eq!(&out[out.len() - 8..], &7u64.to_le_bytes());
    }

    #[test]
    fn a_decoded_record_makes_the_row_its_event_makes() {
        let from = Provenance { partition: 1, offset: 2, batch_id: 3 };
        for e in [
            event(),
            Event { id: "not-a-uuid".into(), device_type: Some(adp_domain::targeting::DeviceType::Phone), ..event() },
        ] {
            let mut record = Vec::new();
            adp_eventwire::encode(&e, &mut record);
            let view = adp_eventwire::decode_ref(&record).expect("decodes");
            assert_eq!(id_ref_bytes(view.id), event_id_bytes(&e.id));
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            encode_event_fields(&mut ours, &view, &id_ref_bytes(view.id)).expect("row");
            encode_provenance(&mut ours, from);
            encode_event_row(&mut theirs, &e, &event_id_bytes(&e.id), from).expect("row");
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn ids_that_are_not_uuids_hash_stably() {
        assert_eq!(event_id_bytes("x-1"), event_id_bytes("x-1"));
        assert_ne!(event_id_bytes("x-1"), event_id_bytes("x-2"));
    }

    #[test]
    fn times_out_of_range_are_refused() {
        let mut e = event();
        e.event_time_ms = -1;
        let id = event_id_bytes(&e.id);
        let p = Provenance { partition: 0, offset: 0, batch_id: 0 };
        assert_eq!(encode_event_row(&mut Vec::new(), &e, &id, p), Err(RowError::TimeOutOfRange(-1)));
        e.event_time_ms = MAX_EVENT_TIME_MS + 1;
        assert!(encode_event_row(&mut Vec::new(), &e, &id, p).is_err());
    }
}
